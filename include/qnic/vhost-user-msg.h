/*
 * The vhost-user protocol: numbers, payload layouts and one message codec
 * shared by both ends qnic implements, the frontend (virtio/vhost-user-frontend.c:
 * a virtio-net queue pair's data plane handed to another process) and the
 * backend (virtio/vhost-user-device.c: qnic's own netdevs served as a
 * vhost-user-net device to QEMU, DPDK or another qnic).
 *
 * Wire format (native byte order, little-endian on every host qnic runs on):
 * a 12-byte header {request, flags, size} followed by `size` bytes of
 * payload; file descriptors ride on the header in SCM_RIGHTS ancillary
 * data. flags bits 0-1 carry the version (1), bit 2 marks a reply, bit 3
 * asks for an ack (REPLY_ACK protocol feature).
 *
 * Everything arriving here comes from another process and is untrusted:
 * qnic_vhu_msg_recv() bounds the payload by the union below, closes
 * descriptors it cannot hand over, and qnic_vhu_msg_check() tells whether
 * a request's payload has the size its type needs before anyone reads it.
 */
#ifndef QNIC_VHOST_USER_MSG_H
#define QNIC_VHOST_USER_MSG_H

#include "qnic/common.h"

#define QNIC_VHU_VERSION            0x1u
#define QNIC_VHU_FLAG_VERSION_MASK  0x3u
#define QNIC_VHU_FLAG_REPLY         (1u << 2)
#define QNIC_VHU_FLAG_NEED_REPLY    (1u << 3)

/* Feature bit (in GET/SET_FEATURES) that enables protocol features. */
#define QNIC_VHU_F_PROTOCOL_FEATURES 30
/* vhost's dirty logging feature bit (VHOST_F_LOG_ALL). */
#define QNIC_VHU_F_LOG_ALL           26

/* Most file descriptors / memory regions in one message. */
#define QNIC_VHU_MAX_FDS            8
#define QNIC_VHU_MAX_REGIONS        8
#define QNIC_VHU_MAX_CONFIG         256

/* u64 payload of SET_VRING_KICK/CALL/ERR: queue index and "no fd" bit. */
#define QNIC_VHU_VRING_IDX_MASK     0xffu
#define QNIC_VHU_VRING_NOFD_MASK    (1u << 8)

typedef enum {
    QNIC_VHU_NONE = 0,
    QNIC_VHU_GET_FEATURES = 1,
    QNIC_VHU_SET_FEATURES = 2,
    QNIC_VHU_SET_OWNER = 3,
    QNIC_VHU_RESET_OWNER = 4,
    QNIC_VHU_SET_MEM_TABLE = 5,
    QNIC_VHU_SET_LOG_BASE = 6,
    QNIC_VHU_SET_LOG_FD = 7,
    QNIC_VHU_SET_VRING_NUM = 8,
    QNIC_VHU_SET_VRING_ADDR = 9,
    QNIC_VHU_SET_VRING_BASE = 10,
    QNIC_VHU_GET_VRING_BASE = 11,
    QNIC_VHU_SET_VRING_KICK = 12,
    QNIC_VHU_SET_VRING_CALL = 13,
    QNIC_VHU_SET_VRING_ERR = 14,
    QNIC_VHU_GET_PROTOCOL_FEATURES = 15,
    QNIC_VHU_SET_PROTOCOL_FEATURES = 16,
    QNIC_VHU_GET_QUEUE_NUM = 17,
    QNIC_VHU_SET_VRING_ENABLE = 18,
    QNIC_VHU_SEND_RARP = 19,
    QNIC_VHU_NET_SET_MTU = 20,
    QNIC_VHU_SET_BACKEND_REQ_FD = 21,
    QNIC_VHU_IOTLB_MSG = 22,
    QNIC_VHU_SET_VRING_ENDIAN = 23,
    QNIC_VHU_GET_CONFIG = 24,
    QNIC_VHU_SET_CONFIG = 25,
    QNIC_VHU_CREATE_CRYPTO_SESSION = 26,
    QNIC_VHU_CLOSE_CRYPTO_SESSION = 27,
    QNIC_VHU_POSTCOPY_ADVISE = 28,
    QNIC_VHU_POSTCOPY_LISTEN = 29,
    QNIC_VHU_POSTCOPY_END = 30,
    QNIC_VHU_GET_INFLIGHT_FD = 31,
    QNIC_VHU_SET_INFLIGHT_FD = 32,
    QNIC_VHU_GPU_SET_SOCKET = 33,
    QNIC_VHU_RESET_DEVICE = 34,
    QNIC_VHU_VRING_KICK = 35,
    QNIC_VHU_GET_MAX_MEM_SLOTS = 36,
    QNIC_VHU_ADD_MEM_REG = 37,
    QNIC_VHU_REM_MEM_REG = 38,
    QNIC_VHU_SET_STATUS = 39,
    QNIC_VHU_GET_STATUS = 40,
    QNIC_VHU_REQUEST_MAX
} QnicVhuRequest;

