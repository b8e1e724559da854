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
 * Conversions come from vCPU threads without the BQL (KVM exits) as well
 * as from the main loop, so everything here runs under the region's
 * listeners_lock, which is recursive: a listener may replay from its
 * callback.  Listeners are called with it held and must not take the BQL.
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qemu/error-report.h"
#include "qemu/lockable.h"
#include "exec/memory.h"
#include "guest-memfd-internal.h"

typedef struct Run {
    uint64_t offset;
    uint64_t len;
} Run;

static GuestMemfdRegion *rdm_region(const RamDiscardManager *rdm)
{
    return guest_memfd_backend_region(OBJECT(rdm));
}

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
static GArray *runs_of(GuestMemfdRegion *r, uint64_t offset, uint64_t len,
                       bool shared)
{
    GArray *runs = g_array_new(false, false, sizeof(Run));
    uint64_t end = offset + len;
    Run run = { .offset = offset };

    while (run.offset < end &&
           guest_memfd_state_next_run(&r->state, &run.offset, end, shared,
                                      &run.len)) {
        g_array_append_val(runs, run);
        run.offset += run.len;
    }
    return runs;
}

static GArray *section_runs(GuestMemfdRegion *r,
                            const MemoryRegionSection *s, bool shared)
{
    return runs_of(r, s->offset_within_region, int128_get64(s->size),
                   shared);
}

/*
 * Tell @rdl to map (@populate) or drop the first @n of @runs that meet its
 * section.  Returns the number told, short of @n if the listener refused a
 * run, which it then holds none of.
 */
static guint tell(RamDiscardListener *rdl, GArray *runs, guint n,
                  bool populate)
{
    for (guint i = 0; i < n; i++) {
        Run *run = &g_array_index(runs, Run, i);
        MemoryRegionSection s = *rdl->section;

        if (!section_clip(&s, run->offset, run->len)) {
            continue;
        }
        if (!populate) {
            rdl->notify_discard(rdl, &s);
        } else if (rdl->notify_populate(rdl, &s)) {
            return i;
        }
    }
    return n;
}

static void tell_all(GuestMemfdRegion *r, GArray *runs, bool populate)
{
    RamDiscardListener *rdl;

    QLIST_FOREACH(rdl, &r->listeners, next) {
        if (tell(rdl, runs, runs->len, populate) < runs->len) {
            warn_report("guest_memfd %s: a RamDiscardListener refused"
                        " shared pages it had before", r->state.name);
        }
    }
}

/*
 * Tell every listener to map @runs.  If one refuses, the listeners told
 * before it, and its own runs up to the refused one, are dropped again:
 * false, and no listener maps any of @runs.
 */
