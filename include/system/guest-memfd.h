/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * In-place guest_memfd page-state core
 *
 * Every memory-backend-guest-memfd object creates one GuestMemfdRegion:
 * QEMU's view of which 4 KiB pages of its guest_memfd file are shared and
 * which are private.  The region attaches itself to the RAM MemoryRegion
 * that maps the file, as that region's RamDiscardManager (shared pages are
 * "populated"), which is where the memory core, KVM, VFIO and migration
 * find it; nothing here calls back into the backend.  Every conversion,
 * whatever asked for it (a guest page-state request, a memory fault, QMP),
 * goes through guest_memfd_convert_gpa(), which calls the kernel (or its
 * model) and keeps that view exactly equal to what the kernel did.
 */

#ifndef SYSTEM_GUEST_MEMFD_H
#define SYSTEM_GUEST_MEMFD_H

#include "exec/hwaddr.h"
#include "qom/object.h"
#include "system/guest-memfd-state.h"

#define TYPE_MEMORY_BACKEND_GUEST_MEMFD "memory-backend-guest-memfd"

#define TYPE_GUEST_MEMFD_REGION "guest-memfd-region"
OBJECT_DECLARE_SIMPLE_TYPE(GuestMemfdRegion, GUEST_MEMFD_REGION)

typedef struct MemoryRegion MemoryRegion;

/*
 * The page state of @file, which @mr maps, attached to @mr; @name is for
 * users (the backend's id), @variant names the kernel interface.  The
 * region does not own the file: its creator frees the region once @mr is
 * gone (no reader of the RAM is left), then closes the file.
 */
GuestMemfdRegion *guest_memfd_region_new(GuestMemfdFile *file,
                                         MemoryRegion *mr, const char *name,
                                         const char *variant);
void guest_memfd_region_free(GuestMemfdRegion *r);

/*
 * The region of in-place guest_memfd RAM @mr, or NULL if @mr is something
 * else.
 */
GuestMemfdRegion *guest_memfd_region_of(MemoryRegion *mr);
/* The file whose page state @r is. */
GuestMemfdFile *guest_memfd_region_file(GuestMemfdRegion *r);

/*
 * Convert a guest-physical range.  The whole range must be RAM of in-place
 * guest_memfd backends (it may cross regions); it is validated before
 * anything changes (-EINVAL: not a 4 KiB aligned range; -EFAULT: not all
 * in-place guest_memfd RAM).  Returns 0 when the whole range has the
 * requested state.  On failure returns a negative errno (the kernel's:
 * -EAGAIN for a page that stayed referenced, -EOPNOTSUPP where the kernel
 * cannot convert in place, -ENOMEM also when a listener cannot map new
 * shared pages), @errp says why, *done (if not NULL) is the number of
 * bytes from @gpa that were converted, and each region's state equals
 * what the kernel did.
 */
int guest_memfd_convert_gpa(hwaddr gpa, uint64_t size, bool to_private,
                            uint64_t *done, Error **errp);

/*
 * A guest's own request through its hypervisor (KVM_HC_MAP_GPA_RANGE): as
 * guest_memfd_convert_gpa(), but the range must lie in one backend, as a
 * kernel conversion acts on one file; -EFAULT otherwise.
 */
int guest_memfd_convert_guest_request(hwaddr gpa, uint64_t size,
                                      bool to_private, Error **errp);

/*
 * The name of the first in-place guest_memfd RAM region mapped in @as, or
 * NULL if there is none: for what maps guest RAM outside QEMU's memory
 * API (vhost back ends), which such RAM must be kept out of.
 */
const char *guest_memfd_ram_in(AddressSpace *as);

/*
 * Does [addr, addr + len) of @as hold a private page of in-place
 * guest_memfd RAM?  For DMA that cannot be mapped there (virtio buffers).
 */
bool guest_memfd_dma_range_private(AddressSpace *as, hwaddr addr,
                                   hwaddr len);

/* Is the whole range in-place guest_memfd RAM (what convert_gpa needs)? */
bool guest_memfd_range_is_convertible(hwaddr gpa, uint64_t size,
                                      Error **errp);

/*
 * kvm_convert_memory()'s share: false, having done nothing, when the range
 * does not start in in-place guest_memfd RAM (KVM's usual path handles
 * it); otherwise true, with *ret 0 when converted or -EINVAL, with the
 * error reported.  A conversion to shared may run on past the RAM (into
 * MMIO or a hole, shared anyway); a conversion to private may not.
 */
bool guest_memfd_convert_memory(hwaddr gpa, uint64_t size, bool to_private,
                                int *ret);

/* All pages back to the file's initial state (system reset). */
void guest_memfd_region_reset(GuestMemfdRegion *r);

#endif
