/*
 * The device state of the e1000 models and rtl8139, end to end in one
 * process: a small driver in the test brings a NIC up on machine A and
 * moves frames both ways through a hub to a peer client; A's state (and
 * its RAM, as a migration copies it) goes to a fresh machine B; B's state
 * saved again must equal A's field by field (qnic_state_dump), and the same
 * driver, with the same rings, goes on moving frames on B (for e1000
 * and rtl8139's C+ mode also finishing a TX frame whose first descriptor A
 * had already taken; rtl8139 runs in C mode and in C+ mode). Then
 * B is fed hostile streams: truncated, bit-flipped, and CRC-valid ones with
 * values the device must refuse (a ring index beyond its ring, an unaligned
 * BAR, a C-mode slot that does not exist); each is refused with an error
 * naming the problem, B's state stays byte for byte what it was, and B
 * still moves frames.
 */
#include "qnic/machine.h"
#include "qnic/backends.h"
#include "qnic/device.h"
#include "qnic/pci.h"
#include "qnic/net.h"
#include "qnic/clock.h"
#include "qnic/mainloop.h"
#include "qnic/state.h"
#include "hw/net/e1000-regs.h"
#include "hw/net/rtl8139-regs.h"
#include "../lib/state-patch.h"

#define RAM_SIZE (16u << 20)
#define MMIO_BASE 0xfe000000u
#define IO_BASE 0xc100u
#define PEER_MAC_BYTE 0x77

/* ---- a machine with a NIC on a hub, and a peer on the same hub ---- */

typedef struct Vm {
    QnicBackends *be;
    QnicMachine *m;
    QnicDevice *dev;
    QnicNetClient *peer;
    GPtrArray *frames;          /* what the peer received, GBytes * */
    int gsi[QNIC_NUM_GSI];
} Vm;

static ssize_t peer_receive(QnicNetClient *nc, const struct iovec *iov, int iovcnt)
{
    Vm *vm = nc->opaque;
    size_t len = qnic_iov_size(iov, iovcnt);
    uint8_t *buf = g_malloc(len + 1);

    qnic_iov_to_buf(iov, iovcnt, 0, buf, len);
    g_ptr_array_add(vm->frames, g_bytes_new_take(buf, len));
    return len;
}

static const QnicNetClientOps peer_ops = {
    .kind = QNIC_NET_CLIENT_NIC,
    .receive_iov = peer_receive,
};

static void vm_gsi(void *opaque, unsigned gsi, int level)
{
    ((Vm *)opaque)->gsi[gsi] = level;
}

static void vm_new(Vm *vm, const char *model)
{
    QnicMachineConfig cfg = { .ram_size = RAM_SIZE, .set_gsi = vm_gsi, .opaque = vm };
    g_autoptr(GError) err = NULL;
    g_autofree char *dev = g_strdup_printf("%s,id=nic0,netdev=net0,addr=4", model);
    QnicNetdev *nd;

    memset(vm, 0, sizeof(*vm));
    vm->be = qnic_backends_new();
    cfg.backends = vm->be;
    vm->m = qnic_machine_new(&cfg, &err);
    g_assert_no_error(err);
    g_assert_nonnull(qnic_netdev_add_str(vm->be, "hubport,id=net0,hubid=0", &err));
    g_assert_no_error(err);
    nd = qnic_netdev_add_str(vm->be, "hubport,id=peer0,hubid=0", &err);
    g_assert_no_error(err);
    vm->frames = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
    vm->peer = qnic_net_client_new(vm->be, &peer_ops, "test-peer", "peer", vm);
    qnic_net_client_set_peer(vm->peer, nd->ncs[0]);
    nd->in_use = true;
    vm->dev = qnic_device_create_str(vm->m, dev, &err);
    g_assert_no_error(err);
}

static void vm_free(Vm *vm)
{
    qnic_net_client_free(vm->peer);
    qnic_machine_free(vm->m);
    qnic_backends_free(vm->be);
    g_ptr_array_free(vm->frames, TRUE);
}

static uint8_t *ram(Vm *vm, uint64_t gpa, uint64_t len)
{
    uint8_t *p = qnic_machine_ram_ptr(vm->m, gpa, len);

    g_assert_nonnull(p);
    return p;
}

