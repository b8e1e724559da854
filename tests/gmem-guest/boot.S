/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * gmem-guest's entry: multiboot starts it in 32-bit protected mode with
 * paging off; it identity-maps the first 8 GiB with 2 MiB pages
 * (RAM, the PCI hole and the pc-dimms above 4 GiB), enters
 * long mode and calls guest_main().  Exceptions land in guest_exception(),
 * which reports them and exits: a test kernel must never reset silently.
 */

#define MB_MAGIC        0x1badb002
#define MB_FLAGS        0

#define CR0_PE          (1 << 0)
#define CR0_PG          (1 << 31)
#define CR4_PAE         (1 << 5)
#define MSR_EFER        0xc0000080
#define EFER_LME        (1 << 8)
#define PTE_P_W         0x3
#define PDE_2M          0x83            /* present, writable, 2 MiB page */
#define VECTORS         0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, \
                        16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, \
                        29, 30, 31

        .section .multiboot, "a"
        .balign 4
        .long MB_MAGIC, MB_FLAGS, -(MB_MAGIC + MB_FLAGS)

        .section .text.boot, "ax"
        .code32
        .globl _start
_start:
        cli
        mov     $boot_stack_top, %esp
        mov     $pml4, %eax
        mov     %eax, %cr3
        mov     %cr4, %eax
        or      $CR4_PAE, %eax
        mov     %eax, %cr4
        mov     $MSR_EFER, %ecx
        rdmsr
        or      $EFER_LME, %eax
        wrmsr
        mov     %cr0, %eax
        or      $(CR0_PE | CR0_PG), %eax
        mov     %eax, %cr0
        lgdt    gdt_desc
        ljmp    $0x08, $long_mode

        .code64
long_mode:
        mov     $0x10, %ax
        mov     %ax, %ds
        mov     %ax, %es
        mov     %ax, %ss
        xor     %ax, %ax
        mov     %ax, %fs
        mov     %ax, %gs
        mov     $boot_stack_top, %rsp
        call    idt_install
        call    guest_main
1:      hlt
        jmp     1b

/* One stub per vector: the CPU pushes an error code for some of them. */
.macro vector n
vector_\n:
.if (\n == 8) || ((\n >= 10) && (\n <= 14)) || (\n == 17) || (\n == 21) || (\n == 29) || (\n == 30)
.else
        pushq   $0
.endif
        pushq   $\n
        jmp     exception_common
.endm

exception_common:
        mov     (%rsp), %rdi            /* vector */
        mov     8(%rsp), %rsi           /* error code */
        mov     16(%rsp), %rdx          /* rip */
        and     $~0xf, %rsp
        call    guest_exception         /* does not return */

.irp n, VECTORS
        vector \n
.endr

/* Fill the IDT's 32 exception gates (interrupts stay off). */
idt_install:
        lea     idt(%rip), %rdi
        lea     vector_table(%rip), %rsi
        mov     $32, %ecx
2:      mov     (%rsi), %rax            /* handler address */
        mov     %ax, (%rdi)             /* offset 15:0 */
        movw    $0x08, 2(%rdi)          /* code segment */
        movw    $0x8e00, 4(%rdi)        /* present, interrupt gate */
        shr     $16, %rax
        mov     %ax, 6(%rdi)            /* offset 31:16 */
        shr     $16, %rax
        mov     %eax, 8(%rdi)           /* offset 63:32 */
        movl    $0, 12(%rdi)
        add     $16, %rdi
        add     $8, %rsi
        loop    2b
        lidt    idt_desc(%rip)
        ret

        .section .rodata
        .balign 8
vector_table:
.irp n, VECTORS
        .quad   vector_\n
.endr

        .section .data
        .balign 8
gdt:
        .quad   0
        .quad   0x00af9a000000ffff      /* 64-bit code */
        .quad   0x00cf92000000ffff      /* data */
gdt_end:
gdt_desc:
        .word   gdt_end - gdt - 1
        .quad   gdt
idt_desc:
        .word   32 * 16 - 1
        .quad   idt

        .balign 4096
pml4:
        .quad   pdpt + PTE_P_W
        .fill   511, 8, 0
pdpt:
        .quad   pd + PTE_P_W
        .quad   pd + 0x1000 + PTE_P_W
        .quad   pd + 0x2000 + PTE_P_W
        .quad   pd + 0x3000 + PTE_P_W
        .quad   pd + 0x4000 + PTE_P_W
        .quad   pd + 0x5000 + PTE_P_W
        .quad   pd + 0x6000 + PTE_P_W
        .quad   pd + 0x7000 + PTE_P_W
        .fill   504, 8, 0
pd:
.set i, 0
.rept 4096
        .quad   (i << 21) + PDE_2M
.set i, i + 1
.endr

        .section .bss
        .balign 16
idt:
        .fill   32 * 16, 1, 0
        .balign 4096
boot_stack:
        .fill   16384, 1, 0
boot_stack_top:
