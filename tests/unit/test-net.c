/*
 * Unit tests of the net core: delivery between peers, flow control (a busy
 * receiver queues, flush delivers in order and runs the sender's
 * callback), purge on deletion, link state, hub forwarding with flow
 * control, the netdev registry's errors, NIC creation with QEMU's default
 * MACs, the iovec helpers, and filter-dump's pcap read back by tshark.
 */
#include "test-net-common.h"
#include "net/net-internal.h"
#include "qnic/filter.h"
#include "qnic/log.h"
#include "qnic/machine.h"
#include "qnic/schema.h"
#include "vmm/cmdline-net.h"
#include "../lib/test-backends.h"
#include <fcntl.h>
#include <unistd.h>
#include <glib/gstdio.h>

static const uint8_t frame_a[60] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0, 1, 2, 3,
                                     0x08, 0x06, 'a' };
static const uint8_t frame_b[64] = { 0x52, 0x54, 0, 1, 2, 3, 0x52, 0x54, 0, 4, 5, 6, 0x08, 0x00,
                                     'b' };

static void test_peer_delivery(void)
{
    TestNic *a = test_nic_new("a"), *b = test_nic_new("b");

    /* No peer: the frame leaves into nothing but counts as sent. */
    g_assert_cmpint(qnic_net_send(a->nc, frame_a, sizeof(frame_a)), ==, sizeof(frame_a));
    qnic_net_client_set_peer(a->nc, b->nc);
    g_assert_true(a->nc->peer == b->nc && b->nc->peer == a->nc);
    g_assert_cmpint(qnic_net_send(a->nc, frame_a, sizeof(frame_a)), ==, sizeof(frame_a));
    g_assert_cmpuint(b->frames->len, ==, 1);
    g_assert_true(test_frame_eq(b->frames->pdata[0], frame_a, sizeof(frame_a)));
    g_assert_cmpuint(a->frames->len, ==, 0);

    /* A frame in pieces arrives whole. */
    struct iovec iov[3] = {
        { (void *)frame_b, 10 }, { (void *)(frame_b + 10), 0 }, { (void *)(frame_b + 10), 54 },
    };
    g_assert_cmpint(qnic_net_send_iov(b->nc, iov, 3, NULL), ==, sizeof(frame_b));
    g_assert_cmpuint(a->frames->len, ==, 1);
    g_assert_true(test_frame_eq(a->frames->pdata[0], frame_b, sizeof(frame_b)));
    test_nic_free(a);
    g_assert_null(b->nc->peer);
    test_nic_free(b);
}

static void test_flow_control(void)
{
    TestNic *a = test_nic_new("a"), *b = test_nic_new("b");
    struct iovec ia = { (void *)frame_a, sizeof(frame_a) };
    struct iovec ib = { (void *)frame_b, sizeof(frame_b) };

    qnic_net_client_set_peer(a->nc, b->nc);
    b->busy = true;
    g_assert_true(qnic_net_can_send(a->nc));
    g_assert_cmpint(qnic_net_send_iov(a->nc, &ia, 1, test_nic_sent_cb), ==, 0);
    g_assert_true(b->nc->receive_disabled);
    g_assert_false(qnic_net_can_send(a->nc));
    /* Behind the first one, even though the receiver is not asked. */
    g_assert_cmpint(qnic_net_send_iov(a->nc, &ib, 1, test_nic_sent_cb), ==, 0);
    g_assert_cmpuint(a->sent_cbs, ==, 0);
    g_assert_cmpuint(b->frames->len, ==, 0);

    /* Flushing while still busy keeps everything queued. */
    qnic_net_flush_queued(b->nc);
    g_assert_cmpuint(b->frames->len, ==, 0);
    g_assert_true(b->nc->receive_disabled);

    b->busy = false;
    qnic_net_flush_queued(b->nc);
    g_assert_cmpuint(b->frames->len, ==, 2);
    g_assert_true(test_frame_eq(b->frames->pdata[0], frame_a, sizeof(frame_a)));
    g_assert_true(test_frame_eq(b->frames->pdata[1], frame_b, sizeof(frame_b)));
    g_assert_cmpuint(a->sent_cbs, ==, 2);
    g_assert_cmpint(a->last_sent_ret, ==, sizeof(frame_b));
    g_assert_false(b->nc->receive_disabled);
    g_assert_true(qnic_net_can_send(a->nc));

    /* Direct path again once drained. */
    g_assert_cmpint(qnic_net_send_iov(a->nc, &ia, 1, test_nic_sent_cb), ==, sizeof(frame_a));
    g_assert_cmpuint(a->sent_cbs, ==, 2);
    test_nic_free(a);
    test_nic_free(b);
}

static bool refuse(QnicNetClient *nc)
{
    return false;
}

/* A stopped VM moves no frame: senders queue, resuming delivers in order
 * and runs the completions (QMP stop/cont). */