static void make_frame(uint8_t *f, size_t len, bool to_peer, unsigned seq)
{
    memset(f, 0, len);
    memset(f, 0xff, 6);                                     /* broadcast */
    memcpy(f + 6, (const uint8_t[]){ 0x02, 0, 0, 0, to_peer ? 1 : PEER_MAC_BYTE, 0 }, 6);
    f[12] = 0x88;
    f[13] = 0xb5;                                           /* local experimental */
    for (size_t i = 14; i < len; i++) {
        f[i] = (uint8_t)(seq * 7 + i);
    }
}

/* The peer sends a frame towards the NIC. */
static void peer_send(Vm *vm, const uint8_t *f, size_t len)
{
    g_assert_cmpint(qnic_net_send(vm->peer, f, len), ==, (ssize_t)len);
    qnic_main_loop_iterate(false);
}

/* The peer got exactly this frame next. */
static void peer_expect(Vm *vm, unsigned *taken, const uint8_t *f, size_t len)
{
    gsize n;
    const uint8_t *got;

    for (int i = 0; i < 100 && vm->frames->len <= *taken; i++) {
        qnic_main_loop_iterate(false);
    }
    g_assert_cmpuint(vm->frames->len, >, *taken);
    got = g_bytes_get_data(g_ptr_array_index(vm->frames, (*taken)++), &n);
    g_assert_cmpmem(got, n, f, len);
}

/* ---- the guest's drivers ---- */

typedef struct Driver Driver;
struct Driver {
    const char *model;
    void (*up)(Vm *vm, Driver *d);
    /* one TX descriptor of a frame: first/last say where it sits */
    void (*txd)(Vm *vm, Driver *d, const uint8_t *f, size_t len, bool first, bool last);
    void (*rx)(Vm *vm, Driver *d, const uint8_t *f, size_t len);   /* expect f next */
    /* what the guest remembers of its rings */
    unsigned tx_next, rx_next, rx_off;
    unsigned peer_taken;
};

/* e1000: 8-descriptor rings, 2 KiB buffers, interrupts for RX and TX. */
#define E_TX_RING 0x100000ull
#define E_RX_RING 0x101000ull
#define E_TX_BUF 0x200000ull
#define E_RX_BUF 0x300000ull
#define E_RING 8u

static void e_w(Vm *vm, unsigned reg, uint32_t v)
{
    g_assert_true(qnic_as_store(&vm->m->mem, MMIO_BASE + reg, 4, v));
}

static uint32_t e_r(Vm *vm, unsigned reg)
{
    uint64_t v = 0;

    g_assert_true(qnic_as_load(&vm->m->mem, MMIO_BASE + reg, 4, &v));
    return (uint32_t)v;
}

static void e1000_up(Vm *vm, Driver *d)
{
    QnicPciDevice *pd = (QnicPciDevice *)vm->dev;

    qnic_pci_config_write(pd, PCI_BASE_ADDRESS_0, MMIO_BASE, 4);
    qnic_pci_config_write(pd, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 2);
    memset(ram(vm, E_TX_RING, 0x2000), 0, 0x2000);
    for (unsigned i = 0; i < E_RING; i++) {
        qnic_st64(ram(vm, E_RX_RING + 16 * i, 8), E_RX_BUF + 2048 * i);
    }
    e_w(vm, E1000_RDBAL, (uint32_t)E_RX_RING);
    e_w(vm, E1000_RDLEN, 16 * E_RING);
    e_w(vm, E1000_RDH, 0);
    e_w(vm, E1000_RDT, E_RING - 1);
    e_w(vm, E1000_TDBAL, (uint32_t)E_TX_RING);
    e_w(vm, E1000_TDLEN, 16 * E_RING);
    e_w(vm, E1000_TDH, 0);
    e_w(vm, E1000_TDT, 0);
    e_w(vm, E1000_IMS, E1000_ICR_RXT0 | E1000_ICR_TXDW);
    e_w(vm, E1000_RCTL, E1000_RCTL_EN | E1000_RCTL_BAM | E1000_RCTL_UPE | E1000_RCTL_SECRC);
    e_w(vm, E1000_TCTL, E1000_TCTL_EN);
    d->tx_next = d->rx_next = 0;
}

