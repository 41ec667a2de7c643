/*
 * The qtest accelerator: no CPU, the machine driven over QEMU's qtest
 * protocol, one text command per line ("outl 0xcf8 0x80000000", "readq
 * 0x1000", "clock_step 1000", ...) answered with "OK ..." or "FAIL ...".
 * Interrupt lines, once intercepted, are reported as asynchronous
 * "IRQ raise N" / "IRQ lower N" lines. A test written for QEMU's qtest
 * talks to qnic-vmm unchanged. Bad commands answer FAIL and never end the
 * process; the process ends when the test closes the connection.
 */
#include "vmm.h"
#include "qtest-server.h"
#include "migration.h"
#include "qnic/clock.h"
#include "qnic/log.h"
#include "qnic/mainloop.h"
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <fcntl.h>

struct QnicQtestServer {
    QnicMachine *machine;
    QnicQtestOutput *out;
    void *out_opaque;
    bool irq_intercepted;
    int irq_level[QNIC_NUM_GSI];
    FILE *log;
};

static void reply(QnicQtestServer *s, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static void reply(QnicQtestServer *s, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *line = NULL;

    va_start(ap, fmt);
    line = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    if (s->log) {
        fprintf(s->log, "[R +%" PRId64 "] %s", qnic_clock_ns(), line);
        fflush(s->log);
    }
    s->out(s->out_opaque, line, strlen(line));
}

QnicQtestServer *qnic_qtest_server_new(QnicMachine *m, QnicQtestOutput *out, void *opaque)
{
    QnicQtestServer *s = g_new0(QnicQtestServer, 1);

    s->machine = m;
    s->out = out;
    s->out_opaque = opaque;
    return s;
}

void qnic_qtest_server_set_machine(QnicQtestServer *s, QnicMachine *m)
{
    s->machine = m;
}

void qnic_qtest_server_set_log(QnicQtestServer *s, FILE *log)
{
    s->log = log;
}

void qnic_qtest_server_free(QnicQtestServer *s)
{
    g_free(s);
}

void qnic_qtest_server_set_irq(QnicQtestServer *s, unsigned gsi, int level)
{
    if (gsi >= QNIC_NUM_GSI) {
        return;
    }
    level = !!level;
    if (s->irq_level[gsi] == level) {
        return;
    }
    s->irq_level[gsi] = level;
    if (s->irq_intercepted) {
        reply(s, "IRQ %s %u\n", level ? "raise" : "lower", gsi);
    }
}

static bool parse_u64(const char *w, uint64_t *v)
{
    char *end;

    if (!w || !*w || *w == '-') {
        return false;
    }
    errno = 0;
    *v = g_ascii_strtoull(w, &end, 0);
    return errno == 0 && *end == '\0';
}

static bool parse_i64(const char *w, int64_t *v)
{
    char *end;

    if (!w || !*w) {
        return false;
    }
    errno = 0;
    *v = g_ascii_strtoll(w, &end, 0);
    return errno == 0 && *end == '\0';
}

/* Largest read/write/memset a test may ask for in one command. */
#define QTEST_MAX_XFER (256u * 1024 * 1024)

static int nwords(char **w)
{
    int n = 0;
    while (w[n]) {
        n++;
    }
    return n;
}

static void cmd_out(QnicQtestServer *s, char **w, unsigned size)
{
    uint64_t addr, val;

    if (nwords(w) != 3 || !parse_u64(w[1], &addr) || !parse_u64(w[2], &val) || addr > 0xffff) {
        reply(s, "FAIL usage: %s PORT VALUE\n", w[0]);
        return;
    }
    qnic_as_store(&s->machine->io, addr, size, val);
    reply(s, "OK\n");
}

static void cmd_in(QnicQtestServer *s, char **w, unsigned size)
{
    uint64_t addr, val;

    if (nwords(w) != 2 || !parse_u64(w[1], &addr) || addr > 0xffff) {
        reply(s, "FAIL usage: %s PORT\n", w[0]);
        return;
    }
    qnic_as_load(&s->machine->io, addr, size, &val);
    reply(s, "OK 0x%04" PRIx64 "\n", val);
}

static void cmd_write(QnicQtestServer *s, char **w, unsigned size)
{
    uint64_t addr, val;

    if (nwords(w) != 3 || !parse_u64(w[1], &addr) || !parse_u64(w[2], &val)) {
        reply(s, "FAIL usage: %s ADDR VALUE\n", w[0]);
        return;
    }
    /* Like a CPU store: one access of that size, to RAM or a device. */
    if (qnic_as_find(&s->machine->mem, addr, NULL)) {
        qnic_as_store(&s->machine->mem, addr, size, val);
    }
    reply(s, "OK\n");
}

static void cmd_read(QnicQtestServer *s, char **w, unsigned size)
{
    uint64_t addr, val;

    if (nwords(w) != 2 || !parse_u64(w[1], &addr)) {
        reply(s, "FAIL usage: %s ADDR\n", w[0]);
        return;
    }
    qnic_as_load(&s->machine->mem, addr, size, &val);
    reply(s, "OK 0x%016" PRIx64 "\n", val);
}

static bool xfer_args(QnicQtestServer *s, char **w, int want, uint64_t *addr, uint64_t *len)
{
    if (nwords(w) != want || !parse_u64(w[1], addr) || !parse_u64(w[2], len)) {
        reply(s, "FAIL usage: %s ADDR SIZE%s\n", w[0], want == 4 ? " DATA" : "");
        return false;
    }
    if (*len > QTEST_MAX_XFER) {
        reply(s, "FAIL size %" PRIu64 " too large (max %u)\n", *len, QTEST_MAX_XFER);
        return false;
    }
    return true;
}

static void cmd_bulk_read(QnicQtestServer *s, char **w, bool b64)
{
    uint64_t addr, len;
    g_autofree uint8_t *buf = NULL;

    if (!xfer_args(s, w, 3, &addr, &len)) {
        return;
    }
    buf = g_malloc0(len ? len : 1);
    qnic_as_rw(&s->machine->mem, addr, buf, len, false);
    if (b64) {
        g_autofree char *enc = g_base64_encode(buf, len);
        reply(s, "OK %s\n", enc);
    } else {
        static const char hex[] = "0123456789abcdef";
        g_autofree char *str = g_malloc(len * 2 + 8);
        char *p = str;
        memcpy(p, "OK 0x", 5);
        p += 5;
        for (uint64_t i = 0; i < len; i++) {
            *p++ = hex[buf[i] >> 4];
            *p++ = hex[buf[i] & 15];
        }
        *p++ = '\n';
        *p = '\0';
        reply(s, "%s", str);
    }
}

static int hexval(char c)
{
    return g_ascii_xdigit_value(c);
}

static void cmd_bulk_write(QnicQtestServer *s, char **w, bool b64)
{
    uint64_t addr, len;
    g_autofree uint8_t *buf = NULL;

    if (!xfer_args(s, w, 4, &addr, &len)) {
        return;
    }
    buf = g_malloc0(len ? len : 1);
    if (b64) {
        gsize out_len = 0;
        g_autofree guchar *dec = g_base64_decode(w[3], &out_len);
        if (out_len != len) {
            /* QEMU writes what it decoded, padded with zeros; say so in
             * the log but accept it. */
            qnic_warn("qtest: b64write: data length %zu does not match size %" PRIu64,
                      (size_t)out_len, len);
        }
        memcpy(buf, dec, MIN((uint64_t)out_len, len));
    } else {
        const char *d = w[3];
        if (d[0] != '0' || (d[1] != 'x' && d[1] != 'X')) {
            reply(s, "FAIL write data must start with 0x\n");
            return;
        }
        d += 2;
        for (uint64_t i = 0; i < len && d[2 * i] && d[2 * i + 1]; i++) {
            int hi = hexval(d[2 * i]), lo = hexval(d[2 * i + 1]);
            if (hi < 0 || lo < 0) {
                reply(s, "FAIL bad hex data\n");
                return;
            }
            buf[i] = (uint8_t)(hi << 4 | lo);
        }
    }
    qnic_as_rw(&s->machine->mem, addr, buf, len, true);
    reply(s, "OK\n");
}

static void cmd_memset(QnicQtestServer *s, char **w)
{
    uint64_t addr, len, pat;
    g_autofree uint8_t *buf = NULL;

    if (nwords(w) != 4 || !parse_u64(w[1], &addr) || !parse_u64(w[2], &len) ||
        !parse_u64(w[3], &pat)) {
        reply(s, "FAIL usage: memset ADDR SIZE PATTERN\n");
        return;
    }
    if (len > QTEST_MAX_XFER) {
        reply(s, "FAIL size %" PRIu64 " too large\n", len);
        return;
    }
    buf = g_malloc(len ? len : 1);
    memset(buf, (int)(pat & 0xff), len);
    qnic_as_rw(&s->machine->mem, addr, buf, len, true);
    reply(s, "OK\n");
}

static void cmd_clock(QnicQtestServer *s, char **w, bool set)
{
    int64_t v, now;

    if (set) {
        if (nwords(w) != 2 || !parse_i64(w[1], &v)) {
            reply(s, "FAIL usage: clock_set NS\n");
            return;
        }
        now = qnic_main_loop_clock_set(v);
    } else if (nwords(w) == 1) {
        int64_t dl = qnic_clock_deadline();
        now = dl >= 0 ? qnic_main_loop_clock_set(dl) : qnic_clock_ns();
    } else {
        if (nwords(w) != 2 || !parse_i64(w[1], &v) || v < 0) {
            reply(s, "FAIL usage: clock_step [NS]\n");
            return;
        }
        now = qnic_main_loop_clock_step(v);
    }
    reply(s, "OK %" PRIi64 "\n", now);
}

static void cmd_irq_intercept(QnicQtestServer *s, char **w)
{
    if (nwords(w) != 2) {
        reply(s, "FAIL usage: %s QOM-PATH\n", w[0]);
        return;
    }
    if (s->irq_intercepted) {
        reply(s, "FAIL Interception already enabled\n");
        return;
    }
    /* The only interrupt controller inputs qnic models are the GSIs, which
     * is what QEMU's "ioapic" path intercepts on pc. */
    s->irq_intercepted = true;
    reply(s, "OK\n");
}

void qnic_qtest_server_process(QnicQtestServer *s, const char *line)
{
    g_auto(GStrv) w = NULL;
    const char *c;

    if (s->log) {
        fprintf(s->log, "[S +%" PRId64 "] %s\n", qnic_clock_ns(), line);
        fflush(s->log);
    }
    w = g_strsplit_set(line, " \t", -1);
    /* Collapse empty words from repeated blanks. */
    {
        int j = 0;
        for (int i = 0; w[i]; i++) {
            if (*w[i]) {
                w[j++] = w[i];
            } else {
                g_free(w[i]);
            }
        }
        w[j] = NULL;
    }
    if (!w[0]) {
        reply(s, "FAIL empty command\n");
        return;
    }
    c = w[0];
    if (!s->machine) {
        reply(s, "FAIL no machine\n");
    } else if (g_str_equal(c, "outb")) {
        cmd_out(s, w, 1);
    } else if (g_str_equal(c, "outw")) {
        cmd_out(s, w, 2);
    } else if (g_str_equal(c, "outl")) {
        cmd_out(s, w, 4);
    } else if (g_str_equal(c, "inb")) {
        cmd_in(s, w, 1);
    } else if (g_str_equal(c, "inw")) {
        cmd_in(s, w, 2);
    } else if (g_str_equal(c, "inl")) {
        cmd_in(s, w, 4);
    } else if (g_str_equal(c, "writeb")) {
        cmd_write(s, w, 1);
    } else if (g_str_equal(c, "writew")) {
        cmd_write(s, w, 2);
    } else if (g_str_equal(c, "writel")) {
        cmd_write(s, w, 4);
    } else if (g_str_equal(c, "writeq")) {
        cmd_write(s, w, 8);
    } else if (g_str_equal(c, "readb")) {
        cmd_read(s, w, 1);
    } else if (g_str_equal(c, "readw")) {
        cmd_read(s, w, 2);
    } else if (g_str_equal(c, "readl")) {
        cmd_read(s, w, 4);
    } else if (g_str_equal(c, "readq")) {
        cmd_read(s, w, 8);
    } else if (g_str_equal(c, "read")) {
        cmd_bulk_read(s, w, false);
    } else if (g_str_equal(c, "b64read")) {
        cmd_bulk_read(s, w, true);
    } else if (g_str_equal(c, "write")) {
        cmd_bulk_write(s, w, false);
    } else if (g_str_equal(c, "b64write")) {
        cmd_bulk_write(s, w, true);
    } else if (g_str_equal(c, "memset")) {
        cmd_memset(s, w);
    } else if (g_str_equal(c, "clock_step")) {
        cmd_clock(s, w, false);
    } else if (g_str_equal(c, "clock_set")) {
        cmd_clock(s, w, true);
    } else if (g_str_equal(c, "irq_intercept_in") || g_str_equal(c, "irq_intercept_out")) {
        cmd_irq_intercept(s, w);
    } else if (g_str_equal(c, "endianness")) {
        reply(s, "OK little\n");
    } else {
        reply(s, "FAIL Unknown command '%s'\n", c);
        return;
    }
    /* Work the command deferred (BHs) runs before the next command, so a
     * test sees its effects without racing the loop. */
    qnic_bh_poll();
}

/* ---- the accelerator: transport and main loop ---- */

typedef struct QtestAccel {
    QnicQtestServer *server;
    int in_fd, out_fd;
    QnicFdWatch *watch;
    GString *inbuf;
    bool closed;
    FILE *log;
} QtestAccel;

static QtestAccel qa = { .in_fd = -1, .out_fd = -1 };

static void qa_output(void *opaque, const char *buf, size_t len)
{
    while (len && !qa.closed) {
        ssize_t n = write(qa.out_fd, buf, len);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN) {
                fd_set wfds;
                FD_ZERO(&wfds);
                FD_SET(qa.out_fd, &wfds);
                select(qa.out_fd + 1, NULL, &wfds, NULL, NULL);
                continue;
            }
            qa.closed = true;
            return;
        }
        buf += n;
        len -= (size_t)n;
    }
}

