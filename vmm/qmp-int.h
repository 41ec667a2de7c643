/*
 * What the files of qnic-vmm's QMP server share and nothing else sees:
 * vmm/qmp.c holds the session, the parser, argument checking, dispatch and
 * the commands of the run state, netdevs and device hotplug;
 * vmm/qmp-query.c the read-mostly commands an operator's tools use
 * (query-pci, qom-list, qom-get, human-monitor-command, qnic's
 * query-netdev-stats); vmm/qmp-announce.c announce-self; vmm/qmp-events.c
 * the events the backends raise (NETDEV_STREAM_CONNECTED/_DISCONNECTED);
 * vmm/qmp-migration.c the migration commands.
 * A command is a QmpHandler named in qmp.c's table with an argument table
 * that dispatch checks before the handler runs.
 */
#ifndef QNIC_VMM_QMP_INT_H
#define QNIC_VMM_QMP_INT_H

#include "vmm/qmp.h"
#include "qnic/net.h"
#include <json-glib/json-glib.h>

typedef enum { ARG_STR, ARG_BOOL, ARG_INT, ARG_STR_LIST } ArgType;

/* One argument of a command: dispatch refuses unknown, missing
 * (non-optional) and mistyped ones with QEMU's words. */
typedef struct {
    const char *name;
    ArgType type;
    bool optional;
} ArgDesc;

/* Returns the "return" value (NULL: {}), or sets *desc (and *cls, else
 * "GenericError") and returns NULL. args have passed the command's table. */
typedef JsonNode *QmpHandler(QnicQmpSession *s, JsonObject *args, const char **cls, char **desc);

QnicMachine *qmp_session_machine(QnicQmpSession *s);
/* The session's announce-self timers (id -> timer; NULL until the first),
 * freed with the session. */
GHashTable **qmp_session_announce_timers(QnicQmpSession *s);
/* A node holding o (taken over). */
JsonNode *qmp_obj_node(JsonObject *o);
JsonNode *qmp_array_node(JsonArray *a);

/* vmm/qmp-query.c */
extern const ArgDesc qmp_query_pci_args[], qmp_qom_list_args[], qmp_qom_get_args[],
                     qmp_hmp_args[], qmp_netdev_stats_args[];
QmpHandler qmp_query_pci, qmp_qom_list, qmp_qom_get, qmp_hmp,
           qmp_query_netdev_stats;

/* vmm/qmp-announce.c */
extern const ArgDesc qmp_announce_args[];
QmpHandler qmp_announce_self;

/* vmm/qmp-migration.c: the migration commands, qnic's
 * x-query-device-state, getfd/closefd, and the migration events. */
extern const ArgDesc qmp_no_args[], qmp_migrate_args[], qmp_migrate_incoming_args[],
                     qmp_fdname_args[], qmp_device_state_args[];
QmpHandler qmp_migrate, qmp_migrate_incoming, qmp_migrate_cancel, qmp_query_migrate,
           qmp_migrate_set_caps, qmp_query_migrate_caps, qmp_getfd, qmp_closefd,
           qmp_query_device_state;
void qmp_migration_event(QnicMachine *m, const char *event, const char *status, int pass);
/* The descriptor that came with the client's last bytes (SCM_RIGHTS):
 * set replaces (closing) the previous one, take hands it over (-1: none). */
void qmp_session_set_fd(QnicQmpSession *s, int fd);
int qmp_session_take_fd(QnicQmpSession *s);

/* vmm/qmp-events.c: QnicNetStreamHook, opaque the QnicMachine. */
QnicNetStreamHook qmp_stream_event;

#endif
