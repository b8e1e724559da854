/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * memory-backend-guest-memfd on a real KVM: the guest runs on the
 * backend's guest_memfd, bound into its memslots in place.
 *
 * Each case says what it needs of the host (guest-memfd-host.h): most need
 * KVM with guest_memfd that QEMU can map (Linux 6.18+), which few hosts
 * have yet; make check runs those in the lab (tests/lab/run), in a Linux
 * guest that has one.  The refusals run on any KVM.
 */

#include "qemu/osdep.h"
#include "qemu/units.h"
#include "qapi/error.h"
#include "qobject/qjson.h"
#include "guest-memfd-qtest.h"

/* KVM_MEM_GUEST_MEMFD */
#define MEMSLOT_GUEST_MEMFD 0x4

typedef struct Memslot {
    unsigned as, slot;
    uint32_t flags;
    uint64_t gpa, size, ua, offset;
    int ret;
} Memslot;

/* Every kvm_set_user_memory trace line of @log (size 0: a removal). */
static GArray *memslots_from_trace(const char *log)
{
    GArray *slots = g_array_new(false, true, sizeof(Memslot));
    g_autofree char *text = NULL;
    g_auto(GStrv) lines = NULL;

    g_assert(g_file_get_contents(log, &text, NULL, NULL));
    lines = g_strsplit(text, "\n", -1);
    for (char **l = lines; *l; l++) {
        const char *p = strstr(*l, "kvm_set_user_memory ");
        Memslot s;
        int fd;

        if (p && sscanf(p, "kvm_set_user_memory AddrSpace#%u Slot#%u"
                        " flags=0x%" SCNx32 " gpa=0x%" SCNx64
                        " size=0x%" SCNx64 " ua=0x%" SCNx64 " guest_memfd=%d"
                        " guest_memfd_offset=0x%" SCNx64 " ret=%d",
                        &s.as, &s.slot, &s.flags, &s.gpa, &s.size, &s.ua, &fd,
                        &s.offset, &s.ret) == 9) {
            g_array_append_val(slots, s);
        }
    }
    return slots;
}

/* Lines of SeaBIOS's debug console so far. */
static bool file_has(const char *path, const char *what)
{
    g_autofree char *text = NULL;

    return g_file_get_contents(path, &text, NULL, NULL) && strstr(text, what);
}

static void wait_for_text(const char *path, const char *what, int seconds)
{
    for (int i = 0; i < seconds * 10 && !file_has(path, what); i++) {
        g_usleep(100 * 1000);
    }
    if (!file_has(path, what)) {
        g_autofree char *text = NULL;

        g_file_get_contents(path, &text, NULL, NULL);
        g_error("no \"%s\" from SeaBIOS within %d s; it printed:\n%s", what,
                seconds, text ?: "(nothing)");
    }
}

static QDict *query_kvm(QTestState *qts, const char *id)
{
    QDict *info = gmem_query_one(qts, id);

    g_assert_cmpstr(qdict_get_str(info, "kernel"), ==, "kvm");
    return info;
}

/*
 * SeaBIOS runs from guest_memfd memory on the default q35 (smm=on):
 * every memslot of the backend's RAM in the guest's address space binds
 * the guest_memfd at the file offset of its guest-physical address, RAM
 * above 4 GiB included; the SMRAM alias and the SMM address space map the
 * same pages as user memory instead of binding them twice.  A conversion
 * this kernel cannot make is refused with the reason.
 */
