/*
 * The qtest client: spawns the target (qnic-vmm, or QEMU when
 * $QTEST_QEMU_BINARY is set), listens on a unix socket the target connects
 * to, and turns calls into protocol lines. Asynchronous "IRQ" lines are
 * folded into per-line state as they arrive. With QTEST_FLAG_QMP it also
 * holds the target's QMP connection: JSON objects cut from the byte stream
 * by bracket depth, replies handed back in order, events queued.
 */
#include "libqtest.h"
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

struct QTestState {
    pid_t pid;
    int fd;
    GString *rx;
    bool irq_level[256];
    char *tmpdir;
    char *errfile;
    uint64_t alloc_next;
    uint64_t mmio_next;
    uint32_t io_next;
    bool is_qemu;
    int exit_status;            /* wait status once reaped, else -1 */
    /* QMP */
    int qmp_fd;
    GString *qmp_rx;
    bool qmp_eof;
    JsonNode *qmp_greeting;
    GQueue qmp_events;          /* JsonNode *, oldest first */
    GQueue qmp_replies;         /* replies read while waiting for events */
};

#define QMP_REPLY_TIMEOUT_MS 60000

static JsonNode *qmp_next(QTestState *s, int timeout_ms);

pid_t qtest_pid(QTestState *s)
{
    return s->pid;
}

bool qtest_target_is_qemu(void)
{
    const char *q = g_getenv("QTEST_QEMU_BINARY");
    return q && *q;
}

const char *qtest_binary(void)
{
    const char *b = g_getenv("QTEST_QEMU_BINARY");
    if (b && *b) {
        return b;
    }
    b = g_getenv("QNIC_VMM");
    return b && *b ? b : "qnic-vmm";
}

static char *make_halt_bios(const char *dir)
{
    char *path = g_build_filename(dir, "halt.bin", NULL);
    guint8 *buf = g_malloc(65536);
    memset(buf, 0xf4, 65536);
    g_file_set_contents(path, (const char *)buf, 65536, NULL);
    g_free(buf);
    return path;
}

static void kill_child(QTestState *s)
{
    int status;

    if (s->pid <= 0) {
        return;
    }
    for (int i = 0; i < 100; i++) {       /* up to 1 s to exit on its own */
        if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
            s->pid = 0;
            s->exit_status = status;
            return;
        }
        if (i == 20) {
            kill(s->pid, SIGTERM);
        }
        g_usleep(10000);
    }
    kill(s->pid, SIGKILL);
    waitpid(s->pid, &status, 0);
    s->pid = 0;
    s->exit_status = status;
}

int qtest_wait_exit(QTestState *s, int timeout_ms)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
    int status;

    while (s->pid > 0) {
        pid_t r = waitpid(s->pid, &status, WNOHANG);
        if (r == s->pid) {
            s->pid = 0;
            s->exit_status = status;
            break;
        }
        g_assert_cmpint(r, ==, 0);
        if (g_get_monotonic_time() >= deadline) {
            return -1;
        }
        g_usleep(5000);
    }
    return s->exit_status;
}

static void free_state(QTestState *s)
{
    if (s->fd >= 0) {
        close(s->fd);
    }
    if (s->qmp_fd >= 0) {
        close(s->qmp_fd);
    }
    kill_child(s);
    if (s->tmpdir) {
        g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", s->tmpdir);
        if (system(cmd) != 0) {
            /* leftover temp dir: harmless */
        }
    }
    g_free(s->tmpdir);
    g_free(s->errfile);
    if (s->rx) {
        g_string_free(s->rx, TRUE);
    }
    if (s->qmp_rx) {
        g_string_free(s->qmp_rx, TRUE);
    }
    if (s->qmp_greeting) {
        json_node_unref(s->qmp_greeting);
    }
    g_queue_clear_full(&s->qmp_events, (GDestroyNotify)json_node_unref);
    g_queue_clear_full(&s->qmp_replies, (GDestroyNotify)json_node_unref);
    g_free(s);
}

