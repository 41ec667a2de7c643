/*
 * Unit tests of qnic-vmm's kernel loaders (vmm/boot*.c): fake PVH ELF images
 * (ELF32 and ELF64) and fake bzImages are built in memory, loaded into a
 * buffer standing in for guest RAM, and every structure the loaders write
 * (hvm_start_info, memory maps, zero page, GDT, page tables) is checked
 * field by field. Malformed images must be refused with a message and leave
 * RAM untouched. Both hand over the ACPI RSDP the board wrote, if any.
 */
#include "vmm/boot.h"
#include "vmm/acpi.h"

#include <elf.h>
#include <unistd.h>
#include <asm/bootparam.h>
#include <asm/e820.h>

#define RAM_SIZE (8ull << 20)
#define LOAD_ADDR 0x100000ull
#define ENTRY_OFF 0x10

typedef struct Fixture {
    uint8_t *host;
    QnicBootRam ram;
} Fixture;

static void fixture_setup(Fixture *f, gconstpointer data)
{
    f->host = g_malloc(RAM_SIZE);
    memset(f->host, 0xaa, RAM_SIZE);     /* so zeroing is observable */
    f->ram = (QnicBootRam){ .host = f->host, .below_4g = RAM_SIZE, .above_4g = 0 };
}

static void fixture_teardown(Fixture *f, gconstpointer data)
{
    g_free(f->host);
}

/* ---- fake PVH ELF ---- */

typedef struct PvhOpts {
    bool elf32;
    bool no_note;
    unsigned desc_size;       /* 4 or 8 */
    uint64_t paddr;
    uint64_t filesz, memsz;
    uint32_t entry;
} PvhOpts;

static const uint8_t payload[16] = { 0xfa, 0xf4, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14 };

/* Layout: ehdr | phdr[LOAD] | phdr[NOTE] | note | payload (padded to filesz) */
static GByteArray *make_pvh(const PvhOpts *o)
{
    GByteArray *b = g_byte_array_new();
    size_t ehsz = o->elf32 ? sizeof(Elf32_Ehdr) : sizeof(Elf64_Ehdr);
    size_t phsz = o->elf32 ? sizeof(Elf32_Phdr) : sizeof(Elf64_Phdr);
    size_t note_off = ehsz + 2 * phsz;
    unsigned dsz = o->desc_size ? o->desc_size : 4;
    size_t note_len = 12 + 4 + QNIC_ALIGN_UP(dsz, 4);
    size_t data_off = QNIC_ALIGN_UP(note_off + note_len, 16);
    size_t total = data_off + o->filesz;
    uint8_t *p;

    g_byte_array_set_size(b, total);
    p = b->data;
    memset(p, 0, total);
    if (o->elf32) {
        Elf32_Ehdr eh = {
            .e_ident = { ELFMAG0, ELFMAG1, ELFMAG2, ELFMAG3, ELFCLASS32, ELFDATA2LSB, EV_CURRENT },
            .e_type = ET_EXEC, .e_machine = EM_386, .e_version = EV_CURRENT,
            .e_entry = o->entry, .e_phoff = ehsz, .e_ehsize = ehsz,
            .e_phentsize = phsz, .e_phnum = 2,
        };
        Elf32_Phdr ph[2] = {
            { .p_type = PT_LOAD, .p_offset = data_off, .p_vaddr = o->paddr, .p_paddr = o->paddr,
              .p_filesz = o->filesz, .p_memsz = o->memsz, .p_flags = PF_R | PF_X },
            { .p_type = o->no_note ? PT_NULL : PT_NOTE, .p_offset = note_off,
              .p_filesz = note_len, .p_memsz = 0 },
        };
        memcpy(p, &eh, sizeof(eh));
        memcpy(p + ehsz, ph, sizeof(ph));
    } else {
        Elf64_Ehdr eh = {
            .e_ident = { ELFMAG0, ELFMAG1, ELFMAG2, ELFMAG3, ELFCLASS64, ELFDATA2LSB, EV_CURRENT },
            .e_type = ET_EXEC, .e_machine = EM_X86_64, .e_version = EV_CURRENT,
            .e_entry = o->entry, .e_phoff = ehsz, .e_ehsize = ehsz,
            .e_phentsize = phsz, .e_phnum = 2,
        };
        Elf64_Phdr ph[2] = {
            { .p_type = PT_LOAD, .p_offset = data_off, .p_vaddr = o->paddr, .p_paddr = o->paddr,
              .p_filesz = o->filesz, .p_memsz = o->memsz, .p_flags = PF_R | PF_X },
            { .p_type = o->no_note ? PT_NULL : PT_NOTE, .p_offset = note_off,
              .p_filesz = note_len, .p_memsz = 0 },
        };
        memcpy(p, &eh, sizeof(eh));
        memcpy(p + ehsz, ph, sizeof(ph));
    }
    qnic_st32(p + note_off, 4);          /* namesz: "Xen\0" */
    qnic_st32(p + note_off + 4, dsz);
    qnic_st32(p + note_off + 8, QNIC_XEN_ELFNOTE_PHYS32_ENTRY);
    memcpy(p + note_off + 12, "Xen", 4);
    if (dsz == 8) {
        qnic_st64(p + note_off + 16, o->entry);
    } else {
        qnic_st32(p + note_off + 16, o->entry);
    }
    for (size_t i = 0; i < o->filesz; i++) {
        p[data_off + i] = payload[i % sizeof(payload)];
    }
    return b;
}

