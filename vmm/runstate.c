/*
 * The VMM's run state: running, paused (QMP stop) or not yet started (-S),
 * and whether something (isa-debug-exit, a signal, a fatal
 * vCPU error, the qtest "quit") asked the running accelerator to stop, and
 * with which exit status. The first request wins, so a guest that writes to
 * isa-debug-exit and then triple-faults still exits with its chosen status.
 * Requests come from vCPU threads and the main loop alike, hence atomics;
 * the main loop is woken so that it notices at once.
 */
#include "vmm/vmm.h"
#include "qnic/mainloop.h"
#include "qnic/net.h"

static int exit_requested;      /* 0 running, 2 being requested, 1 requested */
static int exit_status;

void qnic_vmm_request_exit(int status)
{
    int expected = 0;

    if (__atomic_compare_exchange_n(&exit_requested, &expected, 2, false,
                                    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
        __atomic_store_n(&exit_status, status, __ATOMIC_SEQ_CST);
        __atomic_store_n(&exit_requested, 1, __ATOMIC_SEQ_CST);
    }
    qnic_main_loop_wakeup();
}

bool qnic_vmm_exit_requested(int *status)
{
    /* 2 is the short window while the winner stores its status. */
    int state = __atomic_load_n(&exit_requested, __ATOMIC_SEQ_CST);
    while (state == 2) {
        state = __atomic_load_n(&exit_requested, __ATOMIC_SEQ_CST);
    }
    if (state && status) {
        *status = __atomic_load_n(&exit_status, __ATOMIC_SEQ_CST);
    }
    return state != 0;
}

/* Main loop only (QMP, signals), so no atomics. qnic-vmm runs one
 * machine: its run state is the program's. */
static const QnicAccel *run_accel;
static void *run_accel_state;
static QnicBackends *run_backends;  /* whose frames wait while paused */
static QnicRunState runstate = QNIC_RUNSTATE_RUNNING;

void qnic_vmm_runstate_init(const QnicAccel *accel, void *accel_state, QnicBackends *be,
                            bool start_paused)
{
    run_accel = accel;
    run_accel_state = accel_state;
    run_backends = be;
    runstate = start_paused ? QNIC_RUNSTATE_PRELAUNCH : QNIC_RUNSTATE_RUNNING;
    if (be) {
        qnic_net_set_vm_running(be, !start_paused);
    }
}

QnicRunState qnic_vmm_runstate(void)
{
    return runstate;
}

bool qnic_vmm_system_reset(QnicMachine *m, GError **errp)
{
    if (!run_accel || !run_accel->system_reset) {
        qnic_error_setg(errp, "system_reset is not supported with the %s accelerator",
                        run_accel ? run_accel->name : "current");
        return false;
    }
    return run_accel->system_reset(run_accel_state, m, errp);
}

const char *qnic_vmm_runstate_name(QnicRunState st)
{
    switch (st) {
    case QNIC_RUNSTATE_PRELAUNCH: return "prelaunch";
    case QNIC_RUNSTATE_PAUSED: return "paused";
    default: return "running";
    }
}

void qnic_vmm_set_runstate(QnicRunState st)
{
    runstate = st;
    if (run_backends) {
        qnic_net_set_vm_running(run_backends, st == QNIC_RUNSTATE_RUNNING);
    }
}

void qnic_vmm_set_running(bool running)
{
    if (running == (runstate == QNIC_RUNSTATE_RUNNING)) {
        return;
    }
    if (!running) {
        /* the guest stops first, then frames wait */
        if (run_accel && run_accel->set_running) {
            run_accel->set_running(run_accel_state, false);
        }
        qnic_vmm_set_runstate(QNIC_RUNSTATE_PAUSED);
        return;
    }
    qnic_vmm_set_runstate(QNIC_RUNSTATE_RUNNING);
    if (run_accel && run_accel->set_running) {
        run_accel->set_running(run_accel_state, true);
    }
}
