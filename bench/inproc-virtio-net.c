/*
 * virtio-net's device path alone, in one process: no VM exits, no qtest
 * socket, no system call per frame. The qtest benchmark (qtest-virtio-net.c)
 * times the target process plus a socket round trip per access and the
 * guest benchmarks time this host's instruction emulation; neither can show
 * what the device itself costs per frame, which is what the data-path work
 * of issue 15 changes. Here a machine is built in-process (as
 * tests/unit/test-virtio-net.c does), a modern virtio-net-pci is brought up
 * through its BAR4 registers by the driver-side ring library
 * (tests/lib/vring-driver.h), and its net client is peered with a client of
 * this program's:
 *   tx  the driver posts 12-byte-header + frame buffers, kicks the TX queue
 *       (a store to the notify register, as a VM exit would deliver it),
 *       runs the bottom halves the kick scheduled, and takes the used
 *       entries back; the peer is a null backend that counts and drops.
 *   rx  the peer is a frame generator sending straight into the NIC; the
 *       driver keeps the RX ring full of 2 KiB buffers and takes them back.
 * Split or packed ring, any frame size, a fixed frame count (so that a
 * callgrind run, whose collection bench/inproc-bench.py limits to the
 * functions named *_loop here, divides its instruction count by it). The
 * driver side is part of what is counted; the harness reports the device's
 * share (everything below the notify store, the bottom halves and the
 * generator's send) apart.
 *
 * Not a test and never run by meson test: a rate is printed, not asserted.
 * The program checks that every frame arrived whole and exits 1 if not.
 *
 * usage: inproc-virtio-net tx|rx split|packed FRAME_BYTES FRAMES [BURST]
 * prints: result dir=tx ring=split size=64 frames=N time_us=T fps=F cpu_us=C fps_cpu=G
 * (fps over wall time; fps_cpu over the process's CPU time, i.e. frames per
 * second of one core, which a busy shared host disturbs less)
 */
#include "qnic/backends.h"
#include "qnic/machine.h"
#include "qnic/pci.h"
#include "qnic/net.h"
#include "qnic/mainloop.h"
#include "vring-host.h"

#include <linux/pci_regs.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>
#include <linux/virtio_pci.h>
#include <linux/virtio_ring.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BAR4_BASE 0xe0000000ull
#define RAM_SIZE (32u * 1024 * 1024)
#define RXQ_GPA 0x100000ull
#define TXQ_GPA 0x110000ull
#define TXBUF_GPA 0x200000ull
#define RXBUF_GPA 0x400000ull
#define STRIDE 2048u
#define RING 256u
#define HDR 12u                 /* virtio_net_hdr_mrg_rxbuf (VERSION_1) */
#define CC(field) offsetof(struct virtio_pci_common_cfg, field)
#define F(x) (1ull << (x))

typedef struct {
    QnicBackends *be;
    QnicMachine *m;
    QnicDevice *dev;
    QnicNetClient *nic;         /* the device's client */
    QnicNetClient *peer;        /* ours: null backend or generator */
    VringHostRam ram;
    VringMem mem;
    VringDriver vq[2];          /* RX, TX */
    uint8_t *base;              /* guest RAM at 0 */
    unsigned long long sink_frames, sink_bytes, sink_bad;
    size_t size;
} Bench;

static void on_gsi(void *opaque, unsigned gsi, int level)
{
    (void)opaque, (void)gsi, (void)level;
}

/* The null backend: counts what the device sent and checks its length. */
static ssize_t null_receive(QnicNetClient *nc, const struct iovec *iov, int iovcnt)
{
    Bench *b = nc->opaque;
    size_t len = qnic_iov_size(iov, iovcnt);

    b->sink_frames++;
    b->sink_bytes += len;
    b->sink_bad += len != b->size;
    return len;
}

static const QnicNetClientOps peer_ops = {
    .kind = QNIC_NET_CLIENT_OTHER,
    .receive_iov = null_receive,
};

static void die(const char *what)
{
    fprintf(stderr, "inproc-virtio-net: %s\n", what);
    exit(1);
}

