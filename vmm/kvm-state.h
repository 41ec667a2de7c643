/*
 * The KVM accelerator's part of migration (vmm/migration.h's accelerator ops):
 * what the kernel holds of a running guest, saved and restored as
 * device-state sections (qnic/state.h), and the log of guest RAM pages that
 * vCPUs write, for pre-copy. Kept apart from kvm.c so that the accelerator's
 * run loop stays small; kvm.c hands over its file descriptors and slots.
 *
 * Sections (docs/migration.md): one "kvm-vm" (vCPU count, the two PICs, the
 * IOAPIC, the PIT, the kvmclock), then one "kvm-vcpu" per vCPU (general and
 * segment registers, control registers, FPU and XSAVE area, XCRs, the
 * MSRs qnic-vmm's guests use, LAPIC, MP state, debug registers, pending
 * events).
 */
#ifndef QNIC_VMM_KVM_STATE_H
#define QNIC_VMM_KVM_STATE_H

#include "qnic/common.h"
#include "qnic/state.h"

typedef struct QnicKvmFds {
    int kvm_fd, vm_fd;
    unsigned nr_vcpus;
    const int *vcpu_fds;        /* nr_vcpus of them, index = vCPU id */
} QnicKvmFds;

/* vCPUs stopped (parked outside KVM_RUN) after their last exit completed
 * (a KVM_RUN with immediate_exit: a port or MMIO instruction finishes only
 * then). Appends the sections to out; on
 * false out may hold part of them. */
bool qnic_kvm_state_save(const QnicKvmFds *vm, GByteArray *out, GError **errp);
/* vCPUs stopped. Decodes every section and checks it against the stream's
 * own rules and this host's KVM (vCPU count, MSRs it knows, XSAVE size)
 * before the first ioctl that changes the guest; then sets, per vCPU in
 * the kernel's order (sregs, regs, FPU/XSAVE, XCRs, MSRs, LAPIC,
 * TSC deadline, MP state, debug registers, events), then the irqchip, PIT
 * and clock. On an ioctl's failure errp names the vCPU and the ioctl. */
bool qnic_kvm_state_load(const QnicKvmFds *vm, QnicStateReader *r, GError **errp);

/* The page of the migration framework's dirty bitmap (vmm/migration.h)
 * and of KVM's log on x86. */
#define QNIC_KVM_DIRTY_PAGE 4096u

/* A RAM memory slot as the dirty log sees it. */
typedef struct QnicKvmLogSlot {
    uint32_t slot;
    uint64_t gpa, size;
    void *host;
    uint64_t ram_page;          /* its first page in the machine's RAM */
} QnicKvmLogSlot;

/* Whether KVM_CLEAR_DIRTY_LOG can be used on vm_fd (it then enables
 * manual protection, which must happen before logging starts). */
bool qnic_kvm_dirty_log_manual(int kvm_fd, int vm_fd);
/* Turn logging of slot s on or off (KVM_MEM_LOG_DIRTY_PAGES). */
bool qnic_kvm_dirty_log_set(int vm_fd, const QnicKvmLogSlot *s, bool on, GError **errp);
/* OR the pages of s written since the last call into bitmap (see
 * QnicMigrationAccelOps.dirty_log_sync) and re-arm them; scratch holds at
 * least s->size / 4096 bits rounded up to 64. */
bool qnic_kvm_dirty_log_sync(int vm_fd, bool manual, const QnicKvmLogSlot *s,
                             uint64_t *bitmap, uint64_t *scratch, GError **errp);
/* Mark every page of s in bitmap (a log that could not be read). */
void qnic_kvm_dirty_log_all(const QnicKvmLogSlot *s, uint64_t *bitmap);

#endif
