/*
 * The KVM accelerator of qnic-vmm: one VM with the in-kernel irqchip
 * (PIC + IOAPIC + LAPICs) and PIT, guest RAM registered as memory slots from
 * the machine's memory address space, ioeventfds handed to the kernel, one
 * thread per vCPU that forwards port and MMIO exits to the machine's address
 * spaces under the big lock, and the main thread running the event loop
 * (data path, timers, backends). Interrupt lines become KVM_IRQ_LINE, MSI
 * writes become KVM_SIGNAL_MSI. Shutdown is cooperative: isa-debug-exit, a
 * signal or a fatal vCPU error requests an exit, the main thread then kicks
 * every vCPU out of KVM_RUN (immediate_exit + SIGUSR1) and joins it.
 *
 * Only the accelerator lives here: the pc board (pc.c) holds the serial
 * port, port 0x61 (reading and gating the in-kernel PIT's channel 2 through
 * the pit_ch2 ops) and firmware's duties. All state is one KvmState per
 * machine, which init returns and cleanup frees.
 */
#include "vmm/vmm.h"
#include "vmm/boot.h"
#include "vmm/kvm-state.h"
#include "vmm/migration.h"
#include "qnic/machine.h"
#include "qnic/memory.h"
#include "qnic/mainloop.h"
#include "qnic/clock.h"
#include "qnic/log.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/sysinfo.h>
#include <linux/kvm.h>
#include <asm/processor-flags.h>    /* X86_CR0_*, X86_CR4_*, X86_EFLAGS_FIXED */

#define KVM_KICK_SIGNAL SIGUSR1
/* LAPIC registers and delivery modes (Intel SDM vol. 3, 10.5.1). */
#define APIC_LVT_LINT0 0x350
#define APIC_LVT_LINT1 0x360
#define APIC_LVT_DM_SHIFT 8             /* LVT bits 10:8: delivery mode */
#define APIC_LVT_DM_MASK  (7u << APIC_LVT_DM_SHIFT)
#define APIC_DM_NMI    4
#define APIC_DM_EXTINT 7

/* IA32_EFER bits (Intel SDM vol. 3, 2.2.1; the kernel's msr-index.h is not
 * UAPI). */
#define X86_EFER_LME (1ull << 8)
#define X86_EFER_LMA (1ull << 10)

/* CPUID leaves and fields qnic sets per vCPU (Intel SDM vol. 2A, CPUID). */
#define CPUID_LEAF_FEATURES        0x1
#define CPUID_LEAF_EXT_TOPOLOGY    0xb
#define CPUID_LEAF_V2_EXT_TOPOLOGY 0x1f
#define CPUID_1_EBX_LOW_MASK       0x0000ffffu  /* brand index, CLFLUSH size */
#define CPUID_1_EBX_COUNT_SHIFT    16   /* max logical processor IDs, 23:16 */
#define CPUID_1_EBX_APIC_ID_SHIFT  24   /* initial APIC ID, 31:24 */
#define CPUID_1_EBX_MAX_COUNT      255u
#define CPUID_1_EDX_HTT            (1u << 28)

/* x87 and SSE state after FNINIT / reset (Intel SDM vol. 1, 8.1.5 and
 * 10.2.3.1): every exception masked, 64-bit precision, round to nearest. */
#define X86_FPU_FCW_DEFAULT 0x37f
#define X86_MXCSR_DEFAULT   0x1f80

/* Segment descriptor types (Intel SDM vol. 3, 3.4.5.1 and 3.5): the flat
 * boot segments and the task register, and the 32-bit TSS's size - 1. */
#define X86_SEG_TYPE_CODE_XRA   0xb     /* code, execute/read, accessed */
#define X86_SEG_TYPE_DATA_RWA   0x3     /* data, read/write, accessed */
#define X86_SEG_TYPE_TSS32_BUSY 0xb     /* system: 32-bit TSS, busy */
#define X86_SEG_LIMIT_FLAT      0xffffffffu
#define X86_TSS32_LIMIT         0x67

/* The in-kernel irqchip: 16 ISA IRQs on the two 8259 PICs (8 pins each)
 * and the IOAPIC's KVM_IOAPIC_NUM_PINS (asm/kvm.h). */
#define KVM_PIC_PINS      8
#define KVM_ISA_IRQS      (2 * KVM_PIC_PINS)

typedef struct KvmState KvmState;

/* A vCPU's state as KVM created it (with qnic's CPUID, LAPIC LINT setup
 * and FPU defaults): a system reset puts it back, as power-on would. */
typedef struct KvmVcpuInit {
    struct kvm_regs regs;
    struct kvm_sregs sregs;
    struct kvm_fpu fpu;
    struct kvm_lapic_state lapic;
    struct kvm_mp_state mp_state;
    struct kvm_vcpu_events events;
    struct kvm_debugregs debugregs;
    struct kvm_xcrs xcrs;
    bool have_xcrs;
    struct kvm_msrs *msrs;      /* every MSR of KVM's list that reads */
} KvmVcpuInit;

typedef struct KvmVcpu {
    KvmState *k;
    unsigned index;
    int fd;
    struct kvm_run *run;
    pthread_t thread;
    bool thread_started;
    KvmVcpuInit init;
} KvmVcpu;

typedef struct KvmSlot {
    QnicRegion *r;          /* NULL = free */
    uint64_t gpa, size;
    uint32_t flags;
} KvmSlot;

typedef struct KvmIoeventfd {
    QnicRegion *r;
    QnicIoEventFd e;
    struct kvm_ioeventfd k;     /* as registered, for the deassign */
} KvmIoeventfd;

/* An MSI message with its own GSI route and irqfd: the first time a
 * message is seen it gets a route; every later one is an eventfd write. */
#define KVM_MSI_ROUTES 64
#define KVM_MSI_GSI_BASE KVM_IOAPIC_NUM_PINS    /* after the IOAPIC's pins */

typedef struct KvmMsiRoute {
    uint64_t addr;
    uint32_t data;
    int fd;                     /* irqfd, -1 = free */
} KvmMsiRoute;

struct KvmState {
    int kvm_fd, vm_fd;
    KvmMsiRoute msi_routes[KVM_MSI_ROUTES];
    unsigned nr_msi_routes;
    bool msi_routes_failed;     /* fall back to KVM_SIGNAL_MSI */
    size_t run_size;
    QnicMachine *m;
    QnicAsListener mem_listener, io_listener;
    bool listening;
    KvmSlot *slots;
    unsigned nr_slots;
    GArray *ioeventfds;         /* KvmIoeventfd */
    bool readonly_mem;
    struct kvm_cpuid2 *cpuid;
    unsigned nr_vcpus;
    KvmVcpu *vcpus;
    QnicBootEntry boot;
    QnicVmmConfig *cfg;         /* -kernel, -initrd: loaded again at reset */
    const char *cmdline;        /* the board's, as loaded */
    /* The in-kernel PICs, IOAPIC and PIT as created, for a system reset. */
    struct kvm_irqchip irqchip_init[3];
    struct kvm_pit_state2 pit_init;

    /* run state */
    int stop;                   /* atomic: vCPU threads leave */
    pthread_mutex_t pause_lock;
    pthread_cond_t pause_cond;
    bool paused;                /* -S or QMP stop: vCPUs wait for cont */
    unsigned parked;            /* vCPU threads waiting while paused */
    unsigned exited;            /* vCPU threads that left their loop */
    pthread_cond_t parked_cond;
    int sig_pipe[2];
    QnicFdWatch *sig_watch;
    bool msi_warned;
    /* migration: RAM slots log the pages vCPUs write (kvm-state.c) */
    bool dirty_logging, dirty_manual;
    uint64_t *dirty_scratch;
};

/* Signals are the process's: the handler forwards them to the pipe of the
 * accelerator that installed it last. */
static int kvm_sig_pipe_wr = -1;

static KvmState *kvm_state_new(void)
{
    KvmState *k = g_new0(KvmState, 1);

    k->kvm_fd = k->vm_fd = -1;
    k->sig_pipe[0] = k->sig_pipe[1] = -1;
    pthread_mutex_init(&k->pause_lock, NULL);
    pthread_cond_init(&k->pause_cond, NULL);
    pthread_cond_init(&k->parked_cond, NULL);
    return k;
}

