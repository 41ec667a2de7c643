/*
 * Fuzz target for the L2TPv3 decapsulation of `-netdev l2tpv3`: the pure
 * functions of backends/l2tpv3.h that check a datagram from the network
 * (an untrusted peer) and find the Ethernet frame in it. The first bytes
 * of the input pick the tunnel parameters, the rest is the datagram.
 * Besides ASan's bounds checks it asserts the contract: an accepted frame
 * lies inside the datagram and is at least an Ethernet header long, and a
 * header built with the same parameters around any frame parses back to
 * exactly that frame (what qnic sends, qnic accepts).
 */
#include "backends/l2tpv3.h"
#include "fuzz.h"
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FuzzIn in = { data, size };
    QnicL2tpv3Params p = { 0 };
    uint8_t f = fuzz_u8(&in);
    size_t off = 0, len = 0;
    QnicL2tpv3Error e;

    p.udp = f & 1;
    p.ipv6 = f & 2;
    p.cookie = f & 4;
    p.cookie64 = f & 8;
    p.counter = f & 16;
    p.pin_counter = f & 32;
    p.rx_session = fuzz_u32(&in);
    p.rx_cookie = fuzz_u64(&in);
    /* Mostly valid offsets, sometimes out of range (must be refused). */
    p.offset = fuzz_u16(&in) % (QNIC_L2TPV3_MAX_OFFSET + 64);
    p.tx_session = p.rx_session;
    p.tx_cookie = p.rx_cookie;

    e = qnic_l2tpv3_parse(&p, in.p, in.len, &off, &len);
    (void)qnic_l2tpv3_strerror(e);
    if (e == QNIC_L2TPV3_OK &&
        (off > in.len || len > in.len - off || len < QNIC_L2TPV3_MIN_FRAME)) {
        fprintf(stderr, "l2tpv3: accepted frame [%zu, +%zu) of a %zu-byte datagram\n",
                off, len, in.len);
        abort();
    }

    /* Round trip over UDP or IPv6 (no IP header in front); the payload of
     * the input is the frame. */
    if ((p.udp || p.ipv6) && p.offset <= QNIC_L2TPV3_MAX_OFFSET &&
        in.len >= QNIC_L2TPV3_MIN_FRAME) {
        uint8_t *pkt = g_malloc(QNIC_L2TPV3_MAX_HEADER + in.len);
        size_t h = qnic_l2tpv3_build_header(&p, 7, pkt, QNIC_L2TPV3_MAX_HEADER);

        if (h != qnic_l2tpv3_header_len(&p)) {
            fprintf(stderr, "l2tpv3: built %zu header bytes, header_len says %zu\n", h,
                    qnic_l2tpv3_header_len(&p));
            abort();
        }
        memcpy(pkt + h, in.p, in.len);
        e = qnic_l2tpv3_parse(&p, pkt, h + in.len, &off, &len);
        if (e != QNIC_L2TPV3_OK || off != h || len != in.len ||
            memcmp(pkt + off, in.p, len)) {
            fprintf(stderr, "l2tpv3: round trip failed: %s (off %zu len %zu, want %zu %zu)\n",
                    qnic_l2tpv3_strerror(e), off, len, h, in.len);
            abort();
        }
        g_free(pkt);
    }
    return 0;
}
