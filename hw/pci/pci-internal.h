/* What the PCI core's files share with each other and nobody else. */
#ifndef QNIC_PCI_INTERNAL_H
#define QNIC_PCI_INTERNAL_H

#include "qnic/pci.h"

int qnic_pci_bus_claim(QnicPciBus *bus, QnicPciDevice *d, const char *addr, GError **errp);
void qnic_pci_bus_release(QnicPciBus *bus, int devfn);
void qnic_pci_bus_intx_update(QnicPciDevice *d);
/* A function the bus made itself (host bridge, PIIX): never hotplugged. */
bool qnic_pci_device_is_builtin(const QnicPciDevice *d);
/* Where BAR i (QNIC_PCI_ROM_SLOT: the ROM) of d decodes with config as its
 * config space (d's own, or one being loaded), or QNIC_PCI_BAR_UNMAPPED. */
uint64_t qnic_pci_bar_decode(const QnicPciDevice *d, const uint8_t *config, int i);
/* Map, move or unmap d's BARs to match its config space. */
void qnic_pci_update_mappings(QnicPciDevice *d);

/* pcihp.c, owned by the bus. */
QnicPciHotplug *qnic_pci_hotplug_new(QnicPciBus *bus);
void qnic_pci_hotplug_free(QnicPciHotplug *hp);
void qnic_pci_hotplug_reset(QnicPciHotplug *hp);
/* Its registers as a state section: save; read and check (a pending
 * unplug must name a hotplugged device); apply (the SCI follows). */
typedef struct QnicPciHotplugState QnicPciHotplugState;
void qnic_pci_hotplug_state_save(QnicPciHotplug *hp, GByteArray *out);
QnicPciHotplugState *qnic_pci_hotplug_state_read(QnicPciHotplug *hp, QnicStateReader *r,
                                                 GError **errp);
void qnic_pci_hotplug_state_apply(QnicPciHotplug *hp, const QnicPciHotplugState *s);

void qnic_msi_config_write(QnicPciDevice *d, uint32_t addr, unsigned len);
void qnic_msi_reset(QnicPciDevice *d);
void qnic_msix_config_write(QnicPciDevice *d, uint32_t addr, unsigned len);
void qnic_msix_reset(QnicPciDevice *d);
void qnic_msix_exit(QnicPciDevice *d);

#endif
