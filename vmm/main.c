/*
 * qnic-vmm's command line: the subset of QEMU's options that qnic supports,
 * spelled and checked as QEMU 7.2 does (`-netdev`, `-device`, `-nic`,
 * `-net`, `-object`, `-machine`, `-accel`, `-m`, `-smp`, ...), including the
 * `help` listings. Every -netdev/-device/-object string is checked against
 * the schema while the command line is read, so a typo is reported as
 * "qnic-vmm: -netdev tap,queues=x: Parameter 'queues' expects a number"
 * (exit 1) before any accelerator or device exists. Then it builds the
 * QnicVmmConfig, starts the accelerator, creates the machine, the objects,
 * netdevs, NICs and devices in QEMU's order, runs, and cleans up. Register
 * layouts, KVM and the qtest protocol live elsewhere.
 */
#include "vmm/vmm.h"
#include "vmm/pc.h"
#include "qnic/log.h"
#include "qnic/schema.h"
#include "qnic/net.h"
#include "qnic/filter.h"
#include "qnic/machine.h"
#include "qnic/device.h"
#include "qnic/chardev.h"
#include "qnic-config.h"
#include "vmm/qmp.h"
#include "vmm/cmdline-net.h"
#include "vmm/migration.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define PROG "qnic-vmm"
#define DEFAULT_RAM (128ull << 20)
#define MIN_RAM (1ull << 20)
#define MAX_RAM (1ull << 40)
#define MAX_CPUS 255

typedef enum {
    OPT_MACHINE, OPT_ACCEL, OPT_ENABLE_KVM, OPT_M, OPT_SMP, OPT_NODEFAULTS,
    OPT_DISPLAY, OPT_NOGRAPHIC, OPT_MONITOR, OPT_SERIAL, OPT_S, OPT_KERNEL,
    OPT_APPEND, OPT_INITRD, OPT_BIOS, OPT_NETDEV, OPT_DEVICE, OPT_NIC, OPT_NET,
    OPT_OBJECT, OPT_QTEST, OPT_QTEST_LOG, OPT_QMP, OPT_PIDFILE, OPT_LOGFILE,
    OPT_LOG, OPT_NAME, OPT_NO_REBOOT, OPT_VERSION, OPT_HELP, OPT_CHARDEV,
    OPT_MON, OPT_INCOMING,
} OptId;

typedef struct {
    const char *name;
    bool has_arg;
    OptId id;
    const char *help;
} OptDesc;

static const OptDesc options[] = {
    { "machine", true, OPT_MACHINE, "pc[,accel=kvm|qtest]  select the machine (only 'pc')" },
    { "M", true, OPT_MACHINE, NULL },
    { "accel", true, OPT_ACCEL, "kvm|qtest            select the accelerator" },
    { "enable-kvm", false, OPT_ENABLE_KVM, "                     same as -accel kvm" },
    { "m", true, OPT_M, "[size=]N[kMGT]       guest RAM (no suffix: MiB; default 128M)" },
    { "smp", true, OPT_SMP, "[cpus=]N[,maxcpus=,sockets=,cores=,threads=]  vCPUs" },
    { "nodefaults", false, OPT_NODEFAULTS, "                     create no default devices" },
    { "display", true, OPT_DISPLAY, "none                 no display (the only one)" },
    { "nographic", false, OPT_NOGRAPHIC, "                     no display, serial on stdio" },
    { "monitor", true, OPT_MONITOR, "none                 no monitor (the only one)" },
    { "serial", true, OPT_SERIAL, "none|stdio|file:PATH the COM1 serial port" },
    { "S", false, OPT_S, "                     do not start the vCPUs at startup" },
    { "kernel", true, OPT_KERNEL, "FILE                 PVH ELF or Linux bzImage to boot" },
    { "append", true, OPT_APPEND, "CMDLINE              kernel command line" },
    { "initrd", true, OPT_INITRD, "FILE                 initial ram disk" },
    { "bios", true, OPT_BIOS, "FILE                 accepted and ignored" },
    { "netdev", true, OPT_NETDEV, "TYPE,id=ID[,...]     a network backend (-netdev help)" },
    { "device", true, OPT_DEVICE, "MODEL[,...]          a device (-device help, -device MODEL,help)" },
    { "nic", true, OPT_NIC, "[TYPE][,model=M][,...]  a NIC and its backend in one" },
    { "net", true, OPT_NET, "nic|TYPE[,...]       legacy networking on hub 0" },
    { "object", true, OPT_OBJECT, "TYPE,id=ID[,...]     an object such as filter-dump" },
    { "chardev", true, OPT_CHARDEV, "socket,id=ID,path=P[,server=on][,wait=off][,reconnect=N]  for vhost-user" },
    { "qtest", true, OPT_QTEST, "unix:PATH|stdio      qtest protocol channel" },
    { "qtest-log", true, OPT_QTEST_LOG, "FILE                 log of the qtest protocol" },
    { "qmp", true, OPT_QMP, "unix:PATH[,server=on][,wait=off]|chardev:ID  QMP monitor (docs/qmp.md)" },
    { "mon", true, OPT_MON, "chardev=ID,mode=control  QMP monitor on a -chardev" },
    { "incoming", true, OPT_INCOMING, "URI|defer            wait for an incoming migration (docs/migration.md)" },
    { "pidfile", true, OPT_PIDFILE, "FILE                 write the process id to FILE" },
    { "D", true, OPT_LOGFILE, "FILE                 write -d logs to FILE" },
    { "d", true, OPT_LOG, "ITEM[,...]           enable log items (-d help)" },
    { "name", true, OPT_NAME, "NAME                 accepted and ignored" },
    { "no-reboot", false, OPT_NO_REBOOT, "                     exit instead of rebooting the guest" },
    { "version", false, OPT_VERSION, "                     print the version" },
    { "h", false, OPT_HELP, NULL },
    { "help", false, OPT_HELP, "                     print this help" },
};

