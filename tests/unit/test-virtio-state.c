/*
 * The device state of the virtio-net models (virtio-net-pci with a legacy
 * and a modern driver, split and packed rings, its transitional and
 * non-transitional variants, virtio-net-device on virtio-mmio v1 and v2),
 * moved between two machines in one process as a migration moves it. A
 * driver in the test brings the device up, programs the control queue's
 * state (receive mode, MAC table, VLAN filter), moves frames both ways and
 * leaves one TX frame in flight (popped, held by the stopped VM's net
 * core); the source is saved, its RAM copied to a fresh machine, the
 * stream loaded there. The destination's own stream must dump equal to the
 * source's, field by field, and the driver carries on with the same rings:
 * the in-flight frame goes out exactly once, frames move both ways, the
 * MAC table still filters. With a vhost backend (vhost-vdpa on the
 * simulator, vhost-user to a qnic-vhost-user-net process) the rings come
 * back from the source's backend (GET_VRING_BASE) and go to the
 * destination's from the loaded bases. Hostile streams (every truncation, bit flips,
 * CRC-valid values out of range for the device) are refused with a clear
 * error and leave the device as it was, still moving frames.
 */
#include "qnic/machine.h"
#include "qnic/backends.h"
#include "qnic/device.h"
#include "qnic/pci.h"
#include "qnic/net.h"
#include "qnic/mainloop.h"
#include "qnic/state.h"
#include "qnic/virtio.h"
#include "qnic/virtio-net.h"
#include "qnic/vdpa-sim.h"
#include "qnic/chardev.h"
#include "vring-host.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include "../lib/state-patch.h"
#include <linux/virtio_pci.h>
#include <linux/virtio_mmio.h>
#include <linux/virtio_net.h>
#include <linux/pci_regs.h>

#define RAM_SIZE (16u << 20)
#define IO_BASE 0xc000u
#define BAR4_BASE 0xe0000000ull
#define Q_GPA(q) (0x100000ull + 0x10000ull * (q))
#define CTRL_BUF 0x180000ull
#define TX_BUF 0x200000ull
#define RX_BUF 0x300000ull
#define RX_LEN 2048u
#define RX_BUFS 16u
#define NQ 3                        /* rx, tx, ctrl: no MQ */

typedef enum { TR_LEGACY, TR_MODERN, TR_MMIO1, TR_MMIO2 } Tr;

typedef struct Case {
    const char *path;
    const char *model;              /* -device model and options */
    Tr tr;
    bool packed;
    bool vdpa;                      /* -netdev vhost-vdpa on the simulator */
    bool vhost_user;                /* -netdev vhost-user to qnic-vhost-user-net */
    bool rss;                       /* rss=on: RSS programmed (subsection) */
} Case;

typedef struct Vm {
    QnicBackends *be;
    QnicMachine *m;
    QnicDevice *dev;
    QnicNetClient *sink;            /* the wire: frames the guest sent */
    VringHostRam ram;
    VringMem mem;
    GPtrArray *got;                 /* GBytes, frames the sink received */
    QnicNetdev *vdpa_nd;            /* vhost-vdpa: the netdev */
    QnicVdpaSim *sim;               /* and its device */
    int udp;                        /* vhost-user: the wire is this socket */
    struct sockaddr_in be_addr;     /* where the backend process listens */
    GPid be_pid;
    char *vhu_sock;
} Vm;

typedef struct Drv {
    const Case *c;
    VringDriver q[NQ];
    unsigned hdr_len;
    uint16_t tx_id;
} Drv;

/* ---- a machine with a hub between the NIC and the test's sink ---- */

static ssize_t sink_receive(QnicNetClient *nc, const struct iovec *iov, int iovcnt)
{
    Vm *vm = nc->opaque;
    size_t n = qnic_iov_size(iov, iovcnt);
    uint8_t *b = g_malloc(n);

    qnic_iov_to_buf(iov, iovcnt, 0, b, n);
    g_ptr_array_add(vm->got, g_bytes_new_take(b, n));
    return n;
}

static const QnicNetClientOps sink_ops = {
    .kind = QNIC_NET_CLIENT_OTHER,
    .receive_iov = sink_receive,
};

/* Firmware's part: BARs, decoding and bus mastering. */
static void firmware(Vm *vm, const Case *c)
{
    QnicPciDevice *pd = (QnicPciDevice *)vm->dev;

    if (c->tr != TR_LEGACY && c->tr != TR_MODERN) {
        return;
    }
    qnic_pci_config_write(pd, PCI_BASE_ADDRESS_0, IO_BASE, 4);
    qnic_pci_config_write(pd, PCI_BASE_ADDRESS_4, (uint32_t)BAR4_BASE, 4);
    qnic_pci_config_write(pd, PCI_BASE_ADDRESS_5, BAR4_BASE >> 32, 4);
    qnic_pci_config_write(pd, PCI_COMMAND,
                          PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 2);
}

/* vhost-vdpa's device file: a simulator moving frames to the machine's
 * netdev h0, which is on the sink's hub. */
static QnicBackends *sim_be;
static QnicVdpaSim *sim_opened;

static void *sim_open(void *ctx, const char *path, int fd, const QnicVdpaOps **ops,
                      GError **errp)
{
    QnicVdpaSimConfig cfg = { .be = sim_be, .device_opts = "netdev=h0,packed=on" };

    *ops = &qnic_vdpa_sim_ops;
    return sim_opened = qnic_vdpa_sim_new(&cfg, errp);
}

static void sim_close(void *ctx, void *dev)
{
    qnic_vdpa_sim_free(dev);
}

static const QnicVdpaOpener sim_opener = { .open = sim_open, .close = sim_close };

static int udp_bound(struct sockaddr_in *a)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    socklen_t l = sizeof(*a);

    g_assert_cmpint(fd, >=, 0);
    memset(a, 0, sizeof(*a));
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    g_assert_cmpint(bind(fd, (struct sockaddr *)a, sizeof(*a)), ==, 0);
    g_assert_cmpint(getsockname(fd, (struct sockaddr *)a, &l), ==, 0);
    return fd;
}

