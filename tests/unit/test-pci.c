/*
 * The PCI core: BAR sizing and mapping for each BAR kind, the expansion ROM
 * BAR, the capability chain, INTx routing, and MSI-X masking with pending
 * bits, on a bare device built in the test.
 */
#include "qnic/machine.h"
#include "qnic/pci.h"
#include "qnic/log.h"
#include "qnic/state.h"
#include "../lib/state-patch.h"

static const QnicDeviceClass tdev_cls = {
    .name = "test-pci", .bus = "pci", .instance_size = sizeof(QnicPciDevice),
};

typedef struct {
    uint64_t last_msi_addr;
    uint32_t last_msi_data;
    unsigned nmsi;
    int gsi[QNIC_NUM_GSI];
} Sink;

static void sink_gsi(void *opaque, unsigned gsi, int level)
{
    ((Sink *)opaque)->gsi[gsi] = level;
}

static void sink_msi(void *opaque, uint64_t addr, uint32_t data)
{
    Sink *s = opaque;
    s->last_msi_addr = addr;
    s->last_msi_data = data;
    s->nmsi++;
}

static uint64_t dummy_read(void *o, uint64_t a, unsigned s) { return 0x5a5a5a5a; }
static void dummy_write(void *o, uint64_t a, uint64_t v, unsigned s) { }
static const QnicMemOps dummy_ops = { .read = dummy_read, .write = dummy_write };

typedef struct {
    QnicMachine *m;
    QnicPciDevice *d;
    QnicRegion io, mem32, mem64;
    Sink sink;
} Fixture;

static void fixture_init(Fixture *f, const char *addr)
{
    QnicMachineConfig cfg = { .ram_size = 32 << 20, .set_gsi = sink_gsi, .msi = sink_msi,
                              .opaque = &f->sink };
    g_autoptr(GError) err = NULL;
    QnicPciIds ids = { .vendor_id = 0x1234, .device_id = 0x5678, .revision = 1,
                       .class_code = 0x020000, .interrupt_pin = 1 };
    QnicOpts *o = qnic_opts_new("device");

    f->m = qnic_machine_new(&cfg, &err);
    g_assert_no_error(err);
    f->d = g_new0(QnicPciDevice, 1);
    f->d->dev.cls = &tdev_cls;
    f->d->dev.machine = f->m;
    if (addr) {
        qnic_opts_set(o, "addr", addr);
    }
    g_assert_true(qnic_pci_device_init(f->d, o, &ids, NULL, &err));
    g_assert_no_error(err);
    qnic_opts_free(o);
    qnic_region_init_io(&f->io, &f->d->dev, &dummy_ops, f, "io", 32);
    qnic_region_init_io(&f->mem32, &f->d->dev, &dummy_ops, f, "mem32", 4096);
    qnic_region_init_io(&f->mem64, &f->d->dev, &dummy_ops, f, "mem64", 16384);
    qnic_pci_register_bar(f->d, 0, QNIC_PCI_BAR_IO, &f->io);
    qnic_pci_register_bar(f->d, 1, QNIC_PCI_BAR_MEM32, &f->mem32);
    qnic_pci_register_bar(f->d, 2, QNIC_PCI_BAR_MEM64 | QNIC_PCI_BAR_PREFETCH, &f->mem64);
}

static void fixture_fini(Fixture *f)
{
    qnic_pci_device_exit(f->d);
    g_free(f->d);
    qnic_machine_free(f->m);
}

static uint32_t cfg_read(Fixture *f, unsigned off, unsigned len)
{
    uint64_t v;
    qnic_as_store(&f->m->io, 0xcf8, 4, 0x80000000u | (f->d->devfn << 8) | (off & 0xfc));
    qnic_as_load(&f->m->io, 0xcfc + (off & 3), len, &v);
    return (uint32_t)v;
}

static void cfg_write(Fixture *f, unsigned off, unsigned len, uint32_t v)
{
    qnic_as_store(&f->m->io, 0xcf8, 4, 0x80000000u | (f->d->devfn << 8) | (off & 0xfc));
    qnic_as_store(&f->m->io, 0xcfc + (off & 3), len, v);
}

