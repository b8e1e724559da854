/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * guest-memfd-psc: guest page-state change requests over PCI
 *
 * A guest writes a list in the GHCB Page State Change format (as an SEV-SNP
 * guest hands to its hypervisor) into its memory, puts the list's address
 * in BUF_LO/BUF_HI and writes DOORBELL.  The device reads the list, checks
 * every entry before anything changes, merges runs of contiguous entries
 * with the same operation into one conversion, converts them through the
 * page-state core, and writes progress back the way a hypervisor does:
 * cur_entry past the completed entries, cur_page inside a partly done one.
 * The guest is untrusted: every field is checked, the list is bounded by
 * the buffer size, and a bad list fails as a whole before any change.
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qemu/bswap.h"
#include "qemu/module.h"
#include "qemu/units.h"
#include "hw/pci/pci_device.h"
#include "hw/misc/guest-memfd-psc.h"
#include "system/guest-memfd.h"
#include "trace.h"

OBJECT_DECLARE_SIMPLE_TYPE(GuestMemfdPscState, GUEST_MEMFD_PSC)

struct GuestMemfdPscState {
    PCIDevice parent_obj;
    MemoryRegion mmio;

    uint64_t buf;
    uint32_t status;
    uint32_t error_entry;
    uint32_t entries_done;
    uint32_t conversions;
};

typedef struct PscEntry {
    hwaddr gpa;             /* first byte still to convert */
    uint64_t size;          /* bytes still to convert */
    uint64_t page_size;     /* 4 KiB or 2 MiB */
    bool to_private;
} PscEntry;

/* Decode entry @raw; false if the guest broke any rule of the format. */
static bool psc_decode(uint64_t raw, PscEntry *e)
{
    unsigned op = extract64(raw, PSC_ENTRY_OP_SHIFT, 4);
    unsigned cur_page = extract64(raw, PSC_ENTRY_CUR_PAGE_SHIFT, 12);
    uint64_t gfn = extract64(raw, PSC_ENTRY_GFN_SHIFT, 40);
    uint64_t pages;

    if ((raw & PSC_ENTRY_RESERVED_MASK) ||
        (op != PSC_OP_PRIVATE && op != PSC_OP_SHARED)) {
        return false;
    }
    e->page_size = raw & PSC_ENTRY_2M ? 2 * MiB : 4 * KiB;
    pages = e->page_size / (4 * KiB);
    if (cur_page > pages || (gfn << 12) % e->page_size) {
        return false;
    }
    e->to_private = op == PSC_OP_PRIVATE;
    e->gpa = (gfn << 12) + cur_page * 4 * KiB;
    e->size = (pages - cur_page) * 4 * KiB;
    return true;
}

static bool psc_dma(GuestMemfdPscState *s, hwaddr addr, void *buf,
                    hwaddr len, bool write)
{
    MemTxResult r = write ?
        pci_dma_write(PCI_DEVICE(s), addr, buf, len) :
        pci_dma_read(PCI_DEVICE(s), addr, buf, len);

    return r == MEMTX_OK;
}

/* Record that entries [0, next) are done and entry @next is @cur_page in. */
static void psc_write_progress(GuestMemfdPscState *s, uint64_t *entries,
                               unsigned next, unsigned end)
{
    uint16_t hdr = cpu_to_le16(next);

    s->entries_done = next;
    if (next <= end && next < PSC_MAX_ENTRIES) {
        uint64_t le = cpu_to_le64(entries[next]);
        psc_dma(s, s->buf + PSC_HDR_SIZE + next * 8, &le, 8, true);
    }
    psc_dma(s, s->buf, &hdr, sizeof(hdr), true);
}

static uint32_t psc_process(GuestMemfdPscState *s)
{
    uint8_t hdr[PSC_HDR_SIZE];
    uint64_t entries[PSC_MAX_ENTRIES];
    PscEntry e[PSC_MAX_ENTRIES];
    unsigned cur, end, i;

    s->error_entry = 0;
    s->entries_done = 0;
    s->conversions = 0;
    if (!psc_dma(s, s->buf, hdr, sizeof(hdr), false)) {
        return PSC_STATUS_DMA_ERROR;
    }
    cur = lduw_le_p(hdr);
    end = lduw_le_p(hdr + 2);
    trace_guest_memfd_psc_list(s->buf, cur, end);
    if (end >= PSC_MAX_ENTRIES || cur > end + 1) {
        return PSC_STATUS_BAD_HEADER;
    }
    if (cur > end) {
        s->entries_done = cur;
        return PSC_STATUS_OK;
    }
    if (!psc_dma(s, s->buf + PSC_HDR_SIZE + cur * 8, &entries[cur],
                 (end - cur + 1) * 8, false)) {
        return PSC_STATUS_DMA_ERROR;
    }

    /* Check every entry before converting anything. */
    for (i = cur; i <= end; i++) {
        entries[i] = le64_to_cpu(entries[i]);
        Error *err = NULL;

        if (!psc_decode(entries[i], &e[i])) {
            s->error_entry = i;
            return PSC_STATUS_BAD_ENTRY;
        }
        if (e[i].size && !guest_memfd_range_is_convertible(e[i].gpa,
                                                           e[i].size, &err)) {
            trace_guest_memfd_psc_bad_gpa(i, e[i].gpa, error_get_pretty(err));
            error_free(err);
            s->error_entry = i;
            return PSC_STATUS_BAD_GPA;
        }
    }

    /* Convert runs of contiguous entries with the same operation at once. */
    i = cur;
    while (i <= end) {
        unsigned last = i;
        uint64_t size = e[i].size, done = 0;
        Error *err = NULL;

        while (last < end && e[last + 1].to_private == e[i].to_private &&
               e[last + 1].gpa == e[i].gpa + size) {
            last++;
            size += e[last].size;
        }
        if (size) {
            s->conversions++;
            trace_guest_memfd_psc_convert(i, last, e[i].gpa, size,
                                          e[i].to_private);
            if (!guest_memfd_convert_gpa(e[i].gpa, size, e[i].to_private,
                                         &done, &err)) {
                /* Report exactly how far the kernel got. */
                while (done >= e[i].size) {
                    done -= e[i].size;
                    i++;
                }
                entries[i] = deposit64(entries[i], PSC_ENTRY_CUR_PAGE_SHIFT,
                                       12, extract64(entries[i],
                                                     PSC_ENTRY_CUR_PAGE_SHIFT,
                                                     12) + done / (4 * KiB));
                trace_guest_memfd_psc_failed(i, error_get_pretty(err));
                error_free(err);
                s->error_entry = i;
                psc_write_progress(s, entries, i, end);
                return PSC_STATUS_CONVERT_FAILED;
            }
        }
        i = last + 1;
    }
    psc_write_progress(s, entries, end + 1, end);
    return PSC_STATUS_OK;
}

