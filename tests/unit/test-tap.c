/*
 * Tests of the tap netdev against the real Linux stack: qnic creates a tap,
 * the test moves it into a network namespace it owns and gives it an
 * address there, and the kernel's own ARP, ICMP and TCP answer the frames
 * qnic writes (plain frames, frames behind a vnet header, a 3xMSS TSO frame
 * split by the kernel, and two queues). Error cases check the one-line
 * messages. Each namespace test runs in a subprocess with a time limit; the
 * parent creates and always deletes the namespace.
 */
#include "test-tap-helpers.h"
#include "../lib/test-backends.h"

#include <sched.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <linux/virtio_net.h>

static const uint8_t ns_ip[4] = { 10, 77, 0, 1 };
static const uint8_t my_ip[4] = { 10, 77, 0, 2 };

/* ---- namespace plumbing (parent side) ---- */

static char *ns_name_for(pid_t pid)
{
    return g_strdup_printf("qnictap%d", (int)pid);
}

static void run_in_netns(const char *test_path)
{
    const char *skip = test_need_tun();
    g_autofree char *ns = ns_name_for(getpid());

    if (skip) {
        g_test_skip(skip);
        return;
    }
    test_sh("ip netns del %s 2>/dev/null", ns);
    g_assert_cmpint(test_sh("ip netns add %s && ip -n %s link set lo up", ns, ns), ==, 0);
    g_test_trap_subprocess(test_path, 60 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_INHERIT_STDERR);
    test_sh("ip netns del %s", ns);
    g_test_trap_assert_passed();
}

/* ---- child side ---- */

typedef struct TapEnv {
    QnicNetdev *nd;
    TestSink *sink[2];
    char *ns;
    char *ifname;
    size_t hdr;            /* vnet header bytes on the sink's frames */
    uint8_t peer_mac[6];
} TapEnv;

static void tap_env_up(TapEnv *e, const char *extra, int queues)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *opts = NULL;

    e->ns = ns_name_for(getppid());
    e->ifname = test_name("qnt");
    opts = g_strdup_printf("tap,id=t0,ifname=%s,script=no,downscript=no%s%s", e->ifname,
                           extra && extra[0] ? "," : "", extra ? extra : "");
    e->nd = qnic_netdev_add_str(test_backends(), opts, &err);
    g_assert_no_error(err);
    g_assert_nonnull(e->nd);
    g_assert_cmpint(e->nd->queues, ==, queues);
    for (int i = 0; i < queues; i++) {
        e->sink[i] = test_sink_new(e->nd->ncs[i], "sink");
    }
    g_assert_cmpint(test_sh("ip link set %s netns %s && ip -n %s addr add 10.77.0.1/24 dev %s && "
                            "ip -n %s link set %s up", e->ifname, e->ns, e->ns, e->ifname,
                            e->ns, e->ifname), ==, 0);
}

static void tap_env_down(TapEnv *e)
{
    for (int i = 0; i < 2; i++) {
        test_sink_free(e->sink[i]);
    }
    qnic_netdev_del(e->nd);
    g_free(e->ns);
    g_free(e->ifname);
}

/* Send a frame through queue q, with a zero vnet header if the sink uses one. */
static void env_send(TapEnv *e, int q, const uint8_t *frame, size_t len)
{
    g_autofree uint8_t *buf = g_malloc0(len + e->hdr);

    memcpy(buf + e->hdr, frame, len);
    g_assert_cmpint(qnic_net_send(e->sink[q]->nc, buf, len + e->hdr), >, 0);
}

static bool match_arp_reply(const uint8_t *f, size_t len, void *opaque)
{
    return len >= 42 && qnic_ld16be(f + 12) == 0x0806 && qnic_ld16be(f + 20) == 2 &&
           !memcmp(f + 28, ns_ip, 4) && !memcmp(f + 38, my_ip, 4) && !memcmp(f, test_mac, 6);
}

typedef struct FindCtx {
    TapEnv *e;
    int q;
    TestFrameMatch *m;
    void *opaque;
} FindCtx;

static bool cond_found(void *opaque)
{
    FindCtx *c = opaque;
    return test_sink_find(c->e->sink[c->q], c->e->hdr, c->m, c->opaque) >= 0;
}

