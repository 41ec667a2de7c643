/*
 * The vDPA device simulator (qnic/vdpa-sim.h): the device side of the
 * vhost-vdpa ioctls and IOTLB messages in-process, so `-netdev vhost-vdpa`
 * is tested with traffic on a host without vDPA. Its checks follow the
 * kernel's drivers/vhost/vdpa.c and vhost.c over vdpa_sim_net: the status
 * never loses bits except by a reset to 0 (-EINVAL), features are fixed
 * once FEATURES_OK is set (-EBUSY) and must include ACCESS_PLATFORM
 * (-EINVAL), configuration reads and writes are bounded (-EINVAL, -E2BIG),
 * rings are addressed below the queue count (-ENOBUFS), unknown requests
 * are -ENOTTY; an IOTLB message that is malformed is -EINVAL and one the
 * driver refuses (outside the IOVA range, overlapping, no owner, a bad
 * type, permission or address space) is -EFAULT, as write(2) reports it.
 *
 * The rings run in the vhost-user device side (virtio/vhost-user-device.c)
 * fed with the vhost-user requests these ioctls amount to, once the status
 * has DRIVER_OK: its memory table is the IOTLB (IOVA as both guest-physical
 * and frontend address, so ring IOVAs translate unchanged), its vring
 * 2 * max_pairs the control queue. A ring outside every mapping is
 * reported and does not start; invalidating a mapping in use stops the
 * rings in it until it is mapped again.
 */
#include "qnic/vdpa-sim.h"
#include "qnic/vhost-user-device.h"
#include "qnic/net.h"
#include "qnic/log.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <linux/vhost.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_net.h>

#define SIM_MAX_MAPS QNIC_VHU_MAX_REGIONS
#define SIM_RING_MAX 256            /* vdpa_sim's queue size */
#define SIM_BACKEND_FEATURES ((1ull << VHOST_BACKEND_F_IOTLB_MSG_V2) | \
                              (1ull << VHOST_BACKEND_F_IOTLB_BATCH) | \
                              (1ull << VHOST_BACKEND_F_IOTLB_ASID) | \
                              (1ull << VHOST_BACKEND_F_SUSPEND))

typedef struct SimVq {
    uint32_t num;
    uint32_t base;
    uint64_t desc, avail, used;
    bool addr_set, ready;
    int kick_fd, call_fd;           /* dups, ours */
} SimVq;

struct QnicVdpaSim {
    QnicVhuDev *vhu;
    char *netdev;
    unsigned max_pairs, nvqs;
    bool has_cvq;
    uint64_t offered, acked, vhu_offered;
    uint64_t backend_offered, backend_acked;
    bool owner, suspended, running;
    uint8_t status;
    uint8_t config[sizeof(struct virtio_net_config)];
    QnicVhuHostRegion maps[SIM_MAX_MAPS];
    unsigned nmaps;
    bool in_batch;
    SimVq *vq;                      /* [nvqs] */
    int config_call_fd;
};

/* ---- the vhost-user device the rings run in ---- */

static bool vhu_req(QnicVdpaSim *s, uint32_t req, const void *payload, uint32_t size, int fd,
                    QnicVhuMsg *reply)
{
    QnicVhuMsg msg, r;
    bool send_reply;
    g_autoptr(GError) err = NULL;

    qnic_vhu_msg_init(&msg, req, size);
    if (size) {
        memcpy(&msg.p, payload, size);
    }
    if (fd >= 0) {
        msg.fds[0] = dup(fd);
        msg.nfds = msg.fds[0] >= 0;
    }
    if (!qnic_vhu_dev_handle(s->vhu, &msg, reply ? reply : &r, &send_reply, &err)) {
        qnic_report_ratelimited("vdpa-sim: %s", err->message);
        return false;
    }
    return true;
}

/* vhost-user's vring number for the device's virtqueue idx. */
static unsigned vhu_index(const QnicVdpaSim *s, unsigned idx)
{
    bool mq = s->acked & (1ull << VIRTIO_NET_F_MQ);
    unsigned cvq = mq ? 2 * s->max_pairs : 2;

    return s->has_cvq && idx == cvq ? 2 * s->max_pairs : idx;
}

static bool vq_is_used(const QnicVdpaSim *s, unsigned idx)
{
    bool mq = s->acked & (1ull << VIRTIO_NET_F_MQ);
    unsigned data = mq ? 2 * s->max_pairs : 2;

    return idx < data || (s->has_cvq && idx == data);
}

