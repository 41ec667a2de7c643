/*
 * vhost-vdpa (qnic/vhost-vdpa.h): the vhost ops of qnic/vhost.h as the
 * vhost-vdpa ioctls and IOTLB messages on one /dev/vhost-vdpa-N. A vDPA
 * device is a whole virtio device, so beyond what vhost-net needs this
 * file drives its status (ACKNOWLEDGE | DRIVER at bring-up and after each
 * reset, FEATURES_OK after SET_FEATURES, DRIVER_OK once every ring is
 * handed over), maps guest memory into its IOTLB (IOVA = guest-physical
 * address, so ring and buffer addresses are the driver's own), and keeps a
 * shadow control queue of its own (vhost-vdpa-cvq.c) through which the
 * guest's control commands, which qnic's virtio-net already applied, reach
 * the device. Every reply of the device is checked before use: a device
 * is hardware or another process's code, not something qnic trusts.
 */
#include "vhost-vdpa-internal.h"
#include "qnic/log.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

/* Backend features qnic uses when the device offers them. */
#define WANTED_BACKEND_FEATURES ((1ull << VHOST_BACKEND_F_IOTLB_MSG_V2) | \
                                 (1ull << VHOST_BACKEND_F_IOTLB_BATCH) | \
                                 (1ull << VHOST_BACKEND_F_IOTLB_ASID) | \
                                 (1ull << VHOST_BACKEND_F_SUSPEND))

/* Device features qnic acks on its own behalf (the shadow control queue's
 * and what describes the device rather than the guest's data path). */
#define QNIC_OWN_FEATURES ((1ull << VIRTIO_NET_F_CTRL_VQ) | (1ull << VIRTIO_NET_F_CTRL_RX) | \
                           (1ull << VIRTIO_NET_F_CTRL_MAC_ADDR) | (1ull << VIRTIO_NET_F_MQ) | \
                           (1ull << VIRTIO_NET_F_CTRL_RX_EXTRA) | (1ull << VIRTIO_NET_F_MAC) | \
                           (1ull << VIRTIO_NET_F_STATUS) | (1ull << VIRTIO_F_VERSION_1) | \
                           (1ull << VIRTIO_F_ACCESS_PLATFORM))

/* ---- the real device files ---- */

static void *real_open(void *ctx, const char *path, int fd, const QnicVdpaOps **ops,
                       GError **errp);
static void real_close(void *ctx, void *dev);

static int real_ioctl(void *dev, unsigned long req, void *arg)
{
    int r;

    do {
        r = ioctl((int)(intptr_t)dev, req, arg);
    } while (r < 0 && errno == EINTR);
    return r < 0 ? -errno : 0;
}

static ssize_t real_write(void *dev, const void *buf, size_t len)
{
    ssize_t r;

    do {
        r = write((int)(intptr_t)dev, buf, len);
    } while (r < 0 && errno == EINTR);
    return r < 0 ? -errno : r;
}

static const QnicVdpaOps real_ops = { .ioctl = real_ioctl, .write = real_write };
static const QnicVdpaOpener real_opener = { .open = real_open, .close = real_close };
static const QnicVdpaOpener *opener = &real_opener;

static void *real_open(void *ctx, const char *path, int fd, const QnicVdpaOps **ops,
                       GError **errp)
{
    if (path) {
        fd = open(path, O_RDWR | O_CLOEXEC);
        if (fd < 0) {
            /* QEMU 7.2's words (qemu_open) */
            qnic_error_setg_errno(errp, errno, "Could not open '%s'", path);
            return NULL;
        }
    }
    *ops = &real_ops;
    return (void *)(intptr_t)fd;
}

static void real_close(void *ctx, void *dev)
{
    close((int)(intptr_t)dev);
}

void qnic_vhost_vdpa_set_opener(const QnicVdpaOpener *o)
{
    opener = o ? o : &real_opener;
}

const QnicVdpaOpener *qnic_vhost_vdpa_opener(void)
{
    return opener;
}

