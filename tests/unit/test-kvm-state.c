/*
 * The KVM part of migration (vmm/kvm-state.c) against the real kernel: a
 * tiny real-mode guest that counts in EAX and reports every count on a
 * port runs in one VM, its vCPU and VM state is saved (with MSRs, FPU,
 * LAPIC, PIC, PIT set to values a fresh VM does not have), loaded into a
 * second VM with a copy of its RAM, and must go on counting where it
 * stopped, with a save of the second VM equal to the first field by field
 * (only what time moves is left out). Streams that are cut, flipped,
 * meant for another VM shape or carry a value qnic-vmm refuses (an MSR
 * outside its list, an IOAPIC elsewhere, an unknown MP state) must be
 * refused before any change reaches the vCPU. Then the dirty log: pages
 * the guest writes, and only those, show up in the bitmap.
 *
 * Needs /dev/kvm: skips with the reason without it (the functional suite
 * runs it under scripts/nested-kvm.sh, see test-kvm-state-nested.sh).
 */
#include "vmm/kvm-state.h"
#include "vmm/migration.h"
#include "qnic/state.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <linux/kvm.h>
#include <zlib.h>

#define RAM_SIZE   (2u << 20)
#define CODE_ADDR  0x1000u
#define DATA_ADDR  0x8000u
#define COUNT_PORT 0x10
#define MSR_SYSENTER_CS 0x174
#define MSR_STAR   0xc0000081u

/* Real mode, CS = 0:
 *   1000: inc eax            66 40
 *   1002: mov [0x8000], eax  66 a3 00 80
 *   1006: out 0x10, al       e6 10
 *   1008: jmp 1000           eb f6 */
static const uint8_t count_code[] = {
    0x66, 0x40, 0x66, 0xa3, 0x00, 0x80, 0xe6, COUNT_PORT, 0xeb, 0xf6,
};

typedef struct Vm {
    int kvm, vm, vcpu[2];
    unsigned nr_vcpus;
    struct kvm_run *run[2];
    uint8_t *ram;
} Vm;

static int kvm_fd = -1;

static void vm_new(Vm *v, unsigned nr_vcpus)
{
    memset(v, 0, sizeof(*v));
    v->kvm = kvm_fd;
    v->nr_vcpus = nr_vcpus;
    v->vm = ioctl(kvm_fd, KVM_CREATE_VM, 0);
    g_assert_cmpint(v->vm, >=, 0);
    g_assert_cmpint(ioctl(v->vm, KVM_SET_TSS_ADDR, 0xfffbd000ul), ==, 0);
    g_assert_cmpint(ioctl(v->vm, KVM_CREATE_IRQCHIP, 0), ==, 0);
    struct kvm_pit_config pit = { 0 };
    g_assert_cmpint(ioctl(v->vm, KVM_CREATE_PIT2, &pit), ==, 0);
    v->ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    g_assert_true(v->ram != MAP_FAILED);
    struct kvm_userspace_memory_region mr = {
        .slot = 0, .memory_size = RAM_SIZE, .userspace_addr = (uintptr_t)v->ram,
    };
    g_assert_cmpint(ioctl(v->vm, KVM_SET_USER_MEMORY_REGION, &mr), ==, 0);
    int run_size = ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
    for (unsigned i = 0; i < nr_vcpus; i++) {
        v->vcpu[i] = ioctl(v->vm, KVM_CREATE_VCPU, (unsigned long)i);
        g_assert_cmpint(v->vcpu[i], >=, 0);
        v->run[i] = mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->vcpu[i], 0);
        g_assert_true(v->run[i] != MAP_FAILED);
    }
}

static void vm_free(Vm *v)
{
    for (unsigned i = 0; i < v->nr_vcpus; i++) {
        close(v->vcpu[i]);
    }
    close(v->vm);
    munmap(v->ram, RAM_SIZE);
}

