/*
 * qtest tests of the QMP monitor, written against QEMU 7.2 (the reference:
 * QTEST_QEMU_BINARY) and run unchanged against qnic-vmm: the greeting and
 * capabilities negotiation, "id" echo, the error classes and descriptions
 * for malformed and invalid input, query-version/-commands/-status, stop
 * and cont with their events, set_link as virtio-net, e1000 and rtl8139
 * guests see it, netdev_add/netdev_del, and quit. Every expected text and
 * register value below was read off QEMU 7.2 (Debian 7.2.22); where timing
 * matters, qnic steps its qtest clock and QEMU/TCG runs in real time.
 */
#include "libqtest.h"
#include "virtio-driver.h"
#include "e1000-driver.h"
#include "rtl8139-driver.h"

#include <linux/virtio_config.h>
#include <linux/virtio_net.h>
#include <linux/virtio_pci.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define F(b) (1ull << (b))

/* ---- helpers ---- */

/* QEMU: a HLT BIOS keeps the VM "running" without SeaBIOS touching the
 * devices; qnic (-accel qtest) is running from the start anyway. */
static QTestState *start(const char *extra)
{
    return qtest_initf(QTEST_FLAG_QMP | QTEST_FLAG_RUNNING, "%s", extra ? extra : "");
}

static QTestState *start_negotiated(const char *extra)
{
    QTestState *s = start(extra);
    qtest_qmp_negotiate(s);
    return s;
}

static JsonNode *json(const char *text)
{
    GError *err = NULL;
    JsonNode *n = json_from_string(text, &err);
    g_assert_no_error(err);
    g_assert_nonnull(n);
    return n;
}

static void show(const char *what, JsonNode *n)
{
    g_autofree char *t = qtest_qmp_to_string(n);
    g_test_message("%s: %s", what, t);
}

/* n (may be NULL) equals the JSON text, member order aside. */
static void assert_json_eq(JsonNode *n, const char *expected)
{
    g_autoptr(JsonNode) e = json(expected);
    if (!n || !json_node_equal(n, e)) {
        g_autofree char *t = qtest_qmp_to_string(n);
        g_test_message("got %s, expected %s", t, expected);
        g_assert_not_reached();
    }
}

static bool has_member(JsonNode *n, const char *name)
{
    return n && JSON_NODE_HOLDS_OBJECT(n) &&
           json_object_has_member(json_node_get_object(n), name);
}

static unsigned n_members(JsonNode *n)
{
    g_assert_true(n && JSON_NODE_HOLDS_OBJECT(n));
    return json_object_get_size(json_node_get_object(n));
}

static bool is_type(JsonNode *n, GType t)
{
    return n && JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == t;
}

/* r is {"error": {"class": cls, "desc": desc}} (+ "id" if id_json); a
 * desc ending in '*' is compared as a prefix. Frees r. */
static void check_error_id(JsonNode *r, const char *cls, const char *desc, const char *id_json)
{
    JsonNode *err = qtest_qmp_get(r, "error");
    const char *d = qtest_qmp_error_desc(r);
    bool ok = err && JSON_NODE_HOLDS_OBJECT(err) && n_members(err) == 2 &&
              !has_member(r, "return") && n_members(r) == (id_json ? 2u : 1u) &&
              g_strcmp0(qtest_qmp_error_class(r), cls) == 0 && d;

    if (ok && desc) {
        size_t l = strlen(desc);
        ok = desc[l - 1] == '*' ? strncmp(d, desc, l - 1) == 0 : g_str_equal(d, desc);
    }
    if (!ok) {
        show("reply", r);
        g_test_message("expected class %s desc '%s'%s%s", cls, desc ? desc : "(any)",
                       id_json ? " id " : "", id_json ? id_json : "");
        g_assert_not_reached();
    }
    if (id_json) {
        assert_json_eq(qtest_qmp_get(r, "id"), id_json);
    }
    json_node_unref(r);
}

static void check_error(JsonNode *r, const char *cls, const char *desc)
{
    check_error_id(r, cls, desc, NULL);
}

/* r is {"return": {}}. Frees r. */
static void check_empty_return(JsonNode *r)
{
    if (has_member(r, "error") || n_members(r) != 1) {
        show("reply", r);
    }
    g_assert_false(has_member(r, "error"));
    g_assert_cmpuint(n_members(r), ==, 1);
    assert_json_eq(qtest_qmp_return(r), "{}");
    json_node_unref(r);
}

/* The connection still answers a good command. */
static void check_usable(QTestState *s)
{
    JsonNode *r = qtest_qmp(s, "{\"execute\": \"query-version\"}");
    if (!qtest_qmp_return(r)) {
        show("query-version after bad input", r);
    }
    g_assert_nonnull(qtest_qmp_return(r));
    json_node_unref(r);
}

static void set_link(QTestState *s, const char *name, bool up)
{
    g_test_message("set_link %s %s", name, up ? "up" : "down");
    check_empty_return(qtest_qmp(s, "{\"execute\": \"set_link\", \"arguments\": "
                                    "{\"name\": \"%s\", \"up\": %s}}",
                                 name, up ? "true" : "false"));
}

/* An event's common shape: event name, timestamp {seconds, microseconds}
 * of the wall clock, and data only when there is some. */
static void check_event_shape(JsonNode *ev, const char *name, bool with_data)
{
    JsonNode *sec = qtest_qmp_get(ev, "timestamp.seconds");
    JsonNode *usec = qtest_qmp_get(ev, "timestamp.microseconds");
    gint64 now = g_get_real_time() / G_USEC_PER_SEC;

    show("event", ev);
    g_assert_cmpstr(json_node_get_string(qtest_qmp_get(ev, "event")), ==, name);
    g_assert_cmpuint(n_members(qtest_qmp_get(ev, "timestamp")), ==, 2);
    g_assert_true(is_type(sec, G_TYPE_INT64));
    g_assert_true(is_type(usec, G_TYPE_INT64));
    g_assert_cmpint(json_node_get_int(usec), >=, 0);
    g_assert_cmpint(json_node_get_int(usec), <, 1000000);
    g_assert_cmpint(json_node_get_int(sec), >, now - 600);
    g_assert_cmpint(json_node_get_int(sec), <=, now + 1);
    g_assert_cmpuint(n_members(ev), ==, with_data ? 3u : 2u);
    g_assert_true(has_member(ev, "data") == with_data);
}

/* ---- greeting and negotiation ---- */

