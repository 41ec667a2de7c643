/*
 * A device-state stream as text, without its tables (qnic/state.h,
 * qnic_state_dump). Tests compare the dump of what was saved with the dump
 * of a save after loading it, field by field, and `qnic-state-dump` shows
 * an operator what a snapshot file holds. The stream here is untrusted
 * input like any other: every section's checksum is checked first, and
 * nesting deeper than the device tables ever go is refused.
 */
#include "qnic/state.h"
#include "state-int.h"

#include <string.h>
#include <zlib.h>

/* Structs in structs or subsections: qnic's tables nest two deep at most. */
#define DUMP_MAX_DEPTH 4

static bool d_name(Cur *c, GString *path)
{
    uint64_t n;
    const uint8_t *b;
    if (!get_le(c, 1, &n) || !take(c, n, &b)) {
        return false;
    }
    for (uint64_t i = 0; i < n; i++) {
        /* names are identifiers; anything else is shown escaped */
        if (g_ascii_isgraph(b[i]) && b[i] != '\\') {
            g_string_append_c(path, (char)b[i]);
        } else {
            g_string_append_printf(path, "\\x%02x", b[i]);
        }
    }
    return true;
}

static bool d_body(Cur *c, GString *out, GString *path, unsigned depth, GError **errp);

static bool d_uints(Cur *c, GString *out, const char *path)
{
    uint64_t size, n;
    if (!get_le(c, 1, &size) || !get_le(c, 4, &n) ||
        (size != 1 && size != 2 && size != 4 && size != 8) || n > (c->len - c->pos) / size) {
        return false;
    }
    g_string_append_printf(out, "%s = ", path);
    if (n != 1) {
        g_string_append_c(out, '[');
    }
    for (uint64_t i = 0; i < n; i++) {
        uint64_t v = 0;
        get_le(c, (unsigned)size, &v);     /* in bounds: checked above */
        g_string_append_printf(out, i ? ", %" PRIu64 : "%" PRIu64, v);
    }
    g_string_append(out, n != 1 ? "]\n" : "\n");
    return true;
}

static bool d_bytes(Cur *c, GString *out, const char *path)
{
    uint64_t n;
    const uint8_t *b;
    if (!get_le(c, 4, &n) || !take(c, n, &b)) {
        return false;
    }
    g_string_append_printf(out, "%s = ", path);
    for (uint64_t i = 0; i < n; i++) {
        g_string_append_printf(out, "%02x", b[i]);
    }
    g_string_append_c(out, '\n');
    return true;
}

static bool d_inner(Cur *c, GString *out, GString *path, unsigned depth, GError **errp)
{
    uint64_t n;
    const uint8_t *b;
    if (!get_le(c, 4, &n) || !take(c, n, &b)) {
        return false;
    }
    Cur body = { .p = b, .len = n };
    return d_body(&body, out, path, depth + 1, errp);
}

static bool d_record(Cur *c, GString *out, GString *path, unsigned depth, GError **errp)
{
    const uint8_t *kind;
    size_t keep = path->len;
    bool ok = false;

    if (!take(c, 1, &kind) || !d_name(c, path)) {
        goto trunc;
    }
    switch (*kind) {
    case 'u':
        ok = d_uints(c, out, path->str);
        break;
    case 'b':
        ok = d_bytes(c, out, path->str);
        break;
    case 's': {
        uint64_t n;
        if (!get_le(c, 4, &n)) {
            break;
        }
        size_t elem = path->len;
        ok = true;
        for (uint64_t i = 0; ok && i < n; i++) {
            g_string_truncate(path, elem);
            g_string_append_printf(path, "[%" PRIu64 "].", i);
            ok = d_inner(c, out, path, depth, errp);
        }
        break;
    }
    case 'x': {
        uint64_t version;
        if (!get_le(c, 4, &version)) {
            break;
        }
        g_string_append_printf(out, "%s (subsection version %" PRIu64 ")\n", path->str,
                               version);
        g_string_append_c(path, '.');
        ok = d_inner(c, out, path, depth, errp);
        break;
    }
    default:
        g_set_error(errp, QNIC_ERROR, 0, "device state: unknown record kind 0x%02x at %s",
                    *kind, path->str);
        g_string_truncate(path, keep);
        return false;
    }
    g_string_truncate(path, keep);
    if (ok) {
        return true;
    }
trunc:
    if (errp && !*errp) {
        g_set_error(errp, QNIC_ERROR, 0, "device state: record at offset %zu is malformed",
                    c->pos);
    }
    g_string_truncate(path, keep);
    return false;
}

static bool d_body(Cur *c, GString *out, GString *path, unsigned depth, GError **errp)
{
    if (depth > DUMP_MAX_DEPTH) {
        g_set_error(errp, QNIC_ERROR, 0, "device state: nested deeper than %d at %s",
                    DUMP_MAX_DEPTH, path->str);
        return false;
    }
    while (c->pos < c->len) {
        if (!d_record(c, out, path, depth, errp)) {
            return false;
        }
    }
    return true;
}

static bool d_section(Cur *c, GString *out, GError **errp)
{
    size_t start = c->pos;
    const uint8_t *tag, *b, *crcp;
    uint64_t version, n, crc = 0;
    g_autoptr(GString) path = g_string_new(NULL);

    if (!take(c, 1, &tag) || *tag != 'S' || !d_name(c, path) || !get_le(c, 4, &version) ||
        !get_le(c, 4, &n) || !take(c, n, &b) || !take(c, 4, &crcp)) {
        g_set_error(errp, QNIC_ERROR, 0, "device state: malformed section at offset %zu",
                    start);
        return false;
    }
    Cur crcc = { .p = crcp, .len = 4 };
    get_le(&crcc, 4, &crc);
    if (crc != crc32(0L, c->p + start, (uInt)(c->pos - 4 - start))) {
        g_set_error(errp, QNIC_ERROR, 0, "device state: section '%s' fails its checksum",
                    path->str);
        return false;
    }
    g_string_append_printf(out, "section %s version %" PRIu64 "\n", path->str, version);
    g_string_append_c(path, '.');
    Cur body = { .p = b, .len = n };
    return d_body(&body, out, path, 0, errp);
}

char *qnic_state_dump(const uint8_t *buf, size_t len, GError **errp)
{
    Cur c = { .p = buf, .len = len };
    GString *out = g_string_new(NULL);
    while (c.pos < c.len) {
        if (!d_section(&c, out, errp)) {
            g_string_free(out, TRUE);
            return NULL;
        }
    }
    return g_string_free(out, FALSE);
}
