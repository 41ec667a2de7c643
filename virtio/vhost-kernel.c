/*
 * vhost-net, the Linux kernel's virtio-net data path (`-netdev
 * tap,vhost=on`): the vhost ops (qnic/vhost.h) as ioctls on one
 * /dev/vhost-net fd per queue pair, whose rings are 0 = RX and 1 = TX, so
 * qnic's queue idx is ring idx % 2 of fd idx / 2. The kernel moves frames
 * between the rings and the tap queue given with VHOST_NET_SET_BACKEND,
 * which is how a ring is enabled (the tap fd) and disabled (-1); while a
 * pair is attached the tap's owner must not read that tap queue itself.
 * The tap carries the virtio-net header (VHOST_NET_F_VIRTIO_NET_HDR is
 * never acked), so its header length follows the features the driver
 * negotiated. Checksum and segmentation offloads are the tap's business,
 * not the kernel ring code's: they are added to what the kernel offers.
 * Every system call goes through a small ops table so tests can put a
 * fake kernel under it.
 */
#include "qnic/vhost-kernel.h"
#include "qnic/log.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/vhost.h>
#include <linux/if_tun.h>
#include <linux/virtio_net.h>
#include <linux/virtio_config.h>

/* Implemented by the tap (through its vnet header and TUNSETOFFLOAD), so
 * offered on behalf of the kernel, which does not list them. MTU is only
 * configuration space. */
#define TAP_FEATURES ((1ull << VIRTIO_NET_F_CSUM) | (1ull << VIRTIO_NET_F_GUEST_CSUM) | \
                      (1ull << VIRTIO_NET_F_GSO) | (1ull << VIRTIO_NET_F_GUEST_TSO4) |   \
                      (1ull << VIRTIO_NET_F_GUEST_TSO6) | (1ull << VIRTIO_NET_F_GUEST_ECN) | \
                      (1ull << VIRTIO_NET_F_GUEST_UFO) | (1ull << VIRTIO_NET_F_HOST_TSO4) | \
                      (1ull << VIRTIO_NET_F_HOST_TSO6) | (1ull << VIRTIO_NET_F_HOST_ECN) | \
                      (1ull << VIRTIO_NET_F_HOST_UFO) | (1ull << VIRTIO_NET_F_MTU))
/* Kernel features qnic never acks: the header is the tap's, and qnic does
 * not log dirty pages. */
#define NEVER_ACKED ((1ull << VHOST_NET_F_VIRTIO_NET_HDR) | (1ull << VHOST_F_LOG_ALL))

struct QnicVhostKernel {
    unsigned pairs;
    int *fds;                   /* [pairs] /dev/vhost-net */
    int *tap_fds;               /* [pairs] */
    bool *attached;             /* [2 * pairs] SET_BACKEND with the tap fd */
    uint64_t kernel_features;   /* VHOST_GET_FEATURES */
    QnicVhostDev *hd;
    QnicVhostKernelAttachFunc *attach;
    void *opaque;
};

static int real_open(const char *path, int flags)
{
    return open(path, flags);
}

static int real_ioctl(int fd, unsigned long request, void *arg)
{
    return ioctl(fd, request, arg);
}

static int real_close(int fd)
{
    return close(fd);
}

static const QnicVhostKernelOps real_ops = {
    .open = real_open,
    .ioctl = real_ioctl,
    .close = real_close,
};

static const QnicVhostKernelOps *kops = &real_ops;

void qnic_vhost_kernel_set_ops(const QnicVhostKernelOps *ops)
{
    kops = ops ? ops : &real_ops;
}

static QnicVhostKernel *vk_of(QnicVhostDev *hd)
{
    return hd->be;
}

