/*
 * virtio-net qtest tests, run against qnic-vmm and QEMU 7.2 alike: the PCI
 * layout (IDs, BARs, the capability chain) compared byte for byte with a
 * table taken from QEMU 7.2, bring-up and frame exchange in both directions
 * through a `-netdev socket,udp=` backend whose other end the test holds
 * (legacy, transitional via both interfaces, modern split and packed,
 * indirect descriptors, EVENT_IDX, mergeable RX buffers, virtio-mmio v1/v2),
 * control queue commands with RX/VLAN filtering, MTU and link status, and
 * malformed drivers that must end in NEEDS_RESET with a device that still
 * works after a reset. Differences with QEMU are in docs/virtio.md.
 */
#include "libqtest.h"
#include "virtio-driver.h"
#include <glib.h>
#include <string.h>
#include <unistd.h>
#include <stdio.h>
#include <poll.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <linux/virtio_net.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#define DEVFN (4 << 3)
#define BUFSZ 2048

/* ---- layout table (captured from QEMU 7.2 with the same command line) ---- */

typedef struct {
    const char *dev;
    bool needs_tap;
    const char *cfg;          /* 256 bytes hex, 0x00..0xff */
    uint64_t bar_size[6];
    uint8_t bar_type[6];
} LayoutCase;

static const LayoutCase layouts[] = {
    { "virtio-net-pci", false,
      "f41a0010000010000000000200000000010000000000000000000000000000000c0000000000000000000000f41a0100"
      "000000009800000000000000000100000900100104000000000000000010000009401003040000000010000000100000"
      "095010040400000000200000001000000960140204000000003000000010000004000000097014050000000000000000"
      "000000000000000011840300010000000108"
      ,
      { 0x20, 0x1000, 0x0, 0x0, 0x4000, 0x0 }, { 0x1, 0x0, 0x0, 0x0, 0xc, 0x0 } },
    { "virtio-net-pci,disable-modern=on", false,
      "f41a001000001000000000020000000001000000000000000000000000000000000000000000000000000000f41a0100"
      "0000000040000000000000000001000011000300010000000108"
      ,
      { 0x20, 0x1000, 0x0, 0x0, 0x0, 0x0 }, { 0x1, 0x0, 0x0, 0x0, 0x0, 0x0 } },
    { "virtio-net-pci,disable-legacy=on", false,
      "f41a4110000010000100000200000000000000000000000000000000000000000c0000000000000000000000f41a0011"
      "000000009800000000000000000100000900100104000000000000000010000009401003040000000010000000100000"
      "095010040400000000200000001000000960140204000000003000000010000004000000097014050000000000000000"
      "000000000000000011840300010000000108"
      ,
      { 0x0, 0x1000, 0x0, 0x0, 0x4000, 0x0 }, { 0x0, 0x0, 0x0, 0x0, 0xc, 0x0 } },
    { "virtio-net-pci-non-transitional", false,
      "f41a4110000010000100000200000000000000000000000000000000000000000c0000000000000000000000f41a0011"
      "000000009800000000000000000100000900100104000000000000000010000009401003040000000010000000100000"
      "095010040400000000200000001000000960140204000000003000000010000004000000097014050000000000000000"
      "000000000000000011840300010000000108"
      ,
      { 0x0, 0x1000, 0x0, 0x0, 0x4000, 0x0 }, { 0x0, 0x0, 0x0, 0x0, 0xc, 0x0 } },
    { "virtio-net-pci,vectors=0", false,
      "f41a0010000010000000000200000000010000000000000000000000000000000c0000000000000000000000f41a0100"
      "000000008400000000000000000100000900100104000000000000000010000009401003040000000010000000100000"
      "09501004040000000020000000100000096014020400000000300000001000000400000009701405"
      ,
      { 0x20, 0x0, 0x0, 0x0, 0x4000, 0x0 }, { 0x1, 0x0, 0x0, 0x0, 0xc, 0x0 } },
    { "virtio-net-pci,packed=on", false,
      "f41a0010000010000000000200000000010000000000000000000000000000000c0000000000000000000000f41a0100"
      "000000009800000000000000000100000900100104000000000000000010000009401003040000000010000000100000"
      "095010040400000000200000001000000960140204000000003000000010000004000000097014050000000000000000"
      "000000000000000011840300010000000108"
      ,
      { 0x20, 0x1000, 0x0, 0x0, 0x4000, 0x0 }, { 0x1, 0x0, 0x0, 0x0, 0xc, 0x0 } },
    { "virtio-net-pci,mq=on", true,
      "f41a0010000010000000000200000000010000000000000000000000000000000c0000000000000000000000f41a0100"
      "000000009800000000000000000100000900100104000000000000000010000009401003040000000010000000100000"
      "095010040400000000200000001000000960140204000000003000000010000004000000097014050000000000000000"
      "000000000000000011840900010000000108"
      ,
      { 0x40, 0x1000, 0x0, 0x0, 0x4000, 0x0 }, { 0x1, 0x0, 0x0, 0x0, 0xc, 0x0 } },
};

