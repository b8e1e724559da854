/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * guest_memfd through the host kernel's KVM
 */

#ifndef SYSTEM_GUEST_MEMFD_KVM_H
#define SYSTEM_GUEST_MEMFD_KVM_H

#include "system/guest-memfd-kernel.h"

/* Create a guest_memfd with KVM; a clear error naming the fix otherwise. */
GuestMemfdFile *guest_memfd_kvm_create(uint64_t size, uint64_t page_size,
                                       bool init_shared, Error **errp);
/* What the running kernel offers, for users ("kvm: 4K pages, ..."). */
const char *guest_memfd_kvm_variant(void);

/*
 * Can VM @s have guest_memfd memslots without the PRIVATE memory
 * attribute?  True when the kernel offers mmap-able guest_memfd (Linux
 * 6.18+ on a default VM), which the guest runs on in place.
 */
bool guest_memfd_kvm_in_place_supported(KVMState *s);

/*
 * Memslots over in-place guest_memfd RAM (accel/kvm/kvm-all.c).  May a new
 * memslot over [offset, offset + size) of @rb bind @rb's guest_memfd?  For
 * blocks that are not in-place guest_memfd the caller's choice stands
 * (true).  Otherwise true for the first memslot over each range of the
 * file, which then holds it until guest_memfd_kvm_slot_unbind(); false for
 * a second memslot over the same range (an alias, such as q35's SMRAM
 * windows or the SMM address space), which KVM would refuse to bind: that
 * one maps the same pages as user memory, through QEMU's mapping of the
 * file.
 */
bool guest_memfd_kvm_slot_bind(RAMBlock *rb, uint64_t offset, uint64_t size);
void guest_memfd_kvm_slot_unbind(RAMBlock *rb, uint64_t offset,
                                 uint64_t size);

#endif
