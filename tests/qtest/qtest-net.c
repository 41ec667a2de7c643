/*
 * The `-netdev socket,connect=` peer the NIC qtests hold (see qtest-net.h).
 */
#include "qtest-net.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
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
