/*
 * -netdev af-xdp against -netdev tap on the same path, in one process: the
 * kernel on one side, the backend in the middle, a client of this program
 * on the other where a NIC would be. It exists so that the two backends'
 * own cost per frame can be compared with nothing else in the way (a qtest
 * driver would time its socket round trips, a guest this host's
 * instruction emulation). The program makes a network namespace and enters
 * it; there the backend is a tap (kernel side: the tap itself) or AF_XDP on
 * one end of a veth pair in skb or native mode (kernel side: the other
 * end), addressed 10.79.0.1/24, with 10.79.0.2 a permanent neighbour at the
 * client's MAC.
 *   rx  a thread sends 18-byte UDP datagrams (60-byte frames) from a kernel
 *       socket to 10.79.0.2 as fast as it can (sendmmsg, 64 a call); the client counts the frames
 *       the backend hands it. What the backend cannot keep up with the
 *       kernel drops, so this is the rate the backend sustains.
 *   tx  the client sends 60-byte frames (ethertype 0x88b5, which the stack
 *       drops at once) to the kernel side's MAC in bursts of 256, as
 *       virtio-net's TX bottom half does, waiting when the backend queues;
 *       the kernel side's rx_packets counter says how many arrived.
 * Besides frames per second it prints the main loop thread's CPU time per
 * frame (getrusage): in rx the sender's thread pays the kernel's share, so
 * this is the backend's own cost, and the number that still means something
 * when the sender, not the backend, sets the rate.
 * Not a test: bench/af-xdp-vs-tap.py runs it alternately for each backend
 * and prints medians and ratios. Needs root.
 *
 * usage: af-xdp-tap tap|skb|native rx|tx SECONDS
 * prints: result backend=skb dir=rx frames=N time_us=T fps=F
 */
#include "qnic/backends.h"
#include "qnic/mainloop.h"
#include "qnic/net.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <inttypes.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define FRAME 60
#define BURST 256

static volatile bool stop_sender;
static volatile uint64_t sent_by_kernel;
static uint64_t counted;
static bool blocked;
static char ns[32];

static int run(const char *cmd)
{
    int st = system(cmd);

    if (st != 0) {
        fprintf(stderr, "af-xdp-tap: '%s' failed (%d)\n", cmd, st);
    }
    return st;
}

static ssize_t client_receive(QnicNetClient *nc, const struct iovec *iov, int iovcnt)
{
    uint8_t h[38];

    /* IPv4 UDP to port 9: the sender's */
    if (qnic_iov_to_buf(iov, iovcnt, 0, h, sizeof(h)) == sizeof(h) && h[12] == 0x08 &&
        h[13] == 0 && h[23] == 17 && h[36] == 0 && h[37] == 9) {
        counted++;
    }
    return qnic_iov_size(iov, iovcnt);
}

static void client_sent(QnicNetClient *nc, ssize_t ret)
{
    blocked = false;
}

static const QnicNetClientOps client_ops = {
    .kind = QNIC_NET_CLIENT_NIC,
    .receive_iov = client_receive,
};

