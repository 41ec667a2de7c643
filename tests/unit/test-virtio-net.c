/*
 * Unit tests of virtio-net-pci inside a machine the test builds, for what the
 * qtest protocol cannot reach: the link status a backend reports through the
 * net core (qnic_net_set_link on the netdev's client) must show in the
 * device's config space with a configuration interrupt (ISR bit 1 on INTx),
 * and, on a machine whose accelerator takes ioeventfds in the kernel (KVM),
 * the device must register one eventfd per queue on the modern notify
 * addresses and the legacy QUEUE_NOTIFY port at DRIVER_OK, process a queue
 * when its eventfd is signalled (on the main loop, as KVM would signal it),
 * and unregister them all at reset. The test plays a legacy driver on BAR0.
 */
#include "qnic/machine.h"
#include "qnic/pci.h"
#include "qnic/net.h"
#include "qnic/mainloop.h"
#include "qnic/virtio.h"
#include "vring-host.h"
#include "../lib/test-backends.h"
#include <linux/virtio_pci.h>
#include <linux/virtio_net.h>
#include <linux/pci_regs.h>

#define IO_BASE 0xc000u
#define BAR4_BASE 0xe0000000ull
#define RXQ_GPA 0x100000ull
#define TXQ_GPA 0x110000ull
#define CTRLQ_GPA 0x120000ull
#define BUF_GPA 0x200000ull

typedef struct {
    QnicRegion *r;
    QnicIoEventFd e;
} SeenFd;

typedef struct {
    QnicMachine *m;
    QnicDevice *dev;
    QnicNetdev *nd, *nd_peer;
    QnicNetClient *sink;          /* the hub's other port ends here */
    int gsi_level[QNIC_NUM_GSI];
    unsigned gsi_raises;
    GArray *fds;                  /* SeenFd, currently registered */
    unsigned fd_adds, fd_dels;
    QnicAsListener mem_l, io_l;
    unsigned frames;
    uint8_t last_frame[2048];
    size_t last_len;
    VringHostRam ram;             /* the driver's view of guest RAM */
    VringMem mem;
    VringDriver txq;
} Fx;

static void on_gsi(void *opaque, unsigned gsi, int level)
{
    Fx *f = opaque;

    if (level && !f->gsi_level[gsi]) {
        f->gsi_raises++;
    }
    f->gsi_level[gsi] = level;
}

static void l_fd_add(QnicAsListener *l, QnicRegion *r, const QnicIoEventFd *e)
{
    Fx *f = l->opaque;
    SeenFd s = { r, *e };

    f->fd_adds++;
    g_array_append_val(f->fds, s);
}

static void l_fd_del(QnicAsListener *l, QnicRegion *r, const QnicIoEventFd *e)
{
    Fx *f = l->opaque;

    f->fd_dels++;
    for (guint i = 0; i < f->fds->len; i++) {
        SeenFd *s = &g_array_index(f->fds, SeenFd, i);
        if (s->r == r && s->e.fd == e->fd && s->e.offset == e->offset) {
            g_array_remove_index(f->fds, i);
            return;
        }
    }
    g_assert_not_reached();
}

static ssize_t sink_receive(QnicNetClient *nc, const struct iovec *iov, int iovcnt)
{
    Fx *f = nc->opaque;

    f->frames++;
    f->last_len = qnic_iov_to_buf(iov, iovcnt, 0, f->last_frame, sizeof(f->last_frame));
    return qnic_iov_size(iov, iovcnt);
}

static const QnicNetClientOps sink_ops = {
    .kind = QNIC_NET_CLIENT_OTHER,
    .receive_iov = sink_receive,
};

static unsigned fx_counter;

