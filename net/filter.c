/*
 * The net filter mechanism behind `-object filter-*`: filter types register
 * a class; this file turns checked `-object` options into a filter, reads
 * the keys every filter shares (id, netdev, queue, status), attaches the
 * filter to each client (queue) of its netdev and keeps it by id until it
 * is deleted. The frames themselves reach a filter through its client's
 * list, on the send path in net.c; see qnic/net-filter.h.
 */
#include "net-internal.h"
#include "qnic/net-filter.h"
#include "qnic/filter.h"
#include "qnic/schema.h"

static GHashTable *filter_classes;    /* type -> QnicNetFilterClass */

void qnic_net_filter_class_register(const QnicNetFilterClass *cls)
{
    if (!filter_classes) {
        filter_classes = g_hash_table_new(g_str_hash, g_str_equal);
    }
    g_hash_table_insert(filter_classes, (gpointer)cls->type, (gpointer)cls);
}

static const QnicNetFilterClass *filter_class_find(const char *type)
{
    return filter_classes && type ? g_hash_table_lookup(filter_classes, type) : NULL;
}

bool qnic_filter_type_known(const char *type)
{
    return filter_class_find(type) != NULL;
}

static QnicNetFilter *filter_find(QnicBackends *be, const char *id)
{
    for (GList *l = be->filters; l; l = l->next) {
        QnicNetFilter *f = l->data;
        if (g_str_equal(f->id, id)) {
            return f;
        }
    }
    return NULL;
}

static void filter_free(QnicNetFilter *f)
{
    for (guint i = 0; i < f->clients->len; i++) {
        QnicNetClient *nc = g_ptr_array_index(f->clients, i);
        nc->filters = g_list_remove(nc->filters, f);
    }
    if (f->cls->cleanup) {
        f->cls->cleanup(f);
    }
    g_ptr_array_free(f->clients, TRUE);
    g_free(f->id);
    g_free(f);
}

/* The keys of netfilter-common; the type's own ones are its init's. */
static bool filter_common_opts(QnicBackends *be, QnicNetFilter *f, QnicOpts *o,
                               QnicNetdev **ndp, GError **errp)
{
    const char *id = qnic_opts_get(o, "id");
    const char *netdev = qnic_opts_get(o, "netdev");
    const char *queue = qnic_opts_get(o, "queue");
    const char *status = qnic_opts_get(o, "status");

    if (!id) {
        qnic_error_setg_invalid(errp, "Parameter 'id' is missing");
        return false;
    }
    if (filter_find(be, id)) {
        qnic_error_setg_invalid(errp, "attempt to add duplicate property '%s' to object", id);
        return false;
    }
    if (!netdev) {
        qnic_error_setg_invalid(errp, "Parameter 'netdev' is missing");
        return false;
    }
    *ndp = qnic_netdev_find(be, netdev);
    if (!*ndp) {
        qnic_error_setg_invalid(errp, "Parameter 'netdev' expects a network backend id");
        return false;
    }
    f->id = g_strdup(id);
    if (!queue || g_str_equal(queue, "all")) {
        f->direction = QNIC_NET_FILTER_ALL;
    } else if (g_str_equal(queue, "rx")) {
        f->direction = QNIC_NET_FILTER_RX;
    } else if (g_str_equal(queue, "tx")) {
        f->direction = QNIC_NET_FILTER_TX;
    } else {
        qnic_error_setg_invalid(errp, "Parameter 'queue' does not accept value '%s'", queue);
        return false;
    }
    f->enabled = !status || g_str_equal(status, "on");
    return true;
}

static bool filter_implemented(const QnicSchemaType *t)
{
    return filter_class_find(t->name) != NULL;
}

bool qnic_filter_add(QnicBackends *be, QnicOpts *opts, GError **errp)
{
    g_autoptr(QnicOpts) o = opts;
    QnicNetdev *nd = NULL;
    QnicNetFilter *f;

    if (!qnic_schema_check_kind(QNIC_SCHEMA_OBJECT, o, filter_implemented, errp)) {
        return false;
    }
    f = g_new0(QnicNetFilter, 1);
    f->cls = filter_class_find(o->schema->name);
    f->clients = g_ptr_array_new();
    if (!filter_common_opts(be, f, o, &nd, errp) || !f->cls->init(f, o, errp)) {
        filter_free(f);
        return false;
    }
    for (int i = 0; i < nd->queues; i++) {
        g_ptr_array_add(f->clients, nd->ncs[i]);
        nd->ncs[i]->filters = g_list_append(nd->ncs[i]->filters, f);
    }
    be->filters = g_list_append(be->filters, f);
    return true;
}

bool qnic_filter_add_str(QnicBackends *be, const char *str, GError **errp)
{
    QnicOpts *o = qnic_schema_parse(QNIC_SCHEMA_OBJECT, str, filter_implemented, errp);
    return o ? qnic_filter_add(be, o, errp) : false;
}

bool qnic_filter_del(QnicBackends *be, const char *id)
{
    QnicNetFilter *f = filter_find(be, id);

    if (!f) {
        return false;
    }
    be->filters = g_list_remove(be->filters, f);
    filter_free(f);
    return true;
}

void qnic_filter_del_all(QnicBackends *be)
{
    while (be->filters) {
        qnic_filter_del(be, ((QnicNetFilter *)be->filters->data)->id);
    }
}
