/*
 * Tests of the l2tpv3 netdev: the pure framing functions (every header
 * variant round-trips; every truncation and every wrong field is refused),
 * option errors as one-line messages, two qnic netdevs talking over UDP on
 * loopback (malformed datagrams from a third socket are dropped), and QEMU
 * 7.2 as the peer over UDP and raw IP with the same options on both sides,
 * frames crossing byte-exact both ways through a QEMU hub whose other port
 * is a socket netdev connected to a listener this test holds.
 */
#include "test-tap-helpers.h"
#include "backends/l2tpv3.h"
#include "../lib/test-backends.h"

#include <netinet/in.h>
#include <arpa/inet.h>

/* ---- framing ---- */

static void check_roundtrip(const QnicL2tpv3Params *p)
{
    uint8_t pkt[2048], frame[100];
    size_t base = 0, hlen, off = 0, flen = 0;
    QnicL2tpv3Params rx = *p;

    rx.rx_session = p->tx_session;
    rx.rx_cookie = p->tx_cookie;
    test_frame(frame, sizeof(frame), 1);
    if (!p->udp && !p->ipv6) {
        base = 20;   /* a raw IPv4 socket hands over the IP header */
    }
    hlen = qnic_l2tpv3_build_header(p, 0x01020304, pkt + base, sizeof(pkt) - base);
    g_assert_cmpuint(hlen, ==, qnic_l2tpv3_header_len(p));
    memcpy(pkt + base + hlen, frame, sizeof(frame));
    size_t total = base + hlen + sizeof(frame);
    if (base) {
        memset(pkt, 0, 20);
        pkt[0] = 0x45;
        qnic_st16be(pkt + 2, (uint16_t)total);
        pkt[9] = 115;
    }
    if (p->udp) {
        g_assert_cmpuint(qnic_ld32be(pkt), ==, 0x00030000);
    }
    g_assert_cmpuint(qnic_ld32be(pkt + base + (p->udp ? 4 : 0)), ==, p->tx_session);
    if (p->counter) {
        size_t co = base + (p->udp ? 4 : 0) + 4 + (p->cookie ? (p->cookie64 ? 8 : 4) : 0);
        g_assert_cmpuint(qnic_ld32be(pkt + co), ==, p->pin_counter ? 0 : 0x01020304);
    }
    g_assert_cmpint(qnic_l2tpv3_parse(&rx, pkt, total, &off, &flen), ==, QNIC_L2TPV3_OK);
    g_assert_cmpuint(flen, ==, sizeof(frame));
    g_assert_cmpmem(pkt + off, flen, frame, sizeof(frame));

    /* Every truncation that leaves less than header + Ethernet header fails
     * (and an IPv4 total length beyond the data fails too). */
    for (size_t len = 0; len < base + hlen + QNIC_L2TPV3_MIN_FRAME; len++) {
        g_assert_cmpint(qnic_l2tpv3_parse(&rx, pkt, len, &off, &flen), !=, QNIC_L2TPV3_OK);
    }
    /* Wrong session id. */
    rx.rx_session ^= 1;
    g_assert_cmpint(qnic_l2tpv3_parse(&rx, pkt, total, &off, &flen), ==, QNIC_L2TPV3_ERR_SESSION);
    rx.rx_session ^= 1;
    if (p->cookie) {
        rx.rx_cookie ^= p->cookie64 ? (1ull << 63) : 1;
        g_assert_cmpint(qnic_l2tpv3_parse(&rx, pkt, total, &off, &flen), ==,
                        QNIC_L2TPV3_ERR_COOKIE);
        rx.rx_cookie = p->tx_cookie;
    }
    if (p->udp) {
        pkt[0] |= 0x80;   /* T bit: a control message */
        g_assert_cmpint(qnic_l2tpv3_parse(&rx, pkt, total, &off, &flen), ==,
                        QNIC_L2TPV3_ERR_DATA_WORD);
        pkt[0] &= 0x7f;
        pkt[1] = 2;       /* L2TPv2 */
        g_assert_cmpint(qnic_l2tpv3_parse(&rx, pkt, total, &off, &flen), ==,
                        QNIC_L2TPV3_ERR_DATA_WORD);
        pkt[1] = 3;
    }
    if (base) {
        pkt[0] = 0x44;    /* IHL 4 */
        g_assert_cmpint(qnic_l2tpv3_parse(&rx, pkt, total, &off, &flen), ==, QNIC_L2TPV3_ERR_IP);
        pkt[0] = 0x4f;    /* IHL 60: past the L2TP header, still bounded */
        g_assert_cmpint(qnic_l2tpv3_parse(&rx, pkt, total, &off, &flen), !=, QNIC_L2TPV3_OK);
        pkt[0] = 0x45;
        qnic_st16be(pkt + 2, (uint16_t)(total + 1));
        g_assert_cmpint(qnic_l2tpv3_parse(&rx, pkt, total, &off, &flen), ==, QNIC_L2TPV3_ERR_IP);
        qnic_st16be(pkt + 2, (uint16_t)total);
        pkt[9] = 17;
        g_assert_cmpint(qnic_l2tpv3_parse(&rx, pkt, total, &off, &flen), ==, QNIC_L2TPV3_ERR_IP);
        pkt[9] = 115;
    }
    g_assert_cmpint(qnic_l2tpv3_parse(&rx, pkt, total, &off, &flen), ==, QNIC_L2TPV3_OK);
}

