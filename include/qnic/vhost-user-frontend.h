/*
 * The vhost-user frontend (virtio/vhost-user-frontend.c): the vhost ops table of
 * qnic/vhost.h carried as vhost-user messages to a backend process over a
 * connected Unix socket, plus the connection handshake. The socket, its
 * chardev and reconnection belong to the owner (the `-netdev vhost-user`
 * netdev); this layer only speaks on it and says when it broke.
 */
#ifndef QNIC_VHOST_USER_FRONTEND_H
#define QNIC_VHOST_USER_FRONTEND_H

#include "qnic/vhost.h"

typedef struct QnicVhostUser QnicVhostUser;

/* How long qnic waits for any one reply (ms). Default 10000, or
 * $QNIC_VHOST_USER_TIMEOUT_MS when set (tests of silent backends). */
unsigned qnic_vhost_user_timeout_ms(void);

/* A frontend for `queue_pairs` queue pairs of a net device. `failed` runs
 * (from a BH, never inside a request) once a connection broke: malformed
 * reply, timeout, EOF; the owner then disconnects. */
QnicVhostUser *qnic_vhost_user_new(const char *name, unsigned queue_pairs,
                                   void (*failed)(void *opaque), void *opaque);
void qnic_vhost_user_free(QnicVhostUser *u);
QnicVhostDev *qnic_vhost_user_dev(QnicVhostUser *u);
/* Negotiate on a connected socket (not taken over): GET_FEATURES,
 * GET/SET_PROTOCOL_FEATURES, GET_QUEUE_NUM, SET_OWNER. */
bool qnic_vhost_user_connect(QnicVhostUser *u, int fd, GError **errp);
/* Forget the socket (the owner closes it); rings are taken back without
 * messages. */
void qnic_vhost_user_disconnect(QnicVhostUser *u);
/* The socket is readable outside a request: EOF or an unsolicited
 * message. Returns false (logged) when the connection must go. */
bool qnic_vhost_user_readable(QnicVhostUser *u);
uint64_t qnic_vhost_user_protocol_features(QnicVhostUser *u);

#endif
