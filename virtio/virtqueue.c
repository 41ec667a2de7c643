/*
 * Device side of split and packed virtqueues (virtio 1.2 sections 2.7 and
 * 2.8, plus the legacy layout of 0.9.5). The rings are mapped once through
 * qnic_dma_map (so they are known to be guest RAM, not MMIO) and then read
 * with explicit barriers; each guest-written field is loaded exactly once
 * into a local before it is checked and used, so a driver racing with us
 * cannot change a value between the check and the use. Buffers are mapped
 * into the caller's iovecs; nothing is allocated per element.
 */
#include "qnic/virtqueue.h"
#include "qnic/device.h"
#include "qnic/memory.h"
#include "qnic/machine.h"
#include "qnic/log.h"
#include <linux/virtio_ring.h>
#include <linux/virtio_config.h>

#define DESC_SIZE 16u

/* A descriptor after it was read from the guest (split or packed). */
typedef struct {
    uint64_t addr;
    uint32_t len;
    uint16_t id;      /* packed: buffer id */
    uint16_t flags;
    uint16_t next;    /* split */
} VqDesc;

static inline uint16_t ring_ld16(const uint8_t *p)
{
    return GUINT16_FROM_LE(__atomic_load_n((const uint16_t *)p, __ATOMIC_RELAXED));
}

static inline void ring_st16(uint8_t *p, uint16_t v)
{
    __atomic_store_n((uint16_t *)p, GUINT16_TO_LE(v), __ATOMIC_RELAXED);
}

static inline void ring_st32(uint8_t *p, uint32_t v)
{
    __atomic_store_n((uint32_t *)p, GUINT32_TO_LE(v), __ATOMIC_RELAXED);
}

static void split_desc_read(const uint8_t *table, unsigned i, VqDesc *d)
{
    uint8_t raw[DESC_SIZE];

    memcpy(raw, table + (size_t)i * DESC_SIZE, DESC_SIZE);
    d->addr = qnic_ld64(raw);
    d->len = qnic_ld32(raw + 8);
    d->flags = qnic_ld16(raw + 12);
    d->next = qnic_ld16(raw + 14);
    d->id = 0;
}

static void packed_desc_read(const uint8_t *table, unsigned i, VqDesc *d)
{
    uint8_t raw[DESC_SIZE];

    memcpy(raw, table + (size_t)i * DESC_SIZE, DESC_SIZE);
    d->addr = qnic_ld64(raw);
    d->len = qnic_ld32(raw + 8);
    d->id = qnic_ld16(raw + 12);
    d->flags = qnic_ld16(raw + 14);
    d->next = 0;
}

void qnic_vq_init(QnicVirtQueue *vq, QnicDevice *dev, unsigned index, uint16_t num_max)
{
    memset(vq, 0, sizeof(*vq));
    vq->dev = dev;
    vq->index = index;
    vq->num_max = num_max;
    vq->num = num_max;
    vq->vector = 0xffff;
    vq->notification = true;
}

void qnic_vq_reset(QnicVirtQueue *vq)
{
    vq->num = vq->num_max;
    vq->enabled = false;
    vq->broken = false;
    vq->notification = true;
    vq->desc_gpa = vq->avail_gpa = vq->used_gpa = 0;
    vq->desc = vq->avail = vq->used = NULL;
    vq->vector = 0xffff;
    vq->last_avail_idx = vq->shadow_avail_idx = vq->used_idx = 0;
    vq->signalled_used = 0;
    vq->signalled_used_valid = false;
    vq->avail_wrap = vq->used_wrap = true;
    vq->inuse = vq->inuse_descs = 0;
    vq->pending_used = 0;
    vq->packed = vq->event_idx = vq->indirect = vq->in_order = false;
}

uint64_t qnic_vq_desc_size(const QnicVirtQueue *vq)
{
    return (uint64_t)vq->num * DESC_SIZE;
}

uint64_t qnic_vq_avail_size(const QnicVirtQueue *vq)
{
    return vq->packed ? 4 : 6 + 2ull * vq->num;
}

uint64_t qnic_vq_used_size(const QnicVirtQueue *vq)
{
    return vq->packed ? 4 : 6 + 8ull * vq->num;
}

