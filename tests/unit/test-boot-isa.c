/*
 * Unit tests of qnic-vmm's ISA devices on a bare machine (no KVM): the
 * 16550A UART's registers, FIFO, loopback, THR-empty / receive interrupts on
 * IRQ 4 and file backend, its saved state (a receive FIFO and registers
 * that come back whole on another machine, a bad stream refused), and
 * isa-debug-exit's (V << 1) | 1 exit request.
 * Port accesses go through the machine's I/O address space as a vCPU's would.
 */
#include "vmm/vmm.h"
#include "qnic/machine.h"
#include "qnic/device.h"
#include "qnic/memory.h"
#include "qnic/state.h"
#include "test-isa-io.h"
#include "../lib/test-backends.h"

#include <unistd.h>
#include <linux/serial_reg.h>

#define COM1 0x3f8

static int gsi_levels[QNIC_NUM_GSI];
static unsigned gsi_changes;

static void record_gsi(void *opaque, unsigned gsi, int level)
{
    gsi_levels[gsi] = level;
    gsi_changes++;
}

static QnicMachine *new_machine(void)
{
    QnicMachine *m = isa_test_machine(record_gsi);

    memset(gsi_levels, 0, sizeof(gsi_levels));
    gsi_changes = 0;
    return m;
}

static void test_serial_output_and_thre_irq(void)
{
    QnicMachine *m = new_machine();
    g_autofree char *path = tmp_file();
    g_autofree char *dev = g_strdup_printf("isa-serial,chardev=file:%s", path);
    GError *err = NULL;

    g_assert_nonnull(qnic_device_create_str(m, dev, &err));
    g_assert_no_error(err);

    /* reset state */
    g_assert_cmphex(inb(m, COM1 + UART_LSR), ==, UART_LSR_TEMT | UART_LSR_THRE);
    g_assert_cmphex(inb(m, COM1 + UART_IIR), ==, UART_IIR_NO_INT);
    g_assert_cmphex(inb(m, COM1 + UART_MSR) & 0xf0, ==,
                    UART_MSR_DCD | UART_MSR_DSR | UART_MSR_CTS);
    g_assert_cmpint(gsi_levels[4], ==, 0);

    /* divisor latch behind DLAB, then back to the data registers */
    outb(m, COM1 + UART_LCR, UART_LCR_DLAB);
    outb(m, COM1 + UART_DLL, 0x01);
    outb(m, COM1 + UART_DLM, 0x02);
    g_assert_cmphex(inb(m, COM1 + UART_DLL), ==, 0x01);
    g_assert_cmphex(inb(m, COM1 + UART_DLM), ==, 0x02);
    outb(m, COM1 + UART_LCR, UART_LCR_WLEN8);
    g_assert_cmphex(inb(m, COM1 + UART_IER), ==, 0);
    g_assert_cmphex(inb(m, COM1 + UART_LCR), ==, UART_LCR_WLEN8);
    outb(m, COM1 + UART_SCR, 0x5a);
    g_assert_cmphex(inb(m, COM1 + UART_SCR), ==, 0x5a);

    for (const char *p = "hi!\n"; *p; p++) {
        outb(m, COM1 + UART_TX, *p);
    }
    g_autofree char *out = NULL;
    g_assert_true(g_file_get_contents(path, &out, NULL, NULL));
    g_assert_cmpstr(out, ==, "hi!\n");

    /* enabling THRI with an empty THR raises IRQ 4; reading IIR acks it */
    outb(m, COM1 + UART_IER, UART_IER_THRI);
    g_assert_cmpint(gsi_levels[4], ==, 1);
    g_assert_cmphex(inb(m, COM1 + UART_IIR), ==, UART_IIR_THRI);
    g_assert_cmpint(gsi_levels[4], ==, 0);
    g_assert_cmphex(inb(m, COM1 + UART_IIR), ==, UART_IIR_NO_INT);
    /* the next character empties the THR again: a new interrupt */
    outb(m, COM1 + UART_TX, 'x');
    g_assert_cmpint(gsi_levels[4], ==, 1);
    outb(m, COM1 + UART_IER, 0);
    g_assert_cmpint(gsi_levels[4], ==, 0);

    /* FIFO enabled shows in IIR's top bits */
    outb(m, COM1 + UART_FCR, UART_FCR_ENABLE_FIFO);
    g_assert_cmphex(inb(m, COM1 + UART_IIR), ==, 0xc0 | UART_IIR_NO_INT);

    qnic_machine_free(m);
    unlink(path);
}

