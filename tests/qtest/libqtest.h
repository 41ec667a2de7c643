/*
 * A client for QEMU's qtest protocol, used by every device test. It starts
 * the binary named by $QTEST_QEMU_BINARY (QEMU: the reference) or else
 * $QNIC_VMM (qnic-vmm), connects the protocol over a unix socket, and gives
 * typed helpers for port I/O, memory, PCI config cycles, the clock and IRQs,
 * and on request a QMP client (json-glib) on a second socket. The same test
 * thus runs against qnic and against QEMU 7.2.
 */
#ifndef QNIC_LIBQTEST_H
#define QNIC_LIBQTEST_H

#include <stdint.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <glib.h>
#include <json-glib/json-glib.h>

typedef struct QTestState QTestState;

enum {
    /* QEMU only: instead of -S, boot a 64 KiB BIOS of HLT bytes so the VM is
     * "running" (QEMU's virtio-net only moves packets in a running VM). */
    QTEST_FLAG_RUNNING = 1 << 0,
    /* Also listen on TMPDIR/qmp.sock and pass `-qmp unix:TMPDIR/qmp.sock`
     * (the target connects as a client); init reads and keeps the greeting
     * but does not negotiate capabilities. */
    QTEST_FLAG_QMP = 1 << 1,
};

/* Start the target with `-machine pc -accel qtest|tcg ... EXTRA`.
 * Fails the test (g_error) if it cannot start. */
QTestState *qtest_init(const char *extra_args);
QTestState *qtest_initf(unsigned flags, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
/* Start and return NULL instead of failing; *out gets what the target
 * printed on stderr (for option-error tests). */
QTestState *qtest_try_init(unsigned flags, const char *extra_args, char **err_out);
void qtest_quit(QTestState *s);
/* Wait up to timeout_ms for the target to exit on its own; returns its
 * wait status (see WIFEXITED), or -1 if it is still running. */
int qtest_wait_exit(QTestState *s, int timeout_ms);

/* Wait (bounded, polling every 5 ms) for a condition that depends on the target's event loop. */
#define WAIT_FOR(cond, ms) ({                                   \
    bool ok_ = false;                                           \
    for (int w_ = 0; w_ < (ms); w_ += 5) {                      \
        if (cond) { ok_ = true; break; }                        \
        g_usleep(5000);                                         \
    }                                                           \
    ok_ || (cond);                                              \
})

/* The target's process id (to read its /proc entries). */
pid_t qtest_pid(QTestState *s);

/* True when the target is QEMU ($QTEST_QEMU_BINARY set). */
bool qtest_target_is_qemu(void);
const char *qtest_binary(void);

/* Send a raw command line, return the reply ("OK ..." / "FAIL ..."),
 * g_free it. */