void qnic_vq_set_legacy_addr(QnicVirtQueue *vq, uint64_t pa, unsigned align)
{
    vq->desc_gpa = pa;
    vq->avail_gpa = pa + (uint64_t)vq->num * DESC_SIZE;
    vq->used_gpa = QNIC_ALIGN_UP(vq->avail_gpa + 6 + 2ull * vq->num, (uint64_t)align);
}

void qnic_vq_set_broken(QnicVirtQueue *vq, const char *why)
{
    vq->stat_errors++;
    qnic_guest_error("virtio: %s queue %u: %s", vq->dev && vq->dev->cls ? vq->dev->cls->name : "?",
                     vq->index, why);
    if (vq->broken) {
        return;
    }
    vq->broken = true;
    if (vq->broken_cb) {
        vq->broken_cb(vq, vq->opaque);
    }
}

bool qnic_vq_start(QnicVirtQueue *vq, uint64_t features)
{
    vq->packed = features & (1ull << VIRTIO_F_RING_PACKED);
    vq->event_idx = features & (1ull << VIRTIO_RING_F_EVENT_IDX);
    vq->indirect = features & (1ull << VIRTIO_RING_F_INDIRECT_DESC);
    vq->in_order = features & (1ull << VIRTIO_F_IN_ORDER);
    vq->avail_wrap = vq->used_wrap = true;
    vq->desc = vq->avail = vq->used = NULL;
    if (vq->num == 0) {
        return false;
    }
    if (!QNIC_IS_POW2(vq->num) && !vq->packed) {
        qnic_vq_set_broken(vq, "queue size is not a power of two");
        return false;
    }
    /* The alignment the spec requires is what makes the atomic 16/32-bit
     * ring accesses below well-defined. */
    if ((vq->desc_gpa & 15) || (vq->avail_gpa & (vq->packed ? 3 : 1)) || (vq->used_gpa & 3)) {
        qnic_vq_set_broken(vq, "misaligned ring address");
        return false;
    }
    vq->desc = qnic_dma_map(vq->dev, vq->desc_gpa, qnic_vq_desc_size(vq), vq->packed);
    vq->avail = qnic_dma_map(vq->dev, vq->avail_gpa, qnic_vq_avail_size(vq), false);
    vq->used = qnic_dma_map(vq->dev, vq->used_gpa, qnic_vq_used_size(vq), true);
    if (!vq->desc || !vq->avail || !vq->used) {
        vq->desc = vq->avail = vq->used = NULL;
        qnic_vq_set_broken(vq, "ring is not in guest RAM");
        return false;
    }
    return true;
}

bool qnic_vq_ready(const QnicVirtQueue *vq)
{
    return vq->desc && !vq->broken && vq->dev->dma_enabled;
}

/* ---- split ---- */

#define AVAIL_IDX(vq)       ((vq)->avail + 2)
#define AVAIL_RING(vq, i)   ((vq)->avail + 4 + 2u * (i))
#define USED_EVENT(vq)      AVAIL_RING(vq, (vq)->num)
#define USED_FLAGS(vq)      ((vq)->used)
#define USED_IDX(vq)        ((vq)->used + 2)
#define USED_ELEM(vq, i)    ((vq)->used + 4 + 8u * (i))
#define AVAIL_EVENT(vq)     ((vq)->used + 4 + 8u * (vq)->num)

/* Number of new buffers, or -1 after marking the queue broken. */
static int split_avail_count(QnicVirtQueue *vq)
{
    uint16_t n = vq->shadow_avail_idx - vq->last_avail_idx;

    if (n == 0) {
        vq->shadow_avail_idx = ring_ld16(AVAIL_IDX(vq));
        n = vq->shadow_avail_idx - vq->last_avail_idx;
        if (n > vq->num) {
            qnic_vq_set_broken(vq, "avail index moved past the queue size");
            return -1;
        }
        /* Ring entries are read after the index that published them. */
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
    }
    return n;
}

