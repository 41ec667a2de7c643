/*
 * What the three files of the virtio PCI transport share. virtio-pci.c is
 * the PCI device (IDs, MSI-X and INTx, ioeventfds, device status, the PCI
 * configuration hooks, realize); virtio-pci-legacy.c is the virtio 0.9.5
 * register file in I/O BAR0; virtio-pci-modern.c is the virtio 1.0
 * interface: the vendor capabilities and the common / ISR / device /
 * notify structures in BAR4, and the PCI configuration access window onto
 * them. A transitional device has both register files, a non-transitional
 * one only the modern, as in QEMU and kvmtool. Not a public header.
 */
#ifndef VIRTIO_VIRTIO_PCI_INTERNAL_H
#define VIRTIO_VIRTIO_PCI_INTERNAL_H

#include "qnic/virtio.h"

/* QEMU 7.2's layout of BAR4 */
#define MODERN_BAR 4
#define MSIX_BAR 1
#define LEGACY_BAR 0
#define MODERN_REGION_SIZE 0x1000u
#define COMMON_OFF 0x0000u
#define ISR_OFF 0x1000u
#define DEVICE_OFF 0x2000u
#define NOTIFY_OFF 0x3000u
#define MODERN_BAR_SIZE 0x4000u
#define NOTIFY_MULT 4u

/* ---- virtio-pci.c ---- */

/* A device status write from either register file (0 resets). */
void virtio_pci_set_status(QnicVirtioPci *p, uint8_t val);
/* v, or NO_VECTOR (with a guest error) when it is past the MSI-X table. */
uint16_t virtio_pci_check_vector(QnicVirtioPci *p, uint16_t v);

/* ---- virtio-pci-legacy.c ---- */

/* BAR0 sized for the device's configuration space behind the legacy
 * registers (with the MSI-X vector registers when vectors > 0). */
void virtio_pci_legacy_init(QnicVirtioPci *p, unsigned vectors);

/* ---- virtio-pci-modern.c ---- */

/* BAR4 and the vendor capabilities that describe it, including the PCI
 * configuration access window. */
bool virtio_pci_modern_init(QnicVirtioPci *p, GError **errp);
/* The configuration access window: a config write of its data field
 * writes through to BAR4; a config read of it returns what BAR4 holds
 * (val as the PCI core read it otherwise). */
void virtio_pci_modern_cfg_write(QnicVirtioPci *p, uint32_t addr, unsigned len);
uint32_t virtio_pci_modern_cfg_read(QnicVirtioPci *p, uint32_t addr, unsigned len, uint32_t val);

#endif
