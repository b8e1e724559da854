/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Every decision of guest_memfd_kvm_plan(): what QEMU asks of each kernel
 * it may meet, for each page size and initial state, and the error (with
 * its fix) where the kernel cannot.  Only the mainline kernel runs here
 * (in the lab); these pin down the paths no released kernel can run yet,
 * confidential launches (memory that starts private) included.
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qemu/error-report.h"
#include "qemu/units.h"
#include "system/guest-memfd-kvm-plan.h"
#include "system/guest-memfd-uapi.h"

/* Mainline 6.18+ on a default VM: mmap-able, may start shared. */
static const GuestMemfdKvmCaps mainline = {
    .gmem = true, .flags = GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED,
};
/* Mainline on a confidential VM type: mmap-able, always private. */
static const GuestMemfdKvmCaps mainline_coco = {
    .gmem = true, .flags = GMEM_FLAG_MMAP,
};
/* Before 6.18: guest_memfd that cannot be mapped. */
static const GuestMemfdKvmCaps old_kernel = { .gmem = true };
/* In-place conversion v8 and the 2025-12 HugeTLB branch. */
static const GuestMemfdKvmCaps wip = {
    .gmem = true,
    .flags = GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED | GMEM_WIP_FLAG_HUGETLB,
    .huge = GMEM_HUGE_WIP, .convert = GMEM_CONVERT_V8,
};
/* The 2025-12 HugeTLB branch without a conversion interface. */
static const GuestMemfdKvmCaps wip_no_convert = {
    .gmem = true,
    .flags = GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED | GMEM_WIP_FLAG_HUGETLB,
    .huge = GMEM_HUGE_WIP,
};
/* HugeTLB RFC v2 (2025-05), whose bit 1 means INIT_PRIVATE. */
static const GuestMemfdKvmCaps rfc2 = {
    .gmem = true, .rfc2_shared = true,
    .huge = GMEM_HUGE_RFC2, .convert = GMEM_CONVERT_RFC2,
};

static GuestMemfdKvmPlan plan_ok(const GuestMemfdKvmCaps *caps,
                                 uint64_t page_size, bool init_shared)
{
    GuestMemfdKvmPlan plan;

    g_assert_true(guest_memfd_kvm_plan(caps, page_size, init_shared, &plan,
                                       &error_abort));
    return plan;
}

/* What error_report_err() prints: the message, then its hint. */
static char *reported(Error *err)
{
    FILE *f = tmpfile();
    int saved = dup(STDERR_FILENO);
    char *text = g_malloc0(4096);

    g_assert(f && saved >= 0);
    fflush(stderr);
    dup2(fileno(f), STDERR_FILENO);
    error_report_err(err);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    rewind(f);
    g_assert(fread(text, 1, 4095, f) > 0);
    fclose(f);
    return text;
}

/* The plan is refused with @error, a part of the message and its hint. */
static void plan_refused(const GuestMemfdKvmCaps *caps, uint64_t page_size,
                         bool init_shared, const char *error)
{
    GuestMemfdKvmPlan plan;
    Error *err = NULL;
    g_autofree char *text = NULL;

    g_assert_false(guest_memfd_kvm_plan(caps, page_size, init_shared, &plan,
                                        &err));
    g_assert_nonnull(err);
    text = reported(err);
    if (!strstr(text, error)) {
        g_error("expected \"%s\", got \"%s\"", error, text);
    }
}

static void test_mainline(void)
{
    GuestMemfdKvmPlan p = plan_ok(&mainline, 4 * KiB, true);

    g_assert_cmphex(p.flags, ==, GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED);
    g_assert_cmpuint(p.page_order, ==, 0);
    g_assert_false(p.share_after_create);

    plan_refused(&mainline, 4 * KiB, false,
                 "cannot convert guest_memfd pages in place, so memory that"
                 " starts private could never be shared\nUse init-shared=on");
    plan_refused(&mainline, 2 * MiB, true,
                 "no hugetlb guest_memfd, so pages of 2 MiB (pagesize) are"
                 " not possible\nUse pagesize=4K, or kernel-model=on");
    plan_refused(&mainline, 1 * GiB, true,
                 "pages of 1 GiB (pagesize) are not possible");
}

