/*
 * vhost-net, the kernel's data path (virtio/vhost-kernel.c): the vhost ops
 * table of qnic/vhost.h carried as ioctls on /dev/vhost-net, one fd per
 * queue pair, the kernel moving frames between the rings and a tap's
 * queues. Its owner is the tap netdev (`-netdev tap,vhost=on`); every
 * system call goes through a table tests replace with a fake kernel.
 */
#ifndef QNIC_VHOST_KERNEL_H
#define QNIC_VHOST_KERNEL_H

#include "qnic/vhost.h"

/* Every system call vhost-kernel makes goes through this table: the real
 * calls by default, a fake kernel in tests. Each returns what the system
 * call does (-1 with errno set on failure). */
typedef struct QnicVhostKernelOps {
    int (*open)(const char *path, int flags);
    int (*ioctl)(int fd, unsigned long request, void *arg);
    int (*close)(int fd);
} QnicVhostKernelOps;

#define QNIC_VHOST_NET_PATH "/dev/vhost-net"

/* NULL restores the real system calls. */
void qnic_vhost_kernel_set_ops(const QnicVhostKernelOps *ops);

typedef struct QnicVhostKernel QnicVhostKernel;

/* The tap's queue pair `pair` is handed to the kernel (attached) or given
 * back to qnic's own reader. */
typedef void QnicVhostKernelAttachFunc(void *opaque, unsigned pair, bool attached);

/* One vhost-net fd per queue pair: vhost_fds[i] when given (>= 0, taken
 * over), else a new open of /dev/vhost-net; then VHOST_SET_OWNER and
 * VHOST_GET_FEATURES. tap_fds[i] is the tap queue the kernel moves the
 * pair's frames through (not taken over). */
QnicVhostKernel *qnic_vhost_kernel_new(unsigned pairs, const int *tap_fds, const int *vhost_fds,
                                       QnicVhostKernelAttachFunc *attach, void *opaque,
                                       GError **errp);
/* Takes the rings back if needed and closes the vhost-net fds. */
void qnic_vhost_kernel_free(QnicVhostKernel *k);
QnicVhostDev *qnic_vhost_kernel_dev(QnicVhostKernel *k);
/* What VHOST_GET_FEATURES answered. */
uint64_t qnic_vhost_kernel_features(QnicVhostKernel *k);

#endif
