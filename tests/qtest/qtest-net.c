/*
 * The TCP and UDP peers of the NIC qtests and benches, and their test
 * frame (see qtest-net.h).
 */
#include "qtest-net.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

void qtest_net_peer_listen(QtestNetPeer *p)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t sl = sizeof(sa);

    p->fd = -1;
    p->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    g_assert_cmpint(p->lfd, >=, 0);
    g_assert_cmpint(bind(p->lfd, (struct sockaddr *)&sa, sizeof(sa)), ==, 0);
    g_assert_cmpint(listen(p->lfd, 1), ==, 0);
    g_assert_cmpint(getsockname(p->lfd, (struct sockaddr *)&sa, &sl), ==, 0);
    p->port = ntohs(sa.sin_port);
}

bool qtest_net_peer_accept(QtestNetPeer *p)
{
    struct pollfd pfd = { .fd = p->lfd, .events = POLLIN };

    if (poll(&pfd, 1, 10000) != 1) {
        return false;
    }
    p->fd = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC);
    return p->fd >= 0;
}

void qtest_net_peer_close(QtestNetPeer *p)
{
    if (p->fd >= 0) {
        close(p->fd);
    }
    close(p->lfd);
}

void qtest_net_peer_send(QtestNetPeer *p, const void *frame, size_t len)
{
    uint32_t be = htonl((uint32_t)len);

    g_assert_cmpint(write(p->fd, &be, 4), ==, 4);
    g_assert_cmpint(write(p->fd, frame, len), ==, (ssize_t)len);
}

bool qtest_net_read_full(int fd, void *buf, size_t len, int timeout_ms)
{
    uint8_t *b = buf;
    size_t got = 0;

    while (got < len) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        ssize_t n;

        if (poll(&pfd, 1, timeout_ms) != 1) {
            return false;
        }
        n = read(fd, b + got, len - got);
        if (n <= 0) {
            return false;
        }
        got += n;
    }
    return true;
}

static int udp_loopback_socket(void)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(bind(fd, (struct sockaddr *)&a, sizeof(a)), ==, 0);
    return fd;
}

static int local_port(int fd)
{
    struct sockaddr_in a;
    socklen_t l = sizeof(a);

    g_assert_cmpint(getsockname(fd, (struct sockaddr *)&a, &l), ==, 0);
    return ntohs(a.sin_port);
}

char *qtest_udp_peer_open(QtestUdpPeer *p)
{
    int big = 8 << 20;
    int dev = udp_loopback_socket();

    p->fd = udp_loopback_socket();
    setsockopt(p->fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
    p->dev_port = local_port(dev);
    close(dev);
    return g_strdup_printf("-netdev socket,id=n0,udp=127.0.0.1:%d,localaddr=127.0.0.1:%d",
                           local_port(p->fd), p->dev_port);
}

void qtest_udp_peer_send(QtestUdpPeer *p, const void *buf, size_t len)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                             .sin_port = htons(p->dev_port) };

    g_assert_cmpint(sendto(p->fd, buf, len, 0, (struct sockaddr *)&a, sizeof(a)), ==, len);
}

ssize_t qtest_udp_peer_recv(QtestUdpPeer *p, void *buf, size_t len, int timeout_ms)
{
    struct pollfd pfd = { .fd = p->fd, .events = POLLIN };

    if (poll(&pfd, 1, timeout_ms) <= 0) {
        return -1;
    }
    return recv(p->fd, buf, len, 0);
}

void qtest_net_make_frame(uint8_t *f, size_t len, uint8_t tag)
{
    static const uint8_t dst[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
    static const uint8_t src[6] = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x01 };

    memcpy(f, dst, 6);
    memcpy(f + 6, src, 6);
    f[12] = 0x88;
    f[13] = 0xb5;
    for (size_t i = 14; i < len; i++) {
        f[i] = (uint8_t)(i * 7 + tag);
    }
}

uint16_t qtest_net_csum(const void *data, size_t len)
{
    const uint8_t *p = data;
    uint32_t sum = 0;

    for (size_t i = 0; i + 1 < len; i += 2) {
        sum += (uint32_t)(p[i] << 8 | p[i + 1]);
    }
    if (len & 1) {
        sum += (uint32_t)p[len - 1] << 8;
    }
    while (sum >> 16) {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    return (uint16_t)~sum;
}