/* One TX descriptor; without EOP the frame stays open in the device. */
static void e1000_txd(Vm *vm, Driver *d, const uint8_t *f, size_t len, bool first, bool eop)
{
    uint64_t da = E_TX_RING + 16 * d->tx_next, buf = E_TX_BUF + 2048 * d->tx_next;
    uint8_t cmd = E1000_TXD_CMD_RS | E1000_TXD_CMD_IFCS | (eop ? E1000_TXD_CMD_EOP : 0);

    memcpy(ram(vm, buf, len), f, len);
    qnic_st64(ram(vm, da, 8), buf);
    qnic_st32(ram(vm, da + 8, 4), (uint32_t)len | (uint32_t)cmd << E1000_TXD_CMD_SHIFT);
    qnic_st32(ram(vm, da + 12, 4), 0);
    d->tx_next = (d->tx_next + 1) % E_RING;
    e_w(vm, E1000_TDT, d->tx_next);
    g_assert_cmphex(*ram(vm, da + E1000_TXD_STATUS, 1) & E1000_TXD_STAT_DD, !=, 0);
    g_assert_cmpuint(e_r(vm, E1000_TDH), ==, d->tx_next);
}

static void e1000_rx(Vm *vm, Driver *d, const uint8_t *f, size_t len)
{
    uint64_t da = E_RX_RING + 16 * d->rx_next;
    uint8_t *desc = ram(vm, da, 16);

    g_assert_cmphex(desc[E1000_RXD_STATUS] & E1000_RXD_STAT_DD, !=, 0);
    g_assert_cmpuint(qnic_ld16(desc + E1000_RXD_LENGTH), ==, len);
    g_assert_cmpmem(ram(vm, E_RX_BUF + 2048 * d->rx_next, len), len, f, len);
    desc[E1000_RXD_STATUS] = 0;
    e_w(vm, E1000_RDT, d->rx_next);      /* the buffer goes back */
    d->rx_next = (d->rx_next + 1) % E_RING;
    (void)e_r(vm, E1000_ICR);             /* acknowledge */
}

/* rtl8139 in C mode: an 8 KiB RX ring with WRAP, the four TX slots. */
#define R_RX_RING 0x400000ull
#define R_TX_BUF 0x500000ull
#define R_RX_SIZE 8192u

static void r_w(Vm *vm, unsigned reg, unsigned size, uint32_t v)
{
    g_assert_true(qnic_as_store(&vm->m->io, IO_BASE + reg, size, v));
}

static uint32_t r_r(Vm *vm, unsigned reg, unsigned size)
{
    uint64_t v = 0;

    g_assert_true(qnic_as_load(&vm->m->io, IO_BASE + reg, size, &v));
    return (uint32_t)v;
}

static void rtl_up(Vm *vm, Driver *d)
{
    QnicPciDevice *pd = (QnicPciDevice *)vm->dev;

    qnic_pci_config_write(pd, PCI_BASE_ADDRESS_0, IO_BASE, 4);
    qnic_pci_config_write(pd, PCI_COMMAND, PCI_COMMAND_IO | PCI_COMMAND_MASTER, 2);
    for (unsigned i = 0; i < 4; i++) {
        r_w(vm, RTL_TSAD0 + 4 * i, 4, (uint32_t)(R_TX_BUF + 2048 * i));
    }
    r_w(vm, RTL_RBSTART, 4, (uint32_t)R_RX_RING);
    r_w(vm, RTL_CR, 1, RTL_CR_RE | RTL_CR_TE);
    r_w(vm, RTL_RCR, 4, RTL_RCR_AAP | RTL_RCR_AB | RTL_RCR_WRAP);
    r_w(vm, RTL_IMR, 2, RTL_INT_ROK);
    d->tx_next = 0;
    d->rx_off = 0;
}

static void rtl_txd(Vm *vm, Driver *d, const uint8_t *f, size_t len, bool first, bool last)
{
    unsigned slot = d->tx_next;

    g_assert_true(first && last);      /* a C-mode slot holds a whole frame */

    memcpy(ram(vm, R_TX_BUF + 2048 * slot, len), f, len);
    r_w(vm, RTL_TSD0 + 4 * slot, 4, (uint32_t)len);
    g_assert_cmphex(r_r(vm, RTL_TSD0 + 4 * slot, 4) & RTL_TSD_TOK, !=, 0);
    d->tx_next = (slot + 1) & 3;
}

