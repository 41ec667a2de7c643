/*
 * Unit tests of the schema checker and help printers (util/schema.c) and of
 * the generated tables (scripts/qapi-gen.py output): validation of every
 * property type, normalization, defaults, "nokey" booleans, required and
 * repeated keys, and the `help` output, on a small hand-made schema and on
 * the real one.
 */
#include "qnic/schema.h"
#include <linux/virtio_net.h>

static const char *const tx_values[] = { "timer", "bh", NULL };

static const QnicPropDesc test_props[] = {
    { .name = "id", .type = QNIC_PROP_STR, .required = true, .help = "identifier" },
    { .name = "label", .type = QNIC_PROP_STR },
    { .name = "mq", .type = QNIC_PROP_BOOL, .def = "off", .help = "multiqueue" },
    { .name = "csum", .type = QNIC_PROP_BOOL, .def = "on" },
    { .name = "vectors", .type = QNIC_PROP_UINT, .min = 0, .max = 2048, .def = "3" },
    { .name = "queues", .type = QNIC_PROP_UINT, .min = 1 },
    { .name = "delta", .type = QNIC_PROP_INT, .min = -10, .max = 10 },
    { .name = "any", .type = QNIC_PROP_INT },
    { .name = "sndbuf", .type = QNIC_PROP_SIZE },
    { .name = "mac", .type = QNIC_PROP_MAC },
    { .name = "tx", .type = QNIC_PROP_ENUM, .enum_values = tx_values, .def = "bh" },
    { .name = "rss", .type = QNIC_PROP_ONOFFAUTO, .def = "auto" },
    { .name = "hostfwd", .type = QNIC_PROP_STR, .repeat = true },
    { .name = NULL },
};

static const QnicSchemaType test_type = {
    .kind = QNIC_SCHEMA_NETDEV, .name = "testdev", .help = "a test type", .props = test_props,
};

/* Parse as -netdev and check against test_type; returns opts or NULL + message. */
static QnicOpts *check(const char *s, char **msg)
{
    GError *err = NULL;
    QnicOpts *o = qnic_opts_parse("netdev", s, "type", &err);

    g_assert_no_error(err);
    if (!qnic_schema_check(o, &test_type, &err)) {
        g_assert_error(err, QNIC_ERROR, QNIC_ERROR_INVALID);
        *msg = g_strdup(err->message);
        g_error_free(err);
        qnic_opts_free(o);
        return NULL;
    }
    g_assert_true(o->schema == &test_type);
    *msg = NULL;
    return o;
}

static void assert_ok(const char *s)
{
    char *msg = NULL;
    QnicOpts *o = check(s, &msg);

    if (!o) {
        g_error("'%s' was rejected: %s", s, msg);
    }
    qnic_opts_free(o);
}

static void assert_fails(const char *s, const char *expect)
{
    char *msg = NULL;
    QnicOpts *o = check(s, &msg);

    if (o) {
        g_error("'%s' was accepted", s);
    }
    if (!strstr(msg, expect)) {
        g_error("'%s': message '%s' lacks '%s'", s, msg, expect);
    }
    g_free(msg);
}

static void test_normalize_and_defaults(void)
{
    char *msg;
    g_autoptr(QnicOpts) o = check("testdev,id=a,mq=yes,csum=false,vectors=0x10,queues=2,"
                                  "delta=-0x3,sndbuf=1M,mac=52-54-00-AB-CD-EF,tx=timer,rss=true", &msg);

    g_assert_nonnull(o);
    g_assert_cmpstr(qnic_opts_get(o, "type"), ==, "testdev");
    g_assert_cmpstr(qnic_opts_get(o, "mq"), ==, "on");
    g_assert_cmpstr(qnic_opts_get(o, "csum"), ==, "off");
    g_assert_cmpstr(qnic_opts_get(o, "vectors"), ==, "16");
    g_assert_cmpstr(qnic_opts_get(o, "delta"), ==, "-3");
    g_assert_cmpstr(qnic_opts_get(o, "sndbuf"), ==, "1048576");
    g_assert_cmpstr(qnic_opts_get(o, "mac"), ==, "52:54:00:ab:cd:ef");
    g_assert_cmpstr(qnic_opts_get(o, "tx"), ==, "timer");
    g_assert_cmpstr(qnic_opts_get(o, "rss"), ==, "on");
    g_assert_true(qnic_opts_get_bool(o, "mq", false));
    g_assert_cmpuint(qnic_opts_get_uint(o, "sndbuf", 0), ==, 1 << 20);
    g_assert_cmpint(qnic_opts_get_onoffauto(o, "rss", -1), ==, 1);

    g_autoptr(QnicOpts) d = check("testdev,id=b", &msg);
    g_assert_nonnull(d);
    g_assert_cmpstr(qnic_opts_get(d, "mq"), ==, "off");
    g_assert_cmpstr(qnic_opts_get(d, "csum"), ==, "on");
    g_assert_cmpstr(qnic_opts_get(d, "vectors"), ==, "3");
    g_assert_cmpstr(qnic_opts_get(d, "tx"), ==, "bh");
    g_assert_cmpint(qnic_opts_get_onoffauto(d, "rss", 1), ==, -1);
    g_assert_false(qnic_opts_is_set(d, "mq"));
    g_assert_true(qnic_opts_is_set(d, "id"));
    g_assert_null(qnic_opts_get(d, "label"));      /* no default: absent */
    g_assert_null(qnic_opts_get(d, "hostfwd"));

    /* checking twice is idempotent: defaults are not duplicated */
    guint n = d->items->len;
    GError *err = NULL;
    g_assert_true(qnic_schema_check(d, &test_type, &err));
    g_assert_no_error(err);
    g_assert_cmpuint(d->items->len, ==, n);
}