static void fx_init(Fx *f, bool in_kernel, const char *devopts)
{
    QnicMachineConfig cfg = { .ram_size = 32 * 1024 * 1024, .set_gsi = on_gsi, .opaque = f };
    g_autoptr(GError) err = NULL;
    g_autofree char *a = NULL, *b = NULL, *d = NULL;
    QnicPciDevice *pd;
    unsigned id = fx_counter++;

    memset(f, 0, sizeof(*f));
    cfg.backends = test_backends();
    f->m = qnic_machine_new(&cfg, &err);
    g_assert_no_error(err);
    f->mem = vring_host_machine_mem(&f->ram, f->m, cfg.ram_size);
    f->fds = g_array_new(FALSE, TRUE, sizeof(SeenFd));
    f->mem_l = (QnicAsListener){ .ioeventfd_add = l_fd_add, .ioeventfd_del = l_fd_del, .opaque = f };
    f->io_l = f->mem_l;
    qnic_as_add_listener(&f->m->mem, &f->mem_l);
    qnic_as_add_listener(&f->m->io, &f->io_l);
    f->m->mem.ioeventfd_in_kernel = in_kernel;
    f->m->io.ioeventfd_in_kernel = in_kernel;

    /* NIC <-> hubport a == hub == hubport b <-> sink */
    a = g_strdup_printf("hubport,id=vn%u-a,hubid=%u", id, 40 + id);
    b = g_strdup_printf("hubport,id=vn%u-b,hubid=%u", id, 40 + id);
    f->nd = qnic_netdev_add_str(test_backends(), a, &err);
    g_assert_no_error(err);
    f->nd_peer = qnic_netdev_add_str(test_backends(), b, &err);
    g_assert_no_error(err);
    f->sink = qnic_net_client_new(test_backends(), &sink_ops, "sink", "sink", f);
    qnic_net_client_set_peer(f->sink, f->nd_peer->ncs[0]);

    d = g_strdup_printf("virtio-net-pci,netdev=vn%u-a,addr=4%s", id, devopts);
    f->dev = qnic_device_create_str(f->m, d, &err);
    g_assert_no_error(err);
    g_assert_nonnull(f->dev);
    pd = (QnicPciDevice *)f->dev;
    /* firmware's part: BAR0 at IO_BASE, BAR4 in the hole, I/O + memory +
     * bus mastering on */
    qnic_pci_config_write(pd, PCI_BASE_ADDRESS_0, IO_BASE, 4);
    qnic_pci_config_write(pd, PCI_BASE_ADDRESS_4, (uint32_t)BAR4_BASE, 4);
    qnic_pci_config_write(pd, PCI_BASE_ADDRESS_5, BAR4_BASE >> 32, 4);
    qnic_pci_config_write(pd, PCI_COMMAND, PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 2);
}

static void fx_free(Fx *f)
{
    qnic_device_destroy(f->dev);
    qnic_net_client_free(f->sink);
    qnic_netdev_del(f->nd);
    qnic_netdev_del(f->nd_peer);
    qnic_as_remove_listener(&f->m->mem, &f->mem_l);
    qnic_as_remove_listener(&f->m->io, &f->io_l);
    qnic_machine_free(f->m);
    g_array_free(f->fds, TRUE);
}

static uint32_t io_read(Fx *f, unsigned off, unsigned size)
{
    uint64_t v = 0;
    g_assert_true(qnic_as_load(&f->m->io, IO_BASE + off, size, &v));
    return v;
}

static void io_write(Fx *f, unsigned off, unsigned size, uint32_t v)
{
    g_assert_true(qnic_as_store(&f->m->io, IO_BASE + off, size, v));
}

static uint8_t *ram(Fx *f, uint64_t gpa)
{
    uint8_t *p = qnic_machine_ram_ptr(f->m, gpa, 1);
    g_assert_nonnull(p);
    return p;
}