static void test_framing(void)
{
    int n = 0;

    for (int udp = 0; udp < 2; udp++) {
        for (int v6 = 0; v6 < 2; v6++) {
            for (int ck = 0; ck < 3; ck++) {
                for (int ctr = 0; ctr < 3; ctr++) {
                    for (int off = 0; off < 2; off++) {
                        QnicL2tpv3Params p = {
                            .udp = udp, .ipv6 = v6, .cookie = ck > 0, .cookie64 = ck == 2,
                            .counter = ctr > 0, .pin_counter = ctr == 2,
                            .tx_session = 0xdeadbe00u + n,
                            .tx_cookie = ck == 2 ? 0x1122334455667788ull : 0x99aabbccull,
                            .offset = off ? 6 : 0,
                        };
                        check_roundtrip(&p);
                        n++;
                    }
                }
            }
        }
    }
    /* Header length arithmetic of QEMU's layout. */
    QnicL2tpv3Params p = { .udp = true, .cookie = true, .cookie64 = true, .counter = true,
                           .offset = 2 };
    g_assert_cmpuint(qnic_l2tpv3_header_len(&p), ==, 4 + 4 + 8 + 4 + 2);
    uint8_t small[8];
    g_assert_cmpuint(qnic_l2tpv3_build_header(&p, 0, small, sizeof(small)), ==, 0);
    p.offset = QNIC_L2TPV3_MAX_OFFSET + 1;
    size_t o, l;
    uint8_t big[2048] = { 0 };
    g_assert_cmpint(qnic_l2tpv3_parse(&p, big, sizeof(big), &o, &l), ==, QNIC_L2TPV3_ERR_PARAMS);
}

/* ---- option errors ---- */

static void test_errors(void)
{
    uint16_t port = test_free_port(SOCK_DGRAM);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
    int fd;
    g_autofree char *o = NULL;

    expect_error("l2tpv3,id=e0,src=127.0.0.1,dst=127.0.0.1,udp=on,txsession=1,srcport=1",
                 "need both srcport= and dstport=");
    expect_error("l2tpv3,id=e1,src=127.0.0.1,dst=127.0.0.1,udp=on,txsession=1,srcport=1,"
                 "dstport=2,txcookie=5", "cookie specified but not both rx and tx");
    expect_error("l2tpv3,id=e2,src=300.1.2.3,dst=127.0.0.1,udp=on,txsession=1,srcport=1,"
                 "dstport=2", "cannot resolve source address '300.1.2.3'");
    expect_error("l2tpv3,id=e3,src=127.0.0.1,dst=127.0.0.1,udp=on,txsession=1,srcport=1,"
                 "dstport=2,txcookie=0x100000000,rxcookie=1", "needs cookie64=on");
    expect_error("l2tpv3,id=e4,src=127.0.0.1,dst=127.0.0.1,udp=on,txsession=1,srcport=1,"
                 "dstport=2,offset=5000", "offset 5000 is larger");

    /* Port in use: hold it without SO_REUSEADDR. */
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fd = socket(AF_INET, SOCK_DGRAM, 0);
    g_assert_cmpint(bind(fd, (struct sockaddr *)&a, sizeof(a)), ==, 0);
    o = g_strdup_printf("l2tpv3,id=e5,src=127.0.0.1,dst=127.0.0.1,udp=on,txsession=1,"
                        "srcport=%u,dstport=%u", port, port);
    expect_error(o, "Address already in use");
    close(fd);
}

/* ---- qnic <-> qnic over UDP ---- */