static void kvm_state_free(KvmState *k)
{
    pthread_mutex_destroy(&k->pause_lock);
    pthread_cond_destroy(&k->pause_cond);
    pthread_cond_destroy(&k->parked_cond);
    g_free(k);
}

static int kvm_ioctl_retry(int fd, unsigned long req, void *arg)
{
    int r;
    do {
        r = ioctl(fd, req, arg);
    } while (r < 0 && errno == EINTR);
    return r;
}

/* ---- interrupts ---- */

static void kvm_set_gsi(void *opaque, unsigned gsi, int level)
{
    KvmState *k = opaque;
    struct kvm_irq_level irq = { .irq = gsi, .level = level };

    if (k->vm_fd >= 0 && ioctl(k->vm_fd, KVM_IRQ_LINE, &irq) < 0) {
        qnic_warn("KVM_IRQ_LINE %u: %s", gsi, g_strerror(errno));
    }
}

/* The whole routing table: KVM_SET_GSI_ROUTING replaces the default one,
 * so the irqchip routes (GSI 0-15 to both PICs and the IOAPIC, 16-23 to the
 * IOAPIC, as the kernel sets them up) go in first, then one MSI route per
 * cached message. */
static bool kvm_set_routes(KvmState *k)
{
    unsigned n = KVM_ISA_IRQS + KVM_IOAPIC_NUM_PINS + k->nr_msi_routes;
    g_autofree struct kvm_irq_routing *t =
        g_malloc0(sizeof(*t) + n * sizeof(struct kvm_irq_routing_entry));
    struct kvm_irq_routing_entry *e = t->entries;

    for (unsigned gsi = 0; gsi < KVM_IOAPIC_NUM_PINS; gsi++) {
        if (gsi < KVM_ISA_IRQS) {
            *e++ = (struct kvm_irq_routing_entry){
                .gsi = gsi, .type = KVM_IRQ_ROUTING_IRQCHIP,
                .u.irqchip = { .irqchip = gsi < KVM_PIC_PINS ? KVM_IRQCHIP_PIC_MASTER
                                                             : KVM_IRQCHIP_PIC_SLAVE,
                               .pin = gsi % KVM_PIC_PINS },
            };
        }
        *e++ = (struct kvm_irq_routing_entry){
            .gsi = gsi, .type = KVM_IRQ_ROUTING_IRQCHIP,
            .u.irqchip = { .irqchip = KVM_IRQCHIP_IOAPIC, .pin = gsi },
        };
    }
    for (unsigned i = 0; i < k->nr_msi_routes; i++) {
        KvmMsiRoute *r = &k->msi_routes[i];
        *e++ = (struct kvm_irq_routing_entry){
            .gsi = KVM_MSI_GSI_BASE + i, .type = KVM_IRQ_ROUTING_MSI,
            .u.msi = { .address_lo = (uint32_t)r->addr, .address_hi = (uint32_t)(r->addr >> 32),
                       .data = r->data },
        };
    }
    t->nr = (uint32_t)(e - t->entries);
    return ioctl(k->vm_fd, KVM_SET_GSI_ROUTING, t) == 0;
}

/* The irqfd for a message, creating its route on first use; -1 when the
 * cache is full or routing is unavailable. */
static int kvm_msi_irqfd(KvmState *k, uint64_t addr, uint32_t data)
{
    KvmMsiRoute *r;
    struct kvm_irqfd irqfd;

    for (unsigned i = 0; i < k->nr_msi_routes; i++) {
        if (k->msi_routes[i].addr == addr && k->msi_routes[i].data == data) {
            return k->msi_routes[i].fd;
        }
    }
    if (k->msi_routes_failed || k->nr_msi_routes == KVM_MSI_ROUTES) {
        return -1;
    }
    r = &k->msi_routes[k->nr_msi_routes];
    r->addr = addr;
    r->data = data;
    r->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (r->fd < 0) {
        k->msi_routes_failed = true;
        return -1;
    }
    k->nr_msi_routes++;
    irqfd = (struct kvm_irqfd){ .fd = (uint32_t)r->fd,
                                .gsi = KVM_MSI_GSI_BASE + k->nr_msi_routes - 1 };
    if (!kvm_set_routes(k) || ioctl(k->vm_fd, KVM_IRQFD, &irqfd) < 0) {
        qnic_warn("KVM MSI routing unavailable (%s): using KVM_SIGNAL_MSI", g_strerror(errno));
        close(r->fd);
        k->nr_msi_routes--;
        k->msi_routes_failed = true;
        kvm_set_routes(k);
        return -1;
    }
    return r->fd;
}

static void kvm_msi_routes_free(KvmState *k)
{
    for (unsigned i = 0; i < k->nr_msi_routes; i++) {
        close(k->msi_routes[i].fd);
    }
    k->nr_msi_routes = 0;
}

/* The machine's msi_irqfd hook: the same cached route and irqfd, handed to
 * a vhost backend as its call fd so its interrupts bypass qnic. */
static int kvm_msi_irqfd_hook(void *opaque, uint64_t addr, uint32_t data)
{
    KvmState *k = opaque;

    return k->vm_fd >= 0 ? kvm_msi_irqfd(k, addr, data) : -1;
}

static void kvm_msi(void *opaque, uint64_t addr, uint32_t data)
{
    KvmState *k = opaque;
    int fd;
    struct kvm_msi msi = {
        .address_lo = (uint32_t)addr,
        .address_hi = (uint32_t)(addr >> 32),
        .data = data,
    };

    if (k->vm_fd < 0) {
        return;
    }
    /* A guest reprograms vectors rarely, so messages repeat: after the
     * first, each one is a write to its irqfd (the same path vhost uses). */
    fd = kvm_msi_irqfd(k, addr, data);
    if (fd >= 0) {
        uint64_t one = 1;
        if (write(fd, &one, sizeof(one)) == sizeof(one) || errno == EAGAIN) {
            return;
        }
    }
    /* 0 means the guest's LAPIC setup dropped it; only a failure is ours. */
    if (ioctl(k->vm_fd, KVM_SIGNAL_MSI, &msi) < 0 && !k->msi_warned) {
        k->msi_warned = true;
        qnic_warn("KVM_SIGNAL_MSI: %s", g_strerror(errno));
    }
}

/* ---- memory slots and ioeventfds, from the address space listeners ---- */

static void kvm_region_add(QnicAsListener *l, QnicRegion *r)
{
    KvmState *k = l->opaque;
    long page = sysconf(_SC_PAGESIZE);

    if (!r->ram || r->size == 0) {
        return;         /* MMIO: served from KVM_EXIT_MMIO */
    }
    for (unsigned i = 0; i < k->nr_slots; i++) {
        if (k->slots[i].r == r) {
            return;     /* replayed */
        }
    }
    bool is_ram = r == &k->m->ram_low || r == &k->m->ram_high;
    if ((r->addr | r->size | (uintptr_t)r->ram) & (page - 1)) {
        return;         /* KVM wants pages; dispatch serves the rest */
    }
    if (!is_ram && !k->readonly_mem) {
        return;         /* a ROM must not become guest-writable */
    }
    for (unsigned i = 0; i < k->nr_slots; i++) {
        KvmSlot *s = &k->slots[i];
        if (s->r) {
            continue;
        }
        struct kvm_userspace_memory_region mr = {
            .slot = i,
            .flags = !is_ram ? KVM_MEM_READONLY :
                     k->dirty_logging ? KVM_MEM_LOG_DIRTY_PAGES : 0,
            .guest_phys_addr = r->addr,
            .memory_size = r->size,
            .userspace_addr = (uintptr_t)r->ram,
        };
        if (kvm_ioctl_retry(k->vm_fd, KVM_SET_USER_MEMORY_REGION, &mr) < 0) {
            qnic_report("KVM_SET_USER_MEMORY_REGION %s at 0x%" G_GINT64_MODIFIER "x: %s",
                        r->name, r->addr, g_strerror(errno));
            if (is_ram) {
                qnic_vmm_request_exit(1);
            }
            return;
        }
        *s = (KvmSlot){ .r = r, .gpa = r->addr, .size = r->size, .flags = mr.flags };
        return;
    }
    qnic_report("out of KVM memory slots for %s", r->name);
    if (is_ram) {
        qnic_vmm_request_exit(1);
    }
}

