/*
 * qtest tests of the QMP commands operators' tools use to look at a VM:
 * query-pci, qom-list/qom-get on /machine/peripheral, human-monitor-command
 * `info network`, and qnic's own query-netdev-stats. Written against QEMU
 * 7.2 (QTEST_QEMU_BINARY=qemu-system-x86_64) and run unchanged on qnic-vmm:
 * every expected reply and error text below was read off QEMU 7.2; what
 * only qnic has (query-netdev-stats, qom's x-queues, the error for HMP
 * commands other than `info network`) is checked on qnic and shown absent
 * on QEMU.
 */
#include "libqtest.h"
#include "virtio-driver.h"

#include <linux/virtio_net.h>
#include <linux/virtio_pci.h>

#include <arpa/inet.h>
#include <poll.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define TWO_NICS "-netdev user,id=n0 -device virtio-net-pci,netdev=n0,id=nic0 " \
                 "-netdev user,id=n1 -device e1000,netdev=n1,id=nic1,mac=52:54:00:12:34:99"

static QTestState *start(const char *extra)
{
    QTestState *s = qtest_initf(QTEST_FLAG_QMP | QTEST_FLAG_RUNNING, "%s", extra);
    qtest_qmp_negotiate(s);
    return s;
}

static void assert_json_eq(JsonNode *n, const char *expected)
{
    g_autoptr(JsonNode) e = json_from_string(expected, NULL);
    g_assert_nonnull(e);
    if (!n || !json_node_equal(n, e)) {
        g_autofree char *t = qtest_qmp_to_string(n);
        g_test_message("got %s, expected %s", t, expected);
        g_assert_not_reached();
    }
}

/* r is exactly {"error": {"class": cls, "desc": desc}}. Frees r. */
static void check_error(JsonNode *r, const char *cls, const char *desc)
{
    g_autofree char *e = g_strdup_printf("{\"class\": \"%s\", \"desc\": \"%s\"}", cls, desc);
    g_assert_cmpuint(json_object_get_size(json_node_get_object(r)), ==, 1);
    assert_json_eq(qtest_qmp_get(r, "error"), e);
    json_node_unref(r);
}

/* r is {"return": expected}. Frees r. */
static void check_return(JsonNode *r, const char *expected)
{
    assert_json_eq(qtest_qmp_return(r), expected);
    json_node_unref(r);
}

/* Element i of array node a (borrowed). */
static JsonNode *elem(JsonNode *a, guint i)
{
    g_assert_true(a && JSON_NODE_HOLDS_ARRAY(a));
    g_assert_cmpuint(json_array_get_length(json_node_get_array(a)), >, i);
    return json_array_get_element(json_node_get_array(a), i);
}

/* The element of array a whose member key is the string val. */
static JsonNode *find_by(JsonNode *a, const char *key, const char *val)
{
    JsonArray *arr = json_node_get_array(a);

    for (guint i = 0; i < json_array_get_length(arr); i++) {
        JsonObject *o = json_array_get_object_element(arr, i);
        if (json_object_has_member(o, key) &&
            !g_strcmp0(json_object_get_string_member(o, key), val)) {
            return json_array_get_element(arr, i);
        }
    }
    return NULL;
}

/* ---- query-pci ---- */

