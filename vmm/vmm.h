/*
 * Internal interface of qnic-vmm: the parsed command line, and the
 * accelerators (KVM, qtest) that run a machine built from it. main.c parses
 * options and builds the machine and its devices; an accelerator adds what
 * it needs around that (vCPUs and boot for KVM, the protocol for qtest).
 */
#ifndef QNIC_VMM_H
#define QNIC_VMM_H

#include "qnic/common.h"
#include "qnic/machine.h"

typedef struct QnicVmmConfig {
    const char *accel;          /* "kvm" (default) or "qtest" */
    const char *machine;        /* "pc" */
    uint64_t ram_size;          /* -m, bytes (default 128 MiB) */
    unsigned smp;               /* -smp, default 1 */
    bool start_paused;          /* -S */
    const char *kernel, *append, *initrd;
    const char *bios;           /* accepted and ignored by qnic-vmm */
    const char *serial;         /* "stdio", "none", "file:PATH" (default none) */
    const char *qtest;          /* -qtest CHARDEV: "unix:PATH", "stdio" */
    const char *qtest_log;      /* -qtest-log FILE */
    GPtrArray *monitors;        /* char *: chardev ids of QMP monitors
                                 * (-qmp, -mon chardev=ID,mode=control) */
    const char *pidfile;
    bool nodefaults;
    bool no_reboot;             /* -no-reboot: a guest reset ends the run */
    GPtrArray *netdevs;         /* QnicOpts *: checked -netdev options, in order */
    GPtrArray *devices;         /* char *: -device strings, in order */
    GPtrArray *nics;            /* char *: -nic strings */
    GPtrArray *nets;            /* char *: legacy -net strings */
    GPtrArray *objects;         /* char *: -object strings */
} QnicVmmConfig;

/* A PIT (i8254) channel as the board's port 0x61 needs it. */
typedef struct QnicPitChannel {
    bool gate;
    uint8_t mode;               /* 0..7 */
    uint32_t count;             /* reload value, 0 = 65536 */
    int64_t count_load_time;    /* CLOCK_MONOTONIC ns of the last load */
} QnicPitChannel;

/* An accelerator keeps its state (one per machine) behind the void * its
 * init returns; the caller hands it back to every other op and owns it
 * until cleanup, which frees it. */
typedef struct QnicAccel {
    const char *name;
    /* Runs a guest kernel: the board (pc.c) then does firmware's part. */
    bool boots_kernel;
    /* Before the machine exists: set the machine's interrupt/MSI hooks. */
    bool (*init)(QnicVmmConfig *cfg, QnicMachineConfig *mcfg, void **state, GError **errp);
    /* Machine, devices and board exist: create vCPUs, load the kernel with
     * the board's command line (NULL: none), etc. */
    bool (*machine_ready)(void *state, QnicVmmConfig *cfg, QnicMachine *m,
                          const char *cmdline, GError **errp);
    /* Run until the guest or a signal ends it; returns the exit status. */
    int (*run)(void *state, QnicVmmConfig *cfg, QnicMachine *m);
    /* Stop everything and free the state (NULL state: init failed). */
    void (*cleanup)(void *state, QnicMachine *m);
    /* Optional: stop the guest's CPUs (returning once none runs) or let
     * them run again (QMP stop/cont, -S). */
    void (*set_running)(void *state, bool running);
    /* Optional: PIT channel 2 of the accelerator's PIT, for the board's
     * port 0x61: read its state (false: unavailable), or change its gate. */
    bool (*pit_ch2_get)(void *state, QnicPitChannel *c);
    void (*pit_ch2_set_gate)(void *state, bool gate);
    /* Optional: the accelerator's part of a system reset (QMP
     * system_reset, a guest's reset request): what of the guest it holds
     * (vCPUs back to power-on, the boot image loaded again, in-kernel
     * interrupt controllers). Called with the CPUs stopped, after the
     * machine's devices and the board were reset. Absent: refused. */
    bool (*system_reset)(void *state, QnicMachine *m, GError **errp);
    /* Optional: the accelerator's part of migration (vmm/migration.h:
     * dirty log, vCPU/irqchip/clock sections). NULL: migrate is refused. */
    const struct QnicMigrationAccelOps *migration;
} QnicAccel;

