/*
 * PVH boot: the Xen "direct boot" ABI that Linux, the qnic test guest and
 * many unikernels implement. An ELF32 or ELF64 image names its 32-bit entry
 * point in a Xen note of type PHYS32_ENTRY; the loader copies the PT_LOAD
 * segments to their physical addresses, writes an hvm_start_info (command
 * line, modules, memory map) and enters in flat 32-bit protected mode with
 * EBX pointing at it. The image is untrusted input: every offset and size is
 * checked against the file and against guest RAM before anything is copied.
 */
#include "vmm/boot.h"

#include <elf.h>

/* A program header in a class-independent form. */
typedef struct ElfSeg {
    uint32_t type;
    uint64_t offset, paddr, filesz, memsz;
} ElfSeg;

typedef struct ElfImage {
    const uint8_t *img;
    size_t len;
    bool is64;
    uint64_t phoff;
    unsigned phnum, phentsize;
} ElfImage;

/* Bounds: refuse images with absurd header counts instead of looping long. */
#define ELF_MAX_PHNUM 4096
#define ELF_MAX_NOTES 4096

static bool range_in(uint64_t off, uint64_t size, uint64_t limit)
{
    return off <= limit && size <= limit - off;
}

static bool elf_open(ElfImage *e, const uint8_t *img, size_t len, GError **errp)
{
    e->img = img;
    e->len = len;
    if (len < EI_NIDENT || memcmp(img, ELFMAG, SELFMAG) != 0) {
        qnic_error_setg(errp, "not an ELF file");
        return false;
    }
    if (img[EI_DATA] != ELFDATA2LSB) {
        qnic_error_setg(errp, "ELF is not little-endian");
        return false;
    }
    if (img[EI_CLASS] == ELFCLASS64) {
        Elf64_Ehdr h;
        if (len < sizeof(h)) {
            qnic_error_setg(errp, "ELF header truncated");
            return false;
        }
        memcpy(&h, img, sizeof(h));
        if (h.e_machine != EM_X86_64 && h.e_machine != EM_386) {
            qnic_error_setg(errp, "ELF is not for x86 (machine %u)", h.e_machine);
            return false;
        }
        e->is64 = true;
        e->phoff = h.e_phoff;
        e->phnum = h.e_phnum;
        e->phentsize = h.e_phentsize;
        if (e->phentsize < sizeof(Elf64_Phdr)) {
            qnic_error_setg(errp, "ELF program header size %u too small", e->phentsize);
            return false;
        }
        if (h.e_type != ET_EXEC) {
            qnic_error_setg(errp, "ELF is not an executable (type %u)", h.e_type);
            return false;
        }
    } else if (img[EI_CLASS] == ELFCLASS32) {
        Elf32_Ehdr h;
        if (len < sizeof(h)) {
            qnic_error_setg(errp, "ELF header truncated");
            return false;
        }
        memcpy(&h, img, sizeof(h));
        if (h.e_machine != EM_386 && h.e_machine != EM_X86_64) {
            qnic_error_setg(errp, "ELF is not for x86 (machine %u)", h.e_machine);
            return false;
        }
        e->is64 = false;
        e->phoff = h.e_phoff;
        e->phnum = h.e_phnum;
        e->phentsize = h.e_phentsize;
        if (e->phentsize < sizeof(Elf32_Phdr)) {
            qnic_error_setg(errp, "ELF program header size %u too small", e->phentsize);
            return false;
        }
        if (h.e_type != ET_EXEC) {
            qnic_error_setg(errp, "ELF is not an executable (type %u)", h.e_type);
            return false;
        }
    } else {
        qnic_error_setg(errp, "unknown ELF class %u", img[EI_CLASS]);
        return false;
    }
    if (e->phnum == 0 || e->phnum > ELF_MAX_PHNUM) {
        qnic_error_setg(errp, "ELF has %u program headers", e->phnum);
        return false;
    }
    if (!range_in(e->phoff, (uint64_t)e->phnum * e->phentsize, len)) {
        qnic_error_setg(errp, "ELF program headers truncated");
        return false;
    }
    return true;
}

static void elf_seg(const ElfImage *e, unsigned i, ElfSeg *s)
{
    const uint8_t *p = e->img + e->phoff + (uint64_t)i * e->phentsize;

    if (e->is64) {
        Elf64_Phdr ph;
        memcpy(&ph, p, sizeof(ph));
        *s = (ElfSeg){ ph.p_type, ph.p_offset, ph.p_paddr, ph.p_filesz, ph.p_memsz };
    } else {
        Elf32_Phdr ph;
        memcpy(&ph, p, sizeof(ph));
        *s = (ElfSeg){ ph.p_type, ph.p_offset, ph.p_paddr, ph.p_filesz, ph.p_memsz };
    }
}

