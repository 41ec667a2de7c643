/*
 * The option schema: one table per -netdev type, -device model and -object
 * type, generated at build time from the qapi/ JSON files by scripts/qapi-gen.py. It is
 * the single source of truth for which keys exist, their types, defaults and
 * help text; qnic_schema_check() validates and normalizes a QnicOpts against
 * it, and the help printers and docs/options.md are made from it.
 */
#ifndef QNIC_SCHEMA_H
#define QNIC_SCHEMA_H

#include "qnic/opts.h"
#include <stdio.h>

typedef enum {
    QNIC_PROP_STR,
    QNIC_PROP_BOOL,
    QNIC_PROP_UINT,       /* unsigned number, range min..max */
    QNIC_PROP_INT,        /* signed number, range min..max */
    QNIC_PROP_SIZE,       /* number with k/M/G suffix */
    QNIC_PROP_MAC,
    QNIC_PROP_ENUM,       /* one of enum_values */
    QNIC_PROP_ONOFFAUTO,  /* on/off/auto */
} QnicPropType;

typedef struct QnicPropDesc {
    const char *name;
    QnicPropType type;
    const char *def;              /* default as a string, NULL = none */
    const char *help;
    const char *const *enum_values;   /* for ENUM, NULL-terminated */
    int64_t min, max;             /* for INT/UINT/SIZE (max 0 = unbounded) */
    bool required;
    bool repeat;                  /* may be given more than once (hostfwd) */
    bool has_feature;             /* a bool that offers a device feature bit: */
    uint8_t feature;              /* that bit (the schema's "feature") */
} QnicPropDesc;

typedef enum {
    QNIC_SCHEMA_NETDEV,
    QNIC_SCHEMA_DEVICE,
    QNIC_SCHEMA_OBJECT,
    QNIC_SCHEMA_CHARDEV,          /* -chardev BACKEND (include/qnic/chardev.h) */
} QnicSchemaKind;

struct QnicSchemaType {
    QnicSchemaKind kind;
    const char *name;             /* "tap", "virtio-net-pci", "filter-dump" */
    const char *alias_of;         /* "e1000-82540em" -> "e1000", else NULL */
    const char *bus;              /* devices: "pci", "virtio-bus", "isa", "sysbus" */
    const char *category;         /* devices: "Network devices", ... */
    const char *help;
    const QnicPropDesc *props;    /* terminated by { .name = NULL } */
};

/* NULL-terminated list of every type, in schema order. */
extern const QnicSchemaType *const qnic_schema_types[];

const QnicSchemaType *qnic_schema_lookup(QnicSchemaKind kind, const char *name);
const QnicPropDesc *qnic_schema_prop(const QnicSchemaType *t, const char *name);

/* Validate o against t: unknown keys, bad values, missing required keys and
 * repeated non-repeatable keys are errors in QEMU's words, e.g.
 *   Parameter 'queues' expects a number
 *   Invalid parameter 'foo'
 *   Parameter 'id' is missing
 * On success normalizes values, adds defaults and sets o->schema. */
bool qnic_schema_check(QnicOpts *o, const QnicSchemaType *t, GError **errp);

/* Is the schema type t there in this build: does a class implement it?
 * (The schema may name types qnic does not implement.) */
typedef bool QnicSchemaImplementedFunc(const QnicSchemaType *t);

/* The one path from an option string to checked options, for every
 * -netdev/-device/-object/-chardev string: parse it (the kind's group and
 * implied key: "type", "driver", "qom-type", "backend"), answer `help`,
 * look the type up and check the options against it. Errors in QEMU's
 * words: "Parameter 'type' is missing", "'x' is not a valid device model
 * name", ... `help` (not for chardevs) prints the type's keys, or the list
 * of types, to stdout and fails with QNIC_ERROR_HELP; with a type that does
 * not exist, -device help is an error and the others print the list.
 * implemented (may be NULL) also decides whether a type exists. */
QnicOpts *qnic_schema_parse(QnicSchemaKind kind, const char *str,
                            QnicSchemaImplementedFunc *implemented, GError **errp);
/* The same for options parsed already (QMP, -nic); o stays the caller's.
 * On success o->schema is the type. */
bool qnic_schema_check_kind(QnicSchemaKind kind, QnicOpts *o,
                            QnicSchemaImplementedFunc *implemented, GError **errp);

/* `-netdev help`, `-device help`, `-device MODEL,help` output. */
void qnic_schema_print_list(QnicSchemaKind kind, FILE *out);
void qnic_schema_print_type(const QnicSchemaType *t, FILE *out);

#endif
