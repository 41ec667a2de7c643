/*
 * `-netdev af-xdp` against the real kernel: the test creates a network
 * namespace holding a veth pair, runs qnic-vmm inside it with a
 * virtio-net-pci on `-netdev af-xdp` over one end (xa), and gives the other
 * end (xb) an address, so the kernel's own ARP, ICMP and UDP answer and
 * feed the NIC the test drives over qtest. Checked in skb and native mode:
 * ARP and ping (ICMP echo answered by the kernel), a counted UDP stream
 * from a kernel socket to the NIC and one from the NIC to a kernel socket,
 * every datagram present and in order; two queue pairs on a two-queue
 * veth; flow control (600 datagrams at once to a NIC with 8 buffers); and QEMU 8.2's errors for the options (no such interface, queues
 * beyond the interface's, a bad mode, sock-fds misuse), after which no XDP
 * program is left on the interface. QEMU 7.2 has no af-xdp netdev (QEMU
 * added it in 8.2), so against QEMU every case skips.
 */
#include "libqtest.h"
#include "virtio-driver.h"
#include "qtest-net.h"
#include <signal.h>
#include <glib.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>

#define DEVFN (4 << 3)
#define QSIZE 256
#define BUFSZ 2048
#define HDR 12                      /* VERSION_1 virtio-net header */
#define WINDOW 128                  /* frames in flight per direction */
#define STREAM_COUNT 1000
#define UDP_PORT 5555

#define F(x) (1ull << (x))

static const uint8_t nic_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
static const uint8_t nic_ip[4] = { 10, 78, 0, 2 };
static const uint8_t host_ip[4] = { 10, 78, 0, 1 };

/* ---- the namespace ---- */

typedef struct XdpEnv {
    char ns[32];
    int orig_ns;                    /* the test's own namespace, to go back */
} XdpEnv;

/* The namespace to delete when an assertion aborts the test. */
static char abort_ns[32];

static void abort_cleanup(int sig)
{
    char cmd[64];

    snprintf(cmd, sizeof(cmd), "ip netns del %s", abort_ns);
    if (abort_ns[0] && system(cmd)) {
        /* nothing more to do on the way out */
    }
    signal(SIGABRT, SIG_DFL);
}

/* Run a command line (in the namespace the test is in); its status. */
static int run(const char *cmd)
{
    int st = system(cmd);

    if (st != 0) {
        g_test_message("'%s' -> %d", cmd, st);
    }
    return st;
}

/* Why these tests cannot run here, or NULL. */
static const char *xdp_skip_reason(void)
{
    if (qtest_target_is_qemu()) {
        return "QEMU 7.2 has no -netdev af-xdp (QEMU added it in 8.2)";
    }
    if (geteuid() != 0) {
        return "needs root (network namespace, veth, XDP program load)";
    }
    if (system("ip netns list >/dev/null 2>&1") != 0) {
        return "needs iproute2 with network namespace support (ip netns)";
    }
    return NULL;
}

/* A namespace with veth xa <-> xb (each with `queues` queues), xb at
 * 10.78.0.1/24 with the NIC's address a permanent neighbour; the test
 * process enters it, so what it starts runs there. False (the test is
 * skipped, with the reason) where this cannot run. */
static bool env_up(XdpEnv *e, int queues)
{
    const char *skip = xdp_skip_reason();
    g_autofree char *path = NULL, *add = NULL, *veth = NULL;
    int fd;

    if (skip) {
        g_test_skip(skip);
        return false;
    }
    snprintf(e->ns, sizeof(e->ns), "qnicxdp%d", (int)getpid());
    path = g_strdup_printf("/run/netns/%s", e->ns);
    add = g_strdup_printf("{ ! test -e %s || ip netns del %s; } && ip netns add %s",
                          path, e->ns, e->ns);
    g_assert_cmpint(run(add), ==, 0);
    g_strlcpy(abort_ns, e->ns, sizeof(abort_ns));
    signal(SIGABRT, abort_cleanup);
    e->orig_ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    g_assert_cmpint(e->orig_ns, >=, 0);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(setns(fd, CLONE_NEWNET), ==, 0);
    close(fd);
    /* no IPv6 chatter (router solicitations, MLD) among the frames */
    veth = g_strdup_printf(
        "sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 && "
        "ip link add xa numtxqueues %d numrxqueues %d type veth "
        "peer name xb numtxqueues %d numrxqueues %d && "
        "ip addr add 10.78.0.1/24 dev xb && ip link set xa up && ip link set xb up && "
        "ip link set lo up && "
        "ip neigh replace 10.78.0.2 lladdr 52:54:00:12:34:56 dev xb nud permanent",
        queues, queues, queues, queues);
    g_assert_cmpint(run(veth), ==, 0);
    return true;
}

