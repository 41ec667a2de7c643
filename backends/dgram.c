/*
 * `-netdev dgram`: one frame per datagram over UDP or a unix datagram
 * socket, with QEMU 7.2's structured local.* / remote.* addresses. An inet
 * multicast remote joins the group (local.host then picks the interface);
 * otherwise the socket is bound to local and frames go to remote. The
 * engine is in socket.c.
 */
#include "net/net-internal.h"
#include "qnic/log.h"
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>
#include <fcntl.h>
#include <stdlib.h>

typedef struct DgramNetdev {
    QnicSockBackend *sb;
    char *unlink_path;
} DgramNetdev;

/* Read "<side>.type/host/port/path/abstract" into a sockaddr. */
static bool dgram_addr(QnicOpts *opts, const char *side, struct sockaddr_storage *ss,
                       socklen_t *len, GError **errp)
{
    g_autofree char *k_type = g_strdup_printf("%s.type", side);
    g_autofree char *k_host = g_strdup_printf("%s.host", side);
    g_autofree char *k_port = g_strdup_printf("%s.port", side);
    g_autofree char *k_path = g_strdup_printf("%s.path", side);
    g_autofree char *k_abs = g_strdup_printf("%s.abstract", side);
    const char *type = qnic_opts_get(opts, k_type);

    if (g_strcmp0(type, "inet") == 0) {
        const char *host = qnic_opts_get(opts, k_host);
        const char *port = qnic_opts_get(opts, k_port);
        if (!host || !port) {
            qnic_error_setg_invalid(errp, "Parameter '%s' is missing", host ? k_port : k_host);
            return false;
        }
        g_autofree char *hp = strchr(host, ':') ? g_strdup_printf("[%s]:%s", host, port)
                                                 : g_strdup_printf("%s:%s", host, port);
        return qnic_net_parse_inet(hp, ss, len, true, errp);
    }
    if (g_strcmp0(type, "unix") == 0) {
        return qnic_net_parse_unix(qnic_opts_get(opts, k_path),
                                   qnic_opts_get_bool(opts, k_abs, false), ss, len, errp);
    }
    qnic_error_setg_invalid(errp, "Parameter '%s' does not accept value '%s'", k_type,
                            type ? type : "");
    return false;
}

static bool is_mcast(const struct sockaddr_storage *ss)
{
    return ss->ss_family == AF_INET &&
           IN_MULTICAST(ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr));
}

/* local.type=fd: an open datagram socket, sending to remote if given. */
static bool dgram_init_fd(DgramNetdev *dg, QnicOpts *opts,
                          const struct sockaddr_storage *remote, socklen_t rlen, GError **errp)
{
    const char *s = qnic_opts_get(opts, "local.str");
    char *end;
    long lfd = s ? strtol(s, &end, 10) : -1;

    if (!s || *end || lfd < 0 || fcntl((int)lfd, F_GETFD) < 0) {
        qnic_error_setg_invalid(errp, "Invalid file descriptor '%s'", s ? s : "");
        return false;
    }
    qnic_sock_attach_dgram(dg->sb, (int)lfd, rlen ? (struct sockaddr *)remote : NULL, rlen);
    qnic_sock_set_info(dg->sb, "dgram: fd=%ld", lfd);
    return true;
}

/* A multicast remote: joined on local.host's interface (local.type=inet),
 * or through a socket the caller passed (local.type=fd). */
static bool dgram_init_mcast(DgramNetdev *dg, QnicOpts *opts, const char *ltype,
                             const struct sockaddr_storage *remote, socklen_t rlen,
                             GError **errp)
{
    const char *lhost = NULL;
    int fd;

    if (ltype && g_str_equal(ltype, "inet")) {
        lhost = qnic_opts_get(opts, "local.host");
        /* QEMU's address type requires both, though only the host
         * (the interface) matters here. */
        if (!lhost || !qnic_opts_get(opts, "local.port")) {
            qnic_error_setg_invalid(errp, "Parameter 'local.%s' is missing",
                                    lhost ? "port" : "host");
            return false;
        }
    } else if (ltype && !g_str_equal(ltype, "fd")) {
        qnic_error_setg_invalid(errp, "multicast requires local.type=inet or fd");
        return false;
    }
    if (ltype && g_str_equal(ltype, "fd")) {
        return dgram_init_fd(dg, opts, remote, rlen, errp);
    }
    fd = qnic_sock_mcast_open(remote, rlen, lhost, errp);
    if (fd < 0) {
        return false;
    }
    qnic_sock_attach_dgram(dg->sb, fd, (struct sockaddr *)remote, rlen);
    qnic_sock_set_info(dg->sb, "dgram: mcast %s:%s", qnic_opts_get(opts, "remote.host"),
                       qnic_opts_get(opts, "remote.port"));
    return true;
}

