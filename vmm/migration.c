/*
 * The migration state machines of qnic-vmm, both run on the main loop so
 * that the source keeps serving QMP, qtest and its devices while it sends.
 *
 * Source (QMP migrate): setup, then active: the stream's header and the
 * machine's description, then guest RAM. When the accelerator can log the
 * vCPUs' writes (or has no vCPU, as qtest), this is pre-copy: RAM goes out
 * while the guest runs, then the pages written meanwhile (the accelerator's
 * dirty log and qnic's own, hw/core/memory.c) pass after pass, until what
 * is left fits the downtime limit; then the machine stops (STOP) and the
 * last dirty pages, the accelerator's, every device's and the machine's
 * state and the end mark go out. Otherwise it stops first and sends
 * everything once. The source ends in `postmigrate`; on failure or
 * migrate_cancel it runs again if it ran before.
 *
 * Destination (-incoming URI, or -incoming defer + migrate-incoming): in
 * `inmigrate` until the stream's end, loading records as they come
 * (migration-stream.c checks each). Then the NICs announce themselves with
 * QEMU's default announce parameters (a RARP from each, and virtio-net asks a
 * GUEST_ANNOUNCE driver to do it too), and the machine runs unless -S was
 * given or the source was not running. A bad stream fails the migration
 * and ends the destination process with status 1, as QEMU's does.
 */
#include "vmm/migration.h"
#include "vmm/vmm.h"
#include "qnic/mainloop.h"
#include "qnic/clock.h"
#include "qnic/net.h"
#include "qnic/log.h"

#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define OUT_HIGH_WATER (4u << 20)       /* produce while less is queued */
#define DOWNTIME_LIMIT_MS 300           /* QEMU's default downtime-limit */
#define MIN_SWITCH_BYTES (256u << 10)   /* a dirty set this small always switches */
#define MAX_PASSES 30                   /* then stop-and-copy whatever is left */
#define PAGE 4096u
#define LONG_BITS (8 * sizeof(unsigned long))

typedef enum { PH_RAM, PH_FLUSH } OutPhase;

typedef struct MigOut {
    int fd;
    pid_t pid;
    QnicFdWatch *watch;
    GByteArray *out;
    size_t out_pos;
    OutPhase phase;
    bool live;                  /* pre-copy with a dirty log */
    bool final;                 /* the machine is stopped: the last pass */
    bool was_running;
    uint8_t src_state;          /* MIG_SRC_*: the run state to carry over */
    unsigned pass;
    uint64_t ram_pos;           /* next RAM offset of this pass */
    unsigned long *bitmap;      /* this pass's pages (NULL: all) */
    uint32_t records;
    int64_t pass_start_ms;
    uint64_t pass_bytes;
    int64_t stop_ms;
} MigOut;

typedef struct MigIn {
    int lfd, fd;
    pid_t pid;
    QnicFdWatch *watch;
    QnicMigLoader loader;
    bool autostart;
} MigIn;

static struct {
    QnicMachine *m;
    const char *accel_name;
    const QnicMigrationAccelOps *ops;
    void *accel_state;
    QnicMigStats st;
    MigOut *out;
    MigIn *in;
    bool incoming_deferred;     /* -incoming defer, migrate-incoming not yet */
    bool incoming_autostart;
    bool incoming_given;        /* -incoming on the command line */
    bool events;                /* the "events" capability */
    QnicMigEventFunc *event;
    QnicTimer *announce_timer;
    int announce_round;
    QnicBH *fail_bh;            /* reports an asynchronous connect failure */
} mig;

const char *const qnic_mig_capability_names[] = {
    "xbzrle", "rdma-pin-all", "auto-converge", "zero-blocks", "compress", "events",
    "postcopy-ram", "x-colo", "release-ram", "block", "return-path",
    "pause-before-switchover", "multifd", "dirty-bitmaps", "postcopy-blocktime",
    "late-block-activate", "x-ignore-shared", "validate-uuid", "background-snapshot",
    "zero-copy-send", "postcopy-preempt", NULL,
};

static int64_t now_ms(void)
{
    return g_get_monotonic_time() / 1000;
}

