/*
 * Unit tests of the ACPI tables qnic-vmm writes (vmm/acpi.c, the DSDT of
 * vmm/dsdt.dsl) and of the board's PM registers (vmm/acpi-pm.c). The tables
 * (written by the pc board for a kernel-booting accelerator only) are read
 * back as an OS does: the RSDP by the legacy scan of the BIOS area
 * and by the address the loaders hand over, both checksums, the XSDT and
 * RSDT entries, each table's length and checksum, the FADT's register
 * blocks and the MADT's entries. Then ACPICA's own tools check them: iasl -d
 * disassembles every table (the binary data tables too) without a
 * complaint, the disassembled DSDT compiles again, and acpiexec loads the
 * DSDT with the FADT and evaluates _PRT, a slot's _STA and _EJ0, and the
 * GPE method. Those skip, with the reason, when acpica-tools is missing.
 */
#include "vmm/acpi.h"
#include "vmm/acpi-pm.h"
#include "vmm/mptable.h"
#include "vmm/pc.h"
#include "qnic/common.h"
#include "qnic/machine.h"
#include "test-isa-io.h"

#include <glib/gstdio.h>

#define RAM (1u << 20)

static uint8_t sum(const uint8_t *p, size_t n)
{
    uint8_t s = 0;

    for (size_t i = 0; i < n; i++) {
        s += p[i];
    }
    return s;
}

/* A table at guest address ADDR: signature, length within the area, a
 * zero checksum. */
static const uint8_t *table(const uint8_t *ram, uint64_t addr, const char *sig)
{
    g_assert_cmpuint(addr, >=, QNIC_ACPI_ADDR);
    g_assert_cmpuint(addr, <, QNIC_ACPI_ADDR + QNIC_ACPI_SIZE);
    const uint8_t *t = ram + addr;
    uint32_t len = qnic_ld32(t + 4);
    g_assert_cmpmem(t, 4, sig, 4);
    g_assert_cmpuint(addr + len, <=, QNIC_ACPI_ADDR + QNIC_ACPI_SIZE);
    if (strcmp(sig, "FACS") != 0) {
        g_assert_cmpuint(len, >=, 36);
        g_assert_cmpuint(sum(t, len), ==, 0);
        g_assert_cmpmem(t + 10, 6, "QNIC  ", 6);
    }
    return t;
}

/* The RSDP as the legacy scan finds it: 16-byte boundaries of 0xe0000-
 * 0xfffff, signature and the 20-byte checksum. */
static uint64_t scan_rsdp(const uint8_t *ram)
{
    for (uint64_t a = 0xe0000; a < 0x100000; a += 16) {
        if (memcmp(ram + a, "RSD PTR ", 8) == 0 && sum(ram + a, 20) == 0) {
            return a;
        }
    }
    return 0;
}

static const uint8_t *fadt_of(const uint8_t *ram)
{
    const uint8_t *rsdp = ram + scan_rsdp(ram);
    const uint8_t *xsdt = table(ram, qnic_ld64(rsdp + 24), "XSDT");
    return table(ram, qnic_ld64(xsdt + 36), "FACP");
}

