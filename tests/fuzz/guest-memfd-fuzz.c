/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * libFuzzer harness: hostile page-state requests against the page-state
 * core and the kernel model
 *
 * An input is a file configuration followed by a program of operations:
 * page-state-change lists written into guest memory and processed by the
 * same code the guest-memfd-psc device uses, direct conversions of
 * arbitrary ranges, pins, unpins, hole punches, allocations and injected
 * kernel faults, in any order.  After every operation the model's
 * invariants must hold and QEMU's page state must equal the model's; at
 * the end every pin is dropped, the file is closed and every page must be
 * back in the pool.  Any violation aborts, which libFuzzer reports.
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qemu/bswap.h"
#include "qemu/units.h"
#include "system/guest-memfd-state.h"
#include "system/guest-memfd-model.h"
#include "tests/unit/guest-memfd-model-testing.h"
#include "hw/misc/guest-memfd-psc-list.h"

#define PAGE            GUEST_MEMFD_PAGE_SIZE
#define MAX_OPS         64
#define MAX_PINS        16

/* Guest-physical layout: RAM is the file at 0; MMIO right after it. */
#define MMIO_SIZE       (1 * MiB)

typedef struct Input {
    const uint8_t *data;
    size_t size;
} Input;

typedef struct Fuzz {
    GuestMemfdFile *file;
    GuestMemfdState state;
    uint64_t pins[MAX_PINS];
    unsigned npins;
} Fuzz;

static uint64_t take(Input *in, unsigned bytes)
{
    uint64_t v = 0;

    for (unsigned i = 0; i < bytes; i++) {
        v = (v << 8) | (in->size ? in->data[0] : 0);
        if (in->size) {
            in->data++;
            in->size--;
        }
    }
    return v;
}

static bool fz_read(void *opaque, uint64_t gpa, void *buf, uint64_t len)
{
    Fuzz *fz = opaque;

    /* DMA through QEMU's view: private pages and MMIO are refused. */
    return gpa < fz->file->size && len <= fz->file->size - gpa &&
           guest_memfd_model_host_rw(fz->file, gpa, buf, len, false) == 0;
}

static bool fz_write(void *opaque, uint64_t gpa, const void *buf,
                     uint64_t len)
{
    Fuzz *fz = opaque;

    return gpa < fz->file->size && len <= fz->file->size - gpa &&
           guest_memfd_model_host_rw(fz->file, gpa, (void *)buf, len,
                                     true) == 0;
}

static bool fz_check(void *opaque, uint64_t gpa, uint64_t size, Error **errp)
{
    Fuzz *fz = opaque;

    if (gpa >= fz->file->size || size > fz->file->size - gpa) {
        error_setg(errp, "not RAM");
        return false;
    }
    return true;
}

static bool fz_convert(void *opaque, uint64_t gpa, uint64_t size,
                       bool to_private, uint64_t *done, Error **errp)
{
    Fuzz *fz = opaque;

    return !guest_memfd_state_convert(&fz->state, gpa, size, to_private,
                                      done, errp);
}

static const PscListOps fuzz_ops = {
    .read = fz_read,
    .write = fz_write,
    .check = fz_check,
    .convert = fz_convert,
};

/* QEMU's view must equal the model's, and the model must be sound. */
static void check_consistent(Fuzz *fz)
{
    GuestMemfdModelStats st;

    if (!guest_memfd_model_check(fz->file, &error_abort)) {
        abort();
    }
    guest_memfd_model_stats(fz->file, &st);
    if (st.shared_pages != fz->state.shared.nr_shared) {
        abort();
    }
    for (uint64_t off = 0; off < fz->file->size; off += 64 * PAGE) {
        if (guest_memfd_model_page_private(fz->file, off) !=
            guest_memfd_state_any_private(&fz->state, off, PAGE)) {
            abort();
        }
    }
}

/* An arbitrary, often invalid, 4 KiB-ish range near or inside the file. */
static void take_range(Fuzz *fz, Input *in, uint64_t *gpa, uint64_t *size)
{
    uint64_t pages = fz->file->size / PAGE;

    *gpa = (take(in, 3) % (pages + 16)) * PAGE + (take(in, 1) == 0xff);
    *size = (take(in, 2) % (pages + 2)) * PAGE;
}