static void test_greeting(void)
{
    QTestState *s = start(NULL);
    JsonNode *g = qtest_qmp_greeting(s);
    JsonNode *caps, *r;

    show("greeting", g);
    g_assert_cmpuint(n_members(g), ==, 1);
    g_assert_cmpuint(n_members(qtest_qmp_get(g, "QMP")), ==, 2);
    g_assert_cmpuint(n_members(qtest_qmp_get(g, "QMP.version")), ==, 2);
    g_assert_cmpuint(n_members(qtest_qmp_get(g, "QMP.version.qemu")), ==, 3);
    g_assert_true(is_type(qtest_qmp_get(g, "QMP.version.qemu.major"), G_TYPE_INT64));
    g_assert_true(is_type(qtest_qmp_get(g, "QMP.version.qemu.minor"), G_TYPE_INT64));
    g_assert_true(is_type(qtest_qmp_get(g, "QMP.version.qemu.micro"), G_TYPE_INT64));
    g_assert_true(is_type(qtest_qmp_get(g, "QMP.version.package"), G_TYPE_STRING));
    caps = qtest_qmp_get(g, "QMP.capabilities");
    g_assert_true(caps && JSON_NODE_HOLDS_ARRAY(caps));
    for (guint i = 0; i < json_array_get_length(json_node_get_array(caps)); i++) {
        g_assert_true(is_type(json_array_get_element(json_node_get_array(caps), i),
                              G_TYPE_STRING));
    }

    /* Nothing but qmp_capabilities before negotiation. */
    check_error(qtest_qmp(s, "{\"execute\": \"query-status\"}"), "CommandNotFound",
                "Expecting capabilities negotiation with 'qmp_capabilities'");
    check_error(qtest_qmp(s, "{\"execute\": \"query-version\"}"), "CommandNotFound",
                "Expecting capabilities negotiation with 'qmp_capabilities'");
    check_error(qtest_qmp(s, "{\"execute\": \"nope\"}"), "CommandNotFound",
                "Expecting capabilities negotiation with 'qmp_capabilities'");
    check_empty_return(qtest_qmp(s, "{\"execute\": \"qmp_capabilities\"}"));
    check_error(qtest_qmp(s, "{\"execute\": \"qmp_capabilities\"}"), "CommandNotFound",
                "Capabilities negotiation is already complete, command ignored");

    /* query-version tells what the greeting told. */
    r = qtest_qmp(s, "{\"execute\": \"query-version\"}");
    g_assert_true(json_node_equal(qtest_qmp_return(r), qtest_qmp_get(g, "QMP.version")));
    json_node_unref(r);
    qtest_quit(s);
}

static void test_negotiation_errors(void)
{
    QTestState *s = start(NULL);

    /* Input errors are reported before negotiation too, and leave it
     * pending. */
    check_error(qtest_qmp(s, "[1, 2]"), "GenericError", "QMP input must be a JSON object");
    check_error(qtest_qmp(s, "{\"execute\": }"), "GenericError", "JSON parse error, *");
    check_error(qtest_qmp(s, "{\"execute\": \"qmp_capabilities\", \"arguments\": {\"x\": 1}}"),
                "GenericError", "Parameter 'x' is unexpected");
    check_error_id(qtest_qmp(s, "{\"execute\": \"query-status\", \"id\": 3}"), "CommandNotFound",
                   "Expecting capabilities negotiation with 'qmp_capabilities'", "3");
    {
        JsonNode *r = qtest_qmp(s, "{\"execute\": \"qmp_capabilities\", \"id\": \"x1\"}");
        assert_json_eq(r, "{\"return\": {}, \"id\": \"x1\"}");
        json_node_unref(r);
    }
    check_error_id(qtest_qmp(s, "{\"execute\": \"qmp_capabilities\", \"id\": 7}"),
                   "CommandNotFound",
                   "Capabilities negotiation is already complete, command ignored", "7");
    check_usable(s);
    qtest_quit(s);
}

/* ---- "id" ---- */

static void test_id(void)
{
    static const char *const ids[] = { "\"abc\"", "42", "{\"a\": [1, \"x\"]}" };
    QTestState *s = start_negotiated(NULL);
    JsonNode *r;

    for (unsigned i = 0; i < G_N_ELEMENTS(ids); i++) {
        const char *id = ids[i];

        r = qtest_qmp(s, "{\"execute\": \"query-version\", \"id\": %s}", id);
        g_assert_nonnull(qtest_qmp_return(r));
        g_assert_cmpuint(n_members(r), ==, 2);
        assert_json_eq(qtest_qmp_get(r, "id"), id);
        json_node_unref(r);

        r = qtest_qmp(s, "{\"execute\": \"set_link\", \"arguments\": {\"name\": \"zz\", "
                         "\"up\": true}, \"id\": %s}", id);
        check_error_id(r, "DeviceNotFound", "Device 'zz' not found", id);
        check_error_id(qtest_qmp(s, "{\"id\": %s, \"execute\": \"nope\"}", id), "CommandNotFound",
                       "The command nope has not been found", id);
        check_error_id(qtest_qmp(s, "{\"execute\": \"set_link\", \"id\": %s}", id),
                       "GenericError", "Parameter 'name' is missing", id);
        /* even when the command itself is unusable */
        check_error_id(qtest_qmp(s, "{\"arguments\": {}, \"id\": %s}", id), "GenericError",
                       "QMP input lacks member 'execute'", id);
    }
    /* No id, no "id". */
    r = qtest_qmp(s, "{\"execute\": \"query-version\"}");
    g_assert_false(has_member(r, "id"));
    json_node_unref(r);
    check_error(qtest_qmp(s, "{\"execute\": \"nope\"}"), "CommandNotFound",
                "The command nope has not been found");
    qtest_quit(s);
}

/* ---- bad input ---- */

typedef struct BadInput {
    const char *text;
    const char *cls;
    const char *desc;       /* '*' at the end: prefix */
} BadInput;

/* QEMU 7.2's answers. The JSON parser's own wording is only checked up to
 * its prefix; the rest is QEMU's dispatcher and QAPI wording. */