static void test_bar_sizing(void)
{
    Fixture f = { 0 };

    fixture_init(&f, "4");
    g_assert_cmpint(f.d->devfn, ==, 0x20);
    g_assert_cmphex(cfg_read(&f, 0, 4), ==, 0x56781234);
    /* I/O: size 32, type bit 1. */
    cfg_write(&f, 0x10, 4, 0xffffffff);
    g_assert_cmphex(cfg_read(&f, 0x10, 4), ==, 0xffffffe1);
    /* Memory 32-bit 4 KiB. */
    cfg_write(&f, 0x14, 4, 0xffffffff);
    g_assert_cmphex(cfg_read(&f, 0x14, 4), ==, 0xfffff000);
    /* Memory 64-bit prefetchable 16 KiB: low dword with type 0xc, high all ones. */
    cfg_write(&f, 0x18, 4, 0xffffffff);
    cfg_write(&f, 0x1c, 4, 0xffffffff);
    g_assert_cmphex(cfg_read(&f, 0x18, 4), ==, 0xffffc00c);
    g_assert_cmphex(cfg_read(&f, 0x1c, 4), ==, 0xffffffff);
    /* Unimplemented BARs read 0 after sizing. */
    cfg_write(&f, 0x20, 4, 0xffffffff);
    g_assert_cmphex(cfg_read(&f, 0x20, 4), ==, 0);
    /* Sized but not enabled: nothing is mapped. */
    g_assert_null(qnic_as_find(&f.m->mem, 0xfffff000, NULL));
    fixture_fini(&f);
}