/* Whether a Unix socket at path listens (/proc/net/unix's flags carry
 * __SO_ACCEPTCON): a probe connection would be the backend's one client. */
static bool listening(const char *path)
{
    g_autofree char *text = NULL;
    g_auto(GStrv) lines = NULL;

    if (!g_file_get_contents("/proc/net/unix", &text, NULL, NULL)) {
        return g_file_test(path, G_FILE_TEST_EXISTS);
    }
    lines = g_strsplit(text, "\n", -1);
    for (unsigned i = 0; lines[i]; i++) {
        g_auto(GStrv) f = g_strsplit_set(lines[i], " ", -1);
        guint n = g_strv_length(f);
        if (n > 7 && !strcmp(f[n - 1], path) && !strcmp(f[3], "00010000")) {
            return true;
        }
    }
    return false;
}

/* qnic-vhost-user-net beside this test binary (the build makes it with the
 * tests), serving a UDP socket netdev whose peer is vm->udp. */
static bool vhost_user_backend(Vm *vm, GError **errp)
{
    static unsigned n;
    g_autofree char *self = g_file_read_link("/proc/self/exe", NULL);
    g_autofree char *dir = g_path_get_dirname(self);
    g_autofree char *tool = g_build_filename(dir, "..", "..", "tools", "qnic-vhost-user-net",
                                             NULL);
    struct sockaddr_in mine;
    g_autofree char *nd = NULL;
    int tmp;

    if (!g_file_test(tool, G_FILE_TEST_IS_EXECUTABLE)) {
        g_set_error(errp, QNIC_ERROR, QNIC_ERROR_FAILED, "%s is not built", tool);
        return false;
    }
    vm->udp = udp_bound(&mine);
    tmp = udp_bound(&vm->be_addr);          /* a free port for the backend */
    close(tmp);
    vm->vhu_sock = g_strdup_printf("%s/qnic-vstate-%d-%u.sock", g_get_tmp_dir(), getpid(), n++);
    nd = g_strdup_printf("socket,id=b0,udp=127.0.0.1:%u,localaddr=127.0.0.1:%u",
                         ntohs(mine.sin_port), ntohs(vm->be_addr.sin_port));
    {
        char *argv[] = { tool, "--socket", vm->vhu_sock, "--once", "--netdev", nd, NULL };
        g_assert_true(g_spawn_async(NULL, argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_STDOUT_TO_DEV_NULL |
                                    G_SPAWN_STDERR_TO_DEV_NULL, NULL, NULL,
                                    &vm->be_pid, errp));
    }
    for (unsigned i = 0; i < 5000 && !listening(vm->vhu_sock); i++) {
        g_usleep(1000);
    }
    return true;
}

static void vm_new(Vm *vm, const Case *c)
{
    QnicMachineConfig cfg = { .ram_size = RAM_SIZE };
    g_autoptr(GError) err = NULL;
    g_autofree char *d = g_strdup_printf("%s,netdev=n0,id=nic0%s", c->model,
                                         c->packed ? ",packed=on" : "");
    QnicNetdev *peer;

    memset(vm, 0, sizeof(*vm));
    vm->udp = -1;
    vm->be = qnic_backends_new();
    cfg.backends = vm->be;
    vm->m = qnic_machine_new(&cfg, &err);
    g_assert_no_error(err);
    vm->mem = vring_host_machine_mem(&vm->ram, vm->m, RAM_SIZE);
    if (c->vdpa) {
        g_assert_nonnull(qnic_netdev_add_str(vm->be, "hubport,id=h0,hubid=1", &err));
        sim_be = vm->be;
        qnic_vhost_vdpa_set_opener(&sim_opener);
        vm->vdpa_nd = qnic_netdev_add_str(vm->be, "vhost-vdpa,id=n0,vhostdev=/dev/sim", &err);
        vm->sim = sim_opened;
    } else if (c->vhost_user) {
        g_autofree char *chr = NULL;
        vhost_user_backend(vm, &err);
        g_assert_no_error(err);
        chr = g_strdup_printf("socket,id=c0,path=%s", vm->vhu_sock);
        g_assert_nonnull(qnic_chardev_new_str(qnic_backends_chardevs(vm->be), chr, &err));
        g_assert_no_error(err);
        g_assert_nonnull(qnic_netdev_add_str(vm->be, "vhost-user,id=n0,chardev=c0", &err));
    } else {
        g_assert_nonnull(qnic_netdev_add_str(vm->be, "hubport,id=n0,hubid=1", &err));
    }
    g_assert_no_error(err);
    peer = qnic_netdev_add_str(vm->be, "hubport,id=n1,hubid=1", &err);
    g_assert_no_error(err);
    vm->sink = qnic_net_client_new(vm->be, &sink_ops, "sink", "sink", vm);
    qnic_net_client_set_peer(vm->sink, peer->ncs[0]);
    vm->got = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
    vm->dev = qnic_device_create_str(vm->m, d, &err);
    g_assert_no_error(err);
    firmware(vm, c);
}

static void vm_free(Vm *vm)
{
    qnic_machine_free(vm->m);
    if (vm->vdpa_nd) {
        /* the simulator before the netdev it sends to */
        qnic_netdev_del(vm->vdpa_nd);
    }
    qnic_net_client_free(vm->sink);
    qnic_backends_free(vm->be);
    g_ptr_array_free(vm->got, TRUE);
    if (vm->be_pid) {
        kill(vm->be_pid, SIGTERM);
        waitpid(vm->be_pid, NULL, 0);
        g_spawn_close_pid(vm->be_pid);
        unlink(vm->vhu_sock);
        g_free(vm->vhu_sock);
        close(vm->udp);
    }
}

static QnicVirtioDevice *vdev_of(Vm *vm, const Case *c)
{
    return c->tr >= TR_MMIO1 ? ((QnicVirtioMmio *)vm->dev)->vdev : ((QnicVirtioPci *)vm->dev)->vdev;
}

static void run(unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        qnic_main_loop_iterate(false);
    }
}

/* ---- the driver's register accesses ---- */

