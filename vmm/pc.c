/*
 * The pc board of qnic-vmm (see pc.h): the ISA and firmware pieces of QEMU's
 * pc machine that the generic machine and the accelerator do not hold, so
 * that kvm.c is only the accelerator and machine.c knows no command line.
 */
#include "vmm/pc.h"
#include "vmm/mptable.h"
#include "vmm/acpi.h"
#include "qnic/machine.h"
#include "qnic/pci.h"
#include "qnic/virtio.h"
#include "qnic/state.h"
#include "qnic/log.h"

#include <time.h>

/* ---- port 0x61: PIT channel 2 gate and output ----
 * The in-kernel PIT counts, but on some hosts (this PVM one) port 0x61 is
 * not served in the kernel, and guests calibrate their TSC by gating PIT
 * channel 2 from it and polling its output bit (5). So, like QEMU's pcspk,
 * read the channel's state from the accelerator and compute the output
 * here. */
#define PIT_FREQ 1193182ull             /* Hz, the i8254's input clock */
#define PIT_MAX_COUNT 0x10000ull        /* a count of 0 means 65536 */
/* DRAM refresh requests come every 15.085 us on the pc (port 0x61 bit 4
 * toggles with each); delay loops poll it. */
#define PC_REFRESH_PERIOD_NS 15085

static unsigned pit_out(const QnicPitChannel *c, int64_t now_ns)
{
    uint64_t count = c->count ? c->count : PIT_MAX_COUNT;
    int64_t dt = now_ns - c->count_load_time;
    uint64_t ticks = dt > 0 ? (uint64_t)((__uint128_t)dt * PIT_FREQ / 1000000000ull) : 0;

    switch (c->mode) {
    case 0:         /* interrupt on terminal count */
    case 1:         /* one-shot */
        return ticks >= count;
    case 2:         /* rate generator: low for the last tick of a period */
    case 6:
        return ticks == 0 || (ticks % count) != count - 1;
    case 3:         /* square wave */
    case 7:
        return (ticks % count) < ((count + 1) >> 1);
    default:        /* 4, 5: strobes, low for one tick at terminal count */
        return ticks != count;
    }
}

static uint64_t port61_read(void *opaque, uint64_t addr, unsigned size)
{
    QnicPcBoard *b = opaque;
    QnicPitChannel ch2;
    struct timespec ts;
    uint8_t val = b->port61_val & (QNIC_PC_PORT61_GATE2 | QNIC_PC_PORT61_SPEAKER);

    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t now = ts.tv_sec * 1000000000ll + ts.tv_nsec;
    if (b->accel->pit_ch2_get(b->accel_state, &ch2) && ch2.gate) {
        val |= pit_out(&ch2, now) << 5;
    }
    val |= ((now / PC_REFRESH_PERIOD_NS) & 1) << 4;
    return val;
}

static void port61_write(void *opaque, uint64_t addr, uint64_t val, unsigned size)
{
    QnicPcBoard *b = opaque;
    bool gate = val & QNIC_PC_PORT61_GATE2;

    if (gate != (b->port61_val & QNIC_PC_PORT61_GATE2)) {
        b->accel->pit_ch2_set_gate(b->accel_state, gate);
    }
    b->port61_val = val & (QNIC_PC_PORT61_GATE2 | QNIC_PC_PORT61_SPEAKER);
}

static const QnicMemOps port61_ops = {
    .read = port61_read, .write = port61_write,
    .valid_min = 1, .valid_max = 1, .impl_min = 1, .impl_max = 1,
};

/* ---- the guest's reset requests: port 0xcf9 and the 8042's 0x64 ---- */

static uint64_t rcr_read(void *opaque, uint64_t addr, unsigned size)
{
    QnicPcBoard *b = opaque;
    return b->rcr_val;
}

static void rcr_write(void *opaque, uint64_t addr, uint64_t val, unsigned size)
{
    QnicPcBoard *b = opaque;

    if (val & QNIC_PC_RCR_RST_CPU) {
        qnic_vmm_request_reset();
        return;
    }
    b->rcr_val = val & QNIC_PC_RCR_SYS_RST;
}

static const QnicMemOps rcr_ops = {
    .read = rcr_read, .write = rcr_write,
    .valid_min = 1, .valid_max = 1, .impl_min = 1, .impl_max = 1,
};

/* Only the command port's reset pulse: the board has no keyboard, so its
 * status reads 0 (both buffers empty), which ends an OS's wait for the
 * input buffer at once. */