static GByteArray *wait_frame(TapEnv *e, int q, TestFrameMatch *m, void *opaque, int ms)
{
    FindCtx c = { e, q, m, opaque };

    if (!test_pump(ms, cond_found, &c)) {
        return NULL;
    }
    return g_ptr_array_index(e->sink[q]->frames, test_sink_find(e->sink[q], e->hdr, m, opaque));
}

static void do_arp(TapEnv *e)
{
    uint8_t f[64];
    size_t n = test_arp_request(f, my_ip, ns_ip);
    GByteArray *r;

    /* The link may take a moment to come up: ask until answered. */
    for (int tries = 0; tries < 20; tries++) {
        env_send(e, 0, f, n);
        r = wait_frame(e, 0, match_arp_reply, NULL, 250);
        if (r) {
            memcpy(e->peer_mac, r->data + e->hdr + 22, 6);
            g_assert_cmpmem(r->data + e->hdr + 6, 6, e->peer_mac, 6);
            return;
        }
    }
    g_assert_not_reached();
}

typedef struct EchoMatch {
    uint16_t id, seq;
    const uint8_t *payload;
    size_t len;
} EchoMatch;

static bool match_echo_reply(const uint8_t *f, size_t len, void *opaque)
{
    EchoMatch *m = opaque;
    const uint8_t *ip = f + 14, *icmp = f + 34;

    return len >= 42 && qnic_ld16be(f + 12) == 0x0800 && ip[9] == 1 &&
           !memcmp(ip + 12, ns_ip, 4) && !memcmp(ip + 16, my_ip, 4) && icmp[0] == 0 &&
           qnic_ld16be(icmp + 4) == m->id && qnic_ld16be(icmp + 6) == m->seq &&
           len - 42 == m->len && !memcmp(icmp + 8, m->payload + 42, m->len) &&
           test_csum(icmp, len - 34, 0) == 0;
}

static void do_ping(TapEnv *e, int q, uint16_t id, uint16_t seq)
{
    uint8_t f[256];
    size_t n = test_icmp_echo(f, e->peer_mac, my_ip, ns_ip, id, seq, 56);
    EchoMatch m = { id, seq, f, 56 };

    env_send(e, q, f, n);
    g_assert_nonnull(wait_frame(e, q, match_echo_reply, &m, 3000));
}

/* mode 0: vnet_hdr=off; 1: tap has headers, the peer does not use them
 * (qnic strips/adds them); 2: the peer uses 12-byte headers. */
static void arp_icmp_child(int mode)
{
    TapEnv e = { 0 };

    tap_env_up(&e, mode == 0 ? "vnet_hdr=off" : "vnet_hdr=on", 1);
    g_assert_cmpint(qnic_net_peer_has_vnet_hdr(e.sink[0]->nc), ==, mode != 0);
    if (mode == 2) {
        qnic_net_peer_using_vnet_hdr(e.sink[0]->nc, true);
        qnic_net_peer_set_vnet_hdr_len(e.sink[0]->nc, sizeof(struct virtio_net_hdr_mrg_rxbuf));
        e.hdr = sizeof(struct virtio_net_hdr_mrg_rxbuf);
    }
    do_arp(&e);
    for (uint16_t seq = 1; seq <= 3; seq++) {
        do_ping(&e, 0, 0x4242, seq);
    }
    if (mode == 2) {
        /* Every frame read carries a header: all-zero flags, no GSO. */
        GByteArray *b = g_ptr_array_index(e.sink[0]->frames, 0);
        g_assert_cmpint(b->data[1], ==, VIRTIO_NET_HDR_GSO_NONE);
    }
    tap_env_down(&e);
}

static void test_arp_icmp_plain(void)
{
    if (g_test_subprocess()) {
        arp_icmp_child(0);
        return;
    }
    run_in_netns("/tap/netns/arp-icmp/plain");
}

static void test_arp_icmp_strip(void)
{
    if (g_test_subprocess()) {
        arp_icmp_child(1);
        return;
    }
    run_in_netns("/tap/netns/arp-icmp/vnet-hdr-unused");
}

static void test_arp_icmp_vnet(void)
{
    if (g_test_subprocess()) {
        arp_icmp_child(2);
        return;
    }
    run_in_netns("/tap/netns/arp-icmp/vnet-hdr-12");
}

/* ---- TSO ---- */

