/*
 * Tests of `-netdev tap,vhost=on` (virtio/vhost-kernel.c) up to the ioctl
 * boundary: a fake kernel stands in for /dev/vhost-net (this host has no
 * vhost-net module) and records every ioctl, while the tap itself is real,
 * in a network namespace of the test's own. A modern virtio-net-pci driver
 * played by the test brings the device up; the fake kernel must see
 * SET_OWNER and GET_FEATURES at netdev creation, then at DRIVER_OK the tap's
 * header length, SET_FEATURES with the acked data-path features the kernel
 * knows, SET_MEM_TABLE covering guest RAM at this process's mapping, per
 * ring NUM/BASE/ADDR (the driver's rings, as mapped here), KICK/CALL
 * eventfds and SET_BACKEND with the tap fd; at reset SET_BACKEND -1 and
 * GET_VRING_BASE. The fake kernel's call reaches the driver (ISR + INTx),
 * the driver's notify reaches the kick fd, qnic leaves the tap alone while
 * the kernel owns it and takes both directions back afterwards (the second
 * start fails in the fake kernel, so qnic runs the queues, as QEMU falls
 * back to userspace). Also: the clear error when /dev/vhost-net is missing
 * and a test of the real device, skipped here.
 */
#include "test-tap-helpers.h"
#include "vring-host.h"
#include "qnic/machine.h"
#include "qnic/pci.h"
#include "qnic/virtio.h"
#include "qnic/vhost-kernel.h"
#include "../lib/test-backends.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stddef.h>
#include <net/if.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <linux/if_ether.h>
#include <linux/if_tun.h>
#include <linux/vhost.h>
#include <linux/virtio_pci.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>
#include <linux/pci_regs.h>

#define IO_BASE 0xc000u
#define BAR4_BASE 0xe0000000ull
#define RXQ_GPA 0x100000ull
#define TXQ_GPA 0x110000ull
#define CTRLQ_GPA 0x120000ull
#define TXBUF_GPA 0x200000ull
#define RXBUF_GPA 0x210000ull
#define IFNAME "qvk0"

/* What a 6.x kernel's vhost-net answers to VHOST_GET_FEATURES. */
#define FAKE_KERNEL_FEATURES ((1ull << VIRTIO_F_NOTIFY_ON_EMPTY) | \
                              (1ull << VIRTIO_RING_F_INDIRECT_DESC) | \
                              (1ull << VIRTIO_RING_F_EVENT_IDX) | (1ull << VHOST_F_LOG_ALL) | \
                              (1ull << VIRTIO_F_ANY_LAYOUT) | (1ull << VIRTIO_F_VERSION_1) | \
                              (1ull << VHOST_NET_F_VIRTIO_NET_HDR) | \
                              (1ull << VIRTIO_NET_F_MRG_RXBUF) | \
                              (1ull << VIRTIO_F_ACCESS_PLATFORM))

/* ---- the fake kernel ---- */

typedef struct {
    GPtrArray *log;             /* char *: one line per ioctl */
    int fds[4];                 /* "open /dev/vhost-net" results */
    unsigned nfds;
    int opens;
    int kick[2], call[2], backend[2];
    unsigned num[2], base[2];
    uint64_t desc[2], avail[2], used[2];
    uint64_t features;
    struct vhost_memory_region regions[4];
    unsigned nregions;
    unsigned long fail_req;     /* answer this request with fail_errno */
    int fail_errno;
} FakeKernel;

static FakeKernel fk;

static int fk_open(const char *path, int flags)
{
    int fd;

    g_assert_cmpstr(path, ==, "/dev/vhost-net");
    g_assert_true(flags & O_RDWR);
    fk.opens++;
    fd = eventfd(0, EFD_CLOEXEC);       /* any real fd will do */
    g_assert_cmpint(fd, >=, 0);
    fk.fds[fk.nfds++] = fd;
    return fd;
}

static int fk_close(int fd)
{
    for (unsigned i = 0; i < fk.nfds; i++) {
        if (fk.fds[i] == fd) {
            fk.fds[i] = -1;
        }
    }
    return close(fd);
}

