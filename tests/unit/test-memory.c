/*
 * Address-space dispatch and DMA: access-size adaptation, priorities,
 * unassigned accesses, the DMA bounds checks, the bus-master gate and the
 * reentrancy refusal.
 */
#include "qnic/machine.h"
#include "qnic/log.h"

typedef struct {
    uint64_t last_addr, last_val;
    unsigned last_size, nreads, nwrites;
    uint8_t regs[64];
    QnicDevice *dev;          /* the device that owns the region */
    uint64_t dma_target;      /* on write to reg 0x20: DMA here */
    bool dma_result;
} TestRegs;

static uint64_t t_read(void *opaque, uint64_t addr, unsigned size)
{
    TestRegs *t = opaque;
    uint64_t v = 0;

    t->nreads++;
    t->last_addr = addr;
    t->last_size = size;
    memcpy(&v, &t->regs[addr], size);
    return v;
}

static void t_write(void *opaque, uint64_t addr, uint64_t val, unsigned size)
{
    TestRegs *t = opaque;

    t->nwrites++;
    t->last_addr = addr;
    t->last_val = val;
    t->last_size = size;
    memcpy(&t->regs[addr], &val, size);
    if (addr == 0x20 && t->dev) {
        uint32_t v = 0x11223344;
        t->dma_result = qnic_dma_write(t->dev, t->dma_target, &v, 4);
    }
}

static const QnicMemOps ops_impl4 = {
    .read = t_read, .write = t_write, .impl_min = 4, .impl_max = 4,
};
static const QnicMemOps ops_impl1 = {
    .read = t_read, .write = t_write, .impl_min = 1, .impl_max = 1,
};
static const QnicMemOps ops_valid4 = {
    .read = t_read, .write = t_write, .valid_min = 4, .valid_max = 4,
    .impl_min = 4, .impl_max = 4,
};

static QnicMachine *new_machine(void)
{
    QnicMachineConfig cfg = { .ram_size = 16 * 1024 * 1024 };
    g_autoptr(GError) err = NULL;
    QnicMachine *m = qnic_machine_new(&cfg, &err);
    g_assert_no_error(err);
    return m;
}

static void test_size_adaptation(void)
{
    QnicMachine *m = new_machine();
    TestRegs t = { 0 };
    QnicRegion r;
    uint64_t v;

    qnic_region_init_io(&r, NULL, &ops_impl4, &t, "t", 64);
    qnic_as_map(&m->mem, &r, 0xe0000000, 0);
    /* A byte read of a 4-byte-only register reads 4 bytes, returns 1. */
    memcpy(t.regs, "\x11\x22\x33\x44\x55\x66\x77\x88", 8);
    g_assert_true(qnic_as_load(&m->mem, 0xe0000000, 1, &v));
    g_assert_cmphex(v, ==, 0x11);
    g_assert_cmpuint(t.last_size, ==, 4);
    /* An 8-byte read splits into two 4-byte reads, little-endian. */
    t.nreads = 0;
    qnic_as_load(&m->mem, 0xe0000000, 8, &v);
    g_assert_cmphex(v, ==, 0x8877665544332211ull);
    g_assert_cmpuint(t.nreads, ==, 2);
    /* 1-byte-only registers get four calls for a dword. */
    qnic_as_unmap(&r);
    qnic_region_init_io(&r, NULL, &ops_impl1, &t, "t1", 64);
    qnic_as_map(&m->mem, &r, 0xe0000000, 0);
    t.nwrites = 0;
    qnic_as_store(&m->mem, 0xe0000004, 4, 0xa1b2c3d4);
    g_assert_cmpuint(t.nwrites, ==, 4);
    g_assert_cmphex(t.regs[4], ==, 0xd4);
    g_assert_cmphex(t.regs[7], ==, 0xa1);
    qnic_as_unmap(&r);
    qnic_machine_free(m);
}

