/*
 * The migration stream's records: what the source appends (the machine's
 * description, guest RAM pages, the accelerator's, every device's and the
 * machine's state sections, an end mark) and the destination's loader,
 * which checks each record before it touches the machine: a stream for
 * another machine (RAM size, devices), out-of-range pages, an unknown or
 * repeated device, trailing bytes or a missing end are refused with an
 * error saying which. The device and machine sections are qnic/state.h's
 * format; this file only frames them (docs/migration.md).
 */
#include "vmm/migration.h"
#include "vmm/vmm.h"
#include "qnic/device.h"
#include "qnic/log.h"

#define PAGE 4096u

/* ---- the machine's description ---- */

char *qnic_mig_config_text(QnicMachine *m, const char *accel)
{
    GString *s = g_string_new(NULL);

    g_string_append_printf(s, "accel %s\nram_size %" PRIu64 "\n", accel, m->ram_size);
    for (guint i = 0; i < m->devices->len; i++) {
        QnicDevice *d = g_ptr_array_index(m->devices, i);
        g_autofree char *path = qnic_device_path(d);
        g_string_append_printf(s, "device %s %s\n", path, d->cls->name);
    }
    return g_string_free(s, FALSE);
}

/* "device PATH MODEL" lines of a description as path -> model. */
static GHashTable *config_devices(char **lines)
{
    GHashTable *h = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);

    for (int i = 0; lines[i]; i++) {
        g_auto(GStrv) w = g_strsplit(lines[i], " ", 3);
        if (g_strv_length(w) == 3 && g_str_equal(w[0], "device")) {
            g_hash_table_replace(h, g_strdup(w[1]), g_strdup(w[2]));
        }
    }
    return h;
}

static const char *config_value(char **lines, const char *key)
{
    size_t n = strlen(key);

    for (int i = 0; lines[i]; i++) {
        if (strncmp(lines[i], key, n) == 0 && lines[i][n] == ' ') {
            return lines[i] + n + 1;
        }
    }
    return "(none)";
}

/* Every difference between the two device lists, in a sentence each. */
static void config_diff_devices(GString *diff, GHashTable *src, GHashTable *dst)
{
    GHashTableIter it;
    gpointer k, v;

    g_hash_table_iter_init(&it, src);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        const char *mine = g_hash_table_lookup(dst, k);
        if (!mine) {
            g_string_append_printf(diff, "; the source has device %s (%s), this machine has none",
                                   (char *)k, (char *)v);
        } else if (strcmp(mine, v) != 0) {
            g_string_append_printf(diff, "; device %s is %s on the source, %s here",
                                   (char *)k, (char *)v, mine);
        }
    }
    g_hash_table_iter_init(&it, dst);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        if (!g_hash_table_contains(src, k)) {
            g_string_append_printf(diff, "; this machine has device %s (%s), the source has none",
                                   (char *)k, (char *)v);
        }
    }
}

bool qnic_mig_config_check(QnicMachine *m, const char *accel, const char *src,
                           size_t len, GError **errp)
{
    g_autofree char *mine = qnic_mig_config_text(m, accel);
    g_autofree char *theirs = g_strndup(src, len);
    g_auto(GStrv) a = g_strsplit(theirs, "\n", -1);
    g_auto(GStrv) b = g_strsplit(mine, "\n", -1);
    g_autoptr(GString) diff = g_string_new(NULL);
    g_autoptr(GHashTable) da = NULL, db = NULL;

    if (strlen(theirs) != len) {
        qnic_error_setg(errp, "the stream's machine description holds a NUL byte");
        return false;
    }
    if (strcmp(config_value(a, "accel"), accel) != 0) {
        g_string_append_printf(diff, "; the source runs under %s, this machine under %s",
                               config_value(a, "accel"), accel);
    }
    if (strcmp(config_value(a, "ram_size"), config_value(b, "ram_size")) != 0) {
        g_string_append_printf(diff, "; the source has %s bytes of RAM, this machine %s",
                               config_value(a, "ram_size"), config_value(b, "ram_size"));
    }
    da = config_devices(a);
    db = config_devices(b);
    config_diff_devices(diff, da, db);
    if (diff->len) {
        qnic_error_setg(errp, "the incoming machine does not match this one: %s",
                        diff->str + 2);
        return false;
    }
    return true;
}

/* ---- what the source writes ---- */