static bool have_tap(void)
{
    return getuid() == 0 && access("/dev/net/tun", R_OK | W_OK) == 0;
}

static void test_layout(gconstpointer data)
{
    const LayoutCase *c = data;
    QTestState *qts;
    uint8_t want[256] = { 0 }, got[256];
    size_t n = strlen(c->cfg) / 2;

    if (c->needs_tap && !have_tap()) {
        g_test_skip("needs root and /dev/net/tun for -netdev tap,queues=4");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        sscanf(c->cfg + 2 * i, "%2hhx", &want[i]);
    }
    if (c->needs_tap) {
        qts = qtest_initf(0, "-netdev tap,id=n0,queues=4,script=no,downscript=no,ifname=qvtest%d "
                          "-device %s,netdev=n0,addr=4", (int)getpid() % 1000, c->dev);
    } else {
        qts = qtest_initf(0, "-netdev user,id=n0 -device %s,netdev=n0,addr=4", c->dev);
    }
    for (int off = 0; off < 256; off += 4) {
        uint32_t v = qtest_pci_cfg_readl(qts, DEVFN, off);
        memcpy(got + off, &v, 4);
    }
    /* 0x3c (interrupt line) is firmware's; both leave it 0 here. */
    for (int i = 0; i < 256; i++) {
        if (got[i] != want[i]) {
            g_test_message("%s: config byte 0x%02x is 0x%02x, QEMU has 0x%02x", c->dev, i,
                           got[i], want[i]);
        }
    }
    g_assert(memcmp(got, want, 256) == 0);
    for (int b = 0; b < 6; b++) {
        uint32_t type = 0;
        uint64_t size = qtest_pci_bar_size(qts, DEVFN, b, &type);
        if (b == 5 && c->bar_size[4]) {
            continue;       /* upper half of the 64-bit BAR4 */
        }
        g_assert_cmphex(size, ==, c->bar_size[b]);
        if (size) {
            g_assert_cmphex(type & 0xf, ==, c->bar_type[b]);
        }
    }
    qtest_quit(qts);
}

/* ---- a UDP peer for -netdev socket,udp= ---- */

typedef struct {
    int fd;
    int dev_port;             /* where the device listens */
} Peer;

static int free_udp_port(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t l = sizeof(a);

    g_assert(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    getsockname(fd, (struct sockaddr *)&a, &l);
    close(fd);
    return ntohs(a.sin_port);
}

static char *peer_open(Peer *p)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t l = sizeof(a);

    p->fd = socket(AF_INET, SOCK_DGRAM, 0);
    g_assert(bind(p->fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    getsockname(p->fd, (struct sockaddr *)&a, &l);
    p->dev_port = free_udp_port();
    return g_strdup_printf("-netdev socket,id=n0,udp=127.0.0.1:%d,localaddr=127.0.0.1:%d",
                           ntohs(a.sin_port), p->dev_port);
}

static void peer_send(Peer *p, const void *buf, size_t len)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                             .sin_port = htons(p->dev_port) };
    g_assert_cmpint(sendto(p->fd, buf, len, 0, (struct sockaddr *)&a, sizeof(a)), ==, len);
}

static ssize_t peer_recv(Peer *p, void *buf, size_t len, int timeout_ms)
{
    struct pollfd pfd = { .fd = p->fd, .events = POLLIN };

    if (poll(&pfd, 1, timeout_ms) <= 0) {
        return -1;
    }
    return recv(p->fd, buf, len, 0);
}

/* ---- traffic ---- */

typedef struct {
    const char *dev;          /* device string (without netdev/addr) */
    VdTransport t;
    uint16_t device_id;
    uint64_t want;            /* features to accept (masked by offered) */
    bool indirect;
    bool mmio;
} TrafficCase;

#define F(x) (1ull << (x))
#define BASE_F (F(VIRTIO_NET_F_MAC) | F(VIRTIO_NET_F_STATUS) | F(VIRTIO_F_VERSION_1))

