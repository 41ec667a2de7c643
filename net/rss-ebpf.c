/*
 * The eBPF RSS program's loader (include/qnic/rss-ebpf.h). The program is
 * ebpf/rss.bpf.c, compiled by clang's BPF target at build time and embedded
 * here as bytes (rss-bpf-obj.c, generated); libbpf opens it from memory and
 * loads it, or the descriptors of a program loaded by a privileged parent
 * are checked and used. The maps are the program's whole configuration:
 * what virtio-net's control queue accepted is written into them. Without
 * clang or libbpf at build time everything here reports that it is not
 * built in, and virtio-net keeps software RSS.
 */
#include "qnic-config.h"
#include "qnic/rss-ebpf.h"
#include "qnic/log.h"
#include <unistd.h>

#ifdef CONFIG_EBPF_RSS
#include "rss-ebpf-maps.h"
#include <bpf/libbpf.h>
#include <bpf/bpf.h>

extern const unsigned char qnic_rss_bpf_obj[];
extern const size_t qnic_rss_bpf_obj_len;

struct QnicRssEbpf {
    struct bpf_object *obj;     /* NULL for handed-in descriptors */
    int fd[QNIC_RSS_EBPF_NFDS];
    bool own_fds;               /* close them (handed in) */
};

bool qnic_rss_ebpf_available(void)
{
    return true;
}

static int silent_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
    /* libbpf's own chatter (the verifier log) only at debug level */
    if (level == LIBBPF_DEBUG) {
        return 0;
    }
    return qnic_log_enabled(QNIC_LOG_TRACE_NET) ? vfprintf(stderr, fmt, ap) : 0;
}

static bool find_fds(QnicRssEbpf *e, GError **errp)
{
    static const char *const maps[] = {
        [QNIC_RSS_EBPF_CONFIG] = "rss_config",
        [QNIC_RSS_EBPF_KEY] = "rss_key",
        [QNIC_RSS_EBPF_TABLE] = "rss_table",
    };
    struct bpf_program *prog = bpf_object__find_program_by_name(e->obj, "qnic_rss_steer");

    e->fd[QNIC_RSS_EBPF_PROG] = prog ? bpf_program__fd(prog) : -1;
    for (int i = QNIC_RSS_EBPF_CONFIG; i < QNIC_RSS_EBPF_NFDS; i++) {
        struct bpf_map *m = bpf_object__find_map_by_name(e->obj, maps[i]);
        e->fd[i] = m ? bpf_map__fd(m) : -1;
    }
    for (int i = 0; i < QNIC_RSS_EBPF_NFDS; i++) {
        if (e->fd[i] < 0) {
            qnic_error_setg(errp, "eBPF RSS: the built-in object lacks its program or maps");
            return false;
        }
    }
    return true;
}

QnicRssEbpf *qnic_rss_ebpf_load(GError **errp)
{
    LIBBPF_OPTS(bpf_object_open_opts, opts, .object_name = "qnic_rss");
    QnicRssEbpf *e = g_new0(QnicRssEbpf, 1);
    int err;

    libbpf_set_print(silent_print);
    e->obj = bpf_object__open_mem(qnic_rss_bpf_obj, qnic_rss_bpf_obj_len, &opts);
    if (!e->obj) {
        qnic_error_setg_errno(errp, errno, "eBPF RSS: cannot open the built-in object");
        g_free(e);
        return NULL;
    }
    err = bpf_object__load(e->obj);
    if (err) {
        qnic_error_setg_errno(errp, -err, "eBPF RSS: cannot load the steering program "
                              "(needs CAP_BPF or root)");
        qnic_rss_ebpf_free(e);
        return NULL;
    }
    if (!find_fds(e, errp)) {
        qnic_rss_ebpf_free(e);
        return NULL;
    }
    return e;
}

static bool check_map(int fd, uint32_t value_size, uint32_t entries, const char *what,
                      GError **errp)
{
    struct bpf_map_info info = { 0 };
    uint32_t len = sizeof(info);

    if (bpf_obj_get_info_by_fd(fd, &info, &len) < 0) {
        qnic_error_setg_errno(errp, errno, "ebpf-rss-fds: %s (fd %d) is not a BPF map", what, fd);
        return false;
    }
    if (info.type != BPF_MAP_TYPE_ARRAY || info.key_size != 4 ||
        info.value_size != value_size || info.max_entries != entries) {
        qnic_error_setg_invalid(errp, "ebpf-rss-fds: %s (fd %d) is not the map this program "
                                "uses (array of %u x %u bytes)", what, fd, entries, value_size);
        return false;
    }
    return true;
}

