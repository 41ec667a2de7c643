/*
 * virtio/vhost-user-msg.c, the codec both vhost-user ends share, against a
 * peer that drips a message one byte at a time (issue 21, finding 6: with a
 * timeout per read, a backend sending one byte every 1.2 s held qnic-vmm
 * 24 s with a 1.5 s timeout). One deadline bounds the whole message.
 * Also the kick/call descriptors a peer hands over (finding 2): only
 * eventfds are taken, and their I/O never blocks, even when the peer
 * clears the O_NONBLOCK it shares with us.
 */
#include "qnic/vhost-user-msg.h"
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct {
    int fd;
    unsigned gap_ms;
    uint8_t bytes[20];
    size_t len;
} Drip;

static gpointer drip_thread(gpointer opaque)
{
    Drip *d = opaque;

    for (size_t i = 0; i < d->len; i++) {
        if (send(d->fd, &d->bytes[i], 1, MSG_NOSIGNAL) != 1) {
            break;      /* the reader gave up and closed */
        }
        g_usleep(d->gap_ms * 1000);
    }
    return NULL;
}

/* A GET_FEATURES reply (12-byte header + u64) one byte every gap_ms. */
static GThread *drip_start(Drip *d, int fd, unsigned gap_ms)
{
    QnicVhuMsg m;

    qnic_vhu_msg_init(&m, QNIC_VHU_GET_FEATURES, 8);
    m.hdr.flags |= QNIC_VHU_FLAG_REPLY;
    m.p.u64 = 0x1234;
    d->fd = fd;
    d->gap_ms = gap_ms;
    d->len = sizeof(m.hdr) + 8;
    memcpy(d->bytes, &m.hdr, sizeof(m.hdr));
    memcpy(d->bytes + sizeof(m.hdr), &m.p, 8);
    return g_thread_new("drip", drip_thread, d);
}

static void test_recv_deadline(void)
{
    int sv[2];
    Drip d;
    QnicVhuMsg m;
    g_autoptr(GError) err = NULL;
    GThread *t;
    gint64 t0;
    int r;

    /* A blocking socket, as qnic-vmm's chardev hands over. */
    g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), ==, 0);
    t = drip_start(&d, sv[1], 100);     /* 20 bytes: 2 s in all */
    t0 = g_get_monotonic_time();
    r = qnic_vhu_msg_recv_until(sv[0], &m, qnic_vhu_deadline(500), &err);
    g_assert_cmpint(r, ==, -1);
    g_assert_nonnull(strstr(err->message, "middle of a message"));
    g_assert_cmpint(g_get_monotonic_time() - t0, <, 1500 * 1000);
    /* qnic_vhu_msg_recv() has a deadline of its own too */
    close(sv[0]);
    g_thread_join(t);
    close(sv[1]);

    g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), ==, 0);
    t = drip_start(&d, sv[1], 150);     /* 3 s in all */
    t0 = g_get_monotonic_time();
    g_clear_error(&err);
    r = qnic_vhu_msg_recv(sv[0], &m, &err);
    g_assert_cmpint(r, ==, -1);
    g_assert_cmpint(g_get_monotonic_time() - t0, <,
                    (QNIC_VHU_MSG_TIMEOUT_MS + 1000) * (gint64)1000);
    close(sv[0]);
    g_thread_join(t);
    close(sv[1]);
}

static void test_recv_in_time(void)
{
    int sv[2];
    Drip d;
    QnicVhuMsg m;
    g_autoptr(GError) err = NULL;
    GThread *t;

    /* The same message split in pieces but complete in time is taken. */
    g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), ==, 0);
    t = drip_start(&d, sv[1], 5);
    g_assert_cmpint(qnic_vhu_msg_recv_until(sv[0], &m, qnic_vhu_deadline(5000), &err), ==, 1);
    g_assert_no_error(err);
    g_assert_cmpuint(m.hdr.request, ==, QNIC_VHU_GET_FEATURES);
    g_assert_cmpuint(m.p.u64, ==, 0x1234);
    g_thread_join(t);
    close(sv[0]);
    close(sv[1]);
}

