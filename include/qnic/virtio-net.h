/*
 * virtio-net as a library object for embedders that carry the virtqueues
 * themselves instead of a PCI or MMIO transport: qnic's vhost-user device
 * side (a qnic netdev served to another process as a vhost-user-net device)
 * drives the very device model the guest-facing transports use, so its
 * mergeable RX, offloads, multiqueue and backpressure are the same code.
 */
#ifndef QNIC_VIRTIO_NET_H
#define QNIC_VIRTIO_NET_H

#include "qnic/virtio.h"

/* Create virtio-net on machine m (its DMA goes through m's memory address
 * space). opts_str holds virtio-net-device properties ("netdev=n0,mq=on",
 * may be ""), checked against that schema. The caller installs vdev->tops
 * and vdev->transport to receive interrupts, and drives features, status
 * and queues through the qnic_virtio_* calls. Freed by
 * qnic_virtio_net_free_bare() or with the machine. */
QnicVirtioDevice *qnic_virtio_net_new_bare(QnicMachine *m, const char *opts_str, GError **errp);
void qnic_virtio_net_free_bare(QnicVirtioDevice *vdev);
/* Queue pairs in use (clamped to 1..max). A transport without a control
 * queue (vhost-user: the frontend keeps it) sets them from the rings the
 * frontend enabled; the layout stays at the maximum, with the (unused)
 * control queue after the last pair. */
void qnic_virtio_net_bare_set_pairs(QnicVirtioDevice *vdev, unsigned pairs);

/* After a migration's switch-over (the VMM calls it on the destination
 * once the VM runs): a driver of virtio-net-pci* or virtio-net-device dev
 * that accepted GUEST_ANNOUNCE is asked to announce itself, through the
 * status field's ANNOUNCE bit and a configuration interrupt, as QEMU does;
 * true then. false: it did not accept it (or dev is another model), and
 * the VMM's self-announce (qnic_net_announce_self) must speak for it. */
bool qnic_virtio_net_guest_announce(QnicDevice *dev);

#endif
