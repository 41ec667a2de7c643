/*
 * No allocation per frame on the data paths, counted. The project's rule
 * "no per-packet malloc" is checked here by a counting allocator: this
 * program defines malloc and its family (forwarding to glibc's own
 * __libc_* entry points), so every allocation of the process, GLib's
 * g_malloc/g_slice (G_SLICE=always-malloc) included, passes through a
 * counter; under the sanitizers, whose runtime owns malloc, the counter is
 * their malloc hook instead. Each test warms a path up, then moves a batch
 * of frames with the counter on and fails if anything was allocated,
 * printing where the first allocations came from.
 *
 * The paths: the net queue (a busy receiver, frames with and without a
 * completion callback, then the flush); and qnic's vhost-user-net device
 * side in front of a real tap in a network namespace, as
 * tools/qnic-vhost-user-net runs it: virtio-net TX from the rings into the
 * tap, and RX from the tap into the rings (frames injected from the
 * namespace through a packet socket), split and packed rings; and the same
 * with `-netdev af-xdp` (skb mode) on a veth pair in place of the tap.
 */
#include "qnic/vhost-user-device.h"
#include "qnic-config.h"
#include "qnic/mainloop.h"
#include "qnic/net.h"
#include "test-tap-helpers.h"
#include "vring-host.h"
#include <execinfo.h>
#include <fcntl.h>
#include <sched.h>
#include <net/if.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <linux/if_packet.h>
#include <linux/if_ether.h>
#include <linux/virtio_net.h>
#include <linux/virtio_config.h>

/* ---- the counting allocator ---- */

static __thread bool counting;
static __thread bool in_hook;
static uint64_t nallocs;

static void note_alloc(size_t size)
{
    if (!counting || in_hook) {
        return;
    }
    in_hook = true;
    if (nallocs++ < 3) {
        void *bt[24];
        int n = backtrace(bt, G_N_ELEMENTS(bt));
        char line[64];
        int len = snprintf(line, sizeof(line), "# allocation of %zu bytes from:\n", size);
        if (write(2, line, len) < 0) {
            /* only diagnostics */
        }
        backtrace_symbols_fd(bt, n, 2);
    }
    in_hook = false;
}

#if defined(__SANITIZE_ADDRESS__)
#define ALLOC_VIA_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ALLOC_VIA_SANITIZER 1
#endif
#endif

#ifdef ALLOC_VIA_SANITIZER
/* The sanitizer runtime's hook (sanitizer/allocator_interface.h, which
 * gcc does not install). */
int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void *, size_t),
                                              void (*free_hook)(const volatile void *));

static void san_malloc_hook(const volatile void *p, size_t size)
{
    note_alloc(size);
}

static void san_free_hook(const volatile void *p)
{
}

static void alloc_counter_install(void)
{
    __sanitizer_install_malloc_and_free_hooks(san_malloc_hook, san_free_hook);
}
#else
extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t size);
extern void *__libc_memalign(size_t align, size_t size);
extern void __libc_free(void *p);

void *malloc(size_t size)
{
    note_alloc(size);
    return __libc_malloc(size);
}

void *calloc(size_t n, size_t size)
{
    note_alloc(size);
    return __libc_calloc(n, size);
}

void *realloc(void *p, size_t size)
{
    note_alloc(size);
    return __libc_realloc(p, size);
}

void free(void *p)
{
    __libc_free(p);
}

void *memalign(size_t align, size_t size)
{
    note_alloc(size);
    return __libc_memalign(align, size);
}

void *aligned_alloc(size_t align, size_t size)
{
    return memalign(align, size);
}

int posix_memalign(void **out, size_t align, size_t size)
{
    void *p = memalign(align, size);

    if (!p) {
        return ENOMEM;
    }
    *out = p;
    return 0;
}

static void alloc_counter_install(void)
{
}
#endif

static void count_start(void)
{
    nallocs = 0;
    counting = true;
}

static uint64_t count_stop(void)
{
    counting = false;
    return nallocs;
}

/* The counter itself must see allocations, or a zero proves nothing. */
static void test_counter_counts(void)
{
    count_start();
    g_free(g_malloc(100));
    g_list_free(g_list_prepend(NULL, NULL));
    g_assert_cmpuint(count_stop(), >=, 2);
}

/* ---- the net queue ---- */

typedef struct Sink {
    QnicNetClient *nc;
    bool busy;
    uint64_t frames, bytes;
} Sink;

