/*
 * Tests of the bridge netdev and qnic-bridge-helper: inside a network
 * namespace the test owns, a Linux bridge with one veth port whose peer sits
 * in a second namespace with an address; qnic's helper creates the tap,
 * checks the ACL (with include, allow, deny, deny all), enslaves it, and
 * frames from qnic get ARP and ICMP answers from the far namespace's
 * kernel. Refusals (ACL deny, missing bridge) must come back as one-line
 * errors. The parent creates and always deletes both namespaces; the body
 * runs in a subprocess with a time limit.
 */
#include "test-tap-helpers.h"
#include "../lib/test-backends.h"
#include <sys/mount.h>
#include <sys/stat.h>

#include <fcntl.h>
#include <sched.h>

static const uint8_t far_ip[4] = { 10, 78, 0, 1 };
static const uint8_t my_ip[4] = { 10, 78, 0, 2 };

static char *ns_name(pid_t pid, int which)
{
    return g_strdup_printf("qnicbr%c%d", which ? 'b' : 'a', (int)pid);
}

static char *helper_path(void)
{
    /* The helper built next to this tree (meson passes nothing: find it
     * relative to this test binary, build/tests/unit -> build/backends). */
    g_autofree char *exe = g_file_read_link("/proc/self/exe", NULL);
    g_autofree char *dir = g_path_get_dirname(exe);
    return g_build_filename(dir, "..", "..", "backends", "qnic-bridge-helper", NULL);
}

static bool match_arp_reply(const uint8_t *f, size_t len, void *opaque)
{
    return len >= 42 && qnic_ld16be(f + 12) == 0x0806 && qnic_ld16be(f + 20) == 2 &&
           !memcmp(f + 28, far_ip, 4) && !memcmp(f + 38, my_ip, 4);
}

static bool match_echo_reply(const uint8_t *f, size_t len, void *opaque)
{
    return len >= 42 && qnic_ld16be(f + 12) == 0x0800 && f[23] == 1 &&
           !memcmp(f + 26, far_ip, 4) && f[34] == 0 && qnic_ld16be(f + 38) == 0x5151;
}

typedef struct Find {
    TestSink *s;
    TestFrameMatch *m;
} Find;

static bool cond_find(void *opaque)
{
    Find *f = opaque;
    return test_sink_find(f->s, 0, f->m, NULL) >= 0;
}

/* Frames from qnic through the bridge to the far namespace and back. */
static void check_traffic(QnicNetdev *nd)
{
    TestSink *s = test_sink_new(nd->ncs[0], "sink");
    uint8_t f[256], mac[6];
    size_t n;
    Find fa = { s, match_arp_reply }, fe = { s, match_echo_reply };
    bool ok = false;

    /* The bridge port needs a moment to forward (no STP: immediately in
     * most kernels, but retry a few times). */
    n = test_arp_request(f, my_ip, far_ip);
    for (int i = 0; i < 20 && !ok; i++) {
        g_assert_cmpint(qnic_net_send(s->nc, f, n), >, 0);
        ok = test_pump(250, cond_find, &fa);
    }
    g_assert_true(ok);
    GByteArray *r = g_ptr_array_index(s->frames, test_sink_find(s, 0, match_arp_reply, NULL));
    memcpy(mac, r->data + 22, 6);
    n = test_icmp_echo(f, mac, my_ip, far_ip, 0x5151, 1, 48);
    g_assert_cmpint(qnic_net_send(s->nc, f, n), >, 0);
    g_assert_true(test_pump(3000, cond_find, &fe));
    test_sink_free(s);
}

#define QEMU_BRIDGE_HELPER "/usr/lib/qemu/qemu-bridge-helper"

