/*
 * Fuzzes the QMP server (vmm/qmp.c): the input is what a client sends, cut
 * into pieces at the positions its first bytes choose (the splitter must
 * not care where reads end), to a negotiated session on a machine with a
 * virtio-net-pci and an e1000 on hub ports. Every answer must be one JSON
 * object per line with exactly one of return, error, event (or the
 * greeting): anything else aborts. netdev_add may only create hub ports, so
 * the fuzzer opens no host resources.
 */
#include "qnic/machine.h"
#include "qnic/device.h"
#include "qnic/net.h"
#include "qnic/clock.h"
#include "qnic/log.h"
#include "vmm/qmp.h"
#include "vmm/vmm.h"
#include "fuzz.h"
#include "../lib/test-backends.h"

#include <json-glib/json-glib.h>
#include <stdio.h>
#include <stdlib.h>

static GString *pending;        /* output not yet ended by "\r\n" */
static unsigned answers;

static void check_line(const char *line, size_t len)
{
    g_autoptr(JsonParser) p = json_parser_new_immutable();
    JsonObject *o;
    int kinds = 0;

    if (!json_parser_load_from_data(p, line, (gssize)len, NULL) ||
        !JSON_NODE_HOLDS_OBJECT(json_parser_get_root(p))) {
        fprintf(stderr, "fuzz-qmp: the server sent a line that is not a JSON object: %.*s\n",
                (int)len, line);
        abort();
    }
    o = json_node_get_object(json_parser_get_root(p));
    kinds += json_object_has_member(o, "return");
    kinds += json_object_has_member(o, "error");
    kinds += json_object_has_member(o, "event");
    kinds += json_object_has_member(o, "QMP");
    if (kinds != 1) {
        fprintf(stderr, "fuzz-qmp: a reply with %d of return/error/event/QMP: %.*s\n", kinds,
                (int)len, line);
        abort();
    }
    answers++;
}

static void output(void *opaque, const char *buf, size_t len)
{
    char *end;

    g_string_append_len(pending, buf, len);
    while ((end = strstr(pending->str, "\r\n"))) {
        size_t n = end - pending->str;
        check_line(pending->str, n);
        g_string_erase(pending, 0, n + 2);
    }
}

static const char *const allowed[] = { "hubport", NULL };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    QnicMachineConfig cfg = { .ram_size = 4 << 20 };
    QnicMachine *m;
    QnicQmpSession *s;
    static const char hello[] = "{\"execute\":\"qmp_capabilities\"}";
    FuzzIn in = { data, size };
    unsigned cut;

    if (size > 65536) {
        return 0;
    }
    qnic_log_mask = 0;
    qnic_clock_set_mode(QNIC_CLOCK_MANUAL);
    qnic_vmm_runstate_init(NULL, NULL, test_backends(), false);
    pending = g_string_new(NULL);
    answers = 0;
    cfg.backends = test_backends();
    m = qnic_machine_new(&cfg, NULL);
    qnic_netdev_add_str(test_backends(), "hubport,id=n0,hubid=0", NULL);
    qnic_netdev_add_str(test_backends(), "hubport,id=n1,hubid=0", NULL);
    qnic_device_create_str(m, "virtio-net-pci,netdev=n0,id=nic0,addr=4", NULL);
    qnic_device_create_str(m, "e1000,netdev=n1,id=e0,addr=5", NULL);
    s = qnic_qmp_session_new(m, output, NULL);
    qnic_qmp_session_allow_netdevs(s, allowed);
    qnic_qmp_session_greet(s);
    /* The first byte picks the piece size (1..64; 0: all at once), so
     * values are also cut inside strings and escapes. */
    cut = fuzz_u8(&in) % 65;
    if (in.len && in.p[0] != '!') {
        qnic_qmp_session_input(s, hello, sizeof(hello) - 1);
    }
    while (in.len) {
        size_t n = cut ? MIN(cut, in.len) : in.len;
        qnic_qmp_session_input(s, (const char *)in.p, n);
        in.p += n;
        in.len -= n;
    }
    if (answers == 0) {
        fprintf(stderr, "fuzz-qmp: not even the greeting was sent\n");
        abort();
    }
    qnic_qmp_session_free(s);
    qnic_machine_free(m);
    qnic_netdev_del_all(test_backends());
    qnic_clock_reset();
    g_string_free(pending, TRUE);
    return 0;
}
