/*
 * Unit tests of qnic-vmm's pc board (vmm/pc.c) on a bare machine, with a
 * fake accelerator in place of KVM so that they run on any host: port 0x61
 * (the gate and speaker bits it keeps, PIT channel 2's output and gate
 * through the accelerator's ops, the refresh toggle), COM1 from -serial,
 * PCI_INTERRUPT_LINE as firmware fills it, the kernel command line with the
 * virtio-mmio transports, and that under qtest the board adds nothing.
 */
#include "vmm/vmm.h"
#include "vmm/pc.h"
#include "qnic/machine.h"
#include "qnic/device.h"
#include "qnic/memory.h"
#include "qnic/pci.h"
#include "qnic/virtio.h"
#include "qnic/state.h"
#include "test-isa-io.h"
#include "../lib/test-backends.h"

#include <unistd.h>

/* ---- a fake accelerator: the PIT channel 2 the board sees ---- */

static QnicPitChannel fake_ch2;
static bool fake_ch2_ok;
static unsigned gate_calls;

static bool fake_pit_ch2_get(void *state, QnicPitChannel *c)
{
    g_assert_true(state == &fake_ch2);
    *c = fake_ch2;
    return fake_ch2_ok;
}

static void fake_pit_ch2_set_gate(void *state, bool gate)
{
    g_assert_true(state == &fake_ch2);
    fake_ch2.gate = gate;
    gate_calls++;
}

static const QnicAccel fake_kvm = {
    .name = "fake", .boots_kernel = true,
    .pit_ch2_get = fake_pit_ch2_get, .pit_ch2_set_gate = fake_pit_ch2_set_gate,
};

static const QnicAccel fake_qtest = { .name = "fake-qtest" };

static QnicMachine *new_machine(void)
{
    QnicMachine *m = isa_test_machine(NULL);

    fake_ch2 = (QnicPitChannel){ 0 };
    fake_ch2_ok = true;
    gate_calls = 0;
    return m;
}

static int64_t now_ns(void)
{
    return g_get_monotonic_time() * 1000;      /* CLOCK_MONOTONIC, as pc.c */
}

/* ---- port 0x61 ---- */

static void test_port61_gate(void)
{
    QnicMachine *m = new_machine();
    QnicVmmConfig cfg = { 0 };
    QnicPcBoard b = { 0 };
    GError *err = NULL;

    g_assert_true(qnic_pc_board_ready(&b, &fake_kvm, &fake_ch2, &cfg, m, &err));
    g_assert_no_error(err);
    g_assert_true(qnic_as_find(&m->io, QNIC_PC_PORT61, NULL));

    /* Only a change of the gate bit reaches the PIT. */
    outb(m, QNIC_PC_PORT61, QNIC_PC_PORT61_GATE2);
    g_assert_cmpuint(gate_calls, ==, 1);
    g_assert_true(fake_ch2.gate);
    outb(m, QNIC_PC_PORT61, QNIC_PC_PORT61_GATE2 | QNIC_PC_PORT61_SPEAKER);
    g_assert_cmpuint(gate_calls, ==, 1);
    g_assert_cmpuint(inb(m, QNIC_PC_PORT61) & 3, ==, 3);
    outb(m, QNIC_PC_PORT61, 0);
    g_assert_cmpuint(gate_calls, ==, 2);
    g_assert_false(fake_ch2.gate);
    /* Bits other than gate and speaker are not kept. */
    outb(m, QNIC_PC_PORT61, 0xfc);
    g_assert_cmpuint(inb(m, QNIC_PC_PORT61) & ~(QNIC_PC_PORT61_REFRESH |
                                                QNIC_PC_PORT61_OUT2), ==, 0);

    qnic_pc_board_cleanup(&b);
    g_assert_false(qnic_as_find(&m->io, QNIC_PC_PORT61, NULL));
    qnic_machine_free(m);
}

static void test_port61_output(void)
{
    QnicMachine *m = new_machine();
    QnicVmmConfig cfg = { 0 };
    QnicPcBoard b = { 0 };

    g_assert_true(qnic_pc_board_ready(&b, &fake_kvm, &fake_ch2, &cfg, m, NULL));
    outb(m, QNIC_PC_PORT61, QNIC_PC_PORT61_GATE2);

    /* Mode 0, loaded a second ago with 100 ticks: terminal count reached. */
    fake_ch2 = (QnicPitChannel){ .gate = true, .mode = 0, .count = 100,
                                 .count_load_time = now_ns() - 1000000000ll };
    g_assert_cmphex(inb(m, QNIC_PC_PORT61) & QNIC_PC_PORT61_OUT2, ==, QNIC_PC_PORT61_OUT2);
    /* Counting has not started yet (load time ahead): low. */
    fake_ch2.count_load_time = now_ns() + 1000000000ll;
    g_assert_cmphex(inb(m, QNIC_PC_PORT61) & QNIC_PC_PORT61_OUT2, ==, 0);
    /* Gate low, or the PIT unreadable: no output bit whatever the count. */
    fake_ch2.count = 100;
    fake_ch2.count_load_time = now_ns() - 1000000000ll;
    fake_ch2.gate = false;
    g_assert_cmphex(inb(m, QNIC_PC_PORT61) & QNIC_PC_PORT61_OUT2, ==, 0);
    fake_ch2.gate = true;
    fake_ch2_ok = false;
    g_assert_cmphex(inb(m, QNIC_PC_PORT61) & QNIC_PC_PORT61_OUT2, ==, 0);

    /* The refresh bit toggles every 15 us: both values show soon. */
    bool seen[2] = { false, false };
    int64_t end = now_ns() + 1000000000ll;
    while (!(seen[0] && seen[1]) && now_ns() < end) {
        seen[!!(inb(m, QNIC_PC_PORT61) & QNIC_PC_PORT61_REFRESH)] = true;
    }
    g_assert_true(seen[0] && seen[1]);

    qnic_pc_board_cleanup(&b);
    qnic_machine_free(m);
}

