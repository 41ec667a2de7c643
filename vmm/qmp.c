/*
 * The QMP server of qnic-vmm. A client's bytes are cut into JSON values by a
 * small bracket-counting splitter (QMP is a stream of objects, with no
 * framing), each value's strings and numbers are held to QEMU's parser's
 * rules (what json-glib takes more of, or loses: a NUL in a string, ids
 * beyond int64), parsed by json-glib, checked the way QEMU checks
 * a command (an object with a string "execute", an optional object
 * "arguments" and any "id"), its arguments checked against the command's
 * table, and run. Replies and errors use QEMU's error classes and, where a
 * client may match on them, QEMU's words. Nothing a client sends can end
 * the session except closing it: an over-long or over-deep value is
 * answered with an error and skipped.
 *
 * Commands: qmp_capabilities, query-version, query-commands, query-status,
 * stop, cont, quit, set_link, netdev_add, netdev_del, query-rx-filter,
 * device_add, device_del, system_reset; the rest are in vmm/qmp-*.c.
 * Events: STOP, RESUME, SHUTDOWN, NIC_RX_FILTER_CHANGED, DEVICE_DELETED.
 */
#include "vmm/qmp-int.h"
#include "vmm/vmm.h"
#include "vmm/migration.h"
#include "qnic/fd-passing.h"
#include "qnic/net.h"
#include "qnic/vhost.h"
#include "qnic/schema.h"
#include "qnic/pci.h"
#include "qnic/device.h"
#include "qnic/log.h"
#include "qnic/mainloop.h"
#include "qnic-config.h"

#include <json-glib/json-glib.h>
#include <math.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <unistd.h>

/* QEMU refuses tokens above 64 MiB; a QMP command of qnic's never needs
 * more than a few KiB. Nesting is QEMU's bound, so that the same input is
 * refused at the same bracket: the splitter's depth never passes it. */
#define QMP_MAX_VALUE   (1024 * 1024)
#define QMP_MAX_DEPTH   1024

/* A NUL in a JSON string: QEMU keeps it, as modified UTF-8's two bytes
 * C0 80 (no valid UTF-8 holds them), so "quit\u0000x" is no command and
 * "nic0\u0000x" no device. json-glib would end the C string there, so the
 * text it parses carries U+FDD0 instead (a noncharacter, which QEMU's parser
 * and so qnic's refuse from a client) and the parsed tree gets C0 80 back;
 * the output turns C0 80 into \u0000. */
#define NUL_STANDIN     "\xEF\xB7\x90"
#define NUL_INTERNAL    "\xC0\x80"

struct QnicQmpSession {
    QnicMachine *machine;
    QnicQmpOutput *out;
    void *out_opaque;
    bool negotiated;
    /* the value being collected */
    GString *buf;
    int depth;                  /* 0..QMP_MAX_DEPTH */
    char quote;                 /* in a string: its quote, ' or " */
    bool escape;
    bool skipping;              /* an over-long/deep value: drop to its end */
    /* the command being run: its id, and whether it answered itself */
    const char *cur_id;         /* as the client wrote it */
    bool replied;
    const char *const *netdev_types;    /* NULL: any */
    GHashTable *announce_timers;        /* vmm/qmp-announce.c's */
    int pending_fd;             /* the last fd passed with SCM_RIGHTS, -1: none */
};

static GList *sessions;          /* QnicQmpSession *, for events */

/* ---- output ---- */

/* One line out: NODE, then "id" with the client's own text (the exact
 * digits of 18446744073709551615, which json-glib holds as -1), last. */
static void send_node(QnicQmpSession *s, JsonNode *node, const char *id)
{
    g_autoptr(JsonGenerator) gen = json_generator_new();
    g_autofree char *text = NULL;
    g_autoptr(GString) line = NULL;

    json_generator_set_root(gen, node);
    text = json_generator_to_data(gen, NULL);
    line = g_string_new(text);
    if (id && line->len && line->str[line->len - 1] == '}') {
        g_string_truncate(line, line->len - 1);
        g_string_append_printf(line, "%s\"id\":%s}", line->len > 1 ? "," : "", id);
    }
    g_string_replace(line, NUL_INTERNAL, "\\u0000", 0);
    g_string_append(line, "\r\n");
    s->out(s->out_opaque, line->str, line->len);
}

/* JSON text must be UTF-8: invalid sequences become U+FFFD, as QEMU's
 * "stray '\uFFFD'" does, but a client's NUL stays one. */
static char *utf8_make_valid_keep_nul(const char *raw)
{
    g_auto(GStrv) parts = g_strsplit(raw, NUL_INTERNAL, -1);

    for (char **p = parts; *p; p++) {
        char *v = g_utf8_make_valid(*p, -1);
        g_free(*p);
        *p = v;
    }
    return g_strjoinv(NUL_INTERNAL, parts);
}

static void send_error(QnicQmpSession *s, const char *id, const char *cls, const char *fmt, ...)
    G_GNUC_PRINTF(4, 5);

static void send_error(QnicQmpSession *s, const char *id, const char *cls, const char *fmt, ...)
{
    g_autoptr(JsonBuilder) b = json_builder_new();
    g_autofree char *raw = NULL;
    g_autofree char *desc = NULL;
    va_list ap;

    va_start(ap, fmt);
    raw = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    /* a description may quote the client's bytes (json-glib's parse
     * errors do) */
    desc = utf8_make_valid_keep_nul(raw);
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "error");
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "class");
    json_builder_add_string_value(b, cls);
    json_builder_set_member_name(b, "desc");
    json_builder_add_string_value(b, desc);
    json_builder_end_object(b);
    json_builder_end_object(b);
    g_autoptr(JsonNode) node = json_builder_get_root(b);
    send_node(s, node, id);
}

static void send_return(QnicQmpSession *s, const char *id, JsonNode *ret)
{
    g_autoptr(JsonNode) node = json_node_new(JSON_NODE_OBJECT);
    JsonObject *o = json_object_new();

    if (!ret) {
        ret = json_node_new(JSON_NODE_OBJECT);
        json_node_take_object(ret, json_object_new());
    }
    json_object_set_member(o, "return", ret);
    json_node_take_object(node, o);
    send_node(s, node, id);
}

void qnic_qmp_event(QnicMachine *m, const char *name, JsonNode *data)
{
    g_autoptr(JsonNode) node = json_node_new(JSON_NODE_OBJECT);
    JsonObject *o = json_object_new();
    JsonObject *ts = json_object_new();
    gint64 now = g_get_real_time();

    json_object_set_int_member(ts, "seconds", now / G_USEC_PER_SEC);
    json_object_set_int_member(ts, "microseconds", now % G_USEC_PER_SEC);
    json_object_set_object_member(o, "timestamp", ts);
    json_object_set_string_member(o, "event", name);
    if (data) {
        json_object_set_member(o, "data", data);
    }
    json_node_take_object(node, o);
    for (GList *l = sessions; l; l = l->next) {
        QnicQmpSession *s = l->data;
        if (s->negotiated && s->machine == m) {
            send_node(s, node, NULL);
        }
    }
}

/* ---- argument checking ---- */

typedef struct QmpCommand QmpCommand;

struct QmpCommand {
    const char *name;
    QmpHandler *fn;
    const ArgDesc *args;        /* { NULL } terminated; NULL: any (netdev_add) */
    bool before_negotiation;    /* only qmp_capabilities */
};

static const char *arg_type_name(ArgType t)
{
    switch (t) {
    case ARG_BOOL: return "boolean";
    case ARG_INT: return "integer";
    case ARG_STR_LIST: return "array";
    default: return "string";
    }
}