static void test_query_pci(void)
{
    QTestState *s = start(TWO_NICS);
    JsonNode *r = qtest_qmp(s, "{\"execute\": \"query-pci\"}");
    JsonNode *bus0 = elem(qtest_qmp_return(r), 0);
    JsonNode *devs = qtest_qmp_get(bus0, "devices");

    g_assert_nonnull(devs);
    g_assert_cmpuint(json_array_get_length(json_node_get_array(qtest_qmp_return(r))), ==, 1);
    assert_json_eq(qtest_qmp_get(bus0, "bus"), "0");
    /* QEMU 7.2, -S without firmware: every BAR unmapped (-1). */
    assert_json_eq(find_by(devs, "qdev_id", "nic0"),
        "{\"irq_pin\": 1, \"bus\": 0, \"qdev_id\": \"nic0\", \"irq\": 0, \"slot\": 2,"
        " \"class_info\": {\"class\": 512, \"desc\": \"Ethernet controller\"},"
        " \"id\": {\"device\": 4096, \"subsystem-vendor\": 6900, \"vendor\": 6900,"
        " \"subsystem\": 1}, \"function\": 0, \"regions\": ["
        "{\"bar\": 0, \"size\": 32, \"address\": -1, \"type\": \"io\"},"
        " {\"prefetch\": false, \"mem_type_64\": false, \"bar\": 1, \"size\": 4096,"
        " \"address\": -1, \"type\": \"memory\"},"
        " {\"prefetch\": true, \"mem_type_64\": true, \"bar\": 4, \"size\": 16384,"
        " \"address\": -1, \"type\": \"memory\"},"
        " {\"prefetch\": false, \"mem_type_64\": false, \"bar\": 6, \"size\": 262144,"
        " \"address\": -1, \"type\": \"memory\"}]}");
    assert_json_eq(find_by(devs, "qdev_id", "nic1"),
        "{\"irq_pin\": 1, \"bus\": 0, \"qdev_id\": \"nic1\", \"irq\": 0, \"slot\": 3,"
        " \"class_info\": {\"class\": 512, \"desc\": \"Ethernet controller\"},"
        " \"id\": {\"device\": 4110, \"subsystem-vendor\": 6900, \"vendor\": 32902,"
        " \"subsystem\": 4352}, \"function\": 0, \"regions\": ["
        "{\"prefetch\": false, \"mem_type_64\": false, \"bar\": 0, \"size\": 131072,"
        " \"address\": -1, \"type\": \"memory\"},"
        " {\"bar\": 1, \"size\": 64, \"address\": -1, \"type\": \"io\"},"
        " {\"prefetch\": false, \"mem_type_64\": false, \"bar\": 6, \"size\": 262144,"
        " \"address\": -1, \"type\": \"memory\"}]}");
    json_node_unref(r);

    check_error(qtest_qmp(s, "{\"execute\": \"query-pci\", \"arguments\": {\"x\": 1}}"),
                "GenericError", "Parameter 'x' is unexpected");
    qtest_quit(s);
}

/* ---- qom-list, qom-get ---- */

static void qom_get(QTestState *s, const char *path, const char *prop, const char *expected)
{
    check_return(qtest_qmp(s, "{\"execute\": \"qom-get\", \"arguments\": "
                              "{\"path\": \"%s\", \"property\": \"%s\"}}", path, prop),
                 expected);
}

/* qom-list of path holds each {name, type} of the NULL-ended pairs. */
static void qom_list_has(QTestState *s, const char *path, const char *const *pairs)
{
    JsonNode *r = qtest_qmp(s, "{\"execute\": \"qom-list\", \"arguments\": "
                               "{\"path\": \"%s\"}}", path);

    for (; *pairs; pairs += 2) {
        g_autofree char *e = g_strdup_printf("{\"name\": \"%s\", \"type\": \"%s\"}",
                                             pairs[0], pairs[1]);
        assert_json_eq(find_by(qtest_qmp_return(r), "name", pairs[0]), e);
    }
    json_node_unref(r);
}

