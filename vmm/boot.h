/*
 * Kernel loading for qnic-vmm: PVH ELF images (entry from the Xen
 * PHYS32_ENTRY note, hvm_start_info handed over in EBX) and Linux bzImages
 * (x86 boot protocol 2.06+, zero page in RSI/ESI). The loaders are pure
 * functions over a QnicBootRam view of guest RAM, so unit tests can feed them
 * fake images and check every byte they write; qnic_boot_load() glues them to
 * the -kernel/-initrd/-append files. The CPU state to enter with is returned
 * as a QnicBootEntry, which kvm.c turns into registers.
 */
#ifndef QNIC_VMM_BOOT_H
#define QNIC_VMM_BOOT_H

#include "qnic/common.h"

/* Where the loaders put their data in low RAM. Everything lives below 1 MiB
 * and outside the EBDA (0x9fc00), where neither a PVH nor a bzImage kernel is
 * loaded. */
#define QNIC_BOOT_GDT_ADDR        0x500ull     /* 5 descriptors */
#define QNIC_BOOT_START_INFO_ADDR 0x6000ull    /* hvm_start_info, modlist */
#define QNIC_BOOT_MEMMAP_ADDR     0x6100ull    /* PVH memory map */
#define QNIC_BOOT_ZERO_PAGE_ADDR  0x7000ull    /* Linux boot_params */
#define QNIC_BOOT_PML4_ADDR       0x9000ull    /* 64-bit entry page tables: */
#define QNIC_BOOT_PDPT_ADDR       0xa000ull    /*   PML4, PDPT and 4 PDs */
#define QNIC_BOOT_PD_ADDR         0xb000ull    /*   identity-map 4 GiB */
#define QNIC_BOOT_CMDLINE_ADDR    0x20000ull
#define QNIC_BOOT_CMDLINE_MAX     0x10000ull   /* bytes, with the NUL */
#define QNIC_BOOT_DATA_END        (QNIC_BOOT_CMDLINE_ADDR + QNIC_BOOT_CMDLINE_MAX)
#define QNIC_BOOT_EBDA_START      0x9fc00ull
#define QNIC_BOOT_HIGH_START      0x100000ull  /* 1 MiB */
/* KVM's TSS (3 pages) and identity-map page, reserved in the memory map. */
#define QNIC_BOOT_KVM_IDMAP_ADDR  0xfffbc000ull
#define QNIC_BOOT_KVM_TSS_ADDR    0xfffbd000ull
/* Largest -kernel/-initrd file read (all of low RAM). */
#define QNIC_BOOT_MAX_FILE        0xe0000000ull
/* Smallest -m the loaders accept: low RAM plus a kernel above 1 MiB. */
#define QNIC_BOOT_MIN_RAM         (2ull << 20)

/* GDT selectors (those of Linux's boot protocol, also used for PVH). */
#define QNIC_BOOT_CS 0x10
#define QNIC_BOOT_DS 0x18
#define QNIC_BOOT_TSS 0x20

/* Xen's PVH entry note and start info (xen/include/public/elfnote.h and
 * arch-x86/hvm/start_info.h). */
#define QNIC_XEN_ELFNOTE_PHYS32_ENTRY 18
#define QNIC_HVM_START_MAGIC 0x336ec578u

struct qnic_hvm_start_info {
    uint32_t magic;
    uint32_t version;
    uint32_t flags;
    uint32_t nr_modules;
    uint64_t modlist_paddr;
    uint64_t cmdline_paddr;
    uint64_t rsdp_paddr;
    uint64_t memmap_paddr;      /* version 1 */
    uint32_t memmap_entries;
    uint32_t reserved;
};
_Static_assert(sizeof(struct qnic_hvm_start_info) == 56, "hvm_start_info layout");
_Static_assert(offsetof(struct qnic_hvm_start_info, memmap_paddr) == 40, "hvm_start_info v1");

struct qnic_hvm_modlist_entry {
    uint64_t paddr, size, cmdline_paddr, reserved;
};
_Static_assert(sizeof(struct qnic_hvm_modlist_entry) == 32, "modlist layout");

struct qnic_hvm_memmap_entry {
    uint64_t addr, size;
    uint32_t type, reserved;
};
_Static_assert(sizeof(struct qnic_hvm_memmap_entry) == 24, "memmap layout");

/* Guest RAM as the loaders see it: low RAM mapped at guest address 0. */
typedef struct QnicBootRam {
    uint8_t *host;
    uint64_t below_4g;          /* bytes at 0 */
    uint64_t above_4g;          /* bytes at 4 GiB (memory maps only) */
    uint64_t rsdp_addr;         /* the ACPI RSDP to hand over, 0: none */
} QnicBootRam;

typedef enum {
    QNIC_BOOT_PVH,              /* 32-bit flat, paging off, EBX = start_info */
    QNIC_BOOT_LINUX32,          /* 32-bit flat, paging off, ESI = zero page */
    QNIC_BOOT_LINUX64,          /* long mode, identity map, RSI = zero page */
} QnicBootMode;

typedef struct QnicBootEntry {
    QnicBootMode mode;
    uint64_t entry;             /* RIP */
    uint64_t arg;               /* EBX (PVH) or RSI (Linux) */
    uint64_t gdt_addr;          /* GDT written by the loader */
    uint16_t gdt_limit;
    uint64_t cr3;               /* LINUX64: PML4 address */
} QnicBootEntry;

/* One range of the guest memory map (e820 types: 1 RAM, 2 reserved). */
typedef struct QnicBootMemRange {
    uint64_t addr, size;
    uint32_t type;
} QnicBootMemRange;

/* The memory map qnic-vmm reports to the guest; returns the entry count
 * (at most max). */
unsigned qnic_boot_memmap(const QnicBootRam *ram, QnicBootMemRange *out, unsigned max);

/* Write the boot GDT (null, null, code 0x10, data 0x18, TSS 0x20) with a
 * 64-bit (long) or 32-bit code segment and fill entry->gdt_*. */
void qnic_boot_write_gdt(const QnicBootRam *ram, bool long_mode, QnicBootEntry *entry);
/* Identity-map the first 4 GiB with 2 MiB pages at QNIC_BOOT_PML4_ADDR. */
void qnic_boot_write_page_tables(const QnicBootRam *ram);

/* PVH: load an ELF32/ELF64 image with a PHYS32_ENTRY note, the initrd (as
 * module 0, may be NULL) and the command line (may be NULL). */
bool qnic_pvh_load(const QnicBootRam *ram, const uint8_t *img, size_t len,
                   const uint8_t *initrd, size_t initrd_len, const char *cmdline,
                   QnicBootEntry *entry, GError **errp);
/* Just the note lookup: true and *entry if img is an ELF with a PVH note. */
bool qnic_pvh_find_entry(const uint8_t *img, size_t len, uint64_t *entry, GError **errp);

/* Linux bzImage, boot protocol >= 2.06. */
bool qnic_linux_load(const QnicBootRam *ram, const uint8_t *img, size_t len,
                     const uint8_t *initrd, size_t initrd_len, const char *cmdline,
                     QnicBootEntry *entry, GError **errp);
bool qnic_linux_is_bzimage(const uint8_t *img, size_t len);

/* Read -kernel/-initrd, detect the format (ELF -> PVH, 'HdrS' -> bzImage)
 * and load. When ram->rsdp_addr is 0, the RSDP the board wrote (vmm/acpi.h),
 * if any, is handed over. Messages name the file and the problem. */
bool qnic_boot_load(const QnicBootRam *ram, const char *kernel, const char *initrd,
                    const char *cmdline, QnicBootEntry *entry, GError **errp);

#endif