static void fk_log(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
static void fk_log(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    g_ptr_array_add(fk.log, g_strdup_vprintf(fmt, ap));
    va_end(ap);
}

static int fk_ioctl(int fd, unsigned long req, void *arg)
{
    bool ours = false;

    for (unsigned i = 0; i < fk.nfds; i++) {
        ours |= fk.fds[i] == fd && fd >= 0;
    }
    if (!ours) {
        /* the tap: recorded, then done for real */
        if (req == TUNSETVNETHDRSZ) {
            fk_log("TUNSETVNETHDRSZ %d", *(int *)arg);
        }
        return ioctl(fd, req, arg);
    }
    if (fk.fail_req == req) {
        errno = fk.fail_errno;
        return -1;
    }
    switch (req) {
    case VHOST_SET_OWNER:
        fk_log("SET_OWNER");
        return 0;
    case VHOST_GET_FEATURES:
        fk_log("GET_FEATURES");
        *(uint64_t *)arg = FAKE_KERNEL_FEATURES;
        return 0;
    case VHOST_SET_FEATURES: {
        uint64_t f = *(uint64_t *)arg;
        fk_log("SET_FEATURES 0x%" PRIx64, f);
        if (f & ~FAKE_KERNEL_FEATURES) {
            errno = EOPNOTSUPP;      /* as vhost_net_ioctl */
            return -1;
        }
        fk.features = f;
        return 0;
    }
    case VHOST_SET_MEM_TABLE: {
        struct vhost_memory *m = arg;
        fk_log("SET_MEM_TABLE %u", m->nregions);
        g_assert_cmpuint(m->nregions, <=, 4);
        fk.nregions = m->nregions;
        memcpy(fk.regions, m->regions, m->nregions * sizeof(m->regions[0]));
        return 0;
    }
    case VHOST_SET_VRING_NUM:
    case VHOST_SET_VRING_BASE: {
        struct vhost_vring_state *s = arg;
        g_assert_cmpuint(s->index, <, 2);
        fk_log("%s %u %u", req == VHOST_SET_VRING_NUM ? "SET_VRING_NUM" : "SET_VRING_BASE",
               s->index, s->num);
        (req == VHOST_SET_VRING_NUM ? fk.num : fk.base)[s->index] = s->num;
        return 0;
    }
    case VHOST_GET_VRING_BASE: {
        struct vhost_vring_state *s = arg;
        g_assert_cmpuint(s->index, <, 2);
        fk_log("GET_VRING_BASE %u", s->index);
        s->num = fk.base[s->index];
        return 0;
    }
    case VHOST_SET_VRING_ADDR: {
        struct vhost_vring_addr *a = arg;
        g_assert_cmpuint(a->index, <, 2);
        g_assert_cmpuint(a->flags, ==, 0);
        fk_log("SET_VRING_ADDR %u", a->index);
        fk.desc[a->index] = a->desc_user_addr;
        fk.avail[a->index] = a->avail_user_addr;
        fk.used[a->index] = a->used_user_addr;
        return 0;
    }
    case VHOST_SET_VRING_KICK:
    case VHOST_SET_VRING_CALL:
    case VHOST_NET_SET_BACKEND: {
        struct vhost_vring_file *v = arg;
        g_assert_cmpuint(v->index, <, 2);
        if (req == VHOST_NET_SET_BACKEND) {
            fk_log("SET_BACKEND %u %s", v->index, v->fd < 0 ? "-1" : "tap");
            fk.backend[v->index] = v->fd;
        } else {
            bool kick = req == VHOST_SET_VRING_KICK;
            fk_log("SET_VRING_%s %u", kick ? "KICK" : "CALL", v->index);
            (kick ? fk.kick : fk.call)[v->index] = v->fd;
        }
        return 0;
    }
    }
    fk_log("unknown ioctl 0x%lx", req);
    errno = ENOTTY;
    return -1;
}

static const QnicVhostKernelOps fake_ops = { .open = fk_open, .ioctl = fk_ioctl, .close = fk_close };

static void fk_reset(void)
{
    if (fk.log) {
        g_ptr_array_unref(fk.log);
    }
    memset(&fk, 0, sizeof(fk));
    fk.log = g_ptr_array_new_with_free_func(g_free);
    for (unsigned i = 0; i < 2; i++) {
        fk.kick[i] = fk.call[i] = fk.backend[i] = -1;
    }
}

/* The log from line `from` on equals `want` (NULL-terminated). */
static void fk_expect(unsigned from, const char *const *want)
{
    unsigned n = 0;

    for (; want[n]; n++) {
        if (from + n >= fk.log->len) {
            g_error("ioctl %u: expected '%s', the log ends", from + n, want[n]);
        }
        g_assert_cmpstr(g_ptr_array_index(fk.log, from + n), ==, want[n]);
    }
    g_assert_cmpuint(fk.log->len, ==, from + n);
}

/* ---- the machine and a modern driver ---- */

typedef struct {
    QnicMachine *m;
    QnicDevice *dev;
    QnicPciDevice *pd;
    QnicNetdev *nd;
    int gsi_level[QNIC_NUM_GSI];
    VringHostRam ram;           /* the driver's view of guest RAM */
    VringMem mem;
    VringDriver vq[3];          /* RX, TX, control */
} Fx;

static void on_gsi(void *opaque, unsigned gsi, int level)
{
    Fx *f = opaque;
    f->gsi_level[gsi] = level;
}

#define CC(field) offsetof(struct virtio_pci_common_cfg, field)

static void bar4_write(Fx *f, uint64_t off, unsigned size, uint32_t v)
{
    g_assert_true(qnic_as_store(&f->m->mem, BAR4_BASE + off, size, v));
}

static uint32_t bar4_read(Fx *f, uint64_t off, unsigned size)
{
    uint64_t v = 0;
    g_assert_true(qnic_as_load(&f->m->mem, BAR4_BASE + off, size, &v));
    return v;
}

static uint8_t *ram(Fx *f, uint64_t gpa)
{
    uint8_t *p = qnic_machine_ram_ptr(f->m, gpa, 1);
    g_assert_nonnull(p);
    return p;
}

static const uint64_t ring_gpa[3] = { RXQ_GPA, TXQ_GPA, CTRLQ_GPA };

static void notify(Fx *f, unsigned q)
{
    bar4_write(f, 0x3000 + 4 * q, 2, q);
}

/* A 2 KiB receive buffer; notifies once the driver is running. */
static void post_rx(Fx *f, uint64_t gpa)
{
    VringBuf b = { .addr = gpa, .len = 2048, .write = true };

    vring_add(&f->vq[0], &b, 1);
    if (bar4_read(f, CC(device_status), 1) & VIRTIO_CONFIG_S_DRIVER_OK) {
        notify(f, 0);
    }
}

static uint64_t features_wanted(void)
{
    return (1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_NET_F_MAC) |
           (1ull << VIRTIO_NET_F_MRG_RXBUF) | (1ull << VIRTIO_NET_F_CSUM) |
           (1ull << VIRTIO_NET_F_GUEST_CSUM) | (1ull << VIRTIO_NET_F_CTRL_VQ) |
           (1ull << VIRTIO_RING_F_INDIRECT_DESC);
}

/* Reset, negotiate, three rings (desc +0, avail +0x1000, used +0x2000 of
 * the queue's 64 KiB), one RX buffer posted, DRIVER_OK. Returns the
 * features the driver accepted. */
static uint64_t driver_up(Fx *f)
{
    uint64_t offered, acked;

    bar4_write(f, CC(device_status), 1, 0);
    bar4_write(f, CC(device_status), 1, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
    bar4_write(f, CC(device_feature_select), 4, 0);
    offered = bar4_read(f, CC(device_feature), 4);
    bar4_write(f, CC(device_feature_select), 4, 1);
    offered |= (uint64_t)bar4_read(f, CC(device_feature), 4) << 32;
    /* what the kernel cannot do is not offered */
    g_assert_false(offered & (1ull << VIRTIO_F_RING_PACKED));
    g_assert_false(offered & (1ull << VIRTIO_NET_F_HASH_REPORT));
    acked = offered & features_wanted();
    g_assert_true(acked & (1ull << VIRTIO_F_VERSION_1));
    bar4_write(f, CC(guest_feature_select), 4, 0);
    bar4_write(f, CC(guest_feature), 4, (uint32_t)acked);
    bar4_write(f, CC(guest_feature_select), 4, 1);
    bar4_write(f, CC(guest_feature), 4, acked >> 32);
    bar4_write(f, CC(device_status), 1, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
               VIRTIO_CONFIG_S_FEATURES_OK);
    g_assert_cmphex(bar4_read(f, CC(device_status), 1) & VIRTIO_CONFIG_S_FEATURES_OK, !=, 0);
    for (unsigned q = 0; q < 3; q++) {
        uint64_t g = ring_gpa[q];

        bar4_write(f, CC(queue_select), 2, q);
        memset(ram(f, g), 0, 0x3000);
        vring_driver_init(&f->vq[q], &f->mem, q < 2 ? 256 : 64, false, g, g + 0x1000, g + 0x2000);
        bar4_write(f, CC(queue_size), 2, f->vq[q].num);
        bar4_write(f, CC(queue_desc_lo), 4, (uint32_t)g);
        bar4_write(f, CC(queue_desc_hi), 4, g >> 32);
        bar4_write(f, CC(queue_avail_lo), 4, (uint32_t)(g + 0x1000));
        bar4_write(f, CC(queue_avail_hi), 4, (g + 0x1000) >> 32);
        bar4_write(f, CC(queue_used_lo), 4, (uint32_t)(g + 0x2000));
        bar4_write(f, CC(queue_used_hi), 4, (g + 0x2000) >> 32);
        bar4_write(f, CC(queue_msix_vector), 2, VIRTIO_MSI_NO_VECTOR);
        bar4_write(f, CC(queue_enable), 2, 1);
    }
    post_rx(f, RXBUF_GPA);
    bar4_write(f, CC(device_status), 1, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
               VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
    g_assert_cmphex(bar4_read(f, CC(device_status), 1) & VIRTIO_CONFIG_S_NEEDS_RESET, ==, 0);
    return acked;
}


/* A frame behind a zero 12-byte header in one TX descriptor. */
static void post_tx(Fx *f, const uint8_t *frame, size_t len)
{
    uint8_t *buf = ram(f, TXBUF_GPA);
    VringBuf b = { .addr = TXBUF_GPA, .len = 12 + len };

    memset(buf, 0, 12);
    memcpy(buf + 12, frame, len);
    vring_add(&f->vq[1], &b, 1);
    notify(f, 1);
}

static uint16_t used_idx(Fx *f, unsigned q)
{
    return vring_split_used_idx(&f->vq[q]);
}

static unsigned intx_gsi(Fx *f)
{
    return qnic_pci_intx_gsi(f->pd->devfn, qnic_pci_get_byte(f->pd, PCI_INTERRUPT_PIN));
}

static void fx_init(Fx *f, const char *netdev)
{
    QnicMachineConfig cfg = { .ram_size = 32 * 1024 * 1024, .set_gsi = on_gsi, .opaque = f };
    g_autoptr(GError) err = NULL;

    memset(f, 0, sizeof(*f));
    cfg.backends = test_backends();
    f->m = qnic_machine_new(&cfg, &err);
    g_assert_no_error(err);
    f->mem = vring_host_machine_mem(&f->ram, f->m, cfg.ram_size);
    f->nd = qnic_netdev_add_str(test_backends(), netdev, &err);
    g_assert_no_error(err);
    g_assert_nonnull(f->nd);
    f->dev = qnic_device_create_str(f->m, "virtio-net-pci,netdev=vk0,addr=4,disable-legacy=on",
                                    &err);
    g_assert_no_error(err);
    f->pd = (QnicPciDevice *)f->dev;
    qnic_pci_config_write(f->pd, PCI_BASE_ADDRESS_0, IO_BASE, 4);
    qnic_pci_config_write(f->pd, PCI_BASE_ADDRESS_4, (uint32_t)BAR4_BASE, 4);
    qnic_pci_config_write(f->pd, PCI_BASE_ADDRESS_5, BAR4_BASE >> 32, 4);
    qnic_pci_config_write(f->pd, PCI_COMMAND,
                          PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 2);
}

static void fx_free(Fx *f)
{
    qnic_device_destroy(f->dev);
    qnic_netdev_del(f->nd);
    qnic_machine_free(f->m);
}

/* ---- host side of the tap: a packet socket on the interface ---- */

static int packet_socket(const char *ifname)
{
    struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL) };
    int s = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, htons(ETH_P_ALL));

    g_assert_cmpint(s, >=, 0);
    sll.sll_ifindex = if_nametoindex(ifname);
    g_assert_cmpint(sll.sll_ifindex, >, 0);
    g_assert_cmpint(bind(s, (struct sockaddr *)&sll, sizeof(sll)), ==, 0);
    return s;
}

