/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Helpers shared by the guest_memfd qtests: reading query-guest-memfd,
 * counting what QEMU holds of guest_memfd (model) files, and plugging and
 * unplugging a pc-dimm.
 */

#ifndef TESTS_QTEST_GUEST_MEMFD_QTEST_H
#define TESTS_QTEST_GUEST_MEMFD_QTEST_H

#include "libqtest.h"
#include "qobject/qdict.h"
#include "qobject/qlist.h"
#include "tests/unit/guest-memfd-host.h"

/* query-guest-memfd's answer: one entry per backend (a new reference). */
static inline QList *gmem_query_all(QTestState *qts)
{
    QDict *resp = qtest_qmp(qts, "{'execute': 'query-guest-memfd'}");
    QList *list = qdict_get_qlist(resp, "return");

    g_assert(list);
    qobject_ref(list);
    qobject_unref(resp);
    return list;
}

/* The entry of backend @id (a new reference); it must exist. */
static inline QDict *gmem_query_one(QTestState *qts, const char *id)
{
    QList *list = gmem_query_all(qts);
    QListEntry *e;
    QDict *found = NULL;

    QLIST_FOREACH_ENTRY(list, e) {
        QDict *d = qobject_to(QDict, qlist_entry_obj(e));

        if (!strcmp(qdict_get_str(d, "id"), id)) {
            found = d;
            qobject_ref(found);
        }
    }
    qobject_unref(list);
    g_assert(found);
    return found;
}

/* One number of backend @id's entry; both must exist. */
static inline uint64_t gmem_query_u64(QTestState *qts, const char *id,
                                      const char *key)
{
    QDict *info = gmem_query_one(qts, id);
    uint64_t v;

    g_assert(qdict_haskey(info, key));
    v = qdict_get_int(info, key);
    qobject_unref(info);
    return v;
}

static inline int gmem_query_count(QTestState *qts)
{
    QList *list = gmem_query_all(qts);
    int n = qlist_size(list);

    qobject_unref(list);
    return n;
}

/*
 * Cases that need what this host lacks (1 GiB pages, a KVM with
 * guest_memfd: ask the probe, guest-memfd-host.h) run in the lab
 * (tests/lab/run) when make check runs it, which it says by setting
 * QEMU_GMEM1G_LAB: such cases are then not registered here, rather than
 * reported as skipped a second time.
 */
static inline bool gmem_lab_runs_it(bool host_has_it)
{
    return !host_has_it && g_getenv("QEMU_GMEM1G_LAB");
}

/*
 * Wait until @cond holds, for what QEMU does at its own pace: after an RCU
 * grace period (a deleted backend's RAMBlock lets go of its file), from its
 * main loop, or in another test that shares the host's hugetlb pool.  On a
 * loaded machine that takes a while, so the bound is generous: after a
 * minute it says what it waited for and returns, and the caller's
 * assertions report what is wrong (a leak never comes back).
 */
#define GMEM_WAIT_SECONDS 60
#define gmem_wait_for(cond, what)                                           \
    do {                                                                    \
        gint64 deadline_ = g_get_monotonic_time() +                        \
                           GMEM_WAIT_SECONDS * G_USEC_PER_SEC;              \
        while (!(cond)) {                                                   \
            if (g_get_monotonic_time() > deadline_) {                       \
                g_test_message("waited %d s for %s", GMEM_WAIT_SECONDS,    \
                               what);                                       \
                break;                                                      \
            }                                                               \
            g_usleep(10 * 1000);                                            \
        }                                                                   \
    } while (0)

/*
 * Run QEMU to completion with @args (besides -nodefaults -display none);
 * return its wait status, and what it printed in *out and *err.
 */
static inline int gmem_run_qemu(const char *args, char **out, char **err)
{
    const char *qemu = g_getenv("QTEST_QEMU_BINARY");
    g_autofree char *cmd = g_strdup_printf("timeout 60 %s -nodefaults"
                                           " -display none %s", qemu, args);
    g_auto(GStrv) argv = NULL;
    int status = -1;

    g_assert(g_shell_parse_argv(cmd, NULL, &argv, NULL));
    g_assert(g_spawn_sync(NULL, argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL,
                          out, err, &status, NULL));
    return status;
}

/* QEMU's fds and mappings of files whose name holds @what. */
static inline unsigned gmem_refs_matching(QTestState *qts, const char *what)
{
    g_autofree char *maps_path = g_strdup_printf("/proc/%d/maps",
                                                 (int)qtest_pid(qts));
    g_autofree char *fd_dir = g_strdup_printf("/proc/%d/fd",
                                              (int)qtest_pid(qts));
    g_autofree char *maps = NULL;
    g_autoptr(GDir) dir = g_dir_open(fd_dir, 0, NULL);
    const char *name, *p;
    unsigned n = 0;

    g_assert(g_file_get_contents(maps_path, &maps, NULL, NULL));
    for (p = maps; (p = strstr(p, what)); p++) {
        n++;
    }
    g_assert(dir);
    while ((name = g_dir_read_name(dir))) {
        g_autofree char *link = g_build_filename(fd_dir, name, NULL);
        g_autofree char *target = g_file_read_link(link, NULL);

        n += target && strstr(target, what);
    }
    return n;
}

/* QEMU's fds and mappings of guest_memfd model files. */
static inline unsigned gmem_refs(QTestState *qts)
{
    return gmem_refs_matching(qts, "guest-memfd");
}

/* device_add a pc-dimm @id on backend @memdev; returns its address. */
static inline uint64_t gmem_dimm_plug(QTestState *qts, const char *id,
                                      const char *memdev)
{
    g_autofree char *path = g_strdup_printf("/machine/peripheral/%s", id);
    QDict *resp;
    uint64_t addr;

    qtest_qmp_assert_success(qts, "{'execute': 'device_add', 'arguments':"
                             " {'driver': 'pc-dimm', 'id': %s,"
                             " 'memdev': %s}}", id, memdev);
    resp = qtest_qmp(qts, "{'execute': 'qom-get', 'arguments':"
                     " {'path': %s, 'property': 'addr'}}", path);
    addr = qdict_get_int(resp, "return");
    qobject_unref(resp);
    return addr;
}

/*
 * device_del the pc-dimm @id in DIMM slot @slot, playing the guest's part
 * of ACPI memory hot-unplug (select the slot, eject it).
 */
static inline void gmem_dimm_unplug(QTestState *qts, const char *id,
                                    unsigned slot)
{
    qtest_qmp_assert_success(qts, "{'execute': 'device_del', 'arguments':"
                             " {'id': %s}}", id);
    qtest_outl(qts, 0xa00, slot);   /* ACPI memory hotplug: slot selector */
    qtest_outb(qts, 0xa14, 8);      /* ... eject */
    qtest_qmp_eventwait(qts, "DEVICE_DELETED");
}

#endif
