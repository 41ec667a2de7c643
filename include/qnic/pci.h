/*
 * Conventional PCI: configuration space with per-byte write masks, BARs
 * (I/O, 32/64-bit memory, prefetchable) mapped into the machine's address
 * spaces when the command register enables them, the expansion ROM BAR, the
 * capability list, INTx, MSI and MSI-X, and bus-master gating of DMA.
 *
 * A PCI device model embeds QnicPciDevice first in its instance, calls
 * qnic_pci_device_init() from realize (which claims a devfn from `addr=`,
 * fills the IDs and loads `romfile=`), then registers its BARs and
 * capabilities. Layouts mirror QEMU 7.2 so guest drivers see the same device.
 */
#ifndef QNIC_PCI_H
#define QNIC_PCI_H

#include "qnic/common.h"
#include "qnic/device.h"
#include "qnic/memory.h"
#include <linux/pci_regs.h>

#define QNIC_PCI_CONFIG_SIZE 256
#ifndef PCI_CONFIG_HEADER_SIZE
#define PCI_CONFIG_HEADER_SIZE 0x40
#endif
#define QNIC_PCI_NUM_BARS 6
#define QNIC_PCI_ROM_SLOT 6
#define QNIC_PCI_BAR_UNMAPPED (~0ull)

#define QNIC_PCI_DEVFN(slot, fn) ((((slot) & 0x1f) << 3) | ((fn) & 7))
#define QNIC_PCI_SLOT(devfn) (((devfn) >> 3) & 0x1f)
#define QNIC_PCI_FUNC(devfn) ((devfn) & 7)

/* BAR type flags: the low bits of the BAR register. */
#define QNIC_PCI_BAR_IO        PCI_BASE_ADDRESS_SPACE_IO                  /* 0x1 */
#define QNIC_PCI_BAR_MEM32     PCI_BASE_ADDRESS_MEM_TYPE_32               /* 0x0 */
#define QNIC_PCI_BAR_MEM64     PCI_BASE_ADDRESS_MEM_TYPE_64               /* 0x4 */
#define QNIC_PCI_BAR_PREFETCH  PCI_BASE_ADDRESS_MEM_PREFETCH              /* 0x8 */

typedef struct QnicPciDevice QnicPciDevice;
typedef struct QnicPciBus QnicPciBus;

typedef struct QnicPciBar {
    QnicRegion *region;   /* NULL = BAR not implemented */
    uint64_t size;        /* power of two */
    uint8_t type;         /* QNIC_PCI_BAR_* flags */
    uint64_t addr;        /* where mapped, or QNIC_PCI_BAR_UNMAPPED */
} QnicPciBar;

typedef struct QnicMsixVector {
    bool pending;
} QnicMsixVector;

struct QnicPciDevice {
    QnicDevice dev;
    QnicPciBus *bus;
    int devfn;
    uint8_t config[QNIC_PCI_CONFIG_SIZE];
    uint8_t wmask[QNIC_PCI_CONFIG_SIZE];     /* bits the guest may write */
    uint8_t w1cmask[QNIC_PCI_CONFIG_SIZE];   /* bits cleared by writing 1 */
    uint8_t used[QNIC_PCI_CONFIG_SIZE];      /* bytes claimed by capabilities */
    QnicPciBar bars[QNIC_PCI_NUM_BARS + 1];  /* [6] = expansion ROM */
    int intx_level;

    /* expansion ROM */
    QnicRegion rom_region;
    uint8_t *rom;
    uint64_t rom_size;

    /* MSI */
    uint8_t msi_cap;                         /* 0 = none */
    /* MSI-X */
    uint8_t msix_cap;                        /* 0 = none */
    unsigned msix_entries;
    uint8_t *msix_table;                     /* 16 bytes per entry */
    uint8_t *msix_pba;
    QnicRegion msix_table_region, msix_pba_region;
    int msix_table_bar, msix_pba_bar;
    uint32_t msix_table_off, msix_pba_off;
    /* Told when a vector becomes unmasked (so its pending message can be
     * re-sent by the core) or masked, or when the message of an unmasked
     * vector is rewritten; also called for every vector after a write to
     * the MSI-X control word. Devices that hand a vector's irqfd to another
     * process (vhost) re-route it here. */
    void (*msix_vector_changed)(QnicPciDevice *d, unsigned vector, bool masked);