static uint64_t psc_read(void *opaque, hwaddr addr, unsigned size)
{
    GuestMemfdPscState *s = opaque;

    switch (addr) {
    case PSC_REG_ID:
        return PSC_ID;
    case PSC_REG_VERSION:
        return 1;
    case PSC_REG_BUF_LO:
        return (uint32_t)s->buf;
    case PSC_REG_BUF_HI:
        return s->buf >> 32;
    case PSC_REG_STATUS:
        return s->status;
    case PSC_REG_ERROR_ENTRY:
        return s->error_entry;
    case PSC_REG_ENTRIES_DONE:
        return s->entries_done;
    case PSC_REG_CONVERSIONS:
        return s->conversions;
    case PSC_REG_MAX_ENTRIES:
        return PSC_MAX_ENTRIES;
    default:
        return 0;
    }
}

static void psc_write(void *opaque, hwaddr addr, uint64_t val, unsigned size)
{
    GuestMemfdPscState *s = opaque;

    switch (addr) {
    case PSC_REG_BUF_LO:
        s->buf = deposit64(s->buf, 0, 32, val);
        break;
    case PSC_REG_BUF_HI:
        s->buf = deposit64(s->buf, 32, 32, val);
        break;
    case PSC_REG_DOORBELL:
        if (val == PSC_DOORBELL_RING) {
            s->status = psc_process(s);
            trace_guest_memfd_psc_done(s->status, s->entries_done,
                                       s->conversions);
        }
        break;
    default:
        break;
    }
}

static const MemoryRegionOps psc_mmio_ops = {
    .read = psc_read,
    .write = psc_write,
    .endianness = DEVICE_LITTLE_ENDIAN,
    .valid = {
        .min_access_size = 4,
        .max_access_size = 4,
    },
};

static void psc_realize(PCIDevice *pdev, Error **errp)
{
    GuestMemfdPscState *s = GUEST_MEMFD_PSC(pdev);

    memory_region_init_io(&s->mmio, OBJECT(s), &psc_mmio_ops, s,
                          "guest-memfd-psc", PSC_MMIO_SIZE);
    pci_register_bar(pdev, 0, PCI_BASE_ADDRESS_SPACE_MEMORY, &s->mmio);
}

static void psc_reset(DeviceState *dev)
{
    GuestMemfdPscState *s = GUEST_MEMFD_PSC(dev);

    s->buf = 0;
    s->status = PSC_STATUS_OK;
    s->error_entry = 0;
    s->entries_done = 0;
    s->conversions = 0;
}

static void psc_class_init(ObjectClass *oc, void *data)
{
    DeviceClass *dc = DEVICE_CLASS(oc);
    PCIDeviceClass *k = PCI_DEVICE_CLASS(oc);

    k->realize = psc_realize;
    k->vendor_id = PSC_PCI_VENDOR_ID;
    k->device_id = PSC_PCI_DEVICE_ID;
    k->revision = 1;
    k->class_id = PCI_CLASS_OTHERS;
    device_class_set_legacy_reset(dc, psc_reset);
    dc->desc = "guest page-state change requests for in-place guest_memfd";
    set_bit(DEVICE_CATEGORY_MISC, dc->categories);
}

static const TypeInfo psc_info = {
    .name = TYPE_GUEST_MEMFD_PSC,
    .parent = TYPE_PCI_DEVICE,
    .instance_size = sizeof(GuestMemfdPscState),
    .class_init = psc_class_init,
    .interfaces = (InterfaceInfo[]) {
        { INTERFACE_CONVENTIONAL_PCI_DEVICE },
        { },
    },
};

static void psc_register_types(void)
{
    type_register_static(&psc_info);
}

type_init(psc_register_types)
