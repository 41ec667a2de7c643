/*
 * Scatter/gather helpers for frames: total size, and copies between an
 * iovec and a flat buffer at an offset. Every copy is bounded by both the
 * iovec and the buffer, so a short iovec never overruns.
 */
#include "qnic/net.h"

size_t qnic_iov_size(const struct iovec *iov, int iovcnt)
{
    size_t n = 0;
    for (int i = 0; i < iovcnt; i++) {
        n += iov[i].iov_len;
    }
    return n;
}

size_t qnic_iov_to_buf(const struct iovec *iov, int iovcnt, size_t offset, void *buf, size_t len)
{
    size_t done = 0;
    for (int i = 0; i < iovcnt && done < len; i++) {
        if (offset >= iov[i].iov_len) {
            offset -= iov[i].iov_len;
            continue;
        }
        size_t n = MIN(iov[i].iov_len - offset, len - done);
        memcpy((uint8_t *)buf + done, (const uint8_t *)iov[i].iov_base + offset, n);
        done += n;
        offset = 0;
    }
    return done;
}

size_t qnic_iov_from_buf(const struct iovec *iov, int iovcnt, size_t offset, const void *buf, size_t len)
{
    size_t done = 0;
    for (int i = 0; i < iovcnt && done < len; i++) {
        if (offset >= iov[i].iov_len) {
            offset -= iov[i].iov_len;
            continue;
        }
        size_t n = MIN(iov[i].iov_len - offset, len - done);
        memcpy((uint8_t *)iov[i].iov_base + offset, (const uint8_t *)buf + done, n);
        done += n;
        offset = 0;
    }
    return done;
}
