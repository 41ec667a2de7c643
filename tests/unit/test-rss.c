/*
 * Unit tests of RSS (net/rss.c): the Toeplitz hash against Microsoft's
 * published RSS verification suite (the key and the IPv4/IPv6 tuples with
 * and without ports of "Verifying the RSS Hash Calculation", also in the
 * 82599 datasheet 7.1.2.8.3), the classification of virtio 1.2 5.1.6.4.3
 * class by class (IPv4 with options and fragments, IPv6 with extension
 * headers, home address option and type 2 routing header, the _EX types,
 * the unclassified queue), the parser of the driver's RSS and hash
 * configuration with each kind of malformed command, and - where the
 * eBPF program is built and this process may load it - the steering
 * program run by the kernel (BPF_PROG_TEST_RUN) agreeing with net/rss.c on
 * every frame here.
 */
#include "qnic/rss.h"
#include "qnic/rss-ebpf.h"
#include "qnic/machine.h"
#include "qnic/device.h"
#include "qnic/net.h"
#include "../lib/test-backends.h"
#include <arpa/inet.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <linux/capability.h>

static const uint8_t ms_key[40] = {
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3,
    0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3,
    0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
};

typedef struct {
    const char *src, *dst;
    uint16_t sport, dport;
    uint32_t ip, ip_ports;
} Vector;

/* Microsoft's verification suite: source, destination, hash over the
 * addresses, hash over addresses and ports. */
static const Vector v4_vectors[] = {
    { "66.9.149.187", "161.142.100.80", 2794, 1766, 0x323e8fc2, 0x51ccc178 },
    { "199.92.111.2", "65.69.140.83", 14230, 4739, 0xd718262a, 0xc626b0ea },
    { "24.19.198.95", "12.22.207.184", 12898, 38024, 0xd2d0a5de, 0x5c2b394a },
    { "38.27.205.30", "209.142.163.6", 48228, 2217, 0x82989176, 0xafc7327f },
    { "153.39.163.191", "202.188.127.2", 44251, 1303, 0x5d1809c5, 0x10e828a2 },
};
static const Vector v6_vectors[] = {
    { "3ffe:2501:200:1fff::7", "3ffe:2501:200:3::1", 2794, 1766, 0x2cc18cd5, 0x40207d3d },
    { "3ffe:501:8::260:97ff:fe40:efab", "ff02::1", 14230, 4739, 0x0f0c461c, 0xdde51bbf },
    { "3ffe:1900:4545:3:200:f8ff:fe21:67cf", "fe80::200:f8ff:fe21:67cf", 44251, 38024,
      0x4b61e985, 0x02d1feef },
};

#define ALL_V4 (VIRTIO_NET_RSS_HASH_TYPE_IPv4 | VIRTIO_NET_RSS_HASH_TYPE_TCPv4 | \
                VIRTIO_NET_RSS_HASH_TYPE_UDPv4)
#define ALL_V6 (VIRTIO_NET_RSS_HASH_TYPE_IPv6 | VIRTIO_NET_RSS_HASH_TYPE_TCPv6 | \
                VIRTIO_NET_RSS_HASH_TYPE_UDPv6)
#define ALL_EX (VIRTIO_NET_RSS_HASH_TYPE_IP_EX | VIRTIO_NET_RSS_HASH_TYPE_TCP_EX | \
                VIRTIO_NET_RSS_HASH_TYPE_UDP_EX)

/* ---- frame builder ---- */

typedef struct {
    uint8_t b[600];
    size_t len;
} Frame;

static void put(Frame *f, const void *p, size_t n)
{
    g_assert_cmpuint(f->len + n, <=, sizeof(f->b));
    memcpy(f->b + f->len, p, n);
    f->len += n;
}

static void put16(Frame *f, uint16_t v)
{
    uint8_t b[2] = { v >> 8, v & 0xff };
    put(f, b, 2);
}

static void eth(Frame *f, uint16_t type, bool vlan)
{
    static const uint8_t macs[12] = { 0x52, 0x54, 0, 0x12, 0x34, 0x56, 2, 0, 0, 0x77, 0, 1 };

    f->len = 0;
    put(f, macs, 12);
    if (vlan) {
        put16(f, 0x8100);
        put16(f, 42);
    }
    put16(f, type);
}

/* L4 header: ports then zeros up to a full TCP (20) or UDP (8) header. */
static void l4(Frame *f, uint8_t proto, uint16_t sport, uint16_t dport, size_t keep)
{
    uint8_t h[20] = { sport >> 8, sport & 0xff, dport >> 8, dport & 0xff };
    size_t n = proto == 6 ? 20 : 8;
    put(f, h, MIN(n, keep));
}

