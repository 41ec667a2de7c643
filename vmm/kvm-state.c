/*
 * The KVM accelerator's part of migration (see kvm-state.h): the state the
 * kernel keeps for the VM and for each vCPU, read with KVM's GET ioctls into
 * snapshot structs and written as qnic/state.h sections; on the other side
 * decoded, checked as a whole, and only then written back with the SET
 * ioctls. The checks refuse what a hostile stream could use to make KVM
 * misbehave or to reach state qnic-vmm never creates (an MSR outside the
 * list below, an IOAPIC moved away from its address, a vCPU index beyond
 * the VM's); what only the kernel can judge (control register
 * combinations, XSAVE features) it refuses with an error naming the vCPU
 * and ioctl. Also here: the dirty log of RAM slots, for pre-copy.
 *
 * Layouts and ioctls: <linux/kvm.h>, <asm/kvm.h>, <asm/kvm_para.h>; MSR
 * numbers from the Intel SDM vol. 4 (the kernel's msr-index.h is not UAPI).
 */
#include "vmm/kvm-state.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/kvm.h>
#include <asm/kvm_para.h>

/* Architectural MSRs (Intel SDM vol. 4, table 2-2). */
#define MSR_IA32_TSC            0x10
#define MSR_IA32_TSC_ADJUST     0x3b
#define MSR_IA32_SPEC_CTRL      0x48
#define MSR_IA32_SYSENTER_CS    0x174
#define MSR_IA32_SYSENTER_ESP   0x175
#define MSR_IA32_SYSENTER_EIP   0x176
#define MSR_IA32_MISC_ENABLE    0x1a0
#define MSR_IA32_CR_PAT         0x277
#define MSR_IA32_TSC_DEADLINE   0x6e0
#define MSR_IA32_XSS            0xda0
#define MSR_EFER_STAR           0xc0000081
#define MSR_LSTAR               0xc0000082
#define MSR_CSTAR               0xc0000083
#define MSR_SYSCALL_MASK        0xc0000084
#define MSR_KERNEL_GS_BASE      0xc0000102
#define MSR_TSC_AUX             0xc0000103

/* The MSRs saved, in the order they are set: the TSC before what counts
 * from it, the async page fault vector before its enable (KVM refuses an
 * interrupt delivery without one). IA32_TSC_DEADLINE is set apart, after
 * the LAPIC (it only holds in the LAPIC's TSC-deadline mode). EFER and
 * APIC_BASE travel in sregs. */
static const uint32_t ks_msrs[] = {
    MSR_IA32_TSC, MSR_IA32_TSC_ADJUST, MSR_IA32_SPEC_CTRL,
    MSR_IA32_SYSENTER_CS, MSR_IA32_SYSENTER_ESP, MSR_IA32_SYSENTER_EIP,
    MSR_IA32_MISC_ENABLE, MSR_IA32_CR_PAT, MSR_IA32_XSS,
    MSR_EFER_STAR, MSR_LSTAR, MSR_CSTAR, MSR_SYSCALL_MASK, MSR_KERNEL_GS_BASE,
    MSR_TSC_AUX,
    MSR_KVM_WALL_CLOCK, MSR_KVM_SYSTEM_TIME,
    MSR_KVM_WALL_CLOCK_NEW, MSR_KVM_SYSTEM_TIME_NEW, MSR_KVM_STEAL_TIME,
    MSR_KVM_PV_EOI_EN, MSR_KVM_POLL_CONTROL, MSR_KVM_ASYNC_PF_INT,
    MSR_KVM_ASYNC_PF_EN,
    MSR_IA32_TSC_DEADLINE,
};
#define KS_MAX_MSRS QNIC_ARRAY_SIZE(ks_msrs)

#define KS_XSAVE_MAX_WORDS 4096         /* 16 KiB: the legacy 4 KiB and AMX */
#define KS_XSAVE_LEGACY_WORDS 1024      /* struct kvm_xsave's region */
#define KS_XSAVE_MXCSR_WORD 6           /* FXSAVE layout: MXCSR at byte 24 */
#define KS_XSAVE_MIN_WORDS ((512 + 64) / 4) /* legacy area and XSAVE header */
#define KS_MXCSR_RESERVED 0xffff0000u   /* no CPU defines these bits */
#define KS_IOAPIC_BASE 0xfec00000ull    /* the only place qnic-vmm has one */
#define KS_NR_SEGS 8
#define KS_NR_PICS 2
#define KS_NR_PIT_CHANNELS 3
#define KS_PIT_MAX_MODE 7
#define KS_PIT_UNPROGRAMMED 0xff        /* KVM's mode until the guest sets one */
#define KS_EVENT_FLAGS (KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR | \
                        KVM_VCPUEVENT_VALID_SHADOW | KVM_VCPUEVENT_VALID_SMM)
#define KS_DR_HIGH 0xffffffff00000000ull    /* DR6/DR7 bits that must be 0 */

/* ---- snapshots and their tables ---- */

#define KS_U(T, m, nm) \
    { .name = nm, .kind = QNIC_SF_UINT, .offset = offsetof(T, m), \
      .size = sizeof(((T *)0)->m), .count_offset = QNIC_SF_NO_COUNT }
#define KS_R(T, m, nm, lo, hi) \
    { .name = nm, .kind = QNIC_SF_UINT, .offset = offsetof(T, m), \
      .size = sizeof(((T *)0)->m), .count_offset = QNIC_SF_NO_COUNT, .min = (lo), .max = (hi) }
#define KS_UA(T, m, nm) \
    { .name = nm, .kind = QNIC_SF_UINT, .offset = offsetof(T, m), \
      .size = sizeof(((T *)0)->m[0]), .count = QNIC_ARRAY_SIZE(((T *)0)->m), \
      .count_offset = QNIC_SF_NO_COUNT }
#define KS_B(T, m, nm) \
    { .name = nm, .kind = QNIC_SF_BYTES, .offset = offsetof(T, m), \
      .size = sizeof(((T *)0)->m), .count_offset = QNIC_SF_NO_COUNT }
