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
