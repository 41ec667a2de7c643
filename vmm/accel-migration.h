/*
 * The accelerator's part of migration, as the migration framework
 * (vmm/migration*.c) calls it through QnicAccel.migration. It lives in its
 * own header so that an accelerator (kvm.c) can fill it without the
 * framework's internals; vmm/migration.h is meant to include it rather than
 * define the struct again.
 *
 * Every op runs on the main loop with the BQL held.
 */
#ifndef QNIC_VMM_ACCEL_MIGRATION_H
#define QNIC_VMM_ACCEL_MIGRATION_H

#include "qnic/common.h"
#include "qnic/machine.h"
#include "qnic/state.h"

/* The dirty log's page: bit i of a bitmap is RAM offset i * this. */
#define QNIC_MIG_DIRTY_PAGE_SIZE 4096u

typedef struct QnicMigrationAccelOps {
    /* True when no vCPU writes guest RAM behind qnic's back (qtest: every
     * write passes through qnic's address spaces, which log it), so that
     * pre-copy needs no dirty log from the accelerator. */
    bool no_cpu_ram_writes;
    /* Live pre-copy: log the vCPUs' writes to guest RAM. sync ORs the pages
     * written since the last sync into bitmap and clears the log; bit i is
     * the 4 KiB page at RAM offset i * 4096, where the RAM offset of a gpa
     * is gpa below 4 GiB and below_4g + (gpa - 4 GiB) above. A log that
     * cannot be read counts every page as written. All three NULL (and
     * no_cpu_ram_writes false): stop-and-copy only. */
    bool (*dirty_log_start)(void *state, QnicMachine *m, GError **errp);
    void (*dirty_log_sync)(void *state, QnicMachine *m, unsigned long *bitmap);
    void (*dirty_log_stop)(void *state, QnicMachine *m);
    /* With the machine stopped: append the accelerator's sections (vCPUs,
     * irqchip, clock) to out; on the destination read them back, before any
     * device loads and before the vCPUs run. Loading refuses what does not
     * fit, leaving nothing half-applied that would run. */
    bool (*save)(void *state, QnicMachine *m, GByteArray *out, GError **errp);
    bool (*load)(void *state, QnicMachine *m, QnicStateReader *r, GError **errp);
} QnicMigrationAccelOps;

#endif
