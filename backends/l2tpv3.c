/*
 * The l2tpv3 netdev (`-netdev l2tpv3,src=,dst=,txsession=,...`): Ethernet
 * frames carried in static L2TPv3 sessions over UDP or raw IP (protocol
 * 115), framed exactly as QEMU's l2tpv3 netdev frames them so the two
 * interoperate. The header build/parse functions are pure (declared in
 * l2tpv3.h) so they can be fuzzed; the socket side receives in batches with
 * recvmmsg, pauses while the peer is busy and resumes from where it stopped
 * on the sent callback; sends that meet EAGAIN stay queued until POLLOUT.
 * Datagrams that fail any check are dropped and counted (one warning per
 * netdev, the rest under -d trace_net), never passed on.
 */
#include "l2tpv3.h"
#include "qnic/log.h"
#include "qnic/mainloop.h"
#include "qnic/net.h"

#include <limits.h>
#include <stdio.h>
#include <netdb.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>

#ifndef IPPROTO_L2TP
#define IPPROTO_L2TP 115
#endif

/* ---- pure framing ---- */

static size_t session_off(const QnicL2tpv3Params *p)
{
    return p->udp ? 4 : 0;
}

static size_t cookie_len(const QnicL2tpv3Params *p)
{
    return p->cookie ? (p->cookie64 ? 8 : 4) : 0;
}

size_t qnic_l2tpv3_header_len(const QnicL2tpv3Params *p)
{
    return session_off(p) + 4 + cookie_len(p) + (p->counter ? 4 : 0) + p->offset;
}

size_t qnic_l2tpv3_build_header(const QnicL2tpv3Params *p, uint32_t counter,
                                uint8_t *buf, size_t size)
{
    size_t len, off;

    if (p->offset > QNIC_L2TPV3_MAX_OFFSET) {
        return 0;
    }
    len = qnic_l2tpv3_header_len(p);
    if (size < len) {
        return 0;
    }
    memset(buf, 0, len);
    off = 0;
    if (p->udp) {
        qnic_st32be(buf, QNIC_L2TPV3_UDP_DATA_WORD);
        off = 4;
    }
    qnic_st32be(buf + off, p->tx_session);
    off += 4;
    if (p->cookie) {
        if (p->cookie64) {
            qnic_st32be(buf + off, (uint32_t)(p->tx_cookie >> 32));
            qnic_st32be(buf + off + 4, (uint32_t)p->tx_cookie);
            off += 8;
        } else {
            qnic_st32be(buf + off, (uint32_t)p->tx_cookie);
            off += 4;
        }
    }
    if (p->counter) {
        qnic_st32be(buf + off, p->pin_counter ? 0 : counter);
    }
    return len;
}

QnicL2tpv3Error qnic_l2tpv3_parse(const QnicL2tpv3Params *p, const uint8_t *pkt,
                                  size_t len, size_t *frame_off, size_t *frame_len)
{
    size_t base = 0, off, hlen;

    if (p->offset > QNIC_L2TPV3_MAX_OFFSET) {
        return QNIC_L2TPV3_ERR_PARAMS;
    }
    if (!p->udp && !p->ipv6) {
        /* A raw IPv4 socket delivers the IP header too. Trust nothing in
         * it: the header length and the total length bound what follows. */
        size_t ihl, tot;

        if (len < 20) {
            return QNIC_L2TPV3_ERR_SHORT;
        }
        ihl = (size_t)(pkt[0] & 0x0f) * 4;
        tot = qnic_ld16be(pkt + 2);
        if ((pkt[0] >> 4) != 4 || ihl < 20 || ihl > len || pkt[9] != IPPROTO_L2TP) {
            return QNIC_L2TPV3_ERR_IP;
        }
        if (tot < ihl || tot > len) {
            return QNIC_L2TPV3_ERR_IP;
        }
        len = tot;          /* ignore trailing bytes past the IP packet */
        base = ihl;
    }
    hlen = qnic_l2tpv3_header_len(p);
    if (len - base < hlen) {
        return QNIC_L2TPV3_ERR_SHORT;
    }
    off = base;
    if (p->udp) {
        uint16_t flags = qnic_ld16be(pkt + off);
        /* T bit clear (data, not control) and version 3. */
        if ((flags & 0x8000) || (flags & 0x000f) != 3) {
            return QNIC_L2TPV3_ERR_DATA_WORD;
        }
        off += 4;
    }
    if (qnic_ld32be(pkt + off) != p->rx_session) {
        return QNIC_L2TPV3_ERR_SESSION;
    }
    off += 4;
    if (p->cookie) {
        uint64_t c;
        if (p->cookie64) {
            c = ((uint64_t)qnic_ld32be(pkt + off) << 32) | qnic_ld32be(pkt + off + 4);
        } else {
            c = qnic_ld32be(pkt + off);
        }
        if (c != (p->cookie64 ? p->rx_cookie : (p->rx_cookie & 0xffffffffu))) {
            return QNIC_L2TPV3_ERR_COOKIE;
        }
    }
    /* The counter is not checked (no sequencing, as in QEMU); the offset
     * padding is skipped unread. */
    off = base + hlen;
    if (len - off < QNIC_L2TPV3_MIN_FRAME) {
        return QNIC_L2TPV3_ERR_RUNT;
    }
    *frame_off = off;
    *frame_len = len - off;
    return QNIC_L2TPV3_OK;
}

