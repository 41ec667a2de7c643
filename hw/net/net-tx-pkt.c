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

#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_PSH 0x08
#define TCP_FLAG_CWR 0x80

static void parse_ipv4(const uint8_t *p, size_t len, QnicPktInfo *info)
{
    size_t l3 = info->l2_len;
    if (len < l3 + 20 || (p[l3] >> 4) != 4) {
        return;
    }
    size_t ihl = (size_t)(p[l3] & 0xf) * 4;
    if (ihl < 20 || l3 + ihl > len) {
        return;
    }
    info->is_ipv4 = true;
    info->l3_hdr_len = ihl;
    info->l4_proto = p[l3 + 9];
    info->is_fragment = (qnic_ld16be(&p[l3 + 6]) & 0x3fff) != 0;
}

static void parse_ipv6(const uint8_t *p, size_t len, QnicPktInfo *info)
{
    size_t l3 = info->l2_len;
    if (len < l3 + 40 || (p[l3] >> 4) != 6) {
        return;
    }
    uint8_t nh = p[l3 + 6];
    size_t off = l3 + 40;
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
            hlen = 8;
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
    size_t off = 12;
    uint16_t type = qnic_ld16be(&p[off]);
    /* Up to two stacked tags (QinQ). */
    while ((type == ETH_P_8021Q || type == ETH_P_8021AD) && info->vlan_tags < 2 &&
           off + 6 <= len) {
        if (info->vlan_tags == 0) {
            info->vlan_tci = qnic_ld16be(&p[off + 2]);
        }
        info->vlan_tags++;
        off += 4;
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
        if (info->l4_proto == IPPROTO_TCP && l4 + 20 <= len) {
            size_t doff = (size_t)(p[l4 + 12] >> 4) * 4;
            if (doff >= 20 && l4 + doff <= len) {
                info->l4_hdr_len = doff;
            }
        } else if (info->l4_proto == IPPROTO_UDP && l4 + 8 <= len) {
            info->l4_hdr_len = 8;
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
        sum = qnic_csum_add(0, ip + 12, 8);
    } else {
        sum = qnic_csum_add(0, ip + 8, 32);
    }
    sum += info->l4_proto;
    sum += l4_len >> 16;
    sum += l4_len & 0xffff;
    return sum;
}

static void fill_ip4_csum(uint8_t *ip, size_t ihl)
{
    qnic_st16be(ip + 10, 0);
    qnic_st16be(ip + 10, qnic_csum_fold(qnic_csum_add(0, ip, ihl)));
}

static size_t l4_csum_offset(uint8_t proto)
{
    return proto == IPPROTO_TCP ? 16 : 6;
}

/* L4 length from the IP length fields when they agree with the frame
 * (excluding Ethernet padding), else everything after the L4 offset. */
static size_t l4_length(const uint8_t *frame, size_t len, const QnicPktInfo *info)
{
    const uint8_t *ip = frame + info->l2_len;
    size_t l4_len = len - info->l4_off;
    if (info->is_ipv4) {
        size_t tot = qnic_ld16be(ip + 2);
        if (tot >= info->l3_hdr_len + info->l4_hdr_len && info->l2_len + tot <= len) {
            l4_len = tot - info->l3_hdr_len;
        }
    } else {
        size_t plen = qnic_ld16be(ip + 4);
        if (plen != 0 && 40 + plen >= info->l3_hdr_len + info->l4_hdr_len &&
            info->l2_len + 40 + plen <= len) {
            l4_len = 40 + plen - info->l3_hdr_len;
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
            c = 0xffff;    /* 0 means "no checksum" for UDP */
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
    if (info.l4_proto == IPPROTO_UDP && qnic_ld16be(l4 + 6) == 0) {
        out->l4_ok = true;
        return;
    }
    uint32_t sum = qnic_csum_add(pseudo_sum(frame, &info, l4_len), l4, l4_len);
    out->l4_ok = qnic_csum_fold(sum) == 0;
}

size_t qnic_pkt_vlan_insert(uint8_t *frame, size_t len, size_t cap,
                            uint16_t tpid, uint16_t tci)
{
    if (len < 12 || len + QNIC_VLAN_HLEN > cap) {
        return 0;
    }
    memmove(frame + 16, frame + 12, len - 12);
    qnic_st16be(frame + 12, tpid);
    qnic_st16be(frame + 14, tci);
    return len + QNIC_VLAN_HLEN;
}

size_t qnic_pkt_vlan_strip(uint8_t *frame, size_t len, uint16_t tpid, uint16_t *tci)
{
    if (len < 18 || qnic_ld16be(frame + 12) != tpid) {
        return len;
    }
    *tci = qnic_ld16be(frame + 14);
    memmove(frame + 12, frame + 16, len - 16);
    return len - QNIC_VLAN_HLEN;
}

int qnic_pkt_tso(const uint8_t *frame, size_t len, const QnicPktTso *p,
                 QnicPktSegFunc *cb, void *opaque)
{
    QnicPktInfo info;
    if (!qnic_pkt_parse(frame, len, &info) || info.is_fragment || info.l4_hdr_len == 0 ||
        (info.l4_proto != IPPROTO_TCP && info.l4_proto != IPPROTO_UDP) ||
        p->mss == 0 || info.payload_off > QNIC_PKT_MAX_HDR) {
        return -1;
    }
    /* The header copy sits after QNIC_VLAN_HLEN spare bytes so a tag can be
     * inserted by moving just the MAC addresses down. */
    uint8_t buf[QNIC_VLAN_HLEN + QNIC_PKT_MAX_HDR];
    uint8_t *h = buf + QNIC_VLAN_HLEN;
    const size_t hlen = info.payload_off;
    const size_t l3 = info.l2_len, l4 = info.l4_off;
    const size_t total = len - hlen;

    /* A segment's IP length field must not overflow: cap the MSS. */
    size_t ip_fixed = info.is_ipv4 ? info.l3_hdr_len : info.l3_hdr_len - 40;
    size_t mss = p->mss;
    if (mss > 0xffff - ip_fixed - info.l4_hdr_len) {
        mss = 0xffff - ip_fixed - info.l4_hdr_len;
    }

    const uint16_t ip_id = info.is_ipv4 ? qnic_ld16be(frame + l3 + 4) : 0;
    const uint32_t seq = info.l4_proto == IPPROTO_TCP ? qnic_ld32be(frame + l4 + 4) : 0;
    const uint8_t tcp_flags = info.l4_proto == IPPROTO_TCP ? frame[l4 + 13] : 0;
    const size_t nseg = total == 0 ? 1 : (total + mss - 1) / mss;

    for (size_t i = 0; i < nseg; i++) {
        size_t off = i * mss;
        size_t chunk = MIN(mss, total - off);
        size_t l4_len = info.l4_hdr_len + chunk;
        bool first = i == 0, last = i == nseg - 1;

        memcpy(h, frame, hlen);
        if (info.is_ipv4) {
            qnic_st16be(h + l3 + 2, (uint16_t)(info.l3_hdr_len + l4_len));
            qnic_st16be(h + l3 + 4, (uint16_t)(ip_id + i));
            if (p->flags & QNIC_PKT_CSUM_IP) {
                fill_ip4_csum(h + l3, info.l3_hdr_len);
            }
        } else {
            qnic_st16be(h + l3 + 4, (uint16_t)(info.l3_hdr_len - 40 + l4_len));
        }
        if (info.l4_proto == IPPROTO_TCP) {
            uint8_t f = tcp_flags;
            if (!last) {
                f &= ~(TCP_FLAG_FIN | TCP_FLAG_PSH);
            }
            if (!first) {
                f &= ~TCP_FLAG_CWR;
            }
            qnic_st32be(h + l4 + 4, seq + (uint32_t)off);
            h[l4 + 13] = f;
        } else {
            qnic_st16be(h + l4 + 4, (uint16_t)l4_len);
        }
        if (p->flags & QNIC_PKT_CSUM_L4) {
            size_t co = l4 + l4_csum_offset(info.l4_proto);
            qnic_st16be(h + co, 0);
            uint32_t sum = pseudo_sum(h, &info, (uint32_t)l4_len);
            sum = qnic_csum_add(sum, h + l4, info.l4_hdr_len);
            sum = qnic_csum_add(sum, frame + hlen + off, chunk);
            uint16_t c = qnic_csum_fold(sum);
            if (c == 0 && info.l4_proto == IPPROTO_UDP) {
                c = 0xffff;
            }
            qnic_st16be(h + co, c);
        }

        struct iovec iov[2];
        if (p->insert_vlan) {
            memmove(buf, h, 12);
            qnic_st16be(buf + 12, p->vlan_tpid);
            qnic_st16be(buf + 14, p->vlan_tci);
            iov[0].iov_base = buf;
            iov[0].iov_len = hlen + QNIC_VLAN_HLEN;
        } else {
            iov[0].iov_base = h;
            iov[0].iov_len = hlen;
        }
        iov[1].iov_base = (void *)(frame + hlen + off);
        iov[1].iov_len = chunk;
        cb(opaque, iov, chunk ? 2 : 1);
    }
    return (int)nseg;
}