static void test_old_kernels(void)
{
    const GuestMemfdKvmCaps none = { 0 };

    plan_refused(&old_kernel, 4 * KiB, true,
                 "no mmap-able guest_memfd (Linux 6.18 or later is needed)\n"
                 "Add kernel-model=on");
    plan_refused(&none, 4 * KiB, true, "no mmap-able guest_memfd");
}

/*
 * A confidential launch on mainline: memory must start private, which it
 * can, but it could never become shared, and shared cannot be asked for.
 */
static void test_mainline_coco(void)
{
    plan_refused(&mainline_coco, 4 * KiB, false,
                 "cannot convert guest_memfd pages in place");
    plan_refused(&mainline_coco, 4 * KiB, true,
                 "cannot create guest_memfd memory that starts shared\nUse"
                 " init-shared=off");
}

/*
 * A confidential launch with in-place conversion and 1 GiB pages: one
 * file, private at creation, HugeTLB with the page order of the size.
 */
static void test_wip_private(void)
{
    GuestMemfdKvmPlan p = plan_ok(&wip, 1 * GiB, false);

    g_assert_cmphex(p.flags, ==, GMEM_FLAG_MMAP | GMEM_WIP_FLAG_HUGETLB);
    g_assert_cmpuint(p.page_order, ==, 18);
    g_assert_false(p.share_after_create);

    p = plan_ok(&wip, 2 * MiB, false);
    g_assert_cmphex(p.flags, ==, GMEM_FLAG_MMAP | GMEM_WIP_FLAG_HUGETLB);
    g_assert_cmpuint(p.page_order, ==, 9);

    p = plan_ok(&wip, 4 * KiB, false);
    g_assert_cmphex(p.flags, ==, GMEM_FLAG_MMAP);
    g_assert_cmpuint(p.page_order, ==, 0);
}

/*
 * The branch refuses HUGETLB | INIT_SHARED: a shared hugetlb file is
 * created private and converted once; 4 KiB files start shared as usual.
 */
static void test_wip_shared(void)
{
    GuestMemfdKvmPlan p = plan_ok(&wip, 1 * GiB, true);

    g_assert_cmphex(p.flags, ==, GMEM_FLAG_MMAP | GMEM_WIP_FLAG_HUGETLB);
    g_assert_true(p.share_after_create);

    p = plan_ok(&wip, 4 * KiB, true);
    g_assert_cmphex(p.flags, ==, GMEM_FLAG_MMAP | GMEM_FLAG_INIT_SHARED);
    g_assert_false(p.share_after_create);

    plan_refused(&wip_no_convert, 1 * GiB, true,
                 "creates hugetlb guest_memfd private and cannot convert it\n"
                 "Use init-shared=off");
    plan_refused(&wip_no_convert, 1 * GiB, false,
                 "cannot convert guest_memfd pages in place");
}

/* RFC v2: log2 of the size in bits 58-63, and bit 1 means private. */
static void test_rfc2(void)
{
    GuestMemfdKvmPlan p = plan_ok(&rfc2, 1 * GiB, false);

    g_assert_cmphex(p.flags, ==, 0x7800000000000007ULL);
    p = plan_ok(&rfc2, 1 * GiB, true);
    g_assert_cmphex(p.flags, ==, 0x7800000000000005ULL);
    p = plan_ok(&rfc2, 2 * MiB, true);
    g_assert_cmphex(p.flags, ==, 0x5400000000000005ULL);
    p = plan_ok(&rfc2, 4 * KiB, false);
    g_assert_cmphex(p.flags, ==, GMEM_RFC2_FLAG_SUPPORT_SHARED |
                                 GMEM_RFC2_FLAG_INIT_PRIVATE);
    g_assert_false(p.share_after_create);
}

/* A kernel's answers to KVM_CHECK_EXTENSION: capability, value; 0 ends. */
typedef struct CapAnswers {
    unsigned cap[8];
    int value[8];
} CapAnswers;

static int answer(void *opaque, unsigned cap)
{
    const CapAnswers *a = opaque;

    for (int i = 0; a->cap[i]; i++) {
        if (a->cap[i] == cap) {
            return a->value[i];
        }
    }
    return 0;
}

static GuestMemfdKvmCaps caps_of(const CapAnswers *a)
{
    GuestMemfdKvmCaps caps;

    guest_memfd_kvm_read_caps(answer, (void *)a, &caps);
    return caps;
}

