/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Page state of one guest_memfd file, as QEMU knows it
 *
 * The bitmap changes only after the kernel has converted a range, so it
 * always equals what the kernel did.  Conversion to private can meet a
 * page that something still references (the kernel answers -EAGAIN with
 * the offset of that page); the clean part in front of it is converted,
 * and the rest is retried a few times with a doubling delay, because such
 * references (a DMA in flight, a transient page-table walk) usually go
 * away quickly.  After that the caller learns exactly how far it got.
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qemu/bitmap.h"
#include "qemu/host-utils.h"
#include "qemu/lockable.h"
#include "system/guest-memfd-state.h"
#include "trace.h"

/* Retries after -EAGAIN, and the first delay (doubled each time). */
#define CONVERT_RETRIES         5
#define CONVERT_RETRY_DELAY_US  50

typedef struct StateMapping {
    uint64_t offset;
    uint64_t len;
} StateMapping;

static bool state_has_private(GuestMemfdState *s)
{
    return s->shared.nr_shared < s->shared.pages;
}

/* Record that [first, first + n) pages now have state @shared. */
static void state_set(GuestMemfdState *s, uint64_t first, uint64_t n,
                      bool shared)
{
    bool had_private = state_has_private(s);

    guest_memfd_shared_pages_set(&s->shared, first, n, shared);
    if (had_private != state_has_private(s) &&
        s->private_changed) {
        s->private_changed(s->opaque);
    }
}

void guest_memfd_state_init(GuestMemfdState *s, GuestMemfdFile *file,
                            const char *name)
{
    memset(s, 0, sizeof(*s));
    s->file = file;
    s->name = g_strdup(name);
    guest_memfd_shared_pages_init(&s->shared,
                                  file->size / GUEST_MEMFD_PAGE_SIZE,
                                  ctz64(file->page_size /
                                        GUEST_MEMFD_PAGE_SIZE));
    s->mappings = g_array_new(false, false, sizeof(StateMapping));
    qemu_mutex_init(&s->lock);
    if (file->init_shared) {
        state_set(s, 0, s->shared.pages, true);
    }
}

void guest_memfd_state_destroy(GuestMemfdState *s)
{
    qemu_mutex_destroy(&s->lock);
    g_array_free(s->mappings, true);
    guest_memfd_shared_pages_destroy(&s->shared);
    g_free(s->name);
}

/* The first page in [offset, end) that QEMU maps, or end. */
static uint64_t state_first_mapped(GuestMemfdState *s, uint64_t offset,
                                   uint64_t end)
{
    uint64_t first = end;

    for (guint i = 0; i < s->mappings->len; i++) {
        StateMapping *m = &g_array_index(s->mappings, StateMapping, i);

        if (m->offset < end && offset < m->offset + m->len) {
            first = MIN(first, MAX(offset, QEMU_ALIGN_DOWN(
                                       m->offset, GUEST_MEMFD_PAGE_SIZE)));
        }
    }
    return first;
}

/*
 * Why the kernel (or its model) refused a conversion, in the words a user
 * can act on; strerror() where nothing more is known.
 */
static const char *convert_failure_cause(int err)
{
    switch (err) {
    case -EOPNOTSUPP:
        return "this kernel's guest_memfd cannot convert pages in place (it"
               " lacks the proposed KVM_SET_MEMORY_ATTRIBUTES2 on a"
               " guest_memfd; no released kernel has it)";
    case -ENOMEM:
        return "the kernel has no memory to split a huge folio into 4 KiB"
               " pages (Cannot allocate memory)";
    case -EINVAL:
        return "the kernel refused the range as invalid (not 4 KiB aligned,"
               " or past the end of the file)";
    case -EBADF:
        return "the guest_memfd file is closed";
    default:
        return strerror(-err);
    }
}

/*
 * One kernel call; updates the bitmap for what it converted.  A page QEMU
 * maps stops a conversion to private before the kernel is asked, as one
 * the kernel sees referenced would.
 */
