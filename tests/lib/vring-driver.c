/*
 * The driver side of split and packed virtqueues over a memory accessor
 * (see vring-driver.h). Freestanding: no libc calls, so the test guest
 * compiles it with its own flags and the host tests with theirs.
 */
#include "vring-driver.h"
#include <linux/virtio_ring.h>

/* ---- little-endian fields through the accessor ---- */

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
    put16(p, (uint16_t)v);
    put16(p + 2, (uint16_t)(v >> 16));
}

static void put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)v);
    put32(p + 4, (uint32_t)(v >> 32));
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get32(const uint8_t *p)
{
    return get16(p) | ((uint32_t)get16(p + 2) << 16);
}

static uint64_t get64(const uint8_t *p)
{
    return get32(p) | ((uint64_t)get32(p + 4) << 32);
}

static void wr16(const VringMem *m, uint64_t gpa, uint16_t v)
{
    uint8_t b[2];

    put16(b, v);
    m->write(m->opaque, gpa, b, 2);
}

static uint16_t rd16(const VringMem *m, uint64_t gpa)
{
    uint8_t b[2];

    m->read(m->opaque, gpa, b, 2);
    return get16(b);
}

static void fence(const VringMem *m, VringFence kind)
{
    if (m->fence) {
        m->fence(m->opaque, kind);
    }
}

/* ---- layout ---- */

void vring_driver_init(VringDriver *r, const VringMem *mem, uint16_t num, bool packed, uint64_t desc,
                uint64_t avail, uint64_t used)
{
    uint8_t *p = (uint8_t *)r;

    for (size_t i = 0; i < sizeof(*r); i++) {
        p[i] = 0;
    }
    r->mem = *mem;
    r->num = num;
    r->packed = packed;
    r->desc = desc;
    r->avail = avail;
    r->used = used;
    r->avail_wrap = r->used_wrap = true;
}

uint64_t vring_split_avail_size(uint16_t num)
{
    return 6 + 2ull * num;
}

uint64_t vring_split_used_size(uint16_t num)
{
    return 6 + 8ull * num;
}

uint64_t vring_legacy_used_offset(uint16_t num, uint32_t align)
{
    uint64_t end = 16ull * num + vring_split_avail_size(num);

    return (end + align - 1) & ~((uint64_t)align - 1);
}

uint64_t vring_legacy_size(uint16_t num, uint32_t align)
{
    return vring_legacy_used_offset(num, align) + vring_split_used_size(num);
}

/* ---- descriptors ---- */

/* Both layouts are addr(8) len(4) then two 16-bit words: split flags and
 * next, packed id and flags. */
static void encode_desc(uint8_t out[16], uint64_t addr, uint32_t len, uint16_t w12, uint16_t w14)
{
    put64(out, addr);
    put32(out + 8, len);
    put16(out + 12, w12);
    put16(out + 14, w14);
}

static void write_desc_at(const VringMem *m, uint64_t table, unsigned i, uint64_t addr,
                          uint32_t len, uint16_t w12, uint16_t w14)
{
    uint8_t b[16];

    encode_desc(b, addr, len, w12, w14);
    m->write(m->opaque, table + 16ull * i, b, 16);
}

void vring_encode_split_desc(uint8_t out[16], uint64_t addr, uint32_t len, uint16_t flags,
                             uint16_t next)
{
    encode_desc(out, addr, len, flags, next);
}

void vring_encode_packed_desc(uint8_t out[16], uint64_t addr, uint32_t len, uint16_t id,
                              uint16_t flags)
{
    encode_desc(out, addr, len, id, flags);
}

void vring_write_split_desc_at(const VringMem *m, uint64_t table, unsigned i, uint64_t addr,
                               uint32_t len, uint16_t flags, uint16_t next)
{
    write_desc_at(m, table, i, addr, len, flags, next);
}

void vring_write_packed_desc_at(const VringMem *m, uint64_t table, unsigned i, uint64_t addr,
                                uint32_t len, uint16_t id, uint16_t flags)
{
    write_desc_at(m, table, i, addr, len, id, flags);
}

uint16_t vring_packed_avail_bits(bool wrap)
{
    return wrap ? 1u << VRING_PACKED_DESC_F_AVAIL : 1u << VRING_PACKED_DESC_F_USED;
}