typedef struct TcpMatch {
    uint16_t sport, dport;
    uint8_t flags;
} TcpMatch;

static bool match_tcp(const uint8_t *f, size_t len, void *opaque)
{
    TcpMatch *m = opaque;
    const uint8_t *ip = f + 14, *tcp = f + 34;

    return len >= 54 && qnic_ld16be(f + 12) == 0x0800 && ip[9] == 6 && (ip[0] & 0xf) == 5 &&
           qnic_ld16be(tcp) == m->sport && qnic_ld16be(tcp + 2) == m->dport &&
           (tcp[13] & m->flags) == m->flags;
}

#define TSO_MSS 1000
#define TSO_LEN (3 * TSO_MSS)

static void tso_child(void)
{
    TapEnv e = { 0 };
    g_autoptr(GError) err = NULL;
    g_autofree char *cmd = NULL, *script = NULL;
    g_autofree char *out = NULL;
    g_autofree uint8_t *f = g_malloc(TSO_LEN + 128);
    g_autofree uint8_t *data = g_malloc(TSO_LEN);
    g_autoptr(GChecksum) sum = g_checksum_new(G_CHECKSUM_SHA256);
    const uint16_t sport = 40001, dport = 5001;
    uint32_t iss = 1000, srv = 0;
    GByteArray *synack = NULL;
    GPid pid;
    int out_fd, status;
    size_t n;

    tap_env_up(&e, "vnet_hdr=on", 1);
    qnic_net_peer_using_vnet_hdr(e.sink[0]->nc, true);
    e.hdr = sizeof(struct virtio_net_hdr);
    do_arp(&e);

    script = g_strdup_printf(
        "import socket,sys,hashlib\n"
        "s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
        "s.bind(('10.77.0.1',%d));s.listen(1);s.settimeout(20)\n"
        "print('listening',flush=True)\n"
        "c,a=s.accept();c.settimeout(20);d=b''\n"
        "while len(d)<%d:\n"
        "  x=c.recv(65536)\n"
        "  if not x: break\n"
        "  d+=x\n"
        "print(len(d),hashlib.sha256(d).hexdigest(),flush=True)\n", dport, TSO_LEN);
    const char *argv[] = { "ip", "netns", "exec", e.ns, "/usr/bin/python3", "-c", script, NULL };
    g_assert_true(g_spawn_async_with_pipes(NULL, (char **)argv, NULL,
                                           G_SPAWN_SEARCH_PATH | G_SPAWN_DO_NOT_REAP_CHILD,
                                           NULL, NULL, &pid, NULL, &out_fd, NULL, &err));
    g_assert_no_error(err);

    /* Handshake by hand; retry the SYN until the listener is there. */
    for (int tries = 0; tries < 40 && !synack; tries++) {
        TcpMatch m = { dport, sport, 0x12 };
        n = test_tcp(f, e.peer_mac, my_ip, ns_ip, sport, dport, iss, 0, 0x02, NULL, 0, false);
        env_send(&e, 0, f, n);
        synack = wait_frame(&e, 0, match_tcp, &m, 250);
    }
    g_assert_nonnull(synack);
    g_assert_cmpuint(qnic_ld32be(synack->data + e.hdr + 34 + 8), ==, iss + 1);
    srv = qnic_ld32be(synack->data + e.hdr + 34 + 4);
    n = test_tcp(f, e.peer_mac, my_ip, ns_ip, sport, dport, iss + 1, srv + 1, 0x10, NULL, 0, false);
    env_send(&e, 0, f, n);

    /* One 3xMSS frame behind a GSO header; the kernel splits it. */
    for (size_t i = 0; i < TSO_LEN; i++) {
        data[i] = (uint8_t)(i * 31 + 7);
    }
    struct virtio_net_hdr *vh = (struct virtio_net_hdr *)f;
    n = test_tcp(f + sizeof(*vh), e.peer_mac, my_ip, ns_ip, sport, dport, iss + 1, srv + 1, 0x18,
                 data, TSO_LEN, true);
    memset(vh, 0, sizeof(*vh));
    vh->flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
    vh->gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
    vh->hdr_len = 14 + 20 + 20;
    vh->gso_size = TSO_MSS;
    vh->csum_start = 14 + 20;
    vh->csum_offset = 16;
    g_assert_cmpint(qnic_net_send(e.sink[0]->nc, f, n + sizeof(*vh)), ==, n + sizeof(*vh));

    /* Pump while the listener reads (the kernel's ACKs come to us). */
    GString *got = g_string_new(NULL);
    gint64 deadline = g_get_monotonic_time() + 20 * G_USEC_PER_SEC;
    fcntl(out_fd, F_SETFL, O_NONBLOCK);
    while (g_get_monotonic_time() < deadline) {
        char buf[256];
        ssize_t r = read(out_fd, buf, sizeof(buf));
        if (r > 0) {
            g_string_append_len(got, buf, r);
        } else if (r == 0) {
            break;
        }
        test_pump(20, NULL, NULL);
    }
    close(out_fd);
    waitpid(pid, &status, 0);
    g_checksum_update(sum, data, TSO_LEN);
    out = g_strdup_printf("listening\n%d %s\n", TSO_LEN, g_checksum_get_string(sum));
    g_assert_cmpstr(got->str, ==, out);
    g_string_free(got, TRUE);
    tap_env_down(&e);
}