static void mem_w(Vm *vm, uint64_t a, unsigned size, uint32_t v)
{
    g_assert_true(qnic_as_store(&vm->m->mem, a, size, v));
}

static uint32_t mem_r(Vm *vm, uint64_t a, unsigned size)
{
    uint64_t v = 0;

    g_assert_true(qnic_as_load(&vm->m->mem, a, size, &v));
    return v;
}

static void io_w(Vm *vm, unsigned off, unsigned size, uint32_t v)
{
    g_assert_true(qnic_as_store(&vm->m->io, IO_BASE + off, size, v));
}

static uint32_t io_r(Vm *vm, unsigned off, unsigned size)
{
    uint64_t v = 0;

    g_assert_true(qnic_as_load(&vm->m->io, IO_BASE + off, size, &v));
    return v;
}

#define MMIO(off) (QNIC_VIRTIO_MMIO_BASE + (off))
#define COMMON(off) (BAR4_BASE + (off))

static void set_status(Vm *vm, const Drv *d, uint8_t s)
{
    switch (d->c->tr) {
    case TR_LEGACY: io_w(vm, VIRTIO_PCI_STATUS, 1, s); break;
    case TR_MODERN: mem_w(vm, COMMON(VIRTIO_PCI_COMMON_STATUS), 1, s); break;
    default: mem_w(vm, MMIO(VIRTIO_MMIO_STATUS), 4, s); break;
    }
}

static uint8_t get_status(Vm *vm, const Drv *d)
{
    switch (d->c->tr) {
    case TR_LEGACY: return io_r(vm, VIRTIO_PCI_STATUS, 1);
    case TR_MODERN: return mem_r(vm, COMMON(VIRTIO_PCI_COMMON_STATUS), 1);
    default: return mem_r(vm, MMIO(VIRTIO_MMIO_STATUS), 4);
    }
}

static void kick(Vm *vm, const Drv *d, unsigned q)
{
    switch (d->c->tr) {
    case TR_LEGACY: io_w(vm, VIRTIO_PCI_QUEUE_NOTIFY, 2, q); break;
    case TR_MODERN: mem_w(vm, BAR4_BASE + 0x3000 + 4 * q, 2, q); break;
    default: mem_w(vm, MMIO(VIRTIO_MMIO_QUEUE_NOTIFY), 4, q); break;
    }
}

static uint64_t features_offered(Vm *vm, const Drv *d)
{
    switch (d->c->tr) {
    case TR_LEGACY:
        return io_r(vm, VIRTIO_PCI_HOST_FEATURES, 4);
    case TR_MODERN:
        mem_w(vm, COMMON(VIRTIO_PCI_COMMON_DFSELECT), 4, 1);
        {
            uint64_t hi = mem_r(vm, COMMON(VIRTIO_PCI_COMMON_DF), 4);
            mem_w(vm, COMMON(VIRTIO_PCI_COMMON_DFSELECT), 4, 0);
            return hi << 32 | mem_r(vm, COMMON(VIRTIO_PCI_COMMON_DF), 4);
        }
    default:
        mem_w(vm, MMIO(VIRTIO_MMIO_DEVICE_FEATURES_SEL), 4, 1);
        {
            uint64_t hi = mem_r(vm, MMIO(VIRTIO_MMIO_DEVICE_FEATURES), 4);
            mem_w(vm, MMIO(VIRTIO_MMIO_DEVICE_FEATURES_SEL), 4, 0);
            return hi << 32 | mem_r(vm, MMIO(VIRTIO_MMIO_DEVICE_FEATURES), 4);
        }
    }
}

static void features_write(Vm *vm, const Drv *d, uint64_t f)
{
    switch (d->c->tr) {
    case TR_LEGACY:
        io_w(vm, VIRTIO_PCI_GUEST_FEATURES, 4, (uint32_t)f);
        break;
    case TR_MODERN:
        for (unsigned i = 0; i < 2; i++) {
            mem_w(vm, COMMON(VIRTIO_PCI_COMMON_GFSELECT), 4, i);
            mem_w(vm, COMMON(VIRTIO_PCI_COMMON_GF), 4, (uint32_t)(f >> (32 * i)));
        }
        break;
    default:
        for (unsigned i = 0; i < 2; i++) {
            mem_w(vm, MMIO(VIRTIO_MMIO_DRIVER_FEATURES_SEL), 4, i);
            mem_w(vm, MMIO(VIRTIO_MMIO_DRIVER_FEATURES), 4, (uint32_t)(f >> (32 * i)));
        }
        break;
    }
}

/* Queue q: read its size, place its rings, enable it. Legacy layouts are
 * one block from a page frame. */
