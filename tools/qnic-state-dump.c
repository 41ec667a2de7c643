/*
 * qnic-state-dump: prints a device-state stream (qnic/state.h) as text,
 * one "section.field = value" line per value, so that an operator can see
 * what a saved device state holds and a test can compare two of them with
 * diff. It needs no device tables: the stream describes itself. A stream
 * that fails a checksum or is malformed gets an error and exit status 1.
 *
 * usage: qnic-state-dump [FILE]    (standard input without FILE)
 */
#include "qnic/state.h"

#include <stdio.h>

int main(int argc, char **argv)
{
    g_autofree char *data = NULL;
    gsize len = 0;
    g_autoptr(GError) err = NULL;

    if (argc > 2 || (argc == 2 && argv[1][0] == '-' && argv[1][1])) {
        fprintf(stderr, "usage: qnic-state-dump [FILE]\n");
        return 2;
    }
    if (argc == 2 && g_strcmp0(argv[1], "-") != 0) {
        if (!g_file_get_contents(argv[1], &data, &len, &err)) {
            fprintf(stderr, "qnic-state-dump: %s\n", err->message);
            return 1;
        }
    } else {
        g_autoptr(GByteArray) b = g_byte_array_new();
        uint8_t buf[65536];
        size_t n;
        while ((n = fread(buf, 1, sizeof(buf), stdin)) > 0) {
            g_byte_array_append(b, buf, (guint)n);
        }
        len = b->len;
        data = (char *)g_byte_array_free(g_steal_pointer(&b), FALSE);
    }
    g_autofree char *text = qnic_state_dump((const uint8_t *)data, len, &err);
    if (!text) {
        fprintf(stderr, "qnic-state-dump: %s\n", err->message);
        return 1;
    }
    fputs(text, stdout);
    return 0;
}