/* Walk the notes of one PT_NOTE segment. Returns 1 found, 0 not, -1 error. */
static int find_pvh_note(const ElfImage *e, const ElfSeg *s, uint64_t *entry, GError **errp)
{
    if (!range_in(s->offset, s->filesz, e->len)) {
        qnic_error_setg(errp, "ELF note segment outside the file");
        return -1;
    }
    uint64_t pos = s->offset, end = s->offset + s->filesz;
    /* Note name and descriptor are each padded to 4 bytes, in ELF32 and
     * ELF64 alike (that is what every toolchain emits). */
    for (unsigned n = 0; n < ELF_MAX_NOTES && end - pos >= 12; n++) {
        uint32_t namesz = qnic_ld32(e->img + pos);
        uint32_t descsz = qnic_ld32(e->img + pos + 4);
        uint32_t type = qnic_ld32(e->img + pos + 8);
        uint64_t name_off = pos + 12;
        uint64_t desc_off = name_off + QNIC_ALIGN_UP((uint64_t)namesz, 4);
        uint64_t next = desc_off + QNIC_ALIGN_UP((uint64_t)descsz, 4);
        if (next > end || desc_off + descsz > end) {
            qnic_error_setg(errp, "ELF note truncated");
            return -1;
        }
        if (namesz == 4 && memcmp(e->img + name_off, "Xen", 4) == 0 &&
            type == QNIC_XEN_ELFNOTE_PHYS32_ENTRY) {
            if (descsz == 4) {
                *entry = qnic_ld32(e->img + desc_off);
            } else if (descsz == 8) {
                *entry = qnic_ld64(e->img + desc_off);
            } else {
                qnic_error_setg(errp, "PVH entry note has a %u-byte value", descsz);
                return -1;
            }
            return 1;
        }
        pos = next;
    }
    return 0;
}

static bool pvh_entry(const ElfImage *e, uint64_t *entry, GError **errp)
{
    for (unsigned i = 0; i < e->phnum; i++) {
        ElfSeg s;
        elf_seg(e, i, &s);
        if (s.type != PT_NOTE) {
            continue;
        }
        int r = find_pvh_note(e, &s, entry, errp);
        if (r < 0) {
            return false;
        }
        if (r > 0) {
            if (*entry >= (1ull << 32)) {
                qnic_error_setg(errp, "PVH entry 0x%" G_GINT64_MODIFIER "x is above 4 GiB",
                                *entry);
                return false;
            }
            return true;
        }
    }
    qnic_error_setg(errp, "ELF has no PVH entry note (Xen note type %d); "
                    "qnic-vmm boots PVH ELF images and bzImages",
                    QNIC_XEN_ELFNOTE_PHYS32_ENTRY);
    return false;
}

bool qnic_pvh_find_entry(const uint8_t *img, size_t len, uint64_t *entry, GError **errp)
{
    ElfImage e;
    return elf_open(&e, img, len, errp) && pvh_entry(&e, entry, errp);
}

/* Check every segment before copying any, so a refused image leaves RAM
 * untouched; *kernel_end is where the highest one ends. */
static bool pvh_check_segments(const ElfImage *e, size_t len, const QnicBootRam *ram,
                               uint64_t *kernel_end, GError **errp)
{
    *kernel_end = 0;
    for (unsigned i = 0; i < e->phnum; i++) {
        ElfSeg s;
        elf_seg(e, i, &s);
        if (s.type != PT_LOAD || s.memsz == 0) {
            continue;
        }
        if (s.filesz > s.memsz) {
            qnic_error_setg(errp, "ELF segment %u: file size exceeds memory size", i);
            return false;
        }
        if (!range_in(s.offset, s.filesz, len)) {
            qnic_error_setg(errp, "ELF segment %u: data beyond the end of the file "
                            "(truncated image?)", i);
            return false;
        }
        if (!range_in(s.paddr, s.memsz, ram->below_4g)) {
            qnic_error_setg(errp, "ELF segment %u (0x%" G_GINT64_MODIFIER "x, "
                            "%" G_GUINT64_FORMAT " bytes) is outside guest RAM "
                            "(%" G_GUINT64_FORMAT " MiB below 4 GiB)",
                            i, s.paddr, s.memsz, ram->below_4g >> 20);
            return false;
        }
        if (s.paddr < QNIC_BOOT_DATA_END) {
            qnic_error_setg(errp, "ELF segment %u at 0x%" G_GINT64_MODIFIER "x "
                            "overlaps the boot data below 0x%llx", i, s.paddr,
                            QNIC_BOOT_DATA_END);
            return false;
        }
        *kernel_end = MAX(*kernel_end, s.paddr + s.memsz);
    }
    if (*kernel_end == 0) {
        qnic_error_setg(errp, "ELF has no loadable segment");
        return false;
    }
    return true;
}

/* hvm_start_info with the initrd module, the memory map and the command
 * line, in low RAM where the loader's data lives. */
