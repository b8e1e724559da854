/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The page-state core's region, shared by its files: the core
 * (guest-memfd.c), its RamDiscardManager (guest-memfd-rdm.c) and its
 * management commands (guest-memfd-qmp.c), and by the RamDiscardManager's
 * unit test.  Nothing else looks inside.
 */

#ifndef SYSTEM_GUEST_MEMFD_INTERNAL_H
#define SYSTEM_GUEST_MEMFD_INTERNAL_H

#include "qemu/queue.h"
#include "qemu/units.h"
#include "system/guest-memfd.h"

/*
 * A QOM object (its type is defined with its RamDiscardManager, in
 * guest-memfd-rdm.c) whose life guest-memfd.c runs: guest_memfd_region_new()
 * and guest_memfd_region_free().
 */
struct GuestMemfdRegion {
    Object parent_obj;
    char *variant;                  /* the kernel interface, for users */
    GuestMemfdState state;
    /* Private pages cannot migrate: blocked while there are any. */
    QEMUBH *blocker_bh;
    Error *migration_blocker;
    /*
     * RamDiscardManager listeners (VFIO): shared = populated.  Locks,
     * outermost first; every path takes them in this order only:
     *  1. the BQL: QMP, the PSC device, memslot updates and reset convert
     *     with it; KVM exits (KVM_HC_MAP_GPA_RANGE, memory faults) convert
     *     on vCPU threads without it.
     *  2. listeners_lock: one attempt at a conversion, a replay, a
     *     listener's (un)registration.  Held while listeners are told, so
     *     a listener must neither take the BQL nor call back into us.
     *  3. the page state's lock (GuestMemfdState): its bitmap, counters and
     *     QEMU's own mappings (address_space_map(), on any thread).
     *  4. the kernel model's lock, inside each call into the model.
     * A conversion that waits to retry (a referenced page) holds none of
     * 2-4 while it waits; the BQL stays with a caller that holds it.  The
     * memory API reads the bitmap without a lock.
     */
    QemuMutex listeners_lock;
    QLIST_HEAD(, RamDiscardListener) listeners;
    /*
     * What the listeners are told to map, in pieces (guest-memfd-rdm.c):
     * a set bit marks the first page of a unit, which ends at the next
     * marked page, the next private page or the next
     * GUEST_MEMFD_DMA_UNIT boundary.
     */
    unsigned long *unit_starts;
    uint64_t units;
    /* Units split to make pages private, and the longest remap (ns). */
    uint64_t unit_splits;
    uint64_t unit_split_ns_max;
    /* Shared units a listener refused to map (its DMA to them faults). */
    uint64_t units_refused;
};

/*
 * The largest piece a listener is told to map at once: VFIO maps each as
 * one DMA mapping, so an all-shared guest needs one per 2 MiB (64 GiB fit
 * type1's default 65535), and dropping a page remaps at most 2 MiB.
 */
#define GUEST_MEMFD_DMA_UNIT    (2 * MiB)

/* The units of @r's current page state, and their end. */
void guest_memfd_rdm_init(GuestMemfdRegion *r);
void guest_memfd_rdm_destroy(GuestMemfdRegion *r);

/* Pieces the listeners hold in all (each listener its own): DMA mappings. */
uint64_t guest_memfd_rdm_mappings(GuestMemfdRegion *r);

/*
 * Convert [offset, offset + size) of the region's file, telling the
 * listeners, if any: before pages become private and after pages become
 * shared; if one refuses new shared pages, undo the conversion.  Result
 * and *done (counted from @offset) as guest_memfd_convert_gpa()'s.
 */
int guest_memfd_rdm_convert(GuestMemfdRegion *r, uint64_t offset,
                            uint64_t size, bool to_private,
                            uint64_t *done, Error **errp);

#endif
