/*
 * The ACPI fixed hardware registers of qnic-vmm's pc board, at the I/O base
 * QEMU's PIIX4 power-management function gets from its firmware (0x600):
 * the PM1a event block (status, enable), the PM1a control block and the
 * 32-bit PM timer. An OS in ACPI mode writes the PM1 enable and control
 * registers while it starts its ACPI interpreter (Linux's ACPICA refuses to
 * start without them), so the FADT (acpi.h) must name real ones. No fixed
 * event ever fires here (no power or sleep button, no timer overflow
 * interrupt), so the block never raises the SCI; the SCI belongs to the
 * GPE0 block of hw/pci/pcihp.c. SCI_EN always reads 1: the board has no
 * SMI command port and is always in ACPI mode; sleep requests are ignored
 * (the DSDT offers no sleep state).
 */
#ifndef QNIC_VMM_ACPI_PM_H
#define QNIC_VMM_ACPI_PM_H

#include "qnic/memory.h"

#define QNIC_ACPI_PM_BASE       0x600
#define QNIC_ACPI_PM1_EVT       (QNIC_ACPI_PM_BASE + 0)     /* status, enable */
#define QNIC_ACPI_PM1_EVT_LEN   4
#define QNIC_ACPI_PM1_CNT       (QNIC_ACPI_PM_BASE + 4)
#define QNIC_ACPI_PM1_CNT_LEN   2
#define QNIC_ACPI_PM_TMR        (QNIC_ACPI_PM_BASE + 8)
#define QNIC_ACPI_PM_TMR_LEN    4
#define QNIC_ACPI_PM_LEN        12
#define QNIC_ACPI_PM_TMR_HZ     3579545ull  /* ACPI 6.5, 4.8.3.3 */

/* PM1 control bits (ACPI 6.5, table 4.16). */
#define QNIC_ACPI_PM1_SCI_EN    0x0001
#define QNIC_ACPI_PM1_GBL_RLS   0x0004
#define QNIC_ACPI_PM1_SLP_EN    0x2000

typedef struct QnicAcpiPm {
    QnicRegion pm1;             /* event and control blocks, byte registers */
    QnicRegion tmr;             /* the timer, 32-bit reads */
    uint16_t pm1_en;            /* as last written */
    uint16_t pm1_cnt;           /* as last written, without SLP_EN */
    int64_t tmr_offset_ns;      /* timer time = CLOCK_MONOTONIC + this */
} QnicAcpiPm;

/* Map the registers at QNIC_ACPI_PM_BASE in IO (pm zeroed by the caller). */
void qnic_acpi_pm_init(QnicAcpiPm *pm, QnicAddressSpace *io);
/* System reset: enables and control back to 0 (the timer runs on). */
void qnic_acpi_pm_reset(QnicAcpiPm *pm);
/* The timer's time in ns (it counts QNIC_ACPI_PM_TMR_HZ from it), and
 * setting it: a restored board's timer goes on from where it stopped. */
uint64_t qnic_acpi_pm_timer_ns(const QnicAcpiPm *pm);
void qnic_acpi_pm_set_timer_ns(QnicAcpiPm *pm, uint64_t ns);
/* Unmap them; a zeroed pm is fine. */
void qnic_acpi_pm_cleanup(QnicAcpiPm *pm);

#endif
