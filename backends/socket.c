/*
 * `-netdev socket` and the socket engine that `stream` and `dgram` share.
 * The engine moves frames between one net client and one fd: on a stream
 * each frame carries a 4-byte big-endian length prefix, on a datagram
 * socket each datagram is one frame (QEMU's wire formats, so qnic and QEMU
 * interconnect). The peer is untrusted: an oversized length, a frame cut by
 * a disconnect or any read error drops that connection with a log line, and
 * a listening backend accepts the next peer. When the NIC cannot take a
 * frame (send returned 0) reading stops until the NIC's completion callback
 * fires; when the socket cannot take a frame the NIC's frames wait.
 */
#include "net/net-internal.h"
#include "qnic/mainloop.h"
#include "qnic/log.h"
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <unistd.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <glib-unix.h>

unsigned qnic_sock_peer_drops(QnicBackends *be)
{
    return be->sock_peer_drops;
}

#define SOCK_READ_CHUNK 65536

struct QnicSockBackend {
    QnicNetdev *nd;
    QnicNetClient *nc;
    int fd;                      /* data socket, -1 while none */
    int listen_fd;
    bool is_dgram;
    QnicFdWatch *watch;
    QnicFdWatch *listen_watch;
    bool read_paused;            /* the NIC is full; its callback resumes us */
    bool want_write;             /* the socket was full */
    /* stream receive state: header bytes, then the frame */
    uint8_t hdr[4];
    uint32_t hdr_got;
    bool in_frame;
    uint32_t frame_len, frame_got;
    uint8_t *frame;              /* QNIC_SOCK_MAX_FRAME */
    uint8_t *chunk;              /* SOCK_READ_CHUNK */
    /* stream transmit backlog: the rest of a frame the socket cut short */
    uint8_t *txbuf;
    size_t tx_len, tx_off;
    /* datagram destination */
    struct sockaddr_storage dest;
    socklen_t dest_len;
    /* client mode */
    struct sockaddr_storage conn_addr;
    socklen_t conn_len;
    int reconnect_s;
    GSource *reconnect_src;
    /* told when a stream peer comes and goes */
    QnicSockConnFunc *conn_notify;
    void *conn_opaque;
};

static void sock_update_watch(QnicSockBackend *sb)
{
    GIOCondition cond = 0;

    if (sb->fd < 0) {
        return;
    }
    if (!sb->read_paused) {
        cond |= G_IO_IN;
    }
    if (sb->want_write) {
        cond |= G_IO_OUT;
    }
    qnic_fd_watch_set(sb->watch, cond);
}

static void sock_schedule_reconnect(QnicSockBackend *sb);

static void sock_close_data(QnicSockBackend *sb)
{
    if (sb->watch) {
        qnic_fd_watch_remove(sb->watch);
        sb->watch = NULL;
    }
    if (sb->fd >= 0) {
        close(sb->fd);
        sb->fd = -1;
    }
    sb->hdr_got = 0;
    sb->in_frame = false;
    sb->frame_len = sb->frame_got = 0;
    sb->tx_len = sb->tx_off = 0;
    sb->read_paused = false;
    sb->want_write = false;
}

/* The peer misbehaved or left: forget it, log why, take the next one. */
static void sock_drop_peer(QnicSockBackend *sb, const char *why)
{
    qnic_warn_ratelimited("netdev %s: %s; connection dropped", sb->nd->id, why);
    sb->nd->be->sock_peer_drops++;
    sock_close_data(sb);
    if (sb->conn_notify) {
        sb->conn_notify(sb->conn_opaque, -1);
    }
    if (sb->listen_watch) {
        qnic_fd_watch_set(sb->listen_watch, G_IO_IN);
    } else if (sb->reconnect_s > 0) {
        sock_schedule_reconnect(sb);
    }
    /* Frames the NIC queued for us are dropped now (no peer). */
    if (sb->nc->receive_disabled) {
        qnic_net_flush_queued(sb->nc);
    }
}

