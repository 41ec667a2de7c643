/*
 * The QMP commands an operator's tools (libvirt, scripts) use to look at a
 * running qnic-vmm without changing it: query-pci (bus 0's functions, their
 * ids, interrupt and BARs, in QEMU 7.2's shape), qom-list and qom-get on
 * /machine/peripheral[/ID] (a device's -device properties as QEMU's QOM
 * shows them), human-monitor-command for `info network` in QEMU's text,
 * and qnic's own query-netdev-stats (the send path's per-client counters,
 * QnicNetClientStats, per netdev queue). They live apart from vmm/qmp.c's
 * session and dispatch, which checks their argument tables first.
 */
#include "vmm/qmp-int.h"
#include "qnic/net.h"
#include "qnic/pci.h"
#include "qnic/device.h"
#include "qnic/schema.h"

#include <linux/pci_regs.h>

/* ---- query-pci ---- */

const ArgDesc qmp_query_pci_args[] = { { NULL } };

/* QEMU's names of the classes a pc machine with NICs shows; a class not
 * listed has no "desc", as in QEMU. */
static const struct { uint16_t cls; const char *desc; } pci_class_desc[] = {
    { 0x0101, "IDE controller" }, { 0x0200, "Ethernet controller" },
    { 0x0280, "Network controller" }, { 0x0300, "VGA controller" },
    { 0x0600, "Host bridge" }, { 0x0601, "ISA bridge" }, { 0x0604, "PCI bridge" },
    { 0x0680, "Bridge" }, { 0x0c03, "USB controller" },
};

static JsonObject *pci_class_info(const QnicPciDevice *d)
{
    JsonObject *o = json_object_new();
    uint16_t cls = qnic_pci_get_word(d, PCI_CLASS_DEVICE);

    json_object_set_int_member(o, "class", cls);
    for (size_t i = 0; i < G_N_ELEMENTS(pci_class_desc); i++) {
        if (pci_class_desc[i].cls == cls) {
            json_object_set_string_member(o, "desc", pci_class_desc[i].desc);
        }
    }
    return o;
}

static JsonObject *pci_ids(const QnicPciDevice *d)
{
    JsonObject *o = json_object_new();

    json_object_set_int_member(o, "device", qnic_pci_get_word(d, PCI_DEVICE_ID));
    json_object_set_int_member(o, "vendor", qnic_pci_get_word(d, PCI_VENDOR_ID));
    json_object_set_int_member(o, "subsystem", qnic_pci_get_word(d, PCI_SUBSYSTEM_ID));
    json_object_set_int_member(o, "subsystem-vendor",
                               qnic_pci_get_word(d, PCI_SUBSYSTEM_VENDOR_ID));
    return o;
}

/* A BAR as QEMU's PciMemoryRegion: address -1 while unmapped; memory BARs
 * (the ROM too) say whether they are prefetchable and 64-bit. */
static JsonObject *pci_region(const QnicPciBar *b, int bar)
{
    JsonObject *o = json_object_new();
    bool io = bar != QNIC_PCI_ROM_SLOT && (b->type & QNIC_PCI_BAR_IO);

    json_object_set_int_member(o, "bar", bar);
    json_object_set_string_member(o, "type", io ? "io" : "memory");
    json_object_set_int_member(o, "address",
                               b->addr == QNIC_PCI_BAR_UNMAPPED ? -1 : (gint64)b->addr);
    json_object_set_int_member(o, "size", b->size);
    if (!io) {
        bool rom = bar == QNIC_PCI_ROM_SLOT;
        json_object_set_boolean_member(o, "prefetch", !rom && (b->type & QNIC_PCI_BAR_PREFETCH));
        json_object_set_boolean_member(o, "mem_type_64", !rom && (b->type & QNIC_PCI_BAR_MEM64));
    }
    return o;
}

