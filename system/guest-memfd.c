/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * In-place guest_memfd page-state core
 *
 * One GuestMemfdRegion per guest_memfd file that RAM maps in place: the
 * file's page state (guest-memfd-state.c), attached to that RAM, and what
 * the rest of QEMU needs from it: guest-physical ranges resolved to
 * regions and validated before anything changes, the memory-API guard on
 * private pages, the migration blocker and reset.  The backend creates and
 * frees a region; nothing here calls it.  Listeners (guest-memfd-rdm.c)
 * and the management commands (guest-memfd-qmp.c) are beside it.
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qemu/error-report.h"
#include "qemu/main-loop.h"
#include "migration/blocker.h"
#include "qom/object.h"
#include "exec/address-spaces.h"
#include "exec/memory.h"
#include "guest-memfd-internal.h"
#include "trace.h"

/* Main loop: keep the migration blocker in line with the page state. */
static void region_update_blocker(void *opaque)
{
    GuestMemfdRegion *r = opaque;
    bool has_private = guest_memfd_state_has_private(&r->state);
    Error *err = NULL;

    if (has_private && !r->migration_blocker) {
        error_setg(&r->migration_blocker, "guest_memfd %s holds private"
                   " pages, which cannot be migrated", r->state.name);
        if (migrate_add_blocker(&r->migration_blocker, &err) < 0) {
            warn_report_err(err);
        }
    } else if (!has_private && r->migration_blocker) {
        migrate_del_blocker(&r->migration_blocker);
    }
}

static void region_private_changed(void *opaque)
{
    GuestMemfdRegion *r = opaque;

    qemu_bh_schedule(r->blocker_bh);
}

GuestMemfdRegion *guest_memfd_region_new(GuestMemfdFile *file,
                                         MemoryRegion *mr, const char *name,
                                         const char *variant)
{
    GuestMemfdRegion *r = GUEST_MEMFD_REGION(object_new(
                                                 TYPE_GUEST_MEMFD_REGION));

    r->variant = g_strdup(variant);
    guest_memfd_state_init(&r->state, file, name);
    qemu_mutex_init(&r->listeners_lock);
    QLIST_INIT(&r->listeners);
    guest_memfd_rdm_init(r);
    r->blocker_bh = qemu_bh_new(region_update_blocker, r);
    r->state.private_changed = region_private_changed;
    r->state.opaque = r;
    qemu_bh_schedule(r->blocker_bh);
    /*
     * Attached to the RAM: listeners (VFIO), migration and dump find it as
     * the RamDiscardManager, and the memory API's inline check reads the
     * page state from the region's bitmap.
     */
    memory_region_set_ram_discard_manager(mr, RAM_DISCARD_MANAGER(r));
    mr->guest_memfd_shared = r->state.shared.bits;
    trace_guest_memfd_region_new(r->state.name, file->size, file->page_size,
                                 variant);
    return r;
}

void guest_memfd_region_free(GuestMemfdRegion *r)
{
    if (!r) {
        return;
    }
    trace_guest_memfd_region_free(r->state.name);
    /*
     * The RAM region went first, with its listeners: nothing reaches the
     * region any more, and there is nothing to detach it from.
     */
    assert(QLIST_EMPTY(&r->listeners));
    qemu_bh_delete(r->blocker_bh);
    migrate_del_blocker(&r->migration_blocker);
    guest_memfd_rdm_destroy(r);
    guest_memfd_state_destroy(&r->state);
    qemu_mutex_destroy(&r->listeners_lock);
    g_free(r->variant);
    object_unref(OBJECT(r));
}

GuestMemfdRegion *guest_memfd_region_of(MemoryRegion *mr)
{
    /*
     * Only a region's RAM carries a page-state bitmap, and its region is
     * its RamDiscardManager: no checked cast on the memory API's path.
     */
    return mr->guest_memfd_shared ?
           (GuestMemfdRegion *)memory_region_get_ram_discard_manager(mr) :
           NULL;
}

GuestMemfdFile *guest_memfd_region_file(GuestMemfdRegion *r)
{
    return r->state.file;
}

