/*
 * Unit tests of the transmit offload helpers (hw/net/net-tx-pkt.c) that
 * e1000 and rtl8139 use: header parsing, checksums against known values and
 * an independent verifier, TCP/UDP segmentation over IPv4 and IPv6 with and
 * without VLAN insertion, tag insertion/stripping, and robustness against
 * truncated and random frames.
 */
#include "hw/net/net-tx-pkt.h"

#include <linux/if_ether.h>
#include <netinet/in.h>

/* Independent checksum verifier: a plain 32-bit sum of 16-bit words. */
static uint32_t ref_sum(const uint8_t *b, size_t len)
{
    uint32_t s = 0;
    for (size_t i = 0; i < len; i++) {
        s += (i & 1) ? b[i] : (uint32_t)b[i] << 8;
    }
    return s;
}

static uint16_t ref_fold(uint32_t s)
{
    while (s >> 16) {
        s = (s & 0xffff) + (s >> 16);
    }
    return (uint16_t)s;
}

/* True if the IPv4 header checksum of the frame's IP header verifies. */
static bool ip4_ok(const uint8_t *f, size_t l3)
{
    size_t ihl = (f[l3] & 0xf) * 4;
    return ref_fold(ref_sum(f + l3, ihl)) == 0xffff;
}

/* True if the TCP/UDP checksum verifies over the whole rest of the frame. */
static bool l4_ok(const uint8_t *f, size_t len, size_t l3, bool v6, uint8_t proto)
{
    size_t l4 = l3 + (v6 ? 40 : (f[l3] & 0xf) * 4);
    uint32_t l4len = len - l4;
    uint32_t s = v6 ? ref_sum(f + l3 + 8, 32) : ref_sum(f + l3 + 12, 8);
    s += proto + (l4len >> 16) + (l4len & 0xffff);
    s += ref_sum(f + l4, l4len);
    return ref_fold(s) == 0xffff;
}

static const uint8_t dst_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
static const uint8_t src_mac[6] = { 0x52, 0x54, 0x00, 0xab, 0xcd, 0xef };

/* Build eth [+vlan] + IPv4/IPv6 + TCP/UDP + payload of n bytes. Returns len. */
static size_t build(uint8_t *f, bool vlan, bool v6, uint8_t proto, size_t n)
{
    size_t o = 0;
    memcpy(f, dst_mac, 6);
    memcpy(f + 6, src_mac, 6);
    o = 12;
    if (vlan) {
        qnic_st16be(f + o, ETH_P_8021Q);
        qnic_st16be(f + o + 2, 0x2005);
        o += 4;
    }
    qnic_st16be(f + o, v6 ? ETH_P_IPV6 : ETH_P_IP);
    o += 2;
    size_t l4hl = proto == IPPROTO_TCP ? 32 : 8;   /* TCP with 12 option bytes */
    if (v6) {
        memset(f + o, 0, 40);
        f[o] = 0x60;
        qnic_st16be(f + o + 4, 0);   /* TSO drivers leave it 0 */
        f[o + 6] = proto;
        f[o + 7] = 64;
        for (int i = 0; i < 16; i++) {
            f[o + 8 + i] = 0x20 + i;
            f[o + 24 + i] = 0x40 + i;
        }
        o += 40;
    } else {
        memset(f + o, 0, 20);
        f[o] = 0x45;
        qnic_st16be(f + o + 2, 0);   /* TSO drivers leave it 0 */
        qnic_st16be(f + o + 4, 0x1234);
        qnic_st16be(f + o + 6, 0x4000);
        f[o + 8] = 64;
        f[o + 9] = proto;
        uint8_t a[8] = { 10, 0, 2, 15, 10, 0, 2, 2 };
        memcpy(f + o + 12, a, 8);
        o += 20;
    }
    memset(f + o, 0, l4hl);
    qnic_st16be(f + o, 40000);
    qnic_st16be(f + o + 2, 80);
    if (proto == IPPROTO_TCP) {
        qnic_st32be(f + o + 4, 0xfffff000);   /* wraps during segmentation */
        qnic_st32be(f + o + 8, 0x01020304);
        f[o + 12] = (l4hl / 4) << 4;
        f[o + 13] = 0x80 | 0x10 | 0x08 | 0x01;   /* CWR ACK PSH FIN */
        qnic_st16be(f + o + 14, 8192);
        memset(f + o + 20, 1, l4hl - 20);        /* NOP options */
    }
    o += l4hl;
    for (size_t i = 0; i < n; i++) {
        f[o + i] = (uint8_t)(i * 7 + 3);
    }
    return o + n;
}

