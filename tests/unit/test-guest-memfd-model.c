/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Unit tests of the guest_memfd kernel model
 *
 * Every scenario runs for 4 KiB, 2 MiB and 1 GiB folios on the simulated
 * pool, and again on a real hugetlb memfd where the host has a pool of that
 * size (skipped otherwise).  The conversion scenarios replay the v8 kernel
 * selftests (kernel-uapi.md 5.2) with the model's guest and host accesses
 * standing in for the vCPU and the mmap; the others exercise split, merge,
 * the folio_put callback, truncation, close and pool accounting.  The model's
 * invariant checker runs after every operation.
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qemu/units.h"
#include "system/guest-memfd-model.h"
#include "tests/unit/guest-memfd-host.h"
#include "tests/unit/guest-memfd-model-testing.h"

#include <sys/mman.h>

#define PAGE 4096ULL
#define SIM_POOL_PAGES 64
#define HUGETLB_PAGES_NEEDED 8

typedef struct TestParams {
    uint64_t ps;            /* folio size */
    uint64_t ppf;           /* 4 KiB pages per folio */
    bool hugetlb;           /* real hugetlb memfd backing */
} TestParams;

typedef void (*ScenarioFn)(const TestParams *p);

typedef struct TestCase {
    TestParams params;
    ScenarioFn fn;
} TestCase;

/* Invariants after every operation */

static void check_at(GuestMemfdFile *f, int line)
{
    Error *err = NULL;

    if (!guest_memfd_model_check(f, &err)) {
        g_error("line %d: %s", line, error_get_pretty(err));
    }
}

#define CHECK(f) check_at(f, __LINE__)

/* Host hugetlb pool */

/* Pick the pool for the test; false (test skipped) if it cannot run. */
static bool setup(const TestParams *p)
{
    GuestMemfdModelPool pool;
    g_autofree char *why = NULL;

    for (int i = 0; i < GMEM_MODEL_FAULT__MAX; i++) {
        guest_memfd_model_inject(i, 0);
    }
    if (!p->hugetlb) {
        guest_memfd_model_set_simulated_pool(p->ps, SIM_POOL_PAGES);
        g_assert_true(guest_memfd_model_pool(p->ps, &pool));
        g_assert_false(pool.real);
        g_assert_cmpuint(pool.total, ==, SIM_POOL_PAGES);
        return true;
    }
    why = gmem_host_lacks_hugepages(p->ps, HUGETLB_PAGES_NEEDED);
    if (why) {
        g_test_skip(why);
        return false;
    }
    guest_memfd_model_set_simulated_pool(p->ps, 0);
    g_assert_true(guest_memfd_model_pool(p->ps, &pool));
    g_assert_true(pool.real);
    return true;
}

static GuestMemfdFile *create(const TestParams *p, uint64_t size,
                              bool shared)
{
    GuestMemfdFile *f = guest_memfd_model_create(size, p->ps, shared,
                                                 &error_abort);

    g_assert_cmpstr(guest_memfd_model_backing(f), ==,
                    !p->hugetlb ? "memfd, simulated pool" :
                    p->ps == GiB ? "hugetlb 1G" : "hugetlb 2M");
    CHECK(f);
    return f;
}

/* Size of a file holding @pages 4 KiB pages, whole folios. */
static uint64_t file_size(const TestParams *p, uint64_t pages)
{
    return ROUND_UP(pages * PAGE, p->ps);
}

/* Operations that must succeed, each followed by the checker */

static void convert_ok(GuestMemfdFile *f, uint64_t off, uint64_t size,
                       bool priv)
{
    uint64_t eo = 0;

    g_assert_cmpint(guest_memfd_convert(f, off, size, priv, &eo), ==, 0);
    CHECK(f);
    for (uint64_t o = off; o < off + size; o += PAGE) {
        g_assert_cmpint(guest_memfd_model_page_private(f, o), ==, priv);
    }
}

/* -EAGAIN with the given error_offset, which must be written. */
static void convert_eagain(GuestMemfdFile *f, uint64_t off, uint64_t size,
                           uint64_t expected)
{
    uint64_t eo = expected + 1;

    g_assert_cmpint(guest_memfd_convert(f, off, size, true, &eo), ==,
                    -EAGAIN);
    g_assert_cmphex(eo, ==, expected);
    CHECK(f);
}

static void punch_ok(GuestMemfdFile *f, uint64_t off, uint64_t size)
{
    g_assert_cmpint(guest_memfd_punch_hole(f, off, size), ==, 0);
    CHECK(f);
}

static void pin(GuestMemfdFile *f, uint64_t off)
{
    g_assert_cmpint(guest_memfd_model_pin(f, off), ==, 0);
    CHECK(f);
}

static void unpin(GuestMemfdFile *f, uint64_t off)
{
    g_assert_cmpint(guest_memfd_model_unpin(f, off), ==, 0);
    CHECK(f);
}

static void folio(GuestMemfdFile *f, uint64_t index, GuestMemfdModelFolio *s)
{
    guest_memfd_model_folio(f, index, s);
    CHECK(f);
}

static GuestMemfdModelStats stats(GuestMemfdFile *f)
{
    GuestMemfdModelStats s;

    guest_memfd_model_stats(f, &s);
    CHECK(f);
    return s;
}

static GuestMemfdModelPool pool_now(uint64_t ps)
{
    GuestMemfdModelPool pool;

    g_assert_true(guest_memfd_model_pool(ps, &pool));
    g_assert_cmpuint(pool.free + pool.in_use, ==, pool.total);
    g_assert_cmpuint(pool.reserved, <=, pool.free);
    return pool;
}

