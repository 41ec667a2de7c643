/*
 * `-netdev vhost-vdpa` end to end against the vDPA device simulator
 * (qnic/vdpa-sim.h), since this host has no /dev/vhost-vdpa-N: a modern
 * virtio-net-pci driver played by the test (split and packed rings, one
 * and two queue pairs, with the control queue) brings qnic's device up on
 * the netdev, whose device is the simulator behind a recording wrapper of
 * the ioctl boundary. Frames go both ways between the driver's rings and a
 * socket peer (a datagram socketpair on the simulator's `-netdev socket`;
 * a tap with two queues in a network namespace of its own for two pairs),
 * the guest's MAC and RX-mode commands reach the simulated virtio-net
 * (its query-rx-filter), and a reset with re-init and a memory remap keep
 * traffic flowing. The exact ioctl and IOTLB sequence of bring-up, start,
 * the control queue and teardown is asserted (docs/backends.md lists it).
 * The hostile cases hit the simulator directly: each gets the kernel's
 * errno and nothing breaks. A missing device file fails with QEMU's
 * message.
 */
#include "test-tap-helpers.h"
#include "vring-host.h"
#include "qnic/machine.h"
#include "qnic/pci.h"
#include "qnic/virtio.h"
#include "qnic/vhost-vdpa.h"
#include "qnic/vdpa-sim.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stddef.h>
#include <net/if.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <linux/if_ether.h>
#include <linux/vhost.h>
#include <linux/virtio_pci.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>
#include <linux/pci_regs.h>

#define BAR4_BASE 0xe0000000ull
#define RING_GPA 0x100000ull            /* queue q at RING_GPA + q * 0x10000 */
#define TXBUF_GPA 0x200000ull
#define RXBUF_GPA 0x300000ull
#define CTRLBUF_GPA 0x400000ull
#define RAM_SIZE (32u << 20)
#define HDR 12u                         /* virtio_net_hdr_mrg_rxbuf (VERSION_1) */
#define SIM_PATH "/dev/vhost-vdpa-sim"

static const uint8_t guest_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
static const uint8_t new_mac[6] = { 0x52, 0x54, 0x00, 0xab, 0xcd, 0xef };
static const uint8_t peer_mac[6] = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x77 };

/* ---- the recording wrapper of the kernel boundary ---- */

static GPtrArray *rec;                  /* char *: one line per request */
static QnicVdpaSim *cur_sim;
/* A hostile device: this request's answer is replaced by mutate_val. */
static unsigned long mutate_req;
static uint64_t mutate_val;