/* One ioctl; on failure errp names the request, the queue and errno. */
static bool vk_ioctl(int fd, unsigned long req, const char *name, int queue, void *arg,
                     GError **errp)
{
    int r;

    do {
        r = kops->ioctl(fd, req, arg);
    } while (r < 0 && errno == EINTR);
    if (r < 0) {
        if (queue >= 0) {
            qnic_error_setg_errno(errp, errno, "vhost-net: %s (queue %d)", name, queue);
        } else {
            qnic_error_setg_errno(errp, errno, "vhost-net: %s", name);
        }
        return false;
    }
    return true;
}

static bool vk_ring(QnicVhostDev *hd, unsigned idx, int *fd, unsigned *ring, GError **errp)
{
    QnicVhostKernel *k = vk_of(hd);

    if (idx / 2 >= k->pairs) {
        qnic_error_setg(errp, "vhost-net: queue %u has no vhost-net device", idx);
        return false;
    }
    *fd = k->fds[idx / 2];
    *ring = idx % 2;
    return true;
}

static bool op_set_features(QnicVhostDev *hd, uint64_t features, GError **errp)
{
    QnicVhostKernel *k = vk_of(hd);
    uint64_t f = features & k->kernel_features & ~NEVER_ACKED;
    int hdr_len = (features & ((1ull << VIRTIO_NET_F_MRG_RXBUF) | (1ull << VIRTIO_F_VERSION_1)))
                  ? (int)sizeof(struct virtio_net_hdr_mrg_rxbuf)
                  : (int)sizeof(struct virtio_net_hdr);

    for (unsigned i = 0; i < k->pairs; i++) {
        /* The kernel reads and writes the header on the tap: its length is
         * the driver's. */
        if (!vk_ioctl(k->tap_fds[i], TUNSETVNETHDRSZ, "TUNSETVNETHDRSZ on the tap", (int)(2 * i),
                      &hdr_len, errp) ||
            !vk_ioctl(k->fds[i], VHOST_SET_FEATURES, "VHOST_SET_FEATURES", -1, &f, errp)) {
            return false;
        }
    }
    return true;
}

static bool op_set_mem_table(QnicVhostDev *hd, QnicMachine *m, GError **errp)
{
    QnicVhostKernel *k = vk_of(hd);
    QnicRegion *rams[2] = { &m->ram_low, &m->ram_high };
    g_autofree struct vhost_memory *mem =
        g_malloc0(sizeof(*mem) + 2 * sizeof(struct vhost_memory_region));
    unsigned n = 0;

    for (unsigned i = 0; i < 2; i++) {
        QnicRegion *r = rams[i];
        if (!r->size || !r->ram) {
            continue;
        }
        mem->regions[n].guest_phys_addr = r->addr;
        mem->regions[n].memory_size = r->size;
        mem->regions[n].userspace_addr = (uint64_t)(uintptr_t)r->ram;
        n++;
    }
    if (!n) {
        qnic_error_setg(errp, "vhost-net: the machine has no RAM to map");
        return false;
    }
    mem->nregions = n;
    for (unsigned i = 0; i < k->pairs; i++) {
        if (!vk_ioctl(k->fds[i], VHOST_SET_MEM_TABLE, "VHOST_SET_MEM_TABLE", -1, mem, errp)) {
            return false;
        }
    }
    return true;
}

static bool set_state(QnicVhostDev *hd, unsigned long req, const char *name, unsigned idx,
                      unsigned num, GError **errp)
{
    struct vhost_vring_state st;
    unsigned ring;
    int fd;

    if (!vk_ring(hd, idx, &fd, &ring, errp)) {
        return false;
    }
    st.index = ring;
    st.num = num;
    return vk_ioctl(fd, req, name, (int)idx, &st, errp);
}

static bool op_set_vring_num(QnicVhostDev *hd, unsigned idx, unsigned num, GError **errp)
{
    return set_state(hd, VHOST_SET_VRING_NUM, "VHOST_SET_VRING_NUM", idx, num, errp);
}

static bool op_set_vring_base(QnicVhostDev *hd, unsigned idx, unsigned base, GError **errp)
{
    return set_state(hd, VHOST_SET_VRING_BASE, "VHOST_SET_VRING_BASE", idx, base, errp);
}