static void assert_pool_eq(GuestMemfdModelPool a, GuestMemfdModelPool b)
{
    g_assert_cmpuint(a.total, ==, b.total);
    g_assert_cmpuint(a.free, ==, b.free);
    g_assert_cmpuint(a.reserved, ==, b.reserved);
    g_assert_cmpuint(a.in_use, ==, b.in_use);
}

/* Page accesses: a whole 4 KiB page holds one byte value */

static void guest_write(GuestMemfdFile *f, uint64_t off, uint8_t v)
{
    g_autofree uint8_t *buf = g_malloc(PAGE);

    memset(buf, v, PAGE);
    g_assert_cmpint(guest_memfd_model_guest_rw(f, off, buf, PAGE, true), ==,
                    0);
    CHECK(f);
}

static void assert_filled(const uint8_t *buf, uint8_t v)
{
    for (uint64_t i = 0; i < PAGE; i++) {
        if (buf[i] != v) {
            g_error("byte %" PRIu64 " is 0x%x, expected 0x%x", i, buf[i], v);
        }
    }
}

static void guest_expect(GuestMemfdFile *f, uint64_t off, uint8_t v)
{
    g_autofree uint8_t *buf = g_malloc(PAGE);

    g_assert_cmpint(guest_memfd_model_guest_rw(f, off, buf, PAGE, false), ==,
                    0);
    assert_filled(buf, v);
    CHECK(f);
}

static void host_write(GuestMemfdFile *f, uint64_t off, uint8_t v)
{
    g_autofree uint8_t *buf = g_malloc(PAGE);

    memset(buf, v, PAGE);
    g_assert_cmpint(guest_memfd_model_host_rw(f, off, buf, PAGE, true), ==,
                    0);
    CHECK(f);
}

static void host_expect(GuestMemfdFile *f, uint64_t off, uint8_t v)
{
    g_autofree uint8_t *buf = g_malloc(PAGE);

    g_assert_cmpint(guest_memfd_model_host_rw(f, off, buf, PAGE, false), ==,
                    0);
    assert_filled(buf, v);
    CHECK(f);
}

/* The model's SIGBUS: the host cannot touch a private page. */
static void host_faults(GuestMemfdFile *f, uint64_t off)
{
    g_autofree uint8_t *buf = g_malloc0(PAGE);

    g_assert_cmpint(guest_memfd_model_host_rw(f, off, buf, PAGE, true), ==,
                    -EFAULT);
    g_assert_cmpint(guest_memfd_model_host_rw(f, off, buf, PAGE, false), ==,
                    -EFAULT);
    CHECK(f);
}

/* The selftest helpers test_private() and test_shared() */

static void test_private(GuestMemfdFile *f, uint64_t off, uint8_t start,
                         uint8_t w)
{
    g_assert_true(guest_memfd_model_page_private(f, off));
    host_faults(f, off);
    guest_expect(f, off, start);
    guest_write(f, off, w);
    host_faults(f, off);
    guest_expect(f, off, w);
}

static void test_shared(GuestMemfdFile *f, uint64_t off, uint8_t start,
                        uint8_t hw, uint8_t w)
{
    g_assert_false(guest_memfd_model_page_private(f, off));
    host_expect(f, off, start);
    host_write(f, off, hw);
    guest_expect(f, off, hw);
    guest_write(f, off, w);
    host_expect(f, off, w);
}

/* kernel-uapi.md 5.2: guest_memfd_conversions_test */

static void scenario_init_private(const TestParams *p)
{
    GuestMemfdFile *f = create(p, file_size(p, 1), false);

    test_private(f, 0, 0, 'A');
    convert_ok(f, 0, PAGE, false);
    test_shared(f, 0, 'A', 'B', 'C');
    convert_ok(f, 0, PAGE, true);
    test_private(f, 0, 'C', 'E');
    guest_memfd_close(f);
}

static void scenario_init_shared(const TestParams *p)
{
    GuestMemfdFile *f = create(p, file_size(p, 1), true);

    test_shared(f, 0, 0, 'A', 'B');
    convert_ok(f, 0, PAGE, true);
    test_private(f, 0, 'B', 'C');
    convert_ok(f, 0, PAGE, false);
    test_shared(f, 0, 'C', 'D', 'E');
    guest_memfd_close(f);
}

#define C(x, n) ((uint8_t)(((x) << 4) + (n)))

static void indexing_one(const TestParams *p, unsigned tp)
{
    GuestMemfdFile *f = create(p, file_size(p, 4), true);

    for (int i = 3; i >= 0; i--) {
        test_shared(f, i * PAGE, 0, C(i, 1), C(i, 2));
    }
    convert_ok(f, tp * PAGE, PAGE, true);
    for (int i = 0; i < 4; i++) {
        if (i == tp) {
            test_private(f, i * PAGE, C(i, 2), C(i, 4));
        } else {
            g_assert_false(guest_memfd_model_page_private(f, i * PAGE));
            test_shared(f, i * PAGE, C(i, 2), C(i, 3), C(i, 4));
        }
    }
    convert_ok(f, tp * PAGE, PAGE, false);
    test_shared(f, tp * PAGE, C(tp, 4), C(tp, 5), C(tp, 6));
    for (int i = 0; i < 4; i++) {
        test_shared(f, i * PAGE, i == tp ? C(tp, 6) : C(i, 4), C(i, 7),
                    C(i, 8));
    }
    guest_memfd_close(f);
}

static void scenario_indexing(const TestParams *p)
{
    for (unsigned tp = 0; tp < 4; tp++) {
        indexing_one(p, tp);
    }
}

