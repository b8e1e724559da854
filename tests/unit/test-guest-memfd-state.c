/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Unit tests of the page state QEMU keeps for a guest_memfd file: it must
 * always equal what the kernel converted, with exact progress when the
 * kernel refuses part of a request.
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qemu/units.h"
#include "system/guest-memfd-state.h"
#include "system/guest-memfd-model.h"
#include "tests/unit/guest-memfd-model-testing.h"

#define PAGE GUEST_MEMFD_PAGE_SIZE

/* The state's view and the model's agree page by page. */
/* guest_memfd_state_convert(), which must answer @want (0 or -errno). */
static void expect_convert(GuestMemfdState *s, uint64_t offset, uint64_t size,
                           bool to_private, uint64_t *done, Error **errp,
                           int want)
{
    g_assert_cmpint(guest_memfd_state_convert(s, offset, size, to_private,
                                              done, errp), ==, want);
}

static void assert_agrees(GuestMemfdState *s)
{
    GuestMemfdFile *f = s->file;
    uint64_t shared = 0;

    for (uint64_t off = 0; off < f->size; off += PAGE) {
        bool priv = guest_memfd_model_page_private(f, off);

        g_assert_cmpint(guest_memfd_state_any_private(s, off, PAGE), ==,
                        priv);
        shared += !priv;
    }
    g_assert_cmpuint(s->shared.nr_shared, ==, shared);
    g_assert(guest_memfd_model_check(f, &error_abort));
}

static GuestMemfdFile *model_file(uint64_t size, uint64_t page_size,
                                  bool init_shared)
{
    /* A simulated pool, so that the tests run on any host. */
    guest_memfd_model_set_simulated_pool(page_size, 4 * size / page_size);
    return guest_memfd_model_create(size, page_size, init_shared,
                                    &error_abort);
}

/* Converting a range the state already has costs no kernel call. */
static void test_noop(void)
{
    GuestMemfdFile *f = model_file(4 * MiB, 2 * MiB, false);
    GuestMemfdState s;

    guest_memfd_state_init(&s, f, "t");
    expect_convert(&s, 0, 4 * MiB, true, NULL, &error_abort, 0);
    g_assert_cmpuint(s.counters.kernel_calls, ==, 0);
    g_assert_cmpuint(s.counters.to_private, ==, 1);
    expect_convert(&s, PAGE, PAGE, false, NULL, &error_abort, 0);
    g_assert_cmpuint(s.counters.kernel_calls, ==, 1);
    assert_agrees(&s);
    guest_memfd_state_destroy(&s);
    guest_memfd_close(f);
}

/* Per-folio counters: split folios are the ones with a shared page. */
static void test_folio_counters(void)
{
    GuestMemfdFile *f = model_file(8 * MiB, 2 * MiB, false);
    GuestMemfdState s;
    GuestMemfdStateInfo info;

    guest_memfd_state_init(&s, f, "t");
    /* One page in folio 0, a range across folios 1 and 2. */
    expect_convert(&s, 5 * PAGE, PAGE, false, NULL, &error_abort, 0);
    expect_convert(&s, 4 * MiB - 2 * PAGE, 4 * PAGE, false, NULL, &error_abort,
                   0);
    guest_memfd_state_info(&s, &info);
    g_assert_cmpuint(info.folios_with_shared, ==, 3);
    g_assert_cmpuint(info.shared_bytes, ==, 5 * PAGE);
    g_assert_cmpuint(s.shared.per_folio[0], ==, 1);
    g_assert_cmpuint(s.shared.per_folio[1], ==, 2);
    g_assert_cmpuint(s.shared.per_folio[2], ==, 2);

    expect_convert(&s, 0, 8 * MiB, true, NULL, &error_abort, 0);
    guest_memfd_state_info(&s, &info);
    g_assert_cmpuint(info.folios_with_shared, ==, 0);
    g_assert_cmpuint(info.shared_bytes, ==, 0);
    assert_agrees(&s);
    guest_memfd_state_destroy(&s);
    guest_memfd_close(f);
}

