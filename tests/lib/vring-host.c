/*
 * A driver-side ring accessor over host memory (see vring-host.h).
 */
#include "vring-host.h"
#include "qnic/machine.h"
#include <glib.h>
#include <string.h>

static uint8_t *host_ptr(VringHostRam *ram, uint64_t gpa, size_t len)
{
    g_assert_cmpuint(gpa, <=, ram->size);
    g_assert_cmpuint(len, <=, ram->size - gpa);
    return ram->base + gpa;
}

static void host_read(void *opaque, uint64_t gpa, void *buf, size_t len)
{
    memcpy(buf, host_ptr(opaque, gpa, len), len);
}

static void host_write(void *opaque, uint64_t gpa, const void *buf, size_t len)
{
    memcpy(host_ptr(opaque, gpa, len), buf, len);
}

static void host_fence(void *opaque, VringFence kind)
{
    switch (kind) {
    case VRING_FENCE_WRITE:
        __atomic_thread_fence(__ATOMIC_RELEASE);
        break;
    case VRING_FENCE_READ:
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        break;
    default:
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        break;
    }
}

VringMem vring_host_ram_mem(VringHostRam *ram)
{
    return (VringMem){ .read = host_read, .write = host_write, .fence = host_fence, .opaque = ram };
}

VringMem vring_host_machine_mem(VringHostRam *ram, QnicMachine *m, uint64_t size)
{
    ram->base = qnic_machine_ram_ptr(m, 0, size);
    ram->size = size;
    g_assert_nonnull(ram->base);
    return vring_host_ram_mem(ram);
}
