/*
 * vhost-vdpa: virtio-net's data rings run by a vDPA device (a SmartNIC
 * whose rings speak virtio, the kernel's VDUSE or vdpa_sim, or qnic's own
 * simulator, qnic/vdpa-sim.h), reached through /dev/vhost-vdpa-N. It is
 * the vhost ops table of qnic/vhost.h carried as the vhost-vdpa ioctls and
 * IOTLB messages of linux/vhost.h; unlike vhost-net the device is a whole
 * virtio device with a status, a configuration space and a control queue
 * of its own. qnic keeps the guest's control queue and forwards what it
 * applied through a shadow control queue it owns. Its owner is the
 * `-netdev vhost-vdpa` netdev (backends/vhost-vdpa-netdev.c); the kernel
 * boundary is an ops table so tests and embedders put a simulator under it.
 */
#ifndef QNIC_VHOST_VDPA_H
#define QNIC_VHOST_VDPA_H

#include "qnic/vhost.h"

/* The kernel boundary for one opened device: what ioctl(2) and write(2) on
 * the /dev/vhost-vdpa-N descriptor do. ioctl returns 0 or -errno; write
 * takes one struct vhost_msg_v2 and returns len or -errno. */
typedef struct QnicVdpaOps {
    int (*ioctl)(void *dev, unsigned long req, void *arg);
    ssize_t (*write)(void *dev, const void *buf, size_t len);
} QnicVdpaOps;

/* How `vhostdev=PATH` or `vhostfd=N` become a device: open returns the
 * device handle and its ops (NULL with errp set), close ends it. The
 * default opens the path (or takes the fd) and does real system calls. */
typedef struct QnicVdpaOpener {
    void *(*open)(void *ctx, const char *path, int fd, const QnicVdpaOps **ops, GError **errp);
    void (*close)(void *ctx, void *dev);
    void *ctx;
} QnicVdpaOpener;

/* NULL restores the real device files. Process-wide, like vhost-kernel's
 * system-call table; set it before creating the netdev. */
void qnic_vhost_vdpa_set_opener(const QnicVdpaOpener *o);
const QnicVdpaOpener *qnic_vhost_vdpa_opener(void);

typedef struct QnicVhostVdpa QnicVhostVdpa;

/* Bring the device up for `pairs` queue pairs (0: as many as it has):
 * SET_OWNER, GET_DEVICE_ID (must be net), backend features, GET_FEATURES,
 * GET_CONFIG, GET_VQS_COUNT, GET_IOVA_RANGE, GET_VRING_NUM,
 * SET_CONFIG_CALL, a reset and ACKNOWLEDGE | DRIVER, and, when the device
 * has a control queue, the shadow control queue's memory mapped into its
 * IOTLB. Errors name the request and the errno. Takes no ownership of
 * dev; the caller closes it after qnic_vhost_vdpa_free. */
QnicVhostVdpa *qnic_vhost_vdpa_new(const QnicVdpaOps *ops, void *dev, unsigned pairs,
                                   const char *name, GError **errp);
/* Takes the rings back if needed, unmaps the IOTLB, resets the device. */
void qnic_vhost_vdpa_free(QnicVhostVdpa *v);
QnicVhostDev *qnic_vhost_vdpa_dev(QnicVhostVdpa *v);

/* The guest's RAM layout changed (or the embedder wants it mapped anew):
 * the old maps are invalidated and the machine's RAM regions mapped again,
 * between BATCH_BEGIN and BATCH_END when the device takes batches. Also
 * what each start does (the set_mem_table op). */
bool qnic_vhost_vdpa_update_memory(QnicVhostVdpa *v, QnicMachine *m, GError **errp);

/* What the device reported. */
typedef struct QnicVdpaInfo {
    uint64_t features;          /* GET_FEATURES */
    uint64_t backend_features;  /* what was acked with SET_BACKEND_FEATURES */
    uint8_t mac[6];
    uint16_t status, max_pairs, mtu;
    unsigned vqs;               /* GET_VQS_COUNT */
    unsigned max_ring;          /* GET_VRING_NUM */
    uint64_t iova_first, iova_last;
    bool has_cvq;               /* a shadow control queue is used */
    uint64_t cvq_iova;          /* where its memory is in the IOTLB */
    unsigned queue_pairs;       /* handed to qnic */
} QnicVdpaInfo;
const QnicVdpaInfo *qnic_vhost_vdpa_info(const QnicVhostVdpa *v);

/* The device signalled a configuration change (SET_CONFIG_CALL's eventfd)
 * and its link status is now `up`: the owner (the netdev) sets the link of
 * its clients, which virtio-net shows the guest. Called from the main loop
 * only when the status changed. */
typedef void QnicVdpaLinkFunc(void *opaque, bool up);
void qnic_vhost_vdpa_set_link_handler(QnicVhostVdpa *v, QnicVdpaLinkFunc *cb, void *opaque);

/* Shadow control queue counters: commands posted, completed, refused by
 * the device (VIRTIO_NET_ERR), dropped (ring full or device stopped). */
typedef struct QnicVdpaCvqStats {
    uint64_t posted, completed, nacked, dropped;
} QnicVdpaCvqStats;
void qnic_vhost_vdpa_cvq_stats(const QnicVhostVdpa *v, QnicVdpaCvqStats *out);
/* Reclaim what the device completed now (also done from the main loop). */
void qnic_vhost_vdpa_cvq_poll(QnicVhostVdpa *v);

#endif