/* A listening unix socket at path (asserts on failure). */
static int listen_unix(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    g_assert(lfd >= 0);
    g_assert(strlen(path) < sizeof(sa.sun_path));
    strcpy(sa.sun_path, path);
    g_assert(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    g_assert(listen(lfd, 1) == 0);
    return lfd;
}

QTestState *qtest_try_init(unsigned flags, const char *extra_args, char **err_out)
{
    QTestState *s = g_new0(QTestState, 1);
    g_autofree char *sock = NULL, *cmdline = NULL, *bios = NULL;
    g_autofree char *qmp_sock = NULL, *qmp_arg = NULL;
    g_auto(GStrv) argv = NULL;
    int lfd, qmp_lfd = -1, efd;
    GError *err = NULL;
    struct pollfd pfd[2];
    bool want_qmp = flags & QTEST_FLAG_QMP;

    s->fd = -1;
    s->qmp_fd = -1;
    s->exit_status = -1;
    s->rx = g_string_new(NULL);
    s->qmp_rx = g_string_new(NULL);
    g_queue_init(&s->qmp_events);
    g_queue_init(&s->qmp_replies);
    s->alloc_next = 4 * 1024 * 1024;
    s->mmio_next = 0xe0000000ull;
    s->io_next = 0xc000;
    s->is_qemu = qtest_target_is_qemu();
    s->tmpdir = g_dir_make_tmp("qtest-XXXXXX", NULL);
    g_assert(s->tmpdir);
    sock = g_build_filename(s->tmpdir, "qtest.sock", NULL);
    s->errfile = g_build_filename(s->tmpdir, "stderr.txt", NULL);

    lfd = listen_unix(sock);
    if (want_qmp) {
        qmp_sock = g_build_filename(s->tmpdir, "qmp.sock", NULL);
        qmp_lfd = listen_unix(qmp_sock);
        qmp_arg = g_strdup_printf("-qmp unix:%s", qmp_sock);
    }

    if (s->is_qemu) {
        const char *run;
        if (flags & QTEST_FLAG_RUNNING) {
            bios = make_halt_bios(s->tmpdir);
            run = "-bios";
        } else {
            run = "-S";
        }
        cmdline = g_strdup_printf("'%s' -machine pc -accel tcg %s %s -nodefaults -display none "
                                  "-monitor none -serial none -qtest unix:%s %s %s",
                                  qtest_binary(), run, bios ? bios : "", sock,
                                  qmp_arg ? qmp_arg : "", extra_args ? extra_args : "");
    } else {
        cmdline = g_strdup_printf("'%s' -machine pc -accel qtest -nodefaults -display none "
                                  "-monitor none -serial none -qtest unix:%s %s %s",
                                  qtest_binary(), sock, qmp_arg ? qmp_arg : "",
                                  extra_args ? extra_args : "");
    }
    if (g_getenv("QTEST_LOG")) {
        fprintf(stderr, "# qtest: %s\n", cmdline);
    }
    if (!g_shell_parse_argv(cmdline, NULL, &argv, &err)) {
        g_error("qtest: bad command line '%s': %s", cmdline, err->message);
    }
    efd = open(s->errfile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    g_assert(efd >= 0);
    s->pid = fork();
    g_assert(s->pid >= 0);
    if (s->pid == 0) {
        /* Die with the test, even if it aborts on a failed assertion. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(efd, STDERR_FILENO);
        int nfd = open("/dev/null", O_RDWR);
        dup2(nfd, STDIN_FILENO);
        if (!g_getenv("QTEST_LOG")) {
            dup2(nfd, STDOUT_FILENO);
        }
        execvp(argv[0], argv);
        fprintf(stderr, "qtest: cannot exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(efd);

    /* Wait for the connections, in whichever order the target makes them,
     * or for the target to die trying. A negative fd drops out of poll. */
    pfd[0] = (struct pollfd){ .fd = lfd, .events = POLLIN };
    pfd[1] = (struct pollfd){ .fd = qmp_lfd, .events = POLLIN };
    for (int waited = 0; waited < 60000; waited += 50) {
        int status;
        if (s->fd >= 0 && (!want_qmp || s->qmp_fd >= 0)) {
            break;
        }
        if (poll(pfd, 2, 50) > 0) {
            if (pfd[0].fd >= 0 && (pfd[0].revents & POLLIN)) {
                s->fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
                pfd[0].fd = -1;
            }
            if (pfd[1].fd >= 0 && (pfd[1].revents & POLLIN)) {
                s->qmp_fd = accept4(qmp_lfd, NULL, NULL, SOCK_CLOEXEC);
                pfd[1].fd = -1;
            }
            continue;
        }
        if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
            s->pid = 0;
            s->exit_status = status;
            break;
        }
    }
    close(lfd);
    if (qmp_lfd >= 0) {
        close(qmp_lfd);
    }
    if (want_qmp && s->fd >= 0 && s->qmp_fd >= 0) {
        s->qmp_greeting = qmp_next(s, 30000);
    }
    if (s->fd < 0 || (want_qmp && !s->qmp_greeting)) {
        if (err_out) {
            g_file_get_contents(s->errfile, err_out, NULL, NULL);
        }
        free_state(s);
        return NULL;
    }
    return s;
}

QTestState *qtest_initf(unsigned flags, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *args = NULL;
    g_autofree char *err = NULL;
    QTestState *s;

    va_start(ap, fmt);
    args = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    s = qtest_try_init(flags, args, &err);
    if (!s) {
        g_error("qtest: %s did not start with '%s': %s", qtest_binary(), args,
                err ? err : "(no message)");
    }
    return s;
}

QTestState *qtest_init(const char *extra_args)
{
    return qtest_initf(0, "%s", extra_args ? extra_args : "");
}

void qtest_quit(QTestState *s)
{
    if (s) {
        free_state(s);
    }
}

/* ---- protocol ---- */

static void send_line(QTestState *s, const char *line)
{
    size_t len = strlen(line);
    while (len) {
        ssize_t n = write(s->fd, line, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            g_error("qtest: connection to %s lost while sending", qtest_binary());
        }
        line += n;
        len -= (size_t)n;
    }
}

static char *recv_line(QTestState *s)
{
    for (;;) {
        char *nl = memchr(s->rx->str, '\n', s->rx->len);
        if (nl) {
            size_t l = (size_t)(nl - s->rx->str);
            char *line = g_strndup(s->rx->str, l);
            g_string_erase(s->rx, 0, l + 1);
            return line;
        }
        char buf[65536];
        ssize_t n = read(s->fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            g_autofree char *err = NULL;
            g_file_get_contents(s->errfile, &err, NULL, NULL);
            g_error("qtest: %s closed the connection; its stderr: %s", qtest_binary(),
                    err ? err : "");
        }
        g_string_append_len(s->rx, buf, n);
    }
}

/* The reply to the last command, folding in IRQ lines. */
static char *reply(QTestState *s)
{
    for (;;) {
        char *line = recv_line(s);
        if (g_str_has_prefix(line, "IRQ ")) {
            char what[16];
            int num;
            if (sscanf(line + 4, "%15s %d", what, &num) == 2 && num >= 0 && num < 256) {
                s->irq_level[num] = g_str_equal(what, "raise");
            }
            g_free(line);
            continue;
        }
        return line;
    }
}

char *qtest_raw(QTestState *s, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *cmd = NULL, *line = NULL;

    va_start(ap, fmt);
    cmd = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    line = g_strconcat(cmd, "\n", NULL);
    send_line(s, line);
    return reply(s);
}

static char *cmd_ok(QTestState *s, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static char *cmd_ok(QTestState *s, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *cmd = NULL;
    char *r;

    va_start(ap, fmt);
    cmd = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    r = qtest_raw(s, "%s", cmd);
    if (!g_str_has_prefix(r, "OK")) {
        g_error("qtest: '%s' answered '%s'", cmd, r);
    }
    return r;
}

static uint64_t ok_value(char *r)
{
    uint64_t v;
    const char *p = r + 2;
    while (*p == ' ') {
        p++;
    }
    v = g_ascii_strtoull(p, NULL, 0);
    g_free(r);
    return v;
}

void qtest_outb(QTestState *s, uint16_t port, uint8_t v) { g_free(cmd_ok(s, "outb 0x%x 0x%x", port, v)); }
void qtest_outw(QTestState *s, uint16_t port, uint16_t v) { g_free(cmd_ok(s, "outw 0x%x 0x%x", port, v)); }
void qtest_outl(QTestState *s, uint16_t port, uint32_t v) { g_free(cmd_ok(s, "outl 0x%x 0x%x", port, v)); }
uint8_t qtest_inb(QTestState *s, uint16_t port) { return ok_value(cmd_ok(s, "inb 0x%x", port)); }
uint16_t qtest_inw(QTestState *s, uint16_t port) { return ok_value(cmd_ok(s, "inw 0x%x", port)); }
uint32_t qtest_inl(QTestState *s, uint16_t port) { return ok_value(cmd_ok(s, "inl 0x%x", port)); }

void qtest_writeb(QTestState *s, uint64_t a, uint8_t v) { g_free(cmd_ok(s, "writeb 0x%" G_GINT64_MODIFIER "x 0x%x", a, v)); }
void qtest_writew(QTestState *s, uint64_t a, uint16_t v) { g_free(cmd_ok(s, "writew 0x%" G_GINT64_MODIFIER "x 0x%x", a, v)); }
void qtest_writel(QTestState *s, uint64_t a, uint32_t v) { g_free(cmd_ok(s, "writel 0x%" G_GINT64_MODIFIER "x 0x%x", a, v)); }
void qtest_writeq(QTestState *s, uint64_t a, uint64_t v)
{
    g_free(cmd_ok(s, "writeq 0x%" G_GINT64_MODIFIER "x 0x%" G_GINT64_MODIFIER "x", a, v));
}
uint8_t qtest_readb(QTestState *s, uint64_t a) { return ok_value(cmd_ok(s, "readb 0x%" G_GINT64_MODIFIER "x", a)); }
uint16_t qtest_readw(QTestState *s, uint64_t a) { return ok_value(cmd_ok(s, "readw 0x%" G_GINT64_MODIFIER "x", a)); }
uint32_t qtest_readl(QTestState *s, uint64_t a) { return ok_value(cmd_ok(s, "readl 0x%" G_GINT64_MODIFIER "x", a)); }
uint64_t qtest_readq(QTestState *s, uint64_t a) { return ok_value(cmd_ok(s, "readq 0x%" G_GINT64_MODIFIER "x", a)); }

void qtest_memread(QTestState *s, uint64_t addr, void *data, size_t size)
{
    g_autofree char *r = NULL;
    uint8_t *out = data;
    const char *hex;

    if (!size) {
        return;
    }
    r = cmd_ok(s, "read 0x%" G_GINT64_MODIFIER "x 0x%zx", addr, size);
    hex = strstr(r, "0x");
    g_assert(hex && strlen(hex + 2) >= size * 2);
    hex += 2;
    for (size_t i = 0; i < size; i++) {
        out[i] = (uint8_t)(g_ascii_xdigit_value(hex[2 * i]) << 4 | g_ascii_xdigit_value(hex[2 * i + 1]));
    }
}

void qtest_memwrite(QTestState *s, uint64_t addr, const void *data, size_t size)
{
    const uint8_t *in = data;
    GString *str;

    if (!size) {
        return;
    }
    str = g_string_sized_new(size * 2 + 64);
    g_string_printf(str, "write 0x%" G_GINT64_MODIFIER "x 0x%zx 0x", addr, size);
    for (size_t i = 0; i < size; i++) {
        g_string_append_printf(str, "%02x", in[i]);
    }
    g_free(cmd_ok(s, "%s", str->str));
    g_string_free(str, TRUE);
}

void qtest_bufread(QTestState *s, uint64_t addr, void *data, size_t size)
{
    g_autofree char *r = NULL;
    g_autofree guchar *dec = NULL;
    gsize len = 0;

    if (!size) {
        return;
    }
    r = cmd_ok(s, "b64read 0x%" G_GINT64_MODIFIER "x 0x%zx", addr, size);
    dec = g_base64_decode(r + 3, &len);
    g_assert_cmpuint(len, ==, size);
    memcpy(data, dec, size);
}

void qtest_bufwrite(QTestState *s, uint64_t addr, const void *data, size_t size)
{
    g_autofree char *enc = NULL;

    if (!size) {
        return;
    }
    enc = g_base64_encode(data, size);
    g_free(cmd_ok(s, "b64write 0x%" G_GINT64_MODIFIER "x 0x%zx %s", addr, size, enc));
}

void qtest_memset(QTestState *s, uint64_t addr, uint8_t pattern, size_t size)
{
    if (size) {
        g_free(cmd_ok(s, "memset 0x%" G_GINT64_MODIFIER "x 0x%zx 0x%02x", addr, size, pattern));
    }
}

int64_t qtest_clock_step(QTestState *s, int64_t ns)
{
    return (int64_t)ok_value(cmd_ok(s, "clock_step %" G_GINT64_FORMAT, ns));
}

int64_t qtest_clock_step_next(QTestState *s)
{
    return (int64_t)ok_value(cmd_ok(s, "clock_step"));
}

int64_t qtest_clock_set(QTestState *s, int64_t ns)
{
    return (int64_t)ok_value(cmd_ok(s, "clock_set %" G_GINT64_FORMAT, ns));
}

void qtest_irq_intercept_in(QTestState *s, const char *qom_path)
{
    g_free(cmd_ok(s, "irq_intercept_in %s", qom_path));
}

bool qtest_get_irq(QTestState *s, int num)
{
    /* Drain IRQ lines that arrived since the last reply. */
    g_free(cmd_ok(s, "endianness"));
    return num >= 0 && num < 256 && s->irq_level[num];
}

/* ---- PCI ---- */

static void cfg_addr(QTestState *s, int devfn, uint8_t off)
{
    qtest_outl(s, 0xcf8, 0x80000000u | ((uint32_t)devfn << 8) | (off & 0xfc));
}

uint8_t qtest_pci_cfg_readb(QTestState *s, int devfn, uint8_t off)
{
    cfg_addr(s, devfn, off);
    return qtest_inb(s, 0xcfc + (off & 3));
}

uint16_t qtest_pci_cfg_readw(QTestState *s, int devfn, uint8_t off)
{
    cfg_addr(s, devfn, off);
    return qtest_inw(s, 0xcfc + (off & 2));
}

uint32_t qtest_pci_cfg_readl(QTestState *s, int devfn, uint8_t off)
{
    cfg_addr(s, devfn, off);
    return qtest_inl(s, 0xcfc);
}

void qtest_pci_cfg_writeb(QTestState *s, int devfn, uint8_t off, uint8_t v)
{
    cfg_addr(s, devfn, off);
    qtest_outb(s, 0xcfc + (off & 3), v);
}

void qtest_pci_cfg_writew(QTestState *s, int devfn, uint8_t off, uint16_t v)
{
    cfg_addr(s, devfn, off);
    qtest_outw(s, 0xcfc + (off & 2), v);
}

void qtest_pci_cfg_writel(QTestState *s, int devfn, uint8_t off, uint32_t v)
{
    cfg_addr(s, devfn, off);
    qtest_outl(s, 0xcfc, v);
}

uint64_t qtest_pci_bar_size(QTestState *s, int devfn, int bar, uint32_t *type)
{
    uint8_t off = 0x10 + 4 * bar;
    uint32_t old = qtest_pci_cfg_readl(s, devfn, off), lo, hi = 0xffffffff;
    uint64_t mask;

    qtest_pci_cfg_writel(s, devfn, off, 0xffffffff);
    lo = qtest_pci_cfg_readl(s, devfn, off);
    qtest_pci_cfg_writel(s, devfn, off, old);
    if (type) {
        *type = old & ((old & 1) ? 0x3 : 0xf);
    }
    if (lo == 0) {
        return 0;
    }
    if (old & 1) {
        mask = lo & ~3u;
        return (uint32_t)(~mask + 1) & 0xffff;
    }
    if ((old & 6) == 4) {
        uint32_t oldhi = qtest_pci_cfg_readl(s, devfn, off + 4);
        qtest_pci_cfg_writel(s, devfn, off + 4, 0xffffffff);
        hi = qtest_pci_cfg_readl(s, devfn, off + 4);
        qtest_pci_cfg_writel(s, devfn, off + 4, oldhi);
        mask = ((uint64_t)hi << 32) | (lo & ~15u);
        return ~mask + 1;
    }
    mask = lo & ~15u;
    return (uint32_t)(~mask + 1);
}

void qtest_pci_enable(QTestState *s, int devfn, uint64_t addrs[6])
{
    for (int bar = 0; bar < 6; bar++) {
        uint32_t type;
        uint64_t size = qtest_pci_bar_size(s, devfn, bar, &type);
        uint8_t off = 0x10 + 4 * bar;

        addrs[bar] = 0;
        if (!size) {
            continue;
        }
        if (type & 1) {
            uint32_t a = (s->io_next + (uint32_t)size - 1) & ~((uint32_t)size - 1);
            qtest_pci_cfg_writel(s, devfn, off, a);
            s->io_next = a + (uint32_t)size;
            addrs[bar] = a;
        } else {
            uint64_t a = (s->mmio_next + size - 1) & ~(size - 1);
            qtest_pci_cfg_writel(s, devfn, off, (uint32_t)a);
            if ((type & 6) == 4) {
                qtest_pci_cfg_writel(s, devfn, off + 4, (uint32_t)(a >> 32));
            }
            s->mmio_next = a + size;
            addrs[bar] = a;
            if ((type & 6) == 4) {
                bar++;
                addrs[bar] = 0;
            }
        }
    }
    qtest_pci_cfg_writew(s, devfn, 0x04, 0x7);
}

uint64_t qtest_guest_alloc(QTestState *s, size_t size, size_t align)
{
    uint64_t a;

    if (align < 16) {
        align = 16;
    }
    a = (s->alloc_next + align - 1) & ~((uint64_t)align - 1);
    s->alloc_next = a + size;
    g_assert(s->alloc_next < 120 * 1024 * 1024);
    return a;
}

/* ---- QMP ---- */

static char *target_stderr(QTestState *s)
{
    char *err = NULL;
    g_file_get_contents(s->errfile, &err, NULL, NULL);
    return err ? err : g_strdup("");
}

/* Length of the first complete JSON object or array in buf (leading
 * whitespace skipped, its length in *skip), 0 while it is incomplete. The
 * scan counts bracket depth outside strings, which is all QMP framing
 * needs: the parser judges the text afterwards. */
static size_t json_frame(const char *buf, size_t len, size_t *skip)
{
    size_t i = 0;
    int depth = 0;
    bool in_str = false, esc = false;

    while (i < len && g_ascii_isspace(buf[i])) {
        i++;
    }
    *skip = i;
    for (; i < len; i++) {
        char c = buf[i];
        if (in_str) {
            if (esc) {
                esc = false;
            } else if (c == '\\') {
                esc = true;
            } else if (c == '"') {
                in_str = false;
            }
            continue;
        }
        if (c == '"') {
            in_str = true;
        } else if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            if (--depth == 0) {
                return i + 1 - *skip;
            }
        } else if (depth == 0) {
            g_error("qmp: %s sent text outside a JSON object: '%.*s'", qtest_binary(),
                    (int)MIN(len - *skip, 200), buf + *skip);
        }
    }
    return 0;
}

/* Read what is there within timeout_ms; false on timeout or EOF. */
static bool qmp_fill(QTestState *s, int timeout_ms)
{
    struct pollfd pfd = { .fd = s->qmp_fd, .events = POLLIN };
    char buf[65536];
    ssize_t n;
    int r;

    if (s->qmp_eof) {
        return false;
    }
    do {
        r = poll(&pfd, 1, MAX(timeout_ms, 0));
    } while (r < 0 && errno == EINTR);
    g_assert(r >= 0);
    if (r == 0) {
        return false;
    }
    do {
        n = read(s->qmp_fd, buf, sizeof(buf));
    } while (n < 0 && errno == EINTR);
    if (n <= 0) {
        s->qmp_eof = true;      /* closed, or reset (ECONNRESET) */
        return false;
    }
    g_string_append_len(s->qmp_rx, buf, n);
    return true;
}

/* The next message from the wire, NULL after timeout_ms or at EOF. */
static JsonNode *qmp_next(QTestState *s, int timeout_ms)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

    g_assert(s->qmp_fd >= 0);
    for (;;) {
        size_t skip, len = json_frame(s->qmp_rx->str, s->qmp_rx->len, &skip);
        if (len) {
            g_autoptr(JsonParser) parser = json_parser_new();
            GError *err = NULL;
            JsonNode *node;

            if (!json_parser_load_from_data(parser, s->qmp_rx->str + skip, (gssize)len, &err)) {
                g_error("qmp: %s sent bad JSON (%s): %.*s", qtest_binary(), err->message,
                        (int)len, s->qmp_rx->str + skip);
            }
            node = json_parser_steal_root(parser);
            g_string_erase(s->qmp_rx, 0, (gssize)(skip + len));
            if (g_getenv("QTEST_LOG")) {
                g_autofree char *t = qtest_qmp_to_string(node);
                fprintf(stderr, "# qmp <- %s\n", t);
            }
            if (!JSON_NODE_HOLDS_OBJECT(node)) {
                g_autofree char *t = qtest_qmp_to_string(node);
                g_error("qmp: %s sent a message that is not an object: %s", qtest_binary(), t);
            }
            return node;
        }
        gint64 left = (deadline - g_get_monotonic_time()) / 1000;
        if (!qmp_fill(s, (int)MAX(left, 0))) {
            if (s->qmp_eof || g_get_monotonic_time() >= deadline) {
                return NULL;
            }
        }
    }
}

static bool is_event(JsonNode *node)
{
    return json_object_has_member(json_node_get_object(node), "event");
}

JsonNode *qtest_qmp_greeting(QTestState *s)
{
    g_assert(s->qmp_greeting);
    return s->qmp_greeting;
}

void qtest_qmp_send_raw(QTestState *s, const char *text)
{
    size_t len = strlen(text);

    g_assert(s->qmp_fd >= 0);
    if (g_getenv("QTEST_LOG")) {
        fprintf(stderr, "# qmp -> %s", text);
    }
    while (len) {
        ssize_t n = send(s->qmp_fd, text, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            g_autofree char *err = target_stderr(s);
            g_error("qmp: connection to %s lost while sending; its stderr: %s", qtest_binary(),
                    err);
        }
        text += n;
        len -= (size_t)n;
    }
}

JsonNode *qtest_qmp_fd(QTestState *s, int fd, const char *text)
{
    struct msghdr msg = { 0 };
    struct iovec iov = { (void *)text, strlen(text) };
    char ctl[CMSG_SPACE(sizeof(int))];
    struct cmsghdr *c;
    JsonNode *r;

    memset(ctl, 0, sizeof(ctl));
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = ctl;
    msg.msg_controllen = sizeof(ctl);
    c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
    /* the whole command in one message, so the fd arrives with it */
    g_assert_cmpint(sendmsg(s->qmp_fd, &msg, MSG_NOSIGNAL), ==, (ssize_t)strlen(text));
    r = qtest_qmp_receive(s, QMP_REPLY_TIMEOUT_MS);
    g_assert(r);
    return r;
}

char *qtest_stderr(QTestState *s)
{
    return target_stderr(s);
}

JsonNode *qtest_qmp_receive(QTestState *s, int timeout_ms)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

    if (!g_queue_is_empty(&s->qmp_replies)) {
        return g_queue_pop_head(&s->qmp_replies);
    }
    for (;;) {
        gint64 left = (deadline - g_get_monotonic_time()) / 1000;
        JsonNode *node = qmp_next(s, (int)MAX(left, 0));
        if (!node) {
            return NULL;
        }
        if (!is_event(node)) {
            return node;
        }
        g_queue_push_tail(&s->qmp_events, node);
    }
}

