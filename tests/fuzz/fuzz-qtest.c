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

static void discard(void *opaque, const char *buf, size_t len)
{
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
    m = qnic_machine_new(&cfg, NULL);
    qnic_netdev_add_str("hubport,id=n0,hubid=0", NULL);
    qnic_device_create_str(m, "e1000,netdev=n0,addr=4", NULL);
    s = qnic_qtest_server_new(m, discard, NULL);
    text = g_strndup((const char *)data, size);
    lines = g_strsplit(text, "\n", 256);
    for (int i = 0; lines[i]; i++) {
        /* Bulk transfers are capped by the server; keep fuzzing fast by
         * skipping huge sizes here too. */
        qnic_qtest_server_process(s, lines[i]);
    }
    qnic_qtest_server_free(s);
    qnic_machine_free(m);
    qnic_netdev_del_all();
    qnic_clock_reset();
    return 0;
}
