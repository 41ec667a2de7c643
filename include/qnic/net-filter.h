/*
 * The net filter mechanism: a filter is attached to the clients of one
 * netdev and sees every frame that passes them. Each client keeps its own
 * list of filters (QnicNetClient.filters, in attach order) and the send path
 * in net.c walks that list and calls each filter's ops, so the core knows
 * no filter type by name. A filter type (filter-dump, ...) registers a
 * QnicNetFilterClass; net/filter.c creates filters from `-object` options,
 * checks what every filter accepts (netdev, queue, status), attaches them
 * and keeps them by id. This is QEMU's NetFilterClass idea, reduced to what
 * qnic's filters need: they observe, they do not hold or redirect frames.
 */
#ifndef QNIC_NET_FILTER_H
#define QNIC_NET_FILTER_H

#include "qnic/net.h"

/* Which frames a filter sees, as `queue=` says: tx = sent by the netdev,
 * rx = sent to it. */
typedef enum {
    QNIC_NET_FILTER_RX = 1,
    QNIC_NET_FILTER_TX = 2,
    QNIC_NET_FILTER_ALL = 3,
} QnicNetFilterDirection;

typedef struct QnicNetFilterClass {
    const char *type;           /* the -object type, e.g. "filter-dump" */
    /* Set up the type's own state in f->opaque from schema-checked opts
     * (the common keys are read already). On error everything it made is
     * released by cleanup, which then runs. */
    bool (*init)(QnicNetFilter *f, QnicOpts *opts, GError **errp);
    /* A frame passes nc in direction dir. iov starts with nc's vnet
     * header when nc->vnet_hdr_len > 0. The frame must not be changed. */
    void (*receive_iov)(QnicNetFilter *f, QnicNetClient *nc, QnicNetFilterDirection dir,
                        const struct iovec *iov, int iovcnt);
    void (*cleanup)(QnicNetFilter *f);
} QnicNetFilterClass;

struct QnicNetFilter {
    const QnicNetFilterClass *cls;
    char *id;
    unsigned direction;         /* QnicNetFilterDirection bits */
    bool enabled;               /* status=on; a filter may switch itself off */
    /* QnicNetClient * it is attached to; a client that is freed removes
     * itself here and from its list (net.c) */
    GPtrArray *clients;
    void *opaque;               /* the type's state */
};

#define QNIC_NET_FILTER_REGISTER(cls_var) \
    static void __attribute__((constructor)) qnic_register_filter_##cls_var(void) \
    { qnic_net_filter_class_register(&cls_var); }

void qnic_net_filter_class_register(const QnicNetFilterClass *cls);

#endif
