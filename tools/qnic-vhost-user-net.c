/*
 * qnic-vhost-user-net: serves any qnic netdev (user, tap, socket, stream,
 * dgram, vde, l2tpv3, hubport ...) to a vhost-user frontend such as QEMU's
 * `-netdev vhost-user` or DPDK's net_virtio_user, as a vhost-user-net
 * device backend. The netdev takes the same -netdev syntax as qnic-vmm and
 * QEMU; the device side is qnic's virtio-net model (see
 * include/qnic/vhost-user-device.h and docs/vhost-user-dev.md).
 */
#include "qnic/vhost-user-device.h"
#include "qnic/net.h"
#include "qnic/mainloop.h"
#include "qnic/log.h"
#include "qnic-config.h"
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <glib-unix.h>

#define PROG "qnic-vhost-user-net"

static bool quit;
static bool once;
static QnicVhuServer *server;

static void usage(FILE *f)
{
    fprintf(f,
        "usage: " PROG " --socket PATH --netdev TYPE,id=ID,... [options]\n"
        "\n"
        "Serve a qnic netdev to a vhost-user frontend as a vhost-user-net device.\n"
        "\n"
        "  --socket PATH        Unix socket (created and listened on, unless --client)\n"
        "  --client             connect to PATH instead (retried while the peer is not\n"
        "                       listening, up to --connect-timeout)\n"
        "  --connect-timeout MS give up connecting after MS milliseconds (default 30000)\n"
        "  --netdev OPTS        the backend, as -netdev of qnic-vmm/QEMU (queues=N gives N\n"
        "                       queue pairs)\n"
        "  --device OPTS        virtio-net properties (mac=, mrg_rxbuf=, packed=, ...)\n"
        "  --once               exit when the first frontend disconnects\n"
        "  -d ITEMS             log categories (guest_errors,unimp,trace_net,trace_dev)\n"
        "  --help, --version\n");
}

static void on_disconnect(void *opaque)
{
    if (once || (server && qnic_vhu_server_failed(server))) {
        quit = true;
        qnic_main_loop_wakeup();
    }
}

static gboolean on_signal(gpointer opaque)
{
    quit = true;
    return G_SOURCE_CONTINUE;
}

static void add_signal(int sig)
{
    GSource *src = g_unix_signal_source_new(sig);

    g_source_set_callback(src, on_signal, NULL, NULL);
    g_source_attach(src, qnic_main_context());
    g_source_unref(src);
}

/* --device's properties, with the netdev's id and packed=on unless given:
 * the device offers packed rings too by default, and a frontend that does
 * not want them simply does not accept the feature. */
static char *device_opts(const char *device_str, const char *netdev_id)
{
    GString *o = g_string_new(NULL);

    if (!strstr(device_str, "netdev=")) {
        g_string_append_printf(o, "netdev=%s", netdev_id);
    }
    if (!strstr(device_str, "packed=")) {
        g_string_append_printf(o, "%spacked=on", o->len ? "," : "");
    }
    if (*device_str) {
        g_string_append_printf(o, "%s%s", o->len ? "," : "", device_str);
    }
    return g_string_free(o, FALSE);
}

#define MAX_CONNECT_TIMEOUT_MS 3600000     /* an hour */

typedef struct ToolArgs {
    const char *path;           /* --socket */
    const char *netdev_str;     /* --netdev */
    const char *device_str;     /* --device */
    QnicVhuServerConfig scfg;
} ToolArgs;

/* --connect-timeout: milliseconds, 1 to MAX_CONNECT_TIMEOUT_MS. */
static bool parse_timeout(const char *arg, QnicVhuServerConfig *scfg)
{
    char *end;
    unsigned long v = strtoul(arg, &end, 10);

    if (*end || !*arg || v == 0 || v > MAX_CONNECT_TIMEOUT_MS) {
        qnic_report("--connect-timeout %s: expects milliseconds (1..%d)", arg,
                    MAX_CONNECT_TIMEOUT_MS);
        return false;
    }
    scfg->connect_timeout_ms = v;
    return true;
}

/* The command line into *a. Returns -1 to go on, else the exit status. */
static int parse_args(int argc, char **argv, ToolArgs *a)
{
    static const struct option longopts[] = {
        { "socket", required_argument, NULL, 's' },
        { "client", no_argument, NULL, 'c' },
        { "connect-timeout", required_argument, NULL, 't' },
        { "netdev", required_argument, NULL, 'n' },
        { "device", required_argument, NULL, 'D' },
        { "once", no_argument, NULL, 'o' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    GError *err = NULL;
    int c;

    while ((c = getopt_long(argc, argv, "d:h", longopts, NULL)) != -1) {
        switch (c) {
        case 's':
            a->path = optarg;
            break;
        case 'c':
            a->scfg.client = true;
            break;
        case 't':
            if (!parse_timeout(optarg, &a->scfg)) {
                return 1;
            }
            break;
        case 'n':
            a->netdev_str = optarg;
            break;
        case 'D':
            a->device_str = optarg;
            break;
        case 'o':
            once = true;
            break;
        case 'd':
            if (!qnic_log_set_mask_str(optarg, &err)) {
                qnic_report("-d %s: %s", optarg, err->message);
                g_error_free(err);
                return 1;
            }
            if (!strcmp(optarg, "help")) {
                return 0;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf(PROG " version " QNIC_VERSION "\n");
            return 0;
        default:
            usage(stderr);
            return 1;
        }
    }
    if (optind < argc) {
        qnic_report("unexpected argument '%s' (see --help)", argv[optind]);
        return 1;
    }
    if (!a->path || !a->netdev_str) {
        qnic_report("--socket and --netdev are required (see --help)");
        return 1;
    }
    return -1;
}

/* Build the netdev, the device and the server, then serve until a signal
 * (or, with --once, the first disconnect). Returns the exit status. */
static int run(ToolArgs *a)
{
    QnicBackends *be = qnic_backends_new();
    QnicVhuDev *dev = NULL;
    QnicNetdev *nd;
    GError *err = NULL;
    g_autofree char *devopts = NULL;
    int status = 1;

    signal(SIGPIPE, SIG_IGN);
    qnic_bql_lock();
    nd = qnic_netdev_add_str(be, a->netdev_str, &err);
    if (!nd) {
        qnic_report("--netdev %s: %s", a->netdev_str, err->message);
        g_error_free(err);
        goto out;
    }
    devopts = device_opts(a->device_str, nd->id);
    dev = qnic_vhu_dev_new(be, devopts, &err);
    if (!dev) {
        qnic_report("--device %s: %s", a->device_str, err->message);
        g_error_free(err);
        goto out;
    }
    a->scfg.path = a->path;
    a->scfg.on_disconnect = on_disconnect;
    server = qnic_vhu_server_new(dev, &a->scfg, &err);
    if (!server) {
        qnic_report("--socket %s: %s", a->path, err->message);
        g_error_free(err);
        goto out;
    }
    add_signal(SIGTERM);
    add_signal(SIGINT);
    add_signal(SIGHUP);
    status = 0;
    while (!quit) {
        qnic_main_loop_iterate(true);
    }
    if (qnic_vhu_server_failed(server)) {
        status = 1;
    }

out:
    qnic_vhu_server_free(server);
    qnic_vhu_dev_free(dev);
    qnic_backends_free(be);
    qnic_bql_unlock();
    return status;
}

int main(int argc, char **argv)
{
    ToolArgs a = { .device_str = "" };
    int rc;

    qnic_log_set_progname(PROG);
    rc = parse_args(argc, argv, &a);
    return rc >= 0 ? rc : run(&a);
}
