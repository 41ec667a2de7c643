/*
 * The shadow control queue of vhost-vdpa: qnic's virtio-net keeps serving
 * the guest's control queue (its MAC table, receive modes and queue pairs
 * are qnic's state, answered from qnic, kept for migration), and each
 * command it applied is posted here to the vDPA device's own control
 * queue, which qnic drives as a driver would: a split or packed ring (the
 * format the device negotiated) in memory qnic allocates and maps into the
 * device's IOTLB above guest RAM. Posting does not wait: the device's
 * answer is reclaimed from the used ring when it signals the call eventfd
 * (or at the next post), and a refusal is logged. After each start the
 * device hears the whole state again (virtio_net_vhost_ctrl_replay), so a
 * reset, a re-init or a migrated guest finds the device as qnic has it.
 */
#include "vhost-vdpa-internal.h"
#include "qnic/log.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define PACKED_F_AVAIL (1u << VRING_PACKED_DESC_F_AVAIL)
#define PACKED_F_USED (1u << VRING_PACKED_DESC_F_USED)

void vdpa_cvq_init(QnicVhostVdpa *v)
{
    v->cvq.kick_fd = v->cvq.call_fd = -1;
}

/* The top of the IOVA range, page aligned: never guest RAM on a pc. */
bool vdpa_cvq_map(QnicVhostVdpa *v, GError **errp)
{
    VdpaCvq *q = &v->cvq;

    if (!q->mem && posix_memalign((void **)&q->mem, 4096, VDPA_CVQ_AREA)) {
        q->mem = NULL;
        qnic_error_setg(errp, "vhost-vdpa '%s': no memory for the control queue", v->name);
        return false;
    }
    memset(q->mem, 0, VDPA_CVQ_AREA);
    v->info.cvq_iova = (v->info.iova_last - VDPA_CVQ_AREA + 1) & ~(uint64_t)4095;
    if (!vdpa_batch(v, true, errp) ||
        !vdpa_iotlb(v, VHOST_IOTLB_UPDATE, v->info.cvq_iova, VDPA_CVQ_AREA, q->mem, errp) ||
        !vdpa_batch(v, false, errp)) {
        return false;
    }
    q->mapped = true;
    return true;
}

void vdpa_cvq_unmap(QnicVhostVdpa *v)
{
    if (v->cvq.mapped) {
        vdpa_iotlb(v, VHOST_IOTLB_INVALIDATE, v->info.cvq_iova, VDPA_CVQ_AREA, NULL, NULL);
        v->cvq.mapped = false;
    }
}

void vdpa_cvq_free(QnicVhostVdpa *v)
{
    free(v->cvq.mem);
    v->cvq.mem = NULL;
}

static uint8_t *desc_at(VdpaCvq *q, unsigned i)
{
    return q->mem + 16 * i;
}

static void reclaim_slot(QnicVhostVdpa *v, unsigned id)
{
    VdpaCvq *q = &v->cvq;
    unsigned slot = q->packed ? id : id / 2;
    uint8_t st;

    if (slot >= VDPA_CVQ_SLOTS || !q->busy[slot]) {
        qnic_report_ratelimited("vhost-vdpa '%s': the device completed control buffer %u, "
                                "which was not posted", v->name, id);
        return;
    }
    st = q->mem[VDPA_CVQ_BUFS_OFF + slot * VDPA_CVQ_BUF + VDPA_CVQ_STATUS_OFF];
    q->busy[slot] = false;
    q->stats.completed++;
    if (st != VIRTIO_NET_OK) {
        q->stats.nacked++;
        qnic_report_ratelimited("vhost-vdpa '%s': the device refused control command %u/%u "
                                "(status %u); qnic's state stands", v->name, q->cls[slot],
                                q->cmd[slot], st);
    }
}

static void reclaim_split(QnicVhostVdpa *v)
{
    VdpaCvq *q = &v->cvq;
    uint8_t *used = q->mem + VDPA_CVQ_USED_OFF;
    uint16_t end = __atomic_load_n((uint16_t *)(used + 2), __ATOMIC_ACQUIRE);

    /* at most a ring's worth: a device that moves used->idx wildly is
     * logged per bogus entry, never looped on */
    for (unsigned n = 0; q->used != end && n < VDPA_CVQ_NUM; n++, q->used++) {
        reclaim_slot(v, qnic_ld32(used + 4 + 8 * (q->used % VDPA_CVQ_NUM)));
    }
    q->used = end;
}

static void reclaim_packed(QnicVhostVdpa *v)
{
    VdpaCvq *q = &v->cvq;

    for (unsigned n = 0; n < VDPA_CVQ_SLOTS; n++) {
        uint8_t *d = desc_at(q, q->used);
        uint16_t flags = __atomic_load_n((uint16_t *)(d + 14), __ATOMIC_ACQUIRE);
        bool avail = flags & PACKED_F_AVAIL, usedf = flags & PACKED_F_USED;

        if (avail != usedf || usedf != q->used_wrap) {
            return;
        }
        reclaim_slot(v, qnic_ld16(d + 12));
        q->used += 2;
        if (q->used >= VDPA_CVQ_NUM) {
            q->used -= VDPA_CVQ_NUM;
            q->used_wrap = !q->used_wrap;
        }
    }
}

