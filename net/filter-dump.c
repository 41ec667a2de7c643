/*
 * `-object filter-dump`: writes every frame a netdev sends and/or receives
 * to a pcap file (libpcap format, linktype 1 = Ethernet, snapshot length
 * maxlen, default 65536) so that tshark/wireshark can read the traffic.
 * Each frame is one writev() of its record header and data, so the file is
 * readable while qnic runs. The filter mechanism (net/filter.c) reads the
 * keys every filter shares and attaches it; this file is the dump only.
 */
#include "qnic/net-filter.h"
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
    int fd;
    uint32_t maxlen;
} DumpFilter;

/* One pcap record; false when the write failed. */
static bool dump_frame(DumpFilter *f, const struct iovec *iov, int iovcnt, size_t skip)
{
    struct iovec tail[DUMP_MAX_IOV];
    size_t len = qnic_iov_size(iov, iovcnt);

    /* Drop the virtio-net header: pcap wants the Ethernet frame. */
    if (skip) {
        int n = 0;
        if (len < skip) {
            return true;
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
    return writev(f->fd, out, n) >= 0;
}

static void dump_receive_iov(QnicNetFilter *nf, QnicNetClient *nc, QnicNetFilterDirection dir,
                             const struct iovec *iov, int iovcnt)
{
    DumpFilter *f = nf->opaque;

    if (!dump_frame(f, iov, iovcnt, nc->vnet_hdr_len > 0 ? nc->vnet_hdr_len : 0)) {
        qnic_warn("filter-dump '%s': write failed, dumping stops: %s", nf->id,
                  g_strerror(errno));
        nf->enabled = false;
    }
}

static void dump_cleanup(QnicNetFilter *nf)
{
    DumpFilter *f = nf->opaque;

    if (f) {
        if (f->fd >= 0) {
            close(f->fd);
        }
        g_free(f);
        nf->opaque = NULL;
    }
}

static bool dump_init(QnicNetFilter *nf, QnicOpts *o, GError **errp)
{
    const char *file = qnic_opts_get(o, "file");
    DumpFilter *f;

    if (!file) {
        qnic_error_setg_invalid(errp, "Parameter 'file' is missing");
        return false;
    }
    f = g_new0(DumpFilter, 1);
    f->fd = -1;
    nf->opaque = f;
    f->maxlen = (uint32_t)qnic_opts_get_uint(o, "maxlen", 65536);
    if (f->maxlen == 0) {
        f->maxlen = 65536;
    }
    f->fd = open(file, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
    if (f->fd < 0) {
        qnic_error_setg_errno(errp, errno, "filter-dump: can't open %s", file);
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
        return false;
    }
    return true;
}

static const QnicNetFilterClass dump_class = {
    .type = "filter-dump",
    .init = dump_init,
    .receive_iov = dump_receive_iov,
    .cleanup = dump_cleanup,
};
QNIC_NET_FILTER_REGISTER(dump_class)
