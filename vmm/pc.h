/*
 * The pc board of qnic-vmm: what QEMU's pc machine and its firmware add
 * around the generic machine (hw/core/machine.c) for a guest that boots: the
 * COM1 serial port from -serial, system control port B (0x61) on the
 * accelerator's PIT, each PCI function's PCI_INTERRUPT_LINE as a BIOS would
 * fill it, and the virtio-mmio transports on the kernel command line as
 * QEMU's microvm describes them. Under -accel qtest the board adds nothing,
 * as QEMU without firmware. main.c calls it between creating the devices and
 * the accelerator's machine_ready; it calls the accelerator only through the
 * QnicAccel ops (vmm.h). The reset control register (0xcf9) and the keyboard
 * controller's reset command (0x64) exist under every accelerator, as on
 * QEMU's pc; they ask the run state (vmm.h) for a system reset.
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

/* The PIIX3 reset control register (Intel 82371SB datasheet, RC): writing
 * RST_CPU (bit 2) resets the system; SYS_RST (bit 1, hard reset) is kept
 * and read back. */
#define QNIC_PC_RCR             0xcf9
#define QNIC_PC_RCR_SYS_RST     0x02
#define QNIC_PC_RCR_RST_CPU     0x04
/* The 8042 keyboard controller's command port: commands 0xf0-0xff pulse
 * output port bits 0-3 low where the command's bits are 0; bit 0 is the
 * CPU reset line, so 0xfe (and every even one) resets the system. */
#define QNIC_PC_KBC_CMD         0x64
#define QNIC_PC_KBC_PULSE_MASK  0xf0
#define QNIC_PC_KBC_PULSE_RESET 0x01

typedef struct QnicPcBoard {
    const QnicAccel *accel;
    void *accel_state;
    QnicRegion port61;          /* mapped when the accelerator has a PIT */
    uint8_t port61_val;         /* gate and speaker bits as last written */
    QnicRegion rcr, kbc;        /* the guest's ways to ask for a reset */
    uint8_t rcr_val;            /* SYS_RST as last written */
    unsigned ncpus;             /* for the tables written again at reset */
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
/* The board's part of a system reset (qnic_vmm_set_board_reset; opaque is
 * the board): its registers back to power-on, and firmware's work done
 * again as a BIOS would on the reboot (PCI interrupt lines, the MP and
 * ACPI tables, which the guest may have overwritten). */
void qnic_pc_board_reset(void *opaque, QnicMachine *m);
/* Migration (docs/migration.md): the board's guest-visible state that no
 * device or accelerator holds (port 0x61's gate and speaker bits, the
 * reset control register's SYS_RST bit, the PM1
 * enable and control registers, the PM timer) as one "pc-board" section.
 * opaque is the board (for qnic_vmm_set_board_state). Load reads and
 * checks it, then applies it; on false the board is as it was.
 * COM1 is an isa-serial device with its own state, the debug exit has
 * none, and the hotplug registers belong to hw/pci/pcihp.c. */
void qnic_pc_board_save_state(void *opaque, GByteArray *out);
bool qnic_pc_board_load_state(void *opaque, QnicStateReader *r, GError **errp);
/* Undo it; after the accelerator stopped its vCPUs, before the machine is
 * freed. A zeroed board is fine. */
void qnic_pc_board_cleanup(QnicPcBoard *b);

#endif
