/*
 * Fuzz target for qnic's vhost-user frontend: a machine with a modern
 * virtio-net-pci (mq=on, 2 pairs) on `-netdev vhost-user` whose chardev is
 * one end of a socketpair. The harness plays the backend: it writes the
 * first part of the input into the other end up front, as a stream of
 * segments each sent with a chosen number of descriptors attached (replies
 * with fuzzed request codes, flags, sizes and payloads, fds where none
 * belong), then shuts its write side so the frontend meets EOF instead of
 * waiting for a reply. The rest of the input drives the guest side through
 * the device's registers (features, queue setup, DRIVER_OK, kicks, the MQ
 * command through the control queue, reset, link), signals the call
 * eventfds the frontend sent, and drains what the frontend sent. Any crash,
 * leak or sanitizer report is a finding; a hang is bounded by EOF.
 *
 * Input: u16 length L of the reply stream, L bytes of segments
 * [u8 nfds (mod 4)][u16 len][len bytes], then ops (see run()).
 */
#include "qnic/machine.h"
#include "qnic/device.h"
#include "qnic/pci.h"
#include "qnic/net.h"
#include "qnic/chardev.h"
#include "qnic/vhost-user-msg.h"
#include "qnic/fd-passing.h"
#include "qnic/mainloop.h"
#include "qnic/clock.h"
#include "qnic/log.h"
#include "fuzz.h"
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/virtio_pci.h>
#include <linux/virtio_config.h>

#define RAM_SIZE (16u << 20)
#define BAR4 0xe0000000ull
#define RING_BASE 0x100000u
#define MAX_OPS 512
#define MAX_CALLS 8

typedef struct {
    QnicMachine *m;
    QnicPciDevice *pci;
    int be;                     /* the harness's end */
    int calls[MAX_CALLS];
    unsigned ncalls;
} Ctx;

