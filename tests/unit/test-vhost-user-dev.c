/*
 * Unit tests of qnic's vhost-user-net device side (virtio/vhost-user-device.c).
 * The test plays the frontend: a memfd is the guest RAM, split and packed
 * rings are built in it by hand, requests go straight to
 * qnic_vhu_dev_handle() (and once over a real socket through the server),
 * kicks go through real eventfds. The netdev is a hubport whose hub has a
 * second port with a recording client, so TX frames can be seen and RX
 * frames injected. Every malformed-request class is checked to be refused
 * with the ring state untouched and no descriptor leaked.
 */
#include "qnic/vhost-user-device.h"
#include "qnic/mainloop.h"
#include "qnic/log.h"
#include "test-net-common.h"
#include "vring-host.h"
#include "../lib/test-backends.h"
#include <dirent.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>
#include <linux/virtio_config.h>

#define RAM_SIZE 0x100000u
#define UA_BASE 0x7f0000000000ull   /* the "frontend's" virtual address of RAM */
#define QSZ 16u
#define RX_DESC 0x0000u
#define RX_AVAIL 0x1000u
#define RX_USED 0x2000u
#define TX_DESC 0x3000u
#define TX_AVAIL 0x4000u
#define TX_USED 0x5000u
#define RX_BUF 0x10000u
#define TX_BUF 0x20000u
#define HDR_LEN 12u

typedef struct Fe {
    QnicVhuDev *d;
    QnicNetdev *nd, *peer_nd;
    TestNic *peer;
    int memfd;
    uint8_t *ram;
    VringHostRam host;          /* the driver side's view of ram */
    VringMem mem;
    VringDriver rx, tx;
    int kick[2], call[2];
    uint64_t features;
    bool packed;
} Fe;

static int count_fds(void)
{
    DIR *dir = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;

    g_assert_nonnull(dir);
    while ((e = readdir(dir))) {
        if (e->d_name[0] != '.') {
            n++;
        }
    }
    closedir(dir);
    return n - 1;   /* the directory itself */
}

static void pump(void)
{
    for (int i = 0; i < 8; i++) {
        qnic_main_loop_iterate(false);
        qnic_bh_poll();
    }
}

/* Send one request; returns the handler's verdict. reply may be NULL. */
static bool req_fds(Fe *fe, uint32_t request, uint32_t flags, const void *payload, uint32_t size,
                    const int *fds, unsigned nfds, QnicVhuMsg *reply_out, bool *sent)
{
    QnicVhuMsg msg, reply;
    g_autoptr(GError) err = NULL;
    bool send_reply, ok;

    qnic_vhu_msg_init(&msg, request, size);
    msg.hdr.flags |= flags;
    if (size) {
        memcpy(&msg.p, payload, MIN(size, sizeof(msg.p)));
    }
    for (unsigned i = 0; i < nfds; i++) {
        msg.fds[i] = dup(fds[i]);
    }
    msg.nfds = nfds;
    ok = qnic_vhu_dev_handle(fe->d, &msg, &reply, &send_reply, &err);
    g_assert_cmpuint(msg.nfds, ==, 0);
    if (!ok) {
        g_assert_nonnull(err);
        g_test_message("refused as expected? %s", err->message);
    }
    if (reply_out) {
        *reply_out = reply;
    }
    if (sent) {
        *sent = send_reply;
    }
    return ok;
}

static bool req(Fe *fe, uint32_t request, const void *payload, uint32_t size)
{
    return req_fds(fe, request, 0, payload, size, NULL, 0, NULL, NULL);
}

static bool req_state(Fe *fe, uint32_t request, uint32_t index, uint32_t num)
{
    QnicVhuVringState s = { index, num };
    return req(fe, request, &s, sizeof(s));
}

static bool req_u64(Fe *fe, uint32_t request, uint64_t v)
{
    return req(fe, request, &v, sizeof(v));
}

static bool req_vring_fd(Fe *fe, uint32_t request, unsigned idx, int fd)
{
    uint64_t v = idx;
    return req_fds(fe, request, 0, &v, sizeof(v), &fd, 1, NULL, NULL);
}

static uint64_t get_u64(Fe *fe, uint32_t request)
{
    QnicVhuMsg reply;
    bool sent;

    g_assert_true(req_fds(fe, request, 0, NULL, 0, NULL, 0, &reply, &sent));
    g_assert_true(sent);
    g_assert_cmpuint(reply.hdr.size, ==, 8);
    g_assert_cmpuint(reply.hdr.flags, ==, QNIC_VHU_VERSION | QNIC_VHU_FLAG_REPLY);
    return reply.p.u64;
}

static bool set_mem_table(Fe *fe, uint64_t gpa, uint64_t size, uint64_t ua, uint64_t off, int fd)
{
    QnicVhuMemory m = { .nregions = 1 };
    m.regions[0] = (QnicVhuMemRegion){ gpa, size, ua, off };
    return req_fds(fe, QNIC_VHU_SET_MEM_TABLE, 0, &m, 8 + sizeof(QnicVhuMemRegion), &fd, 1,
                   NULL, NULL);
}

static bool set_addr(Fe *fe, unsigned idx, uint64_t desc, uint64_t avail, uint64_t used)
{
    QnicVhuVringAddr a = { .index = idx, .desc_user_addr = UA_BASE + desc,
                           .avail_user_addr = UA_BASE + avail, .used_user_addr = UA_BASE + used };
    return req(fe, QNIC_VHU_SET_VRING_ADDR, &a, sizeof(a));
}