static void rec_log(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
static void rec_log(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    g_ptr_array_add(rec, g_strdup_vprintf(fmt, ap));
    va_end(ap);
}

static const char *req_name(unsigned long req)
{
    static const struct { unsigned long req; const char *name; } names[] = {
        { VHOST_SET_OWNER, "SET_OWNER" }, { VHOST_VDPA_GET_DEVICE_ID, "GET_DEVICE_ID" },
        { VHOST_GET_BACKEND_FEATURES, "GET_BACKEND_FEATURES" },
        { VHOST_SET_BACKEND_FEATURES, "SET_BACKEND_FEATURES" },
        { VHOST_GET_FEATURES, "GET_FEATURES" }, { VHOST_SET_FEATURES, "SET_FEATURES" },
        { VHOST_VDPA_GET_CONFIG, "GET_CONFIG" }, { VHOST_VDPA_GET_VQS_COUNT, "GET_VQS_COUNT" },
        { VHOST_VDPA_GET_IOVA_RANGE, "GET_IOVA_RANGE" },
        { VHOST_VDPA_GET_VRING_NUM, "GET_VRING_NUM" },
        { VHOST_VDPA_SET_CONFIG_CALL, "SET_CONFIG_CALL" },
        { VHOST_VDPA_SET_STATUS, "SET_STATUS" }, { VHOST_VDPA_GET_STATUS, "GET_STATUS" },
        { VHOST_SET_VRING_NUM, "SET_VRING_NUM" }, { VHOST_SET_VRING_BASE, "SET_VRING_BASE" },
        { VHOST_GET_VRING_BASE, "GET_VRING_BASE" }, { VHOST_SET_VRING_ADDR, "SET_VRING_ADDR" },
        { VHOST_SET_VRING_KICK, "SET_VRING_KICK" }, { VHOST_SET_VRING_CALL, "SET_VRING_CALL" },
        { VHOST_VDPA_SET_VRING_ENABLE, "SET_VRING_ENABLE" }, { VHOST_VDPA_SUSPEND, "SUSPEND" },
    };

    for (unsigned i = 0; i < G_N_ELEMENTS(names); i++) {
        if (names[i].req == req) {
            return names[i].name;
        }
    }
    return "?";
}

static int rec_ioctl(void *dev, unsigned long req, void *arg)
{
    const char *n = req_name(req);
    int r = qnic_vdpa_sim_ioctl(dev, req, arg);

    if (req == mutate_req && r == 0) {
        memcpy(arg, &mutate_val, _IOC_SIZE(req) < 8 ? _IOC_SIZE(req) : 8);
    }

    switch (req) {
    case VHOST_SET_BACKEND_FEATURES:
    case VHOST_SET_FEATURES:
        rec_log("%s 0x%" PRIx64, n, *(uint64_t *)arg);
        break;
    case VHOST_VDPA_SET_STATUS:
        rec_log("%s 0x%x", n, *(uint8_t *)arg);
        break;
    case VHOST_SET_VRING_NUM:
    case VHOST_SET_VRING_BASE:
    case VHOST_VDPA_SET_VRING_ENABLE:
    case VHOST_GET_VRING_BASE:
        rec_log("%s %u %u", n, ((struct vhost_vring_state *)arg)->index,
                req == VHOST_GET_VRING_BASE ? 0 : ((struct vhost_vring_state *)arg)->num);
        break;
    case VHOST_SET_VRING_ADDR: {
        struct vhost_vring_addr *a = arg;
        rec_log("%s %u 0x%llx 0x%llx 0x%llx", n, a->index, (unsigned long long)a->desc_user_addr,
                (unsigned long long)a->avail_user_addr, (unsigned long long)a->used_user_addr);
        break;
    }
    case VHOST_SET_VRING_KICK:
    case VHOST_SET_VRING_CALL:
        rec_log("%s %u", n, ((struct vhost_vring_file *)arg)->index);
        break;
    default:
        rec_log("%s", n);
    }
    if (r < 0) {
        rec_log("  -> %s", g_strerror(-r));
    }
    return r;
}

static ssize_t rec_write(void *dev, const void *buf, size_t len)
{
    static const char *const t[] = { "?", "MISS", "UPDATE", "INVALIDATE", "ACCESS_FAIL",
                                     "BATCH_BEGIN", "BATCH_END" };
    const struct vhost_msg_v2 *m = buf;
    ssize_t r = qnic_vdpa_sim_write(dev, buf, len);

    if (m->iotlb.type == VHOST_IOTLB_UPDATE || m->iotlb.type == VHOST_IOTLB_INVALIDATE) {
        rec_log("IOTLB %s 0x%llx+0x%llx", t[m->iotlb.type], (unsigned long long)m->iotlb.iova,
                (unsigned long long)m->iotlb.size);
    } else {
        rec_log("IOTLB %s", m->iotlb.type <= 6 ? t[m->iotlb.type] : "?");
    }
    return r;
}

static const QnicVdpaOps rec_ops = { .ioctl = rec_ioctl, .write = rec_write };

static void *sim_open(void *ctx, const char *path, int fd, const QnicVdpaOps **ops,
                      GError **errp)
{
    if (!path || strcmp(path, SIM_PATH) != 0) {
        g_set_error(errp, QNIC_ERROR, QNIC_ERROR_FAILED, "Could not open '%s': %s",
                    path ? path : "fd", g_strerror(ENOENT));
        return NULL;
    }
    *ops = &rec_ops;
    return cur_sim;
}

static void sim_close(void *ctx, void *dev)
{
    qnic_vdpa_sim_release(dev);
}

static const QnicVdpaOpener sim_opener = { .open = sim_open, .close = sim_close };

static void rec_reset(void)
{
    if (rec) {
        g_ptr_array_unref(rec);
    }
    rec = g_ptr_array_new_with_free_func(g_free);
}

static void rec_dump(unsigned from)
{
    for (unsigned i = from; i < rec->len; i++) {
        g_test_message("  %s", (char *)g_ptr_array_index(rec, i));
    }
}

/* The log from line `from` on matches want (NULL-terminated glob
 * patterns); returns the line after. */
static unsigned rec_expect(unsigned from, const char *const *want)
{
    unsigned n = 0;

    for (; want[n]; n++) {
        if (from + n >= rec->len) {
            rec_dump(from);
            g_error("request %u: expected '%s', the log ends", from + n, want[n]);
        }
        if (!g_pattern_match_simple(want[n], g_ptr_array_index(rec, from + n))) {
            rec_dump(from);
            g_error("request %u: '%s', expected '%s'", from + n,
                    (char *)g_ptr_array_index(rec, from + n), want[n]);
        }
    }
    return from + n;
}

/* ---- the machine and a modern driver ---- */

typedef struct {
    QnicMachine *m;
    QnicDevice *dev;
    QnicPciDevice *pd;
    QnicNetdev *nd, *peer_nd;
    QnicVdpaSim *sim;
    VringHostRam ram;
    VringMem mem;
    VringDriver vq[5];
    unsigned pairs, nq;
    bool packed;
    uint64_t acked;
    int peer_fd;                /* the test's end of the simulator's socket */
    uint16_t rx_seen[2];
} Fx;

#define CC(field) offsetof(struct virtio_pci_common_cfg, field)

/* A register of the modern BAR (common config at 0, notify at 0x3000). */
static uint32_t bar4_access(Fx *f, uint64_t off, unsigned size, bool write, uint32_t v)
{
    uint64_t r = v;

    g_assert_true(write ? qnic_as_store(&f->m->mem, BAR4_BASE + off, size, v)
                        : qnic_as_load(&f->m->mem, BAR4_BASE + off, size, &r));
    return (uint32_t)r;
}
#define bar4_write(f, off, size, v) bar4_access((f), (off), (size), true, (v))
#define bar4_read(f, off, size) bar4_access((f), (off), (size), false, 0)
/* guest RAM (the fixture maps all of it) */
#define ram(f, gpa) ((uint8_t *)qnic_machine_ram_ptr((f)->m, (gpa), 1))

static void notify(Fx *f, unsigned q)
{
    bar4_write(f, 0x3000 + 4 * q, 2, q);
}

static void set_status(Fx *f, uint8_t st)
{
    bar4_write(f, CC(device_status), 1, st);
}

static void post_rx(Fx *f, unsigned pair, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        VringBuf b = { .addr = RXBUF_GPA + pair * 0x40000 + (f->vq[2 * pair].next_head % 64) *
                               2048, .len = 2048, .write = true };
        vring_add(&f->vq[2 * pair], &b, 1);
    }
    notify(f, 2 * pair);
}

/* Reset, negotiate, set every queue up, post RX buffers, DRIVER_OK. */
static void driver_up(Fx *f)
{
    uint64_t offered, want;
    uint8_t s = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER;

    set_status(f, 0);
    set_status(f, s);
    bar4_write(f, CC(device_feature_select), 4, 0);
    offered = bar4_read(f, CC(device_feature), 4);
    bar4_write(f, CC(device_feature_select), 4, 1);
    offered |= (uint64_t)bar4_read(f, CC(device_feature), 4) << 32;
    want = (1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_NET_F_MAC) |
           (1ull << VIRTIO_NET_F_MRG_RXBUF) | (1ull << VIRTIO_NET_F_CTRL_VQ) |
           (1ull << VIRTIO_NET_F_CTRL_RX) | (1ull << VIRTIO_NET_F_CTRL_MAC_ADDR) |
           (1ull << VIRTIO_NET_F_STATUS) | (f->pairs > 1 ? 1ull << VIRTIO_NET_F_MQ : 0) |
           (f->packed ? 1ull << VIRTIO_F_RING_PACKED : 0);
    g_assert_cmphex(offered & want, ==, want);
    f->acked = want;
    bar4_write(f, CC(guest_feature_select), 4, 0);
    bar4_write(f, CC(guest_feature), 4, (uint32_t)want);
    bar4_write(f, CC(guest_feature_select), 4, 1);
    bar4_write(f, CC(guest_feature), 4, want >> 32);
    s |= VIRTIO_CONFIG_S_FEATURES_OK;
    set_status(f, s);
    f->nq = 2 * f->pairs + 1;
    for (unsigned q = 0; q < f->nq; q++) {
        uint64_t g = RING_GPA + q * 0x10000;
        bar4_write(f, CC(queue_select), 2, q);
        memset(ram(f, g), 0, 0x3000);
        vring_driver_init(&f->vq[q], &f->mem, q < f->nq - 1 ? 256 : 64, f->packed, g,
                          g + 0x1000, g + 0x2000);
        bar4_write(f, CC(queue_size), 2, f->vq[q].num);
        bar4_write(f, CC(queue_desc_lo), 4, (uint32_t)g);
        bar4_write(f, CC(queue_desc_hi), 4, 0);
        bar4_write(f, CC(queue_avail_lo), 4, (uint32_t)(g + 0x1000));
        bar4_write(f, CC(queue_avail_hi), 4, 0);
        bar4_write(f, CC(queue_used_lo), 4, (uint32_t)(g + 0x2000));
        bar4_write(f, CC(queue_used_hi), 4, 0);
        bar4_write(f, CC(queue_msix_vector), 2, VIRTIO_MSI_NO_VECTOR);
        bar4_write(f, CC(queue_enable), 2, 1);
    }
    memset(f->rx_seen, 0, sizeof(f->rx_seen));
    set_status(f, s | VIRTIO_CONFIG_S_DRIVER_OK);
    g_assert_cmphex(bar4_read(f, CC(device_status), 1) & VIRTIO_CONFIG_S_NEEDS_RESET, ==, 0);
    for (unsigned p = 0; p < f->pairs; p++) {
        post_rx(f, p, 16);
    }
}

