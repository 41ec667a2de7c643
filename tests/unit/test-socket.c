/*
 * socket / stream / dgram netdevs against QEMU 7.2 as the real peer. QEMU
 * runs with two netdevs on one hub: netdev "a" talks to qnic's backend,
 * netdev "b" to a plain socket of this test. A frame the test NIC sends
 * through qnic must come out of QEMU's "b" byte-exact, and a frame the test
 * writes to "b" must reach the test NIC byte-exact: that checks qnic's wire
 * format against QEMU's for TCP, UDP, stream (inet, unix), dgram (inet,
 * unix) and multicast (inside a network namespace this test creates).
 * QEMU runs with a HLT-only BIOS so the VM counts as running (its net
 * layer holds frames while stopped).
 */
#include "test-net-common.h"
#include "../lib/test-backends.h"
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <unistd.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <glib/gstdio.h>
#include <sys/prctl.h>

typedef enum { PEER_TCP, PEER_UNIX_STREAM, PEER_UDP, PEER_UNIX_DGRAM } PeerKind;

static char *tmpdir;
static char *hlt_bios;

static int free_port(int type)
{
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t sl = sizeof(sin);
    int fd = socket(AF_INET, type, 0);
    g_assert_cmpint(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), ==, 0);
    getsockname(fd, (struct sockaddr *)&sin, &sl);
    close(fd);
    return ntohs(sin.sin_port);
}

/* QEMU dies with the test, even when an assertion ends the test early. */
static void child_setup(gpointer data)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
}

static GPid spawn_qemu(const char *netdev_a, const char *netdev_b)
{
    GError *err = NULL;
    GPid pid;
    const char *argv[] = {
        "qemu-system-x86_64", "-M", "pc", "-accel", "tcg", "-display", "none", "-nodefaults",
        "-monitor", "none", "-serial", "none", "-bios", hlt_bios,
        "-netdev", netdev_a, "-netdev", netdev_b,
        "-netdev", "hubport,id=ha,hubid=0,netdev=a",
        "-netdev", "hubport,id=hb,hubid=0,netdev=b",
        NULL
    };
    g_assert_true(g_spawn_async(NULL, (char **)argv, NULL,
                                G_SPAWN_SEARCH_PATH | G_SPAWN_DO_NOT_REAP_CHILD |
                                G_SPAWN_STDOUT_TO_DEV_NULL | G_SPAWN_STDERR_TO_DEV_NULL,
                                child_setup, NULL, &pid, &err));
    g_assert_no_error(err);
    return pid;
}

