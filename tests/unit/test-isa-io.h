/*
 * Port I/O on a bare machine for the vmm's unit tests (ISA devices, the pc
 * board): a byte through the machine's I/O address space, as a vCPU's IN
 * and OUT reach it, asserting that something answers; a bare machine to
 * put the devices on; and an empty
 * temporary file for a serial port's file: backend.
 */
#ifndef QNIC_TEST_ISA_IO_H
#define QNIC_TEST_ISA_IO_H

#include "qnic/machine.h"
#include "qnic/memory.h"
#include "../lib/test-backends.h"

#include <unistd.h>

static inline uint8_t inb(QnicMachine *m, uint16_t port)
{
    uint64_t v = 0;
    g_assert_true(qnic_as_load(&m->io, port, 1, &v));
    return v;
}

static inline void outb(QnicMachine *m, uint16_t port, uint8_t v)
{
    g_assert_true(qnic_as_store(&m->io, port, 1, v));
}

/* A bare machine of 16 MiB whose GSI changes go to SET_GSI (may be NULL). */
static inline QnicMachine *isa_test_machine(void (*set_gsi)(void *, unsigned, int))
{
    QnicMachineConfig mcfg = { .ram_size = 16 << 20, .set_gsi = set_gsi };
    GError *err = NULL;
    mcfg.backends = test_backends();
    QnicMachine *m = qnic_machine_new(&mcfg, &err);

    g_assert_no_error(err);
    return m;
}

/* An empty temporary file (g_free the name, unlink the file). */
static inline char *tmp_file(void)
{
    char *path = NULL;
    int fd = g_file_open_tmp("qnic-serial-XXXXXX", &path, NULL);

    g_assert_cmpint(fd, >=, 0);
    close(fd);
    return path;
}

#endif