/*
 * A pinned page: the pages in front of it convert, the rest is retried a
 * bounded number of times, and the caller learns the exact progress.
 */
static void test_pinned_progress(void)
{
    GuestMemfdFile *f = model_file(4 * MiB, 4 * KiB, true);
    GuestMemfdState s;
    Error *err = NULL;
    uint64_t done = 0;

    guest_memfd_state_init(&s, f, "t");
    g_assert_cmpint(guest_memfd_model_pin(f, 10 * PAGE), ==, 0);
    expect_convert(&s, 4 * PAGE, 16 * PAGE, true, &done, &err, -EAGAIN);
    g_assert(err);
    g_assert(strstr(error_get_pretty(err), "still referenced"));
    error_free(err);
    g_assert_cmpuint(done, ==, 6 * PAGE);
    g_assert_cmpuint(s.counters.failed, ==, 1);
    g_assert_cmpuint(s.counters.retried, ==, 5);
    g_assert(guest_memfd_state_any_private(&s, 9 * PAGE, PAGE));
    g_assert_false(guest_memfd_state_any_private(&s, 10 * PAGE, 10 * PAGE));
    assert_agrees(&s);

    g_assert_cmpint(guest_memfd_model_unpin(f, 10 * PAGE), ==, 0);
    expect_convert(&s, 4 * PAGE, 16 * PAGE, true, &done, &error_abort, 0);
    g_assert_cmpuint(done, ==, 16 * PAGE);
    assert_agrees(&s);
    guest_memfd_state_destroy(&s);
    guest_memfd_close(f);
}

/*
 * KVM's conversion ioctls write error_offset on success too (as 0).  The
 * progress of a conversion that stops at a referenced page must not
 * depend on that: a file that does it, over the model, converts exactly
 * the pages in front of the pinned one, and none before the range.
 */
typedef struct ZeroingFile {
    GuestMemfdFile f;
    GuestMemfdFile *model;
} ZeroingFile;

static GuestMemfdFile *zeroing_model(GuestMemfdFile *f)
{
    return container_of(f, ZeroingFile, f)->model;
}

static int zeroing_convert(GuestMemfdFile *f, uint64_t offset, uint64_t size,
                           bool to_private, uint64_t *error_offset)
{
    GuestMemfdFile *m = zeroing_model(f);
    int ret = m->ops->convert(m, offset, size, to_private, error_offset);

    if (!ret) {
        *error_offset = 0;
    }
    return ret;
}

static int zeroing_punch_hole(GuestMemfdFile *f, uint64_t offset,
                              uint64_t size)
{
    GuestMemfdFile *m = zeroing_model(f);

    return m->ops->punch_hole(m, offset, size);
}

static int zeroing_allocate(GuestMemfdFile *f, uint64_t offset,
                            uint64_t size)
{
    GuestMemfdFile *m = zeroing_model(f);

    return m->ops->allocate(m, offset, size);
}

static void zeroing_close(GuestMemfdFile *f)
{
    guest_memfd_close(zeroing_model(f));
    g_free(container_of(f, ZeroingFile, f));
}

static const GuestMemfdKernelOps zeroing_ops = {
    .convert = zeroing_convert,
    .punch_hole = zeroing_punch_hole,
    .allocate = zeroing_allocate,
    .close = zeroing_close,
};

static void test_pinned_progress_kvm(void)
{
    ZeroingFile *z = g_new0(ZeroingFile, 1);
    GuestMemfdState s;
    Error *err = NULL;
    uint64_t done = 0;

    z->model = model_file(4 * MiB, 4 * KiB, true);
    z->f = *z->model;
    z->f.ops = &zeroing_ops;
    guest_memfd_state_init(&s, &z->f, "t");
    g_assert_cmpint(guest_memfd_model_pin(z->model, 10 * PAGE), ==, 0);
    expect_convert(&s, 4 * PAGE, 16 * PAGE, true, &done, &err, -EAGAIN);
    error_free(err);
    g_assert_cmpuint(done, ==, 6 * PAGE);
    for (uint64_t p = 0; p < 24; p++) {
        bool want = p >= 4 && p < 10;

        g_assert_cmpint(guest_memfd_model_page_private(z->model, p * PAGE),
                        ==, want);
        g_assert_cmpint(guest_memfd_state_any_private(&s, p * PAGE, PAGE),
                        ==, want);
    }
    g_assert_cmpint(guest_memfd_model_unpin(z->model, 10 * PAGE), ==, 0);
    guest_memfd_state_destroy(&s);
    guest_memfd_close(&z->f);
}

