/*
 * Walks bus 0 through 0xcf8/0xcfc as firmware does and checks what a pc
 * machine with -nodefaults shows: the i440FX host bridge and the PIIX3
 * functions, with QEMU 7.2's IDs. Runs unchanged against QEMU.
 */
#include "libqtest.h"

typedef struct {
    int devfn;
    uint32_t id;          /* device << 16 | vendor */
    uint32_t class_rev;   /* dword 0x08 */
    uint8_t header_type;
    uint32_t subsys;      /* dword 0x2c */
    uint8_t pin;
    uint16_t status;
} ExpectFn;

/* Read off QEMU 7.2 (`-machine pc -nodefaults`). */
static const ExpectFn expected[] = {
    { 0x00, 0x12378086, 0x06000002, 0x00, 0x11001af4, 0, 0x0000 },
    { 0x08, 0x70008086, 0x06010000, 0x80, 0x11001af4, 0, 0x0200 },
    { 0x09, 0x70108086, 0x01018000, 0x00, 0x11001af4, 0, 0x0280 },
    { 0x0b, 0x71138086, 0x06800003, 0x00, 0x11001af4, 1, 0x0280 },
};

static void test_enumerate(void)
{
    QTestState *s = qtest_init("");
    unsigned found = 0;

    for (int devfn = 0; devfn < 256; devfn++) {
        uint32_t id = qtest_pci_cfg_readl(s, devfn, 0);
        if (id == 0xffffffff) {
            continue;
        }
        const ExpectFn *e = NULL;
        for (unsigned i = 0; i < G_N_ELEMENTS(expected); i++) {
            if (expected[i].devfn == devfn) {
                e = &expected[i];
            }
        }
        if (!e) {
            g_test_message("unexpected function %02x.%d id %08x", devfn >> 3, devfn & 7, id);
            g_assert_not_reached();
        }
        found++;
        g_assert_cmphex(id, ==, e->id);
        g_assert_cmphex(qtest_pci_cfg_readl(s, devfn, 0x08), ==, e->class_rev);
        g_assert_cmphex(qtest_pci_cfg_readb(s, devfn, 0x0e), ==, e->header_type);
        g_assert_cmphex(qtest_pci_cfg_readl(s, devfn, 0x2c), ==, e->subsys);
        g_assert_cmphex(qtest_pci_cfg_readb(s, devfn, 0x3d), ==, e->pin);
        g_assert_cmphex(qtest_pci_cfg_readw(s, devfn, 0x06), ==, e->status);
    }
    g_assert_cmpuint(found, ==, G_N_ELEMENTS(expected));
    qtest_quit(s);
}

static void test_readonly_ids(void)
{
    QTestState *s = qtest_init("");

    /* IDs are read-only; the interrupt line is a scratch register. */
    qtest_pci_cfg_writel(s, 0, 0x00, 0xdeadbeef);
    g_assert_cmphex(qtest_pci_cfg_readl(s, 0, 0x00), ==, 0x12378086);
    qtest_pci_cfg_writeb(s, 0x0b, 0x3c, 0x5a);
    g_assert_cmphex(qtest_pci_cfg_readb(s, 0x0b, 0x3c), ==, 0x5a);
    /* Sub-dword reads through 0xcfc..0xcff see the right bytes. */
    g_assert_cmphex(qtest_pci_cfg_readw(s, 0, 0x02), ==, 0x1237);
    g_assert_cmphex(qtest_pci_cfg_readb(s, 0, 0x01), ==, 0x80);
    /* The config address latch reads back. */
    qtest_outl(s, 0xcf8, 0x80000810);
    g_assert_cmphex(qtest_inl(s, 0xcf8), ==, 0x80000810);
    /* The IDE function's bus-master BAR4 is 16 bytes of I/O. */
    {
        uint32_t type;
        g_assert_cmpuint(qtest_pci_bar_size(s, 0x09, 4, &type), ==, 16);
        g_assert_cmphex(type, ==, 1);
    }
    qtest_quit(s);
}

static void test_protocol_errors(void)
{
    QTestState *s = qtest_init("");
    char *r;

    r = qtest_raw(s, "frobnicate 1 2");
    g_assert_true(g_str_has_prefix(r, "FAIL"));
    g_free(r);
    r = qtest_raw(s, "endianness");
    g_assert_cmpstr(r, ==, "OK little");
    g_free(r);
    /* Memory reads and writes round-trip in RAM. */
    qtest_writel(s, 0x100000, 0x12345678);
    g_assert_cmphex(qtest_readl(s, 0x100000), ==, 0x12345678);
    g_assert_cmphex(qtest_readb(s, 0x100001), ==, 0x56);
    {
        uint8_t buf[5] = { 1, 2, 3, 4, 5 }, out[5];
        qtest_memwrite(s, 0x200003, buf, 5);
        qtest_memread(s, 0x200003, out, 5);
        g_assert_cmpmem(buf, 5, out, 5);
        qtest_bufwrite(s, 0x300001, buf, 5);
        qtest_bufread(s, 0x300001, out, 5);
        g_assert_cmpmem(buf, 5, out, 5);
        qtest_memset(s, 0x300000, 0xab, 4);
        g_assert_cmphex(qtest_readl(s, 0x300000), ==, 0xabababab);
    }
    qtest_quit(s);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/pci/enumerate", test_enumerate);
    g_test_add_func("/pci/readonly-ids", test_readonly_ids);
    g_test_add_func("/qtest/protocol", test_protocol_errors);
    return g_test_run();
}
