/*
 * Migration channels: QEMU's migration URIs turned into a file descriptor
 * for the stream. unix:PATH and tcp:HOST:PORT connect (source) or listen
 * (destination); fd:NAME is a descriptor the client passed with QMP getfd
 * (or, for -incoming, an inherited descriptor number); exec:CMD runs
 * /bin/sh -c CMD with the stream on its stdin (source) or stdout
 * (destination); file:PATH writes a snapshot that `-incoming file:PATH`
 * restores in a new process. Errors use QEMU 7.2's words where QEMU has the
 * scheme. Every fd returned is non-blocking and close-on-exec.
 */
#include "vmm/migration.h"
#include "qnic/log.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <netdb.h>
#include <fcntl.h>
#include <unistd.h>

static GHashTable *monitor_fds;     /* name -> fd (GINT_TO_POINTER) */

void qnic_mig_fd_add(const char *name, int fd)
{
    int old;

    if (!monitor_fds) {
        monitor_fds = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    }
    old = qnic_mig_fd_take(name);
    if (old >= 0) {
        close(old);             /* QEMU replaces a name given again */
    }
    g_hash_table_insert(monitor_fds, g_strdup(name), GINT_TO_POINTER(fd));
}

int qnic_mig_fd_take(const char *name)
{
    gpointer v;

    if (!monitor_fds || !g_hash_table_lookup_extended(monitor_fds, name, NULL, &v)) {
        return -1;
    }
    g_hash_table_remove(monitor_fds, name);
    return GPOINTER_TO_INT(v);
}

void qnic_mig_fds_free(void)
{
    GHashTableIter it;
    gpointer v;

    if (!monitor_fds) {
        return;
    }
    g_hash_table_iter_init(&it, monitor_fds);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        close(GPOINTER_TO_INT(v));
    }
    g_hash_table_destroy(monitor_fds);
    monitor_fds = NULL;
}

static const char *const schemes[] = { "unix:", "tcp:", "fd:", "exec:", "file:" };

bool qnic_mig_uri_known(const char *uri)
{
    for (size_t i = 0; i < QNIC_ARRAY_SIZE(schemes); i++) {
        if (g_str_has_prefix(uri, schemes[i])) {
            return true;
        }
    }
    return false;
}

static int set_flags(int fd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC);
    return fd;
}

static bool unix_addr(const char *path, struct sockaddr_un *sa, GError **errp)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa->sun_path)) {
        qnic_error_setg(errp, "UNIX socket path '%s' is too long", path);
        return false;
    }
    strcpy(sa->sun_path, path);
    return true;
}

/* "HOST:PORT", "[V6]:PORT" into getaddrinfo results. */
static struct addrinfo *tcp_addr(const char *hp, bool passive, GError **errp)
{
    g_autofree char *host = NULL;
    const char *colon = strrchr(hp, ':');
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = passive ? AI_PASSIVE : 0 };
    struct addrinfo *res = NULL;
    int rc;

    if (!colon || !colon[1]) {
        qnic_error_setg(errp, "error parsing address '%s'", hp);
        return NULL;
    }
    host = g_strndup(hp, colon - hp);
    if (host[0] == '[' && host[strlen(host) - 1] == ']') {
        memmove(host, host + 1, strlen(host) - 2);
        host[strlen(host) - 2] = '\0';
    }
    rc = getaddrinfo(*host ? host : NULL, colon + 1, &hints, &res);
    if (rc != 0) {
        qnic_error_setg(errp, "address resolution failed for %s:%s: %s", host, colon + 1,
                        gai_strerror(rc));
        return NULL;
    }
    return res;
}

static int connect_tcp(const char *hp, GError **errp)
{
    struct addrinfo *res = tcp_addr(hp, false, errp);
    int fd = -1, err = 0;

    for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, 0);
        if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) < 0) {
            err = errno;
            close(fd);
            fd = -1;
        }
    }
    if (res && fd < 0) {
        qnic_error_setg(errp, "Failed to connect to '%s': %s", hp, g_strerror(err));
    }
    if (res) {
        freeaddrinfo(res);
    }
    return fd;
}