static void scenario_before_allocation_shared(const TestParams *p)
{
    GuestMemfdFile *f = create(p, file_size(p, 1), true);
    GuestMemfdModelFolio s;

    convert_ok(f, 0, PAGE, true);
    folio(f, 0, &s);
    g_assert_false(s.allocated);
    g_assert_cmpint(guest_memfd_model_mappability(f, 0), ==,
                    GMEM_MAPPABLE_NA);
    test_private(f, 0, 0, 'A');
    folio(f, 0, &s);
    g_assert_true(s.allocated);
    /* The rest of a huge folio is still shared: split on allocation. */
    g_assert_cmpint(s.split, ==, p->ppf > 1);
    g_assert_cmpuint(stats(f).splits, ==, p->ppf > 1);
    g_assert_cmpint(guest_memfd_model_mappability(f, 0), ==,
                    GMEM_MAPPABLE_GUEST);
    guest_memfd_close(f);
}

static void scenario_before_allocation_private(const TestParams *p)
{
    GuestMemfdFile *f = create(p, file_size(p, 1), false);
    GuestMemfdModelFolio s;

    convert_ok(f, 0, PAGE, false);
    g_assert_cmpuint(stats(f).splits, ==, 0);
    test_shared(f, 0, 0, 'A', 'B');
    folio(f, 0, &s);
    g_assert_true(s.allocated);
    g_assert_cmpint(s.split, ==, p->ppf > 1);
    g_assert_cmpuint(s.shared_pages, ==, 1);
    g_assert_cmpuint(stats(f).splits, ==, p->ppf > 1);
    g_assert_cmpint(guest_memfd_model_mappability(f, 0), ==,
                    GMEM_MAPPABLE_ALL);
    guest_memfd_close(f);
}

/* QEMU's own mapping of the file: writes the model does not see. */
static uint8_t *map_fd(GuestMemfdFile *f)
{
    uint8_t *p = mmap(NULL, f->size, PROT_READ | PROT_WRITE, MAP_SHARED,
                      f->fd, 0);

    g_assert_true(p != MAP_FAILED);
    return p;
}

static void unallocated_one(const TestParams *p, unsigned tp)
{
    uint64_t stride = p->ppf > 1 ? p->ps / 4 : PAGE;
    GuestMemfdFile *f = create(p, 8 * stride, true);
    uint8_t *qemu = map_fd(f);
    GuestMemfdModelFolio s;

    memset(qemu + tp * stride, 'A', PAGE);
    host_write(f, 4 * stride, 'A');
    convert_ok(f, 0, f->size, true);
    /* The silently written folio was found and converted like the rest. */
    folio(f, tp * stride / p->ps, &s);
    g_assert_true(s.allocated);
    g_assert_false(s.split);
    for (unsigned i = 0; i < 8; i++) {
        test_private(f, i * stride, i == tp || i == 4 ? 'A' : 0, 'B');
    }
    for (unsigned i = 0; i < 8; i++) {
        convert_ok(f, i * stride, PAGE, false);
        test_shared(f, i * stride, 'B', 'C', 'D');
    }
    munmap(qemu, f->size);
    guest_memfd_close(f);
}

static void scenario_unallocated_folios(const TestParams *p)
{
    for (unsigned tp = 0; tp < 8; tp++) {
        unallocated_one(p, tp);
    }
}

static void scenario_truncate(const TestParams *p)
{
    GuestMemfdFile *f = create(p, file_size(p, 1), true);
    GuestMemfdModelPool before = pool_now(p->ps);
    GuestMemfdModelFolio s;

    host_expect(f, 0, 0);
    host_write(f, 0, 'A');
    punch_ok(f, 0, PAGE);
    folio(f, 0, &s);
    /* A 4 KiB punch frees a 4 KiB folio but only zeroes a huge one. */
    g_assert_cmpint(s.allocated, ==, p->ppf > 1);
    host_expect(f, 0, 0);
    host_write(f, 0, 'A');
    convert_ok(f, 0, PAGE, true);
    test_private(f, 0, 'A', 'B');
    punch_ok(f, 0, PAGE);
    g_assert_true(guest_memfd_model_page_private(f, 0));
    test_private(f, 0, 0, 'A');

    /* A whole folio goes back to the pool, keeping its reservation. */
    punch_ok(f, 0, p->ps);
    folio(f, 0, &s);
    g_assert_false(s.allocated);
    g_assert_false(s.split);
    g_assert_true(guest_memfd_model_page_private(f, 0));
    assert_pool_eq(pool_now(p->ps), before);
    test_private(f, 0, 0, 'C');
    guest_memfd_close(f);
}

/* Pin page tp; the bulk conversion fails at exactly that page. */
static void elevated_one(const TestParams *p, unsigned tp)
{
    GuestMemfdFile *f = create(p, file_size(p, 4), true);

    pin(f, tp * PAGE);
    for (unsigned i = 0; i < 4; i++) {
        test_shared(f, i * PAGE, 0, 'A', 'B');
    }
    convert_eagain(f, 0, 4 * PAGE, tp * PAGE);
    for (unsigned i = 0; i < 4; i++) {
        g_assert_false(guest_memfd_model_page_private(f, i * PAGE));
    }
    g_assert_cmpuint(stats(f).failed, ==, 1);
    for (unsigned i = 0; i < 4; i++) {
        if (i == tp) {
            convert_eagain(f, i * PAGE, PAGE, tp * PAGE);
        } else {
            convert_ok(f, i * PAGE, PAGE, true);
            test_private(f, i * PAGE, 'B', 'C');
        }
    }
    unpin(f, tp * PAGE);
    convert_ok(f, 0, 4 * PAGE, true);
    for (unsigned i = 0; i < 4; i++) {
        test_private(f, i * PAGE, i == tp ? 'B' : 'C', 'D');
    }
    guest_memfd_close(f);
}

