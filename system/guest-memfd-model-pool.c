/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * User-space model of the 1 GiB HugeTLB guest_memfd kernel: the pools
 *
 * One pool per page size (4 KiB, 2 MiB, 1 GiB), shared by every model file
 * of that size.  A ModelPool is the hugetlb subpool that the proposed
 * kernel gives each guest_memfd file, with min = max = file size: the whole
 * file is reserved at creation; a fault turns a reservation into a page in
 * use, a punch frees the page and restores the reservation, close gives
 * everything back.  Pages are numbered ("pfn") so that the state machine
 * can key split folios by physical address, as hugetlb does.
 *
 * A pool is real (the host's hugetlb pool of that size, which the backing
 * draws from: guest-memfd-model-backing.c) or simulated (as large as host
 * RAM, or the size a test sets).
 *
 * Host agreement for a real pool: the model's own numbers (reserved, in_use)
 * are exactly its share of the host's, because the direct map reserves the
 * whole file in the host (mmap of a shared hugetlb mapping), a fault
 * populates the page through it, a punch re-reserves the freed page with a
 * short-lived mapping (hugetlbfs drops the reservation of a punched range)
 * and close drops the mapping and the fd.  So with B_free / B_resv the
 * host's values before any model file existed:
 *     host free_hugepages == B_free - in_use
 *     host resv_hugepages == B_resv + reserved
 * total is the host's nr_hugepages and free == total - in_use; pages other
 * processes take from the host pool are not seen by the model.
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qemu/bitmap.h"
#include "qemu/bitops.h"
#include "system/guest-memfd-model-internal.h"

/*
 * The host's pools, one per page size as the kernel's hstates are: every
 * model file of the process draws on them, as every guest_memfd of a host
 * draws on its hugetlb pools, so they are the process's, like the lock.
 */
static ModelPool pools[3] = {
    { .id = 0, .page_size = 4 * KiB },
    { .id = 1, .page_size = 2 * MiB },
    { .id = 2, .page_size = 1 * GiB },
};

/* Host hugetlb pool */

int64_t guest_memfd_host_hugetlb(uint64_t page_size, const char *what)
{
    g_autofree char *path = NULL;
    g_autofree char *text = NULL;

    path = g_strdup_printf("/sys/kernel/mm/hugepages/hugepages-%" PRIu64
                           "kB/%s", page_size / KiB, what);
    if (!g_file_get_contents(path, &text, NULL, NULL)) {
        return -1;
    }
    return g_ascii_strtoll(text, NULL, 10);
}

/* The host's RAM (4 GiB where it cannot be told). */
static uint64_t host_mem_total(void)
{
    return qemu_get_host_physmem() ?: 4 * GiB;
}

/* Pools */

ModelPool *gmem_model_pool_of(uint64_t page_size)
{
    for (int i = 0; i < ARRAY_SIZE(pools); i++) {
        if (pools[i].page_size == page_size) {
            return &pools[i];
        }
    }
    return NULL;
}

static uint64_t pool_default_total(ModelPool *p)
{
    return p->simulated ? p->simulated : host_mem_total() / p->page_size;
}

/*
 * The kind of a pool can only change while nothing uses it; a real pool's
 * size follows the host's nr_hugepages.
 */
void gmem_model_pool_refresh(ModelPool *p)
{
    int64_t host_nr = -1;

    if (p->page_size > MODEL_PAGE) {
        host_nr = guest_memfd_host_hugetlb(p->page_size, "nr_hugepages");
    }
    if (!p->files && !p->in_use && !p->reserved) {
        p->real = !p->simulated && host_nr > 0;
    }
    p->total = p->real ? MAX(host_nr, 0) : pool_default_total(p);
    p->total = MAX(p->total, p->in_use + p->reserved);
    p->free = p->total - p->in_use;
}

static uint64_t pool_alloc_pfn(ModelPool *p)
{
    uint64_t pfn = find_next_zero_bit(p->pfn_used, p->pfn_limit,
                                      p->pfn_cursor);

    if (pfn >= p->pfn_limit) {
        pfn = find_next_zero_bit(p->pfn_used, p->pfn_limit, 0);
    }
    if (pfn >= p->pfn_limit) {
        uint64_t limit = MAX(64, p->pfn_limit * 2);

        p->pfn_used = bitmap_zero_extend(p->pfn_used, p->pfn_limit, limit);
        pfn = p->pfn_limit;
        p->pfn_limit = limit;
    }
    assert(pfn < UINT32_MAX);
    set_bit(pfn, p->pfn_used);
    p->pfn_cursor = pfn + 1;
    return pfn;
}

/* A reserved page becomes a page in use. */
uint32_t gmem_model_pool_take(ModelPool *p)
{
    assert(p->reserved && p->free);
    p->reserved--;
    p->free--;
    p->in_use++;
    return pool_alloc_pfn(p);
}

void gmem_model_pool_give_back(ModelPool *p, uint32_t pfn,
                               bool keep_reservation)
{
    assert(p->in_use && test_bit(pfn, p->pfn_used));
    clear_bit(pfn, p->pfn_used);
    p->in_use--;
    p->free++;
    if (keep_reservation) {
        p->reserved++;
    }
}

bool gmem_model_pool_reserve(ModelPool *p, uint64_t n, Error **errp)
{
    gmem_model_pool_refresh(p);
    if (gmem_model_fault_fires(GMEM_MODEL_FAULT_CREATE_ENOMEM) ||
        p->free - p->reserved < n) {
        error_setg(errp, "guest_memfd model: cannot reserve %" PRIu64
                   " %s pages, the %s pool has %" PRIu64 " of %" PRIu64
                   " unreserved", n, size_name(p->page_size),
                   p->real ? "host hugetlb" : "simulated",
                   p->free - p->reserved, p->total);
        return false;
    }
    if (!p->split_sizes) {
        p->split_sizes = g_hash_table_new(g_direct_hash, g_direct_equal);
    }
    p->reserved += n;
    p->files++;
    return true;
}

void gmem_model_pool_unreserve(ModelPool *p, uint64_t n)
{
    assert(p->reserved >= n);
    p->reserved -= n;
}

void gmem_model_pool_file_gone(ModelPool *p)
{
    assert(p->files);
    p->files--;
}

bool guest_memfd_model_pool(uint64_t page_size, GuestMemfdModelPool *out)
{
    ModelPool *p = gmem_model_pool_of(page_size);

    if (!p) {
        return false;
    }
    MODEL_LOCK_GUARD();
    gmem_model_pool_refresh(p);
    *out = (GuestMemfdModelPool) {
        .page_size = page_size, .real = p->real, .total = p->total,
        .free = p->free, .reserved = p->reserved, .in_use = p->in_use,
    };
    return true;
}

bool guest_memfd_model_simulate_pool(uint64_t page_size, Error **errp)
{
    ModelPool *p = gmem_model_pool_of(page_size);
    uint64_t simulated;

    assert(p);
    MODEL_LOCK_GUARD();
    simulated = p->simulated;
    if (!p->simulated) {
        p->simulated = MAX(host_mem_total() / page_size, 1);
    }
    gmem_model_pool_refresh(p);
    if (p->real) {
        /* Later files keep the host's pool, as before. */
        p->simulated = simulated;
        error_setg(errp, "guest_memfd model: the pool of %" PRIu64 " KiB"
                   " pages is in use as the host's hugetlb pool",
                   page_size / KiB);
        return false;
    }
    return true;
}