static void test_invalid_and_unassigned(void)
{
    QnicMachine *m = new_machine();
    TestRegs t = { 0 };
    QnicRegion r;
    uint64_t v;
    uint64_t ge = qnic_log_count(QNIC_LOG_GUEST_ERROR);

    qnic_region_init_io(&r, NULL, &ops_valid4, &t, "v4", 64);
    qnic_as_map(&m->mem, &r, 0xe0001000, 0);
    /* A 2-byte access where only 4 is valid: ignored, logged, all-ones. */
    qnic_as_store(&m->mem, 0xe0001000, 2, 0xffff);
    g_assert_cmpuint(t.nwrites, ==, 0);
    qnic_as_load(&m->mem, 0xe0001000, 2, &v);
    g_assert_cmphex(v, ==, 0xffff);
    g_assert_cmpuint(t.nreads, ==, 0);
    /* Unaligned 4-byte access is invalid too. */
    qnic_as_store(&m->mem, 0xe0001002, 4, 1);
    g_assert_cmpuint(t.nwrites, ==, 0);
    g_assert_cmpuint(qnic_log_count(QNIC_LOG_GUEST_ERROR), ==, ge + 3);
    /* Nothing mapped: memory reads 0, port I/O reads all-ones. */
    g_assert_false(qnic_as_load(&m->mem, 0xd0000000, 4, &v));
    g_assert_cmphex(v, ==, 0);
    g_assert_false(qnic_as_load(&m->io, 0x1234, 2, &v));
    g_assert_cmphex(v, ==, 0xffff);
    qnic_as_unmap(&r);
    qnic_machine_free(m);
}

static void test_priority(void)
{
    QnicMachine *m = new_machine();
    TestRegs a = { 0 }, b = { 0 };
    QnicRegion ra, rb;
    uint64_t v;

    qnic_region_init_io(&ra, NULL, &ops_impl4, &a, "a", 0x1000);
    qnic_region_init_io(&rb, NULL, &ops_impl4, &b, "b", 0x10);
    a.regs[0] = 0xaa;
    b.regs[0] = 0xbb;
    qnic_as_map(&m->mem, &ra, 0xe0000000, 0);
    qnic_as_map(&m->mem, &rb, 0xe0000000, 1);
    qnic_as_load(&m->mem, 0xe0000000, 1, &v);
    g_assert_cmphex(v, ==, 0xbb);
    qnic_as_unmap(&rb);
    qnic_as_load(&m->mem, 0xe0000000, 1, &v);
    g_assert_cmphex(v, ==, 0xaa);
    /* A region mapped below RAM's priority over RAM does not hide RAM. */
    qnic_as_map(&m->mem, &rb, 0x1000, -1);
    *(uint8_t *)qnic_machine_ram_ptr(m, 0x1000, 1) = 0x77;
    qnic_as_load(&m->mem, 0x1000, 1, &v);
    g_assert_cmphex(v, ==, 0x77);
    qnic_as_unmap(&rb);
    qnic_as_unmap(&ra);
    qnic_machine_free(m);
}

static const QnicDeviceClass fake_cls = { .name = "fake", .instance_size = sizeof(QnicDevice) };

static void test_dma_bounds(void)
{
    QnicMachine *m = new_machine();
    QnicDevice dev = { .cls = &fake_cls, .machine = m, .dma_enabled = true };
    uint8_t buf[16] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };
    uint8_t *ram = qnic_machine_ram_ptr(m, 0, 16 * 1024 * 1024);
    uint64_t ge = qnic_log_count(QNIC_LOG_GUEST_ERROR);
    size_t got;

    g_assert_true(qnic_dma_write(&dev, 0x1000, buf, 16));
    g_assert_cmpmem(ram + 0x1000, 16, buf, 16);
    /* Straddling the end of RAM: refused and nothing written. */
    memset(ram + 16 * 1024 * 1024 - 8, 0, 8);
    g_assert_false(qnic_dma_write(&dev, 16 * 1024 * 1024 - 8, buf, 16));
    for (int i = 0; i < 8; i++) {
        g_assert_cmpuint(ram[16 * 1024 * 1024 - 8 + i], ==, 0);
    }
    /* Wrapping the 64-bit space. */
    g_assert_false(qnic_dma_read(&dev, ~0ull - 3, buf, 16));
    /* Mapping: whole or NULL; partial reports what fits. */
    g_assert_nonnull(qnic_dma_map(&dev, 0x2000, 4096, true));
    g_assert_null(qnic_dma_map(&dev, 16 * 1024 * 1024 - 100, 4096, false));
    g_assert_nonnull(qnic_dma_map_partial(&dev, 16 * 1024 * 1024 - 100, 4096, false, &got));
    g_assert_cmpuint(got, ==, 100);
    g_assert_null(qnic_dma_map(&dev, 0xd0000000, 4, false));
    /* Bus mastering off: nothing moves. */
    dev.dma_enabled = false;
    memset(ram + 0x3000, 0, 16);
    g_assert_false(qnic_dma_write(&dev, 0x3000, buf, 16));
    g_assert_cmpuint(ram[0x3000], ==, 0);
    g_assert_cmpuint(qnic_log_count(QNIC_LOG_GUEST_ERROR), >=, ge + 5);
    qnic_machine_free(m);
}