/* ---- COM1, interrupt lines, command line ---- */

static bool has_device(QnicMachine *m, const char *name)
{
    for (guint i = 0; i < m->devices->len; i++) {
        QnicDevice *d = g_ptr_array_index(m->devices, i);
        if (g_str_equal(d->cls->name, name)) {
            return true;
        }
    }
    return false;
}

static void test_serial(void)
{
    QnicMachine *m = new_machine();
    g_autofree char *path = tmp_file();
    g_autofree char *serial = g_strdup_printf("file:%s", path);
    QnicVmmConfig cfg = { .serial = serial };
    QnicPcBoard b = { 0 };
    GError *err = NULL;

    g_assert_true(qnic_pc_board_ready(&b, &fake_kvm, &fake_ch2, &cfg, m, &err));
    g_assert_no_error(err);
    g_assert_true(has_device(m, "isa-serial"));
    qnic_pc_board_cleanup(&b);
    qnic_machine_free(m);
    unlink(path);

    /* -serial none: no port; a file that cannot be opened: a -serial error */
    m = new_machine();
    b = (QnicPcBoard){ 0 };
    cfg.serial = "none";
    g_assert_true(qnic_pc_board_ready(&b, &fake_kvm, &fake_ch2, &cfg, m, &err));
    g_assert_false(has_device(m, "isa-serial"));
    qnic_pc_board_cleanup(&b);
    qnic_machine_free(m);

    m = new_machine();
    b = (QnicPcBoard){ 0 };
    cfg.serial = "file:/nonexistent-dir/serial";
    g_assert_false(qnic_pc_board_ready(&b, &fake_kvm, &fake_ch2, &cfg, m, &err));
    g_assert_nonnull(err);
    g_assert_true(g_str_has_prefix(err->message, "-serial file:/nonexistent-dir/serial: "));
    g_clear_error(&err);
    qnic_pc_board_cleanup(&b);
    qnic_machine_free(m);
}

static void test_firmware(void)
{
    QnicMachine *m = new_machine();
    QnicVmmConfig cfg = { .append = "console=ttyS0" };
    QnicPcBoard b = { 0 };
    GError *err = NULL;
    int pm = QNIC_PCI_DEVFN(1, 3);     /* PIIX ACPI PM: INTA */
    QnicPciDevice *d = qnic_pci_find_devfn(m->pci, pm);

    g_assert_nonnull(d);
    g_assert_nonnull(qnic_device_create_str(m, "virtio-net-device", &err));
    g_assert_no_error(err);
    g_assert_cmpuint(d->config[PCI_INTERRUPT_LINE], ==, 0);

    g_assert_true(qnic_pc_board_ready(&b, &fake_kvm, &fake_ch2, &cfg, m, &err));
    g_assert_cmpuint(d->config[PCI_INTERRUPT_LINE], ==, qnic_pci_intx_gsi(pm, 1));
    g_autofree char *mmio = qnic_virtio_mmio_cmdline_all(m);
    g_assert_true(g_str_has_prefix(mmio, "virtio_mmio.device="));
    g_autofree char *want = g_strdup_printf("console=ttyS0 %s", mmio);
    g_assert_cmpstr(b.cmdline, ==, want);
    qnic_pc_board_cleanup(&b);
    g_assert_null(b.cmdline);

    /* No -append: the transports alone, without a leading blank. */
    cfg.append = NULL;
    b = (QnicPcBoard){ 0 };
    g_assert_true(qnic_pc_board_ready(&b, &fake_kvm, &fake_ch2, &cfg, m, &err));
    g_assert_cmpstr(b.cmdline, ==, mmio);
    qnic_pc_board_cleanup(&b);
    qnic_machine_free(m);

    /* No virtio-mmio device: -append as given. */
    m = new_machine();
    b = (QnicPcBoard){ 0 };
    cfg.append = "quiet";
    g_assert_true(qnic_pc_board_ready(&b, &fake_kvm, &fake_ch2, &cfg, m, &err));
    g_assert_cmpstr(b.cmdline, ==, "quiet");
    qnic_pc_board_cleanup(&b);
    qnic_machine_free(m);
}

