/*
 * qnic as a vhost-user-net device (backend): the transport that lets a
 * frontend in another process (QEMU, DPDK's virtio_user, qnic's own
 * frontend) drive qnic's virtio-net model over shared memory. It turns the
 * frontend's requests into the calls a PCI transport would make (features,
 * status, ring addresses, kicks), maps the frontend's memory table as the
 * RAM of a machine with no RAM of its own, translates ring addresses from
 * the frontend's virtual addresses to guest-physical ones, watches kick
 * eventfds on the main loop and writes call eventfds for interrupts. The
 * frontend is untrusted: every field is checked before anything changes,
 * refused requests leave the ring state untouched, and every descriptor
 * that arrives is either kept (and closed on reset) or closed at once.
 */
#include "qnic/vhost-user-device.h"
#include "qnic/virtio-net.h"
#include "qnic/net.h"
#include "qnic/mainloop.h"
#include "qnic/log.h"
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <linux/virtio_net.h>

#define MSI_WINDOW_START QNIC_MSI_ADDR_BASE
#define MSI_WINDOW_END (QNIC_MSI_ADDR_BASE + QNIC_MSI_ADDR_SIZE)

typedef struct VhuVring {
    QnicVhuDev *d;
    unsigned index;
    uint32_t num;                   /* 0 = not set */
    bool addr_set;
    uint64_t desc_uaddr, avail_uaddr, used_uaddr;
    uint16_t base_idx;              /* where the ring (re)starts */
    bool base_wrap;
    bool have_used;                 /* packed: used position saved by a suspend */
    uint16_t used_idx;
    bool used_wrap;
    bool kick_set;                  /* SET_VRING_KICK seen (fd or no-fd) */
    int kick_fd, call_fd, err_fd;
    QnicFdWatch *kick_watch;
    bool enabled;
    bool started;
    uint64_t notifies;
    void (*core_broken_cb)(QnicVirtQueue *vq, void *opaque);
} VhuVring;

typedef struct VhuRegion {
    QnicVhuMemRegion r;
    void *map_base;
    size_t map_len;
    uint8_t *host;
    QnicRegion mr;
} VhuRegion;

struct QnicVhuDev {
    QnicMachine *machine;
    QnicVirtioDevice *vdev;
    char *netdev_id;
    unsigned max_pairs;
    unsigned nvrings;               /* 2 * max_pairs, + 1 with the control queue */
    bool ctrl_vq;                   /* the control queue is ours too (vring 2 * max_pairs) */
    unsigned pairs;                 /* last told to the device */
    bool warned_unsealed;           /* logged once: frontend memory can shrink */
    VhuVring *vr;                   /* [nvrings] */
    uint64_t offered, protocol_offered;
    uint64_t acked;                 /* SET_FEATURES as the frontend sent it */
    bool features_set;
    uint64_t protocol_acked;
    bool owner;
    unsigned nregions;
    VhuRegion regions[QNIC_VHU_MAX_REGIONS];
};

static const QnicVirtioTransportOps vhu_tops;

/* Virtio bits a vhost-user-net device may offer: the data path ones. The
 * control queue and what needs it stay in the frontend. */
static const uint64_t offerable =
    (1ull << VIRTIO_NET_F_CSUM) | (1ull << VIRTIO_NET_F_GUEST_CSUM) |
    (1ull << VIRTIO_NET_F_MTU) | (1ull << VIRTIO_NET_F_MAC) |
    (1ull << VIRTIO_NET_F_GSO) |
    (1ull << VIRTIO_NET_F_GUEST_TSO4) | (1ull << VIRTIO_NET_F_GUEST_TSO6) |
    (1ull << VIRTIO_NET_F_GUEST_ECN) | (1ull << VIRTIO_NET_F_GUEST_UFO) |
    (1ull << VIRTIO_NET_F_HOST_TSO4) | (1ull << VIRTIO_NET_F_HOST_TSO6) |
    (1ull << VIRTIO_NET_F_HOST_ECN) | (1ull << VIRTIO_NET_F_HOST_UFO) |
    (1ull << VIRTIO_NET_F_MRG_RXBUF) | (1ull << VIRTIO_NET_F_STATUS) |
    (1ull << VIRTIO_NET_F_SPEED_DUPLEX) |
    (1ull << VIRTIO_F_NOTIFY_ON_EMPTY) | (1ull << VIRTIO_F_ANY_LAYOUT) |
    (1ull << VIRTIO_RING_F_INDIRECT_DESC) | (1ull << VIRTIO_RING_F_EVENT_IDX) |
    (1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_F_RING_PACKED);

static void close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

static bool packed_negotiated(const QnicVhuDev *d)
{
    return d->features_set && (d->acked & (1ull << VIRTIO_F_RING_PACKED));
}

static bool protocol_negotiated(const QnicVhuDev *d)
{
    return d->features_set && (d->acked & (1ull << QNIC_VHU_F_PROTOCOL_FEATURES));
}

/* ---- memory table ---- */

/* The guest-physical address of [uaddr, uaddr+len) if it lies in one region. */
static bool uaddr_to_gpa(const QnicVhuDev *d, uint64_t uaddr, uint64_t len, uint64_t *gpa)
{
    for (unsigned i = 0; i < d->nregions; i++) {
        const QnicVhuMemRegion *r = &d->regions[i].r;
        if (uaddr >= r->userspace_addr && len <= r->memory_size &&
            uaddr - r->userspace_addr <= r->memory_size - len) {
            *gpa = r->guest_phys_addr + (uaddr - r->userspace_addr);
            return true;
        }
    }
    return false;
}

static void region_unmap(VhuRegion *r)
{
    qnic_as_unmap(&r->mr);
    /* the dirty log's record of the rings' long-lived writable maps */
    qnic_region_dirty_free(&r->mr);
    if (r->map_base) {
        munmap(r->map_base, r->map_len);
    }
    memset(r, 0, sizeof(*r));
}

/* Compare last bytes, not ends: a range may end exactly at 2^64, where
 * start + len wraps to 0 and an end-based test would miss the overlap.
 * Both lengths are nonzero and neither range wraps (checked by callers). */
static bool ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
    return a <= b + (blen - 1) && b <= a + (alen - 1);
}

/* Every region nonempty, not wrapping, clear of the MSI window and of the
 * others, in both address spaces. */
