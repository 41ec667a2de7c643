/*
 * The `-netdev socket,connect=` peer the NIC qtests hold: a loopback TCP
 * listener the target connects to, and QEMU's stream framing (a 4-byte
 * big-endian length, then the frame) on the accepted connection.
 */
#ifndef QNIC_TESTS_QTEST_NET_H
#define QNIC_TESTS_QTEST_NET_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct QtestNetPeer {
    int lfd, fd;
    int port;                   /* for -netdev socket,connect=127.0.0.1:port */
} QtestNetPeer;

/* Listen on a free loopback TCP port (asserts on failure). */
void qtest_net_peer_listen(QtestNetPeer *p);

/* Accept the target's connection; false if none came within 10 s. */
bool qtest_net_peer_accept(QtestNetPeer *p);

void qtest_net_peer_close(QtestNetPeer *p);

/* Send one frame with its length prefix (asserts the writes succeed). */
void qtest_net_peer_send(QtestNetPeer *p, const void *frame, size_t len);

/* Read exactly len bytes, each wait bounded by timeout_ms; false on
 * timeout, EOF or error. */
bool qtest_net_read_full(int fd, void *buf, size_t len, int timeout_ms);

#endif
