//! x86_64 specifics: the entry point, exceptions, the TSC and the shared info page.

pub mod entry;
pub mod irq;
pub mod percpu;
pub mod smp;
pub mod traps;
pub mod upcall;

use core::arch::asm;
use core::ptr::addr_of;

use crate::xen::abi::{SharedInfo, VcpuTimeInfo};

/// The page where Xen's `shared_info` frame is mapped at boot.
#[repr(C, align(4096))]
pub struct SharedInfoPage(pub [u8; 4096]);
pub static mut SHARED_INFO_PAGE: SharedInfoPage = SharedInfoPage([0; 4096]);

/// The shared info page; valid once boot has mapped it.
pub fn shared_info() -> *const SharedInfo {
    addr_of!(SHARED_INFO_PAGE) as *const SharedInfo
}

/// Reads the time-stamp counter.
pub fn rdtsc() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: `rdtsc` only reads the counter; Xen lets PV guests use it.
    unsafe { asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack)) };
    (hi as u64) << 32 | lo as u64
}

/// Xen system time now, from this vCPU's PV clock record.
pub fn pvclock_now() -> u64 {
    pvclock_at(None)
}

/// Xen system time when the TSC read `tsc` (on this vCPU), or now.
pub fn pvclock_at(tsc: Option<u64>) -> u64 {
    // Upcalls masked: the thread cannot move to another vCPU while it reads this one's record.
    let was_masked = irq::mask();
    let info: *const VcpuTimeInfo = if percpu::ready() {
        // SAFETY: only the address of this vCPU's registered record is formed.
        unsafe { addr_of!((*irq::vcpu_info()).time) }
    } else {
        // SAFETY: as above, for vCPU 0's record in the shared info page, used until boot
        // registers the per-vCPU copies.
        unsafe { addr_of!((*shared_info()).vcpu_info[0].time) }
    };
    let now = loop {
        // SAFETY: the record is mapped; Xen rewrites it at any time, so it is copied out, then
        // checked against its version (odd: being written).
        let time: VcpuTimeInfo = unsafe { info.read_volatile() };
        let tsc = tsc.unwrap_or_else(rdtsc);
        core::sync::atomic::fence(core::sync::atomic::Ordering::Acquire);
        // SAFETY: as above.
        let version = unsafe { addr_of!((*info).version).read_volatile() };
        if time.version % 2 == 0 && version == time.version {
            break crate::time::system_time_at(&time, tsc);
        }
    };
    irq::restore(was_masked);
    now
}

/// Xen's wallclock (the time of day at system time 0) in seconds and ns.
pub fn wallclock_base() -> (u64, u32) {
    let info = shared_info();
    loop {
        // SAFETY: as in `pvclock_now`; the wallclock is guarded by `wc_version`.
        let (v1, sec, sec_hi, nsec, v2) = unsafe {
            let v1 = addr_of!((*info).wc_version).read_volatile();
            core::sync::atomic::fence(core::sync::atomic::Ordering::Acquire);
            let sec = addr_of!((*info).wc_sec).read_volatile();
            let sec_hi = addr_of!((*info).wc_sec_hi).read_volatile();
            let nsec = addr_of!((*info).wc_nsec).read_volatile();
            core::sync::atomic::fence(core::sync::atomic::Ordering::Acquire);
            (v1, sec, sec_hi, nsec, addr_of!((*info).wc_version).read_volatile())
        };
        if v1 % 2 == 0 && v1 == v2 {
            return ((sec_hi as u64) << 32 | sec as u64, nsec);
        }
    }
}

/// The faulting address of the last page fault, which Xen keeps in `vcpu_info.arch.cr2`.
pub fn cr2() -> u64 {
    if !percpu::ready() {
        // SAFETY: the shared info page is mapped at boot.
        return unsafe { addr_of!((*shared_info()).vcpu_info[0].cr2).read_volatile() };
    }
    // SAFETY: this vCPU's registered record; a fault handler runs with upcalls masked.
    unsafe { addr_of!((*irq::vcpu_info()).cr2).read_volatile() }
}

/// A random value from RDRAND, if the CPU has it and it delivers.
pub fn rdrand() -> Option<u64> {
    let ecx = core::arch::x86_64::__cpuid(1).ecx;
    if ecx & (1 << 30) == 0 {
        return None;
    }
    for _ in 0..10 {
        let (value, ok): (u64, u8);
        // SAFETY: the CPU has RDRAND (checked above); it only writes its output registers.
        unsafe { asm!("rdrand {}", "setc {}", out(reg) value, out(reg_byte) ok, options(nomem, nostack)) };
        if ok != 0 {
            return Some(value);
        }
    }
    None
}
