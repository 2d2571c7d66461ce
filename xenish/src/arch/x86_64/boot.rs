//! The multiboot2 header and the 32-bit → 64-bit boot trampoline.
//!
//! GRUB enters `_start32` in 32-bit protected mode with paging off,
//! `eax` = the multiboot2 magic and `ebx` = the physical address of the boot
//! information. The trampoline builds boot page tables (identity map and
//! direct map of the first 4 GiB, the image at `XEN_VIRT_START`), enables long
//! mode and jumps to [`super::start::xenish_start`] on the boot stack in the
//! hypervisor hole (CPU 0's stack block in [`super::percpu`]). Everything
//! here is position-dependent machine code that runs before Rust can.

use core::arch::global_asm;

global_asm!(
    r#"
    .section .multiboot2, "a"
    .balign 8
mb2_header:
    .long 0xe85250d6                /* magic */
    .long 0                         /* architecture: i386 protected mode */
    .long mb2_header_end - mb2_header
    .long -(0xe85250d6 + (mb2_header_end - mb2_header))
    /* entry address tag: GRUB jumps here, whatever the ELF entry says */
    .balign 8
    .word 3, 0
    .long 12
    .long _start32
    /* end tag */
    .balign 8
    .word 0, 0
    .long 8
mb2_header_end:

    .section .boot.text, "ax"
    .code32
    .globl _start32
_start32:
    cli
    cld
    mov %eax, %edi                  /* multiboot2 magic */
    mov %ebx, %esi                  /* boot information (physical) */

    /* Long mode available? */
    mov $0x80000000, %eax
    cpuid
    cmp $0x80000001, %eax
    jb no_long_mode
    mov $0x80000001, %eax
    cpuid
    bt $29, %edx
    jnc no_long_mode
    mov %edx, %ebp                  /* remember NX support (bit 20) */

    /* PD for the first 4 GiB: 2048 2 MiB pages, identity. */
    mov $boot_pd, %ebx
    xor %ecx, %ecx
1:  mov %ecx, %eax
    shl $21, %eax
    or $0x83, %eax                  /* P | RW | PS */
    mov %ecx, %edx
    shr $11, %edx                   /* bits 32+ of (i << 21) */
    mov %eax, (%ebx, %ecx, 8)
    mov %edx, 4(%ebx, %ecx, 8)
    inc %ecx
    cmp $2048, %ecx
    jb 1b

    /* PDPT: four entries, one per GiB. */
    mov $boot_pdpt_low, %ebx
    xor %ecx, %ecx
1:  mov %ecx, %eax
    shl $12, %eax
    add $boot_pd, %eax
    or $0x3, %eax
    mov %eax, (%ebx, %ecx, 8)
    inc %ecx
    cmp $4, %ecx
    jb 1b

    /* Image: XEN_VIRT_START (L4 261, L3 322, L2 0..511) maps physical 0..1 GiB */
    mov $boot_pd_xen, %ebx
    xor %ecx, %ecx
1:  mov %ecx, %eax
    shl $21, %eax
    or $0x83, %eax
    mov %eax, (%ebx, %ecx, 8)
    inc %ecx
    cmp $512, %ecx
    jb 1b
    mov $boot_pd_xen + 0x3, %eax
    mov %eax, boot_pdpt_xen + 322 * 8

    mov $boot_pdpt_low + 0x3, %eax
    mov %eax, boot_pml4             /* identity, for the switch */
    mov %eax, boot_pml4 + 262 * 8   /* direct map 0xffff830000000000 */
    mov $boot_pdpt_xen + 0x3, %eax
    mov %eax, boot_pml4 + 261 * 8

    mov $boot_pml4, %eax
    mov %eax, %cr3
    mov %cr4, %eax
    or $0x20, %eax                  /* PAE */
    mov %eax, %cr4
    mov $0xc0000080, %ecx           /* EFER */
    rdmsr
    or $0x100, %eax                 /* LME */
    bt $20, %ebp
    jnc 2f
    or $0x800, %eax                 /* NXE, when the CPU has NX */
2:  wrmsr
    mov %cr0, %eax
    or $0x80010001, %eax            /* PG | WP | PE */
    mov %eax, %cr0

    lgdt boot_gdtr
    ljmp $0x08, $start64_low

no_long_mode:
    mov $no_lm_msg, %ebx
1:  movb (%ebx), %al
    test %al, %al
    jz 3f
    mov $0x3fd, %dx
2:  inb %dx, %al
    test $0x20, %al
    jz 2b
    movb (%ebx), %al
    mov $0x3f8, %dx
    outb %al, %dx
    inc %ebx
    jmp 1b
3:  hlt
    jmp 3b

    .code64
start64_low:
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    xor %eax, %eax
    mov %eax, %fs
    mov %eax, %gs
    movabs $CPU_STACKS + {stack_top}, %rsp
    xor %ebp, %ebp
    movabs ${start}, %rax
    call *%rax
4:  hlt
    jmp 4b

    .section .boot.data, "aw"
    .balign 16
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff        /* 0x08: 64-bit code, DPL0 */
    .quad 0x00cf92000000ffff        /* 0x10: data, DPL0 */
boot_gdt_end:
boot_gdtr:
    .word boot_gdt_end - boot_gdt - 1
    .long boot_gdt
no_lm_msg:
    .asciz "xenish: this CPU has no long mode; halting\r\n"
    .balign 4096
boot_pml4:
    .fill 512, 8, 0
boot_pdpt_low:
    .fill 512, 8, 0
boot_pdpt_xen:
    .fill 512, 8, 0
boot_pd_xen:
    .fill 512, 8, 0
boot_pd:
    .fill 2048, 8, 0
"#,
    stack_top = const super::percpu::STACK_TOP_OFFSET,
    start = sym super::start::xenish_start,
    options(att_syntax)
);
