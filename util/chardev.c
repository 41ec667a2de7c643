/*
 * Chardev sets (the ids one machine's chardevs are found by) and the Unix
 * socket chardev (see qnic/chardev.h):
 * QEMU's `-chardev socket` client/server/wait/reconnect behaviour for one
 * connection at a time, the listening and reconnect sources on the qnic
 * main loop, and chardevs wrapped around an already connected descriptor.
 */
#include "qnic/chardev.h"
#include "qnic/schema.h"
#include "qnic/mainloop.h"
#include "qnic/log.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

struct QnicChardev {
    char *id;
    char *desc;
    struct sockaddr_un sa;
    socklen_t salen;
    bool has_addr;              /* false: made from an fd */
    bool server;
    bool unlink_path;
    unsigned reconnect;         /* seconds, 0 = never */
    int listen_fd;
    int fd;
    bool in_use;
    QnicFdWatch *listen_watch;
    guint reconnect_src;
    QnicChardevOpenedFunc *opened;
    void *opaque;
    QnicChardevSet *set;        /* the set that finds it by id */
};

struct QnicChardevSet {
    GPtrArray *chardevs;        /* QnicChardev *, creation order */
};

QnicChardevSet *qnic_chardev_set_new(void)
{
    QnicChardevSet *set = g_new0(QnicChardevSet, 1);

    set->chardevs = g_ptr_array_new();
    return set;
}

void qnic_chardev_set_free(QnicChardevSet *set)
{
    if (!set) {
        return;
    }
    /* Newest first, as they were made. */
    while (set->chardevs->len) {
        qnic_chardev_free(g_ptr_array_index(set->chardevs, set->chardevs->len - 1));
    }
    g_ptr_array_free(set->chardevs, TRUE);
    g_free(set);
}

QnicChardev *qnic_chardev_find(QnicChardevSet *set, const char *id)
{
    for (guint i = 0; id && i < set->chardevs->len; i++) {
        QnicChardev *c = g_ptr_array_index(set->chardevs, i);
        if (strcmp(c->id, id) == 0) {
            return c;
        }
    }
    return NULL;
}

const char *qnic_chardev_id(const QnicChardev *chr) { return chr->id; }
const char *qnic_chardev_describe(const QnicChardev *chr) { return chr->desc; }
int qnic_chardev_fd(const QnicChardev *chr) { return chr->fd; }
bool qnic_chardev_connected(const QnicChardev *chr) { return chr->fd >= 0; }

static const char *const supported_nothing[] = {
    "null", "file", "pipe", "pty", "stdio", "serial", "tty", "parallel", "parport",
    "udp", "ringbuf", "memory", "msmouse", "wctablet", "braille", "testdev",
    "spicevmc", "spiceport", "qemu-vdagent", "dbus", "vc", "console", NULL,
};

QnicOpts *qnic_chardev_parse(const char *str, GError **errp)
{
    g_autoptr(QnicOpts) o = qnic_opts_parse("chardev", str, "backend", errp);
    const char *backend;
    static const char *const tcp_only[] = {
        "host", "port", "to", "ipv4", "ipv6", "fd", "tls-creds", "logfile",
    };

    if (!o) {
        return NULL;
    }
    /* QEMU's backends qnic lacks get a word of their own. */
    backend = qnic_opts_get(o, "backend");
    if (backend && g_strv_contains(supported_nothing, backend)) {
        qnic_error_setg_invalid(errp, "chardev backend '%s' is not supported by qnic "
                                "(only socket, for vhost-user)", backend);
        return NULL;
    }
    if (!qnic_schema_check_kind(QNIC_SCHEMA_CHARDEV, o, NULL, errp)) {
        return NULL;
    }
    for (size_t i = 0; i < QNIC_ARRAY_SIZE(tcp_only); i++) {
        if (qnic_opts_is_set(o, tcp_only[i])) {
            qnic_error_setg_invalid(errp, "chardev socket option '%s' is not supported by qnic "
                                    "(only Unix sockets: path=)", tcp_only[i]);
            return NULL;
        }
    }
    if (qnic_opts_get_bool(o, "telnet", false) || qnic_opts_get_bool(o, "websocket", false) ||
        qnic_opts_get_bool(o, "mux", false)) {
        qnic_error_setg_invalid(errp, "chardev socket with telnet, websocket or mux is not "
                                "supported by qnic");
        return NULL;
    }
    if (!qnic_opts_get(o, "path")) {
        qnic_error_setg_invalid(errp, "chardev: socket: no host given");
        return NULL;
    }
    if (qnic_opts_get_bool(o, "server", false) && qnic_opts_get_uint(o, "reconnect", 0)) {
        qnic_error_setg_invalid(errp, "'reconnect' option is incompatible with "
                                "'server' option");
        return NULL;
    }
    return g_steal_pointer(&o);
}