static PvhOpts pvh_default(void)
{
    return (PvhOpts){ .paddr = LOAD_ADDR, .filesz = 64, .memsz = 4096,
                      .entry = LOAD_ADDR + ENTRY_OFF, .desc_size = 4 };
}

static void check_gdt(Fixture *f, const QnicBootEntry *e, bool long_mode)
{
    const uint8_t *gdt = f->host + e->gdt_addr;

    g_assert_cmpuint(e->gdt_addr, ==, QNIC_BOOT_GDT_ADDR);
    g_assert_cmpuint(e->gdt_limit, ==, 0x27);
    g_assert_cmphex(qnic_ld64(gdt), ==, 0);
    g_assert_cmphex(qnic_ld64(gdt + QNIC_BOOT_CS), ==,
                    long_mode ? 0x00af9b000000ffffull : 0x00cf9b000000ffffull);
    g_assert_cmphex(qnic_ld64(gdt + QNIC_BOOT_DS), ==, 0x00cf93000000ffffull);
    g_assert_cmphex(qnic_ld64(gdt + QNIC_BOOT_TSS), ==, 0x00008b0000000067ull);
}

static void check_memmap(const QnicBootMemRange *map, unsigned n, uint64_t below, uint64_t above)
{
    g_assert_cmpuint(n, ==, above ? 6 : 5);
    g_assert_cmphex(map[0].addr, ==, 0);
    g_assert_cmphex(map[0].size, ==, 0x9fc00);
    g_assert_cmpuint(map[0].type, ==, E820_RAM);
    g_assert_cmphex(map[1].addr, ==, 0x9fc00);
    g_assert_cmphex(map[1].size, ==, 0x400);
    g_assert_cmpuint(map[1].type, ==, E820_RESERVED);
    g_assert_cmphex(map[2].addr, ==, 0xf0000);
    g_assert_cmphex(map[2].size, ==, 0x10000);
    g_assert_cmpuint(map[2].type, ==, E820_RESERVED);
    g_assert_cmphex(map[3].addr, ==, 0x100000);
    g_assert_cmphex(map[3].size, ==, below - 0x100000);
    g_assert_cmpuint(map[3].type, ==, E820_RAM);
    g_assert_cmphex(map[4].addr, ==, QNIC_BOOT_KVM_IDMAP_ADDR);
    g_assert_cmphex(map[4].addr + map[4].size, ==, 1ull << 32);
    g_assert_cmpuint(map[4].type, ==, E820_RESERVED);
    if (above) {
        g_assert_cmphex(map[5].addr, ==, 1ull << 32);
        g_assert_cmphex(map[5].size, ==, above);
        g_assert_cmpuint(map[5].type, ==, E820_RAM);
    }
}

static void test_memmap(void)
{
    QnicBootRam ram = { .below_4g = 0xe0000000ull, .above_4g = 1ull << 30 };
    QnicBootMemRange map[16];
    unsigned n = qnic_boot_memmap(&ram, map, 16);

    check_memmap(map, n, ram.below_4g, ram.above_4g);
    ram.above_4g = 0;
    ram.below_4g = 64 << 20;
    n = qnic_boot_memmap(&ram, map, 16);
    check_memmap(map, n, ram.below_4g, 0);
    /* a short output array is respected */
    g_assert_cmpuint(qnic_boot_memmap(&ram, map, 2), ==, 2);
}

