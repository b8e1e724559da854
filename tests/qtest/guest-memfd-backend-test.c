/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * qtests of memory-backend-guest-memfd: properties, errors, lifetime, and
 * the memory-API guard on private pages.
 */

#include "qemu/osdep.h"
#include "qemu/units.h"
#include "libqtest.h"
#include "guest-memfd-qtest.h"
#include "qobject/qdict.h"
#include "qobject/qjson.h"
#include "qobject/qlist.h"
#include "qapi/error.h"

#define MODEL "memory-backend-guest-memfd,kernel-model=on"

/* A file in a directory of the test's own, made for it. */
static char *tmp_file(const char *name)
{
    g_autofree char *dir = g_dir_make_tmp("gmem-backend-XXXXXX", NULL);

    g_assert(dir);
    return g_build_filename(dir, name, NULL);
}

static void tmp_file_done(const char *path)
{
    g_autofree char *dir = g_path_get_dirname(path);

    unlink(path);
    rmdir(dir);
}

static void test_help(void)
{
    g_autofree char *out = NULL, *err = NULL;
    int status = gmem_run_qemu("-object memory-backend-guest-memfd,help",
                               &out, &err);

    g_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    g_assert(strstr(out, "pagesize=<size>"));
    g_assert(strstr(out, "4K (default), 2M or 1G"));
    g_assert(strstr(out, "init-shared=<OnOffAuto>"));
    g_assert(strstr(out, "kernel-model=<bool>"));
    g_assert(strstr(out, "user-space model"));
}

/* Without KVM and without kernel-model=on, startup exits with a hint. */
static void test_startup_needs_kvm_or_model(void)
{
    g_autofree char *out = NULL, *err = NULL;
    int status = gmem_run_qemu("-accel qtest -machine q35,memory-backend=mem0"
                               " -object memory-backend-guest-memfd,id=mem0,"
                               "size=128M", &out, &err);

    g_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1);
    g_assert(strstr(err, "guest_memfd needs KVM"));
    g_assert(strstr(err, "kernel-model=on"));
}

typedef struct BadConfig {
    const char *props;      /* JSON members after qom-type and id */
    const char *error;      /* expected part of the error message */
} BadConfig;

static const BadConfig bad_configs[] = {
    { "'size': 134217728", "guest_memfd needs KVM" },
    { "'size': 3145728, 'pagesize': 2097152, 'kernel-model': true",
      "not a multiple of pagesize" },
    { "'size': 134217728, 'pagesize': 8192, 'kernel-model': true",
      "pagesize must be 4K, 2M or 1G" },
    { "'size': 134217728, 'share': false, 'kernel-model': true",
      "share=off is not possible" },
    { "'size': 0, 'kernel-model': true", "doesn't take value '0'" },
    { "'size': 134217728, 'init-shared': 'maybe', 'kernel-model': true",
      "init-shared" },
    { "'size': 134217728, 'x-simulated-pool': true",
      "x-simulated-pool=on needs kernel-model=on" },
    /* Hotplugging more 1 GiB pages than any pool here has: ENOMEM. */
    { "'size': 1099511627776, 'pagesize': 1073741824, 'kernel-model': true",
      "cannot reserve 1024 1G pages" },
};

static const BadConfig hints[] = {
    { "size=3M,pagesize=2M", "is not a multiple of pagesize 0x200000\r\n"
      "Round the size to a multiple of pagesize." },
    { "size=128M,share=off", "always shared with its own mapping\r\n"
      "Drop share=off." },
};

/* object-add with bad options fails, names the problem, leaves nothing. */
static void test_object_add_errors(void)
{
    QTestState *qts = qtest_init("-machine q35 -m 256M");

    for (size_t i = 0; i < ARRAY_SIZE(bad_configs); i++) {
        g_autofree char *json = g_strdup_printf(
            "{'qom-type': 'memory-backend-guest-memfd', 'id': 'bad%zu', %s}",
            i, bad_configs[i].props);
        QObject *args = qobject_from_json(json, &error_abort);
        QDict *resp = qtest_qmp(qts, "{'execute': 'object-add',"
                                " 'arguments': %p}", args);
        QDict *error = qdict_get_qdict(resp, "error");
        g_autofree char *path = g_strdup_printf("/objects/bad%zu", i);
        QDict *get;

        g_assert(error);
        if (!strstr(qdict_get_str(error, "desc"), bad_configs[i].error)) {
            g_error("object-add %s: got \"%s\", expected \"%s\"",
                    bad_configs[i].props, qdict_get_str(error, "desc"),
                    bad_configs[i].error);
        }
        qobject_unref(resp);

        get = qtest_qmp(qts, "{'execute': 'qom-list', 'arguments':"
                        " {'path': %s}}", path);
        g_assert(qdict_haskey(get, "error"));
        qobject_unref(get);
        g_assert_cmpint(gmem_query_count(qts), ==, 0);
    }
    /* HMP (and the command line) also print the remedy, as a hint. */
    for (size_t i = 0; i < ARRAY_SIZE(hints); i++) {
        g_autofree char *out = qtest_hmp(qts, "object_add " MODEL ",id=h,%s",
                                         hints[i].props);

        if (!strstr(out, hints[i].error)) {
            g_error("object_add %s: got \"%s\", expected \"%s\"",
                    hints[i].props, out, hints[i].error);
        }
    }
    qtest_quit(qts);
}