/*
 * What QEMU and the tests' host probe read from each kernel's answers,
 * and so which plan they make.
 */
static void test_read_caps(void)
{
    const CapAnswers no_gmem = { { 0 } };
    const CapAnswers stable = {     /* Debian 13's 6.12: no mmap */
        { KVM_CAP_GUEST_MEMFD }, { 1 },
    };
    const CapAnswers mainline_7 = {
        { KVM_CAP_GUEST_MEMFD, GMEM_CAP_GUEST_MEMFD_FLAGS }, { 1, 3 },
    };
    const CapAnswers v8_wip = {
        { KVM_CAP_GUEST_MEMFD, GMEM_CAP_GUEST_MEMFD_FLAGS,
          GMEM_V8_CAP_MEMORY_ATTRIBUTES },
        { 1, 7, KVM_MEMORY_ATTRIBUTE_PRIVATE },
    };
    /* The attributes capability, without PRIVATE, is no conversion. */
    const CapAnswers v8_no_private = {
        { KVM_CAP_GUEST_MEMFD, GMEM_CAP_GUEST_MEMFD_FLAGS,
          GMEM_V8_CAP_MEMORY_ATTRIBUTES },
        { 1, 3, 1 },
    };
    const CapAnswers rfc2_kernel = {
        { KVM_CAP_GUEST_MEMFD, GMEM_RFC2_CAP_CONVERSION,
          GMEM_RFC2_CAP_SHARED_MEM, GMEM_RFC2_CAP_HUGETLB },
        { 1, 1, 1, 1 },
    };
    /* A kernel that does not know a capability may answer -EINVAL. */
    const CapAnswers negative = {
        { KVM_CAP_GUEST_MEMFD, GMEM_CAP_GUEST_MEMFD_FLAGS,
          GMEM_V8_CAP_MEMORY_ATTRIBUTES },
        { 1, -EINVAL, -EINVAL },
    };
    GuestMemfdKvmCaps c;

    c = caps_of(&no_gmem);
    g_assert_false(c.gmem);
    g_assert_false(guest_memfd_kvm_can_map(&c));

    c = caps_of(&stable);
    g_assert_true(c.gmem);
    g_assert_cmphex(c.flags, ==, 0);
    g_assert_false(guest_memfd_kvm_can_map(&c));

    c = caps_of(&mainline_7);
    g_assert_true(guest_memfd_kvm_can_map(&c));
    g_assert_cmpint(c.huge, ==, GMEM_HUGE_NONE);
    g_assert_cmpint(c.convert, ==, GMEM_CONVERT_NONE);
    plan_ok(&c, 4 * KiB, true);

    c = caps_of(&v8_wip);
    g_assert_cmpint(c.huge, ==, GMEM_HUGE_WIP);
    g_assert_cmpint(c.convert, ==, GMEM_CONVERT_V8);
    plan_ok(&c, 1 * GiB, false);

    c = caps_of(&v8_no_private);
    g_assert_cmpint(c.convert, ==, GMEM_CONVERT_NONE);

    c = caps_of(&rfc2_kernel);
    g_assert_true(c.rfc2_shared);
    g_assert_cmpint(c.huge, ==, GMEM_HUGE_RFC2);
    g_assert_cmpint(c.convert, ==, GMEM_CONVERT_RFC2);
    g_assert_true(guest_memfd_kvm_can_map(&c));

    c = caps_of(&negative);
    g_assert_cmphex(c.flags, ==, 0);
    g_assert_cmpint(c.convert, ==, GMEM_CONVERT_NONE);
    g_assert_false(guest_memfd_kvm_can_map(&c));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/guest-memfd-kvm-plan/mainline", test_mainline);
    g_test_add_func("/guest-memfd-kvm-plan/old-kernels", test_old_kernels);
    g_test_add_func("/guest-memfd-kvm-plan/mainline-coco",
                    test_mainline_coco);
    g_test_add_func("/guest-memfd-kvm-plan/wip-private", test_wip_private);
    g_test_add_func("/guest-memfd-kvm-plan/wip-shared", test_wip_shared);
    g_test_add_func("/guest-memfd-kvm-plan/rfc2", test_rfc2);
    g_test_add_func("/guest-memfd-kvm-plan/read-caps", test_read_caps);
    return g_test_run();
}
