/*
 * PCI hotplug on the pc machine, through the interface QEMU's PIIX4 power
 * management function gives ACPI firmware (see qnic/pci.h): a GPE0 block of
 * byte registers at 0xafe0 (status bytes, write 1 to clear, then enable
 * bytes) whose bit 1 reports a hotplug event and raises the SCI (ISA IRQ 9,
 * level) while enabled, and the hotplug block at 0xae00 of 32-bit
 * registers for the bus chosen by SEL: UP (slots plugged since the last
 * read, cleared by reading), DOWN (slots asked to go), EJ (write: the
 * guest's _EJ0 ejects the lowest slot set; read: no feature bits), RMV
 * (slots whose devices may go) and the acpi-index selector. Only bus 0
 * exists here.
 *
 * The embedder plugs a device it created on a running machine (the slot's
 * UP bit and a GPE), asks for a device to go (DOWN and a GPE) and hears,
 * through the deleted handler, of every device the guest ejected just
 * before it is destroyed. A device the guest never ejects stays; a reset
 * completes every request still pending, as QEMU's does.
 */
#include "qnic/pci.h"
#include "qnic/machine.h"
#include "qnic/log.h"
#include "qnic/clock.h"
#include "qnic/state.h"
#include "pci-internal.h"

#define PCIHP_IO_BASE   0xae00
#define PCIHP_IO_SIZE   0x18
#define PCIHP_UP        0x00
#define PCIHP_DOWN      0x04
#define PCIHP_EJ        0x08
#define PCIHP_RMV       0x0c
#define PCIHP_SEL       0x10
#define PCIHP_AIDX      0x14

#define GPE0_IO_BASE    0xafe0
#define GPE0_HALF       2               /* status bytes, then enable bytes */
#define GPE0_PCI_HOTPLUG 0x02           /* GPE0 status bit 1 */
#define SCI_GSI         9

struct QnicPciHotplug {
    QnicPciBus *bus;
    QnicRegion hp_io, gpe_io;
    uint32_t up, down;                  /* bus 0's slot bitmaps */
    int64_t down_ms[32];                /* virtual ms of each slot's request */
    uint32_t select;                    /* SEL: the bus the registers show */
    uint32_t aidx_slot;
    uint8_t gpe_sts[GPE0_HALF], gpe_en[GPE0_HALF];
    int sci_level;
    QnicPciHotplugDeletedFunc *deleted;
    void *deleted_opaque;
};

static void sci_update(QnicPciHotplug *hp)
{
    int level = ((hp->gpe_sts[0] & hp->gpe_en[0]) | (hp->gpe_sts[1] & hp->gpe_en[1])) != 0;

    if (level != hp->sci_level) {
        hp->sci_level = level;
        /* through the bus's line callback, as INTx: the machine installs it */
        if (hp->bus->set_irq) {
            hp->bus->set_irq(hp->bus->irq_opaque, SCI_GSI, level);
        }
    }
}

static void gpe_raise(QnicPciHotplug *hp)
{
    hp->gpe_sts[0] |= GPE0_PCI_HOTPLUG;
    sci_update(hp);
}

/* Slots whose devices may be removed: every slot but the built-in ones. */
static uint32_t removable_slots(QnicPciHotplug *hp)
{
    uint32_t rmv = ~0u;

    for (int devfn = 0; devfn < 256; devfn++) {
        QnicPciDevice *d = hp->bus->devices[devfn];
        if (d && qnic_pci_device_is_builtin(d)) {
            rmv &= ~(1u << QNIC_PCI_SLOT(devfn));
        }
    }
    return rmv;
}

/* The guest ejected slot: every function in it goes, the handler first. */
static void eject_slot(QnicPciHotplug *hp, unsigned slot)
{
    hp->down &= ~(1u << slot);
    hp->up &= ~(1u << slot);
    for (int fn = 0; fn < 8; fn++) {
        QnicPciDevice *d = hp->bus->devices[QNIC_PCI_DEVFN(slot, fn)];
        if (!d || qnic_pci_device_is_builtin(d)) {
            continue;
        }
        if (hp->deleted) {
            hp->deleted(hp->deleted_opaque, &d->dev);
        }
        qnic_device_destroy(&d->dev);
    }
}