static size_t test_frame_with(uint8_t *f, uint16_t tag)
{
    static const uint8_t dst[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
    static const uint8_t src[6] = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x77 };

    memcpy(f, dst, 6);
    memcpy(f + 6, src, 6);
    f[12] = 0x88;               /* local experimental ethertype 88B5 */
    f[13] = 0xb5;
    memset(f + 14, 0, 46);
    f[14] = tag >> 8;
    f[15] = tag & 0xff;
    memcpy(f + 16, "qnic-vhost-kernel", 17);
    return 60;
}

static bool fd_readable(int fd, int ms)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    return poll(&p, 1, ms) == 1 && (p.revents & POLLIN);
}

typedef struct {
    Fx *f;
    unsigned q;
    uint16_t want;
} UsedWait;

static bool cond_used(void *opaque)
{
    UsedWait *w = opaque;
    return used_idx(w->f, w->q) >= w->want;
}

typedef struct {
    int sock;
    uint16_t tag;
} SockWait;

static bool cond_sock_frame(void *opaque)
{
    SockWait *w = opaque;
    uint8_t buf[2048];
    ssize_t n;

    while ((n = recv(w->sock, buf, sizeof(buf), 0)) > 0) {
        if (n >= 33 && buf[12] == 0x88 && buf[13] == 0xb5 && buf[14] == (w->tag >> 8) &&
            buf[15] == (w->tag & 0xff) && !memcmp(buf + 16, "qnic-vhost-kernel", 17)) {
            return true;
        }
    }
    return false;
}