static void test_parse(void)
{
    uint8_t f[2048];
    QnicPktInfo in;
    size_t len = build(f, true, false, IPPROTO_TCP, 100);
    g_assert_true(qnic_pkt_parse(f, len, &in));
    g_assert_cmpint(in.vlan_tags, ==, 1);
    g_assert_cmphex(in.vlan_tci, ==, 0x2005);
    g_assert_cmpuint(in.l2_len, ==, 18);
    g_assert_true(in.is_ipv4);
    g_assert_cmpuint(in.l3_hdr_len, ==, 20);
    g_assert_cmpuint(in.l4_proto, ==, IPPROTO_TCP);
    g_assert_cmpuint(in.l4_off, ==, 38);
    g_assert_cmpuint(in.l4_hdr_len, ==, 32);
    g_assert_cmpuint(in.payload_off, ==, 70);

    len = build(f, false, true, IPPROTO_UDP, 10);
    g_assert_true(qnic_pkt_parse(f, len, &in));
    g_assert_true(in.is_ipv6);
    g_assert_cmpuint(in.l4_proto, ==, IPPROTO_UDP);
    g_assert_cmpuint(in.l4_hdr_len, ==, 8);
    g_assert_cmpuint(in.payload_off, ==, 14 + 40 + 8);

    /* IPv6 with a hop-by-hop header (8 bytes) before TCP. */
    len = build(f, false, true, IPPROTO_TCP, 10);
    memmove(f + 54 + 8, f + 54, len - 54);
    f[20] = IPPROTO_HOPOPTS;
    memset(f + 54, 0, 8);
    f[54] = IPPROTO_TCP;
    len += 8;
    g_assert_true(qnic_pkt_parse(f, len, &in));
    g_assert_true(in.is_ipv6);
    g_assert_cmpuint(in.l3_hdr_len, ==, 48);
    g_assert_cmpuint(in.l4_proto, ==, IPPROTO_TCP);
    g_assert_cmpuint(in.l4_hdr_len, ==, 32);

    /* IPv4 fragment: no L4 parsing. */
    len = build(f, false, false, IPPROTO_TCP, 10);
    qnic_st16be(f + 14 + 6, 0x2000);
    g_assert_true(qnic_pkt_parse(f, len, &in));
    g_assert_true(in.is_fragment);
    g_assert_cmpuint(in.l4_hdr_len, ==, 0);

    /* Too short / bad IHL. */
    g_assert_false(qnic_pkt_parse(f, 13, &in));
    len = build(f, false, false, IPPROTO_TCP, 10);
    f[14] = 0x44;
    g_assert_true(qnic_pkt_parse(f, len, &in));
    g_assert_false(in.is_ipv4);
}

static void test_csum_known(void)
{
    /* The IPv4 header example of RFC 1071-style textbooks: checksum 0xb861. */
    uint8_t ip[20] = { 0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
                       0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7 };
    g_assert_cmphex(qnic_csum_fold(qnic_csum_add(0, ip, 20)), ==, 0xb861);
    /* Odd length pads with a zero byte; chained sums equal one sum. */
    uint8_t odd[3] = { 0x12, 0x34, 0x56 };
    g_assert_cmphex(qnic_csum_fold(qnic_csum_add(0, odd, 3)), ==, (uint16_t)~(0x1234 + 0x5600));
    g_assert_cmphex(qnic_csum_add(qnic_csum_add(0, ip, 10), ip + 10, 10), ==,
                    qnic_csum_add(0, ip, 20));
}

