/*
 * The virtual clock. Timers live in one list sorted by deadline; in manual
 * mode (qtest, fuzzers) time moves only by qnic_clock_step/set, which fire
 * due timers one at a time in order, moving the clock to each deadline first
 * so a callback that re-arms relative to "now" sees the right time. The
 * clock knows nothing of the event loop: whoever steps it runs the bottom
 * halves the timers schedule (qnic_main_loop_clock_set), and the loop learns
 * of a newly armed timer through the notifier it installs.
 */
#include "qnic/clock.h"
#include <time.h>

struct QnicTimer {
    QnicTimerFunc *cb;
    void *opaque;
    int64_t expire;      /* -1 = not pending */
};

static QnicClockMode clock_mode = QNIC_CLOCK_MANUAL;
static int64_t manual_now;
static int64_t realtime_base = -1;
static GList *active;    /* QnicTimer *, sorted by expire */
static QnicClockNotify *armed_notify;

static int64_t monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

void qnic_clock_set_mode(QnicClockMode mode)
{
    clock_mode = mode;
    if (mode == QNIC_CLOCK_REALTIME && realtime_base < 0) {
        realtime_base = monotonic_ns() - manual_now;
    }
}

void qnic_clock_set_armed_notify(QnicClockNotify *cb)
{
    armed_notify = cb;
}

QnicClockMode qnic_clock_mode(void)
{
    return clock_mode;
}

int64_t qnic_clock_ns(void)
{
    if (clock_mode == QNIC_CLOCK_REALTIME) {
        return monotonic_ns() - realtime_base;
    }
    return manual_now;
}

QnicTimer *qnic_timer_new(QnicTimerFunc *cb, void *opaque)
{
    QnicTimer *t = g_new0(QnicTimer, 1);
    t->cb = cb;
    t->opaque = opaque;
    t->expire = -1;
    return t;
}

static gint timer_cmp(gconstpointer a, gconstpointer b)
{
    const QnicTimer *x = a, *y = b;
    return x->expire < y->expire ? -1 : x->expire > y->expire ? 1 : 0;
}

void qnic_timer_del(QnicTimer *t)
{
    if (t && t->expire >= 0) {
        active = g_list_remove(active, t);
        t->expire = -1;
    }
}

void qnic_timer_mod(QnicTimer *t, int64_t expire_ns)
{
    qnic_timer_del(t);
    t->expire = expire_ns < 0 ? 0 : expire_ns;
    active = g_list_insert_sorted(active, t, timer_cmp);
    if (clock_mode == QNIC_CLOCK_REALTIME && armed_notify) {
        armed_notify();
    }
}

bool qnic_timer_pending(const QnicTimer *t)
{
    return t->expire >= 0;
}

int64_t qnic_timer_expire_time(const QnicTimer *t)
{
    return t->expire;
}

void qnic_timer_free(QnicTimer *t)
{
    if (t) {
        qnic_timer_del(t);
        g_free(t);
    }
}

int64_t qnic_clock_deadline(void)
{
    return active ? ((QnicTimer *)active->data)->expire : -1;
}

/* Fire the earliest timer if it is due at or before `limit`. */
static bool fire_one(int64_t limit)
{
    QnicTimer *t;

    if (!active) {
        return false;
    }
    t = active->data;
    if (t->expire > limit) {
        return false;
    }
    active = g_list_delete_link(active, active);
    if (clock_mode == QNIC_CLOCK_MANUAL && t->expire > manual_now) {
        manual_now = t->expire;
    }
    t->expire = -1;
    t->cb(t->opaque);
    return true;
}

bool qnic_clock_fire_next(int64_t target)
{
    if (clock_mode != QNIC_CLOCK_MANUAL) {
        return false;
    }
    return fire_one(MAX(target, manual_now));
}

int64_t qnic_clock_set(int64_t target)
{
    if (clock_mode != QNIC_CLOCK_MANUAL) {
        return qnic_clock_ns();
    }
    if (target < manual_now) {
        target = manual_now;
    }
    /* A timer re-armed for "now" on every call could loop forever; a bound
     * keeps one clock_step finite even then. */
    for (unsigned n = 0; n < QNIC_CLOCK_MAX_FIRED && fire_one(target); n++) {
    }
    manual_now = target;
    return manual_now;
}

int64_t qnic_clock_step(int64_t ns)
{
    if (ns < 0) {
        ns = 0;
    }
    return qnic_clock_set(manual_now + ns);
}

int qnic_clock_run_due(void)
{
    int64_t now = qnic_clock_ns();
    for (unsigned n = 0; n < 100000 && fire_one(now); n++) {
    }
    int64_t dl = qnic_clock_deadline();
    if (dl < 0) {
        return -1;
    }
    now = qnic_clock_ns();
    return dl <= now ? 0 : (int)MIN((dl - now + 999999) / 1000000, (int64_t)G_MAXINT);
}

void qnic_clock_reset(void)
{
    while (active) {
        ((QnicTimer *)active->data)->expire = -1;
        active = g_list_delete_link(active, active);
    }
    manual_now = 0;
}
