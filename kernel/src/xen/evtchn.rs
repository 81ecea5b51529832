//! Event channels: binding VIRQs, unmasking ports, and dispatching pending events from the
//! upcall (`xen/include/public/event_channel.h`, and `xen.h` for the 2-level pending bitmap).

use core::ptr::addr_of_mut;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::abi::{self, hypercall as nr};
use super::hypercall::call;

/// The most ports the 2-level ABI has for a 64-bit guest (64 words of 64 bits).
pub const NR_PORTS: usize = 64 * 64;

/// What runs when a port fires, in the upcall, with upcalls masked; it must not block or
/// allocate.
pub type Handler = fn(port: u32);

static HANDLERS: [AtomicUsize; NR_PORTS] = [const { AtomicUsize::new(0) }; NR_PORTS];

/// `EVTCHNOP_bind_virq` (`event_channel.h`): IN `virq`, `vcpu`; OUT `port`.
#[repr(C)]
struct BindVirq {
    virq: u32,
    vcpu: u32,
    port: u32,
}

/// `EVTCHNOP_unmask`.
#[repr(C)]
struct Unmask {
    port: u32,
}

const EVTCHNOP_BIND_VIRQ: usize = 1;
const EVTCHNOP_UNMASK: usize = 9;

/// `VIRQ_TIMER` (`xen.h`): the vCPU's one-shot timer fired.
pub const VIRQ_TIMER: u32 = 0;

/// Binds `virq` on vCPU `vcpu` to a new port that runs `handler`; returns the port.
pub fn bind_virq(virq: u32, vcpu: u32, handler: Handler) -> Result<u32, isize> {
    let mut arg = BindVirq { virq, vcpu, port: 0 };
    // SAFETY: `arg` is a valid `evtchn_bind_virq` for the call.
    let ret = unsafe { call(nr::EVENT_CHANNEL_OP, EVTCHNOP_BIND_VIRQ, &mut arg as *mut _ as usize, 0, 0, 0) };
    if ret < 0 {
        return Err(ret);
    }
    install(arg.port, handler)?;
    Ok(arg.port)
}

/// `EVTCHNOP_bind_ipi` (`event_channel.h`): IN `vcpu`; OUT `port`.
#[repr(C)]
struct BindIpi {
    vcpu: u32,
    port: u32,
}

/// Binds a port for waking vCPU `vcpu` from the others; returns the port.
pub fn bind_ipi(vcpu: u32, handler: Handler) -> Result<u32, isize> {
    let mut arg = BindIpi { vcpu, port: 0 };
    // SAFETY: `arg` is a valid `evtchn_bind_ipi` for the call.
    let ret = unsafe { call(nr::EVENT_CHANNEL_OP, abi::EVTCHNOP_BIND_IPI, &mut arg as *mut _ as usize, 0, 0, 0) };
    if ret < 0 {
        return Err(ret);
    }
    install(arg.port, handler)?;
    Ok(arg.port)
}

/// Stores `port`'s handler and unmasks the port.
fn install(port: u32, handler: Handler) -> Result<(), isize> {
    if port as usize >= NR_PORTS {
        return Err(-abi::errno::EINVAL);
    }
    HANDLERS[port as usize].store(handler as usize, Ordering::Release);
    // SAFETY: `EVTCHNOP_unmask` takes a valid `evtchn_unmask`; an event that came before the
    // handler was stored is still pending and is delivered on unmask.
    unsafe { call(nr::EVENT_CHANNEL_OP, EVTCHNOP_UNMASK, &Unmask { port } as *const _ as usize, 0, 0, 0) };
    Ok(())
}

/// Runs the handlers of every pending, unmasked port; called by the upcall with upcalls
/// masked.
pub fn dispatch() {
    let info = crate::arch::x86_64::shared_info() as *mut abi::SharedInfo;
    let vcpu = crate::arch::x86_64::irq::vcpu_info();
    loop {
        // xen.h: clear `evtchn_upcall_pending` first, then take the selector, then the words.
        // SAFETY: the byte and the words live in the mapped shared info page; Xen sets bits
        // concurrently, so every access is atomic.
        unsafe { addr_of_mut!((*vcpu).evtchn_upcall_pending).write_volatile(0) };
        // SAFETY: as above.
        let sel = unsafe { AtomicU64::from_ptr(addr_of_mut!((*vcpu).evtchn_pending_sel)) }.swap(0, Ordering::AcqRel);
        if sel == 0 {
            return;
        }
        let mut words = sel;
        while words != 0 {
            let word = words.trailing_zeros() as usize;
            words &= words - 1;
            // SAFETY: as above.
            let (pending, mask) = unsafe {
                (
                    AtomicU64::from_ptr(addr_of_mut!((*info).evtchn_pending[word])),
                    AtomicU64::from_ptr(addr_of_mut!((*info).evtchn_mask[word])),
                )
            };
            let mut bits = pending.load(Ordering::Acquire) & !mask.load(Ordering::Acquire);
            while bits != 0 {
                let bit = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                pending.fetch_and(!(1u64 << bit), Ordering::AcqRel);
                let port = word * 64 + bit;
                let handler = HANDLERS[port].load(Ordering::Acquire);
                if handler != 0 {
                    // SAFETY: only `bind_virq` stores into the table, and only `Handler`s.
                    let handler: Handler = unsafe { core::mem::transmute(handler) };
                    handler(port as u32);
                }
            }
        }
    }
}
