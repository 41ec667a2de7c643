/*
 * The -nic and -net shortcuts (see cmdline-net.h): QEMU's spellings on top
 * of -netdev and -device. `-nic TYPE,model=,mac=,...` makes one netdev and
 * one NIC; the legacy `-net nic` / `-net TYPE` options are collected and
 * meet on hub 0. NIC models are the PCI network devices of the pc machine,
 * as QEMU lists them.
 */
#include "vmm/cmdline-net.h"
#include "qnic/net.h"
#include "qnic/device.h"
#include "qnic/schema.h"

#include <stdio.h>

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
}

static bool is_help_word(const char *s)
{
    return g_strcmp0(s, "help") == 0 || g_strcmp0(s, "?") == 0;
}

/* Help went to stdout: say so to the caller (always false). */
static bool help_printed(GError **errp)
{
    fflush(stdout);
    g_set_error_literal(errp, QNIC_ERROR, QNIC_ERROR_HELP, "help printed");
    return false;
}

static bool nic_models_help(GError **errp)
{
    print_nic_models();
    return help_printed(errp);
}

bool qnic_cmdline_net_check(const char *opt, const char *str, GError **errp)
{
    g_autoptr(QnicOpts) o = qnic_opts_parse(opt, str, "type", errp);
    const char *type;

    if (!o) {
        return false;
    }
    type = qnic_opts_get(o, "type");
    if (is_help_word(qnic_opts_get(o, "model"))) {
        return nic_models_help(errp);
    }
    if (is_help_word(type) || (strcmp(opt, "nic") == 0 && qnic_opts_has_help(o))) {
        qnic_schema_print_list(QNIC_SCHEMA_NETDEV, stdout);
        return help_printed(errp);
    }
    return true;
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

bool qnic_cmdline_nic_add(QnicMachine *m, const char *str, GError **errp)
{
    g_autoptr(QnicOpts) o = qnic_opts_parse("nic", str, "type", errp);
    const char *type, *model;
    g_autofree char *id = NULL;
    QnicOpts *dev;

    if (!o) {
        return false;
    }
    type = qnic_opts_get(o, "type");
    if (is_help_word(qnic_opts_get(o, "model"))) {
        return nic_models_help(errp);
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
        if (!qnic_netdev_add(m->cfg.backends, nopts, errp)) {
            qnic_opts_free(dev);
            return false;
        }
    }
    return qnic_device_create(m, dev, errp) != NULL;
}

/* ---- legacy -net ---- */

static GPtrArray *legacy_opts;   /* QnicOpts * in command-line order */

bool qnic_cmdline_net_add(const char *str, GError **errp)
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
static char *legacy_hubport(QnicBackends *be, const char *plug, GError **errp)
{
    char *id = g_strdup_printf("hub0port%u", legacy_port++);
    g_autofree char *s = plug ? g_strdup_printf("hubport,id=%s,hubid=0,netdev=%s", id, plug)
                              : g_strdup_printf("hubport,id=%s,hubid=0", id);
    if (!qnic_netdev_add_str(be, s, errp)) {
        g_free(id);
        return NULL;
    }
    return id;
}

bool qnic_cmdline_net_realize(QnicMachine *m, GError **errp)
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
            if (is_help_word(model)) {
                ok = nic_models_help(errp);
                break;
            }
            model = nic_model_or_default(model, errp);
            if (!model) {
                ok = false;
                break;
            }
            if (!netdev) {
                port = legacy_hubport(m->cfg.backends, NULL, errp);
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
            if (!qnic_netdev_add(m->cfg.backends, nopts, errp)) {
                ok = false;
                break;
            }
            port = legacy_hubport(m->cfg.backends, id, errp);
            ok = port != NULL;
        }
    }
    if (legacy_opts) {
        g_ptr_array_free(legacy_opts, TRUE);
        legacy_opts = NULL;
    }
    return ok;
}
