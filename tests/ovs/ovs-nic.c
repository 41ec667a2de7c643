/*
 * A virtio-net NIC on an Open vSwitch port, driven over qtest: the program
 * the OVS test (tests/ovs/test-ovs.py) runs once per simulated VM. It
 * starts the target (qnic-vmm -accel qtest, or QEMU 7.2 when
 * $QTEST_QEMU_BINARY is set) with the -netdev given on its command line and
 * a virtio-net-pci on it, plays the guest driver, and speaks just enough
 * IPv4 to be a host on the virtual network: it answers ARP and ICMP echo,
 * counts UDP stream frames and acknowledges bulk data, all the time, while
 * it runs the commands the test writes on stdin, one per line, each
 * answered by one line on stdout ("ok ..." or "fail REASON"):
 *
 *   arp IP             resolve IP            -> ok arp MAC
 *   ping IP N          N echo requests       -> ok ping N median_us=U
 *   stream IP ID N [S] N paced UDP frames    -> ok stream sent=N
 *                      (IP packets of S bytes; default 108..555)
 *   bulk IP ID BYTES   reliable transfer     -> ok bulk bytes=B crc=C resent=R us=T
 *   stats ID           what arrived from ID  -> ok stats stream=N bulk=B crc=C
 *   link               virtio link status    -> ok link up|down
 *   pid                the target's pid      -> ok pid P
 *   quit
 *
 * The bulk transfer is go-back-N over UDP: DATA frames of a full 1500-byte
 * IP packet carry a sequence number, the receiver acknowledges the next
 * number it expects, the sender resends from the oldest unacknowledged
 * frame after a quiet spell. It rides out a switch restart. Both ends
 * compute the CRC-32 (zlib's) of the byte stream; the test compares them.
 *
 * usage: ovs-nic MAC IP "TARGET ARGS (-netdev ... id=n0 and any objects)"
 */
#include "libqtest.h"
#include "virtio-driver.h"
#include "qtest-net.h"

#include <linux/virtio_config.h>
#include <linux/virtio_net.h>
#include <arpa/inet.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>
#include <zlib.h>

#define F(x) (1ull << (x))
#define RING 256u                       /* TX */
#define RX_RING 1024u                   /* rx_queue_size: a whole stream fits */
#define BUFSZ 2048u
#define HDR 12u                         /* virtio_net_hdr_v1 (VERSION_1) */
#define ETH 14u
#define IPH 20u
#define UDPH 8u
#define PORT_STREAM 9002
#define PORT_DATA 9000
#define PORT_ACK 9001
#define MAGIC 0x514f5653u               /* "QOVS" */
#define CHUNK (1500u - IPH - UDPH - 16u) /* bulk payload: a 1500-byte IP packet */
#define WINDOW 64u
#define MAX_IDS 64

/* What arrived from senders under one sender-chosen id. */
typedef struct InFlow {
    uint32_t stream;                    /* stream frames counted */
    uint32_t expect, total, crc;        /* bulk: next seq, frames, CRC so far */
    uint64_t bytes;
} InFlow;

typedef struct Nic {
    QTestState *qts;
    VDev d;
    uint8_t mac[6];
    uint32_t ip;                        /* network order */
    uint64_t rxbuf[RX_RING], txbuf[RING];
    bool tx_busy[RING];
    struct { uint32_t ip; uint8_t mac[6]; } arp[8];
    unsigned narp;
    uint16_t ip_id;
    /* replies the running command waits for */
    bool got_arp, got_echo;
    uint16_t echo_seq;
    uint32_t acked;                     /* bulk: next seq the peer expects */
    uint16_t bulk_id;
    InFlow in[MAX_IDS];
} Nic;

static Nic nic;

/* Byte `off` of transfer `id`: not periodic at any frame-sized stride. */
static void bulk_fill(uint8_t *p, size_t n, uint64_t off, uint16_t id)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t o = off + i;
        p[i] = (uint8_t)((o * 2654435761u) >> 11) ^ (uint8_t)(o >> 17) ^ (uint8_t)id;
    }
}

/* ---- the rings ---- */
static void rx_post(unsigned id)
{
    VringBuf b = { .addr = nic.rxbuf[id], .len = BUFSZ, .write = true };
    vring_add_at(&nic.d.q[0].vr, id, &b, 1);
}

