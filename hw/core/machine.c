/*
 * The pc-like machine: guest RAM in one memfd (split below/above 4 GiB as
 * QEMU's pc does), the memory and I/O address spaces, the MSI window, the
 * PCI bus with its host bridge, and the GSI lines handed to the embedder.
 */
#include "qnic/machine.h"
#include "qnic/pci.h"
#include "qnic/log.h"
#include "qnic/state.h"
#include <sys/mman.h>
#include <fcntl.h>
#include <unistd.h>

static uint64_t msi_read(void *opaque, uint64_t addr, unsigned size)
{
    return 0;
}

static void msi_write(void *opaque, uint64_t addr, uint64_t val, unsigned size)
{
    QnicMachine *m = opaque;

    if (m->cfg.msi) {
        m->cfg.msi(m->cfg.opaque, QNIC_MSI_ADDR_BASE + addr, (uint32_t)val);
    }
}

int qnic_machine_msi_irqfd(QnicMachine *m, uint64_t addr, uint32_t data)
{
    if (!m || !m->cfg.msi_irqfd || addr < QNIC_MSI_ADDR_BASE ||
        addr - QNIC_MSI_ADDR_BASE >= QNIC_MSI_ADDR_SIZE || (addr & 3)) {
        return -1;
    }
    return m->cfg.msi_irqfd(m->cfg.opaque, addr, data);
}

/* The PCI host's INTx lines are the machine's GSIs. */
static void machine_set_gsi(void *opaque, unsigned gsi, int level)
{
    qnic_machine_set_gsi(opaque, gsi, level);
}

static const QnicMemOps msi_ops = {
    .read = msi_read, .write = msi_write,
    .valid_min = 4, .valid_max = 4, .impl_min = 4, .impl_max = 4,
};

