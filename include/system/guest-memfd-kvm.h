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

#endif
