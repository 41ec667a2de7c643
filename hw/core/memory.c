/*
 * Address spaces, access dispatch and device DMA. Dispatch finds the
 * highest-priority region at an address and adapts the access to the sizes
 * the region's callbacks implement, as a CPU access through QEMU's memory
 * core would be adapted. DMA is the only way devices touch guest memory; it
 * checks bus mastering, bounds and reentrancy before anything is copied.
 */
#include "qnic/memory.h"
#include "qnic/device.h"
#include "qnic/machine.h"
#include "qnic/log.h"
#include <unistd.h>

void qnic_region_init_io(QnicRegion *r, QnicDevice *owner, const QnicMemOps *ops,
                         void *opaque, const char *name, uint64_t size)
{
    memset(r, 0, sizeof(*r));
    r->name = name;
    r->size = size;
    r->ops = ops;
    r->opaque = opaque;
    r->owner = owner;
    r->ram_fd = -1;
}

void qnic_region_init_ram(QnicRegion *r, const char *name, uint8_t *host,
                          uint64_t size, int fd, uint64_t fd_offset)
{
    memset(r, 0, sizeof(*r));
    r->name = name;
    r->size = size;
    r->ram = host;
    r->ram_fd = fd;
    r->ram_fd_offset = fd_offset;
}

void qnic_as_init(QnicAddressSpace *as, const char *name, bool is_io)
{
    memset(as, 0, sizeof(*as));
    as->name = name;
    as->is_io = is_io;
    as->unassigned_value = is_io ? ~0ull : 0;
    as->regions = g_ptr_array_new();
    as->listeners = g_ptr_array_new();
}

void qnic_as_destroy(QnicAddressSpace *as)
{
    while (as->regions && as->regions->len) {
        qnic_as_unmap(g_ptr_array_index(as->regions, 0));
    }
    if (as->regions) {
        g_ptr_array_free(as->regions, TRUE);
    }
    if (as->listeners) {
        g_ptr_array_free(as->listeners, TRUE);
    }
    as->regions = as->listeners = NULL;
}

static void notify_eventfds(QnicAddressSpace *as, QnicRegion *r, bool add)
{
    if (!r->ioeventfds) {
        return;
    }
    for (guint i = 0; i < as->listeners->len; i++) {
        QnicAsListener *l = g_ptr_array_index(as->listeners, i);
        for (guint j = 0; j < r->ioeventfds->len; j++) {
            QnicIoEventFd *e = &g_array_index(r->ioeventfds, QnicIoEventFd, j);
            if (add && l->ioeventfd_add) {
                l->ioeventfd_add(l, r, e);
            } else if (!add && l->ioeventfd_del) {
                l->ioeventfd_del(l, r, e);
            }
        }
    }
}

void qnic_as_map(QnicAddressSpace *as, QnicRegion *r, uint64_t addr, int priority)
{
    guint i;

    qnic_as_unmap(r);
    r->as = as;
    r->addr = addr;
    r->priority = priority;
    /* Keep the list ordered by priority, newest first among equals, so a
     * later mapping of the same priority shadows an earlier one. */
    for (i = 0; i < as->regions->len; i++) {
        QnicRegion *o = g_ptr_array_index(as->regions, i);
        if (o->priority <= priority) {
            break;
        }
    }
    g_ptr_array_insert(as->regions, i, r);
    for (i = 0; i < as->listeners->len; i++) {
        QnicAsListener *l = g_ptr_array_index(as->listeners, i);
        if (l->region_add) {
            l->region_add(l, r);
        }
    }
    notify_eventfds(as, r, true);
}

void qnic_as_unmap(QnicRegion *r)
{
    QnicAddressSpace *as = r->as;

    if (!as) {
        return;
    }
    notify_eventfds(as, r, false);
    for (guint i = 0; i < as->listeners->len; i++) {
        QnicAsListener *l = g_ptr_array_index(as->listeners, i);
        if (l->region_del) {
            l->region_del(l, r);
        }
    }
    g_ptr_array_remove(as->regions, r);
    r->as = NULL;
}

