/*
 * The vhost-user DEVICE side: one of qnic's netdevs served to another
 * process (QEMU, DPDK's virtio_user, another qnic) as a vhost-user-net
 * device. The frontend shares its guest memory (SET_MEM_TABLE fds) and
 * hands over the rings of each queue pair (vring 2k = RX of pair k, 2k+1 =
 * TX); qnic runs them with the very virtio-net model and virtqueue code the
 * PCI/MMIO transports use (qnic_virtio_net_new_bare), so mergeable RX,
 * offloads, backpressure and every netdev behave the same. The control queue
 * stays in the frontend.
 *
 * Two layers: qnic_vhu_dev_handle() is the pure request handler (a message
 * in, maybe a reply out; unit tests and the fuzzer drive it directly), and
 * QnicVhuServer puts it on a Unix socket on the qnic main loop (listening
 * or connecting, one frontend at a time, reset on disconnect). Every field
 * from the frontend is validated before use; a bad request is refused with
 * an error that names it, the ring state stays as it was and no descriptor
 * is leaked.
 */
#ifndef QNIC_VHOST_USER_DEVICE_H
#define QNIC_VHOST_USER_DEVICE_H

#include "qnic/vhost-user-msg.h"
#include "qnic/backends.h"

typedef struct QnicVhuDev QnicVhuDev;
typedef struct QnicVhuServer QnicVhuServer;

/* device_opts: virtio-net-device properties ("netdev=n0,mac=..."); the
 * netdev must exist in be, which outlives the device. Its queue count sets
 * the number of queue pairs. */
QnicVhuDev *qnic_vhu_dev_new(QnicBackends *be, const char *device_opts, GError **errp);
void qnic_vhu_dev_free(QnicVhuDev *d);

/* Handle one request from the frontend. Takes the descriptors it keeps and
 * closes the others (msg->nfds is 0 afterwards). *send_reply tells whether
 * `reply` must go back (a GET_* answer or a REPLY_ACK ack, nonzero u64 on
 * failure). Returns false with errp when the request was refused; if it was
 * a request whose own reply the frontend waits for and *send_reply is
 * false, the connection must be dropped. */
bool qnic_vhu_dev_handle(QnicVhuDev *d, QnicVhuMsg *msg, QnicVhuMsg *reply, bool *send_reply,
                         GError **errp);
/* The frontend went away: stop every ring, close every descriptor, unmap
 * its memory, forget all negotiation. Ready for the next connection. */
void qnic_vhu_dev_reset(QnicVhuDev *d);
/* What a kick on vring i's eventfd does (tests and fuzzers call it). */
void qnic_vhu_dev_kick(QnicVhuDev *d, unsigned vring);

/* ---- an in-process device (the vDPA simulator, virtio/vdpa-sim.c) ---- */

/* Memory of this process seen at `addr`, which is both its guest-physical
 * and its frontend address, so that ring addresses given as addr translate
 * unchanged. */
typedef struct QnicVhuHostRegion {
    uint64_t addr;
    uint64_t size;
    void *host;                 /* the caller's; it stays mapped while in use */
} QnicVhuHostRegion;

/* Replace the memory table with r[0..n-1] (n = 0: no memory), checked as
 * SET_MEM_TABLE's regions are; running rings stop across the swap and
 * restart where they were if their rings are still mapped. */
bool qnic_vhu_dev_set_host_memory(QnicVhuDev *d, const QnicVhuHostRegion *r, unsigned n,
                                  GError **errp);
/* Run the control queue too, as vring 2 * max_pairs, and offer the
 * control features of the device (CTRL_VQ, CTRL_RX, CTRL_MAC_ADDR, ...):
 * its commands then reach this virtio-net model, whose receive filter
 * query-rx-filter reports. Resets the device; call before the first
 * request. */
void qnic_vhu_dev_enable_ctrl_vq(QnicVhuDev *d);

/* Introspection for tests. */
unsigned qnic_vhu_dev_num_vrings(const QnicVhuDev *d);
const char *qnic_vhu_dev_netdev(const QnicVhuDev *d);   /* the netdev= it serves */
uint64_t qnic_vhu_dev_features(const QnicVhuDev *d);            /* offered */
uint64_t qnic_vhu_dev_protocol_features(const QnicVhuDev *d);   /* offered */
unsigned qnic_vhu_dev_num_regions(const QnicVhuDev *d);
unsigned qnic_vhu_dev_active_pairs(const QnicVhuDev *d);

typedef struct QnicVhuVringInfo {
    bool started;           /* rings mapped and running */
    bool enabled;           /* SET_VRING_ENABLE state */
    bool broken;            /* the frontend broke a ring rule */
    uint32_t num;
    uint16_t last_avail_idx;
    bool avail_wrap;        /* packed only */
    uint16_t used_idx;
    int kick_fd, call_fd, err_fd;
    uint64_t notifies;      /* call eventfd writes */
} QnicVhuVringInfo;
bool qnic_vhu_dev_vring_info(const QnicVhuDev *d, unsigned vring, QnicVhuVringInfo *out);

/* ---- the socket around the handler ---- */

/* Listen on path (client=false: create it, removing a stale socket; it is
 * unlinked again on free) or connect to it (client=true: retry for up to
 * connect_timeout_ms while the peer is not listening yet). One frontend at
 * a time; on EOF or a protocol error the device is reset and the server
 * waits for (or, as a client, reconnects to) the next. on_disconnect runs
 * after each connection ended. */
typedef struct QnicVhuServerConfig {
    const char *path;
    bool client;
    unsigned connect_timeout_ms;    /* client mode; 0 = 30000 */
    void (*on_disconnect)(void *opaque);
    void *opaque;
} QnicVhuServerConfig;

QnicVhuServer *qnic_vhu_server_new(QnicVhuDev *d, const QnicVhuServerConfig *cfg, GError **errp);
void qnic_vhu_server_free(QnicVhuServer *s);
bool qnic_vhu_server_connected(const QnicVhuServer *s);
/* Client mode gave up connecting (the peer never listened). */
bool qnic_vhu_server_failed(const QnicVhuServer *s);

#endif