static void test_seabios(void)
{
    g_autofree char *dir = g_dir_make_tmp("gmem-kvm-XXXXXX", NULL);
    g_autofree char *trace = g_build_filename(dir, "trace", NULL);
    g_autofree char *con = g_build_filename(dir, "debugcon", NULL);
    const uint64_t low = 512 * MiB, ram = 1 * GiB;
    QTestState *qts;
    GArray *slots;
    uint64_t host = 0, bound = 0;
    unsigned high = 0, plain = 0;
    g_autofree char *hmp = NULL;
    QDict *info, *resp;

    qts = qtest_initf("-accel kvm -machine q35,memory-backend=mem0,"
                      "max-ram-below-4g=%" PRIu64 " -m %" PRIu64 "M"
                      " -object memory-backend-guest-memfd,id=mem0,"
                      "size=%" PRIu64 " -chardev file,id=dbg,path=%s"
                      " -device isa-debugcon,iobase=0x402,chardev=dbg"
                      " -trace kvm_set_user_memory -D %s",
                      low, ram / MiB, ram, con, trace);
    wait_for_text(con, "Running on KVM", 60);
    /* Far enough to have read its tables from and written RAM. */
    wait_for_text(con, "Found ", 120);

    slots = memslots_from_trace(trace);
    /* The slot at GPA 0 gives QEMU's mapping of the file. */
    for (guint i = 0; i < slots->len; i++) {
        Memslot *s = &g_array_index(slots, Memslot, i);

        if (s->as == 0 && s->gpa == 0 && s->size) {
            host = s->ua;
        }
    }
    g_assert(host);
    for (guint i = 0; i < slots->len; i++) {
        Memslot *s = &g_array_index(slots, Memslot, i);
        bool is_bound = s->flags & MEMSLOT_GUEST_MEMFD;

        g_assert_cmpint(s->ret, ==, 0);
        if (!s->size || s->ua < host || s->ua >= host + ram) {
            continue;       /* removals; firmware and option ROMs */
        }
        g_assert_cmphex(s->ua - host, ==, s->offset);
        if (s->as == 0 && (s->gpa < 0xa0000 ||
                           (s->gpa >= 1 * MiB && s->gpa < low))) {
            /* RAM below 4 GiB, outside the legacy VGA and ROM windows */
            g_assert_true(is_bound);
            g_assert_cmphex(s->offset, ==, s->gpa);
        } else if (s->as == 0 && s->gpa >= 4 * GiB) {
            g_assert_true(is_bound);
            g_assert_cmphex(s->offset, ==, s->gpa - 4 * GiB + low);
            high++;
        } else if (!is_bound) {
            /* SMRAM windows, SMM address space: the same pages, unbound */
            plain++;
        }
        /* No byte of the file is bound by two memslots at once. */
        for (guint j = 0; is_bound && j < i; j++) {
            Memslot *o = &g_array_index(slots, Memslot, j);
            bool later_removed = false;

            if (!(o->flags & MEMSLOT_GUEST_MEMFD) || !o->size ||
                o->offset >= s->offset + s->size ||
                s->offset >= o->offset + o->size) {
                continue;
            }
            for (guint k = j + 1; k < i; k++) {
                Memslot *r = &g_array_index(slots, Memslot, k);

                later_removed |= r->as == o->as && r->slot == o->slot;
            }
            g_assert_true(later_removed);
        }
    }
    g_assert_cmpuint(high, ==, 1);
    g_test_message("%u memslots map the same pages as user memory (SMRAM"
                   " windows, SMM address space)", plain);
    g_array_free(slots, true);

    info = query_kvm(qts, "mem0");
    g_assert_cmpuint(qdict_get_int(info, "kvm-memslots"), >=, 2);
    bound = qdict_get_int(info, "kvm-bound");
    /* All of it but the legacy VGA and ROM windows below 1 MiB. */
    g_assert_cmpuint(bound, <=, ram);
    g_assert_cmpuint(bound, >=, ram - 1 * MiB);
    qobject_unref(info);
    hmp = qtest_hmp(qts, "info guest-memfd");
    g_test_message("info guest-memfd says:");
    g_test_message("%s", hmp);
    g_assert(strstr(hmp, "KVM memslots bound: "));

    /* A conversion this kernel cannot make says why. */
    resp = qtest_qmp(qts, "{'execute': 'x-guest-memfd-convert', 'arguments':"
                     " {'gpa': %" PRIu64 ", 'size': 4096, 'private': true}}",
                     16 * MiB);
    g_test_message("to private: %s",
                   qdict_get_str(qdict_get_qdict(resp, "error"), "desc"));
    g_assert(strstr(qdict_get_str(qdict_get_qdict(resp, "error"), "desc"),
                    "this kernel's guest_memfd cannot convert pages in place"
                    " (it lacks the proposed KVM_SET_MEMORY_ATTRIBUTES2"));
    qobject_unref(resp);
    info = query_kvm(qts, "mem0");
    g_assert_cmpuint(qdict_get_int(info, "private"), ==, 0);
    qobject_unref(info);

    qtest_quit(qts);
    unlink(trace);
    unlink(con);
    rmdir(dir);
}

