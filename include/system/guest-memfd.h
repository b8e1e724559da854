/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * In-place guest_memfd page-state core
 *
 * Every memory-backend-guest-memfd object registers one GuestMemfdRegion:
 * its guest_memfd file, the RAMBlock that maps it, and QEMU's view of which
 * 4 KiB pages are shared and which are private.  Every conversion, whatever
 * asked for it (a guest page-state request, a memory fault, QMP), goes
 * through guest_memfd_convert_gpa() or guest_memfd_convert_ram(), which call
 * the kernel (or its model) and keep that view exactly equal to what the
 * kernel did.
 */

#ifndef SYSTEM_GUEST_MEMFD_H
#define SYSTEM_GUEST_MEMFD_H

#include "exec/hwaddr.h"
#include "system/guest-memfd-state.h"

typedef struct GuestMemfdRegion GuestMemfdRegion;
typedef struct HostMemoryBackend HostMemoryBackend;
typedef struct MemoryRegion MemoryRegion;

/* Register @file, owned by @backend; @variant names the kernel interface. */
GuestMemfdRegion *guest_memfd_region_new(HostMemoryBackend *backend,
                                         GuestMemfdFile *file,
                                         const char *variant);
/* The RAM MemoryRegion that maps the file, once it exists. */
void guest_memfd_region_set_mr(GuestMemfdRegion *r, MemoryRegion *mr);
/* Unregister and close the file. */
void guest_memfd_region_free(GuestMemfdRegion *r);

GuestMemfdRegion *guest_memfd_region_find(MemoryRegion *mr);
GuestMemfdFile *guest_memfd_region_file(GuestMemfdRegion *r);

/*
 * Convert [offset, offset + size) of the region's file.  Returns true when
 * the whole range has the requested state.  On failure @errp says why,
 * *done (if not NULL) is the number of bytes from @offset that were
 * converted, and the region's state equals what the kernel did.
 */
bool guest_memfd_convert_ram(GuestMemfdRegion *r, uint64_t offset,
                             uint64_t size, bool to_private, uint64_t *done,
                             Error **errp);

/*
 * Convert a guest-physical range.  The whole range must be RAM of in-place
 * guest_memfd backends (it may cross regions); it is validated before
 * anything changes.  *done as above, counted from @gpa.
 */
bool guest_memfd_convert_gpa(hwaddr gpa, uint64_t size, bool to_private,
                             uint64_t *done, Error **errp);

/* Is the whole range in-place guest_memfd RAM (what convert_gpa needs)? */
bool guest_memfd_range_is_convertible(hwaddr gpa, uint64_t size,
                                      Error **errp);

/*
 * guest_memfd_access_denied(), the memory API's guard on private pages, is
 * declared in exec/memory.h, whose inline fast path calls it.  The region
 * of in-place guest_memfd RAM is found from the region's owner, the
 * backend (NULL until the backend has registered it).
 */
GuestMemfdRegion *guest_memfd_backend_region(Object *backend);

/*
 * RamDiscardManager of the backend's RAM (VFIO and other listeners):
 * shared pages are "populated", private pages "discarded".  Listeners are
 * told to drop pages before they become private and to map them once they
 * are shared.
 */
typedef struct RamDiscardListener RamDiscardListener;
bool guest_memfd_rdm_is_populated(GuestMemfdRegion *r,
                                  const MemoryRegionSection *section);
int guest_memfd_rdm_replay(GuestMemfdRegion *r, MemoryRegionSection *section,
                           bool populated,
                           int (*fn)(MemoryRegionSection *s, void *opaque),
                           void *opaque);
void guest_memfd_rdm_register(GuestMemfdRegion *r, RamDiscardListener *rdl,
                              MemoryRegionSection *section);
void guest_memfd_rdm_unregister(GuestMemfdRegion *r, RamDiscardListener *rdl);

/* Page state of one 4 KiB page (tests, debugging). */
bool guest_memfd_page_is_private(GuestMemfdRegion *r, uint64_t offset);
void guest_memfd_region_counters(GuestMemfdRegion *r, GuestMemfdCounters *c);
/* All pages back to the file's initial state (system reset). */
void guest_memfd_region_reset(GuestMemfdRegion *r);

#endif