const char *qnic_l2tpv3_strerror(QnicL2tpv3Error e)
{
    switch (e) {
    case QNIC_L2TPV3_OK:
        return "ok";
    case QNIC_L2TPV3_ERR_SHORT:
        return "datagram shorter than the L2TPv3 header";
    case QNIC_L2TPV3_ERR_IP:
        return "malformed IPv4 header";
    case QNIC_L2TPV3_ERR_DATA_WORD:
        return "not an L2TPv3 data message (T bit or version)";
    case QNIC_L2TPV3_ERR_SESSION:
        return "session id mismatch";
    case QNIC_L2TPV3_ERR_COOKIE:
        return "cookie mismatch";
    case QNIC_L2TPV3_ERR_RUNT:
        return "payload shorter than an Ethernet header";
    case QNIC_L2TPV3_ERR_PARAMS:
        return "bad parameters";
    }
    return "unknown error";
}

/* ---- the netdev ---- */

#define L2TP_POOL 32                 /* datagrams per recvmmsg */
#define L2TP_BUF_SIZE 65536          /* largest IP datagram */
#define L2TP_READ_ROUNDS 4           /* recvmmsg calls per wakeup */
#define L2TP_STACK_IOV 64

typedef struct L2tpState {
    QnicNetClient *nc;
    QnicL2tpv3Params p;
    int fd;
    QnicFdWatch *watch;
    bool read_poll, write_poll;
    struct sockaddr_storage dst;
    socklen_t dst_len;
    uint32_t counter;
    uint8_t tx_header[QNIC_L2TPV3_MAX_HEADER];
    size_t tx_header_len;
    uint8_t *pool;                   /* L2TP_POOL * L2TP_BUF_SIZE */
    struct mmsghdr msgs[L2TP_POOL];
    struct iovec iovs[L2TP_POOL];
    int rx_count, rx_head;           /* received / next to deliver */
    uint64_t rx_bad;
    char *desc;
} L2tpState;

static void l2tp_update_watch(L2tpState *s)
{
    if (s->watch) {
        qnic_fd_watch_set(s->watch, (s->read_poll ? G_IO_IN : 0) |
                                    (s->write_poll ? G_IO_OUT : 0));
    }
}

static void l2tp_read_poll(L2tpState *s, bool on)
{
    if (s->read_poll != on) {
        s->read_poll = on;
        l2tp_update_watch(s);
    }
}

static void l2tp_write_poll(L2tpState *s, bool on)
{
    if (s->write_poll != on) {
        s->write_poll = on;
        l2tp_update_watch(s);
    }
}

static void l2tp_send_completed(QnicNetClient *nc, ssize_t ret);

/* Deliver received datagrams from rx_head on; stop at the first one the
 * peer queued (it holds a copy) and resume there on the sent callback. */
static void l2tp_deliver(L2tpState *s)
{
    while (s->rx_head < s->rx_count) {
        int i = s->rx_head++;
        const uint8_t *pkt = s->iovs[i].iov_base;
        size_t len = s->msgs[i].msg_len, off = 0, flen = 0;
        QnicL2tpv3Error e;

        if (s->msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
            e = QNIC_L2TPV3_ERR_SHORT;   /* counted below as malformed */
            qnic_log(QNIC_LOG_TRACE_NET, "l2tpv3 %s: truncated datagram dropped\n", s->desc);
            s->rx_bad++;
            continue;
        }
        e = qnic_l2tpv3_parse(&s->p, pkt, len, &off, &flen);
        if (e != QNIC_L2TPV3_OK) {
            if (s->rx_bad++ == 0) {
                qnic_warn("l2tpv3 %s: dropping a %zu-byte datagram: %s "
                          "(further drops are counted, see -d trace_net)",
                          s->desc, len, qnic_l2tpv3_strerror(e));
            } else {
                qnic_log(QNIC_LOG_TRACE_NET, "l2tpv3 %s: dropped %zu bytes: %s\n",
                         s->desc, len, qnic_l2tpv3_strerror(e));
            }
            continue;
        }
        struct iovec frame = { .iov_base = (void *)(pkt + off), .iov_len = flen };
        if (qnic_net_send_iov(s->nc, &frame, 1, l2tp_send_completed) == 0) {
            l2tp_read_poll(s, false);
            return;
        }
    }
    s->rx_head = s->rx_count = 0;
}