static void push_vq(QnicVdpaSim *s, unsigned idx);

/* The device sees the IOTLB as it is now; a ring whose addresses were
 * refused before (outside every mapping) is offered again. */
static void push_memory(QnicVdpaSim *s)
{
    g_autoptr(GError) err = NULL;
    QnicVhuVringInfo vi;

    if (!s->running) {
        return;
    }
    if (!qnic_vhu_dev_set_host_memory(s->vhu, s->maps, s->nmaps, &err)) {
        qnic_report_ratelimited("vdpa-sim: IOTLB: %s", err->message);
        return;
    }
    for (unsigned i = 0; i < s->nvqs; i++) {
        if (qnic_vhu_dev_vring_info(s->vhu, vhu_index(s, i), &vi) && !vi.started) {
            push_vq(s, i);
        }
    }
}

static void push_vq(QnicVdpaSim *s, unsigned idx)
{
    SimVq *q = &s->vq[idx];
    unsigned vi = vhu_index(s, idx);
    QnicVhuVringState st = { .index = vi, .num = q->num };
    QnicVhuVringAddr a = { .index = vi, .desc_user_addr = q->desc,
                           .used_user_addr = q->used, .avail_user_addr = q->avail };

    if (!q->num || !q->addr_set || !vq_is_used(s, idx)) {
        return;
    }
    vhu_req(s, QNIC_VHU_SET_VRING_NUM, &st, sizeof(st), -1, NULL);
    st.num = q->base;
    vhu_req(s, QNIC_VHU_SET_VRING_BASE, &st, sizeof(st), -1, NULL);
    vhu_req(s, QNIC_VHU_SET_VRING_ADDR, &a, sizeof(a), -1, NULL);
    if (q->call_fd >= 0) {
        uint64_t u = vi;
        vhu_req(s, QNIC_VHU_SET_VRING_CALL, &u, sizeof(u), q->call_fd, NULL);
    }
    {
        uint64_t u = vi | (q->kick_fd < 0 ? QNIC_VHU_VRING_NOFD_MASK : 0);
        vhu_req(s, QNIC_VHU_SET_VRING_KICK, &u, sizeof(u), q->kick_fd, NULL);
    }
    st.num = q->ready;
    vhu_req(s, QNIC_VHU_SET_VRING_ENABLE, &st, sizeof(st), -1, NULL);
}

/* DRIVER_OK: the device starts with what it was given. */
static void sim_run(QnicVdpaSim *s)
{
    uint64_t f = (s->acked & s->vhu_offered) | (1ull << QNIC_VHU_F_PROTOCOL_FEATURES);
    uint64_t none = 0;

    s->running = true;
    vhu_req(s, QNIC_VHU_SET_OWNER, NULL, 0, -1, NULL);
    vhu_req(s, QNIC_VHU_SET_FEATURES, &f, sizeof(f), -1, NULL);
    vhu_req(s, QNIC_VHU_SET_PROTOCOL_FEATURES, &none, sizeof(none), -1, NULL);
    push_memory(s);     /* and with it every ring the driver set up */
}

static void sim_reset(QnicVdpaSim *s)
{
    qnic_vhu_dev_reset(s->vhu);
    s->running = s->suspended = false;
    s->status = 0;
    s->acked = 0;
    for (unsigned i = 0; i < s->nvqs; i++) {
        SimVq *q = &s->vq[i];
        if (q->kick_fd >= 0) {
            close(q->kick_fd);
        }
        if (q->call_fd >= 0) {
            close(q->call_fd);
        }
        memset(q, 0, sizeof(*q));
        q->kick_fd = q->call_fd = -1;
    }
}

/* ---- status, features, configuration ---- */

static int sim_set_status(QnicVdpaSim *s, uint8_t status)
{
    uint8_t old = s->status;

    if (status != 0 && (old & ~status)) {
        return -EINVAL;     /* only a reset clears bits */
    }
    if (status == 0) {
        sim_reset(s);
        return 0;
    }
    s->status = status;
    if ((status & VIRTIO_CONFIG_S_DRIVER_OK) && !(old & VIRTIO_CONFIG_S_DRIVER_OK)) {
        sim_run(s);
    }
    return 0;
}

