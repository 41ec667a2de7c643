/*
 * `-netdev user`: user-mode networking through libslirp. libslirp is a
 * complete NAT, DHCP, DNS-forwarding and TFTP stack; this file gives it a
 * net client (frames from the NIC go to slirp_input, frames slirp makes go
 * to the NIC), runs its sockets and timers on qnic's GLib loop, and turns
 * QEMU's options (net=, host=, dhcpstart=, hostfwd=, guestfwd=, ...) into
 * its configuration. Timers run on the real-time clock, as in QEMU.
 */
#include "net/net-internal.h"
#include "qnic/mainloop.h"
#include "qnic/log.h"
#include <slirp/libslirp.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>
#include <fcntl.h>
#include <glib-unix.h>

typedef struct SlirpState SlirpState;

typedef struct SlirpSource {
    GSource src;
    SlirpState *s;
} SlirpSource;

typedef struct SlirpTimer {
    SlirpState *s;
    SlirpTimerId id;
    void *cb_opaque;
    GSource *src;
} SlirpTimer;

/* guestfwd=tcp:IP:PORT-tcp:HOST:HPORT: one host connection per rule. */
typedef struct GuestFwd {
    SlirpState *s;
    struct in_addr addr;
    int port;
    int fd;
    QnicFdWatch *watch;
} GuestFwd;

struct SlirpState {
    QnicNetdev *nd;
    QnicNetClient *nc;
    Slirp *slirp;
    SlirpSource *source;
    GArray *pollfds;          /* GPollFD, rebuilt in every prepare */
    bool polls_added;
    GList *timers;            /* SlirpTimer * */
    GList *guestfwds;         /* GuestFwd * */
    uint8_t *rxbuf;           /* flattening of multi-piece frames */
    size_t rxbuf_size;
    char **dnssearch;
};

/* ---- libslirp callbacks ---- */

static ssize_t slirp_cb_send_packet(const void *buf, size_t len, void *opaque)
{
    SlirpState *s = opaque;
    /* A NIC that cannot take the frame now queues it (bounded); TCP in
     * slirp retransmits whatever is lost beyond that. */
    qnic_net_send(s->nc, buf, len);
    return len;
}

static void slirp_cb_guest_error(const char *msg, void *opaque)
{
    qnic_guest_error("user netdev: %s", msg);
}

static int64_t slirp_cb_clock_get_ns(void *opaque)
{
    return g_get_monotonic_time() * 1000;
}

static gboolean slirp_timer_fire(gpointer data)
{
    SlirpTimer *t = data;
    GSource *src = t->src;

    t->src = NULL;
    slirp_handle_timer(t->s->slirp, t->id, t->cb_opaque);
    g_source_unref(src);
    return G_SOURCE_REMOVE;
}

static void *slirp_cb_timer_new_opaque(SlirpTimerId id, void *cb_opaque, void *opaque)
{
    SlirpState *s = opaque;
    SlirpTimer *t = g_new0(SlirpTimer, 1);
    t->s = s;
    t->id = id;
    t->cb_opaque = cb_opaque;
    s->timers = g_list_prepend(s->timers, t);
    return t;
}

static void slirp_timer_cancel(SlirpTimer *t)
{
    if (t->src) {
        g_source_destroy(t->src);
        g_source_unref(t->src);
        t->src = NULL;
    }
}

static void slirp_cb_timer_free(void *timer, void *opaque)
{
    SlirpState *s = opaque;
    SlirpTimer *t = timer;
    slirp_timer_cancel(t);
    s->timers = g_list_remove(s->timers, t);
    g_free(t);
}

static void slirp_cb_timer_mod(void *timer, int64_t expire_ms, void *opaque)
{
    SlirpTimer *t = timer;
    int64_t now_ms = g_get_monotonic_time() / 1000;
    int64_t delay = MAX(expire_ms - now_ms, 0);

    slirp_timer_cancel(t);
    t->src = g_timeout_source_new((guint)MIN(delay, (int64_t)G_MAXUINT));
    g_source_set_callback(t->src, slirp_timer_fire, t, NULL);
    g_source_attach(t->src, qnic_main_context());
}

static void slirp_cb_register_poll_fd(int fd, void *opaque)
{
    /* Polled through slirp_pollfds_fill on every loop iteration. */
}

static void slirp_cb_unregister_poll_fd(int fd, void *opaque)
{
}

static void guestfwd_resume_all(SlirpState *s);