static uint64_t kbc_read(void *opaque, uint64_t addr, unsigned size)
{
    return 0;
}

static void kbc_write(void *opaque, uint64_t addr, uint64_t val, unsigned size)
{
    if ((val & QNIC_PC_KBC_PULSE_MASK) == QNIC_PC_KBC_PULSE_MASK &&
        !(val & QNIC_PC_KBC_PULSE_RESET)) {
        qnic_vmm_request_reset();
    }
}

static const QnicMemOps kbc_ops = {
    .read = kbc_read, .write = kbc_write,
    .valid_min = 1, .valid_max = 1, .impl_min = 1, .impl_max = 1,
};

/* Mapped above the PCI host's 0xcf8 dword, which it overlaps by a byte. */
static void pc_map_reset_ports(QnicPcBoard *b, QnicMachine *m)
{
    qnic_region_init_io(&b->rcr, NULL, &rcr_ops, b, "piix3-reset-control", 1);
    qnic_as_map(&m->io, &b->rcr, QNIC_PC_RCR, 1);
    if (!qnic_as_find(&m->io, QNIC_PC_KBC_CMD, NULL)) {
        qnic_region_init_io(&b->kbc, NULL, &kbc_ops, b, "i8042-reset", 1);
        qnic_as_map(&m->io, &b->kbc, QNIC_PC_KBC_CMD, 0);
    }
}

/* ---- COM1 from -serial ---- */

static bool pc_create_serial(QnicVmmConfig *cfg, QnicMachine *m, GError **errp)
{
    if (!cfg->serial || g_str_equal(cfg->serial, "none")) {
        return true;
    }
    for (guint i = 0; i < m->devices->len; i++) {
        QnicDevice *d = g_ptr_array_index(m->devices, i);
        if (g_str_equal(d->cls->name, "isa-serial")) {
            return true;        /* the command line code made it already */
        }
    }
    /* ',' in a file name must survive the option lexer: double it. */
    g_auto(GStrv) parts = g_strsplit(cfg->serial, ",", -1);
    g_autofree char *escaped = g_strjoinv(",,", parts);
    g_autofree char *str = g_strdup_printf("isa-serial,chardev=%s", escaped);
    if (!qnic_device_create_str(m, str, errp)) {
        qnic_error_prefix(errp, "-serial %s: ", cfg->serial);
        return false;
    }
    return true;
}

/* ---- what firmware would do ---- */

/* No firmware: tell each PCI function where its INTx lands, as a BIOS
 * would, write the MP table and the ACPI tables a BIOS would (vmm/mptable.h,
 * vmm/acpi.h; the kernel loaders find the RSDP there), and describe
 * virtio-mmio transports to the kernel the way QEMU's microvm does
 * (virtio_mmio.device=SIZE@ADDR:IRQ). */
/* The interrupt lines and the tables; true when the ACPI tables were
 * written. Warnings only at start: at a reset they say the same again. */
static bool pc_firmware_tables(QnicPcBoard *b, QnicMachine *m, bool warn)
{
    bool acpi;

    qnic_pci_bus_fill_interrupt_lines(m->pci);
    if (m->ram && !qnic_mptable_write(m->ram, m->below_4g, b->ncpus) && warn) {
        qnic_warn("no MP table written (%" PRIu64 " bytes of low RAM, %u vCPUs): a guest "
                  "without ACPI sees no I/O APIC", m->below_4g, b->ncpus);
    }
    acpi = m->ram && qnic_acpi_write(m->ram, m->below_4g, b->ncpus);
    if (m->ram && !acpi && warn) {
        qnic_warn("no ACPI tables written (%" PRIu64 " bytes of low RAM, %u vCPUs): the "
                  "guest sees no PCI hotplug", m->below_4g, b->ncpus);
    }
    return acpi;
}

static char *pc_firmware_setup(QnicPcBoard *b, QnicVmmConfig *cfg, QnicMachine *m)
{
    if (pc_firmware_tables(b, m, true)) {
        qnic_acpi_pm_init(&b->acpi_pm, &m->io);
    }
    g_autofree char *mmio_args = qnic_virtio_mmio_cmdline_all(m);
    if (mmio_args && *mmio_args) {
        char *cmdline = g_strjoin(" ", cfg->append ? cfg->append : "", mmio_args, NULL);
        return g_strstrip(cmdline);
    }
    return g_strdup(cfg->append);
}