static int sim_set_features(QnicVdpaSim *s, uint64_t f)
{
    if (s->status & VIRTIO_CONFIG_S_FEATURES_OK) {
        return -EBUSY;
    }
    if (!(f & (1ull << VIRTIO_F_ACCESS_PLATFORM))) {
        return -EINVAL;     /* vdpa_sim: DMA goes through the IOTLB */
    }
    s->acked = f & s->offered;
    return 0;
}

static int sim_config(QnicVdpaSim *s, struct vhost_vdpa_config *c, bool set)
{
    size_t size = sizeof(s->config);

    if (c->len == 0 || c->off > size) {
        return -EINVAL;
    }
    if (c->len > size - c->off) {
        return -E2BIG;
    }
    if (set) {
        memcpy(s->config + c->off, c->buf, c->len);
    } else {
        memcpy(c->buf, s->config + c->off, c->len);
    }
    return 0;
}

static int sim_backend_features(QnicVdpaSim *s, uint64_t f)
{
    if (f & ~s->backend_offered) {
        return -EOPNOTSUPP;
    }
    s->backend_acked = f;
    return 0;
}

/* ---- rings ---- */

static int take_fd(int fd, int *slot)
{
    g_autoptr(GError) err = NULL;
    int d;

    if (fd < 0) {
        d = -1;
    } else if (!qnic_vhu_fd_is_eventfd(fd, &err)) {
        return fcntl(fd, F_GETFD) < 0 ? -EBADF : -EINVAL;
    } else if ((d = dup(fd)) < 0) {
        return -errno;
    }
    if (*slot >= 0) {
        close(*slot);
    }
    *slot = d;
    return 0;
}

static int sim_vring_state(QnicVdpaSim *s, unsigned long req, struct vhost_vring_state *st)
{
    SimVq *q = &s->vq[st->index];
    bool packed = s->acked & (1ull << VIRTIO_F_RING_PACKED);

    switch (req) {
    case VHOST_SET_VRING_NUM:
        if (!st->num || st->num > 0xffff || (st->num & (st->num - 1))) {
            return -EINVAL;
        }
        q->num = st->num;
        return 0;
    case VHOST_SET_VRING_BASE:
        if (!packed && st->num > 0xffff) {
            return -EINVAL;
        }
        q->base = st->num;
        return 0;
    case VHOST_VDPA_SET_VRING_ENABLE:
        q->ready = st->num != 0;
        if (s->running) {
            QnicVhuVringState e = { .index = vhu_index(s, st->index), .num = q->ready };
            vhu_req(s, QNIC_VHU_SET_VRING_ENABLE, &e, sizeof(e), -1, NULL);
        }
        return 0;
    default: {   /* VHOST_GET_VRING_BASE */
        QnicVhuMsg reply;
        QnicVhuVringState g = { .index = vhu_index(s, st->index) };
        if (s->running && !s->suspended && vq_is_used(s, st->index) &&
            vhu_req(s, QNIC_VHU_GET_VRING_BASE, &g, sizeof(g), -1, &reply)) {
            q->base = reply.p.state.num;
        }
        st->num = q->base;
        return 0;
    }
    }
}

static int sim_vring_addr(QnicVdpaSim *s, struct vhost_vring_addr *a)
{
    SimVq *q = &s->vq[a->index];

    if (a->flags & ~(1u << VHOST_VRING_F_LOG)) {
        return -EOPNOTSUPP;
    }
    if ((a->avail_user_addr & 1) || (a->used_user_addr & 3)) {
        return -EINVAL;
    }
    q->desc = a->desc_user_addr;
    q->avail = a->avail_user_addr;
    q->used = a->used_user_addr;
    q->addr_set = true;
    return 0;
}

/* The rings stop where they are (SUSPEND): their indices are kept for
 * GET_VRING_BASE, the device keeps its status. */
static int sim_suspend(QnicVdpaSim *s)
{
    if (!(s->backend_acked & (1ull << VHOST_BACKEND_F_SUSPEND))) {
        return -EOPNOTSUPP;
    }
    for (unsigned i = 0; s->running && !s->suspended && i < s->nvqs; i++) {
        struct vhost_vring_state st = { .index = i };
        if (vq_is_used(s, i) && s->vq[i].addr_set) {
            sim_vring_state(s, VHOST_GET_VRING_BASE, &st);
        }
    }
    s->suspended = true;
    return 0;
}