    /* Optional hooks for device-specific config behaviour; they run after
     * the core applied the write masks (write) / before returning (read). */
    void (*config_write)(QnicPciDevice *d, uint32_t addr, uint32_t val, unsigned len);
    uint32_t (*config_read)(QnicPciDevice *d, uint32_t addr, unsigned len, uint32_t val);
};

#define QNIC_PCI_DEVICE(d) ((QnicPciDevice *)(d))

typedef struct QnicPciIds {
    uint16_t vendor_id, device_id;
    uint8_t revision;
    uint32_t class_code;          /* 24-bit: base<<16 | sub<<8 | prog-if */
    uint16_t subsystem_vendor_id, subsystem_id;
    uint8_t interrupt_pin;        /* 0 = none, 1 = INTA ... */
    bool multifunction;
} QnicPciIds;

/* Claim a devfn (from opts "addr", else the first free slot from 2 like
 * QEMU's pc machine with -nodefaults), fill the standard header and load
 * the ROM (opts "romfile"/"rombar"; default_rom is used when romfile is not
 * given, e.g. "efi-virtio.rom" looked up in /usr/share/qemu and
 * /usr/lib/ipxe/qemu; a missing default ROM is not an error). */
bool qnic_pci_device_init(QnicPciDevice *d, QnicOpts *opts, const QnicPciIds *ids,
                          const char *default_rom, GError **errp);
/* Unmaps BARs and frees what the core allocated; releases the devfn. */
void qnic_pci_device_exit(QnicPciDevice *d);
/* Reset the core state (command, BARs unmapped, MSI/MSI-X disabled, INTx low). */
void qnic_pci_device_reset(QnicPciDevice *d);

/* Register a BAR backed by region (size = region size, must be a power of
 * two; I/O BARs >= 4, memory BARs >= 16 bytes). 64-bit BARs use bar+1. */
void qnic_pci_register_bar(QnicPciDevice *d, int bar, uint8_t type, QnicRegion *region);
uint64_t qnic_pci_bar_addr(const QnicPciDevice *d, int bar);

/* Add a capability of `size` bytes with ID cap_id at offset (0 = first free
 * dword-aligned place after 0x40); links it at the head of the list as QEMU
 * does. Returns the offset or 0 on error (overlap). */
uint8_t qnic_pci_add_capability(QnicPciDevice *d, uint8_t cap_id, uint8_t offset,
                                uint8_t size, GError **errp);
uint8_t qnic_pci_find_capability(const QnicPciDevice *d, uint8_t cap_id);

/* Config accessors (the core's view, no masks). */
static inline void qnic_pci_set_byte(QnicPciDevice *d, unsigned off, uint8_t v) { d->config[off] = v; }
static inline void qnic_pci_set_word(QnicPciDevice *d, unsigned off, uint16_t v) { qnic_st16(&d->config[off], v); }
static inline void qnic_pci_set_long(QnicPciDevice *d, unsigned off, uint32_t v) { qnic_st32(&d->config[off], v); }
static inline uint8_t qnic_pci_get_byte(const QnicPciDevice *d, unsigned off) { return d->config[off]; }
static inline uint16_t qnic_pci_get_word(const QnicPciDevice *d, unsigned off) { return qnic_ld16(&d->config[off]); }
static inline uint32_t qnic_pci_get_long(const QnicPciDevice *d, unsigned off) { return qnic_ld32(&d->config[off]); }

/* Guest config cycles (through the host bridge or the virtio PCI cfg cap). */
uint32_t qnic_pci_config_read(QnicPciDevice *d, uint32_t addr, unsigned len);
void qnic_pci_config_write(QnicPciDevice *d, uint32_t addr, uint32_t val, unsigned len);

/* INTx: level of the device's pin (honours PCI_COMMAND_INTX_DISABLE and sets
 * PCI_STATUS_INTERRUPT). */
void qnic_pci_set_irq(QnicPciDevice *d, int level);