static int state_kernel_convert(GuestMemfdState *s, uint64_t offset,
                                uint64_t size, bool to_private,
                                uint64_t *error_offset)
{
    int ret;

    if (to_private) {
        uint64_t mapped = state_first_mapped(s, offset, offset + size);

        if (mapped < offset + size) {
            *error_offset = mapped;
            trace_guest_memfd_convert_mapped(s->name, offset, size, mapped);
            return -EAGAIN;
        }
    }
    s->counters.kernel_calls++;
    ret = guest_memfd_convert(s->file, offset, size, to_private,
                              error_offset);
    trace_guest_memfd_convert_kernel(s->name, offset, size, to_private, ret,
                                     ret == -EAGAIN ? *error_offset : 0);
    if (!ret) {
        state_set(s, offset / GUEST_MEMFD_PAGE_SIZE,
                  size / GUEST_MEMFD_PAGE_SIZE, !to_private);
    }
    return ret;
}

static bool state_range_is(GuestMemfdState *s, uint64_t offset,
                           uint64_t size, bool private)
{
    uint64_t first = offset / GUEST_MEMFD_PAGE_SIZE;
    uint64_t end = first + size / GUEST_MEMFD_PAGE_SIZE;

    if (private) {
        return find_next_bit(s->shared.bits, end, first) >= end;
    }
    return find_next_zero_bit(s->shared.bits, end, first) >= end;
}

bool guest_memfd_state_range_ok(GuestMemfdState *s, uint64_t offset,
                                uint64_t size)
{
    return size && QEMU_IS_ALIGNED(offset | size, GUEST_MEMFD_PAGE_SIZE) &&
           size <= s->file->size && offset <= s->file->size - size;
}

int guest_memfd_state_convert_step(GuestMemfdState *s, uint64_t *cur,
                                   uint64_t end, bool to_private)
{
    uint64_t error_offset = 0;
    int ret;

    QEMU_LOCK_GUARD(&s->lock);
    if (state_range_is(s, *cur, end - *cur, to_private)) {
        /* Nothing to do: the kernel would return at once as well. */
        *cur = end;
        return 0;
    }
    ret = state_kernel_convert(s, *cur, end - *cur, to_private,
                               &error_offset);
    if (!ret) {
        *cur = end;
    } else if (ret == -EAGAIN && error_offset > *cur && error_offset < end) {
        /*
         * Pages in front of the referenced one are free to convert.  The
         * kernel may write error_offset even when it succeeds: keep ours.
         */
        uint64_t referenced = error_offset;

        ret = state_kernel_convert(s, *cur, referenced - *cur, to_private,
                                   &error_offset);
        if (!ret) {
            *cur = referenced;
            ret = -EAGAIN;
        }
    }
    return ret;
}

static int state_step(void *opaque, uint64_t *cur, uint64_t end,
                      bool to_private)
{
    return guest_memfd_state_convert_step(opaque, cur, end, to_private);
}

int guest_memfd_state_convert_by(GuestMemfdState *s, uint64_t offset,
                                 uint64_t size, bool to_private,
                                 GuestMemfdConvertStep step, void *opaque,
                                 uint64_t *done, Error **errp)
{
    uint64_t cur = offset, end = offset + size;
    unsigned attempt = 0, delay = CONVERT_RETRY_DELAY_US;
    int ret;

    if (done) {
        *done = 0;
    }
    if (!guest_memfd_state_range_ok(s, offset, size)) {
        error_setg(errp, "guest_memfd %s: range 0x%" PRIx64 "+0x%" PRIx64
                   " is not 4 KiB aligned inside the 0x%" PRIx64 "-byte file",
                   s->name, offset, size, s->file->size);
        return -EINVAL;
    }

    trace_guest_memfd_convert(s->name, offset, size, to_private);
    for (;;) {
        ret = step(opaque, &cur, end, to_private);
        if (ret != -EAGAIN || attempt == CONVERT_RETRIES) {
            break;
        }
        attempt++;
        WITH_QEMU_LOCK_GUARD(&s->lock) {
            s->counters.retried++;
        }
        trace_guest_memfd_convert_retry(s->name, cur, attempt, delay);
        /* No lock of ours is held: what holds the page can let it go. */
        g_usleep(delay);
        delay *= 2;
    }

    WITH_QEMU_LOCK_GUARD(&s->lock) {
        if (ret) {
            s->counters.failed++;
        } else if (to_private) {
            s->counters.to_private++;
        } else {
            s->counters.to_shared++;
        }
    }
    if (done) {
        *done = cur - offset;
    }
    trace_guest_memfd_convert_done(s->name, offset, cur - offset, !ret);
    if (!ret) {
        return 0;
    }
    if (ret == -EAGAIN) {
        error_setg(errp, "guest_memfd %s: page at offset 0x%" PRIx64
                   " is still referenced after %u retries; 0x%" PRIx64
                   " of 0x%" PRIx64 " bytes converted", s->name, cur,
                   attempt, cur - offset, size);
    } else {
        error_setg(errp, "guest_memfd %s: converting 0x%" PRIx64 "+0x%" PRIx64
                   " to %s failed after 0x%" PRIx64 " bytes: %s", s->name,
                   cur, end - cur, to_private ? "private" : "shared",
                   cur - offset, convert_failure_cause(ret));
    }
    return ret;
}