static void slirp_cb_notify(void *opaque)
{
    SlirpState *s = opaque;
    guestfwd_resume_all(s);
    qnic_main_loop_wakeup();
}

static const SlirpCb slirp_callbacks = {
    .send_packet = slirp_cb_send_packet,
    .guest_error = slirp_cb_guest_error,
    .clock_get_ns = slirp_cb_clock_get_ns,
    .timer_free = slirp_cb_timer_free,
    .timer_mod = slirp_cb_timer_mod,
    .register_poll_fd = slirp_cb_register_poll_fd,
    .unregister_poll_fd = slirp_cb_unregister_poll_fd,
    .notify = slirp_cb_notify,
    .timer_new_opaque = slirp_cb_timer_new_opaque,
};

/* ---- slirp's sockets on the GLib loop ---- */

static int slirp_add_poll(int fd, int events, void *opaque)
{
    SlirpState *s = opaque;
    GPollFD p = { .fd = fd };

    if (events & SLIRP_POLL_IN) {
        p.events |= G_IO_IN;
    }
    if (events & SLIRP_POLL_OUT) {
        p.events |= G_IO_OUT;
    }
    if (events & SLIRP_POLL_PRI) {
        p.events |= G_IO_PRI;
    }
    if (events & SLIRP_POLL_ERR) {
        p.events |= G_IO_ERR;
    }
    if (events & SLIRP_POLL_HUP) {
        p.events |= G_IO_HUP;
    }
    g_array_append_val(s->pollfds, p);
    return s->pollfds->len - 1;
}

static int slirp_get_revents(int idx, void *opaque)
{
    SlirpState *s = opaque;
    int r = 0;

    if (idx < 0 || (guint)idx >= s->pollfds->len) {
        return 0;
    }
    GPollFD *p = &g_array_index(s->pollfds, GPollFD, idx);
    if (p->revents & G_IO_IN) {
        r |= SLIRP_POLL_IN;
    }
    if (p->revents & G_IO_OUT) {
        r |= SLIRP_POLL_OUT;
    }
    if (p->revents & G_IO_PRI) {
        r |= SLIRP_POLL_PRI;
    }
    if (p->revents & G_IO_ERR) {
        r |= SLIRP_POLL_ERR;
    }
    if (p->revents & G_IO_HUP) {
        r |= SLIRP_POLL_HUP;
    }
    return r;
}

static void slirp_remove_polls(SlirpState *s)
{
    if (s->polls_added) {
        for (guint i = 0; i < s->pollfds->len; i++) {
            g_source_remove_poll(&s->source->src, &g_array_index(s->pollfds, GPollFD, i));
        }
        s->polls_added = false;
    }
    g_array_set_size(s->pollfds, 0);
}

static gboolean slirp_source_prepare(GSource *src, gint *timeout)
{
    SlirpState *s = ((SlirpSource *)src)->s;
    uint32_t t = UINT32_MAX;

    slirp_remove_polls(s);
    slirp_pollfds_fill(s->slirp, &t, slirp_add_poll, s);
    /* The array is complete: its elements stay put until the next prepare. */
    for (guint i = 0; i < s->pollfds->len; i++) {
        g_source_add_poll(src, &g_array_index(s->pollfds, GPollFD, i));
    }
    s->polls_added = true;
    *timeout = t == UINT32_MAX ? -1 : (gint)MIN(t, (uint32_t)G_MAXINT);
    return FALSE;
}

static gboolean slirp_source_check(GSource *src)
{
    /* slirp_pollfds_poll also runs slirp's TCP timers, which are due when
     * the fill timeout ran out with no fd ready: poll every iteration. */
    return TRUE;
}

static gboolean slirp_source_dispatch(GSource *src, GSourceFunc cb, gpointer data)
{
    SlirpState *s = ((SlirpSource *)src)->s;
    slirp_pollfds_poll(s->slirp, 0, slirp_get_revents, s);
    return G_SOURCE_CONTINUE;
}

static GSourceFuncs slirp_source_funcs = {
    .prepare = slirp_source_prepare,
    .check = slirp_source_check,
    .dispatch = slirp_source_dispatch,
};

/* ---- the net client ---- */

