/*
 * Receive side scaling as virtio 1.2 defines it (5.1.6.4.3, 5.1.6.5.7):
 * the configuration a driver sends (hash types, Toeplitz key, indirection
 * table, unclassified queue), its parser, the frame classifier and the
 * Toeplitz hash, and the queue a frame goes to. One implementation serves
 * virtio-net's software RSS and hash reports, and the same classifier text
 * is the eBPF steering program a multiqueue tap runs (net/rss-ebpf.c,
 * ebpf/rss.bpf.c), so the two paths agree.
 */
#ifndef QNIC_RSS_H
#define QNIC_RSS_H

#include "qnic/common.h"
#include <linux/virtio_net.h>

#define QNIC_RSS_MAX_KEY 40         /* rss_max_key_size offered */
#define QNIC_RSS_MAX_TABLE 128      /* rss_max_indirection_table_length */
#define QNIC_RSS_MAX_TUPLE 36       /* bytes of hash input: IPv6 + ports */
/* The classifier reads no byte past this offset of a frame. */
#define QNIC_RSS_PARSE_MAX 512

/* Every hash type of virtio 1.2 5.1.6.4.3.1; all are implemented, the
 * IPv6 extension-header (_EX) ones included. */
#define QNIC_RSS_HASH_TYPES                                                     \
    (VIRTIO_NET_RSS_HASH_TYPE_IPv4 | VIRTIO_NET_RSS_HASH_TYPE_TCPv4 |            \
     VIRTIO_NET_RSS_HASH_TYPE_UDPv4 | VIRTIO_NET_RSS_HASH_TYPE_IPv6 |            \
     VIRTIO_NET_RSS_HASH_TYPE_TCPv6 | VIRTIO_NET_RSS_HASH_TYPE_UDPv6 |           \
     VIRTIO_NET_RSS_HASH_TYPE_IP_EX | VIRTIO_NET_RSS_HASH_TYPE_TCP_EX |          \
     VIRTIO_NET_RSS_HASH_TYPE_UDP_EX)

/* A parsed configuration. key is zero past key_len (the hash reads key
 * bits past the guest's key as zeros). table_len is a power of two. */
typedef struct QnicRssConfig {
    uint32_t hash_types;
    uint16_t table_len;
    uint16_t unclassified_queue;
    uint16_t max_tx_vq;             /* RSS_CONFIG only; 0 for HASH_CONFIG */
    uint8_t key_len;
    uint8_t key[QNIC_RSS_MAX_KEY];
    uint16_t table[QNIC_RSS_MAX_TABLE];
} QnicRssConfig;

/* Parse a VIRTIO_NET_CTRL_MQ_RSS_CONFIG (rss = true: struct
 * virtio_net_rss_config) or VIRTIO_NET_CTRL_MQ_HASH_CONFIG (struct
 * virtio_net_hash_config) command body of len bytes, for a device with
 * max_pairs queue pairs. On success fills *out and returns true. A bad
 * command (short, table length not a power of two or over
 * QNIC_RSS_MAX_TABLE, max_tx_vq 0 or over max_pairs, a table entry or the
 * unclassified queue not below max_tx_vq, a key over QNIC_RSS_MAX_KEY or
 * missing while hash types are enabled) returns false with *why set to a
 * static reason, and *out untouched. Unknown hash type bits are dropped
 * (the driver may only set supported ones). */
bool qnic_rss_parse_config(const uint8_t *d, size_t len, bool rss, unsigned max_pairs,
                           QnicRssConfig *out, const char **why);

/* The Toeplitz hash of len <= QNIC_RSS_MAX_TUPLE bytes under a key of
 * key_len bytes (bits past it read as zeros). */
uint32_t qnic_rss_toeplitz(const uint8_t *key, size_t key_len, const uint8_t *in, size_t len);

/* Classify the first len bytes of an Ethernet frame under hash_types: fill
 * tuple (QNIC_RSS_MAX_TUPLE bytes) with the hash input, *tuple_len with its
 * length, and return the VIRTIO_NET_HASH_REPORT_* type (NONE: the frame
 * is of no enabled type). Only the first QNIC_RSS_PARSE_MAX bytes count. */
unsigned qnic_rss_classify(const uint8_t *frame, size_t len, uint32_t hash_types,
                           uint8_t *tuple, size_t *tuple_len);

/* Classify and hash a frame under c: the report type, and the hash in
 * *hash (0 when the type is NONE). */
unsigned qnic_rss_hash(const QnicRssConfig *c, const uint8_t *frame, size_t len, uint32_t *hash);

/* The queue RSS gives a frame with this report type and hash: the
 * indirection table's entry, or the unclassified queue for NONE. */
unsigned qnic_rss_queue(const QnicRssConfig *c, unsigned report, uint32_t hash);

#endif
