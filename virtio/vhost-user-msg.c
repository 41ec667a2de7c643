/*
 * vhost-user message codec: framing, descriptor passing and payload size
 * checks shared by qnic's frontend and backend. See qnic/vhost-user-msg.h.
 */
#include "qnic/vhost-user-msg.h"
#include "qnic/fd-passing.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
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

/*
 * Every wait below is bounded by one deadline for the whole message
 * (monotonic microseconds), never by a timeout per read: a peer that
 * drips a byte just before each timeout would otherwise hold the caller
 * for as long as it likes. The socket's own O_NONBLOCK and SO_*TIMEO are
 * not relied on either: every call carries MSG_DONTWAIT and waits, if at
 * all, in poll() for the time left.
 */
static bool wait_until(int sock, short events, gint64 deadline)
{
    struct pollfd p = { .fd = sock, .events = events };

    for (;;) {
        gint64 left = deadline - g_get_monotonic_time();
        int r;

        if (left <= 0) {
            return false;
        }
        r = poll(&p, 1, (int)MIN((left + 999) / 1000, (gint64)INT_MAX));
        if (r < 0 && errno == EINTR) {
            continue;
        }
        return r > 0;
    }
}

/* Read exactly len bytes (the rest of a message: no descriptors). */
static bool read_full(int sock, void *buf, size_t len, gint64 deadline, GError **errp)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = recv(sock, (uint8_t *)buf + done, len - done, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (wait_until(sock, POLLIN, deadline)) {
                continue;
            }
            qnic_error_setg(errp, "vhost-user: peer stopped in the middle of a message "
                            "(%zu of %zu bytes by the deadline)", done, len);
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

/* The first piece of a message, with its descriptors, into m. */
static ssize_t recv_first(int sock, QnicVhuMsg *m, gint64 deadline, int *ctrunc)
{
    struct iovec iov = { .iov_base = &m->hdr, .iov_len = sizeof(m->hdr) };
    bool truncated;
    int nfds;
    ssize_t n;

    for (;;) {
        n = qnic_recv_fds(sock, &iov, 1, m->fds, QNIC_VHU_MAX_FDS, &nfds, &truncated,
                          MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) &&
            wait_until(sock, POLLIN, deadline)) {
            continue;
        }
        break;
    }
    /* every descriptor is in m now, so every error path closes it */
    m->nfds = (unsigned)nfds;
    *ctrunc = n > 0 && truncated;
    return n;
}