const char *qnic_mig_status_name(QnicMigStatus st)
{
    static const char *const names[] = {
        "none", "setup", "active", "cancelling", "cancelled", "completed", "failed",
    };
    return names[st];
}

void qnic_migration_set_event_hook(QnicMigEventFunc *fn)
{
    mig.event = fn;
}

static void emit(const char *event, const char *status, int pass)
{
    if (mig.event && mig.m) {
        mig.event(mig.m, event, status, pass);
    }
}

/* QEMU sends MIGRATION and MIGRATION_PASS only with the events capability. */
static void set_status(QnicMigStatus st)
{
    mig.st.status = st;
    if (mig.events) {
        emit("MIGRATION", qnic_mig_status_name(st), 0);
    }
}

bool qnic_migration_capability(const char *name)
{
    return g_str_equal(name, "events") ? mig.events : false;
}

bool qnic_migration_set_capability(const char *name, bool on, GError **errp)
{
    if (g_str_equal(name, "events")) {
        mig.events = on;
        return true;
    }
    if (on) {
        qnic_error_setg(errp, "Migration capability '%s' is not supported by qnic", name);
        return false;
    }
    return true;
}

const QnicMigStats *qnic_migration_stats(void)
{
    if (mig.out && mig.st.status == MIG_ACTIVE) {
        mig.st.total_ms = now_ms() - mig.st.start_ms;
    }
    return &mig.st;
}

/* ---- the qtest accelerator's part: its manual clock ---- */

typedef struct QtestSnap {
    uint64_t clock_ns;
} QtestSnap;

static const QnicStateField qtest_fields[] = {
    QNIC_STATE_UINT(QtestSnap, clock_ns, 0),
    QNIC_STATE_END,
};

static const QnicStateDesc qtest_desc = {
    .name = "qtest", .version = 1, .min_version = 1,
    .size = sizeof(QtestSnap), .fields = qtest_fields,
};

static bool qtest_save(void *state, QnicMachine *m, GByteArray *out, GError **errp)
{
    QtestSnap s = { .clock_ns = (uint64_t)qnic_clock_ns() };

    qnic_state_write(out, &qtest_desc, &s);
    return true;
}

static bool qtest_load(void *state, QnicMachine *m, QnicStateReader *r, GError **errp)
{
    QtestSnap s;

    if (!qnic_state_read(r, &qtest_desc, &s, errp)) {
        return false;
    }
    if (s.clock_ns > INT64_MAX) {
        qnic_error_setg(errp, "qtest clock %" PRIu64 " out of range", s.clock_ns);
        return false;
    }
    qnic_main_loop_clock_set((int64_t)s.clock_ns);
    return true;
}

const QnicMigrationAccelOps qnic_migration_qtest_ops = {
    .no_cpu_ram_writes = true,
    .save = qtest_save,
    .load = qtest_load,
};

/* ---- dirty pages ---- */

static uint64_t ram_pages(void)
{
    return mig.m->ram_size / PAGE;
}

static unsigned long *bitmap_new(void)
{
    return g_new0(unsigned long, (ram_pages() + LONG_BITS - 1) / LONG_BITS + 1);
}

static bool can_log(void)
{
    return mig.ops->no_cpu_ram_writes || (mig.ops->dirty_log_start && mig.ops->dirty_log_sync);
}

static void dirty_log_start(MigOut *o)
{
    GError *err = NULL;

    o->live = can_log();
    if (o->live && mig.ops->dirty_log_start &&
        !mig.ops->dirty_log_start(mig.accel_state, mig.m, &err)) {
        qnic_warn("migration: no dirty log (%s): stop-and-copy", err->message);
        g_error_free(err);
        o->live = false;
    }
    if (o->live) {
        qnic_region_dirty_log_start(&mig.m->ram_low);
        if (mig.m->above_4g) {
            qnic_region_dirty_log_start(&mig.m->ram_high);
        }
    }
}

static void dirty_log_stop(MigOut *o)
{
    if (!o->live) {
        return;
    }
    if (mig.ops->dirty_log_stop) {
        mig.ops->dirty_log_stop(mig.accel_state, mig.m);
    }
    qnic_region_dirty_log_stop(&mig.m->ram_low);
    qnic_region_dirty_log_stop(&mig.m->ram_high);
    o->live = false;
}

/* The pages written since the last sync, and how many. */
static unsigned long *dirty_sync(uint64_t *count)
{
    unsigned long *b = bitmap_new();
    uint64_t below = mig.m->below_4g / PAGE;

    if (mig.ops->dirty_log_sync) {
        mig.ops->dirty_log_sync(mig.accel_state, mig.m, b);
    }
    qnic_region_dirty_log_sync(&mig.m->ram_low, b);
    if (mig.m->above_4g) {
        /* the high region's page i is RAM page below + i */
        unsigned long *hb = g_new0(unsigned long, (ram_pages() - below) / LONG_BITS + 2);
        qnic_region_dirty_log_sync(&mig.m->ram_high, hb);
        for (uint64_t i = 0; i < ram_pages() - below; i++) {
            if (hb[i / LONG_BITS] & (1ul << (i % LONG_BITS))) {
                b[(below + i) / LONG_BITS] |= 1ul << ((below + i) % LONG_BITS);
            }
        }
        g_free(hb);
    }
    *count = 0;
    for (uint64_t i = 0; i < ram_pages(); i++) {
        *count += !!(b[i / LONG_BITS] & (1ul << (i % LONG_BITS)));
    }
    mig.st.dirty_syncs++;
    return b;
}

static bool page_dirty(const unsigned long *b, uint64_t page)
{
    return !b || (b[page / LONG_BITS] & (1ul << (page % LONG_BITS)));
}

/* ---- source ---- */

/* An exec: child has its stream closed now and ends soon: reap it, waiting
 * at most a second (a child that lingers is reaped at exit). */
static void reap_child(pid_t pid)
{
    for (int i = 0; pid > 0 && i < 1000; i++) {
        if (waitpid(pid, NULL, WNOHANG) != 0) {
            return;
        }
        g_usleep(1000);
    }
}

static void out_free(MigOut *o)
{
    if (o->watch) {
        qnic_fd_watch_remove(o->watch);
    }
    if (o->fd >= 0) {
        close(o->fd);
    }
    reap_child(o->pid);
    dirty_log_stop(o);
    g_byte_array_free(o->out, TRUE);
    g_free(o->bitmap);
    g_free(o);
}

/* The migration ended (completed, failed, cancelled): tidy up, and run
 * the machine again unless it completed. */
static void out_finish(QnicMigStatus st, const char *error)
{
    MigOut *o = mig.out;
    bool resume = st != MIG_COMPLETED && o && o->was_running && o->final;

    mig.out = NULL;
    if (o) {
        out_free(o);
    }
    mig.st.total_ms = now_ms() - mig.st.start_ms;
    if (error) {
        g_free(mig.st.error);
        mig.st.error = g_strdup(error);
    }
    if (st == MIG_COMPLETED) {
        mig.st.remaining = 0;
        qnic_vmm_set_runstate(QNIC_RUNSTATE_POSTMIGRATE);
    } else if (resume) {
        qnic_vmm_set_running(true);
        emit("RESUME", NULL, 0);
    } else if (qnic_vmm_runstate() == QNIC_RUNSTATE_FINISH_MIGRATE) {
        qnic_vmm_set_runstate(QNIC_RUNSTATE_POSTMIGRATE);
    }
    set_status(st);
}

static void out_fail(const char *fmt, ...) G_GNUC_PRINTF(1, 2);

static void out_fail(const char *fmt, ...)
{
    va_list ap;
    g_autofree char *msg = NULL;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    qnic_warn("migration failed: %s", msg);
    out_finish(MIG_FAILED, msg);
}

/* Stop the machine for the last pass (STOP if it ran). */
static void out_stop(MigOut *o)
{
    uint64_t n = 0;

    o->stop_ms = now_ms();
    o->was_running = qnic_vmm_runstate() == QNIC_RUNSTATE_RUNNING;
    o->src_state = o->was_running ? MIG_SRC_RUNNING :
                   qnic_vmm_runstate() == QNIC_RUNSTATE_PRELAUNCH ? MIG_SRC_PRELAUNCH :
                   MIG_SRC_PAUSED;
    if (o->was_running) {
        qnic_vmm_set_running(false);
        emit("STOP", NULL, 0);
    }
    qnic_vmm_set_runstate(QNIC_RUNSTATE_FINISH_MIGRATE);
    o->final = true;
    if (o->live) {
        g_free(o->bitmap);
        o->bitmap = dirty_sync(&n);
    }
}