static bool arg_type_ok(JsonNode *n, ArgType t)
{
    if (t == ARG_STR_LIST) {
        if (!JSON_NODE_HOLDS_ARRAY(n)) {
            return false;
        }
        JsonArray *a = json_node_get_array(n);
        for (guint i = 0; i < json_array_get_length(a); i++) {
            JsonNode *e = json_array_get_element(a, i);
            if (!JSON_NODE_HOLDS_VALUE(e) || json_node_get_value_type(e) != G_TYPE_STRING) {
                return false;
            }
        }
        return true;
    }
    if (!JSON_NODE_HOLDS_VALUE(n)) {
        return false;
    }
    switch (t) {
    case ARG_BOOL: return json_node_get_value_type(n) == G_TYPE_BOOLEAN;
    case ARG_INT: return json_node_get_value_type(n) == G_TYPE_INT64;
    default: return json_node_get_value_type(n) == G_TYPE_STRING;
    }
}

/* QEMU's order: each declared argument (missing, then mistyped) first,
 * then any member it did not declare. */
static bool check_args(const QmpCommand *c, JsonObject *args, char **desc)
{
    g_autoptr(GList) members = json_object_get_members(args);

    for (const ArgDesc *a = c->args; a->name; a++) {
        JsonNode *n = json_object_get_member(args, a->name);
        if (!n) {
            if (!a->optional) {
                *desc = g_strdup_printf("Parameter '%s' is missing", a->name);
                return false;
            }
            continue;
        }
        if (!arg_type_ok(n, a->type)) {
            *desc = g_strdup_printf("Invalid parameter type for '%s', expected: %s", a->name,
                                    arg_type_name(a->type));
            return false;
        }
    }
    for (GList *l = members; l; l = l->next) {
        const ArgDesc *a = c->args;
        while (a->name && strcmp(a->name, l->data) != 0) {
            a++;
        }
        if (!a->name) {
            *desc = g_strdup_printf("Parameter '%s' is unexpected", (const char *)l->data);
            return false;
        }
    }
    return true;
}

/* ---- commands ---- */

JsonNode *qmp_obj_node(JsonObject *o)
{
    JsonNode *n = json_node_new(JSON_NODE_OBJECT);
    json_node_take_object(n, o);
    return n;
}

JsonNode *qmp_array_node(JsonArray *a)
{
    JsonNode *n = json_node_new(JSON_NODE_ARRAY);
    json_node_take_array(n, a);
    return n;
}

QnicMachine *qmp_session_machine(QnicQmpSession *s)
{
    return s->machine;
}

void qmp_session_set_fd(QnicQmpSession *s, int fd)
{
    if (s->pending_fd >= 0) {
        close(s->pending_fd);
    }
    s->pending_fd = fd;
}

int qmp_session_take_fd(QnicQmpSession *s)
{
    int fd = s->pending_fd;

    s->pending_fd = -1;
    return fd;
}

GHashTable **qmp_session_announce_timers(QnicQmpSession *s)
{
    return &s->announce_timers;
}

static JsonNode *qmp_capabilities(QnicQmpSession *s, JsonObject *args, const char **cls,
                                  char **desc)
{
    JsonNode *en = json_object_get_member(args, "enable");

    if (s->negotiated) {
        *cls = "CommandNotFound";
        *desc = g_strdup("Capabilities negotiation is already complete, command ignored");
        return NULL;
    }
    /* qnic offers no capability (no out-of-band execution). */
    if (en && json_array_get_length(json_node_get_array(en))) {
        *desc = g_strdup_printf("Capability '%s' not available",
                                json_array_get_string_element(json_node_get_array(en), 0));
        return NULL;
    }
    s->negotiated = true;
    return NULL;
}

static JsonNode *version_node(void)
{
    JsonObject *q = json_object_new();
    JsonObject *v = json_object_new();

    /* The QEMU release whose command line and QMP qnic follows. */
    json_object_set_int_member(q, "major", 7);
    json_object_set_int_member(q, "minor", 2);
    json_object_set_int_member(q, "micro", 0);
    json_object_set_object_member(v, "qemu", q);
    json_object_set_string_member(v, "package", "qnic " QNIC_VERSION);
    return qmp_obj_node(v);
}

static JsonNode *query_version(QnicQmpSession *s, JsonObject *args, const char **cls, char **desc)
{
    return version_node();
}

static const QmpCommand commands[];

static JsonNode *query_commands(QnicQmpSession *s, JsonObject *args, const char **cls,
                                char **desc)
{
    JsonArray *a = json_array_new();

    for (const QmpCommand *c = commands; c->name; c++) {
        JsonObject *o = json_object_new();
        json_object_set_string_member(o, "name", c->name);
        json_array_add_object_element(a, o);
    }
    JsonNode *n = json_node_new(JSON_NODE_ARRAY);
    json_node_take_array(n, a);
    return n;
}

static JsonNode *query_status(QnicQmpSession *s, JsonObject *args, const char **cls, char **desc)
{
    QnicRunState st = qnic_vmm_runstate();
    JsonObject *o = json_object_new();

    json_object_set_string_member(o, "status", qnic_vmm_runstate_name(st));
    json_object_set_boolean_member(o, "singlestep", false);
    json_object_set_boolean_member(o, "running", st == QNIC_RUNSTATE_RUNNING);
    return qmp_obj_node(o);
}

static JsonNode *cmd_stop(QnicQmpSession *s, JsonObject *args, const char **cls, char **desc)
{
    /* A machine that never ran stays in prelaunch, as in QEMU. */
    if (qnic_vmm_runstate() == QNIC_RUNSTATE_RUNNING) {
        qnic_vmm_set_running(false);
        qnic_qmp_event(s->machine, "STOP", NULL);
    }
    return NULL;
}

static JsonNode *cmd_cont(QnicQmpSession *s, JsonObject *args, const char **cls, char **desc)
{
    if (qnic_vmm_runstate() == QNIC_RUNSTATE_INMIGRATE) {
        /* as QEMU: run once the incoming migration is in */
        qnic_migration_set_autostart();
        return NULL;
    }
    if (qnic_vmm_runstate() != QNIC_RUNSTATE_RUNNING) {
        qnic_vmm_set_running(true);
        qnic_qmp_event(s->machine, "RESUME", NULL);
    }
    return NULL;
}

static JsonNode *cmd_quit(QnicQmpSession *s, JsonObject *args, const char **cls, char **desc)
{
    JsonObject *d = json_object_new();

    json_object_set_boolean_member(d, "guest", false);
    json_object_set_string_member(d, "reason", "host-qmp-quit");
    /* The reply goes first, then the event, then the process ends. */
    send_return(s, s->cur_id, NULL);
    s->replied = true;
    qnic_qmp_event(s->machine, "SHUTDOWN", qmp_obj_node(d));
    qnic_vmm_request_exit(0);
    return NULL;
}

static JsonNode *cmd_set_link(QnicQmpSession *s, JsonObject *args, const char **cls, char **desc)
{
    const char *name = json_object_get_string_member(args, "name");
    QnicNetClient *nc = qnic_net_client_find_link(s->machine->cfg.backends, name);

    if (!nc) {
        *cls = "DeviceNotFound";
        *desc = g_strdup_printf("Device '%s' not found", name);
        return NULL;
    }
    qnic_net_set_link(nc, json_object_get_boolean_member(args, "up"));
    return NULL;
}

/* What a JSON value of a -netdev option must be, from the schema type, in
 * the words of QEMU's type errors. */
static const char *prop_json_type(const QnicPropDesc *p)
{
    switch (p->type) {
    case QNIC_PROP_BOOL: return "boolean";
    case QNIC_PROP_UINT:
    case QNIC_PROP_INT:
    case QNIC_PROP_SIZE: return "integer";
    default: return "string";
    }
}