static bool regions_valid(const QnicVhuMemRegion *rs, unsigned n, GError **errp)
{
    unsigned i;

    for (i = 0; i < n; i++) {
        const QnicVhuMemRegion *r = &rs[i];
        if (r->memory_size == 0 ||
            r->guest_phys_addr + r->memory_size - 1 < r->guest_phys_addr ||
            r->userspace_addr + r->memory_size - 1 < r->userspace_addr ||
            r->mmap_offset + r->memory_size - 1 < r->mmap_offset ||
            r->memory_size > (uint64_t)SIZE_MAX / 2) {
            qnic_error_setg(errp, "vhost-user: SET_MEM_TABLE region %u (gpa 0x%" PRIx64
                            " size 0x%" PRIx64 " offset 0x%" PRIx64 ") is empty or wraps",
                            i, r->guest_phys_addr, r->memory_size, r->mmap_offset);
            return false;
        }
        if (ranges_overlap(r->guest_phys_addr, r->memory_size, MSI_WINDOW_START,
                           MSI_WINDOW_END - MSI_WINDOW_START)) {
            qnic_error_setg(errp, "vhost-user: SET_MEM_TABLE region %u covers the MSI window "
                            "0x%" PRIx64, i, (uint64_t)MSI_WINDOW_START);
            return false;
        }
        for (unsigned j = 0; j < i; j++) {
            const QnicVhuMemRegion *o = &rs[j];
            if (ranges_overlap(r->guest_phys_addr, r->memory_size, o->guest_phys_addr,
                               o->memory_size) ||
                ranges_overlap(r->userspace_addr, r->memory_size, o->userspace_addr,
                               o->memory_size)) {
                qnic_error_setg(errp, "vhost-user: SET_MEM_TABLE regions %u and %u overlap", j, i);
                return false;
            }
        }
    }
    return true;
}

/* Check the table of msg and map every region into out[]; on failure
 * nothing stays mapped. The descriptors are left in msg. */
static bool mem_table_map(QnicVhuDev *d, const QnicVhuMsg *msg, VhuRegion *out, GError **errp)
{
    const QnicVhuMemory *mem = &msg->p.memory;
    long page = sysconf(_SC_PAGESIZE);
    unsigned n = mem->nregions, i;

    if (n == 0) {
        qnic_error_setg(errp, "vhost-user: SET_MEM_TABLE with no regions");
        return false;
    }
    if (msg->nfds != n) {
        qnic_error_setg(errp, "vhost-user: SET_MEM_TABLE with %u regions but %u descriptors",
                        n, msg->nfds);
        return false;
    }
    if (!regions_valid(mem->regions, n, errp)) {
        return false;
    }
    for (i = 0; i < n; i++) {
        const QnicVhuMemRegion *r = &mem->regions[i];
        uint64_t aligned = r->mmap_offset & ~(uint64_t)(page - 1);
        uint64_t len = r->memory_size + (r->mmap_offset - aligned);
        struct stat st;
        void *p;

        /* Mapping past the end of the file would turn the first guest
         * access there into SIGBUS. */
        if (fstat(msg->fds[i], &st) < 0 || !S_ISREG(st.st_mode) ||
            (uint64_t)st.st_size < r->mmap_offset + r->memory_size) {
            qnic_error_setg(errp, "vhost-user: SET_MEM_TABLE region %u: descriptor is not a "
                            "file of at least 0x%" PRIx64 " bytes", i,
                            r->mmap_offset + r->memory_size);
            goto fail;
        }
        /* The size is right now; only a seal keeps it so. A frontend that
         * shrinks unsealed memory later makes our next access there fault
         * (QEMU's memfd backend and qnic seal theirs; DPDK's files do not). */
        if (!(fcntl(msg->fds[i], F_GET_SEALS) & F_SEAL_SHRINK) && !d->warned_unsealed) {
            d->warned_unsealed = true;
            qnic_warn("vhost-user: the frontend's memory is not sealed against shrinking; "
                      "a frontend that truncates it can crash this backend");
        }
        p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE,
                 msg->fds[i], (off_t)aligned);
        if (p == MAP_FAILED) {
            qnic_error_setg_errno(errp, errno, "vhost-user: SET_MEM_TABLE region %u: mmap of "
                                  "0x%" PRIx64 " bytes", i, len);
            goto fail;
        }
        memset(&out[i], 0, sizeof(out[i]));
        out[i].r = *r;
        out[i].map_base = p;
        out[i].map_len = len;
        out[i].host = (uint8_t *)p + (r->mmap_offset - aligned);
    }
    return true;

fail:
    while (i-- > 0) {
        munmap(out[i].map_base, out[i].map_len);
        memset(&out[i], 0, sizeof(out[i]));
    }
    return false;
}

static void mem_table_unmap_all(QnicVhuDev *d)
{
    for (unsigned i = 0; i < d->nregions; i++) {
        region_unmap(&d->regions[i]);
    }
    d->nregions = 0;
}

/* ---- rings ---- */

/* Tell the device (and a multiqueue backend, which attaches or detaches
 * its queues) only when the count changes; force after set_features,
 * which puts the device back to one pair. */
static void vring_update_pairs_force(QnicVhuDev *d, bool force)
{
    unsigned pairs = 1;

    for (unsigned i = 0; i < 2 * d->max_pairs; i++) {
        if (d->vr[i].enabled) {
            pairs = MAX(pairs, i / 2 + 1);
        }
    }
    if (force || pairs != d->pairs) {
        d->pairs = pairs;
        qnic_virtio_net_bare_set_pairs(d->vdev, pairs);
    }
}

static void vring_update_pairs(QnicVhuDev *d)
{
    vring_update_pairs_force(d, false);
}

static void kick_cb(void *opaque, int fd, GIOCondition cond)
{
    VhuVring *vr = opaque;
    uint64_t v;
    /* Never blocks, even if the frontend drained the counter after poll
     * and cleared O_NONBLOCK (see vhost-user-msg.c). */
    int r = qnic_vhu_eventfd_read(fd, &v);

    if (r == 0) {
        return;
    }
    if (r < 0) {
        /* An error: stop watching rather than spin. */
        qnic_report_ratelimited("vhost-user: vring %u kick descriptor: %s; no longer watched",
                                vr->index, g_strerror(errno));
        qnic_fd_watch_remove(vr->kick_watch);
        vr->kick_watch = NULL;
        return;
    }
    qnic_vhu_dev_kick(vr->d, vr->index);
}

static void vring_watch_kick(VhuVring *vr)
{
    if (vr->kick_watch) {
        qnic_fd_watch_remove(vr->kick_watch);
        vr->kick_watch = NULL;
    }
    if (vr->started && vr->kick_fd >= 0) {
        vr->kick_watch = qnic_fd_watch_add(vr->kick_fd, G_IO_IN, kick_cb, vr);
    }
}

/* Write a call or err eventfd. A frontend that filled its counter and
 * cleared O_NONBLOCK would block us; the guarded write gives up instead
 * and the descriptor is dropped, so it costs at most one guard tick. */
static void signal_peer(VhuVring *vr, int *fd, const char *what)
{
    if (*fd < 0 || qnic_vhu_eventfd_signal(*fd) > 0) {
        return;
    }
    qnic_report_ratelimited("vhost-user: vring %u: the frontend's %s eventfd %s; it is no "
                            "longer signalled", vr->index, what,
                            errno == EAGAIN ? "is full" : g_strerror(errno));
    close_fd(fd);
}

static void vq_broken(QnicVirtQueue *vq, void *opaque)
{
    QnicVirtioDevice *vdev = opaque;
    QnicVhuDev *d = vdev->transport;

    if (vq->index < d->nvrings) {
        VhuVring *vr = &d->vr[vq->index];
        signal_peer(vr, &vr->err_fd, "err");
        if (vr->core_broken_cb) {
            vr->core_broken_cb(vq, opaque);
        }
    }
}

/* Stop a running ring, remembering where it was so that it can restart
 * at the same place (GET_VRING_BASE, or a memory/feature change). */
