/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Page state of one guest_memfd file, as QEMU knows it
 *
 * Which 4 KiB pages are shared (guest-memfd-shared-pages.h).  All
 * conversions of the file go through guest_memfd_state_convert(), which
 * calls the kernel (or its model, or the null kernel) and changes the bits
 * only for what the kernel converted.  Nothing here knows about guest
 * addresses or QOM: the page-state core (guest-memfd.h) adds that, and
 * benchmarks and unit tests use this part alone.
 */

#ifndef SYSTEM_GUEST_MEMFD_STATE_H
#define SYSTEM_GUEST_MEMFD_STATE_H

#include "qemu/thread.h"
#include "system/guest-memfd-kernel.h"
#include "system/guest-memfd-shared-pages.h"

#define GUEST_MEMFD_PAGE_SIZE   4096ULL

typedef struct GuestMemfdCounters {
    uint64_t to_shared;     /* requests that made pages shared */
    uint64_t to_private;    /* requests that made pages private */
    uint64_t failed;        /* requests that failed */
    uint64_t retried;       /* retries after -EAGAIN */
    uint64_t kernel_calls;  /* convert calls into the kernel */
} GuestMemfdCounters;

typedef struct GuestMemfdState {
    GuestMemfdFile *file;
    char *name;                 /* for errors and traces */
    QemuMutex lock;
    GuestMemfdSharedPages shared;
    GuestMemfdCounters counters;
    /*
     * Ranges QEMU itself maps (address_space_map(): DMA in flight): like
     * the kernel's references, they keep their pages from becoming
     * private until they are unmapped.
     */
    GArray *mappings;
    /* Called, with the lock held, when "some page is private" flips. */
    void (*private_changed)(void *opaque);
    void *opaque;
} GuestMemfdState;

/* A snapshot for management interfaces. */
typedef struct GuestMemfdStateInfo {
    uint64_t shared_bytes;
    uint64_t folios_with_shared;
    GuestMemfdCounters counters;
} GuestMemfdStateInfo;

void guest_memfd_state_init(GuestMemfdState *s, GuestMemfdFile *file,
                            const char *name);
void guest_memfd_state_destroy(GuestMemfdState *s);

/* Is [offset, offset + size) a non-empty, 4 KiB aligned range of the file? */
bool guest_memfd_state_range_ok(GuestMemfdState *s, uint64_t offset,
                                uint64_t size);

/*
 * Convert [offset, offset + size) of the file.  Returns 0 when the whole
 * range has the requested state.  When the kernel reports a referenced page
 * (-EAGAIN), the pages in front of it are converted and the rest retried a
 * bounded number of times with a growing delay.  On failure returns the
 * kernel's negative errno (-EINVAL for a range outside the file), @errp
 * says why and *done (if not NULL) is the number of bytes from @offset
 * converted.
 */
int guest_memfd_state_convert(GuestMemfdState *s, uint64_t offset,
                              uint64_t size, bool to_private, uint64_t *done,
                              Error **errp);

/*
 * One attempt at converting [*cur, end), with the state's lock held for
 * it: 0 when all of it has the requested state, or the kernel's negative
 * errno.  *cur moves past what was converted: with -EAGAIN, up to the
 * referenced page.
 */
int guest_memfd_state_convert_step(GuestMemfdState *s, uint64_t *cur,
                                   uint64_t end, bool to_private);

/*
 * guest_memfd_state_convert(), each attempt made by @step (which wraps
 * guest_memfd_state_convert_step() in what its caller must do around
 * it, under its own locks).  Between attempts neither the state's lock
 * nor the step's are held, so that the delay before a retry holds up no
 * other conversion (a caller that holds the BQL keeps it).
 */
typedef int (*GuestMemfdConvertStep)(void *opaque, uint64_t *cur,
                                     uint64_t end, bool to_private);
int guest_memfd_state_convert_by(GuestMemfdState *s, uint64_t offset,
                                 uint64_t size, bool to_private,
                                 GuestMemfdConvertStep step, void *opaque,
                                 uint64_t *done, Error **errp);

/* Is any page of [offset, offset + len) private?  (len > 0, in range) */
bool guest_memfd_state_any_private(GuestMemfdState *s, uint64_t offset,
                                   uint64_t len);
/*
 * QEMU maps [offset, offset + len) of the file: false (nothing recorded)
 * if a page of it is private.  Until the matching unmap, converting any of
 * its pages to private fails as the kernel fails on a referenced page
 * (-EAGAIN, the pages in front of it converted).
 */
bool guest_memfd_state_map(GuestMemfdState *s, uint64_t offset,
                           uint64_t len);
void guest_memfd_state_unmap(GuestMemfdState *s, uint64_t offset,
                             uint64_t len);
bool guest_memfd_state_has_private(GuestMemfdState *s);
/*
 * Find the first run of pages with state @shared in [*offset, end): set
 * *offset and *len to it and return true, or return false if there is none.
 */
bool guest_memfd_state_next_run(GuestMemfdState *s, uint64_t *offset,
                                uint64_t end, bool shared, uint64_t *len);
void guest_memfd_state_info(GuestMemfdState *s, GuestMemfdStateInfo *info);

#endif