void qnic_as_add_listener(QnicAddressSpace *as, QnicAsListener *l)
{
    g_ptr_array_add(as->listeners, l);
    for (guint i = 0; i < as->regions->len; i++) {
        QnicRegion *r = g_ptr_array_index(as->regions, i);
        if (l->region_add) {
            l->region_add(l, r);
        }
        if (r->ioeventfds && l->ioeventfd_add) {
            for (guint j = 0; j < r->ioeventfds->len; j++) {
                l->ioeventfd_add(l, r, &g_array_index(r->ioeventfds, QnicIoEventFd, j));
            }
        }
    }
}

void qnic_as_remove_listener(QnicAddressSpace *as, QnicAsListener *l)
{
    g_ptr_array_remove(as->listeners, l);
}

void qnic_region_add_ioeventfd(QnicRegion *r, uint64_t offset, unsigned size,
                               bool match_data, uint64_t data, int fd)
{
    QnicIoEventFd e = { offset, size, match_data, data, fd };

    if (!r->ioeventfds) {
        r->ioeventfds = g_array_new(FALSE, TRUE, sizeof(QnicIoEventFd));
    }
    g_array_append_val(r->ioeventfds, e);
    if (r->as) {
        for (guint i = 0; i < r->as->listeners->len; i++) {
            QnicAsListener *l = g_ptr_array_index(r->as->listeners, i);
            if (l->ioeventfd_add) {
                l->ioeventfd_add(l, r, &e);
            }
        }
    }
}

void qnic_region_del_ioeventfd(QnicRegion *r, uint64_t offset, unsigned size,
                               bool match_data, uint64_t data, int fd)
{
    if (!r->ioeventfds) {
        return;
    }
    for (guint j = 0; j < r->ioeventfds->len; j++) {
        QnicIoEventFd *e = &g_array_index(r->ioeventfds, QnicIoEventFd, j);
        if (e->offset == offset && e->size == size && e->match_data == match_data &&
            e->data == data && e->fd == fd) {
            if (r->as) {
                for (guint i = 0; i < r->as->listeners->len; i++) {
                    QnicAsListener *l = g_ptr_array_index(r->as->listeners, i);
                    if (l->ioeventfd_del) {
                        l->ioeventfd_del(l, r, e);
                    }
                }
            }
            g_array_remove_index(r->ioeventfds, j);
            return;
        }
    }
}

QnicRegion *qnic_as_find(QnicAddressSpace *as, uint64_t addr, uint64_t *offset)
{
    for (guint i = 0; i < as->regions->len; i++) {
        QnicRegion *r = g_ptr_array_index(as->regions, i);
        if (addr >= r->addr && addr - r->addr < r->size) {
            if (offset) {
                *offset = addr - r->addr;
            }
            return r;
        }
    }
    return NULL;
}

/* ---- callback dispatch with size adaptation ---- */

static uint64_t size_mask(unsigned size)
{
    return size >= 8 ? ~0ull : (1ull << (size * 8)) - 1;
}

static bool access_valid(const QnicRegion *r, uint64_t off, unsigned size)
{
    const QnicMemOps *ops = r->ops;
    unsigned vmin = ops->valid_min ? ops->valid_min : 1;
    unsigned vmax = ops->valid_max ? ops->valid_max : 8;

    if (size < vmin || size > vmax) {
        return false;
    }
    if (!ops->valid_unaligned && (off & (size - 1))) {
        return false;
    }
    return true;
}

static void impl_sizes(const QnicMemOps *ops, unsigned *imin, unsigned *imax)
{
    *imin = ops->impl_min ? ops->impl_min : 1;
    *imax = ops->impl_max ? ops->impl_max : 4;
}

