/*
 * The event loop, the big lock, bottom halves and fd watches. The loop is
 * GLib's default context; a poll function drops the BQL while blocked so
 * vCPU threads can dispatch MMIO meanwhile. BHs and virtual-clock timers are
 * two custom GSources on that context.
 */
#include "qnic/mainloop.h"
#include "qnic/clock.h"
#include <glib-unix.h>

static GMutex bql;
static __thread bool bql_held;
static GPollFunc default_poll;
static bool loop_initialized;
/* This thread is inside qnic_main_loop_iterate: what it schedules is seen
 * by the loop's next prepare, so it needs no wakeup (an eventfd write and
 * read per BH, two system calls per TX burst on the data path). */
static __thread bool in_iteration;

void qnic_bql_lock(void)
{
    g_mutex_lock(&bql);
    bql_held = true;
}

void qnic_bql_unlock(void)
{
    bql_held = false;
    g_mutex_unlock(&bql);
}

bool qnic_bql_locked(void)
{
    return bql_held;
}

static gint qnic_poll(GPollFD *fds, guint nfds, gint timeout)
{
    bool held = bql_held;
    gint r;

    if (held && timeout != 0) {
        qnic_bql_unlock();
    }
    r = default_poll(fds, nfds, timeout);
    if (held && timeout != 0) {
        qnic_bql_lock();
    }
    return r;
}

/* ---- bottom halves ---- */

struct QnicBH {
    QnicBHFunc *cb;
    void *opaque;
    bool scheduled;
    bool deleted;
};

static GPtrArray *bh_list;     /* every live BH */
static unsigned bh_pending;

QnicBH *qnic_bh_new(QnicBHFunc *cb, void *opaque)
{
    QnicBH *bh = g_new0(QnicBH, 1);

    bh->cb = cb;
    bh->opaque = opaque;
    if (!bh_list) {
        bh_list = g_ptr_array_new();
    }
    g_ptr_array_add(bh_list, bh);
    return bh;
}

void qnic_bh_schedule(QnicBH *bh)
{
    if (!bh->scheduled) {
        bh->scheduled = true;
        bh_pending++;
        if (!in_iteration && (!bql_held || loop_initialized)) {
            g_main_context_wakeup(g_main_context_default());
        }
    }
}

void qnic_bh_cancel(QnicBH *bh)
{
    if (bh->scheduled) {
        bh->scheduled = false;
        bh_pending--;
    }
}

void qnic_bh_free(QnicBH *bh)
{
    if (!bh) {
        return;
    }
    qnic_bh_cancel(bh);
    g_ptr_array_remove(bh_list, bh);
    g_free(bh);
}

bool qnic_bh_poll(void)
{
    bool ran = false;
    /* A BH may schedule others (or itself); bound the rounds so one that
     * keeps rescheduling itself cannot starve the loop. */
    for (int round = 0; round < 64 && bh_pending; round++) {
        for (guint i = 0; bh_list && i < bh_list->len; i++) {
            QnicBH *bh = g_ptr_array_index(bh_list, i);
            if (bh->scheduled) {
                bh->scheduled = false;
                bh_pending--;
                bh->cb(bh->opaque);
                ran = true;
            }
        }
    }
    return ran;
}

static gboolean bh_prepare(GSource *s, gint *timeout)
{
    *timeout = bh_pending ? 0 : -1;
    return bh_pending != 0;
}

static gboolean bh_check(GSource *s)
{
    return bh_pending != 0;
}

static gboolean bh_dispatch(GSource *s, GSourceFunc cb, gpointer data)
{
    qnic_bh_poll();
    return G_SOURCE_CONTINUE;
}

static GSourceFuncs bh_source_funcs = {
    .prepare = bh_prepare, .check = bh_check, .dispatch = bh_dispatch,
};

/* ---- the manual clock, stepped with its BHs ---- */

int64_t qnic_main_loop_clock_set(int64_t target)
{
    if (qnic_clock_mode() != QNIC_CLOCK_MANUAL) {
        return qnic_clock_ns();
    }
    for (unsigned n = 0; n < QNIC_CLOCK_MAX_FIRED && qnic_clock_fire_next(target); n++) {
        qnic_bh_poll();
    }
    int64_t now = qnic_clock_set(target);
    qnic_bh_poll();
    return now;
}

int64_t qnic_main_loop_clock_step(int64_t ns)
{
    return qnic_main_loop_clock_set(qnic_clock_ns() + MAX(ns, 0));
}

/* ---- virtual-clock timers on the loop (realtime mode) ---- */

