/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * User-space model of the 1 GiB HugeTLB guest_memfd kernel: test hooks
 *
 * What only tests, benchmarks and the fuzzer need from the model: accesses
 * as the guest and as the host (the kernel's fault paths, which QEMU never
 * calls because it uses its own mapping), introspection of pages and
 * folios, the simulated pool's size, fault injection and the invariant
 * checker.  Linked into the unit tests, the benchmark and the fuzzer, never
 * into QEMU (tests/unit/guest-memfd-model-testing.h).
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qemu/bitmap.h"
#include "qemu/bitops.h"
#include "system/guest-memfd-model-internal.h"
#include "tests/unit/guest-memfd-model-testing.h"

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
    ret = gmem_model_fault_range(mf, offset, len);
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
    if (!gmem_model_range_is(mf, first, end - first, true)) {
        return -EFAULT;
    }
    ret = gmem_model_fault_range(mf, offset, len);
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

/* Introspection */

bool guest_memfd_model_page_private(GuestMemfdFile *f, uint64_t offset)
{
    ModelFile *mf = model_file(f);

    MODEL_LOCK_GUARD();
    assert(offset < f->size);
    return !test_bit(offset >> MODEL_PAGE_SHIFT, mf->shared.bits);
}

GuestMemfdMappability guest_memfd_model_mappability(GuestMemfdFile *f,
                                                    uint64_t offset)
{
    ModelFile *mf = model_file(f);
    uint64_t index = offset / f->page_size;
    ModelFolio *folio;

    MODEL_LOCK_GUARD();
    assert(offset < f->size);
    gmem_model_sync_folios(mf, index, index);
    folio = &mf->folios[index];
    if (!folio->allocated) {
        return GMEM_MAPPABLE_NA;
    }
    if (folio->waiting) {
        return GMEM_MAPPABLE_NONE;
    }
    return test_bit(offset >> MODEL_PAGE_SHIFT, mf->shared.bits) ?
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
    gmem_model_sync_folios(mf, index, index);
    folio = &mf->folios[index];
    *out = (GuestMemfdModelFolio) {
        .allocated = folio->allocated, .split = folio->split,
        .waiting_merge = folio->waiting, .truncated = folio->truncated,
        .shared_pages = mf->shared.per_folio[index], .fm = folio_fm(mf, folio),
        .vma = folio->vma, .transient = folio->transient,
    };
}

/* Simulated pools and fault injection */

void guest_memfd_model_set_simulated_pool(uint64_t page_size, uint64_t pages)
{
    ModelPool *p = gmem_model_pool_of(page_size);

    if (!p) {
        return;
    }
    MODEL_LOCK_GUARD();
    p->simulated = pages;
    gmem_model_pool_refresh(p);
}

void guest_memfd_model_inject(GuestMemfdModelFault fault, unsigned count)
{
    assert(fault < GMEM_MODEL_FAULT__MAX);
    MODEL_LOCK_GUARD();
    gmem_model_faults[fault] = count;
}

/* Invariant checker: one pass over the folios and the bitmaps. */

static bool check_folio(ModelFile *mf, uint64_t i, uint32_t pins,
                        unsigned long *seen, Error **errp)
{
    ModelFolio *folio = &mf->folios[i];
    uint64_t first = folio_first_page(mf, i);
    uint32_t shared = bitmap_count_one_with_offset(mf->shared.bits, first,
                                                   mf->ppf);
    uint32_t vma = bitmap_count_one_with_offset(mf->mapped, first, mf->ppf);
    bool holds = folio->allocated || folio->truncated;
    const char *why = NULL;

    if (mf->shared.per_folio[i] != shared || folio->vma != vma ||
        folio->transient != pins) {
        why = "counters differ from the bitmaps";
    } else if (folio->allocated && folio->truncated) {
        why = "both in the filemap and truncated";
    } else if (mf->ppf > 1 && folio->allocated && shared && !folio->split) {
        why = "merged but not uniformly private (a shared page, no split)";
    } else if (folio->split && (!holds || mf->ppf == 1)) {
        why = "split without a page";
    } else if (folio->split &&
               gmem_model_stashed_size(mf, folio) != mf->parent.page_size) {
        why = "split but its size is not in the merge table";
    } else if (folio->waiting && !folio->transient && !folio->vma) {
        why = "waits for folio_put without references";
    } else if (folio->waiting && !folio->truncated &&
               (!folio->split || mf->shared.per_folio[i])) {
        why = "waits for a merge it cannot do";
    } else if (folio->truncated && (!mf->closed || !folio->waiting)) {
        why = "truncated while the file is open or without a callback";
    } else if (!holds && (folio->transient || folio->vma || folio->waiting)) {
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

/* Per-page pin counts and the pinned bitmap must agree; sum them by folio. */
static bool collect_pins(ModelFile *mf, uint32_t *pins, Error **errp)
{
    GHashTableIter it;
    gpointer key, value;

    g_hash_table_iter_init(&it, mf->page_pins);
    while (g_hash_table_iter_next(&it, &key, &value)) {
        uint64_t page = GPOINTER_TO_SIZE(key);

        if (page >= mf->npages || !value || !test_bit(page, mf->pinned)) {
            error_setg(errp, "guest_memfd model: page %" PRIu64 ": pin "
                       "count and pinned bitmap disagree", page);
            return false;
        }
        pins[page / mf->ppf] += GPOINTER_TO_UINT(value);
    }
    if (bitmap_count_one(mf->pinned, mf->npages) !=
        g_hash_table_size(mf->page_pins)) {
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
        shared += mf->shared.per_folio[i];
    }
    if (split != mf->nsplit || split_allocated != mf->nsplit_allocated ||
        waiting != mf->nwaiting || shared != mf->shared.nr_shared) {
        error_setg(errp, "guest_memfd model: totals: %" PRIu64 " split (%"
                   PRIu64 " counted), %" PRIu64 " split in the filemap (%"
                   PRIu64 "), %" PRIu64 " waiting (%" PRIu64 "), %" PRIu64
                   " shared pages (%" PRIu64 ")", split, mf->nsplit,
                   split_allocated, mf->nsplit_allocated, waiting,
                   mf->nwaiting, shared, mf->shared.nr_shared);
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

    if (bitmap_andnot(priv_mapped, mf->mapped, mf->shared.bits, mf->npages)) {
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
    g_autofree uint32_t *pins = NULL;
    g_autofree unsigned long *seen = NULL;

    MODEL_LOCK_GUARD();
    pins = g_new0(uint32_t, mf->nfolios);
    seen = bitmap_new(MAX(p->pfn_limit, 1));
    if (!check_pool(p, errp) || !collect_pins(mf, pins, errp) ||
        !check_file_counts(mf, errp)) {
        return false;
    }
    if (!check_mapped_shared(mf, errp)) {
        return false;
    }
    for (uint64_t i = 0; i < mf->nfolios; i++) {
        if (!check_folio(mf, i, pins[i], seen, errp)) {
            return false;
        }
    }
    return true;
}

