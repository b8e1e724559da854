/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * What this host can do for the guest_memfd tests (guest-memfd-host.h)
 */

#include "qemu/osdep.h"
#include "qemu/units.h"
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <linux/kvm.h>
#include "standard-headers/linux/kvm_para.h"
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

/*
 * 16-bit code for the probe's vCPU: an exit to user space, a hypercall that
 * KVM answers itself (no such hypercall: -KVM_ENOSYS), and hlt.
 */
static const uint8_t run_probe_code[] = {
    0xe6, 0xe0,                             /* out 0xe0, al */
    0x66, 0xb8, 0xff, 0x7f, 0x00, 0x00,     /* mov eax, 0x7fff */
    0x0f, 0x01, 0xd9,                       /* vmmcall (AMD; 0xc1: vmcall) */
    0xf4,                                   /* hlt */
};
#define RUN_PROBE_SECONDS 5
#define RUN_PROBE_HYPERCALL_AT 8            /* offset of the hypercall */

/* The vCPU's run structure while the probe runs it. */
static struct kvm_run *run_probe_vcpu;

static void run_probe_alarm(int sig)
{
    /* KVM_RUN returns EINTR now, or at once if it is entered again. */
    if (run_probe_vcpu) {
        run_probe_vcpu->immediate_exit = 1;
    }
}

static bool host_is_amd(void)
{
    uint32_t a, b, c, d;

    asm volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0));
    return b == 0x68747541;                 /* "Auth" */
}

/*
 * Does a vCPU of this KVM get through an I/O exit and a hypercall to hlt?
 * Some hosts create VMs whose vCPUs then hang (seen: a nested paravirtual
 * KVM on which a hypercall never returns).  NULL, or why not.
 */
static char *probe_run(KvmFds *fds)
{
    struct sigaction alarm_action = { .sa_handler = run_probe_alarm };
    struct sigaction old_action;
    struct kvm_userspace_memory_region slot = {
        .memory_size = 2 * 4096,
    };
    struct itimerspec expiry = {
        .it_value = { .tv_sec = RUN_PROBE_SECONDS },
        .it_interval = { .tv_sec = 1 },
    };
    struct sigevent sev = { 0 };
    timer_t timer;
    bool timed;
    struct kvm_sregs sregs;
    struct kvm_regs regs;
    struct kvm_run *run = MAP_FAILED;
    uint8_t *mem;
    int vcpu = -1, run_size, exits = 0;
    char *why = NULL;

    mem = mmap(NULL, slot.memory_size, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    g_assert(mem != MAP_FAILED);
    memcpy(mem, run_probe_code, sizeof(run_probe_code));
    if (!host_is_amd()) {
        mem[RUN_PROBE_HYPERCALL_AT + 2] = 0xc1;
    }
    slot.userspace_addr = (uintptr_t)mem;
    run_size = ioctl(fds->kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (ioctl(fds->vm, KVM_SET_USER_MEMORY_REGION, &slot) == 0) {
        vcpu = ioctl(fds->vm, KVM_CREATE_VCPU, 0);
    }
    if (vcpu >= 0 && run_size > 0) {
        run = mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu,
                   0);
    }
    if (run == MAP_FAILED || ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0) {
        why = g_strdup_printf("this host's KVM cannot set up a vCPU (%s)",
                              strerror(errno));
        goto out;
    }
    sregs.cs.base = 0;
    sregs.cs.selector = 0;
    regs = (struct kvm_regs) { .rip = 0, .rflags = 2 };
    if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0 ||
        ioctl(vcpu, KVM_SET_REGS, &regs) < 0) {
        why = g_strdup_printf("this host's KVM cannot set up a vCPU (%s)",
                              strerror(errno));
        goto out;
    }
    /* A timer of this thread's own, so that its KVM_RUN is interrupted. */
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = SIGALRM;
    sev._sigev_un._tid = gettid();
    run_probe_vcpu = run;
    sigaction(SIGALRM, &alarm_action, &old_action);
    timed = timer_create(CLOCK_MONOTONIC, &sev, &timer) == 0;
    if (!timed || timer_settime(timer, 0, &expiry, NULL) < 0) {
        why = g_strdup_printf("cannot time the probe's vCPU (%s)",
                              strerror(errno));
    }
    while (!why && exits < 4) {
        if (ioctl(vcpu, KVM_RUN, 0) < 0) {
            why = g_strdup_printf(errno == EINTR ?
                                  "a vCPU of this host's KVM hangs (no hlt"
                                  " within %d s after an I/O exit and a"
                                  " hypercall)" :
                                  "a vCPU of this host's KVM fails (%d)",
                                  errno == EINTR ? RUN_PROBE_SECONDS : errno);
        } else if (run->exit_reason == KVM_EXIT_HLT) {
            break;
        } else if (run->exit_reason != KVM_EXIT_IO) {
            why = g_strdup_printf("a vCPU of this host's KVM does not get"
                                  " through an I/O exit and a hypercall"
                                  " (KVM exit reason %u%s)", run->exit_reason,
                                  run->exit_reason == KVM_EXIT_SHUTDOWN ?
                                  ", a triple fault" : "");
        }
        exits++;
    }
    if (timed) {
        timer_delete(timer);
    }
    sigaction(SIGALRM, &old_action, NULL);
    run_probe_vcpu = NULL;
    if (!why && ioctl(vcpu, KVM_GET_REGS, &regs) < 0) {
        why = g_strdup_printf("this host's KVM cannot read a vCPU's"
                              " registers (%s)", strerror(errno));
    } else if (!why && (uint32_t)regs.rax != (uint32_t)-KVM_ENOSYS) {
        why = g_strdup_printf("this host's KVM answers an unknown hypercall"
                              " with 0x%llx, not -KVM_ENOSYS", regs.rax);
    }
out:
    if (run != MAP_FAILED) {
        munmap(run, run_size);
    }
    if (vcpu >= 0) {
        close(vcpu);
    }
    munmap(mem, slot.memory_size);
    return why;
}