static void l2tp_send_completed(QnicNetClient *nc, ssize_t ret)
{
    L2tpState *s = nc->opaque;

    if (!s) {
        return;
    }
    l2tp_read_poll(s, true);
    l2tp_deliver(s);
}

static void l2tp_readable(L2tpState *s)
{
    for (int round = 0; round < L2TP_READ_ROUNDS && s->read_poll; round++) {
        int n;

        if (s->rx_head < s->rx_count) {
            l2tp_deliver(s);
            continue;
        }
        for (int i = 0; i < L2TP_POOL; i++) {
            s->iovs[i].iov_base = s->pool + (size_t)i * L2TP_BUF_SIZE;
            s->iovs[i].iov_len = L2TP_BUF_SIZE;
            memset(&s->msgs[i], 0, sizeof(s->msgs[i]));
            s->msgs[i].msg_hdr.msg_iov = &s->iovs[i];
            s->msgs[i].msg_hdr.msg_iovlen = 1;
        }
        do {
            n = recvmmsg(s->fd, s->msgs, L2TP_POOL, MSG_DONTWAIT, NULL);
        } while (n < 0 && errno == EINTR);
        if (n <= 0) {
            break;
        }
        s->rx_head = 0;
        s->rx_count = n;
        l2tp_deliver(s);
        if (n < L2TP_POOL) {
            break;
        }
    }
}

static void l2tp_fd_event(void *opaque, int fd, GIOCondition cond)
{
    L2tpState *s = opaque;

    if ((cond & G_IO_OUT) && s->write_poll) {
        l2tp_write_poll(s, false);
        qnic_net_flush_queued(s->nc);
    }
    if ((cond & (G_IO_IN | G_IO_ERR | G_IO_HUP)) && s->read_poll) {
        l2tp_readable(s);
    }
}

static ssize_t l2tp_receive_iov(QnicNetClient *nc, const struct iovec *iov, int iovcnt)
{
    L2tpState *s = nc->opaque;
    struct iovec stack_iov[L2TP_STACK_IOV + 1];
    g_autofree struct iovec *heap_iov = NULL;
    struct iovec *v = stack_iov;
    struct msghdr msg = { 0 };
    size_t size;
    ssize_t ret;

    if (!s) {
        return -EIO;
    }
    if (iovcnt < 0 || iovcnt >= IOV_MAX) {
        return -EINVAL;
    }
    size = qnic_iov_size(iov, iovcnt);
    if (iovcnt > L2TP_STACK_IOV) {
        heap_iov = g_new(struct iovec, iovcnt + 1);
        v = heap_iov;
    }
    /* The counter advances per frame sent, so the header is rebuilt. */
    if (s->p.counter && !s->p.pin_counter) {
        qnic_l2tpv3_build_header(&s->p, s->counter + 1, s->tx_header, sizeof(s->tx_header));
    }
    v[0].iov_base = s->tx_header;
    v[0].iov_len = s->tx_header_len;
    memcpy(&v[1], iov, iovcnt * sizeof(*iov));
    msg.msg_name = &s->dst;
    msg.msg_namelen = s->dst_len;
    msg.msg_iov = v;
    msg.msg_iovlen = iovcnt + 1;
    do {
        ret = sendmsg(s->fd, &msg, MSG_DONTWAIT);
    } while (ret < 0 && errno == EINTR);
    if (ret < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
            l2tp_write_poll(s, true);
            return 0;
        }
        qnic_log(QNIC_LOG_TRACE_NET, "l2tpv3 %s: send of %zu bytes failed: %s\n",
                 s->desc, size, g_strerror(errno));
        return -errno;
    }
    s->counter++;
    return size ? (ssize_t)size : 1;
}

static const QnicNetClientOps l2tp_ops = {
    .kind = QNIC_NET_CLIENT_L2TPV3,
    .receive_iov = l2tp_receive_iov,
};