/* QEMU options qnic knows of but does not implement: said so, not "invalid". */
static const char *const unsupported_options[] = {
    "cpu", "drive", "hda", "hdb", "hdc", "hdd", "cdrom", "fda", "fdb", "boot",
    "vga", "usb", "usbdevice", "global", "rtc", "icount", "snapshot",
    "fsdev", "virtfs", "audiodev", "soundhw", "spice", "vnc",
    "loadvm", "daemonize", "runas", "chroot", "sandbox", "trace", "plugin",
    "msg", "overcommit", "mem-prealloc", "mem-path", "numa", "L", "k", "g",
    "full-screen", "no-hpet", "no-acpi", "no-shutdown", "action", "watchdog",
    "watchdog-action", "parallel", "debugcon", "mon", "semihosting", "gdb", "s",
    "singlestep", "dtb", "acpitable", "smbios", "fw_cfg", "option-rom",
    "portrait", "rotate", "add-fd", "readconfig", "writeconfig", "nodefconfig",
    "no-user-config", "iscsi", "set", "tpmdev", "blockdev", "pflash", "mtdblock",
    "sd", "compat", "preconfig", "xen-domid", "uuid", "device-tree", "alt-grab",
    "ctrl-grab", "sdl", "curses", "win2k-hack", "no-fd-bootchk", "no-quit",
    "enable-sync-profile", "echr", "virtioconsole", "show-cursor", "tb-size",
    "localtime", "old-param", "prom-env", "bt", "list-cpus", "async-teardown",
};

typedef struct {
    QnicVmmConfig cfg;
    bool nographic;
    bool serial_given;
    char *pidfile_written;          /* unlinked at exit */
    char *accel_error;              /* first unusable accelerator, reported if none is usable */
    GHashTable *netdev_ids, *device_ids, *object_ids;   /* owned keys */
    GPtrArray *chardevs;            /* -chardev strings, created before netdevs */
    GPtrArray *owned;               /* strings made here (the -qmp chardevs) */
    GHashTable *chardev_ids;
    GPtrArray *memdevs;             /* QnicOpts *: memory-backend-memfd objects */
    const char *memory_backend;     /* -machine memory-backend=ID */
    bool m_given;
    bool help_printed;              /* creating an option printed help: exit 0 */
    const char *incoming;           /* -incoming URI|defer */
} Cmdline;

/* Result of handling one option. */
typedef enum { RES_OK, RES_EXIT0, RES_ERROR } Result;

static void usage(void)
{
    printf("usage: " PROG " [options]\n\n"
           "A minimal KVM VMM for qnic's network devices, with QEMU's option syntax.\n\n");
    for (size_t i = 0; i < QNIC_ARRAY_SIZE(options); i++) {
        if (options[i].help) {
            printf("-%-12s %s\n", options[i].name, options[i].help);
        }
    }
    printf("\nSee docs/cmdline.md and docs/options.md.\n");
}

/* "qnic-vmm: -opt arg: message", or "qnic-vmm: -opt: message" without arg. */
static Result opt_error(const char *opt, const char *arg, GError *err)
{
    if (arg) {
        qnic_report("-%s %s: %s", opt, arg, err->message);
    } else {
        qnic_report("-%s: %s", opt, err->message);
    }
    g_error_free(err);
    return RES_ERROR;
}

/* A library call failed: help printed (exit 0) or an error. */
static Result opt_result(const char *opt, const char *arg, GError *err)
{
    if (qnic_error_is_help(err)) {
        g_error_free(err);
        return RES_EXIT0;
    }
    return opt_error(opt, arg, err);
}

#define OPT_FAIL(opt, arg, ...) ({ \
    GError *e_ = NULL; \
    qnic_error_setg_invalid(&e_, __VA_ARGS__); \
    opt_error((opt), (arg), e_); })

/* Known keys of an option group with free-form values: anything else is an
 * "Invalid parameter". */
static bool only_keys(const QnicOpts *o, const char *const *keys, GError **errp)
{
    for (guint i = 0; i < o->items->len; i++) {
        const QnicOpt *opt = g_ptr_array_index(o->items, i);
        bool known = false;
        for (const char *const *k = keys; *k && !known; k++) {
            known = strcmp(*k, opt->key) == 0;
        }
        if (!known) {
            qnic_error_setg_invalid(errp, "Invalid parameter '%s'", opt->key);
            return false;
        }
    }
    return true;
}

/*
 * Accelerators are tried in the order given (-accel A -accel B, accel=A:B),
 * as QEMU does: the first one qnic has wins, later ones are ignored. Only
 * when none is usable is the first unusable one reported.
 */