static void bar4_write(Bench *b, uint64_t off, unsigned size, uint32_t v)
{
    if (!qnic_as_store(&b->m->mem, BAR4_BASE + off, size, v)) {
        die("BAR4 store failed");
    }
}

static uint32_t bar4_read(Bench *b, uint64_t off, unsigned size)
{
    uint64_t v = 0;

    if (!qnic_as_load(&b->m->mem, BAR4_BASE + off, size, &v)) {
        die("BAR4 load failed");
    }
    return v;
}

static void notify(Bench *b, unsigned q)
{
    bar4_write(b, 0x3000 + 4 * q, 2, q);
}

/* The machine, a virtio-net-pci without a netdev, and our client as the
 * peer of its net client (the device sees a backend without vnet headers,
 * as with -netdev socket or user: it strips and adds the header itself). */
static void bench_machine(Bench *b, bool packed)
{
    QnicMachineConfig cfg = { .ram_size = RAM_SIZE, .set_gsi = on_gsi, .opaque = b };
    g_autoptr(GError) err = NULL;
    QnicPciDevice *pd;

    b->be = qnic_backends_new();
    cfg.backends = b->be;

    b->m = qnic_machine_new(&cfg, &err);
    if (!b->m) {
        die(err->message);
    }
    b->mem = vring_host_machine_mem(&b->ram, b->m, RAM_SIZE);
    b->base = b->ram.base;
    b->dev = qnic_device_create_str(b->m, packed ? "virtio-net-pci,id=bench-nic,addr=4,packed=on"
                                                : "virtio-net-pci,id=bench-nic,addr=4", &err);
    if (!b->dev) {
        die(err->message);
    }
    pd = (QnicPciDevice *)b->dev;
    qnic_pci_config_write(pd, PCI_BASE_ADDRESS_4, (uint32_t)BAR4_BASE, 4);
    qnic_pci_config_write(pd, PCI_BASE_ADDRESS_5, BAR4_BASE >> 32, 4);
    qnic_pci_config_write(pd, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 2);
    b->nic = qnic_net_client_find_link(b->be, "bench-nic");
    if (!b->nic) {
        die("the device's net client is not found");
    }
    b->peer = qnic_net_client_new(b->be, &peer_ops, "bench", "bench", b);
    qnic_net_client_set_peer(b->nic, b->peer);
}

/* Reset, negotiate, RX and TX rings (desc +0, avail/driver area +0x1000,
 * used/device area +0x2000), interrupts off in the rings, DRIVER_OK. */
