/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * guest_memfd through the host kernel's KVM
 *
 * Probes once per VM what the kernel offers (mainline mmap-able 4 KiB
 * guest_memfd, the proposed HugeTLB encodings, the proposed in-place
 * conversion ioctls), creates the file accordingly and converts pages with
 * whichever conversion interface is present.  All numbers come from
 * guest-memfd-uapi.h.  It also serves the guest's own requests that KVM
 * forwards (KVM_HC_MAP_GPA_RANGE), answering each in the exit itself.
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qemu/units.h"
#include "qemu/log.h"
#include "qemu/error-report.h"
#include <sys/ioctl.h>
#include "standard-headers/linux/kvm_para.h"
#include "system/kvm.h"
#include "system/kvm_int.h"
#include "exec/ramblock.h"
#include "system/guest-memfd.h"
#include "system/guest-memfd-kvm.h"
#include "system/guest-memfd-kvm-plan.h"
#include "system/guest-memfd-model.h"
#include "system/guest-memfd-uapi.h"
#include "trace.h"

typedef struct KvmBinding {
    uint64_t offset;
    uint64_t size;
} KvmBinding;

typedef struct KvmFile {
    GuestMemfdFile f;
    /* What the kernel offered when the file was made: how to convert. */
    GuestMemfdKvmCaps caps;
    char *variant;
    /* Ranges of the file bound into memslots, one per memslot. */
    GArray *bindings;
} KvmFile;

static KvmFile *kvm_file(GuestMemfdFile *f)
{
    return container_of(f, KvmFile, f);
}

static int vm_check_cap(void *opaque, unsigned cap)
{
    return kvm_vm_check_extension(opaque, cap);
}

/* What this VM's KVM offers (a few KVM_CHECK_EXTENSIONs). */
static void read_caps(GuestMemfdKvmCaps *caps)
{
    guest_memfd_kvm_read_caps(vm_check_cap, kvm_state, caps);
    trace_guest_memfd_kvm_probe(caps->gmem, caps->flags, caps->huge,
                                caps->convert);
}

static char *variant_name(const GuestMemfdKvmCaps *caps)
{
    static const char *const huge[] = {
        [GMEM_HUGE_NONE] = "4K pages",
        [GMEM_HUGE_WIP] = "hugetlb (page_order)",
        [GMEM_HUGE_RFC2] = "hugetlb (RFC v2)",
    };
    static const char *const conv[] = {
        [GMEM_CONVERT_NONE] = "no in-place conversion",
        [GMEM_CONVERT_V8] = "in-place conversion (attributes2)",
        [GMEM_CONVERT_RFC2] = "in-place conversion (RFC v2)",
    };

    return g_strdup_printf("kvm: %s, %s", huge[caps->huge],
                           conv[caps->convert]);
}

const char *guest_memfd_kvm_variant(GuestMemfdFile *f)
{
    return kvm_file(f)->variant;
}

void guest_memfd_kvm_bindings(GuestMemfdFile *f, unsigned *memslots,
                              uint64_t *bound)
{
    GArray *bindings = kvm_file(f)->bindings;

    *memslots = bindings->len;
    *bound = 0;
    for (guint i = 0; i < bindings->len; i++) {
        *bound += g_array_index(bindings, KvmBinding, i).size;
    }
}

static int kvm_file_convert(GuestMemfdFile *f, uint64_t offset, uint64_t size,
                            bool to_private, uint64_t *error_offset)
{
    int ret;

    switch (kvm_file(f)->caps.convert) {
    case GMEM_CONVERT_V8: {
        struct gmem_v8_memory_attributes2 a = {
            .offset = offset, .size = size,
            .attributes = to_private ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0,
        };
        ret = ioctl(f->fd, GMEM_V8_SET_MEMORY_ATTRIBUTES2, &a);
        *error_offset = a.error_offset;
        break;
    }
    case GMEM_CONVERT_RFC2: {
        struct gmem_rfc2_convert c = { .offset = offset, .size = size };
        ret = ioctl(f->fd, to_private ? GMEM_RFC2_CONVERT_PRIVATE :
                                        GMEM_RFC2_CONVERT_SHARED, &c);
        *error_offset = c.error_offset;
        break;
    }
    default:
        return -EOPNOTSUPP;
    }
    return ret < 0 ? -errno : 0;
}

static int kvm_file_fallocate(GuestMemfdFile *f, int mode, uint64_t offset,
                              uint64_t size)
{
    return fallocate(f->fd, mode | FALLOC_FL_KEEP_SIZE, offset, size) ?
           -errno : 0;
}

static int kvm_file_punch_hole(GuestMemfdFile *f, uint64_t offset,
                               uint64_t size)
{
    return kvm_file_fallocate(f, FALLOC_FL_PUNCH_HOLE, offset, size);
}