static void env_down(XdpEnv *e)
{
    g_autofree char *del = g_strdup_printf("ip netns del %s", e->ns);

    g_assert_cmpint(setns(e->orig_ns, CLONE_NEWNET), ==, 0);
    close(e->orig_ns);
    run(del);
    abort_ns[0] = 0;
}

/* Whether an XDP program is attached to xa (ip link shows "xdp"). */
static bool xa_has_xdp(void)
{
    return system("ip link show xa | grep -q xdp") == 0;
}

/* ---- the NIC: virtio-net-pci driven over qtest ---- */

typedef struct XdpNic {
    QTestState *qts;
    VDev d;
    unsigned pairs;
    uint64_t rxbuf[2][QSIZE], txbuf[2][QSIZE];
    uint16_t rx_next[2], tx_next[2];
    unsigned tx_inflight[2];
} XdpNic;

static void nic_post_rx(XdpNic *n, unsigned p)
{
    uint16_t slot = n->rx_next[p]++ % QSIZE;
    VdBuf b = { n->rxbuf[p][slot], BUFSZ, true };

    vring_add_at(&n->d.q[2 * p].vr, slot, &b, 1);
}

/* The NIC with `posted` RX buffers on each queue pair's RX ring. */
static XdpNic *nic_start(const char *netdev_opts, unsigned pairs, unsigned posted)
{
    XdpNic *n = g_new0(XdpNic, 1);
    uint64_t want = F(VIRTIO_NET_F_MAC) | F(VIRTIO_NET_F_STATUS) | F(VIRTIO_F_VERSION_1);
    unsigned nq = pairs > 1 ? 2 * pairs + 1 : 3;

    if (pairs > 1) {
        want |= F(VIRTIO_NET_F_CTRL_VQ) | F(VIRTIO_NET_F_MQ);
    }
    n->pairs = pairs;
    n->qts = qtest_initf(0, "-netdev af-xdp,id=n0,%s -device virtio-net-pci,netdev=n0,addr=4%s",
                         netdev_opts, pairs > 1 ? ",mq=on" : "");
    vd_pci_init(&n->d, n->qts, DEVFN, VD_PCI_MODERN);
    g_assert_true(vd_negotiate(&n->d, want));
    vd_setup_queues(&n->d, nq, QSIZE);
    vd_driver_ok(&n->d);
    g_assert_cmphex(vd_get_status(&n->d) & VIRTIO_CONFIG_S_NEEDS_RESET, ==, 0);
    for (unsigned p = 0; p < pairs; p++) {
        for (unsigned i = 0; i < QSIZE; i++) {
            n->rxbuf[p][i] = qtest_guest_alloc(n->qts, BUFSZ, 64);
            n->txbuf[p][i] = qtest_guest_alloc(n->qts, BUFSZ, 64);
        }
        for (unsigned i = 0; i < posted; i++) {
            nic_post_rx(n, p);
        }
        vd_kick(&n->d, 2 * p);
    }
    return n;
}

static void nic_stop(XdpNic *n)
{
    qtest_quit(n->qts);
    g_free(n);
}

/* Next frame on RX queue p (its buffer goes back to the ring): its length
 * without the virtio-net header, or -1 after timeout_ms. */
static int nic_recv(XdpNic *n, unsigned p, uint8_t *f, unsigned timeout_ms)
{
    uint16_t id;
    uint32_t len;

    if (!vd_get_used(&n->d, 2 * p, &id, &len, timeout_ms)) {
        return -1;
    }
    g_assert_cmpuint(len, >, HDR);
    g_assert_cmpuint(len, <=, BUFSZ);
    qtest_memread(n->qts, n->rxbuf[p][id % QSIZE] + HDR, f, len - HDR);
    nic_post_rx(n, p);
    vd_kick(&n->d, 2 * p);
    return (int)(len - HDR);
}