static bool cond_gsi(void *opaque)
{
    Fx *f = opaque;
    return f->gsi_level[intx_gsi(f)];
}

/* ---- the tests (each in a child with its own network namespace) ---- */

static bool child_netns(void)
{
    if (unshare(CLONE_NEWNET) < 0) {
        printf("cannot make a network namespace: %s\n", g_strerror(errno));
        return false;
    }
    test_sh("sysctl -qw net.ipv6.conf.default.disable_ipv6=1 2>/dev/null");
    test_sh("sysctl -qw net.ipv6.conf.all.disable_ipv6=1 2>/dev/null");
    return true;
}

static void fake_lifecycle_child(void)
{
    Fx f;
    uint64_t acked, sent;
    unsigned mark;
    int tapfd, sock;
    uint8_t frame[64];
    size_t len;
    QnicVhostDev *hd;
    uint64_t cnt;

    g_assert_true(child_netns());
    fk_reset();
    qnic_vhost_kernel_set_ops(&fake_ops);
    fx_init(&f, "tap,id=vk0,ifname=" IFNAME ",script=no,downscript=no,vhost=on");

    /* init: one /dev/vhost-net for the one queue pair */
    g_assert_cmpint(fk.opens, ==, 1);
    fk_expect(0, (const char *const[]){ "SET_OWNER", "GET_FEATURES", NULL });
    hd = qnic_vhost_net_get(f.nd->ncs[0]);
    g_assert_nonnull(hd);
    g_assert_cmpstr(hd->ops->name, ==, "vhost-net");
    g_assert_false(hd->backend_features & (1ull << VHOST_NET_F_VIRTIO_NET_HDR));
    g_assert_cmpint(test_sh("ip link set " IFNAME " up"), ==, 0);
    sock = packet_socket(IFNAME);

    /* DRIVER_OK: the rings go to the kernel */
    mark = fk.log->len;
    acked = driver_up(&f);
    sent = acked & FAKE_KERNEL_FEATURES & ~(1ull << VHOST_NET_F_VIRTIO_NET_HDR);
    {
        g_autofree char *sf = g_strdup_printf("SET_FEATURES 0x%" PRIx64, sent);
        fk_expect(mark, (const char *const[]){
            "TUNSETVNETHDRSZ 12", sf, "SET_MEM_TABLE 1",
            "SET_VRING_NUM 0 256", "SET_VRING_BASE 0 0", "SET_VRING_ADDR 0",
            "SET_VRING_KICK 0", "SET_VRING_CALL 0",
            "SET_VRING_NUM 1 256", "SET_VRING_BASE 1 0", "SET_VRING_ADDR 1",
            "SET_VRING_KICK 1", "SET_VRING_CALL 1",
            "SET_BACKEND 0 tap", "SET_BACKEND 1 tap", NULL });
    }
    /* the offloads the driver took are the tap's, not sent to the kernel */
    g_assert_true(acked & (1ull << VIRTIO_NET_F_CSUM));
    g_assert_false(fk.features & (1ull << VIRTIO_NET_F_CSUM));
    g_assert_true(fk.features & (1ull << VIRTIO_F_VERSION_1));
    g_assert_true(fk.features & (1ull << VIRTIO_NET_F_MRG_RXBUF));
    /* guest RAM as this process maps it */
    g_assert_cmpuint(fk.nregions, ==, 1);
    g_assert_cmphex(fk.regions[0].guest_phys_addr, ==, 0);
    g_assert_cmphex(fk.regions[0].memory_size, ==, 32 * 1024 * 1024);
    g_assert_cmphex(fk.regions[0].userspace_addr, ==, (uint64_t)(uintptr_t)ram(&f, 0));
    for (unsigned r = 0; r < 2; r++) {
        uint64_t lo = fk.regions[0].userspace_addr;
        g_assert_cmpuint(fk.num[r], ==, 256);
        g_assert_cmphex(fk.desc[r], ==, (uint64_t)(uintptr_t)ram(&f, ring_gpa[r]));
        g_assert_cmphex(fk.avail[r], ==, (uint64_t)(uintptr_t)ram(&f, ring_gpa[r] + 0x1000));
        g_assert_cmphex(fk.used[r], ==, (uint64_t)(uintptr_t)ram(&f, ring_gpa[r] + 0x2000));
        g_assert_cmphex(fk.used[r], <, lo + fk.regions[0].memory_size);
        g_assert_cmpint(fcntl(fk.kick[r], F_GETFD), >=, 0);
        g_assert_cmpint(fcntl(fk.call[r], F_GETFD), >=, 0);
        g_assert_cmpint(fk.backend[r], >=, 0);
    }
    g_assert_cmpint(fk.backend[0], ==, fk.backend[1]);
    tapfd = fk.backend[0];
    /* the tap's header is the driver's: VERSION_1 -> 12 bytes */
    {
        int hl = 0;
        g_assert_cmpint(ioctl(tapfd, TUNGETVNETHDRSZ, &hl), ==, 0);
        g_assert_cmpint(hl, ==, 12);
    }

    /* the driver's notify -> the kick eventfd */
    for (unsigned r = 0; r < 2; r++) {
        if (fd_readable(fk.kick[r], 0)) {
            g_assert_cmpint(read(fk.kick[r], &cnt, 8), ==, 8);   /* qnic's hand-over kick */
        }
        notify(&f, r);
        test_pump(50, NULL, NULL);
        g_assert_true(fd_readable(fk.kick[r], 0));
        g_assert_cmpint(read(fk.kick[r], &cnt, 8), ==, 8);
        g_assert_cmpuint(cnt, >=, 1);
    }
    /* the kernel's call -> ISR bit and INTx */
    g_assert_cmpint(f.gsi_level[intx_gsi(&f)], ==, 0);
    cnt = 1;
    g_assert_cmpint(write(fk.call[0], &cnt, 8), ==, 8);
    g_assert_true(test_pump(2000, cond_gsi, &f));
    g_assert_cmphex(bar4_read(&f, 0x1000, 1) & 1, ==, 1);
    g_assert_cmpint(f.gsi_level[intx_gsi(&f)], ==, 0);   /* the ISR read lowers it */

    /* qnic does not read the tap while the kernel owns it */
    len = test_frame_with(frame, 1);
    g_assert_cmpint(send(sock, frame, len, 0), ==, (ssize_t)len);
    test_pump(200, NULL, NULL);
    g_assert_true(fd_readable(tapfd, 0));
    g_assert_cmpuint(used_idx(&f, 0), ==, 0);

    /* reset: the rings come back (GET_VRING_BASE's answer is the index) */
    fk.base[0] = 0;
    fk.base[1] = 0;
    mark = fk.log->len;
    bar4_write(&f, CC(device_status), 1, 0);
    fk_expect(mark, (const char *const[]){ "SET_BACKEND 0 -1", "GET_VRING_BASE 0",
                                           "SET_BACKEND 1 -1", "GET_VRING_BASE 1", NULL });
    /* qnic's reader takes the tap back: the frame the kernel left there is
     * read, and held for the driver (no DRIVER_OK yet) */
    {
        int tries = 0;
        while (fd_readable(tapfd, 0) && tries++ < 200) {
            test_pump(10, NULL, NULL);
        }
        g_assert_false(fd_readable(tapfd, 0));
    }

    /* re-init with a kernel that refuses the memory table: qnic runs the
     * queues itself (as QEMU falls back to userspace virtio) */
    fk.fail_req = VHOST_SET_MEM_TABLE;
    fk.fail_errno = ENOMEM;
    mark = fk.log->len;
    driver_up(&f);
    g_assert_cmpuint(fk.log->len, ==, mark + 2);       /* TUNSETVNETHDRSZ, SET_FEATURES */
    g_assert_cmpint(fk.backend[0], ==, -1);
    /* TX: driver -> qnic -> tap -> the packet socket */
    {
        SockWait w = { sock, 2 };
        UsedWait u = { &f, 1, 1 };
        len = test_frame_with(frame, 2);
        post_tx(&f, frame, len);
        g_assert_true(test_pump(2000, cond_used, &u));
        g_assert_true(test_pump(2000, cond_sock_frame, &w));
    }
    /* RX: the frame left in the tap while the kernel had it, then a new
     * one: packet socket -> tap -> qnic -> the driver's buffers */
    {
        UsedWait u = { &f, 0, 1 };
        uint8_t *b = ram(&f, RXBUF_GPA);
        g_assert_true(test_pump(2000, cond_used, &u));
        g_assert_cmpint(b[12 + 15], ==, 1);
        g_assert_cmpmem(b + 12 + 16, 17, "qnic-vhost-kernel", 17);

        post_rx(&f, RXBUF_GPA + 0x1000);
        b = ram(&f, RXBUF_GPA + 0x1000);
        u.want = 2;
        len = test_frame_with(frame, 3);
        g_assert_cmpint(send(sock, frame, len, 0), ==, (ssize_t)len);
        g_assert_true(test_pump(2000, cond_used, &u));
        g_assert_cmpint(b[12 + 14], ==, 0);
        g_assert_cmpint(b[12 + 15], ==, 3);
        g_assert_cmpmem(b + 12 + 16, 17, "qnic-vhost-kernel", 17);
    }
    /* no ring was handed over a second time */
    for (unsigned i = mark; i < fk.log->len; i++) {
        g_assert_null(strstr(g_ptr_array_index(fk.log, i), "SET_BACKEND"));
    }

    close(sock);
    fx_free(&f);
    /* the vhost-net fd is closed with the netdev */
    g_assert_cmpint(fk.fds[0], ==, -1);
    qnic_vhost_kernel_set_ops(NULL);
}