static void add_accels(Cmdline *c, const char *opt, const char *arg, const char *list)
{
    g_auto(GStrv) names = g_strsplit(list, ":", -1);

    for (int i = 0; names[i]; i++) {
        if (c->cfg.accel) {
            return;
        }
        if (strcmp(names[i], "kvm") == 0 || strcmp(names[i], "qtest") == 0) {
            c->cfg.accel = strcmp(names[i], "kvm") == 0 ? "kvm" : "qtest";
        } else if (!c->accel_error) {
            c->accel_error = g_strdup_printf("-%s %s: accelerator '%s' is not supported by "
                                             "qnic (supported: kvm, qtest)", opt, arg, names[i]);
        }
    }
}

static Result handle_machine(Cmdline *c, const char *arg)
{
    static const char *const keys[] = {
        "type", "accel", "usb", "graphics", "dump-guest-core", "mem-merge",
        "kernel-irqchip", "vmport", "hpet", "smm", "memory-backend", NULL,
    };
    static const char *const qemu_machines[] = {
        "q35", "microvm", "isapc", "none", "x-remote", "xenfv", "xenpv",
    };
    GError *err = NULL;
    g_autoptr(QnicOpts) o = qnic_opts_parse("machine", arg, "type", &err);
    const char *type, *accel;

    if (!o) {
        return opt_error("machine", arg, err);
    }
    type = qnic_opts_get(o, "type");
    if (qnic_opts_has_help(o)) {
        printf("Supported machines are:\n"
               "pc                   Standard PC (i440FX + PIIX, 1996) (default)\n"
               "pc-i440fx-7.2        Standard PC (i440FX + PIIX, 1996) (alias of pc)\n");
        return RES_EXIT0;
    }
    if (!only_keys(o, keys, &err)) {
        return opt_error("machine", arg, err);
    }
    if (type) {
        if (strcmp(type, "pc") == 0 || g_str_has_prefix(type, "pc-i440fx-") ||
            strcmp(type, "pc-i440fx") == 0) {
            c->cfg.machine = "pc";
        } else {
            bool known = g_str_has_prefix(type, "pc-q35-");
            for (size_t i = 0; i < QNIC_ARRAY_SIZE(qemu_machines); i++) {
                known |= strcmp(type, qemu_machines[i]) == 0;
            }
            if (known) {
                return OPT_FAIL("machine", arg, "machine type '%s' is not supported by qnic "
                                "(use -machine pc)", type);
            }
            return OPT_FAIL("machine", arg, "unsupported machine type '%s'\n"
                            "Use -machine help to list supported machines", type);
        }
    }
    accel = qnic_opts_get(o, "accel");
    if (accel) {
        add_accels(c, "machine", arg, accel);
    }
    if (qnic_opts_get(o, "memory-backend")) {
        /* arg outlives the parse: keep a pointer into argv's copy */
        c->memory_backend = g_intern_string(qnic_opts_get(o, "memory-backend"));
    }
    return RES_OK;
}

static Result handle_accel(Cmdline *c, const char *arg)
{
    static const char *const keys[] = { "accel", "kernel-irqchip", "thread", NULL };
    GError *err = NULL;
    g_autoptr(QnicOpts) o = qnic_opts_parse("accel", arg, "accel", &err);
    const char *accel;

    if (!o) {
        return opt_error("accel", arg, err);
    }
    if (qnic_opts_has_help(o) || g_strcmp0(qnic_opts_get(o, "accel"), "help") == 0) {
        printf("Accelerators supported in qnic-vmm:\nkvm\nqtest\n");
        return RES_EXIT0;
    }
    if (!only_keys(o, keys, &err)) {
        return opt_error("accel", arg, err);
    }
    accel = qnic_opts_get(o, "accel");
    if (!accel) {
        return OPT_FAIL("accel", arg, "Parameter 'accel' is missing");
    }
    add_accels(c, "accel", arg, accel);
    return RES_OK;
}

static Result handle_m(Cmdline *c, const char *arg)
{
    static const char *const keys[] = { "size", "slots", "maxmem", NULL };
    GError *err = NULL;
    g_autoptr(QnicOpts) o = qnic_opts_parse("memory", arg, "size", &err);
    g_autofree char *withunit = NULL;
    const char *size;
    uint64_t bytes;

    if (!o) {
        return opt_error("m", arg, err);
    }
    if (!only_keys(o, keys, &err)) {
        return opt_error("m", arg, err);
    }
    if (qnic_opts_get(o, "slots") || qnic_opts_get(o, "maxmem")) {
        return OPT_FAIL("m", arg, "memory hotplug (slots, maxmem) is not supported by qnic");
    }
    size = qnic_opts_get(o, "size");
    if (!size) {
        return OPT_FAIL("m", arg, "Parameter 'size' is missing");
    }
    /* QEMU reads a bare number as MiB. */
    if (size[0] && g_ascii_isdigit(size[strlen(size) - 1]) &&
        !(size[0] == '0' && (size[1] == 'x' || size[1] == 'X'))) {
        withunit = g_strconcat(size, "M", NULL);
    }
    if (!qnic_parse_size(withunit ? withunit : size, &bytes, NULL)) {
        return OPT_FAIL("m", arg, "Parameter 'size' expects a size value, e.g. 256M or 1G "
                        "(no suffix: MiB)");
    }
    if (bytes < MIN_RAM) {
        return OPT_FAIL("m", arg, "ram size too small (at least 1M)");
    }
    if (bytes > MAX_RAM) {
        return OPT_FAIL("m", arg, "ram size too large (qnic-vmm supports up to 1T)");
    }
    c->cfg.ram_size = QNIC_ALIGN_UP(bytes, 4096);
    c->m_given = true;
    return RES_OK;
}

