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
#define qnic_guest_error(...) qnic_log(QNIC_LOG_GUEST_ERROR, __VA_ARGS__)
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