static QnicChardev *chardev_alloc(QnicChardevSet *set, const char *id, GError **errp)
{
    QnicChardev *chr;

    if (qnic_chardev_find(set, id)) {
        qnic_error_setg_invalid(errp, "attempt to add duplicate property '%s' to object "
                                "(type 'container')", id);
        return NULL;
    }
    chr = g_new0(QnicChardev, 1);
    chr->id = g_strdup(id);
    chr->fd = -1;
    chr->listen_fd = -1;
    chr->set = set;
    g_ptr_array_add(set->chardevs, chr);
    return chr;
}

static void accept_cb(void *opaque, int fd, GIOCondition cond);

static void listen_watch_update(QnicChardev *chr)
{
    bool want = chr->listen_fd >= 0 && chr->fd < 0 && chr->opened;

    if (want && !chr->listen_watch) {
        chr->listen_watch = qnic_fd_watch_add(chr->listen_fd, G_IO_IN, accept_cb, chr);
    } else if (!want && chr->listen_watch) {
        qnic_fd_watch_remove(chr->listen_watch);
        chr->listen_watch = NULL;
    }
}

static bool do_accept(QnicChardev *chr, bool block)
{
    int fd;

    if (!block) {
        fd = accept4(chr->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd >= 0) {
            fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
        }
    } else {
        do {
            fd = accept4(chr->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        } while (fd < 0 && errno == EINTR);
    }
    if (fd < 0) {
        return false;
    }
    chr->fd = fd;
    listen_watch_update(chr);
    return true;
}

static void accept_cb(void *opaque, int fd, GIOCondition cond)
{
    QnicChardev *chr = opaque;

    if (chr->fd >= 0 || !do_accept(chr, false)) {
        return;
    }
    if (chr->opened) {
        chr->opened(chr->opaque, chr);
    }
}

static int connect_once(QnicChardev *chr, GError **errp)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0) {
        qnic_error_setg_errno(errp, errno, "chardev '%s': socket", chr->id);
        return -1;
    }
    if (connect(fd, (struct sockaddr *)&chr->sa, chr->salen) < 0) {
        qnic_error_setg_errno(errp, errno, "Failed to connect to '%s'", chr->sa.sun_path[0] ?
                              chr->sa.sun_path : chr->sa.sun_path + 1);
        close(fd);
        return -1;
    }
    return fd;
}

static gboolean reconnect_cb(gpointer opaque)
{
    QnicChardev *chr = opaque;
    int fd;

    if (chr->fd >= 0) {
        chr->reconnect_src = 0;
        return G_SOURCE_REMOVE;
    }
    fd = connect_once(chr, NULL);
    if (fd < 0) {
        return G_SOURCE_CONTINUE;      /* try again in reconnect seconds */
    }
    chr->fd = fd;
    chr->reconnect_src = 0;
    if (chr->opened) {
        chr->opened(chr->opaque, chr);
    }
    return G_SOURCE_REMOVE;
}

static void reconnect_arm(QnicChardev *chr)
{
    if (chr->reconnect && chr->has_addr && !chr->server && !chr->reconnect_src && chr->opened) {
        chr->reconnect_src = g_timeout_add_seconds(chr->reconnect, reconnect_cb, chr);
    }
}

QnicChardev *qnic_chardev_new_str(QnicChardevSet *set, const char *str, GError **errp)
{
    g_autoptr(QnicOpts) o = qnic_chardev_parse(str, errp);
    QnicChardev *chr;
    const char *path;
    bool abstract, tight;
    size_t plen;

    if (!o) {
        return NULL;
    }
    chr = chardev_alloc(set, qnic_opts_get(o, "id"), errp);
    if (!chr) {
        return NULL;
    }
    path = qnic_opts_get(o, "path");
    abstract = qnic_opts_get_bool(o, "abstract", false);
    tight = qnic_opts_get_bool(o, "tight", true);
    plen = strlen(path);
    if (plen + (abstract ? 1 : 0) >= sizeof(chr->sa.sun_path)) {
        qnic_error_setg_invalid(errp, "UNIX socket path '%s' is too long", path);
        qnic_chardev_free(chr);
        return NULL;
    }
    chr->sa.sun_family = AF_UNIX;
    memcpy(chr->sa.sun_path + (abstract ? 1 : 0), path, plen);
    chr->salen = abstract && tight ? offsetof(struct sockaddr_un, sun_path) + 1 + plen
                                   : sizeof(chr->sa);
    chr->has_addr = true;
    chr->server = qnic_opts_get_bool(o, "server", false);
    chr->reconnect = (unsigned)MIN(qnic_opts_get_uint(o, "reconnect", 0), 86400);
    chr->desc = g_strdup_printf("unix:%s%s%s", abstract ? "@" : "", path,
                                chr->server ? ",server=on" : "");

    if (chr->server) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (!abstract) {
            unlink(path);
            chr->unlink_path = true;
        }
        if (fd < 0 || bind(fd, (struct sockaddr *)&chr->sa, chr->salen) < 0 || listen(fd, 1) < 0) {
            qnic_error_setg_errno(errp, errno, "Failed to bind socket to %s", path);
            if (fd >= 0) {
                close(fd);
            }
            chr->unlink_path = false;
            qnic_chardev_free(chr);
            return NULL;
        }
        chr->listen_fd = fd;
        if (qnic_opts_get_bool(o, "wait", true)) {
            /* QEMU's words, so scripts waiting for them keep working. */
            fprintf(stderr, "qnic-vmm: waiting for connection on: disconnected:%s\n", chr->desc);
            if (!do_accept(chr, true)) {
                qnic_error_setg_errno(errp, errno, "chardev '%s': accept", chr->id);
                qnic_chardev_free(chr);
                return NULL;
            }
        }
        return chr;
    }
    if (!chr->reconnect) {
        chr->fd = connect_once(chr, errp);
        if (chr->fd < 0) {
            qnic_chardev_free(chr);
            return NULL;
        }
    } else {
        /* QEMU connects asynchronously with reconnect=N; a netdev using the
         * chardev waits for the connection itself. */
        chr->fd = connect_once(chr, NULL);
    }
    return chr;
}