/* Legacy bring-up: reset, ACK|DRIVER, features, queue PFNs, DRIVER_OK. */
static void legacy_up(Fx *f, uint32_t want)
{
    static const uint64_t qaddr[3] = { RXQ_GPA, TXQ_GPA, CTRLQ_GPA };
    uint32_t offered;

    io_write(f, VIRTIO_PCI_STATUS, 1, 0);
    io_write(f, VIRTIO_PCI_STATUS, 1, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
    offered = io_read(f, VIRTIO_PCI_HOST_FEATURES, 4);
    io_write(f, VIRTIO_PCI_GUEST_FEATURES, 4, offered & want);
    for (unsigned q = 0; q < 3; q++) {
        uint16_t num;

        io_write(f, VIRTIO_PCI_QUEUE_SEL, 2, q);
        num = io_read(f, VIRTIO_PCI_QUEUE_NUM, 2);
        g_assert_cmpuint(num, >=, 64);
        memset(ram(f, qaddr[q]), 0, 0x4000);
        io_write(f, VIRTIO_PCI_QUEUE_PFN, 4, qaddr[q] >> VIRTIO_PCI_QUEUE_ADDR_SHIFT);
        if (q == 1) {
            vring_driver_init(&f->txq, &f->mem, num, false, TXQ_GPA, TXQ_GPA + 16ull * num,
                              TXQ_GPA + vring_legacy_used_offset(num, 4096));
        }
    }
    io_write(f, VIRTIO_PCI_STATUS, 1, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
             VIRTIO_CONFIG_S_DRIVER_OK);
    g_assert_cmphex(io_read(f, VIRTIO_PCI_STATUS, 1) & VIRTIO_CONFIG_S_NEEDS_RESET, ==, 0);
}

static uint16_t legacy_net_status(Fx *f)
{
    /* device config starts at 20 while MSI-X is off */
    return io_read(f, VIRTIO_PCI_CONFIG_OFF(false) + 6, 2);
}

static unsigned intx_gsi(Fx *f)
{
    QnicPciDevice *pd = (QnicPciDevice *)f->dev;
    return qnic_pci_intx_gsi(pd->devfn, qnic_pci_get_byte(pd, PCI_INTERRUPT_PIN));
}

/* ---- link status ---- */

static void test_link_status(void)
{
    Fx f;
    unsigned gsi, raises;
    uint8_t isr;

    fx_init(&f, false, "");
    gsi = intx_gsi(&f);
    legacy_up(&f, (1u << VIRTIO_NET_F_MAC) | (1u << VIRTIO_NET_F_STATUS));
    g_assert_cmphex(legacy_net_status(&f) & VIRTIO_NET_S_LINK_UP, ==, VIRTIO_NET_S_LINK_UP);
    g_assert_cmpint(f.gsi_level[gsi], ==, 0);

    /* the backend's cable goes: the NIC reports it with a config interrupt */
    raises = f.gsi_raises;
    qnic_net_set_link(f.nd->ncs[0], false);
    g_assert_true(f.nd->ncs[0]->peer->link_down);
    g_assert_cmphex(legacy_net_status(&f) & VIRTIO_NET_S_LINK_UP, ==, 0);
    g_assert_cmpint(f.gsi_level[gsi], ==, 1);
    g_assert_cmpuint(f.gsi_raises, ==, raises + 1);
    isr = io_read(&f, VIRTIO_PCI_ISR, 1);
    g_assert_cmphex(isr & VIRTIO_PCI_ISR_CONFIG, ==, VIRTIO_PCI_ISR_CONFIG);
    /* reading the ISR acknowledges and lowers the line */
    g_assert_cmpint(f.gsi_level[gsi], ==, 0);
    g_assert_cmphex(io_read(&f, VIRTIO_PCI_ISR, 1), ==, 0);

    /* setting the same state again is not a change: no interrupt */
    qnic_net_set_link(f.nd->ncs[0], false);
    g_assert_cmpuint(f.gsi_raises, ==, raises + 1);

    /* and back up */
    qnic_net_set_link(f.nd->ncs[0], true);
    g_assert_cmphex(legacy_net_status(&f) & VIRTIO_NET_S_LINK_UP, ==, VIRTIO_NET_S_LINK_UP);
    g_assert_cmpuint(f.gsi_raises, ==, raises + 2);
    g_assert_cmphex(io_read(&f, VIRTIO_PCI_ISR, 1) & VIRTIO_PCI_ISR_CONFIG, ==, VIRTIO_PCI_ISR_CONFIG);

    /* a driver that did not take VIRTIO_NET_F_STATUS gets no interrupt */
    legacy_up(&f, 1u << VIRTIO_NET_F_MAC);
    raises = f.gsi_raises;
    qnic_net_set_link(f.nd->ncs[0], false);
    g_assert_cmpuint(f.gsi_raises, ==, raises);
    g_assert_cmphex(io_read(&f, VIRTIO_PCI_ISR, 1), ==, 0);
    qnic_net_set_link(f.nd->ncs[0], true);
    fx_free(&f);
}

/* A link that is down when the device is created reads down. */
static void test_link_down_at_start(void)
{
    Fx f;
    g_autoptr(GError) err = NULL;
    QnicDevice *dev2;
    QnicNetdev *nd;
    QnicPciDevice *pd;

    fx_init(&f, false, "");
    nd = qnic_netdev_add_str(test_backends(), "hubport,id=vn-down,hubid=77", &err);
    g_assert_no_error(err);
    qnic_net_set_link(nd->ncs[0], false);
    dev2 = qnic_device_create_str(f.m, "virtio-net-pci,netdev=vn-down,addr=5", &err);
    g_assert_no_error(err);
    pd = (QnicPciDevice *)dev2;
    qnic_pci_config_write(pd, PCI_BASE_ADDRESS_0, IO_BASE + 0x100, 4);
    qnic_pci_config_write(pd, PCI_COMMAND, PCI_COMMAND_IO, 2);
    g_assert_cmphex(io_read(&f, 0x100 + VIRTIO_PCI_CONFIG_OFF(false) + 6, 2) & VIRTIO_NET_S_LINK_UP,
                    ==, 0);
    /* and the link coming up is a change the device sees */
    qnic_net_set_link(nd->ncs[0], true);
    g_assert_cmphex(io_read(&f, 0x100 + VIRTIO_PCI_CONFIG_OFF(false) + 6, 2) & VIRTIO_NET_S_LINK_UP,
                    ==, VIRTIO_NET_S_LINK_UP);
    qnic_device_destroy(dev2);
    qnic_netdev_del(nd);
    fx_free(&f);
}

/* ---- ioeventfd ---- */

static SeenFd *find_fd(Fx *f, bool legacy, unsigned q)
{
    for (guint i = 0; i < f->fds->len; i++) {
        SeenFd *s = &g_array_index(f->fds, SeenFd, i);
        if (legacy && s->r->as == &f->m->io && s->e.offset == VIRTIO_PCI_QUEUE_NOTIFY &&
            s->e.match_data && s->e.data == q) {
            return s;
        }
        /* modern notify: BAR4 + 0x3000 + queue * notify_off_multiplier (4) */
        if (!legacy && s->r->as == &f->m->mem && s->e.offset == 0x3000 + 4 * q && !s->e.match_data) {
            return s;
        }
    }
    return NULL;
}

/* Post one TX frame (split legacy ring, header + data: a chain of two). */
static void post_tx(Fx *f, const uint8_t *frame, size_t len)
{
    VringBuf b[2] = { { .addr = BUF_GPA, .len = 10 }, { .addr = BUF_GPA + 0x100, .len = len } };

    memset(ram(f, BUF_GPA), 0, 10);
    memcpy(ram(f, BUF_GPA + 0x100), frame, len);
    vring_add(&f->txq, b, 2);
}

static uint16_t tx_used_idx(Fx *f)
{
    return vring_split_used_idx(&f->txq);
}

static void loop_until(Fx *f, unsigned *counter, unsigned want)
{
    for (int i = 0; i < 200 && *counter < want; i++) {
        qnic_main_loop_iterate(false);
        g_usleep(1000);
    }
    (void)f;
}

static void test_ioeventfd_kvm(void)
{
    static const uint8_t frame[60] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x88, 0xb5, 42 };
    Fx f;
    SeenFd *s;
    uint64_t one = 1;

    fx_init(&f, true, "");
    legacy_up(&f, (1u << VIRTIO_NET_F_MAC) | (1u << VIRTIO_NET_F_STATUS));
    /* 3 queues (rx, tx, ctrl), each on the modern and the legacy notify */
    g_assert_cmpuint(f.fds->len, ==, 6);
    for (unsigned q = 0; q < 3; q++) {
        SeenFd *m = find_fd(&f, false, q), *l = find_fd(&f, true, q);
        g_assert_nonnull(m);
        g_assert_nonnull(l);
        g_assert_cmpint(m->e.fd, ==, l->e.fd);
        g_assert_cmpuint(l->e.size, ==, 2);
    }

    /* With the kernel taking the write, KVM signals the eventfd; here the
     * test does. Nothing happens until the main loop runs. */
    post_tx(&f, frame, sizeof(frame));
    s = find_fd(&f, true, 1);
    g_assert_cmpint(write(s->e.fd, &one, sizeof(one)), ==, 8);
    g_assert_cmpuint(f.frames, ==, 0);
    g_assert_cmpuint(tx_used_idx(&f), ==, 0);
    loop_until(&f, &f.frames, 1);
    g_assert_cmpuint(f.frames, ==, 1);
    g_assert_cmpuint(f.last_len, ==, sizeof(frame));
    g_assert_cmpmem(f.last_frame, f.last_len, frame, sizeof(frame));
    g_assert_cmpuint(tx_used_idx(&f), ==, 1);

    /* The modern notify fd is the same queue. */
    post_tx(&f, frame, sizeof(frame));
    s = find_fd(&f, false, 1);
    g_assert_cmpint(write(s->e.fd, &one, sizeof(one)), ==, 8);
    loop_until(&f, &f.frames, 2);
    g_assert_cmpuint(f.frames, ==, 2);
    g_assert_cmpuint(tx_used_idx(&f), ==, 2);

    /* Reset unregisters every one of them. */
    io_write(&f, VIRTIO_PCI_STATUS, 1, 0);
    g_assert_cmpuint(f.fds->len, ==, 0);
    g_assert_cmpuint(f.fd_dels, ==, f.fd_adds);
    /* and DRIVER_OK again registers a fresh set */
    legacy_up(&f, (1u << VIRTIO_NET_F_MAC));
    g_assert_cmpuint(f.fds->len, ==, 6);
    fx_free(&f);
    /* destroying the device leaves nothing registered */
}

