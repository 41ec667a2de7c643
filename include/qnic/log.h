/*
 * Logging: person-facing error reports ("qnic-vmm: ..." on stderr) and the
 * run-time switchable categories QEMU exposes as `-d guest_errors,unimp`,
 * written to stderr or the `-D` file. Every guest error is also counted, even
 * when its category is off, so tests can assert that one was logged.
 */
#ifndef QNIC_LOG_H
#define QNIC_LOG_H

#include "qnic/common.h"

enum {
    QNIC_LOG_GUEST_ERROR = 1u << 0,   /* guest did something invalid */
    QNIC_LOG_UNIMP       = 1u << 1,   /* guest used something not implemented */
    QNIC_LOG_TRACE_NET   = 1u << 2,   /* per-packet tracing (net, backends) */
    QNIC_LOG_TRACE_DEV   = 1u << 3,   /* per-access device tracing */
    QNIC_LOG_VHOST       = 1u << 4,   /* vhost kick/call routing, relay counts */
};

extern unsigned qnic_log_mask;

/* "guest_errors,unimp,trace_net" / "help" (prints categories, returns true). */
bool qnic_log_set_mask_str(const char *spec, GError **errp);
bool qnic_log_set_file(const char *path, GError **errp);
/* Prefix for qnic_report (default "qnic-vmm"). */
void qnic_log_set_progname(const char *name);

void qnic_log(unsigned category, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

/*
 * Rate limiting for messages a guest or a peer process can trigger at
 * will (a refused request, a disconnect): unlimited, they let the other
 * side turn a few bytes into megabytes of log. Each call site of the
 * *_ratelimited macros (and of qnic_guest_error) has its own state: a
 * burst of QNIC_LOG_RATE_BURST lines, then at most QNIC_LOG_RATE_PER_SEC
 * lines a second; the next line printed after a suppression is preceded by
 * "suppressed K similar messages". qnic_log_count() still counts every one.
 */
#define QNIC_LOG_RATE_BURST 10
#define QNIC_LOG_RATE_PER_SEC 5
typedef struct QnicLogRate {
    gint64 stamp_us;        /* when credit was last topped up; 0: never */
    gint64 credit_us;       /* 1 s of credit per QNIC_LOG_RATE_PER_SEC lines */
    uint64_t suppressed;    /* since the last line printed here */
} QnicLogRate;

void qnic_log_rl(QnicLogRate *rs, unsigned category, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);
void qnic_report_rl(QnicLogRate *rs, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
void qnic_warn_rl(QnicLogRate *rs, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
/* One static state per expansion, i.e. per call site. */
#define QNIC_RATELIMITED(fn, ...) \
    do { static QnicLogRate qnic_rate_site_; fn(&qnic_rate_site_, __VA_ARGS__); } while (0)
#define qnic_log_ratelimited(category, ...) QNIC_RATELIMITED(qnic_log_rl, category, __VA_ARGS__)
#define qnic_report_ratelimited(...) QNIC_RATELIMITED(qnic_report_rl, __VA_ARGS__)
#define qnic_warn_ratelimited(...) QNIC_RATELIMITED(qnic_warn_rl, __VA_ARGS__)

#define qnic_guest_error(...) qnic_log_ratelimited(QNIC_LOG_GUEST_ERROR, __VA_ARGS__)
#define qnic_unimp(...) qnic_log(QNIC_LOG_UNIMP, __VA_ARGS__)
static inline bool qnic_log_enabled(unsigned category) { return (qnic_log_mask & category) != 0; }
/* How many messages of a category were logged (counted even when masked). */
uint64_t qnic_log_count(unsigned category);

/* error_report(): "PROG: message\n" on stderr, always. */
void qnic_report(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
void qnic_warn(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
/* Report a GError (consumes it). */
void qnic_report_err(GError *err);

#endif