static bool json_is(JsonNode *n, const char *want)
{
    if (!JSON_NODE_HOLDS_VALUE(n)) {
        return false;
    }
    if (!strcmp(want, "boolean")) {
        return json_node_get_value_type(n) == G_TYPE_BOOLEAN;
    }
    if (!strcmp(want, "integer")) {
        return json_node_get_value_type(n) == G_TYPE_INT64;
    }
    return json_node_get_value_type(n) == G_TYPE_STRING;
}

/* One member of netdev_add's arguments as option value(s), type-checked
 * against the netdev's schema as QEMU checks its QAPI types: objects are
 * flattened with dots (stream's addr.type=...), arrays are repeated values
 * (hostfwd, also in QEMU's [{"str": ...}] form). */
static bool add_opt(QnicOpts *o, const QnicSchemaType *t, const char *key, JsonNode *n,
                    char **desc, int depth)
{
    const QnicPropDesc *p;
    const char *want;

    if (JSON_NODE_HOLDS_OBJECT(n) && depth < 2 && !json_object_has_member(json_node_get_object(n), "str")) {
        JsonObject *obj = json_node_get_object(n);
        g_autoptr(GList) members = json_object_get_members(obj);
        for (GList *l = members; l; l = l->next) {
            g_autofree char *sub = g_strdup_printf("%s.%s", key, (const char *)l->data);
            if (!add_opt(o, t, sub, json_object_get_member(obj, l->data), desc, depth + 1)) {
                return false;
            }
        }
        return true;
    }
    p = qnic_schema_prop(t, key);
    if (!p || !strcmp(key, "type")) {
        *desc = g_strdup_printf("Parameter '%s' is unexpected", key);
        return false;
    }
    want = prop_json_type(p);
    if (JSON_NODE_HOLDS_ARRAY(n) && p->repeat) {
        JsonArray *a = json_node_get_array(n);
        for (guint i = 0; i < json_array_get_length(a); i++) {
            JsonNode *e = json_array_get_element(a, i);
            if (JSON_NODE_HOLDS_OBJECT(e) && json_object_has_member(json_node_get_object(e), "str")) {
                e = json_object_get_member(json_node_get_object(e), "str");
            }
            if (!json_is(e, want)) {
                *desc = g_strdup_printf("Invalid parameter type for '%s', expected: %s", key, want);
                return false;
            }
            qnic_opts_append(o, key, json_node_get_string(e));
        }
        return true;
    }
    if (!json_is(n, want)) {
        *desc = g_strdup_printf("Invalid parameter type for '%s', expected: %s", key, want);
        return false;
    }
    if (!strcmp(want, "boolean")) {
        qnic_opts_append(o, key, json_node_get_boolean(n) ? "on" : "off");
    } else if (!strcmp(want, "integer")) {
        g_autofree char *v = g_strdup_printf("%" G_GINT64_FORMAT, json_node_get_int(n));
        qnic_opts_append(o, key, v);
    } else {
        qnic_opts_append(o, key, json_node_get_string(n));
    }
    return true;
}

static JsonNode *cmd_netdev_add(QnicQmpSession *s, JsonObject *args, const char **cls,
                                char **desc)
{
    g_autoptr(QnicOpts) o = qnic_opts_new("netdev");
    g_autoptr(GList) members = json_object_get_members(args);
    GError *err = NULL;
    JsonNode *type = json_object_get_member(args, "type");
    JsonNode *id = json_object_get_member(args, "id");
    const QnicSchemaType *t;
    const char *tname;

    if (!type) {
        *desc = g_strdup("Parameter 'type' is missing");
        return NULL;
    }
    if (!json_is(type, "string")) {
        *desc = g_strdup("Invalid parameter type for 'type', expected: string");
        return NULL;
    }
    tname = json_node_get_string(type);
    t = qnic_schema_lookup(QNIC_SCHEMA_NETDEV, tname);
    if (!t || !qnic_netdev_class_find(tname)) {
        *desc = g_strdup_printf("Parameter 'type' does not accept value '%s'", tname);
        return NULL;
    }
    if (s->netdev_types && !g_strv_contains((const char *const *)s->netdev_types, tname)) {
        *desc = g_strdup_printf("netdev type '%s' may not be created on this monitor", tname);
        return NULL;
    }
    if (!id) {
        *desc = g_strdup("Parameter 'id' is missing");
        return NULL;
    }
    if (!json_is(id, "string")) {
        *desc = g_strdup("Invalid parameter type for 'id', expected: string");
        return NULL;
    }
    if (qnic_netdev_find(s->machine->cfg.backends, json_node_get_string(id))) {
        *desc = g_strdup_printf("Duplicate ID '%s'", json_node_get_string(id));
        return NULL;
    }
    qnic_opts_append(o, "type", tname);
    for (GList *l = members; l; l = l->next) {
        const char *key = l->data;
        if (!strcmp(key, "type")) {
            continue;
        }
        /* on the command line "help" prints and exits: never here */
        if (!strcmp(key, "help") || !strcmp(key, "?")) {
            *desc = g_strdup_printf("Parameter '%s' is unexpected", key);
            return NULL;
        }
        if (!add_opt(o, t, key, json_object_get_member(args, key), desc, 0)) {
            return NULL;
        }
    }
    o->source = g_strdup("netdev_add");
    if (!qnic_netdev_add(s->machine->cfg.backends, g_steal_pointer(&o), &err)) {
        /* the first line: the command line adds a hint after it */
        char *nl = strchr(err->message, '\n');
        *desc = nl ? g_strndup(err->message, nl - err->message) : g_strdup(err->message);
        g_error_free(err);
    }
    return NULL;
}

static JsonNode *cmd_netdev_del(QnicQmpSession *s, JsonObject *args, const char **cls,
                                char **desc)
{
    const char *id = json_object_get_string_member(args, "id");
    QnicNetdev *nd = qnic_netdev_find(s->machine->cfg.backends, id);

    if (!nd) {
        *cls = "DeviceNotFound";
        *desc = g_strdup_printf("Device '%s' not found", id);
        return NULL;
    }
    /* A vhost device keeps the backend's rings and state: the NIC would
     * be left pointing at freed memory. */
    if (nd->in_use && qnic_vhost_net_get(nd->ncs[0])) {
        *desc = g_strdup_printf("netdev '%s' is in use by a vhost NIC and cannot be removed "
                                "while the device exists", id);
        return NULL;
    }
    qnic_netdev_del(nd);
    return NULL;
}

static const char *rx_state_name(QnicRxState st)
{
    return st == QNIC_RX_STATE_NONE ? "none" : st == QNIC_RX_STATE_ALL ? "all" : "normal";
}

static JsonNode *mac_array(GArray *macs)
{
    JsonArray *a = json_array_new();

    for (guint i = 0; macs && i < macs->len; i++) {
        g_autofree char *m = qnic_format_mac((const uint8_t *)macs->data + 6 * i);
        json_array_add_string_element(a, m);
    }
    JsonNode *n = json_node_new(JSON_NODE_ARRAY);
    json_node_take_array(n, a);
    return n;
}

