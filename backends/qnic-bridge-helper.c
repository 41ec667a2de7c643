/*
 * qnic-bridge-helper: the small privileged program behind `-netdev bridge`
 * and `-netdev tap,helper=`. It creates a tap, checks that the access
 * control list allows the requested bridge, enslaves the tap to the bridge,
 * brings it up and passes the open tap fd back to its caller over the unix
 * socket given with --fd (SCM_RIGHTS), then exits. The command line is the
 * one QEMU's qemu-bridge-helper takes (--use-vnet --fd=N --br=BR), so the
 * two are interchangeable.
 *
 * ACL file: /etc/qnic/bridge.conf, or $QNIC_BRIDGE_CONF, or --acl=FILE.
 * Lines: "allow BR", "allow all", "deny BR", "deny all", "include FILE",
 * "#" comments. Nothing is allowed unless a rule allows it, and a matching
 * deny wins over any allow, wherever it appears.
 *
 * Plain libc only: a setuid/capability program should pull in as little as
 * possible.
 */
#include "qnic/fd-passing.h"
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <linux/if_tun.h>
#include <linux/sockios.h>

#define DEFAULT_ACL_FILE "/etc/qnic/bridge.conf"
#define MAX_INCLUDE_DEPTH 8
#define MAX_ACL_LINE 1024

typedef struct AclResult {
    bool allowed;
    bool denied;
} AclResult;

static void usage(void)
{
    fprintf(stderr,
            "Usage: qnic-bridge-helper [--use-vnet] --br=BRIDGE --fd=UNIXFD [--acl=FILE]\n");
}

/* Apply the rules of one file (and what it includes) to `br`. Returns false
 * if a file cannot be read or a line is malformed: the caller then refuses. */
static bool acl_apply_file(const char *path, const char *br, int depth, AclResult *res)
{
    char line[MAX_ACL_LINE];
    FILE *f;
    int lineno = 0;
    bool ok = true;

    if (depth > MAX_INCLUDE_DEPTH) {
        fprintf(stderr, "acl file %s: includes nested deeper than %d\n", path, MAX_INCLUDE_DEPTH);
        return false;
    }
    f = fopen(path, "re");
    if (!f) {
        fprintf(stderr, "failed to open acl file %s: %s\n", path, strerror(errno));
        return false;
    }
    while (ok && fgets(line, sizeof(line), f)) {
        char *p = line, *cmd, *arg, *end;

        lineno++;
        if (!strchr(line, '\n') && !feof(f)) {
            fprintf(stderr, "acl file %s:%d: line too long\n", path, lineno);
            ok = false;
            break;
        }
        while (isspace((unsigned char)*p)) {
            p++;
        }
        if (*p == '#' || *p == '\0') {
            continue;
        }
        cmd = p;
        while (*p && !isspace((unsigned char)*p)) {
            p++;
        }
        if (*p) {
            *p++ = '\0';
        }
        while (isspace((unsigned char)*p)) {
            p++;
        }
        arg = p;
        end = arg + strlen(arg);
        while (end > arg && isspace((unsigned char)end[-1])) {
            *--end = '\0';
        }
        if (!*arg) {
            fprintf(stderr, "acl file %s:%d: '%s' needs an argument\n", path, lineno, cmd);
            ok = false;
        } else if (!strcmp(cmd, "allow")) {
            if (!strcmp(arg, "all") || !strcmp(arg, br)) {
                res->allowed = true;
            }
        } else if (!strcmp(cmd, "deny")) {
            if (!strcmp(arg, "all") || !strcmp(arg, br)) {
                res->denied = true;
            }
        } else if (!strcmp(cmd, "include")) {
            ok = acl_apply_file(arg, br, depth + 1, res);
        } else {
            fprintf(stderr, "acl file %s:%d: unknown command '%s'\n", path, lineno, cmd);
            ok = false;
        }
    }
    fclose(f);
    return ok;
}

static int ctl_socket(void)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) {
        fprintf(stderr, "failed to open control socket: %s\n", strerror(errno));
    }
    return s;
}

static bool has_vnet_hdr_support(int fd)
{
    unsigned int features = 0;
    return ioctl(fd, TUNGETFEATURES, &features) == 0 && (features & IFF_VNET_HDR);
}

static bool send_fd(int sock, int fd)
{
    char data[1] = { 0 };
    struct iovec iov = { .iov_base = data, .iov_len = sizeof(data) };

    return qnic_send_fds(sock, &iov, 1, &fd, 1, 0) > 0;
}

typedef struct HelperArgs {
    const char *br;
    const char *acl;
    bool use_vnet;
    int unixfd;
} HelperArgs;

#define MAX_UNIX_FD         65535
/* The first byte of the tap's MAC: high, so that attaching it does not
 * change the bridge's address (a bridge takes the lowest of its ports'). */
#define TAP_MAC_FIRST_BYTE  0xfe