/* What QEMU holds of KVM guest_memfd files: descriptors and mappings. */
static unsigned kvm_gmem_refs(QTestState *qts)
{
    return gmem_refs_matching(qts, "kvm-gmem");
}

/* A hot-plugged pc-dimm binds its memslot; unplug and object-del undo it. */
static void test_pc_dimm(void)
{
    QTestState *qts;
    unsigned refs;
    uint64_t addr;
    QDict *info;

    qts = qtest_init("-accel kvm -machine q35,memory-backend=mem0"
                     " -m 256M,slots=2,maxmem=2G"
                     " -object memory-backend-guest-memfd,id=mem0,size=256M");
    refs = kvm_gmem_refs(qts);
    g_assert_cmpuint(refs, >=, 2);      /* the file and its mapping */

    qtest_qmp_assert_success(qts, "{'execute': 'object-add', 'arguments': {"
                             " 'qom-type': 'memory-backend-guest-memfd',"
                             " 'id': 'm1', 'size': 134217728 }}");
    info = query_kvm(qts, "m1");
    g_assert_cmpuint(qdict_get_int(info, "kvm-memslots"), ==, 0);
    qobject_unref(info);

    addr = gmem_dimm_plug(qts, "d1", "m1");
    g_assert_cmphex(addr, >=, 4 * GiB);
    info = query_kvm(qts, "m1");
    g_assert_cmpuint(qdict_get_int(info, "kvm-memslots"), ==, 1);
    g_assert_cmpuint(qdict_get_int(info, "kvm-bound"), ==, 128 * MiB);
    qobject_unref(info);
    qtest_writeq(qts, addr + 0x1000, 0xfeedfacecafebeefULL);
    g_assert_cmphex(qtest_readq(qts, addr + 0x1000), ==,
                    0xfeedfacecafebeefULL);

    gmem_dimm_unplug(qts, "d1", 0);
    info = query_kvm(qts, "m1");
    g_assert_cmpuint(qdict_get_int(info, "kvm-memslots"), ==, 0);
    g_assert_cmpuint(qdict_get_int(info, "kvm-bound"), ==, 0);
    qobject_unref(info);

    qtest_qmp_assert_success(qts, "{'execute': 'object-del', 'arguments':"
                             " {'id': 'm1'}}");
    /* The RAMBlock lets go of its descriptor after an RCU grace period. */
    gmem_wait_for(kvm_gmem_refs(qts) == refs,
                  "the deleted backend to close its guest_memfd");
    g_assert_cmpuint(kvm_gmem_refs(qts), ==, refs);
    qtest_quit(qts);
}

/*
 * object_add of @props on a running KVM VM fails with @error and the
 * remedy as its hint (HMP prints both; QMP users get the first).
 */
static void check_refused(QTestState *qts, const char *props,
                          const char *error, const char *hint)
{
    g_autofree char *out = qtest_hmp(qts, "object_add memory-backend-"
                                     "guest-memfd,id=bad,%s", props);

    if (!strstr(out, error) || !strstr(out, hint)) {
        g_error("object_add %s: expected \"%s\" and \"%s\", got \"%s\"",
                props, error, hint, out);
    }
}

/*
 * What this host's KVM cannot do is refused with the remedy: without
 * mmap-able guest_memfd, every guest_memfd backend; on mainline, 1 GiB
 * folios (no hugetlb guest_memfd) and memory that starts private (no
 * in-place conversion on a default VM).
 */
