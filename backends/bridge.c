/*
 * The bridge netdev (`-netdev bridge,br=BR,helper=PATH`) and the code that
 * runs a bridge helper for it and for `-netdev tap,helper=`. A helper is a
 * small privileged program that creates a tap, checks an ACL, enslaves the
 * tap to the bridge and hands the open tap fd back over a unix socketpair
 * (SCM_RIGHTS). qnic speaks the protocol of QEMU's qemu-bridge-helper
 * (`HELPER --use-vnet --fd=N --br=BR`), so either qnic-bridge-helper or
 * QEMU's helper works. The helper's stderr is captured so that a refusal
 * (an ACL deny, a missing bridge) reaches the user as one clear error.
 */
#include "tap-int.h"
#include "qnic/log.h"
#include "qnic/fd-passing.h"
#include "backends/bridge-helper-path.h"

#include <fcntl.h>
#include <stdio.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>
#include <net/if.h>
#include <sys/socket.h>
#include <sys/wait.h>

/* A helper that neither answers nor exits within this time is killed. */
#define HELPER_TIMEOUT_MS 20000
/* fd number the helper sees its end of the socketpair as. */
#define HELPER_CHILD_FD 3

char *qnic_bridge_default_helper(void)
{
    const char *env = g_getenv("QNIC_BRIDGE_HELPER");

    if (env && env[0]) {
        return g_strdup(env);
    }
    /* Prefer the helper built with this tree (tests and uninstalled use),
     * then the installed one. */
    if (access(QNIC_BRIDGE_HELPER_BUILD_PATH, X_OK) == 0) {
        return g_strdup(QNIC_BRIDGE_HELPER_BUILD_PATH);
    }
    return g_strdup(QNIC_BRIDGE_HELPER_INSTALL_PATH);
}

static int recv_fd(int sock, int timeout_ms, GError **errp)
{
    char data[16];
    struct iovec iov = { .iov_base = data, .iov_len = sizeof(data) };
    struct pollfd pfd = { .fd = sock, .events = POLLIN };
    ssize_t ret;
    int r, fd, nfds;

    do {
        r = poll(&pfd, 1, timeout_ms);
    } while (r < 0 && errno == EINTR);
    if (r == 0) {
        qnic_error_setg(errp, "timed out after %d s", timeout_ms / 1000);
        return -1;
    }
    ret = qnic_recv_fds(sock, &iov, 1, &fd, 1, &nfds, NULL, 0);
    if (ret < 0) {
        qnic_error_setg_errno(errp, errno, "receiving the tap fd failed");
        return -1;
    }
    if (ret == 0) {
        qnic_error_setg(errp, "it exited without sending a tap fd");
        return -1;
    }
    if (!nfds) {
        qnic_error_setg(errp, "its message carried no file descriptor");
        return -1;
    }
    return fd;
}

/* What the helper printed, for the error message. */
static char *read_helper_stderr(int fd)
{
    GString *s = g_string_new(NULL);
    char buf[1024];
    ssize_t n;
    int fl = fcntl(fd, F_GETFL);

    /* The child has exited; a grandchild holding the pipe must not hang us. */
    if (fl >= 0) {
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    }
    while (s->len < 8192 && (n = read(fd, buf, sizeof(buf))) > 0) {
        g_string_append_len(s, buf, n);
    }
    /* One line for the user: the helper's lines joined with "; ". */
    g_strstrip(s->str);
    g_auto(GStrv) lines = g_strsplit(s->str, "\n", 0);
    g_string_free(s, TRUE);
    return g_strjoinv("; ", lines);
}

