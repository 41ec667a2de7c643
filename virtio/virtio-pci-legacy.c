/*
 * The legacy (virtio 0.9.5) register file of the virtio PCI transport, in
 * I/O BAR0: a fixed block of registers (features, queue PFN, size, select
 * and notify, status, ISR, and the MSI-X vector registers while MSI-X is
 * on) followed by the device's configuration space. Apart from the modern
 * interface (virtio-pci-modern.c) because a transitional device has both
 * and a non-transitional one never builds this one, and each is a switch
 * on its own named offsets (linux/virtio_pci.h).
 */
#include "virtio-pci-internal.h"
#include "qnic/log.h"
#include <linux/virtio_pci.h>

static unsigned legacy_config_off(QnicVirtioPci *p)
{
    return VIRTIO_PCI_CONFIG_OFF(qnic_msix_enabled(&p->pci));
}

static uint64_t legacy_read(void *opaque, uint64_t addr, unsigned size)
{
    QnicVirtioPci *p = opaque;
    QnicVirtioDevice *vdev = p->vdev;
    unsigned cfg = legacy_config_off(p);
    QnicVirtQueue *vq = p->legacy_queue_sel < vdev->num_queues ? &vdev->vqs[p->legacy_queue_sel] : NULL;

    if (addr >= cfg) {
        return qnic_virtio_config_read(vdev, addr - cfg, size);
    }
    switch (addr) {
    case VIRTIO_PCI_HOST_FEATURES:
        return qnic_virtio_legacy_features(vdev);
    case VIRTIO_PCI_GUEST_FEATURES:
        return (uint32_t)vdev->guest_features;
    case VIRTIO_PCI_QUEUE_PFN:
        return vq && vq->enabled ? vq->desc_gpa >> VIRTIO_PCI_QUEUE_ADDR_SHIFT : 0;
    case VIRTIO_PCI_QUEUE_NUM:
        return vq ? vq->num_max : 0;
    case VIRTIO_PCI_QUEUE_SEL:
        return p->legacy_queue_sel;
    case VIRTIO_PCI_STATUS:
        return vdev->status;
    case VIRTIO_PCI_ISR:
        return qnic_virtio_read_isr(vdev);
    case VIRTIO_MSI_CONFIG_VECTOR:
        return vdev->config_vector;
    case VIRTIO_MSI_QUEUE_VECTOR:
        return vq ? vq->vector : QNIC_VIRTIO_NO_VECTOR;
    default:
        return 0;
    }
}

static void legacy_write(void *opaque, uint64_t addr, uint64_t val, unsigned size)
{
    QnicVirtioPci *p = opaque;
    QnicVirtioDevice *vdev = p->vdev;
    unsigned cfg = legacy_config_off(p);
    QnicVirtQueue *vq = p->legacy_queue_sel < vdev->num_queues ? &vdev->vqs[p->legacy_queue_sel] : NULL;

    vdev->legacy = true;
    if (addr >= cfg) {
        qnic_virtio_config_write(vdev, addr - cfg, size, val);
        return;
    }
    switch (addr) {
    case VIRTIO_PCI_GUEST_FEATURES:
        qnic_virtio_set_legacy_features(vdev, val);
        break;
    case VIRTIO_PCI_QUEUE_PFN:
        if (val == 0) {
            /* The legacy way to reset the device. */
            virtio_pci_set_status(p, 0);
        } else if (vq) {
            /* The vector survives, as in QEMU: a driver may select it
             * before writing the PFN (the test guest does). */
            uint16_t vector = vq->vector;
            qnic_vq_reset(vq);
            vq->vector = vector;
            qnic_vq_set_legacy_addr(vq, (uint64_t)(uint32_t)val << VIRTIO_PCI_QUEUE_ADDR_SHIFT,
                                    VIRTIO_PCI_VRING_ALIGN);
            vq->enabled = true;
            qnic_virtio_queue_start(vdev, vq->index);
        } else {
            qnic_guest_error("virtio-pci: legacy PFN for queue %u of %u", p->legacy_queue_sel,
                             vdev->num_queues);
        }
        break;
    case VIRTIO_PCI_QUEUE_SEL:
        p->legacy_queue_sel = val;
        break;
    case VIRTIO_PCI_QUEUE_NOTIFY:
        qnic_virtio_queue_kick(vdev, val & 0xffff);
        break;
    case VIRTIO_PCI_STATUS:
        virtio_pci_set_status(p, val & 0xff);
        break;
    case VIRTIO_MSI_CONFIG_VECTOR:
        if (qnic_msix_enabled(&p->pci)) {
            vdev->config_vector = virtio_pci_check_vector(p, val);
        }
        break;
    case VIRTIO_MSI_QUEUE_VECTOR:
        if (qnic_msix_enabled(&p->pci) && vq) {
            vq->vector = virtio_pci_check_vector(p, val);
            qnic_virtio_guest_notifier_changed(vdev, vq->index);
        }
        break;
    default:
        qnic_guest_error("virtio-pci: legacy write to read-only offset 0x%" PRIx64, addr);
        break;
    }
}

static const QnicMemOps legacy_ops = {
    .read = legacy_read,
    .write = legacy_write,
    .valid_min = 1, .valid_max = 4,
    .impl_min = 1, .impl_max = 4,
    .valid_unaligned = true,
};


void virtio_pci_legacy_init(QnicVirtioPci *p, unsigned vectors)
{
    QnicVirtioDevice *vdev = p->vdev;
    uint64_t size = qnic_pow2ceil(VIRTIO_PCI_CONFIG_OFF(vectors > 0) + vdev->config_len);

    qnic_region_init_io(&p->legacy_bar, &p->pci.dev, &legacy_ops, p, "virtio-pci-legacy", size);
    qnic_pci_register_bar(&p->pci, LEGACY_BAR, QNIC_PCI_BAR_IO, &p->legacy_bar);
    vdev->host_features |= 1ull << QNIC_VIRTIO_F_BAD_FEATURE;
    vdev->legacy_features |= 1ull << QNIC_VIRTIO_F_BAD_FEATURE;
}
