/*
 * What both kernel loaders share: the guest memory map (the same holes as
 * QEMU's pc machine, plus KVM's TSS/identity-map pages), the boot GDT, the
 * identity page tables for a 64-bit entry, and qnic_boot_load(), which reads
 * the -kernel/-initrd files and picks the loader from the image's magic.
 */
#include "vmm/boot.h"
#include "vmm/acpi.h"

#include <asm/e820.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/stat.h>

static unsigned memmap_add(QnicBootMemRange *out, unsigned n, unsigned max,
                           uint64_t addr, uint64_t size, uint32_t type)
{
    if (size == 0 || n >= max) {
        return n;
    }
    out[n].addr = addr;
    out[n].size = size;
    out[n].type = type;
    return n + 1;
}

unsigned qnic_boot_memmap(const QnicBootRam *ram, QnicBootMemRange *out, unsigned max)
{
    unsigned n = 0;
    uint64_t low_end = MIN(ram->below_4g, QNIC_BOOT_EBDA_START);

    n = memmap_add(out, n, max, 0, low_end, E820_RAM);
    /* The EBDA and the BIOS area are holes on a PC even without a BIOS:
     * guests (Linux's early code) look for tables there. */
    n = memmap_add(out, n, max, QNIC_BOOT_EBDA_START, 0xa0000 - QNIC_BOOT_EBDA_START,
                   E820_RESERVED);
    n = memmap_add(out, n, max, 0xf0000, 0x10000, E820_RESERVED);
    if (ram->below_4g > QNIC_BOOT_HIGH_START) {
        n = memmap_add(out, n, max, QNIC_BOOT_HIGH_START,
                       ram->below_4g - QNIC_BOOT_HIGH_START, E820_RAM);
    }
    /* KVM needs these pages (TSS for real mode, EPT identity map) to stay
     * out of the guest's RAM. */
    n = memmap_add(out, n, max, QNIC_BOOT_KVM_IDMAP_ADDR,
                   (1ull << 32) - QNIC_BOOT_KVM_IDMAP_ADDR, E820_RESERVED);
    n = memmap_add(out, n, max, 1ull << 32, ram->above_4g, E820_RAM);
    return n;
}

void qnic_boot_write_gdt(const QnicBootRam *ram, bool long_mode, QnicBootEntry *entry)
{
    uint8_t *gdt = ram->host + QNIC_BOOT_GDT_ADDR;

    /* Flat 4 GiB segments: G=1, P=1, DPL 0. Code is execute/read (type 0xb)
     * with D=1 (32-bit) or L=1 (64-bit); data is read/write (type 3). The
     * TSS descriptor is a busy 32-bit TSS at 0 with limit 0x67, which is
     * what the PVH spec asks TR to hold. */
    qnic_st64(gdt + 0x00, 0);
    qnic_st64(gdt + 0x08, 0);
    qnic_st64(gdt + QNIC_BOOT_CS, long_mode ? 0x00af9b000000ffffull : 0x00cf9b000000ffffull);
    qnic_st64(gdt + QNIC_BOOT_DS, 0x00cf93000000ffffull);
    qnic_st64(gdt + QNIC_BOOT_TSS, 0x00008b0000000067ull);
    entry->gdt_addr = QNIC_BOOT_GDT_ADDR;
    entry->gdt_limit = QNIC_BOOT_TSS + 8 - 1;
}

void qnic_boot_write_page_tables(const QnicBootRam *ram)
{
    uint8_t *pml4 = ram->host + QNIC_BOOT_PML4_ADDR;
    uint8_t *pdpt = ram->host + QNIC_BOOT_PDPT_ADDR;
    uint8_t *pd = ram->host + QNIC_BOOT_PD_ADDR;

    memset(pml4, 0, 4096);
    memset(pdpt, 0, 4096);
    /* present | writable */
    qnic_st64(pml4, QNIC_BOOT_PDPT_ADDR | 3);
    for (unsigned i = 0; i < 4; i++) {
        qnic_st64(pdpt + i * 8, (QNIC_BOOT_PD_ADDR + i * 4096) | 3);
        for (unsigned j = 0; j < 512; j++) {
            uint64_t addr = ((uint64_t)i * 512 + j) << 21;
            /* present | writable | 2 MiB page */
            qnic_st64(pd + i * 4096 + j * 8, addr | 0x83);
        }
    }
}

/* The whole file, or an error naming why not (errno words, no path: the
 * caller's prefix names the file). */
static bool read_file(const char *path, gchar **data, gsize *len, GError **errp)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;

    if (fd < 0) {
        qnic_error_setg(errp, "%s", g_strerror(errno));
        return false;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        qnic_error_setg(errp, "not a regular file");
        close(fd);
        return false;
    }
    if ((uint64_t)st.st_size > QNIC_BOOT_MAX_FILE) {
        qnic_error_setg(errp, "file of %lld bytes is larger than any guest RAM below 4 GiB",
                        (long long)st.st_size);
        close(fd);
        return false;
    }
    gchar *buf = g_malloc(st.st_size + 1);
    gsize got = 0;
    while (got < (gsize)st.st_size) {
        ssize_t n = read(fd, buf + got, st.st_size - got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            qnic_error_setg(errp, "%s", n < 0 ? g_strerror(errno) : "file shrank while read");
            g_free(buf);
            close(fd);
            return false;
        }
        got += n;
    }
    close(fd);
    buf[got] = 0;
    *data = buf;
    *len = got;
    return true;
}

bool qnic_boot_load(const QnicBootRam *ram_in, const char *kernel, const char *initrd,
                    const char *cmdline, QnicBootEntry *entry, GError **errp)
{
    g_autofree gchar *img = NULL, *rd = NULL;
    gsize len = 0, rd_len = 0;
    QnicBootRam view = *ram_in;
    const QnicBootRam *ram = &view;

    if (!view.rsdp_addr) {
        view.rsdp_addr = qnic_acpi_rsdp_addr(view.host, view.below_4g);
    }

    if (!read_file(kernel, &img, &len, errp)) {
        qnic_error_prefix(errp, "could not load kernel '%s': ", kernel);
        return false;
    }
    if (initrd && !read_file(initrd, &rd, &rd_len, errp)) {
        qnic_error_prefix(errp, "could not load initrd '%s': ", initrd);
        return false;
    }
    bool ok;
    if (len >= 4 && memcmp(img, "\x7f" "ELF", 4) == 0) {
        ok = qnic_pvh_load(ram, (const uint8_t *)img, len, (const uint8_t *)rd, rd_len,
                           cmdline, entry, errp);
    } else if (qnic_linux_is_bzimage((const uint8_t *)img, len)) {
        ok = qnic_linux_load(ram, (const uint8_t *)img, len, (const uint8_t *)rd, rd_len,
                             cmdline, entry, errp);
    } else {
        qnic_error_setg(errp, "not an ELF (PVH) or bzImage kernel");
        ok = false;
    }
    if (!ok) {
        qnic_error_prefix(errp, "could not load kernel '%s': ", kernel);
    }
    return ok;
}