static void test_fake_lifecycle(void)
{
    if (g_test_subprocess()) {
        fake_lifecycle_child();
        return;
    }
    test_trap_tun_child("/vhost-kernel/fake/lifecycle");
}

/* vhostfds= hands in one fd per queue; no /dev/vhost-net is opened. */
static void vhostfds_child(void)
{
    g_autoptr(GError) err = NULL;
    int a = eventfd(0, EFD_CLOEXEC), b = eventfd(0, EFD_CLOEXEC);
    g_autofree char *opts = NULL;
    QnicNetdev *nd;

    g_assert_true(child_netns());
    fk_reset();
    fk.fds[0] = a;
    fk.fds[1] = b;
    fk.nfds = 2;
    qnic_vhost_kernel_set_ops(&fake_ops);
    opts = g_strdup_printf("tap,id=vq0,ifname=qvq0,script=no,downscript=no,queues=2,"
                           "vhostfds=%d:%d", a, b);
    nd = qnic_netdev_add_str(test_backends(), opts, &err);
    g_assert_no_error(err);
    g_assert_cmpint(fk.opens, ==, 0);
    fk_expect(0, (const char *const[]){ "SET_OWNER", "GET_FEATURES",
                                        "SET_OWNER", "GET_FEATURES", NULL });
    g_assert_true(qnic_vhost_net_get(nd->ncs[0]) == qnic_vhost_net_get(nd->ncs[1]));
    g_assert_cmpuint(qnic_vhost_net_get(nd->ncs[0])->nvqs, ==, 4);
    qnic_netdev_del(nd);
    g_assert_cmpint(fk.fds[0], ==, -1);
    g_assert_cmpint(fk.fds[1], ==, -1);

    /* the count must match the queues */
    g_clear_error(&err);
    g_free(opts);
    opts = g_strdup_printf("tap,id=vq1,ifname=qvq1,script=no,downscript=no,queues=2,vhostfds=%d",
                           eventfd(0, EFD_CLOEXEC));
    g_assert_null(qnic_netdev_add_str(test_backends(), opts, &err));
    g_assert_nonnull(strstr(err->message, "vhostfds= has 1 file descriptors but the tap has 2"));
    /* SET_OWNER refused */
    g_clear_error(&err);
    fk_reset();
    fk.fail_req = VHOST_SET_OWNER;
    fk.fail_errno = EBUSY;
    qnic_vhost_kernel_set_ops(&fake_ops);
    g_assert_null(qnic_netdev_add_str(test_backends(), "tap,id=vq2,ifname=qvq2,script=no,downscript=no,vhost=on",
                                      &err));
    g_assert_cmpstr(err->message, ==, "vhost-net requested but could not be initialized: "
                    "vhost-net: VHOST_SET_OWNER: Device or resource busy");
    g_assert_cmpint(fk.fds[0], ==, -1);
    qnic_vhost_kernel_set_ops(NULL);
}

