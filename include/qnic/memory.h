/*
 * Address spaces, regions and guest DMA.
 *
 * A QnicRegion is a range of guest-physical memory or I/O ports backed either
 * by host RAM or by read/write callbacks. Regions are mapped into a
 * QnicAddressSpace (the machine's "memory" and "io" spaces) at an address with
 * a priority; the highest-priority mapping wins where two overlap. Dispatch
 * adapts access sizes to what a region's callbacks implement (splitting wide
 * accesses, widening narrow ones) the way QEMU's memory core does.
 *
 * Devices reach guest memory only through qnic_dma_*(), which checks every
 * address against RAM, gates on the device's bus-master state, and refuses
 * (with a guest-error log line) DMA that would land in the MMIO of the device
 * issuing it or of any device currently inside one of its handlers: the
 * DMA-reentrancy class of bugs cannot happen.
 */
#ifndef QNIC_MEMORY_H
#define QNIC_MEMORY_H

#include "qnic/common.h"

typedef struct QnicDevice QnicDevice;
typedef struct QnicAddressSpace QnicAddressSpace;

typedef struct QnicMemOps {
    uint64_t (*read)(void *opaque, uint64_t addr, unsigned size);
    void (*write)(void *opaque, uint64_t addr, uint64_t val, unsigned size);
    /* Access sizes the guest may use; others are ignored with a guest error
     * (reads return all-ones). 0 means 1 and 8. */
    unsigned valid_min, valid_max;
    bool valid_unaligned;
    /* Access sizes the callbacks implement; dispatch splits or widens other
     * sizes into these. 0 means 1 and 4. */
    unsigned impl_min, impl_max;
} QnicMemOps;

typedef struct QnicIoEventFd {
    uint64_t offset;      /* within the region */
    unsigned size;        /* 0 = any size */
    bool match_data;
    uint64_t data;
    int fd;               /* eventfd */
} QnicIoEventFd;

typedef struct QnicRegion {
    const char *name;
    uint64_t size;
    const QnicMemOps *ops;
    void *opaque;
    QnicDevice *owner;     /* for the reentrancy guard; NULL for RAM */
    uint8_t *ram;          /* host pointer when RAM-backed */
    int ram_fd;            /* memfd of RAM-backed regions, else -1 */
    uint64_t ram_fd_offset;
    /* mapping, owned by the address space */
    QnicAddressSpace *as;
    uint64_t addr;
    int priority;
    /* ioeventfds registered on this region (kernel-backed under KVM, or
     * signalled by dispatch when the accelerator has none) */
    GArray *ioeventfds;    /* QnicIoEventFd */
    /* RAM only: the dirty log of writes qnic itself makes (see
     * qnic_region_dirty_log_start); NULL until first needed. */
    struct QnicDirtyLog *dirty;
} QnicRegion;

void qnic_region_init_io(QnicRegion *r, QnicDevice *owner, const QnicMemOps *ops,
                         void *opaque, const char *name, uint64_t size);
void qnic_region_init_ram(QnicRegion *r, const char *name, uint8_t *host,
                          uint64_t size, int fd, uint64_t fd_offset);

/* Registered with an address space listener (KVM) when mapped. */
void qnic_region_add_ioeventfd(QnicRegion *r, uint64_t offset, unsigned size,
                               bool match_data, uint64_t data, int fd);
void qnic_region_del_ioeventfd(QnicRegion *r, uint64_t offset, unsigned size,
                               bool match_data, uint64_t data, int fd);

/* Listener: told when regions appear/disappear (the VMM maps RAM slots and
 * ioeventfds into KVM from these). */
typedef struct QnicAsListener {
    void (*region_add)(struct QnicAsListener *l, QnicRegion *r);
    void (*region_del)(struct QnicAsListener *l, QnicRegion *r);
    void (*ioeventfd_add)(struct QnicAsListener *l, QnicRegion *r, const QnicIoEventFd *e);
    void (*ioeventfd_del)(struct QnicAsListener *l, QnicRegion *r, const QnicIoEventFd *e);
    void *opaque;
} QnicAsListener;

struct QnicAddressSpace {
    const char *name;
    bool is_io;
    uint64_t unassigned_value;  /* memory reads 0, port I/O reads all-ones */
    GPtrArray *regions;         /* mapped QnicRegion *, highest priority first */
    GPtrArray *listeners;       /* QnicAsListener * */
    /* Set when a listener makes ioeventfds kernel-side: dispatch then does
     * not signal them itself. */
    bool ioeventfd_in_kernel;
};