int qnic_vhu_msg_recv_until(int sock, QnicVhuMsg *m, gint64 deadline, GError **errp)
{
    int ctrunc = 0;
    ssize_t n;
    int saved;

    qnic_vhu_msg_init(m, QNIC_VHU_NONE, 0);
    n = recv_first(sock, m, deadline, &ctrunc);
    saved = errno;
    if (n == 0) {
        qnic_vhu_msg_close_fds(m);
        return 0;
    }
    if (n < 0) {
        qnic_error_setg(errp, "vhost-user: recvmsg: %s",
                        saved == EAGAIN || saved == EWOULDBLOCK ? "no message by the deadline"
                                                                : g_strerror(saved));
        qnic_vhu_msg_close_fds(m);
        return -1;
    }
    if (ctrunc) {
        qnic_error_setg(errp, "vhost-user: more descriptors than %d in one message",
                        QNIC_VHU_MAX_FDS);
        goto fail;
    }
    if ((size_t)n < sizeof(m->hdr) &&
        !read_full(sock, (uint8_t *)&m->hdr + n, sizeof(m->hdr) - (size_t)n, deadline, errp)) {
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
    if (m->hdr.size && !read_full(sock, &m->p, m->hdr.size, deadline, errp)) {
        goto fail;
    }
    return 1;

fail:
    qnic_vhu_msg_close_fds(m);
    return -1;
}

gint64 qnic_vhu_deadline(unsigned ms)
{
    return g_get_monotonic_time() + (gint64)ms * 1000;
}

int qnic_vhu_msg_recv(int sock, QnicVhuMsg *m, GError **errp)
{
    return qnic_vhu_msg_recv_until(sock, m, qnic_vhu_deadline(QNIC_VHU_MSG_TIMEOUT_MS), errp);
}

/* sendmsg of what is left (with fds, if any), waiting for room until the
 * deadline. */
static bool send_rest(int sock, const struct iovec *iov, const int *fds, int nfds,
                      gint64 deadline, size_t *sent)
{
    for (;;) {
        ssize_t n = qnic_send_fds(sock, iov, 1, fds, nfds, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n >= 0) {
            *sent = (size_t)n;
            return true;
        }
        if ((errno != EAGAIN && errno != EWOULDBLOCK) || !wait_until(sock, POLLOUT, deadline)) {
            return false;
        }
    }
}

bool qnic_vhu_msg_send_until(int sock, const QnicVhuMsg *m, gint64 deadline, GError **errp)
{
    if (m->hdr.size > sizeof(m->p) || m->nfds > QNIC_VHU_MAX_FDS) {
        qnic_error_setg(errp, "vhost-user: refusing to send a malformed %s",
                        qnic_vhu_request_name(m->hdr.request));
        return false;
    }
    uint8_t all[sizeof(m->hdr) + sizeof(m->p)];
    size_t total = sizeof(m->hdr) + m->hdr.size, done = 0, n;
    struct iovec iov = { .iov_base = all, .iov_len = total };

    memcpy(all, &m->hdr, sizeof(m->hdr));
    memcpy(all + sizeof(m->hdr), &m->p, m->hdr.size);
    /* Descriptors ride on the first byte that goes; the rest (rare on a
     * Unix stream socket) follows without them. */
    while (done < total) {
        if (!send_rest(sock, &iov, m->fds, done ? 0 : (int)m->nfds, deadline, &n)) {
            qnic_error_setg(errp, "vhost-user: sending %s: %s",
                            qnic_vhu_request_name(m->hdr.request),
                            errno == EAGAIN || errno == EWOULDBLOCK
                            ? "the peer took nothing by the deadline" : g_strerror(errno));
            return false;
        }
        done += n;
        iov.iov_base = all + done;
        iov.iov_len = total - done;
    }
    return true;
}

bool qnic_vhu_msg_send(int sock, const QnicVhuMsg *m, GError **errp)
{
    return qnic_vhu_msg_send_until(sock, m, qnic_vhu_deadline(QNIC_VHU_MSG_TIMEOUT_MS), errp);
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

/* ---- descriptors a peer hands over for a vring: kick, call, err ----
 *
 * The spec says these are eventfds, and they are shared: the peer holds
 * the same open file description, so the O_NONBLOCK file status flag we
 * might set on it is the peer's to clear again at any time, and a blocking
 * eventfd read waits while the counter is 0 (the peer can drain it between
 * our poll() and our read) and a blocking write waits while the counter
 * would pass 2^64-2 (the peer can fill it). Re-opening the eventfd through
 * /proc/self/fd to get a description of our own fails (ENXIO: anon inodes
 * cannot be opened), so no flag of the description can make the I/O safe.
 * What can:
 *  - reads: preadv2(RWF_NOWAIT) asks for non-blocking I/O per call, from
 *    the call's own flags; eventfd honours it since Linux 5.12 (it has
 *    read_iter and FMODE_NOWAIT);
 *  - writes: eventfd has no write_iter, so pwritev2(RWF_NOWAIT) is
 *    EOPNOTSUPP. The write runs under a guard instead: a per-thread
 *    periodic timer whose signal has a handler without SA_RESTART, armed
 *    only around the write. A write the peer made block is interrupted at
 *    the next tick (EINTR) and reported as "would block"; the timer being
 *    periodic, a tick that lands just before the write starts cannot leave
 *    it unguarded. Outside the write the timer is off, so no other system
 *    call ever sees its signal. The same guard covers reads on kernels
 *    without RWF_NOWAIT for eventfds.
 * Other kinds (pipes, sockets, files) are refused up front: they have
 * other ways to block (a full pipe, a socket whose bytes the peer steals)
 * and nothing in the protocol needs them.
 */
#define GUARD_TICK_NS (20 * 1000 * 1000)

static __thread timer_t guard_timer;
static __thread int guard_state;            /* 0 not yet, 1 ready, -1 unavailable */
static __thread volatile sig_atomic_t guard_fired;
static pthread_once_t guard_once = PTHREAD_ONCE_INIT;

static int guard_signal(void)
{
    return SIGRTMIN + 3;
}

static void guard_handler(int sig)
{
    guard_fired = 1;
}

static void guard_install(void)
{
    struct sigaction sa = { .sa_handler = guard_handler };

    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;        /* no SA_RESTART: the guarded call must fail */
    sigaction(guard_signal(), &sa, NULL);
}

static bool guard_ready(void)
{
    struct sigevent sev = { .sigev_notify = SIGEV_THREAD_ID };
    sigset_t set;

    if (guard_state) {
        return guard_state > 0;
    }
    pthread_once(&guard_once, guard_install);
    sev.sigev_signo = guard_signal();
    sev._sigev_un._tid = (pid_t)syscall(SYS_gettid);
    sigemptyset(&set);
    sigaddset(&set, guard_signal());
    if (pthread_sigmask(SIG_UNBLOCK, &set, NULL) != 0 ||
        timer_create(CLOCK_MONOTONIC, &sev, &guard_timer) < 0) {
        guard_state = -1;
        return false;
    }
    guard_state = 1;
    return true;
}

static void guard_arm(bool on)
{
    struct itimerspec its = { 0 };

    if (on) {
        its.it_value.tv_nsec = GUARD_TICK_NS;
        its.it_interval.tv_nsec = GUARD_TICK_NS;
        guard_fired = 0;
    }
    timer_settime(guard_timer, 0, &its, NULL);
}

/* 8 bytes of I/O on an eventfd the peer shares: 1 done, 0 it would have
 * blocked (counter empty for a read, full for a write), -1 error (errno). */
static int guarded_io(int fd, uint64_t *v, bool write_it)
{
    bool guarded = guard_ready();
    ssize_t n;

    if (guarded) {
        guard_arm(true);
    } else {
        /* No timer to be had: the best left is to skip what is not ready
         * now (a racing peer can still block us; logged once). */
        struct pollfd p = { .fd = fd, .events = write_it ? POLLOUT : POLLIN };
        static bool warned;
        if (!warned) {
            warned = true;
            g_warning("vhost-user: no guard timer (%s); a hostile peer can block eventfd I/O",
                      g_strerror(errno));
        }
        if (poll(&p, 1, 0) != 1 || !(p.revents & p.events)) {
            errno = EAGAIN;
            return 0;
        }
    }
    do {
        n = write_it ? write(fd, v, sizeof(*v)) : read(fd, v, sizeof(*v));
    } while (n < 0 && errno == EINTR && !(guarded && guard_fired));
    if (guarded) {
        int saved = errno;
        guard_arm(false);
        errno = saved;
    }
    if (n == sizeof(*v)) {
        return 1;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        errno = EAGAIN;
        return 0;
    }
    if (n >= 0) {
        errno = EIO;        /* a short transfer: not an eventfd after all */
    }
    return -1;
}

int qnic_vhu_eventfd_read(int fd, uint64_t *v)
{
    struct iovec iov = { .iov_base = v, .iov_len = sizeof(*v) };
    ssize_t n;

    do {
        n = preadv2(fd, &iov, 1, -1, RWF_NOWAIT);
    } while (n < 0 && errno == EINTR);
    if (n == sizeof(*v)) {
        return 1;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        return 0;
    }
    if (n < 0 && (errno == EOPNOTSUPP || errno == ENOSYS || errno == EINVAL)) {
        return guarded_io(fd, v, false);        /* a kernel before 5.12 */
    }
    if (n >= 0) {
        errno = EIO;
    }
    return -1;
}

int qnic_vhu_eventfd_signal(int fd)
{
    uint64_t one = 1;

    return guarded_io(fd, &one, true);
}

bool qnic_vhu_fd_is_eventfd(int fd, GError **errp)
{
    char path[64], what[128];
    ssize_t n;

    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    n = readlink(path, what, sizeof(what) - 1);
    if (n < 0) {
        qnic_error_setg(errp, "cannot tell what the descriptor is (%s: %s)", path,
                        g_strerror(errno));
        return false;
    }
    what[n] = '\0';
    if (strcmp(what, "anon_inode:[eventfd]") != 0) {
        qnic_error_setg(errp, "the descriptor is %s, not an eventfd",
                        g_str_has_prefix(what, "pipe:") ? "a pipe"
                        : g_str_has_prefix(what, "socket:") ? "a socket"
                        : what[0] == '/' ? "a file" : what);
        return false;
    }
    return true;
}
