/*
 * The device-state format (util/state.c, util/state-dump.c) on its own,
 * with a made-up device whose snapshot uses every kind of field: the round
 * trip, the dump, versioning both ways (an old stream into a new table, a
 * new stream refused by an old one), subsections present, absent and
 * unknown, and the hostile streams the format must refuse: every
 * truncation, every single-bit flip, reordered, repeated and unknown
 * fields, out-of-range values, counts beyond the table, trailing bytes.
 */
#include "qnic/state.h"

#include <string.h>
#include <zlib.h>

typedef struct Queue {
    uint16_t size;
    uint64_t addr;
    bool ready;
} Queue;

typedef struct Snap {
    uint8_t status;
    uint16_t sel;
    uint32_t features_lo;
    uint64_t features;
    bool link_up;
    uint8_t mac[6];
    uint32_t regs[4];
    uint32_t nqueues;
    Queue queues[3];
    /* version 2 */
    uint32_t added_in_v2;
    /* subsection "rss" */
    uint8_t key[8];
    uint16_t table_len;
} Snap;

static const QnicStateField queue_fields[] = {
    QNIC_STATE_UINT_RANGE(Queue, size, 0, 1, 1024),
    QNIC_STATE_UINT(Queue, addr, 0),
    QNIC_STATE_BOOL(Queue, ready, 0),
    QNIC_STATE_END,
};
static const QnicStateDesc queue_desc = {
    .name = "queue", .version = 1, .min_version = 1, .size = sizeof(Queue),
    .fields = queue_fields,
};

static bool rss_needed(const void *snap) { return ((const Snap *)snap)->table_len != 0; }

static const QnicStateField rss_fields[] = {
    QNIC_STATE_BYTES(Snap, key, 0),
    QNIC_STATE_UINT_RANGE(Snap, table_len, 0, 1, 128),
    QNIC_STATE_END,
};
static const QnicStateDesc rss_desc = {
    .name = "rss", .version = 1, .min_version = 1, .size = sizeof(Snap), .fields = rss_fields,
};

static void defaults(void *snap) { ((Snap *)snap)->added_in_v2 = 77; }

/* The table as "version 2" of the device, and as the older version 1 that
 * lacked added_in_v2 (the same struct; v1 never wrote the field). */
#define COMMON_FIELDS \
    QNIC_STATE_UINT(Snap, status, 0), \
    QNIC_STATE_UINT_RANGE(Snap, sel, 0, 0, 2), \
    QNIC_STATE_UINT(Snap, features_lo, 0), \
    QNIC_STATE_UINT(Snap, features, 0), \
    QNIC_STATE_BOOL(Snap, link_up, 0), \
    QNIC_STATE_BYTES(Snap, mac, 0), \
    QNIC_STATE_UINT_ARRAY(Snap, regs, 0), \
    QNIC_STATE_STRUCT_VARRAY(Snap, queues, nqueues, queue_desc, 0)

static const QnicStateField v2_fields[] = {
    COMMON_FIELDS,
    QNIC_STATE_UINT(Snap, added_in_v2, 2),
    QNIC_STATE_SUBSECTION(rss_desc, rss_needed),
    QNIC_STATE_END,
};
static const QnicStateDesc v2 = {
    .name = "testdev", .version = 2, .min_version = 1, .size = sizeof(Snap),
    .fields = v2_fields, .defaults = defaults,
};
static const QnicStateField v1_fields[] = {
    COMMON_FIELDS,
    QNIC_STATE_END,
};
static const QnicStateDesc v1 = {
    .name = "testdev", .version = 1, .min_version = 1, .size = sizeof(Snap),
    .fields = v1_fields,
};

static Snap sample(void)
{
    Snap s = {
        .status = 0x0f, .sel = 2, .features_lo = 0xdeadbeef,
        .features = 0x0123456789abcdefull, .link_up = true,
        .mac = { 0x52, 0x54, 0, 0x12, 0x34, 0x56 },
        .regs = { 1, 2, 3, 0xffffffff }, .nqueues = 2,
        .queues = { { 256, 0x1000, true }, { 1024, 0xfffff000, false } },
        .added_in_v2 = 5, .key = { 1, 2, 3, 4, 5, 6, 7, 8 }, .table_len = 128,
    };
    return s;
}

static GByteArray *save(const QnicStateDesc *d, const Snap *s)
{
    GByteArray *b = g_byte_array_new();
    qnic_state_write(b, d, s);
    return b;
}

/* Load one section that must be the whole stream. */
static bool load(const QnicStateDesc *d, const uint8_t *p, size_t n, Snap *out, GError **errp)
{
    QnicStateReader r;
    qnic_state_reader_init(&r, p, n);
    return qnic_state_read(&r, d, out, errp) && qnic_state_reader_done(&r, errp);
}

