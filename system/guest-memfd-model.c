/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * User-space model of the 1 GiB HugeTLB guest_memfd kernel
 *
 * How the model maps to the proposed kernel (kernel-uapi.md sections 2-4 and
 * the 2025-02-06 split/merge slide):
 *
 * - model_convert() is kvm_gmem_convert() / KVM_SET_MEMORY_ATTRIBUTES2: a
 *   range that already has the requested state is a no-op without refcount
 *   checks (v8).  To private: host mappings of the range go first
 *   (unmap_mapping_pages), then a transient reference on a folio in the
 *   range (a merged folio as a whole, a split one per 4 KiB page) fails the
 *   call with -EAGAIN and error_offset = max(start, folio start), else the
 *   attributes change and every split folio that became entirely private
 *   gets its folio_put callback registered.  To
 *   shared: every allocated huge folio touched is split first (the step
 *   that can fail, -ENOMEM, before anything changed), then the attributes
 *   change.
 *
 * - folio_split() / folio_merge() are the hugetlb restructuring: a split
 *   stashes the folio's original size in a table keyed by its "physical
 *   address" (pool and pool page number, see stash_key()); the merge looks
 *   it up there, as the slide says.
 *
 * - folio_put() is the folio_put callback: it runs when the last reference
 *   of a folio that waits for it goes (at once if there is none) and merges
 *   the folio (mappability NONE -> GUEST), or, for a truncated folio, merges
 *   and frees it to the pool.
 *
 * - model_punch_hole() is fallocate(PUNCH_HOLE): whole folios are truncated
 *   (-EAGAIN while referenced), merged and freed, keeping the reservation;
 *   partial folios are zeroed.  model_close() is the final fput/evict:
 *   everything is truncated, referenced folios stay until their last unpin.
 *
 * - ModelPool is the hugetlb subpool with min = max = file size: the whole
 *   file is reserved at creation; a fault turns a reservation into a page in
 *   use, a punch frees the page and restores the reservation, close gives
 *   everything back.
 *
 * Pages really live in a memfd that QEMU maps (f->fd) and that the model
 * maps once itself as the kernel's direct map.  When the host has a
 * hugetlb pool of the file's page size the memfd is a hugetlb memfd, so
 * pages really leave the host pool on fault and come back on punch/close;
 * otherwise it is an ordinary memfd and the pool is only counted.
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
 *
 * QEMU writes shared pages through its own mapping without telling the
 * model, which silently populates the memfd.  sync_folios() adopts such
 * folios lazily, only for folios the model thinks unallocated and only in
 * the range an operation needs (SEEK_DATA on an ordinary memfd; on hugetlb,
 * where SEEK_DATA reports everything as data, st_blocks says whether
 * anything is unaccounted for and mincore() or a probing fallocate finds it).
 *
 * One lock protects every model file and pool.
 */

#include "qemu/osdep.h"
#include "qemu/lockable.h"
#include "qapi/error.h"
#include "qemu/bitmap.h"
#include "qemu/bitops.h"
#include "qemu/units.h"
#include "qemu/memfd.h"
#include "system/guest-memfd-model.h"

#include <linux/falloc.h>

#define MODEL_PAGE 4096ULL
#define MODEL_PAGE_SHIFT 12

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

typedef struct ModelFolio {
    uint32_t pfn;           /* pool page number while allocated/truncated */
    uint32_t shared;        /* shared 4 KiB pages */
    uint32_t tt;            /* transient references, all sub-pages */
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
} ModelPool;

typedef struct ModelFile {
    GuestMemfdFile parent;
    ModelPool *pool;
    uint64_t nfolios, npages, ppf;  /* ppf: 4 KiB pages per folio */
    ModelFolio *folios;
    unsigned long *shared;          /* attribute, per 4 KiB page */
    unsigned long *mapped;          /* host mappings (vma refs) */
    unsigned long *pinned;          /* tt > 0 */
    GHashTable *tt;                 /* page index -> transient refs */
    uint8_t *dmap;                  /* the kernel's direct map */
    uint8_t *host_view;
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
    uint64_t nshared;               /* shared 4 KiB pages */
    GuestMemfdModelStats ev;        /* event counters */
} ModelFile;

/*
 * One lock for all of the model: its files share the pools, as the
 * kernel's guest_memfd files share the hugetlb pool.
 */
static QemuMutex model_lock;
static ModelPool pools[3] = {
    { .id = 0, .page_size = 4 * KiB },
    { .id = 1, .page_size = 2 * MiB },
    { .id = 2, .page_size = 1 * GiB },
};
static GHashTable *stash;           /* "physical address" -> folio size */
static unsigned faults[GMEM_MODEL_FAULT__MAX];

#define MODEL_LOCK_GUARD() QEMU_LOCK_GUARD(&model_lock)

static void __attribute__((constructor)) model_lock_init(void)
{
    qemu_mutex_init(&model_lock);
}

static ModelFile *model_file(GuestMemfdFile *f)
{
    assert(guest_memfd_is_model(f));
    return container_of(f, ModelFile, parent);
}

static bool fault_fires(GuestMemfdModelFault fault)
{
    if (!faults[fault]) {
        return false;
    }
    faults[fault]--;
    return true;
}

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

static uint64_t host_mem_total(void)
{
    g_autofree char *text = NULL;
    const char *p = NULL;

    if (g_file_get_contents("/proc/meminfo", &text, NULL, NULL)) {
        p = strstr(text, "MemTotal:");
    }
    if (!p) {
        return 4 * GiB;
    }
    return g_ascii_strtoull(p + strlen("MemTotal:"), NULL, 10) * KiB;
}

/* Pools */

static ModelPool *pool_of(uint64_t page_size)
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
static void pool_refresh(ModelPool *p)
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
static uint32_t pool_take(ModelPool *p)
{
    assert(p->reserved && p->free);
    p->reserved--;
    p->free--;
    p->in_use++;
    return pool_alloc_pfn(p);
}

static void pool_give_back(ModelPool *p, uint32_t pfn, bool keep_reservation)
{
    assert(p->in_use && test_bit(pfn, p->pfn_used));
    clear_bit(pfn, p->pfn_used);
    p->in_use--;
    p->free++;
    if (keep_reservation) {
        p->reserved++;
    }
}