static void pvh_write_start_info(const QnicBootRam *ram, const uint8_t *initrd,
                                 size_t initrd_len, uint64_t initrd_addr,
                                 const char *cmdline, size_t cmdlen)
{
    memset(ram->host + QNIC_BOOT_START_INFO_ADDR, 0,
           QNIC_BOOT_ZERO_PAGE_ADDR - QNIC_BOOT_START_INFO_ADDR);
    struct qnic_hvm_start_info info = {
        .magic = QNIC_HVM_START_MAGIC,
        .version = 1,
        .cmdline_paddr = QNIC_BOOT_CMDLINE_ADDR,
        .memmap_paddr = QNIC_BOOT_MEMMAP_ADDR,
        .rsdp_paddr = ram->rsdp_addr,
    };
    if (initrd) {
        struct qnic_hvm_modlist_entry mod = {
            .paddr = initrd_addr, .size = initrd_len,
        };
        info.nr_modules = 1;
        info.modlist_paddr = QNIC_BOOT_START_INFO_ADDR + 64;
        memcpy(ram->host + info.modlist_paddr, &mod, sizeof(mod));
        memcpy(ram->host + initrd_addr, initrd, initrd_len);
    }
    QnicBootMemRange map[16];
    unsigned n = qnic_boot_memmap(ram, map, QNIC_ARRAY_SIZE(map));
    for (unsigned i = 0; i < n; i++) {
        struct qnic_hvm_memmap_entry me = {
            .addr = map[i].addr, .size = map[i].size, .type = map[i].type,
        };
        memcpy(ram->host + QNIC_BOOT_MEMMAP_ADDR + i * sizeof(me), &me, sizeof(me));
    }
    info.memmap_entries = n;
    memcpy(ram->host + QNIC_BOOT_START_INFO_ADDR, &info, sizeof(info));
    memset(ram->host + QNIC_BOOT_CMDLINE_ADDR, 0, cmdlen + 1);
    if (cmdlen) {
        memcpy(ram->host + QNIC_BOOT_CMDLINE_ADDR, cmdline, cmdlen);
    }
}

bool qnic_pvh_load(const QnicBootRam *ram, const uint8_t *img, size_t len,
                   const uint8_t *initrd, size_t initrd_len, const char *cmdline,
                   QnicBootEntry *entry, GError **errp)
{
    ElfImage e;
    uint64_t pvh_start, kernel_end;

    if (ram->below_4g < QNIC_BOOT_MIN_RAM) {
        qnic_error_setg(errp, "guest RAM of %" G_GUINT64_FORMAT " KiB is too small "
                        "(at least %llu MiB)", ram->below_4g >> 10, QNIC_BOOT_MIN_RAM >> 20);
        return false;
    }
    if (!elf_open(&e, img, len, errp) || !pvh_entry(&e, &pvh_start, errp)) {
        return false;
    }
    size_t cmdlen = cmdline ? strlen(cmdline) : 0;
    if (cmdlen + 1 > QNIC_BOOT_CMDLINE_MAX) {
        qnic_error_setg(errp, "command line of %zu bytes is too long (max %llu)",
                        cmdlen, QNIC_BOOT_CMDLINE_MAX - 1);
        return false;
    }

    if (!pvh_check_segments(&e, len, ram, &kernel_end, errp)) {
        return false;
    }
    if (pvh_start >= ram->below_4g) {
        qnic_error_setg(errp, "PVH entry 0x%" G_GINT64_MODIFIER "x is outside guest RAM",
                        pvh_start);
        return false;
    }
    uint64_t initrd_addr = 0;
    if (initrd) {
        /* At the top of low RAM, page aligned, as QEMU places it. */
        if (initrd_len <= ram->below_4g - kernel_end) {
            initrd_addr = (ram->below_4g - initrd_len) & ~0xfffull;
        }
        if (initrd_addr < kernel_end) {
            qnic_error_setg(errp, "initrd of %zu bytes does not fit in guest RAM "
                            "above the kernel", initrd_len);
            return false;
        }
    }

    /* Nothing can fail from here on. */
    for (unsigned i = 0; i < e.phnum; i++) {
        ElfSeg s;
        elf_seg(&e, i, &s);
        if (s.type == PT_LOAD && s.memsz != 0) {
            memcpy(ram->host + s.paddr, img + s.offset, s.filesz);
            memset(ram->host + s.paddr + s.filesz, 0, s.memsz - s.filesz);
        }
    }

    pvh_write_start_info(ram, initrd, initrd_len, initrd_addr, cmdline, cmdlen);

    memset(entry, 0, sizeof(*entry));
    entry->mode = QNIC_BOOT_PVH;
    entry->entry = pvh_start;
    entry->arg = QNIC_BOOT_START_INFO_ADDR;
    qnic_boot_write_gdt(ram, false, entry);
    return true;
}