static void kvm_region_del(QnicAsListener *l, QnicRegion *r)
{
    KvmState *k = l->opaque;

    for (unsigned i = 0; i < k->nr_slots; i++) {
        KvmSlot *s = &k->slots[i];
        if (s->r != r) {
            continue;
        }
        struct kvm_userspace_memory_region mr = {
            .slot = i, .flags = s->flags, .guest_phys_addr = s->gpa, .memory_size = 0,
        };
        if (kvm_ioctl_retry(k->vm_fd, KVM_SET_USER_MEMORY_REGION, &mr) < 0) {
            qnic_warn("removing KVM memory slot %u: %s", i, g_strerror(errno));
        }
        s->r = NULL;
    }
    /* ioeventfds die with their region's mapping, whatever the order the
     * core tells us in. */
    for (guint i = k->ioeventfds->len; i-- > 0;) {
        KvmIoeventfd *ke = &g_array_index(k->ioeventfds, KvmIoeventfd, i);
        if (ke->r == r) {
            ke->k.flags |= KVM_IOEVENTFD_FLAG_DEASSIGN;
            kvm_ioctl_retry(k->vm_fd, KVM_IOEVENTFD, &ke->k);
            g_array_remove_index(k->ioeventfds, i);
        }
    }
}

static void kvm_ioeventfd_add(QnicAsListener *l, QnicRegion *r, const QnicIoEventFd *e)
{
    KvmState *k = l->opaque;
    bool pio = r->as && r->as->is_io;
    KvmIoeventfd ke = { .r = r, .e = *e };

    for (guint i = 0; i < k->ioeventfds->len; i++) {
        KvmIoeventfd *o = &g_array_index(k->ioeventfds, KvmIoeventfd, i);
        if (o->r == r && o->e.offset == e->offset && o->e.fd == e->fd &&
            o->e.size == e->size && o->e.match_data == e->match_data &&
            o->e.data == e->data) {
            return;     /* replayed */
        }
    }
    ke.k.addr = r->addr + e->offset;
    ke.k.len = e->size;
    ke.k.fd = e->fd;
    ke.k.datamatch = e->data;
    ke.k.flags = (pio ? KVM_IOEVENTFD_FLAG_PIO : 0) |
                 (e->match_data ? KVM_IOEVENTFD_FLAG_DATAMATCH : 0);
    if (kvm_ioctl_retry(k->vm_fd, KVM_IOEVENTFD, &ke.k) < 0) {
        /* The write still reaches the device's register handler as an
         * exit; only the shortcut is lost. */
        qnic_warn("KVM_IOEVENTFD for %s+0x%" G_GINT64_MODIFIER "x: %s", r->name,
                  e->offset, g_strerror(errno));
        return;
    }
    g_array_append_val(k->ioeventfds, ke);
}

static void kvm_ioeventfd_del(QnicAsListener *l, QnicRegion *r, const QnicIoEventFd *e)
{
    KvmState *k = l->opaque;

    for (guint i = 0; i < k->ioeventfds->len; i++) {
        KvmIoeventfd *ke = &g_array_index(k->ioeventfds, KvmIoeventfd, i);
        if (ke->r == r && ke->e.offset == e->offset && ke->e.fd == e->fd &&
            ke->e.size == e->size && ke->e.match_data == e->match_data &&
            ke->e.data == e->data) {
            ke->k.flags |= KVM_IOEVENTFD_FLAG_DEASSIGN;
            if (kvm_ioctl_retry(k->vm_fd, KVM_IOEVENTFD, &ke->k) < 0) {
                qnic_warn("KVM_IOEVENTFD deassign: %s", g_strerror(errno));
            }
            g_array_remove_index(k->ioeventfds, i);
            return;
        }
    }
}

/* ---- the in-kernel PIT's channel 2, for the board's port 0x61 ---- */

static bool kvm_pit_ch2_get(void *opaque, QnicPitChannel *c)
{
    KvmState *k = opaque;
    struct kvm_pit_state2 st;

    if (ioctl(k->vm_fd, KVM_GET_PIT2, &st) != 0) {
        return false;
    }
    *c = (QnicPitChannel){
        .gate = st.channels[2].gate, .mode = st.channels[2].mode,
        .count = st.channels[2].count, .count_load_time = st.channels[2].count_load_time,
    };
    return true;
}

static void kvm_pit_ch2_set_gate(void *opaque, bool gate)
{
    KvmState *k = opaque;
    struct kvm_pit_state2 st;

    if (ioctl(k->vm_fd, KVM_GET_PIT2, &st) == 0) {
        st.channels[2].gate = gate;
        if (ioctl(k->vm_fd, KVM_SET_PIT2, &st) < 0) {
            qnic_warn("KVM_SET_PIT2: %s", g_strerror(errno));
        }
    }
}

/* ---- the in-kernel interrupt controllers at power-on ---- */

static bool kvm_save_irqchip(KvmState *k, GError **errp)
{
    static const unsigned chips[] = {
        KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE, KVM_IRQCHIP_IOAPIC,
    };
    for (unsigned i = 0; i < QNIC_ARRAY_SIZE(chips); i++) {
        k->irqchip_init[i].chip_id = chips[i];
        if (ioctl(k->vm_fd, KVM_GET_IRQCHIP, &k->irqchip_init[i]) < 0) {
            qnic_error_setg_errno(errp, errno, "KVM_GET_IRQCHIP %u failed", chips[i]);
            return false;
        }
    }
    if (ioctl(k->vm_fd, KVM_GET_PIT2, &k->pit_init) < 0) {
        qnic_error_setg_errno(errp, errno, "KVM_GET_PIT2 failed");
        return false;
    }
    return true;
}

/* PICs, IOAPIC and PIT as created; then the lines the devices still hold
 * (their reset ran first) are raised again, since the restored IOAPIC
 * forgot them. */
static bool kvm_reset_irqchip(KvmState *k, GError **errp)
{
    for (unsigned i = 0; i < QNIC_ARRAY_SIZE(k->irqchip_init); i++) {
        if (ioctl(k->vm_fd, KVM_SET_IRQCHIP, &k->irqchip_init[i]) < 0) {
            qnic_error_setg_errno(errp, errno, "KVM_SET_IRQCHIP %u failed",
                                  k->irqchip_init[i].chip_id);
            return false;
        }
    }
    struct kvm_pit_state2 pit = k->pit_init;
    if (ioctl(k->vm_fd, KVM_SET_PIT2, &pit) < 0) {
        qnic_error_setg_errno(errp, errno, "KVM_SET_PIT2 failed");
        return false;
    }
    for (unsigned gsi = 0; gsi < QNIC_NUM_GSI; gsi++) {
        if (k->m->gsi_level[gsi]) {
            kvm_set_gsi(k, gsi, 1);
        }
    }
    return true;
}

/* ---- accelerator: init ---- */

static bool kvm_check_ram(uint64_t ram_size, GError **errp)
{
    struct sysinfo si;

    if (sysinfo(&si) == 0) {
        uint64_t host = ((uint64_t)si.totalram + si.totalswap) * si.mem_unit;
        if (ram_size > host) {
            qnic_error_setg_invalid(errp, "cannot set up guest memory 'pc.ram': -m of %"
                                    G_GUINT64_FORMAT " MiB exceeds the host's %"
                                    G_GUINT64_FORMAT " MiB of RAM and swap",
                                    ram_size >> 20, host >> 20);
            return false;
        }
    }
    /* The memory map ends below the 46-bit guest physical limit every
     * x86-64 KVM host supports; far beyond any host RAM anyway. */
    return true;
}

static void kvm_signal_handler(int signo)
{
    int saved = errno;
    uint8_t b = signo;

    if (signo != KVM_KICK_SIGNAL && kvm_sig_pipe_wr >= 0) {
        if (write(kvm_sig_pipe_wr, &b, 1) < 0) {
            /* pipe full: a request is already queued */
        }
    }
    errno = saved;
}

