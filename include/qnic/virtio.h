/*
 * The virtio device core and its transports. A QnicVirtioDevice holds what
 * every virtio device has whatever bus it sits on: offered and accepted
 * feature bits, the status byte, the ISR, the device configuration space with
 * its generation counter, and the virtqueues. A device model (virtio-net)
 * fills in QnicVirtioDeviceOps; a transport (virtio-pci legacy/modern,
 * virtio-mmio v1/v2) maps registers onto the core's calls and delivers the
 * interrupts the core asks for. When the driver breaks the rules the core
 * marks the device broken and, for VERSION_1 drivers, sets NEEDS_RESET and
 * raises a configuration interrupt, as virtio 1.2 section 2.1.2 describes.
 */
#ifndef QNIC_VIRTIO_H
#define QNIC_VIRTIO_H

#include "qnic/common.h"
#include "qnic/device.h"
#include "qnic/machine.h"
#include "qnic/pci.h"
#include <inttypes.h>
#include "qnic/virtqueue.h"
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <linux/virtio_ids.h>

#define QNIC_VIRTIO_NO_VECTOR 0xffff
#define QNIC_VIRTIO_PCI_VENDOR_ID 0x1af4   /* Red Hat / Qumranet */
#define QNIC_VIRTIO_MAX_QUEUES 1024
/* Legacy-only VIRTIO_F_BAD_FEATURE (bit 30): offered on the legacy interface
 * so that drivers which ack everything are detected. */
#define QNIC_VIRTIO_F_BAD_FEATURE 30

typedef struct QnicVirtioDevice QnicVirtioDevice;

typedef struct QnicVirtioDeviceOps {
    /* Refresh vdev->config before the driver reads it. */
    void (*get_config)(QnicVirtioDevice *vdev);
    /* The driver wrote [off, off+len) of vdev->config. */
    void (*set_config)(QnicVirtioDevice *vdev, unsigned off, unsigned len);
    /* Check a feature set at FEATURES_OK (modern); false refuses it. */
    bool (*validate_features)(QnicVirtioDevice *vdev, uint64_t features);
    /* Features were set (legacy: on each write; modern: at FEATURES_OK). */
    void (*set_features)(QnicVirtioDevice *vdev, uint64_t features);
    /* Status changed (after the core handled it). */
    void (*set_status)(QnicVirtioDevice *vdev, uint8_t old, uint8_t status);
    /* Device reset: drop all device state, back to power-on values. */
    void (*reset)(QnicVirtioDevice *vdev);
    /* The driver notified queue idx. */
    void (*handle_queue)(QnicVirtioDevice *vdev, unsigned idx);
    /* Per-queue reset (VIRTIO_F_RING_RESET) and re-enable. */
    void (*queue_reset)(QnicVirtioDevice *vdev, unsigned idx);
    void (*queue_enable)(QnicVirtioDevice *vdev, unsigned idx);
    /* What qnic_virtio_guest_notifier() returns for queue idx may have
     * changed (vector masked/unmasked/reprogrammed, MSI-X switched on or
     * off, queue vector rewritten): a device whose rings are elsewhere
     * (vhost) re-reads it. */
    void (*guest_notifier_changed)(QnicVirtioDevice *vdev, unsigned idx);
    /* Optional: how many queues the device has once the driver accepted
     * `features`, and their maximum sizes in sizes[QNIC_VIRTIO_MAX_QUEUES]
     * (virtio-net's control queue moves with MQ). Loading saved state
     * checks a stream against it; without it the current queues count. */
    unsigned (*queue_layout)(QnicVirtioDevice *vdev, uint64_t features, uint16_t *sizes);
} QnicVirtioDeviceOps;

typedef struct QnicVirtioTransportOps {
    /* Raise an interrupt for `vector` (MSI-X) after isr was updated. */
    void (*notify)(QnicVirtioDevice *vdev, uint16_t vector);
    /* The ISR was read (and cleared) or reset: update INTx level. */
    void (*update_irq)(QnicVirtioDevice *vdev);
    /* Optional. The eventfd the driver's notifications of queue idx reach
     * in the kernel (an ioeventfd), handed over: the transport stops
     * reading it until return_host_notifier. -1: none (the notification
     * comes through qnic_virtio_queue_kick as usual). */
    int (*take_host_notifier)(QnicVirtioDevice *vdev, unsigned idx);
    void (*return_host_notifier)(QnicVirtioDevice *vdev, unsigned idx);
    /* Optional. An eventfd whose write interrupts the driver for queue idx
     * without qnic (MSI-X vector unmasked and routed by the embedder), or
     * -1: interrupts must go through qnic_virtio_notify/the transport. The
     * transport owns it; the device hears of changes through
     * ops->guest_notifier_changed. */
    int (*guest_notifier)(QnicVirtioDevice *vdev, unsigned idx);
} QnicVirtioTransportOps;