static uint64_t stash_key(ModelFile *mf, ModelFolio *folio)
{
    return ((uint64_t)mf->pool->id << 48) | folio->pfn;
}

/* Backing memfd and direct map */

static const char *size_name(uint64_t page_size)
{
    return page_size == GiB ? "1G" : page_size == 2 * MiB ? "2M" : "4K";
}

static bool backing_open(ModelFile *mf, Error **errp)
{
    GuestMemfdFile *f = &mf->parent;
    unsigned flags = MFD_CLOEXEC;

    if (mf->real) {
        flags |= MFD_HUGETLB | (ctz64(f->page_size) << MFD_HUGE_SHIFT);
    }
    f->fd = memfd_create("guest-memfd-model", flags);
    if (f->fd < 0) {
        error_setg_errno(errp, errno, "guest_memfd model: memfd_create");
        return false;
    }
    if (ftruncate(f->fd, f->size) < 0) {
        error_setg_errno(errp, errno, "guest_memfd model: cannot size the "
                         "memfd to %" PRIu64 " bytes", f->size);
        goto fail;
    }
    /* On hugetlb this reserves every page of the file in the host. */
    mf->dmap = mmap(NULL, f->size, PROT_READ | PROT_WRITE, MAP_SHARED,
                    f->fd, 0);
    if (mf->dmap == MAP_FAILED) {
        mf->dmap = NULL;
        error_setg_errno(errp, errno, "guest_memfd model: the host cannot "
                         "reserve %" PRIu64 " %s hugetlb pages for the "
                         "file; raise /sys/kernel/mm/hugepages/hugepages-%"
                         PRIu64 "kB/nr_hugepages", mf->nfolios,
                         size_name(f->page_size), f->page_size / KiB);
        goto fail;
    }
    return true;

fail:
    close(f->fd);
    f->fd = -1;
    return false;
}

static void backing_close(ModelFile *mf)
{
    if (mf->dmap) {
        munmap(mf->dmap, mf->parent.size);
    }
    if (mf->parent.fd >= 0) {
        close(mf->parent.fd);
    }
}

/* Make the folio's huge page really leave the host pool. */
static void backing_populate(ModelFile *mf, uint64_t index)
{
    uint64_t ps = mf->parent.page_size;
    uint8_t *p = mf->dmap + index * ps;

    if (!mf->real) {
        return;
    }
    if (madvise(p, ps, MADV_POPULATE_WRITE) < 0) {
        /* Older kernels: a write fault that cannot change the contents. */
        qatomic_fetch_add(p, 0);
    }
}

/* A shared hugetlb mapping of a range reserves its pages in the inode. */
static void backing_rereserve(ModelFile *mf, uint64_t off, uint64_t len)
{
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED,
                   mf->parent.fd, off);

    if (p != MAP_FAILED) {
        munmap(p, len);
    }
}

static void backing_discard(ModelFile *mf, uint64_t off, uint64_t len,
                            bool keep_reservation)
{
    if (fallocate(mf->parent.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                  off, len) < 0) {
        /* Cannot fail on memfds for valid ranges; keep the data then. */
        return;
    }
    if (mf->real && keep_reservation) {
        backing_rereserve(mf, off, len);
    }
}

/* Zero part of an allocated folio without freeing it. */
static void backing_zero(ModelFile *mf, uint64_t off, uint64_t len)
{
    if (mf->real) {
        memset(mf->dmap + off, 0, len);
    } else {
        backing_discard(mf, off, len, false);
    }
}

/* Pages 4 KiB: helpers on the per-page bitmaps */

static uint64_t folio_first_page(ModelFile *mf, uint64_t index)
{
    return index * mf->ppf;
}

static unsigned page_tt(ModelFile *mf, uint64_t page)
{
    return GPOINTER_TO_UINT(g_hash_table_lookup(mf->tt,
                                                GSIZE_TO_POINTER(page)));
}

/* Folio state changes */

static void folio_set_waiting(ModelFile *mf, ModelFolio *folio, bool waiting)
{
    if (folio->waiting != waiting) {
        folio->waiting = waiting;
        if (waiting) {
            mf->nwaiting++;
        } else {
            mf->nwaiting--;
        }
    }
}

static void folio_split(ModelFile *mf, uint64_t index)
{
    ModelFolio *folio = &mf->folios[index];
    gpointer key = GSIZE_TO_POINTER(stash_key(mf, folio));

    assert(folio->allocated && !folio->split && mf->ppf > 1);
    g_hash_table_insert(stash, key, GSIZE_TO_POINTER(mf->parent.page_size));
    folio->split = true;
    mf->nsplit++;
    mf->nsplit_allocated++;
    mf->ev.splits++;
}

static void folio_merge(ModelFile *mf, uint64_t index)
{
    ModelFolio *folio = &mf->folios[index];
    gpointer key = GSIZE_TO_POINTER(stash_key(mf, folio));
    uint64_t size = GPOINTER_TO_SIZE(g_hash_table_lookup(stash, key));

    assert(folio->split && size == mf->parent.page_size);
    g_hash_table_remove(stash, key);
    folio->split = false;
    mf->nsplit--;
    if (folio->allocated) {
        mf->nsplit_allocated--;
    }
    mf->ev.merges++;
}

static bool folio_needs_split(ModelFile *mf, uint64_t index)
{
    ModelFolio *folio = &mf->folios[index];

    return mf->ppf > 1 && folio->shared && !folio->split;
}

/*
 * Put a folio into the filemap.  @adopt: the backing already holds its
 * page (QEMU wrote it), so nothing is populated.
 */
static void folio_fault(ModelFile *mf, uint64_t index, bool adopt)
{
    ModelFolio *folio = &mf->folios[index];

    if (folio->allocated) {
        return;
    }
    assert(!folio->truncated && mf->resv);
    folio->pfn = pool_take(mf->pool);
    mf->resv--;
    folio->allocated = true;
    mf->nallocated++;
    mf->resident++;
    if (!adopt) {
        backing_populate(mf, index);
    }
    /* Split on allocation: shared offsets are never in a huge folio. */
    if (folio_needs_split(mf, index)) {
        folio_split(mf, index);
    }
}