/* The capabilities qnic-vmm cannot do without. */
static bool kvm_check_caps(int kvm_fd, GError **errp)
{
    static const struct { int cap; const char *name; } needed[] = {
        { KVM_CAP_IRQCHIP, "in-kernel irqchip" },
        { KVM_CAP_USER_MEMORY, "user memory" },
        { KVM_CAP_IOEVENTFD, "ioeventfd" },
        { KVM_CAP_SIGNAL_MSI, "KVM_SIGNAL_MSI" },
        { KVM_CAP_PIT2, "in-kernel PIT" },
        { KVM_CAP_IMMEDIATE_EXIT, "immediate_exit" },
    };
    for (unsigned i = 0; i < QNIC_ARRAY_SIZE(needed); i++) {
        if (ioctl(kvm_fd, KVM_CHECK_EXTENSION, needed[i].cap) <= 0) {
            qnic_error_setg(errp, "KVM lacks %s, which qnic-vmm needs", needed[i].name);
            return false;
        }
    }
    return true;
}

/* The vCPU kick and the terminating signals, which reach the main loop
 * through k's pipe. */
static bool kvm_install_signals(KvmState *k, GError **errp)
{
    if (pipe2(k->sig_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
        qnic_error_setg_errno(errp, errno, "pipe");
        return false;
    }
    kvm_sig_pipe_wr = k->sig_pipe[1];
    struct sigaction sa = { .sa_handler = kvm_signal_handler };
    sigemptyset(&sa.sa_mask);
    /* No SA_RESTART: the kick must interrupt KVM_RUN. */
    sigaction(KVM_KICK_SIGNAL, &sa, NULL);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGCONT, &sa, NULL);
    /* A closed stdout (serial) or peer socket is an I/O error, not death. */
    signal(SIGPIPE, SIG_IGN);
    return true;
}

static bool kvm_init(QnicVmmConfig *cfg, QnicMachineConfig *mcfg, void **state,
                     GError **errp)
{
    KvmState *k;
    int r;

    if (!kvm_check_ram(cfg->ram_size, errp)) {
        return false;
    }
    k = kvm_state_new();
    k->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (k->kvm_fd < 0) {
        qnic_error_setg_errno(errp, errno, "Could not access KVM kernel module");
        kvm_state_free(k);
        return false;
    }
    r = ioctl(k->kvm_fd, KVM_GET_API_VERSION, 0);
    if (r != KVM_API_VERSION) {
        qnic_error_setg(errp, "KVM API version %d, qnic-vmm needs %d", r, KVM_API_VERSION);
        goto fail;
    }
    if (!kvm_check_caps(k->kvm_fd, errp)) {
        goto fail;
    }
    do {
        k->vm_fd = ioctl(k->kvm_fd, KVM_CREATE_VM, 0);
    } while (k->vm_fd < 0 && errno == EINTR);
    if (k->vm_fd < 0) {
        qnic_error_setg_errno(errp, errno, "KVM_CREATE_VM failed");
        goto fail;
    }
    r = ioctl(k->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (r < (int)sizeof(struct kvm_run)) {
        qnic_error_setg_errno(errp, errno, "KVM_GET_VCPU_MMAP_SIZE failed");
        goto fail;
    }
    k->run_size = r;
    k->readonly_mem = ioctl(k->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_READONLY_MEM) > 0;
    r = ioctl(k->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_MEMSLOTS);
    k->nr_slots = r > 0 ? MIN(r, 512) : 32;
    k->slots = g_new0(KvmSlot, k->nr_slots);
    k->ioeventfds = g_array_new(FALSE, TRUE, sizeof(KvmIoeventfd));

    /* Intel VMX needs a TSS (and an identity map for unrestricted guests
     * without EPT) in guest-physical space; both sit in the reserved range
     * of the memory map. Other implementations ignore or refuse them. */
    if (ioctl(k->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)QNIC_BOOT_KVM_TSS_ADDR) < 0 &&
        errno != ENOTTY && errno != EINVAL) {
        qnic_warn("KVM_SET_TSS_ADDR: %s", g_strerror(errno));
    }
    uint64_t idmap = QNIC_BOOT_KVM_IDMAP_ADDR;
    if (ioctl(k->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap) < 0 &&
        errno != ENOTTY && errno != EINVAL) {
        qnic_warn("KVM_SET_IDENTITY_MAP_ADDR: %s", g_strerror(errno));
    }
    if (ioctl(k->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0) {
        qnic_error_setg_errno(errp, errno, "KVM_CREATE_IRQCHIP failed");
        goto fail;
    }
    struct kvm_pit_config pit = { .flags = 0 };
    if (ioctl(k->vm_fd, KVM_CREATE_PIT2, &pit) < 0) {
        qnic_error_setg_errno(errp, errno, "KVM_CREATE_PIT2 failed");
        goto fail;
    }
    if (!kvm_save_irqchip(k, errp)) {
        goto fail;
    }

    if (!kvm_install_signals(k, errp)) {
        goto fail;
    }

    qnic_clock_set_mode(QNIC_CLOCK_REALTIME);
    mcfg->set_gsi = kvm_set_gsi;
    mcfg->msi = kvm_msi;
    mcfg->msi_irqfd = kvm_msi_irqfd_hook;
    mcfg->opaque = k;
    *state = k;
    return true;

fail:
    if (k->vm_fd >= 0) {
        close(k->vm_fd);
        k->vm_fd = -1;
    }
    close(k->kvm_fd);
    k->kvm_fd = -1;
    g_clear_pointer(&k->slots, g_free);
    if (k->ioeventfds) {
        g_array_free(k->ioeventfds, TRUE);
    }
    kvm_state_free(k);
    return false;
}

/* ---- vCPUs ---- */

static struct kvm_cpuid2 *kvm_supported_cpuid(int kvm_fd, GError **errp)
{
    for (unsigned n = 64; n <= 4096; n *= 2) {
        struct kvm_cpuid2 *c = g_malloc0(sizeof(*c) + n * sizeof(c->entries[0]));
        c->nent = n;
        if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0) {
            return c;
        }
        int err = errno;
        g_free(c);
        if (err != E2BIG) {
            qnic_error_setg_errno(errp, err, "KVM_GET_SUPPORTED_CPUID failed");
            return NULL;
        }
    }
    qnic_error_setg(errp, "KVM_GET_SUPPORTED_CPUID: too many entries");
    return NULL;
}

static bool kvm_vcpu_setup_cpuid(KvmState *k, KvmVcpu *v, GError **errp)
{
    size_t sz = sizeof(*k->cpuid) + k->cpuid->nent * sizeof(k->cpuid->entries[0]);
    g_autofree struct kvm_cpuid2 *c = g_memdup2(k->cpuid, sz);

    for (unsigned i = 0; i < c->nent; i++) {
        struct kvm_cpuid_entry2 *e = &c->entries[i];
        switch (e->function) {
        case CPUID_LEAF_FEATURES:
            /* initial APIC ID and logical processor count */
            e->ebx = (e->ebx & CPUID_1_EBX_LOW_MASK) |
                     (MIN(k->nr_vcpus, CPUID_1_EBX_MAX_COUNT) << CPUID_1_EBX_COUNT_SHIFT) |
                     (v->index << CPUID_1_EBX_APIC_ID_SHIFT);
            if (k->nr_vcpus > 1) {
                e->edx |= CPUID_1_EDX_HTT;      /* the count above is valid */
            }
            break;
        case CPUID_LEAF_EXT_TOPOLOGY:
        case CPUID_LEAF_V2_EXT_TOPOLOGY:
            e->edx = v->index;          /* x2APIC ID */
            break;
        }
    }
    if (ioctl(v->fd, KVM_SET_CPUID2, c) < 0) {
        qnic_error_setg_errno(errp, errno, "KVM_SET_CPUID2 failed");
        return false;
    }
    return true;
}

