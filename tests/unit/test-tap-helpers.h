/*
 * Shared helpers for the backend tests (test-tap, test-bridge, test-vde,
 * test-l2tpv3): a sink net client that records the frames a backend sends,
 * a bounded main-loop pump, command running for namespace setup, and
 * builders for the Ethernet/ARP/IPv4/ICMP/TCP frames the tests put on the
 * wire. Header-only (static functions) so each test stays one program.
 */
#ifndef TEST_TAP_HELPERS_H
#define TEST_TAP_HELPERS_H

#include "qnic/net.h"
#include "qnic/mainloop.h"
#include "qnic/log.h"
#include "../lib/test-backends.h"

#include <stdio.h>
#include <unistd.h>
#include <sys/wait.h>

/* ---- a sink client that records frames ---- */

typedef struct TestSink {
    QnicNetClient *nc;
    GPtrArray *frames;        /* GByteArray * */
    bool busy;                /* answer 0 (queue it) while set */
} TestSink;

static ssize_t test_sink_receive(QnicNetClient *nc, const struct iovec *iov, int iovcnt)
{
    TestSink *s = nc->opaque;
    size_t size = qnic_iov_size(iov, iovcnt);
    GByteArray *b;

    if (s->busy) {
        return 0;
    }
    b = g_byte_array_sized_new(size);
    g_byte_array_set_size(b, size);
    qnic_iov_to_buf(iov, iovcnt, 0, b->data, size);
    g_ptr_array_add(s->frames, b);
    return size ? (ssize_t)size : 1;
}

static const QnicNetClientOps test_sink_ops = {
    .kind = QNIC_NET_CLIENT_NIC,
    .receive_iov = test_sink_receive,
};

static G_GNUC_UNUSED TestSink *test_sink_new(QnicNetClient *peer, const char *name)
{
    TestSink *s = g_new0(TestSink, 1);
    s->frames = g_ptr_array_new_with_free_func((GDestroyNotify)g_byte_array_unref);
    s->nc = qnic_net_client_new(test_backends(), &test_sink_ops, "test-sink", name, s);
    if (peer) {
        qnic_net_client_set_peer(s->nc, peer);
    }
    return s;
}

static G_GNUC_UNUSED void test_sink_free(TestSink *s)
{
    if (!s) {
        return;
    }
    qnic_net_client_free(s->nc);
    g_ptr_array_unref(s->frames);
    g_free(s);
}

/* ---- main loop ---- */

typedef bool TestCond(void *opaque);

/* Run the loop until cond (may be NULL) holds or ms pass. */
static G_GNUC_UNUSED bool test_pump(int ms, TestCond *cond, void *opaque)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)ms * 1000;

    while (g_get_monotonic_time() < deadline) {
        if (cond && cond(opaque)) {
            return true;
        }
        if (!qnic_main_loop_iterate(false)) {
            g_usleep(1000);
        }
    }
    return cond ? cond(opaque) : true;
}

/* ---- commands ---- */

/* Run a shell command; returns its exit status (-1 if it could not run). */
static G_GNUC_PRINTF(1, 2) int test_sh(const char *fmt, ...)
{
    va_list ap;
    g_autofree char *cmd = NULL;
    g_autofree char *out = NULL, *err = NULL;
    g_autoptr(GError) gerr = NULL;
    char *argv[] = { (char *)"/bin/sh", (char *)"-c", NULL, NULL };
    int status;

    va_start(ap, fmt);
    cmd = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    argv[2] = cmd;
    if (!g_spawn_sync(NULL, argv, NULL, 0, NULL, NULL, &out, &err, &status, &gerr)) {
        g_test_message("cannot run '%s': %s", cmd, gerr->message);
        return -1;
    }
    if (!WIFEXITED(status)) {
        return -1;
    }
    if (WEXITSTATUS(status) != 0) {
        g_test_message("'%s' -> %d: %s%s", cmd, WEXITSTATUS(status), out, err);
    }
    return WEXITSTATUS(status);
}