/*
 * Splits can fail (vmemmap restore); check them all before changing
 * anything so that a failing call changes nothing.
 */
static bool splits_possible(uint64_t splits)
{
    for (uint64_t i = 0; i < splits; i++) {
        if (fault_fires(GMEM_MODEL_FAULT_SPLIT_ENOMEM)) {
            return false;
        }
    }
    return true;
}

/*
 * Return a folio's page to the pool, merged first as hugetlb wants it.  The
 * caller discards the backing, so that ranges take one call.
 */
static void folio_release(ModelFile *mf, uint64_t index,
                          bool keep_reservation)
{
    ModelFolio *folio = &mf->folios[index];

    if (folio->split) {
        folio_merge(mf, index);
    }
    if (folio->allocated) {
        mf->nallocated--;
    }
    pool_give_back(mf->pool, folio->pfn, keep_reservation);
    if (keep_reservation) {
        mf->resv++;
    }
    mf->resident--;
    folio_set_waiting(mf, folio, false);
    folio->allocated = folio->truncated = false;
    folio->pfn = 0;
}

/* The folio_put callback: runs once the last reference is gone. */
static void folio_put(ModelFile *mf, uint64_t index)
{
    ModelFolio *folio = &mf->folios[index];

    if (!folio->waiting || folio->tt || folio->vma) {
        return;
    }
    if (folio->truncated) {
        folio_release(mf, index, false);
        backing_discard(mf, index * mf->parent.page_size,
                        mf->parent.page_size, false);
        return;
    }
    folio_set_waiting(mf, folio, false);
    if (folio->split && !folio->shared) {
        folio_merge(mf, index);
    }
}

/* Set NONE, register the callback, drop the filemap references. */
static void folio_register_put(ModelFile *mf, uint64_t index)
{
    folio_set_waiting(mf, &mf->folios[index], true);
    folio_put(mf, index);
}

/* Lazy sync with pages QEMU populated behind the model's back */

static void adopt_folio(ModelFile *mf, uint64_t index)
{
    ModelFolio *folio = &mf->folios[index];

    if (!folio->allocated && !folio->truncated && !mf->closed) {
        folio_fault(mf, index, true);
    }
}

static void sync_memfd(ModelFile *mf, uint64_t first, uint64_t last)
{
    uint64_t ps = mf->parent.page_size;
    off_t pos = first * ps, end = (last + 1) * ps;

    while (pos < end) {
        off_t data = lseek(mf->parent.fd, pos, SEEK_DATA);
        off_t hole;

        if (data < 0 || data >= end) {
            return;
        }
        hole = lseek(mf->parent.fd, data, SEEK_HOLE);
        hole = hole < 0 ? end : MIN(hole, end);
        for (uint64_t i = data / ps; i * ps < hole; i++) {
            adopt_folio(mf, i);
        }
        pos = hole;
    }
}

static bool mapped_in(void *base, uint64_t off)
{
    unsigned char vec;

    return base && mincore((uint8_t *)base + off, MODEL_PAGE, &vec) == 0 &&
           (vec & 1);
}

static uint64_t hugetlb_resident_pages(ModelFile *mf)
{
    struct stat st;

    if (fstat(mf->parent.fd, &st) < 0) {
        return mf->resident;
    }
    return (uint64_t)st.st_blocks * 512 / mf->parent.page_size;
}

/*
 * Is the huge page of folio @index in the hugetlb file?  Ask the mappings
 * first; if no mapping has it, allocate it: if that added a page it was a
 * hole, so punch it again (and restore its reservation).
 */
static bool hugetlb_probe(ModelFile *mf, uint64_t index)
{
    uint64_t ps = mf->parent.page_size, off = index * ps;
    uint64_t before;

    if (mapped_in(mf->host_view, off) || mapped_in(mf->dmap, off)) {
        return true;
    }
    before = hugetlb_resident_pages(mf);
    if (fallocate(mf->parent.fd, FALLOC_FL_KEEP_SIZE, off, ps) < 0) {
        return false;
    }
    if (hugetlb_resident_pages(mf) == before) {
        return true;
    }
    backing_discard(mf, off, ps, true);
    return false;
}

static void sync_hugetlb(ModelFile *mf, uint64_t first, uint64_t last)
{
    uint64_t unknown = hugetlb_resident_pages(mf) - mf->resident;

    for (uint64_t i = first; i <= last && unknown; i++) {
        ModelFolio *folio = &mf->folios[i];

        if (!folio->allocated && !folio->truncated && hugetlb_probe(mf, i)) {
            adopt_folio(mf, i);
            unknown--;
        }
    }
}

/* Adopt populated folios in [first, last] the model thinks unallocated. */
static void sync_folios(ModelFile *mf, uint64_t first, uint64_t last)
{
    if (mf->closed || mf->nallocated == mf->nfolios) {
        return;
    }
    if (mf->real) {
        if (hugetlb_resident_pages(mf) > mf->resident) {
            sync_hugetlb(mf, first, last);
        }
    } else {
        sync_memfd(mf, first, last);
    }
}

static void sync_pages(ModelFile *mf, uint64_t first_page, uint64_t npages)
{
    sync_folios(mf, first_page / mf->ppf,
                (first_page + npages - 1) / mf->ppf);
}

/* Attributes, host mappings and the host view */

static void set_attr_range(ModelFile *mf, uint64_t first, uint64_t n,
                           bool shared)
{
    uint64_t end = first + n;

    for (uint64_t p = first; p < end;) {
        uint64_t index = p / mf->ppf;
        uint64_t chunk = MIN(end, folio_first_page(mf, index + 1)) - p;
        long was = bitmap_count_one_with_offset(mf->shared, p, chunk);

        if (shared) {
            bitmap_set(mf->shared, p, chunk);
            mf->folios[index].shared += chunk - was;
            mf->nshared += chunk - was;
        } else {
            bitmap_clear(mf->shared, p, chunk);
            mf->folios[index].shared -= was;
            mf->nshared -= was;
        }
        p += chunk;
    }
}

