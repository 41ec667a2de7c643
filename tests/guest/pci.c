/*
 * PCI for the test guest through configuration mechanism #1 (0xcf8/0xcfc):
 * enumerate bus 0, size BARs and assign the ones firmware left at zero (or
 * above 4 GiB, which our page tables do not map) from 0xe0000000 (memory)
 * and 0xc000 (I/O), enable decoding and bus mastering, walk capabilities,
 * and program MSI-X or the IOAPIC route of INTx.
 */
#include "guest.h"
#include <linux/pci_regs.h>

static uint64_t mmio_next = 0xe0000000ull, io_next = 0xc000;

static uint32_t cfg_addr(const struct pci_dev *d, uint8_t off)
{
    return 0x80000000u | ((uint32_t)d->bus << 16) | ((uint32_t)d->slot << 11) | ((uint32_t)d->fn << 8) | (off & 0xfc);
}

uint32_t pci_cfg_read32(const struct pci_dev *d, uint8_t off)
{
    outl(0xcf8, cfg_addr(d, off));
    return inl(0xcfc);
}

uint16_t pci_cfg_read16(const struct pci_dev *d, uint8_t off)
{
    outl(0xcf8, cfg_addr(d, off));
    return inw(0xcfc + (off & 2));
}

uint8_t pci_cfg_read8(const struct pci_dev *d, uint8_t off)
{
    outl(0xcf8, cfg_addr(d, off));
    return inb(0xcfc + (off & 3));
}

void pci_cfg_write32(const struct pci_dev *d, uint8_t off, uint32_t v)
{
    outl(0xcf8, cfg_addr(d, off));
    outl(0xcfc, v);
}

void pci_cfg_write16(const struct pci_dev *d, uint8_t off, uint16_t v)
{
    outl(0xcf8, cfg_addr(d, off));
    outw(0xcfc + (off & 2), v);
}

void pci_cfg_write8(const struct pci_dev *d, uint8_t off, uint8_t v)
{
    outl(0xcf8, cfg_addr(d, off));
    outb(0xcfc + (off & 3), v);
}

/* Size every BAR of a type-0 header (decoding must be off meanwhile). */
static void pci_size_bars(struct pci_dev *d)
{
    uint16_t cmd = pci_cfg_read16(d, PCI_COMMAND);
    pci_cfg_write16(d, PCI_COMMAND, cmd & ~(PCI_COMMAND_IO | PCI_COMMAND_MEMORY));
    for (int i = 0; i < 6; i++) {
        uint8_t off = PCI_BASE_ADDRESS_0 + 4 * i;
        uint32_t orig = pci_cfg_read32(d, off);
        pci_cfg_write32(d, off, 0xffffffff);
        uint32_t mask = pci_cfg_read32(d, off);
        pci_cfg_write32(d, off, orig);
        if (!mask || mask == 0xffffffff) {
            continue;
        }
        if (orig & PCI_BASE_ADDRESS_SPACE_IO) {
            d->bar_io[i] = true;
            d->bar[i] = orig & PCI_BASE_ADDRESS_IO_MASK;
            d->bar_size[i] = (~(mask & PCI_BASE_ADDRESS_IO_MASK) + 1) & 0xffff;
            continue;
        }
        uint64_t base = orig & PCI_BASE_ADDRESS_MEM_MASK;
        uint64_t m = mask & PCI_BASE_ADDRESS_MEM_MASK;
        if ((orig & PCI_BASE_ADDRESS_MEM_TYPE_MASK) == PCI_BASE_ADDRESS_MEM_TYPE_64 && i < 5) {
            uint32_t orig_hi = pci_cfg_read32(d, off + 4);
            pci_cfg_write32(d, off + 4, 0xffffffff);
            uint32_t mask_hi = pci_cfg_read32(d, off + 4);
            pci_cfg_write32(d, off + 4, orig_hi);
            base |= (uint64_t)orig_hi << 32;
            m |= (uint64_t)mask_hi << 32;
            d->bar[i] = base;
            d->bar_size[i] = ~m + 1;
            i++;        /* the upper half is not a BAR of its own */
            d->bar_size[i] = 0;
            d->bar[i] = 0;
            continue;
        }
        d->bar[i] = base;
        d->bar_size[i] = (uint32_t)(~(uint32_t)m + 1);
    }
    pci_cfg_write16(d, PCI_COMMAND, cmd);
}

static void note_assigned(const struct pci_dev *d)
{
    for (int i = 0; i < 6; i++) {
        if (!d->bar_size[i] || !d->bar[i]) {
            continue;
        }
        uint64_t end = d->bar[i] + d->bar_size[i];
        if (d->bar_io[i] && d->bar[i] >= 0xc000 && end <= 0x10000 && end > io_next) {
            io_next = end;
        } else if (!d->bar_io[i] && d->bar[i] >= 0xe0000000ull && end <= 0xf0000000ull && end > mmio_next) {
            mmio_next = end;
        }
    }
}

/* Read one function's identity, BARs and interrupt registers into d
 * (bus/slot/fn set); false when nothing answers there. *hdr gets its
 * header type byte. Only type-0 headers are filled in. */
