/*
 * The PCI device core: config space with write / write-1-to-clear masks, the
 * capability list, BARs and the expansion ROM BAR mapped into the machine's
 * address spaces whenever command or BAR registers change, INTx, and the
 * bus-master gate on DMA. MSI and MSI-X live in msix.c, the bus and host
 * bridge in host.c.
 */
#include "qnic/pci.h"
#include "qnic/machine.h"
#include "qnic/opts.h"
#include "qnic/log.h"
#include "pci-internal.h"
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

static void pci_init_masks(QnicPciDevice *d)
{
    memset(d->wmask, 0, sizeof(d->wmask));
    memset(d->w1cmask, 0, sizeof(d->w1cmask));
    qnic_st16(&d->wmask[PCI_COMMAND], PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER |
              PCI_COMMAND_PARITY | PCI_COMMAND_SERR | PCI_COMMAND_INTX_DISABLE);
    d->wmask[PCI_CACHE_LINE_SIZE] = 0xff;
    d->wmask[PCI_LATENCY_TIMER] = 0xff;
    d->wmask[PCI_INTERRUPT_LINE] = 0xff;
    qnic_st16(&d->w1cmask[PCI_STATUS], PCI_STATUS_PARITY | PCI_STATUS_SIG_TARGET_ABORT |
              PCI_STATUS_REC_TARGET_ABORT | PCI_STATUS_REC_MASTER_ABORT |
              PCI_STATUS_SIG_SYSTEM_ERROR | PCI_STATUS_DETECTED_PARITY);
    /* Device-specific space after the header is writable unless a
     * capability claims it (as QEMU leaves it). */
    memset(d->wmask + PCI_CONFIG_HEADER_SIZE, 0xff,
           QNIC_PCI_CONFIG_SIZE - PCI_CONFIG_HEADER_SIZE);
}

/* ---- ROM ---- */

static uint64_t rom_read(void *opaque, uint64_t addr, unsigned size)
{
    QnicPciDevice *d = opaque;
    uint8_t b[8] = { 0 };

    /* dispatch never asks for more than impl_max (8); the bound says so
     * to the compiler too */
    for (unsigned i = 0; i < size && i < sizeof(b); i++) {
        if (addr + i < d->rom_size) {
            b[i] = d->rom[addr + i];
        }
    }
    return qnic_ld64(b);
}

static void rom_write(void *opaque, uint64_t addr, uint64_t val, unsigned size)
{
    qnic_guest_error("pci: write to read-only expansion ROM at 0x%" PRIx64 "\n", addr);
}

static const QnicMemOps rom_ops = {
    .read = rom_read, .write = rom_write,
    .valid_min = 1, .valid_max = 8, .valid_unaligned = true,
    .impl_min = 1, .impl_max = 8,
};

static char *find_rom(const char *name)
{
    static const char *const dirs[] = {
        "/usr/share/qemu", "/usr/lib/ipxe/qemu", "/usr/share/ipxe/qemu", NULL,
    };
    const char *env = g_getenv("QNIC_ROM_PATH");

    if (strchr(name, '/')) {
        return g_file_test(name, G_FILE_TEST_IS_REGULAR) ? g_strdup(name) : NULL;
    }
    if (env) {
        char *p = g_build_filename(env, name, NULL);
        if (g_file_test(p, G_FILE_TEST_IS_REGULAR)) {
            return p;
        }
        g_free(p);
    }
    for (int i = 0; dirs[i]; i++) {
        char *p = g_build_filename(dirs[i], name, NULL);
        if (g_file_test(p, G_FILE_TEST_IS_REGULAR)) {
            return p;
        }
        g_free(p);
    }
    return NULL;
}

/* Default ROMs describe one PCI ID; make the image match this device, as
 * firmware only runs a ROM whose PCIR IDs match. Keep the legacy image's
 * checksum by compensating in the spare byte at offset 6. */
static void rom_patch_ids(QnicPciDevice *d)
{
    uint8_t *p = d->rom;
    uint16_t vid = qnic_pci_get_word(d, PCI_VENDOR_ID), did = qnic_pci_get_word(d, PCI_DEVICE_ID);

    if (d->rom_size < 0x1a || p[0] != 0x55 || p[1] != 0xaa) {
        return;
    }
    uint16_t pcir = qnic_ld16(p + 0x18);
    if ((uint64_t)pcir + 8 > d->rom_size || memcmp(p + pcir, "PCIR", 4) != 0) {
        return;
    }
    int delta = 0;
    for (int i = 0; i < 2; i++) {
        uint16_t want = i == 0 ? vid : did;
        uint8_t *f = p + pcir + 4 + 2 * i;
        delta += (f[0] + f[1]) - ((want & 0xff) + (want >> 8));
        qnic_st16(f, want);
    }
    p[6] = (uint8_t)(p[6] + delta);
}