static void test_vhostfds(void)
{
    if (g_test_subprocess()) {
        vhostfds_child();
        return;
    }
    test_trap_tun_child("/vhost-kernel/fake/vhostfds");
}

static void missing_child(void)
{
    g_autoptr(GError) err = NULL;

    g_assert_true(child_netns());
    qnic_vhost_kernel_set_ops(NULL);
    g_assert_null(qnic_netdev_add_str(test_backends(), "tap,id=mv0,ifname=qmv0,script=no,downscript=no,vhost=on",
                                      &err));
    printf("%s\n", err->message);
}

/* Real system calls, no /dev/vhost-net: QEMU's clear refusal. */
static void test_missing_device(void)
{
    if (g_test_subprocess()) {
        missing_child();
        return;
    }
    if (access("/dev/vhost-net", F_OK) == 0) {
        g_test_skip("/dev/vhost-net is present: its absence cannot be tested here");
        return;
    }
    if (test_need_tun()) {
        g_test_skip(test_need_tun());
        return;
    }
    g_test_trap_subprocess("/vhost-kernel/real/missing", 30 * G_USEC_PER_SEC, 0);
    g_test_trap_assert_passed();
    g_test_trap_assert_stdout("vhost-net requested but could not be initialized: "
                              "/dev/vhost-net: No such file or directory\n");
}