/* Put a frame on TX queue p, waiting while WINDOW frames are in flight. */
static void nic_send(XdpNic *n, unsigned p, const uint8_t *f, size_t len)
{
    uint8_t buf[BUFSZ] = { 0 };
    uint16_t slot = n->tx_next[p]++ % QSIZE, id;
    VdBuf b = { n->txbuf[p][slot], HDR + len, false };
    uint32_t ulen;

    g_assert_cmpuint(HDR + len, <=, BUFSZ);
    while (vring_get_used(&n->d.q[2 * p + 1].vr, &id, &ulen)) {
        n->tx_inflight[p]--;
    }
    if (n->tx_inflight[p] >= WINDOW) {
        g_assert_true(vd_get_used(&n->d, 2 * p + 1, &id, &ulen, 5000));
        n->tx_inflight[p]--;
    }
    memcpy(buf + HDR, f, len);
    qtest_memwrite(n->qts, b.addr, buf, HDR + len);
    vring_add_at(&n->d.q[2 * p + 1].vr, slot, &b, 1);
    vd_kick(&n->d, 2 * p + 1);
    n->tx_inflight[p]++;
}

/* ---- frames ---- */

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = v >> 8;
    p[1] = v & 0xff;
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

/* The stream's sequence numbers, host order, at any alignment. */
static uint32_t get_seq(const uint8_t *p)
{
    uint32_t v;

    memcpy(&v, p, 4);
    return v;
}

static size_t eth(uint8_t *f, const uint8_t *dst, uint16_t type)
{
    memcpy(f, dst, 6);
    memcpy(f + 6, nic_mac, 6);
    put16(f + 12, type);
    return 14;
}

static size_t arp_request(uint8_t *f)
{
    static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
    uint8_t *a = f + eth(f, bcast, 0x0806);

    put16(a, 1);
    put16(a + 2, 0x0800);
    a[4] = 6;
    a[5] = 4;
    put16(a + 6, 1);
    memcpy(a + 8, nic_mac, 6);
    memcpy(a + 14, nic_ip, 4);
    memset(a + 18, 0, 6);
    memcpy(a + 24, host_ip, 4);
    return 42;
}

/* An IPv4 packet to the host with `plen` bytes of payload after the header. */
static size_t ipv4(uint8_t *f, const uint8_t *dmac, uint8_t proto, size_t plen, uint16_t id)
{
    uint8_t *ip = f + eth(f, dmac, 0x0800);

    memset(ip, 0, 20);
    ip[0] = 0x45;
    put16(ip + 2, (uint16_t)(20 + plen));
    put16(ip + 4, id);
    ip[8] = 64;
    ip[9] = proto;
    memcpy(ip + 12, nic_ip, 4);
    memcpy(ip + 16, host_ip, 4);
    put16(ip + 10, qtest_net_csum(ip, 20));
    return 34 + plen;
}

static size_t icmp_echo(uint8_t *f, const uint8_t *dmac, uint16_t seq)
{
    uint8_t *icmp = f + 34;

    memset(icmp, 0, 64);
    icmp[0] = 8;
    put16(icmp + 4, 0x7178);
    put16(icmp + 6, seq);
    for (int i = 8; i < 64; i++) {
        icmp[i] = (uint8_t)(i * 3 + seq);
    }
    put16(icmp + 2, qtest_net_csum(icmp, 64));
    return ipv4(f, dmac, 1, 64, seq);
}

/* UDP to the host's port UDP_PORT, payload: the 32-bit sequence number and
 * filler (checksum 0: none, as IPv4 allows). */
static size_t udp_datagram(uint8_t *f, const uint8_t *dmac, uint32_t seq, size_t plen)
{
    uint8_t *u = f + 34;

    put16(u, 40000);
    put16(u + 2, UDP_PORT);
    put16(u + 4, (uint16_t)(8 + plen));
    put16(u + 6, 0);
    for (size_t i = 0; i < plen; i++) {
        u[8 + i] = (uint8_t)(seq + i);
    }
    memcpy(u + 8, &seq, 4);
    return ipv4(f, dmac, 17, 8 + plen, (uint16_t)seq);
}

