/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * qtests of in-place guest_memfd conversions and teardown
 *
 * Every case runs under accel=qtest on memory-backend-guest-memfd with the
 * kernel model, at 4 KiB, 2 MiB and 1 GiB folios where it means something.
 * State is asserted through query-guest-memfd, contents through qtest
 * memory accesses: a shared page reads back what was written, a private
 * page refuses accesses without harm to QEMU, and a write to it must not
 * land, which shows once the page is shared again.
 *
 * Guest RAM below 4 GiB starts at GPA 0, so there GPA == backend offset.
 */

#include "qemu/osdep.h"
#include "qemu/units.h"
#include "qemu/bswap.h"
#include "libqtest.h"
#include "guest-memfd-qtest.h"
#include "libqos/pci-pc.h"
#include "hw/pci/pci_regs.h"
#include "qobject/qdict.h"
#include "qobject/qjson.h"
#include "qobject/qlist.h"
#include "hw/misc/guest-memfd-psc.h"

#define MODEL "memory-backend-guest-memfd,kernel-model=on"
#define PAGE (4 * KiB)

/* What qtest answers for a read the memory API refused. */
#define DENIED UINT64_MAX

typedef struct SizeCase {
    const char *name;
    uint64_t page_size;
    uint64_t ram;           /* guest RAM of the plain machine */
    uint64_t folio;         /* GPA of the folio most cases work in */
} SizeCase;

/*
 * Small machines: the model's 1 GiB pool is simulated and sparse, while
 * 2 MiB folios come from the host's hugetlb pool where it has one, and CI
 * reserves only 256 of those (scripts/hugepages).
 */
static const SizeCase size_cases[] = {
    { "4K", 4 * KiB, 64 * MiB, 16 * MiB },
    { "2M", 2 * MiB, 64 * MiB, 16 * MiB },
    { "1G", 1 * GiB, 2 * GiB, 1 * GiB },
};

static bool is_huge(const SizeCase *sc)
{
    return sc->page_size > PAGE;
}

/*
 * The model takes 1 GiB folios from the host's pool where the host has
 * one.  The largest case needs 8 pages (the lab has 9); where the host has
 * fewer free, a pool too small would fail the cases with ENOMEM, so they
 * use the model's simulated pool instead.  (2 MiB cases fit the 256 pages
 * scripts/hugepages reserves.)
 */
static bool uses_host_pool(uint64_t page_size)
{
    if (page_size == GiB) {
        return gmem_host_hugepages(GiB, "free_hugepages") >= 8;
    }
    return gmem_host_hugepages(page_size, "nr_hugepages") > 0;
}

static const char *model(uint64_t page_size)
{
    if (page_size == GiB && !uses_host_pool(GiB)) {
        return MODEL ",x-simulated-pool=on";
    }
    return MODEL;
}

/* A page in the middle of the working folio (its only page for 4K). */
static uint64_t mid_page(const SizeCase *sc)
{
    return sc->folio + (is_huge(sc) ? sc->page_size / 2 : 0);
}

static QTestState *vm_start(const SizeCase *sc, bool shared, bool prealloc,
                            const char *extra)
{
    return qtest_initf("-machine q35,memory-backend=mem0 -m %" PRIu64 "M"
                       " -object %s,id=mem0,size=%" PRIu64
                       ",pagesize=%" PRIu64 ",init-shared=%s,prealloc=%s %s",
                       sc->ram / MiB, model(sc->page_size), sc->ram,
                       sc->page_size,
                       shared ? "on" : "off", prealloc ? "on" : "off",
                       extra ? extra : "");
}

/* query-guest-memfd */

/* The whole answer as JSON, to show that a failed request changed nothing. */
static char *query_json(QTestState *qts)
{
    QList *list = gmem_query_all(qts);
    GString *json = qobject_to_json(QOBJECT(list));

    qobject_unref(list);
    return g_string_free(json, false);
}

static uint64_t info_u64(QDict *info, const char *key)
{
    g_assert(qdict_haskey(info, key));
    return qdict_get_int(info, key);
}

static uint64_t pool_u64(QDict *info, const char *key)
{
    QDict *pool = qdict_get_qdict(info, "pool");

    g_assert(pool);
    return qdict_get_int(pool, key);
}

/* Folios of a backend that hold a pool page (it is open: split ones do). */
static uint64_t folios_allocated(QTestState *qts, const char *id)
{
    QDict *info = gmem_query_one(qts, id);
    uint64_t n = info_u64(info, "folios-split") +
                 info_u64(info, "folios-merged");

    qobject_unref(info);
    return n;
}

/*
 * Bytes shared and folios split, merged and waiting: the state most
 * cases assert after each step.
 */
static void check_state(QTestState *qts, const char *id, uint64_t shared,
                        uint64_t split, uint64_t merged, uint64_t waiting)
{
    QDict *info = gmem_query_one(qts, id);

    g_assert_cmpuint(info_u64(info, "shared"), ==, shared);
    g_assert_cmpuint(info_u64(info, "private"), ==,
                     info_u64(info, "size") - shared);
    g_assert_cmpuint(info_u64(info, "folios-split"), ==, split);
    g_assert_cmpuint(info_u64(info, "folios-merged"), ==, merged);
    g_assert_cmpuint(info_u64(info, "folios-waiting"), ==, waiting);
    qobject_unref(info);
}

/* x-guest-memfd-convert */

static void convert(QTestState *qts, uint64_t gpa, uint64_t size,
                    bool to_private)
{
    qtest_qmp_assert_success(qts, "{'execute': 'x-guest-memfd-convert',"
                             " 'arguments': {'gpa': %" PRIu64 ", 'size': %"
                             PRIu64 ", 'private': %i}}", gpa, size,
                             to_private);
}

/* A conversion that must fail; returns the error text. */
static char *convert_fails(QTestState *qts, uint64_t gpa, uint64_t size,
                           bool to_private)
{
    QDict *resp = qtest_qmp(qts, "{'execute': 'x-guest-memfd-convert',"
                            " 'arguments': {'gpa': %" PRIu64 ", 'size': %"
                            PRIu64 ", 'private': %i}}", gpa, size,
                            to_private);
    QDict *error = qdict_get_qdict(resp, "error");
    char *desc;

    if (!error) {
        g_error("converting 0x%" PRIx64 "+0x%" PRIx64 " succeeded", gpa,
                size);
    }
    desc = g_strdup(qdict_get_str(error, "desc"));
    qobject_unref(resp);
    return desc;
}

static void pin(QTestState *qts, const char *id, uint64_t offset, bool on)
{
    qtest_qmp_assert_success(qts, "{'execute': 'x-guest-memfd-pin',"
                             " 'arguments': {'id': %s, 'offset': %" PRIu64
                             ", 'pin': %i}}", id, offset, on);
}

/* Contents */

/* A value unique to @gpa and @seed, so that misplaced data shows. */
static uint64_t pattern(uint64_t gpa, unsigned seed)
{
    return (gpa * 0x9e3779b97f4a7c15ULL) ^ ((uint64_t)seed << 56) ^ 0x5a;
}

/* Fill the first and last quadword of a page with its pattern. */
static void page_fill(QTestState *qts, uint64_t gpa, unsigned seed)
{
    qtest_writeq(qts, gpa, pattern(gpa, seed));
    qtest_writeq(qts, gpa + PAGE - 8, pattern(gpa + PAGE - 8, seed));
}

/* The page is shared and holds page_fill(@seed), or zeroes for seed 0. */
static void page_check(QTestState *qts, uint64_t gpa, unsigned seed)
{
    uint64_t first = seed ? pattern(gpa, seed) : 0;
    uint64_t last = seed ? pattern(gpa + PAGE - 8, seed) : 0;

    g_assert_cmphex(qtest_readq(qts, gpa), ==, first);
    g_assert_cmphex(qtest_readq(qts, gpa + PAGE - 8), ==, last);
}

/*
 * The page is private: QEMU's accesses are refused and QEMU lives.  The
 * write must not land, which page_check() shows once the page is shared
 * again.  The read goes through qtest's variable-length path, whose
 * refusal leaves the buffer undefined; test_fixed_length_read() covers
 * the fixed-length one.
 */
static void page_private(QTestState *qts, uint64_t gpa)
{
    uint64_t buf = 0xbadbadbadbadbadULL;

    qtest_writeq(qts, gpa, buf);
    qtest_memwrite(qts, gpa + PAGE - 8, &buf, sizeof(buf));
    qtest_memread(qts, gpa, &buf, sizeof(buf));
}

/*
 * Bytes the host allocated to QEMU's guest_memfd (model) files, each file
 * counted once (the backend and its RAMBlock each hold a descriptor).
 */
static uint64_t gmem_file_bytes(QTestState *qts)
{
    g_autofree char *fd_dir = g_strdup_printf("/proc/%d/fd",
                                              (int)qtest_pid(qts));
    g_autoptr(GDir) dir = g_dir_open(fd_dir, 0, NULL);
    g_autoptr(GHashTable) seen = g_hash_table_new(g_int64_hash,
                                                  g_int64_equal);
    g_autofree gint64 *inodes = g_new0(gint64, 1024);
    const char *name;
    uint64_t bytes = 0;
    unsigned n = 0;

    g_assert(dir);
    while ((name = g_dir_read_name(dir)) && n < 1024) {
        g_autofree char *link = g_build_filename(fd_dir, name, NULL);
        g_autofree char *target = g_file_read_link(link, NULL);
        struct stat st;

        if (target && strstr(target, "guest-memfd") && !stat(link, &st)) {
            inodes[n] = st.st_ino;
            if (g_hash_table_add(seen, &inodes[n++])) {
                bytes += (uint64_t)st.st_blocks * 512;
            }
        }
    }
    return bytes;
}

