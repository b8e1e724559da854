/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Device assignment on guest_memfd memory: VFIO maps every shared page,
 * in as few DMA mappings as the page state allows, and drops a page
 * before it turns private.
 *
 * The guest's shared memory reaches VFIO through the backend's
 * RamDiscardManager in units (guest-memfd-rdm.c): runs of shared pages
 * cut at 2 MiB boundaries, one type1 DMA mapping each, where it used to
 * be one per 4 KiB page (65535 mappings, type1's default limit, covered
 * 256 MiB).  These cases need a KVM and a device bound to vfio-pci: the
 * lab's vfio host (tests/lab/run) gives its L1 an emulated VT-d and QEMU's
 * edu device.
 */

#include "qemu/osdep.h"
#include "qemu/units.h"
#include "guest-memfd-qtest.h"

#define UNIT        (2 * MiB)
/* Sections of q35's RAM the VGA and ROM windows cut: a few more units. */
#define EDGES       8

/*
 * Stopped (-S): the firmware would change the memory map under the counts
 * (q35's TSEG below 2 GiB, the PAM windows), while VFIO maps at startup.
 */
static QTestState *vfio_start(const char *ram_size, const char *backend)
{
    return qtest_initf("-accel kvm -machine q35,memory-backend=mem0 -m %s"
                       " -object %s,id=mem0,size=%s -nodefaults -S"
                       " -device vfio-pci,host=%s", ram_size, backend,
                       ram_size, gmem_host_vfio_device());
}

static uint64_t mem0(QTestState *qts, const char *key)
{
    QDict *info = gmem_query_one(qts, "mem0");
    uint64_t v = qdict_get_int(info, key);

    qobject_unref(info);
    return v;
}

static void convert(QTestState *qts, uint64_t gpa, uint64_t size,
                    bool private)
{
    qtest_qmp_assert_success(qts, "{'execute': 'x-guest-memfd-convert',"
                             " 'arguments': {'gpa': %" PRIu64 ", 'size': %"
                             PRIu64 ", 'private': %i}}", gpa, size, private);
}

/*
 * All shared: about one mapping per 2 MiB, where 4 KiB ones ran out of
 * type1's 65535 at 256 MiB and left the device with none.
 */
static void test_all_shared(const void *opaque)
{
    const char *size = opaque;
    QTestState *qts = vfio_start(size, "memory-backend-guest-memfd");
    uint64_t bytes = mem0(qts, "size");
    uint64_t n = mem0(qts, "dma-mappings");

    g_test_message("%s all shared: %" PRIu64 " DMA mappings", size, n);
    g_assert_cmpuint(n, >=, bytes / UNIT);
    g_assert_cmpuint(n, <=, bytes / UNIT + EDGES);
    qtest_quit(qts);
}

/*
 * The kernel model under KVM, 1 GiB folios: private pages scattered over
 * a shared GiB split their units; each split drops one mapping and maps
 * at most two; back to shared, a page is a mapping of its own.
 */
static void test_model_scattered(void)
{
    QTestState *qts = vfio_start("2G", "memory-backend-guest-memfd,"
                                 "pagesize=1G,kernel-model=on,"
                                 "x-simulated-pool=on");
    /* 64 pages, each inside a different unit, none at its edge. */
    const uint64_t base = 1 * GiB + 64 * KiB, stride = 15 * MiB + 20 * KiB;
    uint64_t n0 = mem0(qts, "dma-mappings");

    for (unsigned i = 0; i < 64; i++) {
        convert(qts, base + i * stride, 4 * KiB, true);
    }
    /* Each private page cut its unit in two. */
    g_assert_cmpuint(mem0(qts, "dma-mappings"), ==, n0 + 64);
    g_assert_cmpuint(mem0(qts, "dma-remaps"), ==, 64);
    g_test_message("64 scattered private pages: %" PRIu64 " DMA mappings,"
                   " longest remap %" PRIu64 " us",
                   mem0(qts, "dma-mappings"),
                   mem0(qts, "dma-remap-max-ns") / 1000);

    for (unsigned i = 0; i < 64; i++) {
        convert(qts, base + i * stride, 4 * KiB, false);
    }
    g_assert_cmpuint(mem0(qts, "dma-mappings"), ==, n0 + 128);

    /* The whole folio private: every one of its mappings goes. */
    convert(qts, 1 * GiB, 1 * GiB, true);
    g_assert_cmpuint(mem0(qts, "private"), ==, 1 * GiB);
    g_assert_cmpuint(mem0(qts, "dma-mappings"), <=, 1 * GiB / UNIT + EDGES);
    convert(qts, 1 * GiB, 1 * GiB, false);
    g_assert_cmpuint(mem0(qts, "dma-mappings"), <=,
                     2 * GiB / UNIT + EDGES);
    qtest_quit(qts);
}

/* Memory that starts private is mapped as it becomes shared. */
static void test_model_init_private(void)
{
    QTestState *qts = vfio_start("1G", "memory-backend-guest-memfd,"
                                 "kernel-model=on,init-shared=off");

    g_assert_cmpuint(mem0(qts, "dma-mappings"), ==, 0);
    convert(qts, 256 * MiB, 256 * MiB, false);
    g_assert_cmpuint(mem0(qts, "dma-mappings"), ==, 256 * MiB / UNIT);
    convert(qts, 256 * MiB, 256 * MiB, true);
    g_assert_cmpuint(mem0(qts, "dma-mappings"), ==, 0);
    qtest_quit(qts);
}