typedef enum {
    QNIC_VHU_PROTOCOL_F_MQ = 0,
    QNIC_VHU_PROTOCOL_F_LOG_SHMFD = 1,
    QNIC_VHU_PROTOCOL_F_RARP = 2,
    QNIC_VHU_PROTOCOL_F_REPLY_ACK = 3,
    QNIC_VHU_PROTOCOL_F_NET_MTU = 4,
    QNIC_VHU_PROTOCOL_F_BACKEND_REQ = 5,
    QNIC_VHU_PROTOCOL_F_CROSS_ENDIAN = 6,
    QNIC_VHU_PROTOCOL_F_CRYPTO_SESSION = 7,
    QNIC_VHU_PROTOCOL_F_PAGEFAULT = 8,
    QNIC_VHU_PROTOCOL_F_CONFIG = 9,
    QNIC_VHU_PROTOCOL_F_BACKEND_SEND_FD = 10,
    QNIC_VHU_PROTOCOL_F_HOST_NOTIFIER = 11,
    QNIC_VHU_PROTOCOL_F_INFLIGHT_SHMFD = 12,
    QNIC_VHU_PROTOCOL_F_RESET_DEVICE = 13,
    QNIC_VHU_PROTOCOL_F_INBAND_NOTIFICATIONS = 14,
    QNIC_VHU_PROTOCOL_F_CONFIGURE_MEM_SLOTS = 15,
    QNIC_VHU_PROTOCOL_F_STATUS = 16,
} QnicVhuProtocolFeature;

typedef struct QnicVhuHdr {
    uint32_t request;
    uint32_t flags;
    uint32_t size;          /* payload bytes after the header */
} QnicVhuHdr;
_Static_assert(sizeof(QnicVhuHdr) == 12, "vhost-user header is 12 bytes");

/* SET_VRING_NUM / SET_VRING_BASE / GET_VRING_BASE / SET_VRING_ENABLE. For a
 * packed ring, SET/GET_VRING_BASE num holds last_avail_idx in bits 0-14 and
 * the avail wrap counter in bit 15. */
typedef struct QnicVhuVringState {
    uint32_t index;
    uint32_t num;
} QnicVhuVringState;

/* SET_VRING_ADDR: ring addresses in the frontend's virtual address space
 * (the userspace_addr side of the memory table). */
#define QNIC_VHU_VRING_F_LOG 0      /* flags bit: log_guest_addr is valid */
typedef struct QnicVhuVringAddr {
    uint32_t index;
    uint32_t flags;
    uint64_t desc_user_addr;
    uint64_t used_user_addr;
    uint64_t avail_user_addr;
    uint64_t log_guest_addr;
} QnicVhuVringAddr;
_Static_assert(sizeof(QnicVhuVringAddr) == 40, "vring addr payload");

typedef struct QnicVhuMemRegion {
    uint64_t guest_phys_addr;
    uint64_t memory_size;
    uint64_t userspace_addr;
    uint64_t mmap_offset;   /* offset of the region in its fd */
} QnicVhuMemRegion;
_Static_assert(sizeof(QnicVhuMemRegion) == 32, "memory region payload");

/* SET_MEM_TABLE: one fd per region, in order. */
typedef struct QnicVhuMemory {
    uint32_t nregions;
    uint32_t padding;
    QnicVhuMemRegion regions[QNIC_VHU_MAX_REGIONS];
} QnicVhuMemory;
_Static_assert(sizeof(QnicVhuMemory) == 8 + 32 * QNIC_VHU_MAX_REGIONS, "memory payload");

/* ADD_MEM_REG / REM_MEM_REG (CONFIGURE_MEM_SLOTS). */
typedef struct QnicVhuMemRegMsg {
    uint64_t padding;
    QnicVhuMemRegion region;
} QnicVhuMemRegMsg;

/* SET_LOG_BASE. */
typedef struct QnicVhuLog {
    uint64_t mmap_size;
    uint64_t mmap_offset;
} QnicVhuLog;

