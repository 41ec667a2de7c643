/*
 * The key=value option lexer behind -netdev, -device, -nic, -net and -object,
 * following QEMU's rules: the first element may omit "key=" (the implied
 * key), ",," stands for a literal comma, a bare "key" is recorded as key=on
 * (the schema checker later decides whether "nokey" means key=off), and a key
 * may repeat. Also the value parsers (booleans, numbers, sizes, MACs) shared
 * by the schema checker and by code that reads options by hand.
 */
#include "qnic/opts.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdlib.h>

static QnicOpt *opt_new(const char *key, const char *value, bool is_default, bool bare)
{
    QnicOpt *opt = g_new0(QnicOpt, 1);

    opt->key = g_strdup(key);
    opt->value = g_strdup(value);
    opt->is_default = is_default;
    opt->bare = bare;
    return opt;
}

static void opt_free(gpointer p)
{
    QnicOpt *opt = p;

    g_free(opt->key);
    g_free(opt->value);
    g_free(opt);
}

QnicOpts *qnic_opts_new(const char *group)
{
    QnicOpts *o = g_new0(QnicOpts, 1);

    o->group = g_strdup(group);
    o->items = g_ptr_array_new_with_free_func(opt_free);
    return o;
}

void qnic_opts_free(QnicOpts *o)
{
    if (!o) {
        return;
    }
    g_free(o->group);
    g_free(o->source);
    g_ptr_array_free(o->items, TRUE);
    g_free(o);
}

QnicOpts *qnic_opts_copy(const QnicOpts *o)
{
    QnicOpts *c;

    if (!o) {
        return NULL;
    }
    c = qnic_opts_new(o->group);
    c->source = g_strdup(o->source);
    c->schema = o->schema;
    for (guint i = 0; i < o->items->len; i++) {
        const QnicOpt *opt = g_ptr_array_index(o->items, i);
        g_ptr_array_add(c->items, opt_new(opt->key, opt->value, opt->is_default, opt->bare));
    }
    return c;
}

/*
 * Cut one element off *pp: up to the first single ',' (",," is a literal
 * comma and does not end the element). Returns the unescaped element and
 * advances *pp past the separator.
 */
static char *next_element(const char **pp)
{
    const char *p = *pp;
    GString *s = g_string_new(NULL);

    while (*p) {
        if (*p == ',') {
            if (p[1] == ',') {
                g_string_append_c(s, ',');
                p += 2;
                continue;
            }
            p++;
            break;
        }
        g_string_append_c(s, *p++);
    }
    *pp = p;
    return g_string_free(s, FALSE);
}

QnicOpts *qnic_opts_parse(const char *group, const char *str,
                          const char *implied_key, GError **errp)
{
    QnicOpts *o = qnic_opts_new(group);
    const char *p = str ? str : "";
    bool first = true;

    o->source = g_strdup(p);
    while (*p) {
        char *elem = next_element(&p);
        char *eq = strchr(elem, '=');

        if (elem[0] == '\0') {
            g_free(elem);
            if (*p == '\0') {
                break;              /* a trailing comma is harmless, as in QEMU */
            }
            qnic_error_setg_invalid(errp, "Invalid parameter ''");
            goto fail;
        }
        if (eq) {
            *eq = '\0';
            if (elem[0] == '\0') {
                g_free(elem);
                qnic_error_setg_invalid(errp, "Invalid parameter ''");
                goto fail;
            }
            g_ptr_array_add(o->items, opt_new(elem, eq + 1, false, false));
        } else if (first && implied_key) {
            g_ptr_array_add(o->items, opt_new(implied_key, elem, false, false));
        } else {
            g_ptr_array_add(o->items, opt_new(elem, "on", false, true));
        }
        g_free(elem);
        first = false;
    }
    return o;

fail:
    qnic_opts_free(o);
    return NULL;
}

static QnicOpt *find_last(const QnicOpts *o, const char *key)
{
    for (guint i = o->items->len; i > 0; i--) {
        QnicOpt *opt = g_ptr_array_index(o->items, i - 1);
        if (strcmp(opt->key, key) == 0) {
            return opt;
        }
    }
    return NULL;
}

const char *qnic_opts_get(const QnicOpts *o, const char *key)
{
    QnicOpt *opt = o ? find_last(o, key) : NULL;

    return opt ? opt->value : NULL;
}

const char **qnic_opts_get_list(const QnicOpts *o, const char *key)
{
    GPtrArray *list = g_ptr_array_new();

    for (guint i = 0; o && i < o->items->len; i++) {
        QnicOpt *opt = g_ptr_array_index(o->items, i);
        if (strcmp(opt->key, key) == 0) {
            g_ptr_array_add(list, opt->value);
        }
    }
    g_ptr_array_add(list, NULL);
    return (const char **)g_ptr_array_free(list, FALSE);
}