/* ---- requests ---- */

bool vdpa_ioctl(QnicVhostVdpa *v, unsigned long req, const char *name, void *arg, GError **errp)
{
    int r = v->ops->ioctl(v->dev, req, arg);

    if (r < 0) {
        qnic_error_setg_errno(errp, -r, "vhost-vdpa '%s': %s", v->name, name);
        return false;
    }
    return true;
}

bool vdpa_iotlb(QnicVhostVdpa *v, uint8_t type, uint64_t iova, uint64_t size, void *host,
                GError **errp)
{
    static const char *const names[] = { "", "MISS", "UPDATE", "INVALIDATE", "ACCESS_FAIL",
                                         "BATCH_BEGIN", "BATCH_END" };
    struct vhost_msg_v2 msg = { .type = VHOST_IOTLB_MSG_V2 };
    ssize_t r;

    msg.iotlb.type = type;
    msg.iotlb.iova = iova;
    msg.iotlb.size = size;
    msg.iotlb.uaddr = (uint64_t)(uintptr_t)host;
    msg.iotlb.perm = type == VHOST_IOTLB_UPDATE ? VHOST_ACCESS_RW : 0;
    r = v->ops->write(v->dev, &msg, sizeof(msg));
    if (r != (ssize_t)sizeof(msg)) {
        qnic_error_setg_errno(errp, r < 0 ? (int)-r : EIO, "vhost-vdpa '%s': IOTLB %s iova "
                              "0x%" PRIx64 " size 0x%" PRIx64, v->name, names[type], iova, size);
        return false;
    }
    return true;
}

bool vdpa_batch(QnicVhostVdpa *v, bool begin, GError **errp)
{
    if (!(v->info.backend_features & (1ull << VHOST_BACKEND_F_IOTLB_BATCH))) {
        return true;
    }
    return vdpa_iotlb(v, begin ? VHOST_IOTLB_BATCH_BEGIN : VHOST_IOTLB_BATCH_END, 0, 0, NULL,
                      errp);
}

static bool set_status(QnicVhostVdpa *v, uint8_t status, GError **errp)
{
    uint8_t now = 0;

    if (!vdpa_ioctl(v, VHOST_VDPA_SET_STATUS, "SET_STATUS", &status, errp)) {
        return false;
    }
    if ((status & VIRTIO_CONFIG_S_FEATURES_OK) && !(v->status & VIRTIO_CONFIG_S_FEATURES_OK)) {
        /* the device may clear FEATURES_OK: it refuses the features */
        if (!vdpa_ioctl(v, VHOST_VDPA_GET_STATUS, "GET_STATUS", &now, errp)) {
            return false;
        }
        if (!(now & VIRTIO_CONFIG_S_FEATURES_OK)) {
            qnic_error_setg(errp, "vhost-vdpa '%s': the device refused features 0x%" PRIx64,
                            v->name, v->acked);
            return false;
        }
    }
    v->status = status;
    return true;
}

/* ---- bring-up ---- */

static bool get_backend_features(QnicVhostVdpa *v, GError **errp)
{
    uint64_t f = 0;

    if (!vdpa_ioctl(v, VHOST_GET_BACKEND_FEATURES, "GET_BACKEND_FEATURES", &f, errp)) {
        return false;
    }
    f &= WANTED_BACKEND_FEATURES;
    if (!(f & (1ull << VHOST_BACKEND_F_IOTLB_MSG_V2))) {
        qnic_error_setg(errp, "vhost-vdpa '%s': the device lacks IOTLB_MSG_V2", v->name);
        return false;
    }
    if (!vdpa_ioctl(v, VHOST_SET_BACKEND_FEATURES, "SET_BACKEND_FEATURES", &f, errp)) {
        return false;
    }
    v->info.backend_features = f;
    return true;
}

