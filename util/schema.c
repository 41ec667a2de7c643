/*
 * The option schema at run time: finding a -netdev/-device/-object type in the
 * tables scripts/qapi-gen.py generates, checking a parsed QnicOpts against it
 * (unknown keys, bad values, missing and repeated keys, reported in QEMU's
 * words), normalizing values so typed getters never fail, filling in
 * defaults, and printing the `help` listings in the shape QEMU prints them.
 * qnic_schema_parse() is the one sequence parse -> help -> lookup -> check
 * every option string goes through.
 */
#include "qnic/schema.h"

#include <ctype.h>
#include <inttypes.h>

const QnicSchemaType *qnic_schema_lookup(QnicSchemaKind kind, const char *name)
{
    if (!name) {
        return NULL;
    }
    for (size_t i = 0; qnic_schema_types[i]; i++) {
        const QnicSchemaType *t = qnic_schema_types[i];
        if (t->kind == kind && strcmp(t->name, name) == 0) {
            return t;
        }
    }
    return NULL;
}

const QnicPropDesc *qnic_schema_prop(const QnicSchemaType *t, const char *name)
{
    for (const QnicPropDesc *p = t ? t->props : NULL; p && p->name; p++) {
        if (strcmp(p->name, name) == 0) {
            return p;
        }
    }
    return NULL;
}

/* The key that names the type itself; it is not a property of the type. */
static const char *type_key(QnicSchemaKind kind)
{
    switch (kind) {
    case QNIC_SCHEMA_NETDEV: return "type";
    case QNIC_SCHEMA_DEVICE: return "driver";
    case QNIC_SCHEMA_OBJECT: return "qom-type";
    case QNIC_SCHEMA_CHARDEV: return "backend";
    }
    return "type";
}

/* QEMU's rule for ids: letters, digits, '-', '.', '_', starting with a letter. */
static bool is_identifier(const char *s)
{
    if (!isalpha((unsigned char)s[0])) {
        return false;
    }
    for (const char *p = s; *p; p++) {
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.' && *p != '_') {
            return false;
        }
    }
    return true;
}

static bool bounded(const QnicPropDesc *p)
{
    return p->max != 0;
}

static void set_value(QnicOpt *opt, char *value)
{
    g_free(opt->value);
    opt->value = value;
}

/* Check one value against its property and rewrite it in normal form. */
static bool check_value(QnicOpt *opt, const QnicPropDesc *p, GError **errp)
{
    const char *v = opt->value;
    bool b;
    uint64_t u;
    int64_t i;
    uint8_t mac[6];

    switch (p->type) {
    case QNIC_PROP_STR:
        /* "__org.qemu.*" ids are the ones -nic and -net make up, as QEMU's do */
        if (strcmp(p->name, "id") == 0 && !is_identifier(v) &&
            !g_str_has_prefix(v, "__org.qemu.")) {
            qnic_error_setg_invalid(errp, "Parameter 'id' expects an identifier\n"
                                    "Identifiers consist of letters, digits, '-', '.', '_', "
                                    "starting with a letter.");
            return false;
        }
        return true;
    case QNIC_PROP_BOOL:
        if (!qnic_parse_bool(v, &b, NULL)) {
            qnic_error_setg_invalid(errp, "Parameter '%s' expects 'on' or 'off'", p->name);
            return false;
        }
        set_value(opt, g_strdup(b ? "on" : "off"));
        return true;
    case QNIC_PROP_ONOFFAUTO:
        if (strcmp(v, "auto") == 0) {
            return true;
        }
        if (!qnic_parse_bool(v, &b, NULL)) {
            qnic_error_setg_invalid(errp, "Parameter '%s' expects 'on', 'off' or 'auto'", p->name);
            return false;
        }
        set_value(opt, g_strdup(b ? "on" : "off"));
        return true;
    case QNIC_PROP_UINT:
    case QNIC_PROP_SIZE:
        if (p->type == QNIC_PROP_UINT ? !qnic_parse_uint(v, &u, NULL)
                                      : !qnic_parse_size(v, &u, NULL)) {
            qnic_error_setg_invalid(errp, p->type == QNIC_PROP_UINT
                                    ? "Parameter '%s' expects a number"
                                    : "Parameter '%s' expects a size value", p->name);
            return false;
        }
        if ((p->min > 0 && u < (uint64_t)p->min) || (bounded(p) && u > (uint64_t)p->max)) {
            if (bounded(p)) {
                qnic_error_setg_invalid(errp, "Parameter '%s' expects a value between %" PRId64
                                        " and %" PRId64 ", not '%s'", p->name, p->min, p->max, v);
            } else {
                qnic_error_setg_invalid(errp, "Parameter '%s' expects a value of at least %"
                                        PRId64 ", not '%s'", p->name, p->min, v);
            }
            return false;
        }
        set_value(opt, g_strdup_printf("%" PRIu64, u));
        return true;
    case QNIC_PROP_INT:
        if (!qnic_parse_int(v, &i, NULL)) {
            qnic_error_setg_invalid(errp, "Parameter '%s' expects a number", p->name);
            return false;
        }
        if (bounded(p) && (i < p->min || i > p->max)) {
            qnic_error_setg_invalid(errp, "Parameter '%s' expects a value between %" PRId64
                                    " and %" PRId64 ", not '%s'", p->name, p->min, p->max, v);
            return false;
        }
        set_value(opt, g_strdup_printf("%" PRId64, i));
        return true;
    case QNIC_PROP_MAC:
        if (!qnic_parse_mac(v, mac, NULL)) {
            qnic_error_setg_invalid(errp, "Parameter '%s' expects a MAC address like "
                                    "52:54:00:12:34:56, not '%s'", p->name, v);
            return false;
        }
        set_value(opt, qnic_format_mac(mac));
        return true;
    case QNIC_PROP_ENUM:
        for (const char *const *e = p->enum_values; e && *e; e++) {
            if (strcmp(*e, v) == 0) {
                return true;
            }
        }
        {
            char *list = p->enum_values ? g_strjoinv("', '", (char **)p->enum_values)
                                        : g_strdup("");
            qnic_error_setg_invalid(errp, "Parameter '%s' does not accept value '%s' "
                                    "(expected '%s')", p->name, v, list);
            g_free(list);
        }
        return false;
    }
    qnic_error_setg(errp, "Parameter '%s' has an unknown type in the schema", p->name);
    return false;
}

