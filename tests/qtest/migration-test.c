/*
 * Migration between two target processes in qtest mode, written against
 * QEMU 7.2 and run unchanged against qnic-vmm: the QMP commands and their
 * errors (migrate, migrate-incoming, query-migrate, the capabilities,
 * getfd), the MIGRATION/STOP/RESUME events in QEMU's order, the run states
 * on both sides (source postmigrate; destination paused or running), and
 * guest RAM arriving intact over unix:, tcp:, fd:, exec: and (qnic only)
 * file:, with -incoming URI and -incoming defer + migrate-incoming. Then
 * qnic's own checks: a device whose model cannot save its state blocks
 * migrate with its name; a destination built differently refuses the
 * stream saying what differs and exits 1; and, for each NIC model that
 * saves its state, a driver moves frames through a stream netdev to a peer
 * the test runs, the source migrates mid-stream, the driver carries on at
 * the destination on the same rings, every frame either way arrives
 * exactly once, and the destination's device state equals the source's
 * field by field (x-query-device-state, qnic/state.h's dump). As root,
 * the same with virtio-net-pci's two queue pairs over a multiqueue tap that
 * both targets attach to, in a network namespace the test creates: frames
 * both ways on both pairs (also against QEMU 7.2).
 */
#include "libqtest.h"
#include "qtest-net.h"
#include "virtio-driver.h"
#include "e1000-driver.h"
#include "rtl8139-driver.h"
#include <arpa/inet.h>

#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <netinet/in.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>

#define F64(b) (1ull << (b))

#define WAIT_MS 60000

/* A guest page with a pattern no other page has. */
static void fill_page(uint8_t *p, uint64_t addr)
{
    for (int i = 0; i < 4096; i++) {
        p[i] = (uint8_t)(addr >> 12) ^ (uint8_t)(i * 13) ^ 0x5a;
    }
}

static const uint64_t probe_pages[] = {
    0x400000, 0x401000, 0x7fff000, 0x1234000, 0x100000,
};

static void write_probes(QTestState *s)
{
    uint8_t p[4096];

    for (size_t i = 0; i < G_N_ELEMENTS(probe_pages); i++) {
        fill_page(p, probe_pages[i]);
        qtest_bufwrite(s, probe_pages[i], p, sizeof(p));
    }
}

static void check_probes(QTestState *s)
{
    uint8_t want[4096], got[4096];

    for (size_t i = 0; i < G_N_ELEMENTS(probe_pages); i++) {
        fill_page(want, probe_pages[i]);
        qtest_bufread(s, probe_pages[i], got, sizeof(got));
        g_assert_cmpmem(got, sizeof(got), want, sizeof(want));
    }
    /* a page the source never wrote is zero */
    qtest_bufread(s, 0x2000000, got, sizeof(got));
    for (int i = 0; i < 4096; i++) {
        g_assert_cmpint(got[i], ==, 0);
    }
}

/* A target with QMP and the events capability on. */
static QTestState *start_flags(const char *args, int flags)
{
    QTestState *s = qtest_initf(QTEST_FLAG_QMP | flags, "%s", args);

    qtest_qmp_negotiate(s);
    qtest_qmp_assert_ok(s, "{\"execute\": \"migrate-set-capabilities\", \"arguments\": "
                        "{\"capabilities\": [{\"capability\": \"events\", \"state\": true}]}}");
    return s;
}

static QTestState *start(const char *args)
{
    return start_flags(args, 0);
}

static char *status_of(QTestState *s)
{
    g_autoptr(JsonNode) r = qtest_qmp(s, "{\"execute\": \"query-status\"}");
    return g_strdup(json_node_get_string(qtest_qmp_get(r, "return.status")));
}

static char *migrate_status(QTestState *s)
{
    g_autoptr(JsonNode) r = qtest_qmp(s, "{\"execute\": \"query-migrate\"}");
    JsonNode *n = qtest_qmp_get(r, "return.status");
    return g_strdup(n ? json_node_get_string(n) : "");
}

/* Take MIGRATION events until status `want` (asserting none is failed). */
static void wait_migration(QTestState *s, const char *want)
{
    for (;;) {
        g_autoptr(JsonNode) ev = qtest_qmp_event(s, "MIGRATION", WAIT_MS);
        const char *st;
        g_assert(ev);
        st = json_node_get_string(qtest_qmp_get(ev, "data.status"));
        if (strcmp(st, want) == 0) {
            return;
        }
        if (strcmp(st, "failed") == 0) {
            g_autofree char *err = qtest_stderr(s);
            g_error("migration failed; stderr: %s", err);
        }
    }
}

static void migrate(QTestState *s, const char *uri)
{
    qtest_qmp_assert_ok(s, "{\"execute\": \"migrate\", \"arguments\": {\"uri\": \"%s\"}}", uri);
}

/* Both sides done: the source in postmigrate with its numbers, the
 * destination in prelaunch (QEMU's source was -S) or running (qnic's ran). */
/* QEMU enters postmigrate just after its completed event. */
static void wait_postmigrate(QTestState *s)
{
    for (int i = 0; i < WAIT_MS / 10; i++) {
        g_autofree char *st = status_of(s);
        if (strcmp(st, "postmigrate") == 0) {
            return;
        }
        g_assert_cmpstr(st, ==, "finish-migrate");
        g_usleep(10000);
    }
    g_error("the source never reached postmigrate");
}

static void check_done(QTestState *src, QTestState *dst)
{
    g_autofree char *ds = NULL;
    g_autoptr(JsonNode) r = qtest_qmp(src, "{\"execute\": \"query-migrate\"}");

    wait_postmigrate(src);
    g_assert_cmpstr(json_node_get_string(qtest_qmp_get(r, "return.status")), ==, "completed");
    g_assert_cmpint(json_node_get_int(qtest_qmp_get(r, "return.ram.total")), >=, 128 << 20);
    g_assert_cmpint(json_node_get_int(qtest_qmp_get(r, "return.ram.transferred")), >=,
                    G_N_ELEMENTS(probe_pages) * 4096);
    g_assert(qtest_qmp_get(r, "return.downtime"));
    wait_migration(dst, "completed");
    ds = status_of(dst);
    /* QEMU's source was -S: the destination takes its prelaunch */
    g_assert_cmpstr(ds, ==, qtest_target_is_qemu() ? "prelaunch" : "running");
    if (!qtest_target_is_qemu()) {
        g_autoptr(JsonNode) ev = qtest_qmp_event(dst, "RESUME", WAIT_MS);
        g_assert(ev);
    }
    check_probes(dst);
}

