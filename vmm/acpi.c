/*
 * The ACPI tables (see acpi.h), laid out as ACPI 6.5 chapter 5.2 gives
 * them: the RSDP (5.2.5.3), the common table header (5.2.6), RSDT and XSDT
 * (5.2.7, 5.2.8), the FADT (5.2.9, revision 3 as QEMU's pc machine writes
 * it, which every ACPI 2.0+ OS reads), the FACS (5.2.10) and the MADT
 * (5.2.12) with its processor local APIC, I/O APIC, interrupt source
 * override and local APIC NMI entries. The DSDT is iasl's output, copied.
 */
#include "vmm/acpi.h"
#include "vmm/acpi-pm.h"
#include "qnic/common.h"

#define RSDP_SIG "RSD PTR "
#define RSDP_V1_LEN 20                  /* the part the first checksum covers */
#define RSDP_LEN 36
#define HDR_LEN 36                      /* every table but the RSDP and FACS */
#define FACS_LEN 64
#define FADT_LEN 244                    /* revision 3 */
#define FADT_REVISION 3
#define MADT_LAPIC_LEN 8
#define MADT_IOAPIC_LEN 12
#define MADT_ISO_LEN 10
#define MADT_LAPIC_NMI_LEN 6
#define OEM_ID "QNIC  "                 /* 6 bytes, as in dsdt.dsl */
#define OEM_TABLE_ID "QNICVMM "         /* 8 bytes */

enum { MADT_LAPIC = 0, MADT_IOAPIC = 1, MADT_ISO = 2, MADT_LAPIC_NMI = 4 };

#define LAPIC_ADDR 0xfee00000u
#define IOAPIC_ADDR 0xfec00000u
#define MADT_PCAT_COMPAT 0x1            /* dual 8259s present too */
#define MADT_LAPIC_ENABLED 0x1
/* MPS INTI flags: polarity bits 0-1 (1 active high), trigger bits 2-3
 * (3 level). */
#define MPS_INTI_HIGH_LEVEL 0x000d
#define LAPIC_ALL_PROCESSORS 0xff

/* FADT fixed feature flags (ACPI 6.5, table 5.10) and IA-PC boot
 * architecture flags (table 5.11). */
#define FADT_WBINVD (1u << 0)
#define FADT_PROC_C1 (1u << 2)
#define FADT_PWR_BUTTON (1u << 4)       /* no fixed power button */
#define FADT_SLP_BUTTON (1u << 5)       /* no fixed sleep button */
#define FADT_FIX_RTC (1u << 6)          /* no RTC wake status */
#define FADT_TMR_VAL_EXT (1u << 8)      /* 32-bit PM timer */
#define BOOT_LEGACY_DEVICES (1u << 0)   /* COM1 on the ISA side */
#define BOOT_VGA_NOT_PRESENT (1u << 2)
#define BOOT_CMOS_RTC_NOT_PRESENT (1u << 5)
/* No 8042 (bit 1 clear), MSI allowed (bit 3 clear). */
#define P_LVL_UNSUPPORTED 0x0fff        /* C2/C3 latencies: no C2, no C3 */
#define GAS_SYSTEM_IO 1

/* Where each table goes, 16-byte aligned (the FACS 64-byte aligned) after
 * the RSDP. */
typedef struct AcpiLayout {
    uint32_t rsdp, facs, rsdt, xsdt, fadt, madt, dsdt, end;
    uint32_t madt_len;
} AcpiLayout;

static uint8_t checksum(const uint8_t *p, size_t len)
{
    uint8_t sum = 0;

    for (size_t i = 0; i < len; i++) {
        sum += p[i];
    }
    return (uint8_t)-sum;
}

static void put_header(uint8_t *t, const char *sig, uint32_t len, uint8_t rev)
{
    memcpy(t, sig, 4);
    qnic_st32(t + 4, len);
    t[8] = rev;
    memcpy(t + 10, OEM_ID, 6);
    memcpy(t + 16, OEM_TABLE_ID, 8);
    qnic_st32(t + 24, 1);                       /* OEM revision */
    memcpy(t + 28, "QNIC", 4);                  /* creator ID */
    qnic_st32(t + 32, 1);                       /* creator revision */
}

static void finish(uint8_t *t)
{
    t[9] = 0;
    t[9] = checksum(t, qnic_ld32(t + 4));
}

/* A Generic Address Structure (5.2.3.2) for an I/O port block. */
static void put_gas_io(uint8_t *p, uint32_t port, unsigned len)
{
    p[0] = GAS_SYSTEM_IO;
    p[1] = len * 8;                             /* register bit width */
    p[2] = 0;                                   /* bit offset */
    p[3] = 0;                                   /* access size: legacy */
    qnic_st64(p + 4, port);
}