JsonNode *qtest_qmp_raw(QTestState *s, const char *text)
{
    JsonNode *r;

    qtest_qmp_send_raw(s, text);
    r = qtest_qmp_receive(s, QMP_REPLY_TIMEOUT_MS);
    if (!r) {
        g_autofree char *err = target_stderr(s);
        g_error("qmp: no reply from %s to '%s' (%s); its stderr: %s", qtest_binary(), text,
                s->qmp_eof ? "connection closed" : "timeout", err);
    }
    return r;
}

static JsonNode *qmp_vsend(QTestState *s, const char *fmt, va_list ap) G_GNUC_PRINTF(2, 0);

static JsonNode *qmp_vsend(QTestState *s, const char *fmt, va_list ap)
{
    g_autofree char *cmd = g_strdup_vprintf(fmt, ap);

    if (!g_str_has_suffix(cmd, "\n")) {
        char *nl = g_strconcat(cmd, "\n", NULL);
        g_free(cmd);
        cmd = nl;
    }
    return qtest_qmp_raw(s, cmd);
}

JsonNode *qtest_qmp(QTestState *s, const char *fmt, ...)
{
    va_list ap;
    JsonNode *r;

    va_start(ap, fmt);
    r = qmp_vsend(s, fmt, ap);
    va_end(ap);
    return r;
}

