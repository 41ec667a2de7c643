/*
 * vhost, the generic layer: a virtio device's data queues handed to another
 * data plane through one ops table per backend kind (vhost-user:
 * qnic/vhost-user-frontend.h; the kernel's vhost-net: qnic/vhost-kernel.h;
 * vhost-vdpa: qnic/vhost-vdpa.h). qnic keeps the transport, the feature
 * negotiation with the driver, the configuration space and the control
 * queue; the backend gets the guest memory table, each data ring's size,
 * base index and addresses (this process's virtual addresses of the rings,
 * inside the shared memfd mapping of guest RAM), a kick eventfd that the
 * driver's notifications reach, and a call eventfd it signals to interrupt
 * the driver. When the transport has them, the kick fd is the transport's
 * own ioeventfd (the kernel signals the backend directly) and the call fd
 * the irqfd of the queue's MSI-X vector (the backend interrupts the guest
 * directly); otherwise, and while the vector is masked, qnic relays: it
 * writes the kick eventfd when the driver notifies, and watches the call
 * eventfd on its main loop to raise the queue's interrupt (MSI-X vector or
 * INTx ISR) without looking at the driver's suppression flags again: the
 * backend already did.
 *
 * Stopping a ring asks the backend for its last_avail_idx (GET_VRING_BASE)
 * so qnic can take the queue back; when the backend is gone instead, the
 * index is restored from the used ring in guest memory (what the backend
 * completed), as QEMU does after a backend crash.
 */
#ifndef QNIC_VHOST_H
#define QNIC_VHOST_H

#include "qnic/common.h"
#include "qnic/virtio.h"
#include "qnic/machine.h"

typedef struct QnicVhostDev QnicVhostDev;
typedef struct QnicNetClient QnicNetClient;

/*
 * The contract between the generic layer (virtio/vhost.c) and one backend
 * kind: vhost-user (virtio/vhost-user-frontend.c) and vhost-net (virtio/vhost-kernel.c)
 * today, vhost-vdpa as one more table. The generic layer decides what is
 * handed over and when; a table only carries each request to its backend.
 *
 * - Order: set_features, set_mem_table once per start; then per ring
 *   set_vring_num, set_vring_base, set_vring_addr, set_vring_kick,
 *   set_vring_call; then dev_start (optional op); and set_vring_enable(true)
 *   once the device enables the ring. Taking every ring back: dev_suspend,
 *   per ring set_vring_enable(false), get_vring_base; then dev_reset.
 *   set_vring_call may come again at any time while a ring runs (the
 *   transport's irqfd came or went).
 * - idx is the device's queue index (2 * pair for RX, 2 * pair + 1 for TX).
 *   Addresses are this process's virtual addresses inside the shared
 *   memfd mapping of guest RAM. The kick and call fds stay the generic
 *   layer's: a table passes them on (or dups them) and never closes them.
 * - Every call returns false with errp set when the backend refused or is
 *   gone; a gone backend also reports the loss through
 *   qnic_vhost_backend_lost() (from a BH, never inside a call). The generic
 *   layer then takes the rings back from the used ring in guest memory.
 * - The table's owner creates the QnicVhostDev (qnic_vhost_dev_new), sets
 *   backend_features and max_queue_pairs once it negotiated, and marks it
 *   connected (qnic_vhost_backend_ready() for a backend that comes later).
 *   A device finds the QnicVhostDev behind its peer through the netdev
 *   clients' get_vhost op (qnic/net.h), never by the netdev's kind.
 */
typedef struct QnicVhostOps {
    const char *name;
    bool (*set_features)(QnicVhostDev *hd, uint64_t features, GError **errp);
    bool (*set_mem_table)(QnicVhostDev *hd, QnicMachine *m, GError **errp);
    bool (*set_vring_num)(QnicVhostDev *hd, unsigned idx, unsigned num, GError **errp);
    bool (*set_vring_base)(QnicVhostDev *hd, unsigned idx, unsigned base, GError **errp);
    bool (*get_vring_base)(QnicVhostDev *hd, unsigned idx, unsigned *base, GError **errp);
    bool (*set_vring_addr)(QnicVhostDev *hd, unsigned idx, uint64_t desc, uint64_t avail,
                           uint64_t used, GError **errp);
    bool (*set_vring_kick)(QnicVhostDev *hd, unsigned idx, int fd, GError **errp);
    bool (*set_vring_call)(QnicVhostDev *hd, unsigned idx, int fd, GError **errp);
    /* NULL or a no-op when rings are enabled by starting them. */
    bool (*set_vring_enable)(QnicVhostDev *hd, unsigned idx, bool enable, GError **errp);
    /* Tell the backend the device MTU (optional). */
    bool (*set_mtu)(QnicVhostDev *hd, unsigned mtu, GError **errp);
    /* Optional, for backends that run a whole device (vhost-vdpa):
     * dev_start once every ring of a start was handed over (the device may
     * run now: DRIVER_OK); dev_suspend before the rings are taken back
     * (GET_VRING_BASE must then report a stable index); dev_reset after
     * they were (the device forgets the rings, ready for the next start).
     * A failed dev_start stops the rings again. */
    bool (*dev_start)(QnicVhostDev *hd, GError **errp);
    void (*dev_suspend)(QnicVhostDev *hd);
    void (*dev_reset)(QnicVhostDev *hd);
    /* Optional: one control-queue command (virtio-net class and command,
     * its data) that qnic's device model already applied, for a backend
     * whose device keeps receive filters and queue pairs of its own. May
     * complete asynchronously; false only when it could not be queued. */
    bool (*send_ctrl)(QnicVhostDev *hd, uint8_t cls, uint8_t cmd, const void *data, size_t len,
                      GError **errp);
    /* The largest TX ring the backend takes; 0: QNIC_VHOST_TX_QUEUE_SIZE,
     * the cap of qnic's own data path (QEMU lifts it for vhost-user and
     * vhost-vdpa only). */
    unsigned max_tx_queue_size;
} QnicVhostOps;