static void sock_sent_cb(QnicNetClient *nc, ssize_t ret)
{
    QnicSockBackend *sb = nc->opaque;

    if (sb->read_paused) {
        sb->read_paused = false;
        sock_update_watch(sb);
    }
}

static void sock_deliver(QnicSockBackend *sb, const uint8_t *buf, size_t len)
{
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };

    if (qnic_net_send_iov(sb->nc, &iov, 1, sock_sent_cb) == 0) {
        /* Queued at the NIC: stop reading until its callback. The rest of
         * what we already read still goes through (queued with callbacks,
         * bounded by one read chunk). */
        sb->read_paused = true;
    }
}

/* Returns false when the connection was dropped. */
static bool sock_stream_parse(QnicSockBackend *sb, const uint8_t *p, size_t n)
{
    while (n > 0) {
        if (!sb->in_frame) {
            size_t take = MIN(n, 4 - sb->hdr_got);
            memcpy(sb->hdr + sb->hdr_got, p, take);
            sb->hdr_got += take;
            p += take;
            n -= take;
            if (sb->hdr_got < 4) {
                break;
            }
            sb->hdr_got = 0;
            sb->frame_len = qnic_ld32be(sb->hdr);
            sb->frame_got = 0;
            if (sb->frame_len > QNIC_SOCK_MAX_FRAME) {
                g_autofree char *why = g_strdup_printf(
                    "peer sent a frame length of %u bytes (max %u)",
                    sb->frame_len, QNIC_SOCK_MAX_FRAME);
                sock_drop_peer(sb, why);
                return false;
            }
            sb->in_frame = sb->frame_len > 0;
            continue;
        }
        size_t take = MIN(n, sb->frame_len - sb->frame_got);
        memcpy(sb->frame + sb->frame_got, p, take);
        sb->frame_got += take;
        p += take;
        n -= take;
        if (sb->frame_got == sb->frame_len) {
            sb->in_frame = false;
            sock_deliver(sb, sb->frame, sb->frame_len);
            if (sb->fd < 0) {
                return false;
            }
        }
    }
    return true;
}

static void sock_read_stream(QnicSockBackend *sb)
{
    ssize_t n;

    n = recv(sb->fd, sb->chunk, SOCK_READ_CHUNK, MSG_DONTWAIT);
    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) {
            return;
        }
        g_autofree char *why = g_strdup_printf("read error: %s", g_strerror(errno));
        sock_drop_peer(sb, why);
        return;
    }
    if (n == 0) {
        if (sb->in_frame || sb->hdr_got) {
            g_autofree char *why = g_strdup_printf(
                "peer disconnected in the middle of a frame (%u of %u bytes)",
                sb->in_frame ? sb->frame_got : sb->hdr_got, sb->in_frame ? sb->frame_len : 4);
            sock_drop_peer(sb, why);
        } else {
            sock_drop_peer(sb, "peer disconnected");
        }
        return;
    }
    if (sock_stream_parse(sb, sb->chunk, n)) {
        sock_update_watch(sb);
    }
}

static void sock_read_dgram(QnicSockBackend *sb)
{
    ssize_t n;

    n = recv(sb->fd, sb->frame, QNIC_SOCK_MAX_FRAME, MSG_DONTWAIT | MSG_TRUNC);
    if (n < 0) {
        if (errno != EAGAIN && errno != EINTR) {
            /* ICMP errors (ECONNREFUSED) surface here; the socket stays. */
            qnic_log(QNIC_LOG_TRACE_NET, "netdev %s: recv: %s", sb->nd->id, g_strerror(errno));
        }
        return;
    }
    if (n > QNIC_SOCK_MAX_FRAME) {
        qnic_warn_ratelimited("netdev %s: dropping a %zd-byte datagram (max %u)", sb->nd->id,
                              n, QNIC_SOCK_MAX_FRAME);
        return;
    }
    if (n > 0) {
        sock_deliver(sb, sb->frame, n);
    }
    sock_update_watch(sb);
}