/*
 * After object-del: the pool that backend @id sees is back to @reserved
 * and @in_use, and QEMU has @refs fds and mappings of guest_memfd files
 * again.  The deleted backend is finalized once the last flatview that
 * mapped it goes, after an RCU grace period: wait for that.
 */
static bool pool_is(QTestState *qts, const char *id, uint64_t reserved,
                    uint64_t in_use)
{
    QDict *info = gmem_query_one(qts, id);
    bool is = pool_u64(info, "reserved") == reserved &&
              pool_u64(info, "in-use") == in_use;

    qobject_unref(info);
    return is;
}

static void wait_pool_back(QTestState *qts, const char *id,
                           uint64_t reserved, uint64_t in_use, unsigned refs)
{
    QDict *info;

    gmem_wait_for(pool_is(qts, id, reserved, in_use) &&
                  gmem_refs(qts) == refs,
                  "the deleted backend's pages and file to be let go");
    info = gmem_query_one(qts, id);
    g_assert_cmpuint(pool_u64(info, "reserved"), ==, reserved);
    g_assert_cmpuint(pool_u64(info, "in-use"), ==, in_use);
    g_assert_cmpuint(gmem_refs(qts), ==, refs);
    qobject_unref(info);
}

/*
 * Wait until the host's free huge pages are back to at least @before.
 * Other tests (make check runs two at a time) may hold some for a while;
 * a page this QEMU leaked never comes back.
 */
static void host_free_restored(uint64_t page_size, int64_t before)
{
    gmem_wait_for(gmem_host_hugepages(page_size, "free_hugepages") >= before,
                  "the host's free hugetlb pages to come back");
    g_assert_cmpint(gmem_host_hugepages(page_size, "free_hugepages"), >=,
                    before);
}

/* The page-state-change device */

#define PSC_DEVFN       QPCI_DEVFN(4, 0)
#define PSC_LIST        0x10000     /* GPA of the list, in folio 0 */

typedef struct Psc {
    QTestState *qts;
    QPCIBus *bus;
    QPCIDevice *dev;
    QPCIBar bar;
} Psc;

/* Find the device (at PSC_DEVFN) with libqos and map its BAR 0. */
static void psc_attach(Psc *p, QTestState *qts)
{
    p->qts = qts;
    p->bus = qpci_new_pc(qts, NULL);
    p->dev = qpci_device_find(p->bus, PSC_DEVFN);
    g_assert(p->dev);
    qpci_device_enable(p->dev);
    p->bar = qpci_iomap(p->dev, 0, NULL);
    g_assert_cmphex(qpci_io_readl(p->dev, p->bar, PSC_REG_ID), ==, PSC_ID);
    g_assert_cmpuint(qpci_io_readl(p->dev, p->bar, PSC_REG_MAX_ENTRIES), ==,
                     PSC_MAX_ENTRIES);
}

static void psc_detach(Psc *p)
{
    g_free(p->dev);
    qpci_free_pc(p->bus);
}

/* A machine with the device: plain RAM of @sc, all shared. */
static void psc_start(Psc *p, const SizeCase *sc)
{
    psc_attach(p, vm_start(sc, true, false,
                           "-device guest-memfd-psc,addr=04.0"));
}

static void psc_stop(Psc *p)
{
    psc_detach(p);
    qtest_quit(p->qts);
}

static uint32_t psc_reg(Psc *p, unsigned reg)
{
    return qpci_io_readl(p->dev, p->bar, reg);
}

/* Hand the list at @buf to the device; returns STATUS. */
static uint32_t psc_ring(Psc *p, uint64_t buf)
{
    qpci_io_writel(p->dev, p->bar, PSC_REG_BUF_LO, (uint32_t)buf);
    qpci_io_writel(p->dev, p->bar, PSC_REG_BUF_HI, buf >> 32);
    qpci_io_writel(p->dev, p->bar, PSC_REG_DOORBELL, PSC_DOORBELL_RING);
    return psc_reg(p, PSC_REG_STATUS);
}

static uint64_t psc_entry(uint64_t gpa, bool to_private, bool huge,
                          unsigned cur_page)
{
    return (uint64_t)cur_page << PSC_ENTRY_CUR_PAGE_SHIFT |
           (gpa >> 12) << PSC_ENTRY_GFN_SHIFT |
           (uint64_t)(to_private ? PSC_OP_PRIVATE : PSC_OP_SHARED) <<
           PSC_ENTRY_OP_SHIFT |
           (huge ? PSC_ENTRY_2M : 0);
}

/* Write a list (header and @n entries) to guest memory at @buf. */
static void psc_put_list(QTestState *qts, uint64_t buf, uint16_t cur,
                         uint16_t end, const uint64_t *entries, unsigned n)
{
    g_autofree uint8_t *b = g_malloc0(PSC_HDR_SIZE + 8 * n);

    stw_le_p(b, cur);
    stw_le_p(b + 2, end);
    for (unsigned i = 0; i < n; i++) {
        stq_le_p(b + PSC_HDR_SIZE + 8 * i, entries[i]);
    }
    qtest_memwrite(qts, buf, b, PSC_HDR_SIZE + 8 * n);
}

static uint16_t psc_cur_entry(QTestState *qts, uint64_t buf)
{
    return qtest_readw(qts, buf);
}

static uint64_t psc_get_entry(QTestState *qts, uint64_t buf, unsigned i)
{
    return qtest_readq(qts, buf + PSC_HDR_SIZE + 8 * i);
}

/* Conversion flows */

/* Backends start all private (init-shared=off) or all shared. */
static void test_initial_state(const SizeCase *sc, bool shared)
{
    QTestState *qts = vm_start(sc, shared, false, NULL);
    uint64_t folios = sc->ram / sc->page_size;
    /* First and last folio (two 4 KiB folios for 4K). */
    uint64_t a = 1 * MiB, b = sc->ram - PAGE;
    QDict *info = gmem_query_one(qts, "mem0");

    g_assert_cmpstr(qdict_get_str(info, "kernel"), ==, "model");
    g_assert_cmpuint(info_u64(info, "page-size"), ==, sc->page_size);
    g_assert_cmpuint(info_u64(info, "folios"), ==, folios);
    g_assert_cmpuint(info_u64(info, "to-shared"), ==, 0);
    g_assert_cmpuint(info_u64(info, "to-private"), ==, 0);
    g_assert_cmpuint(info_u64(info, "kernel-calls"), ==, 0);
    /* The whole file is reserved in the pool, nothing faulted yet. */
    g_assert_cmpuint(pool_u64(info, "reserved"), ==, folios);
    g_assert_cmpuint(pool_u64(info, "in-use"), ==, 0);
    qobject_unref(info);
    check_state(qts, "mem0", shared ? sc->ram : 0, 0, 0, 0);

    if (shared) {
        /* QEMU writes fault folios in; shared folios are split at once. */
        page_fill(qts, a, 1);
        page_fill(qts, b, 1);
        page_check(qts, a, 1);
        page_check(qts, b, 1);
        check_state(qts, "mem0", sc->ram, is_huge(sc) ? 2 : 0,
                    is_huge(sc) ? 0 : 2, 0);
        info = gmem_query_one(qts, "mem0");
        g_assert_cmpuint(pool_u64(info, "in-use"), ==, 2);
        qobject_unref(info);
    } else {
        page_private(qts, a);
        page_private(qts, b);
        check_state(qts, "mem0", 0, 0, 0, 0);
        /* Shared now: zeroes, the refused writes did not land. */
        convert(qts, a, PAGE, false);
        convert(qts, b, PAGE, false);
        page_check(qts, a, 0);
        page_check(qts, b, 0);
        page_fill(qts, a, 2);
        page_fill(qts, b, 2);
        page_check(qts, a, 2);
        page_check(qts, b, 2);
        check_state(qts, "mem0", 2 * PAGE, is_huge(sc) ? 2 : 0,
                    is_huge(sc) ? 0 : 2, 0);
    }
    qtest_quit(qts);
}

static void test_initial_private(const void *opaque)
{
    test_initial_state(opaque, false);
}

static void test_initial_shared(const void *opaque)
{
    test_initial_state(opaque, true);
}

/*
 * One 4 KiB page of a private folio becomes shared: the folio splits, its
 * neighbours stay private, contents survive shared -> private -> shared,
 * and the folio merges again once all of it is private and unreferenced.
 */