static QnicKvmFds vm_fds(const Vm *v)
{
    return (QnicKvmFds){ .kvm_fd = v->kvm, .vm_fd = v->vm, .nr_vcpus = v->nr_vcpus,
                         .vcpu_fds = v->vcpu };
}

/* vCPU 0 at the counting loop with EAX = 0. */
static void vm_boot(Vm *v)
{
    struct kvm_sregs sr;
    memcpy(v->ram + CODE_ADDR, count_code, sizeof(count_code));
    g_assert_cmpint(ioctl(v->vcpu[0], KVM_GET_SREGS, &sr), ==, 0);
    sr.cs.base = 0;
    sr.cs.selector = 0;
    g_assert_cmpint(ioctl(v->vcpu[0], KVM_SET_SREGS, &sr), ==, 0);
    struct kvm_regs regs = { .rip = CODE_ADDR, .rflags = 2 };
    g_assert_cmpint(ioctl(v->vcpu[0], KVM_SET_REGS, &regs), ==, 0);
}

/* Run vCPU 0 for n port exits; returns the last count it reported. */
static uint8_t vm_count(Vm *v, unsigned n)
{
    uint8_t last = 0;
    for (unsigned i = 0; i < n; i++) {
        int r;
        do {
            r = ioctl(v->vcpu[0], KVM_RUN, 0);
        } while (r < 0 && errno == EINTR);
        g_assert_cmpint(r, ==, 0);
        struct kvm_run *run = v->run[0];
        g_assert_cmpuint(run->exit_reason, ==, KVM_EXIT_IO);
        g_assert_cmpuint(run->io.port, ==, COUNT_PORT);
        last = *((uint8_t *)run + run->io.data_offset);
    }
    return last;
}

/* State a fresh VM does not have, in every part the stream carries. */
static void vm_decorate(Vm *v)
{
    struct {
        struct kvm_msrs h;
        struct kvm_msr_entry e[2];
    } msrs = { .h.nmsrs = 2, .e = { { .index = MSR_SYSENTER_CS, .data = 0x10 },
                                     { .index = MSR_STAR, .data = 0x0023001000000000ull } } };
    g_assert_cmpint(ioctl(v->vcpu[0], KVM_SET_MSRS, &msrs), ==, 2);
    struct kvm_fpu fpu;
    g_assert_cmpint(ioctl(v->vcpu[0], KVM_GET_FPU, &fpu), ==, 0);
    fpu.xmm[3][5] = 0xa5;
    fpu.fcw = 0x27f;
    g_assert_cmpint(ioctl(v->vcpu[0], KVM_SET_FPU, &fpu), ==, 0);
    struct kvm_lapic_state lapic;
    g_assert_cmpint(ioctl(v->vcpu[0], KVM_GET_LAPIC, &lapic), ==, 0);
    lapic.regs[0x80] = 0x20;            /* TPR */
    g_assert_cmpint(ioctl(v->vcpu[0], KVM_SET_LAPIC, &lapic), ==, 0);
    struct kvm_irqchip chip = { .chip_id = KVM_IRQCHIP_PIC_MASTER };
    g_assert_cmpint(ioctl(v->vm, KVM_GET_IRQCHIP, &chip), ==, 0);
    chip.chip.pic.imr = 0xb8;
    chip.chip.pic.irq_base = 0x20;
    g_assert_cmpint(ioctl(v->vm, KVM_SET_IRQCHIP, &chip), ==, 0);
    struct kvm_pit_state2 pit;
    g_assert_cmpint(ioctl(v->vm, KVM_GET_PIT2, &pit), ==, 0);
    pit.channels[2].count = 0x1234;
    pit.channels[2].mode = 3;
    pit.channels[2].rw_mode = 3;
    g_assert_cmpint(ioctl(v->vm, KVM_SET_PIT2, &pit), ==, 0);
}