static JsonObject *rx_filter_object(QnicNetClient *nc)
{
    QnicRxFilterInfo info = { 0 };
    JsonObject *o = json_object_new();
    JsonArray *vlans = json_array_new();
    g_autofree char *mac = NULL;

    nc->ops->query_rx_filter(nc, &info);
    mac = qnic_format_mac(info.main_mac);
    json_object_set_string_member(o, "name", nc->name);
    json_object_set_boolean_member(o, "promiscuous", info.promiscuous);
    json_object_set_string_member(o, "multicast", rx_state_name(info.multicast));
    json_object_set_string_member(o, "unicast", rx_state_name(info.unicast));
    json_object_set_string_member(o, "vlan", rx_state_name(info.vlan));
    json_object_set_boolean_member(o, "broadcast-allowed", info.broadcast_allowed);
    json_object_set_boolean_member(o, "multicast-overflow", info.multicast_overflow);
    json_object_set_boolean_member(o, "unicast-overflow", info.unicast_overflow);
    json_object_set_string_member(o, "main-mac", mac);
    for (guint i = 0; info.vlan_table && i < info.vlan_table->len; i++) {
        json_array_add_int_element(vlans, g_array_index(info.vlan_table, uint16_t, i));
    }
    json_object_set_array_member(o, "vlan-table", vlans);
    json_object_set_member(o, "unicast-table", mac_array(info.unicast_table));
    json_object_set_member(o, "multicast-table", mac_array(info.multicast_table));
    qnic_rx_filter_info_clear(&info);
    return o;
}

static JsonNode *query_rx_filter(QnicQmpSession *s, JsonObject *args, const char **cls,
                                 char **desc)
{
    const char *name = json_object_has_member(args, "name") ?
                       json_object_get_string_member(args, "name") : NULL;
    JsonArray *a = json_array_new();
    bool found = false;

    for (GList *l = qnic_net_clients(s->machine->cfg.backends); l; l = l->next) {
        QnicNetClient *nc = l->data;
        if (name && strcmp(nc->name, name) != 0) {
            continue;
        }
        if (nc->ops->kind != QNIC_NET_CLIENT_NIC) {
            if (name) {
                *desc = g_strdup_printf("net client(%s) isn't a NIC", name);
                break;
            }
            continue;
        }
        if (nc->queue_index != 0) {
            continue;
        }
        if (nc->ops->query_rx_filter) {
            json_array_add_object_element(a, rx_filter_object(nc));
            found = true;
            /* the next change is reported again */
            qnic_net_rx_filter_notify_enable(nc);
        } else if (name) {
            *desc = g_strdup_printf("net client(%s) doesn't support rx-filter querying", name);
            break;
        }
        if (name) {
            break;
        }
    }
    if (!*desc && name && !found) {
        *desc = g_strdup_printf("invalid net client name: %s", name);
    }
    if (*desc) {
        json_array_unref(a);
        return NULL;
    }
    JsonNode *n = json_node_new(JSON_NODE_ARRAY);
    json_node_take_array(n, a);
    return n;
}

/* NIC_RX_FILTER_CHANGED: name only for a device with an id, as QEMU. */
static void rx_filter_event(QnicNetClient *nc, void *opaque)
{
    QnicMachine *m = opaque;
    QnicRxFilterInfo info = { 0 };
    JsonObject *d = json_object_new();

    if (nc->ops->query_rx_filter) {
        nc->ops->query_rx_filter(nc, &info);
    }
    if (info.path && g_str_has_prefix(info.path, "/machine/peripheral/")) {
        json_object_set_string_member(d, "name", nc->name);
    }
    json_object_set_string_member(d, "path", info.path ? info.path : "");
    qnic_rx_filter_info_clear(&info);
    qnic_qmp_event(m, "NIC_RX_FILTER_CHANGED", qmp_obj_node(d));
}

/* ---- devices: device_add, device_del, system_reset ---- */

/* A device_add value as a -device option value: QEMU takes strings,
 * numbers and booleans alike for device properties. */
static bool device_opt_value(JsonNode *n, const char *key, char **out, char **desc)
{
    if (JSON_NODE_HOLDS_VALUE(n)) {
        switch (json_node_get_value_type(n)) {
        case G_TYPE_STRING:
            *out = g_strdup(json_node_get_string(n));
            return true;
        case G_TYPE_BOOLEAN:
            *out = g_strdup(json_node_get_boolean(n) ? "on" : "off");
            return true;
        case G_TYPE_INT64:
            *out = g_strdup_printf("%" G_GINT64_FORMAT, json_node_get_int(n));
            return true;
        default:
            break;
        }
    }
    *desc = g_strdup_printf("Invalid parameter type for '%s', expected: string", key);
    return false;
}

/* The class of a device_add driver that can be plugged at run time, or
 * NULL with QEMU's words for why not. */
static const QnicSchemaType *hotpluggable_type(const char *driver, char **desc)
{
    const QnicSchemaType *t = qnic_schema_lookup(QNIC_SCHEMA_DEVICE, driver);
    const QnicDeviceClass *dc = t ? qnic_device_class_find(t->alias_of ? t->alias_of : t->name)
                                  : NULL;

    if (!dc) {
        *desc = g_strdup_printf("'%s' is not a valid device model name", driver);
        return NULL;
    }
    if (strcmp(dc->bus, "pci") != 0) {
        *desc = !strcmp(dc->bus, "isa") ? g_strdup("Bus 'isa.0' does not support hotplugging")
              : g_strdup_printf("No '%s' bus found for device '%s'",
                                !strcmp(dc->bus, "virtio-mmio") ? "virtio-bus" : dc->bus, driver);
        return NULL;
    }
    return t;
}

static JsonNode *cmd_device_add(QnicQmpSession *s, JsonObject *args, const char **cls, char **desc)
{
    g_autoptr(QnicOpts) o = qnic_opts_new("device");
    g_autoptr(GList) members = json_object_get_members(args);
    JsonNode *drv = json_object_get_member(args, "driver");
    JsonNode *bus = json_object_get_member(args, "bus");
    GError *err = NULL;
    QnicDevice *dev;

    if (!drv) {
        *desc = g_strdup("Parameter 'driver' is missing");
        return NULL;
    }
    if (!json_is(drv, "string")) {
        *desc = g_strdup("Invalid parameter type for 'driver', expected: string");
        return NULL;
    }
    if (!hotpluggable_type(json_node_get_string(drv), desc)) {
        return NULL;
    }
    if (bus && (!json_is(bus, "string") || strcmp(json_node_get_string(bus), "pci.0") != 0)) {
        *desc = g_strdup_printf("Bus '%s' not found",
                                json_is(bus, "string") ? json_node_get_string(bus) : "?");
        return NULL;
    }
    qnic_opts_append(o, "driver", json_node_get_string(drv));
    for (GList *l = members; l; l = l->next) {
        g_autofree char *v = NULL;
        if (!strcmp(l->data, "driver") || !strcmp(l->data, "bus")) {
            continue;
        }
        if (!device_opt_value(json_object_get_member(args, l->data), l->data, &v, desc)) {
            return NULL;
        }
        qnic_opts_append(o, l->data, v);
    }
    o->source = g_strdup("device_add");
    dev = qnic_device_create(s->machine, g_steal_pointer(&o), &err);
    if (!dev) {
        char *nl = strchr(err->message, '\n');
        *desc = nl ? g_strndup(err->message, nl - err->message) : g_strdup(err->message);
        g_error_free(err);
        return NULL;
    }
    qnic_pci_hotplug_plugged(qnic_pci_bus_hotplug(s->machine->pci), (QnicPciDevice *)dev);
    return NULL;
}

static JsonNode *cmd_device_del(QnicQmpSession *s, JsonObject *args, const char **cls, char **desc)
{
    const char *id = json_object_get_string_member(args, "id");
    QnicDevice *dev = qnic_device_find(s->machine, id);
    GError *err = NULL;

    if (!dev) {
        *cls = "DeviceNotFound";
        *desc = g_strdup_printf("Device '%s' not found", id);
        return NULL;
    }
    if (strcmp(dev->cls->bus, "pci") != 0) {
        *desc = g_strdup_printf("Bus '%s' does not support hotplugging",
                                !strcmp(dev->cls->bus, "isa") ? "isa.0" : dev->cls->bus);
        return NULL;
    }
    if (!qnic_pci_hotplug_request_unplug(qnic_pci_bus_hotplug(s->machine->pci),
                                         (QnicPciDevice *)dev, &err)) {
        *desc = g_strdup(err->message);
        g_error_free(err);
    }
    return NULL;
}