int guest_memfd_state_convert(GuestMemfdState *s, uint64_t offset,
                              uint64_t size, bool to_private, uint64_t *done,
                              Error **errp)
{
    return guest_memfd_state_convert_by(s, offset, size, to_private,
                                        state_step, s, done, errp);
}

bool guest_memfd_state_map(GuestMemfdState *s, uint64_t offset,
                           uint64_t len)
{
    StateMapping m = { .offset = offset, .len = len };

    QEMU_LOCK_GUARD(&s->lock);
    if (guest_memfd_state_any_private(s, offset, len)) {
        return false;
    }
    g_array_append_val(s->mappings, m);
    return true;
}

void guest_memfd_state_unmap(GuestMemfdState *s, uint64_t offset,
                             uint64_t len)
{
    QEMU_LOCK_GUARD(&s->lock);
    for (guint i = 0; i < s->mappings->len; i++) {
        StateMapping *m = &g_array_index(s->mappings, StateMapping, i);

        if (m->offset == offset && m->len == len) {
            g_array_remove_index_fast(s->mappings, i);
            return;
        }
    }
    g_assert_not_reached();
}

/*
 * Without the lock: the memory API asks on every access to guest_memfd RAM.
 * The bitmap never moves; a word read while a conversion rewrites it is
 * either its old or its new value, as if the access came just before or
 * just after the conversion.
 */
bool guest_memfd_state_any_private(GuestMemfdState *s, uint64_t offset,
                                   uint64_t len)
{
    uint64_t first = offset / GUEST_MEMFD_PAGE_SIZE;
    uint64_t last = (offset + len - 1) / GUEST_MEMFD_PAGE_SIZE;

    return find_next_zero_bit(s->shared.bits, last + 1, first) <= last;
}

bool guest_memfd_state_next_run(GuestMemfdState *s, uint64_t *offset,
                                uint64_t end, bool shared, uint64_t *len)
{
    uint64_t first = *offset / GUEST_MEMFD_PAGE_SIZE;
    uint64_t last = DIV_ROUND_UP(end, GUEST_MEMFD_PAGE_SIZE);
    uint64_t run_end;

    qemu_mutex_lock(&s->lock);
    if (shared) {
        first = find_next_bit(s->shared.bits, last, first);
        run_end = find_next_zero_bit(s->shared.bits, last, first);
    } else {
        first = find_next_zero_bit(s->shared.bits, last, first);
        run_end = find_next_bit(s->shared.bits, last, first);
    }
    qemu_mutex_unlock(&s->lock);
    if (first >= last) {
        return false;
    }
    *offset = first * GUEST_MEMFD_PAGE_SIZE;
    *len = MIN(run_end * GUEST_MEMFD_PAGE_SIZE, end) - *offset;
    return true;
}

bool guest_memfd_state_has_private(GuestMemfdState *s)
{
    bool any;

    qemu_mutex_lock(&s->lock);
    any = state_has_private(s);
    qemu_mutex_unlock(&s->lock);
    return any;
}

void guest_memfd_state_info(GuestMemfdState *s, GuestMemfdStateInfo *info)
{
    qemu_mutex_lock(&s->lock);
    info->shared_bytes = s->shared.nr_shared * GUEST_MEMFD_PAGE_SIZE;
    info->folios_with_shared = s->shared.nr_folios_with_shared;
    info->counters = s->counters;
    qemu_mutex_unlock(&s->lock);
}