static void qa_set_gsi(void *opaque, unsigned gsi, int level)
{
    if (qa.server) {
        qnic_qtest_server_set_irq(qa.server, gsi, level);
    }
}

static void qa_readable(void *opaque, int fd, GIOCondition cond)
{
    char buf[65536];
    ssize_t n = read(fd, buf, sizeof(buf));
    char *nl;

    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        qa.closed = true;
        return;
    }
    if (n < 0) {
        return;
    }
    g_string_append_len(qa.inbuf, buf, n);
    while ((nl = memchr(qa.inbuf->str, '\n', qa.inbuf->len))) {
        size_t l = (size_t)(nl - qa.inbuf->str);
        g_autofree char *line = g_strndup(qa.inbuf->str, l);
        if (l && line[l - 1] == '\r') {
            line[l - 1] = '\0';
        }
        g_string_erase(qa.inbuf, 0, l + 1);
        qnic_qtest_server_process(qa.server, line);
    }
    /* A line longer than any command could be is garbage: drop it. */
    if (qa.inbuf->len > 2 * QTEST_MAX_XFER + 4096) {
        g_string_truncate(qa.inbuf, 0);
        reply(qa.server, "FAIL line too long\n");
    }
}

/* One qtest connection per process: the state is this file's qa. */
static bool qa_init(QnicVmmConfig *cfg, QnicMachineConfig *mcfg, void **state,
                    GError **errp)
{
    const char *chr = cfg->qtest;

    if (!chr) {
        qnic_error_setg_invalid(errp, "-accel qtest needs -qtest CHARDEV (unix:PATH or stdio)");
        return false;
    }
    if (g_str_equal(chr, "stdio")) {
        qa.in_fd = STDIN_FILENO;
        qa.out_fd = STDOUT_FILENO;
    } else if (g_str_has_prefix(chr, "unix:")) {
        g_auto(GStrv) parts = g_strsplit(chr + 5, ",", -1);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd;
        for (int i = 1; parts[i]; i++) {
            if (g_str_has_prefix(parts[i], "server")) {
                qnic_error_setg_invalid(errp, "-qtest %s: server mode is not supported; "
                                        "qnic-vmm connects to a listening socket", chr);
                return false;
            }
        }
        if (strlen(parts[0]) >= sizeof(sa.sun_path)) {
            qnic_error_setg_invalid(errp, "-qtest %s: socket path too long", chr);
            return false;
        }
        strcpy(sa.sun_path, parts[0]);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
            qnic_error_setg_errno(errp, errno, "-qtest %s: cannot connect", chr);
            if (fd >= 0) {
                close(fd);
            }
            return false;
        }
        qa.in_fd = qa.out_fd = fd;
    } else {
        qnic_error_setg_invalid(errp, "-qtest %s: expected unix:PATH or stdio", chr);
        return false;
    }
    if (cfg->qtest_log) {
        qa.log = g_str_equal(cfg->qtest_log, "/dev/stderr") ? stderr : fopen(cfg->qtest_log, "w");
    }
    mcfg->set_gsi = qa_set_gsi;
    qnic_clock_set_mode(QNIC_CLOCK_MANUAL);
    *state = &qa;
    return true;
}