static Result handle_smp(Cmdline *c, const char *arg)
{
    static const char *const keys[] = {
        "cpus", "maxcpus", "sockets", "dies", "clusters", "cores", "threads", NULL,
    };
    GError *err = NULL;
    g_autoptr(QnicOpts) o = qnic_opts_parse("smp-opts", arg, "cpus", &err);
    uint64_t v[7];
    uint64_t cpus, topo = 1, maxcpus;

    if (!o) {
        return opt_error("smp", arg, err);
    }
    if (!only_keys(o, keys, &err)) {
        return opt_error("smp", arg, err);
    }
    for (int i = 0; keys[i]; i++) {
        const char *s = qnic_opts_get(o, keys[i]);
        v[i] = 0;
        if (s && !qnic_parse_uint(s, &v[i], NULL)) {
            return OPT_FAIL("smp", arg, "Parameter '%s' expects a number", keys[i]);
        }
        if (s && v[i] > 4096) {
            return OPT_FAIL("smp", arg, "Parameter '%s' is too large", keys[i]);
        }
        if (i >= 2 && s) {
            if (v[i] == 0) {
                return OPT_FAIL("smp", arg, "Parameter '%s' must be at least 1", keys[i]);
            }
            topo *= v[i];
        }
    }
    if (qnic_opts_get(o, "cpus") && v[0] == 0) {
        /* QEMU 7.2 still accepts 0 as "not given", with this warning */
        qnic_warn("Deprecated CPU topology (considered invalid): CPU topology parameters "
                  "must be greater than zero");
    }
    cpus = v[0] ? v[0] : topo;
    maxcpus = v[1] ? v[1] : cpus;
    if (cpus == 0 || cpus > MAX_CPUS) {
        return OPT_FAIL("smp", arg, "Invalid SMP CPUs %" G_GUINT64_FORMAT
                        ": machine 'pc' supports 1 to %d", cpus, MAX_CPUS);
    }
    if (maxcpus < cpus) {
        return OPT_FAIL("smp", arg, "maxcpus must be equal to or greater than smp");
    }
    c->cfg.smp = (unsigned)cpus;
    return RES_OK;
}

static Result handle_serial(Cmdline *c, const char *arg)
{
    const char *val;

    if (strcmp(arg, "none") == 0 || strcmp(arg, "null") == 0) {
        val = "none";
    } else if (strcmp(arg, "stdio") == 0 || strcmp(arg, "mon:stdio") == 0) {
        val = "stdio";
    } else if (g_str_has_prefix(arg, "file:") && arg[5]) {
        val = arg;
    } else if (strcmp(arg, "help") == 0) {
        printf("Serial backends supported by qnic-vmm:\nnone\nnull\nstdio\nmon:stdio\nfile:PATH\n");
        return RES_EXIT0;
    } else {
        return OPT_FAIL("serial", arg, "serial backend '%s' is not supported by qnic "
                        "(use none, stdio or file:PATH)", arg);
    }
    if (c->serial_given && strcmp(val, "none") != 0 && strcmp(c->cfg.serial, "none") != 0) {
        return OPT_FAIL("serial", arg, "more than one serial port is not supported by qnic");
    }
    if (!c->serial_given || strcmp(val, "none") != 0) {
        c->cfg.serial = val;
    }
    c->serial_given = true;
    return RES_OK;
}

static Result handle_log(const char *arg)
{
    GError *err = NULL;

    if (strcmp(arg, "help") == 0 || strcmp(arg, "?") == 0) {
        qnic_log_set_mask_str("help", NULL);
        return RES_EXIT0;
    }
    if (!qnic_log_set_mask_str(arg, &err)) {
        return opt_error("d", arg, err);
    }
    return RES_OK;
}

static bool check_duplicate(GHashTable *ids, const char *id, const char *what, GError **errp)
{
    if (!id) {
        return true;
    }
    if (g_hash_table_contains(ids, id)) {
        qnic_error_setg_invalid(errp, "Duplicate ID '%s' for %s", id, what);
        return false;
    }
    g_hash_table_add(ids, g_strdup(id));
    return true;
}

/* -netdev: help, type, schema and duplicate ids, checked as it is read;
 * the checked options are kept for creating it. */
static Result handle_netdev(Cmdline *c, const char *arg)
{
    GError *err = NULL;
    g_autoptr(QnicOpts) o = qnic_schema_parse(QNIC_SCHEMA_NETDEV, arg, NULL, &err);

    if (!o || !check_duplicate(c->netdev_ids, qnic_opts_get(o, "id"), "netdev", &err)) {
        return opt_result("netdev", arg, err);
    }
    g_ptr_array_add(c->cfg.netdevs, g_steal_pointer(&o));
    return RES_OK;
}

static Result handle_device(Cmdline *c, const char *arg)
{
    GError *err = NULL;
    g_autoptr(QnicOpts) o = qnic_schema_parse(QNIC_SCHEMA_DEVICE, arg, NULL, &err);

    if (!o || !check_duplicate(c->device_ids, qnic_opts_get(o, "id"), "device", &err)) {
        return opt_result("device", arg, err);
    }
    g_ptr_array_add(c->cfg.devices, (gpointer)arg);
    return RES_OK;
}

