/*
 * Batched tap writes through io_uring. On the virtual machines qnic runs
 * on, a system call costs more than the tun driver's work for a small
 * frame, so one writev per frame caps the rate (issue 15: ~0.5 M frames/s).
 * Here tap.c copies each frame into one of a fixed set of slots and, once
 * per main-loop pass (or when the slots are full), hands all of them to
 * the kernel in a single io_uring_enter, as linked writes so that they
 * reach the tap in order. Each write carries RWF_NOWAIT: a tap that cannot
 * take a frame fails it with EAGAIN at once instead of io_uring parking it
 * until the tap is writable (which would hold the main loop in the
 * submit). A file that does not support RWF_NOWAIT (a tap-like fd handed
 * in by a management tool) is written frame by frame instead. The copy is what makes the deferral safe: the
 * sender (a virtio ring, a device's DMA buffer) may reuse its memory as
 * soon as the frame was accepted. A write the kernel refuses with EAGAIN
 * (the tap's send buffer is full) stays in its slot, with every frame
 * behind it, and goes again on the next submit: nothing is lost or
 * reordered. Without liburing, or where the kernel refuses io_uring
 * (seccomp, kernel.io_uring_disabled), qnic_tap_batch_new() returns NULL
 * and tap.c writes each frame itself.
 */
#include "tap-int.h"
#include "qnic/log.h"
#include "qnic-config.h"
#include <unistd.h>

#ifdef CONFIG_LIBURING
#include <liburing.h>

struct QnicTapBatch {
    struct io_uring ring;
    int fd;
    unsigned first, n;              /* frames waiting: slots [first, n) */
    size_t len[QNIC_TAP_BATCH_SLOTS];
    uint8_t *slots;                 /* QNIC_TAP_BATCH_SLOTS * QNIC_TAP_BATCH_SLOT_SIZE */
    uint64_t errors;
    bool direct;                    /* no RWF_NOWAIT here: write() each frame */
};

static uint8_t *slot_of(QnicTapBatch *b, unsigned i)
{
    return b->slots + (size_t)i * QNIC_TAP_BATCH_SLOT_SIZE;
}

static void note_error(QnicTapBatch *b, unsigned i, int err)
{
    /* As a failed writev: the frame is gone, the sender was told it went
     * (a tap that is down, a frame the kernel refuses). */
    if (b->errors++ == 0) {
        qnic_log(QNIC_LOG_TRACE_NET, "tap: batched write of %zu bytes failed: %s\n",
                 b->len[i], g_strerror(err));
    }
}

QnicTapBatch *qnic_tap_batch_new(int fd)
{
    QnicTapBatch *b = g_new0(QnicTapBatch, 1);
    int r = io_uring_queue_init(QNIC_TAP_BATCH_SLOTS, &b->ring, 0);

    if (r < 0) {
        qnic_log(QNIC_LOG_TRACE_NET, "tap: io_uring unavailable (%s); one write per frame\n",
                 g_strerror(-r));
        g_free(b);
        return NULL;
    }
    b->fd = fd;
    b->slots = g_malloc((size_t)QNIC_TAP_BATCH_SLOTS * QNIC_TAP_BATCH_SLOT_SIZE);
    return b;
}

void qnic_tap_batch_free(QnicTapBatch *b)
{
    if (!b) {
        return;
    }
    io_uring_queue_exit(&b->ring);
    g_free(b->slots);
    g_free(b);
}

bool qnic_tap_batch_add(QnicTapBatch *b, const void *hdr, size_t hdr_len,
                        const struct iovec *iov, int iovcnt, size_t size)
{
    uint8_t *slot;

    if (b->n == QNIC_TAP_BATCH_SLOTS || hdr_len + size > QNIC_TAP_BATCH_SLOT_SIZE) {
        return false;
    }
    slot = slot_of(b, b->n);
    memcpy(slot, hdr, hdr_len);
    qnic_iov_to_buf(iov, iovcnt, 0, slot + hdr_len, size);
    b->len[b->n++] = hdr_len + size;
    return true;
}

unsigned qnic_tap_batch_waiting(const QnicTapBatch *b)
{
    return b->n - b->first;
}

