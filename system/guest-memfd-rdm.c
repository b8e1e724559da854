/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The RamDiscardManager of in-place guest_memfd RAM
 *
 * To whoever maps guest RAM elsewhere (VFIO into an IOMMU) shared pages are
 * "populated" and private pages "discarded": a listener drops pages before
 * they become private, so that its references do not block the
 * conversion, and maps pages once they are shared.  As with virtio-mem, a
 * listener may refuse new pages; then the listeners already told drop them
 * again and the pages go back to private, so that nobody maps a page the
 * others think private.
 *
 * Listeners are told of shared pages in units: a run of shared pages that
 * does not cross a GUEST_MEMFD_DMA_UNIT boundary, which a listener maps as
 * one piece and can only drop whole (VFIO: one DMA mapping, and type1
 * cannot unmap part of one).  The granularity VFIO is given is the unit
 * size, so it maps each unit with one call.  Pages that become shared
 * are new units; a page that becomes private splits its unit: the unit is
 * dropped before the kernel converts and what stays shared of it is mapped
 * again right after (the only time a device's DMA to a shared page can
 * fault: unit_split_ns_max).
 *
 * Conversions come from vCPU threads without the BQL (KVM exits) as well
 * as from the main loop, so everything here runs under the region's
 * listeners_lock; the order of all the locks is written once, at
 * GuestMemfdRegion (guest-memfd-internal.h).
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qemu/error-report.h"
#include "qemu/lockable.h"
#include "qemu/module.h"
#include "qemu/timer.h"
#include "exec/memory.h"
#include "guest-memfd-internal.h"
#include "trace.h"

/* A range of the region's file, in bytes. */
typedef struct FileRange {
    uint64_t offset;
    uint64_t len;
} FileRange;

/* Narrow @s to [offset, offset + len) of its region; false if empty. */
static bool section_clip(MemoryRegionSection *s, uint64_t offset,
                         uint64_t len)
{
    uint64_t start = MAX(s->offset_within_region, offset);
    uint64_t end = MIN(s->offset_within_region + int128_get64(s->size),
                       offset + len);

    if (start >= end) {
        return false;
    }
    s->offset_within_address_space += start - s->offset_within_region;
    s->offset_within_region = start;
    s->size = int128_make64(end - start);
    return true;
}

/* The runs of pages in state @shared in [offset, offset + len). */
static GArray *ranges_in_state(GuestMemfdRegion *r, uint64_t offset,
                               uint64_t len, bool shared)
{
    GArray *runs = g_array_new(false, false, sizeof(FileRange));
    uint64_t end = offset + len;
    FileRange run = { .offset = offset };

    while (run.offset < end &&
           guest_memfd_state_next_run(&r->state, &run.offset, end, shared,
                                      &run.len)) {
        g_array_append_val(runs, run);
        run.offset += run.len;
    }
    return runs;
}

/* Units */

#define PAGES_PER_UNIT (GUEST_MEMFD_DMA_UNIT / GUEST_MEMFD_PAGE_SIZE)

static uint64_t region_pages(GuestMemfdRegion *r)
{
    return r->state.file->size / GUEST_MEMFD_PAGE_SIZE;
}

/* The end of the unit that starts at page @p. */
static uint64_t unit_end(GuestMemfdRegion *r, uint64_t p)
{
    uint64_t limit = MIN(ROUND_UP(p + 1, PAGES_PER_UNIT), region_pages(r));

    return MIN(find_next_bit(r->unit_starts, limit, p + 1),
               find_next_zero_bit(r->state.shared.bits, limit, p + 1));
}

/* Make [offset, offset + len), all shared, new units: one per block. */
static void units_add(GuestMemfdRegion *r, GArray *runs, uint64_t offset,
                      uint64_t len)
{
    uint64_t p = offset / GUEST_MEMFD_PAGE_SIZE;
    uint64_t end = p + len / GUEST_MEMFD_PAGE_SIZE;

    while (p < end) {
        uint64_t next = MIN(ROUND_UP(p + 1, PAGES_PER_UNIT), end);
        FileRange unit = {
            .offset = p * GUEST_MEMFD_PAGE_SIZE,
            .len = (next - p) * GUEST_MEMFD_PAGE_SIZE,
        };

        set_bit(p, r->unit_starts);
        r->units++;
        if (runs) {
            g_array_append_val(runs, unit);
        }
        p = next;
    }
}

