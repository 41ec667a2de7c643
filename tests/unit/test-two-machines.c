/*
 * Two machines in one process, side by side, as an embedder running two VMs
 * (or a migration test holding its source and its destination) has them:
 * each with its own QnicBackends, the same netdev, NIC and chardev ids in
 * both, joined by a `-netdev stream` pair over a Unix socket and driven by
 * a legacy virtio-net driver in each. The test checks that nothing one
 * machine names or does leaks into the other: ids, default MACs, client
 * lists, link state, the stopped/running state, and that one machine can be
 * freed whole while the other runs on and takes a new peer. Run under ASan
 * and LSan (CI does, in the sanitized build), it also proves that freeing a
 * machine and its backends leaves nothing behind.
 */
#include "qnic/machine.h"
#include "qnic/backends.h"
#include "qnic/device.h"
#include "qnic/pci.h"
#include "qnic/net.h"
#include "qnic/mainloop.h"
#include "vring-host.h"
#include <linux/virtio_pci.h>
#include <linux/virtio_net.h>
#include <linux/pci_regs.h>
#include <unistd.h>

#define IO_BASE 0xc000u
#define RXQ_GPA 0x100000ull
#define TXQ_GPA 0x110000ull
#define CTRLQ_GPA 0x120000ull
#define TXBUF_GPA 0x200000ull
#define RXBUF_GPA 0x300000ull
#define RXBUF_LEN 2048u
#define RX_BUFS 16u
#define HDR_LEN 10u                 /* struct virtio_net_hdr, no mrg_rxbuf */
#define RAM_SIZE (16u << 20)

typedef struct Vm {
    const char *name;
    QnicBackends *be;
    QnicMachine *m;
    QnicDevice *dev;
    VringHostRam ram;
    VringMem mem;
    VringDriver rxq, txq;
    uint16_t rx_taken;              /* used RX entries the test has read */
} Vm;

static char *sock_path;

static void io_write(Vm *vm, unsigned off, unsigned size, uint32_t v)
{
    g_assert_true(qnic_as_store(&vm->m->io, IO_BASE + off, size, v));
}

static uint32_t io_read(Vm *vm, unsigned off, unsigned size)
{
    uint64_t v = 0;

    g_assert_true(qnic_as_load(&vm->m->io, IO_BASE + off, size, &v));
    return v;
}

static uint8_t *ram(Vm *vm, uint64_t gpa, uint64_t len)
{
    uint8_t *p = qnic_machine_ram_ptr(vm->m, gpa, len);

    g_assert_nonnull(p);
    return p;
}

