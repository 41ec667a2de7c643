/*
 * The RSS classifier and Toeplitz hash of virtio 1.2 5.1.6.4.3, written
 * once for both places that steer a frame: the library's software RSS
 * (net/rss.c) and the eBPF steering program the kernel runs on a
 * multiqueue tap (ebpf/rss.bpf.c). Keeping one text is what makes the two
 * agree; the unit tests still compare them frame by frame through
 * BPF_PROG_TEST_RUN.
 *
 * It is written for the BPF verifier as much as for a C compiler: every
 * read of the frame has a constant size and goes through RSS_LOAD, every
 * loop has a constant bound, and no pointer into the frame is kept. No libc
 * and no GLib. The includer defines, before including it:
 *   RSS_CTX                    the type of the frame handle
 *   RSS_LOAD(ctx, off, dst, n) copy n bytes at offset off of the frame to
 *                              dst; nonzero when they are not all there
 *   RSS_INLINE                 how to mark the functions (static inline,
 *                              or always-inline for BPF)
 *   RSS_MEMCPY(dst, src, n)    a copy of a constant size
 * and has uint8_t, uint16_t, uint32_t.
 *
 * Bounds both paths share, so that they agree on every frame: the
 * classifier looks at no byte past RSS_PARSE_MAX, walks at most
 * RSS_MAX_EXT_HDRS IPv6 extension headers and at most RSS_MAX_OPTS options
 * of a destination options header. A frame whose headers go past them is
 * classified with what was found before (no L4 header, no home address).
 */
#ifndef QNIC_NET_RSS_CLASSIFY_H
#define QNIC_NET_RSS_CLASSIFY_H

#define RSS_PARSE_MAX 512
#define RSS_MAX_EXT_HDRS 8
#define RSS_MAX_OPTS 8
#define RSS_KEY_BYTES 40            /* rss_max_key_size qnic offers */
#define RSS_TUPLE_MAX 36            /* two IPv6 addresses and two ports */

/* virtio 1.2 5.1.6.4.3.1 hash types and 5.1.6.4.4 report values (the
 * values of linux/virtio_net.h, repeated because BPF code cannot include
 * it). */
#define RSS_T_IPv4   (1u << 0)
#define RSS_T_TCPv4  (1u << 1)
#define RSS_T_UDPv4  (1u << 2)
#define RSS_T_IPv6   (1u << 3)
#define RSS_T_TCPv6  (1u << 4)
#define RSS_T_UDPv6  (1u << 5)
#define RSS_T_IP_EX  (1u << 6)
#define RSS_T_TCP_EX (1u << 7)
#define RSS_T_UDP_EX (1u << 8)
#define RSS_R_NONE     0
#define RSS_R_IPv4     1
#define RSS_R_TCPv4    2
#define RSS_R_UDPv4    3
#define RSS_R_IPv6     4
#define RSS_R_TCPv6    5
#define RSS_R_UDPv6    6
#define RSS_R_IPv6_EX  7
#define RSS_R_TCPv6_EX 8
#define RSS_R_UDPv6_EX 9

#define RSS_IPPROTO_TCP 6
#define RSS_IPPROTO_UDP 17
#define RSS_TCP_HLEN 20             /* a TCP header is there if its 20 bytes are */
#define RSS_UDP_HLEN 8

/* IPv6 extension headers (RFC 8200 4, RFC 4302, RFC 6275 6.1) */
#define RSS_NH_HOP 0
#define RSS_NH_ROUTING 43
#define RSS_NH_FRAGMENT 44
#define RSS_NH_AH 51
#define RSS_NH_DSTOPTS 60
#define RSS_NH_MOBILITY 135
#define RSS_NH_HIP 139
#define RSS_NH_SHIM6 140
#define RSS_NH_EXP1 253
#define RSS_NH_EXP2 254
#define RSS_OPT_PAD1 0
#define RSS_OPT_HOME_ADDRESS 0xc9   /* RFC 6275 6.3, 16 bytes of address */
#define RSS_RH_TYPE2 2              /* RFC 6275 6.4, one address */

/* What the classifier found: the hash input and the report type
 * (RSS_R_NONE: the frame is not of an enabled type, the unclassified
 * queue takes it). */
struct rss_flow {
    uint8_t tuple[RSS_TUPLE_MAX];
    uint32_t len;
    uint32_t report;
};

/* Where an IPv6 walk ended and what it saw. */
struct rss_v6 {
    uint32_t l4;                    /* offset of the upper-layer header */
    uint8_t nh;                     /* its protocol; 255 when unknown */
    uint8_t ext;                    /* extension headers were there */
    uint8_t has_home, has_rh2;
    uint8_t home[16], rh2[16];
};

RSS_INLINE int rss_have(RSS_CTX ctx, uint32_t off, uint32_t n)
{
    uint8_t b;

    if (off + n > RSS_PARSE_MAX || n == 0) {
        return 0;
    }
    return RSS_LOAD(ctx, off + n - 1, &b, 1) == 0;
}

