/*
 * The eBPF RSS steering program. A multiqueue tap runs it on each frame it
 * hands to the VMM (TUNSETSTEERINGEBPF, a BPF_PROG_TYPE_SOCKET_FILTER
 * program whose return value is the queue); it classifies and hashes the
 * frame exactly as net/rss.c does - the classifier is the same text,
 * net/rss-classify.h - and returns the queue of the guest's indirection
 * table, or the unclassified queue. Its three maps (net/rss-ebpf-maps.h)
 * are written by net/rss-ebpf.c whenever the driver sends an RSS
 * configuration. Built by clang -target bpf at build time (ebpf/meson.build)
 * and embedded in the library.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

typedef __u8 uint8_t;
typedef __u16 uint16_t;
typedef __u32 uint32_t;

#include "rss-ebpf-maps.h"

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct rss_ebpf_config);
} rss_config SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct rss_ebpf_key);
} rss_key SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct rss_ebpf_table);
} rss_table SEC(".maps");

#define RSS_CTX struct __sk_buff *
/* Offsets from the Ethernet header: tun runs the program with the data at
 * the MAC header, BPF_PROG_TEST_RUN with it at the network header. Only the
 * linear part is read; the stack's headers are there. */
#define RSS_LOAD(ctx, off, dst, n) \
    bpf_skb_load_bytes_relative((ctx), (off), (dst), (n), BPF_HDR_START_MAC)
#define RSS_INLINE static __always_inline
#define RSS_MEMCPY(dst, src, n) __builtin_memcpy((dst), (src), (n))
#include "rss-classify.h"

SEC("socket")
int qnic_rss_steer(struct __sk_buff *skb)
{
    __u32 zero = 0;
    struct rss_ebpf_config *cfg = bpf_map_lookup_elem(&rss_config, &zero);
    struct rss_ebpf_key *key = bpf_map_lookup_elem(&rss_key, &zero);
    struct rss_ebpf_table *table = bpf_map_lookup_elem(&rss_table, &zero);
    struct rss_flow fl = { 0 };
    __u32 report, hash;

    if (!cfg || !key || !table || !cfg->hash_types) {
        return 0;
    }
    report = rss_classify(skb, cfg->hash_types, &fl);
    if (report == RSS_R_NONE) {
        return cfg->unclassified_queue;
    }
    hash = rss_toeplitz(key->key, fl.tuple, fl.len);
    return table->queue[hash & cfg->table_mask & 127];
}

char _license[] SEC("license") = "GPL";
