/*
 * MSI and MSI-X. A message is a DMA write of the data to the address, made
 * through the device's bus-master view, exactly as QEMU sends it; whoever is
 * mapped at the address (the machine's 0xfee00000 window, or RAM in qtest
 * tests that point vectors at memory) decides what it means. Masked vectors
 * collect pending bits and fire when unmasked.
 */
#include "qnic/pci.h"
#include "qnic/log.h"
#include "pci-internal.h"

#define MSIX_ENTRY_SIZE 16
#define MSIX_CTRL_OFF 12

/* ---- MSI ---- */

static uint16_t msi_flags(const QnicPciDevice *d)
{
    return qnic_pci_get_word(d, d->msi_cap + PCI_MSI_FLAGS);
}

static unsigned msi_data_off(const QnicPciDevice *d)
{
    return d->msi_cap + ((msi_flags(d) & PCI_MSI_FLAGS_64BIT) ? PCI_MSI_DATA_64 : PCI_MSI_DATA_32);
}

static unsigned msi_mask_off(const QnicPciDevice *d)
{
    return d->msi_cap + ((msi_flags(d) & PCI_MSI_FLAGS_64BIT) ? PCI_MSI_MASK_64 : PCI_MSI_MASK_32);
}

bool qnic_msi_init(QnicPciDevice *d, uint8_t offset, unsigned nr_vectors,
                   bool msi64, bool per_vector_mask, GError **errp)
{
    unsigned mmc = 0, size;
    uint8_t pos;
    uint16_t flags;

    if (nr_vectors == 0 || nr_vectors > 32 || !QNIC_IS_POW2(nr_vectors)) {
        qnic_error_setg(errp, "MSI: bad vector count %u", nr_vectors);
        return false;
    }
    while ((1u << mmc) < nr_vectors) {
        mmc++;
    }
    size = 10 + (msi64 ? 4 : 0) + (per_vector_mask ? 10 : 0);
    pos = qnic_pci_add_capability(d, PCI_CAP_ID_MSI, offset, size, errp);
    if (!pos) {
        return false;
    }
    d->msi_cap = pos;
    flags = mmc << 1;
    if (msi64) {
        flags |= PCI_MSI_FLAGS_64BIT;
    }
    if (per_vector_mask) {
        flags |= PCI_MSI_FLAGS_MASKBIT;
    }
    qnic_pci_set_word(d, pos + PCI_MSI_FLAGS, flags);
    qnic_st16(&d->wmask[pos + PCI_MSI_FLAGS], PCI_MSI_FLAGS_QSIZE | PCI_MSI_FLAGS_ENABLE);
    qnic_st32(&d->wmask[pos + PCI_MSI_ADDRESS_LO], 0xfffffffc);
    if (msi64) {
        qnic_st32(&d->wmask[pos + PCI_MSI_ADDRESS_HI], 0xffffffff);
    }
    qnic_st16(&d->wmask[msi_data_off(d)], 0xffff);
    if (per_vector_mask) {
        qnic_st32(&d->wmask[msi_mask_off(d)], 0xffffffffu >> (32 - nr_vectors));
    }
    return true;
}

bool qnic_msi_enabled(const QnicPciDevice *d)
{
    return d->msi_cap && (msi_flags(d) & PCI_MSI_FLAGS_ENABLE);
}

static void msi_send(QnicPciDevice *d, uint64_t addr, uint32_t data)
{
    uint8_t b[4];

    qnic_st32(b, data);
    /* The device's own bus-master DMA carries it: off bus mastering, no MSI. */
    qnic_dma_write(&d->dev, addr, b, 4);
}

void qnic_msi_notify(QnicPciDevice *d, unsigned vector)
{
    uint16_t flags;
    unsigned nr;
    uint64_t addr;
    uint16_t data;

    if (!qnic_msi_enabled(d)) {
        return;
    }
    flags = msi_flags(d);
    nr = 1u << ((flags & PCI_MSI_FLAGS_QSIZE) >> 4);
    if (vector >= nr) {
        return;
    }
    if (flags & PCI_MSI_FLAGS_MASKBIT) {
        uint32_t mask = qnic_pci_get_long(d, msi_mask_off(d));
        if (mask & (1u << vector)) {
            uint32_t pend = qnic_pci_get_long(d, msi_mask_off(d) + 4);
            qnic_pci_set_long(d, msi_mask_off(d) + 4, pend | (1u << vector));
            return;
        }
    }
    addr = qnic_pci_get_long(d, d->msi_cap + PCI_MSI_ADDRESS_LO);
    if (flags & PCI_MSI_FLAGS_64BIT) {
        addr |= (uint64_t)qnic_pci_get_long(d, d->msi_cap + PCI_MSI_ADDRESS_HI) << 32;
    }
    data = qnic_pci_get_word(d, msi_data_off(d));
    data = (data & ~(nr - 1)) | vector;
    msi_send(d, addr, data);
}

