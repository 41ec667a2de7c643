/*
 * qnic-vmm's KVM accelerator end to end, without the command line: each case
 * builds a tiny PVH guest (hand-assembled 32-bit code in an ELF32 with the
 * Xen entry note), runs it through qnic_accel_kvm's init / machine_ready /
 * run / cleanup with isa-debug-exit and a file-backed isa-serial, and checks
 * the exit status and what the guest printed. Every case runs in a
 * subprocess (the run state is per process) with a time limit. Skips with a
 * reason when /dev/kvm is not usable.
 */
#include "vmm/vmm.h"
#include "vmm/boot.h"
#include "vmm/pc.h"
#include "qnic/machine.h"
#include "qnic/device.h"
#include "../lib/test-backends.h"

#include <elf.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#define GUEST_BASE 0x100000u

/* cmpl $HVM_START_MAGIC,(%ebx); jne bad; print msg to 0x3f8; outb 0x10 to
 * 0xf4 (exit 33); bad: outb 0x20 to 0xf4 (exit 65). */
static const uint8_t hello_code[] = {
    0x81, 0x3b, 0x78, 0xc5, 0x6e, 0x33,     /*  0: cmpl $0x336ec578,(%ebx) */
    0x75, 0x18,                             /*  6: jne 32 */
    0xbe, 0x27, 0x00, 0x10, 0x00,           /*  8: mov $GUEST_BASE+39,%esi */
    0xac,                                   /* 13: lodsb */
    0x84, 0xc0,                             /* 14: test %al,%al */
    0x74, 0x07,                             /* 16: jz 25 */
    0x66, 0xba, 0xf8, 0x03,                 /* 18: mov $0x3f8,%dx */
    0xee,                                   /* 22: out %al,(%dx) */
    0xeb, 0xf4,                             /* 23: jmp 13 */
    0xb0, 0x10,                             /* 25: mov $0x10,%al */
    0xe6, 0xf4,                             /* 27: out %al,$0xf4 */
    0xf4,                                   /* 29: hlt */
    0xeb, 0xfd,                             /* 30: jmp 29 */
    0xb0, 0x20,                             /* 32: mov $0x20,%al */
    0xe6, 0xf4,                             /* 34: out %al,$0xf4 */
    0xf4,                                   /* 36: hlt */
    0xeb, 0xfd,                             /* 37: jmp 36 */
    'h', 'e', 'l', 'l', 'o', '\n', 0,       /* 39: msg */
};

/* A guest that spins forever with interrupts off: only a signal ends it. */
static const uint8_t spin_code[] = { 0xfa, 0xeb, 0xfe };   /* cli; jmp . */

static char *write_pvh_elf(const uint8_t *code, size_t len)
{
    const size_t note_off = sizeof(Elf32_Ehdr) + 2 * sizeof(Elf32_Phdr);
    const size_t code_off = 0x100;
    g_autofree uint8_t *img = g_malloc0(code_off + len);
    Elf32_Ehdr eh = {
        .e_ident = { ELFMAG0, ELFMAG1, ELFMAG2, ELFMAG3, ELFCLASS32, ELFDATA2LSB, EV_CURRENT },
        .e_type = ET_EXEC, .e_machine = EM_386, .e_version = EV_CURRENT,
        .e_entry = GUEST_BASE, .e_phoff = sizeof(Elf32_Ehdr), .e_ehsize = sizeof(Elf32_Ehdr),
        .e_phentsize = sizeof(Elf32_Phdr), .e_phnum = 2,
    };
    Elf32_Phdr ph[2] = {
        { .p_type = PT_LOAD, .p_offset = code_off, .p_vaddr = GUEST_BASE,
          .p_paddr = GUEST_BASE, .p_filesz = len, .p_memsz = len + 4096,
          .p_flags = PF_R | PF_W | PF_X },
        { .p_type = PT_NOTE, .p_offset = note_off, .p_filesz = 20 },
    };
    memcpy(img, &eh, sizeof(eh));
    memcpy(img + sizeof(eh), ph, sizeof(ph));
    qnic_st32(img + note_off, 4);
    qnic_st32(img + note_off + 4, 4);
    qnic_st32(img + note_off + 8, QNIC_XEN_ELFNOTE_PHYS32_ENTRY);
    memcpy(img + note_off + 12, "Xen", 4);
    qnic_st32(img + note_off + 16, GUEST_BASE);
    memcpy(img + code_off, code, len);

    char *path = NULL;
    int fd = g_file_open_tmp("qnic-guest-XXXXXX.elf", &path, NULL);
    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(write(fd, img, code_off + len), ==, (ssize_t)(code_off + len));
    close(fd);
    return path;
}

static bool kvm_usable(void)
{
    int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        return false;
    }
    close(fd);
    return true;
}

typedef struct Helper {
    int signo;
    const char *serial_path;
    bool output_before_signal;
} Helper;

/* Sends a signal to the process after 300 ms, noting whether the guest had
 * printed anything by then (-S must keep it from running). */
static void *helper_thread(void *opaque)
{
    Helper *h = opaque;
    g_autofree char *out = NULL;
    gsize len = 0;

    g_usleep(300 * 1000);
    if (h->serial_path && g_file_get_contents(h->serial_path, &out, &len, NULL)) {
        h->output_before_signal = len > 0;
    }
    kill(getpid(), h->signo);
    return NULL;
}

typedef struct Run {
    const uint8_t *code;
    size_t len;
    unsigned smp;
    bool paused;
    int helper_signal;          /* 0 = none */
    int expect_status;
    const char *expect_output;
} Run;