static void kill_qemu(GPid pid)
{
    int status;
    kill(pid, SIGTERM);
    for (int i = 0; i < 200 && waitpid(pid, &status, WNOHANG) == 0; i++) {
        g_usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    g_spawn_close_pid(pid);
}

static void make_frame(uint8_t *f, size_t len, uint8_t seed)
{
    static const uint8_t hdr[14] = { 0x52, 0x54, 0, 0xaa, 0xbb, 0xcc, 0x52, 0x54, 0, 0x11, 0x22,
                                     0x33, 0x08, 0x00 };
    memcpy(f, hdr, 14);
    for (size_t i = 14; i < len; i++) {
        f[i] = (uint8_t)(i * 7 + seed);
    }
}

typedef struct Peer {
    PeerKind kind;
    int fd;                   /* listening (stream) or bound (dgram) */
    int conn;                 /* accepted stream */
    struct sockaddr_storage qemu_addr;   /* where QEMU's "b" receives (dgram) */
    socklen_t qemu_len;
    GByteArray *rx;           /* stream bytes from QEMU */
} Peer;

/* One frame from QEMU's "b", or NULL (no frame within ms). */
static GBytes *peer_recv(Peer *p, int ms)
{
    struct pollfd pfd = { .fd = p->kind <= PEER_UNIX_STREAM ? p->conn : p->fd, .events = POLLIN };
    uint8_t buf[70000];

    if (p->kind <= PEER_UNIX_STREAM) {
        for (;;) {
            if (p->rx->len >= 4) {
                uint32_t len = qnic_ld32be(p->rx->data);
                g_assert_cmpuint(len, <=, 69632);
                if (p->rx->len >= 4 + len) {
                    GBytes *b = g_bytes_new(p->rx->data + 4, len);
                    g_byte_array_remove_range(p->rx, 0, 4 + len);
                    return b;
                }
            }
            if (poll(&pfd, 1, ms) <= 0) {
                return NULL;
            }
            ssize_t n = read(p->conn, buf, sizeof(buf));
            if (n <= 0) {
                return NULL;
            }
            g_byte_array_append(p->rx, buf, n);
        }
    }
    if (poll(&pfd, 1, ms) <= 0) {
        return NULL;
    }
    ssize_t n = recv(p->fd, buf, sizeof(buf), 0);
    return n > 0 ? g_bytes_new(buf, n) : NULL;
}

static void peer_send(Peer *p, const uint8_t *f, size_t len)
{
    if (p->kind <= PEER_UNIX_STREAM) {
        uint8_t hdr[4];
        qnic_st32be(hdr, len);
        g_assert_cmpint(write(p->conn, hdr, 4), ==, 4);
        g_assert_cmpint(write(p->conn, f, len), ==, (ssize_t)len);
    } else {
        sendto(p->fd, f, len, 0, (struct sockaddr *)&p->qemu_addr, p->qemu_len);
    }
}

static int accept_timeout(int lfd, int ms)
{
    struct pollfd pfd = { .fd = lfd, .events = POLLIN };
    if (poll(&pfd, 1, ms) <= 0) {
        return -1;
    }
    return accept(lfd, NULL, NULL);
}

static void set_unix(struct sockaddr_storage *ss, socklen_t *len, const char *path)
{
    struct sockaddr_un *sun = (struct sockaddr_un *)ss;
    memset(ss, 0, sizeof(*ss));
    sun->sun_family = AF_UNIX;
    g_strlcpy(sun->sun_path, path, sizeof(sun->sun_path));
    *len = sizeof(*sun);
}

static void set_inet(struct sockaddr_storage *ss, socklen_t *len, int port)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    memset(ss, 0, sizeof(*ss));
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sin->sin_port = htons(port);
    *len = sizeof(*sin);
}