QnicRssEbpf *qnic_rss_ebpf_from_fds(const int *fds, GError **errp)
{
    QnicRssEbpf *e = g_new0(QnicRssEbpf, 1);
    struct bpf_prog_info info = { 0 };
    uint32_t len = sizeof(info);

    memcpy(e->fd, fds, sizeof(e->fd));
    e->own_fds = true;
    if (bpf_obj_get_info_by_fd(fds[QNIC_RSS_EBPF_PROG], &info, &len) < 0) {
        qnic_error_setg_errno(errp, errno, "ebpf-rss-fds: the program (fd %d) is not a BPF program",
                              fds[QNIC_RSS_EBPF_PROG]);
        goto fail;
    }
    if (info.type != BPF_PROG_TYPE_SOCKET_FILTER) {
        qnic_error_setg_invalid(errp, "ebpf-rss-fds: the program (fd %d) is not a socket filter",
                                fds[QNIC_RSS_EBPF_PROG]);
        goto fail;
    }
    if (!check_map(fds[QNIC_RSS_EBPF_CONFIG], sizeof(struct rss_ebpf_config), 1, "the config map",
                   errp) ||
        !check_map(fds[QNIC_RSS_EBPF_KEY], sizeof(struct rss_ebpf_key), 1, "the key map", errp) ||
        !check_map(fds[QNIC_RSS_EBPF_TABLE], sizeof(struct rss_ebpf_table), 1, "the table map",
                   errp)) {
        goto fail;
    }
    return e;
fail:
    qnic_rss_ebpf_free(e);
    return NULL;
}

void qnic_rss_ebpf_free(QnicRssEbpf *e)
{
    if (!e) {
        return;
    }
    if (e->own_fds) {
        for (int i = 0; i < QNIC_RSS_EBPF_NFDS; i++) {
            if (e->fd[i] >= 0) {
                close(e->fd[i]);
            }
        }
    }
    bpf_object__close(e->obj);
    g_free(e);
}

int qnic_rss_ebpf_fd(QnicRssEbpf *e, int which)
{
    return e->fd[which];
}

bool qnic_rss_ebpf_set_config(QnicRssEbpf *e, const QnicRssConfig *c, GError **errp)
{
    struct rss_ebpf_config cfg = {
        .hash_types = c->hash_types,
        .table_mask = c->table_len ? c->table_len - 1u : 0,
        .unclassified_queue = c->unclassified_queue,
    };
    struct rss_ebpf_key key = { { 0 } };
    struct rss_ebpf_table table = { { 0 } };
    uint32_t zero = 0;

    memcpy(key.key, c->key, sizeof(key.key));
    memcpy(table.queue, c->table, sizeof(table.queue));
    /* table and key before the config that points into them */
    if (bpf_map_update_elem(e->fd[QNIC_RSS_EBPF_TABLE], &zero, &table, BPF_ANY) < 0 ||
        bpf_map_update_elem(e->fd[QNIC_RSS_EBPF_KEY], &zero, &key, BPF_ANY) < 0 ||
        bpf_map_update_elem(e->fd[QNIC_RSS_EBPF_CONFIG], &zero, &cfg, BPF_ANY) < 0) {
        qnic_error_setg_errno(errp, errno, "eBPF RSS: cannot update the program's maps");
        return false;
    }
    return true;
}

int qnic_rss_ebpf_test_run(QnicRssEbpf *e, const uint8_t *frame, size_t len, GError **errp)
{
    uint8_t out[2048];
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame, .data_size_in = len,
                .data_out = out, .data_size_out = sizeof(out), .repeat = 1);

    if (bpf_prog_test_run_opts(e->fd[QNIC_RSS_EBPF_PROG], &opts) < 0) {
        qnic_error_setg_errno(errp, errno, "eBPF RSS: BPF_PROG_TEST_RUN failed");
        return -1;
    }
    return (int)opts.retval;
}

#else /* !CONFIG_EBPF_RSS */

#define NOT_BUILT "qnic was built without eBPF RSS (it needs clang and libbpf at build time)"

bool qnic_rss_ebpf_available(void)
{
    return false;
}

QnicRssEbpf *qnic_rss_ebpf_load(GError **errp)
{
    qnic_error_setg(errp, NOT_BUILT);
    return NULL;
}

QnicRssEbpf *qnic_rss_ebpf_from_fds(const int *fds, GError **errp)
{
    for (int i = 0; i < QNIC_RSS_EBPF_NFDS; i++) {
        close(fds[i]);
    }
    qnic_error_setg(errp, NOT_BUILT);
    return NULL;
}

void qnic_rss_ebpf_free(QnicRssEbpf *e)
{
}

int qnic_rss_ebpf_fd(QnicRssEbpf *e, int which)
{
    return -1;
}

bool qnic_rss_ebpf_set_config(QnicRssEbpf *e, const QnicRssConfig *c, GError **errp)
{
    qnic_error_setg(errp, NOT_BUILT);
    return false;
}

int qnic_rss_ebpf_test_run(QnicRssEbpf *e, const uint8_t *frame, size_t len, GError **errp)
{
    qnic_error_setg(errp, NOT_BUILT);
    return -1;
}

#endif