/* The virtio-net configuration space: MAC, status, max pairs, MTU. */
static bool get_config(QnicVhostVdpa *v, GError **errp)
{
    struct {
        struct vhost_vdpa_config c;
        uint8_t buf[12];
    } cfg = { .c = { .off = 0, .len = sizeof(cfg.buf) } };
    uint64_t f = v->info.features;

    if (!vdpa_ioctl(v, VHOST_VDPA_GET_CONFIG, "GET_CONFIG", &cfg, errp)) {
        return false;
    }
    memcpy(v->info.mac, cfg.buf, 6);
    v->info.status = (f & (1ull << VIRTIO_NET_F_STATUS)) ? qnic_ld16(cfg.buf + 6)
                                                         : VIRTIO_NET_S_LINK_UP;
    v->info.max_pairs = (f & (1ull << VIRTIO_NET_F_MQ)) ? qnic_ld16(cfg.buf + 8) : 1;
    v->info.mtu = (f & (1ull << VIRTIO_NET_F_MTU)) ? qnic_ld16(cfg.buf + 10) : 0;
    if (v->info.max_pairs < 1 || v->info.max_pairs > VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MAX) {
        qnic_error_setg(errp, "vhost-vdpa '%s': the device reports %u queue pairs", v->name,
                        v->info.max_pairs);
        return false;
    }
    return true;
}

static bool get_limits(QnicVhostVdpa *v, GError **errp)
{
    struct vhost_vdpa_iova_range range = { 0 };
    uint32_t vqs = 0;
    uint16_t num = 0;

    if (!vdpa_ioctl(v, VHOST_VDPA_GET_VQS_COUNT, "GET_VQS_COUNT", &vqs, errp) ||
        !vdpa_ioctl(v, VHOST_VDPA_GET_IOVA_RANGE, "GET_IOVA_RANGE", &range, errp) ||
        !vdpa_ioctl(v, VHOST_VDPA_GET_VRING_NUM, "GET_VRING_NUM", &num, errp)) {
        return false;
    }
    v->info.vqs = vqs;
    v->info.max_ring = num;
    v->info.iova_first = range.first;
    v->info.iova_last = range.last;
    if (range.last < range.first || range.last - range.first < VDPA_CVQ_AREA) {
        qnic_error_setg(errp, "vhost-vdpa '%s': IOVA range 0x%" PRIx64 "-0x%" PRIx64
                        " is too small", v->name, (uint64_t)range.first,
                        (uint64_t)range.last);
        return false;
    }
    if (num < 2 || !QNIC_IS_POW2(num)) {
        qnic_error_setg(errp, "vhost-vdpa '%s': the device's rings take %u entries", v->name,
                        num);
        return false;
    }
    return true;
}

/* The queue pairs qnic hands over, checked against what the device has. */
static bool check_queues(QnicVhostVdpa *v, unsigned pairs, GError **errp)
{
    bool cvq = v->info.features & (1ull << VIRTIO_NET_F_CTRL_VQ);
    unsigned dev_pairs = v->info.max_pairs;

    if (!pairs) {
        pairs = cvq ? dev_pairs : 1;
    }
    if (pairs > dev_pairs || (pairs > 1 && !cvq)) {
        qnic_error_setg_invalid(errp, "vhost-vdpa '%s': queues=%u but the device has %u queue "
                                "pair%s%s", v->name, pairs, dev_pairs, dev_pairs > 1 ? "s" : "",
                                cvq ? "" : " and no control queue");
        return false;
    }
    if (v->info.vqs < 2 * dev_pairs + (cvq ? 1 : 0)) {
        qnic_error_setg(errp, "vhost-vdpa '%s': the device has %u virtqueues for %u queue "
                        "pairs", v->name, v->info.vqs, dev_pairs);
        return false;
    }
    v->info.queue_pairs = pairs;
    v->info.has_cvq = cvq;
    return true;
}