static void test_fill_csum(void)
{
    uint8_t f[2048];
    for (int v6 = 0; v6 < 2; v6++) {
        for (int tcp = 0; tcp < 2; tcp++) {
            uint8_t proto = tcp ? IPPROTO_TCP : IPPROTO_UDP;
            size_t len = build(f, v6, v6, proto, 333);
            size_t l3 = v6 ? 18 : 14;
            if (!v6) {
                qnic_st16be(f + l3 + 2, len - l3);
            } else {
                qnic_st16be(f + l3 + 4, len - l3 - 40);
            }
            if (!tcp) {
                qnic_st16be(f + l3 + (v6 ? 40 : 20) + 4, len - l3 - (v6 ? 40 : 20));
            }
            g_assert_true(qnic_pkt_fill_csum(f, len, QNIC_PKT_CSUM_L4 |
                                             (v6 ? 0 : QNIC_PKT_CSUM_IP)));
            if (!v6) {
                g_assert_true(ip4_ok(f, l3));
            }
            g_assert_true(l4_ok(f, len, l3, v6, proto));
            /* Ethernet padding after the IP datagram is excluded. */
            memset(f + len, 0xee, 20);
            g_assert_true(qnic_pkt_fill_csum(f, len + 20, QNIC_PKT_CSUM_L4));
            g_assert_true(l4_ok(f, len, l3, v6, proto));
        }
    }
    /* Receive-side verification agrees, and catches a flipped byte. */
    size_t vlen = build(f, false, false, IPPROTO_UDP, 100);
    qnic_st16be(f + 16, vlen - 14);
    qnic_st16be(f + 34 + 4, vlen - 34);
    g_assert_true(qnic_pkt_fill_csum(f, vlen, QNIC_PKT_CSUM_IP | QNIC_PKT_CSUM_L4));
    QnicPktCsumCheck ck;
    qnic_pkt_check_csum(f, vlen, &ck);
    g_assert_true(ck.ip_checked && ck.ip_ok && ck.l4_checked && ck.l4_ok);
    f[vlen - 1] ^= 0x40;
    f[14 + 8] ^= 1;   /* TTL */
    qnic_pkt_check_csum(f, vlen, &ck);
    g_assert_true(ck.ip_checked && !ck.ip_ok && ck.l4_checked && !ck.l4_ok);
    qnic_st16be(f + 34 + 6, 0);   /* UDP without checksum */
    qnic_pkt_check_csum(f, vlen, &ck);
    g_assert_true(ck.l4_ok);
    /* IP checksum asked of an IPv6 frame: reported. */
    size_t len = build(f, false, true, IPPROTO_TCP, 10);
    g_assert_false(qnic_pkt_fill_csum(f, len, QNIC_PKT_CSUM_IP));
    /* Non-IP frame. */
    memset(f, 0, 64);
    g_assert_false(qnic_pkt_fill_csum(f, 64, QNIC_PKT_CSUM_L4));
}

static void test_csum_at(void)
{
    uint8_t f[2048];
    size_t len = build(f, false, false, IPPROTO_TCP, 501);
    qnic_st16be(f + 16, len - 14);
    /* e1000 style: IP checksum over [14, 33] at 24, TCP over [34, end] at 50
     * with the pseudo-header sum preloaded by the driver. */
    g_assert_true(qnic_pkt_csum_at(f, len, 14, 33, 24));
    g_assert_true(ip4_ok(f, 14));
    uint32_t l4len = len - 34;
    uint32_t ps = ref_sum(f + 26, 8) + IPPROTO_TCP + l4len;
    qnic_st16be(f + 50, ref_fold(ps));
    g_assert_true(qnic_pkt_csum_at(f, len, 34, 0, 50));
    g_assert_true(l4_ok(f, len, 14, false, IPPROTO_TCP));
    /* Out of range. */
    g_assert_false(qnic_pkt_csum_at(f, len, len, 0, 10));
    g_assert_false(qnic_pkt_csum_at(f, len, 14, 0, len - 1));
    g_assert_false(qnic_pkt_csum_at(f, len, 30, 20, 30));
}

static void test_vlan(void)
{
    uint8_t f[128], orig[128];
    size_t len = build(f, false, false, IPPROTO_UDP, 20);
    memcpy(orig, f, len);
    size_t n = qnic_pkt_vlan_insert(f, len, sizeof(f), ETH_P_8021Q, 0xa00b);
    g_assert_cmpuint(n, ==, len + 4);
    g_assert_cmphex(qnic_ld16be(f + 12), ==, ETH_P_8021Q);
    g_assert_cmphex(qnic_ld16be(f + 14), ==, 0xa00b);
    g_assert_cmphex(qnic_ld16be(f + 16), ==, ETH_P_IP);
    uint16_t tci = 0;
    g_assert_cmpuint(qnic_pkt_vlan_strip(f, n, 0x88a8, &tci), ==, n);   /* other tpid */
    g_assert_cmpuint(tci, ==, 0);
    g_assert_cmpuint(qnic_pkt_vlan_strip(f, n, ETH_P_8021Q, &tci), ==, len);
    g_assert_cmphex(tci, ==, 0xa00b);
    g_assert_cmpmem(f, len, orig, len);
    g_assert_cmpuint(qnic_pkt_vlan_insert(f, len, len + 3, ETH_P_8021Q, 1), ==, 0);
    g_assert_cmpuint(qnic_pkt_vlan_insert(f, 11, 64, ETH_P_8021Q, 1), ==, 0);
}