/*
 * v8 rule on a merged folio: error_offset is max(start, folio start), so it
 * can point before the pinned page but never before the request.
 */
static void elevated_merged(const TestParams *p)
{
    GuestMemfdFile *f = create(p, 3 * p->ps, false);
    uint64_t pin_off = p->ps + MIN(5, p->ppf - 1) * PAGE;
    uint64_t start = p->ps + MIN(2, p->ppf - 1) * PAGE;
    GuestMemfdModelFolio s;

    convert_ok(f, 0, PAGE, false);
    convert_ok(f, 2 * p->ps, PAGE, false);
    guest_write(f, pin_off, 'P');
    pin(f, pin_off);
    folio(f, 1, &s);
    g_assert_true(s.allocated);
    g_assert_false(s.split);
    convert_eagain(f, 0, 2 * p->ps + PAGE, p->ps);
    convert_eagain(f, start, 2 * p->ps + PAGE - start, start);
    g_assert_false(guest_memfd_model_page_private(f, 0));
    g_assert_false(guest_memfd_model_page_private(f, 2 * p->ps));
    if (p->ppf > 1) {
        uint64_t after = p->ps + 10 * PAGE;

        /* The pin holds the whole merged folio, even outside the range. */
        convert_eagain(f, after, 2 * p->ps + PAGE - after, after);
        /* A private page pinned in a split folio: the exact page. */
        guest_write(f, 3 * PAGE, 'Q');
        pin(f, 3 * PAGE);
        convert_eagain(f, 0, 8 * PAGE, 3 * PAGE);
        unpin(f, 3 * PAGE);
    }
    unpin(f, pin_off);
    convert_ok(f, 0, f->size, true);
    guest_expect(f, pin_off, 'P');
    guest_memfd_close(f);
}

static void scenario_elevated_refcount(const TestParams *p)
{
    for (unsigned tp = 0; tp < 4; tp++) {
        elevated_one(p, tp);
    }
    elevated_merged(p);
}

/* Split and merge */

static void scenario_split_merge(const TestParams *p)
{
    bool huge = p->ppf > 1;
    GuestMemfdFile *f = create(p, huge ? 2 * p->ps : 4 * PAGE, false);
    uint64_t pages[3] = { 1, huge ? p->ppf / 2 : 2, huge ? p->ppf - 1 : 3 };
    uint64_t f1 = huge ? p->ps + 9 * PAGE : 0;
    GuestMemfdModelFolio s;
    GuestMemfdModelStats st;

    guest_write(f, 0, 0x55);
    for (int i = 0; i < 3; i++) {
        guest_write(f, pages[i] * PAGE, 0x60 + i);
    }
    for (int i = 0; i < 3; i++) {
        convert_ok(f, pages[i] * PAGE, PAGE, false);
        g_assert_cmpuint(stats(f).splits, ==, huge);
        g_assert_cmpint(guest_memfd_model_mappability(f, pages[i] * PAGE),
                        ==, GMEM_MAPPABLE_ALL);
        g_assert_cmpint(guest_memfd_model_mappability(f, 0), ==,
                        GMEM_MAPPABLE_GUEST);
    }
    folio(f, 0, &s);
    g_assert_cmpint(s.split, ==, huge);
    g_assert_cmpuint(s.shared_pages, ==, huge ? 3 : 0);
    g_assert_cmpuint(s.fm, ==, huge ? p->ppf : 1);
    for (int i = 0; i < 3; i++) {
        host_expect(f, pages[i] * PAGE, 0x60 + i);
    }
    if (huge) {
        /* Unallocated: nothing to split now, but on allocation. */
        convert_ok(f, f1, PAGE, false);
        g_assert_cmpuint(stats(f).splits, ==, 1);
        folio(f, 1, &s);
        g_assert_false(s.allocated);
        g_assert_cmpint(guest_memfd_allocate(f, p->ps, p->ps), ==, 0);
        CHECK(f);
        folio(f, 1, &s);
        g_assert_true(s.allocated && s.split);
        g_assert_cmpuint(stats(f).splits, ==, 2);
    }
    for (int i = 0; i < 3; i++) {
        convert_ok(f, pages[i] * PAGE, PAGE, true);
        g_assert_cmpuint(stats(f).merges, ==, huge && i == 2);
    }
    folio(f, 0, &s);
    g_assert_true(s.allocated);
    g_assert_false(s.split || s.waiting_merge);
    g_assert_cmpuint(s.fm, ==, 1);
    if (huge) {
        convert_ok(f, f1, PAGE, true);
    }
    st = stats(f);
    g_assert_cmpuint(st.splits, ==, huge ? 2 : 0);
    g_assert_cmpuint(st.merges, ==, huge ? 2 : 0);
    g_assert_cmpuint(st.folios_split, ==, 0);
    g_assert_cmpuint(st.shared_pages, ==, 0);
    g_assert_cmpuint(st.to_shared, ==, huge ? 4 : 3);
    guest_expect(f, 0, 0x55);
    for (int i = 0; i < 3; i++) {
        guest_expect(f, pages[i] * PAGE, 0x60 + i);
    }
    guest_memfd_close(f);
}

/* A pinned private page elsewhere in the folio defers the merge. */
static void scenario_merge_deferred(const TestParams *p)
{
    bool huge = p->ppf > 1;
    GuestMemfdFile *f = create(p, huge ? p->ps : 2 * PAGE, false);
    uint64_t a = huge ? 3 * PAGE : 0, b = huge ? 7 * PAGE : PAGE;
    GuestMemfdMappability waiting = huge ? GMEM_MAPPABLE_NONE
                                         : GMEM_MAPPABLE_GUEST;
    GuestMemfdModelFolio s;
    uint8_t byte;

    g_assert_cmpint(guest_memfd_allocate(f, 0, f->size), ==, 0);
    CHECK(f);
    guest_write(f, a, 'a');
    pin(f, b);
    convert_ok(f, a, PAGE, false);
    convert_ok(f, a, PAGE, true);
    folio(f, 0, &s);
    g_assert_cmpint(s.waiting_merge, ==, huge);
    g_assert_cmpint(s.split, ==, huge);
    g_assert_cmpuint(s.fm, ==, huge ? 0 : 1);
    g_assert_cmpuint(stats(f).merges, ==, 0);
    g_assert_cmpint(guest_memfd_model_mappability(f, a), ==, waiting);
    g_assert_cmpint(guest_memfd_model_mappability(f, b), ==, waiting);
    g_assert_cmpint(guest_memfd_model_guest_rw(f, a, &byte, 1, false), ==,
                    huge ? -EAGAIN : 0);

    /* Shared again: the pending callback has nothing to merge. */
    convert_ok(f, a, PAGE, false);
    folio(f, 0, &s);
    g_assert_false(s.waiting_merge);
    g_assert_cmpint(guest_memfd_model_mappability(f, a), ==,
                    GMEM_MAPPABLE_ALL);
    convert_ok(f, a, PAGE, true);
    g_assert_cmpint(guest_memfd_model_mappability(f, a), ==, waiting);

    unpin(f, b);
    folio(f, 0, &s);
    g_assert_false(s.waiting_merge || s.split);
    g_assert_cmpuint(s.fm, ==, 1);
    g_assert_cmpuint(stats(f).merges, ==, huge);
    g_assert_cmpint(guest_memfd_model_mappability(f, a), ==,
                    GMEM_MAPPABLE_GUEST);
    guest_expect(f, a, 'a');
    guest_memfd_close(f);
}

static void scenario_punch_pinned(const TestParams *p)
{
    GuestMemfdFile *f = create(p, 2 * p->ps, false);
    uint64_t pinned = p->ppf > 1 ? 2 * PAGE : 0;
    GuestMemfdModelPool before = pool_now(p->ps);
    GuestMemfdModelFolio s;

    guest_write(f, 0, 'X');     /* the pinned page itself at 4 KiB */
    guest_write(f, pinned, 'Y');
    guest_write(f, p->ps, 'Z');
    pin(f, pinned);
    g_assert_cmpint(guest_memfd_punch_hole(f, 0, p->ps), ==, -EAGAIN);
    g_assert_cmpint(guest_memfd_punch_hole(f, 0, f->size), ==, -EAGAIN);
    CHECK(f);
    folio(f, 1, &s);
    g_assert_true(s.allocated);
    guest_expect(f, 0, pinned ? 'X' : 'Y');
    guest_expect(f, pinned, 'Y');
    guest_expect(f, p->ps, 'Z');
    if (p->ppf > 1) {
        /* Partial folios are only zeroed, so a pin does not matter. */
        punch_ok(f, 0, PAGE);
        guest_expect(f, 0, 0);
        guest_expect(f, pinned, 'Y');
    }
    unpin(f, pinned);
    punch_ok(f, 0, p->ps);
    folio(f, 0, &s);
    g_assert_false(s.allocated);
    /* Two folios were faulted, one is back but still reserved. */
    g_assert_cmpuint(pool_now(p->ps).in_use, ==, before.in_use + 1);
    g_assert_cmpuint(pool_now(p->ps).reserved, ==, before.reserved - 1);
    guest_expect(f, pinned, 0);
    guest_expect(f, p->ps, 'Z');
    guest_memfd_close(f);
}

/* Pool accounting, against the host's pool when it is real */

typedef struct HostPool {
    int64_t free, resv;
} HostPool;

static HostPool host_pool(const TestParams *p)
{
    HostPool h = { 0, 0 };

    if (p->hugetlb) {
        h.free = gmem_host_hugepages(p->ps, "free_hugepages");
        h.resv = gmem_host_hugepages(p->ps, "resv_hugepages");
    }
    return h;
}

static void expect_pool(const TestParams *p, GuestMemfdModelPool base,
                        HostPool hbase, int64_t in_use, int64_t reserved);

static void scenario_close_pinned(const TestParams *p)
{
    GuestMemfdModelPool before = pool_now(p->ps);
    HostPool hbefore = host_pool(p);
    GuestMemfdFile *f = create(p, 2 * p->ps, false);
    uint64_t off = p->ps + (p->ppf > 1 ? 4 * PAGE : 0);
    GuestMemfdModelPool closed;
    GuestMemfdModelFolio s;

    g_assert_cmpint(guest_memfd_allocate(f, 0, f->size), ==, 0);
    convert_ok(f, off, PAGE, false);
    host_write(f, off, 'S');
    pin(f, off);
    pin(f, off);
    guest_memfd_close(f);
    CHECK(f);
    closed = pool_now(p->ps);
    expect_pool(p, before, hbefore, 1, 0);
    folio(f, 1, &s);
    g_assert_true(s.truncated && s.waiting_merge);
    g_assert_false(s.allocated);
    g_assert_cmpuint(s.transient, ==, 2);
    g_assert_cmpuint(s.vma, ==, 0);
    g_assert_cmpint(s.split, ==, p->ppf > 1);
    g_assert_cmpint(guest_memfd_model_mappability(f, off), ==,
                    GMEM_MAPPABLE_NA);
    unpin(f, off);
    assert_pool_eq(pool_now(p->ps), closed);
    /* The last unpin merges, frees and ends the file. */
    g_assert_cmpint(guest_memfd_model_unpin(f, off), ==, 0);
    assert_pool_eq(pool_now(p->ps), before);
    expect_pool(p, before, hbefore, 0, 0);
}


