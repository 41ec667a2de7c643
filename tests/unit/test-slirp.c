/*
 * The user netdev against libslirp's real services, driven by a NIC-like
 * client that plays a tiny guest: DHCP DISCOVER/REQUEST gets the 10.0.2.15
 * lease, ARP for the gateway 10.0.2.2 is answered, a TFTP read of a file
 * from a temporary tftp= directory arrives intact (SHA-256 compared), and
 * hostfwd turns a host TCP connection into a SYN to the guest port and a
 * host UDP datagram into one to the guest. Only loopback is used.
 */
#include "test-net-common.h"
#include "../lib/test-backends.h"
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>
#include <fcntl.h>
#include <glib/gstdio.h>

static const uint8_t guest_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

typedef struct Guest {
    TestNic *nic;
    QnicNetdev *nd;
    guint scanned;            /* frames already looked at for ARP */
    uint8_t gw_mac[6];
    bool have_gw_mac;
} Guest;

static uint16_t ip_csum(const uint8_t *p, size_t len)
{
    uint32_t sum = 0;
    for (size_t i = 0; i + 1 < len; i += 2) {
        sum += (p[i] << 8) | p[i + 1];
    }
    if (len & 1) {
        sum += p[len - 1] << 8;
    }
    while (sum >> 16) {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    return ~sum & 0xffff;
}

/* Ethernet + IPv4 + UDP (checksum 0: allowed over IPv4). Returns length. */
static size_t build_udp(uint8_t *f, const uint8_t *dst_mac, uint32_t src_ip, uint32_t dst_ip,
                        uint16_t sport, uint16_t dport, const void *payload, size_t plen)
{
    memcpy(f, dst_mac, 6);
    memcpy(f + 6, guest_mac, 6);
    qnic_st16be(f + 12, 0x0800);
    uint8_t *ip = f + 14;
    memset(ip, 0, 20);
    ip[0] = 0x45;
    qnic_st16be(ip + 2, 20 + 8 + plen);
    ip[8] = 64;
    ip[9] = 17;
    qnic_st32be(ip + 12, src_ip);
    qnic_st32be(ip + 16, dst_ip);
    qnic_st16be(ip + 10, ip_csum(ip, 20));
    uint8_t *udp = ip + 20;
    qnic_st16be(udp, sport);
    qnic_st16be(udp + 2, dport);
    qnic_st16be(udp + 4, 8 + plen);
    qnic_st16be(udp + 6, 0);
    memcpy(udp + 8, payload, plen);
    return 14 + 20 + 8 + plen;
}

static void send_arp(Guest *g, uint16_t op, const uint8_t *dst_mac, uint32_t sip, uint32_t tip,
                     const uint8_t *tha)
{
    uint8_t f[60] = { 0 };
    memcpy(f, dst_mac, 6);
    memcpy(f + 6, guest_mac, 6);
    qnic_st16be(f + 12, 0x0806);
    qnic_st16be(f + 14, 1);
    qnic_st16be(f + 16, 0x0800);
    f[18] = 6;
    f[19] = 4;
    qnic_st16be(f + 20, op);
    memcpy(f + 22, guest_mac, 6);
    qnic_st32be(f + 28, sip);
    memcpy(f + 32, tha, 6);
    qnic_st32be(f + 38, tip);
    qnic_net_send(g->nic->nc, f, sizeof(f));
}

#define IP4(a, b, c, d) (((uint32_t)(a) << 24) | ((b) << 16) | ((c) << 8) | (d))
#define GUEST_IP IP4(10, 0, 2, 15)
#define GW_IP IP4(10, 0, 2, 2)

/* The guest's reflexes, outside any callback: answer ARP for our address,
 * remember the gateway's MAC. */
static void guest_react(Guest *g)
{
    for (; g->scanned < g->nic->frames->len; g->scanned++) {
        size_t n;
        const uint8_t *f = g_bytes_get_data(g->nic->frames->pdata[g->scanned], &n);
        if (n >= 42 && qnic_ld16be(f + 12) == 0x0806) {
            uint16_t op = qnic_ld16be(f + 20);
            if (op == 1 && qnic_ld32be(f + 38) == GUEST_IP) {
                send_arp(g, 2, f + 6, GUEST_IP, qnic_ld32be(f + 28), f + 22);
            } else if (op == 2 && qnic_ld32be(f + 28) == GW_IP) {
                memcpy(g->gw_mac, f + 22, 6);
                g->have_gw_mac = true;
            }
        }
    }
}

static void pump(Guest *g, int ms)
{
    gint64 end = g_get_monotonic_time() + (gint64)ms * 1000;
    do {
        qnic_bql_lock();
        qnic_main_loop_iterate(false);
        qnic_bql_unlock();
        guest_react(g);
        g_usleep(500);
    } while (g_get_monotonic_time() < end);
}

/* Find a received IPv4 UDP frame to dport (from sport if nonzero), at or
 * after *from; returns its payload. */
static const uint8_t *find_udp(Guest *g, guint *from, uint16_t sport, uint16_t dport,
                               size_t *plen, uint16_t *src_port)
{
    for (; *from < g->nic->frames->len; (*from)++) {
        size_t n;
        const uint8_t *f = g_bytes_get_data(g->nic->frames->pdata[*from], &n);
        if (n < 42 || qnic_ld16be(f + 12) != 0x0800 || f[14 + 9] != 17) {
            continue;
        }
        size_t ihl = (f[14] & 0xf) * 4;
        const uint8_t *udp = f + 14 + ihl;
        if (14 + ihl + 8 > n) {
            continue;
        }
        if (qnic_ld16be(udp + 2) != dport || (sport && qnic_ld16be(udp) != sport)) {
            continue;
        }
        size_t ulen = qnic_ld16be(udp + 4);
        if (ulen < 8 || 14 + ihl + ulen > n) {
            continue;
        }
        *plen = ulen - 8;
        if (src_port) {
            *src_port = qnic_ld16be(udp);
        }
        (*from)++;
        return udp + 8;
    }
    return NULL;
}

static const uint8_t *wait_udp(Guest *g, guint *from, uint16_t sport, uint16_t dport,
                               size_t *plen, uint16_t *src_port, int timeout_ms)
{
    gint64 end = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
    const uint8_t *p;
    while (!(p = find_udp(g, from, sport, dport, plen, src_port))) {
        if (g_get_monotonic_time() > end) {
            return NULL;
        }
        pump(g, 2);
    }
    return p;
}

static Guest *guest_new(const char *netdev_opts)
{
    Guest *g = g_new0(Guest, 1);
    GError *err = NULL;

    g->nd = qnic_netdev_add_str(test_backends(), netdev_opts, &err);
    g_assert_no_error(err);
    g->nic = test_nic_new("guest");
    test_nic_attach(g->nic, g->nd);
    return g;
}

static void guest_free(Guest *g)
{
    test_nic_free(g->nic);
    qnic_netdev_del(g->nd);
    g_free(g);
}

static size_t build_dhcp(uint8_t *p, uint8_t type, uint32_t xid)
{
    memset(p, 0, 300);
    p[0] = 1;
    p[1] = 1;
    p[2] = 6;
    qnic_st32be(p + 4, xid);
    memcpy(p + 28, guest_mac, 6);
    qnic_st32be(p + 236, 0x63825363);
    uint8_t *o = p + 240;
    *o++ = 53; *o++ = 1; *o++ = type;
    if (type == 3) {
        *o++ = 50; *o++ = 4; qnic_st32be(o, GUEST_IP); o += 4;
        *o++ = 54; *o++ = 4; qnic_st32be(o, GW_IP); o += 4;
    }
    *o++ = 255;
    return 300;
}

static int dhcp_msg_type(const uint8_t *p, size_t len)
{
    if (len < 244 || qnic_ld32be(p + 236) != 0x63825363) {
        return -1;
    }
    for (size_t i = 240; i + 1 < len && p[i] != 255;) {
        if (p[i] == 0) {
            i++;
            continue;
        }
        if (p[i] == 53 && i + 2 < len) {
            return p[i + 2];
        }
        i += 2 + p[i + 1];
    }
    return -1;
}

static void test_dhcp_arp(void)
{
    Guest *g = guest_new("user,id=u0");
    uint8_t frame[600], bootp[300];
    guint from = 0;
    size_t plen;
    const uint8_t *p;

    build_dhcp(bootp, 1, 0x1234);
    qnic_net_send(g->nic->nc, frame,
                  build_udp(frame, bcast, 0, 0xffffffff, 68, 67, bootp, sizeof(bootp)));
    p = wait_udp(g, &from, 67, 68, &plen, NULL, 3000);
    g_assert_nonnull(p);
    g_assert_cmpint(dhcp_msg_type(p, plen), ==, 2);            /* OFFER */
    g_assert_cmpuint(qnic_ld32be(p + 4), ==, 0x1234);
    g_assert_cmpuint(qnic_ld32be(p + 16), ==, GUEST_IP);        /* yiaddr */

    build_dhcp(bootp, 3, 0x1235);
    qnic_net_send(g->nic->nc, frame,
                  build_udp(frame, bcast, 0, 0xffffffff, 68, 67, bootp, sizeof(bootp)));
    p = wait_udp(g, &from, 67, 68, &plen, NULL, 3000);
    g_assert_nonnull(p);
    g_assert_cmpint(dhcp_msg_type(p, plen), ==, 5);            /* ACK */
    g_assert_cmpuint(qnic_ld32be(p + 16), ==, GUEST_IP);

    send_arp(g, 1, bcast, GUEST_IP, GW_IP, (const uint8_t[6]){ 0 });
    gint64 end = g_get_monotonic_time() + 3000000;
    while (!g->have_gw_mac && g_get_monotonic_time() < end) {
        pump(g, 2);
    }
    g_assert_true(g->have_gw_mac);
    /* libslirp's gateway MAC: 52:55 + the gateway address. */
    static const uint8_t gw[6] = { 0x52, 0x55, 10, 0, 2, 2 };
    g_assert_cmpmem(g->gw_mac, 6, gw, 6);
    guest_free(g);
}

static void test_tftp(void)
{
    g_autofree char *dir = g_dir_make_tmp("qnic-tftp-XXXXXX", NULL);
    g_autofree char *path = g_build_filename(dir, "boot.bin", NULL);
    g_autofree char *opts = g_strdup_printf("user,id=u1,tftp=%s", dir);
    size_t size = 512 * 9 + 123;
    g_autofree uint8_t *data = g_malloc(size);
    GByteArray *got = g_byte_array_new();
    GRand *r = g_rand_new_with_seed(42);

    for (size_t i = 0; i < size; i++) {
        data[i] = g_rand_int(r) & 0xff;
    }
    g_rand_free(r);
    g_assert_true(g_file_set_contents(path, (char *)data, size, NULL));

    Guest *g = guest_new(opts);
    uint8_t frame[1600], rrq[64];
    size_t rl = 0;
    rrq[rl++] = 0;
    rrq[rl++] = 1;
    memcpy(rrq + rl, "boot.bin", 9);
    rl += 9;
    memcpy(rrq + rl, "octet", 6);
    rl += 6;
    /* The gateway MAC first (as a guest would), then the request. */
    send_arp(g, 1, bcast, GUEST_IP, GW_IP, (const uint8_t[6]){ 0 });
    pump(g, 20);
    g_assert_true(g->have_gw_mac);
    qnic_net_send(g->nic->nc, frame,
                  build_udp(frame, g->gw_mac, GUEST_IP, GW_IP, 2000, 69, rrq, rl));
    guint from = 0;
    uint16_t expect = 1, sport = 0;
    for (;;) {
        size_t plen;
        const uint8_t *p = wait_udp(g, &from, 0, 2000, &plen, &sport, 3000);
        g_assert_nonnull(p);
        g_assert_cmpuint(plen, >=, 4);
        g_assert_cmpuint(qnic_ld16be(p), ==, 3);          /* DATA */
        uint16_t block = qnic_ld16be(p + 2);
        if (block == expect) {
            g_byte_array_append(got, p + 4, plen - 4);
            expect++;
        }
        uint8_t ack[4];
        qnic_st16be(ack, 4);
        qnic_st16be(ack + 2, block);
        qnic_net_send(g->nic->nc, frame,
                      build_udp(frame, g->gw_mac, GUEST_IP, GW_IP, 2000, sport, ack, 4));
        if (block == expect - 1 && plen - 4 < 512) {
            break;
        }
    }
    g_assert_cmpuint(got->len, ==, size);
    g_autofree char *want = g_compute_checksum_for_data(G_CHECKSUM_SHA256, data, size);
    g_autofree char *have = g_compute_checksum_for_data(G_CHECKSUM_SHA256, got->data, got->len);
    g_assert_cmpstr(have, ==, want);
    g_byte_array_free(got, TRUE);
    guest_free(g);
    g_unlink(path);
    g_rmdir(dir);
}

static int free_port(int type)
{
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t sl = sizeof(sin);
    int fd = socket(AF_INET, type, 0);
    g_assert_cmpint(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), ==, 0);
    getsockname(fd, (struct sockaddr *)&sin, &sl);
    close(fd);
    return ntohs(sin.sin_port);
}