static void test_bare_flags(void)
{
    char *msg;
    g_autoptr(QnicOpts) o = check("testdev,id=a,mq,nocsum", &msg);

    g_assert_nonnull(o);
    g_assert_cmpstr(qnic_opts_get(o, "mq"), ==, "on");
    g_assert_cmpstr(qnic_opts_get(o, "csum"), ==, "off");
    g_assert_null(qnic_opts_get(o, "nocsum"));
    /* "no" + a non-boolean is not a negation */
    assert_fails("testdev,id=a,nolabel", "Invalid parameter 'nolabel'");
    /* a bare non-boolean key means "on", which is not a number */
    assert_fails("testdev,id=a,queues", "Parameter 'queues' expects a number");
    /* an unknown bare key */
    assert_fails("testdev,id=a,bogus", "Invalid parameter 'bogus'");
}

static void test_errors(void)
{
    assert_fails("testdev", "Parameter 'id' is missing");
    assert_fails("testdev,mq=on", "Parameter 'id' is missing");
    assert_fails("testdev,id=a,foo=1", "Invalid parameter 'foo'");
    assert_fails("testdev,id=1a", "Parameter 'id' expects an identifier");
    assert_fails("testdev,id=a b", "Parameter 'id' expects an identifier");
    assert_fails("testdev,id=", "Parameter 'id' expects an identifier");
    assert_fails("testdev,id=a,mq=maybe", "Parameter 'mq' expects 'on' or 'off'");
    assert_fails("testdev,id=a,vectors=x", "Parameter 'vectors' expects a number");
    assert_fails("testdev,id=a,vectors=-1", "Parameter 'vectors' expects a number");
    assert_fails("testdev,id=a,vectors=2049", "Parameter 'vectors' expects a value between 0 and 2048");
    assert_fails("testdev,id=a,queues=0", "Parameter 'queues' expects a value of at least 1");
    assert_fails("testdev,id=a,delta=11", "between -10 and 10");
    assert_fails("testdev,id=a,delta=-11", "between -10 and 10");
    assert_fails("testdev,id=a,delta=x", "Parameter 'delta' expects a number");
    assert_fails("testdev,id=a,sndbuf=1Q", "Parameter 'sndbuf' expects a size value");
    assert_fails("testdev,id=a,mac=zz", "Parameter 'mac' expects a MAC address");
    assert_fails("testdev,id=a,tx=foo", "Parameter 'tx' does not accept value 'foo'");
    assert_fails("testdev,id=a,rss=maybe", "Parameter 'rss' expects 'on', 'off' or 'auto'");
    assert_fails("testdev,id=a,mq=on,mq=off", "Parameter 'mq' is given more than once");
    assert_fails("testdev,id=a,id=b", "Parameter 'id' is given more than once");
    assert_fails("testdev,id=a,help", "Invalid parameter 'help'");
}

static void test_accepts(void)
{
    assert_ok("testdev,id=a.b-c_d");
    assert_ok("id=a,type=testdev");
    assert_ok("testdev,id=a,vectors=2048,");      /* trailing comma */
    assert_ok("testdev,id=a,mac=52:54:00:12:34:56,sndbuf=0x1000,tx=bh,rss=auto");
}

