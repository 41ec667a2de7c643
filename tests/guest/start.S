/*
 * Boot code of the qnic test guest. A PVH loader (qnic-vmm or QEMU with
 * -kernel) jumps to pvh_entry32 in 32-bit protected mode with paging off and
 * EBX pointing at the hvm_start_info block. This file builds a GDT and
 * identity-mapped page tables for the low 4 GiB (the top GiB uncached, for
 * MMIO BARs, the IOAPIC and the local APIC), enters long mode and calls
 * guest_main(start_info). It also holds the 256 interrupt entry stubs, each
 * 16 bytes long so C can compute a stub address from a vector number, and
 * enter_user_mode(), which drops the running code to CPL 3 (see cpu.c for
 * why the guest runs its tests in user mode).
 */
#define XEN_ELFNOTE_PHYS32_ENTRY 18
#define MSR_EFER 0xc0000080
#define EFER_LME (1 << 8)
#define CR0_PE 1
#define CR0_PG (1 << 31)
#define CR0_NW (1 << 29)
#define CR0_CD (1 << 30)
#define CR4_PAE (1 << 5)
#define STACK_SIZE (64 * 1024)

    .section .note.Xen, "a"
    .p2align 2
    .long 4                 /* name size: "Xen\0" */
    .long 8                 /* descriptor size */
    .long XEN_ELFNOTE_PHYS32_ENTRY
    .asciz "Xen"
    .p2align 2
    .quad pvh_entry32       /* low 4 bytes suffice for loaders that read a u32 */

    .section .text.entry32, "ax"
    .code32
    .globl pvh_entry32
pvh_entry32:
    cli
    cld
    mov %ebx, %esi                  /* keep start_info across the bss wipe */
    lgdt gdt_desc
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    mov %eax, %fs
    mov %eax, %gs
    ljmp $0x18, $1f                 /* our own flat 32-bit code segment */
1:
    mov $_bss_start, %edi
    mov $_bss_end, %ecx
    sub %edi, %ecx
    xor %eax, %eax
    rep stosb
    mov %esi, pvh_start_info
    mov $boot_stack_top, %esp

    /* PML4[0] -> PDPT; PDPT[0..3] -> four page directories of 2 MiB pages. */
    /* Every level is user-accessible (bit 2): the tests run at CPL 3. */
    mov $boot_pdpt, %eax
    or $7, %eax
    mov %eax, boot_pml4
    mov $boot_pd, %eax
    or $7, %eax
    mov %eax, boot_pdpt
    add $4096, %eax
    mov %eax, boot_pdpt + 8
    add $4096, %eax
    mov %eax, boot_pdpt + 16
    add $4096, %eax
    mov %eax, boot_pdpt + 24
    xor %ecx, %ecx
2:
    mov %ecx, %eax
    shl $21, %eax
    or $0x87, %eax                  /* present, writable, user, 2 MiB page */
    cmp $1536, %ecx
    jb 3f
    or $0x18, %eax                  /* 3..4 GiB: MMIO, cache disabled */
3:
    mov %eax, boot_pd(,%ecx,8)
    inc %ecx
    cmp $2048, %ecx
    jne 2b

    mov %cr4, %eax
    or $CR4_PAE, %eax
    mov %eax, %cr4
    mov $boot_pml4, %eax
    mov %eax, %cr3
    mov $MSR_EFER, %ecx
    rdmsr
    or $EFER_LME, %eax
    wrmsr
    mov %cr0, %eax
    and $~(CR0_CD | CR0_NW), %eax   /* caches on, whatever the loader left */
    or $(CR0_PG | CR0_PE), %eax
    mov %eax, %cr0
    ljmp $0x08, $long_entry

    .code64
long_entry:
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    mov %eax, %fs
    mov %eax, %gs
    mov $boot_stack_top, %rsp
    xor %rbp, %rbp
    mov pvh_start_info(%rip), %edi
    call guest_main
4:
    cli
    hlt
    jmp 4b

/* enter_user_mode(): return to the caller at CPL 3 on the same stack, with
 * the caller's RFLAGS (IF clear) plus IOPL 3. The TSS (loaded by cpu.c)
 * gives interrupts their own CPL 0 stack and the I/O permission bitmap. */
    .text
    .globl enter_user_mode
enter_user_mode:
    pop %rcx                        /* return address */
    mov %rsp, %rdx
    push $0x23                      /* SS */
    push %rdx                       /* RSP */
    pushfq
    orq $0x3000, (%rsp)             /* RFLAGS.IOPL = 3 */
    push $0x2b                      /* CS */
    push %rcx                       /* RIP */
    iretq

/* Interrupt stubs: vectors that push a CPU error code skip the dummy push so
 * the frame layout is the same for all of them. */
    .text
    .p2align 4
    .globl isr_stubs
isr_stubs:
    .set vec, 0
    .rept 256
    .p2align 4
    .if (vec == 8) || ((vec >= 10) && (vec <= 14)) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
    .byte 0x90, 0x90
    .else
    push $0
    .endif
    push $vec
    jmp isr_common
    .set vec, vec + 1
    .endr

isr_common:
    push %rax
    push %rbx
    push %rcx
    push %rdx
    push %rsi
    push %rdi
    push %rbp
    push %r8
    push %r9
    push %r10
    push %r11
    push %r12
    push %r13
    push %r14
    push %r15
    mov %rsp, %rdi
    call isr_dispatch
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rbp
    pop %rdi
    pop %rsi
    pop %rdx
    pop %rcx
    pop %rbx
    pop %rax
    add $16, %rsp
    iretq

    .data
    .p2align 3
    .globl gdt
gdt:
    .quad 0
    .quad 0x00af9a000000ffff        /* 0x08: 64-bit code */
    .quad 0x00cf92000000ffff        /* 0x10: flat data */
    .quad 0x00cf9a000000ffff        /* 0x18: flat 32-bit code */
    .quad 0x00cff2000000ffff        /* 0x20: user data (selector 0x23) */
    .quad 0x00affa000000ffff        /* 0x28: user 64-bit code (selector 0x2b) */
    .globl gdt_tss
gdt_tss:
    .quad 0, 0                      /* 0x30: 64-bit TSS, filled by cpu.c */
gdt_end:
gdt_desc:
    .word gdt_end - gdt - 1
    .quad gdt
    .globl pvh_start_info
pvh_start_info:
    .long 0

    .bss
    .p2align 12
boot_pml4: .skip 4096
boot_pdpt: .skip 4096
boot_pd:   .skip 4 * 4096
boot_stack: .skip STACK_SIZE
boot_stack_top:
