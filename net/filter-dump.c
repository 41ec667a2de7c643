/*
 * `-object filter-dump`: writes every frame a netdev sends and/or receives
 * to a pcap file (libpcap format, linktype 1 = Ethernet, snapshot length
 * maxlen, default 65536) so that tshark/wireshark can read the traffic.
 * Each frame is one writev() of its record header and data, so the file is
 * readable while qnic runs. The send path in net.c calls
 * qnic_net_filters_run() only while at least one filter exists.
 */
#include "net-internal.h"
#include "qnic/filter.h"
#include "qnic/schema.h"
#include "qnic/log.h"
#include <fcntl.h>
#include <unistd.h>

#define PCAP_MAGIC 0xa1b2c3d4u
#define PCAP_LINKTYPE_ETHERNET 1
#define DUMP_MAX_IOV 64

struct pcap_file_hdr {
    uint32_t magic;
    uint16_t version_major, version_minor;
    int32_t thiszone;
    uint32_t sigfigs, snaplen, linktype;
};

struct pcap_rec_hdr {
    uint32_t ts_sec, ts_usec, caplen, len;
};

typedef struct DumpFilter {
    char *id;
    char *netdev;
    int fd;
    uint32_t maxlen;
    bool rx, tx;
    bool enabled;
    GPtrArray *ncs;           /* the netdev's clients we watch */
} DumpFilter;

unsigned qnic_net_filter_count;
static GList *filters;

static void dump_frame(DumpFilter *f, const struct iovec *iov, int iovcnt, size_t skip)
{
    struct iovec tail[DUMP_MAX_IOV];
    size_t len = qnic_iov_size(iov, iovcnt);

    /* Drop the virtio-net header: pcap wants the Ethernet frame. */
    if (skip) {
        int n = 0;
        if (len < skip) {
            return;
        }
        for (int i = 0; i < iovcnt && n < DUMP_MAX_IOV; i++) {
            if (skip >= iov[i].iov_len) {
                skip -= iov[i].iov_len;
                continue;
            }
            tail[n].iov_base = (uint8_t *)iov[i].iov_base + skip;
            tail[n].iov_len = iov[i].iov_len - skip;
            skip = 0;
            n++;
        }
        iov = tail;
        iovcnt = n;
        len = qnic_iov_size(iov, iovcnt);
    }
    size_t cap = MIN(len, (size_t)f->maxlen);
    struct iovec out[DUMP_MAX_IOV + 1];
    int n = 1;
    gint64 now = g_get_real_time();
    struct pcap_rec_hdr h = {
        .ts_sec = (uint32_t)(now / G_USEC_PER_SEC),
        .ts_usec = (uint32_t)(now % G_USEC_PER_SEC),
        .caplen = (uint32_t)cap,
        .len = (uint32_t)len,
    };
    size_t left = cap;

    out[0].iov_base = &h;
    out[0].iov_len = sizeof(h);
    for (int i = 0; i < iovcnt && left > 0; i++) {
        if (n == DUMP_MAX_IOV + 1) {
            /* A frame in more pieces than we gather: record what fits. */
            h.caplen -= left;
            break;
        }
        out[n].iov_base = iov[i].iov_base;
        out[n].iov_len = MIN(iov[i].iov_len, left);
        left -= out[n].iov_len;
        n++;
    }
    if (writev(f->fd, out, n) < 0) {
        qnic_warn("filter-dump '%s': write failed, dumping stops: %s", f->id, g_strerror(errno));
        f->enabled = false;
    }
}

void qnic_net_filters_run(QnicNetClient *nc, bool tx, const struct iovec *iov, int iovcnt)
{
    for (GList *l = filters; l; l = l->next) {
        DumpFilter *f = l->data;
        if (f->enabled && (tx ? f->tx : f->rx)) {
            for (guint i = 0; i < f->ncs->len; i++) {
                if (g_ptr_array_index(f->ncs, i) == nc) {
                    dump_frame(f, iov, iovcnt, nc->vnet_hdr_len > 0 ? nc->vnet_hdr_len : 0);
                    break;
                }
            }
        }
    }
}

void qnic_net_filters_detach(QnicNetClient *nc)
{
    for (GList *l = filters; l; l = l->next) {
        DumpFilter *f = l->data;
        g_ptr_array_remove(f->ncs, nc);
    }
}

bool qnic_filter_type_known(const char *type)
{
    return g_strcmp0(type, "filter-dump") == 0;
}

static void dump_free(DumpFilter *f)
{
    if (f->fd >= 0) {
        close(f->fd);
    }
    g_ptr_array_free(f->ncs, TRUE);
    g_free(f->id);
    g_free(f->netdev);
    g_free(f);
}

bool qnic_filter_add(QnicOpts *opts, GError **errp)
{
    g_autoptr(QnicOpts) o = opts;
    const char *type = qnic_opts_get(o, "qom-type");
    const QnicSchemaType *t;
    const char *id, *netdev, *file, *queue, *status;
    QnicNetdev *nd;
    DumpFilter *f;

    if (!type) {
        type = qnic_opts_get(o, "type");
    }
    if (!qnic_filter_type_known(type)) {
        qnic_error_setg_invalid(errp, "invalid object type: %s", type ? type : "");
        return false;
    }
    t = qnic_schema_lookup(QNIC_SCHEMA_OBJECT, type);
    if (t && !qnic_schema_check(o, t, errp)) {
        return false;
    }
    id = qnic_opts_get(o, "id");
    netdev = qnic_opts_get(o, "netdev");
    file = qnic_opts_get(o, "file");
    if (!id) {
        qnic_error_setg_invalid(errp, "Parameter 'id' is missing");
        return false;
    }
    for (GList *l = filters; l; l = l->next) {
        if (g_str_equal(((DumpFilter *)l->data)->id, id)) {
            qnic_error_setg_invalid(errp, "attempt to add duplicate property '%s' to object", id);
            return false;
        }
    }
    if (!netdev) {
        qnic_error_setg_invalid(errp, "Parameter 'netdev' is missing");
        return false;
    }
    nd = qnic_netdev_find(netdev);
    if (!nd) {
        qnic_error_setg_invalid(errp, "Parameter 'netdev' expects a network backend id");
        return false;
    }
    if (!file) {
        qnic_error_setg_invalid(errp, "Parameter 'file' is missing");
        return false;
    }
    f = g_new0(DumpFilter, 1);
    f->id = g_strdup(id);
    f->netdev = g_strdup(netdev);
    f->maxlen = (uint32_t)qnic_opts_get_uint(o, "maxlen", 65536);
    if (f->maxlen == 0) {
        f->maxlen = 65536;
    }
    queue = qnic_opts_get(o, "queue");
    f->rx = !queue || g_str_equal(queue, "all") || g_str_equal(queue, "rx");
    f->tx = !queue || g_str_equal(queue, "all") || g_str_equal(queue, "tx");
    if (!f->rx && !f->tx) {
        qnic_error_setg_invalid(errp, "Parameter 'queue' does not accept value '%s'", queue);
        dump_free(f);
        return false;
    }
    status = qnic_opts_get(o, "status");
    f->enabled = !status || g_str_equal(status, "on");
    f->ncs = g_ptr_array_new();
    for (int i = 0; i < nd->queues; i++) {
        g_ptr_array_add(f->ncs, nd->ncs[i]);
    }
    f->fd = open(file, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
    if (f->fd < 0) {
        qnic_error_setg_errno(errp, errno, "filter-dump: can't open %s", file);
        dump_free(f);
        return false;
    }
    struct pcap_file_hdr h = {
        .magic = PCAP_MAGIC,
        .version_major = 2,
        .version_minor = 4,
        .snaplen = f->maxlen,
        .linktype = PCAP_LINKTYPE_ETHERNET,
    };
    if (write(f->fd, &h, sizeof(h)) != sizeof(h)) {
        qnic_error_setg_errno(errp, errno, "filter-dump: can't write %s", file);
        dump_free(f);
        return false;
    }
    filters = g_list_append(filters, f);
    qnic_net_filter_count++;
    return true;
}

bool qnic_filter_add_str(const char *str, GError **errp)
{
    QnicOpts *o = qnic_opts_parse("object", str, "qom-type", errp);
    return o ? qnic_filter_add(o, errp) : false;
}

bool qnic_filter_del(const char *id)
{
    for (GList *l = filters; l; l = l->next) {
        DumpFilter *f = l->data;
        if (g_str_equal(f->id, id)) {
            filters = g_list_delete_link(filters, l);
            qnic_net_filter_count--;
            dump_free(f);
            return true;
        }
    }
    return false;
}

void qnic_filter_del_all(void)
{
    while (filters) {
        qnic_filter_del(((DumpFilter *)filters->data)->id);
    }
}
