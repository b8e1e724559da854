/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * guest-memfd-bench: cost of in-place guest_memfd conversion, side by side
 * with the alternatives, through the real page-state core
 * (system/guest-memfd-state.c) and kernel model (system/guest-memfd-model.c)
 *
 * Parts (see docs/devel/guest-memfd-performance.rst):
 *   convert    the core with the model and with the null kernel, 4 KiB /
 *              2 MiB / 1 GiB ranges; a 253-entry page-state-change list with
 *              and without coalescing
 *   upstream   upstream's scheme (memory attributes + discarding the other
 *              side of a separate shared backing) against in-place
 *   footprint  host memory after sharing 50% of the guest and taking it back
 *   scaling    per-request and query cost for VM sizes 1 GiB .. 1 TiB
 *
 * Every figure is measured in @repeats independent repeats.  The output is
 * one JSON object per line, {"key": ..., "unit": ..., "values": [one per
 * repeat]}, plus {"note": ...} lines; tests/bench/guest-memfd-bench.py turns
 * them into the table (median and spread over the repeats).
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qemu/error-report.h"
#include "qemu/host-utils.h"
#include "qemu/units.h"
#include "qemu/memfd.h"
#include "system/guest-memfd-state.h"
#include "system/guest-memfd-model.h"
#include "tests/unit/guest-memfd-model-testing.h"
#include "hw/misc/guest-memfd-psc-list.h"
#include "qemu/bswap.h"

#include <linux/falloc.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define PAGE GUEST_MEMFD_PAGE_SIZE
#define PSC_LIST_ENTRIES PSC_MAX_ENTRIES

static unsigned repeats = 7;
static uint64_t footprint_gib = 2;
static uint64_t max_vm_gib = 1024;

/* Measurement helpers */

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

typedef struct Samples {
    uint64_t *v;
    size_t n, cap;
} Samples;

