/*
 * The socket engine against hostile and slow peers, with this test as the
 * peer: a 2 GiB length prefix, a frame cut short by a disconnect and a bare
 * disconnect each drop only that connection (counted and logged) and a new
 * client is served afterwards; a NIC that cannot receive stops the backend
 * from reading (bounded queue), and a peer that does not read makes the
 * NIC's frames wait instead of being lost, in order, for stream, socket
 * listen= and unix stream servers.
 */
#include "test-net-common.h"
#include "net/net-internal.h"
#include "../lib/test-backends.h"
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>
#include <poll.h>
#include <signal.h>
#include <glib/gstdio.h>

static int free_port(void)
{
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t sl = sizeof(sin);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    g_assert_cmpint(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), ==, 0);
    getsockname(fd, (struct sockaddr *)&sin, &sl);
    close(fd);
    return ntohs(sin.sin_port);
}

typedef struct Srv {
    QnicNetdev *nd;
    TestNic *nic;
    struct sockaddr_storage addr;
    socklen_t len;
    char *path;
} Srv;

static Srv *srv_new(const char *kind)
{
    Srv *s = g_new0(Srv, 1);
    g_autofree char *opts = NULL;
    GError *err = NULL;

    if (g_str_equal(kind, "unix")) {
        struct sockaddr_un *sun = (struct sockaddr_un *)&s->addr;
        g_autofree char *dir = g_dir_make_tmp("qnic-peer-XXXXXX", NULL);
        s->path = g_build_filename(dir, "s.sock", NULL);
        opts = g_strdup_printf("stream,id=srv,server=on,addr.type=unix,addr.path=%s", s->path);
        sun->sun_family = AF_UNIX;
        g_strlcpy(sun->sun_path, s->path, sizeof(sun->sun_path));
        s->len = sizeof(*sun);
    } else {
        int port = free_port();
        struct sockaddr_in *sin = (struct sockaddr_in *)&s->addr;
        opts = g_str_equal(kind, "socket")
            ? g_strdup_printf("socket,id=srv,listen=127.0.0.1:%d", port)
            : g_strdup_printf("stream,id=srv,server=on,addr.type=inet,addr.host=127.0.0.1,"
                              "addr.port=%d", port);
        sin->sin_family = AF_INET;
        sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        sin->sin_port = htons(port);
        s->len = sizeof(*sin);
    }
    s->nd = qnic_netdev_add_str(test_backends(), opts, &err);
    g_assert_no_error(err);
    s->nic = test_nic_new("nic");
    test_nic_attach(s->nic, s->nd);
    return s;
}

static void srv_free(Srv *s)
{
    test_nic_free(s->nic);
    qnic_netdev_del(s->nd);
    if (s->path) {
        /* the backend unlinks its socket; the directory is ours */
        g_assert_false(g_file_test(s->path, G_FILE_TEST_EXISTS));
        g_autofree char *dir = g_path_get_dirname(s->path);
        g_rmdir(dir);
        g_free(s->path);
    }
    g_free(s);
}

static int srv_connect(Srv *s)
{
    int fd = socket(s->addr.ss_family, SOCK_STREAM, 0);
    g_assert_cmpint(connect(fd, (struct sockaddr *)&s->addr, s->len), ==, 0);
    /* Let the backend accept. */
    test_loop_run_ms(20);
    return fd;
}

static void put_frame(int fd, const uint8_t *f, uint32_t len)
{
    uint8_t hdr[4];
    qnic_st32be(hdr, len);
    g_assert_cmpint(write(fd, hdr, 4), ==, 4);
    if (f && len) {
        g_assert_cmpint(write(fd, f, len), ==, (ssize_t)len);
    }
}

static bool nic_has_n(void *opaque)
{
    void **a = opaque;
    TestNic *n = a[0];
    return n->frames->len >= GPOINTER_TO_UINT(a[1]);
}

static void wait_frames(TestNic *n, guint count)
{
    void *a[2] = { n, GUINT_TO_POINTER(count) };
    g_assert_true(test_loop_until(nic_has_n, a, 5000));
}

static unsigned drops_at_start;
static bool drops_reached(void *opaque)
{
    return qnic_sock_peer_drops(test_backends()) >= drops_at_start + GPOINTER_TO_UINT(opaque);
}