static uint64_t hp_read(void *opaque, uint64_t addr, unsigned size)
{
    QnicPciHotplug *hp = opaque;
    uint32_t v = 0;

    if (hp->select != 0) {
        return 0;                       /* no bus behind that selector */
    }
    switch (addr) {
    case PCIHP_UP:
        v = hp->up;
        hp->up = 0;
        break;
    case PCIHP_DOWN:
        v = hp->down;
        break;
    case PCIHP_RMV:
        v = removable_slots(hp);
        break;
    case PCIHP_SEL:
        v = hp->select;
        break;
    default:                            /* EJ: no feature bits; AIDX: none set */
        break;
    }
    return v;
}

static void hp_write(void *opaque, uint64_t addr, uint64_t val, unsigned size)
{
    QnicPciHotplug *hp = opaque;

    switch (addr) {
    case PCIHP_EJ:
        if (hp->select == 0 && (uint32_t)val) {
            eject_slot(hp, __builtin_ctz((uint32_t)val));
        }
        break;
    case PCIHP_SEL:
        hp->select = (uint32_t)val;
        break;
    case PCIHP_AIDX:
        hp->aidx_slot = (uint32_t)val;
        break;
    default:
        qnic_guest_error("pcihp: write of 0x%" PRIx64 " to read-only register 0x%" PRIx64
                         " ignored\n", val, addr);
        break;
    }
}

static const QnicMemOps hp_ops = {
    .read = hp_read, .write = hp_write,
    .valid_min = 4, .valid_max = 4, .impl_min = 4, .impl_max = 4,
};

static uint64_t gpe_read(void *opaque, uint64_t addr, unsigned size)
{
    QnicPciHotplug *hp = opaque;

    return addr < GPE0_HALF ? hp->gpe_sts[addr] : hp->gpe_en[addr - GPE0_HALF];
}

static void gpe_write(void *opaque, uint64_t addr, uint64_t val, unsigned size)
{
    QnicPciHotplug *hp = opaque;

    if (addr < GPE0_HALF) {
        hp->gpe_sts[addr] &= ~(uint8_t)val;
    } else {
        hp->gpe_en[addr - GPE0_HALF] = (uint8_t)val;
    }
    sci_update(hp);
}

static const QnicMemOps gpe_ops = {
    .read = gpe_read, .write = gpe_write,
    .valid_min = 1, .valid_max = 4, .impl_min = 1, .impl_max = 1,
};

QnicPciHotplug *qnic_pci_hotplug_new(QnicPciBus *bus)
{
    QnicPciHotplug *hp = g_new0(QnicPciHotplug, 1);
    QnicMachine *m = bus->machine;

    hp->bus = bus;
    qnic_region_init_io(&hp->hp_io, NULL, &hp_ops, hp, "acpi-pci-hotplug", PCIHP_IO_SIZE);
    qnic_region_init_io(&hp->gpe_io, NULL, &gpe_ops, hp, "acpi-gpe0", 2 * GPE0_HALF);
    qnic_as_map(&m->io, &hp->hp_io, PCIHP_IO_BASE, 0);
    qnic_as_map(&m->io, &hp->gpe_io, GPE0_IO_BASE, 0);
    return hp;
}

void qnic_pci_hotplug_free(QnicPciHotplug *hp)
{
    if (!hp) {
        return;
    }
    qnic_as_unmap(&hp->hp_io);
    qnic_as_unmap(&hp->gpe_io);
    g_free(hp);
}

void qnic_pci_hotplug_set_deleted_handler(QnicPciHotplug *hp, QnicPciHotplugDeletedFunc *cb,
                                          void *opaque)
{
    hp->deleted = cb;
    hp->deleted_opaque = opaque;
}

void qnic_pci_hotplug_plugged(QnicPciHotplug *hp, QnicPciDevice *d)
{
    hp->up |= 1u << QNIC_PCI_SLOT(d->devfn);
    gpe_raise(hp);
}

bool qnic_pci_hotplug_request_unplug(QnicPciHotplug *hp, QnicPciDevice *d, GError **errp)
{
    uint32_t bit = 1u << QNIC_PCI_SLOT(d->devfn);

    if (qnic_pci_device_is_builtin(d)) {
        qnic_error_setg(errp, "Bus 'pci.0' does not support hotplugging");
        return false;
    }
    int64_t now_ms = qnic_clock_ns() / 1000000;
    unsigned slot = QNIC_PCI_SLOT(d->devfn);

    /* QEMU 7.2's rule: a repeated request is refused until the virtual
     * clock moved past the first one's millisecond (never, while it
     * stands at 0), then it notifies the guest again. */
    if ((hp->down & bit) && (hp->down_ms[slot] == 0 || hp->down_ms[slot] >= now_ms)) {
        qnic_error_setg(errp, "Device %s is already in the process of unplug",
                        d->dev.id ? d->dev.id : "");
        return false;
    }
    hp->down |= bit;
    hp->down_ms[slot] = now_ms;
    gpe_raise(hp);
    return true;
}

