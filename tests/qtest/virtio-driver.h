/*
 * A small virtio driver for qtest: brings a virtio device up through the
 * legacy PCI interface, the modern PCI capabilities, or virtio-mmio v1/v2,
 * with split or packed rings, and gives helpers to post buffers (direct or
 * indirect chains), kick, and reap used buffers. It follows the driver
 * steps of virtio 1.2 section 3.1 and works against qnic-vmm and QEMU 7.2.
 */
#ifndef QNIC_TESTS_VIRTIO_DRIVER_H
#define QNIC_TESTS_VIRTIO_DRIVER_H

#include "libqtest.h"
#include "vring-driver.h"
#include <stdint.h>
#include <stdbool.h>

typedef enum {
    VD_PCI_LEGACY,
    VD_PCI_MODERN,
    VD_MMIO,          /* version read from the device */
} VdTransport;

#define VD_MAX_QUEUES 16

/* One segment of a buffer (vring-driver.h): { addr, len, device-writable }. */
typedef VringBuf VdBuf;

/* A queue: the driver-side ring (tests/lib/vring-driver.h) over this
 * device's guest RAM through qtest memread/memwrite. */
typedef struct VdQueue {
    unsigned index;
    VringDriver vr;
} VdQueue;

typedef struct VDev {
    QTestState *qts;
    VdTransport t;
    int devfn;
    uint64_t bars[6];
    uint64_t common, isr, device, notify, mmio;
    uint16_t io;
    uint32_t notify_mult;
    unsigned mmio_version;
    uint64_t features;          /* negotiated */
    VringMem mem;               /* guest RAM through this qtest connection */
    unsigned nq;
    VdQueue q[VD_MAX_QUEUES];
} VDev;

/* Find the PCI function with vendor 0x1af4 and the device id (-1: none). */
int vd_pci_find(QTestState *qts, uint16_t device_id);
/* Enable the PCI function and locate its interface (legacy or modern). */
void vd_pci_init(VDev *d, QTestState *qts, int devfn, VdTransport t);
void vd_mmio_init(VDev *d, QTestState *qts, uint64_t base);
/* Go on driving the same device and rings through another connection (the
 * destination of a migration): every queue's ring memory moves with it. */
void vd_set_qts(VDev *d, QTestState *qts);

void vd_set_status(VDev *d, uint8_t s);
uint8_t vd_get_status(VDev *d);
uint64_t vd_device_features(VDev *d);
/* Reset, ACK|DRIVER, accept `want & offered`, FEATURES_OK (modern).
 * Returns false if the device refused FEATURES_OK. */
bool vd_negotiate(VDev *d, uint64_t want);
/* Set up queues 0..n-1 (size = device maximum or `size` if nonzero). */
void vd_setup_queues(VDev *d, unsigned n, unsigned size);
void vd_driver_ok(VDev *d);

uint8_t vd_config_readb(VDev *d, unsigned off);
uint16_t vd_config_readw(VDev *d, unsigned off);
uint32_t vd_config_readl(VDev *d, unsigned off);
uint8_t vd_read_isr(VDev *d);
uint16_t vd_num_queues(VDev *d);

/* Post one buffer made of n segments (as a chain, or as one indirect
 * descriptor). Returns the id/head. Does not kick. */
uint16_t vd_add(VDev *d, unsigned q, const VdBuf *bufs, unsigned n, bool indirect);
void vd_kick(VDev *d, unsigned q);
/* Reap one used buffer: true with id/len, false after timeout_ms. */
bool vd_get_used(VDev *d, unsigned q, uint16_t *id, uint32_t *len, unsigned timeout_ms);
/* Raw ring access (malformed-driver tests) is the vring_* API on
 * d->q[q].vr; this is its memory accessor, for tables outside the rings. */
const VringMem *vd_mem(VDev *d);

#endif