static Result handle_object(Cmdline *c, const char *arg)
{
    GError *err = NULL;
    g_autoptr(QnicOpts) o = qnic_schema_parse(QNIC_SCHEMA_OBJECT, arg, NULL, &err);
    const char *type;

    if (!o || !check_duplicate(c->object_ids, qnic_opts_get(o, "id"), "object", &err)) {
        return opt_result("object", arg, err);
    }
    type = qnic_opts_get(o, "qom-type");
    if (strcmp(type, "memory-backend-memfd") == 0) {
        /* qnic's RAM is always one shared memfd: check that this one
         * describes it (the size is matched with -m at the end). */
        if (!qnic_opts_get_bool(o, "share", true)) {
            return OPT_FAIL("object", arg, "share=off is not supported by qnic: guest RAM is "
                            "always a shared memfd");
        }
        if (qnic_opts_get_bool(o, "hugetlb", false) || qnic_opts_is_set(o, "hugetlbsize") ||
            qnic_opts_is_set(o, "host-nodes") ||
            (qnic_opts_is_set(o, "policy") && strcmp(qnic_opts_get(o, "policy"), "default"))) {
            return OPT_FAIL("object", arg, "memory-backend-memfd: hugetlb, hugetlbsize, "
                            "host-nodes and policy are not supported by qnic");
        }
        g_ptr_array_add(c->memdevs, g_steal_pointer(&o));
        return RES_OK;
    }
    if (strcmp(type, "x-vdpa-sim") == 0) {
        qnic_vmm_vdpa_sim_add(g_steal_pointer(&o));
        return RES_OK;
    }
    if (!qnic_filter_type_known(type)) {
        return OPT_FAIL("object", arg, "object type '%s' is not supported by qnic yet", type);
    }
    g_ptr_array_add(c->cfg.objects, (gpointer)arg);
    return RES_OK;
}

/* -nic and -net: their keys mix a netdev's and a NIC's, so they are
 * checked when they are created; only help is answered here. */
static Result handle_nic_or_net(Cmdline *c, const char *opt, const char *arg, GPtrArray *list)
{
    GError *err = NULL;

    if (!qnic_cmdline_net_check(opt, arg, &err)) {
        return opt_result(opt, arg, err);
    }
    g_ptr_array_add(list, (gpointer)arg);
    return RES_OK;
}

static Result write_pidfile(Cmdline *c, const char *path)
{
    g_autofree char *pid = g_strdup_printf("%d\n", (int)getpid());
    GError *err = NULL;

    if (c->pidfile_written) {
        unlink(c->pidfile_written);
        g_clear_pointer(&c->pidfile_written, g_free);
    }
    if (!g_file_set_contents(path, pid, -1, &err)) {
        return OPT_FAIL("pidfile", path, "cannot create pid file: %s", err->message);
    }
    c->pidfile_written = g_strdup(path);
    c->cfg.pidfile = path;
    return RES_OK;
}

static Result add_chardev(Cmdline *c, const char *opt, const char *optarg, const char *str)
{
    GError *err = NULL;
    QnicOpts *o = qnic_chardev_parse(str, &err);

    if (!o || !check_duplicate(c->chardev_ids, qnic_opts_get(o, "id"), "chardev", &err)) {
        qnic_opts_free(o);
        return opt_error(opt, optarg, err);
    }
    qnic_opts_free(o);
    g_ptr_array_add(c->chardevs, (gpointer)str);
    return RES_OK;
}

/* -qmp unix:PATH[,opts] is QEMU's short form of -chardev socket,
 * id=compat_monitorN,path=PATH[,opts] plus -mon chardev=...,mode=control. */
static Result handle_qmp(Cmdline *c, const char *arg)
{
    const char *p;
    char *id, *str;
    Result r;

    if (strcmp(arg, "none") == 0) {
        return RES_OK;
    }
    if (g_str_has_prefix(arg, "chardev:")) {
        g_ptr_array_add(c->cfg.monitors, g_strdup(arg + 8));
        return RES_OK;
    }
    if (!g_str_has_prefix(arg, "unix:")) {
        return OPT_FAIL("qmp", arg, "QMP on '%s' is not supported by qnic (use unix:PATH"
                        "[,server=on][,wait=off] or chardev:ID)", arg);
    }
    p = arg + 5;
    id = g_strdup_printf("compat_monitor%u", c->cfg.monitors->len);
    str = g_strdup_printf("socket,id=%s,path=%s", id, p);
    g_ptr_array_add(c->owned, str);
    r = add_chardev(c, "qmp", arg, str);
    if (r != RES_OK) {
        g_free(id);
        return r;
    }
    g_ptr_array_add(c->cfg.monitors, id);
    return RES_OK;
}

