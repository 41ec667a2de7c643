/*
 * CPU setup of the test guest: the IDT (every vector goes through one C
 * dispatcher; exceptions end the test with a readable report instead of a
 * triple fault), the local APIC in xAPIC mode (EOI, a one-shot timer that
 * bounds every idle wait), the IOAPIC for INTx and virtio-mmio interrupts,
 * a TSC calibrated against the PIT so timeouts and rates are in real
 * microseconds, and the switch to user mode (CPL 3) that the tests run in.
 *
 * Why user mode: on a PVM-based KVM host (this project's CI machines) guest
 * supervisor code that is not PVM-aware runs in the hypervisor's instruction
 * emulator at roughly half a microsecond per instruction, while CPL 3 code
 * runs natively. test=cpu-probe measured a 4 KiB byte-loop memset at 23 ms
 * at CPL 0 against 1.1 us at CPL 3, and that emulation was the ~1 ms per
 * frame the guest used to spend. So once the IDT, PIT, LAPIC and TSS are set
 * up, the guest drops to CPL 3: page tables are user-accessible (RAM, BARs,
 * LAPIC, IOAPIC), an all-zero I/O permission bitmap grants every port (PVM
 * does not honour IOPL 3 for in/out, nor for cli/sti, which the guest then
 * never uses at CPL 3), and RFLAGS.IF stays 0 so interrupts are only taken
 * inside `hlt`. CPL 0 is entered for interrupts and through kcall(): a
 * `ud2` with a magic value in RAX that the #UD handler turns into a call
 * (PVM answers `int n` from CPL 3 with #UD and keeps a SYSCALL at CPL 3;
 * exceptions are delivered faithfully). A kcall costs about 65 us there, so
 * only `hlt` uses it. `cpl=0` on the command line keeps the old behaviour
 * for comparison. On an ordinary VMX/SVM host all of this is simply valid
 * x86 and costs nothing noticeable.
 */
#include "guest.h"

#define LAPIC_BASE 0xfee00000ull
#define LAPIC_ID 0x020
#define LAPIC_EOI 0x0b0
#define LAPIC_SVR 0x0f0
#define LAPIC_LVT_TIMER 0x320
#define LAPIC_TIMER_INIT 0x380
#define LAPIC_TIMER_CUR 0x390
#define LAPIC_TIMER_DIV 0x3e0
#define IOAPIC_BASE 0xfec00000ull

#define VEC_TIMER 0x20
#define VEC_FIRST_DYN 0x30
#define VEC_SPURIOUS 0xff

/* 64-bit TSS: only RSP0 matters (the stack interrupts from CPL 3 use). */
struct tss64 {
    uint32_t reserved0;
    uint64_t rsp[3];
    uint64_t reserved1;
    uint64_t ist[7];
    uint64_t reserved2;
    uint16_t reserved3, iomap_base;
    /* All 65536 ports allowed (zero bits) plus the terminating 0xff byte:
     * under PVM, IOPL 3 alone does not grant port I/O at CPL 3. */
    uint8_t iomap[8192 + 1];
} __attribute__((packed));
_Static_assert(offsetof(struct tss64, iomap) == 104, "TSS layout");

static struct tss64 tss __attribute__((aligned(16)));
static uint8_t irq_stack[16384] __attribute__((aligned(16)));
extern uint64_t gdt_tss[2];
void enter_user_mode(void);

#define KCALL_MAGIC 0x6b63616c6c21ull   /* "kcall!" */

struct idt_gate {
    uint16_t off_lo, sel;
    uint8_t ist, type;
    uint16_t off_mid;
    uint32_t off_hi, zero;
} __attribute__((packed));

static struct idt_gate idt[256] __attribute__((aligned(16)));
extern char isr_stubs[];
static struct { irq_handler_fn fn; void *opaque; } handlers[256];
static int next_vector = VEC_FIRST_DYN;
static uint64_t tsc_per_us = 2000;
static uint64_t lapic_per_us;
static bool lapic_timer_ok;
volatile uint64_t irq_count_total;

static inline uint32_t lapic_read(uint32_t reg) { return mmio_read32(LAPIC_BASE + reg); }
static inline void lapic_write(uint32_t reg, uint32_t v) { mmio_write32(LAPIC_BASE + reg, v); }

uint32_t lapic_id(void)
{
    return lapic_read(LAPIC_ID) >> 24;
}