/* The Toeplitz hash (virtio 1.2 5.1.6.4.3.1, Microsoft's RSS hash): for
 * each set bit i of the input, XOR in the 32 key bits that start at bit
 * i. key holds RSS_KEY_BYTES bytes, zero past the guest's key length. */
RSS_INLINE uint32_t rss_toeplitz(const uint8_t *key, const uint8_t *in, uint32_t len)
{
    uint32_t h = 0;
    uint32_t win = (uint32_t)key[0] << 24 | (uint32_t)key[1] << 16 | (uint32_t)key[2] << 8 | key[3];

    for (uint32_t i = 0; i < RSS_TUPLE_MAX; i++) {
        uint8_t byte, next;

        if (i >= len) {
            break;
        }
        byte = in[i];
        next = key[i + 4];
        for (int b = 7; b >= 0; b--) {
            if (byte & (1u << b)) {
                h ^= win;
            }
            win = (win << 1) | ((next >> b) & 1u);
        }
    }
    return h;
}

RSS_INLINE uint32_t rss_ipv4(RSS_CTX ctx, uint32_t l3, uint32_t types, struct rss_flow *fl)
{
    uint8_t ip[20];
    uint32_t ihl, l4;
    int frag;

    if (RSS_LOAD(ctx, l3, ip, 20) || (ip[0] >> 4) != 4) {
        return RSS_R_NONE;
    }
    ihl = (ip[0] & 15u) * 4;
    if (ihl < 20 || !rss_have(ctx, l3, ihl)) {
        return RSS_R_NONE;
    }
    RSS_MEMCPY(fl->tuple, ip + 12, 8);
    fl->len = 8;
    l4 = l3 + ihl;
    /* a fragment is what MF or a non-zero offset says (DF is not) */
    frag = ((ip[6] << 8 | ip[7]) & 0x3fff) != 0;
    if (!frag && ip[9] == RSS_IPPROTO_TCP && (types & RSS_T_TCPv4) &&
        rss_have(ctx, l4, RSS_TCP_HLEN) && !RSS_LOAD(ctx, l4, fl->tuple + 8, 4)) {
        fl->len = 12;
        return RSS_R_TCPv4;
    }
    if (!frag && ip[9] == RSS_IPPROTO_UDP && (types & RSS_T_UDPv4) &&
        rss_have(ctx, l4, RSS_UDP_HLEN) && !RSS_LOAD(ctx, l4, fl->tuple + 8, 4)) {
        fl->len = 12;
        return RSS_R_UDPv4;
    }
    return (types & RSS_T_IPv4) ? RSS_R_IPv4 : RSS_R_NONE;
}

RSS_INLINE int rss_v6_is_ext(uint8_t nh)
{
    return nh == RSS_NH_HOP || nh == RSS_NH_ROUTING || nh == RSS_NH_FRAGMENT ||
           nh == RSS_NH_AH || nh == RSS_NH_DSTOPTS || nh == RSS_NH_MOBILITY ||
           nh == RSS_NH_HIP || nh == RSS_NH_SHIM6 || nh == RSS_NH_EXP1 || nh == RSS_NH_EXP2;
}

/* Look for the home address option in the destination options header of
 * hlen bytes at off (options start after its 2-byte head). */
RSS_INLINE void rss_v6_dstopts(RSS_CTX ctx, uint32_t off, uint32_t hlen, struct rss_v6 *v)
{
    uint32_t o = off + 2, end = off + hlen;

    for (int i = 0; i < RSS_MAX_OPTS; i++) {
        uint8_t opt[2];

        if (o >= end || RSS_LOAD(ctx, o, opt, 1)) {
            return;
        }
        if (opt[0] == RSS_OPT_PAD1) {
            o++;
            continue;
        }
        if (o + 2 > end || RSS_LOAD(ctx, o, opt, 2) || o + 2 + opt[1] > end) {
            return;
        }
        if (opt[0] == RSS_OPT_HOME_ADDRESS && opt[1] == 16) {
            if (!v->has_home && !RSS_LOAD(ctx, o + 2, v->home, 16)) {
                v->has_home = 1;
            }
            return;
        }
        o += 2 + opt[1];
    }
}

