//! CPU exceptions: every one is fatal, reported as a crash report, then the guest stops.
//!
//! Xen delivers an exception to a 64-bit PV guest on the current stack with `rcx` and `r11`
//! pushed above the frame a CPU would push (`[error code,] rip, cs, rflags, rsp, ss`). Each stub
//! pops those two back, pushes a zero where the CPU pushes no error code, then the vector, and
//! saves the general registers so the handler sees one [`TrapFrame`] layout for all vectors.

use core::arch::global_asm;
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::log::LineBuf;
use crate::xen::abi::{FLAT_KERNEL_CS, ShutdownReason, TrapInfo};
use crate::xen::{console, hypercall};

/// The registers at the time of the exception, as the stubs save them.
#[repr(C)]
pub struct TrapFrame {
    pub rax: u64,
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rbp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    pub vector: u64,
    pub error: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

macro_rules! stubs {
    ($($vector:literal $name:ident $has_error:literal),* $(,)?) => {
        $(
            global_asm!(
                concat!(".pushsection .text.xen.traps, \"ax\"\n", stringify!($name), ":"),
                "pop rcx",
                "pop r11",
                concat!(".if ", $has_error, " == 0\n push 0\n .endif"),
                concat!("push ", $vector),
                "jmp xen_trap_common",
                ".popsection",
            );
        )*
        unsafe extern "C" { $(fn $name();)* }
        /// The trap table handed to Xen, ending with an empty entry.
        pub fn table() -> [TrapInfo; 18] {
            let mut table = [TrapInfo { vector: 0, flags: 0, cs: 0, address: 0 }; 18];
            let entries = [$(($vector, $name as unsafe extern "C" fn() as u64)),*];
            for (slot, (vector, address)) in table.iter_mut().zip(entries) {
                // Flags: privilege 0 (no `int` from the guest), bit 2 masks events on entry.
                *slot = TrapInfo { vector, flags: 4, cs: FLAT_KERNEL_CS, address };
            }
            table
        }
    };
}

stubs! {
    0 xen_trap_divide_error 0,
    1 xen_trap_debug 0,
    3 xen_trap_int3 0,
    4 xen_trap_overflow 0,
    5 xen_trap_bounds 0,
    6 xen_trap_invalid_op 0,
    7 xen_trap_device_not_available 0,
    9 xen_trap_coprocessor_segment_overrun 0,
    10 xen_trap_invalid_tss 1,
    11 xen_trap_segment_not_present 1,
    12 xen_trap_stack_segment 1,
    13 xen_trap_general_protection 1,
    14 xen_trap_page_fault 1,
    16 xen_trap_coprocessor_error 0,
    17 xen_trap_alignment_check 1,
    18 xen_trap_machine_check 0,
    19 xen_trap_simd_error 0,
}

global_asm!(
    ".pushsection .text.xen.traps, \"ax\"",
    "xen_trap_common:",
    "push r15", "push r14", "push r13", "push r12", "push r11", "push r10", "push r9", "push r8",
    "push rbp", "push rdi", "push rsi", "push rdx", "push rcx", "push rbx", "push rax",
    "mov rdi, rsp",
    "and rsp, -16",
    "call {handler}",
    "ud2",
    ".popsection",
    handler = sym trap,
);

/// Installs the trap table.
pub fn init() -> isize {
    let table = table();
    // SAFETY: every entry points at a stub above, which follows Xen's PV frame layout.
    unsafe { hypercall::set_trap_table(&table) }
}

fn name(vector: u64) -> &'static str {
    match vector {
        0 => "divide error",
        1 => "debug",
        3 => "breakpoint",
        4 => "overflow",
        5 => "bound range exceeded",
        6 => "invalid opcode",
        7 => "device not available",
        10 => "invalid TSS",
        11 => "segment not present",
        12 => "stack-segment fault",
        13 => "general protection fault",
        14 => "page fault",
        16 => "x87 floating-point error",
        17 => "alignment check",
        18 => "machine check",
        19 => "SIMD floating-point error",
        _ => "exception",
    }
}

static CRASHING: AtomicBool = AtomicBool::new(false);

fn report(args: core::fmt::Arguments<'_>) {
    let mut line = LineBuf::new();
    let _ = line.write_fmt(args);
    console::crash_line(line.as_bytes());
}

extern "C" fn trap(frame: &TrapFrame) -> ! {
    if CRASHING.swap(true, Ordering::SeqCst) {
        // A fault while reporting one: stop at once.
        hypercall::shutdown(ShutdownReason::Crash);
    }
    report(format_args!("vector={} name={}", frame.vector, Dashed(name(frame.vector))));
    report(format_args!("error={:#x}", frame.error));
    report(format_args!("rip={:#x}", frame.rip));
    report(format_args!("rsp={:#x}", frame.rsp));
    if frame.vector == 14 {
        report(format_args!("cr2={:#x}", super::cr2()));
    }
    for address in crate::backtrace::frames(frame.rbp) {
        report(format_args!("frame={address:#x}"));
    }
    console::finish(b"crash");
    hypercall::shutdown(ShutdownReason::Crash);
}

/// An exception name with `-` for spaces, as the crash record's `name=` wants it.
struct Dashed(&'static str);

impl core::fmt::Display for Dashed {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (i, word) in self.0.split(' ').enumerate() {
            if i > 0 {
                f.write_char('-')?;
            }
            f.write_str(word)?;
        }
        Ok(())
    }
}
