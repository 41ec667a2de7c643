/*
 * The device state of a PCI function (qnic/state.h): the section "pci"
 * that every PCI NIC writes before its own. It holds what the guest
 * programmed into the function (config space, the MSI-X table and pending
 * bits, the INTx level the model drives); the mappings of the BARs are not
 * saved but re-derived on load from the BAR registers and the command
 * register, so a stream can never map a region where the config space does
 * not say. Loading is read-and-check (qnic_pci_state_read) then apply, so a
 * device model can check its own section before anything changes.
 */
#include "qnic/pci.h"
#include "qnic/state.h"
#include "pci-internal.h"

#define PCI_STATE_VERSION 1
#define MSIX_MAX_ENTRIES 2048
#define MSIX_ENTRY_SIZE 16

typedef struct QnicPciMsixEntryState {
    uint64_t addr;
    uint32_t data;
    uint32_t ctrl;
    bool pending;
} QnicPciMsixEntryState;

struct QnicPciState {
    uint8_t config[QNIC_PCI_CONFIG_SIZE];
    uint8_t intx_level;           /* the level the model drives (0/1) */
    uint32_t msix_entries;        /* entries in use in msix[] */
    QnicPciMsixEntryState msix[MSIX_MAX_ENTRIES];
};

static const QnicStateField msix_entry_fields[] = {
    QNIC_STATE_UINT(QnicPciMsixEntryState, addr, 0),
    QNIC_STATE_UINT(QnicPciMsixEntryState, data, 0),
    QNIC_STATE_UINT(QnicPciMsixEntryState, ctrl, 0),
    QNIC_STATE_BOOL(QnicPciMsixEntryState, pending, 0),
    QNIC_STATE_END,
};

static const QnicStateDesc msix_entry_desc = {
    .name = "msix-entry", .version = 1, .min_version = 1,
    .size = sizeof(QnicPciMsixEntryState), .fields = msix_entry_fields,
};

static const QnicStateField pci_state_fields[] = {
    QNIC_STATE_BYTES(QnicPciState, config, 0),
    QNIC_STATE_UINT_RANGE(QnicPciState, intx_level, 0, 0, 1),
    QNIC_STATE_STRUCT_VARRAY(QnicPciState, msix, msix_entries, msix_entry_desc, 0),
    QNIC_STATE_END,
};

static const QnicStateDesc pci_state_desc = {
    .name = "pci", .version = PCI_STATE_VERSION, .min_version = 1,
    .size = sizeof(QnicPciState), .fields = pci_state_fields,
};

void qnic_pci_state_save(QnicPciDevice *d, GByteArray *out)
{
    g_autofree QnicPciState *s = g_new0(QnicPciState, 1);

    memcpy(s->config, d->config, sizeof(s->config));
    s->intx_level = d->intx_level & 1;
    s->msix_entries = d->msix_entries;
    for (unsigned v = 0; v < d->msix_entries; v++) {
        const uint8_t *e = d->msix_table + v * MSIX_ENTRY_SIZE;
        s->msix[v].addr = qnic_ld64(e);
        s->msix[v].data = qnic_ld32(e + 8);
        s->msix[v].ctrl = qnic_ld32(e + 12);
        s->msix[v].pending = d->msix_pba[v / 8] & (1u << (v % 8));
    }
    qnic_state_write(out, &pci_state_desc, s);
}

/* Read-only bits the function itself changes while it runs: they are
 * loaded, not compared. */
static void pci_dynamic_bits(const QnicPciDevice *d, uint8_t *dyn)
{
    memset(dyn, 0, QNIC_PCI_CONFIG_SIZE);
    dyn[PCI_STATUS] = PCI_STATUS_INTERRUPT;
    if (d->msi_cap) {
        uint16_t flags = qnic_pci_get_word(d, d->msi_cap + PCI_MSI_FLAGS);
        if (flags & PCI_MSI_FLAGS_MASKBIT) {
            unsigned pend = d->msi_cap + ((flags & PCI_MSI_FLAGS_64BIT) ? PCI_MSI_MASK_64
                                                                        : PCI_MSI_MASK_32) + 4;
            memset(dyn + pend, 0xff, 4);
        }
    }
}

static const char *pci_config_what(unsigned off)
{
    if (off >= PCI_BASE_ADDRESS_0 && off < PCI_BASE_ADDRESS_5 + 4) {
        return "a BAR (type bits or an address not aligned to its size)";
    }
    if (off >= PCI_ROM_ADDRESS && off < PCI_ROM_ADDRESS + 4) {
        return "the expansion ROM BAR";
    }
    if (off < PCI_CONFIG_HEADER_SIZE) {
        return "the header (IDs, class, reserved command/status bits)";
    }
    return "a capability";
}

/* Every bit the guest cannot write must be this device's own. */
static bool pci_check_readonly(const QnicPciDevice *d, const QnicPciState *s, GError **errp)
{
    uint8_t dyn[QNIC_PCI_CONFIG_SIZE];

    pci_dynamic_bits(d, dyn);
    for (unsigned i = 0; i < QNIC_PCI_CONFIG_SIZE; i++) {
        uint8_t ro = ~(d->wmask[i] | d->w1cmask[i] | dyn[i]);
        if ((s->config[i] ^ d->config[i]) & ro) {
            qnic_error_setg(errp, "pci: config byte 0x%02x is 0x%02x, this device's read-only "
                            "bits there are 0x%02x (mask 0x%02x): the stream changes %s",
                            i, s->config[i], d->config[i] & ro, ro, pci_config_what(i));
            return false;
        }
    }
    return true;
}

