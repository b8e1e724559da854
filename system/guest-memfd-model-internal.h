/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * guest_memfd kernel model: what its parts share
 *
 * Private to the model's files and its test hooks:
 *   guest-memfd-model.c          the state machine (virt/kvm/guest_memfd.c)
 *   guest-memfd-model-pool.c     the pools (hugetlb subpool)
 *   guest-memfd-model-backing.c  where pages come from (memfd / hugetlbfs)
 *   tests/unit/guest-memfd-model-testing.c  test-only hooks, not in QEMU
 * QEMU and the tests see include/system/guest-memfd-model.h and
 * tests/unit/guest-memfd-model-testing.h instead.
 */

#ifndef SYSTEM_GUEST_MEMFD_MODEL_INTERNAL_H
#define SYSTEM_GUEST_MEMFD_MODEL_INTERNAL_H

#include "qemu/lockable.h"
#include "qemu/units.h"
#include "system/guest-memfd-model.h"
#include "system/guest-memfd-shared-pages.h"
#include "guest-memfd-model-hooks.h"

#define MODEL_PAGE 4096ULL
#define MODEL_PAGE_SHIFT 12

typedef struct ModelFolio {
    uint32_t pfn;           /* pool page number while allocated/truncated */
    uint32_t transient;     /* transient references, all sub-pages */
    uint32_t vma;           /* host-mapped sub-pages */
    bool allocated;         /* in the filemap */
    bool split;
    bool waiting;           /* folio_put callback registered */
    bool truncated;         /* out of the filemap, freed on last put */
} ModelFolio;

typedef struct ModelPool {
    int id;
    uint64_t page_size;
    bool real;
    uint64_t simulated;     /* pages of the simulated pool, 0: default */
    uint64_t total, free, reserved, in_use;
    unsigned files;         /* files holding reservations or pages */
    unsigned long *pfn_used;
    uint64_t pfn_limit;     /* bits in pfn_used */
    uint64_t pfn_cursor;
    /*
     * The slide's stash: pool page number -> the size of the huge folio
     * that page started, while that folio is split.
     */
    GHashTable *split_sizes;
} ModelPool;

typedef struct ModelFile {
    GuestMemfdFile parent;
    ModelPool *pool;
    uint64_t nfolios, npages, ppf;  /* ppf: 4 KiB pages per folio */
    ModelFolio *folios;
    GuestMemfdSharedPages shared;   /* attribute, per 4 KiB page */
    unsigned long *mapped;          /* host mappings (vma refs) */
    unsigned long *pinned;          /* page_pins > 0 */
    GHashTable *page_pins;          /* page index -> transient refs */
    uint8_t *dmap;                  /* the kernel's direct map */
    uint8_t *host_view;
    uint8_t *guest_view;            /* KVM's user mapping, see backing */
    bool real;                      /* hugetlb memfd */
    bool closed;
    uint64_t resv;                  /* reserved, not yet faulted */
    uint64_t nallocated;
    uint64_t resident;              /* folios holding a backing page */
    /*
     * Totals over the folios, kept up to date as folios change, so that
     * statistics (query-guest-memfd) cost the same for any file size.
     */
    uint64_t nsplit;                /* split folios */
    uint64_t nsplit_allocated;      /* split folios in the filemap */
    uint64_t nwaiting;              /* folios waiting for folio_put */
    GuestMemfdModelStats ev;        /* event counters */
} ModelFile;

/*
 * One lock for all of the model: its files share the pools, as the
 * kernel's guest_memfd files share the hugetlb pool.  Every entry point
 * that reads or changes the model's state, QEMU's or a test's, takes it
 * once; the functions declared below never take it: they run under an
 * entry point that holds it (gmem_model_pool_of() reads only constants).
 */
extern QemuMutex gmem_model_lock;
#define MODEL_LOCK_GUARD() QEMU_LOCK_GUARD(&gmem_model_lock)

/* Injected faults still to fire, by GuestMemfdModelFault (under the lock). */
extern unsigned gmem_model_faults[GMEM_MODEL_FAULT__MAX];

static inline ModelFile *model_file(GuestMemfdFile *f)
{
    assert(guest_memfd_is_model(f));
    return container_of(f, ModelFile, parent);
}

static inline uint64_t folio_first_page(ModelFile *mf, uint64_t index)
{
    return index * mf->ppf;
}

/* For messages: "1G", "2M", "4K". */
static inline const char *size_name(uint64_t page_size)
{
    return page_size == GiB ? "1G" : page_size == 2 * MiB ? "2M" : "4K";
}

/* State machine (guest-memfd-model.c) */

/* Consume one injected @fault; true if it fires. */
bool gmem_model_fault_fires(GuestMemfdModelFault fault);
/* Take folio @index into the filemap: the backing already holds its page. */
void gmem_model_adopt_folio(ModelFile *mf, uint64_t index);
/* Is every 4 KiB page of [first, first + n) shared (@shared) / private? */
bool gmem_model_range_is(ModelFile *mf, uint64_t first, uint64_t n,
                         bool shared);
/* Fault the folios of a byte range in, all or none (-ENOMEM). */
int gmem_model_fault_range(ModelFile *mf, uint64_t offset, uint64_t len);
/* The size a split folio had, from the merge table; 0 if not there. */
uint64_t gmem_model_stashed_size(ModelFile *mf, ModelFolio *folio);

/* Pools (guest-memfd-model-pool.c) */

/* The pool of @page_size, NULL if the model does not support the size. */
ModelPool *gmem_model_pool_of(uint64_t page_size);
/* Re-read the host's pool size; the kind changes only while unused. */
void gmem_model_pool_refresh(ModelPool *p);
/* Reserve @n pages for a new file (hugepage_subpool_get_pages). */
bool gmem_model_pool_reserve(ModelPool *p, uint64_t n, Error **errp);
/* A file gives back @n reservations it will not fault (closed, failed). */
void gmem_model_pool_unreserve(ModelPool *p, uint64_t n);
/* A file that gmem_model_pool_reserve() counted is gone. */
void gmem_model_pool_file_gone(ModelPool *p);
/* A reserved page becomes a page in use; returns its page number. */
uint32_t gmem_model_pool_take(ModelPool *p);
/* Page @pfn is free again, reserved again with @keep_reservation. */
void gmem_model_pool_give_back(ModelPool *p, uint32_t pfn,
                               bool keep_reservation);

/* Backing (guest-memfd-model-backing.c) */

/* Create the memfd (f->fd) and the model's direct map of it. */
bool gmem_model_backing_open(ModelFile *mf, Error **errp);
void gmem_model_backing_close(ModelFile *mf);
uint8_t *gmem_model_backing_guest_view(ModelFile *mf);
/* Make the page of folio @index really leave the host pool. */
void gmem_model_backing_populate(ModelFile *mf, uint64_t index);
/* Free the pages of a byte range; @keep_reservation as the pool's. */
void gmem_model_backing_discard(ModelFile *mf, uint64_t off, uint64_t len,
                                bool keep_reservation);
/* Zero part of an allocated folio without freeing it. */
void gmem_model_backing_zero(ModelFile *mf, uint64_t off, uint64_t len);
/* Adopt folios in [first, last] that QEMU populated behind the model. */
void gmem_model_sync_folios(ModelFile *mf, uint64_t first, uint64_t last);
/* Private pages become unreachable in QEMU's mapping, as far as it can. */
void gmem_model_protect_view(ModelFile *mf, uint64_t first, uint64_t n,
                             bool private);

#endif
