/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * How gmem-guest asks for conversions: one call, two paths.
 *
 * Under KVM it issues KVM_HC_MAP_GPA_RANGE (vmcall, or vmmcall on AMD):
 * KVM forwards it to QEMU, whose answer comes back in rax.  Under TCG
 * there is no hypervisor to call, so it submits a GHCB Page State Change
 * list to the guest-memfd-psc device instead, which reports exact
 * progress (docs/specs/guest-memfd-psc.rst).
 */

#include "guest.h"
#include "hw/misc/guest-memfd-psc.h"

#define KVM_HC_MAP_GPA_RANGE            12
#define KVM_MAP_GPA_RANGE_ENCRYPTED     (1 << 4)
/* A hypercall number no hypervisor serves: the round trip's baseline. */
#define HC_UNSERVED                     0x7fff

static RequestPath path;
static bool amd;
/* The device's registers: volatile, every access is an MMIO access. */
static volatile uint32_t *psc;

/* The PSC list: in the kernel image, which stays shared. */
static uint64_t psc_list[PSC_BUF_SIZE / 8 + 1] __attribute__((aligned(4096)));

static uint32_t psc_reg(unsigned reg)
{
    return psc[reg / 4];
}

static bool psc_init(void)
{
    int bdf = pci_find(PSC_PCI_VENDOR_ID, PSC_PCI_DEVICE_ID);
    uint32_t bar;

    if (bdf < 0) {
        con_printf("# no guest-memfd-psc device\n");
        return false;
    }
    bar = pci_read32(bdf, 0x10) & ~0xfu;
    /* Memory space on, and bus mastering: the device reads the list. */
    pci_write32(bdf, 0x04, pci_read32(bdf, 0x04) | 0x6);
    /* Registers: every access must reach the device. */
    psc = (volatile uint32_t *)(uintptr_t)bar;
    if (psc_reg(PSC_REG_ID) != PSC_ID) {
        con_printf("# guest-memfd-psc BAR0 0x%x reads 0x%x, not PSC1\n", bar,
                   psc_reg(PSC_REG_ID));
        return false;
    }
    return true;
}

bool request_init(RequestPath p)
{
    uint32_t a, b, c, d;

    path = p;
    cpuid(0, &a, &b, &c, &d);
    amd = b == 0x68747541;      /* "AuthenticAMD" */
    return p == REQUEST_HYPERCALL || psc_init();
}

RequestPath request_path(void)
{
    return path;
}

const char *request_path_name(void)
{
    return path == REQUEST_HYPERCALL ? "KVM_HC_MAP_GPA_RANGE" :
                                       "guest-memfd-psc";
}

static long hypercall3(unsigned long nr, unsigned long a0, unsigned long a1,
                       unsigned long a2)
{
    long ret;

    if (amd) {
        asm volatile("vmmcall" : "=a"(ret)
                     : "a"(nr), "b"(a0), "c"(a1), "d"(a2) : "memory");
    } else {
        asm volatile("vmcall" : "=a"(ret)
                     : "a"(nr), "b"(a0), "c"(a1), "d"(a2) : "memory");
    }
    return ret;
}

long null_hypercall(void)
{
    return hypercall3(HC_UNSERVED, 0, 0, 0);
}

static Answer request_hypercall(const Request *req)
{
    uint64_t attrs = req->page_size_hint | req->attrs_extra |
                     (req->to_private ? KVM_MAP_GPA_RANGE_ENCRYPTED : 0);
    Answer a = {
        .ret = hypercall3(KVM_HC_MAP_GPA_RANGE, req->gpa, req->npages, attrs),
    };

    return a;
}

/* The pages of entry @e. */
static uint64_t entry_pages(uint64_t e)
{
    return e & PSC_ENTRY_2M ? 512 : 1;
}

/* Up to 253 entries from @gpa: 2 MiB ones where they fit, if hinted. */
static unsigned psc_fill(const Request *req, uint64_t gpa, uint64_t left)
{
    uint64_t op = req->to_private ? PSC_OP_PRIVATE : PSC_OP_SHARED;
    unsigned n = 0;

    while (left && n < PSC_MAX_ENTRIES) {
        bool huge = req->page_size_hint && !(gpa & (2 * MiB - 1)) &&
                    left >= 512;
        uint64_t pages = huge ? 512 : 1;

        psc_list[1 + n++] = (gpa / PAGE_SIZE) << PSC_ENTRY_GFN_SHIFT |
                            op << PSC_ENTRY_OP_SHIFT |
                            (huge ? PSC_ENTRY_2M : 0);
        gpa += pages * PAGE_SIZE;
        left -= pages;
    }
    return n;
}

static long psc_status_errno(uint32_t status)
{
    switch (status) {
    case PSC_STATUS_OK:
        return 0;
    case PSC_STATUS_BAD_HEADER:
    case PSC_STATUS_BAD_ENTRY:
        return -EINVAL;
    case PSC_STATUS_BAD_GPA:
        return -EFAULT;
    default:
        return -EIO;    /* the device does not say why the kernel refused */
    }
}

static Answer request_psc(const Request *req)
{
    Answer a = { .pages_known = true };
    uint64_t gpa = req->gpa, left = req->npages;

    while (left) {
        unsigned n = psc_fill(req, gpa, left);
        uint16_t cur;
        uint32_t status;

        psc_list[0] = (uint64_t)(n - 1) << 16;      /* cur 0, end n - 1 */
        psc[PSC_REG_BUF_LO / 4] = (uint32_t)(uintptr_t)psc_list;
        psc[PSC_REG_BUF_HI / 4] = 0;
        /* The device reads the list and writes progress back into it. */
        asm volatile("" : : : "memory");
        psc[PSC_REG_DOORBELL / 4] = PSC_DOORBELL_RING;
        asm volatile("" : : : "memory");
        status = psc_reg(PSC_REG_STATUS);
        cur = psc_list[0] & 0xffff;
        for (unsigned i = 0; i < n && i < cur; i++) {
            uint64_t pages = entry_pages(psc_list[1 + i]);

            a.pages_done += pages;
            gpa += pages * PAGE_SIZE;
            left -= pages;
        }
        if (status != PSC_STATUS_OK) {
            if (status == PSC_STATUS_CONVERT_FAILED && cur < n) {
                a.pages_done += psc_list[1 + cur] & 0xfff;
            }
            a.ret = psc_status_errno(status);
            return a;
        }
    }
    return a;
}

Answer request(const Request *req)
{
    return path == REQUEST_HYPERCALL ? request_hypercall(req) :
                                       request_psc(req);
}

long convert(uint64_t gpa, uint64_t npages, bool to_private)
{
    Request req = {
        .gpa = gpa, .npages = npages, .to_private = to_private,
        .page_size_hint = npages >= 512 ? 1 : 0,
    };

    return request(&req).ret;
}
