/*
 * The -nic and -net shortcuts of qnic-vmm's command line. Each stands for a
 * -netdev plus a NIC -device (and, for -net, ports on hub 0), so it creates
 * devices: it belongs above both the net core and the device models, here
 * in the VMM, not in net/. `help` requests print to stdout and fail with
 * QNIC_ERROR_HELP (the caller exits 0); nothing here exits.
 */
#ifndef QNIC_VMM_CMDLINE_NET_H
#define QNIC_VMM_CMDLINE_NET_H

#include "qnic/common.h"
#include "qnic/machine.h"

/* While the command line is read: answer `-nic help`, `-nic model=help`,
 * `-net help`, `-net nic,model=help` (opt is "nic" or "net"). True when
 * the option is kept for later (its keys mix a netdev's and a NIC's: they
 * are checked when it is created). */
bool qnic_cmdline_net_check(const char *opt, const char *str, GError **errp);

/* `-nic TYPE[,model=M][,mac=][,netdev opts...]` (and `-nic none`): creates
 * the netdev and its NIC device on m. */
bool qnic_cmdline_nic_add(QnicMachine *m, const char *str, GError **errp);

/* Legacy `-net nic,...` / `-net TYPE,...`: collected in order, then
 * realized on hub 0 once every option is known. */
bool qnic_cmdline_net_add(const char *str, GError **errp);
bool qnic_cmdline_net_realize(QnicMachine *m, GError **errp);

#endif