static const BadInput bad_inputs[] = {
    { "{\"execute\": }\n", "GenericError", "JSON parse error, *" },
    { "{\"execute\": foo}\n", "GenericError", "JSON parse error, *" },
    { "{\"execute\": \"query-status\",}\n", "GenericError", "JSON parse error, *" },
    { "}\n", "GenericError", "JSON parse error, *" },
    { "[1, 2]\n", "GenericError", "QMP input must be a JSON object" },
    { "\"hello\"\n", "GenericError", "QMP input must be a JSON object" },
    { "42\n", "GenericError", "QMP input must be a JSON object" },
    { "{}\n", "GenericError", "QMP input lacks member 'execute'" },
    { "{\"arguments\": {}}\n", "GenericError", "QMP input lacks member 'execute'" },
    { "{\"foo\": 1}\n", "GenericError", "QMP input member 'foo' is unexpected" },
    { "{\"execute\": 1}\n", "GenericError", "QMP input member 'execute' must be a string" },
    { "{\"execute\": \"query-status\", \"arguments\": []}\n", "GenericError",
      "QMP input member 'arguments' must be an object" },
    { "{\"execute\": \"query-status\", \"extra\": 1}\n", "GenericError",
      "QMP input member 'extra' is unexpected" },
    { "{\"execute\": \"nope\"}\n", "CommandNotFound", "The command nope has not been found" },
    { "{\"execute\": \"query-status\", \"arguments\": {\"x\": 1}}\n", "GenericError",
      "Parameter 'x' is unexpected" },
    { "{\"execute\": \"set_link\", \"arguments\": {\"name\": \"nic0\"}}\n", "GenericError",
      "Parameter 'up' is missing" },
    { "{\"execute\": \"set_link\", \"arguments\": {\"up\": true}}\n", "GenericError",
      "Parameter 'name' is missing" },
    { "{\"execute\": \"set_link\"}\n", "GenericError", "Parameter 'name' is missing" },
    { "{\"execute\": \"set_link\", \"arguments\": {\"name\": \"nic0\", \"up\": \"yes\"}}\n",
      "GenericError", "Invalid parameter type for 'up', expected: boolean" },
    { "{\"execute\": \"set_link\", \"arguments\": {\"name\": \"nic0\", \"up\": 1}}\n",
      "GenericError", "Invalid parameter type for 'up', expected: boolean" },
    { "{\"execute\": \"set_link\", \"arguments\": {\"name\": 5, \"up\": true}}\n",
      "GenericError", "Invalid parameter type for 'name', expected: string" },
    { "{\"execute\": \"set_link\", \"arguments\": {\"name\": \"nic0\", \"up\": true, "
      "\"foo\": 1}}\n", "GenericError", "Parameter 'foo' is unexpected" },
    { "{\"execute\": \"netdev_del\", \"arguments\": {\"id\": 5}}\n", "GenericError",
      "Invalid parameter type for 'id', expected: string" },
    { "{\"execute\": \"stop\", \"arguments\": {\"a\": 1}}\n", "GenericError",
      "Parameter 'a' is unexpected" },
};

static void test_bad_input(void)
{
    QTestState *s = start_negotiated("-netdev user,id=n0 "
                                     "-device virtio-net-pci,netdev=n0,id=nic0,addr=4");
    JsonNode *r;

    for (unsigned i = 0; i < G_N_ELEMENTS(bad_inputs); i++) {
        g_test_message("input: %.*s", (int)strcspn(bad_inputs[i].text, "\n"), bad_inputs[i].text);
        check_error(qtest_qmp_raw(s, bad_inputs[i].text), bad_inputs[i].cls,
                    bad_inputs[i].desc);
        check_usable(s);
    }
    /* Two commands on one line: two replies, in order. */
    qtest_qmp_send_raw(s, "{\"execute\": \"query-version\", \"id\": 1} "
                          "{\"execute\": \"nope\", \"id\": 2}\n");
    r = qtest_qmp_receive(s, 10000);
    g_assert_nonnull(qtest_qmp_return(r));
    assert_json_eq(qtest_qmp_get(r, "id"), "1");
    json_node_unref(r);
    check_error_id(qtest_qmp_receive(s, 10000), "CommandNotFound",
                   "The command nope has not been found", "2");
    /* The VM went on running through all this. */
    r = qtest_qmp(s, "{\"execute\": \"query-status\"}");
    assert_json_eq(qtest_qmp_get(r, "return.status"), "\"running\"");
    json_node_unref(r);
    qtest_quit(s);
}

/* A line that leaves an object open is not an error by itself: the
 * stream parser keeps reading, so the next line lands inside the object,
 * and only the bracket that closes it gets an answer. */
static void test_unterminated(void)
{
    QTestState *s = start_negotiated(NULL);
    JsonNode *r;

    qtest_qmp_send_raw(s, "{\"execute\": \n");
    qtest_qmp_send_raw(s, "{\"execute\": \"query-status\"}\n");
    r = qtest_qmp_receive(s, 500);
    if (r) {
        show("unexpected reply", r);
    }
    g_assert_null(r);
    check_error(qtest_qmp_raw(s, "}\n"), "GenericError",
                "QMP input member 'execute' must be a string");
    check_usable(s);
    /* A value split over several writes is one command. */
    qtest_qmp_send_raw(s, "{\"execute\":");
    g_usleep(100000);
    qtest_qmp_send_raw(s, " \"query-version\", \"id\"");
    g_usleep(100000);
    r = qtest_qmp_raw(s, ": \"split\"}\n");
    g_assert_nonnull(qtest_qmp_return(r));
    assert_json_eq(qtest_qmp_get(r, "id"), "\"split\"");
    json_node_unref(r);
    qtest_quit(s);
}

/* ---- queries ---- */

static void test_query_version(void)
{
    QTestState *s = start_negotiated(NULL);
    JsonNode *r = qtest_qmp(s, "{\"execute\": \"query-version\"}");
    JsonNode *v = qtest_qmp_return(r);

    show("query-version", r);
    g_assert_cmpuint(n_members(r), ==, 1);
    g_assert_cmpuint(n_members(v), ==, 2);
    g_assert_cmpuint(n_members(qtest_qmp_get(v, "qemu")), ==, 3);
    g_assert_true(is_type(qtest_qmp_get(v, "qemu.major"), G_TYPE_INT64));
    g_assert_true(is_type(qtest_qmp_get(v, "qemu.minor"), G_TYPE_INT64));
    g_assert_true(is_type(qtest_qmp_get(v, "qemu.micro"), G_TYPE_INT64));
    g_assert_true(is_type(qtest_qmp_get(v, "package"), G_TYPE_STRING));
    json_node_unref(r);
    qtest_quit(s);
}

static void test_query_commands(void)
{
    static const char *const need[] = {
        "qmp_capabilities", "query-status", "set_link", "netdev_add", "netdev_del",
        "stop", "cont", "quit", "query-version", "query-commands",
    };
    QTestState *s = start_negotiated(NULL);
    JsonNode *r = qtest_qmp(s, "{\"execute\": \"query-commands\"}");
    JsonNode *ret = qtest_qmp_return(r);
    g_autoptr(GHashTable) names = g_hash_table_new(g_str_hash, g_str_equal);
    JsonArray *a;

    g_assert_true(ret && JSON_NODE_HOLDS_ARRAY(ret));
    a = json_node_get_array(ret);
    for (guint i = 0; i < json_array_get_length(a); i++) {
        JsonNode *e = json_array_get_element(a, i);
        JsonNode *name = qtest_qmp_get(e, "name");
        g_assert_cmpuint(n_members(e), ==, 1);
        g_assert_true(is_type(name, G_TYPE_STRING));
        /* each command once */
        g_assert_true(g_hash_table_add(names, (gpointer)json_node_get_string(name)));
    }
    for (unsigned i = 0; i < G_N_ELEMENTS(need); i++) {
        if (!g_hash_table_contains(names, need[i])) {
            g_test_message("query-commands lacks %s", need[i]);
            g_assert_not_reached();
        }
    }
    json_node_unref(r);
    qtest_quit(s);
}

/* ---- run state ---- */

static void check_status(QTestState *s, const char *status, bool running)
{
    JsonNode *r = qtest_qmp(s, "{\"execute\": \"query-status\"}");
    g_autofree char *want = g_strdup_printf("{\"status\": \"%s\", \"singlestep\": false, "
                                            "\"running\": %s}",
                                            status, running ? "true" : "false");
    assert_json_eq(qtest_qmp_return(r), want);
    json_node_unref(r);
}