static void ipv4(Frame *f, const Vector *v, uint8_t proto, unsigned opt_words, uint16_t frag)
{
    uint8_t ip[60] = { 0x45 + opt_words };

    ip[6] = frag >> 8;
    ip[7] = frag & 0xff;
    ip[8] = 64;
    ip[9] = proto;
    inet_pton(AF_INET, v->src, ip + 12);
    inet_pton(AF_INET, v->dst, ip + 16);
    for (unsigned i = 0; i < opt_words * 4; i++) {
        ip[20 + i] = 1;     /* NOP options */
    }
    put(f, ip, 20 + opt_words * 4);
}

static void ipv6(Frame *f, const char *src, const char *dst, uint8_t nh)
{
    uint8_t ip[40] = { 0x60 };

    ip[6] = nh;
    ip[7] = 64;
    inet_pton(AF_INET6, src, ip + 8);
    inet_pton(AF_INET6, dst, ip + 24);
    put(f, ip, 40);
}

/* A destination options header carrying a home address option (after a
 * Pad1 and a PadN, so the walk reads TLVs), 24 + 8 bytes. */
static void dstopts_hao(Frame *f, uint8_t nh, const char *home)
{
    uint8_t h[32] = { nh, 3 };

    h[2] = 0;                   /* Pad1 */
    h[3] = 1; h[4] = 1; h[5] = 0;   /* PadN of 1 */
    h[6] = 0xc9; h[7] = 16;     /* home address */
    inet_pton(AF_INET6, home, h + 8);
    /* PadN filling the last 8 bytes */
    h[24] = 1; h[25] = 6;
    put(f, h, 32);
}

static void rh2(Frame *f, uint8_t nh, const char *addr)
{
    uint8_t h[24] = { nh, 2, 2, 1 };
    inet_pton(AF_INET6, addr, h + 8);
    put(f, h, 24);
}

static void hop_by_hop(Frame *f, uint8_t nh)
{
    uint8_t h[8] = { nh, 0, 1, 4 };   /* PadN of 4 */
    put(f, h, 8);
}

static void fragment(Frame *f, uint8_t nh, uint16_t off_flags)
{
    uint8_t h[8] = { nh, 0, off_flags >> 8, off_flags & 0xff, 0, 0, 0, 7 };
    put(f, h, 8);
}

static QnicRssConfig config(uint32_t types)
{
    QnicRssConfig c = { .hash_types = types, .table_len = 8, .unclassified_queue = 5,
                        .key_len = sizeof(ms_key) };

    memcpy(c.key, ms_key, sizeof(ms_key));
    for (unsigned i = 0; i < 8; i++) {
        c.table[i] = 7 - i;
    }
    return c;
}

/* The hash of a tuple laid out as the classifier lays it out. */
static uint32_t tuple_hash(int af, const char *src, const char *dst, int sport, int dport)
{
    uint8_t in[36];
    size_t alen = af == AF_INET ? 4 : 16, n = 2 * alen;

    inet_pton(af, src, in);
    inet_pton(af, dst, in + alen);
    if (sport >= 0) {
        in[n++] = sport >> 8;
        in[n++] = sport & 0xff;
        in[n++] = dport >> 8;
        in[n++] = dport & 0xff;
    }
    return qnic_rss_toeplitz(ms_key, sizeof(ms_key), in, n);
}

/* ---- the eBPF program, when it can run here ---- */

static QnicRssEbpf *ebpf;
static unsigned ebpf_checked;

/* net/rss.c's answer for f under types, and the BPF program's, agree. */
static void check_bpf(const Frame *f, uint32_t types)
{
    QnicRssConfig c = config(types);
    g_autoptr(GError) err = NULL;
    uint32_t hash;
    unsigned report = qnic_rss_hash(&c, f->b, f->len, &hash);
    int q;

    if (!ebpf || f->len <= 14) {
        return;     /* BPF_PROG_TEST_RUN wants more than an Ethernet header */
    }
    g_assert_true(qnic_rss_ebpf_set_config(ebpf, &c, &err));
    q = qnic_rss_ebpf_test_run(ebpf, f->b, f->len, &err);
    g_assert_no_error(err);
    g_assert_cmpint(q, ==, (int)qnic_rss_queue(&c, report, hash));
    ebpf_checked++;
}

static void check_sw(const Frame *f, uint32_t types, unsigned want_report, uint32_t want_hash)
{
    QnicRssConfig c = config(types);
    uint32_t hash = 1;
    unsigned report = qnic_rss_hash(&c, f->b, f->len, &hash);

    g_assert_cmpuint(report, ==, want_report);
    g_assert_cmphex(hash, ==, want_report ? want_hash : 0);
    g_assert_cmpuint(qnic_rss_queue(&c, report, hash), ==,
                     want_report ? 7 - (want_hash & 7) : c.unclassified_queue);
}

