/*
 * Transmit offload helpers for the e1000 and rtl8139 frontends: header
 * parsing, internet checksums, TCP/UDP segmentation and VLAN tagging on
 * frames the guest built (see net-tx-pkt.h for the contract). The guest
 * controls every byte, so each header field is read only after checking that
 * it lies inside the buffer, and lengths found in headers are used only when
 * they agree with the real frame length.
 */
#include "hw/net/net-tx-pkt.h"

#include <linux/if_ether.h>
#include <netinet/in.h>

/* IPv6 extension headers walked by the parser (bounded: a guest can chain
 * them, but no real frame has more than a handful). */
#define MAX_IPV6_EXT_HDRS 8

/* Header sizes and field offsets (RFC 791, 8200, 9293, 768). */
#define ETH_TYPE_OFF        (2 * ETH_ALEN)  /* ethertype (or TPID of a tag) */
#define IP4_MIN_HLEN        20
#define IP4_TOT_LEN         2
#define IP4_ID              4
#define IP4_FRAG_OFF        6       /* flags and fragment offset */
#define IP4_FRAG_MASK       0x3fff  /* MF and the fragment offset; not DF */
#define IP4_PROTOCOL        9
#define IP4_CHECK           10
#define IP4_SADDR           12      /* source then destination: 8 bytes */
#define IP6_HLEN            40
#define IP6_PLEN            4
#define IP6_NEXTHDR         6
#define IP6_SADDR           8       /* source then destination: 32 bytes */
#define IP6_FRAG_HLEN       8
#define TCP_MIN_HLEN        20
#define TCP_SEQ             4
#define TCP_DOFF            12      /* data offset in the high nibble */
#define TCP_FLAGS           13
#define TCP_CHECK           16
#define UDP_HLEN            8
#define UDP_LEN             4
#define UDP_CHECK           6
#define CSUM_UDP_NONE_AS    0xffff  /* a computed 0 is sent as this: 0 is "none" */
#define IP_MAX_LEN          0xffff

#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_PSH 0x08
#define TCP_FLAG_CWR 0x80

static void parse_ipv4(const uint8_t *p, size_t len, QnicPktInfo *info)
{
    size_t l3 = info->l2_len;
    if (len < l3 + IP4_MIN_HLEN || (p[l3] >> 4) != 4) {
        return;
    }
    size_t ihl = (size_t)(p[l3] & 0xf) * 4;
    if (ihl < IP4_MIN_HLEN || l3 + ihl > len) {
        return;
    }
    info->is_ipv4 = true;
    info->l3_hdr_len = ihl;
    info->l4_proto = p[l3 + IP4_PROTOCOL];
    info->is_fragment = (qnic_ld16be(&p[l3 + IP4_FRAG_OFF]) & IP4_FRAG_MASK) != 0;
}

static void parse_ipv6(const uint8_t *p, size_t len, QnicPktInfo *info)
{
    size_t l3 = info->l2_len;
    if (len < l3 + IP6_HLEN || (p[l3] >> 4) != 6) {
        return;
    }
    uint8_t nh = p[l3 + IP6_NEXTHDR];
    size_t off = l3 + IP6_HLEN;
    bool frag = false;
    for (int i = 0; i < MAX_IPV6_EXT_HDRS; i++) {
        size_t hlen;
        switch (nh) {
        case IPPROTO_HOPOPTS:
        case IPPROTO_ROUTING:
        case IPPROTO_DSTOPTS:
            if (off + 2 > len) {
                return;
            }
            hlen = ((size_t)p[off + 1] + 1) * 8;
            break;
        case IPPROTO_FRAGMENT:
            hlen = IP6_FRAG_HLEN;
            frag = true;
            break;
        case IPPROTO_AH:
            if (off + 2 > len) {
                return;
            }
            hlen = ((size_t)p[off + 1] + 2) * 4;
            break;
        default:
            goto done;
        }
        if (off + hlen > len) {
            return;
        }
        nh = p[off];
        off += hlen;
    }
    /* Too many extension headers: leave it unparsed. */
    return;
done:
    info->is_ipv6 = true;
    info->l3_hdr_len = off - l3;
    info->l4_proto = nh;
    info->is_fragment = frag;
}