static void test_vm_stopped(void)
{
    TestNic *a = test_nic_new("a"), *b = test_nic_new("b");
    struct iovec ia = { (void *)frame_a, sizeof(frame_a) };
    struct iovec ib = { (void *)frame_b, sizeof(frame_b) };

    qnic_net_client_set_peer(a->nc, b->nc);
    qnic_net_set_vm_running(test_backends(), false);
    g_assert_false(qnic_net_vm_running(test_backends()));
    g_assert_false(qnic_net_can_send(a->nc));
    g_assert_cmpint(qnic_net_send_iov(a->nc, &ia, 1, test_nic_sent_cb), ==, 0);
    g_assert_cmpint(qnic_net_send_iov(b->nc, &ib, 1, test_nic_sent_cb), ==, 0);
    g_assert_cmpint(qnic_net_send_iov(a->nc, &ib, 1, test_nic_sent_cb), ==, 0);
    g_assert_cmpuint(b->frames->len, ==, 0);
    g_assert_cmpuint(a->frames->len, ==, 0);
    /* a flush while stopped delivers nothing either */
    qnic_net_flush_queued(b->nc);
    g_assert_cmpuint(b->frames->len, ==, 0);

    qnic_net_set_vm_running(test_backends(), true);
    g_assert_cmpuint(b->frames->len, ==, 2);
    g_assert_true(test_frame_eq(b->frames->pdata[0], frame_a, sizeof(frame_a)));
    g_assert_true(test_frame_eq(b->frames->pdata[1], frame_b, sizeof(frame_b)));
    g_assert_cmpuint(a->frames->len, ==, 1);
    g_assert_cmpuint(a->sent_cbs, ==, 2);
    g_assert_cmpuint(b->sent_cbs, ==, 1);
    /* and the direct path is back */
    g_assert_cmpint(qnic_net_send_iov(a->nc, &ia, 1, NULL), ==, sizeof(frame_a));
    test_nic_free(a);
    test_nic_free(b);
}

static void test_can_receive(void)
{
    TestNic *a = test_nic_new("a"), *b = test_nic_new("b");
    QnicNetClientOps ops = test_nic_ops;

    ops.can_receive = refuse;
    b->nc->ops = &ops;
    qnic_net_client_set_peer(a->nc, b->nc);
    g_assert_false(qnic_net_can_send(a->nc));
    g_assert_cmpint(qnic_net_send(a->nc, frame_a, sizeof(frame_a)), ==, 0);
    g_assert_cmpuint(b->frames->len, ==, 0);
    b->nc->ops = &test_nic_ops;
    qnic_net_flush_queued(b->nc);
    g_assert_cmpuint(b->frames->len, ==, 1);
    test_nic_free(a);
    test_nic_free(b);
}

static void test_purge(void)
{
    TestNic *a = test_nic_new("a"), *b = test_nic_new("b"), *c = test_nic_new("c");
    struct iovec ia = { (void *)frame_a, sizeof(frame_a) };

    /* Receiver goes away: the sender is told (callback with 0). */
    qnic_net_client_set_peer(a->nc, b->nc);
    b->busy = true;
    g_assert_cmpint(qnic_net_send_iov(a->nc, &ia, 1, test_nic_sent_cb), ==, 0);
    g_assert_cmpint(qnic_net_send_iov(a->nc, &ia, 1, test_nic_sent_cb), ==, 0);
    test_nic_free(b);
    g_assert_cmpuint(a->sent_cbs, ==, 2);
    g_assert_cmpint(a->last_sent_ret, ==, 0);
    g_assert_null(a->nc->peer);

    /* Sender goes away: its frames leave the receiver's queue, nothing is
     * delivered later and its callback does not run into freed memory. */
    qnic_net_client_set_peer(a->nc, c->nc);
    c->busy = true;
    g_assert_cmpint(qnic_net_send_iov(a->nc, &ia, 1, test_nic_sent_cb), ==, 0);
    test_nic_free(a);
    c->busy = false;
    qnic_net_flush_queued(c->nc);
    g_assert_cmpuint(c->frames->len, ==, 0);

    /* Explicit purge of one sender's frames. */
    TestNic *d = test_nic_new("d");
    qnic_net_client_set_peer(c->nc, d->nc);
    d->busy = true;
    g_assert_cmpint(qnic_net_send_iov(c->nc, &ia, 1, test_nic_sent_cb), ==, 0);
    qnic_net_purge_queued(c->nc);
    g_assert_cmpuint(c->sent_cbs, ==, 1);
    g_assert_cmpint(c->last_sent_ret, ==, 0);
    d->busy = false;
    qnic_net_flush_queued(d->nc);
    g_assert_cmpuint(d->frames->len, ==, 0);
    test_nic_free(c);
    test_nic_free(d);
}

