/*
 * Common definitions every qnic file includes: fixed-width types, GLib, the
 * GError domain used for `GError **errp` error reporting, and small helpers.
 */
#ifndef QNIC_COMMON_H
#define QNIC_COMMON_H

#include <stdint.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <errno.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <glib.h>

#define QNIC_ERROR (qnic_error_quark())
GQuark qnic_error_quark(void);

typedef enum {
    QNIC_ERROR_FAILED,        /* generic */
    QNIC_ERROR_INVALID,       /* a bad option / parameter */
    QNIC_ERROR_UNSUPPORTED,   /* a valid request qnic does not support */
    QNIC_ERROR_IO,            /* a system call failed */
    /* Not a failure: the request asked for `help`, which went to stdout.
     * The library returns this instead of exiting; a program stops as if
     * it were done (qnic-vmm exits 0). */
    QNIC_ERROR_HELP,
} QnicErrorCode;

static inline bool qnic_error_is_help(const GError *err)
{
    return err && g_error_matches(err, QNIC_ERROR, QNIC_ERROR_HELP);
}

/* error_setg() in QEMU's words: a message for a person. */
#define qnic_error_setg(errp, ...) \
    g_set_error((errp), QNIC_ERROR, QNIC_ERROR_FAILED, __VA_ARGS__)
#define qnic_error_setg_invalid(errp, ...) \
    g_set_error((errp), QNIC_ERROR, QNIC_ERROR_INVALID, __VA_ARGS__)
/* Appends ": strerror(err)" to the message. */
void qnic_error_setg_errno(GError **errp, int err, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);
/* Prefixes an existing error message ("-netdev tap,...: " + msg). */
void qnic_error_prefix(GError **errp, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

#define QNIC_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define QNIC_ALIGN_UP(x, a) (((x) + (a) - 1) & ~((__typeof__(x))(a) - 1))
#define QNIC_IS_POW2(x) ((x) != 0 && ((x) & ((x) - 1)) == 0)
#define qnic_container_of(ptr, type, member) \
    ((type *)((char *)(ptr) - offsetof(type, member)))

static inline uint64_t qnic_pow2ceil(uint64_t v)
{
    uint64_t r = 1;
    while (r < v) {
        r <<= 1;
    }
    return r;
}

/* Little-endian loads/stores on byte buffers (guest-visible layouts). */
static inline uint16_t qnic_ld16(const void *p) { uint16_t v; memcpy(&v, p, 2); return GUINT16_FROM_LE(v); }
static inline uint32_t qnic_ld32(const void *p) { uint32_t v; memcpy(&v, p, 4); return GUINT32_FROM_LE(v); }
static inline uint64_t qnic_ld64(const void *p) { uint64_t v; memcpy(&v, p, 8); return GUINT64_FROM_LE(v); }
static inline void qnic_st16(void *p, uint16_t v) { v = GUINT16_TO_LE(v); memcpy(p, &v, 2); }
static inline void qnic_st32(void *p, uint32_t v) { v = GUINT32_TO_LE(v); memcpy(p, &v, 4); }
static inline void qnic_st64(void *p, uint64_t v) { v = GUINT64_TO_LE(v); memcpy(p, &v, 8); }
static inline uint16_t qnic_ld16be(const void *p) { uint16_t v; memcpy(&v, p, 2); return GUINT16_FROM_BE(v); }
static inline uint32_t qnic_ld32be(const void *p) { uint32_t v; memcpy(&v, p, 4); return GUINT32_FROM_BE(v); }
static inline void qnic_st16be(void *p, uint16_t v) { v = GUINT16_TO_BE(v); memcpy(p, &v, 2); }
static inline void qnic_st32be(void *p, uint32_t v) { v = GUINT32_TO_BE(v); memcpy(p, &v, 4); }

#endif