static const char *const exc_names[32] = {
    "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "CSO", "#TS", "#NP", "#SS", "#GP", "#PF", "r15",
    "#MF", "#AC", "#MC", "#XM", "#VE", "#CP",
};

void isr_dispatch(struct isr_frame *f);
void isr_dispatch(struct isr_frame *f)
{
    unsigned v = (unsigned)f->vector;
    if (v == 6 && f->rax == KCALL_MAGIC && (f->cs & 3) && *(const uint16_t *)f->rip == 0x0b0f) {
        uint64_t (*fn)(uint64_t) = (uint64_t (*)(uint64_t))f->rdi;
        f->rax = fn(f->rsi);
        f->rip += 2;
        return;
    }
    if (v < 32) {
        uint64_t cr2;
        __asm__ __volatile__("mov %%cr2, %0" : "=r"(cr2));
        fail("exception %u %s at rip=0x%lx error=0x%lx cr2=0x%lx", v, exc_names[v] ? exc_names[v] : "?",
             f->rip, f->error, cr2);
    }
    if (v == VEC_SPURIOUS) {
        return;
    }

    irq_count_total++;
    if (handlers[v].fn) {
        handlers[v].fn(handlers[v].opaque);
    }
    lapic_write(LAPIC_EOI, 0);
}

int irq_alloc_vector(irq_handler_fn fn, void *opaque)
{
    if (next_vector >= VEC_SPURIOUS) {
        return -1;
    }
    int v = next_vector++;
    handlers[v].fn = fn;
    handlers[v].opaque = opaque;
    return v;
}

static void idt_init(void)
{
    for (int v = 0; v < 256; v++) {
        uint64_t a = (uint64_t)(isr_stubs + 16 * v);
        idt[v] = (struct idt_gate){
            .off_lo = a & 0xffff, .sel = 0x08, .ist = 0, .type = 0x8e,
            .off_mid = (a >> 16) & 0xffff, .off_hi = a >> 32,
        };
    }

    struct { uint16_t limit; uint64_t base; } __attribute__((packed)) d = { sizeof(idt) - 1, (uint64_t)idt };
    __asm__ __volatile__("lidt %0" :: "m"(d));
}

static uint32_t ioapic_read(uint32_t reg)
{
    mmio_write32(IOAPIC_BASE, reg);
    return mmio_read32(IOAPIC_BASE + 0x10);
}

static void ioapic_write(uint32_t reg, uint32_t v)
{
    mmio_write32(IOAPIC_BASE, reg);
    mmio_write32(IOAPIC_BASE + 0x10, v);
}

bool ioapic_route(unsigned gsi, int vector)
{
    uint32_t ver = ioapic_read(1);
    unsigned pins = ((ver >> 16) & 0xff) + 1;
    if (ver == 0xffffffff || gsi >= pins || vector < 0) {
        report("warning=\"no IOAPIC pin %u (pins=%u)\"", gsi, pins);
        return false;
    }
    ioapic_write(0x11 + 2 * gsi, lapic_id() << 24);
    /* Level-triggered, active high: PCI INTx through PIIX3/qnic routing and
     * virtio-mmio both hold the line until the driver acknowledges. */
    ioapic_write(0x10 + 2 * gsi, (uint32_t)vector | (1u << 15));
    return true;
}

/* System control port B (as QEMU's pcspk and qnic-vmm's vmm/pc.c serve
 * it): bit 0 gates PIT channel 2, bit 1 drives the speaker, bit 5 is the
 * channel's output. */
#define PORT61 0x61
#define PORT61_GATE2 0x01
#define PORT61_SPEAKER 0x02
#define PORT61_OUT2 0x20

/* One 10 ms PIT channel 2 countdown (mode 0, gated by port 0x61; bit 5
 * rises at terminal count); returns TSC ticks, or 0 if it never ended. */
static uint64_t pit_measure(void)
{
    outb(PORT61, (inb(PORT61) & ~PORT61_SPEAKER) | PORT61_GATE2);
    outb(0x43, 0xb0);
    outb(0x42, 11932 & 0xff);
    outb(0x42, 11932 >> 8);
    uint64_t t0 = rdtsc();
    for (uint64_t i = 0; i < 200000000ull; i++) {
        if (inb(PORT61) & PORT61_OUT2) {
            return rdtsc() - t0;
        }
    }
    return 0;
}