static void queue_setup(Vm *vm, Drv *d, unsigned q)
{
    bool legacy = d->c->tr == TR_LEGACY || d->c->tr == TR_MMIO1;
    uint64_t base = Q_GPA(q), desc = base, avail = base + 0x4000, used = base + 0x8000;
    uint16_t num;

    memset(qnic_machine_ram_ptr(vm->m, base, 0x10000), 0, 0x10000);
    switch (d->c->tr) {
    case TR_LEGACY:
        io_w(vm, VIRTIO_PCI_QUEUE_SEL, 2, q);
        num = io_r(vm, VIRTIO_PCI_QUEUE_NUM, 2);
        io_w(vm, VIRTIO_PCI_QUEUE_PFN, 4, base >> VIRTIO_PCI_QUEUE_ADDR_SHIFT);
        break;
    case TR_MODERN:
        mem_w(vm, COMMON(VIRTIO_PCI_COMMON_Q_SELECT), 2, q);
        num = mem_r(vm, COMMON(VIRTIO_PCI_COMMON_Q_SIZE), 2);
        mem_w(vm, COMMON(VIRTIO_PCI_COMMON_Q_DESCLO), 4, desc);
        mem_w(vm, COMMON(VIRTIO_PCI_COMMON_Q_AVAILLO), 4, avail);
        mem_w(vm, COMMON(VIRTIO_PCI_COMMON_Q_USEDLO), 4, used);
        mem_w(vm, COMMON(VIRTIO_PCI_COMMON_Q_ENABLE), 2, 1);
        break;
    case TR_MMIO1:
        mem_w(vm, MMIO(VIRTIO_MMIO_QUEUE_SEL), 4, q);
        num = mem_r(vm, MMIO(VIRTIO_MMIO_QUEUE_NUM_MAX), 4);
        mem_w(vm, MMIO(VIRTIO_MMIO_QUEUE_NUM), 4, num);
        mem_w(vm, MMIO(VIRTIO_MMIO_QUEUE_ALIGN), 4, 4096);
        mem_w(vm, MMIO(VIRTIO_MMIO_QUEUE_PFN), 4, base / 4096);
        break;
    default:
        mem_w(vm, MMIO(VIRTIO_MMIO_QUEUE_SEL), 4, q);
        num = mem_r(vm, MMIO(VIRTIO_MMIO_QUEUE_NUM_MAX), 4);
        mem_w(vm, MMIO(VIRTIO_MMIO_QUEUE_NUM), 4, num);
        mem_w(vm, MMIO(VIRTIO_MMIO_QUEUE_DESC_LOW), 4, desc);
        mem_w(vm, MMIO(VIRTIO_MMIO_QUEUE_AVAIL_LOW), 4, avail);
        mem_w(vm, MMIO(VIRTIO_MMIO_QUEUE_USED_LOW), 4, used);
        mem_w(vm, MMIO(VIRTIO_MMIO_QUEUE_READY), 4, 1);
        break;
    }
    g_assert_cmpuint(num, >, 0);
    if (legacy) {
        avail = base + 16ull * num;
        used = base + vring_legacy_used_offset(num, 4096);
    }
    vring_driver_init(&d->q[q], &vm->mem, num, d->c->packed, desc, avail, used);
}

static void post_rx(Vm *vm, Drv *d, uint16_t i)
{
    VringBuf b = { .addr = RX_BUF + (uint64_t)i * RX_LEN, .len = RX_LEN, .write = true };

    vring_add_at(&d->q[0], i, &b, 1);
}