static void test_split_merge(const void *opaque)
{
    const SizeCase *sc = opaque;
    QTestState *qts = vm_start(sc, false, true, NULL);
    uint64_t folios = sc->ram / sc->page_size;
    uint64_t split = is_huge(sc) ? 1 : 0;
    uint64_t x = mid_page(sc);
    uint64_t calls;
    g_autofree char *hmp = NULL;
    g_autofree char *expect = NULL;

    /* prealloc: every folio is in the file, whole. */
    check_state(qts, "mem0", 0, 0, folios, 0);
    calls = gmem_query_u64(qts, "mem0", "kernel-calls");

    convert(qts, x, PAGE, false);
    check_state(qts, "mem0", PAGE, split, folios - split, 0);
    g_assert_cmpuint(gmem_query_u64(qts, "mem0", "kernel-calls"), ==,
                     calls + 1);
    g_assert_cmpuint(gmem_query_u64(qts, "mem0", "to-shared"), ==, 1);

    page_check(qts, x, 0);
    page_fill(qts, x, 1);
    page_check(qts, x, 1);
    page_private(qts, x - PAGE);
    page_private(qts, x + PAGE);

    /*
     * info guest-memfd tells the same story as query-guest-memfd, where
     * folios can split: a 4 KiB folio is a page.
     */
    hmp = qtest_hmp(qts, "info guest-memfd");
    expect = is_huge(sc) ?
             g_strdup_printf("split %" PRIu64 ", merged %" PRIu64
                             ", waiting 0", split, folios - split) :
             g_strdup_printf("folios %" PRIu64 " (4 KiB: never split or"
                             " merged)", folios);
    g_assert(strstr(hmp, expect));

    /* Back to private: nothing references the folio, so it merges. */
    convert(qts, x, PAGE, true);
    check_state(qts, "mem0", 0, 0, folios, 0);
    g_assert_cmpuint(gmem_query_u64(qts, "mem0", "to-private"), ==, 1);
    page_private(qts, x);

    /* Shared again: the data written while shared is still there. */
    convert(qts, x, PAGE, false);
    check_state(qts, "mem0", PAGE, split, folios - split, 0);
    page_check(qts, x, 1);

    /* The neighbours' refused writes never landed. */
    convert(qts, x - PAGE, PAGE, false);
    convert(qts, x + PAGE, PAGE, false);
    page_check(qts, x - PAGE, 0);
    page_check(qts, x + PAGE, 0);
    page_check(qts, x, 1);
    check_state(qts, "mem0", 3 * PAGE, split,
                folios - (is_huge(sc) ? 1 : 0), 0);

    convert(qts, x - PAGE, 3 * PAGE, true);
    check_state(qts, "mem0", 0, 0, folios, 0);
    qtest_quit(qts);
}

/*
 * A whole folio, then two at once, become shared and private again.  Low
 * RAM has holes (VGA, BIOS shadow), so with 1 GiB folios the two folios
 * are the ones above 4 GiB of a 4 GiB machine.
 */
static void test_whole_folio(const void *opaque)
{
    const SizeCase *sc = opaque;
    bool above_4g = sc->page_size == GiB;
    uint64_t ram = above_4g ? 4 * GiB : sc->ram;
    QTestState *qts = qtest_initf("-machine q35,memory-backend=mem0 -m %"
                                  PRIu64 "M -object %s,id=mem0,size=%"
                                  PRIu64 ",pagesize=%" PRIu64 ",init-shared="
                                  "off,prealloc=on", ram / MiB,
                                  model(sc->page_size), ram, sc->page_size);
    uint64_t folios = ram / sc->page_size;
    uint64_t f = above_4g ? 5 * GiB : sc->folio, ps = sc->page_size;
    uint64_t huge = is_huge(sc) ? 1 : 0;
    uint64_t calls = gmem_query_u64(qts, "mem0", "kernel-calls");

    convert(qts, f, ps, false);
    check_state(qts, "mem0", ps, huge, folios - huge, 0);
    g_assert_cmpuint(gmem_query_u64(qts, "mem0", "kernel-calls"), ==,
                     calls + 1);
    page_fill(qts, f, 1);
    page_fill(qts, f + ps - PAGE, 1);
    page_private(qts, f - PAGE);
    page_private(qts, f + ps);

    convert(qts, f, ps, true);
    check_state(qts, "mem0", 0, 0, folios, 0);
    page_private(qts, f);

    convert(qts, f - ps, 2 * ps, false);
    check_state(qts, "mem0", 2 * ps, 2 * huge, folios - 2 * huge, 0);
    g_assert_cmpuint(gmem_query_u64(qts, "mem0", "kernel-calls"), ==,
                     calls + 3);
    page_check(qts, f, 1);
    page_check(qts, f + ps - PAGE, 1);
    page_check(qts, f - ps, 0);

    convert(qts, f - ps, 2 * ps, true);
    check_state(qts, "mem0", 0, 0, folios, 0);
    qtest_quit(qts);
}

/* A range across a folio boundary is one call touching two folios. */
static void test_cross_folio(const void *opaque)
{
    const SizeCase *sc = opaque;
    QTestState *qts = vm_start(sc, false, true, NULL);
    uint64_t folios = sc->ram / sc->page_size;
    uint64_t huge = is_huge(sc) ? 2 : 0;
    uint64_t start = sc->folio - 2 * PAGE;
    uint8_t data[4 * PAGE], back[4 * PAGE];
    uint64_t calls = gmem_query_u64(qts, "mem0", "kernel-calls");

    for (size_t i = 0; i < sizeof(data); i++) {
        data[i] = i * 7 + (i >> 12);
    }
    convert(qts, start, sizeof(data), false);
    check_state(qts, "mem0", sizeof(data), huge, folios - huge, 0);
    g_assert_cmpuint(gmem_query_u64(qts, "mem0", "kernel-calls"), ==,
                     calls + 1);
    qtest_memwrite(qts, start, data, sizeof(data));
    page_private(qts, start - PAGE);
    page_private(qts, start + sizeof(data));

    convert(qts, start, sizeof(data), true);
    check_state(qts, "mem0", 0, 0, folios, 0);
    convert(qts, start, sizeof(data), false);
    qtest_memread(qts, start, back, sizeof(back));
    g_assert(!memcmp(data, back, sizeof(data)));

    /* Half of it back: only the folio that became all private merges. */
    convert(qts, sc->folio, 2 * PAGE, true);
    check_state(qts, "mem0", 2 * PAGE, huge / 2, folios - huge / 2, 0);
    qtest_quit(qts);
}

/*
 * RAM split around the PCI hole: the last pages below it and the first
 * pages above 4 GiB are neighbours in the file but not in the guest's
 * address space.
 */
static void test_cross_4g(const void *opaque)
{
    const SizeCase *sc = opaque;
    /* 1G: one folio on each side of the hole. */
    uint64_t ram = sc->page_size == GiB ? 2 * GiB : 128 * MiB;
    uint64_t low = ram / 2, high = 4 * GiB;
    g_autofree char *args = g_strdup_printf(
        "-machine q35,memory-backend=mem0,max-ram-below-4g=%" PRIu64
        " -m %" PRIu64 "M -object %s,id=mem0,size=%" PRIu64
        ",pagesize=%" PRIu64 ",init-shared=off,prealloc=on"
        " -device guest-memfd-psc,addr=04.0", low, ram / MiB,
        model(sc->page_size), ram, sc->page_size);
    QTestState *qts = qtest_init(args);
    uint64_t folios = ram / sc->page_size;
    uint64_t huge = is_huge(sc) ? 2 : 0;
    g_autofree char *before = query_json(qts);
    g_autofree char *after = NULL;
    g_autofree char *err = NULL;
    g_autofree char *err2 = NULL;
    const uint64_t entries[] = {
        psc_entry(low - PAGE, true, false, 0),
        psc_entry(high, true, false, 0),
    };
    uint64_t calls;
    Psc psc;

    /* Contiguous in the file, not in GPA: the hole is not RAM. */
    err = convert_fails(qts, low - PAGE, 2 * PAGE, false);
    g_assert(strstr(err, "is not in-place guest_memfd RAM"));
    err2 = convert_fails(qts, high - PAGE, 2 * PAGE, false);
    g_assert(strstr(err2, "is not in-place guest_memfd RAM"));
    after = query_json(qts);
    g_assert_cmpstr(before, ==, after);

    convert(qts, low - 2 * PAGE, 2 * PAGE, false);
    convert(qts, high, 2 * PAGE, false);
    check_state(qts, "mem0", 4 * PAGE, huge, folios - huge, 0);
    for (uint64_t p = 0; p < 2 * PAGE; p += PAGE) {
        page_fill(qts, low - 2 * PAGE + p, 1);
        page_fill(qts, high + p, 2);
    }
    page_private(qts, low - 3 * PAGE);
    page_private(qts, high + 2 * PAGE);

    /* GPA 4 GiB is file offset @low: a pin there holds GPA 4 GiB. */
    pin(qts, "mem0", low, true);
    g_free(err);
    err = convert_fails(qts, high, PAGE, true);
    g_assert(strstr(err, "still referenced"));
    convert(qts, low - PAGE, PAGE, true);
    pin(qts, "mem0", low, false);
    convert(qts, high, PAGE, true);
    check_state(qts, "mem0", 2 * PAGE, huge, folios - huge, 0);
    page_private(qts, low - PAGE);
    page_private(qts, high);
    page_check(qts, low - 2 * PAGE, 1);
    page_check(qts, high + PAGE, 2);

    /* Everything back: both folios merge. */
    convert(qts, low - 2 * PAGE, 2 * PAGE, true);
    convert(qts, high, 2 * PAGE, true);
    check_state(qts, "mem0", 0, 0, folios, 0);
    convert(qts, low - 2 * PAGE, 2 * PAGE, false);
    convert(qts, high, 2 * PAGE, false);
    page_check(qts, low - 2 * PAGE, 1);
    page_check(qts, low - PAGE, 1);
    page_check(qts, high, 2);
    page_check(qts, high + PAGE, 2);

    /*
     * A list with the last page below the hole and the first above it:
     * neighbours in the file, but not contiguous guest-physical ranges,
     * so two conversions.
     */
    psc_attach(&psc, qts);
    convert(qts, PSC_LIST, PAGE, false);
    psc_put_list(qts, PSC_LIST, 0, 1, entries, 2);
    calls = gmem_query_u64(qts, "mem0", "kernel-calls");
    g_assert_cmpuint(psc_ring(&psc, PSC_LIST), ==, PSC_STATUS_OK);
    g_assert_cmpuint(psc_reg(&psc, PSC_REG_CONVERSIONS), ==, 2);
    g_assert_cmpuint(gmem_query_u64(qts, "mem0", "kernel-calls"), ==,
                     calls + 2);
    page_private(qts, low - PAGE);
    page_private(qts, high);
    page_check(qts, low - 2 * PAGE, 1);
    page_check(qts, high + PAGE, 2);
    psc_detach(&psc);
    qtest_quit(qts);
}