static void test_run_state(void)
{
    QTestState *s = start_negotiated(NULL);
    JsonNode *ev;

    check_status(s, "running", true);

    check_empty_return(qtest_qmp(s, "{\"execute\": \"stop\"}"));
    ev = qtest_qmp_event(s, "STOP", 5000);
    g_assert_nonnull(ev);
    check_event_shape(ev, "STOP", false);
    json_node_unref(ev);
    check_status(s, "paused", false);

    /* stopping a stopped VM: success, no event */
    check_empty_return(qtest_qmp(s, "{\"execute\": \"stop\"}"));
    g_assert_null(qtest_qmp_event(s, "STOP", 300));
    check_status(s, "paused", false);

    check_empty_return(qtest_qmp(s, "{\"execute\": \"cont\"}"));
    ev = qtest_qmp_event(s, "RESUME", 5000);
    g_assert_nonnull(ev);
    check_event_shape(ev, "RESUME", false);
    json_node_unref(ev);
    check_status(s, "running", true);

    check_empty_return(qtest_qmp(s, "{\"execute\": \"cont\"}"));
    g_assert_null(qtest_qmp_event(s, "RESUME", 300));
    check_status(s, "running", true);

    /* once more round, with an id */
    {
        JsonNode *r = qtest_qmp(s, "{\"execute\": \"stop\", \"id\": \"s2\"}");
        assert_json_eq(r, "{\"return\": {}, \"id\": \"s2\"}");
        json_node_unref(r);
    }
    ev = qtest_qmp_event(s, "STOP", 5000);
    g_assert_nonnull(ev);
    json_node_unref(ev);
    g_assert_null(qtest_qmp_event(s, "RESUME", 0));
    qtest_quit(s);
}

/* ---- set_link ---- */

static const char *const unknown_link =
    "{\"execute\": \"set_link\", \"arguments\": {\"name\": \"zz\", \"up\": false}}";

static bool virtio_link(VDev *d)
{
    return vd_config_readw(d, offsetof(struct virtio_net_config, status)) & VIRTIO_NET_S_LINK_UP;
}

static void test_set_link_virtio(void)
{
    QTestState *s = start_negotiated("-netdev user,id=n0 "
                                     "-device virtio-net-pci,netdev=n0,id=nic0,addr=4");
    int devfn = vd_pci_find(s, 0x1000);
    VDev d;

    g_assert_cmpint(devfn, ==, 4 << 3);
    vd_pci_init(&d, s, devfn, VD_PCI_LEGACY);
    g_assert_true(vd_device_features(&d) & F(VIRTIO_NET_F_STATUS));
    g_assert_true(virtio_link(&d));
    g_assert_cmphex(vd_read_isr(&d), ==, 0);

    /* Before DRIVER_OK the status field follows, without a config
     * interrupt. */
    set_link(s, "nic0", false);
    g_assert_false(virtio_link(&d));
    g_assert_cmphex(vd_read_isr(&d), ==, 0);
    set_link(s, "nic0", true);
    g_assert_true(virtio_link(&d));
    g_assert_cmphex(vd_read_isr(&d), ==, 0);

    /* A live driver also gets a configuration change interrupt (ISR bit 1;
     * QEMU sets 0x3). */
    g_assert_true(vd_negotiate(&d, F(VIRTIO_NET_F_MAC) | F(VIRTIO_NET_F_STATUS)));
    vd_driver_ok(&d);
    vd_read_isr(&d);
    set_link(s, "nic0", false);
    g_assert_false(virtio_link(&d));
    g_assert_cmphex(vd_read_isr(&d) & VIRTIO_PCI_ISR_CONFIG, ==, VIRTIO_PCI_ISR_CONFIG);
    g_assert_cmphex(vd_read_isr(&d), ==, 0);        /* read to clear */
    set_link(s, "nic0", true);
    g_assert_true(virtio_link(&d));
    g_assert_cmphex(vd_read_isr(&d) & VIRTIO_PCI_ISR_CONFIG, ==, VIRTIO_PCI_ISR_CONFIG);
    /* no change, no interrupt */
    set_link(s, "nic0", true);
    g_assert_true(virtio_link(&d));
    g_assert_cmphex(vd_read_isr(&d), ==, 0);

    /* The backend's link change is passed to its NIC peer. */
    set_link(s, "n0", false);
    g_assert_false(virtio_link(&d));
    g_assert_cmphex(vd_read_isr(&d) & VIRTIO_PCI_ISR_CONFIG, ==, VIRTIO_PCI_ISR_CONFIG);
    set_link(s, "n0", true);
    g_assert_true(virtio_link(&d));
    g_assert_cmphex(vd_read_isr(&d) & VIRTIO_PCI_ISR_CONFIG, ==, VIRTIO_PCI_ISR_CONFIG);

    /* Last writer wins on the NIC: the backend's "up" raises a NIC that
     * was set down by itself, and the NIC's own "up" raises it while the
     * backend stays down. */
    set_link(s, "nic0", false);
    g_assert_false(virtio_link(&d));
    set_link(s, "n0", true);
    g_assert_true(virtio_link(&d));
    set_link(s, "n0", false);
    g_assert_false(virtio_link(&d));
    set_link(s, "nic0", true);
    g_assert_true(virtio_link(&d));

    check_error(qtest_qmp(s, "%s", unknown_link), "DeviceNotFound", "Device 'zz' not found");
    g_assert_true(virtio_link(&d));
    qtest_quit(s);
}

/* ---- e1000 ---- */

static bool e1k_lu(E1kDev *d)
{
    return e1kd_rd(d, E1000_STATUS) & E1000_STATUS_LU;
}

static uint16_t e1k_phy(E1kDev *d, unsigned reg)
{
    uint16_t v = 0;
    g_assert_false(e1kd_phy_read(d, reg, &v) & E1000_MDIC_ERROR);
    return v;
}

/* After a link down: STATUS.LU, the PHY's link and AN-complete bits and
 * the partner's ACK are all clear. */
static void e1k_check_down(E1kDev *d)
{
    g_assert_false(e1k_lu(d));
    g_assert_false(e1k_phy(d, E1000_PHY_STATUS) & E1000_MII_SR_LINK_STATUS);
    g_assert_false(e1k_phy(d, E1000_PHY_STATUS) & E1000_MII_SR_AN_COMPLETE);
    g_assert_false(e1k_phy(d, E1000_PHY_LP_ABILITY) & E1000_MII_LPAR_LPACK);
}

/* set_link up=true on a link whose auto-negotiation has not completed
 * (after a link down, or after reset): the link comes back 500 ms of
 * virtual time later, with LSC, AN complete and the partner's ACK.
 * QEMU/TCG has no clock_step, its virtual clock runs in real time. */
