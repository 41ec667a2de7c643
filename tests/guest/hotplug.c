/*
 * test=hotplug: NICs plugged and unplugged while the guest runs, through
 * the pc machine's ACPI PCI hotplug interface (QEMU's PIIX4 one, which
 * qnic-vmm's hw/pci/pcihp.c has too). The guest has no AML interpreter, so
 * it does by hand what the DSDT's _E01 method and an OS's ACPI hotplug
 * driver do: it takes the SCI (ISA IRQ 9, level, through the IOAPIC) for
 * GPE0 bit 1, reads the slot bitmaps UP (plugged since the last read) and
 * DOWN (asked to go) of bus 0, brings each new device up with its driver
 * (BARs, interrupt line as firmware would, DHCP lease, pings to the
 * gateway) and, for each slot asked to go, stops using the NIC, turns off
 * its decoding and bus mastering and writes the slot to EJ (_EJ0), which
 * completes the host's device_del. It ends after count=N ejects (and two
 * more seconds, for the host's DEVICE_DELETED).
 */
#include "guest.h"
#include <linux/pci_regs.h>

#define GPE0_STS            0xafe0      /* status bytes, write 1 to clear */
#define GPE0_EN             0xafe2      /* enable bytes */
#define GPE0_PCI_HOTPLUG    0x02        /* bit 1: the DSDT's _E01 */
#define PCIHP_UP            0xae00
#define PCIHP_DOWN          0xae04
#define PCIHP_EJ            0xae08
#define PCIHP_SEL           0xae10
#define SCI_GSI             9
#define HP_MAX              4
#define PINGS               3

struct hp_nic {
    bool used;
    struct pci_dev dev;
    struct nic *nic;
    struct netif nif;
};

static struct hp_nic hp[HP_MAX];
static volatile uint64_t sci_irqs;
static volatile uint8_t gpe_seen;       /* GPE0 status bits taken by the SCI handler */

/* CPL 0, interrupts off: acknowledge the GPE so the level SCI drops. */
static void sci_irq(void *opaque)
{
    uint8_t sts = inb(GPE0_STS);

    gpe_seen |= sts;
    outb(GPE0_STS, sts);
    sci_irqs++;
}

/* Wait for a hotplug GPE, answering ARP and pings meanwhile; then the
 * bitmaps of bus 0. The handler runs only inside the idle wait, so
 * gpe_seen needs no lock. */
static bool hp_wait_event(uint32_t *up, uint32_t *down, uint64_t deadline)
{
    while (now_us() < deadline) {
        if (gpe_seen & GPE0_PCI_HOTPLUG) {
            gpe_seen &= (uint8_t)~GPE0_PCI_HOTPLUG;
            outl(PCIHP_SEL, 0);
            *up = inl(PCIHP_UP);
            *down = inl(PCIHP_DOWN);
            return true;
        }
        net_poll_all();
        uint64_t left = deadline - now_us();
        cpu_idle(left < 100000 ? left : 100000);
    }
    return false;
}

static bool hp_plug(unsigned slot)
{
    struct hp_nic *h = NULL;
    char ip[16];

    for (int i = 0; i < HP_MAX && !h; i++) {
        h = hp[i].used ? NULL : &hp[i];
    }
    if (!h || !pci_probe_slot(&h->dev, slot)) {
        report("hotplug-error slot=%u error=%s", slot, h ? "empty-slot" : "too-many-nics");
        return false;
    }
    pci_hotplug_fill_line(&h->dev);
    h->nic = nic_probe_pci(&h->dev, "auto");
    if (!h->nic) {
        report("hotplug-error slot=%u error=no-driver id=%04x:%04x", slot, h->dev.vendor, h->dev.device);
        return false;
    }
    h->used = true;
    nic_announce(h->nic, (int)(h - hp));
    netif_init(&h->nif, h->nic);
    net_register(&h->nif);
    report("hotplug-plugged slot=%u model=%s", slot, h->nic->model);
    if (!dhcp_run(&h->nif, 20000000)) {
        return false;
    }
    unsigned got = 0;
    for (unsigned seq = 1; seq <= PINGS; seq++) {
        uint64_t rtt;
        got += icmp_ping(&h->nif, h->nif.gw, (uint16_t)seq, 56, 2000000, &rtt);
    }
    fmt_ip(ip, h->nif.ip);
    report("hotplug-up slot=%u model=%s ip=%s pings=%u/%u", slot, h->nic->model, ip, got, PINGS);
    return got == PINGS;
}

/* The slot's NIC stops (no more polling, no decoding, no DMA: what an OS
 * driver's remove leaves), then _EJ0's write. The device must be gone
 * from configuration space afterwards. */
static bool hp_eject(unsigned slot)
{
    struct hp_nic *h = NULL;
    struct pci_dev probe = { .bus = 0, .slot = (uint8_t)slot };

    for (int i = 0; i < HP_MAX; i++) {
        if (hp[i].used && hp[i].dev.slot == slot) {
            h = &hp[i];
        }
    }
    if (h) {
        net_unregister(&h->nif);
        pci_cfg_write16(&h->dev, PCI_COMMAND, 0);
        report("hotplug-stats slot=%u tx=%lu rx=%lu irqs=%lu", slot, h->nic->tx_frames, h->nic->rx_frames,
               (uint64_t)h->nic->irqs);
        h->used = false;
    }
    outl(PCIHP_EJ, 1u << slot);
    bool gone = (pci_cfg_read32(&probe, PCI_VENDOR_ID) & 0xffff) == 0xffff;
    report("hotplug-ejected slot=%u known=%s gone=%s", slot, h ? "yes" : "no", gone ? "yes" : "no");
    return h && gone;
}

bool test_hotplug(uint64_t deadline)
{
    static struct pci_dev devs[32];
    unsigned count = (unsigned)cmdline_uint("count", 1), ejected = 0, plugged = 0;
    bool ok = true;

    pci_scan(devs, ARRAY_SIZE(devs));       /* BARs already in use stay clear */
    int vec = irq_alloc_vector(sci_irq, NULL);
    if (!ioapic_route(SCI_GSI, vec)) {
        fail("hotplug: cannot route the SCI (GSI %u)", SCI_GSI);
    }
    /* A GPE raised before this (a device plugged early) fires at once. */
    outb(GPE0_EN, GPE0_PCI_HOTPLUG);
    report("ready hotplug gpe_en=0x%02x", inb(GPE0_EN));
    while (ejected < count) {
        uint32_t up, down;
        if (!hp_wait_event(&up, &down, deadline)) {
            report("hotplug-error error=timeout gpe_sts=0x%02x sci_irqs=%lu", inb(GPE0_STS), (uint64_t)sci_irqs);
            return false;
        }
        report("hotplug-event sci_irqs=%lu up=0x%08x down=0x%08x", (uint64_t)sci_irqs, up, down);
        for (unsigned s = 0; s < 32; s++) {
            if (up & (1u << s)) {
                plugged++;
                ok = hp_plug(s) && ok;
            }
        }
        for (unsigned s = 0; s < 32; s++) {
            if (down & (1u << s)) {
                ejected++;
                ok = hp_eject(s) && ok;
            }
        }
    }
    report("hotplug-done plugged=%u ejected=%u sci_irqs=%lu", plugged, ejected, (uint64_t)sci_irqs);
    /* QEMU sends DEVICE_DELETED once the device is finalized, a moment
     * after the eject: an exit at once could take the event with it. */
    for (uint64_t end = now_us() + 2000000; now_us() < end;) {
        cpu_idle(100000);
    }
    return ok;
}