/* Make each of @runs, all shared, new units (appended to @units if set). */
static void units_add_runs(GuestMemfdRegion *r, GArray *units, GArray *runs)
{
    for (guint i = 0; i < runs->len; i++) {
        FileRange *run = &g_array_index(runs, FileRange, i);

        units_add(r, units, run->offset, run->len);
    }
}

/* The units that hold pages of [offset, offset + len). */
static GArray *units_of(GuestMemfdRegion *r, uint64_t offset, uint64_t len)
{
    GArray *units = g_array_new(false, false, sizeof(FileRange));
    uint64_t p = offset / GUEST_MEMFD_PAGE_SIZE;
    uint64_t end = DIV_ROUND_UP(offset + len, GUEST_MEMFD_PAGE_SIZE);

    if (p < end && test_bit(p, r->state.shared.bits)) {
        /* The unit holding the first page starts in its block. */
        while (p % PAGES_PER_UNIT && !test_bit(p, r->unit_starts)) {
            p--;
        }
    } else {
        p = find_next_bit(r->unit_starts, end, p);
    }
    while (p < end) {
        uint64_t e = unit_end(r, p);
        FileRange unit = {
            .offset = p * GUEST_MEMFD_PAGE_SIZE,
            .len = (e - p) * GUEST_MEMFD_PAGE_SIZE,
        };

        g_array_append_val(units, unit);
        p = find_next_bit(r->unit_starts, end, e);
    }
    return units;
}

static GArray *section_units(GuestMemfdRegion *r,
                             const MemoryRegionSection *s)
{
    return units_of(r, s->offset_within_region, int128_get64(s->size));
}

void guest_memfd_rdm_init(GuestMemfdRegion *r)
{
    g_autoptr(GArray) shared = ranges_in_state(r, 0, r->state.file->size, true);

    r->unit_starts = bitmap_new(region_pages(r));
    r->units = 0;
    units_add_runs(r, NULL, shared);
}

void guest_memfd_rdm_destroy(GuestMemfdRegion *r)
{
    g_free(r->unit_starts);
    r->unit_starts = NULL;
}

uint64_t guest_memfd_rdm_mappings(GuestMemfdRegion *r)
{
    RamDiscardListener *rdl;
    uint64_t n = 0;

    QEMU_LOCK_GUARD(&r->listeners_lock);
    QLIST_FOREACH(rdl, &r->listeners, next) {
        g_autoptr(GArray) units = section_units(r, rdl->section);

        n += units->len;
    }
    return n;
}

/*
 * Tell @rdl to map (@populate) or drop @run, as far as it meets its
 * section; false if the listener refused to map it.
 */
static bool notify_range(RamDiscardListener *rdl, const FileRange *run,
                         bool populate)
{
    MemoryRegionSection s = *rdl->section;

    if (!section_clip(&s, run->offset, run->len)) {
        return true;
    }
    if (!populate) {
        rdl->notify_discard(rdl, &s);
        return true;
    }
    return !rdl->notify_populate(rdl, &s);
}

/*
 * Tell @rdl of the first @n of @runs.  Returns the number told, short of
 * @n if the listener refused a run, which it then holds none of.
 */
static guint notify_ranges(RamDiscardListener *rdl, GArray *runs, guint n,
                           bool populate)
{
    for (guint i = 0; i < n; i++) {
        if (!notify_range(rdl, &g_array_index(runs, FileRange, i), populate)) {
            return i;
        }
    }
    return n;
}

/*
 * Tell every listener of every run.  For pages that must stay mapped: a
 * listener that refuses one run is still told of the others.  Refusals
 * are counted and reported once per region: a guest that scatters
 * private pages can run a container out of mappings, and must not flood
 * the log while it does.
 */
static void notify_all(GuestMemfdRegion *r, GArray *runs, bool populate)
{
    RamDiscardListener *rdl;

    QLIST_FOREACH(rdl, &r->listeners, next) {
        for (guint i = 0; i < runs->len; i++) {
            FileRange *run = &g_array_index(runs, FileRange, i);

            if (notify_range(rdl, run, populate)) {
                continue;
            }
            if (!r->units_refused++) {
                warn_report("guest_memfd %s: a RamDiscardListener (VFIO)"
                            " cannot map the shared pages at 0x%" PRIx64
                            "+0x%" PRIx64 ", and a device's DMA to them"
                            " faults; query-guest-memfd counts such pieces"
                            " (dma-refused)", r->state.name, run->offset,
                            run->len);
            }
        }
    }
}

