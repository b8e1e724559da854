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

/* One list being processed: where it is, and what was read of it. */
typedef struct PscList {
    uint64_t buf;                       /* its guest address */
    const PscListOps *ops;
    void *opaque;
    unsigned cur, end;                  /* the header's entries to do */
    uint64_t raw[PSC_MAX_ENTRIES];      /* as read, host order */
    PscEntry e[PSC_MAX_ENTRIES];        /* decoded, [cur, end] */
} PscList;

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
static bool psc_write_progress(PscList *l, unsigned next)
{
    uint16_t hdr = cpu_to_le16(next);

    if (next <= l->end) {
        uint64_t le = cpu_to_le64(l->raw[next]);

        if (!l->ops->write(l->opaque, l->buf + PSC_HDR_SIZE + next * 8,
                           &le, 8)) {
            return false;
        }
    }
    return l->ops->write(l->opaque, l->buf, &hdr, sizeof(hdr));
}

/* Read and check the list; returns a status and fills l->e[cur..end]. */
static uint32_t psc_load(PscList *l, PscListResult *res)
{
    uint8_t hdr[PSC_HDR_SIZE];

    if (!l->ops->read(l->opaque, l->buf, hdr, sizeof(hdr))) {
        return PSC_STATUS_DMA_ERROR;
    }
    l->cur = lduw_le_p(hdr);
    l->end = lduw_le_p(hdr + 2);
    trace_guest_memfd_psc_list(l->buf, l->cur, l->end);
    if (l->end >= PSC_MAX_ENTRIES || l->cur > l->end + 1) {
        return PSC_STATUS_BAD_HEADER;
    }
    if (l->cur > l->end) {
        return PSC_STATUS_OK;
    }
    if (!l->ops->read(l->opaque, l->buf + PSC_HDR_SIZE + l->cur * 8,
                      &l->raw[l->cur], (l->end - l->cur + 1) * 8)) {
        return PSC_STATUS_DMA_ERROR;
    }
    for (unsigned i = l->cur; i <= l->end; i++) {
        PscEntry *e = &l->e[i];
        Error *err = NULL;

        l->raw[i] = le64_to_cpu(l->raw[i]);
        res->error_entry = i;
        if (!psc_decode(l->raw[i], e)) {
            return PSC_STATUS_BAD_ENTRY;
        }
        if (e->size && !l->ops->check(l->opaque, e->gpa, e->size, &err)) {
            trace_guest_memfd_psc_bad_gpa(i, e->gpa, error_get_pretty(err));
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
    PscList list = { .buf = buf, .ops = ops, .opaque = opaque }, *l = &list;
    PscEntry *e = l->e;
    unsigned i;

    memset(res, 0, sizeof(*res));
    res->status = psc_load(l, res);
    if (res->status != PSC_STATUS_OK || l->cur > l->end) {
        res->entries_done = res->status == PSC_STATUS_OK ? l->cur : 0;
        return;
    }

    for (i = l->cur; i <= l->end;) {
        unsigned last = i;
        uint64_t size = e[i].size, done = 0;
        Error *err = NULL;

        while (coalesce && last < l->end &&
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
                l->raw[i] = deposit64(l->raw[i], PSC_ENTRY_CUR_PAGE_SHIFT, 12,
                                      extract64(l->raw[i],
                                                PSC_ENTRY_CUR_PAGE_SHIFT,
                                                12) + done / (4 * KiB));
                trace_guest_memfd_psc_failed(i, error_get_pretty(err));
                error_free(err);
                res->status = PSC_STATUS_CONVERT_FAILED;
                res->error_entry = i;
                res->entries_done = i;
                if (!psc_write_progress(l, i)) {
                    res->status = PSC_STATUS_DMA_ERROR;
                }
                return;
            }
        }
        i = last + 1;
    }
    res->entries_done = l->end + 1;
    if (!psc_write_progress(l, l->end + 1)) {
        res->status = PSC_STATUS_DMA_ERROR;
    }
}