static GByteArray *vm_save(Vm *v)
{
    /* finish the last OUT, as qnic-vmm's parked vCPUs do */
    for (unsigned i = 0; i < v->nr_vcpus; i++) {
        v->run[i]->immediate_exit = 1;
        g_assert_cmpint(ioctl(v->vcpu[i], KVM_RUN, 0), ==, -1);
        g_assert_cmpint(errno, ==, EINTR);
        v->run[i]->immediate_exit = 0;
    }
    GByteArray *out = g_byte_array_new();
    QnicKvmFds fds = vm_fds(v);
    GError *err = NULL;
    g_assert_true(qnic_kvm_state_save(&fds, out, &err));
    g_assert_no_error(err);
    return out;
}

static bool vm_load(Vm *v, const uint8_t *buf, size_t len, GError **errp)
{
    QnicKvmFds fds = vm_fds(v);
    QnicStateReader r;
    qnic_state_reader_init(&r, buf, len);
    return qnic_kvm_state_load(&fds, &r, errp) && qnic_state_reader_done(&r, errp);
}

/* The dump without what moves with time: the clock, TSC-derived MSRs,
 * the PIT's load times. */
static char *stable_dump(GByteArray *s)
{
    GError *err = NULL;
    g_autofree char *d = qnic_state_dump(s->data, s->len, &err);
    g_assert_no_error(err);
    g_auto(GStrv) lines = g_strsplit(d, "\n", -1);
    GString *out = g_string_new(NULL);
    bool skip_data = false;
    for (char **l = lines; *l; l++) {
        if (strstr(*l, "count_load_time") || g_str_has_prefix(*l, "kvm-vm.clock")) {
            continue;
        }
        /* msrs[i].index = 16 (IA32_TSC) or 59 (TSC_ADJUST): drop its data */
        if (strstr(*l, ".index = 16") || strstr(*l, ".index = 59")) {
            skip_data = true;
            continue;
        }
        if (skip_data && strstr(*l, ".data = ")) {
            skip_data = false;
            continue;
        }
        g_string_append_printf(out, "%s\n", *l);
    }
    return g_string_free(out, FALSE);
}

static void test_round_trip(void)
{
    Vm a, b;

    vm_new(&a, 1);
    vm_boot(&a);
    vm_decorate(&a);
    g_assert_cmpuint(vm_count(&a, 300), ==, 300 % 256);
    g_autoptr(GByteArray) sa = vm_save(&a);

    vm_new(&b, 1);
    memcpy(b.ram, a.ram, RAM_SIZE);
    GError *err = NULL;
    vm_load(&b, sa->data, sa->len, &err);
    g_assert_no_error(err);
    g_autoptr(GByteArray) sb = vm_save(&b);
    g_autofree char *da = stable_dump(sa);
    g_autofree char *db = stable_dump(sb);
    g_assert_cmpstr(da, ==, db);
    g_assert_nonnull(strstr(da, "kvm-vm.pic[0].imr = 184"));
    g_assert_nonnull(strstr(da, "kvm-vm.pit[2].count = 4660"));

    /* B goes on from 300, A too: both at 310 after ten more. */
    g_assert_cmpuint(vm_count(&b, 10), ==, 310 % 256);
    uint32_t mem;
    memcpy(&mem, b.ram + DATA_ADDR, 4);
    g_assert_cmpuint(mem, ==, 310);
    g_assert_cmpuint(vm_count(&a, 10), ==, 310 % 256);
    vm_free(&a);
    vm_free(&b);
}

/* Rewrite the first uint record NAME after the record AFTER (NULL: from
 * the start) in section SECTION of s, and fix the section's CRC. */
