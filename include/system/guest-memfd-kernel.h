/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * guest_memfd kernel call surface
 *
 * The page-state core and the memory backend talk to "the kernel" through
 * this interface only.  Two implementations stand behind it: the real KVM
 * guest_memfd (system/guest-memfd-kvm.c) and a user-space model of the
 * proposed 1 GiB HugeTLB guest_memfd (system/guest-memfd-model.c).  A third,
 * the null kernel (system/guest-memfd-null.c), accepts every call and does
 * nothing; tests and benchmarks use it to isolate QEMU's own work.
 *
 * Every call follows kernel conventions: it returns 0 or a negative errno,
 * and a failed call changes nothing.
 */

#ifndef SYSTEM_GUEST_MEMFD_KERNEL_H
#define SYSTEM_GUEST_MEMFD_KERNEL_H

typedef struct GuestMemfdFile GuestMemfdFile;
typedef struct GuestMemfdKernelOps GuestMemfdKernelOps;

/* One guest_memfd file.  Implementations embed it first in their own state. */
struct GuestMemfdFile {
    const GuestMemfdKernelOps *ops;
    uint64_t size;          /* bytes, a multiple of page_size */
    uint64_t page_size;     /* folio size of the file: 4 KiB, 2 MiB or 1 GiB */
    bool init_shared;       /* every page started shared */
    int fd;                 /* what QEMU mmaps (MAP_SHARED) for shared pages */
};

struct GuestMemfdKernelOps {

    /*
     * Make [offset, offset + size) private (@to_private) or shared.  offset
     * and size are 4 KiB aligned and inside the file.  Returns 0 when every
     * page has the requested state (pages already in it included).  On
     * -EAGAIN a page in the range still has references (a pin, a transient
     * reference) and *error_offset is set to the file offset of the first
     * such page, rounded down to its folio but not below @offset (the
     * kernel's rule); nothing was converted.  Other errors: -EINVAL (bad
     * range), -ENOMEM (split or bookkeeping failed).
     */
    int (*convert)(GuestMemfdFile *f, uint64_t offset, uint64_t size,
                   bool to_private, uint64_t *error_offset);

    /*
     * fallocate(PUNCH_HOLE | KEEP_SIZE): whole folios in the range return
     * to the pool, partial folios are zeroed; shared/private state is kept.
     * -EAGAIN when a whole folio in the range is still referenced.
     */
    int (*punch_hole)(GuestMemfdFile *f, uint64_t offset, uint64_t size);

    /* fallocate(KEEP_SIZE): allocate the folios backing the range. */
    int (*allocate)(GuestMemfdFile *f, uint64_t offset, uint64_t size);

    /*
     * Drop QEMU's reference to the file.  Folios still referenced elsewhere
     * (pins) are freed when their last reference goes.
     */
    void (*close)(GuestMemfdFile *f);
};

static inline int guest_memfd_convert(GuestMemfdFile *f, uint64_t offset,
                                      uint64_t size, bool to_private,
                                      uint64_t *error_offset)
{
    return f->ops->convert(f, offset, size, to_private, error_offset);
}

static inline int guest_memfd_punch_hole(GuestMemfdFile *f, uint64_t offset,
                                         uint64_t size)
{
    return f->ops->punch_hole(f, offset, size);
}

static inline int guest_memfd_allocate(GuestMemfdFile *f, uint64_t offset,
                                       uint64_t size)
{
    return f->ops->allocate(f, offset, size);
}

static inline void guest_memfd_close(GuestMemfdFile *f)
{
    f->ops->close(f);
}

/*
 * The null kernel (system/guest-memfd-null.c, linked into tests and
 * benchmarks only): accepts every call and does nothing.  Its fd is -1: it
 * cannot be mapped.
 */
GuestMemfdFile *guest_memfd_null_create(uint64_t size, uint64_t page_size,
                                        bool init_shared);

#endif
