/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Unit tests of the RamDiscardManager of in-place guest_memfd RAM
 * (system/guest-memfd-rdm.c): listeners hold exactly the shared pages,
 * are told only of changes, and a listener that refuses new shared pages
 * leaves every listener and the page state as they were.
 *
 * The listeners stand for VFIO with type1: mapping a page twice, dropping
 * one never mapped, or dropping part of what was mapped in one piece (one
 * DMA mapping) is a bug they report.
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qemu/module.h"
#include "qemu/units.h"
#include "exec/memory.h"
#include "system/guest-memfd-internal.h"
#include "system/guest-memfd-model.h"
#include "tests/unit/guest-memfd-model-testing.h"

#define PAGE GUEST_MEMFD_PAGE_SIZE
#define PAGES 2048                      /* 8 MiB: four 2 MiB units */
/* Where the region is in the guest-physical address space. */
#define BASE (1 * GiB)

typedef struct TestListener {
    RamDiscardListener rdl;
    bool mapped[PAGES];
    unsigned piece[PAGES];      /* which populate mapped the page */
    unsigned pieces;            /* pieces mapped now: DMA mappings */
    unsigned populates, discards;
    int refuse_page;            /* refuse a run with this page; -1: none */
} TestListener;

/*
 * The memory core's interface and its section copies (without references:
 * no MemoryRegion here), which this test does not link.
 */
static const TypeInfo ram_discard_manager_info = {
    .parent = TYPE_INTERFACE,
    .name = TYPE_RAM_DISCARD_MANAGER,
    .class_size = sizeof(RamDiscardManagerClass),
};

MemoryRegionSection *memory_region_section_new_copy(MemoryRegionSection *s)
{
    return g_memdup2(s, sizeof(*s));
}

void memory_region_section_free_copy(MemoryRegionSection *s)
{
    g_free(s);
}

static void section_pages(MemoryRegionSection *s, uint64_t *first,
                          uint64_t *n)
{
    /* The address-space offset moves with the region offset. */
    g_assert_cmpuint(s->offset_within_address_space - BASE, ==,
                     s->offset_within_region);
    *first = s->offset_within_region / PAGE;
    *n = int128_get64(s->size) / PAGE;
    g_assert_cmpuint(*n, >, 0);
}

static int test_populate(RamDiscardListener *rdl, MemoryRegionSection *s)
{
    TestListener *l = container_of(rdl, TestListener, rdl);
    uint64_t first, n;

    section_pages(s, &first, &n);
    l->populates++;
    if (l->refuse_page >= first && l->refuse_page < first + n) {
        return -ENOMEM;
    }
    for (uint64_t p = first; p < first + n; p++) {
        g_assert_false(l->mapped[p]);
        l->mapped[p] = true;
        l->piece[p] = l->populates;
    }
    l->pieces++;
    return 0;
}

static void test_discard(RamDiscardListener *rdl, MemoryRegionSection *s)
{
    TestListener *l = container_of(rdl, TestListener, rdl);
    uint64_t first, n;

    section_pages(s, &first, &n);
    l->discards++;
    for (uint64_t p = first; p < first + n; p++) {
        g_assert_true(l->mapped[p]);
    }
    /* Whole pieces only: nothing outside the range was mapped with them. */
    for (uint64_t p = 0; p < PAGES; p++) {
        if (l->mapped[p] && (p < first || p >= first + n)) {
            for (uint64_t q = first; q < first + n; q++) {
                g_assert_cmpuint(l->piece[p], !=, l->piece[q]);
            }
        }
    }
    for (uint64_t p = first; p < first + n; p++) {
        l->pieces -= p == first || l->piece[p] != l->piece[p - 1];
        l->mapped[p] = false;
    }
}

typedef struct Fixture {
    RamDiscardManagerClass *rdmc;
    RamDiscardManager *rdm;
    GuestMemfdRegion r;
    MemoryRegionSection section;
    TestListener a, b;
} Fixture;

/* Over @file, or over the null kernel. */
static void fixture_init_file(Fixture *fx, GuestMemfdFile *file)
{
    memset(fx, 0, sizeof(*fx));
    /* The region as guest_memfd_region_new() makes it, with no RAM. */
    object_initialize(&fx->r, sizeof(fx->r), TYPE_GUEST_MEMFD_REGION);
    fx->rdm = RAM_DISCARD_MANAGER(&fx->r);
    fx->rdmc = RAM_DISCARD_MANAGER_GET_CLASS(fx->rdm);
    guest_memfd_state_init(&fx->r.state, file ?:
                           guest_memfd_null_create(PAGES * PAGE, 4 * PAGE,
                                                   false), "t");
    qemu_mutex_init(&fx->r.listeners_lock);
    QLIST_INIT(&fx->r.listeners);
    guest_memfd_rdm_init(&fx->r);
    fx->section = (MemoryRegionSection) {
        .size = int128_make64(PAGES * PAGE),
        .offset_within_address_space = BASE,
    };
    for (TestListener *l = &fx->a; l <= &fx->b; l++) {
        ram_discard_listener_init(&l->rdl, test_populate, test_discard,
                                  false);
        l->refuse_page = -1;
    }
}