bool qnic_schema_check(QnicOpts *o, const QnicSchemaType *t, GError **errp)
{
    const char *tkey = type_key(t->kind);
    GHashTable *seen = g_hash_table_new(g_str_hash, g_str_equal);
    bool ok = false;

    /* Defaults from an earlier check are dropped: they are re-added below. */
    for (guint n = 0; n < o->items->len;) {
        QnicOpt *opt = g_ptr_array_index(o->items, n);
        if (opt->is_default) {
            g_ptr_array_remove_index(o->items, n);
        } else {
            n++;
        }
    }

    for (const QnicPropDesc *p = t->props; p && p->name; p++) {
        if (p->required && !qnic_opts_get(o, p->name)) {
            qnic_error_setg_invalid(errp, "Parameter '%s' is missing", p->name);
            goto out;
        }
    }

    for (guint n = 0; n < o->items->len; n++) {
        QnicOpt *opt = g_ptr_array_index(o->items, n);
        const QnicPropDesc *p;

        if (strcmp(opt->key, tkey) == 0) {
            continue;
        }
        p = qnic_schema_prop(t, opt->key);
        if (opt->bare && g_str_has_prefix(opt->key, "no") &&
            (!p || p->type != QNIC_PROP_BOOL)) {
            const QnicPropDesc *neg = qnic_schema_prop(t, opt->key + 2);
            if (neg && neg->type == QNIC_PROP_BOOL) {
                char *key = g_strdup(neg->name);
                g_free(opt->key);
                opt->key = key;
                set_value(opt, g_strdup("off"));
                p = neg;
            }
        }
        if (!p) {
            qnic_error_setg_invalid(errp, "Invalid parameter '%s'", opt->key);
            goto out;
        }
        if (!p->repeat && g_hash_table_contains(seen, p->name)) {
            qnic_error_setg_invalid(errp, "Parameter '%s' is given more than once", p->name);
            goto out;
        }
        g_hash_table_add(seen, (gpointer)p->name);
        if (!check_value(opt, p, errp)) {
            goto out;
        }
        opt->bare = false;
    }

    for (const QnicPropDesc *p = t->props; p && p->name; p++) {
        if (p->def && !p->repeat && !g_hash_table_contains(seen, p->name)) {
            QnicOpt *opt = g_new0(QnicOpt, 1);
            opt->key = g_strdup(p->name);
            opt->value = g_strdup(p->def);
            opt->is_default = true;
            g_ptr_array_add(o->items, opt);
        }
    }
    o->schema = t;
    ok = true;
out:
    g_hash_table_destroy(seen);
    return ok;
}

/* ---- from an option string to checked options ---- */

/* How each kind answers `help` for a type that does not exist. */
typedef enum { HELP_NOT_HERE, HELP_LISTS, HELP_UNKNOWN_FAILS } HelpRule;