static uint64_t io_read(QnicRegion *r, uint64_t off, unsigned size)
{
    unsigned imin, imax, asz;
    uint64_t val = 0;

    if (!r->ops->read) {
        return 0;
    }
    impl_sizes(r->ops, &imin, &imax);
    asz = MAX(MIN(size, imax), imin);
    if (r->owner) {
        r->owner->in_io++;
    }
    if (asz >= size) {
        val = r->ops->read(r->opaque, off, asz) & size_mask(size);
    } else {
        for (unsigned i = 0; i < size; i += asz) {
            val |= (r->ops->read(r->opaque, off + i, asz) & size_mask(asz)) << (i * 8);
        }
    }
    if (r->owner) {
        r->owner->in_io--;
    }
    return val;
}

static void io_write(QnicRegion *r, uint64_t off, uint64_t val, unsigned size)
{
    unsigned imin, imax, asz;

    if (!r->ops->write) {
        return;
    }
    impl_sizes(r->ops, &imin, &imax);
    asz = MAX(MIN(size, imax), imin);
    if (r->owner) {
        r->owner->in_io++;
    }
    if (asz >= size) {
        r->ops->write(r->opaque, off, val & size_mask(size), asz);
    } else {
        for (unsigned i = 0; i < size; i += asz) {
            r->ops->write(r->opaque, off + i, (val >> (i * 8)) & size_mask(asz), asz);
        }
    }
    if (r->owner) {
        r->owner->in_io--;
    }
}

static bool eventfd_hit(QnicAddressSpace *as, QnicRegion *r, uint64_t off, unsigned size,
                        uint64_t val)
{
    if (!r->ioeventfds || as->ioeventfd_in_kernel) {
        return false;
    }
    for (guint j = 0; j < r->ioeventfds->len; j++) {
        QnicIoEventFd *e = &g_array_index(r->ioeventfds, QnicIoEventFd, j);
        if (e->offset == off && (e->size == 0 || e->size == size) &&
            (!e->match_data || (e->data & size_mask(size)) == (val & size_mask(size)))) {
            uint64_t one = 1;
            if (write(e->fd, &one, sizeof(one)) < 0) {
                /* counter overflow only: the reader will still wake */
            }
            return true;
        }
    }
    return false;
}

/* ---- Dirty log ---- */

#define LONG_BITS (8 * sizeof(unsigned long))
/* Distinct long-lived writable maps remembered per region; past this the
 * whole region counts as dirty at every sync (a guest that keeps moving its
 * rings costs bandwidth, never correctness). */
#define MAX_WRITE_MAPS 1024

typedef struct QnicWriteMap {
    uint64_t off, len;
} QnicWriteMap;

struct QnicDirtyLog {
    unsigned long *bits;        /* NULL while not logging */
    uint64_t pages;
    GArray *write_maps;         /* QnicWriteMap, deduplicated */
    bool write_maps_overflow;
};

static struct QnicDirtyLog *dirty_log_get(QnicRegion *r)
{
    if (!r->dirty) {
        r->dirty = g_new0(struct QnicDirtyLog, 1);
        r->dirty->pages = (r->size + QNIC_DIRTY_PAGE_SIZE - 1) / QNIC_DIRTY_PAGE_SIZE;
        r->dirty->write_maps = g_array_new(FALSE, FALSE, sizeof(QnicWriteMap));
    }
    return r->dirty;
}

void qnic_region_dirty_log_start(QnicRegion *r)
{
    struct QnicDirtyLog *d = dirty_log_get(r);
    size_t words = (d->pages + LONG_BITS - 1) / LONG_BITS;

    g_free(d->bits);
    d->bits = g_new0(unsigned long, words ? words : 1);
}

void qnic_region_dirty_log_stop(QnicRegion *r)
{
    if (r->dirty) {
        g_free(r->dirty->bits);
        r->dirty->bits = NULL;
    }
}