static void test_qnic_pair(void)
{
    uint16_t pa = test_free_port(SOCK_DGRAM), pb = test_free_port(SOCK_DGRAM);
    g_autoptr(GError) err = NULL;
    g_autofree char *oa = g_strdup_printf(
        "l2tpv3,id=la,src=127.0.0.1,dst=127.0.0.1,udp=on,srcport=%u,dstport=%u,"
        "txsession=0x11,rxsession=0x22,txcookie=0x0102030405060708,rxcookie=0x0a0b0c0d0e0f1011,"
        "cookie64=on,counter=on", pa, pb);
    g_autofree char *ob = g_strdup_printf(
        "l2tpv3,id=lb,src=127.0.0.1,dst=127.0.0.1,udp=on,srcport=%u,dstport=%u,"
        "txsession=0x22,rxsession=0x11,txcookie=0x0a0b0c0d0e0f1011,rxcookie=0x0102030405060708,"
        "cookie64=on,counter=on", pb, pa);
    QnicNetdev *a = qnic_netdev_add_str(test_backends(), oa, &err);
    g_assert_no_error(err);
    QnicNetdev *b = qnic_netdev_add_str(test_backends(), ob, &err);
    g_assert_no_error(err);
    TestSink *sa = test_sink_new(a->ncs[0], "sa"), *sb = test_sink_new(b->ncs[0], "sb");
    uint8_t f[1514];

    for (uint32_t i = 0; i < 5; i++) {
        size_t n = test_frame(f, 60 + i * 300, i);
        g_assert_cmpint(qnic_net_send(sa->nc, f, n), ==, n);
        g_assert_true(test_sink_wait(sb, 3000));
        GByteArray *got = g_ptr_array_index(sb->frames, 0);
        g_assert_cmpmem(got->data, got->len, f, n);
        g_ptr_array_remove_index(sb->frames, 0);

        n = test_frame(f, 1514 - i * 100, i + 100);
        g_assert_cmpint(qnic_net_send(sb->nc, f, n), ==, n);
        g_assert_true(test_sink_wait(sa, 3000));
        got = g_ptr_array_index(sa->frames, 0);
        g_assert_cmpmem(got->data, got->len, f, n);
        g_ptr_array_remove_index(sa->frames, 0);
    }

    /* Hostile datagrams at b: wrong session, wrong cookie, short, garbage. */
    {
        struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(pb) };
        int fd = socket(AF_INET, SOCK_DGRAM, 0);
        uint8_t pkt[200];
        QnicL2tpv3Params p = { .udp = true, .cookie = true, .cookie64 = true, .counter = true,
                               .tx_session = 0x11, .tx_cookie = 0x0102030405060708ull };
        size_t h;

        to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        p.tx_session = 0x12;
        h = qnic_l2tpv3_build_header(&p, 1, pkt, sizeof(pkt));
        test_frame(pkt + h, 60, 9);
        sendto(fd, pkt, h + 60, 0, (struct sockaddr *)&to, sizeof(to));
        p.tx_session = 0x11;
        p.tx_cookie++;
        h = qnic_l2tpv3_build_header(&p, 1, pkt, sizeof(pkt));
        sendto(fd, pkt, h + 60, 0, (struct sockaddr *)&to, sizeof(to));
        p.tx_cookie--;
        h = qnic_l2tpv3_build_header(&p, 1, pkt, sizeof(pkt));
        sendto(fd, pkt, h + 5, 0, (struct sockaddr *)&to, sizeof(to));
        sendto(fd, pkt, 3, 0, (struct sockaddr *)&to, sizeof(to));
        sendto(fd, "", 0, 0, (struct sockaddr *)&to, sizeof(to));
        /* ... and then a good one, which must be the only one delivered. */
        test_frame(pkt + h, 64, 10);
        sendto(fd, pkt, h + 64, 0, (struct sockaddr *)&to, sizeof(to));
        close(fd);
        g_assert_true(test_sink_wait(sb, 3000));
        test_pump(200, NULL, NULL);
        g_assert_cmpuint(sb->frames->len, ==, 1);
        GByteArray *got = g_ptr_array_index(sb->frames, 0);
        g_assert_cmpmem(got->data, got->len, pkt + h, 64);
    }

    /* Flow control: a busy receiver holds frames, nothing is lost. */
    sb->busy = true;
    g_ptr_array_set_size(sb->frames, 0);
    for (uint32_t i = 0; i < 50; i++) {
        size_t n = test_frame(f, 100, 1000 + i);
        qnic_net_send(sa->nc, f, n);
    }
    test_pump(300, NULL, NULL);
    g_assert_cmpuint(sb->frames->len, ==, 0);
    sb->busy = false;
    qnic_net_flush_queued(sb->nc);
    for (int i = 0; i < 100 && sb->frames->len < 50; i++) {
        test_pump(20, NULL, NULL);
    }
    g_assert_cmpuint(sb->frames->len, ==, 50);
    for (uint32_t i = 0; i < 50; i++) {
        GByteArray *got = g_ptr_array_index(sb->frames, i);
        test_frame(f, 100, 1000 + i);
        g_assert_cmpmem(got->data, got->len, f, 100);
    }

    test_sink_free(sa);
    test_sink_free(sb);
    qnic_netdev_del(a);
    qnic_netdev_del(b);
}