static bool kvm_vcpu_setup_lapic(KvmVcpu *v, GError **errp)
{
    struct kvm_lapic_state lapic;

    if (ioctl(v->fd, KVM_GET_LAPIC, &lapic) < 0) {
        qnic_error_setg_errno(errp, errno, "KVM_GET_LAPIC failed");
        return false;
    }
    /* Virtual-wire mode: the PIC's output enters through LINT0 as ExtINT,
     * NMIs through LINT1, so PIC-driven guests (and the PIT) work before
     * the guest programs its LAPIC. */
    uint32_t lint0 = qnic_ld32(&lapic.regs[APIC_LVT_LINT0]);
    uint32_t lint1 = qnic_ld32(&lapic.regs[APIC_LVT_LINT1]);
    lint0 = (lint0 & ~APIC_LVT_DM_MASK) | (APIC_DM_EXTINT << APIC_LVT_DM_SHIFT);
    lint1 = (lint1 & ~APIC_LVT_DM_MASK) | (APIC_DM_NMI << APIC_LVT_DM_SHIFT);
    qnic_st32(&lapic.regs[APIC_LVT_LINT0], lint0);
    qnic_st32(&lapic.regs[APIC_LVT_LINT1], lint1);
    if (ioctl(v->fd, KVM_SET_LAPIC, &lapic) < 0) {
        qnic_error_setg_errno(errp, errno, "KVM_SET_LAPIC failed");
        return false;
    }
    struct kvm_fpu fpu = { .fcw = X86_FPU_FCW_DEFAULT, .mxcsr = X86_MXCSR_DEFAULT };
    if (ioctl(v->fd, KVM_SET_FPU, &fpu) < 0) {
        qnic_error_setg_errno(errp, errno, "KVM_SET_FPU failed");
        return false;
    }
    return true;
}

static void flat_segment(struct kvm_segment *s, uint16_t sel, uint8_t type, bool code64)
{
    *s = (struct kvm_segment){
        .base = 0, .limit = X86_SEG_LIMIT_FLAT, .selector = sel, .type = type,
        .present = 1, .dpl = 0, .db = code64 ? 0 : 1, .s = 1, .l = code64, .g = 1,
    };
}

static bool kvm_vcpu_set_boot_state(KvmVcpu *v, const QnicBootEntry *b, GError **errp)
{
    struct kvm_sregs sregs;
    struct kvm_regs regs = { .rflags = X86_EFLAGS_FIXED };   /* bit 1 is always set */
    bool lm = b->mode == QNIC_BOOT_LINUX64;

    if (ioctl(v->fd, KVM_GET_SREGS, &sregs) < 0) {
        qnic_error_setg_errno(errp, errno, "KVM_GET_SREGS failed");
        return false;
    }
    flat_segment(&sregs.cs, QNIC_BOOT_CS, X86_SEG_TYPE_CODE_XRA, lm);
    flat_segment(&sregs.ds, QNIC_BOOT_DS, X86_SEG_TYPE_DATA_RWA, false);
    sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
    sregs.tr = (struct kvm_segment){
        .base = 0, .limit = X86_TSS32_LIMIT, .selector = QNIC_BOOT_TSS,
        .type = X86_SEG_TYPE_TSS32_BUSY, .present = 1,
    };
    sregs.gdt.base = b->gdt_addr;
    sregs.gdt.limit = b->gdt_limit;
    sregs.idt.base = 0;
    sregs.idt.limit = 0;
    sregs.cr0 = X86_CR0_PE | X86_CR0_ET;
    sregs.cr4 = 0;
    sregs.efer = 0;
    if (lm) {
        sregs.cr0 |= X86_CR0_PG;
        sregs.cr3 = b->cr3;
        sregs.cr4 = X86_CR4_PAE;
        sregs.efer = X86_EFER_LME | X86_EFER_LMA;
    }
    if (ioctl(v->fd, KVM_SET_SREGS, &sregs) < 0) {
        qnic_error_setg_errno(errp, errno, "KVM_SET_SREGS failed");
        return false;
    }
    regs.rip = b->entry;
    if (b->mode == QNIC_BOOT_PVH) {
        regs.rbx = b->arg;
    } else {
        regs.rsi = b->arg;
    }
    if (ioctl(v->fd, KVM_SET_REGS, &regs) < 0) {
        qnic_error_setg_errno(errp, errno, "KVM_SET_REGS failed");
        return false;
    }
    return true;
}

/* ---- vCPU power-on state, for a system reset ---- */

/* KVM's list of MSRs to save (NULL when it has none). */
static struct kvm_msr_list *kvm_msr_index_list(KvmState *k)
{
    struct kvm_msr_list probe = { .nmsrs = 0 };

    if (ioctl(k->kvm_fd, KVM_GET_MSR_INDEX_LIST, &probe) < 0 && errno != E2BIG) {
        return NULL;
    }
    struct kvm_msr_list *l = g_malloc0(sizeof(*l) + probe.nmsrs * sizeof(l->indices[0]));
    l->nmsrs = probe.nmsrs;
    if (ioctl(k->kvm_fd, KVM_GET_MSR_INDEX_LIST, l) < 0) {
        g_free(l);
        return NULL;
    }
    return l;
}

/* One MSR through KVM_GET_MSRS or KVM_SET_MSRS; false when KVM refuses
 * it (an MSR of the list this vCPU's CPUID does not have). */
static bool kvm_msr_one(KvmVcpu *v, unsigned long req, struct kvm_msr_entry *e)
{
    struct {
        struct kvm_msrs h;
        struct kvm_msr_entry e;
    } one = { .h.nmsrs = 1, .e = *e };

    if (ioctl(v->fd, req, &one) != 1) {
        return false;
    }
    *e = one.e;
    return true;
}

/* Everything a reset must restore, read right after the vCPU's setup,
 * before the boot state: the paravirtual MSRs (kvmclock, async page
 * faults, steal time) are 0 then, so a reset also stops KVM writing into
 * the old kernel's memory. */
static bool kvm_vcpu_save_init(KvmState *k, KvmVcpu *v, GError **errp)
{
    KvmVcpuInit *in = &v->init;

    if (ioctl(v->fd, KVM_GET_REGS, &in->regs) < 0 || ioctl(v->fd, KVM_GET_SREGS, &in->sregs) < 0 ||
        ioctl(v->fd, KVM_GET_FPU, &in->fpu) < 0 || ioctl(v->fd, KVM_GET_LAPIC, &in->lapic) < 0 ||
        ioctl(v->fd, KVM_GET_MP_STATE, &in->mp_state) < 0 ||
        ioctl(v->fd, KVM_GET_VCPU_EVENTS, &in->events) < 0 ||
        ioctl(v->fd, KVM_GET_DEBUGREGS, &in->debugregs) < 0) {
        qnic_error_setg_errno(errp, errno, "reading vCPU %u's initial state failed", v->index);
        return false;
    }
    in->have_xcrs = ioctl(k->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XCRS) > 0 &&
                    ioctl(v->fd, KVM_GET_XCRS, &in->xcrs) == 0;
    g_autofree struct kvm_msr_list *list = kvm_msr_index_list(k);
    unsigned n = list ? list->nmsrs : 0;
    in->msrs = g_malloc0(sizeof(*in->msrs) + n * sizeof(in->msrs->entries[0]));
    for (unsigned i = 0; i < n; i++) {
        struct kvm_msr_entry e = { .index = list->indices[i] };
        if (kvm_msr_one(v, KVM_GET_MSRS, &e)) {
            in->msrs->entries[in->msrs->nmsrs++] = e;
        }
    }
    return true;
}

/* Back to the saved state, in the order QEMU puts a vCPU's registers
 * (sregs with the APIC base before the LAPIC, MP state before it). */