static void vring_suspend(QnicVhuDev *d, unsigned i)
{
    VhuVring *vr = &d->vr[i];
    QnicVirtQueue *vq = &d->vdev->vqs[i];

    if (!vr->started) {
        return;
    }
    vr->base_idx = vq->last_avail_idx;
    vr->base_wrap = vq->avail_wrap;
    vr->used_idx = vq->used_idx;
    vr->used_wrap = vq->used_wrap;
    vr->have_used = true;
    vr->started = false;
    vring_watch_kick(vr);
    qnic_virtio_queue_reset(d->vdev, i);
}

static bool any_started(const QnicVhuDev *d)
{
    for (unsigned i = 0; i < d->nvrings; i++) {
        if (d->vr[i].started) {
            return true;
        }
    }
    return false;
}

/* Start ring i once everything it needs has arrived. */
static void vring_try_start(QnicVhuDev *d, unsigned i)
{
    VhuVring *vr = &d->vr[i];
    QnicVirtioDevice *vdev = d->vdev;
    QnicVirtQueue *vq = &vdev->vqs[i];
    bool packed = packed_negotiated(d);
    uint64_t desc, avail, used;

    if (vr->started || !vr->kick_set || !vr->num || !vr->addr_set || !d->nregions ||
        !d->features_set) {
        return;
    }
    if (!packed && !QNIC_IS_POW2(vr->num)) {
        qnic_report_ratelimited("vhost-user: vring %u: size %u is not a power of two "
                                "(split ring)", i, vr->num);
        return;
    }
    if (!uaddr_to_gpa(d, vr->desc_uaddr, 16ull * vr->num, &desc) ||
        !uaddr_to_gpa(d, vr->avail_uaddr, packed ? 4 : 6 + 2ull * vr->num, &avail) ||
        !uaddr_to_gpa(d, vr->used_uaddr, packed ? 4 : 6 + 8ull * vr->num, &used)) {
        qnic_report_ratelimited("vhost-user: vring %u: ring addresses are outside the "
                                "memory table; not started", i);
        return;
    }
    if ((desc & 15) || (avail & (packed ? 3 : 1)) || (used & 3)) {
        /* The table maps an aligned frontend address to a misaligned
         * guest-physical one. */
        qnic_report_ratelimited("vhost-user: vring %u: ring addresses are misaligned in "
                                "guest memory; not started", i);
        return;
    }
    if (!any_started(d) && vdev->broken) {
        /* Every ring stopped: the frontend starts over, as after a reset. */
        vdev->broken = false;
        vdev->status &= ~VIRTIO_CONFIG_S_NEEDS_RESET;
    }
    qnic_vq_reset(vq);
    vq->num = vr->num;
    vq->desc_gpa = desc;
    vq->avail_gpa = avail;
    vq->used_gpa = used;
    vq->enabled = true;
    if (!qnic_vq_start(vq, vdev->guest_features)) {
        qnic_report_ratelimited("vhost-user: vring %u: cannot map its rings; not started", i);
        qnic_vq_reset(vq);
        return;
    }
    vq->vector = i;
    if (vq->broken_cb != vq_broken) {
        vr->core_broken_cb = vq->broken_cb;
        vq->broken_cb = vq_broken;
    }
    if (packed) {
        vq->last_avail_idx = vr->base_idx % vr->num;
        vq->avail_wrap = vr->base_wrap;
        if (vr->have_used) {
            vq->used_idx = vr->used_idx % vr->num;
            vq->used_wrap = vr->used_wrap;
        } else {
            vq->used_idx = vq->last_avail_idx;
            vq->used_wrap = vq->avail_wrap;
        }
    } else {
        vq->last_avail_idx = vr->base_idx;
        /* The used index in the ring is the truth: the frontend may have
         * moved it (or another backend did before us). */
        vq->used_idx = qnic_ld16(vq->used + 2);
    }
    vq->shadow_avail_idx = vq->last_avail_idx;
    vq->signalled_used_valid = false;
    vq->enabled = vr->enabled;
    vr->started = true;
    vring_watch_kick(vr);
    /* Buffers made available before the kick fd arrived. */
    qnic_vhu_dev_kick(d, i);
}

static void vring_try_start_all(QnicVhuDev *d)
{
    for (unsigned i = 0; i < d->nvrings; i++) {
        vring_try_start(d, i);
    }
}

static void vring_forget(QnicVhuDev *d, unsigned i)
{
    VhuVring *vr = &d->vr[i];

    vring_suspend(d, i);
    close_fd(&vr->kick_fd);
    close_fd(&vr->call_fd);
    close_fd(&vr->err_fd);
    memset(vr, 0, sizeof(*vr));
    vr->d = d;
    vr->index = i;
    vr->kick_fd = vr->call_fd = vr->err_fd = -1;
}

void qnic_vhu_dev_kick(QnicVhuDev *d, unsigned vring)
{
    VhuVring *vr;

    if (vring >= d->nvrings) {
        return;
    }
    vr = &d->vr[vring];
    if (!vr->started || !vr->enabled) {
        return;
    }
    qnic_virtio_queue_kick(d->vdev, vring);
}

/* ---- transport ops: interrupts become call eventfd writes ---- */

static void vhu_notify(QnicVirtioDevice *vdev, uint16_t vector)
{
    QnicVhuDev *d = vdev->transport;
    VhuVring *vr;

    if (vector >= d->nvrings) {
        return;     /* configuration changes: the frontend owns the config */
    }
    vr = &d->vr[vector];
    if (vr->call_fd < 0) {
        return;
    }
    signal_peer(vr, &vr->call_fd, "call");
    vr->notifies++;
}

static void vhu_update_irq(QnicVirtioDevice *vdev)
{
}

static const QnicVirtioTransportOps vhu_tops = {
    .notify = vhu_notify,
    .update_irq = vhu_update_irq,
};

/* ---- features ---- */

static void apply_features(QnicVhuDev *d)
{
    QnicVirtioDevice *vdev = d->vdev;
    uint64_t f = d->acked & ~(1ull << QNIC_VHU_F_PROTOCOL_FEATURES);
    uint8_t old = vdev->status;

    /* The device keeps the full queue layout whatever the frontend says
     * about MQ: vring 2k/2k+1 must stay pair k, never the control queue. */
    if (d->max_pairs > 1) {
        f |= (1ull << VIRTIO_NET_F_MQ) | (1ull << VIRTIO_NET_F_CTRL_VQ);
    } else {
        f &= ~(1ull << VIRTIO_NET_F_MQ);
    }
    if (d->ctrl_vq) {
        /* vring 2 * max_pairs is the control queue whatever was acked */
        f |= 1ull << VIRTIO_NET_F_CTRL_VQ;
    }
    vdev->guest_features = f;
    vdev->driver_features = f;
    vdev->legacy = !(f & (1ull << VIRTIO_F_VERSION_1));
    if (vdev->ops && vdev->ops->set_features) {
        vdev->ops->set_features(vdev, f);
    }
    vdev->status = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
                   VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK;
    if (vdev->ops && vdev->ops->set_status && !(old & VIRTIO_CONFIG_S_DRIVER_OK)) {
        vdev->ops->set_status(vdev, old, vdev->status);
    }
}