static void e1k_link_up_autoneg(QTestState *s, E1kDev *d, const char *name, bool was_up)
{
    gint64 t0 = g_get_monotonic_time();
    uint32_t st, icr;
    bool early;

    set_link(s, name, true);
    st = e1kd_rd(d, E1000_STATUS);
    icr = e1kd_rd(d, E1000_ICR);
    early = g_get_monotonic_time() - t0 < 400 * 1000;
    if (qtest_target_is_qemu()) {
        if (early) {
            g_assert_false(st & E1000_STATUS_LU);
            /* a link that was up drops now: that is a change */
            g_assert_cmphex(icr & E1000_ICR_LSC, ==, was_up ? E1000_ICR_LSC : 0);
            e1k_check_down(d);
        } else {
            g_test_message("slow host: %" G_GINT64_FORMAT " us before the first read",
                           g_get_monotonic_time() - t0);
        }
        g_assert_true(WAIT_FOR(e1k_lu(d), 3000));
    } else {
        g_assert_false(st & E1000_STATUS_LU);
        g_assert_cmphex(icr & E1000_ICR_LSC, ==, was_up ? E1000_ICR_LSC : 0);
        e1k_check_down(d);
        qtest_clock_step(s, 400 * 1000 * 1000);
        g_assert_false(e1k_lu(d));
        g_assert_false(e1kd_rd(d, E1000_ICR) & E1000_ICR_LSC);
        qtest_clock_step(s, 101 * 1000 * 1000);
        g_assert_true(e1k_lu(d));
    }
    g_assert_true(e1kd_rd(d, E1000_ICR) & E1000_ICR_LSC);
    g_assert_true(e1k_phy(d, E1000_PHY_STATUS) & E1000_MII_SR_LINK_STATUS);
    g_assert_true(e1k_phy(d, E1000_PHY_STATUS) & E1000_MII_SR_AN_COMPLETE);
    g_assert_true(e1k_phy(d, E1000_PHY_LP_ABILITY) & E1000_MII_LPAR_LPACK);
}

static void e1k_link_down(QTestState *s, E1kDev *d, const char *name)
{
    set_link(s, name, false);
    e1k_check_down(d);
    g_assert_true(e1kd_rd(d, E1000_ICR) & E1000_ICR_LSC);
}

static void test_set_link_e1000(void)
{
    QTestState *s = start_negotiated("-netdev user,id=n1 -device e1000,netdev=n1,id=e0,addr=4");
    E1kDev d;

    e1kd_init(&d, s);
    g_assert_cmpint(d.devfn, ==, 4 << 3);
    e1kd_rd(&d, E1000_ICR);
    g_assert_true(e1k_lu(&d));
    g_assert_true(e1k_phy(&d, E1000_PHY_STATUS) & E1000_MII_SR_LINK_STATUS);
    /* Out of reset the PHY shows no completed auto-negotiation ... */
    g_assert_false(e1k_phy(&d, E1000_PHY_STATUS) & E1000_MII_SR_AN_COMPLETE);
    g_assert_true(e1k_phy(&d, E1000_PHY_CTRL) & E1000_MII_CR_AN_ENABLE);

    /* ... so even "up" on the up link renegotiates: down now, up later. */
    e1k_link_up_autoneg(s, &d, "e0", true);
    /* With AN complete, "up" on an up link changes nothing. */
    set_link(s, "e0", true);
    g_assert_true(e1k_lu(&d));
    g_assert_false(e1kd_rd(&d, E1000_ICR) & E1000_ICR_LSC);

    e1k_link_down(s, &d, "e0");
    set_link(s, "e0", false);                   /* no change, no LSC */
    g_assert_false(e1k_lu(&d));
    g_assert_false(e1kd_rd(&d, E1000_ICR) & E1000_ICR_LSC);
    e1k_link_up_autoneg(s, &d, "e0", false);

    /* through the backend */
    e1k_link_down(s, &d, "n1");
    e1k_link_up_autoneg(s, &d, "n1", false);

    /* With auto-negotiation off in the PHY the link comes straight back. */
    g_assert_false(e1kd_phy_write(&d, E1000_PHY_CTRL, 0x0140) & E1000_MDIC_ERROR);
    g_assert_true(e1k_lu(&d));
    e1k_link_down(s, &d, "e0");
    set_link(s, "e0", true);
    g_assert_true(e1k_lu(&d));
    g_assert_true(e1kd_rd(&d, E1000_ICR) & E1000_ICR_LSC);
    g_assert_true(e1k_phy(&d, E1000_PHY_STATUS) & E1000_MII_SR_LINK_STATUS);

    check_error(qtest_qmp(s, "%s", unknown_link), "DeviceNotFound", "Device 'zz' not found");
    g_assert_true(e1k_lu(&d));
    e1kd_free(&d);
    qtest_quit(s);
}

/* ---- rtl8139 ---- */

#define RTL_BMSR_LINK   0x0004      /* BasicModeStatus: link up */
#define RTL_MSR_LINKB   0x04        /* MediaStatus: link fail */

static void rtl_check(RtlDev *d, bool up)
{
    g_assert_cmphex(rtld_r16(d, RTL_BMSR), ==,
                    up ? RTL_BMSR_RESET : (RTL_BMSR_RESET & ~RTL_BMSR_LINK));
    g_assert_cmphex(rtld_r8(d, RTL_MSR) & RTL_MSR_LINKB, ==, up ? 0 : RTL_MSR_LINKB);
}

/* Every set_link, a change or not, latches the link-change cause. */
static void rtl_set_link(QTestState *s, RtlDev *d, const char *name, bool up)
{
    rtld_w16(d, RTL_ISR, 0xffff);
    g_assert_cmphex(rtld_r16(d, RTL_ISR), ==, 0);
    set_link(s, name, up);
    rtl_check(d, up);
    g_assert_cmphex(rtld_r16(d, RTL_ISR), ==, RTL_INT_PUN);
}

static void test_set_link_rtl8139(void)
{
    QTestState *s = start_negotiated("-netdev user,id=n2 -device rtl8139,netdev=n2,id=r0,addr=4");
    RtlDev d;

    rtld_init(&d, s);
    g_assert_cmpint(d.devfn, ==, 4 << 3);
    rtl_check(&d, true);
    rtl_set_link(s, &d, "r0", false);
    rtl_set_link(s, &d, "r0", false);
    rtl_set_link(s, &d, "r0", true);
    rtl_set_link(s, &d, "r0", true);
    rtl_set_link(s, &d, "n2", false);
    rtl_set_link(s, &d, "n2", true);

    rtld_w16(&d, RTL_ISR, 0xffff);
    check_error(qtest_qmp(s, "%s", unknown_link), "DeviceNotFound", "Device 'zz' not found");
    rtl_check(&d, true);
    g_assert_cmphex(rtld_r16(&d, RTL_ISR), ==, 0);
    qtest_quit(s);
}

