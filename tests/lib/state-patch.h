/*
 * Tests of device-state loaders need streams that are well formed and
 * CRC-valid but carry a value a device must refuse (a ring head beyond its
 * ring, a BAR the device cannot decode). This header finds a top-level
 * record of a section in a saved stream (the layout qnic/state.h
 * documents), changes one value in place and recomputes the section's CRC,
 * so the value reaches the device's own checks.
 */
#ifndef QNIC_TESTS_STATE_PATCH_H
#define QNIC_TESTS_STATE_PATCH_H

#include <glib.h>
#include <string.h>
#include <zlib.h>

static inline uint64_t state_patch_le(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++) {
        v |= (uint64_t)p[i] << (8 * i);
    }
    return v;
}

/* The payload of record `field` (after kind and name) among the records
 * in [p, end) of b, and its kind; NULL if absent. */
static inline uint8_t *state_patch_find_in(GByteArray *b, size_t p, size_t end, const char *field,
                                           uint8_t *kind)
{
    while (p < end) {
        uint8_t k = b->data[p], fl = b->data[p + 1];
        gboolean hit = fl == strlen(field) && !memcmp(b->data + p + 2, field, fl);
        p += 2 + fl;
        if (hit) {
            *kind = k;
            return b->data + p;
        }
        switch (k) {
        case 'u':
            p += 1 + 4 + b->data[p] * state_patch_le(b->data + p + 1, 4);
            break;
        case 'b':
            p += 4 + state_patch_le(b->data + p, 4);
            break;
        case 's': {
            size_t n = state_patch_le(b->data + p, 4);
            p += 4;
            for (size_t i = 0; i < n; i++) {
                p += 4 + state_patch_le(b->data + p, 4);
            }
            break;
        }
        default:    /* 'x' */
            p += 8 + state_patch_le(b->data + p + 4, 4);
        }
    }
    return NULL;
}

/* The payload of record `field` (after kind and name) in the first section
 * named `sec` that has it, and where that section starts and ends (before
 * its CRC); NULL if absent. */
static inline uint8_t *state_patch_find(GByteArray *b, const char *sec, const char *field,
                                        uint8_t *kind, size_t *sec_start, size_t *sec_end)
{
    size_t pos = 0;

    while (pos + 2 <= b->len && b->data[pos] == 'S') {
        size_t start = pos, nlen = b->data[pos + 1];
        gboolean match = nlen == strlen(sec) && !memcmp(b->data + pos + 2, sec, nlen);
        pos += 2 + nlen + 4;
        size_t body_len = state_patch_le(b->data + pos, 4);
        size_t p = pos + 4, end = p + body_len;
        uint8_t *hit;
        pos = end + 4;
        if (!match) {
            continue;
        }
        /* not in this one: a later section of the same name may have it
         * (a device stream starts with a section naming its class) */
        hit = state_patch_find_in(b, p, end, field, kind);
        if (hit) {
            *sec_start = start;
            *sec_end = end;
            return hit;
        }
    }
    return NULL;
}

static inline void state_patch_fix_crc(GByteArray *b, size_t start, size_t end)
{
    uint32_t crc = (uint32_t)crc32(0L, b->data + start, (uInt)(end - start));
    for (unsigned i = 0; i < 4; i++) {
        b->data[end + i] = (uint8_t)(crc >> (8 * i));
    }
}

/* Set element i of uint record `field` of section `sec` to v. */
static inline gboolean state_patch_uint(GByteArray *b, const char *sec, const char *field,
                                        uint32_t i, uint64_t v)
{
    uint8_t kind;
    size_t start, end;
    uint8_t *p = state_patch_find(b, sec, field, &kind, &start, &end);

    if (!p || kind != 'u' || i >= state_patch_le(p + 1, 4)) {
        return FALSE;
    }
    for (unsigned k = 0; k < p[0]; k++) {
        p[5 + i * p[0] + k] = (uint8_t)(v >> (8 * k));
    }
    state_patch_fix_crc(b, start, end);
    return TRUE;
}

/* Set uint record `field` of element `elem` of the struct array `array` (a
 * record of section `sec`) to v. */
static inline gboolean state_patch_elem_uint(GByteArray *b, const char *sec, const char *array,
                                             uint32_t elem, const char *field, uint64_t v)
{
    uint8_t kind;
    size_t start, end, p;
    uint8_t *a = state_patch_find(b, sec, array, &kind, &start, &end), *f;

    if (!a || kind != 's' || elem >= state_patch_le(a, 4)) {
        return FALSE;
    }
    p = a + 4 - b->data;
    for (uint32_t i = 0; i < elem; i++) {
        p += 4 + state_patch_le(b->data + p, 4);
    }
    f = state_patch_find_in(b, p + 4, p + 4 + state_patch_le(b->data + p, 4), field, &kind);
    if (!f || kind != 'u') {
        return FALSE;
    }
    for (unsigned k = 0; k < f[0]; k++) {
        f[5 + k] = (uint8_t)(v >> (8 * k));
    }
    state_patch_fix_crc(b, start, end);
    return TRUE;
}

/* Set byte off of bytes record `field` of section `sec` to v. */
static inline gboolean state_patch_byte(GByteArray *b, const char *sec, const char *field,
                                        uint32_t off, uint8_t v)
{
    uint8_t kind;
    size_t start, end;
    uint8_t *p = state_patch_find(b, sec, field, &kind, &start, &end);

    if (!p || kind != 'b' || off >= state_patch_le(p, 4)) {
        return FALSE;
    }
    p[4 + off] = v;
    state_patch_fix_crc(b, start, end);
    return TRUE;
}

/* Read byte off of bytes record `field` (-1 if absent). */
static inline int state_patch_get_byte(GByteArray *b, const char *sec, const char *field,
                                       uint32_t off)
{
    uint8_t kind;
    size_t start, end;
    uint8_t *p = state_patch_find(b, sec, field, &kind, &start, &end);

    return p && kind == 'b' && off < state_patch_le(p, 4) ? p[4 + off] : -1;
}

#endif