static void test_qtest_adds_nothing(void)
{
    QnicMachine *m = new_machine();
    QnicVmmConfig cfg = { .serial = "stdio", .append = "console=ttyS0" };
    QnicPcBoard b = { 0 };
    QnicPciDevice *d = qnic_pci_find_devfn(m->pci, QNIC_PCI_DEVFN(1, 3));

    g_assert_true(qnic_pc_board_ready(&b, &fake_qtest, NULL, &cfg, m, NULL));
    g_assert_false(qnic_as_find(&m->io, QNIC_PC_PORT61, NULL));
    g_assert_false(has_device(m, "isa-serial"));
    g_assert_cmpuint(d->config[PCI_INTERRUPT_LINE], ==, 0);
    g_assert_null(b.cmdline);
    qnic_pc_board_cleanup(&b);
    qnic_machine_free(m);
}

/* ---- migration: port 0x61, PM1, the PM timer on another board ---- */

static void test_board_state(void)
{
    QnicMachine *ma = new_machine(), *mb = new_machine();
    QnicVmmConfig cfg = { 0 };
    QnicPcBoard a = { 0 }, b = { 0 };
    GError *err = NULL;

    g_assert_true(qnic_pc_board_ready(&a, &fake_kvm, &fake_ch2, &cfg, ma, &err));
    g_assert_true(qnic_pc_board_ready(&b, &fake_kvm, &fake_ch2, &cfg, mb, &err));
    g_assert_no_error(err);
    outb(ma, QNIC_PC_PORT61, QNIC_PC_PORT61_SPEAKER);
    outb(ma, QNIC_PC_RCR, QNIC_PC_RCR_SYS_RST);
    outb(ma, QNIC_ACPI_PM1_EVT + 2, 0x21);                  /* PM1_EN */
    outb(ma, QNIC_ACPI_PM1_CNT, QNIC_ACPI_PM1_SCI_EN);
    outb(ma, QNIC_ACPI_PM1_CNT + 1, 0x04);
    /* a timer far from the host's clock, as on a source up for days */
    const uint64_t t0 = 7 * 24 * 3600 * 1000000000ull;
    qnic_acpi_pm_set_timer_ns(&a.acpi_pm, t0);
    g_autoptr(GByteArray) s = g_byte_array_new();
    qnic_pc_board_save_state(&a, s);

    /* a cut stream leaves b as it was */
    QnicStateReader r;
    qnic_state_reader_init(&r, s->data, s->len - 1);
    g_assert_false(qnic_pc_board_load_state(&b, &r, &err));
    g_assert_nonnull(err);
    g_clear_error(&err);
    g_assert_cmphex(inb(mb, QNIC_ACPI_PM1_EVT + 2), ==, 0);

    qnic_state_reader_init(&r, s->data, s->len);
    g_assert_true(qnic_pc_board_load_state(&b, &r, &err));
    g_assert_no_error(err);
    g_assert_true(qnic_state_reader_done(&r, &err));
    g_assert_cmphex(inb(mb, QNIC_PC_PORT61) & 3, ==, QNIC_PC_PORT61_SPEAKER);
    g_assert_cmphex(inb(mb, QNIC_PC_RCR), ==, QNIC_PC_RCR_SYS_RST);
    g_assert_cmphex(inb(mb, QNIC_ACPI_PM1_EVT + 2), ==, 0x21);
    g_assert_cmphex(inb(mb, QNIC_ACPI_PM1_CNT + 1), ==, 0x04);
    uint64_t tb = qnic_acpi_pm_timer_ns(&b.acpi_pm);
    g_assert_cmpuint(tb, >=, t0);
    g_assert_cmpuint(tb, <, t0 + 10 * 1000000000ull);
    /* the same state saved again, field by field, but for the timer */
    g_autoptr(GByteArray) s2 = g_byte_array_new();
    qnic_pc_board_save_state(&b, s2);
    g_autofree char *da = qnic_state_dump(s->data, s->len, &err);
    g_autofree char *db = qnic_state_dump(s2->data, s2->len, &err);
    g_assert_no_error(err);
    *strstr(da, "pc-board.pm_timer_ns") = 0;
    *strstr(db, "pc-board.pm_timer_ns") = 0;
    g_assert_cmpstr(da, ==, db);

    qnic_pc_board_cleanup(&a);
    qnic_pc_board_cleanup(&b);
    qnic_machine_free(ma);
    qnic_machine_free(mb);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/pc-board/port61/gate", test_port61_gate);
    g_test_add_func("/pc-board/port61/output", test_port61_output);
    g_test_add_func("/pc-board/serial", test_serial);
    g_test_add_func("/pc-board/firmware", test_firmware);
    g_test_add_func("/pc-board/qtest-adds-nothing", test_qtest_adds_nothing);
    g_test_add_func("/pc-board/state", test_board_state);
    return g_test_run();
}