void qnic_msi_config_write(QnicPciDevice *d, uint32_t addr, unsigned len)
{
    uint16_t flags;

    if (!d->msi_cap || addr >= d->msi_cap + 24u || addr + len <= d->msi_cap) {
        return;
    }
    flags = msi_flags(d);
    /* MME may not exceed MMC. */
    if (((flags & PCI_MSI_FLAGS_QSIZE) >> 4) > ((flags & PCI_MSI_FLAGS_QMASK) >> 1)) {
        flags = (flags & ~PCI_MSI_FLAGS_QSIZE) | ((flags & PCI_MSI_FLAGS_QMASK) << 3);
        qnic_pci_set_word(d, d->msi_cap + PCI_MSI_FLAGS, flags);
    }
    if ((flags & PCI_MSI_FLAGS_ENABLE) && (flags & PCI_MSI_FLAGS_MASKBIT)) {
        uint32_t mask = qnic_pci_get_long(d, msi_mask_off(d));
        uint32_t pend = qnic_pci_get_long(d, msi_mask_off(d) + 4);
        for (unsigned v = 0; v < 32; v++) {
            if ((pend & (1u << v)) && !(mask & (1u << v))) {
                pend &= ~(1u << v);
                qnic_pci_set_long(d, msi_mask_off(d) + 4, pend);
                qnic_msi_notify(d, v);
            }
        }
    }
}

void qnic_msi_reset(QnicPciDevice *d)
{
    if (!d->msi_cap) {
        return;
    }
    uint16_t flags = msi_flags(d) & ~(PCI_MSI_FLAGS_ENABLE | PCI_MSI_FLAGS_QSIZE);
    qnic_pci_set_word(d, d->msi_cap + PCI_MSI_FLAGS, flags);
    qnic_pci_set_long(d, d->msi_cap + PCI_MSI_ADDRESS_LO, 0);
    if (flags & PCI_MSI_FLAGS_64BIT) {
        qnic_pci_set_long(d, d->msi_cap + PCI_MSI_ADDRESS_HI, 0);
    }
    qnic_pci_set_word(d, msi_data_off(d), 0);
    if (flags & PCI_MSI_FLAGS_MASKBIT) {
        qnic_pci_set_long(d, msi_mask_off(d), 0);
        qnic_pci_set_long(d, msi_mask_off(d) + 4, 0);
    }
}

/* ---- MSI-X ---- */

static uint16_t msix_ctrl(const QnicPciDevice *d)
{
    return qnic_pci_get_word(d, d->msix_cap + PCI_MSIX_FLAGS);
}

bool qnic_msix_enabled(const QnicPciDevice *d)
{
    return d->msix_cap && (msix_ctrl(d) & PCI_MSIX_FLAGS_ENABLE);
}

static bool msix_function_masked(const QnicPciDevice *d)
{
    return (msix_ctrl(d) & (PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL)) !=
           PCI_MSIX_FLAGS_ENABLE;
}

static bool msix_vector_masked(const QnicPciDevice *d, unsigned v)
{
    return qnic_ld32(d->msix_table + v * MSIX_ENTRY_SIZE + MSIX_CTRL_OFF) &
           PCI_MSIX_ENTRY_CTRL_MASKBIT;
}

bool qnic_msix_is_masked(const QnicPciDevice *d, unsigned vector)
{
    return vector >= d->msix_entries || msix_function_masked(d) || msix_vector_masked(d, vector);
}

static bool pba_test(const QnicPciDevice *d, unsigned v)
{
    return d->msix_pba[v / 8] & (1u << (v % 8));
}

static void pba_set(QnicPciDevice *d, unsigned v, bool on)
{
    if (on) {
        d->msix_pba[v / 8] |= 1u << (v % 8);
    } else {
        d->msix_pba[v / 8] &= ~(1u << (v % 8));
    }
}

void qnic_msix_message(const QnicPciDevice *d, unsigned vector, uint64_t *addr, uint32_t *data)
{
    const uint8_t *e = d->msix_table + vector * MSIX_ENTRY_SIZE;
    *addr = qnic_ld64(e);
    *data = qnic_ld32(e + 8);
}

void qnic_msix_notify(QnicPciDevice *d, unsigned vector)
{
    uint64_t addr;
    uint32_t data;

    if (vector >= d->msix_entries || !qnic_msix_enabled(d)) {
        return;
    }
    if (qnic_msix_is_masked(d, vector)) {
        pba_set(d, vector, true);
        return;
    }
    qnic_msix_message(d, vector, &addr, &data);
    msi_send(d, addr, data);
}

void qnic_msix_clear_pending(QnicPciDevice *d, unsigned vector)
{
    if (vector < d->msix_entries) {
        pba_set(d, vector, false);
    }
}