static void put_u8(GByteArray *out, uint8_t v)
{
    g_byte_array_append(out, &v, 1);
}

static void put_u32(GByteArray *out, uint32_t v)
{
    uint8_t b[4];
    qnic_st32(b, v);
    g_byte_array_append(out, b, 4);
}

static void put_u64(GByteArray *out, uint64_t v)
{
    uint8_t b[8];
    qnic_st64(b, v);
    g_byte_array_append(out, b, 8);
}

void qnic_mig_put_record_header(GByteArray *out, uint8_t type, uint32_t len)
{
    put_u8(out, type);
    put_u32(out, len);
}

static bool page_is_zero(const uint8_t *p)
{
    static const uint8_t zero[PAGE];
    return memcmp(p, zero, PAGE) == 0;
}

size_t qnic_mig_put_ram(GByteArray *out, QnicMachine *m, uint64_t off, uint64_t len,
                        uint32_t *records, uint64_t *zero_pages, uint64_t *normal_pages)
{
    size_t before = out->len;
    uint64_t end = off + len;

    while (off < end) {
        bool zero = page_is_zero(m->ram + off);
        uint64_t run = off + PAGE;
        while (run < end && run - off < MIG_RAM_CHUNK && page_is_zero(m->ram + run) == zero) {
            run += PAGE;
        }
        if (zero) {
            qnic_mig_put_record_header(out, MIG_REC_ZERO, 16);
            put_u64(out, off);
            put_u64(out, run - off);
            *zero_pages += (run - off) / PAGE;
        } else {
            qnic_mig_put_record_header(out, MIG_REC_RAM, 8 + (uint32_t)(run - off));
            put_u64(out, off);
            g_byte_array_append(out, m->ram + off, run - off);
            *normal_pages += (run - off) / PAGE;
        }
        (*records)++;
        off = run;
    }
    return out->len - before;
}

/* Append a record whose payload is a short name, then body. */
static void put_named(GByteArray *out, uint8_t type, const char *name, const GByteArray *body)
{
    size_t n = strlen(name);

    qnic_mig_put_record_header(out, type, (uint32_t)(2 + n + body->len));
    put_u8(out, n & 0xff);
    put_u8(out, n >> 8);
    g_byte_array_append(out, (const uint8_t *)name, n);
    g_byte_array_append(out, body->data, body->len);
}

bool qnic_mig_put_devices(GByteArray *out, QnicMachine *m, GError **errp)
{
    for (guint i = 0; i < m->devices->len; i++) {
        QnicDevice *d = g_ptr_array_index(m->devices, i);
        g_autofree char *path = qnic_device_path(d);
        g_autoptr(GByteArray) body = g_byte_array_new();
        GError *err = NULL;

        if (!qnic_device_save_state(d, body, &err)) {
            qnic_error_setg(errp, "device %s (%s): %s", path, d->cls->name, err->message);
            g_error_free(err);
            return false;
        }
        put_named(out, MIG_REC_DEVICE, path, body);
    }
    return true;
}

bool qnic_mig_put_accel(GByteArray *out, const char *name, const QnicMigrationAccelOps *ops,
                        void *state, QnicMachine *m, GError **errp)
{
    g_autoptr(GByteArray) body = g_byte_array_new();

    if (ops->save && !ops->save(state, m, body, errp)) {
        return false;
    }
    qnic_vmm_board_save_state(body);       /* the pc board's registers, if any */
    put_named(out, MIG_REC_ACCEL, name, body);
    return true;
}

void qnic_mig_put_machine(GByteArray *out, QnicMachine *m)
{
    g_autoptr(GByteArray) body = g_byte_array_new();

    qnic_machine_save_state(m, body);
    qnic_mig_put_record_header(out, MIG_REC_MACHINE, body->len);
    g_byte_array_append(out, body->data, body->len);
}

/* ---- the destination's loader ---- */

void qnic_mig_loader_init(QnicMigLoader *l, QnicMachine *m, const char *accel_name,
                          const QnicMigrationAccelOps *ops, void *accel_state)
{
    memset(l, 0, sizeof(*l));
    l->m = m;
    l->accel_name = accel_name;
    l->ops = ops;
    l->accel_state = accel_state;
    l->buf = g_byte_array_new();
    l->devices_loaded = g_ptr_array_new();
}

