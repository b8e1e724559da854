/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * In-place guest_memfd page-state core
 *
 * One GuestMemfdRegion per memory-backend-guest-memfd object: the file's
 * page state (guest-memfd-state.c), the RAM MemoryRegion that maps it, and
 * what the rest of QEMU needs from it: guest-physical ranges resolved to
 * regions and validated before anything changes, the memory-API guard on
 * private pages, the migration blocker, reset, QMP and HMP.
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qapi/qapi-commands-guest-memfd.h"
#include "qemu/cutils.h"
#include "qemu/error-report.h"
#include "qemu/main-loop.h"
#include "migration/blocker.h"
#include "qemu/queue.h"
#include "qemu/thread.h"
#include "qom/object.h"
#include "exec/address-spaces.h"
#include "exec/memory.h"
#include "monitor/hmp.h"
#include "monitor/monitor.h"
#include "system/hostmem.h"
#include "system/guest-memfd.h"
#include "system/guest-memfd-model.h"
#include "trace.h"

struct GuestMemfdRegion {
    HostMemoryBackend *backend;
    MemoryRegion *mr;
    char *variant;
    GuestMemfdState state;
    /* Private pages cannot migrate: blocked while there are any. */
    QEMUBH *blocker_bh;
    Error *migration_blocker;
    /* RamDiscardManager listeners (VFIO): shared = populated. */
    QemuMutex listeners_lock;
    QLIST_HEAD(, RamDiscardListener) listeners;
    QTAILQ_ENTRY(GuestMemfdRegion) next;
};

static QTAILQ_HEAD(, GuestMemfdRegion) regions =
    QTAILQ_HEAD_INITIALIZER(regions);
static QemuMutex regions_lock;
/* Read without the lock: a fast "no region anywhere" for the memory API. */
static unsigned nr_regions;

static void __attribute__((constructor)) guest_memfd_core_init(void)
{
    qemu_mutex_init(&regions_lock);
}

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

GuestMemfdRegion *guest_memfd_region_new(HostMemoryBackend *backend,
                                         GuestMemfdFile *file,
                                         const char *variant)
{
    GuestMemfdRegion *r = g_new0(GuestMemfdRegion, 1);
    const char *id = object_get_canonical_path_component(OBJECT(backend));

    r->backend = backend;
    r->variant = g_strdup(variant);
    guest_memfd_state_init(&r->state, file, id ?: "?");
    qemu_mutex_init(&r->listeners_lock);
    QLIST_INIT(&r->listeners);
    r->blocker_bh = qemu_bh_new(region_update_blocker, r);
    r->state.private_changed = region_private_changed;
    r->state.opaque = r;
    qemu_bh_schedule(r->blocker_bh);

    qemu_mutex_lock(&regions_lock);
    QTAILQ_INSERT_TAIL(&regions, r, next);
    qatomic_inc(&nr_regions);
    qemu_mutex_unlock(&regions_lock);
    trace_guest_memfd_region_new(r->state.name, file->size, file->page_size,
                                 variant);
    return r;
}

void guest_memfd_region_set_mr(GuestMemfdRegion *r, MemoryRegion *mr)
{
    r->mr = mr;
    /* The memory API's inline check reads the page state from here. */
    mr->guest_memfd_shared = r->state.shared;
}

void guest_memfd_region_free(GuestMemfdRegion *r)
{
    if (!r) {
        return;
    }
    trace_guest_memfd_region_free(r->state.name);
    qemu_mutex_lock(&regions_lock);
    QTAILQ_REMOVE(&regions, r, next);
    qatomic_dec(&nr_regions);
    qemu_mutex_unlock(&regions_lock);

    qemu_bh_delete(r->blocker_bh);
    migrate_del_blocker(&r->migration_blocker);
    guest_memfd_close(r->state.file);
    guest_memfd_state_destroy(&r->state);
    qemu_mutex_destroy(&r->listeners_lock);
    g_free(r->variant);
    g_free(r);
}

GuestMemfdRegion *guest_memfd_region_find(MemoryRegion *mr)
{
    GuestMemfdRegion *r, *found = NULL;

    if (!qatomic_read(&nr_regions)) {
        return NULL;
    }
    qemu_mutex_lock(&regions_lock);
    QTAILQ_FOREACH(r, &regions, next) {
        if (r->mr == mr) {
            found = r;
            break;
        }
    }
    qemu_mutex_unlock(&regions_lock);
    return found;
}