static unsigned vring_index_of(unsigned long req, void *arg)
{
    switch (req) {
    case VHOST_SET_VRING_ADDR:
        return ((struct vhost_vring_addr *)arg)->index;
    case VHOST_SET_VRING_KICK:
    case VHOST_SET_VRING_CALL:
        return ((struct vhost_vring_file *)arg)->index;
    default:
        return ((struct vhost_vring_state *)arg)->index;
    }
}

static int sim_vring_ioctl(QnicVdpaSim *s, unsigned long req, void *arg)
{
    unsigned idx = vring_index_of(req, arg);

    if (idx >= s->nvqs) {
        return -ENOBUFS;
    }
    switch (req) {
    case VHOST_SET_VRING_ADDR:
        return sim_vring_addr(s, arg);
    case VHOST_SET_VRING_KICK:
        return take_fd(((struct vhost_vring_file *)arg)->fd, &s->vq[idx].kick_fd);
    case VHOST_SET_VRING_CALL:
        return take_fd(((struct vhost_vring_file *)arg)->fd, &s->vq[idx].call_fd);
    default:
        return sim_vring_state(s, req, arg);
    }
}

/* ---- the ioctl boundary ---- */

static int sim_get_ioctl(QnicVdpaSim *s, unsigned long req, void *arg)
{
    switch (req) {
    case VHOST_VDPA_GET_DEVICE_ID:
        *(uint32_t *)arg = VIRTIO_ID_NET;
        return 0;
    case VHOST_VDPA_GET_STATUS:
        *(uint8_t *)arg = s->status;
        return 0;
    case VHOST_GET_FEATURES:
        *(uint64_t *)arg = s->offered;
        return 0;
    case VHOST_GET_BACKEND_FEATURES:
        *(uint64_t *)arg = s->backend_offered;
        return 0;
    case VHOST_VDPA_GET_VRING_NUM:
        *(uint16_t *)arg = SIM_RING_MAX;
        return 0;
    case VHOST_VDPA_GET_VQS_COUNT:
        *(uint32_t *)arg = s->nvqs;
        return 0;
    case VHOST_VDPA_GET_CONFIG_SIZE:
        *(uint32_t *)arg = sizeof(s->config);
        return 0;
    case VHOST_VDPA_GET_IOVA_RANGE:
        *(struct vhost_vdpa_iova_range *)arg =
            (struct vhost_vdpa_iova_range){ .first = 0, .last = UINT64_MAX };
        return 0;
    case VHOST_VDPA_GET_AS_NUM:
        *(unsigned *)arg = 1;
        return 0;
    }
    return -ENOTTY;
}

int qnic_vdpa_sim_ioctl(QnicVdpaSim *s, unsigned long req, void *arg)
{
    int r = sim_get_ioctl(s, req, arg);

    if (r != -ENOTTY) {
        return r;
    }
    if (req == VHOST_SET_OWNER) {
        if (s->owner) {
            return -EBUSY;
        }
        s->owner = true;
        return 0;
    }
    if (!s->owner && req != VHOST_SET_BACKEND_FEATURES) {
        return -EPERM;      /* vhost_dev_check_owner */
    }
    switch (req) {
    case VHOST_SET_BACKEND_FEATURES:
        return sim_backend_features(s, *(uint64_t *)arg);
    case VHOST_SET_FEATURES:
        return sim_set_features(s, *(uint64_t *)arg);
    case VHOST_VDPA_SET_STATUS:
        return sim_set_status(s, *(uint8_t *)arg);
    case VHOST_VDPA_GET_CONFIG:
    case VHOST_VDPA_SET_CONFIG:
        return sim_config(s, arg, req == VHOST_VDPA_SET_CONFIG);
    case VHOST_VDPA_SET_CONFIG_CALL:
        return take_fd(*(int *)arg, &s->config_call_fd);
    case VHOST_VDPA_SUSPEND:
        return sim_suspend(s);
    case VHOST_SET_VRING_NUM:
    case VHOST_SET_VRING_BASE:
    case VHOST_GET_VRING_BASE:
    case VHOST_SET_VRING_ADDR:
    case VHOST_SET_VRING_KICK:
    case VHOST_SET_VRING_CALL:
    case VHOST_VDPA_SET_VRING_ENABLE:
        return sim_vring_ioctl(s, req, arg);
    }
    return -ENOTTY;         /* the kernel's -ENOIOCTLCMD, as ioctl(2) reports it */
}