static void check_pvh_loaded(Fixture *f, const QnicBootEntry *e, const PvhOpts *o,
                             const char *cmdline, unsigned nr_modules)
{
    struct qnic_hvm_start_info si;

    g_assert_cmpint(e->mode, ==, QNIC_BOOT_PVH);
    g_assert_cmphex(e->entry, ==, o->entry);
    g_assert_cmphex(e->arg, ==, QNIC_BOOT_START_INFO_ADDR);
    check_gdt(f, e, false);
    /* segment: file bytes, then zeroed bss, and nothing beyond */
    for (size_t i = 0; i < o->filesz; i++) {
        g_assert_cmpuint(f->host[o->paddr + i], ==, payload[i % sizeof(payload)]);
    }
    for (size_t i = o->filesz; i < o->memsz; i++) {
        g_assert_cmpuint(f->host[o->paddr + i], ==, 0);
    }
    g_assert_cmpuint(f->host[o->paddr + o->memsz], ==, 0xaa);

    memcpy(&si, f->host + QNIC_BOOT_START_INFO_ADDR, sizeof(si));
    g_assert_cmphex(si.magic, ==, 0x336ec578);
    g_assert_cmpuint(si.version, ==, 1);
    g_assert_cmpuint(si.flags, ==, 0);
    g_assert_cmpuint(si.rsdp_paddr, ==, 0);
    g_assert_cmphex(si.cmdline_paddr, ==, QNIC_BOOT_CMDLINE_ADDR);
    g_assert_cmpstr((char *)f->host + si.cmdline_paddr, ==, cmdline ? cmdline : "");
    g_assert_cmpuint(si.nr_modules, ==, nr_modules);
    g_assert_cmphex(si.memmap_paddr, ==, QNIC_BOOT_MEMMAP_ADDR);
    g_assert_cmpuint(si.memmap_entries, ==, 5);
    QnicBootMemRange map[5];
    for (unsigned i = 0; i < 5; i++) {
        struct qnic_hvm_memmap_entry me;
        memcpy(&me, f->host + si.memmap_paddr + i * sizeof(me), sizeof(me));
        map[i] = (QnicBootMemRange){ me.addr, me.size, me.type };
        g_assert_cmpuint(me.reserved, ==, 0);
    }
    check_memmap(map, 5, RAM_SIZE, 0);
}

static void test_pvh_elf64(Fixture *f, gconstpointer data)
{
    PvhOpts o = pvh_default();
    g_autoptr(GByteArray) img = make_pvh(&o);
    QnicBootEntry e;
    GError *err = NULL;

    g_assert_true(qnic_pvh_load(&f->ram, img->data, img->len, NULL, 0, "console=ttyS0 x=1",
                                &e, &err));
    g_assert_no_error(err);
    check_pvh_loaded(f, &e, &o, "console=ttyS0 x=1", 0);
}

static void test_pvh_elf32(Fixture *f, gconstpointer data)
{
    PvhOpts o = pvh_default();
    o.elf32 = true;
    o.paddr = 0x200000;
    o.entry = 0x200004;
    g_autoptr(GByteArray) img = make_pvh(&o);
    QnicBootEntry e;
    GError *err = NULL;

    g_assert_true(qnic_pvh_load(&f->ram, img->data, img->len, NULL, 0, NULL, &e, &err));
    g_assert_no_error(err);
    check_pvh_loaded(f, &e, &o, NULL, 0);
}

static void test_pvh_note64(Fixture *f, gconstpointer data)
{
    /* Linux writes the entry as a pointer-sized (8-byte) value. */
    PvhOpts o = pvh_default();
    o.desc_size = 8;
    g_autoptr(GByteArray) img = make_pvh(&o);
    uint64_t entry = 0;

    g_assert_true(qnic_pvh_find_entry(img->data, img->len, &entry, NULL));
    g_assert_cmphex(entry, ==, o.entry);
}

