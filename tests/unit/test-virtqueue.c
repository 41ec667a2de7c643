/*
 * Unit tests of the device side of virtqueues (virtio/virtqueue.c) with no
 * transport: a machine gives guest RAM, a bare QnicDevice does the DMA, and
 * the test plays the driver through the driver-side ring library
 * (tests/lib/vring-driver.h) over that RAM. They cover split and packed
 * pop/push, indirect tables, EVENT_IDX arithmetic (used_event / avail_event, including 16-bit wrap-around),
 * in-order completion, batch publication (what mergeable RX relies on for
 * num_buffers), and every malformed-driver rule the queue enforces: loops,
 * chains longer than the queue, nested indirect tables, avail idx running
 * ahead, zero-length and out-of-RAM buffers.
 */
#include "qnic/machine.h"
#include "qnic/virtqueue.h"
#include "qnic/log.h"
#include "vring-host.h"
#include <linux/virtio_ring.h>
#include <linux/virtio_config.h>

#define DESC_GPA  0x10000ull
#define AVAIL_GPA 0x20000ull
#define USED_GPA  0x30000ull
#define IND_GPA   0x40000ull
#define BUF_GPA   0x100000ull
#define NOT_RAM   0x3f0000000ull

static const QnicDeviceClass fake_cls = { .name = "fake-virtio", .instance_size = sizeof(QnicDevice) };

typedef struct {
    QnicMachine *m;
    QnicDevice dev;
    QnicVirtQueue vq;
    struct iovec iov[64];
    QnicVqElem e;
    unsigned broken_calls, notify_calls;
    VringHostRam ram;           /* the machine's RAM as the driver sees it */
    VringMem mem;
    VringDriver drv;            /* the driver side */
} Fx;

static void on_broken(QnicVirtQueue *vq, void *opaque)
{
    Fx *f = opaque;
    (void)vq;
    f->broken_calls++;
}

static void on_notify(QnicVirtQueue *vq, void *opaque)
{
    Fx *f = opaque;
    (void)vq;
    f->notify_calls++;
}

static uint8_t *ram(Fx *f, uint64_t gpa)
{
    uint8_t *p = qnic_machine_ram_ptr(f->m, gpa, 1);
    g_assert_nonnull(p);
    return p;
}

/* Set up a queue of `num` entries with the given feature bits. */
static void fx_init(Fx *f, uint16_t num, uint64_t features)
{
    QnicMachineConfig cfg = { .ram_size = 16 * 1024 * 1024 };
    g_autoptr(GError) err = NULL;

    memset(f, 0, sizeof(*f));
    f->m = qnic_machine_new(&cfg, &err);
    g_assert_no_error(err);
    f->dev = (QnicDevice){ .cls = &fake_cls, .machine = f->m, .dma_enabled = true };
    qnic_vq_init(&f->vq, &f->dev, 0, 1024);
    f->vq.num = num;
    f->vq.desc_gpa = DESC_GPA;
    f->vq.avail_gpa = AVAIL_GPA;
    f->vq.used_gpa = USED_GPA;
    f->vq.broken_cb = on_broken;
    f->vq.notify = on_notify;
    f->vq.opaque = f;
    f->vq.enabled = true;
    f->e.iov = f->iov;
    f->e.iov_cap = G_N_ELEMENTS(f->iov);
    g_assert_true(qnic_vq_start(&f->vq, features));
    f->mem = vring_host_machine_mem(&f->ram, f->m, cfg.ram_size);
    vring_driver_init(&f->drv, &f->mem, num, features & (1ull << VIRTIO_F_RING_PACKED), DESC_GPA,
                      AVAIL_GPA, USED_GPA);
}

static void fx_free(Fx *f)
{
    qnic_machine_free(f->m);
}

static QnicVqPopResult pop(Fx *f)
{
    return qnic_vq_pop(&f->vq, &f->e);
}

/* ---- split ---- */

static void test_split_pop_push(void)
{
    Fx f;
    uint32_t id, len;

    fx_init(&f, 8, 0);
    g_assert_true(qnic_vq_empty(&f.vq));
    g_assert_cmpint(pop(&f), ==, QNIC_VQ_POP_EMPTY);

    /* head 3: 10 readable bytes then 100 writable ones */
    vring_split_write_desc(&f.drv, 3, BUF_GPA, 10, VRING_DESC_F_NEXT, 5);
    vring_split_write_desc(&f.drv, 5, BUF_GPA + 0x1000, 100, VRING_DESC_F_WRITE, 0);
    memcpy(ram(&f, BUF_GPA), "0123456789", 10);
    vring_split_publish(&f.drv, 3);
    g_assert_false(qnic_vq_empty(&f.vq));
    g_assert_cmpint(pop(&f), ==, QNIC_VQ_POP_OK);
    g_assert_cmpuint(f.e.index, ==, 3);
    g_assert_cmpuint(f.e.out_num, ==, 1);
    g_assert_cmpuint(f.e.in_num, ==, 1);
    g_assert_cmpuint(f.e.out_len, ==, 10);
    g_assert_cmpuint(f.e.in_len, ==, 100);
    /* mapped in place, not copied */
    g_assert_true(qnic_vq_elem_out(&f.e)[0].iov_base == ram(&f, BUF_GPA));
    g_assert_true(qnic_vq_elem_in(&f.e)[0].iov_base == ram(&f, BUF_GPA + 0x1000));
    g_assert_cmpuint(f.vq.inuse, ==, 1);

    /* push: a length past the writable part is capped to it */
    qnic_vq_push(&f.vq, &f.e, 500);
    g_assert_cmpuint(vring_split_used_idx(&f.drv), ==, 1);
    vring_split_used_elem(&f.drv, 0, &id, &len);
    g_assert_cmpuint(id, ==, 3);
    g_assert_cmpuint(len, ==, 100);
    g_assert_cmpuint(f.vq.inuse, ==, 0);
    /* (a pop clears the element it is given, so this comes after push) */
    g_assert_cmpint(pop(&f), ==, QNIC_VQ_POP_EMPTY);
    g_assert_cmpuint(f.broken_calls, ==, 0);
    fx_free(&f);
}

