/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * What this host can do for the guest_memfd tests (guest-memfd-host.h)
 */

#include "qemu/osdep.h"
#include "qemu/units.h"
#include <sys/ioctl.h>
#include <linux/kvm.h>
#include "system/guest-memfd-uapi.h"
#include "tests/unit/guest-memfd-host.h"

typedef struct KvmFds {
    int kvm;
    int vm;
} KvmFds;

/* As QEMU's kvm_vm_check_extension(): the VM, else /dev/kvm. */
static int check_cap(void *opaque, unsigned cap)
{
    KvmFds *fds = opaque;
    int ret = ioctl(fds->vm, KVM_CHECK_EXTENSION, cap);

    return ret < 0 ? ioctl(fds->kvm, KVM_CHECK_EXTENSION, cap) : ret;
}

/* Sets @h->kvm and the capabilities, or @h->kvm_why. */
static void probe_kvm(GmemHost *h)
{
    KvmFds fds = { .kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC), .vm = -1 };
    int version;

    if (fds.kvm < 0) {
        h->kvm_why = g_strdup_printf("this host has no usable KVM (opening"
                                     " /dev/kvm: %s%s)", strerror(errno),
                                     errno == EACCES && !h->root ?
                                     ", not root" : "");
        return;
    }
    version = ioctl(fds.kvm, KVM_GET_API_VERSION, 0);
    if (version != KVM_API_VERSION) {
        h->kvm_why = g_strdup_printf("this host's KVM speaks API version %d,"
                                     " not %d", version, KVM_API_VERSION);
        goto out;
    }
    do {
        fds.vm = ioctl(fds.kvm, KVM_CREATE_VM, 0);
    } while (fds.vm < 0 && errno == EINTR);
    if (fds.vm < 0) {
        h->kvm_why = g_strdup_printf("this host's KVM cannot create a VM"
                                     " (KVM_CREATE_VM: %s)", strerror(errno));
        goto out;
    }
    h->kvm = true;
    guest_memfd_kvm_read_caps(check_cap, &fds, &h->caps);
    h->kvm_exit_hypercall = MAX(check_cap(&fds, KVM_CAP_EXIT_HYPERCALL), 0);
    close(fds.vm);
out:
    close(fds.kvm);
}

int64_t gmem_host_hugepages(uint64_t page_size, const char *what)
{
    g_autofree char *path = g_strdup_printf(
        "/sys/kernel/mm/hugepages/hugepages-%" PRIu64 "kB/%s",
        page_size / KiB, what);
    g_autofree char *text = NULL;

    if (!g_file_get_contents(path, &text, NULL, NULL)) {
        return -1;
    }
    return g_ascii_strtoll(text, NULL, 10);
}

static GmemHostPool read_pool(uint64_t page_size)
{
    return (GmemHostPool) {
        .nr = gmem_host_hugepages(page_size, "nr_hugepages"),
        .free = gmem_host_hugepages(page_size, "free_hugepages"),
        .resv = gmem_host_hugepages(page_size, "resv_hugepages"),
    };
}

static GmemHost host;

const GmemHost *gmem_host(void)
{
    static bool probed;

    if (!probed) {
        probed = true;
        host.root = geteuid() == 0;
        probe_kvm(&host);
    }
    host.pool_2m = read_pool(2 * MiB);
    host.pool_1g = read_pool(1 * GiB);
    return &host;
}