void qnic_as_init(QnicAddressSpace *as, const char *name, bool is_io);
void qnic_as_destroy(QnicAddressSpace *as);
void qnic_as_map(QnicAddressSpace *as, QnicRegion *r, uint64_t addr, int priority);
void qnic_as_unmap(QnicRegion *r);        /* no-op when not mapped */
static inline bool qnic_region_mapped(const QnicRegion *r) { return r->as != NULL; }
void qnic_as_add_listener(QnicAddressSpace *as, QnicAsListener *l);
void qnic_as_remove_listener(QnicAddressSpace *as, QnicAsListener *l);

/* The region (highest priority) covering addr, and the offset into it. */
QnicRegion *qnic_as_find(QnicAddressSpace *as, uint64_t addr, uint64_t *offset);

/* One guest access of size 1, 2, 4 or 8 bytes (little-endian value), as a CPU
 * or the qtest protocol makes it. Returns false if nothing is mapped there. */
bool qnic_as_load(QnicAddressSpace *as, uint64_t addr, unsigned size, uint64_t *val);
bool qnic_as_store(QnicAddressSpace *as, uint64_t addr, unsigned size, uint64_t val);
/* Byte-wise bulk access crossing regions (qtest read/write/memset). */
bool qnic_as_rw(QnicAddressSpace *as, uint64_t addr, void *buf, uint64_t len, bool is_write);

/* ---- Dirty log of RAM written by qnic (live migration) ----
 * What a vCPU writes the accelerator logs (KVM's dirty log); what passes
 * through qnic (qnic_as_store/rw: the qtest protocol and MMIO-less
 * accesses; device DMA: qnic_dma_write and writable DMA maps) is logged
 * here, per 4 KiB page of a RAM region. A writable qnic_dma_map() is a
 * long-lived mapping (virtio's used ring) written at any later time, so its
 * pages count as dirty at every sync; a writable qnic_dma_map_partial() is
 * written at once by its caller and is logged when it is made. Writes by
 * other processes into shared RAM (vhost backends) are not seen here. */
#define QNIC_DIRTY_PAGE_SIZE 4096ull
/* Start (clearing the log) or stop logging writes to RAM region r. */
void qnic_region_dirty_log_start(QnicRegion *r);
void qnic_region_dirty_log_stop(QnicRegion *r);
/* OR the pages written since the last sync (and those under writable
 * long-lived maps) into bitmap (bit i: page i of r) and clear the log. */
void qnic_region_dirty_log_sync(QnicRegion *r, unsigned long *bitmap);
/* Free what the log holds (the machine frees its RAM regions with this). */
void qnic_region_dirty_free(QnicRegion *r);

/* ---- DMA by a device ---- */

/* Copy between guest memory and buf. Fails (returning false, logging a guest
 * error) if any byte is outside RAM and not a permitted MMIO target, if the
 * device's bus mastering is off, or on reentrancy. Nothing is partially
 * written to RAM on a refused write of a RAM range. */
bool qnic_dma_read(QnicDevice *dev, uint64_t gpa, void *buf, size_t len);
bool qnic_dma_write(QnicDevice *dev, uint64_t gpa, const void *buf, size_t len);
/* Host pointer to [gpa, gpa+len) if it lies wholly in one RAM region and DMA
 * is allowed, else NULL (logged). Valid until the machine is destroyed. */
void *qnic_dma_map(QnicDevice *dev, uint64_t gpa, size_t len, bool is_write);
/* Like qnic_dma_map but maps as much as is contiguous, up to len, returning
 * the mapped length in *plen (0 on failure). For building iovecs. */
void *qnic_dma_map_partial(QnicDevice *dev, uint64_t gpa, size_t len, bool is_write,
                           size_t *plen);

static inline bool qnic_dma_ld16(QnicDevice *d, uint64_t a, uint16_t *v)
{ uint8_t b[2]; if (!qnic_dma_read(d, a, b, 2)) return false; *v = qnic_ld16(b); return true; }
static inline bool qnic_dma_ld32(QnicDevice *d, uint64_t a, uint32_t *v)
{ uint8_t b[4]; if (!qnic_dma_read(d, a, b, 4)) return false; *v = qnic_ld32(b); return true; }
static inline bool qnic_dma_ld64(QnicDevice *d, uint64_t a, uint64_t *v)
{ uint8_t b[8]; if (!qnic_dma_read(d, a, b, 8)) return false; *v = qnic_ld64(b); return true; }
static inline bool qnic_dma_st16(QnicDevice *d, uint64_t a, uint16_t v)
{ uint8_t b[2]; qnic_st16(b, v); return qnic_dma_write(d, a, b, 2); }
static inline bool qnic_dma_st32(QnicDevice *d, uint64_t a, uint32_t v)
{ uint8_t b[4]; qnic_st32(b, v); return qnic_dma_write(d, a, b, 4); }
static inline bool qnic_dma_st64(QnicDevice *d, uint64_t a, uint64_t v)
{ uint8_t b[8]; qnic_st64(b, v); return qnic_dma_write(d, a, b, 8); }

#endif