static uint64_t get_u64(QDict *d, const char *key)
{
    return qdict_get_int(d, key);
}

static void check_backend(QTestState *qts, const char *id, uint64_t size,
                          uint64_t page_size, bool shared)
{
    QDict *info = gmem_query_one(qts, id);

    g_assert_cmpuint(get_u64(info, "size"), ==, size);
    g_assert_cmpuint(get_u64(info, "page-size"), ==, page_size);
    g_assert_cmpstr(qdict_get_str(info, "kernel"), ==, "model");
    g_assert_cmpuint(get_u64(info, "folios"), ==, size / page_size);
    g_assert_cmpuint(get_u64(info, "shared"), ==, shared ? size : 0);
    g_assert_cmpuint(get_u64(info, "private"), ==, shared ? 0 : size);
    g_assert(qdict_haskey(info, "pool"));
    qobject_unref(info);
}

/* Guest RAM on the model, at each page size; contents round-trip. */
static void test_machine_ram(const void *opaque)
{
    uint64_t page_size = (uintptr_t)opaque;
    uint64_t size = MAX(page_size, 64 * MiB);
    QTestState *qts = qtest_initf("-machine q35,memory-backend=mem0 -m %"
                                  PRIu64 "M -object " MODEL ",id=mem0,"
                                  "size=%" PRIu64 ",pagesize=%" PRIu64,
                                  size / MiB, size, page_size);
    QDict *prop;

    check_backend(qts, "mem0", size, page_size, true);
    prop = qtest_qmp(qts, "{'execute': 'qom-get', 'arguments':"
                     " {'path': '/objects/mem0', 'property': 'pagesize'}}");
    g_assert_cmpuint(get_u64(prop, "return"), ==, page_size);
    qobject_unref(prop);

    qtest_writeq(qts, 0x100000, 0x1122334455667788ULL);
    qtest_writeq(qts, size - 8, 0xdeadbeefcafef00dULL);
    g_assert_cmphex(qtest_readq(qts, 0x100000), ==, 0x1122334455667788ULL);
    g_assert_cmphex(qtest_readq(qts, size - 8), ==, 0xdeadbeefcafef00dULL);
    qtest_quit(qts);
}

/* init-shared=off: memory starts private and QEMU cannot touch it. */
static void test_init_private(void)
{
    QTestState *qts = qtest_init("-machine q35,memory-backend=mem0 -m 64M"
                                 " -object " MODEL ",id=mem0,size=64M,"
                                 "init-shared=off");

    check_backend(qts, "mem0", 64 * MiB, 4 * KiB, false);
    /* Refused by the memory API: QEMU must live, memory must not change. */
    qtest_writeq(qts, 0x200000, 0x5555aaaa5555aaaaULL);
    qtest_qmp_assert_success(qts, "{'execute': 'x-guest-memfd-convert',"
                             " 'arguments': {'gpa': 2097152, 'size': 4096,"
                             " 'private': false}}");
    g_assert_cmphex(qtest_readq(qts, 0x200000), ==, 0);
    qtest_writeq(qts, 0x200000, 0x0123456789abcdefULL);
    g_assert_cmphex(qtest_readq(qts, 0x200000), ==, 0x0123456789abcdefULL);
    qtest_quit(qts);
}

/*
 * object-del finalizes a backend once the last reference goes, which for
 * guest RAM happens after an RCU grace period.
 */
static void wait_backend_gone(QTestState *qts)
{
    gmem_wait_for(!gmem_query_count(qts) && !gmem_refs(qts),
                  "the deleted backend to close its file");
    g_assert_cmpint(gmem_query_count(qts), ==, 0);
    g_assert_cmpuint(gmem_refs(qts), ==, 0);
}

