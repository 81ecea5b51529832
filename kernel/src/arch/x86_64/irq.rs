//! Event delivery on this vCPU: masking and unmasking upcalls (`vcpu_info.evtchn_upcall_mask`,
//! the PV form of the interrupt flag).

use core::ptr::{addr_of, addr_of_mut};
use core::sync::atomic::{Ordering, compiler_fence};

use super::shared_info;
use crate::xen::abi::VcpuInfo;

fn vcpu() -> *mut VcpuInfo {
    // FIXME: the kernel runs on vCPU 0 only; a per-vCPU pointer comes with secondary vCPUs.
    // SAFETY: only the address of vCPU 0's record in the mapped shared info page is formed.
    unsafe { addr_of!((*shared_info()).vcpu_info[0]) as *mut VcpuInfo }
}

/// Masks event upcalls; returns whether they were masked already.
pub fn mask() -> bool {
    let vcpu = vcpu();
    // SAFETY: the mask byte is this vCPU's to write; Xen only reads it.
    let was = unsafe { addr_of!((*vcpu).evtchn_upcall_mask).read_volatile() } != 0;
    // SAFETY: as above.
    unsafe { addr_of_mut!((*vcpu).evtchn_upcall_mask).write_volatile(1) };
    compiler_fence(Ordering::SeqCst);
    was
}

/// Puts the mask back as `mask` found it; an event that came in meanwhile is delivered now.
pub fn restore(was_masked: bool) {
    if was_masked {
        return;
    }
    let vcpu = vcpu();
    compiler_fence(Ordering::SeqCst);
    // SAFETY: as in `mask`.
    unsafe { addr_of_mut!((*vcpu).evtchn_upcall_mask).write_volatile(0) };
    core::sync::atomic::fence(Ordering::SeqCst);
    // xen.h: "the guest ... should check evtchn_upcall_pending after unmasking"; any hypercall
    // returns through Xen's event check, which then delivers the upcall.
    // SAFETY: as above; Xen sets the byte, we only read it.
    if unsafe { addr_of!((*vcpu).evtchn_upcall_pending).read_volatile() } != 0 {
        crate::xen::hypercall::xen_version();
    }
}

/// Whether upcalls are masked now.
pub fn masked() -> bool {
    // SAFETY: as in `mask`.
    unsafe { addr_of!((*vcpu()).evtchn_upcall_mask).read_volatile() != 0 }
}

/// The vCPU's event record, for the upcall handler.
pub fn vcpu_info() -> *mut VcpuInfo {
    vcpu()
}
