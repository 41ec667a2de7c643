/*
 * Fuzz target for vhost-vdpa, both sides of the kernel boundary. The first
 * input byte picks the side:
 *
 * - even: the backend (virtio/vhost-vdpa.c) against a hostile device. The
 *   simulator answers every request, then the input may replace the
 *   answer (the bytes the device writes back, or the result with an
 *   errno). `-netdev vhost-vdpa` is created on it; if it comes up, the
 *   harness plays the generic vhost layer (features, memory, a ring in
 *   guest RAM, start, control commands, ring base, suspend, reset) and the
 *   netdev goes. Nothing may crash, leak or loop; refusals are errors.
 * - odd: the simulator (virtio/vdpa-sim.c) fed a hostile sequence of
 *   ioctls and IOTLB messages (types, ranges, permissions, address spaces,
 *   batches, status and feature order, rings anywhere, eventfds or none),
 *   with main-loop turns between them so rings that start also run. Every
 *   IOTLB map points into the harness's own buffer, as a process's maps
 *   point into its own memory; everything else is the input's.
 */
#include "qnic/vhost-vdpa.h"
#include "qnic/vdpa-sim.h"
#include "qnic/net.h"
#include "qnic/machine.h"
#include "qnic/mainloop.h"
#include "../lib/test-backends.h"
#include "fuzz.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <linux/vhost.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>

#define BUF_SIZE (1u << 20)

static FuzzIn *cur_in;
static QnicVdpaSim *cur_sim;

/* ---- the backend against mutated answers ---- */

static int lie_ioctl(void *dev, unsigned long req, void *arg)
{
    int r = qnic_vdpa_sim_ioctl(dev, req, arg);
    uint8_t how = fuzz_u8(cur_in);
    size_t n = _IOC_SIZE(req);

    if ((how & 3) == 1 && r == 0 && req == VHOST_VDPA_GET_CONFIG) {
        struct vhost_vdpa_config *c = arg;
        fuzz_bytes(cur_in, c->buf, c->len < 64 ? c->len : 64);
    } else if ((how & 3) == 1 && r == 0 && arg && (_IOC_DIR(req) & _IOC_READ)) {
        /* the device writes back what the input says (at most the struct) */
        fuzz_bytes(cur_in, arg, n < 64 ? n : 64);
    } else if ((how & 3) == 2) {
        r = -(int)(1 + fuzz_u8(cur_in) % 133);
    }
    return r;
}

static ssize_t lie_write(void *dev, const void *buf, size_t len)
{
    ssize_t r = qnic_vdpa_sim_write(dev, buf, len);

    return (fuzz_u8(cur_in) & 7) == 7 ? -EFAULT : r;
}

static const QnicVdpaOps lie_ops = { .ioctl = lie_ioctl, .write = lie_write };

static void *lie_open(void *ctx, const char *path, int fd, const QnicVdpaOps **ops,
                      GError **errp)
{
    *ops = &lie_ops;
    return cur_sim;
}

static void lie_close(void *ctx, void *dev)
{
    qnic_vdpa_sim_release(dev);
}

static const QnicVdpaOpener lie_opener = { .open = lie_open, .close = lie_close };

static void turn_loop(unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        qnic_main_loop_iterate(false);
    }
}

/* What the generic layer and virtio-net would ask of a started backend. */
static void drive_backend(QnicVhostDev *hd, QnicMachine *m, FuzzIn *in)
{
    const QnicVhostOps *o = hd->ops;
    uint8_t *ring = qnic_machine_ram_ptr(m, 0x10000, 0x3000);
    uint8_t mac[6] = { 0x52, 0x54, 0, 0x12, 0x34, fuzz_u8(in) };
    uint8_t on = 0;
    unsigned base = 0;
    int kick = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    int call = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

    if (o->set_features(hd, fuzz_u64(in), NULL) && o->set_mem_table(hd, m, NULL) &&
        o->set_vring_num(hd, 0, 1u << (fuzz_u8(in) % 10), NULL) &&
        o->set_vring_base(hd, 0, fuzz_u16(in), NULL) &&
        o->set_vring_addr(hd, 0, (uintptr_t)ring, (uintptr_t)ring + 0x1000,
                          (uintptr_t)ring + 0x2000, NULL) &&
        o->set_vring_kick(hd, 0, kick, NULL) && o->set_vring_call(hd, 0, call, NULL) &&
        o->set_vring_enable(hd, 0, true, NULL) && o->dev_start(hd, NULL)) {
        o->send_ctrl(hd, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, mac, 6, NULL);
        o->send_ctrl(hd, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, &on, 1, NULL);
        turn_loop(4);
        o->get_vring_base(hd, 0, &base, NULL);
    }
    o->dev_suspend(hd);
    o->dev_reset(hd);
    close(kick);
    close(call);
}

