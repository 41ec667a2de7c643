/*
 * isa-serial: a 16550A UART (COM1 at 0x3f8, IRQ 4 by default), the console of
 * qnic-vmm guests. qnic-vmm creates one for `-serial stdio|file:PATH|null`;
 * `-device isa-serial,chardev=...` takes the same backend strings, since qnic
 * has no -chardev. Transmission is synchronous (a THR write reaches the
 * backend before the access returns), so the transmitter always reads as
 * empty; input from stdin is read on the main loop into the 16-byte receive
 * FIFO. Register names and bits come from <linux/serial_reg.h>.
 */
#include "vmm/vmm.h"
#include "qnic/device.h"
#include "qnic/machine.h"
#include "qnic/memory.h"
#include "qnic/mainloop.h"
#include "qnic/state.h"
#include "qnic/log.h"

#include <fcntl.h>
#include <termios.h>
#include <unistd.h>
#include <linux/serial_reg.h>

#define SERIAL_FIFO_SIZE 16
#define SERIAL_NO_VALUE 0xffffffffull   /* "auto" in QEMU's property defaults */

typedef struct Serial {
    QnicDevice dev;
    QnicRegion io;
    unsigned irq;

    uint8_t ier, lcr, mcr, lsr, msr, scr, fcr;
    uint16_t divider;
    bool thr_ipending;          /* THR empty interrupt not yet acknowledged */
    uint8_t rx[SERIAL_FIFO_SIZE];
    unsigned rx_head, rx_count;

    int out_fd, in_fd;          /* -1 = none */
    bool close_out;
    QnicFdWatch *in_watch;
    bool in_watch_on;
    bool term_saved;
    struct termios term_orig;
} Serial;

static const uint16_t com_iobase[4] = { 0x3f8, 0x2f8, 0x3e8, 0x2e8 };
static const uint8_t com_irq[4] = { 4, 3, 4, 3 };

static uint8_t serial_iir(Serial *s)
{
    uint8_t iir = UART_IIR_NO_INT;

    if ((s->ier & UART_IER_RLSI) && (s->lsr & (UART_LSR_OE | UART_LSR_BI))) {
        iir = UART_IIR_RLSI;
    } else if ((s->ier & UART_IER_RDI) && s->rx_count) {
        iir = UART_IIR_RDI;
    } else if ((s->ier & UART_IER_THRI) && s->thr_ipending) {
        iir = UART_IIR_THRI;
    } else if ((s->ier & UART_IER_MSI) && (s->msr & UART_MSR_ANY_DELTA)) {
        iir = UART_IIR_MSI;
    }
    if (s->fcr & UART_FCR_ENABLE_FIFO) {
        iir |= 0xc0;            /* FIFOs enabled, as a 16550A reports */
    }
    return iir;
}

static void serial_update_irq(Serial *s)
{
    qnic_machine_set_gsi(s->dev.machine, s->irq, !(serial_iir(s) & UART_IIR_NO_INT));
}

static void serial_watch_update(Serial *s)
{
    bool want = s->in_watch && s->rx_count < SERIAL_FIFO_SIZE;

    if (s->in_watch && want != s->in_watch_on) {
        s->in_watch_on = want;
        qnic_fd_watch_set(s->in_watch, want ? G_IO_IN : 0);
        qnic_main_loop_wakeup();
    }
}

static void serial_rx_push(Serial *s, uint8_t c)
{
    if (s->rx_count == SERIAL_FIFO_SIZE) {
        s->lsr |= UART_LSR_OE;
        return;
    }
    s->rx[(s->rx_head + s->rx_count) % SERIAL_FIFO_SIZE] = c;
    s->rx_count++;
    s->lsr |= UART_LSR_DR;
}

static uint8_t serial_rx_pop(Serial *s)
{
    uint8_t c = 0;

    if (s->rx_count) {
        c = s->rx[s->rx_head];
        s->rx_head = (s->rx_head + 1) % SERIAL_FIFO_SIZE;
        s->rx_count--;
    }
    if (!s->rx_count) {
        s->lsr &= ~UART_LSR_DR;
    }
    serial_watch_update(s);
    return c;
}

static void serial_output(Serial *s, uint8_t c)
{
    if (s->mcr & UART_MCR_LOOP) {
        serial_rx_push(s, c);
        return;
    }
    if (s->out_fd < 0) {
        return;
    }
    for (int tries = 0; tries < 100; tries++) {
        ssize_t n = write(s->out_fd, &c, 1);
        if (n == 1 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
            break;      /* a broken backend loses output, like a cut cable */
        }
    }
}

/* Modem status as the lines show it: in loopback the outputs of MCR feed
 * the inputs (DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD), else a terminal
 * that is always present (DCD, DSR, CTS). */