static bool populate_all(GuestMemfdRegion *r, GArray *runs)
{
    RamDiscardListener *rdl, *undo;

    QLIST_FOREACH(rdl, &r->listeners, next) {
        guint told = tell(rdl, runs, runs->len, true);

        if (told < runs->len) {
            tell(rdl, runs, told, false);
            QLIST_FOREACH(undo, &r->listeners, next) {
                if (undo == rdl) {
                    break;
                }
                tell(undo, runs, runs->len, false);
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
        Run *run = &g_array_index(runs, Run, i);
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

/* Undo a conversion to shared that a listener refused; false if stuck. */
static bool undo_shared(GuestMemfdRegion *r, GArray *runs)
{
    g_autoptr(GArray) stuck = g_array_new(false, false, sizeof(Run));

    for (guint i = 0; i < runs->len; i++) {
        Run *run = &g_array_index(runs, Run, i);
        Error *err = NULL;

        if (guest_memfd_state_convert(&r->state, run->offset, run->len, true,
                                      NULL, &err)) {
            g_autoptr(GArray) left = runs_of(r, run->offset, run->len, true);

            warn_reportf_err(err, "guest_memfd %s: undoing a refused"
                             " conversion to shared: ", r->state.name);
            g_array_append_vals(stuck, left->data, left->len);
        }
    }
    /* Pages that stayed shared are offered again: shared means mapped. */
    tell_all(r, stuck, true);
    return !stuck->len;
}

int guest_memfd_rdm_convert(GuestMemfdRegion *r, uint64_t offset,
                            uint64_t size, bool to_private,
                            uint64_t *done, Error **errp)
{
    g_autoptr(GArray) runs = NULL;
    uint64_t converted = 0;
    int ret;

    /* vCPU threads convert without the BQL (KVM exits): lock first. */
    QEMU_LOCK_GUARD(&r->listeners_lock);
    if (QLIST_EMPTY(&r->listeners) ||
        !guest_memfd_state_range_ok(&r->state, offset, size)) {
        /* Nobody to tell, or a range the state refuses as it is. */
        return guest_memfd_state_convert(&r->state, offset, size, to_private,
                                         done, errp);
    }
    if (to_private) {
        runs = runs_of(r, offset, size, true);
        tell_all(r, runs, false);
        ret = guest_memfd_state_convert(&r->state, offset, size, true, done,
                                        errp);
        if (ret) {
            /* What stayed shared is mapped again. */
            g_autoptr(GArray) shared = runs_of(r, offset, size, true);

            tell_all(r, shared, true);
        }
        return ret;
    }

    /* Only pages that were private are new to the listeners. */
    runs = runs_of(r, offset, size, false);
    ret = guest_memfd_state_convert(&r->state, offset, size, false,
                                    &converted, errp);
    runs_clip(runs, offset, converted);
    if (!populate_all(r, runs)) {
        if (!ret) {
            error_setg(errp, "guest_memfd %s: a RamDiscardListener (VFIO)"
                       " cannot map the pages made shared at 0x%" PRIx64,
                       r->state.name, offset);
            ret = -ENOMEM;
        }
        /* Back to private: nobody maps them, nobody may. */
        converted = undo_shared(r, runs) ? 0 : converted;
    }
    if (done) {
        *done = converted;
    }
    return ret;
}

static uint64_t rdm_get_min_granularity(const RamDiscardManager *rdm,
                                        const MemoryRegion *mr)
{
    return GUEST_MEMFD_PAGE_SIZE;
}

static bool rdm_is_populated(const RamDiscardManager *rdm,
                             const MemoryRegionSection *section)
{
    GuestMemfdRegion *r = rdm_region(rdm);
    uint64_t offset = section->offset_within_region, len;
    uint64_t end = offset + int128_get64(section->size);

    QEMU_LOCK_GUARD(&r->listeners_lock);
    return !guest_memfd_state_next_run(&r->state, &offset, end, false, &len);
}

/*
 * Hand each run of pages in state @shared inside @section to @populate
 * (which may stop the replay) or to @discard.
 */
static int replay(const RamDiscardManager *rdm, MemoryRegionSection *section,
                  bool shared, ReplayRamPopulate populate,
                  ReplayRamDiscard discard, void *opaque)
{
    GuestMemfdRegion *r = rdm_region(rdm);
    g_autoptr(GArray) runs = NULL;

    QEMU_LOCK_GUARD(&r->listeners_lock);
    runs = section_runs(r, section, shared);
    for (guint i = 0; i < runs->len; i++) {
        Run *run = &g_array_index(runs, Run, i);
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
    GuestMemfdRegion *r = rdm_region(rdm);
    g_autoptr(GArray) runs = NULL;

    QEMU_LOCK_GUARD(&r->listeners_lock);
    runs = section_runs(r, section, true);
    rdl->section = memory_region_section_new_copy(section);
    QLIST_INSERT_HEAD(&r->listeners, rdl, next);
    if (tell(rdl, runs, runs->len, true) < runs->len) {
        error_report("guest_memfd %s: a RamDiscardListener cannot map the"
                     " shared pages", r->state.name);
    }
}

static void rdm_unregister_listener(RamDiscardManager *rdm,
                                    RamDiscardListener *rdl)
{
    GuestMemfdRegion *r = rdm_region(rdm);
    g_autoptr(GArray) runs = NULL;

    QEMU_LOCK_GUARD(&r->listeners_lock);
    runs = section_runs(r, rdl->section, true);
    tell(rdl, runs, runs->len, false);
    QLIST_REMOVE(rdl, next);
    memory_region_section_free_copy(rdl->section);
    rdl->section = NULL;
}

void guest_memfd_rdm_class_init(RamDiscardManagerClass *rdmc)
{
    rdmc->get_min_granularity = rdm_get_min_granularity;
    rdmc->is_populated = rdm_is_populated;
    rdmc->replay_populated = rdm_replay_populated;
    rdmc->replay_discarded = rdm_replay_discarded;
    rdmc->register_listener = rdm_register_listener;
    rdmc->unregister_listener = rdm_unregister_listener;
}