void qnic_mig_loader_destroy(QnicMigLoader *l)
{
    if (l->buf) {
        g_byte_array_free(l->buf, TRUE);
        g_ptr_array_free(l->devices_loaded, TRUE);
    }
    l->buf = NULL;
}

/* A page-aligned RAM range inside guest RAM? */
static bool ram_range_ok(QnicMigLoader *l, uint64_t off, uint64_t len, GError **errp)
{
    if (off % PAGE || len % PAGE || off > l->m->ram_size || len > l->m->ram_size - off) {
        qnic_error_setg(errp, "RAM record for 0x%" PRIx64 "+0x%" PRIx64 " is not whole pages "
                        "of this machine's 0x%" PRIx64 " bytes", off, len, l->m->ram_size);
        return false;
    }
    return true;
}

/* Split a named record: *name (g_free) and the body after it. */
static bool get_named(const uint8_t *p, uint32_t len, char **name, const uint8_t **body,
                      uint32_t *body_len, GError **errp)
{
    uint32_t n;

    if (len < 2 || (n = p[0] | (uint32_t)p[1] << 8) > len - 2 ||
        memchr(p + 2, 0, n)) {
        qnic_error_setg(errp, "a device or accelerator record with a malformed name");
        return false;
    }
    *name = g_strndup((const char *)p + 2, n);
    *body = p + 2 + n;
    *body_len = len - 2 - n;
    return true;
}

static QnicDevice *device_by_path(QnicMachine *m, const char *path)
{
    for (guint i = 0; i < m->devices->len; i++) {
        QnicDevice *d = g_ptr_array_index(m->devices, i);
        g_autofree char *p = qnic_device_path(d);
        if (strcmp(p, path) == 0) {
            return d;
        }
    }
    return NULL;
}

static bool load_device(QnicMigLoader *l, const uint8_t *p, uint32_t len, GError **errp)
{
    g_autofree char *path = NULL;
    const uint8_t *body;
    uint32_t blen;
    QnicDevice *d;
    GError *err = NULL;

    if (!get_named(p, len, &path, &body, &blen, errp)) {
        return false;
    }
    d = device_by_path(l->m, path);
    if (!d) {
        qnic_error_setg(errp, "state for device %s, which this machine does not have", path);
        return false;
    }
    for (guint i = 0; i < l->devices_loaded->len; i++) {
        if (g_ptr_array_index(l->devices_loaded, i) == d) {
            qnic_error_setg(errp, "state for device %s comes twice", path);
            return false;
        }
    }
    if (!qnic_device_load_state(d, body, blen, &err)) {
        qnic_error_setg(errp, "device %s (%s): %s", path, d->cls->name, err->message);
        g_error_free(err);
        return false;
    }
    g_ptr_array_add(l->devices_loaded, d);
    return true;
}

static bool load_accel(QnicMigLoader *l, const uint8_t *p, uint32_t len, GError **errp)
{
    g_autofree char *name = NULL;
    const uint8_t *body;
    uint32_t blen;
    QnicStateReader r;

    if (!get_named(p, len, &name, &body, &blen, errp)) {
        return false;
    }
    if (strcmp(name, l->accel_name) != 0) {
        qnic_error_setg(errp, "the stream has %s accelerator state; this machine runs under %s",
                        name, l->accel_name);
        return false;
    }
    qnic_state_reader_init(&r, body, blen);
    if (l->ops->load && !l->ops->load(l->accel_state, l->m, &r, errp)) {
        return false;
    }
    if (!qnic_vmm_board_load_state(&r, errp)) {
        return false;
    }
    return qnic_state_reader_done(&r, errp);
}

static bool load_machine(QnicMigLoader *l, const uint8_t *p, uint32_t len, GError **errp)
{
    QnicStateReader r;

    qnic_state_reader_init(&r, p, len);
    return qnic_machine_load_state(l->m, &r, errp) && qnic_state_reader_done(&r, errp);
}

static bool load_ram(QnicMigLoader *l, uint8_t type, const uint8_t *p, uint32_t len,
                     GError **errp)
{
    uint64_t off, n;

    if (len < 8 || (type == MIG_REC_ZERO && len != 16)) {
        qnic_error_setg(errp, "RAM record of %u bytes is malformed", len);
        return false;
    }
    off = qnic_ld64(p);
    n = type == MIG_REC_ZERO ? qnic_ld64(p + 8) : len - 8;
    if (!ram_range_ok(l, off, n, errp)) {
        return false;
    }
    if (type == MIG_REC_ZERO) {
        memset(l->m->ram + off, 0, n);
    } else {
        memcpy(l->m->ram + off, p + 8, n);
    }
    l->ram_bytes += n;
    return true;
}