static void test_pvh_initrd(Fixture *f, gconstpointer data)
{
    PvhOpts o = pvh_default();
    g_autoptr(GByteArray) img = make_pvh(&o);
    uint8_t rd[5000];
    QnicBootEntry e;
    struct qnic_hvm_start_info si;
    struct qnic_hvm_modlist_entry mod;

    for (unsigned i = 0; i < sizeof(rd); i++) {
        rd[i] = i * 7;
    }
    g_assert_true(qnic_pvh_load(&f->ram, img->data, img->len, rd, sizeof(rd), "a", &e, NULL));
    check_pvh_loaded(f, &e, &o, "a", 1);
    memcpy(&si, f->host + QNIC_BOOT_START_INFO_ADDR, sizeof(si));
    g_assert_cmphex(si.modlist_paddr, !=, 0);
    memcpy(&mod, f->host + si.modlist_paddr, sizeof(mod));
    g_assert_cmpuint(mod.size, ==, sizeof(rd));
    g_assert_cmphex(mod.paddr & 0xfff, ==, 0);
    g_assert_cmphex(mod.paddr + mod.size, <=, RAM_SIZE);
    g_assert_cmphex(mod.paddr + mod.size, >, RAM_SIZE - 4096);
    g_assert_cmpmem(f->host + mod.paddr, sizeof(rd), rd, sizeof(rd));
}

/* A refused image must leave a message and RAM as it was. */
static void expect_pvh_error(Fixture *f, const uint8_t *img, size_t len, const char *needle)
{
    QnicBootEntry e;
    GError *err = NULL;

    g_assert_false(qnic_pvh_load(&f->ram, img, len, NULL, 0, "x", &e, &err));
    g_assert_nonnull(err);
    if (!strstr(err->message, needle)) {
        g_error("message '%s' lacks '%s'", err->message, needle);
    }
    g_error_free(err);
    for (uint64_t a = 0; a < RAM_SIZE; a += 4093) {
        g_assert_cmpuint(f->host[a], ==, 0xaa);
    }
    g_assert_cmpuint(f->host[LOAD_ADDR], ==, 0xaa);
    g_assert_cmpuint(f->host[QNIC_BOOT_START_INFO_ADDR], ==, 0xaa);
}

static void test_pvh_bad(Fixture *f, gconstpointer data)
{
    PvhOpts o = pvh_default();
    g_autoptr(GByteArray) good = make_pvh(&o);

    expect_pvh_error(f, (const uint8_t *)"#!/bin/sh\necho hi\n", 18, "not an ELF");
    expect_pvh_error(f, good->data, 3, "not an ELF");
    expect_pvh_error(f, good->data, 40, "truncated");               /* inside ehdr */
    expect_pvh_error(f, good->data, sizeof(Elf64_Ehdr) + 10, "truncated");  /* phdrs */
    expect_pvh_error(f, good->data, good->len - 1, "truncated");    /* segment data */

    o.no_note = true;
    g_autoptr(GByteArray) nonote = make_pvh(&o);
    expect_pvh_error(f, nonote->data, nonote->len, "no PVH entry note");

    o = pvh_default();
    o.paddr = RAM_SIZE - 100;                 /* runs off the end of RAM */
    o.entry = o.paddr;
    g_autoptr(GByteArray) outside = make_pvh(&o);
    expect_pvh_error(f, outside->data, outside->len, "outside guest RAM");

    o = pvh_default();
    o.paddr = 0xfffffffffffff000ull;          /* wraps around */
    g_autoptr(GByteArray) wrap = make_pvh(&o);
    expect_pvh_error(f, wrap->data, wrap->len, "outside guest RAM");

    o = pvh_default();
    o.paddr = 0x1000;                         /* over the start info */
    o.entry = 0x1000;
    g_autoptr(GByteArray) low = make_pvh(&o);
    expect_pvh_error(f, low->data, low->len, "overlaps the boot data");

    o = pvh_default();
    o.entry = RAM_SIZE + 0x1000;
    g_autoptr(GByteArray) badentry = make_pvh(&o);
    expect_pvh_error(f, badentry->data, badentry->len, "outside guest RAM");

    o = pvh_default();
    o.filesz = 64;
    o.memsz = 32;
    g_autoptr(GByteArray) fz = make_pvh(&o);
    expect_pvh_error(f, fz->data, fz->len, "file size exceeds");

    /* a note whose descsz points past its segment */
    o = pvh_default();
    g_autoptr(GByteArray) trunc_note = make_pvh(&o);
    qnic_st32(trunc_note->data + sizeof(Elf64_Ehdr) + 2 * sizeof(Elf64_Phdr) + 4, 0x10000);
    expect_pvh_error(f, trunc_note->data, trunc_note->len, "note truncated");

    /* absurd program header count */
    g_autoptr(GByteArray) many = make_pvh(&o);
    qnic_st16(many->data + offsetof(Elf64_Ehdr, e_phnum), 0xffff);
    expect_pvh_error(f, many->data, many->len, "program headers");

    /* -m too small */
    f->ram.below_4g = 1 << 20;
    expect_pvh_error(f, good->data, good->len, "too small");
    f->ram.below_4g = RAM_SIZE;

    /* initrd that does not fit */
    QnicBootEntry e;
    GError *err = NULL;
    g_assert_false(qnic_pvh_load(&f->ram, good->data, good->len, f->host, RAM_SIZE, NULL,
                                 &e, &err));
    g_assert_nonnull(strstr(err->message, "initrd"));
    g_clear_error(&err);
}