/* One control command; waits for qnic's answer on the control queue. */
typedef struct {
    VringDriver *vq;
} UsedWait;

static bool cond_used(void *opaque)
{
    UsedWait *w = opaque;
    uint16_t id;
    uint32_t len;

    return vring_get_used(w->vq, &id, &len);
}

static void ctrl_cmd(Fx *f, uint8_t cls, uint8_t cmd, const void *data, size_t len)
{
    uint8_t *b = ram(f, CTRLBUF_GPA);
    VringBuf bufs[2] = { { .addr = CTRLBUF_GPA, .len = 2 + len },
                         { .addr = CTRLBUF_GPA + 0x100, .len = 1, .write = true } };
    UsedWait w = { &f->vq[f->nq - 1] };

    b[0] = cls;
    b[1] = cmd;
    memcpy(b + 2, data, len);
    b[0x100] = 0xff;
    vring_add(w.vq, bufs, 2);
    notify(f, f->nq - 1);
    g_assert_true(test_pump(2000, cond_used, &w));
    g_assert_cmpuint(b[0x100], ==, VIRTIO_NET_OK);
}

static size_t frame(uint8_t *p, const uint8_t *dst, const uint8_t *src, uint16_t tag)
{
    memcpy(p, dst, 6);
    memcpy(p + 6, src, 6);
    p[12] = 0x88;
    p[13] = 0xb5;
    memset(p + 14, 0, 46);
    qnic_st16be(p + 14, tag);
    memcpy(p + 16, "qnic-vdpa", 9);
    return 60;
}

static bool is_frame(const uint8_t *p, size_t n, uint16_t tag)
{
    return n >= 25 && p[12] == 0x88 && p[13] == 0xb5 && qnic_ld16be(p + 14) == tag &&
           !memcmp(p + 16, "qnic-vdpa", 9);
}

/* Guest -> peer: the frame behind a zero header on pair `pair`'s TX ring. */
static void guest_tx(Fx *f, unsigned pair, uint16_t tag)
{
    uint8_t *buf = ram(f, TXBUF_GPA + pair * 0x1000);
    VringBuf b = { .addr = TXBUF_GPA + pair * 0x1000 };

    memset(buf, 0, HDR);
    b.len = HDR + frame(buf + HDR, peer_mac, guest_mac, tag);
    vring_add(&f->vq[2 * pair + 1], &b, 1);
    notify(f, 2 * pair + 1);
}

typedef struct {
    int fd;
    uint16_t tag;
    bool seen;
} PeerWait;

