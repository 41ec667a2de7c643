/*
 * The PCI bus and the i440FX-compatible host: configuration mechanism #1 at
 * 0xcf8/0xcfc, the host bridge at 00.0 (8086:1237) and the PIIX3 functions
 * QEMU's pc machine always has at slot 1 (ISA bridge, IDE, ACPI PM) as
 * config-space-only stand-ins, so a bus walk sees what it sees on QEMU.
 *
 * INTx routing: a device's pin lands on PIRQ link (slot - 1 + pin - 1) & 3,
 * QEMU's i440FX swizzle. When the PIIX3 PIRQ route register of that link
 * (0x60..0x63) is enabled, the link drives that ISA IRQ, as on QEMU; while
 * it is disabled (reset state, no firmware), it drives IOAPIC pin
 * 16 + ((link + 1) & 3), which is 16 + ((slot + pin - 1) & 3): the fixed
 * routing qnic-vmm documents and reports in PCI_INTERRUPT_LINE. Line levels leave
 * through the set_irq callback whoever creates the bus installs; the host
 * knows nothing of what lies behind them.
 */
#include "qnic/pci.h"
#include "qnic/machine.h"   /* the address spaces the bus maps into */
#include "qnic/log.h"
#include "pci-internal.h"
#include "qnic/state.h"

#define PIIX_DEVFN QNIC_PCI_DEVFN(1, 0)
#define PIIX_PIRQRC 0x60

typedef struct PciBusPriv {
    QnicPciBus bus;
    QnicPciDevice *host, *isa, *ide, *pm;
    QnicPciHotplug *hotplug;    /* the PM function's ACPI hotplug block */
    QnicRegion ide_bmdma;       /* BAR4 of the IDE function, decode only */
    int link_count[4];
    bool isa_driven[16];
} PciBusPriv;

static PciBusPriv *priv(QnicPciBus *bus)
{
    return qnic_container_of(bus, PciBusPriv, bus);
}

static void bus_set_irq(QnicPciBus *bus, unsigned gsi, int level)
{
    if (bus->set_irq) {
        bus->set_irq(bus->irq_opaque, gsi, level);
    }
}

unsigned qnic_pci_intx_gsi(int devfn, int pin)
{
    return 16 + ((QNIC_PCI_SLOT(devfn) + pin - 1) & 3);
}

QnicPciDevice *qnic_pci_find_devfn(QnicPciBus *bus, int devfn)
{
    return devfn >= 0 && devfn < 256 ? bus->devices[devfn] : NULL;
}

/* ---- devfn allocation ---- */

static bool parse_addr(const char *s, int *devfn)
{
    char *end;
    unsigned long slot, fn = 0;

    if (!s || !*s || !g_ascii_isxdigit(*s)) {
        return false;
    }
    slot = strtoul(s, &end, 16);
    if (*end == '.') {
        const char *f = end + 1;
        if (!g_ascii_isxdigit(*f)) {
            return false;
        }
        fn = strtoul(f, &end, 16);
    }
    if (*end || slot > 31 || fn > 7) {
        return false;
    }
    *devfn = QNIC_PCI_DEVFN(slot, fn);
    return true;
}

int qnic_pci_bus_claim(QnicPciBus *bus, QnicPciDevice *d, const char *addr, GError **errp)
{
    const char *name = d->dev.cls ? d->dev.cls->name : "device";
    int devfn;

    if (addr) {
        if (!parse_addr(addr, &devfn)) {
            qnic_error_setg_invalid(errp, "Property 'addr' expects a PCI address SLOT[.FN] "
                                    "(hex, slot 0..1f, function 0..7), got '%s'", addr);
            return -1;
        }
        if (bus->devices[devfn]) {
            QnicPciDevice *o = bus->devices[devfn];
            /* QEMU 7.2's words, "(null)" for an occupant without an id */
            qnic_error_setg_invalid(errp, "PCI: slot %d function %d not available for %s, "
                                    "in use by %s,id=%s",
                                    QNIC_PCI_SLOT(devfn), QNIC_PCI_FUNC(devfn), name,
                                    o->dev.cls ? o->dev.cls->name : "the host",
                                    o->dev.id ? o->dev.id : "(null)");
            return -1;
        }
    } else {
        for (devfn = 0; devfn < 256; devfn += 8) {
            if (!bus->devices[devfn]) {
                break;
            }
        }
        if (devfn >= 256) {
            qnic_error_setg(errp, "PCI: no slot/function available for %s, all in use", name);
            return -1;
        }
    }
    bus->devices[devfn] = d;
    return devfn;
}

void qnic_pci_bus_release(QnicPciBus *bus, int devfn)
{
    if (devfn >= 0 && devfn < 256) {
        bus->devices[devfn] = NULL;
    }
}

/* ---- INTx ---- */

/* The PIIX3 PIRQ link (0 = PIRQA) pin (1 = INTA) of a device reaches. */
static int pirq_link(int devfn, int pin)
{
    return (QNIC_PCI_SLOT(devfn) - 1 + pin - 1) & 3;
}

static void route_links(QnicPciBus *bus)
{
    PciBusPriv *p = priv(bus);
    int isa_level[16] = { 0 };
    bool isa_routed[16] = { false };

    for (int l = 0; l < 4; l++) {
        uint8_t route = p->isa ? p->isa->config[PIIX_PIRQRC + l] : 0x80;
        int level = p->link_count[l] > 0;
        unsigned fixed = 16 + ((l + 1) & 3);
        if (route & 0x80) {
            bus_set_irq(bus, fixed, level);
        } else {
            unsigned irq = route & 0x0f;
            isa_routed[irq] = true;
            isa_level[irq] |= level;
            bus_set_irq(bus, fixed, 0);
        }
    }
    for (int irq = 0; irq < 16; irq++) {
        if (isa_routed[irq] || p->isa_driven[irq]) {
            bus_set_irq(bus, irq, isa_level[irq]);
            p->isa_driven[irq] = isa_routed[irq];
        }
    }
}

void qnic_pci_bus_intx_update(QnicPciDevice *d)
{
    PciBusPriv *p = priv(d->bus);
    int pin = d->config[PCI_INTERRUPT_PIN];
    bool disabled = qnic_pci_get_word(d, PCI_COMMAND) & PCI_COMMAND_INTX_DISABLE;
    int asserted = (d->intx_level & 1) && !disabled && pin >= 1 && pin <= 4;
    /* intx_level holds the device's wish; track what reached the link in
     * the spare high bit so each change is counted once. */
    int was = (d->intx_level & 2) >> 1;

    if (pin < 1 || pin > 4) {
        return;
    }
    if (asserted != was) {
        int link = pirq_link(d->devfn, pin);
        p->link_count[link] += asserted ? 1 : -1;
        d->intx_level = (d->intx_level & 1) | (asserted << 1);
        route_links(d->bus);
    }
}

/* ---- 0xcf8 / 0xcfc ---- */

static uint64_t cf8_read(void *opaque, uint64_t addr, unsigned size)
{
    QnicPciBus *bus = opaque;
    return bus->config_address;
}

static void cf8_write(void *opaque, uint64_t addr, uint64_t val, unsigned size)
{
    QnicPciBus *bus = opaque;
    bus->config_address = (uint32_t)val & ~3u;
}

static const QnicMemOps cf8_ops = {
    .read = cf8_read, .write = cf8_write,
    .valid_min = 4, .valid_max = 4, .impl_min = 4, .impl_max = 4,
};

static QnicPciDevice *cfc_target(QnicPciBus *bus, uint32_t *reg)
{
    uint32_t ca = bus->config_address;

    if (!(ca & 0x80000000u) || ((ca >> 16) & 0xff) != 0) {
        return NULL;
    }
    *reg = ca & 0xfc;
    return bus->devices[(ca >> 8) & 0xff];
}

static uint64_t cfc_read(void *opaque, uint64_t addr, unsigned size)
{
    QnicPciBus *bus = opaque;
    uint32_t reg;
    QnicPciDevice *d = cfc_target(bus, &reg);

    if (!d) {
        return ~0ull;
    }
    return qnic_pci_config_read(d, reg + (uint32_t)addr, size);
}

static void cfc_write(void *opaque, uint64_t addr, uint64_t val, unsigned size)
{
    QnicPciBus *bus = opaque;
    uint32_t reg;
    QnicPciDevice *d = cfc_target(bus, &reg);

    if (d) {
        qnic_pci_config_write(d, reg + (uint32_t)addr, (uint32_t)val, size);
    }
}

static const QnicMemOps cfc_ops = {
    .read = cfc_read, .write = cfc_write,
    .valid_min = 1, .valid_max = 4, .valid_unaligned = true,
    .impl_min = 1, .impl_max = 4,
};

/* ---- built-in functions ---- */

static const QnicDeviceClass builtin_cls = {
    .name = "i440FX-builtin", .bus = "pci", .instance_size = sizeof(QnicPciDevice),
};

static void piix_config_write(QnicPciDevice *d, uint32_t addr, uint32_t val, unsigned len)
{
    if (addr < PIIX_PIRQRC + 4 && addr + len > PIIX_PIRQRC) {
        route_links(d->bus);
    }
}

/* No disks: bus-master IDE registers read as idle. */
static uint64_t bmdma_read(void *opaque, uint64_t addr, unsigned size)
{
    return 0;
}

static void bmdma_write(void *opaque, uint64_t addr, uint64_t val, unsigned size)
{
}

static const QnicMemOps bmdma_ops = { .read = bmdma_read, .write = bmdma_write };

static QnicPciDevice *builtin_new(QnicPciBus *bus, const char *addr, const QnicPciIds *ids)
{
    QnicPciDevice *d = g_new0(QnicPciDevice, 1);
    g_autoptr(GError) err = NULL;

    d->dev.cls = &builtin_cls;
    d->dev.machine = bus->machine;
    d->dev.realized = true;
    /* Claim before init so the slot is known even if init fails. */
    g_assert(parse_addr(addr, &d->devfn));
    {
        QnicOpts *o = qnic_opts_new("device");
        qnic_opts_set(o, "addr", addr);
        if (!qnic_pci_device_init(d, o, ids, NULL, &err)) {
            g_error("pci: cannot create built-in function %s: %s", addr, err->message);
        }
        qnic_opts_free(o);
    }
    return d;
}

QnicPciBus *qnic_pci_bus_new(QnicMachine *m, QnicPciSetIrq *set_irq, void *irq_opaque)
{
    PciBusPriv *p = g_new0(PciBusPriv, 1);
    QnicPciBus *bus = &p->bus;
    static const QnicPciIds host_ids = {
        .vendor_id = 0x8086, .device_id = 0x1237, .revision = 0x02, .class_code = 0x060000,
        .subsystem_vendor_id = 0x1af4, .subsystem_id = 0x1100,
    };
    static const QnicPciIds isa_ids = {
        .vendor_id = 0x8086, .device_id = 0x7000, .class_code = 0x060100,
        .subsystem_vendor_id = 0x1af4, .subsystem_id = 0x1100, .multifunction = true,
    };
    static const QnicPciIds ide_ids = {
        .vendor_id = 0x8086, .device_id = 0x7010, .class_code = 0x010180,
        .subsystem_vendor_id = 0x1af4, .subsystem_id = 0x1100,
    };
    static const QnicPciIds pm_ids = {
        .vendor_id = 0x8086, .device_id = 0x7113, .revision = 0x03, .class_code = 0x068000,
        .subsystem_vendor_id = 0x1af4, .subsystem_id = 0x1100, .interrupt_pin = 1,
    };

    bus->machine = m;
    bus->set_irq = set_irq;
    bus->irq_opaque = irq_opaque;
    m->pci = bus;
    qnic_region_init_io(&bus->cf8_region, NULL, &cf8_ops, bus, "pci-conf-idx", 4);
    qnic_region_init_io(&bus->cfc_region, NULL, &cfc_ops, bus, "pci-conf-data", 4);
    qnic_as_map(&m->io, &bus->cf8_region, 0xcf8, 0);
    qnic_as_map(&m->io, &bus->cfc_region, 0xcfc, 0);

    p->host = builtin_new(bus, "0.0", &host_ids);
    p->isa = builtin_new(bus, "1.0", &isa_ids);
    for (int l = 0; l < 4; l++) {
        p->isa->config[PIIX_PIRQRC + l] = 0x80;
    }
    p->isa->config_write = piix_config_write;
    qnic_pci_set_word(p->isa, PCI_STATUS, PCI_STATUS_DEVSEL_MEDIUM);
    p->ide = builtin_new(bus, "1.1", &ide_ids);
    qnic_region_init_io(&p->ide_bmdma, &p->ide->dev, &bmdma_ops, NULL, "piix-bmdma", 16);
    qnic_pci_register_bar(p->ide, 4, QNIC_PCI_BAR_IO, &p->ide_bmdma);
    qnic_pci_set_word(p->ide, PCI_STATUS, PCI_STATUS_FAST_BACK | PCI_STATUS_DEVSEL_MEDIUM);
    p->pm = builtin_new(bus, "1.3", &pm_ids);
    qnic_pci_set_word(p->pm, PCI_STATUS, PCI_STATUS_FAST_BACK | PCI_STATUS_DEVSEL_MEDIUM);
    p->hotplug = qnic_pci_hotplug_new(bus);
    /* The host bridge and ISA bridge ignore the master/IO/mem bits QEMU
     * also leaves them at; the stand-ins have no BARs to map. */
    return bus;
}