/* ---- fake bzImage ---- */

typedef struct BzOpts {
    uint16_t version;
    bool kernel64;
    bool not_high;
    uint32_t init_size;
    uint32_t initrd_addr_max;
    size_t kernel_len;
} BzOpts;

#define BZ_SETUP_SECTS 4

static GByteArray *make_bzimage(const BzOpts *o)
{
    GByteArray *b = g_byte_array_new();
    size_t setup = (BZ_SETUP_SECTS + 1) * 512;
    struct setup_header h = {
        .setup_sects = BZ_SETUP_SECTS,
        .boot_flag = 0xaa55,
        .jump = 0x66eb,         /* jmp short over the header */
        .header = 0x53726448,   /* "HdrS" */
        .version = o->version,
        .loadflags = o->not_high ? 0 : LOADED_HIGH,
        .code32_start = 0x100000,
        .cmdline_size = 255,
        .initrd_addr_max = o->initrd_addr_max ? o->initrd_addr_max : 0x37ffffff,
        .kernel_alignment = 0x200000,
        .relocatable_kernel = 1,
        .xloadflags = o->kernel64 ? XLF_KERNEL_64 : 0,
        .init_size = o->init_size,
        .vid_mode = 0xffff,
    };
    g_byte_array_set_size(b, setup + o->kernel_len);
    memset(b->data, 0, b->len);
    memcpy(b->data + 0x1f1, &h, sizeof(h));
    for (size_t i = 0; i < o->kernel_len; i++) {
        b->data[setup + i] = (uint8_t)(i ^ 0x5a);
    }
    return b;
}

static BzOpts bz_default(void)
{
    return (BzOpts){ .version = 0x020f, .kernel64 = true, .init_size = 0x10000,
                     .kernel_len = 0x3000 };
}

