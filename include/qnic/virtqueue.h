/*
 * Virtqueues, split and packed, seen from the device side. A QnicVirtQueue
 * knows only the QnicDevice it does DMA for, so the same code serves the PCI
 * and MMIO transports and, later, vhost frontends. The guest is hostile:
 * every ring field is read once into a local copy, every index is taken
 * modulo the ring, descriptor chains are bounded by the queue size and
 * loop-checked, indirect tables are bounded and never nested, and buffers
 * are mapped with qnic_dma_map_partial() straight into the caller's iovecs
 * (no bounce copies). A rule broken by the driver makes pop() return an
 * error and calls the broken() hook (the virtio core then sets NEEDS_RESET).
 */
#ifndef QNIC_VIRTQUEUE_H
#define QNIC_VIRTQUEUE_H

#include "qnic/common.h"

typedef struct QnicDevice QnicDevice;
typedef struct QnicVirtQueue QnicVirtQueue;

#define QNIC_VQ_MAX_SIZE 1024
/* Most iovec entries one element may need (chain + region splits). */
#define QNIC_VQ_MAX_SG 1024

/* One buffer (descriptor chain) taken from the driver. The caller provides
 * the iovec storage (iov, iov_cap); out (device-readable) entries come first,
 * then in (device-writable) ones. */
typedef struct QnicVqElem {
    uint16_t index;          /* split: head descriptor; packed: buffer id */
    uint16_t ndescs;         /* ring slots the chain used (packed) */
    unsigned out_num, in_num;
    size_t out_len, in_len;
    struct iovec *iov;       /* [iov_cap], caller-owned */
    unsigned iov_cap;
} QnicVqElem;

static inline struct iovec *qnic_vq_elem_out(QnicVqElem *e) { return e->iov; }
static inline struct iovec *qnic_vq_elem_in(QnicVqElem *e) { return e->iov + e->out_num; }

typedef struct QnicVqMark {
    uint16_t last_avail_idx;
    bool avail_wrap;
    unsigned inuse, inuse_descs;
} QnicVqMark;

typedef enum {
    QNIC_VQ_POP_OK = 1,
    QNIC_VQ_POP_EMPTY = 0,
    QNIC_VQ_POP_ERROR = -1,  /* driver broke a rule; queue is now broken */
} QnicVqPopResult;

struct QnicVirtQueue {
    QnicDevice *dev;
    unsigned index;
    uint16_t num;            /* size; 0 = not set up */
    uint16_t num_max;
    bool packed;             /* VIRTIO_F_RING_PACKED negotiated */
    bool event_idx;          /* VIRTIO_RING_F_EVENT_IDX negotiated */
    bool indirect;           /* VIRTIO_RING_F_INDIRECT_DESC negotiated */
    bool in_order;           /* VIRTIO_F_IN_ORDER negotiated */
    bool enabled;            /* queue_enable / legacy PFN set */
    bool broken;             /* driver broke a rule: nothing more until reset */
    bool notification;       /* guest kicks wanted (last set) */
    uint64_t desc_gpa, avail_gpa, used_gpa;   /* packed: driver=avail, device=used */
    /* Host mappings of the rings (set by qnic_vq_start). */
    uint8_t *desc, *avail, *used;
    uint16_t vector;         /* MSI-X vector (transport-managed) */

    /* device-side state */
    uint16_t last_avail_idx;
    uint16_t shadow_avail_idx;
    uint16_t used_idx;
    uint16_t signalled_used;
    bool signalled_used_valid;
    bool avail_wrap, used_wrap;   /* packed wrap counters */
    unsigned inuse;               /* elements popped, not yet flushed */
    unsigned inuse_descs;         /* the ring slots they took (packed) */
    unsigned pending_used;        /* packed: ring slots filled, not flushed */
    uint16_t used_flags_head;     /* packed: flags of the batch head */