static bool pci_load_rom(QnicPciDevice *d, QnicOpts *opts, const char *default_rom,
                         GError **errp)
{
    const char *romfile = opts ? qnic_opts_get(opts, "romfile") : NULL;
    bool rombar = opts ? qnic_opts_get_bool(opts, "rombar", true) : true;
    bool is_default = false;
    g_autofree char *path = NULL;
    gchar *data = NULL;
    gsize len = 0;

    if (opts && qnic_opts_is_set(opts, "rombar")) {
        /* rombar=N: QEMU takes a number; 0 hides the BAR. */
        rombar = qnic_opts_get_uint(opts, "rombar", 1) != 0;
    }
    if (!romfile || !qnic_opts_is_set(opts, "romfile")) {
        romfile = default_rom;
        is_default = true;
    }
    if (!romfile || !*romfile || !rombar) {
        return true;
    }
    path = find_rom(romfile);
    if (!path) {
        if (is_default) {
            return true;   /* like a QEMU built without that ROM */
        }
        qnic_error_setg_invalid(errp, "failed to find romfile \"%s\"", romfile);
        return false;
    }
    if (!g_file_get_contents(path, &data, &len, NULL) || len == 0) {
        qnic_error_setg(errp, "failed to load romfile \"%s\"", path);
        g_free(data);
        return false;
    }
    d->rom_size = qnic_pow2ceil(len);
    d->rom = g_malloc0(d->rom_size);
    memcpy(d->rom, data, len);
    g_free(data);
    if (is_default) {
        rom_patch_ids(d);
    }
    qnic_region_init_io(&d->rom_region, &d->dev, &rom_ops, d, "pci-rom", d->rom_size);
    d->bars[QNIC_PCI_ROM_SLOT].region = &d->rom_region;
    d->bars[QNIC_PCI_ROM_SLOT].size = d->rom_size;
    d->bars[QNIC_PCI_ROM_SLOT].type = 0;
    d->bars[QNIC_PCI_ROM_SLOT].addr = QNIC_PCI_BAR_UNMAPPED;
    qnic_st32(&d->wmask[PCI_ROM_ADDRESS], ~(uint32_t)(d->rom_size - 1) | PCI_ROM_ADDRESS_ENABLE);
    return true;
}

/* ---- init / exit ---- */

bool qnic_pci_device_init(QnicPciDevice *d, QnicOpts *opts, const QnicPciIds *ids,
                          const char *default_rom, GError **errp)
{
    QnicPciBus *bus = d->dev.machine->pci;
    bool multifunction = ids->multifunction ||
                         (opts && qnic_opts_get_bool(opts, "multifunction", false));
    int devfn;

    if (opts && qnic_opts_is_set(opts, "bus")) {
        const char *b = qnic_opts_get(opts, "bus");
        if (!g_str_equal(b, "pci.0")) {
            qnic_error_setg_invalid(errp, "Bus '%s' not found", b);
            return false;
        }
    }
    devfn = qnic_pci_bus_claim(bus, d, opts ? qnic_opts_get(opts, "addr") : NULL, errp);
    if (devfn < 0) {
        return false;
    }
    d->bus = bus;
    d->devfn = devfn;
    for (int i = 0; i <= QNIC_PCI_NUM_BARS; i++) {
        d->bars[i].addr = QNIC_PCI_BAR_UNMAPPED;
    }
    memset(d->config, 0, sizeof(d->config));
    memset(d->used, 0, sizeof(d->used));
    memset(d->used, 0xff, PCI_CONFIG_HEADER_SIZE);
    pci_init_masks(d);
    qnic_pci_set_word(d, PCI_VENDOR_ID, ids->vendor_id);
    qnic_pci_set_word(d, PCI_DEVICE_ID, ids->device_id);
    qnic_pci_set_byte(d, PCI_REVISION_ID, ids->revision);
    qnic_pci_set_byte(d, PCI_CLASS_PROG, ids->class_code & 0xff);
    qnic_pci_set_word(d, PCI_CLASS_DEVICE, ids->class_code >> 8);
    qnic_pci_set_byte(d, PCI_HEADER_TYPE, multifunction ? 0x80 : 0);
    qnic_pci_set_word(d, PCI_SUBSYSTEM_VENDOR_ID, ids->subsystem_vendor_id);
    qnic_pci_set_word(d, PCI_SUBSYSTEM_ID, ids->subsystem_id);
    qnic_pci_set_byte(d, PCI_INTERRUPT_PIN, ids->interrupt_pin);
    d->dev.dma_enabled = false;
    if (!pci_load_rom(d, opts, default_rom, errp)) {
        qnic_pci_bus_release(bus, devfn);
        d->bus = NULL;
        return false;
    }
    return true;
}

