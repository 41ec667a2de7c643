/*
 * A vDPA network device in software, behind the same boundary as a
 * /dev/vhost-vdpa-N (QnicVdpaOps of qnic/vhost-vdpa.h): it answers the
 * vhost-vdpa ioctls and IOTLB messages as the kernel's vhost-vdpa driver
 * over vdpa_sim_net would, refusing what the kernel refuses with the errno
 * a process would see, and moves real frames between the rings and a qnic
 * netdev with qnic's own virtio-net model (the vhost-user device side,
 * qnic/vhost-user-device.h, driven in-process), so descriptors, mergeable
 * RX, offloads and the control queue are the code guests meet everywhere
 * else. Tests put it under `-netdev vhost-vdpa` where no vDPA kernel
 * exists; an embedder can use it as a software vDPA device.
 *
 * Its memory is the IOTLB it was given: IOVA -> this process's pointer
 * (the same process, so "uaddr" is a pointer here). The data path runs
 * while the status has DRIVER_OK, on the qnic main loop.
 */
#ifndef QNIC_VDPA_SIM_H
#define QNIC_VDPA_SIM_H

#include "qnic/vhost-vdpa.h"
#include "qnic/backends.h"

typedef struct QnicVdpaSim QnicVdpaSim;

typedef struct QnicVdpaSimConfig {
    QnicBackends *be;           /* where netdev lives; outlives the simulator */
    /* virtio-net-device properties of the simulated device, netdev= the
     * netdev it moves frames to, mac=..., its queue count the pairs */
    const char *device_opts;
    bool no_suspend;            /* do not offer VHOST_BACKEND_F_SUSPEND */
    bool no_batch;              /* do not offer VHOST_BACKEND_F_IOTLB_BATCH */
    bool no_ctrl_vq;            /* no control queue (and so no MQ) */
} QnicVdpaSimConfig;

QnicVdpaSim *qnic_vdpa_sim_new(const QnicVdpaSimConfig *cfg, GError **errp);
void qnic_vdpa_sim_free(QnicVdpaSim *s);
/* What closing /dev/vhost-vdpa-N does (vhost_vdpa_release): the device is
 * reset, the IOTLB emptied, the owner and backend features forgotten, so
 * the next open starts afresh. */
void qnic_vdpa_sim_release(QnicVdpaSim *s);

/* The kernel boundary: ioctl returns 0 or -errno, write len or -errno. */
int qnic_vdpa_sim_ioctl(QnicVdpaSim *s, unsigned long req, void *arg);
ssize_t qnic_vdpa_sim_write(QnicVdpaSim *s, const void *buf, size_t len);
/* Both as an ops table whose device handle is the QnicVdpaSim. */
extern const QnicVdpaOps qnic_vdpa_sim_ops;

/* The cable: the config status's LINK_UP, with a config interrupt
 * (SET_CONFIG_CALL's eventfd) as a device raises one. */
void qnic_vdpa_sim_set_link(QnicVdpaSim *s, bool up);

/* Introspection for tests. */
uint8_t qnic_vdpa_sim_status(const QnicVdpaSim *s);
uint64_t qnic_vdpa_sim_features(const QnicVdpaSim *s);     /* acked */
unsigned qnic_vdpa_sim_num_maps(const QnicVdpaSim *s);
/* Whether the device's ring idx runs (DRIVER_OK, mapped, enabled). */
bool qnic_vdpa_sim_vq_running(const QnicVdpaSim *s, unsigned idx);
/* The id of the simulated NIC's netdev (its peer answers query-rx-filter). */
const char *qnic_vdpa_sim_netdev(const QnicVdpaSim *s);

#endif
