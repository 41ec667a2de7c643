/*
 * Fuzzes what a user or a management tool controls on the command line:
 * the key=value lexer, the schema checker for every -netdev, -device and
 * -object type, and device creation on a machine (which runs each model's
 * property validation). Netdevs are parsed and checked but not opened, so
 * no input can create sockets or taps. A first byte of 0xf0 or more selects
 * -chardev strings (parsed and checked, never opened); below, the byte
 * modulo 4 picks the group as before, so older inputs keep their meaning.
 */
#include "qnic/opts.h"
#include "qnic/schema.h"
#include "qnic/machine.h"
#include "qnic/net.h"
#include "qnic/clock.h"
#include "qnic/log.h"
#include "qnic/chardev.h"
#include "fuzz.h"
#include "../lib/test-backends.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const groups[] = { "netdev", "device", "object", "nic" };
    static const char *const implied[] = { "type", "driver", "qom-type", "type" };
    static const QnicSchemaKind kinds[] = { QNIC_SCHEMA_NETDEV, QNIC_SCHEMA_DEVICE,
                                            QNIC_SCHEMA_OBJECT, QNIC_SCHEMA_NETDEV };
    unsigned g;
    g_autofree char *str = NULL;
    GError *err = NULL;
    QnicOpts *o;

    if (size < 1 || size > 4096) {
        return 0;
    }
    qnic_log_mask = 0;
    if (data[0] >= 0xf0) {
        str = g_strndup((const char *)data + 1, size - 1);
        o = qnic_chardev_parse(str, &err);
        if (!o) {
            g_assert(err && err->message && *err->message);
            g_clear_error(&err);
        }
        qnic_opts_free(o);
        return 0;
    }
    g = data[0] % 4;
    str = g_strndup((const char *)data + 1, size - 1);
    o = qnic_opts_parse(groups[g], str, implied[g], &err);
    if (!o) {
        g_assert(err && err->message && *err->message);
        g_clear_error(&err);
        return 0;
    }
    const char *type = qnic_opts_get(o, implied[g]);
    const QnicSchemaType *t = type ? qnic_schema_lookup(kinds[g], type) : NULL;
    if (g == 1 && t) {
        /* A device string: really create it on a small machine. Netdevs
         * named by it are absent, which is an error path worth covering. */
        QnicMachineConfig cfg = { .ram_size = 2 << 20 };
        cfg.backends = test_backends();
        QnicMachine *m = qnic_machine_new(&cfg, NULL);
        QnicDevice *d = qnic_device_create(m, o, &err);
        if (!d) {
            g_assert(err && err->message && *err->message);
            g_clear_error(&err);
        }
        qnic_machine_free(m);
        qnic_clock_reset();
        return 0;
    }
    if (t && !qnic_schema_check(o, t, &err)) {
        g_assert(err && err->message && *err->message);
        g_clear_error(&err);
    }
    qnic_opts_free(o);
    return 0;
}