static void reap_tx(void)
{
    uint16_t id;
    uint32_t len;
    while (vring_get_used(&nic.d.q[1].vr, &id, &len)) {
        if (id < RING) {
            nic.tx_busy[id] = false;
        }
    }
}

/* Queue one frame (without the virtio header) and kick. False when the
 * device has not given a TX buffer back within wait_ms (its link is down,
 * say): the frame is not sent, the caller decides. */
static bool tx_frame(const uint8_t *f, size_t len, unsigned wait_ms)
{
    static unsigned next;
    uint8_t buf[BUFSZ];
    gint64 end = g_get_monotonic_time() + (gint64)wait_ms * 1000;
    unsigned slot;

    /* look at the used ring only when no buffer is known free: every
     * look is a qtest round trip */
    for (bool reaped = false;; reaped = true) {
        for (slot = 0; slot < RING && nic.tx_busy[(next + slot) % RING]; slot++) {
        }
        if (slot < RING || (reaped && g_get_monotonic_time() >= end)) {
            break;
        }
        if (reaped) {
            g_usleep(1000);
        }
        reap_tx();
    }
    if (slot == RING) {
        return false;
    }
    slot = (next + slot) % RING;
    next = slot + 1;
    memset(buf, 0, HDR);
    memcpy(buf + HDR, f, len);
    qtest_bufwrite(nic.qts, nic.txbuf[slot], buf, HDR + len);
    VringBuf b = { .addr = nic.txbuf[slot], .len = HDR + len, .write = false };
    nic.tx_busy[slot] = true;
    vring_add_at(&nic.d.q[1].vr, slot, &b, 1);
    vd_kick(&nic.d, 1);
    return true;
}

/* ---- frames ---- */
static const uint8_t *arp_lookup(uint32_t ip)
{
    for (unsigned i = 0; i < nic.narp; i++) {
        if (nic.arp[i].ip == ip) {
            return nic.arp[i].mac;
        }
    }
    return NULL;
}

static void arp_learn(uint32_t ip, const uint8_t *mac)
{
    unsigned i;
    for (i = 0; i < nic.narp && nic.arp[i].ip != ip; i++) {
    }
    if (i == G_N_ELEMENTS(nic.arp)) {
        i = 0;
    }
    nic.arp[i].ip = ip;
    memcpy(nic.arp[i].mac, mac, 6);
    nic.narp = MAX(nic.narp, i + 1);
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = v >> 8;
    p[1] = v;
}

static uint16_t get16(const uint8_t *p)
{
    return p[0] << 8 | p[1];
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3];
}

static void put32(uint8_t *p, uint32_t v)
{
    put16(p, v >> 16);
    put16(p + 2, v);
}

static void eth_hdr(uint8_t *f, const uint8_t *dst, uint16_t type)
{
    memcpy(f, dst, 6);
    memcpy(f + 6, nic.mac, 6);
    put16(f + 12, type);
}

/* Ethernet + IPv4 header to dst (its MAC resolved) for `plen` bytes of
 * protocol `proto`; returns the payload offset. */
static size_t ip_hdr(uint8_t *f, uint32_t dst, uint8_t proto, size_t plen)
{
    uint8_t *ip = f + ETH;

    eth_hdr(f, arp_lookup(dst), 0x0800);
    memset(ip, 0, IPH);
    ip[0] = 0x45;
    put16(ip + 2, IPH + plen);
    put16(ip + 4, nic.ip_id++);
    ip[6] = 0x40;                       /* DF: a tunnel must carry it whole */
    ip[8] = 64;
    ip[9] = proto;
    memcpy(ip + 12, &nic.ip, 4);
    memcpy(ip + 16, &dst, 4);
    put16(ip + 10, qtest_net_csum(ip, IPH));
    return ETH + IPH;
}

