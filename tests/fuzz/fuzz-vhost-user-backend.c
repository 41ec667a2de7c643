/*
 * Fuzz target for qnic's vhost-user-net device side (virtio/vhost-user-device.c):
 * the input plays a hostile frontend. A fresh device per input serves a
 * hubport netdev whose hub has a recording sink (frames the device sends)
 * and an injector (frames the device receives). The harness owns a 64 KiB
 * memfd as the frontend's guest RAM, so a table naming it lets rings really
 * run over descriptors the input writes. After every input no descriptor
 * may be left open (counted in /proc/self/fd) and every request must have
 * given its descriptors up.
 *
 * Input: a sequence of ops, each one byte then its operands:
 *   0 MSG    u8 request, u8 flags (bit 0: NEED_REPLY, bit 1: reply flag,
 *            bit 2: bad version), u16 size, size payload bytes; carries the
 *            descriptors attached since the last message
 *   1 ATTACH u8 kind (mod 10: 0 guest RAM memfd, 1 eventfd, 2 a 4 KiB
 *            memfd, 3 /dev/null, 4 a pipe's read end, 5 a pipe's write
 *            end (4 KiB pipe), 6 a socketpair end, 7 a regular file,
 *            8 an eventfd without O_NONBLOCK, 9 the same with its counter
 *            full), up to QNIC_VHU_MAX_FDS pending. The other ends of
 *            pipes and socketpairs stay open until the input ends, as a
 *            frontend would hold them; 8 and 9 are what a frontend that
 *            clears the O_NONBLOCK it shares with the device leaves.
 *            No kind may make the device block (issue 21, finding 2).
 *   2 KICK   u8 vring
 *   3 FRAME  u16 length, bytes: a frame from the wire into the device
 *   4 RAM    u16 offset, u8 length, bytes: the frontend writes its RAM
 *   5 DROP   the connection ends (device reset)
 *   6 LOOP   run the main loop and bottom halves once
 */
#include "qnic/vhost-user-device.h"
#include "qnic/net.h"
#include "qnic/mainloop.h"
#include "qnic/log.h"
#include "fuzz.h"
#include "../lib/test-backends.h"
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#define RAM_SIZE 0x10000u
#define MAX_OPS 512

uint64_t fuzz_frames_out;
static uint64_t frames_seen;

static ssize_t sink_receive(QnicNetClient *nc, const struct iovec *iov, int iovcnt)
{
    frames_seen++;
    return (ssize_t)qnic_iov_size(iov, iovcnt);
}

static const QnicNetClientOps sink_ops = {
    .kind = QNIC_NET_CLIENT_OTHER,
    .receive_iov = sink_receive,
};

static int count_fds(void)
{
    DIR *dir = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;

    if (!dir) {
        return -1;
    }
    while ((e = readdir(dir))) {
        n += e->d_name[0] != '.';
    }
    closedir(dir);
    return n;
}

#define MAX_PEER_ENDS 64
static int peer_ends[MAX_PEER_ENDS];
static unsigned npeer_ends;

/* Keep the frontend's end of a pipe or socketpair (closed after the input). */
static int keep_other(int mine, int other)
{
    if (npeer_ends < MAX_PEER_ENDS) {
        peer_ends[npeer_ends++] = other;
    } else {
        close(other);
    }
    return mine;
}

static int blocking_eventfd(bool full)
{
    uint64_t v = 0xfffffffffffffffeull;
    int fd = eventfd(0, EFD_CLOEXEC);

    if (fd >= 0 && full && write(fd, &v, sizeof(v)) != sizeof(v)) {
        close(fd);
        return -1;
    }
    return fd;
}

static int attach_hostile_fd(int kind)
{
    int two[2];

    switch (kind) {
    case 4:
    case 5:
        if (pipe2(two, O_CLOEXEC) < 0) {
            return -1;
        }
        fcntl(two[0], F_SETPIPE_SZ, 4096);
        return kind == 4 ? keep_other(two[0], two[1]) : keep_other(two[1], two[0]);
    case 6:
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, two) < 0) {
            return -1;
        }
        return keep_other(two[0], two[1]);
    case 7:
        return open(g_get_tmp_dir(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    default:
        return blocking_eventfd(kind == 9);
    }
}