static bool cond_peer(void *opaque)
{
    PeerWait *w = opaque;
    uint8_t buf[2048];
    ssize_t n;

    while ((n = recv(w->fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
        w->seen |= is_frame(buf, n, w->tag);
    }
    return w->seen;
}

/* Peer -> guest: a frame to dst; true when one of the RX rings got it. */
typedef struct {
    Fx *f;
    uint16_t tag;
} RxWait;

static bool cond_rx(void *opaque)
{
    RxWait *w = opaque;
    Fx *f = w->f;

    for (unsigned p = 0; p < f->pairs; p++) {
        uint16_t id;
        uint32_t len;
        while (vring_get_used(&f->vq[2 * p], &id, &len)) {
            /* split: the head slot, packed: the buffer id; both were
             * handed out in order, one descriptor per buffer */
            uint64_t addr = RXBUF_GPA + p * 0x40000 + (id % 64) * 2048;
            if (len > HDR && is_frame(ram(f, addr) + HDR, len - HDR, w->tag)) {
                return true;
            }
        }
    }
    return false;
}

static void peer_send(int fd, const uint8_t *dst, uint16_t tag)
{
    uint8_t buf[64];
    size_t n = frame(buf, dst, peer_mac, tag);

    g_assert_cmpint(send(fd, buf, n, 0), ==, (ssize_t)n);
}

static void check_traffic(Fx *f, int peer_fd, uint16_t tag)
{
    PeerWait pw = { .fd = peer_fd, .tag = tag };
    RxWait rw = { .f = f, .tag = tag + 1 };

    for (unsigned p = 0; p < f->pairs; p++) {
        pw.seen = false;
        pw.tag = tag + 0x100 * p;
        guest_tx(f, p, pw.tag);
        g_assert_true(test_pump(3000, cond_peer, &pw));
    }
    peer_send(peer_fd, guest_mac, tag + 1);
    g_assert_true(test_pump(3000, cond_rx, &rw));
    for (unsigned p = 0; p < f->pairs; p++) {
        post_rx(f, p, 1);
    }
}

static bool cond_link_down(void *opaque)
{
    return ((QnicNetClient *)opaque)->link_down;
}

static bool cond_link_up(void *opaque)
{
    return !((QnicNetClient *)opaque)->link_down;
}

/* The simulated NIC's receive filter, as query-rx-filter reports it. */
static void sim_filter(Fx *f, QnicRxFilterInfo *info)
{
    QnicNetClient *nic = f->peer_nd->ncs[0]->peer;

    memset(info, 0, sizeof(*info));
    g_assert_nonnull(nic);
    nic->ops->query_rx_filter(nic, info);
}

/* The simulator's options for the next fx_init (then back to all offered). */
static QnicVdpaSimConfig next_sim;

static void fx_init(Fx *f, const char *peer_netdev, unsigned pairs, bool packed)
{
    QnicMachineConfig cfg = { .ram_size = RAM_SIZE };
    QnicVdpaSimConfig sc = next_sim;
    g_autoptr(GError) err = NULL;
    g_autofree char *dev_opts = NULL, *dev_opts2 = NULL;
    g_autofree char *nd_opts = g_strdup_printf("vhost-vdpa,id=vd0,vhostdev=" SIM_PATH
                                               ",queues=%u", pairs);

    memset(f, 0, sizeof(*f));
    f->pairs = pairs;
    f->packed = packed;
    cfg.backends = test_backends();
    f->m = qnic_machine_new(&cfg, &err);
    g_assert_no_error(err);
    f->mem = vring_host_machine_mem(&f->ram, f->m, RAM_SIZE);
    f->peer_nd = qnic_netdev_add_str(test_backends(), peer_netdev, &err);
    g_assert_no_error(err);
    dev_opts = g_strdup_printf("netdev=%s,mac=02:00:00:00:00:aa,packed=on", f->peer_nd->id);
    sc.device_opts = dev_opts;
    sc.be = test_backends();
    memset(&next_sim, 0, sizeof(next_sim));
    f->sim = cur_sim = qnic_vdpa_sim_new(&sc, &err);
    g_assert_no_error(err);
    rec_reset();
    qnic_vhost_vdpa_set_opener(&sim_opener);
    f->nd = qnic_netdev_add_str(test_backends(), nd_opts, &err);
    g_assert_no_error(err);
    dev_opts2 = g_strdup_printf("virtio-net-pci,netdev=vd0,addr=4,disable-legacy=on,"
                                "mac=52:54:00:12:34:56%s%s", packed ? ",packed=on" : "",
                                pairs > 1 ? ",mq=on" : "");
    f->dev = qnic_device_create_str(f->m, dev_opts2, &err);
    g_assert_no_error(err);
    f->pd = (QnicPciDevice *)f->dev;
    qnic_pci_config_write(f->pd, PCI_BASE_ADDRESS_4, (uint32_t)BAR4_BASE, 4);
    qnic_pci_config_write(f->pd, PCI_BASE_ADDRESS_5, BAR4_BASE >> 32, 4);
    qnic_pci_config_write(f->pd, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 2);
}

static void fx_free(Fx *f)
{
    if (f->dev) {
        qnic_device_destroy(f->dev);
    }
    if (f->nd) {
        qnic_netdev_del(f->nd);
    }
    qnic_vdpa_sim_free(f->sim);
    cur_sim = NULL;
    qnic_netdev_del(f->peer_nd);
    qnic_machine_free(f->m);
    qnic_vhost_vdpa_set_opener(NULL);
}

/* A datagram socketpair: one end is the simulator's `-netdev socket`. */
static char *socket_peer(int *test_fd)
{
    int sp[2];

    g_assert_cmpint(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sp), ==, 0);
    *test_fd = sp[0];
    return g_strdup_printf("socket,id=sn0,fd=%d", sp[1]);
}

/* ---- the tests ---- */

/* At netdev creation (docs/backends.md, "vhost-vdpa"). */
static const char *const seq_bringup[] = {
    "SET_OWNER", "GET_DEVICE_ID", "GET_BACKEND_FEATURES",
    "SET_BACKEND_FEATURES 0x1e",        /* MSG_V2 | BATCH | ASID | SUSPEND */
    "GET_FEATURES", "GET_CONFIG", "GET_VQS_COUNT", "GET_IOVA_RANGE", "GET_VRING_NUM",
    "SET_CONFIG_CALL", "SET_STATUS 0x0", "SET_STATUS 0x3",
    "IOTLB BATCH_BEGIN", "IOTLB UPDATE 0xffffffffffffb000+0x5000", "IOTLB BATCH_END", NULL
};

/* DRIVER_OK from the guest with `pairs` pairs (ring bases: 0 split,
 * 0x8000 packed, the wrap counter set): the data rings, then the shadow
 * control queue at 2 (one pair) or 2 * max_virtqueue_pairs. Returns a
 * NULL-terminated list of patterns; free with g_strfreev. */
static char **seq_start(unsigned pairs)
{
    GPtrArray *a = g_ptr_array_new();
    unsigned cvq = 2 * pairs;
    uint64_t cvq_iova = 0xffffffffffffb000ull;

    g_ptr_array_add(a, g_strdup("SET_FEATURES 0x*"));
    g_ptr_array_add(a, g_strdup("SET_STATUS 0xb"));
    g_ptr_array_add(a, g_strdup("GET_STATUS"));
    g_ptr_array_add(a, g_strdup("IOTLB BATCH_BEGIN"));
    g_ptr_array_add(a, g_strdup("IOTLB UPDATE 0x0+0x2000000"));
    g_ptr_array_add(a, g_strdup("IOTLB BATCH_END"));
    for (unsigned q = 0; q < 2 * pairs; q++) {
        uint64_t g = RING_GPA + q * 0x10000;
        g_ptr_array_add(a, g_strdup_printf("SET_VRING_NUM %u 256", q));
        g_ptr_array_add(a, g_strdup_printf("SET_VRING_BASE %u *", q));
        g_ptr_array_add(a, g_strdup_printf("SET_VRING_ADDR %u 0x%" PRIx64 " 0x%" PRIx64 " 0x%"
                                           PRIx64, q, g, g + 0x1000, g + 0x2000));
        g_ptr_array_add(a, g_strdup_printf("SET_VRING_KICK %u", q));
        g_ptr_array_add(a, g_strdup_printf("SET_VRING_CALL %u", q));
    }
    for (unsigned q = 0; q < 2 * pairs; q++) {
        g_ptr_array_add(a, g_strdup_printf("SET_VRING_ENABLE %u 1", q));
    }
    g_ptr_array_add(a, g_strdup_printf("SET_VRING_NUM %u 32", cvq));
    g_ptr_array_add(a, g_strdup_printf("SET_VRING_BASE %u *", cvq));
    g_ptr_array_add(a, g_strdup_printf("SET_VRING_ADDR %u 0x%" PRIx64 " 0x%" PRIx64 " 0x%" PRIx64,
                                       cvq, cvq_iova, cvq_iova + 0x1000, cvq_iova + 0x2000));
    g_ptr_array_add(a, g_strdup_printf("SET_VRING_KICK %u", cvq));
    g_ptr_array_add(a, g_strdup_printf("SET_VRING_CALL %u", cvq));
    g_ptr_array_add(a, g_strdup_printf("SET_VRING_ENABLE %u 1", cvq));
    g_ptr_array_add(a, g_strdup("SET_STATUS 0xf"));
    g_ptr_array_add(a, NULL);
    return (char **)g_ptr_array_free(a, false);
}

/* The guest resets the device (or it is unplugged). */
static const char *const seq_stop[] = {
    "SUSPEND", "GET_VRING_BASE 0 0", "GET_VRING_BASE 1 0", "SET_STATUS 0x0", "SET_STATUS 0x3",
    NULL
};

/* The netdev goes: the IOTLB is emptied, the device reset. */
static const char *const seq_teardown[] = {
    "IOTLB INVALIDATE 0x0+0x2000000", "IOTLB INVALIDATE 0xffffffffffffb000+0x5000",
    "SET_STATUS 0x0", NULL
};

static void print_log(void)
{
    if (g_test_verbose()) {
        rec_dump(0);
    }
}

/* One pair, split or packed: bring-up, start, traffic, the control queue,
 * reset and re-init, a remap, teardown. */
static void lifecycle(bool packed)
{
    Fx f;
    int peer;
    g_autofree char *peer_nd = socket_peer(&peer);
    QnicRxFilterInfo info;
    QnicVdpaCvqStats st;
    QnicVhostDev *hd;
    QnicVhostVdpa *v;
    uint8_t off = 0;
    unsigned mark;

    fx_init(&f, peer_nd, 1, packed);
    mark = rec_expect(0, seq_bringup);
    hd = qnic_vhost_net_get(f.nd->ncs[0]);
    g_assert_nonnull(hd);
    g_assert_cmpstr(hd->ops->name, ==, "vhost-vdpa");
    v = hd->be;
    g_assert_true(qnic_vhost_vdpa_info(v)->has_cvq);
    g_assert_cmpmem(qnic_vhost_vdpa_info(v)->mac, 6, "\x02\x00\x00\x00\x00\xaa", 6);

    driver_up(&f);
    {
        g_auto(GStrv) want = seq_start(1);
        mark = rec_expect(mark, (const char *const *)want);
    }
    g_assert_true(qnic_vdpa_sim_status(f.sim) & VIRTIO_CONFIG_S_DRIVER_OK);
    g_assert_true(qnic_vdpa_sim_features(f.sim) & (1ull << VIRTIO_F_ACCESS_PLATFORM));
    g_assert_cmpuint(!!(qnic_vdpa_sim_features(f.sim) & (1ull << VIRTIO_F_RING_PACKED)), ==,
                     packed);
    g_assert_true(qnic_vdpa_sim_vq_running(f.sim, 0));
    g_assert_true(qnic_vdpa_sim_vq_running(f.sim, 1));
    g_assert_true(qnic_vdpa_sim_vq_running(f.sim, 2));      /* the shadow control queue */
    g_assert_cmpuint(qnic_vdpa_sim_num_maps(f.sim), ==, 2); /* guest RAM + the shadow queue */
    check_traffic(&f, peer, 0x100);

    /* MAC and RX mode: qnic answers, and the simulated device follows */
    ctrl_cmd(&f, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, new_mac, 6);
    ctrl_cmd(&f, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, &off, 1);
    test_pump(200, NULL, NULL);
    qnic_vhost_vdpa_cvq_poll(v);
    sim_filter(&f, &info);
    g_assert_cmpmem(info.main_mac, 6, new_mac, 6);
    g_assert_false(info.promiscuous);
    qnic_rx_filter_info_clear(&info);
    qnic_vhost_vdpa_cvq_stats(v, &st);
    g_assert_cmpuint(st.nacked, ==, 0);
    g_assert_cmpuint(st.completed, ==, st.posted);
    g_assert_cmpuint(st.posted, >=, 4);     /* the replay at start, then the two */

    /* reset and re-init: the device is reset, the state replayed */
    mark = rec->len;
    set_status(&f, 0);
    g_assert_cmphex(qnic_vdpa_sim_status(f.sim), ==,
                    VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
    rec_expect(mark, seq_stop);
    driver_up(&f);
    test_pump(200, NULL, NULL);
    sim_filter(&f, &info);
    /* qnic's reset restored the permanent MAC and promiscuous mode: the
     * device has them again */
    g_assert_cmpmem(info.main_mac, 6, guest_mac, 6);
    g_assert_true(info.promiscuous);
    qnic_rx_filter_info_clear(&info);
    check_traffic(&f, peer, 0x200);

    /* the device's cable: a config interrupt, the link follows */
    {
        QnicNetClient *nic = f.nd->ncs[0]->peer;
        mark = rec->len;
        qnic_vdpa_sim_set_link(f.sim, false);
        g_assert_true(test_pump(2000, cond_link_down, nic));
        mark = rec_expect(mark, (const char *const[]){ "GET_CONFIG", NULL });
        qnic_vdpa_sim_set_link(f.sim, true);
        g_assert_true(test_pump(2000, cond_link_up, nic));
        mark = rec_expect(mark, (const char *const[]){ "GET_CONFIG", NULL });
    }

    /* a remap while running: invalidate, update, traffic goes on */
    {
        g_autoptr(GError) err = NULL;
        g_assert_true(qnic_vhost_vdpa_update_memory(v, f.m, &err));
        g_assert_no_error(err);
    }
    mark = rec_expect(mark, (const char *const[]){
        "IOTLB BATCH_BEGIN", "IOTLB INVALIDATE 0x0+0x2000000", "IOTLB UPDATE 0x0+0x2000000",
        "IOTLB BATCH_END", NULL });
    test_pump(50, NULL, NULL);
    check_traffic(&f, peer, 0x300);
    print_log();
    qnic_device_destroy(f.dev);
    f.dev = NULL;
    mark = rec_expect(mark, seq_stop);
    qnic_netdev_del(f.nd);
    f.nd = NULL;
    rec_expect(mark, seq_teardown);
    fx_free(&f);
    close(peer);
}

static void test_split(void)
{
    lifecycle(false);
}

static void test_packed(void)
{
    lifecycle(true);
}

/* A device without SUSPEND and IOTLB batches: maps go one message at a
 * time, a stop reads the ring bases from the running device and resets it,
 * and traffic resumes after a re-init. */
static void test_plain_device(void)
{
    Fx f;
    int peer;
    g_autofree char *peer_nd = socket_peer(&peer);
    unsigned mark;

    next_sim.no_suspend = next_sim.no_batch = true;
    fx_init(&f, peer_nd, 1, false);
    rec_expect(3, (const char *const[]){ "SET_BACKEND_FEATURES 0xa", NULL });
    rec_expect(12, (const char *const[]){ "IOTLB UPDATE 0xffffffffffffb000+0x5000", NULL });
    driver_up(&f);
    check_traffic(&f, peer, 0x500);
    mark = rec->len;
    set_status(&f, 0);
    rec_expect(mark, (const char *const[]){ "GET_VRING_BASE 0 0", "GET_VRING_BASE 1 0",
                                             "SET_STATUS 0x0", "SET_STATUS 0x3", NULL });
    mark = rec->len;
    driver_up(&f);
    rec_expect(mark + 3, (const char *const[]){ "IOTLB INVALIDATE 0x0+0x2000000",
                                                 "IOTLB UPDATE 0x0+0x2000000", NULL });
    check_traffic(&f, peer, 0x600);
    for (unsigned i = 0; i < rec->len; i++) {
        g_assert_null(strstr(g_ptr_array_index(rec, i), "BATCH"));
        g_assert_null(strstr(g_ptr_array_index(rec, i), "SUSPEND"));
    }
    fx_free(&f);
    close(peer);
}

/* ---- two queue pairs: the simulator on a two-queue tap ---- */

/* Frames of every protocol on the interface, both ways. */
static int packet_socket(const char *ifname)
{
    struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL),
                               .sll_ifindex = if_nametoindex(ifname) };
    int s = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, htons(ETH_P_ALL));

    g_assert_true(s >= 0 && sll.sll_ifindex > 0);
    g_assert_cmpint(bind(s, (struct sockaddr *)&sll, sizeof(sll)), ==, 0);
    return s;
}