static void fixture_init(Fixture *fx)
{
    fixture_init_file(fx, NULL);
}

static void fixture_destroy(Fixture *fx)
{
    GuestMemfdFile *f = fx->r.state.file;

    guest_memfd_rdm_destroy(&fx->r);
    guest_memfd_state_destroy(&fx->r.state);
    guest_memfd_close(f);
    qemu_mutex_destroy(&fx->r.listeners_lock);
    object_unref(OBJECT(&fx->r));
}

static void add_listener(Fixture *fx, TestListener *l)
{
    fx->rdmc->register_listener(fx->rdm, &l->rdl, &fx->section);
}

static bool convert(Fixture *fx, uint64_t first, uint64_t n, bool to_private,
                    uint64_t *done, Error **errp)
{
    uint64_t converted = 0;
    bool ok = !guest_memfd_rdm_convert(&fx->r, first * PAGE, n * PAGE,
                                       to_private, &converted, errp);

    if (done) {
        *done = converted / PAGE;
    }
    return ok;
}

/* A listener maps exactly the shared pages. */
static void assert_mirrors(Fixture *fx, TestListener *l)
{
    for (uint64_t p = 0; p < PAGES; p++) {
        g_assert_cmpint(l->mapped[p], ==,
                        !guest_memfd_state_any_private(&fx->r.state,
                                                       p * PAGE, PAGE));
    }
}

/* A listener of @part maps exactly the shared pages inside it. */
static void assert_mirrors_part(Fixture *fx, TestListener *l,
                                MemoryRegionSection *part)
{
    uint64_t first = part->offset_within_region / PAGE;
    uint64_t end = first + int128_get64(part->size) / PAGE;

    for (uint64_t p = 0; p < PAGES; p++) {
        bool shared = !guest_memfd_state_any_private(&fx->r.state, p * PAGE,
                                                     PAGE);

        g_assert_cmpint(l->mapped[p], ==, shared && p >= first && p < end);
    }
}

/* Registering maps what is shared; every change is told once. */
static void test_follows(void)
{
    Fixture fx;

    fixture_init(&fx);
    g_assert(convert(&fx, 4, 4, false, NULL, &error_abort));
    add_listener(&fx, &fx.a);
    add_listener(&fx, &fx.b);
    assert_mirrors(&fx, &fx.a);
    g_assert_cmpuint(fx.a.populates, ==, 1);

    /* 4..7 are shared already: only 8..11 are new to the listeners. */
    g_assert(convert(&fx, 4, 8, false, NULL, &error_abort));
    g_assert_cmpuint(fx.a.populates, ==, 2);
    assert_mirrors(&fx, &fx.a);
    assert_mirrors(&fx, &fx.b);

    /* A hole in the middle: two runs dropped, then two mapped again. */
    g_assert(convert(&fx, 6, 2, true, NULL, &error_abort));
    g_assert(convert(&fx, 0, 16, true, NULL, &error_abort));
    g_assert_cmpuint(fx.a.discards, ==, 3);
    assert_mirrors(&fx, &fx.a);
    g_assert(convert(&fx, 0, PAGES, false, NULL, &error_abort));
    assert_mirrors(&fx, &fx.b);

    fx.rdmc->unregister_listener(fx.rdm, &fx.a.rdl);
    fx.rdmc->unregister_listener(fx.rdm, &fx.b.rdl);
    for (uint64_t p = 0; p < PAGES; p++) {
        g_assert_false(fx.a.mapped[p] || fx.b.mapped[p]);
    }
    fixture_destroy(&fx);
}

/*
 * A listener that cannot map new shared pages: they go back to private,
 * and the listeners told before it, and the runs it took itself, drop
 * them again.
 */