static char *tmp_path(const char *name)
{
    static char *dir;

    if (!dir) {
        dir = g_dir_make_tmp("migration-test-XXXXXX", NULL);
    }
    return g_build_filename(dir, name, NULL);
}

/* Source to a destination listening on uri (given on its command line). */
static void test_uri(const char *uri, bool defer)
{
    QTestState *src = start("-m 128");
    g_autofree char *dargs = g_strdup_printf("-m 128 -incoming %s", defer ? "defer" : uri);
    QTestState *dst = start(dargs);
    g_autofree char *st = status_of(dst);

    g_assert_cmpstr(st, ==, "inmigrate");
    if (defer) {
        JsonNode *r;
        qtest_qmp_assert_ok(dst, "{\"execute\": \"migrate-incoming\", \"arguments\": "
                            "{\"uri\": \"%s\"}}", uri);
        r = qtest_qmp(dst, "{\"execute\": \"migrate-incoming\", \"arguments\": "
                      "{\"uri\": \"%s\"}}", uri);
        qtest_qmp_assert_error(r, "GenericError",
                               "The incoming migration has already been started");
    }
    write_probes(src);
    migrate(src, uri);
    wait_migration(src, "completed");
    check_done(src, dst);
    qtest_quit(src);
    qtest_quit(dst);
}

static void test_unix(void)
{
    g_autofree char *p = tmp_path("unix.sock");
    g_autofree char *uri = g_strdup_printf("unix:%s", p);
    test_uri(uri, false);
}

static void test_unix_defer(void)
{
    g_autofree char *p = tmp_path("defer.sock");
    g_autofree char *uri = g_strdup_printf("unix:%s", p);
    test_uri(uri, true);
}

static int free_tcp_port(void)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t l = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    g_assert(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    g_assert(getsockname(fd, (struct sockaddr *)&sa, &l) == 0);
    close(fd);
    return ntohs(sa.sin_port);
}

static void test_tcp(void)
{
    g_autofree char *uri = g_strdup_printf("tcp:127.0.0.1:%d", free_tcp_port());
    test_uri(uri, true);
}

/* The source's channel is a descriptor the test connects and hands over
 * with getfd. */