static JsonObject *pci_device_info(const QnicPciDevice *d)
{
    JsonObject *o = json_object_new();
    JsonArray *regions = json_array_new();
    uint8_t pin = qnic_pci_get_byte(d, PCI_INTERRUPT_PIN);

    json_object_set_int_member(o, "bus", 0);
    json_object_set_int_member(o, "slot", d->devfn >> 3);
    json_object_set_int_member(o, "function", d->devfn & 7);
    json_object_set_object_member(o, "class_info", pci_class_info(d));
    json_object_set_object_member(o, "id", pci_ids(d));
    if (pin) {
        json_object_set_int_member(o, "irq", qnic_pci_get_byte(d, PCI_INTERRUPT_LINE));
    }
    json_object_set_int_member(o, "irq_pin", pin);
    json_object_set_string_member(o, "qdev_id", d->dev.id ? d->dev.id : "");
    for (int i = 0; i <= QNIC_PCI_ROM_SLOT; i++) {
        if (d->bars[i].region && d->bars[i].size) {
            json_array_add_object_element(regions, pci_region(&d->bars[i], i));
        }
    }
    json_object_set_array_member(o, "regions", regions);
    return o;
}

JsonNode *qmp_query_pci(QnicQmpSession *s, JsonObject *args, const char **cls, char **desc)
{
    QnicPciBus *bus = qmp_session_machine(s)->pci;
    JsonArray *devs = json_array_new();
    JsonObject *b = json_object_new();
    JsonArray *buses = json_array_new();

    for (int devfn = 0; bus && devfn < 256; devfn++) {
        if (bus->devices[devfn]) {
            json_array_add_object_element(devs, pci_device_info(bus->devices[devfn]));
        }
    }
    json_object_set_int_member(b, "bus", 0);
    json_object_set_array_member(b, "devices", devs);
    json_array_add_object_element(buses, b);
    return qmp_array_node(buses);
}

/* ---- qom-list, qom-get ---- */

const ArgDesc qmp_qom_list_args[] = { { "path", ARG_STR, false }, { NULL } };
const ArgDesc qmp_qom_get_args[] = {
    { "path", ARG_STR, false }, { "property", ARG_STR, false }, { NULL }
};

#define PERIPHERAL "/machine/peripheral/"

static QnicDevice *device_at(QnicMachine *m, const char *path, const char **cls, char **desc)
{
    QnicDevice *dev = NULL;

    if (g_str_has_prefix(path, PERIPHERAL)) {
        dev = qnic_device_find(m, path + strlen(PERIPHERAL));
    }
    if (!dev) {
        *cls = "DeviceNotFound";
        *desc = g_strdup_printf("Device '%s' not found", path);
    }
    return dev;
}

/* The type QEMU's QOM gives a property of this kind. */
static const char *qom_type(const QnicPropDesc *p)
{
    switch (p->type) {
    case QNIC_PROP_BOOL: return "bool";
    case QNIC_PROP_UINT: return "uint32";
    case QNIC_PROP_INT: return "int32";
    case QNIC_PROP_SIZE: return "size";
    case QNIC_PROP_ONOFFAUTO: return "OnOffAuto";
    default: return "str";
    }
}

static const QnicSchemaType *device_schema(const QnicDevice *dev)
{
    return qnic_schema_lookup(QNIC_SCHEMA_DEVICE, dev->cls->name);
}

static void add_entry(JsonArray *a, const char *name, const char *type)
{
    JsonObject *o = json_object_new();

    json_object_set_string_member(o, "name", name);
    json_object_set_string_member(o, "type", type);
    json_array_add_object_element(a, o);
}

static JsonNode *list_peripheral(QnicMachine *m)
{
    JsonArray *a = json_array_new();

    add_entry(a, "type", "string");
    for (guint i = 0; i < m->devices->len; i++) {
        QnicDevice *d = g_ptr_array_index(m->devices, i);
        if (d->id) {
            g_autofree char *t = g_strdup_printf("child<%s>", d->cls->name);
            add_entry(a, d->id, t);
        }
    }
    return qmp_array_node(a);
}