static void test_layout(void)
{
    g_autofree uint8_t *ram = g_malloc0(RAM);
    size_t n = qnic_acpi_write(ram, RAM, 2);

    g_assert_cmpuint(n, >, 0);
    g_assert_cmpuint(n, <=, QNIC_ACPI_SIZE);
    uint64_t rsdp_addr = scan_rsdp(ram);
    g_assert_cmphex(rsdp_addr, ==, QNIC_ACPI_ADDR);
    g_assert_cmphex(qnic_acpi_rsdp_addr(ram, RAM), ==, rsdp_addr);
    const uint8_t *rsdp = ram + rsdp_addr;
    g_assert_cmpuint(rsdp[15], ==, 2);                      /* revision */
    g_assert_cmpuint(qnic_ld32(rsdp + 20), ==, 36);
    g_assert_cmpuint(sum(rsdp, 36), ==, 0);

    /* RSDT and XSDT name the same two tables. */
    const uint8_t *rsdt = table(ram, qnic_ld32(rsdp + 16), "RSDT");
    const uint8_t *xsdt = table(ram, qnic_ld64(rsdp + 24), "XSDT");
    g_assert_cmpuint(qnic_ld32(rsdt + 4), ==, 36 + 2 * 4);
    g_assert_cmpuint(qnic_ld32(xsdt + 4), ==, 36 + 2 * 8);
    for (unsigned i = 0; i < 2; i++) {
        g_assert_cmphex(qnic_ld32(rsdt + 36 + 4 * i), ==, qnic_ld64(xsdt + 36 + 8 * i));
    }
    table(ram, qnic_ld64(xsdt + 36), "FACP");
    table(ram, qnic_ld64(xsdt + 44), "APIC");

    /* FADT: the DSDT in both widths, the FACS in the 32-bit field only, the
     * SCI, the register blocks. */
    const uint8_t *fadt = fadt_of(ram);
    g_assert_cmpuint(qnic_ld32(fadt + 4), ==, 244);
    g_assert_cmphex(qnic_ld32(fadt + 40), ==, qnic_ld64(fadt + 140));
    g_assert_cmphex(qnic_ld64(fadt + 132), ==, 0);         /* X_FIRMWARE_CTRL */
    const uint8_t *facs = table(ram, qnic_ld32(fadt + 36), "FACS");
    g_assert_cmpuint((facs - ram) % 64, ==, 0);
    g_assert_cmpuint(qnic_ld32(facs + 4), ==, 64);
    const uint8_t *dsdt = table(ram, qnic_ld32(fadt + 40), "DSDT");
    g_assert_cmpuint(qnic_ld32(dsdt + 4), ==, qnic_acpi_dsdt_aml_len);
    g_assert_cmpmem(dsdt, qnic_acpi_dsdt_aml_len, qnic_acpi_dsdt_aml, qnic_acpi_dsdt_aml_len);
    g_assert_cmpuint(qnic_ld16(fadt + 46), ==, 9);          /* SCI_INT */
    g_assert_cmpuint(qnic_ld32(fadt + 48), ==, 0);          /* no SMI_CMD */
    g_assert_cmphex(qnic_ld32(fadt + 56), ==, QNIC_ACPI_PM1_EVT);
    g_assert_cmphex(qnic_ld32(fadt + 64), ==, QNIC_ACPI_PM1_CNT);
    g_assert_cmphex(qnic_ld32(fadt + 76), ==, QNIC_ACPI_PM_TMR);
    g_assert_cmphex(qnic_ld32(fadt + 80), ==, 0xafe0);      /* GPE0 */
    g_assert_cmpuint(fadt[88], ==, 4);
    g_assert_cmpuint(fadt[89], ==, 2);
    g_assert_cmpuint(fadt[91], ==, 4);
    g_assert_cmpuint(fadt[92], ==, 4);
    /* The extended blocks agree: I/O space, width = 8 x length. */
    g_assert_cmpuint(fadt[220], ==, 1);
    g_assert_cmpuint(fadt[221], ==, 32);
    g_assert_cmphex(qnic_ld64(fadt + 224), ==, 0xafe0);
    g_assert_cmphex(qnic_ld64(fadt + 152), ==, QNIC_ACPI_PM1_EVT);
    g_assert_cmphex(qnic_ld64(fadt + 176), ==, QNIC_ACPI_PM1_CNT);
    g_assert_cmphex(qnic_ld64(fadt + 212), ==, QNIC_ACPI_PM_TMR);
    g_assert_cmpuint(qnic_ld32(fadt + 112) & (1u << 20), ==, 0);    /* not HW-reduced */
    g_assert_cmpuint(qnic_ld16(fadt + 109) & 2, ==, 0);             /* no 8042 */
}

typedef struct Madt {
    unsigned lapics, ioapics, ioapic_id, isos, nmis;
    uint8_t lapic_id[QNIC_ACPI_MAX_CPUS];
    uint32_t ioapic_addr, gsi_base;
    int iso_gsi[16];
    unsigned iso_flags[16];
} Madt;

