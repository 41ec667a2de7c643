/*
 * Device-side virtio-net throughput, with no guest CPU: a qtest client plays
 * the driver and keeps whole rings full, so what is timed is the device and
 * backend path (pop, map, send, push, notify) of the target, qnic-vmm
 * (-accel qtest) or QEMU 7.2 (-accel tcg with a halted CPU), driven by the
 * same byte-identical protocol traffic. The guest benchmarks (bench.py) are
 * bound by this host's instruction emulation of the test guest; this one is
 * bound by the device. Not a test: bench/qtest-bench.py runs it on both
 * targets and prints ratios.
 *
 * TX: every descriptor of the ring points at a prebuilt frame; one round
 * publishes the whole ring (one avail-idx write, or one descriptor table
 * write for packed rings), kicks once and polls until the device has used
 * it all. The frames leave through -netdev socket,udp= to a socket here.
 * RX: the ring is kept full of 2 KiB buffers and frames are sent from the
 * peer socket in chunks, at most two chunks in flight (the target's socket
 * buffer holds only so many); frames it dropped anyway are sent again after
 * 20 ms without progress and counted.
 *
 * lat: request/response latency through the device: one frame out of TX to
 * the peer socket, which sends it straight back into RX; FRAMES round trips,
 * median and p99 (the qtest socket's own round trips are in both targets'
 * numbers alike).
 *
 * usage: qtest-virtio-net tx|rx|lat modern|legacy|packed FRAME_BYTES FRAMES
 * prints: result dir=tx transport=modern size=64 frames=N time_us=T fps=F
 *         result dir=lat transport=modern size=64 frames=N median_us=M p99_us=P
 */
#include "libqtest.h"
#include "virtio-driver.h"
#include "qtest-net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define F(x) (1ull << (x))
#define STRIDE 2048u
#define RX_CHUNK 64u

static QtestUdpPeer peer;
static unsigned long long peer_rx;

/* Count (and discard) what the device sent; never blocks. */
static void peer_drain(void)
{
    static uint8_t buf[65536];
    while (recv(peer.fd, buf, sizeof(buf), MSG_DONTWAIT) > 0) {
        peer_rx++;
    }
}

/* One descriptor table image: split (16 bytes: addr len flags next) or
 * packed (16 bytes: addr len id flags) for the given wrap counter. */
static void build_descs(uint8_t *t, unsigned n, uint64_t bufs, uint32_t len, bool write, bool packed,
                        bool wrap)
{
    for (unsigned i = 0; i < n; i++) {
        uint8_t *d = t + 16 * i;
        uint64_t a = bufs + (uint64_t)i * STRIDE;
        uint16_t fl = write ? VRING_DESC_F_WRITE : 0;

        if (packed) {
            vring_encode_packed_desc(d, a, len, i, fl | vring_packed_avail_bits(wrap));
        } else {
            vring_encode_split_desc(d, a, len, fl, 0);
        }
    }
}

static gint64 now_us(void)
{
    return g_get_monotonic_time();
}

