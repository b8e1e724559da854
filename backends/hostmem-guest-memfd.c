/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * memory-backend-guest-memfd: guest RAM as one guest_memfd file
 *
 * The whole backend is one guest_memfd file, with folios of 4 KiB, 2 MiB
 * or 1 GiB ("pagesize").  Its RAMBlock maps that same file MAP_SHARED
 * (aligned to the folio size, so that huge folios can be mapped huge) and,
 * with KVM, binds it into the memslots, so shared pages exist once, and
 * pages change between shared and private in place, through the page-state
 * core (system/guest-memfd.c).  The file comes from KVM, or, with
 * kernel-model=on, from the user-space model of the proposed 1 GiB
 * guest_memfd kernel; the model is never picked behind the user's back.
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qapi/visitor.h"
#include "qemu/units.h"
#include "qemu/module.h"
#include "qemu/error-report.h"
#include "migration/blocker.h"
#include "system/kvm.h"
#include "qom/object_interfaces.h"
#include "hw/boards.h"
#include "hw/resettable.h"
#include "system/hostmem.h"
#include "system/qtest.h"
#include "system/reset.h"
#include "system/runstate.h"
#include "system/guest-memfd.h"
#include "system/guest-memfd-kvm.h"
#include "system/guest-memfd-model.h"

OBJECT_DECLARE_SIMPLE_TYPE(HostMemoryBackendGuestMemfd,
                           MEMORY_BACKEND_GUEST_MEMFD)

struct HostMemoryBackendGuestMemfd {
    HostMemoryBackend parent_obj;

    uint64_t page_size;
    OnOffAuto init_shared;
    bool kernel_model;
    bool simulated_pool;

    GuestMemfdFile *file;
    GuestMemfdRegion *region;
    ResettableState reset_state;
    /* Conversions discard pages, coordinated by the RamDiscardManager. */
    bool discard_required;
    /* KVM memslots bound to guest_memfd cannot log dirty pages. */
    Error *migration_blocker;
};

static bool gmem_init_shared(HostMemoryBackendGuestMemfd *g)
{
    MachineState *ms = MACHINE(qdev_get_machine());

    if (g->init_shared != ON_OFF_AUTO_AUTO) {
        return g->init_shared == ON_OFF_AUTO_ON;
    }
    /* Confidential guests start private; everybody else starts shared. */
    return !(ms && ms->cgs);
}

static ResettableState *gmem_reset_state(Object *obj)
{
    return &MEMORY_BACKEND_GUEST_MEMFD(obj)->reset_state;
}

/*
 * Guest RAM goes back to its initial page state, empty.  Not at the cold
 * reset at startup (nor before an incoming migration), which must not undo
 * prealloc, not on a wakeup from S3, which keeps memory, and not while the
 * memory is no guest's RAM (an unplugged DIMM keeps what it holds).
 */
static void gmem_reset_hold(Object *obj, ResetType type)
{
    HostMemoryBackendGuestMemfd *g = MEMORY_BACKEND_GUEST_MEMFD(obj);

    if (g->region && type != RESET_TYPE_WAKEUP &&
        !runstate_check(RUN_STATE_PRELAUNCH) &&
        !runstate_check(RUN_STATE_INMIGRATE) &&
        host_memory_backend_is_mapped(MEMORY_BACKEND(obj))) {
        guest_memfd_region_reset(g->region);
    }
}

/* Options that cannot work, whatever the host: refused before anything. */
static bool gmem_check_options(HostMemoryBackendGuestMemfd *g, Error **errp)
{
    ERRP_GUARD();
    HostMemoryBackend *backend = MEMORY_BACKEND(g);

    if (!backend->size) {
        error_setg(errp, "can't create backend with size 0");
        return false;
    }
    if (!backend->share) {
        error_setg(errp, "share=off is not possible: guest_memfd memory is"
                   " always shared with its own mapping");
        error_append_hint(errp, "Drop share=off.\n");
        return false;
    }
    if (!QEMU_IS_ALIGNED(backend->size, g->page_size)) {
        error_setg(errp, "size 0x%" PRIx64 " is not a multiple of"
                   " pagesize 0x%" PRIx64, backend->size, g->page_size);
        error_append_hint(errp, "Round the size to a multiple of"
                          " pagesize.\n");
        return false;
    }
    if (g->simulated_pool && !g->kernel_model) {
        error_setg(errp, "x-simulated-pool=on needs kernel-model=on");
        return false;
    }
    return true;
}