bool qnic_pkt_parse(const uint8_t *p, size_t len, QnicPktInfo *info)
{
    memset(info, 0, sizeof(*info));
    if (len < QNIC_ETH_HLEN) {
        return false;
    }
    size_t off = ETH_TYPE_OFF;
    uint16_t type = qnic_ld16be(&p[off]);
    /* Up to two stacked tags (QinQ). */
    while ((type == ETH_P_8021Q || type == ETH_P_8021AD) && info->vlan_tags < 2 &&
           off + 6 <= len) {
        if (info->vlan_tags == 0) {
            info->vlan_tci = qnic_ld16be(&p[off + 2]);
        }
        info->vlan_tags++;
        off += QNIC_VLAN_HLEN;
        type = qnic_ld16be(&p[off]);
    }
    info->l2_len = off + 2;
    info->eth_type = type;

    if (type == ETH_P_IP) {
        parse_ipv4(p, len, info);
    } else if (type == ETH_P_IPV6) {
        parse_ipv6(p, len, info);
    }
    if (!info->is_ipv4 && !info->is_ipv6) {
        return true;
    }
    info->l4_off = info->l2_len + info->l3_hdr_len;
    if (!info->is_fragment) {
        size_t l4 = info->l4_off;
        if (info->l4_proto == IPPROTO_TCP && l4 + TCP_MIN_HLEN <= len) {
            size_t doff = (size_t)(p[l4 + TCP_DOFF] >> 4) * 4;
            if (doff >= TCP_MIN_HLEN && l4 + doff <= len) {
                info->l4_hdr_len = doff;
            }
        } else if (info->l4_proto == IPPROTO_UDP && l4 + UDP_HLEN <= len) {
            info->l4_hdr_len = UDP_HLEN;
        }
    }
    info->payload_off = info->l4_off + info->l4_hdr_len;
    return true;
}