/* Map one descriptor's buffer into elem's iovecs. */
static bool elem_map(QnicVirtQueue *vq, QnicVqElem *elem, const VqDesc *d)
{
    bool is_write = d->flags & VRING_DESC_F_WRITE;
    uint64_t addr = d->addr;
    size_t left = d->len;

    if (d->len == 0) {
        qnic_vq_set_broken(vq, "zero-length descriptor");
        return false;
    }
    if (!is_write && elem->in_num) {
        qnic_vq_set_broken(vq, "device-readable descriptor after a writable one");
        return false;
    }
    while (left) {
        size_t plen = 0;
        void *p;
        unsigned n = elem->out_num + elem->in_num;

        if (n >= elem->iov_cap) {
            qnic_vq_set_broken(vq, "descriptor chain needs too many segments");
            return false;
        }
        p = qnic_dma_map_partial(vq->dev, addr, left, is_write, &plen);
        if (!p || plen == 0) {
            qnic_vq_set_broken(vq, "descriptor buffer is not in guest RAM");
            return false;
        }
        elem->iov[n].iov_base = p;
        elem->iov[n].iov_len = plen;
        if (is_write) {
            elem->in_num++;
            elem->in_len += plen;
        } else {
            elem->out_num++;
            elem->out_len += plen;
        }
        addr += plen;
        left -= plen;
    }
    return true;
}

/* Map an indirect table; returns the host pointer and entry count. */
static const uint8_t *map_indirect(QnicVirtQueue *vq, const VqDesc *d, unsigned *count)
{
    const uint8_t *t;

    if (!vq->indirect) {
        qnic_vq_set_broken(vq, "indirect descriptor without INDIRECT_DESC");
        return NULL;
    }
    if (d->len == 0 || d->len % DESC_SIZE || d->len / DESC_SIZE > QNIC_VQ_MAX_SIZE) {
        qnic_vq_set_broken(vq, "invalid indirect table size");
        return NULL;
    }
    t = qnic_dma_map(vq->dev, d->addr, d->len, false);
    if (!t) {
        qnic_vq_set_broken(vq, "indirect table is not in guest RAM");
        return NULL;
    }
    *count = d->len / DESC_SIZE;
    return t;
}

static QnicVqPopResult split_pop(QnicVirtQueue *vq, QnicVqElem *elem)
{
    int avail = split_avail_count(vq);
    const uint8_t *table = vq->desc;
    unsigned max = vq->num, i, seen = 0;
    uint16_t head;
    VqDesc d;

    if (avail < 0) {
        return QNIC_VQ_POP_ERROR;
    }
    if (avail == 0) {
        return QNIC_VQ_POP_EMPTY;
    }
    head = ring_ld16(AVAIL_RING(vq, vq->last_avail_idx % vq->num));
    if (head >= vq->num) {
        qnic_vq_set_broken(vq, "avail ring head out of range");
        return QNIC_VQ_POP_ERROR;
    }
    vq->last_avail_idx++;
    if (vq->event_idx && vq->notification) {
        ring_st16(AVAIL_EVENT(vq), vq->last_avail_idx);
    }

    elem->index = head;
    elem->ndescs = 1;
    i = head;
    split_desc_read(table, i, &d);
    if (d.flags & VRING_DESC_F_INDIRECT) {
        if (d.flags & VRING_DESC_F_NEXT) {
            qnic_vq_set_broken(vq, "indirect descriptor with NEXT");
            return QNIC_VQ_POP_ERROR;
        }
        table = map_indirect(vq, &d, &max);
        if (!table) {
            return QNIC_VQ_POP_ERROR;
        }
        i = 0;
        split_desc_read(table, i, &d);
    }
    for (;;) {
        if (table != vq->desc && (d.flags & VRING_DESC_F_INDIRECT)) {
            qnic_vq_set_broken(vq, "nested indirect descriptor");
            return QNIC_VQ_POP_ERROR;
        }
        if (table == vq->desc && seen && (d.flags & VRING_DESC_F_INDIRECT)) {
            qnic_vq_set_broken(vq, "indirect descriptor inside a chain");
            return QNIC_VQ_POP_ERROR;
        }
        if (++seen > max) {
            qnic_vq_set_broken(vq, "descriptor chain loops or is longer than the table");
            return QNIC_VQ_POP_ERROR;
        }
        if (!elem_map(vq, elem, &d)) {
            return QNIC_VQ_POP_ERROR;
        }
        if (!(d.flags & VRING_DESC_F_NEXT)) {
            break;
        }
        i = d.next;
        if (i >= max) {
            qnic_vq_set_broken(vq, "descriptor next index out of range");
            return QNIC_VQ_POP_ERROR;
        }
        split_desc_read(table, i, &d);
    }
    return QNIC_VQ_POP_OK;
}

/* ---- packed ---- */