static void sock_flush_tx(QnicSockBackend *sb)
{
    while (sb->tx_off < sb->tx_len) {
        ssize_t n = send(sb->fd, sb->txbuf + sb->tx_off, sb->tx_len - sb->tx_off,
                         MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && errno == EAGAIN) {
            return;
        }
        if (n <= 0) {
            g_autofree char *why = g_strdup_printf("write error: %s", g_strerror(errno));
            sock_drop_peer(sb, why);
            return;
        }
        sb->tx_off += n;
    }
    sb->tx_len = sb->tx_off = 0;
    sb->want_write = false;
    sock_update_watch(sb);
    qnic_net_flush_queued(sb->nc);
}

static void sock_fd_event(void *opaque, int fd, GIOCondition cond)
{
    QnicSockBackend *sb = opaque;

    if (cond & G_IO_OUT) {
        if (sb->is_dgram) {
            sb->want_write = false;
            sock_update_watch(sb);
            qnic_net_flush_queued(sb->nc);
        } else {
            sock_flush_tx(sb);
        }
        if (sb->fd < 0) {
            return;
        }
    }
    if (cond & (G_IO_IN | G_IO_HUP | G_IO_ERR)) {
        if (sb->is_dgram) {
            sock_read_dgram(sb);
        } else {
            sock_read_stream(sb);
        }
    }
}

static ssize_t sock_receive_iov(QnicNetClient *nc, const struct iovec *iov, int iovcnt)
{
    QnicSockBackend *sb = nc->opaque;
    size_t len = qnic_iov_size(iov, iovcnt);
    struct msghdr msg = { 0 };
    ssize_t n;

    if (sb->fd < 0) {
        return len;     /* no peer: the frame leaves into nothing */
    }
    if (sb->is_dgram) {
        msg.msg_iov = (struct iovec *)iov;
        msg.msg_iovlen = iovcnt;
        if (sb->dest_len) {
            msg.msg_name = &sb->dest;
            msg.msg_namelen = sb->dest_len;
        }
        n = sendmsg(sb->fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && errno == EAGAIN) {
            sb->want_write = true;
            sock_update_watch(sb);
            return 0;
        }
        if (n < 0) {
            qnic_log(QNIC_LOG_TRACE_NET, "netdev %s: sendmsg: %s", sb->nd->id,
                     g_strerror(errno));
        }
        return len;
    }
    if (sb->tx_off < sb->tx_len) {
        return 0;      /* the previous frame is still going out */
    }
    if (len > UINT32_MAX) {
        return len;
    }
    uint8_t hdr[4];
    qnic_st32be(hdr, (uint32_t)len);
    g_autofree struct iovec *v = g_new(struct iovec, iovcnt + 1);
    v[0].iov_base = hdr;
    v[0].iov_len = 4;
    memcpy(v + 1, iov, sizeof(*iov) * iovcnt);
    msg.msg_iov = v;
    msg.msg_iovlen = iovcnt + 1;
    do {
        n = sendmsg(sb->fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && errno != EAGAIN) {
        g_autofree char *why = g_strdup_printf("write error: %s", g_strerror(errno));
        sock_drop_peer(sb, why);
        return len;
    }
    if (n < 0) {
        n = 0;
    }
    if ((size_t)n < len + 4) {
        /* Keep the rest: the stream must never carry half a frame. */
        size_t rest = len + 4 - n;
        sb->txbuf = g_realloc(sb->txbuf, rest);
        qnic_iov_to_buf(v, iovcnt + 1, n, sb->txbuf, rest);
        sb->tx_len = rest;
        sb->tx_off = 0;
        sb->want_write = true;
        sock_update_watch(sb);
    }
    return len;
}

static const QnicNetClientOps sock_ops_socket = {
    .kind = QNIC_NET_CLIENT_SOCKET, .receive_iov = sock_receive_iov,
};
static const QnicNetClientOps sock_ops_stream = {
    .kind = QNIC_NET_CLIENT_STREAM, .receive_iov = sock_receive_iov,
};
static const QnicNetClientOps sock_ops_dgram = {
    .kind = QNIC_NET_CLIENT_DGRAM, .receive_iov = sock_receive_iov,
};

QnicSockBackend *qnic_sock_new(QnicNetdev *nd, QnicNetClientKind kind, const char *model)
{
    QnicSockBackend *sb = g_new0(QnicSockBackend, 1);
    const QnicNetClientOps *ops = kind == QNIC_NET_CLIENT_STREAM ? &sock_ops_stream :
                                  kind == QNIC_NET_CLIENT_DGRAM ? &sock_ops_dgram :
                                  &sock_ops_socket;

    sb->nd = nd;
    sb->fd = -1;
    sb->listen_fd = -1;
    sb->frame = g_malloc(QNIC_SOCK_MAX_FRAME);
    sb->chunk = g_malloc(SOCK_READ_CHUNK);
    sb->nc = qnic_net_client_new(nd->be, ops, model, nd->id, sb);
    nd->queues = 1;
    nd->ncs = g_new0(QnicNetClient *, 1);
    nd->ncs[0] = sb->nc;
    return sb;
}

void qnic_sock_set_info(QnicSockBackend *sb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_vsnprintf(sb->nc->info_str, sizeof(sb->nc->info_str), fmt, ap);
    va_end(ap);
}

void qnic_sock_free(QnicSockBackend *sb)
{
    if (!sb) {
        return;
    }
    sock_close_data(sb);
    if (sb->listen_watch) {
        qnic_fd_watch_remove(sb->listen_watch);
    }
    if (sb->listen_fd >= 0) {
        close(sb->listen_fd);
    }
    if (sb->reconnect_src) {
        g_source_destroy(sb->reconnect_src);
        g_source_unref(sb->reconnect_src);
    }
    g_free(sb->frame);
    g_free(sb->chunk);
    g_free(sb->txbuf);
    g_free(sb);
}

bool qnic_sock_is_connected(QnicSockBackend *sb)
{
    return sb->fd >= 0;
}

/* Frames are whole messages, often written back to back (the fragments
 * of one datagram): Nagle would hold each one after the first until the
 * peer's delayed ACK, ~40 ms. QEMU sets TCP_NODELAY on its stream sockets
 * too. Unix sockets have no such option. */
static void sock_set_nodelay(int fd)
{
    int domain = 0, one = 1;
    socklen_t len = sizeof(domain);

    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) == 0 &&
        (domain == AF_INET || domain == AF_INET6) &&
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0) {
        qnic_warn("socket: TCP_NODELAY: %s", g_strerror(errno));
    }
}

