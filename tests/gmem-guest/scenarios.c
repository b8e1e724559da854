/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * gmem-guest's scenarios and its command loop
 *
 * The host (tests/qtest/guest-memfd-guest-test.c) starts the guest with 2
 * GiB of guest_memfd RAM: folio 0 holds this kernel and stays shared,
 * folio 1 (TEST, the second GiB) is what the scenarios convert.  The host
 * sends one line per command on the console:
 *     init hypercall|psc    how to ask (KVM_HC_MAP_GPA_RANGE, the device)
 *     run NAME [ARGS]       run a scenario; the guest answers with a TAP
 *                           line, "ok - NAME" or "not ok - NAME"
 *     exit                  leave through isa-debug-exit
 * A scenario may stop at "SYNC LABEL" until the host answers "go" (having
 * checked its side: query-guest-memfd) or "fail WHY".
 */

#include "guest.h"

#define TEST            (1 * GiB)       /* the test folio */
#define FOLIO_PAGES     (GiB / PAGE_SIZE)
#define NULL_EXIT_PORT  0xe0            /* no device of a PC claims it */

int check_failures;

/* What a page holds: its address and a round number, in every word. */
static uint64_t tag(uint64_t gpa, unsigned round)
{
    return gpa ^ (0x5a5a000000000000ULL + ((uint64_t)round << 40));
}

static void fill(uint64_t gpa, uint64_t pages, unsigned round)
{
    for (uint64_t a = gpa; a < gpa + pages * PAGE_SIZE; a += 512) {
        *at(a) = tag(a, round);
    }
}

/* Pages of [gpa, gpa + pages) that do not hold @round's tags. */
static uint64_t bad_pages(uint64_t gpa, uint64_t pages, unsigned round)
{
    uint64_t bad = 0;

    for (uint64_t p = 0; p < pages; p++) {
        uint64_t base = gpa + p * PAGE_SIZE;

        for (uint64_t a = base; a < base + PAGE_SIZE; a += 512) {
            if (*at(a) != tag(a, round)) {
                bad++;
                break;
            }
        }
    }
    return bad;
}

/*
 * Can this guest touch its private pages?  Under KVM they are mapped into
 * the guest from the guest_memfd (or the model's guest view); under TCG
 * the CPU is QEMU itself, whose memory API refuses them.
 */
static bool touches_private(void)
{
    return request_path() == REQUEST_HYPERCALL;
}

bool host_sync(const char *label)
{
    char reply[128];

    con_printf("SYNC %s\n", label);
    con_getline(reply, sizeof(reply));
    if (str_eq(reply, "go")) {
        return true;
    }
    con_printf("# host at %s: %s\n", label, reply);
    check_failures++;
    return false;
}

/*
 * Convert [gpa, gpa + pages) to private and back, with data around it:
 * the neighbours keep theirs at every step, the guest reads and writes
 * its private pages where it can, and shared data survives the round
 * trip in place.  The host checks its counts at each SYNC.
 */
static int round_trip(uint64_t gpa, uint64_t pages, const char *name)
{
    long ret;

    fill(gpa - PAGE_SIZE, pages + 2, 1);
    ret = convert(gpa, pages, true);
    CHECK(ret == 0, "to private: %ld", ret);
    CHECK(bad_pages(gpa - PAGE_SIZE, 1, 1) == 0 &&
          bad_pages(gpa + pages * PAGE_SIZE, 1, 1) == 0,
          "a neighbour lost its data");
    if (touches_private()) {
        /* In place: the guest's data is still there, and still its own. */
        CHECK(bad_pages(gpa, pages, 1) == 0, "private data changed");
        fill(gpa, pages, 2);
        CHECK(bad_pages(gpa, pages, 2) == 0, "private pages not writable");
    }
    host_sync(name);

    ret = convert(gpa, pages, false);
    CHECK(ret == 0, "to shared: %ld", ret);
    CHECK(bad_pages(gpa, pages, touches_private() ? 2 : 1) == 0,
          "data did not survive the round trip in place");
    fill(gpa, pages, 3);
    CHECK(bad_pages(gpa, pages, 3) == 0, "shared pages not writable");
    host_sync("shared-again");
    return check_failures;
}

static int run_4k(const char *args)
{
    return round_trip(TEST + 5 * PAGE_SIZE, 1, "4k-private");
}

static int run_2m(const char *args)
{
    return round_trip(TEST + 4 * MiB, 512, "2m-private");
}

/*
 * The whole 1 GiB folio: private in one request (merged: no split), one
 * page shared (split), private again (merged back), all shared.
 */