static void test_qom(void)
{
    QTestState *s = start(TWO_NICS);
    static const char *const peripheral[] = { "nic0", "child<virtio-net-pci>",
                                              "nic1", "child<e1000>", NULL };
    static const char *const nic0[] = { "type", "string", "mac", "str", "netdev", "str",
                                        "mq", "bool", NULL };

    qom_list_has(s, "/machine/peripheral", peripheral);
    qom_list_has(s, "/machine/peripheral/nic0", nic0);
    qom_get(s, "/machine/peripheral/nic0", "mac", "\"52:54:00:12:34:56\"");
    qom_get(s, "/machine/peripheral/nic1", "mac", "\"52:54:00:12:34:99\"");
    qom_get(s, "/machine/peripheral/nic0", "netdev", "\"n0\"");
    qom_get(s, "/machine/peripheral/nic1", "netdev", "\"n1\"");
    qom_get(s, "/machine/peripheral/nic0", "status", "true");
    qom_get(s, "/machine/peripheral/nic0", "type", "\"virtio-net-pci\"");
    if (!qtest_target_is_qemu()) {
        qom_get(s, "/machine/peripheral/nic0", "x-queues", "1");
    }

    check_error(qtest_qmp(s, "{\"execute\": \"qom-get\", \"arguments\": "
                             "{\"path\": \"/machine/peripheral/nic0\", \"property\": \"link\"}}"),
                "GenericError", "Property 'virtio-net-pci.link' not found");
    check_error(qtest_qmp(s, "{\"execute\": \"qom-get\", \"arguments\": "
                             "{\"path\": \"/machine/peripheral/nic9\", \"property\": \"mac\"}}"),
                "DeviceNotFound", "Device '/machine/peripheral/nic9' not found");
    check_error(qtest_qmp(s, "{\"execute\": \"qom-get\", \"arguments\": "
                             "{\"path\": \"/machine/peripheral/nic0\"}}"),
                "GenericError", "Parameter 'property' is missing");
    check_error(qtest_qmp(s, "{\"execute\": \"qom-get\", \"arguments\": "
                             "{\"path\": 5, \"property\": \"mac\"}}"),
                "GenericError", "Invalid parameter type for 'path', expected: string");
    check_error(qtest_qmp(s, "{\"execute\": \"qom-list\", \"arguments\": {}}"),
                "GenericError", "Parameter 'path' is missing");
    check_error(qtest_qmp(s, "{\"execute\": \"qom-list\", \"arguments\": "
                             "{\"path\": \"/machine/peripheral/nix\"}}"),
                "DeviceNotFound", "Device '/machine/peripheral/nix' not found");
    check_error(qtest_qmp(s, "{\"execute\": \"qom-list\", \"arguments\": "
                             "{\"path\": \"/machine/peripheral\", \"x\": true}}"),
                "GenericError", "Parameter 'x' is unexpected");
    qtest_quit(s);
}

/* ---- human-monitor-command ---- */

static void hmp(QTestState *s, const char *line, const char *expected)
{
    check_return(qtest_qmp(s, "{\"execute\": \"human-monitor-command\", \"arguments\": "
                              "{\"command-line\": \"%s\"}}", line),
                 expected);
}

static void test_hmp_info_network(void)
{
    QTestState *s = start(TWO_NICS);

    hmp(s, "info network",
        "\"nic0: index=0,type=nic,model=virtio-net-pci,macaddr=52:54:00:12:34:56\\r\\n"
        " \\\\ n0: index=0,type=user,net=10.0.2.0,restrict=off\\r\\n"
        "nic1: index=0,type=nic,model=e1000,macaddr=52:54:00:12:34:99\\r\\n"
        " \\\\ n1: index=0,type=user,net=10.0.2.0,restrict=off\\r\\n\"");
    hmp(s, "info  network ",
        "\"nic0: index=0,type=nic,model=virtio-net-pci,macaddr=52:54:00:12:34:56\\r\\n"
        " \\\\ n0: index=0,type=user,net=10.0.2.0,restrict=off\\r\\n"
        "nic1: index=0,type=nic,model=e1000,macaddr=52:54:00:12:34:99\\r\\n"
        " \\\\ n1: index=0,type=user,net=10.0.2.0,restrict=off\\r\\n\"");
    hmp(s, "info network x", "\"network: extraneous characters at the end of line\\r\\n"
                             "Try \\\"help info network\\\" for more information\\r\\n\"");
    hmp(s, "", "\"\"");

    check_error(qtest_qmp(s, "{\"execute\": \"human-monitor-command\", \"arguments\": {}}"),
                "GenericError", "Parameter 'command-line' is missing");
    check_error(qtest_qmp(s, "{\"execute\": \"human-monitor-command\", \"arguments\": "
                             "{\"command-line\": 5}}"),
                "GenericError", "Invalid parameter type for 'command-line', expected: string");
    check_error(qtest_qmp(s, "{\"execute\": \"human-monitor-command\", \"arguments\": "
                             "{\"command-line\": \"info network\", \"cpu-index\": \"a\"}}"),
                "GenericError", "Invalid parameter type for 'cpu-index', expected: integer");
    check_error(qtest_qmp(s, "{\"execute\": \"human-monitor-command\", \"arguments\": "
                             "{\"command-line\": \"info network\", \"x\": 1}}"),
                "GenericError", "Parameter 'x' is unexpected");
    if (!qtest_target_is_qemu()) {
        check_error(qtest_qmp(s, "{\"execute\": \"human-monitor-command\", \"arguments\": "
                                 "{\"command-line\": \"info status\"}}"),
                    "GenericError", "HMP command 'info status' is not available: qnic-vmm's "
                    "human-monitor-command runs 'info network' only");
    }
    qtest_quit(s);
}