static void driver_up(Vm *vm, Drv *d, const Case *c)
{
    bool modern = c->tr == TR_MODERN || c->tr == TR_MMIO2;
    uint64_t want = (1ull << VIRTIO_NET_F_MAC) | (1ull << VIRTIO_NET_F_STATUS) |
                    (1ull << VIRTIO_NET_F_CTRL_VQ) | (1ull << VIRTIO_NET_F_CTRL_RX) |
                    (1ull << VIRTIO_NET_F_CTRL_VLAN) | (1ull << VIRTIO_NET_F_GUEST_ANNOUNCE);
    uint64_t offered;

    memset(d, 0, sizeof(*d));
    d->c = c;
    if (modern) {
        want |= 1ull << VIRTIO_F_VERSION_1;
    }
    if (c->packed) {
        want |= 1ull << VIRTIO_F_RING_PACKED;
    }
    if (c->rss) {
        want |= 1ull << VIRTIO_NET_F_RSS;
    }
    set_status(vm, d, 0);
    set_status(vm, d, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
    if (c->tr == TR_MMIO1) {
        mem_w(vm, MMIO(VIRTIO_MMIO_GUEST_PAGE_SIZE), 4, 4096);
    }
    offered = features_offered(vm, d);
    g_assert_cmphex(offered & want, ==, want);
    features_write(vm, d, want);
    if (modern) {
        set_status(vm, d, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
                   VIRTIO_CONFIG_S_FEATURES_OK);
        g_assert_true(get_status(vm, d) & VIRTIO_CONFIG_S_FEATURES_OK);
    }
    d->hdr_len = modern ? sizeof(struct virtio_net_hdr_mrg_rxbuf) : sizeof(struct virtio_net_hdr);
    for (unsigned q = 0; q < NQ; q++) {
        queue_setup(vm, d, q);
    }
    set_status(vm, d, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
               (modern ? VIRTIO_CONFIG_S_FEATURES_OK : 0) | VIRTIO_CONFIG_S_DRIVER_OK);
    for (uint16_t i = 0; i < RX_BUFS; i++) {
        post_rx(vm, d, i);
    }
    kick(vm, d, 0);
}

/* ---- frames and control commands ---- */

static const uint8_t table_uni[6] = { 0x02, 0, 0, 0, 0, 0x01 };
static const uint8_t other_uni[6] = { 0x02, 0, 0, 0, 0, 0x77 };

static size_t make_frame(uint8_t f[64], const uint8_t *dst, const char *tag)
{
    memset(f, 0, 64);
    memcpy(f, dst, 6);
    memcpy(f + 6, (const uint8_t[]){ 0x02, 0, 0, 0, 0, 0x99 }, 6);
    f[12] = 0x88;
    f[13] = 0xb5;
    g_strlcpy((char *)f + 14, tag, 64 - 14);
    return 64;
}

/* The guest sends a frame tagged `tag` (no wait). */
static void guest_tx(Vm *vm, Drv *d, const char *tag)
{
    uint64_t a = TX_BUF + 0x200ull * (d->tx_id % 64);
    VringBuf b[2] = { { .addr = a, .len = d->hdr_len }, { .addr = a + 0x40, .len = 64 } };
    static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
    uint8_t f[64];

    memset(qnic_machine_ram_ptr(vm->m, a, d->hdr_len), 0, d->hdr_len);
    make_frame(f, bcast, tag);
    memcpy(qnic_machine_ram_ptr(vm->m, a + 0x40, 64), f, 64);
    if (d->c->packed) {
        vring_add_at(&d->q[1], d->tx_id % d->q[1].num, b, 2);
    } else {
        vring_add(&d->q[1], b, 2);
    }
    d->tx_id++;
    kick(vm, d, 1);
}

static unsigned count_tag(Vm *vm, const char *tag)
{
    unsigned n = 0;
    uint8_t b[2048];
    ssize_t got;

    while (vm->udp >= 0 && (got = recv(vm->udp, b, sizeof(b), 0)) > 0) {
        g_ptr_array_add(vm->got, g_bytes_new(b, got));
    }

    for (guint i = 0; i < vm->got->len; i++) {
        gsize len;
        const uint8_t *b = g_bytes_get_data(g_ptr_array_index(vm->got, i), &len);
        if (len >= 64 && !strcmp((const char *)b + 14, tag)) {
            n++;
        }
    }
    return n;
}

/* Every TX buffer the device used goes back to the driver. */
static unsigned tx_reap(Drv *d)
{
    uint16_t id;
    uint32_t len;
    unsigned n = 0;

    while (vring_get_used(&d->q[1], &id, &len)) {
        n++;
    }
    return n;
}

static void expect_wire(Vm *vm, Drv *d, const char *tag)
{
    for (unsigned i = 0; i < 2000 && count_tag(vm, tag) == 0; i++) {
        run(1);
        if (vm->udp >= 0) {
            g_usleep(1000);         /* another process moves it */
        }
    }
    g_assert_cmpuint(count_tag(vm, tag), ==, 1);
    tx_reap(d);
}

/* The peer sends a frame to dst; true when the guest received it (checked
 * by content), its buffer goes back. */
static bool wire_to_guest(Vm *vm, Drv *d, const uint8_t *dst, const char *tag)
{
    uint8_t f[64];
    uint16_t id;
    uint32_t len;

    make_frame(f, dst, tag);
    if (vm->udp >= 0) {
        g_assert_cmpint(sendto(vm->udp, f, sizeof(f), 0, (struct sockaddr *)&vm->be_addr,
                               sizeof(vm->be_addr)), ==, sizeof(f));
        for (unsigned i = 0; i < 2000 && vring_split_used_idx(&d->q[0]) == d->q[0].last_used;
             i++) {
            run(1);
            g_usleep(1000);
        }
    } else {
        qnic_net_send(vm->sink, f, sizeof(f));
        run(5);
    }
    if (!vring_get_used(&d->q[0], &id, &len)) {
        return false;
    }
    g_assert_cmpuint(len, ==, d->hdr_len + 64);
    g_assert_cmpmem(qnic_machine_ram_ptr(vm->m, RX_BUF + (uint64_t)id * RX_LEN + d->hdr_len, 64),
                    64, f, 64);
    post_rx(vm, d, id);
    kick(vm, d, 0);
    return true;
}

/* One command on the control queue; returns the device's ack. */
static uint8_t ctrl(Vm *vm, Drv *d, uint8_t cls, uint8_t cmd, const void *data, size_t len)
{
    uint8_t *buf = qnic_machine_ram_ptr(vm->m, CTRL_BUF, 0x1000);
    VringBuf b[3] = {
        { .addr = CTRL_BUF, .len = 2 },
        { .addr = CTRL_BUF + 0x10, .len = len },
        { .addr = CTRL_BUF + 0x800, .len = 1, .write = true },
    };
    uint16_t id;
    uint32_t used_len;

    buf[0] = cls;
    buf[1] = cmd;
    if (len) {
        memcpy(buf + 0x10, data, len);
    } else {
        b[1] = b[2];                /* no data: header and ack only */
    }
    buf[0x800] = 0xee;
    vring_add(&d->q[2], b, len ? 3 : 2);
    kick(vm, d, 2);
    g_assert_true(vring_get_used(&d->q[2], &id, &used_len));
    return buf[0x800];
}

static void program_filters(Vm *vm, Drv *d)
{
    uint8_t off = 0, table[4 + 12 + 4 + 6];
    uint16_t vid = 5;

    g_assert_cmpuint(ctrl(vm, d, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, &off, 1), ==,
                     VIRTIO_NET_OK);
    qnic_st32(table, 2);
    memcpy(table + 4, table_uni, 6);
    memcpy(table + 10, (const uint8_t[]){ 0x02, 0, 0, 0, 0, 0x02 }, 6);
    qnic_st32(table + 16, 1);
    memcpy(table + 20, (const uint8_t[]){ 0x01, 0, 0x5e, 0, 0, 0x01 }, 6);
    g_assert_cmpuint(ctrl(vm, d, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, table,
                          sizeof(table)), ==, VIRTIO_NET_OK);
    g_assert_cmpuint(ctrl(vm, d, VIRTIO_NET_CTRL_VLAN, VIRTIO_NET_CTRL_VLAN_ADD, &vid, 2), ==,
                     VIRTIO_NET_OK);
    if (d->c->rss) {
        /* hash types, a 2-entry table (mask 1) of queue 0, unclassified 0,
         * max_tx_vq 1, a 40-byte key */
        uint8_t rss[4 + 2 + 2 + 4 + 2 + 1 + 40] = { 0 };
        qnic_st32(rss, VIRTIO_NET_RSS_HASH_TYPE_IPv4 | VIRTIO_NET_RSS_HASH_TYPE_TCPv4);
        qnic_st16(rss + 4, 1);
        qnic_st16(rss + 12, 1);
        rss[14] = 40;
        for (unsigned i = 0; i < 40; i++) {
            rss[15 + i] = 0x6d + i;
        }
        g_assert_cmpuint(ctrl(vm, d, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_RSS_CONFIG, rss,
                              sizeof(rss)), ==, VIRTIO_NET_OK);
    }
}

/* The status field of the config space as the driver reads it. */
static uint16_t config_status(Vm *vm, const Drv *d)
{
    switch (d->c->tr) {
    case TR_LEGACY: return io_r(vm, VIRTIO_PCI_CONFIG_OFF(false) + 6, 2);
    case TR_MODERN: return mem_r(vm, BAR4_BASE + 0x2000 + 6, 2);
    default: return mem_r(vm, MMIO(VIRTIO_MMIO_CONFIG) + 6, 2);
    }
}

/* ---- streams ---- */

static GByteArray *save(Vm *vm)
{
    GByteArray *b = g_byte_array_new();
    g_autoptr(GError) err = NULL;

    g_assert_true(qnic_device_save_state(vm->dev, b, &err));
    g_assert_no_error(err);
    return b;
}

static char *dump(const GByteArray *b)
{
    g_autoptr(GError) err = NULL;
    char *s = qnic_state_dump(b->data, b->len, &err);

    g_assert_no_error(err);
    g_assert_nonnull(s);
    return s;
}

/* The device's stream dumps as `want` does. */
static void expect_same_state(Vm *vm, const GByteArray *want)
{
    g_autoptr(GByteArray) again = save(vm);
    g_autofree char *a = dump(want), *b = dump(again);

    if (strcmp(a, b)) {
        g_test_message("saved:\n%s\nafter load:\n%s", a, b);
    }
    g_assert_cmpstr(a, ==, b);
}

static void copy_ram(Vm *to, Vm *from)
{
    memcpy(qnic_machine_ram_ptr(to->m, 0, RAM_SIZE), qnic_machine_ram_ptr(from->m, 0, RAM_SIZE),
           RAM_SIZE);
}

/* The driver's rings, now over to's RAM. */
static void move_driver(Drv *d, Vm *to)
{
    for (unsigned q = 0; q < NQ; q++) {
        d->q[q].mem = to->mem;
    }
}

/* Bring the source up and to a state worth saving; returns with the VM
 * stopped and one TX frame ("inflight") popped and held. */
static void source_run(Vm *src, Drv *d, const Case *c)
{
    driver_up(src, d, c);
    program_filters(src, d);
    for (unsigned i = 0; i < 3; i++) {
        g_autofree char *tag = g_strdup_printf("src-tx-%u", i);
        guest_tx(src, d, tag);
        expect_wire(src, d, tag);
        g_assert_true(wire_to_guest(src, d, table_uni, "src-rx"));
    }
    /* qnic filters, or the vDPA device it told; a vhost-user backend does
     * not take control commands (as with QEMU) */
    if (!c->vhost_user) {
        g_assert_false(wire_to_guest(src, d, other_uni, "filtered"));
    }
    if (c->vdpa || c->vhost_user) {
        /* The simulator's netdev is the stopped VM's too, so a frame it
         * took while stopped would wait there, used: a real device's
         * goes out. Here it goes before the stop. */
        guest_tx(src, d, "inflight");
        expect_wire(src, d, "inflight");
        qnic_net_set_vm_running(src->be, false);
        return;
    }
    qnic_net_set_vm_running(src->be, false);
    guest_tx(src, d, "inflight");
    run(5);
    g_assert_cmpuint(vdev_of(src, c)->vqs[1].inuse, ==, 1);
    g_assert_cmpuint(count_tag(src, "inflight"), ==, 0);
}

/* The loaded device carries on with the driver's rings, sending first
 * what was in flight. */
static void dest_continue(Vm *dst, Drv *d, bool inflight)
{
    if (inflight) {
        expect_wire(dst, d, "inflight");
    }
    for (unsigned i = 0; i < 3; i++) {
        g_autofree char *tag = g_strdup_printf("dst-tx-%u", i);
        guest_tx(dst, d, tag);
        expect_wire(dst, d, tag);
        g_assert_true(wire_to_guest(dst, d, table_uni, "dst-rx"));
    }
    /* the MAC table and promisc off came along */
    if (!d->c->vhost_user) {
        g_assert_false(wire_to_guest(dst, d, other_uni, "filtered"));
    }
    g_assert_cmpuint(count_tag(dst, "inflight"), ==, inflight);
}

static void test_migrate(gconstpointer opaque)
{
    const Case *c = opaque;
    Vm src, dst;
    Drv d;
    g_autoptr(GByteArray) stream = NULL;
    g_autoptr(GError) err = NULL;

    vm_new(&src, c);
    source_run(&src, &d, c);
    stream = save(&src);
    g_test_message("%s: %u-byte stream", c->path, stream->len);
    {
        /* RSS state travels in its subsection only while RSS is on */
        g_autofree char *text = dump(stream);
        g_assert_cmpint(!!strstr(text, "virtio-net-rss"), ==, c->rss);
    }
    /* in flight in qnic's ring; a vhost backend's are in its base */
    g_assert_cmpuint(vdev_of(&src, c)->vqs[1].inuse, ==, c->vdpa || c->vhost_user ? 0 : 1);
    if (c->vdpa) {
        /* GET_VRING_BASE took the rings back: the stopped source's
         * backend moves nothing more */
        g_assert_false(qnic_vdpa_sim_vq_running(src.sim, 0));
        g_assert_false(qnic_vdpa_sim_vq_running(src.sim, 1));
    }

    vm_new(&dst, c);
    copy_ram(&dst, &src);
    g_assert_true(qnic_device_load_state(dst.dev, stream->data, stream->len, &err));
    g_assert_no_error(err);
    if (c->vdpa) {
        /* the destination's backend has the rings, from the loaded bases */
        g_assert_true(qnic_vdpa_sim_vq_running(dst.sim, 0));
        g_assert_true(qnic_vdpa_sim_vq_running(dst.sim, 1));
    }
    expect_same_state(&dst, stream);
    move_driver(&d, &dst);
    dest_continue(&dst, &d, !c->vdpa && !c->vhost_user);

    /* the switch-over's announcement: the driver accepted GUEST_ANNOUNCE */
    g_assert_true(qnic_virtio_net_guest_announce(dst.dev));
    g_assert_true(vdev_of(&dst, c)->isr & 2);
    g_assert_cmphex(config_status(&dst, &d), ==, VIRTIO_NET_S_LINK_UP | VIRTIO_NET_S_ANNOUNCE);
    g_assert_cmpuint(ctrl(&dst, &d, VIRTIO_NET_CTRL_ANNOUNCE, VIRTIO_NET_CTRL_ANNOUNCE_ACK, NULL,
                          0), ==, VIRTIO_NET_OK);
    g_assert_cmphex(config_status(&dst, &d), ==, VIRTIO_NET_S_LINK_UP);

    /* A migration that failed: the source runs on and completes the
     * frame it held, once. */
    qnic_net_set_vm_running(src.be, true);
    run(5);
    g_assert_cmpuint(count_tag(&src, "inflight"), ==, 1);
    vm_free(&src);
    vm_free(&dst);
}

/* Loading into the same device after a reset (a snapshot restored). */
static void test_restore_same(gconstpointer opaque)
{
    const Case *c = opaque;
    Vm vm;
    Drv d;
    g_autoptr(GByteArray) stream = NULL;
    g_autoptr(GError) err = NULL;
    g_autofree uint8_t *ram = g_malloc(RAM_SIZE);

    vm_new(&vm, c);
    source_run(&vm, &d, c);
    stream = save(&vm);
    memcpy(ram, qnic_machine_ram_ptr(vm.m, 0, RAM_SIZE), RAM_SIZE);
    /* the reset clears the PCI function too: the stream restores it */
    qnic_device_reset(vm.dev);
    memcpy(qnic_machine_ram_ptr(vm.m, 0, RAM_SIZE), ram, RAM_SIZE);
    g_assert_true(qnic_device_load_state(vm.dev, stream->data, stream->len, &err));
    g_assert_no_error(err);
    expect_same_state(&vm, stream);
    qnic_net_set_vm_running(vm.be, true);
    dest_continue(&vm, &d, !c->vdpa);
    vm_free(&vm);
}


/* ---- hostile streams: CRC-valid edits (tests/lib/state-patch.h) ---- */

static void st32(uint8_t *p, uint32_t v)
{
    for (unsigned i = 0; i < 4; i++) {
        p[i] = v >> (8 * i);
    }
}

/* Set `path` ("f" or "array[i].f") of section `sect` to v. */
static void patch_uint(GByteArray *b, const char *sect, const char *path, uint64_t v)
{
    const char *dot = strchr(path, '.');
    g_autofree char *array = NULL;

    if (!dot) {
        g_assert_true(state_patch_uint(b, sect, path, 0, v));
        return;
    }
    array = g_strndup(path, strcspn(path, "["));
    g_assert_true(state_patch_elem_uint(b, sect, array, atoi(strchr(path, '[') + 1), dot + 1, v));
}

/* Give struct array `name` of `sect` `more` copies of its last element. */
static void grow_array(GByteArray *b, const char *sect, const char *name, unsigned more)
{
    uint8_t kind;
    size_t start = 0, end = 0, payload, last, body_len_at;
    uint8_t *a = state_patch_find(b, sect, name, &kind, &start, &end);
    uint32_t cnt, elem;
    g_autoptr(GByteArray) n = g_byte_array_sized_new(b->len);

    g_assert_nonnull(a);
    g_assert_cmpint(kind, ==, 's');
    payload = a - b->data;
    cnt = state_patch_le(a, 4);
    last = payload + 4;
    for (uint32_t i = 0; i + 1 < cnt; i++) {
        last += 4 + state_patch_le(b->data + last, 4);
    }
    elem = 4 + state_patch_le(b->data + last, 4);
    g_byte_array_append(n, b->data, last + elem);
    for (unsigned i = 0; i < more; i++) {
        g_byte_array_append(n, b->data + last, elem);
    }
    g_byte_array_append(n, b->data + last + elem, b->len - last - elem);
    g_byte_array_set_size(b, 0);
    g_byte_array_append(b, n->data, n->len);
    st32(b->data + payload, cnt + more);
    body_len_at = start + 2 + b->data[start + 1] + 4;
    st32(b->data + body_len_at, state_patch_le(b->data + body_len_at, 4) + more * elem);
    state_patch_fix_crc(b, start, end + more * elem);
}

/* A saved source, and a brought-up target with traffic behind it whose
 * stream is *base: hostile variants of the source's stream go to it. */
static GByteArray *hostile_setup(Vm *src, Drv *ds, Vm *dst, Drv *dd, const Case *c,
                                 GByteArray **base)
{
    GByteArray *stream;

    vm_new(src, c);
    source_run(src, ds, c);
    stream = save(src);
    vm_new(dst, c);
    driver_up(dst, dd, c);
    program_filters(dst, dd);
    guest_tx(dst, dd, "before");
    expect_wire(dst, dd, "before");
    *base = save(dst);
    return stream;
}

static GByteArray *copy_stream(const GByteArray *b, size_t len)
{
    GByteArray *t = g_byte_array_sized_new(b->len + 1);

    g_byte_array_append(t, b->data, len);
    return t;
}

static void expect_refused(Vm *vm, const GByteArray *b, const char *what)
{
    g_autoptr(GError) err = NULL;

    g_assert_false(qnic_device_load_state(vm->dev, b->data, b->len, &err));
    g_assert_nonnull(err);
    if (what && !strstr(err->message, what)) {
        g_test_message("error '%s' does not say '%s'", err->message, what);
        g_assert_not_reached();
    }
}

/* The refusals left the device as it was: same state, frames move. */
static void expect_untouched(Vm *vm, Drv *d, const GByteArray *baseline)
{
    expect_same_state(vm, baseline);
    guest_tx(vm, d, "after");
    expect_wire(vm, d, "after");
    g_assert_true(wire_to_guest(vm, d, table_uni, "after-rx"));
}

static void test_truncated_and_flipped(gconstpointer opaque)
{
    const Case *c = opaque;
    Vm src, dst;
    Drv ds, dd;
    g_autoptr(GByteArray) stream = NULL, base = NULL;

    stream = hostile_setup(&src, &ds, &dst, &dd, c, &base);
    for (size_t len = 0; len < stream->len; len++) {
        g_autoptr(GByteArray) t = copy_stream(stream, len);
        expect_refused(&dst, t, NULL);
    }
    for (size_t pos = 0; pos < stream->len; pos++) {
        g_autoptr(GByteArray) t = copy_stream(stream, stream->len);
        t->data[pos] ^= 1u << (pos % 8);
        expect_refused(&dst, t, NULL);
    }
    {
        /* trailing bytes */
        g_autoptr(GByteArray) t = copy_stream(stream, stream->len);
        g_byte_array_append(t, (const uint8_t *)"S", 1);
        expect_refused(&dst, t, NULL);
    }
    expect_untouched(&dst, &dd, base);
    vm_free(&src);
    vm_free(&dst);
}

typedef struct Bad {
    const char *sect, *path;
    uint64_t value;
    const char *says;
} Bad;

static void test_semantic(gconstpointer opaque)
{
    const Case *c = opaque;
    bool pci = c->tr == TR_LEGACY || c->tr == TR_MODERN;
    const Bad bad[] = {
        { "virtio", "vqs[1].last_avail_idx", c->packed ? 300 : 0x8000,
          c->packed ? "avail index beyond the queue size" : "used index ahead" },
        { "virtio", "vqs[1].used_idx", c->packed ? 256 : 0x9000,
          c->packed ? "used index beyond" : "used index ahead" },
        { "virtio", c->packed ? "vqs[0].used_idx" : "vqs[0].shadow_avail_idx", 0x7000,
          c->packed ? "used index beyond" : "avail index moved past" },
        { "virtio", "vqs[0].num", 2048, "size out of range" },
        { "virtio", "vqs[0].inuse", 300, "in use" },
        { "virtio", "vqs[2].desc_gpa", 0xfff00000ull, "not in guest RAM" },
        { "virtio", "vqs[2].used_gpa", Q_GPA(2) + 2, "misaligned" },
        { "virtio", "vqs[1].vector", 9, "vector" },
        { "virtio", "config_vector", 9, "vector" },
        { "virtio", "guest_features", 1ull << VIRTIO_NET_F_MQ, "does not offer" },
        { "virtio", "isr", 9, NULL },
        { "virtio-net", "mac_in_use", 65, NULL },
        { "virtio-net", "mac_first_multi", 10, "first multicast" },
        { "virtio-net", "curr_pairs", 2, "queue pairs" },
        { "virtio-net", "curr_pairs", 0, "queue pairs" },
        { "virtio-net", "status", 0x80, "status bits" },
        { "virtio-net", "max_pairs", 4, "queue pairs" },
        { "virtio-net", "curr_guest_offloads", 1ull << VIRTIO_NET_F_GUEST_CSUM, "offloads" },
        { pci ? "virtio-pci" : "virtio-mmio", pci ? "nvectors" : "guest_page_size",
          pci ? 8 : 3000, pci ? "is not this one" : "power of two" },
    };
    Vm src, dst;
    Drv ds, dd;
    g_autoptr(GByteArray) stream = NULL, base = NULL;

    stream = hostile_setup(&src, &ds, &dst, &dd, c, &base);
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autoptr(GByteArray) t = copy_stream(stream, stream->len);
        uint64_t v = bad[i].value;

        if (!strcmp(bad[i].path, "guest_features")) {
            v |= vdev_of(&src, c)->guest_features;
        }
        patch_uint(t, bad[i].sect, bad[i].path, v);
        g_test_message("%s.%s = 0x%" PRIx64, bad[i].sect, bad[i].path, v);
        expect_refused(&dst, t, bad[i].says);
    }
    for (unsigned more = 1; more <= 1022; more += 1021) {
        /* more queues than the layout has; more than a device can have */
        g_autoptr(GByteArray) t = copy_stream(stream, stream->len);
        grow_array(t, "virtio", "vqs", more);
        expect_refused(&dst, t, more == 1 ? "queues in the stream" : NULL);
    }
    /* and the stream itself loads */
    {
        g_autoptr(GError) err = NULL;
        g_assert_true(qnic_device_load_state(dst.dev, base->data, base->len, &err));
        g_assert_no_error(err);
    }
    expect_untouched(&dst, &dd, base);
    vm_free(&src);
    vm_free(&dst);
}