/* A UDP datagram: our header (magic, id, seq, total) then `data`. */
static bool send_udp(uint32_t dst, uint16_t port, uint16_t id, uint32_t seq, uint32_t total,
                     const uint8_t *data, size_t n, unsigned wait_ms)
{
    uint8_t f[1600];
    size_t off = ip_hdr(f, dst, 17, UDPH + 16 + n);
    uint8_t *u = f + off;

    put16(u, port);
    put16(u + 2, port);
    put16(u + 4, UDPH + 16 + n);
    put16(u + 6, 0);                    /* no checksum (IPv4 allows it) */
    put32(u + 8, MAGIC);
    put32(u + 12, id);
    put32(u + 16, seq);
    put32(u + 20, total);
    memcpy(u + 24, data, n);
    return tx_frame(f, off + UDPH + 16 + n, wait_ms);
}

static void send_arp(uint16_t op, const uint8_t *tha, uint32_t tpa)
{
    static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
    uint8_t f[60] = { 0 };
    uint8_t *a = f + ETH;

    eth_hdr(f, op == 1 ? bcast : tha, 0x0806);
    put16(a, 1);
    put16(a + 2, 0x0800);
    a[4] = 6;
    a[5] = 4;
    put16(a + 6, op);
    memcpy(a + 8, nic.mac, 6);
    memcpy(a + 14, &nic.ip, 4);
    memcpy(a + 18, op == 1 ? (const uint8_t[6]){ 0 } : tha, 6);
    memcpy(a + 24, &tpa, 4);
    tx_frame(f, sizeof(f), 100);
}

static void send_icmp(uint32_t dst, uint8_t type, uint16_t ident, uint16_t seq, const uint8_t *data,
                      size_t n)
{
    uint8_t f[1600];
    size_t off = ip_hdr(f, dst, 1, 8 + n);
    uint8_t *c = f + off;

    c[0] = type;
    c[1] = 0;
    put16(c + 2, 0);
    put16(c + 4, ident);
    put16(c + 6, seq);
    memcpy(c + 8, data, n);
    put16(c + 2, qtest_net_csum(c, 8 + n));
    tx_frame(f, off + 8 + n, 100);
}

/* ---- what arrives ---- */
static void rx_arp(const uint8_t *a, size_t n)
{
    uint32_t spa, tpa;

    if (n < 28 || get16(a) != 1 || get16(a + 2) != 0x0800) {
        return;
    }
    memcpy(&spa, a + 14, 4);
    memcpy(&tpa, a + 24, 4);
    if (tpa != nic.ip) {
        return;
    }
    arp_learn(spa, a + 8);
    if (get16(a + 6) == 1) {
        send_arp(2, a + 8, spa);
    } else if (get16(a + 6) == 2) {
        nic.got_arp = true;
    }
}

static void rx_icmp(uint32_t src, const uint8_t *c, size_t n)
{
    if (n < 8 || qtest_net_csum(c, n) != 0) {
        return;
    }
    if (c[0] == 8 && arp_lookup(src)) {
        send_icmp(src, 0, get16(c + 4), get16(c + 6), c + 8, n - 8);
    } else if (c[0] == 0 && get16(c + 6) == nic.echo_seq) {
        nic.got_echo = true;
    }
}

static void rx_data(uint32_t src, uint16_t id, uint32_t seq, uint32_t total, const uint8_t *p,
                    size_t n)
{
    InFlow *s = &nic.in[id];

    if (seq == 0 && s->expect >= s->total) {
        s->expect = 0;                  /* a new transfer under this id */
        s->total = total;
        s->crc = 0;
        s->bytes = 0;
    }
    if (seq == s->expect && seq < s->total) {
        s->crc = crc32(s->crc, p, n);
        s->bytes += n;
        s->expect++;
    }
    /* ack every 16th frame, the last one, and anything out of order */
    if (s->expect % 16 == 0 || s->expect == s->total || seq + 1 != s->expect) {
        send_udp(src, PORT_ACK, id, s->expect, s->total, p, 0, 0);
    }
}

static void rx_udp(uint32_t src, const uint8_t *u, size_t n)
{
    uint16_t port, id;

    if (n < UDPH + 16 || get16(u + 4) > n || get32(u + 8) != MAGIC) {
        return;
    }
    n = get16(u + 4);
    port = get16(u + 2);
    id = get32(u + 12) % MAX_IDS;
    if (port == PORT_STREAM) {
        nic.in[id].stream++;
    } else if (port == PORT_DATA) {
        rx_data(src, id, get32(u + 16), get32(u + 20), u + 24, n - 24);
    } else if (port == PORT_ACK && id == nic.bulk_id && get32(u + 16) > nic.acked) {
        nic.acked = get32(u + 16);
    }
}