/* Run many buffers through a small queue so every index wraps. */
static void test_split_ring_wrap(void)
{
    Fx f;
    uint32_t id, len;

    fx_init(&f, 4, 0);
    for (unsigned i = 0; i < 50; i++) {
        uint16_t head = i % 4;
        vring_split_write_desc(&f.drv, head, BUF_GPA + 64 * head, 64, VRING_DESC_F_WRITE, 0);
        vring_split_publish(&f.drv, head);
        g_assert_cmpint(pop(&f), ==, QNIC_VQ_POP_OK);
        g_assert_cmpuint(f.e.index, ==, head);
        qnic_vq_push(&f.vq, &f.e, i);
        g_assert_cmpuint(vring_split_used_idx(&f.drv), ==, i + 1);
        vring_split_used_elem(&f.drv, i, &id, &len);
        g_assert_cmpuint(id, ==, head);
        g_assert_cmpuint(len, ==, i);
    }
    fx_free(&f);
}

static void test_split_mark_rollback(void)
{
    Fx f;
    QnicVqMark mark;

    fx_init(&f, 8, 0);
    for (unsigned i = 0; i < 3; i++) {
        vring_split_write_desc(&f.drv, i, BUF_GPA + 64 * i, 64, VRING_DESC_F_WRITE, 0);
        vring_split_publish(&f.drv, i);
    }
    g_assert_cmpint(pop(&f), ==, QNIC_VQ_POP_OK);
    mark = qnic_vq_mark(&f.vq);
    g_assert_cmpint(pop(&f), ==, QNIC_VQ_POP_OK);
    g_assert_cmpuint(f.e.index, ==, 1);
    g_assert_cmpint(pop(&f), ==, QNIC_VQ_POP_OK);
    g_assert_cmpuint(f.vq.inuse, ==, 3);
    qnic_vq_rollback(&f.vq, mark);
    g_assert_cmpuint(f.vq.inuse, ==, 1);
    g_assert_cmpint(pop(&f), ==, QNIC_VQ_POP_OK);
    g_assert_cmpuint(f.e.index, ==, 1);
    fx_free(&f);
}

static void test_split_indirect(void)
{
    Fx f;

    fx_init(&f, 8, 1ull << VIRTIO_RING_F_INDIRECT_DESC);
    vring_write_split_desc_at(&f.mem, IND_GPA, 0, BUF_GPA, 12, VRING_DESC_F_NEXT, 2);
    vring_write_split_desc_at(&f.mem, IND_GPA, 2, BUF_GPA + 0x100, 20, VRING_DESC_F_NEXT, 1);
    vring_write_split_desc_at(&f.mem, IND_GPA, 1, BUF_GPA + 0x200, 300, VRING_DESC_F_WRITE, 0);
    vring_split_write_desc(&f.drv, 6, IND_GPA, 3 * 16, VRING_DESC_F_INDIRECT, 0);
    vring_split_publish(&f.drv, 6);
    g_assert_cmpint(pop(&f), ==, QNIC_VQ_POP_OK);
    g_assert_cmpuint(f.e.index, ==, 6);
    g_assert_cmpuint(f.e.out_num, ==, 2);
    g_assert_cmpuint(f.e.out_len, ==, 32);
    g_assert_cmpuint(f.e.in_num, ==, 1);
    g_assert_cmpuint(f.e.in_len, ==, 300);
    g_assert_true(f.iov[1].iov_base == ram(&f, BUF_GPA + 0x100));
    qnic_vq_push(&f.vq, &f.e, 7);
    g_assert_cmpuint(vring_split_used_idx(&f.drv), ==, 1);
    fx_free(&f);
}

/* Indirect without the feature negotiated is a driver error. */
static void test_split_indirect_unnegotiated(void)
{
    Fx f;

    fx_init(&f, 8, 0);
    vring_write_split_desc_at(&f.mem, IND_GPA, 0, BUF_GPA, 12, 0, 0);
    vring_split_write_desc(&f.drv, 0, IND_GPA, 16, VRING_DESC_F_INDIRECT, 0);
    vring_split_publish(&f.drv, 0);
    g_assert_cmpint(pop(&f), ==, QNIC_VQ_POP_ERROR);
    g_assert_true(f.vq.broken);
    fx_free(&f);
}

/* ---- malformed split chains ---- */

