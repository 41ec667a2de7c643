/*
 * Replays fuzz inputs without libFuzzer: `fuzz-replay-X FILE|DIR...` runs
 * every file through the target once. make check uses it to replay the
 * seed corpora and every regression reproducer under tests/fuzz/.
 */
#include "fuzz.h"
#include <glib.h>
#include <stdio.h>

static int run_file(const char *path)
{
    gchar *data;
    gsize len;

    if (!g_file_get_contents(path, &data, &len, NULL)) {
        fprintf(stderr, "replay: cannot read %s\n", path);
        return 1;
    }
    LLVMFuzzerTestOneInput((const uint8_t *)data, len);
    g_free(data);
    return 0;
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
    printf("replayed %d inputs through %s\n", files, argv[0]);
    return bad ? 1 : 0;
}