const char *gmem_host_lacks(unsigned needs)
{
    const GmemHost *h = gmem_host();
    static char *no_map;

    if ((needs & GMEM_NEEDS_ROOT) && !h->root) {
        return "not root";
    }
    if (!(needs & ~GMEM_NEEDS_ROOT)) {
        return NULL;
    }
    if (!h->kvm) {
        return h->kvm_why;
    }
    if ((needs & ~(GMEM_NEEDS_ROOT | GMEM_NEEDS_KVM)) && !h->caps.gmem) {
        return "this host's KVM offers no guest_memfd (KVM_CAP_GUEST_MEMFD"
               " is 0)";
    }
    if ((needs & ~(GMEM_NEEDS_ROOT | GMEM_NEEDS_KVM)) &&
        !guest_memfd_kvm_can_map(&h->caps)) {
        if (!no_map) {
            no_map = g_strdup_printf(
                "this host's guest_memfd cannot be mapped by QEMU"
                " (KVM_CAP_GUEST_MEMFD_FLAGS is 0x%" PRIx64 ", without MMAP;"
                " Linux 6.18 or later has it)", h->caps.flags);
        }
        return no_map;
    }
    if ((needs & GMEM_NEEDS_KVM_GMEM_HUGETLB) &&
        h->caps.huge == GMEM_HUGE_NONE) {
        return "this host's guest_memfd has no hugetlb pages (no released"
               " kernel has them)";
    }
    if ((needs & GMEM_NEEDS_KVM_GMEM_CONVERT) &&
        h->caps.convert == GMEM_CONVERT_NONE) {
        return "this host's guest_memfd cannot convert pages in place (no"
               " released kernel can)";
    }
    return NULL;
}

static const char *size_name(uint64_t page_size)
{
    return page_size == GiB ? "1 GiB" : "2 MiB";
}

char *gmem_host_lacks_hugepages(uint64_t page_size, int64_t count)
{
    const GmemHost *h = gmem_host();
    const GmemHostPool *p = page_size == GiB ? &h->pool_1g : &h->pool_2m;
    /* scripts/hugepages sets the pool's size; others may hold some. */
    int64_t nr_needed = p->nr - p->free + count;

    if (p->free >= count) {
        return NULL;
    }
    if (p->nr < 0) {
        return g_strdup_printf("the host has no %s hugetlb pool, needs %"
                               PRId64 " free pages", size_name(page_size),
                               count);
    }
    return g_strdup_printf("the host has %" PRId64 " free of %" PRId64
                           " %s hugetlb pages, needs %" PRId64 " (as root:"
                           " GMEM_TEST_HUGEPAGES_%s=%" PRId64
                           " scripts/hugepages reserve)", p->free, p->nr,
                           size_name(page_size), count,
                           page_size == GiB ? "1G" : "2M", nr_needed);
}

static void describe_pool(GString *s, const char *name, const GmemHostPool *p)
{
    if (p->nr < 0) {
        g_string_append_printf(s, "hugetlb %s: none\n", name);
    } else {
        g_string_append_printf(s, "hugetlb %s: %" PRId64 " pages, %" PRId64
                               " free, %" PRId64 " reserved\n",
                               name, p->nr, p->free, p->resv);
    }
}

static const char *yes_or(const char *why)
{
    return why ? why : "yes";
}

char *gmem_host_describe(void)
{
    const GmemHost *h = gmem_host();
    GString *s = g_string_new(NULL);

    g_string_append_printf(s, "root: %s\n", h->root ? "yes" : "no");
    g_string_append_printf(s, "kvm: %s\n",
                           yes_or(gmem_host_lacks(GMEM_NEEDS_KVM)));
    if (h->kvm) {
        g_string_append_printf(s, "kvm capabilities: GUEST_MEMFD %d,"
                               " GUEST_MEMFD_FLAGS 0x%" PRIx64 ","
                               " EXIT_HYPERCALL 0x%x\n", h->caps.gmem,
                               h->caps.flags, h->kvm_exit_hypercall);
    }
    g_string_append_printf(s, "kvm-gmem: %s\n",
                           yes_or(gmem_host_lacks(GMEM_NEEDS_KVM_GMEM)));
    if (!gmem_host_lacks(GMEM_NEEDS_KVM_GMEM)) {
        g_string_append_printf(s, "kvm-gmem-hugetlb: %s\n",
                               yes_or(gmem_host_lacks(
                                          GMEM_NEEDS_KVM_GMEM_HUGETLB)));
        g_string_append_printf(s, "kvm-gmem-convert: %s\n",
                               yes_or(gmem_host_lacks(
                                          GMEM_NEEDS_KVM_GMEM_CONVERT)));
    }
    describe_pool(s, "2M", &h->pool_2m);
    describe_pool(s, "1G", &h->pool_1g);
    return g_string_free(s, false);
}