/* qnic's own read-only property: the number of queues the NIC has. */
#define QOM_QUEUES "x-queues"

JsonNode *qmp_qom_list(QnicQmpSession *s, JsonObject *args, const char **cls, char **desc)
{
    const char *path = json_object_get_string_member(args, "path");
    QnicMachine *m = qmp_session_machine(s);
    const QnicSchemaType *t;
    QnicDevice *dev;
    JsonArray *a;

    if (!strcmp(path, "/machine/peripheral") || !strcmp(path, PERIPHERAL)) {
        return list_peripheral(m);
    }
    dev = device_at(m, path, cls, desc);
    if (!dev) {
        return NULL;
    }
    a = json_array_new();
    add_entry(a, "type", "string");
    t = device_schema(dev);
    for (const QnicPropDesc *p = t ? t->props : NULL; p && p->name; p++) {
        add_entry(a, p->name, qom_type(p));
    }
    add_entry(a, QOM_QUEUES, "uint32");
    return qmp_array_node(a);
}

/* A device's NIC client for queue q (named by the device's id). */
static QnicNetClient *device_nic(QnicMachine *m, const QnicDevice *dev, int q)
{
    for (GList *l = qnic_net_clients(m->cfg.backends); l; l = l->next) {
        QnicNetClient *nc = l->data;
        if (nc->ops->kind == QNIC_NET_CLIENT_NIC && nc->queue_index == q && dev->id &&
            !strcmp(nc->name, dev->id)) {
            return nc;
        }
    }
    return NULL;
}

/* The MAC the NIC was given (mac= or the default QEMU would assign). */
static JsonNode *nic_mac(QnicMachine *m, const QnicDevice *dev)
{
    QnicNetClient *nc = device_nic(m, dev, 0);
    const char *at = nc ? strstr(nc->info_str, "macaddr=") : NULL;
    JsonNode *n = json_node_new(JSON_NODE_VALUE);

    json_node_set_string(n, at ? at + strlen("macaddr=") : "");
    return n;
}

static JsonNode *prop_value(const QnicPropDesc *p, const char *v)
{
    JsonNode *n = json_node_new(JSON_NODE_VALUE);
    bool b = false;
    uint64_t u = 0;

    switch (p->type) {
    case QNIC_PROP_BOOL:
        json_node_set_boolean(n, v && qnic_parse_bool(v, &b, NULL) && b);
        break;
    case QNIC_PROP_SIZE:
        json_node_set_int(n, v && qnic_parse_size(v, &u, NULL) ? (gint64)u : 0);
        break;
    case QNIC_PROP_UINT:
    case QNIC_PROP_INT:
        json_node_set_int(n, v ? g_ascii_strtoll(v, NULL, 0) : 0);
        break;
    default:
        json_node_set_string(n, v ? v : "");
        break;
    }
    return n;
}

static JsonNode *nic_queues(QnicMachine *m, const QnicDevice *dev)
{
    JsonNode *n = json_node_new(JSON_NODE_VALUE);
    int q = 0;

    while (device_nic(m, dev, q)) {
        q++;
    }
    json_node_set_int(n, q);
    return n;
}

JsonNode *qmp_qom_get(QnicQmpSession *s, JsonObject *args, const char **cls, char **desc)
{
    const char *name = json_object_get_string_member(args, "property");
    QnicMachine *m = qmp_session_machine(s);
    QnicDevice *dev = device_at(m, json_object_get_string_member(args, "path"), cls, desc);
    const QnicSchemaType *t;
    const QnicPropDesc *p;
    const char *v;

    if (!dev) {
        return NULL;
    }
    if (!strcmp(name, "type")) {
        return prop_value(&(QnicPropDesc){ .type = QNIC_PROP_STR }, dev->cls->name);
    }
    if (!strcmp(name, QOM_QUEUES)) {
        return nic_queues(m, dev);
    }
    t = device_schema(dev);
    p = t ? qnic_schema_prop(t, name) : NULL;
    if (!p) {
        *desc = g_strdup_printf("Property '%s.%s' not found", dev->cls->name, name);
        return NULL;
    }
    v = qnic_opts_get(dev->opts, name);
    if (!v && !strcmp(name, "mac")) {
        return nic_mac(m, dev);
    }
    return prop_value(p, v ? v : p->def);
}

