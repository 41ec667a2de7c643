/*
 * Net filters (`-object filter-dump,...` and friends): objects attached to
 * a netdev that see every frame it sends (tx) and receives (rx), kept by
 * id in the netdev's QnicBackends. The VMM
 * hands `-object` strings whose type starts with "filter-" to
 * qnic_filter_add_str() once every -netdev exists, as QEMU creates filters
 * late.
 */
#ifndef QNIC_FILTER_H
#define QNIC_FILTER_H

#include "qnic/common.h"
#include "qnic/opts.h"
#include "qnic/backends.h"

/* True for the -object types this module handles ("filter-dump"). */
bool qnic_filter_type_known(const char *type);
/* "filter-dump,id=f0,netdev=n0,file=x.pcap[,maxlen=N][,queue=all|rx|tx]" */
bool qnic_filter_add_str(QnicBackends *be, const char *str, GError **errp);
/* Takes over opts (group "object", key "qom-type" holds the type). */
bool qnic_filter_add(QnicBackends *be, QnicOpts *opts, GError **errp);
bool qnic_filter_del(QnicBackends *be, const char *id);
void qnic_filter_del_all(QnicBackends *be);

#endif