/* ---- query-netdev-stats (qnic's own) ---- */

static int udp_socket(struct sockaddr_in *a)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    socklen_t l = sizeof(*a);

    g_assert_cmpint(fd, >=, 0);
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a->sin_port = 0;
    g_assert_cmpint(bind(fd, (struct sockaddr *)a, sizeof(*a)), ==, 0);
    g_assert_cmpint(getsockname(fd, (struct sockaddr *)a, &l), ==, 0);
    return fd;
}

/* A VM with -device DEVICE on a UDP socket netdev n0 whose peer is *pfd
 * (the test's socket); *local is the netdev's own address. */
static QTestState *start_udp(const char *device, int *pfd, struct sockaddr_in *local)
{
    struct sockaddr_in peer;
    int lfd = udp_socket(local);
    g_autofree char *args = NULL;

    *pfd = udp_socket(&peer);
    /* the netdev's port: take a free one and hand it over */
    close(lfd);
    args = g_strdup_printf("-netdev socket,id=n0,udp=127.0.0.1:%d,localaddr=127.0.0.1:%d "
                           "-device %s", ntohs(peer.sin_port), ntohs(local->sin_port), device);
    return start(args);
}

/* Poll until the netdev's queue 0 "tx" equals expected (the netdev reads
 * its socket in qnic-vmm's main loop). */
static void wait_tx(QTestState *s, const char *expected)
{
    g_autoptr(JsonNode) e = json_from_string(expected, NULL);

    for (int i = 0; i < 500; i++) {
        JsonNode *r = qtest_qmp(s, "{\"execute\": \"query-netdev-stats\", "
                                   "\"arguments\": {\"id\": \"n0\"}}");
        JsonNode *q0 = elem(qtest_qmp_get(elem(qtest_qmp_return(r), 0), "queues"), 0);
        bool ok = json_node_equal(qtest_qmp_get(q0, "tx"), e);
        if (ok || i == 499) {
            assert_json_eq(qtest_qmp_get(q0, "tx"), expected);
        }
        json_node_unref(r);
        if (ok) {
            return;
        }
        g_usleep(10000);
    }
}

static void set_link(QTestState *s, bool up)
{
    check_return(qtest_qmp(s, "{\"execute\": \"set_link\", \"arguments\": "
                              "{\"name\": \"n0\", \"up\": %s}}", up ? "true" : "false"), "{}");
}

/* Hubs first, as QEMU 7.2 lists them (newest hub and newest port first):
 * a port's NIC or plugged netdev after the port's name, a port with nothing
 * plugged in alone; then the rest as usual. */
static void test_hmp_info_network_hubs(void)
{
    QTestState *s = start("-netdev hubport,id=hp0,hubid=0 -netdev hubport,id=hp1,hubid=0 "
                          "-device e1000,netdev=hp0,id=nic0,mac=52:54:00:12:34:57 "
                          "-netdev user,id=u0 -netdev hubport,id=hp2,hubid=1,netdev=u0 "
                          "-netdev hubport,id=hp3,hubid=1 "
                          "-device rtl8139,netdev=hp3,id=nic1,mac=52:54:00:12:34:58 "
                          "-netdev user,id=u1 "
                          "-device virtio-net-pci,netdev=u1,id=nic2,mac=52:54:00:12:34:59");

    hmp(s, "info network",
        "\"hub 1\\r\\n"
        " \\\\ hp3: nic1: index=0,type=nic,model=rtl8139,macaddr=52:54:00:12:34:58\\r\\n"
        " \\\\ hp2: u0: index=0,type=user,net=10.0.2.0,restrict=off\\r\\n"
        "hub 0\\r\\n"
        " \\\\ hp1\\r\\n"
        " \\\\ hp0: nic0: index=0,type=nic,model=e1000,macaddr=52:54:00:12:34:57\\r\\n"
        "nic2: index=0,type=nic,model=virtio-net-pci,macaddr=52:54:00:12:34:59\\r\\n"
        " \\\\ u1: index=0,type=user,net=10.0.2.0,restrict=off\\r\\n\"");
    qtest_quit(s);
}