/* virtio-net's TX ring cap unless the backend takes more (QEMU's). */
#define QNIC_VHOST_TX_QUEUE_SIZE 256

typedef struct QnicVhostVq {
    QnicVhostDev *hd;
    unsigned idx;
    bool started;
    bool enabled;               /* SET_VRING_ENABLE 1 sent */
    int kick_fd;                /* eventfd the driver's notifications reach */
    bool kick_owned;            /* false: the transport's ioeventfd */
    int call_fd;                /* qnic's eventfd, watched: the relayed path */
    int guest_fd;               /* the transport's irqfd the backend signals
                                 * instead of call_fd, -1 */
    struct QnicFdWatch *call_watch;
    /* this hand-over: notifications that went through qnic's main loop,
     * and how often the backend's call fd was switched */
    uint64_t kicks_relayed, calls_relayed;
    unsigned call_switches;
} QnicVhostVq;

/* connected: a (new) backend is negotiated and can start; false: it is
 * gone (rings already taken back). */
typedef void QnicVhostEventFunc(void *opaque, bool connected);

struct QnicVhostDev {
    const QnicVhostOps *ops;
    void *be;                   /* backend state */
    bool connected;             /* negotiated and usable */
    uint64_t backend_features;  /* GET_FEATURES */
    unsigned max_queue_pairs;   /* what the backend supports */
    unsigned nvqs;              /* data queues qnic may hand over */
    QnicVhostVq *vqs;           /* [nvqs] */
    QnicVirtioDevice *vdev;     /* while started */
    bool started;
    uint64_t acked_features;    /* sent with SET_FEATURES */
    QnicVhostEventFunc *event;
    void *event_opaque;
    uint64_t stat_kicks, stat_calls, stat_starts;
};

QnicVhostDev *qnic_vhost_dev_new(const QnicVhostOps *ops, void *be, unsigned nvqs);
void qnic_vhost_dev_free(QnicVhostDev *hd);
/* The device using hd learns about backend arrival / loss here. */
void qnic_vhost_set_event_handler(QnicVhostDev *hd, QnicVhostEventFunc *cb, void *opaque);

/* Clear, in `offered`, each bit of `bits` (terminated by -1) that the
 * backend does not offer: the data-path features a device may only offer
 * when its backend implements them. */
uint64_t qnic_vhost_get_features(const QnicVhostDev *hd, const int *bits, uint64_t offered);

/* Hand the data queues 0..nvqs-1 of vdev that the driver set up to the
 * backend: SET_FEATURES(features), SET_MEM_TABLE, then per ring NUM, BASE,
 * ADDR, KICK, CALL. Rings stay disabled until qnic_vhost_set_vring_enable.
 * false (logged by the caller) leaves every queue with qnic. */
bool qnic_vhost_dev_start(QnicVhostDev *hd, QnicVirtioDevice *vdev, unsigned nvqs,
                          uint64_t features, GError **errp);
/* Take every ring back (SET_VRING_ENABLE 0, GET_VRING_BASE), stop
 * watching, close the eventfds. Safe when not started. */
void qnic_vhost_dev_stop(QnicVhostDev *hd);
/* Start / stop one ring (per-queue reset and re-enable). */
bool qnic_vhost_vq_start(QnicVhostDev *hd, unsigned idx, GError **errp);
void qnic_vhost_vq_stop(QnicVhostDev *hd, unsigned idx);
bool qnic_vhost_set_vring_enable(QnicVhostDev *hd, unsigned idx, bool enable, GError **errp);
/* The driver notified data queue idx: signal the backend. */
void qnic_vhost_kick(QnicVhostDev *hd, unsigned idx);
/* The transport's guest notifier for ring idx may have changed (the
 * device's guest_notifier_changed op): give the backend the irqfd when
 * there is one, else qnic's watched call eventfd (a masked vector, INTx,
 * no route), with SET_VRING_CALL when that changes. */
void qnic_vhost_vq_update_call(QnicVhostDev *hd, unsigned idx);

/* A control-queue command the device applied goes to a backend that takes
 * them (the send_ctrl op); true when there is none (nothing to tell). */
bool qnic_vhost_send_ctrl(QnicVhostDev *hd, uint8_t cls, uint8_t cmd, const void *data,
                          size_t len, GError **errp);
/* Whether hd's backend takes control-queue commands. */
bool qnic_vhost_takes_ctrl(const QnicVhostDev *hd);

/* For backends: the connection is negotiated / is gone. */
void qnic_vhost_backend_ready(QnicVhostDev *hd);
void qnic_vhost_backend_lost(QnicVhostDev *hd);

/* The vhost device behind a netdev client (its get_vhost op: vhost-user,
 * vhost-vdpa, a tap with vhost=on), or NULL for any other peer. */
QnicVhostDev *qnic_vhost_net_get(QnicNetClient *nc);
/* The largest TX ring hd's backend takes (QNIC_VHOST_TX_QUEUE_SIZE when
 * hd is NULL: qnic's own data path). */
unsigned qnic_vhost_max_tx_queue_size(const QnicVhostDev *hd);

#endif
