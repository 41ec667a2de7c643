/* What the PCI core's files share with each other and nobody else. */
#ifndef QNIC_PCI_INTERNAL_H
#define QNIC_PCI_INTERNAL_H

#include "qnic/pci.h"

int qnic_pci_bus_claim(QnicPciBus *bus, QnicPciDevice *d, const char *addr, GError **errp);
void qnic_pci_bus_release(QnicPciBus *bus, int devfn);
void qnic_pci_bus_intx_update(QnicPciDevice *d);

void qnic_msi_config_write(QnicPciDevice *d, uint32_t addr, unsigned len);
void qnic_msi_reset(QnicPciDevice *d);
void qnic_msix_config_write(QnicPciDevice *d, uint32_t addr, unsigned len);
void qnic_msix_reset(QnicPciDevice *d);
void qnic_msix_exit(QnicPciDevice *d);

#endif