bool vring_packed_flags_used(uint16_t flags, bool wrap)
{
    bool avail = flags & (1u << VRING_PACKED_DESC_F_AVAIL);
    bool used = flags & (1u << VRING_PACKED_DESC_F_USED);

    return avail == used && used == wrap;
}

/* ---- split ring ---- */

void vring_split_write_desc(VringDriver *r, unsigned slot, uint64_t addr, uint32_t len,
                            uint16_t flags, uint16_t next)
{
    vring_write_split_desc_at(&r->mem, r->desc, slot, addr, len, flags, next);
}

void vring_split_publish(VringDriver *r, uint16_t head)
{
    wr16(&r->mem, r->avail + 4 + 2ull * (r->avail_idx % r->num), head);
    r->avail_idx++;
    fence(&r->mem, VRING_FENCE_WRITE);
    wr16(&r->mem, r->avail + 2, r->avail_idx);
}

void vring_split_set_avail_idx(VringDriver *r, uint16_t idx)
{
    r->avail_idx = idx;
    wr16(&r->mem, r->avail + 2, idx);
}

void vring_split_set_avail_flags(VringDriver *r, uint16_t flags)
{
    wr16(&r->mem, r->avail, flags);
}

void vring_split_set_used_event(VringDriver *r, uint16_t v)
{
    wr16(&r->mem, r->avail + 4 + 2ull * r->num, v);
}

uint16_t vring_split_used_idx(VringDriver *r)
{
    return rd16(&r->mem, r->used + 2);
}

uint16_t vring_split_used_flags(VringDriver *r)
{
    return rd16(&r->mem, r->used);
}

uint16_t vring_split_avail_event(VringDriver *r)
{
    return rd16(&r->mem, r->used + 4 + 8ull * r->num);
}

void vring_split_used_elem(VringDriver *r, uint16_t i, uint32_t *id, uint32_t *len)
{
    uint8_t b[8];

    r->mem.read(r->mem.opaque, r->used + 4 + 8ull * (i % r->num), b, 8);
    *id = get32(b);
    *len = get32(b + 4);
}

/* ---- packed ring ---- */

void vring_packed_write_desc(VringDriver *r, unsigned slot, uint64_t addr, uint32_t len,
                             uint16_t id, uint16_t flags)
{
    vring_write_packed_desc_at(&r->mem, r->desc, slot, addr, len, id, flags);
}

void vring_packed_read_desc(VringDriver *r, unsigned slot, uint64_t *addr, uint32_t *len,
                            uint16_t *id, uint16_t *flags)
{
    uint8_t b[16];

    r->mem.read(r->mem.opaque, r->desc + 16ull * slot, b, 16);
    *addr = get64(b);
    *len = get32(b + 8);
    *id = get16(b + 12);
    *flags = get16(b + 14);
}

void vring_packed_set_driver_event(VringDriver *r, uint16_t off_wrap, uint16_t flags)
{
    wr16(&r->mem, r->avail, off_wrap);
    wr16(&r->mem, r->avail + 2, flags);
}

uint16_t vring_packed_device_event_flags(VringDriver *r)
{
    return rd16(&r->mem, r->used + 2);
}

/* ---- buffers ---- */

static uint16_t seg_flags(const VringBuf *b, bool more)
{
    return (b->write ? VRING_DESC_F_WRITE : 0) | (more ? VRING_DESC_F_NEXT : 0) | b->flags;
}

static void packed_note_chain(VringDriver *r, uint16_t id, uint16_t slots)
{
    unsigned k = id % r->num;

    if (k < VRING_MAX_IDS) {
        r->chain_len[k] = slots;
    }
}

/* Packed: write n descriptors from the next avail slot. The head's flags
 * make the whole chain visible, so its body (addr, len, id) goes first
 * with its old flags left as they are (0 or a used descriptor's: never
 * "available"), and its flags last, in one 16-bit write after a fence.
 * Writing the head whole would let a device polling that slot see flags
 * half written. */