/* A local inet or unix address to bind, sending to remote if given. */
static bool dgram_init_local(DgramNetdev *dg, QnicOpts *opts,
                             const struct sockaddr_storage *remote, socklen_t rlen,
                             GError **errp)
{
    struct sockaddr_storage local;
    socklen_t llen = 0;
    int fd;

    if (!dgram_addr(opts, "local", &local, &llen, errp)) {
        return false;
    }
    if (rlen && local.ss_family != remote->ss_family &&
        !(local.ss_family != AF_UNIX && remote->ss_family != AF_UNIX)) {
        qnic_error_setg_invalid(errp, "local and remote addresses must have the same type");
        return false;
    }
    if (local.ss_family == AF_UNIX && !qnic_opts_get_bool(opts, "local.abstract", false)) {
        const char *path = qnic_opts_get(opts, "local.path");
        unlink(path);
        dg->unlink_path = g_strdup(path);
    }
    fd = qnic_sock_dgram_open(&local, llen, errp);
    if (fd < 0) {
        return false;
    }
    qnic_sock_attach_dgram(dg->sb, fd, rlen ? (struct sockaddr *)remote : NULL, rlen);

    g_autofree char *l = qnic_net_sockaddr_str(&local);
    g_autofree char *r = rlen ? qnic_net_sockaddr_str(remote) : g_strdup("-");
    qnic_sock_set_info(dg->sb, "dgram: %s -> %s", l, r);
    return true;
}

static bool dgram_init(QnicNetdev *nd, QnicOpts *opts, GError **errp)
{
    DgramNetdev *dg = g_new0(DgramNetdev, 1);
    const char *ltype = qnic_opts_get(opts, "local.type");
    const char *rtype = qnic_opts_get(opts, "remote.type");
    struct sockaddr_storage remote;
    socklen_t rlen = 0;

    nd->state = dg;
    dg->sb = qnic_sock_new(nd, QNIC_NET_CLIENT_DGRAM, "dgram");
    if (!ltype && !rtype) {
        qnic_error_setg_invalid(errp, "local or remote address must be given");
        return false;
    }
    if (rtype && g_str_equal(rtype, "fd")) {
        qnic_error_setg_invalid(errp, "type=fd is not supported for remote");
        return false;
    }
    if (rtype && !dgram_addr(opts, "remote", &remote, &rlen, errp)) {
        return false;
    }
    if (rlen && is_mcast(&remote)) {
        return dgram_init_mcast(dg, opts, ltype, &remote, rlen, errp);
    }
    if (!ltype) {
        qnic_error_setg_invalid(errp, "local address must be given with a unicast remote");
        return false;
    }
    if (g_str_equal(ltype, "fd")) {
        return dgram_init_fd(dg, opts, &remote, rlen, errp);
    }
    return dgram_init_local(dg, opts, &remote, rlen, errp);
}

static void dgram_cleanup(QnicNetdev *nd)
{
    DgramNetdev *dg = nd->state;

    if (!dg) {
        return;
    }
    qnic_sock_free(dg->sb);
    if (dg->unlink_path) {
        unlink(dg->unlink_path);
        g_free(dg->unlink_path);
    }
    g_free(dg);
    nd->state = NULL;
}

static const QnicNetdevClass dgram_netdev_class = {
    .type = "dgram",
    .init = dgram_init,
    .cleanup = dgram_cleanup,
};
QNIC_NETDEV_REGISTER(dgram_netdev_class)
