/*
 * Generic device fuzzer in the style of QEMU's generic-fuzz: every input is
 * a program of operations run against a freshly built machine holding one
 * NIC (chosen at build time by FUZZ_DEVICE / FUZZ_NETDEVS): MMIO and port
 * accesses aimed at the device's BARs (or its virtio-mmio window) and its
 * config space, writes into guest RAM (rings, descriptors, buffers), clock
 * steps, frames arriving from the backend and link changes, and the
 * shapes a hostile guest or peer uses to make the host hold memory: a
 * descriptor table of many large descriptors over the same pages (one
 * frame of gigabytes) and wire frames past the largest legal size; the
 * sink aborts if a frame over QNIC_NET_MAX_FRAME ever reaches it. The
 * machine is
 * torn down after each input so state never leaks between inputs, and
 * LeakSanitizer sees every allocation returned.
 *
 * Built with FUZZ_STATE (the state-* targets), op byte 0xff saves the
 * device's state (qnic/state.h), patches it as the input says, fixes the
 * sections' checksums or not, and loads it back: a stream refused must
 * leave the device as it was (its state saved again is byte for byte the
 * same), and whatever state a stream loads, the ops after it run the
 * device on it.
 */
#include "qnic/machine.h"
#include "qnic/pci.h"
#include "qnic/net.h"
#include "qnic/clock.h"
#include "qnic/mainloop.h"
#include "qnic/log.h"
#include "qnic/state.h"
#include "fuzz.h"
#include "vring-driver.h"
#include "../lib/test-backends.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/virtio_ring.h>
#include <zlib.h>

/* FUZZ_DEVICE names one -device string; FUZZ_DEVICES (fuzz-multi.c) lists
 * several PCI NICs on one machine, so that one device's DMA can reach
 * another's registers (the cross-device reentrancy class). With several
 * devices the BAR selector byte ranges over all their BARs and each config
 * op takes one more byte first (which device); with one, the encoding is
 * unchanged. */
#ifdef FUZZ_DEVICE
#define FUZZ_DEVICES FUZZ_DEVICE
#endif
#ifndef FUZZ_DEVICES
#error "FUZZ_DEVICE must name the -device string"
#endif
#ifndef FUZZ_NETDEVS
#define FUZZ_NETDEVS "hubport,id=n0,hubid=0", "hubport,id=peer,hubid=0"
#endif

#define RAM_SIZE (16u << 20)
#define MMIO_BASE 0xe0000000ull
#define IO_BASE 0xc000u
#define VIRTIO_MMIO_WINDOW 0xfeb00000ull
#define MAX_OPS 2048

static const char *const netdevs[] = { FUZZ_NETDEVS, NULL };
static const char *const devices[] = { FUZZ_DEVICES, NULL };
#define MAX_DEVS 4

/* What a replay can check after an input ran (see fuzz.h). */
uint64_t fuzz_frames_out;
void (*fuzz_after_run)(QnicMachine *m);

/* The far end of the backend: a client the fuzzer sends frames from. */
static ssize_t sink_receive(QnicNetClient *nc, const struct iovec *iov, int iovcnt)
{
    size_t len = qnic_iov_size(iov, iovcnt);

    if (len > QNIC_NET_MAX_FRAME) {
        fprintf(stderr, "fuzz: a %zu-byte frame reached the backend\n", len);
        abort();
    }
    fuzz_frames_out++;
    return (ssize_t)len;
}

static const QnicNetClientOps sink_ops = {
    .kind = QNIC_NET_CLIENT_OTHER,
    .receive_iov = sink_receive,
};

typedef struct {
    QnicMachine *m;
    QnicDevice *dev;
    QnicPciDevice *pci;             /* the first device, if PCI */
    QnicPciDevice *pcis[MAX_DEVS];  /* every PCI device */
    unsigned npci;
    QnicNetClient *peer;
    QnicNetClient *peer_backend;
    uint64_t bar_addr[QNIC_PCI_NUM_BARS * MAX_DEVS];
    uint64_t bar_size[QNIC_PCI_NUM_BARS * MAX_DEVS];
    bool bar_io[QNIC_PCI_NUM_BARS * MAX_DEVS];
    unsigned nbars;
    int bar_index[QNIC_PCI_NUM_BARS * MAX_DEVS];
} Ctx;

