/*
 * isa-debug-exit, as QEMU has it: an I/O port range whose write ends the VMM
 * with exit status (value << 1) | 1, so test guests can report pass/fail
 * without a shutdown path (an even status, such as a clean 0, can never come
 * from the guest). Reads return 0. `-device isa-debug-exit,iobase=0xf4,
 * iosize=4` is the usual form.
 */
#include "vmm/vmm.h"
#include "qnic/device.h"
#include "qnic/machine.h"
#include "qnic/memory.h"

typedef struct DebugExit {
    QnicDevice dev;
    QnicRegion io;
} DebugExit;

static uint64_t debug_exit_read(void *opaque, uint64_t addr, unsigned size)
{
    return 0;
}

static void debug_exit_write(void *opaque, uint64_t addr, uint64_t val, unsigned size)
{
    /* The OS keeps the low 8 bits of an exit status; compute in unsigned
     * arithmetic so any 32-bit value is well defined. */
    uint32_t status = ((uint32_t)val << 1) | 1;

    qnic_vmm_request_exit((int)(status & 0xff));
}

static const QnicMemOps debug_exit_ops = {
    .read = debug_exit_read,
    .write = debug_exit_write,
    .valid_min = 1, .valid_max = 4,
    .impl_min = 1, .impl_max = 4,
};

static bool debug_exit_realize(QnicDevice *dev, QnicOpts *opts, GError **errp)
{
    DebugExit *s = (DebugExit *)dev;
    uint64_t iobase = qnic_opts_get_uint(opts, "iobase", 0x501);
    uint64_t iosize = qnic_opts_get_uint(opts, "iosize", 2);

    if (iosize == 0 || iosize > 4 || iobase + iosize > 0x10000) {
        qnic_error_setg_invalid(errp, "isa-debug-exit: ports 0x%" G_GINT64_MODIFIER "x+%"
                                G_GUINT64_FORMAT " are outside the I/O space", iobase, iosize);
        return false;
    }
    qnic_region_init_io(&s->io, dev, &debug_exit_ops, s, "isa-debug-exit", iosize);
    qnic_as_map(&dev->machine->io, &s->io, iobase, 0);
    return true;
}

static void debug_exit_unrealize(QnicDevice *dev)
{
    DebugExit *s = (DebugExit *)dev;

    qnic_as_unmap(&s->io);
}

/* No guest-visible state: an exit request ends the process. Migration
 * only needs to know the device has none (the class section says which). */
static bool debug_exit_save_state(QnicDevice *dev, GByteArray *out, GError **errp)
{
    return true;
}

static bool debug_exit_load_state(QnicDevice *dev, QnicStateReader *r, GError **errp)
{
    return true;
}

static const QnicDeviceClass debug_exit_class = {
    .name = "isa-debug-exit",
    .bus = "isa",
    .instance_size = sizeof(DebugExit),
    .realize = debug_exit_realize,
    .unrealize = debug_exit_unrealize,
    .save_state = debug_exit_save_state,
    .load_state = debug_exit_load_state,
};
QNIC_DEVICE_REGISTER(debug_exit_class)