void qnic_vhost_vdpa_cvq_poll(QnicVhostVdpa *v)
{
    if (!v->cvq.running) {
        return;
    }
    if (v->cvq.packed) {
        reclaim_packed(v);
    } else {
        reclaim_split(v);
    }
}

static void call_ready(void *opaque, int fd, GIOCondition cond)
{
    uint64_t cnt;

    if (read(fd, &cnt, sizeof(cnt)) < 0) {
        /* EAGAIN: a spurious wakeup */
    }
    qnic_vhost_vdpa_cvq_poll(opaque);
}

static void ring_reset(VdpaCvq *q, bool packed)
{
    memset(q->mem, 0, VDPA_CVQ_BUFS_OFF);
    memset(q->busy, 0, sizeof(q->busy));
    q->packed = packed;
    q->next = q->used = 0;
    q->avail_wrap = q->used_wrap = true;
}

/* Hand the ring to the device, before DRIVER_OK. */
bool vdpa_cvq_start(QnicVhostVdpa *v, GError **errp)
{
    VdpaCvq *q = &v->cvq;
    bool packed = v->acked & (1ull << VIRTIO_F_RING_PACKED);
    uint64_t iova = v->info.cvq_iova;
    struct vhost_vring_addr a = { .desc_user_addr = iova,
                                  .avail_user_addr = iova + VDPA_CVQ_AVAIL_OFF,
                                  .used_user_addr = iova + VDPA_CVQ_USED_OFF };

    q->index = (v->acked & (1ull << VIRTIO_NET_F_MQ)) ? 2 * v->info.max_pairs : 2;
    a.index = q->index;
    ring_reset(q, packed);
    q->kick_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    q->call_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (q->kick_fd < 0 || q->call_fd < 0) {
        qnic_error_setg_errno(errp, errno, "vhost-vdpa: eventfd");
        vdpa_cvq_stop(v);
        return false;
    }
    if (!vdpa_set_state(v, VHOST_SET_VRING_NUM, "SET_VRING_NUM", q->index, VDPA_CVQ_NUM, errp) ||
        !vdpa_set_state(v, VHOST_SET_VRING_BASE, "SET_VRING_BASE", q->index,
                        packed ? 0x8000 : 0, errp) ||
        !vdpa_ioctl(v, VHOST_SET_VRING_ADDR, "SET_VRING_ADDR", &a, errp) ||
        !vdpa_set_file(v, true, q->index, q->kick_fd, errp) ||
        !vdpa_set_file(v, false, q->index, q->call_fd, errp) ||
        !vdpa_set_state(v, VHOST_VDPA_SET_VRING_ENABLE, "SET_VRING_ENABLE", q->index, 1, errp)) {
        vdpa_cvq_stop(v);
        return false;
    }
    q->watch = qnic_fd_watch_add(q->call_fd, G_IO_IN, call_ready, v);
    q->running = true;
    return true;
}

/* The device was (or is about to be) reset: what it did not answer is
 * lost to it, not to qnic, whose state the next start replays. */
void vdpa_cvq_stop(QnicVhostVdpa *v)
{
    VdpaCvq *q = &v->cvq;

    qnic_vhost_vdpa_cvq_poll(v);
    for (unsigned i = 0; i < VDPA_CVQ_SLOTS; i++) {
        q->stats.dropped += q->busy[i];
        q->busy[i] = false;
    }
    if (q->watch) {
        qnic_fd_watch_remove(q->watch);
        q->watch = NULL;
    }
    if (q->kick_fd >= 0) {
        close(q->kick_fd);
    }
    if (q->call_fd >= 0) {
        close(q->call_fd);
    }
    q->kick_fd = q->call_fd = -1;
    q->running = false;
}

/* Whether the device was given the feature the command needs; commands it
 * cannot take (VLAN, announce, offloads, RSS) stay qnic's alone. */
static bool device_takes(QnicVhostVdpa *v, uint8_t cls, uint8_t cmd)
{
    uint64_t f = v->acked;

    switch (cls) {
    case VIRTIO_NET_CTRL_RX:
        return (f & (1ull << VIRTIO_NET_F_CTRL_RX)) &&
               (cmd <= VIRTIO_NET_CTRL_RX_ALLMULTI || (f & (1ull << VIRTIO_NET_F_CTRL_RX_EXTRA)));
    case VIRTIO_NET_CTRL_MAC:
        return cmd == VIRTIO_NET_CTRL_MAC_ADDR_SET ? (f & (1ull << VIRTIO_NET_F_CTRL_MAC_ADDR))
                                                   : (f & (1ull << VIRTIO_NET_F_CTRL_RX)) != 0;
    case VIRTIO_NET_CTRL_MQ:
        return cmd == VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET && (f & (1ull << VIRTIO_NET_F_MQ));
    default:
        return false;
    }
}

