/*
 * Linux tun/tap plumbing for the tap and bridge backends: opening a tap
 * queue through /dev/net/tun (with IFF_VNET_HDR and IFF_MULTI_QUEUE when
 * asked), inspecting an fd handed to us (fd=, fds=, bridge helper), and the
 * vnet-header / offload ioctls the NIC negotiates through the net client.
 * Everything that is Linux-specific about tap lives here so tap.c reads as
 * the data path only.
 */
#include "tap-int.h"
#include "qnic/log.h"

#include <fcntl.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <net/if.h>
#include <linux/if_tun.h>
#include <linux/virtio_net.h>

#define TUN_DEV_PATH "/dev/net/tun"

bool qnic_tap_kernel_has_vnet_hdr(void)
{
    unsigned int features = 0;
    int fd = open(TUN_DEV_PATH, O_RDWR | O_CLOEXEC);
    bool ok;

    if (fd < 0) {
        return false;
    }
    ok = ioctl(fd, TUNGETFEATURES, &features) == 0 && (features & IFF_VNET_HDR);
    close(fd);
    return ok;
}

int qnic_tap_open(const char *ifname, bool vnet_hdr, bool multi_queue,
                  char *ifname_out, size_t ifname_len, GError **errp)
{
    struct ifreq ifr;
    unsigned int features = 0;
    int fd;

    if (ifname && strlen(ifname) >= IFNAMSIZ) {
        g_set_error(errp, QNIC_ERROR, QNIC_ERROR_INVALID,
                    "tap interface name '%s' is longer than %d characters",
                    ifname, IFNAMSIZ - 1);
        return -1;
    }
    fd = open(TUN_DEV_PATH, O_RDWR | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        qnic_error_setg_errno(errp, errno, "could not open %s", TUN_DEV_PATH);
        return -1;
    }
    if (ioctl(fd, TUNGETFEATURES, &features) < 0) {
        /* Very old kernels: assume only the basics. */
        features = IFF_TAP | IFF_NO_PI;
    }

    memset(&ifr, 0, sizeof(ifr));
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
    if (vnet_hdr) {
        if (!(features & IFF_VNET_HDR)) {
            g_set_error(errp, QNIC_ERROR, QNIC_ERROR_UNSUPPORTED,
                        "vnet_hdr=1 requested, but the kernel's tap driver lacks IFF_VNET_HDR");
            close(fd);
            return -1;
        }
        ifr.ifr_flags |= IFF_VNET_HDR;
    }
    if (multi_queue) {
        if (!(features & IFF_MULTI_QUEUE)) {
            g_set_error(errp, QNIC_ERROR, QNIC_ERROR_UNSUPPORTED,
                        "multiqueue tap requested, but the kernel lacks IFF_MULTI_QUEUE");
            close(fd);
            return -1;
        }
        ifr.ifr_flags |= IFF_MULTI_QUEUE;
    }
    if (ifname && ifname[0]) {
        g_strlcpy(ifr.ifr_name, ifname, IFNAMSIZ);
    } else {
        g_strlcpy(ifr.ifr_name, "tap%d", IFNAMSIZ);
    }
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        int err = errno;
        qnic_error_setg_errno(errp, err, "could not configure %s (%s)",
                              TUN_DEV_PATH, ifr.ifr_name);
        close(fd);
        return -1;
    }
    if (ifname_out) {
        g_strlcpy(ifname_out, ifr.ifr_name, ifname_len);
    }
    return fd;
}

bool qnic_tap_fd_info(int fd, char *ifname_out, size_t ifname_len,
                      bool *vnet_hdr, GError **errp)
{
    struct ifreq ifr;

    if (fcntl(fd, F_GETFD) < 0) {
        g_set_error(errp, QNIC_ERROR, QNIC_ERROR_INVALID,
                    "file descriptor %d is not open", fd);
        return false;
    }
    memset(&ifr, 0, sizeof(ifr));
    if (ioctl(fd, TUNGETIFF, &ifr) < 0) {
        g_set_error(errp, QNIC_ERROR, QNIC_ERROR_INVALID,
                    "file descriptor %d is not a tap device: %s", fd, g_strerror(errno));
        return false;
    }
    if ((ifr.ifr_flags & TUN_TYPE_MASK) != IFF_TAP) {
        g_set_error(errp, QNIC_ERROR, QNIC_ERROR_INVALID,
                    "file descriptor %d is a tun (layer 3) device, not a tap", fd);
        return false;
    }
    if (!(ifr.ifr_flags & IFF_NO_PI)) {
        /* A packet-info prefix would corrupt every frame; refuse it. */
        g_set_error(errp, QNIC_ERROR, QNIC_ERROR_INVALID,
                    "tap %s (fd %d) was opened without IFF_NO_PI", ifr.ifr_name, fd);
        return false;
    }
    if (ifname_out) {
        g_strlcpy(ifname_out, ifr.ifr_name, ifname_len);
    }
    if (vnet_hdr) {
        *vnet_hdr = (ifr.ifr_flags & IFF_VNET_HDR) != 0;
    }
    return true;
}

bool qnic_tap_set_sndbuf(int fd, uint64_t sndbuf, GError **errp)
{
    int v = sndbuf > INT_MAX || sndbuf == 0 ? INT_MAX : (int)sndbuf;

    if (ioctl(fd, TUNSETSNDBUF, &v) < 0) {
        qnic_error_setg_errno(errp, errno, "TUNSETSNDBUF ioctl failed");
        return false;
    }
    return true;
}

bool qnic_tap_probe_vnet_hdr_len(int fd, int len)
{
    int orig;

    /* Set the length and put the old one back: only a kernel that knows
     * TUNSETVNETHDRSZ accepts it. */
    if (ioctl(fd, TUNGETVNETHDRSZ, &orig) < 0) {
        return false;
    }
    if (ioctl(fd, TUNSETVNETHDRSZ, &len) < 0) {
        return false;
    }
    if (ioctl(fd, TUNSETVNETHDRSZ, &orig) < 0) {
        qnic_warn("tap: could not restore the vnet header length to %d", orig);
    }
    return true;
}

void qnic_tap_fd_set_vnet_hdr_len(int fd, int len)
{
    if (ioctl(fd, TUNSETVNETHDRSZ, &len) < 0) {
        qnic_warn("tap: TUNSETVNETHDRSZ %d failed: %s", len, g_strerror(errno));
    }
}

bool qnic_tap_probe_offload(int fd, unsigned flags)
{
    unsigned int f = flags;
    bool ok = ioctl(fd, TUNSETOFFLOAD, f) == 0;

    f = 0;
    (void)ioctl(fd, TUNSETOFFLOAD, f);
    return ok;
}

int qnic_tap_fd_set_offload(int fd, unsigned flags)
{
    unsigned int f = flags;

    if (ioctl(fd, TUNSETOFFLOAD, f) < 0) {
        return -errno;
    }
    return 0;
}