/* A pass over RAM ended: decide the next one, or the switch-over. */
static void out_next_pass(MigOut *o)
{
    uint64_t dirty = 0;
    int64_t ms = MAX(now_ms() - o->pass_start_ms, 1);
    uint64_t limit = MAX(o->pass_bytes * DOWNTIME_LIMIT_MS / ms, (uint64_t)MIN_SWITCH_BYTES);

    if (!o->final) {
        unsigned long *b = dirty_sync(&dirty);
        mig.st.remaining = dirty * PAGE;
        if (dirty * PAGE <= limit || o->pass >= MAX_PASSES) {
            g_free(b);
            out_stop(o);
        } else {
            g_free(o->bitmap);
            o->bitmap = b;
        }
    } else {
        o->phase = PH_FLUSH;
        return;
    }
    o->pass++;
    o->ram_pos = 0;
    o->pass_start_ms = now_ms();
    o->pass_bytes = 0;
    if (mig.events) {
        emit("MIGRATION_PASS", NULL, (int)o->pass);
    }
}

/* The device, accelerator and machine records and the end mark. */
static bool out_put_state(MigOut *o, GError **errp)
{
    guint before = o->out->len;
    uint32_t n = 0;

    if (!qnic_mig_put_accel(o->out, mig.accel_name, mig.ops, mig.accel_state, mig.m, errp) ||
        !qnic_mig_put_devices(o->out, mig.m, errp)) {
        return false;
    }
    qnic_mig_put_machine(o->out, mig.m);
    for (size_t p = before; p < o->out->len; n++) {
        p += MIG_REC_HEADER_LEN + qnic_ld32(o->out->data + p + 1);
    }
    o->records += n;
    qnic_mig_put_record_header(o->out, MIG_REC_END, 5);
    uint8_t end[5];
    qnic_st32(end, o->records);
    end[4] = o->src_state;
    g_byte_array_append(o->out, end, 5);
    return true;
}

/* Produce RAM records of this pass until the queue is full. */
static void out_produce(MigOut *o)
{
    uint64_t total = mig.m->ram_size;

    while (o->phase == PH_RAM && o->out->len - o->out_pos < OUT_HIGH_WATER) {
        uint64_t page = o->ram_pos / PAGE, end;
        while (o->ram_pos < total && !page_dirty(o->bitmap, page)) {
            o->ram_pos += PAGE;
            page++;
        }
        if (o->ram_pos >= total) {
            bool was_final = o->final;
            out_next_pass(o);
            if (was_final) {
                GError *err = NULL;
                if (!out_put_state(o, &err)) {
                    out_fail("%s", err->message);
                    g_error_free(err);
                    return;
                }
            }
            continue;
        }
        end = o->ram_pos + PAGE;
        while (end < total && end - o->ram_pos < MIG_RAM_CHUNK && page_dirty(o->bitmap, end / PAGE)) {
            end += PAGE;
        }
        o->pass_bytes += qnic_mig_put_ram(o->out, mig.m, o->ram_pos, end - o->ram_pos,
                                          &o->records, &mig.st.duplicate, &mig.st.normal);
        o->ram_pos = end;
    }
}