static void pci_unmap_bars(QnicPciDevice *d)
{
    for (int i = 0; i <= QNIC_PCI_NUM_BARS; i++) {
        if (d->bars[i].region) {
            qnic_as_unmap(d->bars[i].region);
        }
        d->bars[i].addr = QNIC_PCI_BAR_UNMAPPED;
    }
}

void qnic_pci_device_exit(QnicPciDevice *d)
{
    if (!d->bus) {
        return;
    }
    qnic_pci_set_irq(d, 0);
    pci_unmap_bars(d);
    qnic_msix_exit(d);
    g_free(d->rom);
    d->rom = NULL;
    qnic_pci_bus_release(d->bus, d->devfn);
    d->bus = NULL;
}

void qnic_pci_device_reset(QnicPciDevice *d)
{
    uint16_t cmd = qnic_pci_get_word(d, PCI_COMMAND);

    qnic_pci_set_irq(d, 0);
    qnic_pci_set_word(d, PCI_COMMAND, cmd & ~qnic_ld16(&d->wmask[PCI_COMMAND]));
    qnic_pci_set_word(d, PCI_STATUS, qnic_pci_get_word(d, PCI_STATUS) &
                      ~qnic_ld16(&d->w1cmask[PCI_STATUS]));
    d->config[PCI_CACHE_LINE_SIZE] = 0;
    d->config[PCI_INTERRUPT_LINE] = 0;
    for (int i = 0; i <= QNIC_PCI_NUM_BARS; i++) {
        unsigned off = i == QNIC_PCI_ROM_SLOT ? PCI_ROM_ADDRESS : PCI_BASE_ADDRESS_0 + 4 * i;
        if (!d->bars[i].region) {
            continue;
        }
        qnic_pci_set_long(d, off, d->bars[i].type);
        if (d->bars[i].type & QNIC_PCI_BAR_MEM64) {
            qnic_pci_set_long(d, off + 4, 0);
        }
    }
    pci_unmap_bars(d);
    d->dev.dma_enabled = false;
    qnic_msi_reset(d);
    qnic_msix_reset(d);
}

/* ---- BARs ---- */

void qnic_pci_register_bar(QnicPciDevice *d, int bar, uint8_t type, QnicRegion *region)
{
    uint64_t size = region->size;
    unsigned off = PCI_BASE_ADDRESS_0 + 4 * bar;
    uint64_t wmask;

    g_assert(bar >= 0 && bar < QNIC_PCI_NUM_BARS && QNIC_IS_POW2(size));
    if (type & QNIC_PCI_BAR_IO) {
        type = QNIC_PCI_BAR_IO;
        g_assert(size >= 4);
    } else {
        g_assert(size >= 16);
    }
    d->bars[bar].region = region;
    d->bars[bar].size = size;
    d->bars[bar].type = type;
    d->bars[bar].addr = QNIC_PCI_BAR_UNMAPPED;
    wmask = ~(size - 1);
    qnic_pci_set_long(d, off, type);
    if (type & QNIC_PCI_BAR_MEM64) {
        g_assert(bar < QNIC_PCI_NUM_BARS - 1);
        qnic_st32(&d->wmask[off], (uint32_t)wmask);
        qnic_st32(&d->wmask[off + 4], (uint32_t)(wmask >> 32));
        qnic_pci_set_long(d, off + 4, 0);
    } else {
        qnic_st32(&d->wmask[off], (uint32_t)wmask & ((type & QNIC_PCI_BAR_IO) ? ~3u : ~15u));
    }
}

uint64_t qnic_pci_bar_addr(const QnicPciDevice *d, int bar)
{
    return d->bars[bar].addr;
}