static void test_link_state(void)
{
    TestNic *a = test_nic_new("a"), *b = test_nic_new("b");
    QnicNetdev *nd = qnic_netdev_add_str(test_backends(), "hubport,id=lnk0,hubid=40", NULL);
    QnicNetdev *nd2 = qnic_netdev_add_str(test_backends(), "hubport,id=lnk1,hubid=40", NULL);

    g_assert_nonnull(nd);
    g_assert_nonnull(nd2);
    test_nic_attach(a, nd);
    test_nic_attach(b, nd2);

    /* Sender link down: dropped, reported sent. */
    qnic_net_set_link(a->nc, false);
    g_assert_true(a->nc->link_down);
    g_assert_cmpuint(a->link_changes, ==, 1);
    g_assert_false(nd->ncs[0]->link_down);   /* a NIC's link does not touch its backend */
    g_assert_cmpint(qnic_net_send(a->nc, frame_a, sizeof(frame_a)), ==, sizeof(frame_a));
    g_assert_cmpuint(b->frames->len, ==, 0);
    qnic_net_set_link(a->nc, true);
    g_assert_cmpint(qnic_net_send(a->nc, frame_a, sizeof(frame_a)), ==, sizeof(frame_a));
    g_assert_cmpuint(b->frames->len, ==, 1);

    /* Backend link down shows on its NIC (the guest sees the cable go). */
    qnic_net_set_link(nd2->ncs[0], false);
    g_assert_true(b->nc->link_down);
    g_assert_cmpuint(b->link_changes, ==, 1);
    g_assert_cmpint(qnic_net_send(a->nc, frame_a, sizeof(frame_a)), ==, sizeof(frame_a));
    g_assert_cmpuint(b->frames->len, ==, 1);
    qnic_net_set_link(nd2->ncs[0], true);
    g_assert_false(b->nc->link_down);
    g_assert_cmpint(qnic_net_send(a->nc, frame_a, sizeof(frame_a)), ==, sizeof(frame_a));
    g_assert_cmpuint(b->frames->len, ==, 2);

    test_nic_free(a);
    test_nic_free(b);
    qnic_netdev_del(nd);
    qnic_netdev_del(nd2);
}

static void test_hub_forwarding(void)
{
    TestNic *n[3];
    QnicNetdev *p[3];
    struct iovec ia = { (void *)frame_a, sizeof(frame_a) };

    for (int i = 0; i < 3; i++) {
        g_autofree char *s = g_strdup_printf("hubport,id=hp%d,hubid=7", i);
        GError *err = NULL;
        p[i] = qnic_netdev_add_str(test_backends(), s, &err);
        g_assert_no_error(err);
        n[i] = test_nic_new("n");
        test_nic_attach(n[i], p[i]);
    }
    g_assert_cmpint(qnic_net_hub_port_count(test_backends(), 7), ==, 3);

    g_assert_cmpint(qnic_net_send(n[0]->nc, frame_a, sizeof(frame_a)), ==, sizeof(frame_a));
    g_assert_cmpuint(n[0]->frames->len, ==, 0);     /* not back to the sender */
    g_assert_cmpuint(n[1]->frames->len, ==, 1);
    g_assert_cmpuint(n[2]->frames->len, ==, 1);
    g_assert_true(test_frame_eq(n[2]->frames->pdata[0], frame_a, sizeof(frame_a)));

    /* One busy port: the others get the frame now, it gets it on flush. */
    n[1]->busy = true;
    g_assert_cmpint(qnic_net_send(n[0]->nc, frame_b, sizeof(frame_b)), ==, sizeof(frame_b));
    g_assert_cmpuint(n[2]->frames->len, ==, 2);
    g_assert_cmpuint(n[1]->frames->len, ==, 1);
    n[1]->busy = false;
    qnic_net_flush_queued(n[1]->nc);
    g_assert_cmpuint(n[1]->frames->len, ==, 2);
    g_assert_true(test_frame_eq(n[1]->frames->pdata[1], frame_b, sizeof(frame_b)));

    /* Every other port busy: the hub cannot take the frame; the sender
     * waits and its callback runs once a receiver flushes. */
    n[1]->busy = n[2]->busy = true;
    qnic_net_send(n[0]->nc, frame_b, sizeof(frame_b));   /* makes both disabled */
    g_assert_true(n[1]->nc->receive_disabled && n[2]->nc->receive_disabled);
    g_assert_cmpint(qnic_net_send_iov(n[0]->nc, &ia, 1, test_nic_sent_cb), ==, 0);
    g_assert_cmpuint(n[0]->sent_cbs, ==, 0);
    n[2]->busy = false;
    qnic_net_flush_queued(n[2]->nc);
    g_assert_cmpuint(n[0]->sent_cbs, ==, 1);
    g_assert_cmpint(n[0]->last_sent_ret, ==, sizeof(frame_a));
    g_assert_cmpuint(n[2]->frames->len, ==, 4);
    g_assert_true(test_frame_eq(n[2]->frames->pdata[3], frame_a, sizeof(frame_a)));
    n[1]->busy = false;
    qnic_net_flush_queued(n[1]->nc);
    g_assert_cmpuint(n[1]->frames->len, ==, 4);

    /* A port leaves: the rest keep working. */
    test_nic_free(n[2]);
    qnic_netdev_del(p[2]);
    g_assert_cmpint(qnic_net_hub_port_count(test_backends(), 7), ==, 2);
    qnic_net_send(n[1]->nc, frame_a, sizeof(frame_a));
    g_assert_cmpuint(n[0]->frames->len, ==, 1);
    for (int i = 0; i < 2; i++) {
        test_nic_free(n[i]);
        qnic_netdev_del(p[i]);
    }
    g_assert_cmpint(qnic_net_hub_port_count(test_backends(), 7), ==, 0);
}