static void driver_up(Bench *b, bool packed)
{
    uint64_t want = F(VIRTIO_F_VERSION_1) | F(VIRTIO_NET_F_MAC) | F(VIRTIO_NET_F_MRG_RXBUF) |
                    (packed ? F(VIRTIO_F_RING_PACKED) : 0);
    uint64_t offered;
    const uint8_t st = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER;

    bar4_write(b, CC(device_status), 1, 0);
    bar4_write(b, CC(device_status), 1, st);
    bar4_write(b, CC(device_feature_select), 4, 0);
    offered = bar4_read(b, CC(device_feature), 4);
    bar4_write(b, CC(device_feature_select), 4, 1);
    offered |= (uint64_t)bar4_read(b, CC(device_feature), 4) << 32;
    if ((offered & want) != want) {
        die("the device does not offer VERSION_1, MAC, MRG_RXBUF (and RING_PACKED)");
    }
    bar4_write(b, CC(guest_feature_select), 4, 0);
    bar4_write(b, CC(guest_feature), 4, (uint32_t)want);
    bar4_write(b, CC(guest_feature_select), 4, 1);
    bar4_write(b, CC(guest_feature), 4, want >> 32);
    bar4_write(b, CC(device_status), 1, st | VIRTIO_CONFIG_S_FEATURES_OK);
    for (unsigned q = 0; q < 2; q++) {
        uint64_t g = q ? TXQ_GPA : RXQ_GPA;

        bar4_write(b, CC(queue_select), 2, q);
        memset(b->base + g, 0, 0x3000);
        vring_driver_init(&b->vq[q], &b->mem, RING, packed, g, g + 0x1000, g + 0x2000);
        bar4_write(b, CC(queue_size), 2, RING);
        bar4_write(b, CC(queue_desc_lo), 4, (uint32_t)g);
        bar4_write(b, CC(queue_desc_hi), 4, g >> 32);
        bar4_write(b, CC(queue_avail_lo), 4, (uint32_t)(g + 0x1000));
        bar4_write(b, CC(queue_avail_hi), 4, (g + 0x1000) >> 32);
        bar4_write(b, CC(queue_used_lo), 4, (uint32_t)(g + 0x2000));
        bar4_write(b, CC(queue_used_hi), 4, (g + 0x2000) >> 32);
        bar4_write(b, CC(queue_msix_vector), 2, VIRTIO_MSI_NO_VECTOR);
        bar4_write(b, CC(queue_enable), 2, 1);
        /* a polling driver: no used-buffer interrupts */
        if (packed) {
            vring_packed_set_driver_event(&b->vq[q], 0, VRING_PACKED_EVENT_FLAG_DISABLE);
        } else {
            vring_split_set_avail_flags(&b->vq[q], VRING_AVAIL_F_NO_INTERRUPT);
        }
    }
    bar4_write(b, CC(device_status), 1, st | VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
    if (bar4_read(b, CC(device_status), 1) & VIRTIO_CONFIG_S_NEEDS_RESET) {
        die("the device wants a reset after DRIVER_OK");
    }
}

/* An Ethernet/IPv4/UDP frame of `len` bytes (len >= 42), payload a
 * counting pattern. */
static void make_frame(uint8_t *p, size_t len)
{
    static const uint8_t head[34] = {
        0x52, 0x54, 0x00, 0x12, 0x34, 0x57, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x08, 0x00,
        0x45, 0x00, 0, 0, 0, 0, 0x40, 0x00, 64, 17, 0, 0, 192, 168, 77, 2, 192, 168, 77, 1,
    };

    memcpy(p, head, sizeof(head));
    p[16] = (len - 14) >> 8;
    p[17] = (len - 14) & 0xff;
    p[34] = 0x13, p[35] = 0x88, p[36] = 0x13, p[37] = 0x89;    /* ports 5000 -> 5001 */
    p[38] = (len - 34) >> 8;
    p[39] = (len - 34) & 0xff;
    p[40] = p[41] = 0;
    for (size_t i = 42; i < len; i++) {
        p[i] = (uint8_t)i;
    }
}

/* TX: `burst` buffers made available per kick, the bottom halves run, the
 * used ring drained. Returns the frames completed. */
static unsigned long long __attribute__((noinline)) tx_loop(Bench *b, unsigned long long frames,
                                                            unsigned burst)
{
    VringDriver *r = &b->vq[1];
    unsigned long long sent = 0, done = 0, stall = 0;
    uint16_t id;
    uint32_t len;

    while (done < frames) {
        unsigned k = MIN(MIN(burst, frames - sent), RING - (sent - done));

        for (unsigned i = 0; i < k; i++, sent++) {
            uint16_t slot = sent % RING;
            VringBuf buf = { .addr = TXBUF_GPA + (uint64_t)slot * STRIDE, .len = HDR + b->size };

            vring_add_at(r, slot, &buf, 1);
        }
        if (k && vring_kick_wanted(r)) {
            notify(b, 1);
        }
        qnic_bh_poll();
        stall++;
        while (vring_get_used(r, &id, &len)) {
            done++;
            stall = 0;
        }
        if (stall > 1000000) {
            die("tx: the device stopped taking buffers");
        }
    }
    return done;
}

/* RX: the generator sends `burst` frames to the NIC, the driver takes the
 * used buffers back and makes them available again. */
static unsigned long long __attribute__((noinline)) rx_loop(Bench *b, unsigned long long frames,
                                                            unsigned burst, const uint8_t *frame)
{
    VringDriver *r = &b->vq[0];
    unsigned long long sent = 0, done = 0, stall = 0;
    uint16_t id;
    uint32_t len;

    while (done < frames) {
        unsigned k = MIN(burst, frames - sent);
        bool posted = false;

        for (unsigned i = 0; i < k; i++, sent++) {
            qnic_net_send(b->peer, frame, b->size);
        }
        stall++;
        while (vring_get_used(r, &id, &len)) {
            VringBuf buf = { .addr = RXBUF_GPA + (uint64_t)id * STRIDE, .len = STRIDE, .write = true };

            if (len != HDR + b->size) {
                die("rx: a used buffer has the wrong length");
            }
            vring_add_at(r, id, &buf, 1);
            posted = true;
            done++;
            stall = 0;
        }
        if (posted && vring_kick_wanted(r)) {
            notify(b, 0);
        }
        if (stall > 1000000) {
            die("rx: the device stopped filling buffers");
        }
    }
    return done;
}

static gint64 cpu_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec * G_GINT64_CONSTANT(1000000) + ts.tv_nsec / 1000;
}

