/*
 * Linux bzImage boot, following the x86 boot protocol (Documentation/arch/
 * x86/boot.rst) from version 2.06: the protected-mode kernel goes to 1 MiB,
 * the setup header is copied into a clean zero page (struct boot_params from
 * the kernel's UAPI header) together with the e820 map, the command line
 * pointer and the initrd placement, and the CPU enters at the 64-bit entry
 * (load address + 0x200, identity-mapped long mode) when the kernel
 * advertises XLF_KERNEL_64, else at code32_start in flat 32-bit mode. The
 * real-mode setup code is never run: qnic-vmm has no BIOS to serve it.
 */
#include "vmm/boot.h"

#include <asm/bootparam.h>
#include <asm/e820.h>

_Static_assert(offsetof(struct boot_params, hdr) == 0x1f1, "setup header offset");
_Static_assert(offsetof(struct boot_params, e820_table) == 0x2d0, "e820 table offset");
_Static_assert(sizeof(struct boot_params) == 4096, "zero page size");

#define BZ_HDR_MAGIC_OFF   0x202
#define BZ_MIN_VERSION     0x0206
#define BZ_KERNEL_LOAD     QNIC_BOOT_HIGH_START
#define BZ_64BIT_ENTRY_OFF 0x200
#define BZ_HDR_END         (0x1f1 + sizeof(struct setup_header))

bool qnic_linux_is_bzimage(const uint8_t *img, size_t len)
{
    return len >= BZ_HDR_MAGIC_OFF + 4 && memcmp(img + BZ_HDR_MAGIC_OFF, "HdrS", 4) == 0;
}

/* What the loader learns from the image and decides before writing. */
typedef struct BzImage {
    struct setup_header hdr;
    uint16_t version;
    size_t hdr_end;             /* end of the setup header to copy */
    const uint8_t *kernel;      /* the protected-mode kernel */
    size_t kernel_len;
    uint64_t kernel_end;        /* end of what it needs at 1 MiB */
    size_t cmdlen;
    uint64_t initrd_addr;       /* 0: none */
    bool use64;                 /* enter at the 64-bit entry point */
    uint64_t code32;            /* else here, in flat 32-bit mode */
} BzImage;

/* The setup header: signature, boot flag, protocol version, and where the
 * setup code ends and the protected-mode kernel starts. */
static bool bz_parse_header(BzImage *b, const uint8_t *img, size_t len, GError **errp)
{
    if (!qnic_linux_is_bzimage(img, len)) {
        qnic_error_setg(errp, "not a Linux bzImage (no 'HdrS' signature)");
        return false;
    }
    if (len < BZ_HDR_END) {
        qnic_error_setg(errp, "bzImage truncated in its setup header");
        return false;
    }
    memcpy(&b->hdr, img + 0x1f1, sizeof(b->hdr));
    if (GUINT16_FROM_LE(b->hdr.boot_flag) != 0xaa55) {
        qnic_error_setg(errp, "bzImage has no 0xAA55 boot flag");
        return false;
    }
    b->version = GUINT16_FROM_LE(b->hdr.version);
    if (b->version < BZ_MIN_VERSION) {
        qnic_error_setg(errp, "boot protocol %u.%02u is too old (qnic-vmm needs 2.06)",
                        b->version >> 8, b->version & 0xff);
        return false;
    }
    if (!(b->hdr.loadflags & LOADED_HIGH)) {
        qnic_error_setg(errp, "zImage (loaded low) is not supported, only bzImage");
        return false;
    }
    unsigned setup_sects = b->hdr.setup_sects ? b->hdr.setup_sects : 4;
    size_t setup_size = (size_t)(setup_sects + 1) * 512;
    if (setup_size >= len) {
        qnic_error_setg(errp, "bzImage truncated: no protected-mode kernel after "
                        "%zu bytes of setup", setup_size);
        return false;
    }
    /* The header runs from 0x1f1 to 0x202 + the jump's displacement byte. */
    size_t hdr_end = 0x202 + img[0x201];
    if (hdr_end > setup_size || hdr_end > len) {
        qnic_error_setg(errp, "bzImage setup header is longer than its setup code");
        return false;
    }
    b->hdr_end = MIN(hdr_end, BZ_HDR_END);
    b->kernel = img + setup_size;
    b->kernel_len = len - setup_size;
    return true;
}

/* Where the kernel, command line and initrd go, and how the CPU enters:
 * every check that can fail, before anything is written. */
