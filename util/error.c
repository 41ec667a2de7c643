/*
 * GError helpers for qnic's `GError **errp` convention: the error domain, a
 * variant that appends strerror(), and prefixing so that a low-level message
 * ("Parameter 'queues' expects a number") can be wrapped with the option it
 * came from ("-netdev tap,queues=x: ...") on its way up.
 */
#include "qnic/common.h"

#include <stdarg.h>

G_DEFINE_QUARK(qnic-error-quark, qnic_error)

void qnic_error_setg_errno(GError **errp, int err, const char *fmt, ...)
{
    va_list ap;
    char *msg;

    if (!errp) {
        return;
    }
    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error(errp, QNIC_ERROR, QNIC_ERROR_IO, "%s: %s", msg, g_strerror(err));
    g_free(msg);
}

void qnic_error_prefix(GError **errp, const char *fmt, ...)
{
    va_list ap;
    char *prefix, *msg;

    if (!errp || !*errp) {
        return;
    }
    va_start(ap, fmt);
    prefix = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    msg = g_strconcat(prefix, (*errp)->message, NULL);
    g_free((*errp)->message);
    (*errp)->message = msg;
    g_free(prefix);
}