typedef struct Segs {
    int n;
    size_t len[64];
    uint8_t data[64][2048];
} Segs;

static void collect(void *opaque, const struct iovec *iov, int iovcnt)
{
    Segs *s = opaque;
    g_assert_cmpint(s->n, <, 64);
    size_t o = 0;
    for (int i = 0; i < iovcnt; i++) {
        g_assert_cmpuint(o + iov[i].iov_len, <=, sizeof(s->data[0]));
        memcpy(s->data[s->n] + o, iov[i].iov_base, iov[i].iov_len);
        o += iov[i].iov_len;
    }
    s->len[s->n++] = o;
}

static void check_tso(bool v6, uint8_t proto, bool vlan_in_frame, bool insert_vlan,
                      size_t payload, unsigned mss)
{
    static uint8_t f[70000];
    Segs *s = g_new0(Segs, 1);
    size_t len = build(f, vlan_in_frame, v6, proto, payload);
    size_t l3 = vlan_in_frame ? 18 : 14;
    size_t l4 = l3 + (v6 ? 40 : 20);
    size_t hl = l4 + (proto == IPPROTO_TCP ? 32 : 8);
    QnicPktTso p = { .mss = mss, .flags = QNIC_PKT_CSUM_IP | QNIC_PKT_CSUM_L4,
                     .insert_vlan = insert_vlan, .vlan_tpid = ETH_P_8021Q, .vlan_tci = 0x0064 };
    int n = qnic_pkt_tso(f, len, &p, collect, s);
    int expect = payload ? (int)((payload + mss - 1) / mss) : 1;
    g_assert_cmpint(n, ==, expect);
    g_assert_cmpint(s->n, ==, expect);

    size_t off = 0;
    for (int i = 0; i < n; i++) {
        uint8_t *g = s->data[i];
        size_t glen = s->len[i];
        if (insert_vlan) {
            g_assert_cmphex(qnic_ld16be(g + 12), ==, ETH_P_8021Q);
            g_assert_cmphex(qnic_ld16be(g + 14), ==, 0x0064);
            g_assert_cmpmem(g, 12, f, 12);
            /* Check the rest against the untagged layout. */
            memmove(g + 12, g + 16, glen - 16);
            glen -= 4;
        }
        size_t chunk = MIN((size_t)mss, payload - off);
        g_assert_cmpuint(glen, ==, hl + chunk);
        g_assert_cmpmem(g + hl, chunk, f + hl + off, chunk);
        if (v6) {
            g_assert_cmpuint(qnic_ld16be(g + l3 + 4), ==, glen - l3 - 40);
        } else {
            g_assert_cmpuint(qnic_ld16be(g + l3 + 2), ==, glen - l3);
            g_assert_cmphex(qnic_ld16be(g + l3 + 4), ==, (uint16_t)(0x1234 + i));
            g_assert_true(ip4_ok(g, l3));
        }
        if (proto == IPPROTO_TCP) {
            g_assert_cmphex(qnic_ld32be(g + l4 + 4), ==, (uint32_t)(0xfffff000u + off));
            uint8_t fl = g[l4 + 13];
            g_assert_cmpint(!!(fl & 0x01), ==, i == n - 1);   /* FIN */
            g_assert_cmpint(!!(fl & 0x08), ==, i == n - 1);   /* PSH */
            g_assert_cmpint(!!(fl & 0x80), ==, i == 0);       /* CWR */
            g_assert_true(fl & 0x10);                          /* ACK */
        } else {
            g_assert_cmpuint(qnic_ld16be(g + l4 + 4), ==, glen - l4);
        }
        g_assert_true(l4_ok(g, glen, l3, v6, proto));
        off += chunk;
    }
    g_assert_cmpuint(off, ==, payload);
    g_free(s);
}