/* ---- requests ---- */

static bool vring_index(QnicVhuDev *d, const QnicVhuMsg *msg, uint32_t idx, GError **errp)
{
    if (idx >= d->nvrings) {
        qnic_error_setg(errp, "vhost-user: %s for vring %u, the device has %u",
                        qnic_vhu_request_name(msg->hdr.request), idx, d->nvrings);
        return false;
    }
    return true;
}

/* SET_VRING_KICK/CALL/ERR: validate the u64 and the descriptor count;
 * returns the vring and takes the fd (-1 for "no fd"). */
static bool vring_fd_msg(QnicVhuDev *d, QnicVhuMsg *msg, unsigned *idx, int *fd, GError **errp)
{
    uint64_t v = msg->p.u64;
    bool nofd = v & QNIC_VHU_VRING_NOFD_MASK;

    if (v & ~(uint64_t)(QNIC_VHU_VRING_IDX_MASK | QNIC_VHU_VRING_NOFD_MASK)) {
        qnic_error_setg(errp, "vhost-user: %s with unknown bits 0x%" PRIx64,
                        qnic_vhu_request_name(msg->hdr.request), v);
        return false;
    }
    *idx = v & QNIC_VHU_VRING_IDX_MASK;
    if (!vring_index(d, msg, *idx, errp)) {
        return false;
    }
    if (msg->nfds != (nofd ? 0u : 1u)) {
        qnic_error_setg(errp, "vhost-user: %s for vring %u with %u descriptors (%s)",
                        qnic_vhu_request_name(msg->hdr.request), *idx, msg->nfds,
                        nofd ? "the no-fd flag is set" : "needs one");
        return false;
    }
    *fd = nofd ? -1 : qnic_vhu_msg_take_fd(msg, 0);
    if (*fd >= 0) {
        /* Eventfds only: their I/O is made non-blocking per call, which no
         * frontend can undo; pipes and sockets could still block us. */
        g_autoptr(GError) why = NULL;
        if (!qnic_vhu_fd_is_eventfd(*fd, &why)) {
            qnic_error_setg(errp, "vhost-user: %s for vring %u: %s",
                            qnic_vhu_request_name(msg->hdr.request), *idx, why->message);
            close(*fd);
            *fd = -1;
            return false;
        }
    }
    return true;
}

/* Replace the table with fresh[0..n-1] (checked and mapped). */
static void mem_table_install(QnicVhuDev *d, VhuRegion *fresh, unsigned n)
{
    g_autofree bool *was = g_new0(bool, d->nvrings);

    /* Rings hold pointers into the old table: stop them across the swap
     * and restart them where they were. */
    for (unsigned i = 0; i < d->nvrings; i++) {
        was[i] = d->vr[i].started;
        vring_suspend(d, i);
    }
    mem_table_unmap_all(d);
    for (unsigned i = 0; i < n; i++) {
        VhuRegion *r = &d->regions[i];
        *r = fresh[i];
        qnic_region_init_ram(&r->mr, "vhost-user-ram", r->host, r->r.memory_size, -1, 0);
        qnic_as_map(&d->machine->mem, &r->mr, r->r.guest_phys_addr, 0);
    }
    d->nregions = n;
    vring_try_start_all(d);
    for (unsigned i = 0; i < d->nvrings; i++) {
        if (was[i] && !d->vr[i].started) {
            qnic_report_ratelimited("vhost-user: vring %u stopped: its rings are not in the "
                                    "new memory table", i);
        }
    }
}

static bool handle_mem_table(QnicVhuDev *d, QnicVhuMsg *msg, QnicVhuMsg *reply, GError **errp)
{
    VhuRegion fresh[QNIC_VHU_MAX_REGIONS];

    if (!mem_table_map(d, msg, fresh, errp)) {
        return false;
    }
    qnic_vhu_msg_close_fds(msg);    /* the mappings keep the memory */
    mem_table_install(d, fresh, msg->p.memory.nregions);
    return true;
}

bool qnic_vhu_dev_set_host_memory(QnicVhuDev *d, const QnicVhuHostRegion *hr, unsigned n,
                                  GError **errp)
{
    QnicVhuMemRegion rs[QNIC_VHU_MAX_REGIONS] = { 0 };
    VhuRegion fresh[QNIC_VHU_MAX_REGIONS];

    if (n > QNIC_VHU_MAX_REGIONS) {
        qnic_error_setg(errp, "vhost-user: %u memory regions, at most %u", n,
                        QNIC_VHU_MAX_REGIONS);
        return false;
    }
    for (unsigned i = 0; i < n; i++) {
        rs[i].guest_phys_addr = rs[i].userspace_addr = hr[i].addr;
        rs[i].memory_size = hr[i].size;
    }
    if (!regions_valid(rs, n, errp)) {
        return false;
    }
    for (unsigned i = 0; i < n; i++) {
        memset(&fresh[i], 0, sizeof(fresh[i]));
        fresh[i].r = rs[i];
        fresh[i].host = hr[i].host;     /* the caller's memory: never unmapped here */
    }
    mem_table_install(d, fresh, n);
    return true;
}

static bool handle_vring_addr(QnicVhuDev *d, QnicVhuMsg *msg, QnicVhuMsg *reply, GError **errp)
{
    const QnicVhuVringAddr *a = &msg->p.addr;
    VhuVring *vr;
    bool packed = packed_negotiated(d);
    uint64_t gpa;

    if (!vring_index(d, msg, a->index, errp)) {
        return false;
    }
    vr = &d->vr[a->index];
    if (a->flags & ~(1u << QNIC_VHU_VRING_F_LOG)) {
        qnic_error_setg(errp, "vhost-user: SET_VRING_ADDR vring %u with unknown flags 0x%x",
                        a->index, a->flags);
        return false;
    }
    if (!d->nregions) {
        qnic_error_setg(errp, "vhost-user: SET_VRING_ADDR for vring %u before SET_MEM_TABLE",
                        a->index);
        return false;
    }
    if (!vr->num) {
        qnic_error_setg(errp, "vhost-user: SET_VRING_ADDR for vring %u before SET_VRING_NUM",
                        a->index);
        return false;
    }
    if (vr->started) {
        if (vr->addr_set && a->desc_user_addr == vr->desc_uaddr &&
            a->avail_user_addr == vr->avail_uaddr && a->used_user_addr == vr->used_uaddr) {
            return true;    /* only the log flag changed; no logging here */
        }
        qnic_error_setg(errp, "vhost-user: SET_VRING_ADDR for running vring %u", a->index);
        return false;
    }
    if ((a->desc_user_addr & 15) || (a->avail_user_addr & (packed ? 3 : 1)) ||
        (a->used_user_addr & 3)) {
        qnic_error_setg(errp, "vhost-user: SET_VRING_ADDR vring %u: misaligned ring address",
                        a->index);
        return false;
    }
    if (!uaddr_to_gpa(d, a->desc_user_addr, 16ull * vr->num, &gpa) ||
        !uaddr_to_gpa(d, a->avail_user_addr, packed ? 4 : 6 + 2ull * vr->num, &gpa) ||
        !uaddr_to_gpa(d, a->used_user_addr, packed ? 4 : 6 + 8ull * vr->num, &gpa)) {
        qnic_error_setg(errp, "vhost-user: SET_VRING_ADDR vring %u: a ring of %u entries at "
                        "desc 0x%" PRIx64 " avail 0x%" PRIx64 " used 0x%" PRIx64
                        " is not inside one memory region", a->index, vr->num,
                        a->desc_user_addr, a->avail_user_addr, a->used_user_addr);
        return false;
    }
    vr->desc_uaddr = a->desc_user_addr;
    vr->avail_uaddr = a->avail_user_addr;
    vr->used_uaddr = a->used_user_addr;
    vr->addr_set = true;
    vring_try_start(d, a->index);
    return true;
}