static void rx_frame(const uint8_t *f, size_t n)
{
    const uint8_t *ip = f + ETH;
    uint32_t src, dst;
    size_t tot;

    if (n < ETH || (memcmp(f, nic.mac, 6) && !(f[0] & 1))) {
        return;
    }
    if (get16(f + 12) == 0x0806) {
        rx_arp(f + ETH, n - ETH);
        return;
    }
    if (get16(f + 12) != 0x0800 || n < ETH + IPH || ip[0] != 0x45 || qtest_net_csum(ip, IPH)) {
        return;
    }
    tot = get16(ip + 2);
    memcpy(&src, ip + 12, 4);
    memcpy(&dst, ip + 16, 4);
    if (dst != nic.ip || tot < IPH || ETH + tot > n) {
        return;
    }
    if (ip[9] == 1) {
        rx_icmp(src, ip + IPH, tot - IPH);
    } else if (ip[9] == 17) {
        rx_udp(src, ip + IPH, tot - IPH);
    }
}

/* Handle everything that arrived; true if anything did. */
static bool net_poll(void)
{
    static uint8_t buf[BUFSZ];
    VringDriver *rxq = &nic.d.q[0].vr;
    unsigned got = 0;
    uint16_t id;
    uint32_t len;

    while (got < 64 && vring_get_used(rxq, &id, &len)) {
        if (id < RX_RING && len > HDR && len <= BUFSZ) {
            qtest_bufread(nic.qts, nic.rxbuf[id], buf, len);
            rx_frame(buf + HDR, len - HDR);
        }
        if (id < RX_RING) {
            rx_post(id);
        }
        got++;
    }
    if (got) {
        vd_kick(&nic.d, 0);
    }
    reap_tx();
    return got > 0;
}

/* Poll until *flag or ms pass. */
static bool wait_flag(bool *flag, unsigned ms)
{
    gint64 end = g_get_monotonic_time() + (gint64)ms * 1000;
    while (!*flag && g_get_monotonic_time() < end) {
        if (!net_poll()) {
            g_usleep(200);
        }
    }
    return *flag;
}

/* ---- commands ---- */
static bool parse_ip(const char *s, uint32_t *ip)
{
    return s && inet_pton(AF_INET, s, ip) == 1;
}

static void cmd_arp(uint32_t ip)
{
    const uint8_t *m;

    for (int i = 0; i < 20 && !arp_lookup(ip); i++) {
        nic.got_arp = false;
        send_arp(1, NULL, ip);
        wait_flag(&nic.got_arp, 250);
    }
    m = arp_lookup(ip);
    if (!m) {
        printf("fail arp: no reply in 5 s\n");
        return;
    }
    printf("ok arp %02x:%02x:%02x:%02x:%02x:%02x\n", m[0], m[1], m[2], m[3], m[4], m[5]);
}

static int cmp_i64(const void *a, const void *b)
{
    gint64 x = *(const gint64 *)a, y = *(const gint64 *)b;
    return x < y ? -1 : x > y;
}

static void cmd_ping(uint32_t ip, unsigned n)
{
    g_autofree gint64 *rtt = g_new0(gint64, n ? n : 1);
    uint8_t data[56];

    if (!arp_lookup(ip) || !n) {
        printf("fail ping: no ARP entry or no count\n");
        return;
    }
    for (unsigned i = 0; i < n; i++) {
        gint64 t0 = g_get_monotonic_time();
        bulk_fill(data, sizeof(data), i * 56, 0x77);
        nic.got_echo = false;
        nic.echo_seq = i + 1;
        send_icmp(ip, 8, 0x4f56, i + 1, data, sizeof(data));
        if (!wait_flag(&nic.got_echo, 3000)) {
            printf("fail ping: no reply to echo %u\n", i + 1);
            return;
        }
        rtt[i] = g_get_monotonic_time() - t0;
    }
    qsort(rtt, n, sizeof(*rtt), cmp_i64);
    printf("ok ping %u median_us=%lld\n", n, (long long)rtt[n / 2]);
}

