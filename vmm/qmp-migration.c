/*
 * QMP's migration commands as QEMU 7.2 has them (migrate, migrate-incoming,
 * migrate_cancel, query-migrate, migrate-set-capabilities,
 * query-migrate-capabilities, getfd/closefd for fd: URIs) with QEMU's
 * replies, errors and events (MIGRATION, MIGRATION_PASS, STOP, RESUME), over
 * the state machines of vmm/migration.c; and qnic's x-query-device-state,
 * which returns one device's state stream (qnic/state.h) in base64 so that
 * a test can compare a device's state before and after a migration field
 * by field.
 */
#include "vmm/qmp-int.h"
#include "vmm/migration.h"
#include "vmm/vmm.h"
#include "qnic/device.h"
#include <unistd.h>

const ArgDesc qmp_no_args[] = { { NULL } };
const ArgDesc qmp_migrate_args[] = {
    { "uri", ARG_STR, false }, { "blk", ARG_BOOL, true }, { "inc", ARG_BOOL, true },
    { "detach", ARG_BOOL, true }, { "resume", ARG_BOOL, true }, { NULL }
};
const ArgDesc qmp_migrate_incoming_args[] = { { "uri", ARG_STR, false }, { NULL } };
const ArgDesc qmp_fdname_args[] = { { "fdname", ARG_STR, false }, { NULL } };
const ArgDesc qmp_device_state_args[] = { { "id", ARG_STR, false }, { NULL } };

void qmp_migration_event(QnicMachine *m, const char *event, const char *status, int pass)
{
    JsonObject *d = NULL;

    if (status) {
        d = json_object_new();
        json_object_set_string_member(d, "status", status);
    } else if (pass) {
        d = json_object_new();
        json_object_set_int_member(d, "pass", pass);
    }
    qnic_qmp_event(m, event, d ? qmp_obj_node(d) : NULL);
}

static JsonNode *fail(char **desc, GError *err)
{
    *desc = g_strdup(err->message);
    g_error_free(err);
    return NULL;
}

JsonNode *qmp_migrate(QnicQmpSession *s, JsonObject *args, const char **cls, char **desc)
{
    GError *err = NULL;

    if ((json_object_has_member(args, "blk") && json_object_get_boolean_member(args, "blk")) ||
        (json_object_has_member(args, "inc") && json_object_get_boolean_member(args, "inc"))) {
        *desc = g_strdup("block migration (blk, inc) is not supported by qnic: it has no disks");
        return NULL;
    }
    if (json_object_has_member(args, "resume") &&
        json_object_get_boolean_member(args, "resume")) {
        *desc = g_strdup("Cannot resume if there is no paused migration");
        return NULL;
    }
    if (!qnic_migration_start(json_object_get_string_member(args, "uri"), &err)) {
        return fail(desc, err);
    }
    return NULL;
}

JsonNode *qmp_migrate_incoming(QnicQmpSession *s, JsonObject *args, const char **cls,
                               char **desc)
{
    GError *err = NULL;

    if (!qnic_migration_incoming_start(json_object_get_string_member(args, "uri"), &err)) {
        return fail(desc, err);
    }
    return NULL;
}

JsonNode *qmp_migrate_cancel(QnicQmpSession *s, JsonObject *args, const char **cls,
                             char **desc)
{
    qnic_migration_cancel();
    return NULL;
}

static JsonObject *ram_info(const QnicMigStats *st)
{
    JsonObject *r = json_object_new();
    double secs = st->total_ms > 0 ? st->total_ms / 1000.0 : 0;

    json_object_set_int_member(r, "transferred", (gint64)st->transferred);
    json_object_set_int_member(r, "remaining", (gint64)st->remaining);
    json_object_set_int_member(r, "total", (gint64)st->total);
    json_object_set_int_member(r, "duplicate", (gint64)st->duplicate);
    json_object_set_int_member(r, "skipped", 0);
    json_object_set_int_member(r, "normal", (gint64)st->normal);
    json_object_set_int_member(r, "normal-bytes", (gint64)(st->normal * 4096));
    json_object_set_int_member(r, "dirty-pages-rate", 0);
    json_object_set_double_member(r, "mbps", secs ? st->transferred * 8.0 / 1e6 / secs : 0);
    json_object_set_int_member(r, "dirty-sync-count", (gint64)st->dirty_syncs);
    json_object_set_int_member(r, "postcopy-requests", 0);
    json_object_set_int_member(r, "page-size", 4096);
    json_object_set_int_member(r, "multifd-bytes", 0);
    json_object_set_int_member(r, "pages-per-second", 0);
    json_object_set_int_member(r, "precopy-bytes", (gint64)st->transferred);
    json_object_set_int_member(r, "downtime-bytes", 0);
    json_object_set_int_member(r, "postcopy-bytes", 0);
    json_object_set_int_member(r, "dirty-sync-missed-zero-copy", 0);
    return r;
}