bool qnic_opts_is_set(const QnicOpts *o, const char *key)
{
    for (guint i = 0; o && i < o->items->len; i++) {
        QnicOpt *opt = g_ptr_array_index(o->items, i);
        if (strcmp(opt->key, key) == 0 && !opt->is_default) {
            return true;
        }
    }
    return false;
}

bool qnic_opts_has_help(const QnicOpts *o)
{
    static const char *const type_keys[] = { "type", "driver", "model", "qom-type" };

    for (guint i = 0; o && i < o->items->len; i++) {
        QnicOpt *opt = g_ptr_array_index(o->items, i);
        bool help_value = strcmp(opt->value, "help") == 0 || strcmp(opt->value, "?") == 0;

        if (opt->bare && (strcmp(opt->key, "help") == 0 || strcmp(opt->key, "?") == 0)) {
            return true;
        }
        for (size_t k = 0; help_value && k < QNIC_ARRAY_SIZE(type_keys); k++) {
            if (strcmp(opt->key, type_keys[k]) == 0) {
                return true;
            }
        }
    }
    return false;
}

void qnic_opts_set(QnicOpts *o, const char *key, const char *value)
{
    bool done = false;

    for (guint i = 0; i < o->items->len;) {
        QnicOpt *opt = g_ptr_array_index(o->items, i);
        if (strcmp(opt->key, key) != 0) {
            i++;
        } else if (!done) {
            /* keep the first position so messages follow the user's order */
            g_free(opt->value);
            opt->value = g_strdup(value);
            opt->is_default = false;
            opt->bare = false;
            done = true;
            i++;
        } else {
            g_ptr_array_remove_index(o->items, i);
        }
    }
    if (!done) {
        qnic_opts_append(o, key, value);
    }
}

void qnic_opts_append(QnicOpts *o, const char *key, const char *value)
{
    g_ptr_array_add(o->items, opt_new(key, value, false, false));
}

void qnic_opts_remove(QnicOpts *o, const char *key)
{
    for (guint i = 0; i < o->items->len;) {
        QnicOpt *opt = g_ptr_array_index(o->items, i);
        if (strcmp(opt->key, key) == 0) {
            g_ptr_array_remove_index(o->items, i);
        } else {
            i++;
        }
    }
}

bool qnic_opts_get_bool(const QnicOpts *o, const char *key, bool def)
{
    const char *v = qnic_opts_get(o, key);
    bool b;

    return (v && qnic_parse_bool(v, &b, NULL)) ? b : def;
}

uint64_t qnic_opts_get_uint(const QnicOpts *o, const char *key, uint64_t def)
{
    const char *v = qnic_opts_get(o, key);
    uint64_t n;

    return (v && qnic_parse_uint(v, &n, NULL)) ? n : def;
}

int64_t qnic_opts_get_int(const QnicOpts *o, const char *key, int64_t def)
{
    const char *v = qnic_opts_get(o, key);
    int64_t n;

    return (v && qnic_parse_int(v, &n, NULL)) ? n : def;
}

int qnic_opts_get_onoffauto(const QnicOpts *o, const char *key, int def)
{
    const char *v = qnic_opts_get(o, key);
    bool b;

    if (!v) {
        return def;
    }
    if (strcmp(v, "auto") == 0) {
        return -1;
    }
    return qnic_parse_bool(v, &b, NULL) ? (int)b : def;
}

/* ---- value parsers ---- */

