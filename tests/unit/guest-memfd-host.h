/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * What this host can do for the guest_memfd tests: the one probe every
 * test that needs a kernel feature asks
 *
 * A test runs or SKIPs with the reason given here; none infers a
 * capability from a device node.  KVM is asked the way QEMU asks it (a VM
 * of the probe's own, the capabilities read by guest_memfd_kvm_read_caps()),
 * so a test runs exactly where QEMU would accept its command line.
 */

#ifndef TESTS_UNIT_GUEST_MEMFD_HOST_H
#define TESTS_UNIT_GUEST_MEMFD_HOST_H

#include "system/guest-memfd-kvm-plan.h"

typedef enum GmemHostNeed {
    GMEM_NEEDS_ROOT = 1 << 0,
    /* /dev/kvm opens read-write and creates a VM */
    GMEM_NEEDS_KVM = 1 << 1,
    /* ... with guest_memfd QEMU can map (Linux 6.18+): -accel kvm runs */
    GMEM_NEEDS_KVM_GMEM = 1 << 2,
    /* ... with hugetlb guest_memfd (no released kernel has it) */
    GMEM_NEEDS_KVM_GMEM_HUGETLB = 1 << 3,
    /* ... that converts guest_memfd pages in place (none has it yet) */
    GMEM_NEEDS_KVM_GMEM_CONVERT = 1 << 4,
    /* KVM that forwards KVM_HC_MAP_GPA_RANGE to QEMU (any VM type) */
    GMEM_NEEDS_KVM_MAP_GPA_RANGE = 1 << 5,
    /* KVM whose vCPUs run: an I/O exit and a hypercall, then hlt */
    GMEM_NEEDS_KVM_RUNS = 1 << 6,
    /* a PCI device bound to vfio-pci whose IOMMU group opens */
    GMEM_NEEDS_VFIO_DEVICE = 1 << 7,
} GmemHostNeed;

typedef struct GmemHostPool {
    int64_t nr, free, resv;     /* -1: the host has no pool of this size */
} GmemHostPool;

typedef struct GmemHost {
    bool root;
    bool kvm;                   /* a VM could be created */
    char *kvm_why;              /* why not, when !kvm */
    char *kvm_run_why;          /* why its vCPUs do not run, or NULL */
    GuestMemfdKvmCaps caps;     /* what that VM offers */
    int kvm_exit_hypercall;     /* KVM_CAP_EXIT_HYPERCALL: the valid mask */
    GmemHostPool pool_2m, pool_1g;
    char *vfio_device;          /* bound to vfio-pci, its group opens */
    char *vfio_why;             /* why there is none */
} GmemHost;

/* The host, probed on first use (the pools are read again on each call). */
const GmemHost *gmem_host(void);

/*
 * NULL when the host has all of @needs (GmemHostNeed bits); otherwise why
 * not, as a sentence for g_test_skip() (owned by the probe).
 */
const char *gmem_host_lacks(unsigned needs);

/* The PCI address of a device QEMU can assign (GMEM_NEEDS_VFIO_DEVICE). */
const char *gmem_host_vfio_device(void);

/* A field of the host's hugetlb pool of @page_size; -1 if it has none. */
int64_t gmem_host_hugepages(uint64_t page_size, const char *what);

/*
 * NULL when the host has @count free hugetlb pages of @page_size;
 * otherwise why not and how to reserve them (free with g_free()).
 */
char *gmem_host_lacks_hugepages(uint64_t page_size, int64_t count);

/* Every fact above, one per line, for people and scripts. */
char *gmem_host_describe(void);

#endif