static int run_1g(const char *args)
{
    Request whole = {
        .gpa = TEST, .npages = FOLIO_PAGES, .to_private = true,
        .page_size_hint = 2,
    };
    long ret;

    fill(TEST + GiB - PAGE_SIZE, 1, 1);
    ret = request(&whole).ret;
    CHECK(ret == 0, "the whole folio to private: %ld", ret);
    host_sync("1g-private");
    ret = convert(TEST + 7 * PAGE_SIZE, 1, false);
    CHECK(ret == 0, "one page to shared: %ld", ret);
    fill(TEST + 7 * PAGE_SIZE, 1, 4);
    host_sync("1g-one-shared");
    ret = convert(TEST + 7 * PAGE_SIZE, 1, true);
    CHECK(ret == 0, "that page to private again: %ld", ret);
    host_sync("1g-private-again");
    whole.to_private = false;
    ret = request(&whole).ret;
    CHECK(ret == 0, "the whole folio to shared: %ld", ret);
    CHECK(bad_pages(TEST + 7 * PAGE_SIZE, 1, 4) == 0,
          "data written while split did not survive");
    CHECK(bad_pages(TEST + GiB - PAGE_SIZE, 1, 1) == 0,
          "the folio's last page lost its data");
    host_sync("1g-shared");
    return check_failures;
}

/* 64 pages spread over the folio, one request each, neighbours intact. */
static int run_scattered(const char *args)
{
    const uint64_t stride = 16 * MiB + 3 * PAGE_SIZE;
    long ret;

    for (unsigned i = 0; i < 64; i++) {
        fill(TEST + i * stride - PAGE_SIZE, 3, 5);
    }
    for (unsigned i = 0; i < 64; i++) {
        ret = convert(TEST + i * stride, 1, true);
        CHECK(ret == 0, "page %u to private: %ld", i, ret);
    }
    for (unsigned i = 0; i < 64; i++) {
        uint64_t gpa = TEST + i * stride;

        CHECK(bad_pages(gpa - PAGE_SIZE, 1, 5) == 0 &&
              bad_pages(gpa + PAGE_SIZE, 1, 5) == 0,
              "a neighbour of page %u lost its data", i);
    }
    host_sync("scattered-private");
    for (unsigned i = 0; i < 64; i++) {
        ret = convert(TEST + i * stride, 1, false);
        CHECK(ret == 0, "page %u to shared: %ld", i, ret);
        CHECK(bad_pages(TEST + i * stride, 1, 5) == 0,
              "page %u lost its data in place", i);
    }
    host_sync("scattered-shared");
    return check_failures;
}

typedef struct Hostile {
    const char *what;
    Request req;
    long want;                  /* the answer, or 1: any error */
    bool hypercall_only;        /* the PSC format cannot say it */
} Hostile;

/*
 * Requests a guest gets wrong.  ARGS: the addresses the host gave the
 * machine's other memory: "HOLE PLAIN_RAM DIMM1_END" (DIMM1_END is where
 * one guest_memfd pc-dimm ends and the next begins).
 */
static int run_hostile(const char *args)
{
    uint64_t hole = parse_u64(&args), plain = parse_u64(&args);
    uint64_t dimm_end = parse_u64(&args);
    const Hostile cases[] = {
        { "unaligned address", { TEST + 0x800, 1, true }, -EINVAL, true },
        { "no pages", { TEST, 0, true }, -EINVAL, true },
        { "count that wraps", { TEST, ~0ULL / PAGE_SIZE, true }, -EINVAL,
          true },
        { "unknown attribute bits", { TEST, 1, true, 0, 1ULL << 8 },
          -EINVAL, true },
        { "bad page-size hint", { TEST, 1, true, 7 }, -EINVAL, true },
        { "a hole", { hole, 1, true }, -EFAULT },
        { "RAM that is not guest_memfd", { plain, 1, true }, -EFAULT },
        { "past the end of RAM", { 2 * GiB - PAGE_SIZE, 2, true }, -EFAULT },
        /* One kernel call converts one file; a PSC list may span two. */
        { "across two backends", { dimm_end - PAGE_SIZE, 2, true },
          -EFAULT, true },
    };
    long ret;

    host_sync("hostile-before");
    for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const Hostile *h = &cases[i];

        if (h->hypercall_only && request_path() != REQUEST_HYPERCALL) {
            continue;
        }
        ret = request(&h->req).ret;
        con_printf("# %s: %ld\n", h->what, ret);
        CHECK(h->want == 1 ? ret < 0 : ret == h->want,
              "%s answered %ld, expected %ld", h->what, ret, h->want);
    }
    /* Nothing changed, and the guest's pages still hold their data. */
    fill(TEST, 4, 6);
    CHECK(bad_pages(TEST, 4, 6) == 0, "test pages not writable");
    host_sync("hostile-after");
    return check_failures;
}

