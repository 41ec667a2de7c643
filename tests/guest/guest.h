/*
 * Shared declarations of the qnic test guest: a freestanding 64-bit program
 * that boots by PVH, drives one of several NICs and runs a small IP stack to
 * exercise qnic (and QEMU, the reference) end to end. Everything here is
 * single-threaded; interrupt handlers only bump counters and set flags that
 * the polling main loop reads.
 */
#ifndef QNIC_GUEST_H
#define QNIC_GUEST_H

#include <stdint.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdarg.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define ALIGN_UP(x, a) (((x) + (a) - 1) & ~((uint64_t)(a) - 1))
#define barrier() __asm__ __volatile__("" ::: "memory")
/* x86 is TSO, but virtio wants stores ordered against device reads. */
#define mb() __asm__ __volatile__("mfence" ::: "memory")
#define wmb() __asm__ __volatile__("sfence" ::: "memory")
#define rmb() __asm__ __volatile__("lfence" ::: "memory")

/* ---- port and MMIO access ---- */
static inline void outb(uint16_t p, uint8_t v) { __asm__ __volatile__("outb %0, %1" :: "a"(v), "Nd"(p)); }
static inline void outw(uint16_t p, uint16_t v) { __asm__ __volatile__("outw %0, %1" :: "a"(v), "Nd"(p)); }
static inline void outl(uint16_t p, uint32_t v) { __asm__ __volatile__("outl %0, %1" :: "a"(v), "Nd"(p)); }
static inline uint8_t inb(uint16_t p) { uint8_t v; __asm__ __volatile__("inb %1, %0" : "=a"(v) : "Nd"(p)); return v; }
static inline uint16_t inw(uint16_t p) { uint16_t v; __asm__ __volatile__("inw %1, %0" : "=a"(v) : "Nd"(p)); return v; }
static inline uint32_t inl(uint16_t p) { uint32_t v; __asm__ __volatile__("inl %1, %0" : "=a"(v) : "Nd"(p)); return v; }
static inline uint8_t mmio_read8(uint64_t a) { return *(volatile uint8_t *)a; }
static inline uint16_t mmio_read16(uint64_t a) { return *(volatile uint16_t *)a; }
static inline uint32_t mmio_read32(uint64_t a) { return *(volatile uint32_t *)a; }
static inline void mmio_write8(uint64_t a, uint8_t v) { *(volatile uint8_t *)a = v; }
static inline void mmio_write16(uint64_t a, uint16_t v) { *(volatile uint16_t *)a = v; }
static inline void mmio_write32(uint64_t a, uint32_t v) { *(volatile uint32_t *)a = v; }
static inline uint64_t rdtsc(void)
{
    uint32_t lo, hi;
    __asm__ __volatile__("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}
static inline void cpu_relax(void) { __asm__ __volatile__("pause"); }

/* ---- lib.c: strings, formatting, serial, exit, CRC32, heap ---- */
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
void *memmove(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);
char *strchr(const char *s, int c);
int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
int snprintf(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* One "QNIC-GUEST: ..." result line on the serial port. */
void report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void serial_init(void);
void guest_exit(bool pass) __attribute__((noreturn));
void fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
uint32_t crc32_update(uint32_t crc, const void *data, size_t len);
void heap_init(uint64_t start, uint64_t end);
/* Zeroed, aligned, never freed: the guest lives for one test. */
void *alloc_page_aligned(size_t size);
void *alloc(size_t size, size_t align);
uint64_t parse_uint(const char *s, bool *ok);
bool parse_ip(const char *s, uint32_t *ip);
void fmt_ip(char *buf, uint32_t ip);

/* ---- cmdline (main.c) ---- */
const char *cmdline_get(const char *key);   /* NULL when absent */
uint64_t cmdline_uint(const char *key, uint64_t def);

/* ---- cpu.c: IDT, LAPIC, IOAPIC, TSC, delays ---- */
struct isr_frame {
    uint64_t r15, r14, r13, r12, r11, r10, r9, r8, rbp, rdi, rsi, rdx, rcx, rbx, rax;
    uint64_t vector, error, rip, cs, rflags, rsp, ss;
};
typedef void (*irq_handler_fn)(void *opaque);
void cpu_init(void);
uint64_t tsc_khz(void);
uint64_t now_us(void);
void udelay(uint64_t us);
uint32_t lapic_id(void);
/* Allocate a vector >= 0x30 and bind a handler; returns the vector. */
int irq_alloc_vector(irq_handler_fn fn, void *opaque);
/* Route an IOAPIC pin (GSI) to a vector, level-triggered active-high. */
bool ioapic_route(unsigned gsi, int vector);
/* Wait for any interrupt or at most `us` (LAPIC timer), interrupts enabled. */
void cpu_idle(uint64_t us);
/* Run fn(arg) at CPL 0 (directly when the guest is not in user mode). */
uint64_t kcall(uint64_t (*fn)(uint64_t), uint64_t arg);
uint64_t k_wait_irq(uint64_t unused);   /* sti; hlt; cli */
extern volatile uint64_t irq_count_total;

/* ---- pci.c ---- */
struct pci_dev {
    uint8_t bus, slot, fn;
    uint16_t vendor, device, subsys_device;
    uint8_t irq_line, irq_pin;
    uint64_t bar[6];        /* base address (memory or I/O port) */
    uint64_t bar_size[6];
    bool bar_io[6];
    uint8_t msix_cap;       /* 0 when absent */
};
uint32_t pci_cfg_read32(const struct pci_dev *d, uint8_t off);
uint16_t pci_cfg_read16(const struct pci_dev *d, uint8_t off);
uint8_t pci_cfg_read8(const struct pci_dev *d, uint8_t off);
void pci_cfg_write32(const struct pci_dev *d, uint8_t off, uint32_t v);
void pci_cfg_write16(const struct pci_dev *d, uint8_t off, uint16_t v);
void pci_cfg_write8(const struct pci_dev *d, uint8_t off, uint8_t v);
/* Enumerate bus 0 (and bridges' secondary buses); fills up to max devices. */
int pci_scan(struct pci_dev *devs, int max);
/* Read the function 0 of a bus-0 slot into d (a device plugged after
 * boot); false when the slot is empty or holds no type-0 function. */
bool pci_probe_slot(struct pci_dev *d, unsigned slot);
/* Firmware's PCI_INTERRUPT_LINE for a device plugged after boot. */
void pci_hotplug_fill_line(struct pci_dev *d);
void pci_enable(struct pci_dev *d);   /* assign BARs if needed, enable decode + bus master */
uint8_t pci_find_cap(const struct pci_dev *d, uint8_t id, uint8_t start);
/* Program MSI-X entry `entry` to deliver `vector` to this CPU, enable MSI-X. */
bool pci_msix_set(struct pci_dev *d, unsigned entry, int vector);
void pci_msix_enable(struct pci_dev *d);
/* INTx: route the device's interrupt line through the IOAPIC; false = poll. */
bool pci_intx_route(struct pci_dev *d, int vector);

/* ---- the NIC interface every driver implements ---- */
#define FRAME_MAX 1536
struct nic;
struct nic_ops {
    /* Queue one frame for transmission; false when the TX ring is full. */
    bool (*tx)(struct nic *n, const void *frame, size_t len);
    /* Copy the next received frame into buf; returns its length or 0. */
    size_t (*rx)(struct nic *n, void *buf, size_t max);
    /* Optional: push out frames queued without a doorbell (batched TX). */
    void (*flush)(struct nic *n);
};
struct nic {
    const char *model;      /* "virtio-net-pci", "e1000", ... */
    const char *irq_mode;   /* "msix", "intx", "poll" */
    uint8_t mac[6];
    const struct nic_ops *ops;
    void *priv;
    volatile uint64_t irqs; /* interrupts taken for this NIC */
    uint64_t tx_frames, rx_frames, tx_full;
    bool tx_defer;          /* blaster: drivers may batch doorbells until flush */
    unsigned tx_batch;      /* tx-batch=N: with tx_defer, one doorbell per N frames */
    uint64_t kicks, kick_cycles;    /* TX doorbells written and the TSC cycles they took */
};
/* Driver probes: return a NIC or NULL. `want` is the nic= choice. */
struct nic *virtio_pci_probe(struct pci_dev *d, const char *want);
struct nic *virtio_mmio_probe(uint64_t base, unsigned gsi, const char *want);
struct nic *e1000_probe(struct pci_dev *d);
struct nic *rtl8139_probe(struct pci_dev *d);
const char *irq_pref(void);   /* irq= option: "auto", "msix", "intx", "poll" */
/* The driver for a PCI function, if one of ours fits it and `want`. */
struct nic *nic_probe_pci(struct pci_dev *d, const char *want);
/* Print the "nic index=..." line and set the NIC's options (tx-batch). */
void nic_announce(struct nic *n, int index);

/* ---- probe.c ---- */
bool test_cpu_probe(void);

/* ---- hotplug.c: ACPI PCI hotplug (test=hotplug) ---- */
bool test_hotplug(uint64_t deadline);

/* ---- net.c: the tiny stack ---- */
struct netif {
    struct nic *nic;
    uint32_t ip, mask, gw, dns, server;   /* host byte order */
    uint8_t mac[6];
    /* ARP cache (tiny). */
    struct { uint32_t ip; uint8_t mac[6]; bool valid; } arp[8];
    /* Pending UDP datagram waiting for a receiver (one slot is enough for
     * request/response protocols). */
    uint16_t udp_port_open[4];
    uint8_t udp_buf[FRAME_MAX];
    size_t udp_len;
    uint32_t udp_src_ip;
    uint16_t udp_src_port, udp_dst_port;
    bool udp_ready;
    /* Echo server port (0 = off), quit flag set by a "quit" datagram. */
    uint16_t echo_port;
    bool quit;
    uint64_t echoes;
    /* ICMP echo replies seen for our id. */
    uint16_t ping_id;
    uint32_t ping_replies_seen[8];
    uint64_t rx_dropped;
    /* Sink mode: count UDP datagrams on sink_port without other work. */
    uint16_t sink_port;
    uint64_t sink_frames, sink_bytes;
    uint64_t sink_first_us, sink_last_us;
};
void netif_init(struct netif *nif, struct nic *nic);
/* Receive and handle everything pending on all interfaces. */
void net_poll_all(void);
void net_register(struct netif *nif);
/* Take an interface out of net_poll_all (its NIC is going away). */
void net_unregister(struct netif *nif);
bool net_wait(uint64_t timeout_us, bool (*cond)(struct netif *nif), struct netif *nif);
bool arp_resolve(struct netif *nif, uint32_t ip, uint8_t mac[6], uint64_t timeout_us);
bool udp_send(struct netif *nif, uint32_t dst, uint16_t sport, uint16_t dport, const void *data, size_t len);
/* Wait for one datagram to `port`; returns its length (0 on timeout). */
size_t udp_recv(struct netif *nif, uint16_t port, void *buf, size_t max, uint32_t *src_ip, uint16_t *src_port, uint64_t timeout_us);
bool icmp_ping(struct netif *nif, uint32_t dst, uint16_t seq, size_t payload, uint64_t timeout_us, uint64_t *rtt_us);
bool dhcp_run(struct netif *nif, uint64_t timeout_us);
/* Download `file` from `server` by TFTP; reports size and CRC32. */
bool tftp_get(struct netif *nif, uint32_t server, const char *file, uint64_t *size, uint32_t *crc, uint64_t timeout_us);
/* Build and send one raw UDP frame (blaster fast path, no ARP per frame). */
bool udp_send_raw(struct netif *nif, const uint8_t dst_mac[6], uint32_t dst, uint16_t sport, uint16_t dport, const void *data, size_t len);

static inline uint16_t bswap16(uint16_t x) { return (uint16_t)((x >> 8) | (x << 8)); }
static inline uint32_t bswap32(uint32_t x) { return __builtin_bswap32(x); }
#define htons(x) bswap16(x)
#define ntohs(x) bswap16(x)
#define htonl(x) bswap32(x)
#define ntohl(x) bswap32(x)

#endif
