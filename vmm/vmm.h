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
    GPtrArray *netdevs;         /* char *: -netdev strings, in order */
    GPtrArray *devices;         /* char *: -device strings, in order */
    GPtrArray *nics;            /* char *: -nic strings */
    GPtrArray *nets;            /* char *: legacy -net strings */
    GPtrArray *objects;         /* char *: -object strings */
} QnicVmmConfig;

typedef struct QnicAccel {
    const char *name;
    /* Before the machine exists: set the machine's interrupt/MSI hooks. */
    bool (*init)(QnicVmmConfig *cfg, QnicMachineConfig *mcfg, GError **errp);
    /* Machine and devices exist: create vCPUs, load the kernel, etc. */
    bool (*machine_ready)(QnicVmmConfig *cfg, QnicMachine *m, GError **errp);
    /* Run until the guest or a signal ends it; returns the exit status. */
    int (*run)(QnicVmmConfig *cfg, QnicMachine *m);
    void (*cleanup)(QnicMachine *m);
    /* Optional: stop the guest's CPUs (returning once none runs) or let
     * them run again (QMP stop/cont, -S). */
    void (*set_running)(bool running);
} QnicAccel;

extern const QnicAccel qnic_accel_kvm;
extern const QnicAccel qnic_accel_qtest;

/* Ask the running accelerator to stop with an exit status (isa-debug-exit,
 * SIGTERM, a fatal error). Thread-safe. */
void qnic_vmm_request_exit(int status);
bool qnic_vmm_exit_requested(int *status);

/* QEMU's run states as far as qnic has them: before the first cont of a
 * -S machine, running, and stopped by QMP. */
typedef enum {
    QNIC_RUNSTATE_PRELAUNCH,
    QNIC_RUNSTATE_RUNNING,
    QNIC_RUNSTATE_PAUSED,
} QnicRunState;

/* The accelerator that runs the machine (its set_running), and whether it
 * starts paused (-S). */
void qnic_vmm_runstate_init(const QnicAccel *accel, bool start_paused);
QnicRunState qnic_vmm_runstate(void);
const char *qnic_vmm_runstate_name(QnicRunState st);
void qnic_vmm_set_runstate(QnicRunState st);
/* Stop or start the CPUs through the accelerator and record the state. */
void qnic_vmm_set_running(bool running);

#endif