/* Assign d's BARs from *mmio / *io upwards and enable it. */
static void place_device_bars(Ctx *c, QnicPciDevice *d, uint64_t *mmio, uint32_t *io)
{
    for (int i = 0; i < QNIC_PCI_NUM_BARS; i++) {
        QnicPciBar *b = &d->bars[i];
        unsigned off = PCI_BASE_ADDRESS_0 + 4 * i;
        if (!b->region) {
            continue;
        }
        if (b->type & QNIC_PCI_BAR_IO) {
            *io = QNIC_ALIGN_UP(*io, (uint32_t)b->size);
            qnic_pci_config_write(d, off, *io, 4);
            c->bar_addr[c->nbars] = *io;
            *io += b->size;
        } else {
            *mmio = QNIC_ALIGN_UP(*mmio, b->size);
            qnic_pci_config_write(d, off, (uint32_t)*mmio, 4);
            if (b->type & QNIC_PCI_BAR_MEM64) {
                qnic_pci_config_write(d, off + 4, (uint32_t)(*mmio >> 32), 4);
            }
            c->bar_addr[c->nbars] = *mmio;
            *mmio += b->size;
        }
        c->bar_size[c->nbars] = b->size;
        c->bar_io[c->nbars] = b->type & QNIC_PCI_BAR_IO;
        c->bar_index[c->nbars] = i;
        c->nbars++;
    }
    qnic_pci_config_write(d, PCI_COMMAND,
                          PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 2);
}

static void place_bars(Ctx *c)
{
    uint64_t mmio = MMIO_BASE;
    uint32_t io = IO_BASE;

    c->nbars = 0;       /* placed again after each system reset */
    for (unsigned k = 0; k < c->npci; k++) {
        place_device_bars(c, c->pcis[k], &mmio, &io);
    }
}

static bool setup(Ctx *c)
{
    QnicMachineConfig cfg = { .ram_size = RAM_SIZE };
    g_autoptr(GError) err = NULL;

    memset(c, 0, sizeof(*c));
    fuzz_frames_out = 0;
    qnic_clock_set_mode(QNIC_CLOCK_MANUAL);
    qnic_clock_reset();
    cfg.backends = test_backends();
    c->m = qnic_machine_new(&cfg, &err);
    if (!c->m) {
        fprintf(stderr, "fuzz: machine: %s\n", err->message);
        abort();
    }
    for (int i = 0; netdevs[i]; i++) {
        if (!qnic_netdev_add_str(test_backends(), netdevs[i], &err)) {
            fprintf(stderr, "fuzz: -netdev %s: %s\n", netdevs[i], err->message);
            abort();
        }
    }
    for (int i = 0; devices[i] && i < MAX_DEVS; i++) {
        QnicDevice *d = qnic_device_create_str(c->m, devices[i], &err);
        if (!d) {
            fprintf(stderr, "fuzz: -device %s: %s\n", devices[i], err->message);
            abort();
        }
        if (!c->dev) {
            c->dev = d;
        }
        if (d->cls->bus && g_str_equal(d->cls->bus, "pci")) {
            c->pcis[c->npci++] = (QnicPciDevice *)d;
        }
    }
    if (c->npci && c->dev == &c->pcis[0]->dev) {
        c->pci = c->pcis[0];
        place_bars(c);
    }
    QnicNetdev *pn = qnic_netdev_find(test_backends(), "peer");
    if (pn && pn->queues > 0) {
        c->peer = qnic_net_client_new(test_backends(), &sink_ops, "fuzz-peer", "fuzz-peer", c);
        c->peer_backend = pn->ncs[0];
        qnic_net_client_set_peer(c->peer, c->peer_backend);
    }
    return true;
}

static void teardown(Ctx *c)
{
    qnic_machine_free(c->m);
    if (c->peer) {
        qnic_net_client_free(c->peer);
    }
    qnic_netdev_del_all(test_backends());
    qnic_bh_poll();
    qnic_clock_reset();
}

/* Address for an access: into a BAR of the PCI device, or the virtio-mmio
 * window of a sysbus device. */
static bool target(Ctx *c, FuzzIn *in, uint64_t *addr, bool *is_io)
{
    uint8_t sel = fuzz_u8(in);
    uint32_t off = fuzz_u32(in);

    if (c->pci) {
        if (!c->nbars) {
            return false;
        }
        unsigned b = sel % c->nbars;
        *addr = c->bar_addr[b] + (off % c->bar_size[b]);
        *is_io = c->bar_io[b];
    } else {
        *addr = VIRTIO_MMIO_WINDOW + (off % 0x200);
        *is_io = false;
    }
    return true;
}