static const struct {
    const char *group;
    const char *unknown;        /* printf format, %s = the type */
    HelpRule help;
} kind_desc[] = {
    [QNIC_SCHEMA_NETDEV] = { "netdev", "Parameter 'type' does not accept value '%s'", HELP_LISTS },
    [QNIC_SCHEMA_DEVICE] = { "device", "'%s' is not a valid device model name",
                             HELP_UNKNOWN_FAILS },
    [QNIC_SCHEMA_OBJECT] = { "object", "invalid object type: %s", HELP_LISTS },
    /* -chardev help is answered by the command line before parsing */
    [QNIC_SCHEMA_CHARDEV] = { "chardev", "'%s' is not a valid char driver name",
                              HELP_NOT_HERE },
};

static bool is_help_word(const char *s)
{
    return s && (strcmp(s, "help") == 0 || strcmp(s, "?") == 0);
}

/* `help` asked: print and fail with QNIC_ERROR_HELP, or fail as unknown. */
static void answer_help(QnicSchemaKind kind, const char *type, const QnicSchemaType *t,
                        GError **errp)
{
    if (t) {
        qnic_schema_print_type(t, stdout);
    } else if (kind_desc[kind].help == HELP_LISTS || !type || is_help_word(type)) {
        qnic_schema_print_list(kind, stdout);
    } else {
        g_set_error(errp, QNIC_ERROR, QNIC_ERROR_INVALID, kind_desc[kind].unknown, type);
        return;
    }
    fflush(stdout);
    g_set_error_literal(errp, QNIC_ERROR, QNIC_ERROR_HELP, "help printed");
}

bool qnic_schema_check_kind(QnicSchemaKind kind, QnicOpts *o,
                            QnicSchemaImplementedFunc *implemented, GError **errp)
{
    const char *type = qnic_opts_get(o, type_key(kind));
    const QnicSchemaType *t = qnic_schema_lookup(kind, type);

    if (kind_desc[kind].help != HELP_NOT_HERE && qnic_opts_has_help(o)) {
        answer_help(kind, type, t, errp);
        return false;
    }
    if (!type) {
        qnic_error_setg_invalid(errp, "Parameter '%s' is missing", type_key(kind));
        return false;
    }
    if (!t || (implemented && !implemented(t))) {
        g_set_error(errp, QNIC_ERROR, QNIC_ERROR_INVALID, kind_desc[kind].unknown, type);
        return false;
    }
    return qnic_schema_check(o, t, errp);
}

QnicOpts *qnic_schema_parse(QnicSchemaKind kind, const char *str,
                            QnicSchemaImplementedFunc *implemented, GError **errp)
{
    QnicOpts *o = qnic_opts_parse(kind_desc[kind].group, str, type_key(kind), errp);

    if (o && !qnic_schema_check_kind(kind, o, implemented, errp)) {
        qnic_opts_free(o);
        return NULL;
    }
    return o;
}

/* ---- help output ---- */

static const char *bus_label(const char *bus)
{
    if (!bus) {
        return NULL;
    }
    if (strcmp(bus, "pci") == 0) {
        return "PCI";
    }
    if (strcmp(bus, "isa") == 0) {
        return "ISA";
    }
    if (strcmp(bus, "sysbus") == 0) {
        return "System";
    }
    return bus;
}

static gint cmp_type_name(gconstpointer a, gconstpointer b)
{
    const QnicSchemaType *ta = *(const QnicSchemaType *const *)a;
    const QnicSchemaType *tb = *(const QnicSchemaType *const *)b;

    return strcmp(ta->name, tb->name);
}

static void print_device_line(const QnicSchemaType *t, FILE *out)
{
    const char *bus = bus_label(t->bus);

    fprintf(out, "name \"%s\"", t->name);
    if (bus) {
        fprintf(out, ", bus %s", bus);
    }
    for (size_t i = 0; qnic_schema_types[i]; i++) {
        const QnicSchemaType *a = qnic_schema_types[i];
        if (a->kind == QNIC_SCHEMA_DEVICE && a->alias_of && strcmp(a->alias_of, t->name) == 0) {
            fprintf(out, ", alias \"%s\"", a->name);
        }
    }
    if (t->help && t->help[0]) {
        fprintf(out, ", desc \"%s\"", t->help);
    }
    fputc('\n', out);
}

