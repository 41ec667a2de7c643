/*
 * The test guest's IP stack: Ethernet, ARP, IPv4 (no fragments), ICMP echo
 * both ways, UDP, a DHCP client (RFC 2131, the four-message exchange), a
 * TFTP client (RFC 1350 with the RFC 2348 blksize option when the server
 * accepts it), a UDP echo service and a UDP sink that counts frames for the
 * benchmarks. Frames arrive by polling the NICs; every length read from a
 * frame is checked against the frame before it is used, because the peer
 * (and the device model under test) may send anything.
 */
#include "guest.h"

#define ETH_HLEN 14
#define ETH_P_IP 0x0800
#define ETH_P_ARP 0x0806
#define IP_HLEN 20
#define UDP_HLEN 8
#define IPPROTO_ICMP 1
#define IPPROTO_UDP 17
#define PING_ID 0x4242

#define MAX_IFS 4
static struct netif *ifs[MAX_IFS];
static int nr_ifs;
static const uint8_t bcast_mac[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
static uint16_t udp_wait_port[MAX_IFS];

static inline uint16_t get16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static inline uint32_t get32(const uint8_t *p) { return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3]; }
static inline void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static inline void put32(uint8_t *p, uint32_t v) { p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v; }

static uint32_t csum_add(uint32_t sum, const uint8_t *p, size_t len)
{
    for (size_t i = 0; i + 1 < len; i += 2) {
        sum += get16(p + i);
    }
    if (len & 1) {
        sum += (uint32_t)p[len - 1] << 8;
    }
    return sum;
}

