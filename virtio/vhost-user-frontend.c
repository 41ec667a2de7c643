/*
 * The vhost-user frontend: qnic asks, a backend process answers, over the
 * Unix socket of a chardev. It implements the vhost ops (qnic/vhost.h) with
 * vhost-user messages and runs the connection handshake. The backend is
 * untrusted: every reply must carry the reply flag and the request code
 * that was asked, have exactly the payload size that request's reply has,
 * bring no descriptors, and arrive within qnic_vhost_user_timeout_ms().
 * Anything else is logged once with what was wrong, the connection is
 * declared broken (no further I/O on it) and the owner is told from a
 * bottom half, so no caller ever sees the connection vanish under it.
 */
#include "qnic/vhost-user-frontend.h"
#include "qnic/vhost-user-msg.h"
#include "qnic/mainloop.h"
#include "qnic/log.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

/* Protocol features qnic's net frontend uses. */
#define OUR_PROTOCOL_FEATURES ((1ull << QNIC_VHU_PROTOCOL_F_MQ) | \
                               (1ull << QNIC_VHU_PROTOCOL_F_REPLY_ACK) | \
                               (1ull << QNIC_VHU_PROTOCOL_F_NET_MTU))

struct QnicVhostUser {
    char *name;
    unsigned queue_pairs;
    int fd;                     /* -1: no connection */
    bool broken;                /* failed: no more I/O until disconnect */
    uint64_t protocol_features;
    QnicVhostDev *hd;
    QnicBH *failed_bh;
    void (*failed)(void *opaque);
    void *opaque;
};

unsigned qnic_vhost_user_timeout_ms(void)
{
    const char *s = getenv("QNIC_VHOST_USER_TIMEOUT_MS");
    unsigned long v;

    if (s && *s && (v = strtoul(s, NULL, 10)) > 0 && v < 3600 * 1000) {
        return (unsigned)v;
    }
    return 10000;
}

static void failed_bh_cb(void *opaque)
{
    QnicVhostUser *u = opaque;

    if (u->broken && u->failed) {
        u->failed(u->opaque);
    }
}

/* The connection is unusable from now on: say why once, tell the owner. */
static void vu_fail(QnicVhostUser *u, GError *err)
{
    if (!u->broken) {
        qnic_report_ratelimited("vhost-user netdev '%s': %s; disconnecting the backend",
                                u->name, err ? err->message : "connection failed");
        u->broken = true;
        u->hd->connected = false;
        qnic_bh_schedule(u->failed_bh);
    }
}

static bool vu_usable(QnicVhostUser *u, uint32_t req, GError **errp)
{
    if (u->fd < 0 || u->broken) {
        qnic_error_setg(errp, "vhost-user: no backend connected (for %s)",
                        qnic_vhu_request_name(req));
        return false;
    }
    return true;
}

/* Wait for the first byte of a reply until the deadline: > 0 readable. */
static int wait_readable(int fd, gint64 deadline)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };

    for (;;) {
        gint64 left = (deadline - g_get_monotonic_time() + 999) / 1000;
        int r = poll(&p, 1, left > 0 ? (int)MIN(left, (gint64)INT_MAX) : 0);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        return r;
    }
}

/* Send m and, when want_reply, read and check the answer into reply. With
 * REPLY_ACK negotiated every request that has no reply of its own asks for
 * an ack, so a backend's refusal is seen where it happens. */
