/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Helpers shared by the guest_memfd qtests: reading query-guest-memfd.
 */

#ifndef TESTS_QTEST_GUEST_MEMFD_QTEST_H
#define TESTS_QTEST_GUEST_MEMFD_QTEST_H

#include "libqtest.h"
#include "qobject/qdict.h"
#include "qobject/qlist.h"

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

static inline int gmem_query_count(QTestState *qts)
{
    QList *list = gmem_query_all(qts);
    int n = qlist_size(list);

    qobject_unref(list);
    return n;
}

#endif