#define DMA_LIMIT "/sys/module/vfio_iommu_type1/parameters/dma_entry_limit"

/* Write a sysfs parameter in place (g_file_set_contents renames). */
static bool param_set(const char *path, const char *value)
{
    int fd = open(path, O_WRONLY | O_TRUNC);
    bool ok = fd >= 0 && write(fd, value, strlen(value)) == strlen(value);

    if (fd >= 0) {
        close(fd);
    }
    return ok;
}

/*
 * A container that cannot map the shared memory fails the device, at
 * startup and on device_add, with the numbers and the remedies.  type1's
 * limit is lowered to 100 mappings; 1 GiB all shared needs 513.
 */
static void test_over_the_limit(void)
{
    g_autofree char *saved = NULL, *args = NULL, *out = NULL, *err = NULL;
    QTestState *qts;
    QDict *resp;
    int status;

    if (!g_file_get_contents(DMA_LIMIT, &saved, NULL, NULL) ||
        !param_set(DMA_LIMIT, "100")) {
        g_test_skip("cannot lower vfio_iommu_type1's limit (" DMA_LIMIT ")");
        return;
    }
    args = g_strdup_printf("-accel kvm -machine q35,memory-backend=mem0"
                           " -m 1G -object memory-backend-guest-memfd,"
                           "id=mem0,size=1G -S -device vfio-pci,host=%s",
                           gmem_host_vfio_device());
    status = gmem_run_qemu(args, &out, &err);
    g_test_message("QEMU said: %s", err);
    g_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1);
    g_assert(strstr(err, "cannot DMA-map"));
    g_assert(strstr(err, "holds at most 100 DMA mappings"));
    g_assert(strstr(err, "ulimit -l"));

    /* device_add: refused, and QEMU goes on without it. */
    qts = qtest_init("-accel kvm -machine q35,memory-backend=mem0 -m 1G"
                     " -object memory-backend-guest-memfd,id=mem0,size=1G"
                     " -nodefaults -S -device pcie-root-port,id=rp0");
    resp = qtest_qmp(qts, "{'execute': 'device_add', 'arguments':"
                     " {'driver': 'vfio-pci', 'host': %s, 'bus': 'rp0'}}",
                     gmem_host_vfio_device());
    g_assert(qdict_haskey(resp, "error"));
    g_test_message("device_add: %s",
                   qdict_get_str(qdict_get_qdict(resp, "error"), "desc"));
    g_assert(strstr(qdict_get_str(qdict_get_qdict(resp, "error"), "desc"),
                    "cannot DMA-map"));
    qobject_unref(resp);
    g_assert_cmpuint(mem0(qts, "dma-mappings"), ==, 0);
    qtest_quit(qts);
    g_assert(param_set(DMA_LIMIT, saved));
}

typedef struct VfioCase {
    const char *name;
    GTestDataFunc fn;
    const void *data;
    unsigned needs;
} VfioCase;

static void test_all_shared_model(const void *opaque)
{
    QTestState *qts = vfio_start(opaque, "memory-backend-guest-memfd,"
                                 "pagesize=1G,kernel-model=on,"
                                 "x-simulated-pool=on");
    uint64_t n = mem0(qts, "dma-mappings");

    g_assert_cmpuint(n, >=, mem0(qts, "size") / UNIT);
    g_assert_cmpuint(n, <=, mem0(qts, "size") / UNIT + EDGES);
    qtest_quit(qts);
}

static void run_vfio(const void *opaque)
{
    const VfioCase *c = opaque;
    const char *why = gmem_host_lacks(c->needs | GMEM_NEEDS_KVM_RUNS |
                                      GMEM_NEEDS_VFIO_DEVICE);

    if (why) {
        g_test_skip(why);
        return;
    }
    c->fn(c->data);
}

static void run_void(const void *opaque)
{
    ((void (*)(void))opaque)();
}

int main(int argc, char **argv)
{
    static const VfioCase cases[] = {
        { "kvm/1G-all-shared", test_all_shared, "1G", GMEM_NEEDS_KVM_GMEM },
        { "kvm/4G-all-shared", test_all_shared, "4G", GMEM_NEEDS_KVM_GMEM },
        { "model/2G-all-shared", test_all_shared_model, "2G", 0 },
        { "model/scattered", run_void, test_model_scattered, 0 },
        { "model/init-private", run_void, test_model_init_private, 0 },
        { "kvm/over-the-limit", run_void, test_over_the_limit,
          GMEM_NEEDS_KVM_GMEM | GMEM_NEEDS_ROOT },
    };

    g_test_init(&argc, &argv, NULL);
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        g_autofree char *path = g_strdup_printf("/guest-memfd/vfio/%s",
                                                cases[i].name);
        unsigned needs = cases[i].needs | GMEM_NEEDS_KVM_RUNS |
                         GMEM_NEEDS_VFIO_DEVICE;

        if (!gmem_lab_runs_it(!gmem_host_lacks(needs))) {
            qtest_add_data_func(path, &cases[i], run_vfio);
        }
    }
    return g_test_run();
}