/* Recompute the CRC of the single section in b (after an edit). */
static void fix_crc(GByteArray *b)
{
    uint32_t crc = (uint32_t)crc32(0L, b->data, b->len - 4);
    memcpy(b->data + b->len - 4, &crc, 4);
}

static void test_roundtrip(void)
{
    Snap s = sample(), got;
    g_autoptr(GByteArray) b = save(&v2, &s);
    g_autoptr(GError) err = NULL;

    g_assert_true(load(&v2, b->data, b->len, &got, &err));
    g_assert_no_error(err);
    g_assert_cmpmem(&got, offsetof(Snap, queues), &s, offsetof(Snap, queues));
    for (int i = 0; i < 2; i++) {
        g_assert_cmpuint(got.queues[i].size, ==, s.queues[i].size);
        g_assert_cmpuint(got.queues[i].addr, ==, s.queues[i].addr);
        g_assert_cmpint(got.queues[i].ready, ==, s.queues[i].ready);
    }
    g_assert_cmpuint(got.queues[2].size, ==, 0);   /* beyond nqueues: untouched zero */
    g_assert_cmpuint(got.added_in_v2, ==, 5);
    g_assert_cmpmem(got.key, 8, s.key, 8);
    g_assert_cmpuint(got.table_len, ==, 128);

    /* Saving what was loaded gives the same bytes. */
    g_autoptr(GByteArray) b2 = save(&v2, &got);
    g_assert_cmpmem(b->data, b->len, b2->data, b2->len);
}

static void test_dump(void)
{
    Snap s = sample();
    g_autoptr(GByteArray) b = save(&v2, &s);
    g_autoptr(GError) err = NULL;
    g_autofree char *d = qnic_state_dump(b->data, b->len, &err);

    g_assert_no_error(err);
    g_assert_nonnull(strstr(d, "section testdev version 2\n"));
    g_assert_nonnull(strstr(d, "testdev.sel = 2\n"));
    g_assert_nonnull(strstr(d, "testdev.features = 81985529216486895\n"));
    g_assert_nonnull(strstr(d, "testdev.link_up = 1\n"));
    g_assert_nonnull(strstr(d, "testdev.mac = 525400123456\n"));
    g_assert_nonnull(strstr(d, "testdev.regs = [1, 2, 3, 4294967295]\n"));
    g_assert_nonnull(strstr(d, "testdev.queues[1].addr = 4294963200\n"));
    g_assert_nonnull(strstr(d, "testdev.rss (subsection version 1)\n"));
    g_assert_nonnull(strstr(d, "testdev.rss.table_len = 128\n"));
    g_assert_null(strstr(d, "queues[2]"));

    /* Two sections in one stream, and the dump of a corrupt one fails. */
    qnic_state_write(b, &v1, &s);
    g_autofree char *d2 = qnic_state_dump(b->data, b->len, &err);
    g_assert_no_error(err);
    g_assert_nonnull(strstr(d2, "section testdev version 1\n"));
    b->data[b->len - 10] ^= 1;
    g_assert_null(qnic_state_dump(b->data, b->len, &err));
    g_assert_nonnull(strstr(err->message, "checksum"));
}

static void test_versions(void)
{
    Snap s = sample(), got;
    g_autoptr(GError) err = NULL;

    /* An old stream into the new table: the new field takes its default. */
    g_autoptr(GByteArray) old = save(&v1, &s);
    g_assert_true(load(&v2, old->data, old->len, &got, &err));
    g_assert_cmpuint(got.added_in_v2, ==, 77);
    g_assert_cmpuint(got.table_len, ==, 0);        /* no subsection in v1 */
    g_assert_cmpuint(got.features, ==, s.features);

    /* A new stream into the old table is refused by its version. */
    g_autoptr(GByteArray) neu = save(&v2, &s);
    g_assert_false(load(&v1, neu->data, neu->len, &got, &err));
    g_assert_nonnull(strstr(err->message, "version 2 is not in the 1..1"));
    g_clear_error(&err);

    /* A subsection the sender did not need is absent and loads. */
    s.table_len = 0;
    g_autoptr(GByteArray) nosub = save(&v2, &s);
    g_assert_cmpuint(nosub->len, <, neu->len);
    g_assert_true(load(&v2, nosub->data, nosub->len, &got, &err));
    g_assert_cmpuint(got.table_len, ==, 0);
}

