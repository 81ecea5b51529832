//! Hypercalls through the hypercall page, and typed wrappers for the ones the kernel uses.
//!
//! Xen fills the page named by `XEN_ELFNOTE_HYPERCALL_PAGE` with one 32-byte stub per hypercall;
//! arguments go in `rdi, rsi, rdx, r10, r8` and the result comes back in `rax` (negative
//! values are `-errno`). The stub clobbers `rcx` and `r11`.

use core::arch::{asm, global_asm};

use super::abi::{self, hypercall as nr};

global_asm!(
    ".pushsection .text.xen.hypercall_page, \"ax\"",
    ".balign 4096",
    ".globl xen_hypercall_page",
    "xen_hypercall_page:",
    ".fill 4096, 1, 0xcc",
    ".popsection",
);

/// Makes hypercall `nr` with up to five arguments.
///
/// # Safety
///
/// The arguments must be valid for hypercall `nr` as Xen's public headers define it: pointers
/// must point to memory of the right type and size for as long as the call lasts.
pub unsafe fn call(nr: usize, a1: usize, a2: usize, a3: usize, a4: usize, a5: usize) -> isize {
    let ret: isize;
    // SAFETY: the hypercall page is filled by Xen at domain build; the stub for `nr` lies at
    // `nr * 32` and follows the register convention above. The caller vouches for the arguments.
    unsafe {
        asm!(
            "lea rax, [rip + {page}]",
            "shl {nr}, 5",
            "add rax, {nr}",
            "call rax",
            page = sym xen_hypercall_page_symbol,
            nr = inout(reg) nr => _,
            lateout("rax") ret,
            inout("rdi") a1 => _,
            inout("rsi") a2 => _,
            inout("rdx") a3 => _,
            inout("r10") a4 => _,
            inout("r8") a5 => _,
            out("rcx") _,
            out("r11") _,
        );
    }
    ret
}

unsafe extern "C" {
    #[link_name = "xen_hypercall_page"]
    fn xen_hypercall_page_symbol();
}

/// Writes `bytes` to Xen's own console (`CONSOLEIO_write`); as a domU this fails with `-EPERM`.
#[doc(alias = "HYPERVISOR_console_io")]
pub fn console_write(bytes: &[u8]) -> isize {
    // SAFETY: `bytes` is valid for reads of its length for the whole call.
    unsafe {
        call(nr::CONSOLE_IO, abi::CONSOLEIO_WRITE, bytes.len(), bytes.as_ptr() as usize, 0, 0)
    }
}

/// Reads from Xen's own console (`CONSOLEIO_read`, dom0 only) into `buf`.
pub fn console_read(buf: &mut [u8]) -> isize {
    // SAFETY: `buf` is valid for writes of its length for the whole call.
    unsafe {
        call(nr::CONSOLE_IO, abi::CONSOLEIO_READ, buf.len(), buf.as_mut_ptr() as usize, 0, 0)
    }
}

/// Shuts the domain down; Xen does not return to a domain that asked for this.
#[doc(alias = "SCHEDOP_shutdown")]
pub fn shutdown(reason: abi::ShutdownReason) -> ! {
    let arg = abi::SchedShutdown { reason: reason as u32 };
    loop {
        // SAFETY: `arg` is a valid `sched_shutdown` for the call.
        unsafe { call(nr::SCHED_OP, abi::SCHEDOP_SHUTDOWN, &arg as *const _ as usize, 0, 0, 0) };
    }
}

/// Blocks until one of `ports` is pending or Xen's system time reaches `timeout` (0: never).
#[doc(alias = "SCHEDOP_poll")]
pub fn poll(ports: &[u32], timeout: u64) -> isize {
    let arg = abi::SchedPoll {
        ports: ports.as_ptr(),
        nr_ports: ports.len() as u32,
        timeout,
    };
    // SAFETY: `arg` and the ports it points to live for the whole call.
    unsafe { call(nr::SCHED_OP, abi::SCHEDOP_POLL, &arg as *const _ as usize, 0, 0, 0) }
}

/// Xen's version (`XENVER_version`): major in the high 16 bits, minor in the low 16.
pub fn xen_version() -> isize {
    // SAFETY: `XENVER_version` (0) takes no argument.
    unsafe { call(nr::XEN_VERSION, 0, 0, 0, 0, 0) }
}

/// Gives the rest of this time slice to other vCPUs and domains.
#[doc(alias = "SCHEDOP_yield")]
pub fn yield_now() {
    // SAFETY: `SCHEDOP_yield` takes no argument.
    unsafe { call(nr::SCHED_OP, abi::SCHEDOP_YIELD, 0, 0, 0, 0) };
}

/// Blocks this vCPU until an event is pending, unmasking upcalls first (atomically).
#[doc(alias = "SCHEDOP_block")]
pub fn block() {
    // SAFETY: `SCHEDOP_block` takes no argument.
    unsafe { call(nr::SCHED_OP, abi::SCHEDOP_BLOCK, 0, 0, 0, 0) };
}

