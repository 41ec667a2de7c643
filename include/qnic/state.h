/*
 * Device state: the versioned, self-describing format in which a device
 * saves every bit of its guest-visible state and loads it back (snapshot,
 * restore, migration), and the checks that keep a bad stream away from a
 * device model.
 *
 * A layer of a device (the PCI function, a virtio transport, the virtio
 * core, virtio-net, e1000, ...) describes its state as a plain C snapshot
 * struct and a table of its fields (QnicStateDesc). Saving is two steps: the
 * layer fills a snapshot from the live object, then qnic_state_write()
 * appends one section for it. Loading is three: qnic_state_read() decodes a
 * section into a fresh snapshot, checking every field's type, length and
 * range as it goes; the layer checks what spans fields (an index below a
 * size, a count within a table) and refuses with a GError; only when every
 * layer of the device has read and checked its section does each apply its
 * snapshot to the live object. A stream that fails anywhere leaves the
 * device as it was.
 *
 * The stream (all integers little-endian; docs/migration.md):
 *   section := 'S' name:str version:u32 body:u32-length-prefixed crc:u32
 *   body    := record*
 *   record  := kind:u8 name:str payload
 *     kind 'u': uint   size:u8 (1,2,4,8) count:u32 value[count]
 *     kind 'b': bytes  length:u32 data[length]
 *     kind 's': struct count:u32 (length:u32 body)[count]
 *     kind 'x': subsection version:u32 length:u32 body
 *   str     := len:u8 chars[len] (no NUL)
 * crc is the CRC-32 (IEEE 802.3, zlib's) of everything in the section
 * before it, so a flipped bit anywhere is refused before any field is used.
 *
 * Rules a loader applies (QEMU's, tightened):
 * - The section name must be the table's; its version must lie in
 *   [min_version, version]: an older stream loads, a newer one is refused.
 * - Records come in table order. A field whose `since` is newer than the
 *   stream's version is absent and keeps its default (the snapshot is
 *   zeroed, then desc->defaults() runs); any other field missing, a field
 *   the table does not have, a repeated or out-of-order field is an error.
 * - A subsection (kind 'x') is written only when its `needed` hook says
 *   so; absent, its fields keep their defaults. An unknown subsection is an
 *   error: the sender had state this qnic cannot hold.
 * - uint values are checked against [min, max] (max 0: the type's range);
 *   sizes and counts must match the table exactly, except arrays and struct
 *   arrays with a count_offset, whose count may be anything up to `count`
 *   and is stored there.
 * Device models put their sections behind QnicDeviceClass's save_state and
 * load_state ops (qnic/device.h).
 * No input makes the reader read outside the buffer, allocate more than
 * the buffer's length, or write outside the snapshot.
 */
#ifndef QNIC_STATE_H
#define QNIC_STATE_H

#include "qnic/common.h"

typedef enum QnicStateKind {
    QNIC_SF_UINT = 'u',     /* unsigned integer(s): size 1, 2, 4 or 8 bytes */
    QNIC_SF_BOOL = 'o',     /* bool; in the stream a kind 'u' of size 1 in [0, 1] */
    QNIC_SF_BYTES = 'b',    /* `size` raw bytes (MAC, key, EEPROM, config) */
    QNIC_SF_STRUCT = 's',   /* `count` structs of `size` bytes, fields in `sub` */
    QNIC_SF_SUBSECTION = 'x', /* optional group: fields in `sub`, same base */
} QnicStateKind;

typedef struct QnicStateDesc QnicStateDesc;

typedef struct QnicStateField {
    const char *name;       /* unique in its table; NULL ends the table */
    QnicStateKind kind;
    size_t offset;          /* in the snapshot (or the enclosing struct) */
    size_t size;            /* UINT: element bytes; BYTES: length; STRUCT: element size */
    size_t count;           /* elements (arrays, struct arrays); 0 means 1 */
    /* Arrays only: offset of a uint32_t in the same snapshot that holds the
     * number of elements in use (<= count); SIZE_MAX: always `count`. */
    size_t count_offset;
    uint32_t since;         /* table version that added this field (0: always) */
    uint64_t min, max;      /* range of each UINT element; max 0: full range */
    const QnicStateDesc *sub; /* STRUCT, SUBSECTION: the inner table */
    /* SUBSECTION: written only when this returns true (NULL: always). */
    bool (*needed)(const void *snap);
} QnicStateField;