static bool bz_place(BzImage *b, const QnicBootRam *ram, bool has_initrd, size_t initrd_len,
                     const char *cmdline, GError **errp)
{
    uint64_t need = b->kernel_len;
    if (b->version >= 0x020a) {
        /* init_size: what the kernel needs from its load address while it
         * decompresses itself. */
        need = MAX(need, (uint64_t)GUINT32_FROM_LE(b->hdr.init_size));
    }
    if (ram->below_4g < QNIC_BOOT_MIN_RAM ||
        need > ram->below_4g - BZ_KERNEL_LOAD) {
        qnic_error_setg(errp, "kernel needs %" G_GUINT64_FORMAT " KiB at 1 MiB but guest "
                        "RAM below 4 GiB is %" G_GUINT64_FORMAT " KiB (-m too small)",
                        need >> 10, ram->below_4g >> 10);
        return false;
    }
    b->kernel_end = BZ_KERNEL_LOAD + need;

    b->cmdlen = cmdline ? strlen(cmdline) : 0;
    uint32_t cmdline_size = GUINT32_FROM_LE(b->hdr.cmdline_size);
    if (b->cmdlen > cmdline_size || b->cmdlen + 1 > QNIC_BOOT_CMDLINE_MAX) {
        qnic_error_setg(errp, "command line of %zu bytes is longer than the kernel's "
                        "limit of %u", b->cmdlen, MIN(cmdline_size,
                        (uint32_t)QNIC_BOOT_CMDLINE_MAX - 1));
        return false;
    }

    b->initrd_addr = 0;
    if (has_initrd) {
        uint64_t max = GUINT32_FROM_LE(b->hdr.initrd_addr_max);
        max = MIN(max, ram->below_4g - 1);
        /* Highest page-aligned place ending at or below initrd_addr_max. */
        if (max + 1 >= b->kernel_end && initrd_len <= max + 1 - b->kernel_end) {
            b->initrd_addr = (max + 1 - initrd_len) & ~0xfffull;
        }
        if (b->initrd_addr < b->kernel_end) {
            qnic_error_setg(errp, "initrd of %zu bytes does not fit between the kernel "
                            "and 0x%" G_GINT64_MODIFIER "x", initrd_len, max);
            return false;
        }
    }

    b->use64 = b->version >= 0x020c &&
               (GUINT16_FROM_LE(b->hdr.xloadflags) & XLF_KERNEL_64);
    b->code32 = GUINT32_FROM_LE(b->hdr.code32_start);
    if (!b->use64 &&
        (b->code32 < BZ_KERNEL_LOAD || b->code32 >= BZ_KERNEL_LOAD + b->kernel_len)) {
        qnic_error_setg(errp, "code32_start 0x%" G_GINT64_MODIFIER "x is outside the "
                        "kernel loaded at 1 MiB", b->code32);
        return false;
    }
    if (b->use64 && b->kernel_len <= BZ_64BIT_ENTRY_OFF) {
        qnic_error_setg(errp, "bzImage too short for its 64-bit entry");
        return false;
    }
    return true;
}

/* The zero page: the image's setup header, the loader's answers in it
 * (command line, initrd) and the e820 map. */
static void bz_write_zero_page(const BzImage *b, const QnicBootRam *ram, const uint8_t *img,
                               bool has_initrd, size_t initrd_len)
{
    struct boot_params *bp = g_new0(struct boot_params, 1);
    memcpy((uint8_t *)bp + 0x1f1, img + 0x1f1, b->hdr_end - 0x1f1);
    bp->hdr.type_of_loader = 0xff;
    bp->hdr.cmd_line_ptr = GUINT32_TO_LE((uint32_t)QNIC_BOOT_CMDLINE_ADDR);
    bp->ext_cmd_line_ptr = 0;
    bp->acpi_rsdp_addr = GUINT64_TO_LE(ram->rsdp_addr);
    bp->hdr.ramdisk_image = GUINT32_TO_LE((uint32_t)b->initrd_addr);
    bp->hdr.ramdisk_size = GUINT32_TO_LE((uint32_t)(has_initrd ? initrd_len : 0));
    QnicBootMemRange map[E820_MAX_ENTRIES_ZEROPAGE];
    unsigned n = qnic_boot_memmap(ram, map, QNIC_ARRAY_SIZE(map));
    for (unsigned i = 0; i < n; i++) {
        bp->e820_table[i].addr = GUINT64_TO_LE(map[i].addr);
        bp->e820_table[i].size = GUINT64_TO_LE(map[i].size);
        bp->e820_table[i].type = GUINT32_TO_LE(map[i].type);
    }
    bp->e820_entries = n;
    memcpy(ram->host + QNIC_BOOT_ZERO_PAGE_ADDR, bp, sizeof(*bp));
    g_free(bp);
}

bool qnic_linux_load(const QnicBootRam *ram, const uint8_t *img, size_t len,
                     const uint8_t *initrd, size_t initrd_len, const char *cmdline,
                     QnicBootEntry *entry, GError **errp)
{
    BzImage b = { 0 };

    if (!bz_parse_header(&b, img, len, errp) ||
        !bz_place(&b, ram, initrd != NULL, initrd_len, cmdline, errp)) {
        return false;
    }

    /* Nothing can fail from here on. */
    memcpy(ram->host + BZ_KERNEL_LOAD, b.kernel, b.kernel_len);
    if (initrd) {
        memcpy(ram->host + b.initrd_addr, initrd, initrd_len);
    }
    memset(ram->host + QNIC_BOOT_CMDLINE_ADDR, 0, b.cmdlen + 1);
    if (b.cmdlen) {
        memcpy(ram->host + QNIC_BOOT_CMDLINE_ADDR, cmdline, b.cmdlen);
    }
    bz_write_zero_page(&b, ram, img, initrd != NULL, initrd_len);

    memset(entry, 0, sizeof(*entry));
    entry->arg = QNIC_BOOT_ZERO_PAGE_ADDR;
    if (b.use64) {
        entry->mode = QNIC_BOOT_LINUX64;
        entry->entry = BZ_KERNEL_LOAD + BZ_64BIT_ENTRY_OFF;
        entry->cr3 = QNIC_BOOT_PML4_ADDR;
        qnic_boot_write_page_tables(ram);
    } else {
        entry->mode = QNIC_BOOT_LINUX32;
        entry->entry = b.code32;
    }
    qnic_boot_write_gdt(ram, b.use64, entry);
    return true;
}