/* Walk the extension headers after the fixed header at l3. */
RSS_INLINE void rss_v6_walk(RSS_CTX ctx, uint32_t l3, uint8_t nh, struct rss_v6 *v)
{
    uint32_t off = l3 + 40;

    v->nh = 255;
    for (int i = 0; i < RSS_MAX_EXT_HDRS; i++) {
        uint8_t h[8];
        uint32_t hlen;

        if (!rss_v6_is_ext(nh)) {
            v->nh = nh;
            v->l4 = off;
            return;
        }
        v->ext = 1;
        if (off + 8 > RSS_PARSE_MAX || RSS_LOAD(ctx, off, h, 8)) {
            return;
        }
        if (nh == RSS_NH_FRAGMENT) {
            /* offset (13 bits) or M: a fragment; else an atomic one */
            if (((h[2] << 8 | h[3]) & 0xfff9) != 0) {
                return;
            }
            hlen = 8;
        } else if (nh == RSS_NH_AH) {
            hlen = ((uint32_t)h[1] + 2) * 4;
        } else {
            hlen = ((uint32_t)h[1] + 1) * 8;
        }
        if (!rss_have(ctx, off, hlen)) {
            return;
        }
        if (nh == RSS_NH_ROUTING && h[2] == RSS_RH_TYPE2 && h[1] == 2 && !v->has_rh2 &&
            !RSS_LOAD(ctx, off + 8, v->rh2, 16)) {
            v->has_rh2 = 1;
        }
        if (nh == RSS_NH_DSTOPTS) {
            rss_v6_dstopts(ctx, off, hlen, v);
        }
        nh = h[0];
        off += hlen;
    }
    if (!rss_v6_is_ext(nh)) {
        v->nh = nh;
        v->l4 = off;
    }
}

/* The L4 ports of an upper-layer header of kind proto at v->l4, if
 * enabled and there. */
RSS_INLINE int rss_v6_ports(RSS_CTX ctx, const struct rss_v6 *v, uint8_t proto,
                                   struct rss_flow *fl)
{
    uint32_t need = proto == RSS_IPPROTO_TCP ? RSS_TCP_HLEN : RSS_UDP_HLEN;

    if (v->nh != proto || !rss_have(ctx, v->l4, need) ||
        RSS_LOAD(ctx, v->l4, fl->tuple + 32, 4)) {
        return 0;
    }
    fl->len = 36;
    return 1;
}

/* virtio 1.2 5.1.6.4.3.4: with extension headers the _EX types come first,
 * over the home address (else the source) and the type 2 routing header's
 * address (else the destination); then, as if they were not there,
 * 5.1.6.4.3.3's types over the fixed header's addresses. */
RSS_INLINE uint32_t rss_ipv6(RSS_CTX ctx, uint32_t l3, uint32_t types, struct rss_flow *fl)
{
    uint8_t ip[40];
    struct rss_v6 v = { 0 };

    if (RSS_LOAD(ctx, l3, ip, 40) || (ip[0] >> 4) != 6) {
        return RSS_R_NONE;
    }
    rss_v6_walk(ctx, l3, ip[6], &v);
    if (v.ext && (types & (RSS_T_IP_EX | RSS_T_TCP_EX | RSS_T_UDP_EX))) {
        if (v.has_home) {
            RSS_MEMCPY(fl->tuple, v.home, 16);
        } else {
            RSS_MEMCPY(fl->tuple, ip + 8, 16);
        }
        if (v.has_rh2) {
            RSS_MEMCPY(fl->tuple + 16, v.rh2, 16);
        } else {
            RSS_MEMCPY(fl->tuple + 16, ip + 24, 16);
        }
        fl->len = 32;
        if ((types & RSS_T_TCP_EX) && rss_v6_ports(ctx, &v, RSS_IPPROTO_TCP, fl)) {
            return RSS_R_TCPv6_EX;
        }
        if ((types & RSS_T_UDP_EX) && rss_v6_ports(ctx, &v, RSS_IPPROTO_UDP, fl)) {
            return RSS_R_UDPv6_EX;
        }
        if (types & RSS_T_IP_EX) {
            return RSS_R_IPv6_EX;
        }
    }
    RSS_MEMCPY(fl->tuple, ip + 8, 32);
    fl->len = 32;
    if ((types & RSS_T_TCPv6) && rss_v6_ports(ctx, &v, RSS_IPPROTO_TCP, fl)) {
        return RSS_R_TCPv6;
    }
    if ((types & RSS_T_UDPv6) && rss_v6_ports(ctx, &v, RSS_IPPROTO_UDP, fl)) {
        return RSS_R_UDPv6;
    }
    return (types & RSS_T_IPv6) ? RSS_R_IPv6 : RSS_R_NONE;
}

/* Classify an Ethernet frame (one 802.1Q/802.1ad tag allowed) under the
 * enabled hash types: fills fl's tuple and returns the report type. */
RSS_INLINE uint32_t rss_classify(RSS_CTX ctx, uint32_t types, struct rss_flow *fl)
{
    uint8_t eth[4];
    uint32_t l3 = 14;
    uint16_t type;

    fl->len = 0;
    if (RSS_LOAD(ctx, 12, eth, 2)) {
        return RSS_R_NONE;
    }
    type = (uint16_t)(eth[0] << 8 | eth[1]);
    if (type == 0x8100 || type == 0x88a8) {
        if (RSS_LOAD(ctx, 16, eth, 2)) {
            return RSS_R_NONE;
        }
        type = (uint16_t)(eth[0] << 8 | eth[1]);
        l3 = 18;
    }
    if (type == 0x0800) {
        return rss_ipv4(ctx, l3, types, fl);
    }
    if (type == 0x86dd) {
        return rss_ipv6(ctx, l3, types, fl);
    }
    return RSS_R_NONE;
}

#endif
