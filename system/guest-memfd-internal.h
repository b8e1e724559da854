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
#include "system/guest-memfd.h"

struct GuestMemfdRegion {
    HostMemoryBackend *backend;     /* owns the region and the file */
    char *variant;                  /* the kernel interface, for users */
    GuestMemfdState state;
    /* Private pages cannot migrate: blocked while there are any. */
    QEMUBH *blocker_bh;
    Error *migration_blocker;
    /*
     * RamDiscardManager listeners (VFIO): shared = populated.  The lock
     * covers every conversion and every replay, with or without the BQL,
     * and is held while listeners are told, outside the page state's lock.
     */
    QemuRecMutex listeners_lock;
    QLIST_HEAD(, RamDiscardListener) listeners;
};

/*
 * Convert, telling the listeners, if any: before pages become private and
 * after pages become shared; if one refuses new shared pages, undo the
 * conversion.  Arguments and result as guest_memfd_convert_ram().
 */
int guest_memfd_rdm_convert(GuestMemfdRegion *r, uint64_t offset,
                            uint64_t size, bool to_private,
                            uint64_t *done, Error **errp);

#endif
