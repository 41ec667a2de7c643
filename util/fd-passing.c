/*
 * SCM_RIGHTS control messages, built and parsed in one place (see
 * qnic/fd-passing.h). Receiving collects every descriptor before anything
 * else looks at the message, so no caller's error path can leak one.
 */
#include "qnic/fd-passing.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef union {
    struct cmsghdr align;
    unsigned char buf[CMSG_SPACE(sizeof(int) * QNIC_FD_PASSING_MAX)];
} FdControl;

ssize_t qnic_send_fds(int sock, const struct iovec *iov, int iovcnt, const int *fds, int nfds,
                      int flags)
{
    FdControl ctl;
    struct msghdr mh = { .msg_iov = (struct iovec *)iov, .msg_iovlen = iovcnt };
    ssize_t n;

    if (nfds < 0 || nfds > QNIC_FD_PASSING_MAX) {
        errno = EINVAL;
        return -1;
    }
    if (nfds) {
        struct cmsghdr *c;

        memset(&ctl, 0, sizeof(ctl));
        mh.msg_control = ctl.buf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
    }
    do {
        n = sendmsg(sock, &mh, flags);
    } while (n < 0 && errno == EINTR);
    return n;
}

ssize_t qnic_recv_fds(int sock, struct iovec *iov, int iovcnt, int *fds, int max_fds, int *nfds,
                      bool *truncated, int flags)
{
    FdControl ctl;
    struct msghdr mh = { .msg_iov = iov, .msg_iovlen = iovcnt, .msg_control = ctl.buf };
    ssize_t n;

    *nfds = 0;
    if (truncated) {
        *truncated = false;
    }
    if (max_fds < 1 || max_fds > QNIC_FD_PASSING_MAX) {
        errno = EINVAL;
        return -1;
    }
    memset(&ctl, 0, sizeof(ctl));
    mh.msg_controllen = CMSG_SPACE(sizeof(int) * max_fds);
    do {
        n = recvmsg(sock, &mh, flags | MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) {
        /* nothing arrived: the kernel may leave msg_controllen untouched */
        return n;
    }
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        size_t cnt;

        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
            continue;
        }
        cnt = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < cnt; i++) {
            int fd;

            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            if (*nfds < max_fds) {
                fds[(*nfds)++] = fd;
            } else {
                close(fd);
            }
        }
    }
    if (truncated) {
        *truncated = mh.msg_flags & MSG_CTRUNC;
    }
    return n;
}