static void send_rarp(QnicVhuDev *d, const uint8_t mac[6])
{
    QnicNetdev *nd = qnic_netdev_find(d->machine->cfg.backends, d->netdev_id);
    QnicNetClient *nc = nd && nd->queues > 0 ? nd->ncs[0]->peer : NULL;
    uint8_t buf[12 + 60] = { 0 };
    uint8_t *f;
    unsigned hdr;

    if (!nc) {
        return;
    }
    hdr = MIN((unsigned)MAX(nc->vnet_hdr_len, 0), 12u);
    f = buf + hdr;
    /* The announce QEMU sends after migration: a broadcast RARP request
     * "who am I", sender and target the guest's MAC. */
    qnic_net_rarp_frame(f, mac);
    qnic_net_send(nc, buf, hdr + 60);
}

static void reset_state(QnicVhuDev *d, bool keep_connection)
{
    for (unsigned i = 0; i < d->nvrings; i++) {
        vring_forget(d, i);
    }
    qnic_virtio_reset(d->vdev);
    mem_table_unmap_all(d);
    d->acked = 0;
    d->features_set = false;
    d->pairs = 1;       /* the device reset went back to one pair */
    if (!keep_connection) {
        d->protocol_acked = 0;
        d->owner = false;
    }
}

void qnic_vhu_dev_reset(QnicVhuDev *d)
{
    reset_state(d, false);
}

static bool has_own_reply(uint32_t req)
{
    switch (req) {
    case QNIC_VHU_GET_FEATURES:
    case QNIC_VHU_GET_PROTOCOL_FEATURES:
    case QNIC_VHU_GET_VRING_BASE:
    case QNIC_VHU_GET_QUEUE_NUM:
    case QNIC_VHU_GET_CONFIG:
    case QNIC_VHU_GET_MAX_MEM_SLOTS:
    case QNIC_VHU_GET_INFLIGHT_FD:
    case QNIC_VHU_GET_STATUS:
    case QNIC_VHU_SET_LOG_BASE:
        return true;
    default:
        return false;
    }
}

static void reply_u64(QnicVhuMsg *reply, uint64_t v)
{
    reply->hdr.size = sizeof(uint64_t);
    reply->p.u64 = v;
}

/* The vring a {index, num} request names, or NULL (errp set). */
static VhuVring *state_vring(QnicVhuDev *d, QnicVhuMsg *msg, GError **errp)
{
    return vring_index(d, msg, msg->p.state.index, errp) ? &d->vr[msg->p.state.index] : NULL;
}

static bool handle_get_features(QnicVhuDev *d, QnicVhuMsg *msg, QnicVhuMsg *reply, GError **errp)
{
    reply_u64(reply, d->offered);
    return true;
}

static bool handle_set_features(QnicVhuDev *d, QnicVhuMsg *msg, QnicVhuMsg *reply, GError **errp)
{
    uint64_t f = msg->p.u64;

    if (f & ~d->offered) {
        qnic_error_setg(errp, "vhost-user: SET_FEATURES 0x%" PRIx64 " has bits never "
                        "offered (0x%" PRIx64 ")", f, f & ~d->offered);
        return false;
    }
    /* The ring layout (packed, event index) follows the features:
     * restart running rings under the new ones. */
    for (unsigned i = 0; i < d->nvrings; i++) {
        vring_suspend(d, i);
    }
    d->acked = f;
    d->features_set = true;
    apply_features(d);
    vring_try_start_all(d);
    vring_update_pairs_force(d, d->max_pairs > 1 || d->pairs != 1);
    return true;
}

static bool handle_get_protocol_features(QnicVhuDev *d, QnicVhuMsg *msg, QnicVhuMsg *reply,
                                         GError **errp)
{
    reply_u64(reply, d->protocol_offered);
    return true;
}

static bool handle_set_protocol_features(QnicVhuDev *d, QnicVhuMsg *msg, QnicVhuMsg *reply,
                                         GError **errp)
{
    if (msg->p.u64 & ~d->protocol_offered) {
        qnic_error_setg(errp, "vhost-user: SET_PROTOCOL_FEATURES 0x%" PRIx64 " has bits "
                        "never offered (0x%" PRIx64 ")", msg->p.u64,
                        msg->p.u64 & ~d->protocol_offered);
        return false;
    }
    d->protocol_acked = msg->p.u64;
    return true;
}

static bool handle_set_owner(QnicVhuDev *d, QnicVhuMsg *msg, QnicVhuMsg *reply, GError **errp)
{
    d->owner = true;
    return true;
}

/* RESET_OWNER and RESET_DEVICE: back to a fresh device on this connection. */
static bool handle_reset(QnicVhuDev *d, QnicVhuMsg *msg, QnicVhuMsg *reply, GError **errp)
{
    reset_state(d, true);
    return true;
}

static bool handle_get_queue_num(QnicVhuDev *d, QnicVhuMsg *msg, QnicVhuMsg *reply, GError **errp)
{
    reply_u64(reply, d->max_pairs);
    return true;
}

static bool handle_set_vring_num(QnicVhuDev *d, QnicVhuMsg *msg, QnicVhuMsg *reply, GError **errp)
{
    const QnicVhuVringState *s = &msg->p.state;
    VhuVring *vr = state_vring(d, msg, errp);

    if (!vr) {
        return false;
    }
    if (s->num == 0 || s->num > QNIC_VQ_MAX_SIZE ||
        (!packed_negotiated(d) && !QNIC_IS_POW2(s->num))) {
        qnic_error_setg(errp, "vhost-user: SET_VRING_NUM vring %u size %u (must be %s up "
                        "to %u)", s->index, s->num,
                        packed_negotiated(d) ? "1" : "a power of two", QNIC_VQ_MAX_SIZE);
        return false;
    }
    if (vr->started) {
        qnic_error_setg(errp, "vhost-user: SET_VRING_NUM for running vring %u", s->index);
        return false;
    }
    vr->num = s->num;
    return true;
}