static ssize_t slirp_receive_iov(QnicNetClient *nc, const struct iovec *iov, int iovcnt)
{
    SlirpState *s = nc->opaque;
    size_t len = qnic_iov_size(iov, iovcnt);
    const uint8_t *buf;

    if (len > INT_MAX) {
        return len;
    }
    if (iovcnt == 1) {
        buf = iov[0].iov_base;
    } else {
        if (s->rxbuf_size < len) {
            g_free(s->rxbuf);
            s->rxbuf = g_malloc(len);
            s->rxbuf_size = len;
        }
        qnic_iov_to_buf(iov, iovcnt, 0, s->rxbuf, len);
        buf = s->rxbuf;
    }
    slirp_input(s->slirp, buf, (int)len);
    return len;
}

static const QnicNetClientOps slirp_client_ops = {
    .kind = QNIC_NET_CLIENT_USER,
    .receive_iov = slirp_receive_iov,
};

/* ---- guestfwd to a host TCP address ---- */

static ssize_t guestfwd_write(const void *buf, size_t len, void *opaque)
{
    GuestFwd *g = opaque;
    size_t done = 0;

    /* The host end is a local socket; a short blocking write keeps the
     * byte stream intact. */
    while (g->fd >= 0 && done < len) {
        ssize_t n = write(g->fd, (const uint8_t *)buf + done, len - done);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            qnic_warn("user netdev: guestfwd write failed: %s",
                      n < 0 ? g_strerror(errno) : "closed");
            return -1;
        }
        done += n;
    }
    return len;
}

static void guestfwd_readable(void *opaque, int fd, GIOCondition cond)
{
    GuestFwd *g = opaque;
    uint8_t buf[4096];
    size_t room = slirp_socket_can_recv(g->s->slirp, g->addr, g->port);
    ssize_t n;

    if (room == 0) {
        /* slirp's socket buffer is full or the guest has not connected
         * yet; slirp calls notify when it can take more. */
        qnic_fd_watch_set(g->watch, 0);
        return;
    }
    n = read(fd, buf, MIN(room, sizeof(buf)));
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
        return;
    }
    if (n <= 0) {
        qnic_warn("user netdev: guestfwd host connection closed");
        qnic_fd_watch_remove(g->watch);
        g->watch = NULL;
        return;
    }
    slirp_socket_recv(g->s->slirp, g->addr, g->port, buf, (int)n);
}

static void guestfwd_resume_all(SlirpState *s)
{
    for (GList *l = s->guestfwds; l; l = l->next) {
        GuestFwd *g = l->data;
        if (g->watch) {
            qnic_fd_watch_set(g->watch, G_IO_IN);
        }
    }
}

static bool slirp_guestfwd(SlirpState *s, const char *rule, GError **errp)
{
    /* [tcp]:server:port-dev with dev = tcp:HOST:PORT */
    g_autofree char *copy = g_strdup(rule);
    char *p = copy, *dash, *colon;
    struct sockaddr_storage ss;
    socklen_t sl;
    GuestFwd *g;
    int port;

    if (g_str_has_prefix(p, "tcp:")) {
        p += 4;
    } else if (g_str_has_prefix(p, "udp:")) {
        qnic_error_setg_invalid(errp, "Invalid guest forwarding rule '%s' "
                                "(only TCP forwarding is supported)", rule);
        return false;
    }
    dash = strchr(p, '-');
    colon = dash ? memchr(p, ':', dash - p) : NULL;
    if (!dash || !colon) {
        qnic_error_setg_invalid(errp, "Invalid guest forwarding rule '%s' "
                                "(expected tcp:IP:PORT-DEV)", rule);
        return false;
    }
    *dash = 0;
    *colon = 0;
    g = g_new0(GuestFwd, 1);
    g->s = s;
    g->fd = -1;
    if (!inet_aton(p, &g->addr)) {
        qnic_error_setg_invalid(errp, "Invalid guest forwarding rule '%s' (bad address)", rule);
        g_free(g);
        return false;
    }
    port = atoi(colon + 1);
    if (port <= 0 || port > 65535) {
        qnic_error_setg_invalid(errp, "Invalid guest forwarding rule '%s' (bad port)", rule);
        g_free(g);
        return false;
    }
    g->port = port;
    const char *dev = dash + 1;
    if (g_str_has_prefix(dev, "cmd:")) {
        qnic_error_setg(errp, "guestfwd '%s': cmd: forwarding is not supported", rule);
        g_free(g);
        return false;
    }
    if (g_str_has_prefix(dev, "tcp:")) {
        dev += 4;
    }
    if (!qnic_net_parse_inet(dev, &ss, &sl, false, errp)) {
        qnic_error_prefix(errp, "guestfwd '%s': ", rule);
        g_free(g);
        return false;
    }
    g->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (g->fd < 0 || connect(g->fd, (struct sockaddr *)&ss, sl) < 0) {
        qnic_error_setg_errno(errp, errno, "guestfwd '%s': cannot connect to %s", rule, dev);
        if (g->fd >= 0) {
            close(g->fd);
        }
        g_free(g);
        return false;
    }
    if (slirp_add_guestfwd(s->slirp, guestfwd_write, g, &g->addr, g->port) < 0) {
        qnic_error_setg(errp, "Conflicting/invalid host:port in guest forwarding rule '%s'", rule);
        close(g->fd);
        g_free(g);
        return false;
    }
    g_unix_set_fd_nonblocking(g->fd, TRUE, NULL);
    g->watch = qnic_fd_watch_add(g->fd, G_IO_IN, guestfwd_readable, g);
    s->guestfwds = g_list_append(s->guestfwds, g);
    return true;
}