/* Run one interop case. qnic_opts is retried while QEMU starts up. */
static void run_case(PeerKind kind, const char *peer_path, int peer_port,
                     const char *qemu_a, const char *qemu_b, const char *qnic_opts,
                     const char *qemu_b_addr_path, int qemu_b_port)
{
    Peer p = { .kind = kind, .fd = -1, .conn = -1, .rx = g_byte_array_new() };
    struct sockaddr_storage ss;
    socklen_t sl;
    GError *err = NULL;
    QnicNetdev *nd = NULL;
    uint8_t f1[1000], f2[1514];

    g_autofree char *qemu = g_find_program_in_path("qemu-system-x86_64");
    if (!qemu) {
        g_test_skip("qemu-system-x86_64 is not installed: no reference peer");
        return;
    }
    switch (kind) {
    case PEER_TCP:
    case PEER_UDP:
        set_inet(&ss, &sl, peer_port);
        break;
    default:
        g_unlink(peer_path);
        set_unix(&ss, &sl, peer_path);
        break;
    }
    p.fd = socket(ss.ss_family, kind <= PEER_UNIX_STREAM ? SOCK_STREAM : SOCK_DGRAM, 0);
    int one = 1;
    setsockopt(p.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    g_assert_cmpint(bind(p.fd, (struct sockaddr *)&ss, sl), ==, 0);
    if (kind <= PEER_UNIX_STREAM) {
        g_assert_cmpint(listen(p.fd, 1), ==, 0);
    } else if (kind == PEER_UDP) {
        set_inet(&p.qemu_addr, &p.qemu_len, qemu_b_port);
    } else {
        set_unix(&p.qemu_addr, &p.qemu_len, qemu_b_addr_path);
    }

    g_test_message("QEMU: -netdev %s -netdev %s; qnic: -netdev %s", qemu_a, qemu_b, qnic_opts);
    GPid pid = spawn_qemu(qemu_a, qemu_b);
    if (kind <= PEER_UNIX_STREAM) {
        p.conn = accept_timeout(p.fd, 10000);
        g_assert_cmpint(p.conn, >=, 0);
    }
    /* QEMU may still be starting: retry creating qnic's side. */
    gint64 end = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
    while (!(nd = qnic_netdev_add_str(test_backends(), qnic_opts, &err)) && g_get_monotonic_time() < end) {
        g_clear_error(&err);
        g_usleep(50000);
    }
    g_assert_no_error(err);
    g_assert_nonnull(nd);
    TestNic *nic = test_nic_new("nic");
    test_nic_attach(nic, nd);

    /* qnic -> QEMU a -> hub -> QEMU b -> test */
    make_frame(f1, sizeof(f1), 1);
    GBytes *got = NULL;
    end = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
    while (!got && g_get_monotonic_time() < end) {
        g_assert_cmpint(qnic_net_send(nic->nc, f1, sizeof(f1)), ==, sizeof(f1));
        test_loop_run_ms(20);
        got = peer_recv(&p, 100);
    }
    g_assert_nonnull(got);
    g_assert_true(test_frame_eq(got, f1, sizeof(f1)));
    g_bytes_unref(got);

    /* test -> QEMU b -> hub -> QEMU a -> qnic */
    make_frame(f2, sizeof(f2), 2);
    /* Multicast loops our own f1 copies back: look for f2 among them. */
    bool found = false;
    guint seen = 0;
    end = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
    while (!found && g_get_monotonic_time() < end) {
        peer_send(&p, f2, sizeof(f2));
        test_loop_run_ms(100);
        for (; seen < nic->frames->len && !found; seen++) {
            found = test_frame_eq(nic->frames->pdata[seen], f2, sizeof(f2));
        }
    }
    g_assert_true(found);

    test_nic_free(nic);
    qnic_netdev_del(nd);
    kill_qemu(pid);
    if (p.conn >= 0) {
        close(p.conn);
    }
    close(p.fd);
    if (peer_path) {
        g_unlink(peer_path);
    }
    g_byte_array_free(p.rx, TRUE);
}

static void test_socket_tcp(void)
{
    int pa = free_port(SOCK_STREAM), pt = free_port(SOCK_STREAM);
    g_autofree char *a = g_strdup_printf("socket,id=a,listen=127.0.0.1:%d", pa);
    g_autofree char *b = g_strdup_printf("socket,id=b,connect=127.0.0.1:%d", pt);
    g_autofree char *q = g_strdup_printf("socket,id=q,connect=127.0.0.1:%d", pa);
    run_case(PEER_TCP, NULL, pt, a, b, q, NULL, 0);
}

/* Both ends qnic's own (a listening netdev and one connecting to it):
 * every connected TCP socket of this process must have TCP_NODELAY, or
 * the fragments of one datagram wait ~40 ms each for a delayed ACK. */
static void test_tcp_nodelay(void)
{
    int pa = free_port(SOCK_STREAM);
    g_autofree char *a = g_strdup_printf("socket,id=na,listen=127.0.0.1:%d", pa);
    g_autofree char *q = g_strdup_printf("socket,id=nq,connect=127.0.0.1:%d", pa);
    GError *err = NULL;
    QnicNetdev *nda = qnic_netdev_add_str(test_backends(), a, &err), *ndq;
    int connected = 0;

    g_assert_no_error(err);
    ndq = qnic_netdev_add_str(test_backends(), q, &err);
    g_assert_no_error(err);
    test_loop_run_ms(100);      /* the listener accepts */
    for (int fd = 3; fd < 1024; fd++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int type = 0, nodelay = 0;
        socklen_t tl = sizeof(type), nl = sizeof(nodelay);
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 || type != SOCK_STREAM ||
            getpeername(fd, (struct sockaddr *)&ss, &sl) < 0 || ss.ss_family != AF_INET) {
            continue;
        }
        g_assert_cmpint(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &nodelay, &nl), ==, 0);
        g_assert_cmpint(nodelay, !=, 0);
        connected++;
    }
    g_assert_cmpint(connected, ==, 2);     /* the connecting end and the accepted one */
    qnic_netdev_del(ndq);
    qnic_netdev_del(nda);
}