static bool qa_machine_ready(void *state, QnicVmmConfig *cfg, QnicMachine *m,
                             const char *cmdline, GError **errp)
{
    qa.server = qnic_qtest_server_new(m, qa_output, NULL);
    qnic_qtest_server_set_log(qa.server, qa.log);
    qa.inbuf = g_string_new(NULL);
    fcntl(qa.in_fd, F_SETFL, fcntl(qa.in_fd, F_GETFL) | O_NONBLOCK);
    qa.watch = qnic_fd_watch_add(qa.in_fd, G_IO_IN | G_IO_HUP | G_IO_ERR, qa_readable, NULL);
    return true;
}

static int qa_run(void *state, QnicVmmConfig *cfg, QnicMachine *m)
{
    int status = 0;

    qnic_bql_lock();
    while (!qa.closed && !qnic_vmm_exit_requested(&status)) {
        qnic_main_loop_iterate(true);
        qnic_vmm_handle_reset_request(m);   /* a write to 0xcf9 or 0x64 */
    }
    qnic_bql_unlock();
    return status;
}

static void qa_cleanup(void *state, QnicMachine *m)
{
    qnic_fd_watch_remove(qa.watch);
    qa.watch = NULL;
    if (qa.in_fd > STDERR_FILENO) {
        close(qa.in_fd);
    }
    qa.in_fd = qa.out_fd = -1;
    qnic_qtest_server_free(qa.server);
    qa.server = NULL;
    if (qa.inbuf) {
        g_string_free(qa.inbuf, TRUE);
        qa.inbuf = NULL;
    }
    if (qa.log && qa.log != stderr) {
        fclose(qa.log);
    }
    qa.log = NULL;
}

/* No CPU: the machine's devices (reset by the caller) are all there is. */
static bool qa_system_reset(void *state, QnicMachine *m, GError **errp)
{
    return true;
}

const QnicAccel qnic_accel_qtest = {
    .system_reset = qa_system_reset,
    .migration = &qnic_migration_qtest_ops,
    .name = "qtest",
    .init = qa_init,
    .machine_ready = qa_machine_ready,
    .run = qa_run,
    .cleanup = qa_cleanup,
};