void qnic_region_dirty_free(QnicRegion *r)
{
    if (r->dirty) {
        g_free(r->dirty->bits);
        g_array_free(r->dirty->write_maps, TRUE);
        g_free(r->dirty);
        r->dirty = NULL;
    }
}

static void bits_set_range(unsigned long *bits, uint64_t first, uint64_t last)
{
    for (uint64_t p = first; p <= last; p++) {
        __atomic_fetch_or(&bits[p / LONG_BITS], 1ul << (p % LONG_BITS), __ATOMIC_RELAXED);
    }
}

/* A write of len bytes at off of RAM region r happened (or is about to). */
static inline void ram_written(QnicRegion *r, uint64_t off, uint64_t len)
{
    unsigned long *bits = r->dirty ? __atomic_load_n(&r->dirty->bits, __ATOMIC_ACQUIRE) : NULL;

    if (bits && len) {
        bits_set_range(bits, off / QNIC_DIRTY_PAGE_SIZE, (off + len - 1) / QNIC_DIRTY_PAGE_SIZE);
    }
}

static void write_map_add(QnicRegion *r, uint64_t off, uint64_t len)
{
    struct QnicDirtyLog *d = dirty_log_get(r);
    QnicWriteMap wm = { off, len };

    for (guint i = 0; i < d->write_maps->len; i++) {
        QnicWriteMap *e = &g_array_index(d->write_maps, QnicWriteMap, i);
        if (e->off == off && e->len == len) {
            return;
        }
    }
    if (d->write_maps->len >= MAX_WRITE_MAPS) {
        d->write_maps_overflow = true;
        return;
    }
    g_array_append_val(d->write_maps, wm);
}

void qnic_region_dirty_log_sync(QnicRegion *r, unsigned long *bitmap)
{
    struct QnicDirtyLog *d = dirty_log_get(r);
    size_t words = (d->pages + LONG_BITS - 1) / LONG_BITS;

    if (d->write_maps_overflow) {
        if (d->pages) {
            bits_set_range(bitmap, 0, d->pages - 1);
        }
    } else {
        for (guint i = 0; i < d->write_maps->len; i++) {
            QnicWriteMap *e = &g_array_index(d->write_maps, QnicWriteMap, i);
            if (e->len) {
                bits_set_range(bitmap, e->off / QNIC_DIRTY_PAGE_SIZE,
                               (e->off + e->len - 1) / QNIC_DIRTY_PAGE_SIZE);
            }
        }
    }
    if (!d->bits) {
        return;
    }
    for (size_t i = 0; i < words; i++) {
        bitmap[i] |= __atomic_exchange_n(&d->bits[i], 0, __ATOMIC_RELAXED);
    }
}

bool qnic_as_load(QnicAddressSpace *as, uint64_t addr, unsigned size, uint64_t *val)
{
    uint64_t off;
    QnicRegion *r = qnic_as_find(as, addr, &off);

    *val = as->unassigned_value & size_mask(size);
    if (!r) {
        return false;
    }
    if (off + size > r->size) {
        /* Straddles the region's end: byte by byte, each byte where it lands. */
        uint8_t b[8];
        bool ok = qnic_as_rw(as, addr, b, size, false);
        *val = 0;
        for (unsigned i = 0; i < size; i++) {
            *val |= (uint64_t)b[i] << (i * 8);
        }
        return ok;
    }
    if (r->ram) {
        uint8_t b[8] = { 0 };
        memcpy(b, r->ram + off, size);
        *val = qnic_ld64(b) & size_mask(size);
        return true;
    }
    if (!access_valid(r, off, size)) {
        qnic_guest_error("%s: invalid %u-byte read at offset 0x%" PRIx64 " of %s\n",
                         as->name, size, off, r->name);
        *val = size_mask(size);
        return true;
    }
    *val = io_read(r, off, size);
    return true;
}