/* Drop the vma references of a range (unmap_mapping_pages). */
static void unmap_range(ModelFile *mf, uint64_t first, uint64_t n)
{
    uint64_t end = first + n;

    for (uint64_t p = find_next_bit(mf->mapped, end, first); p < end;
         p = find_next_bit(mf->mapped, end, p + 1)) {
        clear_bit(p, mf->mapped);
        mf->folios[p / mf->ppf].vma--;
    }
}

static bool range_is(ModelFile *mf, uint64_t first, uint64_t n, bool shared)
{
    uint64_t end = first + n;

    return (shared ? find_next_zero_bit(mf->shared, end, first)
                   : find_next_bit(mf->shared, end, first)) >= end;
}

/*
 * Private pages become inaccessible in QEMU's mapping (the host view), so
 * that an access the memory API failed to refuse kills the test.  A 4 KiB
 * backing protects single pages.  A hugetlb mapping changes protection a
 * whole huge page at a time: a huge page is inaccessible once all of it is
 * private, and a private page beside shared ones stays reachable (tests
 * that need every private page out of reach use the simulated pool).
 */
static void protect_view(ModelFile *mf, uint64_t first, uint64_t n,
                         bool private)
{
    uint64_t hp = mf->parent.page_size;

    if (!mf->host_view) {
        return;
    }
    if (!mf->real) {
        mprotect(mf->host_view + (first << MODEL_PAGE_SHIFT),
                 n << MODEL_PAGE_SHIFT,
                 private ? PROT_NONE : PROT_READ | PROT_WRITE);
        return;
    }
    for (uint64_t f = first / mf->ppf; f <= (first + n - 1) / mf->ppf; f++) {
        bool all_private = range_is(mf, f * mf->ppf, mf->ppf, false);

        mprotect(mf->host_view + f * hp, hp,
                 all_private ? PROT_NONE : PROT_READ | PROT_WRITE);
    }
}

static bool check_range(GuestMemfdFile *f, uint64_t offset, uint64_t size)
{
    return size && QEMU_IS_ALIGNED(offset | size, MODEL_PAGE) &&
           offset + size >= offset && offset + size <= f->size;
}

/* Conversion */

/*
 * The kernel checks the refcount of every folio in the range: a split
 * folio's pages are 4 KiB folios of their own, but a pin anywhere in a
 * merged folio holds all of it.  Returns the first such page, rounded down
 * to its folio and not below @first (v8: max(start, folio->index)), or
 * @first + @n if there is none.
 */
static uint64_t first_referenced(ModelFile *mf, uint64_t first, uint64_t n)
{
    uint64_t end = first + n;

    if (mf->ppf == 1) {
        return find_next_bit(mf->pinned, end, first);
    }
    for (uint64_t i = first / mf->ppf; i <= (end - 1) / mf->ppf; i++) {
        uint64_t lo = MAX(first, folio_first_page(mf, i));
        uint64_t hi = MIN(end, folio_first_page(mf, i + 1));
        uint64_t p;

        if (!mf->folios[i].tt) {
            continue;
        }
        if (!mf->folios[i].split) {
            return lo;
        }
        p = find_next_bit(mf->pinned, hi, lo);
        if (p < hi) {
            return p;
        }
    }
    return end;
}

static int convert_to_private(ModelFile *mf, uint64_t first, uint64_t n,
                              uint64_t *error_offset)
{
    uint64_t end = first + n, p;

    unmap_range(mf, first, n);
    p = first_referenced(mf, first, n);
    if (p < end || fault_fires(GMEM_MODEL_FAULT_CONVERT_EAGAIN)) {
        *error_offset = (p < end ? p : first) << MODEL_PAGE_SHIFT;
        return -EAGAIN;
    }
    set_attr_range(mf, first, n, false);
    for (uint64_t i = first / mf->ppf; i <= (end - 1) / mf->ppf; i++) {
        ModelFolio *folio = &mf->folios[i];

        if (folio->allocated && folio->split && !folio->shared &&
            !folio->waiting) {
            folio_register_put(mf, i);
        }
    }
    protect_view(mf, first, n, true);
    mf->ev.to_private++;
    return 0;
}

static int convert_to_shared(ModelFile *mf, uint64_t first, uint64_t n)
{
    uint64_t fi = first / mf->ppf, la = (first + n - 1) / mf->ppf;
    uint64_t splits = 0;

    for (uint64_t i = fi; i <= la && mf->ppf > 1; i++) {
        splits += mf->folios[i].allocated && !mf->folios[i].split;
    }
    if (!splits_possible(splits)) {
        return -ENOMEM;
    }
    for (uint64_t i = fi; i <= la && mf->ppf > 1; i++) {
        if (mf->folios[i].allocated && !mf->folios[i].split) {
            folio_split(mf, i);
        }
    }
    for (uint64_t i = fi; i <= la; i++) {
        /* Shared pages again: the pending folio_put has nothing to do. */
        folio_set_waiting(mf, &mf->folios[i], false);
    }
    set_attr_range(mf, first, n, true);
    protect_view(mf, first, n, false);
    mf->ev.to_shared++;
    return 0;
}

static int model_convert(GuestMemfdFile *f, uint64_t offset, uint64_t size,
                         bool to_private, uint64_t *error_offset)
{
    ModelFile *mf = model_file(f);
    uint64_t first = offset >> MODEL_PAGE_SHIFT;
    uint64_t n = size >> MODEL_PAGE_SHIFT;
    uint64_t dummy;
    int ret;

    MODEL_LOCK_GUARD();
    if (mf->closed) {
        return -EBADF;
    }
    if (!check_range(f, offset, size)) {
        mf->ev.failed++;
        return -EINVAL;
    }
    /* v8: nothing to do means no refcount check either. */
    if (range_is(mf, first, n, !to_private)) {
        return 0;
    }
    sync_pages(mf, first, n);
    ret = to_private ? convert_to_private(mf, first, n,
                                          error_offset ?: &dummy)
                     : convert_to_shared(mf, first, n);
    if (ret) {
        mf->ev.failed++;
    }
    return ret;
}