/* The command line into *a. Returns -1 to go on, else the exit status. */
static int parse_args(int argc, char **argv, HelperArgs *a)
{
    const char *env;

    for (int i = 1; i < argc; i++) {
        char *end;
        if (!strcmp(argv[i], "--use-vnet")) {
            a->use_vnet = true;
        } else if (!strncmp(argv[i], "--br=", 5)) {
            a->br = argv[i] + 5;
        } else if (!strncmp(argv[i], "--fd=", 5)) {
            errno = 0;
            long v = strtol(argv[i] + 5, &end, 10);
            if (errno || *end || end == argv[i] + 5 || v < 0 || v > MAX_UNIX_FD) {
                fprintf(stderr, "invalid --fd value '%s'\n", argv[i] + 5);
                return EXIT_FAILURE;
            }
            a->unixfd = (int)v;
        } else if (!strncmp(argv[i], "--acl=", 6)) {
            a->acl = argv[i] + 6;
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage();
            return EXIT_SUCCESS;
        } else {
            fprintf(stderr, "unknown argument '%s'\n", argv[i]);
            usage();
            return EXIT_FAILURE;
        }
    }
    if (!a->br || a->unixfd < 0) {
        usage();
        return EXIT_FAILURE;
    }
    if (!a->br[0] || strlen(a->br) >= IFNAMSIZ || strchr(a->br, '/')) {
        fprintf(stderr, "invalid bridge name '%s'\n", a->br);
        return EXIT_FAILURE;
    }
    if (!a->acl) {
        env = getenv("QNIC_BRIDGE_CONF");
        a->acl = env && env[0] ? env : DEFAULT_ACL_FILE;
    }
    return -1;
}

/* A new tap (with a vnet header when asked and supported); its name goes to
 * tapname. Returns the fd, or -1. */
static int create_tap(bool use_vnet, char *tapname)
{
    struct ifreq ifr;
    int tapfd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);

    if (tapfd < 0) {
        fprintf(stderr, "failed to open /dev/net/tun: %s\n", strerror(errno));
        return -1;
    }
    memset(&ifr, 0, sizeof(ifr));
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
    if (use_vnet && has_vnet_hdr_support(tapfd)) {
        ifr.ifr_flags |= IFF_VNET_HDR;
    }
    snprintf(ifr.ifr_name, IFNAMSIZ, "tap%%d");
    if (ioctl(tapfd, TUNSETIFF, &ifr) < 0) {
        fprintf(stderr, "failed to create tap device: %s\n", strerror(errno));
        close(tapfd);
        return -1;
    }
    snprintf(tapname, IFNAMSIZ, "%s", ifr.ifr_name);
    return tapfd;
}

/* The tap takes the bridge's MTU, so frames that cross it fit, and a high
 * MAC address. */
static bool set_tap_mtu_mac(int ctl, const char *tapname, const char *br)
{
    struct ifreq ifr;

    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, IFNAMSIZ, "%s", br);
    if (ioctl(ctl, SIOCGIFMTU, &ifr) < 0) {
        fprintf(stderr, "failed to get mtu of bridge %s: %s\n", br, strerror(errno));
        return false;
    }
    snprintf(ifr.ifr_name, IFNAMSIZ, "%s", tapname);
    if (ioctl(ctl, SIOCSIFMTU, &ifr) < 0) {
        fprintf(stderr, "failed to set mtu of %s: %s\n", tapname, strerror(errno));
        return false;
    }
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, IFNAMSIZ, "%s", tapname);
    if (ioctl(ctl, SIOCGIFHWADDR, &ifr) == 0) {
        ifr.ifr_hwaddr.sa_data[0] = (char)TAP_MAC_FIRST_BYTE;
        if (ioctl(ctl, SIOCSIFHWADDR, &ifr) < 0) {
            fprintf(stderr, "failed to set mac address of %s: %s\n", tapname, strerror(errno));
            return false;
        }
    }
    return true;
}

/* Enslave the tap to the bridge and bring it up. */
static bool attach_tap(int ctl, const char *tapname, const char *br)
{
    struct ifreq ifr;
    int ifindex = if_nametoindex(tapname);

    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, IFNAMSIZ, "%s", br);
    ifr.ifr_ifindex = ifindex;
    if (ifindex == 0 || ioctl(ctl, SIOCBRADDIF, &ifr) < 0) {
        fprintf(stderr, "failed to add %s to bridge %s: %s\n", tapname, br, strerror(errno));
        return false;
    }
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, IFNAMSIZ, "%s", tapname);
    if (ioctl(ctl, SIOCGIFFLAGS, &ifr) < 0) {
        fprintf(stderr, "failed to get flags of %s: %s\n", tapname, strerror(errno));
        return false;
    }
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(ctl, SIOCSIFFLAGS, &ifr) < 0) {
        fprintf(stderr, "failed to bring up %s: %s\n", tapname, strerror(errno));
        return false;
    }
    return true;
}

int main(int argc, char **argv)
{
    HelperArgs a = { .unixfd = -1 };
    AclResult res = { false, false };
    char tapname[IFNAMSIZ];
    int tapfd, ctl = -1;
    int rc = parse_args(argc, argv, &a);

    if (rc >= 0) {
        return rc;
    }
    if (!acl_apply_file(a.acl, a.br, 0, &res)) {
        fprintf(stderr, "access denied: acl file %s could not be used\n", a.acl);
        return EXIT_FAILURE;
    }
    if (res.denied || !res.allowed) {
        fprintf(stderr, "access denied by acl file %s for bridge %s\n", a.acl, a.br);
        return EXIT_FAILURE;
    }
    tapfd = create_tap(a.use_vnet, tapname);
    if (tapfd < 0) {
        return EXIT_FAILURE;
    }
    ctl = ctl_socket();
    if (ctl < 0 || !set_tap_mtu_mac(ctl, tapname, a.br) || !attach_tap(ctl, tapname, a.br)) {
        goto fail;
    }
    if (!send_fd(a.unixfd, tapfd)) {
        fprintf(stderr, "failed to pass the tap fd back: %s\n", strerror(errno));
        goto fail;
    }
    close(ctl);
    close(tapfd);
    return EXIT_SUCCESS;

fail:
    if (ctl >= 0) {
        close(ctl);
    }
    close(tapfd);    /* a non-persistent tap disappears with its last fd */
    return EXIT_FAILURE;
}
