/*
 * The device-state stream (qnic/state.h): writing a snapshot struct as a
 * section by its field table, and reading one back with every check the
 * format promises, so that a device model only ever sees a snapshot whose
 * fields have the right sizes and ranges. The reader works on bounded
 * cursors over the caller's buffer: it never allocates from lengths in the
 * stream, and recursion follows the tables (or, for the table-less dump, a
 * fixed depth), never the input.
 */
#include "qnic/state.h"
#include "state-int.h"

#include <string.h>
#include <zlib.h>

/* ---- writing ---- */

static void put_u8(GByteArray *o, uint8_t v) { g_byte_array_append(o, &v, 1); }

static void put_le(GByteArray *o, uint64_t v, unsigned size)
{
    uint8_t b[8];
    for (unsigned i = 0; i < size; i++) {
        b[i] = (uint8_t)(v >> (8 * i));
    }
    g_byte_array_append(o, b, size);
}

static void put_str(GByteArray *o, const char *s)
{
    size_t n = strlen(s);
    g_assert(n <= 255);
    put_u8(o, (uint8_t)n);
    g_byte_array_append(o, (const uint8_t *)s, (guint)n);
}

/* Reserve a u32 length at the end of o; fill it with patch_len(). */
static guint begin_len(GByteArray *o) { guint at = o->len; put_le(o, 0, 4); return at; }

static void patch_len(GByteArray *o, guint at)
{
    uint32_t n = o->len - at - 4;
    for (unsigned i = 0; i < 4; i++) {
        o->data[at + i] = (uint8_t)(n >> (8 * i));
    }
}

static uint64_t load_uint(const uint8_t *p, size_t size)
{
    switch (size) {
    case 1: return *p;
    case 2: { uint16_t v; memcpy(&v, p, 2); return v; }
    case 4: { uint32_t v; memcpy(&v, p, 4); return v; }
    default: { uint64_t v; memcpy(&v, p, 8); return v; }
    }
}

static void store_uint(uint8_t *p, size_t size, uint64_t v)
{
    switch (size) {
    case 1: *p = (uint8_t)v; break;
    case 2: { uint16_t x = (uint16_t)v; memcpy(p, &x, 2); break; }
    case 4: { uint32_t x = (uint32_t)v; memcpy(p, &x, 4); break; }
    default: memcpy(p, &v, 8); break;
    }
}

static size_t field_max_count(const QnicStateField *f) { return f->count ? f->count : 1; }

/* Elements in use: the snapshot's count field for variable arrays. */
static size_t field_count(const QnicStateField *f, const uint8_t *base)
{
    size_t max = field_max_count(f);
    if (f->count_offset == QNIC_SF_NO_COUNT) {
        return max;
    }
    uint32_t n;
    memcpy(&n, base + f->count_offset, sizeof(n));
    return MIN((size_t)n, max);
}

static void write_body(GByteArray *o, const QnicStateField *fields, const uint8_t *base);

static void write_field(GByteArray *o, const QnicStateField *f, const uint8_t *base)
{
    const uint8_t *p = base + f->offset;
    size_t n = field_count(f, base);

    switch (f->kind) {
    case QNIC_SF_UINT:
    case QNIC_SF_BOOL: {
        size_t size = f->kind == QNIC_SF_BOOL ? 1 : f->size;
        put_u8(o, QNIC_SF_UINT);
        put_str(o, f->name);
        put_u8(o, (uint8_t)size);
        put_le(o, n, 4);
        for (size_t i = 0; i < n; i++) {
            uint64_t v = f->kind == QNIC_SF_BOOL ? ((const bool *)p)[i]
                                                 : load_uint(p + i * f->size, f->size);
            put_le(o, v, (unsigned)size);
        }
        break;
    }
    case QNIC_SF_BYTES:
        put_u8(o, QNIC_SF_BYTES);
        put_str(o, f->name);
        put_le(o, f->size, 4);
        g_byte_array_append(o, p, (guint)f->size);
        break;
    case QNIC_SF_STRUCT:
        put_u8(o, QNIC_SF_STRUCT);
        put_str(o, f->name);
        put_le(o, n, 4);
        for (size_t i = 0; i < n; i++) {
            guint at = begin_len(o);
            write_body(o, f->sub->fields, p + i * f->size);
            patch_len(o, at);
        }
        break;
    case QNIC_SF_SUBSECTION:
        if (f->needed && !f->needed(base)) {
            break;
        }
        put_u8(o, QNIC_SF_SUBSECTION);
        put_str(o, f->sub->name);
        put_le(o, f->sub->version, 4);
        guint at = begin_len(o);
        write_body(o, f->sub->fields, base);
        patch_len(o, at);
        break;
    }
}

