/*
 * The machine: what an embedder (qnic-vmm under KVM, the qtest server, a
 * fuzzer, a unit test) builds to host devices. It holds guest RAM (memfd
 * backed, so vhost-user can share it), the memory and I/O address spaces,
 * the PCI bus behind an i440FX-compatible host bridge at 0xcf8/0xcfc, the
 * interrupt lines (GSIs) and the devices. It knows no register layout and no
 * accelerator: interrupt delivery and MSI writes to 0xfee00000 go to the
 * embedder through the hooks below.
 *
 * Memory map (as QEMU's pc): RAM from 0 up to min(ram, 3.5 GiB) and the rest
 * from 4 GiB; PCI MMIO BARs are assigned by firmware/tests in the hole
 * 0xe0000000..0xfec00000; IOAPIC 0xfec00000; MSI 0xfee00000.
 */
#ifndef QNIC_MACHINE_H
#define QNIC_MACHINE_H

#include "qnic/common.h"
#include "qnic/memory.h"
#include "qnic/device.h"

#define QNIC_NUM_GSI 24
#define QNIC_MSI_ADDR_BASE 0xfee00000ull
#define QNIC_MSI_ADDR_SIZE 0x100000ull
#define QNIC_BELOW_4G_MAX 0xe0000000ull
#define QNIC_PCI_HOLE_START 0xe0000000ull
#define QNIC_PCI_HOLE_END 0xfec00000ull

typedef struct QnicPciBus QnicPciBus;
typedef struct QnicBackends QnicBackends;   /* qnic/backends.h */

typedef struct QnicMachineConfig {
    uint64_t ram_size;          /* bytes; default 128 MiB */
    /* No guest RAM of its own: the embedder maps RAM regions into mem
     * itself (the vhost-user device side maps the frontend's memory table).
     * ram_fd is then -1 and qnic_machine_ram_ptr() returns NULL. */
    bool no_ram;
    /* Interrupt lines: level of GSI changes (INTx via IOAPIC pins 16..23,
     * ISA IRQs 0..15). */
    void (*set_gsi)(void *opaque, unsigned gsi, int level);
    /* An MSI message was written (addr in 0xfee00000..0xfeefffff). */
    void (*msi)(void *opaque, uint64_t addr, uint32_t data);
    /* Optional: an eventfd whose every write delivers this MSI message
     * without qnic (KVM: an irqfd on a GSI route), so that another process
     * (a vhost backend) can interrupt the guest directly. The embedder
     * owns it; it stays valid until the machine is freed and is shared by
     * every user of the same message. -1: not available. */
    int (*msi_irqfd)(void *opaque, uint64_t addr, uint32_t data);
    void *opaque;
    /* The netdevs and chardevs this machine's devices name (netdev=):
     * the embedder's, made with qnic_backends_new() before the machine
     * and freed after it. NULL: a NIC model cannot be created. */
    QnicBackends *backends;
} QnicMachineConfig;

struct QnicMachine {
    QnicMachineConfig cfg;
    QnicAddressSpace mem;
    QnicAddressSpace io;
    uint64_t ram_size, below_4g, above_4g;
    int ram_fd;                 /* memfd holding all guest RAM */
    uint8_t *ram;               /* its host mapping */
    QnicRegion ram_low, ram_high;
    QnicRegion msi_region;      /* 0xfee00000: calls cfg.msi */
    QnicPciBus *pci;
    GPtrArray *devices;         /* QnicDevice *, creation order */
    int gsi_level[QNIC_NUM_GSI];
    unsigned next_mmio_slot;    /* virtio-mmio placement */
};

QnicMachine *qnic_machine_new(const QnicMachineConfig *cfg, GError **errp);
void qnic_machine_free(QnicMachine *m);
void qnic_machine_reset(QnicMachine *m);       /* system reset: every device */
void qnic_machine_set_gsi(QnicMachine *m, unsigned gsi, int level);
/* The embedder's eventfd for an MSI message (cfg.msi_irqfd), or -1: no
 * hook, or addr is not in the MSI window (a message aimed at RAM is a DMA
 * write, not an interrupt). */
int qnic_machine_msi_irqfd(QnicMachine *m, uint64_t addr, uint32_t data);
/* Machine-level state (qnic/state.h section "machine": the GSI levels,
 * then the PCI bus's sections: PIIX3 routing, hotplug registers), for
 * snapshot and migration; the devices have their own sections. Load checks
 * the bus's sections before applying them, then raises and lowers the
 * lines through set_gsi, as the source had them. */
void qnic_machine_save_state(QnicMachine *m, GByteArray *out);
bool qnic_machine_load_state(QnicMachine *m, QnicStateReader *r, GError **errp);
/* Host pointer for a RAM range, NULL if not wholly RAM. */
void *qnic_machine_ram_ptr(QnicMachine *m, uint64_t gpa, uint64_t len);

#endif
