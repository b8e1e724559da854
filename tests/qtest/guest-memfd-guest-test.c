/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * A guest's own requests: gmem-guest (tests/gmem-guest/), a freestanding
 * test kernel, converts its memory as a confidential guest does, and this
 * test checks both sides.
 *
 * Each machine boots gmem-guest once and runs its scenarios in turn, one
 * GLib case each (/guest-memfd/guest/MACHINE/SCENARIO): the test sends
 * "run SCENARIO" on the guest's console and reads back a TAP line; at each
 * "SYNC LABEL" of the guest it checks QEMU's side (query-guest-memfd, the
 * run state) before it lets the guest go on.  The machines:
 *   tcg        TCG; the guest asks through the guest-memfd-psc device
 *   kvm-model  KVM and the kernel model (1 GiB folios, in-place
 *              conversion); the guest asks with KVM_HC_MAP_GPA_RANGE
 *   kvm        KVM and the host's own guest_memfd (mainline: no in-place
 *              conversion, so to-private is refused)
 *   kvm-edu    KVM and the model, with QEMU's edu device assigned (VFIO):
 *              its DMA lands in shared pages and not in private ones, in
 *              folio 0, in a split folio 1 and in a pc-dimm plugged at
 *              run time (edu-dimm)
 * What a machine needs of the host comes from the host probe; make check
 * runs the KVM ones in the lab where this host lacks it.
 */

#include "qemu/osdep.h"
#include "qemu/units.h"
#include "qobject/qjson.h"
#include "guest-memfd-qtest.h"
#include <poll.h>
#include <sys/klog.h>
#include <sys/socket.h>

#define TEST_FOLIO      (1 * GiB)
#define PAGE            (4 * KiB)
#define EDU_SCATTERED   16      /* shared pages of folio 1 (edu-folio) */
/* A hole in q35's memory map above 2 GiB of RAM (below the PCI window). */
#define HOLE_GPA        0x90000000ULL
/* TCG boots in a few seconds; nested KVM under TCG (the lab) takes more. */
#define BOOT_SECONDS    300
#define LINE_SECONDS    300

typedef struct Machine {
    const char *name;
    const char *accel;
    const char *path;           /* how the guest asks: "psc", "hypercall" */
    const char *gmem;           /* memory-backend-guest-memfd properties */
    const char *mem0;           /* ... of the main RAM, besides those */
    unsigned needs;             /* GmemHostNeed */
    const char *const *scenarios;
    bool assign;                /* the host's VFIO device, assigned */
} Machine;

static const char *const in_place_scenarios[] = {
    "4k", "2m", "1g", "scattered", "hostile", "pinned", NULL,
};
static const char *const kvm_model_scenarios[] = {
    "4k", "2m", "1g", "scattered", "hostile", "pinned", "timing", NULL,
};
static const char *const mainline_scenarios[] = {
    "mainline", "hostile", "timing", NULL,
};
static const char *const edu_scenarios[] = {
    "edu", "edu-folio", "edu-dimm", NULL,
};

static const Machine machines[] = {
    {
        .name = "tcg", .accel = "tcg", .path = "psc",
        .gmem = "kernel-model=on,x-simulated-pool=on",
        .mem0 = "pagesize=1G", .needs = 0,
        .scenarios = in_place_scenarios,
    }, {
        .name = "kvm-model", .accel = "kvm", .path = "hypercall",
        .gmem = "kernel-model=on,x-simulated-pool=on",
        .mem0 = "pagesize=1G",
        .needs = GMEM_NEEDS_KVM_RUNS | GMEM_NEEDS_KVM_MAP_GPA_RANGE,
        .scenarios = kvm_model_scenarios,
    }, {
        .name = "kvm", .accel = "kvm", .path = "hypercall",
        .gmem = "pagesize=4K", .mem0 = "init-shared=on",
        .needs = GMEM_NEEDS_KVM_GMEM | GMEM_NEEDS_KVM_RUNS |
                 GMEM_NEEDS_KVM_MAP_GPA_RANGE,
        .scenarios = mainline_scenarios,
    }, {
        .name = "kvm-edu", .accel = "kvm", .path = "hypercall",
        .gmem = "kernel-model=on,x-simulated-pool=on",
        .mem0 = "pagesize=1G",
        .needs = GMEM_NEEDS_KVM_RUNS | GMEM_NEEDS_KVM_MAP_GPA_RANGE |
                 GMEM_NEEDS_VFIO_DEVICE | GMEM_NEEDS_ROOT,
        .scenarios = edu_scenarios, .assign = true,
    },
};