static int kvm_file_allocate(GuestMemfdFile *f, uint64_t offset,
                             uint64_t size)
{
    return kvm_file_fallocate(f, 0, offset, size);
}

static void kvm_file_close(GuestMemfdFile *f)
{
    KvmFile *kf = kvm_file(f);

    close(f->fd);
    g_array_free(kf->bindings, true);
    g_free(kf->variant);
    g_free(kf);
}

static const GuestMemfdKernelOps kvm_ops = {
    .convert = kvm_file_convert,
    .punch_hole = kvm_file_punch_hole,
    .allocate = kvm_file_allocate,
    .close = kvm_file_close,
};

GuestMemfdFile *guest_memfd_kvm_create(uint64_t size, uint64_t page_size,
                                       bool init_shared, Error **errp)
{
    ERRP_GUARD();
    struct gmem_create_with_order arg = { .size = size };
    GuestMemfdKvmCaps caps;
    GuestMemfdKvmPlan plan;
    uint64_t error_offset;
    KvmFile *kf;
    int fd, ret;

    if (!kvm_enabled()) {
        error_setg(errp, "guest_memfd needs KVM (-accel kvm)");
        error_append_hint(errp, "To run without KVM, add kernel-model=on to"
                          " use qemu-gmem1g's user-space model of the"
                          " guest_memfd kernel (development and tests).\n");
        return NULL;
    }
    read_caps(&caps);
    if (!guest_memfd_kvm_plan(&caps, page_size, init_shared, &plan, errp)) {
        return NULL;
    }
    arg.flags = plan.flags;
    arg.page_order = plan.page_order;

    fd = kvm_vm_ioctl(kvm_state, KVM_CREATE_GUEST_MEMFD, &arg);
    trace_guest_memfd_kvm_create(size, page_size, arg.flags, fd);
    if (fd < 0) {
        if (fd == -ENOMEM) {
            error_setg(errp, "not enough free %" PRIu64 " KiB hugetlb pages"
                       " for a 0x%" PRIx64 "-byte guest_memfd",
                       page_size / KiB, size);
            error_append_hint(errp, "Reserve more in"
                              " /sys/kernel/mm/hugepages.\n");
        } else {
            error_setg_errno(errp, -fd, "creating a guest_memfd (flags 0x%"
                             PRIx64 ") failed", (uint64_t)arg.flags);
        }
        return NULL;
    }
    kf = g_new0(KvmFile, 1);
    kf->caps = caps;
    kf->variant = variant_name(&caps);
    kf->bindings = g_array_new(false, false, sizeof(KvmBinding));
    kf->f.ops = &kvm_ops;
    kf->f.size = size;
    kf->f.page_size = page_size;
    kf->f.init_shared = init_shared;
    kf->f.fd = fd;
    if (plan.share_after_create) {
        ret = kvm_file_convert(&kf->f, 0, size, false, &error_offset);
        if (ret) {
            error_setg_errno(errp, -ret, "making the new guest_memfd shared"
                             " failed at offset 0x%" PRIx64, error_offset);
            kvm_file_close(&kf->f);
            return NULL;
        }
    }
    return &kf->f;
}

bool guest_memfd_kvm_in_place_supported(KVMState *s)
{
    GuestMemfdKvmCaps caps;

    assert(s == kvm_state);
    read_caps(&caps);
    return guest_memfd_kvm_can_map(&caps);
}

/* The guest_memfd file an in-place block maps; NULL for other blocks. */
static GuestMemfdFile *block_file(RAMBlock *rb)
{
    GuestMemfdRegion *r;

    if (!(rb->flags & RAM_GUEST_MEMFD_IN_PLACE)) {
        return NULL;
    }
    r = guest_memfd_region_of(rb->mr);
    return r ? guest_memfd_region_file(r) : NULL;
}

/* The KVM guest_memfd file of an in-place block; NULL for other blocks. */
static KvmFile *kvm_file_of(RAMBlock *rb)
{
    GuestMemfdFile *f = block_file(rb);

    return f && f->ops == &kvm_ops ? kvm_file(f) : NULL;
}

void *guest_memfd_kvm_slot_userspace(RAMBlock *rb, void *ram)
{
    GuestMemfdFile *f = block_file(rb);
    uint8_t *view;

    if (!f) {
        return ram;
    }
    view = guest_memfd_is_model(f) ? guest_memfd_model_guest_view(f) : NULL;
    return view ? view + ((uint8_t *)ram - rb->host) : ram;
}