static Result handle_mon(Cmdline *c, const char *arg)
{
    static const char *const keys[] = { "chardev", "mode", "pretty", "id", NULL };
    g_autoptr(QnicOpts) o = NULL;
    GError *err = NULL;
    const char *mode;
    bool pretty;

    o = qnic_opts_parse("mon", arg, "chardev", &err);
    if (!o || !only_keys(o, keys, &err)) {
        return opt_error("mon", arg, err);
    }
    if (!qnic_opts_get(o, "chardev")) {
        return OPT_FAIL("mon", arg, "Parameter 'chardev' is missing");
    }
    mode = qnic_opts_get(o, "mode");
    if (mode && strcmp(mode, "control") != 0) {
        return OPT_FAIL("mon", arg, "monitor mode '%s' is not supported by qnic (use "
                        "mode=control: QMP)", mode);
    }
    if (!mode) {
        return OPT_FAIL("mon", arg, "the human monitor (mode=readline, the default) is not "
                        "supported by qnic (use mode=control: QMP)");
    }
    if (qnic_opts_get(o, "pretty") && !qnic_parse_bool(qnic_opts_get(o, "pretty"), &pretty, &err)) {
        return opt_error("mon", arg, err);
    }
    g_ptr_array_add(c->cfg.monitors, g_strdup(qnic_opts_get(o, "chardev")));
    return RES_OK;
}

static Result handle_option(Cmdline *c, const OptDesc *d, const char *arg)
{
    GError *err = NULL;

    switch (d->id) {
    case OPT_MACHINE: return handle_machine(c, arg);
    case OPT_ACCEL: return handle_accel(c, arg);
    case OPT_ENABLE_KVM:
        add_accels(c, "enable-kvm", "", "kvm");
        return RES_OK;
    case OPT_M: return handle_m(c, arg);
    case OPT_SMP: return handle_smp(c, arg);
    case OPT_NODEFAULTS: c->cfg.nodefaults = true; return RES_OK;
    case OPT_DISPLAY:
        if (strcmp(arg, "help") == 0) {
            printf("Available display backend types:\nnone\n");
            return RES_EXIT0;
        }
        if (strcmp(arg, "none") != 0) {
            return OPT_FAIL("display", arg, "display '%s' is not supported by qnic (use none)", arg);
        }
        return RES_OK;
    case OPT_NOGRAPHIC: c->nographic = true; return RES_OK;
    case OPT_MONITOR:
        if (strcmp(arg, "none") != 0) {
            return OPT_FAIL("monitor", arg, "monitor '%s' is not supported by qnic "
                            "(use none, and -qmp for QMP)", arg);
        }
        return RES_OK;
    case OPT_SERIAL: return handle_serial(c, arg);
    case OPT_S: c->cfg.start_paused = true; return RES_OK;
    case OPT_KERNEL: c->cfg.kernel = arg; return RES_OK;
    case OPT_APPEND: c->cfg.append = arg; return RES_OK;
    case OPT_INITRD: c->cfg.initrd = arg; return RES_OK;
    case OPT_BIOS: c->cfg.bios = arg; return RES_OK;
    case OPT_NETDEV: return handle_netdev(c, arg);
    case OPT_DEVICE: return handle_device(c, arg);
    case OPT_NIC: return handle_nic_or_net(c, "nic", arg, c->cfg.nics);
    case OPT_NET: return handle_nic_or_net(c, "net", arg, c->cfg.nets);
    case OPT_OBJECT: return handle_object(c, arg);
    case OPT_CHARDEV: {
        QnicOpts *o;
        if (strcmp(arg, "help") == 0 || strcmp(arg, "?") == 0) {
            qnic_schema_print_list(QNIC_SCHEMA_CHARDEV, stdout);
            return RES_EXIT0;
        }
        o = qnic_chardev_parse(arg, NULL);
        if (o && qnic_opts_has_help(o)) {
            qnic_opts_free(o);
            qnic_schema_print_list(QNIC_SCHEMA_CHARDEV, stdout);
            return RES_EXIT0;
        }
        qnic_opts_free(o);
        return add_chardev(c, "chardev", arg, arg);
    }
    case OPT_QTEST: c->cfg.qtest = arg; return RES_OK;
    case OPT_QTEST_LOG: c->cfg.qtest_log = arg; return RES_OK;
    case OPT_QMP: return handle_qmp(c, arg);
    case OPT_MON: return handle_mon(c, arg);
    case OPT_INCOMING:
        if (!g_str_equal(arg, "defer") && !qnic_mig_uri_known(arg)) {
            return OPT_FAIL("incoming", arg, "Parameter 'uri' expects a valid migration protocol");
        }
        c->incoming = arg;
        return RES_OK;
    case OPT_PIDFILE: return write_pidfile(c, arg);
    case OPT_LOGFILE:
        if (!qnic_log_set_file(arg, &err)) {
            return opt_error("D", arg, err);
        }
        return RES_OK;
    case OPT_LOG: return handle_log(arg);
    case OPT_NAME: return RES_OK;
    case OPT_NO_REBOOT: c->cfg.no_reboot = true; return RES_OK;
    case OPT_VERSION:
        printf(PROG " version " QNIC_VERSION
               " (qnic network device emulation; QEMU 7.2 compatible command line)\n");
        return RES_EXIT0;
    case OPT_HELP:
        usage();
        return RES_EXIT0;
    }
    return RES_ERROR;
}

