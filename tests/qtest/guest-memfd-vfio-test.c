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
    return gmem_query_u64(qts, "mem0", key);
}

static void convert(QTestState *qts, uint64_t gpa, uint64_t size,
                    bool private)
{
    qtest_qmp_assert_success(qts, "{'execute': 'x-guest-memfd-convert',"
                             " 'arguments': {'gpa': %" PRIu64 ", 'size': %"
                             PRIu64 ", 'private': %i}}", gpa, size, private);
}

/*
 * Make SCATTERED pages from @base on @private, each inside a different
 * 2 MiB unit and at none's edge.
 */
#define SCATTERED   64
static void convert_scattered(QTestState *qts, uint64_t base, bool private)
{
    for (unsigned i = 0; i < SCATTERED; i++) {
        convert(qts, base + i * (15 * MiB + 20 * KiB), 4 * KiB, private);
    }
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
    const uint64_t base = 1 * GiB + 64 * KiB;
    uint64_t n0 = mem0(qts, "dma-mappings");

    /* All shared to begin with: one mapping per 2 MiB. */
    g_assert_cmpuint(n0, >=, 2 * GiB / UNIT);
    g_assert_cmpuint(n0, <=, 2 * GiB / UNIT + EDGES);
    convert_scattered(qts, base, true);
    /* Each private page cut its unit in two. */
    g_assert_cmpuint(mem0(qts, "dma-mappings"), ==, n0 + SCATTERED);
    g_assert_cmpuint(mem0(qts, "dma-remaps"), ==, SCATTERED);
    g_test_message("64 scattered private pages: %" PRIu64 " DMA mappings,"
                   " longest remap %" PRIu64 " us",
                   mem0(qts, "dma-mappings"),
                   mem0(qts, "dma-remap-max-ns") / 1000);

    convert_scattered(qts, base, false);
    g_assert_cmpuint(mem0(qts, "dma-mappings"), ==, n0 + 2 * SCATTERED);

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

/* Sections VFIO mapped directly (plain RAM, ROMs), from its trace. */
static uint64_t sections_mapped(const char *log)
{
    g_autofree char *text = NULL;
    uint64_t n = 0;

    g_assert(g_file_get_contents(log, &text, NULL, NULL));
    for (char *p = text; (p = strstr(p, "region_add [ram]")); p++) {
        n++;
    }
    return n;
}

/*
 * Half of memory private, at random: in each 2 MiB block but the first
 * (the firmware's), one 1 MiB run at a random 4 KiB-aligned place.  What
 * stays shared is at most two pieces per block.  q35 puts RAM past 2 GiB
 * (of a guest that has more than 2.75 GiB) at 4 GiB.
 */
static void make_half_private(QTestState *qts, uint64_t bytes)
{
    const uint64_t low = bytes > 2816 * MiB ? 2 * GiB : bytes;
    GRand *rand = g_rand_new_with_seed(42);

    for (uint64_t block = UNIT; block < bytes; block += UNIT) {
        uint64_t at = block + g_rand_int_range(rand, 0, UNIT / 2 / (4 * KiB)) *
                      (4 * KiB);

        convert(qts, at < low ? at : at - low + 4 * GiB, UNIT / 2, true);
    }
    g_rand_free(rand);
    g_assert_cmpuint(mem0(qts, "private"), ==, (bytes - UNIT) / 2);
}

/*
 * How many DMA mappings a guest costs: plain RAM beside guest_memfd all
 * shared and half private (the kernel model: mainline cannot convert in
 * place), at 1 and 4 GiB.  Printed as a table (docs/system/guest-memfd.rst
 * shows it); the goals are asserted.
 */
static void test_mapping_counts(void)
{
    static const struct {
        const char *name;
        uint64_t bytes;
    } sizes[] = { { "1G", 1 * GiB }, { "4G", 4 * GiB } };
    static const struct {
        const char *name;
        const char *backend;
        bool half_private;
    } guests[] = {
        { "plain RAM", "memory-backend-ram", false },
        { "guest_memfd, all shared", "memory-backend-guest-memfd", false },
        { "guest_memfd, half private", "memory-backend-guest-memfd,"
          "kernel-model=on,pagesize=1G,x-simulated-pool=on", true },
    };
    g_autofree char *dir = g_dir_make_tmp("gmem-vfio-XXXXXX", NULL);
    g_autofree char *log = g_build_filename(dir, "trace", NULL);
    GString *table = g_string_new("DMA mappings of one VFIO container:\n");

    g_string_append_printf(table, "  %-28s %8s %8s\n", "guest",
                           sizes[0].name, sizes[1].name);
    for (size_t i = 0; i < ARRAY_SIZE(guests); i++) {
        g_string_append_printf(table, "  %-28s", guests[i].name);
        for (size_t j = 0; j < ARRAY_SIZE(sizes); j++) {
            bool gmem = i > 0;
            QTestState *qts = qtest_initf(
                "-accel kvm -machine q35,memory-backend=mem0 -m %s"
                " -object %s,id=mem0,size=%s -nodefaults -S"
                " -device pcie-root-port,id=rp0"
                " -trace vfio_listener_region_add_ram -D %s",
                sizes[j].name, guests[i].backend, sizes[j].name, log);
            uint64_t bytes = sizes[j].bytes, n = 0;

            /* Converted first: the count, not the remaps, is the point. */
            if (guests[i].half_private) {
                make_half_private(qts, bytes);
            }
            qtest_qmp_assert_success(qts, "{'execute': 'device_add',"
                                     " 'arguments': {'driver': 'vfio-pci',"
                                     " 'host': %s, 'bus': 'rp0'}}",
                                     gmem_host_vfio_device());
            if (gmem) {
                /*
                 * Goals: 1 per 2 MiB all shared (where 4 KiB mappings ran
                 * out of type1's 65535 at 256 MiB and left the device
                 * with none), at most 2 half private.
                 */
                n = mem0(qts, "dma-mappings");
                g_assert_cmpuint(n, >=, bytes / UNIT / 2);
                g_assert_cmpuint(n, <=, (guests[i].half_private ? 2 : 1) *
                                 bytes / UNIT + EDGES);
            }
            qtest_quit(qts);
            /* The whole container: mem0's and what VFIO mapped itself. */
            n += sections_mapped(log);
            g_string_append_printf(table, " %8" PRIu64, n);
            unlink(log);
        }
        g_string_append_c(table, '\n');
    }
    g_test_message("%s", table->str);
    g_string_free(table, true);
    rmdir(dir);
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
 * Lower type1's limit for the containers created from now on, keeping the
 * old value in *@saved; false (the case skips) where it cannot be.
 */
static bool dma_limit_lower(const char *limit, char **saved)
{
    if (!g_file_get_contents(DMA_LIMIT, saved, NULL, NULL) ||
        !param_set(DMA_LIMIT, limit)) {
        g_test_skip("cannot lower vfio_iommu_type1's limit (" DMA_LIMIT ")");
        return false;
    }
    return true;
}

/*
 * A container that cannot map the shared memory fails the device, at
 * startup and on device_add, with the numbers and the remedies.  type1's
 * limit is lowered to 100 mappings; 1 GiB all shared needs 513.
 */
static void test_over_the_limit(void)
{
    g_autofree char *saved = NULL, *args = NULL, *out = NULL, *err = NULL;
    g_autofree char *refusal = NULL;
    uint64_t mappings;
    QTestState *qts;
    QDict *resp;
    int status;

    if (!dma_limit_lower("100", &saved)) {
        return;
    }
    args = g_strdup_printf("-accel kvm -machine q35,memory-backend=mem0"
                           " -m 1G -object memory-backend-guest-memfd,"
                           "id=mem0,size=1G -S -device vfio-pci,host=%s",
                           gmem_host_vfio_device());
    status = gmem_run_qemu(args, &out, &err);

    /* device_add: refused, and QEMU goes on without it. */
    qts = qtest_init("-accel kvm -machine q35,memory-backend=mem0 -m 1G"
                     " -object memory-backend-guest-memfd,id=mem0,size=1G"
                     " -nodefaults -S -device pcie-root-port,id=rp0");
    resp = qtest_qmp(qts, "{'execute': 'device_add', 'arguments':"
                     " {'driver': 'vfio-pci', 'host': %s, 'bus': 'rp0'}}",
                     gmem_host_vfio_device());
    if (qdict_haskey(resp, "error")) {
        refusal = g_strdup(qdict_get_str(qdict_get_qdict(resp, "error"),
                                         "desc"));
    }
    qobject_unref(resp);
    mappings = mem0(qts, "dma-mappings");
    qtest_quit(qts);
    /* Back before any check can fail: the next test needs the default. */
    g_assert(param_set(DMA_LIMIT, saved));

    g_test_message("QEMU said: %s", err);
    g_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1);
    g_assert(strstr(err, "cannot DMA-map"));
    g_assert(strstr(err, "holds at most 100 DMA mappings"));
    g_assert(strstr(err, "ulimit -l"));
    g_test_message("device_add: %s", refusal);
    g_assert(refusal && strstr(refusal, "cannot DMA-map"));
    g_assert_cmpuint(mappings, ==, 0);
}

/*
 * A guest that scatters private pages runs its container out of
 * mappings: each private page inside a unit costs one more.  The pieces
 * that cannot be mapped are counted (dma-refused), the guest's requests
 * still succeed and the VM goes on.  type1's limit is lowered to 530;
 * 1 GiB all shared takes 513 and the firmware's sections a few.
 */
static void test_model_refused(void)
{
    g_autofree char *saved = NULL;
    uint64_t private, mappings, refused, refused0;
    QTestState *qts;

    if (!dma_limit_lower("530", &saved)) {
        return;
    }
    qts = vfio_start("1G", "memory-backend-guest-memfd,kernel-model=on");
    /* The limit holds for new containers only: back at once. */
    g_assert(param_set(DMA_LIMIT, saved));
    refused0 = mem0(qts, "dma-refused");
    convert_scattered(qts, 16 * MiB + 64 * KiB, true);
    private = mem0(qts, "private");
    mappings = mem0(qts, "dma-mappings");
    refused = mem0(qts, "dma-refused");
    qtest_quit(qts);
    g_test_message("64 scattered private pages under a limit of 530:"
                   " %" PRIu64 " pieces handed out, %" PRIu64 " refused",
                   mappings, refused);
    g_assert_cmpuint(refused0, ==, 0);
    g_assert_cmpuint(private, ==, SCATTERED * 4 * KiB);
    g_assert_cmpuint(refused, >, 0);
    g_assert_cmpuint(mappings - refused, <=, 530);
}

typedef struct VfioCase {
    const char *name;
    void (*fn)(void);
    unsigned needs;             /* GmemHostNeed, besides a VFIO device */
} VfioCase;

static void run_vfio(const void *opaque)
{
    const VfioCase *c = opaque;
    const char *why = gmem_host_lacks(c->needs | GMEM_NEEDS_KVM_RUNS |
                                      GMEM_NEEDS_VFIO_DEVICE);

    if (why) {
        g_test_skip(why);
        return;
    }
    c->fn();
}

int main(int argc, char **argv)
{
    static const VfioCase cases[] = {
        { "model/scattered", test_model_scattered, 0 },
        { "model/init-private", test_model_init_private, 0 },
        { "model/refused", test_model_refused, GMEM_NEEDS_ROOT },
        { "kvm/mapping-counts", test_mapping_counts, GMEM_NEEDS_KVM_GMEM },
        { "kvm/over-the-limit", test_over_the_limit,
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