static bool is_ipv4(const uint8_t *f, int len, uint8_t proto)
{
    return len >= 34 && get16(f + 12) == 0x0800 && f[23] == proto && !memcmp(f + 26, host_ip, 4) &&
           !memcmp(f + 30, nic_ip, 4);
}

/* ---- cases ---- */

/* ARP for the host, then 5 pings, each answered by the kernel. Returns
 * xb's MAC in host_mac. */
static void check_ping(XdpNic *n, uint8_t host_mac[6])
{
    uint8_t f[BUFSZ];
    int len;
    bool got = false;

    nic_send(n, 0, f, arp_request(f));
    while (!got && (len = nic_recv(n, 0, f, 5000)) >= 0) {
        got = len >= 42 && get16(f + 12) == 0x0806 && get16(f + 20) == 2 &&
              !memcmp(f + 28, host_ip, 4) && !memcmp(f, nic_mac, 6);
    }
    g_assert_true(got);
    memcpy(host_mac, f + 22, 6);
    for (uint16_t seq = 1; seq <= 5; seq++) {
        uint8_t req[BUFSZ];
        size_t rlen = icmp_echo(req, host_mac, seq);

        nic_send(n, 0, req, rlen);
        got = false;
        while (!got && (len = nic_recv(n, 0, f, 5000)) >= 0) {
            got = is_ipv4(f, len, 1) && len == (int)rlen && f[34] == 0 &&
                  get16(f + 38) == 0x7178 && get16(f + 40) == seq &&
                  !memcmp(f + 42, req + 42, 56);
        }
        g_assert_true(got);
    }
}

static int host_udp_socket(void)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(UDP_PORT) };
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int big = 8 << 20;

    g_assert_cmpint(fd, >=, 0);
    memcpy(&a.sin_addr, host_ip, 4);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
    g_assert_cmpint(bind(fd, (struct sockaddr *)&a, sizeof(a)), ==, 0);
    return fd;
}

/* STREAM_COUNT datagrams from a kernel socket to the NIC, at most WINDOW
 * ahead of what it took; every one arrives, in order. */
static void check_udp_to_nic(XdpNic *n, int fd)
{
    struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(UDP_PORT) };
    uint8_t f[BUFSZ], payload[200];
    uint32_t sent = 0, got = 0;

    memcpy(&to.sin_addr, nic_ip, 4);
    while (got < STREAM_COUNT) {
        int len;

        while (sent < STREAM_COUNT && sent - got < WINDOW) {
            memset(payload, (uint8_t)sent, sizeof(payload));
            memcpy(payload, &sent, 4);
            g_assert_cmpint(sendto(fd, payload, sizeof(payload), 0, (struct sockaddr *)&to,
                                   sizeof(to)), ==, sizeof(payload));
            sent++;
        }
        len = nic_recv(n, 0, f, 5000);
        if (len < 0) {
            g_test_message("UDP to the NIC: %u of %u arrived", got, STREAM_COUNT);
        }
        g_assert_cmpint(len, >=, 0);
        if (!is_ipv4(f, len, 17) || get16(f + 36) != UDP_PORT) {
            continue;               /* not ours (ARP and the like) */
        }
        g_assert_cmpint(len, ==, 42 + (int)sizeof(payload));
        g_assert_cmpuint(get_seq(f + 42), ==, got);
        g_assert_cmpuint(f[42 + 100], ==, (uint8_t)got);
        got++;
    }
}

/* STREAM_COUNT datagrams from the NIC to the kernel socket; every one
 * arrives, in order. */
static void check_udp_from_nic(XdpNic *n, int fd, const uint8_t host_mac[6])
{
    uint8_t f[BUFSZ], buf[BUFSZ];
    uint32_t got = 0;

    for (uint32_t seq = 0; seq < STREAM_COUNT; seq++) {
        nic_send(n, 0, f, udp_datagram(f, host_mac, seq, 300));
        /* drain as we go, so the socket buffer never decides */
        while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) == 300) {
            g_assert_cmpuint(get_seq(buf), ==, got);
            got++;
        }
    }
    while (got < STREAM_COUNT) {
        struct timeval tv = { .tv_sec = 5 };
        ssize_t r;

        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        r = recv(fd, buf, sizeof(buf), 0);
        if (r < 0) {
            g_test_message("UDP from the NIC: %u of %u arrived", got, STREAM_COUNT);
        }
        g_assert_cmpint(r, ==, 300);
        g_assert_cmpuint(get_seq(buf), ==, got);
        got++;
    }
}