static void test_serial_loopback_rx(void)
{
    QnicMachine *m = new_machine();
    GError *err = NULL;

    g_assert_nonnull(qnic_device_create_str(m, "isa-serial,chardev=null", &err));
    g_assert_no_error(err);

    /* loopback: MCR outputs appear as MSR inputs, as Linux's probe checks */
    outb(m, COM1 + UART_MCR, UART_MCR_LOOP | UART_MCR_OUT2 | UART_MCR_RTS);
    uint8_t msr = inb(m, COM1 + UART_MSR);
    g_assert_cmphex(msr & 0xf0, ==, UART_MSR_DCD | UART_MSR_CTS);
    g_assert_cmphex(inb(m, COM1 + UART_MSR) & UART_MSR_ANY_DELTA, ==, 0);

    /* transmitted bytes come back, with a receive interrupt when enabled */
    outb(m, COM1 + UART_IER, UART_IER_RDI);
    g_assert_cmpint(gsi_levels[4], ==, 0);
    outb(m, COM1 + UART_TX, 'A');
    outb(m, COM1 + UART_TX, 'B');
    g_assert_cmpint(gsi_levels[4], ==, 1);
    g_assert_cmphex(inb(m, COM1 + UART_LSR) & UART_LSR_DR, ==, UART_LSR_DR);
    g_assert_cmphex(inb(m, COM1 + UART_IIR), ==, UART_IIR_RDI);
    g_assert_cmphex(inb(m, COM1 + UART_RX), ==, 'A');
    g_assert_cmphex(inb(m, COM1 + UART_RX), ==, 'B');
    g_assert_cmphex(inb(m, COM1 + UART_LSR) & UART_LSR_DR, ==, 0);
    g_assert_cmpint(gsi_levels[4], ==, 0);

    /* overrun: a 17th byte sets OE, reported once, then a line-status irq */
    outb(m, COM1 + UART_IER, UART_IER_RLSI);
    for (int i = 0; i < 17; i++) {
        outb(m, COM1 + UART_TX, 'a' + i);
    }
    g_assert_cmpint(gsi_levels[4], ==, 1);
    g_assert_cmphex(inb(m, COM1 + UART_IIR), ==, UART_IIR_RLSI);
    g_assert_cmphex(inb(m, COM1 + UART_LSR) & UART_LSR_OE, ==, UART_LSR_OE);
    g_assert_cmphex(inb(m, COM1 + UART_LSR) & UART_LSR_OE, ==, 0);
    g_assert_cmpint(gsi_levels[4], ==, 0);
    g_assert_cmphex(inb(m, COM1 + UART_RX), ==, 'a');

    /* FIFO clear empties the receiver */
    outb(m, COM1 + UART_FCR, UART_FCR_ENABLE_FIFO | UART_FCR_CLEAR_RCVR);
    g_assert_cmphex(inb(m, COM1 + UART_LSR) & UART_LSR_DR, ==, 0);
    qnic_machine_free(m);
}

static void test_serial_options(void)
{
    QnicMachine *m = new_machine();
    GError *err = NULL;

    /* index picks COM2's port and IRQ */
    g_assert_nonnull(qnic_device_create_str(m, "isa-serial,index=1,chardev=null", &err));
    g_assert_no_error(err);
    g_assert_cmphex(inb(m, 0x2f8 + UART_LSR), ==, UART_LSR_TEMT | UART_LSR_THRE);
    outb(m, 0x2f8 + UART_IER, UART_IER_THRI);
    g_assert_cmpint(gsi_levels[3], ==, 1);

    g_assert_null(qnic_device_create_str(m, "isa-serial,chardev=socket", &err));
    g_assert_nonnull(strstr(err->message, "not supported"));
    g_clear_error(&err);
    g_assert_null(qnic_device_create_str(m, "isa-serial,chardev=null,irq=16,iobase=0x3e8", &err));
    g_assert_nonnull(strstr(err->message, "IRQ"));
    g_clear_error(&err);
    g_assert_null(qnic_device_create_str(m, "isa-serial,chardev=file:/nonexistent/dir/x", &err));
    g_assert_nonnull(strstr(err->message, "/nonexistent/dir/x"));
    g_clear_error(&err);
    qnic_machine_free(m);
}