static void test_linux64(Fixture *f, gconstpointer data)
{
    BzOpts o = bz_default();
    g_autoptr(GByteArray) img = make_bzimage(&o);
    uint8_t rd[3000];
    QnicBootEntry e;
    GError *err = NULL;
    struct boot_params bp;
    const char *cmdline = "console=ttyS0 root=/dev/vda";

    memset(rd, 0x42, sizeof(rd));
    g_assert_true(qnic_linux_is_bzimage(img->data, img->len));
    g_assert_true(qnic_linux_load(&f->ram, img->data, img->len, rd, sizeof(rd), cmdline,
                                  &e, &err));
    g_assert_no_error(err);
    g_assert_cmpint(e.mode, ==, QNIC_BOOT_LINUX64);
    g_assert_cmphex(e.entry, ==, 0x100200);
    g_assert_cmphex(e.arg, ==, QNIC_BOOT_ZERO_PAGE_ADDR);
    g_assert_cmphex(e.cr3, ==, QNIC_BOOT_PML4_ADDR);
    check_gdt(f, &e, true);

    /* the protected-mode kernel at 1 MiB */
    for (size_t i = 0; i < o.kernel_len; i++) {
        g_assert_cmpuint(f->host[0x100000 + i], ==, (uint8_t)(i ^ 0x5a));
    }
    memcpy(&bp, f->host + QNIC_BOOT_ZERO_PAGE_ADDR, sizeof(bp));
    /* the header is copied, then the loader's fields set */
    g_assert_cmphex(bp.hdr.header, ==, 0x53726448);
    g_assert_cmphex(bp.hdr.version, ==, 0x020f);
    g_assert_cmphex(bp.hdr.boot_flag, ==, 0xaa55);
    g_assert_cmpuint(bp.hdr.setup_sects, ==, BZ_SETUP_SECTS);
    g_assert_cmphex(bp.hdr.xloadflags, ==, XLF_KERNEL_64);
    g_assert_cmphex(bp.hdr.init_size, ==, 0x10000);
    g_assert_cmphex(bp.hdr.type_of_loader, ==, 0xff);
    g_assert_cmphex(bp.hdr.cmd_line_ptr, ==, QNIC_BOOT_CMDLINE_ADDR);
    g_assert_cmpuint(bp.ext_cmd_line_ptr, ==, 0);
    g_assert_cmpstr((char *)f->host + bp.hdr.cmd_line_ptr, ==, cmdline);
    g_assert_cmpuint(bp.hdr.ramdisk_size, ==, sizeof(rd));
    g_assert_cmphex(bp.hdr.ramdisk_image & 0xfff, ==, 0);
    g_assert_cmphex(bp.hdr.ramdisk_image + sizeof(rd), <=, RAM_SIZE);
    g_assert_cmphex(bp.hdr.ramdisk_image, >=, RAM_SIZE - 8192);
    g_assert_cmpmem(f->host + bp.hdr.ramdisk_image, sizeof(rd), rd, sizeof(rd));
    g_assert_cmpuint(bp.sentinel, ==, 0);
    /* outside the header, the zero page is zero */
    g_assert_cmpuint(bp.screen_info.orig_video_isVGA, ==, 0);
    g_assert_cmpuint(bp.ext_ramdisk_image, ==, 0);

    g_assert_cmpuint(bp.e820_entries, ==, 5);
    QnicBootMemRange map[5];
    for (unsigned i = 0; i < 5; i++) {
        map[i] = (QnicBootMemRange){ bp.e820_table[i].addr, bp.e820_table[i].size,
                                     bp.e820_table[i].type };
    }
    check_memmap(map, 5, RAM_SIZE, 0);

    /* identity map of 4 GiB: PML4 -> PDPT -> 4 PDs of 2 MiB pages */
    g_assert_cmphex(qnic_ld64(f->host + QNIC_BOOT_PML4_ADDR), ==, QNIC_BOOT_PDPT_ADDR | 3);
    g_assert_cmphex(qnic_ld64(f->host + QNIC_BOOT_PML4_ADDR + 8), ==, 0);
    for (unsigned i = 0; i < 4; i++) {
        g_assert_cmphex(qnic_ld64(f->host + QNIC_BOOT_PDPT_ADDR + 8 * i), ==,
                        (QNIC_BOOT_PD_ADDR + 4096 * i) | 3);
    }
    g_assert_cmphex(qnic_ld64(f->host + QNIC_BOOT_PDPT_ADDR + 32), ==, 0);
    g_assert_cmphex(qnic_ld64(f->host + QNIC_BOOT_PD_ADDR), ==, 0x83);
    g_assert_cmphex(qnic_ld64(f->host + QNIC_BOOT_PD_ADDR + 8), ==, 0x200083);
    g_assert_cmphex(qnic_ld64(f->host + QNIC_BOOT_PD_ADDR + 4 * 4096 - 8), ==,
                    0xffe00083ull);
}

static void test_linux32(Fixture *f, gconstpointer data)
{
    BzOpts o = bz_default();
    o.version = 0x0206;         /* no xloadflags before 2.12 */
    o.kernel64 = true;
    g_autoptr(GByteArray) img = make_bzimage(&o);
    QnicBootEntry e;
    struct boot_params bp;

    g_assert_true(qnic_linux_load(&f->ram, img->data, img->len, NULL, 0, NULL, &e, NULL));
    g_assert_cmpint(e.mode, ==, QNIC_BOOT_LINUX32);
    g_assert_cmphex(e.entry, ==, 0x100000);
    g_assert_cmphex(e.arg, ==, QNIC_BOOT_ZERO_PAGE_ADDR);
    check_gdt(f, &e, false);
    memcpy(&bp, f->host + QNIC_BOOT_ZERO_PAGE_ADDR, sizeof(bp));
    g_assert_cmpuint(bp.hdr.ramdisk_image, ==, 0);
    g_assert_cmpuint(bp.hdr.ramdisk_size, ==, 0);
    g_assert_cmpstr((char *)f->host + bp.hdr.cmd_line_ptr, ==, "");
    g_assert_cmpuint(bp.hdr.type_of_loader, ==, 0xff);

    /* 2.12 without XLF_KERNEL_64: 32-bit entry */
    o = bz_default();
    o.kernel64 = false;
    g_autoptr(GByteArray) img32 = make_bzimage(&o);
    g_assert_true(qnic_linux_load(&f->ram, img32->data, img32->len, NULL, 0, NULL, &e, NULL));
    g_assert_cmpint(e.mode, ==, QNIC_BOOT_LINUX32);
}