static bool l2tp_resolve(const char *host, const char *port, bool ipv6, bool udp,
                         const char *what, struct sockaddr_storage *ss, socklen_t *len,
                         GError **errp)
{
    struct addrinfo hints = { 0 }, *res = NULL;
    int r;

    hints.ai_family = ipv6 ? AF_INET6 : AF_INET;
    hints.ai_socktype = udp ? SOCK_DGRAM : SOCK_RAW;
    hints.ai_protocol = udp ? IPPROTO_UDP : IPPROTO_L2TP;
    hints.ai_flags = AI_NUMERICSERV;
    r = getaddrinfo(host, port, &hints, &res);
    if (r != 0 || !res) {
        g_set_error(errp, QNIC_ERROR, QNIC_ERROR_INVALID,
                    "l2tpv3: cannot resolve %s address '%s'%s%s: %s", what, host,
                    port ? " port " : "", port ? port : "",
                    r == EAI_SYSTEM ? g_strerror(errno) : gai_strerror(r));
        if (res) {
            freeaddrinfo(res);
        }
        return false;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return true;
}

static void l2tp_free(L2tpState *s)
{
    if (!s) {
        return;
    }
    if (s->nc) {
        s->nc->opaque = NULL;
    }
    qnic_fd_watch_remove(s->watch);
    if (s->fd >= 0) {
        close(s->fd);
    }
    g_free(s->pool);
    g_free(s->desc);
    g_free(s);
}

/* A session id option, which must fit in 32 bits. */
static bool l2tp_get_session(QnicOpts *opts, const char *key, uint32_t dflt,
                             uint32_t *out, GError **errp)
{
    uint64_t v = qnic_opts_get_uint(opts, key, dflt);

    if (v > UINT32_MAX) {
        g_set_error(errp, QNIC_ERROR, QNIC_ERROR_INVALID,
                    "l2tpv3: %s must fit in 32 bits", key);
        return false;
    }
    *out = qnic_opts_is_set(opts, key) ? (uint32_t)v : dflt;
    return true;
}

/* txcookie= and rxcookie=: both or neither, 64-bit only with cookie64=on. */
static bool l2tp_parse_cookies(QnicOpts *opts, QnicL2tpv3Params *p, GError **errp)
{
    if (!qnic_opts_is_set(opts, "txcookie") && !qnic_opts_is_set(opts, "rxcookie")) {
        return true;
    }
    if (!qnic_opts_is_set(opts, "txcookie") || !qnic_opts_is_set(opts, "rxcookie")) {
        g_set_error(errp, QNIC_ERROR, QNIC_ERROR_INVALID,
                    "l2tpv3: cookie specified but not both rx and tx "
                    "(give txcookie= and rxcookie=)");
        return false;
    }
    p->cookie = true;
    p->tx_cookie = qnic_opts_get_uint(opts, "txcookie", 0);
    p->rx_cookie = qnic_opts_get_uint(opts, "rxcookie", 0);
    if (!p->cookie64 && (p->tx_cookie > UINT32_MAX || p->rx_cookie > UINT32_MAX)) {
        g_set_error(errp, QNIC_ERROR, QNIC_ERROR_INVALID,
                    "l2tpv3: a cookie wider than 32 bits needs cookie64=on");
        return false;
    }
    return true;
}

/* The header format and sessions (everything but the addresses). */
static bool l2tp_parse_params(QnicOpts *opts, QnicL2tpv3Params *p, GError **errp)
{
    uint64_t v;

    if (!qnic_opts_is_set(opts, "txsession")) {
        g_set_error(errp, QNIC_ERROR, QNIC_ERROR_INVALID,
                    "l2tpv3: Parameter 'txsession' is missing");
        return false;
    }
    p->udp = qnic_opts_get_bool(opts, "udp", false);
    p->ipv6 = qnic_opts_get_bool(opts, "ipv6", false);
    p->cookie64 = qnic_opts_get_bool(opts, "cookie64", false);
    p->pin_counter = qnic_opts_get_bool(opts, "pincounter", false);
    p->counter = qnic_opts_get_bool(opts, "counter", false) || p->pin_counter;
    if (!l2tp_get_session(opts, "txsession", 0, &p->tx_session, errp) ||
        !l2tp_get_session(opts, "rxsession", p->tx_session, &p->rx_session, errp) ||
        !l2tp_parse_cookies(opts, p, errp)) {
        return false;
    }
    v = qnic_opts_get_uint(opts, "offset", 0);
    if (v > QNIC_L2TPV3_MAX_OFFSET) {
        g_set_error(errp, QNIC_ERROR, QNIC_ERROR_INVALID,
                    "l2tpv3: offset %" G_GUINT64_FORMAT " is larger than %d",
                    v, QNIC_L2TPV3_MAX_OFFSET);
        return false;
    }
    p->offset = (uint32_t)v;
    return true;
}

/* Resolve both ends, open the raw IP or UDP socket and bind it to the
 * source. */
static bool l2tp_open(L2tpState *s, const char *src, const char *srcport,
                      const char *dst, const char *dstport, GError **errp)
{
    const QnicL2tpv3Params *p = &s->p;
    struct sockaddr_storage src_addr;
    socklen_t src_len;

    if (!l2tp_resolve(src, srcport, p->ipv6, p->udp, "source", &src_addr, &src_len, errp) ||
        !l2tp_resolve(dst, dstport, p->ipv6, p->udp, "destination", &s->dst, &s->dst_len, errp)) {
        return false;
    }
    s->fd = socket(p->ipv6 ? AF_INET6 : AF_INET,
                   (p->udp ? SOCK_DGRAM : SOCK_RAW) | SOCK_CLOEXEC | SOCK_NONBLOCK,
                   p->udp ? IPPROTO_UDP : IPPROTO_L2TP);
    if (s->fd < 0) {
        qnic_error_setg_errno(errp, errno, "l2tpv3: could not create the %s socket%s",
                              p->udp ? "UDP" : "raw IP (protocol 115)",
                              p->udp ? "" : " (needs CAP_NET_RAW)");
        return false;
    }
    if (bind(s->fd, (struct sockaddr *)&src_addr, src_len) < 0) {
        qnic_error_setg_errno(errp, errno, "l2tpv3: could not bind to %s%s%s", src,
                              p->udp ? " port " : "", p->udp ? srcport : "");
        return false;
    }
    return true;
}

static bool l2tp_init(QnicNetdev *nd, QnicOpts *opts, GError **errp)
{
    const char *src = qnic_opts_get(opts, "src");
    const char *dst = qnic_opts_get(opts, "dst");
    const char *srcport = qnic_opts_get(opts, "srcport");
    const char *dstport = qnic_opts_get(opts, "dstport");
    L2tpState *s;
    QnicL2tpv3Params p = { 0 };

    if (!src || !dst) {
        g_set_error(errp, QNIC_ERROR, QNIC_ERROR_INVALID,
                    "l2tpv3: Parameter '%s' is missing", src ? "dst" : "src");
        return false;
    }
    if (!l2tp_parse_params(opts, &p, errp)) {
        return false;
    }
    if (p.udp) {
        if (!srcport || !dstport || !srcport[0] || !dstport[0]) {
            g_set_error(errp, QNIC_ERROR, QNIC_ERROR_INVALID,
                        "l2tpv3: need both srcport= and dstport= for udp");
            return false;
        }
    } else {
        srcport = dstport = NULL;
    }

    s = g_new0(L2tpState, 1);
    s->fd = -1;
    s->p = p;
    if (!l2tp_open(s, src, srcport, dst, dstport, errp)) {
        l2tp_free(s);
        return false;
    }
    s->tx_header_len = qnic_l2tpv3_build_header(&s->p, 0, s->tx_header, sizeof(s->tx_header));
    s->pool = g_malloc((size_t)L2TP_POOL * L2TP_BUF_SIZE);
    s->desc = g_strdup(nd->id ? nd->id : "l2tpv3");
    s->nc = qnic_net_client_new(nd->be, &l2tp_ops, "l2tpv3", nd->id, s);
    snprintf(s->nc->info_str, sizeof(s->nc->info_str), "l2tpv3: %s %s%s%s -> %s%s%s",
             p.udp ? "udp" : "ip", src, p.udp ? ":" : "", p.udp ? srcport : "",
             dst, p.udp ? ":" : "", p.udp ? dstport : "");
    s->read_poll = true;
    s->watch = qnic_fd_watch_add(s->fd, G_IO_IN, l2tp_fd_event, s);
    nd->state = s;
    nd->queues = 1;
    nd->ncs = g_new0(QnicNetClient *, 1);
    nd->ncs[0] = s->nc;
    return true;
}

static void l2tp_cleanup(QnicNetdev *nd)
{
    l2tp_free(nd->state);
    nd->state = NULL;
}

static const QnicNetdevClass l2tpv3_netdev_class = {
    .type = "l2tpv3",
    .init = l2tp_init,
    .cleanup = l2tp_cleanup,
};
QNIC_NETDEV_REGISTER(l2tpv3_netdev_class)