static void make_frame(uint8_t *f, size_t len, uint8_t tag)
{
    static const uint8_t dst[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
    static const uint8_t src[6] = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x01 };

    memcpy(f, dst, 6);
    memcpy(f + 6, src, 6);
    f[12] = 0x88;
    f[13] = 0xb5;   /* local experimental ethertype */
    for (size_t i = 14; i < len; i++) {
        f[i] = (uint8_t)(i * 7 + tag);
    }
}

static unsigned hdr_len(VDev *d)
{
    return (d->features & (F(VIRTIO_NET_F_MRG_RXBUF) | F(VIRTIO_F_VERSION_1))) ? 12 : 10;
}

static void bring_up(VDev *d, QTestState *qts, const TrafficCase *c)
{
    if (c->mmio) {
        vd_mmio_init(d, qts, 0xfeb00000);
    } else {
        int devfn = vd_pci_find(qts, c->device_id);
        g_assert_cmpint(devfn, ==, DEVFN);
        vd_pci_init(d, qts, devfn, c->t);
    }
    g_assert(vd_negotiate(d, c->want));
    vd_setup_queues(d, 3, 0);
    vd_driver_ok(d);
    g_assert_cmphex(vd_get_status(d) & VIRTIO_CONFIG_S_NEEDS_RESET, ==, 0);
}

static void post_rx(VDev *d, QTestState *qts, unsigned count, uint32_t size, uint64_t *bufs, bool indirect)
{
    for (unsigned i = 0; i < count; i++) {
        VdBuf b = { qtest_guest_alloc(qts, size, 64), size, true };
        bufs[i] = b.addr;
        vd_add(d, 0, &b, 1, indirect);
    }
    vd_kick(d, 0);
}

/* Send one frame guest->peer; check it arrives intact. */
static void check_tx(VDev *d, QTestState *qts, Peer *p, size_t len, bool indirect, uint8_t tag)
{
    uint8_t frame[BUFSZ], got[BUFSZ];
    unsigned hl = hdr_len(d);
    uint64_t hdr = qtest_guest_alloc(qts, 16, 16), data = qtest_guest_alloc(qts, len, 64);
    VdBuf b[2] = { { hdr, hl, false }, { data, len, false } };
    uint16_t id, head;
    uint32_t ulen;
    ssize_t n;

    make_frame(frame, len, tag);
    qtest_memset(qts, hdr, 0, 16);
    qtest_memwrite(qts, data, frame, len);
    head = vd_add(d, 1, b, 2, indirect);
    vd_kick(d, 1);
    g_assert(vd_get_used(d, 1, &id, &ulen, 5000));
    g_assert_cmpuint(id, ==, head);
    n = peer_recv(p, got, sizeof(got), 5000);
    g_assert_cmpint(n, ==, len);
    g_assert(memcmp(got, frame, len) == 0);
}

/* Send one frame peer->guest; return the used length, check contents. */
static bool check_rx(VDev *d, QTestState *qts, Peer *p, uint64_t *bufs, size_t len, uint8_t tag,
                     int timeout_ms)
{
    uint8_t frame[BUFSZ], got[BUFSZ + 12];
    unsigned hl = hdr_len(d);
    uint16_t id;
    uint32_t ulen;
    unsigned slot;

    make_frame(frame, len, tag);
    peer_send(p, frame, len);
    if (!vd_get_used(d, 0, &id, &ulen, timeout_ms)) {
        return false;
    }
    g_assert_cmpuint(ulen, ==, len + hl);
    /* split: id is the descriptor head; this driver posts one descriptor
     * per buffer from slot 0 up; packed: ids count up too. */
    slot = id;
    qtest_memread(qts, bufs[slot], got, ulen);
    g_assert(memcmp(got + hl, frame, len) == 0);
    if (hl == 12 && (d->features & F(VIRTIO_NET_F_MRG_RXBUF))) {
        g_assert_cmpuint(got[10] | (got[11] << 8), ==, 1);   /* num_buffers */
    }
    return true;
}