bool qnic_as_store(QnicAddressSpace *as, uint64_t addr, unsigned size, uint64_t val)
{
    uint64_t off;
    QnicRegion *r = qnic_as_find(as, addr, &off);

    if (!r) {
        return false;
    }
    if (off + size > r->size) {
        uint8_t b[8];
        qnic_st64(b, val);
        return qnic_as_rw(as, addr, b, size, true);
    }
    if (r->ram) {
        uint8_t b[8];
        qnic_st64(b, val);
        memcpy(r->ram + off, b, size);
        ram_written(r, off, size);
        return true;
    }
    if (!access_valid(r, off, size)) {
        qnic_guest_error("%s: invalid %u-byte write at offset 0x%" PRIx64 " of %s\n",
                         as->name, size, off, r->name);
        return true;
    }
    if (eventfd_hit(as, r, off, size, val)) {
        return true;
    }
    io_write(r, off, val, size);
    return true;
}

/* Largest naturally aligned access size for a callback region, as QEMU's
 * address_space_rw picks it: at most the valid maximum (4 by default). */
static unsigned bulk_access_size(const QnicRegion *r, uint64_t off, uint64_t len)
{
    unsigned max = r->ops->valid_max ? r->ops->valid_max : 4;
    unsigned min = r->ops->valid_min ? r->ops->valid_min : 1;
    unsigned l = max;

    if (!r->ops->valid_unaligned && off) {
        unsigned align = (unsigned)(off & -off);
        if (align < l) {
            l = align;
        }
    }
    while (l > len && l > 1) {
        l >>= 1;
    }
    if (l < min) {
        l = min;
    }
    return l;
}

bool qnic_as_rw(QnicAddressSpace *as, uint64_t addr, void *buf, uint64_t len, bool is_write)
{
    uint8_t *p = buf;
    bool ok = true;

    while (len) {
        uint64_t off;
        QnicRegion *r = qnic_as_find(as, addr, &off);
        uint64_t chunk;

        if (!r) {
            if (!is_write) {
                *p = (uint8_t)as->unassigned_value;
            }
            ok = false;
            chunk = 1;
        } else if (r->ram) {
            chunk = MIN(len, r->size - off);
            if (is_write) {
                memcpy(r->ram + off, p, chunk);
                ram_written(r, off, chunk);
            } else {
                memcpy(p, r->ram + off, chunk);
            }
        } else {
            uint8_t b[8];
            unsigned l = bulk_access_size(r, off, len);
            uint64_t v;
            if (l > r->size - off) {
                l = 1;
            }
            chunk = MIN((uint64_t)l, len);
            if (is_write) {
                memset(b, 0, sizeof(b));
                memcpy(b, p, chunk);
                qnic_as_store(as, addr, l, qnic_ld64(b));
            } else {
                qnic_as_load(as, addr, l, &v);
                qnic_st64(b, v);
                memcpy(p, b, chunk);
            }
        }
        p += chunk;
        addr += chunk;
        len -= chunk;
    }
    return ok;
}

/* ---- DMA ---- */

static QnicAddressSpace *dma_as(QnicDevice *dev)
{
    return dev && dev->machine ? &dev->machine->mem : NULL;
}