static bool vu_exchange(QnicVhostUser *u, QnicVhuMsg *m, QnicVhuMsg *reply, GError **errp)
{
    GError *err = NULL;
    QnicVhuMsg ack;
    bool want_ack = !reply && (u->protocol_features & (1ull << QNIC_VHU_PROTOCOL_F_REPLY_ACK));
    QnicVhuMsg *r = reply ? reply : &ack;
    uint32_t req = m->hdr.request;
    unsigned ms = qnic_vhost_user_timeout_ms();
    /* One deadline for the request and the whole reply: the backend
     * cannot stretch it by sending a byte now and then. */
    gint64 deadline = qnic_vhu_deadline(ms);
    int rc;

    if (!vu_usable(u, req, errp)) {
        return false;
    }
    if (want_ack) {
        m->hdr.flags |= QNIC_VHU_FLAG_NEED_REPLY;
    }
    if (!qnic_vhu_msg_send_until(u->fd, m, deadline, &err)) {
        goto fail;
    }
    if (!reply && !want_ack) {
        return true;
    }
    rc = wait_readable(u->fd, deadline);
    if (rc <= 0) {
        qnic_error_setg(&err, "no reply to %s within %u ms", qnic_vhu_request_name(req), ms);
        goto fail;
    }
    rc = qnic_vhu_msg_recv_until(u->fd, r, deadline, &err);
    if (rc == 0) {
        qnic_error_setg(&err, "backend closed the connection instead of answering %s",
                        qnic_vhu_request_name(req));
        goto fail;
    }
    if (rc < 0) {
        goto fail;
    }
    if (r->nfds) {
        qnic_error_setg(&err, "reply to %s carries %u file descriptors",
                        qnic_vhu_request_name(req), r->nfds);
        qnic_vhu_msg_close_fds(r);
        goto fail;
    }
    if (r->hdr.request != req) {
        qnic_error_setg(&err, "asked %s, backend answered %s (%u)", qnic_vhu_request_name(req),
                        qnic_vhu_request_name(r->hdr.request), r->hdr.request);
        goto fail;
    }
    if (!qnic_vhu_msg_check(r, false, &err)) {
        goto fail;
    }
    /* Every reply a net frontend asks for is one u64 or one vring state. */
    if (r->hdr.size != 8) {
        qnic_error_setg(&err, "reply to %s has %u payload bytes, expected 8",
                        qnic_vhu_request_name(req), r->hdr.size);
        goto fail;
    }
    if (want_ack && r->p.u64 != 0) {
        qnic_error_setg(&err, "backend refused %s (status %" PRIu64 ")",
                        qnic_vhu_request_name(req), (uint64_t)r->p.u64);
        goto fail;
    }
    return true;

fail:
    if (errp) {
        *errp = g_error_copy(err);
    }
    vu_fail(u, err);
    g_error_free(err);
    return false;
}

static bool vu_get_u64(QnicVhostUser *u, uint32_t req, uint64_t *out, GError **errp)
{
    QnicVhuMsg m, r;

    qnic_vhu_msg_init(&m, req, 0);
    if (!vu_exchange(u, &m, &r, errp)) {
        return false;
    }
    *out = r.p.u64;
    return true;
}

static bool vu_set_u64(QnicVhostUser *u, uint32_t req, uint64_t v, GError **errp)
{
    QnicVhuMsg m;

    qnic_vhu_msg_init(&m, req, 8);
    m.p.u64 = v;
    return vu_exchange(u, &m, NULL, errp);
}

static bool vu_set_state(QnicVhostUser *u, uint32_t req, unsigned idx, unsigned num,
                         GError **errp)
{
    QnicVhuMsg m;

    qnic_vhu_msg_init(&m, req, sizeof(QnicVhuVringState));
    m.p.state.index = idx;
    m.p.state.num = num;
    return vu_exchange(u, &m, NULL, errp);
}

/* ---- vhost ops ---- */

static QnicVhostUser *vu_of(QnicVhostDev *hd)
{
    return hd->be;
}

static bool op_set_features(QnicVhostDev *hd, uint64_t features, GError **errp)
{
    if (hd->backend_features & (1ull << QNIC_VHU_F_PROTOCOL_FEATURES)) {
        features |= 1ull << QNIC_VHU_F_PROTOCOL_FEATURES;
    }
    return vu_set_u64(vu_of(hd), QNIC_VHU_SET_FEATURES, features, errp);
}

static bool op_set_mem_table(QnicVhostDev *hd, QnicMachine *mach, GError **errp)
{
    QnicVhostUser *u = vu_of(hd);
    QnicRegion *rams[2] = { &mach->ram_low, &mach->ram_high };
    QnicVhuMsg m;
    unsigned n = 0;

    qnic_vhu_msg_init(&m, QNIC_VHU_SET_MEM_TABLE, 0);
    for (unsigned i = 0; i < 2; i++) {
        QnicRegion *r = rams[i];
        if (!r->size || !r->ram || r->ram_fd < 0) {
            continue;
        }
        m.p.memory.regions[n].guest_phys_addr = r->addr;
        m.p.memory.regions[n].memory_size = r->size;
        m.p.memory.regions[n].userspace_addr = (uint64_t)(uintptr_t)r->ram;
        m.p.memory.regions[n].mmap_offset = r->ram_fd_offset;
        m.fds[n] = r->ram_fd;
        n++;
    }
    if (!n) {
        qnic_error_setg(errp, "vhost-user: the machine has no shareable RAM");
        return false;
    }
    m.p.memory.nregions = n;
    m.nfds = n;
    m.hdr.size = 8 + n * sizeof(QnicVhuMemRegion);
    return vu_exchange(u, &m, NULL, errp);
}

static bool op_set_vring_num(QnicVhostDev *hd, unsigned idx, unsigned num, GError **errp)
{
    return vu_set_state(vu_of(hd), QNIC_VHU_SET_VRING_NUM, idx, num, errp);
}