static void test_traffic(gconstpointer data)
{
    const TrafficCase *c = data;
    QTestState *qts;
    Peer p;
    VDev d;
    uint64_t bufs[16];
    g_autofree char *nd = NULL;

    if (c->mmio && qtest_target_is_qemu()) {
        g_test_skip("QEMU's pc machine has no virtio-mmio transport (see docs/virtio.md)");
        return;
    }
    nd = peer_open(&p);
    qts = qtest_initf(QTEST_FLAG_RUNNING, "%s -device %s,netdev=n0%s", nd, c->dev,
                      c->mmio ? "" : ",addr=4");
    bring_up(&d, qts, c);
    post_rx(&d, qts, 8, BUFSZ, bufs, c->indirect);
    for (int i = 0; i < 3; i++) {
        check_tx(&d, qts, &p, 60 + 500 * i, c->indirect, i);
        g_assert(check_rx(&d, qts, &p, bufs, 60 + 400 * i, i, 5000));
    }
    /* link status reads up */
    g_assert_cmpuint(vd_config_readw(&d, 6) & VIRTIO_NET_S_LINK_UP, ==, VIRTIO_NET_S_LINK_UP);
    close(p.fd);
    qtest_quit(qts);
}

static const uint64_t all_f = BASE_F | F(VIRTIO_NET_F_MRG_RXBUF) | F(VIRTIO_NET_F_CTRL_VQ) |
                              F(VIRTIO_NET_F_CTRL_RX) | F(VIRTIO_NET_F_CTRL_VLAN);

static const TrafficCase traffic[] = {
    { "virtio-net-pci,disable-modern=on", VD_PCI_LEGACY, 0x1000, BASE_F, false, false },
    { "virtio-net-pci", VD_PCI_LEGACY, 0x1000, BASE_F | F(VIRTIO_NET_F_MRG_RXBUF), false, false },
    { "virtio-net-pci", VD_PCI_MODERN, 0x1000, BASE_F, false, false },
    { "virtio-net-pci-transitional", VD_PCI_MODERN, 0x1000, BASE_F, false, false },
    { "virtio-net-pci-non-transitional", VD_PCI_MODERN, 0x1041, all_f, false, false },
    { "virtio-net-pci,packed=on", VD_PCI_MODERN, 0x1000, BASE_F | F(VIRTIO_F_RING_PACKED), false, false },
    { "virtio-net-pci,packed=on", VD_PCI_MODERN, 0x1000,
      BASE_F | F(VIRTIO_F_RING_PACKED) | F(VIRTIO_RING_F_INDIRECT_DESC), true, false },
    { "virtio-net-pci", VD_PCI_MODERN, 0x1000, BASE_F | F(VIRTIO_RING_F_INDIRECT_DESC), true, false },
    { "virtio-net-pci", VD_PCI_MODERN, 0x1000, BASE_F | F(VIRTIO_RING_F_EVENT_IDX), false, false },
    { "virtio-net-device", VD_MMIO, 0, BASE_F & ~F(VIRTIO_F_VERSION_1), false, true },
    { "virtio-net-device,force-legacy=off", VD_MMIO, 0, BASE_F, false, true },
};
static const char *traffic_names[] = {
    "legacy", "transitional-legacy-mrg", "transitional-modern", "transitional-model",
    "non-transitional", "packed", "packed-indirect", "split-indirect", "event-idx",
    "mmio-v1", "mmio-v2",
};

/* Mergeable RX: a 1400-byte frame over 512-byte buffers uses 3 of them,
 * num_buffers (written before the buffers are returned) says so. */
static void test_mergeable(void)
{
    TrafficCase c = { "virtio-net-pci", VD_PCI_MODERN, 0x1000, BASE_F | F(VIRTIO_NET_F_MRG_RXBUF) };
    QTestState *qts;
    Peer p;
    VDev d;
    uint64_t bufs[8];
    uint8_t frame[1400], got[3 * 512];
    uint16_t id;
    uint32_t len, total = 0;
    g_autofree char *nd = peer_open(&p);

    qts = qtest_initf(QTEST_FLAG_RUNNING, "%s -device virtio-net-pci,netdev=n0,addr=4", nd);
    bring_up(&d, qts, &c);
    post_rx(&d, qts, 8, 512, bufs, false);
    make_frame(frame, sizeof(frame), 9);
    peer_send(&p, frame, sizeof(frame));
    for (int i = 0; i < 3; i++) {
        g_assert(vd_get_used(&d, 0, &id, &len, 5000));
        g_assert_cmpuint(id, ==, i);
        qtest_memread(qts, bufs[i], got + total, len);
        total += len;
    }
    g_assert_cmpuint(total, ==, sizeof(frame) + 12);
    g_assert_cmpuint(got[10] | (got[11] << 8), ==, 3);
    g_assert(memcmp(got + 12, frame, sizeof(frame)) == 0);
    close(p.fd);
    qtest_quit(qts);
}

