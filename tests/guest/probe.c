/*
 * test=cpu-probe: measures what single guest operations cost on the host it
 * runs on (TSC cycles per operation: RAM reads and writes, fences, pause,
 * rdtsc, LAPIC MMIO, port I/O to the UART and PCI config space, a kernel
 * call, hlt wake-up by the LAPIC timer) at the privilege level the guest
 * runs at, and prints the memory-type state (CR0.CD/NW, PAT, MTRR default
 * type) read at CPL 0. Under a virtualised or paravirtualised KVM some
 * of these trap and cost microseconds to milliseconds; this is how the
 * guest's per-frame costs were found (docs/guest.md, "Speed").
 */
#include "guest.h"

#define N_ITER 64

static inline uint64_t rdmsr(uint32_t msr)
{
    uint32_t lo, hi;
    __asm__ __volatile__("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
    return ((uint64_t)hi << 32) | lo;
}

static uint8_t probe_buf[16384] __attribute__((aligned(4096)));

static const char *mode = "";

static void line(const char *what, uint64_t cycles, unsigned n)
{
    uint64_t per = cycles / n;
    report("probe mode=%s op=%s cycles=%lu ns=%lu", mode, what, per, per * 1000000 / tsc_khz());
}

#define MEASURE(name, n, body)                       \
    do {                                             \
        uint64_t t0_ = rdtsc();                      \
        for (unsigned i_ = 0; i_ < (n); i_++) {      \
            body;                                    \
        }                                            \
        line(name, rdtsc() - t0_, (n));              \
    } while (0)

static void probe_ops(void);
static uint64_t k_null(uint64_t x) { return x; }

static struct { uint64_t cr0, cr4, pat, mtrr_def, mtrr_cap; } regs;

static uint64_t k_read_regs(uint64_t unused)
{
    __asm__ __volatile__("mov %%cr0, %0" : "=r"(regs.cr0));
    __asm__ __volatile__("mov %%cr4, %0" : "=r"(regs.cr4));
    uint32_t a, b, c, d;
    __asm__ __volatile__("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(1), "c"(0));
    regs.pat = (d & (1u << 16)) ? rdmsr(0x277) : 0;
    regs.mtrr_def = (d & (1u << 12)) ? rdmsr(0x2ff) : 0;
    regs.mtrr_cap = (d & (1u << 12)) ? rdmsr(0xfe) : 0;
    return 0;
}

bool test_cpu_probe(void)
{
    kcall(k_read_regs, 0);
    uint16_t cs;
    __asm__ __volatile__("mov %%cs, %0" : "=r"(cs));
    report("probe cpl=%u cr0=0x%lx cd=%lu nw=%lu cr4=0x%lx pat=0x%lx mtrr_def=0x%lx mtrr_cap=0x%lx", cs & 3,
           regs.cr0, (regs.cr0 >> 30) & 1, (regs.cr0 >> 29) & 1, regs.cr4, regs.pat, regs.mtrr_def, regs.mtrr_cap);

    mode = (cs & 3) ? "cpl3" : "cpl0";
    probe_ops();
    return true;
}

static void probe_ops(void)
{
    volatile uint64_t sink = 0;
    MEASURE("rdtsc", N_ITER * 16, sink += rdtsc());
    MEASURE("ram-write-4k", N_ITER, memset(probe_buf, i_, 4096));
    MEASURE("ram-copy-4k", N_ITER, memcpy(probe_buf + 8192, probe_buf, 4096));
    MEASURE("ram-read-4k", N_ITER, for (int k = 0; k < 4096; k += 8) sink += *(volatile uint64_t *)(probe_buf + k));
    MEASURE("mfence", N_ITER * 16, __asm__ __volatile__("mfence" ::: "memory"));
    MEASURE("sfence", N_ITER * 16, __asm__ __volatile__("sfence" ::: "memory"));
    MEASURE("lfence", N_ITER * 16, __asm__ __volatile__("lfence" ::: "memory"));
    MEASURE("pause", N_ITER * 16, cpu_relax());
    MEASURE("lapic-read-id", N_ITER, sink += lapic_id());
    MEASURE("uart-inb-lsr", N_ITER, sink += inb(0x3fd));
    MEASURE("pci-cfg-read", N_ITER, outl(0xcf8, 0x80000000u); sink += inl(0xcfc));
    MEASURE("kcall-null", 16, sink += kcall(k_null, i_));
    MEASURE("idle-10us", 16, cpu_idle(10));
    MEASURE("idle-100us", 16, cpu_idle(100));
    MEASURE("udelay-10us", 16, udelay(10));
    (void)sink;
}
