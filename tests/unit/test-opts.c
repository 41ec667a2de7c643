/*
 * Unit tests of the option lexer and value parsers (util/opts.c): QEMU's
 * implied first key, ",," escapes, bare flags, repeated keys, booleans,
 * numbers, sizes and MACs, and every error path of the parsers.
 */
#include "qnic/opts.h"

static QnicOpts *parse_ok(const char *group, const char *s, const char *implied)
{
    GError *err = NULL;
    QnicOpts *o = qnic_opts_parse(group, s, implied, &err);

    g_assert_no_error(err);
    g_assert_nonnull(o);
    return o;
}

static void test_implied_key(void)
{
    g_autoptr(QnicOpts) o = parse_ok("netdev", "tap,id=n0,queues=4", "type");

    g_assert_cmpstr(o->group, ==, "netdev");
    g_assert_cmpstr(o->source, ==, "tap,id=n0,queues=4");
    g_assert_cmpuint(o->items->len, ==, 3);
    g_assert_cmpstr(qnic_opts_get(o, "type"), ==, "tap");
    g_assert_cmpstr(qnic_opts_get(o, "id"), ==, "n0");
    g_assert_cmpstr(qnic_opts_get(o, "queues"), ==, "4");
    g_assert_null(qnic_opts_get(o, "ifname"));

    /* implied key only applies to the first element */
    g_autoptr(QnicOpts) o2 = parse_ok("netdev", "id=a,user", "type");
    g_assert_null(qnic_opts_get(o2, "type"));
    g_assert_cmpstr(qnic_opts_get(o2, "user"), ==, "on");
    g_assert_true(((QnicOpt *)g_ptr_array_index(o2->items, 1))->bare);

    /* explicit type= works too */
    g_autoptr(QnicOpts) o3 = parse_ok("netdev", "type=user,id=a", "type");
    g_assert_cmpstr(qnic_opts_get(o3, "type"), ==, "user");

    /* no implied key: a bare first element is a flag */
    g_autoptr(QnicOpts) o4 = parse_ok("x", "verbose,a=b", NULL);
    g_assert_cmpstr(qnic_opts_get(o4, "verbose"), ==, "on");
}

static void test_escapes(void)
{
    g_autoptr(QnicOpts) o = parse_ok("netdev", "user,id=a,guestfwd=tcp:10.0.2.1:1-cmd:a,,b,,,,c,smb=/x",
                                     "type");
    g_assert_cmpstr(qnic_opts_get(o, "guestfwd"), ==, "tcp:10.0.2.1:1-cmd:a,b,,c");
    g_assert_cmpstr(qnic_opts_get(o, "smb"), ==, "/x");

    g_autoptr(QnicOpts) o2 = parse_ok("device", "a,,b,id=x", "driver");
    g_assert_cmpstr(qnic_opts_get(o2, "driver"), ==, "a,b");

    /* ",,," is an escaped comma followed by a separator */
    g_autoptr(QnicOpts) o3 = parse_ok("netdev", "tap,script=a,,,id=b", "type");
    g_assert_cmpstr(qnic_opts_get(o3, "script"), ==, "a,");
    g_assert_cmpstr(qnic_opts_get(o3, "id"), ==, "b");

    /* '=' inside a value is kept */
    g_autoptr(QnicOpts) o4 = parse_ok("x", "k=a=b", NULL);
    g_assert_cmpstr(qnic_opts_get(o4, "k"), ==, "a=b");

    /* empty value is allowed */
    g_autoptr(QnicOpts) o5 = parse_ok("x", "k=", NULL);
    g_assert_cmpstr(qnic_opts_get(o5, "k"), ==, "");
}

static void test_trailing_and_empty(void)
{
    GError *err = NULL;
    QnicOpts *o;

    o = parse_ok("netdev", "user,id=a,", "type");
    g_assert_cmpuint(o->items->len, ==, 2);
    qnic_opts_free(o);

    o = parse_ok("netdev", "", "type");
    g_assert_cmpuint(o->items->len, ==, 0);
    qnic_opts_free(o);

    o = qnic_opts_parse("netdev", "user,id=a,=x", "type", &err);
    g_assert_null(o);
    g_assert_error(err, QNIC_ERROR, QNIC_ERROR_INVALID);
    g_assert_cmpstr(err->message, ==, "Invalid parameter ''");
    g_clear_error(&err);

    o = qnic_opts_parse("netdev", ",id=a", "type", &err);
    g_assert_null(o);
    g_assert_cmpstr(err->message, ==, "Invalid parameter ''");
    g_clear_error(&err);

    /* a NULL errp must not crash on the error path */
    g_assert_null(qnic_opts_parse("netdev", "=", "type", NULL));
}

