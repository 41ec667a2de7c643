/*
 * Fuzzes the qtest command parser: each input line is a command to a
 * machine with a NIC on it. Replies are discarded; the process must survive
 * every line (FAIL answers, never exits) and never touch memory outside the
 * machine.
 */
#include "qnic/machine.h"
#include "qnic/net.h"
#include "qnic/clock.h"
#include "qnic/mainloop.h"
#include "qnic/log.h"
#include "qtest-server.h"
#include "fuzz.h"
#include "../lib/test-backends.h"

static void discard(void *opaque, const char *buf, size_t len)
{
}

/* Bulk transfers (read/write/memset and their b64 forms) are capped by the
 * server at 256 MiB, which is still seconds of work per line under ASan:
 * an input of a few such lines hit libFuzzer's -timeout=10 (reproducer
 * regressions/qtest/huge-bulk-read). The parser is the same for any size,
 * so sizes above 4 KiB are not sent. */
static bool too_big(const char *line)
{
    g_auto(GStrv) all = g_strsplit_set(line, " \t", -1);
    static const char *const bulk[] = { "read", "b64read", "write", "b64write", "memset", NULL };
    const char *w[3] = { NULL, NULL, NULL };
    int n = 0;

    /* Words as the server splits them: runs of blanks are one separator
     * (a doubled blank once hid a 128 MiB read from this check:
     * regressions/qtest/double-blank-bulk-read). */
    for (int i = 0; all[i] && n < 3; i++) {
        if (*all[i]) {
            w[n++] = all[i];
        }
    }
    if (n < 3 || !g_strv_contains(bulk, w[0])) {
        return false;
    }
    return g_ascii_strtoull(w[2], NULL, 0) > 4096;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    QnicMachineConfig cfg = { .ram_size = 4 << 20 };
    QnicMachine *m;
    QnicQtestServer *s;
    g_autofree char *text = NULL;
    g_auto(GStrv) lines = NULL;

    if (size > 65536) {
        return 0;
    }
    qnic_log_mask = 0;
    qnic_clock_set_mode(QNIC_CLOCK_MANUAL);
    cfg.backends = test_backends();
    m = qnic_machine_new(&cfg, NULL);
    qnic_netdev_add_str(test_backends(), "hubport,id=n0,hubid=0", NULL);
    qnic_device_create_str(m, "e1000,netdev=n0,addr=4", NULL);
    s = qnic_qtest_server_new(m, discard, NULL);
    text = g_strndup((const char *)data, size);
    lines = g_strsplit(text, "\n", 256);
    for (int i = 0; lines[i]; i++) {
        if (!too_big(lines[i])) {
            qnic_qtest_server_process(s, lines[i]);
        }
    }
    qnic_qtest_server_free(s);
    qnic_machine_free(m);
    qnic_netdev_del_all(test_backends());
    qnic_clock_reset();
    return 0;
}
