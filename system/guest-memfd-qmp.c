/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * query-guest-memfd, x-guest-memfd-convert, x-guest-memfd-pin, and HMP's
 * info guest-memfd and x-guest-memfd-convert
 *
 * Regions are found where the memory core keeps them: attached to the RAM
 * blocks that map their files.  Users name them by their backends' ids.
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qapi/qapi-commands-guest-memfd.h"
#include "qemu/cutils.h"
#include "exec/cpu-common.h"
#include "exec/ramblock.h"
#include "monitor/hmp.h"
#include "qobject/qdict.h"
#include "monitor/monitor.h"
#include "system/guest-memfd-kvm.h"
#include "system/guest-memfd-model.h"
#include "guest-memfd-internal.h"

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
    info->dma_mappings = guest_memfd_rdm_mappings(r);
    info->dma_remaps = r->unit_splits;
    info->dma_remap_max_ns = r->unit_split_ns_max;
    info->dma_refused = r->units_refused;

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
        bool huge = f->page_size > GUEST_MEMFD_PAGE_SIZE;
        unsigned memslots;
        uint64_t bound;

        info->kernel = GUEST_MEMFD_KERNEL_KVM;
        info->backing = g_strdup(huge ? "kvm hugetlb" : "kvm");
        /* KVM does not say what is allocated; 4 KiB folios never merge. */
        info->folios_merged = huge ? info->folios - info->folios_split : 0;
        guest_memfd_kvm_bindings(f, &memslots, &bound);
        info->kvm_memslots = memslots;
        info->kvm_bound = bound;
    }
    return info;
}

static gint compare_names(gconstpointer a, gconstpointer b)
{
    const GuestMemfdRegion *ra = *(GuestMemfdRegion * const *)a;
    const GuestMemfdRegion *rb = *(GuestMemfdRegion * const *)b;

    return strcmp(ra->state.name, rb->state.name);
}

static int add_region(RAMBlock *rb, void *opaque)
{
    GuestMemfdRegion *r = guest_memfd_region_of(rb->mr);

    if (r) {
        g_ptr_array_add(opaque, r);
    }
    return 0;
}

/* Every region, in order of their ids. */
static GPtrArray *all_regions(void)
{
    GPtrArray *regions = g_ptr_array_new();

    qemu_ram_foreach_block(add_region, regions);
    g_ptr_array_sort(regions, compare_names);
    return regions;
}

/* The region of the backend called @id, or NULL. */
static GuestMemfdRegion *region_by_id(const char *id)
{
    g_autoptr(GPtrArray) regions = all_regions();

    for (guint i = 0; i < regions->len; i++) {
        GuestMemfdRegion *r = regions->pdata[i];

        if (!strcmp(r->state.name, id)) {
            return r;
        }
    }
    return NULL;
}

GuestMemfdInfoList *qmp_query_guest_memfd(Error **errp)
{
    g_autoptr(GPtrArray) regions = all_regions();
    GuestMemfdInfoList *head = NULL, **tail = &head;

    for (guint i = 0; i < regions->len; i++) {
        QAPI_LIST_APPEND(tail, region_info(regions->pdata[i]));
    }
    return head;
}

void qmp_x_guest_memfd_convert(uint64_t gpa, uint64_t size, bool private,
                               Error **errp)
{
    guest_memfd_convert_gpa(gpa, size, private, NULL, errp);
}

void qmp_x_guest_memfd_pin(const char *id, uint64_t offset, bool pin,
                           Error **errp)
{
    GuestMemfdRegion *r = region_by_id(id);
    int ret;

    if (!r) {
        error_setg(errp, "'%s' is not a memory-backend-guest-memfd object",
                   id);
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

void hmp_x_guest_memfd_convert(Monitor *mon, const QDict *qdict)
{
    const char *state = qdict_get_str(qdict, "state");
    Error *err = NULL;

    if (strcmp(state, "shared") && strcmp(state, "private")) {
        error_setg(&err, "the state must be 'shared' or 'private', not '%s'",
                   state);
    } else {
        qmp_x_guest_memfd_convert(qdict_get_int(qdict, "gpa"),
                                  qdict_get_int(qdict, "size"),
                                  !strcmp(state, "private"), &err);
    }
    hmp_handle_error(mon, err);
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
        if (i->page_size > GUEST_MEMFD_PAGE_SIZE) {
            monitor_printf(mon, "  folios %" PRIu64 ": split %" PRIu64
                           ", merged %" PRIu64 ", waiting %" PRIu64 "\n",
                           i->folios, i->folios_split, i->folios_merged,
                           i->folios_waiting);
        } else {
            monitor_printf(mon, "  folios %" PRIu64 " (4 KiB: never split"
                           " or merged)\n", i->folios);
        }
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
        if (i->dma_mappings || i->dma_remaps) {
            monitor_printf(mon, "  DMA mappings: %" PRIu64 ", remapped %"
                           PRIu64 " times (longest %" PRIu64 " us)\n",
                           i->dma_mappings, i->dma_remaps,
                           i->dma_remap_max_ns / 1000);
        }
        if (i->dma_refused) {
            monitor_printf(mon, "  DMA refused: %" PRIu64 " pieces of shared"
                           " memory could not be mapped\n", i->dma_refused);
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