struct QnicStateDesc {
    const char *name;       /* section / subsection name, e.g. "virtio-net" */
    uint32_t version;       /* what this qnic writes */
    uint32_t min_version;   /* oldest it loads */
    size_t size;            /* sizeof the snapshot struct */
    const QnicStateField *fields;
    /* Optional: defaults beyond zero for fields an older stream lacks;
     * called on the zeroed snapshot before decoding. */
    void (*defaults)(void *snap);
};

/* Helpers for the tables. */
#define QNIC_SF_NO_COUNT SIZE_MAX
#define QNIC_STATE_UINT(T, f, since_) \
    { .name = #f, .kind = QNIC_SF_UINT, .offset = offsetof(T, f), \
      .size = sizeof(((T *)0)->f), .count_offset = QNIC_SF_NO_COUNT, .since = (since_) }
#define QNIC_STATE_UINT_RANGE(T, f, since_, lo, hi) \
    { .name = #f, .kind = QNIC_SF_UINT, .offset = offsetof(T, f), \
      .size = sizeof(((T *)0)->f), .count_offset = QNIC_SF_NO_COUNT, .since = (since_), \
      .min = (lo), .max = (hi) }
#define QNIC_STATE_BOOL(T, f, since_) \
    { .name = #f, .kind = QNIC_SF_BOOL, .offset = offsetof(T, f), \
      .size = sizeof(bool), .count_offset = QNIC_SF_NO_COUNT, .since = (since_) }
#define QNIC_STATE_BYTES(T, f, since_) \
    { .name = #f, .kind = QNIC_SF_BYTES, .offset = offsetof(T, f), \
      .size = sizeof(((T *)0)->f), .count_offset = QNIC_SF_NO_COUNT, .since = (since_) }
/* A fixed array of uints: T.f is elem_t f[N]. */
#define QNIC_STATE_UINT_ARRAY(T, f, since_) \
    { .name = #f, .kind = QNIC_SF_UINT, .offset = offsetof(T, f), \
      .size = sizeof(((T *)0)->f[0]), \
      .count = sizeof(((T *)0)->f) / sizeof(((T *)0)->f[0]), \
      .count_offset = QNIC_SF_NO_COUNT, .since = (since_) }
/* An array of structs, n of them in use: T.f is S f[N], T.n a uint32_t. */
#define QNIC_STATE_STRUCT_VARRAY(T, f, n, desc, since_) \
    { .name = #f, .kind = QNIC_SF_STRUCT, .offset = offsetof(T, f), \
      .size = sizeof(((T *)0)->f[0]), \
      .count = sizeof(((T *)0)->f) / sizeof(((T *)0)->f[0]), \
      .count_offset = offsetof(T, n), .since = (since_), .sub = &(desc) }
/* (.name only marks the entry as not the end; the subsection's name is
 * desc.name, which C cannot read in a constant initializer.) */
#define QNIC_STATE_SUBSECTION(desc, needed_) \
    { .name = #desc, .kind = QNIC_SF_SUBSECTION, .count_offset = QNIC_SF_NO_COUNT, \
      .sub = &(desc), .needed = (needed_) }
#define QNIC_STATE_END { .name = NULL }

/* Append one section holding snap (laid out as desc says) to out. */
void qnic_state_write(GByteArray *out, const QnicStateDesc *desc, const void *snap);

/* A cursor over a stream of sections. */
typedef struct QnicStateReader {
    const uint8_t *buf;
    size_t len;
    size_t pos;
} QnicStateReader;

void qnic_state_reader_init(QnicStateReader *r, const uint8_t *buf, size_t len);
/* Decode the next section into snap (desc->size bytes, overwritten: zeroed,
 * defaults, then the stream's fields). On error snap is unspecified, the
 * error names the section and field, and the cursor does not move. */
bool qnic_state_read(QnicStateReader *r, const QnicStateDesc *desc, void *snap,
                     GError **errp);
/* True when every byte was consumed; otherwise sets an error (trailing
 * bytes are refused, not ignored). */
bool qnic_state_reader_done(const QnicStateReader *r, GError **errp);
/* The name of the next section without consuming it (NULL at the end or
 * when it is malformed); g_free it. */
char *qnic_state_peek_name(const QnicStateReader *r);

/* A stream as text, one "section.field[i].sub = value" line per value, in
 * stream order: what tests compare ("the state after load equals the state
 * saved, field by field") and what `qnic-state-dump` prints. Needs no table;
 * NULL and an error for a malformed stream. g_free the result. */
char *qnic_state_dump(const uint8_t *buf, size_t len, GError **errp);

#endif