static void check(const Frame *f, uint32_t types, unsigned want_report, uint32_t want_hash)
{
    check_sw(f, types, want_report, want_hash);
    check_bpf(f, types);
}

/* ---- tests ---- */

static void test_toeplitz_vectors(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(v4_vectors); i++) {
        const Vector *v = &v4_vectors[i];
        g_assert_cmphex(tuple_hash(AF_INET, v->src, v->dst, -1, 0), ==, v->ip);
        g_assert_cmphex(tuple_hash(AF_INET, v->src, v->dst, v->sport, v->dport), ==, v->ip_ports);
    }
    for (size_t i = 0; i < G_N_ELEMENTS(v6_vectors); i++) {
        const Vector *v = &v6_vectors[i];
        g_assert_cmphex(tuple_hash(AF_INET6, v->src, v->dst, -1, 0), ==, v->ip);
        g_assert_cmphex(tuple_hash(AF_INET6, v->src, v->dst, v->sport, v->dport), ==, v->ip_ports);
    }
}

static void test_ipv4_classes(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(v4_vectors); i++) {
        const Vector *v = &v4_vectors[i];
        Frame f;

        for (int vlan = 0; vlan < 2; vlan++) {
            /* TCP, UDP, with and without the matching type */
            eth(&f, 0x0800, vlan); ipv4(&f, v, 6, 0, 0); l4(&f, 6, v->sport, v->dport, 20);
            check(&f, ALL_V4, VIRTIO_NET_HASH_REPORT_TCPv4, v->ip_ports);
            check(&f, VIRTIO_NET_RSS_HASH_TYPE_IPv4, VIRTIO_NET_HASH_REPORT_IPv4, v->ip);
            check(&f, VIRTIO_NET_RSS_HASH_TYPE_UDPv4 | VIRTIO_NET_RSS_HASH_TYPE_IPv4,
                  VIRTIO_NET_HASH_REPORT_IPv4, v->ip);
            check(&f, VIRTIO_NET_RSS_HASH_TYPE_UDPv4, VIRTIO_NET_HASH_REPORT_NONE, 0);
            check(&f, ALL_V6 | ALL_EX, VIRTIO_NET_HASH_REPORT_NONE, 0);
            eth(&f, 0x0800, vlan); ipv4(&f, v, 17, 0, 0); l4(&f, 17, v->sport, v->dport, 8);
            check(&f, ALL_V4, VIRTIO_NET_HASH_REPORT_UDPv4, v->ip_ports);
            check(&f, VIRTIO_NET_RSS_HASH_TYPE_TCPv4 | VIRTIO_NET_RSS_HASH_TYPE_IPv4,
                  VIRTIO_NET_HASH_REPORT_IPv4, v->ip);
        }
        /* options: the ports are after them */
        for (unsigned words = 1; words <= 10; words += 9) {
            eth(&f, 0x0800, false); ipv4(&f, v, 6, words, 0); l4(&f, 6, v->sport, v->dport, 20);
            check(&f, ALL_V4, VIRTIO_NET_HASH_REPORT_TCPv4, v->ip_ports);
        }
        /* fragments: MF or an offset; DF alone is not one */
        eth(&f, 0x0800, false); ipv4(&f, v, 6, 0, 0x2000); l4(&f, 6, v->sport, v->dport, 20);
        check(&f, ALL_V4, VIRTIO_NET_HASH_REPORT_IPv4, v->ip);
        check(&f, VIRTIO_NET_RSS_HASH_TYPE_TCPv4, VIRTIO_NET_HASH_REPORT_NONE, 0);
        eth(&f, 0x0800, false); ipv4(&f, v, 17, 0, 0x00b9); l4(&f, 17, v->sport, v->dport, 8);
        check(&f, ALL_V4, VIRTIO_NET_HASH_REPORT_IPv4, v->ip);
        eth(&f, 0x0800, false); ipv4(&f, v, 6, 0, 0x4000); l4(&f, 6, v->sport, v->dport, 20);
        check(&f, ALL_V4, VIRTIO_NET_HASH_REPORT_TCPv4, v->ip_ports);
        /* a TCP header cut short is no TCP header; a UDP one of 8 is */
        eth(&f, 0x0800, false); ipv4(&f, v, 6, 0, 0); l4(&f, 6, v->sport, v->dport, 19);
        check(&f, ALL_V4, VIRTIO_NET_HASH_REPORT_IPv4, v->ip);
        eth(&f, 0x0800, false); ipv4(&f, v, 17, 0, 0); l4(&f, 17, v->sport, v->dport, 7);
        check(&f, ALL_V4, VIRTIO_NET_HASH_REPORT_IPv4, v->ip);
        /* other protocols: addresses only */
        eth(&f, 0x0800, false); ipv4(&f, v, 1, 0, 0); l4(&f, 6, 0x0800, 0, 8);
        check(&f, ALL_V4, VIRTIO_NET_HASH_REPORT_IPv4, v->ip);
    }
}