static void test_dma_reentrancy(void)
{
    QnicMachine *m = new_machine();
    QnicDevice a = { .cls = &fake_cls, .machine = m, .dma_enabled = true };
    QnicDevice b = { .cls = &fake_cls, .machine = m, .dma_enabled = true };
    TestRegs ta = { .dev = &a }, tb = { .dev = &b };
    QnicRegion ra, rb;
    uint32_t v = 0xcafe;

    qnic_region_init_io(&ra, &a, &ops_impl4, &ta, "a", 64);
    qnic_region_init_io(&rb, &b, &ops_impl4, &tb, "b", 64);
    qnic_as_map(&m->mem, &ra, 0xe0000000, 0);
    qnic_as_map(&m->mem, &rb, 0xe0001000, 0);
    /* A device's DMA into its own registers is refused. */
    g_assert_false(qnic_dma_write(&a, 0xe0000010, &v, 4));
    g_assert_cmpuint(ta.nwrites, ==, 0);
    /* Into another device that is idle: allowed (peer-to-peer). */
    g_assert_true(qnic_dma_write(&a, 0xe0001010, &v, 4));
    g_assert_cmpuint(tb.nwrites, ==, 1);
    /* A's register write makes A DMA into B, whose handler DMAs back into A
     * while A is still inside its handler: refused. */
    ta.dma_target = 0xe0001020;
    tb.dma_target = 0xe0000010;
    tb.nwrites = ta.nwrites = 0;
    qnic_as_store(&m->mem, 0xe0000020, 4, 1);
    g_assert_true(ta.dma_result);          /* A -> B went through */
    g_assert_false(tb.dma_result);         /* B -> A (re-entry) refused */
    g_assert_cmpuint(ta.nwrites, ==, 1);   /* only the CPU's write reached A */
    g_assert_cmpint(a.in_io, ==, 0);
    g_assert_cmpint(b.in_io, ==, 0);
    qnic_as_unmap(&ra);
    qnic_as_unmap(&rb);
    qnic_machine_free(m);
}

static void test_ram_split(void)
{
    QnicMachineConfig cfg = { .ram_size = 4ull * 1024 * 1024 * 1024 };
    g_autoptr(GError) err = NULL;
    QnicMachine *m = qnic_machine_new(&cfg, &err);

    g_assert_no_error(err);
    g_assert_cmphex(m->below_4g, ==, 0xe0000000ull);
    g_assert_cmphex(m->above_4g, ==, 0x20000000ull);
    g_assert_nonnull(qnic_machine_ram_ptr(m, 0x100000000ull, 4096));
    g_assert_null(qnic_machine_ram_ptr(m, 0xe0000000ull, 4));
    qnic_machine_free(m);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/memory/size-adaptation", test_size_adaptation);
    g_test_add_func("/memory/invalid-unassigned", test_invalid_and_unassigned);
    g_test_add_func("/memory/priority", test_priority);
    g_test_add_func("/memory/ram-split", test_ram_split);
    g_test_add_func("/dma/bounds", test_dma_bounds);
    g_test_add_func("/dma/reentrancy", test_dma_reentrancy);
    return g_test_run();
}