struct QnicVirtioDevice {
    QnicDevice *dev;                /* device instance doing the DMA */
    uint16_t device_id;             /* VIRTIO_ID_NET ... */
    uint64_t host_features;         /* offered (incl. transport bits) */
    uint64_t legacy_features;       /* offered to legacy drivers only */
    uint64_t guest_features;        /* accepted */
    uint64_t driver_features;       /* as the driver wrote them (modern) */
    uint8_t status;
    uint8_t isr;
    uint32_t config_generation;
    uint16_t config_vector;
    unsigned config_len;
    uint8_t *config;                /* [config_len] */
    unsigned num_queues;            /* visible now */
    unsigned max_queues;            /* allocated */
    QnicVirtQueue *vqs;             /* [max_queues] */
    bool broken;
    bool legacy;                    /* the driver uses the legacy interface */
    const QnicVirtioDeviceOps *ops;
    void *opaque;                   /* the device model */
    const QnicVirtioTransportOps *tops;
    void *transport;
    uint64_t stat_errors;
};

void qnic_virtio_init(QnicVirtioDevice *vdev, QnicDevice *dev, uint16_t device_id,
                      unsigned config_len, unsigned num_queues, const uint16_t *queue_sizes,
                      const QnicVirtioDeviceOps *ops, void *opaque);
void qnic_virtio_cleanup(QnicVirtioDevice *vdev);
/* Re-create queues 0..num-1 (unconfigured) with the given sizes; devices
 * whose queue layout depends on features (virtio-net's control queue moves
 * with MQ) call this from set_features/reset. num <= max_queues. */
void qnic_virtio_set_num_queues(QnicVirtioDevice *vdev, unsigned num, const uint16_t *sizes);
void qnic_virtio_reset(QnicVirtioDevice *vdev);

static inline bool qnic_virtio_has_feature(const QnicVirtioDevice *v, unsigned bit)
{ return (v->guest_features >> bit) & 1; }
static inline bool qnic_virtio_host_has_feature(const QnicVirtioDevice *v, unsigned bit)
{ return (v->host_features >> bit) & 1; }
static inline bool qnic_virtio_driver_ok(const QnicVirtioDevice *v)
{ return (v->status & VIRTIO_CONFIG_S_DRIVER_OK) && !v->broken; }

/* Transports expose 64-bit queue addresses as two 32-bit registers: a
 * write to one replaces its half of *v. */
static inline void qnic_set_lo32(uint64_t *v, uint32_t lo)
{ *v = (*v & ~0xffffffffull) | lo; }
static inline void qnic_set_hi32(uint64_t *v, uint32_t hi)
{ *v = (*v & 0xffffffffull) | ((uint64_t)hi << 32); }

/* Features offered to the modern / legacy interface. */
uint64_t qnic_virtio_modern_features(const QnicVirtioDevice *vdev);
uint32_t qnic_virtio_legacy_features(const QnicVirtioDevice *vdev);
/* Legacy write of the 32 low bits (applies immediately, unoffered bits are
 * dropped with a guest error). */
void qnic_virtio_set_legacy_features(QnicVirtioDevice *vdev, uint32_t val);
/* Modern write of one 32-bit half; applied at FEATURES_OK. */
void qnic_virtio_set_driver_features(QnicVirtioDevice *vdev, unsigned sel, uint32_t val);
/* Status write (0 = reset). */
void qnic_virtio_set_status(QnicVirtioDevice *vdev, uint8_t val);
/* Read and clear the ISR. */
uint8_t qnic_virtio_read_isr(QnicVirtioDevice *vdev);

/* Config space access (little-endian, bounds checked: reads outside return
 * all-ones, writes outside are ignored). */
uint32_t qnic_virtio_config_read(QnicVirtioDevice *vdev, unsigned off, unsigned len);
void qnic_virtio_config_write(QnicVirtioDevice *vdev, unsigned off, unsigned len, uint32_t val);

/* A queue's notification from the driver. */
void qnic_virtio_queue_kick(QnicVirtioDevice *vdev, unsigned idx);
/* Start a queue's rings (modern queue_enable, legacy PFN, or DRIVER_OK). */
bool qnic_virtio_queue_start(QnicVirtioDevice *vdev, unsigned idx);
void qnic_virtio_queue_reset(QnicVirtioDevice *vdev, unsigned idx);