static const Case cases[] = {
    { "/virtio-state/pci/legacy/split", "virtio-net-pci", TR_LEGACY, false },
    { "/virtio-state/pci/modern/split", "virtio-net-pci", TR_MODERN, false },
    { "/virtio-state/pci/modern/packed", "virtio-net-pci", TR_MODERN, true },
    { "/virtio-state/pci-transitional/legacy/split", "virtio-net-pci-transitional", TR_LEGACY,
      false },
    { "/virtio-state/pci-non-transitional/modern/packed", "virtio-net-pci-non-transitional",
      TR_MODERN, true },
    { "/virtio-state/mmio/v1/split", "virtio-net-device", TR_MMIO1, false },
    { "/virtio-state/mmio/v2/split", "virtio-net-device,force-legacy=off", TR_MMIO2, false },
    { "/virtio-state/mmio/v2/packed", "virtio-net-device,force-legacy=off", TR_MMIO2, true },
    { "/virtio-state/vhost-vdpa/split", "virtio-net-pci,disable-legacy=on", TR_MODERN, false,
      true },
    { "/virtio-state/vhost-user/split", "virtio-net-pci,disable-legacy=on", TR_MODERN, false,
      false, true },
    { "/virtio-state/pci/modern/packed-rss", "virtio-net-pci,rss=on", TR_MODERN, true, false,
      false, true },
};

