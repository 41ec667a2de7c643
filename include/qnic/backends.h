/*
 * The backends of one machine: everything its options name by id, kept
 * apart from every other machine's so that one process can hold several
 * (an embedder running two VMs, a migration test with its source and
 * destination side by side). A QnicBackends holds the netdevs with the net
 * clients and hubs behind them, the net filters, the chardevs, the next
 * default MAC address and the net core's view of the VM's run state; ids
 * are unique within one and may repeat across them.
 *
 * The embedder makes one per machine and hands it to the machine
 * (QnicMachineConfig.backends), where NIC models find their netdev; a
 * program with no machine (a backend test, the vhost-user device side)
 * makes one on its own. What is the host's rather than a machine's stays
 * shared by every machine in the process: the main loop with its bottom
 * halves and fd watches, the big lock, the virtual clock with its timers,
 * the log, and the registries of device, netdev and filter types.
 */
#ifndef QNIC_BACKENDS_H
#define QNIC_BACKENDS_H

#include "qnic/common.h"
#include "qnic/chardev.h"

typedef struct QnicBackends QnicBackends;

QnicBackends *qnic_backends_new(void);
/* Delete every filter, netdev (newest first, as QEMU tears down) and
 * chardev still in it. The NICs using them go first: free the machine
 * (its devices) before its backends. */
void qnic_backends_free(QnicBackends *be);
/* The chardevs of this machine (-chardev ids). */
QnicChardevSet *qnic_backends_chardevs(QnicBackends *be);

#endif
