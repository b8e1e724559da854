/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * User-space model of the 1 GiB HugeTLB guest_memfd kernel: the state machine
 *
 * This file is the model's virt/kvm/guest_memfd.c: files, folios and their
 * split/merge, refcounts, conversion, truncation and the kernel ops
 * (guest-memfd-kernel.h).  The pools it draws pages from are the hugetlb
 * subpool (guest-memfd-model-pool.c); the memfd that holds the pages is the
 * backing (guest-memfd-model-backing.c); test-only hooks (accesses,
 * introspection, the invariant checker, fault injection) live in
 * tests/unit/guest-memfd-model-testing.c, outside QEMU.
 *
 * How the state machine maps to the proposed kernel (kernel-uapi.md
 * sections 2-4 and the 2025-02-06 split/merge slide):
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
 *   stashes the folio's original size in its pool, keyed by its
 *   "physical address" (the pool page number); the merge looks it up
 *   there, as the slide says.
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
 * One lock protects every model file and pool (guest-memfd-model-internal.h).
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qemu/bitmap.h"
#include "qemu/bitops.h"
#include "system/guest-memfd-model-internal.h"

QemuMutex gmem_model_lock;
unsigned gmem_model_faults[GMEM_MODEL_FAULT__MAX];

/*
 * Initialised before main() so that the first call into the model, from
 * QEMU or from a test, finds the lock ready without an init call.
 */
static void __attribute__((constructor)) model_lock_init(void)
{
    qemu_mutex_init(&gmem_model_lock);
}

bool gmem_model_fault_fires(GuestMemfdModelFault fault)
{
    if (!gmem_model_faults[fault]) {
        return false;
    }
    gmem_model_faults[fault]--;
    return true;
}

uint64_t gmem_model_stashed_size(ModelFile *mf, ModelFolio *folio)
{
    return GPOINTER_TO_SIZE(g_hash_table_lookup(
                                mf->pool->split_sizes,
                                GUINT_TO_POINTER(folio->pfn)));
}

/* Pages 4 KiB: helpers on the per-page bitmaps */