static void test_hubport_plug(void)
{
    GError *err = NULL;
    QnicNetdev *a = qnic_netdev_add_str(test_backends(), "hubport,id=pa,hubid=9", &err);
    QnicNetdev *b = qnic_netdev_add_str(test_backends(), "hubport,id=pb,hubid=8", &err);
    /* Port of hub 9 plugged into a port of hub 8: hubs chained. */
    QnicNetdev *c = qnic_netdev_add_str(test_backends(), "hubport,id=pc,hubid=9,netdev=pb", &err);
    QnicNetdev *d = qnic_netdev_add_str(test_backends(), "hubport,id=pd,hubid=8", &err);
    TestNic *x = test_nic_new("x"), *y = test_nic_new("y");

    g_assert_no_error(err);
    g_assert_true(b->in_use && c->in_use);
    g_assert_null(qnic_netdev_add_str(test_backends(), "hubport,id=pe,hubid=9,netdev=nope", &err));
    g_assert_nonnull(strstr(err->message, "netdev 'nope' not found"));
    g_clear_error(&err);
    g_assert_null(qnic_netdev_add_str(test_backends(), "hubport,id=pf,hubid=9,netdev=pb", &err));
    g_assert_nonnull(err);
    g_clear_error(&err);

    test_nic_attach(x, a);
    test_nic_attach(y, d);
    qnic_net_send(x->nc, frame_a, sizeof(frame_a));
    g_assert_cmpuint(y->frames->len, ==, 1);
    test_nic_free(x);
    test_nic_free(y);
    qnic_netdev_del_all(test_backends());
}

static void test_netdev_errors(void)
{
    GError *err = NULL;
    QnicNetdev *nd = qnic_netdev_add_str(test_backends(), "hubport,id=dup,hubid=1", &err);

    g_assert_no_error(err);
    g_assert_true(qnic_netdev_find(test_backends(), "dup") == nd);
    g_assert_null(qnic_netdev_add_str(test_backends(), "hubport,id=dup,hubid=1", &err));
    g_assert_cmpstr(err->message, ==, "Duplicate ID 'dup' for netdev");
    g_clear_error(&err);
    g_assert_null(qnic_netdev_add_str(test_backends(), "hubport,id=1bad,hubid=1", &err));
    g_assert_nonnull(strstr(err->message, "Parameter 'id' expects an identifier"));
    g_clear_error(&err);
    g_assert_null(qnic_netdev_add_str(test_backends(), "nosuchtype,id=x", &err));
    g_assert_cmpstr(err->message, ==, "Parameter 'type' does not accept value 'nosuchtype'");
    g_clear_error(&err);
    g_assert_null(qnic_netdev_add_str(test_backends(), "hubport,hubid=1", &err));
    g_assert_nonnull(err);
    g_clear_error(&err);
    g_assert_null(qnic_netdev_add_str(test_backends(), "socket,id=s", &err));
    g_assert_nonnull(strstr(err->message, "exactly one of"));
    g_clear_error(&err);
    qnic_netdev_del(nd);
    g_assert_null(qnic_netdev_find(test_backends(), "dup"));
}