static void mq_child(bool packed)
{
    Fx f;
    unsigned mark;
    uint8_t pairs[2];
    QnicVdpaCvqStats st;
    int sock;

    if (unshare(CLONE_NEWNET) < 0) {
        g_error("unshare(CLONE_NEWNET): %s", g_strerror(errno));
    }
    fx_init(&f, "tap,id=sn0,ifname=qvd0,script=no,downscript=no,queues=2", 2, packed);
    g_assert_cmpuint(qnic_vhost_vdpa_info(qnic_vhost_net_get(f.nd->ncs[0])->be)->max_pairs, ==,
                     2);
    g_assert_cmpint(test_sh("ip link set qvd0 up"), ==, 0);
    sock = packet_socket("qvd0");
    mark = rec_expect(0, seq_bringup);
    driver_up(&f);
    {
        g_auto(GStrv) want = seq_start(2);
        rec_expect(mark, (const char *const *)want);
    }
    /* rings 0-3 and the control queue at 2 * max_pairs = 4 */
    for (unsigned q = 0; q < 5; q++) {
        g_assert_true(qnic_vdpa_sim_vq_running(f.sim, q));
    }
    qnic_st16(pairs, 2);
    ctrl_cmd(&f, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, pairs, 2);
    test_pump(100, NULL, NULL);
    check_traffic(&f, sock, 0x400);
    qnic_vhost_vdpa_cvq_stats(qnic_vhost_net_get(f.nd->ncs[0])->be, &st);
    g_assert_cmpuint(st.nacked, ==, 0);
    g_assert_cmpuint(st.completed, ==, st.posted);
    print_log();
    fx_free(&f);
    close(sock);
}