uint32_t qnic_csum_add(uint32_t sum, const void *buf, size_t len)
{
    const uint8_t *b = buf;
    uint64_t acc = sum;
    size_t i;
    for (i = 0; i + 1 < len; i += 2) {
        acc += (uint32_t)b[i] << 8 | b[i + 1];
    }
    if (i < len) {
        acc += (uint32_t)b[i] << 8;
    }
    while (acc >> 16) {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    return (uint32_t)acc;
}

uint16_t qnic_csum_fold(uint32_t sum)
{
    while (sum >> 16) {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    return (uint16_t)~sum;
}

bool qnic_pkt_csum_at(uint8_t *frame, size_t len, size_t start, size_t end, size_t off)
{
    if (start >= len || off + 2 > len || off < start) {
        return false;
    }
    if (end == 0 || end >= len) {
        end = len - 1;
    }
    if (end < start) {
        return false;
    }
    uint32_t sum = qnic_csum_add(0, frame + start, end - start + 1);
    qnic_st16be(frame + off, qnic_csum_fold(sum));
    return true;
}

/* Sum of the pseudo header for an L4 segment of l4_len bytes. */
static uint32_t pseudo_sum(const uint8_t *frame, const QnicPktInfo *info, uint32_t l4_len)
{
    const uint8_t *ip = frame + info->l2_len;
    uint32_t sum;
    if (info->is_ipv4) {
        sum = qnic_csum_add(0, ip + IP4_SADDR, 8);
    } else {
        sum = qnic_csum_add(0, ip + IP6_SADDR, 32);
    }
    sum += info->l4_proto;
    sum += l4_len >> 16;
    sum += l4_len & 0xffff;
    return sum;
}

static void fill_ip4_csum(uint8_t *ip, size_t ihl)
{
    qnic_st16be(ip + IP4_CHECK, 0);
    qnic_st16be(ip + IP4_CHECK, qnic_csum_fold(qnic_csum_add(0, ip, ihl)));
}

static size_t l4_csum_offset(uint8_t proto)
{
    return proto == IPPROTO_TCP ? TCP_CHECK : UDP_CHECK;
}

/* L4 length from the IP length fields when they agree with the frame
 * (excluding Ethernet padding), else everything after the L4 offset. */
static size_t l4_length(const uint8_t *frame, size_t len, const QnicPktInfo *info)
{
    const uint8_t *ip = frame + info->l2_len;
    size_t l4_len = len - info->l4_off;
    if (info->is_ipv4) {
        size_t tot = qnic_ld16be(ip + IP4_TOT_LEN);
        if (tot >= info->l3_hdr_len + info->l4_hdr_len && info->l2_len + tot <= len) {
            l4_len = tot - info->l3_hdr_len;
        }
    } else {
        size_t plen = qnic_ld16be(ip + IP6_PLEN);
        if (plen != 0 && IP6_HLEN + plen >= info->l3_hdr_len + info->l4_hdr_len &&
            info->l2_len + IP6_HLEN + plen <= len) {
            l4_len = IP6_HLEN + plen - info->l3_hdr_len;
        }
    }
    return l4_len;
}

bool qnic_pkt_fill_csum(uint8_t *frame, size_t len, unsigned flags)
{
    QnicPktInfo info;
    bool ok = true;
    if (!qnic_pkt_parse(frame, len, &info)) {
        return false;
    }
    if (flags & QNIC_PKT_CSUM_IP) {
        if (info.is_ipv4) {
            fill_ip4_csum(frame + info.l2_len, info.l3_hdr_len);
        } else {
            ok = false;
        }
    }
    if (flags & QNIC_PKT_CSUM_L4) {
        if (info.l4_hdr_len == 0) {
            return false;
        }
        size_t l4_len = l4_length(frame, len, &info);
        uint8_t *l4 = frame + info.l4_off;
        size_t co = l4_csum_offset(info.l4_proto);
        qnic_st16be(l4 + co, 0);
        uint32_t sum = qnic_csum_add(pseudo_sum(frame, &info, l4_len), l4, l4_len);
        uint16_t c = qnic_csum_fold(sum);
        if (c == 0 && info.l4_proto == IPPROTO_UDP) {
            c = CSUM_UDP_NONE_AS;
        }
        qnic_st16be(l4 + co, c);
    }
    return ok;
}

void qnic_pkt_check_csum(const uint8_t *frame, size_t len, QnicPktCsumCheck *out)
{
    QnicPktInfo info;
    memset(out, 0, sizeof(*out));
    if (!qnic_pkt_parse(frame, len, &info)) {
        return;
    }
    if (info.is_ipv4) {
        out->ip_checked = true;
        out->ip_ok = qnic_csum_fold(qnic_csum_add(0, frame + info.l2_len, info.l3_hdr_len)) == 0;
    }
    if (info.l4_hdr_len == 0) {
        return;
    }
    size_t l4_len = l4_length(frame, len, &info);
    const uint8_t *l4 = frame + info.l4_off;
    out->l4_checked = true;
    if (info.l4_proto == IPPROTO_UDP && qnic_ld16be(l4 + UDP_CHECK) == 0) {
        out->l4_ok = true;
        return;
    }
    uint32_t sum = qnic_csum_add(pseudo_sum(frame, &info, l4_len), l4, l4_len);
    out->l4_ok = qnic_csum_fold(sum) == 0;
}

size_t qnic_pkt_vlan_insert(uint8_t *frame, size_t len, size_t cap,
                            uint16_t tpid, uint16_t tci)
{
    if (len < ETH_TYPE_OFF || len + QNIC_VLAN_HLEN > cap) {
        return 0;
    }
    memmove(frame + ETH_TYPE_OFF + QNIC_VLAN_HLEN, frame + ETH_TYPE_OFF, len - ETH_TYPE_OFF);
    qnic_st16be(frame + ETH_TYPE_OFF, tpid);
    qnic_st16be(frame + ETH_TYPE_OFF + 2, tci);
    return len + QNIC_VLAN_HLEN;
}

size_t qnic_pkt_vlan_strip(uint8_t *frame, size_t len, uint16_t tpid, uint16_t *tci)
{
    if (len < ETH_TYPE_OFF + QNIC_VLAN_HLEN + 2 || qnic_ld16be(frame + ETH_TYPE_OFF) != tpid) {
        return len;
    }
    *tci = qnic_ld16be(frame + ETH_TYPE_OFF + 2);
    memmove(frame + ETH_TYPE_OFF, frame + ETH_TYPE_OFF + QNIC_VLAN_HLEN,
            len - ETH_TYPE_OFF - QNIC_VLAN_HLEN);
    return len - QNIC_VLAN_HLEN;
}

/* What stays the same across the segments of one large frame. */
typedef struct TsoFrame {
    QnicPktInfo info;
    const QnicPktTso *p;
    size_t nseg;
    uint16_t ip_id;         /* IPv4 id of the first segment */
    uint32_t seq;           /* TCP sequence number of the first segment */
    uint8_t tcp_flags;      /* TCP flags of the large frame */
} TsoFrame;

/* Fix the headers h copied for segment i, whose chunk bytes of payload
 * (data) start at payload offset off: IP length and id, TCP sequence and
 * flags or UDP length, and the checksums the caller asked for. */
static void tso_fix_headers(const TsoFrame *t, uint8_t *h, size_t i, size_t off,
                            const uint8_t *data, size_t chunk)
{
    const QnicPktInfo *info = &t->info;
    const size_t l3 = info->l2_len, l4 = info->l4_off;
    size_t l4_len = info->l4_hdr_len + chunk;
    bool first = i == 0, last = i == t->nseg - 1;

    if (info->is_ipv4) {
        qnic_st16be(h + l3 + IP4_TOT_LEN, (uint16_t)(info->l3_hdr_len + l4_len));
        qnic_st16be(h + l3 + IP4_ID, (uint16_t)(t->ip_id + i));
        if (t->p->flags & QNIC_PKT_CSUM_IP) {
            fill_ip4_csum(h + l3, info->l3_hdr_len);
        }
    } else {
        qnic_st16be(h + l3 + IP6_PLEN, (uint16_t)(info->l3_hdr_len - IP6_HLEN + l4_len));
    }
    if (info->l4_proto == IPPROTO_TCP) {
        uint8_t f = t->tcp_flags;
        if (!last) {
            f &= ~(TCP_FLAG_FIN | TCP_FLAG_PSH);
        }
        if (!first) {
            f &= ~TCP_FLAG_CWR;
        }
        qnic_st32be(h + l4 + TCP_SEQ, t->seq + (uint32_t)off);
        h[l4 + TCP_FLAGS] = f;
    } else {
        qnic_st16be(h + l4 + UDP_LEN, (uint16_t)l4_len);
    }
    if (t->p->flags & QNIC_PKT_CSUM_L4) {
        size_t co = l4 + l4_csum_offset(info->l4_proto);
        qnic_st16be(h + co, 0);
        uint32_t sum = pseudo_sum(h, info, (uint32_t)l4_len);
        sum = qnic_csum_add(sum, h + l4, info->l4_hdr_len);
        sum = qnic_csum_add(sum, data, chunk);
        uint16_t c = qnic_csum_fold(sum);
        if (c == 0 && info->l4_proto == IPPROTO_UDP) {
            c = CSUM_UDP_NONE_AS;
        }
        qnic_st16be(h + co, c);
    }
}

int qnic_pkt_tso(const uint8_t *frame, size_t len, const QnicPktTso *p,
                 QnicPktSegFunc *cb, void *opaque)
{
    TsoFrame t = { .p = p };
    const QnicPktInfo *info = &t.info;

    if (!qnic_pkt_parse(frame, len, &t.info) || info->is_fragment || info->l4_hdr_len == 0 ||
        (info->l4_proto != IPPROTO_TCP && info->l4_proto != IPPROTO_UDP) ||
        p->mss == 0 || info->payload_off > QNIC_PKT_MAX_HDR) {
        return -1;
    }
    /* The header copy sits after QNIC_VLAN_HLEN spare bytes so a tag can be
     * inserted by moving just the MAC addresses down. */
    uint8_t buf[QNIC_VLAN_HLEN + QNIC_PKT_MAX_HDR];
    uint8_t *h = buf + QNIC_VLAN_HLEN;
    const size_t hlen = info->payload_off;
    const size_t l3 = info->l2_len, l4 = info->l4_off;
    const size_t total = len - hlen;

    /* A segment's IP length field must not overflow: cap the MSS. */
    size_t ip_fixed = info->is_ipv4 ? info->l3_hdr_len : info->l3_hdr_len - IP6_HLEN;
    size_t mss = p->mss;
    if (mss > IP_MAX_LEN - ip_fixed - info->l4_hdr_len) {
        mss = IP_MAX_LEN - ip_fixed - info->l4_hdr_len;
    }

    t.ip_id = info->is_ipv4 ? qnic_ld16be(frame + l3 + IP4_ID) : 0;
    t.seq = info->l4_proto == IPPROTO_TCP ? qnic_ld32be(frame + l4 + TCP_SEQ) : 0;
    t.tcp_flags = info->l4_proto == IPPROTO_TCP ? frame[l4 + TCP_FLAGS] : 0;
    t.nseg = total == 0 ? 1 : (total + mss - 1) / mss;

    for (size_t i = 0; i < t.nseg; i++) {
        size_t off = i * mss;
        size_t chunk = MIN(mss, total - off);
        const uint8_t *data = frame + hlen + off;
        struct iovec iov[2];

        memcpy(h, frame, hlen);
        tso_fix_headers(&t, h, i, off, data, chunk);
        if (p->insert_vlan) {
            memmove(buf, h, ETH_TYPE_OFF);
            qnic_st16be(buf + ETH_TYPE_OFF, p->vlan_tpid);
            qnic_st16be(buf + ETH_TYPE_OFF + 2, p->vlan_tci);
            iov[0].iov_base = buf;
            iov[0].iov_len = hlen + QNIC_VLAN_HLEN;
        } else {
            iov[0].iov_base = h;
            iov[0].iov_len = hlen;
        }
        iov[1].iov_base = (void *)data;
        iov[1].iov_len = chunk;
        cb(opaque, iov, chunk ? 2 : 1);
    }
    return (int)t.nseg;
}