/* S m[N], all in use; or n of them, n a uint32_t of T. */
#define KS_S(T, m, nm, desc) \
    { .name = nm, .kind = QNIC_SF_STRUCT, .offset = offsetof(T, m), \
      .size = sizeof(((T *)0)->m[0]), .count = QNIC_ARRAY_SIZE(((T *)0)->m), \
      .count_offset = QNIC_SF_NO_COUNT, .sub = &(desc) }
#define KS_SV(T, m, n, nm, desc) \
    { .name = nm, .kind = QNIC_SF_STRUCT, .offset = offsetof(T, m), \
      .size = sizeof(((T *)0)->m[0]), .count = QNIC_ARRAY_SIZE(((T *)0)->m), \
      .count_offset = offsetof(T, n), .sub = &(desc) }
#define KS_DESC(var, nm, T, fields_) \
    static const QnicStateDesc var = { .name = nm, .version = 1, .min_version = 1, \
                                       .size = sizeof(T), .fields = fields_ }

/* struct kvm_segment: cs, ds, es, fs, gs, ss, tr, ldt. */
static const QnicStateField seg_fields[] = {
    KS_U(struct kvm_segment, base, "base"),
    KS_U(struct kvm_segment, limit, "limit"),
    KS_U(struct kvm_segment, selector, "selector"),
    KS_R(struct kvm_segment, type, "type", 0, 15),
    KS_R(struct kvm_segment, present, "present", 0, 1),
    KS_R(struct kvm_segment, dpl, "dpl", 0, 3),
    KS_R(struct kvm_segment, db, "db", 0, 1),
    KS_R(struct kvm_segment, s, "s", 0, 1),
    KS_R(struct kvm_segment, l, "l", 0, 1),
    KS_R(struct kvm_segment, g, "g", 0, 1),
    KS_R(struct kvm_segment, avl, "avl", 0, 1),
    KS_R(struct kvm_segment, unusable, "unusable", 0, 1),
    QNIC_STATE_END
};
KS_DESC(seg_desc, "segment", struct kvm_segment, seg_fields);

static const QnicStateField dtable_fields[] = {
    KS_U(struct kvm_dtable, base, "base"),
    KS_U(struct kvm_dtable, limit, "limit"),
    QNIC_STATE_END
};
KS_DESC(dtable_desc, "dtable", struct kvm_dtable, dtable_fields);

typedef struct KsMsr {
    uint32_t index;
    uint64_t data;
} KsMsr;

static const QnicStateField msr_fields[] = {
    KS_U(KsMsr, index, "index"),
    KS_U(KsMsr, data, "data"),
    QNIC_STATE_END
};
KS_DESC(msr_desc, "msr", KsMsr, msr_fields);

typedef struct KsXcr {
    uint32_t xcr;
    uint64_t value;
} KsXcr;

static const QnicStateField xcr_fields[] = {
    KS_U(KsXcr, xcr, "xcr"),      /* XCR0 only: ks_vcpu_check */
    KS_U(KsXcr, value, "value"),
    QNIC_STATE_END
};
KS_DESC(xcr_desc, "xcr", KsXcr, xcr_fields);

/* One vCPU: what the GET ioctls return, flattened where the kernel's
 * struct nests (vcpu events). */
typedef struct KsVcpu {
    uint32_t index;
    struct kvm_regs regs;
    struct kvm_segment seg[KS_NR_SEGS];
    struct kvm_dtable dt[2];            /* gdt, idt */
    uint64_t cr0, cr2, cr3, cr4, cr8, efer, apic_base;
    uint64_t interrupt_bitmap[(KVM_NR_INTERRUPTS + 63) / 64];
    /* FPU (struct kvm_fpu) */
    uint8_t fpr[128];
    uint16_t fcw, fsw;
    uint8_t ftwx;
    uint16_t last_opcode;
    uint64_t last_ip, last_dp;
    uint8_t xmm[256];
    uint32_t mxcsr;
    /* XSAVE area (0 words: the host had no XSAVE) and XCRs */
    uint32_t xsave_words;
    uint32_t xsave[KS_XSAVE_MAX_WORDS];
    uint32_t nr_xcrs;
    KsXcr xcrs[KVM_MAX_XCRS];
    uint32_t nr_msrs;
    KsMsr msrs[KS_MAX_MSRS];
    uint8_t lapic[KVM_APIC_REG_SIZE];
    uint32_t mp_state;
    uint64_t db[4], dr6, dr7;
    /* struct kvm_vcpu_events */
    uint8_t exc_injected, exc_nr, exc_has_error_code, exc_pending;
    uint32_t exc_error_code;
    uint8_t irq_injected, irq_nr, irq_soft, irq_shadow;
    uint8_t nmi_injected, nmi_pending, nmi_masked;
    uint32_t sipi_vector, event_flags;
    uint8_t smm, smi_pending, smm_inside_nmi, latched_init;
} KsVcpu;