/* ---- hostfwd ---- */

static bool slirp_hostfwd(SlirpState *s, const char *rule, struct in_addr dhcp_start,
                          GError **errp)
{
    /* [tcp|udp]:[hostaddr]:hostport-[guestaddr]:guestport */
    g_autofree char *copy = g_strdup(rule);
    char *p = copy, *dash, *c;
    bool udp = false;
    struct in_addr host = { .s_addr = INADDR_ANY }, guest = dhcp_start;
    long hport, gport;
    char *end;

    if (g_str_has_prefix(p, "tcp:")) {
        p += 4;
    } else if (g_str_has_prefix(p, "udp:")) {
        udp = true;
        p += 4;
    } else if (p[0] != ':') {
        goto bad;
    } else {
        p += 1;
    }
    dash = strchr(p, '-');
    if (!dash) {
        goto bad;
    }
    *dash = 0;
    c = strchr(p, ':');
    if (!c) {
        goto bad;
    }
    *c = 0;
    if (*p && !inet_aton(p, &host)) {
        goto bad;
    }
    hport = strtol(c + 1, &end, 10);
    if (*end || c[1] == 0 || hport < 0 || hport > 65535) {
        goto bad;
    }
    p = dash + 1;
    c = strchr(p, ':');
    if (!c) {
        goto bad;
    }
    *c = 0;
    if (*p && !inet_aton(p, &guest)) {
        goto bad;
    }
    gport = strtol(c + 1, &end, 10);
    if (*end || c[1] == 0 || gport < 1 || gport > 65535) {
        goto bad;
    }
    if (slirp_add_hostfwd(s->slirp, udp, host, (int)hport, guest, (int)gport) < 0) {
        qnic_error_setg(errp, "Could not set up host forwarding rule '%s'", rule);
        return false;
    }
    return true;

bad:
    qnic_error_setg_invalid(errp, "Invalid host forwarding rule '%s'", rule);
    return false;
}

/* ---- option parsing ---- */

static bool parse_in4(const char *key, const char *v, struct in_addr *out, GError **errp)
{
    if (!inet_aton(v, out)) {
        qnic_error_setg_invalid(errp, "Parameter '%s' expects an IPv4 address", key);
        return false;
    }
    return true;
}

static bool parse_net4(const char *v, struct in_addr *net, struct in_addr *mask, GError **errp)
{
    g_autofree char *addr = g_strdup(v);
    char *slash = strchr(addr, '/');

    if (slash) {
        *slash++ = 0;
        char *end;
        long bits = strtol(slash, &end, 10);
        if (*end == 0 && *slash) {
            if (bits < 0 || bits > 32) {
                qnic_error_setg_invalid(errp, "Parameter 'net' expects a valid prefix length");
                return false;
            }
            mask->s_addr = bits ? htonl(0xffffffffu << (32 - bits)) : 0;
        } else if (!inet_aton(slash, mask)) {
            qnic_error_setg_invalid(errp, "Parameter 'net' expects a netmask");
            return false;
        }
    }
    if (!inet_aton(addr, net)) {
        qnic_error_setg_invalid(errp, "Parameter 'net' expects an IPv4 network");
        return false;
    }
    return true;
}

