/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * In-place guest_memfd page-state core
 *
 * One GuestMemfdRegion per memory-backend-guest-memfd object.  It keeps a
 * bitmap with one bit per 4 KiB page (set: shared) and, per folio of the
 * file's page size, the number of shared pages, so that "is this folio
 * split?" and the totals are O(1).  A conversion is validated first, then
 * handed to the kernel; the bitmap changes only for what the kernel
 * actually converted.  When the kernel reports that a page is still
 * referenced (-EAGAIN), the clean part in front of it is converted, and
 * the rest is retried a bounded number of times with a growing delay.
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qapi/qapi-commands-guest-memfd.h"
#include "qemu/bitmap.h"
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

/* Retries after -EAGAIN, and the first delay (doubled each time). */
#define CONVERT_RETRIES         5
#define CONVERT_RETRY_DELAY_US  50

struct GuestMemfdRegion {
    HostMemoryBackend *backend;
    GuestMemfdFile *file;
    MemoryRegion *mr;
    char *variant;
    QemuMutex lock;
    uint64_t pages;             /* 4 KiB pages in the file */
    unsigned folio_shift;       /* log2(pages per folio) */
    unsigned long *shared;      /* one bit per 4 KiB page: set = shared */
    uint32_t *folio_shared;     /* shared pages per folio */
    uint64_t shared_pages;
    uint64_t folios_with_shared;
    GuestMemfdCounters counters;
    /* Private pages cannot migrate: blocked while there are any. */
    QEMUBH *blocker_bh;
    Error *migration_blocker;
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

static const char *region_id(GuestMemfdRegion *r)
{
    return object_get_canonical_path_component(OBJECT(r->backend)) ?: "?";
}

/* Main loop: keep the migration blocker in line with the page state. */
static void region_update_blocker(void *opaque)
{
    GuestMemfdRegion *r = opaque;
    Error *err = NULL;
    bool has_private;

    qemu_mutex_lock(&r->lock);
    has_private = r->shared_pages < r->pages;
    qemu_mutex_unlock(&r->lock);

    if (has_private && !r->migration_blocker) {
        error_setg(&r->migration_blocker, "guest_memfd %s holds private"
                   " pages, which cannot be migrated", region_id(r));
        if (migrate_add_blocker(&r->migration_blocker, &err) < 0) {
            warn_report_err(err);
        }
    } else if (!has_private && r->migration_blocker) {
        migrate_del_blocker(&r->migration_blocker);
    }
}

/* Record that [first, first + n) pages now have state @shared. */
static void region_set_state(GuestMemfdRegion *r, uint64_t first, uint64_t n,
                             bool shared)
{
    uint64_t end = first + n;
    bool had_private = r->shared_pages < r->pages;

    while (first < end) {
        uint64_t folio = first >> r->folio_shift;
        uint64_t folio_end = MIN(end, (folio + 1) << r->folio_shift);
        uint64_t len = folio_end - first;
        uint64_t was = bitmap_count_one_with_offset(r->shared, first, len);
        uint32_t before = r->folio_shared[folio];

        if (shared) {
            bitmap_set(r->shared, first, len);
            r->folio_shared[folio] += len - was;
            r->shared_pages += len - was;
        } else {
            bitmap_clear(r->shared, first, len);
            r->folio_shared[folio] -= was;
            r->shared_pages -= was;
        }
        if (!before && r->folio_shared[folio]) {
            r->folios_with_shared++;
        } else if (before && !r->folio_shared[folio]) {
            r->folios_with_shared--;
        }
        first = folio_end;
    }
    if (had_private != (r->shared_pages < r->pages) && r->blocker_bh) {
        qemu_bh_schedule(r->blocker_bh);
    }
}

GuestMemfdRegion *guest_memfd_region_new(HostMemoryBackend *backend,
                                         GuestMemfdFile *file,
                                         const char *variant)
{
    GuestMemfdRegion *r = g_new0(GuestMemfdRegion, 1);
    uint64_t folios = file->size / file->page_size;

    r->backend = backend;
    r->file = file;
    r->variant = g_strdup(variant);
    r->pages = file->size / GUEST_MEMFD_PAGE_SIZE;
    r->folio_shift = ctz64(file->page_size / GUEST_MEMFD_PAGE_SIZE);
    r->shared = bitmap_new(r->pages);
    r->folio_shared = g_new0(uint32_t, folios);
    qemu_mutex_init(&r->lock);
    if (file->init_shared) {
        region_set_state(r, 0, r->pages, true);
    }
    r->blocker_bh = qemu_bh_new(region_update_blocker, r);
    qemu_bh_schedule(r->blocker_bh);

    qemu_mutex_lock(&regions_lock);
    QTAILQ_INSERT_TAIL(&regions, r, next);
    qatomic_inc(&nr_regions);
    qemu_mutex_unlock(&regions_lock);
    trace_guest_memfd_region_new(region_id(r), file->size, file->page_size,
                                 variant);
    return r;
}

void guest_memfd_region_set_mr(GuestMemfdRegion *r, MemoryRegion *mr)
{
    r->mr = mr;
}

void guest_memfd_region_free(GuestMemfdRegion *r)
{
    if (!r) {
        return;
    }
    trace_guest_memfd_region_free(region_id(r));
    qemu_mutex_lock(&regions_lock);
    QTAILQ_REMOVE(&regions, r, next);
    qatomic_dec(&nr_regions);
    qemu_mutex_unlock(&regions_lock);

    qemu_bh_delete(r->blocker_bh);
    migrate_del_blocker(&r->migration_blocker);
    guest_memfd_close(r->file);
    qemu_mutex_destroy(&r->lock);
    g_free(r->shared);
    g_free(r->folio_shared);
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
    return r->file;
}

bool guest_memfd_page_is_private(GuestMemfdRegion *r, uint64_t offset)
{
    return !test_bit(offset / GUEST_MEMFD_PAGE_SIZE, r->shared);
}

bool guest_memfd_access_denied(MemoryRegion *mr, hwaddr offset, hwaddr len)
{
    GuestMemfdRegion *r;
    uint64_t first, last;
    bool denied;

    if (likely(!qatomic_read(&nr_regions)) || !len) {
        return false;
    }
    r = guest_memfd_region_find(mr);
    if (!r || offset >= r->file->size) {
        return false;
    }
    first = offset / GUEST_MEMFD_PAGE_SIZE;
    last = (MIN(offset + len, r->file->size) - 1) / GUEST_MEMFD_PAGE_SIZE;
    qemu_mutex_lock(&r->lock);
    denied = find_next_zero_bit(r->shared, last + 1, first) <= last;
    qemu_mutex_unlock(&r->lock);
    if (denied) {
        trace_guest_memfd_access_denied(region_id(r), offset, len);
    }
    return denied;
}

/* One kernel call; updates the bitmap for what it converted. */
static int region_kernel_convert(GuestMemfdRegion *r, uint64_t offset,
                                 uint64_t size, bool to_private,
                                 uint64_t *error_offset)
{
    int ret;

    r->counters.kernel_calls++;
    ret = guest_memfd_convert(r->file, offset, size, to_private, error_offset);
    trace_guest_memfd_convert_kernel(region_id(r), offset, size, to_private,
                                     ret, ret == -EAGAIN ? *error_offset : 0);
    if (!ret) {
        region_set_state(r, offset / GUEST_MEMFD_PAGE_SIZE,
                         size / GUEST_MEMFD_PAGE_SIZE, !to_private);
    }
    return ret;
}

static bool range_has_state(GuestMemfdRegion *r, uint64_t offset,
                            uint64_t size, bool private)
{
    uint64_t first = offset / GUEST_MEMFD_PAGE_SIZE;
    uint64_t end = first + size / GUEST_MEMFD_PAGE_SIZE;

    if (private) {
        return find_next_bit(r->shared, end, first) >= end;
    }
    return find_next_zero_bit(r->shared, end, first) >= end;
}

bool guest_memfd_convert_ram(GuestMemfdRegion *r, uint64_t offset,
                             uint64_t size, bool to_private, uint64_t *done,
                             Error **errp)
{
    uint64_t cur = offset, end = offset + size, error_offset = 0;
    unsigned attempt = 0, delay = CONVERT_RETRY_DELAY_US;
    int ret = 0;

    if (done) {
        *done = 0;
    }
    if (!size || !QEMU_IS_ALIGNED(offset | size, GUEST_MEMFD_PAGE_SIZE) ||
        end < offset || end > r->file->size) {
        error_setg(errp, "guest_memfd %s: range 0x%" PRIx64 "+0x%" PRIx64
                   " is not 4 KiB aligned inside the 0x%" PRIx64 "-byte file",
                   region_id(r), offset, size, r->file->size);
        return false;
    }

    trace_guest_memfd_convert(region_id(r), offset, size, to_private);
    qemu_mutex_lock(&r->lock);
    if (range_has_state(r, offset, size, to_private)) {
        /* Nothing to do: the kernel would return at once as well. */
        cur = end;
        goto out;
    }
    while (cur < end) {
        ret = region_kernel_convert(r, cur, end - cur, to_private,
                                    &error_offset);
        if (ret != -EAGAIN) {
            if (!ret) {
                cur = end;
            }
            break;
        }
        /* Pages in front of the referenced one are free to convert. */
        if (error_offset > cur && error_offset < end) {
            ret = region_kernel_convert(r, cur, error_offset - cur,
                                        to_private, &error_offset);
            if (ret) {
                break;
            }
            cur = error_offset;
            ret = -EAGAIN;
        }
        if (attempt == CONVERT_RETRIES) {
            break;
        }
        attempt++;
        r->counters.retried++;
        trace_guest_memfd_convert_retry(region_id(r), cur, attempt, delay);
        qemu_mutex_unlock(&r->lock);
        g_usleep(delay);
        qemu_mutex_lock(&r->lock);
        delay *= 2;
    }

out:
    if (cur == end) {
        if (to_private) {
            r->counters.to_private++;
        } else {
            r->counters.to_shared++;
        }
    } else {
        r->counters.failed++;
    }
    qemu_mutex_unlock(&r->lock);
    if (done) {
        *done = cur - offset;
    }
    trace_guest_memfd_convert_done(region_id(r), offset, cur - offset,
                                   cur == end);
    if (cur == end) {
        return true;
    }
    if (ret == -EAGAIN) {
        error_setg(errp, "guest_memfd %s: page at offset 0x%" PRIx64
                   " is still referenced after %u retries; 0x%" PRIx64
                   " of 0x%" PRIx64 " bytes converted", region_id(r), cur,
                   attempt, cur - offset, size);
    } else {
        error_setg_errno(errp, -ret, "guest_memfd %s: converting 0x%" PRIx64
                         "+0x%" PRIx64 " to %s failed after 0x%" PRIx64
                         " bytes", region_id(r), cur, end - cur,
                         to_private ? "private" : "shared", cur - offset);
    }
    return false;
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
    qemu_mutex_lock(&r->lock);
    *c = r->counters;
    qemu_mutex_unlock(&r->lock);
}

void guest_memfd_region_reset(GuestMemfdRegion *r)
{
    bool initial_private = !r->file->init_shared;
    Error *err = NULL;
    int ret;

    trace_guest_memfd_region_reset(region_id(r));
    if (!guest_memfd_convert_ram(r, 0, r->file->size, initial_private, NULL,
                                 &err)) {
        warn_reportf_err(err, "system reset: ");
    }
    ret = guest_memfd_punch_hole(r->file, 0, r->file->size);
    if (ret) {
        warn_report("system reset: guest_memfd %s: discarding contents"
                    " failed: %s", region_id(r), strerror(-ret));
    }
}

static GuestMemfdInfo *region_info(GuestMemfdRegion *r)
{
    GuestMemfdInfo *info = g_new0(GuestMemfdInfo, 1);
    GuestMemfdFile *f = r->file;

    qemu_mutex_lock(&r->lock);
    info->id = g_strdup(region_id(r));
    info->size = f->size;
    info->page_size = f->page_size;
    info->variant = g_strdup(r->variant);
    info->shared = r->shared_pages * GUEST_MEMFD_PAGE_SIZE;
    info->q_private = f->size - info->shared;
    info->folios = f->size / f->page_size;
    info->folios_split = f->page_size > GUEST_MEMFD_PAGE_SIZE ?
                         r->folios_with_shared : 0;
    info->to_shared = r->counters.to_shared;
    info->to_private = r->counters.to_private;
    info->failed = r->counters.failed;
    info->retried = r->counters.retried;
    info->kernel_calls = r->counters.kernel_calls;
    qemu_mutex_unlock(&r->lock);

    if (guest_memfd_is_model(f)) {
        GuestMemfdModelStats st;
        GuestMemfdModelPool pool;

        info->kernel = GUEST_MEMFD_KERNEL_MODEL;
        info->backing = g_strdup(guest_memfd_model_backing(f));
        guest_memfd_model_stats(f, &st);
        info->folios_split = st.folios_split;
        info->folios_merged = st.folios_merged;
        info->folios_waiting = st.folios_waiting;
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
    if (!guest_memfd_is_model(r->file)) {
        error_setg(errp, "'%s' does not use the kernel model: only model"
                   " pages can be pinned from QMP", id);
        return;
    }
    if (!QEMU_IS_ALIGNED(offset, GUEST_MEMFD_PAGE_SIZE) ||
        offset >= r->file->size) {
        error_setg(errp, "offset 0x%" PRIx64 " is not a 4 KiB aligned"
                   " offset inside '%s'", offset, id);
        return;
    }
    ret = pin ? guest_memfd_model_pin(r->file, offset) :
                guest_memfd_model_unpin(r->file, offset);
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