/* MSI (32/64-bit, optional per-vector masking), cap at offset (0 = auto). */
bool qnic_msi_init(QnicPciDevice *d, uint8_t offset, unsigned nr_vectors,
                   bool msi64, bool per_vector_mask, GError **errp);
bool qnic_msi_enabled(const QnicPciDevice *d);
void qnic_msi_notify(QnicPciDevice *d, unsigned vector);

/* MSI-X with the table and PBA in BARs the device registered, or, with
 * qnic_msix_init_exclusive_bar, in a BAR of their own (table at 0, PBA at
 * half the BAR, as QEMU lays it out). */
bool qnic_msix_init(QnicPciDevice *d, unsigned nentries,
                    QnicRegion *table_bar_region, int table_bar, uint32_t table_off,
                    QnicRegion *pba_bar_region, int pba_bar, uint32_t pba_off,
                    uint8_t cap_pos, GError **errp);
bool qnic_msix_init_exclusive_bar(QnicPciDevice *d, unsigned nentries, int bar,
                                  GError **errp);
/* For a BAR that holds the MSI-X table/PBA and other registers: the
 * device's handler offers each access here first (BAR offsets); true if it
 * was an MSI-X access and has been handled. */
bool qnic_msix_bar_read(QnicPciDevice *d, uint64_t addr, unsigned size, uint64_t *val);
bool qnic_msix_bar_write(QnicPciDevice *d, uint64_t addr, unsigned size, uint64_t val);
bool qnic_msix_enabled(const QnicPciDevice *d);
bool qnic_msix_is_masked(const QnicPciDevice *d, unsigned vector);
/* Send the vector's message, or set its pending bit while masked. */
void qnic_msix_notify(QnicPciDevice *d, unsigned vector);
void qnic_msix_clear_pending(QnicPciDevice *d, unsigned vector);
/* Address/data of a vector's table entry. */
void qnic_msix_message(const QnicPciDevice *d, unsigned vector, uint64_t *addr, uint32_t *data);

/* ---- device state (qnic/state.h) ----
 * Section "pci" (written by the model's save_state before its own
 * sections): all 256 bytes of config space as the guest programmed them
 * (BARs, command/status, interrupt line, capabilities with the MSI and
 * MSI-X control words), the INTx level the model drives, and per MSI-X
 * vector its table entry (address, data, vector control) and pending bit.
 * BAR mappings are not in the stream: apply re-derives them from the
 * loaded BAR and command registers.
 * qnic_pci_state_read decodes the next section and checks it against d:
 * every bit the guest cannot write (IDs, class, BAR type and size bits,
 * so an unaligned BAR, capability layout, MSI-X table size) must be d's
 * own, the BARs the loaded command register enables must not overlap, the
 * MSI-X vector count must be d's, MSI may not enable more vectors than it
 * has. NULL with an error naming the field otherwise; d is untouched.
 * qnic_pci_state_apply then installs it (remapping the BARs, setting bus
 * mastering and the INTx line, telling msix_vector_changed about every
 * vector); it cannot fail. Pending MSI-X vectors stay pending until
 * unmasked, as they were. */
typedef struct QnicPciState QnicPciState;
void qnic_pci_state_save(QnicPciDevice *d, GByteArray *out);
QnicPciState *qnic_pci_state_read(QnicPciDevice *d, QnicStateReader *r, GError **errp);
void qnic_pci_state_apply(QnicPciDevice *d, const QnicPciState *s);
void qnic_pci_state_free(QnicPciState *s);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QnicPciState, qnic_pci_state_free)
/* For a model whose state is "pci" and one section of its own (e1000,
 * rtl8139): save writes both. load reads and checks "pci", decodes the
 * model's section into snap (desc->size bytes), runs check on it, insists
 * the stream ends there, and only then applies the PCI state: true means
 * the caller applies snap now; false leaves the device as it was. */
typedef struct QnicStateDesc QnicStateDesc;
void qnic_pci_model_save_state(QnicPciDevice *d, GByteArray *out, const QnicStateDesc *desc,
                               const void *snap);
bool qnic_pci_model_load_state(QnicPciDevice *d, QnicStateReader *r, const QnicStateDesc *desc,
                               void *snap, bool (*check)(const void *snap, GError **errp),
                               GError **errp);