static void test_repeat_and_list(void)
{
    g_autoptr(QnicOpts) o = parse_ok("netdev", "user,id=a,hostfwd=tcp::1-:2,net=10.0.0.0/8,"
                                     "hostfwd=udp::3-:4", "type");
    const char **l = qnic_opts_get_list(o, "hostfwd");

    g_assert_nonnull(l);
    g_assert_cmpstr(l[0], ==, "tcp::1-:2");
    g_assert_cmpstr(l[1], ==, "udp::3-:4");
    g_assert_null(l[2]);
    g_free(l);
    g_assert_cmpstr(qnic_opts_get(o, "hostfwd"), ==, "udp::3-:4");

    l = qnic_opts_get_list(o, "none");
    g_assert_null(l[0]);
    g_free(l);
}

static void test_set_append_remove_copy(void)
{
    g_autoptr(QnicOpts) o = parse_ok("device", "e1000,mac=1,x=1,mac=2", "driver");
    QnicOpts *c;

    qnic_opts_set(o, "mac", "3");
    g_assert_cmpuint(o->items->len, ==, 3);
    g_assert_cmpstr(qnic_opts_get(o, "mac"), ==, "3");
    /* the replacement keeps the first position */
    g_assert_cmpstr(((QnicOpt *)g_ptr_array_index(o->items, 1))->key, ==, "mac");
    qnic_opts_set(o, "new", "v");
    g_assert_cmpstr(qnic_opts_get(o, "new"), ==, "v");
    qnic_opts_append(o, "new", "w");
    g_assert_cmpstr(qnic_opts_get(o, "new"), ==, "w");
    g_assert_true(qnic_opts_is_set(o, "new"));
    qnic_opts_remove(o, "new");
    g_assert_null(qnic_opts_get(o, "new"));
    g_assert_false(qnic_opts_is_set(o, "new"));

    c = qnic_opts_copy(o);
    g_assert_cmpstr(c->group, ==, "device");
    g_assert_cmpstr(c->source, ==, o->source);
    g_assert_cmpuint(c->items->len, ==, o->items->len);
    qnic_opts_set(c, "x", "changed");
    g_assert_cmpstr(qnic_opts_get(o, "x"), ==, "1");
    qnic_opts_free(c);
    qnic_opts_free(NULL);
    g_assert_null(qnic_opts_copy(NULL));
}

static void test_help(void)
{
    const char *yes[] = { "help", "?", "virtio-net-pci,help", "e1000,?", "e1000,mac=x,help" };
    const char *no[] = { "e1000", "e1000,id=help", "e1000,romfile=?" };

    for (size_t i = 0; i < G_N_ELEMENTS(yes); i++) {
        g_autoptr(QnicOpts) o = parse_ok("device", yes[i], "driver");
        g_assert_true(qnic_opts_has_help(o));
    }
    for (size_t i = 0; i < G_N_ELEMENTS(no); i++) {
        g_autoptr(QnicOpts) o = parse_ok("device", no[i], "driver");
        g_assert_false(qnic_opts_has_help(o));
    }
}

static void test_bool(void)
{
    const char *t[] = { "on", "yes", "true", "y" }, *f[] = { "off", "no", "false", "n" };
    const char *bad[] = { "", "ON", "1", "0", "maybe", "onn", "of" };
    bool b;
    GError *err = NULL;

    for (size_t i = 0; i < G_N_ELEMENTS(t); i++) {
        b = false;
        g_assert_true(qnic_parse_bool(t[i], &b, NULL));
        g_assert_true(b);
        g_assert_true(qnic_parse_bool(f[i], &b, NULL));
        g_assert_false(b);
    }
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_assert_false(qnic_parse_bool(bad[i], &b, &err));
        g_assert_error(err, QNIC_ERROR, QNIC_ERROR_INVALID);
        g_assert_nonnull(strstr(err->message, "not a boolean"));
        g_clear_error(&err);
    }
}

