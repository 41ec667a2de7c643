/*
 * vhost-vdpa through qnic-vmm, driven over the qtest protocol: a
 * virtio-net-pci on `-netdev vhost-vdpa,vhostdev=x-vdpa-sim:sim0`, the
 * vDPA device simulator that `-object x-vdpa-sim` puts behind that path,
 * which moves the frames to a UDP socket netdev this test holds the other
 * end of. The qtest virtio driver brings the device up (split and packed), frames go both ways through the device's rings
 * (their addresses reach the simulator as IOVAs through the IOTLB), the
 * control queue's MAC command reaches the simulated device, and a reset
 * and second bring-up work (the option errors are in
 * tests/functional/test-cmdline-errors.py). QEMU 7.2 has no vDPA simulator and this host
 * no /dev/vhost-vdpa: against QEMU the tests skip, saying so.
 */
#include "libqtest.h"
#include "virtio-driver.h"
#include "qtest-net.h"

#include <linux/virtio_config.h>
#include <linux/virtio_net.h>
#include <string.h>

#define F(b) (1ull << (b))
#define DEVFN (4 << 3)
#define FRAME_LEN 128
#define HDR_LEN 12                      /* VERSION_1 header */
#define RX_BUFS 8

typedef struct Case {
    bool packed;
    unsigned pairs;
} Case;

/* One pair: the simulator's pairs are its netdev's queues, and the UDP
 * peer is one queue (two pairs, on a multiqueue tap, are in
 * tests/unit/test-vhost-vdpa.c). */
static const Case cases[] = { { false, 1 }, { true, 1 } };

typedef struct Fx {
    QTestState *qts;
    QtestUdpPeer peer;
    VDev d;
    uint64_t rx[RX_BUFS];
} Fx;

static bool start(Fx *f, const Case *c)
{
    g_autofree char *nd = NULL;

    if (qtest_target_is_qemu()) {
        g_test_skip("QEMU 7.2 has no vDPA device simulator and this host no /dev/vhost-vdpa");
        return false;
    }
    nd = qtest_udp_peer_open(&f->peer);
    f->qts = qtest_initf(QTEST_FLAG_RUNNING,
                         "%s -object x-vdpa-sim,id=sim0,netdev=n0 "
                         "-netdev vhost-vdpa,id=v0,vhostdev=x-vdpa-sim:sim0,queues=%u "
                         "-device virtio-net-pci,netdev=v0,addr=4,disable-legacy=on%s%s",
                         nd, c->pairs, c->packed ? ",packed=on" : "",
                         c->pairs > 1 ? ",mq=on" : "");
    return true;
}

static void bring_up(Fx *f, const Case *c)
{
    uint64_t want = F(VIRTIO_F_VERSION_1) | F(VIRTIO_NET_F_MAC) | F(VIRTIO_NET_F_CTRL_VQ) |
                    F(VIRTIO_NET_F_CTRL_MAC_ADDR) | (c->packed ? F(VIRTIO_F_RING_PACKED) : 0) |
                    (c->pairs > 1 ? F(VIRTIO_NET_F_MQ) : 0);

    vd_pci_init(&f->d, f->qts, DEVFN, VD_PCI_MODERN);
    g_assert_true(vd_negotiate(&f->d, want));
    g_assert_cmphex(f->d.features & want, ==, want);
    /* rx/tx of each pair, then the control queue at 2 * pairs */
    vd_setup_queues(&f->d, 2 * c->pairs + 1, 0);
    vd_driver_ok(&f->d);
    g_assert_cmphex(vd_get_status(&f->d) & VIRTIO_CONFIG_S_NEEDS_RESET, ==, 0);
    for (unsigned i = 0; i < RX_BUFS; i++) {
        VdBuf b = { qtest_guest_alloc(f->qts, 2048, 64), 2048, true };
        f->rx[i] = b.addr;
        vd_add(&f->d, 0, &b, 1, false);
    }
    vd_kick(&f->d, 0);
}

static void tx_frame_on(Fx *f, unsigned txq, uint8_t tag)
{
    uint8_t frame[FRAME_LEN], got[2048];
    uint64_t hdr = qtest_guest_alloc(f->qts, 16, 16), data = qtest_guest_alloc(f->qts, 2048, 64);
    VdBuf b[2] = { { hdr, HDR_LEN, false }, { data, FRAME_LEN, false } };
    uint16_t id;
    uint32_t len;
    ssize_t n;

    qtest_net_make_frame(frame, FRAME_LEN, tag);
    qtest_memset(f->qts, hdr, 0, 16);
    qtest_memwrite(f->qts, data, frame, FRAME_LEN);
    vd_add(&f->d, txq, b, 2, false);
    vd_kick(&f->d, txq);
    g_assert_true(vd_get_used(&f->d, txq, &id, &len, 5000));
    n = qtest_udp_peer_recv(&f->peer, got, sizeof(got), 5000);
    g_assert_cmpint(n, ==, FRAME_LEN);
    g_assert_cmpmem(got, n, frame, FRAME_LEN);
}