/* ---- the IOTLB ---- */

static bool overlaps(const QnicVhuHostRegion *m, uint64_t iova, uint64_t last)
{
    return m->addr <= last && iova <= m->addr + (m->size - 1);
}

static int iotlb_update(QnicVdpaSim *s, const struct vhost_iotlb_msg *m)
{
    uint64_t last = m->iova + m->size - 1;

    if (last < m->iova || !m->perm || (m->perm & ~VHOST_ACCESS_RW) || !m->uaddr ||
        m->uaddr + (m->size - 1) < m->uaddr) {
        return -EINVAL;
    }
    for (unsigned i = 0; i < s->nmaps; i++) {
        if (overlaps(&s->maps[i], m->iova, last)) {
            return -EEXIST;
        }
    }
    if (s->nmaps == SIM_MAX_MAPS) {
        return -ENOMEM;
    }
    s->maps[s->nmaps++] = (QnicVhuHostRegion){ .addr = m->iova, .size = m->size,
                                               .host = (void *)(uintptr_t)m->uaddr };
    return 0;
}

/* Every map inside [iova, iova + size) goes, as vhost_vdpa_unmap does. */
static void iotlb_invalidate(QnicVdpaSim *s, const struct vhost_iotlb_msg *m)
{
    uint64_t last = m->iova + m->size - 1 < m->iova ? UINT64_MAX : m->iova + m->size - 1;
    unsigned n = 0;

    for (unsigned i = 0; i < s->nmaps; i++) {
        if (!overlaps(&s->maps[i], m->iova, last)) {
            s->maps[n++] = s->maps[i];
        }
    }
    s->nmaps = n;
}

static int iotlb_msg(QnicVdpaSim *s, const struct vhost_iotlb_msg *m)
{
    int r = 0;

    switch (m->type) {
    case VHOST_IOTLB_UPDATE:
        r = iotlb_update(s, m);
        break;
    case VHOST_IOTLB_INVALIDATE:
        iotlb_invalidate(s, m);
        break;
    case VHOST_IOTLB_BATCH_BEGIN:
        s->in_batch = true;
        return 0;
    case VHOST_IOTLB_BATCH_END:
        s->in_batch = false;
        break;
    default:
        return -EINVAL;
    }
    if (!r && !s->in_batch) {
        push_memory(s);     /* the device sees the new map */
    }
    return r;
}

ssize_t qnic_vdpa_sim_write(QnicVdpaSim *s, const void *buf, size_t len)
{
    struct vhost_msg_v2 msg;
    int r;

    if (len < sizeof(msg)) {
        return -EINVAL;
    }
    memcpy(&msg, buf, sizeof(msg));
    if (msg.type != VHOST_IOTLB_MSG_V2) {
        return -EINVAL;     /* v1 messages are not offered */
    }
    if ((msg.iotlb.type == VHOST_IOTLB_UPDATE || msg.iotlb.type == VHOST_IOTLB_INVALIDATE) &&
        msg.iotlb.size == 0) {
        return -EINVAL;
    }
    if (!(s->backend_acked & (1ull << VHOST_BACKEND_F_IOTLB_ASID))) {
        msg.asid = 0;
    }
    r = !s->owner ? -EPERM : msg.asid != 0 ? -EINVAL : iotlb_msg(s, &msg.iotlb);
    return r ? -EFAULT : (ssize_t)sizeof(msg);
}

static int ops_ioctl(void *dev, unsigned long req, void *arg)
{
    return qnic_vdpa_sim_ioctl(dev, req, arg);
}

static ssize_t ops_write(void *dev, const void *buf, size_t len)
{
    return qnic_vdpa_sim_write(dev, buf, len);
}

const QnicVdpaOps qnic_vdpa_sim_ops = { .ioctl = ops_ioctl, .write = ops_write };

/* ---- lifetime ---- */

static void sim_fill_config(QnicVdpaSim *s, const uint8_t mac[6], unsigned mtu)
{
    memcpy(s->config, mac, 6);
    qnic_st16(s->config + 6, VIRTIO_NET_S_LINK_UP);
    qnic_st16(s->config + 8, s->max_pairs);
    qnic_st16(s->config + 10, mtu ? mtu : 1500);
}