static unsigned page_pins_of(ModelFile *mf, uint64_t page)
{
    return GPOINTER_TO_UINT(g_hash_table_lookup(mf->page_pins,
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
    assert(folio->allocated && !folio->split && mf->ppf > 1);
    g_hash_table_insert(mf->pool->split_sizes, GUINT_TO_POINTER(folio->pfn),
                        GSIZE_TO_POINTER(mf->parent.page_size));
    folio->split = true;
    mf->nsplit++;
    mf->nsplit_allocated++;
    mf->ev.splits++;
}

static void folio_merge(ModelFile *mf, uint64_t index)
{
    ModelFolio *folio = &mf->folios[index];
    uint64_t size = gmem_model_stashed_size(mf, folio);

    assert(folio->split && size == mf->parent.page_size);
    g_hash_table_remove(mf->pool->split_sizes, GUINT_TO_POINTER(folio->pfn));
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

    return mf->ppf > 1 && mf->shared.per_folio[index] && !folio->split;
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
    folio->pfn = gmem_model_pool_take(mf->pool);
    mf->resv--;
    folio->allocated = true;
    mf->nallocated++;
    mf->resident++;
    if (!adopt) {
        gmem_model_backing_populate(mf, index);
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
        if (gmem_model_fault_fires(GMEM_MODEL_FAULT_SPLIT_ENOMEM)) {
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
    gmem_model_pool_give_back(mf->pool, folio->pfn, keep_reservation);
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

    if (!folio->waiting || folio->transient || folio->vma) {
        return;
    }
    if (folio->truncated) {
        folio_release(mf, index, false);
        gmem_model_backing_discard(mf, index * mf->parent.page_size,
                                   mf->parent.page_size, false);
        return;
    }
    folio_set_waiting(mf, folio, false);
    if (folio->split && !mf->shared.per_folio[index]) {
        folio_merge(mf, index);
    }
}

/* Set NONE, register the callback, drop the filemap references. */
static void folio_register_put(ModelFile *mf, uint64_t index)
{
    folio_set_waiting(mf, &mf->folios[index], true);
    folio_put(mf, index);
}

/* Lazy sync: the backing finds pages QEMU populated, the filemap takes them */

void gmem_model_adopt_folio(ModelFile *mf, uint64_t index)
{
    ModelFolio *folio = &mf->folios[index];

    if (!folio->allocated && !folio->truncated && !mf->closed) {
        folio_fault(mf, index, true);
    }
}

static void sync_pages(ModelFile *mf, uint64_t first_page, uint64_t npages)
{
    gmem_model_sync_folios(mf, first_page / mf->ppf,
                           (first_page + npages - 1) / mf->ppf);
}

/* Attributes and host mappings */

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

bool gmem_model_range_is(ModelFile *mf, uint64_t first, uint64_t n,
                         bool shared)
{
    uint64_t end = first + n;

    return (shared ? find_next_zero_bit(mf->shared.bits, end, first)
                   : find_next_bit(mf->shared.bits, end, first)) >= end;
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

        if (!mf->folios[i].transient) {
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
    if (p < end || gmem_model_fault_fires(GMEM_MODEL_FAULT_CONVERT_EAGAIN)) {
        *error_offset = (p < end ? p : first) << MODEL_PAGE_SHIFT;
        return -EAGAIN;
    }
    guest_memfd_shared_pages_set(&mf->shared, first, n, false);
    for (uint64_t i = first / mf->ppf; i <= (end - 1) / mf->ppf; i++) {
        ModelFolio *folio = &mf->folios[i];

        if (folio->allocated && folio->split && !mf->shared.per_folio[i] &&
            !folio->waiting) {
            folio_register_put(mf, i);
        }
    }
    gmem_model_protect_view(mf, first, n, true);
    mf->ev.to_private++;
    return 0;
}

static int convert_to_shared(ModelFile *mf, uint64_t first, uint64_t n)
{
    /* The folios that hold the range, first to last. */
    uint64_t first_folio = first / mf->ppf;
    uint64_t last_folio = (first + n - 1) / mf->ppf;
    uint64_t splits = 0;

    for (uint64_t i = first_folio; i <= last_folio && mf->ppf > 1; i++) {
        splits += mf->folios[i].allocated && !mf->folios[i].split;
    }
    if (!splits_possible(splits)) {
        return -ENOMEM;
    }
    for (uint64_t i = first_folio; i <= last_folio && mf->ppf > 1; i++) {
        if (mf->folios[i].allocated && !mf->folios[i].split) {
            folio_split(mf, i);
        }
    }
    for (uint64_t i = first_folio; i <= last_folio; i++) {
        /* Shared pages again: the pending folio_put has nothing to do. */
        folio_set_waiting(mf, &mf->folios[i], false);
    }
    guest_memfd_shared_pages_set(&mf->shared, first, n, true);
    gmem_model_protect_view(mf, first, n, false);
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
    if (gmem_model_range_is(mf, first, n, !to_private)) {
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
int gmem_model_fault_range(ModelFile *mf, uint64_t offset, uint64_t len)
{
    uint64_t first = offset / mf->parent.page_size;
    uint64_t last = (offset + len - 1) / mf->parent.page_size;
    uint64_t splits = 0;

    gmem_model_sync_folios(mf, first, last);
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
    gmem_model_sync_folios(mf, index, index);
    if (mf->folios[index].allocated) {
        gmem_model_backing_zero(mf, start, end - start);
    }
}

static int model_punch_hole(GuestMemfdFile *f, uint64_t offset,
                            uint64_t size)
{
    ModelFile *mf = model_file(f);
    /* The folios wholly inside the range: [whole_first, whole_end). */
    uint64_t ps = f->page_size, end, whole_first, whole_end;

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
    if (gmem_model_fault_fires(GMEM_MODEL_FAULT_PUNCH_EAGAIN)) {
        return -EAGAIN;
    }
    whole_first = DIV_ROUND_UP(offset, ps);
    whole_end = end / ps;
    for (uint64_t i = whole_first; i < whole_end; i++) {
        if (mf->folios[i].transient) {
            return -EAGAIN;
        }
    }
    if (whole_first >= whole_end) {
        punch_partial(mf, offset, end);
        return 0;
    }
    punch_partial(mf, offset, whole_first * ps);
    punch_partial(mf, whole_end * ps, end);
    unmap_range(mf, whole_first * mf->ppf, (whole_end - whole_first) * mf->ppf);
    for (uint64_t i = whole_first; i < whole_end; i++) {
        if (mf->folios[i].allocated) {
            folio_release(mf, i, true);
        }
    }
    /* Pages QEMU populated without the model's knowledge go too. */
    gmem_model_backing_discard(mf, whole_first * ps,
                               (whole_end - whole_first) * ps, true);
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
    return gmem_model_fault_range(mf, offset, size);
}

static void file_destroy(ModelFile *mf)
{
    ModelPool *pool = mf->pool;

    gmem_model_backing_close(mf);
    gmem_model_pool_file_gone(pool);
    g_hash_table_destroy(mf->page_pins);
    g_free(mf->folios);
    guest_memfd_shared_pages_destroy(&mf->shared);
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
    gmem_model_pool_unreserve(mf->pool, mf->resv);
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
        if (folio->transient) {
            folio_set_waiting(mf, folio, true);
        } else {
            folio_release(mf, i, false);
        }
    }
    if (!g_hash_table_size(mf->page_pins)) {
        file_destroy(mf);
        return;
    }
    /* Pinned folios keep the memfd open: give everything else back now. */
    for (uint64_t i = 0, end; i < mf->nfolios; i = end + 1) {
        for (end = i; end < mf->nfolios && !mf->folios[end].truncated;) {
            end++;
        }
        if (end > i) {
            gmem_model_backing_discard(mf, i * ps, (end - i) * ps, false);
        }
    }
}

static const GuestMemfdKernelOps model_ops = {
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
    if (!gmem_model_pool_of(page_size)) {
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

GuestMemfdFile *guest_memfd_model_create(uint64_t size, uint64_t page_size,
                                         bool init_shared, Error **errp)
{
    ModelFile *mf;
    ModelPool *pool;

    if (!check_create_args(size, page_size, errp)) {
        return NULL;
    }
    MODEL_LOCK_GUARD();
    pool = gmem_model_pool_of(page_size);
    if (!gmem_model_pool_reserve(pool, size / page_size, errp)) {
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
    guest_memfd_shared_pages_init(&mf->shared, mf->npages, ctz64(mf->ppf));
    mf->mapped = bitmap_new(mf->npages);
    mf->pinned = bitmap_new(mf->npages);
    mf->page_pins = g_hash_table_new(g_direct_hash, g_direct_equal);
    if (init_shared) {
        guest_memfd_shared_pages_set(&mf->shared, 0, mf->npages, true);
    }
    if (!gmem_model_backing_open(mf, errp)) {
        gmem_model_pool_unreserve(pool, mf->resv);
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
    for (p = find_next_zero_bit(mf->shared.bits, mf->npages, 0); p < mf->npages;
         p = find_next_zero_bit(mf->shared.bits, mf->npages, end)) {
        end = find_next_bit(mf->shared.bits, mf->npages, p);
        gmem_model_protect_view(mf, p, end - p, true);
    }
}

void *guest_memfd_model_guest_view(GuestMemfdFile *f)
{
    MODEL_LOCK_GUARD();
    return gmem_model_backing_guest_view(model_file(f));
}

/* Transient references (QMP x-guest-memfd-pin, tests) */

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
    ret = gmem_model_fault_range(mf, offset, MODEL_PAGE);
    if (ret) {
        return ret;
    }
    g_hash_table_insert(mf->page_pins, GSIZE_TO_POINTER(page),
                        GUINT_TO_POINTER(page_pins_of(mf, page) + 1));
    set_bit(page, mf->pinned);
    mf->folios[page / mf->ppf].transient++;
    return 0;
}

int guest_memfd_model_unpin(GuestMemfdFile *f, uint64_t offset)
{
    ModelFile *mf = model_file(f);
    uint64_t page = offset >> MODEL_PAGE_SHIFT;
    uint64_t index = page / mf->ppf;
    unsigned pins;

    MODEL_LOCK_GUARD();
    if (!page_ok(mf, offset)) {
        return -EINVAL;
    }
    pins = page_pins_of(mf, page);
    if (!pins) {
        return -EINVAL;
    }
    if (pins > 1) {
        g_hash_table_insert(mf->page_pins, GSIZE_TO_POINTER(page),
                            GUINT_TO_POINTER(pins - 1));
    } else {
        g_hash_table_remove(mf->page_pins, GSIZE_TO_POINTER(page));
        clear_bit(page, mf->pinned);
    }
    mf->folios[index].transient--;
    folio_put(mf, index);
    if (mf->closed && !g_hash_table_size(mf->page_pins)) {
        file_destroy(mf);
    }
    return 0;
}

void guest_memfd_model_stats(GuestMemfdFile *f, GuestMemfdModelStats *out)
{
    ModelFile *mf = model_file(f);

    MODEL_LOCK_GUARD();
    gmem_model_sync_folios(mf, 0, mf->nfolios - 1);
    *out = mf->ev;
    out->folios = mf->nfolios;
    out->folios_allocated = mf->nallocated;
    out->folios_split = mf->nsplit;
    out->folios_merged = mf->nallocated - mf->nsplit_allocated;
    out->folios_waiting = mf->nwaiting;
    out->shared_pages = mf->shared.nr_shared;
    out->private_pages = mf->npages - out->shared_pages;
    out->pinned_pages = g_hash_table_size(mf->page_pins);
}