JsonNode *qmp_query_migrate(QnicQmpSession *s, JsonObject *args, const char **cls,
                            char **desc)
{
    const QnicMigStats *st = qnic_migration_stats();
    JsonObject *o = json_object_new();

    if (st->status == MIG_NONE) {
        return qmp_obj_node(o);
    }
    json_object_set_string_member(o, "status", qnic_mig_status_name(st->status));
    if (!st->incoming && (st->status == MIG_ACTIVE || st->status == MIG_COMPLETED)) {
        json_object_set_int_member(o, "setup-time", st->setup_ms);
        json_object_set_int_member(o, "total-time", st->total_ms);
        if (st->status == MIG_COMPLETED) {
            json_object_set_int_member(o, "downtime", st->downtime_ms);
        } else {
            json_object_set_int_member(o, "expected-downtime", 300);
        }
        json_object_set_object_member(o, "ram", ram_info(st));
    }
    if (st->status == MIG_FAILED && st->error) {
        json_object_set_string_member(o, "error-desc", st->error);
    }
    return qmp_obj_node(o);
}

/* Check every entry first: nothing changes unless all are good. */
static bool caps_check(JsonArray *a, char **desc)
{
    for (guint i = 0; i < json_array_get_length(a); i++) {
        JsonNode *n = json_array_get_element(a, i);
        JsonObject *c = JSON_NODE_HOLDS_OBJECT(n) ? json_node_get_object(n) : NULL;
        JsonNode *name = c ? json_object_get_member(c, "capability") : NULL;
        JsonNode *state = c ? json_object_get_member(c, "state") : NULL;
        bool known = false;

        if (!c) {
            *desc = g_strdup_printf("Invalid parameter type for 'capabilities[%u]', "
                                    "expected: object", i);
            return false;
        }
        if (!name || !JSON_NODE_HOLDS_VALUE(name) ||
            json_node_get_value_type(name) != G_TYPE_STRING) {
            *desc = g_strdup(name ? "Invalid parameter type for 'capability', expected: string"
                                  : "Parameter 'capability' is missing");
            return false;
        }
        if (!state || !JSON_NODE_HOLDS_VALUE(state) ||
            json_node_get_value_type(state) != G_TYPE_BOOLEAN) {
            *desc = g_strdup(state ? "Invalid parameter type for 'state', expected: boolean"
                                   : "Parameter 'state' is missing");
            return false;
        }
        for (const char *const *k = qnic_mig_capability_names; *k; k++) {
            known |= g_str_equal(*k, json_node_get_string(name));
        }
        if (!known) {
            *desc = g_strdup_printf("Parameter 'capability' does not accept value '%s'",
                                    json_node_get_string(name));
            return false;
        }
    }
    return true;
}