bool guest_memfd_kvm_slot_bind(RAMBlock *rb, uint64_t offset, uint64_t size)
{
    KvmFile *kf = kvm_file_of(rb);
    KvmBinding b = { .offset = offset, .size = size };

    if (!kf) {
        return true;
    }
    for (guint i = 0; i < kf->bindings->len; i++) {
        KvmBinding *o = &g_array_index(kf->bindings, KvmBinding, i);

        if (offset < o->offset + o->size && o->offset < offset + size) {
            trace_guest_memfd_kvm_slot_alias(offset, size, o->offset);
            return false;
        }
    }
    g_array_append_val(kf->bindings, b);
    return true;
}

void guest_memfd_kvm_slot_unbind(RAMBlock *rb, uint64_t offset,
                                 uint64_t size)
{
    KvmFile *kf = kvm_file_of(rb);

    if (!kf) {
        return;
    }
    for (guint i = 0; i < kf->bindings->len; i++) {
        KvmBinding *o = &g_array_index(kf->bindings, KvmBinding, i);

        if (o->offset == offset && o->size == size) {
            g_array_remove_index_fast(kf->bindings, i);
            return;
        }
    }
}

/* Guest requests: KVM_HC_MAP_GPA_RANGE */

/* The attribute bits a request may carry: the page-size hint, encrypted. */
#define MAP_GPA_RANGE_PAGE_SZ_MASK  0xf
#define MAP_GPA_RANGE_KNOWN         (MAP_GPA_RANGE_PAGE_SZ_MASK | \
                                     KVM_MAP_GPA_RANGE_ENCRYPTED)

static bool serving_guest_requests;

void guest_memfd_kvm_serve_guest_requests(void)
{
    int mask;

    if (serving_guest_requests || !kvm_enabled()) {
        return;
    }
    mask = kvm_vm_check_extension(kvm_state, KVM_CAP_EXIT_HYPERCALL);
    if (mask <= 0 || !(mask & BIT(KVM_HC_MAP_GPA_RANGE))) {
        warn_report("this KVM does not forward KVM_HC_MAP_GPA_RANGE to"
                    " QEMU (KVM_CAP_EXIT_HYPERCALL 0x%x): guests of"
                    " guest_memfd memory cannot ask for conversions through"
                    " it", MAX(mask, 0));
        return;
    }
    /* SEV-SNP enables the same exit: enabling it twice is harmless. */
    if (kvm_vm_enable_cap(kvm_state, KVM_CAP_EXIT_HYPERCALL, 0,
                          BIT(KVM_HC_MAP_GPA_RANGE))) {
        warn_report("enabling KVM_HC_MAP_GPA_RANGE exits failed: guests of"
                    " guest_memfd memory cannot ask for conversions");
        return;
    }
    serving_guest_requests = true;
}

/* Why a request is malformed, or NULL: what KVM does not check itself. */
static const char *map_gpa_range_malformed(uint64_t gpa, uint64_t npages,
                                           uint64_t attrs)
{
    if (attrs & ~(uint64_t)MAP_GPA_RANGE_KNOWN) {
        return "unknown attribute bits";
    }
    if ((attrs & MAP_GPA_RANGE_PAGE_SZ_MASK) > KVM_MAP_GPA_RANGE_PAGE_SZ_1G) {
        return "an unknown page-size hint";
    }
    if (!QEMU_IS_ALIGNED(gpa, GUEST_MEMFD_PAGE_SIZE) || !npages) {
        return "an unaligned or empty range";
    }
    if (npages > (UINT64_MAX - gpa) / GUEST_MEMFD_PAGE_SIZE) {
        return "a page count that wraps around";
    }
    return NULL;
}

bool guest_memfd_kvm_serves_guest_requests(void)
{
    return serving_guest_requests;
}

int guest_memfd_kvm_map_gpa_range(uint64_t gpa, uint64_t npages,
                                  uint64_t attrs)
{
    bool to_private = attrs & KVM_MAP_GPA_RANGE_ENCRYPTED;
    const char *malformed;
    Error *err = NULL;
    int r;

    malformed = map_gpa_range_malformed(gpa, npages, attrs);
    if (malformed) {
        error_setg(&err, "%s", malformed);
        r = -EINVAL;
    } else {
        r = guest_memfd_convert_guest_request(gpa, npages *
                                              GUEST_MEMFD_PAGE_SIZE,
                                              to_private, &err);
    }
    trace_guest_memfd_kvm_map_gpa_range(gpa, npages, attrs, r);
    if (r) {
        qemu_log_mask(LOG_GUEST_ERROR, "KVM_HC_MAP_GPA_RANGE 0x%" PRIx64
                      " x %" PRIu64 " pages to %s refused (%s): %s\n", gpa,
                      npages, to_private ? "private" : "shared",
                      strerror(-r), error_get_pretty(err));
        error_free(err);
    }
    return r;
}