static void test_refused(void)
{
    Fixture fx;
    Error *err = NULL;
    uint64_t done = 1;

    fixture_init(&fx);
    g_assert(convert(&fx, 10, 2, false, NULL, &error_abort));
    add_listener(&fx, &fx.a);
    add_listener(&fx, &fx.b);
    /* Listeners are told newest first: b, then a. */
    fx.a.refuse_page = 20;

    /* Private runs 8..9, 12..23 (10..11 are shared): a takes 8..9 first. */
    g_assert_false(convert(&fx, 8, 16, false, &done, &err));
    g_assert_nonnull(err);
    g_assert(strstr(error_get_pretty(err), "cannot map the pages"));
    error_free(err);
    g_assert_cmpuint(done, ==, 0);
    g_assert_true(guest_memfd_state_any_private(&fx.r.state, 8 * PAGE,
                                                PAGE));
    g_assert_false(guest_memfd_state_any_private(&fx.r.state, 10 * PAGE,
                                                 2 * PAGE));
    g_assert_cmpuint(fx.r.state.shared.nr_shared, ==, 2);
    assert_mirrors(&fx, &fx.a);
    assert_mirrors(&fx, &fx.b);
    g_assert_cmpuint(fx.b.discards, ==, 2);

    /* Without the refusing page, the same range converts. */
    g_assert(convert(&fx, 8, 12, false, NULL, &error_abort));
    assert_mirrors(&fx, &fx.a);
    assert_mirrors(&fx, &fx.b);
    fx.rdmc->unregister_listener(fx.rdm, &fx.a.rdl);
    fx.rdmc->unregister_listener(fx.rdm, &fx.b.rdl);
    fixture_destroy(&fx);
}

/*
 * A conversion the kernel stops part way (a pinned page): listeners drop
 * what becomes private and keep, or map again, what stays shared.
 */
static void test_partial(void)
{
    GuestMemfdFile *f;
    Fixture fx;
    Error *err = NULL;
    uint64_t done;
    unsigned pieces;

    guest_memfd_model_set_simulated_pool(4 * KiB, 4 * PAGES);
    f = guest_memfd_model_create(PAGES * PAGE, 4 * KiB, true, &error_abort);
    fixture_init_file(&fx, f);
    add_listener(&fx, &fx.a);
    add_listener(&fx, &fx.b);
    /* All shared: one unit per 2 MiB. */
    g_assert_cmpuint(fx.a.populates, ==, PAGES * PAGE / GUEST_MEMFD_DMA_UNIT);

    g_assert_cmpint(guest_memfd_model_pin(f, 8 * PAGE), ==, 0);
    g_assert_false(convert(&fx, 4, 8, true, &done, &err));
    g_clear_pointer(&err, error_free);
    g_assert_cmpuint(done, ==, 4);
    assert_mirrors(&fx, &fx.a);
    assert_mirrors(&fx, &fx.b);
    g_assert_cmpuint(fx.r.state.shared.nr_shared, ==, PAGES - 4);

    /*
     * Every retry refused: the whole range stays shared, and mapped in
     * the same pieces as before (a refused request must not fragment).
     */
    pieces = fx.a.pieces;
    guest_memfd_model_inject(GMEM_MODEL_FAULT_CONVERT_EAGAIN, 100);
    g_assert_false(convert(&fx, 16, 8, true, &done, &err));
    g_clear_pointer(&err, error_free);
    guest_memfd_model_inject(GMEM_MODEL_FAULT_CONVERT_EAGAIN, 0);
    g_assert_cmpuint(done, ==, 0);
    g_assert_cmpuint(fx.a.pieces, ==, pieces);
    assert_mirrors(&fx, &fx.a);
    assert_mirrors(&fx, &fx.b);

    g_assert_cmpint(guest_memfd_model_unpin(f, 8 * PAGE), ==, 0);
    g_assert(convert(&fx, 0, PAGES, true, NULL, &error_abort));
    assert_mirrors(&fx, &fx.a);
    g_assert(guest_memfd_model_check(f, &error_abort));
    fx.rdmc->unregister_listener(fx.rdm, &fx.a.rdl);
    fx.rdmc->unregister_listener(fx.rdm, &fx.b.rdl);
    fixture_destroy(&fx);
}

static int replay_mark(MemoryRegionSection *s, void *opaque)
{
    int *seen = opaque;
    uint64_t first, n;

    section_pages(s, &first, &n);
    for (uint64_t p = first; p < first + n; p++) {
        g_assert_cmpint(seen[p], ==, 0);
        seen[p] = 1;
    }
    return 0;
}

static void replay_mark_discarded(MemoryRegionSection *s, void *opaque)
{
    int *seen = opaque;
    uint64_t first, n;

    section_pages(s, &first, &n);
    for (uint64_t p = first; p < first + n; p++) {
        g_assert_cmpint(seen[p], ==, 0);
        seen[p] = 2;
    }
}