/* The guest ejected dev: QEMU reports a virtio PCI device's inner virtio
 * device first, then the device. */
static void device_deleted_event(void *opaque, QnicDevice *dev)
{
    QnicMachine *m = opaque;
    g_autofree char *path = qnic_device_path(dev);
    JsonObject *d;

    if (g_str_has_prefix(dev->cls->name, "virtio-") && g_str_has_suffix(dev->cls->name, "-pci")) {
        g_autofree char *inner = g_strdup_printf("%s/virtio-backend", path);
        d = json_object_new();
        json_object_set_string_member(d, "path", inner);
        qnic_qmp_event(m, "DEVICE_DELETED", qmp_obj_node(d));
    }
    d = json_object_new();
    if (dev->id) {
        json_object_set_string_member(d, "device", dev->id);
    }
    json_object_set_string_member(d, "path", path);
    qnic_qmp_event(m, "DEVICE_DELETED", qmp_obj_node(d));
}

static JsonNode *cmd_system_reset(QnicQmpSession *s, JsonObject *args, const char **cls,
                                  char **desc)
{
    JsonObject *d = json_object_new();
    GError *err = NULL;

    json_object_set_boolean_member(d, "guest", false);
    json_object_set_string_member(d, "reason", "host-qmp-system-reset");
    if (qnic_vmm_no_reboot()) {
        /* QEMU 7.2 with -no-reboot: every reset but a subsystem's is a
         * shutdown; the reply goes first. */
        send_return(s, s->cur_id, NULL);
        s->replied = true;
        qnic_qmp_event(s->machine, "SHUTDOWN", qmp_obj_node(d));
        qnic_vmm_request_exit(0);
        return NULL;
    }
    qnic_qmp_event(s->machine, "RESET", qmp_obj_node(d));
    if (!qnic_vmm_system_reset(s->machine, &err)) {
        *desc = g_strdup(err->message);
        g_error_free(err);
    }
    return NULL;
}

static const ArgDesc no_args[] = { { NULL } };
static const ArgDesc name_opt_args[] = { { "name", ARG_STR, true }, { NULL } };
static const ArgDesc capabilities_args[] = { { "enable", ARG_STR_LIST, true }, { NULL } };
static const ArgDesc set_link_args[] = {
    { "name", ARG_STR, false }, { "up", ARG_BOOL, false }, { NULL }
};
static const ArgDesc netdev_del_args[] = { { "id", ARG_STR, false }, { NULL } };
static const ArgDesc device_del_args[] = { { "id", ARG_STR, false }, { NULL } };

static const QmpCommand commands[] = {
    { "qmp_capabilities", qmp_capabilities, capabilities_args, true },
    { "query-version", query_version, no_args, false },
    { "query-commands", query_commands, no_args, false },
    { "query-status", query_status, no_args, false },
    { "stop", cmd_stop, no_args, false },
    { "cont", cmd_cont, no_args, false },
    { "quit", cmd_quit, no_args, false },
    { "set_link", cmd_set_link, set_link_args, false },
    { "netdev_add", cmd_netdev_add, NULL, false },
    { "netdev_del", cmd_netdev_del, netdev_del_args, false },
    { "query-rx-filter", query_rx_filter, name_opt_args, false },
    { "device_add", cmd_device_add, NULL, false },
    { "device_del", cmd_device_del, device_del_args, false },
    { "system_reset", cmd_system_reset, no_args, false },
    { "query-pci", qmp_query_pci, qmp_query_pci_args, false },
    { "qom-list", qmp_qom_list, qmp_qom_list_args, false },
    { "qom-get", qmp_qom_get, qmp_qom_get_args, false },
    { "human-monitor-command", qmp_hmp, qmp_hmp_args, false },
    { "announce-self", qmp_announce_self, qmp_announce_args, false },
    { "query-netdev-stats", qmp_query_netdev_stats, qmp_netdev_stats_args, false },
    { "migrate", qmp_migrate, qmp_migrate_args, false },
    { "migrate-incoming", qmp_migrate_incoming, qmp_migrate_incoming_args, false },
    { "migrate_cancel", qmp_migrate_cancel, qmp_no_args, false },
    { "query-migrate", qmp_query_migrate, qmp_no_args, false },
    { "migrate-set-capabilities", qmp_migrate_set_caps, NULL, false },
    { "query-migrate-capabilities", qmp_query_migrate_caps, qmp_no_args, false },
    { "getfd", qmp_getfd, qmp_fdname_args, false },
    { "closefd", qmp_closefd, qmp_fdname_args, false },
    { "x-query-device-state", qmp_query_device_state, qmp_device_state_args, false },
    { NULL }
};

/* ---- dispatch ---- */

/* ---- what json-glib does not check, or loses ---- */

static bool is_noncharacter(gunichar c)
{
    return (c >= 0xFDD0 && c <= 0xFDEF) || (c & 0xFFFE) == 0xFFFE;
}

/* The four hex digits at P (N bytes left), or -1. */
static gint32 hex4(const char *p, size_t n)
{
    gint32 v = 0;

    if (n < 4) {
        return -1;
    }
    for (int i = 0; i < 4; i++) {
        int d = g_ascii_xdigit_value(p[i]);
        if (d < 0) {
            return -1;
        }
        v = v * 16 + d;
    }
    return v;
}

/* The code point of the \u escape at T[I] (a surrogate pair is one) and
 * its length in *N, or -1 and QEMU's parse error in *DESC: QEMU refuses
 * lone surrogates and noncharacters, where json-glib even swallows the
 * character after a lone high surrogate. */
static gint32 unicode_escape(const char *t, size_t len, size_t i, size_t *n, char **desc)
{
    gint32 cp = hex4(t + i + 2, len - i - 2);
    size_t quote = 6;

    if (cp >= 0xD800 && cp <= 0xDBFF) {
        gint32 lo = len - i >= 12 && t[i + 6] == '\\' && t[i + 7] == 'u' ?
                    hex4(t + i + 8, len - i - 8) : -1;
        if (lo >= 0xDC00 && lo <= 0xDFFF) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            quote = 12;
        } else {
            cp = -1;
        }
    } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
        cp = -1;
    }
    if (cp < 0 || is_noncharacter(cp)) {
        *desc = g_strdup_printf("JSON parse error, %.*s is not a valid Unicode character",
                                (int)MIN(quote, len - i), t + i);
        return -1;
    }
    *n = quote;
    return cp;
}

/* Whether T[0..N) is a JSON number: json-glib also takes 0x10, .5, 1.
 * and 00, which QEMU refuses and an echoed id must not carry. */
static bool json_number_ok(const char *t, size_t n)
{
    size_t i = t[0] == '-';

    if (i < n && t[i] == '0') {
        i++;
    } else if (i < n && g_ascii_isdigit(t[i])) {
        while (i < n && g_ascii_isdigit(t[i])) {
            i++;
        }
    } else {
        return false;
    }
    if (i < n && t[i] == '.') {
        size_t d = ++i;
        while (i < n && g_ascii_isdigit(t[i])) {
            i++;
        }
        if (i == d) {
            return false;
        }
    }
    if (i < n && (t[i] == 'e' || t[i] == 'E')) {
        i += i + 1 < n && (t[i + 1] == '+' || t[i + 1] == '-') ? 2 : 1;
        size_t d = i;
        while (i < n && g_ascii_isdigit(t[i])) {
            i++;
        }
        if (i == d) {
            return false;
        }
    }
    return i == n;
}

/* A token outside strings at T[I], its length in *N: numbers must be
 * JSON's, and json-glib's comments are refused as QEMU refuses a '/', so
 * that no quote or ':' hides in one. */