static void write_body(GByteArray *o, const QnicStateField *fields, const uint8_t *base)
{
    for (const QnicStateField *f = fields; f->name; f++) {
        write_field(o, f, base);
    }
}

void qnic_state_write(GByteArray *out, const QnicStateDesc *desc, const void *snap)
{
    guint start = out->len;
    put_u8(out, 'S');
    put_str(out, desc->name);
    put_le(out, desc->version, 4);
    guint at = begin_len(out);
    write_body(out, desc->fields, snap);
    patch_len(out, at);
    uLong crc = crc32(0L, out->data + start, out->len - start);
    put_le(out, (uint32_t)crc, 4);
}

/* ---- reading ---- */

static bool get_u32(Cur *c, uint32_t *v)
{
    uint64_t x;
    if (!get_le(c, 4, &x)) {
        return false;
    }
    *v = (uint32_t)x;
    return true;
}

/* A name: points into the buffer, *n bytes, no NUL. */
static bool get_str(Cur *c, const char **s, size_t *n)
{
    const uint8_t *b;
    uint64_t len;
    if (!get_le(c, 1, &len) || !take(c, len, &b)) {
        return false;
    }
    *s = (const char *)b;
    *n = len;
    return true;
}

static bool str_is(const char *s, size_t n, const char *want)
{
    return strlen(want) == n && memcmp(s, want, n) == 0;
}

/* A sub-cursor over the next u32-length-prefixed body. */
static bool get_body(Cur *c, Cur *body)
{
    uint32_t n;
    const uint8_t *b;
    if (!get_u32(c, &n) || !take(c, n, &b)) {
        return false;
    }
    *body = (Cur){ .p = b, .len = n };
    return true;
}

typedef struct Ctx {
    const char *section;
    GError **errp;
} Ctx;

static bool fail(Ctx *x, const char *field, const char *fmt, ...) G_GNUC_PRINTF(3, 4);

static bool fail(Ctx *x, const char *field, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    if (field) {
        g_set_error(x->errp, QNIC_ERROR, 0, "state section '%s', field '%s': %s",
                    x->section, field, msg);
    } else {
        g_set_error(x->errp, QNIC_ERROR, 0, "state section '%s': %s", x->section, msg);
    }
    return false;
}

static bool read_body(Ctx *x, Cur *c, const QnicStateField *fields, uint8_t *base,
                      uint32_t version);

static uint64_t type_max(size_t size)
{
    return size >= 8 ? UINT64_MAX : (UINT64_C(1) << (8 * size)) - 1;
}

/* The element count of an array record: exact, or up to the table's count
 * for variable arrays (then stored in the snapshot's count field). */
static bool check_count(Ctx *x, const QnicStateField *f, uint8_t *base, uint32_t n)
{
    size_t max = field_max_count(f);
    if (f->count_offset == QNIC_SF_NO_COUNT ? n != max : n > max) {
        return fail(x, f->name, "%" PRIu32 " elements where %s%zu fit", n,
                    f->count_offset == QNIC_SF_NO_COUNT ? "" : "at most ", max);
    }
    if (f->count_offset != QNIC_SF_NO_COUNT) {
        memcpy(base + f->count_offset, &n, sizeof(n));
    }
    return true;
}