int qnic_bridge_run_helper(const char *helper, const char *br, GError **errp)
{
    g_autoptr(GError) local = NULL;
    g_autofree char *fd_arg = g_strdup_printf("--fd=%d", HELPER_CHILD_FD);
    g_autofree char *br_arg = NULL;
    g_autofree char *cmdline = NULL;
    g_autofree char *msg = NULL;
    const char *argv_direct[] = { helper, "--use-vnet", fd_arg, NULL, NULL };
    const char *argv_sh[] = { "/bin/sh", "-c", NULL, NULL };
    const char *const *argv;
    int sv[2];
    int source_fds[1], target_fds[1] = { HELPER_CHILD_FD };
    int err_fd = -1, tap_fd, status = 0;
    GPid pid;

    if (!br || !br[0] || strlen(br) >= IFNAMSIZ || strchr(br, '/') || strchr(br, ' ')) {
        g_set_error(errp, QNIC_ERROR, QNIC_ERROR_INVALID, "invalid bridge name '%s'",
                    br ? br : "");
        return -1;
    }
    br_arg = g_strdup_printf("--br=%s", br);
    argv_direct[3] = br_arg;
    if (strchr(helper, ' ') || strchr(helper, '\t')) {
        /* As QEMU does: a helper with arguments of its own runs in a shell. */
        cmdline = g_strdup_printf("%s --use-vnet %s %s", helper, fd_arg, br_arg);
        argv_sh[2] = cmdline;
        argv = argv_sh;
    } else {
        if (access(helper, X_OK) < 0) {
            qnic_error_setg_errno(errp, errno, "bridge helper %s cannot be run", helper);
            return -1;
        }
        argv = argv_direct;
    }
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        qnic_error_setg_errno(errp, errno, "socketpair for the bridge helper failed");
        return -1;
    }
    source_fds[0] = sv[1];
    if (!g_spawn_async_with_pipes_and_fds(NULL, argv, NULL,
                                          G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_CHILD_INHERITS_STDIN,
                                          NULL, NULL, -1, -1, -1, source_fds, target_fds, 1,
                                          &pid, NULL, NULL, &err_fd, &local)) {
        close(sv[0]);
        close(sv[1]);
        qnic_error_setg(errp, "bridge helper %s could not be started: %s", helper,
                        local->message);
        return -1;
    }
    close(sv[1]);

    tap_fd = recv_fd(sv[0], HELPER_TIMEOUT_MS, &local);
    close(sv[0]);
    if (tap_fd < 0 && local && strstr(local->message, "timed out")) {
        kill(pid, SIGKILL);
    }
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    g_spawn_close_pid(pid);
    msg = read_helper_stderr(err_fd);
    close(err_fd);

    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        if (tap_fd >= 0) {
            close(tap_fd);
        }
        if (WIFEXITED(status)) {
            qnic_error_setg(errp, "bridge helper %s failed for bridge %s (exit status %d)%s%s",
                            helper, br, WEXITSTATUS(status), msg[0] ? ": " : "", msg);
        } else {
            qnic_error_setg(errp, "bridge helper %s for bridge %s was killed by signal %d%s%s",
                            helper, br, WTERMSIG(status), msg[0] ? ": " : "", msg);
        }
        return -1;
    }
    if (tap_fd < 0) {
        qnic_error_setg(errp, "bridge helper %s for bridge %s: %s%s%s", helper, br,
                        local->message, msg[0] ? ": " : "", msg);
        return -1;
    }
    return tap_fd;
}

static bool bridge_init(QnicNetdev *nd, QnicOpts *opts, GError **errp)
{
    const char *br = qnic_opts_get(opts, "br");
    /* The schema may carry QEMU's helper path as default: only a helper the
     * user named replaces qnic's own. */
    g_autofree char *helper = qnic_opts_is_set(opts, "helper") ?
        g_strdup(qnic_opts_get(opts, "helper")) : NULL;
    QnicTapQueueSetup q = { .fd = -1 };
    char name[IFNAMSIZ];

    if (!br || !br[0]) {
        br = QNIC_BRIDGE_DEFAULT_BR;
    }
    if (!helper || !helper[0]) {
        g_free(helper);
        helper = qnic_bridge_default_helper();
    }
    q.fd = qnic_bridge_run_helper(helper, br, errp);
    if (q.fd < 0) {
        return false;
    }
    if (!qnic_tap_fd_info(q.fd, name, sizeof(name), &q.vnet_hdr, errp)) {
        close(q.fd);
        return false;
    }
    if (!qnic_tap_netdev_setup(nd, "bridge", &q, 1, name, NULL, errp)) {
        close(q.fd);
        return false;
    }
    snprintf(nd->ncs[0]->info_str, sizeof(nd->ncs[0]->info_str),
             "helper=%s,br=%s,ifname=%s", helper, br, name);
    return true;
}

static void bridge_cleanup(QnicNetdev *nd)
{
    qnic_tap_netdev_cleanup(nd);
}

static const QnicNetdevClass bridge_netdev_class = {
    .type = "bridge",
    .init = bridge_init,
    .cleanup = bridge_cleanup,
};
QNIC_NETDEV_REGISTER(bridge_netdev_class)
