/*
 * The netdev registry: backend classes register by type name; `-netdev`
 * strings become schema-checked options and a backend instance with its
 * clients, kept by id. Also the two shortcut syntaxes QEMU accepts on top
 * of -netdev/-device: `-nic TYPE,model=,mac=,...` (one netdev + one NIC)
 * and the legacy `-net nic` / `-net TYPE`, which meet on hub 0.
 */
#include "net-internal.h"
#include "qnic/schema.h"
#include "qnic/device.h"
#include "qnic/log.h"
#include <stdio.h>

static GHashTable *netdev_classes;    /* type -> QnicNetdevClass */
static GList *netdevs;                /* QnicNetdev *, creation order */

void qnic_netdev_class_register(const QnicNetdevClass *cls)
{
    if (!netdev_classes) {
        netdev_classes = g_hash_table_new(g_str_hash, g_str_equal);
    }
    g_hash_table_insert(netdev_classes, (gpointer)cls->type, (gpointer)cls);
}

const QnicNetdevClass *qnic_netdev_class_find(const char *type)
{
    return netdev_classes && type ? g_hash_table_lookup(netdev_classes, type) : NULL;
}

QnicNetdev *qnic_netdev_find(const char *id)
{
    for (GList *l = netdevs; l; l = l->next) {
        QnicNetdev *nd = l->data;
        if (g_strcmp0(nd->id, id) == 0) {
            return nd;
        }
    }
    return NULL;
}

/* QEMU's identifier rule: a letter, then letters, digits, '-', '.', '_'. */
static bool id_wellformed(const char *id)
{
    if (!g_ascii_isalpha(id[0])) {
        return false;
    }
    for (const char *p = id + 1; *p; p++) {
        if (!g_ascii_isalnum(*p) && !strchr("-._", *p)) {
            return false;
        }
    }
    return true;
}

static void print_netdev_types(void)
{
    printf("Available netdev backend types:\n");
    for (const QnicSchemaType *const *t = qnic_schema_types; *t; t++) {
        if ((*t)->kind == QNIC_SCHEMA_NETDEV && qnic_netdev_class_find((*t)->name)) {
            printf("%s\n", (*t)->name);
        }
    }
    fflush(stdout);
}

QnicNetdev *qnic_netdev_add(QnicOpts *opts, GError **errp)
{
    const char *type = qnic_opts_get(opts, "type");
    const QnicNetdevClass *cls;
    const QnicSchemaType *t;
    const char *id;
    QnicNetdev *nd;

    if (!type) {
        qnic_error_setg_invalid(errp, "Parameter 'type' is missing");
        goto fail;
    }
    if (g_str_equal(type, "help")) {
        print_netdev_types();
        exit(0);
    }
    cls = qnic_netdev_class_find(type);
    t = qnic_schema_lookup(QNIC_SCHEMA_NETDEV, type);
    if (!cls || !t) {
        qnic_error_setg_invalid(errp, "Parameter 'type' does not accept value '%s'", type);
        goto fail;
    }
    if (qnic_opts_get(opts, "help")) {
        qnic_schema_print_type(t, stdout);
        exit(0);
    }
    if (!qnic_schema_check(opts, t, errp)) {
        goto fail;
    }
    id = qnic_opts_get(opts, "id");
    if (!id) {
        qnic_error_setg_invalid(errp, "Parameter 'id' is missing");
        goto fail;
    }
    /* "__org.qemu." ids are the ones -nic/-net make up, as in QEMU. */
    if (!id_wellformed(id) && !g_str_has_prefix(id, "__org.qemu.")) {
        qnic_error_setg_invalid(errp, "Parameter 'id' expects an identifier\n"
                                "Identifiers consist of letters, digits, '-', '.', '_', "
                                "starting with a letter.");
        goto fail;
    }
    if (qnic_netdev_find(id)) {
        qnic_error_setg_invalid(errp, "Duplicate ID '%s' for netdev", id);
        goto fail;
    }
    nd = g_new0(QnicNetdev, 1);
    nd->cls = cls;
    nd->id = g_strdup(id);
    nd->opts = opts;
    if (!cls->init(nd, opts, errp)) {
        if (cls->cleanup) {
            cls->cleanup(nd);
        }
        for (int i = 0; nd->ncs && i < nd->queues; i++) {
            qnic_net_client_free(nd->ncs[i]);
        }
        g_free(nd->ncs);
        g_free(nd->id);
        g_free(nd);
        goto fail;
    }
    g_assert(nd->queues >= 1 && nd->ncs);
    netdevs = g_list_append(netdevs, nd);
    return nd;

fail:
    qnic_opts_free(opts);
    return NULL;
}

