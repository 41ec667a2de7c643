/*
 * A NIC-like net client for the net core's unit tests: it records every
 * frame it receives, can be told to refuse frames (return 0, as a NIC with
 * no free RX buffers does) and counts completion callbacks, so tests can
 * check delivery, ordering and flow control against the net core and the
 * backends.
 */
#ifndef TEST_NET_COMMON_H
#define TEST_NET_COMMON_H

#include "qnic/net.h"
#include "qnic/mainloop.h"
#include "../lib/test-backends.h"

typedef struct TestNic {
    QnicNetClient *nc;
    bool busy;                 /* refuse frames: receive returns 0 */
    GPtrArray *frames;         /* GBytes * */
    unsigned sent_cbs;
    ssize_t last_sent_ret;
    unsigned link_changes;
} TestNic;

static ssize_t test_nic_receive(QnicNetClient *nc, const struct iovec *iov, int iovcnt)
{
    TestNic *t = nc->opaque;
    size_t len = qnic_iov_size(iov, iovcnt);

    if (t->busy) {
        return 0;
    }
    uint8_t *buf = g_malloc(len ? len : 1);
    qnic_iov_to_buf(iov, iovcnt, 0, buf, len);
    g_ptr_array_add(t->frames, g_bytes_new_take(buf, len));
    return len;
}

static void test_nic_link(QnicNetClient *nc)
{
    TestNic *t = nc->opaque;
    t->link_changes++;
}

static const QnicNetClientOps test_nic_ops = {
    .kind = QNIC_NET_CLIENT_NIC,
    .receive_iov = test_nic_receive,
    .link_status_changed = test_nic_link,
};

static G_GNUC_UNUSED void test_nic_sent_cb(QnicNetClient *nc, ssize_t ret)
{
    TestNic *t = nc->opaque;
    t->sent_cbs++;
    t->last_sent_ret = ret;
}

static G_GNUC_UNUSED TestNic *test_nic_new(const char *name)
{
    TestNic *t = g_new0(TestNic, 1);
    t->frames = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
    t->nc = qnic_net_client_new(test_backends(), &test_nic_ops, "test-nic", name, t);
    return t;
}

static G_GNUC_UNUSED void test_nic_free(TestNic *t)
{
    if (t->nc) {
        qnic_net_client_free(t->nc);
    }
    g_ptr_array_free(t->frames, TRUE);
    g_free(t);
}

/* Attach the test NIC to a netdev's first queue. */
static G_GNUC_UNUSED void test_nic_attach(TestNic *t, QnicNetdev *nd)
{
    qnic_net_client_set_peer(t->nc, nd->ncs[0]);
    nd->in_use = true;
}

static G_GNUC_UNUSED bool test_frame_eq(GBytes *b, const void *data, size_t len)
{
    size_t n;
    const void *p = g_bytes_get_data(b, &n);
    return n == len && memcmp(p, data, len) == 0;
}

/* Run the loop until cond() or timeout_ms; returns cond(). */
static G_GNUC_UNUSED bool test_loop_until(bool (*cond)(void *), void *opaque, int timeout_ms)
{
    gint64 end = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
    while (!cond(opaque)) {
        if (g_get_monotonic_time() > end) {
            return false;
        }
        qnic_bql_lock();
        qnic_main_loop_iterate(false);
        qnic_bql_unlock();
        g_usleep(1000);
    }
    return true;
}

static G_GNUC_UNUSED void test_loop_run_ms(int ms)
{
    gint64 end = g_get_monotonic_time() + (gint64)ms * 1000;
    while (g_get_monotonic_time() < end) {
        qnic_bql_lock();
        qnic_main_loop_iterate(false);
        qnic_bql_unlock();
        g_usleep(1000);
    }
}

#endif
