/*
 * Fuzz target for RSS (net/rss.c): the parser of the RSS and hash
 * configuration commands a guest driver writes into virtio-net's control
 * queue, and the classifier that reads a frame from the network under the
 * configuration it accepted. The first byte picks the command
 * (RSS_CONFIG or HASH_CONFIG) and the device's queue pairs, two bytes give
 * the command's length, then come the command and a frame. Besides ASan's
 * checks it asserts the contract: an accepted configuration has a
 * power-of-two table of queues below max_tx_vq and a key within bounds, a
 * refused one leaves the output untouched, and the queue any frame gets is
 * one the configuration names.
 */
#include "qnic/rss.h"
#include "fuzz.h"
#include <stdio.h>
#include <stdlib.h>

#define FAIL(...) do { fprintf(stderr, "rss: " __VA_ARGS__); abort(); } while (0)

static void check_config(const QnicRssConfig *c, bool rss, unsigned pairs)
{
    if (c->key_len > QNIC_RSS_MAX_KEY || (c->hash_types & ~QNIC_RSS_HASH_TYPES)) {
        FAIL("accepted key length %u, types 0x%x\n", c->key_len, c->hash_types);
    }
    if (!rss) {
        return;
    }
    if (!QNIC_IS_POW2(c->table_len) || c->table_len > QNIC_RSS_MAX_TABLE ||
        c->max_tx_vq == 0 || c->max_tx_vq > pairs || c->unclassified_queue >= c->max_tx_vq) {
        FAIL("accepted table %u, max_tx_vq %u, unclassified %u with %u pairs\n", c->table_len,
             c->max_tx_vq, c->unclassified_queue, pairs);
    }
    for (unsigned i = 0; i < c->table_len; i++) {
        if (c->table[i] >= c->max_tx_vq) {
            FAIL("accepted entry %u = %u past max_tx_vq %u\n", i, c->table[i], c->max_tx_vq);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FuzzIn in = { data, size };
    uint8_t f = fuzz_u8(&in);
    bool rss = f & 1;
    unsigned pairs = 1 + (f >> 1) % 16;
    size_t cfg_len = fuzz_u16(&in);
    QnicRssConfig c, before;
    const char *why = NULL;
    uint8_t tuple[QNIC_RSS_MAX_TUPLE];
    size_t tuple_len;
    uint32_t hash;
    unsigned report, q;

    cfg_len = MIN(cfg_len, in.len);
    memset(&c, 0x5a, sizeof(c));
    before = c;
    if (!qnic_rss_parse_config(in.p, cfg_len, rss, pairs, &c, &why)) {
        if (!why || memcmp(&c, &before, sizeof(c))) {
            FAIL("refused without a reason or with the output changed\n");
        }
        return 0;
    }
    check_config(&c, rss, pairs);
    in.p += cfg_len;
    in.len -= cfg_len;

    report = qnic_rss_classify(in.p, in.len, c.hash_types, tuple, &tuple_len);
    if (report > VIRTIO_NET_HASH_REPORT_UDPv6_EX || tuple_len > QNIC_RSS_MAX_TUPLE ||
        (report && tuple_len < 8) || (!report && tuple_len)) {
        FAIL("report %u with a %zu-byte tuple\n", report, tuple_len);
    }
    if (qnic_rss_hash(&c, in.p, in.len, &hash) != report) {
        FAIL("classify and hash disagree on the report type\n");
    }
    q = qnic_rss_queue(&c, report, hash);
    if (rss && q >= c.max_tx_vq) {
        FAIL("queue %u past max_tx_vq %u\n", q, c.max_tx_vq);
    }
    return 0;
}