/* Fault injection */

static void inject_create_enomem(const TestParams *p)
{
    GuestMemfdModelPool before = pool_now(p->ps);
    Error *err = NULL;

    guest_memfd_model_inject(GMEM_MODEL_FAULT_CREATE_ENOMEM, 1);
    g_assert_null(guest_memfd_model_create(p->ps, p->ps, false, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "cannot reserve"));
    error_free(err);
    err = NULL;
    assert_pool_eq(pool_now(p->ps), before);
    guest_memfd_close(create(p, p->ps, false));
    assert_pool_eq(pool_now(p->ps), before);

    if (!p->hugetlb) {
        /* A pool too small for the file. */
        guest_memfd_model_set_simulated_pool(p->ps, 2);
        g_assert_null(guest_memfd_model_create(3 * p->ps, p->ps, false,
                                               &err));
        g_assert_nonnull(strstr(error_get_pretty(err), "cannot reserve"));
        error_free(err);
        guest_memfd_model_set_simulated_pool(p->ps, SIM_POOL_PAGES);
    }
}

static void inject_convert_eagain(const TestParams *p)
{
    GuestMemfdFile *f = create(p, 2 * p->ps, true);

    guest_memfd_model_inject(GMEM_MODEL_FAULT_CONVERT_EAGAIN, 1);
    convert_eagain(f, PAGE, PAGE, PAGE);
    g_assert_false(guest_memfd_model_page_private(f, PAGE));
    g_assert_cmpuint(stats(f).failed, ==, 1);
    convert_ok(f, PAGE, PAGE, true);
    guest_memfd_close(f);
}

static void inject_split_enomem(const TestParams *p)
{
    bool huge = p->ppf > 1;
    GuestMemfdFile *f = create(p, 2 * p->ps, false);
    GuestMemfdModelPool before;
    GuestMemfdModelFolio s;
    uint64_t eo;

    g_assert_cmpint(guest_memfd_allocate(f, 0, p->ps), ==, 0);
    guest_write(f, PAGE * (p->ppf - 1), 'k');
    guest_memfd_model_inject(GMEM_MODEL_FAULT_SPLIT_ENOMEM, 1);
    g_assert_cmpint(guest_memfd_convert(f, 0, p->ps + PAGE, false, &eo), ==,
                    huge ? -ENOMEM : 0);
    CHECK(f);
    guest_memfd_model_inject(GMEM_MODEL_FAULT_SPLIT_ENOMEM, 0);
    if (huge) {
        folio(f, 0, &s);
        g_assert_false(s.split);
        g_assert_cmpuint(s.shared_pages, ==, 0);
        g_assert_cmpuint(stats(f).splits, ==, 0);
        g_assert_cmpuint(stats(f).failed, ==, 1);
        g_assert_true(guest_memfd_model_page_private(f, 0));
        g_assert_true(guest_memfd_model_page_private(f, p->ps));

        /* Split on allocation fails too, and allocates nothing. */
        convert_ok(f, p->ps, PAGE, false);
        before = pool_now(p->ps);
        guest_memfd_model_inject(GMEM_MODEL_FAULT_SPLIT_ENOMEM, 1);
        g_assert_cmpint(guest_memfd_allocate(f, 0, f->size), ==, -ENOMEM);
        CHECK(f);
        g_assert_cmpint(guest_memfd_model_pin(f, p->ps), ==, 0);
        g_assert_cmpint(guest_memfd_model_unpin(f, p->ps), ==, 0);
        folio(f, 1, &s);
        g_assert_true(s.allocated && s.split);
        g_assert_cmpuint(pool_now(p->ps).in_use, ==, before.in_use + 1);
    }
    convert_ok(f, 0, p->ps, false);
    host_expect(f, PAGE * (p->ppf - 1), 'k');
    guest_memfd_close(f);
}

static void inject_punch_eagain(const TestParams *p)
{
    GuestMemfdFile *f = create(p, p->ps, false);

    guest_write(f, 0, 'p');
    guest_memfd_model_inject(GMEM_MODEL_FAULT_PUNCH_EAGAIN, 1);
    g_assert_cmpint(guest_memfd_punch_hole(f, 0, p->ps), ==, -EAGAIN);
    CHECK(f);
    guest_expect(f, 0, 'p');
    punch_ok(f, 0, p->ps);
    guest_expect(f, 0, 0);
    guest_memfd_close(f);
}

static void scenario_fault_injection(const TestParams *p)
{
    inject_create_enomem(p);
    inject_convert_eagain(p);
    inject_split_enomem(p);
    inject_punch_eagain(p);
}

/* The model's pool moved by (in_use, reserved); so must the host's. */
static void expect_pool(const TestParams *p, GuestMemfdModelPool base,
                        HostPool hbase, int64_t in_use, int64_t reserved)
{
    GuestMemfdModelPool now = pool_now(p->ps);
    HostPool h = host_pool(p);

    g_assert_cmpint(now.in_use, ==, base.in_use + in_use);
    g_assert_cmpint(now.reserved, ==, base.reserved + reserved);
    g_assert_cmpint(now.free, ==, base.free - in_use);
    if (p->hugetlb) {
        g_assert_cmpint(h.free, ==, hbase.free - in_use);
        g_assert_cmpint(h.resv, ==, hbase.resv + reserved);
    }
}