static bool op_set_vring_base(QnicVhostDev *hd, unsigned idx, unsigned base, GError **errp)
{
    return vu_set_state(vu_of(hd), QNIC_VHU_SET_VRING_BASE, idx, base, errp);
}

static bool op_get_vring_base(QnicVhostDev *hd, unsigned idx, unsigned *base, GError **errp)
{
    QnicVhostUser *u = vu_of(hd);
    QnicVhuMsg m, r;

    qnic_vhu_msg_init(&m, QNIC_VHU_GET_VRING_BASE, sizeof(QnicVhuVringState));
    m.p.state.index = idx;
    if (!vu_exchange(u, &m, &r, errp)) {
        return false;
    }
    if (r.p.state.index != idx) {
        GError *err = NULL;
        qnic_error_setg(&err, "GET_VRING_BASE for ring %u answered for ring %u", idx,
                        r.p.state.index);
        if (errp) {
            *errp = g_error_copy(err);
        }
        vu_fail(u, err);
        g_error_free(err);
        return false;
    }
    *base = r.p.state.num & 0xffff;
    return true;
}

static bool op_set_vring_addr(QnicVhostDev *hd, unsigned idx, uint64_t desc, uint64_t avail,
                              uint64_t used, GError **errp)
{
    QnicVhuMsg m;

    qnic_vhu_msg_init(&m, QNIC_VHU_SET_VRING_ADDR, sizeof(QnicVhuVringAddr));
    m.p.addr.index = idx;
    m.p.addr.desc_user_addr = desc;
    m.p.addr.avail_user_addr = avail;
    m.p.addr.used_user_addr = used;
    return vu_exchange(vu_of(hd), &m, NULL, errp);
}

static bool set_vring_fd(QnicVhostDev *hd, uint32_t req, unsigned idx, int fd, GError **errp)
{
    QnicVhuMsg m;

    qnic_vhu_msg_init(&m, req, 8);
    m.p.u64 = idx & QNIC_VHU_VRING_IDX_MASK;
    if (fd >= 0) {
        m.fds[0] = fd;
        m.nfds = 1;
    } else {
        m.p.u64 |= QNIC_VHU_VRING_NOFD_MASK;
    }
    return vu_exchange(vu_of(hd), &m, NULL, errp);
}

static bool op_set_vring_kick(QnicVhostDev *hd, unsigned idx, int fd, GError **errp)
{
    return set_vring_fd(hd, QNIC_VHU_SET_VRING_KICK, idx, fd, errp);
}

static bool op_set_vring_call(QnicVhostDev *hd, unsigned idx, int fd, GError **errp)
{
    return set_vring_fd(hd, QNIC_VHU_SET_VRING_CALL, idx, fd, errp);
}

static bool op_set_vring_enable(QnicVhostDev *hd, unsigned idx, bool enable, GError **errp)
{
    /* Without protocol features rings run as soon as they are kicked. */
    if (!(hd->backend_features & (1ull << QNIC_VHU_F_PROTOCOL_FEATURES))) {
        return true;
    }
    return vu_set_state(vu_of(hd), QNIC_VHU_SET_VRING_ENABLE, idx, enable, errp);
}

static bool op_set_mtu(QnicVhostDev *hd, unsigned mtu, GError **errp)
{
    QnicVhostUser *u = vu_of(hd);

    if (!(u->protocol_features & (1ull << QNIC_VHU_PROTOCOL_F_NET_MTU))) {
        return true;
    }
    return vu_set_u64(u, QNIC_VHU_NET_SET_MTU, mtu, errp);
}

static const QnicVhostOps vhost_user_ops = {
    .name = "vhost-user",
    .set_features = op_set_features,
    .set_mem_table = op_set_mem_table,
    .set_vring_num = op_set_vring_num,
    .set_vring_base = op_set_vring_base,
    .get_vring_base = op_get_vring_base,
    .set_vring_addr = op_set_vring_addr,
    .set_vring_kick = op_set_vring_kick,
    .set_vring_call = op_set_vring_call,
    .set_vring_enable = op_set_vring_enable,
    .set_mtu = op_set_mtu,
    .max_tx_queue_size = QNIC_VQ_MAX_SIZE,
};

/* ---- connection ---- */

QnicVhostUser *qnic_vhost_user_new(const char *name, unsigned queue_pairs,
                                   void (*failed)(void *opaque), void *opaque)
{
    QnicVhostUser *u = g_new0(QnicVhostUser, 1);

    u->name = g_strdup(name);
    u->queue_pairs = queue_pairs;
    u->fd = -1;
    u->failed = failed;
    u->opaque = opaque;
    u->failed_bh = qnic_bh_new(failed_bh_cb, u);
    u->hd = qnic_vhost_dev_new(&vhost_user_ops, u, 2 * queue_pairs);
    return u;
}