static ssize_t sink_receive(QnicNetClient *nc, const struct iovec *iov, int iovcnt)
{
    Sink *s = nc->opaque;

    if (s->busy) {
        return 0;       /* queue it */
    }
    s->frames++;
    s->bytes += qnic_iov_size(iov, iovcnt);
    return qnic_iov_size(iov, iovcnt);
}

static const QnicNetClientOps sink_ops = {
    .kind = QNIC_NET_CLIENT_NIC,
    .receive_iov = sink_receive,
};

static unsigned sent_cbs;

static void count_sent(QnicNetClient *nc, ssize_t ret)
{
    sent_cbs++;
}

/* One round: the receiver is busy, 16 frames with a completion callback
 * and 16 without wait in its queue, then it drains them. */
static void queue_round(Sink *a, Sink *b, uint8_t *frame, size_t len)
{
    b->busy = true;
    for (unsigned i = 0; i < 32; i++) {
        struct iovec iov = { frame, len - i };
        g_assert_cmpint(qnic_net_send_iov(a->nc, &iov, 1, i & 1 ? count_sent : NULL), ==, 0);
    }
    b->busy = false;
    qnic_net_flush_queued(b->nc);
}

static void test_net_queue(void)
{
    Sink a = { 0 }, b = { 0 };
    uint8_t frame[1514] = { 0 };

    a.nc = qnic_net_client_new(test_backends(), &sink_ops, "alloc-a", "alloc-a", &a);
    b.nc = qnic_net_client_new(test_backends(), &sink_ops, "alloc-b", "alloc-b", &b);
    qnic_net_client_set_peer(a.nc, b.nc);
    for (int i = 0; i < 4; i++) {
        queue_round(&a, &b, frame, sizeof(frame));
    }
    sent_cbs = 0;
    b.frames = 0;
    count_start();
    for (int i = 0; i < 16; i++) {
        queue_round(&a, &b, i & 1 ? frame : frame + 1400, i & 1 ? sizeof(frame) : 114);
    }
    uint64_t n = count_stop();
    g_assert_cmpuint(b.frames, ==, 16 * 32);
    g_assert_cmpuint(sent_cbs, ==, 16 * 16);
    g_test_message("net queue: %" PRIu64 " allocations for %" PRIu64 " frames", n, b.frames);
    g_assert_cmpuint(n, ==, 0);
    qnic_net_client_free(a.nc);
    qnic_net_client_free(b.nc);
}

/* ---- vhost-user device side into a tap ---- */

#define RAM_SIZE 0x200000u
#define UA_BASE 0x7f0000000000ull
#define QSZ 64u
#define BATCH 32u
#define RX_DESC 0x0000u     /* each ring area fits QSZ entries */
#define RX_AVAIL 0x0400u
#define RX_USED 0x0800u
#define TX_DESC 0x1000u
#define TX_AVAIL 0x1400u
#define TX_USED 0x1800u
#define RX_BUF 0x10000u
#define TX_BUF 0x80000u
#define SLOT 0x800u
#define HDR_LEN 12u
#define FRAME_LEN 64u

typedef struct Env {
    char *ns, *ifname;
    QnicNetdev *nd;
    QnicVhuDev *d;
    int memfd;
    uint8_t *ram;
    VringHostRam host;
    VringMem mem;
    VringDriver rx, tx;
    int kick[2], call[2];
    int pkt;                    /* packet socket on the tap, in the namespace */
    int ifindex;
    unsigned rx_next;           /* next RX buffer id to post */
    bool packed;
} Env;

static void handle(Env *e, uint32_t request, const void *payload, uint32_t size, int fd)
{
    QnicVhuMsg msg, reply;
    g_autoptr(GError) err = NULL;
    bool send_reply;

    qnic_vhu_msg_init(&msg, request, size);
    if (size) {
        memcpy(&msg.p, payload, size);
    }
    if (fd >= 0) {
        msg.fds[0] = dup(fd);
        msg.nfds = 1;
    }
    if (!qnic_vhu_dev_handle(e->d, &msg, &reply, &send_reply, &err)) {
        g_error("%s refused: %s", qnic_vhu_request_name(request), err->message);
    }
}

static void handle_state(Env *e, uint32_t request, uint32_t index, uint32_t num)
{
    QnicVhuVringState s = { index, num };
    handle(e, request, &s, sizeof(s), -1);
}