/* ---- control queue ---- */

static uint8_t ctrl_cmd(VDev *d, QTestState *qts, uint8_t cls, uint8_t cmd, const void *data,
                        size_t len)
{
    uint64_t out = qtest_guest_alloc(qts, 2 + len, 16), in = qtest_guest_alloc(qts, 16, 16);
    uint8_t h[2] = { cls, cmd }, st;
    VdBuf b[3] = { { out, 2, false }, { out + 2, len, false }, { in, 1, true } };
    uint16_t id;
    uint32_t ulen;

    qtest_memwrite(qts, out, h, 2);
    if (len) {
        qtest_memwrite(qts, out + 2, data, len);
    }
    qtest_writeb(qts, in, 0xaa);
    if (len) {
        vd_add(d, 2, b, 3, false);
    } else {
        VdBuf b2[2] = { b[0], b[2] };
        vd_add(d, 2, b2, 2, false);
    }
    vd_kick(d, 2);
    g_assert(vd_get_used(d, 2, &id, &ulen, 5000));
    st = qtest_readb(qts, in);
    return st;
}

static void send_tagged(Peer *p, const uint8_t dst[6], int vid, uint8_t tag)
{
    uint8_t f[64] = { 0 };

    make_frame(f, sizeof(f), tag);
    memcpy(f, dst, 6);
    if (vid >= 0) {
        f[12] = 0x81;
        f[13] = 0x00;
        f[14] = vid >> 8;
        f[15] = vid & 0xff;
        f[16] = 0x88;
        f[17] = 0xb5;
    }
    peer_send(p, f, sizeof(f));
}

static bool rx_tag(VDev *d, QTestState *qts, uint64_t *bufs, uint8_t *tag_out, int timeout)
{
    uint16_t id;
    uint32_t len;
    uint8_t f[64 + 12];

    if (!vd_get_used(d, 0, &id, &len, timeout)) {
        return false;
    }
    qtest_memread(qts, bufs[id], f, MIN(len, sizeof(f)));
    *tag_out = (uint8_t)(f[12 + 20] - 140);
    return true;
}