uint64_t qnic_pci_bar_decode(const QnicPciDevice *d, const uint8_t *config, int i)
{
    const QnicPciBar *b = &d->bars[i];
    uint16_t cmd = qnic_ld16(&config[PCI_COMMAND]);
    uint64_t addr, last;

    if (i == QNIC_PCI_ROM_SLOT) {
        uint32_t v = qnic_ld32(&config[PCI_ROM_ADDRESS]);
        if (!(cmd & PCI_COMMAND_MEMORY) || !(v & PCI_ROM_ADDRESS_ENABLE)) {
            return QNIC_PCI_BAR_UNMAPPED;
        }
        addr = v & ~(uint32_t)(b->size - 1) & PCI_ROM_ADDRESS_MASK;
        last = addr + b->size - 1;
        if (!addr || last >= 0xffffffffull) {
            return QNIC_PCI_BAR_UNMAPPED;
        }
        return addr;
    }
    unsigned off = PCI_BASE_ADDRESS_0 + 4 * i;
    if (b->type & QNIC_PCI_BAR_IO) {
        if (!(cmd & PCI_COMMAND_IO)) {
            return QNIC_PCI_BAR_UNMAPPED;
        }
        addr = qnic_ld32(&config[off]) & ~(uint32_t)(b->size - 1) & ~3u;
        last = addr + b->size - 1;
        if (!addr || last > 0xffff) {
            return QNIC_PCI_BAR_UNMAPPED;
        }
        return addr;
    }
    if (!(cmd & PCI_COMMAND_MEMORY)) {
        return QNIC_PCI_BAR_UNMAPPED;
    }
    addr = qnic_ld32(&config[off]);
    if (b->type & QNIC_PCI_BAR_MEM64) {
        addr |= (uint64_t)qnic_ld32(&config[off + 4]) << 32;
    }
    addr &= ~(b->size - 1) & ~15ull;
    last = addr + b->size - 1;
    if (!addr || last <= addr || last == QNIC_PCI_BAR_UNMAPPED) {
        return QNIC_PCI_BAR_UNMAPPED;
    }
    if (!(b->type & QNIC_PCI_BAR_MEM64) && last >= 0xffffffffull) {
        return QNIC_PCI_BAR_UNMAPPED;
    }
    return addr;
}

void qnic_pci_update_mappings(QnicPciDevice *d)
{
    QnicMachine *m = d->dev.machine;

    for (int i = 0; i <= QNIC_PCI_NUM_BARS; i++) {
        QnicPciBar *b = &d->bars[i];
        uint64_t addr;

        if (!b->region) {
            continue;
        }
        addr = qnic_pci_bar_decode(d, d->config, i);
        if (addr == b->addr) {
            continue;
        }
        qnic_as_unmap(b->region);
        b->addr = addr;
        if (addr != QNIC_PCI_BAR_UNMAPPED) {
            /* Below RAM's priority: a BAR placed over RAM does not hide it,
             * as PCI space sits under RAM in QEMU's pc machine. */
            qnic_as_map((b->type & QNIC_PCI_BAR_IO) ? &m->io : &m->mem, b->region, addr, -1);
        }
    }
}

/* ---- capabilities ---- */

static uint8_t pci_find_space(QnicPciDevice *d, uint8_t size)
{
    int offset = PCI_CONFIG_HEADER_SIZE;

    for (int i = PCI_CONFIG_HEADER_SIZE; i < QNIC_PCI_CONFIG_SIZE; i++) {
        if (d->used[i]) {
            offset = i + 1;
        } else if (i - offset + 1 == size) {
            return (uint8_t)offset;
        }
    }
    return 0;
}