static uint16_t csum_fold(uint32_t sum)
{
    while (sum >> 16) {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    return (uint16_t)~sum;
}

void netif_init(struct netif *nif, struct nic *nic)
{
    memset(nif, 0, sizeof(*nif));
    nif->nic = nic;
    memcpy(nif->mac, nic->mac, 6);
    nif->ping_id = PING_ID;
}

void net_register(struct netif *nif)
{
    if (nr_ifs < MAX_IFS) {
        ifs[nr_ifs++] = nif;
    }
}

void net_unregister(struct netif *nif)
{
    for (int i = 0; i < nr_ifs; i++) {
        if (ifs[i] != nif) {
            continue;
        }
        for (int j = i; j + 1 < nr_ifs; j++) {
            ifs[j] = ifs[j + 1];
            udp_wait_port[j] = udp_wait_port[j + 1];
        }
        nr_ifs--;
        udp_wait_port[nr_ifs] = 0;
        return;
    }
}

static int if_index(struct netif *nif)
{
    for (int i = 0; i < nr_ifs; i++) {
        if (ifs[i] == nif) {
            return i;
        }
    }
    return 0;
}

/* Send a frame, padding to the Ethernet minimum; retries while the ring drains. */
static bool eth_send(struct netif *nif, uint8_t *frame, size_t len)
{
    if (len < 60) {
        memset(frame + len, 0, 60 - len);
        len = 60;
    }
    for (int i = 0; i < 100000; i++) {
        if (nif->nic->ops->tx(nif->nic, frame, len)) {
            return true;
        }
        if (i % 64 == 63) {
            udelay(10);
        }
    }
    report("warning=\"tx ring stuck on %s\"", nif->nic->model);
    return false;
}

static void eth_header(struct netif *nif, uint8_t *f, const uint8_t dst[6], uint16_t type)
{
    memcpy(f, dst, 6);
    memcpy(f + 6, nif->mac, 6);
    put16(f + 12, type);
}

/* ---- ARP ---- */

static void arp_learn(struct netif *nif, uint32_t ip, const uint8_t *mac)
{
    int slot = -1;
    for (int i = 0; i < (int)ARRAY_SIZE(nif->arp); i++) {
        if (nif->arp[i].valid && nif->arp[i].ip == ip) {
            slot = i;
            break;
        }
        if (!nif->arp[i].valid && slot < 0) {
            slot = i;
        }
    }
    if (slot < 0) {
        slot = (int)(ip % ARRAY_SIZE(nif->arp));
    }
    nif->arp[slot].ip = ip;
    memcpy(nif->arp[slot].mac, mac, 6);
    nif->arp[slot].valid = true;
}

static bool arp_lookup(struct netif *nif, uint32_t ip, uint8_t mac[6])
{
    for (size_t i = 0; i < ARRAY_SIZE(nif->arp); i++) {
        if (nif->arp[i].valid && nif->arp[i].ip == ip) {
            memcpy(mac, nif->arp[i].mac, 6);
            return true;
        }
    }
    return false;
}

static void arp_send(struct netif *nif, uint16_t op, const uint8_t *dmac, uint32_t tip, const uint8_t *tmac)
{
    uint8_t f[64];
    eth_header(nif, f, dmac, ETH_P_ARP);
    uint8_t *a = f + ETH_HLEN;
    put16(a, 1);
    put16(a + 2, ETH_P_IP);
    a[4] = 6;
    a[5] = 4;
    put16(a + 6, op);
    memcpy(a + 8, nif->mac, 6);
    put32(a + 14, nif->ip);
    memcpy(a + 18, tmac, 6);
    put32(a + 24, tip);
    eth_send(nif, f, ETH_HLEN + 28);
}

static void arp_input(struct netif *nif, const uint8_t *a, size_t len)
{
    if (len < 28 || get16(a) != 1 || get16(a + 2) != ETH_P_IP || a[4] != 6 || a[5] != 4) {
        return;
    }
    uint16_t op = get16(a + 6);
    uint32_t sip = get32(a + 14), tip = get32(a + 24);
    if (!nif->ip || tip != nif->ip) {
        return;
    }
    if (sip) {
        arp_learn(nif, sip, a + 8);
    }
    if (op == 1) {
        arp_send(nif, 2, a + 8, sip, a + 8);
    }
}

static bool arp_known(struct netif *nif)
{
    uint8_t mac[6];
    return arp_lookup(nif, nif->udp_src_ip, mac);    /* udp_src_ip doubles as the wanted IP here */
}

bool arp_resolve(struct netif *nif, uint32_t ip, uint8_t mac[6], uint64_t timeout_us)
{
    if (ip == 0xffffffffu) {
        memcpy(mac, bcast_mac, 6);
        return true;
    }
    uint32_t hop = ip;
    if (nif->mask && (ip & nif->mask) != (nif->ip & nif->mask) && nif->gw) {
        hop = nif->gw;
    }
    if (arp_lookup(nif, hop, mac)) {
        return true;
    }
    uint64_t end = now_us() + timeout_us;
    static const uint8_t zero[6];
    while (now_us() < end) {
        arp_send(nif, 1, bcast_mac, hop, zero);
        uint32_t saved = nif->udp_src_ip;
        nif->udp_src_ip = hop;
        uint64_t left = end - now_us();
        bool ok = net_wait(left < 500000 ? left : 500000, arp_known, nif);
        nif->udp_src_ip = saved;
        if (ok) {
            return arp_lookup(nif, hop, mac);
        }
    }
    return false;
}

/* ---- IPv4 ---- */

static size_t ip_header(struct netif *nif, uint8_t *ip, uint32_t dst, uint8_t proto, size_t payload)
{
    static uint16_t ident;
    ip[0] = 0x45;
    ip[1] = 0;
    put16(ip + 2, (uint16_t)(IP_HLEN + payload));
    put16(ip + 4, ident++);
    put16(ip + 6, 0x4000);     /* DF: we never fragment */
    ip[8] = 64;
    ip[9] = proto;
    put16(ip + 10, 0);
    put32(ip + 12, nif->ip);
    put32(ip + 16, dst);
    put16(ip + 10, csum_fold(csum_add(0, ip, IP_HLEN)));
    return IP_HLEN;
}

static uint16_t udp_checksum(uint32_t src, uint32_t dst, const uint8_t *udp, size_t len)
{
    uint8_t pseudo[12];
    put32(pseudo, src);
    put32(pseudo + 4, dst);
    pseudo[8] = 0;
    pseudo[9] = IPPROTO_UDP;
    put16(pseudo + 10, (uint16_t)len);
    uint16_t c = csum_fold(csum_add(csum_add(0, pseudo, 12), udp, len));
    return c ? c : 0xffff;
}

static uint8_t txframe[FRAME_MAX + 64];

bool udp_send_raw(struct netif *nif, const uint8_t dst_mac[6], uint32_t dst, uint16_t sport, uint16_t dport,
                  const void *data, size_t len)
{
    if (len > FRAME_MAX - ETH_HLEN - IP_HLEN - UDP_HLEN) {
        return false;
    }
    uint8_t *f = txframe;
    eth_header(nif, f, dst_mac, ETH_P_IP);
    uint8_t *u = f + ETH_HLEN + ip_header(nif, f + ETH_HLEN, dst, IPPROTO_UDP, UDP_HLEN + len);
    put16(u, sport);
    put16(u + 2, dport);
    put16(u + 4, (uint16_t)(UDP_HLEN + len));
    put16(u + 6, 0);
    memcpy(u + UDP_HLEN, data, len);
    put16(u + 6, udp_checksum(nif->ip, dst, u, UDP_HLEN + len));
    size_t flen = ETH_HLEN + IP_HLEN + UDP_HLEN + len;
    if (flen < 60) {
        memset(f + flen, 0, 60 - flen);
        flen = 60;
    }
    return nif->nic->ops->tx(nif->nic, f, flen);
}

bool udp_send(struct netif *nif, uint32_t dst, uint16_t sport, uint16_t dport, const void *data, size_t len)
{
    uint8_t mac[6];
    if (!arp_resolve(nif, dst, mac, 3000000)) {
        return false;
    }
    for (int i = 0; i < 100000; i++) {
        if (udp_send_raw(nif, mac, dst, sport, dport, data, len)) {
            return true;
        }
        net_poll_all();
    }
    return false;
}

static void icmp_input(struct netif *nif, const uint8_t *frame, const uint8_t *ip, size_t ihl, size_t iplen)
{
    const uint8_t *ic = ip + ihl;
    size_t len = iplen - ihl;
    if (len < 8 || csum_fold(csum_add(0, ic, len)) != 0) {
        return;
    }
    if (ic[0] == 8 && ic[1] == 0) {
        /* Echo request: answer with the same id, sequence and data. */
        if (len > FRAME_MAX - ETH_HLEN - IP_HLEN) {
            return;
        }
        static uint8_t f[FRAME_MAX + 64];
        uint32_t src = get32(ip + 12);
        eth_header(nif, f, frame + 6, ETH_P_IP);
        uint8_t *o = f + ETH_HLEN + ip_header(nif, f + ETH_HLEN, src, IPPROTO_ICMP, len);
        memcpy(o, ic, len);
        o[0] = 0;
        put16(o + 2, 0);
        put16(o + 2, csum_fold(csum_add(0, o, len)));
        eth_send(nif, f, ETH_HLEN + IP_HLEN + len);
    } else if (ic[0] == 0 && get16(ic + 4) == nif->ping_id) {
        uint16_t seq = get16(ic + 6);
        nif->ping_replies_seen[seq % 8] = (uint32_t)seq + 1;
    }
}

static void udp_input(struct netif *nif, const uint8_t *frame, const uint8_t *ip, size_t ihl, size_t iplen)
{
    const uint8_t *u = ip + ihl;
    size_t len = iplen - ihl;
    if (len < UDP_HLEN) {
        return;
    }
    size_t ulen = get16(u + 4);
    if (ulen < UDP_HLEN || ulen > len) {
        nif->rx_dropped++;
        return;
    }
    uint16_t sport = get16(u), dport = get16(u + 2);
    uint32_t src = get32(ip + 12);
    const uint8_t *data = u + UDP_HLEN;
    size_t dlen = ulen - UDP_HLEN;
    if (nif->sink_port && dport == nif->sink_port) {
        uint64_t t = now_us();
        if (!nif->sink_frames) {
            nif->sink_first_us = t;
        }
        nif->sink_last_us = t;
        nif->sink_frames++;
        nif->sink_bytes += dlen;
        return;
    }
    if (nif->echo_port && dport == nif->echo_port) {
        if (src) {
            arp_learn(nif, src, frame + 6);
        }
        bool quit = dlen >= 4 && !memcmp(data, "quit", 4);
        if (!quit) {
            nif->echoes++;
        }
        udp_send_raw(nif, frame + 6, src, dport, sport, data, dlen);
        if (quit) {
            nif->quit = true;
        }
        return;
    }
    int idx = if_index(nif);
    if (udp_wait_port[idx] && dport == udp_wait_port[idx] && !nif->udp_ready) {
        memcpy(nif->udp_buf, data, dlen);
        nif->udp_len = dlen;
        nif->udp_src_ip = src;
        nif->udp_src_port = sport;
        nif->udp_dst_port = dport;
        nif->udp_ready = true;
        if (src) {
            arp_learn(nif, src, frame + 6);
        }
        return;
    }
    nif->rx_dropped++;
}

static void ip_input(struct netif *nif, const uint8_t *frame, size_t flen)
{
    const uint8_t *ip = frame + ETH_HLEN;
    size_t len = flen - ETH_HLEN;
    if (len < IP_HLEN || (ip[0] >> 4) != 4) {
        return;
    }
    size_t ihl = (size_t)(ip[0] & 0xf) * 4;
    size_t tot = get16(ip + 2);
    if (ihl < IP_HLEN || tot < ihl || tot > len || csum_fold(csum_add(0, ip, ihl)) != 0) {
        nif->rx_dropped++;
        return;
    }
    if (get16(ip + 6) & 0x3fff) {
        nif->rx_dropped++;      /* fragments: not needed by any test */
        return;
    }
    uint32_t dst = get32(ip + 16);
    if (nif->ip && dst != nif->ip && dst != 0xffffffffu && dst != (nif->ip | ~nif->mask)) {
        return;
    }
    if (ip[9] == IPPROTO_ICMP) {
        icmp_input(nif, frame, ip, ihl, tot);
    } else if (ip[9] == IPPROTO_UDP) {
        udp_input(nif, frame, ip, ihl, tot);
    }
}

static void frame_input(struct netif *nif, const uint8_t *f, size_t len)
{
    if (len < ETH_HLEN) {
        return;
    }
    if (memcmp(f, nif->mac, 6) && memcmp(f, bcast_mac, 6)) {
        return;
    }
    uint16_t type = get16(f + 12);
    if (type == ETH_P_ARP) {
        arp_input(nif, f + ETH_HLEN, len - ETH_HLEN);
    } else if (type == ETH_P_IP) {
        ip_input(nif, f, len);
    }
}

void net_poll_all(void)
{
    static uint8_t buf[FRAME_MAX + 64];
    for (int i = 0; i < nr_ifs; i++) {
        struct netif *nif = ifs[i];
        for (int k = 0; k < 256; k++) {
            size_t n = nif->nic->ops->rx(nif->nic, buf, FRAME_MAX);
            if (!n) {
                break;
            }
            frame_input(nif, buf, n);
        }
    }
}

bool net_wait(uint64_t timeout_us, bool (*cond)(struct netif *nif), struct netif *nif)
{
    uint64_t end = now_us() + timeout_us;
    bool idle_ok = false;
    for (int i = 0; i < nr_ifs; i++) {
        idle_ok |= strcmp(ifs[i]->nic->irq_mode, "poll") != 0;
    }
    for (;;) {
        net_poll_all();
        if (cond(nif)) {
            return true;
        }
        uint64_t t = now_us();
        if (t >= end) {
            return false;
        }
        if (idle_ok) {
            /* Sleep until the NIC interrupts (or 1 ms passes). */
            cpu_idle(end - t < 1000 ? end - t : 1000);
        } else {
            cpu_relax();
        }
    }
}

static bool udp_has(struct netif *nif) { return nif->udp_ready; }

size_t udp_recv(struct netif *nif, uint16_t port, void *buf, size_t max, uint32_t *src_ip, uint16_t *src_port,
                uint64_t timeout_us)
{
    int idx = if_index(nif);
    udp_wait_port[idx] = port;
    bool ok = net_wait(timeout_us, udp_has, nif);
    udp_wait_port[idx] = 0;
    if (!ok) {
        return 0;
    }
    nif->udp_ready = false;
    size_t n = nif->udp_len < max ? nif->udp_len : max;
    memcpy(buf, nif->udp_buf, n);
    if (src_ip) {
        *src_ip = nif->udp_src_ip;
    }
    if (src_port) {
        *src_port = nif->udp_src_port;
    }
    return n;   /* an empty datagram reads as a timeout: no test sends one */
}

static uint16_t ping_wait_seq;
static bool ping_seen(struct netif *nif) { return nif->ping_replies_seen[ping_wait_seq % 8] == (uint32_t)ping_wait_seq + 1; }

bool icmp_ping(struct netif *nif, uint32_t dst, uint16_t seq, size_t payload, uint64_t timeout_us, uint64_t *rtt_us)
{
    uint8_t mac[6];
    if (payload > 1400) {
        payload = 1400;
    }
    uint64_t t0 = now_us();
    if (!arp_resolve(nif, dst, mac, timeout_us)) {
        return false;
    }
    static uint8_t f[FRAME_MAX + 64];
    eth_header(nif, f, mac, ETH_P_IP);
    uint8_t *ic = f + ETH_HLEN + ip_header(nif, f + ETH_HLEN, dst, IPPROTO_ICMP, 8 + payload);
    ic[0] = 8;
    ic[1] = 0;
    put16(ic + 2, 0);
    put16(ic + 4, nif->ping_id);
    put16(ic + 6, seq);
    for (size_t i = 0; i < payload; i++) {
        ic[8 + i] = (uint8_t)i;
    }
    put16(ic + 2, csum_fold(csum_add(0, ic, 8 + payload)));
    nif->ping_replies_seen[seq % 8] = 0;
    t0 = now_us();
    if (!eth_send(nif, f, ETH_HLEN + IP_HLEN + 8 + payload)) {
        return false;
    }
    ping_wait_seq = seq;
    bool ok = net_wait(timeout_us, ping_seen, nif);
    if (rtt_us) {
        *rtt_us = now_us() - t0;
    }
    return ok;
}

/* ---- DHCP ---- */

#define DHCP_DISCOVER 1
#define DHCP_OFFER 2
#define DHCP_REQUEST 3
#define DHCP_ACK 5
#define DHCP_NAK 6

struct dhcp_reply {
    uint8_t type;
    uint32_t yiaddr, server, mask, router, dns;
};

static size_t dhcp_build(struct netif *nif, uint8_t *p, uint32_t xid, uint8_t type, uint32_t req_ip, uint32_t server)
{
    memset(p, 0, 240);
    p[0] = 1;          /* BOOTREQUEST */
    p[1] = 1;
    p[2] = 6;
    put32(p + 4, xid);
    put16(p + 10, 0x8000);     /* replies by broadcast: we have no address yet */
    memcpy(p + 28, nif->mac, 6);
    put32(p + 236, 0x63825363);
    size_t o = 240;
    p[o++] = 53, p[o++] = 1, p[o++] = type;
    if (req_ip) {
        p[o++] = 50, p[o++] = 4;
        put32(p + o, req_ip);
        o += 4;
    }
    if (server) {
        p[o++] = 54, p[o++] = 4;
        put32(p + o, server);
        o += 4;
    }
    p[o++] = 55, p[o++] = 4, p[o++] = 1, p[o++] = 3, p[o++] = 6, p[o++] = 54;
    p[o++] = 255;
    while (o < 300) {
        p[o++] = 0;
    }
    return o;
}

static bool dhcp_parse(struct netif *nif, const uint8_t *p, size_t len, uint32_t xid, struct dhcp_reply *r)
{
    memset(r, 0, sizeof(*r));
    if (len < 240 || p[0] != 2 || get32(p + 4) != xid || memcmp(p + 28, nif->mac, 6) || get32(p + 236) != 0x63825363) {
        return false;
    }
    r->yiaddr = get32(p + 16);
    for (size_t o = 240; o < len;) {
        uint8_t code = p[o];
        if (code == 255) {
            break;
        }
        if (code == 0) {
            o++;
            continue;
        }
        if (o + 2 > len || o + 2 + p[o + 1] > len) {
            return false;
        }
        uint8_t l = p[o + 1];
        const uint8_t *v = p + o + 2;
        if (code == 53 && l >= 1) {
            r->type = v[0];
        } else if (code == 54 && l >= 4) {
            r->server = get32(v);
        } else if (code == 1 && l >= 4) {
            r->mask = get32(v);
        } else if (code == 3 && l >= 4) {
            r->router = get32(v);
        } else if (code == 6 && l >= 4) {
            r->dns = get32(v);
        }
        o += 2u + l;
    }
    return r->type != 0;
}

static bool dhcp_exchange(struct netif *nif, uint32_t xid, uint8_t type, uint32_t req_ip, uint32_t server,
                          uint8_t want, struct dhcp_reply *r)
{
    static uint8_t pkt[600];
    for (int attempt = 0; attempt < 4; attempt++) {
        size_t n = dhcp_build(nif, pkt, xid, type, req_ip, server);
        udp_send_raw(nif, bcast_mac, 0xffffffffu, 68, 67, pkt, n);
        uint64_t end = now_us() + 2000000;
        while (now_us() < end) {
            static uint8_t in[FRAME_MAX];
            size_t got = udp_recv(nif, 68, in, sizeof(in), NULL, NULL, end - now_us());
            if (got && dhcp_parse(nif, in, got, xid, r)) {
                if (r->type == want) {
                    return true;
                }
                if (r->type == DHCP_NAK) {
                    report("dhcp nak");
                    return false;
                }
            }
        }
    }
    return false;
}

bool dhcp_run(struct netif *nif, uint64_t timeout_us)
{
    (void)timeout_us;
    uint32_t xid = (uint32_t)rdtsc() ^ 0x5a5a0000u;
    struct dhcp_reply offer, ack;
    nif->ip = 0;
    if (!dhcp_exchange(nif, xid, DHCP_DISCOVER, 0, 0, DHCP_OFFER, &offer)) {
        report("dhcp error=no-offer");
        return false;
    }
    if (!dhcp_exchange(nif, xid, DHCP_REQUEST, offer.yiaddr, offer.server, DHCP_ACK, &ack)) {
        report("dhcp error=no-ack");
        return false;
    }
    nif->ip = ack.yiaddr;
    nif->mask = ack.mask ? ack.mask : 0xffffff00u;
    nif->gw = ack.router;
    nif->dns = ack.dns;
    nif->server = ack.server ? ack.server : offer.server;
    char ip[16], gw[16], mask[16], srv[16];
    fmt_ip(ip, nif->ip);
    fmt_ip(gw, nif->gw);
    fmt_ip(mask, nif->mask);
    fmt_ip(srv, nif->server);
    report("dhcp ip=%s mask=%s gw=%s server=%s", ip, mask, gw, srv);
    return true;
}

/* ---- TFTP ---- */

#define TFTP_RRQ 1
#define TFTP_DATA 3
#define TFTP_ACK 4
#define TFTP_ERROR 5
#define TFTP_OACK 6

static size_t strnlen_bounded(const char *s, size_t max)
{
    size_t n = 0;
    while (n < max && s[n]) {
        n++;
    }
    return n;
}

bool tftp_get(struct netif *nif, uint32_t server, const char *file, uint64_t *size, uint32_t *crc, uint64_t timeout_us)
{
    uint64_t deadline = now_us() + timeout_us;
    uint16_t lport = (uint16_t)(20000 + rdtsc() % 20000);
    size_t blksize = 512;
    uint64_t want_blk = cmdline_uint("blksize", 1428);
    static uint8_t req[600], ack[4], in[FRAME_MAX];
    size_t rl = 0;
    put16(req, TFTP_RRQ);
    rl = 2;
    size_t fl = strlen(file);
    if (fl > 400) {
        return false;
    }
    memcpy(req + rl, file, fl + 1);
    rl += fl + 1;
    memcpy(req + rl, "octet", 6);
    rl += 6;
    if (want_blk && want_blk != 512) {
        char num[16];
        snprintf(num, sizeof(num), "%lu", want_blk);
        memcpy(req + rl, "blksize", 8);
        rl += 8;
        memcpy(req + rl, num, strlen(num) + 1);
        rl += strlen(num) + 1;
    }
    const uint8_t *last = req;
    size_t last_len = rl;
    uint16_t dport = 69, tid = 0;
    uint16_t expect = 1;
    uint64_t total = 0;
    uint32_t c = 0;
    int retries = 0;
    udp_send(nif, server, lport, dport, last, last_len);
    while (now_us() < deadline) {
        uint32_t src;
        uint16_t sport;
        size_t n = udp_recv(nif, lport, in, sizeof(in), &src, &sport, 1000000);
        if (!n) {
            if (++retries > 8) {
                report("tftp error=timeout block=%u", expect);
                return false;
            }
            udp_send(nif, server, lport, tid ? tid : dport, last, last_len);
            continue;
        }
        if (src != server || n < 4 || (tid && sport != tid)) {
            continue;
        }
        tid = sport;
        uint16_t op = get16(in);
        if (op == TFTP_ERROR) {
            in[n < sizeof(in) ? n : sizeof(in) - 1] = 0;
            report("tftp error=server code=%u msg=\"%s\"", get16(in + 2), (char *)in + 4);
            return false;
        }
        if (op == TFTP_OACK) {
            /* Options accepted: read back blksize, then ACK block 0. */
            for (size_t o = 2; o < n;) {
                const char *k = (const char *)in + o;
                size_t kl = strnlen_bounded(k, n - o);
                if (o + kl + 1 >= n) {
                    break;
                }
                const char *v = k + kl + 1;
                size_t vl = strnlen_bounded(v, n - o - kl - 1);
                if (!strcmp(k, "blksize")) {
                    blksize = (size_t)parse_uint(v, NULL);
                }
                o += kl + 1 + vl + 1;
            }
            if (blksize < 8 || blksize > 1468) {
                report("tftp error=bad-oack-blksize %zu", blksize);
                return false;
            }
            put16(ack, TFTP_ACK);
            put16(ack + 2, 0);
            last = ack;
            last_len = 4;
            udp_send(nif, server, lport, tid, ack, 4);
            continue;
        }
        if (op != TFTP_DATA) {
            continue;
        }
        uint16_t blk = get16(in + 2);
        size_t dl = n - 4;
        if (blk == expect) {
            if (dl > blksize) {
                report("tftp error=oversized-block len=%zu blksize=%zu", dl, blksize);
                return false;
            }
            c = crc32_update(c, in + 4, dl);
            total += dl;
            retries = 0;
            put16(ack, TFTP_ACK);
            put16(ack + 2, blk);
            last = ack;
            last_len = 4;
            udp_send(nif, server, lport, tid, ack, 4);
            expect++;
            if (dl < blksize) {
                *size = total;
                *crc = c;
                report("tftp blksize=%zu blocks=%u", blksize, (unsigned)(total / blksize + 1));
                return true;
            }
        } else if ((uint16_t)(blk + 1) == expect) {
            udp_send(nif, server, lport, tid, ack, 4);   /* our ACK was lost: repeat it */
        }
    }
    report("tftp error=deadline bytes=%lu", total);
    return false;
}