static bool handle_set_vring_base(QnicVhuDev *d, QnicVhuMsg *msg, QnicVhuMsg *reply, GError **errp)
{
    const QnicVhuVringState *s = &msg->p.state;
    VhuVring *vr = state_vring(d, msg, errp);

    if (!vr) {
        return false;
    }
    if (vr->started) {
        qnic_error_setg(errp, "vhost-user: SET_VRING_BASE for running vring %u", s->index);
        return false;
    }
    /* Packed: bits 0-14 last_avail_idx, bit 15 its wrap counter; QEMU
     * also puts the used index and wrap counter in bits 16-31. */
    if (packed_negotiated(d)
        ? (vr->num && ((s->num & 0x7fff) >= vr->num || ((s->num >> 16) & 0x7fff) >= vr->num))
        : s->num > 0xffff) {
        qnic_error_setg(errp, "vhost-user: SET_VRING_BASE vring %u base 0x%x out of range",
                        s->index, s->num);
        return false;
    }
    if (packed_negotiated(d)) {
        vr->base_idx = s->num & 0x7fff;
        vr->base_wrap = (s->num >> 15) & 1;
        /* Without the upper half the used side starts where avail is. */
        vr->have_used = (s->num >> 16) != 0;
        vr->used_idx = (s->num >> 16) & 0x7fff;
        vr->used_wrap = s->num >> 31;
        return true;
    }
    vr->base_idx = s->num;
    vr->base_wrap = true;
    vr->have_used = false;
    return true;
}

static bool handle_get_vring_base(QnicVhuDev *d, QnicVhuMsg *msg, QnicVhuMsg *reply, GError **errp)
{
    const QnicVhuVringState *s = &msg->p.state;
    VhuVring *vr = state_vring(d, msg, errp);

    if (!vr) {
        return false;
    }
    vring_suspend(d, s->index);
    /* A stopped ring restarts only with a new kick descriptor. */
    close_fd(&vr->kick_fd);
    vr->kick_set = false;
    if (!protocol_negotiated(d)) {
        vr->enabled = false;
    }
    vring_update_pairs(d);
    reply->hdr.size = sizeof(QnicVhuVringState);
    reply->p.state.index = s->index;
    reply->p.state.num = packed_negotiated(d)
        ? (uint32_t)(vr->base_idx & 0x7fff) | ((uint32_t)vr->base_wrap << 15) |
          ((uint32_t)(vr->used_idx & 0x7fff) << 16) | ((uint32_t)vr->used_wrap << 31)
        : vr->base_idx;
    return true;
}

static bool handle_set_vring_kick(QnicVhuDev *d, QnicVhuMsg *msg, QnicVhuMsg *reply, GError **errp)
{
    VhuVring *vr;
    unsigned idx;
    int fd;

    if (!vring_fd_msg(d, msg, &idx, &fd, errp)) {
        return false;
    }
    vr = &d->vr[idx];
    close_fd(&vr->kick_fd);
    vr->kick_fd = fd;
    vr->kick_set = true;
    if (!protocol_negotiated(d)) {
        /* Without protocol features a ring is enabled by its kick. */
        vr->enabled = true;
        vring_update_pairs(d);
    }
    if (vr->started) {
        vring_watch_kick(vr);
        qnic_vhu_dev_kick(d, idx);
    } else {
        vring_try_start(d, idx);
    }
    return true;
}

/* SET_VRING_CALL / SET_VRING_ERR: replace the vring's descriptor. */
static bool set_vring_fd(QnicVhuDev *d, QnicVhuMsg *msg, bool call, GError **errp)
{
    unsigned idx;
    int fd, *slot;

    if (!vring_fd_msg(d, msg, &idx, &fd, errp)) {
        return false;
    }
    slot = call ? &d->vr[idx].call_fd : &d->vr[idx].err_fd;
    close_fd(slot);
    *slot = fd;
    return true;
}

static bool handle_set_vring_call(QnicVhuDev *d, QnicVhuMsg *msg, QnicVhuMsg *reply, GError **errp)
{
    return set_vring_fd(d, msg, true, errp);
}

static bool handle_set_vring_err(QnicVhuDev *d, QnicVhuMsg *msg, QnicVhuMsg *reply, GError **errp)
{
    return set_vring_fd(d, msg, false, errp);
}

static bool handle_set_vring_enable(QnicVhuDev *d, QnicVhuMsg *msg, QnicVhuMsg *reply,
                                    GError **errp)
{
    const QnicVhuVringState *s = &msg->p.state;
    VhuVring *vr = state_vring(d, msg, errp);

    if (!vr) {
        return false;
    }
    if (s->num > 1) {
        qnic_error_setg(errp, "vhost-user: SET_VRING_ENABLE vring %u with %u (0 or 1)",
                        s->index, s->num);
        return false;
    }
    vr->enabled = s->num;
    if (vr->started) {
        d->vdev->vqs[s->index].enabled = vr->enabled;
    }
    vring_update_pairs(d);
    qnic_vhu_dev_kick(d, s->index);
    return true;
}

static bool handle_send_rarp(QnicVhuDev *d, QnicVhuMsg *msg, QnicVhuMsg *reply, GError **errp)
{
    uint8_t mac[8];

    memcpy(mac, &msg->p.u64, sizeof(mac));
    send_rarp(d, mac);
    return true;
}

/* One handler per request the device implements (its payload size was
 * checked by qnic_vhu_msg_check before); any other request is refused. A
 * handler that answers fills reply's payload (hdr.size > 0). */
typedef bool VhuHandler(QnicVhuDev *d, QnicVhuMsg *msg, QnicVhuMsg *reply, GError **errp);

static VhuHandler *const handlers[QNIC_VHU_REQUEST_MAX] = {
    [QNIC_VHU_GET_FEATURES] = handle_get_features,
    [QNIC_VHU_SET_FEATURES] = handle_set_features,
    [QNIC_VHU_GET_PROTOCOL_FEATURES] = handle_get_protocol_features,
    [QNIC_VHU_SET_PROTOCOL_FEATURES] = handle_set_protocol_features,
    [QNIC_VHU_SET_OWNER] = handle_set_owner,
    [QNIC_VHU_RESET_OWNER] = handle_reset,
    [QNIC_VHU_RESET_DEVICE] = handle_reset,
    [QNIC_VHU_GET_QUEUE_NUM] = handle_get_queue_num,
    [QNIC_VHU_SET_MEM_TABLE] = handle_mem_table,
    [QNIC_VHU_SET_VRING_NUM] = handle_set_vring_num,
    [QNIC_VHU_SET_VRING_ADDR] = handle_vring_addr,
    [QNIC_VHU_SET_VRING_BASE] = handle_set_vring_base,
    [QNIC_VHU_GET_VRING_BASE] = handle_get_vring_base,
    [QNIC_VHU_SET_VRING_KICK] = handle_set_vring_kick,
    [QNIC_VHU_SET_VRING_CALL] = handle_set_vring_call,
    [QNIC_VHU_SET_VRING_ERR] = handle_set_vring_err,
    [QNIC_VHU_SET_VRING_ENABLE] = handle_set_vring_enable,
    [QNIC_VHU_SEND_RARP] = handle_send_rarp,
};

static bool dispatch(QnicVhuDev *d, QnicVhuMsg *msg, QnicVhuMsg *reply, bool *send_reply,
                     GError **errp)
{
    uint32_t req = msg->hdr.request;

    if (req >= G_N_ELEMENTS(handlers) || !handlers[req]) {
        qnic_error_setg(errp, "vhost-user: request %u (%s) is not supported by qnic's "
                        "vhost-user-net device", req, qnic_vhu_request_name(req));
        return false;
    }
    if (!handlers[req](d, msg, reply, errp)) {
        return false;
    }
    *send_reply = reply->hdr.size > 0;
    return true;
}