/// Arms this vCPU's one-shot timer for Xen system time `deadline` (0 cancels it).
#[doc(alias = "HYPERVISOR_set_timer_op")]
pub fn set_timer(deadline: u64) -> isize {
    // SAFETY: the call only programs this vCPU's timer.
    unsafe { call(nr::SET_TIMER_OP, deadline as usize, 0, 0, 0, 0) }
}

/// Stops the 100 Hz timer Xen gives every PV vCPU by default.
pub fn stop_periodic_timer(vcpu: u32) -> isize {
    // SAFETY: the call takes no argument structure.
    unsafe { call(nr::VCPU_OP, abi::vcpuop::STOP_PERIODIC_TIMER, vcpu as usize, 0, 0, 0) }
}

/// The address range of the hypercall page.
pub fn page_range() -> core::ops::Range<u64> {
    let start = xen_hypercall_page_symbol as *const () as u64;
    start..start + 4096
}

/// Makes a `VCPUOP_*` call for vCPU `vcpu` with argument `arg`.
///
/// # Safety
///
/// `arg` must be what `cmd` takes (`vcpu.h`), valid for the call.
pub unsafe fn vcpu_op(cmd: usize, vcpu: u32, arg: usize) -> isize {
    // SAFETY: the caller vouches for the argument.
    unsafe { call(nr::VCPU_OP, cmd, vcpu as usize, arg, 0, 0) }
}

/// Sets this vCPU's kernel GS base (where the per-vCPU block is).
pub fn set_gs_base(base: u64) -> isize {
    // SAFETY: only GS-relative accesses, i.e. the per-vCPU block, depend on it.
    unsafe { call(nr::SET_SEGMENT_BASE, abi::SEGBASE_GS_KERNEL, base as usize, 0, 0, 0) }
}

/// Registers the event upcall and failsafe entry points (x86_64 `set_callbacks`).
pub fn set_callbacks(event: u64, failsafe: u64) -> isize {
    // SAFETY: the caller passes entry points that follow Xen's PV upcall frame layout.
    unsafe { call(nr::SET_CALLBACKS, event as usize, failsafe as usize, 0, 0, 0) }
}

/// Notifies the other end of event channel `port`.
#[doc(alias = "EVTCHNOP_send")]
pub fn evtchn_send(port: u32) -> isize {
    let arg = abi::EvtchnSend { port };
    // SAFETY: `arg` is a valid `evtchn_send` for the call.
    unsafe { call(nr::EVENT_CHANNEL_OP, abi::EVTCHNOP_SEND, &arg as *const _ as usize, 0, 0, 0) }
}

/// Applies page-table updates; returns how many succeeded or the error.
///
/// # Safety
///
/// The updates must leave every mapping the kernel relies on in place: Xen checks that the
/// frames belong to this domain, not that Rust's references stay valid.
#[doc(alias = "HYPERVISOR_mmu_update")]
pub unsafe fn mmu_update(updates: &[abi::MmuUpdate]) -> Result<(), isize> {
    let mut done: u32 = 0;
    // SAFETY: `updates` and `done` live for the whole call; the caller vouches for the effect.
    let ret = unsafe {
        call(
            nr::MMU_UPDATE,
            updates.as_ptr() as usize,
            updates.len(),
            &mut done as *mut u32 as usize,
            abi::DOMID_SELF,
            0,
        )
    };
    if ret < 0 { Err(ret) } else { Ok(()) }
}

/// Sets the page-table entry for the page at `va` to `pte` and flushes that page's TLB entry.
///
/// # Safety
///
/// As for [`mmu_update`]: nothing may still use what the old entry mapped.
#[doc(alias = "HYPERVISOR_update_va_mapping")]
pub unsafe fn update_va_mapping(va: u64, pte: u64) -> isize {
    // SAFETY: the call changes one mapping; the caller vouches for its effect.
    unsafe { call(nr::UPDATE_VA_MAPPING, va as usize, pte as usize, abi::UVMF_INVLPG, 0, 0) }
}

/// Sets the FS segment base of this vCPU (the thread pointer of ELF TLS).
#[doc(alias = "HYPERVISOR_set_segment_base")]
pub fn set_fs_base(base: u64) -> isize {
    // SAFETY: changing the FS base affects only `%fs`-relative accesses, i.e. thread-locals.
    unsafe { call(nr::SET_SEGMENT_BASE, abi::SEGBASE_FS, base as usize, 0, 0, 0) }
}

/// Installs the trap table, terminated by an entry whose address is 0.
///
/// # Safety
///
/// Each address must be a handler that follows Xen's PV exception frame layout.
#[doc(alias = "HYPERVISOR_set_trap_table")]
pub unsafe fn set_trap_table(table: &[abi::TrapInfo]) -> isize {
    // SAFETY: Xen copies the table during the call; the caller vouches for the handlers.
    unsafe { call(nr::SET_TRAP_TABLE, table.as_ptr() as usize, 0, 0, 0, 0) }
}
