/*
 * Character devices, as far as vhost-user needs them: `-chardev
 * socket,id=ID,path=PATH[,server=on|off][,wait=on|off][,reconnect=N]` with
 * QEMU's syntax and defaults (a client connects; a server listens and, with
 * wait=on, blocks at startup until a client comes), plus chardevs made from
 * an already connected socket (tests and fuzzers use one end of a
 * socketpair). A chardev holds at most one connection; its user (the
 * vhost-user netdev) reads and writes the socket itself, tells the chardev
 * when the peer is gone (qnic_chardev_disconnect), and is told through the
 * handler when a new connection is up (a listening server accepted one, or
 * a client with reconnect=N got through again). Every other chardev backend
 * QEMU has is refused with a clear message.
 */
#ifndef QNIC_CHARDEV_H
#define QNIC_CHARDEV_H

#include "qnic/common.h"
#include "qnic/opts.h"

typedef struct QnicChardev QnicChardev;

/* The chardevs of one machine (its embedder's -chardev ids): ids are
 * unique within a set, and two sets may use the same id. Freeing the set
 * frees every chardev still in it, newest first. */
typedef struct QnicChardevSet QnicChardevSet;
QnicChardevSet *qnic_chardev_set_new(void);
void qnic_chardev_set_free(QnicChardevSet *set);

/* A new connection is up (not called for the one qnic_chardev_wait_connected
 * made). The handler may call qnic_chardev_disconnect(). */
typedef void QnicChardevOpenedFunc(void *opaque, QnicChardev *chr);

/* Parse and check a -chardev string (no socket is touched): the checked
 * options, or NULL with QEMU-style errors ("chardev backend 'pty' is not
 * supported by qnic", "Parameter 'id' is missing", ...). */
QnicOpts *qnic_chardev_parse(const char *str, GError **errp);
/* Create from a -chardev string: a server listens (and, with wait=on,
 * blocks until a client connects, as QEMU does); a client without
 * reconnect connects now and fails if it cannot. Duplicate ids are
 * refused. */
QnicChardev *qnic_chardev_new_str(QnicChardevSet *set, const char *str, GError **errp);
/* Create from a connected stream socket (taken over: closed on free).
 * After a disconnect such a chardev stays disconnected. */
QnicChardev *qnic_chardev_new_fd(QnicChardevSet *set, const char *id, int fd, GError **errp);
QnicChardev *qnic_chardev_find(QnicChardevSet *set, const char *id);
/* Close and leave its set. */
void qnic_chardev_free(QnicChardev *chr);

const char *qnic_chardev_id(const QnicChardev *chr);
/* "unix:PATH,server=on" style description for messages. */
const char *qnic_chardev_describe(const QnicChardev *chr);

/* One user per chardev, as in QEMU ("Device 'c0' is in use"). */
bool qnic_chardev_claim(QnicChardev *chr, GError **errp);
void qnic_chardev_release(QnicChardev *chr);

/* The connected socket, or -1. */
int qnic_chardev_fd(const QnicChardev *chr);
bool qnic_chardev_connected(const QnicChardev *chr);
/* Block until connected, as QEMU's netdevs do at startup: a server accepts
 * one client; a client connects, retrying every reconnect seconds when
 * reconnect is set, else failing at once. */
bool qnic_chardev_wait_connected(QnicChardev *chr, GError **errp);
/* Watch for later connections (listening server, reconnecting client). */
void qnic_chardev_set_handler(QnicChardev *chr, QnicChardevOpenedFunc *cb, void *opaque);
/* Close the connection; a server accepts again, a client with reconnect=N
 * retries in N seconds. */
void qnic_chardev_disconnect(QnicChardev *chr);

#endif
