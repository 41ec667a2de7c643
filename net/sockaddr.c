/*
 * Socket address helpers for the socket-like backends: QEMU's
 * "host:port" syntax (host may be empty, a name, an IPv4 address or an IPv6
 * address in brackets), unix paths (optionally abstract), printing an
 * address for messages, and opening a listening socket.
 */
#include "net-internal.h"
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <unistd.h>

bool qnic_net_parse_inet(const char *str, struct sockaddr_storage *ss,
                         socklen_t *len, bool empty_any, GError **errp)
{
    g_autofree char *host = NULL;
    const char *port_str, *colon;
    char *end;
    long port;

    if (!str) {
        qnic_error_setg_invalid(errp, "missing host:port");
        return false;
    }
    if (str[0] == '[') {
        const char *rb = strchr(str, ']');
        if (!rb || rb[1] != ':') {
            qnic_error_setg_invalid(errp, "'%s': expected [ipv6]:port", str);
            return false;
        }
        host = g_strndup(str + 1, rb - str - 1);
        port_str = rb + 2;
    } else {
        colon = strrchr(str, ':');
        if (!colon) {
            qnic_error_setg_invalid(errp, "'%s': expected host:port", str);
            return false;
        }
        host = g_strndup(str, colon - str);
        port_str = colon + 1;
    }
    port = strtol(port_str, &end, 10);
    if (!*port_str || *end || port < 0 || port > 65535) {
        qnic_error_setg_invalid(errp, "'%s': invalid port", str);
        return false;
    }
    memset(ss, 0, sizeof(*ss));
    if (!*host) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        sin->sin_addr.s_addr = htonl(empty_any ? INADDR_ANY : INADDR_LOOPBACK);
        *len = sizeof(*sin);
        return true;
    }
    {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
        if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
            sin->sin_family = AF_INET;
            sin->sin_port = htons((uint16_t)port);
            *len = sizeof(*sin);
            return true;
        }
        if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
            sin6->sin6_family = AF_INET6;
            sin6->sin6_port = htons((uint16_t)port);
            *len = sizeof(*sin6);
            return true;
        }
    }
    {
        struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
        int rc = getaddrinfo(host, NULL, &hints, &res);
        if (rc != 0 || !res) {
            qnic_error_setg_invalid(errp, "address resolution failed for %s: %s", host,
                                    gai_strerror(rc));
            return false;
        }
        memcpy(ss, res->ai_addr, res->ai_addrlen);
        *len = res->ai_addrlen;
        if (ss->ss_family == AF_INET) {
            ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
        } else if (ss->ss_family == AF_INET6) {
            ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
        }
        freeaddrinfo(res);
    }
    return true;
}

bool qnic_net_parse_unix(const char *path, bool abstract, struct sockaddr_storage *ss,
                         socklen_t *len, GError **errp)
{
    struct sockaddr_un *sun = (struct sockaddr_un *)ss;
    size_t n = path ? strlen(path) : 0;

    if (!n) {
        qnic_error_setg_invalid(errp, "missing unix socket path");
        return false;
    }
    if (n + (abstract ? 1 : 0) >= sizeof(sun->sun_path)) {
        qnic_error_setg_invalid(errp, "unix socket path '%s' is too long", path);
        return false;
    }
    memset(ss, 0, sizeof(*ss));
    sun->sun_family = AF_UNIX;
    if (abstract) {
        memcpy(sun->sun_path + 1, path, n);
        *len = offsetof(struct sockaddr_un, sun_path) + 1 + n;
    } else {
        memcpy(sun->sun_path, path, n);
        *len = sizeof(*sun);
    }
    return true;
}

char *qnic_net_sockaddr_str(const struct sockaddr_storage *ss)
{
    char buf[INET6_ADDRSTRLEN];

    switch (ss->ss_family) {
    case AF_INET: {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf));
        return g_strdup_printf("%s:%u", buf, ntohs(sin->sin_port));
    }
    case AF_INET6: {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof(buf));
        return g_strdup_printf("[%s]:%u", buf, ntohs(sin6->sin6_port));
    }
    case AF_UNIX: {
        const struct sockaddr_un *sun = (const struct sockaddr_un *)ss;
        if (sun->sun_path[0] == 0) {
            return g_strdup_printf("@%s", sun->sun_path + 1);
        }
        return g_strndup(sun->sun_path, sizeof(sun->sun_path));
    }
    default:
        return g_strdup("?");
    }
}

int qnic_sock_listen(const struct sockaddr *addr, socklen_t len, GError **errp)
{
    int one = 1;
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

    if (fd < 0) {
        qnic_error_setg_errno(errp, errno, "can't create socket");
        return -1;
    }
    if (addr->sa_family != AF_UNIX) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    }
    if (bind(fd, addr, len) < 0 || listen(fd, 1) < 0) {
        int err = errno;
        g_autofree char *s = qnic_net_sockaddr_str((const struct sockaddr_storage *)addr);
        qnic_error_setg_errno(errp, err, "can't bind/listen on %s", s);
        close(fd);
        return -1;
    }
    return fd;
}