static void test_send_deadline(void)
{
    int sv[2], sz = 4096;
    QnicVhuMsg m;
    g_autoptr(GError) err = NULL;
    gint64 t0;
    bool ok = true;

    /* A peer that never reads: sending gives up at the deadline. */
    g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), ==, 0);
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
    qnic_vhu_msg_init(&m, QNIC_VHU_SET_VRING_ADDR, sizeof(QnicVhuVringAddr));
    t0 = g_get_monotonic_time();
    for (unsigned i = 0; i < 100000 && ok; i++) {
        ok = qnic_vhu_msg_send_until(sv[0], &m, qnic_vhu_deadline(300), &err);
    }
    g_assert_false(ok);
    g_assert_nonnull(strstr(err->message, "by the deadline"));
    g_assert_cmpint(g_get_monotonic_time() - t0, <, 2 * G_USEC_PER_SEC);
    close(sv[0]);
    close(sv[1]);
}

static void expect_refused(int fd, const char *what)
{
    g_autoptr(GError) err = NULL;

    g_assert_false(qnic_vhu_fd_is_eventfd(fd, &err));
    g_assert_nonnull(strstr(err->message, what));
    g_assert_nonnull(strstr(err->message, "not an eventfd"));
}

static void test_fd_kinds(void)
{
    int e = eventfd(0, EFD_CLOEXEC), p[2], sp[2], mf = memfd_create("f", MFD_CLOEXEC);
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);

    g_assert_cmpint(pipe2(p, O_CLOEXEC), ==, 0);
    g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), ==, 0);
    g_assert_true(qnic_vhu_fd_is_eventfd(e, NULL));
    expect_refused(p[0], "a pipe");
    expect_refused(p[1], "a pipe");
    expect_refused(sp[0], "a socket");
    expect_refused(mf, "a file");
    expect_refused(null, "a file");
    g_assert_false(qnic_vhu_fd_is_eventfd(1000, NULL));     /* not open */
    close(e);
    close(p[0]);
    close(p[1]);
    close(sp[0]);
    close(sp[1]);
    close(mf);
    close(null);
}

static void test_eventfd_never_blocks(void)
{
    /* Blocking, as a frontend that cleared O_NONBLOCK leaves them. */
    int e = eventfd(0, EFD_CLOEXEC);
    uint64_t v = 0, full = 0xfffffffffffffffeull;
    gint64 t0;

    /* counter 0 (the peer drained it after our poll): no wait */
    t0 = g_get_monotonic_time();
    g_assert_cmpint(qnic_vhu_eventfd_read(e, &v), ==, 0);
    g_assert_cmpint(qnic_vhu_eventfd_signal(e), ==, 1);
    g_assert_cmpint(qnic_vhu_eventfd_signal(e), ==, 1);
    g_assert_cmpint(qnic_vhu_eventfd_read(e, &v), ==, 1);
    g_assert_cmpuint(v, ==, 2);
    /* counter full (the peer filled it): the write gives up */
    g_assert_cmpint(write(e, &full, sizeof(full)), ==, sizeof(full));
    for (int i = 0; i < 5; i++) {
        g_assert_cmpint(qnic_vhu_eventfd_signal(e), ==, 0);
        g_assert_cmpint(errno, ==, EAGAIN);
    }
    g_assert_cmpint(g_get_monotonic_time() - t0, <, G_USEC_PER_SEC);
    /* the guard is off again: a later sleep in poll is not cut short */
    t0 = g_get_monotonic_time();
    g_assert_cmpint(poll(NULL, 0, 100), ==, 0);
    g_assert_cmpint(g_get_monotonic_time() - t0, >=, 90 * 1000);
    g_assert_cmpint(qnic_vhu_eventfd_read(e, &v), ==, 1);
    g_assert_cmpuint(v, ==, full);
    close(e);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/vhost-user-msg/recv/one-deadline", test_recv_deadline);
    g_test_add_func("/vhost-user-msg/recv/in-time", test_recv_in_time);
    g_test_add_func("/vhost-user-msg/send/one-deadline", test_send_deadline);
    g_test_add_func("/vhost-user-msg/fd/eventfd-only", test_fd_kinds);
    g_test_add_func("/vhost-user-msg/fd/eventfd-never-blocks", test_eventfd_never_blocks);
    return g_test_run();
}