static void packed_add(VringDriver *r, uint16_t id, const VringBuf *bufs, unsigned n)
{
    unsigned head = r->next_avail;
    uint16_t head_flags = 0;

    for (unsigned i = 0; i < n; i++) {
        uint16_t fl = vring_packed_avail_bits(r->avail_wrap) | seg_flags(&bufs[i], i + 1 < n);
        uint8_t b[16];

        vring_encode_packed_desc(b, bufs[i].addr, bufs[i].len, id, fl);
        if (i == 0) {
            head_flags = fl;
            r->mem.write(r->mem.opaque, r->desc + 16ull * r->next_avail, b, 14);
        } else {
            r->mem.write(r->mem.opaque, r->desc + 16ull * r->next_avail, b, 16);
        }
        if (++r->next_avail == r->num) {
            r->next_avail = 0;
            r->avail_wrap = !r->avail_wrap;
        }
    }
    packed_note_chain(r, id, (uint16_t)n);
    fence(&r->mem, VRING_FENCE_WRITE);
    wr16(&r->mem, r->desc + 16ull * head + 14, head_flags);
}

uint16_t vring_add_at(VringDriver *r, uint16_t id, const VringBuf *bufs, unsigned n)
{
    if (r->packed) {
        packed_add(r, id, bufs, n);
        return id;
    }
    for (unsigned i = 0; i < n; i++) {
        unsigned cur = (id + i) % r->num;
        bool more = i + 1 < n;

        vring_split_write_desc(r, cur, bufs[i].addr, bufs[i].len, seg_flags(&bufs[i], more),
                               more ? (uint16_t)((cur + 1) % r->num) : 0);
    }
    vring_split_publish(r, id);
    return id;
}

uint16_t vring_add_indirect_at(VringDriver *r, uint16_t id, uint64_t table, const VringBuf *bufs,
                               unsigned n)
{
    VringBuf ind = { .addr = table, .len = 16 * n, .flags = VRING_DESC_F_INDIRECT };

    for (unsigned i = 0; i < n; i++) {
        if (r->packed) {
            vring_write_packed_desc_at(&r->mem, table, i, bufs[i].addr, bufs[i].len, 0,
                                       seg_flags(&bufs[i], false));
        } else {
            vring_write_split_desc_at(&r->mem, table, i, bufs[i].addr, bufs[i].len,
                                      seg_flags(&bufs[i], i + 1 < n), (uint16_t)(i + 1));
        }
    }
    fence(&r->mem, VRING_FENCE_WRITE);
    return vring_add_at(r, id, &ind, 1);
}

uint16_t vring_add(VringDriver *r, const VringBuf *bufs, unsigned n)
{
    uint16_t id = r->next_head % r->num;

    r->next_head += r->packed ? 1 : n;
    return vring_add_at(r, id, bufs, n);
}

uint16_t vring_add_indirect(VringDriver *r, uint64_t table, const VringBuf *bufs, unsigned n)
{
    uint16_t id = r->next_head % r->num;

    r->next_head++;
    return vring_add_indirect_at(r, id, table, bufs, n);
}

/* ---- used buffers and notification ---- */

static bool packed_get_used(VringDriver *r, uint16_t *id, uint32_t *len)
{
    uint64_t addr;
    uint16_t flags = rd16(&r->mem, r->desc + 16ull * r->last_used + 14);
    unsigned k, skip;

    if (!vring_packed_flags_used(flags, r->used_wrap)) {
        return false;
    }
    fence(&r->mem, VRING_FENCE_READ);
    vring_packed_read_desc(r, r->last_used, &addr, len, id, &flags);
    k = *id % r->num;
    skip = k < VRING_MAX_IDS && r->chain_len[k] ? r->chain_len[k] : 1;
    r->last_used += skip;
    if (r->last_used >= r->num) {
        r->last_used -= r->num;
        r->used_wrap = !r->used_wrap;
    }
    return true;
}

bool vring_get_used(VringDriver *r, uint16_t *id, uint32_t *len)
{
    uint32_t full_id;

    if (r->packed) {
        return packed_get_used(r, id, len);
    }
    if (vring_split_used_idx(r) == r->last_used) {
        return false;
    }
    fence(&r->mem, VRING_FENCE_READ);
    vring_split_used_elem(r, r->last_used, &full_id, len);
    *id = (uint16_t)full_id;
    r->last_used++;
    return true;
}

bool vring_kick_wanted(VringDriver *r)
{
    fence(&r->mem, VRING_FENCE_FULL);
    if (r->packed) {
        return vring_packed_device_event_flags(r) != VRING_PACKED_EVENT_FLAG_DISABLE;
    }
    return !(vring_split_used_flags(r) & VRING_USED_F_NO_NOTIFY);
}