static Result parse_args(Cmdline *c, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *name;
        const OptDesc *d = NULL;
        Result r;

        if (a[0] != '-' || a[1] == '\0') {
            /* QEMU takes a lone argument as the -hda disk image */
            qnic_report("%s: disk images are not supported by qnic", a);
            return RES_ERROR;
        }
        name = a + 1 + (a[1] == '-');       /* -opt and --opt alike */
        for (size_t k = 0; k < QNIC_ARRAY_SIZE(options); k++) {
            if (strcmp(options[k].name, name) == 0) {
                d = &options[k];
                break;
            }
        }
        if (!d) {
            for (size_t k = 0; k < QNIC_ARRAY_SIZE(unsupported_options); k++) {
                if (strcmp(unsupported_options[k], name) == 0) {
                    qnic_report("-%s: not supported by qnic", name);
                    return RES_ERROR;
                }
            }
            qnic_report("-%s: invalid option", name);
            return RES_ERROR;
        }
        if (d->has_arg && i + 1 >= argc) {
            qnic_report("-%s: requires an argument", name);
            return RES_ERROR;
        }
        r = handle_option(c, d, d->has_arg ? argv[++i] : NULL);
        if (r != RES_OK) {
            return r;
        }
    }
    if (c->nographic && !c->serial_given) {
        c->cfg.serial = "stdio";
    }
    if (!c->cfg.accel && c->accel_error) {
        qnic_report("%s", c->accel_error);
        return RES_ERROR;
    }
    if (c->memory_backend) {
        const QnicOpts *mo = NULL;
        for (guint i = 0; i < c->memdevs->len; i++) {
            const QnicOpts *o = g_ptr_array_index(c->memdevs, i);
            if (g_strcmp0(qnic_opts_get(o, "id"), c->memory_backend) == 0) {
                mo = o;
            }
        }
        if (!mo) {
            qnic_report("Memory backend '%s' not found", c->memory_backend);
            return RES_ERROR;
        }
        uint64_t sz = qnic_opts_get_uint(mo, "size", 0);
        if (c->m_given && sz != c->cfg.ram_size) {
            qnic_report("Machine memory size does not match the size of the memory backend");
            return RES_ERROR;
        }
        if (sz < MIN_RAM || sz > MAX_RAM || sz % 4096) {
            qnic_report("memory-backend-memfd '%s': size must be a multiple of 4 KiB between "
                        "1M and 1T", c->memory_backend);
            return RES_ERROR;
        }
        c->cfg.ram_size = sz;
    }
    if (!c->cfg.accel) {
        /* QEMU picks qtest when -qtest is given without an accelerator */
        c->cfg.accel = c->cfg.qtest ? "qtest" : "kvm";
    }
    return RES_OK;
}

static void cmdline_init(Cmdline *c)
{
    memset(c, 0, sizeof(*c));
    c->cfg.machine = "pc";
    c->cfg.ram_size = DEFAULT_RAM;
    c->cfg.smp = 1;
    c->cfg.serial = "none";
    c->cfg.netdevs = g_ptr_array_new_with_free_func((GDestroyNotify)qnic_opts_free);
    c->cfg.devices = g_ptr_array_new();
    c->cfg.nics = g_ptr_array_new();
    c->cfg.nets = g_ptr_array_new();
    c->cfg.objects = g_ptr_array_new();
    c->netdev_ids = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    c->device_ids = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    c->object_ids = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    c->chardevs = g_ptr_array_new();
    c->owned = g_ptr_array_new_with_free_func(g_free);
    c->cfg.monitors = g_ptr_array_new_with_free_func(g_free);
    c->chardev_ids = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    c->memdevs = g_ptr_array_new_with_free_func((GDestroyNotify)qnic_opts_free);
}

static void cmdline_free(Cmdline *c)
{
    if (c->pidfile_written) {
        unlink(c->pidfile_written);
        g_free(c->pidfile_written);
    }
    g_ptr_array_free(c->cfg.netdevs, TRUE);
    g_ptr_array_free(c->cfg.devices, TRUE);
    g_ptr_array_free(c->cfg.nics, TRUE);
    g_ptr_array_free(c->cfg.nets, TRUE);
    g_ptr_array_free(c->cfg.objects, TRUE);
    g_free(c->accel_error);
    g_hash_table_destroy(c->netdev_ids);
    g_hash_table_destroy(c->device_ids);
    g_hash_table_destroy(c->object_ids);
    g_ptr_array_free(c->chardevs, TRUE);
    g_ptr_array_free(c->owned, TRUE);
    g_ptr_array_free(c->cfg.monitors, TRUE);
    g_hash_table_destroy(c->chardev_ids);
    g_ptr_array_free(c->memdevs, TRUE);
}

/* Creating what option opt (NULL: none in particular) asked for failed:
 * report it, or note that help was printed (qnic-vmm then exits 0). */
static bool create_failed(Cmdline *c, const char *opt, const char *s, GError *err)
{
    if (qnic_error_is_help(err)) {
        c->help_printed = true;
        g_error_free(err);
    } else if (opt) {
        opt_error(opt, s, err);
    } else {
        qnic_report_err(err);
    }
    return false;
}

/* QEMU's order: backends (-netdev, -nic, -net), then the objects that need
 * them (filters), then -device. */