static void test_numbers(void)
{
    uint64_t u;
    int64_t i;
    GError *err = NULL;
    const char *ubad[] = { "", "x", "-1", "+1", "1x", "0x", "18446744073709551616", "1 ", " " };
    const char *ibad[] = { "", "x", "--1", "1.5", "9223372036854775808", "-" };

    g_assert_true(qnic_parse_uint("0", &u, NULL)); g_assert_cmpuint(u, ==, 0);
    g_assert_true(qnic_parse_uint("4096", &u, NULL)); g_assert_cmpuint(u, ==, 4096);
    g_assert_true(qnic_parse_uint("0x10", &u, NULL)); g_assert_cmpuint(u, ==, 16);
    g_assert_true(qnic_parse_uint("010", &u, NULL)); g_assert_cmpuint(u, ==, 8);
    g_assert_true(qnic_parse_uint("18446744073709551615", &u, NULL));
    g_assert_cmpuint(u, ==, UINT64_MAX);
    for (size_t k = 0; k < G_N_ELEMENTS(ubad); k++) {
        g_assert_false(qnic_parse_uint(ubad[k], &u, &err));
        g_assert_error(err, QNIC_ERROR, QNIC_ERROR_INVALID);
        g_clear_error(&err);
    }
    g_assert_true(qnic_parse_int("-5", &i, NULL)); g_assert_cmpint(i, ==, -5);
    g_assert_true(qnic_parse_int("+7", &i, NULL)); g_assert_cmpint(i, ==, 7);
    g_assert_true(qnic_parse_int("-0x10", &i, NULL)); g_assert_cmpint(i, ==, -16);
    g_assert_true(qnic_parse_int("-9223372036854775808", &i, NULL));
    g_assert_cmpint(i, ==, INT64_MIN);
    for (size_t k = 0; k < G_N_ELEMENTS(ibad); k++) {
        g_assert_false(qnic_parse_int(ibad[k], &i, &err));
        g_assert_error(err, QNIC_ERROR, QNIC_ERROR_INVALID);
        g_clear_error(&err);
    }
}

static void test_sizes(void)
{
    static const struct { const char *s; uint64_t v; } good[] = {
        { "0", 0 }, { "512", 512 }, { "1k", 1024 }, { "1K", 1024 }, { "2M", 2 << 20 },
        { "256M", 256ull << 20 }, { "1G", 1ull << 30 }, { "3T", 3ull << 40 },
        { "1P", 1ull << 50 }, { "1E", 1ull << 60 }, { "10B", 10 }, { "1.5G", 3ull << 29 },
        { "0x1000", 4096 }, { "15E", 15ull << 60 },
    };
    const char *bad[] = { "", "k", "1Q", "1kk", "-1", "1.5", "1.k", "16E", "99999999999999999999",
                          "0x", "0x10k", " 1", "1 k" };
    uint64_t v;
    GError *err = NULL;

    for (size_t k = 0; k < G_N_ELEMENTS(good); k++) {
        g_assert_true(qnic_parse_size(good[k].s, &v, NULL));
        g_assert_cmpuint(v, ==, good[k].v);
    }
    for (size_t k = 0; k < G_N_ELEMENTS(bad); k++) {
        if (qnic_parse_size(bad[k], &v, &err)) {
            g_error("size '%s' was accepted as %" G_GUINT64_FORMAT, bad[k], v);
        }
        g_assert_error(err, QNIC_ERROR, QNIC_ERROR_INVALID);
        g_clear_error(&err);
    }
}