/* Host / guest notifiers of a queue (see QnicVirtioTransportOps): -1 when
 * the transport has none. */
int qnic_virtio_take_host_notifier(QnicVirtioDevice *vdev, unsigned idx);
void qnic_virtio_return_host_notifier(QnicVirtioDevice *vdev, unsigned idx);
int qnic_virtio_guest_notifier(QnicVirtioDevice *vdev, unsigned idx);
/* For transports: queue idx's guest notifier may have changed. */
void qnic_virtio_guest_notifier_changed(QnicVirtioDevice *vdev, unsigned idx);

/* Interrupt the driver for a queue (if its suppression allows) or for a
 * configuration change (bumps the generation). */
void qnic_virtio_notify(QnicVirtioDevice *vdev, QnicVirtQueue *vq);
void qnic_virtio_notify_config(QnicVirtioDevice *vdev);
/* The driver broke the rules: guest error; broken; NEEDS_RESET for 1.0. */
void qnic_virtio_error(QnicVirtioDevice *vdev, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

/* ---- device state (qnic/state.h, virtio/virtio-state.c) ----
 *
 * The core's section "virtio": features (offered, accepted, as written),
 * status, ISR, config generation and vector, the legacy flag, and per
 * queue its size, enable and broken flags, ring addresses, whether its
 * rings are mapped, indices, wrap counters, the signalled-used state, the
 * notification flag and the vector. Host pointers are never saved: they
 * are derived again on load from the addresses, which must lie in guest
 * RAM. The configuration space is the device model's to save (it derives
 * it from its own state).
 *
 * In flight: elements popped but not used at save time are given back in
 * the stream (the saved avail index is rewound over them, inuse is 0), so
 * the loaded device takes those buffers again and completes each exactly
 * once; the saving device is not changed (if it runs on, it completes
 * them itself). The device model must make sure the source never finishes
 * them once the destination runs: virtio-net's only such element is a TX
 * frame its backend queued, which stays queued while the VM is stopped.
 */
typedef struct QnicVirtioState QnicVirtioState;

void qnic_virtio_state_save(QnicVirtioDevice *vdev, GByteArray *out);
/* Read and check the next section against vdev: features within what it
 * offers, the queue layout those features give (ops->queue_layout), every
 * size, index, wrap counter and ring address against the queue and guest
 * RAM, vectors below nvectors (0: only QNIC_VIRTIO_NO_VECTOR). NULL with
 * errp set on any fault; vdev is not touched. */
QnicVirtioState *qnic_virtio_state_read(QnicVirtioDevice *vdev, QnicStateReader *r,
                                        unsigned nvectors, GError **errp);
uint64_t qnic_virtio_state_features(const QnicVirtioState *s);
uint8_t qnic_virtio_state_status(const QnicVirtioState *s);
/* Apply a checked state. The device model sets up its queue layout for
 * the stream's features first (the core then finds num_queues equal). */
void qnic_virtio_state_apply(QnicVirtioDevice *vdev, const QnicVirtioState *s);
void qnic_virtio_state_free(QnicVirtioState *s);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QnicVirtioState, qnic_virtio_state_free)

/* ---- virtio-pci transport ---- */

typedef struct QnicVirtioPciInfo {
    uint16_t legacy_device_id;      /* 0x1000 for net */
    uint32_t class_code;            /* 0x020000 for net */
    const char *default_rom;        /* "efi-virtio.rom" */
} QnicVirtioPciInfo;

typedef enum {
    QNIC_VIRTIO_PCI_AUTO,           /* virtio-net-pci: transitional unless disable-* */
    QNIC_VIRTIO_PCI_TRANSITIONAL,
    QNIC_VIRTIO_PCI_NON_TRANSITIONAL,
} QnicVirtioPciKind;

typedef struct QnicVirtioPci {
    QnicPciDevice pci;              /* first: the device instance */
    QnicVirtioDevice *vdev;
    bool legacy_enabled, modern_enabled;
    bool ioeventfd;
    unsigned nvectors;
    QnicRegion legacy_bar;          /* BAR0 (I/O) */
    QnicRegion modern_bar;          /* BAR4 container: common/isr/device/notify */
    /* modern common config state */
    uint32_t dfselect, gfselect;
    uint16_t queue_sel;
    /* legacy */
    uint16_t legacy_queue_sel;
    /* ioeventfds (one per queue), -1 when off; a queue whose fd is taken
     * (vhost) has no watch */
    int *notify_fds;
    struct QnicFdWatch **notify_watches;
    bool *notify_taken;
    uint8_t cfg_cap;                /* offset of the PCI cfg access cap */
} QnicVirtioPci;