QnicChardev *qnic_chardev_new_fd(QnicChardevSet *set, const char *id, int fd, GError **errp)
{
    QnicChardev *chr;
    int type = 0;
    socklen_t tl = sizeof(type);

    if (fd < 0 || getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 || type != SOCK_STREAM) {
        qnic_error_setg_invalid(errp, "chardev '%s': descriptor %d is not a stream socket", id, fd);
        return NULL;
    }
    chr = chardev_alloc(set, id, errp);
    if (!chr) {
        return NULL;
    }
    chr->fd = fd;
    chr->desc = g_strdup_printf("fd:%d", fd);
    return chr;
}

bool qnic_chardev_claim(QnicChardev *chr, GError **errp)
{
    if (chr->in_use) {
        qnic_error_setg_invalid(errp, "Device '%s' is in use", chr->id);
        return false;
    }
    chr->in_use = true;
    return true;
}

void qnic_chardev_release(QnicChardev *chr)
{
    chr->in_use = false;
    qnic_chardev_set_handler(chr, NULL, NULL);
}

bool qnic_chardev_wait_connected(QnicChardev *chr, GError **errp)
{
    while (chr->fd < 0) {
        if (chr->listen_fd >= 0) {
            fprintf(stderr, "qnic-vmm: waiting for connection on: disconnected:%s\n", chr->desc);
            if (!do_accept(chr, true)) {
                qnic_error_setg_errno(errp, errno, "chardev '%s': accept", chr->id);
                return false;
            }
        } else if (chr->has_addr) {
            GError *err = NULL;
            chr->fd = connect_once(chr, &err);
            if (chr->fd < 0) {
                if (!chr->reconnect) {
                    g_propagate_error(errp, err);
                    return false;
                }
                g_error_free(err);
                g_usleep((gulong)chr->reconnect * G_USEC_PER_SEC);
            }
        } else {
            qnic_error_setg_invalid(errp, "chardev '%s' is disconnected", chr->id);
            return false;
        }
    }
    return true;
}

void qnic_chardev_set_handler(QnicChardev *chr, QnicChardevOpenedFunc *cb, void *opaque)
{
    chr->opened = cb;
    chr->opaque = opaque;
    listen_watch_update(chr);
    if (!cb && chr->reconnect_src) {
        g_source_remove(chr->reconnect_src);
        chr->reconnect_src = 0;
    }
    if (cb && chr->fd < 0) {
        reconnect_arm(chr);
    }
}

void qnic_chardev_disconnect(QnicChardev *chr)
{
    if (chr->fd >= 0) {
        close(chr->fd);
        chr->fd = -1;
    }
    listen_watch_update(chr);
    reconnect_arm(chr);
}

void qnic_chardev_free(QnicChardev *chr)
{
    if (!chr) {
        return;
    }
    g_ptr_array_remove(chr->set->chardevs, chr);
    if (chr->listen_watch) {
        qnic_fd_watch_remove(chr->listen_watch);
    }
    if (chr->reconnect_src) {
        g_source_remove(chr->reconnect_src);
    }
    if (chr->fd >= 0) {
        close(chr->fd);
    }
    if (chr->listen_fd >= 0) {
        close(chr->listen_fd);
        if (chr->unlink_path) {
            unlink(chr->sa.sun_path);
        }
    }
    g_free(chr->id);
    g_free(chr->desc);
    g_free(chr);
}