static void test_nic_new_mac(void)
{
    GError *err = NULL;
    QnicNetdev *nd = qnic_netdev_add_str(test_backends(), "hubport,id=nicnd,hubid=3", &err);
    g_autoptr(QnicOpts) o1 = qnic_opts_parse("device", "e1000,netdev=nicnd", "driver", &err);
    g_autoptr(QnicOpts) o2 = qnic_opts_parse("device", "e1000", "driver", &err);
    g_autoptr(QnicOpts) o3 = qnic_opts_parse("device", "e1000,mac=02:00:00:00:00:09", "driver",
                                             &err);
    g_autoptr(QnicOpts) o4 = qnic_opts_parse("device", "e1000,netdev=none", "driver", &err);

    g_assert_no_error(err);
    QnicNic *n1 = qnic_nic_new(test_backends(), &test_nic_ops, o1, "e1000", 1, NULL, &err);
    g_assert_no_error(err);
    g_assert_true(n1->netdev == nd && nd->in_use);
    g_assert_true(n1->ncs[0]->peer == nd->ncs[0]);
    static const uint8_t m1[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
    g_assert_cmpmem(n1->mac, 6, m1, 6);
    QnicNic *n2 = qnic_nic_new(test_backends(), &test_nic_ops, o2, "e1000", 1, NULL, &err);
    g_assert_no_error(err);
    g_assert_cmpuint(n2->mac[5], ==, 0x57);
    g_assert_null(n2->netdev);
    QnicNic *n3 = qnic_nic_new(test_backends(), &test_nic_ops, o3, "e1000", 1, NULL, &err);
    g_assert_no_error(err);
    g_assert_cmpuint(n3->mac[0], ==, 0x02);
    g_assert_cmpuint(n3->mac[5], ==, 0x09);

    g_assert_null(qnic_nic_new(test_backends(), &test_nic_ops, o1, "e1000", 1, NULL, &err));
    g_assert_cmpstr(err->message, ==, "Property 'e1000.netdev' can't take value 'nicnd', it's in use");
    g_clear_error(&err);
    g_assert_null(qnic_nic_new(test_backends(), &test_nic_ops, o4, "e1000", 1, NULL, &err));
    g_assert_cmpstr(err->message, ==, "Property 'e1000.netdev' can't find value 'none'");
    g_clear_error(&err);
    g_assert_cmpint(qnic_nic_netdev_queues(test_backends(), o1), ==, 1);

    qnic_nic_free(n1);
    g_assert_false(nd->in_use);
    /* QEMU 7.2's rule: the lowest free default address, so n1's goes to
     * the next NIC, and one given in the range is held too. */
    QnicNic *n4 = qnic_nic_new(test_backends(), &test_nic_ops, o1, "e1000", 1, NULL, &err);
    g_assert_cmpmem(n4->mac, 6, m1, 6);
    g_autoptr(QnicOpts) o5 = qnic_opts_parse("device", "e1000,mac=52:54:00:12:34:58", "driver",
                                             &err);
    QnicNic *n5 = qnic_nic_new(test_backends(), &test_nic_ops, o5, "e1000", 1, NULL, &err);
    QnicNic *n6 = qnic_nic_new(test_backends(), &test_nic_ops, o2, "e1000", 1, NULL, &err);
    g_assert_no_error(err);
    g_assert_cmpuint(n6->mac[5], ==, 0x59);
    qnic_nic_free(n6);
    qnic_nic_free(n5);
    /* The netdev can go first: the NIC forgets it. */
    qnic_netdev_del(nd);
    g_assert_null(n4->netdev);
    g_assert_null(n4->ncs[0]->peer);
    g_assert_cmpint(qnic_net_send(n4->ncs[0], frame_a, sizeof(frame_a)), ==, sizeof(frame_a));
    qnic_nic_free(n4);
    qnic_nic_free(n2);
    qnic_nic_free(n3);
}

static void test_iov(void)
{
    uint8_t a[3] = { 1, 2, 3 }, b[4] = { 4, 5, 6, 7 }, out[10] = { 0 };
    struct iovec iov[2] = { { a, 3 }, { b, 4 } };

    g_assert_cmpuint(qnic_iov_size(iov, 2), ==, 7);
    g_assert_cmpuint(qnic_iov_to_buf(iov, 2, 2, out, 10), ==, 5);
    g_assert_cmpuint(out[0], ==, 3);
    g_assert_cmpuint(out[4], ==, 7);
    g_assert_cmpuint(qnic_iov_to_buf(iov, 2, 9, out, 10), ==, 0);
    uint8_t in[4] = { 9, 9, 9, 9 };
    g_assert_cmpuint(qnic_iov_from_buf(iov, 2, 1, in, 4), ==, 4);
    g_assert_cmpuint(a[0], ==, 1);
    g_assert_cmpuint(a[2], ==, 9);
    g_assert_cmpuint(b[1], ==, 9);
    g_assert_cmpuint(b[2], ==, 6);
    g_assert_cmpuint(qnic_iov_from_buf(iov, 2, 5, in, 4), ==, 2);

    /* iovec to iovec at offsets on both sides, bounded by the shorter */
    uint8_t e[3] = { 1, 2, 3 }, f[4] = { 4, 5, 6, 7 }, c[2] = { 0 }, d[5] = { 0 };
    struct iovec src[2] = { { e, 3 }, { f, 4 } }, dst[2] = { { c, 2 }, { d, 5 } };
    g_assert_cmpuint(qnic_iov_copy(dst, 2, 1, src, 2, 2, 100), ==, 5);   /* src has 5 left */
    g_assert_cmpuint(c[0], ==, 0);
    g_assert_cmpuint(c[1], ==, 3);
    g_assert_cmpuint(d[0], ==, 4);
    g_assert_cmpuint(d[3], ==, 7);
    g_assert_cmpuint(d[4], ==, 0);
    g_assert_cmpuint(qnic_iov_copy(dst, 2, 7, src, 2, 0, 4), ==, 0);    /* dst exhausted */
    g_assert_cmpuint(qnic_iov_copy(dst, 2, 0, src, 2, 0, 2), ==, 2);    /* len bounds */
    g_assert_cmpuint(c[1], ==, 2);
    g_assert_cmpuint(d[0], ==, 4);

    /* a view of the iovec minus its first 4 bytes: no copy, bounded by cap */
    struct iovec tail[2];
    g_assert_cmpint(qnic_iov_tail(tail, 2, iov, 2, 4), ==, 1);
    g_assert_true(tail[0].iov_base == (void *)(b + 1));
    g_assert_cmpuint(tail[0].iov_len, ==, 3);
    g_assert_cmpint(qnic_iov_tail(tail, 2, iov, 2, 0), ==, 2);
    g_assert_cmpint(qnic_iov_tail(tail, 1, iov, 2, 1), ==, 1);
    g_assert_cmpuint(tail[0].iov_len, ==, 2);
    g_assert_cmpint(qnic_iov_tail(tail, 2, iov, 2, 7), ==, 0);
}

static void test_queue_bound(void)
{
    TestNic *a = test_nic_new("a"), *b = test_nic_new("b");

    qnic_net_client_set_peer(a->nc, b->nc);
    b->busy = true;
    /* Fire-and-forget frames beyond the bound are dropped, not kept. */
    for (int i = 0; i < 10050; i++) {
        qnic_net_send(a->nc, frame_a, sizeof(frame_a));
    }
    b->busy = false;
    qnic_net_flush_queued(b->nc);
    g_assert_cmpuint(b->frames->len, ==, 10000);
    test_nic_free(a);
    test_nic_free(b);
}

/* Issue 21: a guest's TX chain of many descriptors over the same pages is
 * one huge frame. The core drops anything over QNIC_NET_MAX_FRAME before a
 * peer, a filter or a queue sees it, and says it was sent. */
static void test_oversize_frame(void)
{
    TestNic *a = test_nic_new("a"), *b = test_nic_new("b");
    static uint8_t page[4096];
    struct iovec iov[32];
    uint64_t drops = qnic_net_oversize_drops(test_backends());
    uint64_t errs = qnic_log_count(QNIC_LOG_GUEST_ERROR);

    for (int i = 0; i < 32; i++) {
        iov[i] = (struct iovec){ page, sizeof(page) };
    }
    qnic_net_client_set_peer(a->nc, b->nc);
    /* 17 pages = 69632 bytes: the largest frame that still goes. */
    g_assert_cmpint(qnic_net_send_iov(a->nc, iov, 17, NULL), ==, QNIC_NET_MAX_FRAME);
    g_assert_cmpuint(b->frames->len, ==, 1);
    /* One byte more, and a 128 KiB frame: dropped, reported sent. */
    iov[17].iov_len = 1;
    g_assert_cmpint(qnic_net_send_iov(a->nc, iov, 18, test_nic_sent_cb), ==, QNIC_NET_MAX_FRAME + 1);
    iov[17].iov_len = sizeof(page);
    g_assert_cmpint(qnic_net_send_iov(a->nc, iov, 32, NULL), ==, 32 * sizeof(page));
    g_assert_cmpuint(b->frames->len, ==, 1);
    g_assert_cmpuint(a->sent_cbs, ==, 0);
    g_assert_cmpuint(qnic_net_oversize_drops(test_backends()) - drops, ==, 2);
    g_assert_cmpuint(qnic_log_count(QNIC_LOG_GUEST_ERROR) - errs, ==, 2);
    /* A busy receiver does not make the core queue one either. */
    b->busy = true;
    qnic_net_send(a->nc, frame_a, sizeof(frame_a));
    g_assert_cmpint(qnic_net_send_iov(a->nc, iov, 32, NULL), ==, 32 * sizeof(page));
    g_assert_cmpuint(qnic_net_queue_len(b->nc->incoming), ==, 1);
    test_nic_free(a);
    test_nic_free(b);
}

/* Frames a hub copies to a busy port have no callback; 10000 of them at
 * the largest size would be 680 MiB. The queue holds at most
 * QNIC_NET_QUEUE_DEFAULT_MAX_BYTES of them and drops the rest. */
static void test_queue_byte_bound(void)
{
    static uint8_t big[QNIC_NET_MAX_FRAME];
    TestNic *n[3];
    QnicNetdev *p[3];
    unsigned sent = 2 * QNIC_NET_QUEUE_DEFAULT_MAX_BYTES / sizeof(big);

    for (int i = 0; i < 3; i++) {
        g_autofree char *s = g_strdup_printf("hubport,id=bb%d,hubid=17", i);
        GError *err = NULL;
        p[i] = qnic_netdev_add_str(test_backends(), s, &err);
        g_assert_no_error(err);
        n[i] = test_nic_new("n");
        test_nic_attach(n[i], p[i]);
    }
    n[1]->busy = true;
    for (unsigned i = 0; i < sent; i++) {
        g_assert_cmpint(qnic_net_send(n[0]->nc, big, sizeof(big)), ==, sizeof(big));
    }
    g_assert_cmpuint(n[2]->frames->len, ==, sent);
    g_assert_cmpuint(qnic_net_queue_bytes(n[1]->nc->incoming), <=, QNIC_NET_QUEUE_DEFAULT_MAX_BYTES);
    g_assert_cmpuint(qnic_net_queue_len(n[1]->nc->incoming), ==,
                     QNIC_NET_QUEUE_DEFAULT_MAX_BYTES / sizeof(big));
    g_assert_cmpuint(qnic_net_queue_dropped(n[1]->nc->incoming), ==,
                     sent - QNIC_NET_QUEUE_DEFAULT_MAX_BYTES / sizeof(big));
    /* What was kept arrives; the queue's byte count returns to zero. */
    n[1]->busy = false;
    qnic_net_flush_queued(n[1]->nc);
    g_assert_cmpuint(n[1]->frames->len, ==, QNIC_NET_QUEUE_DEFAULT_MAX_BYTES / sizeof(big));
    g_assert_cmpuint(qnic_net_queue_bytes(n[1]->nc->incoming), ==, 0);
    for (int i = 0; i < 3; i++) {
        test_nic_free(n[i]);
        qnic_netdev_del(p[i]);
    }
}

static char *run_tshark(const char *file, const char *field)
{
    g_autofree char *out = NULL;
    g_autofree char *errs = NULL;
    int status;
    const char *argv[] = { "tshark", "-r", file, "-T", "fields", "-e", field, NULL };

    if (!g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, &out, &errs,
                      &status, NULL) || !g_spawn_check_wait_status(status, NULL)) {
        g_test_message("tshark failed: %s", errs ? errs : "");
        return NULL;
    }
    return g_steal_pointer(&out);
}