static void test_tso(void)
{
    check_tso(false, IPPROTO_TCP, false, false, 3000, 1000);
    check_tso(false, IPPROTO_TCP, false, false, 3001, 1000);
    check_tso(false, IPPROTO_TCP, true, false, 4000, 1448);
    check_tso(false, IPPROTO_TCP, false, true, 2900, 1460);
    check_tso(true, IPPROTO_TCP, false, false, 5000, 1440);
    check_tso(true, IPPROTO_TCP, false, true, 5000, 1440);
    check_tso(false, IPPROTO_UDP, false, false, 2500, 1000);
    check_tso(true, IPPROTO_UDP, true, false, 2500, 999);
    check_tso(false, IPPROTO_TCP, false, false, 500, 1460);   /* one segment */
    check_tso(false, IPPROTO_TCP, false, false, 0, 1460);     /* header only */
    check_tso(false, IPPROTO_TCP, false, false, 60000, 1460); /* 42 segments */
}

static void count_seg(void *opaque, const struct iovec *iov, int iovcnt)
{
    (*(int *)opaque)++;
}

static void test_tso_refused(void)
{
    uint8_t f[2048];
    int calls = 0;
    QnicPktTso p = { .mss = 100, .flags = QNIC_PKT_CSUM_L4 };
    size_t len = build(f, false, false, IPPROTO_TCP, 500);
    QnicPktTso z = p;
    z.mss = 0;
    g_assert_cmpint(qnic_pkt_tso(f, len, &z, count_seg, &calls), ==, -1);
    qnic_st16be(f + 12, 0x0806);   /* ARP */
    g_assert_cmpint(qnic_pkt_tso(f, len, &p, count_seg, &calls), ==, -1);
    len = build(f, false, false, 47 /* GRE */, 500);
    g_assert_cmpint(qnic_pkt_tso(f, len, &p, count_seg, &calls), ==, -1);
    len = build(f, false, false, IPPROTO_TCP, 500);
    g_assert_cmpint(qnic_pkt_tso(f, 40, &p, count_seg, &calls), ==, -1);  /* truncated TCP */
    g_assert_cmpint(calls, ==, 0);
}

/* Random and truncated frames: nothing may read out of bounds (run under
 * ASan in CI) and results must be self-consistent. */
static void test_random(void)
{
    GRand *r = g_rand_new_with_seed(1234);
    uint8_t *f = g_malloc(1600);
    for (int iter = 0; iter < 20000; iter++) {
        size_t len = g_rand_int_range(r, 0, 1600);
        uint8_t *buf = g_malloc(len + 1);   /* exact size for ASan */
        if (iter & 1) {
            size_t full = build(f, iter & 2, iter & 4, (iter & 8) ? IPPROTO_TCP : IPPROTO_UDP,
                                g_rand_int_range(r, 0, 1400));
            len = MIN(len, full);
            memcpy(buf, f, len);
            for (int k = 0; k < 3 && len; k++) {
                buf[g_rand_int_range(r, 0, len)] = g_rand_int(r);
            }
        } else {
            for (size_t i = 0; i < len; i++) {
                buf[i] = g_rand_int(r);
            }
        }
        QnicPktInfo in;
        if (qnic_pkt_parse(buf, len, &in)) {
            g_assert_cmpuint(in.payload_off, <=, len);
        }
        int calls = 0;
        QnicPktTso p = { .mss = g_rand_int_range(r, 1, 2000), .flags = 3 };
        int n = qnic_pkt_tso(buf, len, &p, count_seg, &calls);
        g_assert_cmpint(n, ==, n < 0 ? -1 : calls);
        QnicPktCsumCheck ck;
        qnic_pkt_check_csum(buf, len, &ck);
        qnic_pkt_fill_csum(buf, len, 3);
        qnic_pkt_csum_at(buf, len, g_rand_int_range(r, 0, 80), g_rand_int_range(r, 0, 2000),
                         g_rand_int_range(r, 0, 80));
        g_free(buf);
    }
    g_free(f);
    g_rand_free(r);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/net-tx-pkt/parse", test_parse);
    g_test_add_func("/net-tx-pkt/csum-known", test_csum_known);
    g_test_add_func("/net-tx-pkt/fill-csum", test_fill_csum);
    g_test_add_func("/net-tx-pkt/csum-at", test_csum_at);
    g_test_add_func("/net-tx-pkt/vlan", test_vlan);
    g_test_add_func("/net-tx-pkt/tso", test_tso);
    g_test_add_func("/net-tx-pkt/tso-refused", test_tso_refused);
    g_test_add_func("/net-tx-pkt/random", test_random);
    return g_test_run();
}