static bool bring_up(QnicVhostVdpa *v, unsigned pairs, GError **errp)
{
    uint32_t id = 0;
    int cfd;

    if (!vdpa_ioctl(v, VHOST_SET_OWNER, "SET_OWNER", NULL, errp) ||
        !vdpa_ioctl(v, VHOST_VDPA_GET_DEVICE_ID, "GET_DEVICE_ID", &id, errp)) {
        return false;
    }
    if (id != VIRTIO_ID_NET) {
        qnic_error_setg_invalid(errp, "vhost-vdpa '%s': device id %u is not a network device",
                                v->name, id);
        return false;
    }
    if (!get_backend_features(v, errp) ||
        !vdpa_ioctl(v, VHOST_GET_FEATURES, "GET_FEATURES", &v->info.features, errp) ||
        !get_config(v, errp) || !get_limits(v, errp) || !check_queues(v, pairs, errp)) {
        return false;
    }
    if (!(v->info.features & (1ull << VIRTIO_F_VERSION_1))) {
        qnic_error_setg(errp, "vhost-vdpa '%s': the device lacks VERSION_1", v->name);
        return false;
    }
    cfd = v->config_fd;
    return vdpa_ioctl(v, VHOST_VDPA_SET_CONFIG_CALL, "SET_CONFIG_CALL", &cfd, errp) &&
           set_status(v, 0, errp) &&
           set_status(v, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER, errp) &&
           (!v->info.has_cvq || vdpa_cvq_map(v, errp));
}

/* ---- the ops table ---- */

static QnicVhostVdpa *vv_of(QnicVhostDev *hd)
{
    return hd->be;
}

static bool op_set_features(QnicVhostDev *hd, uint64_t features, GError **errp)
{
    QnicVhostVdpa *v = vv_of(hd);
    uint64_t f = (features | QNIC_OWN_FEATURES) & v->info.features;

    if (!v->info.has_cvq) {
        f &= ~((1ull << VIRTIO_NET_F_MQ) | (1ull << VIRTIO_NET_F_CTRL_RX) |
               (1ull << VIRTIO_NET_F_CTRL_MAC_ADDR) | (1ull << VIRTIO_NET_F_CTRL_RX_EXTRA));
    }
    v->acked = f;
    return vdpa_ioctl(v, VHOST_SET_FEATURES, "SET_FEATURES", &f, errp) &&
           set_status(v, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
                      VIRTIO_CONFIG_S_FEATURES_OK, errp);
}

bool qnic_vhost_vdpa_update_memory(QnicVhostVdpa *v, QnicMachine *m, GError **errp)
{
    QnicRegion *rams[2] = { &m->ram_low, &m->ram_high };
    VdpaMap fresh[2];
    unsigned n = 0;

    for (unsigned i = 0; i < 2; i++) {
        if (!rams[i]->size || !rams[i]->ram) {
            continue;
        }
        fresh[n] = (VdpaMap){ .iova = rams[i]->addr, .size = rams[i]->size,
                              .host = rams[i]->ram };
        if (v->info.has_cvq && fresh[n].iova + fresh[n].size > v->info.cvq_iova) {
            qnic_error_setg(errp, "vhost-vdpa '%s': guest RAM reaches the control queue's "
                            "IOVA 0x%" PRIx64, v->name, v->info.cvq_iova);
            return false;
        }
        n++;
    }
    if (!n) {
        qnic_error_setg(errp, "vhost-vdpa '%s': the machine has no RAM to map", v->name);
        return false;
    }
    if (!vdpa_batch(v, true, errp)) {
        return false;
    }
    /* the old layout goes first: an UPDATE over a live map is -EEXIST */
    for (unsigned i = 0; i < v->nmaps; i++) {
        if (!vdpa_iotlb(v, VHOST_IOTLB_INVALIDATE, v->maps[i].iova, v->maps[i].size, NULL, errp)) {
            return false;
        }
    }
    v->nmaps = 0;
    for (unsigned i = 0; i < n; i++) {
        if (!vdpa_iotlb(v, VHOST_IOTLB_UPDATE, fresh[i].iova, fresh[i].size, fresh[i].host,
                        errp)) {
            return false;
        }
        v->maps[v->nmaps++] = fresh[i];
    }
    return vdpa_batch(v, false, errp);
}

