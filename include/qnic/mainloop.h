/*
 * The event loop and the big lock. qnic's data path runs on one GLib
 * GMainContext (qnic_main_context()); vCPU threads take the big lock (BQL)
 * around MMIO/PIO dispatch, and the loop holds it while dispatching sources
 * and drops it while polling. Bottom halves (BHs) defer work from register
 * handlers to the loop; fd watches run backend I/O.
 */
#ifndef QNIC_MAINLOOP_H
#define QNIC_MAINLOOP_H

#include "qnic/common.h"

GMainContext *qnic_main_context(void);

void qnic_bql_lock(void);
void qnic_bql_unlock(void);
bool qnic_bql_locked(void);   /* by the calling thread */

/* One loop iteration: poll (BQL dropped), then dispatch (BQL held).
 * Caller holds the BQL. Returns true if something was dispatched. */
bool qnic_main_loop_iterate(bool blocking);
/* Wake a blocking qnic_main_loop_iterate() from another thread. */
void qnic_main_loop_wakeup(void);

/* Bottom half: callback run once on the loop after qnic_bh_schedule(). */
typedef struct QnicBH QnicBH;
typedef void QnicBHFunc(void *opaque);
QnicBH *qnic_bh_new(QnicBHFunc *cb, void *opaque);
void qnic_bh_schedule(QnicBH *bh);
void qnic_bh_cancel(QnicBH *bh);
void qnic_bh_free(QnicBH *bh);    /* cancels too */
/* Run every scheduled BH now (qtest and fuzzers drain work synchronously). */
bool qnic_bh_poll(void);

/* Manual clock (qtest, fuzzers): qnic_clock_set/step (clock.h) with the
 * BHs each fired timer schedules run before the next timer fires, and once
 * more at the end. Realtime mode: only returns the clock. */
int64_t qnic_main_loop_clock_set(int64_t target);
int64_t qnic_main_loop_clock_step(int64_t ns);

/* fd watch on the loop; cond is G_IO_IN / G_IO_OUT (changeable). */
typedef struct QnicFdWatch QnicFdWatch;
typedef void QnicFdFunc(void *opaque, int fd, GIOCondition cond);
QnicFdWatch *qnic_fd_watch_add(int fd, GIOCondition cond, QnicFdFunc *cb, void *opaque);
void qnic_fd_watch_set(QnicFdWatch *w, GIOCondition cond);
void qnic_fd_watch_remove(QnicFdWatch *w);

#endif