static bool create_all(Cmdline *c, QnicMachine *m)
{
    GError *err = NULL;
    QnicVmmConfig *cfg = &c->cfg;
    QnicBackends *be = m->cfg.backends;

    qnic_vmm_vdpa_sim_install(be);
    for (guint i = 0; i < c->chardevs->len; i++) {
        const char *s = g_ptr_array_index(c->chardevs, i);
        if (!qnic_chardev_new_str(qnic_backends_chardevs(be), s, &err)) {
            return opt_error("chardev", s, err), false;
        }
    }
    for (guint i = 0; i < cfg->netdevs->len; i++) {
        QnicOpts *o = g_steal_pointer(&g_ptr_array_index(cfg->netdevs, i));
        g_autofree char *s = g_strdup(o->source);
        if (!qnic_netdev_add(be, o, &err)) {
            return create_failed(c, "netdev", s, err);
        }
    }
    for (guint i = 0; i < cfg->nics->len; i++) {
        const char *s = g_ptr_array_index(cfg->nics, i);
        if (!qnic_cmdline_nic_add(m, s, &err)) {
            return create_failed(c, "nic", s, err);
        }
    }
    for (guint i = 0; i < cfg->nets->len; i++) {
        const char *s = g_ptr_array_index(cfg->nets, i);
        if (!qnic_cmdline_net_add(s, &err)) {
            return create_failed(c, "net", s, err);
        }
    }
    if (cfg->nets->len && !qnic_cmdline_net_realize(m, &err)) {
        return create_failed(c, NULL, NULL, err);
    }
    for (guint i = 0; i < cfg->objects->len; i++) {
        const char *s = g_ptr_array_index(cfg->objects, i);
        if (!qnic_filter_add_str(be, s, &err)) {
            return opt_error("object", s, err), false;
        }
    }
    for (guint i = 0; i < cfg->devices->len; i++) {
        const char *s = g_ptr_array_index(cfg->devices, i);
        if (!qnic_device_create_str(m, s, &err)) {
            return opt_error("device", s, err), false;
        }
    }
    return true;
}

static bool add_monitors(Cmdline *c, QnicMachine *m)
{
    GError *err = NULL;

    for (guint i = 0; i < c->cfg.monitors->len; i++) {
        const char *id = g_ptr_array_index(c->cfg.monitors, i);
        QnicChardev *chr = qnic_chardev_find(qnic_backends_chardevs(m->cfg.backends), id);
        if (!chr) {
            qnic_report("QMP monitor: chardev '%s' not found", id);
            return false;
        }
        if (!qnic_qmp_monitor_add(chr, m, &err)) {
            qnic_report("QMP monitor on chardev '%s': %s", id, err->message);
            g_error_free(err);
            return false;
        }
    }
    return true;
}

int main(int argc, char **argv)
{
    Cmdline c;
    const QnicAccel *accel;
    void *accel_state = NULL;
    QnicPcBoard board = { 0 };
    QnicMachineConfig mcfg = { 0 };
    QnicMachine *m = NULL;
    GError *err = NULL;
    int status = 1;
    Result r;

    qnic_log_set_progname(PROG);
    cmdline_init(&c);
    r = parse_args(&c, argc, argv);
    if (r != RES_OK) {
        fflush(stdout);
        cmdline_free(&c);
        return r == RES_EXIT0 ? 0 : 1;
    }

    accel = strcmp(c.cfg.accel, "qtest") == 0 ? &qnic_accel_qtest : &qnic_accel_kvm;
    if (c.incoming) {
        /* the machine waits for the stream; it runs after it unless -S */
        qnic_migration_incoming(c.incoming, !c.cfg.start_paused, NULL);
        c.cfg.start_paused = true;
    }
    mcfg.ram_size = c.cfg.ram_size;
    mcfg.backends = qnic_backends_new();
    if (!accel->init(&c.cfg, &mcfg, &accel_state, &err)) {
        qnic_report_err(err);
        goto out;
    }
    m = qnic_machine_new(&mcfg, &err);
    if (!m) {
        qnic_report_err(err);
        goto out_accel;
    }
    if (!create_all(&c, m)) {
        status = c.help_printed ? 0 : 1;
        goto out_accel;
    }
    if (!qnic_pc_board_ready(&board, accel, accel_state, &c.cfg, m, &err) ||
        !accel->machine_ready(accel_state, &c.cfg, m, board.cmdline, &err)) {
        qnic_report_err(err);
        goto out_accel;
    }
    qnic_vmm_runstate_init(accel, accel_state, mcfg.backends, c.cfg.start_paused);
    qnic_vmm_set_no_reboot(c.cfg.no_reboot);
    qnic_vmm_set_board_reset(qnic_pc_board_reset, &board);
    if (accel->boots_kernel) {
        qnic_vmm_set_board_state(qnic_pc_board_save_state, qnic_pc_board_load_state, &board);
    }
    /* before the monitors greet: a client may migrate to us at once */
    qnic_migration_init(m, accel->name, accel->migration, accel_state);
    if (!add_monitors(&c, m)) {
        goto out_accel;
    }
    status = accel->run(accel_state, &c.cfg, m);

out_accel:
    qnic_migration_cleanup();
    /* devices hold netdev clients: free the machine's devices, then the rest */
    if (accel->cleanup) {
        accel->cleanup(accel_state, m);
    }
    qnic_pc_board_cleanup(&board);
    if (m) {
        qnic_machine_free(m);
    }
    qnic_qmp_monitors_free();
out:
    /* after the monitors: they hold chardevs */
    qnic_backends_free(mcfg.backends);
    qnic_vmm_vdpa_sim_cleanup();       /* after the netdevs that opened them */
    cmdline_free(&c);
    return status;
}