/*
 * Tell every listener to map @runs.  If one refuses, the listeners told
 * before it, and its own runs up to the refused one, are dropped again:
 * false, and no listener maps any of @runs.
 */
static bool populate_all_or_none(GuestMemfdRegion *r, GArray *runs)
{
    RamDiscardListener *rdl, *undo;

    QLIST_FOREACH(rdl, &r->listeners, next) {
        guint told = notify_ranges(rdl, runs, runs->len, true);

        if (told < runs->len) {
            notify_ranges(rdl, runs, told, false);
            QLIST_FOREACH(undo, &r->listeners, next) {
                if (undo == rdl) {
                    break;
                }
                notify_ranges(undo, runs, runs->len, false);
            }
            return false;
        }
    }
    return true;
}

/* Clip @runs, in order, to [offset, offset + len). */
static void runs_clip(GArray *runs, uint64_t offset, uint64_t len)
{
    for (guint i = 0; i < runs->len; i++) {
        FileRange *run = &g_array_index(runs, FileRange, i);
        uint64_t start = MAX(run->offset, offset);
        uint64_t end = MIN(run->offset + run->len, offset + len);

        if (start >= end) {
            g_array_set_size(runs, i);
            return;
        }
        run->offset = start;
        run->len = end - start;
    }
}

/* Forget the units that start inside @runs. */
static void units_forget(GuestMemfdRegion *r, GArray *runs)
{
    for (guint i = 0; i < runs->len; i++) {
        FileRange *run = &g_array_index(runs, FileRange, i);
        uint64_t p = run->offset / GUEST_MEMFD_PAGE_SIZE;
        uint64_t n = run->len / GUEST_MEMFD_PAGE_SIZE;

        r->units -= bitmap_count_one_with_offset(r->unit_starts, p, n);
        bitmap_clear(r->unit_starts, p, n);
    }
}

/* Undo a conversion to shared that a listener refused; false if stuck. */
static bool undo_shared(GuestMemfdRegion *r, GArray *runs)
{
    g_autoptr(GArray) stuck = g_array_new(false, false, sizeof(FileRange));
    g_autoptr(GArray) units = g_array_new(false, false, sizeof(FileRange));

    for (guint i = 0; i < runs->len; i++) {
        FileRange *run = &g_array_index(runs, FileRange, i);
        uint64_t cur = run->offset, end = run->offset + run->len;
        /* Once, not retried: this runs under the listeners' lock. */
        int ret = guest_memfd_state_convert_step(&r->state, &cur, end, true);

        if (ret) {
            g_autoptr(GArray) left = ranges_in_state(r, run->offset,
                                                     run->len, true);

            warn_report("guest_memfd %s: undoing a refused conversion to"
                        " shared: 0x%" PRIx64 "+0x%" PRIx64 " stays shared"
                        " (%s)", r->state.name, cur, end - cur,
                        strerror(-ret));
            g_array_append_vals(stuck, left->data, left->len);
        }
    }
    /* Pages that stayed shared are offered again: shared means mapped. */
    units_add_runs(r, units, stuck);
    notify_all(r, units, true);
    return !stuck->len;
}

/* New units for the shared pages of each of @units, told to listeners. */
static void units_restore(GuestMemfdRegion *r, GArray *units)
{
    g_autoptr(GArray) added = g_array_new(false, false, sizeof(FileRange));

    for (guint i = 0; i < units->len; i++) {
        FileRange *unit = &g_array_index(units, FileRange, i);
        g_autoptr(GArray) shared = ranges_in_state(r, unit->offset,
                                                   unit->len, true);

        units_add_runs(r, added, shared);
    }
    notify_all(r, added, true);
}

/*
 * One attempt at turning [*cur, end) private.  Before pages turn private,
 * nobody maps them: the units that hold any of the range are dropped whole
 * (type1 cannot unmap part of a mapping), then the kernel converts, then
 * what stays shared of each unit is mapped again, as one unit per run, so
 * that between attempts every shared page is mapped.  An attempt that
 * converted nothing leaves the units as they were.  Between the drop and
 * the new maps a device's DMA to those shared pages faults: that window is
 * timed.
 */