static bool kvm_vcpu_reset(KvmState *k, KvmVcpu *v, GError **errp)
{
    KvmVcpuInit *in = &v->init;
    struct kvm_regs regs = in->regs;
    struct kvm_sregs sregs = in->sregs;
    struct kvm_fpu fpu = in->fpu;
    struct kvm_xcrs xcrs = in->xcrs;
    struct kvm_mp_state mp = in->mp_state;
    struct kvm_lapic_state lapic = in->lapic;
    struct kvm_vcpu_events ev = in->events;
    struct kvm_debugregs dr = in->debugregs;

    if (ioctl(v->fd, KVM_SET_REGS, &regs) < 0 || ioctl(v->fd, KVM_SET_FPU, &fpu) < 0 ||
        (in->have_xcrs && ioctl(v->fd, KVM_SET_XCRS, &xcrs) < 0) ||
        ioctl(v->fd, KVM_SET_SREGS, &sregs) < 0) {
        qnic_error_setg_errno(errp, errno, "resetting vCPU %u's registers failed", v->index);
        return false;
    }
    for (unsigned i = 0; i < in->msrs->nmsrs; i++) {
        struct kvm_msr_entry e = in->msrs->entries[i];
        kvm_msr_one(v, KVM_SET_MSRS, &e);   /* one refused stays as it is */
    }
    if (ioctl(v->fd, KVM_SET_MP_STATE, &mp) < 0 || ioctl(v->fd, KVM_SET_LAPIC, &lapic) < 0 ||
        ioctl(v->fd, KVM_SET_VCPU_EVENTS, &ev) < 0 || ioctl(v->fd, KVM_SET_DEBUGREGS, &dr) < 0) {
        qnic_error_setg_errno(errp, errno, "resetting vCPU %u's LAPIC and events failed",
                              v->index);
        return false;
    }
    return true;
}

/* The accelerator's part of a system reset (vmm.h): the CPUs are parked,
 * the devices and the board (with the firmware tables) already reset. As
 * on QEMU's pc, where the firmware loads -kernel again on every boot, the
 * boot image is loaded again and vCPU 0 starts at its entry; the others
 * wait for INIT/SIPI. */
static bool kvm_system_reset(void *state, QnicMachine *m, GError **errp)
{
    KvmState *k = state;
    QnicBootRam ram = { .host = m->ram, .below_4g = m->below_4g, .above_4g = m->above_4g };

    if (!kvm_reset_irqchip(k, errp)) {
        return false;
    }
    for (unsigned i = 0; i < k->nr_vcpus; i++) {
        if (!kvm_vcpu_reset(k, &k->vcpus[i], errp)) {
            return false;
        }
    }
    if (!qnic_boot_load(&ram, k->cfg->kernel, k->cfg->initrd, k->cmdline, &k->boot, errp)) {
        qnic_error_prefix(errp, "reloading the kernel at reset: ");
        return false;
    }
    return kvm_vcpu_set_boot_state(&k->vcpus[0], &k->boot, errp);
}

