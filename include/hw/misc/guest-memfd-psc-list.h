/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Processing of a GHCB Page State Change list, apart from any device
 *
 * The list comes from an untrusted guest.  psc_list_process() reads it,
 * checks every entry before anything changes, converts runs of contiguous
 * entries with the same operation at once, and writes progress back as a
 * hypervisor does.  Memory access and conversion go through callbacks, so
 * the same code serves the guest-memfd-psc device, the fuzzer and the
 * benchmarks.
 */

#ifndef HW_MISC_GUEST_MEMFD_PSC_LIST_H
#define HW_MISC_GUEST_MEMFD_PSC_LIST_H

#include "hw/misc/guest-memfd-psc.h"

typedef struct PscListOps {
    /* Guest memory access; false if it failed. */
    bool (*read)(void *opaque, uint64_t gpa, void *buf, uint64_t len);
    bool (*write)(void *opaque, uint64_t gpa, const void *buf, uint64_t len);
    /* May [gpa, gpa + size) be converted at all? */
    bool (*check)(void *opaque, uint64_t gpa, uint64_t size, Error **errp);
    /* Convert; on failure *done is how many bytes were. */
    bool (*convert)(void *opaque, uint64_t gpa, uint64_t size,
                    bool to_private, uint64_t *done, Error **errp);
} PscListOps;

typedef struct PscListResult {
    uint32_t status;        /* PSC_STATUS_* */
    uint32_t error_entry;   /* entry that failed */
    uint32_t entries_done;  /* cur_entry afterwards */
    uint32_t conversions;   /* convert calls made */
} PscListResult;

/*
 * Process the list at guest-physical @buf.  With @coalesce false every
 * entry is converted on its own (benchmarks compare the two).
 */
void psc_list_process(uint64_t buf, const PscListOps *ops, void *opaque,
                      bool coalesce, PscListResult *res);

#endif