static void test_filter_dump(void)
{
    g_autofree char *tshark = g_find_program_in_path("tshark");
    g_autofree char *dir = g_dir_make_tmp("qnic-dump-XXXXXX", NULL);
    g_autofree char *file = g_build_filename(dir, "d.pcap", NULL);
    g_autofree char *file2 = g_build_filename(dir, "e.pcap", NULL);
    GError *err = NULL;
    QnicNetdev *p0 = qnic_netdev_add_str(test_backends(), "hubport,id=dp0,hubid=11", &err);
    QnicNetdev *p1 = qnic_netdev_add_str(test_backends(), "hubport,id=dp1,hubid=11", &err);
    TestNic *a = test_nic_new("a"), *b = test_nic_new("b");
    uint8_t big[1514];

    g_assert_no_error(err);
    test_nic_attach(a, p0);
    test_nic_attach(b, p1);
    g_autofree char *f1 = g_strdup_printf("filter-dump,id=fd0,netdev=dp0,file=%s", file);
    g_autofree char *f2 = g_strdup_printf("filter-dump,id=fd1,netdev=dp1,file=%s,maxlen=64,"
                                          "queue=tx", file2);
    g_assert_true(qnic_filter_add_str(test_backends(), f1, &err));
    g_assert_no_error(err);
    g_assert_true(qnic_filter_add_str(test_backends(), f2, &err));
    g_assert_no_error(err);
    g_assert_false(qnic_filter_add_str(test_backends(), "filter-dump,id=fd2,netdev=nope,file=/dev/null", &err));
    g_assert_nonnull(err);
    g_clear_error(&err);

    memset(big, 0xab, sizeof(big));
    qnic_net_send(a->nc, frame_a, sizeof(frame_a));   /* rx at dp0, tx at dp1 */
    qnic_net_send(a->nc, big, sizeof(big));
    qnic_net_send(b->nc, frame_b, sizeof(frame_b));   /* tx at dp0, rx at dp1 */
    g_assert_cmpuint(b->frames->len, ==, 2);
    g_assert_cmpuint(a->frames->len, ==, 1);
    qnic_filter_del_all(test_backends());
    qnic_net_send(a->nc, frame_a, sizeof(frame_a));   /* not dumped any more */

    if (!tshark) {
        g_test_skip("tshark is not installed: the pcap files are not read back");
    } else {
        g_autofree char *lens = run_tshark(file, "frame.len");
        g_assert_nonnull(lens);
        g_assert_cmpstr(lens, ==, "60\n1514\n64\n");
        g_autofree char *caps = run_tshark(file2, "frame.cap_len");
        g_autofree char *lens2 = run_tshark(file2, "frame.len");
        g_assert_cmpstr(lens2, ==, "60\n1514\n");
        g_assert_cmpstr(caps, ==, "60\n64\n");
    }
    test_nic_free(a);
    test_nic_free(b);
    qnic_netdev_del(p0);
    qnic_netdev_del(p1);
    g_unlink(file);
    g_unlink(file2);
    g_rmdir(dir);
}