static void expect_linux_error(Fixture *f, const GByteArray *img, size_t len,
                               const uint8_t *rd, size_t rd_len, const char *cmdline,
                               const char *needle)
{
    QnicBootEntry e;
    GError *err = NULL;

    g_assert_false(qnic_linux_load(&f->ram, img->data, len, rd, rd_len, cmdline, &e, &err));
    g_assert_nonnull(err);
    if (!strstr(err->message, needle)) {
        g_error("message '%s' lacks '%s'", err->message, needle);
    }
    g_error_free(err);
    g_assert_cmpuint(f->host[0x100000], ==, 0xaa);
    g_assert_cmpuint(f->host[QNIC_BOOT_ZERO_PAGE_ADDR + 0x1f1], ==, 0xaa);
}

static void test_linux_bad(Fixture *f, gconstpointer data)
{
    BzOpts o = bz_default();
    g_autoptr(GByteArray) good = make_bzimage(&o);

    expect_linux_error(f, good, 0x200, NULL, 0, NULL, "HdrS");
    expect_linux_error(f, good, 0x240, NULL, 0, NULL, "truncated");
    expect_linux_error(f, good, 5 * 512, NULL, 0, NULL, "truncated");

    o.version = 0x0205;
    g_autoptr(GByteArray) old = make_bzimage(&o);
    expect_linux_error(f, old, old->len, NULL, 0, NULL, "too old");

    o = bz_default();
    o.not_high = true;
    g_autoptr(GByteArray) zimage = make_bzimage(&o);
    expect_linux_error(f, zimage, zimage->len, NULL, 0, NULL, "zImage");

    g_autoptr(GByteArray) noflag = make_bzimage(&(BzOpts){ .version = 0x20f });
    noflag->data[0x1fe] = 0;
    expect_linux_error(f, noflag, noflag->len, NULL, 0, NULL, "boot flag");

    o = bz_default();
    o.init_size = RAM_SIZE;     /* -m too small for the decompressor */
    g_autoptr(GByteArray) big = make_bzimage(&o);
    expect_linux_error(f, big, big->len, NULL, 0, NULL, "-m too small");

    g_autofree char *longcmd = g_strnfill(256, 'x');   /* limit is 255 */
    expect_linux_error(f, good, good->len, NULL, 0, longcmd, "command line");

    expect_linux_error(f, good, good->len, f->host, RAM_SIZE - (1 << 20), NULL, "initrd");

    /* initrd_addr_max below the kernel: nowhere to put it */
    o = bz_default();
    o.initrd_addr_max = 0x80000;
    g_autoptr(GByteArray) lowmax = make_bzimage(&o);
    uint8_t rd[16] = { 0 };
    expect_linux_error(f, lowmax, lowmax->len, rd, sizeof(rd), NULL, "initrd");

    f->ram.below_4g = 1 << 20;
    expect_linux_error(f, good, good->len, NULL, 0, NULL, "-m too small");
    f->ram.below_4g = RAM_SIZE;
}

/* ---- qnic_boot_load: files and format detection ---- */

static char *write_temp(const void *data, size_t len)
{
    GError *err = NULL;
    char *path = NULL;
    int fd = g_file_open_tmp("qnic-boot-XXXXXX", &path, &err);

    g_assert_no_error(err);
    g_assert_cmpint(write(fd, data, len), ==, (ssize_t)len);
    close(fd);
    return path;
}