static void test_ipv4_malformed(void)
{
    const Vector *v = &v4_vectors[0];
    Frame f;

    /* IHL below 5, a header cut short, a wrong version: unclassified */
    eth(&f, 0x0800, false); ipv4(&f, v, 6, 0, 0); l4(&f, 6, 1, 2, 20);
    f.b[14] = 0x44;
    check(&f, ALL_V4, VIRTIO_NET_HASH_REPORT_NONE, 0);
    f.b[14] = 0x4f;             /* 60 bytes of header, 40 there */
    f.len = 14 + 40;
    check(&f, ALL_V4, VIRTIO_NET_HASH_REPORT_NONE, 0);
    f.b[14] = 0x65;
    check(&f, ALL_V4, VIRTIO_NET_HASH_REPORT_NONE, 0);
    eth(&f, 0x0800, false);
    check(&f, ALL_V4, VIRTIO_NET_HASH_REPORT_NONE, 0);
    /* ARP and a bare Ethernet header: the unclassified queue */
    eth(&f, 0x0806, false); put(&f, ms_key, 28);
    check(&f, ALL_V4 | ALL_V6 | ALL_EX, VIRTIO_NET_HASH_REPORT_NONE, 0);
    f.len = 10;
    check(&f, ALL_V4, VIRTIO_NET_HASH_REPORT_NONE, 0);
}

static void test_ipv6_classes(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(v6_vectors); i++) {
        const Vector *v = &v6_vectors[i];
        Frame f;

        eth(&f, 0x86dd, false); ipv6(&f, v->src, v->dst, 6); l4(&f, 6, v->sport, v->dport, 20);
        check(&f, ALL_V6, VIRTIO_NET_HASH_REPORT_TCPv6, v->ip_ports);
        check(&f, VIRTIO_NET_RSS_HASH_TYPE_IPv6, VIRTIO_NET_HASH_REPORT_IPv6, v->ip);
        /* no extension headers: the _EX types do not apply (5.1.6.4.3.3) */
        check(&f, ALL_EX, VIRTIO_NET_HASH_REPORT_NONE, 0);
        check(&f, ALL_EX | ALL_V6, VIRTIO_NET_HASH_REPORT_TCPv6, v->ip_ports);
        check(&f, ALL_V4, VIRTIO_NET_HASH_REPORT_NONE, 0);
        eth(&f, 0x86dd, true); ipv6(&f, v->src, v->dst, 17); l4(&f, 17, v->sport, v->dport, 8);
        check(&f, ALL_V6, VIRTIO_NET_HASH_REPORT_UDPv6, v->ip_ports);
        check(&f, VIRTIO_NET_RSS_HASH_TYPE_TCPv6 | VIRTIO_NET_RSS_HASH_TYPE_IPv6,
              VIRTIO_NET_HASH_REPORT_IPv6, v->ip);
        check(&f, VIRTIO_NET_RSS_HASH_TYPE_TCPv6, VIRTIO_NET_HASH_REPORT_NONE, 0);

        /* hop-by-hop options: skipped for the plain types; the _EX types
         * apply and hash the fixed header's addresses (no home address,
         * no type 2 routing header) */
        eth(&f, 0x86dd, false); ipv6(&f, v->src, v->dst, 0); hop_by_hop(&f, 6);
        l4(&f, 6, v->sport, v->dport, 20);
        check(&f, ALL_V6, VIRTIO_NET_HASH_REPORT_TCPv6, v->ip_ports);
        check(&f, ALL_EX | ALL_V6, VIRTIO_NET_HASH_REPORT_TCPv6_EX, v->ip_ports);
        check(&f, VIRTIO_NET_RSS_HASH_TYPE_UDP_EX | VIRTIO_NET_RSS_HASH_TYPE_IP_EX,
              VIRTIO_NET_HASH_REPORT_IPv6_EX, v->ip);
        check(&f, VIRTIO_NET_RSS_HASH_TYPE_UDP_EX | VIRTIO_NET_RSS_HASH_TYPE_TCPv6,
              VIRTIO_NET_HASH_REPORT_TCPv6, v->ip_ports);

        /* home address option and type 2 routing header: the _EX types
         * hash them in place of the fixed header's addresses */
        eth(&f, 0x86dd, false); ipv6(&f, "2001:db8::1", "2001:db8::2", 60);
        dstopts_hao(&f, 43, v->src); rh2(&f, 17, v->dst); l4(&f, 17, v->sport, v->dport, 8);
        check(&f, ALL_EX, VIRTIO_NET_HASH_REPORT_UDPv6_EX, v->ip_ports);
        check(&f, VIRTIO_NET_RSS_HASH_TYPE_IP_EX, VIRTIO_NET_HASH_REPORT_IPv6_EX, v->ip);
        check(&f, ALL_V6, VIRTIO_NET_HASH_REPORT_UDPv6,
              tuple_hash(AF_INET6, "2001:db8::1", "2001:db8::2", v->sport, v->dport));
        check(&f, VIRTIO_NET_RSS_HASH_TYPE_TCP_EX, VIRTIO_NET_HASH_REPORT_NONE, 0);

        /* only one of the two: the other address is the fixed header's */
        eth(&f, 0x86dd, false); ipv6(&f, v->src, "2001:db8::2", 43);
        rh2(&f, 6, v->dst); l4(&f, 6, v->sport, v->dport, 20);
        check(&f, ALL_EX, VIRTIO_NET_HASH_REPORT_TCPv6_EX, v->ip_ports);
        eth(&f, 0x86dd, false); ipv6(&f, "2001:db8::1", v->dst, 60);
        dstopts_hao(&f, 6, v->src); l4(&f, 6, v->sport, v->dport, 20);
        check(&f, ALL_EX, VIRTIO_NET_HASH_REPORT_TCPv6_EX, v->ip_ports);

        /* fragment header: M or an offset is a fragment (no ports); an
         * atomic fragment is not */
        eth(&f, 0x86dd, false); ipv6(&f, v->src, v->dst, 44); fragment(&f, 6, 0x0001);
        l4(&f, 6, v->sport, v->dport, 20);
        check(&f, ALL_V6, VIRTIO_NET_HASH_REPORT_IPv6, v->ip);
        check(&f, ALL_EX, VIRTIO_NET_HASH_REPORT_IPv6_EX, v->ip);
        eth(&f, 0x86dd, false); ipv6(&f, v->src, v->dst, 44); fragment(&f, 17, 0x0100);
        l4(&f, 17, v->sport, v->dport, 8);
        check(&f, ALL_V6, VIRTIO_NET_HASH_REPORT_IPv6, v->ip);
        eth(&f, 0x86dd, false); ipv6(&f, v->src, v->dst, 44); fragment(&f, 6, 0x0000);
        l4(&f, 6, v->sport, v->dport, 20);
        check(&f, ALL_V6, VIRTIO_NET_HASH_REPORT_TCPv6, v->ip_ports);
    }
}