/* Write what is queued; produce more when the queue runs low. */
static void out_writable(void *opaque, int fd, GIOCondition cond)
{
    MigOut *o = mig.out;

    for (int rounds = 0; o && rounds < 16; rounds++) {
        if (o->out->len - o->out_pos < OUT_HIGH_WATER / 2) {
            out_produce(o);
            o = mig.out;            /* a failure ends it */
            if (!o) {
                return;
            }
        }
        if (o->out_pos == o->out->len) {
            if (o->phase == PH_FLUSH) {
                mig.st.downtime_ms = now_ms() - o->stop_ms;
                out_finish(MIG_COMPLETED, NULL);
            }
            return;
        }
        ssize_t n = write(o->fd, o->out->data + o->out_pos, o->out->len - o->out_pos);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        }
        if (n <= 0) {
            out_fail("Unable to write to the migration stream: %s",
                     n < 0 ? g_strerror(errno) : "closed");
            return;
        }
        o->out_pos += n;
        mig.st.transferred += n;
        if (o->out_pos >= OUT_HIGH_WATER) {
            g_byte_array_remove_range(o->out, 0, o->out_pos);
            o->out_pos = 0;
        }
    }
}

/* Devices whose models cannot save their state block migration. */
static bool check_blockers(GError **errp)
{
    g_autoptr(GString) names = g_string_new(NULL);

    for (guint i = 0; i < mig.m->devices->len; i++) {
        QnicDevice *d = g_ptr_array_index(mig.m->devices, i);
        if (!d->cls->save_state || !d->cls->load_state) {
            g_autofree char *path = qnic_device_path(d);
            g_string_append_printf(names, "%s'%s' (%s)", names->len ? ", " : "", path,
                                   d->cls->name);
        }
    }
    if (names->len) {
        qnic_error_setg(errp, "State blocked by non-migratable device %s: its model cannot "
                        "save its state yet", names->str);
        return false;
    }
    return true;
}

static void fail_bh(void *opaque)
{
    out_fail("%s", mig.st.error ? mig.st.error : "cannot open the channel");
}

/* The stream's header and the machine's description. */
static void out_put_header(MigOut *o)
{
    g_autofree char *cfg = qnic_mig_config_text(mig.m, mig.accel_name);
    uint8_t v[4];

    g_byte_array_append(o->out, (const uint8_t *)MIG_MAGIC, 8);
    qnic_st32(v, MIG_VERSION);
    g_byte_array_append(o->out, v, 4);
    qnic_mig_put_record_header(o->out, MIG_REC_CONFIG, (uint32_t)strlen(cfg));
    g_byte_array_append(o->out, (const uint8_t *)cfg, strlen(cfg));
    o->records = 1;
}

bool qnic_migration_start(const char *uri, GError **errp)
{
    GError *err = NULL;
    MigOut *o;
    int fd;
    pid_t pid;

    if (mig.out || mig.st.status == MIG_SETUP) {
        qnic_error_setg(errp, "There's a migration process in progress");
        return false;
    }
    if (!mig.ops) {
        qnic_error_setg(errp, "migration is not supported with the %s accelerator yet",
                        mig.accel_name ? mig.accel_name : "current");
        return false;
    }
    if (qnic_vmm_runstate() == QNIC_RUNSTATE_POSTMIGRATE) {
        qnic_error_setg(errp, "Can't migrate the vm that was paused due to previous migration");
        return false;
    }
    if (mig.in || qnic_vmm_runstate() == QNIC_RUNSTATE_INMIGRATE) {
        qnic_error_setg(errp, "Guest is waiting for an incoming migration");
        return false;
    }
    if (!check_blockers(errp)) {
        return false;
    }
    g_clear_pointer(&mig.st.error, g_free);
    mig.st = (QnicMigStats){ .start_ms = now_ms() };
    set_status(MIG_SETUP);
    fd = qnic_mig_connect(uri, &pid, &err);
    if (fd < 0) {
        /* QEMU refuses a bad URI or fd name at once, and reports a failed
         * connect asynchronously (migrate returns, then MIGRATION failed). */
        bool sync = !qnic_mig_uri_known(uri) || g_str_has_prefix(uri, "fd:") ||
                    g_str_has_prefix(err->message, "error parsing address");
        mig.st.error = g_strdup(err->message);
        if (sync) {
            set_status(MIG_FAILED);
            g_propagate_error(errp, err);
            return false;
        }
        g_error_free(err);
        qnic_bh_schedule(mig.fail_bh);
        return true;
    }
    o = g_new0(MigOut, 1);
    o->fd = fd;
    o->pid = pid;
    o->out = g_byte_array_new();
    mig.out = o;
    mig.st.total = mig.m->ram_size;
    mig.st.remaining = mig.m->ram_size;
    out_put_header(o);
    dirty_log_start(o);
    mig.st.setup_ms = now_ms() - mig.st.start_ms;
    if (mig.events) {
        emit("MIGRATION_PASS", NULL, 1);
    }
    o->pass = 1;
    o->pass_start_ms = now_ms();
    set_status(MIG_ACTIVE);
    if (!o->live) {
        out_stop(o);
    }
    o->watch = qnic_fd_watch_add(fd, G_IO_OUT | G_IO_ERR | G_IO_HUP, out_writable, NULL);
    return true;
}