static void test_traffic(gconstpointer data)
{
    const char *mode = data;
    g_autofree char *opts = NULL;
    uint8_t host_mac[6];
    XdpEnv e;
    XdpNic *n;
    int fd;

    if (!env_up(&e, 1)) {
        return;
    }
    opts = g_strdup_printf("ifname=xa,mode=%s", mode);
    n = nic_start(opts, 1, WINDOW);
    g_assert_true(xa_has_xdp());
    fd = host_udp_socket();
    check_ping(n, host_mac);
    check_udp_to_nic(n, fd);
    check_udp_from_nic(n, fd, host_mac);
    close(fd);
    nic_stop(n);
    /* the program went with the netdev */
    g_assert_false(xa_has_xdp());
    env_down(&e);
}

/* queues=2 on a two-queue veth: each queue pair of the NIC is one queue of
 * xa. The kernel spreads its flows over xb's TX queues, which are xa's RX
 * queues; both must carry some of them to the NIC. Native mode: in skb
 * mode veth (without NAPI) passes every frame to generic XDP as RX queue 0,
 * so the second socket would see nothing (docs/backends.md). */
static void test_two_queues(void)
{
    struct sockaddr_in to = { .sin_family = AF_INET };
    unsigned per_queue[2] = { 0, 0 };
    XdpEnv e;
    XdpNic *n;
    uint8_t f[BUFSZ];

    if (!env_up(&e, 2)) {
        return;
    }
    n = nic_start("ifname=xa,mode=native,queues=2", 2, WINDOW);
    {
        /* the driver turns both pairs on (VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET) */
        uint64_t cmd = qtest_guest_alloc(n->qts, 16, 16), ack = qtest_guest_alloc(n->qts, 1, 1);
        uint8_t c[4] = { VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, 2, 0 };
        VdBuf b[2] = { { cmd, 4, false }, { ack, 1, true } };
        uint16_t id;
        uint32_t len;

        qtest_memwrite(n->qts, cmd, c, 4);
        vd_add(&n->d, 4, b, 2, false);
        vd_kick(&n->d, 4);
        g_assert_true(vd_get_used(&n->d, 4, &id, &len, 5000));
        g_assert_cmpuint(qtest_readb(n->qts, ack), ==, VIRTIO_NET_OK);
    }
    memcpy(&to.sin_addr, nic_ip, 4);
    for (int flow = 0; flow < 32; flow++) {
        int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        uint32_t v = (uint32_t)flow;

        to.sin_port = htons((uint16_t)(6000 + flow));
        g_assert_cmpint(sendto(fd, &v, 4, 0, (struct sockaddr *)&to, sizeof(to)), ==, 4);
        close(fd);
    }
    for (gint64 end = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
         per_queue[0] + per_queue[1] < 32 && g_get_monotonic_time() < end;) {
        for (unsigned p = 0; p < 2; p++) {
            int len = nic_recv(n, p, f, 20);

            if (len >= 0 && is_ipv4(f, len, 17)) {
                per_queue[p]++;
            }
        }
    }
    g_test_message("flows per NIC queue: %u and %u", per_queue[0], per_queue[1]);
    g_assert_cmpuint(per_queue[0] + per_queue[1], ==, 32);
    g_assert_cmpuint(per_queue[0], >, 0);
    g_assert_cmpuint(per_queue[1], >, 0);
    nic_stop(n);
    env_down(&e);
}

/* Flow control: the NIC has 8 RX buffers when the kernel sends 600
 * datagrams at once. The backend hands over what the NIC takes, stops
 * reading while the net core holds a frame for it, and goes on when the
 * driver gives buffers back; the rest waits in the socket's RX ring
 * (2048), so every datagram arrives, in order. skb mode: the kernel then
 * queues nothing in veth (native mode has a 256-frame ring there). */