static void run_guest(const Run *r)
{
    g_autofree char *elf = write_pvh_elf(r->code, r->len);
    g_autofree char *serial_path = NULL;
    int fd = g_file_open_tmp("qnic-serial-XXXXXX", &serial_path, NULL);
    close(fd);
    g_autofree char *serial = g_strdup_printf("file:%s", serial_path);
    QnicVmmConfig cfg = {
        .accel = "kvm", .machine = "pc", .ram_size = 64 << 20, .smp = r->smp,
        .start_paused = r->paused, .kernel = elf, .append = "console=ttyS0",
        .serial = serial,
    };
    QnicMachineConfig mcfg = { .ram_size = cfg.ram_size };
    QnicPcBoard board = { 0 };
    void *k = NULL;
    GError *err = NULL;

    g_assert_true(qnic_accel_kvm.init(&cfg, &mcfg, &k, &err));
    g_assert_no_error(err);
    mcfg.backends = test_backends();
    QnicMachine *m = qnic_machine_new(&mcfg, &err);
    g_assert_no_error(err);
    g_assert_nonnull(qnic_device_create_str(m, "isa-debug-exit,iobase=0xf4,iosize=4", &err));
    g_assert_no_error(err);
    g_assert_true(qnic_pc_board_ready(&board, &qnic_accel_kvm, k, &cfg, m, &err));
    g_assert_true(qnic_accel_kvm.machine_ready(k, &cfg, m, board.cmdline, &err));
    g_assert_no_error(err);

    Helper h = { .signo = r->helper_signal, .serial_path = serial_path };
    pthread_t t;
    if (r->helper_signal) {
        g_assert_cmpint(pthread_create(&t, NULL, helper_thread, &h), ==, 0);
    }
    int status = qnic_accel_kvm.run(k, &cfg, m);
    if (r->helper_signal) {
        pthread_join(t, NULL);
    }
    qnic_accel_kvm.cleanup(k, m);
    qnic_pc_board_cleanup(&board);
    qnic_machine_free(m);

    g_autofree char *out = NULL;
    g_assert_true(g_file_get_contents(serial_path, &out, NULL, NULL));
    unlink(serial_path);
    unlink(elf);
    g_assert_cmpint(status, ==, r->expect_status);
    g_assert_cmpstr(out, ==, r->expect_output);
    if (r->paused) {
        g_assert_false(h.output_before_signal);
    }
}

static void in_subprocess(const char *path)
{
    if (!kvm_usable()) {
        g_test_skip("/dev/kvm is not available (needs root and KVM)");
        return;
    }
    g_test_trap_subprocess(path, 20 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_INHERIT_STDERR);
    g_test_trap_assert_passed();
}

static void test_hello(void)
{
    if (!g_test_subprocess()) {
        in_subprocess(NULL);
        return;
    }
    run_guest(&(Run){ .code = hello_code, .len = sizeof(hello_code), .smp = 1,
                      .expect_status = 33, .expect_output = "hello\n" });
}

static void test_hello_smp(void)
{
    if (!g_test_subprocess()) {
        in_subprocess(NULL);
        return;
    }
    run_guest(&(Run){ .code = hello_code, .len = sizeof(hello_code), .smp = 4,
                      .expect_status = 33, .expect_output = "hello\n" });
}

static void test_paused_until_sigcont(void)
{
    if (!g_test_subprocess()) {
        in_subprocess(NULL);
        return;
    }
    run_guest(&(Run){ .code = hello_code, .len = sizeof(hello_code), .smp = 1,
                      .paused = true, .helper_signal = SIGCONT,
                      .expect_status = 33, .expect_output = "hello\n" });
}

static void test_sigterm(void)
{
    if (!g_test_subprocess()) {
        in_subprocess(NULL);
        return;
    }
    run_guest(&(Run){ .code = spin_code, .len = sizeof(spin_code), .smp = 2,
                      .helper_signal = SIGTERM, .expect_status = 0, .expect_output = "" });
}

static void test_no_kernel(void)
{
    if (!g_test_subprocess()) {
        in_subprocess(NULL);
        return;
    }
    QnicVmmConfig cfg = { .accel = "kvm", .ram_size = 64 << 20, .smp = 1 };
    QnicMachineConfig mcfg = { .ram_size = cfg.ram_size };
    void *k = NULL;
    GError *err = NULL;

    g_assert_true(qnic_accel_kvm.init(&cfg, &mcfg, &k, &err));
    mcfg.backends = test_backends();
    QnicMachine *m = qnic_machine_new(&mcfg, &err);
    g_assert_nonnull(m);
    g_assert_false(qnic_accel_kvm.machine_ready(k, &cfg, m, NULL, &err));
    g_assert_nonnull(err);
    g_assert_nonnull(strstr(err->message, "-kernel"));
    g_clear_error(&err);
    qnic_accel_kvm.cleanup(k, m);
    qnic_machine_free(m);

    /* -m beyond the host's memory is refused before anything is built */
    cfg.ram_size = 1ull << 50;
    g_assert_false(qnic_accel_kvm.init(&cfg, &mcfg, &k, &err));
    g_assert_nonnull(strstr(err->message, "exceeds the host"));
    g_clear_error(&err);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/boot-kvm/hello", test_hello);
    g_test_add_func("/boot-kvm/hello-smp", test_hello_smp);
    g_test_add_func("/boot-kvm/paused-until-sigcont", test_paused_until_sigcont);
    g_test_add_func("/boot-kvm/sigterm", test_sigterm);
    g_test_add_func("/boot-kvm/errors", test_no_kernel);
    return g_test_run();
}
