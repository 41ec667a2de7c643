/*
 * The maps of the eBPF RSS program, shared by the program (ebpf/rss.bpf.c)
 * and its loader (net/rss-ebpf.c): each is a one-entry array, so a
 * configuration is three map updates. Their sizes are how the loader
 * recognises the maps of handed-in descriptors (ebpf-rss-fds=). Plain
 * fixed-width fields, no padding left to the compiler.
 */
#ifndef QNIC_NET_RSS_EBPF_MAPS_H
#define QNIC_NET_RSS_EBPF_MAPS_H

/* "rss_config": RSS is off (the program returns queue 0) while
 * hash_types is 0. */
struct rss_ebpf_config {
    uint32_t hash_types;            /* VIRTIO_NET_RSS_HASH_TYPE_* */
    uint16_t table_mask;            /* indirection table length - 1 */
    uint16_t unclassified_queue;
};

/* "rss_key": the Toeplitz key, zero past the driver's key length */
struct rss_ebpf_key {
    uint8_t key[40];
};

/* "rss_table": the indirection table */
struct rss_ebpf_table {
    uint16_t queue[128];
};

#endif