uint8_t qnic_pci_add_capability(QnicPciDevice *d, uint8_t cap_id, uint8_t offset,
                                uint8_t size, GError **errp)
{
    if (!offset) {
        offset = pci_find_space(d, size);
        if (!offset) {
            qnic_error_setg(errp, "no room for a %u-byte PCI capability %#x", size, cap_id);
            return 0;
        }
    } else {
        if (offset < PCI_CONFIG_HEADER_SIZE || (unsigned)offset + size > QNIC_PCI_CONFIG_SIZE) {
            qnic_error_setg(errp, "PCI capability %#x at %#x does not fit", cap_id, offset);
            return 0;
        }
        for (unsigned i = offset; i < (unsigned)offset + size; i++) {
            if (d->used[i]) {
                qnic_error_setg(errp, "PCI capability %#x at %#x overlaps another", cap_id, offset);
                return 0;
            }
        }
    }
    d->config[offset] = cap_id;
    d->config[offset + 1] = d->config[PCI_CAPABILITY_LIST];
    d->config[PCI_CAPABILITY_LIST] = offset;
    d->config[PCI_STATUS] |= PCI_STATUS_CAP_LIST;
    /* Claims are rounded to dwords, so the next capability starts aligned
     * (QEMU lays capabilities out the same way). */
    memset(d->used + offset, 0xff, MIN(QNIC_ALIGN_UP((unsigned)size, 4u),
                                       (unsigned)(QNIC_PCI_CONFIG_SIZE - offset)));
    memset(d->wmask + offset, 0, size);
    memset(d->w1cmask + offset, 0, size);
    return offset;
}

uint8_t qnic_pci_find_capability(const QnicPciDevice *d, uint8_t cap_id)
{
    uint8_t pos = d->config[PCI_CAPABILITY_LIST];

    /* At most 48 capabilities fit in 192 bytes; bounds a looped list. */
    for (int n = 0; n < 48 && pos >= PCI_CONFIG_HEADER_SIZE; n++) {
        if (d->config[pos] == cap_id) {
            return pos;
        }
        pos = d->config[pos + 1];
    }
    return 0;
}

/* ---- config cycles ---- */

uint32_t qnic_pci_config_read(QnicPciDevice *d, uint32_t addr, unsigned len)
{
    uint32_t val = 0;

    if (len != 1 && len != 2 && len != 4) {
        return ~0u;
    }
    if (addr >= QNIC_PCI_CONFIG_SIZE || addr + len > QNIC_PCI_CONFIG_SIZE) {
        return ~0u >> (32 - 8 * len);
    }
    for (unsigned i = 0; i < len; i++) {
        val |= (uint32_t)d->config[addr + i] << (8 * i);
    }
    if (d->config_read) {
        val = d->config_read(d, addr, len, val);
    }
    return val;
}

static bool ranges_overlap(uint32_t a, unsigned alen, uint32_t b, unsigned blen)
{
    return a < b + blen && b < a + alen;
}

void qnic_pci_config_write(QnicPciDevice *d, uint32_t addr, uint32_t val, unsigned len)
{
    uint16_t old_cmd = qnic_pci_get_word(d, PCI_COMMAND);

    if ((len != 1 && len != 2 && len != 4) || addr >= QNIC_PCI_CONFIG_SIZE ||
        addr + len > QNIC_PCI_CONFIG_SIZE) {
        return;
    }
    d->dev.in_io++;
    for (unsigned i = 0; i < len; i++) {
        uint8_t b = (uint8_t)(val >> (8 * i));
        uint8_t wm = d->wmask[addr + i], w1c = d->w1cmask[addr + i];
        d->config[addr + i] = (d->config[addr + i] & ~wm) | (b & wm);
        d->config[addr + i] &= ~(b & w1c);
    }
    if (ranges_overlap(addr, len, PCI_COMMAND, 2) ||
        ranges_overlap(addr, len, PCI_BASE_ADDRESS_0, 24) ||
        ranges_overlap(addr, len, PCI_ROM_ADDRESS, 4)) {
        qnic_pci_update_mappings(d);
    }
    if (ranges_overlap(addr, len, PCI_COMMAND, 2)) {
        uint16_t cmd = qnic_pci_get_word(d, PCI_COMMAND);
        d->dev.dma_enabled = (cmd & PCI_COMMAND_MASTER) != 0;
        if ((cmd ^ old_cmd) & PCI_COMMAND_INTX_DISABLE) {
            qnic_pci_bus_intx_update(d);
        }
    }
    qnic_msi_config_write(d, addr, len);
    qnic_msix_config_write(d, addr, len);
    if (d->config_write) {
        d->config_write(d, addr, val, len);
    }
    d->dev.in_io--;
}

/* ---- INTx ---- */

void qnic_pci_set_irq(QnicPciDevice *d, int level)
{
    level = !!level;
    if (level) {
        d->config[PCI_STATUS] |= PCI_STATUS_INTERRUPT;
    } else {
        d->config[PCI_STATUS] &= ~PCI_STATUS_INTERRUPT;
    }
    d->intx_level = (d->intx_level & 2) | level;
    if (d->bus) {
        qnic_pci_bus_intx_update(d);
    }
}