static void pit_calibrate(void)
{
    /* A vCPU preempted around the countdown only makes the TSC delta
     * longer, so the smallest of a few runs is the best estimate. */
    uint64_t best = 0;
    for (int i = 0; i < 3; i++) {
        uint64_t t = pit_measure();
        if (t && (!best || t < best)) {
            best = t;
        }
    }
    const char *src = "pit";
    uint64_t per_us = best / 10000;
    if (per_us < 100 || per_us > 10000) {
        uint32_t a, b, c, d;
        __asm__ __volatile__("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0x16), "c"(0));
        per_us = (a & 0xffff) ? (a & 0xffff) : 2000;
        src = (a & 0xffff) ? "cpuid" : "guess";
    }
    tsc_per_us = per_us;
    report("tsc khz=%lu source=%s", tsc_per_us * 1000, src);
}

uint64_t tsc_khz(void) { return tsc_per_us * 1000; }
uint64_t now_us(void) { return rdtsc() / tsc_per_us; }

void udelay(uint64_t us)
{
    uint64_t end = rdtsc() + us * tsc_per_us;
    while (rdtsc() < end) {
        cpu_relax();
    }
}

static void lapic_init(void)
{
    /* Mask the 8259s: every interrupt we take comes via the IOAPIC or MSI. */
    outb(0x21, 0xff);
    outb(0xa1, 0xff);
    lapic_write(LAPIC_SVR, 0x100 | VEC_SPURIOUS);
    lapic_write(LAPIC_TIMER_DIV, 0x3);      /* divide by 16 */
    lapic_write(LAPIC_LVT_TIMER, 1u << 16); /* masked while calibrating */
    lapic_write(LAPIC_TIMER_INIT, 0xffffffff);
    udelay(10000);
    uint32_t elapsed = 0xffffffff - lapic_read(LAPIC_TIMER_CUR);
    lapic_write(LAPIC_TIMER_INIT, 0);
    lapic_per_us = elapsed / 10000;
    lapic_timer_ok = lapic_per_us > 0;
    lapic_write(LAPIC_LVT_TIMER, VEC_TIMER); /* one-shot */
}

void cpu_idle(uint64_t us)
{
    if (!lapic_timer_ok) {
        udelay(us < 50 ? us : 50);
        return;
    }
    uint64_t count = us * lapic_per_us;
    if (count > 0xffffffffull) {
        count = 0xffffffffull;
    }
    lapic_write(LAPIC_TIMER_INIT, count ? (uint32_t)count : 1);
    kcall(k_wait_irq, 0);
    lapic_write(LAPIC_TIMER_INIT, 0);
}

uint64_t kcall(uint64_t (*fn)(uint64_t), uint64_t arg)
{
    uint16_t cs;
    __asm__ __volatile__("mov %%cs, %0" : "=r"(cs));
    if (!(cs & 3)) {
        return fn(arg);     /* already at CPL 0 (setup, interrupt handlers) */
    }
    uint64_t ret = KCALL_MAGIC;
    __asm__ __volatile__("ud2" : "+a"(ret) : "D"(fn), "S"(arg) : "memory");
    return ret;
}

uint64_t k_wait_irq(uint64_t unused)
{
    __asm__ __volatile__("sti; hlt; cli" ::: "memory");
    return 0;
}

static void user_mode_init(void)
{
    uint64_t base = (uint64_t)&tss, limit = sizeof(tss) - 1;
    tss.rsp[0] = (uint64_t)(irq_stack + sizeof(irq_stack));
    tss.iomap_base = offsetof(struct tss64, iomap);
    tss.iomap[8192] = 0xff;
    gdt_tss[0] = (limit & 0xffff) | ((base & 0xffffff) << 16) | (0x89ull << 40) | (((limit >> 16) & 0xf) << 48) |
                 (((base >> 24) & 0xff) << 56);
    gdt_tss[1] = base >> 32;
    __asm__ __volatile__("ltr %w0" :: "r"(0x30));
    enter_user_mode();
}

void cpu_init(void)
{
    idt_init();
    pit_calibrate();
    lapic_init();
    bool cpl0 = cmdline_uint("cpl", 3) == 0;
    if (!cpl0) {
        user_mode_init();
    }
    report("cpu apic_id=%u lapic_timer=%s cpl=%u", lapic_id(), lapic_timer_ok ? "ok" : "absent", cpl0 ? 0 : 3);
}