/* A vector's effective mask changed: deliver what was pending. */
static void msix_handle_mask_update(QnicPciDevice *d, unsigned v, bool was_masked)
{
    bool masked = qnic_msix_is_masked(d, v);

    if (masked == was_masked) {
        return;
    }
    if (d->msix_vector_changed) {
        d->msix_vector_changed(d, v, masked);
    }
    if (!masked && pba_test(d, v)) {
        pba_set(d, v, false);
        qnic_msix_notify(d, v);
    }
}

static uint64_t msix_table_read(void *opaque, uint64_t addr, unsigned size)
{
    QnicPciDevice *d = opaque;
    uint64_t off = addr - d->msix_table_off;

    if (off + size > (uint64_t)d->msix_entries * MSIX_ENTRY_SIZE) {
        return 0;
    }
    return size == 8 ? qnic_ld64(d->msix_table + off) : qnic_ld32(d->msix_table + off);
}

static void msix_table_write(void *opaque, uint64_t addr, uint64_t val, unsigned size)
{
    QnicPciDevice *d = opaque;
    uint64_t off = addr - d->msix_table_off;
    unsigned v = off / MSIX_ENTRY_SIZE;
    uint8_t old[MSIX_CTRL_OFF];
    bool was_masked;

    if (off + size > (uint64_t)d->msix_entries * MSIX_ENTRY_SIZE) {
        return;
    }
    was_masked = qnic_msix_is_masked(d, v);
    memcpy(old, d->msix_table + v * MSIX_ENTRY_SIZE, MSIX_CTRL_OFF);
    if (size == 8) {
        qnic_st64(d->msix_table + off, val);
    } else {
        qnic_st32(d->msix_table + off, (uint32_t)val);
    }
    /* A message rewritten while live: whoever routed the old one (an irqfd
     * handed to another process) must route the new one. */
    if (!was_masked && !qnic_msix_is_masked(d, v) && d->msix_vector_changed &&
        memcmp(old, d->msix_table + v * MSIX_ENTRY_SIZE, MSIX_CTRL_OFF) != 0) {
        d->msix_vector_changed(d, v, false);
    }
    msix_handle_mask_update(d, v, was_masked);
}

static uint64_t msix_pba_read(void *opaque, uint64_t addr, unsigned size)
{
    QnicPciDevice *d = opaque;
    uint64_t off = addr - d->msix_pba_off;
    unsigned pba_bytes = QNIC_ALIGN_UP(d->msix_entries, 64u) / 8;
    uint8_t b[8] = { 0 };

    for (unsigned i = 0; i < size && i < sizeof(b); i++) {    /* size <= 8 */
        if (off + i < pba_bytes) {
            b[i] = d->msix_pba[off + i];
        }
    }
    return qnic_ld64(b);
}


/* Accesses to a BAR holding the table and/or PBA, at BAR offsets. Devices
 * whose BAR also holds other registers call these for the MSI-X ranges. */
bool qnic_msix_bar_read(QnicPciDevice *d, uint64_t addr, unsigned size, uint64_t *val)
{
    if (addr >= d->msix_pba_off && addr < d->msix_pba_off + QNIC_ALIGN_UP(d->msix_entries, 64u) / 8) {
        *val = msix_pba_read(d, addr, size);
        return true;
    }
    if (addr >= d->msix_table_off &&
        addr < d->msix_table_off + (uint64_t)d->msix_entries * MSIX_ENTRY_SIZE) {
        *val = msix_table_read(d, addr, size);
        return true;
    }
    return false;
}

bool qnic_msix_bar_write(QnicPciDevice *d, uint64_t addr, unsigned size, uint64_t val)
{
    if (addr >= d->msix_pba_off && addr < d->msix_pba_off + QNIC_ALIGN_UP(d->msix_entries, 64u) / 8) {
        return true;   /* the PBA is read-only */
    }
    if (addr >= d->msix_table_off &&
        addr < d->msix_table_off + (uint64_t)d->msix_entries * MSIX_ENTRY_SIZE) {
        msix_table_write(d, addr, val, size);
        return true;
    }
    return false;
}

static uint64_t msix_bar_read(void *opaque, uint64_t addr, unsigned size)
{
    uint64_t v = 0;
    qnic_msix_bar_read(opaque, addr, size, &v);
    return v;
}

static void msix_bar_write(void *opaque, uint64_t addr, uint64_t val, unsigned size)
{
    qnic_msix_bar_write(opaque, addr, size, val);
}

static const QnicMemOps msix_bar_ops = {
    .read = msix_bar_read, .write = msix_bar_write,
    .valid_min = 4, .valid_max = 8, .impl_min = 4, .impl_max = 8,
};