static void put_facs(uint8_t *t)
{
    memcpy(t, "FACS", 4);
    qnic_st32(t + 4, FACS_LEN);
    t[32] = 1;                                  /* version: ACPI 2.0+ layout */
}

static void put_fadt(uint8_t *t, const AcpiLayout *l)
{
    put_header(t, "FACP", FADT_LEN, FADT_REVISION);
    qnic_st32(t + 36, l->facs);                 /* FIRMWARE_CTRL */
    qnic_st32(t + 40, l->dsdt);
    qnic_st16(t + 46, QNIC_ACPI_SCI_IRQ);
    /* SMI_CMD, ACPI_ENABLE, ACPI_DISABLE 0: always in ACPI mode. */
    qnic_st32(t + 56, QNIC_ACPI_PM1_EVT);
    qnic_st32(t + 64, QNIC_ACPI_PM1_CNT);
    qnic_st32(t + 76, QNIC_ACPI_PM_TMR);
    qnic_st32(t + 80, QNIC_ACPI_GPE0_ADDR);
    t[88] = QNIC_ACPI_PM1_EVT_LEN;
    t[89] = QNIC_ACPI_PM1_CNT_LEN;
    t[91] = QNIC_ACPI_PM_TMR_LEN;
    t[92] = QNIC_ACPI_GPE0_LEN;
    qnic_st16(t + 96, P_LVL_UNSUPPORTED);
    qnic_st16(t + 98, P_LVL_UNSUPPORTED);
    qnic_st16(t + 109, BOOT_LEGACY_DEVICES | BOOT_VGA_NOT_PRESENT | BOOT_CMOS_RTC_NOT_PRESENT);
    qnic_st32(t + 112, FADT_WBINVD | FADT_PROC_C1 | FADT_PWR_BUTTON | FADT_SLP_BUTTON |
                       FADT_FIX_RTC | FADT_TMR_VAL_EXT);
    /* X_FIRMWARE_CTRL stays 0: ACPI 6.5 table 5.9 wants it zero when
     * FIRMWARE_CTRL is set (Linux lists the FACS twice otherwise). */
    qnic_st64(t + 140, l->dsdt);                /* X_DSDT */
    put_gas_io(t + 148, QNIC_ACPI_PM1_EVT, QNIC_ACPI_PM1_EVT_LEN);
    put_gas_io(t + 172, QNIC_ACPI_PM1_CNT, QNIC_ACPI_PM1_CNT_LEN);
    put_gas_io(t + 208, QNIC_ACPI_PM_TMR, QNIC_ACPI_PM_TMR_LEN);
    put_gas_io(t + 220, QNIC_ACPI_GPE0_ADDR, QNIC_ACPI_GPE0_LEN);
    finish(t);
}

static uint8_t *put_iso(uint8_t *p, unsigned irq, unsigned gsi, unsigned flags)
{
    p[0] = MADT_ISO;
    p[1] = MADT_ISO_LEN;
    p[2] = 0;                                   /* bus: ISA */
    p[3] = irq;
    qnic_st32(p + 4, gsi);
    qnic_st16(p + 8, flags);
    return p + MADT_ISO_LEN;
}

static uint32_t madt_len(unsigned ncpus)
{
    return HDR_LEN + 8 + ncpus * MADT_LAPIC_LEN + MADT_IOAPIC_LEN + MADT_ISO_LEN +
           MADT_LAPIC_NMI_LEN;
}

/* The vCPUs, the I/O APIC (GSI base 0) and the SCI's override. ISA IRQ 0
 * needs none: qnic-vmm's KVM routing wires the PIT to pin 0, as the MP table
 * says (QEMU's pc machine wires it to pin 2 and overrides IRQ 0 to GSI 2). */