/* Replays and is_populated see the runs inside the section they get. */
static void test_replay(void)
{
    Fixture fx;
    MemoryRegionSection part = {
        .size = int128_make64(8 * PAGE),
        .offset_within_region = 4 * PAGE,
        .offset_within_address_space = BASE + 4 * PAGE,
    };
    MemoryRegionSection shared = {
        .size = int128_make64(2 * PAGE),
        .offset_within_region = 6 * PAGE,
        .offset_within_address_space = BASE + 6 * PAGE,
    };
    int seen[PAGES] = { 0 };

    fixture_init(&fx);
    g_assert(convert(&fx, 6, 2, false, NULL, &error_abort));
    g_assert_false(fx.rdmc->is_populated(fx.rdm, &part));
    g_assert_true(fx.rdmc->is_populated(fx.rdm, &shared));
    g_assert_cmpuint(fx.rdmc->get_min_granularity(fx.rdm, NULL), ==,
                     GUEST_MEMFD_DMA_UNIT);

    g_assert_cmpint(fx.rdmc->replay_populated(fx.rdm, &part, replay_mark,
                                             seen), ==, 0);
    fx.rdmc->replay_discarded(fx.rdm, &part, replay_mark_discarded, seen);
    for (uint64_t p = 0; p < PAGES; p++) {
        int want = p < 4 || p >= 12 ? 0 : p == 6 || p == 7 ? 1 : 2;

        g_assert_cmpint(seen[p], ==, want);
    }
    fixture_destroy(&fx);
}

/*
 * Shared pages are mapped in units that never cross a 2 MiB boundary
 * (VFIO maps each as one DMA mapping): an all-shared region is one per
 * 2 MiB.  A page made private splits its unit, which is dropped whole and
 * what stays shared of it mapped again; pages made shared are new units.
 * A listener of part of the region sees the same units, cut to its part.
 */
static void test_units(void)
{
    const unsigned unit = GUEST_MEMFD_DMA_UNIT / PAGE;
    MemoryRegionSection part = {
        .size = int128_make64(600 * PAGE),
        .offset_within_region = 100 * PAGE,
        .offset_within_address_space = BASE + 100 * PAGE,
    };
    Fixture fx;

    fixture_init(&fx);
    g_assert(convert(&fx, 0, PAGES, false, NULL, &error_abort));
    add_listener(&fx, &fx.a);
    fx.rdmc->register_listener(fx.rdm, &fx.b.rdl, &part);
    g_assert_cmpuint(fx.a.pieces, ==, PAGES / unit);
    g_assert_cmpuint(fx.b.pieces, ==, 2);       /* 100..511, 512..699 */
    g_assert_cmpuint(guest_memfd_rdm_mappings(&fx.r), ==, PAGES / unit + 2);

    /* The middle of a unit: dropped, both sides mapped again. */
    g_assert(convert(&fx, unit + 88, 1, true, NULL, &error_abort));
    g_assert_cmpuint(fx.a.discards, ==, 1);
    g_assert_cmpuint(fx.a.populates, ==, PAGES / unit + 2);
    g_assert_cmpuint(fx.a.pieces, ==, PAGES / unit + 1);
    g_assert_cmpuint(fx.r.unit_splits, ==, 1);

    /* Its first page: dropped, the rest mapped again. */
    g_assert(convert(&fx, unit, 1, true, NULL, &error_abort));
    g_assert_cmpuint(fx.a.discards, ==, 2);
    g_assert_cmpuint(fx.a.pieces, ==, PAGES / unit + 1);

    /* Back to shared: a unit of its own, one more mapping. */
    g_assert(convert(&fx, unit + 88, 1, false, NULL, &error_abort));
    g_assert_cmpuint(fx.a.pieces, ==, PAGES / unit + 2);
    g_assert_cmpuint(fx.a.discards, ==, 2);

    /* A page in the listener's part, in a unit that starts before it. */
    g_assert(convert(&fx, 300, 1, true, NULL, &error_abort));
    /* 100..299, 301..511, 513..599, 600, 601..699 */
    g_assert_cmpuint(fx.b.pieces, ==, 5);
    assert_mirrors(&fx, &fx.a);
    assert_mirrors_part(&fx, &fx.b, &part);

    /* All private: every unit goes whole. */
    g_assert(convert(&fx, 0, PAGES, true, NULL, &error_abort));
    g_assert_cmpuint(fx.a.pieces, ==, 0);
    g_assert_cmpuint(fx.b.pieces, ==, 0);
    g_assert_cmpuint(guest_memfd_rdm_mappings(&fx.r), ==, 0);
    g_assert_cmpuint(fx.r.units, ==, 0);
    fx.rdmc->unregister_listener(fx.rdm, &fx.a.rdl);
    fx.rdmc->unregister_listener(fx.rdm, &fx.b.rdl);
    fixture_destroy(&fx);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    type_register_static(&ram_discard_manager_info);
    module_call_init(MODULE_INIT_QOM);
    g_test_add_func("/guest-memfd-rdm/follows", test_follows);
    g_test_add_func("/guest-memfd-rdm/refused", test_refused);
    g_test_add_func("/guest-memfd-rdm/partial", test_partial);
    g_test_add_func("/guest-memfd-rdm/replay", test_replay);
    g_test_add_func("/guest-memfd-rdm/units", test_units);
    return g_test_run();
}