/*
 * Pages QEMU maps (DMA in flight) stay shared like pages the kernel sees
 * referenced: the pages in front convert, the rest waits for the unmap,
 * and the kernel is not asked about the mapped page.  A private page
 * cannot be mapped.
 */
static void test_mapped_progress(void)
{
    GuestMemfdFile *f = model_file(4 * MiB, 2 * MiB, true);
    GuestMemfdState s;
    Error *err = NULL;
    uint64_t done = 0;

    guest_memfd_state_init(&s, f, "t");
    g_assert_true(guest_memfd_state_map(&s, 10 * PAGE + 100, 3 * PAGE));
    g_assert_true(guest_memfd_state_map(&s, 10 * PAGE + 100, 3 * PAGE));
    expect_convert(&s, 4 * PAGE, 16 * PAGE, true, &done, &err, -EAGAIN);
    g_assert(strstr(error_get_pretty(err), "still referenced"));
    error_free(err);
    err = NULL;
    g_assert_cmpuint(done, ==, 6 * PAGE);
    g_assert_cmpuint(s.counters.kernel_calls, ==, 1);
    g_assert(guest_memfd_state_any_private(&s, 9 * PAGE, PAGE));
    g_assert_false(guest_memfd_state_any_private(&s, 10 * PAGE, 10 * PAGE));
    g_assert_false(guest_memfd_state_map(&s, 8 * PAGE, 3 * PAGE));
    assert_agrees(&s);

    /* One of the two mappings gone: still mapped. */
    guest_memfd_state_unmap(&s, 10 * PAGE + 100, 3 * PAGE);
    expect_convert(&s, 10 * PAGE, PAGE, true, &done, &err, -EAGAIN);
    error_free(err);
    guest_memfd_state_unmap(&s, 10 * PAGE + 100, 3 * PAGE);
    expect_convert(&s, 4 * PAGE, 16 * PAGE, true, &done, &error_abort, 0);
    g_assert_cmpuint(done, ==, 16 * PAGE);
    assert_agrees(&s);
    /* To shared is never held back. */
    g_assert_true(guest_memfd_state_map(&s, 0, PAGE));
    expect_convert(&s, 0, 8 * PAGE, false, NULL, &error_abort, 0);
    guest_memfd_state_unmap(&s, 0, PAGE);
    guest_memfd_state_destroy(&s);
    guest_memfd_close(f);
}

/* A kernel error other than -EAGAIN fails at once and changes nothing. */
static void test_split_failure(void)
{
    GuestMemfdFile *f = model_file(4 * MiB, 2 * MiB, false);
    GuestMemfdState s;
    Error *err = NULL;
    uint64_t done = 1;

    guest_memfd_state_init(&s, f, "t");
    g_assert_cmpint(guest_memfd_allocate(f, 0, 4 * MiB), ==, 0);
    guest_memfd_model_inject(GMEM_MODEL_FAULT_SPLIT_ENOMEM, 1);
    expect_convert(&s, PAGE, PAGE, false, &done, &err, -ENOMEM);
    g_assert(strstr(error_get_pretty(err), "Cannot allocate memory"));
    error_free(err);
    g_assert_cmpuint(done, ==, 0);
    g_assert_cmpuint(s.counters.retried, ==, 0);
    g_assert_cmpuint(s.shared.nr_shared, ==, 0);
    assert_agrees(&s);
    guest_memfd_state_destroy(&s);
    guest_memfd_close(f);
}

