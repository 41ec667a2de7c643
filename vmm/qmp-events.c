/*
 * QMP events that start in a backend rather than in a command: a stream
 * netdev's peer connecting and leaving, NETDEV_STREAM_CONNECTED with the
 * peer's address and NETDEV_STREAM_DISCONNECTED, in QEMU 7.2's shape. The
 * net core hands the address over as a sockaddr (it knows nothing of QMP);
 * this file makes QEMU's SocketAddress of it.
 */
#include "vmm/qmp-int.h"
#include "qnic/net.h"

#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/un.h>

/* QEMU's SocketAddress: inet {host, port (a string), ipv4/ipv6: true},
 * unix {path}. */
static JsonObject *socket_address(const struct sockaddr_storage *ss)
{
    JsonObject *o = json_object_new();
    char host[INET6_ADDRSTRLEN] = "";
    g_autofree char *port = NULL;

    if (ss->ss_family == AF_UNIX) {
        const struct sockaddr_un *un = (const struct sockaddr_un *)ss;
        bool abstract = un->sun_path[0] == '\0';
        json_object_set_string_member(o, "type", "unix");
        json_object_set_string_member(o, "path", un->sun_path + abstract);
        if (abstract) {
            json_object_set_boolean_member(o, "abstract", true);
        }
        return o;
    }
    json_object_set_string_member(o, "type", "inet");
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        port = g_strdup_printf("%u", ntohs(in->sin_port));
        json_object_set_boolean_member(o, "ipv4", true);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        port = g_strdup_printf("%u", ntohs(in6->sin6_port));
        json_object_set_boolean_member(o, "ipv6", true);
    }
    json_object_set_string_member(o, "host", host);
    json_object_set_string_member(o, "port", port ? port : "");
    return o;
}

void qmp_stream_event(const char *netdev_id, const struct sockaddr_storage *peer, void *opaque)
{
    JsonObject *d = json_object_new();

    json_object_set_string_member(d, "netdev-id", netdev_id);
    if (peer) {
        json_object_set_object_member(d, "addr", socket_address(peer));
    }
    qnic_qmp_event(opaque, peer ? "NETDEV_STREAM_CONNECTED" : "NETDEV_STREAM_DISCONNECTED",
                   qmp_obj_node(d));
}