/* A stream with the subsection renamed: state this qnic cannot hold. */
static void test_unknown_subsection(void)
{
    Snap s = sample(), got;
    g_autoptr(GByteArray) b = save(&v2, &s);
    g_autoptr(GError) err = NULL;
    guint8 *at = memmem(b->data, b->len, "\x03rss", 4);

    g_assert_nonnull(at);
    memcpy(at + 1, "rsz", 3);
    fix_crc(b);
    g_assert_false(load(&v2, b->data, b->len, &got, &err));
    g_assert_nonnull(strstr(err->message, "subsection 'rsz' is unknown"));
}

static void test_truncated(void)
{
    Snap s = sample(), got;
    g_autoptr(GByteArray) b = save(&v2, &s);

    for (size_t n = 0; n < b->len; n++) {
        g_autoptr(GError) err = NULL;
        g_autofree uint8_t *copy = g_memdup2(b->data, n);   /* exact size: ASan sees overreads */
        g_assert_false(load(&v2, copy, n, &got, &err));
        g_assert_nonnull(err);
        g_autofree char *d = qnic_state_dump(copy, n, NULL);
        g_assert_true(n == 0 ? d != NULL : d == NULL);
    }
}

static void test_bitflips(void)
{
    Snap s = sample(), got;
    g_autoptr(GByteArray) b = save(&v2, &s);

    for (size_t i = 0; i < b->len * 8; i++) {
        g_autoptr(GError) err = NULL;
        b->data[i / 8] ^= 1u << (i % 8);
        g_assert_false(load(&v2, b->data, b->len, &got, &err));
        g_assert_nonnull(err);
        b->data[i / 8] ^= 1u << (i % 8);
    }
    g_assert_true(load(&v2, b->data, b->len, &got, NULL));
}

/* Build a section by hand: lets a test write records in any order. */
static void rec_uint(GByteArray *o, const char *name, uint8_t size, uint32_t n, uint64_t v)
{
    uint8_t k = 'u', l = (uint8_t)strlen(name);
    g_byte_array_append(o, &k, 1);
    g_byte_array_append(o, &l, 1);
    g_byte_array_append(o, (const uint8_t *)name, l);
    g_byte_array_append(o, &size, 1);
    g_byte_array_append(o, (const uint8_t *)&n, 4);
    for (uint32_t i = 0; i < n; i++) {
        g_byte_array_append(o, (const uint8_t *)&v, size);
    }
}

static GByteArray *section(const char *name, uint32_t version, GByteArray *body)
{
    GByteArray *o = g_byte_array_new();
    uint8_t tag = 'S', l = (uint8_t)strlen(name);
    uint32_t n = body->len;
    g_byte_array_append(o, &tag, 1);
    g_byte_array_append(o, &l, 1);
    g_byte_array_append(o, (const uint8_t *)name, l);
    g_byte_array_append(o, (const uint8_t *)&version, 4);
    g_byte_array_append(o, (const uint8_t *)&n, 4);
    g_byte_array_append(o, body->data, body->len);
    g_byte_array_append(o, (const uint8_t *)&n, 4);     /* room for the CRC */
    fix_crc(o);
    return o;
}

static const QnicStateField small_fields[] = {
    QNIC_STATE_UINT(Snap, status, 0),
    QNIC_STATE_UINT_RANGE(Snap, sel, 0, 0, 2),
    QNIC_STATE_UINT_ARRAY(Snap, regs, 0),
    QNIC_STATE_END,
};
static const QnicStateDesc small = {
    .name = "small", .version = 1, .min_version = 1, .size = sizeof(Snap),
    .fields = small_fields,
};

static void expect_refused(GByteArray *body, const char *msg)
{
    g_autoptr(GByteArray) s = section("small", 1, body);
    g_autoptr(GError) err = NULL;
    Snap got;
    g_assert_false(load(&small, s->data, s->len, &got, &err));
    if (!strstr(err->message, msg)) {
        g_error("expected '%s' in: %s", msg, err->message);
    }
}