static void scenario_pool_accounting(const TestParams *p)
{
    GuestMemfdModelPool base = pool_now(p->ps);
    HostPool hbase = host_pool(p);
    GuestMemfdFile *f = create(p, 4 * p->ps, false);

    expect_pool(p, base, hbase, 0, 4);
    g_assert_cmpuint(stats(f).folios, ==, 4);
    guest_write(f, 0, 1);
    guest_write(f, 2 * p->ps, 1);
    expect_pool(p, base, hbase, 2, 2);
    g_assert_cmpuint(stats(f).folios_allocated, ==, 2);
    punch_ok(f, 0, p->ps);
    expect_pool(p, base, hbase, 1, 3);
    g_assert_cmpint(guest_memfd_allocate(f, 0, f->size), ==, 0);
    CHECK(f);
    expect_pool(p, base, hbase, 4, 0);
    punch_ok(f, p->ps, 2 * p->ps);
    expect_pool(p, base, hbase, 2, 2);
    guest_memfd_close(f);
    expect_pool(p, base, hbase, 0, 0);
}

/* QEMU writes through its own mapping without telling the model. */
static void scenario_silent_write(const TestParams *p)
{
    GuestMemfdModelPool base = pool_now(p->ps);
    HostPool hbase = host_pool(p);
    GuestMemfdFile *f = create(p, 2 * p->ps, true);
    uint64_t off = p->ps + (p->ppf > 1 ? 3 * PAGE : 0);
    uint8_t *qemu = map_fd(f);
    GuestMemfdModelFolio s;
    uint8_t byte;

    memset(qemu + off, 'Q', PAGE);
    g_assert_cmpuint(stats(f).folios_allocated, ==, 1);
    expect_pool(p, base, hbase, 1, 1);
    folio(f, 1, &s);
    g_assert_true(s.allocated);
    g_assert_cmpint(s.split, ==, p->ppf > 1);
    guest_expect(f, off, 'Q');
    punch_ok(f, p->ps, p->ps);
    expect_pool(p, base, hbase, 0, 2);
    /* Read the hole without populating it (a hugetlb fault would). */
    g_assert_cmpint(pread(f->fd, &byte, 1, off), ==, 1);
    g_assert_cmpint(byte, ==, 0);

    /* Registered as the host view: found through it. */
    guest_memfd_model_set_host_view(f, qemu);
    memset(qemu, 'R', PAGE);
    convert_ok(f, 0, PAGE, true);
    folio(f, 0, &s);
    g_assert_true(s.allocated);
    guest_expect(f, 0, 'R');
    expect_pool(p, base, hbase, 1, 1);
    munmap(qemu, f->size);
    guest_memfd_close(f);
    expect_pool(p, base, hbase, 0, 0);
}

/* Can QEMU read its view at @off?  write() reports EFAULT, no signal. */
static bool view_readable(const uint8_t *view, uint64_t off)
{
    int fds[2];
    bool ok;
    char c;

    g_assert_cmpint(pipe(fds), ==, 0);
    ok = write(fds[1], view + off, 1) == 1;
    if (ok) {
        g_assert_cmpint(read(fds[0], &c, 1), ==, 1);
    }
    close(fds[0]);
    close(fds[1]);
    return ok;
}

/*
 * Private pages are out of QEMU's reach in its view: page by page on a
 * 4 KiB backing, a whole huge page at a time on hugetlb, where a private
 * page beside shared ones stays reachable.
 */
static void scenario_host_view(const TestParams *p)
{
    GuestMemfdFile *f = create(p, p->ps, false);
    uint8_t *view = map_fd(f);
    GuestMemfdModelFolio s;

    guest_memfd_model_set_host_view(f, view);
    CHECK(f);
    g_assert_false(view_readable(view, 0));
    convert_ok(f, 0, PAGE, false);
    g_assert_true(view_readable(view, 0));
    host_write(f, 0, 'v');
    g_assert_cmpint(view[0], ==, 'v');
    if (p->ppf > 1) {
        g_assert_cmpint(view_readable(view, PAGE), ==, p->hugetlb);
    }
    folio(f, 0, &s);
    g_assert_cmpuint(s.vma, ==, 1);
    convert_ok(f, 0, PAGE, true);
    folio(f, 0, &s);
    g_assert_cmpuint(s.vma, ==, 0);
    g_assert_false(view_readable(view, 0));
    guest_expect(f, 0, 'v');
    munmap(view, f->size);
    guest_memfd_close(f);
}

static void scenario_invalid_args(const TestParams *p)
{
    GuestMemfdFile *f = create(p, 2 * p->ps, false);
    uint8_t buf[8];
    Error *err = NULL;
    uint64_t eo;

    g_assert_null(guest_memfd_model_create(0, p->ps, false, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "size"));
    error_free(err);
    err = NULL;
    g_assert_null(guest_memfd_model_create(p->ps + 512, p->ps, false,
                                           &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "multiple"));
    error_free(err);
    err = NULL;
    g_assert_null(guest_memfd_model_create(p->ps, 64 * KiB, false, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "page size"));
    error_free(err);

    g_assert_cmpint(guest_memfd_convert(f, 1, PAGE, false, &eo), ==,
                    -EINVAL);
    g_assert_cmpint(guest_memfd_convert(f, 0, 0, false, &eo), ==, -EINVAL);
    g_assert_cmpint(guest_memfd_convert(f, f->size, PAGE, false, &eo), ==,
                    -EINVAL);
    g_assert_cmpint(guest_memfd_punch_hole(f, 0, 100), ==, -EINVAL);
    g_assert_cmpint(guest_memfd_punch_hole(f, f->size, PAGE), ==, 0);
    g_assert_cmpint(guest_memfd_punch_hole(f, 0, 2 * f->size), ==, 0);
    g_assert_cmpint(guest_memfd_allocate(f, 0, f->size + p->ps), ==,
                    -EINVAL);
    g_assert_cmpint(guest_memfd_model_pin(f, f->size), ==, -EINVAL);
    g_assert_cmpint(guest_memfd_model_pin(f, 8), ==, -EINVAL);
    g_assert_cmpint(guest_memfd_model_unpin(f, 0), ==, -EINVAL);
    g_assert_cmpint(guest_memfd_model_guest_rw(f, f->size - 4, buf, 8,
                                               false), ==, -EINVAL);
    g_assert_cmpint(guest_memfd_model_host_rw(f, 0, buf, 8, false), ==,
                    -EFAULT);
    CHECK(f);
    g_assert_cmpuint(stats(f).folios_allocated, ==, 0);
    guest_memfd_close(f);
}