static void fuzz_backend(FuzzIn *in)
{
    QnicMachineConfig mc = { .ram_size = 2u << 20, .backends = test_backends() };
    QnicVdpaSimConfig sc = { .be = test_backends(), .device_opts = "netdev=fv0,packed=on" };
    QnicNetdev *peer = qnic_netdev_add_str(test_backends(), "hubport,id=fv0,hubid=3", NULL);
    QnicMachine *m = qnic_machine_new(&mc, NULL);
    QnicNetdev *nd;

    cur_sim = qnic_vdpa_sim_new(&sc, NULL);
    if (!peer || !m || !cur_sim) {
        abort();
    }
    qnic_vhost_vdpa_set_opener(&lie_opener);
    nd = qnic_netdev_add_str(test_backends(), "vhost-vdpa,id=fvd,vhostdev=/dev/fuzz", NULL);
    if (nd) {
        drive_backend(qnic_vhost_net_get(nd->ncs[0]), m, in);
        qnic_netdev_del(nd);
    }
    qnic_vhost_vdpa_set_opener(NULL);
    qnic_vdpa_sim_free(cur_sim);
    cur_sim = NULL;
    qnic_machine_free(m);
    qnic_netdev_del(peer);
}

/* ---- the simulator against a hostile sequence ---- */

static const unsigned long state_reqs[] = {
    VHOST_SET_VRING_NUM, VHOST_SET_VRING_BASE, VHOST_GET_VRING_BASE,
    VHOST_VDPA_SET_VRING_ENABLE,
};

static void sim_iotlb(QnicVdpaSim *s, uint8_t *buf, FuzzIn *in)
{
    struct vhost_msg_v2 m = { .type = fuzz_u8(in) % 4 ? VHOST_IOTLB_MSG_V2 : fuzz_u32(in) };
    uint32_t off = fuzz_u32(in) % BUF_SIZE;

    m.asid = fuzz_u8(in) % 8 ? 0 : fuzz_u32(in);
    m.iotlb.type = fuzz_u8(in) % 8;
    m.iotlb.iova = fuzz_u8(in) & 1 ? fuzz_u64(in) : (uint64_t)(fuzz_u16(in) & 0x3f) << 14;
    /* a map stays inside the harness's buffer; the IOVA side is free */
    m.iotlb.size = fuzz_u8(in) & 1 ? fuzz_u64(in) : fuzz_u32(in) % (BUF_SIZE - off + 1);
    m.iotlb.uaddr = (uintptr_t)(buf + off);
    if (m.iotlb.type == VHOST_IOTLB_UPDATE && m.iotlb.size > BUF_SIZE - off) {
        m.iotlb.size = BUF_SIZE - off;
    }
    m.iotlb.perm = fuzz_u8(in);
    qnic_vdpa_sim_write(s, &m, fuzz_u8(in) % 16 ? sizeof(m) : fuzz_u8(in) % sizeof(m));
}