/* Bad ranges are refused before the kernel sees them. */
static void test_bad_ranges(void)
{
    GuestMemfdFile *f = guest_memfd_null_create(2 * MiB, 2 * MiB, false);
    GuestMemfdState s;
    static const uint64_t bad[][2] = {
        { 0, 0 }, { 1, PAGE }, { 0, PAGE + 1 }, { 2 * MiB, PAGE },
        { 2 * MiB - PAGE, 2 * PAGE }, { -PAGE, 2 * PAGE },
    };

    guest_memfd_state_init(&s, f, "t");
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        Error *err = NULL;

        expect_convert(&s, bad[i][0], bad[i][1], false, NULL, &err, -EINVAL);
        g_assert(err);
        error_free(err);
    }
    g_assert_cmpuint(s.counters.kernel_calls, ==, 0);
    g_assert_cmpuint(s.shared.nr_shared, ==, 0);
    guest_memfd_state_destroy(&s);
    guest_memfd_close(f);
}

static int changes;

static void count_change(void *opaque)
{
    changes++;
}

/* The "some page is private" notification fires only when it flips. */
static void test_private_changed(void)
{
    GuestMemfdFile *f = guest_memfd_null_create(4 * MiB, 4 * KiB, true);
    GuestMemfdState s;

    guest_memfd_state_init(&s, f, "t");
    s.private_changed = count_change;
    g_assert_false(guest_memfd_state_has_private(&s));
    expect_convert(&s, 0, 2 * PAGE, true, NULL, &error_abort, 0);
    expect_convert(&s, 8 * PAGE, PAGE, true, NULL, &error_abort, 0);
    g_assert_cmpint(changes, ==, 1);
    g_assert(guest_memfd_state_has_private(&s));
    expect_convert(&s, 0, 16 * PAGE, false, NULL, &error_abort, 0);
    g_assert_cmpint(changes, ==, 2);
    guest_memfd_state_destroy(&s);
    guest_memfd_close(f);
}

/* Runs of shared and private pages, as RamDiscardManager replays see them. */
static void test_runs(void)
{
    GuestMemfdFile *f = guest_memfd_null_create(64 * PAGE, 4 * KiB, false);
    GuestMemfdState s;
    uint64_t off = 0, len = 0;

    guest_memfd_state_init(&s, f, "t");
    g_assert_false(guest_memfd_state_next_run(&s, &off, 64 * PAGE, true,
                                              &len));
    expect_convert(&s, 3 * PAGE, 2 * PAGE, false, NULL, &error_abort, 0);
    expect_convert(&s, 10 * PAGE, 6 * PAGE, false, NULL, &error_abort, 0);
    off = 0;
    g_assert(guest_memfd_state_next_run(&s, &off, 64 * PAGE, true, &len));
    g_assert_cmpuint(off, ==, 3 * PAGE);
    g_assert_cmpuint(len, ==, 2 * PAGE);
    off += len;
    g_assert(guest_memfd_state_next_run(&s, &off, 12 * PAGE, true, &len));
    g_assert_cmpuint(off, ==, 10 * PAGE);
    g_assert_cmpuint(len, ==, 2 * PAGE);   /* clipped at the end */
    off = 4 * PAGE;
    g_assert(guest_memfd_state_next_run(&s, &off, 64 * PAGE, false, &len));
    g_assert_cmpuint(off, ==, 5 * PAGE);
    g_assert_cmpuint(len, ==, 5 * PAGE);
    guest_memfd_state_destroy(&s);
    guest_memfd_close(f);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/guest-memfd-state/noop", test_noop);
    g_test_add_func("/guest-memfd-state/folio-counters", test_folio_counters);
    g_test_add_func("/guest-memfd-state/pinned-progress-kvm",
                    test_pinned_progress_kvm);
    g_test_add_func("/guest-memfd-state/pinned-progress",
                    test_pinned_progress);
    g_test_add_func("/guest-memfd-state/mapped-progress",
                    test_mapped_progress);
    g_test_add_func("/guest-memfd-state/split-failure", test_split_failure);
    g_test_add_func("/guest-memfd-state/bad-ranges", test_bad_ranges);
    g_test_add_func("/guest-memfd-state/private-changed",
                    test_private_changed);
    g_test_add_func("/guest-memfd-state/runs", test_runs);
    return g_test_run();
}
