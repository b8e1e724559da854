/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * guest-memfd-psc: a PCI device through which a guest asks for page state
 * changes in the GHCB Page State Change format.  Register interface:
 * docs/specs/guest-memfd-psc.rst.
 */

#ifndef HW_MISC_GUEST_MEMFD_PSC_H
#define HW_MISC_GUEST_MEMFD_PSC_H

#define TYPE_GUEST_MEMFD_PSC        "guest-memfd-psc"

#define PSC_PCI_VENDOR_ID           0x1234      /* PCI_VENDOR_ID_QEMU */
#define PSC_PCI_DEVICE_ID           0x11f0

/* BAR 0 registers (32 bit, little endian). */
#define PSC_REG_ID                  0x00        /* RO: PSC_ID */
#define PSC_REG_VERSION             0x04        /* RO: 1 */
#define PSC_REG_BUF_LO              0x08        /* RW: GPA of the buffer */
#define PSC_REG_BUF_HI              0x0c
#define PSC_REG_DOORBELL            0x10        /* WO: process the list */
#define PSC_REG_STATUS              0x14        /* RO: PSC_STATUS_* */
#define PSC_REG_ERROR_ENTRY         0x18        /* RO: entry that failed */
#define PSC_REG_ENTRIES_DONE        0x1c        /* RO: entries completed */
#define PSC_REG_CONVERSIONS         0x20        /* RO: conversions issued */
#define PSC_REG_MAX_ENTRIES         0x24        /* RO: PSC_MAX_ENTRIES */
#define PSC_MMIO_SIZE               0x1000

#define PSC_ID                      0x31435350  /* "PSC1" */
#define PSC_DOORBELL_RING           1

#define PSC_STATUS_OK               0
#define PSC_STATUS_BAD_HEADER       1   /* cur_entry > end_entry or too many */
#define PSC_STATUS_BAD_ENTRY        2   /* reserved bits, operation, size */
#define PSC_STATUS_BAD_GPA          3   /* not in-place guest_memfd RAM */
#define PSC_STATUS_DMA_ERROR        4   /* buffer not readable/writable */
#define PSC_STATUS_CONVERT_FAILED   5   /* the kernel refused (partial) */

/* The GHCB shared buffer: an 8-byte header and up to 253 entries. */
#define PSC_MAX_ENTRIES             253
#define PSC_HDR_SIZE                8
#define PSC_BUF_SIZE                (PSC_HDR_SIZE + 8 * PSC_MAX_ENTRIES)

/* Entry layout (64 bit). */
#define PSC_ENTRY_CUR_PAGE_SHIFT    0           /* 12 bits */
#define PSC_ENTRY_GFN_SHIFT         12          /* 40 bits */
#define PSC_ENTRY_OP_SHIFT          52          /* 4 bits */
#define PSC_ENTRY_2M                (1ULL << 56)
#define PSC_ENTRY_RESERVED_MASK     (0x7fULL << 57)
#define PSC_OP_PRIVATE              1
#define PSC_OP_SHARED               2

#endif