/* ioeventfd=off, or an accelerator without in-kernel ioeventfds (qtest):
 * nothing is registered and the notify write is handled directly. */
static void test_ioeventfd_off(gconstpointer data)
{
    bool in_kernel = GPOINTER_TO_INT(data);
    static const uint8_t frame[60] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x88, 0xb5, 43 };
    Fx f;

    fx_init(&f, in_kernel, in_kernel ? ",ioeventfd=off" : "");
    legacy_up(&f, (1u << VIRTIO_NET_F_MAC));
    g_assert_cmpuint(f.fd_adds, ==, 0);
    post_tx(&f, frame, sizeof(frame));
    io_write(&f, VIRTIO_PCI_QUEUE_NOTIFY, 2, 1);
    loop_until(&f, &f.frames, 1);
    g_assert_cmpuint(f.frames, ==, 1);
    g_assert_cmpuint(tx_used_idx(&f), ==, 1);
    fx_free(&f);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    qnic_bql_lock();
    g_test_add_func("/virtio-net/link/status-and-config-irq", test_link_status);
    g_test_add_func("/virtio-net/link/down-at-start", test_link_down_at_start);
    g_test_add_func("/virtio-net/ioeventfd/kvm", test_ioeventfd_kvm);
    g_test_add_data_func("/virtio-net/ioeventfd/off", GINT_TO_POINTER(1), test_ioeventfd_off);
    g_test_add_data_func("/virtio-net/ioeventfd/no-kernel", GINT_TO_POINTER(0), test_ioeventfd_off);
    return g_test_run();
}
