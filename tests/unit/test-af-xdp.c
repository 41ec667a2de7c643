/*
 * -netdev af-xdp with sock-fds and inhibit=on, the way an unprivileged
 * qnic gets AF_XDP: a privileged parent (here the test itself) loads
 * libxdp's default program on the interface, puts one open, unbound AF_XDP
 * socket per queue into the program's xsks_map and hands the fds over; qnic
 * binds them (through the kernel interface where libxdp is older than 1.4)
 * and loads nothing. Checked with the kernel on the other end of a veth
 * pair: an ARP request from a client of the test goes out through the
 * socket and the kernel's reply comes back through it. The program stays
 * when the netdev goes: it is the parent's. Each case runs in a subprocess
 * in a network namespace of its own (unshare), which dies with it.
 */
#include "test-tap-helpers.h"
#include "qnic-config.h"

#include <sched.h>
#include <linux/capability.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <net/if.h>
#include <sys/socket.h>

#ifdef CONFIG_AF_XDP
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <xdp/libxdp.h>
#include <xdp/xsk.h>

#ifndef AF_XDP
#define AF_XDP 44
#endif

static const uint8_t host_ip[4] = { 10, 78, 0, 1 };
static const uint8_t nic_ip[4] = { 10, 78, 0, 2 };

static bool match_arp_reply(const uint8_t *f, size_t len, void *opaque)
{
    return len >= 42 && qnic_ld16be(f + 12) == 0x0806 && qnic_ld16be(f + 20) == 2 &&
           !memcmp(f + 28, host_ip, 4) && !memcmp(f, test_mac, 6);
}

typedef struct FindArp {
    TestSink *sink;
} FindArp;

static bool arp_reply_seen(void *opaque)
{
    FindArp *c = opaque;
    return test_sink_find(c->sink, 0, match_arp_reply, NULL) >= 0;
}

/* Drop every capability but `keep` (-1: none), as an unprivileged qnic
 * would run, with the default 8 MiB RLIMIT_MEMLOCK. */
static void drop_privileges(int keep)
{
    struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct d[2] = { { 0 } };
    struct rlimit lim = { 8 << 20, 8 << 20 };

    g_assert_cmpint(setrlimit(RLIMIT_MEMLOCK, &lim), ==, 0);
    if (keep >= 0) {
        d[keep / 32].effective = d[keep / 32].permitted = 1u << (keep % 32);
    }
    g_assert_cmpint(syscall(SYS_capset, &h, d), ==, 0);
}

/* The privileged parent's part, in a process of its own as it would be
 * (libxdp keeps the loaded program's bookkeeping to the end): the program
 * on xa, and an unbound socket in its map for qnic. */
static int parent_prepares_socket(void)
{
    int sfd, map_fd = -1, key = 0, status;
    pid_t pid;

    libbpf_set_print(NULL);     /* the loaders' notes are not the test's */
    libxdp_set_print(NULL);
    g_assert_cmpint(unshare(CLONE_NEWNET), ==, 0);
    g_assert_cmpint(test_sh("ip link add xa type veth peer name xb && ip link set xa up && "
                            "ip addr add 10.78.0.1/24 dev xb && ip link set xb up"), ==, 0);
    sfd = socket(AF_XDP, SOCK_RAW, 0);     /* in the namespace, as xa */
    g_assert_cmpint(sfd, >=, 0);
    pid = fork();
    if (pid == 0) {
        _exit(xsk_setup_xdp_prog((int)if_nametoindex("xa"), &map_fd) == 0 &&
              bpf_map_update_elem(map_fd, &key, &sfd, 0) == 0 ? 0 : 1);
    }
    g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
    g_assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    return sfd;
}

/* qnic with CAP_IPC_LOCK alone binds the socket and moves frames. */
static void child_sock_fds(void)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *opts = NULL;
    int sfd = parent_prepares_socket();
    uint8_t f[64];
    QnicNetdev *nd;
    TestSink *sink;
    FindArp c;

    drop_privileges(CAP_IPC_LOCK);
    opts = g_strdup_printf("af-xdp,id=x0,ifname=xa,inhibit=on,sock-fds=%d", sfd);
    nd = qnic_netdev_add_str(test_backends(), opts, &err);
    g_assert_no_error(err);
    sink = test_sink_new(nd->ncs[0], "sink");
    g_assert_cmpint(qnic_net_send(sink->nc, f, test_arp_request(f, nic_ip, host_ip)), >, 0);
    c.sink = sink;
    g_assert_true(test_pump(5000, arp_reply_seen, &c));
    test_sink_free(sink);
    qnic_netdev_del(nd);
    /* inhibit=on: the program is the parent's and stays */
    g_assert_cmpint(test_sh("ip link show xa | grep -q xdp"), ==, 0);
}

/* With no capability at all the 16 MiB UMEM exceeds the 8 MiB memlock
 * allowance: QEMU's umem error, with the kernel's reason. */
static void child_sock_fds_no_memlock(void)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *opts = NULL;
    int sfd = parent_prepares_socket();

    drop_privileges(-1);
    opts = g_strdup_printf("af-xdp,id=x0,ifname=xa,inhibit=on,sock-fds=%d", sfd);
    g_assert_null(qnic_netdev_add_str(test_backends(), opts, &err));
    g_assert_nonnull(err);
    g_test_message("%s", err->message);
    g_assert_cmpstr(err->message, ==,
                    "failed to create umem for xa queue_index: 0: No buffer space available");
}

static void run_child(void (*child)(void))
{
    if (geteuid() != 0) {
        g_test_skip("needs root (network namespace, veth, XDP program load)");
        return;
    }
    if (g_test_subprocess()) {
        child();
        return;
    }
    g_test_trap_subprocess(NULL, 60 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_INHERIT_STDERR);
    g_test_trap_assert_passed();
}

static void test_sock_fds(void)
{
    run_child(child_sock_fds);
}

static void test_sock_fds_no_memlock(void)
{
    run_child(child_sock_fds_no_memlock);
}
#else
static void test_sock_fds(void)
{
    g_test_skip("qnic was built without libxdp (-netdev af-xdp)");
}

static void test_sock_fds_no_memlock(void)
{
    test_sock_fds();
}
#endif

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    qnic_bql_lock();
    g_test_add_func("/af-xdp/sock-fds", test_sock_fds);
    g_test_add_func("/af-xdp/sock-fds-no-memlock", test_sock_fds_no_memlock);
    return g_test_run();
}