static bool find_syn(Guest *g, guint *from, uint16_t dport)
{
    for (; *from < g->nic->frames->len; (*from)++) {
        size_t n;
        const uint8_t *f = g_bytes_get_data(g->nic->frames->pdata[*from], &n);
        if (n < 54 || qnic_ld16be(f + 12) != 0x0800 || f[14 + 9] != 6) {
            continue;
        }
        const uint8_t *tcp = f + 14 + (f[14] & 0xf) * 4;
        if (qnic_ld32be(f + 14 + 16) == GUEST_IP && qnic_ld16be(tcp + 2) == dport &&
            (tcp[13] & 0x12) == 0x02) {
            return true;
        }
    }
    return false;
}

static void test_hostfwd(void)
{
    int tport = free_port(SOCK_STREAM), uport = free_port(SOCK_DGRAM);
    g_autofree char *opts = g_strdup_printf(
        "user,id=u2,hostfwd=tcp:127.0.0.1:%d-:22,hostfwd=udp:127.0.0.1:%d-10.0.2.15:5555",
        tport, uport);
    Guest *g = guest_new(opts);
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    guint from = 0;

    /* TCP: a host connection makes slirp open one to the guest. */
    int tfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    sin.sin_port = htons(tport);
    int rc = connect(tfd, (struct sockaddr *)&sin, sizeof(sin));
    g_assert_true(rc == 0 || errno == EINPROGRESS);
    gint64 end = g_get_monotonic_time() + 5000000;
    bool syn = false;
    while (!(syn = find_syn(g, &from, 22)) && g_get_monotonic_time() < end) {
        pump(g, 5);
    }
    g_assert_true(syn);
    close(tfd);

    /* UDP: a host datagram reaches the guest port with its payload. */
    int ufd = socket(AF_INET, SOCK_DGRAM, 0);
    sin.sin_port = htons(uport);
    static const char msg[] = "hello through slirp";
    g_assert_cmpint(sendto(ufd, msg, sizeof(msg), 0, (struct sockaddr *)&sin, sizeof(sin)), ==,
                    sizeof(msg));
    size_t plen;
    const uint8_t *p = wait_udp(g, &from, 0, 5555, &plen, NULL, 5000);
    g_assert_nonnull(p);
    g_assert_cmpmem(p, plen, msg, sizeof(msg));
    close(ufd);
    guest_free(g);
}