static int free_slot(VdpaCvq *q)
{
    for (unsigned i = 0; i < VDPA_CVQ_SLOTS; i++) {
        if (!q->busy[i]) {
            return (int)i;
        }
    }
    return -1;
}

static void desc_write(uint8_t *d, uint64_t addr, uint32_t len, uint16_t id_or_next,
                       uint16_t flags, bool packed)
{
    qnic_st64(d, addr);
    qnic_st32(d + 8, len);
    qnic_st16(d + 12, id_or_next);
    if (!packed) {
        qnic_st16(d + 12, flags);
        qnic_st16(d + 14, id_or_next);
    }
}

static void post_split(VdpaCvq *q, unsigned slot, uint64_t buf, uint32_t len)
{
    uint8_t *avail = q->mem + VDPA_CVQ_AVAIL_OFF;

    desc_write(desc_at(q, 2 * slot), buf, len, 2 * slot + 1, VRING_DESC_F_NEXT, false);
    desc_write(desc_at(q, 2 * slot + 1), buf + VDPA_CVQ_STATUS_OFF, 1, 0, VRING_DESC_F_WRITE,
               false);
    qnic_st16(avail + 4 + 2 * (q->next % VDPA_CVQ_NUM), (uint16_t)(2 * slot));
    q->next++;
    __atomic_store_n((uint16_t *)(avail + 2), GUINT16_TO_LE(q->next), __ATOMIC_RELEASE);
}

static void post_packed(VdpaCvq *q, unsigned slot, uint64_t buf, uint32_t len)
{
    uint16_t wrapf = q->avail_wrap ? PACKED_F_AVAIL : PACKED_F_USED;
    uint8_t *head = desc_at(q, q->next), *tail = desc_at(q, q->next + 1);

    /* two slots always sit in the same lap: VDPA_CVQ_NUM is even */
    desc_write(head, buf, len, (uint16_t)slot, 0, true);
    desc_write(tail, buf + VDPA_CVQ_STATUS_OFF, 1, (uint16_t)slot, 0, true);
    qnic_st16(tail + 14, wrapf | VRING_DESC_F_WRITE);
    __atomic_store_n((uint16_t *)(head + 14), GUINT16_TO_LE(wrapf | VRING_DESC_F_NEXT),
                     __ATOMIC_RELEASE);
    q->next += 2;
    if (q->next >= VDPA_CVQ_NUM) {
        q->next -= VDPA_CVQ_NUM;
        q->avail_wrap = !q->avail_wrap;
    }
}

bool vdpa_cvq_send(QnicVhostVdpa *v, uint8_t cls, uint8_t cmd, const void *data, size_t len,
                   GError **errp)
{
    VdpaCvq *q = &v->cvq;
    uint64_t one = 1, buf;
    uint8_t *b;
    int slot;

    if (!v->info.has_cvq || !device_takes(v, cls, cmd)) {
        return true;
    }
    if (!q->running || len > VDPA_CVQ_STATUS_OFF - 2) {
        q->stats.dropped++;
        qnic_error_setg(errp, "vhost-vdpa '%s': %s", v->name, q->running
                        ? "control command too long for the shadow queue"
                        : "the device is not running");
        return false;
    }
    qnic_vhost_vdpa_cvq_poll(v);
    slot = free_slot(q);
    if (slot < 0) {
        q->stats.dropped++;
        qnic_error_setg(errp, "vhost-vdpa '%s': the device has not answered %u control "
                        "commands; this one is not sent (the next start replays the state)",
                        v->name, VDPA_CVQ_SLOTS);
        return false;
    }
    b = q->mem + VDPA_CVQ_BUFS_OFF + slot * VDPA_CVQ_BUF;
    b[0] = cls;
    b[1] = cmd;
    memcpy(b + 2, data, len);
    b[VDPA_CVQ_STATUS_OFF] = 0xff;
    q->busy[slot] = true;
    q->cls[slot] = cls;
    q->cmd[slot] = cmd;
    buf = v->info.cvq_iova + VDPA_CVQ_BUFS_OFF + slot * VDPA_CVQ_BUF;
    if (q->packed) {
        post_packed(q, slot, buf, 2 + len);
    } else {
        post_split(q, slot, buf, 2 + len);
    }
    q->stats.posted++;
    if (write(q->kick_fd, &one, sizeof(one)) < 0) {
        /* EAGAIN: the device has a kick pending */
    }
    return true;
}

void qnic_vhost_vdpa_cvq_stats(const QnicVhostVdpa *v, QnicVdpaCvqStats *out)
{
    *out = v->cvq.stats;
}