static bool op_set_mem_table(QnicVhostDev *hd, QnicMachine *m, GError **errp)
{
    return qnic_vhost_vdpa_update_memory(vv_of(hd), m, errp);
}

/* The IOVA of this process's address p..p+len-1 (a ring in guest RAM). */
static bool hva_to_iova(QnicVhostVdpa *v, uint64_t p, uint64_t len, uint64_t *iova)
{
    for (unsigned i = 0; i < v->nmaps; i++) {
        uint64_t h = (uint64_t)(uintptr_t)v->maps[i].host;
        if (p >= h && len <= v->maps[i].size && p - h <= v->maps[i].size - len) {
            *iova = v->maps[i].iova + (p - h);
            return true;
        }
    }
    return false;
}

bool vdpa_set_state(QnicVhostVdpa *v, unsigned long req, const char *name, unsigned idx,
                    unsigned num, GError **errp)
{
    struct vhost_vring_state st = { .index = idx, .num = num };

    return vdpa_ioctl(v, req, name, &st, errp);
}

static bool op_set_vring_num(QnicVhostDev *hd, unsigned idx, unsigned num, GError **errp)
{
    QnicVhostVdpa *v = vv_of(hd);

    if (num > v->info.max_ring) {
        qnic_error_setg(errp, "vhost-vdpa '%s': ring %u of %u entries, the device takes %u",
                        v->name, idx, num, v->info.max_ring);
        return false;
    }
    v->ring_num[idx] = num;
    return vdpa_set_state(v, VHOST_SET_VRING_NUM, "SET_VRING_NUM", idx, num, errp);
}

static bool op_set_vring_base(QnicVhostDev *hd, unsigned idx, unsigned base, GError **errp)
{
    return vdpa_set_state(vv_of(hd), VHOST_SET_VRING_BASE, "SET_VRING_BASE", idx, base, errp);
}

static bool op_get_vring_base(QnicVhostDev *hd, unsigned idx, unsigned *base, GError **errp)
{
    QnicVhostVdpa *v = vv_of(hd);
    struct vhost_vring_state st = { .index = idx };
    bool packed = v->acked & (1ull << VIRTIO_F_RING_PACKED);

    if (!vdpa_ioctl(v, VHOST_GET_VRING_BASE, "GET_VRING_BASE", &st, errp)) {
        return false;
    }
    if (st.index != idx || (packed ? (st.num & 0x7fff) >= v->ring_num[idx] : st.num > 0xffff)) {
        qnic_error_setg(errp, "vhost-vdpa '%s': GET_VRING_BASE of ring %u answered ring %u "
                        "base 0x%x", v->name, idx, st.index, st.num);
        return false;
    }
    *base = st.num & 0xffff;
    return true;
}

static bool op_set_vring_addr(QnicVhostDev *hd, unsigned idx, uint64_t desc, uint64_t avail,
                              uint64_t used, GError **errp)
{
    QnicVhostVdpa *v = vv_of(hd);
    unsigned num = v->ring_num[idx];
    bool packed = v->acked & (1ull << VIRTIO_F_RING_PACKED);
    struct vhost_vring_addr a = { .index = idx };
    uint64_t d, av, u;

    if (!hva_to_iova(v, desc, 16ull * num, &d) ||
        !hva_to_iova(v, avail, packed ? 4 : 6 + 2ull * num, &av) ||
        !hva_to_iova(v, used, packed ? 4 : 6 + 8ull * num, &u)) {
        qnic_error_setg(errp, "vhost-vdpa '%s': ring %u is not in mapped guest RAM", v->name,
                        idx);
        return false;
    }
    a.desc_user_addr = d;
    a.avail_user_addr = av;
    a.used_user_addr = u;
    return vdpa_ioctl(v, VHOST_SET_VRING_ADDR, "SET_VRING_ADDR", &a, errp);
}