static void test_nic_option(void)
{
    QnicMachineConfig cfg = { .ram_size = 16 * 1024 * 1024 };
    GError *err = NULL;
    cfg.backends = test_backends();
    QnicMachine *m = qnic_machine_new(&cfg, &err);
    guint ndev;

    g_assert_no_error(err);
    ndev = m->devices->len;
    g_assert_true(qnic_cmdline_nic_add(m, "none", &err));
    g_assert_cmpuint(m->devices->len, ==, ndev);
    g_assert_true(qnic_cmdline_nic_add(m, "hubport,hubid=21,model=e1000,mac=02:00:00:00:00:01", &err));
    g_assert_no_error(err);
    g_assert_cmpuint(m->devices->len, ==, ndev + 1);
    QnicNetdev *nd = qnic_netdev_find(test_backends(), "__org.qemu.nic0");
    g_assert_nonnull(nd);
    g_assert_cmpstr(nd->cls->type, ==, "hubport");
    g_assert_true(nd->in_use);
    g_assert_nonnull(nd->ncs[0]->peer);
    g_assert_false(qnic_cmdline_nic_add(m, "hubport,hubid=21,model=nosuch", &err));
    g_assert_cmpstr(err->message, ==, "Unsupported NIC model: nosuch");
    g_clear_error(&err);

    /* Legacy -net: a NIC and a backend meet on hub 0. */
    g_assert_true(qnic_cmdline_net_add("nic,model=rtl8139,macaddr=02:00:00:00:00:02", &err));
    g_assert_true(qnic_cmdline_net_add("user,name=leg", &err));
    g_assert_no_error(err);
    g_assert_true(qnic_cmdline_net_realize(m, &err));
    g_assert_no_error(err);
    g_assert_cmpuint(m->devices->len, ==, ndev + 2);
    g_assert_cmpint(qnic_net_hub_port_count(test_backends(), 0), ==, 2);
    QnicNetdev *user = qnic_netdev_find(test_backends(), "leg");
    g_assert_nonnull(user);
    g_assert_true(user->in_use);
    g_assert_nonnull(user->ncs[0]->peer);
    g_assert_cmpint(user->ncs[0]->peer->ops->kind, ==, QNIC_NET_CLIENT_HUBPORT);
    QnicNetdev *port = qnic_netdev_find(test_backends(), "hub0port0");
    g_assert_nonnull(port);
    g_assert_true(port->in_use);
    g_assert_cmpint(port->ncs[0]->peer->ops->kind, ==, QNIC_NET_CLIENT_NIC);

    qnic_machine_free(m);
    g_assert_false(qnic_netdev_find(test_backends(), "__org.qemu.nic0")->in_use);
    qnic_netdev_del_all(test_backends());
    g_assert_cmpint(qnic_net_hub_port_count(test_backends(), 0), ==, 0);
}