static bool packed_desc_avail(QnicVirtQueue *vq, unsigned i, uint16_t *flags)
{
    uint16_t f = ring_ld16(vq->desc + (size_t)i * DESC_SIZE + 14);
    bool a = f & (1u << VRING_PACKED_DESC_F_AVAIL);
    bool u = f & (1u << VRING_PACKED_DESC_F_USED);

    *flags = f;
    return a == vq->avail_wrap && u != vq->avail_wrap;
}

static QnicVqPopResult packed_pop(QnicVirtQueue *vq, QnicVqElem *elem)
{
    uint16_t flags;
    unsigned i = vq->last_avail_idx, n = 0;
    VqDesc d;

    if (!packed_desc_avail(vq, i, &flags)) {
        return QNIC_VQ_POP_EMPTY;
    }
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    packed_desc_read(vq->desc, i, &d);
    if (d.flags & VRING_DESC_F_INDIRECT) {
        unsigned count, k;
        const uint8_t *table;

        if (d.flags & VRING_DESC_F_NEXT) {
            qnic_vq_set_broken(vq, "indirect descriptor with NEXT");
            return QNIC_VQ_POP_ERROR;
        }
        table = map_indirect(vq, &d, &count);
        if (!table) {
            return QNIC_VQ_POP_ERROR;
        }
        elem->index = d.id;
        for (k = 0; k < count; k++) {
            VqDesc t;
            packed_desc_read(table, k, &t);
            if (t.flags & VRING_DESC_F_INDIRECT) {
                qnic_vq_set_broken(vq, "nested indirect descriptor");
                return QNIC_VQ_POP_ERROR;
            }
            if (!elem_map(vq, elem, &t)) {
                return QNIC_VQ_POP_ERROR;
            }
        }
        n = 1;
    } else {
        for (;;) {
            if (!elem_map(vq, elem, &d)) {
                return QNIC_VQ_POP_ERROR;
            }
            n++;
            if (!(d.flags & VRING_DESC_F_NEXT)) {
                break;
            }
            if (n >= vq->num) {
                qnic_vq_set_broken(vq, "descriptor chain longer than the queue");
                return QNIC_VQ_POP_ERROR;
            }
            if (++i >= vq->num) {
                i = 0;
            }
            packed_desc_read(vq->desc, i, &d);
            if (d.flags & VRING_DESC_F_INDIRECT) {
                qnic_vq_set_broken(vq, "indirect descriptor inside a chain");
                return QNIC_VQ_POP_ERROR;
            }
        }
        /* The buffer id lives in the chain's last descriptor. */
        elem->index = d.id;
    }
    elem->ndescs = n;
    vq->last_avail_idx += n;
    if (vq->last_avail_idx >= vq->num) {
        vq->last_avail_idx -= vq->num;
        vq->avail_wrap = !vq->avail_wrap;
    }
    return QNIC_VQ_POP_OK;
}

/* ---- common ---- */

bool qnic_vq_empty(QnicVirtQueue *vq)
{
    uint16_t flags;

    if (!qnic_vq_ready(vq)) {
        return true;
    }
    if (vq->packed) {
        return !packed_desc_avail(vq, vq->last_avail_idx, &flags);
    }
    if (vq->shadow_avail_idx != vq->last_avail_idx) {
        return false;
    }
    return ring_ld16(AVAIL_IDX(vq)) == vq->last_avail_idx;
}

QnicVqPopResult qnic_vq_pop(QnicVirtQueue *vq, QnicVqElem *elem)
{
    QnicVqPopResult r;

    if (vq->broken) {
        return QNIC_VQ_POP_ERROR;
    }
    if (!qnic_vq_ready(vq)) {
        return QNIC_VQ_POP_EMPTY;
    }
    if (vq->inuse >= vq->num) {
        qnic_vq_set_broken(vq, "driver made more buffers available than the queue holds");
        return QNIC_VQ_POP_ERROR;
    }
    elem->out_num = elem->in_num = 0;
    elem->out_len = elem->in_len = 0;
    if (elem->iov_cap == 0) {
        return QNIC_VQ_POP_ERROR;
    }
    r = vq->packed ? packed_pop(vq, elem) : split_pop(vq, elem);
    if (r == QNIC_VQ_POP_OK) {
        vq->inuse++;
        vq->inuse_descs += elem->ndescs;
        vq->stat_pops++;
    }
    return r;
}

