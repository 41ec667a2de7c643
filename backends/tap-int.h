/*
 * Private interface between the tap-family backends: tap-linux.c holds the
 * Linux tun/tap ioctls (open a queue, probe vnet header and offload support),
 * tap.c holds the net client (the data path, shared by `-netdev tap` and
 * `-netdev bridge`), and bridge.c runs a bridge helper that hands back a tap
 * fd. Nothing here is for device models or other backends.
 */
#ifndef QNIC_BACKENDS_TAP_INT_H
#define QNIC_BACKENDS_TAP_INT_H

#include "qnic/net.h"

/* Newer UAPI headers have these; the kernel ABI values are fixed. */
#ifndef TUN_F_USO4
#define TUN_F_USO4 0x20
#endif
#ifndef TUN_F_USO6
#define TUN_F_USO6 0x40
#endif

#define QNIC_TAP_DEFAULT_SCRIPT "/etc/qnic-ifup"
#define QNIC_TAP_DEFAULT_DOWNSCRIPT "/etc/qnic-ifdown"
#define QNIC_BRIDGE_DEFAULT_BR "br0"

/* ---- tap-linux.c ---- */

/* Does this kernel's tun driver offer IFF_VNET_HDR (TUNGETFEATURES)? */
bool qnic_tap_kernel_has_vnet_hdr(void);
/* Open one queue of tap `ifname` (a template such as "tap%d" or "" lets the
 * kernel choose). vnet_hdr: request IFF_VNET_HDR. multi_queue: request
 * IFF_MULTI_QUEUE. On success returns the fd (non-blocking, close-on-exec)
 * and stores the kernel's name in ifname_out (IFNAMSIZ bytes). */
int qnic_tap_open(const char *ifname, bool vnet_hdr, bool multi_queue,
                  char *ifname_out, size_t ifname_len, GError **errp);
/* Is fd a tap (TUNGETIFF works and says IFF_TAP)? Fills its name and
 * whether it carries vnet headers. */
bool qnic_tap_fd_info(int fd, char *ifname_out, size_t ifname_len,
                      bool *vnet_hdr, GError **errp);
bool qnic_tap_set_sndbuf(int fd, uint64_t sndbuf, GError **errp);
bool qnic_tap_probe_vnet_hdr_len(int fd, int len);
void qnic_tap_fd_set_vnet_hdr_len(int fd, int len);
/* Probe TUNSETOFFLOAD with the given TUN_F_* flags (restores nothing: the
 * caller sets the real offloads afterwards; tap starts with none). */
bool qnic_tap_probe_offload(int fd, unsigned flags);
int qnic_tap_fd_set_offload(int fd, unsigned flags);

/* ---- tap-uring.c: batched writes ---- */

/* Frames held for one submit, and the largest frame (with its vnet
 * header) a slot takes; a larger one is written on its own. */
#define QNIC_TAP_BATCH_SLOTS 64
#define QNIC_TAP_BATCH_SLOT_SIZE 2048

typedef struct QnicTapBatch QnicTapBatch;

/* A batch writing to fd, or NULL when io_uring cannot be used here (no
 * liburing at build time, or the kernel refuses it): write directly. */
QnicTapBatch *qnic_tap_batch_new(int fd);
void qnic_tap_batch_free(QnicTapBatch *b);
/* Copy hdr (hdr_len bytes) and the frame (size bytes of iov) into a free
 * slot. False when no slot is free or the frame does not fit one; the
 * caller then submits, or writes the frame itself after submitting. */
bool qnic_tap_batch_add(QnicTapBatch *b, const void *hdr, size_t hdr_len,
                        const struct iovec *iov, int iovcnt, size_t size);
/* Frames added and not yet written. */
unsigned qnic_tap_batch_waiting(const QnicTapBatch *b);
bool qnic_tap_batch_full(const QnicTapBatch *b);
/* Write every waiting frame, in order, with one system call. Returns 0
 * when all went, or the number still waiting when the tap refused one
 * with EAGAIN (submit again once the fd is writable; nothing is dropped).
 * A frame the tap refuses otherwise is dropped, as a failed writev. */
int qnic_tap_batch_submit(QnicTapBatch *b);

/* ---- tap.c ---- */

typedef struct QnicTapQueueSetup {
    int fd;
    bool vnet_hdr;          /* fd was opened with IFF_VNET_HDR */
} QnicTapQueueSetup;

/* Create nd->ncs from already-open tap fds (one per queue; the netdev owns
 * them from here on). model names the clients ("tap" or "bridge"). The
 * downscript (may be NULL) runs with ifname at cleanup. */
bool qnic_tap_netdev_setup(QnicNetdev *nd, const char *model,
                           const QnicTapQueueSetup *queues, int nqueues,
                           const char *ifname, const char *downscript,
                           GError **errp);
void qnic_tap_netdev_cleanup(QnicNetdev *nd);

/* ---- bridge.c ---- */

/* Default helper: $QNIC_BRIDGE_HELPER, else the one built with this tree,
 * else the installed one. g_free the result. */
char *qnic_bridge_default_helper(void);
/* Run a bridge helper (qnic's, or QEMU's qemu-bridge-helper protocol:
 * `HELPER --use-vnet --fd=N --br=BR`, the tap fd comes back over a unix
 * socketpair with SCM_RIGHTS). Returns the tap fd or -1 with errp set. */
int qnic_bridge_run_helper(const char *helper, const char *br, GError **errp);

#endif