/* Is the whole range allowed? Sets *all_ram when it is plain RAM. */
static bool dma_check(QnicDevice *dev, QnicAddressSpace *as, uint64_t gpa, size_t len,
                      bool is_write, bool *all_ram)
{
    const char *dir = is_write ? "write" : "read";

    *all_ram = true;
    if (!as) {
        return false;
    }
    if (dev && !dev->dma_enabled) {
        qnic_guest_error("%s: DMA %s of %zu bytes at 0x%" PRIx64 " with bus mastering off\n",
                         dev->cls ? dev->cls->name : "device", dir, len, gpa);
        return false;
    }
    if (len && gpa + len - 1 < gpa) {
        qnic_guest_error("%s: DMA %s at 0x%" PRIx64 " wraps the address space\n",
                         dev && dev->cls ? dev->cls->name : "device", dir, gpa);
        return false;
    }
    uint64_t a = gpa, left = len;
    while (left) {
        uint64_t off;
        QnicRegion *r = qnic_as_find(as, a, &off);
        uint64_t chunk;
        if (!r) {
            qnic_guest_error("%s: DMA %s at 0x%" PRIx64 " (%zu bytes) outside guest memory\n",
                             dev && dev->cls ? dev->cls->name : "device", dir, gpa, len);
            return false;
        }
        chunk = MIN(left, r->size - off);
        if (!r->ram) {
            *all_ram = false;
            if (r->owner && (r->owner == dev || r->owner->in_io > 0)) {
                qnic_guest_error("%s: DMA %s at 0x%" PRIx64 " targets the MMIO of %s while "
                                 "it is active: refused (reentrancy)\n",
                                 dev && dev->cls ? dev->cls->name : "device", dir, a,
                                 r->owner->cls ? r->owner->cls->name : r->name);
                return false;
            }
        }
        a += chunk;
        left -= chunk;
    }
    return true;
}

static bool dma_rw(QnicDevice *dev, uint64_t gpa, void *buf, size_t len, bool is_write)
{
    QnicAddressSpace *as = dma_as(dev);
    bool all_ram;

    if (len == 0) {
        return true;
    }
    if (!dma_check(dev, as, gpa, len, is_write, &all_ram)) {
        if (!is_write) {
            memset(buf, 0xff, len);
        }
        return false;
    }
    if (dev) {
        dev->in_io++;
    }
    qnic_as_rw(as, gpa, buf, len, is_write);
    if (dev) {
        dev->in_io--;
    }
    return true;
}

bool qnic_dma_read(QnicDevice *dev, uint64_t gpa, void *buf, size_t len)
{
    return dma_rw(dev, gpa, buf, len, false);
}

bool qnic_dma_write(QnicDevice *dev, uint64_t gpa, const void *buf, size_t len)
{
    return dma_rw(dev, gpa, (void *)buf, len, true);
}

/* A long-lived map (qnic_dma_map) is remembered; a partial one, written
 * at once, is logged now. */
static void *dma_map(QnicDevice *dev, uint64_t gpa, size_t len, bool is_write,
                     size_t *plen, bool long_lived)
{
    QnicAddressSpace *as = dma_as(dev);
    uint64_t off;
    QnicRegion *r;

    *plen = 0;
    if (!as) {
        return NULL;
    }
    if (dev && !dev->dma_enabled) {
        qnic_guest_error("%s: DMA map at 0x%" PRIx64 " with bus mastering off\n",
                         dev->cls ? dev->cls->name : "device", gpa);
        return NULL;
    }
    r = qnic_as_find(as, gpa, &off);
    if (!r || !r->ram) {
        qnic_guest_error("%s: DMA map of %zu bytes at 0x%" PRIx64 " is not guest RAM\n",
                         dev && dev->cls ? dev->cls->name : "device", len, gpa);
        return NULL;
    }
    *plen = MIN((uint64_t)len, r->size - off);
    if (is_write && long_lived) {
        write_map_add(r, off, *plen);
    } else if (is_write) {
        ram_written(r, off, *plen);
    }
    return r->ram + off;
}

void *qnic_dma_map_partial(QnicDevice *dev, uint64_t gpa, size_t len, bool is_write,
                           size_t *plen)
{
    return dma_map(dev, gpa, len, is_write, plen, false);
}

void *qnic_dma_map(QnicDevice *dev, uint64_t gpa, size_t len, bool is_write)
{
    size_t got;
    void *p = dma_map(dev, gpa, len, is_write, &got, true);

    if (p && got < len) {
        qnic_guest_error("%s: DMA map of %zu bytes at 0x%" PRIx64 " runs past guest RAM\n",
                         dev && dev->cls ? dev->cls->name : "device", len, gpa);
        return NULL;
    }
    return p;
}