static void test_ctrl(void)
{
    TrafficCase c = { "virtio-net-pci", VD_PCI_MODERN, 0x1000,
                      BASE_F | F(VIRTIO_NET_F_CTRL_VQ) | F(VIRTIO_NET_F_CTRL_RX) |
                      F(VIRTIO_NET_F_CTRL_RX_EXTRA) | F(VIRTIO_NET_F_CTRL_VLAN) |
                      F(VIRTIO_NET_F_CTRL_MAC_ADDR) | F(VIRTIO_NET_F_GUEST_ANNOUNCE) |
                      F(VIRTIO_NET_F_CTRL_GUEST_OFFLOADS) };
    static const uint8_t own[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
    static const uint8_t other[6] = { 0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc };
    static const uint8_t mcast[6] = { 0x01, 0x00, 0x5e, 0x00, 0x00, 0x01 };
    static const uint8_t newmac[6] = { 0x52, 0x54, 0x00, 0x99, 0x88, 0x77 };
    QTestState *qts;
    Peer p;
    VDev d;
    uint64_t bufs[32];
    uint8_t off = 0, on = 1, tag;
    uint16_t vid;
    uint8_t table[4 + 4 + 6];
    uint64_t offl = 0;
    g_autofree char *nd = peer_open(&p);

    qts = qtest_initf(QTEST_FLAG_RUNNING, "%s -device virtio-net-pci,netdev=n0,addr=4", nd);
    bring_up(&d, qts, &c);
    post_rx(&d, qts, 32, BUFSZ, bufs, false);

    /* promisc off: only our MAC (and broadcast) gets through */
    g_assert_cmpuint(ctrl_cmd(&d, qts, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, &off, 1), ==, VIRTIO_NET_OK);
    send_tagged(&p, other, -1, 1);
    send_tagged(&p, own, -1, 2);
    g_assert(rx_tag(&d, qts, bufs, &tag, 5000));
    g_assert_cmpuint(tag, ==, 2);
    /* multicast: dropped until allmulti or the MAC table lists it */
    send_tagged(&p, mcast, -1, 3);
    send_tagged(&p, own, -1, 4);
    g_assert(rx_tag(&d, qts, bufs, &tag, 5000));
    g_assert_cmpuint(tag, ==, 4);
    memset(table, 0, sizeof(table));
    table[4] = 1;
    memcpy(table + 8, mcast, 6);
    g_assert_cmpuint(ctrl_cmd(&d, qts, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, table, sizeof(table)), ==, VIRTIO_NET_OK);
    send_tagged(&p, mcast, -1, 5);
    g_assert(rx_tag(&d, qts, bufs, &tag, 5000));
    g_assert_cmpuint(tag, ==, 5);
    /* a malformed MAC table is refused */
    g_assert_cmpuint(ctrl_cmd(&d, qts, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, table, 6), ==, VIRTIO_NET_ERR);
    /* nobcast (RX_EXTRA) */
    g_assert_cmpuint(ctrl_cmd(&d, qts, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_NOBCAST, &on, 1), ==, VIRTIO_NET_OK);
    g_assert_cmpuint(ctrl_cmd(&d, qts, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_ALLUNI, &on, 1), ==, VIRTIO_NET_OK);
    send_tagged(&p, (const uint8_t[6]){ 0xff, 0xff, 0xff, 0xff, 0xff, 0xff }, -1, 6);
    send_tagged(&p, other, -1, 7);   /* alluni lets it in */
    g_assert(rx_tag(&d, qts, bufs, &tag, 5000));
    g_assert_cmpuint(tag, ==, 7);
    g_assert_cmpuint(ctrl_cmd(&d, qts, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_ALLUNI, &off, 1), ==, VIRTIO_NET_OK);

    /* VLAN filter: with CTRL_VLAN nothing tagged passes until added */
    send_tagged(&p, own, 5, 8);
    vid = 5;
    g_assert_cmpuint(ctrl_cmd(&d, qts, VIRTIO_NET_CTRL_VLAN, VIRTIO_NET_CTRL_VLAN_ADD, &vid, 2), ==, VIRTIO_NET_OK);
    send_tagged(&p, own, 6, 9);
    send_tagged(&p, own, 5, 10);
    g_assert(rx_tag(&d, qts, bufs, &tag, 5000));
    g_assert_cmpuint(tag, ==, 10);
    g_assert_cmpuint(ctrl_cmd(&d, qts, VIRTIO_NET_CTRL_VLAN, VIRTIO_NET_CTRL_VLAN_DEL, &vid, 2), ==, VIRTIO_NET_OK);
    vid = 5000;
    g_assert_cmpuint(ctrl_cmd(&d, qts, VIRTIO_NET_CTRL_VLAN, VIRTIO_NET_CTRL_VLAN_ADD, &vid, 2), ==, VIRTIO_NET_ERR);

    /* MAC address set shows in config space */
    g_assert_cmpuint(ctrl_cmd(&d, qts, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, newmac, 6), ==, VIRTIO_NET_OK);
    for (int i = 0; i < 6; i++) {
        g_assert_cmphex(vd_config_readb(&d, i), ==, newmac[i]);
    }
    /* announce ack without a pending announce; MQ without MQ negotiated */
    g_assert_cmpuint(ctrl_cmd(&d, qts, VIRTIO_NET_CTRL_ANNOUNCE, VIRTIO_NET_CTRL_ANNOUNCE_ACK, NULL, 0), ==, VIRTIO_NET_ERR);
    vid = 1;
    g_assert_cmpuint(ctrl_cmd(&d, qts, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, &vid, 2), ==, VIRTIO_NET_ERR);
    /* guest offloads: the peer has no vnet header, so nothing can be set */
    g_assert_cmpuint(ctrl_cmd(&d, qts, VIRTIO_NET_CTRL_GUEST_OFFLOADS, VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET, &offl, 8), ==, VIRTIO_NET_ERR);
    offl = F(VIRTIO_NET_F_GUEST_CSUM);
    g_assert_cmpuint(ctrl_cmd(&d, qts, VIRTIO_NET_CTRL_GUEST_OFFLOADS, VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET, &offl, 8), ==, VIRTIO_NET_ERR);
    /* an unknown class */
    g_assert_cmpuint(ctrl_cmd(&d, qts, 77, 0, NULL, 0), ==, VIRTIO_NET_ERR);
    close(p.fd);
    qtest_quit(qts);
}

/* ---- config: MTU, speed/duplex ---- */

static void test_config(void)
{
    TrafficCase c = { "", VD_PCI_MODERN, 0x1000, BASE_F | F(VIRTIO_NET_F_MTU) | F(VIRTIO_NET_F_SPEED_DUPLEX) };
    QTestState *qts = qtest_initf(0, "-netdev user,id=n0 -device virtio-net-pci,netdev=n0,addr=4,"
                                  "host_mtu=1400,speed=1000,duplex=full");
    VDev d;

    bring_up(&d, qts, &c);
    g_assert(d.features & F(VIRTIO_NET_F_MTU));
    g_assert(d.features & F(VIRTIO_NET_F_SPEED_DUPLEX));
    g_assert_cmpuint(vd_config_readw(&d, 10), ==, 1400);
    g_assert_cmpuint(vd_config_readl(&d, 12), ==, 1000);
    g_assert_cmpuint(vd_config_readb(&d, 16), ==, 1);
    /* beyond the config size (17 bytes) reads all-ones */
    g_assert_cmphex(vd_config_readb(&d, 20), ==, 0xff);
    qtest_quit(qts);
}

/* ---- option errors ---- */

static void test_errors(void)
{
    static const struct { const char *dev, *msg; } cases[] = {
        { "virtio-net-pci,rx_queue_size=100", "Invalid rx_queue_size (= 100), must be a power of 2 between 256 and 1024." },
        { "virtio-net-pci,rx_queue_size=2048", "Invalid rx_queue_size (= 2048)" },
        { "virtio-net-pci,speed=-5", "'speed' must be between 0 and INT_MAX" },
        { "virtio-net-pci,duplex=foo", "'duplex' must be 'half' or 'full'" },
        { "virtio-net-pci,disable-legacy=on,disable-modern=on", "device cannot work as neither modern nor legacy mode is enabled" },
    };
    /* Run the binary directly: these fail before any qtest connection. */
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *out = NULL, *err = NULL;
        g_autofree char *cmd = g_strdup_printf(
            "timeout 30 '%s' -machine pc -accel %s -nodefaults -display none -monitor none "
            "-netdev user,id=n0 -device %s,netdev=n0",
            qtest_binary(), qtest_target_is_qemu() ? "tcg -S" : "qtest -qtest stdio", cases[i].dev);
        g_auto(GStrv) argv = NULL;
        int status = 0;

        g_assert(g_shell_parse_argv(cmd, NULL, &argv, NULL));
        g_assert(g_spawn_sync(NULL, argv, NULL, G_SPAWN_SEARCH_PATH | G_SPAWN_STDIN_FROM_DEV_NULL,
                              NULL, NULL, &out, &err, &status, NULL));
        g_assert_false(g_spawn_check_wait_status(status, NULL));
        if (!strstr(err, cases[i].msg)) {
            g_test_message("stderr: %s", err);
        }
        g_assert_nonnull(strstr(err, cases[i].msg));
    }
}

