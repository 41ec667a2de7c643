/*
 * Option strings in QEMU's key=value syntax and their schema-checked values.
 *
 *   -netdev tap,id=n0,queues=4      -> group "netdev", implied key "type"
 *   -device virtio-net-pci,mac=...  -> group "device", implied key "driver"
 *
 * Lexing follows QEMU: the first element may omit "key=" (the implied key),
 * ",," is a literal comma, a bare "flag" means flag=on and "noflag" means
 * flag=off for boolean keys (the schema decides). After qnic_schema_check()
 * every value is normalized (booleans "on"/"off", numbers in decimal, sizes in
 * bytes, MACs as "xx:xx:xx:xx:xx:xx") and defaults from the schema are present,
 * so the typed getters below never fail on checked options.
 */
#ifndef QNIC_OPTS_H
#define QNIC_OPTS_H

#include "qnic/common.h"

typedef struct QnicOpt {
    char *key;
    char *value;
    bool is_default;    /* inserted from the schema, not given by the user */
    bool bare;          /* given as "key" with no "=value" (value is "on"); the
                         * schema checker turns a bare "nokey" into key=off */
} QnicOpt;

typedef struct QnicSchemaType QnicSchemaType;

typedef struct QnicOpts {
    char *group;                      /* "netdev", "device", "nic", "object", ... */
    char *source;                     /* the original string, for messages */
    GPtrArray *items;                 /* QnicOpt *, in command-line order */
    const QnicSchemaType *schema;     /* set by qnic_schema_check() */
} QnicOpts;

QnicOpts *qnic_opts_parse(const char *group, const char *str,
                          const char *implied_key, GError **errp);
QnicOpts *qnic_opts_new(const char *group);
QnicOpts *qnic_opts_copy(const QnicOpts *o);
void qnic_opts_free(QnicOpts *opts);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QnicOpts, qnic_opts_free)

/* Last value given for key, or NULL. */
const char *qnic_opts_get(const QnicOpts *o, const char *key);
/* Every value given for a repeatable key (hostfwd=...), NULL-terminated;
 * free the array only (g_free), not the strings. */
const char **qnic_opts_get_list(const QnicOpts *o, const char *key);
/* True when the user gave the key (not merely a schema default). */
bool qnic_opts_is_set(const QnicOpts *o, const char *key);
/* Replace all values of key with one value (or append if absent). */
void qnic_opts_set(QnicOpts *o, const char *key, const char *value);
void qnic_opts_append(QnicOpts *o, const char *key, const char *value);
void qnic_opts_remove(QnicOpts *o, const char *key);

/* True for `-device help`, `-device MODEL,help`, `-netdev help` and the
 * "?" spelling: a bare help/? key, or help/? as the value of the type key. */
bool qnic_opts_has_help(const QnicOpts *o);

/* Typed getters for schema-checked options; `def` is used if absent. */
bool qnic_opts_get_bool(const QnicOpts *o, const char *key, bool def);
uint64_t qnic_opts_get_uint(const QnicOpts *o, const char *key, uint64_t def);
int64_t qnic_opts_get_int(const QnicOpts *o, const char *key, int64_t def);
/* OnOffAuto: returns -1 auto, 0 off, 1 on. */
int qnic_opts_get_onoffauto(const QnicOpts *o, const char *key, int def);

/* Value parsers shared by the schema checker and by hand-written callers.
 * Each sets a message naming the problem, without the parameter name. */
bool qnic_parse_bool(const char *s, bool *out, GError **errp);
bool qnic_parse_uint(const char *s, uint64_t *out, GError **errp);   /* dec, 0x hex, 0 octal */
bool qnic_parse_int(const char *s, int64_t *out, GError **errp);
bool qnic_parse_size(const char *s, uint64_t *out, GError **errp);   /* k/M/G/T suffix, 1024-based */
bool qnic_parse_mac(const char *s, uint8_t mac[6], GError **errp);
char *qnic_format_mac(const uint8_t mac[6]);                        /* g_free */

#endif