static const QnicStateField vcpu_fields[] = {
    KS_U(KsVcpu, index, "index"),
    KS_U(KsVcpu, regs.rax, "rax"), KS_U(KsVcpu, regs.rbx, "rbx"),
    KS_U(KsVcpu, regs.rcx, "rcx"), KS_U(KsVcpu, regs.rdx, "rdx"),
    KS_U(KsVcpu, regs.rsi, "rsi"), KS_U(KsVcpu, regs.rdi, "rdi"),
    KS_U(KsVcpu, regs.rsp, "rsp"), KS_U(KsVcpu, regs.rbp, "rbp"),
    KS_U(KsVcpu, regs.r8, "r8"), KS_U(KsVcpu, regs.r9, "r9"),
    KS_U(KsVcpu, regs.r10, "r10"), KS_U(KsVcpu, regs.r11, "r11"),
    KS_U(KsVcpu, regs.r12, "r12"), KS_U(KsVcpu, regs.r13, "r13"),
    KS_U(KsVcpu, regs.r14, "r14"), KS_U(KsVcpu, regs.r15, "r15"),
    KS_U(KsVcpu, regs.rip, "rip"), KS_U(KsVcpu, regs.rflags, "rflags"),
    KS_S(KsVcpu, seg, "segments", seg_desc),
    KS_S(KsVcpu, dt, "dtables", dtable_desc),
    KS_U(KsVcpu, cr0, "cr0"), KS_U(KsVcpu, cr2, "cr2"), KS_U(KsVcpu, cr3, "cr3"),
    KS_U(KsVcpu, cr4, "cr4"), KS_R(KsVcpu, cr8, "cr8", 0, 15),
    KS_U(KsVcpu, efer, "efer"), KS_U(KsVcpu, apic_base, "apic_base"),
    KS_UA(KsVcpu, interrupt_bitmap, "interrupt_bitmap"),
    KS_B(KsVcpu, fpr, "fpr"),
    KS_U(KsVcpu, fcw, "fcw"), KS_U(KsVcpu, fsw, "fsw"), KS_U(KsVcpu, ftwx, "ftwx"),
    KS_U(KsVcpu, last_opcode, "last_opcode"),
    KS_U(KsVcpu, last_ip, "last_ip"), KS_U(KsVcpu, last_dp, "last_dp"),
    KS_B(KsVcpu, xmm, "xmm"),
    KS_R(KsVcpu, mxcsr, "mxcsr", 0, 0xffff),
    { .name = "xsave", .kind = QNIC_SF_UINT, .offset = offsetof(KsVcpu, xsave),
      .size = sizeof(uint32_t), .count = KS_XSAVE_MAX_WORDS,
      .count_offset = offsetof(KsVcpu, xsave_words) },
    KS_SV(KsVcpu, xcrs, nr_xcrs, "xcrs", xcr_desc),
    KS_SV(KsVcpu, msrs, nr_msrs, "msrs", msr_desc),
    KS_B(KsVcpu, lapic, "lapic"),
    KS_R(KsVcpu, mp_state, "mp_state", KVM_MP_STATE_RUNNABLE, KVM_MP_STATE_SIPI_RECEIVED),
    KS_UA(KsVcpu, db, "db"), KS_U(KsVcpu, dr6, "dr6"), KS_U(KsVcpu, dr7, "dr7"),
    KS_R(KsVcpu, exc_injected, "exception_injected", 0, 1),
    KS_R(KsVcpu, exc_nr, "exception_nr", 0, 31),
    KS_R(KsVcpu, exc_has_error_code, "exception_has_error_code", 0, 1),
    KS_R(KsVcpu, exc_pending, "exception_pending", 0, 1),
    KS_U(KsVcpu, exc_error_code, "exception_error_code"),
    KS_R(KsVcpu, irq_injected, "interrupt_injected", 0, 1),
    KS_U(KsVcpu, irq_nr, "interrupt_nr"),
    KS_R(KsVcpu, irq_soft, "interrupt_soft", 0, 1),
    KS_R(KsVcpu, irq_shadow, "interrupt_shadow", 0, 3),
    KS_R(KsVcpu, nmi_injected, "nmi_injected", 0, 1),
    KS_R(KsVcpu, nmi_pending, "nmi_pending", 0, 2),
    KS_R(KsVcpu, nmi_masked, "nmi_masked", 0, 1),
    KS_R(KsVcpu, sipi_vector, "sipi_vector", 0, 0xff),
    KS_R(KsVcpu, event_flags, "event_flags", 0, KS_EVENT_FLAGS),
    KS_R(KsVcpu, smm, "smm", 0, 1),
    KS_R(KsVcpu, smi_pending, "smi_pending", 0, 1),
    KS_R(KsVcpu, smm_inside_nmi, "smm_inside_nmi", 0, 1),
    KS_R(KsVcpu, latched_init, "latched_init", 0, 1),
    QNIC_STATE_END
};
KS_DESC(vcpu_desc, "kvm-vcpu", KsVcpu, vcpu_fields);

static const QnicStateField pic_fields[] = {
    KS_U(struct kvm_pic_state, last_irr, "last_irr"),
    KS_U(struct kvm_pic_state, irr, "irr"),
    KS_U(struct kvm_pic_state, imr, "imr"),
    KS_U(struct kvm_pic_state, isr, "isr"),
    KS_R(struct kvm_pic_state, priority_add, "priority_add", 0, 7),
    KS_U(struct kvm_pic_state, irq_base, "irq_base"),
    KS_R(struct kvm_pic_state, read_reg_select, "read_reg_select", 0, 1),
    KS_R(struct kvm_pic_state, poll, "poll", 0, 1),
    KS_R(struct kvm_pic_state, special_mask, "special_mask", 0, 1),
    KS_R(struct kvm_pic_state, init_state, "init_state", 0, 3),
    KS_R(struct kvm_pic_state, auto_eoi, "auto_eoi", 0, 1),
    KS_R(struct kvm_pic_state, rotate_on_auto_eoi, "rotate_on_auto_eoi", 0, 1),
    KS_R(struct kvm_pic_state, special_fully_nested_mode, "special_fully_nested_mode", 0, 1),
    KS_R(struct kvm_pic_state, init4, "init4", 0, 1),
    KS_U(struct kvm_pic_state, elcr, "elcr"),
    KS_U(struct kvm_pic_state, elcr_mask, "elcr_mask"),
    QNIC_STATE_END
};
KS_DESC(pic_desc, "pic", struct kvm_pic_state, pic_fields);

static const QnicStateField pit_fields[] = {
    KS_R(struct kvm_pit_channel_state, count, "count", 0, 0x10000),
    KS_U(struct kvm_pit_channel_state, latched_count, "latched_count"),
    KS_R(struct kvm_pit_channel_state, count_latched, "count_latched", 0, 3),
    KS_R(struct kvm_pit_channel_state, status_latched, "status_latched", 0, 1),
    KS_U(struct kvm_pit_channel_state, status, "status"),
    KS_R(struct kvm_pit_channel_state, read_state, "read_state", 0, 4),
    KS_R(struct kvm_pit_channel_state, write_state, "write_state", 0, 4),
    KS_U(struct kvm_pit_channel_state, write_latch, "write_latch"),
    KS_R(struct kvm_pit_channel_state, rw_mode, "rw_mode", 0, 3),
    KS_U(struct kvm_pit_channel_state, mode, "mode"),     /* ks_read_all */
    KS_R(struct kvm_pit_channel_state, bcd, "bcd", 0, 1),
    KS_R(struct kvm_pit_channel_state, gate, "gate", 0, 1),
    KS_U(struct kvm_pit_channel_state, count_load_time, "count_load_time"),
    QNIC_STATE_END
};
KS_DESC(pit_desc, "pit-channel", struct kvm_pit_channel_state, pit_fields);