static void rtl_rx(Vm *vm, Driver *d, const uint8_t *f, size_t len)
{
    uint8_t *hdr = ram(vm, R_RX_RING + d->rx_off, 4 + len);

    g_assert_cmphex(r_r(vm, RTL_CR, 1) & RTL_CR_BUFE, ==, 0);
    g_assert_cmpuint(qnic_ld16(hdr + 2), ==, len + 4);      /* with the FCS */
    g_assert_cmpmem(hdr + 4, len, f, len);
    d->rx_off = QNIC_ALIGN_UP(d->rx_off + 4 + (unsigned)len + 4, 4u) % R_RX_SIZE;
    r_w(vm, RTL_CAPR, 2, (uint16_t)(d->rx_off - 16));
    r_w(vm, RTL_ISR, 2, 0xffff);
}

/* rtl8139 in C+ mode: 8-descriptor rings of 2 KiB buffers. */
#define CP_RX_RING 0x600000ull
#define CP_TX_RING 0x601000ull
#define CP_RX_BUF 0x610000ull
#define CP_TX_BUF 0x620000ull
#define CP_RING 8u

static void cp_rx_give(Vm *vm, unsigned i)
{
    uint8_t *desc = ram(vm, CP_RX_RING + 16 * i, 16);

    qnic_st32(desc + 4, 0);
    qnic_st64(desc + 8, CP_RX_BUF + 2048 * i);
    qnic_st32(desc, RTL_CPD_OWN | (i == CP_RING - 1 ? RTL_CPD_EOR : 0) | 2048);
}

static void rtlcp_up(Vm *vm, Driver *d)
{
    QnicPciDevice *pd = (QnicPciDevice *)vm->dev;

    qnic_pci_config_write(pd, PCI_BASE_ADDRESS_0, IO_BASE, 4);
    qnic_pci_config_write(pd, PCI_COMMAND, PCI_COMMAND_IO | PCI_COMMAND_MASTER, 2);
    memset(ram(vm, CP_TX_RING, 16 * CP_RING), 0, 16 * CP_RING);
    for (unsigned i = 0; i < CP_RING; i++) {
        cp_rx_give(vm, i);
    }
    r_w(vm, RTL_CPCR, 2, RTL_CPCR_RXENB | RTL_CPCR_TXENB);
    r_w(vm, RTL_RDSAR_LO, 4, (uint32_t)CP_RX_RING);
    r_w(vm, RTL_RDSAR_HI, 4, 0);
    r_w(vm, RTL_TNPDS_LO, 4, (uint32_t)CP_TX_RING);
    r_w(vm, RTL_TNPDS_HI, 4, 0);
    r_w(vm, RTL_CR, 1, RTL_CR_RE | RTL_CR_TE);
    r_w(vm, RTL_RCR, 4, RTL_RCR_AAP | RTL_RCR_AB);
    r_w(vm, RTL_IMR, 2, RTL_INT_ROK);
    d->tx_next = d->rx_next = 0;
}

static void rtlcp_txd(Vm *vm, Driver *d, const uint8_t *f, size_t len, bool first, bool last)
{
    unsigned i = d->tx_next;
    uint8_t *desc = ram(vm, CP_TX_RING + 16 * i, 16);

    memcpy(ram(vm, CP_TX_BUF + 2048 * i, len), f, len);
    qnic_st32(desc + 4, 0);
    qnic_st64(desc + 8, CP_TX_BUF + 2048 * i);
    qnic_st32(desc, RTL_CPD_OWN | (i == CP_RING - 1 ? RTL_CPD_EOR : 0) |
              (first ? RTL_CPD_FS : 0) | (last ? RTL_CPD_LS : 0) | (uint32_t)len);
    r_w(vm, RTL_TPPOLL, 1, RTL_TPPOLL_NPQ);
    g_assert_cmphex(qnic_ld32(desc) & RTL_CPD_OWN, ==, 0);
    d->tx_next = (i + 1) % CP_RING;
}

static void rtlcp_rx(Vm *vm, Driver *d, const uint8_t *f, size_t len)
{
    uint8_t *desc = ram(vm, CP_RX_RING + 16 * d->rx_next, 16);
    uint32_t dw0 = qnic_ld32(desc);

    g_assert_cmphex(dw0 & RTL_CPD_OWN, ==, 0);
    g_assert_cmpuint(dw0 & RTL_CPRX_LEN_MASK, ==, len + 4);     /* with the FCS */
    g_assert_cmpmem(ram(vm, CP_RX_BUF + 2048 * d->rx_next, len), len, f, len);
    cp_rx_give(vm, d->rx_next);
    d->rx_next = (d->rx_next + 1) % CP_RING;
    r_w(vm, RTL_ISR, 2, 0xffff);
}

/* ---- the test ---- */