static void test_flow_control(void)
{
    struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(UDP_PORT) };
    uint8_t f[BUFSZ], payload[64] = { 0 };
    XdpEnv e;
    XdpNic *n;
    int fd;

    if (!env_up(&e, 1)) {
        return;
    }
    n = nic_start("ifname=xa,mode=skb", 1, 8);
    fd = host_udp_socket();
    memcpy(&to.sin_addr, nic_ip, 4);
    for (uint32_t seq = 0; seq < 600; seq++) {
        memcpy(payload, &seq, 4);
        g_assert_cmpint(sendto(fd, payload, sizeof(payload), 0, (struct sockaddr *)&to,
                               sizeof(to)), ==, sizeof(payload));
    }
    for (uint32_t got = 0; got < 600;) {
        int len = nic_recv(n, 0, f, 5000);

        if (len < 0) {
            g_test_message("flow control: %u of 600 arrived", got);
        }
        g_assert_cmpint(len, >=, 0);
        if (is_ipv4(f, len, 17) && get16(f + 36) == UDP_PORT) {
            g_assert_cmpuint(get_seq(f + 42), ==, got);
            got++;
        }
    }
    close(fd);
    nic_stop(n);
    env_down(&e);
}

/* The option errors, with QEMU 8.2's words; none leaves a program behind. */
static void test_errors(void)
{
    static const struct { const char *opts, *msg; } cases[] = {
        { "ifname=nosuch", "failed to get ifindex for 'nosuch': No such device" },
        { "ifname=xa,queues=2", "failed to create AF_XDP socket for xa queue_id: 1: Invalid argument" },
        { "ifname=xa,start-queue=1", "failed to create AF_XDP socket for xa queue_id: 1" },
        { "ifname=xa,mode=bad", "Parameter 'mode' does not accept value 'bad'" },
        { "ifname=xa,queues=0", "invalid number of queues (0) for 'xa'" },
        { "ifname=xa,inhibit=on", "'inhibit=on' requires 'sock-fds' and vice versa" },
        { "ifname=xa,sock-fds=0", "'inhibit=on' requires 'sock-fds' and vice versa" },
        { "ifname=xa,inhibit=on,sock-fds=3:4", "expected 1 socket fds, got 2" },
        { "ifname=xa,inhibit=on,sock-fds=abc", "Invalid file descriptor number 'abc'" },
        { "ifname=xa,inhibit=on,sock-fds=0", "fd 0 is not an AF_XDP socket" },
    };
    XdpEnv e;

    if (!env_up(&e, 1)) {
        return;
    }
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *out = NULL, *err = NULL;
        g_autofree char *cmd = g_strdup_printf(
            "timeout 30 '%s' -machine pc -accel qtest -qtest stdio -nodefaults -display none "
            "-netdev af-xdp,id=n0,%s -device virtio-net-pci,netdev=n0", qtest_binary(), cases[i].opts);
        g_auto(GStrv) argv = NULL;
        g_auto(GStrv) lines = NULL;
        int status = 0;

        g_assert_true(g_shell_parse_argv(cmd, NULL, &argv, NULL));
        g_assert_true(g_spawn_sync(NULL, argv, NULL, G_SPAWN_SEARCH_PATH | G_SPAWN_STDIN_FROM_DEV_NULL, NULL, NULL,
                                   &out, &err, &status, NULL));
        g_test_message("%s -> %s", cases[i].opts, err);
        if (strstr(err, "built without libxdp")) {
            env_down(&e);
            g_test_skip("this qnic was built without libxdp");
            return;
        }
        g_assert_false(g_spawn_check_wait_status(status, NULL));
        g_assert_nonnull(strstr(err, cases[i].msg));
        /* one line, and nothing left on the interface */
        lines = g_strsplit(g_strstrip(err), "\n", -1);
        g_assert_cmpuint(g_strv_length(lines), ==, 1);
        g_assert_false(xa_has_xdp());
    }
    env_down(&e);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_data_func("/af-xdp/skb", "skb", test_traffic);
    g_test_add_data_func("/af-xdp/native", "native", test_traffic);
    g_test_add_func("/af-xdp/two-queues", test_two_queues);
    g_test_add_func("/af-xdp/flow-control", test_flow_control);
    g_test_add_func("/af-xdp/errors", test_errors);
    return g_test_run();
}
