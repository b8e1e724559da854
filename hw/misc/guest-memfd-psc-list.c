/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Processing of a GHCB Page State Change list, apart from any device
 *
 * Every field of the list is guest-controlled.  The header is bounded by
 * the buffer's 253 entries, every entry is decoded and its range checked
 * before the first conversion, so a bad list changes nothing; once
 * conversions start, the only failures are the kernel's, and the progress
 * written back says exactly how far they got.
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qemu/bitops.h"
#include "qemu/bswap.h"
#include "qemu/units.h"
#include "hw/misc/guest-memfd-psc-list.h"
#include "trace.h"

typedef struct PscEntry {
    uint64_t gpa;           /* first byte still to convert */
    uint64_t size;          /* bytes still to convert */
    bool to_private;
} PscEntry;

/* Decode entry @raw; false if the guest broke any rule of the format. */
static bool psc_decode(uint64_t raw, PscEntry *e)
{
    unsigned op = extract64(raw, PSC_ENTRY_OP_SHIFT, 4);
    unsigned cur_page = extract64(raw, PSC_ENTRY_CUR_PAGE_SHIFT, 12);
    uint64_t gfn = extract64(raw, PSC_ENTRY_GFN_SHIFT, 40);
    uint64_t page_size = raw & PSC_ENTRY_2M ? 2 * MiB : 4 * KiB;
    uint64_t pages = page_size / (4 * KiB);

    if ((raw & PSC_ENTRY_RESERVED_MASK) ||
        (op != PSC_OP_PRIVATE && op != PSC_OP_SHARED) ||
        cur_page > pages || (gfn << 12) % page_size) {
        return false;
    }
    e->to_private = op == PSC_OP_PRIVATE;
    e->gpa = (gfn << 12) + cur_page * 4 * KiB;
    e->size = (pages - cur_page) * 4 * KiB;
    return true;
}

/*
 * Write back cur_entry = @next and, if it is a real entry, its cur_page.
 * False if the guest cannot see it (e.g. the list made its own page
 * private): the status must tell the guest then.
 */
static bool psc_write_progress(uint64_t buf, const PscListOps *ops,
                               void *opaque, const uint64_t *entries,
                               unsigned next, unsigned end)
{
    uint16_t hdr = cpu_to_le16(next);

    if (next <= end) {
        uint64_t le = cpu_to_le64(entries[next]);

        if (!ops->write(opaque, buf + PSC_HDR_SIZE + next * 8, &le, 8)) {
            return false;
        }
    }
    return ops->write(opaque, buf, &hdr, sizeof(hdr));
}

/* Read and check the list; returns a status and fills @e[cur..end]. */
static uint32_t psc_load(uint64_t buf, const PscListOps *ops, void *opaque,
                         uint64_t *entries, PscEntry *e, unsigned *cur,
                         unsigned *end, PscListResult *res)
{
    uint8_t hdr[PSC_HDR_SIZE];

    if (!ops->read(opaque, buf, hdr, sizeof(hdr))) {
        return PSC_STATUS_DMA_ERROR;
    }
    *cur = lduw_le_p(hdr);
    *end = lduw_le_p(hdr + 2);
    trace_guest_memfd_psc_list(buf, *cur, *end);
    if (*end >= PSC_MAX_ENTRIES || *cur > *end + 1) {
        return PSC_STATUS_BAD_HEADER;
    }
    if (*cur > *end) {
        return PSC_STATUS_OK;
    }
    if (!ops->read(opaque, buf + PSC_HDR_SIZE + *cur * 8, &entries[*cur],
                   (*end - *cur + 1) * 8)) {
        return PSC_STATUS_DMA_ERROR;
    }
    for (unsigned i = *cur; i <= *end; i++) {
        Error *err = NULL;

        entries[i] = le64_to_cpu(entries[i]);
        res->error_entry = i;
        if (!psc_decode(entries[i], &e[i])) {
            return PSC_STATUS_BAD_ENTRY;
        }
        if (e[i].size && !ops->check(opaque, e[i].gpa, e[i].size, &err)) {
            trace_guest_memfd_psc_bad_gpa(i, e[i].gpa, error_get_pretty(err));
            error_free(err);
            return PSC_STATUS_BAD_GPA;
        }
    }
    res->error_entry = 0;
    return PSC_STATUS_OK;
}

void psc_list_process(uint64_t buf, const PscListOps *ops, void *opaque,
                      bool coalesce, PscListResult *res)
{
    uint64_t entries[PSC_MAX_ENTRIES];
    PscEntry e[PSC_MAX_ENTRIES];
    unsigned cur = 0, end = 0, i;

    memset(res, 0, sizeof(*res));
    res->status = psc_load(buf, ops, opaque, entries, e, &cur, &end, res);
    if (res->status != PSC_STATUS_OK || cur > end) {
        res->entries_done = res->status == PSC_STATUS_OK ? cur : 0;
        return;
    }

    for (i = cur; i <= end;) {
        unsigned last = i;
        uint64_t size = e[i].size, done = 0;
        Error *err = NULL;

        while (coalesce && last < end &&
               e[last + 1].to_private == e[i].to_private &&
               e[last + 1].gpa == e[i].gpa + size) {
            last++;
            size += e[last].size;
        }
        if (size) {
            res->conversions++;
            trace_guest_memfd_psc_convert(i, last, e[i].gpa, size,
                                          e[i].to_private);
            if (!ops->convert(opaque, e[i].gpa, size, e[i].to_private, &done,
                              &err)) {
                /* Report exactly how far the kernel got. */
                while (done >= e[i].size && i < last) {
                    done -= e[i].size;
                    i++;
                }
                entries[i] = deposit64(entries[i], PSC_ENTRY_CUR_PAGE_SHIFT,
                                       12, extract64(entries[i],
                                                     PSC_ENTRY_CUR_PAGE_SHIFT,
                                                     12) + done / (4 * KiB));
                trace_guest_memfd_psc_failed(i, error_get_pretty(err));
                error_free(err);
                res->status = PSC_STATUS_CONVERT_FAILED;
                res->error_entry = i;
                res->entries_done = i;
                if (!psc_write_progress(buf, ops, opaque, entries, i, end)) {
                    res->status = PSC_STATUS_DMA_ERROR;
                }
                return;
            }
        }
        i = last + 1;
    }
    res->entries_done = end + 1;
    if (!psc_write_progress(buf, ops, opaque, entries, end + 1, end)) {
        res->status = PSC_STATUS_DMA_ERROR;
    }
}