/* ---- the bus and host bridge ---- */
/* The level of an interrupt line the host drives changed: a PIRQ link's
 * IOAPIC pin (16..19), the ISA IRQ (0..15) a PIIX route register sends
 * it to, or the hotplug controller's SCI (ISA IRQ 9). */
typedef void QnicPciSetIrq(void *opaque, unsigned gsi, int level);

struct QnicPciBus {
    QnicMachine *machine;
    QnicPciSetIrq *set_irq;     /* NULL: lines go nowhere */
    void *irq_opaque;
    QnicPciDevice *devices[256];
    uint32_t config_address;     /* 0xcf8 latch */
    QnicRegion cf8_region, cfc_region;
};

/* The bus on m's address spaces; INTx leaves through set_irq. */
QnicPciBus *qnic_pci_bus_new(QnicMachine *m, QnicPciSetIrq *set_irq, void *irq_opaque);
void qnic_pci_bus_free(QnicPciBus *bus);
/* The bus's own state (qnic/state.h): its built-in functions' config
 * spaces (the PIIX3's interrupt routing among them) and the hotplug
 * registers. Load reads and checks everything before it applies any of
 * it; the machine's devices must already be in place. */
void qnic_pci_bus_save_state(QnicPciBus *bus, GByteArray *out);
bool qnic_pci_bus_load_state(QnicPciBus *bus, QnicStateReader *r, GError **errp);
/* INTx routing: pin (1..4) of a device at slot -> GSI 16 + ((slot + pin - 1) & 3),
 * i.e. IOAPIC pins 16..19, the fixed map qnic-vmm documents. */
unsigned qnic_pci_intx_gsi(int devfn, int pin);
QnicPciDevice *qnic_pci_find_devfn(QnicPciBus *bus, int devfn);
/* What firmware does on a real pc: write each function's PCI_INTERRUPT_LINE
 * with the GSI its pin reaches (qnic-vmm calls it; qtest leaves them 0 as
 * QEMU does without firmware). */
void qnic_pci_bus_fill_interrupt_lines(QnicPciBus *bus);
/* System reset of what the bus itself holds (the hotplug controller:
 * pending unplugs complete). qnic_machine_reset() calls it. */
void qnic_pci_bus_reset(QnicPciBus *bus);

/* ---- hotplug: QEMU's ACPI PCI hotplug interface of the pc machine ----
 * Registers (I/O space, as QEMU 7.2's PIIX4 PM with bridge support):
 * GPE0 at 0xafe0 (bytes: status 0-1, write 1 to clear; enable 2-3; status
 * bit 1 = PCI hotplug event; SCI = ISA IRQ 9 while status & enable), and
 * 0xae00: UP (slots plugged, cleared by reading), DOWN (slots asked to
 * go), EJ (write: eject the lowest slot set), RMV (removable slots), SEL
 * (bus; only 0 exists), AIDX. Every bus has one (qnic_pci_bus_hotplug). */
typedef struct QnicPciHotplug QnicPciHotplug;
/* A device the guest ejected, just before it is destroyed. */
typedef void QnicPciHotplugDeletedFunc(void *opaque, QnicDevice *dev);

QnicPciHotplug *qnic_pci_bus_hotplug(QnicPciBus *bus);
void qnic_pci_hotplug_set_deleted_handler(QnicPciHotplug *hp, QnicPciHotplugDeletedFunc *cb,
                                          void *opaque);
/* d was created on the running machine: tell the guest (UP, GPE). */
void qnic_pci_hotplug_plugged(QnicPciHotplug *hp, QnicPciDevice *d);
/* Ask the guest to let d go (DOWN, GPE); it goes when the guest ejects its
 * slot, or at the next system reset. Refused for built-in functions and
 * for a device already asked ("Device ID is already in the process of
 * unplug", QEMU's words). */
bool qnic_pci_hotplug_request_unplug(QnicPciHotplug *hp, QnicPciDevice *d, GError **errp);
bool qnic_pci_hotplug_unplug_pending(QnicPciHotplug *hp, QnicPciDevice *d);

#endif
