/*
 * One machine's backends (see qnic/backends.h): the lists the net core,
 * hubs and filters keep per machine, made and torn down here in the order
 * their users need.
 */
#include "net-internal.h"
#include "qnic/filter.h"

QnicBackends *qnic_backends_new(void)
{
    QnicBackends *be = g_new0(QnicBackends, 1);

    be->vm_running = true;
    be->chardevs = qnic_chardev_set_new();
    return be;
}

void qnic_backends_free(QnicBackends *be)
{
    if (!be) {
        return;
    }
    /* Filters hold clients of netdevs; netdevs may hold chardevs. */
    qnic_filter_del_all(be);
    qnic_netdev_del_all(be);
    qnic_chardev_set_free(be->chardevs);
    /* Hubs go with their last port; only NIC clients can be left, and
     * their owner (a device) must have gone first. */
    g_assert(!be->hubs);
    g_assert(!be->clients);
    g_free(be);
}

QnicChardevSet *qnic_backends_chardevs(QnicBackends *be)
{
    return be->chardevs;
}