static void test_ipv6_limits(void)
{
    const Vector *v = &v6_vectors[0];
    Frame f;

    /* 8 extension headers are walked, a 9th is not: no ports */
    for (int n = 8; n <= 9; n++) {
        eth(&f, 0x86dd, false); ipv6(&f, v->src, v->dst, 0);
        for (int i = 0; i < n; i++) {
            hop_by_hop(&f, i == n - 1 ? 6 : 0);
        }
        l4(&f, 6, v->sport, v->dport, 20);
        check(&f, ALL_V6, n == 8 ? VIRTIO_NET_HASH_REPORT_TCPv6 : VIRTIO_NET_HASH_REPORT_IPv6,
              n == 8 ? v->ip_ports : v->ip);
    }
    /* an extension header cut short, ESP, no next header: addresses */
    eth(&f, 0x86dd, false); ipv6(&f, v->src, v->dst, 60); put16(&f, 0x0601);
    check(&f, ALL_V6 | ALL_EX, VIRTIO_NET_HASH_REPORT_IPv6_EX, v->ip);
    eth(&f, 0x86dd, false); ipv6(&f, v->src, v->dst, 50); l4(&f, 6, v->sport, v->dport, 20);
    check(&f, ALL_V6 | ALL_EX, VIRTIO_NET_HASH_REPORT_IPv6, v->ip);
    eth(&f, 0x86dd, false); ipv6(&f, v->src, v->dst, 59);
    check(&f, ALL_V6, VIRTIO_NET_HASH_REPORT_IPv6, v->ip);
    /* headers past QNIC_RSS_PARSE_MAX are not looked at */
    eth(&f, 0x86dd, false); ipv6(&f, v->src, v->dst, 0);
    {
        uint8_t big[8 * 60] = { 6, 59 };   /* the rest: Pad1 options */
        put(&f, big, sizeof(big));
    }
    l4(&f, 6, v->sport, v->dport, 20);
    g_assert_cmpuint(f.len, >, QNIC_RSS_PARSE_MAX);
    check(&f, ALL_V6, VIRTIO_NET_HASH_REPORT_IPv6, v->ip);
    /* a truncated IPv6 header: unclassified (BPF_PROG_TEST_RUN refuses
     * to build such a frame) */
    eth(&f, 0x86dd, false); ipv6(&f, v->src, v->dst, 6);
    f.len -= 1;
    check_sw(&f, ALL_V6, VIRTIO_NET_HASH_REPORT_NONE, 0);
}