/* Realize the transport for vdev (queues and config must already be set up
 * in vdev): IDs, BAR0 legacy I/O, BAR1 MSI-X, BAR4 modern capabilities.
 * `vectors` is the requested MSI-X vector count (0 = INTx only). */
bool qnic_virtio_pci_realize(QnicVirtioPci *p, QnicVirtioDevice *vdev, QnicOpts *opts,
                             QnicVirtioPciKind kind, const QnicVirtioPciInfo *info,
                             unsigned vectors, GError **errp);
void qnic_virtio_pci_reset(QnicVirtioPci *p);
void qnic_virtio_pci_unrealize(QnicVirtioPci *p);

/* The transport's section "virtio-pci" (qnic/state.h): legacy/modern mode
 * and vector count (which must match the loading device's), the feature
 * selectors and both queue selectors. The PCI function (config space,
 * MSI-X, INTx) is the PCI core's section; the queues' vectors are the
 * virtio core's. Loading: read (checks, no change), then begin (the
 * ioeventfds go while the queues change), the PCI function's and the
 * core's apply, then apply (registers; ioeventfds again for DRIVER_OK;
 * INTx and the queues' guest notifiers follow the loaded state). */
typedef struct QnicVirtioPciState QnicVirtioPciState;
void qnic_virtio_pci_state_save(QnicVirtioPci *p, GByteArray *out);
QnicVirtioPciState *qnic_virtio_pci_state_read(QnicVirtioPci *p, QnicStateReader *r,
                                               GError **errp);
void qnic_virtio_pci_state_begin(QnicVirtioPci *p);
void qnic_virtio_pci_state_apply(QnicVirtioPci *p, const QnicVirtioPciState *s);
void qnic_virtio_pci_state_free(QnicVirtioPciState *s);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QnicVirtioPciState, qnic_virtio_pci_state_free)

/* ---- virtio-mmio transport ---- */

/* qnic's fixed placement: slot i at 0xfeb00000 + 0x200 * i, GSI 5 + i
 * (ISA IRQs 5..12 are free on the pc machine qnic emulates). */
#define QNIC_VIRTIO_MMIO_BASE 0xfeb00000ull
#define QNIC_VIRTIO_MMIO_SIZE 0x200u
#define QNIC_VIRTIO_MMIO_GSI_BASE 5
#define QNIC_VIRTIO_MMIO_SLOTS 8

typedef struct QnicVirtioMmio {
    QnicDevice dev;                 /* first: the device instance */
    QnicVirtioDevice *vdev;
    QnicRegion region;
    unsigned slot;
    uint64_t base;
    unsigned gsi;
    bool legacy;                    /* version 1 (force-legacy=on) */
    uint32_t host_features_sel, guest_features_sel;
    uint32_t guest_page_size;
    uint32_t queue_align;           /* v1: applies to the next QUEUE_PFN */
    uint16_t queue_sel;
    uint32_t irq_status;
} QnicVirtioMmio;

bool qnic_virtio_mmio_realize(QnicVirtioMmio *m, QnicVirtioDevice *vdev, QnicOpts *opts,
                              GError **errp);
void qnic_virtio_mmio_reset(QnicVirtioMmio *m);
void qnic_virtio_mmio_unrealize(QnicVirtioMmio *m);

/* The transport's section "virtio-mmio" (qnic/state.h): the version
 * (which must match the loading device's), the feature selectors, guest
 * page size, queue alignment and queue selector. The interrupt status is
 * the virtio core's ISR; apply sets the GSI level from it (call it after
 * the core's apply). */
typedef struct QnicVirtioMmioState QnicVirtioMmioState;
void qnic_virtio_mmio_state_save(QnicVirtioMmio *m, GByteArray *out);
QnicVirtioMmioState *qnic_virtio_mmio_state_read(QnicVirtioMmio *m, QnicStateReader *r,
                                                 GError **errp);
void qnic_virtio_mmio_state_apply(QnicVirtioMmio *m, const QnicVirtioMmioState *s);
void qnic_virtio_mmio_state_free(QnicVirtioMmioState *s);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QnicVirtioMmioState, qnic_virtio_mmio_state_free)
/* "virtio_mmio.device=512@0xfeb00000:5" for the kernel command line. */
char *qnic_virtio_mmio_cmdline(const QnicVirtioMmio *m);
/* Same, for every virtio-mmio device of a machine, space-separated ("" if
 * none); g_free. */
char *qnic_virtio_mmio_cmdline_all(QnicMachine *machine);

#endif