static bool read_uint(Ctx *x, Cur *c, const QnicStateField *f, uint8_t *base)
{
    size_t size = f->kind == QNIC_SF_BOOL ? 1 : f->size;
    uint64_t got_size;
    uint32_t n;
    if (!get_le(c, 1, &got_size) || !get_u32(c, &n)) {
        return fail(x, f->name, "truncated");
    }
    if (got_size != size) {
        return fail(x, f->name, "%" PRIu64 "-byte values where %zu-byte ones belong",
                    got_size, size);
    }
    if (!check_count(x, f, base, n)) {
        return false;
    }
    uint64_t lo = f->kind == QNIC_SF_BOOL ? 0 : f->min;
    uint64_t hi = f->kind == QNIC_SF_BOOL ? 1 : (f->max ? f->max : type_max(size));
    for (uint32_t i = 0; i < n; i++) {
        uint64_t v;
        if (!get_le(c, (unsigned)size, &v)) {
            return fail(x, f->name, "truncated");
        }
        if (v < lo || v > hi) {
            return fail(x, f->name, "value %" PRIu64 " (element %" PRIu32 ") is outside "
                        "[%" PRIu64 ", %" PRIu64 "]", v, i, lo, hi);
        }
        if (f->kind == QNIC_SF_BOOL) {
            ((bool *)(base + f->offset))[i] = v != 0;
        } else {
            store_uint(base + f->offset + i * f->size, f->size, v);
        }
    }
    return true;
}

static bool read_bytes(Ctx *x, Cur *c, const QnicStateField *f, uint8_t *base)
{
    uint32_t n;
    const uint8_t *b;
    if (!get_u32(c, &n)) {
        return fail(x, f->name, "truncated");
    }
    if (n != f->size) {
        return fail(x, f->name, "%" PRIu32 " bytes where %zu belong", n, f->size);
    }
    if (!take(c, n, &b)) {
        return fail(x, f->name, "truncated");
    }
    memcpy(base + f->offset, b, n);
    return true;
}

static bool read_struct(Ctx *x, Cur *c, const QnicStateField *f, uint8_t *base,
                        uint32_t version)
{
    uint32_t n;
    if (!get_u32(c, &n)) {
        return fail(x, f->name, "truncated");
    }
    if (!check_count(x, f, base, n)) {
        return false;
    }
    for (uint32_t i = 0; i < n; i++) {
        Cur body;
        if (!get_body(c, &body)) {
            return fail(x, f->name, "element %" PRIu32 " truncated", i);
        }
        if (!read_body(x, &body, f->sub->fields, base + f->offset + i * f->size, version)) {
            return false;
        }
    }
    return true;
}

static bool read_subsection(Ctx *x, Cur *c, const QnicStateDesc *sub, uint8_t *base)
{
    uint32_t version;
    Cur body;
    if (!get_u32(c, &version) || !get_body(c, &body)) {
        return fail(x, sub->name, "subsection truncated");
    }
    if (version < sub->min_version || version > sub->version) {
        return fail(x, sub->name, "subsection version %" PRIu32 " is not in the %" PRIu32
                    "..%" PRIu32 " this qnic loads", version, sub->min_version, sub->version);
    }
    return read_body(x, &body, sub->fields, base, version);
}

/* The next record's kind and name, without consuming it. */
static bool peek_record(const Cur *c, uint8_t *kind, const char **name, size_t *n)
{
    Cur t = *c;
    const uint8_t *k;
    if (!take(&t, 1, &k) || !get_str(&t, name, n)) {
        return false;
    }
    *kind = *k;
    return true;
}

static bool read_field(Ctx *x, Cur *c, const QnicStateField *f, uint8_t *base,
                       uint32_t version)
{
    uint8_t kind;
    const char *name;
    size_t n;
    bool have = peek_record(c, &kind, &name, &n);
    const char *want = f->kind == QNIC_SF_SUBSECTION ? f->sub->name : f->name;
    uint8_t want_kind = f->kind == QNIC_SF_BOOL ? QNIC_SF_UINT : (uint8_t)f->kind;

    if (f->kind == QNIC_SF_SUBSECTION) {
        if (!have || kind != QNIC_SF_SUBSECTION || !str_is(name, n, want)) {
            return true;        /* absent: its fields keep their defaults */
        }
    } else if (f->since > version) {
        return true;            /* newer than the stream: default */
    } else if (!have) {
        return fail(x, want, "missing");
    } else if (!str_is(name, n, want) || kind != want_kind) {
        return fail(x, want, "expected here, found %s '%.*s'",
                    kind == QNIC_SF_SUBSECTION ? "subsection" : "field", (int)n, name);
    }
    c->pos += 2 + n;            /* kind and name */
    switch (f->kind) {
    case QNIC_SF_UINT:
    case QNIC_SF_BOOL:
        return read_uint(x, c, f, base);
    case QNIC_SF_BYTES:
        return read_bytes(x, c, f, base);
    case QNIC_SF_STRUCT:
        return read_struct(x, c, f, base, version);
    case QNIC_SF_SUBSECTION:
        return read_subsection(x, c, f->sub, base);
    }
    return fail(x, want, "bad table");
}