/* ---- the configuration parser ---- */

static size_t rss_cmd(uint8_t *b, uint32_t types, uint16_t mask, uint16_t unclassified,
                      const uint16_t *table, uint16_t max_tx, uint8_t key_len)
{
    size_t o = 0;

    qnic_st32(b, types); o += 4;
    qnic_st16(b + o, mask); o += 2;
    qnic_st16(b + o, unclassified); o += 2;
    for (unsigned i = 0; i <= mask; i++) {
        qnic_st16(b + o, table ? table[i] : i % max_tx);
        o += 2;
    }
    qnic_st16(b + o, max_tx); o += 2;
    b[o++] = key_len;
    for (unsigned i = 0; i < key_len; i++) {
        b[o++] = ms_key[i % sizeof(ms_key)];
    }
    return o;
}

static void test_parse_config(void)
{
    uint8_t b[8 + 2 * 256 + 3 + 255];
    QnicRssConfig c, untouched;
    const char *why = NULL;
    size_t n;

    memset(&untouched, 0xa5, sizeof(untouched));
    /* a good one; unknown type bits are dropped */
    n = rss_cmd(b, ALL_V4 | ALL_V6 | ALL_EX | (1u << 20), 127, 3, NULL, 4, 40);
    g_assert_true(qnic_rss_parse_config(b, n, true, 4, &c, &why));
    g_assert_cmphex(c.hash_types, ==, QNIC_RSS_HASH_TYPES);
    g_assert_cmpuint(c.table_len, ==, 128);
    g_assert_cmpuint(c.unclassified_queue, ==, 3);
    g_assert_cmpuint(c.max_tx_vq, ==, 4);
    g_assert_cmpuint(c.table[5], ==, 1);
    g_assert_cmpmem(c.key, 40, ms_key, 40);

#define REFUSE(expr_len, pairs)                                                   \
    do {                                                                          \
        c = untouched;                                                            \
        why = NULL;                                                               \
        g_assert_false(qnic_rss_parse_config(b, (expr_len), true, (pairs), &c, &why)); \
        g_assert_nonnull(why);                                                    \
        g_assert_cmpmem(&c, sizeof(c), &untouched, sizeof(untouched));           \
    } while (0)
    static const uint16_t t4[4] = { 0, 1, 4, 2 };
    static const struct {
        uint16_t mask, unclassified;
        const uint16_t *table;
        uint16_t max_tx;
        uint8_t key_len;
        unsigned pairs;
    } bad[] = {
        /* table length not a power of two (mask 2, 5), over 128 */
        { 2, 0, NULL, 4, 40, 4 }, { 5, 0, NULL, 4, 40, 4 }, { 255, 0, NULL, 4, 40, 4 },
        /* queue index out of range: a table entry past the pairs or
         * max_tx_vq, the unclassified queue, max_tx_vq beyond the pairs */
        { 3, 0, t4, 4, 40, 4 }, { 3, 0, t4, 3, 40, 8 }, { 3, 4, NULL, 4, 40, 4 },
        { 3, 0, NULL, 4, 40, 2 },
        /* key too long, key missing while hashing */
        { 3, 0, NULL, 4, 41, 4 }, { 3, 0, NULL, 4, 0, 4 },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        n = rss_cmd(b, ALL_V4, bad[i].mask, bad[i].unclassified, bad[i].table, bad[i].max_tx,
                    bad[i].key_len);
        REFUSE(n, bad[i].pairs);
    }
    /* max_tx_vq 0 */
    n = rss_cmd(b, ALL_V4, 3, 0, NULL, 4, 40);
    qnic_st16(b + 8 + 8, 0);
    REFUSE(n, 4);
    /* every truncation */
    n = rss_cmd(b, ALL_V4, 3, 0, NULL, 4, 40);
    for (size_t cut = 0; cut < n; cut++) {
        REFUSE(cut, 4);
    }
    /* hash types off and no key: RSS off, accepted */
    n = rss_cmd(b, 0, 0, 0, NULL, 1, 0);
    g_assert_true(qnic_rss_parse_config(b, n, true, 4, &c, &why));

    /* the hash configuration: types, reserved, key */
    memset(b, 0, sizeof(b));
    qnic_st32(b, ALL_V6);
    b[12] = 40;
    memcpy(b + 13, ms_key, 40);
    g_assert_true(qnic_rss_parse_config(b, 53, false, 4, &c, &why));
    g_assert_cmphex(c.hash_types, ==, ALL_V6);
    g_assert_cmpuint(c.key_len, ==, 40);
    g_assert_false(qnic_rss_parse_config(b, 52, false, 4, &c, &why));
    b[12] = 41;
    g_assert_false(qnic_rss_parse_config(b, sizeof(b), false, 4, &c, &why));
}

