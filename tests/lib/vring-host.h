/*
 * The memory accessor (vring-driver.h) of host-side tests whose guest RAM
 * is one block of host memory from guest-physical address 0: a machine's
 * RAM below 4 GiB, or the memfd a vhost-user test maps. Kept apart from
 * vring-driver.c because it uses glib (a driver access outside the block
 * fails the test), which the freestanding test guest cannot link.
 */
#ifndef QNIC_TESTS_VRING_HOST_H
#define QNIC_TESTS_VRING_HOST_H

#include "vring-driver.h"

typedef struct VringHostRam {
    uint8_t *base;          /* guest-physical 0 */
    uint64_t size;
} VringHostRam;

/* An accessor over `ram`, which must outlive it. Fences are C11 thread
 * fences, for a device side that runs in another thread. */
VringMem vring_host_ram_mem(VringHostRam *ram);

/* The same over a machine's RAM below 4 GiB (`size` bytes, the whole RAM
 * of a unit test's machine): fills `ram` and returns its accessor. */
struct QnicMachine;
VringMem vring_host_machine_mem(VringHostRam *ram, struct QnicMachine *m, uint64_t size);

#endif
