/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * gmem-guest's runtime: the console on COM1, numbers in and out, PCI
 * config space, and the way out (isa-debug-exit)
 */

#include "guest.h"

#define COM1            0x3f8
#define COM_DATA        0
#define COM_LSR         5
#define LSR_DATA_READY  0x01
#define LSR_THR_EMPTY   0x20

#define DEBUG_EXIT_PORT 0xf4

#define PCI_ADDR        0xcf8
#define PCI_DATA        0xcfc

void con_putc(char c)
{
    if (c == '\n') {
        con_putc('\r');
    }
    while (!(inb(COM1 + COM_LSR) & LSR_THR_EMPTY)) {
        ;
    }
    outb(COM1 + COM_DATA, c);
}

int con_getc(void)
{
    while (!(inb(COM1 + COM_LSR) & LSR_DATA_READY)) {
        asm volatile("pause");
    }
    return inb(COM1 + COM_DATA);
}

size_t con_getline(char *buf, size_t size)
{
    size_t n = 0;
    int c;

    while ((c = con_getc()) != '\n') {
        if (c != '\r' && n + 1 < size) {
            buf[n++] = c;
        }
    }
    buf[n] = 0;
    return n;
}

static void put_str(const char *s)
{
    while (*s) {
        con_putc(*s++);
    }
}

static void put_num(uint64_t v, unsigned base, int width, char pad)
{
    char digits[24];
    int n = 0;

    do {
        digits[n++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    while (width-- > n) {
        con_putc(pad);
    }
    while (n) {
        con_putc(digits[--n]);
    }
}

/* %s %c %d %u %x with l/ll and a zero-padded width; %p; %% */
void con_vprintf(const char *fmt, va_list ap)
{
    for (; *fmt; fmt++) {
        int width = 0, longs = 0;
        char pad = ' ';
        uint64_t v;

        if (*fmt != '%') {
            con_putc(*fmt);
            continue;
        }
        fmt++;
        if (*fmt == '0') {
            pad = '0';
        }
        while (*fmt >= '0' && *fmt <= '9') {
            width = width * 10 + *fmt++ - '0';
        }
        while (*fmt == 'l') {
            longs++;
            fmt++;
        }
        switch (*fmt) {
        case 's':
            put_str(va_arg(ap, const char *));
            break;
        case 'c':
            con_putc(va_arg(ap, int));
            break;
        case 'd':
            v = longs ? va_arg(ap, long) : va_arg(ap, int);
            if ((int64_t)v < 0) {
                con_putc('-');
                v = -v;
            }
            put_num(v, 10, width, pad);
            break;
        case 'u':
        case 'x':
            v = longs ? va_arg(ap, unsigned long) : va_arg(ap, unsigned);
            put_num(v, *fmt == 'x' ? 16 : 10, width, pad);
            break;
        case 'p':
            put_str("0x");
            put_num((uintptr_t)va_arg(ap, void *), 16, 0, ' ');
            break;
        default:
            con_putc(*fmt);
            break;
        }
    }
}

void con_printf(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    con_vprintf(fmt, ap);
    va_end(ap);
}

uint64_t parse_u64(const char **s)
{
    const char *p = *s;
    unsigned base = 10;
    uint64_t v = 0;

    while (*p == ' ') {
        p++;
    }
    if (p[0] == '0' && p[1] == 'x') {
        base = 16;
        p += 2;
    }
    for (;; p++) {
        unsigned d;

        if (*p >= '0' && *p <= '9') {
            d = *p - '0';
        } else if (base == 16 && *p >= 'a' && *p <= 'f') {
            d = *p - 'a' + 10;
        } else {
            break;
        }
        v = v * base + d;
    }
    *s = p;
    return v;
}

bool str_eq(const char *a, const char *b)
{
    while (*a && *a == *b) {
        a++;
        b++;
    }
    return *a == *b;
}

bool str_starts(const char *s, const char *prefix)
{
    while (*prefix && *s == *prefix) {
        s++;
        prefix++;
    }
    return !*prefix;
}

char *str_cat(char *buf, size_t size, const char *a, const char *b)
{
    size_t n = 0;

    for (const char *s = a; *s && n + 1 < size; s++) {
        buf[n++] = *s;
    }
    for (const char *s = b; *s && n + 1 < size; s++) {
        buf[n++] = *s;
    }
    buf[n] = 0;
    return buf;
}

/* The compiler may emit calls to it for large zeroed objects. */
void *memset(void *p, int c, size_t n)
{
    unsigned char *b = p;

    while (n--) {
        *b++ = c;
    }
    return p;
}

void guest_exit(uint32_t code)
{
    /* isa-debug-exit: QEMU exits with (code << 1) | 1. */
    outl(DEBUG_EXIT_PORT, code);
    for (;;) {
        asm volatile("cli; hlt");
    }
}

/* boot.S: an exception is a bug of this kernel (or a host that broke it). */
void guest_exception(uint64_t vector, uint64_t error, uint64_t rip)
{
    uint64_t cr2;

    asm volatile("mov %%cr2, %0" : "=r"(cr2));
    con_printf("\nBail out! exception %lu (error 0x%lx) at rip 0x%lx,"
               " cr2 0x%lx\n", vector, error, rip, cr2);
    guest_exit(0x7f);
}

static uint32_t pci_addr(unsigned bdf, unsigned reg)
{
    return 0x80000000u | (bdf << 8) | (reg & 0xfc);
}

uint32_t pci_read32(unsigned bdf, unsigned reg)
{
    outl(PCI_ADDR, pci_addr(bdf, reg));
    return inl(PCI_DATA);
}

void pci_write32(unsigned bdf, unsigned reg, uint32_t v)
{
    outl(PCI_ADDR, pci_addr(bdf, reg));
    outl(PCI_DATA, v);
}

int pci_find(uint16_t vendor, uint16_t device)
{
    for (unsigned bdf = 0; bdf < 256; bdf++) {
        if (pci_read32(bdf, 0) == ((uint32_t)device << 16 | vendor)) {
            return bdf;
        }
    }
    return -1;
}