typedef struct KsVm {
    uint32_t nr_vcpus;
    struct kvm_pic_state pic[KS_NR_PICS];     /* master, slave */
    uint64_t ioapic_base;
    uint32_t ioregsel, ioapic_id, ioapic_irr;
    uint64_t redirtbl[KVM_IOAPIC_NUM_PINS];
    struct kvm_pit_channel_state pit[KS_NR_PIT_CHANNELS];
    uint32_t pit_flags;
    uint64_t clock;
} KsVm;

static const QnicStateField vm_fields[] = {
    KS_R(KsVm, nr_vcpus, "nr_vcpus", 1, 255),
    KS_S(KsVm, pic, "pic", pic_desc),
    KS_R(KsVm, ioapic_base, "ioapic_base", KS_IOAPIC_BASE, KS_IOAPIC_BASE),
    KS_R(KsVm, ioregsel, "ioregsel", 0, 0xff),
    KS_R(KsVm, ioapic_id, "ioapic_id", 0, 0xff),
    KS_U(KsVm, ioapic_irr, "ioapic_irr"),
    KS_UA(KsVm, redirtbl, "redirtbl"),
    KS_S(KsVm, pit, "pit", pit_desc),
    KS_R(KsVm, pit_flags, "pit_flags", 0,
         KVM_PIT_FLAGS_HPET_LEGACY | KVM_PIT_FLAGS_SPEAKER_DATA_ON),
    KS_U(KsVm, clock, "clock"),
    QNIC_STATE_END
};
KS_DESC(vm_desc, "kvm-vm", KsVm, vm_fields);

/* ---- the host's KVM ---- */

static bool ks_ioctl(int fd, unsigned long req, void *arg, const char *what, int vcpu,
                     GError **errp)
{
    int r;

    do {
        r = ioctl(fd, req, arg);
    } while (r < 0 && errno == EINTR);
    if (r < 0) {
        if (vcpu >= 0) {
            qnic_error_setg_errno(errp, errno, "vCPU %d: %s failed", vcpu, what);
        } else {
            qnic_error_setg_errno(errp, errno, "%s failed", what);
        }
        return false;
    }
    return true;
}

/* The MSRs of ks_msrs this host's KVM has (KVM_GET_MSR_INDEX_LIST, which
 * also lists the ones it emulates, kvmclock's among them). */
static bool ks_host_has_msr(int kvm_fd, uint32_t index)
{
    struct {
        struct kvm_msr_list l;
        uint32_t indices[1024];
    } list = { .l.nmsrs = 1024 };

    if (ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, &list) < 0) {
        return false;
    }
    for (uint32_t i = 0; i < list.l.nmsrs && i < 1024; i++) {
        if (list.indices[i] == index) {
            return true;
        }
    }
    return false;
}

/* Bytes of struct kvm_xsave KVM_GET_XSAVE(2) fills; 0: no XSAVE. */
static size_t ks_xsave_size(const QnicKvmFds *vm)
{
    int n = ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);

    if (n > 0) {
        return (size_t)n;
    }
    return ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE) > 0 ?
           sizeof(struct kvm_xsave) : 0;
}

/* ---- saving ---- */

static void ks_sregs_from(KsVcpu *s, const struct kvm_sregs *sr)
{
    const struct kvm_segment *segs[KS_NR_SEGS] = {
        &sr->cs, &sr->ds, &sr->es, &sr->fs, &sr->gs, &sr->ss, &sr->tr, &sr->ldt,
    };
    for (unsigned i = 0; i < KS_NR_SEGS; i++) {
        s->seg[i] = *segs[i];
        s->seg[i].padding = 0;
    }
    s->dt[0] = sr->gdt;
    s->dt[1] = sr->idt;
    memset(s->dt[0].padding, 0, sizeof(s->dt[0].padding));
    memset(s->dt[1].padding, 0, sizeof(s->dt[1].padding));
    s->cr0 = sr->cr0;
    s->cr2 = sr->cr2;
    s->cr3 = sr->cr3;
    s->cr4 = sr->cr4;
    s->cr8 = sr->cr8;
    s->efer = sr->efer;
    s->apic_base = sr->apic_base;
    memcpy(s->interrupt_bitmap, sr->interrupt_bitmap, sizeof(s->interrupt_bitmap));
}

static void ks_fpu_from(KsVcpu *s, const struct kvm_fpu *f)
{
    memcpy(s->fpr, f->fpr, sizeof(s->fpr));
    s->fcw = f->fcw;
    s->fsw = f->fsw;
    s->ftwx = f->ftwx;
    s->last_opcode = f->last_opcode;
    s->last_ip = f->last_ip;
    s->last_dp = f->last_dp;
    memcpy(s->xmm, f->xmm, sizeof(s->xmm));
    s->mxcsr = f->mxcsr;
}

static void ks_events_from(KsVcpu *s, const struct kvm_vcpu_events *e)
{
    s->exc_injected = e->exception.injected;
    s->exc_nr = e->exception.nr;
    s->exc_has_error_code = e->exception.has_error_code;
    s->exc_pending = e->exception.pending;
    s->exc_error_code = e->exception.error_code;
    s->irq_injected = e->interrupt.injected;
    s->irq_nr = e->interrupt.nr;
    s->irq_soft = e->interrupt.soft;
    s->irq_shadow = e->interrupt.shadow;
    s->nmi_injected = e->nmi.injected;
    s->nmi_pending = e->nmi.pending;
    s->nmi_masked = e->nmi.masked;
    s->sipi_vector = e->sipi_vector;
    s->event_flags = e->flags & KS_EVENT_FLAGS;
    s->smm = e->smi.smm;
    s->smi_pending = e->smi.pending;
    s->smm_inside_nmi = e->smi.smm_inside_nmi;
    s->latched_init = e->smi.latched_init;
}

/* The MSRs of ks_msrs that the host has and this vCPU lets us read (one
 * at a time: an MSR the guest's CPUID hides fails alone). */