static void test_boot_load_files(Fixture *f, gconstpointer data)
{
    QnicBootEntry e;
    GError *err = NULL;

    g_assert_false(qnic_boot_load(&f->ram, "/nonexistent/guest.elf", NULL, NULL, &e, &err));
    g_assert_nonnull(strstr(err->message, "could not load kernel '/nonexistent/guest.elf'"));
    g_clear_error(&err);

    g_autofree char *junk = write_temp("just some text, not a kernel\n", 29);
    g_assert_false(qnic_boot_load(&f->ram, junk, NULL, NULL, &e, &err));
    g_assert_nonnull(strstr(err->message, "not an ELF (PVH) or bzImage"));
    g_clear_error(&err);

    PvhOpts o = pvh_default();
    g_autoptr(GByteArray) pvh = make_pvh(&o);
    g_autofree char *elf = write_temp(pvh->data, pvh->len);
    g_assert_false(qnic_boot_load(&f->ram, elf, "/nonexistent/initrd", NULL, &e, &err));
    g_assert_nonnull(strstr(err->message, "could not load initrd"));
    g_clear_error(&err);

    g_autofree char *rd = write_temp("INITRD", 6);
    g_assert_true(qnic_boot_load(&f->ram, elf, rd, "hello", &e, &err));
    g_assert_no_error(err);
    check_pvh_loaded(f, &e, &o, "hello", 1);

    BzOpts bo = bz_default();
    g_autoptr(GByteArray) bz = make_bzimage(&bo);
    g_autofree char *bzpath = write_temp(bz->data, bz->len);
    g_assert_true(qnic_boot_load(&f->ram, bzpath, NULL, NULL, &e, &err));
    g_assert_no_error(err);
    g_assert_cmpint(e.mode, ==, QNIC_BOOT_LINUX64);

    o.no_note = true;
    g_autoptr(GByteArray) nonote = make_pvh(&o);
    g_autofree char *nonote_path = write_temp(nonote->data, nonote->len);
    g_assert_false(qnic_boot_load(&f->ram, nonote_path, NULL, NULL, &e, &err));
    g_assert_nonnull(strstr(err->message, "no PVH entry note"));
    g_assert_nonnull(strstr(err->message, nonote_path));
    g_clear_error(&err);

    unlink(junk);
    unlink(elf);
    unlink(rd);
    unlink(bzpath);
    unlink(nonote_path);
}

/* The RSDP hand-over: hvm_start_info.rsdp_paddr and boot_params'
 * acpi_rsdp_addr name the board's RSDP (vmm/acpi.h) once it is written,
 * 0 before, and an address the caller gives wins. */
static uint64_t load_rsdp(Fixture *f, const char *path, bool pvh)
{
    QnicBootEntry e;
    GError *err = NULL;

    g_assert_true(qnic_boot_load(&f->ram, path, NULL, NULL, &e, &err));
    g_assert_no_error(err);
    if (pvh) {
        struct qnic_hvm_start_info si;
        memcpy(&si, f->host + e.arg, sizeof(si));
        return si.rsdp_paddr;
    }
    struct boot_params bp;
    memcpy(&bp, f->host + e.arg, sizeof(bp));
    return bp.acpi_rsdp_addr;
}

static void test_acpi_rsdp(Fixture *f, gconstpointer data)
{
    PvhOpts o = pvh_default();
    g_autoptr(GByteArray) pvh = make_pvh(&o);
    g_autofree char *elf = write_temp(pvh->data, pvh->len);
    BzOpts bo = bz_default();
    g_autoptr(GByteArray) bz = make_bzimage(&bo);
    g_autofree char *bzpath = write_temp(bz->data, bz->len);

    g_assert_cmphex(load_rsdp(f, elf, true), ==, 0);
    g_assert_cmphex(load_rsdp(f, bzpath, false), ==, 0);
    g_assert_cmpuint(qnic_acpi_write(f->host, RAM_SIZE, 1), >, 0);
    g_assert_cmphex(load_rsdp(f, elf, true), ==, QNIC_ACPI_ADDR);
    g_assert_cmphex(load_rsdp(f, bzpath, false), ==, QNIC_ACPI_ADDR);
    f->ram.rsdp_addr = 0xe0000;
    g_assert_cmphex(load_rsdp(f, elf, true), ==, 0xe0000);
    g_assert_cmphex(load_rsdp(f, bzpath, false), ==, 0xe0000);
    unlink(elf);
    unlink(bzpath);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/boot/memmap", test_memmap);
#define ADD(path, fn) g_test_add(path, Fixture, NULL, fixture_setup, fn, fixture_teardown)
    ADD("/boot/pvh/elf64", test_pvh_elf64);
    ADD("/boot/pvh/elf32", test_pvh_elf32);
    ADD("/boot/pvh/note64", test_pvh_note64);
    ADD("/boot/pvh/initrd", test_pvh_initrd);
    ADD("/boot/pvh/bad", test_pvh_bad);
    ADD("/boot/linux/64bit", test_linux64);
    ADD("/boot/linux/32bit", test_linux32);
    ADD("/boot/linux/bad", test_linux_bad);
    ADD("/boot/load-files", test_boot_load_files);
    ADD("/boot/acpi-rsdp", test_acpi_rsdp);
    return g_test_run();
}