/* ---- QEMU 7.2 as the peer ---- */

static void qemu_peer(bool udp)
{
    const char *skip = test_need_qemu();
    uint16_t pq = test_free_port(SOCK_DGRAM), pn = test_free_port(SOCK_DGRAM), ls_port;
    g_autoptr(GError) err = NULL;
    g_autofree char *qopt = NULL, *nopt = NULL;
    int lfd, cfd;
    GPid pid;
    uint8_t f[1514];

    if (skip) {
        g_test_skip(skip);
        return;
    }
    if (!udp && geteuid() != 0) {
        g_test_skip("raw IP (protocol 115) sockets need root / CAP_NET_RAW");
        return;
    }
    lfd = test_listen_tcp(&ls_port);
    if (udp) {
        /* Same options on both sides: 64-bit cookies, a counter, offset. */
        const char *common = "udp=on,cookie64=on,counter=on,offset=4";
        qopt = g_strdup_printf("l2tpv3,id=l2,src=127.0.0.1,dst=127.0.0.1,srcport=%u,dstport=%u,"
                               "txsession=0x3000,rxsession=0x3001,txcookie=0x1111222233334444,"
                               "rxcookie=0x5555666677778888,%s", pq, pn, common);
        nopt = g_strdup_printf("l2tpv3,id=n2,src=127.0.0.1,dst=127.0.0.1,srcport=%u,dstport=%u,"
                               "txsession=0x3001,rxsession=0x3000,txcookie=0x5555666677778888,"
                               "rxcookie=0x1111222233334444,%s", pn, pq, common);
    } else {
        /* Raw IP: each side bound to its own loopback address so neither
         * reads the other's traffic as its own; 32-bit cookies, pinned
         * counter. */
        const char *common = "udp=off,counter=on,pincounter=on";
        qopt = g_strdup_printf("l2tpv3,id=l2,src=127.0.0.3,dst=127.0.0.2,txsession=0x77,"
                               "rxsession=0x78,txcookie=0xabcdef01,rxcookie=0x10fedcba,%s", common);
        nopt = g_strdup_printf("l2tpv3,id=n2,src=127.0.0.2,dst=127.0.0.3,txsession=0x78,"
                               "rxsession=0x77,txcookie=0x10fedcba,rxcookie=0xabcdef01,%s", common);
    }
    QnicNetdev *nd = qnic_netdev_add_str(test_backends(), nopt, &err);
    g_assert_no_error(err);
    TestSink *sink = test_sink_new(nd->ncs[0], "sink");
    cfd = test_qemu_start_hub_peer(qopt, "l2", lfd, ls_port, &pid);

    for (uint32_t i = 0; i < 4; i++) {
        /* qnic -> QEMU l2tpv3 -> hub -> socket -> us */
        size_t n = test_frame(f, 64 + i * 400, i);
        g_assert_cmpint(qnic_net_send(sink->nc, f, n), ==, n);
        g_autoptr(GByteArray) got = test_stream_recv(cfd, 10000);
        g_assert_nonnull(got);
        g_assert_cmpmem(got->data, got->len, f, n);

        /* us -> socket -> hub -> QEMU l2tpv3 -> qnic */
        n = test_frame(f, 1514 - i * 300, 50 + i);
        test_stream_send(cfd, f, n);
        g_assert_true(test_sink_wait(sink, 10000));
        GByteArray *b = g_ptr_array_index(sink->frames, 0);
        g_assert_cmpmem(b->data, b->len, f, n);
        g_ptr_array_remove_index(sink->frames, 0);
    }

    close(cfd);
    close(lfd);
    test_qemu_stop_and_clean(pid);
    test_sink_free(sink);
    qnic_netdev_del(nd);
}

static void test_qemu_udp(void)
{
    qemu_peer(true);
}

static void test_qemu_ip(void)
{
    qemu_peer(false);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    qnic_bql_lock();
    g_test_add_func("/l2tpv3/framing", test_framing);
    g_test_add_func("/l2tpv3/errors", test_errors);
    g_test_add_func("/l2tpv3/qnic-pair", test_qnic_pair);
    g_test_add_func("/l2tpv3/qemu/udp", test_qemu_udp);
    g_test_add_func("/l2tpv3/qemu/ip", test_qemu_ip);
    return g_test_run();
}