/*
 * pc-dimm on a guest_memfd backend: plug, use, unplug (the test plays the
 * guest's part of ACPI memory hot-unplug), object-del closes the file.
 */
static void test_pc_dimm(void)
{
    QTestState *qts = qtest_init("-machine q35 -m 256M,slots=2,maxmem=2G");
    QDict *resp;
    uint64_t addr;

    qtest_qmp_assert_success(qts, "{'execute': 'object-add', 'arguments': {"
                             " 'qom-type': 'memory-backend-guest-memfd',"
                             " 'id': 'm1', 'size': 134217728,"
                             " 'kernel-model': true }}");
    addr = gmem_dimm_plug(qts, "d1", "m1");
    qtest_writeq(qts, addr + 0x1000, 0xfeedfacecafebeefULL);
    g_assert_cmphex(qtest_readq(qts, addr + 0x1000), ==,
                    0xfeedfacecafebeefULL);
    qtest_qmp_assert_success(qts, "{'execute': 'x-guest-memfd-convert',"
                             " 'arguments': {'gpa': %" PRIu64 ", 'size':"
                             " 4096, 'private': true}}", addr);

    /* In use: the backend cannot go. */
    resp = qtest_qmp(qts, "{'execute': 'object-del', 'arguments':"
                     " {'id': 'm1'}}");
    g_assert(qdict_haskey(resp, "error"));
    qobject_unref(resp);

    gmem_dimm_unplug(qts, "d1", 0);

    g_assert(gmem_refs(qts));
    qtest_qmp_assert_success(qts, "{'execute': 'object-del', 'arguments':"
                             " {'id': 'm1'}}");
    wait_backend_gone(qts);
    qtest_quit(qts);
}

static uint64_t pool_in_use(QTestState *qts, const char *id)
{
    QDict *info = gmem_query_one(qts, id);
    uint64_t n = qdict_get_int(qdict_get_qdict(info, "pool"), "in-use");

    qobject_unref(info);
    return n;
}

/*
 * system_reset empties guest RAM, and only guest RAM: a backend that is
 * no guest's memory (added, not plugged) keeps its preallocated pages.
 */
static void test_reset_spares_unplugged(void)
{
    QTestState *qts = qtest_init("-machine q35,memory-backend=mem0 -m 64M"
                                 " -object " MODEL ",id=mem0,size=64M");

    qtest_qmp_assert_success(qts, "{'execute': 'object-add', 'arguments': {"
                             " 'qom-type': 'memory-backend-guest-memfd',"
                             " 'id': 'spare', 'size': 8388608, 'pagesize':"
                             " 2097152, 'prealloc': true, 'kernel-model':"
                             " true, 'x-simulated-pool': true}}");
    g_assert_cmpuint(pool_in_use(qts, "spare"), ==, 4);
    qtest_writeq(qts, 0x100000, 0x1122334455667788ULL);
    g_assert_cmpuint(pool_in_use(qts, "mem0"), >, 0);

    qtest_system_reset(qts);
    g_assert_cmpuint(pool_in_use(qts, "spare"), ==, 4);
    g_assert_cmpuint(pool_in_use(qts, "mem0"), ==, 0);
    qtest_quit(qts);
}

/*
 * prealloc=on on a live backend whose pages are private allocates its
 * folios the way creation does (the kernel's fallocate), instead of
 * touching pages QEMU cannot touch.
 */
static void test_prealloc_later(void)
{
    QTestState *qts = qtest_init("-machine q35 -m 64M");

    qtest_qmp_assert_success(qts, "{'execute': 'object-add', 'arguments': {"
                             " 'qom-type': 'memory-backend-guest-memfd',"
                             " 'id': 'm1', 'size': 8388608, 'pagesize':"
                             " 2097152, 'init-shared': 'off',"
                             " 'kernel-model': true, 'x-simulated-pool':"
                             " true}}");
    g_assert_cmpuint(pool_in_use(qts, "m1"), ==, 0);
    qtest_qmp_assert_success(qts, "{'execute': 'qom-set', 'arguments':"
                             " {'path': '/objects/m1', 'property':"
                             " 'prealloc', 'value': true}}");
    g_assert_cmpuint(pool_in_use(qts, "m1"), ==, 4);
    qtest_quit(qts);
}