/* Hole punching, allocation, close */

/* Fault the folios of a range in, all or none (split-on-alloc may fail). */
static int fault_range(ModelFile *mf, uint64_t offset, uint64_t len)
{
    uint64_t first = offset / mf->parent.page_size;
    uint64_t last = (offset + len - 1) / mf->parent.page_size;
    uint64_t splits = 0;

    sync_folios(mf, first, last);
    for (uint64_t i = first; i <= last; i++) {
        splits += !mf->folios[i].allocated && folio_needs_split(mf, i);
    }
    if (!splits_possible(splits)) {
        return -ENOMEM;
    }
    for (uint64_t i = first; i <= last; i++) {
        folio_fault(mf, i, false);
    }
    return 0;
}


static void punch_partial(ModelFile *mf, uint64_t start, uint64_t end)
{
    uint64_t index = start / mf->parent.page_size;

    if (start >= end) {
        return;
    }
    sync_folios(mf, index, index);
    if (mf->folios[index].allocated) {
        backing_zero(mf, start, end - start);
    }
}

static int model_punch_hole(GuestMemfdFile *f, uint64_t offset,
                            uint64_t size)
{
    ModelFile *mf = model_file(f);
    uint64_t ps = f->page_size, end, wfirst, wend;

    MODEL_LOCK_GUARD();
    if (mf->closed) {
        return -EBADF;
    }
    if (!size || !QEMU_IS_ALIGNED(offset | size, MODEL_PAGE) ||
        offset + size < offset) {
        return -EINVAL;
    }
    if (offset >= f->size) {
        return 0;
    }
    end = MIN(offset + size, f->size);
    if (fault_fires(GMEM_MODEL_FAULT_PUNCH_EAGAIN)) {
        return -EAGAIN;
    }
    wfirst = DIV_ROUND_UP(offset, ps);
    wend = end / ps;
    for (uint64_t i = wfirst; i < wend; i++) {
        if (mf->folios[i].tt) {
            return -EAGAIN;
        }
    }
    if (wfirst >= wend) {
        punch_partial(mf, offset, end);
        return 0;
    }
    punch_partial(mf, offset, wfirst * ps);
    punch_partial(mf, wend * ps, end);
    unmap_range(mf, wfirst * mf->ppf, (wend - wfirst) * mf->ppf);
    for (uint64_t i = wfirst; i < wend; i++) {
        if (mf->folios[i].allocated) {
            folio_release(mf, i, true);
        }
    }
    /* Pages QEMU populated without the model's knowledge go too. */
    backing_discard(mf, wfirst * ps, (wend - wfirst) * ps, true);
    return 0;
}

static int model_allocate(GuestMemfdFile *f, uint64_t offset, uint64_t size)
{
    ModelFile *mf = model_file(f);

    MODEL_LOCK_GUARD();
    if (mf->closed) {
        return -EBADF;
    }
    if (!check_range(f, offset, size)) {
        return -EINVAL;
    }
    return fault_range(mf, offset, size);
}

static void file_destroy(ModelFile *mf)
{
    ModelPool *pool = mf->pool;

    backing_close(mf);
    pool->files--;
    g_hash_table_destroy(mf->tt);
    g_free(mf->folios);
    g_free(mf->shared);
    g_free(mf->mapped);
    g_free(mf->pinned);
    g_free(mf);
}

static void model_close(GuestMemfdFile *f)
{
    ModelFile *mf = model_file(f);
    uint64_t ps = f->page_size;

    MODEL_LOCK_GUARD();
    assert(!mf->closed);
    mf->closed = true;
    mf->host_view = NULL;
    unmap_range(mf, 0, mf->npages);
    mf->pool->reserved -= mf->resv;
    mf->resv = 0;
    for (uint64_t i = 0; i < mf->nfolios; i++) {
        ModelFolio *folio = &mf->folios[i];

        if (!folio->allocated) {
            continue;
        }
        /* Truncation drops the filemap references and registers the put. */
        folio->allocated = false;
        folio->truncated = true;
        mf->nallocated--;
        if (folio->split) {
            mf->nsplit_allocated--;
        }
        if (folio->tt) {
            folio_set_waiting(mf, folio, true);
        } else {
            folio_release(mf, i, false);
        }
    }
    if (!g_hash_table_size(mf->tt)) {
        file_destroy(mf);
        return;
    }
    /* Pinned folios keep the memfd open: give everything else back now. */
    for (uint64_t i = 0, end; i < mf->nfolios; i = end + 1) {
        for (end = i; end < mf->nfolios && !mf->folios[end].truncated;) {
            end++;
        }
        if (end > i) {
            backing_discard(mf, i * ps, (end - i) * ps, false);
        }
    }
}

static const GuestMemfdKernelOps model_ops = {
    .name = "model",
    .convert = model_convert,
    .punch_hole = model_punch_hole,
    .allocate = model_allocate,
    .close = model_close,
};

bool guest_memfd_is_model(GuestMemfdFile *f)
{
    return f && f->ops == &model_ops;
}

/* Creation */

static bool check_create_args(uint64_t size, uint64_t page_size,
                              Error **errp)
{
    if (!pool_of(page_size)) {
        error_setg(errp, "guest_memfd model: page size %" PRIu64 " is not "
                   "supported (4 KiB, 2 MiB or 1 GiB)", page_size);
        return false;
    }
    if (!size) {
        error_setg(errp, "guest_memfd model: size must not be 0");
        return false;
    }
    if (size % page_size) {
        error_setg(errp, "guest_memfd model: size %" PRIu64 " is not a "
                   "multiple of the page size %" PRIu64, size, page_size);
        return false;
    }
    return true;
}

static bool pool_reserve(ModelPool *p, uint64_t n, Error **errp)
{
    pool_refresh(p);
    if (fault_fires(GMEM_MODEL_FAULT_CREATE_ENOMEM) ||
        p->free - p->reserved < n) {
        error_setg(errp, "guest_memfd model: cannot reserve %" PRIu64
                   " %s pages, the %s pool has %" PRIu64 " of %" PRIu64
                   " unreserved", n, size_name(p->page_size),
                   p->real ? "host hugetlb" : "simulated",
                   p->free - p->reserved, p->total);
        return false;
    }
    p->reserved += n;
    p->files++;
    return true;
}