static void msix_reset_table(QnicPciDevice *d)
{
    memset(d->msix_table, 0, (size_t)d->msix_entries * MSIX_ENTRY_SIZE);
    for (unsigned v = 0; v < d->msix_entries; v++) {
        qnic_st32(d->msix_table + v * MSIX_ENTRY_SIZE + MSIX_CTRL_OFF,
                  PCI_MSIX_ENTRY_CTRL_MASKBIT);
    }
    memset(d->msix_pba, 0, QNIC_ALIGN_UP(d->msix_entries, 64u) / 8);
}

bool qnic_msix_init(QnicPciDevice *d, unsigned nentries,
                    QnicRegion *table_bar_region, int table_bar, uint32_t table_off,
                    QnicRegion *pba_bar_region, int pba_bar, uint32_t pba_off,
                    uint8_t cap_pos, GError **errp)
{
    uint8_t pos;

    if (nentries == 0 || nentries > 2048) {
        qnic_error_setg_invalid(errp, "MSI-X: %u vectors is out of range (1..2048)", nentries);
        return false;
    }
    if ((table_off & 7) || (pba_off & 7) ||
        (uint64_t)table_off + nentries * MSIX_ENTRY_SIZE > table_bar_region->size ||
        (uint64_t)pba_off + QNIC_ALIGN_UP(nentries, 64u) / 8 > pba_bar_region->size) {
        qnic_error_setg(errp, "MSI-X: table or PBA does not fit its BAR");
        return false;
    }
    pos = qnic_pci_add_capability(d, PCI_CAP_ID_MSIX, cap_pos, 12, errp);
    if (!pos) {
        return false;
    }
    d->msix_cap = pos;
    d->msix_entries = nentries;
    d->msix_table = g_malloc0((size_t)nentries * MSIX_ENTRY_SIZE);
    d->msix_pba = g_malloc0(QNIC_ALIGN_UP(nentries, 64u) / 8);
    d->msix_table_bar = table_bar;
    d->msix_pba_bar = pba_bar;
    d->msix_table_off = table_off;
    d->msix_pba_off = pba_off;
    msix_reset_table(d);
    qnic_pci_set_word(d, pos + PCI_MSIX_FLAGS, nentries - 1);
    qnic_pci_set_long(d, pos + PCI_MSIX_TABLE, table_off | table_bar);
    qnic_pci_set_long(d, pos + PCI_MSIX_PBA, pba_off | pba_bar);
    d->wmask[pos + PCI_MSIX_FLAGS + 1] = (PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL) >> 8;
    return true;
}

bool qnic_msix_init_exclusive_bar(QnicPciDevice *d, unsigned nentries, int bar, GError **errp)
{
    uint64_t table_size = (uint64_t)nentries * MSIX_ENTRY_SIZE;
    uint64_t bar_size = 4096;
    uint32_t pba_off;

    /* QEMU: the PBA starts halfway through a BAR of at least 4 KiB. */
    while (bar_size / 2 < table_size) {
        bar_size *= 2;
    }
    pba_off = bar_size / 2;
    qnic_region_init_io(&d->msix_table_region, &d->dev, &msix_bar_ops, d, "msix", bar_size);
    if (!qnic_msix_init(d, nentries, &d->msix_table_region, bar, 0,
                        &d->msix_table_region, bar, pba_off, 0, errp)) {
        return false;
    }
    qnic_pci_register_bar(d, bar, QNIC_PCI_BAR_MEM32, &d->msix_table_region);
    return true;
}

void qnic_msix_config_write(QnicPciDevice *d, uint32_t addr, unsigned len)
{
    static __thread bool in_update;

    if (!d->msix_cap || addr > d->msix_cap + PCI_MSIX_FLAGS + 1u ||
        addr + len <= d->msix_cap + PCI_MSIX_FLAGS) {
        return;
    }
    if (in_update) {
        return;
    }
    /* We cannot know the old mask state per vector after the write, so
     * replay pending vectors that are now deliverable. */
    in_update = true;
    for (unsigned v = 0; v < d->msix_entries; v++) {
        if (d->msix_vector_changed) {
            d->msix_vector_changed(d, v, qnic_msix_is_masked(d, v));
        }
        if (pba_test(d, v) && !qnic_msix_is_masked(d, v)) {
            pba_set(d, v, false);
            qnic_msix_notify(d, v);
        }
    }
    in_update = false;
}

void qnic_msix_reset(QnicPciDevice *d)
{
    if (!d->msix_cap) {
        return;
    }
    qnic_pci_set_word(d, d->msix_cap + PCI_MSIX_FLAGS,
                      msix_ctrl(d) & ~(PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL));
    msix_reset_table(d);
}

void qnic_msix_exit(QnicPciDevice *d)
{
    g_free(d->msix_table);
    g_free(d->msix_pba);
    d->msix_table = d->msix_pba = NULL;
    d->msix_cap = 0;
    d->msix_entries = 0;
}