/* After a drop the peer sees the connection closed. */
static void assert_closed_by_qnic(int fd)
{
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    uint8_t b[16];
    g_assert_cmpint(poll(&pfd, 1, 2000), ==, 1);
    g_assert_cmpint(read(fd, b, sizeof(b)), <=, 0);
}

static void run_bad_peer(const char *kind)
{
    Srv *s = srv_new(kind);
    uint8_t f[100];
    int fd;

    for (int i = 0; i < 100; i++) {
        f[i] = i;
    }
    drops_at_start = qnic_sock_peer_drops(test_backends());

    /* A good client. */
    fd = srv_connect(s);
    put_frame(fd, f, sizeof(f));
    wait_frames(s->nic, 1);
    g_assert_true(test_frame_eq(s->nic->frames->pdata[0], f, sizeof(f)));

    /* A length prefix of 2 GiB: dropped, never allocated. */
    put_frame(fd, NULL, 0x80000000u);
    g_assert_true(test_loop_until(drops_reached, GUINT_TO_POINTER(1), 5000));
    assert_closed_by_qnic(fd);
    close(fd);

    /* The next client is served. */
    fd = srv_connect(s);
    put_frame(fd, f, 60);
    wait_frames(s->nic, 2);
    g_assert_true(test_frame_eq(s->nic->frames->pdata[1], f, 60));

    /* A frame cut short by a disconnect: nothing partial reaches the NIC. */
    uint8_t hdr[4];
    qnic_st32be(hdr, 100);
    g_assert_cmpint(write(fd, hdr, 4), ==, 4);
    g_assert_cmpint(write(fd, f, 50), ==, 50);
    close(fd);
    g_assert_true(test_loop_until(drops_reached, GUINT_TO_POINTER(2), 5000));
    g_assert_cmpuint(s->nic->frames->len, ==, 2);

    /* A bare disconnect, then a header cut short. */
    fd = srv_connect(s);
    close(fd);
    g_assert_true(test_loop_until(drops_reached, GUINT_TO_POINTER(3), 5000));
    fd = srv_connect(s);
    g_assert_cmpint(write(fd, hdr, 2), ==, 2);
    close(fd);
    g_assert_true(test_loop_until(drops_reached, GUINT_TO_POINTER(4), 5000));

    /* Still serving, and frames to a gone peer are dropped, not stuck. */
    g_assert_cmpint(qnic_net_send(s->nic->nc, f, 60), ==, 60);
    fd = srv_connect(s);
    put_frame(fd, f + 1, 70);
    wait_frames(s->nic, 3);
    g_assert_true(test_frame_eq(s->nic->frames->pdata[2], f + 1, 70));
    /* qnic -> peer on the new connection */
    g_assert_cmpint(qnic_net_send(s->nic->nc, f, 80), ==, 80);
    test_loop_run_ms(20);
    uint8_t rb[84];
    g_assert_cmpint(recv(fd, rb, sizeof(rb), MSG_WAITALL), ==, 84);
    g_assert_cmpuint(qnic_ld32be(rb), ==, 80);
    g_assert_cmpmem(rb + 4, 80, f, 80);
    close(fd);
    srv_free(s);
}

static void test_bad_peer_stream(void)
{
    run_bad_peer("stream");
}

static void test_bad_peer_socket(void)
{
    run_bad_peer("socket");
}

static void test_bad_peer_unix(void)
{
    run_bad_peer("unix");
}

/* The NIC cannot receive: the backend stops reading (frames wait in the
 * socket, not in memory) and everything arrives in order afterwards. */
static void test_rx_backpressure(void)
{
    Srv *s = srv_new("stream");
    int fd = srv_connect(s);
    enum { N = 400, LEN = 1000 };
    uint8_t f[LEN];

    s->nic->busy = true;
    for (int i = 0; i < N; i++) {
        memset(f, 0, sizeof(f));
        qnic_st32be(f, i);
        put_frame(fd, f, LEN);
    }
    test_loop_run_ms(200);
    g_assert_cmpuint(s->nic->frames->len, ==, 0);
    /* At most one read's worth is held in memory. */
    unsigned queued = qnic_net_queue_len(s->nic->nc->incoming);
    g_assert_cmpuint(queued, >=, 1);
    g_assert_cmpuint(queued, <=, 65536 / LEN + 1);
    test_loop_run_ms(100);
    g_assert_cmpuint(qnic_net_queue_len(s->nic->nc->incoming), ==, queued);

    s->nic->busy = false;
    qnic_net_flush_queued(s->nic->nc);
    wait_frames(s->nic, N);
    for (int i = 0; i < N; i++) {
        size_t n;
        const uint8_t *p = g_bytes_get_data(s->nic->frames->pdata[i], &n);
        g_assert_cmpuint(n, ==, LEN);
        g_assert_cmpuint(qnic_ld32be(p), ==, i);
    }
    close(fd);
    srv_free(s);
}

