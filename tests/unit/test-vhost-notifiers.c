/*
 * Unit tests of the vhost fast path's switches, which the guest tests under
 * KVM cannot drive (the test guest never masks a vector): a virtio-net-pci
 * in a machine whose embedder takes ioeventfds in the kernel and offers an
 * irqfd per MSI message (as qnic-vmm does under KVM; here plain eventfds the
 * test watches), and a fake vhost backend (QnicVhostOps recording the kick
 * and call fds it is given) standing in for vhost-user. Checked: the backend
 * gets the transport's ioeventfd as its kick fd and the transport stops
 * watching it until the ring comes back; its call fd is the vector's irqfd
 * while the vector is deliverable and qnic's own eventfd when the vector is
 * masked (entry or function mask), MSI-X is off (INTx), bus mastering is off
 * or the queue has no vector; a call made while masked sets the PBA bit and
 * is delivered at unmask; a rewritten message or queue vector moves the
 * call fd to the new irqfd; without the embedder's hooks (qtest, no KVM)
 * everything is relayed as before.
 */
#include "qnic/machine.h"
#include "qnic/pci.h"
#include "qnic/net.h"
#include "qnic/mainloop.h"
#include "qnic/virtio.h"
#include "qnic/vhost.h"
#include "../lib/test-backends.h"
#include <linux/virtio_pci.h>
#include <linux/virtio_net.h>
#include <linux/pci_regs.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define IO_BASE 0xc000u
#define RXQ_GPA 0x100000ull
#define TXQ_GPA 0x110000ull
#define CTRLQ_GPA 0x120000ull
#define MSI_ADDR 0xfee00000ull

typedef struct {
    uint64_t addr;
    uint32_t data;
    int fd;
} Route;

typedef struct {
    QnicMachine *m;
    QnicDevice *dev;
    QnicPciDevice *pd;
    QnicVirtioPci *vp;
    QnicVirtioDevice *vdev;
    QnicVirtioDeviceOps ops;      /* virtio-net's, forwarding notifier changes to hd */
    QnicNetdev *nd;
    QnicVhostDev *hd;
    GArray *routes;               /* Route: the "irqfds" handed out */
    unsigned msis[256];           /* MSI messages delivered by qnic, per data */
    int gsi_level[QNIC_NUM_GSI];
    int kick_fd[2], call_fd[2];   /* what the fake backend was given */
    unsigned call_sets[2];
} Fx;

static Fx *cur;

static void on_gsi(void *opaque, unsigned gsi, int level)
{
    Fx *f = opaque;
    f->gsi_level[gsi] = level;
}

static void on_msi(void *opaque, uint64_t addr, uint32_t data)
{
    Fx *f = opaque;

    g_assert_cmphex(addr, ==, MSI_ADDR);
    f->msis[data & 0xff]++;
}

static int on_msi_irqfd(void *opaque, uint64_t addr, uint32_t data)
{
    Fx *f = opaque;
    Route r = { addr, data, -1 };

    for (guint i = 0; i < f->routes->len; i++) {
        Route *e = &g_array_index(f->routes, Route, i);
        if (e->addr == addr && e->data == data) {
            return e->fd;
        }
    }
    r.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    g_assert_cmpint(r.fd, >=, 0);
    g_array_append_val(f->routes, r);
    return r.fd;
}

static int irqfd_of(Fx *f, uint32_t data)
{
    for (guint i = 0; i < f->routes->len; i++) {
        Route *e = &g_array_index(f->routes, Route, i);
        if (e->data == data) {
            return e->fd;
        }
    }
    return -1;
}

/* ---- the fake backend ---- */

static bool fb_ok_u64(QnicVhostDev *hd, uint64_t v, GError **errp) { return true; }
static bool fb_mem(QnicVhostDev *hd, QnicMachine *m, GError **errp) { return true; }
static bool fb_num(QnicVhostDev *hd, unsigned idx, unsigned v, GError **errp) { return true; }
static bool fb_get_base(QnicVhostDev *hd, unsigned idx, unsigned *base, GError **errp)
{
    *base = 0;
    return true;
}
static bool fb_addr(QnicVhostDev *hd, unsigned idx, uint64_t d, uint64_t a, uint64_t u,
                    GError **errp)
{
    return true;
}
static bool fb_kick(QnicVhostDev *hd, unsigned idx, int fd, GError **errp)
{
    Fx *f = hd->be;
    f->kick_fd[idx] = fd;
    return true;
}
static bool fb_call(QnicVhostDev *hd, unsigned idx, int fd, GError **errp)
{
    Fx *f = hd->be;
    f->call_fd[idx] = fd;
    f->call_sets[idx]++;
    return true;
}