bool vdpa_set_file(QnicVhostVdpa *v, bool kick, unsigned idx, int fd, GError **errp)
{
    struct vhost_vring_file f = { .index = idx, .fd = fd };

    return kick ? vdpa_ioctl(v, VHOST_SET_VRING_KICK, "SET_VRING_KICK", &f, errp)
                : vdpa_ioctl(v, VHOST_SET_VRING_CALL, "SET_VRING_CALL", &f, errp);
}

static bool op_set_vring_kick(QnicVhostDev *hd, unsigned idx, int fd, GError **errp)
{
    return vdpa_set_file(vv_of(hd), true, idx, fd, errp);
}

static bool op_set_vring_call(QnicVhostDev *hd, unsigned idx, int fd, GError **errp)
{
    return vdpa_set_file(vv_of(hd), false, idx, fd, errp);
}

/* A vDPA ring is enabled once before DRIVER_OK (dev_start) and stays so:
 * which pairs carry traffic is the device's MQ state, set through the
 * control queue, as QEMU does. */
static bool op_set_vring_enable(QnicVhostDev *hd, unsigned idx, bool enable, GError **errp)
{
    QnicVhostVdpa *v = vv_of(hd);

    if (!enable || v->ring_enabled[idx]) {
        return true;
    }
    if (!vdpa_set_state(v, VHOST_VDPA_SET_VRING_ENABLE, "SET_VRING_ENABLE", idx, 1, errp)) {
        return false;
    }
    v->ring_enabled[idx] = true;
    return true;
}

static bool op_dev_start(QnicVhostDev *hd, GError **errp)
{
    QnicVhostVdpa *v = vv_of(hd);

    for (unsigned i = 0; i < hd->nvqs; i++) {
        if (hd->vqs[i].started && !op_set_vring_enable(hd, i, true, errp)) {
            return false;
        }
    }
    if (v->info.has_cvq && !vdpa_cvq_start(v, errp)) {
        return false;
    }
    return set_status(v, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
                      VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK, errp);
}

static void op_dev_suspend(QnicVhostDev *hd)
{
    QnicVhostVdpa *v = vv_of(hd);
    GError *err = NULL;

    if ((v->info.backend_features & (1ull << VHOST_BACKEND_F_SUSPEND)) &&
        (v->status & VIRTIO_CONFIG_S_DRIVER_OK) &&
        !vdpa_ioctl(v, VHOST_VDPA_SUSPEND, "SUSPEND", NULL, &err)) {
        qnic_warn("%s (ring indices are read from a running device)", err->message);
        g_error_free(err);
    }
}

static void op_dev_reset(QnicVhostDev *hd)
{
    QnicVhostVdpa *v = vv_of(hd);
    GError *err = NULL;

    vdpa_cvq_stop(v);
    memset(v->ring_enabled, 0, 2 * v->info.queue_pairs * sizeof(bool));
    if (!set_status(v, 0, &err) ||
        !set_status(v, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER, &err)) {
        qnic_warn("%s", err->message);
        g_error_free(err);
    }
}

static bool op_send_ctrl(QnicVhostDev *hd, uint8_t cls, uint8_t cmd, const void *data,
                         size_t len, GError **errp)
{
    return vdpa_cvq_send(vv_of(hd), cls, cmd, data, len, errp);
}

static const QnicVhostOps vdpa_vhost_ops = {
    .name = "vhost-vdpa",
    .set_features = op_set_features,
    .set_mem_table = op_set_mem_table,
    .set_vring_num = op_set_vring_num,
    .set_vring_base = op_set_vring_base,
    .get_vring_base = op_get_vring_base,
    .set_vring_addr = op_set_vring_addr,
    .set_vring_kick = op_set_vring_kick,
    .set_vring_call = op_set_vring_call,
    .set_vring_enable = op_set_vring_enable,
    .dev_start = op_dev_start,
    .dev_suspend = op_dev_suspend,
    .dev_reset = op_dev_reset,
    .send_ctrl = op_send_ctrl,
    .max_tx_queue_size = 1024,      /* QEMU lifts the cap for vhost-vdpa */
};

