/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * User-space model of the 1 GiB HugeTLB guest_memfd kernel
 *
 * No released kernel has HugeTLB guest_memfd or in-place conversion.  The
 * model reproduces the proposed kernel's behaviour in user space, behind the
 * same call surface as the real kernel (guest-memfd-kernel.h): folios of the
 * file's page size that split when any 4 KiB of them becomes shared and merge
 * back in the folio_put callback once every sub-page is private and
 * unreferenced, refcount classes fm/vma/tt, mappability GUEST/ALL/NONE/N/A,
 * truncation, and hugetlb subpool accounting.  Pages come from a real
 * hugetlb memfd when the host has a pool of the file's page size, otherwise
 * from an ordinary memfd with a simulated pool.
 *
 * This header is what QEMU uses; tests reach further (accesses,
 * introspection, fault injection, the invariant checker) through
 * tests/unit/guest-memfd-model-testing.h.
 */

#ifndef SYSTEM_GUEST_MEMFD_MODEL_H
#define SYSTEM_GUEST_MEMFD_MODEL_H

#include "system/guest-memfd-kernel.h"

typedef struct GuestMemfdModelStats {
    uint64_t folios;            /* folios in the file (size / page_size) */
    uint64_t folios_allocated;  /* holding a pool page */
    uint64_t folios_split;      /* currently split */
    uint64_t folios_merged;     /* allocated and not split */
    uint64_t folios_waiting;    /* waiting for folio_put to merge or free */
    uint64_t shared_pages;      /* 4 KiB pages */
    uint64_t private_pages;
    uint64_t pinned_pages;
    uint64_t splits;            /* events since creation */
    uint64_t merges;
    uint64_t to_shared;         /* successful convert calls */
    uint64_t to_private;
    uint64_t failed;            /* convert calls that returned an error */
} GuestMemfdModelStats;

typedef struct GuestMemfdModelPool {
    uint64_t page_size;
    bool real;              /* host hugetlb pages; false: simulated */
    uint64_t total;         /* pages in the pool */
    uint64_t free;          /* not holding data (reserved ones included) */
    uint64_t reserved;      /* promised to files, not yet faulted */
    uint64_t in_use;        /* holding data of some file (or awaiting free) */
} GuestMemfdModelPool;

/*
 * Create a model file of @size bytes with folios of @page_size (4 KiB,
 * 2 MiB or 1 GiB), every page private, or shared with @init_shared.  The
 * whole file is reserved in the pool of @page_size at once.
 */
GuestMemfdFile *guest_memfd_model_create(uint64_t size, uint64_t page_size,
                                         bool init_shared, Error **errp);
bool guest_memfd_is_model(GuestMemfdFile *f);

/* Where pages come from: "hugetlb 1G", "hugetlb 2M", "memfd, simulated pool" */
const char *guest_memfd_model_backing(GuestMemfdFile *f);

/*
 * QEMU's own (host) mapping of the file.  Private pages in it are made
 * inaccessible where the backing allows (4 KiB pages, and whole huge pages
 * that are private), as the kernel's SIGBUS would; the model also counts
 * it as the "vma" references.
 */
void guest_memfd_model_set_host_view(GuestMemfdFile *f, void *host);

/*
 * The guest's mapping of the file, for KVM's memslots: the guest reads and
 * writes its private pages through it while the host view keeps them from
 * QEMU.  NULL if it cannot be mapped.
 */
void *guest_memfd_model_guest_view(GuestMemfdFile *f);

/* Transient reference on the 4 KiB page at @offset (like a GUP pin). */
int guest_memfd_model_pin(GuestMemfdFile *f, uint64_t offset);
/*
 * Drop it; may run the folio_put callback (merge, free).  Valid on a
 * closed file while it still has pins.
 */
int guest_memfd_model_unpin(GuestMemfdFile *f, uint64_t offset);

void guest_memfd_model_stats(GuestMemfdFile *f, GuestMemfdModelStats *out);

/* Pool of @page_size; false if the size is not one the model supports. */
bool guest_memfd_model_pool(uint64_t page_size, GuestMemfdModelPool *out);
/*
 * Make files of @page_size take their pages from a simulated pool (as large
 * as host RAM) even where the host has hugetlb pages of that size (the
 * backend's x-simulated-pool, for tests on hosts whose pool is too small).
 * Fails, saying so, while the pool is in use as the host's.
 */
bool guest_memfd_model_simulate_pool(uint64_t page_size, Error **errp);

#endif
