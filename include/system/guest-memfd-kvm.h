/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * guest_memfd through the host kernel's KVM
 */

#ifndef SYSTEM_GUEST_MEMFD_KVM_H
#define SYSTEM_GUEST_MEMFD_KVM_H

#include "system/guest-memfd-kernel.h"
#include "system/kvm.h"

/* Create a guest_memfd with KVM; a clear error naming the fix otherwise. */
GuestMemfdFile *guest_memfd_kvm_create(uint64_t size, uint64_t page_size,
                                       bool init_shared, Error **errp);
/* What the kernel offered KVM file @f, for users ("kvm: 4K pages, ..."). */
const char *guest_memfd_kvm_variant(GuestMemfdFile *f);
/* The memslots that bind KVM file @f, and the bytes they cover. */
void guest_memfd_kvm_bindings(GuestMemfdFile *f, unsigned *memslots,
                              uint64_t *bound);

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

/*
 * The user address a memslot over @ram (inside @rb) maps guest memory
 * from: @ram, but for the kernel model's files, whose private pages QEMU's
 * mapping keeps out of reach as the kernel would: there KVM maps the
 * model's guest view (guest_memfd_model_guest_view()), so that the guest
 * reads and writes its private pages and QEMU cannot.
 */
void *guest_memfd_kvm_slot_userspace(RAMBlock *rb, void *ram);

/*
 * Guests of in-place guest_memfd memory ask for conversions themselves:
 * have KVM forward their KVM_HC_MAP_GPA_RANGE hypercalls to QEMU (once a
 * backend exists; a warning if this KVM cannot).
 */
void guest_memfd_kvm_serve_guest_requests(void);

/* Does QEMU answer KVM_HC_MAP_GPA_RANGE exits itself (see below)? */
bool guest_memfd_kvm_serves_guest_requests(void);

/*
 * Answer one KVM_HC_MAP_GPA_RANGE exit (target/i386/kvm/kvm.c): convert
 * @npages 4 KiB pages at @gpa to private if @attrs has the encrypted bit,
 * else to shared.  Returns what the guest reads back in rax: 0, or
 * -EINVAL (malformed), -EFAULT (not all in-place guest_memfd RAM of one
 * backend), -EAGAIN (a page is still referenced: the pages before it are
 * converted, asking again completes it), -EOPNOTSUPP (this kernel cannot
 * convert in place), -ENOMEM.  A request never stops the VM.  Where QEMU
 * does not serve these requests (no in-place backend), upstream's
 * handling stands.
 */
int guest_memfd_kvm_map_gpa_range(uint64_t gpa, uint64_t npages,
                                  uint64_t attrs);

#endif
