/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The guest_memfd tests' host probe, for scripts and people
 *
 *   guest-memfd-host-probe
 *       prints what this host offers, one fact per line
 *   guest-memfd-host-probe --needs kvm,kvm-gmem,...
 *       exits 0 when the host has all of them; otherwise prints why not
 *       and exits 77 (the exit status meson and automake read as SKIP)
 *
 * Needs: root, kvm, kvm-gmem, kvm-gmem-hugetlb, kvm-gmem-convert,
 * kvm-map-gpa-range, kvm-runs, vfio-device.
 */

#include "qemu/osdep.h"
#include "tests/unit/guest-memfd-host.h"

static const struct {
    const char *name;
    GmemHostNeed need;
} needs[] = {
    { "root", GMEM_NEEDS_ROOT },
    { "kvm", GMEM_NEEDS_KVM },
    { "kvm-gmem", GMEM_NEEDS_KVM_GMEM },
    { "kvm-gmem-hugetlb", GMEM_NEEDS_KVM_GMEM_HUGETLB },
    { "kvm-gmem-convert", GMEM_NEEDS_KVM_GMEM_CONVERT },
    { "kvm-map-gpa-range", GMEM_NEEDS_KVM_MAP_GPA_RANGE },
    { "kvm-runs", GMEM_NEEDS_KVM_RUNS },
    { "vfio-device", GMEM_NEEDS_VFIO_DEVICE },
};

static bool parse_needs(const char *list, unsigned *mask)
{
    g_auto(GStrv) names = g_strsplit(list, ",", -1);

    for (char **n = names; *n; n++) {
        size_t i;

        for (i = 0; i < ARRAY_SIZE(needs) && strcmp(*n, needs[i].name); i++) {
            ;
        }
        if (i == ARRAY_SIZE(needs)) {
            fprintf(stderr, "guest-memfd-host-probe: unknown need '%s'\n",
                    *n);
            return false;
        }
        *mask |= needs[i].need;
    }
    return true;
}

int main(int argc, char **argv)
{
    unsigned mask = 0;
    const char *why;

    if (argc == 1) {
        g_autofree char *facts = gmem_host_describe();

        fputs(facts, stdout);
        return 0;
    }
    if (argc != 3 || strcmp(argv[1], "--needs") ||
        !parse_needs(argv[2], &mask)) {
        fprintf(stderr, "usage: %s [--needs kvm,kvm-gmem,...]\n", argv[0]);
        return 2;
    }
    why = gmem_host_lacks(mask);
    if (why) {
        printf("%s\n", why);
        return 77;
    }
    return 0;
}
