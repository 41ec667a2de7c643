/*
 * QMP, QEMU's JSON machine protocol, as qnic-vmm serves it: a session is a
 * byte stream in (JSON objects, one command each) and replies and events
 * out; qnic_qmp_monitor_add() runs sessions on a socket chardev (`-qmp
 * unix:PATH[,server=on][,wait=off]`, `-mon chardev=ID,mode=control`). The
 * session core is separate from the socket so that a fuzzer or a unit test
 * can feed it bytes and read what it answers.
 */
#ifndef QNIC_VMM_QMP_H
#define QNIC_VMM_QMP_H

#include "qnic/common.h"
#include "qnic/machine.h"
#include "qnic/chardev.h"

typedef struct QnicQmpSession QnicQmpSession;

/* Where a session's output goes (whole replies/events, each ending "\r\n"). */
typedef void QnicQmpOutput(void *opaque, const char *buf, size_t len);

QnicQmpSession *qnic_qmp_session_new(QnicMachine *m, QnicQmpOutput *out, void *opaque);
void qnic_qmp_session_free(QnicQmpSession *s);
/* Only these -netdev types (NULL-terminated; the array must outlive s)
 * may be created by this session's netdev_add: an embedder whose QMP
 * client must not open host resources (taps, sockets, scripts) allows
 * "hubport" only, as the fuzzer does. Default: every type. */
void qnic_qmp_session_allow_netdevs(QnicQmpSession *s, const char *const *types);
/* Send the greeting: the session then waits for qmp_capabilities. */
void qnic_qmp_session_greet(QnicQmpSession *s);
/* Bytes from the client, in any split: every complete JSON value is run as
 * a command and answered; a partial one waits for the rest. */
void qnic_qmp_session_input(QnicQmpSession *s, const char *buf, size_t len);

/* An event to every session of machine m past capabilities negotiation
 * (sessions of other machines in the process do not hear it). data may be
 * NULL; it is taken over (json-glib's JsonNode, an object). */
typedef struct _JsonNode JsonNode;
void qnic_qmp_event(QnicMachine *m, const char *name, JsonNode *data);

/* A monitor on a chardev: greets each connection and serves it. */
bool qnic_qmp_monitor_add(QnicChardev *chr, QnicMachine *m, GError **errp);
void qnic_qmp_monitors_free(void);

#endif