static void sim_ring(QnicVdpaSim *s, int *fds, FuzzIn *in)
{
    uint8_t op = fuzz_u8(in) % 7;
    unsigned idx = fuzz_u8(in) % 8;

    if (op < 4) {
        struct vhost_vring_state st = { .index = idx, .num = fuzz_u32(in) };
        qnic_vdpa_sim_ioctl(s, state_reqs[op], &st);
    } else if (op == 4) {
        struct vhost_vring_addr a = { .index = idx, .flags = fuzz_u8(in) % 4 ? 0 : 1 };
        a.desc_user_addr = (uint64_t)(fuzz_u16(in) & 0x3f) << 14;
        a.avail_user_addr = a.desc_user_addr + (fuzz_u16(in) & 0x3ffe);
        a.used_user_addr = a.desc_user_addr + (fuzz_u16(in) & 0x3ffc);
        qnic_vdpa_sim_ioctl(s, VHOST_SET_VRING_ADDR, &a);
    } else {
        struct vhost_vring_file f = { .index = idx, .fd = fds[fuzz_u8(in) % 3] };
        qnic_vdpa_sim_ioctl(s, op == 5 ? VHOST_SET_VRING_KICK : VHOST_SET_VRING_CALL, &f);
    }
}

static void sim_step(QnicVdpaSim *s, uint8_t *buf, int *fds, FuzzIn *in)
{
    uint64_t v = 0;

    switch (fuzz_u8(in) % 10) {
    case 0: qnic_vdpa_sim_ioctl(s, VHOST_SET_OWNER, NULL); break;
    case 1: v = fuzz_u64(in); qnic_vdpa_sim_ioctl(s, VHOST_SET_BACKEND_FEATURES, &v); break;
    case 2: v = fuzz_u64(in); qnic_vdpa_sim_ioctl(s, VHOST_SET_FEATURES, &v); break;
    case 3: v = fuzz_u8(in); qnic_vdpa_sim_ioctl(s, VHOST_VDPA_SET_STATUS, &v); break;
    case 4: qnic_vdpa_sim_ioctl(s, VHOST_VDPA_SUSPEND, NULL); break;
    case 5: {
        struct { struct vhost_vdpa_config c; uint8_t b[64]; } c;
        c.c.off = fuzz_u8(in);
        c.c.len = fuzz_u8(in) % 65;
        fuzz_bytes(in, c.b, sizeof(c.b));
        qnic_vdpa_sim_ioctl(s, fuzz_u8(in) & 1 ? VHOST_VDPA_SET_CONFIG : VHOST_VDPA_GET_CONFIG,
                            &c);
        break;
    }
    case 6:
    case 7: sim_iotlb(s, buf, in); break;
    case 8: sim_ring(s, fds, in); break;
    default:
        /* the driver side: kicks and guest bytes in the mapped memory */
        fuzz_bytes(in, buf + (fuzz_u32(in) % (BUF_SIZE - 64)), 64);
        if (eventfd_write(fds[1], 1) < 0) {
            abort();
        }
        turn_loop(2);
    }
}

static void fuzz_sim(FuzzIn *in)
{
    QnicVdpaSimConfig sc = { .be = test_backends(), .device_opts = "netdev=fs0,packed=on" };
    QnicNetdev *peer = qnic_netdev_add_str(test_backends(), "hubport,id=fs0,hubid=4", NULL);
    uint8_t *buf = NULL;
    int fds[3] = { -1, eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), eventfd(0, EFD_NONBLOCK) };
    QnicVdpaSim *s;

    sc.no_ctrl_vq = fuzz_u8(in) & 1;
    s = qnic_vdpa_sim_new(&sc, NULL);
    if (!peer || !s || posix_memalign((void **)&buf, 4096, BUF_SIZE) || fds[1] < 0) {
        abort();
    }
    memset(buf, 0, BUF_SIZE);
    for (unsigned n = 0; in->len && n < 256; n++) {
        sim_step(s, buf, fds, in);
    }
    turn_loop(2);
    qnic_vdpa_sim_free(s);      /* stops the rings before their memory goes */
    free(buf);
    close(fds[1]);
    close(fds[2]);
    qnic_netdev_del(peer);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    FuzzIn in = { data, size };

    if (!ready) {
        qnic_bql_lock();
        ready = true;
    }
    cur_in = &in;
    if (fuzz_u8(&in) & 1) {
        fuzz_sim(&in);
    } else {
        fuzz_backend(&in);
    }
    cur_in = NULL;
    return 0;
}