bool qnic_pci_hotplug_unplug_pending(QnicPciHotplug *hp, QnicPciDevice *d)
{
    return hp->down & (1u << QNIC_PCI_SLOT(d->devfn));
}

void qnic_pci_hotplug_reset(QnicPciHotplug *hp)
{
    while (hp->down) {
        eject_slot(hp, __builtin_ctz(hp->down));
    }
    hp->select = 0;
    hp->aidx_slot = 0;
    memset(hp->gpe_sts, 0, sizeof(hp->gpe_sts));
    memset(hp->gpe_en, 0, sizeof(hp->gpe_en));
    sci_update(hp);
}

/* ---- device state (section "acpi-pci-hotplug", after the bus's functions) ---- */

struct QnicPciHotplugState {
    uint32_t up, down, select, aidx_slot;
    uint64_t down_ms[32];
    uint8_t gpe_sts[GPE0_HALF], gpe_en[GPE0_HALF];
};

static const QnicStateField hp_state_fields[] = {
    QNIC_STATE_UINT(QnicPciHotplugState, up, 0),
    QNIC_STATE_UINT(QnicPciHotplugState, down, 0),
    QNIC_STATE_UINT(QnicPciHotplugState, select, 0),
    QNIC_STATE_UINT_RANGE(QnicPciHotplugState, aidx_slot, 0, 0, 31),
    QNIC_STATE_UINT_ARRAY(QnicPciHotplugState, down_ms, 0),
    QNIC_STATE_UINT_ARRAY(QnicPciHotplugState, gpe_sts, 0),
    QNIC_STATE_UINT_ARRAY(QnicPciHotplugState, gpe_en, 0),
    QNIC_STATE_END,
};

static const QnicStateDesc hp_state_desc = {
    .name = "acpi-pci-hotplug", .version = 1, .min_version = 1,
    .size = sizeof(QnicPciHotplugState), .fields = hp_state_fields,
};

void qnic_pci_hotplug_state_save(QnicPciHotplug *hp, GByteArray *out)
{
    QnicPciHotplugState s = {
        .up = hp->up, .down = hp->down, .select = hp->select, .aidx_slot = hp->aidx_slot,
    };
    for (unsigned i = 0; i < 32; i++) {
        s.down_ms[i] = (uint64_t)hp->down_ms[i];
    }
    memcpy(s.gpe_sts, hp->gpe_sts, sizeof(s.gpe_sts));
    memcpy(s.gpe_en, hp->gpe_en, sizeof(s.gpe_en));
    qnic_state_write(out, &hp_state_desc, &s);
}

/* A request to unplug must name a slot that holds a hotpluggable device:
 * an eject of anything else would destroy what the machine did not plug. */
QnicPciHotplugState *qnic_pci_hotplug_state_read(QnicPciHotplug *hp, QnicStateReader *r,
                                                 GError **errp)
{
    g_autofree QnicPciHotplugState *s = g_new0(QnicPciHotplugState, 1);

    if (!qnic_state_read(r, &hp_state_desc, s, errp)) {
        return NULL;
    }
    for (unsigned slot = 0; slot < 32; slot++) {
        QnicPciDevice *d = hp->bus->devices[QNIC_PCI_DEVFN(slot, 0)];
        if ((s->down & (1u << slot)) && (!d || qnic_pci_device_is_builtin(d))) {
            qnic_error_setg(errp, "state section 'acpi-pci-hotplug', field 'down': slot %u "
                            "has no device that can be unplugged", slot);
            return NULL;
        }
    }
    return g_steal_pointer(&s);
}

void qnic_pci_hotplug_state_apply(QnicPciHotplug *hp, const QnicPciHotplugState *s)
{
    hp->up = s->up;
    hp->down = s->down;
    hp->select = s->select;
    hp->aidx_slot = s->aidx_slot;
    for (unsigned i = 0; i < 32; i++) {
        hp->down_ms[i] = (int64_t)s->down_ms[i];
    }
    memcpy(hp->gpe_sts, s->gpe_sts, sizeof(hp->gpe_sts));
    memcpy(hp->gpe_en, s->gpe_en, sizeof(hp->gpe_en));
    sci_update(hp);
}