JsonNode *qmp_migrate_set_caps(QnicQmpSession *s, JsonObject *args, const char **cls,
                               char **desc)
{
    JsonNode *caps = json_object_get_member(args, "capabilities");
    JsonArray *a;
    GError *err = NULL;
    g_autoptr(GList) members = json_object_get_members(args);

    if (!caps) {
        *desc = g_strdup("Parameter 'capabilities' is missing");
        return NULL;
    }
    if (!JSON_NODE_HOLDS_ARRAY(caps)) {
        *desc = g_strdup("Invalid parameter type for 'capabilities', expected: array");
        return NULL;
    }
    for (GList *l = members; l; l = l->next) {
        if (strcmp(l->data, "capabilities") != 0) {
            *desc = g_strdup_printf("Parameter '%s' is unexpected", (char *)l->data);
            return NULL;
        }
    }
    a = json_node_get_array(caps);
    if (!caps_check(a, desc)) {
        return NULL;
    }
    const QnicMigStatus st = qnic_migration_stats()->status;
    if (!qnic_migration_stats()->incoming && (st == MIG_SETUP || st == MIG_ACTIVE)) {
        *desc = g_strdup("There's a migration process in progress");
        return NULL;
    }
    for (guint i = 0; i < json_array_get_length(a); i++) {
        JsonObject *c = json_array_get_object_element(a, i);
        const char *name = json_object_get_string_member(c, "capability");
        bool on = json_object_get_boolean_member(c, "state");
        if (on && !g_str_equal(name, "events")) {
            return fail(desc, (qnic_migration_set_capability(name, on, &err), err));
        }
    }
    for (guint i = 0; i < json_array_get_length(a); i++) {
        JsonObject *c = json_array_get_object_element(a, i);
        qnic_migration_set_capability(json_object_get_string_member(c, "capability"),
                                      json_object_get_boolean_member(c, "state"), NULL);
    }
    return NULL;
}

JsonNode *qmp_query_migrate_caps(QnicQmpSession *s, JsonObject *args, const char **cls,
                                 char **desc)
{
    JsonArray *a = json_array_new();

    for (const char *const *k = qnic_mig_capability_names; *k; k++) {
        JsonObject *o = json_object_new();
        json_object_set_string_member(o, "capability", *k);
        json_object_set_boolean_member(o, "state", qnic_migration_capability(*k));
        json_array_add_object_element(a, o);
    }
    return qmp_array_node(a);
}

JsonNode *qmp_getfd(QnicQmpSession *s, JsonObject *args, const char **cls, char **desc)
{
    const char *name = json_object_get_string_member(args, "fdname");
    int fd = qmp_session_take_fd(s);

    if (fd < 0) {
        *desc = g_strdup("No file descriptor supplied via SCM_RIGHTS");
        return NULL;
    }
    if (g_ascii_isdigit(name[0])) {
        close(fd);
        *desc = g_strdup("Parameter 'fdname' expects a name not starting with a digit");
        return NULL;
    }
    qnic_mig_fd_add(name, fd);
    return NULL;
}

JsonNode *qmp_closefd(QnicQmpSession *s, JsonObject *args, const char **cls, char **desc)
{
    const char *name = json_object_get_string_member(args, "fdname");
    int fd = qnic_mig_fd_take(name);

    if (fd < 0) {
        *desc = g_strdup_printf("File descriptor named '%s' not found", name);
        return NULL;
    }
    close(fd);
    return NULL;
}

/* A device by id or by QOM path. */
static QnicDevice *find_device(QnicMachine *m, const char *id)
{
    QnicDevice *d = qnic_device_find(m, id);

    for (guint i = 0; !d && i < m->devices->len; i++) {
        QnicDevice *x = g_ptr_array_index(m->devices, i);
        g_autofree char *path = qnic_device_path(x);
        if (strcmp(path, id) == 0) {
            d = x;
        }
    }
    return d;
}

JsonNode *qmp_query_device_state(QnicQmpSession *s, JsonObject *args, const char **cls,
                                 char **desc)
{
    const char *id = json_object_get_string_member(args, "id");
    QnicDevice *d = find_device(qmp_session_machine(s), id);
    g_autoptr(GByteArray) buf = NULL;
    g_autofree char *b64 = NULL;
    GError *err = NULL;
    JsonObject *o;

    if (!d) {
        *cls = "DeviceNotFound";
        *desc = g_strdup_printf("Device '%s' not found", id);
        return NULL;
    }
    if (qnic_vmm_runstate() == QNIC_RUNSTATE_RUNNING) {
        *desc = g_strdup("x-query-device-state needs a stopped machine (use stop first)");
        return NULL;
    }
    buf = g_byte_array_new();
    if (!qnic_device_save_state(d, buf, &err)) {
        return fail(desc, err);
    }
    b64 = g_base64_encode(buf->data, buf->len);
    o = json_object_new();
    json_object_set_string_member(o, "state", b64);
    return qmp_obj_node(o);
}
