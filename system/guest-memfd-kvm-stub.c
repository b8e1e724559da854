/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * guest_memfd in a QEMU built without KVM (--disable-kvm)
 *
 * Only the kernel model (kernel-model=on) can back the memory then; the
 * backend's calls into the KVM side say so, as guest-memfd-kvm.c does
 * when KVM is built but not in use.
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "system/guest-memfd-kvm.h"

GuestMemfdFile *guest_memfd_kvm_create(uint64_t size, uint64_t page_size,
                                       bool init_shared, Error **errp)
{
    error_setg(errp, "guest_memfd needs KVM, and this QEMU was built"
               " without it");
    error_append_hint(errp, "Add kernel-model=on to use qemu-gmem1g's"
                      " user-space model of the guest_memfd kernel"
                      " (development and tests).\n");
    return NULL;
}

const char *guest_memfd_kvm_variant(GuestMemfdFile *f)
{
    g_assert_not_reached();     /* there is no KVM file without KVM */
}

void guest_memfd_kvm_bindings(GuestMemfdFile *f, unsigned *memslots,
                              uint64_t *bound)
{
    g_assert_not_reached();
}

void guest_memfd_kvm_serve_guest_requests(void)
{
}
