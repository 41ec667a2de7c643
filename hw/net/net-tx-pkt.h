/*
 * Transmit offload helpers shared by the NIC frontends that do offloads in
 * the device model rather than handing them to the backend (e1000, rtl8139):
 * parsing of the Ethernet/VLAN/IPv4/IPv6/TCP/UDP headers of a frame the guest
 * built, internet checksum computation and insertion (whole-protocol or at
 * explicit offsets, as e1000's CSS/CSO/CSE context does), segmentation of a
 * large TCP (or UDP) frame into MSS-sized frames with fixed-up IP id/length/
 * checksum and TCP sequence/flags, and 802.1Q tag insertion/stripping.
 *
 * Everything works on plain byte buffers and never trusts the frame: every
 * field read is bounds-checked against the buffer length, and a frame that
 * cannot be parsed is reported as such (the caller then sends it unmodified
 * or drops it, with a guest-error line). Nothing here allocates.
 */
#ifndef QNIC_NET_TX_PKT_H
#define QNIC_NET_TX_PKT_H

#include "qnic/common.h"

#define QNIC_ETH_HLEN 14
#define QNIC_VLAN_HLEN 4
#define QNIC_VLAN_VID_MASK 0x0fff    /* the VLAN id in a TCI */
/* Longest header block segmentation copies per segment: Ethernet + two VLAN
 * tags + IPv6 with extension headers + a 60-byte TCP header. */
#define QNIC_PKT_MAX_HDR 256

/* The I/G bit of a destination address: a group (multicast or broadcast)
 * address. */
static inline bool qnic_eth_is_multicast(const uint8_t *addr)
{
    return addr[0] & 1;
}

/* ff:ff:ff:ff:ff:ff */
static inline bool qnic_eth_is_broadcast(const uint8_t *addr)
{
    return (addr[0] & addr[1] & addr[2] & addr[3] & addr[4] & addr[5]) == 0xff;
}

typedef struct QnicPktInfo {
    size_t l2_len;          /* Ethernet header + VLAN tags = offset of L3 */
    uint16_t eth_type;      /* innermost ethertype (after VLAN tags) */
    int vlan_tags;          /* 802.1Q / 802.1ad tags present in the frame */
    uint16_t vlan_tci;      /* TCI of the outermost tag, if any */
    bool is_ipv4, is_ipv6;
    size_t l3_hdr_len;      /* IPv4 header with options / IPv6 + ext headers */
    uint8_t l4_proto;       /* IPPROTO_TCP, IPPROTO_UDP, ... (0 when no IP) */
    bool is_fragment;       /* IPv4 MF/offset or IPv6 fragment header */
    size_t l4_off;          /* l2_len + l3_hdr_len */
    size_t l4_hdr_len;      /* TCP data offset * 4, 8 for UDP, 0 otherwise */
    size_t payload_off;     /* l4_off + l4_hdr_len */
} QnicPktInfo;

/* Parse the headers of frame[0..len). Returns false if the frame is shorter
 * than an Ethernet header. For IP frames whose L3/L4 headers are truncated or
 * malformed, is_ipv4/is_ipv6 or l4_proto are left unset (0), so callers can
 * test "is this TCP over IP I can offload" with l4_hdr_len != 0. */
bool qnic_pkt_parse(const uint8_t *frame, size_t len, QnicPktInfo *info);

/* One's-complement sum of buf (big-endian 16-bit words, odd byte padded),
 * added to sum; fold with qnic_csum_fold (which returns ~sum, ready to be
 * stored big-endian in a header). */
uint32_t qnic_csum_add(uint32_t sum, const void *buf, size_t len);
uint16_t qnic_csum_fold(uint32_t sum);

/* e1000-style checksum insertion: the one's-complement sum of bytes
 * [start, end] (end inclusive; end == 0 or beyond the frame means "to the
 * end of the frame") folded, complemented and stored big-endian at off.
 * Whatever the guest preloaded at off (a pseudo-header seed) takes part in
 * the sum. Returns false (nothing written) if start/off are out of range. */
bool qnic_pkt_csum_at(uint8_t *frame, size_t len, size_t start, size_t end, size_t off);

enum {
    QNIC_PKT_CSUM_IP = 1 << 0,   /* fill in the IPv4 header checksum */
    QNIC_PKT_CSUM_L4 = 1 << 1,   /* fill in the TCP/UDP checksum (pseudo header incl.) */
};

/* Fill in the checksums selected by flags from scratch (the existing field
 * values are ignored), for the IPv4/IPv6 TCP/UDP frame in place. The L4
 * length comes from the IP length fields when they fit the frame (so
 * Ethernet padding is excluded), else from the frame length. Returns false
 * if a requested checksum could not be computed (non-IP, fragment,
 * truncated); the others are still done. */
bool qnic_pkt_fill_csum(uint8_t *frame, size_t len, unsigned flags);

/* Receive-side verification (e1000 RXCSUM, rtl8139 C+ RX checksum): which
 * checksums of the frame could be checked and whether they are right.
 * UDP with a zero checksum counts as correct. */
typedef struct QnicPktCsumCheck {
    bool ip_checked, ip_ok;   /* IPv4 header checksum */
    bool l4_checked, l4_ok;   /* TCP/UDP checksum over IPv4/IPv6 */
} QnicPktCsumCheck;
void qnic_pkt_check_csum(const uint8_t *frame, size_t len, QnicPktCsumCheck *out);

/* Insert an 802.1Q-style tag (tpid, tci) after the MAC addresses. The
 * buffer must hold len + 4 bytes (cap). Returns the new length, 0 if it
 * does not fit or the frame is shorter than 12 bytes. */
size_t qnic_pkt_vlan_insert(uint8_t *frame, size_t len, size_t cap,
                            uint16_t tpid, uint16_t tci);
/* If the frame carries a tag with this tpid, remove it (*tci gets its TCI)
 * and return the new length; else return len unchanged and leave *tci. */
size_t qnic_pkt_vlan_strip(uint8_t *frame, size_t len, uint16_t tpid, uint16_t *tci);

/* Segmentation (TSO / e1000 "TCP segmentation", rtl8139 "large send"). */
typedef struct QnicPktTso {
    unsigned mss;           /* payload bytes per segment, >= 1 */
    unsigned flags;         /* QNIC_PKT_CSUM_*: checksums to fill per segment */
    bool insert_vlan;       /* add a tag (tpid, tci) to every segment */
    uint16_t vlan_tpid, vlan_tci;
} QnicPktTso;

/* Called once per segment with the segment as an iovec (its header copy
 * and a slice of the original frame's payload). The memory is valid only
 * during the call. */
typedef void QnicPktSegFunc(void *opaque, const struct iovec *iov, int iovcnt);

/* Split the TCP or UDP over IPv4/IPv6 frame[0..len) into segments carrying
 * at most p->mss payload bytes each: every segment gets a copy of the
 * headers with IP total/payload length set, the IPv4 id incremented per
 * segment, the TCP sequence number advanced, FIN/PSH only on the last and
 * CWR only on the first segment (UDP: each segment gets its own UDP length),
 * and the checksums selected in p->flags computed. A frame whose payload
 * fits in one segment is still fixed up and emitted once.
 * Returns the number of segments emitted, or -1 (nothing emitted) if the
 * frame is not segmentable TCP/UDP over IP, is an IP fragment, mss is 0,
 * or the headers exceed QNIC_PKT_MAX_HDR. */
int qnic_pkt_tso(const uint8_t *frame, size_t len, const QnicPktTso *p,
                 QnicPktSegFunc *cb, void *opaque);

#endif