GuestMemfdFile *guest_memfd_model_create(uint64_t size, uint64_t page_size,
                                         bool init_shared, Error **errp)
{
    ModelFile *mf;
    ModelPool *pool;

    if (!check_create_args(size, page_size, errp)) {
        return NULL;
    }
    MODEL_LOCK_GUARD();
    if (!stash) {
        stash = g_hash_table_new(g_direct_hash, g_direct_equal);
    }
    pool = pool_of(page_size);
    if (!pool_reserve(pool, size / page_size, errp)) {
        return NULL;
    }
    mf = g_new0(ModelFile, 1);
    mf->parent = (GuestMemfdFile) {
        .ops = &model_ops, .size = size, .page_size = page_size,
        .init_shared = init_shared, .fd = -1,
    };
    mf->pool = pool;
    mf->real = pool->real;
    mf->nfolios = mf->resv = size / page_size;
    mf->npages = size >> MODEL_PAGE_SHIFT;
    mf->ppf = page_size >> MODEL_PAGE_SHIFT;
    mf->folios = g_new0(ModelFolio, mf->nfolios);
    mf->shared = bitmap_new(mf->npages);
    mf->mapped = bitmap_new(mf->npages);
    mf->pinned = bitmap_new(mf->npages);
    mf->tt = g_hash_table_new(g_direct_hash, g_direct_equal);
    if (init_shared) {
        set_attr_range(mf, 0, mf->npages, true);
    }
    if (!backing_open(mf, errp)) {
        pool->reserved -= mf->resv;
        mf->resv = 0;
        file_destroy(mf);
        return NULL;
    }
    return &mf->parent;
}

const char *guest_memfd_model_backing(GuestMemfdFile *f)
{
    ModelFile *mf = model_file(f);

    if (!mf->real) {
        return "memfd, simulated pool";
    }
    return f->page_size == GiB ? "hugetlb 1G" : "hugetlb 2M";
}

void guest_memfd_model_set_host_view(GuestMemfdFile *f, void *host)
{
    ModelFile *mf = model_file(f);
    uint64_t p, end = 0;

    MODEL_LOCK_GUARD();
    mf->host_view = host;
    /* Runs of private pages become inaccessible. */
    for (p = find_next_zero_bit(mf->shared, mf->npages, 0); p < mf->npages;
         p = find_next_zero_bit(mf->shared, mf->npages, end)) {
        end = find_next_bit(mf->shared, mf->npages, p);
        protect_view(mf, p, end - p, true);
    }
}

/* Accesses */

static bool rw_range_ok(ModelFile *mf, uint64_t offset, uint64_t len)
{
    return !mf->closed && offset + len >= offset &&
           offset + len <= mf->parent.size;
}

static void copy_direct(ModelFile *mf, uint64_t offset, void *buf,
                        uint64_t len, bool write)
{
    if (write) {
        memcpy(mf->dmap + offset, buf, len);
    } else {
        memcpy(buf, mf->dmap + offset, len);
    }
}

int guest_memfd_model_guest_rw(GuestMemfdFile *f, uint64_t offset, void *buf,
                               uint64_t len, bool write)
{
    ModelFile *mf = model_file(f);
    int ret;

    MODEL_LOCK_GUARD();
    if (!rw_range_ok(mf, offset, len)) {
        return -EINVAL;
    }
    if (!len) {
        return 0;
    }
    ret = fault_range(mf, offset, len);
    if (ret) {
        return ret;
    }
    for (uint64_t i = offset / f->page_size;
         i <= (offset + len - 1) / f->page_size; i++) {
        if (mf->folios[i].waiting) {
            return -EAGAIN;     /* mappability NONE: nobody may fault it */
        }
    }
    copy_direct(mf, offset, buf, len, write);
    return 0;
}

int guest_memfd_model_host_rw(GuestMemfdFile *f, uint64_t offset, void *buf,
                              uint64_t len, bool write)
{
    ModelFile *mf = model_file(f);
    uint64_t first, end;
    int ret;

    MODEL_LOCK_GUARD();
    if (!rw_range_ok(mf, offset, len)) {
        return -EINVAL;
    }
    if (!len) {
        return 0;
    }
    first = offset >> MODEL_PAGE_SHIFT;
    end = DIV_ROUND_UP(offset + len, MODEL_PAGE);
    if (!range_is(mf, first, end - first, true)) {
        return -EFAULT;
    }
    ret = fault_range(mf, offset, len);
    if (ret) {
        return ret;
    }
    /* The host now maps these pages: vma references. */
    for (uint64_t p = first; p < end; p++) {
        if (!test_and_set_bit(p, mf->mapped)) {
            mf->folios[p / mf->ppf].vma++;
        }
    }
    copy_direct(mf, offset, buf, len, write);
    return 0;
}

/* Test hooks */

static bool page_ok(ModelFile *mf, uint64_t offset)
{
    return QEMU_IS_ALIGNED(offset, MODEL_PAGE) && offset < mf->parent.size;
}

int guest_memfd_model_pin(GuestMemfdFile *f, uint64_t offset)
{
    ModelFile *mf = model_file(f);
    uint64_t page = offset >> MODEL_PAGE_SHIFT;
    int ret;

    MODEL_LOCK_GUARD();
    if (mf->closed || !page_ok(mf, offset)) {
        return -EINVAL;
    }
    ret = fault_range(mf, offset, MODEL_PAGE);
    if (ret) {
        return ret;
    }
    g_hash_table_insert(mf->tt, GSIZE_TO_POINTER(page),
                        GUINT_TO_POINTER(page_tt(mf, page) + 1));
    set_bit(page, mf->pinned);
    mf->folios[page / mf->ppf].tt++;
    return 0;
}