void qnic_sock_attach_stream(QnicSockBackend *sb, int fd)
{
    sock_close_data(sb);
    g_unix_set_fd_nonblocking(fd, TRUE, NULL);
    sock_set_nodelay(fd);
    sb->fd = fd;
    sb->is_dgram = false;
    sb->watch = qnic_fd_watch_add(fd, G_IO_IN, sock_fd_event, sb);
    if (sb->conn_notify) {
        sb->conn_notify(sb->conn_opaque, fd);
    }
}

void qnic_sock_set_conn_notify(QnicSockBackend *sb, QnicSockConnFunc *fn, void *opaque)
{
    sb->conn_notify = fn;
    sb->conn_opaque = opaque;
}

void qnic_sock_attach_dgram(QnicSockBackend *sb, int fd,
                            const struct sockaddr *dest, socklen_t dest_len)
{
    sock_close_data(sb);
    g_unix_set_fd_nonblocking(fd, TRUE, NULL);
    sb->fd = fd;
    sb->is_dgram = true;
    sb->dest_len = 0;
    if (dest && dest_len <= sizeof(sb->dest)) {
        memcpy(&sb->dest, dest, dest_len);
        sb->dest_len = dest_len;
    }
    sb->watch = qnic_fd_watch_add(fd, G_IO_IN, sock_fd_event, sb);
}