static bool kvm_machine_ready(void *state, QnicVmmConfig *cfg, QnicMachine *m,
                              const char *cmdline, GError **errp)
{
    KvmState *k = state;

    k->m = m;
    k->cfg = cfg;
    k->cmdline = cmdline;
    k->mem_listener = (QnicAsListener){
        .region_add = kvm_region_add, .region_del = kvm_region_del,
        .ioeventfd_add = kvm_ioeventfd_add, .ioeventfd_del = kvm_ioeventfd_del,
        .opaque = k,
    };
    k->io_listener = k->mem_listener;
    m->mem.ioeventfd_in_kernel = true;
    m->io.ioeventfd_in_kernel = true;
    qnic_as_add_listener(&m->mem, &k->mem_listener);
    qnic_as_add_listener(&m->io, &k->io_listener);
    k->listening = true;
    int exit_status;
    if (qnic_vmm_exit_requested(&exit_status)) {
        qnic_error_setg(errp, "could not register guest RAM with KVM");
        return false;
    }

    if (!cfg->kernel) {
        qnic_error_setg_invalid(errp, "no -kernel given: qnic-vmm has no firmware, boot a "
                                "PVH ELF or a bzImage with -kernel");
        return false;
    }
    QnicBootRam ram = { .host = m->ram, .below_4g = m->below_4g, .above_4g = m->above_4g };
    if (!qnic_boot_load(&ram, cfg->kernel, cfg->initrd, cmdline, &k->boot, errp)) {
        return false;
    }

    int max_vcpus = ioctl(k->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
    unsigned smp = cfg->smp ? cfg->smp : 1;
    if (max_vcpus > 0 && smp > (unsigned)max_vcpus) {
        qnic_error_setg_invalid(errp, "-smp %u exceeds KVM's maximum of %d vCPUs",
                                smp, max_vcpus);
        return false;
    }
    if (smp > 255) {
        qnic_error_setg_invalid(errp, "-smp %u: qnic-vmm supports at most 255 vCPUs", smp);
        return false;
    }
    k->cpuid = kvm_supported_cpuid(k->kvm_fd, errp);
    if (!k->cpuid) {
        return false;
    }
    k->nr_vcpus = smp;
    k->vcpus = g_new0(KvmVcpu, smp);
    for (unsigned i = 0; i < smp; i++) {
        k->vcpus[i].fd = -1;
    }
    for (unsigned i = 0; i < smp; i++) {
        KvmVcpu *v = &k->vcpus[i];
        v->k = k;
        v->index = i;
        v->fd = ioctl(k->vm_fd, KVM_CREATE_VCPU, (unsigned long)i);
        if (v->fd < 0) {
            qnic_error_setg_errno(errp, errno, "KVM_CREATE_VCPU %u failed", i);
            return false;
        }
        v->run = mmap(NULL, k->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
        if (v->run == MAP_FAILED) {
            v->run = NULL;
            qnic_error_setg_errno(errp, errno, "mmap of vCPU %u state failed", i);
            return false;
        }
        if (!kvm_vcpu_setup_cpuid(k, v, errp) || !kvm_vcpu_setup_lapic(v, errp) ||
            !kvm_vcpu_save_init(k, v, errp)) {
            return false;
        }
    }
    /* The BSP starts at the kernel's entry; APs wait for INIT/SIPI in the
     * kernel's LAPIC emulation, as on hardware. */
    return kvm_vcpu_set_boot_state(&k->vcpus[0], &k->boot, errp);
}

/* ---- running ---- */

static bool kvm_stopping(KvmState *k)
{
    return __atomic_load_n(&k->stop, __ATOMIC_SEQ_CST) || qnic_vmm_exit_requested(NULL);
}

static void kvm_handle_io(KvmState *k, struct kvm_run *run)
{
    uint8_t *data = (uint8_t *)run + run->io.data_offset;
    unsigned size = run->io.size;

    if (size != 1 && size != 2 && size != 4) {
        return;
    }
    qnic_bql_lock();
    for (uint32_t i = 0; i < run->io.count; i++, data += size) {
        uint64_t val = 0;
        if (run->io.direction == KVM_EXIT_IO_OUT) {
            memcpy(&val, data, size);
            qnic_as_store(&k->m->io, run->io.port, size, GUINT64_FROM_LE(val));
        } else {
            if (!qnic_as_load(&k->m->io, run->io.port, size, &val)) {
                val = ~0ull;        /* nothing there: the bus floats high */
            }
            val = GUINT64_TO_LE(val);
            memcpy(data, &val, size);
        }
    }
    qnic_bql_unlock();
}

static void kvm_handle_mmio(KvmState *k, struct kvm_run *run)
{
    unsigned len = run->mmio.len;
    uint64_t addr = run->mmio.phys_addr;

    if (len == 0 || len > sizeof(run->mmio.data)) {
        return;
    }
    qnic_bql_lock();
    if (len == 1 || len == 2 || len == 4 || len == 8) {
        uint64_t val = 0;
        if (run->mmio.is_write) {
            memcpy(&val, run->mmio.data, len);
            qnic_as_store(&k->m->mem, addr, len, GUINT64_FROM_LE(val));
        } else {
            if (!qnic_as_load(&k->m->mem, addr, len, &val)) {
                val = 0;
            }
            val = GUINT64_TO_LE(val);
            memcpy(run->mmio.data, &val, len);
        }
    } else {
        qnic_as_rw(&k->m->mem, addr, run->mmio.data, len, run->mmio.is_write);
    }
    qnic_bql_unlock();
}

/* One vCPU exit; false when the vCPU must stop for good. */
static bool kvm_handle_exit(KvmVcpu *v)
{
    struct kvm_run *run = v->run;

    switch (run->exit_reason) {
    case KVM_EXIT_IO:
        kvm_handle_io(v->k, run);
        return true;
    case KVM_EXIT_MMIO:
        kvm_handle_mmio(v->k, run);
        return true;
    case KVM_EXIT_INTR:
    case KVM_EXIT_IRQ_WINDOW_OPEN:
        return true;
    case KVM_EXIT_HLT:
        /* Only without an in-kernel LAPIC; ours has one. */
        return true;
    case KVM_EXIT_SHUTDOWN:
        /* A triple fault resets the machine, as on QEMU's pc (the vCPU
         * then waits for it: kvm_vcpu_thread). */
        qnic_vmm_request_reset();
        return true;
    case KVM_EXIT_SYSTEM_EVENT:
        if (run->system_event.type == KVM_SYSTEM_EVENT_RESET) {
            qnic_vmm_request_reset();
            return true;
        }
        if (run->system_event.type == KVM_SYSTEM_EVENT_SHUTDOWN) {
            qnic_vmm_request_exit(0);
        } else {
            qnic_report("vCPU %u: guest requested system event %u; exiting", v->index,
                        run->system_event.type);
            qnic_vmm_request_exit(1);
        }
        return false;
    case KVM_EXIT_FAIL_ENTRY:
        qnic_report("vCPU %u: KVM entry failed, hardware reason 0x%llx", v->index,
                    (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
        qnic_vmm_request_exit(1);
        return false;
    case KVM_EXIT_INTERNAL_ERROR: {
        struct kvm_regs regs;
        unsigned long long rip = 0;
        if (ioctl(v->fd, KVM_GET_REGS, &regs) == 0) {
            rip = regs.rip;
        }
        qnic_report("vCPU %u: KVM internal error, suberror %u at rip 0x%llx (guest "
                    "executed something KVM cannot emulate, e.g. code outside RAM)",
                    v->index, run->internal.suberror, rip);
        qnic_vmm_request_exit(1);
        return false;
    }
    default:
        qnic_report("vCPU %u: unexpected KVM exit reason %u", v->index, run->exit_reason);
        qnic_vmm_request_exit(1);
        return false;
    }
}

/* Wait while the machine is paused or a guest reset is pending (the main
 * loop carries it out and then resumes every vCPU); kvm_set_running(false)
 * counts the parked threads to know when no vCPU runs guest code any
 * more. */
static bool kvm_must_park(KvmState *k)
{
    return __atomic_load_n(&k->paused, __ATOMIC_SEQ_CST) || qnic_vmm_reset_pending();
}

/* A port or MMIO exit only completes (RIP past the instruction) on the
 * next KVM_RUN: one with immediate_exit finishes it without running the
 * guest, so that what a stopped machine saves (kvm-state.c) is whole. */
static void kvm_vcpu_park(KvmVcpu *v)
{
    KvmState *k = v->k;

    __atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
    if (ioctl(v->fd, KVM_RUN, 0) == 0 || (errno != EINTR && errno != EAGAIN)) {
        qnic_warn("vCPU %u: completing its last exit before the pause: %s", v->index,
                  g_strerror(errno));
    }
    pthread_mutex_lock(&k->pause_lock);
    k->parked++;
    pthread_cond_broadcast(&k->parked_cond);
    while (kvm_must_park(k) && !kvm_stopping(k)) {
        pthread_cond_wait(&k->pause_cond, &k->pause_lock);
    }
    k->parked--;
    pthread_mutex_unlock(&k->pause_lock);
}

static void *kvm_vcpu_thread(void *opaque)
{
    KvmVcpu *v = opaque;
    KvmState *k = v->k;
    sigset_t set;

    /* Only the main thread takes the terminating signals' wakeups; this
     * thread must see the kick. */
    sigemptyset(&set);
    sigaddset(&set, KVM_KICK_SIGNAL);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);

    for (;;) {
        /* Cleared before the checks below: a stop or pause that set it
         * after this store is seen by them, one that set it before makes
         * KVM_RUN return at once. */
        __atomic_store_n(&v->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
        if (kvm_stopping(k)) {
            break;
        }
        if (kvm_must_park(k)) {
            kvm_vcpu_park(v);
            continue;
        }
        if (ioctl(v->fd, KVM_RUN, 0) < 0) {
            if (errno == EINTR || errno == EAGAIN) {
                continue;
            }
            qnic_report("vCPU %u: KVM_RUN failed: %s", v->index, g_strerror(errno));
            qnic_vmm_request_exit(1);
            break;
        }
        if (!kvm_handle_exit(v)) {
            break;
        }
    }
    pthread_mutex_lock(&k->pause_lock);
    k->exited++;
    pthread_cond_broadcast(&k->parked_cond);
    pthread_mutex_unlock(&k->pause_lock);
    return NULL;
}

static void kvm_resume(KvmState *k)
{
    pthread_mutex_lock(&k->pause_lock);
    __atomic_store_n(&k->paused, false, __ATOMIC_SEQ_CST);
    pthread_cond_broadcast(&k->pause_cond);
    pthread_mutex_unlock(&k->pause_lock);
}

/* QMP stop returns once every vCPU thread is parked, as QEMU's does. A vCPU
 * may be waiting for the machine lock to finish an exit, so the wait runs
 * without it. */
static void kvm_pause(KvmState *k)
{
    unsigned running = 0;
    bool had_bql = qnic_bql_locked();

    pthread_mutex_lock(&k->pause_lock);
    __atomic_store_n(&k->paused, true, __ATOMIC_SEQ_CST);
    pthread_mutex_unlock(&k->pause_lock);
    for (unsigned i = 0; i < k->nr_vcpus; i++) {
        KvmVcpu *v = &k->vcpus[i];
        if (v->thread_started) {
            running++;
            __atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
            pthread_kill(v->thread, KVM_KICK_SIGNAL);
        }
    }
    if (had_bql) {
        qnic_bql_unlock();
    }
    pthread_mutex_lock(&k->pause_lock);
    while (k->parked + k->exited < running && !kvm_stopping(k)) {
        pthread_cond_wait(&k->parked_cond, &k->pause_lock);
    }
    pthread_mutex_unlock(&k->pause_lock);
    if (had_bql) {
        qnic_bql_lock();
    }
}

static void kvm_set_running(void *state, bool running)
{
    if (running) {
        kvm_resume(state);
    } else {
        kvm_pause(state);
    }
}

static void kvm_signal_read(void *opaque, int fd, GIOCondition cond)
{
    KvmState *k = opaque;
    uint8_t sigs[16];
    ssize_t n = read(fd, sigs, sizeof(sigs));

    for (ssize_t i = 0; i < n; i++) {
        if (sigs[i] == SIGCONT) {
            /* qnic's own way out of -S (QEMU has only QMP cont) */
            kvm_resume(k);
            qnic_vmm_set_runstate(QNIC_RUNSTATE_RUNNING);
        } else {
            /* QEMU ends cleanly with status 0 on these. */
            qnic_report("terminating on signal %u", sigs[i]);
            qnic_vmm_request_exit(0);
        }
    }
}

static void kvm_stop_vcpus(KvmState *k)
{
    __atomic_store_n(&k->stop, 1, __ATOMIC_SEQ_CST);
    kvm_resume(k);
    for (unsigned i = 0; i < k->nr_vcpus; i++) {
        KvmVcpu *v = &k->vcpus[i];
        if (!v->thread_started) {
            continue;
        }
        /* immediate_exit makes a KVM_RUN entered after the signal return at
         * once, so the kick cannot be lost in the window before it. */
        __atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
        pthread_kill(v->thread, KVM_KICK_SIGNAL);
    }
    for (unsigned i = 0; i < k->nr_vcpus; i++) {
        KvmVcpu *v = &k->vcpus[i];
        if (v->thread_started) {
            pthread_join(v->thread, NULL);
            v->thread_started = false;
        }
    }
}

static int kvm_run(void *state, QnicVmmConfig *cfg, QnicMachine *m)
{
    KvmState *k = state;
    int status = 0;
    bool had_bql = qnic_bql_locked();
    sigset_t set, old;

    k->sig_watch = qnic_fd_watch_add(k->sig_pipe[0], G_IO_IN, kvm_signal_read, k);
    k->paused = cfg->start_paused;

    /* vCPU threads start with the kick blocked and unblock it themselves,
     * so no kick lands before their handler context exists. */
    sigemptyset(&set);
    sigaddset(&set, KVM_KICK_SIGNAL);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    for (unsigned i = 0; i < k->nr_vcpus; i++) {
        KvmVcpu *v = &k->vcpus[i];
        int err = pthread_create(&v->thread, NULL, kvm_vcpu_thread, v);
        if (err) {
            qnic_report("cannot start vCPU %u: %s", i, g_strerror(err));
            qnic_vmm_request_exit(1);
            break;
        }
        v->thread_started = true;
        g_autofree char *name = g_strdup_printf("CPU %u/KVM", i);
        pthread_setname_np(v->thread, name);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);

    if (!had_bql) {
        qnic_bql_lock();
    }
    while (!qnic_vmm_exit_requested(&status)) {
        qnic_main_loop_iterate(true);
        qnic_vmm_handle_reset_request(m);
    }
    /* vCPUs take the lock for every exit: let them finish theirs. */
    qnic_bql_unlock();
    kvm_stop_vcpus(k);
    if (had_bql) {
        qnic_bql_lock();
    }
    return status;
}

static void kvm_cleanup(void *state, QnicMachine *m)
{
    KvmState *k = state;

    if (!k) {
        return;
    }
    kvm_stop_vcpus(k);
    qnic_fd_watch_remove(k->sig_watch);
    k->sig_watch = NULL;
    if (k->listening && k->m) {
        qnic_as_remove_listener(&k->m->mem, &k->mem_listener);
        qnic_as_remove_listener(&k->m->io, &k->io_listener);
        /* No listener any more: dispatch must signal ioeventfds itself if
         * devices keep running until they are destroyed. */
        k->m->mem.ioeventfd_in_kernel = false;
        k->m->io.ioeventfd_in_kernel = false;
        k->listening = false;
    }
    for (unsigned i = 0; i < k->nr_vcpus; i++) {
        KvmVcpu *v = &k->vcpus[i];
        if (v->run) {
            munmap(v->run, k->run_size);
        }
        if (v->fd >= 0) {
            close(v->fd);
        }
        g_free(v->init.msrs);
    }
    g_clear_pointer(&k->vcpus, g_free);
    k->nr_vcpus = 0;
    g_clear_pointer(&k->cpuid, g_free);
    g_clear_pointer(&k->slots, g_free);
    g_clear_pointer(&k->dirty_scratch, g_free);
    k->nr_slots = 0;
    if (k->ioeventfds) {
        g_array_free(k->ioeventfds, TRUE);
        k->ioeventfds = NULL;
    }
    /* Interrupt hooks may still fire while devices are destroyed. */
    kvm_msi_routes_free(k);
    if (k->vm_fd >= 0) {
        close(k->vm_fd);
        k->vm_fd = -1;
    }
    if (k->kvm_fd >= 0) {
        close(k->kvm_fd);
        k->kvm_fd = -1;
    }
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    signal(SIGCONT, SIG_DFL);
    if (kvm_sig_pipe_wr == k->sig_pipe[1]) {
        kvm_sig_pipe_wr = -1;
    }
    for (int i = 0; i < 2; i++) {
        if (k->sig_pipe[i] >= 0) {
            close(k->sig_pipe[i]);
            k->sig_pipe[i] = -1;
        }
    }
    k->m = NULL;
    kvm_state_free(k);
}

/* ---- migration: state and dirty log (kvm-state.c) ---- */

static QnicKvmFds kvm_fds(KvmState *k, int *fds)
{
    for (unsigned i = 0; i < k->nr_vcpus; i++) {
        fds[i] = k->vcpus[i].fd;
    }
    return (QnicKvmFds){ .kvm_fd = k->kvm_fd, .vm_fd = k->vm_fd,
                         .nr_vcpus = k->nr_vcpus, .vcpu_fds = fds };
}

static bool kvm_mig_save(void *state, QnicMachine *m, GByteArray *out, GError **errp)
{
    KvmState *k = state;
    g_autofree int *fds = g_new(int, k->nr_vcpus);
    QnicKvmFds vm = kvm_fds(k, fds);

    return qnic_kvm_state_save(&vm, out, errp);
}

static bool kvm_mig_load(void *state, QnicMachine *m, QnicStateReader *r, GError **errp)
{
    KvmState *k = state;
    g_autofree int *fds = g_new(int, k->nr_vcpus);
    QnicKvmFds vm = kvm_fds(k, fds);

    return qnic_kvm_state_load(&vm, r, errp);
}

/* Slot i as the dirty log sees it; false: not guest RAM. */
static bool kvm_log_slot(KvmState *k, unsigned i, QnicKvmLogSlot *ls)
{
    KvmSlot *s = &k->slots[i];

    if (!s->r || (s->r != &k->m->ram_low && s->r != &k->m->ram_high)) {
        return false;
    }
    *ls = (QnicKvmLogSlot){ .slot = i, .gpa = s->gpa, .size = s->size, .host = s->r->ram,
                            .ram_page = (uint64_t)((uint8_t *)s->r->ram - k->m->ram) /
                                        QNIC_KVM_DIRTY_PAGE };
    return true;
}

static bool kvm_dirty_log_switch(KvmState *k, bool on, GError **errp)
{
    QnicKvmLogSlot ls;

    k->dirty_logging = on;
    for (unsigned i = 0; i < k->nr_slots; i++) {
        if (kvm_log_slot(k, i, &ls)) {
            if (!qnic_kvm_dirty_log_set(k->vm_fd, &ls, on, errp)) {
                return false;
            }
            k->slots[i].flags = on ? KVM_MEM_LOG_DIRTY_PAGES : 0;
        }
    }
    return true;
}

static bool kvm_dirty_log_start(void *state, QnicMachine *m, GError **errp)
{
    KvmState *k = state;

    if (!k->dirty_scratch) {
        k->dirty_manual = qnic_kvm_dirty_log_manual(k->kvm_fd, k->vm_fd);
        k->dirty_scratch = g_new0(uint64_t, m->ram_size / QNIC_KVM_DIRTY_PAGE / 64 + 1);
    }
    if (!kvm_dirty_log_switch(k, true, errp)) {
        kvm_dirty_log_switch(k, false, NULL);
        return false;
    }
    return true;
}

static void kvm_dirty_log_sync(void *state, QnicMachine *m, unsigned long *bitmap)
{
    KvmState *k = state;
    QnicKvmLogSlot ls;

    for (unsigned i = 0; i < k->nr_slots && k->dirty_logging; i++) {
        g_autoptr(GError) err = NULL;
        if (kvm_log_slot(k, i, &ls) &&
            !qnic_kvm_dirty_log_sync(k->vm_fd, k->dirty_manual, &ls, (uint64_t *)bitmap,
                                     k->dirty_scratch, &err)) {
            qnic_warn("%s: counting all of %s as written", err->message, k->slots[i].r->name);
            qnic_kvm_dirty_log_all(&ls, (uint64_t *)bitmap);
        }
    }
}

static void kvm_dirty_log_stop(void *state, QnicMachine *m)
{
    g_autoptr(GError) err = NULL;

    if (!kvm_dirty_log_switch(state, false, &err)) {
        qnic_warn("%s", err->message);
    }
}

static const QnicMigrationAccelOps kvm_migration = {
    .save = kvm_mig_save,
    .load = kvm_mig_load,
    .dirty_log_start = kvm_dirty_log_start,
    .dirty_log_sync = kvm_dirty_log_sync,
    .dirty_log_stop = kvm_dirty_log_stop,
};

const QnicAccel qnic_accel_kvm = {
    .name = "kvm",
    .boots_kernel = true,
    .init = kvm_init,
    .machine_ready = kvm_machine_ready,
    .run = kvm_run,
    .cleanup = kvm_cleanup,
    .set_running = kvm_set_running,
    .pit_ch2_get = kvm_pit_ch2_get,
    .pit_ch2_set_gate = kvm_pit_ch2_set_gate,
    .system_reset = kvm_system_reset,
    .migration = &kvm_migration,
};