/* Does the QEMU the qtests run (QTEST_QEMU_BINARY) lack KVM? */
static bool qemu_lacks_kvm(void)
{
    const char *qemu = g_getenv("QTEST_QEMU_BINARY");
    g_autofree char *cmd = NULL, *out = NULL;

    if (!qemu) {
        return false;
    }
    cmd = g_strdup_printf("%s -accel help", qemu);
    return g_spawn_command_line_sync(cmd, &out, NULL, NULL, NULL) && out &&
           !strstr(out, "\nkvm\n");
}

/* Sets @h->kvm and the capabilities, or @h->kvm_why. */
static void probe_kvm(GmemHost *h)
{
    KvmFds fds = { .kvm = -1, .vm = -1 };
    int version;

    if (qemu_lacks_kvm()) {
        /* The host may have KVM; the QEMU under test cannot use it. */
        h->kvm_why = g_strdup("the QEMU under test was built without KVM"
                              " (--disable-kvm)");
        return;
    }
    fds.kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
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
    h->kvm_run_why = probe_run(&fds);
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

/* The first device bound to vfio-pci whose IOMMU group QEMU can open. */
static void probe_vfio(GmemHost *h)
{
    const char *drv = "/sys/bus/pci/drivers/vfio-pci";
    g_autoptr(GDir) dir = g_dir_open(drv, 0, NULL);
    const char *name;

    h->vfio_why = g_strdup("no PCI device is bound to vfio-pci here (the"
                           " lab binds QEMU's edu device)");
    while (dir && (name = g_dir_read_name(dir))) {
        g_autofree char *link = NULL, *group = NULL, *node = NULL;
        int fd;

        if (!g_str_has_prefix(name, "0000:")) {
            continue;
        }
        link = g_strdup_printf("%s/%s/iommu_group", drv, name);
        group = g_file_read_link(link, NULL);
        node = g_strdup_printf("/dev/vfio/%s",
                               group ? strrchr(group, '/') + 1 : "?");
        fd = open(node, O_RDWR | O_CLOEXEC);
        if (fd < 0) {
            g_free(h->vfio_why);
            h->vfio_why = g_strdup_printf("%s is bound to vfio-pci, but"
                                          " opening %s fails: %s", name,
                                          node, strerror(errno));
            continue;
        }
        close(fd);
        h->vfio_device = g_strdup(name);
        g_clear_pointer(&h->vfio_why, g_free);
        return;
    }
}

const char *gmem_host_vfio_device(void)
{
    return gmem_host()->vfio_device;
}

static GmemHost host;

const GmemHost *gmem_host(void)
{
    static bool probed;

    if (!probed) {
        probed = true;
        host.root = geteuid() == 0;
        probe_kvm(&host);
        probe_vfio(&host);
    }
    host.pool_2m = read_pool(2 * MiB);
    host.pool_1g = read_pool(1 * GiB);
    return &host;
}

/* Needs that take guest_memfd QEMU can map, and those that take KVM. */
#define NEEDS_GMEM (GMEM_NEEDS_KVM_GMEM | GMEM_NEEDS_KVM_GMEM_HUGETLB | \
                    GMEM_NEEDS_KVM_GMEM_CONVERT)