static bool op_get_vring_base(QnicVhostDev *hd, unsigned idx, unsigned *base, GError **errp)
{
    struct vhost_vring_state st = { 0 };
    unsigned ring;
    int fd;

    if (!vk_ring(hd, idx, &fd, &ring, errp)) {
        return false;
    }
    st.index = ring;
    if (!vk_ioctl(fd, VHOST_GET_VRING_BASE, "VHOST_GET_VRING_BASE", (int)idx, &st, errp)) {
        return false;
    }
    *base = st.num & 0xffff;
    return true;
}

static bool op_set_vring_addr(QnicVhostDev *hd, unsigned idx, uint64_t desc, uint64_t avail,
                              uint64_t used, GError **errp)
{
    struct vhost_vring_addr a = { 0 };
    unsigned ring;
    int fd;

    if (!vk_ring(hd, idx, &fd, &ring, errp)) {
        return false;
    }
    a.index = ring;
    a.flags = 0;                /* no dirty logging */
    a.desc_user_addr = desc;
    a.avail_user_addr = avail;
    a.used_user_addr = used;
    return vk_ioctl(fd, VHOST_SET_VRING_ADDR, "VHOST_SET_VRING_ADDR", (int)idx, &a, errp);
}

static bool set_file(QnicVhostDev *hd, unsigned long req, const char *name, unsigned idx,
                     int file, GError **errp)
{
    struct vhost_vring_file vf;
    unsigned ring;
    int fd;

    if (!vk_ring(hd, idx, &fd, &ring, errp)) {
        return false;
    }
    vf.index = ring;
    vf.fd = file;
    return vk_ioctl(fd, req, name, (int)idx, &vf, errp);
}

static bool op_set_vring_kick(QnicVhostDev *hd, unsigned idx, int fd, GError **errp)
{
    return set_file(hd, VHOST_SET_VRING_KICK, "VHOST_SET_VRING_KICK", idx, fd, errp);
}

static bool op_set_vring_call(QnicVhostDev *hd, unsigned idx, int fd, GError **errp)
{
    return set_file(hd, VHOST_SET_VRING_CALL, "VHOST_SET_VRING_CALL", idx, fd, errp);
}

static unsigned pair_attached(QnicVhostKernel *k, unsigned pair)
{
    return k->attached[2 * pair] + k->attached[2 * pair + 1];
}

/* A ring runs once the kernel has a tap to move its frames through. */
static bool op_set_vring_enable(QnicVhostDev *hd, unsigned idx, bool enable, GError **errp)
{
    QnicVhostKernel *k = vk_of(hd);
    unsigned pair = idx / 2;
    unsigned before;

    if (pair >= k->pairs) {
        qnic_error_setg(errp, "vhost-net: queue %u has no vhost-net device", idx);
        return false;
    }
    if (k->attached[idx] == enable) {
        return true;
    }
    before = pair_attached(k, pair);
    if (enable && before == 0 && k->attach) {
        /* qnic's reader lets go of the tap before the kernel takes it */
        k->attach(k->opaque, pair, true);
    }
    if (!set_file(hd, VHOST_NET_SET_BACKEND, "VHOST_NET_SET_BACKEND", idx,
                  enable ? k->tap_fds[pair] : -1, errp)) {
        if (enable && before == 0 && k->attach) {
            k->attach(k->opaque, pair, false);
        }
        return false;
    }
    k->attached[idx] = enable;
    if (!enable && pair_attached(k, pair) == 0 && k->attach) {
        k->attach(k->opaque, pair, false);
    }
    return true;
}

static const QnicVhostOps vhost_kernel_ops = {
    .name = "vhost-net",
    .set_features = op_set_features,
    .set_mem_table = op_set_mem_table,
    .set_vring_num = op_set_vring_num,
    .set_vring_base = op_set_vring_base,
    .get_vring_base = op_get_vring_base,
    .set_vring_addr = op_set_vring_addr,
    .set_vring_kick = op_set_vring_kick,
    .set_vring_call = op_set_vring_call,
    .set_vring_enable = op_set_vring_enable,
};