QnicVdpaSim *qnic_vdpa_sim_new(const QnicVdpaSimConfig *cfg, GError **errp)
{
    QnicVdpaSim *s = g_new0(QnicVdpaSim, 1);
    QnicNetdev *nd;
    QnicRxFilterInfo info = { 0 };

    s->config_call_fd = -1;
    s->vhu = qnic_vhu_dev_new(cfg->be, cfg->device_opts, errp);
    if (!s->vhu) {
        g_free(s);
        return NULL;
    }
    s->has_cvq = !cfg->no_ctrl_vq;
    if (s->has_cvq) {
        qnic_vhu_dev_enable_ctrl_vq(s->vhu);
    }
    s->max_pairs = qnic_vhu_dev_num_vrings(s->vhu) / 2;
    s->nvqs = 2 * s->max_pairs + s->has_cvq;
    s->vq = g_new0(SimVq, s->nvqs);
    for (unsigned i = 0; i < s->nvqs; i++) {
        s->vq[i].kick_fd = s->vq[i].call_fd = -1;
    }
    s->vhu_offered = qnic_vhu_dev_features(s->vhu) & ~(1ull << QNIC_VHU_F_PROTOCOL_FEATURES);
    s->offered = s->vhu_offered | (1ull << VIRTIO_F_ACCESS_PLATFORM) |
                 (1ull << VIRTIO_NET_F_STATUS) | (1ull << VIRTIO_NET_F_MTU);
    if (!s->has_cvq) {
        s->offered &= ~(1ull << VIRTIO_NET_F_MQ);
    }
    s->backend_offered = SIM_BACKEND_FEATURES;
    if (cfg->no_suspend) {
        s->backend_offered &= ~(1ull << VHOST_BACKEND_F_SUSPEND);
    }
    if (cfg->no_batch) {
        s->backend_offered &= ~(1ull << VHOST_BACKEND_F_IOTLB_BATCH);
    }
    s->netdev = g_strdup(qnic_vhu_dev_netdev(s->vhu));
    nd = qnic_netdev_find(cfg->be, s->netdev);
    if (nd && nd->ncs[0]->peer && nd->ncs[0]->peer->ops->query_rx_filter) {
        nd->ncs[0]->peer->ops->query_rx_filter(nd->ncs[0]->peer, &info);
    }
    sim_fill_config(s, info.main_mac, 0);
    qnic_rx_filter_info_clear(&info);
    return s;
}

void qnic_vdpa_sim_release(QnicVdpaSim *s)
{
    sim_reset(s);
    s->nmaps = 0;
    s->in_batch = false;
    s->owner = false;
    s->backend_acked = 0;
    if (s->config_call_fd >= 0) {
        close(s->config_call_fd);
        s->config_call_fd = -1;
    }
}

void qnic_vdpa_sim_free(QnicVdpaSim *s)
{
    if (!s) {
        return;
    }
    sim_reset(s);
    qnic_vhu_dev_free(s->vhu);
    if (s->config_call_fd >= 0) {
        close(s->config_call_fd);
    }
    g_free(s->vq);
    g_free(s->netdev);
    g_free(s);
}

uint8_t qnic_vdpa_sim_status(const QnicVdpaSim *s)
{
    return s->status;
}

uint64_t qnic_vdpa_sim_features(const QnicVdpaSim *s)
{
    return s->acked;
}

unsigned qnic_vdpa_sim_num_maps(const QnicVdpaSim *s)
{
    return s->nmaps;
}

bool qnic_vdpa_sim_vq_running(const QnicVdpaSim *s, unsigned idx)
{
    QnicVhuVringInfo vi;

    return s->running && idx < s->nvqs &&
           qnic_vhu_dev_vring_info(s->vhu, vhu_index(s, idx), &vi) && vi.started && vi.enabled;
}

void qnic_vdpa_sim_set_link(QnicVdpaSim *s, bool up)
{
    uint16_t st = qnic_ld16(s->config + 6);

    st = up ? (st | VIRTIO_NET_S_LINK_UP) : (st & ~VIRTIO_NET_S_LINK_UP);
    qnic_st16(s->config + 6, st);
    if (s->config_call_fd >= 0 && eventfd_write(s->config_call_fd, 1) < 0) {
        qnic_report_ratelimited("vdpa-sim: config interrupt: %s", g_strerror(errno));
    }
}

const char *qnic_vdpa_sim_netdev(const QnicVdpaSim *s)
{
    return s->netdev;
}