static void serial_update_msr(Serial *s)
{
    uint8_t old = s->msr, status;

    if (s->mcr & UART_MCR_LOOP) {
        status = ((s->mcr & UART_MCR_DTR) ? UART_MSR_DSR : 0) |
                 ((s->mcr & UART_MCR_RTS) ? UART_MSR_CTS : 0) |
                 ((s->mcr & UART_MCR_OUT1) ? UART_MSR_RI : 0) |
                 ((s->mcr & UART_MCR_OUT2) ? UART_MSR_DCD : 0);
    } else {
        status = UART_MSR_DCD | UART_MSR_DSR | UART_MSR_CTS;
    }
    uint8_t delta = old & UART_MSR_ANY_DELTA;
    uint8_t changed = (old ^ status) & 0xf0;
    if (changed & UART_MSR_CTS) {
        delta |= UART_MSR_DCTS;
    }
    if (changed & UART_MSR_DSR) {
        delta |= UART_MSR_DDSR;
    }
    if ((old & UART_MSR_RI) && !(status & UART_MSR_RI)) {
        delta |= UART_MSR_TERI;
    }
    if (changed & UART_MSR_DCD) {
        delta |= UART_MSR_DDCD;
    }
    s->msr = status | delta;
}

static uint64_t serial_read(void *opaque, uint64_t addr, unsigned size)
{
    Serial *s = opaque;
    uint8_t val = 0;

    switch (addr) {
    case UART_RX:
        if (s->lcr & UART_LCR_DLAB) {
            val = s->divider & 0xff;
        } else {
            val = serial_rx_pop(s);
        }
        break;
    case UART_IER:
        val = (s->lcr & UART_LCR_DLAB) ? s->divider >> 8 : s->ier;
        break;
    case UART_IIR:
        val = serial_iir(s);
        /* Reading IIR acknowledges a THR-empty interrupt it reports. */
        if ((val & UART_IIR_ID) == UART_IIR_THRI) {
            s->thr_ipending = false;
        }
        break;
    case UART_LCR:
        val = s->lcr;
        break;
    case UART_MCR:
        val = s->mcr;
        break;
    case UART_LSR:
        val = s->lsr;
        s->lsr &= ~(UART_LSR_OE | UART_LSR_BI);
        break;
    case UART_MSR:
        val = s->msr;
        s->msr &= ~UART_MSR_ANY_DELTA;
        break;
    case UART_SCR:
        val = s->scr;
        break;
    }
    serial_update_irq(s);
    return val;
}

static void serial_write(void *opaque, uint64_t addr, uint64_t val64, unsigned size)
{
    Serial *s = opaque;
    uint8_t val = val64;

    switch (addr) {
    case UART_TX:
        if (s->lcr & UART_LCR_DLAB) {
            s->divider = (s->divider & 0xff00) | val;
            break;
        }
        serial_output(s, val);
        /* Sent at once: the holding register is empty again. */
        s->thr_ipending = true;
        break;
    case UART_IER:
        if (s->lcr & UART_LCR_DLAB) {
            s->divider = (s->divider & 0x00ff) | (val << 8);
            break;
        }
        /* Enabling THRI while the THR is empty raises it, as on a 16550. */
        if ((val & UART_IER_THRI) && !(s->ier & UART_IER_THRI)) {
            s->thr_ipending = true;
        }
        s->ier = val & 0x0f;
        break;
    case UART_FCR:
        if (val & UART_FCR_CLEAR_RCVR) {
            s->rx_head = s->rx_count = 0;
            s->lsr &= ~UART_LSR_DR;
            serial_watch_update(s);
        }
        s->fcr = val & (UART_FCR_ENABLE_FIFO | UART_FCR_TRIGGER_MASK);
        break;
    case UART_LCR:
        s->lcr = val;
        break;
    case UART_MCR:
        s->mcr = val & 0x1f;
        serial_update_msr(s);
        break;
    case UART_LSR:
        break;              /* read-only on a 16550 (factory test only) */
    case UART_MSR:
        break;
    case UART_SCR:
        s->scr = val;
        break;
    }
    serial_update_irq(s);
}

static const QnicMemOps serial_ops = {
    .read = serial_read,
    .write = serial_write,
    .valid_min = 1, .valid_max = 1,
    .impl_min = 1, .impl_max = 1,
};

