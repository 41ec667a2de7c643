/*
 * L2TPv3 (RFC 3931) Ethernet pseudowire framing as QEMU's l2tpv3 netdev
 * puts it on the wire, as pure functions with no sockets or state so that
 * the decapsulation can be unit-tested and fuzzed on its own.
 *
 * Layout of one datagram (all fields big endian):
 *   [IPv4 header]     only on receive, raw IP over IPv4 (the kernel keeps it)
 *   [00 03 00 00]     only over UDP: T=0 (data), version 3, reserved
 *   session id        32 bits
 *   [cookie]          32 or 64 bits, when txcookie/rxcookie are set
 *   [counter]         32 bits, when counter=on (0 with pincounter=on)
 *   [offset bytes]    `offset` bytes of padding
 *   Ethernet frame
 */
#ifndef QNIC_BACKENDS_L2TPV3_H
#define QNIC_BACKENDS_L2TPV3_H

#include "qnic/common.h"

#define QNIC_L2TPV3_UDP_DATA_WORD 0x00030000u   /* T=0, Ver=3 */
#define QNIC_L2TPV3_MAX_OFFSET 1024             /* padding bytes we accept */
#define QNIC_L2TPV3_MAX_HEADER (4 + 4 + 8 + 4 + QNIC_L2TPV3_MAX_OFFSET)
#define QNIC_L2TPV3_MIN_FRAME 14                /* an Ethernet header */

typedef struct QnicL2tpv3Params {
    bool udp;              /* UDP encapsulation, else raw IP protocol 115 */
    bool ipv6;             /* raw IPv4 packets arrive with their IP header */
    bool cookie;           /* tx_cookie/rx_cookie present */
    bool cookie64;         /* 64-bit cookies, else 32-bit */
    bool counter;          /* 32-bit counter (L2-specific sublayer) */
    bool pin_counter;      /* send the counter as 0 */
    uint32_t tx_session;
    uint32_t rx_session;
    uint64_t tx_cookie;
    uint64_t rx_cookie;
    uint32_t offset;       /* <= QNIC_L2TPV3_MAX_OFFSET */
} QnicL2tpv3Params;

typedef enum {
    QNIC_L2TPV3_OK = 0,
    QNIC_L2TPV3_ERR_SHORT,      /* shorter than the headers */
    QNIC_L2TPV3_ERR_IP,         /* bad IPv4 header (raw IP over IPv4) */
    QNIC_L2TPV3_ERR_DATA_WORD,  /* UDP: control message or not version 3 */
    QNIC_L2TPV3_ERR_SESSION,    /* session id is not rx_session */
    QNIC_L2TPV3_ERR_COOKIE,     /* cookie is not rx_cookie */
    QNIC_L2TPV3_ERR_RUNT,       /* payload shorter than an Ethernet header */
    QNIC_L2TPV3_ERR_PARAMS,     /* parameters out of range */
} QnicL2tpv3Error;

/* Length of the header qnic_l2tpv3_build_header() writes (no IP header). */
size_t qnic_l2tpv3_header_len(const QnicL2tpv3Params *p);

/* Write the header for a frame into buf (size bytes). counter is the value
 * to send when p->counter && !p->pin_counter. Returns the header length, or
 * 0 if buf is too small or p is out of range. */
size_t qnic_l2tpv3_build_header(const QnicL2tpv3Params *p, uint32_t counter,
                                uint8_t *buf, size_t size);

/* Check one received datagram. On QNIC_L2TPV3_OK the Ethernet frame is
 * pkt[*frame_off .. *frame_off + *frame_len). Never reads outside pkt. */
QnicL2tpv3Error qnic_l2tpv3_parse(const QnicL2tpv3Params *p, const uint8_t *pkt,
                                  size_t len, size_t *frame_off, size_t *frame_len);

const char *qnic_l2tpv3_strerror(QnicL2tpv3Error e);

#endif