void qtest_qmp_assert_ok(QTestState *s, const char *fmt, ...)
{
    va_list ap;
    JsonNode *r;

    va_start(ap, fmt);
    r = qmp_vsend(s, fmt, ap);
    va_end(ap);
    if (!qtest_qmp_return(r)) {
        g_autofree char *t = qtest_qmp_to_string(r);
        g_error("qmp: command failed: %s", t);
    }
    json_node_unref(r);
}

void qtest_qmp_assert_error(JsonNode *reply, const char *cls, const char *desc)
{
    g_autofree char *t = qtest_qmp_to_string(reply);

    g_test_message("reply: %s", t);
    g_assert_cmpstr(qtest_qmp_error_class(reply), ==, cls);
    g_assert_cmpstr(qtest_qmp_error_desc(reply), ==, desc);
    json_node_unref(reply);
}

void qtest_qmp_negotiate(QTestState *s)
{
    JsonNode *r = qtest_qmp(s, "{\"execute\": \"qmp_capabilities\"}");
    JsonNode *ret = qtest_qmp_return(r);
    g_autofree char *t = qtest_qmp_to_string(r);

    if (!ret || !JSON_NODE_HOLDS_OBJECT(ret) || json_object_get_size(json_node_get_object(ret))) {
        g_error("qmp: qmp_capabilities answered %s", t);
    }
    json_node_unref(r);
}