static void put_madt(uint8_t *t, unsigned ncpus)
{
    uint8_t *p = t + HDR_LEN;

    put_header(t, "APIC", madt_len(ncpus), 1);
    qnic_st32(p, LAPIC_ADDR);
    qnic_st32(p + 4, MADT_PCAT_COMPAT);
    p += 8;
    for (unsigned i = 0; i < ncpus; i++, p += MADT_LAPIC_LEN) {
        p[0] = MADT_LAPIC;
        p[1] = MADT_LAPIC_LEN;
        p[2] = i;                               /* ACPI processor UID */
        p[3] = i;                               /* APIC ID */
        qnic_st32(p + 4, MADT_LAPIC_ENABLED);
    }
    p[0] = MADT_IOAPIC;
    p[1] = MADT_IOAPIC_LEN;
    p[2] = ncpus;                               /* I/O APIC ID, as the MP table */
    qnic_st32(p + 4, IOAPIC_ADDR);
    qnic_st32(p + 8, 0);                        /* GSI base */
    p += MADT_IOAPIC_LEN;
    p = put_iso(p, QNIC_ACPI_SCI_IRQ, QNIC_ACPI_SCI_IRQ, MPS_INTI_HIGH_LEVEL);
    /* NMI on LINT1 of every processor. */
    p[0] = MADT_LAPIC_NMI;
    p[1] = MADT_LAPIC_NMI_LEN;
    p[2] = LAPIC_ALL_PROCESSORS;
    qnic_st16(p + 3, 0);                        /* flags: conforms */
    p[5] = 1;                                   /* LINT1 */
    finish(t);
}

static void put_rsdt_xsdt(uint8_t *rsdt, uint8_t *xsdt, const AcpiLayout *l)
{
    const uint32_t tables[] = { l->fadt, l->madt };
    unsigned n = QNIC_ARRAY_SIZE(tables);

    put_header(rsdt, "RSDT", HDR_LEN + 4 * n, 1);
    put_header(xsdt, "XSDT", HDR_LEN + 8 * n, 1);
    for (unsigned i = 0; i < n; i++) {
        qnic_st32(rsdt + HDR_LEN + 4 * i, tables[i]);
        qnic_st64(xsdt + HDR_LEN + 8 * i, tables[i]);
    }
    finish(rsdt);
    finish(xsdt);
}

static void put_rsdp(uint8_t *p, const AcpiLayout *l)
{
    memcpy(p, RSDP_SIG, 8);
    memcpy(p + 9, OEM_ID, 6);
    p[15] = 2;                                  /* revision: ACPI 2.0+ */
    qnic_st32(p + 16, l->rsdt);
    qnic_st32(p + 20, RSDP_LEN);
    qnic_st64(p + 24, l->xsdt);
    p[8] = checksum(p, RSDP_V1_LEN);
    p[32] = checksum(p, RSDP_LEN);
}

static void layout(AcpiLayout *l, unsigned ncpus)
{
    l->rsdp = QNIC_ACPI_ADDR;
    l->facs = QNIC_ALIGN_UP(l->rsdp + RSDP_LEN, 64);
    l->rsdt = l->facs + FACS_LEN;
    l->xsdt = QNIC_ALIGN_UP(l->rsdt + HDR_LEN + 4 * 2, 16);
    l->fadt = QNIC_ALIGN_UP(l->xsdt + HDR_LEN + 8 * 2, 16);
    l->madt = QNIC_ALIGN_UP(l->fadt + FADT_LEN, 16);
    l->madt_len = madt_len(ncpus);
    l->dsdt = QNIC_ALIGN_UP(l->madt + l->madt_len, 16);
    l->end = l->dsdt + (uint32_t)qnic_acpi_dsdt_aml_len;
}

size_t qnic_acpi_write(uint8_t *host, uint64_t ram_size, unsigned ncpus)
{
    AcpiLayout l;

    if (ncpus == 0 || ncpus > QNIC_ACPI_MAX_CPUS) {
        return 0;
    }
    layout(&l, ncpus);
    if (l.end > QNIC_ACPI_ADDR + QNIC_ACPI_SIZE || ram_size < l.end) {
        return 0;
    }
    memset(host + QNIC_ACPI_ADDR, 0, l.end - QNIC_ACPI_ADDR);
    memcpy(host + l.dsdt, qnic_acpi_dsdt_aml, qnic_acpi_dsdt_aml_len);
    put_facs(host + l.facs);
    put_fadt(host + l.fadt, &l);
    put_madt(host + l.madt, ncpus);
    put_rsdt_xsdt(host + l.rsdt, host + l.xsdt, &l);
    put_rsdp(host + l.rsdp, &l);
    return l.end - QNIC_ACPI_ADDR;
}

uint64_t qnic_acpi_rsdp_addr(const uint8_t *host, uint64_t ram_size)
{
    const uint8_t *p = host + QNIC_ACPI_ADDR;

    if (ram_size < QNIC_ACPI_ADDR + RSDP_LEN || memcmp(p, RSDP_SIG, 8) != 0 ||
        checksum(p, RSDP_V1_LEN) != 0 || checksum(p, RSDP_LEN) != 0) {
        return 0;
    }
    return QNIC_ACPI_ADDR;
}
