/*
 * Scatter/gather helpers for frames: total size, copies between an iovec
 * and a flat buffer or between two iovecs at offsets, and a view of an
 * iovec minus its first bytes (a header). Every copy is bounded by both
 * sides, so a short iovec never overruns, and none allocates, since the
 * devices' per-packet paths use them.
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

size_t qnic_iov_copy(const struct iovec *dst, int dst_cnt, size_t dst_off,
                     const struct iovec *src, int src_cnt, size_t src_off, size_t len)
{
    int di = 0, si = 0;
    size_t done = 0;

    while (di < dst_cnt && dst_off >= dst[di].iov_len) {
        dst_off -= dst[di++].iov_len;
    }
    while (si < src_cnt && src_off >= src[si].iov_len) {
        src_off -= src[si++].iov_len;
    }
    while (done < len && di < dst_cnt && si < src_cnt) {
        size_t n = MIN(dst[di].iov_len - dst_off, src[si].iov_len - src_off);
        n = MIN(n, len - done);
        memcpy((uint8_t *)dst[di].iov_base + dst_off,
               (const uint8_t *)src[si].iov_base + src_off, n);
        done += n;
        dst_off += n;
        src_off += n;
        if (dst_off == dst[di].iov_len) {
            di++;
            dst_off = 0;
        }
        if (src_off == src[si].iov_len) {
            si++;
            src_off = 0;
        }
    }
    return done;
}

int qnic_iov_tail(struct iovec *dst, int dst_cap, const struct iovec *src, int src_cnt,
                  size_t skip)
{
    int n = 0;

    for (int i = 0; i < src_cnt && n < dst_cap; i++) {
        if (skip >= src[i].iov_len) {
            skip -= src[i].iov_len;
            continue;
        }
        dst[n].iov_base = (uint8_t *)src[i].iov_base + skip;
        dst[n].iov_len = src[i].iov_len - skip;
        skip = 0;
        n++;
    }
    return n;
}