static void test_debug_exit(void)
{
    QnicMachine *m = new_machine();
    GError *err = NULL;
    int status = -1;

    g_assert_null(qnic_device_create_str(m, "isa-debug-exit,iosize=5", &err));
    g_clear_error(&err);
    g_assert_nonnull(qnic_device_create_str(m, "isa-debug-exit,iobase=0xf4,iosize=4", &err));
    g_assert_no_error(err);
    g_assert_false(qnic_vmm_exit_requested(&status));
    uint64_t v = 1;
    g_assert_true(qnic_as_load(&m->io, 0xf4, 1, &v));
    g_assert_cmpuint(v, ==, 0);
    g_assert_false(qnic_vmm_exit_requested(NULL));
    /* a 32-bit write as QEMU's test guests do it: status (0x10 << 1) | 1 */
    g_assert_true(qnic_as_store(&m->io, 0xf4, 4, 0x10));
    g_assert_true(qnic_vmm_exit_requested(&status));
    g_assert_cmpint(status, ==, 33);
    /* the first request wins */
    qnic_vmm_request_exit(5);
    g_assert_true(qnic_vmm_exit_requested(&status));
    g_assert_cmpint(status, ==, 33);
    qnic_machine_free(m);
}

static void test_serial_state(void)
{
    QnicMachine *a = new_machine();
    GError *err = NULL;
    QnicDevice *da = qnic_device_create_str(a, "isa-serial,chardev=null", &err);

    g_assert_no_error(err);
    /* three bytes in the FIFO through loopback, a receive interrupt on */
    outb(a, COM1 + UART_MCR, UART_MCR_LOOP | UART_MCR_OUT2);
    outb(a, COM1 + UART_LCR, UART_LCR_WLEN8);
    outb(a, COM1 + UART_SCR, 0x5a);
    for (const char *c = "xyz"; *c; c++) {
        outb(a, COM1 + UART_TX, *c);
    }
    g_assert_cmphex(inb(a, COM1 + UART_RX), ==, 'x');
    outb(a, COM1 + UART_IER, UART_IER_RDI);
    g_autoptr(GByteArray) sa = g_byte_array_new();
    g_assert_true(qnic_device_save_state(da, sa, &err));
    g_assert_no_error(err);

    QnicMachine *b = new_machine();
    QnicDevice *db = qnic_device_create_str(b, "isa-serial,chardev=null", &err);
    g_assert_no_error(err);
    g_assert_cmpint(gsi_levels[4], ==, 0);
    /* a cut stream changes nothing */
    g_assert_false(qnic_device_load_state(db, sa->data, sa->len - 1, &err));
    g_assert_nonnull(err);
    g_clear_error(&err);
    g_assert_cmphex(inb(b, COM1 + UART_SCR), ==, 0);
    g_assert_true(qnic_device_load_state(db, sa->data, sa->len, &err));
    g_assert_no_error(err);
    g_autoptr(GByteArray) sb = g_byte_array_new();
    g_assert_true(qnic_device_save_state(db, sb, &err));
    g_autofree char *dump_a = qnic_state_dump(sa->data, sa->len, &err);
    g_autofree char *dump_b = qnic_state_dump(sb->data, sb->len, &err);
    g_assert_no_error(err);
    g_assert_cmpstr(dump_a, ==, dump_b);
    /* the interrupt line follows the loaded state; the FIFO goes on */
    g_assert_cmpint(gsi_levels[4], ==, 1);
    g_assert_cmphex(inb(b, COM1 + UART_SCR), ==, 0x5a);
    g_assert_cmphex(inb(b, COM1 + UART_IIR), ==, UART_IIR_RDI);
    g_assert_cmphex(inb(b, COM1 + UART_RX), ==, 'y');
    g_assert_cmphex(inb(b, COM1 + UART_RX), ==, 'z');
    g_assert_cmphex(inb(b, COM1 + UART_LSR) & UART_LSR_DR, ==, 0);
    qnic_machine_free(a);
    qnic_machine_free(b);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/isa/serial/output-thre-irq", test_serial_output_and_thre_irq);
    g_test_add_func("/isa/serial/loopback-rx", test_serial_loopback_rx);
    g_test_add_func("/isa/serial/options", test_serial_options);
    g_test_add_func("/isa/serial/state", test_serial_state);
    g_test_add_func("/isa/debug-exit", test_debug_exit);
    return g_test_run();
}