static bool check_token(const char *t, size_t len, size_t i, size_t *n, char **desc)
{
    *n = 1;
    if (t[i] == '-' || t[i] == '.' || g_ascii_isdigit(t[i])) {
        while (i + *n < len && (g_ascii_isalnum(t[i + *n]) || strchr(".+-", t[i + *n]))) {
            ++*n;
        }
        if (!json_number_ok(t + i, *n)) {
            *desc = g_strdup_printf("JSON parse error, stray '%.*s'", (int)*n, t + i);
            return false;
        }
    } else if (t[i] == '/') {
        *desc = g_strdup("JSON parse error, stray '/'");
        return false;
    }
    return true;
}

/* Checks the strings and numbers of the value T as QEMU's parser does, and counts the
 * members of its objects (the ':' outside strings). Strings are in double
 * or single quotes (QEMU and json-glib take both). A string
 * holding a NUL (\u0000, or C0 80 as QEMU also takes) makes *OUT a copy of
 * T to parse, with NUL_STANDIN in its place. false: refused, with *DESC. */
static bool check_strings(const char *t, size_t len, GString **out, size_t *members,
                          char **desc)
{
    char quote = 0;
    size_t done = 0;            /* t[0..done) is in *out */

    for (size_t i = 0, n; i < len; i += n) {
        guchar c = t[i];
        gint32 cp = -1;

        n = 1;
        if (!quote) {
            if (!check_token(t, len, i, &n, desc)) {
                return false;
            }
            quote = c == '"' || c == '\'' ? c : 0;
            *members += c == ':';
            continue;
        }
        if (c == quote) {
            quote = 0;
        } else if (c == '\\' && i + 1 < len && t[i + 1] == 'u') {
            if ((cp = unicode_escape(t, len, i, &n, desc)) < 0) {
                return false;
            }
        } else if (c == '\\') {
            n = 2;
        } else if (c == 0xC0 && i + 1 < len && (guchar)t[i + 1] == 0x80) {
            cp = 0;
            n = 2;
        } else if (c >= 0x80) {
            gunichar u = g_utf8_get_char_validated(t + i, len - i);
            if (u > 0x10FFFF || is_noncharacter(u)) {
                *desc = g_strdup("JSON parse error, invalid UTF-8 sequence in string");
                return false;
            }
            n = g_utf8_skip[c];
        }
        if (cp == 0) {
            if (!*out) {
                *out = g_string_sized_new(len + 16);
            }
            g_string_append_len(*out, t + done, i - done);
            g_string_append(*out, NUL_STANDIN);
            done = i + n;
        }
    }
    if (*out) {
        g_string_append_len(*out, t + done, len - done);
    }
    return true;
}

static size_t count_members(JsonNode *n)
{
    size_t count = 0;

    if (JSON_NODE_HOLDS_ARRAY(n)) {
        JsonArray *a = json_node_get_array(n);
        for (guint i = 0; i < json_array_get_length(a); i++) {
            count += count_members(json_array_get_element(a, i));
        }
    } else if (JSON_NODE_HOLDS_OBJECT(n)) {
        g_autoptr(GList) vals = json_object_get_values(json_node_get_object(n));
        count = g_list_length(vals);
        for (GList *l = vals; l; l = l->next) {
            count += count_members(l->data);
        }
    }
    return count;
}

static char *nul_restore_str(const char *str)
{
    GString *g = g_string_new(str);

    g_string_replace(g, NUL_STANDIN, NUL_INTERNAL, 0);
    return g_string_free(g, FALSE);
}

/* A copy of json-glib's tree with each NUL_STANDIN made NUL_INTERNAL. */
static JsonNode *nul_restore(JsonNode *n)
{
    if (JSON_NODE_HOLDS_ARRAY(n)) {
        JsonArray *src = json_node_get_array(n);
        JsonArray *a = json_array_sized_new(json_array_get_length(src));
        for (guint i = 0; i < json_array_get_length(src); i++) {
            json_array_add_element(a, nul_restore(json_array_get_element(src, i)));
        }
        JsonNode *r = json_node_new(JSON_NODE_ARRAY);
        json_node_take_array(r, a);
        return r;
    }
    if (JSON_NODE_HOLDS_OBJECT(n)) {
        JsonObject *src = json_node_get_object(n);
        JsonObject *o = json_object_new();
        g_autoptr(GList) names = json_object_get_members(src);
        for (GList *l = names; l; l = l->next) {
            g_autofree char *name = nul_restore_str(l->data);
            json_object_set_member(o, name, nul_restore(json_object_get_member(src, l->data)));
        }
        return qmp_obj_node(o);
    }
    if (JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_STRING) {
        g_autofree char *str = nul_restore_str(json_node_get_string(n));
        JsonNode *r = json_node_new(JSON_NODE_VALUE);
        json_node_set_string(r, str);
        return r;
    }
    return json_node_copy(n);
}

/* Whether the escaped JSON key K (N bytes, no quotes) is WANT, which is
 * plain ASCII: "\u0069d" is "id", "id\u0000" is not. */
static bool key_is(const char *k, size_t n, const char *want)
{
    for (size_t i = 0; i < n; i++, want++) {
        gint32 c = (guchar)k[i];
        if (c == '\\' && i + 6 <= n && k[i + 1] == 'u') {
            c = hex4(k + i + 2, n - i - 2);
            i += 5;
        }
        if (!*want || c != (guchar)*want) {
            return false;
        }
    }
    return !*want;
}

/* T[A..B) as standard JSON on one line: no whitespace between tokens,
 * raw control characters in strings escaped, 'strings' in double quotes. */
static char *compact_json(const char *t, size_t a, size_t b)
{
    GString *g = g_string_sized_new(b - a);
    char quote = 0;

    for (size_t i = a; i < b; i++) {
        guchar c = t[i];
        if (!quote) {
            quote = c == '"' || c == '\'' ? c : 0;
            if (quote || !g_ascii_isspace(c)) {
                g_string_append_c(g, quote ? '"' : c);
            }
        } else if (c == quote) {
            quote = 0;
            g_string_append_c(g, '"');
        } else if (c < 0x20 || c == '"') {
            g_string_append_printf(g, "\\u%04x", c);
        } else if (c == '\\' && i + 1 < b) {
            /* \' is no JSON escape */
            g_string_append(g, t[i + 1] == '\'' ? "'" : (char[]){ '\\', t[i + 1], 0 });
            i++;
        } else {
            g_string_append_c(g, c);
        }
    }
    return g_string_free(g, FALSE);
}

/* The top-level member "id" of the object T as the client wrote it (QEMU
 * echoes 18446744073709551615 and "a\u0000b" as given; json-glib's tree
 * holds -1 and "a"), compacted; NULL if it has none. Duplicate keys are
 * refused before this runs. */