/* Buffers the device has used so far in this round (0..n). */
static unsigned used_count(VringDriver *q, uint16_t round_start, bool wrap, unsigned n)
{
    if (!q->packed) {
        return (uint16_t)(vring_split_used_idx(q) - round_start);
    }
    /* Packed: the device writes used descriptors in ring order from slot 0;
     * binary search for the last slot whose flags say used in this wrap. */
    unsigned lo = 0, hi = n;
    while (lo < hi) {
        unsigned mid = (lo + hi) / 2;
        uint64_t addr;
        uint32_t len;
        uint16_t id, fl;

        vring_packed_read_desc(q, mid, &addr, &len, &id, &fl);
        if (vring_packed_flags_used(fl, wrap)) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

static int cmp_us(const void *a, const void *b)
{
    gint64 x = *(const gint64 *)a, y = *(const gint64 *)b;
    return x < y ? -1 : x > y;
}

/* Request/response: one frame out of the TX queue to the peer socket,
 * which sends it straight back; the round trip ends when the driver sees
 * it in a used RX buffer. Both queues are set up; `pings` round trips
 * after 20 of warm-up. */
static int lat_run(QTestState *qts, VDev *d, unsigned hl, size_t size, unsigned pings, const char *mode)
{
    VringDriver *rxq = &d->q[0].vr, *txq = &d->q[1].vr;
    uint64_t rxb = qtest_guest_alloc(qts, (size_t)rxq->num * STRIDE, 4096);
    uint64_t txb = qtest_guest_alloc(qts, (size_t)txq->num * STRIDE, 4096);
    g_autofree gint64 *rtt = g_new(gint64, pings);
    uint8_t frame[STRIDE], back[STRIDE];
    uint16_t id;
    uint32_t len;

    for (unsigned i = 0; i < rxq->num; i++) {
        VringBuf b = { .addr = rxb + (uint64_t)i * STRIDE, .len = STRIDE, .write = true };
        vring_add(rxq, &b, 1);
    }
    vd_kick(d, 0);
    memset(frame, 0, hl);
    for (unsigned i = 0; i < pings + 20; i++) {
        unsigned slot = i % txq->num;
        VringBuf b = { .addr = txb + (uint64_t)slot * STRIDE, .len = hl + size };
        gint64 t0;
        ssize_t n;

        qtest_net_make_frame(frame + hl, size, (uint8_t)i);
        qtest_bufwrite(qts, b.addr, frame, hl + size);
        t0 = now_us();
        vring_add(txq, &b, 1);
        vd_kick(d, 1);
        n = qtest_udp_peer_recv(&peer, back, sizeof(back), 2000);
        if (n != (ssize_t)size) {
            fprintf(stderr, "lat: request %u did not reach the peer (%zd)\n", i, n);
            return 1;
        }
        qtest_udp_peer_send(&peer, back, size);
        /* poll without sleeping: each read is a qtest round trip already */
        while (!vring_get_used(rxq, &id, &len) && now_us() - t0 < 2000000) {
        }
        if (now_us() - t0 >= 2000000 || len != hl + size) {
            fprintf(stderr, "lat: response %u did not come back\n", i);
            return 1;
        }
        if (i >= 20) {
            rtt[i - 20] = now_us() - t0;
        }
        VringBuf r = { .addr = rxb + (uint64_t)id * STRIDE, .len = STRIDE, .write = true };
        vring_add_at(rxq, id, &r, 1);
        vd_kick(d, 0);
        while (vring_get_used(txq, &id, &len)) {
        }
    }
    qsort(rtt, pings, sizeof(*rtt), cmp_us);
    printf("result dir=lat transport=%s size=%zu frames=%u median_us=%lld p99_us=%lld\n", mode, size, pings,
           (long long)rtt[pings / 2], (long long)rtt[(pings - 1) * 99 / 100]);
    qtest_quit(qts);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s tx|rx|lat modern|legacy|packed FRAME_BYTES FRAMES\n", argv[0]);
        return 2;
    }
    bool tx = !strcmp(argv[1], "tx");
    const char *mode = argv[2];
    size_t size = strtoul(argv[3], NULL, 0);
    unsigned long long frames = strtoull(argv[4], NULL, 0);
    bool packed = !strcmp(mode, "packed"), legacy = !strcmp(mode, "legacy");
    if (size < 60 || size > 1514 || !frames) {
        fprintf(stderr, "FRAME_BYTES must be 60..1514 and FRAMES > 0\n");
        return 2;
    }

    g_autofree char *nd = qtest_udp_peer_open(&peer);
    QTestState *qts = qtest_initf(QTEST_FLAG_RUNNING, "%s -device virtio-net-pci,netdev=n0,addr=4%s", nd,
                                  legacy ? ",disable-modern=on" : packed ? ",packed=on" : "");
    VDev d;
    int devfn = vd_pci_find(qts, 0x1000);
    if (devfn < 0) {
        fprintf(stderr, "virtio-net-pci not found\n");
        return 1;
    }
    vd_pci_init(&d, qts, devfn, legacy ? VD_PCI_LEGACY : VD_PCI_MODERN);
    uint64_t want = F(VIRTIO_NET_F_MAC) | (legacy ? 0 : F(VIRTIO_F_VERSION_1)) |
                    (packed ? F(VIRTIO_F_RING_PACKED) : 0);
    if (!vd_negotiate(&d, want)) {
        fprintf(stderr, "FEATURES_OK refused\n");
        return 1;
    }
    vd_setup_queues(&d, 2, 0);
    vd_driver_ok(&d);
    unsigned hl = legacy ? 10 : 12;
    if (!strcmp(argv[1], "lat")) {
        return lat_run(qts, &d, hl, size, frames, mode);
    }
    unsigned qi = tx ? 1 : 0;
    VringDriver *q = &d.q[qi].vr;
    unsigned n = q->num;
    if (packed != q->packed) {
        fprintf(stderr, "ring type mismatch\n");
        return 1;
    }

    uint64_t bufs = qtest_guest_alloc(qts, (size_t)n * STRIDE, 4096);
    g_autofree uint8_t *img = g_malloc0((size_t)n * STRIDE);
    g_autofree uint8_t *descs = g_malloc0(16 * n);
    uint8_t frame[1514];
    uint32_t dlen = tx ? (uint32_t)(hl + size) : STRIDE;
    if (tx) {
        for (unsigned i = 0; i < n; i++) {
            qtest_net_make_frame(img + (size_t)i * STRIDE + hl, size, i);
        }
        qtest_bufwrite(qts, bufs, img, (size_t)n * STRIDE);
    }
    if (!packed) {
        /* Static split ring: slot i holds descriptor i forever, so a round
         * is just an avail-idx bump. */
        build_descs(descs, n, bufs, dlen, !tx, false, false);
        qtest_bufwrite(qts, q->desc, descs, 16 * n);
        for (unsigned i = 0; i < n; i++) {
            descs[2 * i] = (uint8_t)i;              /* avail ring entry i: head i */
            descs[2 * i + 1] = (uint8_t)(i >> 8);
        }
        qtest_bufwrite(qts, q->avail + 4, descs, 2 * n);
    }
    qtest_net_make_frame(frame, size, 0);

    bool wrap = true;
    uint16_t avail = 0;
    unsigned long long done = 0, sent = 0;
    unsigned long long resends = 0;
    unsigned chunk = size > 600 ? 16 : RX_CHUNK;
    gint64 t0 = now_us();
    while (done < frames) {
        uint16_t start = avail;
        if (packed) {
            build_descs(descs, n, bufs, dlen, !tx, true, wrap);
            qtest_bufwrite(qts, q->desc, descs, 16 * n);
        } else {
            avail += n;
            vring_split_set_avail_idx(q, avail);
        }
        vd_kick(&d, qi);
        unsigned got = 0;
        gint64 last_progress = now_us(), last_resend = 0;
        while (got < n) {
            if (!tx) {
                /* keep at most two chunks in flight */
                while (sent - done - got < 2 * chunk && sent < done + n) {
                    for (unsigned k = 0; k < chunk && sent < done + n; k++, sent++) {
                        qtest_udp_peer_send(&peer, frame, size);
                    }
                }
            } else {
                peer_drain();
            }
            unsigned u = used_count(q, start, wrap, n);
            if (u != got) {
                got = u;
                last_progress = now_us();
                last_resend = 0;
            } else if (now_us() - last_progress > 5000000) {
                fprintf(stderr, "stalled: %u of %u used after 5 s\n", got, n);
                return 1;
            } else if (!tx && sent > done + got && now_us() - MAX(last_progress, last_resend) > 20000) {
                /* frames dropped by the target's full socket buffer: send
                 * the missing ones again (counted in rx_resends) */
                resends += sent - done - got;
                sent = done + got;
                last_resend = now_us();
            } else if (tx) {
                g_usleep(50);
            }
        }
        done += n;
        wrap = !wrap;
    }
    gint64 dt = now_us() - t0;
    g_usleep(100000);
    peer_drain();
    printf("result dir=%s transport=%s size=%zu frames=%llu time_us=%lld fps=%llu peer_rx=%llu "
           "rx_resends=%llu\n", tx ? "tx" : "rx", mode, size, done, (long long)dt,
           dt ? done * 1000000ull / (unsigned long long)dt : 0, tx ? peer_rx : 0, resends);
    qtest_quit(qts);
    return 0;
}