static const QnicVhostOps fake_ops = {
    .name = "fake",
    .set_features = fb_ok_u64,
    .set_mem_table = fb_mem,
    .set_vring_num = fb_num,
    .set_vring_base = fb_num,
    .get_vring_base = fb_get_base,
    .set_vring_addr = fb_addr,
    .set_vring_kick = fb_kick,
    .set_vring_call = fb_call,
};

/* What virtio-net does for a vhost peer, pointed at the fake backend. */
static void fx_notifier_changed(QnicVirtioDevice *vdev, unsigned idx)
{
    if (idx < 2) {
        qnic_vhost_vq_update_call(cur->hd, idx);
    }
}

static unsigned fx_counter;

static void fx_init(Fx *f, bool hooks)
{
    QnicMachineConfig cfg = { .ram_size = 32 * 1024 * 1024, .set_gsi = on_gsi, .opaque = f };
    g_autoptr(GError) err = NULL;
    g_autofree char *a = NULL, *d = NULL;

    memset(f, 0, sizeof(*f));
    cur = f;
    if (hooks) {
        cfg.msi = on_msi;
        cfg.msi_irqfd = on_msi_irqfd;
    }
    f->routes = g_array_new(FALSE, TRUE, sizeof(Route));
    cfg.backends = test_backends();
    f->m = qnic_machine_new(&cfg, &err);
    g_assert_no_error(err);
    f->m->mem.ioeventfd_in_kernel = hooks;
    f->m->io.ioeventfd_in_kernel = hooks;
    a = g_strdup_printf("hubport,id=vhn%u,hubid=%u", fx_counter, 60 + fx_counter);
    f->nd = qnic_netdev_add_str(test_backends(), a, &err);
    g_assert_no_error(err);
    d = g_strdup_printf("virtio-net-pci,netdev=vhn%u,addr=4", fx_counter);
    fx_counter++;
    f->dev = qnic_device_create_str(f->m, d, &err);
    g_assert_no_error(err);
    f->pd = (QnicPciDevice *)f->dev;
    f->vp = (QnicVirtioPci *)f->dev;
    f->vdev = f->vp->vdev;
    f->ops = *f->vdev->ops;
    f->ops.guest_notifier_changed = fx_notifier_changed;
    f->vdev->ops = &f->ops;
    qnic_pci_config_write(f->pd, PCI_BASE_ADDRESS_0, IO_BASE, 4);
    qnic_pci_config_write(f->pd, PCI_COMMAND, PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 2);
    f->hd = qnic_vhost_dev_new(&fake_ops, f, 2);
    f->hd->connected = true;
    f->kick_fd[0] = f->kick_fd[1] = f->call_fd[0] = f->call_fd[1] = -1;
}

static void fx_free(Fx *f)
{
    qnic_vhost_dev_free(f->hd);
    qnic_device_destroy(f->dev);
    qnic_netdev_del(f->nd);
    qnic_machine_free(f->m);
    for (guint i = 0; i < f->routes->len; i++) {
        close(g_array_index(f->routes, Route, i).fd);
    }
    g_array_free(f->routes, TRUE);
    cur = NULL;
}

static void io_write(Fx *f, unsigned off, unsigned size, uint32_t v)
{
    g_assert_true(qnic_as_store(&f->m->io, IO_BASE + off, size, v));
}

static uint32_t io_read(Fx *f, unsigned off, unsigned size)
{
    uint64_t v = 0;
    g_assert_true(qnic_as_load(&f->m->io, IO_BASE + off, size, &v));
    return v;
}

static void msix_entry(Fx *f, unsigned v, uint32_t data, bool masked)
{
    qnic_msix_bar_write(f->pd, 16 * v + PCI_MSIX_ENTRY_LOWER_ADDR, 4, (uint32_t)MSI_ADDR);
    qnic_msix_bar_write(f->pd, 16 * v + PCI_MSIX_ENTRY_UPPER_ADDR, 4, 0);
    qnic_msix_bar_write(f->pd, 16 * v + PCI_MSIX_ENTRY_DATA, 4, data);
    qnic_msix_bar_write(f->pd, 16 * v + PCI_MSIX_ENTRY_VECTOR_CTRL, 4, masked);
}