/*
 * The host pins page 8 of a 16-page range (x-guest-memfd-pin): the
 * request stops there; the 8 pages before it are private, the rest not.
 * Once the host unpins it, the same request completes.
 */
static int run_pinned(const char *args)
{
    Request req = { .gpa = TEST + 64 * PAGE_SIZE, .npages = 16,
                    .to_private = true };
    Answer a;

    host_sync("pin");
    a = request(&req);
    con_printf("# pinned: %ld after %lu pages\n", a.ret, a.pages_done);
    CHECK(a.ret == (request_path() == REQUEST_HYPERCALL ? -EAGAIN : -EIO),
          "a request over a pinned page answered %ld", a.ret);
    CHECK(!a.pages_known || a.pages_done == 8,
          "the device says %lu pages were done, not 8", a.pages_done);
    host_sync("pinned-partial");
    a = request(&req);
    CHECK(a.ret == 0, "once unpinned: %ld", a.ret);
    req.to_private = false;
    a = request(&req);
    CHECK(a.ret == 0, "back to shared: %ld", a.ret);
    host_sync("unpinned");
    return check_failures;
}

/*
 * Mainline guest_memfd cannot convert in place: to-private is refused
 * with EOPNOTSUPP and changes nothing; to-shared of shared memory is what
 * the guest already has.
 */
static int run_mainline(const char *args)
{
    long ret;

    fill(TEST, 2, 7);
    ret = convert(TEST, 1, true);
    CHECK(ret == -EOPNOTSUPP, "to private answered %ld", ret);
    ret = convert(TEST, 2, false);
    CHECK(ret == 0, "to shared of shared memory answered %ld", ret);
    CHECK(bad_pages(TEST, 2, 7) == 0, "the pages lost their data");
    host_sync("mainline");
    return check_failures;
}

/*
 * Round trips, timed with the TSC: ARGS "N".  Prints, in cycles per
 * request: a null exit (a write to an I/O port nothing claims: to QEMU and
 * back), a hypercall KVM answers itself (no exit to QEMU), and 4 KiB,
 * 2 MiB and 1 GiB requests that change nothing (to-shared of shared
 * pages: the whole path without a kernel call) and that convert.
 */
static uint64_t per_call(uint64_t start, unsigned n)
{
    return (rdtsc() - start) / n;
}

static int run_timing(const char *args)
{
    unsigned n = parse_u64(&args);
    /* Mainline guest_memfd cannot convert: only the unchanged rows. */
    bool converts = convert(TEST, 1, true) == 0 &&
                    convert(TEST, 1, false) == 0;
    const struct { const char *name; uint64_t pages; } sizes[] = {
        { "4k", 1 }, { "2m", 512 }, { "1g", FOLIO_PAGES },
    };
    uint64_t t;

    n = n ? n : 100;
    t = rdtsc();
    for (unsigned i = 0; i < n; i++) {
        outb(NULL_EXIT_PORT, 0);
    }
    con_printf("TIMING null-exit %lu\n", per_call(t, n));
    if (request_path() == REQUEST_HYPERCALL) {
        t = rdtsc();
        for (unsigned i = 0; i < n; i++) {
            null_hypercall();
        }
        con_printf("TIMING in-kernel-hypercall %lu\n", per_call(t, n));
    }
    for (unsigned s = 0; s < 3; s++) {
        t = rdtsc();
        for (unsigned i = 0; i < n; i++) {
            convert(TEST, sizes[s].pages, false);
        }
        con_printf("TIMING unchanged-%s %lu\n", sizes[s].name,
                   per_call(t, n));
        if (!converts) {
            continue;
        }
        t = rdtsc();
        for (unsigned i = 0; i < n; i++) {
            CHECK(convert(TEST, sizes[s].pages, i % 2 == 0) == 0,
                  "conversion %u failed", i);
        }
        con_printf("TIMING convert-%s %lu\n", sizes[s].name, per_call(t, n));
        convert(TEST, sizes[s].pages, false);
    }
    return check_failures;
}

/*
 * QEMU's edu device, assigned with VFIO (the lab's vfio host): its DMA
 * engine copies a page between guest RAM and a 4 KiB buffer of its own.
 * L0 raises its DMA mask (28 bits by default) so that it reaches every
 * guest-physical address: folio 1 and the pc-dimms above 4 GiB.
 */