static void exchange(Vm *vm, Driver *d, unsigned seq, size_t len)
{
    uint8_t f[1514];

    make_frame(f, len, true, seq);
    d->txd(vm, d, f, len, true, true);
    peer_expect(vm, &d->peer_taken, f, len);
    make_frame(f, len, false, seq + 1000);
    peer_send(vm, f, len);
    d->rx(vm, d, f, len);
}

static GByteArray *save(Vm *vm)
{
    g_autoptr(GError) err = NULL;
    GByteArray *b = g_byte_array_new();

    g_assert_true(qnic_device_save_state(vm->dev, b, &err));
    g_assert_no_error(err);
    return b;
}

/* Field by field, so a difference names its field. */
static void assert_same_state(GByteArray *a, GByteArray *b)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *da = qnic_state_dump(a->data, a->len, &err);
    g_autofree char *db = NULL;
    g_auto(GStrv) la = NULL, lb = NULL;

    g_assert_no_error(err);
    db = qnic_state_dump(b->data, b->len, &err);
    g_assert_no_error(err);
    la = g_strsplit(da, "\n", -1);
    lb = g_strsplit(db, "\n", -1);
    for (unsigned i = 0; la[i] || lb[i]; i++) {
        g_assert_cmpstr(la[i], ==, lb[i]);
    }
    g_assert_cmpuint(g_strv_length(la), >, 50);
}

static void refused(Vm *vm, Driver *d, GByteArray *bad, const char *msg)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GByteArray) before = save(vm);
    g_autoptr(GByteArray) after = NULL;

    g_assert_false(qnic_device_load_state(vm->dev, bad->data, bad->len, &err));
    g_assert_nonnull(err);
    g_test_message("refused: %s", err->message);
    if (!strstr(err->message, msg)) {
        g_error("expected \"%s\" in \"%s\"", msg, err->message);
    }
    after = save(vm);
    g_assert_cmpmem(before->data, before->len, after->data, after->len);
}

static GByteArray *copy(GByteArray *b)
{
    GByteArray *c = g_byte_array_new();
    g_byte_array_append(c, b->data, b->len);
    return c;
}

typedef struct Patch {
    const char *section, *field;
    uint32_t index;
    uint64_t value;
    bool byte;                  /* a byte of a bytes record (config space) */
    const char *msg;
} Patch;

static void hostile(Vm *vm, Driver *d, const Patch *patches)
{
    g_autoptr(GByteArray) good = save(vm);
    GByteArray *bad;
    unsigned seq = 500;

    for (guint n = 0; n < good->len; n += good->len / 7 + 1) {
        bad = copy(good);
        g_byte_array_set_size(bad, n);
        refused(vm, d, bad, "");
        g_byte_array_unref(bad);
    }
    bad = copy(good);
    bad->data[good->len - 40] ^= 0x04;
    refused(vm, d, bad, "");
    g_byte_array_unref(bad);
    bad = copy(good);
    g_byte_array_append(bad, (const uint8_t *)"x", 1);
    refused(vm, d, bad, "");
    g_byte_array_unref(bad);
    for (const Patch *p = patches; p->section; p++) {
        bad = copy(good);
        if (p->byte) {
            g_assert_true(state_patch_byte(bad, p->section, p->field, p->index,
                                           (uint8_t)p->value));
        } else {
            g_assert_true(state_patch_uint(bad, p->section, p->field, p->index, p->value));
        }
        refused(vm, d, bad, p->msg);
        g_byte_array_unref(bad);
        exchange(vm, d, seq++, 100);       /* and it still works */
    }
}

