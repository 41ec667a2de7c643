/*
 * Software RSS (include/qnic/rss.h): the parser of the driver's RSS and
 * hash configuration commands, and the classifier and Toeplitz hash of
 * net/rss-classify.h run over a frame in memory. virtio-net uses it to
 * pick a receive queue when no eBPF program steers the tap, and for hash
 * reports always. It sits in the net core rather than in the device so
 * that the eBPF loader, the unit tests and the fuzzer reach the same code.
 */
#include "qnic/rss.h"

/* The classifier reads the frame through this bounded view. */
typedef struct RssBuf {
    const uint8_t *p;
    size_t len;
} RssBuf;

static inline int rss_buf_load(const RssBuf *b, uint32_t off, void *dst, uint32_t n)
{
    if (off > b->len || n > b->len - off) {
        return -1;
    }
    memcpy(dst, b->p + off, n);
    return 0;
}

#define RSS_CTX const RssBuf *
#define RSS_LOAD(ctx, off, dst, n) rss_buf_load((ctx), (off), (dst), (n))
#define RSS_INLINE static inline
#define RSS_MEMCPY(dst, src, n) memcpy((dst), (src), (n))
#include "rss-classify.h"

G_STATIC_ASSERT(RSS_KEY_BYTES == QNIC_RSS_MAX_KEY);
G_STATIC_ASSERT(RSS_TUPLE_MAX == QNIC_RSS_MAX_TUPLE);
G_STATIC_ASSERT(RSS_PARSE_MAX == QNIC_RSS_PARSE_MAX);
G_STATIC_ASSERT(RSS_T_UDP_EX == VIRTIO_NET_RSS_HASH_TYPE_UDP_EX);
G_STATIC_ASSERT(RSS_R_UDPv6_EX == VIRTIO_NET_HASH_REPORT_UDPv6_EX);

uint32_t qnic_rss_toeplitz(const uint8_t *key, size_t key_len, const uint8_t *in, size_t len)
{
    uint8_t k[RSS_KEY_BYTES] = { 0 };

    g_assert(len <= RSS_TUPLE_MAX);
    memcpy(k, key, MIN(key_len, sizeof(k)));
    return rss_toeplitz(k, in, len);
}

unsigned qnic_rss_classify(const uint8_t *frame, size_t len, uint32_t hash_types,
                           uint8_t *tuple, size_t *tuple_len)
{
    RssBuf b = { frame, MIN(len, (size_t)QNIC_RSS_PARSE_MAX) };
    struct rss_flow fl = { 0 };
    uint32_t report = rss_classify(&b, hash_types, &fl);

    memcpy(tuple, fl.tuple, QNIC_RSS_MAX_TUPLE);
    *tuple_len = report ? fl.len : 0;
    return report;
}

unsigned qnic_rss_hash(const QnicRssConfig *c, const uint8_t *frame, size_t len, uint32_t *hash)
{
    RssBuf b = { frame, MIN(len, (size_t)QNIC_RSS_PARSE_MAX) };
    struct rss_flow fl = { 0 };
    uint32_t report = rss_classify(&b, c->hash_types, &fl);

    *hash = report ? rss_toeplitz(c->key, fl.tuple, fl.len) : 0;
    return report;
}

unsigned qnic_rss_queue(const QnicRssConfig *c, unsigned report, uint32_t hash)
{
    if (report == VIRTIO_NET_HASH_REPORT_NONE || c->table_len == 0) {
        return c->unclassified_queue;
    }
    return c->table[hash & (c->table_len - 1)];
}

/* struct virtio_net_rss_config up to the key length byte: hash_types,
 * indirection_table_mask, unclassified_queue, the table, max_tx_vq. */
static bool parse_rss_head(const uint8_t *d, size_t len, unsigned max_pairs, QnicRssConfig *c,
                           size_t *off, const char **why)
{
    if (len < 8) {
        *why = "RSS config shorter than its header";
        return false;
    }
    c->table_len = qnic_ld16(d + 4) + 1;
    c->unclassified_queue = qnic_ld16(d + 6);
    if (!QNIC_IS_POW2(c->table_len) || c->table_len > QNIC_RSS_MAX_TABLE) {
        *why = "indirection table length is not a power of two up to 128";
        return false;
    }
    *off = 8 + 2u * c->table_len;
    if (len < *off + 2) {
        *why = "RSS config shorter than its indirection table";
        return false;
    }
    c->max_tx_vq = qnic_ld16(d + *off);
    *off += 2;
    if (c->max_tx_vq == 0 || c->max_tx_vq > max_pairs) {
        *why = "max_tx_vq is 0 or more than the queue pairs";
        return false;
    }
    if (c->unclassified_queue >= c->max_tx_vq) {
        *why = "unclassified queue out of range";
        return false;
    }
    for (unsigned i = 0; i < c->table_len; i++) {
        c->table[i] = qnic_ld16(d + 8 + 2 * i);
        if (c->table[i] >= c->max_tx_vq) {
            *why = "indirection table entry out of range";
            return false;
        }
    }
    return true;
}

bool qnic_rss_parse_config(const uint8_t *d, size_t len, bool rss, unsigned max_pairs,
                           QnicRssConfig *out, const char **why)
{
    QnicRssConfig c;
    size_t off;
    uint8_t key_len;

    memset(&c, 0, sizeof(c));
    if (len < 4) {
        *why = "config shorter than its hash types";
        return false;
    }
    c.hash_types = qnic_ld32(d) & QNIC_RSS_HASH_TYPES;
    if (rss) {
        if (!parse_rss_head(d, len, max_pairs, &c, &off, why)) {
            return false;
        }
    } else {
        /* hash_types, reserved[4] (le16), hash_key_length, key */
        off = 12;
        c.table_len = 1;
    }
    if (len < off + 1) {
        *why = "config without its key length";
        return false;
    }
    key_len = d[off++];
    if (key_len > QNIC_RSS_MAX_KEY) {
        *why = "key longer than rss_max_key_size";
        return false;
    }
    if (len - off < key_len) {
        *why = "config shorter than its key";
        return false;
    }
    if (key_len == 0 && c.hash_types) {
        *why = "hash types enabled without a key";
        return false;
    }
    memcpy(c.key, d + off, key_len);
    c.key_len = key_len;
    *out = c;
    return true;
}