static bool load_record(QnicMigLoader *l, uint8_t type, const uint8_t *p, uint32_t len,
                        GError **errp)
{
    if (!l->config_done && type != MIG_REC_CONFIG) {
        qnic_error_setg(errp, "the stream does not start with the machine's description");
        return false;
    }
    switch (type) {
    case MIG_REC_CONFIG:
        if (l->config_done) {
            qnic_error_setg(errp, "a second machine description in the stream");
            return false;
        }
        l->config_done = true;
        return qnic_mig_config_check(l->m, l->accel_name, (const char *)p, len, errp);
    case MIG_REC_RAM:
    case MIG_REC_ZERO:
        return load_ram(l, type, p, len, errp);
    case MIG_REC_ACCEL:
        return load_accel(l, p, len, errp);
    case MIG_REC_DEVICE:
        return load_device(l, p, len, errp);
    case MIG_REC_MACHINE:
        return load_machine(l, p, len, errp);
    case MIG_REC_END:
        if (len != 5 || qnic_ld32(p) != l->records || p[4] > MIG_SRC_PRELAUNCH) {
            qnic_error_setg(errp, "the end record does not count the %u records before it",
                            l->records);
            return false;
        }
        l->end_seen = true;
        l->source_state = p[4];
        return true;
    }
    qnic_error_setg(errp, "unknown record type 0x%02x in the stream", type);
    return false;
}

static bool check_header(QnicMigLoader *l, GError **errp)
{
    uint32_t v = qnic_ld32(l->buf->data + 8);

    if (memcmp(l->buf->data, MIG_MAGIC, 8) != 0) {
        qnic_error_setg(errp, "not a qnic migration stream (bad magic)");
        return false;
    }
    if (v == 0 || v > MIG_VERSION) {
        qnic_error_setg(errp, "migration stream version %u is not supported (this qnic "
                        "reads version 1 to %u)", v, MIG_VERSION);
        return false;
    }
    l->header_done = true;
    return true;
}

bool qnic_mig_loader_feed(QnicMigLoader *l, const void *data, size_t len, GError **errp)
{
    size_t pos = 0;
    bool ok = true;

    g_byte_array_append(l->buf, data, len);
    if (!l->header_done) {
        if (l->buf->len < MIG_HEADER_LEN) {
            return true;
        }
        if (!check_header(l, errp)) {
            return false;
        }
        pos = MIG_HEADER_LEN;
    }
    while (ok && l->buf->len - pos >= MIG_REC_HEADER_LEN) {
        const uint8_t *p = l->buf->data + pos;
        uint32_t rlen = qnic_ld32(p + 1);
        if (l->end_seen) {
            qnic_error_setg(errp, "bytes after the end of the migration stream");
            return false;
        }
        if (rlen > MIG_MAX_RECORD) {
            qnic_error_setg(errp, "a record of %u bytes is longer than qnic accepts (%u)",
                            rlen, MIG_MAX_RECORD);
            return false;
        }
        if (l->buf->len - pos - MIG_REC_HEADER_LEN < rlen) {
            break;
        }
        ok = load_record(l, p[0], p + MIG_REC_HEADER_LEN, rlen, errp);
        l->records++;
        pos += MIG_REC_HEADER_LEN + rlen;
    }
    if (ok && l->end_seen && l->buf->len > pos) {
        qnic_error_setg(errp, "bytes after the end of the migration stream");
        ok = false;
    }
    g_byte_array_remove_range(l->buf, 0, pos);
    return ok;
}

bool qnic_mig_loader_finish(QnicMigLoader *l, GError **errp)
{
    if (!l->end_seen) {
        qnic_error_setg(errp, "the migration stream ended early (%u records, no end mark)",
                        l->records);
        return false;
    }
    if (l->devices_loaded->len != l->m->devices->len) {
        qnic_error_setg(errp, "the stream held state for %u of this machine's %u devices",
                        l->devices_loaded->len, l->m->devices->len);
        return false;
    }
    return true;
}
