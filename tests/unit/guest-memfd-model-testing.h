/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * guest_memfd kernel model: the test-only API
 *
 * What tests, benchmarks and the fuzzer use of the model beyond QEMU's own
 * interface (system/guest-memfd-model.h): accesses as the guest and as the
 * host, introspection of pages and folios, the simulated pool's size, fault
 * injection and the invariant checker.  Implemented in
 * tests/unit/guest-memfd-model-testing.c, which is never linked into QEMU.
 */

#ifndef TESTS_UNIT_GUEST_MEMFD_MODEL_TESTING_H
#define TESTS_UNIT_GUEST_MEMFD_MODEL_TESTING_H

#include "system/guest-memfd-model.h"
#include "system/guest-memfd-model-hooks.h"

/* Mappability of a 4 KiB page, as on the 2025-02-06 design slide. */
typedef enum GuestMemfdMappability {
    GMEM_MAPPABLE_NA,       /* not in the filemap: never allocated, truncated */
    GMEM_MAPPABLE_GUEST,    /* private: only the guest may fault it */
    GMEM_MAPPABLE_ALL,      /* shared: guest and host may fault it */
    GMEM_MAPPABLE_NONE,     /* converting to private: waiting for folio_put */
} GuestMemfdMappability;

typedef struct GuestMemfdModelFolio {
    bool allocated;         /* in the filemap (holds a pool page) */
    bool split;             /* split to 4 KiB folios */
    bool waiting_merge;     /* folio_put callback registered, refs pending */
    bool truncated;         /* removed from the filemap, freed on last put */
    uint32_t shared_pages;  /* 4 KiB pages of this folio that are shared */
    uint32_t fm, vma, transient;    /* references: filemap, host maps */
} GuestMemfdModelFolio;

/*
 * Accesses as the guest (any page) and as the host (shared pages only,
 * -EFAULT otherwise: the model's SIGBUS).  Both fault the folio in.  The
 * guest gets -EAGAIN on a folio waiting for its folio_put callback
 * (mappability NONE: nobody may fault it).
 */
int guest_memfd_model_guest_rw(GuestMemfdFile *f, uint64_t offset, void *buf,
                               uint64_t len, bool write);
int guest_memfd_model_host_rw(GuestMemfdFile *f, uint64_t offset, void *buf,
                              uint64_t len, bool write);

bool guest_memfd_model_page_private(GuestMemfdFile *f, uint64_t offset);
GuestMemfdMappability guest_memfd_model_mappability(GuestMemfdFile *f,
                                                    uint64_t offset);
void guest_memfd_model_folio(GuestMemfdFile *f, uint64_t index,
                             GuestMemfdModelFolio *out);

/*
 * Size of the simulated pool of @page_size (tests); 0 restores the default
 * (host MemTotal / page_size).  A non-zero size also makes new files of
 * @page_size use the simulated pool where the host has hugetlb pages of
 * that size; the switch happens once the pool has no file left.
 */
void guest_memfd_model_set_simulated_pool(uint64_t page_size, uint64_t pages);

void guest_memfd_model_inject(GuestMemfdModelFault fault, unsigned count);

/*
 * Check every invariant of @f (and of the pools); false and @errp set on
 * the first violation.
 */
bool guest_memfd_model_check(GuestMemfdFile *f, Error **errp);

#endif
