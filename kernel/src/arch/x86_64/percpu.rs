//! Per-vCPU data, reached through the GS base.
//!
//! Each vCPU's block starts with its `vcpu_info`, registered with Xen at that place
//! (`VCPUOP_register_vcpu_info`, `xen/include/public/vcpu.h`), so that one GS-relative
//! instruction masks or unmasks upcalls on whatever vCPU runs it: a thread that moves to another
//! vCPU between two instructions still touches its own vCPU's mask.

use core::ptr::addr_of_mut;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::xen::abi::VcpuInfo;

/// The most vCPUs the kernel runs on.
pub const MAX_CPUS: usize = 32;

/// One vCPU's block; `vcpu_info` must stay first (GS-relative code relies on its offsets).
#[repr(C, align(128))]
pub struct PerCpu {
    pub vcpu_info: VcpuInfo,
    /// This block's own address, so that `gs:[SELF]` yields a pointer.
    pub this: *mut PerCpu,
    pub id: u32,
    /// The event channel that wakes this vCPU from another (an IPI).
    pub ipi_port: u32,
    /// The thread running here, and this vCPU's idle thread.
    pub current: *mut crate::sched::Thread,
    pub idle: *mut crate::sched::Thread,
    /// The deadline this vCPU's timer is armed for; 0 when disarmed.
    pub armed: u64,
    /// Whether the idle thread is blocked here, waiting for work.
    pub idling: bool,
    /// This vCPU's `VIRQ_TIMER` port, and whether its event came since the scheduler last
    /// looked (the timer is one-shot). Set by whichever vCPU took the event.
    pub timer_port: u32,
    pub timer_fired: core::sync::atomic::AtomicBool,
    /// The TLS pointer the FS base holds (`u64::MAX` until a switch sets it): a thread without
    /// TLS (the kernel's) runs on whatever is there, so switching to it and back to the same
    /// program thread costs no `set_segment_base` hypercall.
    pub fs_tp: u64,
}

const _: () = assert!(core::mem::offset_of!(PerCpu, this) == 64);
const _: () = assert!(size_of::<PerCpu>() == 128);

/// The byte offsets of `vcpu_info`'s pending and mask flags (`xen.h`).
pub const PENDING: usize = 0;
pub const MASK: usize = 1;
const SELF: usize = 64;

#[repr(C, align(4096))]
struct Blocks([PerCpu; MAX_CPUS]);

const EMPTY: PerCpu = PerCpu {
    vcpu_info: VcpuInfo {
        evtchn_upcall_pending: 0,
        // Zero keeps the blocks in .bss; a secondary masks upcalls in its first instruction,
        // and the boot vCPU's block gets Xen's copy of its record (masked) at registration.
        evtchn_upcall_mask: 0,
        pad: [0; 6],
        evtchn_pending_sel: 0,
        cr2: 0,
        arch_pad: 0,
        time: crate::xen::abi::VcpuTimeInfo {
            version: 0,
            pad0: 0,
            tsc_timestamp: 0,
            system_time: 0,
            tsc_to_system_mul: 0,
            tsc_shift: 0,
            flags: 0,
            pad1: [0; 2],
        },
    },
    this: core::ptr::null_mut(),
    id: 0,
    ipi_port: 0,
    current: core::ptr::null_mut(),
    idle: core::ptr::null_mut(),
    armed: 0,
    idling: false,
    timer_port: u32::MAX,
    timer_fired: core::sync::atomic::AtomicBool::new(false),
    fs_tp: u64::MAX,
};

static mut BLOCKS: Blocks = Blocks([EMPTY; MAX_CPUS]);
static READY: AtomicBool = AtomicBool::new(false);
static ONLINE: AtomicUsize = AtomicUsize::new(1);

/// Whether GS points at this vCPU's block (false early in boot).
pub fn ready() -> bool {
    READY.load(Ordering::Relaxed)
}

/// vCPUs running the kernel.
pub fn online() -> usize {
    ONLINE.load(Ordering::Acquire)
}

pub fn set_online(count: usize) {
    ONLINE.store(count, Ordering::Release);
}

/// The block of vCPU `cpu`.
pub fn block(cpu: usize) -> *mut PerCpu {
    assert!(cpu < MAX_CPUS);
    // SAFETY: only the address of one element of the static array is formed.
    unsafe { addr_of_mut!(BLOCKS.0[cpu]) }
}

/// This vCPU's block.
pub fn this() -> *mut PerCpu {
    let ptr: *mut PerCpu;
    // SAFETY: once `ready()`, GS points at this vCPU's block, whose `this` field is set.
    unsafe { core::arch::asm!("mov {}, gs:[{}]", out(reg) ptr, const SELF, options(nostack, readonly, preserves_flags)) };
    ptr
}

/// Marks GS as set up on the boot vCPU.
pub fn mark_ready() {
    READY.store(true, Ordering::Release);
}