static void test_options(void)
{
    GError *err = NULL;
    QnicNetdev *nd;

    nd = qnic_netdev_add_str(test_backends(), "user,id=o1,net=192.168.76.0/24,host=192.168.76.1,"
                             "dhcpstart=192.168.76.50,dns=192.168.76.53,hostname=g,"
                             "domainname=example.test,dnssearch=a.test,dnssearch=b.test,"
                             "ipv6-net=fd00:1::/64,restrict=on", &err);
    g_assert_no_error(err);
    qnic_netdev_del(nd);
    g_assert_null(qnic_netdev_add_str(test_backends(), "user,id=o2,net=10.0.2.0/24,host=10.0.3.2", &err));
    g_assert_nonnull(strstr(err->message, "not in the network"));
    g_clear_error(&err);
    g_assert_null(qnic_netdev_add_str(test_backends(), "user,id=o3,hostfwd=tcp:127.0.0.1:x-:22", &err));
    g_assert_nonnull(strstr(err->message, "Invalid host forwarding rule"));
    g_clear_error(&err);
    g_assert_null(qnic_netdev_add_str(test_backends(), "user,id=o4,ipv4=off,ipv6=off", &err));
    g_assert_nonnull(err);
    g_clear_error(&err);
    if (!g_file_test("/usr/sbin/smbd", G_FILE_TEST_EXISTS)) {
        g_assert_null(qnic_netdev_add_str(test_backends(), "user,id=o5,smb=/tmp", &err));
        g_assert_nonnull(strstr(err->message, "smbd"));
        g_clear_error(&err);
    }
    g_assert_null(qnic_netdev_add_str(test_backends(), "user,id=o6,guestfwd=tcp:10.0.2.100:80-tcp:127.0.0.1:1",
                                      &err));
    g_assert_nonnull(strstr(err->message, "guestfwd"));
    g_clear_error(&err);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/slirp/dhcp-arp", test_dhcp_arp);
    g_test_add_func("/slirp/tftp", test_tftp);
    g_test_add_func("/slirp/hostfwd", test_hostfwd);
    g_test_add_func("/slirp/options", test_options);
    return g_test_run();
}