void qnic_migration_cancel(void)
{
    if (!mig.out) {
        return;
    }
    set_status(MIG_CANCELLING);
    out_finish(MIG_CANCELLED, NULL);
}

/* ---- destination ---- */

static void announce_round(void *opaque)
{
    /* QEMU's announce defaults: 5 rounds, 50 ms then +100 ms, at most 550 */
    int64_t wait = MIN(50 + 100 * mig.announce_round, 550);

    for (GList *l = qnic_net_clients(mig.m->cfg.backends); l; l = l->next) {
        QnicNetClient *nc = l->data;
        if (nc->ops->kind == QNIC_NET_CLIENT_NIC && nc->queue_index == 0) {
            qnic_net_announce_self(nc);
        }
    }
    if (++mig.announce_round < 5) {
        qnic_timer_mod(mig.announce_timer, qnic_clock_ns() + wait * 1000000);
    }
}

static void in_free(MigIn *in)
{
    if (in->watch) {
        qnic_fd_watch_remove(in->watch);
    }
    if (in->fd >= 0) {
        close(in->fd);
    }
    if (in->lfd >= 0) {
        close(in->lfd);
    }
    reap_child(in->pid);
    qnic_mig_loader_destroy(&in->loader);
    g_free(in);
}

/* The whole stream is in: switch over, or fail and end the process. */
static void in_done(MigIn *in, GError *err)
{
    uint8_t src = in->loader.source_state;
    bool autostart = in->autostart;

    mig.in = NULL;
    if (!err) {
        qnic_mig_loader_finish(&in->loader, &err);
    }
    in_free(in);
    if (err) {
        qnic_report("load of migration failed: %s", err->message);
        g_free(mig.st.error);
        mig.st.error = g_strdup(err->message);
        g_error_free(err);
        set_status(MIG_FAILED);
        qnic_vmm_request_exit(1);
        return;
    }
    mig.announce_round = 0;
    announce_round(NULL);
    set_status(MIG_COMPLETED);
    /* QEMU's rule: a running source's guest runs here unless -S; else
     * the destination takes the source's state (prelaunch or paused) */
    if (src == MIG_SRC_RUNNING && autostart) {
        qnic_vmm_set_runstate(QNIC_RUNSTATE_PRELAUNCH);
        qnic_vmm_set_running(true);
        emit("RESUME", NULL, 0);
    } else {
        qnic_vmm_set_runstate(src == MIG_SRC_PRELAUNCH ? QNIC_RUNSTATE_PRELAUNCH
                                                       : QNIC_RUNSTATE_PAUSED);
    }
}

static void in_readable(void *opaque, int fd, GIOCondition cond)
{
    MigIn *in = mig.in;
    uint8_t buf[256 * 1024];
    GError *err = NULL;

    for (int rounds = 0; in && rounds < 16; rounds++) {
        ssize_t n = read(in->fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        }
        if (n < 0) {
            qnic_error_setg(&err, "reading the migration stream: %s", g_strerror(errno));
        }
        if (n <= 0) {
            in_done(in, err);
            return;
        }
        mig.st.transferred += n;
        if (!qnic_mig_loader_feed(&in->loader, buf, n, &err)) {
            in_done(in, err);
            return;
        }
    }
}