static int listen_tcp(const char *hp, GError **errp)
{
    struct addrinfo *res = tcp_addr(hp, true, errp);
    int fd = -1, err = 0, one = 1;

    for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            continue;
        }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, a->ai_addr, a->ai_addrlen) < 0 || listen(fd, 1) < 0) {
            err = errno;
            close(fd);
            fd = -1;
        }
    }
    if (res && fd < 0) {
        qnic_error_setg(errp, "Failed to bind socket to %s: %s", hp, g_strerror(err));
    }
    if (res) {
        freeaddrinfo(res);
    }
    return fd;
}

static int unix_socket(const char *path, bool listening, GError **errp)
{
    struct sockaddr_un sa;
    int fd;

    if (!unix_addr(path, &sa, errp)) {
        return -1;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        qnic_error_setg_errno(errp, errno, "Failed to create socket");
        return -1;
    }
    if (listening) {
        unlink(path);
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1) < 0) {
            qnic_error_setg(errp, "Failed to bind socket to %s: %s", path, g_strerror(errno));
            close(fd);
            return -1;
        }
    } else if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        qnic_error_setg(errp, "Failed to connect to '%s': %s", path, g_strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* /bin/sh -c cmd with its stdin (to_child) or stdout piped to us. */
static int spawn_exec(const char *cmd, bool to_child, pid_t *pid, GError **errp)
{
    const char *argv[] = { "/bin/sh", "-c", cmd, NULL };
    GError *err = NULL;
    int fd = -1;
    GPid child;

    if (!g_spawn_async_with_pipes(NULL, (char **)argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD, NULL,
                                  NULL, &child, to_child ? &fd : NULL, to_child ? NULL : &fd,
                                  NULL, &err)) {
        qnic_error_setg(errp, "cannot run '%s': %s", cmd, err->message);
        g_error_free(err);
        return -1;
    }
    *pid = child;
    return fd;
}

int qnic_mig_connect(const char *uri, pid_t *pid, GError **errp)
{
    int fd = -1;

    *pid = -1;
    if (g_str_has_prefix(uri, "unix:")) {
        fd = unix_socket(uri + 5, false, errp);
    } else if (g_str_has_prefix(uri, "tcp:")) {
        fd = connect_tcp(uri + 4, errp);
    } else if (g_str_has_prefix(uri, "fd:")) {
        fd = qnic_mig_fd_take(uri + 3);
        if (fd < 0) {
            qnic_error_setg(errp, "File descriptor named '%s' has not been found", uri + 3);
        }
    } else if (g_str_has_prefix(uri, "exec:")) {
        fd = spawn_exec(uri + 5, true, pid, errp);
    } else if (g_str_has_prefix(uri, "file:")) {
        fd = open(uri + 5, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0) {
            qnic_error_setg(errp, "Could not open '%s': %s", uri + 5, g_strerror(errno));
        }
    } else {
        qnic_error_setg(errp, "Parameter 'uri' expects a valid migration protocol");
    }
    return fd < 0 ? -1 : set_flags(fd);
}

int qnic_mig_listen(const char *uri, bool *listening, pid_t *pid, GError **errp)
{
    int fd = -1;
    uint64_t n;

    *listening = false;
    *pid = -1;
    if (g_str_has_prefix(uri, "unix:")) {
        fd = unix_socket(uri + 5, true, errp);
        *listening = true;
    } else if (g_str_has_prefix(uri, "tcp:")) {
        fd = listen_tcp(uri + 4, errp);
        *listening = true;
    } else if (g_str_has_prefix(uri, "fd:")) {
        /* an inherited descriptor number, or a name from getfd */
        if (qnic_parse_uint(uri + 3, &n, NULL) && n <= INT_MAX) {
            fd = fcntl((int)n, F_GETFD) < 0 ? -1 : (int)n;
        } else {
            fd = qnic_mig_fd_take(uri + 3);
        }
        if (fd < 0) {
            qnic_error_setg(errp, "File descriptor named '%s' has not been found", uri + 3);
        }
    } else if (g_str_has_prefix(uri, "exec:")) {
        fd = spawn_exec(uri + 5, false, pid, errp);
    } else if (g_str_has_prefix(uri, "file:")) {
        fd = open(uri + 5, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            qnic_error_setg(errp, "Could not open '%s': %s", uri + 5, g_strerror(errno));
        }
    } else {
        qnic_error_setg(errp, "Parameter 'uri' expects a valid migration protocol");
    }
    return fd < 0 ? -1 : set_flags(fd);
}
