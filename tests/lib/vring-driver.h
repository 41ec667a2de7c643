/*
 * The driver side of a virtqueue, written once for every C test and bench:
 * descriptors, the avail ring and the used ring of split queues, the
 * descriptor ring and event areas of packed queues, buffer chains (direct
 * and indirect), reading used entries, and the suppression fields
 * (avail/used flags, used_event, avail_event, packed event areas).
 *
 * The device side lives in virtio/virtqueue.c; this is its mirror image,
 * in the manner of rust-vmm's virtio-queue mock: a ring over a memory
 * accessor. The accessor reads and writes guest-physical bytes, so the same
 * code runs over a unit test's RAM, qtest's memread/memwrite and the
 * freestanding test guest's identity-mapped pointers. This file and
 * vring-driver.c use nothing but <stdint.h>, <stddef.h>, <stdbool.h> and
 * the kernel's UAPI constants in <linux/virtio_ring.h> (no libc, no glib)
 * so that the test guest links them.
 *
 * Contracts: all fields are little-endian in guest memory (the library
 * encodes them byte by byte). Every multi-byte field a device may read
 * concurrently (avail idx, packed flags, used idx) is accessed by one
 * accessor call of exactly its size, which the accessor must perform as a
 * single access. No function checks its arguments against the ring size
 * beyond wrapping indices modulo `num`: malformed-driver tests rely on
 * writing whatever they like.
 */
#ifndef QNIC_TESTS_VRING_DRIVER_H
#define QNIC_TESTS_VRING_DRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    VRING_FENCE_WRITE,      /* earlier ring writes before later ones */
    VRING_FENCE_READ,       /* earlier ring reads before later ones */
    VRING_FENCE_FULL,       /* earlier writes before later reads */
} VringFence;

/* Guest-physical memory as the driver sees it. `fence` may be NULL when
 * the device cannot run concurrently (unit tests) or the transport orders
 * every access (qtest). */
typedef struct VringMem {
    void (*read)(void *opaque, uint64_t gpa, void *buf, size_t len);
    void (*write)(void *opaque, uint64_t gpa, const void *buf, size_t len);
    void (*fence)(void *opaque, VringFence kind);
    void *opaque;
} VringMem;

/* One segment of a buffer. `flags` are extra descriptor flags ORed in
 * (malformed-driver tests: NEXT on a last segment, INDIRECT on a raw
 * table); normal drivers leave them 0. */
typedef struct VringBuf {
    uint64_t addr;
    uint32_t len;
    bool write;             /* device-writable */
    uint16_t flags;
} VringBuf;

/* Buffer ids whose chain length a packed ring remembers (a used
 * descriptor skips the slots of its whole chain). */
#define VRING_MAX_IDS 1024

typedef struct VringDriver {
    VringMem mem;
    uint16_t num;
    bool packed;
    uint64_t desc;
    uint64_t avail;         /* split: avail ring; packed: driver event area */
    uint64_t used;          /* split: used ring; packed: device event area */
    uint16_t next_head;     /* vring_add*: next split head slot / packed id */
    uint16_t avail_idx;     /* split: the driver's avail idx */
    uint16_t next_avail;    /* packed: next slot to make available */
    bool avail_wrap;        /* packed: driver ring wrap counter */
    uint16_t last_used;     /* split: next used idx; packed: next used slot */
    bool used_wrap;         /* packed: used wrap counter */
    uint16_t chain_len[VRING_MAX_IDS];
} VringDriver;

/* Start a ring of `num` entries at the given addresses with every counter
 * at its reset value (wrap counters 1). The rings' memory is not touched:
 * the caller zeroes it as a driver does before handing it over. */
void vring_driver_init(VringDriver *r, const VringMem *mem, uint16_t num, bool packed, uint64_t desc,
                uint64_t avail, uint64_t used);

/* Legacy (virtio 0.9/mmio v1) split layout in one block: descriptor table,
 * avail ring, then the used ring at the next `align` boundary. */
uint64_t vring_legacy_used_offset(uint16_t num, uint32_t align);
uint64_t vring_legacy_size(uint16_t num, uint32_t align);
/* Ring area sizes (split: with used_event / avail_event). */
uint64_t vring_split_avail_size(uint16_t num);
uint64_t vring_split_used_size(uint16_t num);