typedef struct Case {
    const Machine *m;
    const char *scenario;
} Case;

/* The machine running now: the cases of one machine share its boot. */
typedef struct Guest {
    const Machine *m;
    QTestState *qts;
    char *dir;
    int con;                    /* the guest's console */
    GString *in;                /* read from it, not yet a whole line */
    uint64_t plain_gpa;         /* a pc-dimm of plain RAM */
    uint64_t dimm_end;          /* where guest_memfd dimm 1 ends, 2 starts */
    uint64_t split;             /* folios-split when the folio went private */
    char *before;               /* query-guest-memfd before hostile requests */
    unsigned iommu_faults;      /* the host's count when DMA was allowed */
    uint64_t dma_mappings;      /* mem0's when folio 1 went private */
    GString *timing;            /* TIMING lines of the guest */
} Guest;

static Guest *guest;

static const char *guest_kernel(void)
{
    static char *path;

    if (!path) {
        path = g_strdup(g_getenv("QTEST_GMEM_GUEST"));
    }
    if (!path) {
        g_autofree char *dir = g_path_get_dirname(
            g_getenv("QTEST_QEMU_BINARY"));

        path = g_build_filename(dir, "tests", "gmem-guest", "gmem-guest",
                                NULL);
    }
    return path;
}

/*
 * The guest fell silent: say where its vCPU stands, so that a hang can be
 * told from a wedged QEMU.  A QEMU whose main loop is stuck answers no
 * QMP command; the alarm then ends the test, which says as much.
 */
static void guest_report_silence(Guest *g)
{
    g_autofree char *regs = NULL;
    g_auto(GStrv) lines = NULL;
    QDict *resp;

    alarm(60);
    resp = qtest_qmp(g->qts, "{'execute': 'query-status'}");
    g_test_message("QEMU's run state: %s",
                   qdict_get_str(qdict_get_qdict(resp, "return"), "status"));
    qobject_unref(resp);
    regs = qtest_hmp(g->qts, "info registers");
    lines = g_strsplit(regs, "\n", -1);
    for (char **l = lines; *l; l++) {
        if (g_str_has_prefix(*l, "RAX=") || g_str_has_prefix(*l, "RIP=") ||
            g_str_has_prefix(*l, "EAX=") || g_str_has_prefix(*l, "EIP=")) {
            g_test_message("vCPU: %s", *l);
        }
    }
    alarm(0);
}

/* The next line of the guest's console, without its end; fails on EOF. */
static char *guest_line(Guest *g, int seconds)
{
    gint64 deadline = g_get_monotonic_time() + seconds * G_USEC_PER_SEC;

    for (;;) {
        char *nl = memchr(g->in->str, '\n', g->in->len);
        struct pollfd pfd = { .fd = g->con, .events = POLLIN };
        char buf[4096];
        ssize_t n;

        if (nl) {
            size_t len = nl - g->in->str;
            char *line = g_strndup(g->in->str, len);

            g_string_erase(g->in, 0, len + 1);
            g_strchomp(line);
            return line;
        }
        if (g_get_monotonic_time() > deadline) {
            guest_report_silence(g);
            g_error("gmem-guest said nothing for %d s (so far: \"%s\")",
                    seconds, g->in->str);
        }
        if (poll(&pfd, 1, 1000) <= 0) {
            continue;
        }
        n = read(g->con, buf, sizeof(buf));
        if (n <= 0) {
            g_error("gmem-guest's console closed (QEMU exited?); it said"
                    " \"%s\"", g->in->str);
        }
        g_string_append_len(g->in, buf, n);
    }
}