void qnic_vhost_user_free(QnicVhostUser *u)
{
    if (!u) {
        return;
    }
    qnic_vhost_user_disconnect(u);
    qnic_vhost_dev_free(u->hd);
    qnic_bh_free(u->failed_bh);
    g_free(u->name);
    g_free(u);
}

QnicVhostDev *qnic_vhost_user_dev(QnicVhostUser *u)
{
    return u->hd;
}

uint64_t qnic_vhost_user_protocol_features(QnicVhostUser *u)
{
    return u->protocol_features;
}

bool qnic_vhost_user_connect(QnicVhostUser *u, int fd, GError **errp)
{
    QnicVhostDev *hd = u->hd;
    uint64_t features, pf = 0, qnum = 1;

    qnic_vhost_user_disconnect(u);
    /* No socket timeouts: every exchange has its own deadline and all I/O
     * on the socket is MSG_DONTWAIT (vu_exchange, vhost-user-msg.c). */
    u->fd = fd;
    u->broken = false;
    u->protocol_features = 0;

    if (!vu_get_u64(u, QNIC_VHU_GET_FEATURES, &features, errp)) {
        return false;
    }
    if (features & (1ull << QNIC_VHU_F_PROTOCOL_FEATURES)) {
        if (!vu_get_u64(u, QNIC_VHU_GET_PROTOCOL_FEATURES, &pf, errp)) {
            return false;
        }
        pf &= OUR_PROTOCOL_FEATURES;
        if (!vu_set_u64(u, QNIC_VHU_SET_PROTOCOL_FEATURES, pf, errp)) {
            return false;
        }
        /* Acks are asked for only after the backend knows we may. */
        u->protocol_features = pf;
        if (pf & (1ull << QNIC_VHU_PROTOCOL_F_MQ)) {
            if (!vu_get_u64(u, QNIC_VHU_GET_QUEUE_NUM, &qnum, errp)) {
                return false;
            }
        }
    }
    if (u->queue_pairs > 1 && !(pf & (1ull << QNIC_VHU_PROTOCOL_F_MQ))) {
        qnic_error_setg(errp, "vhost-user netdev '%s': queues=%u needs a backend with the MQ "
                        "protocol feature", u->name, u->queue_pairs);
        vu_fail(u, NULL);
        return false;
    }
    if (qnum < u->queue_pairs) {
        qnic_error_setg(errp, "vhost-user netdev '%s': you are asking more queues (%u) than "
                        "supported (%" PRIu64 ")", u->name, u->queue_pairs, qnum);
        vu_fail(u, NULL);
        return false;
    }
    {
        QnicVhuMsg m;
        qnic_vhu_msg_init(&m, QNIC_VHU_SET_OWNER, 0);
        if (!vu_exchange(u, &m, NULL, errp)) {
            return false;
        }
    }
    hd->backend_features = features;
    hd->max_queue_pairs = (unsigned)MIN(qnum, 0x8000);
    hd->connected = true;
    return true;
}

void qnic_vhost_user_disconnect(QnicVhostUser *u)
{
    u->hd->connected = false;
    qnic_vhost_dev_stop(u->hd);
    qnic_bh_cancel(u->failed_bh);
    u->fd = -1;
    u->broken = false;
}

bool qnic_vhost_user_readable(QnicVhostUser *u)
{
    uint8_t b;
    ssize_t n;
    QnicVhuMsg m;
    GError *err = NULL;

    if (u->fd < 0 || u->broken) {
        return false;
    }
    n = recv(u->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        return true;    /* a reply another thread already consumed */
    }
    if (n <= 0) {
        qnic_report_ratelimited("vhost-user netdev '%s': backend disconnected", u->name);
        u->broken = true;
        u->hd->connected = false;
        return false;
    }
    /* The backend speaks only when asked on this channel. */
    if (qnic_vhu_msg_recv(u->fd, &m, &err) > 0) {
        qnic_error_setg(&err, "unsolicited %s (%u) from the backend",
                        qnic_vhu_request_name(m.hdr.request), m.hdr.request);
        qnic_vhu_msg_close_fds(&m);
    } else if (!err) {
        qnic_error_setg(&err, "backend disconnected");
    }
    qnic_report_ratelimited("vhost-user netdev '%s': %s", u->name, err->message);
    g_error_free(err);
    u->broken = true;
    u->hd->connected = false;
    return false;
}