static bool read_body(Ctx *x, Cur *c, const QnicStateField *fields, uint8_t *base,
                      uint32_t version)
{
    for (const QnicStateField *f = fields; f->name; f++) {
        if (!read_field(x, c, f, base, version)) {
            return false;
        }
    }
    if (c->pos != c->len) {
        uint8_t kind;
        const char *name;
        size_t n;
        if (peek_record(c, &kind, &name, &n)) {
            return fail(x, NULL, "%s '%.*s' is unknown to this qnic or out of order",
                        kind == QNIC_SF_SUBSECTION ? "subsection" : "field", (int)n, name);
        }
        return fail(x, NULL, "%zu stray bytes at the end of a body", c->len - c->pos);
    }
    return true;
}

void qnic_state_reader_init(QnicStateReader *r, const uint8_t *buf, size_t len)
{
    *r = (QnicStateReader){ .buf = buf, .len = len };
}

/* The section header and its CRC: *body covers the fields. */
static bool open_section(Ctx *x, Cur *c, const char **name, size_t *name_len,
                         uint32_t *version, Cur *body)
{
    size_t start = c->pos;
    const uint8_t *tag, *crcp;
    if (!take(c, 1, &tag) || *tag != 'S') {
        return fail(x, NULL, c->pos > start ? "no section starts here" : "stream ends early");
    }
    if (!get_str(c, name, name_len) || !get_u32(c, version) || !get_body(c, body)) {
        return fail(x, NULL, "section header truncated");
    }
    size_t end = c->pos;
    if (!take(c, 4, &crcp)) {
        return fail(x, NULL, "checksum missing (truncated)");
    }
    uint32_t want = (uint32_t)crc32(0L, c->p + start, (uInt)(end - start));
    uint32_t got = (uint32_t)load_uint(crcp, 4);
    if (got != want) {
        return fail(x, NULL, "checksum mismatch (the stream is corrupt)");
    }
    return true;
}

bool qnic_state_read(QnicStateReader *r, const QnicStateDesc *desc, void *snap,
                     GError **errp)
{
    Ctx x = { .section = desc->name, .errp = errp };
    Cur c = { .p = r->buf, .len = r->len, .pos = r->pos };
    const char *name;
    size_t n;
    uint32_t version;
    Cur body;

    if (!open_section(&x, &c, &name, &n, &version, &body)) {
        return false;
    }
    if (!str_is(name, n, desc->name)) {
        return fail(&x, NULL, "found section '%.*s' instead", (int)n, name);
    }
    if (version < desc->min_version || version > desc->version) {
        return fail(&x, NULL, "version %" PRIu32 " is not in the %" PRIu32 "..%" PRIu32
                    " this qnic loads", version, desc->min_version, desc->version);
    }
    memset(snap, 0, desc->size);
    if (desc->defaults) {
        desc->defaults(snap);
    }
    if (!read_body(&x, &body, desc->fields, snap, version)) {
        return false;
    }
    r->pos = c.pos;
    return true;
}

bool qnic_state_reader_done(const QnicStateReader *r, GError **errp)
{
    if (r->pos != r->len) {
        g_set_error(errp, QNIC_ERROR, 0, "device state: %zu bytes after the last section",
                    r->len - r->pos);
        return false;
    }
    return true;
}

char *qnic_state_peek_name(const QnicStateReader *r)
{
    Cur c = { .p = r->buf, .len = r->len, .pos = r->pos };
    const uint8_t *tag;
    const char *name;
    size_t n;
    if (!take(&c, 1, &tag) || *tag != 'S' || !get_str(&c, &name, &n)) {
        return NULL;
    }
    return g_strndup(name, n);
}