QnicNetdev *qnic_netdev_add_str(const char *str, GError **errp)
{
    QnicOpts *o = qnic_opts_parse("netdev", str, "type", errp);
    return o ? qnic_netdev_add(o, errp) : NULL;
}

void qnic_netdev_add_gone_notifier(QnicNetdev *nd, QnicNetdevNotifier *n)
{
    nd->gone_notifiers = g_list_append(nd->gone_notifiers, n);
}

void qnic_netdev_remove_gone_notifier(QnicNetdev *nd, QnicNetdevNotifier *n)
{
    nd->gone_notifiers = g_list_remove(nd->gone_notifiers, n);
}

void qnic_netdev_del(QnicNetdev *nd)
{
    if (!nd) {
        return;
    }
    netdevs = g_list_remove(netdevs, nd);
    /* Those holding a pointer to it drop it (a notifier may remove
     * itself, so the list is taken first). */
    GList *gone = g_steal_pointer(&nd->gone_notifiers);
    for (GList *l = gone; l; l = l->next) {
        QnicNetdevNotifier *n = l->data;
        n->gone(n, nd);
    }
    g_list_free(gone);
    /* The backend closes its fds first; its clients then leave their
     * peers (NICs see no peer and drop what they send). */
    if (nd->cls->cleanup) {
        nd->cls->cleanup(nd);
    }
    for (int i = 0; i < nd->queues; i++) {
        qnic_net_client_free(nd->ncs[i]);
    }
    g_free(nd->ncs);
    qnic_opts_free(nd->opts);
    g_free(nd->id);
    g_free(nd);
}

void qnic_netdev_del_all(void)
{
    /* Newest first: a hub port plugged into an older netdev goes before it. */
    while (netdevs) {
        qnic_netdev_del(g_list_last(netdevs)->data);
    }
}

/* ---- -nic ---- */

/* -nic/-net plug NICs into the pc machine's PCI bus, as QEMU lists them:
 * network devices on other buses (virtio-net-device) need -device. */
static bool is_nic_model(const QnicSchemaType *t)
{
    return t->kind == QNIC_SCHEMA_DEVICE && g_strcmp0(t->category, "Network devices") == 0 &&
           g_strcmp0(t->bus, "pci") == 0 &&
           qnic_device_class_find(t->alias_of ? t->alias_of : t->name);
}

