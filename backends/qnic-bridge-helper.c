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

int main(int argc, char **argv)
{
    const char *br = NULL, *acl = NULL, *env;
    bool use_vnet = false;
    int unixfd = -1, tapfd = -1, ctl = -1, ifindex;
    AclResult res = { false, false };
    struct ifreq ifr;
    char tapname[IFNAMSIZ];

    for (int i = 1; i < argc; i++) {
        char *end;
        if (!strcmp(argv[i], "--use-vnet")) {
            use_vnet = true;
        } else if (!strncmp(argv[i], "--br=", 5)) {
            br = argv[i] + 5;
        } else if (!strncmp(argv[i], "--fd=", 5)) {
            errno = 0;
            long v = strtol(argv[i] + 5, &end, 10);
            if (errno || *end || end == argv[i] + 5 || v < 0 || v > 65535) {
                fprintf(stderr, "invalid --fd value '%s'\n", argv[i] + 5);
                return EXIT_FAILURE;
            }
            unixfd = (int)v;
        } else if (!strncmp(argv[i], "--acl=", 6)) {
            acl = argv[i] + 6;
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage();
            return EXIT_SUCCESS;
        } else {
            fprintf(stderr, "unknown argument '%s'\n", argv[i]);
            usage();
            return EXIT_FAILURE;
        }
    }
    if (!br || unixfd < 0) {
        usage();
        return EXIT_FAILURE;
    }
    if (!br[0] || strlen(br) >= IFNAMSIZ || strchr(br, '/')) {
        fprintf(stderr, "invalid bridge name '%s'\n", br);
        return EXIT_FAILURE;
    }
    if (!acl) {
        env = getenv("QNIC_BRIDGE_CONF");
        acl = env && env[0] ? env : DEFAULT_ACL_FILE;
    }

    if (!acl_apply_file(acl, br, 0, &res)) {
        fprintf(stderr, "access denied: acl file %s could not be used\n", acl);
        return EXIT_FAILURE;
    }
    if (res.denied || !res.allowed) {
        fprintf(stderr, "access denied by acl file %s for bridge %s\n", acl, br);
        return EXIT_FAILURE;
    }

    tapfd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    if (tapfd < 0) {
        fprintf(stderr, "failed to open /dev/net/tun: %s\n", strerror(errno));
        return EXIT_FAILURE;
    }
    memset(&ifr, 0, sizeof(ifr));
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
    if (use_vnet && has_vnet_hdr_support(tapfd)) {
        ifr.ifr_flags |= IFF_VNET_HDR;
    }
    snprintf(ifr.ifr_name, IFNAMSIZ, "tap%%d");
    if (ioctl(tapfd, TUNSETIFF, &ifr) < 0) {
        fprintf(stderr, "failed to create tap device: %s\n", strerror(errno));
        goto fail;
    }
    snprintf(tapname, sizeof(tapname), "%s", ifr.ifr_name);

    ctl = ctl_socket();
    if (ctl < 0) {
        goto fail;
    }
    /* The tap takes the bridge's MTU so frames that cross it fit. */
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, IFNAMSIZ, "%s", br);
    if (ioctl(ctl, SIOCGIFMTU, &ifr) < 0) {
        fprintf(stderr, "failed to get mtu of bridge %s: %s\n", br, strerror(errno));
        goto fail;
    }
    snprintf(ifr.ifr_name, IFNAMSIZ, "%s", tapname);
    if (ioctl(ctl, SIOCSIFMTU, &ifr) < 0) {
        fprintf(stderr, "failed to set mtu of %s: %s\n", tapname, strerror(errno));
        goto fail;
    }
    /* A bridge takes the lowest MAC of its ports: give the tap a high one
     * so that attaching it does not change the bridge's address. */
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, IFNAMSIZ, "%s", tapname);
    if (ioctl(ctl, SIOCGIFHWADDR, &ifr) == 0) {
        ifr.ifr_hwaddr.sa_data[0] = (char)0xfe;
        if (ioctl(ctl, SIOCSIFHWADDR, &ifr) < 0) {
            fprintf(stderr, "failed to set mac address of %s: %s\n", tapname, strerror(errno));
            goto fail;
        }
    }
    ifindex = if_nametoindex(tapname);
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, IFNAMSIZ, "%s", br);
    ifr.ifr_ifindex = ifindex;
    if (ifindex == 0 || ioctl(ctl, SIOCBRADDIF, &ifr) < 0) {
        fprintf(stderr, "failed to add %s to bridge %s: %s\n", tapname, br, strerror(errno));
        goto fail;
    }
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, IFNAMSIZ, "%s", tapname);
    if (ioctl(ctl, SIOCGIFFLAGS, &ifr) < 0) {
        fprintf(stderr, "failed to get flags of %s: %s\n", tapname, strerror(errno));
        goto fail;
    }
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(ctl, SIOCSIFFLAGS, &ifr) < 0) {
        fprintf(stderr, "failed to bring up %s: %s\n", tapname, strerror(errno));
        goto fail;
    }
    if (!send_fd(unixfd, tapfd)) {
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