#define EDU_VENDOR      0x1234
#define EDU_DEVICE      0x11e8
#define EDU_DMA_SRC     0x80
#define EDU_DMA_DST     0x88
#define EDU_DMA_COUNT   0x90
#define EDU_DMA_CMD     0x98
#define EDU_DMA_RUN     0x1
#define EDU_DMA_TO_RAM  0x2
#define EDU_BUFFER      0x40000
#define EDU_SRC         (8 * MiB)
#define EDU_DST         (9 * MiB + 5 * PAGE_SIZE)
#define EDU_SCATTERED   16

static volatile uint64_t *edu;  /* BAR0: MMIO, every access must happen */

/* One DMA of a page; false if the device did not finish in time. */
static bool edu_dma(uint64_t src, uint64_t dst, bool to_ram)
{
    edu[EDU_DMA_SRC / 8] = src;
    edu[EDU_DMA_DST / 8] = dst;
    edu[EDU_DMA_COUNT / 8] = PAGE_SIZE;
    edu[EDU_DMA_CMD / 8] = EDU_DMA_RUN | (to_ram ? EDU_DMA_TO_RAM : 0);
    /* The device copies after 100 ms of its own clock. */
    for (uint64_t t = rdtsc(); rdtsc() - t < (1ULL << 36);) {
        if (!(edu[EDU_DMA_CMD / 8] & EDU_DMA_RUN)) {
            return true;
        }
    }
    return false;
}

/* Does @dst hold what @src holds (its words, not its tags)? */
static bool same_page(uint64_t dst, uint64_t src)
{
    for (uint64_t off = 0; off < PAGE_SIZE; off += 512) {
        if (*at(dst + off) != *at(src + off)) {
            return false;
        }
    }
    return true;
}

/* Find edu and load its buffer with EDU_SRC's page; false if absent. */
static bool edu_init(void)
{
    int bdf = pci_find(EDU_VENDOR, EDU_DEVICE);

    if (bdf < 0) {
        con_printf("# no edu device\n");
        return false;
    }
    pci_write32(bdf, 0x04, pci_read32(bdf, 0x04) | 0x6);
    /* See above: MMIO registers. */
    edu = (volatile uint64_t *)(uintptr_t)(pci_read32(bdf, 0x10) & ~0xfu);
    con_printf("# edu at %02x:%02x.%x, registers at 0x%lx\n", bdf >> 8,
               (bdf >> 3) & 0x1f, bdf & 7, (unsigned long)(uintptr_t)edu);
    fill(EDU_SRC, 1, 10);
    CHECK(edu_dma(EDU_SRC, EDU_BUFFER, false), "DMA from RAM timed out");
    return true;
}

/* Does a DMA of edu's buffer into @gpa land? */
static bool edu_lands(uint64_t gpa)
{
    CHECK(edu_dma(EDU_BUFFER, gpa, true), "DMA to RAM timed out");
    return same_page(gpa, EDU_SRC);
}

/*
 * Does a DMA into private @gpa stay out?  The guest sees its private page
 * (KVM maps it from the guest view), so it checks its data is unchanged.
 */
static bool edu_kept_out(uint64_t gpa, unsigned round)
{
    fill(gpa, 1, round);
    CHECK(edu_dma(EDU_BUFFER, gpa, true), "DMA to RAM timed out");
    return bad_pages(gpa, 1, round) == 0;
}

/*
 * DMA into the shared page @gpa lands; once the page is private the same
 * DMA does not (the IOMMU refuses it) and the private data stays, while
 * its neighbour still gets its DMA; shared again, DMA lands again.  The
 * host checks its side at NAME-shared, NAME-private, NAME-shared-again.
 */
static int edu_cycle(uint64_t gpa, const char *name)
{
    char label[48];
    long ret;

    fill(gpa, 2, 11);
    CHECK(edu_lands(gpa), "DMA into a shared page did not land");
    host_sync(str_cat(label, sizeof(label), name, "-shared"));

    ret = convert(gpa, 1, true);
    CHECK(ret == 0, "to private: %ld", ret);
    CHECK(edu_kept_out(gpa, 12), "DMA landed in a private page");
    CHECK(edu_lands(gpa + PAGE_SIZE),
          "DMA into the private page's neighbour did not land");
    host_sync(str_cat(label, sizeof(label), name, "-private"));

    ret = convert(gpa, 1, false);
    CHECK(ret == 0, "to shared: %ld", ret);
    CHECK(bad_pages(gpa, 1, 12) == 0, "the page lost its data");
    CHECK(edu_lands(gpa), "DMA into the page shared again did not land");
    host_sync(str_cat(label, sizeof(label), name, "-shared-again"));
    return check_failures;
}