static void ks_msrs_save(const QnicKvmFds *vm, int fd, KsVcpu *s)
{
    struct {
        struct kvm_msrs h;
        struct kvm_msr_entry e[1];
    } one;

    s->nr_msrs = 0;
    for (unsigned i = 0; i < KS_MAX_MSRS; i++) {
        if (!ks_host_has_msr(vm->kvm_fd, ks_msrs[i])) {
            continue;
        }
        memset(&one, 0, sizeof(one));
        one.h.nmsrs = 1;
        one.e[0].index = ks_msrs[i];
        if (ioctl(fd, KVM_GET_MSRS, &one) == 1) {
            s->msrs[s->nr_msrs++] = (KsMsr){ .index = ks_msrs[i], .data = one.e[0].data };
        }
    }
}

static bool ks_xsave_save(const QnicKvmFds *vm, int fd, unsigned idx, KsVcpu *s,
                          GError **errp)
{
    size_t size = ks_xsave_size(vm);

    if (size == 0) {
        return true;
    }
    if (size > KS_XSAVE_MAX_WORDS * 4 || size % 4) {
        qnic_error_setg(errp, "vCPU %u: an XSAVE area of %zu bytes is more than qnic-vmm "
                        "migrates (%u)", idx, size, KS_XSAVE_MAX_WORDS * 4);
        return false;
    }
    g_autofree struct kvm_xsave *x = g_malloc0(MAX(size, sizeof(*x)));
    bool v2 = ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2) > 0;
    if (!ks_ioctl(fd, v2 ? KVM_GET_XSAVE2 : KVM_GET_XSAVE, x,
                  v2 ? "KVM_GET_XSAVE2" : "KVM_GET_XSAVE", idx, errp)) {
        return false;
    }
    memcpy(s->xsave, x, size);
    s->xsave_words = size / 4;
    struct kvm_xcrs xcrs;
    if (ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XCRS) > 0) {
        if (!ks_ioctl(fd, KVM_GET_XCRS, &xcrs, "KVM_GET_XCRS", idx, errp)) {
            return false;
        }
        s->nr_xcrs = MIN(xcrs.nr_xcrs, KVM_MAX_XCRS);
        for (unsigned i = 0; i < s->nr_xcrs; i++) {
            s->xcrs[i] = (KsXcr){ .xcr = xcrs.xcrs[i].xcr, .value = xcrs.xcrs[i].value };
        }
    }
    return true;
}

static bool ks_vcpu_save(const QnicKvmFds *vm, unsigned idx, KsVcpu *s, GError **errp)
{
    int fd = vm->vcpu_fds[idx];
    struct kvm_sregs sregs;
    struct kvm_fpu fpu;
    struct kvm_mp_state mp;
    struct kvm_debugregs dbg;
    struct kvm_vcpu_events ev;

    memset(s, 0, sizeof(*s));
    s->index = idx;
    if (!ks_ioctl(fd, KVM_GET_REGS, &s->regs, "KVM_GET_REGS", idx, errp) ||
        !ks_ioctl(fd, KVM_GET_SREGS, &sregs, "KVM_GET_SREGS", idx, errp) ||
        !ks_ioctl(fd, KVM_GET_FPU, &fpu, "KVM_GET_FPU", idx, errp) ||
        !ks_ioctl(fd, KVM_GET_LAPIC, s->lapic, "KVM_GET_LAPIC", idx, errp) ||
        !ks_ioctl(fd, KVM_GET_MP_STATE, &mp, "KVM_GET_MP_STATE", idx, errp) ||
        !ks_ioctl(fd, KVM_GET_DEBUGREGS, &dbg, "KVM_GET_DEBUGREGS", idx, errp) ||
        !ks_ioctl(fd, KVM_GET_VCPU_EVENTS, &ev, "KVM_GET_VCPU_EVENTS", idx, errp)) {
        return false;
    }
    ks_sregs_from(s, &sregs);
    ks_fpu_from(s, &fpu);
    s->mp_state = mp.mp_state;
    memcpy(s->db, dbg.db, sizeof(s->db));
    s->dr6 = dbg.dr6;
    s->dr7 = dbg.dr7;
    ks_events_from(s, &ev);
    ks_msrs_save(vm, fd, s);
    return ks_xsave_save(vm, fd, idx, s, errp);
}

static bool ks_vm_save(const QnicKvmFds *vm, KsVm *s, GError **errp)
{
    struct kvm_irqchip chip;
    struct kvm_pit_state2 pit;
    struct kvm_clock_data clock = { 0 };

    memset(s, 0, sizeof(*s));
    s->nr_vcpus = vm->nr_vcpus;
    for (unsigned i = 0; i < KS_NR_PICS; i++) {
        chip = (struct kvm_irqchip){ .chip_id = i ? KVM_IRQCHIP_PIC_SLAVE : KVM_IRQCHIP_PIC_MASTER };
        if (!ks_ioctl(vm->vm_fd, KVM_GET_IRQCHIP, &chip, "KVM_GET_IRQCHIP (PIC)", -1, errp)) {
            return false;
        }
        s->pic[i] = chip.chip.pic;
    }
    chip = (struct kvm_irqchip){ .chip_id = KVM_IRQCHIP_IOAPIC };
    if (!ks_ioctl(vm->vm_fd, KVM_GET_IRQCHIP, &chip, "KVM_GET_IRQCHIP (IOAPIC)", -1, errp)) {
        return false;
    }
    s->ioapic_base = chip.chip.ioapic.base_address;
    s->ioregsel = chip.chip.ioapic.ioregsel;
    s->ioapic_id = chip.chip.ioapic.id;
    s->ioapic_irr = chip.chip.ioapic.irr;
    for (unsigned i = 0; i < KVM_IOAPIC_NUM_PINS; i++) {
        s->redirtbl[i] = chip.chip.ioapic.redirtbl[i].bits;
    }
    if (!ks_ioctl(vm->vm_fd, KVM_GET_PIT2, &pit, "KVM_GET_PIT2", -1, errp) ||
        !ks_ioctl(vm->vm_fd, KVM_GET_CLOCK, &clock, "KVM_GET_CLOCK", -1, errp)) {
        return false;
    }
    memcpy(s->pit, pit.channels, sizeof(s->pit));
    s->pit_flags = pit.flags;
    s->clock = clock.clock;
    return true;
}