static bool find_in_place_ram(Int128 start, Int128 len,
                              const MemoryRegion *mr,
                              hwaddr offset_in_region, void *opaque)
{
    if (mr->guest_memfd_shared) {
        *(const MemoryRegion **)opaque = mr;
        return true;
    }
    return false;
}

bool guest_memfd_dma_range_private(AddressSpace *as, hwaddr addr,
                                   hwaddr len)
{
    RCU_READ_LOCK_GUARD();
    while (len) {
        hwaddr xlat, l = len;
        MemoryRegion *mr = address_space_translate(as, addr, &xlat, &l, false,
                                                   MEMTXATTRS_UNSPECIFIED);

        if (!l) {
            return false;
        }
        if (guest_memfd_access_denied(mr, xlat, l)) {
            return true;
        }
        addr += l;
        len -= l;
    }
    return false;
}

const char *guest_memfd_ram_in(AddressSpace *as)
{
    const MemoryRegion *found = NULL;

    RCU_READ_LOCK_GUARD();
    flatview_for_each_range(address_space_to_flatview(as), find_in_place_ram,
                            &found);
    return found ? memory_region_name(found) : NULL;
}

bool guest_memfd_map_ref(MemoryRegion *mr, hwaddr offset, hwaddr len)
{
    GuestMemfdRegion *r = guest_memfd_region_of(mr);
    bool mapped;

    if (!r || !len) {
        return true;
    }
    mapped = guest_memfd_state_map(&r->state, offset, len);
    if (!mapped) {
        trace_guest_memfd_access_denied(r->state.name, offset, len);
    }
    return mapped;
}

void guest_memfd_map_unref(MemoryRegion *mr, hwaddr offset, hwaddr len)
{
    GuestMemfdRegion *r = guest_memfd_region_of(mr);

    if (r && len) {
        guest_memfd_state_unmap(&r->state, offset, len);
    }
}

bool guest_memfd_range_has_private(MemoryRegion *mr, hwaddr offset,
                                   hwaddr len)
{
    GuestMemfdRegion *r = guest_memfd_region_of(mr);
    bool denied;

    if (!r || !len || offset >= r->state.file->size) {
        return false;
    }
    len = MIN(len, r->state.file->size - offset);
    denied = guest_memfd_state_any_private(&r->state, offset, len);
    if (denied) {
        trace_guest_memfd_access_denied(r->state.name, offset, len);
    }
    return denied;
}

typedef struct GpaPiece {
    MemoryRegion *mr;           /* referenced while the piece is in use */
    GuestMemfdRegion *region;
    uint64_t offset;
    uint64_t size;
} GpaPiece;

static void gpa_piece_clear(gpointer data)
{
    memory_region_unref(((GpaPiece *)data)->mr);
}

static GArray *gpa_pieces_new(void)
{
    GArray *pieces = g_array_new(false, false, sizeof(GpaPiece));

    g_array_set_clear_func(pieces, gpa_piece_clear);
    return pieces;
}

/*
 * Split [gpa, gpa + size) into @pieces of regions, each holding a
 * reference to its RAM (a vCPU converts without the BQL, while a DIMM may
 * go).  Stops at the first part that is not in-place guest_memfd RAM (or,
 * with @one_region, of another region than the first): -EFAULT, @errp
 * set, and @pieces holding what came before it; -EINVAL if the range
 * itself is bad.
 */