/* A page below 256 MiB, in folio 0 (what edu reaches unless told). */
static int run_edu(const char *args)
{
    if (!edu_init()) {
        return 1;
    }
    return edu_cycle(EDU_DST, "edu");
}

/*
 * Folio 1 private but for EDU_SCATTERED scattered shared pages (split
 * 1 GiB folio, one DMA mapping each): DMA lands in each of those and in
 * none of their private neighbours; the folio shared again (merged) takes
 * DMA where it was private.
 */
static int run_edu_folio(const char *args)
{
    const uint64_t stride = 61 * MiB + 3 * PAGE_SIZE;
    long ret;

    if (!edu_init()) {
        return 1;
    }
    ret = convert(TEST, FOLIO_PAGES, true);
    CHECK(ret == 0, "folio to private: %ld", ret);
    host_sync("edu-folio-shared");
    for (unsigned i = 0; i < EDU_SCATTERED; i++) {
        uint64_t gpa = TEST + PAGE_SIZE + i * stride;

        ret = convert(gpa, 1, false);
        CHECK(ret == 0, "page %u to shared: %ld", i, ret);
        CHECK(edu_lands(gpa), "DMA into shared page %u did not land", i);
        CHECK(edu_kept_out(gpa + PAGE_SIZE, 13 + i),
              "DMA landed in page %u's private neighbour", i);
    }
    host_sync("edu-folio-private");

    ret = convert(TEST, FOLIO_PAGES, false);
    CHECK(ret == 0, "folio to shared: %ld", ret);
    CHECK(bad_pages(TEST + 2 * PAGE_SIZE, 1, 13) == 0,
          "a private page lost its data in place");
    CHECK(edu_lands(TEST + 2 * PAGE_SIZE),
          "DMA into the folio shared again did not land");
    host_sync("edu-folio-shared-again");
    return check_failures;
}

/* A pc-dimm of guest_memfd plugged at run time, at the host's GPA. */
static int run_edu_dimm(const char *args)
{
    uint64_t base = parse_u64(&args);

    if (!base) {
        con_printf("# usage: run edu-dimm GPA\n");
        return 1;
    }
    if (!edu_init()) {
        return 1;
    }
    return edu_cycle(base + 5 * PAGE_SIZE, "edu-dimm");
}

const Scenario scenarios[] = {
    { "4k", run_4k },
    { "2m", run_2m },
    { "1g", run_1g },
    { "scattered", run_scattered },
    { "hostile", run_hostile },
    { "pinned", run_pinned },
    { "mainline", run_mainline },
    { "timing", run_timing },
    { "edu", run_edu },
    { "edu-folio", run_edu_folio },
    { "edu-dimm", run_edu_dimm },
    { NULL, NULL },
};

static void run_command(const char *line)
{
    const char *name = line + 4, *args;
    char word[32];
    size_t n = 0;

    while (name[n] && name[n] != ' ' && n + 1 < sizeof(word)) {
        word[n] = name[n];
        n++;
    }
    word[n] = 0;
    args = name + n;
    for (const Scenario *s = scenarios; s->name; s++) {
        if (str_eq(s->name, word)) {
            check_failures = 0;
            /* Says the command arrived, should the scenario hang. */
            con_printf("# running %s\n", word);
            con_printf("%s - %s\n", s->run(args) ? "not ok" : "ok", word);
            return;
        }
    }
    con_printf("not ok - %s # no such scenario\n", word);
}

void guest_main(void)
{
    char line[160];

    con_printf("# gmem-guest: up, waiting for the host\n");
    for (;;) {
        con_printf("READY\n");
        con_getline(line, sizeof(line));
        if (str_starts(line, "run ")) {
            run_command(line);
        } else if (str_eq(line, "init hypercall") || str_eq(line, "init psc")) {
            bool ok = request_init(line[5] == 'h' ? REQUEST_HYPERCALL :
                                                    REQUEST_PSC);

            con_printf("# requests go through %s%s\n", request_path_name(),
                       ok ? "" : ": not available");
            if (!ok) {
                guest_exit(2);
            }
        } else if (str_eq(line, "exit")) {
            guest_exit(0);
        } else {
            con_printf("# unknown command '%s'\n", line);
        }
    }
}