    /* hooks */
    void (*notify)(QnicVirtQueue *vq, void *opaque);   /* interrupt the driver */
    void (*broken_cb)(QnicVirtQueue *vq, void *opaque);/* driver broke a rule */
    void (*handle)(QnicVirtQueue *vq, void *opaque);   /* driver kicked */
    void *opaque;
    /* counters for tests and debugging */
    uint64_t stat_pops, stat_notifies, stat_errors;
};

void qnic_vq_init(QnicVirtQueue *vq, QnicDevice *dev, unsigned index, uint16_t num_max);
/* Forget ring addresses and device state (device or queue reset). */
void qnic_vq_reset(QnicVirtQueue *vq);
/* Legacy layout from one page frame number (rings contiguous, align). */
void qnic_vq_set_legacy_addr(QnicVirtQueue *vq, uint64_t pa, unsigned align);
/* Map the rings (after the driver set size/addresses and negotiated
 * features). Returns false (logged, queue broken) if they are not RAM. */
bool qnic_vq_start(QnicVirtQueue *vq, uint64_t features);
bool qnic_vq_ready(const QnicVirtQueue *vq);
/* Size in bytes of each ring area for the current num and layout. */
uint64_t qnic_vq_desc_size(const QnicVirtQueue *vq);
uint64_t qnic_vq_avail_size(const QnicVirtQueue *vq);
uint64_t qnic_vq_used_size(const QnicVirtQueue *vq);

bool qnic_vq_empty(QnicVirtQueue *vq);
/* Take the next available chain into elem. */
QnicVqPopResult qnic_vq_pop(QnicVirtQueue *vq, QnicVqElem *elem);
/* Return elem (len bytes written) to the used ring at position idx of the
 * current batch; flush(count) publishes the batch to the driver. */
void qnic_vq_fill(QnicVirtQueue *vq, const QnicVqElem *elem, uint32_t len, unsigned idx);
void qnic_vq_flush(QnicVirtQueue *vq, unsigned count);
static inline void qnic_vq_push(QnicVirtQueue *vq, const QnicVqElem *elem, uint32_t len)
{ qnic_vq_fill(vq, elem, len, 0); qnic_vq_flush(vq, 1); }
/* Undo pops since mark (an RX frame that did not fit). */
QnicVqMark qnic_vq_mark(const QnicVirtQueue *vq);
void qnic_vq_rollback(QnicVirtQueue *vq, QnicVqMark mark);

/* Ask for / suppress guest kicks (used flags, avail_event, packed event). */
void qnic_vq_set_notification(QnicVirtQueue *vq, bool enable);
/* Interrupt the driver if its suppression settings ask for it. */
bool qnic_vq_should_notify(QnicVirtQueue *vq);
void qnic_vq_notify(QnicVirtQueue *vq);
/* Mark broken: pop() fails until reset, broken_cb runs once. */
void qnic_vq_set_broken(QnicVirtQueue *vq, const char *why);

/* For loading saved state (virtio/virtio-state.c): whether rings of `num`
 * entries (packed or split) at these addresses are aligned as the spec
 * requires and lie wholly in dev's guest RAM, and host pointers to them
 * (desc/avail/used may be NULL to only check). No bus-mastering check:
 * the saved device had them mapped. */
bool qnic_vq_rings_in_ram(QnicDevice *dev, uint16_t num, bool packed, uint64_t desc_gpa,
                          uint64_t avail_gpa, uint64_t used_gpa, uint8_t **desc,
                          uint8_t **avail, uint8_t **used);
/* Where the driver's view of a queue is once every element still in use
 * is given back (popped but not used; they are the last ones popped, as
 * in every ring virtio-net has): the avail index and wrap counter to save
 * so that a loaded device takes those buffers again, exactly once. */
void qnic_vq_inflight_rewound(const QnicVirtQueue *vq, uint16_t *last_avail_idx,
                              bool *avail_wrap);

#endif