static void test_bar_mapping(void)
{
    Fixture f = { 0 };
    uint64_t v;

    fixture_init(&f, NULL);
    g_assert_cmpint(QNIC_PCI_SLOT(f.d->devfn), ==, 2);   /* first free slot */
    cfg_write(&f, 0x10, 4, 0xc000);
    cfg_write(&f, 0x14, 4, 0xe0000000);
    cfg_write(&f, 0x18, 4, 0xe0010000);
    cfg_write(&f, 0x1c, 4, 0x1);       /* 64-bit BAR above 4 GiB */
    g_assert_cmphex(qnic_pci_bar_addr(f.d, 0), ==, QNIC_PCI_BAR_UNMAPPED);
    cfg_write(&f, 0x04, 2, PCI_COMMAND_IO);
    g_assert_cmphex(qnic_pci_bar_addr(f.d, 0), ==, 0xc000);
    g_assert_cmphex(qnic_pci_bar_addr(f.d, 1), ==, QNIC_PCI_BAR_UNMAPPED);
    g_assert_true(qnic_as_load(&f.m->io, 0xc004, 4, &v));
    g_assert_cmphex(v, ==, 0x5a5a5a5a);
    cfg_write(&f, 0x04, 2, PCI_COMMAND_IO | PCI_COMMAND_MEMORY);
    g_assert_cmphex(qnic_pci_bar_addr(f.d, 1), ==, 0xe0000000);
    g_assert_cmphex(qnic_pci_bar_addr(f.d, 2), ==, 0x1e0010000ull);
    g_assert_true(qnic_as_find(&f.m->mem, 0x1e0010000ull + 100, NULL) == &f.mem64);
    /* Moving a BAR moves the mapping. */
    cfg_write(&f, 0x14, 4, 0xe0002000);
    g_assert_null(qnic_as_find(&f.m->mem, 0xe0000000, NULL));
    g_assert_true(qnic_as_find(&f.m->mem, 0xe0002000, NULL) == &f.mem32);
    /* Address 0 never decodes. */
    cfg_write(&f, 0x14, 4, 0);
    g_assert_cmphex(qnic_pci_bar_addr(f.d, 1), ==, QNIC_PCI_BAR_UNMAPPED);
    /* Bus mastering gates DMA. */
    g_assert_false(f.d->dev.dma_enabled);
    cfg_write(&f, 0x04, 2, PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    g_assert_true(f.d->dev.dma_enabled);
    /* Reset unmaps everything and clears the BAR registers. */
    qnic_pci_device_reset(f.d);
    g_assert_cmphex(qnic_pci_bar_addr(f.d, 0), ==, QNIC_PCI_BAR_UNMAPPED);
    g_assert_cmphex(cfg_read(&f, 0x10, 4), ==, 1);
    g_assert_false(f.d->dev.dma_enabled);
    fixture_fini(&f);
}

static void test_addr_errors(void)
{
    Fixture f = { 0 };
    QnicPciDevice *d2 = g_new0(QnicPciDevice, 1);
    QnicPciIds ids = { .vendor_id = 1, .device_id = 2 };
    QnicOpts *o = qnic_opts_new("device");
    GError *err = NULL;

    fixture_init(&f, "5.0");
    d2->dev.cls = &tdev_cls;
    d2->dev.machine = f.m;
    qnic_opts_set(o, "addr", "5");
    g_assert_false(qnic_pci_device_init(d2, o, &ids, NULL, &err));
    g_assert_nonnull(strstr(err->message, "slot 5 function 0 not available"));
    g_clear_error(&err);
    qnic_opts_set(o, "addr", "20");
    g_assert_false(qnic_pci_device_init(d2, o, &ids, NULL, &err));
    g_assert_nonnull(strstr(err->message, "addr"));
    g_clear_error(&err);
    qnic_opts_set(o, "addr", "1.0");       /* PIIX3 */
    g_assert_false(qnic_pci_device_init(d2, o, &ids, NULL, &err));
    g_clear_error(&err);
    qnic_opts_set(o, "romfile", "/nonexistent/rom.bin");
    qnic_opts_set(o, "addr", "6");
    g_assert_false(qnic_pci_device_init(d2, o, &ids, NULL, &err));
    g_assert_nonnull(strstr(err->message, "romfile"));
    g_clear_error(&err);
    /* Slot 6 must have been released by the failed init. */
    g_assert_null(qnic_pci_find_devfn(f.m->pci, QNIC_PCI_DEVFN(6, 0)));
    qnic_opts_free(o);
    g_free(d2);
    fixture_fini(&f);
}

static void test_rom_bar(void)
{
    Fixture f = { 0 };
    g_autofree char *path = NULL;
    g_autoptr(GError) err = NULL;
    int fd = g_file_open_tmp("rom-XXXXXX", &path, &err);
    uint8_t rom[5000] = { 0x55, 0xaa, 10 };
    QnicPciDevice *d2 = g_new0(QnicPciDevice, 1);
    QnicPciIds ids = { .vendor_id = 1, .device_id = 2 };
    QnicOpts *o = qnic_opts_new("device");
    uint64_t v;

    g_assert_cmpint(fd, >=, 0);
    close(fd);
    g_assert_true(g_file_set_contents(path, (char *)rom, sizeof(rom), NULL));
    fixture_init(&f, NULL);
    d2->dev.cls = &tdev_cls;
    d2->dev.machine = f.m;
    qnic_opts_set(o, "romfile", path);
    qnic_opts_set(o, "addr", "7");
    g_assert_true(qnic_pci_device_init(d2, o, &ids, NULL, &err));
    g_assert_no_error(err);
    /* 5000 bytes -> an 8 KiB ROM BAR. */
    qnic_pci_config_write(d2, PCI_ROM_ADDRESS, 0xfffffffe, 4);
    g_assert_cmphex(qnic_pci_config_read(d2, PCI_ROM_ADDRESS, 4), ==, 0xffffe000);
    qnic_pci_config_write(d2, PCI_ROM_ADDRESS, 0xe0100000 | PCI_ROM_ADDRESS_ENABLE, 4);
    qnic_pci_config_write(d2, PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
    g_assert_true(qnic_as_load(&f.m->mem, 0xe0100000, 2, &v));
    g_assert_cmphex(v, ==, 0xaa55);
    /* Disabled ROM decode: gone. */
    qnic_pci_config_write(d2, PCI_ROM_ADDRESS, 0xe0100000, 4);
    g_assert_null(qnic_as_find(&f.m->mem, 0xe0100000, NULL));
    qnic_opts_free(o);
    qnic_pci_device_exit(d2);
    g_free(d2);
    unlink(path);
    fixture_fini(&f);
}

static void test_capabilities(void)
{
    Fixture f = { 0 };
    g_autoptr(GError) err = NULL;
    uint8_t a, b, c;

    fixture_init(&f, NULL);
    g_assert_cmpuint(cfg_read(&f, 0x06, 2) & PCI_STATUS_CAP_LIST, ==, 0);
    a = qnic_pci_add_capability(f.d, PCI_CAP_ID_VNDR, 0, 16, &err);
    b = qnic_pci_add_capability(f.d, PCI_CAP_ID_VNDR, 0, 10, &err);
    c = qnic_pci_add_capability(f.d, PCI_CAP_ID_PM, 0x80, 8, &err);
    g_assert_no_error(err);
    g_assert_cmphex(a, ==, 0x40);
    g_assert_cmphex(b, ==, 0x50);     /* after 16 bytes */
    g_assert_cmphex(c, ==, 0x80);
    /* Head insertion: the list reads c -> b -> a -> end. */
    g_assert_cmphex(cfg_read(&f, 0x34, 1), ==, 0x80);
    g_assert_cmphex(cfg_read(&f, 0x81, 1), ==, 0x50);
    g_assert_cmphex(cfg_read(&f, 0x51, 1), ==, 0x40);
    g_assert_cmphex(cfg_read(&f, 0x41, 1), ==, 0x00);
    g_assert_cmpuint(cfg_read(&f, 0x06, 2) & PCI_STATUS_CAP_LIST, !=, 0);
    /* The next one goes after b, dword aligned (b took 12 bytes). */
    g_assert_cmphex(qnic_pci_add_capability(f.d, PCI_CAP_ID_VNDR, 0, 4, &err), ==, 0x5c);
    /* Overlap is refused. */
    g_assert_cmphex(qnic_pci_add_capability(f.d, PCI_CAP_ID_VNDR, 0x44, 4, &err), ==, 0);
    g_assert_nonnull(err);
    /* Capability bytes are read-only. */
    cfg_write(&f, 0x40, 4, 0xffffffff);
    g_assert_cmphex(cfg_read(&f, 0x40, 1), ==, PCI_CAP_ID_VNDR);
    g_assert_cmphex(qnic_pci_find_capability(f.d, PCI_CAP_ID_PM), ==, 0x80);
    fixture_fini(&f);
}

static void test_intx(void)
{
    Fixture f = { 0 };
    unsigned gsi;

    fixture_init(&f, "3");
    gsi = qnic_pci_intx_gsi(f.d->devfn, 1);
    g_assert_cmpuint(gsi, ==, 16 + 3);
    qnic_pci_set_irq(f.d, 1);
    g_assert_cmpint(f.sink.gsi[gsi], ==, 1);
    g_assert_cmpuint(cfg_read(&f, 0x06, 2) & PCI_STATUS_INTERRUPT, !=, 0);
    /* INTx disable drops the line, status still shows the wish. */
    cfg_write(&f, 0x04, 2, PCI_COMMAND_INTX_DISABLE);
    g_assert_cmpint(f.sink.gsi[gsi], ==, 0);
    cfg_write(&f, 0x04, 2, 0);
    g_assert_cmpint(f.sink.gsi[gsi], ==, 1);
    /* Firmware-style PIRQ routing: slot 3's INTA is PIRQC (QEMU's i440FX
     * swizzle, (slot - 1 + pin - 1) & 3); PIRQD elsewhere changes nothing,
     * PIRQC -> ISA IRQ 11 takes the line there. */
    qnic_as_store(&f.m->io, 0xcf8, 4, 0x80000800u | 0x60);
    qnic_as_store(&f.m->io, 0xcfc + 3, 1, 10);
    g_assert_cmpint(f.sink.gsi[gsi], ==, 1);
    g_assert_cmpint(f.sink.gsi[10], ==, 0);
    qnic_as_store(&f.m->io, 0xcfc + 2, 1, 11);
    g_assert_cmpint(f.sink.gsi[gsi], ==, 0);
    g_assert_cmpint(f.sink.gsi[11], ==, 1);
    qnic_pci_set_irq(f.d, 0);
    g_assert_cmpint(f.sink.gsi[11], ==, 0);
    fixture_fini(&f);
}

static void test_msix(void)
{
    Fixture f = { 0 };
    g_autoptr(GError) err = NULL;
    uint8_t cap;
    uint64_t tbl;
    uint64_t v;

    fixture_init(&f, NULL);
    g_assert_true(qnic_msix_init_exclusive_bar(f.d, 3, 4, &err));
    g_assert_no_error(err);
    cap = qnic_pci_find_capability(f.d, PCI_CAP_ID_MSIX);
    g_assert_cmphex(cap, !=, 0);
    g_assert_cmphex(cfg_read(&f, cap + 2, 2), ==, 2);           /* table size - 1 */
    g_assert_cmphex(cfg_read(&f, cap + 4, 4), ==, 4);           /* table at 0, BIR 4 */
    g_assert_cmphex(cfg_read(&f, cap + 8, 4), ==, 0x800 | 4);   /* PBA at 2 KiB */
    cfg_write(&f, 0x20, 4, 0xe0004000);
    cfg_write(&f, 0x04, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    tbl = 0xe0004000;
    /* Vector 1 -> MSI window. */
    qnic_as_store(&f.m->mem, tbl + 16, 4, 0xfee01000);
    qnic_as_store(&f.m->mem, tbl + 20, 4, 0);
    qnic_as_store(&f.m->mem, tbl + 24, 4, 0x4041);
    /* Not enabled: notify does nothing, sets nothing. */
    qnic_msix_notify(f.d, 1);
    g_assert_cmpuint(f.sink.nmsi, ==, 0);
    cfg_write(&f, cap + 3, 1, 0x80);   /* enable */
    /* Still masked per vector (reset state): pending bit, no message. */
    qnic_msix_notify(f.d, 1);
    g_assert_cmpuint(f.sink.nmsi, ==, 0);
    qnic_as_load(&f.m->mem, tbl + 0x800, 4, &v);
    g_assert_cmphex(v, ==, 0x2);
    /* Unmask: the pending message goes out and the bit clears. */
    qnic_as_store(&f.m->mem, tbl + 28, 4, 0);
    g_assert_cmpuint(f.sink.nmsi, ==, 1);
    g_assert_cmphex(f.sink.last_msi_addr, ==, 0xfee01000);
    g_assert_cmphex(f.sink.last_msi_data, ==, 0x4041);
    qnic_as_load(&f.m->mem, tbl + 0x800, 4, &v);
    g_assert_cmphex(v, ==, 0);
    /* Function mask holds it back, clearing the function mask sends it. */
    cfg_write(&f, cap + 3, 1, 0xc0);
    qnic_msix_notify(f.d, 1);
    g_assert_cmpuint(f.sink.nmsi, ==, 1);
    g_assert_true(qnic_msix_is_masked(f.d, 1));
    cfg_write(&f, cap + 3, 1, 0x80);
    g_assert_cmpuint(f.sink.nmsi, ==, 2);
    /* Vector to RAM (as qtest tests use): a DMA write lands in memory. */
    qnic_as_store(&f.m->mem, tbl + 16, 4, 0x10000);
    qnic_msix_notify(f.d, 1);
    qnic_as_load(&f.m->mem, 0x10000, 4, &v);
    g_assert_cmphex(v, ==, 0x4041);
    /* Bus mastering off: no message at all. */
    cfg_write(&f, 0x04, 2, PCI_COMMAND_MEMORY);
    qnic_as_store(&f.m->mem, tbl + 16, 4, 0xfee00000);
    qnic_msix_notify(f.d, 1);
    g_assert_cmpuint(f.sink.nmsi, ==, 2);
    /* The PBA is read-only; out-of-table vectors are ignored. */
    qnic_as_store(&f.m->mem, tbl + 0x800, 4, 0xff);
    qnic_as_load(&f.m->mem, tbl + 0x800, 4, &v);
    g_assert_cmphex(v, ==, 0);
    qnic_msix_notify(f.d, 7);
    fixture_fini(&f);
}

static void test_msi(void)
{
    Fixture f = { 0 };
    g_autoptr(GError) err = NULL;

    fixture_init(&f, NULL);
    g_assert_true(qnic_msi_init(f.d, 0, 4, true, true, &err));
    uint8_t cap = f.d->msi_cap;
    cfg_write(&f, 0x04, 2, PCI_COMMAND_MASTER);
    cfg_write(&f, cap + 4, 4, 0xfee00000);
    cfg_write(&f, cap + 12, 2, 0x40);
    cfg_write(&f, cap + 2, 2, PCI_MSI_FLAGS_ENABLE | (2 << 4));   /* 4 vectors */
    qnic_msi_notify(f.d, 3);
    g_assert_cmpuint(f.sink.nmsi, ==, 1);
    g_assert_cmphex(f.sink.last_msi_data, ==, 0x43);
    cfg_write(&f, cap + 16, 4, 1 << 2);     /* mask vector 2 */
    qnic_msi_notify(f.d, 2);
    g_assert_cmpuint(f.sink.nmsi, ==, 1);
    cfg_write(&f, cap + 16, 4, 0);
    g_assert_cmpuint(f.sink.nmsi, ==, 2);
    g_assert_cmphex(f.sink.last_msi_data, ==, 0x42);
    fixture_fini(&f);
}

/* ---- device state ---- */

/* A function as a guest leaves it: BARs placed and enabled, MSI-X on with
 * vector 1 programmed and pending (masked), INTx asserted. */
static void state_program(Fixture *f, uint8_t cap)
{
    cfg_write(f, 0x10, 4, 0xc000);
    cfg_write(f, 0x14, 4, 0xe0000000);
    cfg_write(f, 0x18, 4, 0xe0010000);
    cfg_write(f, 0x1c, 4, 0x1);
    cfg_write(f, 0x20, 4, 0xe0004000);
    cfg_write(f, 0x3c, 1, 11);
    cfg_write(f, 0x04, 2, PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    cfg_write(f, cap + 3, 1, 0x80);
    qnic_as_store(&f->m->mem, 0xe0004000 + 16, 4, 0xfee01000);
    qnic_as_store(&f->m->mem, 0xe0004000 + 24, 4, 0x4041);
    qnic_msix_notify(f->d, 1);
    qnic_pci_set_irq(f->d, 1);
}

static void state_fixture(Fixture *f, unsigned vectors)
{
    g_autoptr(GError) err = NULL;

    fixture_init(f, "3");
    g_assert_true(qnic_msix_init_exclusive_bar(f->d, vectors, 4, &err));
    g_assert_no_error(err);
}

static GByteArray *state_save(Fixture *f)
{
    GByteArray *b = g_byte_array_new();
    qnic_pci_state_save(f->d, b);
    return b;
}

static bool state_load(Fixture *f, GByteArray *b, GError **errp)
{
    QnicStateReader r;
    QnicPciState *s;

    qnic_state_reader_init(&r, b->data, b->len);
    s = qnic_pci_state_read(f->d, &r, errp);
    if (!s) {
        return false;
    }
    qnic_pci_state_apply(f->d, s);
    qnic_pci_state_free(s);
    return true;
}

/* A stream f must refuse with an error containing msg, leaving f's state
 * byte for byte as it was. */
static void state_refused(Fixture *f, GByteArray *b, const char *msg)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GByteArray) before = state_save(f);
    g_autoptr(GByteArray) after = NULL;

    g_assert_false(state_load(f, b, &err));
    g_assert_nonnull(err);
    if (!strstr(err->message, msg)) {
        g_error("expected \"%s\" in \"%s\"", msg, err->message);
    }
    after = state_save(f);
    g_assert_cmpmem(before->data, before->len, after->data, after->len);
}

static void test_state_roundtrip(void)
{
    Fixture a = { 0 }, b = { 0 };
    g_autoptr(GError) err = NULL;
    g_autoptr(GByteArray) sa = NULL, sb = NULL;
    g_autofree char *da = NULL, *db = NULL;
    uint8_t cap;
    uint64_t v;
    unsigned gsi;

    state_fixture(&a, 3);
    state_fixture(&b, 3);
    cap = qnic_pci_find_capability(a.d, PCI_CAP_ID_MSIX);
    state_program(&a, cap);
    sa = state_save(&a);
    g_assert_true(state_load(&b, sa, &err));
    g_assert_no_error(err);

    /* The mappings follow the loaded registers; bus mastering, INTx and the
     * pending bit are as they were. */
    g_assert_cmphex(qnic_pci_bar_addr(b.d, 0), ==, 0xc000);
    g_assert_cmphex(qnic_pci_bar_addr(b.d, 1), ==, 0xe0000000);
    g_assert_cmphex(qnic_pci_bar_addr(b.d, 2), ==, 0x1e0010000ull);
    g_assert_true(qnic_as_find(&b.m->mem, 0x1e0010000ull + 8, NULL) == &b.mem64);
    g_assert_true(qnic_as_find(&b.m->io, 0xc004, NULL) == &b.io);
    g_assert_true(b.d->dev.dma_enabled);
    gsi = qnic_pci_intx_gsi(b.d->devfn, 1);
    g_assert_cmpint(b.sink.gsi[gsi], ==, 1);
    g_assert_cmphex(cfg_read(&b, 0x06, 2) & PCI_STATUS_INTERRUPT, !=, 0);
    g_assert_cmphex(cfg_read(&b, 0x3c, 1), ==, 11);
    qnic_as_load(&b.m->mem, 0xe0004000 + 0x800, 4, &v);
    g_assert_cmphex(v, ==, 0x2);
    sb = state_save(&b);
    da = qnic_state_dump(sa->data, sa->len, &err);
    g_assert_no_error(err);
    db = qnic_state_dump(sb->data, sb->len, &err);
    g_assert_no_error(err);
    g_assert_cmpstr(da, ==, db);

    /* Unmasking on the destination sends what the source left pending. */
    qnic_as_store(&b.m->mem, 0xe0004000 + 28, 4, 0);
    g_assert_cmpuint(b.sink.nmsi, ==, 1);
    g_assert_cmphex(b.sink.last_msi_data, ==, 0x4041);
    /* A stream with the line low drops it. */
    qnic_pci_set_irq(a.d, 0);
    g_byte_array_set_size(sa, 0);
    qnic_pci_state_save(a.d, sa);
    g_assert_true(state_load(&b, sa, &err));
    g_assert_cmpint(b.sink.gsi[gsi], ==, 0);
    fixture_fini(&a);
    fixture_fini(&b);
}

static void test_state_hostile(void)
{
    Fixture a = { 0 }, b = { 0 }, c = { 0 };
    g_autoptr(GByteArray) good = NULL;
    GByteArray *bad;

    state_fixture(&a, 3);
    state_fixture(&b, 3);
    state_fixture(&c, 5);
    state_program(&a, qnic_pci_find_capability(a.d, PCI_CAP_ID_MSIX));
    good = state_save(&a);

    /* Truncated anywhere, or a bit flipped (the CRC catches it). */
    for (guint n = 0; n < good->len; n += 97) {
        bad = g_byte_array_new();
        g_byte_array_append(bad, good->data, n);
        state_refused(&b, bad, "");
        g_byte_array_unref(bad);
    }
    bad = g_byte_array_new();
    g_byte_array_append(bad, good->data, good->len);
    bad->data[good->len / 2] ^= 0x10;
    state_refused(&b, bad, "");
    g_byte_array_unref(bad);

    /* A BAR address below its size's alignment. */
    bad = g_byte_array_new();
    g_byte_array_append(bad, good->data, good->len);
    g_assert_true(state_patch_byte(bad, "pci", "config", 0x15, 0x08));
    state_refused(&b, bad, "BAR");
    g_byte_array_unref(bad);
    /* Another device's IDs. */
    bad = g_byte_array_new();
    g_byte_array_append(bad, good->data, good->len);
    g_assert_true(state_patch_byte(bad, "pci", "config", 0x02, 0x79));
    state_refused(&b, bad, "config byte 0x02");
    g_byte_array_unref(bad);
    /* Two enabled BARs over each other: the 4 KiB BAR 1 on the MSI-X BAR. */
    bad = g_byte_array_new();
    g_byte_array_append(bad, good->data, good->len);
    g_assert_true(state_patch_byte(bad, "pci", "config", 0x15, 0x40));
    state_refused(&b, bad, "overlaps");
    g_byte_array_unref(bad);
    /* An INTx level that is not a level. */
    bad = g_byte_array_new();
    g_byte_array_append(bad, good->data, good->len);
    g_assert_true(state_patch_uint(bad, "pci", "intx_level", 0, 2));
    state_refused(&b, bad, "intx_level");
    g_byte_array_unref(bad);
    /* A function with another MSI-X table size. */
    state_refused(&c, good, "MSI-X vectors");

    /* b still works: the good stream loads after all of that. */
    {
        g_autoptr(GError) err = NULL;
        g_assert_true(state_load(&b, good, &err));
        g_assert_no_error(err);
        g_assert_cmphex(qnic_pci_bar_addr(b.d, 1), ==, 0xe0000000);
    }
    fixture_fini(&a);
    fixture_fini(&b);
    fixture_fini(&c);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/pci/bar-sizing", test_bar_sizing);
    g_test_add_func("/pci/bar-mapping", test_bar_mapping);
    g_test_add_func("/pci/addr-errors", test_addr_errors);
    g_test_add_func("/pci/rom-bar", test_rom_bar);
    g_test_add_func("/pci/capabilities", test_capabilities);
    g_test_add_func("/pci/intx", test_intx);
    g_test_add_func("/pci/msix", test_msix);
    g_test_add_func("/pci/msi", test_msi);
    g_test_add_func("/pci/state-roundtrip", test_state_roundtrip);
    g_test_add_func("/pci/state-hostile", test_state_hostile);
    return g_test_run();
}