void qnic_schema_print_list(QnicSchemaKind kind, FILE *out)
{
    GPtrArray *types = g_ptr_array_new();

    for (size_t i = 0; qnic_schema_types[i]; i++) {
        if (qnic_schema_types[i]->kind == kind) {
            g_ptr_array_add(types, (gpointer)qnic_schema_types[i]);
        }
    }
    switch (kind) {
    case QNIC_SCHEMA_NETDEV:
        /* schema order, as QEMU lists backends in registration order */
        fprintf(out, "Available netdev backend types:\n");
        for (guint i = 0; i < types->len; i++) {
            const QnicSchemaType *t = g_ptr_array_index(types, i);
            fprintf(out, "%s\n", t->name);
        }
        break;
    case QNIC_SCHEMA_OBJECT:
        g_ptr_array_sort(types, cmp_type_name);
        fprintf(out, "List of user creatable objects:\n");
        for (guint i = 0; i < types->len; i++) {
            const QnicSchemaType *t = g_ptr_array_index(types, i);
            fprintf(out, "  %s\n", t->name);
        }
        break;
    case QNIC_SCHEMA_CHARDEV:
        fprintf(out, "Available chardev backend types:\n");
        for (guint i = 0; i < types->len; i++) {
            fprintf(out, "  %s\n", ((const QnicSchemaType *)g_ptr_array_index(types, i))->name);
        }
        break;
    case QNIC_SCHEMA_DEVICE: {
        /* grouped by category in order of first appearance, sorted inside */
        GPtrArray *cats = g_ptr_array_new();
        g_ptr_array_sort(types, cmp_type_name);
        for (guint i = 0; i < types->len; i++) {
            const QnicSchemaType *t = g_ptr_array_index(types, i);
            const char *c = t->category ? t->category : "Uncategorized devices";
            bool known = false;
            for (guint j = 0; j < cats->len; j++) {
                known |= strcmp(g_ptr_array_index(cats, j), c) == 0;
            }
            if (!known) {
                g_ptr_array_add(cats, (gpointer)c);
            }
        }
        for (guint j = 0; j < cats->len; j++) {
            const char *c = g_ptr_array_index(cats, j);
            fprintf(out, "%s%s:\n", j ? "\n" : "", c);
            for (guint i = 0; i < types->len; i++) {
                const QnicSchemaType *t = g_ptr_array_index(types, i);
                const char *tc = t->category ? t->category : "Uncategorized devices";
                if (!t->alias_of && strcmp(tc, c) == 0) {
                    print_device_line(t, out);
                }
            }
        }
        g_ptr_array_free(cats, TRUE);
        break;
    }
    }
    g_ptr_array_free(types, TRUE);
}

static const char *type_label(const QnicPropDesc *p, char *buf, size_t len)
{
    switch (p->type) {
    case QNIC_PROP_STR:
    case QNIC_PROP_MAC:
        return "str";
    case QNIC_PROP_BOOL:
        return "bool";
    case QNIC_PROP_SIZE:
        return "size";
    case QNIC_PROP_ENUM:
        return "enum";
    case QNIC_PROP_ONOFFAUTO:
        return "OnOffAuto";
    case QNIC_PROP_UINT:
        if (!bounded(p) || p->max > UINT32_MAX) {
            return "uint64";
        }
        snprintf(buf, len, "uint%d", p->max > UINT16_MAX ? 32 : p->max > UINT8_MAX ? 16 : 8);
        return buf;
    case QNIC_PROP_INT:
        if (!bounded(p) || p->max > INT32_MAX || p->min < INT32_MIN) {
            return "int64";
        }
        return "int32";
    }
    return "str";
}

static gint cmp_prop_name(gconstpointer a, gconstpointer b)
{
    const QnicPropDesc *pa = *(const QnicPropDesc *const *)a;
    const QnicPropDesc *pb = *(const QnicPropDesc *const *)b;

    return strcmp(pa->name, pb->name);
}

void qnic_schema_print_type(const QnicSchemaType *t, FILE *out)
{
    GPtrArray *props = g_ptr_array_new();

    for (const QnicPropDesc *p = t->props; p && p->name; p++) {
        g_ptr_array_add(props, (gpointer)p);
    }
    g_ptr_array_sort(props, cmp_prop_name);
    fprintf(out, "%s options:\n", t->name);
    for (guint i = 0; i < props->len; i++) {
        const QnicPropDesc *p = g_ptr_array_index(props, i);
        char tbuf[16];
        char *left = g_strdup_printf("%s=<%s>", p->name, type_label(p, tbuf, sizeof(tbuf)));
        GString *right = g_string_new(p->help ? p->help : "");

        if (p->type == QNIC_PROP_BOOL && !p->help) {
            g_string_append(right, "on/off");
        }
        if (p->type == QNIC_PROP_ENUM && p->enum_values) {
            char *vals = g_strjoinv("/", (char **)p->enum_values);
            g_string_append_printf(right, "%s(%s)", right->len ? " " : "", vals);
            g_free(vals);
        }
        if (p->required) {
            g_string_append_printf(right, "%s(required)", right->len ? " " : "");
        }
        if (p->repeat) {
            g_string_append_printf(right, "%s(may be repeated)", right->len ? " " : "");
        }
        if (p->def) {
            g_string_append_printf(right, "%s(default: %s)", right->len ? " " : " ", p->def);
        }
        if (right->len) {
            fprintf(out, "  %-22s - %s\n", left, right->str);
        } else {
            fprintf(out, "  %s\n", left);
        }
        g_free(left);
        g_string_free(right, TRUE);
    }
    g_ptr_array_free(props, TRUE);
}