QnicVqMark qnic_vq_mark(const QnicVirtQueue *vq)
{
    return (QnicVqMark){ vq->last_avail_idx, vq->avail_wrap, vq->inuse, vq->inuse_descs };
}

void qnic_vq_rollback(QnicVirtQueue *vq, QnicVqMark mark)
{
    vq->last_avail_idx = mark.last_avail_idx;
    vq->avail_wrap = mark.avail_wrap;
    vq->inuse = mark.inuse;
    vq->inuse_descs = mark.inuse_descs;
}

void qnic_vq_fill(QnicVirtQueue *vq, const QnicVqElem *elem, uint32_t len, unsigned idx)
{
    if (!qnic_vq_ready(vq)) {
        return;
    }
    if (len > elem->in_len) {
        len = elem->in_len;
    }
    if (!vq->packed) {
        uint8_t *e = USED_ELEM(vq, (uint16_t)(vq->used_idx + idx) % vq->num);
        ring_st32(e, elem->index);
        ring_st32(e + 4, len);
        return;
    }
    /* packed: slot = used_idx + ndescs of earlier elements in this batch */
    {
        unsigned slot = vq->used_idx + vq->pending_used;
        bool wrap = vq->used_wrap;
        uint8_t *d;
        uint16_t flags;

        if (idx == 0) {
            vq->pending_used = 0;
            slot = vq->used_idx;
        }
        if (slot >= vq->num) {
            slot -= vq->num;
            wrap = !wrap;
        }
        d = vq->desc + (size_t)slot * DESC_SIZE;
        ring_st16(d + 12, elem->index);
        ring_st32(d + 8, len);
        flags = (wrap ? (1u << VRING_PACKED_DESC_F_AVAIL) | (1u << VRING_PACKED_DESC_F_USED) : 0) |
                (len ? VRING_DESC_F_WRITE : 0);
        if (idx == 0) {
            /* The head's flags are written last, in flush, so the
             * driver never sees a partial batch. */
            vq->pending_used = elem->ndescs;
            vq->used_flags_head = flags;
        } else {
            __atomic_thread_fence(__ATOMIC_RELEASE);
            ring_st16(d + 14, flags);
            vq->pending_used += elem->ndescs;
        }
    }
}

void qnic_vq_flush(QnicVirtQueue *vq, unsigned count)
{
    if (!qnic_vq_ready(vq) || count == 0) {
        return;
    }
    __atomic_thread_fence(__ATOMIC_RELEASE);
    if (!vq->packed) {
        uint16_t old = vq->used_idx, new = old + count;
        ring_st16(USED_IDX(vq), new);
        vq->used_idx = new;
        if ((uint16_t)(new - vq->signalled_used) < (uint16_t)(new - old)) {
            vq->signalled_used_valid = false;
        }
        vq->inuse_descs = vq->inuse_descs >= count ? vq->inuse_descs - count : 0;
    } else {
        vq->inuse_descs = vq->inuse_descs >= vq->pending_used ?
                          vq->inuse_descs - vq->pending_used : 0;
        ring_st16(vq->desc + (size_t)vq->used_idx * DESC_SIZE + 14, vq->used_flags_head);
        vq->used_idx += vq->pending_used;
        if (vq->used_idx >= vq->num) {
            vq->used_idx -= vq->num;
            vq->used_wrap = !vq->used_wrap;
        }
        vq->pending_used = 0;
    }
    vq->inuse = vq->inuse >= count ? vq->inuse - count : 0;
}

void qnic_vq_set_notification(QnicVirtQueue *vq, bool enable)
{
    vq->notification = enable;
    if (!qnic_vq_ready(vq)) {
        return;
    }
    if (vq->packed) {
        uint8_t *ev = vq->used;   /* device event suppression area */
        if (!enable) {
            ring_st16(ev + 2, VRING_PACKED_EVENT_FLAG_DISABLE);
        } else if (vq->event_idx) {
            ring_st16(ev, vq->last_avail_idx | (vq->avail_wrap << VRING_PACKED_EVENT_F_WRAP_CTR));
            __atomic_thread_fence(__ATOMIC_RELEASE);
            ring_st16(ev + 2, VRING_PACKED_EVENT_FLAG_DESC);
        } else {
            ring_st16(ev + 2, VRING_PACKED_EVENT_FLAG_ENABLE);
        }
    } else if (vq->event_idx) {
        if (enable) {
            ring_st16(AVAIL_EVENT(vq), ring_ld16(AVAIL_IDX(vq)));
        }
    } else {
        uint16_t f = ring_ld16(USED_FLAGS(vq));
        ring_st16(USED_FLAGS(vq), enable ? f & ~VRING_USED_F_NO_NOTIFY : f | VRING_USED_F_NO_NOTIFY);
    }
    if (enable) {
        /* Make the request visible before the caller re-checks the ring. */
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
    }
}