/* A backend that is not guest RAM yet can be added and deleted again. */
static void test_object_add_del(void)
{
    QTestState *qts = qtest_init("-machine q35 -m 256M");

    qtest_qmp_assert_success(qts, "{'execute': 'object-add', 'arguments': {"
                             " 'qom-type': 'memory-backend-guest-memfd',"
                             " 'id': 'm1', 'size': 4194304, 'pagesize':"
                             " 2097152, 'kernel-model': true }}");
    check_backend(qts, "m1", 4 * MiB, 2 * MiB, true);
    g_assert(gmem_refs(qts));
    qtest_qmp_assert_success(qts, "{'execute': 'object-del', 'arguments':"
                             " {'id': 'm1'}}");
    wait_backend_gone(qts);
    qtest_quit(qts);
}

/* A NUMA node's memory can be a guest_memfd backend. */
static void test_numa_memdev(void)
{
    QTestState *qts = qtest_init("-machine q35 -m 128M"
                                 " -object " MODEL ",id=n0,size=64M"
                                 " -object memory-backend-ram,id=n1,size=64M"
                                 " -numa node,nodeid=0,memdev=n0"
                                 " -numa node,nodeid=1,memdev=n1");
    g_autofree char *numa = qtest_hmp(qts, "info numa");

    g_assert(strstr(numa, "node 0 size: 64 MB"));
    check_backend(qts, "n0", 64 * MiB, 4 * KiB, true);
    qtest_writeq(qts, 0x1000000, 42);
    g_assert_cmpuint(qtest_readq(qts, 0x1000000), ==, 42);
    qtest_quit(qts);
}

/* info guest-memfd prints what query-guest-memfd returns. */
static void test_hmp(void)
{
    QTestState *qts = qtest_init("-machine q35,memory-backend=mem0 -m 64M"
                                 " -object " MODEL ",id=mem0,size=64M");
    g_autofree char *out = NULL;

    qtest_qmp_assert_success(qts, "{'execute': 'x-guest-memfd-convert',"
                             " 'arguments': {'gpa': 0, 'size': 8192,"
                             " 'private': true}}");
    out = qtest_hmp(qts, "info guest-memfd");
    g_assert(strstr(out, "mem0: 64 MiB in 4 KiB pages (model;"));
    g_assert(strstr(out, ", private 8 KiB"));
    g_assert(strstr(out, "to-private 1, failed 0"));
    qtest_quit(qts);
}

/*
 * Monitor commands that read guest memory refuse a private page and say
 * so, instead of reporting success with bytes they never read: QMP
 * pmemsave and memsave, HMP xp.  The shared page beside it reads.
 */
static void test_monitor_reads(void)
{
    QTestState *qts = qtest_init("-machine q35,memory-backend=mem0 -m 64M"
                                 " -object " MODEL ",id=mem0,size=64M");
    g_autofree char *path = tmp_file("gmem-pmemsave");
    g_autofree char *out = NULL;
    const uint64_t gpa = 0x200000;
    QDict *resp;

    qtest_writeq(qts, gpa, 0x1122334455667788ULL);
    qtest_qmp_assert_success(qts, "{'execute': 'x-guest-memfd-convert',"
                             " 'arguments': {'gpa': %" PRIu64 ", 'size':"
                             " 4096, 'private': true}}", gpa + 4096);

    qtest_qmp_assert_success(qts, "{'execute': 'pmemsave', 'arguments':"
                             " {'val': %" PRIu64 ", 'size': 4096,"
                             " 'filename': %s}}", gpa, path);
    resp = qtest_qmp(qts, "{'execute': 'pmemsave', 'arguments':"
                     " {'val': %" PRIu64 ", 'size': 8192, 'filename': %s}}",
                     gpa, path);
    g_assert(strstr(qdict_get_str(qdict_get_qdict(resp, "error"), "desc"),
                    "cannot read guest memory at 0x201000"));
    qobject_unref(resp);
    /* Real mode: virtual addresses are physical. */
    resp = qtest_qmp(qts, "{'execute': 'memsave', 'arguments':"
                     " {'val': %" PRIu64 ", 'size': 4096, 'filename': %s}}",
                     gpa + 4096, path);
    g_assert(qdict_haskey(resp, "error"));
    qobject_unref(resp);

    out = qtest_hmp(qts, "xp /1gx 0x200000");
    g_assert(strstr(out, "1122334455667788"));
    g_free(out);
    out = qtest_hmp(qts, "xp /1gx 0x201000");
    g_assert(strstr(out, "Cannot access memory"));
    tmp_file_done(path);
    qtest_quit(qts);
}