static void sock_accept(void *opaque, int fd, GIOCondition cond)
{
    QnicSockBackend *sb = opaque;
    int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

    if (cfd < 0) {
        return;
    }
    if (sb->fd >= 0) {
        close(cfd);        /* one peer at a time */
        return;
    }
    qnic_sock_attach_stream(sb, cfd);
    /* Stop accepting while this peer is here; it resumes on disconnect. */
    qnic_fd_watch_set(sb->listen_watch, 0);
}

void qnic_sock_attach_listen(QnicSockBackend *sb, int fd)
{
    sb->listen_fd = fd;
    g_unix_set_fd_nonblocking(fd, TRUE, NULL);
    sb->listen_watch = qnic_fd_watch_add(fd, G_IO_IN, sock_accept, sb);
}

static int sock_try_connect(QnicSockBackend *sb, GError **errp)
{
    int fd = socket(sb->conn_addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int r;

    if (fd < 0) {
        qnic_error_setg_errno(errp, errno, "can't create stream socket");
        return -1;
    }
    do {
        r = connect(fd, (struct sockaddr *)&sb->conn_addr, sb->conn_len);
    } while (r < 0 && errno == EINTR);
    if (r < 0) {
        int err = errno;
        g_autofree char *s = qnic_net_sockaddr_str(&sb->conn_addr);
        qnic_error_setg_errno(errp, err, "can't connect socket to %s", s);
        close(fd);
        return -1;
    }
    return fd;
}

static gboolean sock_reconnect_cb(gpointer opaque)
{
    QnicSockBackend *sb = opaque;
    g_autoptr(GError) err = NULL;
    int fd;

    if (sb->fd >= 0) {
        goto done;
    }
    fd = sock_try_connect(sb, &err);
    if (fd < 0) {
        return G_SOURCE_CONTINUE;   /* try again next period */
    }
    qnic_sock_attach_stream(sb, fd);
done:
    g_source_unref(sb->reconnect_src);
    sb->reconnect_src = NULL;
    return G_SOURCE_REMOVE;
}

static void sock_schedule_reconnect(QnicSockBackend *sb)
{
    if (sb->reconnect_src) {
        return;
    }
    sb->reconnect_src = g_timeout_source_new_seconds(sb->reconnect_s);
    g_source_set_callback(sb->reconnect_src, sock_reconnect_cb, sb, NULL);
    g_source_attach(sb->reconnect_src, qnic_main_context());
}

bool qnic_sock_connect(QnicSockBackend *sb, const struct sockaddr *addr, socklen_t len,
                       int reconnect_s, GError **errp)
{
    int fd;

    if (len > sizeof(sb->conn_addr)) {
        qnic_error_setg_invalid(errp, "address too long");
        return false;
    }
    memcpy(&sb->conn_addr, addr, len);
    sb->conn_len = len;
    sb->reconnect_s = reconnect_s;
    fd = sock_try_connect(sb, reconnect_s > 0 ? NULL : errp);
    if (fd < 0) {
        if (reconnect_s > 0) {
            sock_schedule_reconnect(sb);
            return true;
        }
        return false;
    }
    qnic_sock_attach_stream(sb, fd);
    return true;
}

/* ---- -netdev socket ---- */

typedef struct SocketNetdev {
    QnicSockBackend *sb;
} SocketNetdev;

int qnic_sock_dgram_open(const struct sockaddr_storage *addr, socklen_t len, GError **errp)
{
    int fd = socket(addr->ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int one = 1;

    if (fd < 0) {
        qnic_error_setg_errno(errp, errno, "can't create datagram socket");
        return -1;
    }
    if (addr->ss_family != AF_UNIX) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    }
    if (bind(fd, (const struct sockaddr *)addr, len) < 0) {
        int err = errno;
        g_autofree char *s = qnic_net_sockaddr_str(addr);
        qnic_error_setg_errno(errp, err, "can't bind %s", s);
        close(fd);
        return -1;
    }
    return fd;
}

static int socket_udp(const struct sockaddr_storage *bind_addr, socklen_t bind_len,
                      bool reuse, GError **errp)
{
    int one = 1;
    int fd = socket(bind_addr->ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    if (fd < 0) {
        qnic_error_setg_errno(errp, errno, "can't create datagram socket");
        return -1;
    }
    if (reuse) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    }
    if (bind(fd, (const struct sockaddr *)bind_addr, bind_len) < 0) {
        int err = errno;
        g_autofree char *s = qnic_net_sockaddr_str(bind_addr);
        qnic_error_setg_errno(errp, err, "can't bind ip=%s to socket", s);
        close(fd);
        return -1;
    }
    return fd;
}

/* Multicast (IPv4): bound to the group, member on localaddr's interface,
 * looped back so that several VMs on one host share the group. */
int qnic_sock_mcast_open(const struct sockaddr_storage *group, socklen_t glen,
                         const char *localaddr, GError **errp)
{
    const struct sockaddr_in *g = (const struct sockaddr_in *)group;
    struct ip_mreq mreq = { 0 };
    struct in_addr local = { .s_addr = htonl(INADDR_ANY) };
    int loop = 1, fd;

    if (group->ss_family != AF_INET || !IN_MULTICAST(ntohl(g->sin_addr.s_addr))) {
        g_autofree char *s = qnic_net_sockaddr_str(group);
        qnic_error_setg_invalid(errp, "specified mcastaddr %s does not contain a multicast "
                                "address", s);
        return -1;
    }
    if (localaddr && inet_pton(AF_INET, localaddr, &local) != 1) {
        qnic_error_setg_invalid(errp, "localaddr '%s' is not an IPv4 address", localaddr);
        return -1;
    }
    fd = socket_udp(group, glen, true, errp);
    if (fd < 0) {
        return -1;
    }
    mreq.imr_multiaddr = g->sin_addr;
    mreq.imr_interface = local;
    if (setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mreq, sizeof(mreq)) < 0) {
        qnic_error_setg_errno(errp, errno, "can't add socket to multicast group %s",
                              inet_ntoa(g->sin_addr));
        close(fd);
        return -1;
    }
    setsockopt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, &loop, sizeof(loop));
    if (localaddr &&
        setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &local, sizeof(local)) < 0) {
        qnic_error_setg_errno(errp, errno, "can't set multicast interface %s", localaddr);
        close(fd);
        return -1;
    }
    return fd;
}