static void serial_input(void *opaque, int fd, GIOCondition cond)
{
    Serial *s = opaque;
    uint8_t buf[SERIAL_FIFO_SIZE];
    size_t room = SERIAL_FIFO_SIZE - s->rx_count;

    if (room == 0) {
        serial_watch_update(s);
        return;
    }
    ssize_t n = read(fd, buf, room);
    if (n <= 0) {
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
            return;
        }
        /* EOF or error on stdin: stop watching, or the loop would spin. */
        qnic_fd_watch_remove(s->in_watch);
        s->in_watch = NULL;
        s->in_watch_on = false;
        return;
    }
    if (!(s->mcr & UART_MCR_LOOP)) {
        for (ssize_t i = 0; i < n; i++) {
            serial_rx_push(s, buf[i]);
        }
    }
    serial_watch_update(s);
    serial_update_irq(s);
}

static void serial_reset(QnicDevice *dev)
{
    Serial *s = (Serial *)dev;

    s->ier = 0;
    s->lcr = 0;
    s->mcr = UART_MCR_OUT2;
    s->lsr = UART_LSR_TEMT | UART_LSR_THRE;
    s->msr = 0;
    serial_update_msr(s);
    s->msr &= ~UART_MSR_ANY_DELTA;
    s->scr = 0;
    s->fcr = 0;
    s->divider = 12;        /* 9600 baud from a 115200 base */
    s->thr_ipending = false;
    s->rx_head = s->rx_count = 0;
    serial_watch_update(s);
    serial_update_irq(s);
}

static bool serial_open_backend(Serial *s, const char *chardev, GError **errp)
{
    s->out_fd = s->in_fd = -1;
    if (!chardev || g_str_equal(chardev, "null") || g_str_equal(chardev, "none")) {
        return true;
    }
    if (g_str_equal(chardev, "stdio")) {
        s->out_fd = STDOUT_FILENO;
        s->in_fd = STDIN_FILENO;
        return true;
    }
    if (g_str_has_prefix(chardev, "file:")) {
        const char *path = chardev + 5;
        s->out_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
        if (s->out_fd < 0) {
            qnic_error_setg_errno(errp, errno, "Could not open '%s'", path);
            return false;
        }
        s->close_out = true;
        return true;
    }
    qnic_error_setg_invalid(errp, "serial backend '%s' is not supported "
                            "(qnic-vmm has stdio, null and file:PATH)", chardev);
    return false;
}

static bool serial_realize(QnicDevice *dev, QnicOpts *opts, GError **errp)
{
    Serial *s = (Serial *)dev;
    uint64_t index = qnic_opts_get_uint(opts, "index", SERIAL_NO_VALUE);
    uint64_t iobase = qnic_opts_get_uint(opts, "iobase", SERIAL_NO_VALUE);
    uint64_t irq = qnic_opts_get_uint(opts, "irq", SERIAL_NO_VALUE);

    if (index == SERIAL_NO_VALUE) {
        /* like QEMU: the next COM port after the serials already present */
        index = 0;
        for (guint i = 0; i < dev->machine->devices->len; i++) {
            QnicDevice *o = g_ptr_array_index(dev->machine->devices, i);
            if (o != dev && o->cls == dev->cls) {
                index++;
            }
        }
    }
    if ((iobase == SERIAL_NO_VALUE || irq == SERIAL_NO_VALUE) && index >= 4) {
        qnic_error_setg_invalid(errp, "Max. supported number of ISA serial ports is 4.");
        return false;
    }
    if (iobase == SERIAL_NO_VALUE) {
        iobase = com_iobase[index];
    }
    if (irq == SERIAL_NO_VALUE) {
        irq = com_irq[index];
    }
    if (iobase > 0x10000 - 8) {
        qnic_error_setg_invalid(errp, "isa-serial: iobase 0x%" G_GINT64_MODIFIER "x is "
                                "outside the I/O space", iobase);
        return false;
    }
    if (irq >= 16) {
        qnic_error_setg_invalid(errp, "isa-serial: IRQ %" G_GUINT64_FORMAT " is not an "
                                "ISA IRQ (0..15)", irq);
        return false;
    }
    if (!serial_open_backend(s, qnic_opts_get(opts, "chardev"), errp)) {
        return false;
    }
    s->irq = irq;
    if (s->in_fd >= 0) {
        if (isatty(s->in_fd) && tcgetattr(s->in_fd, &s->term_orig) == 0) {
            /* Characters reach the guest as typed; ^C still ends qnic-vmm
             * (ISIG stays), as with QEMU's -serial stdio. */
            struct termios t = s->term_orig;
            t.c_lflag &= ~(ICANON | ECHO | ECHONL | IEXTEN);
            t.c_iflag &= ~(ICRNL | INLCR | IXON);
            t.c_cc[VMIN] = 1;
            t.c_cc[VTIME] = 0;
            s->term_saved = tcsetattr(s->in_fd, TCSANOW, &t) == 0;
        }
        s->in_watch = qnic_fd_watch_add(s->in_fd, G_IO_IN, serial_input, s);
        s->in_watch_on = true;
    }
    qnic_region_init_io(&s->io, dev, &serial_ops, s, "serial", 8);
    qnic_as_map(&dev->machine->io, &s->io, iobase, 0);
    serial_reset(dev);
    return true;
}