static void samples_add(Samples *s, uint64_t value)
{
    if (s->n == s->cap) {
        s->cap = MAX(64, s->cap * 2);
        s->v = g_renew(uint64_t, s->v, s->cap);
    }
    s->v[s->n++] = value;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile; sorts the samples. */
static double samples_pct(Samples *s, double pct)
{
    size_t i;

    assert(s->n);
    qsort(s->v, s->n, sizeof(*s->v), cmp_u64);
    i = (size_t)((s->n - 1) * pct / 100.0 + 0.5);
    return s->v[MIN(i, s->n - 1)];
}

static void samples_reset(Samples *s)
{
    s->n = 0;
}

/*
 * Results: one value per repeat for every key, printed at the end so that
 * the notes the parts print do not interleave with them.
 */
typedef struct Figure {
    char *key;
    const char *unit;
    GArray *values;     /* double, one per repeat */
} Figure;

static GPtrArray *figures;

static void figure_add(const char *unit, double value, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);

static void figure_add(const char *unit, double value, const char *fmt, ...)
{
    g_autofree char *key = NULL;
    va_list ap;
    Figure *fig = NULL;

    va_start(ap, fmt);
    key = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    for (guint i = 0; i < figures->len; i++) {
        Figure *f = g_ptr_array_index(figures, i);

        if (!strcmp(f->key, key)) {
            fig = f;
            break;
        }
    }
    if (!fig) {
        fig = g_new0(Figure, 1);
        fig->key = g_steal_pointer(&key);
        fig->unit = unit;
        fig->values = g_array_new(false, false, sizeof(double));
        g_ptr_array_add(figures, fig);
    }
    g_array_append_val(fig->values, value);
}

static void figures_print(void)
{
    for (guint i = 0; i < figures->len; i++) {
        Figure *f = g_ptr_array_index(figures, i);

        printf("{\"key\": \"%s\", \"unit\": \"%s\", \"values\": [", f->key,
               f->unit);
        for (guint j = 0; j < f->values->len; j++) {
            printf("%s%.1f", j ? ", " : "",
                   g_array_index(f->values, double, j));
        }
        printf("]}\n");
    }
}

static void note(const char *fmt, ...) G_GNUC_PRINTF(1, 2);

static void note(const char *fmt, ...)
{
    g_autofree char *text = NULL;
    g_autofree char *quoted = NULL;
    va_list ap;

    va_start(ap, fmt);
    text = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    quoted = g_strescape(text, NULL);
    printf("{\"note\": \"%s\"}\n", quoted);
    fflush(stdout);
}

static const char *range_name(uint64_t size)
{
    return size >= GiB ? "1G" : size >= 2 * MiB ? "2M" : "4K";
}

/* Host memory as the kernel accounts it */

/* Bytes a memfd (hugetlb or not) holds: what its pages cost the host. */
static uint64_t fd_bytes(int fd)
{
    struct stat st;

    if (fstat(fd, &st) < 0) {
        return 0;
    }
    return (uint64_t)st.st_blocks * 512;
}

static uint64_t smaps_rollup_kib(const char *field)
{
    g_autofree char *text = NULL;
    const char *p;

    if (!g_file_get_contents("/proc/self/smaps_rollup", &text, NULL, NULL)) {
        return 0;
    }
    p = strstr(text, field);
    return p ? g_ascii_strtoull(p + strlen(field), NULL, 10) : 0;
}

/* Make the pages of a mapping or of a file range exist, untimed. */
static void populate_map(uint8_t *p, uint64_t len)
{
    if (madvise(p, len, MADV_POPULATE_WRITE) < 0) {
        for (uint64_t i = 0; i < len; i += PAGE) {
            p[i] = 1;
        }
    }
}

static int memfd_sized(const char *name, uint64_t size, uint64_t hugetlb)
{
    unsigned flags = MFD_CLOEXEC;
    int fd;

    if (hugetlb) {
        flags |= MFD_HUGETLB | (ctz64(hugetlb) << MFD_HUGE_SHIFT);
    }
    fd = memfd_create(name, flags);
    if (fd < 0 || ftruncate(fd, size) < 0) {
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    return fd;
}

static uint8_t *map_fd(int fd, uint64_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

    return p == MAP_FAILED ? NULL : p;
}

/*
 * The KVM memory-attribute ioctl, which cannot run here (no /dev/kvm):
 * both schemes call this same do-nothing function through a pointer the
 * compiler cannot see through, so that it costs a real indirect call on
 * both sides and nothing else.
 */
static int set_attributes_noop(uint64_t offset, uint64_t size,
                               bool to_private)
{
    return 0;
}

/* volatile: the call stays a real indirect call on both sides. */
static int (*volatile set_memory_attributes)(uint64_t, uint64_t, bool) =
    set_attributes_noop;

/*
 * In-place conversion with the same stand-in: the kernel call of in-place
 * conversion is the attribute ioctl on the guest_memfd itself.
 */
static int attr_kernel_convert(GuestMemfdFile *f, uint64_t offset,
                               uint64_t size, bool to_private,
                               uint64_t *error_offset)
{
    return set_memory_attributes(offset, size, to_private);
}

static int attr_kernel_range(GuestMemfdFile *f, uint64_t offset,
                             uint64_t size)
{
    return 0;
}

static void attr_kernel_close(GuestMemfdFile *f)
{
    g_free(f);
}

static const GuestMemfdKernelOps attr_kernel_ops = {
    .convert = attr_kernel_convert,
    .punch_hole = attr_kernel_range,
    .allocate = attr_kernel_range,
    .close = attr_kernel_close,
};

static GuestMemfdFile *attr_kernel_create(uint64_t size, uint64_t page_size)
{
    GuestMemfdFile *f = g_new0(GuestMemfdFile, 1);

    *f = (GuestMemfdFile) {
        .ops = &attr_kernel_ops, .size = size, .page_size = page_size,
        .fd = -1,
    };
    return f;
}

/* Files for the core */

typedef enum Kernel {
    KERNEL_NULL,
    KERNEL_MODEL,
    KERNEL_ATTR,
} Kernel;

static const char *kernel_names[] = {
    [KERNEL_NULL] = "null", [KERNEL_MODEL] = "model",
    [KERNEL_ATTR] = "attr",
};

/*
 * A private file of @size with folios of @folio behind the page-state core.
 * The model's folios holding @alloc_size bytes from @alloc_offset are
 * allocated, so that conversions split and merge them as they would in a
 * running guest (from a simulated pool: no host memory is used).
 */
static GuestMemfdFile *bench_file(Kernel kernel, uint64_t size, uint64_t folio,
                                  uint64_t alloc_offset, uint64_t alloc_size)
{
    GuestMemfdFile *f;

    switch (kernel) {
    case KERNEL_NULL:
        return guest_memfd_null_create(size, folio, false);
    case KERNEL_ATTR:
        return attr_kernel_create(size, folio);
    case KERNEL_MODEL:
        f = guest_memfd_model_create(size, folio, false, &error_fatal);
        if (alloc_size) {
            int ret = guest_memfd_allocate(f, alloc_offset, alloc_size);

            assert(!ret);
        }
        return f;
    }
    g_assert_not_reached();
}

static void convert_or_die(GuestMemfdState *s, uint64_t offset,
                           uint64_t size, bool to_private)
{
    guest_memfd_state_convert(s, offset, size, to_private, NULL,
                              &error_fatal);
}

/*
 * Time @pairs share-then-return cycles of @range-sized requests walking
 * through [base, base + window); each request is one sample.  An untimed
 * pass first takes the first-touch faults of the state's and the model's
 * bookkeeping, which a running VM has long paid.
 */
static void time_core_pairs(GuestMemfdState *s, Samples *samples,
                            uint64_t base, uint64_t window, uint64_t range,
                            unsigned pairs)
{
    uint64_t slots = window / range;

    for (unsigned i = 0; i < MIN(pairs, slots); i++) {
        convert_or_die(s, base + i * range, range, false);
        convert_or_die(s, base + i * range, range, true);
    }
    for (unsigned i = 0; i < pairs; i++) {
        uint64_t off = base + (i % slots) * range;
        uint64_t t0, t1, t2;

        t0 = now_ns();
        convert_or_die(s, off, range, false);
        t1 = now_ns();
        convert_or_die(s, off, range, true);
        t2 = now_ns();
        samples_add(samples, t1 - t0);
        samples_add(samples, t2 - t1);
    }
}

/* Part 1: conversion cost through the core */

static const struct {
    uint64_t range;
    unsigned pairs;
} convert_ranges[] = {
    { 4 * KiB, 4096 },
    { 2 * MiB, 512 },
    { 1 * GiB, 64 },
};

static void bench_timer_overhead(void)
{
    Samples s = { 0 };

    for (unsigned r = 0; r < repeats; r++) {
        samples_reset(&s);
        for (unsigned i = 0; i < 10000; i++) {
            uint64_t t0 = now_ns();

            samples_add(&s, now_ns() - t0);
        }
        figure_add("ns", samples_pct(&s, 50), "timer.overhead");
    }
    g_free(s.v);
}

static void bench_convert_ranges(void)
{
    const uint64_t size = 4 * GiB;
    Samples s = { 0 };

    for (unsigned r = 0; r < repeats; r++) {
        for (Kernel k = KERNEL_NULL; k <= KERNEL_MODEL; k++) {
            GuestMemfdFile *f = bench_file(k, size, GiB, 0, size);
            GuestMemfdState st;

            guest_memfd_state_init(&st, f, "bench");
            for (int i = 0; i < ARRAY_SIZE(convert_ranges); i++) {
                uint64_t range = convert_ranges[i].range;

                samples_reset(&s);
                time_core_pairs(&st, &s, 0, size, range,
                                convert_ranges[i].pairs);
                figure_add("ns", samples_pct(&s, 50), "convert.%s.%s.p50",
                           kernel_names[k], range_name(range));
                figure_add("ns", samples_pct(&s, 99), "convert.%s.%s.p99",
                           kernel_names[k], range_name(range));
            }
            guest_memfd_state_destroy(&st);
            guest_memfd_close(f);
        }
    }
    g_free(s.v);
}

/*
 * A page-state-change list of PSC_LIST_ENTRIES contiguous 4 KiB entries
 * with one operation, processed by the guest-memfd-psc device's own list
 * code (psc_list_process()) against the core: with coalescing, as the
 * device does, or with one conversion per entry.  The list lives in a
 * buffer of its own standing in for guest memory.
 */
typedef struct PscBench {
    GuestMemfdState *state;
    uint8_t list[PSC_BUF_SIZE];
} PscBench;

static bool psc_bench_read(void *opaque, uint64_t gpa, void *buf,
                           uint64_t len)
{
    PscBench *b = opaque;

    memcpy(buf, b->list + gpa, len);
    return true;
}

static bool psc_bench_write(void *opaque, uint64_t gpa, const void *buf,
                            uint64_t len)
{
    PscBench *b = opaque;

    memcpy(b->list + gpa, buf, len);
    return true;
}

static bool psc_bench_check(void *opaque, uint64_t gpa, uint64_t size,
                            Error **errp)
{
    return true;
}

static bool psc_bench_convert(void *opaque, uint64_t gpa, uint64_t size,
                              bool to_private, uint64_t *done, Error **errp)
{
    PscBench *b = opaque;

    return !guest_memfd_state_convert(b->state, gpa, size, to_private, done,
                                      errp);
}

static const PscListOps psc_bench_ops = {
    .read = psc_bench_read,
    .write = psc_bench_write,
    .check = psc_bench_check,
    .convert = psc_bench_convert,
};

static void psc_list_convert(PscBench *b, uint64_t base, bool to_private,
                             bool coalesce)
{
    PscListResult res;

    stw_le_p(b->list, 0);
    stw_le_p(b->list + 2, PSC_LIST_ENTRIES - 1);
    for (unsigned e = 0; e < PSC_LIST_ENTRIES; e++) {
        uint64_t gfn = (base + e * PAGE) >> 12;
        uint64_t op = to_private ? PSC_OP_PRIVATE : PSC_OP_SHARED;

        stq_le_p(b->list + PSC_HDR_SIZE + e * 8,
                 (gfn << PSC_ENTRY_GFN_SHIFT) | (op << PSC_ENTRY_OP_SHIFT));
    }
    psc_list_process(0, &psc_bench_ops, b, coalesce, &res);
    if (res.status != PSC_STATUS_OK) {
        error_report("guest-memfd-bench: list status %u", res.status);
        exit(1);
    }
}

static void bench_psc_list(void)
{
    const uint64_t size = 4 * GiB, base = GiB + 64 * KiB;
    const unsigned lists = 400;

    for (unsigned r = 0; r < repeats; r++) {
        for (Kernel k = KERNEL_NULL; k <= KERNEL_MODEL; k++) {
            for (int coalesce = 1; coalesce >= 0; coalesce--) {
                GuestMemfdFile *f = bench_file(k, size, GiB, GiB, GiB);
                const char *how = coalesce ? "coalesced" : "per-entry";
                GuestMemfdState st;
                GuestMemfdStateInfo info;
                PscBench b = { .state = &st };
                uint64_t t0, t1;

                guest_memfd_state_init(&st, f, "bench");
                t0 = now_ns();
                for (unsigned l = 0; l < lists; l++) {
                    psc_list_convert(&b, base, l & 1, coalesce);
                }
                t1 = now_ns();
                guest_memfd_state_info(&st, &info);
                figure_add("entries/s",
                           (double)lists * PSC_LIST_ENTRIES * 1e9 / (t1 - t0),
                           "psc.%s.%s.entries_per_s", kernel_names[k], how);
                figure_add("calls", (double)info.counters.kernel_calls / lists,
                           "psc.%s.%s.kernel_calls", kernel_names[k], how);
                guest_memfd_state_destroy(&st);
                guest_memfd_close(f);
            }
        }
    }
}

/* Part 2: upstream's scheme against in-place conversion */

/*
 * Upstream (kvm_convert_memory() in accel/kvm/kvm-all.c): set the memory
 * attributes, then discard the side the pages leave.  To private, the
 * shared backing (here a 4 KiB memfd, as memory-backend-memfd) loses them:
 * ram_block_discard_range() punches the file and drops the mapping.  To
 * shared, the guest_memfd (here a 4 KiB memfd, as mainline guest_memfd is
 * shmem-like) is punched: ram_block_discard_guest_memfd_range().
 */
typedef struct Upstream {
    int shared_fd;
    uint8_t *shared_map;
    int private_fd;
} Upstream;

static int upstream_convert(Upstream *u, uint64_t off, uint64_t size,
                            bool to_private)
{
    int ret = set_memory_attributes(off, size, to_private);

    if (ret) {
        return ret;
    }
    if (to_private) {
        if (fallocate(u->shared_fd, FALLOC_FL_PUNCH_HOLE |
                      FALLOC_FL_KEEP_SIZE, off, size) < 0) {
            return -errno;
        }
        /* A 4 KiB shared mapping is also dropped with madvise. */
        return madvise(u->shared_map + off, size, MADV_DONTNEED) < 0 ?
               -errno : 0;
    }
    return fallocate(u->private_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                     off, size) < 0 ? -errno : 0;
}

static const struct {
    uint64_t range;
    unsigned pairs;
} upstream_ranges[] = {
    { 4 * KiB, 2048 },
    { 2 * MiB, 128 },
    { 1 * GiB, 3 },
};

/*
 * Before every request the pages it moves were in use on the side they
 * leave (the guest touched them there): populated, untimed.  In-place
 * conversion has nothing to populate: the page stays where it is.
 */
static void time_upstream_pairs(Upstream *u, Samples *samples,
                                uint64_t window, uint64_t range,
                                unsigned pairs)
{
    uint64_t slots = window / range;

    for (unsigned i = 0; i < pairs; i++) {
        uint64_t off = (i % slots) * range;
        uint64_t t0;
        int ret;

        if (fallocate(u->private_fd, 0, off, range) < 0) {
            error_report("fallocate of the private side: %s",
                         strerror(errno));
            exit(1);
        }
        t0 = now_ns();
        ret = upstream_convert(u, off, range, false);
        samples_add(samples, now_ns() - t0);
        assert(!ret);

        populate_map(u->shared_map + off, range);
        t0 = now_ns();
        ret = upstream_convert(u, off, range, true);
        samples_add(samples, now_ns() - t0);
        assert(!ret);
    }
}

static void bench_upstream(void)
{
    const uint64_t size = 2 * GiB;
    Upstream u;
    Samples s = { 0 };

    u.shared_fd = memfd_sized("bench-shared", size, 0);
    u.private_fd = memfd_sized("bench-private", size, 0);
    u.shared_map = u.shared_fd < 0 ? NULL : map_fd(u.shared_fd, size);
    if (!u.shared_map || u.private_fd < 0) {
        error_report("cannot create the upstream layout: %s",
                     strerror(errno));
        exit(1);
    }
    note("upstream vs in-place: KVM_SET_MEMORY_ATTRIBUTES(2) cannot run here "
         "(no /dev/kvm); both schemes call the same no-op function instead. "
         "Discards are real: fallocate(PUNCH_HOLE) on 4 KiB memfds "
         "(+ madvise(DONTNEED) of the shared mapping), pages populated "
         "before each request, untimed");

    for (unsigned r = 0; r < repeats; r++) {
        for (int i = 0; i < ARRAY_SIZE(upstream_ranges); i++) {
            uint64_t range = upstream_ranges[i].range;
            unsigned pairs = upstream_ranges[i].pairs;

            samples_reset(&s);
            time_upstream_pairs(&u, &s, size, range, pairs);
            figure_add("ns", samples_pct(&s, 50), "upstream.upstream.%s.p50",
                       range_name(range));
            figure_add("ns", samples_pct(&s, 99), "upstream.upstream.%s.p99",
                       range_name(range));

            for (Kernel k = KERNEL_MODEL; k <= KERNEL_ATTR; k++) {
                GuestMemfdFile *f = bench_file(k, size, GiB, 0, size);
                GuestMemfdState st;

                guest_memfd_state_init(&st, f, "bench");
                samples_reset(&s);
                time_core_pairs(&st, &s, 0, size, range, pairs);
                figure_add("ns", samples_pct(&s, 50), "upstream.%s.%s.p50",
                           kernel_names[k], range_name(range));
                figure_add("ns", samples_pct(&s, 99), "upstream.%s.%s.p99",
                           kernel_names[k], range_name(range));
                guest_memfd_state_destroy(&st);
                guest_memfd_close(f);
            }
        }
    }
    munmap(u.shared_map, size);
    close(u.shared_fd);
    close(u.private_fd);
    g_free(s.v);
}

/* Part 3: host memory after sharing half of the guest and taking it back */

typedef struct Footprint {
    uint64_t hugetlb;       /* bytes of hugetlb pages the files hold */
    uint64_t shmem;         /* bytes of ordinary memfd pages */
    uint64_t anon;          /* anonymous RSS growth */
    int64_t pool_taken;     /* host pool pages gone, cross-check */
} Footprint;

static uint64_t footprint_total(Footprint *fp)
{
    return fp->hugetlb + fp->shmem + fp->anon;
}

static void footprint_record(const char *layout, const char *when,
                             Footprint *fp)
{
    figure_add("MiB", footprint_total(fp) / (double)MiB,
               "footprint.%s.%s.total", layout, when);
    figure_add("MiB", fp->hugetlb / (double)MiB, "footprint.%s.%s.hugetlb",
               layout, when);
    figure_add("MiB", (fp->shmem + fp->anon) / (double)MiB,
               "footprint.%s.%s.small", layout, when);
    figure_add("MiB", fp->pool_taken * 2.0,
               "footprint.%s.%s.pool_taken", layout, when);
}

typedef struct FootprintCtx {
    uint64_t anon0;
    int64_t free0;
} FootprintCtx;

static void footprint_start(FootprintCtx *c)
{
    c->anon0 = smaps_rollup_kib("Anonymous:") * KiB;
    c->free0 = guest_memfd_host_hugetlb(2 * MiB, "free_hugepages");
}

static void footprint_measure(FootprintCtx *c, Footprint *fp, int huge_fd,
                              int small_fd)
{
    uint64_t anon = smaps_rollup_kib("Anonymous:") * KiB;

    fp->hugetlb = huge_fd >= 0 ? fd_bytes(huge_fd) : 0;
    fp->shmem = small_fd >= 0 ? fd_bytes(small_fd) : 0;
    fp->anon = anon > c->anon0 ? anon - c->anon0 : 0;
    fp->pool_taken = c->free0 -
                     guest_memfd_host_hugetlb(2 * MiB, "free_hugepages");
}

/* Every 4 KiB page of a shared range is written by the host (the device). */
static void touch_pages(uint8_t *p, uint64_t len)
{
    for (uint64_t i = 0; i < len; i += PAGE) {
        p[i] = 0x5a;
    }
}

/*
 * Upstream's layout: a private guest_memfd (4 KiB, shmem-like: an ordinary
 * memfd here) and a shared backing.  On hugetlb the shared backing is
 * preallocated and never discarded (kvm_convert_memory() skips the discard
 * when the block's page size is not the host's); on 4 KiB it is discarded
 * when pages go private.
 */
static void footprint_two_backing(uint64_t size, bool hugetlb_shared)
{
    const char *layout = hugetlb_shared ? "two-backing" : "two-backing-4k";
    uint64_t half = size / 2;
    FootprintCtx c;
    Footprint fp;
    int priv_fd, shared_fd;
    uint8_t *shared;

    footprint_start(&c);
    priv_fd = memfd_sized("bench-gmem", size, 0);
    shared_fd = memfd_sized("bench-shared", size,
                            hugetlb_shared ? 2 * MiB : 0);
    shared = shared_fd < 0 ? NULL : map_fd(shared_fd, size);
    if (priv_fd < 0 || !shared) {
        note("footprint: cannot create the %s layout (%s)", layout,
             strerror(errno));
        goto out;
    }
    /* Boot: guest memory private and used; hugetlb shared side prealloc. */
    if (hugetlb_shared) {
        populate_map(shared, size);
    }
    if (fallocate(priv_fd, 0, 0, size) < 0) {
        note("footprint: cannot populate the private side (%s)",
             strerror(errno));
        goto out;
    }
    /* Share half: attributes, discard the private side, host writes. */
    set_memory_attributes(0, half, false);
    fallocate(priv_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, half);
    touch_pages(shared, half);
    footprint_measure(&c, &fp, hugetlb_shared ? shared_fd : -1,
                      hugetlb_shared ? priv_fd : -1);
    if (!hugetlb_shared) {
        fp.shmem = fd_bytes(priv_fd) + fd_bytes(shared_fd);
    }
    footprint_record(layout, "shared", &fp);

    /* Back to private: the guest uses the pages again on the private side. */
    set_memory_attributes(0, half, true);
    if (!hugetlb_shared) {
        fallocate(shared_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
                  half);
        madvise(shared, half, MADV_DONTNEED);
    }
    fallocate(priv_fd, 0, 0, half);
    footprint_measure(&c, &fp, hugetlb_shared ? shared_fd : -1,
                      hugetlb_shared ? priv_fd : -1);
    if (!hugetlb_shared) {
        fp.shmem = fd_bytes(priv_fd) + fd_bytes(shared_fd);
    }
    footprint_record(layout, "returned", &fp);

out:
    if (shared) {
        munmap(shared, size);
    }
    if (shared_fd >= 0) {
        close(shared_fd);
    }
    if (priv_fd >= 0) {
        close(priv_fd);
    }
}

/*
 * In place: one guest_memfd (the model, with 2 MiB folios from the host's
 * real 2 MiB hugetlb pool) that QEMU maps for the shared pages.
 */
static void footprint_in_place(uint64_t size)
{
    uint64_t half = size / 2;
    Error *err = NULL;
    GuestMemfdFile *f;
    GuestMemfdState st;
    FootprintCtx c;
    Footprint fp;
    uint8_t *host;

    footprint_start(&c);
    f = guest_memfd_model_create(size, 2 * MiB, false, &err);
    if (!f) {
        note("footprint: in-place model file: %s", error_get_pretty(err));
        error_free(err);
        return;
    }
    if (strcmp(guest_memfd_model_backing(f), "hugetlb 2M")) {
        note("footprint: the model's 2 MiB pool is %s, not the host's",
             guest_memfd_model_backing(f));
    }
    guest_memfd_state_init(&st, f, "bench");
    host = map_fd(f->fd, size);
    assert(host);
    /* Boot: every page private and used by the guest. */
    if (guest_memfd_allocate(f, 0, size)) {
        note("footprint: cannot allocate the in-place file");
    }
    convert_or_die(&st, 0, half, false);
    touch_pages(host, half);
    footprint_measure(&c, &fp, f->fd, -1);
    footprint_record("in-place", "shared", &fp);

    convert_or_die(&st, 0, half, true);
    footprint_measure(&c, &fp, f->fd, -1);
    footprint_record("in-place", "returned", &fp);

    munmap(host, size);
    guest_memfd_state_destroy(&st);
    guest_memfd_close(f);
}

static void bench_footprint(void)
{
    uint64_t size = footprint_gib * GiB;
    int64_t free_pages = guest_memfd_host_hugetlb(2 * MiB, "free_hugepages");
    unsigned n = MIN(repeats, 3);

    if (free_pages < 0 || free_pages * 2 * MiB < size) {
        note("footprint: n/a: %" PRIu64 " GiB needs %" PRIu64 " free 2 MiB "
             "hugetlb pages, the host has %" PRId64, footprint_gib,
             size / (2 * MiB), free_pages);
        return;
    }
    note("footprint: %" PRIu64 " GiB guest, no 1 GiB hugetlb pool here: "
         "2 MiB hugetlb pages stand in for 1 GiB ones on both sides",
         footprint_gib);
    figure_add("GiB", footprint_gib, "footprint.guest_gib");
    for (unsigned r = 0; r < n; r++) {
        footprint_two_backing(size, true);
        footprint_two_backing(size, false);
        footprint_in_place(size);
    }
}

/* Part 5: scaling with VM size */

static void bench_scaling_one(Kernel k, uint64_t folio, uint64_t size)
{
    const uint64_t window = GiB, base = size - window;
    const unsigned pairs = 2000, queries = 2000;
    Samples s = { 0 };
    GuestMemfdFile *f = bench_file(k, size, folio, 0, size);
    GuestMemfdState st;
    uint64_t gib = size / GiB;
    g_autofree char *name = g_strdup_printf("%s-%s", kernel_names[k],
                                            range_name(folio));

    guest_memfd_state_init(&st, f, "bench");
    /* Some shared pages outside the window, as a running guest has. */
    if (base) {
        convert_or_die(&st, 0, 2 * MiB, false);
    }
    for (unsigned r = 0; r < repeats; r++) {
        samples_reset(&s);
        time_core_pairs(&st, &s, base, window, PAGE, pairs);
        figure_add("ns", samples_pct(&s, 50), "scaling.%s.%" PRIu64
                   ".convert.p50", name, gib);
        figure_add("ns", samples_pct(&s, 99), "scaling.%s.%" PRIu64
                   ".convert.p99", name, gib);

        samples_reset(&s);
        for (unsigned q = 0; q < queries; q++) {
            GuestMemfdStateInfo info;
            GuestMemfdModelStats ms;
            GuestMemfdModelPool pool;
            uint64_t t0 = now_ns();

            /* What query-guest-memfd computes for one region. */
            guest_memfd_state_info(&st, &info);
            if (k == KERNEL_MODEL) {
                guest_memfd_model_stats(f, &ms);
                guest_memfd_model_pool(f->page_size, &pool);
            }
            samples_add(&s, now_ns() - t0);
        }
        figure_add("ns", samples_pct(&s, 50), "scaling.%s.%" PRIu64
                   ".query.p50", name, gib);
        figure_add("ns", samples_pct(&s, 99), "scaling.%s.%" PRIu64
                   ".query.p99", name, gib);
    }
    guest_memfd_state_destroy(&st);
    guest_memfd_close(f);
    g_free(s.v);
}

static void bench_scaling(void)
{
    note("scaling: 4 KiB requests walk the last GiB of the file; every "
         "folio allocated (as with prealloc=on) from the model's simulated "
         "pools: sparse memfds, no host memory");
    /* 2 MiB files too: 512 times more folios show any per-folio work. */
    guest_memfd_model_set_simulated_pool(2 * MiB, 512 * (max_vm_gib + 1));
    for (uint64_t gib = 1; gib <= max_vm_gib; gib *= 4) {
        bench_scaling_one(KERNEL_NULL, GiB, gib * GiB);
        bench_scaling_one(KERNEL_MODEL, GiB, gib * GiB);
        bench_scaling_one(KERNEL_MODEL, 2 * MiB, gib * GiB);
    }
    /* Back to the host's 2 MiB pool for any later part. */
    guest_memfd_model_set_simulated_pool(2 * MiB, 0);
}

int main(int argc, char **argv)
{
    g_autofree char *parts = g_strdup("convert,upstream,footprint,scaling");
    g_auto(GStrv) list = NULL;
    GOptionEntry entries[] = {
        { "parts", 'p', 0, G_OPTION_ARG_STRING, &parts,
          "comma-separated: convert,upstream,footprint,scaling", "LIST" },
        { "repeats", 'r', 0, G_OPTION_ARG_INT, &repeats,
          "independent repeats of every figure (default 7)", "N" },
        { "footprint-gib", 0, 0, G_OPTION_ARG_INT64, &footprint_gib,
          "guest size of the footprint part (default 2)", "N" },
        { "max-vm-gib", 0, 0, G_OPTION_ARG_INT64, &max_vm_gib,
          "largest VM of the scaling part (default 1024)", "N" },
        { NULL }
    };
    g_autoptr(GOptionContext) ctx =
        g_option_context_new("- in-place guest_memfd benchmarks (JSON lines)");
    g_autoptr(GError) gerr = NULL;

    g_option_context_add_main_entries(ctx, entries, NULL);
    if (!g_option_context_parse(ctx, &argc, &argv, &gerr)) {
        fprintf(stderr, "%s\n", gerr->message);
        return 2;
    }
    repeats = MAX(repeats, 1);
    figures = g_ptr_array_new();
    /*
     * 1 GiB files come from a simulated pool sized for the largest VM of
     * the scaling part; they hold no host memory (sparse memfds).
     */
    guest_memfd_model_set_simulated_pool(GiB, 2 * max_vm_gib + 16);

    list = g_strsplit(parts, ",", -1);
    for (char **p = list; *p; p++) {
        if (!strcmp(*p, "convert")) {
            bench_timer_overhead();
            bench_convert_ranges();
            bench_psc_list();
        } else if (!strcmp(*p, "upstream")) {
            bench_upstream();
        } else if (!strcmp(*p, "footprint")) {
            bench_footprint();
        } else if (!strcmp(*p, "scaling")) {
            bench_scaling();
        } else {
            fprintf(stderr, "unknown part '%s'\n", *p);
            return 2;
        }
    }
    figures_print();
    return 0;
}
