/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Every kernel number qemu-gmem1g uses for guest_memfd, merged and proposed
 *
 * The proposed HugeTLB and in-place conversion interfaces have changed
 * encoding in every revision (see docs/devel/guest-memfd.rst).  They live
 * here, and only here, under the name of the revision that defined them;
 * system/guest-memfd-kvm.c probes which one the running kernel speaks.
 */

#ifndef SYSTEM_GUEST_MEMFD_UAPI_H
#define SYSTEM_GUEST_MEMFD_UAPI_H

#include <linux/kvm.h>

/*
 * Mainline: KVM_CAP_GUEST_MEMFD and KVM_MEMORY_ATTRIBUTE_PRIVATE come from
 * QEMU's linux-headers; these arrived in Linux 6.18, after the headers of
 * the QEMU the fork builds on.
 */
#define GMEM_CAP_GUEST_MEMFD_FLAGS      244     /* returns the flag mask */
#define GMEM_FLAG_MMAP                  (1ULL << 0)
#define GMEM_FLAG_INIT_SHARED           (1ULL << 1)

/*
 * Proposed HugeTLB guest_memfd, restructuring WIP branch (2025-12): flag
 * bit 2 plus a page order (log2 of huge page / 4 KiB) in the first byte
 * after "flags" of struct kvm_create_guest_memfd.
 */
#define GMEM_WIP_FLAG_HUGETLB           (1ULL << 2)
#define GMEM_WIP_ORDER_2M               9
#define GMEM_WIP_ORDER_1G               18

/*
 * Proposed HugeTLB guest_memfd, RFC v2 (2025-05): flag bit 2 plus log2 of
 * the page size in bits 58-63 of "flags".
 */
#define GMEM_RFC2_FLAG_SUPPORT_SHARED   (1ULL << 0)     /* = MMAP */
#define GMEM_RFC2_FLAG_INIT_PRIVATE     (1ULL << 1)     /* not INIT_SHARED */
#define GMEM_RFC2_FLAG_HUGETLB          (1ULL << 2)
#define GMEM_RFC2_CAP_SHARED_MEM        240
#define GMEM_RFC2_HUGETLB_SHIFT         58
#define GMEM_RFC2_CAP_CONVERSION        241
#define GMEM_RFC2_CAP_HUGETLB           242
#define GMEM_RFC2_IO                    0xAF
struct gmem_rfc2_convert {
    __u64 offset;
    __u64 size;
    __u64 error_offset;
    __u64 reserved[5];
};
#define GMEM_RFC2_CONVERT_SHARED \
    _IOWR(GMEM_RFC2_IO, 0x41, struct gmem_rfc2_convert)
#define GMEM_RFC2_CONVERT_PRIVATE \
    _IOWR(GMEM_RFC2_IO, 0x42, struct gmem_rfc2_convert)

/* Proposed in-place conversion, v8 (2026-06): an ioctl on the gmem fd. */
#define GMEM_V8_CAP_MEMORY_ATTRIBUTES   250
struct gmem_v8_memory_attributes2 {
    __u64 offset;
    __u64 size;
    __u64 attributes;
    __u64 flags;
    __u64 error_offset;
    __u64 reserved[11];
};
#define GMEM_V8_SET_MEMORY_ATTRIBUTES2 \
    _IOWR(KVMIO, 0xd2, struct gmem_v8_memory_attributes2)

/* The creation struct with the WIP branch's page_order byte. */
struct gmem_create_with_order {
    __u64 size;
    __u64 flags;
    __u8 page_order;
    __u8 reserve8;
    __u16 reserve16;
    __u32 reserve32;
    __u64 reserved[5];
};

#endif
