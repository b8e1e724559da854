/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * gmem-guest: a freestanding x86-64 test kernel that asks its hypervisor
 * to convert its own memory, as a confidential guest does
 *
 * boot.S takes it from multiboot's 32-bit entry to long mode (the first
 * 8 GiB identity-mapped with 2 MiB pages); runtime.c gives it a serial
 * console, PCI config space and an exit; request.c is the one way it asks
 * for a conversion (a KVM hypercall under KVM, the guest-memfd-psc device
 * under TCG); scenarios.c holds the tests, one function each.
 */

#ifndef GMEM_GUEST_H
#define GMEM_GUEST_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PAGE_SIZE       4096ULL
#define MiB             (1024ULL * 1024)
#define GiB             (1024 * MiB)

/* Linux errno values: what the hypervisor answers with (negated). */
#define EPERM           1
#define EIO             5
#define EAGAIN          11
#define ENOMEM          12
#define EFAULT          14
#define EINVAL          22
#define EOPNOTSUPP      95
#define KVM_ENOSYS      1000

static inline void outb(uint16_t port, uint8_t v)
{
    asm volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
    uint8_t v;

    asm volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

static inline void outl(uint16_t port, uint32_t v)
{
    asm volatile("outl %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint32_t inl(uint16_t port)
{
    uint32_t v;

    asm volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

static inline uint64_t rdtsc(void)
{
    uint32_t lo, hi;

    asm volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}

static inline void cpuid(uint32_t leaf, uint32_t *a, uint32_t *b,
                         uint32_t *c, uint32_t *d)
{
    asm volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d)
                 : "a"(leaf), "c"(0));
}

/*
 * A word of guest memory: volatile, because the host changes what lies
 * behind it (conversions, the PSC device) where the compiler cannot see.
 */
static inline volatile uint64_t *at(uint64_t gpa)
{
    /* See above: no access may be cached or dropped. */
    return (volatile uint64_t *)(uintptr_t)gpa;
}

/* boot.S calls these */
void guest_main(void);
void guest_exception(uint64_t vector, uint64_t error, uint64_t rip);

/* runtime.c */
void con_putc(char c);
int con_getc(void);                         /* waits for a byte */
size_t con_getline(char *buf, size_t size); /* without the newline */
void con_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void con_vprintf(const char *fmt, va_list ap);
uint64_t parse_u64(const char **s);         /* hex with 0x, else decimal */
bool str_eq(const char *a, const char *b);
bool str_starts(const char *s, const char *prefix);
/* @a then @b into @buf (cut to @size); returns @buf */
char *str_cat(char *buf, size_t size, const char *a, const char *b);
void *memset(void *p, int c, size_t n);
__attribute__((noreturn)) void guest_exit(uint32_t code);

uint32_t pci_read32(unsigned bdf, unsigned reg);
void pci_write32(unsigned bdf, unsigned reg, uint32_t v);
/* bdf of the first function with these ids on bus 0, or -1 */
int pci_find(uint16_t vendor, uint16_t device);

/* request.c: how this guest asks for conversions */
typedef enum RequestPath {
    REQUEST_HYPERCALL,          /* KVM_HC_MAP_GPA_RANGE (KVM) */
    REQUEST_PSC,                /* the guest-memfd-psc device (any accel) */
} RequestPath;

typedef struct Request {
    uint64_t gpa;
    uint64_t npages;            /* 4 KiB pages */
    bool to_private;
    unsigned page_size_hint;    /* 0: 4K, 1: 2M, 2: 1G (KVM's encoding) */
    uint64_t attrs_extra;       /* bits a hostile guest adds */
} Request;

typedef struct Answer {
    long ret;                   /* 0 or a negated errno */
    /* Pages from gpa known to be converted (the PSC device says). */
    uint64_t pages_done;
    bool pages_known;
} Answer;

bool request_init(RequestPath path);
const char *request_path_name(void);
RequestPath request_path(void);
Answer request(const Request *req);
/* Convenience: convert @npages at @gpa, 0 or a negated errno. */
long convert(uint64_t gpa, uint64_t npages, bool to_private);
/* A hypercall the host does not serve, for the round-trip baseline. */
long null_hypercall(void);

/* scenarios.c */
typedef struct Scenario {
    const char *name;
    /* 0 passes; otherwise the failing check was printed (not ok). */
    int (*run)(const char *args);
} Scenario;

extern const Scenario scenarios[];

/*
 * Checks: print a TAP diagnostic and count a failure, so that a scenario
 * reports every failed check before "not ok".
 */
extern int check_failures;
#define CHECK(cond, ...)                                                \
    do {                                                                \
        if (!(cond)) {                                                  \
            con_printf("# %s:%d: check failed: %s: ", __FILE__,         \
                       __LINE__, #cond);                                \
            con_printf(__VA_ARGS__);                                    \
            con_printf("\n");                                           \
            check_failures++;                                           \
        }                                                               \
    } while (0)

/* Hand the host a moment: it checks its side, then says "go". */
bool host_sync(const char *label);

#endif