char *qtest_raw(QTestState *s, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

void qtest_outb(QTestState *s, uint16_t port, uint8_t v);
void qtest_outw(QTestState *s, uint16_t port, uint16_t v);
void qtest_outl(QTestState *s, uint16_t port, uint32_t v);
uint8_t qtest_inb(QTestState *s, uint16_t port);
uint16_t qtest_inw(QTestState *s, uint16_t port);
uint32_t qtest_inl(QTestState *s, uint16_t port);

void qtest_writeb(QTestState *s, uint64_t addr, uint8_t v);
void qtest_writew(QTestState *s, uint64_t addr, uint16_t v);
void qtest_writel(QTestState *s, uint64_t addr, uint32_t v);
void qtest_writeq(QTestState *s, uint64_t addr, uint64_t v);
uint8_t qtest_readb(QTestState *s, uint64_t addr);
uint16_t qtest_readw(QTestState *s, uint64_t addr);
uint32_t qtest_readl(QTestState *s, uint64_t addr);
uint64_t qtest_readq(QTestState *s, uint64_t addr);

void qtest_memread(QTestState *s, uint64_t addr, void *data, size_t size);   /* "read" */
void qtest_memwrite(QTestState *s, uint64_t addr, const void *data, size_t size);
void qtest_bufread(QTestState *s, uint64_t addr, void *data, size_t size);   /* "b64read" */
void qtest_bufwrite(QTestState *s, uint64_t addr, const void *data, size_t size);
void qtest_memset(QTestState *s, uint64_t addr, uint8_t pattern, size_t size);

int64_t qtest_clock_step(QTestState *s, int64_t ns);
int64_t qtest_clock_step_next(QTestState *s);
int64_t qtest_clock_set(QTestState *s, int64_t ns);

/* Intercept the machine's interrupt controller inputs ("ioapic"); after it,
 * qtest_get_irq(s, gsi) tells the last level seen on that line. */
void qtest_irq_intercept_in(QTestState *s, const char *qom_path);
bool qtest_get_irq(QTestState *s, int num);

/* PCI through 0xcf8/0xcfc (bus 0). */
uint8_t qtest_pci_cfg_readb(QTestState *s, int devfn, uint8_t off);
uint16_t qtest_pci_cfg_readw(QTestState *s, int devfn, uint8_t off);
uint32_t qtest_pci_cfg_readl(QTestState *s, int devfn, uint8_t off);
void qtest_pci_cfg_writeb(QTestState *s, int devfn, uint8_t off, uint8_t v);
void qtest_pci_cfg_writew(QTestState *s, int devfn, uint8_t off, uint16_t v);
void qtest_pci_cfg_writel(QTestState *s, int devfn, uint8_t off, uint32_t v);
/* Size BAR n (writes all-ones and restores); 0 if unimplemented.
 * *type gets the low flag bits. For 64-bit BARs the size covers both. */
uint64_t qtest_pci_bar_size(QTestState *s, int devfn, int bar, uint32_t *type);
/* Assign every BAR of devfn from simple bump allocators (MMIO from
 * 0xe0000000 up, I/O from 0xc000 up) and enable I/O, memory and bus
 * mastering. Returns the BAR addresses in addrs[6]. */
void qtest_pci_enable(QTestState *s, int devfn, uint64_t addrs[6]);

/* A bump allocator of guest RAM for rings and buffers (from 4 MiB up). */
uint64_t qtest_guest_alloc(QTestState *s, size_t size, size_t align);

/* ---- QMP (with QTEST_FLAG_QMP) ----
 * Messages are JSON objects; a reply is an object with "return" or
 * "error", an event one with "event". Replies are returned in order, events
 * that arrive meanwhile are queued for qtest_qmp_event(). Returned nodes
 * belong to the caller (json_node_unref) unless said otherwise. A target
 * that stays silent for 60 s or closes the connection while a reply is
 * awaited fails the test. */

/* The greeting {"QMP": {...}} read at start; owned by s. */
JsonNode *qtest_qmp_greeting(QTestState *s);
/* Send one command (printf-style; a newline is appended if missing) and
 * return the next reply. */
JsonNode *qtest_qmp(QTestState *s, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
/* Send exactly these bytes (malformed input allowed), return the next reply. */
JsonNode *qtest_qmp_raw(QTestState *s, const char *text);
/* Send bytes without waiting for anything. */
void qtest_qmp_send_raw(QTestState *s, const char *text);
/* Send text (one whole command) with fd attached (SCM_RIGHTS), as QMP
 * getfd wants it, and return the reply. */
JsonNode *qtest_qmp_fd(QTestState *s, int fd, const char *text);
/* What the target has written to its stderr so far; g_free it. */
char *qtest_stderr(QTestState *s);
/* The next reply (queued or arriving within timeout_ms), NULL if none. */
JsonNode *qtest_qmp_receive(QTestState *s, int timeout_ms);
/* Send qmp_capabilities and assert it returned {}. */
void qtest_qmp_negotiate(QTestState *s);
/* Send a command and assert it succeeded; returns nothing. */
void qtest_qmp_assert_ok(QTestState *s, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
/* Assert reply is an error of class cls with description desc (logged
 * first); frees reply. */
void qtest_qmp_assert_error(JsonNode *reply, const char *cls, const char *desc);
/* Take the first queued or newly arriving event called name; NULL after
 * timeout_ms. Other events stay queued. */
JsonNode *qtest_qmp_event(QTestState *s, const char *name, int timeout_ms);
/* True once the target closed the QMP connection (waits up to timeout_ms;
 * messages read meanwhile are queued). */
bool qtest_qmp_eof(QTestState *s, int timeout_ms);

/* Reading replies: members by dotted path ("return.qemu.major"), NULL when
 * absent or when a step is not an object; the result is borrowed. */
JsonNode *qtest_qmp_get(JsonNode *node, const char *path);
/* "error.class" / "error.desc" of a reply, NULL for a success reply. */
const char *qtest_qmp_error_class(JsonNode *reply);
const char *qtest_qmp_error_desc(JsonNode *reply);
/* The "return" member (borrowed), NULL for an error reply. */
JsonNode *qtest_qmp_return(JsonNode *reply);
/* One-line JSON text of node (for messages); g_free it. */
char *qtest_qmp_to_string(JsonNode *node);

#endif
