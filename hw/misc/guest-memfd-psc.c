/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * guest-memfd-psc: guest page-state change requests over PCI
 *
 * A guest writes a list in the GHCB Page State Change format (as an SEV-SNP
 * guest hands to its hypervisor) into its memory, puts the list's address
 * in BUF_LO/BUF_HI and writes DOORBELL.  The list is processed by
 * guest-memfd-psc-list.c with the device's DMA for memory access and the
 * page-state core for conversions; the registers report the outcome.
 * Register interface: docs/specs/guest-memfd-psc.rst.
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qemu/module.h"
#include "hw/pci/pci_device.h"
#include "hw/misc/guest-memfd-psc-list.h"
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

static bool psc_dma_read(void *opaque, uint64_t gpa, void *buf, uint64_t len)
{
    return pci_dma_read(PCI_DEVICE(opaque), gpa, buf, len) == MEMTX_OK;
}

static bool psc_dma_write(void *opaque, uint64_t gpa, const void *buf,
                          uint64_t len)
{
    return pci_dma_write(PCI_DEVICE(opaque), gpa, buf, len) == MEMTX_OK;
}

static bool psc_check(void *opaque, uint64_t gpa, uint64_t size,
                      Error **errp)
{
    return guest_memfd_range_is_convertible(gpa, size, errp);
}

static bool psc_convert(void *opaque, uint64_t gpa, uint64_t size,
                        bool to_private, uint64_t *done, Error **errp)
{
    return !guest_memfd_convert_gpa(gpa, size, to_private, done, errp);
}

static const PscListOps psc_list_ops = {
    .read = psc_dma_read,
    .write = psc_dma_write,
    .check = psc_check,
    .convert = psc_convert,
};

static void psc_doorbell(GuestMemfdPscState *s)
{
    PscListResult res;

    psc_list_process(s->buf, &psc_list_ops, s, true, &res);
    s->status = res.status;
    s->error_entry = res.error_entry;
    s->entries_done = res.entries_done;
    s->conversions = res.conversions;
    trace_guest_memfd_psc_done(s->status, s->entries_done, s->conversions);
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
            psc_doorbell(s);
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