/* A stream of one model does not load into another. */
static void test_other_model(void)
{
    Vm a, b;
    Drv d;
    g_autoptr(GByteArray) stream = NULL;

    vm_new(&a, &cases[1]);
    source_run(&a, &d, &cases[1]);
    stream = save(&a);
    vm_new(&b, &cases[6]);
    expect_refused(&b, stream, "virtio-net-pci");
    vm_free(&a);
    vm_free(&b);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_test_add_data_func(cases[i].path, &cases[i], test_migrate);
    }
    g_test_add_data_func("/virtio-state/restore-same/pci/modern/packed", &cases[2],
                         test_restore_same);
    g_test_add_data_func("/virtio-state/restore-same/mmio/v1/split", &cases[5],
                         test_restore_same);
    g_test_add_data_func("/virtio-state/hostile/truncated-flipped/pci/modern/split", &cases[1],
                         test_truncated_and_flipped);
    g_test_add_data_func("/virtio-state/hostile/truncated-flipped/mmio/v2/packed", &cases[7],
                         test_truncated_and_flipped);
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *p = g_strdup_printf("/virtio-state/hostile/semantic%s",
                                             cases[i].path + strlen("/virtio-state"));
        g_test_add_data_func(p, &cases[i], test_semantic);
    }
    g_test_add_func("/virtio-state/hostile/other-model", test_other_model);
    return g_test_run();
}