static int private_step(void *opaque, uint64_t *cur, uint64_t end,
                        bool to_private)
{
    GuestMemfdRegion *r = opaque;
    uint64_t offset = *cur;
    g_autoptr(GArray) units = NULL;
    int64_t start, ns;
    int ret;

    QEMU_LOCK_GUARD(&r->listeners_lock);
    units = units_of(r, offset, end - offset);
    start = get_clock();
    notify_all(r, units, false);
    units_forget(r, units);
    ret = guest_memfd_state_convert_step(&r->state, cur, end, true);
    units_restore(r, units);
    ns = get_clock() - start;
    for (guint i = 0; i < units->len && !QLIST_EMPTY(&r->listeners); i++) {
        FileRange *unit = &g_array_index(units, FileRange, i);

        /* A unit reaching past the range kept pages that were remapped. */
        if (unit->offset < offset || unit->offset + unit->len > end) {
            r->unit_splits++;
            r->unit_split_ns_max = MAX(r->unit_split_ns_max, ns);
            trace_guest_memfd_rdm_unit_split(r->state.name, unit->offset,
                                             unit->len, ns);
        }
    }
    return ret;
}

static int convert_to_shared(GuestMemfdRegion *r, uint64_t offset,
                             uint64_t size, uint64_t *done, Error **errp)
{
    /* Only pages that were private are new to the listeners. */
    g_autoptr(GArray) runs = ranges_in_state(r, offset, size, false);
    g_autoptr(GArray) units = g_array_new(false, false, sizeof(FileRange));
    uint64_t converted = 0;
    int ret;

    ret = guest_memfd_state_convert(&r->state, offset, size, false,
                                    &converted, errp);
    runs_clip(runs, offset, converted);
    units_add_runs(r, units, runs);
    /* Once they are shared, every listener maps them. */
    if (!populate_all_or_none(r, units)) {
        if (!ret) {
            error_setg(errp, "guest_memfd %s: a RamDiscardListener (VFIO)"
                       " cannot map the pages made shared at 0x%" PRIx64,
                       r->state.name, offset);
            ret = -ENOMEM;
        }
        /* Back to private: nobody maps them, nobody may. */
        units_forget(r, units);
        if (undo_shared(r, runs)) {
            converted = 0;
        } else {
            /* Some stayed shared: done is what is shared from @offset. */
            uint64_t pos = offset, len;

            if (guest_memfd_state_next_run(&r->state, &pos,
                                           offset + converted, false, &len)) {
                converted = pos - offset;
            }
        }
    }
    if (done) {
        *done = converted;
    }
    return ret;
}

int guest_memfd_rdm_convert(GuestMemfdRegion *r, uint64_t offset,
                            uint64_t size, bool to_private,
                            uint64_t *done, Error **errp)
{
    if (to_private) {
        /* Each attempt locks; the delay before a retry does not. */
        return guest_memfd_state_convert_by(&r->state, offset, size, true,
                                            private_step, r, done, errp);
    }
    if (!guest_memfd_state_range_ok(&r->state, offset, size)) {
        /* A range the state refuses as it is. */
        return guest_memfd_state_convert(&r->state, offset, size, false,
                                         done, errp);
    }
    /* The kernel never finds a page too referenced to share: no retry. */
    QEMU_LOCK_GUARD(&r->listeners_lock);
    return convert_to_shared(r, offset, size, done, errp);
}

/*
 * What VFIO maps in one piece at most.  Notifications are of 4 KiB pages,
 * but VFIO only uses this to cut what it is told to map, and no unit
 * crosses a unit boundary: each unit is one DMA mapping.
 */
static uint64_t rdm_get_min_granularity(const RamDiscardManager *rdm,
                                        const MemoryRegion *mr)
{
    return GUEST_MEMFD_DMA_UNIT;
}

static bool rdm_is_populated(const RamDiscardManager *rdm,
                             const MemoryRegionSection *section)
{
    GuestMemfdRegion *r = GUEST_MEMFD_REGION(rdm);
    uint64_t offset = section->offset_within_region, len;
    uint64_t end = offset + int128_get64(section->size);

    QEMU_LOCK_GUARD(&r->listeners_lock);
    return !guest_memfd_state_next_run(&r->state, &offset, end, false, &len);
}