static void run_migration(Driver *d, const Patch *patches, bool partial_tx)
{
    Vm a, b;
    g_autoptr(GByteArray) sa = NULL, sb = NULL;
    g_autoptr(GError) err = NULL;
    uint8_t part[600], rest[400], whole[1000];
    unsigned gsi;

    qnic_clock_set_mode(QNIC_CLOCK_MANUAL);
    vm_new(&a, d->model);
    d->up(&a, d);
    for (unsigned i = 0; i < 11; i++) {      /* past the end of the rings */
        exchange(&a, d, i, 60 + 97 * i);
    }
    make_frame(whole, sizeof(whole), true, 77);
    memcpy(part, whole, sizeof(part));
    memcpy(rest, whole + sizeof(part), sizeof(rest));
    if (partial_tx) {
        /* The device holds the first 600 bytes of a frame. */
        d->txd(&a, d, part, sizeof(part), true, false);
    }
    /* An interrupt left pending across the move. */
    make_frame(whole + 0, 64, false, 99);
    peer_send(&a, whole, 64);
    gsi = qnic_pci_intx_gsi(((QnicPciDevice *)a.dev)->devfn, 1);
    g_assert_cmpint(a.gsi[gsi], ==, 1);

    sa = save(&a);
    vm_new(&b, d->model);
    memcpy(ram(&b, 0, RAM_SIZE), ram(&a, 0, RAM_SIZE), RAM_SIZE);
    g_assert_true(qnic_device_load_state(b.dev, sa->data, sa->len, &err));
    g_assert_no_error(err);
    sb = save(&b);
    assert_same_state(sa, sb);
    g_assert_cmpint(b.gsi[gsi], ==, 1);
    vm_free(&a);

    /* B goes on with the guest's rings where A left them. */
    d->peer_taken = 0;
    d->rx(&b, d, whole, 64);
    if (partial_tx) {
        make_frame(whole, sizeof(whole), true, 77);
        d->txd(&b, d, rest, sizeof(rest), false, true);
        peer_expect(&b, &d->peer_taken, whole, sizeof(whole));
    }
    for (unsigned i = 0; i < 11; i++) {
        exchange(&b, d, 100 + i, 1514 - 61 * i);
    }
    hostile(&b, d, patches);
    vm_free(&b);
}

static void test_e1000(gconstpointer model)
{
    Driver d = { .model = model, .up = e1000_up, .txd = e1000_txd, .rx = e1000_rx };
    static const Patch patches[] = {
        { "e1000", "rdh", 0, 100, .msg = "RX ring head 100" },
        { "e1000", "tdt", 0, 8, .msg = "TX ring head" },
        { "e1000", "rdlen", 0, 0x90, .msg = "RX ring length" },
        { "e1000", "tdbal", 0, 0x100008, .msg = "TX ring base" },
        { "e1000", "ioaddr", 0, 0x20002, .msg = "ioaddr" },
        { "e1000", "ee_bits_in", 0, 10, .msg = "ee_bits_in" },
        { "e1000", "timer_itr", 0, 1ull << 63, .msg = "itr timer" },
        { "pci", "config", 0x11, 0x01, true, .msg = "BAR" },
        { "pci", "config", 0x00, 0x87, true, .msg = "config byte 0x00" },
        { NULL },
    };

    run_migration(&d, patches, true);
}

static void test_rtl8139(void)
{
    Driver d = { .model = "rtl8139", .up = rtl_up, .txd = rtl_txd, .rx = rtl_rx };
    static const Patch patches[] = {
        { "rtl8139", "cur_tx", 0, 4, .msg = "cur_tx" },
        { "rtl8139", "cbr", 0, 0x1002, .msg = "CBR" },
        { "rtl8139", "cp_rx_idx", 0, 64, .msg = "cp_rx_idx" },
        { "rtl8139", "ee_state", 0, 9, .msg = "ee_state" },
        { "rtl8139", "ee_addr", 0, 64, .msg = "ee_addr" },
        { "pci", "config", 0x10, 0x05, true, .msg = "BAR" },
        { "pci", "config", 0x3d, 0x02, true, .msg = "config byte 0x3d" },
        { NULL },
    };

    run_migration(&d, patches, false);
}

static void test_rtl8139_cplus(void)
{
    Driver d = { .model = "rtl8139", .up = rtlcp_up, .txd = rtlcp_txd, .rx = rtlcp_rx };
    static const Patch patches[] = {
        { "rtl8139", "cp_tx_idx", 0, 64, .msg = "cp_tx_idx" },
        { "rtl8139", "cp_rx_idx", 0, 200, .msg = "cp_rx_idx" },
        { "rtl8139", "tctr_base", 0, 1ull << 63, .msg = "tctr_base" },
        { NULL },
    };

    run_migration(&d, patches, true);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_data_func("/nic-state/e1000", "e1000", test_e1000);
    g_test_add_data_func("/nic-state/e1000-82544gc", "e1000-82544gc", test_e1000);
    g_test_add_data_func("/nic-state/e1000-82545em", "e1000-82545em", test_e1000);
    g_test_add_func("/nic-state/rtl8139", test_rtl8139);
    g_test_add_func("/nic-state/rtl8139-cplus", test_rtl8139_cplus);
    return g_test_run();
}
