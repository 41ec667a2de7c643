/*
 * Logging for qnic: error reports for a person ("qnic-vmm: message" on
 * stderr), and the categories that `-d guest_errors,unimp,...` switches on,
 * written to stderr or to the `-D` file. Guest errors are counted even when
 * their category is off so that tests can assert a hostile access was seen
 * without having to scrape output. Safe to call from any thread.
 */
#include "qnic/log.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

unsigned qnic_log_mask;

static const struct {
    const char *name;
    unsigned bit;
    const char *help;
} log_items[] = {
    { "guest_errors", QNIC_LOG_GUEST_ERROR, "log when the guest accesses invalid device state or memory" },
    { "unimp", QNIC_LOG_UNIMP, "log unimplemented functionality" },
    { "trace_net", QNIC_LOG_TRACE_NET, "trace every packet through net clients and backends" },
    { "trace_dev", QNIC_LOG_TRACE_DEV, "trace every device register access" },
    { "vhost", QNIC_LOG_VHOST, "vhost rings: how kicks and calls travel, what qnic relayed" },
};

#define QNIC_LOG_NBITS 32
static uint64_t log_counts[QNIC_LOG_NBITS];
static GMutex log_lock;
static FILE *log_file;          /* NULL: stderr */
static char *progname;

bool qnic_log_set_mask_str(const char *spec, GError **errp)
{
    unsigned mask = 0;
    char **parts;
    bool ok = true;

    if (g_strcmp0(spec, "help") == 0 || g_strcmp0(spec, "?") == 0) {
        printf("Log items (comma separated):\n");
        for (size_t i = 0; i < QNIC_ARRAY_SIZE(log_items); i++) {
            printf("%-15s %s\n", log_items[i].name, log_items[i].help);
        }
        return true;
    }
    parts = g_strsplit(spec ? spec : "", ",", -1);
    for (size_t i = 0; parts[i]; i++) {
        size_t j;

        if (parts[i][0] == '\0') {
            continue;
        }
        for (j = 0; j < QNIC_ARRAY_SIZE(log_items); j++) {
            if (strcmp(parts[i], log_items[j].name) == 0) {
                mask |= log_items[j].bit;
                break;
            }
        }
        if (j == QNIC_ARRAY_SIZE(log_items)) {
            qnic_error_setg_invalid(errp, "Invalid log item '%s' (use -d help for a list)",
                                    parts[i]);
            ok = false;
            break;
        }
    }
    g_strfreev(parts);
    if (ok) {
        qnic_log_mask = mask;
    }
    return ok;
}

bool qnic_log_set_file(const char *path, GError **errp)
{
    FILE *f = NULL;

    if (path && path[0]) {
        f = fopen(path, "w");
        if (!f) {
            qnic_error_setg_errno(errp, errno, "Cannot open log file '%s'", path);
            return false;
        }
        setvbuf(f, NULL, _IOLBF, 0);
    }
    g_mutex_lock(&log_lock);
    if (log_file) {
        fclose(log_file);
    }
    log_file = f;
    g_mutex_unlock(&log_lock);
    return true;
}

void qnic_log_set_progname(const char *name)
{
    g_mutex_lock(&log_lock);
    g_free(progname);
    progname = g_strdup(name);
    g_mutex_unlock(&log_lock);
}

static void count(unsigned category)
{
    for (unsigned i = 0; i < QNIC_LOG_NBITS; i++) {
        if (category & (1u << i)) {
            __atomic_add_fetch(&log_counts[i], 1, __ATOMIC_RELAXED);
        }
    }
}

uint64_t qnic_log_count(unsigned category)
{
    uint64_t n = 0;

    for (unsigned i = 0; i < QNIC_LOG_NBITS; i++) {
        if (category & (1u << i)) {
            n += __atomic_load_n(&log_counts[i], __ATOMIC_RELAXED);
        }
    }
    return n;
}

/* Token bucket, called with log_lock held: may this call site print now?
 * On yes, *suppressed says how many lines it dropped since it last printed.
 * rs == NULL: not rate-limited. */
static bool rate_allow(QnicLogRate *rs, uint64_t *suppressed)
{
    const gint64 line = G_USEC_PER_SEC, full = QNIC_LOG_RATE_BURST * line;
    gint64 now = g_get_monotonic_time();

    *suppressed = 0;
    if (!rs) {
        return true;
    }
    if (!rs->stamp_us) {
        rs->credit_us = full;
    } else {
        rs->credit_us = MIN(full, rs->credit_us + (now - rs->stamp_us) * QNIC_LOG_RATE_PER_SEC);
    }
    rs->stamp_us = now;
    if (rs->credit_us < line) {
        rs->suppressed++;
        return false;
    }
    rs->credit_us -= line;
    *suppressed = rs->suppressed;
    rs->suppressed = 0;
    return true;
}

static void log_line(QnicLogRate *rs, unsigned category, const char *fmt, va_list ap)
{
    char *msg;
    size_t len;
    uint64_t dropped;
    FILE *f;

    count(category);
    if (!qnic_log_enabled(category)) {
        return;
    }
    msg = g_strdup_vprintf(fmt, ap);
    len = strlen(msg);
    g_mutex_lock(&log_lock);
    if (rate_allow(rs, &dropped)) {
        f = log_file ? log_file : stderr;
        if (dropped) {
            fprintf(f, "suppressed %" PRIu64 " similar messages\n", dropped);
        }
        fprintf(f, "%s%s", msg, (len && msg[len - 1] == '\n') ? "" : "\n");
    }
    g_mutex_unlock(&log_lock);
    g_free(msg);
}

void qnic_log(unsigned category, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_line(NULL, category, fmt, ap);
    va_end(ap);
}

void qnic_log_rl(QnicLogRate *rs, unsigned category, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_line(rs, category, fmt, ap);
    va_end(ap);
}

static void report(QnicLogRate *rs, const char *kind, const char *fmt, va_list ap)
{
    char *msg = g_strdup_vprintf(fmt, ap);
    const char *prog;
    uint64_t dropped;

    g_mutex_lock(&log_lock);
    prog = progname ? progname : "qnic-vmm";
    if (rate_allow(rs, &dropped)) {
        if (dropped) {
            fprintf(stderr, "%s: suppressed %" PRIu64 " similar messages\n", prog, dropped);
        }
        fprintf(stderr, "%s: %s%s\n", prog, kind, msg);
        fflush(stderr);
    }
    g_mutex_unlock(&log_lock);
    g_free(msg);
}

void qnic_report_rl(QnicLogRate *rs, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    report(rs, "", fmt, ap);
    va_end(ap);
}

void qnic_warn_rl(QnicLogRate *rs, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    report(rs, "warning: ", fmt, ap);
    va_end(ap);
}

void qnic_report(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    report(NULL, "", fmt, ap);
    va_end(ap);
}

void qnic_warn(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    report(NULL, "warning: ", fmt, ap);
    va_end(ap);
}

void qnic_report_err(GError *err)
{
    if (!err) {
        return;
    }
    qnic_report("%s", err->message);
    g_error_free(err);
}