static bool parse_net6(const char *v, struct in6_addr *prefix, uint8_t *len, GError **errp)
{
    g_autofree char *addr = g_strdup(v);
    char *slash = strchr(addr, '/');

    if (slash) {
        *slash++ = 0;
        char *end;
        long bits = strtol(slash, &end, 10);
        if (*end || !*slash || bits < 0 || bits > 126) {
            qnic_error_setg_invalid(errp, "Parameter 'ipv6-prefixlen' expects a number "
                                    "between 0 and 126");
            return false;
        }
        *len = (uint8_t)bits;
    }
    if (inet_pton(AF_INET6, addr, prefix) != 1) {
        qnic_error_setg_invalid(errp, "Parameter 'ipv6-prefix' expects an IPv6 prefix");
        return false;
    }
    return true;
}

static void slirp_state_free(SlirpState *s)
{
    while (s->guestfwds) {
        GuestFwd *g = s->guestfwds->data;
        s->guestfwds = g_list_delete_link(s->guestfwds, s->guestfwds);
        qnic_fd_watch_remove(g->watch);
        if (g->fd >= 0) {
            close(g->fd);
        }
        g_free(g);
    }
    if (s->source) {
        slirp_remove_polls(s);
        g_source_destroy(&s->source->src);
        g_source_unref(&s->source->src);
    }
    if (s->slirp) {
        slirp_cleanup(s->slirp);   /* frees its timers through timer_free */
    }
    while (s->timers) {
        slirp_cb_timer_free(s->timers->data, s);
    }
    if (s->pollfds) {
        g_array_free(s->pollfds, TRUE);
    }
    g_strfreev(s->dnssearch);
    g_free(s->rxbuf);
    g_free(s);
}

/* The names DHCP hands out. QEMU 7.2 refuses them beyond 255 bytes (a DHCP
 * option holds at most 255) with these words, 'vhostname' for hostname=
 * included, and an empty domainname=. bootfile= goes into BOOTP's 128-byte
 * file field with its NUL: libslirp asserts on a longer one (QEMU crashes
 * there), so it is refused here in the same words. */
static bool slirp_check_names(QnicOpts *opts, GError **errp)
{
    static const struct { const char *key, *name; size_t max; } limits[] = {
        { "hostname", "vhostname", 255 },
        { "domainname", "domainname", 255 },
        { "tftp-server-name", "tftp-server-name", 255 },
        { "bootfile", "bootfile", 127 },
    };
    const char *v = qnic_opts_get(opts, "domainname");

    if (v && !*v) {
        qnic_error_setg_invalid(errp, "'domainname' parameter cannot be empty");
        return false;
    }
    for (size_t i = 0; i < QNIC_ARRAY_SIZE(limits); i++) {
        v = qnic_opts_get(opts, limits[i].key);
        if (v && strlen(v) > limits[i].max) {
            qnic_error_setg_invalid(errp, "'%s' parameter cannot exceed %zu bytes",
                                    limits[i].name, limits[i].max);
            return false;
        }
    }
    return true;
}

/* QEMU's defaults: 10.0.2.0/24 with the host (gateway) at .2, the DNS
 * forwarder at .3 and DHCP leases from .15; fec0::/64 with ::2 and ::3. */
#define SLIRP_DEFAULT_NET       "10.0.2.0"
#define SLIRP_DEFAULT_MASK      "255.255.255.0"
#define SLIRP_HOST_ID           2
#define SLIRP_DNS_ID            3
#define SLIRP_DHCP_FIRST_ID     15
#define SLIRP_DEFAULT_PREFIX6   "fec0::"
#define SLIRP_DEFAULT_PREFIX6_LEN 64
#define SLIRP_CONFIG_VERSION    4       /* the SlirpConfig fields filled here */

/* ipv4= and ipv6=. As QEMU: enabling one family explicitly turns the other
 * off unless it was given too. */
static void slirp_families(QnicOpts *opts, bool *ipv4, bool *ipv6)
{
    *ipv4 = qnic_opts_get_bool(opts, "ipv4", true);
    *ipv6 = qnic_opts_get_bool(opts, "ipv6", true);
    if (qnic_opts_is_set(opts, "ipv6") && *ipv6 && !qnic_opts_is_set(opts, "ipv4")) {
        *ipv4 = false;
    }
    if (qnic_opts_is_set(opts, "ipv4") && *ipv4 && !qnic_opts_is_set(opts, "ipv6")) {
        *ipv6 = false;
    }
}

/* net=, host=, dhcpstart=, dns=: the guest's IPv4 network, each address
 * inside it and none colliding with another. */