static void parse_madt(const uint8_t *ram, Madt *p)
{
    const uint8_t *rsdp = ram + scan_rsdp(ram);
    const uint8_t *xsdt = table(ram, qnic_ld64(rsdp + 24), "XSDT");
    const uint8_t *madt = table(ram, qnic_ld64(xsdt + 44), "APIC");
    uint32_t len = qnic_ld32(madt + 4);

    memset(p, 0, sizeof(*p));
    memset(p->iso_gsi, -1, sizeof(p->iso_gsi));
    g_assert_cmphex(qnic_ld32(madt + 36), ==, 0xfee00000);
    g_assert_cmphex(qnic_ld32(madt + 40), ==, 1);          /* PCAT_COMPAT */
    for (uint32_t off = 44; off < len; off += madt[off + 1]) {
        const uint8_t *e = madt + off;
        g_assert_cmpuint(e[1], >=, 2);
        g_assert_cmpuint(off + e[1], <=, len);
        switch (e[0]) {
        case 0:
            g_assert_cmpuint(e[1], ==, 8);
            g_assert_cmpuint(qnic_ld32(e + 4), ==, 1);      /* enabled */
            p->lapic_id[p->lapics++] = e[3];
            break;
        case 1:
            g_assert_cmpuint(e[1], ==, 12);
            p->ioapics++;
            p->ioapic_id = e[2];
            p->ioapic_addr = qnic_ld32(e + 4);
            p->gsi_base = qnic_ld32(e + 8);
            break;
        case 2:
            g_assert_cmpuint(e[1], ==, 10);
            g_assert_cmpuint(e[2], ==, 0);                  /* ISA */
            g_assert_cmpuint(e[3], <, 16);
            p->isos++;
            p->iso_gsi[e[3]] = qnic_ld32(e + 4);
            p->iso_flags[e[3]] = qnic_ld16(e + 8);
            break;
        case 4:
            g_assert_cmpuint(e[1], ==, 6);
            g_assert_cmpuint(e[2], ==, 0xff);
            g_assert_cmpuint(e[5], ==, 1);                  /* LINT1 */
            p->nmis++;
            break;
        default:
            g_assert_not_reached();
        }
    }
}

static void test_madt(void)
{
    g_autofree uint8_t *ram = g_malloc0(RAM);
    Madt p;

    g_assert_cmpuint(qnic_acpi_write(ram, RAM, 4), >, 0);
    parse_madt(ram, &p);
    g_assert_cmpuint(p.lapics, ==, 4);
    for (unsigned i = 0; i < 4; i++) {
        g_assert_cmpuint(p.lapic_id[i], ==, i);
    }
    g_assert_cmpuint(p.ioapics, ==, 1);
    g_assert_cmpuint(p.ioapic_id, ==, 4);
    g_assert_cmphex(p.ioapic_addr, ==, 0xfec00000);
    g_assert_cmpuint(p.gsi_base, ==, 0);
    g_assert_cmpuint(p.nmis, ==, 1);
    /* The SCI: IRQ 9 on GSI 9, level, active high. IRQ 0 stays on pin 0
     * (the KVM routing and the MP table): no override. */
    g_assert_cmpuint(p.isos, ==, 1);
    g_assert_cmpint(p.iso_gsi[9], ==, 9);
    g_assert_cmphex(p.iso_flags[9], ==, 0xd);
    g_assert_cmpint(p.iso_gsi[0], ==, -1);
}

/* Beside the MP table: both fit for the most vCPUs, neither overwrites the
 * other, and both sit in the BIOS area the memory map reserves. */
static void test_with_mptable(void)
{
    g_autofree uint8_t *ram = g_malloc0(RAM);
    unsigned n = QNIC_ACPI_MAX_CPUS;
    Madt p;

    size_t mp = qnic_mptable_write(ram, RAM, n);
    g_assert_cmpuint(mp, >, 0);
    g_assert_cmpuint(QNIC_MPTABLE_ADDR + mp, <=, QNIC_ACPI_ADDR);
    g_assert_cmpuint(qnic_acpi_write(ram, RAM, n), >, 0);
    g_assert_cmpuint(sum(ram + QNIC_MPTABLE_ADDR, 16), ==, 0);
    parse_madt(ram, &p);
    g_assert_cmpuint(p.lapics, ==, n);
    g_assert_cmpuint(p.lapic_id[n - 1], ==, n - 1);
    g_assert_cmpuint(QNIC_ACPI_ADDR + QNIC_ACPI_SIZE, ==, 0x100000);
}