#define NEEDS_KVM  (GMEM_NEEDS_KVM | GMEM_NEEDS_KVM_RUNS | \
                    GMEM_NEEDS_KVM_MAP_GPA_RANGE | NEEDS_GMEM)

const char *gmem_host_lacks(unsigned needs)
{
    const GmemHost *h = gmem_host();
    static char *no_map;

    if ((needs & GMEM_NEEDS_ROOT) && !h->root) {
        return "not root";
    }
    if ((needs & GMEM_NEEDS_VFIO_DEVICE) && !h->vfio_device) {
        return h->vfio_why;
    }
    if (!(needs & NEEDS_KVM)) {
        return NULL;
    }
    if (!h->kvm) {
        return h->kvm_why;
    }
    if ((needs & GMEM_NEEDS_KVM_RUNS) && h->kvm_run_why) {
        return h->kvm_run_why;
    }
    if ((needs & GMEM_NEEDS_KVM_MAP_GPA_RANGE) &&
        !(h->kvm_exit_hypercall & (1 << KVM_HC_MAP_GPA_RANGE))) {
        return "this host's KVM does not forward KVM_HC_MAP_GPA_RANGE to"
               " user space (KVM_CAP_EXIT_HYPERCALL)";
    }
    if ((needs & NEEDS_GMEM) && !h->caps.gmem) {
        return "this host's KVM offers no guest_memfd (KVM_CAP_GUEST_MEMFD"
               " is 0)";
    }
    if ((needs & NEEDS_GMEM) && !guest_memfd_kvm_can_map(&h->caps)) {
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
    return g_strdup_printf("the host's %s hugetlb pool has %" PRId64
                           " free pages of %" PRId64 ", needs %" PRId64
                           " (as root: GMEM_TEST_HUGEPAGES_%s=%" PRId64
                           " scripts/hugepages reserve)", size_name(page_size),
                           p->free, p->nr, count,
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
    if (h->kvm) {
        g_string_append_printf(s, "kvm-runs: %s\n",
                               yes_or(gmem_host_lacks(GMEM_NEEDS_KVM_RUNS)));
        g_string_append_printf(s, "kvm-map-gpa-range: %s\n",
                               yes_or(gmem_host_lacks(
                                          GMEM_NEEDS_KVM_MAP_GPA_RANGE)));
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
    g_string_append_printf(s, "vfio-device: %s\n",
                           h->vfio_device ?: h->vfio_why);
    describe_pool(s, "2M", &h->pool_2m);
    describe_pool(s, "1G", &h->pool_1g);
    return g_string_free(s, false);
}