static void test_mac(void)
{
    uint8_t mac[6] = { 0 }, expect[6] = { 0x52, 0x54, 0x00, 0xab, 0xCD, 0x0f };
    const char *bad[] = { "", "zz", "52:54:00:ab:cd", "52:54:00:ab:cd:0f:00", "52:54:00:ab:cd:0",
                          "52:54:00:ab:cd:0g", "525400abcd0f", "52:54:00:ab:cd:0f:", "52.54.00.ab.cd.0f" };
    GError *err = NULL;
    char *s;

    g_assert_true(qnic_parse_mac("52:54:00:AB:cd:0f", mac, NULL));
    g_assert_cmpmem(mac, 6, expect, 6);
    memset(mac, 0, 6);
    g_assert_true(qnic_parse_mac("52-54-00-ab-cd-0f", mac, NULL));
    g_assert_cmpmem(mac, 6, expect, 6);
    s = qnic_format_mac(mac);
    g_assert_cmpstr(s, ==, "52:54:00:ab:cd:0f");
    g_free(s);
    for (size_t k = 0; k < G_N_ELEMENTS(bad); k++) {
        uint8_t keep[6] = { 1, 2, 3, 4, 5, 6 };
        memcpy(mac, keep, 6);
        g_assert_false(qnic_parse_mac(bad[k], mac, &err));
        g_assert_error(err, QNIC_ERROR, QNIC_ERROR_INVALID);
        g_clear_error(&err);
        g_assert_cmpmem(mac, 6, keep, 6);   /* untouched on error */
    }
}

static void test_typed_getters(void)
{
    g_autoptr(QnicOpts) o = parse_ok("x", "b=on,nb=off,u=0x20,i=-3,bad=zz,a=auto", NULL);

    g_assert_true(qnic_opts_get_bool(o, "b", false));
    g_assert_false(qnic_opts_get_bool(o, "nb", true));
    g_assert_true(qnic_opts_get_bool(o, "missing", true));
    g_assert_false(qnic_opts_get_bool(o, "bad", false));
    g_assert_cmpuint(qnic_opts_get_uint(o, "u", 1), ==, 32);
    g_assert_cmpuint(qnic_opts_get_uint(o, "bad", 7), ==, 7);
    g_assert_cmpint(qnic_opts_get_int(o, "i", 0), ==, -3);
    g_assert_cmpint(qnic_opts_get_int(o, "missing", 9), ==, 9);
    g_assert_cmpint(qnic_opts_get_onoffauto(o, "a", 0), ==, -1);
    g_assert_cmpint(qnic_opts_get_onoffauto(o, "b", -1), ==, 1);
    g_assert_cmpint(qnic_opts_get_onoffauto(o, "nb", -1), ==, 0);
    g_assert_cmpint(qnic_opts_get_onoffauto(o, "bad", 1), ==, 1);
}

static void test_errors(void)
{
    GError *err = NULL;

    g_set_error(&err, QNIC_ERROR, QNIC_ERROR_INVALID, "Parameter 'queues' expects a number");
    qnic_error_prefix(&err, "-netdev %s: ", "tap,queues=x");
    g_assert_cmpstr(err->message, ==, "-netdev tap,queues=x: Parameter 'queues' expects a number");
    g_assert_error(err, QNIC_ERROR, QNIC_ERROR_INVALID);
    g_clear_error(&err);
    qnic_error_prefix(&err, "nothing to prefix");
    g_assert_null(err);
    qnic_error_prefix(NULL, "x");

    qnic_error_setg_errno(&err, ENOENT, "Cannot open '%s'", "/nope");
    g_assert_error(err, QNIC_ERROR, QNIC_ERROR_IO);
    g_assert_cmpstr(err->message, ==, "Cannot open '/nope': No such file or directory");
    g_clear_error(&err);
    qnic_error_setg_errno(NULL, EIO, "ignored");
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/opts/implied-key", test_implied_key);
    g_test_add_func("/opts/escapes", test_escapes);
    g_test_add_func("/opts/trailing-and-empty", test_trailing_and_empty);
    g_test_add_func("/opts/repeat-and-list", test_repeat_and_list);
    g_test_add_func("/opts/set-append-remove-copy", test_set_append_remove_copy);
    g_test_add_func("/opts/help", test_help);
    g_test_add_func("/opts/parse-bool", test_bool);
    g_test_add_func("/opts/parse-numbers", test_numbers);
    g_test_add_func("/opts/parse-size", test_sizes);
    g_test_add_func("/opts/parse-mac", test_mac);
    g_test_add_func("/opts/typed-getters", test_typed_getters);
    g_test_add_func("/opts/errors", test_errors);
    return g_test_run();
}