static void test_netdev_stats(void)
{
    struct sockaddr_in local;
    int pfd;
    char frame[60] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0, 1, 2, 3 };
    QTestState *s = start_udp("virtio-net-pci,netdev=n0,id=nic0", &pfd, &local);

    if (qtest_target_is_qemu()) {
        check_error(qtest_qmp(s, "{\"execute\": \"query-netdev-stats\"}"),
                    "CommandNotFound", "The command query-netdev-stats has not been found");
        qtest_quit(s);
        close(pfd);
        return;
    }
    check_return(qtest_qmp(s, "{\"execute\": \"query-netdev-stats\"}"),
        "[{\"id\": \"n0\", \"type\": \"socket\", \"queues\": [{\"queue\": 0,"
        " \"tx\": {\"frames\": 0, \"bytes\": 0, \"drops\": 0, \"backpressure\": 0},"
        " \"rx\": {\"frames\": 0, \"bytes\": 0, \"drops\": 0, \"backpressure\": 0}}]}]");
    /* The netdev's link down: its frames are dropped. */
    set_link(s, false);
    g_assert_cmpint(sendto(pfd, frame, sizeof(frame), 0, (struct sockaddr *)&local,
                           sizeof(local)), ==, sizeof(frame));
    wait_tx(s, "{\"frames\": 0, \"bytes\": 0, \"drops\": 1, \"backpressure\": 0}");
    /* Up, but no driver: virtio-net cannot take it, so the frame waits
     * queued (and the netdev stops reading until it goes). */
    set_link(s, true);
    g_assert_cmpint(sendto(pfd, frame, sizeof(frame), 0, (struct sockaddr *)&local,
                           sizeof(local)), ==, sizeof(frame));
    wait_tx(s, "{\"frames\": 1, \"bytes\": 60, \"drops\": 1, \"backpressure\": 1}");

    check_error(qtest_qmp(s, "{\"execute\": \"query-netdev-stats\", \"arguments\": "
                             "{\"id\": \"nope\"}}"),
                "DeviceNotFound", "Device 'nope' not found");
    check_error(qtest_qmp(s, "{\"execute\": \"query-netdev-stats\", \"arguments\": "
                             "{\"id\": 1}}"),
                "GenericError", "Invalid parameter type for 'id', expected: string");
    check_error(qtest_qmp(s, "{\"execute\": \"query-netdev-stats\", \"arguments\": "
                             "{\"x\": 1}}"),
                "GenericError", "Parameter 'x' is unexpected");
    qtest_quit(s);
    close(pfd);
}

/* ---- NETDEV_STREAM_CONNECTED / _DISCONNECTED ---- */

/* The event's data equals expected. */
static void expect_event(QTestState *s, const char *name, const char *expected)
{
    JsonNode *ev = qtest_qmp_event(s, name, 10000);

    g_assert_nonnull(ev);
    assert_json_eq(qtest_qmp_get(ev, "data"), expected);
    json_node_unref(ev);
}

static void test_stream_events_inet(void)
{
    struct sockaddr_in a;
    int fd = udp_socket(&a);    /* a free port number for the server */
    socklen_t l = sizeof(a);
    g_autofree char *args = NULL, *data = NULL;
    QTestState *s;

    close(fd);
    args = g_strdup_printf("-netdev stream,id=n0,server=on,addr.type=inet,"
                           "addr.host=127.0.0.1,addr.port=%d -device e1000,netdev=n0",
                           ntohs(a.sin_port));
    s = start(args);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    g_assert_cmpint(connect(fd, (struct sockaddr *)&a, sizeof(a)), ==, 0);
    g_assert_cmpint(getsockname(fd, (struct sockaddr *)&a, &l), ==, 0);
    /* QEMU 7.2: the peer's address, the port as a string */
    data = g_strdup_printf("{\"netdev-id\": \"n0\", \"addr\": {\"port\": \"%d\", \"ipv4\": true,"
                           " \"host\": \"127.0.0.1\", \"type\": \"inet\"}}", ntohs(a.sin_port));
    expect_event(s, "NETDEV_STREAM_CONNECTED", data);
    close(fd);
    expect_event(s, "NETDEV_STREAM_DISCONNECTED", "{\"netdev-id\": \"n0\"}");
    qtest_quit(s);
}