static void test_socket_udp(void)
{
    int pa = free_port(SOCK_DGRAM), pq = free_port(SOCK_DGRAM);
    int pb = free_port(SOCK_DGRAM), pt = free_port(SOCK_DGRAM);
    g_autofree char *a = g_strdup_printf("socket,id=a,udp=127.0.0.1:%d,localaddr=127.0.0.1:%d",
                                         pq, pa);
    g_autofree char *b = g_strdup_printf("socket,id=b,udp=127.0.0.1:%d,localaddr=127.0.0.1:%d",
                                         pt, pb);
    g_autofree char *q = g_strdup_printf("socket,id=q,udp=127.0.0.1:%d,localaddr=127.0.0.1:%d",
                                         pa, pq);
    run_case(PEER_UDP, NULL, pt, a, b, q, NULL, pb);
}

static void test_stream_inet(void)
{
    int pa = free_port(SOCK_STREAM), pt = free_port(SOCK_STREAM);
    g_autofree char *a = g_strdup_printf(
        "stream,id=a,server=on,addr.type=inet,addr.host=127.0.0.1,addr.port=%d", pa);
    g_autofree char *b = g_strdup_printf(
        "stream,id=b,server=off,addr.type=inet,addr.host=127.0.0.1,addr.port=%d", pt);
    g_autofree char *q = g_strdup_printf(
        "stream,id=q,server=off,addr.type=inet,addr.host=127.0.0.1,addr.port=%d", pa);
    run_case(PEER_TCP, NULL, pt, a, b, q, NULL, 0);
}

static void test_stream_unix(void)
{
    g_autofree char *sa = g_build_filename(tmpdir, "sa.sock", NULL);
    g_autofree char *st = g_build_filename(tmpdir, "st.sock", NULL);
    g_autofree char *a = g_strdup_printf("stream,id=a,server=on,addr.type=unix,addr.path=%s", sa);
    g_autofree char *b = g_strdup_printf("stream,id=b,server=off,addr.type=unix,addr.path=%s", st);
    g_autofree char *q = g_strdup_printf("stream,id=q,server=off,addr.type=unix,addr.path=%s", sa);
    run_case(PEER_UNIX_STREAM, st, 0, a, b, q, NULL, 0);
    g_unlink(sa);
}

static void test_dgram_inet(void)
{
    int pa = free_port(SOCK_DGRAM), pq = free_port(SOCK_DGRAM);
    int pb = free_port(SOCK_DGRAM), pt = free_port(SOCK_DGRAM);
    const char *fmt = "dgram,id=%s,local.type=inet,local.host=127.0.0.1,local.port=%d,"
                      "remote.type=inet,remote.host=127.0.0.1,remote.port=%d";
    g_autofree char *a = g_strdup_printf(fmt, "a", pa, pq);
    g_autofree char *b = g_strdup_printf(fmt, "b", pb, pt);
    g_autofree char *q = g_strdup_printf(fmt, "q", pq, pa);
    run_case(PEER_UDP, NULL, pt, a, b, q, NULL, pb);
}