static char *raw_id(const char *t, size_t len)
{
    int depth = 0;
    char quote = 0;
    bool escape = false, want_key = false, is_id = false;
    size_t key = 0, key_end = 0, val = 0;

    for (size_t i = 0; i < len; i++) {
        char c = t[i];
        if (quote) {
            if (escape) {
                escape = false;
            } else if (c == '\\') {
                escape = true;
            } else if (c == quote) {
                quote = 0;
                key_end = want_key && depth == 1 ? i : key_end;
                want_key = false;
            }
        } else if (c == '"' || c == '\'') {
            quote = c;
            key = want_key && depth == 1 ? i + 1 : key;
        } else if (c == '{' || c == '[') {
            want_key = ++depth == 1 && c == '{';
        } else if (depth == 1 && c == ':') {
            is_id = key_end > key && key_is(t + key, key_end - key, "id");
            val = i + 1;
        } else if (depth == 1 && (c == ',' || c == '}')) {
            if (is_id) {
                return compact_json(t, val, i);
            }
            want_key = true;
            depth -= c == '}';
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
    return NULL;
}

/* Whether an id can be echoed as JSON: a number too large for a double
 * (1e1000) parses as infinity, and QEMU echoes "inf", which is no JSON. */
static bool json_finite(JsonNode *n, int depth)
{
    if (depth > QMP_MAX_DEPTH) {
        return false;
    }
    if (JSON_NODE_HOLDS_VALUE(n)) {
        return json_node_get_value_type(n) != G_TYPE_DOUBLE || isfinite(json_node_get_double(n));
    }
    if (JSON_NODE_HOLDS_ARRAY(n)) {
        JsonArray *a = json_node_get_array(n);
        for (guint i = 0; i < json_array_get_length(a); i++) {
            if (!json_finite(json_array_get_element(a, i), depth + 1)) {
                return false;
            }
        }
    } else if (JSON_NODE_HOLDS_OBJECT(n)) {
        g_autoptr(GList) vals = json_object_get_values(json_node_get_object(n));
        for (GList *l = vals; l; l = l->next) {
            if (!json_finite(l->data, depth + 1)) {
                return false;
            }
        }
    }
    return true;
}

static void run_command(QnicQmpSession *s, JsonNode *root, const char *text, size_t len)
{
    JsonObject *req;
    JsonNode *exec, *args_node;
    g_autofree char *id = NULL;
    const char *name;
    const QmpCommand *c;
    const char *cls = "GenericError";
    char *desc = NULL;
    JsonNode *ret;
    g_autoptr(JsonObject) empty = json_object_new();
    g_autoptr(GList) members = NULL;

    if (!JSON_NODE_HOLDS_OBJECT(root)) {
        send_error(s, NULL, "GenericError", "QMP input must be a JSON object");
        return;
    }
    req = json_node_get_object(root);
    if (json_object_has_member(req, "id")) {
        if (!json_finite(json_object_get_member(req, "id"), 0)) {
            send_error(s, NULL, "GenericError",
                       "QMP input member 'id' holds a number out of range");
            return;
        }
        id = raw_id(text, len);
    }
    members = json_object_get_members(req);
    for (GList *l = members; l; l = l->next) {
        const char *m = l->data;
        if (strcmp(m, "execute") && strcmp(m, "arguments") && strcmp(m, "id")) {
            send_error(s, id, "GenericError", "QMP input member '%s' is unexpected", m);
            return;
        }
    }
    exec = json_object_get_member(req, "execute");
    if (!exec) {
        send_error(s, id, "GenericError", "QMP input lacks member 'execute'");
        return;
    }
    if (!JSON_NODE_HOLDS_VALUE(exec) || json_node_get_value_type(exec) != G_TYPE_STRING) {
        send_error(s, id, "GenericError", "QMP input member 'execute' must be a string");
        return;
    }
    args_node = json_object_get_member(req, "arguments");
    if (args_node && !JSON_NODE_HOLDS_OBJECT(args_node)) {
        send_error(s, id, "GenericError", "QMP input member 'arguments' must be an object");
        return;
    }
    name = json_node_get_string(exec);
    for (c = commands; c->name && strcmp(c->name, name) != 0; c++) {
    }
    if (!s->negotiated && !(c->name && c->before_negotiation)) {
        send_error(s, id, "CommandNotFound",
                   "Expecting capabilities negotiation with 'qmp_capabilities'");
        return;
    }
    if (!c->name) {
        send_error(s, id, "CommandNotFound", "The command %s has not been found", name);
        return;
    }
    JsonObject *args = args_node ? json_node_get_object(args_node) : empty;
    if (c->args && !check_args(c, args, &desc)) {
        send_error(s, id, "GenericError", "%s", desc);
        g_free(desc);
        return;
    }
    s->cur_id = id;
    s->replied = false;
    ret = c->fn(s, args, &cls, &desc);
    s->cur_id = NULL;
    if (s->replied) {
        return;
    }
    if (desc) {
        send_error(s, id, cls, "%s", desc);
        g_free(desc);
        if (ret) {
            json_node_unref(ret);
        }
        return;
    }
    send_return(s, id, ret);
}

static void run_value(QnicQmpSession *s, const char *text, size_t len)
{
    g_autoptr(JsonParser) p = json_parser_new_immutable();
    g_autoptr(GString) nul_text = NULL;
    g_autoptr(JsonNode) restored = NULL;
    g_autofree char *desc = NULL;
    GError *err = NULL;
    size_t members = 0;
    JsonNode *root;

    if (!check_strings(text, len, &nul_text, &members, &desc)) {
        send_error(s, NULL, "GenericError", "%s", desc);
        return;
    }
    if (!json_parser_load_from_data(p, nul_text ? nul_text->str : text,
                                    nul_text ? (gssize)nul_text->len : (gssize)len, &err)) {
        send_error(s, NULL, "GenericError", "JSON parse error, %s", err->message);
        g_error_free(err);
        return;
    }
    if (!(root = json_parser_get_root(p))) {
        return;                 /* whitespace only */
    }
    /* json-glib keeps the last of two equal keys: a proxy reading the
     * first "execute" would pass another command. QEMU refuses them. */
    if (count_members(root) != members) {
        send_error(s, NULL, "GenericError", "JSON parse error, duplicate key");
        return;
    }
    if (nul_text) {
        root = restored = nul_restore(root);
    }
    run_command(s, root, text, len);
}

/* The splitter: a value ends when its brackets close (objects, arrays) or,
 * for a bare scalar at the top level, at the next whitespace or bracket. */
static void end_value(QnicQmpSession *s)
{
    if (!s->skipping && s->buf->len) {
        run_value(s, s->buf->str, s->buf->len);
    }
    g_string_truncate(s->buf, 0);
    s->depth = 0;
    s->quote = 0;
    s->escape = s->skipping = false;
}

static void too_big(QnicQmpSession *s)
{
    send_error(s, NULL, "GenericError", "JSON token size limit exceeded");
    g_string_truncate(s->buf, 0);
    s->skipping = true;
}

/* An opening bracket; false: it is dropped. Past the depth bound QEMU's
 * rule holds: the value so far is dropped with QEMU's error and reading
 * starts afresh after this bracket, so the depth never passes the bound
 * whatever comes (2 GiB of '[' once overflowed it). */
static bool open_bracket(QnicQmpSession *s)
{
    if (s->depth == 0 && s->buf->len) {
        end_value(s);           /* a scalar ran into a bracket */
    }
    if (s->depth == QMP_MAX_DEPTH) {
        if (!s->skipping) {
            send_error(s, NULL, "GenericError", "JSON nesting depth limit exceeded");
        }
        s->skipping = true;
        end_value(s);
        return false;
    }
    s->depth++;
    return true;
}

void qnic_qmp_session_input(QnicQmpSession *s, const char *buf, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char ch = buf[i];

        if (s->quote) {
            if (s->escape) {
                s->escape = false;
            } else if (ch == '\\') {
                s->escape = true;
            } else if (ch == s->quote) {
                s->quote = 0;
            }
        } else if (ch == '"' || ch == '\'') {
            s->quote = ch;
        } else if ((ch == '{' || ch == '[') && !open_bracket(s)) {
            continue;
        } else if (ch == '}' || ch == ']') {
            if (s->depth == 0) {
                /* a closing bracket with nothing open */
                if (s->buf->len) {
                    end_value(s);
                }
                g_string_append_c(s->buf, ch);
                end_value(s);
                continue;
            }
            if (--s->depth == 0) {
                if (!s->skipping) {
                    g_string_append_c(s->buf, ch);
                }
                end_value(s);
                continue;
            }
        } else if (s->depth == 0 && g_ascii_isspace(ch)) {
            if (s->buf->len) {
                end_value(s);
            }
            continue;
        }
        if (s->skipping) {
            if (s->depth == 0 && !s->quote) {
                end_value(s);
            }
            continue;
        }
        g_string_append_c(s->buf, ch);
        if (s->buf->len > QMP_MAX_VALUE) {
            too_big(s);
        }
    }
}

QnicQmpSession *qnic_qmp_session_new(QnicMachine *m, QnicQmpOutput *out, void *opaque)
{
    QnicQmpSession *s = g_new0(QnicQmpSession, 1);

    s->machine = m;
    s->out = out;
    s->out_opaque = opaque;
    s->buf = g_string_new(NULL);
    s->pending_fd = -1;
    sessions = g_list_append(sessions, s);
    qnic_migration_set_event_hook(qmp_migration_event);
    if (m && m->cfg.backends) {
        qnic_net_set_rx_filter_hook(m->cfg.backends, rx_filter_event, m);
        qnic_net_set_stream_hook(m->cfg.backends, qmp_stream_event, m);
    }
    if (m && m->pci) {
        qnic_pci_hotplug_set_deleted_handler(qnic_pci_bus_hotplug(m->pci), device_deleted_event, m);
    }
    return s;
}

void qnic_qmp_session_free(QnicQmpSession *s)
{
    if (!s) {
        return;
    }
    sessions = g_list_remove(sessions, s);
    if (s->announce_timers) {
        g_hash_table_destroy(s->announce_timers);
    }
    qmp_session_set_fd(s, -1);
    g_string_free(s->buf, TRUE);
    g_free(s);
}

void qnic_qmp_session_allow_netdevs(QnicQmpSession *s, const char *const *types)
{
    s->netdev_types = types;
}

void qnic_qmp_session_greet(QnicQmpSession *s)
{
    JsonObject *qmp = json_object_new();
    JsonObject *o = json_object_new();

    s->negotiated = false;
    g_string_truncate(s->buf, 0);
    s->depth = 0;
    s->quote = 0;
    s->escape = s->skipping = false;
    json_object_set_member(qmp, "version", version_node());
    json_object_set_array_member(qmp, "capabilities", json_array_new());
    json_object_set_object_member(o, "QMP", qmp);
    g_autoptr(JsonNode) n = qmp_obj_node(o);
    send_node(s, n, NULL);
}

/* ---- monitors on socket chardevs ---- */

/* A client that stops reading must not grow qnic without bound. */
#define QMP_MAX_OUTBUF  (16 * 1024 * 1024)

typedef struct QmpMonitor {
    QnicChardev *chr;
    QnicQmpSession *session;
    QnicFdWatch *watch;
    GString *outbuf;
    bool dead;                  /* dropped; the BH disconnects */
    QnicBH *drop_bh;
} QmpMonitor;

static GList *monitors;

static void mon_update_watch(QmpMonitor *mon)
{
    if (mon->watch) {
        qnic_fd_watch_set(mon->watch, mon->dead ? 0 :
                          G_IO_IN | G_IO_HUP | G_IO_ERR | (mon->outbuf->len ? G_IO_OUT : 0));
    }
}

static void mon_drop(QmpMonitor *mon)
{
    if (!mon->dead) {
        mon->dead = true;
        mon_update_watch(mon);
        qnic_bh_schedule(mon->drop_bh);
    }
}

static void mon_flush(QmpMonitor *mon)
{
    int fd = qnic_chardev_fd(mon->chr);

    while (mon->outbuf->len && !mon->dead) {
        ssize_t n = send(fd, mon->outbuf->str, mon->outbuf->len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        }
        if (n <= 0) {
            mon_drop(mon);
            return;
        }
        g_string_erase(mon->outbuf, 0, n);
    }
    mon_update_watch(mon);
}

static void mon_output(void *opaque, const char *buf, size_t len)
{
    QmpMonitor *mon = opaque;

    if (mon->dead) {
        return;
    }
    if (mon->outbuf->len + len > QMP_MAX_OUTBUF) {
        qnic_warn("QMP monitor on %s: the client does not read its replies; disconnecting",
                  qnic_chardev_describe(mon->chr));
        mon_drop(mon);
        return;
    }
    g_string_append_len(mon->outbuf, buf, len);
    mon_flush(mon);
}

static void mon_io(void *opaque, int fd, GIOCondition cond)
{
    QmpMonitor *mon = opaque;
    char buf[4096];

    if (cond & G_IO_OUT) {
        mon_flush(mon);
    }
    if (!(cond & (G_IO_IN | G_IO_HUP | G_IO_ERR)) || mon->dead) {
        return;
    }
    struct iovec iov = { buf, sizeof(buf) };
    int fds[1], nfds = 0;
    /* a descriptor for getfd may ride on the bytes (SCM_RIGHTS) */
    ssize_t n = qnic_recv_fds(fd, &iov, 1, fds, 1, &nfds, NULL, MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) {
        return;
    }
    if (nfds) {
        qmp_session_set_fd(mon->session, fds[0]);
    }
    if (n <= 0) {
        mon_drop(mon);
        return;
    }
    qnic_qmp_session_input(mon->session, buf, (size_t)n);
}

static void mon_attach(QmpMonitor *mon)
{
    int fd = qnic_chardev_fd(mon->chr);

    mon->dead = false;
    g_string_truncate(mon->outbuf, 0);
    mon->watch = qnic_fd_watch_add(fd, G_IO_IN | G_IO_HUP | G_IO_ERR, mon_io, mon);
    qnic_qmp_session_greet(mon->session);
}

static void mon_detach(QmpMonitor *mon)
{
    if (mon->watch) {
        qnic_fd_watch_remove(mon->watch);
        mon->watch = NULL;
    }
}

static void mon_drop_bh(void *opaque)
{
    QmpMonitor *mon = opaque;

    mon_detach(mon);
    /* a server listens again; a client connection is over */
    qnic_chardev_disconnect(mon->chr);
}

static void mon_opened(void *opaque, QnicChardev *chr)
{
    QmpMonitor *mon = opaque;

    mon_detach(mon);
    mon_attach(mon);
}

bool qnic_qmp_monitor_add(QnicChardev *chr, QnicMachine *m, GError **errp)
{
    QmpMonitor *mon;

    if (!qnic_chardev_claim(chr, errp)) {
        return false;
    }
    mon = g_new0(QmpMonitor, 1);
    mon->chr = chr;
    mon->outbuf = g_string_new(NULL);
    mon->session = qnic_qmp_session_new(m, mon_output, mon);
    mon->drop_bh = qnic_bh_new(mon_drop_bh, mon);
    monitors = g_list_append(monitors, mon);
    if (qnic_chardev_fd(chr) >= 0) {
        mon_attach(mon);
    }
    qnic_chardev_set_handler(chr, mon_opened, mon);
    return true;
}

void qnic_qmp_monitors_free(void)
{
    while (monitors) {
        QmpMonitor *mon = monitors->data;
        monitors = g_list_delete_link(monitors, monitors);
        /* what is still queued (the reply to quit, SHUTDOWN) goes out */
        if (!mon->dead && mon->outbuf->len) {
            int fd = qnic_chardev_fd(mon->chr);
            struct timeval tv = { .tv_sec = 1 };
            fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
            while (mon->outbuf->len) {
                ssize_t n = send(fd, mon->outbuf->str, mon->outbuf->len, MSG_NOSIGNAL);
                if (n <= 0) {
                    break;
                }
                g_string_erase(mon->outbuf, 0, n);
            }
        }
        mon_detach(mon);
        qnic_bh_free(mon->drop_bh);
        qnic_chardev_release(mon->chr);
        qnic_qmp_session_free(mon->session);
        g_string_free(mon->outbuf, TRUE);
        g_free(mon);
    }
}