/*
 * The guest_memfd file, from KVM or from the model, and what the RAMBlock
 * must know of it (@ram_flags gains RAM_GUEST_MEMFD for KVM's, which KVM
 * binds).  A KVM file also blocks migration: its memslots cannot log dirty
 * pages.
 */
static GuestMemfdFile *gmem_create_file(HostMemoryBackendGuestMemfd *g,
                                        const char *name,
                                        const char **variant,
                                        uint32_t *ram_flags, Error **errp)
{
    uint64_t size = MEMORY_BACKEND(g)->size;
    bool init_shared = gmem_init_shared(g);
    GuestMemfdFile *file;

    if (g->kernel_model) {
        if (g->simulated_pool &&
            !guest_memfd_model_simulate_pool(g->page_size, errp)) {
            return NULL;
        }
        file = guest_memfd_model_create(size, g->page_size, init_shared,
                                        errp);
        *variant = "model";
        if (file && kvm_enabled()) {
            warn_report("memory-backend-guest-memfd '%s': kernel-model=on:"
                        " KVM maps this memory as user memory, from the"
                        " model's guest view (the model's file is not a"
                        " guest_memfd)", name);
        }
        return file;
    }

    file = guest_memfd_kvm_create(size, g->page_size, init_shared, errp);
    if (!file) {
        return NULL;
    }
    *variant = guest_memfd_kvm_variant(file);
    *ram_flags |= RAM_GUEST_MEMFD;
    error_setg(&g->migration_blocker, "memory-backend-guest-memfd '%s' is"
               " bound to KVM guest_memfd memslots, which cannot log dirty"
               " pages", name);
    if (migrate_add_blocker(&g->migration_blocker, errp) < 0) {
        guest_memfd_close(file);
        return NULL;
    }
    return file;
}

/* The RAM region: a RAMBlock that maps @file with a descriptor of its own. */
static bool gmem_map_file(HostMemoryBackendGuestMemfd *g, GuestMemfdFile *file,
                          const char *name, uint32_t ram_flags, Error **errp)
{
    HostMemoryBackend *backend = MEMORY_BACKEND(g);
    int fd = dup(file->fd);

    if (fd < 0) {
        error_setg_errno(errp, errno, "cannot duplicate the guest_memfd"
                         " descriptor");
        return false;
    }
    if (!memory_region_init_ram_guest_memfd_in_place(&backend->mr,
                                                     OBJECT(backend), name,
                                                     backend->size,
                                                     g->page_size, ram_flags,
                                                     fd, errp)) {
        close(fd);
        return false;
    }
    backend->aligned = true;
    /*
     * Under qtest nothing stands for the guest, and under KVM the guest
     * has a mapping of its own (the model's guest view, which KVM's
     * memslots map), so the RAMBlock's mapping is QEMU's host view: the
     * model makes private pages inaccessible in it, as the kernel would.
     * Under TCG the CPU is QEMU: the mapping is also the guest's, and the
     * memory API's guard keeps private pages from everything else.
     */
    if (g->kernel_model &&
        (qtest_enabled() ||
         (kvm_enabled() && guest_memfd_model_guest_view(file)))) {
        guest_memfd_model_set_host_view(
            file, memory_region_get_ram_ptr(&backend->mr));
    }
    return true;
}