/*
 * A pc-dimm on a second backend, right above the RAM above 4 GiB: a range
 * across that boundary converts pages of both backends, a range across
 * a folio boundary inside the dimm splits two of its folios; then
 * unplug and object-del give everything back.
 */
static void test_pc_dimm(const void *opaque)
{
    const SizeCase *sc = opaque;
    uint64_t ps = sc->page_size;
    uint64_t main_ps = ps == GiB ? GiB : 4 * KiB;
    uint64_t dimm_size = MAX(2 * ps, 4 * MiB);
    uint64_t dimm_folios = dimm_size / ps;
    uint64_t huge = is_huge(sc) ? 1 : 0;
    /* 1 GiB below 4 GiB, 1 GiB above: RAM ends at 5 GiB. */
    QTestState *qts = qtest_initf(
        "-machine q35,memory-backend=mem0,max-ram-below-4g=1G"
        " -m 2G,slots=2,maxmem=8G -object %s,id=mem0,size=2G,"
        "pagesize=%" PRIu64 ",init-shared=off"
        " -object %s,id=witness,size=%" PRIu64 ",pagesize=%" PRIu64,
        model(main_ps), main_ps, model(ps), ps, ps);
    QDict *info;
    uint64_t addr, pool_reserved, pool_in_use, main_allocated;
    uint8_t data[2 * PAGE], back[2 * PAGE];
    unsigned refs;

    /* The witness backend shows the pool of @ps throughout. */
    info = gmem_query_one(qts, "witness");
    pool_reserved = pool_u64(info, "reserved");
    pool_in_use = pool_u64(info, "in-use");
    qobject_unref(info);
    main_allocated = folios_allocated(qts, "mem0");
    refs = gmem_refs(qts);

    qtest_qmp_assert_success(qts, "{'execute': 'object-add', 'arguments': {"
                             " 'qom-type': 'memory-backend-guest-memfd',"
                             " 'id': 'dimm0', 'size': %" PRIu64 ","
                             " 'pagesize': %" PRIu64 ", 'init-shared': 'off',"
                             " 'prealloc': true, 'kernel-model': true}}",
                             dimm_size, ps);
    addr = gmem_dimm_plug(qts, "d0", "dimm0");
    g_assert_cmphex(addr, ==, 5 * GiB);
    check_state(qts, "dimm0", 0, 0, dimm_folios, 0);

    /* Across the two backends: one request, a piece in each. */
    convert(qts, addr - PAGE, 2 * PAGE, false);
    info = gmem_query_one(qts, "mem0");
    g_assert_cmpuint(info_u64(info, "shared"), ==, PAGE);
    g_assert_cmpuint(info_u64(info, "to-shared"), ==, 1);
    qobject_unref(info);
    check_state(qts, "dimm0", PAGE, huge, dimm_folios - huge, 0);
    g_assert_cmpuint(gmem_query_u64(qts, "dimm0", "to-shared"), ==, 1);
    for (size_t i = 0; i < sizeof(data); i++) {
        data[i] = 0xa5 ^ i ^ (i >> 8);
    }
    qtest_memwrite(qts, addr - PAGE, data, sizeof(data));
    convert(qts, addr - PAGE, 2 * PAGE, true);
    page_private(qts, addr - PAGE);
    page_private(qts, addr);
    check_state(qts, "dimm0", 0, 0, dimm_folios, 0);
    convert(qts, addr - PAGE, 2 * PAGE, false);
    qtest_memread(qts, addr - PAGE, back, sizeof(back));
    g_assert(!memcmp(data, back, sizeof(data)));
    convert(qts, addr - PAGE, 2 * PAGE, true);

    /* Across a folio boundary inside the dimm. */
    convert(qts, addr + ps - PAGE, 2 * PAGE, false);
    check_state(qts, "dimm0", 2 * PAGE, 2 * huge, dimm_folios - 2 * huge, 0);
    page_fill(qts, addr + ps - PAGE, 3);
    page_fill(qts, addr + ps, 3);
    page_check(qts, addr + ps - PAGE, 3);
    page_check(qts, addr + ps, 3);
    page_private(qts, addr + ps + PAGE);
    convert(qts, addr + ps - PAGE, 2 * PAGE, true);
    check_state(qts, "dimm0", 0, 0, dimm_folios, 0);

    /* Unplug (the test plays the guest's ACPI part), then object-del. */
    gmem_dimm_unplug(qts, "d0", 0);
    qtest_qmp_assert_success(qts, "{'execute': 'object-del', 'arguments':"
                             " {'id': 'dimm0'}}");
    /* mem0 shares the pool (4K, 1G): its new folios stay in use. */
    if (main_ps == ps) {
        uint64_t faulted = folios_allocated(qts, "mem0") - main_allocated;

        pool_in_use += faulted;
        pool_reserved -= faulted;
    }
    wait_pool_back(qts, "witness", pool_reserved, pool_in_use, refs);
    /* The dimm's range is gone: converting it is refused. */
    g_free(convert_fails(qts, addr, PAGE, false));
    qtest_quit(qts);
}

/* Converting a range that already has the state makes no kernel call. */
static void test_repeat(const void *opaque)
{
    const SizeCase *sc = opaque;
    QTestState *qts = vm_start(sc, false, true, NULL);
    uint64_t folios = sc->ram / sc->page_size;
    uint64_t huge = is_huge(sc) ? 1 : 0;
    uint64_t x = mid_page(sc);
    uint64_t calls;

    convert(qts, x, 2 * PAGE, false);
    calls = gmem_query_u64(qts, "mem0", "kernel-calls");
    convert(qts, x, 2 * PAGE, false);
    convert(qts, x, PAGE, false);
    g_assert_cmpuint(gmem_query_u64(qts, "mem0", "kernel-calls"), ==, calls);
    check_state(qts, "mem0", 2 * PAGE, huge, folios - huge, 0);

    /* Already private: no call either. */
    convert(qts, x + 2 * PAGE, 2 * PAGE, true);
    g_assert_cmpuint(gmem_query_u64(qts, "mem0", "kernel-calls"), ==, calls);

    /* Half done already: one call for the rest. */
    convert(qts, x + PAGE, 2 * PAGE, false);
    g_assert_cmpuint(gmem_query_u64(qts, "mem0", "kernel-calls"), ==,
                     calls + 1);
    check_state(qts, "mem0", 3 * PAGE, huge, folios - huge, 0);
    g_assert_cmpuint(gmem_query_u64(qts, "mem0", "failed"), ==, 0);
    qtest_quit(qts);
}

typedef struct BadRange {
    uint64_t gpa;
    uint64_t size;
    const char *error;
} BadRange;

/* Bad ranges are refused before anything changes. */
static void test_rejects(const void *opaque)
{
    const SizeCase *sc = opaque;
    QTestState *qts = vm_start(sc, false, true, NULL);
    uint64_t x = mid_page(sc), top = sc->ram;
    const BadRange bad[] = {
        { x + 0x800, PAGE, "not a non-empty, 4 KiB aligned" },
        { x, PAGE + 0x800, "not a non-empty, 4 KiB aligned" },
        { x, 0, "not a non-empty, 4 KiB aligned" },
        { -PAGE, 2 * PAGE, "not a non-empty, 4 KiB aligned" },
        { top, PAGE, "is not in-place guest_memfd RAM" },
        { top - PAGE, 2 * PAGE, "is not in-place guest_memfd RAM" },
        { 64 * GiB, PAGE, "is not in-place guest_memfd RAM" },
        { 0xfec00000, PAGE, "is not in-place guest_memfd RAM" },
        { 0xfed1c000, PAGE, "is not in-place guest_memfd RAM" },
        { 0xfffff000, PAGE, "is not in-place guest_memfd RAM" },
    };
    g_autofree char *before = NULL;

    convert(qts, x, PAGE, false);
    page_fill(qts, x, 1);
    before = query_json(qts);
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        for (int to_private = 0; to_private < 2; to_private++) {
            g_autofree char *err = convert_fails(qts, bad[i].gpa, bad[i].size,
                                                 to_private);
            g_autofree char *after = query_json(qts);

            if (!strstr(err, bad[i].error)) {
                g_error("0x%" PRIx64 "+0x%" PRIx64 ": got \"%s\"",
                        bad[i].gpa, bad[i].size, err);
            }
            g_assert_cmpstr(before, ==, after);
        }
    }
    page_check(qts, x, 1);
    page_private(qts, x + PAGE);
    qtest_quit(qts);
}

/* "... after N retries ..." in a conversion error. */
static uint64_t error_retries(const char *err)
{
    const char *p = strstr(err, " after ");

    g_assert(p);
    return g_ascii_strtoull(p + strlen(" after "), NULL, 10);
}

/*
 * A pinned page stops a conversion to private: bounded retries, then
 * failure with exactly the pages in front of it converted, through QMP
 * and through HMP alike; after unpin the same request succeeds.
 */
