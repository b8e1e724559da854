/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * User-space model of the 1 GiB HugeTLB guest_memfd kernel: the backing
 *
 * Where the model's pages come from, the part of the kernel that is
 * hugetlbfs and the page cache: open, populate, discard and zero pages of
 * the file, find pages QEMU populated behind the model's back, and make
 * private pages unreachable in QEMU's mapping as far as the page size lets.
 *
 * Pages really live in a memfd that QEMU maps (f->fd) and that the model
 * maps once itself as the kernel's direct map.  When the host has a
 * hugetlb pool of the file's page size the memfd is a hugetlb memfd, so
 * pages really leave the host pool on fault and come back on punch/close;
 * otherwise it is an ordinary memfd and the pool is only counted.
 *
 * QEMU writes shared pages through its own mapping without telling the
 * model, which silently populates the memfd.  gmem_model_sync_folios()
 * finds such folios lazily, only for folios the model thinks unallocated
 * and only in the range an operation needs (SEEK_DATA on an ordinary memfd;
 * on hugetlb, where SEEK_DATA reports everything as data, st_blocks says
 * whether anything is unaccounted for and mincore() or a probing fallocate
 * finds it), and hands them to the state machine to adopt.
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qemu/bitops.h"
#include "qemu/madvise.h"
#include "qemu/memfd.h"
#include "system/guest-memfd-model-internal.h"

#include <linux/falloc.h>

/* Backing memfd and direct map */

bool gmem_model_backing_open(ModelFile *mf, Error **errp)
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

void gmem_model_backing_close(ModelFile *mf)
{
    if (mf->dmap) {
        munmap(mf->dmap, mf->parent.size);
    }
    if (mf->guest_view) {
        munmap(mf->guest_view, mf->parent.size);
    }
    if (mf->parent.fd >= 0) {
        close(mf->parent.fd);
    }
}

/* Make the folio's huge page really leave the host pool. */
void gmem_model_backing_populate(ModelFile *mf, uint64_t index)
{
    uint64_t ps = mf->parent.page_size;
    uint8_t *p = mf->dmap + index * ps;

    if (!mf->real) {
        return;
    }
    if (qemu_madvise(p, ps, QEMU_MADV_POPULATE_WRITE) < 0) {
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

void gmem_model_backing_discard(ModelFile *mf, uint64_t off, uint64_t len,
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
void gmem_model_backing_zero(ModelFile *mf, uint64_t off, uint64_t len)
{
    if (mf->real) {
        memset(mf->dmap + off, 0, len);
    } else {
        gmem_model_backing_discard(mf, off, len, false);
    }
}

/* Lazy sync with pages QEMU populated behind the model's back */

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
            gmem_model_adopt_folio(mf, i);
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

    if (mapped_in(mf->host_view, off) || mapped_in(mf->guest_view, off) ||
        mapped_in(mf->dmap, off)) {
        return true;
    }
    before = hugetlb_resident_pages(mf);
    if (fallocate(mf->parent.fd, FALLOC_FL_KEEP_SIZE, off, ps) < 0) {
        return false;
    }
    if (hugetlb_resident_pages(mf) == before) {
        return true;
    }
    gmem_model_backing_discard(mf, off, ps, true);
    return false;
}

static void sync_hugetlb(ModelFile *mf, uint64_t first, uint64_t last)
{
    uint64_t unknown = hugetlb_resident_pages(mf) - mf->resident;

    for (uint64_t i = first; i <= last && unknown; i++) {
        ModelFolio *folio = &mf->folios[i];

        if (!folio->allocated && !folio->truncated && hugetlb_probe(mf, i)) {
            gmem_model_adopt_folio(mf, i);
            unknown--;
        }
    }
}

/* Adopt populated folios in [first, last] the model thinks unallocated. */
void gmem_model_sync_folios(ModelFile *mf, uint64_t first, uint64_t last)
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

/* The guest view */

/*
 * KVM maps guest memory from a user address, as it maps a real
 * guest_memfd from the file itself.  The host view cannot serve: it keeps
 * private pages out of QEMU's reach, and so out of KVM's.  The guest gets
 * a mapping of its own, which QEMU never touches, made on first use.
 */
uint8_t *gmem_model_backing_guest_view(ModelFile *mf)
{
    void *p;

    if (!mf->guest_view) {
        p = mmap(NULL, mf->parent.size, PROT_READ | PROT_WRITE, MAP_SHARED,
                 mf->parent.fd, 0);
        mf->guest_view = p == MAP_FAILED ? NULL : p;
    }
    return mf->guest_view;
}

/* The host view */

/*
 * Private pages become inaccessible in QEMU's mapping (the host view), so
 * that an access the memory API failed to refuse kills the test.  A 4 KiB
 * backing protects single pages.  A hugetlb mapping changes protection a
 * whole huge page at a time: a huge page is inaccessible once all of it is
 * private, and a private page beside shared ones stays reachable (tests
 * that need every private page out of reach use the simulated pool).
 */
void gmem_model_protect_view(ModelFile *mf, uint64_t first, uint64_t n,
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
        bool all_private = gmem_model_range_is(mf, f * mf->ppf, mf->ppf, false);

        mprotect(mf->host_view + f * hp, hp,
                 all_private ? PROT_NONE : PROT_READ | PROT_WRITE);
    }
}