static void tx_frame(Fx *f, uint8_t tag)
{
    tx_frame_on(f, 1, tag);
}

static void rx_frame(Fx *f, uint8_t tag)
{
    uint8_t frame[FRAME_LEN], got[FRAME_LEN + HDR_LEN];
    uint16_t id;
    uint32_t len;

    qtest_net_make_frame(frame, FRAME_LEN, tag);
    qtest_udp_peer_send(&f->peer, frame, FRAME_LEN);
    g_assert_true(vd_get_used(&f->d, 0, &id, &len, 5000));
    g_assert_cmpuint(id, <, RX_BUFS);
    g_assert_cmpuint(len, ==, FRAME_LEN + HDR_LEN);
    qtest_memread(f->qts, f->rx[id], got, len);
    g_assert_cmpmem(got + HDR_LEN, FRAME_LEN, frame, FRAME_LEN);
}

/* VIRTIO_NET_CTRL_MAC_ADDR_SET through the guest's control queue: qnic
 * acks it and forwards it through its shadow control queue. */
/* One control command: class, command, data; returns the ack. */
static uint8_t ctrl_cmd(Fx *f, unsigned cvq, uint8_t cls, uint8_t cmd_no, const void *d,
                        size_t dlen)
{
    uint64_t cmd = qtest_guest_alloc(f->qts, 8, 8), data = qtest_guest_alloc(f->qts, 8, 8),
             ack = qtest_guest_alloc(f->qts, 1, 1);
    uint8_t hdr[2] = { cls, cmd_no };
    VdBuf b[3] = { { cmd, 2, false }, { data, dlen, false }, { ack, 1, true } };
    uint16_t id;
    uint32_t len;

    qtest_memwrite(f->qts, cmd, hdr, 2);
    qtest_memwrite(f->qts, data, d, dlen);
    qtest_writeb(f->qts, ack, 0xff);
    vd_add(&f->d, cvq, b, 3, false);
    vd_kick(&f->d, cvq);
    g_assert_true(vd_get_used(&f->d, cvq, &id, &len, 5000));
    return qtest_readb(f->qts, ack);
}

static void set_mac(Fx *f, unsigned cvq, const uint8_t mac[6])
{
    g_assert_cmpuint(ctrl_cmd(f, cvq, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, mac, 6),
                     ==, VIRTIO_NET_OK);
    for (unsigned i = 0; i < 6; i++) {
        g_assert_cmphex(vd_config_readb(&f->d, i), ==, mac[i]);
    }
}

static void test_traffic(gconstpointer data)
{
    const Case *c = data;
    static const uint8_t mac[6] = { 0x52, 0x54, 0x00, 0xab, 0xcd, 0xef };
    Fx f = { 0 };

    if (!start(&f, c)) {
        return;
    }
    bring_up(&f, c);
    for (uint8_t i = 0; i < 4; i++) {
        tx_frame(&f, i);
        rx_frame(&f, 0x10 + i);
    }
    set_mac(&f, 2 * c->pairs, mac);
    tx_frame(&f, 0x20);
    if (c->pairs > 1) {
        /* both pairs in service: the second TX queue reaches the peer too */
        uint16_t pairs = 2;
        g_assert_cmpuint(ctrl_cmd(&f, 2 * c->pairs, VIRTIO_NET_CTRL_MQ,
                                  VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, &pairs, 2), ==, VIRTIO_NET_OK);
        tx_frame_on(&f, 3, 0x21);
    }
    /* reset (the device takes its rings back) and a second bring-up */
    vd_set_status(&f.d, 0);
    g_assert_cmpuint(vd_get_status(&f.d), ==, 0);
    bring_up(&f, c);
    tx_frame(&f, 0x30);
    rx_frame(&f, 0x31);
    qtest_quit(f.qts);
    close(f.peer.fd);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    for (unsigned i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *name = g_strdup_printf("/vhost-vdpa/traffic/%s-%upair",
                                                cases[i].packed ? "packed" : "split",
                                                cases[i].pairs);
        g_test_add_data_func(name, &cases[i], test_traffic);
    }
    return g_test_run();
}