static unsigned access_size(uint8_t b)
{
    static const unsigned sizes[] = { 1, 2, 4, 8 };
    return sizes[b & 3];
}

/* Op 11: count descriptors (split layout: addr, len, flags, next = i + 1;
 * packed: addr, len, id, flags), all over the same buffer, NEXT on all
 * but the last. With a length up to 8 MiB, 255 of them are a 2 GiB chain
 * made of 8 MiB of RAM. */
static void desc_fill(Ctx *c, FuzzIn *in)
{
    unsigned count = fuzz_u8(in) + 1;
    uint8_t mode = fuzz_u8(in);
    uint32_t table = fuzz_u32(in) % RAM_SIZE;
    uint64_t buf = fuzz_u32(in) % RAM_SIZE;
    uint32_t len = fuzz_u32(in) % ((8u << 20) + 1);
    uint16_t flags = fuzz_u16(in);

    for (unsigned i = 0; i < count && table + 16ull * (i + 1) <= RAM_SIZE; i++) {
        uint16_t f = flags | (i + 1 < count ? VRING_DESC_F_NEXT : 0);
        uint8_t d[16];
        if (mode & 1) {             /* packed: id 0, the flags carry avail/used */
            vring_encode_packed_desc(d, buf, len, 0, f);
        } else {
            vring_encode_split_desc(d, buf, len, f, (uint16_t)(i + 1));
        }
        qnic_as_rw(&c->m->mem, table + 16ull * i, d, sizeof(d), true);
    }
}

/* Op 12: a frame from the wire of up to twice the largest legal size:
 * a head of up to 255 bytes from the input, then a fixed pattern. */
static void big_frame(Ctx *c, FuzzIn *in)
{
    static uint8_t frame[2 * QNIC_NET_MAX_FRAME];
    uint32_t len = fuzz_u32(in) % sizeof(frame);
    uint8_t head = fuzz_u8(in);
    size_t got = fuzz_bytes(in, frame, MIN((uint32_t)head, len));

    memset(frame + got, 0xa5, len - got);
    if (c->peer && len) {
        qnic_net_send(c->peer, frame, len);
    }
}

#ifdef FUZZ_STATE
/* Give every whole section of the stream its right CRC again, so that
 * patches reach the field checks instead of stopping at the checksum. */
static void fix_crcs(uint8_t *p, size_t len)
{
    size_t pos = 0;
    while (len - pos >= 2 && p[pos] == 'S') {
        size_t hdr = 2 + p[pos + 1] + 8;
        uint32_t body;
        if (len - pos < hdr) {
            return;
        }
        memcpy(&body, p + pos + hdr - 4, 4);
        if (len - pos - hdr < (size_t)body + 4) {
            return;
        }
        uint32_t crc = (uint32_t)crc32(0L, p + pos, (uInt)(hdr + body));
        memcpy(p + pos + hdr + body, &crc, 4);
        pos += hdr + body + 4;
    }
}

static void state_op(Ctx *c, FuzzIn *in)
{
    g_autoptr(GByteArray) before = g_byte_array_new();
    g_autoptr(GByteArray) after = g_byte_array_new();
    g_autoptr(GError) err = NULL;
    uint8_t npatch = fuzz_u8(in) % 16, flags = fuzz_u8(in);

    if (!qnic_device_save_state(c->dev, before, NULL)) {
        return;                 /* a model that cannot save yet */
    }
    g_autoptr(GByteArray) s = g_byte_array_sized_new(before->len);
    g_byte_array_append(s, before->data, before->len);
    for (unsigned i = 0; i < npatch && s->len; i++) {
        uint32_t off = fuzz_u32(in) % s->len;
        uint8_t v = fuzz_u8(in);
        s->data[off] = (flags & 2) ? v : s->data[off] ^ v;
    }
    if (flags & 4) {
        g_byte_array_set_size(s, fuzz_u32(in) % (s->len + 1));
    }
    if (flags & 1) {
        fix_crcs(s->data, s->len);
    }
    if (qnic_device_load_state(c->dev, s->data, s->len, &err)) {
        return;
    }
    if (!qnic_device_save_state(c->dev, after, NULL) || after->len != before->len ||
        memcmp(after->data, before->data, before->len) != 0) {
        fprintf(stderr, "fuzz: a refused state stream changed the device (%s)\n",
                err->message);
        abort();
    }
}
#endif