static int gpa_resolve(hwaddr gpa, uint64_t size, bool one_region,
                       GArray *pieces, Error **errp)
{
    hwaddr cur = gpa, end = gpa + size;

    if (!size || !QEMU_IS_ALIGNED(gpa | size, GUEST_MEMFD_PAGE_SIZE) ||
        end < gpa) {
        error_setg(errp, "range 0x%" HWADDR_PRIx "+0x%" PRIx64 " is not a"
                   " non-empty, 4 KiB aligned guest-physical range", gpa,
                   size);
        return -EINVAL;
    }
    while (cur < end) {
        MemoryRegionSection s = memory_region_find(get_system_memory(), cur,
                                                   end - cur);
        GpaPiece p = {
            .mr = s.mr,
            .region = s.mr ? guest_memfd_region_of(s.mr) : NULL,
            .offset = s.offset_within_region,
            .size = int128_get64(s.size),
        };
        bool at_cur = s.mr && s.offset_within_address_space == cur;

        if (!at_cur || !p.region) {
            error_setg(errp, "guest-physical address 0x%" HWADDR_PRIx
                       " is not in-place guest_memfd RAM (%s)", cur,
                       at_cur ? memory_region_name(s.mr) : "unassigned");
        } else if (!p.size ||
                   !QEMU_IS_ALIGNED(p.offset | p.size, GUEST_MEMFD_PAGE_SIZE)) {
            error_setg(errp, "guest-physical address 0x%" HWADDR_PRIx
                       " maps RAM at an unaligned offset", cur);
        } else if (one_region && pieces->len &&
                   p.region != g_array_index(pieces, GpaPiece, 0).region) {
            error_setg(errp, "guest-physical address 0x%" HWADDR_PRIx
                       " is guest_memfd %s, not %s as the start of the"
                       " range", cur, p.region->state.name,
                       g_array_index(pieces, GpaPiece, 0).region->state.name);
        } else {
            g_array_append_val(pieces, p);
            cur += p.size;
            continue;
        }
        if (s.mr) {
            memory_region_unref(s.mr);
        }
        return -EFAULT;
    }
    return 0;
}

bool guest_memfd_range_is_convertible(hwaddr gpa, uint64_t size,
                                      Error **errp)
{
    g_autoptr(GArray) pieces = gpa_pieces_new();

    return !gpa_resolve(gpa, size, false, pieces, errp);
}

static int convert_pieces(GArray *pieces, bool to_private, uint64_t *done,
                          Error **errp)
{
    uint64_t total = 0;

    for (guint i = 0; i < pieces->len; i++) {
        GpaPiece *p = &g_array_index(pieces, GpaPiece, i);
        uint64_t piece_done;
        int ret = guest_memfd_rdm_convert(p->region, p->offset, p->size,
                                          to_private, &piece_done, errp);

        total += piece_done;
        if (done) {
            *done = total;
        }
        if (ret) {
            return ret;
        }
    }
    return 0;
}

int guest_memfd_convert_gpa(hwaddr gpa, uint64_t size, bool to_private,
                            uint64_t *done, Error **errp)
{
    g_autoptr(GArray) pieces = gpa_pieces_new();
    int ret;

    if (done) {
        *done = 0;
    }
    ret = gpa_resolve(gpa, size, false, pieces, errp);
    return ret ? ret : convert_pieces(pieces, to_private, done, errp);
}

int guest_memfd_convert_guest_request(hwaddr gpa, uint64_t size,
                                      bool to_private, Error **errp)
{
    g_autoptr(GArray) pieces = gpa_pieces_new();
    int ret = gpa_resolve(gpa, size, true, pieces, errp);

    return ret ? ret : convert_pieces(pieces, to_private, NULL, errp);
}

bool guest_memfd_convert_memory(hwaddr gpa, uint64_t size, bool to_private,
                                int *ret)
{
    g_autoptr(GArray) pieces = gpa_pieces_new();
    Error *err = NULL;

    if (gpa_resolve(gpa, size, false, pieces, &err)) {
        if (!pieces->len) {
            /* Not ours: KVM's usual path. */
            error_free(err);
            return false;
        }
        if (!to_private) {
            /*
             * What follows the guest_memfd RAM (MMIO, a hole) is shared
             * anyway: KVM's usual path accepts it too (TDX guests convert
             * MMIO ranges to shared).
             */
            error_free(err);
            err = NULL;
        }
    }
    *ret = 0;
    if (err || convert_pieces(pieces, to_private, NULL, &err)) {
        error_report_err(err);
        *ret = -EINVAL;
    }
    return true;
}

void guest_memfd_region_reset(GuestMemfdRegion *r)
{
    GuestMemfdFile *f = r->state.file;
    Error *err = NULL;
    int ret;

    trace_guest_memfd_region_reset(r->state.name);
    if (guest_memfd_rdm_convert(r, 0, f->size, !f->init_shared, NULL,
                                &err)) {
        warn_reportf_err(err, "system reset: ");
    }
    ret = guest_memfd_punch_hole(f, 0, f->size);
    if (ret) {
        warn_report("system reset: guest_memfd %s: discarding contents"
                    " failed: %s", r->state.name, strerror(-ret));
    }
}