/* Three NICs, three backends: a name reaches only its own NIC. */
static void test_set_link_isolation(void)
{
    QTestState *s = start_negotiated("-netdev user,id=n0 "
                                     "-device virtio-net-pci,netdev=n0,id=nic0,addr=4 "
                                     "-netdev user,id=n1 -device e1000,netdev=n1,id=e0,addr=5 "
                                     "-netdev user,id=n2 -device rtl8139,netdev=n2,id=r0,addr=6");
    VDev v;
    E1kDev e;
    RtlDev r;

    vd_pci_init(&v, s, 4 << 3, VD_PCI_LEGACY);
    e1kd_init(&e, s);
    rtld_init(&r, s);
    g_assert_true(virtio_link(&v) && e1k_lu(&e));
    rtl_check(&r, true);

    set_link(s, "n1", false);
    g_assert_false(e1k_lu(&e));
    g_assert_true(virtio_link(&v));
    rtl_check(&r, true);

    set_link(s, "nic0", false);
    g_assert_false(virtio_link(&v));
    g_assert_false(e1k_lu(&e));
    rtl_check(&r, true);

    set_link(s, "n2", false);
    rtl_check(&r, false);
    set_link(s, "nic0", true);
    g_assert_true(virtio_link(&v));
    g_assert_false(e1k_lu(&e));
    rtl_check(&r, false);
    e1kd_free(&e);
    qtest_quit(s);
}

/* ---- netdev_add / netdev_del ---- */

static void test_netdev(void)
{
    QTestState *s = start_negotiated("-netdev user,id=n0 "
                                     "-device virtio-net-pci,netdev=n0,id=nic0,addr=4");

    check_empty_return(qtest_qmp(s, "{\"execute\": \"netdev_add\", \"arguments\": "
                                    "{\"type\": \"user\", \"id\": \"n9\"}}"));
    check_error(qtest_qmp(s, "{\"execute\": \"netdev_add\", \"arguments\": "
                             "{\"type\": \"user\", \"id\": \"n9\"}}"),
                "GenericError", "Duplicate ID 'n9'");
    check_error(qtest_qmp(s, "{\"execute\": \"netdev_add\", \"arguments\": "
                             "{\"type\": \"user\", \"id\": \"n0\"}}"),
                "GenericError", "Duplicate ID 'n0'");
    check_empty_return(qtest_qmp(s, "{\"execute\": \"netdev_add\", \"arguments\": "
                                    "{\"type\": \"hubport\", \"id\": \"h1\", \"hubid\": 3}}"));

    /* invalid arguments */
    check_error(qtest_qmp(s, "{\"execute\": \"netdev_add\", \"arguments\": "
                             "{\"type\": \"hubport\", \"id\": \"h2\"}}"),
                "GenericError", "Parameter 'hubid' is missing");
    check_error(qtest_qmp(s, "{\"execute\": \"netdev_add\", \"arguments\": "
                             "{\"type\": \"hubport\", \"id\": \"h2\", \"hubid\": \"3\"}}"),
                "GenericError", "Invalid parameter type for 'hubid', expected: integer");
    check_error(qtest_qmp(s, "{\"execute\": \"netdev_add\", \"arguments\": "
                             "{\"type\": \"nosuch\", \"id\": \"h2\"}}"),
                "GenericError", "Parameter 'type' does not accept value 'nosuch'");
    check_error(qtest_qmp(s, "{\"execute\": \"netdev_add\", \"arguments\": {\"id\": \"h2\"}}"),
                "GenericError", "Parameter 'type' is missing");
    check_error(qtest_qmp(s, "{\"execute\": \"netdev_add\", \"arguments\": "
                             "{\"type\": \"user\"}}"),
                "GenericError", "Parameter 'id' is missing");
    check_error(qtest_qmp(s, "{\"execute\": \"netdev_add\", \"arguments\": "
                             "{\"type\": \"user\", \"id\": \"bad id\"}}"),
                "GenericError", "Parameter 'id' expects an identifier");
    check_error(qtest_qmp(s, "{\"execute\": \"netdev_add\", \"arguments\": "
                             "{\"type\": \"user\", \"id\": \"n10\", \"bogus\": 1}}"),
                "GenericError", "Parameter 'bogus' is unexpected");
    check_error(qtest_qmp(s, "{\"execute\": \"netdev_add\", \"arguments\": "
                             "{\"type\": \"user\", \"id\": \"n10\", \"restrict\": \"maybe\"}}"),
                "GenericError", "Invalid parameter type for 'restrict', expected: boolean");

    /* added netdevs take set_link */
    set_link(s, "n9", false);
    set_link(s, "n9", true);
    set_link(s, "h1", false);

    check_empty_return(qtest_qmp(s, "{\"execute\": \"netdev_del\", \"arguments\": "
                                    "{\"id\": \"n9\"}}"));
    check_error(qtest_qmp(s, "{\"execute\": \"netdev_del\", \"arguments\": {\"id\": \"n9\"}}"),
                "DeviceNotFound", "Device 'n9' not found");
    check_error(qtest_qmp(s, "{\"execute\": \"set_link\", \"arguments\": "
                             "{\"name\": \"n9\", \"up\": true}}"),
                "DeviceNotFound", "Device 'n9' not found");
    check_empty_return(qtest_qmp(s, "{\"execute\": \"netdev_del\", \"arguments\": "
                                    "{\"id\": \"h1\"}}"));
    check_error(qtest_qmp(s, "{\"execute\": \"netdev_del\", \"arguments\": "
                             "{\"id\": \"nosuch\"}}"),
                "DeviceNotFound", "Device 'nosuch' not found");
    /* a NIC is not a netdev */
    check_error(qtest_qmp(s, "{\"execute\": \"netdev_del\", \"arguments\": "
                             "{\"id\": \"nic0\"}}"),
                "DeviceNotFound", "Device 'nic0' not found");
    check_error(qtest_qmp(s, "{\"execute\": \"netdev_del\", \"arguments\": {}}"),
                "GenericError", "Parameter 'id' is missing");
    /* a deleted id can be used again */
    check_empty_return(qtest_qmp(s, "{\"execute\": \"netdev_add\", \"arguments\": "
                                    "{\"type\": \"user\", \"id\": \"n9\"}}"));
    check_empty_return(qtest_qmp(s, "{\"execute\": \"netdev_del\", \"arguments\": "
                                    "{\"id\": \"n9\"}}"));
    check_status(s, "running", true);
    qtest_quit(s);
}

/* ---- what json-glib would lose: NULs in strings, ids beyond int64 ----
 * libqtest parses replies with json-glib, which ends a string at \u0000
 * and wraps integers beyond int64, so these checks read a second
 * monitor's raw lines (squeezed: QEMU writes spaces between tokens, qnic
 * none). Every expected text was read off QEMU 7.2. */

typedef struct RawMon {
    int fd;
    GString *in;
} RawMon;

/* LINE without the spaces outside strings. */
static char *squeeze(const char *line, size_t len)
{
    GString *g = g_string_new(NULL);
    bool in_string = false, escape = false;

    for (size_t i = 0; i < len; i++) {
        char c = line[i];
        if (!in_string) {
            in_string = c == '"';
            if (c != ' ') {
                g_string_append_c(g, c);
            }
            continue;
        }
        g_string_append_c(g, c);
        if (escape) {
            escape = false;
        } else if (c == '\\') {
            escape = true;
        } else if (c == '"') {
            in_string = false;
        }
    }
    return g_string_free(g, FALSE);
}