/* N frames in bursts of 16, a few ms apart: a stream the receiving
 * driver keeps up with, so the count it reports must be exact. Frames
 * are IP packets of `size` bytes, or of varying sizes with size 0. */
static void cmd_stream(uint32_t ip, unsigned id, unsigned n, unsigned size)
{
    uint8_t data[CHUNK];
    unsigned sent = 0;

    if (!arp_lookup(ip) || (size && (size < IPH + UDPH + 16 || size > 1500))) {
        printf("fail stream: no ARP entry, or a size outside 44..1500\n");
        return;
    }
    bulk_fill(data, sizeof(data), 0, id);
    while (sent < n) {
        for (unsigned k = 0; k < 16 && sent < n; k++) {
            size_t len = size ? size - IPH - UDPH - 16 : 64 + sent % 448;
            if (!send_udp(ip, PORT_STREAM, id, sent, n, data, len, 2000)) {
                printf("fail stream: TX ring stuck after %u frames\n", sent);
                return;
            }
            sent++;
        }
        gint64 end = g_get_monotonic_time() + 4000;
        while (g_get_monotonic_time() < end) {
            if (!net_poll()) {
                g_usleep(500);
            }
        }
    }
    printf("ok stream sent=%u\n", sent);
}

static void cmd_bulk(uint32_t ip, unsigned id, uint64_t bytes)
{
    uint32_t total = (bytes + CHUNK - 1) / CHUNK, next = 0, resent = 0, crc = 0, crc_at = 0;
    gint64 t0 = g_get_monotonic_time(), progress = t0;
    uint8_t data[CHUNK];

    if (!arp_lookup(ip) || !total) {
        printf("fail bulk: no ARP entry or no bytes\n");
        return;
    }
    nic.bulk_id = id % MAX_IDS;
    nic.acked = 0;
    while (nic.acked < total) {
        uint32_t base = nic.acked;
        if (next < base) {
            next = base;
        }
        while (next < total && next < base + WINDOW) {
            size_t n = MIN((uint64_t)CHUNK, bytes - (uint64_t)next * CHUNK);
            bulk_fill(data, n, (uint64_t)next * CHUNK, nic.bulk_id);
            if (next == crc_at) {
                crc = crc32(crc, data, n);
                crc_at++;
            }
            if (!send_udp(ip, PORT_DATA, nic.bulk_id, next, total, data, n, 5)) {
                break;
            }
            next++;
        }
        if (!net_poll()) {
            g_usleep(200);
        }
        gint64 now = g_get_monotonic_time();
        if (nic.acked != base) {
            progress = now;
        } else if (now - progress > 300000) {
            resent += next - base;      /* go back to the oldest unacked */
            next = base;
            progress = now;
            if (now - t0 > 120 * G_USEC_PER_SEC) {
                printf("fail bulk: stuck at frame %u of %u\n", base, total);
                return;
            }
        }
    }
    printf("ok bulk bytes=%llu crc=%08x frames=%u resent=%u us=%lld\n", (unsigned long long)bytes, crc,
           total, resent, (long long)(g_get_monotonic_time() - t0));
}

static void run_command(char *line)
{
    char **w = g_strsplit_set(g_strstrip(line), " ", 0);
    unsigned n = g_strv_length(w);
    uint32_t ip = 0;

    if (n == 2 && !strcmp(w[0], "arp") && parse_ip(w[1], &ip)) {
        cmd_arp(ip);
    } else if (n == 3 && !strcmp(w[0], "ping") && parse_ip(w[1], &ip)) {
        cmd_ping(ip, atoi(w[2]));
    } else if ((n == 4 || n == 5) && !strcmp(w[0], "stream") && parse_ip(w[1], &ip)) {
        cmd_stream(ip, atoi(w[2]) % MAX_IDS, atoi(w[3]), n == 5 ? atoi(w[4]) : 0);
    } else if (n == 4 && !strcmp(w[0], "bulk") && parse_ip(w[1], &ip)) {
        cmd_bulk(ip, atoi(w[2]), g_ascii_strtoull(w[3], NULL, 0));
    } else if (n == 2 && !strcmp(w[0], "stats")) {
        InFlow *s = &nic.in[atoi(w[1]) % MAX_IDS];
        printf("ok stats stream=%u bulk=%llu crc=%08x\n", s->stream, (unsigned long long)s->bytes,
               s->crc);
    } else if (n == 1 && !strcmp(w[0], "link")) {
        printf("ok link %s\n", vd_config_readw(&nic.d, 6) & VIRTIO_NET_S_LINK_UP ? "up" : "down");
    } else if (n == 1 && !strcmp(w[0], "pid")) {
        printf("ok pid %d\n", (int)qtest_pid(nic.qts));
    } else {
        printf("fail unknown command '%s'\n", line);
    }
    fflush(stdout);
    g_strfreev(w);
}