static bool slirp_config_ipv4(QnicOpts *opts, SlirpConfig *cfg, GError **errp)
{
    struct in_addr net, mask, host, dhcp, dns;
    const char *v;

    inet_aton(SLIRP_DEFAULT_NET, &net);
    inet_aton(SLIRP_DEFAULT_MASK, &mask);
    if ((v = qnic_opts_get(opts, "net")) && !parse_net4(v, &net, &mask, errp)) {
        return false;
    }
    if (net.s_addr & ~mask.s_addr) {
        qnic_error_setg_invalid(errp, "Invalid network: host bits set in 'net'");
        return false;
    }
    host.s_addr = net.s_addr | htonl(SLIRP_HOST_ID);
    dhcp.s_addr = net.s_addr | htonl(SLIRP_DHCP_FIRST_ID);
    dns.s_addr = net.s_addr | htonl(SLIRP_DNS_ID);
    if ((v = qnic_opts_get(opts, "host")) && !parse_in4("host", v, &host, errp)) {
        return false;
    }
    if ((host.s_addr & mask.s_addr) != net.s_addr) {
        qnic_error_setg_invalid(errp, "Host address is not in the network");
        return false;
    }
    if ((v = qnic_opts_get(opts, "dhcpstart")) && !parse_in4("dhcpstart", v, &dhcp, errp)) {
        return false;
    }
    if ((dhcp.s_addr & mask.s_addr) != net.s_addr || dhcp.s_addr == host.s_addr ||
        dhcp.s_addr == dns.s_addr) {
        qnic_error_setg_invalid(errp, "DHCP start address is not in the network or "
                                "collides with the host/DNS address");
        return false;
    }
    if ((v = qnic_opts_get(opts, "dns")) && !parse_in4("dns", v, &dns, errp)) {
        return false;
    }
    if ((dns.s_addr & mask.s_addr) != net.s_addr || dns.s_addr == host.s_addr) {
        qnic_error_setg_invalid(errp, "DNS address is not in the network or is the host address");
        return false;
    }
    cfg->vnetwork = net;
    cfg->vnetmask = mask;
    cfg->vhost = host;
    cfg->vdhcp_start = dhcp;
    cfg->vnameserver = dns;
    return true;
}

/* ipv6-net=, ipv6-host=, ipv6-dns=. */
static bool slirp_config_ipv6(QnicOpts *opts, SlirpConfig *cfg, GError **errp)
{
    struct in6_addr prefix6, host6, dns6;
    uint8_t prefix6_len = SLIRP_DEFAULT_PREFIX6_LEN;
    const char *v;

    inet_pton(AF_INET6, SLIRP_DEFAULT_PREFIX6, &prefix6);
    if ((v = qnic_opts_get(opts, "ipv6-net")) && !parse_net6(v, &prefix6, &prefix6_len, errp)) {
        return false;
    }
    host6 = prefix6;
    host6.s6_addr[15] |= SLIRP_HOST_ID;
    dns6 = prefix6;
    dns6.s6_addr[15] |= SLIRP_DNS_ID;
    if ((v = qnic_opts_get(opts, "ipv6-host")) && inet_pton(AF_INET6, v, &host6) != 1) {
        qnic_error_setg_invalid(errp, "Parameter 'ipv6-host' expects an IPv6 address");
        return false;
    }
    if ((v = qnic_opts_get(opts, "ipv6-dns")) && inet_pton(AF_INET6, v, &dns6) != 1) {
        qnic_error_setg_invalid(errp, "Parameter 'ipv6-dns' expects an IPv6 address");
        return false;
    }
    cfg->vprefix_addr6 = prefix6;
    cfg->vprefix_len = prefix6_len;
    cfg->vhost6 = host6;
    cfg->vnameserver6 = dns6;
    return true;
}

/* restrict= and what DHCP and TFTP tell the guest: hostname, domain,
 * search list, TFTP root and boot file. */