static void test_stream_events_unix(void)
{
    g_autofree char *dir = g_dir_make_tmp("qmp-query-XXXXXX", NULL);
    g_autofree char *path = g_build_filename(dir, "s", NULL);
    g_autofree char *args = g_strdup_printf("-netdev stream,id=n0,server=on,addr.type=unix,"
                                            "addr.path=%s -device e1000,netdev=n0", path);
    g_autofree char *data = g_strdup_printf("{\"netdev-id\": \"n0\", \"addr\": "
                                            "{\"path\": \"%s\", \"type\": \"unix\"}}", path);
    struct sockaddr_un un = { .sun_family = AF_UNIX };
    QTestState *s = start(args);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);

    g_strlcpy(un.sun_path, path, sizeof(un.sun_path));
    g_assert_cmpint(connect(fd, (struct sockaddr *)&un, sizeof(un)), ==, 0);
    /* QEMU 7.2: the socket's path (its client has no name) */
    expect_event(s, "NETDEV_STREAM_CONNECTED", data);
    close(fd);
    expect_event(s, "NETDEV_STREAM_DISCONNECTED", "{\"netdev-id\": \"n0\"}");
    qtest_quit(s);
    unlink(path);
    rmdir(dir);
}

/* ---- announce-self ---- */

/* The next frame on fd within timeout_ms is the RARP request announcing
 * mac; false if none came. */
static bool recv_rarp(int fd, const uint8_t mac[6], int timeout_ms)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    uint8_t f[128];
    ssize_t n;

    if (poll(&p, 1, timeout_ms) != 1) {
        return false;
    }
    n = recv(fd, f, sizeof(f), 0);
    g_assert_cmpint(n, ==, 60);
    for (int i = 0; i < 6; i++) {
        g_assert_cmpuint(f[i], ==, 0xff);
    }
    g_assert_cmpmem(f + 6, 6, mac, 6);
    g_assert_cmpuint(f[12] << 8 | f[13], ==, 0x8035);
    g_assert_cmpuint(f[20] << 8 | f[21], ==, 3);    /* reverse request */
    g_assert_cmpmem(f + 22, 6, mac, 6);
    g_assert_cmpmem(f + 32, 6, mac, 6);
    return true;
}

/* qnic (-accel qtest) runs its timers on a manual clock; QEMU (TCG, a
 * running VM) on real time, which recv_rarp's wait lets pass. */
static void step_ms(QTestState *s, int64_t ms)
{
    if (!qtest_target_is_qemu()) {
        qtest_clock_step(s, ms * 1000000);
    }
}