typedef enum {
    BAD_LOOP, BAD_LONG_INDIRECT, BAD_NESTED, BAD_AVAIL_AHEAD, BAD_ZERO_LEN, BAD_NOT_RAM,
    BAD_NOT_RAM_PARTIAL, BAD_HEAD_RANGE, BAD_NEXT_RANGE, BAD_READ_AFTER_WRITE,
    BAD_INDIRECT_SIZE, BAD_INDIRECT_NEXT, BAD_TOO_MANY_INUSE, BAD_SEGMENTS, BAD_INDIRECT_IN_CHAIN,
} BadKind;
static const char *bad_names[] = {
    "loop", "indirect-loop", "nested-indirect", "avail-ahead", "zero-length", "out-of-ram",
    "partly-out-of-ram", "head-out-of-range", "next-out-of-range", "readable-after-writable",
    "indirect-size", "indirect-with-next", "more-than-queue-size", "too-many-segments",
    "indirect-inside-chain",
};

static void test_split_malformed(gconstpointer data)
{
    BadKind k = GPOINTER_TO_INT(data);
    uint64_t before = qnic_log_count(QNIC_LOG_GUEST_ERROR);
    Fx f;

    fx_init(&f, 8, 1ull << VIRTIO_RING_F_INDIRECT_DESC);
    switch (k) {
    case BAD_LOOP:              /* 0 -> 1 -> 2 -> 0 */
        vring_split_write_desc(&f.drv, 0, BUF_GPA, 64, VRING_DESC_F_NEXT, 1);
        vring_split_write_desc(&f.drv, 1, BUF_GPA, 64, VRING_DESC_F_NEXT, 2);
        vring_split_write_desc(&f.drv, 2, BUF_GPA, 64, VRING_DESC_F_NEXT, 0);
        vring_split_publish(&f.drv, 0);
        break;
    case BAD_LONG_INDIRECT:     /* a 4-entry table whose chain loops: longer than the table */
        for (unsigned i = 0; i < 4; i++) {
            vring_write_split_desc_at(&f.mem, IND_GPA, i, BUF_GPA, 64, VRING_DESC_F_NEXT, (i + 1) % 4);
        }
        vring_split_write_desc(&f.drv, 0, IND_GPA, 64, VRING_DESC_F_INDIRECT, 0);
        vring_split_publish(&f.drv, 0);
        break;
    case BAD_NESTED:
        vring_write_split_desc_at(&f.mem, IND_GPA, 0, IND_GPA + 0x100, 16, VRING_DESC_F_INDIRECT, 0);
        vring_write_split_desc_at(&f.mem, IND_GPA + 0x100, 0, BUF_GPA, 64, 0, 0);
        vring_split_write_desc(&f.drv, 0, IND_GPA, 16, VRING_DESC_F_INDIRECT, 0);
        vring_split_publish(&f.drv, 0);
        break;
    case BAD_AVAIL_AHEAD:
        vring_split_write_desc(&f.drv, 0, BUF_GPA, 64, 0, 0);
        vring_split_set_avail_idx(&f.drv, 9);   /* 9 new buffers in an 8-entry queue */
        break;
    case BAD_ZERO_LEN:
        vring_split_write_desc(&f.drv, 0, BUF_GPA, 0, 0, 0);
        vring_split_publish(&f.drv, 0);
        break;
    case BAD_NOT_RAM:
        vring_split_write_desc(&f.drv, 0, NOT_RAM, 64, 0, 0);
        vring_split_publish(&f.drv, 0);
        break;
    case BAD_NOT_RAM_PARTIAL:   /* starts in RAM, runs off its end (16 MiB) */
        vring_split_write_desc(&f.drv, 0, 16 * 1024 * 1024 - 32, 64, 0, 0);
        vring_split_publish(&f.drv, 0);
        break;
    case BAD_HEAD_RANGE:
        vring_split_publish(&f.drv, 8);
        break;
    case BAD_NEXT_RANGE:
        vring_split_write_desc(&f.drv, 0, BUF_GPA, 64, VRING_DESC_F_NEXT, 200);
        vring_split_publish(&f.drv, 0);
        break;
    case BAD_READ_AFTER_WRITE:
        vring_split_write_desc(&f.drv, 0, BUF_GPA, 64, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
        vring_split_write_desc(&f.drv, 1, BUF_GPA, 64, 0, 0);
        vring_split_publish(&f.drv, 0);
        break;
    case BAD_INDIRECT_SIZE:
        vring_split_write_desc(&f.drv, 0, IND_GPA, 24, VRING_DESC_F_INDIRECT, 0);
        vring_split_publish(&f.drv, 0);
        break;
    case BAD_INDIRECT_NEXT:
        vring_write_split_desc_at(&f.mem, IND_GPA, 0, BUF_GPA, 64, 0, 0);
        vring_split_write_desc(&f.drv, 0, IND_GPA, 16, VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, 1);
        vring_split_publish(&f.drv, 0);
        break;
    case BAD_TOO_MANY_INUSE:
        /* 8 popped and never returned, then 8 more published: 16 in flight */
        for (unsigned i = 0; i < 8; i++) {
            vring_split_write_desc(&f.drv, i, BUF_GPA, 64, 0, 0);
            vring_split_publish(&f.drv, i);
        }
        for (unsigned i = 0; i < 8; i++) {
            g_assert_cmpint(pop(&f), ==, QNIC_VQ_POP_OK);
        }
        g_assert_cmpuint(f.broken_calls, ==, 0);
        for (unsigned i = 0; i < 8; i++) {
            vring_split_publish(&f.drv, i);
        }
        break;
    case BAD_SEGMENTS:
        /* a 4-descriptor chain into a 2-entry iovec */
        for (unsigned i = 0; i < 4; i++) {
            vring_split_write_desc(&f.drv, i, BUF_GPA + 64 * i, 64, i < 3 ? VRING_DESC_F_NEXT : 0, i + 1);
        }
        vring_split_publish(&f.drv, 0);
        f.e.iov_cap = 2;
        break;
    case BAD_INDIRECT_IN_CHAIN:
        vring_write_split_desc_at(&f.mem, IND_GPA, 0, BUF_GPA, 64, 0, 0);
        vring_split_write_desc(&f.drv, 0, BUF_GPA, 64, VRING_DESC_F_NEXT, 1);
        vring_split_write_desc(&f.drv, 1, IND_GPA, 16, VRING_DESC_F_INDIRECT, 0);
        vring_split_publish(&f.drv, 0);
        break;
    }
    g_assert_cmpint(pop(&f), ==, QNIC_VQ_POP_ERROR);
    g_assert_true(f.vq.broken);
    g_assert_cmpuint(f.broken_calls, ==, 1);
    g_assert_cmpuint(qnic_log_count(QNIC_LOG_GUEST_ERROR), >, before);
    /* once broken, nothing more comes out and the hook does not run again */
    g_assert_cmpint(pop(&f), ==, QNIC_VQ_POP_ERROR);
    g_assert_cmpuint(f.broken_calls, ==, 1);
    g_assert_true(qnic_vq_empty(&f.vq));
    /* nothing was returned to the driver */
    g_assert_cmpuint(vring_split_used_idx(&f.drv), ==, 0);

    /* a reset makes the queue usable again */
    qnic_vq_reset(&f.vq);
    g_assert_false(f.vq.broken);
    f.vq.num = 8;
    f.vq.desc_gpa = DESC_GPA;
    f.vq.avail_gpa = AVAIL_GPA;
    f.vq.used_gpa = USED_GPA;
    memset(ram(&f, AVAIL_GPA), 0, 0x100);
    memset(ram(&f, USED_GPA), 0, 0x100);
    vring_driver_init(&f.drv, &f.mem, 8, false, DESC_GPA, AVAIL_GPA, USED_GPA);
    f.e.iov_cap = G_N_ELEMENTS(f.iov);
    g_assert_true(qnic_vq_start(&f.vq, 0));
    vring_split_write_desc(&f.drv, 0, BUF_GPA, 64, VRING_DESC_F_WRITE, 0);
    vring_split_publish(&f.drv, 0);
    g_assert_cmpint(pop(&f), ==, QNIC_VQ_POP_OK);
    fx_free(&f);
}

/* A chain using every descriptor of the table once is fine; its length
 * equals the queue size. */
static void test_split_full_length_chain(void)
{
    Fx f;

    fx_init(&f, 8, 0);
    for (unsigned i = 0; i < 8; i++) {
        vring_split_write_desc(&f.drv, i, BUF_GPA + 64 * i, 64, i < 7 ? VRING_DESC_F_NEXT : 0, i < 7 ? i + 1 : 0);
    }
    vring_split_publish(&f.drv, 0);
    g_assert_cmpint(pop(&f), ==, QNIC_VQ_POP_OK);
    g_assert_cmpuint(f.e.out_num, ==, 8);
    g_assert_cmpuint(f.e.out_len, ==, 8 * 64);
    fx_free(&f);
}

/* The rings themselves must be aligned RAM. */
static void test_start_checks(void)
{
    Fx f;

    fx_init(&f, 8, 0);
    f.vq.desc_gpa = DESC_GPA + 8;
    g_assert_false(qnic_vq_start(&f.vq, 0));
    g_assert_true(f.vq.broken);
    qnic_vq_reset(&f.vq);
    f.vq.num = 8;
    f.vq.desc_gpa = DESC_GPA;
    f.vq.avail_gpa = AVAIL_GPA;
    f.vq.used_gpa = NOT_RAM;
    g_assert_false(qnic_vq_start(&f.vq, 0));
    g_assert_true(f.vq.broken);
    qnic_vq_reset(&f.vq);
    f.vq.num = 6;   /* split rings need a power of two */
    f.vq.desc_gpa = DESC_GPA;
    f.vq.avail_gpa = AVAIL_GPA;
    f.vq.used_gpa = USED_GPA;
    g_assert_false(qnic_vq_start(&f.vq, 0));
    /* packed rings do not */
    qnic_vq_reset(&f.vq);
    f.vq.num = 6;
    f.vq.desc_gpa = DESC_GPA;
    f.vq.avail_gpa = AVAIL_GPA;
    f.vq.used_gpa = USED_GPA;
    g_assert_true(qnic_vq_start(&f.vq, 1ull << VIRTIO_F_RING_PACKED));
    /* bus mastering off: nothing is popped */
    f.dev.dma_enabled = false;
    g_assert_false(qnic_vq_ready(&f.vq));
    g_assert_cmpint(pop(&f), ==, QNIC_VQ_POP_EMPTY);
    fx_free(&f);
}

static void test_legacy_layout(void)
{
    QnicVirtQueue vq;

    qnic_vq_init(&vq, NULL, 0, 256);
    qnic_vq_set_legacy_addr(&vq, 0x5000, 4096);
    g_assert_cmphex(vq.desc_gpa, ==, 0x5000);
    g_assert_cmphex(vq.avail_gpa, ==, 0x5000 + 256 * 16);
    /* avail ring is 6 + 2 * 256 bytes; used ring starts at the next page */
    g_assert_cmphex(vq.used_gpa, ==, 0x7000);
    g_assert_cmpuint(qnic_vq_used_size(&vq), ==, 6 + 8 * 256);
}

/* ---- EVENT_IDX (split) ---- */

/* Push one buffer (posted and popped first) and say whether the driver
 * is to be interrupted. */
static bool push_one(Fx *f, uint16_t head)
{
    unsigned before = f->notify_calls;

    vring_split_write_desc(&f->drv, head, BUF_GPA, 64, VRING_DESC_F_WRITE, 0);
    vring_split_publish(&f->drv, head);
    g_assert_cmpint(pop(f), ==, QNIC_VQ_POP_OK);
    qnic_vq_push(&f->vq, &f->e, 1);
    qnic_vq_notify(&f->vq);
    return f->notify_calls != before;
}

static void test_event_idx_used_event(void)
{
    Fx f;

    fx_init(&f, 8, 1ull << VIRTIO_RING_F_EVENT_IDX);
    vring_split_set_used_event(&f.drv, 0);
    g_assert_true(push_one(&f, 0));          /* used 0 -> 1 crosses event 0 */
    vring_split_set_used_event(&f.drv, 3);
    g_assert_false(push_one(&f, 1));         /* 1 -> 2 */
    g_assert_false(push_one(&f, 2));         /* 2 -> 3 */
    g_assert_true(push_one(&f, 3));          /* 3 -> 4 crosses 3 */
    g_assert_false(push_one(&f, 4));         /* event already passed */
    /* a batch of 3 that steps over the event in the middle */
    vring_split_set_used_event(&f.drv, 6);
    for (unsigned i = 0; i < 3; i++) {
        vring_split_write_desc(&f.drv, i, BUF_GPA, 64, VRING_DESC_F_WRITE, 0);
        vring_split_publish(&f.drv, i);
    }
    for (unsigned i = 0; i < 3; i++) {
        g_assert_cmpint(pop(&f), ==, QNIC_VQ_POP_OK);
        qnic_vq_fill(&f.vq, &f.e, 1, i);
    }
    qnic_vq_flush(&f.vq, 3);               /* 5 -> 8 */
    g_assert_cmpuint(vring_split_used_idx(&f.drv), ==, 8);
    g_assert_true(qnic_vq_should_notify(&f.vq));
    /* NO_INTERRUPT flag is ignored when EVENT_IDX is negotiated */
    vring_split_set_avail_flags(&f.drv, VRING_AVAIL_F_NO_INTERRUPT);
    vring_split_set_used_event(&f.drv, 8);
    g_assert_true(push_one(&f, 5));
    fx_free(&f);
}

static void test_event_idx_wrap(void)
{
    Fx f;

    fx_init(&f, 8, 1ull << VIRTIO_RING_F_EVENT_IDX);
    /* As if 65534 buffers had gone through already. */
    f.vq.last_avail_idx = f.vq.shadow_avail_idx = 0xfffe;
    f.vq.used_idx = 0xfffe;
    f.vq.signalled_used = 0xfffe;
    f.vq.signalled_used_valid = true;
    qnic_st16(ram(&f, USED_GPA + 2), 0xfffe);
    vring_split_set_avail_idx(&f.drv, 0xfffe);

    vring_split_set_used_event(&f.drv, 0xffff);
    g_assert_false(push_one(&f, 0));         /* 0xfffe -> 0xffff */
    g_assert_cmpuint(vring_split_avail_event(&f.drv), ==, 0xffff);
    g_assert_true(push_one(&f, 1));          /* 0xffff -> 0x0000 crosses 0xffff */
    g_assert_cmpuint(vring_split_used_idx(&f.drv), ==, 0);
    g_assert_cmpuint(vring_split_avail_event(&f.drv), ==, 0);
    vring_split_set_used_event(&f.drv, 1);
    g_assert_false(push_one(&f, 2));         /* 0 -> 1 */
    g_assert_true(push_one(&f, 3));          /* 1 -> 2 crosses 1 */
    g_assert_cmpuint(vring_split_avail_event(&f.drv), ==, 2);

    /* a batch across the wrap: 0xfffd -> 0x0001 with event 0xffff */
    f.vq.last_avail_idx = f.vq.shadow_avail_idx = 0xfffd;
    f.vq.used_idx = 0xfffd;
    f.vq.signalled_used = 0xfffd;
    vring_split_set_avail_idx(&f.drv, 0xfffd);
    for (unsigned i = 0; i < 4; i++) {
        vring_split_write_desc(&f.drv, i, BUF_GPA, 64, VRING_DESC_F_WRITE, 0);
        vring_split_publish(&f.drv, i);
    }
    for (unsigned i = 0; i < 4; i++) {
        g_assert_cmpint(pop(&f), ==, QNIC_VQ_POP_OK);
        qnic_vq_fill(&f.vq, &f.e, 1, i);
    }
    qnic_vq_flush(&f.vq, 4);
    g_assert_cmpuint(vring_split_used_idx(&f.drv), ==, 1);
    vring_split_set_used_event(&f.drv, 0xffff);
    g_assert_true(qnic_vq_should_notify(&f.vq));
    /* and one whose event lies behind the batch: no interrupt */
    vring_split_set_used_event(&f.drv, 0xfff0);
    g_assert_false(push_one(&f, 4));
    fx_free(&f);
}

/* avail_event: with notifications on, the device publishes the avail idx
 * it wants a kick at; disabling suppresses updates. */
static void test_event_idx_avail_event(void)
{
    Fx f;

    fx_init(&f, 8, 1ull << VIRTIO_RING_F_EVENT_IDX);
    vring_split_set_avail_idx(&f.drv, 0);
    vring_split_write_desc(&f.drv, 0, BUF_GPA, 64, 0, 0);
    vring_split_publish(&f.drv, 0);
    vring_split_publish(&f.drv, 0);
    qnic_vq_set_notification(&f.vq, true);
    g_assert_cmpuint(vring_split_avail_event(&f.drv), ==, 2);
    g_assert_cmpint(pop(&f), ==, QNIC_VQ_POP_OK);
    g_assert_cmpuint(vring_split_avail_event(&f.drv), ==, 1);
    qnic_vq_set_notification(&f.vq, false);
    g_assert_cmpint(pop(&f), ==, QNIC_VQ_POP_OK);
    g_assert_cmpuint(vring_split_avail_event(&f.drv), ==, 1);     /* not moved while suppressed */
    fx_free(&f);
}

/* Without EVENT_IDX: used flags NO_NOTIFY and avail flags NO_INTERRUPT. */
static void test_flags_suppression(void)
{
    Fx f;

    fx_init(&f, 8, 0);
    qnic_vq_set_notification(&f.vq, false);
    g_assert_cmphex(vring_split_used_flags(&f.drv) & VRING_USED_F_NO_NOTIFY, ==, VRING_USED_F_NO_NOTIFY);
    qnic_vq_set_notification(&f.vq, true);
    g_assert_cmphex(vring_split_used_flags(&f.drv) & VRING_USED_F_NO_NOTIFY, ==, 0);
    g_assert_true(push_one(&f, 0));
    vring_split_set_avail_flags(&f.drv, VRING_AVAIL_F_NO_INTERRUPT);
    g_assert_false(push_one(&f, 1));
    vring_split_set_avail_flags(&f.drv, 0);
    g_assert_true(push_one(&f, 2));
    g_assert_cmpuint(f.vq.stat_notifies, ==, 2);
    fx_free(&f);
}

/* Mergeable RX fills several buffers, writes num_buffers into the first
 * one, then publishes: until flush the driver must see none of them. */
static void test_batch_publish(void)
{
    Fx f;
    uint32_t id, len;
    QnicVqElem first;
    struct iovec first_iov[4];

    fx_init(&f, 8, 0);
    for (unsigned i = 0; i < 3; i++) {
        vring_split_write_desc(&f.drv, i, BUF_GPA + 0x1000 * i, 512, VRING_DESC_F_WRITE, 0);
        vring_split_publish(&f.drv, i);
    }
    for (unsigned i = 0; i < 3; i++) {
        g_assert_cmpint(pop(&f), ==, QNIC_VQ_POP_OK);
        if (i == 0) {
            first = f.e;
            memcpy(first_iov, f.e.iov, sizeof(first_iov));
            first.iov = first_iov;
        }
        qnic_vq_fill(&f.vq, &f.e, 512, i);
        g_assert_cmpuint(vring_split_used_idx(&f.drv), ==, 0);
    }
    /* num_buffers goes into the header of the first buffer now */
    qnic_st16((uint8_t *)qnic_vq_elem_in(&first)[0].iov_base + 10, 3);
    g_assert_cmpuint(vring_split_used_idx(&f.drv), ==, 0);
    qnic_vq_flush(&f.vq, 3);
    g_assert_cmpuint(vring_split_used_idx(&f.drv), ==, 3);
    g_assert_cmpuint(qnic_ld16(ram(&f, BUF_GPA + 10)), ==, 3);
    for (unsigned i = 0; i < 3; i++) {
        vring_split_used_elem(&f.drv, i, &id, &len);
        g_assert_cmpuint(id, ==, i);
        g_assert_cmpuint(len, ==, 512);
    }
    fx_free(&f);
}

/* In-order: buffers come back in the order they were made available. */
static void test_in_order(void)
{
    static const uint16_t heads[] = { 5, 2, 7, 0 };
    Fx f;
    uint32_t id, len;

    fx_init(&f, 8, (1ull << VIRTIO_F_IN_ORDER) | (1ull << VIRTIO_F_VERSION_1));
    g_assert_true(f.vq.in_order);
    for (unsigned i = 0; i < 4; i++) {
        vring_split_write_desc(&f.drv, heads[i], BUF_GPA + 64 * i, 64, VRING_DESC_F_WRITE, 0);
        vring_split_publish(&f.drv, heads[i]);
    }
    for (unsigned i = 0; i < 4; i++) {
        g_assert_cmpint(pop(&f), ==, QNIC_VQ_POP_OK);
        g_assert_cmpuint(f.e.index, ==, heads[i]);
        qnic_vq_push(&f.vq, &f.e, 10 + i);
    }
    for (unsigned i = 0; i < 4; i++) {
        vring_split_used_elem(&f.drv, i, &id, &len);
        g_assert_cmpuint(id, ==, heads[i]);
        g_assert_cmpuint(len, ==, 10 + i);
    }
    fx_free(&f);
}

/* ---- packed ---- */

#define PF_AVAIL (1u << VRING_PACKED_DESC_F_AVAIL)
#define PF_USED  (1u << VRING_PACKED_DESC_F_USED)

/* Make a chain of n descriptors of len bytes at addr, addr + 64, ...
 * available as buffer `id`, each with the `extra` flags. */
static void padd(Fx *f, unsigned n, uint64_t addr, uint32_t len, uint16_t extra, uint16_t id)
{
    VringBuf b[8];

    g_assert_cmpuint(n, <=, G_N_ELEMENTS(b));
    for (unsigned i = 0; i < n; i++) {
        b[i] = (VringBuf){ .addr = addr + 64 * i, .len = len, .flags = extra };
    }
    vring_add_at(&f->drv, id, b, n);
}

static void test_packed_pop_push(void)
{
    Fx f;

    fx_init(&f, 4, 1ull << VIRTIO_F_RING_PACKED);
    g_assert_true(f.vq.packed);
    g_assert_true(qnic_vq_empty(&f.vq));
    /* 12 rounds through a 4-slot ring with 2-descriptor chains: slots and
     * both wrap counters roll over. */
    for (unsigned round = 0; round < 12; round++) {
        uint16_t id = 100 + round;
        unsigned slot = f.drv.next_avail;
        bool wrap = f.drv.avail_wrap;
        uint64_t addr;
        uint32_t len;
        uint16_t fl, used_id;

        padd(&f, 2, BUF_GPA, 64, VRING_DESC_F_WRITE, id);
        g_assert_false(qnic_vq_empty(&f.vq));
        g_assert_cmpint(pop(&f), ==, QNIC_VQ_POP_OK);
        g_assert_cmpuint(f.e.index, ==, id);
        g_assert_cmpuint(f.e.ndescs, ==, 2);
        g_assert_cmpuint(f.e.in_num, ==, 2);
        g_assert_cmpuint(f.e.in_len, ==, 128);
        qnic_vq_push(&f.vq, &f.e, 77);
        g_assert_cmpint(pop(&f), ==, QNIC_VQ_POP_EMPTY);
        /* the used descriptor goes in the head slot, AVAIL == USED == wrap */
        vring_packed_read_desc(&f.drv, slot, &addr, &len, &used_id, &fl);
        g_assert_cmpuint(used_id, ==, id);
        g_assert_cmpuint(len, ==, 77);
        g_assert_cmphex(fl & (PF_AVAIL | PF_USED), ==, wrap ? (PF_AVAIL | PF_USED) : 0);
        g_assert_cmphex(fl & VRING_DESC_F_WRITE, ==, VRING_DESC_F_WRITE);
    }
    g_assert_cmpuint(f.broken_calls, ==, 0);
    fx_free(&f);
}

static void test_packed_indirect(void)
{
    Fx f;
    uint64_t addr;
    uint32_t len;
    uint16_t id, fl;

    fx_init(&f, 8, (1ull << VIRTIO_F_RING_PACKED) | (1ull << VIRTIO_RING_F_INDIRECT_DESC));
    /* packed table entries: id at +12 (ignored), flags at +14 */
    vring_write_packed_desc_at(&f.mem, IND_GPA, 0, BUF_GPA, 12, 0, 0);
    vring_write_packed_desc_at(&f.mem, IND_GPA, 1, BUF_GPA + 0x100, 1000, 0, VRING_DESC_F_WRITE);
    padd(&f, 1, IND_GPA, 32, VRING_DESC_F_INDIRECT, 9);
    g_assert_cmpint(pop(&f), ==, QNIC_VQ_POP_OK);
    g_assert_cmpuint(f.e.index, ==, 9);
    g_assert_cmpuint(f.e.ndescs, ==, 1);
    g_assert_cmpuint(f.e.out_len, ==, 12);
    g_assert_cmpuint(f.e.in_len, ==, 1000);
    qnic_vq_push(&f.vq, &f.e, 5);
    vring_packed_read_desc(&f.drv, 0, &addr, &len, &id, &fl);
    g_assert_cmphex(fl & (PF_AVAIL | PF_USED), ==, PF_AVAIL | PF_USED);
    fx_free(&f);
}

static void test_packed_malformed(gconstpointer data)
{
    int k = GPOINTER_TO_INT(data);
    Fx f;

    fx_init(&f, 8, (1ull << VIRTIO_F_RING_PACKED) | (1ull << VIRTIO_RING_F_INDIRECT_DESC));
    switch (k) {
    case 0:     /* every slot says NEXT: the chain is longer than the queue */
        for (unsigned i = 0; i < 8; i++) {
            vring_packed_write_desc(&f.drv, i, BUF_GPA, 64, 1, PF_AVAIL | VRING_DESC_F_NEXT);
        }
        break;
    case 1:     /* nested indirect */
        vring_write_packed_desc_at(&f.mem, IND_GPA, 0, IND_GPA + 0x100, 16, 0, VRING_DESC_F_INDIRECT);
        padd(&f, 1, IND_GPA, 16, VRING_DESC_F_INDIRECT, 1);
        break;
    case 2:     /* zero length */
        padd(&f, 1, BUF_GPA, 0, 0, 1);
        break;
    case 3:     /* out of RAM */
        padd(&f, 1, NOT_RAM, 64, 0, 1);
        break;
    case 4:     /* indirect inside a chain */
        padd(&f, 1, BUF_GPA, 64, VRING_DESC_F_NEXT, 1);
        vring_packed_write_desc(&f.drv, 1, IND_GPA, 16, 1, PF_AVAIL | VRING_DESC_F_INDIRECT);
        break;
    }
    g_assert_cmpint(pop(&f), ==, QNIC_VQ_POP_ERROR);
    g_assert_true(f.vq.broken);
    g_assert_cmpuint(f.broken_calls, ==, 1);
    fx_free(&f);
}

/* Packed event suppression: the driver's area says DISABLE / ENABLE /
 * DESC (an offset and wrap counter, with EVENT_IDX). */
static void test_packed_event(void)
{
    Fx f;

    fx_init(&f, 4, (1ull << VIRTIO_F_RING_PACKED) | (1ull << VIRTIO_RING_F_EVENT_IDX));

    qnic_vq_set_notification(&f.vq, false);
    g_assert_cmpuint(vring_packed_device_event_flags(&f.drv), ==, VRING_PACKED_EVENT_FLAG_DISABLE);
    qnic_vq_set_notification(&f.vq, true);
    g_assert_cmpuint(vring_packed_device_event_flags(&f.drv), ==, VRING_PACKED_EVENT_FLAG_DESC);

    vring_packed_set_driver_event(&f.drv, 0, VRING_PACKED_EVENT_FLAG_DISABLE);
    padd(&f, 1, BUF_GPA, 64, VRING_DESC_F_WRITE, 1);
    g_assert_cmpint(pop(&f), ==, QNIC_VQ_POP_OK);
    qnic_vq_push(&f.vq, &f.e, 1);
    g_assert_false(qnic_vq_should_notify(&f.vq));

    vring_packed_set_driver_event(&f.drv, 0, VRING_PACKED_EVENT_FLAG_ENABLE);
    padd(&f, 1, BUF_GPA, 64, VRING_DESC_F_WRITE, 2);
    g_assert_cmpint(pop(&f), ==, QNIC_VQ_POP_OK);
    qnic_vq_push(&f.vq, &f.e, 1);
    g_assert_true(qnic_vq_should_notify(&f.vq));    /* used slot now 2, wrap 1 */

    /* DESC: interrupt when the used slot passes offset 3 (wrap 1) */
    vring_packed_set_driver_event(&f.drv, 3 | (1u << VRING_PACKED_EVENT_F_WRAP_CTR),
                                  VRING_PACKED_EVENT_FLAG_DESC);
    padd(&f, 1, BUF_GPA, 64, VRING_DESC_F_WRITE, 3);
    g_assert_cmpint(pop(&f), ==, QNIC_VQ_POP_OK);
    qnic_vq_push(&f.vq, &f.e, 1);                  /* slot 2 -> 3 */
    g_assert_false(qnic_vq_should_notify(&f.vq));
    padd(&f, 1, BUF_GPA, 64, VRING_DESC_F_WRITE, 4);
    g_assert_cmpint(pop(&f), ==, QNIC_VQ_POP_OK);
    qnic_vq_push(&f.vq, &f.e, 1);                  /* slot 3 -> 0, wrap flips */
    g_assert_true(qnic_vq_should_notify(&f.vq));
    g_assert_false(f.vq.used_wrap);
    fx_free(&f);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/virtqueue/split/pop-push", test_split_pop_push);
    g_test_add_func("/virtqueue/split/ring-wrap", test_split_ring_wrap);
    g_test_add_func("/virtqueue/split/mark-rollback", test_split_mark_rollback);
    g_test_add_func("/virtqueue/split/indirect", test_split_indirect);
    g_test_add_func("/virtqueue/split/indirect-unnegotiated", test_split_indirect_unnegotiated);
    g_test_add_func("/virtqueue/split/full-length-chain", test_split_full_length_chain);
    for (int k = 0; k < (int)G_N_ELEMENTS(bad_names); k++) {
        g_autofree char *name = g_strdup_printf("/virtqueue/split/malformed/%s", bad_names[k]);
        g_test_add_data_func(name, GINT_TO_POINTER(k), test_split_malformed);
    }
    g_test_add_func("/virtqueue/start-checks", test_start_checks);
    g_test_add_func("/virtqueue/legacy-layout", test_legacy_layout);
    g_test_add_func("/virtqueue/event-idx/used-event", test_event_idx_used_event);
    g_test_add_func("/virtqueue/event-idx/wrap", test_event_idx_wrap);
    g_test_add_func("/virtqueue/event-idx/avail-event", test_event_idx_avail_event);
    g_test_add_func("/virtqueue/flags-suppression", test_flags_suppression);
    g_test_add_func("/virtqueue/batch-publish", test_batch_publish);
    g_test_add_func("/virtqueue/in-order", test_in_order);
    g_test_add_func("/virtqueue/packed/pop-push", test_packed_pop_push);
    g_test_add_func("/virtqueue/packed/indirect", test_packed_indirect);
    {
        static const char *pk[] = { "chain-longer-than-queue", "nested-indirect", "zero-length",
                                    "out-of-ram", "indirect-inside-chain" };
        for (int k = 0; k < (int)G_N_ELEMENTS(pk); k++) {
            g_autofree char *name = g_strdup_printf("/virtqueue/packed/malformed/%s", pk[k]);
            g_test_add_data_func(name, GINT_TO_POINTER(k), test_packed_malformed);
        }
    }
    g_test_add_func("/virtqueue/packed/event", test_packed_event);
    return g_test_run();
}