static void patch_uint(GByteArray *s, const char *section, const char *after, const char *name,
                       uint64_t value)
{
    size_t nl = strlen(section), pos = 0;
    /* sections: 'S' len name version:u32 body_len:u32 body crc:u32 */
    for (;;) {
        g_assert_cmpuint(pos + 2 + nl, <=, s->len);
        uint32_t body_len;
        size_t name_len = s->data[pos + 1];
        memcpy(&body_len, s->data + pos + 2 + name_len + 4, 4);
        size_t body = pos + 2 + name_len + 8, end = body + body_len;
        if (name_len == nl && memcmp(s->data + pos + 2, section, nl) == 0) {
            size_t at = body;
            if (after) {
                at = (uint8_t *)memmem(s->data + body, body_len, after, strlen(after)) - s->data;
            }
            uint8_t rec[64] = { 'u', (uint8_t)strlen(name) };
            memcpy(rec + 2, name, strlen(name));
            uint8_t *p = memmem(s->data + at, end - at, rec, 2 + strlen(name));
            g_assert_nonnull(p);
            p += 2 + strlen(name);
            unsigned size = p[0];
            for (unsigned i = 0; i < size; i++) {
                p[5 + i] = (uint8_t)(value >> (8 * i));
            }
            uint32_t crc = crc32(0, s->data + pos, end - pos);
            memcpy(s->data + end, &crc, 4);
            return;
        }
        pos = end + 4;
    }
}

static void assert_refused(Vm *v, GByteArray *s, const char *what)
{
    struct kvm_regs before, after;
    GError *err = NULL;

    g_assert_cmpint(ioctl(v->vcpu[0], KVM_GET_REGS, &before), ==, 0);
    g_assert_false(vm_load(v, s->data, s->len, &err));
    g_assert_nonnull(err);
    if (g_test_verbose()) {
        g_printerr("refused: %s\n", err->message);
    }
    g_assert_nonnull(strstr(err->message, what));
    g_error_free(err);
    g_assert_cmpint(ioctl(v->vcpu[0], KVM_GET_REGS, &after), ==, 0);
    g_assert_cmpmem(&before, sizeof(before), &after, sizeof(after));
}

static void test_hostile(void)
{
    Vm a, b, two;

    vm_new(&a, 1);
    vm_boot(&a);
    vm_count(&a, 5);
    g_autoptr(GByteArray) good = vm_save(&a);
    vm_new(&b, 1);
    vm_new(&two, 2);

    assert_refused(&two, good, "vCPUs");
    g_autoptr(GByteArray) cut = g_byte_array_sized_new(good->len);
    g_byte_array_append(cut, good->data, good->len - 1);
    assert_refused(&b, cut, "kvm-vcpu");
    g_autoptr(GByteArray) flip = g_byte_array_sized_new(good->len);
    g_byte_array_append(flip, good->data, good->len);
    flip->data[good->len / 2] ^= 0x10;
    assert_refused(&b, flip, "kvm-vcpu");

    static const struct {
        const char *section, *after, *name;
        uint64_t value;
        const char *what;
    } bad[] = {
        { "kvm-vm", NULL, "ioapic_base", 0xfee00000, "ioapic_base" },
        { "kvm-vm", NULL, "irq_base", 0x21, "vector base" },
        { "kvm-vcpu", NULL, "mp_state", 9, "mp_state" },
        { "kvm-vcpu", NULL, "index", 1, "index" },
        { "kvm-vcpu", "msrs", "index", 0x1b, "MSR 0x1b" },
        { "kvm-vcpu", NULL, "dr7", 1ull << 40, "DR6/DR7" },
        { "kvm-vcpu", NULL, "cr8", 16, "cr8" },
    };
    for (unsigned i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autoptr(GByteArray) s = g_byte_array_sized_new(good->len);
        g_byte_array_append(s, good->data, good->len);
        patch_uint(s, bad[i].section, bad[i].after, bad[i].name, bad[i].value);
        assert_refused(&b, s, bad[i].what);
    }
    /* What the kernel alone judges is its error, named: CR0.PG without PE. */
    g_autoptr(GByteArray) s = g_byte_array_sized_new(good->len);
    g_byte_array_append(s, good->data, good->len);
    patch_uint(s, "kvm-vcpu", NULL, "cr0", 0x80000000ull);
    GError *err = NULL;
    g_assert_false(vm_load(&b, s->data, s->len, &err));
    g_assert_nonnull(strstr(err->message, "vCPU 0: KVM_SET_SREGS failed"));
    g_error_free(err);
    vm_free(&a);
    vm_free(&b);
    vm_free(&two);
}