bool qnic_parse_bool(const char *s, bool *out, GError **errp)
{
    static const char *const yes[] = { "on", "yes", "true", "y" };
    static const char *const no[] = { "off", "no", "false", "n" };

    for (size_t i = 0; s && i < QNIC_ARRAY_SIZE(yes); i++) {
        if (strcmp(s, yes[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcmp(s, no[i]) == 0) {
            *out = false;
            return true;
        }
    }
    qnic_error_setg_invalid(errp, "'%s' is not a boolean (use on/off, yes/no or true/false)",
                            s ? s : "");
    return false;
}

bool qnic_parse_uint(const char *s, uint64_t *out, GError **errp)
{
    const char *p = s ? s : "";
    char *end;
    unsigned long long v;

    while (isspace((unsigned char)*p)) {
        p++;
    }
    /* strtoull accepts "-1" as 2^64-1: a sign is never a valid unsigned */
    if (!isdigit((unsigned char)*p)) {
        qnic_error_setg_invalid(errp, "'%s' is not a non-negative number", s ? s : "");
        return false;
    }
    errno = 0;
    v = strtoull(p, &end, 0);
    if (*end != '\0') {
        qnic_error_setg_invalid(errp, "'%s' is not a non-negative number", s);
        return false;
    }
    if (errno == ERANGE) {
        qnic_error_setg_invalid(errp, "'%s' is too large (at most 2^64-1)", s);
        return false;
    }
    *out = v;
    return true;
}

bool qnic_parse_int(const char *s, int64_t *out, GError **errp)
{
    const char *p = s ? s : "";
    char *end;
    long long v;

    while (isspace((unsigned char)*p)) {
        p++;
    }
    if (!isdigit((unsigned char)*p) && !((*p == '-' || *p == '+') && isdigit((unsigned char)p[1]))) {
        qnic_error_setg_invalid(errp, "'%s' is not a number", s ? s : "");
        return false;
    }
    errno = 0;
    v = strtoll(p, &end, 0);
    if (*end != '\0') {
        qnic_error_setg_invalid(errp, "'%s' is not a number", s);
        return false;
    }
    if (errno == ERANGE) {
        qnic_error_setg_invalid(errp, "'%s' is out of the 64-bit signed range", s);
        return false;
    }
    *out = v;
    return true;
}

/*
 * Sizes as QEMU writes them: a decimal number, optionally with a fraction,
 * and an optional suffix B, k/K, M, G, T, P or E (1024-based); or a plain
 * hexadecimal number of bytes ("0x1000"), which takes no suffix.
 */
bool qnic_parse_size(const char *s, uint64_t *out, GError **errp)
{
    const char *p = s ? s : "";
    uint64_t whole = 0, mult = 1;
    double frac = 0;
    int shift = 0;

    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
        if (!isxdigit((unsigned char)p[2]) || !qnic_parse_uint(p, out, NULL)) {
            goto bad;
        }
        return true;
    }
    if (!isdigit((unsigned char)*p)) {
        goto bad;
    }
    while (isdigit((unsigned char)*p)) {
        unsigned d = *p++ - '0';
        if (whole > (UINT64_MAX - d) / 10) {
            goto range;
        }
        whole = whole * 10 + d;
    }
    if (*p == '.') {
        double scale = 0.1;
        p++;
        if (!isdigit((unsigned char)*p)) {
            goto bad;
        }
        while (isdigit((unsigned char)*p)) {
            frac += (*p++ - '0') * scale;
            scale /= 10;
        }
    }
    switch (*p) {
    case '\0': break;
    case 'b': case 'B': shift = 0; p++; break;
    case 'k': case 'K': shift = 10; p++; break;
    case 'm': case 'M': shift = 20; p++; break;
    case 'g': case 'G': shift = 30; p++; break;
    case 't': case 'T': shift = 40; p++; break;
    case 'p': case 'P': shift = 50; p++; break;
    case 'e': case 'E': shift = 60; p++; break;
    default: goto bad;
    }
    if (*p != '\0') {
        goto bad;
    }
    mult = UINT64_C(1) << shift;
    if (frac != 0 && shift == 0) {
        goto bad;                   /* "1.5" bytes makes no sense */
    }
    if (whole > UINT64_MAX / mult) {
        goto range;
    }
    {
        uint64_t v = whole * mult;
        uint64_t f = (uint64_t)(frac * (double)mult);
        if (v > UINT64_MAX - f) {
            goto range;
        }
        *out = v + f;
    }
    return true;

bad:
    qnic_error_setg_invalid(errp, "'%s' is not a size (a number with an optional "
                            "k, M, G, T, P or E suffix)", s ? s : "");
    return false;
range:
    qnic_error_setg_invalid(errp, "'%s' is too large (sizes must be below 2^64)", s);
    return false;
}

bool qnic_parse_mac(const char *s, uint8_t mac[6], GError **errp)
{
    const char *p = s ? s : "";
    uint8_t tmp[6];

    for (int i = 0; i < 6; i++) {
        if (!isxdigit((unsigned char)p[0]) || !isxdigit((unsigned char)p[1])) {
            goto bad;
        }
        tmp[i] = (uint8_t)(g_ascii_xdigit_value(p[0]) << 4 | g_ascii_xdigit_value(p[1]));
        p += 2;
        if (i < 5) {
            if (*p != ':' && *p != '-') {
                goto bad;
            }
            p++;
        }
    }
    if (*p != '\0') {
        goto bad;
    }
    memcpy(mac, tmp, 6);
    return true;

bad:
    qnic_error_setg_invalid(errp, "'%s' is not a MAC address (expected xx:xx:xx:xx:xx:xx)",
                            s ? s : "");
    return false;
}

char *qnic_format_mac(const uint8_t mac[6])
{
    return g_strdup_printf("%02x:%02x:%02x:%02x:%02x:%02x",
                           mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
}