bool qnic_pc_board_ready(QnicPcBoard *b, const QnicAccel *accel, void *accel_state,
                         QnicVmmConfig *cfg, QnicMachine *m, GError **errp)
{
    b->accel = accel;
    b->accel_state = accel_state;
    b->ncpus = cfg->smp ? cfg->smp : 1;
    pc_map_reset_ports(b, m);
    if (!accel->boots_kernel) {
        return true;
    }
    if (accel->pit_ch2_get && !qnic_as_find(&m->io, QNIC_PC_PORT61, NULL)) {
        qnic_region_init_io(&b->port61, NULL, &port61_ops, b, "pit-speaker", 1);
        qnic_as_map(&m->io, &b->port61, QNIC_PC_PORT61, 0);
    }
    if (!pc_create_serial(cfg, m, errp)) {
        return false;
    }
    b->cmdline = pc_firmware_setup(b, cfg, m);
    return true;
}

void qnic_pc_board_reset(void *opaque, QnicMachine *m)
{
    QnicPcBoard *b = opaque;

    b->rcr_val = 0;
    b->port61_val = 0;          /* the PIT (channel 2's gate too) is the accelerator's */
    if (!b->accel || !b->accel->boots_kernel) {
        return;
    }
    qnic_acpi_pm_reset(&b->acpi_pm);
    pc_firmware_tables(b, m, false);
}

/* ---- migration ---- */

typedef struct PcBoardState {
    uint8_t port61, rcr;
    uint16_t pm1_en, pm1_cnt;
    uint64_t pm_timer_ns;
} PcBoardState;

static const QnicStateField pc_board_fields[] = {
    QNIC_STATE_UINT_RANGE(PcBoardState, port61, 0, 0,
                          QNIC_PC_PORT61_GATE2 | QNIC_PC_PORT61_SPEAKER),
    QNIC_STATE_UINT_RANGE(PcBoardState, rcr, 0, 0, QNIC_PC_RCR_SYS_RST),
    QNIC_STATE_UINT(PcBoardState, pm1_en, 0),
    QNIC_STATE_UINT(PcBoardState, pm1_cnt, 0),
    QNIC_STATE_UINT(PcBoardState, pm_timer_ns, 0),
    QNIC_STATE_END
};

static const QnicStateDesc pc_board_desc = {
    .name = "pc-board", .version = 1, .min_version = 1,
    .size = sizeof(PcBoardState), .fields = pc_board_fields,
};

void qnic_pc_board_save_state(void *opaque, GByteArray *out)
{
    QnicPcBoard *b = opaque;
    PcBoardState st = {
        .port61 = b->port61_val, .rcr = b->rcr_val, .pm1_en = b->acpi_pm.pm1_en, .pm1_cnt = b->acpi_pm.pm1_cnt,
        .pm_timer_ns = qnic_acpi_pm_timer_ns(&b->acpi_pm),
    };
    qnic_state_write(out, &pc_board_desc, &st);
}

bool qnic_pc_board_load_state(void *opaque, QnicStateReader *r, GError **errp)
{
    QnicPcBoard *b = opaque;
    PcBoardState st;

    if (!qnic_state_read(r, &pc_board_desc, &st, errp)) {
        return false;
    }
    if (st.pm1_cnt & (QNIC_ACPI_PM1_SLP_EN | QNIC_ACPI_PM1_GBL_RLS)) {
        qnic_error_setg(errp, "pc-board: PM1 control 0x%x holds write-only bits", st.pm1_cnt);
        return false;
    }
    /* The in-kernel PIT's gate came with the accelerator's state. */
    b->port61_val = st.port61;
    b->rcr_val = st.rcr;
    b->acpi_pm.pm1_en = st.pm1_en;
    b->acpi_pm.pm1_cnt = st.pm1_cnt;
    qnic_acpi_pm_set_timer_ns(&b->acpi_pm, st.pm_timer_ns);
    return true;
}

void qnic_pc_board_cleanup(QnicPcBoard *b)
{
    if (b->port61.as) {
        qnic_as_unmap(&b->port61);
    }
    if (b->rcr.as) {
        qnic_as_unmap(&b->rcr);
    }
    if (b->kbc.as) {
        qnic_as_unmap(&b->kbc);
    }
    qnic_acpi_pm_cleanup(&b->acpi_pm);
    g_clear_pointer(&b->cmdline, g_free);
}
