//! The event upcall: Xen's way of interrupting a PV guest.
//!
//! Xen enters `xen_upcall_entry` on the current stack, with upcalls masked, having pushed
//! `rcx, r11` above the CPU-style frame `rip, cs, rflags, rsp, ss`. The entry rebuilds that as
//! the frame `HYPERVISOR_iret` wants (`rax, r11, rcx, flags, rip, cs, rflags, rsp, ss`; see
//! `struct iret_context` in `arch-x86/xen-x86_64.h`, of which Xen's iret stub in the hypercall
//! page pushes the first three itself), saves the other registers, and calls [`upcall`]. That may switch threads; the interrupted thread's frame then waits on its stack
//! until the scheduler comes back to it. Returning goes through `HYPERVISOR_iret`, which
//! restores the registers in the frame and unmasks upcalls in one step.

use core::arch::global_asm;

use crate::xen::abi::ShutdownReason;
use crate::xen::{console, hypercall};

global_asm!(
    ".pushsection .text.xen.upcall, \"ax\"",
    ".globl xen_upcall_entry",
    "xen_upcall_entry:",
    "mov rcx, [rsp]",
    "mov r11, [rsp + 8]",
    "add rsp, 16",
    "push 0",
    "push rcx",
    "push r11",
    "push rax",
    "push rbx", "push rdx", "push rsi", "push rdi", "push rbp",
    "push r8", "push r9", "push r10", "push r12", "push r13", "push r14", "push r15",
    "mov rbx, rsp",
    "mov rdi, rsp",
    "and rsp, -16",
    "call {upcall}",
    "mov rsp, rbx",
    "pop r15", "pop r14", "pop r13", "pop r12", "pop r10", "pop r9", "pop r8",
    "pop rbp", "pop rdi", "pop rsi", "pop rdx", "pop rbx",
    // Xen's iret stub pushes rcx, r11 and rax itself: hand them over in registers.
    "pop rax", "pop r11", "pop rcx",
    ".set xen_hypercall_iret, xen_hypercall_page + {iret} * 32",
    "jmp xen_hypercall_iret",
    ".globl xen_failsafe_entry",
    "xen_failsafe_entry:",
    "and rsp, -16",
    "call {failsafe}",
    "ud2",
    ".popsection",
    upcall = sym upcall,
    failsafe = sym failsafe,
    iret = const crate::xen::abi::hypercall::IRET,
);

unsafe extern "C" {
    fn xen_upcall_entry();
    fn xen_failsafe_entry();
}

/// Where the saved registers start: `r15` first, then up to `rax, r11, rcx`, the flags word,
/// and the interrupted `rip, cs, rflags, rsp, ss`.
const FRAME_RIP: usize = 16;
const FRAME_RSP: usize = 19;

/// Handles the pending events, then lets the scheduler switch threads if it wants to.
extern "C" fn upcall(frame: *const u64) {
    if crate::profile::on() {
        // SAFETY: the entry passes the frame it built on this stack, 21 words from `frame`.
        let (rip, rsp) = unsafe { (frame.add(FRAME_RIP).read(), frame.add(FRAME_RSP).read()) };
        crate::profile::sample(rip, rsp);
    }
    crate::xen::evtchn::dispatch();
    crate::sched::preempt_if_due();
}

/// Xen calls this when it cannot return to the guest (a bad segment on `iret`): fatal.
extern "C" fn failsafe() -> ! {
    console::crash_line(b"vector=failsafe name=Xen-failsafe-callback");
    console::finish(b"crash");
    hypercall::shutdown(ShutdownReason::Crash);
}

/// The upcall and failsafe entry points.
pub fn entries() -> (u64, u64) {
    (xen_upcall_entry as *const () as u64, xen_failsafe_entry as *const () as u64)
}

/// Registers the upcall and failsafe entries with Xen for this vCPU.
pub fn init() -> isize {
    let (event, failsafe) = entries();
    hypercall::set_callbacks(event, failsafe)
}