QnicVhostKernel *qnic_vhost_kernel_new(unsigned pairs, const int *tap_fds, const int *vhost_fds,
                                       QnicVhostKernelAttachFunc *attach, void *opaque,
                                       GError **errp)
{
    QnicVhostKernel *k = g_new0(QnicVhostKernel, 1);
    GError *err = NULL;

    k->pairs = pairs;
    k->fds = g_new(int, pairs);
    k->tap_fds = g_new(int, pairs);
    k->attached = g_new0(bool, 2 * pairs);
    k->attach = attach;
    k->opaque = opaque;
    for (unsigned i = 0; i < pairs; i++) {
        k->fds[i] = -1;
        k->tap_fds[i] = tap_fds[i];
    }
    for (unsigned i = 0; i < pairs; i++) {
        uint64_t f = 0;

        if (vhost_fds && vhost_fds[i] >= 0) {
            k->fds[i] = vhost_fds[i];
        } else {
            k->fds[i] = kops->open(QNIC_VHOST_NET_PATH, O_RDWR | O_CLOEXEC);
            if (k->fds[i] < 0) {
                qnic_error_setg(&err, "%s: %s", QNIC_VHOST_NET_PATH, g_strerror(errno));
                goto fail;
            }
        }
        if (!vk_ioctl(k->fds[i], VHOST_SET_OWNER, "VHOST_SET_OWNER", -1, NULL, &err) ||
            !vk_ioctl(k->fds[i], VHOST_GET_FEATURES, "VHOST_GET_FEATURES", -1, &f, &err)) {
            goto fail;
        }
        /* every pair's device is the same kernel: what one lacks, all lack */
        k->kernel_features = i ? (k->kernel_features & f) : f;
    }
    k->hd = qnic_vhost_dev_new(&vhost_kernel_ops, k, 2 * pairs);
    k->hd->max_queue_pairs = pairs;
    k->hd->backend_features = (k->kernel_features & ~NEVER_ACKED) | TAP_FEATURES;
    k->hd->connected = true;
    qnic_log(QNIC_LOG_VHOST, "vhost-net: %u queue pair(s), kernel features 0x%" PRIx64, pairs,
             k->kernel_features);
    return k;

fail:
    g_set_error(errp, QNIC_ERROR, QNIC_ERROR_UNSUPPORTED,
                "vhost-net requested but could not be initialized: %s", err->message);
    g_error_free(err);
    /* given fds are ours from the start, as QEMU takes them over */
    for (unsigned i = 0; i < pairs; i++) {
        if (k->fds[i] >= 0) {
            kops->close(k->fds[i]);
        } else if (vhost_fds && vhost_fds[i] >= 0) {
            kops->close(vhost_fds[i]);
        }
    }
    g_free(k->fds);
    g_free(k->tap_fds);
    g_free(k->attached);
    g_free(k);
    return NULL;
}

void qnic_vhost_kernel_free(QnicVhostKernel *k)
{
    if (!k) {
        return;
    }
    /* rings back to qnic (SET_BACKEND -1, GET_VRING_BASE) while the fds
     * are open */
    qnic_vhost_dev_free(k->hd);
    for (unsigned i = 0; i < k->pairs; i++) {
        if (k->fds[i] >= 0) {
            kops->close(k->fds[i]);
        }
    }
    g_free(k->fds);
    g_free(k->tap_fds);
    g_free(k->attached);
    g_free(k);
}

QnicVhostDev *qnic_vhost_kernel_dev(QnicVhostKernel *k)
{
    return k ? k->hd : NULL;
}

uint64_t qnic_vhost_kernel_features(QnicVhostKernel *k)
{
    return k->kernel_features;
}
