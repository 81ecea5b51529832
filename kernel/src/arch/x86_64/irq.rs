//! Event delivery on this vCPU: masking and unmasking upcalls (`vcpu_info.evtchn_upcall_mask`,
//! the PV form of the interrupt flag), with single GS-relative instructions (see `percpu`).

use core::arch::asm;
use core::sync::atomic::{Ordering, compiler_fence};

use super::percpu::{self, MASK, PENDING};

/// Masks event upcalls; returns whether they were masked already.
pub fn mask() -> bool {
    if !percpu::ready() {
        return true;
    }
    let was: u8;
    // SAFETY: GS points at this vCPU's block, whose byte `MASK` is its upcall mask; the
    // exchange is one instruction, so it acts on whichever vCPU runs it.
    unsafe { asm!("mov {0}, 1", "xchg byte ptr gs:[{1}], {0}", out(reg_byte) was, const MASK, options(nostack, preserves_flags)) };
    compiler_fence(Ordering::SeqCst);
    was != 0
}

/// Puts the mask back as `mask` found it; an event that came in meanwhile is delivered now.
pub fn restore(was_masked: bool) {
    if was_masked || !percpu::ready() {
        return;
    }
    compiler_fence(Ordering::SeqCst);
    let pending: u8;
    // SAFETY: as in `mask`. xen.h: the guest "should check evtchn_upcall_pending after
    // unmasking"; the full fence orders the two.
    unsafe {
        asm!(
            "mov byte ptr gs:[{mask}], 0",
            "mfence",
            "mov {pending}, byte ptr gs:[{pend}]",
            mask = const MASK,
            pend = const PENDING,
            pending = out(reg_byte) pending,
            options(nostack, preserves_flags),
        )
    };
    if pending != 0 {
        // Any hypercall returns through Xen's event check, which then delivers the upcall.
        crate::xen::hypercall::xen_version();
    }
}

/// Whether upcalls are masked on this vCPU now.
pub fn masked() -> bool {
    if !percpu::ready() {
        return true;
    }
    let mask: u8;
    // SAFETY: as in `mask`.
    unsafe { asm!("mov {}, byte ptr gs:[{}]", out(reg_byte) mask, const MASK, options(nostack, readonly, preserves_flags)) };
    mask != 0
}

/// This vCPU's event record; only meaningful with upcalls masked (the thread cannot move).
pub fn vcpu_info() -> *mut crate::xen::abi::VcpuInfo {
    percpu::this().cast()
}