static bool gmem_alloc(HostMemoryBackend *backend, Error **errp)
{
    HostMemoryBackendGuestMemfd *g = MEMORY_BACKEND_GUEST_MEMFD(backend);
    g_autofree char *name = host_memory_backend_get_name(backend);
    const char *id = object_get_canonical_path_component(OBJECT(backend));
    uint32_t ram_flags = backend->reserve ? 0 : RAM_NORESERVE;
    GuestMemfdFile *file;
    const char *variant;

    if (!gmem_check_options(g, errp)) {
        return false;
    }
    if (ram_block_coordinated_discard_require(true)) {
        error_setg(errp, "memory-backend-guest-memfd '%s': its pages are"
                   " discarded when they become private, which something"
                   " (an assigned device, SEV) has disabled", name);
        return false;
    }
    g->discard_required = true;

    file = gmem_create_file(g, name, &variant, &ram_flags, errp);
    if (!file) {
        return false;
    }
    if (!gmem_map_file(g, file, name, ram_flags, errp)) {
        migrate_del_blocker(&g->migration_blocker);
        guest_memfd_close(file);
        return false;
    }
    g->file = file;
    /*
     * The page state attaches itself to the RAM: private pages are
     * "discarded" to its listeners (VFIO), migration and dump.
     */
    g->region = guest_memfd_region_new(file, &backend->mr, id ?: "?",
                                       variant);
    qemu_register_resettable(OBJECT(backend));
    if (kvm_enabled()) {
        guest_memfd_kvm_serve_guest_requests();
    }
    return true;
}

/*
 * Preallocation, at creation or by prealloc=on later, asks the kernel to
 * allocate the folios (fallocate), which works for private pages too; the
 * generic way touches every page through QEMU's mapping, where a private
 * page cannot be touched.
 */
static bool gmem_prealloc(HostMemoryBackend *backend, Error **errp)
{
    HostMemoryBackendGuestMemfd *g = MEMORY_BACKEND_GUEST_MEMFD(backend);
    int ret = guest_memfd_allocate(g->file, 0, g->file->size);

    if (ret) {
        error_setg_errno(errp, -ret, "preallocating guest_memfd '%s' failed",
                         object_get_canonical_path_component(
                             OBJECT(backend)));
        return false;
    }
    return true;
}

/*
 * The page state and the file go here, not at unparent (object-del), as
 * they must outlive every reader of the RAM: the memory API reads the
 * page state without a lock, and old flatviews hold the RAM region (and
 * so the backend) until an RCU grace period has passed.  Finalize comes
 * after the last reference, once the RAM region, a QOM child, is gone.
 */
static void gmem_finalize(Object *obj)
{
    HostMemoryBackendGuestMemfd *g = MEMORY_BACKEND_GUEST_MEMFD(obj);

    if (g->region) {
        qemu_unregister_resettable(obj);
        guest_memfd_region_free(g->region);
        guest_memfd_close(g->file);
    }
    migrate_del_blocker(&g->migration_blocker);
    if (g->discard_required) {
        ram_block_coordinated_discard_require(false);
    }
}

/* Properties say what to create: they cannot change once it exists. */
static bool gmem_property_settable(Object *obj, const char *name,
                                   Error **errp)
{
    if (host_memory_backend_mr_inited(MEMORY_BACKEND(obj))) {
        error_setg(errp, "cannot change property '%s' of %s", name,
                   TYPE_MEMORY_BACKEND_GUEST_MEMFD);
        return false;
    }
    return true;
}

static void gmem_get_pagesize(Object *obj, Visitor *v, const char *name,
                              void *opaque, Error **errp)
{
    HostMemoryBackendGuestMemfd *g = MEMORY_BACKEND_GUEST_MEMFD(obj);

    visit_type_size(v, name, &g->page_size, errp);
}

static void gmem_set_pagesize(Object *obj, Visitor *v, const char *name,
                              void *opaque, Error **errp)
{
    HostMemoryBackendGuestMemfd *g = MEMORY_BACKEND_GUEST_MEMFD(obj);
    uint64_t value;

    if (!gmem_property_settable(obj, name, errp) ||
        !visit_type_size(v, name, &value, errp)) {
        return;
    }
    if (value != 4 * KiB && value != 2 * MiB && value != 1 * GiB) {
        error_setg(errp, "pagesize must be 4K, 2M or 1G, not 0x%" PRIx64,
                   value);
        return;
    }
    g->page_size = value;
}