/* Legacy bring-up with MAC and STATUS, then every RX buffer posted. */
static void driver_up(Vm *vm)
{
    static const uint64_t qaddr[3] = { RXQ_GPA, TXQ_GPA, CTRLQ_GPA };
    VringDriver *drv[2] = { &vm->rxq, &vm->txq };
    uint32_t want = (1u << VIRTIO_NET_F_MAC) | (1u << VIRTIO_NET_F_STATUS);

    io_write(vm, VIRTIO_PCI_STATUS, 1, 0);
    io_write(vm, VIRTIO_PCI_STATUS, 1, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
    io_write(vm, VIRTIO_PCI_GUEST_FEATURES, 4, io_read(vm, VIRTIO_PCI_HOST_FEATURES, 4) & want);
    for (unsigned q = 0; q < 3; q++) {
        uint16_t num;

        io_write(vm, VIRTIO_PCI_QUEUE_SEL, 2, q);
        num = io_read(vm, VIRTIO_PCI_QUEUE_NUM, 2);
        memset(ram(vm, qaddr[q], vring_legacy_size(num, 4096)), 0, vring_legacy_size(num, 4096));
        io_write(vm, VIRTIO_PCI_QUEUE_PFN, 4, qaddr[q] >> VIRTIO_PCI_QUEUE_ADDR_SHIFT);
        if (q < 2) {
            vring_driver_init(drv[q], &vm->mem, num, false, qaddr[q], qaddr[q] + 16ull * num,
                              qaddr[q] + vring_legacy_used_offset(num, 4096));
        }
    }
    io_write(vm, VIRTIO_PCI_STATUS, 1, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
             VIRTIO_CONFIG_S_DRIVER_OK);
    for (unsigned i = 0; i < RX_BUFS; i++) {
        VringBuf b = { .addr = RXBUF_GPA + i * RXBUF_LEN, .len = RXBUF_LEN, .write = true };
        vring_add(&vm->rxq, &b, 1);
    }
    io_write(vm, VIRTIO_PCI_QUEUE_NOTIFY, 2, 0);
}

/* A machine of its own with `stream` as net0 and a virtio-net-pci nic0 on
 * it: the ids are the same in every machine this test makes. */
static void vm_new(Vm *vm, const char *name, const char *stream)
{
    QnicMachineConfig cfg = { .ram_size = RAM_SIZE };
    g_autoptr(GError) err = NULL;
    g_autofree char *nd = g_strdup_printf("stream,id=net0,%s", stream);
    QnicPciDevice *pd;

    memset(vm, 0, sizeof(*vm));
    vm->name = name;
    vm->be = qnic_backends_new();
    cfg.backends = vm->be;
    vm->m = qnic_machine_new(&cfg, &err);
    g_assert_no_error(err);
    vm->mem = vring_host_machine_mem(&vm->ram, vm->m, RAM_SIZE);
    g_assert_nonnull(qnic_netdev_add_str(vm->be, nd, &err));
    g_assert_no_error(err);
    vm->dev = qnic_device_create_str(vm->m, "virtio-net-pci,id=nic0,netdev=net0,addr=4", &err);
    g_assert_no_error(err);
    pd = (QnicPciDevice *)vm->dev;
    qnic_pci_config_write(pd, PCI_BASE_ADDRESS_0, IO_BASE, 4);
    qnic_pci_config_write(pd, PCI_COMMAND, PCI_COMMAND_IO | PCI_COMMAND_MASTER, 2);
    driver_up(vm);
}

/* Machine first (its NIC leaves the netdev), then its backends. */
static void vm_free(Vm *vm)
{
    qnic_machine_free(vm->m);
    qnic_backends_free(vm->be);
    memset(vm, 0, sizeof(*vm));
}

static void send_frame(Vm *vm, const uint8_t *frame, size_t len)
{
    VringBuf b[2] = { { .addr = TXBUF_GPA, .len = HDR_LEN },
                      { .addr = TXBUF_GPA + 0x100, .len = len } };

    memset(ram(vm, TXBUF_GPA, HDR_LEN), 0, HDR_LEN);
    memcpy(ram(vm, TXBUF_GPA + 0x100, len), frame, len);
    vring_add(&vm->txq, b, 2);
    io_write(vm, VIRTIO_PCI_QUEUE_NOTIFY, 2, 1);
}

static uint16_t rx_used(Vm *vm)
{
    return vring_split_used_idx(&vm->rxq);
}

/* Run the shared main loop until cond(vm) or about two seconds. */
static bool run_until(bool (*cond)(Vm *), Vm *vm)
{
    for (int i = 0; i < 2000 && !cond(vm); i++) {
        qnic_main_loop_iterate(false);
        g_usleep(1000);
    }
    return cond(vm);
}

static bool rx_pending(Vm *vm)
{
    return rx_used(vm) != vm->rx_taken;
}

static bool tx_all_used(Vm *vm)
{
    return vring_split_used_idx(&vm->txq) == vm->txq.avail_idx;
}

/* The next received frame, checked against the one sent; its buffer goes
 * back to the ring. */
static void expect_frame(Vm *vm, const uint8_t *frame, size_t len)
{
    uint32_t id, used_len;
    VringBuf b;

    g_assert_true(run_until(rx_pending, vm));
    vring_split_used_elem(&vm->rxq, vm->rx_taken++, &id, &used_len);
    g_assert_cmpuint(used_len, ==, HDR_LEN + len);
    g_assert_cmpmem(ram(vm, RXBUF_GPA + id * RXBUF_LEN + HDR_LEN, len), len, frame, len);
    b = (VringBuf){ .addr = RXBUF_GPA + id * RXBUF_LEN, .len = RXBUF_LEN, .write = true };
    vring_add(&vm->rxq, &b, 1);
    io_write(vm, VIRTIO_PCI_QUEUE_NOTIFY, 2, 0);
}

static void make_frame(uint8_t f[64], const char *tag)
{
    memset(f, 0, 64);
    memset(f, 0xff, 6);                              /* broadcast */
    memcpy(f + 6, (const uint8_t[]){ 0x02, 0, 0, 0, 0, 0x99 }, 6);
    f[12] = 0x88;
    f[13] = 0xb5;                                    /* local experimental */
    g_strlcpy((char *)f + 14, tag, 64 - 14);
}

/* Frames cross both ways between a and b. The client (a) speaks first:
 * its connect went through at creation, and b reads the frame once its
 * main loop has accepted the connection. */
static void exchange(Vm *a, Vm *b, const char *tag)
{
    uint8_t f[64];
    g_autofree char *ta = g_strdup_printf("%s a->b", tag);
    g_autofree char *tb = g_strdup_printf("%s b->a", tag);

    make_frame(f, ta);
    send_frame(a, f, sizeof(f));
    expect_frame(b, f, sizeof(f));
    make_frame(f, tb);
    send_frame(b, f, sizeof(f));
    expect_frame(a, f, sizeof(f));
}

static void check_own_clients(Vm *vm)
{
    unsigned n = 0;

    for (GList *l = qnic_net_clients(vm->be); l; l = l->next) {
        QnicNetClient *nc = l->data;
        g_assert_true(nc->be == vm->be);
        n++;
    }
    g_assert_cmpuint(n, ==, 2);     /* its netdev's client and its NIC's */
}

static void test_two_machines(void)
{
    Vm a, b, a2;
    g_autofree char *srv = g_strdup_printf("server=on,addr.type=unix,addr.path=%s", sock_path);
    g_autofree char *cli = g_strdup_printf("server=off,addr.type=unix,addr.path=%s", sock_path);
    QnicNetClient *nic_a, *nic_b;
    uint8_t f[64];

    vm_new(&b, "b", srv);
    vm_new(&a, "a", cli);

    /* The same ids name different objects; each machine counts its own
     * default MACs, so both NICs are QEMU's first, 52:54:00:12:34:56. */
    g_assert_true(qnic_netdev_find(a.be, "net0") != qnic_netdev_find(b.be, "net0"));
    for (unsigned i = 0; i < 6; i++) {
        static const uint8_t mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
        g_assert_cmphex(io_read(&a, VIRTIO_PCI_CONFIG_OFF(false) + i, 1), ==, mac[i]);
        g_assert_cmphex(io_read(&b, VIRTIO_PCI_CONFIG_OFF(false) + i, 1), ==, mac[i]);
    }
    check_own_clients(&a);
    check_own_clients(&b);
    exchange(&a, &b, "first");

    /* Link: set_link's lookup is per machine. */
    nic_a = qnic_net_client_find_link(a.be, "nic0");
    nic_b = qnic_net_client_find_link(b.be, "nic0");
    g_assert_nonnull(nic_a);
    g_assert_true(nic_a != nic_b && nic_b->be == b.be);
    qnic_net_set_link(nic_b, false);
    g_assert_true(nic_b->link_down);
    g_assert_false(nic_a->link_down);
    g_assert_cmphex(io_read(&a, VIRTIO_PCI_CONFIG_OFF(false) + 6, 2) & VIRTIO_NET_S_LINK_UP, ==,
                    VIRTIO_NET_S_LINK_UP);
    g_assert_cmphex(io_read(&b, VIRTIO_PCI_CONFIG_OFF(false) + 6, 2) & VIRTIO_NET_S_LINK_UP, ==, 0);
    qnic_net_set_link(nic_b, true);

    /* Stopping a holds the frames for a; b runs on and its TX completes. */
    qnic_net_set_vm_running(a.be, false);
    g_assert_true(qnic_net_vm_running(b.be));
    make_frame(f, "held for a");
    send_frame(&b, f, sizeof(f));
    g_assert_true(run_until(tx_all_used, &b));
    for (int i = 0; i < 50; i++) {
        qnic_main_loop_iterate(false);
        g_usleep(1000);
    }
    g_assert_false(rx_pending(&a));
    qnic_net_set_vm_running(a.be, true);
    expect_frame(&a, f, sizeof(f));

    /* a goes whole; b keeps running, its frames go nowhere (reported
     * sent), and a new machine with the same ids connects to it. */
    vm_free(&a);
    make_frame(f, "to nobody");
    send_frame(&b, f, sizeof(f));
    g_assert_true(run_until(tx_all_used, &b));
    check_own_clients(&b);
    vm_new(&a2, "a2", cli);
    exchange(&a2, &b, "second");

    vm_free(&a2);
    vm_free(&b);
}

int main(int argc, char **argv)
{
    g_autofree char *dir = g_dir_make_tmp("qnic-two-XXXXXX", NULL);
    int ret;

    g_assert_nonnull(dir);
    sock_path = g_build_filename(dir, "net0.sock", NULL);
    g_test_init(&argc, &argv, NULL);
    qnic_bql_lock();
    g_test_add_func("/two-machines/side-by-side", test_two_machines);
    ret = g_test_run();
    qnic_bql_unlock();
    unlink(sock_path);
    rmdir(dir);
    g_free(sock_path);
    return ret;
}