static int attach_fd(int kind, int ram_fd)
{
    int fd;

    kind %= 10;
    if (kind >= 4) {
        return attach_hostile_fd(kind);
    }
    switch (kind) {
    case 0:
        return dup(ram_fd);
    case 1:
        return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    case 2:
        fd = memfd_create("fuzz-small", MFD_CLOEXEC);
        if (fd >= 0 && ftruncate(fd, 4096) < 0) {
            close(fd);
            return -1;
        }
        return fd;
    default:
        return open("/dev/null", O_RDWR | O_CLOEXEC);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool init;
    static int ram_fd = -1;
    static uint8_t *ram;
    FuzzIn in = { data, size };
    g_autoptr(GError) err = NULL;
    int pending[QNIC_VHU_MAX_FDS];
    unsigned npending = 0;
    int fds0;

    if (!init) {
        qnic_log_mask = g_getenv("QNIC_FUZZ_VERBOSE") ? QNIC_LOG_GUEST_ERROR : 0;
        qnic_log_set_progname("fuzz-vhost-user-backend");
        signal(SIGPIPE, SIG_IGN);
        qnic_bql_lock();
        ram_fd = memfd_create("fuzz-guest-ram", MFD_CLOEXEC);
        if (ram_fd < 0 || ftruncate(ram_fd, RAM_SIZE) < 0) {
            abort();
        }
        ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, ram_fd, 0);
        if (ram == MAP_FAILED) {
            abort();
        }
        qnic_main_loop_iterate(false);     /* the loop's own descriptors */
        init = true;
    }
    memset(ram, 0, RAM_SIZE);
    fds0 = count_fds();

    QnicNetdev *nd = qnic_netdev_add_str(test_backends(), "hubport,id=vfz0,hubid=90", &err);
    QnicNetdev *peer = qnic_netdev_add_str(test_backends(), "hubport,id=vfz1,hubid=90", &err);
    if (!nd || !peer) {
        fprintf(stderr, "fuzz-vhost-user-backend: %s\n", err ? err->message : "?");
        abort();
    }
    QnicNetClient *sink = qnic_net_client_new(test_backends(), &sink_ops, "fuzz-sink", "fuzz-sink", NULL);
    qnic_net_client_set_peer(sink, peer->ncs[0]);
    peer->in_use = true;
    QnicVhuDev *d = qnic_vhu_dev_new(test_backends(), "netdev=vfz0,mac=52:54:00:12:34:56,packed=on", &err);
    if (!d) {
        fprintf(stderr, "fuzz-vhost-user-backend: %s\n", err->message);
        abort();
    }
    frames_seen = 0;

    for (int ops = 0; ops < MAX_OPS && in.len; ops++) {
        uint8_t op = fuzz_u8(&in);
        switch (op % 7) {
        case 0: {
            QnicVhuMsg msg, reply;
            g_autoptr(GError) e = NULL;
            bool send_reply;
            uint8_t flags;
            uint16_t len;

            qnic_vhu_msg_init(&msg, fuzz_u8(&in), 0);
            flags = fuzz_u8(&in);
            len = fuzz_u16(&in);
            msg.hdr.flags |= (flags & 1 ? QNIC_VHU_FLAG_NEED_REPLY : 0) |
                             (flags & 2 ? QNIC_VHU_FLAG_REPLY : 0);
            if (flags & 4) {
                msg.hdr.flags ^= 3;
            }
            /* What qnic_vhu_msg_recv() lets through: at most the union. */
            msg.hdr.size = MIN((size_t)len, sizeof(msg.p));
            fuzz_bytes(&in, &msg.p, msg.hdr.size);
            memcpy(msg.fds, pending, npending * sizeof(int));
            msg.nfds = npending;
            npending = 0;
            qnic_vhu_dev_handle(d, &msg, &reply, &send_reply, &e);
            if (msg.nfds != 0 || (send_reply && reply.hdr.size > sizeof(reply.p)) ||
                (send_reply && !(reply.hdr.flags & QNIC_VHU_FLAG_REPLY))) {
                fprintf(stderr, "fuzz-vhost-user-backend: %s left %u descriptors or a bad "
                        "reply\n", qnic_vhu_request_name(msg.hdr.request), msg.nfds);
                abort();
            }
            break;
        }
        case 1: {
            int fd = attach_fd(fuzz_u8(&in), ram_fd);
            if (fd >= 0 && npending < QNIC_VHU_MAX_FDS) {
                pending[npending++] = fd;
            } else if (fd >= 0) {
                close(fd);
            }
            break;
        }
        case 2:
            qnic_vhu_dev_kick(d, fuzz_u8(&in));
            qnic_bh_poll();
            break;
        case 3: {
            uint8_t frame[2048];
            uint16_t len = fuzz_u16(&in) % sizeof(frame);
            len = fuzz_bytes(&in, frame, len);
            qnic_net_send(peer->ncs[0]->peer, frame, len);
            qnic_bh_poll();
            break;
        }
        case 4: {
            uint16_t off = fuzz_u16(&in);
            uint8_t len = fuzz_u8(&in);
            uint8_t buf[256];
            size_t got = fuzz_bytes(&in, buf, len);
            if ((size_t)off + got <= RAM_SIZE) {
                memcpy(ram + off, buf, got);
            }
            break;
        }
        case 5:
            qnic_vhu_dev_reset(d);
            break;
        case 6:
            qnic_main_loop_iterate(false);
            qnic_bh_poll();
            break;
        }
    }
    qnic_bh_poll();
    fuzz_frames_out = frames_seen;
    for (unsigned i = 0; i < npending; i++) {
        close(pending[i]);
    }
    while (npeer_ends) {
        close(peer_ends[--npeer_ends]);
    }
    qnic_vhu_dev_free(d);
    qnic_net_client_free(sink);
    peer->in_use = false;
    qnic_netdev_del_all(test_backends());
    qnic_bh_poll();
    if (count_fds() != fds0) {
        fprintf(stderr, "fuzz-vhost-user-backend: %d descriptors before the input, %d after\n",
                fds0, count_fds());
        abort();
    }
    return 0;
}
