/*
 * The ACPI tables qnic-vmm writes where a BIOS would, so that a stock OS
 * finds, besides what the MP table (mptable.h) tells it, the PCI root bus
 * with its interrupt routing and hotpluggable slots, the SCI and the GPE
 * block of the hotplug registers (hw/pci/pcihp.c), and the PM1 registers
 * and PM timer of the board (acpi-pm.h): the RSDP, an RSDT and an XSDT
 * naming the FADT and the MADT, the FACS, and the DSDT that iasl compiled
 * from vmm/dsdt.dsl at build time. Everything lives in the reserved BIOS
 * area (QNIC_ACPI_ADDR, after the MP table), where the RSDP is also found
 * by the legacy scan; the kernel loaders hand its address over as well
 * (boot_params.acpi_rsdp_addr, hvm_start_info.rsdp_paddr).
 */
#ifndef QNIC_VMM_ACPI_H
#define QNIC_VMM_ACPI_H

#include <stddef.h>
#include <stdint.h>

#define QNIC_ACPI_ADDR 0xf8000u             /* the RSDP, then the tables */
#define QNIC_ACPI_SIZE 0x8000u              /* up to the end of the BIOS area */
#define QNIC_ACPI_MAX_CPUS 255u

/* The FADT's interrupt and register blocks. */
#define QNIC_ACPI_SCI_IRQ 9                 /* ISA IRQ, level, active high */
#define QNIC_ACPI_GPE0_ADDR 0xafe0u         /* hw/pci/pcihp.c */
#define QNIC_ACPI_GPE0_LEN 4

/* The DSDT's AML (generated from vmm/dsdt.dsl by iasl and bin2c.py). */
extern const unsigned char qnic_acpi_dsdt_aml[];
extern const size_t qnic_acpi_dsdt_aml_len;

/* Write the tables for NCPUS vCPUs (LAPIC IDs 0..NCPUS-1, the I/O APIC's ID
 * NCPUS as in the MP table) into guest RAM at HOST (guest physical 0,
 * RAM_SIZE bytes). Returns the bytes written from QNIC_ACPI_ADDR, or 0 when
 * RAM does not reach past the area or NCPUS is out of range (nothing
 * written then). */
size_t qnic_acpi_write(uint8_t *host, uint64_t ram_size, unsigned ncpus);

/* The guest address of the RSDP qnic_acpi_write() left in that RAM, or 0
 * when there is none (no valid signature and checksums at QNIC_ACPI_ADDR):
 * what the kernel loaders hand over. */
uint64_t qnic_acpi_rsdp_addr(const uint8_t *host, uint64_t ram_size);

#endif