/* Several threads converting, pinning and accessing their own pages */

#define THREADS 4

typedef struct ThreadArg {
    GuestMemfdFile *f;
    uint64_t off;
    uint8_t id;
} ThreadArg;

static gpointer thread_loop(gpointer opaque)
{
    ThreadArg *a = opaque;

    for (int i = 0; i < 50; i++) {
        uint8_t v = a->id * 16 + i % 16;

        convert_ok(a->f, a->off, PAGE, false);
        host_write(a->f, a->off, v);
        pin(a->f, a->off);
        convert_eagain(a->f, a->off, PAGE, a->off);
        unpin(a->f, a->off);
        convert_ok(a->f, a->off, PAGE, true);
        guest_expect(a->f, a->off, v);
    }
    return NULL;
}

static void scenario_threads(const TestParams *p)
{
    GuestMemfdFile *f = create(p, 2 * p->ps + (p->ppf > 1 ? 0 : 4 * PAGE),
                               false);
    ThreadArg args[THREADS];
    GThread *threads[THREADS];

    for (int t = 0; t < THREADS; t++) {
        /* Two threads share each huge folio: splits and merges race. */
        args[t] = (ThreadArg) {
            .f = f, .id = t,
            .off = p->ppf > 1 ? (t % 2) * p->ps + (t / 2 + 1) * PAGE
                              : t * PAGE,
        };
        threads[t] = g_thread_new("gmem-model", thread_loop, &args[t]);
    }
    for (int t = 0; t < THREADS; t++) {
        g_thread_join(threads[t]);
    }
    g_assert_cmpuint(stats(f).shared_pages, ==, 0);
    g_assert_cmpuint(stats(f).folios_split, ==, 0);
    g_assert_cmpuint(stats(f).merges, ==, stats(f).splits);
    guest_memfd_close(f);
}

/* Registration: /guest-memfd-model/<size>[/hugetlb]/<scenario> */

static const struct {
    const char *name;
    ScenarioFn fn;
} scenarios[] = {
    { "init_private", scenario_init_private },
    { "init_shared", scenario_init_shared },
    { "indexing", scenario_indexing },
    { "before_allocation_shared", scenario_before_allocation_shared },
    { "before_allocation_private", scenario_before_allocation_private },
    { "unallocated_folios", scenario_unallocated_folios },
    { "truncate", scenario_truncate },
    { "elevated_refcount", scenario_elevated_refcount },
    { "split_merge", scenario_split_merge },
    { "merge_deferred", scenario_merge_deferred },
    { "punch_pinned", scenario_punch_pinned },
    { "close_pinned", scenario_close_pinned },
    { "fault_injection", scenario_fault_injection },
    { "pool_accounting", scenario_pool_accounting },
    { "silent_write", scenario_silent_write },
    { "host_view", scenario_host_view },
    { "invalid_args", scenario_invalid_args },
    { "threads", scenario_threads },
};

static void run_case(gconstpointer opaque)
{
    const TestCase *tc = opaque;

    if (setup(&tc->params)) {
        tc->fn(&tc->params);
    }
}

static void add_cases(uint64_t ps, const char *size, bool hugetlb)
{
    for (int i = 0; i < ARRAY_SIZE(scenarios); i++) {
        TestCase *tc = g_new0(TestCase, 1);
        g_autofree char *path = NULL;

        tc->params = (TestParams) {
            .ps = ps, .ppf = ps / PAGE, .hugetlb = hugetlb,
        };
        tc->fn = scenarios[i].fn;
        path = g_strdup_printf("/guest-memfd-model/%s/%s%s", size,
                               hugetlb ? "hugetlb/" : "", scenarios[i].name);
        g_test_add_data_func_full(path, tc, run_case, g_free);
    }
}

/*
 * Where this host has too few free pages of @ps and make check runs the lab
 * (tests/lab/run, which sets QEMU_GMEM1G_LAB), the hugetlb cases of that
 * size run there, on real pages, and are not registered here.
 */
static bool lab_runs_hugetlb(uint64_t ps)
{
    return gmem_host_hugepages(ps, "free_hugepages") <
           HUGETLB_PAGES_NEEDED && g_getenv("QEMU_GMEM1G_LAB");
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    add_cases(4 * KiB, "4K", false);
    add_cases(2 * MiB, "2M", false);
    add_cases(1 * GiB, "1G", false);
    if (!lab_runs_hugetlb(2 * MiB)) {
        add_cases(2 * MiB, "2M", true);
    }
    if (!lab_runs_hugetlb(1 * GiB)) {
        add_cases(1 * GiB, "1G", true);
    }
    return g_test_run();
}