static void test_mq_split_child(void)
{
    mq_child(false);
}

static void test_mq_packed_child(void)
{
    mq_child(true);
}

static void test_mq_split(void)
{
    test_trap_tun_child("/vhost-vdpa/sim/mq-split/subprocess");
}

static void test_mq_packed(void)
{
    test_trap_tun_child("/vhost-vdpa/sim/mq-packed/subprocess");
}

/* ---- hostile sequences against the simulator: the kernel's errno ---- */

typedef struct {
    QnicNetdev *nd;
    QnicVdpaSim *s;
    uint8_t *mem;               /* 1 MiB of "guest memory" mapped at IOVA 0 */
} Hs;

static void hs_init(Hs *h, const char *id)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *nd = g_strdup_printf("hubport,id=%s,hubid=7%s", id, id + 2);
    g_autofree char *dev = g_strdup_printf("netdev=%s", id);
    QnicVdpaSimConfig sc = { .be = test_backends(), .device_opts = dev };

    h->nd = qnic_netdev_add_str(test_backends(), nd, &err);
    g_assert_no_error(err);
    h->s = qnic_vdpa_sim_new(&sc, &err);
    g_assert_no_error(err);
    g_assert_cmpint(posix_memalign((void **)&h->mem, 4096, 1 << 20), ==, 0);
    memset(h->mem, 0, 1 << 20);
}

static void hs_free(Hs *h)
{
    qnic_vdpa_sim_free(h->s);
    qnic_netdev_del(h->nd);
    free(h->mem);
}

static int hs_ioctl(Hs *h, unsigned long req, uint64_t v)
{
    uint64_t arg = v;
    return qnic_vdpa_sim_ioctl(h->s, req, &arg);
}

static int hs_state(Hs *h, unsigned long req, unsigned idx, unsigned num)
{
    struct vhost_vring_state st = { .index = idx, .num = num };
    return qnic_vdpa_sim_ioctl(h->s, req, &st);
}

static ssize_t hs_iotlb(Hs *h, uint32_t type, uint8_t t, uint64_t iova, uint64_t size,
                        void *host, uint8_t perm, uint32_t asid)
{
    struct vhost_msg_v2 m = { .type = type, .asid = asid };

    m.iotlb.type = t;
    m.iotlb.iova = iova;
    m.iotlb.size = size;
    m.iotlb.uaddr = (uint64_t)(uintptr_t)host;
    m.iotlb.perm = perm;
    return qnic_vdpa_sim_write(h->s, &m, sizeof(m));
}