static void test_tso(void)
{
    if (g_test_subprocess()) {
        tso_child();
        return;
    }
    if (access("/usr/bin/python3", X_OK) != 0) {
        g_test_skip("/usr/bin/python3 is needed for the TCP listener");
        return;
    }
    run_in_netns("/tap/netns/tso");
}

/* ---- two queues ---- */

typedef struct AnyEcho {
    int count;
} AnyEcho;

static int count_echo_replies(TestSink *s)
{
    int n = 0;
    for (guint i = 0; i < s->frames->len; i++) {
        GByteArray *b = g_ptr_array_index(s->frames, i);
        if (b->len >= 42 && qnic_ld16be(b->data + 12) == 0x0800 && b->data[23] == 1 &&
            b->data[34] == 0) {
            n++;
        }
    }
    return n;
}

static bool cond_all_replies(void *opaque)
{
    TapEnv *e = opaque;
    return count_echo_replies(e->sink[0]) + count_echo_replies(e->sink[1]) >= 16;
}

static void queues_child(void)
{
    TapEnv e = { 0 };
    uint8_t f[256];

    tap_env_up(&e, "queues=2,vnet_hdr=off", 2);
    do_arp(&e);
    /* Eight flows sent from each queue: tun steers a flow's replies to the
     * queue it last saw the flow on, so both queues must carry replies. */
    for (int i = 0; i < 16; i++) {
        size_t n = test_icmp_echo(f, e.peer_mac, my_ip, ns_ip, 0x1000 + i, 1, 32);
        env_send(&e, i & 1, f, n);
    }
    g_assert_true(test_pump(5000, cond_all_replies, &e));
    g_test_message("replies: queue 0 %d, queue 1 %d", count_echo_replies(e.sink[0]),
                   count_echo_replies(e.sink[1]));
    g_assert_cmpint(count_echo_replies(e.sink[0]), >, 0);
    g_assert_cmpint(count_echo_replies(e.sink[1]), >, 0);
    tap_env_down(&e);
}

static void test_queues(void)
{
    if (g_test_subprocess()) {
        queues_child();
        return;
    }
    run_in_netns("/tap/netns/queues2");
}

/* ---- errors ---- */

static void test_errors(void)
{
    g_autofree char *fdopt = NULL;
    int fd = open("/dev/null", O_RDWR | O_CLOEXEC);

    expect_error("tap,id=e0,vhost=off,vhostfd=3", "invalid with vhost=off");
    expect_error("tap,id=e6,vhostfd=3,vhostfds=4:5", "mutually exclusive");
    expect_error("tap,id=e1,fd=abc", "Invalid file descriptor 'abc'");
    expect_error("tap,id=e2,fd=987654", "not open");
    fdopt = g_strdup_printf("tap,id=e3,fd=%d", fd);
    expect_error(fdopt, "not a tap device");
    g_free(fdopt);
    fdopt = g_strdup_printf("tap,id=e4,fd=%d,ifname=foo", fd);
    expect_error(fdopt, "invalid with fd=");
    close(fd);
    expect_error("tap,id=e5,helper=/nonexistent/helper", "cannot be run");
}

