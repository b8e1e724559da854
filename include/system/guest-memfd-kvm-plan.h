/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * How to create a guest_memfd on the kernel at hand
 *
 * The kernels QEMU may meet encode huge pages and the initial page state
 * differently (guest-memfd-uapi.h).  guest_memfd_kvm_plan() turns what the
 * kernel offers and what the user asked for into the creation arguments,
 * or into an error that names the fix.  It is a pure function, so that
 * every decision is unit tested (tests/unit/test-guest-memfd-kvm-plan.c)
 * without a kernel that has these interfaces.
 */

#ifndef SYSTEM_GUEST_MEMFD_KVM_PLAN_H
#define SYSTEM_GUEST_MEMFD_KVM_PLAN_H

typedef enum GuestMemfdKvmHuge {
    GMEM_HUGE_NONE,         /* mainline: 4 KiB folios only */
    GMEM_HUGE_WIP,          /* flag + page_order byte (2025-12 branch) */
    GMEM_HUGE_RFC2,         /* flag + log2 size in flags[58:63] */
} GuestMemfdKvmHuge;

typedef enum GuestMemfdKvmConvert {
    GMEM_CONVERT_NONE,      /* no in-place conversion */
    GMEM_CONVERT_V8,        /* KVM_SET_MEMORY_ATTRIBUTES2 on the gmem fd */
    GMEM_CONVERT_RFC2,      /* KVM_GMEM_CONVERT_{SHARED,PRIVATE} */
} GuestMemfdKvmConvert;

/* What the kernel offers, as probed once per VM. */
typedef struct GuestMemfdKvmCaps {
    bool gmem;              /* KVM_CAP_GUEST_MEMFD */
    uint64_t flags;         /* KVM_CAP_GUEST_MEMFD_FLAGS: valid flags */
    bool rfc2_shared;       /* RFC v2's KVM_CAP_GMEM_SHARED_MEM */
    GuestMemfdKvmHuge huge;
    GuestMemfdKvmConvert convert;
} GuestMemfdKvmCaps;

typedef struct GuestMemfdKvmPlan {
    uint64_t flags;         /* kvm_create_guest_memfd.flags */
    uint8_t page_order;     /* the 2025-12 branch's page_order byte */
    /*
     * The kernel cannot create this file shared (hugetlb files start
     * private on the 2025-12 branch): convert it all to shared at once.
     */
    bool share_after_create;
} GuestMemfdKvmPlan;

/*
 * KVM_CHECK_EXTENSION on a VM: the capability's value, or 0 (or a negative
 * errno) when the kernel does not know it.
 */
typedef int (*GuestMemfdKvmCheckCap)(void *opaque, unsigned cap);

/*
 * Read what the kernel offers through @check.  QEMU asks its own VM; the
 * tests' host probe (tests/unit/guest-memfd-host.c) asks a VM of its own,
 * so that a test runs exactly where QEMU would.
 */
void guest_memfd_kvm_read_caps(GuestMemfdKvmCheckCap check, void *opaque,
                               GuestMemfdKvmCaps *caps);

/* Can QEMU map this kernel's guest_memfd (and so run a guest on it)? */
bool guest_memfd_kvm_can_map(const GuestMemfdKvmCaps *caps);

bool guest_memfd_kvm_plan(const GuestMemfdKvmCaps *caps, uint64_t page_size,
                          bool init_shared, GuestMemfdKvmPlan *plan,
                          Error **errp);

#endif
