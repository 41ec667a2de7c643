/*
 * The VMM's run state: running, paused (QMP stop) or not yet started (-S),
 * system resets (QMP's, and the guest's requests, which vCPU threads and
 * device handlers make and the main loop carries out, as QEMU's
 * qemu_system_reset_request), and whether something (isa-debug-exit, a signal, a fatal
 * vCPU error, the qtest "quit") asked the running accelerator to stop, and
 * with which exit status. The first request wins, so a guest that writes to
 * isa-debug-exit and then triple-faults still exits with its chosen status.
 * Requests come from vCPU threads and the main loop alike, hence atomics;
 * the main loop is woken so that it notices at once.
 */
#include "vmm/vmm.h"
#include "vmm/qmp.h"
#include "qnic/mainloop.h"
#include "qnic/log.h"
#include "qnic/net.h"

#include <json-glib/json-glib.h>

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

static void (*board_reset)(void *opaque, QnicMachine *m);
static void *board_reset_opaque;
static bool no_reboot;
static int reset_requested;     /* atomic */

void qnic_vmm_set_board_reset(void (*fn)(void *opaque, QnicMachine *m), void *opaque)
{
    board_reset = fn;
    board_reset_opaque = opaque;
}

static void (*board_save)(void *opaque, GByteArray *out);
static bool (*board_load)(void *opaque, QnicStateReader *r, GError **errp);
static void *board_state_opaque;

void qnic_vmm_set_board_state(void (*save)(void *opaque, GByteArray *out),
                              bool (*load)(void *opaque, QnicStateReader *r, GError **errp),
                              void *opaque)
{
    board_save = save;
    board_load = load;
    board_state_opaque = opaque;
}

void qnic_vmm_board_save_state(GByteArray *out)
{
    if (board_save) {
        board_save(board_state_opaque, out);
    }
}

bool qnic_vmm_board_load_state(QnicStateReader *r, GError **errp)
{
    return !board_load || board_load(board_state_opaque, r, errp);
}

void qnic_vmm_set_no_reboot(bool on)
{
    no_reboot = on;
}

bool qnic_vmm_no_reboot(void)
{
    return no_reboot;
}

void qnic_vmm_request_reset(void)
{
    __atomic_store_n(&reset_requested, 1, __ATOMIC_SEQ_CST);
    qnic_main_loop_wakeup();
}

bool qnic_vmm_reset_pending(void)
{
    return __atomic_load_n(&reset_requested, __ATOMIC_SEQ_CST) != 0;
}

bool qnic_vmm_system_reset(QnicMachine *m, GError **errp)
{
    bool ok, was_running = runstate == QNIC_RUNSTATE_RUNNING;

    if (!run_accel || !run_accel->system_reset) {
        qnic_error_setg(errp, "system_reset is not supported with the %s accelerator",
                        run_accel ? run_accel->name : "current");
        return false;
    }
    /* Nothing runs guest code while its machine changes under it. */
    if (was_running && run_accel->set_running) {
        run_accel->set_running(run_accel_state, false);
    }
    qnic_machine_reset(m);
    if (board_reset) {
        board_reset(board_reset_opaque, m);
    }
    ok = run_accel->system_reset(run_accel_state, m, errp);
    /* Whatever the guest asked for before is done now. */
    __atomic_store_n(&reset_requested, 0, __ATOMIC_SEQ_CST);
    if (was_running && run_accel->set_running) {
        run_accel->set_running(run_accel_state, true);
    }
    return ok;
}

void qnic_vmm_handle_reset_request(QnicMachine *m)
{
    JsonObject *d;
    GError *err = NULL;

    if (!qnic_vmm_reset_pending()) {
        return;
    }
    d = json_object_new();
    json_object_set_boolean_member(d, "guest", true);
    json_object_set_string_member(d, "reason", "guest-reset");
    JsonNode *node = json_node_new(JSON_NODE_OBJECT);
    json_node_take_object(node, d);
    if (no_reboot) {
        /* QEMU -no-reboot: the guest's reset is a shutdown, status 0. */
        qnic_qmp_event(m, "SHUTDOWN", node);
        qnic_vmm_request_exit(0);
        return;
    }
    qnic_qmp_event(m, "RESET", node);
    if (!qnic_vmm_system_reset(m, &err)) {
        qnic_report("system reset failed: %s", err->message);
        g_error_free(err);
        qnic_vmm_request_exit(1);
    }
}

const char *qnic_vmm_runstate_name(QnicRunState st)
{
    switch (st) {
    case QNIC_RUNSTATE_PRELAUNCH: return "prelaunch";
    case QNIC_RUNSTATE_PAUSED: return "paused";
    case QNIC_RUNSTATE_INMIGRATE: return "inmigrate";
    case QNIC_RUNSTATE_FINISH_MIGRATE: return "finish-migrate";
    case QNIC_RUNSTATE_POSTMIGRATE: return "postmigrate";
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