/* ---- configuration changes ---- */

static void config_changed(void *opaque, int fd, GIOCondition cond)
{
    QnicVhostVdpa *v = opaque;
    uint16_t old = v->info.status;
    uint64_t cnt;
    GError *err = NULL;

    if (read(fd, &cnt, sizeof(cnt)) != sizeof(cnt)) {
        return;
    }
    if (!get_config(v, &err)) {
        qnic_report_ratelimited("%s (after a configuration change)", err->message);
        g_error_free(err);
        return;
    }
    if (((old ^ v->info.status) & VIRTIO_NET_S_LINK_UP) && v->link_cb) {
        v->link_cb(v->link_opaque, v->info.status & VIRTIO_NET_S_LINK_UP);
    }
}

void qnic_vhost_vdpa_set_link_handler(QnicVhostVdpa *v, QnicVdpaLinkFunc *cb, void *opaque)
{
    v->link_cb = cb;
    v->link_opaque = opaque;
    if (!v->config_watch) {
        v->config_watch = qnic_fd_watch_add(v->config_fd, G_IO_IN, config_changed, v);
    }
}

/* ---- lifetime ---- */

QnicVhostVdpa *qnic_vhost_vdpa_new(const QnicVdpaOps *ops, void *dev, unsigned pairs,
                                   const char *name, GError **errp)
{
    QnicVhostVdpa *v = g_new0(QnicVhostVdpa, 1);

    v->ops = ops;
    v->dev = dev;
    v->name = g_strdup(name ? name : "vdpa");
    v->config_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    vdpa_cvq_init(v);
    if (v->config_fd < 0) {
        qnic_error_setg_errno(errp, errno, "vhost-vdpa: eventfd");
        qnic_vhost_vdpa_free(v);
        return NULL;
    }
    if (!bring_up(v, pairs, errp)) {
        qnic_vhost_vdpa_free(v);
        return NULL;
    }
    v->ring_num = g_new0(unsigned, 2 * v->info.queue_pairs);
    v->ring_enabled = g_new0(bool, 2 * v->info.queue_pairs);
    v->hd = qnic_vhost_dev_new(&vdpa_vhost_ops, v, 2 * v->info.queue_pairs);
    v->hd->backend_features = v->info.features & ~(1ull << VIRTIO_F_ACCESS_PLATFORM);
    v->hd->max_queue_pairs = v->info.queue_pairs;
    v->hd->connected = true;
    return v;
}

void qnic_vhost_vdpa_free(QnicVhostVdpa *v)
{
    if (!v) {
        return;
    }
    if (v->hd) {
        qnic_vhost_dev_free(v->hd);     /* stops, suspends and resets if started */
    }
    vdpa_cvq_stop(v);
    /* teardown: the maps go, then the device is reset */
    if (v->status) {
        for (unsigned i = 0; i < v->nmaps; i++) {
            vdpa_iotlb(v, VHOST_IOTLB_INVALIDATE, v->maps[i].iova, v->maps[i].size, NULL, NULL);
        }
        vdpa_cvq_unmap(v);
        set_status(v, 0, NULL);
    }
    vdpa_cvq_free(v);
    if (v->config_watch) {
        qnic_fd_watch_remove(v->config_watch);
    }
    if (v->config_fd >= 0) {
        close(v->config_fd);
    }
    g_free(v->ring_num);
    g_free(v->ring_enabled);
    g_free(v->name);
    g_free(v);
}

QnicVhostDev *qnic_vhost_vdpa_dev(QnicVhostVdpa *v)
{
    return v->hd;
}

const QnicVdpaInfo *qnic_vhost_vdpa_info(const QnicVhostVdpa *v)
{
    return &v->info;
}