/* ---- descriptors: encode into a buffer, or write into any table ---- */
void vring_encode_split_desc(uint8_t out[16], uint64_t addr, uint32_t len, uint16_t flags,
                             uint16_t next);
void vring_encode_packed_desc(uint8_t out[16], uint64_t addr, uint32_t len, uint16_t id,
                              uint16_t flags);
void vring_write_split_desc_at(const VringMem *m, uint64_t table, unsigned i, uint64_t addr,
                               uint32_t len, uint16_t flags, uint16_t next);
void vring_write_packed_desc_at(const VringMem *m, uint64_t table, unsigned i, uint64_t addr,
                                uint32_t len, uint16_t id, uint16_t flags);
/* Packed AVAIL/USED bits that make a descriptor available for `wrap`. */
uint16_t vring_packed_avail_bits(bool wrap);
/* Whether packed `flags` mark a descriptor used in wrap round `wrap`. */
bool vring_packed_flags_used(uint16_t flags, bool wrap);

/* ---- split ring, field by field ---- */
void vring_split_write_desc(VringDriver *r, unsigned slot, uint64_t addr, uint32_t len,
                            uint16_t flags, uint16_t next);
/* Put `head` in the next avail entry, then (after a write fence) bump and
 * write avail idx. */
void vring_split_publish(VringDriver *r, uint16_t head);
/* Write avail idx (and take it as the driver's own) without an entry. */
void vring_split_set_avail_idx(VringDriver *r, uint16_t idx);
void vring_split_set_avail_flags(VringDriver *r, uint16_t flags);
void vring_split_set_used_event(VringDriver *r, uint16_t v);
uint16_t vring_split_used_idx(VringDriver *r);
uint16_t vring_split_used_flags(VringDriver *r);
uint16_t vring_split_avail_event(VringDriver *r);
/* Used entry number `i` (taken modulo num): id and length as written. */
void vring_split_used_elem(VringDriver *r, uint16_t i, uint32_t *id, uint32_t *len);

/* ---- packed ring, field by field ---- */
void vring_packed_write_desc(VringDriver *r, unsigned slot, uint64_t addr, uint32_t len,
                             uint16_t id, uint16_t flags);
void vring_packed_read_desc(VringDriver *r, unsigned slot, uint64_t *addr, uint32_t *len,
                            uint16_t *id, uint16_t *flags);
/* Driver event area: descriptor offset with wrap bit 15, and flags. */
void vring_packed_set_driver_event(VringDriver *r, uint16_t off_wrap, uint16_t flags);
uint16_t vring_packed_device_event_flags(VringDriver *r);

/* ---- buffers ---- */
/* Make a chain of n segments available under `id` and return it. Split:
 * `id` is the head slot, the chain takes the slots after it (mod num) and
 * is published at once. Packed: `id` is the buffer id, the chain takes the
 * next n slots and the head's flags are written last. */
uint16_t vring_add_at(VringDriver *r, uint16_t id, const VringBuf *bufs, unsigned n);
/* The same with the n segments in an indirect table the caller placed at
 * `table` (16 * n bytes): one ring descriptor points at it. */
uint16_t vring_add_indirect_at(VringDriver *r, uint16_t id, uint64_t table, const VringBuf *bufs,
                               unsigned n);
/* As above with ids handed out in turn: split heads take consecutive slots
 * (a chain of n uses n), packed ids count up modulo num. */
uint16_t vring_add(VringDriver *r, const VringBuf *bufs, unsigned n);
uint16_t vring_add_indirect(VringDriver *r, uint64_t table, const VringBuf *bufs, unsigned n);

/* Take the next used buffer: true with its id and length, false if the
 * device has returned nothing new. */
bool vring_get_used(VringDriver *r, uint16_t *id, uint32_t *len);

/* Whether the device asks to be notified, by its flags alone (split: used
 * flags without NO_NOTIFY; packed: device event flags not DISABLE). For
 * drivers that do not negotiate EVENT_IDX. */
bool vring_kick_wanted(VringDriver *r);

#endif