GuestMemfdFile *guest_memfd_region_file(GuestMemfdRegion *r)
{
    return r->state.file;
}

bool guest_memfd_page_is_private(GuestMemfdRegion *r, uint64_t offset)
{
    return guest_memfd_state_any_private(&r->state, offset,
                                         GUEST_MEMFD_PAGE_SIZE);
}

bool guest_memfd_map_ref(MemoryRegion *mr, hwaddr offset, hwaddr len)
{
    GuestMemfdRegion *r = guest_memfd_backend_region(mr->owner);
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
    GuestMemfdRegion *r = guest_memfd_backend_region(mr->owner);

    if (r && len) {
        guest_memfd_state_unmap(&r->state, offset, len);
    }
}

bool guest_memfd_range_has_private(MemoryRegion *mr, hwaddr offset,
                                   hwaddr len)
{
    GuestMemfdRegion *r = guest_memfd_backend_region(mr->owner);
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

/* Narrow @s to [offset, offset + size) of its region; false if empty. */
static bool section_clip(MemoryRegionSection *s, uint64_t offset,
                         uint64_t size)
{
    uint64_t start = MAX(s->offset_within_region, offset);
    uint64_t end = MIN(s->offset_within_region + int128_get64(s->size),
                       offset + size);

    if (start >= end) {
        return false;
    }
    s->offset_within_address_space += start - s->offset_within_region;
    s->offset_within_region = start;
    s->size = int128_make64(end - start);
    return true;
}

typedef int (*RunFn)(MemoryRegionSection *s, void *opaque);

/* Call @fn on each run of pages with state @shared inside @section. */
static int region_for_each_run(GuestMemfdRegion *r,
                               const MemoryRegionSection *section,
                               bool shared, RunFn fn, void *opaque)
{
    uint64_t end = section->offset_within_region +
                   int128_get64(section->size);
    uint64_t offset = section->offset_within_region, len;
    int ret;

    while (offset < end &&
           guest_memfd_state_next_run(&r->state, &offset, end, shared,
                                      &len)) {
        MemoryRegionSection run = *section;

        section_clip(&run, offset, len);
        ret = fn(&run, opaque);
        if (ret) {
            return ret;
        }
        offset += len;
    }
    return 0;
}

static int notify_discard_run(MemoryRegionSection *s, void *opaque)
{
    RamDiscardListener *rdl = opaque;

    rdl->notify_discard(rdl, s);
    return 0;
}

static int notify_populate_run(MemoryRegionSection *s, void *opaque)
{
    RamDiscardListener *rdl = opaque;

    return rdl->notify_populate(rdl, s);
}

/*
 * Tell listeners about the pages of [offset, offset + size) that are now
 * in state @shared: populate them (after a conversion to shared) or
 * discard them (before a conversion to private).
 */
static void region_notify(GuestMemfdRegion *r, uint64_t offset,
                          uint64_t size, bool shared)
{
    RamDiscardListener *rdl;

    qemu_mutex_lock(&r->listeners_lock);
    QLIST_FOREACH(rdl, &r->listeners, next) {
        MemoryRegionSection s = *rdl->section;

        if (!section_clip(&s, offset, size)) {
            continue;
        }
        if (shared) {
            if (region_for_each_run(r, &s, true, notify_populate_run, rdl)) {
                warn_report("guest_memfd %s: a listener refused shared pages"
                            " at 0x%" PRIx64, r->state.name, offset);
            }
        } else {
            region_for_each_run(r, &s, true, notify_discard_run, rdl);
        }
    }
    qemu_mutex_unlock(&r->listeners_lock);
}

bool guest_memfd_convert_ram(GuestMemfdRegion *r, uint64_t offset,
                             uint64_t size, bool to_private, uint64_t *done,
                             Error **errp)
{
    uint64_t converted = 0;
    bool ok;

    /*
     * Listeners (VFIO) drop their mappings before pages become private,
     * so that their references do not block the conversion, and map pages
     * only once they are shared.
     */
    if (to_private && !QLIST_EMPTY(&r->listeners) && size &&
        size <= r->state.file->size && offset <= r->state.file->size - size) {
        region_notify(r, offset, size, false);
    }
    ok = guest_memfd_state_convert(&r->state, offset, size, to_private,
                                   &converted, errp);
    if (done) {
        *done = converted;
    }
    if (!QLIST_EMPTY(&r->listeners) && (to_private ? !ok : converted)) {
        /* Shared pages: newly shared ones, or ones that stayed shared. */
        region_notify(r, offset, to_private ? size : converted, true);
    }
    return ok;
}

/* RamDiscardManager, for the backend object: shared = populated. */
bool guest_memfd_rdm_is_populated(GuestMemfdRegion *r,
                                  const MemoryRegionSection *section)
{
    uint64_t offset = section->offset_within_region, len;
    uint64_t end = offset + int128_get64(section->size);

    return !guest_memfd_state_next_run(&r->state, &offset, end, false, &len);
}

int guest_memfd_rdm_replay(GuestMemfdRegion *r, MemoryRegionSection *section,
                           bool populated,
                           int (*fn)(MemoryRegionSection *s, void *opaque),
                           void *opaque)
{
    return region_for_each_run(r, section, populated, fn, opaque);
}

void guest_memfd_rdm_register(GuestMemfdRegion *r, RamDiscardListener *rdl,
                              MemoryRegionSection *section)
{
    rdl->section = memory_region_section_new_copy(section);
    qemu_mutex_lock(&r->listeners_lock);
    QLIST_INSERT_HEAD(&r->listeners, rdl, next);
    qemu_mutex_unlock(&r->listeners_lock);
    if (region_for_each_run(r, section, true, notify_populate_run, rdl)) {
        warn_report("guest_memfd %s: a listener refused shared pages",
                    r->state.name);
    }
}

void guest_memfd_rdm_unregister(GuestMemfdRegion *r, RamDiscardListener *rdl)
{
    region_for_each_run(r, rdl->section, true, notify_discard_run, rdl);
    qemu_mutex_lock(&r->listeners_lock);
    QLIST_REMOVE(rdl, next);
    qemu_mutex_unlock(&r->listeners_lock);
    memory_region_section_free_copy(rdl->section);
    rdl->section = NULL;
}

typedef struct GpaPiece {
    GuestMemfdRegion *region;
    uint64_t offset;
    uint64_t size;
} GpaPiece;

/*
 * Split [gpa, gpa + size) into region pieces; fail, before anything is
 * converted, if any part of it is not in-place guest_memfd RAM.
 */
static GArray *gpa_resolve(hwaddr gpa, uint64_t size, Error **errp)
{
    g_autoptr(GArray) pieces = g_array_new(false, false, sizeof(GpaPiece));
    hwaddr cur = gpa, end = gpa + size;

    if (!size || !QEMU_IS_ALIGNED(gpa | size, GUEST_MEMFD_PAGE_SIZE) ||
        end < gpa) {
        error_setg(errp, "range 0x%" HWADDR_PRIx "+0x%" PRIx64 " is not a"
                   " non-empty, 4 KiB aligned guest-physical range", gpa,
                   size);
        return NULL;
    }
    while (cur < end) {
        MemoryRegionSection s = memory_region_find(get_system_memory(), cur,
                                                   end - cur);
        GpaPiece p = { 0 };
        bool at_cur = s.mr && s.offset_within_address_space == cur;

        if (s.mr) {
            p.region = guest_memfd_region_find(s.mr);
            p.offset = s.offset_within_region;
            p.size = int128_get64(s.size);
            memory_region_unref(s.mr);
        }
        if (!at_cur || !p.region) {
            error_setg(errp, "guest-physical address 0x%" HWADDR_PRIx
                       " is not in-place guest_memfd RAM (%s)", cur,
                       at_cur ? memory_region_name(s.mr) : "unassigned");
            return NULL;
        }
        if (!p.size ||
            !QEMU_IS_ALIGNED(p.offset | p.size, GUEST_MEMFD_PAGE_SIZE)) {
            error_setg(errp, "guest-physical address 0x%" HWADDR_PRIx
                       " maps RAM at an unaligned offset", cur);
            return NULL;
        }
        g_array_append_val(pieces, p);
        cur += p.size;
    }
    return g_steal_pointer(&pieces);
}

bool guest_memfd_range_is_convertible(hwaddr gpa, uint64_t size,
                                      Error **errp)
{
    g_autoptr(GArray) pieces = NULL;

    if (!qatomic_read(&nr_regions)) {
        error_setg(errp, "there is no in-place guest_memfd memory");
        return false;
    }
    pieces = gpa_resolve(gpa, size, errp);
    return pieces != NULL;
}

bool guest_memfd_convert_gpa(hwaddr gpa, uint64_t size, bool to_private,
                             uint64_t *done, Error **errp)
{
    g_autoptr(GArray) pieces = gpa_resolve(gpa, size, errp);
    uint64_t total = 0;

    if (done) {
        *done = 0;
    }
    if (!pieces) {
        return false;
    }
    for (guint i = 0; i < pieces->len; i++) {
        GpaPiece *p = &g_array_index(pieces, GpaPiece, i);
        uint64_t piece_done;
        bool ok = guest_memfd_convert_ram(p->region, p->offset, p->size,
                                          to_private, &piece_done, errp);

        total += piece_done;
        if (done) {
            *done = total;
        }
        if (!ok) {
            return false;
        }
    }
    return true;
}

void guest_memfd_region_counters(GuestMemfdRegion *r, GuestMemfdCounters *c)
{
    GuestMemfdStateInfo info;

    guest_memfd_state_info(&r->state, &info);
    *c = info.counters;
}

void guest_memfd_region_reset(GuestMemfdRegion *r)
{
    GuestMemfdFile *f = r->state.file;
    Error *err = NULL;
    int ret;

    trace_guest_memfd_region_reset(r->state.name);
    if (!guest_memfd_convert_ram(r, 0, f->size, !f->init_shared, NULL,
                                 &err)) {
        warn_reportf_err(err, "system reset: ");
    }
    ret = guest_memfd_punch_hole(f, 0, f->size);
    if (ret) {
        warn_report("system reset: guest_memfd %s: discarding contents"
                    " failed: %s", r->state.name, strerror(-ret));
    }
}

static GuestMemfdInfo *region_info(GuestMemfdRegion *r)
{
    GuestMemfdInfo *info = g_new0(GuestMemfdInfo, 1);
    GuestMemfdFile *f = r->state.file;
    GuestMemfdStateInfo st;

    guest_memfd_state_info(&r->state, &st);
    info->id = g_strdup(r->state.name);
    info->size = f->size;
    info->page_size = f->page_size;
    info->variant = g_strdup(r->variant);
    info->shared = st.shared_bytes;
    info->q_private = f->size - info->shared;
    info->folios = f->size / f->page_size;
    info->folios_split = f->page_size > GUEST_MEMFD_PAGE_SIZE ?
                         st.folios_with_shared : 0;
    info->to_shared = st.counters.to_shared;
    info->to_private = st.counters.to_private;
    info->failed = st.counters.failed;
    info->retried = st.counters.retried;
    info->kernel_calls = st.counters.kernel_calls;
    info->kvm_memslots = f->kvm_memslots;
    info->kvm_bound = f->kvm_bound;

    if (guest_memfd_is_model(f)) {
        GuestMemfdModelStats ms;
        GuestMemfdModelPool pool;

        info->kernel = GUEST_MEMFD_KERNEL_MODEL;
        info->backing = g_strdup(guest_memfd_model_backing(f));
        guest_memfd_model_stats(f, &ms);
        info->folios_split = ms.folios_split;
        info->folios_merged = ms.folios_merged;
        info->folios_waiting = ms.folios_waiting;
        if (guest_memfd_model_pool(f->page_size, &pool)) {
            info->pool = g_new0(GuestMemfdPool, 1);
            info->pool->page_size = pool.page_size;
            info->pool->real = pool.real;
            info->pool->total = pool.total;
            info->pool->free = pool.free;
            info->pool->reserved = pool.reserved;
            info->pool->in_use = pool.in_use;
        }
    } else {
        info->kernel = GUEST_MEMFD_KERNEL_KVM;
        info->backing = g_strdup(f->page_size > GUEST_MEMFD_PAGE_SIZE ?
                                 "kvm hugetlb" : "kvm");
        info->folios_merged = info->folios - info->folios_split;
    }
    return info;
}

GuestMemfdInfoList *qmp_query_guest_memfd(Error **errp)
{
    GuestMemfdInfoList *head = NULL, **tail = &head;
    GuestMemfdRegion *r;

    qemu_mutex_lock(&regions_lock);
    QTAILQ_FOREACH(r, &regions, next) {
        QAPI_LIST_APPEND(tail, region_info(r));
    }
    qemu_mutex_unlock(&regions_lock);
    return head;
}

void qmp_x_guest_memfd_convert(uint64_t gpa, uint64_t size, bool private,
                               Error **errp)
{
    guest_memfd_convert_gpa(gpa, size, private, NULL, errp);
}

static GuestMemfdRegion *region_by_id(const char *id, Error **errp)
{
    Object *obj = object_resolve_path_component(object_get_objects_root(),
                                                id);
    GuestMemfdRegion *r = NULL;

    if (obj && object_dynamic_cast(obj, TYPE_MEMORY_BACKEND)) {
        r = guest_memfd_region_find(&MEMORY_BACKEND(obj)->mr);
    }
    if (!r) {
        error_setg(errp, "'%s' is not a memory-backend-guest-memfd object",
                   id);
    }
    return r;
}

void qmp_x_guest_memfd_pin(const char *id, uint64_t offset, bool pin,
                           Error **errp)
{
    GuestMemfdRegion *r = region_by_id(id, errp);
    int ret;

    if (!r) {
        return;
    }
    if (!guest_memfd_is_model(r->state.file)) {
        error_setg(errp, "'%s' does not use the kernel model: only model"
                   " pages can be pinned from QMP", id);
        return;
    }
    if (!QEMU_IS_ALIGNED(offset, GUEST_MEMFD_PAGE_SIZE) ||
        offset >= r->state.file->size) {
        error_setg(errp, "offset 0x%" PRIx64 " is not a 4 KiB aligned"
                   " offset inside '%s'", offset, id);
        return;
    }
    ret = pin ? guest_memfd_model_pin(r->state.file, offset) :
                guest_memfd_model_unpin(r->state.file, offset);
    if (ret) {
        error_setg_errno(errp, -ret, "cannot %s page 0x%" PRIx64 " of '%s'",
                         pin ? "pin" : "unpin", offset, id);
    }
}

void hmp_info_guest_memfd(Monitor *mon, const QDict *qdict)
{
    g_autoptr(GuestMemfdInfoList) list = qmp_query_guest_memfd(NULL);
    GuestMemfdInfoList *l;

    if (!list) {
        monitor_printf(mon, "No memory-backend-guest-memfd objects\n");
        return;
    }
    for (l = list; l; l = l->next) {
        GuestMemfdInfo *i = l->value;
        g_autofree char *size = size_to_str(i->size);
        g_autofree char *page = size_to_str(i->page_size);
        g_autofree char *shared = size_to_str(i->shared);
        g_autofree char *private = size_to_str(i->q_private);

        monitor_printf(mon, "%s: %s in %s pages (%s; %s)\n", i->id, size,
                       page, i->variant, i->backing);
        monitor_printf(mon, "  shared %s, private %s\n", shared, private);
        monitor_printf(mon, "  folios %" PRIu64 ": split %" PRIu64
                       ", merged %" PRIu64 ", waiting %" PRIu64 "\n",
                       i->folios, i->folios_split, i->folios_merged,
                       i->folios_waiting);
        monitor_printf(mon, "  conversions: to-shared %" PRIu64
                       ", to-private %" PRIu64 ", failed %" PRIu64
                       ", retried %" PRIu64 ", kernel calls %" PRIu64 "\n",
                       i->to_shared, i->to_private, i->failed, i->retried,
                       i->kernel_calls);
        if (i->kernel == GUEST_MEMFD_KERNEL_KVM) {
            g_autofree char *bound = size_to_str(i->kvm_bound);

            monitor_printf(mon, "  KVM memslots bound: %" PRIu32 " (%s)\n",
                           i->kvm_memslots, bound);
        }
        if (i->pool) {
            g_autofree char *ps = size_to_str(i->pool->page_size);

            monitor_printf(mon, "  pool of %s pages (%s): total %" PRIu64
                           ", free %" PRIu64 ", reserved %" PRIu64
                           ", in use %" PRIu64 "\n", ps,
                           i->pool->real ? "host hugetlb" : "simulated",
                           i->pool->total, i->pool->free, i->pool->reserved,
                           i->pool->in_use);
        }
    }
}