/*
 * virtio-mem manages its memdev's discards itself; a guest_memfd backend
 * does already: device_add is refused with the reason, and the VM runs on.
 */
static void test_virtio_mem_refused(void)
{
    QTestState *qts = qtest_init("-machine q35 -m 256M,maxmem=2G"
                                 " -device pcie-root-port,id=rp0,slot=1");
    QDict *resp;

    qtest_qmp_assert_success(qts, "{'execute': 'object-add', 'arguments': {"
                             " 'qom-type': 'memory-backend-guest-memfd',"
                             " 'id': 'vm0', 'size': 134217728,"
                             " 'kernel-model': true }}");
    resp = qtest_qmp(qts, "{'execute': 'device_add', 'arguments':"
                     " {'driver': 'virtio-mem-pci', 'id': 'vmem0',"
                     " 'bus': 'rp0', 'memdev': 'vm0'}}");
    g_assert(strstr(qdict_get_str(qdict_get_qdict(resp, "error"), "desc"),
                    "another RamDiscardManager manages already"));
    qobject_unref(resp);
    resp = qtest_qmp(qts, "{'execute': 'query-status'}");
    g_assert(qdict_haskey(resp, "return"));
    qobject_unref(resp);
    qtest_qmp_assert_success(qts, "{'execute': 'object-del', 'arguments':"
                             " {'id': 'vm0'}}");
    qtest_quit(qts);
}

static const char *migrate_to_file(QTestState *qts, const char *path)
{
    g_autofree char *uri = g_strdup_printf("file:%s", path);
    QDict *resp = qtest_qmp(qts, "{'execute': 'migrate', 'arguments':"
                            " {'uri': %s}}", uri);
    static char desc[256];

    desc[0] = 0;
    if (qdict_haskey(resp, "error")) {
        g_strlcpy(desc, qdict_get_str(qdict_get_qdict(resp, "error"), "desc"),
                  sizeof(desc));
    }
    qobject_unref(resp);
    return desc;
}

/* Private pages block migration; shared-only memory migrates like RAM. */
static void test_migration(void)
{
    g_autofree char *path = tmp_file("gmem-mig.bin");
    QTestState *qts = qtest_init("-machine q35,memory-backend=mem0 -m 64M"
                                 " -object " MODEL ",id=mem0,size=64M");
    const char *refused;
    QDict *resp;

    qtest_qmp_assert_success(qts, "{'execute': 'x-guest-memfd-convert',"
                             " 'arguments': {'gpa': 1048576, 'size': 4096,"
                             " 'private': true}}");
    g_assert(strstr(migrate_to_file(qts, path),
                    "guest_memfd mem0 holds private pages"));

    qtest_qmp_assert_success(qts, "{'execute': 'x-guest-memfd-convert',"
                             " 'arguments': {'gpa': 1048576, 'size': 4096,"
                             " 'private': false}}");
    /* The blocker goes in the main loop, right after the conversion. */
    gmem_wait_for(!*(refused = migrate_to_file(qts, path)),
                  "the migration blocker to go");
    g_assert_cmpstr(refused, ==, "");
    do {
        g_usleep(20000);
        resp = qtest_qmp(qts, "{'execute': 'query-migrate'}");
        if (!strcmp(qdict_get_str(qdict_get_qdict(resp, "return"), "status"),
                    "completed")) {
            qobject_unref(resp);
            break;
        }
        g_assert_cmpstr(qdict_get_str(qdict_get_qdict(resp, "return"),
                                      "status"), !=, "failed");
        qobject_unref(resp);
    } while (true);
    qtest_quit(qts);
    tmp_file_done(path);
}

/*
 * dump-guest-memory reads guest RAM through QEMU's mapping; it must skip
 * private pages (which the model makes inaccessible there, as the kernel
 * would) instead of crashing QEMU.
 */
