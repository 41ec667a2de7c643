/*
 * The MP table (see mptable.h): the byte layout of the MultiProcessor
 * Specification 1.4, chapter 4 (floating pointer structure, configuration
 * table header, processor / bus / I/O APIC / I/O interrupt / local interrupt
 * entries), filled from the vCPU count and the fixed pc routing.
 */
#include "vmm/mptable.h"

#include <string.h>

#define MPF_SIGNATURE "_MP_"
#define MPC_SIGNATURE "PCMP"
#define MP_SPEC_REV 4                   /* 1.4 */

#define MPF_SIZE 16
#define MPC_HEADER_SIZE 44
#define MP_PROC_SIZE 20
#define MP_SMALL_ENTRY_SIZE 8           /* bus, I/O APIC, interrupts */

enum { MP_PROCESSOR = 0, MP_BUS = 1, MP_IOAPIC = 2, MP_INTSRC = 3, MP_LINTSRC = 4 };
enum { MP_INT = 0, MP_NMI = 1, MP_EXTINT = 3 };

#define MP_CPU_ENABLED 0x01
#define MP_CPU_BOOT 0x02
#define MP_IOAPIC_ENABLED 0x01
/* Interrupt flags: polarity in bits 0-1, trigger mode in bits 2-3; 0 is
 * "conforms to the bus", 3 is active low / level. */
#define MP_IRQ_CONFORMS 0x0
#define MP_IRQ_LOW_LEVEL 0xf

#define LAPIC_ADDR 0xfee00000u
#define LAPIC_VERSION 0x14
#define IOAPIC_ADDR 0xfec00000u
#define IOAPIC_VERSION 0x11
#define LAPIC_ALL 0xff

#define BUS_PCI 0
#define BUS_ISA 1
#define ISA_IRQS 16
#define ISA_CASCADE_IRQ 2               /* the slave 8259, never a device */
#define PCI_SLOTS 32
#define PCI_PINS 4
#define PCI_GSI_BASE 16

/* A family 6 CPU with an FPU and a local APIC (CPUID 1 EAX and EDX bits 0
 * and 9): what the entry's signature and feature fields describe. */
#define CPU_SIGNATURE 0x600
#define CPU_FEATURES ((1u << 0) | (1u << 9))

static void st16(uint8_t *p, uint16_t v)
{
    p[0] = v;
    p[1] = v >> 8;
}

static void st32(uint8_t *p, uint32_t v)
{
    st16(p, v);
    st16(p + 2, v >> 16);
}

static uint8_t checksum(const uint8_t *p, size_t len)
{
    uint8_t sum = 0;

    for (size_t i = 0; i < len; i++) {
        sum += p[i];
    }
    return (uint8_t)-sum;
}

static uint8_t *put_irq(uint8_t *p, unsigned kind, unsigned type, unsigned flags,
                        unsigned bus, unsigned bus_irq, unsigned dst_id, unsigned dst_pin)
{
    p[0] = kind;
    p[1] = type;
    st16(p + 2, flags);
    p[4] = bus;
    p[5] = bus_irq;
    p[6] = dst_id;
    p[7] = dst_pin;
    return p + MP_SMALL_ENTRY_SIZE;
}

static uint8_t *put_cpus(uint8_t *p, unsigned ncpus)
{
    for (unsigned i = 0; i < ncpus; i++, p += MP_PROC_SIZE) {
        p[0] = MP_PROCESSOR;
        p[1] = i;                                   /* LAPIC ID */
        p[2] = LAPIC_VERSION;
        p[3] = MP_CPU_ENABLED | (i == 0 ? MP_CPU_BOOT : 0);
        st32(p + 4, CPU_SIGNATURE);
        st32(p + 8, CPU_FEATURES);
    }
    return p;
}