static void guest_send(Guest *g, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static void guest_send(Guest *g, const char *fmt, ...)
{
    g_autofree char *line = NULL;
    va_list ap;

    va_start(ap, fmt);
    line = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_assert_cmpint(write(g->con, line, strlen(line)), ==, strlen(line));
    g_assert_cmpint(write(g->con, "\n", 1), ==, 1);
}

/* Read up to the guest's next READY, passing its comments on. */
static void guest_wait_ready(Guest *g, int seconds)
{
    for (;;) {
        g_autofree char *line = guest_line(g, seconds);

        if (!strcmp(line, "READY")) {
            return;
        }
        if (g_str_has_prefix(line, "Bail out!")) {
            g_error("gmem-guest: %s", line);
        }
        g_test_message("guest: %s", line);
    }
}

static uint64_t dimm_addr(QTestState *qts, const char *id)
{
    QDict *resp = qtest_qmp(qts, "{'execute': 'qom-get', 'arguments':"
                            " {'path': %s, 'property': 'addr'}}", id);
    uint64_t addr = qdict_get_int(resp, "return");

    qobject_unref(resp);
    return addr;
}

static void guest_stop(void)
{
    if (!guest) {
        return;
    }
    guest_send(guest, "exit");
    /* isa-debug-exit: QEMU exits with (0 << 1) | 1. */
    qtest_set_expected_status(guest->qts, 1);
    qtest_wait_qemu(guest->qts);
    qtest_quit(guest->qts);
    close(guest->con);
    g_string_free(guest->in, true);
    if (guest->timing) {
        g_string_free(guest->timing, true);
    }
    g_free(guest->before);
    g_free(guest->dir);
    g_free(guest);
    guest = NULL;
}

/*
 * 2 GiB of guest_memfd RAM (mem0), and three pc-dimms: two guest_memfd
 * ones side by side (a request across them spans two backends) and one
 * of plain RAM.
 */
static Guest *guest_start(const Machine *m)
{
    Guest *g = g_new0(Guest, 1);
    g_autofree char *sock = NULL;
    g_autofree char *assign = m->assign ?
        g_strdup_printf(" -device vfio-pci,host=%s",
                        gmem_host_vfio_device()) : NULL;
    int listener;

    g->m = m;
    g->dir = g_dir_make_tmp("gmem-guest-XXXXXX", NULL);
    sock = g_build_filename(g->dir, "console", NULL);
    listener = qtest_socket_server(sock);
    g->qts = qtest_initf(
        "-accel %s -machine q35,memory-backend=mem0"
        " -m 2G,slots=4,maxmem=4G -nodefaults"
        " -object memory-backend-guest-memfd,id=mem0,size=2G,%s,%s"
        " -object memory-backend-guest-memfd,id=m1,size=128M,%s"
        " -object memory-backend-guest-memfd,id=m2,size=128M,%s"
        " -object memory-backend-ram,id=plain,size=128M"
        " -device pc-dimm,id=d1,memdev=m1 -device pc-dimm,id=d2,memdev=m2"
        " -device pc-dimm,id=d3,memdev=plain"
        " -device guest-memfd-psc"
        " -device isa-debug-exit,iobase=0xf4,iosize=4"
        " -chardev socket,id=con,path=%s -serial chardev:con"
        " -kernel %s%s",
        m->accel, m->mem0, m->gmem, m->gmem, m->gmem, sock, guest_kernel(),
        assign ?: "");
    g->con = accept(listener, NULL, NULL);
    g_assert_cmpint(g->con, >=, 0);
    close(listener);
    unlink(sock);
    g->in = g_string_new(NULL);
    g->plain_gpa = dimm_addr(g->qts, "/machine/peripheral/d3");
    g->dimm_end = dimm_addr(g->qts, "/machine/peripheral/d2");
    g_assert_cmphex(dimm_addr(g->qts, "/machine/peripheral/d1") + 128 * MiB,
                    ==, g->dimm_end);

    guest_wait_ready(g, BOOT_SECONDS);
    guest_send(g, "init %s", m->path);
    guest_wait_ready(g, LINE_SECONDS);
    return g;
}

/* QEMU's side */

static uint64_t mem0_u64(Guest *g, const char *key)
{
    return gmem_query_u64(g->qts, "mem0", key);
}

static char *query_json(Guest *g)
{
    QList *list = gmem_query_all(g->qts);
    GString *json = qobject_to_json(QOBJECT(list));

    qobject_unref(list);
    return g_string_free(json, false);
}

static bool vm_running(Guest *g)
{
    QDict *resp = qtest_qmp(g->qts, "{'execute': 'query-status'}");
    bool running = !strcmp(qdict_get_str(qdict_get_qdict(resp, "return"),
                                         "status"), "running");

    qobject_unref(resp);
    return running;
}

static void pin(Guest *g, uint64_t offset, bool on)
{
    qtest_qmp_assert_success(g->qts, "{'execute': 'x-guest-memfd-pin',"
                             " 'arguments': {'id': 'mem0', 'offset': %"
                             PRIu64 ", 'pin': %i}}", offset, on);
}

/* DMA faults the host's IOMMU reported so far (its kernel log). */
static unsigned iommu_faults(void)
{
    int size = klogctl(10, NULL, 0);            /* SYSLOG_ACTION_SIZE_BUFFER */
    g_autofree char *log = g_malloc(MAX(size, 1));
    int len = klogctl(3, log, size);            /* SYSLOG_ACTION_READ_ALL */
    unsigned n = 0;

    for (char *p = log; len > 0 && (p = g_strstr_len(p, log + len - p,
                                                      "DMAR: ["));
         p++) {
        n++;
    }
    return n;
}

/*
 * The edu scenarios: each DMA into a private page faulted in the host's
 * IOMMU; a split folio holds one DMA mapping per scattered shared page;
 * the plugged dimm's own backend holds the private page.
 */
static char *check_edu_sync(Guest *g, const char *label)
{
    if (g_str_has_suffix(label, "-shared")) {
        g->iommu_faults = iommu_faults();
        g->dma_mappings = mem0_u64(g, "dma-mappings");
    } else if (g_str_has_suffix(label, "-private")) {
        unsigned faults = iommu_faults();

        g_test_message("%s: the host's IOMMU reported %u DMA faults", label,
                       faults - g->iommu_faults);
        if (faults <= g->iommu_faults) {
            return g_strdup("the host's IOMMU reported no DMA fault");
        }
    }
    if (!strcmp(label, "edu-folio-private") &&
        mem0_u64(g, "dma-mappings") != g->dma_mappings + EDU_SCATTERED) {
        return g_strdup_printf("mem0 holds %" PRIu64 " DMA mappings, not"
                               " %" PRIu64, mem0_u64(g, "dma-mappings"),
                               g->dma_mappings + EDU_SCATTERED);
    }
    if (g_str_has_prefix(label, "edu-dimm-")) {
        uint64_t private = gmem_query_u64(g->qts, "m4", "private");
        uint64_t mappings = gmem_query_u64(g->qts, "m4", "dma-mappings");
        uint64_t want = g_str_has_suffix(label, "-private") ? PAGE : 0;

        if (private != want || !mappings) {
            return g_strdup_printf("the plugged dimm has 0x%" PRIx64
                                   " private bytes, not 0x%" PRIx64 ", and"
                                   " %" PRIu64 " DMA mappings", private, want,
                                   mappings);
        }
    }
    return NULL;
}

/*
 * Plug a pc-dimm of 1 GiB of guest_memfd (1 GiB folios, its own backend
 * m4) into the running guest: VFIO maps it as it appears.  Its address.
 */
static uint64_t plug_dimm(Guest *g)
{
    qtest_qmp_assert_success(g->qts, "{'execute': 'object-add', 'arguments':"
                             " {'qom-type': 'memory-backend-guest-memfd',"
                             " 'id': 'm4', 'size': %" PRIu64 ","
                             " 'pagesize': %" PRIu64 ", 'kernel-model': true,"
                             " 'x-simulated-pool': true}}",
                             (uint64_t)GiB, (uint64_t)GiB);
    qtest_qmp_assert_success(g->qts, "{'execute': 'device_add', 'arguments':"
                             " {'driver': 'pc-dimm', 'id': 'd4',"
                             " 'memdev': 'm4'}}");
    return dimm_addr(g->qts, "/machine/peripheral/d4");
}

/* What QEMU must show at the guest's SYNC @label: NULL, or what is wrong. */
static char *check_sync(Guest *g, const char *label)
{
    static const struct {
        const char *label;
        uint64_t private;
    } expect_private[] = {
        { "4k-private", PAGE }, { "2m-private", 2 * MiB },
        { "shared-again", 0 }, { "1g-private", GiB },
        { "1g-one-shared", GiB - PAGE }, { "1g-private-again", GiB },
        { "1g-shared", 0 }, { "scattered-private", 64 * PAGE },
        { "scattered-shared", 0 }, { "pinned-partial", 8 * PAGE },
        { "unpinned", 0 }, { "mainline", 0 }, { "hostile-after", 0 },
        { "edu-shared", 0 }, { "edu-private", PAGE },
        { "edu-shared-again", 0 }, { "edu-folio-shared", GiB },
        { "edu-folio-private", GiB - EDU_SCATTERED * PAGE },
        { "edu-folio-shared-again", 0 }, { "edu-dimm-private", 0 },
    };
    uint64_t private = mem0_u64(g, "private");
    uint64_t split = mem0_u64(g, "folios-split");

    if (!vm_running(g)) {
        return g_strdup("the VM is not running");
    }
    for (size_t i = 0; i < ARRAY_SIZE(expect_private); i++) {
        if (!strcmp(label, expect_private[i].label) &&
            private != expect_private[i].private) {
            return g_strdup_printf("mem0 has 0x%" PRIx64 " private bytes,"
                                   " not 0x%" PRIx64, private,
                                   expect_private[i].private);
        }
    }
    /* A whole private folio is merged; one shared page splits it. */
    if (!strcmp(label, "1g-private") || !strcmp(label, "1g-private-again")) {
        if (!strcmp(label, "1g-private")) {
            g->split = split;
        }
        if (split != g->split) {
            return g_strdup_printf("%" PRIu64 " folios split, not %" PRIu64,
                                   split, g->split);
        }
    } else if (!strcmp(label, "1g-one-shared") && split != g->split + 1) {
        return g_strdup_printf("%" PRIu64 " folios split, not %" PRIu64,
                               split, g->split + 1);
    }
    if (g_str_has_prefix(label, "edu")) {
        return check_edu_sync(g, label);
    }
    if (!strcmp(label, "pin")) {
        pin(g, TEST_FOLIO + 72 * PAGE, true);
    } else if (!strcmp(label, "pinned-partial")) {
        pin(g, TEST_FOLIO + 72 * PAGE, false);
    } else if (!strcmp(label, "hostile-before")) {
        g_free(g->before);
        g->before = query_json(g);
    } else if (!strcmp(label, "hostile-after")) {
        g_autofree char *after = query_json(g);

        if (strcmp(after, g->before)) {
            return g_strdup_printf("refused requests changed the state:"
                                   " %s became %s", g->before, after);
        }
    }
    return NULL;
}

/* The guest's round trips: each request's cost beside a null exit's. */
static void report_timing(Guest *g)
{
    g_auto(GStrv) lines = g_strsplit(g->timing->str, "\n", -1);
    uint64_t null_exit = 0;

    for (char **l = lines; *l && **l; l++) {
        char name[32];
        uint64_t cycles;

        if (sscanf(*l, "TIMING %31s %" SCNu64, name, &cycles) != 2) {
            continue;
        }
        if (!strcmp(name, "null-exit")) {
            null_exit = cycles;
        }
        g_test_message("round trip %-18s %10" PRIu64 " cycles, %6.2f x a"
                       " null exit (%s)", name, cycles,
                       null_exit ? (double)cycles / null_exit : 0.0,
                       g->m->name);
    }
}

static void run_case(const void *opaque)
{
    const Case *c = opaque;
    const char *why = gmem_host_lacks(c->m->needs);
    g_autofree char *result = NULL;
    g_autofree char *args = NULL;
    g_autofree char *passed = NULL;

    if (why) {
        g_test_skip(why);
        return;
    }
    if (!guest || guest->m != c->m) {
        guest_stop();
        guest = guest_start(c->m);
    }
    if (!strcmp(c->scenario, "hostile")) {
        args = g_strdup_printf(" 0x%" PRIx64 " 0x%" PRIx64 " 0x%" PRIx64,
                               (uint64_t)HOLE_GPA, guest->plain_gpa,
                               guest->dimm_end);
    } else if (!strcmp(c->scenario, "edu-dimm")) {
        args = g_strdup_printf(" 0x%" PRIx64, plug_dimm(guest));
    } else if (!strcmp(c->scenario, "timing")) {
        args = g_strdup(" 200");
        guest->timing = g_string_new(NULL);
    }
    guest_send(guest, "run %s%s", c->scenario, args ?: "");
    for (;;) {
        g_autofree char *line = guest_line(guest, LINE_SECONDS);

        if (g_str_has_prefix(line, "SYNC ")) {
            g_autofree char *wrong = check_sync(guest, line + 5);

            guest_send(guest, "%s%s", wrong ? "fail " : "go", wrong ?: "");
            if (wrong) {
                g_test_message("at %s: %s", line + 5, wrong);
            }
        } else if (g_str_has_prefix(line, "TIMING ")) {
            g_string_append_printf(guest->timing, "%s\n", line);
        } else if (g_str_has_prefix(line, "ok - ") ||
                   g_str_has_prefix(line, "not ok - ")) {
            result = g_steal_pointer(&line);
            break;
        } else if (g_str_has_prefix(line, "Bail out!")) {
            g_error("gmem-guest: %s", line);
        } else {
            g_test_message("guest: %s", line);
        }
    }
    guest_wait_ready(guest, LINE_SECONDS);
    if (guest->timing) {
        report_timing(guest);
        g_string_free(guest->timing, true);
        guest->timing = NULL;
    }
    g_assert_true(vm_running(guest));
    passed = g_strdup_printf("ok - %s", c->scenario);
    g_assert_cmpstr(result, ==, passed);
}

int main(int argc, char **argv)
{
    int ret;

    g_test_init(&argc, &argv, NULL);
    for (size_t i = 0; i < ARRAY_SIZE(machines); i++) {
        const Machine *m = &machines[i];

        if (gmem_lab_runs_it(!gmem_host_lacks(m->needs))) {
            continue;
        }
        for (const char *const *s = m->scenarios; *s; s++) {
            Case *c = g_new0(Case, 1);
            g_autofree char *path = g_strdup_printf(
                "/guest-memfd/guest/%s/%s", m->name, *s);

            c->m = m;
            c->scenario = *s;
            qtest_add_data_func_full(path, c, run_case, g_free);
        }
    }
    ret = g_test_run();
    guest_stop();
    return ret;
}