/* fd=: an open datagram or stream socket the caller passed in. */
static bool socket_init_fd(QnicSockBackend *sb, const char *fd_str, GError **errp)
{
    char *end;
    long fd = strtol(fd_str, &end, 10);
    int type;
    socklen_t tl = sizeof(type);

    if (*end || fd < 0 || fcntl((int)fd, F_GETFD) < 0) {
        qnic_error_setg_invalid(errp, "Invalid file descriptor '%s'", fd_str);
        return false;
    }
    if (getsockopt((int)fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0) {
        qnic_error_setg_errno(errp, errno, "fd=%ld is not a socket", fd);
        return false;
    }
    if (type == SOCK_DGRAM) {
        qnic_sock_attach_dgram(sb, (int)fd, NULL, 0);
    } else if (type == SOCK_STREAM) {
        qnic_sock_attach_stream(sb, (int)fd);
    } else {
        qnic_error_setg_invalid(errp, "socket type=%d for fd=%ld must be either "
                                "SOCK_DGRAM or SOCK_STREAM", type, fd);
        return false;
    }
    qnic_sock_set_info(sb, "socket: fd=%ld", fd);
    return true;
}

/* listen=host:port: wait for one TCP peer. */
static bool socket_init_listen(QnicSockBackend *sb, const char *listen_s, GError **errp)
{
    struct sockaddr_storage ss;
    socklen_t sl;

    if (!qnic_net_parse_inet(listen_s, &ss, &sl, true, errp)) {
        return false;
    }
    int lfd = qnic_sock_listen((struct sockaddr *)&ss, sl, errp);
    if (lfd < 0) {
        return false;
    }
    qnic_sock_attach_listen(sb, lfd);
    qnic_sock_set_info(sb, "socket: wait connection on %s", listen_s);
    return true;
}

/* connect=host:port: one TCP peer. */
static bool socket_init_connect(QnicSockBackend *sb, const char *connect_s, GError **errp)
{
    struct sockaddr_storage ss;
    socklen_t sl;

    if (!qnic_net_parse_inet(connect_s, &ss, &sl, false, errp) ||
        !qnic_sock_connect(sb, (struct sockaddr *)&ss, sl, 0, errp)) {
        return false;
    }
    qnic_sock_set_info(sb, "socket: connect to %s", connect_s);
    return true;
}

/* mcast=group:port[,localaddr=]: a multicast group as a shared wire. */
static bool socket_init_mcast(QnicSockBackend *sb, const char *mcast, const char *localaddr,
                              GError **errp)
{
    struct sockaddr_storage ss;
    socklen_t sl;

    if (!qnic_net_parse_inet(mcast, &ss, &sl, false, errp)) {
        return false;
    }
    int mfd = qnic_sock_mcast_open(&ss, sl, localaddr, errp);
    if (mfd < 0) {
        return false;
    }
    qnic_sock_attach_dgram(sb, mfd, (struct sockaddr *)&ss, sl);
    qnic_sock_set_info(sb, "socket: mcast=%s", mcast);
    return true;
}

/* udp=host:port,localaddr=host:port: one UDP peer. */
static bool socket_init_udp(QnicSockBackend *sb, const char *udp, const char *localaddr,
                            GError **errp)
{
    struct sockaddr_storage ss, ls;
    socklen_t sl, ll;

    if (!qnic_net_parse_inet(udp, &ss, &sl, false, errp) ||
        !qnic_net_parse_inet(localaddr, &ls, &ll, true, errp)) {
        return false;
    }
    int ufd = socket_udp(&ls, ll, true, errp);
    if (ufd < 0) {
        return false;
    }
    qnic_sock_attach_dgram(sb, ufd, (struct sockaddr *)&ss, sl);
    qnic_sock_set_info(sb, "socket: udp=%s", udp);
    return true;
}

static bool socket_init(QnicNetdev *nd, QnicOpts *opts, GError **errp)
{
    const char *fd_str = qnic_opts_get(opts, "fd");
    const char *listen_s = qnic_opts_get(opts, "listen");
    const char *connect_s = qnic_opts_get(opts, "connect");
    const char *mcast = qnic_opts_get(opts, "mcast");
    const char *udp = qnic_opts_get(opts, "udp");
    const char *localaddr = qnic_opts_get(opts, "localaddr");
    QnicSockBackend *sb;
    int modes = !!fd_str + !!listen_s + !!connect_s + !!mcast + !!udp;

    if (modes != 1) {
        qnic_error_setg_invalid(errp, "exactly one of listen=, connect=, mcast= or udp= "
                                "is required");
        return false;
    }
    if (localaddr && !mcast && !udp) {
        qnic_error_setg_invalid(errp, "localaddr= is only valid with mcast= or udp=");
        return false;
    }
    if (udp && !localaddr) {
        qnic_error_setg_invalid(errp, "localaddr= is mandatory with udp=");
        return false;
    }
    sb = qnic_sock_new(nd, QNIC_NET_CLIENT_SOCKET, "socket");
    nd->state = sb;

    if (fd_str) {
        return socket_init_fd(sb, fd_str, errp);
    }
    if (listen_s) {
        return socket_init_listen(sb, listen_s, errp);
    }
    if (connect_s) {
        return socket_init_connect(sb, connect_s, errp);
    }
    if (mcast) {
        return socket_init_mcast(sb, mcast, localaddr, errp);
    }
    return socket_init_udp(sb, udp, localaddr, errp);
}

static void socket_cleanup(QnicNetdev *nd)
{
    qnic_sock_free(nd->state);
    nd->state = NULL;
}

static const QnicNetdevClass socket_netdev_class = {
    .type = "socket",
    .init = socket_init,
    .cleanup = socket_cleanup,
};
QNIC_NETDEV_REGISTER(socket_netdev_class)