static inline bool need_event(uint16_t event, uint16_t new, uint16_t old)
{
    return (uint16_t)(new - event - 1) < (uint16_t)(new - old);
}

bool qnic_vq_should_notify(QnicVirtQueue *vq)
{
    uint16_t old, new;
    bool valid;

    if (!qnic_vq_ready(vq)) {
        return false;
    }
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    old = vq->signalled_used;
    new = vq->signalled_used = vq->used_idx;
    valid = vq->signalled_used_valid;
    vq->signalled_used_valid = true;
    if (vq->packed) {
        uint16_t off_wrap = ring_ld16(vq->avail), flags = ring_ld16(vq->avail + 2);
        uint16_t off;

        if (flags == VRING_PACKED_EVENT_FLAG_DISABLE) {
            return false;
        }
        if (flags != VRING_PACKED_EVENT_FLAG_DESC || !vq->event_idx) {
            return true;
        }
        if (!valid) {
            return true;
        }
        off = off_wrap & 0x7fff;
        if ((bool)(off_wrap >> 15) != vq->used_wrap) {
            off -= vq->num;
        }
        return need_event(off, new, old);
    }
    if (!vq->event_idx) {
        return !(ring_ld16(vq->avail) & VRING_AVAIL_F_NO_INTERRUPT);
    }
    return !valid || need_event(ring_ld16(USED_EVENT(vq)), new, old);
}

void qnic_vq_notify(QnicVirtQueue *vq)
{
    if (qnic_vq_should_notify(vq) && vq->notify) {
        vq->stat_notifies++;
        vq->notify(vq, vq->opaque);
    }
}

/* ---- saved state ---- */

/* Host pointer to [gpa, gpa + len) when it lies in one RAM region of dev's
 * machine. */
static uint8_t *ram_range(QnicDevice *dev, uint64_t gpa, uint64_t len)
{
    QnicRegion *r;
    uint64_t off;

    if (!dev || !dev->machine || len == 0) {
        return NULL;
    }
    r = qnic_as_find(&dev->machine->mem, gpa, &off);
    if (!r || !r->ram || off > r->size || len > r->size - off) {
        return NULL;
    }
    return r->ram + off;
}

bool qnic_vq_rings_in_ram(QnicDevice *dev, uint16_t num, bool packed, uint64_t desc_gpa,
                          uint64_t avail_gpa, uint64_t used_gpa, uint8_t **desc,
                          uint8_t **avail, uint8_t **used)
{
    uint64_t dsz = (uint64_t)num * DESC_SIZE;
    uint64_t asz = packed ? 4 : 6 + 2ull * num, usz = packed ? 4 : 6 + 8ull * num;
    uint8_t *d, *a, *u;

    if (num == 0 || (!packed && !QNIC_IS_POW2(num)) || (desc_gpa & 15) ||
        (avail_gpa & (packed ? 3 : 1)) || (used_gpa & 3)) {
        return false;
    }
    d = ram_range(dev, desc_gpa, dsz);
    a = ram_range(dev, avail_gpa, asz);
    u = ram_range(dev, used_gpa, usz);
    if (!d || !a || !u) {
        return false;
    }
    if (desc) {
        *desc = d;
        *avail = a;
        *used = u;
    }
    return true;
}

void qnic_vq_inflight_rewound(const QnicVirtQueue *vq, uint16_t *last_avail_idx,
                              bool *avail_wrap)
{
    *avail_wrap = vq->avail_wrap;
    if (!vq->packed) {
        *last_avail_idx = vq->last_avail_idx - vq->inuse;
        return;
    }
    if (vq->inuse_descs <= vq->last_avail_idx) {
        *last_avail_idx = vq->last_avail_idx - vq->inuse_descs;
    } else {
        /* the in-flight chains started in the previous lap */
        *last_avail_idx = vq->last_avail_idx + vq->num - vq->inuse_descs;
        *avail_wrap = !vq->avail_wrap;
    }
}
