/*
 * File descriptors passed over a Unix socket (SCM_RIGHTS ancillary data):
 * the one place that builds and parses the control message, for vhost-user
 * (both ends), the bridge helper and the tests that play a peer. Plain libc,
 * no GLib, so the small setuid-capable bridge helper can link it alone.
 */
#ifndef QNIC_FD_PASSING_H
#define QNIC_FD_PASSING_H

#include <stdbool.h>
#include <sys/types.h>
#include <sys/uio.h>

/* Most descriptors one message carries either way (vhost-user needs 8). */
#define QNIC_FD_PASSING_MAX 16

/* sendmsg(sock, iov, flags) with fds[0..nfds) riding on the first byte (no
 * control message when nfds is 0). Retried on EINTR. Returns what sendmsg
 * does: bytes sent, or -1 with errno (EINVAL when nfds is out of range).
 * The descriptors stay the caller's. */
ssize_t qnic_send_fds(int sock, const struct iovec *iov, int iovcnt, const int *fds, int nfds,
                      int flags);

/* recvmsg(sock, iov, flags | MSG_CMSG_CLOEXEC) with room for max_fds
 * descriptors (1..QNIC_FD_PASSING_MAX). The first max_fds that arrive go to
 * fds[] (their count to *nfds, the caller owns them); any other is closed at
 * once. *truncated (may be NULL) tells that the kernel had more than the
 * room (MSG_CTRUNC: those were closed by the kernel). Retried on EINTR.
 * Returns what recvmsg does; *nfds is 0 unless it returned > 0. */
ssize_t qnic_recv_fds(int sock, struct iovec *iov, int iovcnt, int *fds, int max_fds, int *nfds,
                      bool *truncated, int flags);

#endif