static void test_pinned(const void *opaque)
{
    const SizeCase *sc = opaque;
    QTestState *qts = vm_start(sc, true, false, NULL);
    uint64_t start = sc->folio, pinned = start + 5 * PAGE;
    const unsigned npages = 8;
    g_autofree char *err = NULL;
    g_autofree char *expect = NULL;
    g_autofree char *hmp = NULL;
    QDict *before, *after;
    uint64_t retries;

    for (unsigned i = 0; i < npages; i++) {
        page_fill(qts, start + i * PAGE, 1);
    }
    pin(qts, "mem0", pinned, true);
    before = gmem_query_one(qts, "mem0");
    err = convert_fails(qts, start, npages * PAGE, true);
    expect = g_strdup_printf("page at offset 0x%" PRIx64 " is still"
                             " referenced", pinned);
    g_assert(strstr(err, expect));
    g_assert(strstr(err, "0x5000 of 0x8000 bytes converted"));
    retries = error_retries(err);
    g_assert_cmpuint(retries, >, 0);

    after = gmem_query_one(qts, "mem0");
    g_assert_cmpuint(info_u64(after, "retried"), ==,
                     info_u64(before, "retried") + retries);
    g_assert_cmpuint(info_u64(after, "failed"), ==,
                     info_u64(before, "failed") + 1);
    g_assert_cmpuint(info_u64(after, "to-private"), ==,
                     info_u64(before, "to-private"));
    g_assert_cmpuint(info_u64(after, "private"), ==, 5 * PAGE);
    qobject_unref(before);
    qobject_unref(after);

    /* HMP gives the same refusal, and refuses a state it does not know. */
    hmp = qtest_hmp(qts, "x-guest-memfd-convert 0x%" PRIx64 " 0x1000 private",
                    pinned);
    g_assert(strstr(hmp, expect));
    g_free(hmp);
    hmp = qtest_hmp(qts, "x-guest-memfd-convert 0x%" PRIx64 " 0x1000 secret",
                    start);
    g_assert(strstr(hmp, "the state must be 'shared' or 'private', not"
                    " 'secret'"));
    g_assert_cmpuint(gmem_query_u64(qts, "mem0", "private"), ==, 5 * PAGE);

    /* Exactly the five pages in front of the pinned one are private. */
    for (unsigned i = 0; i < 5; i++) {
        page_private(qts, start + i * PAGE);
    }
    for (unsigned i = 5; i < npages; i++) {
        page_check(qts, start + i * PAGE, 1);
    }
    page_fill(qts, start + 6 * PAGE, 2);
    page_check(qts, start + 6 * PAGE, 2);

    pin(qts, "mem0", pinned, false);
    convert(qts, start, npages * PAGE, true);
    g_assert_cmpuint(gmem_query_u64(qts, "mem0", "private"), ==, npages * PAGE);
    for (unsigned i = 0; i < npages; i++) {
        page_private(qts, start + i * PAGE);
    }
    /* Through HMP, a conversion that works prints nothing. */
    g_free(hmp);
    hmp = qtest_hmp(qts, "x-guest-memfd-convert 0x%" PRIx64 " 0x%x shared",
                    start, npages * (unsigned)PAGE);
    g_assert_cmpstr(hmp, ==, "");
    g_assert_cmpuint(gmem_query_u64(qts, "mem0", "private"), ==, 0);
    for (unsigned i = 0; i < npages; i++) {
        page_check(qts, start + i * PAGE, i == 6 ? 2 : 1);
    }
    qtest_quit(qts);
}

/*
 * A folio whose pages are all private again but that something still
 * references waits for the reference to go before it merges.
 */
static void test_merge_deferred(const void *opaque)
{
    const SizeCase *sc = opaque;
    QTestState *qts = vm_start(sc, false, true, NULL);
    uint64_t folios = sc->ram / sc->page_size;
    uint64_t x = mid_page(sc), y = sc->folio;

    convert(qts, x, PAGE, false);
    page_fill(qts, x, 1);
    check_state(qts, "mem0", PAGE, 1, folios - 1, 0);

    /* A reference on another (private) page of the same folio. */
    pin(qts, "mem0", y, true);
    convert(qts, x, PAGE, true);
    check_state(qts, "mem0", 0, 1, folios - 1, 1);

    /* Shared again while waiting: nothing left to merge. */
    convert(qts, x, PAGE, false);
    check_state(qts, "mem0", PAGE, 1, folios - 1, 0);
    page_check(qts, x, 1);
    convert(qts, x, PAGE, true);
    check_state(qts, "mem0", 0, 1, folios - 1, 1);

    /* The last reference goes: the folio merges. */
    pin(qts, "mem0", y, false);
    check_state(qts, "mem0", 0, 0, folios, 0);
    convert(qts, x, PAGE, false);
    page_check(qts, x, 1);
    qtest_quit(qts);
}

/* Several separate entries, one of them already done by the guest. */
static void test_psc_multi(const void *opaque)
{
    const SizeCase *sc = opaque;
    uint64_t t = sc->folio;
    const uint64_t entries[] = {
        psc_entry(t, true, false, 0),
        psc_entry(t + 3 * PAGE, true, false, 0),
        psc_entry(t + 16 * PAGE, true, false, 0),
        psc_entry(t + 32 * PAGE, false, false, 0),
        psc_entry(t + 48 * PAGE, true, false, 1),  /* cur_page: done */
    };
    Psc p;
    QDict *before, *after;

    psc_start(&p, sc);
    convert(p.qts, t + 32 * PAGE, PAGE, true);
    page_fill(p.qts, t + 48 * PAGE, 1);
    psc_put_list(p.qts, PSC_LIST, 0, ARRAY_SIZE(entries) - 1, entries,
                 ARRAY_SIZE(entries));
    before = gmem_query_one(p.qts, "mem0");
    g_assert_cmpuint(psc_ring(&p, PSC_LIST), ==, PSC_STATUS_OK);
    after = gmem_query_one(p.qts, "mem0");

    g_assert_cmpuint(psc_reg(&p, PSC_REG_ENTRIES_DONE), ==, 5);
    g_assert_cmpuint(psc_reg(&p, PSC_REG_CONVERSIONS), ==, 4);
    g_assert_cmpuint(psc_reg(&p, PSC_REG_ERROR_ENTRY), ==, 0);
    g_assert_cmpuint(psc_cur_entry(p.qts, PSC_LIST), ==, 5);
    g_assert_cmpuint(info_u64(after, "kernel-calls"), ==,
                     info_u64(before, "kernel-calls") + 4);
    g_assert_cmpuint(info_u64(after, "to-private"), ==,
                     info_u64(before, "to-private") + 3);
    g_assert_cmpuint(info_u64(after, "to-shared"), ==,
                     info_u64(before, "to-shared") + 1);
    g_assert_cmpuint(info_u64(after, "private"), ==, 3 * PAGE);
    qobject_unref(before);
    qobject_unref(after);
    page_private(p.qts, t);
    page_check(p.qts, t + PAGE, 0);
    page_private(p.qts, t + 3 * PAGE);
    page_private(p.qts, t + 16 * PAGE);
    page_check(p.qts, t + 32 * PAGE, 0);
    page_check(p.qts, t + 48 * PAGE, 1);
    psc_stop(&p);
}

/* 2 MiB entries, one of them partly done already (cur_page). */
static void test_psc_2m(const void *opaque)
{
    const SizeCase *sc = opaque;
    uint64_t t = sc->folio;
    const uint64_t entries[] = {
        psc_entry(t, true, true, 0),
        psc_entry(t + 4 * MiB, true, true, 0),
        psc_entry(t + 8 * MiB, true, true, 3),
    };
    Psc p;

    psc_start(&p, sc);
    page_fill(p.qts, t + 8 * MiB + 2 * PAGE, 1);
    psc_put_list(p.qts, PSC_LIST, 0, 2, entries, 3);
    g_assert_cmpuint(psc_ring(&p, PSC_LIST), ==, PSC_STATUS_OK);
    g_assert_cmpuint(psc_reg(&p, PSC_REG_CONVERSIONS), ==, 3);
    g_assert_cmpuint(psc_cur_entry(p.qts, PSC_LIST), ==, 3);
    g_assert_cmpuint(gmem_query_u64(p.qts, "mem0", "private"), ==,
                     6 * MiB - 3 * PAGE);
    page_private(p.qts, t);
    page_private(p.qts, t + 2 * MiB - PAGE);
    page_check(p.qts, t + 2 * MiB, 0);
    page_private(p.qts, t + 4 * MiB);
    page_check(p.qts, t + 8 * MiB + 2 * PAGE, 1);
    page_private(p.qts, t + 8 * MiB + 3 * PAGE);
    page_private(p.qts, t + 10 * MiB - PAGE);
    page_check(p.qts, t + 10 * MiB, 0);
    psc_stop(&p);
}

/* A full list of contiguous 4 KiB entries is one kernel call. */
static void test_psc_one_call(const void *opaque)
{
    const SizeCase *sc = opaque;
    uint64_t t = sc->folio;
    uint64_t entries[PSC_MAX_ENTRIES];
    Psc p;
    QDict *before, *after;

    for (unsigned i = 0; i < PSC_MAX_ENTRIES; i++) {
        entries[i] = psc_entry(t + i * PAGE, true, false, 0);
    }
    psc_start(&p, sc);
    psc_put_list(p.qts, PSC_LIST, 0, PSC_MAX_ENTRIES - 1, entries,
                 PSC_MAX_ENTRIES);
    before = gmem_query_one(p.qts, "mem0");
    g_assert_cmpuint(psc_ring(&p, PSC_LIST), ==, PSC_STATUS_OK);
    after = gmem_query_one(p.qts, "mem0");
    g_assert_cmpuint(psc_reg(&p, PSC_REG_CONVERSIONS), ==, 1);
    g_assert_cmpuint(psc_reg(&p, PSC_REG_ENTRIES_DONE), ==, PSC_MAX_ENTRIES);
    g_assert_cmpuint(psc_cur_entry(p.qts, PSC_LIST), ==, PSC_MAX_ENTRIES);
    g_assert_cmpuint(info_u64(after, "kernel-calls"), ==,
                     info_u64(before, "kernel-calls") + 1);
    g_assert_cmpuint(info_u64(after, "to-private"), ==,
                     info_u64(before, "to-private") + 1);
    g_assert_cmpuint(info_u64(after, "private"), ==, PSC_MAX_ENTRIES * PAGE);
    qobject_unref(before);
    qobject_unref(after);
    page_private(p.qts, t);
    page_private(p.qts, t + (PSC_MAX_ENTRIES - 1) * PAGE);
    page_check(p.qts, t + PSC_MAX_ENTRIES * PAGE, 0);
    psc_stop(&p);
}

