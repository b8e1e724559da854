/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * How to create a guest_memfd on the kernel at hand: every decision
 * between what the user asked for and what the kernel offers.
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qemu/cutils.h"
#include "qemu/host-utils.h"
#include "qemu/units.h"
#include "system/guest-memfd-kvm-plan.h"
#include "system/guest-memfd-uapi.h"

/* Huge folios: each proposal encodes the size its own way. */
static bool plan_page_size(const GuestMemfdKvmCaps *caps, uint64_t page_size,
                           GuestMemfdKvmPlan *plan, Error **errp)
{
    ERRP_GUARD();
    if (page_size == 4 * KiB) {
        return true;
    }
    switch (caps->huge) {
    case GMEM_HUGE_WIP:
        plan->flags |= GMEM_WIP_FLAG_HUGETLB;
        plan->page_order = page_size == 1 * GiB ? GMEM_WIP_ORDER_1G :
                                                  GMEM_WIP_ORDER_2M;
        return true;
    case GMEM_HUGE_RFC2:
        plan->flags |= GMEM_RFC2_FLAG_HUGETLB |
                       ((uint64_t)ctz64(page_size) << GMEM_RFC2_HUGETLB_SHIFT);
        return true;
    default: {
        g_autofree char *size = size_to_str(page_size);

        error_setg(errp, "this kernel has no hugetlb guest_memfd, so pages"
                   " of %s (pagesize) are not possible", size);
        error_append_hint(errp, "Use pagesize=4K, or kernel-model=on to use"
                          " the user-space model of the 1 GiB guest_memfd"
                          " kernel.\n");
        return false;
    }
    }
}

/* The initial state of every page. */
static bool plan_initial_state(const GuestMemfdKvmCaps *caps,
                               bool init_shared, GuestMemfdKvmPlan *plan,
                               Error **errp)
{
    ERRP_GUARD();
    bool converts = caps->convert != GMEM_CONVERT_NONE;

    if (!init_shared) {
        if (!converts) {
            error_setg(errp, "this kernel cannot convert guest_memfd pages"
                       " in place, so memory that starts private could"
                       " never be shared");
            error_append_hint(errp, "Use init-shared=on, or kernel-model=on"
                              " to use the user-space model.\n");
            return false;
        }
        /* RFC v2 starts shared unless told; later kernels the other way. */
        if (caps->huge == GMEM_HUGE_RFC2) {
            plan->flags |= GMEM_RFC2_FLAG_INIT_PRIVATE;
        }
        return true;
    }
    if (caps->huge == GMEM_HUGE_RFC2) {
        return true;
    }
    if (plan->flags & GMEM_WIP_FLAG_HUGETLB) {
        /* The 2025-12 branch refuses HUGETLB | INIT_SHARED. */
        if (!converts) {
            error_setg(errp, "this kernel creates hugetlb guest_memfd"
                       " private and cannot convert it");
            error_append_hint(errp, "Use init-shared=off.\n");
            return false;
        }
        plan->share_after_create = true;
        return true;
    }
    if (!(caps->flags & GMEM_FLAG_INIT_SHARED)) {
        error_setg(errp, "this kernel cannot create guest_memfd memory that"
                   " starts shared");
        error_append_hint(errp, "Use init-shared=off.\n");
        return false;
    }
    plan->flags |= GMEM_FLAG_INIT_SHARED;
    return true;
}

void guest_memfd_kvm_read_caps(GuestMemfdKvmCheckCap check, void *opaque,
                               GuestMemfdKvmCaps *caps)
{
    int flags = check(opaque, GMEM_CAP_GUEST_MEMFD_FLAGS);
    int v8_attributes = check(opaque, GMEM_V8_CAP_MEMORY_ATTRIBUTES);

    *caps = (GuestMemfdKvmCaps) {
        .gmem = check(opaque, KVM_CAP_GUEST_MEMFD) > 0,
        .flags = flags > 0 ? flags : 0,
    };
    /* v8 answers with the attributes its gmem ioctl takes. */
    if (v8_attributes > 0 && (v8_attributes & KVM_MEMORY_ATTRIBUTE_PRIVATE)) {
        caps->convert = GMEM_CONVERT_V8;
    } else if (check(opaque, GMEM_RFC2_CAP_CONVERSION) > 0) {
        caps->convert = GMEM_CONVERT_RFC2;
        caps->rfc2_shared = check(opaque, GMEM_RFC2_CAP_SHARED_MEM) > 0;
    }
    if (caps->convert == GMEM_CONVERT_RFC2 &&
        check(opaque, GMEM_RFC2_CAP_HUGETLB) > 0) {
        caps->huge = GMEM_HUGE_RFC2;
    } else if (caps->flags & GMEM_WIP_FLAG_HUGETLB) {
        caps->huge = GMEM_HUGE_WIP;
    }
}

bool guest_memfd_kvm_can_map(const GuestMemfdKvmCaps *caps)
{
    return caps->gmem && ((caps->flags & GMEM_FLAG_MMAP) || caps->rfc2_shared);
}

bool guest_memfd_kvm_plan(const GuestMemfdKvmCaps *caps, uint64_t page_size,
                          bool init_shared, GuestMemfdKvmPlan *plan,
                          Error **errp)
{
    ERRP_GUARD();
    *plan = (GuestMemfdKvmPlan) { 0 };
    if (!guest_memfd_kvm_can_map(caps)) {
        error_setg(errp, "this kernel has no mmap-able guest_memfd (Linux"
                   " 6.18 or later is needed)");
        error_append_hint(errp, "Add kernel-model=on to use the user-space"
                          " model instead.\n");
        return false;
    }
    /* QEMU maps the file: RFC v2's SUPPORT_SHARED is the same bit. */
    plan->flags = GMEM_FLAG_MMAP;
    return plan_page_size(caps, page_size, plan, errp) &&
           plan_initial_state(caps, init_shared, plan, errp);
}