static void run(Ctx *c, const uint8_t *data, size_t size)
{
    FuzzIn in = { data, size };
    uint8_t frame[2048];

    for (unsigned n = 0; n < MAX_OPS && in.len; n++) {
        uint8_t op = fuzz_u8(&in);
        uint64_t addr, v;
        bool io;
        unsigned sz;

#ifdef FUZZ_STATE
        if (op == 0xff) {
            state_op(c, &in);
            continue;
        }
#endif
        /* Ops 11 and 12 came later: bytes from 13 up keep the meaning
         * (op % 11) they had, so earlier corpora and reproducers still
         * replay the same. */
        switch (op < 13 ? op : op % 11) {
        case 0: /* device register write */
            if (target(c, &in, &addr, &io)) {
                sz = access_size(fuzz_u8(&in));
                v = fuzz_u64(&in);
                if (io && sz == 8) {
                    sz = 4;
                }
                qnic_as_store(io ? &c->m->io : &c->m->mem, addr, sz, v);
            }
            break;
        case 1: /* device register read */
            if (target(c, &in, &addr, &io)) {
                sz = access_size(fuzz_u8(&in));
                if (io && sz == 8) {
                    sz = 4;
                }
                qnic_as_load(io ? &c->m->io : &c->m->mem, addr, sz, &v);
            }
            break;
        case 2: /* config write (also remaps BARs, toggles bus mastering) */
            if (c->pci) {
                QnicPciDevice *d = c->npci > 1 ? c->pcis[fuzz_u8(&in) % c->npci] : c->pci;
                uint8_t off = fuzz_u8(&in);
                sz = access_size(fuzz_u8(&in)) & 7;
                v = fuzz_u32(&in);
                if (sz == 8) {
                    sz = 4;
                }
                qnic_pci_config_write(d, off & ~(sz - 1), (uint32_t)v, sz);
            }
            break;
        case 3: /* config read */
            if (c->pci) {
                QnicPciDevice *d = c->npci > 1 ? c->pcis[fuzz_u8(&in) % c->npci] : c->pci;
                qnic_pci_config_read(d, fuzz_u8(&in), 4);
            }
            break;
        case 4: { /* RAM write: rings, descriptors and buffers */
            uint32_t a = fuzz_u32(&in) % RAM_SIZE;
            uint8_t len = fuzz_u8(&in);
            uint8_t buf[256];
            size_t got = fuzz_bytes(&in, buf, len);
            qnic_as_rw(&c->m->mem, a, buf, MIN(got, (size_t)(RAM_SIZE - a)), true);
            break;
        }
        case 5: { /* RAM write of a pointer into RAM (descriptor addresses) */
            uint32_t a = fuzz_u32(&in) % (RAM_SIZE - 8);
            uint64_t p = fuzz_u32(&in) % RAM_SIZE;
            qnic_as_store(&c->m->mem, a, 8, p);
            break;
        }
        case 6: /* time passes */
            qnic_main_loop_clock_step(fuzz_u32(&in) % 10000000);
            break;
        case 7: { /* a frame arrives from the wire */
            uint16_t len = fuzz_u16(&in) % sizeof(frame);
            size_t got = fuzz_bytes(&in, frame, len);
            if (c->peer && got) {
                qnic_net_send(c->peer, frame, got);
            }
            break;
        }
        case 8: /* link flap */
            if (c->peer_backend) {
                qnic_net_set_link(c->peer_backend, fuzz_u8(&in) & 1);
            }
            break;
        case 9: /* let deferred work run */
            qnic_bh_poll();
            qnic_main_loop_iterate(false);
            break;
        case 10: /* system reset */
            if (fuzz_u8(&in) == 0x5a) {
                qnic_machine_reset(c->m);
                if (c->pci) {
                    place_bars(c);
                }
            }
            break;
        case 11:
            desc_fill(c, &in);
            break;
        case 12:
            big_frame(c, &in);
            break;
        }
    }
    qnic_bh_poll();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool quiet;
    Ctx c;

    if (!quiet) {
        qnic_log_mask = g_getenv("QNIC_FUZZ_VERBOSE") ? QNIC_LOG_GUEST_ERROR | QNIC_LOG_UNIMP : 0;
        quiet = true;
    }
    setup(&c);
    run(&c, data, size);
    if (fuzz_after_run) {
        fuzz_after_run(c.m);
    }
    teardown(&c);
    return 0;
}
