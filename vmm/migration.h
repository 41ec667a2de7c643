/*
 * qnic-vmm's migration: moving a machine (guest RAM, every device's state,
 * the machine's and the accelerator's) to another qnic-vmm process over a
 * byte channel, or into a file that a new process restores. The files:
 *   migration-channel.c  the URIs (unix:, tcp:, fd:, exec:, file:) as fds
 *   migration-stream.c   the stream's records: what the source writes,
 *                        what the destination checks and loads
 *   migration.c          the source's and the destination's state machines
 *                        on the main loop (pre-copy, stop-and-copy,
 *                        switch-over, announce), and the run states
 *   qmp-migration.c      the QMP commands and the MIGRATION event
 * docs/migration.md describes the commands and the stream.
 */
#ifndef QNIC_VMM_MIGRATION_H
#define QNIC_VMM_MIGRATION_H

#include "qnic/common.h"
#include "qnic/machine.h"
#include "qnic/state.h"

/*
 * The accelerator's part (QnicAccel.migration; NULL: the accelerator
 * cannot migrate, and `migrate` says so). Every op runs on the main loop
 * with the BQL held.
 */
typedef struct QnicMigrationAccelOps {
    /* True when no vCPU writes guest RAM behind qnic's back (qtest: every
     * write passes through qnic's address spaces, which log it), so that
     * pre-copy needs no dirty log from the accelerator. */
    bool no_cpu_ram_writes;
    /* Live pre-copy: log the vCPUs' writes to guest RAM. sync ORs the pages
     * written since the last sync into bitmap and clears the log; bit i is
     * the 4 KiB page at RAM offset i * 4096, where the RAM offset of a gpa
     * is gpa below 4 GiB and below_4g + (gpa - 4 GiB) above. All three
     * NULL (and no_cpu_ram_writes false): stop-and-copy only. */
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

extern const QnicMigrationAccelOps qnic_migration_qtest_ops;

/* ---- the stream (migration-stream.c) ---- */

/* Record types; see docs/migration.md. */
enum {
    MIG_REC_CONFIG = 'C',   /* text: the machine the stream is for */
    MIG_REC_RAM = 'R',      /* u64 RAM offset, then whole pages */
    MIG_REC_ZERO = 'Z',     /* u64 RAM offset, u64 length: zero pages */
    MIG_REC_ACCEL = 'A',    /* str accelerator name, then its sections */
    MIG_REC_DEVICE = 'D',   /* str QOM path, then the device's stream */
    MIG_REC_MACHINE = 'M',  /* the machine section */
    MIG_REC_END = 'E',      /* u32 records before it, u8 MIG_SRC_* */
};
/* The source's run state before the migration, in the end record. */
enum { MIG_SRC_PAUSED = 0, MIG_SRC_RUNNING = 1, MIG_SRC_PRELAUNCH = 2 };
#define MIG_MAGIC "QNICMIG\n"
#define MIG_VERSION 1u
#define MIG_HEADER_LEN 12u          /* magic + u32 version */
#define MIG_REC_HEADER_LEN 5u       /* type u8 + length u32 */
#define MIG_MAX_RECORD (32u << 20)  /* the destination's bound on one record */
#define MIG_RAM_CHUNK (256u * 4096) /* RAM bytes per record the source writes */

/* The machine description both sides must share: RAM size and every
 * device's path and model, one per line. g_free it. */
char *qnic_mig_config_text(QnicMachine *m, const char *accel);
/* Compare the source's description with this machine's: false with an
 * error saying what differs. */
bool qnic_mig_config_check(QnicMachine *m, const char *accel, const char *src,
                           size_t len, GError **errp);

/* Append a record's header (the payload follows, len bytes). */
void qnic_mig_put_record_header(GByteArray *out, uint8_t type, uint32_t len);
/* Append RAM records for [off, off+len) of guest RAM: zero pages as a
 * MIG_REC_ZERO, the rest as MIG_REC_RAM. Returns the bytes appended;
 * *records counts the records, *zero_pages and *normal_pages the pages
 * (for query-migrate). */
size_t qnic_mig_put_ram(GByteArray *out, QnicMachine *m, uint64_t off, uint64_t len,
                        uint32_t *records, uint64_t *zero_pages, uint64_t *normal_pages);
/* Append the device records of every device, in creation order; false
 * with an error naming every device whose model cannot save its state. */
bool qnic_mig_put_devices(GByteArray *out, QnicMachine *m, GError **errp);
/* The accelerator record and the machine record. */
bool qnic_mig_put_accel(GByteArray *out, const char *name, const QnicMigrationAccelOps *ops,
                        void *state, QnicMachine *m, GError **errp);
void qnic_mig_put_machine(GByteArray *out, QnicMachine *m);

/* The destination's parser: records in order, checked before use. */
typedef struct QnicMigLoader {
    QnicMachine *m;
    const char *accel_name;
    const QnicMigrationAccelOps *ops;
    void *accel_state;
    GByteArray *buf;            /* received, not yet consumed */
    bool header_done, config_done, end_seen;
    uint8_t source_state;       /* MIG_SRC_*, from the end record */
    uint32_t records;
    uint64_t ram_bytes;         /* received RAM payload */
    GPtrArray *devices_loaded;  /* QnicDevice * */
} QnicMigLoader;

void qnic_mig_loader_init(QnicMigLoader *l, QnicMachine *m, const char *accel_name,
                          const QnicMigrationAccelOps *ops, void *accel_state);
void qnic_mig_loader_destroy(QnicMigLoader *l);
/* Feed bytes; consumes every complete record. False with an error on the
 * first bad one (the destination then fails the migration). */
bool qnic_mig_loader_feed(QnicMigLoader *l, const void *data, size_t len, GError **errp);
/* After EOF: true if the end record came and every device got its state. */
bool qnic_mig_loader_finish(QnicMigLoader *l, GError **errp);

/* ---- channels (migration-channel.c) ---- */

/* Monitor fds named by QMP getfd (fd: URIs). */
void qnic_mig_fd_add(const char *name, int fd);
int qnic_mig_fd_take(const char *name);        /* -1: none */
void qnic_mig_fds_free(void);

/* The outgoing side of uri as a connected, non-blocking fd; *pid gets the
 * exec: child (else -1). Errors in QEMU's words. */
int qnic_mig_connect(const char *uri, pid_t *pid, GError **errp);
/* The incoming side: a listening socket (unix:, tcp:) to accept from
 * (*listening true), or a readable fd (fd:, exec:, file:). */
int qnic_mig_listen(const char *uri, bool *listening, pid_t *pid, GError **errp);
/* Is uri's scheme one qnic supports (for QEMU's "valid migration protocol"
 * error before anything else happens)? */
bool qnic_mig_uri_known(const char *uri);

/* ---- the state machines (migration.c) ---- */

typedef enum {
    MIG_NONE, MIG_SETUP, MIG_ACTIVE, MIG_CANCELLING, MIG_CANCELLED,
    MIG_COMPLETED, MIG_FAILED,
} QnicMigStatus;
const char *qnic_mig_status_name(QnicMigStatus st);

typedef struct QnicMigStats {
    QnicMigStatus status;
    bool incoming;
    int64_t start_ms, setup_ms, total_ms, downtime_ms;
    uint64_t transferred, total, remaining, duplicate, normal, dirty_syncs;
    char *error;
} QnicMigStats;

/* Called by main.c once the machine runs: the accelerator and its state. */
void qnic_migration_init(QnicMachine *m, const char *accel_name,
                         const QnicMigrationAccelOps *ops, void *accel_state);
void qnic_migration_cleanup(void);
/* -incoming URI (start listening now) or "defer" (wait for
 * migrate-incoming); autostart: not -S. */
bool qnic_migration_incoming(const char *uri, bool autostart, GError **errp);
bool qnic_migration_incoming_deferred(void);
/* QMP cont while in inmigrate: run after the load even with -S. */
void qnic_migration_set_autostart(void);
/* QMP migrate / migrate-incoming / migrate_cancel. */
bool qnic_migration_start(const char *uri, GError **errp);
bool qnic_migration_incoming_start(const char *uri, GError **errp);
void qnic_migration_cancel(void);
const QnicMigStats *qnic_migration_stats(void);
/* Capabilities (QEMU's names): supported ones can be set. */
extern const char *const qnic_mig_capability_names[];
bool qnic_migration_capability(const char *name);
bool qnic_migration_set_capability(const char *name, bool on, GError **errp);

/* Events go out through this hook (qmp-migration.c installs it): name and
 * the "status" for MIGRATION, the pass for MIGRATION_PASS, or none. */
typedef void QnicMigEventFunc(QnicMachine *m, const char *event, const char *status, int pass);
void qnic_migration_set_event_hook(QnicMigEventFunc *fn);

#endif