static void test_hostile_ioctls(void)
{
    Hs h;
    struct {
        struct vhost_vdpa_config c;
        uint8_t buf[64];
    } cfg;
    uint64_t f = (1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_F_ACCESS_PLATFORM);

    hs_init(&h, "hs1");
    /* before SET_OWNER nothing but the queries goes */
    g_assert_cmpint(hs_ioctl(&h, VHOST_VDPA_SET_STATUS, 1), ==, -EPERM);
    g_assert_cmpint(hs_iotlb(&h, VHOST_IOTLB_MSG_V2, VHOST_IOTLB_UPDATE, 0, 4096, h.mem,
                             VHOST_ACCESS_RW, 0), ==, -EFAULT);
    g_assert_cmpint(hs_ioctl(&h, VHOST_SET_OWNER, 0), ==, 0);
    g_assert_cmpint(hs_ioctl(&h, VHOST_SET_OWNER, 0), ==, -EBUSY);
    /* unknown requests, rings past the last */
    g_assert_cmpint(hs_ioctl(&h, _IO(VHOST_VIRTIO, 0x7f), 0), ==, -ENOTTY);
    g_assert_cmpint(hs_state(&h, VHOST_SET_VRING_NUM, 3, 256), ==, -ENOBUFS);
    g_assert_cmpint(hs_state(&h, VHOST_SET_VRING_NUM, 0, 100), ==, -EINVAL);
    g_assert_cmpint(hs_ioctl(&h, VHOST_SET_BACKEND_FEATURES, 1ull << 40), ==, -EOPNOTSUPP);
    /* configuration space bounds */
    cfg.c = (struct vhost_vdpa_config){ .off = 0, .len = 0 };
    g_assert_cmpint(qnic_vdpa_sim_ioctl(h.s, VHOST_VDPA_GET_CONFIG, &cfg), ==, -EINVAL);
    cfg.c = (struct vhost_vdpa_config){ .off = 200, .len = 1 };
    g_assert_cmpint(qnic_vdpa_sim_ioctl(h.s, VHOST_VDPA_GET_CONFIG, &cfg), ==, -EINVAL);
    cfg.c = (struct vhost_vdpa_config){ .off = 4, .len = 60 };
    g_assert_cmpint(qnic_vdpa_sim_ioctl(h.s, VHOST_VDPA_GET_CONFIG, &cfg), ==, -E2BIG);
    /* features need the IOTLB (ACCESS_PLATFORM) and are fixed by FEATURES_OK */
    g_assert_cmpint(hs_ioctl(&h, VHOST_SET_FEATURES, 1ull << VIRTIO_F_VERSION_1), ==, -EINVAL);
    g_assert_cmpint(hs_ioctl(&h, VHOST_VDPA_SET_STATUS, 3), ==, 0);
    g_assert_cmpint(hs_ioctl(&h, VHOST_SET_FEATURES, f), ==, 0);
    g_assert_cmpint(hs_ioctl(&h, VHOST_VDPA_SET_STATUS, 0xb), ==, 0);
    g_assert_cmpint(hs_ioctl(&h, VHOST_SET_FEATURES, f), ==, -EBUSY);
    /* the status never goes back but through 0 */
    g_assert_cmpint(hs_ioctl(&h, VHOST_VDPA_SET_STATUS, 3), ==, -EINVAL);
    g_assert_cmphex(qnic_vdpa_sim_status(h.s), ==, 0xb);
    g_assert_cmpint(hs_ioctl(&h, VHOST_VDPA_SET_STATUS, 0xf), ==, 0);
    g_assert_cmpint(hs_ioctl(&h, VHOST_SET_FEATURES, f), ==, -EBUSY);
    g_assert_cmpint(hs_ioctl(&h, VHOST_VDPA_SET_STATUS, 0x7), ==, -EINVAL);
    g_assert_cmpint(hs_ioctl(&h, VHOST_VDPA_SET_STATUS, 0), ==, 0);
    g_assert_cmphex(qnic_vdpa_sim_status(h.s), ==, 0);
    hs_free(&h);
}

static void test_hostile_iotlb(void)
{
    Hs h;
    uint64_t bf = (1ull << VHOST_BACKEND_F_IOTLB_MSG_V2) | (1ull << VHOST_BACKEND_F_IOTLB_ASID);
    uint32_t v2 = VHOST_IOTLB_MSG_V2;
    uint8_t shortmsg[8] = { 2 };

    hs_init(&h, "hs2");
    g_assert_cmpint(hs_ioctl(&h, VHOST_SET_OWNER, 0), ==, 0);
    g_assert_cmpint(hs_ioctl(&h, VHOST_SET_BACKEND_FEATURES, bf), ==, 0);
    /* malformed: the write itself is refused */
    g_assert_cmpint(qnic_vdpa_sim_write(h.s, shortmsg, sizeof(shortmsg)), ==, -EINVAL);
    g_assert_cmpint(hs_iotlb(&h, VHOST_IOTLB_MSG, VHOST_IOTLB_UPDATE, 0, 4096, h.mem, 3, 0),
                    ==, -EINVAL);
    g_assert_cmpint(hs_iotlb(&h, v2, VHOST_IOTLB_UPDATE, 0, 0, h.mem, 3, 0), ==, -EINVAL);
    g_assert_cmpint(hs_iotlb(&h, v2, VHOST_IOTLB_INVALIDATE, 0, 0, NULL, 0, 0), ==, -EINVAL);
    /* refused by the driver: -EFAULT as write(2) reports it */
    g_assert_cmpint(hs_iotlb(&h, v2, 42, 0, 4096, h.mem, 3, 0), ==, -EFAULT);
    g_assert_cmpint(hs_iotlb(&h, v2, VHOST_IOTLB_UPDATE, UINT64_MAX - 10, 4096, h.mem, 3, 0),
                    ==, -EFAULT);
    g_assert_cmpint(hs_iotlb(&h, v2, VHOST_IOTLB_UPDATE, 0, 4096, h.mem, 0, 0), ==, -EFAULT);
    g_assert_cmpint(hs_iotlb(&h, v2, VHOST_IOTLB_UPDATE, 0, 4096, h.mem, 7, 0), ==, -EFAULT);
    g_assert_cmpint(hs_iotlb(&h, v2, VHOST_IOTLB_UPDATE, 0, 4096, h.mem, 3, 1), ==, -EFAULT);
    g_assert_cmpint(hs_iotlb(&h, v2, VHOST_IOTLB_UPDATE, 0, 1 << 20, h.mem, 3, 0), ==,
                    (ssize_t)sizeof(struct vhost_msg_v2));
    g_assert_cmpint(hs_iotlb(&h, v2, VHOST_IOTLB_UPDATE, 4096, 4096, h.mem, 3, 0), ==, -EFAULT);
    g_assert_cmpuint(qnic_vdpa_sim_num_maps(h.s), ==, 1);
    hs_free(&h);
}

/* Rings outside every mapping do not start; a mapping in use that goes
 * stops them; mapped again, they run again. Nothing crashes. */