static void test_ebpf_ran(void)
{
    if (!ebpf) {
        g_test_skip(qnic_rss_ebpf_available() ? "cannot load BPF programs here (needs root or "
                                                "CAP_BPF)"
                                              : "qnic built without eBPF RSS (no clang or "
                                                "libbpf)");
        return;
    }
    g_assert_cmpuint(ebpf_checked, >, 150);
    g_test_message("the BPF program agreed with net/rss.c on %u frames", ebpf_checked);
}

/* ---- virtio-net's options: ebpf-rss-fds=, x-ebpf-rss= ---- */

static bool can_open_tap(void)
{
    int fd = open("/dev/net/tun", O_RDWR);

    if (fd < 0) {
        return false;
    }
    close(fd);
    return geteuid() == 0;
}

/* Create virtio-net-pci,netdev=ID,rss=on<opts> on a fresh machine whose
 * netdev is `netdev`; returns the error message, or NULL when it realized. */
static char *try_device(const char *netdev, const char *opts)
{
    static unsigned n;
    QnicMachineConfig cfg = { .ram_size = 16 * 1024 * 1024, .backends = test_backends() };
    g_autoptr(GError) err = NULL;
    g_autofree char *id = g_strdup_printf("rss%u", n++);
    g_autofree char *nd_str = g_strdup_printf("%s,id=%s", netdev, id);
    g_autofree char *dev_str = g_strdup_printf("virtio-net-pci,netdev=%s,rss=on,mq=on%s", id, opts);
    QnicMachine *m = qnic_machine_new(&cfg, &err);
    QnicNetdev *nd;
    QnicDevice *dev;
    char *msg = NULL;

    g_assert_no_error(err);
    nd = qnic_netdev_add_str(test_backends(), nd_str, &err);
    g_assert_no_error(err);
    dev = qnic_device_create_str(m, dev_str, &err);
    if (dev) {
        qnic_device_destroy(dev);
    } else {
        g_assert_nonnull(err);
        msg = g_strdup(err->message);
    }
    qnic_netdev_del(nd);
    qnic_machine_free(m);
    return msg;
}

static void assert_refused(const char *netdev, const char *opts, const char *want)
{
    g_autofree char *msg = try_device(netdev, opts);

    g_test_message("%s%s: %s", netdev, opts, msg ? msg : "(realized)");
    g_assert_nonnull(msg);
    g_assert_nonnull(strstr(msg, want));
}

static char *fds_opt(const int *fds)
{
    return g_strdup_printf(",ebpf-rss-fds=%d:%d:%d:%d", fds[0], fds[1], fds[2], fds[3]);
}

/* Descriptors as a privileged parent would hand them in: the program's
 * and its maps', duplicated (the object closes its own). */
static void parent_fds(int *fds)
{
    g_autoptr(GError) err = NULL;
    QnicRssEbpf *e = qnic_rss_ebpf_load(&err);

    g_assert_no_error(err);
    for (int i = 0; i < QNIC_RSS_EBPF_NFDS; i++) {
        fds[i] = dup(qnic_rss_ebpf_fd(e, i));
        g_assert_cmpint(fds[i], >=, 0);
    }
    qnic_rss_ebpf_free(e);
}