/* What DPDK's virtio_user does: features, memory, both rings, enable. */
static void env_negotiate(Env *e)
{
    uint64_t f = (1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_NET_F_MRG_RXBUF) |
                 (1ull << QNIC_VHU_F_PROTOCOL_FEATURES) | (1ull << VIRTIO_NET_F_MAC);
    uint64_t pf = 1ull << QNIC_VHU_PROTOCOL_F_REPLY_ACK;
    QnicVhuMemory m = { .nregions = 1 };

    if (e->packed) {
        f |= 1ull << VIRTIO_F_RING_PACKED;
    }
    handle(e, QNIC_VHU_SET_OWNER, NULL, 0, -1);
    handle(e, QNIC_VHU_SET_PROTOCOL_FEATURES, &pf, sizeof(pf), -1);
    handle(e, QNIC_VHU_SET_FEATURES, &f, sizeof(f), -1);
    m.regions[0] = (QnicVhuMemRegion){ 0, RAM_SIZE, UA_BASE, 0 };
    handle(e, QNIC_VHU_SET_MEM_TABLE, &m, 8 + sizeof(QnicVhuMemRegion), e->memfd);
    for (unsigned i = 0; i < 2; i++) {
        QnicVhuVringAddr a = {
            .index = i, .desc_user_addr = UA_BASE + (i ? TX_DESC : RX_DESC),
            .avail_user_addr = UA_BASE + (i ? TX_AVAIL : RX_AVAIL),
            .used_user_addr = UA_BASE + (i ? TX_USED : RX_USED),
        };
        uint64_t idx = i;
        handle_state(e, QNIC_VHU_SET_VRING_NUM, i, QSZ);
        handle_state(e, QNIC_VHU_SET_VRING_BASE, i, e->packed ? 0x80008000u : 0);
        handle(e, QNIC_VHU_SET_VRING_ADDR, &a, sizeof(a), -1);
        handle(e, QNIC_VHU_SET_VRING_CALL, &idx, sizeof(idx), e->call[i]);
        handle(e, QNIC_VHU_SET_VRING_KICK, &idx, sizeof(idx), e->kick[i]);
        handle_state(e, QNIC_VHU_SET_VRING_ENABLE, i, 1);
    }
    g_assert_cmpuint(qnic_vhu_dev_active_pairs(e->d), ==, 1);
}

/* A packet socket bound to the tap inside the namespace: frames sent on it
 * reach qnic through the tap, frames qnic writes can be read from it. */
static int open_packet_socket(const char *ns, const char *ifname, int *ifindex)
{
    g_autofree char *path = g_strdup_printf("/var/run/netns/%s", ns);
    int self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    int target = open(path, O_RDONLY | O_CLOEXEC);
    int s;

    g_assert_cmpint(self, >=, 0);
    g_assert_cmpint(target, >=, 0);
    g_assert_cmpint(setns(target, CLONE_NEWNET), ==, 0);
    s = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, htons(ETH_P_ALL));
    *ifindex = if_nametoindex(ifname);
    g_assert_cmpint(setns(self, CLONE_NEWNET), ==, 0);
    close(self);
    close(target);
    g_assert_cmpint(s, >=, 0);
    g_assert_cmpint(*ifindex, >, 0);
    struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL),
                               .sll_ifindex = *ifindex };
    g_assert_cmpint(bind(s, (struct sockaddr *)&sll, sizeof(sll)), ==, 0);
    return s;
}

/* The netdev in front of the device: a tap qnic creates and hands to the
 * namespace, or (xdp) AF_XDP in skb mode on xa of a veth pair made in the
 * namespace, created from inside it; frames go in and out at the tap or at
 * xb. */
static void env_netdev(Env *e, bool xdp)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *opts = NULL, *path = g_strdup_printf("/var/run/netns/%s", e->ns);
    int self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC), target = -1;

    if (xdp) {
        e->ifname = g_strdup("xb");
        g_assert_cmpint(test_sh("ip -n %s link add xa type veth peer name xb && "
                                "ip -n %s link set xa up", e->ns, e->ns), ==, 0);
        target = open(path, O_RDONLY | O_CLOEXEC);
        g_assert_cmpint(setns(target, CLONE_NEWNET), ==, 0);
        opts = g_strdup("af-xdp,id=t0,ifname=xa,mode=skb");
    } else {
        e->ifname = test_name("qna");
        opts = g_strdup_printf("tap,id=t0,ifname=%s,script=no,downscript=no", e->ifname);
    }
    e->nd = qnic_netdev_add_str(test_backends(), opts, &err);
    g_assert_no_error(err);
    g_assert_cmpint(setns(self, CLONE_NEWNET), ==, 0);
    close(self);
    if (target >= 0) {
        close(target);
    }
}