/* The next line that is not an event, squeezed; fails after 10 s. */
static char *raw_line(RawMon *m)
{
    for (;;) {
        char *end = strstr(m->in->str, "\r\n");
        if (end) {
            char *line = squeeze(m->in->str, end - m->in->str);
            g_string_erase(m->in, 0, end + 2 - m->in->str);
            if (!strstr(line, "\"event\":")) {
                return line;
            }
            g_free(line);
            continue;
        }
        struct pollfd pfd = { .fd = m->fd, .events = POLLIN };
        char buf[4096];
        g_assert_cmpint(poll(&pfd, 1, 10000), ==, 1);
        ssize_t n = read(m->fd, buf, sizeof(buf));
        g_assert_cmpint(n, >, 0);
        g_string_append_len(m->in, buf, n);
    }
}

static char *raw_cmd(RawMon *m, const char *text)
{
    g_assert_cmpint(write(m->fd, text, strlen(text)), ==, (ssize_t)strlen(text));
    return raw_line(m);
}

/* The reply to TEXT holds WANT (squeezed JSON text). */
static void raw_check(RawMon *m, const char *text, const char *want)
{
    g_autofree char *line = raw_cmd(m, text);
    /* Some inputs are invalid UTF-8 on purpose; TAP output must not be. */
    g_autofree char *shown = g_strescape(text, NULL);

    g_test_message("sent %s got %s", shown, line);
    if (!strstr(line, want)) {
        g_test_message("expected it to hold %s", want);
        g_assert_not_reached();
    }
}

/* A target with a second monitor at DIR/raw.sock, connected and
 * negotiated in *M; EXTRA as for start(). */
static QTestState *start_raw(const char *dir, const char *extra, RawMon *m)
{
    g_autofree char *path = g_build_filename(dir, "raw.sock", NULL);
    g_autofree char *args = g_strdup_printf("%s -qmp unix:%s,server=on,wait=off", extra, path);
    QTestState *s = start_negotiated(args);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    g_autofree char *ok = NULL;

    g_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
    m->fd = socket(AF_UNIX, SOCK_STREAM, 0);
    g_assert_cmpint(connect(m->fd, (struct sockaddr *)&sa, sizeof(sa)), ==, 0);
    m->in = g_string_new(NULL);
    g_free(raw_line(m));
    ok = raw_cmd(m, "{\"execute\": \"qmp_capabilities\"}\n");
    g_assert_cmpstr(ok, ==, "{\"return\":{}}");
    return s;
}

static void raw_close(RawMon *m, QTestState *s, char *dir)
{
    close(m->fd);
    g_string_free(m->in, TRUE);
    qtest_quit(s);
    g_autofree char *path = g_build_filename(dir, "raw.sock", NULL);
    unlink(path);
    rmdir(dir);
    g_free(dir);
}

/* A NUL in a string is a character like any other (QEMU keeps it): no
 * command, device or netdev name matches, a proxy filtering on "execute"
 * sees what runs. */
static void test_nul_in_strings(void)
{
    char *dir = g_dir_make_tmp("qmp-test-XXXXXX", NULL);
    RawMon m;
    QTestState *s = start_raw(dir, "-netdev user,id=n0 "
                              "-device virtio-net-pci,netdev=n0,id=nic0,addr=4", &m);

    raw_check(&m, "{\"execute\": \"quit\\u0000-not-really\"}\n",
              "{\"class\":\"CommandNotFound\",\"desc\":\"The command quit\\u0000-not-really "
              "has not been found\"}");
    raw_check(&m, "{'execute': 'quit\\u0000'}\n", "\"desc\":\"The command quit\\u0000 has not been found\"");
    /* QEMU also takes modified UTF-8's NUL */
    raw_check(&m, "{\"execute\": \"quit\xC0\x80\"}\n",
              "\"desc\":\"The command quit\\u0000 has not been found\"");
    raw_check(&m, "{\"execute\": \"set_link\", \"arguments\": {\"name\": \"nic0\\u0000zz\", "
              "\"up\": false}}\n",
              "{\"class\":\"DeviceNotFound\",\"desc\":\"Device 'nic0\\u0000zz' not found\"}");
    raw_check(&m, "{\"execute\": \"netdev_add\", \"arguments\": {\"type\": \"user\", "
              "\"id\": \"n\\u0000ul\"}}\n", "\"desc\":\"Parameter 'id' expects an identifier\"");
    raw_check(&m, "{\"execute\": \"netdev_del\", \"arguments\": {\"id\": \"n\"}}\n",
              "\"desc\":\"Device 'n' not found\"");
    raw_check(&m, "{\"execute\": \"netdev_del\", \"arguments\": {\"id\": \"n0\\u0000zz\"}}\n",
              "\"desc\":\"Device 'n0\\u0000zz' not found\"");
    raw_check(&m, "{\"exec\\u0000ute\": \"quit\", \"execute\": \"query-status\"}\n",
              "\"desc\":\"QMP input member 'exec\\u0000ute' is unexpected\"");
    raw_check(&m, "{\"execute\": \"query-status\", \"id\": \"a\\u0000b\"}\n", "\"id\":\"a\\u0000b\"");
    /* json-glib keeps the last of two keys, a proxy may read the first */
    raw_check(&m, "{\"execute\": \"query-status\", \"execute\": \"quit\"}\n",
              "\"desc\":\"JSON parse error, duplicate key\"");
    /* the noncharacters QEMU refuses (qnic's stand-in for a NUL among them) */
    raw_check(&m, "{\"execute\": \"quit\\uFDD0\"}\n",
              "\"desc\":\"JSON parse error, \\\\uFDD0 is not a valid Unicode character\"");
    raw_check(&m, "{\"execute\": \"quit\xEF\xB7\x90\"}\n",
              "\"desc\":\"JSON parse error, invalid UTF-8 sequence in string\"");
    raw_check(&m, "{\"execute\": \"quit\\ud800x\"}\n",
              "\"desc\":\"JSON parse error, \\\\ud800 is not a valid Unicode character\"");
    check_status(s, "running", true);
    raw_close(&m, s, dir);
}

/* Ids echoed as QEMU does: integers up to uint64 exactly; beyond, QEMU
 * makes a double of them and qnic keeps the client's digits. */
