/*
 * Unit tests of the MP table qnic-vmm writes for guests without ACPI
 * (vmm/mptable.c), read back the way a kernel's MP parser reads it: find
 * the floating pointer on a 16-byte boundary of the BIOS area, check both
 * checksums, walk the entries by their type's size, and look up where an
 * ISA IRQ and a PCI slot's INTx pin are routed. The routing must be the one
 * the board fills into PCI_INTERRUPT_LINE (GSI 16 + ((slot + pin) & 3)).
 */
#include "vmm/mptable.h"

#include <glib.h>
#include <stdbool.h>
#include <string.h>

#define RAM (2u << 20)

typedef struct Parsed {
    unsigned cpus, boot_cpu, buses, ioapics, ioapic_id, entries;
    unsigned pci_bus, isa_bus;
    int isa_pin[16];            /* INTIN of ISA IRQ n, -1 if none */
    int pci_pin[32][4];         /* INTIN of slot/pin, -1 if none */
    unsigned pci_flags;
    bool lint0_extint, lint1_nmi;
} Parsed;

static uint8_t sum(const uint8_t *p, size_t n)
{
    uint8_t s = 0;

    for (size_t i = 0; i < n; i++) {
        s += p[i];
    }
    return s;
}

static uint32_t ld32(const uint8_t *p)
{
    return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
}

static const uint8_t *find_mpf(const uint8_t *ram)
{
    for (uint32_t a = 0xf0000; a < 0x100000; a += 16) {
        if (memcmp(ram + a, "_MP_", 4) == 0 && sum(ram + a, 16 * ram[a + 8]) == 0) {
            return ram + a;
        }
    }
    return NULL;
}

static void parse_entry(Parsed *r, const uint8_t *e)
{
    switch (e[0]) {
    case 0:
        r->cpus++;
        g_assert_cmpuint(e[1], ==, r->cpus - 1);        /* LAPIC IDs 0.. */
        g_assert_true(e[3] & 1);
        if (e[3] & 2) {
            r->boot_cpu = e[1];
        }
        break;
    case 1:
        r->buses++;
        if (memcmp(e + 2, "PCI   ", 6) == 0) {
            r->pci_bus = e[1];
        } else if (memcmp(e + 2, "ISA   ", 6) == 0) {
            r->isa_bus = e[1];
        }
        break;
    case 2:
        r->ioapics++;
        r->ioapic_id = e[1];
        g_assert_cmphex(ld32(e + 4), ==, 0xfec00000);
        break;
    case 3:
        g_assert_cmpuint(e[6], ==, r->ioapic_id);
        if (e[4] == r->isa_bus && e[1] == 0) {
            r->isa_pin[e[5]] = e[7];
        } else if (e[4] == r->pci_bus && e[1] == 0) {
            r->pci_pin[e[5] >> 2][e[5] & 3] = e[7];
            r->pci_flags = e[2] | e[3] << 8;
        }
        break;
    case 4:
        r->lint0_extint |= e[1] == 3 && e[7] == 0;
        r->lint1_nmi |= e[1] == 1 && e[7] == 1;
        break;
    default:
        g_assert_not_reached();
    }
}

static Parsed parse(const uint8_t *ram)
{
    Parsed r = { .pci_bus = 99, .isa_bus = 99 };

    memset(r.isa_pin, -1, sizeof(r.isa_pin));
    memset(r.pci_pin, -1, sizeof(r.pci_pin));
    const uint8_t *mpf = find_mpf(ram);
    g_assert_nonnull(mpf);
    g_assert_cmpuint(mpf[9], ==, 4);                    /* spec 1.4 */
    g_assert_cmpuint(mpf[11], ==, 0);                   /* a table, no default config */
    const uint8_t *mpc = ram + ld32(mpf + 4);
    unsigned len = mpc[4] | mpc[5] << 8;
    g_assert_cmpmem(mpc, 4, "PCMP", 4);
    g_assert_cmpuint(sum(mpc, len), ==, 0);
    g_assert_cmphex(ld32(mpc + 36), ==, 0xfee00000);
    unsigned count = mpc[34] | mpc[35] << 8;
    const uint8_t *e = mpc + 44, *end = mpc + len;
    for (unsigned i = 0; i < count; i++) {
        g_assert_true(e < end);
        parse_entry(&r, e);
        e += e[0] == 0 ? 20 : 8;
        r.entries++;
    }
    g_assert_true(e == end);                            /* length matches the entries */
    return r;
}

static void test_layout(void)
{
    g_autofree uint8_t *ram = g_malloc0(RAM);
    size_t n = qnic_mptable_write(ram, RAM, 2);

    g_assert_cmpuint(n, >, 0);
    Parsed r = parse(ram);
    g_assert_cmpuint(r.cpus, ==, 2);
    g_assert_cmpuint(r.boot_cpu, ==, 0);
    g_assert_cmpuint(r.buses, ==, 2);
    g_assert_cmpuint(r.ioapics, ==, 1);
    g_assert_cmpuint(r.ioapic_id, ==, 2);               /* after the CPUs' IDs */
    g_assert_true(r.lint0_extint && r.lint1_nmi);
}

static void test_routing(void)
{
    g_autofree uint8_t *ram = g_malloc0(RAM);

    g_assert_cmpuint(qnic_mptable_write(ram, RAM, 1), >, 0);
    Parsed r = parse(ram);
    for (int irq = 0; irq < 16; irq++) {
        g_assert_cmpint(r.isa_pin[irq], ==, irq == 2 ? -1 : irq);
    }
    for (int slot = 0; slot < 32; slot++) {
        for (int pin = 0; pin < 4; pin++) {
            g_assert_cmpint(r.pci_pin[slot][pin], ==, 16 + ((slot + pin) & 3));
        }
    }
    g_assert_cmphex(r.pci_flags, ==, 0xf);              /* active low, level */
}

static void test_refused(void)
{
    g_autofree uint8_t *ram = g_malloc0(RAM);

    /* RAM that ends inside the BIOS area, no CPU, too many CPUs: nothing
     * is written. */
    g_assert_cmpuint(qnic_mptable_write(ram, 0xf0100, 1), ==, 0);
    g_assert_cmpuint(qnic_mptable_write(ram, RAM, 0), ==, 0);
    g_assert_cmpuint(qnic_mptable_write(ram, RAM, QNIC_MPTABLE_MAX_CPUS + 1), ==, 0);
    g_assert_null(find_mpf(ram));
    g_assert_cmpuint(qnic_mptable_write(ram, RAM, QNIC_MPTABLE_MAX_CPUS), >, 0);
    g_assert_cmpuint(parse(ram).cpus, ==, QNIC_MPTABLE_MAX_CPUS);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/mptable/layout", test_layout);
    g_test_add_func("/mptable/routing", test_routing);
    g_test_add_func("/mptable/refused", test_refused);
    return g_test_run();
}