/* Write a list from the input into guest memory and process it. */
static void op_psc_list(Fuzz *fz, Input *in)
{
    uint64_t buf = (take(in, 2) % (fz->file->size / PAGE)) * PAGE;
    unsigned n = take(in, 1) % (PSC_MAX_ENTRIES + 3);
    uint8_t list[PSC_BUF_SIZE + 16] = { 0 };
    uint16_t cur = take(in, 1) % 4, end = n ? n - 1 : 0;
    PscListResult res;

    if (take(in, 1) == 0) {     /* sometimes a hostile header */
        end = take(in, 2);
    }
    stw_le_p(list, cur);
    stw_le_p(list + 2, end);
    for (unsigned i = 0; i < MIN(n, PSC_MAX_ENTRIES); i++) {
        uint64_t e = take(in, 1) == 0 ? take(in, 8) :
            ((take(in, 2) % (fz->file->size / PAGE + 8)) << 12) |
            ((take(in, 1) % 3 + 1) << PSC_ENTRY_OP_SHIFT) |
            (take(in, 1) & 1 ? PSC_ENTRY_2M : 0);
        stq_le_p(list + PSC_HDR_SIZE + i * 8, e);
    }
    if (buf + PSC_BUF_SIZE > fz->file->size ||
        !fz_write(fz, buf, list, PSC_BUF_SIZE)) {
        buf = fz->file->size;   /* the list is unreadable: DMA error */
    }
    psc_list_process(buf, &fuzz_ops, fz, take(in, 1) & 1, &res);
    if (res.status > PSC_STATUS_CONVERT_FAILED ||
        res.entries_done > PSC_MAX_ENTRIES) {
        abort();
    }
}

static void run_op(Fuzz *fz, Input *in)
{
    uint64_t gpa, size, done;
    Error *err = NULL;

    switch (take(in, 1) % 8) {
    case 0:
    case 1:
        op_psc_list(fz, in);
        break;
    case 2:
        take_range(fz, in, &gpa, &size);
        if (guest_memfd_state_convert(&fz->state, gpa, size,
                                      take(in, 1) & 1, &done, &err)) {
            error_free(err);
        }
        if (done > size) {
            abort();
        }
        break;
    case 3:
        if (fz->npins < MAX_PINS) {
            gpa = (take(in, 3) % (fz->file->size / PAGE)) * PAGE;
            if (guest_memfd_model_pin(fz->file, gpa) == 0) {
                fz->pins[fz->npins++] = gpa;
            }
        }
        break;
    case 4:
        if (fz->npins) {
            unsigned i = take(in, 1) % fz->npins;

            if (guest_memfd_model_unpin(fz->file, fz->pins[i])) {
                abort();
            }
            fz->pins[i] = fz->pins[--fz->npins];
        }
        break;
    case 5:
        take_range(fz, in, &gpa, &size);
        guest_memfd_punch_hole(fz->file, gpa, size);
        break;
    case 6:
        take_range(fz, in, &gpa, &size);
        guest_memfd_allocate(fz->file, gpa, size);
        break;
    case 7:
        guest_memfd_model_inject(take(in, 1) % GMEM_MODEL_FAULT__MAX,
                                 take(in, 1) % 3);
        break;
    }
    check_consistent(fz);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint64_t page_sizes[] = { 4 * KiB, 2 * MiB, 1 * GiB };
    static const uint64_t file_sizes[] = { 2 * MiB, 8 * MiB, 2 * GiB };
    Input in = { data, size };
    unsigned kind = take(&in, 1) % 3;
    GuestMemfdModelPool before, after;
    Fuzz fz = { 0 };

    guest_memfd_model_inject(GMEM_MODEL_FAULT_CREATE_ENOMEM, 0);
    guest_memfd_model_set_simulated_pool(page_sizes[kind], 1024);
    if (!guest_memfd_model_pool(page_sizes[kind], &before)) {
        abort();
    }
    fz.file = guest_memfd_model_create(file_sizes[kind], page_sizes[kind],
                                       take(&in, 1) & 1, &error_abort);
    guest_memfd_state_init(&fz.state, fz.file, "fuzz");

    for (unsigned i = 0; i < MAX_OPS && in.size; i++) {
        run_op(&fz, &in);
    }

    /* Teardown: unpinning after close must return every page. */
    for (unsigned i = 0; i < GMEM_MODEL_FAULT__MAX; i++) {
        guest_memfd_model_inject(i, 0);
    }
    guest_memfd_state_destroy(&fz.state);
    guest_memfd_close(fz.file);
    while (fz.npins) {
        if (guest_memfd_model_unpin(fz.file, fz.pins[--fz.npins])) {
            abort();
        }
    }
    guest_memfd_model_pool(page_sizes[kind], &after);
    if (after.in_use != before.in_use || after.reserved != before.reserved ||
        after.free != before.free) {
        abort();
    }
    return 0;
}
