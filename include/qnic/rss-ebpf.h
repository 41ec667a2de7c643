/*
 * The eBPF RSS steering program (ebpf/rss.bpf.c): loaded with libbpf from
 * the object built into the library, or taken from file descriptors a
 * privileged parent hands in (virtio-net's ebpf-rss-fds=), its maps set
 * from a QnicRssConfig whenever the driver sends one. A multiqueue tap runs
 * it for every frame it sends to the VMM (TUNSETSTEERINGEBPF through the
 * net client op set_steering_ebpf), so each flow reaches the queue the
 * guest's indirection table gives without software RSS. Loading needs
 * CAP_BPF (or root); handed-in descriptors need nothing. Where qnic was
 * built without clang or libbpf, qnic_rss_ebpf_available() is false and
 * every load fails with a message saying so.
 */
#ifndef QNIC_RSS_EBPF_H
#define QNIC_RSS_EBPF_H

#include "qnic/rss.h"

typedef struct QnicRssEbpf QnicRssEbpf;

/* The descriptors of ebpf-rss-fds=, in this order. */
enum { QNIC_RSS_EBPF_PROG, QNIC_RSS_EBPF_CONFIG, QNIC_RSS_EBPF_KEY, QNIC_RSS_EBPF_TABLE,
       QNIC_RSS_EBPF_NFDS };

/* Whether this build has the program at all. */
bool qnic_rss_ebpf_available(void);
/* Load the built-in program and create its maps. NULL with errp set
 * when it cannot (no CAP_BPF, a kernel without the program type...). */
QnicRssEbpf *qnic_rss_ebpf_load(GError **errp);
/* Use a program and maps loaded elsewhere: fds[QNIC_RSS_EBPF_NFDS], each
 * checked (a socket filter program; array maps of this program's value
 * sizes). The object owns the descriptors from here on, also on failure. */
QnicRssEbpf *qnic_rss_ebpf_from_fds(const int *fds, GError **errp);
void qnic_rss_ebpf_free(QnicRssEbpf *e);
/* Descriptor `which` (QNIC_RSS_EBPF_PROG for TUNSETSTEERINGEBPF, or a
 * map's, which a parent hands a child as ebpf-rss-fds=); e keeps it. */
int qnic_rss_ebpf_fd(QnicRssEbpf *e, int which);
/* Write c into the maps (the program steers by it from the next frame). */
bool qnic_rss_ebpf_set_config(QnicRssEbpf *e, const QnicRssConfig *c, GError **errp);
/* Run the program on one frame in the kernel (BPF_PROG_TEST_RUN): the
 * queue it returns, or -1 with errp set. For tests. */
int qnic_rss_ebpf_test_run(QnicRssEbpf *e, const uint8_t *frame, size_t len, GError **errp);

#endif