void qnic_pci_bus_free(QnicPciBus *bus)
{
    PciBusPriv *p;

    if (!bus) {
        return;
    }
    p = priv(bus);
    qnic_pci_hotplug_free(p->hotplug);
    QnicPciDevice *b[] = { p->host, p->isa, p->ide, p->pm };
    for (unsigned i = 0; i < QNIC_ARRAY_SIZE(b); i++) {
        if (b[i]) {
            qnic_pci_device_exit(b[i]);
            g_free(b[i]);
        }
    }
    qnic_as_unmap(&bus->cf8_region);
    qnic_as_unmap(&bus->cfc_region);
    g_free(p);
}

bool qnic_pci_device_is_builtin(const QnicPciDevice *d)
{
    return d->dev.cls == &builtin_cls;
}

QnicPciHotplug *qnic_pci_bus_hotplug(QnicPciBus *bus)
{
    return priv(bus)->hotplug;
}

void qnic_pci_bus_reset(QnicPciBus *bus)
{
    qnic_pci_hotplug_reset(priv(bus)->hotplug);
}

/* Firmware's job on a real pc: tell each function which line its INTx pin
 * reaches. qnic-vmm (no firmware) calls this after creating devices. */
void qnic_pci_bus_fill_interrupt_lines(QnicPciBus *bus)
{
    for (int devfn = 0; devfn < 256; devfn++) {
        QnicPciDevice *d = bus->devices[devfn];
        int pin = d ? d->config[PCI_INTERRUPT_PIN] : 0;
        if (pin >= 1 && pin <= 4) {
            d->config[PCI_INTERRUPT_LINE] = qnic_pci_intx_gsi(devfn, pin);
        }
    }
}

/* ---- the bus's own state: its four functions, then the hotplug block ---- */

void qnic_pci_bus_save_state(QnicPciBus *bus, GByteArray *out)
{
    PciBusPriv *p = priv(bus);
    QnicPciDevice *fn[] = { p->host, p->isa, p->ide, p->pm };

    for (unsigned i = 0; i < G_N_ELEMENTS(fn); i++) {
        qnic_pci_state_save(fn[i], out);
    }
    qnic_pci_hotplug_state_save(p->hotplug, out);
}

bool qnic_pci_bus_load_state(QnicPciBus *bus, QnicStateReader *r, GError **errp)
{
    PciBusPriv *p = priv(bus);
    QnicPciDevice *fn[] = { p->host, p->isa, p->ide, p->pm };
    QnicPciState *st[G_N_ELEMENTS(fn)] = { NULL };
    QnicPciHotplugState *hs = NULL;
    bool ok = true;

    for (unsigned i = 0; ok && i < G_N_ELEMENTS(fn); i++) {
        st[i] = qnic_pci_state_read(fn[i], r, errp);
        ok = st[i] != NULL;
    }
    if (ok) {
        hs = qnic_pci_hotplug_state_read(p->hotplug, r, errp);
        ok = hs != NULL;
    }
    if (ok) {
        for (unsigned i = 0; i < G_N_ELEMENTS(fn); i++) {
            qnic_pci_state_apply(fn[i], st[i]);
        }
        /* The PIIX3's PIRQ routing came with its config space: send every
         * asserted INTx where the loaded routing says. */
        route_links(bus);
        qnic_pci_hotplug_state_apply(p->hotplug, hs);
    }
    for (unsigned i = 0; i < G_N_ELEMENTS(fn); i++) {
        qnic_pci_state_free(st[i]);
    }
    g_free(hs);
    return ok;
}