/* ---- human-monitor-command: info network ---- */

const ArgDesc qmp_hmp_args[] = {
    { "command-line", ARG_STR, false }, { "cpu-index", ARG_INT, true }, { NULL }
};

/* QEMU's NetClientDriver names. */
static const char *client_type(const QnicNetClient *nc)
{
    static const char *const names[] = {
        [QNIC_NET_CLIENT_NIC] = "nic", [QNIC_NET_CLIENT_HUBPORT] = "hubport",
        [QNIC_NET_CLIENT_USER] = "user", [QNIC_NET_CLIENT_TAP] = "tap",
        [QNIC_NET_CLIENT_SOCKET] = "socket", [QNIC_NET_CLIENT_STREAM] = "stream",
        [QNIC_NET_CLIENT_DGRAM] = "dgram", [QNIC_NET_CLIENT_VDE] = "vde",
        [QNIC_NET_CLIENT_L2TPV3] = "l2tpv3", [QNIC_NET_CLIENT_VHOST_USER] = "vhost-user",
        [QNIC_NET_CLIENT_VHOST_VDPA] = "vhost-vdpa",
    };
    unsigned k = nc->ops->kind;

    return k < G_N_ELEMENTS(names) && names[k] ? names[k] : nc->model;
}

static void print_client(GString *out, const QnicNetClient *nc)
{
    g_string_append_printf(out, "%s: index=%d,type=%s,%s\r\n", nc->name, nc->queue_index,
                           client_type(nc), nc->info_str);
}

static bool on_hub(const QnicNetClient *nc)
{
    return nc->ops->kind == QNIC_NET_CLIENT_HUBPORT ||
           (nc->peer && nc->peer->ops->kind == QNIC_NET_CLIENT_HUBPORT);
}

/* "hub N", then " \ PORT: " and what is plugged into the port, or the
 * port's name alone when nothing is. */
static void print_hub(void *opaque, int hub_id, QnicNetClient *port)
{
    GString *out = opaque;

    if (!port) {
        g_string_append_printf(out, "hub %d\r\n", hub_id);
    } else if (port->peer) {
        g_string_append_printf(out, " \\ %s: ", port->name);
        print_client(out, port->peer);
    } else {
        g_string_append_printf(out, " \\ %s\r\n", port->name);
    }
}

/* QEMU's order: the hubs with what is plugged into them first, then every
 * other client in creation order; a NIC with its backend under it; a
 * backend alone only when nothing is plugged into it. */
static char *info_network(QnicBackends *be)
{
    GString *out = g_string_new(NULL);

    qnic_net_hub_walk(be, print_hub, out);
    for (GList *l = qnic_net_clients(be); l; l = l->next) {
        QnicNetClient *nc = l->data;
        QnicNetClient *peer = nc->peer;
        bool nic = nc->ops->kind == QNIC_NET_CLIENT_NIC;

        if (on_hub(nc)) {
            continue;
        }
        if (!peer || nic) {
            print_client(out, nc);
        }
        if (peer && nic) {
            g_string_append(out, " \\ ");
            print_client(out, peer);
        }
    }
    return g_string_free(out, false);
}