static bool pci_read_function(struct pci_dev *d, uint8_t *hdr)
{
    uint32_t id = pci_cfg_read32(d, PCI_VENDOR_ID);
    if ((id & 0xffff) == 0xffff || (id & 0xffff) == 0) {
        return false;
    }
    d->vendor = id & 0xffff;
    d->device = id >> 16;
    d->subsys_device = pci_cfg_read16(d, PCI_SUBSYSTEM_ID);
    *hdr = pci_cfg_read8(d, PCI_HEADER_TYPE);
    if ((*hdr & 0x7f) == PCI_HEADER_TYPE_NORMAL) {
        pci_size_bars(d);
        note_assigned(d);
        d->irq_line = pci_cfg_read8(d, PCI_INTERRUPT_LINE);
        d->irq_pin = pci_cfg_read8(d, PCI_INTERRUPT_PIN);
        d->msix_cap = pci_find_cap(d, PCI_CAP_ID_MSIX, 0);
    }
    return true;
}

int pci_scan(struct pci_dev *devs, int max)
{
    int n = 0;
    for (int slot = 0; slot < 32; slot++) {
        for (int fn = 0; fn < 8 && n < max; fn++) {
            struct pci_dev d = { .bus = 0, .slot = (uint8_t)slot, .fn = (uint8_t)fn };
            uint8_t hdr = 0;
            if (!pci_read_function(&d, &hdr)) {
                if (fn == 0) {
                    break;
                }
                continue;
            }
            if ((hdr & 0x7f) == PCI_HEADER_TYPE_NORMAL) {
                devs[n++] = d;
            }
            if (fn == 0 && !(hdr & 0x80)) {
                break;
            }
        }
    }
    return n;
}

bool pci_probe_slot(struct pci_dev *d, unsigned slot)
{
    uint8_t hdr = 0;
    *d = (struct pci_dev){ .bus = 0, .slot = (uint8_t)slot, .fn = 0 };
    return pci_read_function(d, &hdr) && (hdr & 0x7f) == PCI_HEADER_TYPE_NORMAL;
}