static gint cmp_str_ptr(gconstpointer a, gconstpointer b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void print_nic_models(void)
{
    printf("Supported NIC models:\n");
    GPtrArray *names = g_ptr_array_new();
    for (const QnicSchemaType *const *t = qnic_schema_types; *t; t++) {
        if (is_nic_model(*t)) {
            g_ptr_array_add(names, (gpointer)(*t)->name);
        }
    }
    g_ptr_array_sort(names, cmp_str_ptr);
    for (guint i = 0; i < names->len; i++) {
        printf("%s\n", (const char *)g_ptr_array_index(names, i));
    }
    g_ptr_array_free(names, TRUE);
    fflush(stdout);
}

static unsigned nic_counter;

/* Move the device-side keys of a -nic/-net nic option set to new device
 * opts; what remains describes the netdev. */
static QnicOpts *split_device_opts(QnicOpts *o, const char *model, const char *netdev_id,
                                   const char *mac_key)
{
    QnicOpts *dev = qnic_opts_new("device");
    const char *mac = qnic_opts_get(o, mac_key);

    qnic_opts_set(dev, "driver", model);
    if (netdev_id) {
        qnic_opts_set(dev, "netdev", netdev_id);
    }
    if (mac) {
        qnic_opts_set(dev, "mac", mac);
    }
    qnic_opts_remove(o, mac_key);
    qnic_opts_remove(o, "model");
    return dev;
}

static const char *nic_model_or_default(const char *model, GError **errp)
{
    const QnicSchemaType *t;

    /* QEMU's pc machine defaults to e1000. */
    if (!model) {
        return "e1000";
    }
    t = qnic_schema_lookup(QNIC_SCHEMA_DEVICE, model);
    if (!t || !is_nic_model(t)) {
        qnic_error_setg_invalid(errp, "Unsupported NIC model: %s", model);
        return NULL;
    }
    return model;
}

bool qnic_net_nic_add(QnicMachine *m, const char *str, GError **errp)
{
    g_autoptr(QnicOpts) o = qnic_opts_parse("nic", str, "type", errp);
    const char *type, *model;
    g_autofree char *id = NULL;
    QnicOpts *dev;

    if (!o) {
        return false;
    }
    type = qnic_opts_get(o, "type");
    if (g_strcmp0(qnic_opts_get(o, "model"), "help") == 0 ||
        g_strcmp0(qnic_opts_get(o, "model"), "?") == 0) {
        print_nic_models();
        exit(0);
    }
    if (g_strcmp0(type, "none") == 0) {
        return true;
    }
    model = nic_model_or_default(qnic_opts_get(o, "model"), errp);
    if (!model) {
        return false;
    }
    id = g_strdup_printf("__org.qemu.nic%u", nic_counter++);
    dev = split_device_opts(o, model, id, "mac");
    {
        QnicOpts *nopts = qnic_opts_copy(o);
        qnic_opts_set(nopts, "id", id);
        /* No type: a user-mode netdev, as QEMU does. */
        if (!type) {
            qnic_opts_set(nopts, "type", "user");
        }
        if (!qnic_netdev_add(nopts, errp)) {
            qnic_opts_free(dev);
            return false;
        }
    }
    return qnic_device_create(m, dev, errp) != NULL;
}

/* ---- legacy -net ---- */

static GPtrArray *legacy_opts;   /* QnicOpts * in command-line order */

bool qnic_net_legacy_add(const char *str, GError **errp)
{
    QnicOpts *o = qnic_opts_parse("net", str, "type", errp);

    if (!o) {
        return false;
    }
    if (!qnic_opts_get(o, "type")) {
        qnic_error_setg_invalid(errp, "Parameter 'type' is missing");
        qnic_opts_free(o);
        return false;
    }
    if (!legacy_opts) {
        legacy_opts = g_ptr_array_new_with_free_func((GDestroyNotify)qnic_opts_free);
    }
    g_ptr_array_add(legacy_opts, o);
    return true;
}

static unsigned legacy_port;

/* A new port on hub 0, optionally plugged into netdev `plug`. */
static char *legacy_hubport(const char *plug, GError **errp)
{
    char *id = g_strdup_printf("hub0port%u", legacy_port++);
    g_autofree char *s = plug ? g_strdup_printf("hubport,id=%s,hubid=0,netdev=%s", id, plug)
                              : g_strdup_printf("hubport,id=%s,hubid=0", id);
    if (!qnic_netdev_add_str(s, errp)) {
        g_free(id);
        return NULL;
    }
    return id;
}

bool qnic_net_legacy_realize(QnicMachine *m, GError **errp)
{
    bool ok = true;

    for (guint i = 0; ok && legacy_opts && i < legacy_opts->len; i++) {
        QnicOpts *o = g_ptr_array_index(legacy_opts, i);
        const char *type = qnic_opts_get(o, "type");
        g_autofree char *port = NULL;

        if (g_str_equal(type, "none")) {
            continue;
        }
        if (g_str_equal(type, "nic")) {
            const char *model = qnic_opts_get(o, "model");
            const char *netdev = qnic_opts_get(o, "netdev");
            const char *vectors = qnic_opts_get(o, "vectors");
            const char *addr = qnic_opts_get(o, "addr");
            if (g_strcmp0(model, "help") == 0 || g_strcmp0(model, "?") == 0) {
                print_nic_models();
                exit(0);
            }
            model = nic_model_or_default(model, errp);
            if (!model) {
                ok = false;
                break;
            }
            if (!netdev) {
                port = legacy_hubport(NULL, errp);
                if (!port) {
                    ok = false;
                    break;
                }
                netdev = port;
            }
            QnicOpts *dev = split_device_opts(o, model, netdev, "macaddr");
            if (vectors) {
                qnic_opts_set(dev, "vectors", vectors);
            }
            if (addr) {
                qnic_opts_set(dev, "addr", addr);
            }
            ok = qnic_device_create(m, dev, errp) != NULL;
        } else {
            /* -net TYPE,...[,name=N]: a netdev on a port of hub 0. */
            QnicOpts *nopts = qnic_opts_copy(o);
            const char *name = qnic_opts_get(o, "name");
            g_autofree char *id = name ? g_strdup(name)
                                       : g_strdup_printf("__org.qemu.net%u", i);
            qnic_opts_remove(nopts, "name");
            if (!qnic_opts_get(nopts, "id")) {
                qnic_opts_set(nopts, "id", id);
            } else {
                g_free(id);
                id = g_strdup(qnic_opts_get(nopts, "id"));
            }
            if (!qnic_netdev_add(nopts, errp)) {
                ok = false;
                break;
            }
            port = legacy_hubport(id, errp);
            ok = port != NULL;
        }
    }
    if (legacy_opts) {
        g_ptr_array_free(legacy_opts, TRUE);
        legacy_opts = NULL;
    }
    return ok;
}
