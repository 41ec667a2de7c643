/*
 * The batched tap writer (backends/tap-uring.c) keeps every frame and
 * their order when the kernel refuses part of a batch. A tap's send
 * buffer cannot be filled on demand, so the writer runs over a
 * non-blocking pipe of one page, which refuses writes with EAGAIN once
 * full exactly as a tap with a full send buffer does: a batch of frames
 * goes out over several submits, with reads in between, and the byte
 * stream must be the frames in order, each once.
 */
#include "backends/tap-int.h"
#include <fcntl.h>
#include <unistd.h>

#define FRAMES 40u
#define FRAME 300u

static void make(uint8_t *f, unsigned n)
{
    for (unsigned i = 0; i < FRAME; i++) {
        f[i] = (uint8_t)(n * 7 + i);
    }
}

static void test_eagain_keeps_order(void)
{
    int p[2];
    QnicTapBatch *b;
    uint8_t hdr[10] = { 0 }, f[FRAME], got[FRAMES * (sizeof(hdr) + FRAME)];
    size_t have = 0;
    int r, submits = 0;

    g_assert_cmpint(pipe2(p, O_NONBLOCK | O_CLOEXEC), ==, 0);
    g_assert_cmpint(fcntl(p[1], F_SETPIPE_SZ, 4096), >=, 4096);
    b = qnic_tap_batch_new(p[1]);
    if (!b) {
        g_test_skip("io_uring is not available (built without liburing, or the kernel "
                    "refuses it)");
        close(p[0]);
        close(p[1]);
        return;
    }
    for (unsigned n = 0; n < FRAMES; n++) {
        struct iovec iov = { f, FRAME };
        make(f, n);
        hdr[0] = (uint8_t)n;
        g_assert_true(qnic_tap_batch_add(b, hdr, sizeof(hdr), &iov, 1, FRAME));
    }
    g_assert_cmpuint(qnic_tap_batch_waiting(b), ==, FRAMES);
    /* A frame larger than a slot is refused (the caller writes it). */
    {
        static uint8_t big[QNIC_TAP_BATCH_SLOT_SIZE];
        struct iovec iov = { big, sizeof(big) };
        g_assert_false(qnic_tap_batch_add(b, hdr, sizeof(hdr), &iov, 1, sizeof(big)));
    }
    while ((r = qnic_tap_batch_submit(b)) > 0) {
        ssize_t n;
        submits++;
        g_assert_cmpuint(r, ==, qnic_tap_batch_waiting(b));
        g_assert_cmpuint(r, <, FRAMES);
        while ((n = read(p[0], got + have, sizeof(got) - have)) > 0) {
            have += n;
        }
    }
    g_assert_cmpint(r, ==, 0);
    g_assert_cmpuint(submits, >, 1);     /* the pipe did refuse some */
    g_assert_cmpuint(qnic_tap_batch_waiting(b), ==, 0);
    {
        ssize_t n;
        while ((n = read(p[0], got + have, sizeof(got) - have)) > 0) {
            have += n;
        }
    }
    g_assert_cmpuint(have, ==, sizeof(got));
    for (unsigned n = 0; n < FRAMES; n++) {
        const uint8_t *rec = got + n * (sizeof(hdr) + FRAME);
        g_assert_cmpuint(rec[0], ==, (uint8_t)n);
        make(f, n);
        g_assert_cmpmem(rec + sizeof(hdr), FRAME, f, FRAME);
    }
    /* Empty: a submit does nothing. */
    g_assert_cmpint(qnic_tap_batch_submit(b), ==, 0);
    qnic_tap_batch_free(b);
    close(p[0]);
    close(p[1]);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/tap-batch/eagain-keeps-order", test_eagain_keeps_order);
    return g_test_run();
}
