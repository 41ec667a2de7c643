/*
 * Private interface between the files of net/ and the backends in
 * backends/ that belong to the net core: the packet queue that holds frames
 * a receiver could not take yet, and small helpers the socket-like backends
 * share. Nothing here is for device models.
 */
#ifndef QNIC_NET_INTERNAL_H
#define QNIC_NET_INTERNAL_H

#include "qnic/net.h"
#include "qnic/backends.h"
#include <sys/socket.h>

/* One machine's backends (qnic/backends.h); each list is the one file's
 * that names it in its comment. */
struct QnicBackends {
    GList *clients;             /* QnicNetClient *, creation order (net.c) */
    GList *netdevs;             /* QnicNetdev *, creation order (netdev.c) */
    GList *hubs;                /* hub.c's hubs */
    GList *filters;             /* QnicNetFilter *, creation order (filter.c) */
    QnicChardevSet *chardevs;
    /* QEMU's rule: while the VM is stopped no frame moves; senders queue
     * (a backend with a completion callback stops reading until it runs). */
    bool vm_running;
    uint64_t oversize_drops;    /* net.c */
    /* NICs holding each 52:54:00:12:34:XX address, by XX (nic.c) */
    unsigned mac_users[256];
    QnicNetRxFilterHook *rx_filter_hook;
    void *rx_filter_opaque;
    QnicNetStreamHook *stream_hook;
    void *stream_opaque;
    unsigned sock_peer_drops;   /* backends/socket.c */
};

/* Deliver one frame to the queue's owner; same return convention as
 * QnicNetClientOps.receive_iov (0 = still busy, keep it queued). */
typedef ssize_t QnicNetQueueDeliverFunc(QnicNetClient *sender,
                                        const struct iovec *iov, int iovcnt,
                                        void *opaque);

/* Frames queued without a completion callback are dropped (and counted)
 * beyond this many, or beyond this many bytes, so a stalled receiver cannot
 * eat the host's memory: frames are at most QNIC_NET_MAX_FRAME long, so a
 * frame count alone would still let 10000 of them hold 680 MiB. Frames with
 * a callback need no bound here: their sender waits for the callback before
 * it sends again, so each sender has at most one queued. */
#define QNIC_NET_QUEUE_DEFAULT_MAX 10000
#define QNIC_NET_QUEUE_DEFAULT_MAX_BYTES (4u << 20)

QnicNetQueue *qnic_net_queue_new(QnicNetQueueDeliverFunc *deliver, void *opaque);
void qnic_net_queue_free(QnicNetQueue *q);
/* Append a copy of the frame. Returns false when it was dropped (full). */
bool qnic_net_queue_append_iov(QnicNetQueue *q, QnicNetClient *sender,
                               const struct iovec *iov, int iovcnt,
                               QnicNetSentFunc *sent_cb);
/* Send through the queue: deliver now if possible and nothing is ahead,
 * else append. Returns bytes delivered or 0 if queued. */
ssize_t qnic_net_queue_send_iov(QnicNetQueue *q, QnicNetClient *sender,
                                const struct iovec *iov, int iovcnt,
                                QnicNetSentFunc *sent_cb, bool can_deliver);
/* Deliver queued frames in order until the owner says "busy" (returns
 * false then) or the queue is empty (true). */
bool qnic_net_queue_flush(QnicNetQueue *q);
/* Drop frames from one sender (from == NULL: every frame). With notify the
 * senders' callbacks run with 0 so they resume reading. */
void qnic_net_queue_purge(QnicNetQueue *q, QnicNetClient *from, bool notify);
unsigned qnic_net_queue_len(const QnicNetQueue *q);
uint64_t qnic_net_queue_dropped(const QnicNetQueue *q);
void qnic_net_queue_set_max(QnicNetQueue *q, unsigned max);
/* Bytes held by queued frames (callback-less and not). */
size_t qnic_net_queue_bytes(const QnicNetQueue *q);

/* hub.c: ports on hub hubid (tests). */
int qnic_net_hub_port_count(QnicBackends *be, int hubid);

/* Lookup of a client by netdev id (filters, set_link). */
QnicNetClient *qnic_net_client_find(QnicBackends *be, const char *name);

/* backends/: parse "host:port" (host may be empty: any / loopback as the
 * caller decides, IPv6 in brackets) into a sockaddr_in / sockaddr_in6. */

bool qnic_net_parse_inet(const char *str, struct sockaddr_storage *ss,
                         socklen_t *len, bool empty_any, GError **errp);
char *qnic_net_sockaddr_str(const struct sockaddr_storage *ss);

/* ---- backends/socket.c: the engine shared by socket, stream and dgram ----
 * One net client over one fd at a time: a stream (4-byte big-endian length
 * prefix per frame, QEMU's wire format), a datagram socket (one frame per
 * datagram), a listening socket that accepts one peer at a time, or a
 * client that connects (and optionally reconnects). */

/* Largest frame accepted from a peer: what the net core carries. */
#define QNIC_SOCK_MAX_FRAME QNIC_NET_MAX_FRAME

typedef struct QnicSockBackend QnicSockBackend;

QnicSockBackend *qnic_sock_new(QnicNetdev *nd, QnicNetClientKind kind, const char *model);
void qnic_sock_free(QnicSockBackend *sb);
/* A connected stream socket: frames flow now. */
void qnic_sock_attach_stream(QnicSockBackend *sb, int fd);
/* A listening socket: accept one peer at a time; after it goes, accept again. */
void qnic_sock_attach_listen(QnicSockBackend *sb, int fd);
/* A datagram socket; frames go to dest (NULL: send() on a connected fd). */
void qnic_sock_attach_dgram(QnicSockBackend *sb, int fd,
                            const struct sockaddr *dest, socklen_t dest_len);
/* Connect to addr now (error if it fails and reconnect_s == 0); with
 * reconnect_s > 0, a failed or lost connection is retried that often. */
bool qnic_sock_connect(QnicSockBackend *sb, const struct sockaddr *addr, socklen_t len,
                       int reconnect_s, GError **errp);
bool qnic_sock_is_connected(QnicSockBackend *sb);
/* Tell fn when a stream peer comes (fd: its socket) or goes (fd -1). */
typedef void QnicSockConnFunc(void *opaque, int fd);
void qnic_sock_set_conn_notify(QnicSockBackend *sb, QnicSockConnFunc *fn, void *opaque);
void qnic_sock_set_info(QnicSockBackend *sb, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

/* Connections dropped because the peer misbehaved or went away, in
 * be's socket-like netdevs (tests). */
unsigned qnic_sock_peer_drops(QnicBackends *be);

/* A listening TCP/unix socket and a bound UDP socket from an address. */
int qnic_sock_listen(const struct sockaddr *addr, socklen_t len, GError **errp);
/* A UDP socket joined to an IPv4 multicast group (mcast= / dgram remote). */
int qnic_sock_mcast_open(const struct sockaddr_storage *group, socklen_t glen,
                         const char *localaddr, GError **errp);
/* A UDP/unix datagram socket bound to addr. */
int qnic_sock_dgram_open(const struct sockaddr_storage *addr, socklen_t len, GError **errp);
/* "unix path or abstract name" -> sockaddr_un */
bool qnic_net_parse_unix(const char *path, bool abstract, struct sockaddr_storage *ss,
                         socklen_t *len, GError **errp);

#endif
