/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Which 4 KiB pages of a guest_memfd file are shared
 *
 * One bit per page (set: shared) and, per folio, the number of shared
 * pages, so that "does this folio hold shared pages?" (a huge folio that
 * does must be split) and every total cost O(1).  QEMU's page state
 * (guest-memfd-state.c) and the kernel model's attributes
 * (guest-memfd-model.c) each keep one: the same bookkeeping on the two
 * sides of the kernel interface.
 */

#ifndef SYSTEM_GUEST_MEMFD_SHARED_PAGES_H
#define SYSTEM_GUEST_MEMFD_SHARED_PAGES_H

#include "qemu/bitmap.h"

typedef struct GuestMemfdSharedPages {
    unsigned long *bits;            /* one per 4 KiB page: set = shared */
    uint32_t *per_folio;            /* shared pages in each folio */
    uint64_t pages;
    unsigned folio_shift;           /* log2(pages per folio) */
    uint64_t nr_shared;             /* shared pages */
    uint64_t nr_folios_with_shared;
} GuestMemfdSharedPages;

/* @pages pages in folios of 1 << @folio_shift pages, all private. */
static inline void guest_memfd_shared_pages_init(GuestMemfdSharedPages *sp,
                                                 uint64_t pages,
                                                 unsigned folio_shift)
{
    *sp = (GuestMemfdSharedPages) {
        .bits = bitmap_new(pages),
        .per_folio = g_new0(uint32_t,
                            DIV_ROUND_UP(pages, 1ULL << folio_shift)),
        .pages = pages,
        .folio_shift = folio_shift,
    };
}

static inline void guest_memfd_shared_pages_destroy(GuestMemfdSharedPages *sp)
{
    g_free(sp->bits);
    g_free(sp->per_folio);
}

/* Pages [first, first + n) are now shared (@shared) or private. */
static inline void guest_memfd_shared_pages_set(GuestMemfdSharedPages *sp,
                                                uint64_t first, uint64_t n,
                                                bool shared)
{
    uint64_t end = first + n;

    while (first < end) {
        uint64_t folio = first >> sp->folio_shift;
        uint64_t len = MIN(end, (folio + 1) << sp->folio_shift) - first;
        uint64_t was = bitmap_count_one_with_offset(sp->bits, first, len);
        bool had_shared = sp->per_folio[folio];

        if (shared) {
            bitmap_set(sp->bits, first, len);
            sp->per_folio[folio] += len - was;
            sp->nr_shared += len - was;
        } else {
            bitmap_clear(sp->bits, first, len);
            sp->per_folio[folio] -= was;
            sp->nr_shared -= was;
        }
        if (had_shared != !!sp->per_folio[folio]) {
            sp->nr_folios_with_shared += had_shared ? -1 : 1;
        }
        first += len;
    }
}

#endif