/* Why root-and-tun tests cannot run here, or NULL. */
static G_GNUC_UNUSED const char *test_need_tun(void)
{
    if (geteuid() != 0) {
        return "needs root (network namespaces, tap devices)";
    }
    if (access("/dev/net/tun", R_OK | W_OK) != 0) {
        return "/dev/net/tun is missing";
    }
    if (test_sh("ip netns list >/dev/null 2>&1") != 0) {
        return "the ip tool (iproute2) with netns support is missing";
    }
    return NULL;
}

/* Run the test at `path` in a child (which makes its own namespaces), or
 * skip with the reason root-and-tun tests cannot run here. */
static G_GNUC_UNUSED void test_trap_tun_child(const char *path)
{
    const char *skip = test_need_tun();

    if (skip) {
        g_test_skip(skip);
        return;
    }
    g_test_trap_subprocess(path, 60 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_INHERIT_STDERR);
    g_test_trap_assert_passed();
}

/* A name unique to this process: prefix + pid, within IFNAMSIZ. */
static G_GNUC_UNUSED char *test_name(const char *prefix)
{
    return g_strdup_printf("%s%d", prefix, (int)(getpid() % 100000));
}

/* ---- netdev option errors ---- */

/* Adding the netdev described by opts must fail with a one-line error
 * that mentions substr. */
static G_GNUC_UNUSED void expect_error(const char *opts, const char *substr)
{
    g_autoptr(GError) err = NULL;
    QnicNetdev *nd = qnic_netdev_add_str(test_backends(), opts, &err);

    if (nd) {
        qnic_netdev_del(nd);
    }
    g_assert_null(nd);
    g_assert_nonnull(err);
    g_test_message("%s -> %s", opts, err->message);
    g_assert_null(strchr(err->message, '\n'));
    if (!strstr(err->message, substr)) {
        g_error("error for '%s' is '%s', expected it to mention '%s'", opts, err->message, substr);
    }
}

/* ---- frames ---- */

