/*
 * vhost-user message codec: framing, descriptor passing and payload size
 * checks shared by qnic's frontend and backend. See qnic/vhost-user.h.
 */
#include "qnic/vhost-user.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *const request_names[QNIC_VHU_REQUEST_MAX] = {
    [QNIC_VHU_NONE] = "NONE",
    [QNIC_VHU_GET_FEATURES] = "GET_FEATURES",
    [QNIC_VHU_SET_FEATURES] = "SET_FEATURES",
    [QNIC_VHU_SET_OWNER] = "SET_OWNER",
    [QNIC_VHU_RESET_OWNER] = "RESET_OWNER",
    [QNIC_VHU_SET_MEM_TABLE] = "SET_MEM_TABLE",
    [QNIC_VHU_SET_LOG_BASE] = "SET_LOG_BASE",
    [QNIC_VHU_SET_LOG_FD] = "SET_LOG_FD",
    [QNIC_VHU_SET_VRING_NUM] = "SET_VRING_NUM",
    [QNIC_VHU_SET_VRING_ADDR] = "SET_VRING_ADDR",
    [QNIC_VHU_SET_VRING_BASE] = "SET_VRING_BASE",
    [QNIC_VHU_GET_VRING_BASE] = "GET_VRING_BASE",
    [QNIC_VHU_SET_VRING_KICK] = "SET_VRING_KICK",
    [QNIC_VHU_SET_VRING_CALL] = "SET_VRING_CALL",
    [QNIC_VHU_SET_VRING_ERR] = "SET_VRING_ERR",
    [QNIC_VHU_GET_PROTOCOL_FEATURES] = "GET_PROTOCOL_FEATURES",
    [QNIC_VHU_SET_PROTOCOL_FEATURES] = "SET_PROTOCOL_FEATURES",
    [QNIC_VHU_GET_QUEUE_NUM] = "GET_QUEUE_NUM",
    [QNIC_VHU_SET_VRING_ENABLE] = "SET_VRING_ENABLE",
    [QNIC_VHU_SEND_RARP] = "SEND_RARP",
    [QNIC_VHU_NET_SET_MTU] = "NET_SET_MTU",
    [QNIC_VHU_SET_BACKEND_REQ_FD] = "SET_BACKEND_REQ_FD",
    [QNIC_VHU_IOTLB_MSG] = "IOTLB_MSG",
    [QNIC_VHU_SET_VRING_ENDIAN] = "SET_VRING_ENDIAN",
    [QNIC_VHU_GET_CONFIG] = "GET_CONFIG",
    [QNIC_VHU_SET_CONFIG] = "SET_CONFIG",
    [QNIC_VHU_CREATE_CRYPTO_SESSION] = "CREATE_CRYPTO_SESSION",
    [QNIC_VHU_CLOSE_CRYPTO_SESSION] = "CLOSE_CRYPTO_SESSION",
    [QNIC_VHU_POSTCOPY_ADVISE] = "POSTCOPY_ADVISE",
    [QNIC_VHU_POSTCOPY_LISTEN] = "POSTCOPY_LISTEN",
    [QNIC_VHU_POSTCOPY_END] = "POSTCOPY_END",
    [QNIC_VHU_GET_INFLIGHT_FD] = "GET_INFLIGHT_FD",
    [QNIC_VHU_SET_INFLIGHT_FD] = "SET_INFLIGHT_FD",
    [QNIC_VHU_GPU_SET_SOCKET] = "GPU_SET_SOCKET",
    [QNIC_VHU_RESET_DEVICE] = "RESET_DEVICE",
    [QNIC_VHU_VRING_KICK] = "VRING_KICK",
    [QNIC_VHU_GET_MAX_MEM_SLOTS] = "GET_MAX_MEM_SLOTS",
    [QNIC_VHU_ADD_MEM_REG] = "ADD_MEM_REG",
    [QNIC_VHU_REM_MEM_REG] = "REM_MEM_REG",
    [QNIC_VHU_SET_STATUS] = "SET_STATUS",
    [QNIC_VHU_GET_STATUS] = "GET_STATUS",
};

const char *qnic_vhu_request_name(uint32_t request)
{
    if (request < QNIC_VHU_REQUEST_MAX && request_names[request]) {
        return request_names[request];
    }
    return "UNKNOWN";
}

void qnic_vhu_msg_init(QnicVhuMsg *m, uint32_t request, uint32_t size)
{
    memset(m, 0, sizeof(*m));
    m->hdr.request = request;
    m->hdr.flags = QNIC_VHU_VERSION;
    m->hdr.size = size;
    for (unsigned i = 0; i < QNIC_VHU_MAX_FDS; i++) {
        m->fds[i] = -1;
    }
}

void qnic_vhu_msg_close_fds(QnicVhuMsg *m)
{
    for (unsigned i = 0; i < m->nfds && i < QNIC_VHU_MAX_FDS; i++) {
        if (m->fds[i] >= 0) {
            close(m->fds[i]);
            m->fds[i] = -1;
        }
    }
    m->nfds = 0;
}

int qnic_vhu_msg_take_fd(QnicVhuMsg *m, unsigned i)
{
    if (i >= m->nfds || i >= QNIC_VHU_MAX_FDS) {
        return -1;
    }
    int fd = m->fds[i];
    m->fds[i] = -1;
    return fd;
}

/* Read exactly len bytes (the payload: no descriptors travel with it). */
static bool read_full(int sock, void *buf, size_t len, GError **errp)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = recv(sock, (uint8_t *)buf + done, len - done, 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            /* A non-blocking socket: the rest of a message follows its
             * header at once from any sane peer; wait for it. */
            struct timeval tv = { .tv_sec = 5 };
            fd_set rd;
            FD_ZERO(&rd);
            FD_SET(sock, &rd);
            int r = select(sock + 1, &rd, NULL, NULL, &tv);
            if (r > 0 || (r < 0 && errno == EINTR)) {
                continue;
            }
            qnic_error_setg(errp, "vhost-user: peer stopped in the middle of a message");
            return false;
        }
        if (n <= 0) {
            qnic_error_setg(errp, "vhost-user: %s after %zu of %zu payload bytes",
                            n == 0 ? "connection closed" : g_strerror(errno), done, len);
            return false;
        }
        done += (size_t)n;
    }
    return true;
}

