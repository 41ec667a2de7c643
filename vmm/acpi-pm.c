/*
 * The PM1 registers and the PM timer (see acpi-pm.h). The timer counts at
 * 3.579545 MHz from CLOCK_MONOTONIC, like the board's port 0x61, so that it
 * agrees with the host's clock whichever vCPU reads it; an offset, zero
 * until a migration restores the board, lets it go on from the source's
 * count.
 */
#include "vmm/acpi-pm.h"

#include <time.h>

#define PM1_STS         0       /* offsets in the pm1 region */
#define PM1_EN          2
#define PM1_CNT         4
#define PM1_REGION_LEN  (QNIC_ACPI_PM1_EVT_LEN + QNIC_ACPI_PM1_CNT_LEN)

static uint64_t pm1_read(void *opaque, uint64_t addr, unsigned size)
{
    QnicAcpiPm *pm = opaque;
    unsigned shift = (addr & 1) * 8;

    switch (addr & ~1ull) {
    case PM1_EN:
        return (uint8_t)(pm->pm1_en >> shift);
    case PM1_CNT:
        return (uint8_t)((pm->pm1_cnt | QNIC_ACPI_PM1_SCI_EN) >> shift);
    default:                    /* PM1_STS: no fixed event ever fires */
        return 0;
    }
}

static void pm1_write(void *opaque, uint64_t addr, uint64_t val, unsigned size)
{
    QnicAcpiPm *pm = opaque;
    unsigned shift = (addr & 1) * 8;
    uint16_t mask = (uint16_t)(0xff << shift);
    uint16_t v = (uint16_t)((val & 0xff) << shift);

    switch (addr & ~1ull) {
    case PM1_EN:
        pm->pm1_en = (pm->pm1_en & ~mask) | v;
        break;
    case PM1_CNT:
        /* SLP_EN is write-only and asks for a sleep state the DSDT does
         * not offer: dropped, as the other write-only bit (GBL_RLS). */
        pm->pm1_cnt = ((pm->pm1_cnt & ~mask) | v) & ~(QNIC_ACPI_PM1_SLP_EN | QNIC_ACPI_PM1_GBL_RLS);
        break;
    default:                    /* PM1_STS: write 1 to clear, nothing set */
        break;
    }
}

static const QnicMemOps pm1_ops = {
    .read = pm1_read, .write = pm1_write,
    .valid_min = 1, .valid_max = 4, .impl_min = 1, .impl_max = 1,
};

static int64_t monotonic_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

uint64_t qnic_acpi_pm_timer_ns(const QnicAcpiPm *pm)
{
    return (uint64_t)(monotonic_ns() + pm->tmr_offset_ns);
}

void qnic_acpi_pm_set_timer_ns(QnicAcpiPm *pm, uint64_t ns)
{
    pm->tmr_offset_ns = (int64_t)(ns - (uint64_t)monotonic_ns());
}

static uint64_t tmr_read(void *opaque, uint64_t addr, unsigned size)
{
    uint64_t ns = qnic_acpi_pm_timer_ns(opaque);

    return (uint32_t)((__uint128_t)ns * QNIC_ACPI_PM_TMR_HZ / 1000000000ull);
}

static void tmr_write(void *opaque, uint64_t addr, uint64_t val, unsigned size)
{
    /* read-only */
}

static const QnicMemOps tmr_ops = {
    .read = tmr_read, .write = tmr_write,
    .valid_min = 4, .valid_max = 4, .impl_min = 4, .impl_max = 4,
};

void qnic_acpi_pm_init(QnicAcpiPm *pm, QnicAddressSpace *io)
{
    qnic_region_init_io(&pm->pm1, NULL, &pm1_ops, pm, "acpi-pm1", PM1_REGION_LEN);
    qnic_region_init_io(&pm->tmr, NULL, &tmr_ops, pm, "acpi-pm-tmr", QNIC_ACPI_PM_TMR_LEN);
    qnic_as_map(io, &pm->pm1, QNIC_ACPI_PM1_EVT, 0);
    qnic_as_map(io, &pm->tmr, QNIC_ACPI_PM_TMR, 0);
}

void qnic_acpi_pm_reset(QnicAcpiPm *pm)
{
    pm->pm1_en = 0;
    pm->pm1_cnt = 0;
}

void qnic_acpi_pm_cleanup(QnicAcpiPm *pm)
{
    if (pm->pm1.as) {
        qnic_as_unmap(&pm->pm1);
    }
    if (pm->tmr.as) {
        qnic_as_unmap(&pm->tmr);
    }
}
