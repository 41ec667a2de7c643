/*
 * The netdev registry: backend classes register by type name; `-netdev`
 * strings become schema-checked options and a backend instance with its
 * clients, kept by id in a machine's QnicBackends. Whoever holds a netdev it does not own hears of its
 * deletion through the netdev's notifiers. The -nic/-net shortcuts, which
 * also create devices, live in the VMM's command line (vmm/cmdline-net.c).
 */
#include "net-internal.h"
#include "qnic/schema.h"
#include "qnic/log.h"

static GHashTable *netdev_classes;    /* type -> QnicNetdevClass */

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

QnicNetdev *qnic_netdev_find(QnicBackends *be, const char *id)
{
    for (GList *l = be->netdevs; l; l = l->next) {
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

static bool netdev_implemented(const QnicSchemaType *t)
{
    return qnic_netdev_class_find(t->name) != NULL;
}

QnicNetdev *qnic_netdev_add(QnicBackends *be, QnicOpts *opts, GError **errp)
{
    const QnicNetdevClass *cls;
    const char *id;
    QnicNetdev *nd;

    if (!qnic_schema_check_kind(QNIC_SCHEMA_NETDEV, opts, netdev_implemented, errp)) {
        goto fail;
    }
    cls = qnic_netdev_class_find(opts->schema->name);
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
    if (qnic_netdev_find(be, id)) {
        qnic_error_setg_invalid(errp, "Duplicate ID '%s' for netdev", id);
        goto fail;
    }
    nd = g_new0(QnicNetdev, 1);
    nd->cls = cls;
    nd->be = be;
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
    be->netdevs = g_list_append(be->netdevs, nd);
    return nd;

fail:
    qnic_opts_free(opts);
    return NULL;
}

QnicNetdev *qnic_netdev_add_str(QnicBackends *be, const char *str, GError **errp)
{
    QnicOpts *o = qnic_schema_parse(QNIC_SCHEMA_NETDEV, str, netdev_implemented, errp);
    return o ? qnic_netdev_add(be, o, errp) : NULL;
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
    nd->be->netdevs = g_list_remove(nd->be->netdevs, nd);
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

void qnic_netdev_del_all(QnicBackends *be)
{
    /* Newest first: a hub port plugged into an older netdev goes before it. */
    while (be->netdevs) {
        qnic_netdev_del(g_list_last(be->netdevs)->data);
    }
}