static int gmem_get_init_shared(Object *obj, Error **errp)
{
    return MEMORY_BACKEND_GUEST_MEMFD(obj)->init_shared;
}

static void gmem_set_init_shared(Object *obj, int value, Error **errp)
{
    if (!gmem_property_settable(obj, "init-shared", errp)) {
        return;
    }
    MEMORY_BACKEND_GUEST_MEMFD(obj)->init_shared = value;
}

static bool gmem_get_kernel_model(Object *obj, Error **errp)
{
    return MEMORY_BACKEND_GUEST_MEMFD(obj)->kernel_model;
}

static void gmem_set_kernel_model(Object *obj, bool value, Error **errp)
{
    if (!gmem_property_settable(obj, "kernel-model", errp)) {
        return;
    }
    MEMORY_BACKEND_GUEST_MEMFD(obj)->kernel_model = value;
}

static bool gmem_get_simulated_pool(Object *obj, Error **errp)
{
    return MEMORY_BACKEND_GUEST_MEMFD(obj)->simulated_pool;
}

static void gmem_set_simulated_pool(Object *obj, bool value, Error **errp)
{
    if (!gmem_property_settable(obj, "x-simulated-pool", errp)) {
        return;
    }
    MEMORY_BACKEND_GUEST_MEMFD(obj)->simulated_pool = value;
}

static void gmem_instance_init(Object *obj)
{
    HostMemoryBackendGuestMemfd *g = MEMORY_BACKEND_GUEST_MEMFD(obj);

    g->page_size = 4 * KiB;
    g->init_shared = ON_OFF_AUTO_AUTO;
    MEMORY_BACKEND(obj)->share = true;
}

static void gmem_class_init(ObjectClass *oc, void *data)
{
    HostMemoryBackendClass *bc = MEMORY_BACKEND_CLASS(oc);
    ResettableClass *rc = RESETTABLE_CLASS(oc);

    bc->alloc = gmem_alloc;
    bc->prealloc = gmem_prealloc;
    rc->get_state = gmem_reset_state;
    rc->phases.hold = gmem_reset_hold;

    object_class_property_add(oc, "pagesize", "size", gmem_get_pagesize,
                              gmem_set_pagesize, NULL, NULL);
    object_class_property_set_description(oc, "pagesize",
        "Folio size of the guest_memfd file: 4K (default), 2M or 1G;"
        " size must be a multiple");
    object_class_property_add_enum(oc, "init-shared", "OnOffAuto",
                                   &OnOffAuto_lookup, gmem_get_init_shared,
                                   gmem_set_init_shared);
    object_class_property_set_description(oc, "init-shared",
        "Whether pages start shared (default auto: private with"
        " confidential-guest-support, shared otherwise)");
    object_class_property_add_bool(oc, "kernel-model", gmem_get_kernel_model,
                                   gmem_set_kernel_model);
    object_class_property_set_description(oc, "kernel-model",
        "Use qemu-gmem1g's user-space model of the 1 GiB guest_memfd kernel"
        " instead of KVM (development and tests; default off)");
    object_class_property_add_bool(oc, "x-simulated-pool",
                                   gmem_get_simulated_pool,
                                   gmem_set_simulated_pool);
    object_class_property_set_description(oc, "x-simulated-pool",
        "With kernel-model=on: take pages from a simulated pool even where"
        " the host has hugetlb pages of the page size (tests; default off)");
}

static const TypeInfo gmem_backend_info = {
    .name = TYPE_MEMORY_BACKEND_GUEST_MEMFD,
    .parent = TYPE_MEMORY_BACKEND,
    .instance_init = gmem_instance_init,
    .instance_finalize = gmem_finalize,
    .class_init = gmem_class_init,
    .instance_size = sizeof(HostMemoryBackendGuestMemfd),
    .interfaces = (InterfaceInfo[]) {
        { TYPE_RESETTABLE_INTERFACE },
        { }
    },
};

static void gmem_backend_register_types(void)
{
    type_register_static(&gmem_backend_info);
}

type_init(gmem_backend_register_types);