static void test_dirty_log(void)
{
    Vm a;
    GError *err = NULL;

    vm_new(&a, 1);
    vm_boot(&a);
    QnicKvmLogSlot ls = { .slot = 0, .gpa = 0, .size = RAM_SIZE, .host = a.ram, .ram_page = 0 };
    bool manual = qnic_kvm_dirty_log_manual(a.kvm, a.vm);
    g_test_message("KVM_CLEAR_DIRTY_LOG: %s", manual ? "yes" : "no");
    g_assert_true(qnic_kvm_dirty_log_set(a.vm, &ls, true, &err));
    g_assert_no_error(err);
    const size_t words = RAM_SIZE / QNIC_KVM_DIRTY_PAGE / 64;
    uint64_t bitmap[words], scratch[words];

    memset(bitmap, 0, sizeof(bitmap));
    g_assert_true(qnic_kvm_dirty_log_sync(a.vm, manual, &ls, bitmap, scratch, &err));
    vm_count(&a, 3);
    memset(bitmap, 0, sizeof(bitmap));
    g_assert_true(qnic_kvm_dirty_log_sync(a.vm, manual, &ls, bitmap, scratch, &err));
    g_assert_no_error(err);
    /* the guest wrote the data page (8); the only other page it touched,
     * the code (1), may count as written too (nested KVM on TCG reports
     * fetches as writes), nothing else may */
    const uint64_t data_bit = 1ull << (DATA_ADDR / 4096), code_bit = 1ull << (CODE_ADDR / 4096);
    g_assert_cmphex(bitmap[0] & data_bit, ==, data_bit);
    g_assert_cmphex(bitmap[0] & ~(data_bit | code_bit), ==, 0);
    for (unsigned w = 1; w < words; w++) {
        g_assert_cmphex(bitmap[w], ==, 0);
    }
    /* ... and nothing since */
    memset(bitmap, 0, sizeof(bitmap));
    g_assert_true(qnic_kvm_dirty_log_sync(a.vm, manual, &ls, bitmap, scratch, &err));
    g_assert_cmphex(bitmap[0], ==, 0);
    /* a slot at RAM page 64 lands there */
    vm_count(&a, 1);
    QnicKvmLogSlot high = ls;
    high.ram_page = 64;
    memset(bitmap, 0, sizeof(bitmap));
    g_assert_true(qnic_kvm_dirty_log_sync(a.vm, manual, &high, bitmap, scratch, &err));
    g_assert_cmphex(bitmap[0], ==, 0);
    g_assert_cmphex(bitmap[1] & data_bit, ==, data_bit);
    g_assert_cmphex(bitmap[1] & ~(data_bit | code_bit), ==, 0);
    g_assert_true(qnic_kvm_dirty_log_set(a.vm, &ls, false, &err));
    vm_free(&a);
}

static void no_kvm(void)
{
    g_test_skip("/dev/kvm is not available (the functional suite's kvm-state-nested "
                "runs this under scripts/nested-kvm.sh)");
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    g_test_add_func("/kvm-state/round-trip", kvm_fd >= 0 ? test_round_trip : no_kvm);
    g_test_add_func("/kvm-state/hostile", kvm_fd >= 0 ? test_hostile : no_kvm);
    g_test_add_func("/kvm-state/dirty-log", kvm_fd >= 0 ? test_dirty_log : no_kvm);
    return g_test_run();
}