int guest_memfd_model_unpin(GuestMemfdFile *f, uint64_t offset)
{
    ModelFile *mf = model_file(f);
    uint64_t page = offset >> MODEL_PAGE_SHIFT;
    uint64_t index = page / mf->ppf;
    unsigned tt;

    MODEL_LOCK_GUARD();
    if (!page_ok(mf, offset)) {
        return -EINVAL;
    }
    tt = page_tt(mf, page);
    if (!tt) {
        return -EINVAL;
    }
    if (tt > 1) {
        g_hash_table_insert(mf->tt, GSIZE_TO_POINTER(page),
                            GUINT_TO_POINTER(tt - 1));
    } else {
        g_hash_table_remove(mf->tt, GSIZE_TO_POINTER(page));
        clear_bit(page, mf->pinned);
    }
    mf->folios[index].tt--;
    folio_put(mf, index);
    if (mf->closed && !g_hash_table_size(mf->tt)) {
        file_destroy(mf);
    }
    return 0;
}

bool guest_memfd_model_page_private(GuestMemfdFile *f, uint64_t offset)
{
    ModelFile *mf = model_file(f);

    MODEL_LOCK_GUARD();
    assert(offset < f->size);
    return !test_bit(offset >> MODEL_PAGE_SHIFT, mf->shared);
}

GuestMemfdMappability guest_memfd_model_mappability(GuestMemfdFile *f,
                                                    uint64_t offset)
{
    ModelFile *mf = model_file(f);
    uint64_t index = offset / f->page_size;
    ModelFolio *folio;

    MODEL_LOCK_GUARD();
    assert(offset < f->size);
    sync_folios(mf, index, index);
    folio = &mf->folios[index];
    if (!folio->allocated) {
        return GMEM_MAPPABLE_NA;
    }
    if (folio->waiting) {
        return GMEM_MAPPABLE_NONE;
    }
    return test_bit(offset >> MODEL_PAGE_SHIFT, mf->shared) ?
           GMEM_MAPPABLE_ALL : GMEM_MAPPABLE_GUEST;
}

/* fm counts the filemap's references: one per folio, 4 KiB ones if split. */
static uint32_t folio_fm(ModelFile *mf, ModelFolio *folio)
{
    if (!folio->allocated || folio->waiting) {
        return 0;
    }
    return folio->split ? mf->ppf : 1;
}

void guest_memfd_model_folio(GuestMemfdFile *f, uint64_t index,
                             GuestMemfdModelFolio *out)
{
    ModelFile *mf = model_file(f);
    ModelFolio *folio;

    MODEL_LOCK_GUARD();
    memset(out, 0, sizeof(*out));
    if (index >= mf->nfolios) {
        return;
    }
    sync_folios(mf, index, index);
    folio = &mf->folios[index];
    *out = (GuestMemfdModelFolio) {
        .allocated = folio->allocated, .split = folio->split,
        .waiting_merge = folio->waiting, .truncated = folio->truncated,
        .shared_pages = folio->shared, .fm = folio_fm(mf, folio),
        .vma = folio->vma, .tt = folio->tt,
    };
}

void guest_memfd_model_stats(GuestMemfdFile *f, GuestMemfdModelStats *out)
{
    ModelFile *mf = model_file(f);

    MODEL_LOCK_GUARD();
    sync_folios(mf, 0, mf->nfolios - 1);
    *out = mf->ev;
    out->folios = mf->nfolios;
    out->folios_allocated = mf->nallocated;
    out->folios_split = mf->nsplit;
    out->folios_merged = mf->nallocated - mf->nsplit_allocated;
    out->folios_waiting = mf->nwaiting;
    out->shared_pages = mf->nshared;
    out->private_pages = mf->npages - out->shared_pages;
    out->pinned_pages = g_hash_table_size(mf->tt);
}

bool guest_memfd_model_pool(uint64_t page_size, GuestMemfdModelPool *out)
{
    ModelPool *p = pool_of(page_size);

    if (!p) {
        return false;
    }
    MODEL_LOCK_GUARD();
    pool_refresh(p);
    *out = (GuestMemfdModelPool) {
        .page_size = page_size, .real = p->real, .total = p->total,
        .free = p->free, .reserved = p->reserved, .in_use = p->in_use,
    };
    return true;
}

void guest_memfd_model_set_simulated_pool(uint64_t page_size, uint64_t pages)
{
    ModelPool *p = pool_of(page_size);

    if (!p) {
        return;
    }
    MODEL_LOCK_GUARD();
    p->simulated = pages;
    pool_refresh(p);
}

bool guest_memfd_model_simulate_pool(uint64_t page_size, Error **errp)
{
    ModelPool *p = pool_of(page_size);

    assert(p);
    MODEL_LOCK_GUARD();
    if (!p->simulated) {
        p->simulated = MAX(host_mem_total() / page_size, 1);
    }
    pool_refresh(p);
    if (p->real) {
        error_setg(errp, "guest_memfd model: the pool of %" PRIu64 " KiB"
                   " pages is in use as the host's hugetlb pool",
                   page_size / KiB);
        return false;
    }
    return true;
}

void guest_memfd_model_inject(GuestMemfdModelFault fault, unsigned count)
{
    assert(fault < GMEM_MODEL_FAULT__MAX);
    MODEL_LOCK_GUARD();
    faults[fault] = count;
}

/* Invariant checker: one pass over the folios and the bitmaps. */

