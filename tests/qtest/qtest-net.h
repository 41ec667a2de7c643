/*
 * The network peers the NIC qtests and the qtest benches hold: for
 * `-netdev socket,connect=`, a loopback TCP listener the target connects
 * to, with QEMU's stream framing (a 4-byte big-endian length, then the
 * frame) on the accepted connection; for `-netdev socket,udp=`, a loopback
 * UDP socket and the port the target listens on. And the test frame they
 * exchange.
 */
#ifndef QNIC_TESTS_QTEST_NET_H
#define QNIC_TESTS_QTEST_NET_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

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

/* A `-netdev socket,udp=` peer: the test holds fd, the target listens on
 * dev_port. */
typedef struct QtestUdpPeer {
    int fd;
    int dev_port;
} QtestUdpPeer;

/* Bind the peer (with an 8 MiB receive buffer) and pick a free port for
 * the target; returns the -netdev option (id n0), to be freed. */
char *qtest_udp_peer_open(QtestUdpPeer *p);
/* Send one datagram to the target (asserts it went out whole). */
void qtest_udp_peer_send(QtestUdpPeer *p, const void *buf, size_t len);
/* Receive one datagram: its length, or -1 after timeout_ms. */
ssize_t qtest_udp_peer_recv(QtestUdpPeer *p, void *buf, size_t len, int timeout_ms);

/* The Internet checksum (RFC 1071) of len bytes: the value to store in an
 * IPv4, ICMP or UDP checksum field that held 0 while it was summed. */
uint16_t qtest_net_csum(const void *data, size_t len);

/* A test frame of len bytes: to 52:54:00:12:34:56 from 02:00:00:00:00:01,
 * ethertype 0x88b5 (local experimental), payload byte i = i * 7 + tag. */
void qtest_net_make_frame(uint8_t *f, size_t len, uint8_t tag);

#endif