static gboolean timer_prepare(GSource *s, gint *timeout)
{
    int64_t dl = qnic_clock_deadline();

    if (qnic_clock_mode() != QNIC_CLOCK_REALTIME || dl < 0) {
        *timeout = -1;
        return FALSE;
    }
    int64_t now = qnic_clock_ns();
    if (dl <= now) {
        *timeout = 0;
        return TRUE;
    }
    int64_t ms = (dl - now + 999999) / 1000000;
    *timeout = ms > G_MAXINT ? G_MAXINT : (gint)ms;
    return FALSE;
}

static gboolean timer_check(GSource *s)
{
    int64_t dl = qnic_clock_deadline();
    return qnic_clock_mode() == QNIC_CLOCK_REALTIME && dl >= 0 && dl <= qnic_clock_ns();
}

static gboolean timer_dispatch(GSource *s, GSourceFunc cb, gpointer data)
{
    qnic_clock_run_due();
    return G_SOURCE_CONTINUE;
}

static GSourceFuncs timer_source_funcs = {
    .prepare = timer_prepare, .check = timer_check, .dispatch = timer_dispatch,
};

static void loop_init(void)
{
    GMainContext *ctx = g_main_context_default();
    GSource *s;

    if (loop_initialized) {
        return;
    }
    loop_initialized = true;
    /* A timer armed from a vCPU thread must shorten the poll under way. */
    qnic_clock_set_armed_notify(qnic_main_loop_wakeup);
    default_poll = g_main_context_get_poll_func(ctx);
    g_main_context_set_poll_func(ctx, qnic_poll);
    s = g_source_new(&bh_source_funcs, sizeof(GSource));
    g_source_set_name(s, "qnic-bh");
    /* Nothing dispatches the loop recursively; letting sources "recurse"
     * stops GLib from blocking and unblocking their fds around each
     * dispatch, which costs a wakeup-eventfd write every time (measured:
     * 9 -> 5.8 syscalls per received frame, see docs/benchmarks.md). */
    g_source_set_can_recurse(s, TRUE);
    g_source_attach(s, ctx);
    g_source_unref(s);
    s = g_source_new(&timer_source_funcs, sizeof(GSource));
    g_source_set_name(s, "qnic-timers");
    g_source_set_can_recurse(s, TRUE);
    g_source_attach(s, ctx);
    g_source_unref(s);
}

GMainContext *qnic_main_context(void)
{
    loop_init();
    return g_main_context_default();
}

bool qnic_main_loop_iterate(bool blocking)
{
    bool outer = in_iteration;
    bool r;

    loop_init();
    in_iteration = true;
    r = g_main_context_iteration(g_main_context_default(), blocking);
    in_iteration = outer;
    return r;
}

void qnic_main_loop_wakeup(void)
{
    g_main_context_wakeup(g_main_context_default());
}

/* ---- fd watches ---- */

typedef struct FdSource {
    GSource src;
    gpointer tag;
    QnicFdWatch *w;
} FdSource;

struct QnicFdWatch {
    FdSource *src;
    int fd;
    QnicFdFunc *cb;
    void *opaque;
};

static gboolean fd_dispatch(GSource *s, GSourceFunc cb, gpointer data)
{
    FdSource *fs = (FdSource *)s;
    GIOCondition cond = g_source_query_unix_fd(s, fs->tag);

    if (cond) {
        fs->w->cb(fs->w->opaque, fs->w->fd, cond);
    }
    return G_SOURCE_CONTINUE;
}

static GSourceFuncs fd_source_funcs = { .dispatch = fd_dispatch };

QnicFdWatch *qnic_fd_watch_add(int fd, GIOCondition cond, QnicFdFunc *cb, void *opaque)
{
    QnicFdWatch *w = g_new0(QnicFdWatch, 1);

    loop_init();
    w->fd = fd;
    w->cb = cb;
    w->opaque = opaque;
    w->src = (FdSource *)g_source_new(&fd_source_funcs, sizeof(FdSource));
    w->src->w = w;
    w->src->tag = g_source_add_unix_fd(&w->src->src, fd, cond);
    g_source_set_can_recurse(&w->src->src, TRUE);
    g_source_attach(&w->src->src, g_main_context_default());
    return w;
}

void qnic_fd_watch_set(QnicFdWatch *w, GIOCondition cond)
{
    g_source_modify_unix_fd(&w->src->src, w->src->tag, cond);
}

void qnic_fd_watch_remove(QnicFdWatch *w)
{
    if (!w) {
        return;
    }
    g_source_destroy(&w->src->src);
    g_source_unref(&w->src->src);
    g_free(w);
}