bool qnic_kvm_state_save(const QnicKvmFds *vm, GByteArray *out, GError **errp)
{
    KsVm vs;

    if (!ks_vm_save(vm, &vs, errp)) {
        return false;
    }
    qnic_state_write(out, &vm_desc, &vs);
    g_autofree KsVcpu *s = g_new(KsVcpu, 1);
    for (unsigned i = 0; i < vm->nr_vcpus; i++) {
        if (!ks_vcpu_save(vm, i, s, errp)) {
            return false;
        }
        qnic_state_write(out, &vcpu_desc, s);
    }
    return true;
}

/* ---- loading: checks ---- */

static bool ks_msr_known(uint32_t index)
{
    for (unsigned i = 0; i < KS_MAX_MSRS; i++) {
        if (ks_msrs[i] == index) {
            return true;
        }
    }
    return false;
}

/* What the field table cannot say about one vCPU. */
static bool ks_vcpu_check(const QnicKvmFds *vm, const KsVcpu *s, size_t xsave_size,
                          GError **errp)
{
    unsigned idx = s->index;

    if (s->dr6 & KS_DR_HIGH || s->dr7 & KS_DR_HIGH) {
        qnic_error_setg(errp, "vCPU %u: DR6/DR7 0x%" PRIx64 "/0x%" PRIx64 " set reserved bits",
                        idx, s->dr6, s->dr7);
        return false;
    }
    if (s->xsave_words && !xsave_size) {
        qnic_error_setg(errp, "vCPU %u: the stream has an XSAVE area and this host's KVM "
                        "has no XSAVE", idx);
        return false;
    }
    if (s->xsave_words && (s->xsave_words < KS_XSAVE_MIN_WORDS ||
                           s->xsave_words * 4ull > xsave_size)) {
        qnic_error_setg(errp, "vCPU %u: an XSAVE area of %u bytes does not fit this host's "
                        "(%zu bytes)", idx, s->xsave_words * 4, xsave_size);
        return false;
    }
    if (s->xsave_words && (s->xsave[KS_XSAVE_MXCSR_WORD] & KS_MXCSR_RESERVED)) {
        qnic_error_setg(errp, "vCPU %u: XSAVE MXCSR 0x%x sets reserved bits", idx,
                        s->xsave[KS_XSAVE_MXCSR_WORD]);
        return false;
    }
    for (unsigned i = 0; i < s->nr_xcrs; i++) {
        if (s->xcrs[i].xcr != 0) {
            qnic_error_setg(errp, "vCPU %u: XCR%u does not exist (XCR0 only)", idx,
                            s->xcrs[i].xcr);
            return false;
        }
    }
    for (unsigned i = 0; i < s->nr_msrs; i++) {
        uint32_t msr = s->msrs[i].index;
        if (!ks_msr_known(msr) || !ks_host_has_msr(vm->kvm_fd, msr)) {
            qnic_error_setg(errp, "vCPU %u: MSR 0x%x is not one qnic-vmm migrates%s", idx,
                            msr, ks_msr_known(msr) ? " on this host's KVM" : "");
            return false;
        }
        for (unsigned j = 0; j < i; j++) {
            if (s->msrs[j].index == msr) {
                qnic_error_setg(errp, "vCPU %u: MSR 0x%x appears twice", idx, msr);
                return false;
            }
        }
    }
    return true;
}

/* Decode the "kvm-vm" section and every "kvm-vcpu" one (vcpus: nr_vcpus
 * of them, in vCPU order) and check them all. */
static bool ks_read_all(const QnicKvmFds *vm, QnicStateReader *r, KsVm *vs, KsVcpu *vcpus,
                        GError **errp)
{
    size_t xsave_size = ks_xsave_size(vm);
    g_autofree bool *seen = g_new0(bool, vm->nr_vcpus);
    g_autofree KsVcpu *s = g_new(KsVcpu, 1);

    if (!qnic_state_read(r, &vm_desc, vs, errp)) {
        return false;
    }
    if (vs->nr_vcpus != vm->nr_vcpus) {
        qnic_error_setg(errp, "the stream has %u vCPUs, this VM %u (-smp must match)",
                        vs->nr_vcpus, vm->nr_vcpus);
        return false;
    }
    for (unsigned i = 0; i < KS_NR_PICS; i++) {
        if (vs->pic[i].irq_base & 7) {
            qnic_error_setg(errp, "kvm-vm: PIC %u's vector base 0x%x is not a multiple of 8",
                            i, vs->pic[i].irq_base);
            return false;
        }
    }
    for (unsigned i = 0; i < KS_NR_PIT_CHANNELS; i++) {
        if (vs->pit[i].mode > KS_PIT_MAX_MODE && vs->pit[i].mode != KS_PIT_UNPROGRAMMED) {
            qnic_error_setg(errp, "kvm-vm: PIT channel %u's mode %u is not an i8254 mode",
                            i, vs->pit[i].mode);
            return false;
        }
    }
    for (unsigned n = 0; n < vm->nr_vcpus; n++) {
        if (!qnic_state_read(r, &vcpu_desc, s, errp)) {
            return false;
        }
        if (s->index >= vm->nr_vcpus || seen[s->index]) {
            qnic_error_setg(errp, "kvm-vcpu: vCPU index %u is %s", s->index,
                            s->index >= vm->nr_vcpus ? "out of range" : "repeated");
            return false;
        }
        if (!ks_vcpu_check(vm, s, xsave_size, errp)) {
            return false;
        }
        seen[s->index] = true;
        vcpus[s->index] = *s;
    }
    return true;
}

/* ---- loading: applying ---- */

static void ks_sregs_to(const KsVcpu *s, struct kvm_sregs *sr)
{
    struct kvm_segment *segs[KS_NR_SEGS] = {
        &sr->cs, &sr->ds, &sr->es, &sr->fs, &sr->gs, &sr->ss, &sr->tr, &sr->ldt,
    };
    memset(sr, 0, sizeof(*sr));
    for (unsigned i = 0; i < KS_NR_SEGS; i++) {
        *segs[i] = s->seg[i];
    }
    sr->gdt = s->dt[0];
    sr->idt = s->dt[1];
    sr->cr0 = s->cr0;
    sr->cr2 = s->cr2;
    sr->cr3 = s->cr3;
    sr->cr4 = s->cr4;
    sr->cr8 = s->cr8;
    sr->efer = s->efer;
    sr->apic_base = s->apic_base;
    memcpy(sr->interrupt_bitmap, s->interrupt_bitmap, sizeof(sr->interrupt_bitmap));
}

