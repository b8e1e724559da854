/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The null guest_memfd kernel
 *
 * Accepts every call and does nothing.  Benchmarks and the page-state
 * tests put it under the core to measure, or test, QEMU's own work alone;
 * it is not linked into QEMU.
 */

#include "qemu/osdep.h"
#include "system/guest-memfd-kernel.h"

static int null_convert(GuestMemfdFile *f, uint64_t offset, uint64_t size,
                        bool to_private, uint64_t *error_offset)
{
    return 0;
}

static int null_range(GuestMemfdFile *f, uint64_t offset, uint64_t size)
{
    return 0;
}

static void null_close(GuestMemfdFile *f)
{
    g_free(f);
}

static const GuestMemfdKernelOps null_ops = {
    .convert = null_convert,
    .punch_hole = null_range,
    .allocate = null_range,
    .close = null_close,
};

GuestMemfdFile *guest_memfd_null_create(uint64_t size, uint64_t page_size,
                                        bool init_shared)
{
    GuestMemfdFile *f = g_new0(GuestMemfdFile, 1);

    f->ops = &null_ops;
    f->size = size;
    f->page_size = page_size;
    f->init_shared = init_shared;
    f->fd = -1;
    return f;
}