static void msix_mask(Fx *f, unsigned v, bool masked)
{
    qnic_msix_bar_write(f->pd, 16 * v + PCI_MSIX_ENTRY_VECTOR_CTRL, 4, masked);
}

static void msix_ctrl(Fx *f, uint16_t flags)
{
    uint16_t ctrl = qnic_pci_get_word(f->pd, f->pd->msix_cap + PCI_MSIX_FLAGS);
    ctrl = (ctrl & ~(PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL)) | flags;
    qnic_pci_config_write(f->pd, f->pd->msix_cap + PCI_MSIX_FLAGS, ctrl, 2);
}

static bool pba_pending(Fx *f, unsigned v)
{
    uint64_t val = 0;
    g_assert_true(qnic_msix_bar_read(f->pd, f->pd->msix_pba_off, 8, &val));
    return val & (1ull << v);
}

static void queue_vector(Fx *f, unsigned q, uint16_t v)
{
    io_write(f, VIRTIO_PCI_QUEUE_SEL, 2, q);
    io_write(f, VIRTIO_MSI_QUEUE_VECTOR, 2, v);
    g_assert_cmpuint(io_read(f, VIRTIO_MSI_QUEUE_VECTOR, 2), ==, v);
}

/* A legacy driver: MSI-X on (when asked) with vectors 0 and 1 (messages
 * 0x30, 0x31) for queues 0 and 1, every ring set up, DRIVER_OK; then the
 * data rings go to the fake backend. */