int qnic_vhu_msg_recv(int sock, QnicVhuMsg *m, GError **errp)
{
    qnic_vhu_msg_init(m, QNIC_VHU_NONE, 0);

    union {
        struct cmsghdr align;
        uint8_t buf[CMSG_SPACE(sizeof(int) * QNIC_VHU_MAX_FDS)];
    } ctl;
    struct iovec iov = { .iov_base = &m->hdr, .iov_len = sizeof(m->hdr) };
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1,
        .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf),
    };
    ssize_t n;
    memset(&ctl, 0, sizeof(ctl));
    for (;;) {
        n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        break;
    }
    if (n <= 0) {
        /* Nothing was received: the control buffer holds no descriptors
         * (the kernel may leave msg_controllen untouched). */
        mh.msg_controllen = 0;
    }
    /* Collect descriptors first so that every error path closes them. */
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
            continue;
        }
        size_t cnt = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        const uint8_t *data = CMSG_DATA(c);
        for (size_t i = 0; i < cnt; i++) {
            int fd;
            memcpy(&fd, data + i * sizeof(int), sizeof(int));
            if (m->nfds < QNIC_VHU_MAX_FDS) {
                m->fds[m->nfds++] = fd;
            } else {
                close(fd);
            }
        }
    }
    if (n == 0) {
        qnic_vhu_msg_close_fds(m);
        return 0;
    }
    if (n < 0) {
        qnic_error_setg(errp, "vhost-user: recvmsg: %s", g_strerror(errno));
        qnic_vhu_msg_close_fds(m);
        return -1;
    }
    if (mh.msg_flags & MSG_CTRUNC) {
        qnic_error_setg(errp, "vhost-user: more descriptors than %d in one message",
                        QNIC_VHU_MAX_FDS);
        goto fail;
    }
    if ((size_t)n < sizeof(m->hdr) &&
        !read_full(sock, (uint8_t *)&m->hdr + n, sizeof(m->hdr) - (size_t)n, errp)) {
        goto fail;
    }
    if ((m->hdr.flags & QNIC_VHU_FLAG_VERSION_MASK) != QNIC_VHU_VERSION) {
        qnic_error_setg(errp, "vhost-user: %s with protocol version %u (qnic speaks %u)",
                        qnic_vhu_request_name(m->hdr.request),
                        m->hdr.flags & QNIC_VHU_FLAG_VERSION_MASK, QNIC_VHU_VERSION);
        goto fail;
    }
    if (m->hdr.size > sizeof(m->p)) {
        qnic_error_setg(errp, "vhost-user: %s with a %u-byte payload (at most %zu)",
                        qnic_vhu_request_name(m->hdr.request), m->hdr.size, sizeof(m->p));
        goto fail;
    }
    if (m->hdr.size && !read_full(sock, &m->p, m->hdr.size, errp)) {
        goto fail;
    }
    return 1;

fail:
    qnic_vhu_msg_close_fds(m);
    return -1;
}

bool qnic_vhu_msg_send(int sock, const QnicVhuMsg *m, GError **errp)
{
    if (m->hdr.size > sizeof(m->p) || m->nfds > QNIC_VHU_MAX_FDS) {
        qnic_error_setg(errp, "vhost-user: refusing to send a malformed %s",
                        qnic_vhu_request_name(m->hdr.request));
        return false;
    }
    union {
        struct cmsghdr align;
        uint8_t buf[CMSG_SPACE(sizeof(int) * QNIC_VHU_MAX_FDS)];
    } ctl;
    struct iovec iov[2] = {
        { .iov_base = (void *)&m->hdr, .iov_len = sizeof(m->hdr) },
        { .iov_base = (void *)&m->p, .iov_len = m->hdr.size },
    };
    struct msghdr mh = { .msg_iov = iov, .msg_iovlen = m->hdr.size ? 2 : 1 };
    if (m->nfds) {
        memset(&ctl, 0, sizeof(ctl));
        mh.msg_control = ctl.buf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * m->nfds);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * m->nfds);
        memcpy(CMSG_DATA(c), m->fds, sizeof(int) * m->nfds);
    }
    size_t total = sizeof(m->hdr) + m->hdr.size;
    ssize_t n;
    do {
        n = sendmsg(sock, &mh, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        qnic_error_setg(errp, "vhost-user: sending %s: %s",
                        qnic_vhu_request_name(m->hdr.request), g_strerror(errno));
        return false;
    }
    if ((size_t)n < total) {
        /* Rare on a Unix stream socket; finish the rest without fds. */
        const uint8_t *all = (const uint8_t *)&m->hdr;
        uint8_t tmp[sizeof(m->hdr) + sizeof(m->p)];
        memcpy(tmp, all, sizeof(m->hdr));
        memcpy(tmp + sizeof(m->hdr), &m->p, m->hdr.size);
        size_t done = (size_t)n;
        while (done < total) {
            ssize_t k = send(sock, tmp + done, total - done, MSG_NOSIGNAL);
            if (k < 0 && errno == EINTR) {
                continue;
            }
            if (k <= 0) {
                qnic_error_setg(errp, "vhost-user: sending %s: %s",
                                qnic_vhu_request_name(m->hdr.request),
                                k < 0 ? g_strerror(errno) : "short write");
                return false;
            }
            done += (size_t)k;
        }
    }
    return true;
}