static void test_repeat(void)
{
    char *msg;
    g_autoptr(QnicOpts) o = check("testdev,id=a,hostfwd=tcp::1-:2,hostfwd=udp::3-:4", &msg);
    const char **l;

    g_assert_nonnull(o);
    l = qnic_opts_get_list(o, "hostfwd");
    g_assert_cmpstr(l[0], ==, "tcp::1-:2");
    g_assert_cmpstr(l[1], ==, "udp::3-:4");
    g_assert_null(l[2]);
    g_free(l);
    assert_ok("testdev,id=a,any=-9223372036854775808");
    assert_ok("testdev,id=a,any=9223372036854775807");
}

/* The four virtio-net models share one declaration of each property and
 * its feature bit (qapi/device-virtio.json's virtio-net-common), and keep
 * listing their options in name order after the generic ones. */
static void test_virtio_net_features(void)
{
    static const char *const models[] = {
        "virtio-net-pci", "virtio-net-pci-transitional", "virtio-net-pci-non-transitional",
        "virtio-net-device",
    };

    for (size_t i = 0; i < G_N_ELEMENTS(models); i++) {
        const QnicSchemaType *t = qnic_schema_lookup(QNIC_SCHEMA_DEVICE, models[i]);
        const QnicPropDesc *csum, *mq, *tx, *prev = NULL;
        unsigned features = 0;

        g_assert_nonnull(t);
        csum = qnic_schema_prop(t, "csum");
        mq = qnic_schema_prop(t, "mq");
        tx = qnic_schema_prop(t, "tx");
        g_assert_true(csum->has_feature);
        g_assert_cmpuint(csum->feature, ==, VIRTIO_NET_F_CSUM);
        g_assert_true(mq->has_feature);
        g_assert_cmpuint(mq->feature, ==, VIRTIO_NET_F_MQ);
        g_assert_false(tx->has_feature);
        for (const QnicPropDesc *p = t->props; p->name; p++) {
            features += p->has_feature;
            g_assert_true(!p->has_feature || p->type == QNIC_PROP_BOOL);
            /* from any_layout on, name order (the generic options come first) */
            if (prev && strcmp(models[i], "virtio-net-device") != 0) {
                g_assert_cmpint(strcmp(prev->name, p->name), <, 0);
            }
            if (prev || !strcmp(p->name, "any_layout")) {
                prev = p;
            }
        }
        g_assert_cmpuint(features, ==, 29);
    }
}

static void test_real_schema(void)
{
    const QnicSchemaType *tap = qnic_schema_lookup(QNIC_SCHEMA_NETDEV, "tap");
    const QnicSchemaType *user = qnic_schema_lookup(QNIC_SCHEMA_NETDEV, "user");
    const QnicSchemaType *dump = qnic_schema_lookup(QNIC_SCHEMA_OBJECT, "filter-dump");
    GError *err = NULL;
    QnicOpts *o;

    g_assert_nonnull(tap);
    g_assert_nonnull(user);
    g_assert_nonnull(dump);
    g_assert_null(qnic_schema_lookup(QNIC_SCHEMA_NETDEV, "bogus"));
    g_assert_null(qnic_schema_lookup(QNIC_SCHEMA_DEVICE, "tap"));   /* kinds are separate */
    g_assert_null(qnic_schema_lookup(QNIC_SCHEMA_NETDEV, NULL));
    g_assert_null(qnic_schema_lookup(QNIC_SCHEMA_NETDEV, "netdev-common"));  /* bases are not types */

    /* every netdev inherits a required id from netdev-common */
    for (size_t i = 0; qnic_schema_types[i]; i++) {
        const QnicSchemaType *t = qnic_schema_types[i];
        if (t->kind == QNIC_SCHEMA_NETDEV || t->kind == QNIC_SCHEMA_OBJECT) {
            const QnicPropDesc *id = qnic_schema_prop(t, "id");
            g_assert_nonnull(id);
            g_assert_true(id->required);
        }
        for (const QnicPropDesc *p = t->props; p->name; p++) {
            if (p->type == QNIC_PROP_ENUM) {
                g_assert_nonnull(p->enum_values);
                g_assert_nonnull(p->enum_values[0]);
            }
        }
    }

    o = qnic_opts_parse("netdev", "tap,id=n0,queues=x", "type", &err);
    g_assert_false(qnic_schema_check(o, tap, &err));
    g_assert_cmpstr(err->message, ==, "Parameter 'queues' expects a number");
    g_clear_error(&err);
    qnic_opts_free(o);

    o = qnic_opts_parse("netdev", "user,id=u,hostfwd=tcp::2222-:22,hostfwd=udp::1-:2,restrict", "type", &err);
    g_assert_true(qnic_schema_check(o, user, &err));
    g_assert_no_error(err);
    g_assert_true(qnic_opts_get_bool(o, "restrict", false));
    qnic_opts_free(o);

    o = qnic_opts_parse("object", "filter-dump,id=f,netdev=n,file=/tmp/x.pcap", "qom-type", &err);
    g_assert_true(qnic_schema_check(o, dump, &err));
    g_assert_cmpuint(qnic_opts_get_uint(o, "maxlen", 0), ==, 65536);
    g_assert_cmpstr(qnic_opts_get(o, "queue"), ==, "all");
    qnic_opts_free(o);

    /* stream uses QEMU's dotted keys */
    const QnicSchemaType *stream = qnic_schema_lookup(QNIC_SCHEMA_NETDEV, "stream");
    g_assert_nonnull(stream);
    o = qnic_opts_parse("netdev", "stream,id=s,server=on,addr.type=inet,addr.host=127.0.0.1,addr.port=1234",
                        "type", &err);
    g_assert_true(qnic_schema_check(o, stream, &err));
    g_assert_cmpstr(qnic_opts_get(o, "addr.type"), ==, "inet");
    qnic_opts_free(o);
}