static void send_segments(Ctx *c, FuzzIn *in)
{
    while (in->len >= 3) {
        uint8_t nfds = fuzz_u8(in) % 4;
        uint16_t len = fuzz_u16(in);
        uint8_t buf[4096];
        size_t got = fuzz_bytes(in, buf, MIN(len, sizeof(buf)));
        int fds[4];
        struct iovec iov = { buf, got };

        if (!got) {
            continue;
        }
        for (unsigned i = 0; i < nfds; i++) {
            fds[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        }
        ssize_t n = qnic_send_fds(c->be, &iov, 1, fds, nfds, MSG_DONTWAIT | MSG_NOSIGNAL);
        for (unsigned i = 0; i < nfds; i++) {
            close(fds[i]);
        }
        if (n < 0) {
            break;      /* socket buffer full: the rest is dropped */
        }
    }
    shutdown(c->be, SHUT_WR);
}

/* Read what the frontend sent; keep the call eventfds. */
static void drain(Ctx *c)
{
    for (int k = 0; k < 64; k++) {
        struct pollfd p = { .fd = c->be, .events = POLLIN };
        QnicVhuMsg m;
        GError *err = NULL;

        if (poll(&p, 1, 0) != 1 || !(p.revents & POLLIN)) {
            return;
        }
        int r = qnic_vhu_msg_recv(c->be, &m, &err);
        g_clear_error(&err);
        if (r <= 0) {
            return;
        }
        if (m.hdr.request == QNIC_VHU_SET_VRING_CALL && m.nfds == 1 && c->ncalls < MAX_CALLS) {
            c->calls[c->ncalls++] = qnic_vhu_msg_take_fd(&m, 0);
        }
        qnic_vhu_msg_close_fds(&m);
    }
}

static void common_w(Ctx *c, unsigned off, unsigned size, uint64_t v)
{
    qnic_as_store(&c->m->mem, BAR4 + off, size, v);
}

static void setup_queue(Ctx *c, unsigned q, uint16_t size)
{
    uint64_t base = RING_BASE + q * 0x4000ull;

    common_w(c, VIRTIO_PCI_COMMON_Q_SELECT, 2, q);
    common_w(c, VIRTIO_PCI_COMMON_Q_SIZE, 2, size);
    common_w(c, VIRTIO_PCI_COMMON_Q_DESCLO, 4, base);
    common_w(c, VIRTIO_PCI_COMMON_Q_DESCHI, 4, 0);
    common_w(c, VIRTIO_PCI_COMMON_Q_AVAILLO, 4, base + 0x1000);
    common_w(c, VIRTIO_PCI_COMMON_Q_AVAILHI, 4, 0);
    common_w(c, VIRTIO_PCI_COMMON_Q_USEDLO, 4, base + 0x2000);
    common_w(c, VIRTIO_PCI_COMMON_Q_USEDHI, 4, 0);
    common_w(c, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
}

static void run(Ctx *c, FuzzIn *in)
{
    for (unsigned n = 0; n < MAX_OPS && in->len; n++) {
        uint8_t op = fuzz_u8(in);
        switch (op % 10) {
        case 0: {                         /* raw common config write */
            uint8_t off = fuzz_u8(in) % 0x40;
            common_w(c, off & ~3u, 4, fuzz_u32(in));
            break;
        }
        case 1: {                         /* features, then FEATURES_OK */
            uint64_t f = fuzz_u64(in);
            common_w(c, VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
            common_w(c, VIRTIO_PCI_COMMON_GFSELECT, 4, 0);
            common_w(c, VIRTIO_PCI_COMMON_GF, 4, (uint32_t)f);
            common_w(c, VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
            common_w(c, VIRTIO_PCI_COMMON_GF, 4, (uint32_t)(f >> 32) | 1);   /* VERSION_1 */
            common_w(c, VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_CONFIG_S_ACKNOWLEDGE |
                     VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK);
            break;
        }
        case 2:
            setup_queue(c, fuzz_u8(in) % 5, 1u << (fuzz_u8(in) % 9));
            break;
        case 3:                           /* status (0 = reset, 0xf = DRIVER_OK) */
            common_w(c, VIRTIO_PCI_COMMON_STATUS, 1, fuzz_u8(in));
            break;
        case 4:                           /* notify */
            qnic_as_store(&c->m->mem, BAR4 + 0x3000 + 4 * (fuzz_u8(in) % 6), 2, 0);
            break;
        case 5: {                         /* RAM: ring entries, descriptors, ctrl commands */
            uint32_t a = RING_BASE + fuzz_u16(in) * 4u;
            uint8_t buf[64];
            size_t got = fuzz_bytes(in, buf, fuzz_u8(in) % sizeof(buf));
            qnic_as_rw(&c->m->mem, a, buf, got, true);
            break;
        }
        case 6: {                         /* the backend signals a call eventfd */
            uint64_t one = 1;
            if (c->ncalls && write(c->calls[fuzz_u8(in) % c->ncalls], &one, 8) < 0) {
            }
            break;
        }
        case 7:
            drain(c);
            qnic_bh_poll();
            qnic_main_loop_iterate(false);
            qnic_bh_poll();
            break;
        case 8: {                         /* link, as set_link on the netdev */
            QnicNetdev *nd = qnic_netdev_find(c->m->cfg.backends, "n0");
            if (nd && nd->ncs && nd->ncs[0]) {
                qnic_net_set_link(nd->ncs[0], fuzz_u8(in) & 1);
            }
            break;
        }
        case 9:
            qnic_machine_reset(c->m);
            qnic_pci_config_write(c->pci, PCI_BASE_ADDRESS_0 + 16, (uint32_t)BAR4, 4);
            qnic_pci_config_write(c->pci, PCI_BASE_ADDRESS_0 + 20, 0, 4);
            qnic_pci_config_write(c->pci, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 2);
            break;
        }
        drain(c);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool quiet;
    QnicMachineConfig cfg = { .ram_size = RAM_SIZE };
    FuzzIn in = { data, size };
    Ctx c = { .be = -1 };
    int sv[2];
    uint16_t rlen;
    FuzzIn replies;
    QnicDevice *dev;
    GError *err = NULL;
    QnicBackends *backends;

    if (!quiet) {
        qnic_log_mask = g_getenv("QNIC_FUZZ_VERBOSE") ? QNIC_LOG_GUEST_ERROR | QNIC_LOG_UNIMP : 0;
        if (!g_getenv("QNIC_FUZZ_VERBOSE")) {
            g_setenv("QNIC_VHOST_USER_TIMEOUT_MS", "200", FALSE);
        }
        quiet = true;
    }
    qnic_clock_set_mode(QNIC_CLOCK_MANUAL);
    qnic_clock_reset();
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        return 0;
    }
    c.be = sv[0];
    rlen = fuzz_u16(&in);
    replies.p = in.p;
    replies.len = MIN((size_t)rlen, in.len);
    in.p += replies.len;
    in.len -= replies.len;
    send_segments(&c, &replies);

    /* A machine and its backends per input, made and freed whole. */
    cfg.backends = backends = qnic_backends_new();
    c.m = qnic_machine_new(&cfg, &err);
    g_assert(c.m);
    if (!qnic_chardev_new_fd(qnic_backends_chardevs(backends), "c0", sv[1], &err)) {
        close(sv[1]);
        goto out;
    }
    if (!qnic_netdev_add_str(backends, "vhost-user,id=n0,chardev=c0,queues=2", &err)) {
        goto out;
    }
    dev = qnic_device_create_str(c.m, "virtio-net-pci,netdev=n0,addr=4,disable-legacy=on,mq=on,"
                                 "mac=52:54:00:12:34:56,vectors=0", &err);
    if (!dev) {
        goto out;
    }
    c.pci = (QnicPciDevice *)dev;
    qnic_pci_config_write(c.pci, PCI_BASE_ADDRESS_0 + 16, (uint32_t)BAR4, 4);
    qnic_pci_config_write(c.pci, PCI_BASE_ADDRESS_0 + 20, 0, 4);
    qnic_pci_config_write(c.pci, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 2);
    run(&c, &in);
out:
    g_clear_error(&err);
    qnic_machine_free(c.m);
    qnic_backends_free(backends);
    qnic_bh_poll();
    qnic_clock_reset();
    for (unsigned i = 0; i < c.ncalls; i++) {
        close(c.calls[i]);
    }
    close(c.be);
    return 0;
}