static void test_announce_self(void)
{
    static const uint8_t mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x99 };
    struct sockaddr_in local;
    int pfd;
    QTestState *s = start_udp("e1000,netdev=n0,id=nic0,mac=52:54:00:12:34:99", &pfd, &local);

    /* Three rounds: now, 50 ms later, 150 ms after that (QEMU: real time;
     * qnic under qtest: its virtual clock, stepped here). */
    check_return(qtest_qmp(s, "{\"execute\": \"announce-self\", \"arguments\": {\"initial\": 50,"
                              " \"max\": 550, \"rounds\": 3, \"step\": 100}}"), "{}");
    g_assert_true(recv_rarp(pfd, mac, 5000));
    step_ms(s, 50);
    g_assert_true(recv_rarp(pfd, mac, 5000));
    step_ms(s, 150);
    g_assert_true(recv_rarp(pfd, mac, 5000));
    step_ms(s, 1000);
    g_assert_false(recv_rarp(pfd, mac, 1000));
    /* Only the interfaces named. */
    check_return(qtest_qmp(s, "{\"execute\": \"announce-self\", \"arguments\": {\"initial\": 50,"
                              " \"max\": 550, \"rounds\": 1, \"step\": 100,"
                              " \"interfaces\": [\"other\"], \"id\": \"a\"}}"), "{}");
    g_assert_false(recv_rarp(pfd, mac, 500));

    check_error(qtest_qmp(s, "{\"execute\": \"announce-self\", \"arguments\": {}}"),
                "GenericError", "Parameter 'initial' is missing");
    check_error(qtest_qmp(s, "{\"execute\": \"announce-self\", \"arguments\": {\"bogus\": 1}}"),
                "GenericError", "Parameter 'initial' is missing");
    check_error(qtest_qmp(s, "{\"execute\": \"announce-self\", \"arguments\": "
                             "{\"initial\": \"x\"}}"),
                "GenericError", "Invalid parameter type for 'initial', expected: integer");
    check_error(qtest_qmp(s, "{\"execute\": \"announce-self\", \"arguments\": {\"initial\": 1,"
                             " \"max\": 1, \"rounds\": 1, \"step\": 1, \"interfaces\": \"nic0\"}}"),
                "GenericError", "Invalid parameter type for 'interfaces', expected: array");
    check_error(qtest_qmp(s, "{\"execute\": \"announce-self\", \"arguments\": {\"initial\": 1,"
                             " \"max\": 1, \"rounds\": 1, \"step\": 1, \"x\": 1}}"),
                "GenericError", "Parameter 'x' is unexpected");
    qtest_quit(s);
    close(pfd);
}

/* virtio-net: a driver that accepted GUEST_ANNOUNCE (with the control
 * queue) is asked to announce, through the status field's ANNOUNCE bit
 * and a configuration interrupt; one that did not gets neither. */
static uint16_t announce_once(QTestState *s, VDev *d)
{
    check_return(qtest_qmp(s, "{\"execute\": \"announce-self\", \"arguments\": {\"initial\": 50,"
                              " \"max\": 550, \"rounds\": 1, \"step\": 100}}"), "{}");
    return vd_config_readw(d, offsetof(struct virtio_net_config, status));
}

static void test_announce_virtio(void)
{
    QTestState *s = start("-netdev user,id=n0 -device virtio-net-pci,netdev=n0,id=nic0,addr=4");
    uint64_t base = 1ull << VIRTIO_NET_F_MAC | 1ull << VIRTIO_NET_F_STATUS;
    uint64_t ann = 1ull << VIRTIO_NET_F_CTRL_VQ | 1ull << VIRTIO_NET_F_GUEST_ANNOUNCE;
    VDev d;

    vd_pci_init(&d, s, vd_pci_find(s, 0x1000), VD_PCI_LEGACY);
    g_assert_true(vd_negotiate(&d, base));
    vd_driver_ok(&d);
    vd_read_isr(&d);
    g_assert_cmphex(announce_once(s, &d) & VIRTIO_NET_S_ANNOUNCE, ==, 0);
    g_assert_cmphex(vd_read_isr(&d), ==, 0);

    vd_set_status(&d, 0);
    g_assert_true(vd_negotiate(&d, base | ann));
    vd_driver_ok(&d);
    vd_read_isr(&d);
    g_assert_cmphex(announce_once(s, &d) & VIRTIO_NET_S_ANNOUNCE, ==, VIRTIO_NET_S_ANNOUNCE);
    g_assert_cmphex(vd_read_isr(&d) & VIRTIO_PCI_ISR_CONFIG, ==, VIRTIO_PCI_ISR_CONFIG);
    qtest_quit(s);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/qmp-query/query-pci", test_query_pci);
    g_test_add_func("/qmp-query/qom", test_qom);
    g_test_add_func("/qmp-query/hmp-info-network", test_hmp_info_network);
    g_test_add_func("/qmp-query/hmp-info-network/hubs", test_hmp_info_network_hubs);
    g_test_add_func("/qmp-query/netdev-stats", test_netdev_stats);
    g_test_add_func("/qmp-query/announce-self", test_announce_self);
    g_test_add_func("/qmp-query/announce-self/virtio", test_announce_virtio);
    g_test_add_func("/qmp-query/stream-events/inet", test_stream_events_inet);
    g_test_add_func("/qmp-query/stream-events/unix", test_stream_events_unix);
    return g_test_run();
}