/* ---- malformed drivers ---- */

typedef enum { BAD_LOOP, BAD_OOR, BAD_ZERO, BAD_AVAIL_JUMP, BAD_NESTED } BadKind;
static const char *bad_names[] = { "desc-loop", "out-of-ram", "zero-length", "avail-jump", "nested-indirect" };

static void test_malformed(gconstpointer data)
{
    BadKind k = GPOINTER_TO_INT(data);
    TrafficCase c = { "virtio-net-pci", VD_PCI_MODERN, 0x1000, BASE_F | F(VIRTIO_RING_F_INDIRECT_DESC) };
    QTestState *qts;
    Peer p;
    VDev d;
    uint64_t buf, bufs[8];
    g_autofree char *nd = peer_open(&p);
    uint8_t st = 0;

    qts = qtest_initf(QTEST_FLAG_RUNNING, "%s -device virtio-net-pci,netdev=n0,addr=4", nd);
    bring_up(&d, qts, &c);
    buf = qtest_guest_alloc(qts, 256, 64);
    switch (k) {
    case BAD_LOOP:
        vd_write_desc(&d, 1, 0, buf, 64, VRING_DESC_F_NEXT, 1);
        vd_write_desc(&d, 1, 1, buf, 64, VRING_DESC_F_NEXT, 0);
        vd_publish_avail(&d, 1, 0);
        break;
    case BAD_OOR:
        vd_write_desc(&d, 1, 0, 0x3f0000000ull, 64, 0, 0);
        vd_publish_avail(&d, 1, 0);
        break;
    case BAD_ZERO:
        vd_write_desc(&d, 1, 0, buf, 0, 0, 0);
        vd_publish_avail(&d, 1, 0);
        break;
    case BAD_AVAIL_JUMP:
        vd_write_desc(&d, 1, 0, buf, 64, 0, 0);
        vd_set_avail_idx(&d, 1, 1000);
        break;
    case BAD_NESTED: {
        uint64_t t = qtest_guest_alloc(qts, 32, 16);
        uint8_t e[16] = { 0 };
        uint64_t a = buf;
        uint32_t l = 16;
        uint16_t fl = VRING_DESC_F_INDIRECT;
        memcpy(e, &a, 8);
        memcpy(e + 8, &l, 4);
        memcpy(e + 12, &fl, 2);
        qtest_memwrite(qts, t, e, 16);
        vd_write_desc(&d, 1, 0, t, 16, VRING_DESC_F_INDIRECT, 0);
        vd_publish_avail(&d, 1, 0);
        break;
    }
    }
    vd_kick(&d, 1);
    for (int i = 0; i < 500; i++) {
        st = vd_get_status(&d);
        if ((st & VIRTIO_CONFIG_S_NEEDS_RESET) || !(st & VIRTIO_CONFIG_S_DRIVER_OK)) {
            break;
        }
        g_usleep(2000);
    }
    if (k == BAD_OOR && qtest_target_is_qemu()) {
        /* Documented difference (docs/virtio.md): QEMU maps a non-RAM
         * buffer through its bounce buffer and sends it; qnic refuses. */
        g_test_message("QEMU status after out-of-RAM descriptor: 0x%x", st);
    } else if ((k == BAD_AVAIL_JUMP || k == BAD_NESTED) && qtest_target_is_qemu()) {
        /* Documented difference (docs/virtio.md): QEMU 7.2 was not seen
         * to flag this within the test's second; qnic raises NEEDS_RESET. */
        g_test_message("QEMU status after %s: 0x%x", bad_names[k], st);
    } else {
        g_assert_cmphex(st & VIRTIO_CONFIG_S_NEEDS_RESET, ==, VIRTIO_CONFIG_S_NEEDS_RESET);
    }
    /* drain whatever QEMU sent for the bad buffer */
    while (peer_recv(&p, (uint8_t[2048]){ 0 }, 2048, 100) > 0) {
    }
    /* after a reset the device works again */
    bring_up(&d, qts, &c);
    post_rx(&d, qts, 8, BUFSZ, bufs, false);
    check_tx(&d, qts, &p, 100, false, 1);
    g_assert(check_rx(&d, qts, &p, bufs, 100, 2, 5000));
    close(p.fd);
    qtest_quit(qts);
}