bool qnic_tap_batch_full(const QnicTapBatch *b)
{
    return b->n == QNIC_TAP_BATCH_SLOTS;
}

/* Queue the waiting frames as one chain of linked writes. */
static unsigned batch_prepare(QnicTapBatch *b)
{
    unsigned count = 0;

    for (unsigned i = b->first; i < b->n; i++) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(&b->ring);

        if (!sqe) {
            break;      /* the ring holds as many entries as there are slots */
        }
        io_uring_prep_write(sqe, b->fd, slot_of(b, i), b->len[i], 0);
        sqe->rw_flags = RWF_NOWAIT;
        io_uring_sqe_set_data64(sqe, i);
        if (i + 1 < b->n) {
            sqe->flags |= IOSQE_IO_LINK;
        }
        count++;
    }
    return count;
}

/* Read the completions of `count` writes; returns the first slot that
 * must go again (EAGAIN, or cancelled behind one), or b->n. A file that
 * refuses RWF_NOWAIT turns the batch to direct writes. */
static unsigned batch_reap(QnicTapBatch *b, unsigned count)
{
    unsigned retry = b->n, head, seen = 0;
    struct io_uring_cqe *cqe;

    io_uring_for_each_cqe(&b->ring, head, cqe) {
        unsigned i = (unsigned)io_uring_cqe_get_data64(cqe);
        int res = cqe->res;

        seen++;
        if (res == -EAGAIN || res == -ECANCELED || res == -EINTR) {
            retry = MIN(retry, i);
        } else if (res == -EOPNOTSUPP) {
            b->direct = true;
            retry = MIN(retry, i);
        } else if (res < 0) {
            note_error(b, i, -res);
        }
    }
    io_uring_cq_advance(&b->ring, seen);
    g_assert(seen == count);
    return retry;
}

/* The frames one write() each, from the first waiting one; returns the
 * first that must go again, or b->n. */
static unsigned batch_write_direct(QnicTapBatch *b)
{
    for (unsigned i = b->first; i < b->n; i++) {
        ssize_t r;

        do {
            r = write(b->fd, slot_of(b, i), b->len[i]);
        } while (r < 0 && errno == EINTR);
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return i;
        }
        if (r < 0) {
            note_error(b, i, errno);
        }
    }
    return b->n;
}

int qnic_tap_batch_submit(QnicTapBatch *b)
{
    unsigned count, retry;
    int r;

    if (b->first == b->n) {
        b->first = b->n = 0;
        return 0;
    }
    if (b->direct) {
        retry = batch_write_direct(b);
        goto done;
    }
    count = batch_prepare(b);
    do {
        /* RWF_NOWAIT writes complete during the submit; the wait is for
         * the completions to be posted, never for the tap. */
        r = io_uring_submit_and_wait(&b->ring, count);
    } while (r == -EINTR);
    if (r < 0) {
        /* io_uring itself failed: its queue may still hold these writes,
         * so it is never entered again; the frames go one by one. */
        qnic_log(QNIC_LOG_TRACE_NET, "tap: io_uring submit failed (%s); one write per frame\n",
                 g_strerror(-r));
        b->direct = true;
        retry = batch_write_direct(b);
        goto done;
    }
    retry = batch_reap(b, count);
    if (b->direct && retry < b->n) {
        b->first = retry;
        retry = batch_write_direct(b);
    }
done:
    if (retry == b->n) {
        b->first = b->n = 0;
        return 0;
    }
    b->first = retry;
    return (int)(b->n - b->first);
}

#else

QnicTapBatch *qnic_tap_batch_new(int fd)
{
    return NULL;
}

void qnic_tap_batch_free(QnicTapBatch *b)
{
}

bool qnic_tap_batch_add(QnicTapBatch *b, const void *hdr, size_t hdr_len,
                        const struct iovec *iov, int iovcnt, size_t size)
{
    return false;
}

unsigned qnic_tap_batch_waiting(const QnicTapBatch *b)
{
    return 0;
}

bool qnic_tap_batch_full(const QnicTapBatch *b)
{
    return true;
}

int qnic_tap_batch_submit(QnicTapBatch *b)
{
    return 0;
}

#endif