static void ks_fpu_to(const KsVcpu *s, struct kvm_fpu *f)
{
    memset(f, 0, sizeof(*f));
    memcpy(f->fpr, s->fpr, sizeof(f->fpr));
    f->fcw = s->fcw;
    f->fsw = s->fsw;
    f->ftwx = s->ftwx;
    f->last_opcode = s->last_opcode;
    f->last_ip = s->last_ip;
    f->last_dp = s->last_dp;
    memcpy(f->xmm, s->xmm, sizeof(f->xmm));
    f->mxcsr = s->mxcsr;
}

static void ks_events_to(const KsVcpu *s, struct kvm_vcpu_events *e)
{
    memset(e, 0, sizeof(*e));
    e->exception.injected = s->exc_injected;
    e->exception.nr = s->exc_nr;
    e->exception.has_error_code = s->exc_has_error_code;
    e->exception.pending = s->exc_pending;
    e->exception.error_code = s->exc_error_code;
    e->interrupt.injected = s->irq_injected;
    e->interrupt.nr = s->irq_nr;
    e->interrupt.soft = s->irq_soft;
    e->interrupt.shadow = s->irq_shadow;
    e->nmi.injected = s->nmi_injected;
    e->nmi.pending = s->nmi_pending;
    e->nmi.masked = s->nmi_masked;
    e->sipi_vector = s->sipi_vector;
    /* NMI pending and the SIPI vector are taken only when flagged. */
    e->flags = s->event_flags | KVM_VCPUEVENT_VALID_NMI_PENDING |
               KVM_VCPUEVENT_VALID_SIPI_VECTOR;
    e->smi.smm = s->smm;
    e->smi.pending = s->smi_pending;
    e->smi.smm_inside_nmi = s->smm_inside_nmi;
    e->smi.latched_init = s->latched_init;
}

/* Set the MSRs of s whose index is (deadline) or is not (!deadline)
 * IA32_TSC_DEADLINE. */
static bool ks_msrs_load(int fd, unsigned idx, const KsVcpu *s, bool deadline, GError **errp)
{
    struct {
        struct kvm_msrs h;
        struct kvm_msr_entry e[KS_MAX_MSRS];
    } m;
    memset(&m, 0, sizeof(m));
    for (unsigned i = 0; i < s->nr_msrs; i++) {
        if ((s->msrs[i].index == MSR_IA32_TSC_DEADLINE) == deadline) {
            m.e[m.h.nmsrs++] = (struct kvm_msr_entry){ .index = s->msrs[i].index,
                                                       .data = s->msrs[i].data };
        }
    }
    if (m.h.nmsrs == 0) {
        return true;
    }
    int r = ioctl(fd, KVM_SET_MSRS, &m);
    if (r < 0) {
        qnic_error_setg_errno(errp, errno, "vCPU %u: KVM_SET_MSRS failed", idx);
        return false;
    }
    if ((unsigned)r < m.h.nmsrs) {
        qnic_error_setg(errp, "vCPU %u: KVM_SET_MSRS refused MSR 0x%x = 0x%" PRIx64, idx,
                        m.e[r].index, (uint64_t)m.e[r].data);
        return false;
    }
    return true;
}

static bool ks_xsave_load(const QnicKvmFds *vm, int fd, unsigned idx, const KsVcpu *s,
                          GError **errp)
{
    if (s->xsave_words == 0) {
        return true;
    }
    size_t size = ks_xsave_size(vm);
    g_autofree struct kvm_xsave *x = g_malloc0(MAX(size, sizeof(*x)));
    memcpy(x, s->xsave, s->xsave_words * 4);
    if (!ks_ioctl(fd, KVM_SET_XSAVE, x, "KVM_SET_XSAVE", idx, errp)) {
        return false;
    }
    if (s->nr_xcrs) {
        struct kvm_xcrs xcrs = { .nr_xcrs = s->nr_xcrs };
        for (unsigned i = 0; i < s->nr_xcrs; i++) {
            xcrs.xcrs[i] = (struct kvm_xcr){ .xcr = s->xcrs[i].xcr, .value = s->xcrs[i].value };
        }
        return ks_ioctl(fd, KVM_SET_XCRS, &xcrs, "KVM_SET_XCRS", idx, errp);
    }
    return true;
}

static bool ks_vcpu_load(const QnicKvmFds *vm, const KsVcpu *s, GError **errp)
{
    unsigned idx = s->index;
    int fd = vm->vcpu_fds[idx];
    struct kvm_sregs sregs;
    struct kvm_regs regs = s->regs;
    struct kvm_fpu fpu;
    struct kvm_lapic_state lapic;
    struct kvm_mp_state mp = { .mp_state = s->mp_state };
    struct kvm_debugregs dbg = { .dr6 = s->dr6, .dr7 = s->dr7 };
    struct kvm_vcpu_events ev;

    ks_sregs_to(s, &sregs);
    ks_fpu_to(s, &fpu);
    memcpy(lapic.regs, s->lapic, sizeof(lapic.regs));
    memcpy(dbg.db, s->db, sizeof(dbg.db));
    ks_events_to(s, &ev);
    return ks_ioctl(fd, KVM_SET_SREGS, &sregs, "KVM_SET_SREGS", idx, errp) &&
           ks_ioctl(fd, KVM_SET_REGS, &regs, "KVM_SET_REGS", idx, errp) &&
           ks_ioctl(fd, KVM_SET_FPU, &fpu, "KVM_SET_FPU", idx, errp) &&
           ks_xsave_load(vm, fd, idx, s, errp) &&
           ks_msrs_load(fd, idx, s, false, errp) &&
           ks_ioctl(fd, KVM_SET_LAPIC, &lapic, "KVM_SET_LAPIC", idx, errp) &&
           ks_msrs_load(fd, idx, s, true, errp) &&
           ks_ioctl(fd, KVM_SET_MP_STATE, &mp, "KVM_SET_MP_STATE", idx, errp) &&
           ks_ioctl(fd, KVM_SET_DEBUGREGS, &dbg, "KVM_SET_DEBUGREGS", idx, errp) &&
           ks_ioctl(fd, KVM_SET_VCPU_EVENTS, &ev, "KVM_SET_VCPU_EVENTS", idx, errp);
}