QnicMachine *qnic_machine_new(const QnicMachineConfig *cfg, GError **errp)
{
    QnicMachine *m = g_new0(QnicMachine, 1);

    if (cfg) {
        m->cfg = *cfg;
    }
    if (m->cfg.no_ram) {
        m->ram_fd = -1;
        qnic_as_init(&m->mem, "memory", false);
        qnic_as_init(&m->io, "io", true);
        qnic_region_init_io(&m->msi_region, NULL, &msi_ops, m, "msi", QNIC_MSI_ADDR_SIZE);
        qnic_as_map(&m->mem, &m->msi_region, QNIC_MSI_ADDR_BASE, 1);
        m->devices = g_ptr_array_new();
        m->pci = qnic_pci_bus_new(m, machine_set_gsi, m);
        return m;
    }
    m->ram_size = m->cfg.ram_size ? m->cfg.ram_size : 128 * 1024 * 1024;
    if (m->ram_size < 1024 * 1024) {
        qnic_error_setg_invalid(errp, "ram size too small (%" PRIu64 " bytes, at least 1M)",
                                m->ram_size);
        g_free(m);
        return NULL;
    }
    m->below_4g = MIN(m->ram_size, QNIC_BELOW_4G_MAX);
    m->above_4g = m->ram_size - m->below_4g;
    m->ram_fd = memfd_create("qnic-ram", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (m->ram_fd < 0 || ftruncate(m->ram_fd, (off_t)m->ram_size) < 0 ||
        /* A vhost-user backend maps this fd: sealed, its size cannot change
         * under the backend's mapping (as QEMU's memfd backend, seal=on). */
        fcntl(m->ram_fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
        qnic_error_setg_errno(errp, errno, "cannot allocate %" PRIu64 " bytes of guest RAM",
                              m->ram_size);
        if (m->ram_fd >= 0) {
            close(m->ram_fd);
        }
        g_free(m);
        return NULL;
    }
    m->ram = mmap(NULL, m->ram_size, PROT_READ | PROT_WRITE, MAP_SHARED, m->ram_fd, 0);
    if (m->ram == MAP_FAILED) {
        qnic_error_setg_errno(errp, errno, "cannot map %" PRIu64 " bytes of guest RAM",
                              m->ram_size);
        close(m->ram_fd);
        g_free(m);
        return NULL;
    }
    qnic_as_init(&m->mem, "memory", false);
    qnic_as_init(&m->io, "io", true);
    qnic_region_init_ram(&m->ram_low, "ram-below-4g", m->ram, m->below_4g, m->ram_fd, 0);
    qnic_as_map(&m->mem, &m->ram_low, 0, 0);
    if (m->above_4g) {
        qnic_region_init_ram(&m->ram_high, "ram-above-4g", m->ram + m->below_4g,
                             m->above_4g, m->ram_fd, m->below_4g);
        qnic_as_map(&m->mem, &m->ram_high, 0x100000000ull, 0);
    }
    qnic_region_init_io(&m->msi_region, NULL, &msi_ops, m, "msi", QNIC_MSI_ADDR_SIZE);
    qnic_as_map(&m->mem, &m->msi_region, QNIC_MSI_ADDR_BASE, 1);
    m->devices = g_ptr_array_new();
    m->pci = qnic_pci_bus_new(m, machine_set_gsi, m);
    return m;
}

void qnic_machine_free(QnicMachine *m)
{
    if (!m) {
        return;
    }
    while (m->devices->len) {
        qnic_device_destroy(g_ptr_array_index(m->devices, m->devices->len - 1));
    }
    qnic_pci_bus_free(m->pci);
    qnic_as_destroy(&m->mem);
    qnic_as_destroy(&m->io);
    qnic_region_dirty_free(&m->ram_low);
    qnic_region_dirty_free(&m->ram_high);
    g_ptr_array_free(m->devices, TRUE);
    if (m->ram) {
        munmap(m->ram, m->ram_size);
    }
    if (m->ram_fd >= 0) {
        close(m->ram_fd);
    }
    g_free(m);
}

void qnic_machine_reset(QnicMachine *m)
{
    /* Pending unplugs complete first: those devices do not come back. */
    if (m->pci) {
        qnic_pci_bus_reset(m->pci);
    }
    for (guint i = 0; i < m->devices->len; i++) {
        qnic_device_reset(g_ptr_array_index(m->devices, i));
    }
}

void qnic_machine_set_gsi(QnicMachine *m, unsigned gsi, int level)
{
    if (gsi >= QNIC_NUM_GSI) {
        return;
    }
    level = !!level;
    if (m->gsi_level[gsi] == level) {
        return;
    }
    m->gsi_level[gsi] = level;
    if (m->cfg.set_gsi) {
        m->cfg.set_gsi(m->cfg.opaque, gsi, level);
    }
}

void *qnic_machine_ram_ptr(QnicMachine *m, uint64_t gpa, uint64_t len)
{
    if (gpa < m->below_4g) {
        return gpa + len <= m->below_4g && gpa + len >= gpa ? m->ram + gpa : NULL;
    }
    if (m->above_4g && gpa >= 0x100000000ull) {
        uint64_t off = gpa - 0x100000000ull;
        if (off + len <= m->above_4g && off + len >= off) {
            return m->ram + m->below_4g + off;
        }
    }
    return NULL;
}

/* Machine-level state: the level of every GSI line as the devices left it,
 * then the PCI bus's own sections (its built-in functions and hotplug
 * block). The accelerator's interrupt controllers have their own. */
typedef struct MachineSnap {
    uint8_t gsi_level[QNIC_NUM_GSI];
} MachineSnap;

static const QnicStateField machine_fields[] = {
    { .name = "gsi_level", .kind = QNIC_SF_UINT, .offset = offsetof(MachineSnap, gsi_level),
      .size = 1, .count = QNIC_NUM_GSI, .count_offset = QNIC_SF_NO_COUNT, .max = 1 },
    QNIC_STATE_END,
};

static const QnicStateDesc machine_desc = {
    .name = "machine", .version = 1, .min_version = 1,
    .size = sizeof(MachineSnap), .fields = machine_fields,
};

void qnic_machine_save_state(QnicMachine *m, GByteArray *out)
{
    MachineSnap snap = { { 0 } };

    for (unsigned i = 0; i < QNIC_NUM_GSI; i++) {
        snap.gsi_level[i] = m->gsi_level[i] ? 1 : 0;
    }
    qnic_state_write(out, &machine_desc, &snap);
    if (m->pci) {
        qnic_pci_bus_save_state(m->pci, out);
    }
}

bool qnic_machine_load_state(QnicMachine *m, QnicStateReader *r, GError **errp)
{
    MachineSnap snap;

    if (!qnic_state_read(r, &machine_desc, &snap, errp)) {
        return false;
    }
    if (m->pci && !qnic_pci_bus_load_state(m->pci, r, errp)) {
        return false;
    }
    for (unsigned i = 0; i < QNIC_NUM_GSI; i++) {
        qnic_machine_set_gsi(m, i, snap.gsi_level[i]);
    }
    return true;
}