static void tx_sent_cb(QnicNetClient *nc, ssize_t ret)
{
    TestNic *t = nc->opaque;
    t->sent_cbs++;
}

/* The peer does not read: the backend takes frames until the socket is
 * full, then makes the NIC wait; the NIC's frames then all arrive. */
static void test_tx_backpressure(void)
{
    Srv *s = srv_new("stream");
    int fd = srv_connect(s);
    enum { LEN = 1400 };
    uint8_t f[LEN];
    struct iovec iov = { f, LEN };
    int sent = 0, queued = 0;

    for (int i = 0; i < 100000 && queued < 3; i++) {
        qnic_st32be(f, i);
        ssize_t r = qnic_net_send_iov(s->nic->nc, &iov, 1, tx_sent_cb);
        if (r == 0) {
            queued++;
        }
        sent++;
    }
    g_assert_cmpint(queued, ==, 3);   /* the socket filled up: frames wait */
    g_assert_cmpuint(s->nic->sent_cbs, ==, 0);
    /* Now read everything: each frame once, in order. */
    GByteArray *rx = g_byte_array_new();
    int next = 0;
    gint64 end = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
    while (next < sent && g_get_monotonic_time() < end) {
        uint8_t buf[65536];
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        poll(&pfd, 1, 1);
        ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n > 0) {
            g_byte_array_append(rx, buf, n);
        }
        while (rx->len >= 4 + LEN) {
            g_assert_cmpuint(qnic_ld32be(rx->data), ==, LEN);
            g_assert_cmpuint(qnic_ld32be(rx->data + 4), ==, next);
            next++;
            g_byte_array_remove_range(rx, 0, 4 + LEN);
        }
        qnic_bql_lock();
        qnic_main_loop_iterate(false);
        qnic_bql_unlock();
    }
    g_assert_cmpint(next, ==, sent);
    g_assert_cmpuint(s->nic->sent_cbs, ==, 3);
    g_byte_array_free(rx, TRUE);
    close(fd);
    srv_free(s);
}

static void test_reconnect(void)
{
    int port = free_port();
    g_autofree char *opts = g_strdup_printf(
        "stream,id=cli,server=off,addr.type=inet,addr.host=127.0.0.1,addr.port=%d,reconnect=1",
        port);
    GError *err = NULL;
    /* Nothing listens yet: with reconnect= that is not an error. */
    QnicNetdev *nd = qnic_netdev_add_str(test_backends(), opts, &err);
    g_assert_no_error(err);
    TestNic *nic = test_nic_new("nic");
    test_nic_attach(nic, nd);

    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int one = 1, lfd = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    g_assert_cmpint(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), ==, 0);
    listen(lfd, 1);
    for (int round = 0; round < 2; round++) {
        struct pollfd pfd = { .fd = lfd, .events = POLLIN };
        gint64 end = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
        while (poll(&pfd, 1, 0) == 0 && g_get_monotonic_time() < end) {
            test_loop_run_ms(20);
        }
        int c = accept(lfd, NULL, NULL);
        g_assert_cmpint(c, >=, 0);
        uint8_t f[60] = { 1, 2, 3, (uint8_t)round };
        put_frame(c, f, 60);
        wait_frames(nic, round + 1);
        g_assert_true(test_frame_eq(nic->frames->pdata[round], f, 60));
        close(c);     /* the client reconnects */
    }
    close(lfd);
    test_nic_free(nic);
    qnic_netdev_del(nd);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    signal(SIGPIPE, SIG_IGN);
    g_test_add_func("/socket-peer/bad-peer/stream", test_bad_peer_stream);
    g_test_add_func("/socket-peer/bad-peer/socket", test_bad_peer_socket);
    g_test_add_func("/socket-peer/bad-peer/unix", test_bad_peer_unix);
    g_test_add_func("/socket-peer/rx-backpressure", test_rx_backpressure);
    g_test_add_func("/socket-peer/tx-backpressure", test_tx_backpressure);
    g_test_add_func("/socket-peer/reconnect", test_reconnect);
    return g_test_run();
}