static void test_hostile_records(void)
{
    g_autoptr(GByteArray) ok = g_byte_array_new();
    rec_uint(ok, "status", 1, 1, 3);
    rec_uint(ok, "sel", 2, 1, 1);
    rec_uint(ok, "regs", 4, 4, 9);
    g_autoptr(GByteArray) good = section("small", 1, ok);
    Snap got;
    g_assert_true(load(&small, good->data, good->len, &got, NULL));
    g_assert_cmpuint(got.regs[3], ==, 9);

    g_autoptr(GByteArray) b1 = g_byte_array_new();     /* reordered */
    rec_uint(b1, "sel", 2, 1, 1);
    rec_uint(b1, "status", 1, 1, 3);
    rec_uint(b1, "regs", 4, 4, 9);
    expect_refused(b1, "field 'status': expected here, found field 'sel'");

    g_autoptr(GByteArray) b2 = g_byte_array_new();     /* out of range */
    rec_uint(b2, "status", 1, 1, 3);
    rec_uint(b2, "sel", 2, 1, 3);
    rec_uint(b2, "regs", 4, 4, 9);
    expect_refused(b2, "field 'sel': value 3 (element 0) is outside [0, 2]");

    g_autoptr(GByteArray) b3 = g_byte_array_new();     /* wrong width */
    rec_uint(b3, "status", 4, 1, 3);
    expect_refused(b3, "4-byte values where 1-byte ones belong");

    g_autoptr(GByteArray) b4 = g_byte_array_new();     /* wrong count */
    rec_uint(b4, "status", 1, 1, 3);
    rec_uint(b4, "sel", 2, 1, 1);
    rec_uint(b4, "regs", 4, 5, 9);
    expect_refused(b4, "5 elements where 4 fit");

    g_autoptr(GByteArray) b5 = g_byte_array_new();     /* missing */
    rec_uint(b5, "status", 1, 1, 3);
    rec_uint(b5, "sel", 2, 1, 1);
    expect_refused(b5, "field 'regs': missing");

    g_autoptr(GByteArray) b6 = g_byte_array_new();     /* unknown extra field */
    g_byte_array_append(b6, ok->data, ok->len);
    rec_uint(b6, "extra", 1, 1, 0);
    expect_refused(b6, "field 'extra' is unknown");

    g_autoptr(GByteArray) b7 = g_byte_array_new();     /* repeated field */
    rec_uint(b7, "status", 1, 1, 3);
    rec_uint(b7, "status", 1, 1, 3);
    expect_refused(b7, "expected here, found field 'status'");

    g_autoptr(GByteArray) b8 = g_byte_array_new();     /* huge count, short data */
    rec_uint(b8, "status", 1, 1, 3);
    rec_uint(b8, "sel", 2, 1, 1);
    rec_uint(b8, "regs", 4, 0, 0);
    memcpy(b8->data + b8->len - 4, "\xff\xff\xff\xff", 4);
    expect_refused(b8, "4294967295 elements where 4 fit");

    /* Another section's name, and trailing bytes after a good section. */
    g_autoptr(GByteArray) other = section("other", 1, ok);
    g_autoptr(GError) err = NULL;
    g_assert_false(load(&small, other->data, other->len, &got, &err));
    g_assert_nonnull(strstr(err->message, "found section 'other' instead"));
    g_clear_error(&err);
    g_byte_array_append(good, (const uint8_t *)"x", 1);
    g_assert_false(load(&small, good->data, good->len, &got, &err));
    g_assert_nonnull(strstr(err->message, "1 bytes after the last section"));
}

/* A variable struct array: the count is stored, and capped by the table. */
static void test_varray(void)
{
    Snap s = sample(), got;
    g_autoptr(GError) err = NULL;

    s.nqueues = 3;
    s.queues[2] = (Queue){ 1, 0, true };
    g_autoptr(GByteArray) b = save(&v2, &s);
    g_assert_true(load(&v2, b->data, b->len, &got, &err));
    g_assert_cmpuint(got.nqueues, ==, 3);
    g_assert_cmpuint(got.queues[2].size, ==, 1);

    /* A queue size of 0 is outside its [1, 1024]: refused, naming it. */
    s.queues[2].size = 0;
    g_autoptr(GByteArray) bad = save(&v2, &s);
    g_assert_false(load(&v2, bad->data, bad->len, &got, &err));
    g_assert_nonnull(strstr(err->message, "field 'size': value 0"));
    g_clear_error(&err);

    /* Four elements where three fit: patch the struct count. */
    s.queues[2].size = 1;
    g_autoptr(GByteArray) four = save(&v2, &s);
    guint8 *at = memmem(four->data, four->len, "\x06queues\x03\0\0\0", 11);
    g_assert_nonnull(at);
    at[7] = 4;
    fix_crc(four);
    g_assert_false(load(&v2, four->data, four->len, &got, &err));
    g_assert_nonnull(strstr(err->message, "4 elements where at most 3 fit"));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/state/roundtrip", test_roundtrip);
    g_test_add_func("/state/dump", test_dump);
    g_test_add_func("/state/versions", test_versions);
    g_test_add_func("/state/unknown-subsection", test_unknown_subsection);
    g_test_add_func("/state/truncated", test_truncated);
    g_test_add_func("/state/bitflips", test_bitflips);
    g_test_add_func("/state/hostile-records", test_hostile_records);
    g_test_add_func("/state/varray", test_varray);
    return g_test_run();
}