static void env_up(Env *e, bool packed, bool xdp)
{
    g_autoptr(GError) err = NULL;

    e->packed = packed;
    e->ns = test_name("qnicalloc");
    test_sh("ip netns del %s 2>/dev/null", e->ns);
    g_assert_cmpint(test_sh("ip netns add %s && ip -n %s link set lo up && "
                            "ip netns exec %s sysctl -qw net.ipv6.conf.all.disable_ipv6=1 "
                            "net.ipv6.conf.default.disable_ipv6=1", e->ns, e->ns, e->ns), ==, 0);
    env_netdev(e, xdp);
    e->d = qnic_vhu_dev_new(test_backends(), "netdev=t0,mac=52:54:00:12:34:56,packed=on", &err);
    g_assert_no_error(err);
    if (!xdp) {
        g_assert_cmpint(test_sh("ip link set %s netns %s", e->ifname, e->ns), ==, 0);
    }
    g_assert_cmpint(test_sh("ip -n %s link set %s up", e->ns, e->ifname), ==, 0);
    e->pkt = open_packet_socket(e->ns, e->ifname, &e->ifindex);
    e->memfd = memfd_create("alloc-guest-ram", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    g_assert_true(ftruncate(e->memfd, RAM_SIZE) == 0 &&
                  fcntl(e->memfd, F_ADD_SEALS, F_SEAL_SHRINK) == 0);
    e->ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, e->memfd, 0);
    g_assert_true(e->ram != MAP_FAILED);
    e->host.base = e->ram;
    e->host.size = RAM_SIZE;
    e->mem = vring_host_ram_mem(&e->host);
    for (int i = 0; i < 2; i++) {
        vring_driver_init(i ? &e->tx : &e->rx, &e->mem, QSZ, packed, i ? TX_DESC : RX_DESC,
                          i ? TX_AVAIL : RX_AVAIL, i ? TX_USED : RX_USED);
        e->kick[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        e->call[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    }
    env_negotiate(e);
}

static void env_down(Env *e)
{
    qnic_vhu_dev_free(e->d);
    qnic_netdev_del(e->nd);
    for (int i = 0; i < 2; i++) {
        close(e->kick[i]);
        close(e->call[i]);
    }
    close(e->pkt);
    munmap(e->ram, RAM_SIZE);
    close(e->memfd);
    test_sh("ip netns del %s", e->ns);
    g_free(e->ns);
    g_free(e->ifname);
}

static void kick(Env *e, unsigned vring)
{
    uint64_t one = 1;
    g_assert_cmpint(write(e->kick[vring], &one, sizeof(one)), ==, sizeof(one));
}

/* Run the loop until `want` buffers came back on r (or 5 s pass). */
static unsigned reap(VringDriver *r, unsigned want)
{
    gint64 deadline = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
    unsigned got = 0;
    uint16_t id;
    uint32_t len;

    while (got < want && g_get_monotonic_time() < deadline) {
        qnic_main_loop_iterate(false);
        while (got < want && vring_get_used(r, &id, &len)) {
            got++;
        }
    }
    return got;
}

static unsigned drain_packet_socket(Env *e, size_t len)
{
    uint8_t buf[2048];
    unsigned n = 0;
    ssize_t r;

    while ((r = recv(e->pkt, buf, sizeof(buf), 0)) >= 0) {
        if ((size_t)r == len && buf[13] == 0xb5 && buf[11] == 0x56) {
            n++;
        }
    }
    return n;
}

/* BATCH frames from the TX ring into the tap; returns how many came back
 * used. Ethertype 0x88b5 (local experimental) marks ours. */
static unsigned tx_round(Env *e, unsigned round)
{
    for (unsigned i = 0; i < BATCH; i++) {
        uint16_t id = (round * BATCH + i) % QSZ;
        uint8_t *p = e->ram + TX_BUF + id * SLOT;
        VringBuf b = { .addr = TX_BUF + id * SLOT, .len = HDR_LEN + FRAME_LEN };

        memset(p, 0, HDR_LEN);
        memset(p + HDR_LEN, 0xff, 6);
        memcpy(p + HDR_LEN + 6, "\x52\x54\x00\x12\x34\x56", 6);
        p[HDR_LEN + 12] = 0x88;
        p[HDR_LEN + 13] = 0xb5;
        memset(p + HDR_LEN + 14, (uint8_t)i, FRAME_LEN - 14);
        vring_add_at(&e->tx, id, &b, 1);
    }
    kick(e, 1);
    return reap(&e->tx, BATCH);
}

static void rx_post(Env *e, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        uint16_t id = e->rx_next++ % QSZ;
        VringBuf b = { .addr = RX_BUF + (uint64_t)id * SLOT, .len = SLOT, .write = true };
        vring_add_at(&e->rx, id, &b, 1);
    }
    kick(e, 0);
}

/* BATCH frames from the namespace through the tap into the RX ring. */
static unsigned rx_round(Env *e)
{
    uint8_t f[FRAME_LEN];
    struct sockaddr_ll to = { .sll_family = AF_PACKET, .sll_ifindex = e->ifindex, .sll_halen = 6 };

    memcpy(f, "\x52\x54\x00\x12\x34\x56", 6);
    memcpy(f + 6, "\x02\x00\x00\x00\x00\x02", 6);
    f[12] = 0x88;
    f[13] = 0xb5;
    memset(f + 14, 0x5a, sizeof(f) - 14);
    memcpy(to.sll_addr, f, 6);
    rx_post(e, BATCH);
    for (unsigned i = 0; i < BATCH; i++) {
        g_assert_cmpint(sendto(e->pkt, f, sizeof(f), 0, (struct sockaddr *)&to, sizeof(to)), ==,
                        sizeof(f));
    }
    return reap(&e->rx, BATCH);
}

static void run_vhost_user_tap(bool packed, bool xdp)
{
    const char *skip = test_need_tun();
    Env e = { 0 };
    uint64_t n;
    unsigned moved = 0, seen;

    if (skip) {
        g_test_skip(skip);
        return;
    }
    env_up(&e, packed, xdp);
    for (unsigned r = 0; r < 4; r++) {
        g_assert_cmpuint(tx_round(&e, r), ==, BATCH);
        g_assert_cmpuint(rx_round(&e), ==, BATCH);
    }
    drain_packet_socket(&e, FRAME_LEN);

    count_start();
    for (unsigned r = 4; r < 12; r++) {
        moved += tx_round(&e, r);
    }
    n = count_stop();
    seen = drain_packet_socket(&e, FRAME_LEN);
    g_test_message("TX into the netdev: %" PRIu64 " allocations for %u frames (%u seen in the "
                   "namespace)", n, moved, seen);
    g_assert_cmpuint(moved, ==, 8 * BATCH);
    g_assert_cmpuint(seen, ==, 8 * BATCH);
    g_assert_cmpuint(n, ==, 0);

    moved = 0;
    count_start();
    for (unsigned r = 0; r < 8; r++) {
        moved += rx_round(&e);
    }
    n = count_stop();
    g_test_message("RX from the netdev: %" PRIu64 " allocations for %u frames", n, moved);
    g_assert_cmpuint(moved, ==, 8 * BATCH);
    g_assert_cmpuint(n, ==, 0);
    env_down(&e);
}

static void test_vhost_user_tap_split(void)
{
    run_vhost_user_tap(false, false);
}

static void test_vhost_user_tap_packed(void)
{
    run_vhost_user_tap(true, false);
}

static void test_vhost_user_af_xdp(void)
{
#ifdef CONFIG_AF_XDP
    run_vhost_user_tap(false, true);
#else
    g_test_skip("qnic was built without libxdp (-netdev af-xdp)");
#endif
}

int main(int argc, char **argv)
{
    /* GLib's slice allocator must allocate through malloc to be counted;
     * it reads G_SLICE once, early: start over with it set. */
    if (!g_getenv("G_SLICE")) {
        g_setenv("G_SLICE", "always-malloc", TRUE);
        execv("/proc/self/exe", argv);
        return 1;
    }
    alloc_counter_install();
    {
        void *bt[4];
        backtrace(bt, 4);   /* loads libgcc's unwinder now, not while counting */
    }
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/alloc-per-frame/counter", test_counter_counts);
    g_test_add_func("/alloc-per-frame/net-queue", test_net_queue);
    g_test_add_func("/alloc-per-frame/vhost-user-tap/split", test_vhost_user_tap_split);
    g_test_add_func("/alloc-per-frame/vhost-user-tap/packed", test_vhost_user_tap_packed);
    g_test_add_func("/alloc-per-frame/vhost-user-af-xdp/split", test_vhost_user_af_xdp);
    return g_test_run();
}
