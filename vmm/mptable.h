/*
 * The Intel MultiProcessor Specification 1.4 table qnic-vmm writes where a
 * BIOS would (the floating pointer at the start of the BIOS area, 0xf0000):
 * a stock Linux kernel without ACPI tables finds its CPUs, the I/O APIC and
 * the routing of every ISA IRQ and PCI INTx pin there. Without it Linux runs
 * the 8259 PIC alone and cannot take the PCI interrupt lines qnic-vmm fills
 * (GSI 16-23 on the I/O APIC), so e1000 and rtl8139 would get no interrupt.
 * The routing written is the one the board and the accelerator implement:
 * ISA IRQ n on I/O APIC pin n, and pin P (INTA = 0) of PCI slot S on pin
 * 16 + ((S + P) & 3).
 */
#ifndef QNIC_VMM_MPTABLE_H
#define QNIC_VMM_MPTABLE_H

#include <stddef.h>
#include <stdint.h>

#define QNIC_MPTABLE_ADDR 0xf0000u          /* BIOS area, reserved in e820 */
#define QNIC_MPTABLE_MAX_CPUS 255u

/* Write the floating pointer and the configuration table for NCPUS vCPUs
 * (LAPIC IDs 0..NCPUS-1) into guest RAM at HOST (guest physical 0, RAM_SIZE
 * bytes). Returns the bytes written, or 0 when the RAM does not reach past
 * the table or NCPUS is out of range (nothing written then). */
size_t qnic_mptable_write(uint8_t *host, uint64_t ram_size, unsigned ncpus);

#endif