/* help asked of the library: it prints (to /dev/null here, stdout carries
 * the TAP stream) and returns QNIC_ERROR_HELP instead of exiting. */
static void test_help_returns(void)
{
    QnicMachineConfig cfg = { .ram_size = 16 * 1024 * 1024 };
    cfg.backends = test_backends();
    QnicMachine *m = qnic_machine_new(&cfg, NULL);
    int saved = dup(STDOUT_FILENO), null = open("/dev/null", O_WRONLY);
    GError *err = NULL;
    bool ok[5];

    fflush(stdout);
    dup2(null, STDOUT_FILENO);
    ok[0] = qnic_netdev_add_str(test_backends(), "help", &err) != NULL;
    g_assert_true(qnic_error_is_help(err));
    g_clear_error(&err);
    ok[1] = qnic_netdev_add_str(test_backends(), "hubport,id=h,help", &err) != NULL;
    g_assert_true(qnic_error_is_help(err));
    g_clear_error(&err);
    ok[2] = qnic_cmdline_nic_add(m, "user,model=help", &err);
    g_assert_true(qnic_error_is_help(err));
    g_clear_error(&err);
    ok[3] = qnic_cmdline_net_add("nic,model=?", &err) && qnic_cmdline_net_realize(m, &err);
    g_assert_true(qnic_error_is_help(err));
    g_clear_error(&err);
    ok[4] = qnic_schema_parse(QNIC_SCHEMA_DEVICE, "nosuch,help", NULL, &err) != NULL;
    g_assert_false(qnic_error_is_help(err));
    g_assert_cmpstr(err->message, ==, "'nosuch' is not a valid device model name");
    g_clear_error(&err);
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    close(null);
    for (size_t i = 0; i < G_N_ELEMENTS(ok); i++) {
        g_assert_false(ok[i]);
    }
    g_assert_null(qnic_netdev_find(test_backends(), "h"));
    qnic_machine_free(m);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    /* MAC assignment counts per process: this test runs first. */
    g_test_add_func("/net/nic-new-mac", test_nic_new_mac);
    g_test_add_func("/net/peer-delivery", test_peer_delivery);
    g_test_add_func("/net/flow-control", test_flow_control);
    g_test_add_func("/net/can-receive", test_can_receive);
    g_test_add_func("/net/vm-stopped", test_vm_stopped);
    g_test_add_func("/net/purge", test_purge);
    g_test_add_func("/net/queue-bound", test_queue_bound);
    g_test_add_func("/net/queue-byte-bound", test_queue_byte_bound);
    g_test_add_func("/net/oversize-frame", test_oversize_frame);
    g_test_add_func("/net/link-state", test_link_state);
    g_test_add_func("/net/hub-forwarding", test_hub_forwarding);
    g_test_add_func("/net/hubport-plug", test_hubport_plug);
    g_test_add_func("/net/netdev-errors", test_netdev_errors);
    g_test_add_func("/net/iov", test_iov);
    g_test_add_func("/net/filter-dump", test_filter_dump);
    g_test_add_func("/net/nic-option", test_nic_option);
    g_test_add_func("/net/help-returns", test_help_returns);
    return g_test_run();
}