static void test_dgram_unix(void)
{
    g_autofree char *da = g_build_filename(tmpdir, "da.sock", NULL);
    g_autofree char *dq = g_build_filename(tmpdir, "dq.sock", NULL);
    g_autofree char *db = g_build_filename(tmpdir, "db.sock", NULL);
    g_autofree char *dt = g_build_filename(tmpdir, "dt.sock", NULL);
    const char *fmt = "dgram,id=%s,local.type=unix,local.path=%s,remote.type=unix,remote.path=%s";
    g_autofree char *a = g_strdup_printf(fmt, "a", da, dq);
    g_autofree char *b = g_strdup_printf(fmt, "b", db, dt);
    g_autofree char *q = g_strdup_printf(fmt, "q", dq, da);
    g_unlink(da);
    g_unlink(db);
    run_case(PEER_UNIX_DGRAM, dt, 0, a, b, q, db, 0);
    g_unlink(da);
    g_unlink(db);
}

/* Multicast: in a fresh network namespace (only lo, which we bring up and
 * route 224/4 to), in a subprocess so the other tests keep the host's. */
static void test_mcast_child(void)
{
    if (unshare(CLONE_NEWNET) < 0) {
        g_test_skip("cannot create a network namespace (needs root / CAP_SYS_ADMIN)");
        return;
    }
    g_assert_true(system("ip link set lo up && ip route add 224.0.0.0/4 dev lo") == 0);
    int pt = 40007, pb = 40008;
    g_autofree char *a = g_strdup("socket,id=a,mcast=230.0.0.1:40001,localaddr=127.0.0.1");
    g_autofree char *b = g_strdup_printf("socket,id=b,udp=127.0.0.1:%d,localaddr=127.0.0.1:%d",
                                         pt, pb);
    const char *q = "socket,id=q,mcast=230.0.0.1:40001,localaddr=127.0.0.1";
    run_case(PEER_UDP, NULL, pt, a, b, q, NULL, pb);
    /* dgram's multicast form against the same QEMU shape. */
    const char *q2 = "dgram,id=q2,remote.type=inet,remote.host=230.0.0.2,remote.port=40002,"
                     "local.type=inet,local.host=127.0.0.1,local.port=0";
    const char *a2 = "dgram,id=a,remote.type=inet,remote.host=230.0.0.2,remote.port=40002,"
                     "local.type=inet,local.host=127.0.0.1,local.port=0";
    run_case(PEER_UDP, NULL, pt, a2, b, q2, NULL, pb);
}

static void test_mcast(void)
{
    if (geteuid() != 0) {
        g_test_skip("multicast runs in a private network namespace, which needs root");
        return;
    }
    g_test_trap_subprocess("/socket/mcast/subprocess", 60 * G_USEC_PER_SEC, 0);
    g_test_trap_assert_passed();
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    signal(SIGPIPE, SIG_IGN);
    tmpdir = g_dir_make_tmp("qnic-sock-XXXXXX", NULL);
    hlt_bios = g_build_filename(tmpdir, "hlt.bin", NULL);
    {
        g_autofree char *hlt = g_malloc(65536);
        memset(hlt, 0xf4, 65536);
        g_assert_true(g_file_set_contents(hlt_bios, hlt, 65536, NULL));
    }
    g_test_add_func("/socket/tcp", test_socket_tcp);
    g_test_add_func("/socket/tcp-nodelay", test_tcp_nodelay);
    g_test_add_func("/socket/udp", test_socket_udp);
    g_test_add_func("/socket/stream-inet", test_stream_inet);
    g_test_add_func("/socket/stream-unix", test_stream_unix);
    g_test_add_func("/socket/dgram-inet", test_dgram_inet);
    g_test_add_func("/socket/dgram-unix", test_dgram_unix);
    g_test_add_func("/socket/mcast", test_mcast);
    g_test_add_func("/socket/mcast/subprocess", test_mcast_child);
    int rc = g_test_run();
    g_unlink(hlt_bios);
    g_rmdir(tmpdir);
    return rc;
}