/*
 * Hand each unit inside @section to @populate (which may stop the
 * replay), or each run of private pages to @discard.
 */
static int replay(const RamDiscardManager *rdm, MemoryRegionSection *section,
                  bool shared, ReplayRamPopulate populate,
                  ReplayRamDiscard discard, void *opaque)
{
    GuestMemfdRegion *r = GUEST_MEMFD_REGION(rdm);
    g_autoptr(GArray) runs = NULL;

    QEMU_LOCK_GUARD(&r->listeners_lock);
    runs = shared ? section_units(r, section) :
                    ranges_in_state(r, section->offset_within_region,
                                    int128_get64(section->size), false);
    for (guint i = 0; i < runs->len; i++) {
        FileRange *run = &g_array_index(runs, FileRange, i);
        MemoryRegionSection s = *section;
        int ret;

        section_clip(&s, run->offset, run->len);
        if (discard) {
            discard(&s, opaque);
            continue;
        }
        ret = populate(&s, opaque);
        if (ret) {
            return ret;
        }
    }
    return 0;
}

static int rdm_replay_populated(const RamDiscardManager *rdm,
                                MemoryRegionSection *section,
                                ReplayRamPopulate replay_fn, void *opaque)
{
    return replay(rdm, section, true, replay_fn, NULL, opaque);
}

static void rdm_replay_discarded(const RamDiscardManager *rdm,
                                 MemoryRegionSection *section,
                                 ReplayRamDiscard replay_fn, void *opaque)
{
    replay(rdm, section, false, NULL, replay_fn, opaque);
}

static void rdm_register_listener(RamDiscardManager *rdm,
                                  RamDiscardListener *rdl,
                                  MemoryRegionSection *section)
{
    GuestMemfdRegion *r = GUEST_MEMFD_REGION(rdm);
    g_autoptr(GArray) runs = NULL;
    guint told;

    QEMU_LOCK_GUARD(&r->listeners_lock);
    runs = section_units(r, section);
    rdl->section = memory_region_section_new_copy(section);
    QLIST_INSERT_HEAD(&r->listeners, rdl, next);
    told = notify_ranges(rdl, runs, runs->len, true);
    if (told < runs->len) {
        error_report("guest_memfd %s: a RamDiscardListener (VFIO) mapped"
                     " %u of the %u pieces of shared memory in its section",
                     r->state.name, told, runs->len);
    }
}

static void rdm_unregister_listener(RamDiscardManager *rdm,
                                    RamDiscardListener *rdl)
{
    GuestMemfdRegion *r = GUEST_MEMFD_REGION(rdm);
    g_autoptr(GArray) runs = NULL;

    QEMU_LOCK_GUARD(&r->listeners_lock);
    runs = section_units(r, rdl->section);
    notify_ranges(rdl, runs, runs->len, false);
    QLIST_REMOVE(rdl, next);
    memory_region_section_free_copy(rdl->section);
    rdl->section = NULL;
}

static void guest_memfd_region_class_init(ObjectClass *oc, void *data)
{
    RamDiscardManagerClass *rdmc = RAM_DISCARD_MANAGER_CLASS(oc);

    rdmc->get_min_granularity = rdm_get_min_granularity;
    rdmc->is_populated = rdm_is_populated;
    rdmc->replay_populated = rdm_replay_populated;
    rdmc->replay_discarded = rdm_replay_discarded;
    rdmc->register_listener = rdm_register_listener;
    rdmc->unregister_listener = rdm_unregister_listener;
}

/*
 * The region is a QOM object for this interface alone: it is the
 * RamDiscardManager of the RAM that maps its file, as virtio-mem is of
 * its memdev's.
 */
static const TypeInfo guest_memfd_region_info = {
    .name = TYPE_GUEST_MEMFD_REGION,
    .parent = TYPE_OBJECT,
    .instance_size = sizeof(GuestMemfdRegion),
    .class_init = guest_memfd_region_class_init,
    .interfaces = (InterfaceInfo[]) {
        { TYPE_RAM_DISCARD_MANAGER },
        { }
    },
};

static void guest_memfd_region_register_types(void)
{
    type_register_static(&guest_memfd_region_info);
}

type_init(guest_memfd_region_register_types);