/* An unoffered feature: qnic refuses FEATURES_OK; QEMU masks it and
 * accepts (docs/virtio.md). */
static void test_unoffered(void)
{
    extern bool vd_negotiate_raw(VDev *d, uint64_t f);
    QTestState *qts = qtest_initf(0, "-netdev user,id=n0 -device virtio-net-pci,netdev=n0,addr=4");
    VDev d;
    bool ok;

    vd_pci_init(&d, qts, DEVFN, VD_PCI_MODERN);
    ok = vd_negotiate_raw(&d, BASE_F | F(VIRTIO_NET_F_GUEST_CSUM));
    if (qtest_target_is_qemu()) {
        g_assert_true(ok);
    } else {
        g_assert_false(ok);
    }
    /* a read-only field written: ignored */
    qtest_writew(qts, d.common + 18, 77);
    g_assert_cmpuint(vd_num_queues(&d), ==, 3);
    g_assert(vd_negotiate(&d, BASE_F));
    qtest_quit(qts);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    for (size_t i = 0; i < G_N_ELEMENTS(layouts); i++) {
        g_autofree char *name = g_strdup_printf("/virtio-net/layout/%s", layouts[i].dev);
        g_test_add_data_func(name, &layouts[i], test_layout);
    }
    for (size_t i = 0; i < G_N_ELEMENTS(traffic); i++) {
        g_autofree char *name = g_strdup_printf("/virtio-net/traffic/%s", traffic_names[i]);
        g_test_add_data_func(name, &traffic[i], test_traffic);
    }
    g_test_add_func("/virtio-net/mergeable", test_mergeable);
    g_test_add_func("/virtio-net/ctrl", test_ctrl);
    g_test_add_func("/virtio-net/config", test_config);
    g_test_add_func("/virtio-net/errors", test_errors);
    g_test_add_func("/virtio-net/unoffered", test_unoffered);
    for (int k = 0; k < (int)G_N_ELEMENTS(bad_names); k++) {
        g_autofree char *name = g_strdup_printf("/virtio-net/malformed/%s", bad_names[k]);
        g_test_add_data_func(name, GINT_TO_POINTER(k), test_malformed);
    }
    return g_test_run();
}