static void test_hostile_rings(void)
{
    Hs h;
    uint64_t f = (1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_F_ACCESS_PLATFORM);
    uint64_t bf = 1ull << VHOST_BACKEND_F_IOTLB_MSG_V2;
    struct vhost_vring_addr a = { .index = 0, .desc_user_addr = 0x100000,
                                  .avail_user_addr = 0x101000, .used_user_addr = 0x102000 };
    uint32_t v2 = VHOST_IOTLB_MSG_V2;

    hs_init(&h, "hs3");
    g_assert_cmpint(hs_ioctl(&h, VHOST_SET_OWNER, 0), ==, 0);
    g_assert_cmpint(hs_ioctl(&h, VHOST_SET_BACKEND_FEATURES, bf), ==, 0);
    g_assert_cmpint(hs_iotlb(&h, v2, VHOST_IOTLB_UPDATE, 0, 1 << 20, h.mem, 3, 0), ==,
                    (ssize_t)sizeof(struct vhost_msg_v2));
    g_assert_cmpint(hs_ioctl(&h, VHOST_VDPA_SET_STATUS, 3), ==, 0);
    g_assert_cmpint(hs_ioctl(&h, VHOST_SET_FEATURES, f), ==, 0);
    g_assert_cmpint(hs_ioctl(&h, VHOST_VDPA_SET_STATUS, 0xb), ==, 0);
    g_assert_cmpint(hs_state(&h, VHOST_SET_VRING_NUM, 0, 256), ==, 0);
    g_assert_cmpint(qnic_vdpa_sim_ioctl(h.s, VHOST_SET_VRING_ADDR, &a), ==, 0);
    g_assert_cmpint(hs_state(&h, VHOST_VDPA_SET_VRING_ENABLE, 0, 1), ==, 0);
    /* the ring lies at 1 MiB, just past the only mapping */
    g_assert_cmpint(hs_ioctl(&h, VHOST_VDPA_SET_STATUS, 0xf), ==, 0);
    g_assert_false(qnic_vdpa_sim_vq_running(h.s, 0));
    /* a second mapping covers it: the ring starts */
    {
        g_autofree uint8_t *more = g_malloc0(1 << 20);
        g_assert_cmpint(hs_iotlb(&h, v2, VHOST_IOTLB_UPDATE, 1 << 20, 1 << 20, more, 3, 0), ==,
                        (ssize_t)sizeof(struct vhost_msg_v2));
        g_assert_true(qnic_vdpa_sim_vq_running(h.s, 0));
        /* invalidated while in use: the ring stops, and starts again */
        g_assert_cmpint(hs_iotlb(&h, v2, VHOST_IOTLB_INVALIDATE, 1 << 20, 4096, NULL, 0, 0),
                        ==, (ssize_t)sizeof(struct vhost_msg_v2));
        g_assert_false(qnic_vdpa_sim_vq_running(h.s, 0));
        g_assert_cmpint(hs_iotlb(&h, v2, VHOST_IOTLB_UPDATE, 1 << 20, 1 << 20, more, 3, 0), ==,
                        (ssize_t)sizeof(struct vhost_msg_v2));
        g_assert_true(qnic_vdpa_sim_vq_running(h.s, 0));
        g_assert_cmpint(hs_ioctl(&h, VHOST_VDPA_SET_STATUS, 0), ==, 0);
    }
    hs_free(&h);
}

/* ---- the backend against a hostile device, and the real path ---- */

static void expect_netdev_error(const char *opts, const char *msg)
{
    g_autoptr(GError) err = NULL;

    g_assert_null(qnic_netdev_add_str(test_backends(), opts, &err));
    g_assert_nonnull(err);
    g_test_message("%s: %s", opts, err->message);
    g_assert_nonnull(strstr(err->message, msg));
}

static void test_hostile_device(void)
{
    static const struct {
        unsigned long req;
        uint64_t val;
        const char *msg;
    } lies[] = {
        { VHOST_VDPA_GET_DEVICE_ID, 2, "device id 2 is not a network" },
        { VHOST_VDPA_GET_VRING_NUM, 3, "rings take 3 entries" },
        { VHOST_VDPA_GET_VQS_COUNT, 1, "has 1 virtqueues" },
        { VHOST_GET_BACKEND_FEATURES, 0, "lacks IOTLB_MSG_V2" },
        { VHOST_GET_FEATURES, 1ull << VIRTIO_NET_F_MAC, "lacks VERSION_1" },
    };
    g_autoptr(GError) err = NULL;
    QnicNetdev *peer = qnic_netdev_add_str(test_backends(), "hubport,id=hd0,hubid=90", &err);
    QnicVdpaSimConfig sc = { .be = test_backends(), .device_opts = "netdev=hd0" };

    g_assert_no_error(err);
    cur_sim = qnic_vdpa_sim_new(&sc, &err);
    g_assert_no_error(err);
    qnic_vhost_vdpa_set_opener(&sim_opener);
    rec_reset();
    for (unsigned i = 0; i < G_N_ELEMENTS(lies); i++) {
        g_autofree char *opts = g_strdup_printf("vhost-vdpa,id=h%u,vhostdev=" SIM_PATH, i);
        mutate_req = lies[i].req;
        mutate_val = lies[i].val;
        expect_netdev_error(opts, lies[i].msg);
    }
    mutate_req = 0;
    expect_netdev_error("vhost-vdpa,id=h9,vhostdev=" SIM_PATH ",queues=2",
                        "queues=2 but the device has 1 queue pair");
    qnic_vhost_vdpa_set_opener(NULL);
    qnic_vdpa_sim_free(cur_sim);
    cur_sim = NULL;
    qnic_netdev_del(peer);
}

static void test_missing_device(void)
{
    expect_netdev_error("vhost-vdpa,id=m1,vhostdev=/dev/vhost-vdpa-77",
                        "Could not open '/dev/vhost-vdpa-77': No such file or directory");
    expect_netdev_error("vhost-vdpa,id=m2", "vhost-vdpa: neither vhostdev= nor vhostfd= was "
                        "specified");
    expect_netdev_error("vhost-vdpa,id=m3,vhostdev=/dev/x,vhostfd=3",
                        "vhost-vdpa: vhostdev= and vhostfd= are mutually exclusive");
    expect_netdev_error("vhost-vdpa,id=m4,vhostfd=x", "Invalid file descriptor 'x'");
    /* the real ioctl path on a descriptor that is no vhost-vdpa device:
     * the first request fails with the kernel's errno, and the netdev
     * closes the descriptor it took over */
    {
        int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
        g_autofree char *opts = g_strdup_printf("vhost-vdpa,id=m5,vhostfd=%d", fd);

        g_assert_cmpint(fd, >=, 0);
        expect_netdev_error(opts, "vhost-vdpa 'm5': SET_OWNER: Inappropriate ioctl for device");
        g_assert_cmpint(fcntl(fd, F_GETFD), <, 0);
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    qnic_bql_lock();
    g_test_add_func("/vhost-vdpa/sim/split", test_split);
    g_test_add_func("/vhost-vdpa/sim/packed", test_packed);
    g_test_add_func("/vhost-vdpa/sim/plain-device", test_plain_device);
    g_test_add_func("/vhost-vdpa/sim/mq-split", test_mq_split);
    g_test_add_func("/vhost-vdpa/sim/mq-split/subprocess", test_mq_split_child);
    g_test_add_func("/vhost-vdpa/sim/mq-packed", test_mq_packed);
    g_test_add_func("/vhost-vdpa/sim/mq-packed/subprocess", test_mq_packed_child);
    g_test_add_func("/vhost-vdpa/hostile/ioctls", test_hostile_ioctls);
    g_test_add_func("/vhost-vdpa/hostile/iotlb", test_hostile_iotlb);
    g_test_add_func("/vhost-vdpa/hostile/rings", test_hostile_rings);
    g_test_add_func("/vhost-vdpa/hostile/device", test_hostile_device);
    g_test_add_func("/vhost-vdpa/real/missing", test_missing_device);
    return g_test_run();
}