static uint8_t *put_buses_and_ioapic(uint8_t *p, unsigned ioapic_id)
{
    p[0] = MP_BUS;
    p[1] = BUS_PCI;
    memcpy(p + 2, "PCI   ", 6);
    p += MP_SMALL_ENTRY_SIZE;
    p[0] = MP_BUS;
    p[1] = BUS_ISA;
    memcpy(p + 2, "ISA   ", 6);
    p += MP_SMALL_ENTRY_SIZE;
    p[0] = MP_IOAPIC;
    p[1] = ioapic_id;
    p[2] = IOAPIC_VERSION;
    p[3] = MP_IOAPIC_ENABLED;
    st32(p + 4, IOAPIC_ADDR);
    return p + MP_SMALL_ENTRY_SIZE;
}

static uint8_t *put_routing(uint8_t *p, unsigned ioapic_id)
{
    for (unsigned irq = 0; irq < ISA_IRQS; irq++) {
        if (irq != ISA_CASCADE_IRQ) {
            p = put_irq(p, MP_INTSRC, MP_INT, MP_IRQ_CONFORMS, BUS_ISA, irq, ioapic_id, irq);
        }
    }
    for (unsigned slot = 0; slot < PCI_SLOTS; slot++) {
        for (unsigned pin = 0; pin < PCI_PINS; pin++) {
            p = put_irq(p, MP_INTSRC, MP_INT, MP_IRQ_LOW_LEVEL, BUS_PCI, (slot << 2) | pin,
                        ioapic_id, PCI_GSI_BASE + ((slot + pin) & 3));
        }
    }
    /* The 8259's output on LINT0 (virtual wire), NMI on LINT1. */
    p = put_irq(p, MP_LINTSRC, MP_EXTINT, MP_IRQ_CONFORMS, BUS_ISA, 0, LAPIC_ALL, 0);
    return put_irq(p, MP_LINTSRC, MP_NMI, MP_IRQ_CONFORMS, BUS_ISA, 0, LAPIC_ALL, 1);
}

size_t qnic_mptable_write(uint8_t *host, uint64_t ram_size, unsigned ncpus)
{
    unsigned nentries = ncpus + 3 + (ISA_IRQS - 1) + PCI_SLOTS * PCI_PINS + 2;
    size_t size = MPF_SIZE + MPC_HEADER_SIZE + ncpus * MP_PROC_SIZE +
                  (nentries - ncpus) * MP_SMALL_ENTRY_SIZE;

    if (ncpus == 0 || ncpus > QNIC_MPTABLE_MAX_CPUS || ram_size < QNIC_MPTABLE_ADDR + size) {
        return 0;
    }
    uint8_t *mpf = host + QNIC_MPTABLE_ADDR;
    uint8_t *mpc = mpf + MPF_SIZE;
    memset(mpf, 0, size);

    uint8_t *p = put_cpus(mpc + MPC_HEADER_SIZE, ncpus);
    p = put_buses_and_ioapic(p, ncpus);
    p = put_routing(p, ncpus);

    memcpy(mpc, MPC_SIGNATURE, 4);
    st16(mpc + 4, (uint16_t)(p - mpc));             /* base table length */
    mpc[6] = MP_SPEC_REV;
    memcpy(mpc + 8, "QNIC    ", 8);                 /* OEM ID */
    memcpy(mpc + 16, "qnic-vmm    ", 12);           /* product ID */
    st16(mpc + 34, nentries);
    st32(mpc + 36, LAPIC_ADDR);
    mpc[7] = checksum(mpc, p - mpc);

    memcpy(mpf, MPF_SIGNATURE, 4);
    st32(mpf + 4, QNIC_MPTABLE_ADDR + MPF_SIZE);    /* configuration table */
    mpf[8] = 1;                                     /* length in 16-byte units */
    mpf[9] = MP_SPEC_REV;
    /* Feature bytes 1-5 zero: the table above is present (no default
     * configuration) and the IMCR is absent (virtual wire mode). */
    mpf[10] = checksum(mpf, MPF_SIZE);
    return (size_t)(p - mpf);
}
