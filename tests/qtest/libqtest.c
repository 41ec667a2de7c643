/*
 * The qtest client: spawns the target (qnic-vmm, or QEMU when
 * $QTEST_QEMU_BINARY is set), listens on a unix socket the target connects
 * to, and turns calls into protocol lines. Asynchronous "IRQ" lines are
 * folded into per-line state as they arrive.
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
};

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
}

static void free_state(QTestState *s)
{
    if (s->fd >= 0) {
        close(s->fd);
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
    g_free(s);
}

QTestState *qtest_try_init(unsigned flags, const char *extra_args, char **err_out)
{
    QTestState *s = g_new0(QTestState, 1);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    g_autofree char *sock = NULL, *cmdline = NULL, *bios = NULL;
    g_auto(GStrv) argv = NULL;
    int lfd, efd;
    GError *err = NULL;
    struct pollfd pfd;

    s->fd = -1;
    s->rx = g_string_new(NULL);
    s->alloc_next = 4 * 1024 * 1024;
    s->mmio_next = 0xe0000000ull;
    s->io_next = 0xc000;
    s->is_qemu = qtest_target_is_qemu();
    s->tmpdir = g_dir_make_tmp("qtest-XXXXXX", NULL);
    g_assert(s->tmpdir);
    sock = g_build_filename(s->tmpdir, "qtest.sock", NULL);
    s->errfile = g_build_filename(s->tmpdir, "stderr.txt", NULL);

    lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    g_assert(lfd >= 0);
    g_assert(strlen(sock) < sizeof(sa.sun_path));
    strcpy(sa.sun_path, sock);
    g_assert(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    g_assert(listen(lfd, 1) == 0);

    if (s->is_qemu) {
        const char *run;
        if (flags & QTEST_FLAG_RUNNING) {
            bios = make_halt_bios(s->tmpdir);
            run = "-bios";
        } else {
            run = "-S";
        }
        cmdline = g_strdup_printf("'%s' -machine pc -accel tcg %s %s -nodefaults -display none "
                                  "-monitor none -serial none -qtest unix:%s %s",
                                  qtest_binary(), run, bios ? bios : "", sock,
                                  extra_args ? extra_args : "");
    } else {
        cmdline = g_strdup_printf("'%s' -machine pc -accel qtest -nodefaults -display none "
                                  "-monitor none -serial none -qtest unix:%s %s",
                                  qtest_binary(), sock, extra_args ? extra_args : "");
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

    /* Wait for the connection, or for the target to die trying. */
    pfd.fd = lfd;
    pfd.events = POLLIN;
    for (int waited = 0; waited < 60000; waited += 50) {
        int status;
        if (poll(&pfd, 1, 50) == 1) {
            s->fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
            break;
        }
        if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
            s->pid = 0;
            break;
        }
    }
    close(lfd);
    if (s->fd < 0) {
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