/* Contiguous entries coalesce per operation: P P S S P P is 3 calls. */
static void test_psc_coalesce(const void *opaque)
{
    const SizeCase *sc = opaque;
    uint64_t t = sc->folio;
    const bool ops[] = { true, true, false, false, true, true };
    uint64_t entries[ARRAY_SIZE(ops)];
    Psc p;
    QDict *before, *after;

    for (unsigned i = 0; i < ARRAY_SIZE(ops); i++) {
        entries[i] = psc_entry(t + i * PAGE, ops[i], false, 0);
    }
    psc_start(&p, sc);
    convert(p.qts, t + 2 * PAGE, 2 * PAGE, true);
    psc_put_list(p.qts, PSC_LIST, 0, ARRAY_SIZE(ops) - 1, entries,
                 ARRAY_SIZE(ops));
    before = gmem_query_one(p.qts, "mem0");
    g_assert_cmpuint(psc_ring(&p, PSC_LIST), ==, PSC_STATUS_OK);
    after = gmem_query_one(p.qts, "mem0");
    g_assert_cmpuint(psc_reg(&p, PSC_REG_CONVERSIONS), ==, 3);
    g_assert_cmpuint(info_u64(after, "kernel-calls"), ==,
                     info_u64(before, "kernel-calls") + 3);
    g_assert_cmpuint(info_u64(after, "private"), ==, 4 * PAGE);
    qobject_unref(before);
    qobject_unref(after);
    for (unsigned i = 0; i < ARRAY_SIZE(ops); i++) {
        if (ops[i]) {
            page_private(p.qts, t + i * PAGE);
        } else {
            page_check(p.qts, t + i * PAGE, 0);
        }
    }
    psc_stop(&p);
}

typedef struct BadList {
    const char *what;
    uint16_t cur, end;
    uint64_t bad;           /* entry 1; entries 0 and 2 are valid */
    uint32_t status;
    uint32_t error_entry;
} BadList;

/*
 * Hostile lists (the device of @p on RAM of @sc): an error status, and
 * nothing changes at all, not even the list.
 */
static void psc_hostile_lists(Psc *p, const SizeCase *sc)
{
    uint64_t t = sc->folio;
    uint64_t bar = qpci_config_readl(p->dev, PCI_BASE_ADDRESS_0) &
                   PCI_BASE_ADDRESS_MEM_MASK;
    const uint64_t ok = psc_entry(t + PAGE, true, false, 0);
    const BadList lists[] = {
        { "end before cur", 3, 1, ok, PSC_STATUS_BAD_HEADER, 0 },
        { "end past the buffer", 0, PSC_MAX_ENTRIES, ok,
          PSC_STATUS_BAD_HEADER, 0 },
        { "end 0xffff", 0, 0xffff, ok, PSC_STATUS_BAD_HEADER, 0 },
        { "reserved bit", 0, 2, ok | (1ULL << 63),
          PSC_STATUS_BAD_ENTRY, 1 },
        { "operation 0", 0, 2,
          ok & ~(0xfULL << PSC_ENTRY_OP_SHIFT), PSC_STATUS_BAD_ENTRY, 1 },
        { "operation 3", 0, 2,
          ok | (3ULL << PSC_ENTRY_OP_SHIFT), PSC_STATUS_BAD_ENTRY, 1 },
        { "cur_page past the page", 0, 2,
          psc_entry(t + PAGE, true, false, 2), PSC_STATUS_BAD_ENTRY, 1 },
        { "unaligned 2M", 0, 2, psc_entry(t + PAGE, true, true, 0),
          PSC_STATUS_BAD_ENTRY, 1 },
        { "past RAM", 0, 2, psc_entry(sc->ram, true, false, 0),
          PSC_STATUS_BAD_GPA, 1 },
        { "2M past RAM", 0, 2, psc_entry(sc->ram, true, true, 0),
          PSC_STATUS_BAD_GPA, 1 },
        { "far above RAM", 0, 2, psc_entry(1ULL << 50, true, false, 0),
          PSC_STATUS_BAD_GPA, 1 },
        { "IOAPIC", 0, 2, psc_entry(0xfec00000, true, false, 0),
          PSC_STATUS_BAD_GPA, 1 },
        { "its own BAR", 0, 2, psc_entry(bar, true, false, 0),
          PSC_STATUS_BAD_GPA, 1 },
        { "BIOS", 0, 2, psc_entry(0xfffff000, true, false, 0),
          PSC_STATUS_BAD_GPA, 1 },
    };
    g_autofree char *before = NULL;
    g_autofree char *after = NULL;

    /*
     * Some state to keep: a private page, data in a shared one, and
     * the list's page already in the file (QEMU's writes of the lists
     * below would fault it in otherwise).
     */
    convert(p->qts, t + 8 * PAGE, PAGE, true);
    page_fill(p->qts, t, 1);
    page_fill(p->qts, PSC_LIST, 1);
    before = query_json(p->qts);
    for (size_t i = 0; i < ARRAY_SIZE(lists); i++) {
        const BadList *l = &lists[i];
        uint64_t entries[] = {
            psc_entry(t, true, false, 0), l->bad,
            psc_entry(t + 8 * PAGE, false, false, 0),
        };
        uint8_t list[PSC_HDR_SIZE + sizeof(entries)];
        uint8_t back[sizeof(list)];
        uint32_t status;

        psc_put_list(p->qts, PSC_LIST, l->cur, l->end, entries, 3);
        qtest_memread(p->qts, PSC_LIST, list, sizeof(list));
        status = psc_ring(p, PSC_LIST);
        if (status != l->status) {
            g_error("%s: status %u, expected %u", l->what, status,
                    l->status);
        }
        g_assert_cmpuint(psc_reg(p, PSC_REG_ERROR_ENTRY), ==,
                         l->error_entry);
        g_assert_cmpuint(psc_reg(p, PSC_REG_ENTRIES_DONE), ==, 0);
        g_assert_cmpuint(psc_reg(p, PSC_REG_CONVERSIONS), ==, 0);
        g_free(after);
        after = query_json(p->qts);
        g_assert_cmpstr(before, ==, after);
        /* Not even the list was written back. */
        qtest_memread(p->qts, PSC_LIST, back, sizeof(back));
        g_assert(!memcmp(list, back, sizeof(list)));
    }
    page_check(p->qts, t, 1);
    page_private(p->qts, t + 8 * PAGE);

    /* cur_entry == end_entry + 1: a finished list, nothing to do. */
    psc_put_list(p->qts, PSC_LIST, 3, 2, (uint64_t[]) { 0, 0, 0 }, 3);
    g_assert_cmpuint(psc_ring(p, PSC_LIST), ==, PSC_STATUS_OK);
    g_assert_cmpuint(psc_reg(p, PSC_REG_ENTRIES_DONE), ==, 3);
    g_assert_cmpuint(psc_reg(p, PSC_REG_CONVERSIONS), ==, 0);
    g_assert_cmpuint(psc_cur_entry(p->qts, PSC_LIST), ==, 3);
    g_free(after);
    after = query_json(p->qts);
    g_assert_cmpstr(before, ==, after);
}

static void test_psc_hostile(const void *opaque)
{
    Psc p;

    psc_start(&p, opaque);
    psc_hostile_lists(&p, opaque);
    psc_stop(&p);
}

/* A list in private memory cannot be read: DMA_ERROR, QEMU lives. */
static void test_psc_private_list(const void *opaque)
{
    const SizeCase *sc = opaque;
    uint64_t t = sc->folio;
    const uint64_t entries[] = { psc_entry(t, true, false, 0) };
    g_autofree char *before = NULL;
    g_autofree char *after = NULL;
    Psc p;

    psc_start(&p, sc);
    psc_put_list(p.qts, PSC_LIST, 0, 0, entries, 1);
    convert(p.qts, PSC_LIST, PAGE, true);
    before = query_json(p.qts);
    g_assert_cmpuint(psc_ring(&p, PSC_LIST), ==, PSC_STATUS_DMA_ERROR);
    g_assert_cmpuint(psc_reg(&p, PSC_REG_CONVERSIONS), ==, 0);
    after = query_json(p.qts);
    g_assert_cmpstr(before, ==, after);
    page_check(p.qts, t, 0);
    psc_stop(&p);
}

/*
 * The device's DMA writing into a private page fails: a list that makes
 * its own page private cannot have its progress written back.
 */
static void test_psc_dma_to_private(const void *opaque)
{
    const SizeCase *sc = opaque;
    const uint64_t entries[] = { psc_entry(PSC_LIST, true, false, 0) };
    Psc p;

    psc_start(&p, sc);
    psc_put_list(p.qts, PSC_LIST, 0, 0, entries, 1);
    g_assert_cmpuint(psc_ring(&p, PSC_LIST), ==, PSC_STATUS_DMA_ERROR);
    /* The conversion itself was done, and the registers say so. */
    g_assert_cmpuint(psc_reg(&p, PSC_REG_ENTRIES_DONE), ==, 1);
    g_assert_cmpuint(psc_reg(&p, PSC_REG_CONVERSIONS), ==, 1);
    g_assert_cmpuint(gmem_query_u64(p.qts, "mem0", "private"), ==, PAGE);
    page_private(p.qts, PSC_LIST);

    /* The write-back did not land: cur_entry is still 0. */
    convert(p.qts, PSC_LIST, PAGE, false);
    g_assert_cmpuint(psc_cur_entry(p.qts, PSC_LIST), ==, 0);
    g_assert_cmphex(psc_get_entry(p.qts, PSC_LIST, 0), ==, entries[0]);
    psc_stop(&p);
}