/* GET_CONFIG / SET_CONFIG (device config space, e.g. virtio_net_config). */
typedef struct QnicVhuConfig {
    uint32_t offset;
    uint32_t size;
    uint32_t flags;
    uint8_t region[QNIC_VHU_MAX_CONFIG];
} QnicVhuConfig;

/* VHOST_USER_IOTLB_MSG payload (struct vhost_iotlb_msg). */
typedef struct QnicVhuIotlb {
    uint64_t iova;
    uint64_t size;
    uint64_t uaddr;
    uint8_t perm;
    uint8_t type;
    uint8_t pad[6];
} QnicVhuIotlb;

typedef union QnicVhuPayload {
    uint64_t u64;
    QnicVhuVringState state;
    QnicVhuVringAddr addr;
    QnicVhuMemory memory;
    QnicVhuMemRegMsg memreg;
    QnicVhuLog log;
    QnicVhuConfig config;
    QnicVhuIotlb iotlb;
    uint8_t raw[sizeof(QnicVhuMemory) > sizeof(QnicVhuConfig) ?
                sizeof(QnicVhuMemory) : sizeof(QnicVhuConfig)];
} QnicVhuPayload;

/* One message with the descriptors that came with it (owned: close them
 * with qnic_vhu_msg_close_fds() unless taken, i.e. set to -1). */
typedef struct QnicVhuMsg {
    QnicVhuHdr hdr;
    QnicVhuPayload p;
    int fds[QNIC_VHU_MAX_FDS];
    unsigned nfds;
} QnicVhuMsg;

/* Name of a request ("SET_MEM_TABLE"), or "UNKNOWN". */
const char *qnic_vhu_request_name(uint32_t request);

/* Start a message: header with version 1, given request, payload size. */
void qnic_vhu_msg_init(QnicVhuMsg *m, uint32_t request, uint32_t size);

/* How long qnic_vhu_msg_recv()/send() give a peer for a whole message. */
#define QNIC_VHU_MSG_TIMEOUT_MS 1000
/* A deadline ms milliseconds from now (g_get_monotonic_time() units). */
gint64 qnic_vhu_deadline(unsigned ms);

/* Read one message: the whole of it (header, payload, descriptors) must
 * arrive by the deadline, however the peer splits it; the socket's
 * blocking mode does not matter. Returns 1 with the message, 0 on orderly
 * EOF before any byte, -1 on error (errp: nothing or only part of it by
 * the deadline, payload larger than any request's, bad version, recvmsg
 * failure). On every return, no descriptor is leaked: extra or truncated
 * SCM_RIGHTS descriptors are closed. qnic_vhu_msg_recv(): deadline
 * QNIC_VHU_MSG_TIMEOUT_MS from now. */
int qnic_vhu_msg_recv_until(int sock, QnicVhuMsg *m, gint64 deadline, GError **errp);
int qnic_vhu_msg_recv(int sock, QnicVhuMsg *m, GError **errp);
/* Send header + hdr.size bytes of payload + m->nfds descriptors, all of
 * it by the deadline (or QNIC_VHU_MSG_TIMEOUT_MS from now). */
bool qnic_vhu_msg_send_until(int sock, const QnicVhuMsg *m, gint64 deadline, GError **errp);
bool qnic_vhu_msg_send(int sock, const QnicVhuMsg *m, GError **errp);
void qnic_vhu_msg_close_fds(QnicVhuMsg *m);
/* Take descriptor i out of the message (-1 if none). */
int qnic_vhu_msg_take_fd(QnicVhuMsg *m, unsigned i);

/* Kick, call and err descriptors from a peer (see vhost-user-msg.c for why
 * these never block whatever the peer does with the shared file flags).
 * Only eventfds are taken: false with "the descriptor is a pipe, not an
 * eventfd" style messages otherwise. */
bool qnic_vhu_fd_is_eventfd(int fd, GError **errp);
/* 1: read the counter into *v; 0: nothing to read (or the peer took it);
 * -1: error (errno). Never blocks. */
int qnic_vhu_eventfd_read(int fd, uint64_t *v);
/* Add 1. 1: done; 0: it would block (the peer filled the counter and
 * cleared O_NONBLOCK), given up after at most a 20 ms guard tick; -1:
 * error (errno). Uses the real-time signal SIGRTMIN+3 of the calling
 * thread, only while the write runs. */
int qnic_vhu_eventfd_signal(int fd);

/* Does the payload have the size this request needs, in this direction
 * (to_backend: a request from the frontend; else a reply)? false with a
 * message naming the request and both sizes. */
bool qnic_vhu_msg_check(const QnicVhuMsg *m, bool to_backend, GError **errp);

#endif
