/*
 * The pc board of qnic-vmm: what QEMU's pc machine and its firmware add
 * around the generic machine (hw/core/machine.c) for a guest that boots: the
 * COM1 serial port from -serial, system control port B (0x61) on the
 * accelerator's PIT, each PCI function's PCI_INTERRUPT_LINE as a BIOS would
 * fill it, and the virtio-mmio transports on the kernel command line as
 * QEMU's microvm describes them. Under -accel qtest the board adds nothing,
 * as QEMU without firmware. main.c calls it between creating the devices and
 * the accelerator's machine_ready; it calls the accelerator only through the
 * QnicAccel ops (vmm.h).
 */
#ifndef QNIC_VMM_PC_H
#define QNIC_VMM_PC_H

#include "vmm/vmm.h"
#include "vmm/acpi-pm.h"
#include "qnic/memory.h"

/* System control port B (Intel 8254/PIIX): bit 0 gates PIT channel 2,
 * bit 1 enables the speaker, bit 4 toggles with DRAM refresh, bit 5 is
 * channel 2's output. */
#define QNIC_PC_PORT61          0x61
#define QNIC_PC_PORT61_GATE2    0x01
#define QNIC_PC_PORT61_SPEAKER  0x02
#define QNIC_PC_PORT61_REFRESH  0x10
#define QNIC_PC_PORT61_OUT2     0x20

typedef struct QnicPcBoard {
    const QnicAccel *accel;
    void *accel_state;
    QnicRegion port61;          /* mapped when the accelerator has a PIT */
    uint8_t port61_val;         /* gate and speaker bits as last written */
    QnicAcpiPm acpi_pm;         /* PM1 and PM timer, mapped with the ACPI tables */
    char *cmdline;              /* kernel command line, NULL: none */
} QnicPcBoard;

/* The board's part of a machine whose devices exist (b zeroed by the
 * caller). For an accelerator that boots a kernel: port 0x61 (if nothing
 * serves it yet), the -serial port (unless a -device made one), the PCI
 * interrupt lines, the MP table, the ACPI tables with their PM registers
 * (acpi.h, acpi-pm.h), and b->cmdline = -append plus the virtio-mmio
 * descriptions. Returns false with errp set (the -serial error). */
bool qnic_pc_board_ready(QnicPcBoard *b, const QnicAccel *accel, void *accel_state,
                         QnicVmmConfig *cfg, QnicMachine *m, GError **errp);
/* Undo it; after the accelerator stopped its vCPUs, before the machine is
 * freed. A zeroed board is fine. */
void qnic_pc_board_cleanup(QnicPcBoard *b);

#endif