static Fe *fe_new(const char *hub, bool packed)
{
    Fe *fe = g_new0(Fe, 1);
    g_autoptr(GError) err = NULL;
    g_autofree char *a = g_strdup_printf("hubport,id=vh%s,hubid=%s", hub, hub);
    g_autofree char *b = g_strdup_printf("hubport,id=vp%s,hubid=%s", hub, hub);
    g_autofree char *dev = g_strdup_printf("netdev=vh%s,mac=52:54:00:12:34:56,packed=on", hub);

    fe->nd = qnic_netdev_add_str(test_backends(), a, &err);
    g_assert_no_error(err);
    fe->peer_nd = qnic_netdev_add_str(test_backends(), b, &err);
    g_assert_no_error(err);
    fe->peer = test_nic_new("peer");
    test_nic_attach(fe->peer, fe->peer_nd);
    fe->d = qnic_vhu_dev_new(test_backends(), dev, &err);
    g_assert_no_error(err);
    g_assert_nonnull(fe->d);
    fe->memfd = memfd_create("test-guest-ram", MFD_CLOEXEC);
    g_assert_cmpint(fe->memfd, >=, 0);
    g_assert_cmpint(ftruncate(fe->memfd, RAM_SIZE), ==, 0);
    fe->ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fe->memfd, 0);
    g_assert_true(fe->ram != MAP_FAILED);
    fe->host = (VringHostRam){ fe->ram, RAM_SIZE };
    fe->mem = vring_host_ram_mem(&fe->host);
    vring_driver_init(&fe->rx, &fe->mem, QSZ, packed, RX_DESC, RX_AVAIL, RX_USED);
    vring_driver_init(&fe->tx, &fe->mem, QSZ, packed, TX_DESC, TX_AVAIL, TX_USED);
    for (int i = 0; i < 2; i++) {
        fe->kick[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        fe->call[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    }
    fe->packed = packed;
    return fe;
}

static void fe_free(Fe *fe)
{
    qnic_vhu_dev_free(fe->d);
    test_nic_free(fe->peer);
    fe->peer_nd->in_use = false;
    qnic_netdev_del(fe->peer_nd);
    qnic_netdev_del(fe->nd);
    for (int i = 0; i < 2; i++) {
        close(fe->kick[i]);
        close(fe->call[i]);
    }
    munmap(fe->ram, RAM_SIZE);
    close(fe->memfd);
    g_free(fe);
}

/* The negotiation QEMU does when its guest sets DRIVER_OK. */
static void fe_negotiate(Fe *fe)
{
    uint64_t offered, pf;

    g_assert_true(req(fe, QNIC_VHU_SET_OWNER, NULL, 0));
    offered = get_u64(fe, QNIC_VHU_GET_FEATURES);
    g_assert_true(offered & (1ull << QNIC_VHU_F_PROTOCOL_FEATURES));
    g_assert_true(offered & (1ull << VIRTIO_F_VERSION_1));
    g_assert_true(offered & (1ull << VIRTIO_NET_F_MRG_RXBUF));
    g_assert_false(offered & (1ull << VIRTIO_NET_F_CTRL_VQ));
    g_assert_false(offered & (1ull << VIRTIO_NET_F_CTRL_RX));
    g_assert_false(offered & (1ull << VIRTIO_NET_F_GUEST_ANNOUNCE));
    g_assert_false(offered & (1ull << VIRTIO_NET_F_MQ));     /* one queue pair */
    pf = get_u64(fe, QNIC_VHU_GET_PROTOCOL_FEATURES);
    g_assert_true(pf & (1ull << QNIC_VHU_PROTOCOL_F_REPLY_ACK));
    g_assert_true(pf & (1ull << QNIC_VHU_PROTOCOL_F_RARP));
    g_assert_true(pf & (1ull << QNIC_VHU_PROTOCOL_F_RESET_DEVICE));
    g_assert_true(req_u64(fe, QNIC_VHU_SET_PROTOCOL_FEATURES, pf));
    fe->features = (1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_NET_F_MRG_RXBUF) |
                   (1ull << QNIC_VHU_F_PROTOCOL_FEATURES);
    if (fe->packed) {
        g_assert_true(offered & (1ull << VIRTIO_F_RING_PACKED));
        fe->features |= 1ull << VIRTIO_F_RING_PACKED;
    }
    g_assert_true(req_u64(fe, QNIC_VHU_SET_FEATURES, fe->features));
    g_assert_true(set_mem_table(fe, 0, RAM_SIZE, UA_BASE, 0, fe->memfd));
    g_assert_cmpuint(qnic_vhu_dev_num_regions(fe->d), ==, 1);
    for (unsigned i = 0; i < 2; i++) {
        g_assert_true(req_state(fe, QNIC_VHU_SET_VRING_NUM, i, QSZ));
        g_assert_true(req_state(fe, QNIC_VHU_SET_VRING_BASE, i, fe->packed ? 0x80008000u : 0));  /* QEMU 7.2 encoding */
        g_assert_true(set_addr(fe, i, i ? TX_DESC : RX_DESC, i ? TX_AVAIL : RX_AVAIL,
                               i ? TX_USED : RX_USED));
        g_assert_true(req_vring_fd(fe, QNIC_VHU_SET_VRING_CALL, i, fe->call[i]));
        g_assert_true(req_vring_fd(fe, QNIC_VHU_SET_VRING_KICK, i, fe->kick[i]));
    }
    /* With protocol features the rings wait for SET_VRING_ENABLE. */
    QnicVhuVringInfo info;
    g_assert_true(qnic_vhu_dev_vring_info(fe->d, 1, &info));
    g_assert_true(info.started);
    g_assert_false(info.enabled);
    for (unsigned i = 0; i < 2; i++) {
        g_assert_true(req_state(fe, QNIC_VHU_SET_VRING_ENABLE, i, 1));
    }
    g_assert_cmpuint(qnic_vhu_dev_active_pairs(fe->d), ==, 1);
}

static uint8_t *gp(Fe *fe, uint64_t gpa)
{
    return fe->ram + gpa;
}

/* Make one single-descriptor buffer available on a ring, as buffer (and,
 * split, head slot) `id`. */
static void ring_add(VringDriver *r, uint16_t id, uint64_t addr, uint32_t len, bool write)
{
    VringBuf b = { .addr = addr, .len = len, .write = write };

    vring_add_at(r, id, &b, 1);
}

static uint64_t read_eventfd(int fd)
{
    uint64_t v = 0;
    if (read(fd, &v, sizeof(v)) != sizeof(v)) {
        return 0;
    }
    return v;
}

static void kick(Fe *fe, unsigned i)
{
    uint64_t one = 1;
    g_assert_cmpint(write(fe->kick[i], &one, sizeof(one)), ==, sizeof(one));
    pump();
}

static void make_frame(uint8_t *f, size_t len, uint8_t seed)
{
    static const uint8_t dst[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
    memcpy(f, dst, 6);
    memcpy(f + 6, "\x02\x00\x00\x00\x00\x01", 6);
    f[12] = 0x08;
    f[13] = 0x00;
    for (size_t i = 14; i < len; i++) {
        f[i] = (uint8_t)(seed + i);
    }
}

static void check_tx_split(Fe *fe, unsigned nth)
{
    uint8_t frame[60];
    unsigned before = fe->peer->frames->len;

    make_frame(frame, sizeof(frame), (uint8_t)nth);
    memset(gp(fe, TX_BUF), 0, HDR_LEN);
    memcpy(gp(fe, TX_BUF + HDR_LEN), frame, sizeof(frame));
    ring_add(&fe->tx, nth % QSZ, TX_BUF, HDR_LEN + sizeof(frame), false);
    read_eventfd(fe->call[1]);
    kick(fe, 1);
    g_assert_cmpuint(fe->peer->frames->len, ==, before + 1);
    g_assert_true(test_frame_eq(g_ptr_array_index(fe->peer->frames, before), frame,
                                sizeof(frame)));
    g_assert_cmpuint(qnic_ld16(gp(fe, TX_USED + 2)), ==, nth + 1);
    g_assert_cmpuint(qnic_ld32(gp(fe, TX_USED + 4 + 8 * (nth % QSZ))), ==, nth % QSZ);
    g_assert_cmpuint(read_eventfd(fe->call[1]), >=, 1);
}

static void test_split_tx_rx(void)
{
    int fds0 = count_fds();
    Fe *fe = fe_new("61", false);
    QnicVhuMsg reply;
    bool sent;

    fe_negotiate(fe);
    /* TX: two frames, each through the kick eventfd */
    check_tx_split(fe, 0);
    check_tx_split(fe, 1);

    /* RX: post two buffers, deliver a frame from the wire */
    for (unsigned i = 0; i < 2; i++) {
        ring_add(&fe->rx, i, RX_BUF + 0x800 * i, 0x800, true);
    }
    kick(fe, 0);
    uint8_t frame[100];
    make_frame(frame, sizeof(frame), 7);
    read_eventfd(fe->call[0]);
    g_assert_cmpint(qnic_net_send(fe->peer->nc, frame, sizeof(frame)), ==, sizeof(frame));
    pump();
    g_assert_cmpuint(qnic_ld16(gp(fe, RX_USED + 2)), ==, 1);
    g_assert_cmpuint(qnic_ld32(gp(fe, RX_USED + 4)), ==, 0);
    g_assert_cmpuint(qnic_ld32(gp(fe, RX_USED + 8)), ==, HDR_LEN + sizeof(frame));
    g_assert_cmpuint(qnic_ld16(gp(fe, RX_BUF + 10)), ==, 1);     /* num_buffers */
    g_assert_cmpmem(gp(fe, RX_BUF + HDR_LEN), sizeof(frame), frame, sizeof(frame));
    g_assert_cmpuint(read_eventfd(fe->call[0]), >=, 1);

    /* SEND_RARP: the wire sees QEMU's announce frame from that MAC */
    uint64_t mac = 0;
    memcpy(&mac, "\x52\x54\x00\xab\xcd\xef", 6);
    unsigned before = fe->peer->frames->len;
    g_assert_true(req_u64(fe, QNIC_VHU_SEND_RARP, mac));
    pump();
    g_assert_cmpuint(fe->peer->frames->len, ==, before + 1);
    {
        size_t n;
        const uint8_t *f = g_bytes_get_data(g_ptr_array_index(fe->peer->frames, before), &n);
        g_assert_cmpuint(n, ==, 60);
        g_assert_cmpmem(f, 6, "\xff\xff\xff\xff\xff\xff", 6);
        g_assert_cmpmem(f + 6, 6, "\x52\x54\x00\xab\xcd\xef", 6);
        g_assert_cmpuint(qnic_ld16be(f + 12), ==, 0x8035);
        g_assert_cmpuint(qnic_ld16be(f + 20), ==, 3);
    }

    /* REPLY_ACK: success is a zero u64 */
    QnicVhuVringState st = { 1, 1 };
    g_assert_true(req_fds(fe, QNIC_VHU_SET_VRING_ENABLE, QNIC_VHU_FLAG_NEED_REPLY, &st,
                          sizeof(st), NULL, 0, &reply, &sent));
    g_assert_true(sent);
    g_assert_cmpuint(reply.p.u64, ==, 0);

    /* GET_VRING_BASE stops the ring and returns where it was */
    st = (QnicVhuVringState){ 1, 0 };
    g_assert_true(req_fds(fe, QNIC_VHU_GET_VRING_BASE, 0, &st, sizeof(st), NULL, 0, &reply,
                          &sent));
    g_assert_true(sent);
    g_assert_cmpuint(reply.hdr.size, ==, 8);
    g_assert_cmpuint(reply.p.state.index, ==, 1);
    g_assert_cmpuint(reply.p.state.num, ==, 2);
    QnicVhuVringInfo info;
    g_assert_true(qnic_vhu_dev_vring_info(fe->d, 1, &info));
    g_assert_false(info.started);
    g_assert_cmpint(info.kick_fd, ==, -1);
    /* A stopped ring does not move: a new frame stays in the ring. */
    ring_add(&fe->tx, 2, TX_BUF, HDR_LEN + 60, false);
    before = fe->peer->frames->len;
    kick(fe, 1);
    g_assert_cmpuint(fe->peer->frames->len, ==, before);
    /* Restart at base 2 with a new kick fd: the frame goes out. */
    g_assert_true(req_state(fe, QNIC_VHU_SET_VRING_BASE, 1, 2));
    g_assert_true(req_vring_fd(fe, QNIC_VHU_SET_VRING_KICK, 1, fe->kick[1]));
    pump();
    g_assert_cmpuint(fe->peer->frames->len, ==, before + 1);
    g_assert_cmpuint(qnic_ld16(gp(fe, TX_USED + 2)), ==, 3);

    /* SET_MEM_TABLE again while rings run: re-mapped, rings keep going. */
    g_assert_true(set_mem_table(fe, 0, RAM_SIZE, UA_BASE, 0, fe->memfd));
    check_tx_split(fe, 3);

    /* RESET_DEVICE: everything stops, descriptors are closed */
    g_assert_true(req(fe, QNIC_VHU_RESET_DEVICE, NULL, 0));
    g_assert_true(qnic_vhu_dev_vring_info(fe->d, 0, &info));
    g_assert_false(info.started);
    g_assert_cmpint(info.call_fd, ==, -1);
    g_assert_cmpuint(qnic_vhu_dev_num_regions(fe->d), ==, 0);
    fe_free(fe);
    g_assert_cmpint(count_fds(), ==, fds0);
}

static void test_packed(void)
{
    int fds0 = count_fds();
    Fe *fe = fe_new("62", true);
    QnicVhuMsg reply;
    uint8_t frame[60];
    bool sent;
    const uint16_t avail = 1u << VRING_PACKED_DESC_F_AVAIL;
    const uint16_t used = 1u << VRING_PACKED_DESC_F_USED;

    fe_negotiate(fe);
    /* TX: one frame in slot 0 (wrap counter 1: AVAIL set, USED clear) */
    make_frame(frame, sizeof(frame), 3);
    memset(gp(fe, TX_BUF), 0, HDR_LEN);
    memcpy(gp(fe, TX_BUF + HDR_LEN), frame, sizeof(frame));
    ring_add(&fe->tx, 5, TX_BUF, HDR_LEN + sizeof(frame), false);    /* flags: avail */
    kick(fe, 1);
    g_assert_cmpuint(fe->peer->frames->len, ==, 1);
    g_assert_true(test_frame_eq(g_ptr_array_index(fe->peer->frames, 0), frame, sizeof(frame)));
    g_assert_cmpuint(qnic_ld16(gp(fe, TX_DESC + 14)), ==, avail | used);
    g_assert_cmpuint(qnic_ld16(gp(fe, TX_DESC + 12)), ==, 5);

    /* RX: a buffer in slot 0, then a frame */
    ring_add(&fe->rx, 9, RX_BUF, 0x800, true);       /* flags: avail | WRITE */
    kick(fe, 0);
    make_frame(frame, sizeof(frame), 4);
    qnic_net_send(fe->peer->nc, frame, sizeof(frame));
    pump();
    g_assert_cmpuint(qnic_ld16(gp(fe, RX_DESC + 14)) & (avail | used), ==, avail | used);
    g_assert_cmpuint(qnic_ld32(gp(fe, RX_DESC + 8)), ==, HDR_LEN + sizeof(frame));
    g_assert_cmpmem(gp(fe, RX_BUF + HDR_LEN), sizeof(frame), frame, sizeof(frame));

    /* GET_VRING_BASE: avail index 1 with its wrap counter (still 1) in
     * bit 15, the used index and its wrap counter in the upper half (as
     * QEMU encodes them) */
    QnicVhuVringState st = { 1, 0 };
    g_assert_true(req_fds(fe, QNIC_VHU_GET_VRING_BASE, 0, &st, sizeof(st), NULL, 0, &reply,
                          &sent));
    g_assert_true(sent);
    g_assert_cmpuint(reply.p.state.num, ==, 1u | (1u << 15) | (1u << 16) | (1u << 31));
    /* base at or past the ring size is refused for packed rings */
    g_assert_false(req_state(fe, QNIC_VHU_SET_VRING_BASE, 1, QSZ));
    g_assert_false(req_state(fe, QNIC_VHU_SET_VRING_BASE, 1, 1u | (QSZ << 16)));
    g_assert_true(req_state(fe, QNIC_VHU_SET_VRING_BASE, 1, 1u | (1u << 15)));
    fe_free(fe);
    g_assert_cmpint(count_fds(), ==, fds0);
}

/* Every class of malformed request: refused, state unchanged, no leak. */
static void test_malformed(void)
{
    int fds0 = count_fds();
    Fe *fe = fe_new("63", false);
    QnicVhuVringInfo before[2], after[2];
    QnicVhuMsg reply;
    bool sent;
    int small_fd, efd = eventfd(0, EFD_CLOEXEC), two[2];
    QnicVhuMemory m = { 0 };

    /* Out of order on a fresh device */
    g_assert_false(set_addr(fe, 0, RX_DESC, RX_AVAIL, RX_USED));   /* before MEM_TABLE */
    fe_negotiate(fe);
    check_tx_split(fe, 0);
    for (unsigned i = 0; i < 2; i++) {
        g_assert_true(qnic_vhu_dev_vring_info(fe->d, i, &before[i]));
    }
    uint64_t errs0 = qnic_log_count(QNIC_LOG_GUEST_ERROR);

    /* memory tables */
    m.nregions = 2;
    m.regions[0] = (QnicVhuMemRegion){ 0, 0x1000, UA_BASE, 0 };
    m.regions[1] = (QnicVhuMemRegion){ 0x1000, 0x1000, UA_BASE + 0x1000, 0x1000 };
    g_assert_false(req_fds(fe, QNIC_VHU_SET_MEM_TABLE, 0, &m, 8 + 2 * 32, &fe->memfd, 1, NULL,
                           NULL));                                     /* 2 regions, 1 fd */
    two[0] = two[1] = fe->memfd;
    m.regions[1].guest_phys_addr = 0x800;                               /* gpa overlap */
    g_assert_false(req_fds(fe, QNIC_VHU_SET_MEM_TABLE, 0, &m, 8 + 2 * 32, two, 2, NULL, NULL));
    m.regions[1].guest_phys_addr = 0x10000;
    m.regions[1].userspace_addr = UA_BASE + 0x800;                      /* uaddr overlap */
    g_assert_false(req_fds(fe, QNIC_VHU_SET_MEM_TABLE, 0, &m, 8 + 2 * 32, two, 2, NULL, NULL));
    /* Overlaps of regions that end exactly at 2^64, where an end-based
     * test wraps to 0 and sees none (issue 21, finding 8). */
    m.regions[0] = (QnicVhuMemRegion){ ~0ull - 0x1fff, 0x2000, UA_BASE, 0 };
    m.regions[1] = (QnicVhuMemRegion){ ~0ull - 0xfff, 0x1000, UA_BASE + 0x4000, 0 };
    g_assert_false(req_fds(fe, QNIC_VHU_SET_MEM_TABLE, 0, &m, 8 + 2 * 32, two, 2, NULL, NULL));
    m.regions[0] = (QnicVhuMemRegion){ 0, 0x2000, ~0ull - 0x1fff, 0 };
    m.regions[1] = (QnicVhuMemRegion){ 0x4000, 0x1000, ~0ull - 0xfff, 0 };
    g_assert_false(req_fds(fe, QNIC_VHU_SET_MEM_TABLE, 0, &m, 8 + 2 * 32, two, 2, NULL, NULL));
    m.regions[0] = (QnicVhuMemRegion){ 0, 0x1000, UA_BASE, 0 };
    m.regions[1] = (QnicVhuMemRegion){ 0x10000, 0x1000, UA_BASE + 0x800, 0x1000 };
    m.nregions = 9;                                                     /* too many */
    g_assert_false(req_fds(fe, QNIC_VHU_SET_MEM_TABLE, 0, &m, sizeof(m), two, 2, NULL, NULL));
    m.nregions = 2;                                                     /* payload too short */
    g_assert_false(req_fds(fe, QNIC_VHU_SET_MEM_TABLE, 0, &m, 8 + 32, two, 2, NULL, NULL));
    g_assert_false(set_mem_table(fe, 0, 0, UA_BASE, 0, fe->memfd));            /* empty */
    g_assert_false(set_mem_table(fe, ~0ull - 0xfff, 0x2000, UA_BASE, 0, fe->memfd)); /* wraps */
    g_assert_false(set_mem_table(fe, 0, 0x2000, ~0ull - 0xfff, 0, fe->memfd));   /* uaddr wraps */
    g_assert_false(set_mem_table(fe, 0xfee00000, 0x1000, UA_BASE, 0, fe->memfd)); /* MSI */
    g_assert_false(set_mem_table(fe, 0, RAM_SIZE * 2, UA_BASE, 0, fe->memfd));   /* past EOF */
    g_assert_false(set_mem_table(fe, 0, RAM_SIZE, UA_BASE, 0x1000, fe->memfd));  /* off+size */
    small_fd = memfd_create("small", MFD_CLOEXEC);
    g_assert_cmpint(ftruncate(small_fd, 4096), ==, 0);
    g_assert_false(set_mem_table(fe, 0, RAM_SIZE, UA_BASE, 0, small_fd));        /* too small */
    g_assert_false(set_mem_table(fe, 0, RAM_SIZE, UA_BASE, 0, efd));      /* not a file */
    g_assert_cmpuint(qnic_vhu_dev_num_regions(fe->d), ==, 1);

    /* vring numbers, indices, bases */
    g_assert_false(req_state(fe, QNIC_VHU_SET_VRING_NUM, 0, 3));
    g_assert_false(req_state(fe, QNIC_VHU_SET_VRING_NUM, 0, 2048));
    g_assert_false(req_state(fe, QNIC_VHU_SET_VRING_NUM, 0, 0));
    g_assert_false(req_state(fe, QNIC_VHU_SET_VRING_NUM, 99, 16));
    g_assert_false(req_state(fe, QNIC_VHU_SET_VRING_NUM, 1, 32));       /* running */
    g_assert_false(req_state(fe, QNIC_VHU_SET_VRING_BASE, 1, 0));       /* running */
    g_assert_false(req_state(fe, QNIC_VHU_SET_VRING_BASE, 7, 0));
    g_assert_false(req_state(fe, QNIC_VHU_SET_VRING_ENABLE, 0, 2));
    g_assert_false(req_state(fe, QNIC_VHU_SET_VRING_ENABLE, 2, 1));
    /* GET_VRING_BASE of a ring that does not exist: no reply at all */
    QnicVhuVringState st = { 5, 0 };
    g_assert_false(req_fds(fe, QNIC_VHU_GET_VRING_BASE, 0, &st, sizeof(st), NULL, 0, &reply,
                           &sent));
    g_assert_false(sent);
    /* short payload */
    g_assert_false(req(fe, QNIC_VHU_SET_VRING_NUM, &st, 4));
    g_assert_false(req(fe, QNIC_VHU_SET_VRING_ADDR, &st, 8));

    /* ring addresses: running ring, outside the table, misaligned, index */
    g_assert_false(set_addr(fe, 1, TX_DESC + 0x100, TX_AVAIL, TX_USED));
    g_assert_false(set_addr(fe, 2, TX_DESC, TX_AVAIL, TX_USED));
    QnicVhuVringAddr a = { .index = 0, .desc_user_addr = UA_BASE + RAM_SIZE - 16,
                           .avail_user_addr = UA_BASE + RX_AVAIL, .used_user_addr = UA_BASE };
    st = (QnicVhuVringState){ 0, 0 };
    g_assert_true(req_fds(fe, QNIC_VHU_GET_VRING_BASE, 0, &st, sizeof(st), NULL, 0, &reply,
                          &sent));                                  /* stop vring 0 */
    g_assert_false(req(fe, QNIC_VHU_SET_VRING_ADDR, &a, sizeof(a)));   /* desc past the end */
    a.desc_user_addr = UA_BASE - 0x1000;
    g_assert_false(req(fe, QNIC_VHU_SET_VRING_ADDR, &a, sizeof(a)));   /* below the table */
    a.desc_user_addr = UA_BASE + 8;
    g_assert_false(req(fe, QNIC_VHU_SET_VRING_ADDR, &a, sizeof(a)));   /* misaligned */
    a.desc_user_addr = UA_BASE;
    a.flags = 0x80;
    g_assert_false(req(fe, QNIC_VHU_SET_VRING_ADDR, &a, sizeof(a)));   /* unknown flags */
    g_assert_true(req_state(fe, QNIC_VHU_SET_VRING_BASE, 0, 0));       /* restart vring 0 */
    g_assert_true(req_vring_fd(fe, QNIC_VHU_SET_VRING_KICK, 0, fe->kick[0]));
    g_assert_true(qnic_vhu_dev_vring_info(fe->d, 0, &after[0]));
    g_assert_true(after[0].started);

    /* descriptor counts on SET_VRING_KICK/CALL/ERR */
    uint64_t v = 1;
    int three[3] = { efd, efd, efd };
    g_assert_false(req_fds(fe, QNIC_VHU_SET_VRING_KICK, 0, &v, 8, three, 2, NULL, NULL));
    v = 1 | QNIC_VHU_VRING_NOFD_MASK;
    g_assert_false(req_fds(fe, QNIC_VHU_SET_VRING_CALL, 0, &v, 8, three, 1, NULL, NULL));
    v = 1;
    g_assert_false(req_fds(fe, QNIC_VHU_SET_VRING_ERR, 0, &v, 8, NULL, 0, NULL, NULL));
    v = 9;
    g_assert_false(req_fds(fe, QNIC_VHU_SET_VRING_CALL, 0, &v, 8, three, 1, NULL, NULL));
    v = 1 | (1ull << 40);
    g_assert_false(req_fds(fe, QNIC_VHU_SET_VRING_CALL, 0, &v, 8, three, 1, NULL, NULL));

    /* features */
    g_assert_false(req_u64(fe, QNIC_VHU_SET_FEATURES, fe->features | (1ull << VIRTIO_NET_F_CTRL_VQ)));
    g_assert_false(req_u64(fe, QNIC_VHU_SET_FEATURES, fe->features | (1ull << QNIC_VHU_F_LOG_ALL)));
    g_assert_false(req_u64(fe, QNIC_VHU_SET_PROTOCOL_FEATURES, 1ull << 40));

    /* unknown and unsupported requests, with descriptors and NEED_REPLY */
    g_assert_false(req_fds(fe, 99, QNIC_VHU_FLAG_NEED_REPLY, NULL, 0, three, 3, &reply, &sent));
    g_assert_true(sent);
    g_assert_cmpuint(reply.hdr.size, ==, 8);
    g_assert_cmpuint(reply.p.u64, !=, 0);
    g_assert_false(req_fds(fe, QNIC_VHU_SET_LOG_FD, 0, NULL, 0, three, 1, NULL, NULL));
    g_assert_false(req_fds(fe, QNIC_VHU_SET_BACKEND_REQ_FD, 0, NULL, 0, three, 1, NULL, NULL));
    g_assert_false(req(fe, QNIC_VHU_NET_SET_MTU, &v, 8));
    g_assert_false(req(fe, QNIC_VHU_GET_CONFIG, &v, 8));
    /* a request flagged as a reply */
    g_assert_false(req_fds(fe, QNIC_VHU_SET_OWNER, QNIC_VHU_FLAG_REPLY, NULL, 0, NULL, 0, NULL,
                           NULL));

    /* Nothing above touched the rings. */
    for (unsigned i = 0; i < 2; i++) {
        g_assert_true(qnic_vhu_dev_vring_info(fe->d, i, &after[i]));
        g_assert_cmpint(after[i].started, ==, before[i].started);
        g_assert_cmpint(after[i].enabled, ==, before[i].enabled);
        g_assert_cmpuint(after[i].num, ==, before[i].num);
        g_assert_cmpuint(after[i].last_avail_idx, ==, before[i].last_avail_idx);
        g_assert_false(after[i].broken);
        g_assert_cmpint(after[i].call_fd, ==, before[i].call_fd);
    }
    g_assert_cmpuint(qnic_log_count(QNIC_LOG_GUEST_ERROR), ==, errs0);
    /* ... and they still work */
    check_tx_split(fe, 1);
    close(small_fd);
    close(efd);
    fe_free(fe);
    g_assert_cmpint(count_fds(), ==, fds0);
}

/* A ring the frontend breaks (a descriptor outside its memory) breaks the
 * device, not the process; the frontend restarting its rings recovers. */
static void test_broken_ring(void)
{
    int fds0 = count_fds();
    Fe *fe = fe_new("64", false);
    QnicVhuVringInfo info;
    QnicVhuMsg reply;
    bool sent;
    int err = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

    fe_negotiate(fe);
    g_assert_true(req_vring_fd(fe, QNIC_VHU_SET_VRING_ERR, 1, err));
    ring_add(&fe->tx, 0, RAM_SIZE + 0x1000, 64, false);
    kick(fe, 1);
    g_assert_cmpuint(fe->peer->frames->len, ==, 0);
    g_assert_true(qnic_vhu_dev_vring_info(fe->d, 1, &info));
    g_assert_true(info.broken);
    g_assert_cmpuint(read_eventfd(err), ==, 1);
    /* stop both rings and start again past the bad buffer */
    for (unsigned i = 0; i < 2; i++) {
        QnicVhuVringState st = { i, 0 };
        g_assert_true(req_fds(fe, QNIC_VHU_GET_VRING_BASE, 0, &st, sizeof(st), NULL, 0, &reply,
                              &sent));
    }
    g_assert_cmpuint(reply.p.state.num, ==, 1);
    qnic_st16(gp(fe, TX_USED + 2), 1);      /* the frontend completes the bad one */
    for (unsigned i = 0; i < 2; i++) {
        g_assert_true(req_state(fe, QNIC_VHU_SET_VRING_BASE, i, i ? 1 : 0));
        g_assert_true(req_vring_fd(fe, QNIC_VHU_SET_VRING_KICK, i, fe->kick[i]));
    }
    check_tx_split(fe, 1);
    close(err);
    fe_free(fe);
    g_assert_cmpint(count_fds(), ==, fds0);
}

/* Two queue pairs: MQ offered, SET_VRING_ENABLE sets the active pairs. */
static void test_mq(void)
{
    g_autoptr(GError) e = NULL;
    QnicNetdev *nd = qnic_netdev_add_str(test_backends(), "hubport,id=mqhp,hubid=65", &e);
    g_assert_no_error(e);
    /* a hubport has one queue: MQ needs a multiqueue netdev; use the
     * device API's view instead when none is available without root */
    QnicVhuDev *d = qnic_vhu_dev_new(test_backends(), "netdev=mqhp", &e);
    g_assert_no_error(e);
    g_assert_cmpuint(qnic_vhu_dev_num_vrings(d), ==, 2);
    g_assert_false(qnic_vhu_dev_features(d) & (1ull << VIRTIO_NET_F_MQ));
    g_assert_false(qnic_vhu_dev_protocol_features(d) & (1ull << QNIC_VHU_PROTOCOL_F_MQ));
    qnic_vhu_dev_free(d);
    qnic_netdev_del(nd);
    /* a missing netdev is a clear error */
    g_assert_null(qnic_vhu_dev_new(test_backends(), "netdev=nope", &e));
    g_assert_nonnull(e);
    g_test_message("%s", e->message);
}

/* The socket server: a real connection, requests and replies over it, and
 * a disconnect that resets the device. */
static void test_server(void)
{
    int fds0 = count_fds();
    Fe *fe = fe_new("66", false);
    g_autofree char *dir = g_dir_make_tmp("qnic-vhu-XXXXXX", NULL);
    g_autofree char *path = g_build_filename(dir, "sock", NULL);
    QnicVhuServerConfig cfg = { .path = path };
    g_autoptr(GError) err = NULL;
    QnicVhuServer *s = qnic_vhu_server_new(fe->d, &cfg, &err);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    QnicVhuMsg m, r;
    int c;

    g_assert_no_error(err);
    c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    strcpy(sa.sun_path, path);
    g_assert_cmpint(connect(c, (struct sockaddr *)&sa, sizeof(sa)), ==, 0);
    pump();
    g_assert_true(qnic_vhu_server_connected(s));
    /* A second frontend is turned away. */
    int c2 = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    g_assert_cmpint(connect(c2, (struct sockaddr *)&sa, sizeof(sa)), ==, 0);
    pump();
    char b;
    g_assert_cmpint(recv(c2, &b, 1, MSG_DONTWAIT), ==, 0);
    close(c2);

    qnic_vhu_msg_init(&m, QNIC_VHU_GET_FEATURES, 0);
    g_assert_true(qnic_vhu_msg_send(c, &m, NULL));
    pump();
    g_assert_cmpint(qnic_vhu_msg_recv(c, &r, NULL), ==, 1);
    g_assert_cmpuint(r.hdr.request, ==, QNIC_VHU_GET_FEATURES);
    g_assert_cmpuint(r.p.u64, ==, qnic_vhu_dev_features(fe->d));
    /* memory over the socket, then a disconnect: the device lets go */
    QnicVhuMemory mem = { .nregions = 1 };
    mem.regions[0] = (QnicVhuMemRegion){ 0, RAM_SIZE, UA_BASE, 0 };
    qnic_vhu_msg_init(&m, QNIC_VHU_SET_MEM_TABLE, 8 + 32);
    memcpy(&m.p, &mem, 8 + 32);
    m.fds[0] = fe->memfd;
    m.nfds = 1;
    g_assert_true(qnic_vhu_msg_send(c, &m, NULL));
    pump();
    g_assert_cmpuint(qnic_vhu_dev_num_regions(fe->d), ==, 1);
    close(c);
    pump();
    g_assert_false(qnic_vhu_server_connected(s));
    g_assert_cmpuint(qnic_vhu_dev_num_regions(fe->d), ==, 0);
    /* A garbage header drops the connection, never the process. */
    c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    g_assert_cmpint(connect(c, (struct sockaddr *)&sa, sizeof(sa)), ==, 0);
    pump();
    uint8_t junk[12] = { 1, 0, 0, 0, 0x7, 0, 0, 0, 0xff, 0xff, 0, 0 };
    g_assert_cmpint(send(c, junk, sizeof(junk), 0), ==, sizeof(junk));
    pump();
    g_assert_false(qnic_vhu_server_connected(s));
    close(c);
    qnic_vhu_server_free(s);
    g_assert_false(g_file_test(path, G_FILE_TEST_EXISTS));
    rmdir(dir);
    fe_free(fe);
    g_assert_cmpint(count_fds(), ==, fds0);
}

/* A frontend's hostile kick/call/err descriptors (issue 21, finding 2):
 * pipes, sockets and files are refused, and an eventfd the frontend made
 * blocking and full costs the device one guard tick, never a hang. */
static void test_hostile_fds(void)
{
    int fds0 = count_fds();
    Fe *fe = fe_new("64", false);
    QnicVhuVringInfo info;
    uint64_t full = 0xfffffffffffffffeull;
    uint8_t frame[60];
    int p[2], sp[2], efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    unsigned before;

    fe_negotiate(fe);
    check_tx_split(fe, 0);
    g_assert_cmpint(pipe2(p, O_CLOEXEC), ==, 0);
    g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), ==, 0);
    g_assert_false(req_vring_fd(fe, QNIC_VHU_SET_VRING_CALL, 1, p[1]));
    g_assert_false(req_vring_fd(fe, QNIC_VHU_SET_VRING_KICK, 1, sp[0]));
    g_assert_false(req_vring_fd(fe, QNIC_VHU_SET_VRING_ERR, 1, p[1]));
    g_assert_false(req_vring_fd(fe, QNIC_VHU_SET_VRING_CALL, 0, fe->memfd));
    check_tx_split(fe, 1);      /* the ring kept its eventfds */

    /* After the hand-over the frontend clears O_NONBLOCK (the flag is
     * shared) and fills the counter: a plain write would block for good. */
    g_assert_true(req_vring_fd(fe, QNIC_VHU_SET_VRING_CALL, 1, efd));
    g_assert_cmpint(fcntl(efd, F_SETFL, fcntl(efd, F_GETFL) & ~O_NONBLOCK), ==, 0);
    g_assert_cmpint(write(efd, &full, sizeof(full)), ==, sizeof(full));
    before = fe->peer->frames->len;
    make_frame(frame, sizeof(frame), 2);
    memset(gp(fe, TX_BUF), 0, HDR_LEN);
    memcpy(gp(fe, TX_BUF + HDR_LEN), frame, sizeof(frame));
    ring_add(&fe->tx, 2, TX_BUF, HDR_LEN + sizeof(frame), false);
    alarm(20);                  /* a hang fails the test instead of stalling it */
    kick(fe, 1);
    alarm(0);
    g_assert_cmpuint(fe->peer->frames->len, ==, before + 1);
    g_assert_cmpuint(qnic_ld16(gp(fe, TX_USED + 2)), ==, 3);
    /* that call descriptor is given up; a new one works */
    g_assert_true(qnic_vhu_dev_vring_info(fe->d, 1, &info));
    g_assert_cmpint(info.call_fd, ==, -1);
    g_assert_true(req_vring_fd(fe, QNIC_VHU_SET_VRING_CALL, 1, fe->call[1]));
    check_tx_split(fe, 3);
    close(efd);
    close(p[0]);
    close(p[1]);
    close(sp[0]);
    close(sp[1]);
    fe_free(fe);
    g_assert_cmpint(count_fds(), ==, fds0);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    qnic_log_mask = 0;
    qnic_bql_lock();
    /* The loop's own wakeup descriptor exists before any count. */
    pump();
    g_test_add_func("/vhost-user-dev/split/tx-rx-base-rarp-reset", test_split_tx_rx);
    g_test_add_func("/vhost-user-dev/packed/tx-rx-base", test_packed);
    g_test_add_func("/vhost-user-dev/malformed/refused-untouched-no-leak", test_malformed);
    g_test_add_func("/vhost-user-dev/broken-ring/recovers", test_broken_ring);
    g_test_add_func("/vhost-user-dev/queues/single-and-missing-netdev", test_mq);
    g_test_add_func("/vhost-user-dev/server/socket", test_server);
    g_test_add_func("/vhost-user-dev/hostile/fds", test_hostile_fds);
    return g_test_run();
}