void pci_enable(struct pci_dev *d)
{
    uint16_t cmd = pci_cfg_read16(d, PCI_COMMAND);
    pci_cfg_write16(d, PCI_COMMAND, cmd & ~(PCI_COMMAND_IO | PCI_COMMAND_MEMORY));
    for (int i = 0; i < 6; i++) {
        uint64_t size = d->bar_size[i];
        if (!size) {
            continue;
        }
        uint8_t off = PCI_BASE_ADDRESS_0 + 4 * i;
        if (d->bar_io[i]) {
            if (!d->bar[i]) {
                io_next = ALIGN_UP(io_next, size);
                d->bar[i] = io_next;
                io_next += size;
                pci_cfg_write32(d, off, (uint32_t)d->bar[i]);
            }
            continue;
        }
        bool is64 = (pci_cfg_read32(d, off) & PCI_BASE_ADDRESS_MEM_TYPE_MASK) == PCI_BASE_ADDRESS_MEM_TYPE_64;
        if (!d->bar[i] || d->bar[i] + size > 0xfec00000ull) {
            if (size < 4096) {
                size = 4096;
            }
            mmio_next = ALIGN_UP(mmio_next, size);
            d->bar[i] = mmio_next;
            mmio_next += size;
            uint32_t flags = pci_cfg_read32(d, off) & 0xf;
            pci_cfg_write32(d, off, (uint32_t)d->bar[i] | flags);
            if (is64) {
                pci_cfg_write32(d, off + 4, 0);
            }
        }
        if (is64) {
            i++;
        }
    }
    pci_cfg_write16(d, PCI_COMMAND, cmd | PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
}

uint8_t pci_find_cap(const struct pci_dev *d, uint8_t id, uint8_t start)
{
    if (!(pci_cfg_read16(d, PCI_STATUS) & PCI_STATUS_CAP_LIST)) {
        return 0;
    }
    uint8_t pos = start ? pci_cfg_read8(d, start + PCI_CAP_LIST_NEXT) : pci_cfg_read8(d, PCI_CAPABILITY_LIST);
    /* A hostile or broken list may loop: 48 hops cover all of 256 bytes. */
    for (int hops = 0; pos >= 0x40 && hops < 48; hops++) {
        pos &= ~3;
        if (pci_cfg_read8(d, pos + PCI_CAP_LIST_ID) == id) {
            return pos;
        }
        pos = pci_cfg_read8(d, pos + PCI_CAP_LIST_NEXT);
    }
    return 0;
}

bool pci_msix_set(struct pci_dev *d, unsigned entry, int vector)
{
    if (!d->msix_cap || vector < 0) {
        return false;
    }
    uint16_t ctrl = pci_cfg_read16(d, d->msix_cap + PCI_MSIX_FLAGS);
    unsigned nent = (ctrl & PCI_MSIX_FLAGS_QSIZE) + 1;
    uint32_t tbl = pci_cfg_read32(d, d->msix_cap + PCI_MSIX_TABLE);
    unsigned bir = tbl & PCI_MSIX_TABLE_BIR;
    if (entry >= nent || bir > 5 || !d->bar[bir] || d->bar_io[bir]) {
        return false;
    }
    uint64_t e = d->bar[bir] + (tbl & PCI_MSIX_TABLE_OFFSET) + 16ull * entry;
    mmio_write32(e + PCI_MSIX_ENTRY_LOWER_ADDR, 0xfee00000u | (lapic_id() << 12));
    mmio_write32(e + PCI_MSIX_ENTRY_UPPER_ADDR, 0);
    mmio_write32(e + PCI_MSIX_ENTRY_DATA, (uint32_t)vector);
    mmio_write32(e + PCI_MSIX_ENTRY_VECTOR_CTRL, 0);
    return true;
}

void pci_msix_enable(struct pci_dev *d)
{
    uint16_t ctrl = pci_cfg_read16(d, d->msix_cap + PCI_MSIX_FLAGS);
    ctrl = (ctrl | PCI_MSIX_FLAGS_ENABLE) & ~PCI_MSIX_FLAGS_MASKALL;
    pci_cfg_write16(d, d->msix_cap + PCI_MSIX_FLAGS, ctrl);
    /* INTx is meaningless with MSI-X on; keep it quiet anyway. */
    pci_cfg_write16(d, PCI_COMMAND, pci_cfg_read16(d, PCI_COMMAND) | PCI_COMMAND_INTX_DISABLE);
}

/* On QEMU's pc machine INTx reaches the IOAPIC through the PIIX3/PIIX4
 * PCI-to-ISA bridge at 00:01.0, whose PIRQA-D route registers (0x60-0x63)
 * pick an ISA IRQ (bit 7 = disabled). Device pin P of slot S uses PIRQ
 * (S - 1 + P - 1) & 3. SeaBIOS programs them; qboot (the firmware the tests
 * use with QEMU because it boots in a fraction of SeaBIOS's time) writes
 * PCI_INTERRUPT_LINE but leaves the routers disabled, so the guest does the
 * firmware's part: it enables a disabled router with the device's line, and
 * trusts an enabled router over the line register. Returns the line to use. */
static uint8_t piix_pirq_fixup(struct pci_dev *d)
{
    struct pci_dev isa = { .bus = 0, .slot = 1, .fn = 0 };
    uint32_t id = pci_cfg_read32(&isa, PCI_VENDOR_ID);
    if (id != 0x70008086u && id != 0x71108086u) {
        return d->irq_line;     /* not a PIIX (qnic-vmm routes pins straight to the IOAPIC) */
    }
    uint8_t reg = 0x60 + ((d->slot - 1 + d->irq_pin - 1) & 3);
    uint8_t route = pci_cfg_read8(&isa, reg);
    if (!(route & 0x80) && (route & 0x0f) >= 3) {
        return route & 0x0f;
    }
    if (d->irq_line >= 3 && d->irq_line < 16) {
        pci_cfg_write8(&isa, reg, d->irq_line);
        report("intx pirq=%c irq=%u: router was disabled, enabled it", 'A' + (reg - 0x60), d->irq_line);
    }
    return d->irq_line;
}

/* A device plugged after boot has no PCI_INTERRUPT_LINE (firmware fills
 * it in at boot only; an OS takes it from ACPI's _PRT). Do firmware's part:
 * on QEMU's PIIX, the line of the slot's PIRQ router, or IRQ 11 (enabled by
 * pci_intx_route) when the router is off; on qnic-vmm, which routes pins
 * straight to the IOAPIC, GSI 16 + ((slot + pin - 1) & 3) (docs/vmm.md). */
void pci_hotplug_fill_line(struct pci_dev *d)
{
    struct pci_dev isa = { .bus = 0, .slot = 1, .fn = 0 };
    uint32_t id = pci_cfg_read32(&isa, PCI_VENDOR_ID);

    if (!d->irq_pin || (d->irq_line && d->irq_line != 0xff)) {
        return;
    }
    if (id == 0x70008086u || id == 0x71108086u) {
        uint8_t route = pci_cfg_read8(&isa, 0x60 + ((d->slot - 1 + d->irq_pin - 1) & 3));
        d->irq_line = !(route & 0x80) && (route & 0x0f) >= 3 ? (route & 0x0f) : 11;
    } else {
        d->irq_line = (uint8_t)(16 + ((d->slot + d->irq_pin - 1) & 3));
    }
    pci_cfg_write8(d, PCI_INTERRUPT_LINE, d->irq_line);
}

bool pci_intx_route(struct pci_dev *d, int vector)
{
    if (!d->irq_pin || !d->irq_line || d->irq_line == 0xff) {
        report("intx slot=%u pin=%u line=%u: no route, polling", d->slot, d->irq_pin, d->irq_line);
        return false;
    }
    uint8_t line = piix_pirq_fixup(d);
    report("intx slot=%u pin=%u line=%u ioapic-pin=%u", d->slot, d->irq_pin, d->irq_line, line);
    return ioapic_route(line, vector);
}