static void test_options(void)
{
    int fds[4], nul[4];
    g_autofree char *msg = NULL, *opt = NULL;

    /* forced eBPF on a netdev that cannot steer */
    assert_refused("user", ",x-ebpf-rss=on", "needs a netdev that takes a steering program");
    assert_refused("user", ",ebpf-rss-fds=3:4:5:6", "needs a netdev that takes a steering program");
    msg = try_device("user", "");
    g_assert_null(msg);             /* auto: software RSS */
    if (!can_open_tap()) {
        g_test_skip("the rest needs root and /dev/net/tun (a multiqueue tap)");
        return;
    }
    assert_refused("tap,queues=2,script=no,downscript=no", ",ebpf-rss-fds=1:2:3",
                   "expected 4 file descriptors (PROG:CONFIG:KEY:TABLE) but got 3");
    assert_refused("tap,queues=2,script=no,downscript=no", ",ebpf-rss-fds=a:b:c:d",
                   "'a' is not an open file descriptor");
    assert_refused("tap,queues=2,script=no,downscript=no", ",ebpf-rss-fds=1:2:3:999",
                   "'999' is not an open file descriptor");
    assert_refused("tap,queues=2,script=no,downscript=no", ",x-ebpf-rss=off,ebpf-rss-fds=1:2:3:4",
                   "x-ebpf-rss=off");
    for (int i = 0; i < 4; i++) {
        nul[i] = open("/dev/null", O_RDONLY);
    }
    opt = fds_opt(nul);
    assert_refused("tap,queues=2,script=no,downscript=no", opt,
                   qnic_rss_ebpf_available() ? "is not a BPF program"
                                             : "qnic was built without eBPF RSS");
    g_clear_pointer(&opt, g_free);
    if (!ebpf) {
        g_test_skip("the rest needs the eBPF program loadable here");
        return;
    }
    /* handed-in descriptors of the real program and maps: accepted; with
     * two maps swapped: refused */
    parent_fds(fds);
    opt = fds_opt(fds);
    g_clear_pointer(&msg, g_free);
    msg = try_device("tap,queues=2,script=no,downscript=no", opt);
    g_assert_null(msg);
    g_clear_pointer(&opt, g_free);
    parent_fds(fds);
    {
        int t = fds[1];
        fds[1] = fds[3];
        fds[3] = t;
    }
    opt = fds_opt(fds);
    assert_refused("tap,queues=2,script=no,downscript=no", opt, "is not the map this program uses");
    /* loading it ourselves, forced and not */
    g_clear_pointer(&msg, g_free);
    msg = try_device("tap,queues=2,script=no,downscript=no", ",x-ebpf-rss=on");
    g_assert_null(msg);
}

/* Without CAP_BPF and CAP_SYS_ADMIN the program does not load: forced eBPF
 * fails realize with the loader's error, auto falls back to software. */
static void test_load_failure(void)
{
    if (!ebpf || !can_open_tap()) {
        g_test_skip("needs root, /dev/net/tun and a loadable eBPF program");
        return;
    }
    if (g_test_subprocess()) {
        struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
        struct __user_cap_data_struct d[2];
        QnicMachineConfig cfg = { .ram_size = 16 * 1024 * 1024, .backends = test_backends() };
        g_autoptr(GError) err = NULL;
        QnicMachine *m = qnic_machine_new(&cfg, &err);
        QnicNetdev *nd = qnic_netdev_add_str(test_backends(),
                                             "tap,id=lf,queues=2,script=no,downscript=no", &err);
        QnicDevice *dev;

        g_assert_no_error(err);
        g_assert_true(nd && m);
        /* the tap is open: drop what loading a BPF program needs */
        g_assert_cmpint(syscall(SYS_capget, &h, d), ==, 0);
        for (int i = 0; i < 2; i++) {
            d[i].effective &= ~((i == 0 ? (1u << CAP_SYS_ADMIN) : 0) |
                                (i == 1 ? (1u << (CAP_BPF - 32)) | (1u << (CAP_PERFMON - 32)) : 0));
        }
        g_assert_cmpint(syscall(SYS_capset, &h, d), ==, 0);
        dev = qnic_device_create_str(m, "virtio-net-pci,netdev=lf,rss=on,mq=on,x-ebpf-rss=on", &err);
        g_assert_null(dev);
        printf("forced: %s\n", err->message);
        g_clear_error(&err);
        dev = qnic_device_create_str(m, "virtio-net-pci,netdev=lf,rss=on,mq=on", &err);
        g_assert_no_error(err);
        printf("auto: realized\n");
        return;
    }
    g_test_trap_subprocess(NULL, 0, 0);
    g_test_trap_assert_passed();
    g_test_trap_assert_stdout("forced: eBPF RSS: cannot load the steering program (needs CAP_BPF "
                              "or root)*\nauto: realized\n");
}

int main(int argc, char **argv)
{
    g_autoptr(GError) err = NULL;
    int ret;

    g_test_init(&argc, &argv, NULL);
    ebpf = qnic_rss_ebpf_load(&err);
    if (!ebpf) {
        g_test_message("eBPF RSS not checked: %s", err->message);
    }
    g_test_add_func("/rss/toeplitz-vectors", test_toeplitz_vectors);
    g_test_add_func("/rss/ipv4", test_ipv4_classes);
    g_test_add_func("/rss/ipv4-malformed", test_ipv4_malformed);
    g_test_add_func("/rss/ipv6", test_ipv6_classes);
    g_test_add_func("/rss/ipv6-limits", test_ipv6_limits);
    g_test_add_func("/rss/parse-config", test_parse_config);
    g_test_add_func("/rss/ebpf-agrees", test_ebpf_ran);
    g_test_add_func("/rss/options", test_options);
    g_test_add_func("/rss/load-failure", test_load_failure);
    ret = g_test_run();
    qnic_rss_ebpf_free(ebpf);
    return ret;
}
