/*
 * Devices and the device registry. A device model registers a
 * QnicDeviceClass (name, bus, instance size, realize/reset/unrealize) with
 * QNIC_DEVICE_REGISTER; qnic_device_create() turns a `-device` string into a
 * realized instance: it checks the options against the model's schema
 * (qapi/), allocates the instance, plugs it into its bus and realizes it.
 */
#ifndef QNIC_DEVICE_H
#define QNIC_DEVICE_H

#include "qnic/common.h"
#include "qnic/opts.h"

typedef struct QnicMachine QnicMachine;
typedef struct QnicDevice QnicDevice;
typedef struct QnicStateReader QnicStateReader;   /* qnic/state.h */

typedef struct QnicDeviceClass {
    const char *name;           /* schema type name, e.g. "virtio-net-pci" */
    const char *bus;            /* "pci", "virtio-mmio", "isa", "sysbus" */
    size_t instance_size;       /* >= sizeof(QnicDevice); embeds it first */
    /* opts are schema-checked; errors name what is wrong for a person. */
    bool (*realize)(QnicDevice *dev, QnicOpts *opts, GError **errp);
    void (*reset)(QnicDevice *dev);         /* guest-visible reset */
    void (*unrealize)(QnicDevice *dev);     /* frees everything realize made */
    /* Device state (qnic/state.h), optional. save_state appends the
     * device's sections (every layer's) to out. load_state reads and checks
     * every section first, then calls qnic_state_reader_done() (trailing
     * bytes are refused), and applies them only when all are good: on
     * false the device is as it was. Both run with the machine stopped. */
    bool (*save_state)(QnicDevice *dev, GByteArray *out, GError **errp);
    bool (*load_state)(QnicDevice *dev, QnicStateReader *r, GError **errp);
} QnicDeviceClass;

struct QnicDevice {
    const QnicDeviceClass *cls;
    char *id;                   /* -device id=, may be NULL */
    QnicMachine *machine;
    QnicOpts *opts;             /* checked options, kept for the device's life */
    /* Depth of this device's own handlers on the stack (MMIO/PIO/config
     * dispatch, its BHs and timers via qnic_device_enter/leave). DMA into a
     * device with in_io > 0 is refused. */
    int in_io;
    /* Bus mastering: PCI's command register clears this; DMA is refused. */
    bool dma_enabled;
    bool realized;
};

#define QNIC_DEVICE_REGISTER(cls_var) \
    static void __attribute__((constructor)) qnic_register_##cls_var(void) \
    { qnic_device_class_register(&cls_var); }

void qnic_device_class_register(const QnicDeviceClass *cls);
const QnicDeviceClass *qnic_device_class_find(const char *name);
/* Every registered class (sorted by name); g_free the array. */
const QnicDeviceClass **qnic_device_class_list(size_t *n);

/* Parse "MODEL,key=val,..." (or already-parsed opts, which it takes over)
 * and create a realized device on m. */
QnicDevice *qnic_device_create_str(QnicMachine *m, const char *str, GError **errp);
QnicDevice *qnic_device_create(QnicMachine *m, QnicOpts *opts, GError **errp);
/* The same for a class found by the caller, registered or not (a device
 * an embedder builds for itself, as qnic_virtio_net_new_bare() does): opts
 * (taken over) are checked against schema type t. */
QnicDevice *qnic_device_create_class(QnicMachine *m, const QnicDeviceClass *cls,
                                     const QnicSchemaType *t, QnicOpts *opts, GError **errp);
void qnic_device_reset(QnicDevice *dev);
/* The device's state as a stream (qnic/state.h): a section naming the
 * class, then the class's own sections. Load refuses a stream for another
 * model, trailing bytes, and whatever the class refuses, leaving the device
 * as it was; a class without the ops fails with an error naming it. The
 * machine must be stopped. */
bool qnic_device_save_state(QnicDevice *dev, GByteArray *out, GError **errp);
bool qnic_device_load_state(QnicDevice *dev, const uint8_t *buf, size_t len,
                            GError **errp);
void qnic_device_destroy(QnicDevice *dev);   /* unplug + unrealize + free */
QnicDevice *qnic_device_find(QnicMachine *m, const char *id);
/* QEMU's QOM path of a -device: "/machine/peripheral/ID", or for one
 * without an id "/machine/peripheral-anon/device[N]", N counting the
 * id-less devices in creation order. g_free it. */
char *qnic_device_path(QnicDevice *dev);

/* Mark entry into / exit from a device's own code outside MMIO dispatch
 * (BH, timer, backend callback) for the reentrancy guard. */
static inline void qnic_device_enter(QnicDevice *d) { d->in_io++; }
static inline void qnic_device_leave(QnicDevice *d) { d->in_io--; }

#endif