static void rx_fill(Bench *b)
{
    for (unsigned i = 0; i < RING; i++) {
        VringBuf buf = { .addr = RXBUF_GPA + (uint64_t)i * STRIDE, .len = STRIDE, .write = true };

        vring_add_at(&b->vq[0], i, &buf, 1);
    }
    notify(b, 0);
}

int main(int argc, char **argv)
{
    static Bench b;
    static uint8_t frame[STRIDE];
    unsigned long long frames, done;
    unsigned burst = 32;
    bool tx, packed;
    gint64 t0, t1, c0, c1;

    if (argc < 5 || argc > 6) {
        fprintf(stderr, "usage: %s tx|rx split|packed FRAME_BYTES FRAMES [BURST]\n", argv[0]);
        return 2;
    }
    tx = !strcmp(argv[1], "tx");
    packed = !strcmp(argv[2], "packed");
    b.size = strtoul(argv[3], NULL, 0);
    frames = strtoull(argv[4], NULL, 0);
    if (argc == 6) {
        burst = strtoul(argv[5], NULL, 0);
    }
    if ((!tx && strcmp(argv[1], "rx")) || (!packed && strcmp(argv[2], "split")) || b.size < 42 ||
        b.size > STRIDE - HDR || !frames || !burst || burst > RING) {
        fprintf(stderr, "inproc-virtio-net: bad arguments\n");
        return 2;
    }
    qnic_bql_lock();
    bench_machine(&b, packed);
    driver_up(&b, packed);
    make_frame(frame, b.size);
    if (tx) {
        for (unsigned i = 0; i < RING; i++) {
            memset(b.base + TXBUF_GPA + (uint64_t)i * STRIDE, 0, HDR);
            memcpy(b.base + TXBUF_GPA + (uint64_t)i * STRIDE + HDR, frame, b.size);
        }
    } else {
        rx_fill(&b);
    }

    c0 = cpu_us();
    t0 = g_get_monotonic_time();
    done = tx ? tx_loop(&b, frames, burst) : rx_loop(&b, frames, burst, frame);
    t1 = g_get_monotonic_time();
    c1 = cpu_us();

    if (tx && (b.sink_frames != frames || b.sink_bad)) {
        fprintf(stderr, "inproc-virtio-net: the backend got %llu frames (%llu of a wrong length) of %llu\n",
                b.sink_frames, b.sink_bad, frames);
        return 1;
    }
    if (!tx && memcmp(b.base + RXBUF_GPA + HDR, frame, b.size)) {
        fprintf(stderr, "inproc-virtio-net: a received frame differs from the one sent\n");
        return 1;
    }
    printf("result dir=%s ring=%s size=%zu frames=%llu time_us=%lld fps=%.0f cpu_us=%lld fps_cpu=%.0f\n",
           argv[1], argv[2], b.size, done, (long long)(t1 - t0), done * 1e6 / (double)MAX(t1 - t0, 1),
           (long long)(c1 - c0), done * 1e6 / (double)MAX(c1 - c0, 1));
    qnic_device_destroy(b.dev);
    qnic_net_client_free(b.peer);
    qnic_machine_free(b.m);
    qnic_backends_free(b.be);
    return 0;
}
