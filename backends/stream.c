/*
 * `-netdev stream`: frames over a stream socket with QEMU's 4-byte
 * big-endian length prefix, like `-netdev socket,listen/connect=` but with
 * QEMU 7.2's structured address (addr.type=inet|unix|fd) and server=on|off.
 * A server accepts one peer at a time and accepts again when it leaves; a
 * client with reconnect=N retries every N seconds after a failure or loss.
 * The engine (reading, writing, bad-peer handling) is in socket.c.
 */
#include "net/net-internal.h"
#include "qnic/log.h"
#include <sys/socket.h>
#include <unistd.h>
#include <fcntl.h>
#include <stdlib.h>

typedef struct StreamNetdev {
    QnicNetdev *nd;
    QnicSockBackend *sb;
    char *unlink_path;           /* a unix socket path we created */
    struct sockaddr_storage addr;   /* addr.*: what a unix peer is reported as */
} StreamNetdev;

/* The peer came or went: QEMU 7.2 reports an inet peer's own address and,
 * for a unix socket (whose client has no name), the socket's path. */
static void stream_conn_changed(void *opaque, int fd)
{
    StreamNetdev *st = opaque;
    struct sockaddr_storage peer = st->addr;
    socklen_t len = sizeof(peer);

    if (fd < 0) {
        qnic_net_stream_changed(st->nd->be, st->nd->id, NULL);
        return;
    }
    if (peer.ss_family != AF_UNIX && getpeername(fd, (struct sockaddr *)&peer, &len) < 0) {
        peer.ss_family = AF_UNSPEC;
    }
    qnic_net_stream_changed(st->nd->be, st->nd->id, &peer);
}

/* The addr.type/host/port/path options to a sockaddr and a description. */
static bool stream_addr(QnicOpts *opts, struct sockaddr_storage *ss, socklen_t *len,
                        char **desc, GError **errp)
{
    const char *type = qnic_opts_get(opts, "addr.type");

    if (!type) {
        qnic_error_setg_invalid(errp, "Parameter 'addr.type' is missing");
        return false;
    }
    if (g_str_equal(type, "inet")) {
        const char *host = qnic_opts_get(opts, "addr.host");
        const char *port = qnic_opts_get(opts, "addr.port");
        if (!host || !port) {
            qnic_error_setg_invalid(errp, "Parameter 'addr.%s' is missing", host ? "port" : "host");
            return false;
        }
        g_autofree char *hp = strchr(host, ':') ? g_strdup_printf("[%s]:%s", host, port)
                                                 : g_strdup_printf("%s:%s", host, port);
        if (!qnic_net_parse_inet(hp, ss, len, true, errp)) {
            return false;
        }
        *desc = g_strdup_printf("tcp:%s", hp);
        return true;
    }
    if (g_str_equal(type, "unix")) {
        const char *path = qnic_opts_get(opts, "addr.path");
        bool abstract = qnic_opts_get_bool(opts, "addr.abstract", false);
        if (!qnic_net_parse_unix(path, abstract, ss, len, errp)) {
            return false;
        }
        *desc = g_strdup_printf("unix:%s%s", abstract ? "@" : "", path);
        return true;
    }
    qnic_error_setg_invalid(errp, "Parameter 'addr.type' does not accept value '%s'", type);
    return false;
}

static bool stream_init(QnicNetdev *nd, QnicOpts *opts, GError **errp)
{
    StreamNetdev *st = g_new0(StreamNetdev, 1);
    bool server = qnic_opts_get_bool(opts, "server", false);
    int reconnect = (int)MIN(qnic_opts_get_uint(opts, "reconnect", 0), 86400);
    const char *type = qnic_opts_get(opts, "addr.type");
    struct sockaddr_storage ss;
    socklen_t sl;
    g_autofree char *desc = NULL;

    nd->state = st;
    st->nd = nd;
    st->sb = qnic_sock_new(nd, QNIC_NET_CLIENT_STREAM, "stream");
    qnic_sock_set_conn_notify(st->sb, stream_conn_changed, st);

    if (g_strcmp0(type, "fd") == 0) {
        const char *s = qnic_opts_get(opts, "addr.str");
        char *end;
        long fd = s ? strtol(s, &end, 10) : -1;
        if (!s || *end || fd < 0 || fcntl((int)fd, F_GETFD) < 0) {
            qnic_error_setg_invalid(errp, "Invalid file descriptor '%s'", s ? s : "");
            return false;
        }
        if (server) {
            qnic_sock_attach_listen(st->sb, (int)fd);
        } else {
            qnic_sock_attach_stream(st->sb, (int)fd);
        }
        qnic_sock_set_info(st->sb, "stream: fd=%ld", fd);
        return true;
    }
    if (!stream_addr(opts, &ss, &sl, &desc, errp)) {
        return false;
    }
    st->addr = ss;
    if (server) {
        if (ss.ss_family == AF_UNIX && qnic_opts_get(opts, "addr.path") &&
            !qnic_opts_get_bool(opts, "addr.abstract", false)) {
            unlink(qnic_opts_get(opts, "addr.path"));
            st->unlink_path = g_strdup(qnic_opts_get(opts, "addr.path"));
        }
        int lfd = qnic_sock_listen((struct sockaddr *)&ss, sl, errp);
        if (lfd < 0) {
            return false;
        }
        qnic_sock_attach_listen(st->sb, lfd);
        qnic_sock_set_info(st->sb, "stream: listening on %s", desc);
        return true;
    }
    if (!qnic_sock_connect(st->sb, (struct sockaddr *)&ss, sl, reconnect, errp)) {
        return false;
    }
    qnic_sock_set_info(st->sb, "stream: connect to %s", desc);
    return true;
}

static void stream_cleanup(QnicNetdev *nd)
{
    StreamNetdev *st = nd->state;

    if (!st) {
        return;
    }
    qnic_sock_free(st->sb);
    if (st->unlink_path) {
        unlink(st->unlink_path);
        g_free(st->unlink_path);
    }
    g_free(st);
    nd->state = NULL;
}

static const QnicNetdevClass stream_netdev_class = {
    .type = "stream",
    .init = stream_init,
    .cleanup = stream_cleanup,
};
QNIC_NETDEV_REGISTER(stream_netdev_class)