static void test_refused(void)
{
    g_autofree uint8_t *ram = g_malloc0(RAM);

    g_assert_cmpuint(qnic_acpi_write(ram, QNIC_ACPI_ADDR + 0x100, 1), ==, 0);
    g_assert_cmpuint(qnic_acpi_write(ram, RAM, 0), ==, 0);
    g_assert_cmpuint(qnic_acpi_write(ram, RAM, QNIC_ACPI_MAX_CPUS + 1), ==, 0);
    g_assert_cmpuint(qnic_acpi_rsdp_addr(ram, RAM), ==, 0);     /* nothing written */
    g_assert_cmpuint(qnic_acpi_write(ram, RAM, 1), >, 0);
    g_assert_cmphex(qnic_acpi_rsdp_addr(ram, RAM), ==, QNIC_ACPI_ADDR);
    ram[QNIC_ACPI_ADDR + 30] ^= 1;      /* beyond the first checksum */
    g_assert_cmpuint(qnic_acpi_rsdp_addr(ram, RAM), ==, 0);
    g_assert_cmpuint(qnic_acpi_rsdp_addr(ram, QNIC_ACPI_ADDR), ==, 0);
}

/* ---- the PM registers ---- */

static uint64_t in(QnicMachine *m, uint16_t port, unsigned size)
{
    uint64_t v = 0;

    g_assert_true(qnic_as_load(&m->io, port, size, &v));
    return v;
}

static void test_pm(void)
{
    QnicMachine *m = isa_test_machine(NULL);
    QnicAcpiPm pm = { 0 };

    qnic_acpi_pm_init(&pm, &m->io);
    /* Always in ACPI mode; the enable and control bits stick, SLP_EN and
     * GBL_RLS do not; no status bit is ever set. */
    g_assert_cmphex(in(m, QNIC_ACPI_PM1_CNT, 2), ==, QNIC_ACPI_PM1_SCI_EN);
    g_assert_true(qnic_as_store(&m->io, QNIC_ACPI_PM1_EVT + 2, 2, 0x0121));
    g_assert_cmphex(in(m, QNIC_ACPI_PM1_EVT + 2, 2), ==, 0x0121);
    g_assert_cmphex(in(m, QNIC_ACPI_PM1_EVT, 4), ==, 0x01210000);
    g_assert_true(qnic_as_store(&m->io, QNIC_ACPI_PM1_EVT, 2, 0xffff));
    g_assert_cmphex(in(m, QNIC_ACPI_PM1_EVT, 2), ==, 0);
    g_assert_true(qnic_as_store(&m->io, QNIC_ACPI_PM1_CNT, 2, 0x3c06));
    g_assert_cmphex(in(m, QNIC_ACPI_PM1_CNT, 2), ==, 0x1c03);

    /* The timer runs at 3.579545 MHz: 10 ms of it, within a wide margin. */
    uint32_t t0 = in(m, QNIC_ACPI_PM_TMR, 4);
    g_usleep(10000);
    uint32_t t1 = in(m, QNIC_ACPI_PM_TMR, 4);
    g_assert_cmpuint(t1 - t0, >=, 35795);
    g_assert_cmpuint(t1 - t0, <, 35795 * 1000);

    qnic_acpi_pm_cleanup(&pm);
    g_assert_false(qnic_as_find(&m->io, QNIC_ACPI_PM1_EVT, NULL));
    g_assert_false(qnic_as_find(&m->io, QNIC_ACPI_PM_TMR, NULL));
    qnic_machine_free(m);
}

/* The pc board writes the tables and maps the PM registers for an
 * accelerator that boots a kernel, and neither under qtest. */
static void test_board(void)
{
    static const QnicAccel fake_kvm = { .name = "fake", .boots_kernel = true };
    static const QnicAccel fake_qtest = { .name = "fake-qtest" };
    QnicVmmConfig cfg = { .smp = 3 };
    QnicMachine *m = isa_test_machine(NULL);
    QnicPcBoard b = { 0 };
    Madt p;

    g_assert_true(qnic_pc_board_ready(&b, &fake_kvm, NULL, &cfg, m, NULL));
    g_assert_cmphex(qnic_acpi_rsdp_addr(m->ram, m->below_4g), ==, QNIC_ACPI_ADDR);
    parse_madt(m->ram, &p);
    g_assert_cmpuint(p.lapics, ==, 3);
    g_assert_cmphex(in(m, QNIC_ACPI_PM1_CNT, 2), ==, QNIC_ACPI_PM1_SCI_EN);
    qnic_pc_board_cleanup(&b);
    g_assert_false(qnic_as_find(&m->io, QNIC_ACPI_PM1_EVT, NULL));
    qnic_machine_free(m);

    m = isa_test_machine(NULL);
    b = (QnicPcBoard){ 0 };
    g_assert_true(qnic_pc_board_ready(&b, &fake_qtest, NULL, &cfg, m, NULL));
    g_assert_cmphex(qnic_acpi_rsdp_addr(m->ram, m->below_4g), ==, 0);
    g_assert_false(qnic_as_find(&m->io, QNIC_ACPI_PM1_EVT, NULL));
    qnic_pc_board_cleanup(&b);
    qnic_machine_free(m);
}