static void up(Fx *f, bool msix)
{
    static const uint64_t qaddr[3] = { RXQ_GPA, TXQ_GPA, CTRLQ_GPA };
    g_autoptr(GError) err = NULL;

    io_write(f, VIRTIO_PCI_STATUS, 1, 0);
    io_write(f, VIRTIO_PCI_STATUS, 1, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
    io_write(f, VIRTIO_PCI_GUEST_FEATURES, 4, 1u << VIRTIO_NET_F_MAC);
    if (msix) {
        msix_entry(f, 0, 0x30, false);
        msix_entry(f, 1, 0x31, false);
        msix_ctrl(f, PCI_MSIX_FLAGS_ENABLE);
    }
    for (unsigned q = 0; q < 3; q++) {
        /* queue 0's vector before its PFN (the test guest's order: the PFN
         * write must keep it, as QEMU does), queue 1's after (Linux's) */
        if (msix && q == 0) {
            queue_vector(f, q, q);
        }
        io_write(f, VIRTIO_PCI_QUEUE_SEL, 2, q);
        memset(qnic_machine_ram_ptr(f->m, qaddr[q], 0x4000), 0, 0x4000);
        io_write(f, VIRTIO_PCI_QUEUE_PFN, 4, qaddr[q] >> VIRTIO_PCI_QUEUE_ADDR_SHIFT);
        if (msix && q == 1) {
            queue_vector(f, q, q);
        }
    }
    io_write(f, VIRTIO_PCI_STATUS, 1, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
             VIRTIO_CONFIG_S_DRIVER_OK);
    g_assert_true(qnic_vhost_dev_start(f->hd, f->vdev, 2, 0, &err));
    g_assert_no_error(err);
}

static void signal_fd(int fd)
{
    uint64_t one = 1;
    g_assert_cmpint(write(fd, &one, sizeof(one)), ==, sizeof(one));
}

static void drain_loop(void)
{
    for (int i = 0; i < 20; i++) {
        qnic_main_loop_iterate(false);
    }
}

static unsigned intx_gsi(Fx *f)
{
    return qnic_pci_intx_gsi(f->pd->devfn, qnic_pci_get_byte(f->pd, PCI_INTERRUPT_PIN));
}

/* Kick: the transport's ioeventfd, unwatched while the backend has it. */
static void test_kick_ioeventfd(void)
{
    Fx f;

    fx_init(&f, true);
    up(&f, true);
    g_assert_nonnull(f.vp->notify_fds);
    for (unsigned q = 0; q < 2; q++) {
        g_assert_cmpint(f.kick_fd[q], ==, f.vp->notify_fds[q]);
        g_assert_false(f.hd->vqs[q].kick_owned);
        g_assert_null(f.vp->notify_watches[q]);
    }
    /* the control queue stays with qnic */
    g_assert_nonnull(f.vp->notify_watches[2]);
    /* a guest notification is the backend's to read, not qnic's */
    signal_fd(f.kick_fd[1]);
    drain_loop();
    {
        uint64_t cnt = 0;
        g_assert_cmpint(read(f.kick_fd[1], &cnt, sizeof(cnt)), ==, sizeof(cnt));
        /* qnic's own kick at hand-over plus the guest's */
        g_assert_cmpuint(cnt, ==, 2);
    }
    g_assert_cmpuint(f.hd->vqs[1].kicks_relayed, ==, 0);

    qnic_vhost_dev_stop(f.hd);
    for (unsigned q = 0; q < 2; q++) {
        g_assert_nonnull(f.vp->notify_watches[q]);
        g_assert_false(f.vp->notify_taken[q]);
    }
    /* and a second hand-over takes them again */
    up(&f, true);
    g_assert_cmpint(f.kick_fd[0], ==, f.vp->notify_fds[0]);
    g_assert_null(f.vp->notify_watches[0]);
    /* reset: the rings come back first, then the ioeventfds go */
    io_write(&f, VIRTIO_PCI_STATUS, 1, 0);
    qnic_vhost_dev_stop(f.hd);
    g_assert_null(f.vp->notify_fds);
    fx_free(&f);
}

/* Call: irqfd while deliverable, qnic's eventfd while masked; a call made
 * while masked is pending in the PBA and delivered at unmask. */
static void test_call_mask(void)
{
    Fx f;
    unsigned sets;

    fx_init(&f, true);
    up(&f, true);
    g_assert_cmpint(f.call_fd[0], ==, irqfd_of(&f, 0x30));
    g_assert_cmpint(f.call_fd[1], ==, irqfd_of(&f, 0x31));
    g_assert_cmpint(f.call_fd[0], >=, 0);

    /* mask vector 0: queue 0's backend now signals qnic; queue 1 untouched */
    sets = f.call_sets[1];
    msix_mask(&f, 0, true);
    g_assert_cmpint(f.call_fd[0], ==, f.hd->vqs[0].call_fd);
    g_assert_cmpuint(f.call_sets[1], ==, sets);
    g_assert_cmpint(f.call_fd[1], ==, irqfd_of(&f, 0x31));

    /* the backend completes something: no interrupt, the PBA says pending */
    signal_fd(f.call_fd[0]);
    drain_loop();
    g_assert_cmpuint(f.hd->vqs[0].calls_relayed, ==, 1);
    g_assert_cmpuint(f.msis[0x30], ==, 0);
    g_assert_true(pba_pending(&f, 0));

    /* unmask: the irqfd again, and the pending message is delivered once */
    msix_mask(&f, 0, false);
    g_assert_cmpint(f.call_fd[0], ==, irqfd_of(&f, 0x30));
    g_assert_cmpuint(f.msis[0x30], ==, 1);
    g_assert_false(pba_pending(&f, 0));

    /* a call that reaches qnic's eventfd but not yet the main loop when the
     * vector is unmasked is delivered by the switch itself */
    msix_mask(&f, 0, true);
    signal_fd(f.hd->vqs[0].call_fd);
    msix_mask(&f, 0, false);
    g_assert_cmpuint(f.msis[0x30], ==, 2);
    g_assert_cmpuint(f.hd->vqs[0].calls_relayed, ==, 2);

    /* the function mask moves both queues, and back */
    msix_ctrl(&f, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
    g_assert_cmpint(f.call_fd[0], ==, f.hd->vqs[0].call_fd);
    g_assert_cmpint(f.call_fd[1], ==, f.hd->vqs[1].call_fd);
    msix_ctrl(&f, PCI_MSIX_FLAGS_ENABLE);
    g_assert_cmpint(f.call_fd[0], ==, irqfd_of(&f, 0x30));
    g_assert_cmpint(f.call_fd[1], ==, irqfd_of(&f, 0x31));

    /* no SET_VRING_CALL when nothing changed (same mask state written) */
    sets = f.call_sets[0];
    msix_mask(&f, 0, false);
    g_assert_cmpuint(f.call_sets[0], ==, sets);

    /* bus mastering off: MSI-X cannot be delivered, so no irqfd */
    qnic_pci_config_write(f.pd, PCI_COMMAND, PCI_COMMAND_IO | PCI_COMMAND_MEMORY, 2);
    g_assert_cmpint(f.call_fd[0], ==, f.hd->vqs[0].call_fd);
    qnic_pci_config_write(f.pd, PCI_COMMAND, PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 2);
    g_assert_cmpint(f.call_fd[0], ==, irqfd_of(&f, 0x30));
    fx_free(&f);
}

/* The driver reprograms: a new message, another vector, no vector. */
static void test_call_vector_change(void)
{
    Fx f;

    fx_init(&f, true);
    up(&f, true);
    /* message of unmasked vector 1 rewritten in place */
    qnic_msix_bar_write(f.pd, 16 * 1 + PCI_MSIX_ENTRY_DATA, 4, 0x41);
    g_assert_cmpint(irqfd_of(&f, 0x41), >=, 0);
    g_assert_cmpint(f.call_fd[1], ==, irqfd_of(&f, 0x41));
    /* queue 1 moves to vector 0 */
    queue_vector(&f, 1, 0);
    g_assert_cmpint(f.call_fd[1], ==, irqfd_of(&f, 0x30));
    /* and to no vector: nothing to route */
    queue_vector(&f, 1, VIRTIO_MSI_NO_VECTOR);
    g_assert_cmpint(f.call_fd[1], ==, f.hd->vqs[1].call_fd);
    queue_vector(&f, 1, 1);
    g_assert_cmpint(f.call_fd[1], ==, irqfd_of(&f, 0x41));
    fx_free(&f);
}

/* MSI-X switched off (INTx): relayed, and the call raises the line. */
static void test_call_intx(void)
{
    Fx f;
    unsigned gsi;

    fx_init(&f, true);
    gsi = intx_gsi(&f);
    up(&f, false);
    g_assert_cmpint(f.call_fd[0], ==, f.hd->vqs[0].call_fd);
    g_assert_cmpint(f.call_fd[1], ==, f.hd->vqs[1].call_fd);
    signal_fd(f.call_fd[1]);
    drain_loop();
    g_assert_cmpint(f.gsi_level[gsi], ==, 1);
    g_assert_cmphex(io_read(&f, VIRTIO_PCI_ISR, 1) & 1, ==, 1);
    g_assert_cmpint(f.gsi_level[gsi], ==, 0);
    fx_free(&f);

    /* MSI-X disabled while the backend runs with irqfds */
    fx_init(&f, true);
    gsi = intx_gsi(&f);
    up(&f, true);
    g_assert_cmpint(f.call_fd[0], ==, irqfd_of(&f, 0x30));
    msix_ctrl(&f, 0);
    g_assert_cmpint(f.call_fd[0], ==, f.hd->vqs[0].call_fd);
    g_assert_cmpint(f.call_fd[1], ==, f.hd->vqs[1].call_fd);
    signal_fd(f.call_fd[0]);
    drain_loop();
    g_assert_cmpint(f.gsi_level[gsi], ==, 1);
    fx_free(&f);
}

/* No embedder hooks, no in-kernel ioeventfd (qtest): today's relayed path. */
static void test_no_hooks(void)
{
    Fx f;

    fx_init(&f, false);
    up(&f, true);
    for (unsigned q = 0; q < 2; q++) {
        g_assert_true(f.hd->vqs[q].kick_owned);
        g_assert_cmpint(f.kick_fd[q], ==, f.hd->vqs[q].kick_fd);
        g_assert_cmpint(f.call_fd[q], ==, f.hd->vqs[q].call_fd);
    }
    g_assert_null(f.vp->notify_fds);
    /* the driver's notification arrives by dispatch; virtio-net's
     * handle_queue relays it */
    qnic_vhost_kick(f.hd, 1);
    g_assert_cmpuint(f.hd->vqs[1].kicks_relayed, ==, 1);
    msix_mask(&f, 0, true);
    msix_mask(&f, 0, false);
    g_assert_cmpuint(f.call_sets[0], ==, 1);
    fx_free(&f);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/vhost-notifiers/kick/ioeventfd", test_kick_ioeventfd);
    g_test_add_func("/vhost-notifiers/call/mask", test_call_mask);
    g_test_add_func("/vhost-notifiers/call/vector-change", test_call_vector_change);
    g_test_add_func("/vhost-notifiers/call/intx", test_call_intx);
    g_test_add_func("/vhost-notifiers/no-hooks", test_no_hooks);
    return g_test_run();
}