static bool ks_vm_load(const QnicKvmFds *vm, const KsVm *s, GError **errp)
{
    struct kvm_irqchip chip;
    struct kvm_pit_state2 pit = { .flags = s->pit_flags };
    struct kvm_clock_data clock = { .clock = s->clock };

    for (unsigned i = 0; i < KS_NR_PICS; i++) {
        chip = (struct kvm_irqchip){ .chip_id = i ? KVM_IRQCHIP_PIC_SLAVE : KVM_IRQCHIP_PIC_MASTER };
        chip.chip.pic = s->pic[i];
        if (!ks_ioctl(vm->vm_fd, KVM_SET_IRQCHIP, &chip, "KVM_SET_IRQCHIP (PIC)", -1, errp)) {
            return false;
        }
    }
    chip = (struct kvm_irqchip){ .chip_id = KVM_IRQCHIP_IOAPIC };
    chip.chip.ioapic.base_address = s->ioapic_base;
    chip.chip.ioapic.ioregsel = s->ioregsel;
    chip.chip.ioapic.id = s->ioapic_id;
    chip.chip.ioapic.irr = s->ioapic_irr;
    for (unsigned i = 0; i < KVM_IOAPIC_NUM_PINS; i++) {
        chip.chip.ioapic.redirtbl[i].bits = s->redirtbl[i];
    }
    memcpy(pit.channels, s->pit, sizeof(pit.channels));
    return ks_ioctl(vm->vm_fd, KVM_SET_IRQCHIP, &chip, "KVM_SET_IRQCHIP (IOAPIC)", -1, errp) &&
           ks_ioctl(vm->vm_fd, KVM_SET_PIT2, &pit, "KVM_SET_PIT2", -1, errp) &&
           ks_ioctl(vm->vm_fd, KVM_SET_CLOCK, &clock, "KVM_SET_CLOCK", -1, errp);
}

bool qnic_kvm_state_load(const QnicKvmFds *vm, QnicStateReader *r, GError **errp)
{
    KsVm vs;
    g_autofree KsVcpu *vcpus = g_new0(KsVcpu, vm->nr_vcpus);

    if (!ks_read_all(vm, r, &vs, vcpus, errp)) {
        return false;
    }
    for (unsigned i = 0; i < vm->nr_vcpus; i++) {
        if (!ks_vcpu_load(vm, &vcpus[i], errp)) {
            return false;
        }
    }
    return ks_vm_load(vm, &vs, errp);
}

/* ---- dirty log ---- */

bool qnic_kvm_dirty_log_manual(int kvm_fd, int vm_fd)
{
    int caps = ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2);

    if (caps <= 0) {
        return false;
    }
    /* Manual protection only: without INITIALLY_SET, the first GET
     * returns what was written since logging started, as the legacy
     * ioctl does. */
    struct kvm_enable_cap cap = {
        .cap = KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2,
        .args[0] = KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE,
    };
    return ioctl(vm_fd, KVM_ENABLE_CAP, &cap) == 0;
}

bool qnic_kvm_dirty_log_set(int vm_fd, const QnicKvmLogSlot *s, bool on, GError **errp)
{
    struct kvm_userspace_memory_region mr = {
        .slot = s->slot,
        .flags = on ? KVM_MEM_LOG_DIRTY_PAGES : 0,
        .guest_phys_addr = s->gpa,
        .memory_size = s->size,
        .userspace_addr = (uintptr_t)s->host,
    };
    return ks_ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &mr,
                    on ? "KVM_SET_USER_MEMORY_REGION (log dirty pages)" :
                         "KVM_SET_USER_MEMORY_REGION (stop logging)", -1, errp);
}

/* OR the slot's bits (its page 0 is RAM page first) into bitmap. */
static void ks_bitmap_or(uint64_t *bitmap, uint64_t first, const uint64_t *slot, size_t words)
{
    for (size_t w = 0; w < words; w++) {
        uint64_t bits = slot[w];
        while (bits) {
            uint64_t page = first + w * 64 + (uint64_t)__builtin_ctzll(bits);
            bitmap[page / 64] |= 1ull << (page % 64);
            bits &= bits - 1;
        }
    }
}

bool qnic_kvm_dirty_log_sync(int vm_fd, bool manual, const QnicKvmLogSlot *s,
                             uint64_t *bitmap, uint64_t *scratch, GError **errp)
{
    uint64_t pages = s->size / QNIC_KVM_DIRTY_PAGE;
    size_t words = (pages + 63) / 64;
    struct kvm_dirty_log log = { .slot = s->slot, .dirty_bitmap = scratch };

    memset(scratch, 0, words * 8);
    if (!ks_ioctl(vm_fd, KVM_GET_DIRTY_LOG, &log, "KVM_GET_DIRTY_LOG", -1, errp)) {
        return false;
    }
    if (manual) {
        /* Re-arm write protection for exactly what was reported. */
        struct kvm_clear_dirty_log clr = {
            .slot = s->slot, .first_page = 0, .num_pages = (uint32_t)pages,
            .dirty_bitmap = scratch,
        };
        if (!ks_ioctl(vm_fd, KVM_CLEAR_DIRTY_LOG, &clr, "KVM_CLEAR_DIRTY_LOG", -1, errp)) {
            return false;
        }
    }
    ks_bitmap_or(bitmap, s->ram_page, scratch, words);
    return true;
}

void qnic_kvm_dirty_log_all(const QnicKvmLogSlot *s, uint64_t *bitmap)
{
    uint64_t pages = s->size / QNIC_KVM_DIRTY_PAGE;

    for (uint64_t p = s->ram_page; p < s->ram_page + pages; p++) {
        bitmap[p / 64] |= 1ull << (p % 64);
    }
}