static const uint8_t test_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
static const uint8_t bcast_mac[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

static G_GNUC_UNUSED uint16_t test_csum(const void *data, size_t len, uint32_t sum)
{
    const uint8_t *p = data;

    while (len > 1) {
        sum += (p[0] << 8) | p[1];
        p += 2;
        len -= 2;
    }
    if (len) {
        sum += p[0] << 8;
    }
    while (sum >> 16) {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    return (uint16_t)~sum;
}

static G_GNUC_UNUSED size_t test_eth(uint8_t *f, const uint8_t *dst, const uint8_t *src,
                                     uint16_t type)
{
    memcpy(f, dst, 6);
    memcpy(f + 6, src, 6);
    qnic_st16be(f + 12, type);
    return 14;
}

/* ARP request "who has tip, tell sip" from test_mac. */
static G_GNUC_UNUSED size_t test_arp_request(uint8_t *f, const uint8_t sip[4], const uint8_t tip[4])
{
    size_t n = test_eth(f, bcast_mac, test_mac, 0x0806);
    uint8_t *a = f + n;

    qnic_st16be(a, 1);          /* Ethernet */
    qnic_st16be(a + 2, 0x0800);
    a[4] = 6;
    a[5] = 4;
    qnic_st16be(a + 6, 1);      /* request */
    memcpy(a + 8, test_mac, 6);
    memcpy(a + 14, sip, 4);
    memset(a + 18, 0, 6);
    memcpy(a + 24, tip, 4);
    return n + 28;
}

static G_GNUC_UNUSED size_t test_ipv4(uint8_t *ip, uint8_t proto, const uint8_t src[4],
                                      const uint8_t dst[4], size_t payload_len, uint16_t id)
{
    memset(ip, 0, 20);
    ip[0] = 0x45;
    qnic_st16be(ip + 2, (uint16_t)(20 + payload_len));
    qnic_st16be(ip + 4, id);
    ip[6] = 0x40;               /* DF */
    ip[8] = 64;
    ip[9] = proto;
    memcpy(ip + 12, src, 4);
    memcpy(ip + 16, dst, 4);
    qnic_st16be(ip + 10, test_csum(ip, 20, 0));
    return 20;
}

static G_GNUC_UNUSED size_t test_icmp_echo(uint8_t *f, const uint8_t *dmac, const uint8_t sip[4],
                                           const uint8_t dip[4], uint16_t id, uint16_t seq,
                                           size_t datalen)
{
    size_t n = test_eth(f, dmac, test_mac, 0x0800);
    uint8_t *icmp = f + n + 20;

    icmp[0] = 8;
    icmp[1] = 0;
    qnic_st16be(icmp + 2, 0);
    qnic_st16be(icmp + 4, id);
    qnic_st16be(icmp + 6, seq);
    for (size_t i = 0; i < datalen; i++) {
        icmp[8 + i] = (uint8_t)(i * 7 + seq);
    }
    qnic_st16be(icmp + 2, test_csum(icmp, 8 + datalen, 0));
    test_ipv4(f + n, 1, sip, dip, 8 + datalen, seq);
    return n + 20 + 8 + datalen;
}

static G_GNUC_UNUSED uint32_t test_tcp_pseudo(const uint8_t src[4], const uint8_t dst[4], size_t tcplen)
{
    uint32_t sum = 0;
    sum += (src[0] << 8 | src[1]) + (src[2] << 8 | src[3]);
    sum += (dst[0] << 8 | dst[1]) + (dst[2] << 8 | dst[3]);
    sum += 6 + (uint32_t)tcplen;
    return sum;
}

/* A TCP segment (20-byte header, no options). With partial_csum the
 * checksum field holds only the folded pseudo-header sum, as a NIC offload
 * (VIRTIO_NET_HDR_F_NEEDS_CSUM) expects. */
static G_GNUC_UNUSED size_t test_tcp(uint8_t *f, const uint8_t *dmac, const uint8_t sip[4],
                                     const uint8_t dip[4], uint16_t sport, uint16_t dport,
                                     uint32_t seq, uint32_t ack, uint8_t flags,
                                     const uint8_t *data, size_t datalen, bool partial_csum)
{
    size_t n = test_eth(f, dmac, test_mac, 0x0800);
    uint8_t *tcp = f + n + 20;

    memset(tcp, 0, 20);
    qnic_st16be(tcp, sport);
    qnic_st16be(tcp + 2, dport);
    qnic_st32be(tcp + 4, seq);
    qnic_st32be(tcp + 8, ack);
    tcp[12] = 5 << 4;
    tcp[13] = flags;
    qnic_st16be(tcp + 14, 65535);
    if (datalen) {
        memcpy(tcp + 20, data, datalen);
    }
    if (partial_csum) {
        uint32_t s = test_tcp_pseudo(sip, dip, 20 + datalen);
        while (s >> 16) {
            s = (s & 0xffff) + (s >> 16);
        }
        qnic_st16be(tcp + 16, (uint16_t)s);
    } else {
        qnic_st16be(tcp + 16, test_csum(tcp, 20 + datalen, test_tcp_pseudo(sip, dip, 20 + datalen)));
    }
    test_ipv4(f + n, 6, sip, dip, 20 + datalen, (uint16_t)seq);
    return n + 20 + 20 + datalen;
}

/* Find, among recorded frames (each starting after skip bytes), one that
 * matches; returns its index or -1. */
typedef bool TestFrameMatch(const uint8_t *f, size_t len, void *opaque);

static G_GNUC_UNUSED int test_sink_find(TestSink *s, size_t skip, TestFrameMatch *m, void *opaque)
{
    for (guint i = 0; i < s->frames->len; i++) {
        GByteArray *b = g_ptr_array_index(s->frames, i);
        if (b->len >= skip && m(b->data + skip, b->len - skip, opaque)) {
            return (int)i;
        }
    }
    return -1;
}

/* ---- QEMU 7.2 as a peer, and the stream sockets it speaks ---- */

#include <poll.h>
#include <signal.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/socket.h>

static G_GNUC_UNUSED const char *test_qemu_binary(void)
{
    const char *q = g_getenv("QNIC_TEST_QEMU");
    return q && q[0] ? q : "/usr/bin/qemu-system-x86_64";
}

static G_GNUC_UNUSED const char *test_need_qemu(void)
{
    return access(test_qemu_binary(), X_OK) == 0 ? NULL
        : "QEMU (qemu-system-x86_64) is not installed; set QNIC_TEST_QEMU";
}

static char test_qemu_bios[64];

/* Start QEMU with a halted CPU (a BIOS of HLT bytes: the VM counts as
 * running, so its netdevs move frames) plus the given arguments. */
static G_GNUC_UNUSED GPid test_qemu_start(const char *const *extra)
{
    char bios[] = "/tmp/qnic-hlt-bios-XXXXXX";
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    g_autoptr(GError) err = NULL;
    GPid pid;

    {
        int fd = mkstemp(bios);
        uint8_t hlt[4096];
        memset(hlt, 0xf4, sizeof(hlt));
        g_assert_cmpint(fd, >=, 0);
        for (int i = 0; i < 16; i++) {
            g_assert_cmpint(write(fd, hlt, sizeof(hlt)), ==, sizeof(hlt));
        }
        close(fd);
    }
    const char *base[] = { test_qemu_binary(), "-M", "pc", "-accel", "tcg", "-display", "none",
                           "-nodefaults", "-monitor", "none", "-serial", "none", "-bios", bios };
    for (size_t i = 0; i < G_N_ELEMENTS(base); i++) {
        g_ptr_array_add(argv, (char *)base[i]);
    }
    for (int i = 0; extra[i]; i++) {
        g_ptr_array_add(argv, (char *)extra[i]);
    }
    g_ptr_array_add(argv, NULL);
    g_assert_true(g_spawn_async(NULL, (char **)argv->pdata, NULL, G_SPAWN_DO_NOT_REAP_CHILD,
                                NULL, NULL, &pid, &err));
    g_assert_no_error(err);
    /* QEMU reads the BIOS late in start-up: remove it when QEMU stops. */
    g_strlcpy(test_qemu_bios, bios, sizeof(test_qemu_bios));
    return pid;
}

static G_GNUC_UNUSED void test_qemu_stop(GPid pid)
{
    int status;

    kill(pid, SIGTERM);
    for (int i = 0; i < 200; i++) {
        if (waitpid(pid, &status, WNOHANG) == pid) {
            return;
        }
        g_usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
}

static G_GNUC_UNUSED void test_qemu_stop_and_clean(GPid pid)
{
    test_qemu_stop(pid);
    if (test_qemu_bios[0]) {
        unlink(test_qemu_bios);
        test_qemu_bios[0] = 0;
    }
}

static G_GNUC_UNUSED uint16_t test_free_port(int type)
{
    struct sockaddr_in a = { .sin_family = AF_INET };
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, type, 0);

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    g_assert_cmpint(bind(fd, (struct sockaddr *)&a, sizeof(a)), ==, 0);
    g_assert_cmpint(getsockname(fd, (struct sockaddr *)&a, &len), ==, 0);
    close(fd);
    return ntohs(a.sin_port);
}

static G_GNUC_UNUSED int test_listen_tcp(uint16_t *port)
{
    struct sockaddr_in a = { .sin_family = AF_INET };
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    g_assert_cmpint(bind(fd, (struct sockaddr *)&a, sizeof(a)), ==, 0);
    g_assert_cmpint(listen(fd, 1), ==, 0);
    g_assert_cmpint(getsockname(fd, (struct sockaddr *)&a, &len), ==, 0);
    *port = ntohs(a.sin_port);
    return fd;
}

static G_GNUC_UNUSED int test_accept(int lfd, int ms)
{
    struct pollfd p = { .fd = lfd, .events = POLLIN };

    if (poll(&p, 1, ms) != 1) {
        return -1;
    }
    return accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
}

/* Start QEMU with the netdev qopt (id qid) and a socket netdev that
 * connects to lfd (listening on port), joined by a hub; returns the accepted
 * stream socket and sets *pid to QEMU. */
static G_GNUC_UNUSED int test_qemu_start_hub_peer(const char *qopt, const char *qid, int lfd,
                                                  uint16_t port, GPid *pid)
{
    g_autofree char *sopt = g_strdup_printf("socket,id=s0,connect=127.0.0.1:%u", port);
    g_autofree char *hub = g_strdup_printf("hubport,id=hp0,hubid=0,netdev=%s", qid);
    const char *args[] = { "-netdev", qopt, "-netdev", sopt,
                           "-netdev", hub,
                           "-netdev", "hubport,id=hp1,hubid=0,netdev=s0", NULL };
    int cfd;

    *pid = test_qemu_start(args);
    cfd = test_accept(lfd, 15000);
    if (cfd < 0) {
        test_qemu_stop_and_clean(*pid);
        g_error("QEMU did not connect its socket netdev");
    }
    return cfd;
}

/* QEMU's stream framing: a 32-bit big-endian length, then the frame. */
static G_GNUC_UNUSED void test_stream_send(int fd, const uint8_t *frame, size_t len)
{
    uint8_t hdr[4];
    qnic_st32be(hdr, (uint32_t)len);
    g_assert_cmpint(write(fd, hdr, 4), ==, 4);
    g_assert_cmpint(write(fd, frame, len), ==, (ssize_t)len);
}

static G_GNUC_UNUSED bool test_read_full(int fd, uint8_t *buf, size_t len, gint64 deadline)
{
    size_t got = 0;

    while (got < len) {
        int left = (int)((deadline - g_get_monotonic_time()) / 1000);
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (left <= 0 || poll(&p, 1, left) != 1) {
            return false;
        }
        ssize_t r = read(fd, buf + got, len - got);
        if (r <= 0) {
            return false;
        }
        got += r;
    }
    return true;
}

/* Next frame from a QEMU stream socket, or NULL after ms. */
static G_GNUC_UNUSED GByteArray *test_stream_recv(int fd, int ms)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)ms * 1000;
    uint8_t hdr[4];
    uint32_t len;
    GByteArray *b;

    if (!test_read_full(fd, hdr, 4, deadline)) {
        return NULL;
    }
    len = qnic_ld32be(hdr);
    g_assert_cmpuint(len, <=, 65536);
    b = g_byte_array_sized_new(len);
    g_byte_array_set_size(b, len);
    if (!test_read_full(fd, b->data, len, deadline)) {
        g_byte_array_unref(b);
        return NULL;
    }
    return b;
}

/* A recognisable test frame: broadcast, ethertype 0x88b5 (local
 * experimental), payload derived from seed. */
static G_GNUC_UNUSED size_t test_frame(uint8_t *f, size_t len, uint32_t seed)
{
    test_eth(f, bcast_mac, test_mac, 0x88b5);
    for (size_t i = 14; i < len; i++) {
        f[i] = (uint8_t)(seed * 13 + i * 7);
    }
    return len;
}

static bool test_sink_has_n(void *opaque)
{
    TestSink *s = opaque;
    return s->frames->len > 0;
}

static G_GNUC_UNUSED bool test_sink_wait(TestSink *s, int ms)
{
    return test_pump(ms, test_sink_has_n, s);
}

#endif