static void test_dump_skips_private(void)
{
    g_autofree char *path = tmp_file("gmem-dump.elf");
    g_autofree char *proto = g_strdup_printf("file:%s", path);
    QTestState *qts = qtest_init("-machine q35,memory-backend=mem0 -m 64M"
                                 " -object " MODEL ",id=mem0,size=64M");
    QDict *resp, *ret;
    uint64_t total_all, total_shared;

    qtest_qmp_assert_success(qts, "{'execute': 'dump-guest-memory',"
                             " 'arguments': {'paging': false, 'protocol': %s,"
                             " 'detach': false}}", proto);
    resp = qtest_qmp(qts, "{'execute': 'query-dump'}");
    total_all = qdict_get_int(qdict_get_qdict(resp, "return"), "total");
    qobject_unref(resp);

    qtest_qmp_assert_success(qts, "{'execute': 'x-guest-memfd-convert',"
                             " 'arguments': {'gpa': 1048576, 'size': 1048576,"
                             " 'private': true}}");
    /* QEMU writes dumps read-only: only root could overwrite this one. */
    unlink(path);
    qtest_qmp_assert_success(qts, "{'execute': 'dump-guest-memory',"
                             " 'arguments': {'paging': false, 'protocol': %s,"
                             " 'detach': false}}", proto);
    resp = qtest_qmp(qts, "{'execute': 'query-dump'}");
    ret = qdict_get_qdict(resp, "return");
    g_assert_cmpstr(qdict_get_str(ret, "status"), ==, "completed");
    total_shared = qdict_get_int(ret, "total");
    qobject_unref(resp);
    g_assert_cmpuint(total_all - total_shared, ==, 1 * MiB);
    qtest_quit(qts);
    tmp_file_done(path);
}

/*
 * -accel kvm on this host's kernel: it runs on the guest_memfd where KVM
 * offers one QEMU can map; elsewhere startup is refused with the remedy.
 */
static void test_kvm(void)
{
    const char *args = "-accel kvm -machine q35,memory-backend=mem0 -m 512M"
                       " -object memory-backend-guest-memfd,id=mem0,"
                       "size=512M";
    const char *why = gmem_host_lacks(GMEM_NEEDS_KVM);
    QTestState *qts;
    QDict *info;

    if (why) {
        g_test_skip(why);
        return;
    }
    if (gmem_host_lacks(GMEM_NEEDS_KVM_GMEM)) {
        g_autofree char *out = NULL, *err = NULL;
        int status = gmem_run_qemu(args, &out, &err);

        g_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1);
        if (!strstr(err, "this kernel has no mmap-able guest_memfd") ||
            !strstr(err, "Add kernel-model=on")) {
            g_error("expected the refusal with its remedy, got \"%s\"", err);
        }
        return;
    }
    qts = qtest_init(args);
    info = gmem_query_one(qts, "mem0");
    g_assert_cmpstr(qdict_get_str(info, "kernel"), ==, "kvm");
    qobject_unref(info);
    qtest_quit(qts);
}

int main(int argc, char **argv)
{
    static const uint64_t sizes[] = { 4 * KiB, 2 * MiB, 1 * GiB };
    static const char *const names[] = { "4K", "2M", "1G" };

    g_test_init(&argc, &argv, NULL);
    qtest_add_func("/guest-memfd/backend/help", test_help);
    qtest_add_func("/guest-memfd/backend/startup-needs-kvm-or-model",
                   test_startup_needs_kvm_or_model);
    qtest_add_func("/guest-memfd/backend/object-add-errors",
                   test_object_add_errors);
    for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
        g_autofree char *name = g_strdup_printf(
            "/guest-memfd/backend/machine-ram/%s", names[i]);
        qtest_add_data_func(name, (void *)(uintptr_t)sizes[i],
                            test_machine_ram);
    }
    qtest_add_func("/guest-memfd/backend/init-private", test_init_private);
    qtest_add_func("/guest-memfd/backend/object-add-del", test_object_add_del);
    qtest_add_func("/guest-memfd/backend/prealloc-later", test_prealloc_later);
    qtest_add_func("/guest-memfd/backend/reset-spares-unplugged",
                   test_reset_spares_unplugged);
    qtest_add_func("/guest-memfd/backend/numa-memdev", test_numa_memdev);
    qtest_add_func("/guest-memfd/backend/pc-dimm", test_pc_dimm);
    qtest_add_func("/guest-memfd/backend/hmp", test_hmp);
    qtest_add_func("/guest-memfd/backend/monitor-reads",
                   test_monitor_reads);
    qtest_add_func("/guest-memfd/backend/virtio-mem-refused",
                   test_virtio_mem_refused);
    qtest_add_func("/guest-memfd/backend/migration", test_migration);
    qtest_add_func("/guest-memfd/backend/dump-skips-private",
                   test_dump_skips_private);
    /* Where the lab runs it, it runs on a KVM with guest_memfd there. */
    if (!gmem_lab_runs_it(!gmem_host_lacks(GMEM_NEEDS_KVM_GMEM))) {
        qtest_add_func("/guest-memfd/backend/kvm", test_kvm);
    }
    return g_test_run();
}