typedef void (*PrintFn)(const void *arg, FILE *f);

static char *capture(PrintFn fn, const void *arg)
{
    FILE *f = tmpfile();
    GString *out = g_string_new(NULL);
    char chunk[4096];
    size_t n;

    g_assert_nonnull(f);
    fn(arg, f);
    rewind(f);
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        g_string_append_len(out, chunk, (gssize)n);
    }
    fclose(f);
    return g_string_free(out, FALSE);
}

static void print_type_cb(const void *t, FILE *f) { qnic_schema_print_type(t, f); }
static void print_netdevs_cb(const void *unused, FILE *f) { qnic_schema_print_list(QNIC_SCHEMA_NETDEV, f); }
static void print_devices_cb(const void *unused, FILE *f) { qnic_schema_print_list(QNIC_SCHEMA_DEVICE, f); }
static void print_objects_cb(const void *unused, FILE *f) { qnic_schema_print_list(QNIC_SCHEMA_OBJECT, f); }

static void test_help(void)
{
    char *s = capture(print_type_cb, &test_type);

    g_assert_true(g_str_has_prefix(s, "testdev options:\n"));
    g_assert_nonnull(strstr(s, "  mq=<bool>              - multiqueue (default: off)\n"));
    g_assert_nonnull(strstr(s, "  vectors=<uint16>       -  (default: 3)\n"));
    g_assert_nonnull(strstr(s, "  label=<str>\n"));
    g_assert_nonnull(strstr(s, "tx=<enum>"));
    g_assert_nonnull(strstr(s, "(timer/bh)"));
    g_assert_nonnull(strstr(s, "(may be repeated)"));
    /* sorted by name: "any" before "csum" before "vectors" */
    g_assert_true(strstr(s, "  any=") < strstr(s, "  csum="));
    g_assert_true(strstr(s, "  csum=") < strstr(s, "  vectors="));
    g_free(s);

    s = capture(print_netdevs_cb, NULL);
    g_assert_true(g_str_has_prefix(s, "Available netdev backend types:\n"));
    g_assert_nonnull(strstr(s, "\ntap\n"));
    g_assert_nonnull(strstr(s, "\nuser\n"));
    g_free(s);

    s = capture(print_objects_cb, NULL);
    g_assert_nonnull(strstr(s, "  filter-dump\n"));
    g_free(s);

    s = capture(print_devices_cb, NULL);
    if (qnic_schema_lookup(QNIC_SCHEMA_DEVICE, "e1000")) {
        g_assert_nonnull(strstr(s, "Network devices:\n"));
        g_assert_nonnull(strstr(s, "name \"e1000\", bus PCI"));
    }
    g_free(s);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/schema/normalize-and-defaults", test_normalize_and_defaults);
    g_test_add_func("/schema/bare-flags", test_bare_flags);
    g_test_add_func("/schema/errors", test_errors);
    g_test_add_func("/schema/accepts", test_accepts);
    g_test_add_func("/schema/repeat", test_repeat);
    g_test_add_func("/schema/real-schema", test_real_schema);
    g_test_add_func("/schema/virtio-net-features", test_virtio_net_features);
    g_test_add_func("/schema/help", test_help);
    return g_test_run();
}