bool qnic_vhu_dev_handle(QnicVhuDev *d, QnicVhuMsg *msg, QnicVhuMsg *reply, bool *send_reply,
                         GError **errp)
{
    uint32_t req = msg->hdr.request;
    bool ok;

    *send_reply = false;
    qnic_vhu_msg_init(reply, req, 0);
    reply->hdr.flags = QNIC_VHU_VERSION | QNIC_VHU_FLAG_REPLY;
    if (msg->hdr.flags & QNIC_VHU_FLAG_REPLY) {
        qnic_error_setg(errp, "vhost-user: %s arrived with the reply flag",
                        qnic_vhu_request_name(req));
        ok = false;
    } else {
        ok = qnic_vhu_msg_check(msg, true, errp) && dispatch(d, msg, reply, send_reply, errp);
    }
    qnic_vhu_msg_close_fds(msg);
    if (!ok) {
        *send_reply = false;
        reply->hdr.size = 0;
    }
    if ((msg->hdr.flags & QNIC_VHU_FLAG_NEED_REPLY) && !has_own_reply(req)) {
        reply_u64(reply, ok ? 0 : 1);
        *send_reply = true;
    }
    return ok;
}

/* ---- lifetime ---- */

QnicVhuDev *qnic_vhu_dev_new(QnicBackends *be, const char *device_opts, GError **errp)
{
    QnicMachineConfig mcfg = { .no_ram = true, .backends = be };
    QnicVhuDev *d = g_new0(QnicVhuDev, 1);
    const char *netdev;

    d->machine = qnic_machine_new(&mcfg, errp);
    if (!d->machine) {
        g_free(d);
        return NULL;
    }
    d->vdev = qnic_virtio_net_new_bare(d->machine, device_opts, errp);
    if (!d->vdev) {
        qnic_machine_free(d->machine);
        g_free(d);
        return NULL;
    }
    netdev = qnic_opts_get(d->vdev->dev->opts, "netdev");
    if (!netdev) {
        qnic_error_setg_invalid(errp, "vhost-user device: no netdev= given");
        qnic_vhu_dev_free(d);
        return NULL;
    }
    d->netdev_id = g_strdup(netdev);
    d->vdev->tops = &vhu_tops;
    d->vdev->transport = d;
    d->max_pairs = (d->vdev->max_queues - 1) / 2;
    d->nvrings = 2 * d->max_pairs;
    d->pairs = 1;
    d->vr = g_new0(VhuVring, d->nvrings);
    for (unsigned i = 0; i < d->nvrings; i++) {
        d->vr[i].d = d;
        d->vr[i].index = i;
        d->vr[i].kick_fd = d->vr[i].call_fd = d->vr[i].err_fd = -1;
    }
    d->offered = (d->vdev->host_features & offerable) | (1ull << VIRTIO_F_VERSION_1) |
                 (1ull << QNIC_VHU_F_PROTOCOL_FEATURES);
    if (d->max_pairs > 1) {
        d->offered |= 1ull << VIRTIO_NET_F_MQ;
    }
    d->protocol_offered = (1ull << QNIC_VHU_PROTOCOL_F_REPLY_ACK) |
                          (1ull << QNIC_VHU_PROTOCOL_F_RARP) |
                          (1ull << QNIC_VHU_PROTOCOL_F_RESET_DEVICE);
    if (d->max_pairs > 1) {
        d->protocol_offered |= 1ull << QNIC_VHU_PROTOCOL_F_MQ;
    }
    return d;
}

void qnic_vhu_dev_enable_ctrl_vq(QnicVhuDev *d)
{
    uint64_t ctrl = (1ull << VIRTIO_NET_F_CTRL_VQ) | (1ull << VIRTIO_NET_F_CTRL_RX) |
                    (1ull << VIRTIO_NET_F_CTRL_MAC_ADDR) | (1ull << VIRTIO_NET_F_CTRL_RX_EXTRA) |
                    (1ull << VIRTIO_NET_F_CTRL_VLAN);

    if (d->ctrl_vq) {
        return;
    }
    reset_state(d, false);
    d->ctrl_vq = true;
    d->nvrings = 2 * d->max_pairs + 1;
    d->vr = g_renew(VhuVring, d->vr, d->nvrings);
    memset(&d->vr[d->nvrings - 1], 0, sizeof(VhuVring));
    d->vr[d->nvrings - 1].d = d;
    d->vr[d->nvrings - 1].index = d->nvrings - 1;
    d->vr[d->nvrings - 1].kick_fd = d->vr[d->nvrings - 1].call_fd = -1;
    d->vr[d->nvrings - 1].err_fd = -1;
    d->offered |= d->vdev->host_features & ctrl;
}

void qnic_vhu_dev_free(QnicVhuDev *d)
{
    if (!d) {
        return;
    }
    if (d->vr) {
        reset_state(d, false);
    }
    if (d->vdev) {
        qnic_virtio_net_free_bare(d->vdev);
    }
    mem_table_unmap_all(d);
    qnic_machine_free(d->machine);
    g_free(d->vr);
    g_free(d->netdev_id);
    g_free(d);
}

const char *qnic_vhu_dev_netdev(const QnicVhuDev *d)
{
    return d->netdev_id;
}

unsigned qnic_vhu_dev_num_vrings(const QnicVhuDev *d)
{
    return d->nvrings;
}

uint64_t qnic_vhu_dev_features(const QnicVhuDev *d)
{
    return d->offered;
}

uint64_t qnic_vhu_dev_protocol_features(const QnicVhuDev *d)
{
    return d->protocol_offered;
}

unsigned qnic_vhu_dev_num_regions(const QnicVhuDev *d)
{
    return d->nregions;
}

unsigned qnic_vhu_dev_active_pairs(const QnicVhuDev *d)
{
    unsigned pairs = 0;

    for (unsigned i = 0; i < d->nvrings; i++) {
        if (d->vr[i].enabled && d->vr[i].started) {
            pairs = MAX(pairs, i / 2 + 1);
        }
    }
    return pairs;
}

bool qnic_vhu_dev_vring_info(const QnicVhuDev *d, unsigned vring, QnicVhuVringInfo *out)
{
    const VhuVring *vr;
    const QnicVirtQueue *vq;

    if (vring >= d->nvrings) {
        return false;
    }
    vr = &d->vr[vring];
    vq = &d->vdev->vqs[vring];
    memset(out, 0, sizeof(*out));
    out->started = vr->started;
    out->enabled = vr->enabled;
    out->num = vr->num;
    out->kick_fd = vr->kick_fd;
    out->call_fd = vr->call_fd;
    out->err_fd = vr->err_fd;
    out->notifies = vr->notifies;
    if (vr->started) {
        out->broken = vq->broken || d->vdev->broken;
        out->last_avail_idx = vq->last_avail_idx;
        out->avail_wrap = vq->avail_wrap;
        out->used_idx = vq->used_idx;
    } else {
        out->last_avail_idx = vr->base_idx;
        out->avail_wrap = vr->base_wrap;
        out->used_idx = vr->used_idx;
    }
    return true;
}

/* ---- the Unix socket server ---- */

