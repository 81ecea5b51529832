//! The image's Xen ELF notes and its entry point.
//!
//! Xen's loader reads the notes (`xen/include/public/elfnote.h`) to learn where the image wants
//! to live and where to enter it. A 64-bit PV guest starts at `_start` in long mode, on Xen's
//! page tables, with `%rsi` pointing at `start_info` and `%rsp` at a small boot stack.

use core::arch::global_asm;

use crate::xen::abi::{XENFEAT_DOM0, elfnote};

global_asm!(
    ".pushsection .note.Xen, \"a\", @note",
    ".macro xen_note type, desc_size",
    ".balign 4",
    ".long 4, \\desc_size, \\type",
    ".asciz \"Xen\"",
    ".balign 4",
    ".endm",
    "xen_note {guest_os}, 8",
    ".asciz \"RustXen\"",
    "xen_note {xen_version}, 8",
    ".asciz \"xen-3.0\"",
    "xen_note {loader}, 8",
    ".asciz \"generic\"",
    "xen_note {virt_base}, 8",
    ".quad {base}",
    "xen_note {paddr_offset}, 8",
    ".quad {base}",
    "xen_note {entry}, 8",
    ".quad _start",
    "xen_note {hypercall_page}, 8",
    ".quad xen_hypercall_page",
    "xen_note {features}, 4",
    ".long {feature_bits}",
    ".balign 4",
    ".popsection",
    guest_os = const elfnote::GUEST_OS,
    xen_version = const elfnote::XEN_VERSION,
    loader = const elfnote::LOADER,
    virt_base = const elfnote::VIRT_BASE,
    paddr_offset = const elfnote::PADDR_OFFSET,
    entry = const elfnote::ENTRY,
    hypercall_page = const elfnote::HYPERCALL_PAGE,
    features = const elfnote::SUPPORTED_FEATURES,
    feature_bits = const 1u32 << XENFEAT_DOM0,
    base = const crate::mm::paging::VIRT_BASE,
    options(att_syntax),
);

/// Bytes of the stack the boot code runs on until the main stack is allocated.
pub const BOOT_STACK_SIZE: usize = 32 * 1024;

#[repr(C, align(16))]
struct BootStack([u8; BOOT_STACK_SIZE]);

#[unsafe(no_mangle)]
static mut XEN_BOOT_STACK: BootStack = BootStack([0; BOOT_STACK_SIZE]);

global_asm!(
    ".pushsection .text.xen.entry, \"ax\"",
    ".globl _start",
    "_start:",
    "cld",
    // Keep Xen's stack pointer: it tells where Xen's boot layout ends.
    "mov rdi, rsi",
    "mov rsi, rsp",
    "lea rsp, [rip + XEN_BOOT_STACK + {size}]",
    "xor ebp, ebp",
    "call {boot}",
    "ud2",
    ".popsection",
    size = const BOOT_STACK_SIZE,
    boot = sym crate::boot::boot,
);