static void serial_unrealize(QnicDevice *dev)
{
    Serial *s = (Serial *)dev;

    qnic_as_unmap(&s->io);
    qnic_fd_watch_remove(s->in_watch);
    s->in_watch = NULL;
    if (s->term_saved) {
        tcsetattr(s->in_fd, TCSANOW, &s->term_orig);
    }
    if (s->close_out) {
        close(s->out_fd);
    }
    qnic_machine_set_gsi(dev->machine, s->irq, 0);
}

/* ---- device state (qnic/state.h): the registers and the receive FIFO;
 * the backend is the destination's own -serial ---- */

typedef struct SerialState {
    uint8_t ier, lcr, mcr, lsr, msr, scr, fcr;
    uint16_t divider;
    bool thr_ipending;
    uint8_t rx[SERIAL_FIFO_SIZE];
    uint32_t rx_head, rx_count;
} SerialState;

static const QnicStateField serial_state_fields[] = {
    QNIC_STATE_UINT_RANGE(SerialState, ier, 0, 0, 0x0f),
    QNIC_STATE_UINT(SerialState, lcr, 0),
    QNIC_STATE_UINT_RANGE(SerialState, mcr, 0, 0, 0x1f),
    QNIC_STATE_UINT(SerialState, lsr, 0),
    QNIC_STATE_UINT(SerialState, msr, 0),
    QNIC_STATE_UINT(SerialState, scr, 0),
    QNIC_STATE_UINT(SerialState, fcr, 0),
    QNIC_STATE_UINT(SerialState, divider, 0),
    QNIC_STATE_BOOL(SerialState, thr_ipending, 0),
    QNIC_STATE_BYTES(SerialState, rx, 0),
    QNIC_STATE_UINT_RANGE(SerialState, rx_head, 0, 0, SERIAL_FIFO_SIZE - 1),
    QNIC_STATE_UINT_RANGE(SerialState, rx_count, 0, 0, SERIAL_FIFO_SIZE),
    QNIC_STATE_END
};

static const QnicStateDesc serial_state_desc = {
    .name = "isa-serial", .version = 1, .min_version = 1,
    .size = sizeof(SerialState), .fields = serial_state_fields,
};

static bool serial_save_state(QnicDevice *dev, GByteArray *out, GError **errp)
{
    Serial *s = (Serial *)dev;
    SerialState st = {
        .ier = s->ier, .lcr = s->lcr, .mcr = s->mcr, .lsr = s->lsr, .msr = s->msr,
        .scr = s->scr, .fcr = s->fcr, .divider = s->divider,
        .thr_ipending = s->thr_ipending, .rx_head = s->rx_head, .rx_count = s->rx_count,
    };

    memcpy(st.rx, s->rx, sizeof(st.rx));
    qnic_state_write(out, &serial_state_desc, &st);
    return true;
}

static bool serial_load_state(QnicDevice *dev, QnicStateReader *r, GError **errp)
{
    Serial *s = (Serial *)dev;
    SerialState st;

    if (!qnic_state_read(r, &serial_state_desc, &st, errp)) {
        return false;
    }
    /* Data ready is the FIFO's, not the stream's to claim. */
    if (!!(st.lsr & UART_LSR_DR) != (st.rx_count > 0)) {
        qnic_error_setg(errp, "isa-serial: LSR data ready (0x%x) disagrees with %u "
                        "bytes in the receive FIFO", st.lsr, st.rx_count);
        return false;
    }
    s->ier = st.ier;
    s->lcr = st.lcr;
    s->mcr = st.mcr;
    s->lsr = st.lsr;
    s->msr = st.msr;
    s->scr = st.scr;
    s->fcr = st.fcr;
    s->divider = st.divider;
    s->thr_ipending = st.thr_ipending;
    memcpy(s->rx, st.rx, sizeof(s->rx));
    s->rx_head = st.rx_head;
    s->rx_count = st.rx_count;
    serial_watch_update(s);
    serial_update_irq(s);
    return true;
}

static const QnicDeviceClass serial_class = {
    .name = "isa-serial",
    .bus = "isa",
    .instance_size = sizeof(Serial),
    .realize = serial_realize,
    .reset = serial_reset,
    .unrealize = serial_unrealize,
    .save_state = serial_save_state,
    .load_state = serial_load_state,
};
QNIC_DEVICE_REGISTER(serial_class)