/* The BARs the loaded config enables must not overlap each other. */
static bool pci_check_bars(const QnicPciDevice *d, const QnicPciState *s, GError **errp)
{
    uint64_t addr[QNIC_PCI_NUM_BARS + 1];

    for (int i = 0; i <= QNIC_PCI_NUM_BARS; i++) {
        addr[i] = d->bars[i].region ? qnic_pci_bar_decode(d, s->config, i)
                                    : QNIC_PCI_BAR_UNMAPPED;
    }
    for (int i = 0; i <= QNIC_PCI_NUM_BARS; i++) {
        for (int j = i + 1; j <= QNIC_PCI_NUM_BARS && addr[i] != QNIC_PCI_BAR_UNMAPPED; j++) {
            bool io_i = d->bars[i].type & QNIC_PCI_BAR_IO, io_j = d->bars[j].type & QNIC_PCI_BAR_IO;
            if (addr[j] == QNIC_PCI_BAR_UNMAPPED || io_i != io_j) {
                continue;
            }
            if (addr[i] < addr[j] + d->bars[j].size && addr[j] < addr[i] + d->bars[i].size) {
                qnic_error_setg(errp, "pci: BAR %d at 0x%" PRIx64 " (0x%" PRIx64 " bytes) "
                                "overlaps BAR %d at 0x%" PRIx64 " (0x%" PRIx64 " bytes)",
                                i, addr[i], d->bars[i].size, j, addr[j], d->bars[j].size);
                return false;
            }
        }
    }
    return true;
}

static bool pci_check_msi(const QnicPciDevice *d, const QnicPciState *s, GError **errp)
{
    if (s->msix_entries != d->msix_entries) {
        qnic_error_setg(errp, "pci: the stream has %u MSI-X vectors, this device has %u",
                        s->msix_entries, d->msix_entries);
        return false;
    }
    if (d->msi_cap) {
        uint16_t flags = qnic_ld16(&s->config[d->msi_cap + PCI_MSI_FLAGS]);
        if (((flags & PCI_MSI_FLAGS_QSIZE) >> 4) > ((flags & PCI_MSI_FLAGS_QMASK) >> 1)) {
            qnic_error_setg(errp, "pci: MSI enables more vectors than the function has "
                            "(flags 0x%04x)", flags);
            return false;
        }
    }
    return true;
}

QnicPciState *qnic_pci_state_read(QnicPciDevice *d, QnicStateReader *r, GError **errp)
{
    QnicPciState *s = g_new0(QnicPciState, 1);

    if (!qnic_state_read(r, &pci_state_desc, s, errp) ||
        !pci_check_msi(d, s, errp) ||
        !pci_check_readonly(d, s, errp) ||
        !pci_check_bars(d, s, errp)) {
        g_free(s);
        return NULL;
    }
    return s;
}

void qnic_pci_state_apply(QnicPciDevice *d, const QnicPciState *s)
{
    memcpy(d->config, s->config, sizeof(d->config));
    qnic_pci_update_mappings(d);
    d->dev.dma_enabled = (qnic_pci_get_word(d, PCI_COMMAND) & PCI_COMMAND_MASTER) != 0;
    for (unsigned v = 0; v < d->msix_entries; v++) {
        uint8_t *e = d->msix_table + v * MSIX_ENTRY_SIZE;
        qnic_st64(e, s->msix[v].addr);
        qnic_st32(e + 8, s->msix[v].data);
        qnic_st32(e + 12, s->msix[v].ctrl);
        if (s->msix[v].pending) {
            d->msix_pba[v / 8] |= 1u << (v % 8);
        } else {
            d->msix_pba[v / 8] &= ~(1u << (v % 8));
        }
    }
    /* Sets the status bit and moves the line through the bus's counts,
     * with the loaded command register's INTx disable. */
    qnic_pci_set_irq(d, s->intx_level);
    for (unsigned v = 0; v < d->msix_entries && d->msix_vector_changed; v++) {
        d->msix_vector_changed(d, v, qnic_msix_is_masked(d, v));
    }
}

void qnic_pci_state_free(QnicPciState *s)
{
    g_free(s);
}

void qnic_pci_model_save_state(QnicPciDevice *d, GByteArray *out, const QnicStateDesc *desc,
                               const void *snap)
{
    qnic_pci_state_save(d, out);
    qnic_state_write(out, desc, snap);
}

bool qnic_pci_model_load_state(QnicPciDevice *d, QnicStateReader *r, const QnicStateDesc *desc,
                               void *snap, bool (*check)(const void *snap, GError **errp),
                               GError **errp)
{
    g_autoptr(QnicPciState) ps = qnic_pci_state_read(d, r, errp);

    if (!ps || !qnic_state_read(r, desc, snap, errp) || (check && !check(snap, errp)) ||
        !qnic_state_reader_done(r, errp)) {
        return false;
    }
    qnic_pci_state_apply(d, ps);
    return true;
}