static void slirp_config_services(SlirpState *s, QnicOpts *opts, SlirpConfig *cfg)
{
    g_autofree const char **list = qnic_opts_get_list(opts, "dnssearch");

    cfg->restricted = qnic_opts_get_bool(opts, "restrict", false);
    cfg->vhostname = qnic_opts_get(opts, "hostname");
    cfg->tftp_server_name = qnic_opts_get(opts, "tftp-server-name");
    cfg->tftp_path = qnic_opts_get(opts, "tftp");
    cfg->bootfile = qnic_opts_get(opts, "bootfile");
    cfg->vdomainname = qnic_opts_get(opts, "domainname");
    if (list && list[0]) {
        s->dnssearch = g_strdupv((char **)list);
        cfg->vdnssearch = (const char **)s->dnssearch;
    }
    if (cfg->tftp_path && !g_file_test(cfg->tftp_path, G_FILE_TEST_IS_DIR)) {
        qnic_warn("user netdev: tftp directory '%s' does not exist", cfg->tftp_path);
    }
}

/* Options the user netdev refuses before building anything: over-long
 * names, smb= and both families off. */
static bool slirp_check_opts(QnicOpts *opts, bool ipv4, bool ipv6, GError **errp)
{
    if (!slirp_check_names(opts, errp)) {
        return false;
    }
    if (qnic_opts_get(opts, "smb")) {
        if (!g_file_test("/usr/sbin/smbd", G_FILE_TEST_IS_EXECUTABLE)) {
            qnic_error_setg(errp, "could not find '/usr/sbin/smbd', please install it");
        } else {
            qnic_error_setg(errp, "smb= is not supported by qnic's user netdev");
        }
        return false;
    }
    if (!ipv4 && !ipv6) {
        qnic_error_setg_invalid(errp, "IPv4 and IPv6 disabled");
        return false;
    }
    return true;
}

/* hostfwd= and guestfwd=, each a list; hostfwd's default guest address is
 * the first DHCP lease. */
static bool slirp_add_forwards(SlirpState *s, QnicOpts *opts, struct in_addr dhcp,
                               GError **errp)
{
    g_autofree const char **hostfwds = qnic_opts_get_list(opts, "hostfwd");
    for (int i = 0; hostfwds && hostfwds[i]; i++) {
        if (!slirp_hostfwd(s, hostfwds[i], dhcp, errp)) {
            return false;
        }
    }
    g_autofree const char **guestfwds = qnic_opts_get_list(opts, "guestfwd");
    for (int i = 0; guestfwds && guestfwds[i]; i++) {
        if (!slirp_guestfwd(s, guestfwds[i], errp)) {
            return false;
        }
    }
    return true;
}

static bool slirp_init_netdev(QnicNetdev *nd, QnicOpts *opts, GError **errp)
{
    SlirpState *s = g_new0(SlirpState, 1);
    SlirpConfig cfg = { .version = SLIRP_CONFIG_VERSION };
    bool ipv4, ipv6;

    slirp_families(opts, &ipv4, &ipv6);
    nd->state = s;
    s->nd = nd;
    s->pollfds = g_array_new(FALSE, TRUE, sizeof(GPollFD));

    if (!slirp_check_opts(opts, ipv4, ipv6, errp)) {
        return false;
    }
    cfg.in_enabled = ipv4;
    cfg.in6_enabled = ipv6;
    if (!slirp_config_ipv4(opts, &cfg, errp) || !slirp_config_ipv6(opts, &cfg, errp)) {
        return false;
    }
    slirp_config_services(s, opts, &cfg);

    s->nc = qnic_net_client_new(nd->be, &slirp_client_ops, "user", nd->id, s);
    nd->queues = 1;
    nd->ncs = g_new0(QnicNetClient *, 1);
    nd->ncs[0] = s->nc;
    g_snprintf(s->nc->info_str, sizeof(s->nc->info_str), "net=%s,restrict=%s",
               inet_ntoa(cfg.vnetwork), cfg.restricted ? "on" : "off");

    s->slirp = slirp_new(&cfg, &slirp_callbacks, s);
    if (!s->slirp) {
        qnic_error_setg(errp, "user netdev: libslirp rejected the configuration");
        return false;
    }
    s->source = (SlirpSource *)g_source_new(&slirp_source_funcs, sizeof(SlirpSource));
    s->source->s = s;
    g_source_attach(&s->source->src, qnic_main_context());
    return slirp_add_forwards(s, opts, cfg.vdhcp_start, errp);
}

static void slirp_cleanup_netdev(QnicNetdev *nd)
{
    if (nd->state) {
        slirp_state_free(nd->state);
        nd->state = NULL;
    }
}

static const QnicNetdevClass slirp_netdev_class = {
    .type = "user",
    .init = slirp_init_netdev,
    .cleanup = slirp_cleanup_netdev,
};
QNIC_NETDEV_REGISTER(slirp_netdev_class)