static void nic_start(const char *target_args)
{
    nic.qts = qtest_initf(QTEST_FLAG_RUNNING, "%s -device virtio-net-pci,netdev=n0,addr=4,rx_queue_size=%u,"
                          "mac=%02x:%02x:%02x:%02x:%02x:%02x", target_args, RX_RING, nic.mac[0], nic.mac[1],
                          nic.mac[2], nic.mac[3], nic.mac[4], nic.mac[5]);
    vd_pci_init(&nic.d, nic.qts, vd_pci_find(nic.qts, 0x1000), VD_PCI_MODERN);
    if (!vd_negotiate(&nic.d, F(VIRTIO_F_VERSION_1) | F(VIRTIO_NET_F_MAC) | F(VIRTIO_NET_F_STATUS))) {
        g_error("virtio-net refused FEATURES_OK");
    }
    vd_setup_queues(&nic.d, 2, 0);     /* the device's sizes: RX_RING and RING */
    if (nic.d.q[0].vr.num != RX_RING || nic.d.q[1].vr.num != RING) {
        g_error("virtio-net queue sizes %u/%u, expected %u/%u", nic.d.q[0].vr.num, nic.d.q[1].vr.num,
                RX_RING, RING);
    }
    vd_driver_ok(&nic.d);
    for (unsigned i = 0; i < RX_RING; i++) {
        nic.rxbuf[i] = qtest_guest_alloc(nic.qts, BUFSZ, 64);
        rx_post(i);
    }
    for (unsigned i = 0; i < RING; i++) {
        nic.txbuf[i] = qtest_guest_alloc(nic.qts, BUFSZ, 64);
    }
    vd_kick(&nic.d, 0);
}

/* Complete lines from stdin without blocking (stdio would buffer lines
 * poll cannot see); false once stdin is closed. */
static bool read_commands(void)
{
    static char buf[1024];
    static size_t have;
    struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };
    char *nl;
    ssize_t r;

    if (poll(&p, 1, 0) <= 0) {
        return true;
    }
    r = read(STDIN_FILENO, buf + have, sizeof(buf) - 1 - have);
    if (r <= 0) {
        return false;
    }
    have += r;
    buf[have] = 0;
    while ((nl = strchr(buf, '\n'))) {
        *nl = 0;
        if (!strcmp(g_strstrip(buf), "quit")) {
            return false;
        }
        run_command(buf);
        have -= nl + 1 - buf;
        memmove(buf, nl + 1, have + 1);
    }
    if (have == sizeof(buf) - 1) {
        have = 0;                       /* a line too long: drop it */
    }
    return true;
}

int main(int argc, char **argv)
{
    unsigned idle = 0;

    if (argc != 4 || sscanf(argv[1], "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &nic.mac[0], &nic.mac[1],
                            &nic.mac[2], &nic.mac[3], &nic.mac[4], &nic.mac[5]) != 6 ||
        !parse_ip(argv[2], &nic.ip)) {
        fprintf(stderr, "usage: %s MAC IP 'TARGET ARGS with -netdev ...,id=n0'\n", argv[0]);
        return 2;
    }
    prctl(PR_SET_PDEATHSIG, SIGKILL);  /* go with the test, whatever happens to it */
    nic_start(argv[3]);
    printf("ok ready\n");
    fflush(stdout);
    while (read_commands()) {
        /* poll often while frames come, back off to 5 ms when quiet */
        idle = net_poll() ? 0 : MIN(idle + 1, 50u);
        if (idle) {
            g_usleep(idle * 100);
        }
    }
    qtest_quit(nic.qts);
    return 0;
}