static void test_missing_script(void)
{
    g_autofree char *ifname = test_name("qns");
    g_autofree char *opts = NULL;
    const char *skip = test_need_tun();

    if (skip) {
        g_test_skip(skip);
        return;
    }
    opts = g_strdup_printf("tap,id=s0,ifname=%s,script=/nonexistent/qnic-ifup,downscript=no",
                           ifname);
    expect_error(opts, "network script /nonexistent/qnic-ifup cannot be run: No such file");
    /* The tap was closed again: no interface is left behind. */
    g_assert_cmpint(test_sh("ip link show %s >/dev/null 2>&1", ifname), !=, 0);

    /* A script that fails is an error too; one that works gets the name. */
    g_autofree char *dir = g_dir_make_tmp("qnic-tap-XXXXXX", NULL);
    g_autofree char *bad = g_build_filename(dir, "bad", NULL);
    g_autofree char *good = g_build_filename(dir, "good", NULL);
    g_autofree char *down = g_build_filename(dir, "down", NULL);
    g_autofree char *log = g_build_filename(dir, "log", NULL);
    g_autofree char *body = g_strdup_printf("#!/bin/sh\necho \"up $1\" >> %s\n", log);
    g_autofree char *dbody = g_strdup_printf("#!/bin/sh\necho \"down $1\" >> %s\n", log);
    g_autofree char *content = NULL;
    g_assert_true(g_file_set_contents(bad, "#!/bin/sh\nexit 3\n", -1, NULL));
    g_assert_true(g_file_set_contents(good, body, -1, NULL));
    g_assert_true(g_file_set_contents(down, dbody, -1, NULL));
    chmod(bad, 0755);
    chmod(good, 0755);
    chmod(down, 0755);
    g_free(opts);
    opts = g_strdup_printf("tap,id=s1,ifname=%s,script=%s,downscript=no", ifname, bad);
    expect_error(opts, "failed with status 3");

    g_autoptr(GError) err = NULL;
    g_free(opts);
    opts = g_strdup_printf("tap,id=s2,ifname=%s,script=%s,downscript=%s", ifname, good, down);
    QnicNetdev *nd = qnic_netdev_add_str(test_backends(), opts, &err);
    g_assert_no_error(err);
    qnic_netdev_del(nd);
    g_assert_true(g_file_get_contents(log, &content, NULL, NULL));
    g_autofree char *expect = g_strdup_printf("up %s\ndown %s\n", ifname, ifname);
    g_assert_cmpstr(content, ==, expect);
    test_sh("rm -rf %s", dir);
}

/* No /dev/net/tun: hide it under a private tmpfs in a mount namespace. */
static void test_no_tun(void)
{
    if (g_test_subprocess()) {
        g_autoptr(GError) err = NULL;
        if (unshare(CLONE_NEWNS) < 0 ||
            mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
            mount("none", "/dev/net", "tmpfs", 0, NULL) < 0) {
            printf("cannot hide /dev/net/tun: %s\n", g_strerror(errno));
            exit(77);
        }
        QnicNetdev *nd = qnic_netdev_add_str(test_backends(), "tap,id=n0,script=no,downscript=no,vnet_hdr=off", &err);
        g_assert_null(nd);
        printf("%s\n", err->message);
        return;
    }
    if (geteuid() != 0) {
        g_test_skip("needs root (mount namespace to hide /dev/net/tun)");
        return;
    }
    g_test_trap_subprocess("/tap/errors/no-tun", 20 * G_USEC_PER_SEC, 0);
    g_test_trap_assert_passed();
    g_test_trap_assert_stdout("could not open /dev/net/tun: No such file or directory\n");
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    qnic_bql_lock();
    g_test_add_func("/tap/errors/options", test_errors);
    g_test_add_func("/tap/errors/script", test_missing_script);
    g_test_add_func("/tap/errors/no-tun", test_no_tun);
    g_test_add_func("/tap/netns/arp-icmp/plain", test_arp_icmp_plain);
    g_test_add_func("/tap/netns/arp-icmp/vnet-hdr-unused", test_arp_icmp_strip);
    g_test_add_func("/tap/netns/arp-icmp/vnet-hdr-12", test_arp_icmp_vnet);
    g_test_add_func("/tap/netns/tso", test_tso);
    g_test_add_func("/tap/netns/queues2", test_queues);
    return g_test_run();
}
