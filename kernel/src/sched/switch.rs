//! The context switch: callee-saved registers on the stack, the stack pointer and the
//! x87/SSE state in the thread's record.
//!
//! Only the callee-saved registers need saving: every switch happens inside a Rust call
//! (a blocking kernel function, or the upcall handler, whose entry saved the rest). The
//! kernel itself never uses SSE, so the vector state saved here is the program's.

use core::arch::global_asm;

/// The `fxsave` area: x87, MMX and SSE state.
#[repr(C, align(16))]
pub struct FpuState(pub [u8; 512]);

impl FpuState {
    /// The state a new thread starts with: x87 control word 0x37f and MXCSR 0x1f80, the
    /// values `fninit` and reset give (Intel SDM vol. 1, 8.1.5 and 10.2.3.1).
    pub const fn initial() -> FpuState {
        let mut area = [0u8; 512];
        area[0] = 0x7f;
        area[1] = 0x03;
        area[24] = 0x80;
        area[25] = 0x1f;
        FpuState(area)
    }
}

global_asm!(
    ".pushsection .text.xen.sched, \"ax\"",
    // xen_switch(save_rsp: *mut u64, next_rsp: u64, save_fpu: *mut FpuState, next_fpu: *const FpuState)
    ".globl xen_switch",
    "xen_switch:",
    "fxsave64 [rdx]",
    "push rbp",
    "push rbx",
    "push r12",
    "push r13",
    "push r14",
    "push r15",
    "mov [rdi], rsp",
    "mov rsp, rsi",
    "fxrstor64 [rcx]",
    "pop r15",
    "pop r14",
    "pop r13",
    "pop r12",
    "pop rbx",
    "pop rbp",
    "ret",
    // Where a new thread's first switch returns to.
    ".globl xen_thread_trampoline",
    "xen_thread_trampoline:",
    "xor ebp, ebp",
    "and rsp, -16",
    "call {start}",
    "ud2",
    ".popsection",
    start = sym super::thread_start,
);

unsafe extern "C" {
    /// Saves the running thread into `save_rsp`/`save_fpu` and resumes the one whose state is
    /// `next_rsp`/`next_fpu`.
    pub fn xen_switch(save_rsp: *mut u64, next_rsp: u64, save_fpu: *mut FpuState, next_fpu: *const FpuState);
    pub fn xen_thread_trampoline();
}

/// Prepares a new thread's stack so that switching to it enters the trampoline; returns the
/// stack pointer to store.
///
/// # Safety
///
/// `top` must be the 16-byte aligned top of a mapped stack with room for 8 words.
pub unsafe fn initial_stack(top: u64) -> u64 {
    let frame = top - 8 * 8;
    let words = frame as *mut u64;
    // SAFETY: the caller guarantees the room; the layout matches the pops in `xen_switch`:
    // r15, r14, r13, r12, rbx, rbp, then the return address.
    unsafe {
        for i in 0..6 {
            words.add(i).write(0);
        }
        words.add(6).write(xen_thread_trampoline as *const () as u64);
        words.add(7).write(0);
    }
    frame
}