static void bridge_child(void)
{
    g_autofree char *nsa = ns_name(getppid(), 0), *nsb = ns_name(getppid(), 1);
    g_autofree char *nspath = g_strdup_printf("/var/run/netns/%s", nsa);
    g_autofree char *dir = g_dir_make_tmp("qnic-br-XXXXXX", NULL);
    g_autofree char *acl = g_build_filename(dir, "bridge.conf", NULL);
    g_autofree char *acl2 = g_build_filename(dir, "more.conf", NULL);
    g_autofree char *acl_denyall = g_build_filename(dir, "denyall.conf", NULL);
    g_autofree char *helper = helper_path();
    g_autofree char *body = NULL, *opts = NULL;
    g_autoptr(GError) err = NULL;
    int fd = open(nspath, O_RDONLY | O_CLOEXEC);

    /* Everything below (qnic, the helper it spawns, ip) runs in ns a. */
    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(setns(fd, CLONE_NEWNET), ==, 0);
    close(fd);
    g_assert_cmpint(test_sh("ip link add qbr0 type bridge && ip link set qbr0 up && "
                            "ip link add qbr1 type bridge && "
                            "ip link add qve0 type veth peer name qve1 && "
                            "ip link set qve0 master qbr0 && ip link set qve0 up && "
                            "ip link set qve1 netns %s && "
                            "ip -n %s addr add 10.78.0.1/24 dev qve1 && "
                            "ip -n %s link set qve1 up", nsb, nsb, nsb), ==, 0);

    body = g_strdup_printf("# qnic bridge ACL for the test\ndeny qbr1\ninclude %s\n", acl2);
    g_assert_true(g_file_set_contents(acl, body, -1, NULL));
    g_assert_true(g_file_set_contents(acl2, "  allow qbr0  \nallow qbr1\n", -1, NULL));
    g_assert_true(g_file_set_contents(acl_denyall, "allow all\ndeny all\n", -1, NULL));
    g_setenv("QNIC_BRIDGE_CONF", acl, TRUE);
    g_setenv("QNIC_BRIDGE_HELPER", helper, TRUE);

    /* -netdev bridge with qnic's helper (found through $QNIC_BRIDGE_HELPER). */
    QnicNetdev *nd = qnic_netdev_add_str(test_backends(), "bridge,id=b0,br=qbr0", &err);
    g_assert_no_error(err);
    g_assert_cmpint(test_sh("ip -d link show master qbr0 | grep -q 'tun type tap\\|tap'"), ==, 0);
    check_traffic(nd);
    qnic_netdev_del(nd);

    /* -netdev tap,helper= with a helper command line run by the shell. */
    opts = g_strdup_printf("tap,id=t0,br=qbr0,helper=%s --acl=%s", helper, acl);
    nd = qnic_netdev_add_str(test_backends(), opts, &err);
    g_assert_no_error(err);
    check_traffic(nd);
    qnic_netdev_del(nd);

    /* QEMU's own helper speaks the same protocol. It only reads
     * /etc/qemu/bridge.conf: give it one in a private mount namespace
     * (a tmpfs over /etc/qemu), so the host's configuration is untouched. */
    if (access(QEMU_BRIDGE_HELPER, X_OK) == 0) {
        bool made_dir = mkdir("/etc/qemu", 0755) == 0;
        g_assert_cmpint(unshare(CLONE_NEWNS), ==, 0);
        g_assert_cmpint(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), ==, 0);
        g_assert_cmpint(mount("tmpfs", "/etc/qemu", "tmpfs", 0, "size=64k"), ==, 0);
        g_assert_true(g_file_set_contents("/etc/qemu/bridge.conf", "allow qbr0\n", -1, NULL));
        nd = qnic_netdev_add_str(test_backends(), "bridge,id=bq,br=qbr0,helper=" QEMU_BRIDGE_HELPER, &err);
        g_assert_no_error(err);
        check_traffic(nd);
        qnic_netdev_del(nd);
        /* QEMU's helper refuses a bridge its ACL does not allow. */
        expect_error("bridge,id=bq1,br=qbr1,helper=" QEMU_BRIDGE_HELPER, "helper");
        g_test_message("QEMU bridge helper: traffic crossed, ACL deny refused");
        umount("/etc/qemu");
        if (made_dir) {
            rmdir("/etc/qemu");
        }
    } else {
        g_test_message("no %s: QEMU helper interop not checked", QEMU_BRIDGE_HELPER);
    }

    /* A deny wins over an allow, wherever it is. */
    expect_error("bridge,id=b1,br=qbr1", "access denied by acl file");
    g_setenv("QNIC_BRIDGE_CONF", acl_denyall, TRUE);
    expect_error("bridge,id=b2,br=qbr0", "access denied by acl file");
    g_setenv("QNIC_BRIDGE_CONF", "/nonexistent/bridge.conf", TRUE);
    expect_error("bridge,id=b3,br=qbr0", "failed to open acl file");
    /* A bridge that does not exist. */
    g_setenv("QNIC_BRIDGE_CONF", acl_denyall, TRUE);
    g_assert_true(g_file_set_contents(acl_denyall, "allow all\n", -1, NULL));
    expect_error("bridge,id=b4,br=qnonexist", "failed to get mtu of bridge qnonexist");
    expect_error("bridge,id=b5,br=qbr0,helper=/nonexistent/helper", "cannot be run");
    /* Nothing is left attached to the bridge. */
    g_assert_cmpint(test_sh("test -z \"$(ip link show master qbr0 | grep -v qve0 | grep '^[0-9]')\""), ==, 0);
    test_sh("rm -rf %s", dir);
}

static void test_bridge(void)
{
    const char *skip = test_need_tun();
    g_autofree char *nsa = ns_name(getpid(), 0), *nsb = ns_name(getpid(), 1);
    g_autofree char *helper = helper_path();

    if (g_test_subprocess()) {
        bridge_child();
        return;
    }
    if (skip) {
        g_test_skip(skip);
        return;
    }
    if (access(helper, X_OK) != 0) {
        g_test_skip("qnic-bridge-helper is not built next to this test");
        return;
    }
    test_sh("ip netns del %s 2>/dev/null; ip netns del %s 2>/dev/null", nsa, nsb);
    g_assert_cmpint(test_sh("ip netns add %s && ip netns add %s && ip -n %s link set lo up", nsa,
                            nsb, nsb), ==, 0);
    g_test_trap_subprocess("/bridge/helper-acl-traffic", 60 * G_USEC_PER_SEC,
                           G_TEST_SUBPROCESS_INHERIT_STDERR | G_TEST_SUBPROCESS_INHERIT_STDOUT);
    /* Deleting ns a removes its bridge, veth (and so qve1 in b) and taps. */
    test_sh("ip netns del %s; ip netns del %s", nsa, nsb);
    g_test_trap_assert_passed();
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    qnic_bql_lock();
    g_test_add_func("/bridge/helper-acl-traffic", test_bridge);
    return g_test_run();
}