struct QnicVhuServer {
    QnicVhuDev *d;
    char *path;
    bool client;
    bool failed;
    unsigned connect_timeout_ms;
    void (*on_disconnect)(void *opaque);
    void *opaque;
    int listen_fd;
    QnicFdWatch *listen_watch;
    int conn_fd;
    QnicFdWatch *conn_watch;
    GSource *retry;
    gint64 retry_deadline;
    bool unlink_on_free;
};

static void server_schedule_connect(QnicVhuServer *s);

static void server_drop(QnicVhuServer *s, const char *why)
{
    if (s->conn_fd < 0) {
        return;
    }
    if (why) {
        qnic_report_ratelimited("vhost-user: frontend disconnected: %s", why);
    }
    qnic_fd_watch_remove(s->conn_watch);
    s->conn_watch = NULL;
    close(s->conn_fd);
    s->conn_fd = -1;
    qnic_vhu_dev_reset(s->d);
    if (s->on_disconnect) {
        s->on_disconnect(s->opaque);
    }
    if (s->client && s->conn_fd < 0 && !s->retry) {
        server_schedule_connect(s);
    }
}

static void conn_cb(void *opaque, int fd, GIOCondition cond)
{
    QnicVhuServer *s = opaque;
    QnicVhuMsg msg, reply;
    g_autoptr(GError) err = NULL;
    bool send_reply;
    int r = qnic_vhu_msg_recv(fd, &msg, &err);

    if (r == 0) {
        server_drop(s, NULL);
        return;
    }
    if (r < 0) {
        server_drop(s, err->message);
        return;
    }
    if (qnic_log_enabled(QNIC_LOG_TRACE_DEV)) {
        qnic_log(QNIC_LOG_TRACE_DEV, "vhost-user: %s size %u fds %u",
                 qnic_vhu_request_name(msg.hdr.request), msg.hdr.size, msg.nfds);
    }
    uint32_t req = msg.hdr.request;
    if (!qnic_vhu_dev_handle(s->d, &msg, &reply, &send_reply, &err)) {
        qnic_report_ratelimited("%s", err->message);
        if (has_own_reply(req) && !send_reply) {
            server_drop(s, "a request that needs an answer was refused");
            return;
        }
    }
    if (send_reply) {
        g_autoptr(GError) serr = NULL;
        if (!qnic_vhu_msg_send(fd, &reply, &serr)) {
            server_drop(s, serr->message);
        }
    }
}

static void server_attach(QnicVhuServer *s, int fd)
{
    int fl = fcntl(fd, F_GETFL);

    if (fl >= 0) {
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    }
    s->conn_fd = fd;
    s->conn_watch = qnic_fd_watch_add(fd, G_IO_IN, conn_cb, s);
}

static void listen_cb(void *opaque, int fd, GIOCondition cond)
{
    QnicVhuServer *s = opaque;
    int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);

    if (c < 0) {
        return;
    }
    if (s->conn_fd >= 0) {
        /* One frontend at a time. */
        qnic_report_ratelimited("vhost-user: refusing a second frontend on %s", s->path);
        close(c);
        return;
    }
    server_attach(s, c);
}

static bool try_connect(QnicVhuServer *s, int *err)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0) {
        *err = errno;
        return false;
    }
    memcpy(sa.sun_path, s->path, strlen(s->path) + 1);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        *err = errno;
        close(fd);
        return false;
    }
    server_attach(s, fd);
    return true;
}

static gboolean retry_cb(gpointer opaque)
{
    QnicVhuServer *s = opaque;
    int err = 0;

    if (try_connect(s, &err)) {
        s->retry = NULL;
        return G_SOURCE_REMOVE;
    }
    if (g_get_monotonic_time() > s->retry_deadline) {
        qnic_report("vhost-user: cannot connect to %s: %s (gave up after %u ms)", s->path,
                    g_strerror(err), s->connect_timeout_ms);
        s->failed = true;
        s->retry = NULL;
        if (s->on_disconnect) {
            s->on_disconnect(s->opaque);
        }
        return G_SOURCE_REMOVE;
    }
    return G_SOURCE_CONTINUE;
}

static void server_schedule_connect(QnicVhuServer *s)
{
    s->retry_deadline = g_get_monotonic_time() + (gint64)s->connect_timeout_ms * 1000;
    s->retry = g_timeout_source_new(100);
    g_source_set_callback(s->retry, retry_cb, s, NULL);
    g_source_attach(s->retry, qnic_main_context());
    g_source_unref(s->retry);
}

QnicVhuServer *qnic_vhu_server_new(QnicVhuDev *d, const QnicVhuServerConfig *cfg, GError **errp)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    QnicVhuServer *s;

    if (!cfg->path || !*cfg->path || strlen(cfg->path) >= sizeof(sa.sun_path)) {
        qnic_error_setg_invalid(errp, "vhost-user: socket path '%s' is empty or longer than "
                                "%zu bytes", cfg->path ? cfg->path : "",
                                sizeof(sa.sun_path) - 1);
        return NULL;
    }
    s = g_new0(QnicVhuServer, 1);
    s->d = d;
    s->path = g_strdup(cfg->path);
    s->client = cfg->client;
    s->connect_timeout_ms = cfg->connect_timeout_ms ? cfg->connect_timeout_ms : 30000;
    s->on_disconnect = cfg->on_disconnect;
    s->opaque = cfg->opaque;
    s->listen_fd = s->conn_fd = -1;
    if (s->client) {
        int err = 0;
        if (!try_connect(s, &err)) {
            server_schedule_connect(s);
        }
        return s;
    }
    memcpy(sa.sun_path, s->path, strlen(s->path) + 1);
    {
        struct stat st;
        /* A socket left by an earlier run; never remove anything else. */
        if (lstat(s->path, &st) == 0 && S_ISSOCK(st.st_mode)) {
            unlink(s->path);
        }
    }
    s->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s->listen_fd < 0 || bind(s->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(s->listen_fd, 1) < 0) {
        qnic_error_setg_errno(errp, errno, "vhost-user: cannot listen on %s", s->path);
        if (s->listen_fd >= 0) {
            close(s->listen_fd);
        }
        g_free(s->path);
        g_free(s);
        return NULL;
    }
    s->unlink_on_free = true;
    s->listen_watch = qnic_fd_watch_add(s->listen_fd, G_IO_IN, listen_cb, s);
    return s;
}

void qnic_vhu_server_free(QnicVhuServer *s)
{
    if (!s) {
        return;
    }
    s->on_disconnect = NULL;
    s->client = false;      /* no reconnect while going away */
    if (s->retry) {
        g_source_destroy(s->retry);
        s->retry = NULL;
    }
    server_drop(s, NULL);
    if (s->listen_watch) {
        qnic_fd_watch_remove(s->listen_watch);
    }
    if (s->listen_fd >= 0) {
        close(s->listen_fd);
    }
    if (s->unlink_on_free) {
        unlink(s->path);
    }
    g_free(s->path);
    g_free(s);
}

bool qnic_vhu_server_connected(const QnicVhuServer *s)
{
    return s->conn_fd >= 0;
}

bool qnic_vhu_server_failed(const QnicVhuServer *s)
{
    return s->failed;
}