static void in_accept(void *opaque, int fd, GIOCondition cond)
{
    MigIn *in = mig.in;
    int c = accept4(in->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

    if (c < 0) {
        return;
    }
    /* QEMU takes one connection and stops listening */
    qnic_fd_watch_remove(in->watch);
    close(in->lfd);
    in->lfd = -1;
    in->fd = c;
    set_status(MIG_ACTIVE);
    in->watch = qnic_fd_watch_add(c, G_IO_IN | G_IO_HUP | G_IO_ERR, in_readable, NULL);
}

static bool in_start(const char *uri, GError **errp)
{
    MigIn *in = g_new0(MigIn, 1);
    bool listening;

    in->fd = in->lfd = -1;
    in->autostart = mig.incoming_autostart;
    mig.st = (QnicMigStats){ .incoming = true, .start_ms = now_ms() };
    set_status(MIG_SETUP);
    int fd = qnic_mig_listen(uri, &listening, &in->pid, errp);
    if (fd < 0) {
        g_free(in);
        set_status(MIG_FAILED);
        return false;
    }
    qnic_mig_loader_init(&in->loader, mig.m, mig.accel_name, mig.ops, mig.accel_state);
    mig.in = in;
    if (listening) {
        in->lfd = fd;
        in->watch = qnic_fd_watch_add(fd, G_IO_IN, in_accept, NULL);
    } else {
        in->fd = fd;
        set_status(MIG_ACTIVE);
        in->watch = qnic_fd_watch_add(fd, G_IO_IN | G_IO_HUP | G_IO_ERR, in_readable, NULL);
    }
    return true;
}

/* -incoming: remembered until the machine exists (qnic_migration_init). */
static char *pending_incoming;

bool qnic_migration_incoming(const char *uri, bool autostart, GError **errp)
{
    mig.incoming_autostart = autostart;
    mig.incoming_given = true;
    if (g_str_equal(uri, "defer")) {
        mig.incoming_deferred = true;
        return true;
    }
    if (!mig.m) {
        g_free(pending_incoming);
        pending_incoming = g_strdup(uri);
        return true;
    }
    return in_start(uri, errp);
}

void qnic_migration_set_autostart(void)
{
    mig.incoming_autostart = true;
    if (mig.in) {
        mig.in->autostart = true;
    }
}

bool qnic_migration_incoming_deferred(void)
{
    return mig.incoming_deferred;
}

bool qnic_migration_incoming_start(const char *uri, GError **errp)
{
    if (!mig.incoming_given) {
        qnic_error_setg(errp, "'-incoming' was not specified on the command line");
        return false;
    }
    if (!mig.incoming_deferred) {
        qnic_error_setg(errp, "The incoming migration has already been started");
        return false;
    }
    if (!mig.ops) {
        qnic_error_setg(errp, "migration is not supported with the %s accelerator yet",
                        mig.accel_name);
        return false;
    }
    if (!in_start(uri, errp)) {
        return false;
    }
    mig.incoming_deferred = false;
    return true;
}

void qnic_migration_init(QnicMachine *m, const char *accel_name,
                         const QnicMigrationAccelOps *ops, void *accel_state)
{
    mig.m = m;
    mig.accel_name = accel_name;
    mig.ops = ops;
    mig.accel_state = accel_state;
    mig.fail_bh = qnic_bh_new(fail_bh, NULL);
    mig.announce_timer = qnic_timer_new(announce_round, NULL);
    if (pending_incoming || mig.incoming_deferred) {
        qnic_vmm_set_runstate(QNIC_RUNSTATE_INMIGRATE);
    }
    if (pending_incoming) {
        GError *err = NULL;
        if (!in_start(pending_incoming, &err)) {
            qnic_report("-incoming %s: %s", pending_incoming, err->message);
            g_error_free(err);
            qnic_vmm_request_exit(1);
        }
        g_clear_pointer(&pending_incoming, g_free);
    }
}

void qnic_migration_cleanup(void)
{
    if (mig.out) {
        out_free(mig.out);
        mig.out = NULL;
    }
    if (mig.in) {
        in_free(mig.in);
        mig.in = NULL;
    }
    g_clear_pointer(&mig.fail_bh, qnic_bh_free);
    g_clear_pointer(&mig.announce_timer, qnic_timer_free);
    g_clear_pointer(&mig.st.error, g_free);
    qnic_mig_fds_free();
    mig.m = NULL;
}
