/*
 * The device registry and device life cycle: `-device` strings become
 * schema-checked options, then an instance of the registered class, realized
 * on a machine. Aliases in the schema (e1000-82540em -> e1000) resolve here.
 */
#include "qnic/device.h"
#include "qnic/machine.h"
#include "qnic/schema.h"
#include "qnic/log.h"
#include "qnic/state.h"

static GHashTable *classes;

void qnic_device_class_register(const QnicDeviceClass *cls)
{
    if (!classes) {
        classes = g_hash_table_new(g_str_hash, g_str_equal);
    }
    g_hash_table_insert(classes, (gpointer)cls->name, (gpointer)cls);
}

const QnicDeviceClass *qnic_device_class_find(const char *name)
{
    return classes ? g_hash_table_lookup(classes, name) : NULL;
}

static gint cls_cmp(gconstpointer a, gconstpointer b)
{
    const QnicDeviceClass *x = *(const QnicDeviceClass **)a;
    const QnicDeviceClass *y = *(const QnicDeviceClass **)b;
    return strcmp(x->name, y->name);
}

const QnicDeviceClass **qnic_device_class_list(size_t *n)
{
    GPtrArray *a = g_ptr_array_new();
    GHashTableIter it;
    gpointer v;

    if (classes) {
        g_hash_table_iter_init(&it, classes);
        while (g_hash_table_iter_next(&it, NULL, &v)) {
            g_ptr_array_add(a, v);
        }
    }
    g_ptr_array_sort(a, cls_cmp);
    *n = a->len;
    g_ptr_array_add(a, NULL);
    return (const QnicDeviceClass **)g_ptr_array_free(a, FALSE);
}

char *qnic_device_path(QnicDevice *dev)
{
    unsigned anon = 0;

    if (dev->id) {
        return g_strdup_printf("/machine/peripheral/%s", dev->id);
    }
    for (guint i = 0; i < dev->machine->devices->len; i++) {
        QnicDevice *d = g_ptr_array_index(dev->machine->devices, i);
        if (d == dev) {
            break;
        }
        anon += !d->id;
    }
    return g_strdup_printf("/machine/peripheral-anon/device[%u]", anon);
}

QnicDevice *qnic_device_find(QnicMachine *m, const char *id)
{
    for (guint i = 0; i < m->devices->len; i++) {
        QnicDevice *d = g_ptr_array_index(m->devices, i);
        if (d->id && g_str_equal(d->id, id)) {
            return d;
        }
    }
    return NULL;
}

/* A schema device type exists here when a class implements it. */
static bool device_implemented(const QnicSchemaType *t)
{
    return qnic_device_class_find(t->alias_of ? t->alias_of : t->name) != NULL;
}

QnicDevice *qnic_device_create_str(QnicMachine *m, const char *str, GError **errp)
{
    QnicOpts *o = qnic_schema_parse(QNIC_SCHEMA_DEVICE, str, device_implemented, errp);
    return o ? qnic_device_create(m, o, errp) : NULL;
}

QnicDevice *qnic_device_create(QnicMachine *m, QnicOpts *opts, GError **errp)
{
    const QnicSchemaType *t;

    if (!qnic_schema_check_kind(QNIC_SCHEMA_DEVICE, opts, device_implemented, errp)) {
        qnic_opts_free(opts);
        return NULL;
    }
    t = opts->schema;
    return qnic_device_create_class(m, qnic_device_class_find(t->alias_of ? t->alias_of : t->name),
                                    t, opts, errp);
}

QnicDevice *qnic_device_create_class(QnicMachine *m, const QnicDeviceClass *cls,
                                     const QnicSchemaType *t, QnicOpts *opts, GError **errp)
{
    QnicDevice *dev;
    const char *id;

    /* checked already when it came through qnic_device_create: harmless */
    if (!qnic_schema_check(opts, t, errp)) {
        goto fail;
    }
    id = qnic_opts_get(opts, "id");
    if (id && qnic_device_find(m, id)) {
        qnic_error_setg_invalid(errp, "Duplicate device ID '%s'", id);
        goto fail;
    }
    g_assert(cls->instance_size >= sizeof(QnicDevice));
    dev = g_malloc0(cls->instance_size);
    dev->cls = cls;
    dev->id = g_strdup(id);
    dev->machine = m;
    dev->opts = opts;
    dev->dma_enabled = true;
    g_ptr_array_add(m->devices, dev);
    if (cls->realize && !cls->realize(dev, opts, errp)) {
        g_ptr_array_remove(m->devices, dev);
        g_free(dev->id);
        g_free(dev);
        goto fail;
    }
    dev->realized = true;
    return dev;

fail:
    qnic_opts_free(opts);
    return NULL;
}

/* The section that opens a device's state: the class name, no fields. */
static const QnicStateField no_fields[] = { QNIC_STATE_END };

static QnicStateDesc class_section(const QnicDevice *dev)
{
    return (QnicStateDesc){ .name = dev->cls->name, .version = 1, .min_version = 1,
                            .size = 1, .fields = no_fields };
}

static bool state_ops_check(QnicDevice *dev, GError **errp)
{
    if (!dev->cls->save_state || !dev->cls->load_state) {
        g_set_error(errp, QNIC_ERROR, QNIC_ERROR_FAILED,
                    "device '%s' (%s) cannot save or load its state",
                    dev->id ? dev->id : "", dev->cls->name);
        return false;
    }
    return true;
}

bool qnic_device_save_state(QnicDevice *dev, GByteArray *out, GError **errp)
{
    uint8_t none = 0;
    if (!state_ops_check(dev, errp)) {
        return false;
    }
    QnicStateDesc d = class_section(dev);
    guint start = out->len;
    qnic_state_write(out, &d, &none);
    if (!dev->cls->save_state(dev, out, errp)) {
        g_byte_array_set_size(out, start);
        return false;
    }
    return true;
}

bool qnic_device_load_state(QnicDevice *dev, const uint8_t *buf, size_t len, GError **errp)
{
    uint8_t none;
    QnicStateReader r;
    if (!state_ops_check(dev, errp)) {
        return false;
    }
    QnicStateDesc d = class_section(dev);
    qnic_state_reader_init(&r, buf, len);
    if (!qnic_state_read(&r, &d, &none, errp)) {
        return false;
    }
    /* The class checks everything before it applies anything, and the
     * whole stream must be its: trailing bytes are refused by the class
     * calling qnic_state_reader_done() before it applies. */
    return dev->cls->load_state(dev, &r, errp);
}

void qnic_device_reset(QnicDevice *dev)
{
    if (dev->cls->reset) {
        dev->in_io++;
        dev->cls->reset(dev);
        dev->in_io--;
    }
}

void qnic_device_destroy(QnicDevice *dev)
{
    if (!dev) {
        return;
    }
    if (dev->realized && dev->cls->unrealize) {
        dev->cls->unrealize(dev);
    }
    if (dev->machine) {
        g_ptr_array_remove(dev->machine->devices, dev);
    }
    qnic_opts_free(dev->opts);
    g_free(dev->id);
    g_free(dev);
}
