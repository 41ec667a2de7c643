/*
 * The QnicBackends the unit tests and fuzzers make their netdevs, chardevs
 * and NICs in: one per test process, made on first use, so that a test
 * reads as before (netdev ids it made are found by the NICs it makes).
 * Tests about several machines in one process make their own.
 */
#ifndef QNIC_TEST_BACKENDS_H
#define QNIC_TEST_BACKENDS_H

#include "qnic/backends.h"

static inline QnicBackends *test_backends(void)
{
    static QnicBackends *be;

    if (!be) {
        be = qnic_backends_new();
    }
    return be;
}

#endif
