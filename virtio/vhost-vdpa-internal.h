/*
 * What the two halves of the vhost-vdpa backend share: the device state of
 * virtio/vhost-vdpa.c (bring-up, the vhost ops, the IOTLB) and the shadow
 * control queue of virtio/vhost-vdpa-cvq.c. Not a public header.
 */
#ifndef QNIC_VHOST_VDPA_INTERNAL_H
#define QNIC_VHOST_VDPA_INTERNAL_H

#include "qnic/vhost-vdpa.h"
#include "qnic/mainloop.h"
#include <linux/vhost.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>

/* The shadow control queue: a ring of VDPA_CVQ_NUM descriptors, two per
 * command (the command, the device's one-byte answer), in memory qnic
 * allocates and maps at the top of the device's IOVA range. */
#define VDPA_CVQ_NUM 32u
#define VDPA_CVQ_SLOTS (VDPA_CVQ_NUM / 2)
#define VDPA_CVQ_BUF 512u                   /* per command: out, then the status */
#define VDPA_CVQ_STATUS_OFF (VDPA_CVQ_BUF - 1)
#define VDPA_CVQ_AVAIL_OFF 0x1000u
#define VDPA_CVQ_USED_OFF 0x2000u
#define VDPA_CVQ_BUFS_OFF 0x3000u
#define VDPA_CVQ_AREA (VDPA_CVQ_BUFS_OFF + VDPA_CVQ_SLOTS * VDPA_CVQ_BUF)

typedef struct VdpaMap {
    uint64_t iova, size;
    void *host;
} VdpaMap;

typedef struct VdpaCvq {
    uint8_t *mem;                   /* VDPA_CVQ_AREA bytes, page aligned */
    bool mapped, running, packed;
    unsigned index;                 /* the device's control queue */
    uint16_t next;                  /* split: avail idx; packed: next ring slot */
    uint16_t used;                  /* split: used idx seen; packed: next used slot */
    bool avail_wrap, used_wrap;
    bool busy[VDPA_CVQ_SLOTS];
    uint8_t cls[VDPA_CVQ_SLOTS], cmd[VDPA_CVQ_SLOTS];
    int kick_fd, call_fd;
    QnicFdWatch *watch;
    QnicVdpaCvqStats stats;
} VdpaCvq;

struct QnicVhostVdpa {
    const QnicVdpaOps *ops;
    void *dev;
    char *name;
    QnicVdpaInfo info;
    QnicVhostDev *hd;
    uint64_t acked;                 /* SET_FEATURES */
    uint8_t status;                 /* last SET_STATUS */
    int config_fd;                  /* SET_CONFIG_CALL's eventfd */
    QnicFdWatch *config_watch;
    QnicVdpaLinkFunc *link_cb;
    void *link_opaque;
    unsigned *ring_num;             /* [2 * queue_pairs] */
    bool *ring_enabled;             /* [2 * queue_pairs] */
    VdpaMap maps[2];                /* guest RAM in the IOTLB */
    unsigned nmaps;
    VdpaCvq cvq;
};

bool vdpa_ioctl(QnicVhostVdpa *v, unsigned long req, const char *name, void *arg, GError **errp);
bool vdpa_iotlb(QnicVhostVdpa *v, uint8_t type, uint64_t iova, uint64_t size, void *host,
                GError **errp);
bool vdpa_batch(QnicVhostVdpa *v, bool begin, GError **errp);
bool vdpa_set_state(QnicVhostVdpa *v, unsigned long req, const char *name, unsigned idx,
                    unsigned num, GError **errp);
bool vdpa_set_file(QnicVhostVdpa *v, bool kick, unsigned idx, int fd, GError **errp);

/* vhost-vdpa-cvq.c */
void vdpa_cvq_init(QnicVhostVdpa *v);
bool vdpa_cvq_map(QnicVhostVdpa *v, GError **errp);
void vdpa_cvq_unmap(QnicVhostVdpa *v);
bool vdpa_cvq_start(QnicVhostVdpa *v, GError **errp);
void vdpa_cvq_stop(QnicVhostVdpa *v);
void vdpa_cvq_free(QnicVhostVdpa *v);
bool vdpa_cvq_send(QnicVhostVdpa *v, uint8_t cls, uint8_t cmd, const void *data, size_t len,
                   GError **errp);

#endif