JsonNode *qmp_hmp(QnicQmpSession *s, JsonObject *args, const char **cls, char **desc)
{
    const char *line = json_object_get_string_member(args, "command-line");
    g_auto(GStrv) words = g_strsplit_set(line, " \t", -1);
    const char *w[3] = { NULL };
    unsigned n = 0;

    for (char **p = words; *p; p++) {
        if (**p && n < G_N_ELEMENTS(w)) {
            w[n++] = *p;
        }
    }
    if (n == 0) {
        return prop_value(&(QnicPropDesc){ .type = QNIC_PROP_STR }, "");
    }
    if (n == 1 || strcmp(w[0], "info") != 0 || strcmp(w[1], "network") != 0) {
        *desc = g_strdup_printf("HMP command '%s' is not available: qnic-vmm's "
                                "human-monitor-command runs 'info network' only", line);
        return NULL;
    }
    if (n > 2) {
        return prop_value(&(QnicPropDesc){ .type = QNIC_PROP_STR },
                          "network: extraneous characters at the end of line\r\n"
                          "Try \"help info network\" for more information\r\n");
    }
    g_autofree char *text = info_network(qmp_session_machine(s)->cfg.backends);
    return prop_value(&(QnicPropDesc){ .type = QNIC_PROP_STR }, text);
}

/* ---- query-netdev-stats (qnic's own) ---- */

const ArgDesc qmp_netdev_stats_args[] = { { "id", ARG_STR, true }, { NULL } };

static JsonObject *stats_object(const QnicNetClientStats *st)
{
    JsonObject *o = json_object_new();

    json_object_set_int_member(o, "frames", st->frames);
    json_object_set_int_member(o, "bytes", st->bytes);
    json_object_set_int_member(o, "drops", st->drops);
    json_object_set_int_member(o, "backpressure", st->backpressure);
    return o;
}

/* One queue of a netdev: "tx" is what it sent toward its peer (the
 * guest's receive side), "rx" what the peer sent it. */
static JsonObject *queue_stats(const QnicNetClient *nc)
{
    static const QnicNetClientStats none;
    JsonObject *o = json_object_new();

    json_object_set_int_member(o, "queue", nc->queue_index);
    json_object_set_object_member(o, "tx", stats_object(&nc->tx));
    json_object_set_object_member(o, "rx", stats_object(nc->peer ? &nc->peer->tx : &none));
    return o;
}

static JsonObject *netdev_stats(QnicBackends *be, const char *id, const QnicNetClient *first)
{
    JsonObject *o = json_object_new();
    JsonArray *queues = json_array_new();

    json_object_set_string_member(o, "id", id);
    json_object_set_string_member(o, "type", client_type(first));
    for (GList *l = qnic_net_clients(be); l; l = l->next) {
        QnicNetClient *nc = l->data;
        if (nc->ops->kind != QNIC_NET_CLIENT_NIC && !strcmp(nc->name, id)) {
            json_array_add_object_element(queues, queue_stats(nc));
        }
    }
    json_object_set_array_member(o, "queues", queues);
    return o;
}

JsonNode *qmp_query_netdev_stats(QnicQmpSession *s, JsonObject *args, const char **cls,
                                 char **desc)
{
    const char *id = json_object_has_member(args, "id") ?
                     json_object_get_string_member(args, "id") : NULL;
    QnicBackends *be = qmp_session_machine(s)->cfg.backends;
    JsonArray *a = json_array_new();

    for (GList *l = qnic_net_clients(be); l; l = l->next) {
        QnicNetClient *nc = l->data;
        if (nc->ops->kind == QNIC_NET_CLIENT_NIC || nc->queue_index != 0 ||
            (id && strcmp(nc->name, id) != 0)) {
            continue;
        }
        json_array_add_object_element(a, netdev_stats(be, nc->name, nc));
    }
    if (id && !json_array_get_length(a)) {
        json_array_unref(a);
        *cls = "DeviceNotFound";
        *desc = g_strdup_printf("Device '%s' not found", id);
        return NULL;
    }
    return qmp_array_node(a);
}