/*
 * A pinned page inside a list: CONVERT_FAILED with the progress written
 * back exactly; after unpin the guest rings again and the list finishes.
 */
static void test_psc_pinned(const void *opaque)
{
    const SizeCase *sc = opaque;
    uint64_t t = sc->folio;
    const uint64_t entries[] = {
        psc_entry(t - PAGE, true, false, 0),
        psc_entry(t, true, true, 0),
        psc_entry(t + 4 * MiB, true, false, 0),
    };
    Psc p;
    QDict *before, *after;

    psc_start(&p, sc);
    pin(p.qts, "mem0", t + 7 * PAGE, true);
    psc_put_list(p.qts, PSC_LIST, 0, 2, entries, 3);
    before = gmem_query_one(p.qts, "mem0");
    g_assert_cmpuint(psc_ring(&p, PSC_LIST), ==, PSC_STATUS_CONVERT_FAILED);
    after = gmem_query_one(p.qts, "mem0");

    /* Entries 0 and 1 are one conversion; it got 1 + 7 pages far. */
    g_assert_cmpuint(psc_reg(&p, PSC_REG_ERROR_ENTRY), ==, 1);
    g_assert_cmpuint(psc_reg(&p, PSC_REG_ENTRIES_DONE), ==, 1);
    g_assert_cmpuint(psc_reg(&p, PSC_REG_CONVERSIONS), ==, 1);
    g_assert_cmpuint(psc_cur_entry(p.qts, PSC_LIST), ==, 1);
    g_assert_cmphex(psc_get_entry(p.qts, PSC_LIST, 0), ==, entries[0]);
    g_assert_cmphex(psc_get_entry(p.qts, PSC_LIST, 1), ==,
                    psc_entry(t, true, true, 7));
    g_assert_cmphex(psc_get_entry(p.qts, PSC_LIST, 2), ==, entries[2]);
    g_assert_cmpuint(info_u64(after, "retried"), >,
                     info_u64(before, "retried"));
    g_assert_cmpuint(info_u64(after, "failed"), ==,
                     info_u64(before, "failed") + 1);
    g_assert_cmpuint(info_u64(after, "private"), ==, 8 * PAGE);
    qobject_unref(before);
    qobject_unref(after);
    page_private(p.qts, t - PAGE);
    page_private(p.qts, t + 6 * PAGE);
    page_check(p.qts, t + 7 * PAGE, 0);
    page_check(p.qts, t + 4 * MiB, 0);

    /* Unpinned, the same buffer resumes at entry 1, page 7. */
    pin(p.qts, "mem0", t + 7 * PAGE, false);
    g_assert_cmpuint(psc_ring(&p, PSC_LIST), ==, PSC_STATUS_OK);
    g_assert_cmpuint(psc_reg(&p, PSC_REG_CONVERSIONS), ==, 2);
    g_assert_cmpuint(psc_cur_entry(p.qts, PSC_LIST), ==, 3);
    g_assert_cmpuint(gmem_query_u64(p.qts, "mem0", "private"), ==,
                     PAGE + 2 * MiB + PAGE);
    page_private(p.qts, t + 7 * PAGE);
    page_private(p.qts, t + 4 * MiB);
    psc_stop(&p);
}

/*
 * qtest_readq() is a fixed-length address_space_read(), whose inline fast
 * path (include/exec/memory.h) copies from RAM without the guard: a
 * private page must still read as refused, and QEMU must live.
 */
static void test_fixed_length_read(const void *opaque)
{
    const SizeCase *sc = opaque;
    QTestState *qts;
    uint64_t x = mid_page(sc);

    qts = vm_start(sc, true, false, NULL);
    page_fill(qts, x, 1);
    convert(qts, x, PAGE, true);
    /* qtest's readq reports all-ones when the read is refused. */
    g_assert_cmphex(qtest_readq(qts, x), ==, DENIED);
    /* Narrower reads leave qtest's buffer as it was: QEMU must live. */
    qtest_readl(qts, x + 8);
    qtest_readb(qts, x + PAGE - 1);
    g_assert_cmpuint(gmem_query_u64(qts, "mem0", "private"), ==, PAGE);
    convert(qts, x, PAGE, false);
    page_check(qts, x, 1);
    qtest_quit(qts);
}

/*
 * More than 4 GiB of RAM: GPA 4 GiB + x is file offset 2 GiB + x.  The
 * guard must judge the page at that offset, not at offset 4 GiB + x
 * (flatview_read() and flatview_write() hand it the GPA).
 */
static void test_high_ram_offset(const void *opaque)
{
    const SizeCase *sc = opaque;
    QTestState *qts;
    uint64_t gpa = 4 * GiB + sc->folio;
    uint8_t data[2 * PAGE], back[2 * PAGE];

    qts = qtest_initf("-machine q35,memory-backend=mem0 -m 6G -object %s"
                      ",id=mem0,size=6G,pagesize=%" PRIu64 ",init-shared=off",
                      model(sc->page_size), sc->page_size);
    /* Shared at offset 2 GiB + folio; offset 4 GiB + folio stays private. */
    convert(qts, gpa, sizeof(data), false);
    for (size_t i = 0; i < sizeof(data); i++) {
        data[i] = i ^ 0x3c;
    }
    qtest_memwrite(qts, gpa, data, sizeof(data));
    qtest_memread(qts, gpa, back, sizeof(back));
    g_assert(!memcmp(data, back, sizeof(data)));
    qtest_quit(qts);
}

/* Teardown flows */

/* object-del of a backend nobody uses gives back its pool and its file. */
static void test_object_del(const void *opaque)
{
    const SizeCase *sc = opaque;
    uint64_t ps = sc->page_size;
    QTestState *qts = qtest_initf("-machine q35 -m 64M -object %s"
                                  ",id=witness,size=%" PRIu64 ",pagesize=%"
                                  PRIu64, model(ps), ps, ps);
    QDict *info = gmem_query_one(qts, "witness");
    uint64_t reserved = pool_u64(info, "reserved");
    uint64_t in_use = pool_u64(info, "in-use");
    unsigned refs = gmem_refs(qts);

    qobject_unref(info);
    qtest_qmp_assert_success(qts, "{'execute': 'object-add', 'arguments': {"
                             " 'qom-type': 'memory-backend-guest-memfd',"
                             " 'id': 'm1', 'size': %" PRIu64 ", 'pagesize':"
                             " %" PRIu64 ", 'prealloc': true,"
                             " 'kernel-model': true}}", 2 * ps, ps);
    info = gmem_query_one(qts, "witness");
    g_assert_cmpuint(pool_u64(info, "in-use"), ==, in_use + 2);
    qobject_unref(info);
    g_assert_cmpuint(gmem_refs(qts), >, refs);

    qtest_qmp_assert_success(qts, "{'execute': 'object-del', 'arguments':"
                             " {'id': 'm1'}}");
    wait_pool_back(qts, "witness", reserved, in_use, refs);
    qtest_quit(qts);
}

/*
 * system_reset: every page back to the initial state, contents gone, the
 * folios back in the pool.
 */
static void test_reset(const SizeCase *sc, bool shared)
{
    QTestState *qts = vm_start(sc, shared, false, NULL);
    uint64_t folios = sc->ram / sc->page_size;
    uint64_t x = mid_page(sc);
    QDict *info;

    if (!shared) {
        convert(qts, x, 4 * PAGE, false);
        convert(qts, PAGE, PAGE, false);
    }
    for (uint64_t p = 0; p < 4; p++) {
        page_fill(qts, x + p * PAGE, 1);
    }
    page_fill(qts, PAGE, 1);
    convert(qts, x + 2 * PAGE, 2 * PAGE, true);
    info = gmem_query_one(qts, "mem0");
    g_assert_cmpuint(pool_u64(info, "in-use"), >, 0);
    g_assert_cmpuint(info_u64(info, "shared"), ==,
                     shared ? sc->ram - 2 * PAGE : 3 * PAGE);
    qobject_unref(info);

    qtest_system_reset(qts);
    check_state(qts, "mem0", shared ? sc->ram : 0, 0, 0, 0);
    info = gmem_query_one(qts, "mem0");
    g_assert_cmpuint(pool_u64(info, "in-use"), ==, 0);
    g_assert_cmpuint(pool_u64(info, "reserved"), ==, folios);
    qobject_unref(info);

    if (!shared) {
        page_private(qts, x);
        convert(qts, x, 4 * PAGE, false);
        convert(qts, PAGE, PAGE, false);
    }
    for (uint64_t p = 0; p < 4; p++) {
        page_check(qts, x + p * PAGE, 0);
    }
    page_check(qts, PAGE, 0);
    qtest_quit(qts);
}

static void test_reset_shared(const void *opaque)
{
    test_reset(opaque, true);
}

static void test_reset_private(const void *opaque)
{
    test_reset(opaque, false);
}

/*
 * Quit while pages are pinned (a merge waiting for them, a conversion
 * failed on them): QEMU exits cleanly and gives back all host pages.
 */
