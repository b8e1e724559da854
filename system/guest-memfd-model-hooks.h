/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * guest_memfd kernel model: what it shares with its test hooks
 *
 * The faults a test can inject and the host's hugetlb counters that the
 * model's pools follow: the model checks and reads them, and the test-only
 * API (tests/unit/guest-memfd-model-testing.h) hands them to tests.  QEMU
 * itself uses neither.
 */

#ifndef SYSTEM_GUEST_MEMFD_MODEL_HOOKS_H
#define SYSTEM_GUEST_MEMFD_MODEL_HOOKS_H

/*
 * Faults a test can inject (guest_memfd_model_inject(), test-only); each
 * fires on the next @count matching calls.  The state machine and the pool
 * check for them; in QEMU the counters stay 0.
 */
typedef enum GuestMemfdModelFault {
    GMEM_MODEL_FAULT_CREATE_ENOMEM,     /* create: pool reservation fails */
    GMEM_MODEL_FAULT_CONVERT_EAGAIN,    /* convert to private: -EAGAIN */
    GMEM_MODEL_FAULT_SPLIT_ENOMEM,      /* split: -ENOMEM (vmemmap restore) */
    GMEM_MODEL_FAULT_PUNCH_EAGAIN,      /* punch_hole: -EAGAIN */
    GMEM_MODEL_FAULT__MAX,
} GuestMemfdModelFault;

/*
 * A counter of the host's hugetlb pool of @page_size, e.g. "free_hugepages"
 * (/sys/kernel/mm/hugepages); -1 if the host has no such pool.  The pool
 * follows the host's with it; tests compare the two.
 */
int64_t guest_memfd_host_hugetlb(uint64_t page_size, const char *what);

#endif
