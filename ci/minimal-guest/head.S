/*
 * Entry point, hypercall page and Xen ELF notes of the minimal PV guest.
 *
 * Xen starts a 64-bit PV guest at XEN_ELFNOTE_ENTRY in long mode, on its
 * own page tables, with %rsi holding the virtual address of start_info.
 * The guest switches to a stack of its own and calls mg_main(start_info).
 */
#include "xen.h"

/*
 * One Xen ELF note: namesz, descsz, type, the name "Xen", then the data
 * (a NUL-terminated string or a 64-bit number), each padded to 4 bytes.
 */
.macro xen_note_begin type
	.pushsection .note.Xen, "a", @note
	.balign 4
	.long 4
	.long 2f - 1f
	.long \type
	.asciz "Xen"
	.balign 4
1:
.endm

.macro xen_note_end
2:	.balign 4
	.popsection
.endm

.macro xen_note_str type, text
	xen_note_begin \type
	.asciz "\text"
	xen_note_end
.endm

.macro xen_note_quad type, value
	xen_note_begin \type
	.quad \value
	xen_note_end
.endm

	xen_note_str XEN_ELFNOTE_GUEST_OS, minimal-guest
	xen_note_str XEN_ELFNOTE_XEN_VERSION, xen-3.0
	xen_note_str XEN_ELFNOTE_LOADER, generic
	/* VIRT_BASE is defined by guest.ld, the one place that sets it. */
	xen_note_quad XEN_ELFNOTE_VIRT_BASE, VIRT_BASE
	xen_note_quad XEN_ELFNOTE_ENTRY, _start
	xen_note_quad XEN_ELFNOTE_HYPERCALL_PAGE, hypercall_page

	.section .text.entry, "ax", @progbits
	.globl _start
_start:
	cld
	leaq stack_top(%rip), %rsp
	movq %rsi, %rdi			/* mg_main(struct start_info *) */
	call mg_main
	/* mg_main shuts the domain down; should that fail, stop here. */
1:	hlt
	jmp 1b

/*
 * Xen writes a stub for every hypercall into this page: hypercall N is
 * called at hypercall_page + N * 32 (arch-x86/xen-x86_64.h).
 */
	.section .text.hypercall_page, "ax", @progbits
	.balign 4096
	.globl hypercall_page
hypercall_page:
	.skip 4096

	.section .bss.stack, "aw", @nobits
	.balign 16
	.skip 16384
stack_top:

	.section .note.GNU-stack, "", @progbits