static void real_child(void)
{
    g_autoptr(GError) err = NULL;
    QnicNetdev *nd;
    QnicVhostDev *hd;

    g_assert_true(child_netns());
    qnic_vhost_kernel_set_ops(NULL);
    nd = qnic_netdev_add_str(test_backends(), "tap,id=rv0,ifname=qrv0,script=no,downscript=no,vhost=on", &err);
    g_assert_no_error(err);
    hd = qnic_vhost_net_get(nd->ncs[0]);
    g_assert_nonnull(hd);
    g_assert_true(hd->backend_features & (1ull << VIRTIO_F_VERSION_1));
    g_assert_false(hd->backend_features & (1ull << VIRTIO_F_RING_PACKED));
    qnic_netdev_del(nd);
}

/* The real kernel: SET_OWNER and GET_FEATURES on /dev/vhost-net. */
static void test_real_device(void)
{
    if (g_test_subprocess()) {
        real_child();
        return;
    }
    if (access("/dev/vhost-net", R_OK | W_OK) != 0) {
        g_test_skip("/dev/vhost-net not present");
        return;
    }
    test_trap_tun_child("/vhost-kernel/real/device");
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    qnic_bql_lock();
    g_test_add_func("/vhost-kernel/fake/lifecycle", test_fake_lifecycle);
    g_test_add_func("/vhost-kernel/fake/vhostfds", test_vhostfds);
    g_test_add_func("/vhost-kernel/real/missing", test_missing_device);
    g_test_add_func("/vhost-kernel/real/device", test_real_device);
    return g_test_run();
}