static void test_fd(void)
{
    g_autofree char *p = tmp_path("fd.sock");
    g_autofree char *uri = g_strdup_printf("unix:%s", p);
    QTestState *src = start("-m 128");
    QTestState *dst = start("-m 128 -incoming defer");
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    g_autoptr(JsonNode) r = NULL;

    qtest_qmp_assert_ok(dst, "{\"execute\": \"migrate-incoming\", \"arguments\": "
                        "{\"uri\": \"%s\"}}", uri);
    strcpy(sa.sun_path, p);
    g_assert(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    r = qtest_qmp_fd(src, fd, "{\"execute\": \"getfd\", \"arguments\": "
                     "{\"fdname\": \"migfd\"}}\n");
    g_assert(qtest_qmp_return(r));
    close(fd);
    write_probes(src);
    migrate(src, "fd:migfd");
    wait_migration(src, "completed");
    check_done(src, dst);
    qtest_quit(src);
    qtest_quit(dst);
}

/* A snapshot: the source writes a file (exec:cat, or qnic's file:) and
 * stays in postmigrate; a new process restores it with -incoming. */
static void test_snapshot(bool file)
{
    g_autofree char *p = tmp_path(file ? "snap.file" : "snap.exec");
    g_autofree char *out = file ? g_strdup_printf("file:%s", p)
                                : g_strdup_printf("exec:cat > %s", p);
    g_autofree char *in = file ? g_strdup_printf("file:%s", p)
                               : g_strdup_printf("exec:cat %s", p);
    QTestState *src = start("-m 128"), *dst;

    write_probes(src);
    migrate(src, out);
    wait_migration(src, "completed");
    wait_postmigrate(src);
    /* defer: the events capability must be on before the load starts */
    dst = start("-m 128 -incoming defer");
    qtest_qmp_assert_ok(dst, "{\"execute\": \"migrate-incoming\", \"arguments\": "
                        "{\"uri\": \"%s\"}}", in);
    check_done(src, dst);
    qtest_quit(src);
    qtest_quit(dst);
}

static void test_exec(void)
{
    test_snapshot(false);
}

static void test_file(void)
{
    if (qtest_target_is_qemu()) {
        g_test_skip("QEMU 7.2 has no file: migration URI (qnic's snapshot URI)");
        return;
    }
    test_snapshot(true);
}

/* QEMU's replies to the commands' mistakes, and its event order. */
static void test_errors(void)
{
    QTestState *s = start("-m 128");
    JsonNode *r;
    JsonArray *caps;
    gint64 t0;

    r = qtest_qmp(s, "{\"execute\": \"query-migrate-capabilities\"}");
    caps = json_node_get_array(qtest_qmp_return(r));
    g_assert_cmpint(json_array_get_length(caps), ==, 21);
    g_assert_cmpstr(json_object_get_string_member(json_array_get_object_element(caps, 5),
                                                  "capability"), ==, "events");
    g_assert_true(json_object_get_boolean_member(json_array_get_object_element(caps, 5),
                                                 "state"));
    json_node_unref(r);
    r = qtest_qmp(s, "{\"execute\": \"migrate-set-capabilities\", \"arguments\": "
                  "{\"capabilities\": [{\"capability\": \"foo\", \"state\": true}]}}");
    qtest_qmp_assert_error(r, "GenericError", "Parameter 'capability' does not accept value 'foo'");
    r = qtest_qmp(s, "{\"execute\": \"migrate\", \"arguments\": {\"uri\": \"bogus:x\"}}");
    qtest_qmp_assert_error(r, "GenericError", "Parameter 'uri' expects a valid migration protocol");
    r = qtest_qmp(s, "{\"execute\": \"migrate\", \"arguments\": {\"uri\": \"tcp:127.0.0.1\"}}");
    qtest_qmp_assert_error(r, "GenericError", "error parsing address '127.0.0.1'");
    r = qtest_qmp(s, "{\"execute\": \"migrate\", \"arguments\": {\"uri\": \"fd:nope\"}}");
    qtest_qmp_assert_error(r, "GenericError", "File descriptor named 'nope' has not been found");
    r = qtest_qmp(s, "{\"execute\": \"getfd\", \"arguments\": {\"fdname\": \"x\"}}");
    qtest_qmp_assert_error(r, "GenericError", "No file descriptor supplied via SCM_RIGHTS");
    r = qtest_qmp(s, "{\"execute\": \"migrate-incoming\", \"arguments\": {\"uri\": \"unix:/x\"}}");
    qtest_qmp_assert_error(r, "GenericError", "'-incoming' was not specified on the command line");
    /* a failed connect: migrate returns, then the migration fails */
    migrate(s, "unix:/nonexistent/x");
    t0 = g_get_monotonic_time();
    for (;;) {
        g_autofree char *st = migrate_status(s);
        if (strcmp(st, "failed") == 0) {
            break;
        }
        g_assert_cmpint(g_get_monotonic_time() - t0, <, WAIT_MS * 1000ll);
        g_usleep(10000);
    }
    r = qtest_qmp(s, "{\"execute\": \"query-migrate\"}");
    g_assert_cmpstr(json_node_get_string(qtest_qmp_get(r, "return.error-desc")), ==,
                    "Failed to connect to '/nonexistent/x': No such file or directory");
    json_node_unref(r);
    g_autofree char *st = status_of(s);
    g_assert_cmpstr(st, ==, qtest_target_is_qemu() ? "prelaunch" : "running");
    qtest_qmp_assert_ok(s, "{\"execute\": \"migrate_cancel\"}");
    qtest_quit(s);
}

/* ---- qnic only ---- */

/* A destination with less RAM refuses the stream, says why, exits 1. */
static void test_mismatch(void)
{
    g_autofree char *p = tmp_path("mismatch.sock");
    g_autofree char *uri = g_strdup_printf("unix:%s", p);
    QTestState *src, *dst;
    g_autofree char *err = NULL;

    if (qtest_target_is_qemu()) {
        g_test_skip("qnic's machine description check (QEMU fails later, on its RAM block)");
        return;
    }
    src = start("-m 128");
    g_autofree char *dargs = g_strdup_printf("-m 64 -incoming %s", uri);
    dst = start(dargs);
    migrate(src, uri);
    g_assert_cmpint(qtest_wait_exit(dst, WAIT_MS), !=, -1);
    err = qtest_stderr(dst);
    g_assert_nonnull(strstr(err, "load of migration failed: the incoming machine does not "
                                 "match this one: the source has 134217728 bytes of RAM, "
                                 "this machine 67108864"));
    qtest_quit(src);
    qtest_quit(dst);
}

/* A NIC whose model cannot save its state blocks migrate, named; once
 * every model saves its state there is nothing left to block. */
static void test_blocked(void)
{
    static const char *const models[] = { "virtio-net-pci", "e1000", "rtl8139" };
    int blocked = 0;

    if (qtest_target_is_qemu()) {
        g_test_skip("qnic's x-query-device-state (every QEMU NIC migrates)");
        return;
    }
    for (size_t i = 0; i < G_N_ELEMENTS(models); i++) {
        g_autofree char *args = g_strdup_printf("-m 128 -netdev hubport,id=n0,hubid=0 "
                                                "-device %s,netdev=n0,id=nic0", models[i]);
        g_autofree char *want = g_strdup_printf(
            "State blocked by non-migratable device '/machine/peripheral/nic0' (%s): "
            "its model cannot save its state yet", models[i]);
        QTestState *s = start(args);
        JsonNode *r;

        qtest_qmp_assert_ok(s, "{\"execute\": \"stop\"}");
        r = qtest_qmp(s, "{\"execute\": \"x-query-device-state\", \"arguments\": "
                      "{\"id\": \"nic0\"}}");
        if (qtest_qmp_return(r)) {
            g_test_message("%s saves its state", models[i]);
            json_node_unref(r);
            qtest_quit(s);
            continue;
        }
        json_node_unref(r);
        r = qtest_qmp(s, "{\"execute\": \"migrate\", \"arguments\": "
                      "{\"uri\": \"unix:/nonexistent/x\"}}");
        qtest_qmp_assert_error(r, "GenericError", want);
        g_autofree char *st = status_of(s);
        g_assert_cmpstr(st, ==, "paused");
        blocked++;
        qtest_quit(s);
    }
    if (!blocked) {
        g_test_skip("every NIC model saves its state: nothing blocks migration");
    }
}


/* ---- frames through a migration (qnic: device state) ----
 *
 * The peer's rule at the switch-over: it sends to the source only before
 * `migrate` and waits until the source's device took those frames (they
 * sit in the guest's RX ring, unread by the driver); after the migration
 * it talks to the destination's own connection. Frames the source's
 * backend held but its device had not taken would go with the source (as
 * in QEMU), so the peer sends none in that window. The driver reads the
 * rest of the RX ring and sends more on the destination, on the same
 * rings; the peers must see every TX frame once, and the driver every RX
 * frame once. RARPs (0x8035) from the destination's announce are counted
 * apart: at least one must come. */

#define FLEN 100
#define N_BEFORE 6          /* frames each way before the migration */
#define N_READ_BEFORE 3     /* RX frames the driver reads on the source */
#define N_AFTER 4

#define VQ_RX_BUFS 16
#define VQ_BUF 2048
/* the virtio-net header: 12 bytes with VERSION_1 (or MRG_RXBUF), else 10 */
#define VNET_HDR ((n->v.features & F64(VIRTIO_F_VERSION_1)) ? 12u : 10u)

typedef struct Nic Nic;
struct Nic {
    const char *model;
    const char *props;          /* more -device properties */
    void (*start)(Nic *n, QTestState *qts);
    void (*tx)(Nic *n, const void *frame, size_t len);
    int (*rx)(Nic *n, void *buf, size_t cap);           /* -1: none yet */
    unsigned (*rx_taken)(Nic *n);                       /* frames in the ring, unread */
    void (*set_qts)(Nic *n, QTestState *qts);
    void (*free)(Nic *n);                               /* optional */
    E1kDev e;
    RtlDev r;
    VDev v;
    bool mmio;
    uint64_t rx_bufs[VQ_RX_BUFS], tx_bufs[N_BEFORE + N_AFTER];
    unsigned tx_next;
};

static void e1k_start(Nic *n, QTestState *qts)
{
    e1kd_init(&n->e, qts);
    e1kd_reset(&n->e);
    e1kd_start(&n->e, 32, 16, 0);
}

static void e1k_tx(Nic *n, const void *f, size_t len)
{
    e1kd_tx_legacy(&n->e, f, len, 0, 0, 0, 0);
}

static int e1k_rx(Nic *n, void *buf, size_t cap)
{
    return e1kd_rx(&n->e, buf, cap, NULL, NULL, NULL);
}

/* Descriptors after the driver's with DD set: the device wrote them. */
static unsigned e1k_rx_taken(Nic *n)
{
    unsigned k = 0;

    while (k < n->e.rx_n &&
           (qtest_readb(n->e.qts, n->e.rx_ring + 16 * ((n->e.rx_next + k) % n->e.rx_n) + 12) &
            E1000_RXD_STAT_DD)) {
        k++;
    }
    return k;
}

static void e1k_set_qts(Nic *n, QTestState *qts)
{
    n->e.qts = qts;
}

static void e1k_free(Nic *n)
{
    e1kd_free(&n->e);
}

static void rtl_start(Nic *n, QTestState *qts)
{
    rtld_init(&n->r, qts);
    rtld_reset(&n->r);
    rtld_c_start(&n->r, 0, RTL_RCR_APM, 0, 0);
}

static void rtl_tx(Nic *n, const void *f, size_t len)
{
    rtld_c_tx(&n->r, f, len);
}

static int rtl_rx(Nic *n, void *buf, size_t cap)
{
    return rtld_c_rx(&n->r, buf, cap, NULL, NULL);
}

/* The device's write offset past the driver's read one, in whole frames
 * of FLEN (header 4 + frame + CRC 4, 4-aligned). */
static unsigned rtl_rx_taken(Nic *n)
{
    uint32_t cbr = rtld_r16(&n->r, RTL_CBR);
    uint32_t used = (cbr + n->r.rx_len - n->r.rx_cur) % n->r.rx_len;
    return used / ((4 + FLEN + 4 + 3) & ~3u);
}

static void rtl_set_qts(Nic *n, QTestState *qts)
{
    n->r.qts = qts;
}

/* virtio-net: every buffer is allocated before the migration (the qtest
 * client's allocator is per connection); RX buffers are posted once. A
 * control-queue command (promiscuous on) gives the device CVQ state. */
static void vn_start(Nic *n, QTestState *qts)
{
    uint64_t want = F64(VIRTIO_NET_F_MAC) | F64(VIRTIO_NET_F_STATUS) | F64(VIRTIO_F_VERSION_1) |
                    F64(VIRTIO_NET_F_CTRL_VQ) | F64(VIRTIO_NET_F_CTRL_RX) |
                    F64(VIRTIO_F_RING_PACKED);
    uint64_t out = qtest_guest_alloc(qts, 16, 16), in = qtest_guest_alloc(qts, 16, 16);
    VdBuf cb[3] = { { out, 2, false }, { out + 2, 1, false }, { in, 1, true } };
    uint8_t cmd[3] = { VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, 1 };
    uint16_t id;
    uint32_t len;

    if (n->mmio) {
        vd_mmio_init(&n->v, qts, 0xfeb00000);
    } else {
        vd_pci_init(&n->v, qts, vd_pci_find(qts, 0x1000), VD_PCI_MODERN);
    }
    g_assert_true(vd_negotiate(&n->v, want));
    vd_setup_queues(&n->v, 3, 0);
    vd_driver_ok(&n->v);
    for (unsigned i = 0; i < VQ_RX_BUFS; i++) {
        VdBuf b = { qtest_guest_alloc(qts, VQ_BUF, 64), VQ_BUF, true };
        n->rx_bufs[i] = b.addr;
        vd_add(&n->v, 0, &b, 1, false);
    }
    vd_kick(&n->v, 0);
    for (unsigned i = 0; i < G_N_ELEMENTS(n->tx_bufs); i++) {
        n->tx_bufs[i] = qtest_guest_alloc(qts, 12 + FLEN, 64);
    }
    qtest_memwrite(qts, out, cmd, 3);
    vd_add(&n->v, 2, cb, 3, false);
    vd_kick(&n->v, 2);
    g_assert_true(vd_get_used(&n->v, 2, &id, &len, 5000));
    g_assert_cmpuint(qtest_readb(qts, in), ==, VIRTIO_NET_OK);
}

static void vn_tx(Nic *n, const void *f, size_t len)
{
    uint64_t a = n->tx_bufs[n->tx_next++];
    VdBuf b[2] = { { a, VNET_HDR, false }, { a + VNET_HDR, len, false } };
    uint16_t id;
    uint32_t ulen;

    qtest_memset(n->v.qts, a, 0, VNET_HDR);
    qtest_memwrite(n->v.qts, a + VNET_HDR, f, len);
    vd_add(&n->v, 1, b, 2, false);
    vd_kick(&n->v, 1);
    if (!vd_get_used(&n->v, 1, &id, &ulen, 5000)) {
        g_error("TX %u not used (status 0x%x)", n->tx_next - 1, vd_get_status(&n->v));
    }
}

static int vn_rx(Nic *n, void *buf, size_t cap)
{
    uint16_t id;
    uint32_t len;

    if (!vd_get_used(&n->v, 0, &id, &len, 0)) {
        return -1;
    }
    g_assert_cmpuint(id, <, VQ_RX_BUFS);
    g_assert_cmpuint(len, >, VNET_HDR);
    g_assert_cmpuint(len - VNET_HDR, <=, cap);
    qtest_memread(n->v.qts, n->rx_bufs[id] + VNET_HDR, buf, len - VNET_HDR);
    return (int)(len - VNET_HDR);
}

/* Used entries past the driver's: buffers the device filled. */
static unsigned vn_rx_taken(Nic *n)
{
    VringDriver *r = &n->v.q[0].vr;
    unsigned k = 0;

    if (!r->packed) {
        return (uint16_t)(vring_split_used_idx(r) - r->last_used);
    }
    for (bool wrap = r->used_wrap; k < r->num; k++) {
        unsigned slot = (r->last_used + k) % r->num;
        if (slot == 0 && k) {
            wrap = !wrap;
        }
        if (!vring_packed_flags_used(qtest_readw(n->v.qts, r->desc + 16 * slot + 14), wrap)) {
            break;
        }
    }
    return k;
}

static void vn_set_qts(Nic *n, QTestState *qts)
{
    vd_set_qts(&n->v, qts);
}

#define VN_OPS vn_start, vn_tx, vn_rx, vn_rx_taken, vn_set_qts

static const Nic nic_models[] = {
    { "e1000", ",addr=4", e1k_start, e1k_tx, e1k_rx, e1k_rx_taken, e1k_set_qts, e1k_free },
    { "rtl8139", ",addr=4", rtl_start, rtl_tx, rtl_rx, rtl_rx_taken, rtl_set_qts },
    { "virtio-net-pci", ",addr=4,packed=off", VN_OPS },
    { "virtio-net-pci", ",addr=4,packed=on", VN_OPS },
    { "virtio-net-device", "", VN_OPS, .mmio = true },
};

static void make(uint8_t *f, uint8_t tag)
{
    qtest_net_make_frame(f, FLEN, tag);
}

/* The tag of a test frame: its byte 14 is 14 * 7 + tag. */
static unsigned frame_tag(const uint8_t *f)
{
    return (uint8_t)(f[14] - 14 * 7);
}

static int peer_frame(QtestNetPeer *p, uint8_t *buf, size_t cap, int timeout_ms)
{
    uint32_t be;

    if (!qtest_net_read_full(p->fd, &be, 4, timeout_ms)) {
        return -1;
    }
    g_assert_cmpuint(ntohl(be), <=, cap);
    g_assert_true(qtest_net_read_full(p->fd, buf, ntohl(be), 2000));
    return (int)ntohl(be);
}

/* Read the peer's frames until quiet: count each TX tag, and RARPs. */
static void peer_drain(QtestNetPeer *p, unsigned *seen, unsigned *rarps, int timeout_ms)
{
    uint8_t buf[2048];
    int len;

    while ((len = peer_frame(p, buf, sizeof(buf), timeout_ms)) >= 0) {
        if (len >= 14 && buf[12] == 0x80 && buf[13] == 0x35) {
            (*rarps)++;
            continue;
        }
        g_assert_cmpint(len, ==, FLEN);
        g_assert_cmpuint(frame_tag(buf), <, 64);
        seen[frame_tag(buf)]++;
    }
}

/* An RX frame the driver read: its tag, the whole frame checked. */
static unsigned rx_tag(const uint8_t *f, int len)
{
    uint8_t want[FLEN];

    g_assert_cmpint(len, >=, FLEN);
    make(want, frame_tag(f));
    g_assert_cmpmem(f, FLEN, want, FLEN);
    return frame_tag(f);
}

/* The driver sends frames tagged [from, to), the peer as many tagged
 * 0x40 + the same. */
static void exchange(Nic *n, QtestNetPeer *p, unsigned from, unsigned to)
{
    uint8_t f[FLEN];

    for (unsigned t = from; t < to; t++) {
        make(f, t);
        n->tx(n, f, FLEN);
        make(f, 0x40 + t);
        qtest_net_peer_send(p, f, FLEN);
    }
}

/* The driver reads count frames, counting each tag in got. */
static void read_rx(Nic *n, unsigned *got, unsigned count)
{
    uint8_t f[2048];

    for (unsigned k = 0; k < count; k++) {
        int len = -1;
        g_assert_true(WAIT_FOR((len = n->rx(n, f, sizeof(f))) >= 0, 5000));
        got[rx_tag(f, len)]++;
    }
}

static char *device_state(QTestState *s)
{
    g_autoptr(JsonNode) r = qtest_qmp(s, "{\"execute\": \"x-query-device-state\", "
                                      "\"arguments\": {\"id\": \"nic0\"}}");
    JsonNode *st = qtest_qmp_get(r, "return.state");
    g_assert_nonnull(st);
    return g_strdup(json_node_get_string(st));
}

static void frames_case(gconstpointer data)
{
    Nic n = *(const Nic *)data;
    QtestNetPeer p1, p2;
    g_autofree char *sock = tmp_path(strstr(n.props, "packed=on") ? "packed" : n.model);
    g_autofree char *uri = g_strdup_printf("unix:%s", sock);
    g_autofree char *sargs = NULL, *dargs = NULL, *ss = NULL, *ds = NULL;
    unsigned seen[64] = { 0 }, rarps = 0, got[256] = { 0 };
    uint8_t f[2048];
    QTestState *src, *dst;

    if (qtest_target_is_qemu()) {
        g_test_skip("qnic's x-query-device-state and qnic's qtest NIC models");
        return;
    }
    qtest_net_peer_listen(&p1);
    qtest_net_peer_listen(&p2);
    sargs = g_strdup_printf("-m 128 -netdev socket,id=n0,connect=127.0.0.1:%d -device "
                            "%s,netdev=n0,mac=52:54:00:12:34:56,id=nic0%s", p1.port, n.model,
                            n.props);
    dargs = g_strdup_printf("-m 128 -S -netdev socket,id=n0,connect=127.0.0.1:%d -device "
                            "%s,netdev=n0,mac=52:54:00:12:34:56,id=nic0%s -incoming %s",
                            p2.port, n.model, n.props, uri);
    src = start(sargs);
    g_assert_true(qtest_net_peer_accept(&p1));
    dst = start(dargs);
    g_assert_true(qtest_net_peer_accept(&p2));
    n.start(&n, src);

    exchange(&n, &p1, 0, N_BEFORE);
    read_rx(&n, got, N_READ_BEFORE);
    /* the source's device has taken the rest into the ring */
    g_assert_true(WAIT_FOR(n.rx_taken(&n) == N_BEFORE - N_READ_BEFORE, 5000));
    peer_drain(&p1, seen, &rarps, 500);

    migrate(src, uri);
    wait_migration(src, "completed");
    wait_migration(dst, "completed");
    g_autofree char *st = status_of(dst);
    g_assert_cmpstr(st, ==, "paused");
    ss = device_state(src);
    ds = device_state(dst);
    /* the same stream: every field the same */
    g_assert_cmpstr(ds, ==, ss);
    qtest_qmp_assert_ok(dst, "{\"execute\": \"cont\"}");

    n.set_qts(&n, dst);
    read_rx(&n, got, N_BEFORE - N_READ_BEFORE);
    exchange(&n, &p2, N_BEFORE, N_BEFORE + N_AFTER);
    read_rx(&n, got, N_AFTER);
    g_assert_cmpint(n.rx(&n, f, sizeof(f)), ==, -1);
    peer_drain(&p2, seen, &rarps, 500);
    peer_drain(&p1, seen, &rarps, 100);
    for (unsigned t = 0; t < N_BEFORE + N_AFTER; t++) {
        g_assert_cmpuint(seen[t], ==, 1);
        g_assert_cmpuint(got[0x40 + t], ==, 1);
    }
    g_assert_cmpuint(rarps, >=, 1);
    if (n.free) {
        n.free(&n);
    }
    qtest_quit(src);
    qtest_quit(dst);
    qtest_net_peer_close(&p1);
    qtest_net_peer_close(&p2);
}

/* ---- two queue pairs over a multiqueue tap (root: a network namespace) ----
 *
 * The test process moves itself into a namespace it creates, so both
 * targets it starts open /dev/net/tun there: the source creates the tap
 * with 2 queues (IFF_MULTI_QUEUE), the destination attaches 2 more to it
 * by name, and the test's own UDP socket is the kernel end (10.77.1.1;
 * the guest is 10.77.1.10, a permanent neighbour). Pair i's TX queue sends
 * a datagram from port 6000 + i; the socket takes it and answers the same
 * flow, and tun's flow steering (the symmetric flow hash, recorded when the
 * guest wrote) queues the answer on the tap queue pair i wrote to: so the
 * answer arrives on pair i's RX queue, and both pairs carry frames both
 * ways. The source's queues go when it quits after the migration; the
 * destination's TX re-records the flows on its own queues. */

#define MQ_NS_IP "10.77.1.1"
#define MQ_GUEST_IP "10.77.1.10"
#define MQ_PORT 7000
#define MQ_BEFORE 3         /* rounds before the migration (each pair) */
#define MQ_AFTER 2
#define MQ_RX_BUFS 8

typedef struct {
    VDev v;
    uint64_t rx_bufs[2][MQ_RX_BUFS], tx_bufs[2 * (MQ_BEFORE + MQ_AFTER)];
    unsigned tx_next;
    int sock;               /* the kernel end, in the namespace */
    unsigned seen[64];      /* requests the socket took, by tag */
    unsigned got[2][64];    /* answers each RX queue gave, by tag */
} MqRig;

static char mq_ns_name[32];

static void mq_ns_del(void)
{
    if (mq_ns_name[0]) {
        g_autofree char *cmd = g_strdup_printf("ip netns del %s 2>/dev/null", mq_ns_name);
        int st = system(cmd);
        (void)st;
        mq_ns_name[0] = 0;
    }
}

static void mq_on_abort(int sig)
{
    mq_ns_del();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void mq_run(const char *cmd)
{
    int st = system(cmd);
    if (st) {
        g_test_message("failed (%d): %s", st, cmd);
    }
    g_assert_cmpint(st, ==, 0);
}

/* Enter a fresh namespace (returns the old one's fd); no IPv6 traffic in
 * it, so only the test's frames reach the guest. */
static int mq_enter_ns(void)
{
    g_autofree char *add = NULL, *path = NULL;
    int old = open("/proc/self/ns/net", O_RDONLY), fd;

    snprintf(mq_ns_name, sizeof(mq_ns_name), "qnicmig%d", (int)getpid());
    /* a failed assertion aborts, g_error traps: leave no namespace */
    signal(SIGABRT, mq_on_abort);
    signal(SIGTRAP, mq_on_abort);
    add = g_strdup_printf("ip netns add %s", mq_ns_name);
    mq_run(add);
    path = g_strdup_printf("/run/netns/%s", mq_ns_name);
    fd = open(path, O_RDONLY);
    g_assert_cmpint(old, >=, 0);
    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(setns(fd, CLONE_NEWNET), ==, 0);
    close(fd);
    mq_run("sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1");
    mq_run("ip link set lo up");
    return old;
}

/* The tap the source made: the kernel's address, MAC and the guest. */
static void mq_tap_up(MqRig *m, const char *tap)
{
    g_autofree char *cmd = g_strdup_printf(
        "ip link set %s address 02:00:00:77:01:01 up && ip addr add " MQ_NS_IP "/24 dev %s && "
        "ip neigh replace " MQ_GUEST_IP " lladdr 52:54:00:12:34:56 dev %s nud permanent",
        tap, tap, tap);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(MQ_PORT) };

    g_assert_cmpuint(if_nametoindex(tap), !=, 0);
    mq_run(cmd);
    inet_pton(AF_INET, MQ_NS_IP, &a.sin_addr);
    m->sock = socket(AF_INET, SOCK_DGRAM, 0);
    g_assert_cmpint(m->sock, >=, 0);
    g_assert_cmpint(bind(m->sock, (struct sockaddr *)&a, sizeof(a)), ==, 0);
}

/* Features, 2 pairs + control queue, RX buffers on both RX queues, then
 * VQ_PAIRS_SET 2 through the control queue (queue 4). */
static void mq_driver_start(MqRig *m, QTestState *qts)
{
    uint64_t want = F64(VIRTIO_NET_F_MAC) | F64(VIRTIO_NET_F_STATUS) | F64(VIRTIO_F_VERSION_1) |
                    F64(VIRTIO_NET_F_CTRL_VQ) | F64(VIRTIO_NET_F_MQ);
    uint64_t out = qtest_guest_alloc(qts, 16, 16), in = qtest_guest_alloc(qts, 16, 16);
    VdBuf cb[3] = { { out, 2, false }, { out + 2, 2, false }, { in, 1, true } };
    uint8_t cmd[4] = { VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, 2, 0 };
    uint16_t id;
    uint32_t len;

    vd_pci_init(&m->v, qts, vd_pci_find(qts, 0x1000), VD_PCI_MODERN);
    g_assert_true(vd_negotiate(&m->v, want));
    g_assert_cmphex(m->v.features & want, ==, want);
    g_assert_cmpuint(vd_num_queues(&m->v), ==, 5);
    g_assert_cmpuint(vd_config_readw(&m->v, 8), ==, 2);      /* max_virtqueue_pairs */
    vd_setup_queues(&m->v, 5, 0);
    vd_driver_ok(&m->v);
    for (unsigned p = 0; p < 2; p++) {
        for (unsigned i = 0; i < MQ_RX_BUFS; i++) {
            VdBuf b = { qtest_guest_alloc(qts, VQ_BUF, 64), VQ_BUF, true };
            m->rx_bufs[p][i] = b.addr;
            g_assert_cmpuint(vd_add(&m->v, 2 * p, &b, 1, false), ==, i);
        }
        vd_kick(&m->v, 2 * p);
    }
    for (unsigned i = 0; i < G_N_ELEMENTS(m->tx_bufs); i++) {
        m->tx_bufs[i] = qtest_guest_alloc(qts, 12 + 64, 64);
    }
    qtest_memwrite(qts, out, cmd, 4);
    vd_add(&m->v, 4, cb, 3, false);
    vd_kick(&m->v, 4);
    g_assert_true(vd_get_used(&m->v, 4, &id, &len, 5000));
    g_assert_cmpuint(qtest_readb(qts, in), ==, VIRTIO_NET_OK);
}

/* Pair p's TX queue sends a UDP datagram (payload: tag) from
 * MQ_GUEST_IP:6000+p to the socket, which must take it; the socket answers
 * with tag | 0x80. */
static void mq_round(MqRig *m, unsigned p, uint8_t tag)
{
    uint8_t f[14 + 20 + 8 + 1] = { 0x02, 0x00, 0x00, 0x77, 0x01, 0x01,
                                   0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x08, 0x00 };
    uint8_t *ip = f + 14, *udp = ip + 20, reply = tag | 0x80, buf[64];
    uint64_t a = m->tx_bufs[m->tx_next++];
    VdBuf b[2] = { { a, 12, false }, { a + 12, sizeof(f), false } };
    struct sockaddr_in from;
    socklen_t flen = sizeof(from);
    struct pollfd pfd = { m->sock, POLLIN, 0 };
    uint16_t id, csum;
    uint32_t ulen;
    ssize_t n;

    ip[0] = 0x45;
    ip[3] = 20 + 8 + 1;
    ip[8] = 64;
    ip[9] = IPPROTO_UDP;
    inet_pton(AF_INET, MQ_GUEST_IP, ip + 12);
    inet_pton(AF_INET, MQ_NS_IP, ip + 16);
    csum = qtest_net_csum(ip, 20);
    ip[10] = csum >> 8;
    ip[11] = csum & 0xff;
    udp[0] = (6000 + p) >> 8;
    udp[1] = (6000 + p) & 0xff;
    udp[2] = MQ_PORT >> 8;
    udp[3] = MQ_PORT & 0xff;
    udp[5] = 8 + 1;                 /* checksum 0: none (IPv4) */
    udp[8] = tag;
    qtest_memset(m->v.qts, a, 0, 12);
    qtest_memwrite(m->v.qts, a + 12, f, sizeof(f));
    vd_add(&m->v, 2 * p + 1, b, 2, false);
    vd_kick(&m->v, 2 * p + 1);
    if (!vd_get_used(&m->v, 2 * p + 1, &id, &ulen, 5000)) {
        g_error("TX on pair %u, tag %u: not used (status 0x%x)", p, tag, vd_get_status(&m->v));
    }

    g_assert_cmpint(poll(&pfd, 1, 5000), ==, 1);
    n = recvfrom(m->sock, buf, sizeof(buf), 0, (struct sockaddr *)&from, &flen);
    g_assert_cmpint(n, ==, 1);
    g_assert_cmpuint(ntohs(from.sin_port), ==, 6000 + p);
    m->seen[buf[0] & 63]++;
    g_assert_cmpint(sendto(m->sock, &reply, 1, 0, (struct sockaddr *)&from, flen), ==, 1);
}

/* An answer on pair p's RX queue, if one is there: its tag, the frame
 * checked (to the guest's flow 6000 + p, from the socket). */
static bool mq_rx(MqRig *m, unsigned p)
{
    uint8_t f[14 + 20 + 8 + 1];
    uint16_t id;
    uint32_t len;

    if (!vd_get_used(&m->v, 2 * p, &id, &len, 0)) {
        return false;
    }
    g_assert_cmpuint(id, <, MQ_RX_BUFS);
    g_assert_cmpuint(len, >=, 12 + sizeof(f));
    qtest_memread(m->v.qts, m->rx_bufs[p][id] + 12, f, sizeof(f));
    g_assert_cmpuint(f[12], ==, 0x08);
    g_assert_cmpuint(f[13], ==, 0x00);
    g_assert_cmpuint(f[14 + 9], ==, IPPROTO_UDP);
    g_assert_cmpuint((f[34] << 8) | f[35], ==, MQ_PORT);
    g_assert_cmpuint((f[36] << 8) | f[37], ==, 6000 + p);
    g_assert_cmphex(f[42] & 0x80, ==, 0x80);
    m->got[p][f[42] & 63]++;
    return true;
}

/* Used entries past the driver's on pair p's (split) RX ring. */
static unsigned mq_rx_taken(MqRig *m, unsigned p)
{
    VringDriver *r = &m->v.q[2 * p].vr;
    return (uint16_t)(vring_split_used_idx(r) - r->last_used);
}

static void mq_read(MqRig *m, unsigned count)
{
    for (unsigned p = 0; p < 2; p++) {
        for (unsigned k = 0; k < count; k++) {
            g_assert_true(WAIT_FOR(mq_rx(m, p), 5000));
        }
    }
}

/* Rounds [from, to): tag 2 * round + pair, alternating pairs. */
static void mq_rounds(MqRig *m, unsigned from, unsigned to)
{
    for (unsigned r = from; r < to; r++) {
        for (unsigned p = 0; p < 2; p++) {
            mq_round(m, p, 2 * r + p);
        }
    }
}

static void test_mq_tap(void)
{
    g_autofree char *sock = tmp_path("mq"), *uri = g_strdup_printf("unix:%s", sock);
    g_autofree char *tap = g_strdup_printf("qmig%d", (int)getpid() % 100000);
    g_autofree char *net = NULL, *sargs = NULL, *dargs = NULL, *st = NULL;
    uint8_t junk[64];
    MqRig m = { 0 };
    QTestState *src, *dst;
    int oldns;

    if (getuid() != 0 || access("/dev/net/tun", R_OK | W_OK) != 0) {
        g_test_skip("needs root and /dev/net/tun for -netdev tap,queues=2");
        return;
    }
    if (system("ip netns list >/dev/null 2>&1") != 0) {
        g_test_skip("needs iproute2 with network namespaces (ip netns)");
        return;
    }
    oldns = mq_enter_ns();
    net = g_strdup_printf("-m 128 -netdev tap,id=n0,ifname=%s,queues=2,script=no,downscript=no "
                          "-device virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56,id=nic0,"
                          "addr=4,mq=on,vectors=6", tap);
    sargs = g_strdup(net);
    dargs = g_strdup_printf("%s -S -incoming %s", net, uri);
    /* QEMU's virtio-net moves packets only in a running VM (both sides
     * boot the same BIOS; the destination waits with -S) */
    src = start_flags(sargs, QTEST_FLAG_RUNNING);
    mq_tap_up(&m, tap);
    dst = start_flags(dargs, QTEST_FLAG_RUNNING);  /* its 2 queues join the tap */
    mq_driver_start(&m, src);

    mq_rounds(&m, 0, MQ_BEFORE);
    mq_read(&m, 1);
    /* the rest of the answers wait, unread, in both RX rings */
    for (unsigned p = 0; p < 2; p++) {
        g_assert_true(WAIT_FOR(mq_rx_taken(&m, p) == MQ_BEFORE - 1, 5000));
    }

    migrate(src, uri);
    wait_migration(src, "completed");
    wait_migration(dst, "completed");
    st = status_of(dst);
    g_assert_cmpstr(st, ==, "paused");
    if (!qtest_target_is_qemu()) {
        g_autofree char *ss = device_state(src), *ds = device_state(dst);
        g_assert_cmpstr(ds, ==, ss);
    }
    qtest_quit(src);               /* its tap queues go */
    qtest_qmp_assert_ok(dst, "{\"execute\": \"cont\"}");

    vd_set_qts(&m.v, dst);
    mq_read(&m, MQ_BEFORE - 1);
    mq_rounds(&m, MQ_BEFORE, MQ_BEFORE + MQ_AFTER);
    mq_read(&m, MQ_AFTER);
    for (unsigned p = 0; p < 2; p++) {
        g_assert_false(mq_rx(&m, p));
    }
    g_assert_cmpint(recv(m.sock, junk, sizeof(junk), MSG_DONTWAIT), ==, -1);
    for (unsigned r = 0; r < MQ_BEFORE + MQ_AFTER; r++) {
        for (unsigned p = 0; p < 2; p++) {
            g_assert_cmpuint(m.seen[2 * r + p], ==, 1);
            g_assert_cmpuint(m.got[p][2 * r + p], ==, 1);
        }
    }
    close(m.sock);
    qtest_quit(dst);
    g_assert_cmpint(setns(oldns, CLONE_NEWNET), ==, 0);
    close(oldns);
    mq_ns_del();
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/migration/errors", test_errors);
    g_test_add_func("/migration/unix", test_unix);
    g_test_add_func("/migration/unix-defer", test_unix_defer);
    g_test_add_func("/migration/tcp", test_tcp);
    g_test_add_func("/migration/fd", test_fd);
    g_test_add_func("/migration/exec", test_exec);
    g_test_add_func("/migration/file", test_file);
    g_test_add_func("/migration/mismatch", test_mismatch);
    g_test_add_func("/migration/blocked", test_blocked);
    for (size_t i = 0; i < G_N_ELEMENTS(nic_models); i++) {
        g_autofree char *name = g_strdup_printf("/migration/frames/%s%s", nic_models[i].model,
                                                strstr(nic_models[i].props, "packed=on") ?
                                                "-packed" : "");
        g_test_add_data_func(name, &nic_models[i], frames_case);
    }
    g_test_add_func("/migration/frames/virtio-net-pci-mq-tap", test_mq_tap);
    return g_test_run();
}