static void test_refused(void)
{
    QTestState *qts = qtest_init("-accel kvm -machine q35 -m 64M");

    if (gmem_host_lacks(GMEM_NEEDS_KVM_GMEM)) {
        static const char *const props[] = {
            "size=4M", "size=1G,pagesize=1G", "size=4M,init-shared=off",
        };

        for (size_t i = 0; i < ARRAY_SIZE(props); i++) {
            check_refused(qts, props[i], "this kernel has no mmap-able"
                          " guest_memfd (Linux 6.18 or later is needed)",
                          "Add kernel-model=on");
        }
    }
    if (gmem_host_lacks(GMEM_NEEDS_KVM_GMEM_HUGETLB) &&
        !gmem_host_lacks(GMEM_NEEDS_KVM_GMEM)) {
        check_refused(qts, "size=1G,pagesize=1G",
                      "this kernel has no hugetlb guest_memfd, so pages"
                      " of 1 GiB (pagesize) are not possible",
                      "Use pagesize=4K, or kernel-model=on");
        check_refused(qts, "size=2M,pagesize=2M",
                      "pages of 2 MiB (pagesize) are not possible",
                      "Use pagesize=4K");
    }
    if (gmem_host_lacks(GMEM_NEEDS_KVM_GMEM_CONVERT) &&
        !gmem_host_lacks(GMEM_NEEDS_KVM_GMEM)) {
        check_refused(qts, "size=4M,init-shared=off",
                      "cannot convert guest_memfd pages in place, so memory"
                      " that starts private could never be shared",
                      "Use init-shared=on, or kernel-model=on");
    }
    g_assert_cmpint(gmem_query_count(qts), ==, 0);
    qtest_quit(qts);
}

/*
 * kernel-model=on under KVM: the model's file is not a guest_memfd, so KVM
 * maps it as plain user memory; nothing is bound.
 */
static void test_kernel_model(void)
{
    QTestState *qts = qtest_init("-accel kvm -machine q35,memory-backend=mem0"
                                 " -m 256M -object memory-backend-guest-memfd,"
                                 "id=mem0,size=256M,kernel-model=on");
    QDict *info = gmem_query_one(qts, "mem0");

    g_assert_cmpstr(qdict_get_str(info, "kernel"), ==, "model");
    g_assert_cmpuint(qdict_get_int(info, "kvm-memslots"), ==, 0);
    g_assert_cmpuint(qdict_get_int(info, "kvm-bound"), ==, 0);
    qobject_unref(info);
    qtest_writeq(qts, 0x100000, 0x1122334455667788ULL);
    g_assert_cmphex(qtest_readq(qts, 0x100000), ==, 0x1122334455667788ULL);
    qtest_quit(qts);
}

typedef struct KvmCase {
    const char *name;
    void (*fn)(void);
    unsigned needs;         /* GmemHostNeed */
} KvmCase;

static const KvmCase cases[] = {
    { "seabios-q35", test_seabios, GMEM_NEEDS_KVM_GMEM },
    { "pc-dimm", test_pc_dimm, GMEM_NEEDS_KVM_GMEM },
    { "refused", test_refused, GMEM_NEEDS_KVM },
    { "kernel-model", test_kernel_model, GMEM_NEEDS_KVM },
};

/* Each case runs where the host has what it needs, or says why not. */
static void run_case(const void *opaque)
{
    const KvmCase *c = opaque;
    const char *why = gmem_host_lacks(c->needs);

    if (why) {
        g_test_skip(why);
        return;
    }
    c->fn();
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        g_autofree char *path = g_strdup_printf("/guest-memfd/kvm/%s",
                                                cases[i].name);

        if (!gmem_lab_runs_it(!gmem_host_lacks(cases[i].needs))) {
            qtest_add_data_func(path, &cases[i], run_case);
        }
    }
    return g_test_run();
}