/* The namespace, the interfaces and the netdev; returns the kernel side. */
static QnicNetdev *setup(QnicBackends *be, const char *backend, char *kside)
{
    g_autofree char *cmd = g_strdup_printf("ip netns add %s", ns);
    g_autofree char *path = g_strdup_printf("/run/netns/%s", ns);
    g_autofree char *opts = NULL, *addr = NULL;
    g_autoptr(GError) err = NULL;
    bool tap = !strcmp(backend, "tap");
    QnicNetdev *nd;
    int fd;

    if (run(cmd) || (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || setns(fd, CLONE_NEWNET) < 0) {
        return NULL;
    }
    close(fd);
    strcpy(kside, tap ? "qb0" : "xb");
    if (run("sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1") ||
        (!tap && run("ip link add xa type veth peer name xb && ip link set xa up"))) {
        return NULL;
    }
    opts = tap ? g_strdup("tap,id=n0,ifname=qb0,script=no,downscript=no,vnet_hdr=off")
               : g_strdup_printf("af-xdp,id=n0,ifname=xa,mode=%s", backend);
    nd = qnic_netdev_add_str(be, opts, &err);
    if (!nd) {
        fprintf(stderr, "af-xdp-tap: %s: %s\n", opts, err->message);
        return NULL;
    }
    addr = g_strdup_printf("ip addr add 10.79.0.1/24 dev %s && ip link set %s up && "
                           "ip neigh replace 10.79.0.2 lladdr 52:54:00:12:34:56 dev %s "
                           "nud permanent", kside, kside, kside);
    return run(addr) ? NULL : nd;
}

/* The interface's received packets, from /proc/net/dev (which, unlike
 * /sys, shows this process's namespace). */
static uint64_t rx_packets(const char *ifname)
{
    g_autofree char *s = NULL;
    g_autofree char *key = g_strdup_printf("%s:", ifname);
    g_auto(GStrv) lines = NULL;
    uint64_t bytes = 0, packets = 0;

    if (!g_file_get_contents("/proc/net/dev", &s, NULL, NULL)) {
        return 0;
    }
    lines = g_strsplit(s, "\n", -1);
    for (char **l = lines; *l; l++) {
        char *p = strstr(*l, key);

        if (p && sscanf(p + strlen(key), "%" SCNu64 " %" SCNu64, &bytes, &packets) == 2) {
            return packets;
        }
    }
    return 0;
}

/* The interface's MAC (SIOCGIFHWADDR, in this process's namespace). */
static bool if_mac(const char *ifname, uint8_t mac[6])
{
    struct ifreq ifr = { 0 };
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    bool ok;

    g_strlcpy(ifr.ifr_name, ifname, sizeof(ifr.ifr_name));
    ok = fd >= 0 && ioctl(fd, SIOCGIFHWADDR, &ifr) == 0;
    if (ok) {
        memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
    }
    if (fd >= 0) {
        close(fd);
    }
    return ok;
}

/* CPU time of the calling thread (the main loop's), in microseconds. */
static gint64 thread_cpu_us(void)
{
    struct rusage ru;

    getrusage(RUSAGE_THREAD, &ru);
    return (gint64)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * G_USEC_PER_SEC +
           ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
}

static gpointer sender(gpointer opaque)
{
    struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(9) };
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    char payload[18] = "af-xdp vs tap";
    struct iovec iov = { payload, sizeof(payload) };
    struct mmsghdr msgs[64];

    inet_pton(AF_INET, "10.79.0.2", &to.sin_addr);
    connect(fd, (struct sockaddr *)&to, sizeof(to));
    memset(msgs, 0, sizeof(msgs));
    for (int i = 0; i < 64; i++) {
        msgs[i].msg_hdr.msg_iov = &iov;
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    while (!stop_sender) {
        int n = sendmmsg(fd, msgs, 64, 0);

        if (n > 0) {
            sent_by_kernel += n;
        }
    }
    close(fd);
    return NULL;
}

/* Frames the backend hands the client per second of `seconds`. */
static uint64_t bench_rx(double seconds, gint64 *elapsed)
{
    GThread *t = g_thread_new("sender", sender, NULL);
    gint64 start, end;

    start = g_get_monotonic_time() + 200000;        /* warm up first */
    while (g_get_monotonic_time() < start) {
        qnic_main_loop_iterate(true);
    }
    counted = 0;
    sent_by_kernel = 0;
    start = g_get_monotonic_time();
    end = start + (gint64)(seconds * G_USEC_PER_SEC);
    while (g_get_monotonic_time() < end) {
        qnic_main_loop_iterate(true);
    }
    *elapsed = g_get_monotonic_time() - start;
    fprintf(stderr, "af-xdp-tap: the kernel sent %" G_GUINT64_FORMAT " datagrams\n",
            (uint64_t)sent_by_kernel);
    stop_sender = true;
    g_thread_join(t);
    return counted;
}

/* Frames that reached the kernel side from the client in `seconds`. */
static uint64_t bench_tx(QnicNetClient *c, const char *kside, double seconds, gint64 *elapsed)
{
    uint8_t f[FRAME] = { 0 };
    struct iovec iov = { f, FRAME };
    uint64_t before = rx_packets(kside);
    gint64 start = g_get_monotonic_time(), end = start + (gint64)(seconds * G_USEC_PER_SEC);
    uint64_t handed = 0;

    if (!if_mac(kside, f)) {
        return 0;
    }
    memcpy(f + 6, "\x52\x54\x00\x12\x34\x56\x88\xb5", 8);
    while (g_get_monotonic_time() < end) {
        for (int i = 0; i < BURST && !blocked; i++) {
            f[20] = (uint8_t)i;
            blocked = qnic_net_send_iov(c, &iov, 1, client_sent) == 0;
            handed++;
        }
        qnic_main_loop_iterate(blocked);
    }
    while (blocked) {
        qnic_main_loop_iterate(true);
    }
    for (int i = 0; i < 20; i++) {     /* what the kick has not sent yet */
        qnic_main_loop_iterate(false);
    }
    *elapsed = g_get_monotonic_time() - start;
    fprintf(stderr, "af-xdp-tap: the client handed the backend %" G_GUINT64_FORMAT " frames\n",
            handed);
    return rx_packets(kside) - before;
}

int main(int argc, char **argv)
{
    QnicBackends *be;
    QnicNetdev *nd;
    QnicNetClient *c;
    g_autofree char *del = NULL;
    char kside[16];
    uint64_t frames;
    gint64 us = 1, cpu;
    int orig;

    if (argc != 4 || (strcmp(argv[1], "tap") && strcmp(argv[1], "skb") &&
                      strcmp(argv[1], "native")) ||
        (strcmp(argv[2], "rx") && strcmp(argv[2], "tx"))) {
        fprintf(stderr, "usage: %s tap|skb|native rx|tx SECONDS\n", argv[0]);
        return 2;
    }
    snprintf(ns, sizeof(ns), "qnicxb%d", (int)getpid());
    del = g_strdup_printf("ip netns del %s", ns);
    orig = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    qnic_bql_lock();
    be = qnic_backends_new();
    nd = setup(be, argv[1], kside);
    if (!nd) {
        qnic_backends_free(be);
        setns(orig, CLONE_NEWNET);
        run(del);
        return 1;
    }
    c = qnic_net_client_new(be, &client_ops, "bench", "c0", NULL);
    qnic_net_client_set_peer(c, nd->ncs[0]);
    cpu = thread_cpu_us();
    frames = !strcmp(argv[2], "rx") ? bench_rx(atof(argv[3]), &us)
                                    : bench_tx(c, kside, atof(argv[3]), &us);
    cpu = thread_cpu_us() - cpu;
    printf("result backend=%s dir=%s frames=%" G_GUINT64_FORMAT " time_us=%" G_GINT64_FORMAT
           " fps=%.0f loop_cpu_ns_per_frame=%.0f\n", argv[1], argv[2], frames, us,
           frames * 1e6 / (double)us, frames ? cpu * 1e3 / (double)frames : 0.0);
    qnic_net_client_free(c);
    qnic_backends_free(be);
    setns(orig, CLONE_NEWNET);
    run(del);
    return frames ? 0 : 1;
}
