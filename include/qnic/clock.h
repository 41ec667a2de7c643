/*
 * The virtual clock and its timers. Under KVM the clock follows
 * CLOCK_MONOTONIC; in qtest mode (and fuzzers) it is manual and only moves on
 * clock_step/clock_set, which run the timers that fall due in deadline order.
 * Devices arm timers on this clock only (ITR throttling, the rtl8139 timer,
 * virtio-net TX timer), so qtest can observe them deterministically.
 */
#ifndef QNIC_CLOCK_H
#define QNIC_CLOCK_H

#include "qnic/common.h"

typedef enum {
    QNIC_CLOCK_REALTIME,
    QNIC_CLOCK_MANUAL,
} QnicClockMode;

void qnic_clock_set_mode(QnicClockMode mode);
QnicClockMode qnic_clock_mode(void);
int64_t qnic_clock_ns(void);

typedef struct QnicTimer QnicTimer;
typedef void QnicTimerFunc(void *opaque);
QnicTimer *qnic_timer_new(QnicTimerFunc *cb, void *opaque);
/* Arm at an absolute virtual-clock time (re-arming moves it). */
void qnic_timer_mod(QnicTimer *t, int64_t expire_ns);
void qnic_timer_del(QnicTimer *t);
bool qnic_timer_pending(const QnicTimer *t);
int64_t qnic_timer_expire_time(const QnicTimer *t);   /* -1 if not pending */
void qnic_timer_free(QnicTimer *t);

/* Called (any thread) when a timer is armed in realtime mode, so that the
 * loop waiting for the earliest deadline recomputes it; the event loop
 * installs it. NULL: nobody is told. */
typedef void QnicClockNotify(void);
void qnic_clock_set_armed_notify(QnicClockNotify *cb);

/* The most timers one clock_set/step fires: a timer re-armed for "now" on
 * every call would otherwise loop forever. */
#define QNIC_CLOCK_MAX_FIRED 1000000

/* Manual mode: advance by ns (or to an absolute time), running due timers
 * in deadline order. Returns the new clock value. The bottom halves those
 * timers schedule are the caller's to run: qnic_main_loop_clock_set/step
 * (mainloop.h) run them after each timer, as qtest and fuzzers want. */
int64_t qnic_clock_step(int64_t ns);
int64_t qnic_clock_set(int64_t ns);
/* Manual mode: fire the earliest timer due at or before target (or now, if
 * later), moving the clock to its deadline first; false when none is due
 * (and always in realtime mode). */
bool qnic_clock_fire_next(int64_t target);
/* Deadline of the earliest timer, -1 if none. */
int64_t qnic_clock_deadline(void);
/* Realtime mode: run timers that are due; returns ms until the next (-1). */
int qnic_clock_run_due(void);
/* Drop all timers and reset the manual clock to 0 (fuzzers, tests). */
void qnic_clock_reset(void);

#endif