static bool check_folio(ModelFile *mf, uint64_t i, uint32_t tt,
                        unsigned long *seen, Error **errp)
{
    ModelFolio *folio = &mf->folios[i];
    uint64_t first = folio_first_page(mf, i);
    uint32_t shared = bitmap_count_one_with_offset(mf->shared, first,
                                                   mf->ppf);
    uint32_t vma = bitmap_count_one_with_offset(mf->mapped, first, mf->ppf);
    bool holds = folio->allocated || folio->truncated;
    const char *why = NULL;

    if (folio->shared != shared || folio->vma != vma || folio->tt != tt) {
        why = "counters differ from the bitmaps";
    } else if (folio->allocated && folio->truncated) {
        why = "both in the filemap and truncated";
    } else if (mf->ppf > 1 && folio->allocated && shared && !folio->split) {
        why = "merged but not uniformly private (a shared page, no split)";
    } else if (folio->split && (!holds || mf->ppf == 1)) {
        why = "split without a page";
    } else if (folio->split &&
               GPOINTER_TO_SIZE(g_hash_table_lookup(stash, GSIZE_TO_POINTER(
                   stash_key(mf, folio)))) != mf->parent.page_size) {
        why = "split but its size is not in the merge table";
    } else if (folio->waiting && !folio->tt && !folio->vma) {
        why = "waits for folio_put without references";
    } else if (folio->waiting && !folio->truncated &&
               (!folio->split || folio->shared)) {
        why = "waits for a merge it cannot do";
    } else if (folio->truncated && (!mf->closed || !folio->waiting)) {
        why = "truncated while the file is open or without a callback";
    } else if (!holds && (folio->tt || folio->vma || folio->waiting)) {
        why = "referenced without a page";
    } else if (holds && !test_bit(folio->pfn, mf->pool->pfn_used)) {
        why = "holds a page the pool thinks free";
    } else if (holds && test_and_set_bit(folio->pfn, seen)) {
        why = "shares its pool page with another folio";
    }
    if (why) {
        error_setg(errp, "guest_memfd model: folio %" PRIu64 ": %s", i, why);
        return false;
    }
    return true;
}

static bool check_pool(ModelPool *p, Error **errp)
{
    if (p->free + p->in_use != p->total || p->reserved > p->free) {
        error_setg(errp, "guest_memfd model: %s pool: total %" PRIu64
                   " free %" PRIu64 " in use %" PRIu64 " reserved %" PRIu64,
                   size_name(p->page_size), p->total, p->free, p->in_use,
                   p->reserved);
        return false;
    }
    if (bitmap_count_one(p->pfn_used, p->pfn_limit) != p->in_use) {
        error_setg(errp, "guest_memfd model: %s pool: %" PRIu64 " pages in "
                   "use but %ld numbered", size_name(p->page_size),
                   p->in_use, bitmap_count_one(p->pfn_used, p->pfn_limit));
        return false;
    }
    return true;
}

/* Per-page tt counts and the pinned bitmap must agree; sum them by folio. */
static bool collect_tt(ModelFile *mf, uint32_t *tt, Error **errp)
{
    GHashTableIter it;
    gpointer key, value;

    g_hash_table_iter_init(&it, mf->tt);
    while (g_hash_table_iter_next(&it, &key, &value)) {
        uint64_t page = GPOINTER_TO_SIZE(key);

        if (page >= mf->npages || !value || !test_bit(page, mf->pinned)) {
            error_setg(errp, "guest_memfd model: page %" PRIu64 ": pin "
                       "count and pinned bitmap disagree", page);
            return false;
        }
        tt[page / mf->ppf] += GPOINTER_TO_UINT(value);
    }
    if (bitmap_count_one(mf->pinned, mf->npages) !=
        g_hash_table_size(mf->tt)) {
        error_setg(errp, "guest_memfd model: pinned bitmap has pages "
                   "without a pin count");
        return false;
    }
    return true;
}

/* The totals that statistics read equal the sums over the folios. */
static bool check_file_totals(ModelFile *mf, Error **errp)
{
    uint64_t split = 0, split_allocated = 0, waiting = 0, shared = 0;

    for (uint64_t i = 0; i < mf->nfolios; i++) {
        ModelFolio *folio = &mf->folios[i];

        split += folio->split;
        split_allocated += folio->split && folio->allocated;
        waiting += folio->waiting;
        shared += folio->shared;
    }
    if (split != mf->nsplit || split_allocated != mf->nsplit_allocated ||
        waiting != mf->nwaiting || shared != mf->nshared) {
        error_setg(errp, "guest_memfd model: totals: %" PRIu64 " split (%"
                   PRIu64 " counted), %" PRIu64 " split in the filemap (%"
                   PRIu64 "), %" PRIu64 " waiting (%" PRIu64 "), %" PRIu64
                   " shared pages (%" PRIu64 ")", split, mf->nsplit,
                   split_allocated, mf->nsplit_allocated, waiting,
                   mf->nwaiting, shared, mf->nshared);
        return false;
    }
    return true;
}

static bool check_file_counts(ModelFile *mf, Error **errp)
{
    uint64_t allocated = 0, holding = 0;

    for (uint64_t i = 0; i < mf->nfolios; i++) {
        allocated += mf->folios[i].allocated;
        holding += mf->folios[i].allocated || mf->folios[i].truncated;
    }
    if (allocated != mf->nallocated || holding != mf->resident ||
        mf->resv + allocated != (mf->closed ? 0 : mf->nfolios)) {
        error_setg(errp, "guest_memfd model: file counts: %" PRIu64
                   " folios, %" PRIu64 " allocated (%" PRIu64 " counted), %"
                   PRIu64 " reserved", mf->nfolios, allocated,
                   mf->nallocated, mf->resv);
        return false;
    }
    return check_file_totals(mf, errp);
}

/* Private pages are never mapped by the host. */
static bool check_mapped_shared(ModelFile *mf, Error **errp)
{
    g_autofree unsigned long *priv_mapped = bitmap_new(mf->npages);

    if (bitmap_andnot(priv_mapped, mf->mapped, mf->shared, mf->npages)) {
        error_setg(errp, "guest_memfd model: private page %lu is host-mapped",
                   find_first_bit(priv_mapped, mf->npages));
        return false;
    }
    return true;
}

bool guest_memfd_model_check(GuestMemfdFile *f, Error **errp)
{
    ModelFile *mf = model_file(f);
    ModelPool *p = mf->pool;
    g_autofree uint32_t *tt = NULL;
    g_autofree unsigned long *seen = NULL;

    MODEL_LOCK_GUARD();
    tt = g_new0(uint32_t, mf->nfolios);
    seen = bitmap_new(MAX(p->pfn_limit, 1));
    if (!check_pool(p, errp) || !collect_tt(mf, tt, errp) ||
        !check_file_counts(mf, errp)) {
        return false;
    }
    if (!check_mapped_shared(mf, errp)) {
        return false;
    }
    for (uint64_t i = 0; i < mf->nfolios; i++) {
        if (!check_folio(mf, i, tt[i], seen, errp)) {
            return false;
        }
    }
    return true;
}