static void test_id_beyond_int64(void)
{
    char *dir = g_dir_make_tmp("qmp-test-XXXXXX", NULL);
    bool qemu = qtest_target_is_qemu();
    RawMon m;
    QTestState *s = start_raw(dir, "", &m);
    const char *ids[][2] = {
        { "9223372036854775807", "9223372036854775807" },
        { "9223372036854775808", "9223372036854775808" },
        { "18446744073709551615", "18446744073709551615" },
        { "-9223372036854775808", "-9223372036854775808" },
        { "[9223372036854775808]", "[9223372036854775808]" },
        { "18446744073709551616", qemu ? "1.8446744073709552e+19" : "18446744073709551616" },
        { "-9223372036854775809", qemu ? "-9.2233720368547758e+18" : "-9223372036854775809" },
        { "1e3", qemu ? "1000" : "1e3" },
    };

    for (unsigned i = 0; i < G_N_ELEMENTS(ids); i++) {
        g_autofree char *cmd = g_strdup_printf("{\"execute\": \"query-status\", \"id\": %s}\n",
                                               ids[i][0]);
        g_autofree char *line = raw_cmd(&m, cmd);
        g_autofree char *want = g_strdup_printf("\"id\":%s", ids[i][1]);
        char *at = strstr(line, want);

        g_test_message("id %s: %s", ids[i][0], line);
        g_assert_nonnull(at);
        g_assert_true(strchr(",}", at[strlen(want)]) && at[strlen(want)]);
        g_assert_nonnull(strstr(line, "\"return\":"));
    }
    /* json-glib takes comments, QEMU does not (and goes on to answer the
     * rest of the line as more stray bytes: the last check here) */
    raw_check(&m, "{\"execute\": \"query-status\", \"id\": 1 /* x */}\n",
              "\"desc\":\"JSON parse error, stray '/'\"");
    raw_close(&m, s, dir);
}

/* QEMU's bound of 1024 open brackets: the 1025th is answered with its
 * error and dropped, reading starts afresh (so every closing bracket left
 * is a stray one), and the session goes on. No input can push the depth
 * past the bound (2 GiB of '[' once overflowed qnic's counter). */
static void test_nesting_limit(void)
{
    static const struct { unsigned depth, deep_errors, must_be_object, strays; } cases[] = {
        { 1024, 0, 1, 0 },
        { 1025, 1, 0, 1025 },
        { 3000, 2, 1, 2050 },
    };
    QTestState *s = start_negotiated(NULL);

    for (unsigned c = 0; c < G_N_ELEMENTS(cases); c++) {
        GString *in = g_string_new(NULL);
        unsigned deep = 0, object = 0, stray = 0;
        JsonNode *r;

        for (unsigned i = 0; i < cases[c].depth; i++) {
            g_string_append_c(in, '[');
        }
        for (unsigned i = 0; i < cases[c].depth; i++) {
            g_string_append_c(in, ']');
        }
        g_string_append(in, "\n{\"execute\": \"query-version\", \"id\": \"after\"}\n");
        qtest_qmp_send_raw(s, in->str);
        g_string_free(in, TRUE);
        while ((r = qtest_qmp_receive(s, 10000)) && !qtest_qmp_return(r)) {
            const char *d = qtest_qmp_error_desc(r);
            g_assert_nonnull(d);
            deep += g_str_equal(d, "JSON nesting depth limit exceeded");
            object += g_str_equal(d, "QMP input must be a JSON object");
            stray += g_str_has_prefix(d, "JSON parse error, ");
            json_node_unref(r);
        }
        g_test_message("depth %u: %u too deep, %u not an object, %u stray", cases[c].depth,
                       deep, object, stray);
        g_assert_nonnull(r);
        assert_json_eq(qtest_qmp_get(r, "id"), "\"after\"");
        json_node_unref(r);
        g_assert_cmpuint(deep, ==, cases[c].deep_errors);
        g_assert_cmpuint(object, ==, cases[c].must_be_object);
        g_assert_cmpuint(stray, ==, cases[c].strays);
    }
    check_usable(s);
    qtest_quit(s);
}

/* DHCP names beyond 255 bytes, refused in QEMU 7.2's words. */
static void test_netdev_dhcp_names(void)
{
    QTestState *s = start_negotiated(NULL);
    g_autofree char *h255 = g_strnfill(255, 'h');
    g_autofree char *h256 = g_strnfill(256, 'h');

    check_error(qtest_qmp(s, "{\"execute\": \"netdev_add\", \"arguments\": {\"type\": \"user\", "
                             "\"id\": \"u1\", \"hostname\": \"%s\"}}", h256),
                "GenericError", "'vhostname' parameter cannot exceed 255 bytes");
    check_error(qtest_qmp(s, "{\"execute\": \"netdev_add\", \"arguments\": {\"type\": \"user\", "
                             "\"id\": \"u1\", \"domainname\": \"\"}}"),
                "GenericError", "'domainname' parameter cannot be empty");
    check_empty_return(qtest_qmp(s, "{\"execute\": \"netdev_add\", \"arguments\": {\"type\": "
                                    "\"user\", \"id\": \"u1\", \"hostname\": \"%s\"}}", h255));
    qtest_quit(s);
}

/* ---- quit ---- */

static void test_quit(void)
{
    QTestState *s = start_negotiated(NULL);
    JsonNode *r, *ev;
    int status;

    r = qtest_qmp(s, "{\"execute\": \"quit\", \"id\": \"bye\"}");
    assert_json_eq(r, "{\"return\": {}, \"id\": \"bye\"}");
    json_node_unref(r);
    /* QEMU sends the event just before the reply; either order is fine. */
    ev = qtest_qmp_event(s, "SHUTDOWN", 5000);
    g_assert_nonnull(ev);
    check_event_shape(ev, "SHUTDOWN", true);
    assert_json_eq(qtest_qmp_get(ev, "data"), "{\"guest\": false, \"reason\": \"host-qmp-quit\"}");
    json_node_unref(ev);
    g_assert_true(qtest_qmp_eof(s, 10000));
    status = qtest_wait_exit(s, 10000);
    g_assert_cmpint(status, !=, -1);
    g_assert_true(WIFEXITED(status));
    g_assert_cmpint(WEXITSTATUS(status), ==, 0);
    qtest_quit(s);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/qmp/greeting", test_greeting);
    g_test_add_func("/qmp/negotiation-errors", test_negotiation_errors);
    g_test_add_func("/qmp/id", test_id);
    g_test_add_func("/qmp/bad-input", test_bad_input);
    g_test_add_func("/qmp/unterminated", test_unterminated);
    g_test_add_func("/qmp/query-version", test_query_version);
    g_test_add_func("/qmp/query-commands", test_query_commands);
    g_test_add_func("/qmp/run-state", test_run_state);
    g_test_add_func("/qmp/set-link/virtio-net", test_set_link_virtio);
    g_test_add_func("/qmp/set-link/e1000", test_set_link_e1000);
    g_test_add_func("/qmp/set-link/rtl8139", test_set_link_rtl8139);
    g_test_add_func("/qmp/set-link/isolation", test_set_link_isolation);
    g_test_add_func("/qmp/netdev", test_netdev);
    g_test_add_func("/qmp/netdev/dhcp-names", test_netdev_dhcp_names);
    g_test_add_func("/qmp/nul-in-strings", test_nul_in_strings);
    g_test_add_func("/qmp/id/beyond-int64", test_id_beyond_int64);
    g_test_add_func("/qmp/nesting-limit", test_nesting_limit);
    g_test_add_func("/qmp/quit", test_quit);
    return g_test_run();
}