/* ---- ACPICA's tools ---- */

/* Run ARGV in DIR; its output (both streams) in *out. */
static int run(const char *dir, const char *const *argv, char **out)
{
    g_autofree char *err = NULL;
    int status = -1;
    GError *gerr = NULL;

    g_assert_true(g_spawn_sync(dir, (char **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL,
                               out, &err, &status, &gerr));
    g_assert_no_error(gerr);
    char *both = g_strconcat(*out, err, NULL);
    g_free(*out);
    *out = both;
    return status;
}

/* Write the tables (2 vCPUs) to files named after their signatures in a
 * new temporary directory. */
static char *dump_tables(void)
{
    g_autofree uint8_t *ram = g_malloc0(RAM);
    g_assert_cmpuint(qnic_acpi_write(ram, RAM, 2), >, 0);
    char *dir = g_dir_make_tmp("qnic-acpi-XXXXXX", NULL);
    const uint8_t *rsdp = ram + scan_rsdp(ram);
    const uint8_t *xsdt = table(ram, qnic_ld64(rsdp + 24), "XSDT");
    const uint8_t *fadt = fadt_of(ram);
    const uint8_t *tables[] = {
        ram + qnic_ld32(fadt + 40), fadt, ram + qnic_ld64(xsdt + 44), xsdt,
        ram + qnic_ld32(rsdp + 16), ram + qnic_ld32(fadt + 36),
    };
    const char *names[] = { "dsdt", "facp", "apic", "xsdt", "rsdt", "facs" };

    g_assert_nonnull(dir);
    for (unsigned i = 0; i < QNIC_ARRAY_SIZE(tables); i++) {
        g_autofree char *path = g_strdup_printf("%s/%s.dat", dir, names[i]);
        g_assert_true(g_file_set_contents(path, (const char *)tables[i],
                                          qnic_ld32(tables[i] + 4), NULL));
    }
    return dir;
}

static void rm_dir(const char *dir)
{
    GDir *d = g_dir_open(dir, 0, NULL);
    const char *name;

    while (d && (name = g_dir_read_name(d))) {
        g_autofree char *path = g_build_filename(dir, name, NULL);
        g_unlink(path);
    }
    if (d) {
        g_dir_close(d);
    }
    g_rmdir(dir);
}

static bool have_tool(const char *tool)
{
    g_autofree char *path = g_find_program_in_path(tool);

    if (!path) {
        g_autofree char *msg = g_strdup_printf("%s not found (Debian package "
                                               "acpica-tools, scripts/install-deps.sh)", tool);
        g_test_skip(msg);
    }
    return path != NULL;
}

/* No diagnostic from ACPICA ("Error 6126 -", "Warning 3073 -", a bad
 * checksum, a table cut short, an exception code), though summary lines
 * such as "0 Errors, 0 Warnings" may appear. */
static void assert_clean(const char *what, const char *text)
{
    static const char *const bad =
        "(Error|Warning|Remark) +[0-9]{4}|Incorrect checksum|Invalid|"
        "terminates in the middle|mismatch|AE_[A-Z_]+|[1-9][0-9]* Errors|[1-9][0-9]* Warnings";
    g_autoptr(GMatchInfo) match = NULL;
    g_autoptr(GRegex) re = g_regex_new(bad, 0, 0, NULL);

    if (g_regex_match(re, text, 0, &match)) {
        g_autofree char *word = g_match_info_fetch(match, 0);
        g_test_message("%s:\n%s", what, text);
        g_test_fail_printf("%s reports \"%s\"", what, word);
    }
}

static void test_iasl_disassembles(void)
{
    if (!have_tool("iasl")) {
        return;
    }
    g_autofree char *dir = dump_tables();
    const char *names[] = { "dsdt", "facp", "apic", "xsdt", "rsdt", "facs" };

    for (unsigned i = 0; i < QNIC_ARRAY_SIZE(names); i++) {
        g_autofree char *file = g_strdup_printf("%s.dat", names[i]);
        g_autofree char *out = NULL, *dsl = NULL, *dsl_path = NULL;
        const char *argv[] = { "iasl", "-d", file, NULL };
        g_assert_cmpint(run(dir, argv, &out), ==, 0);
        assert_clean(file, out);
        dsl_path = g_strdup_printf("%s/%s.dsl", dir, names[i]);
        g_assert_true(g_file_get_contents(dsl_path, &dsl, NULL, NULL));
        assert_clean(dsl_path, dsl);
    }
    /* The disassembled DSDT is valid ASL again. */
    g_autofree char *out = NULL;
    const char *argv[] = { "iasl", "-p", "again", "dsdt.dsl", NULL };
    g_assert_cmpint(run(dir, argv, &out), ==, 0);
    assert_clean("iasl dsdt.dsl", out);
    rm_dir(dir);
}

/* acpiexec loads the DSDT with the FADT (its GPE block) and runs the
 * methods an OS runs. Its simulated PCI config space and I/O ports read 0
 * where nothing was written. */
static void test_acpiexec(void)
{
    if (!have_tool("acpiexec")) {
        return;
    }
    g_autofree char *dir = dump_tables();
    g_autofree char *out = NULL;
    const char *argv[] = {
        "acpiexec", "-b",
        "evaluate \\_SB.PCI0._PRT; evaluate \\_SB.PCI0.S03._STA; "
        "evaluate \\_SB.PCI0.S1F._EJ0 1; evaluate \\_GPE._E01; evaluate \\_SB.PCI0._CRS",
        "dsdt.dat", "facp.dat", NULL,
    };

    g_assert_cmpint(run(dir, argv, &out), ==, 0);
    /* acpiexec's own interface self-tests (aetests.c) assume its built-in
     * tables: a PM2 control block (optional, absent here as on QEMU's pc)
     * and GPE handlers of its test DSDT. Their lines are not about ours. */
    g_auto(GStrv) lines = g_strsplit(out, "\n", -1);
    g_autoptr(GString) ours = g_string_new(NULL);
    for (char **l = lines; *l; l++) {
        if (!strstr(*l, "(aetests-")) {
            g_string_append_printf(ours, "%s\n", *l);
        }
    }
    assert_clean("acpiexec", ours->str);
    g_assert_nonnull(strstr(out, "Table [DSDT: QNICDSDT]"));
    /* GPE0: 2 status bytes, 16 GPEs, _E01 found. */
    g_assert_nonnull(strstr(out, "Initialized GPE 00 to 0F"));
    /* The routing of slot 3 pin B (16 + ((3 + 1) & 3) = 0x10) and of slot
     * 31 pin D (0x12) among the 128 entries. */
    g_assert_nonnull(strstr(out, "returned object"));
    g_assert_nonnull(strstr(out, "Contains 128 Elements"));
    g_assert_nonnull(strstr(out,
        "[Integer] = 000000000003FFFF\n      [Integer] = 0000000000000001\n"
        "      [Integer] = 0000000000000000\n      [Integer] = 0000000000000010"));
    g_assert_nonnull(strstr(out,
        "[Integer] = 00000000001FFFFF\n      [Integer] = 0000000000000003\n"
        "      [Integer] = 0000000000000000\n      [Integer] = 0000000000000012"));
    rm_dir(dir);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/acpi/layout", test_layout);
    g_test_add_func("/acpi/madt", test_madt);
    g_test_add_func("/acpi/with-mptable", test_with_mptable);
    g_test_add_func("/acpi/refused", test_refused);
    g_test_add_func("/acpi/pm", test_pm);
    g_test_add_func("/acpi/board", test_board);
    g_test_add_func("/acpi/iasl-disassembles", test_iasl_disassembles);
    g_test_add_func("/acpi/acpiexec", test_acpiexec);
    return g_test_run();
}