static bool event_is(JsonNode *node, const char *name)
{
    JsonNode *n = qtest_qmp_get(node, "event");
    return n && JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_STRING &&
           g_str_equal(json_node_get_string(n), name);
}

JsonNode *qtest_qmp_event(QTestState *s, const char *name, int timeout_ms)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

    for (GList *l = s->qmp_events.head; l; l = l->next) {
        if (event_is(l->data, name)) {
            JsonNode *node = l->data;
            g_queue_delete_link(&s->qmp_events, l);
            return node;
        }
    }
    for (;;) {
        gint64 left = (deadline - g_get_monotonic_time()) / 1000;
        JsonNode *node = qmp_next(s, (int)MAX(left, 0));
        if (!node) {
            return NULL;
        }
        if (!is_event(node)) {
            g_queue_push_tail(&s->qmp_replies, node);
        } else if (event_is(node, name)) {
            return node;
        } else {
            g_queue_push_tail(&s->qmp_events, node);
        }
    }
}

bool qtest_qmp_eof(QTestState *s, int timeout_ms)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

    while (!s->qmp_eof) {
        gint64 left = (deadline - g_get_monotonic_time()) / 1000;
        JsonNode *node = qmp_next(s, (int)MAX(left, 0));
        if (node) {
            g_queue_push_tail(is_event(node) ? &s->qmp_events : &s->qmp_replies, node);
        } else if (!s->qmp_eof) {
            return false;
        }
    }
    return true;
}

JsonNode *qtest_qmp_get(JsonNode *node, const char *path)
{
    g_auto(GStrv) parts = g_strsplit(path, ".", -1);

    for (int i = 0; node && parts[i]; i++) {
        if (!JSON_NODE_HOLDS_OBJECT(node)) {
            return NULL;
        }
        node = json_object_get_member(json_node_get_object(node), parts[i]);
    }
    return node;
}

static const char *get_string(JsonNode *node, const char *path)
{
    JsonNode *n = qtest_qmp_get(node, path);
    if (!n || !JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_STRING) {
        return NULL;
    }
    return json_node_get_string(n);
}

const char *qtest_qmp_error_class(JsonNode *reply)
{
    return get_string(reply, "error.class");
}

const char *qtest_qmp_error_desc(JsonNode *reply)
{
    return get_string(reply, "error.desc");
}

JsonNode *qtest_qmp_return(JsonNode *reply)
{
    return qtest_qmp_get(reply, "return");
}

char *qtest_qmp_to_string(JsonNode *node)
{
    return node ? json_to_string(node, FALSE) : g_strdup("(null)");
}