extern const QnicAccel qnic_accel_kvm;
extern const QnicAccel qnic_accel_qtest;

/* Ask the running accelerator to stop with an exit status (isa-debug-exit,
 * SIGTERM, a fatal error). Thread-safe. */
void qnic_vmm_request_exit(int status);
bool qnic_vmm_exit_requested(int *status);

/* QEMU's run states as far as qnic has them: before the first cont of a
 * -S machine, running, stopped by QMP, waiting for an incoming migration,
 * stopped for a migration's last pass, and stopped after it completed. */
typedef enum {
    QNIC_RUNSTATE_PRELAUNCH,
    QNIC_RUNSTATE_RUNNING,
    QNIC_RUNSTATE_PAUSED,
    QNIC_RUNSTATE_INMIGRATE,
    QNIC_RUNSTATE_FINISH_MIGRATE,
    QNIC_RUNSTATE_POSTMIGRATE,
} QnicRunState;

/* The accelerator that runs the machine (its set_running) with its state,
 * the machine's backends (frames wait there while paused; NULL: none) and
 * whether it starts paused (-S). */
void qnic_vmm_runstate_init(const QnicAccel *accel, void *accel_state, QnicBackends *be,
                            bool start_paused);
QnicRunState qnic_vmm_runstate(void);
/* -object x-vdpa-sim (vmm/vdpa-sim-object.c): record one (takes opts),
 * install the opener that serves vhostdev=x-vdpa-sim:ID from be's netdevs
 * (before the netdevs are created), free them all (after the backends). */
void qnic_vmm_vdpa_sim_add(QnicOpts *opts);
void qnic_vmm_vdpa_sim_install(QnicBackends *be);
void qnic_vmm_vdpa_sim_cleanup(void);

/* A system reset, as QEMU's qemu_system_reset(): the CPUs stop, every
 * device of m is reset (pending unplugs complete), then the board's hook
 * (firmware tables and board registers, see qnic_vmm_set_board_reset),
 * then the accelerator's system_reset (vCPUs, boot image); the CPUs run
 * again if they ran before. Main loop only. Refused (errp) when the
 * accelerator has no system_reset. */
bool qnic_vmm_system_reset(QnicMachine *m, GError **errp);
/* The board's part of a system reset (vmm/pc.c), with its opaque. */
void qnic_vmm_set_board_reset(void (*fn)(void *opaque, QnicMachine *m), void *opaque);
/* The board's guest-visible registers in a migration (vmm/pc.c's
 * "pc-board" section): migration-stream.c appends them to the
 * accelerator's record and loads them after the accelerator's sections.
 * Unset (qtest): nothing is written or read. */
typedef struct QnicStateReader QnicStateReader;
void qnic_vmm_set_board_state(void (*save)(void *opaque, GByteArray *out),
                              bool (*load)(void *opaque, QnicStateReader *r, GError **errp),
                              void *opaque);
void qnic_vmm_board_save_state(GByteArray *out);
bool qnic_vmm_board_load_state(QnicStateReader *r, GError **errp);
/* -no-reboot: a reset, the guest's or QMP's (as QEMU 7.2 does), ends the
 * run (status 0) instead. */
void qnic_vmm_set_no_reboot(bool no_reboot);
bool qnic_vmm_no_reboot(void);
/* The guest asks for a reset (port 0xcf9, the keyboard controller, a
 * triple fault): thread-safe, any thread; the main loop performs it
 * (qnic_vmm_handle_reset_request). vCPUs wait while one is pending. */
void qnic_vmm_request_reset(void);
bool qnic_vmm_reset_pending(void);
/* Main loop: perform a pending guest reset with QEMU's RESET event
 * (guest: true, reason guest-reset), or with -no-reboot end the run with
 * its SHUTDOWN event. No-op without a pending request. */
void qnic_vmm_handle_reset_request(QnicMachine *m);
const char *qnic_vmm_runstate_name(QnicRunState st);
void qnic_vmm_set_runstate(QnicRunState st);
/* Stop or start the CPUs through the accelerator and record the state. */
void qnic_vmm_set_running(bool running);

#endif