/* Smallest payload each request needs (frontend to backend). */
static uint32_t request_min_size(uint32_t req)
{
    switch (req) {
    case QNIC_VHU_SET_FEATURES:
    case QNIC_VHU_SET_PROTOCOL_FEATURES:
    case QNIC_VHU_SET_VRING_NUM:
    case QNIC_VHU_SET_VRING_BASE:
    case QNIC_VHU_GET_VRING_BASE:
    case QNIC_VHU_SET_VRING_ENABLE:
    case QNIC_VHU_SET_VRING_KICK:
    case QNIC_VHU_SET_VRING_CALL:
    case QNIC_VHU_SET_VRING_ERR:
    case QNIC_VHU_SEND_RARP:
    case QNIC_VHU_NET_SET_MTU:
    case QNIC_VHU_SET_VRING_ENDIAN:
    case QNIC_VHU_SET_STATUS:
    case QNIC_VHU_VRING_KICK:
        return 8;
    case QNIC_VHU_SET_VRING_ADDR:
        return sizeof(QnicVhuVringAddr);
    case QNIC_VHU_SET_MEM_TABLE:
        return 8;   /* nregions + padding; regions checked below */
    case QNIC_VHU_SET_LOG_BASE:
        return sizeof(QnicVhuLog);
    case QNIC_VHU_GET_CONFIG:
    case QNIC_VHU_SET_CONFIG:
        return 12;  /* offset, size, flags; region checked below */
    case QNIC_VHU_ADD_MEM_REG:
    case QNIC_VHU_REM_MEM_REG:
        return sizeof(QnicVhuMemRegMsg);
    case QNIC_VHU_IOTLB_MSG:
        return sizeof(QnicVhuIotlb);
    default:
        return 0;
    }
}

bool qnic_vhu_msg_check(const QnicVhuMsg *m, bool to_backend, GError **errp)
{
    uint32_t req = m->hdr.request;
    uint32_t need;
    const char *name = qnic_vhu_request_name(req);

    if (!to_backend) {
        if (!(m->hdr.flags & QNIC_VHU_FLAG_REPLY)) {
            qnic_error_setg(errp, "vhost-user: %s answered without the reply flag", name);
            return false;
        }
        switch (req) {
        case QNIC_VHU_GET_CONFIG:
            need = 12;
            break;
        default:
            need = 8;   /* u64 (features, counts, status, ack) or vring state */
            break;
        }
    } else {
        need = request_min_size(req);
    }
    if (m->hdr.size < need) {
        qnic_error_setg(errp, "vhost-user: %s %s has a %u-byte payload, needs %u",
                        name, to_backend ? "request" : "reply", m->hdr.size, need);
        return false;
    }
    if (to_backend && req == QNIC_VHU_SET_MEM_TABLE) {
        uint32_t nr = m->p.memory.nregions;
        if (nr > QNIC_VHU_MAX_REGIONS ||
            m->hdr.size < 8 + nr * sizeof(QnicVhuMemRegion)) {
            qnic_error_setg(errp, "vhost-user: SET_MEM_TABLE with %u regions in %u bytes "
                            "(at most %d regions)", nr, m->hdr.size, QNIC_VHU_MAX_REGIONS);
            return false;
        }
    }
    if (req == QNIC_VHU_GET_CONFIG || req == QNIC_VHU_SET_CONFIG) {
        bool has_data = to_backend ? req == QNIC_VHU_SET_CONFIG : true;
        uint32_t sz = m->p.config.size;
        if (sz > QNIC_VHU_MAX_CONFIG || (has_data && m->hdr.size < 12 + sz)) {
            qnic_error_setg(errp, "vhost-user: %s of %u config bytes in a %u-byte payload",
                            name, sz, m->hdr.size);
            return false;
        }
    }
    return true;
}