static void test_quit_pinned(const void *opaque)
{
    const SizeCase *sc = opaque;
    int64_t host_free = gmem_host_hugepages(sc->page_size, "free_hugepages");
    QTestState *qts = vm_start(sc, true, false, NULL);
    uint64_t x = mid_page(sc);
    bool real;
    QDict *info;

    page_fill(qts, x, 1);
    pin(qts, "mem0", x, true);
    pin(qts, "mem0", x + PAGE, true);
    pin(qts, "mem0", x + PAGE, true);
    g_free(convert_fails(qts, x, PAGE, true));
    convert(qts, x + 2 * PAGE, PAGE, true);
    info = gmem_query_one(qts, "mem0");
    real = qdict_get_bool(qdict_get_qdict(info, "pool"), "real");
    g_assert_cmpuint(pool_u64(info, "in-use"), >, 0);
    qobject_unref(info);

    qtest_qmp_assert_success(qts, "{'execute': 'quit'}");
    qtest_wait_qemu(qts);       /* asserts a clean exit */
    qtest_quit(qts);
    if (real) {
        host_free_restored(sc->page_size, host_free);
    }
}

/*
 * On real hugetlb pages (the host's pool of the size): pages really leave
 * the host pool while QEMU holds them and all come back when it quits,
 * pins and all.
 */
static void test_host_pool(const void *opaque)
{
    const SizeCase *sc = opaque;
    int64_t host_free = gmem_host_hugepages(sc->page_size, "free_hugepages");
    uint64_t folios = sc->ram / sc->page_size;
    g_autofree char *why = gmem_host_lacks_hugepages(
        sc->page_size, sc->page_size == GiB ? MAX(folios, 8) : folios);
    QTestState *qts;
    QDict *info;

    /* With that many free, the model takes the host's pages. */
    if (why) {
        g_test_skip(why);
        return;
    }
    qts = vm_start(sc, true, false, NULL);
    info = gmem_query_one(qts, "mem0");
    g_assert(qdict_get_bool(qdict_get_qdict(info, "pool"), "real"));
    g_assert_cmpstr(qdict_get_str(info, "backing"), ==,
                    sc->page_size == GiB ? "hugetlb 1G" : "hugetlb 2M");
    qobject_unref(info);

    /* Two folios: the working one and the one below it (RAM ends above). */
    page_fill(qts, sc->folio, 1);
    page_fill(qts, sc->folio - sc->page_size, 1);
    pin(qts, "mem0", sc->folio + PAGE, true);
    info = gmem_query_one(qts, "mem0");
    g_assert_cmpuint(pool_u64(info, "in-use"), ==, 2);
    qobject_unref(info);
    /*
     * The host agrees: the file holds two huge pages (its own count;
     * the pool's free count also moves with other processes).
     */
    g_assert_cmpuint(gmem_file_bytes(qts), ==, 2 * sc->page_size);

    qtest_qmp_assert_success(qts, "{'execute': 'quit'}");
    qtest_wait_qemu(qts);
    qtest_quit(qts);
    host_free_restored(sc->page_size, host_free);
}

/*
 * The host's own counters agree with the model's pool at every step: a
 * file's creation reserves its pages (resv_hugepages), allocation takes
 * them (free_hugepages), punching a hole (system_reset) gives them back,
 * and object-del and QEMU's exit return everything.  Needs the host's pool
 * to itself: it runs in the lab, where nothing else uses it.
 */
static void expect_host_counters(QTestState *qts, int64_t free0,
                                 int64_t resv0, uint64_t ps,
                                 uint64_t in_use0, uint64_t reserved0,
                                 const char *step)
{
    QDict *info = gmem_query_one(qts, "mem0");
    int64_t in_use = pool_u64(info, "in-use") - in_use0;
    int64_t reserved = pool_u64(info, "reserved") - reserved0;

    g_assert(qdict_get_bool(qdict_get_qdict(info, "pool"), "real"));
    qobject_unref(info);
    g_test_message("%s: model in-use %+" PRId64 ", reserved %+" PRId64
                   "; host free %" PRId64 ", resv %" PRId64, step, in_use,
                   reserved, gmem_host_hugepages(ps, "free_hugepages"),
                   gmem_host_hugepages(ps, "resv_hugepages"));
    g_assert_cmpint(gmem_host_hugepages(ps, "free_hugepages"), ==,
                    free0 - in_use);
    g_assert_cmpint(gmem_host_hugepages(ps, "resv_hugepages"), ==,
                    resv0 + reserved);
}

static void test_host_counters(const void *opaque)
{
    const SizeCase *sc = opaque;
    uint64_t ps = sc->page_size;
    int64_t free0 = gmem_host_hugepages(ps, "free_hugepages");
    int64_t resv0 = gmem_host_hugepages(ps, "resv_hugepages");
    g_autofree char *why = gmem_host_lacks_hugepages(ps, 5);
    QTestState *qts;
    uint64_t in_use0, reserved0;
    QDict *info;

    if (why) {
        g_test_skip(why);
        return;
    }
    /* Two folios of RAM, not preallocated: nothing taken yet. */
    qts = vm_start(sc, true, false, NULL);
    info = gmem_query_one(qts, "mem0");
    in_use0 = pool_u64(info, "in-use");
    reserved0 = pool_u64(info, "reserved");
    qobject_unref(info);
    g_assert_cmpint(gmem_host_hugepages(ps, "free_hugepages"), ==,
                    free0 - in_use0);
    g_assert_cmpint(gmem_host_hugepages(ps, "resv_hugepages"), ==,
                    resv0 + reserved0);

    page_fill(qts, sc->folio, 1);
    expect_host_counters(qts, free0, resv0, ps, 0, 0, "after a write");

    qtest_qmp_assert_success(qts, "{'execute': 'object-add', 'arguments': {"
                             " 'qom-type': 'memory-backend-guest-memfd',"
                             " 'id': 'm1', 'size': %" PRIu64 ", 'pagesize':"
                             " %" PRIu64 ", 'prealloc': true,"
                             " 'kernel-model': true}}", 2 * ps, ps);
    expect_host_counters(qts, free0 - in_use0, resv0 + reserved0, ps,
                         in_use0, reserved0, "object-add, prealloc");

    qtest_system_reset(qts);        /* punches every folio of mem0 */
    expect_host_counters(qts, free0 - in_use0, resv0 + reserved0, ps,
                         in_use0, reserved0, "system_reset");

    qtest_qmp_assert_success(qts, "{'execute': 'object-del', 'arguments':"
                             " {'id': 'm1'}}");
    /* The RAMBlock lets go of its mapping after an RCU grace period. */
    gmem_wait_for(gmem_host_hugepages(ps, "resv_hugepages") ==
                  resv0 + (int64_t)reserved0 &&
                  gmem_host_hugepages(ps, "free_hugepages") ==
                  free0 - (int64_t)in_use0,
                  "the deleted backend's pages to return to the host");
    expect_host_counters(qts, free0 - in_use0, resv0 + reserved0, ps,
                         in_use0, reserved0, "object-del");

    qtest_qmp_assert_success(qts, "{'execute': 'quit'}");
    qtest_wait_qemu(qts);
    qtest_quit(qts);
    g_assert_cmpint(gmem_host_hugepages(ps, "free_hugepages"), ==, free0);
    g_assert_cmpint(gmem_host_hugepages(ps, "resv_hugepages"), ==, resv0);
}

static void add_size_test(const SizeCase *sc, const char *name,
                          GTestDataFunc fn)
{
    g_autofree char *path = g_strdup_printf("/guest-memfd/convert/%s/%s",
                                            sc->name, name);

    qtest_add_data_func(path, sc, fn);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);

    for (size_t i = 0; i < ARRAY_SIZE(size_cases); i++) {
        const SizeCase *sc = &size_cases[i];

        add_size_test(sc, "initial-private", test_initial_private);
        add_size_test(sc, "initial-shared", test_initial_shared);
        add_size_test(sc, "split-merge", test_split_merge);
        add_size_test(sc, "whole-folio", test_whole_folio);
        add_size_test(sc, "cross-folio", test_cross_folio);
        add_size_test(sc, "cross-4g", test_cross_4g);
        add_size_test(sc, "pc-dimm", test_pc_dimm);
        add_size_test(sc, "repeat", test_repeat);
        add_size_test(sc, "rejects", test_rejects);
        add_size_test(sc, "pinned", test_pinned);
        if (is_huge(sc)) {
            add_size_test(sc, "merge-deferred", test_merge_deferred);
        }
        add_size_test(sc, "psc/multi-entry", test_psc_multi);
        add_size_test(sc, "psc/2m-entries", test_psc_2m);
        add_size_test(sc, "psc/253-entries-one-call", test_psc_one_call);
        add_size_test(sc, "psc/coalesce-mixed", test_psc_coalesce);
        add_size_test(sc, "psc/hostile", test_psc_hostile);
        add_size_test(sc, "psc/private-list", test_psc_private_list);
        add_size_test(sc, "psc/dma-to-private", test_psc_dma_to_private);
        add_size_test(sc, "psc/pinned", test_psc_pinned);
        add_size_test(sc, "fixed-length-read", test_fixed_length_read);
        if (sc->page_size != 2 * MiB) {
            /* 6 GiB of 2 MiB pages is more than CI's hugetlb pool. */
            add_size_test(sc, "high-ram-offset", test_high_ram_offset);
        }
        add_size_test(sc, "object-del", test_object_del);
        add_size_test(sc, "reset-shared", test_reset_shared);
        add_size_test(sc, "reset-private", test_reset_private);
        add_size_test(sc, "quit-pinned", test_quit_pinned);
        if (is_huge(sc) && !gmem_lab_runs_it(uses_host_pool(sc->page_size))) {
            add_size_test(sc, "host-hugetlb-pool", test_host_pool);
        }
        /* Exact counters need the pool to themselves: the lab's. */
        if (sc->page_size == GiB && !gmem_lab_runs_it(false)) {
            add_size_test(sc, "host-hugetlb-counters", test_host_counters);
        }
    }
    return g_test_run();
}
