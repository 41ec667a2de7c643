/*
 * Replays fuzz inputs without libFuzzer: `fuzz-replay-X FILE|DIR...` runs
 * every file through the target once. make check uses it to replay the
 * seed corpora and every regression reproducer under tests/fuzz/. A
 * reproducer NAME may come with NAME.expect, one check per line, verified
 * after NAME ran so that a regression that stops crashing but misbehaves
 * still fails:
 *     guest-errors >= 1      guest-error log lines the input caused
 *     frames-out == 1        frames the device sent to the wire
 *     ram16 0x1000 == 3      little-endian guest RAM (ram8/16/32/64)
 * with the operators == != >= <=.
 */
#include "fuzz.h"
#include "qnic/machine.h"
#include "qnic/log.h"
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>

__attribute__((weak)) uint64_t fuzz_frames_out;
__attribute__((weak)) void (*fuzz_after_run)(QnicMachine *m);

typedef struct {
    char what[16];          /* guest-errors, frames-out, ram8..ram64 */
    uint64_t addr;
    char op[3];
    uint64_t value;
    uint64_t seen;
    bool have_seen;
} Check;

static GArray *checks;      /* Check, of the input being replayed */

static bool compare(uint64_t a, const char *op, uint64_t b)
{
    if (!strcmp(op, "==")) return a == b;
    if (!strcmp(op, "!=")) return a != b;
    if (!strcmp(op, ">=")) return a >= b;
    if (!strcmp(op, "<=")) return a <= b;
    return false;
}

/* Runs while the machine of the input still exists. */
static void read_ram_checks(QnicMachine *m)
{
    for (guint i = 0; checks && i < checks->len; i++) {
        Check *c = &g_array_index(checks, Check, i);
        unsigned bits;
        if (sscanf(c->what, "ram%u", &bits) != 1) {
            continue;
        }
        uint8_t *p = qnic_machine_ram_ptr(m, c->addr, bits / 8);
        if (p) {
            c->seen = 0;
            for (unsigned k = 0; k < bits / 8; k++) {
                c->seen |= (uint64_t)p[k] << (8 * k);
            }
            c->have_seen = true;
        }
    }
}

static bool load_expect(const char *path, GArray *out)
{
    g_autofree char *text = NULL;
    g_auto(GStrv) lines = NULL;

    if (!g_file_get_contents(path, &text, NULL, NULL)) {
        return true;        /* no expectations */
    }
    lines = g_strsplit(text, "\n", -1);
    for (int i = 0; lines[i]; i++) {
        char *l = g_strstrip(lines[i]);
        Check c = { 0 };
        char a[32], b[32];
        if (!*l || *l == '#') {
            continue;
        }
        if (sscanf(l, "%15s %31s %2s %31s", c.what, a, c.op, b) == 4 &&
            g_str_has_prefix(c.what, "ram")) {
            c.addr = strtoull(a, NULL, 0);
            c.value = strtoull(b, NULL, 0);
        } else if (sscanf(l, "%15s %2s %31s", c.what, c.op, a) == 3 &&
                   (!strcmp(c.what, "guest-errors") || !strcmp(c.what, "frames-out"))) {
            c.value = strtoull(a, NULL, 0);
        } else {
            fprintf(stderr, "replay: %s: cannot parse '%s'\n", path, l);
            return false;
        }
        g_array_append_val(out, c);
    }
    return true;
}

static int run_file(const char *path)
{
    g_autofree char *expect_path = g_strconcat(path, ".expect", NULL);
    g_autoptr(GArray) want = g_array_new(FALSE, TRUE, sizeof(Check));
    gchar *data;
    gsize len;
    uint64_t errors;
    int bad = 0;

    if (!g_file_get_contents(path, &data, &len, NULL)) {
        fprintf(stderr, "replay: cannot read %s\n", path);
        return 1;
    }
    if (!load_expect(expect_path, want)) {
        g_free(data);
        return 1;
    }
    checks = want;
    fuzz_after_run = want->len ? read_ram_checks : NULL;
    errors = qnic_log_count(QNIC_LOG_GUEST_ERROR);
    LLVMFuzzerTestOneInput((const uint8_t *)data, len);
    errors = qnic_log_count(QNIC_LOG_GUEST_ERROR) - errors;
    fuzz_after_run = NULL;
    checks = NULL;
    g_free(data);

    for (guint i = 0; i < want->len; i++) {
        Check *c = &g_array_index(want, Check, i);
        if (!strcmp(c->what, "guest-errors")) {
            c->seen = errors;
            c->have_seen = true;
        } else if (!strcmp(c->what, "frames-out")) {
            c->seen = fuzz_frames_out;
            c->have_seen = true;
        }
        if (!c->have_seen || !compare(c->seen, c->op, c->value)) {
            fprintf(stderr, "replay: %s: expected %s 0x%" G_GINT64_MODIFIER "x %s %"
                    G_GUINT64_FORMAT ", got %s%" G_GUINT64_FORMAT "\n", path, c->what,
                    c->addr, c->op, c->value, c->have_seen ? "" : "(unreadable) ", c->seen);
            bad = 1;
        } else {
            printf("replay: %s: %s %s %" G_GUINT64_FORMAT " ok (%" G_GUINT64_FORMAT ")\n",
                   path, c->what, c->op, c->value, c->seen);
        }
    }
    return bad;
}

int main(int argc, char **argv)
{
    int files = 0, bad = 0;

    for (int i = 1; i < argc; i++) {
        if (g_file_test(argv[i], G_FILE_TEST_IS_DIR)) {
            GDir *d = g_dir_open(argv[i], 0, NULL);
            const char *n;
            while (d && (n = g_dir_read_name(d))) {
                g_autofree char *p = g_build_filename(argv[i], n, NULL);
                if (g_str_has_suffix(n, ".expect") || n[0] == '.') {
                    continue;       /* expectations and .gitkeep are not inputs */
                }
                if (g_file_test(p, G_FILE_TEST_IS_REGULAR)) {
                    bad += run_file(p);
                    files++;
                }
            }
            if (d) {
                g_dir_close(d);
            }
        } else if (g_file_test(argv[i], G_FILE_TEST_EXISTS)) {
            bad += run_file(argv[i]);
            files++;
        }
    }
    printf("replayed %d inputs through %s, %d failed their expectations\n", files, argv[0], bad);
    return bad ? 1 : 0;
}
