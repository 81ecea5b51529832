//! Event channels: binding (VIRQs, IPIs, interdomain), closing, masking, notifying, and
//! dispatching pending events from the upcall (`xen/include/public/event_channel.h`, and
//! `xen.h` for the 2-level pending bitmap).
//!
//! Every port starts masked (boot masks them all), so an event that arrives before anything
//! listens stays pending and is delivered when the port is bound and unmasked. Each delivery
//! bumps the port's counter; a thread waits for the counter to move ([`wait`]), so no event
//! is lost between two waits either. A port may also have a handler, run in the upcall.

use core::ptr::addr_of_mut;
use core::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use super::abi::{self, hypercall as nr};
use super::hypercall::call;

/// The most ports the 2-level ABI has for a 64-bit guest (64 words of 64 bits).
pub const NR_PORTS: usize = 64 * 64;

/// What runs when a port fires, in the upcall, with upcalls masked; it must not block or
/// allocate.
pub type Handler = fn(port: u32);

static HANDLERS: [AtomicUsize; NR_PORTS] = [const { AtomicUsize::new(0) }; NR_PORTS];
/// Events delivered per port (wrapping), the futex word of [`wait`].
static COUNTS: [AtomicU32; NR_PORTS] = [const { AtomicU32::new(0) }; NR_PORTS];
/// Threads in [`wait`] per port: the upcall wakes only when there are some.
static WAITERS: [AtomicU32; NR_PORTS] = [const { AtomicU32::new(0) }; NR_PORTS];
/// Who bound each port: [`Owner`] as a byte.
static OWNERS: [AtomicU8; NR_PORTS] = [const { AtomicU8::new(0) }; NR_PORTS];

/// Who a port belongs to; the program may only close or wait on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Owner {
    None = 0,
    Kernel = 1,
    Program = 2,
}

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

const EVTCHNOP_BIND_INTERDOMAIN: usize = 0;
const EVTCHNOP_BIND_VIRQ: usize = 1;
const EVTCHNOP_CLOSE: usize = 3;
const EVTCHNOP_ALLOC_UNBOUND: usize = 6;
const EVTCHNOP_UNMASK: usize = 9;

/// `EVTCHNOP_bind_interdomain`: IN `remote_dom`, `remote_port`; OUT `local_port`.
#[repr(C)]
struct BindInterdomain {
    remote_dom: u16,
    remote_port: u32,
    local_port: u32,
}
const _: () = assert!(size_of::<BindInterdomain>() == 12);

/// `EVTCHNOP_alloc_unbound`: IN `dom`, `remote_dom`; OUT `port`.
#[repr(C)]
struct AllocUnbound {
    dom: u16,
    remote_dom: u16,
    port: u32,
}
const _: () = assert!(size_of::<AllocUnbound>() == 8);

/// `EVTCHNOP_close`.
#[repr(C)]
struct Close {
    port: u32,
}

fn op<T>(cmd: usize, arg: &mut T) -> Result<(), isize> {
    // SAFETY: every caller passes the structure `event_channel.h` defines for `cmd`.
    let ret = unsafe { call(nr::EVENT_CHANNEL_OP, cmd, arg as *mut T as usize, 0, 0, 0) };
    if ret < 0 { Err(ret) } else { Ok(()) }
}

fn check(port: u32) -> Result<usize, isize> {
    if (port as usize) < NR_PORTS { Ok(port as usize) } else { Err(-abi::errno::EINVAL) }
}

/// Masks every port, at boot before upcalls are enabled: nothing is delivered before its
/// port is bound here.
pub fn mask_all() {
    let info = crate::arch::x86_64::shared_info() as *mut abi::SharedInfo;
    for word in 0..NR_PORTS / 64 {
        // SAFETY: the mask words live in the mapped shared info page; Xen reads them
        // concurrently, so the store is atomic.
        unsafe { AtomicU64::from_ptr(addr_of_mut!((*info).evtchn_mask[word])) }.store(!0, Ordering::Release);
    }
}

/// Sets `port`'s mask bit: its events stay pending until [`unmask`].
pub fn mask(port: u32) -> Result<(), isize> {
    let port = check(port)?;
    let info = crate::arch::x86_64::shared_info() as *mut abi::SharedInfo;
    // SAFETY: as in `mask_all`.
    unsafe { AtomicU64::from_ptr(addr_of_mut!((*info).evtchn_mask[port / 64])) }
        .fetch_or(1 << (port % 64), Ordering::AcqRel);
    Ok(())
}

/// Clears `port`'s mask bit through Xen, which re-raises an event that came while masked.
pub fn unmask(port: u32) -> Result<(), isize> {
    check(port)?;
    op(EVTCHNOP_UNMASK, &mut Unmask { port })
}

/// Binds a new local port to `remote_port` of domain `remote_dom`, owned by `owner`; it is
/// unmasked, and events count from 0.
pub fn bind_interdomain(remote_dom: u16, remote_port: u32, owner: Owner) -> Result<u32, isize> {
    let mut arg = BindInterdomain { remote_dom, remote_port, local_port: 0 };
    op(EVTCHNOP_BIND_INTERDOMAIN, &mut arg)?;
    adopt(arg.local_port, owner)?;
    Ok(arg.local_port)
}

/// Allocates a port that domain `remote_dom` may bind to; owned by `owner`, unmasked.
pub fn alloc_unbound(remote_dom: u16, owner: Owner) -> Result<u32, isize> {
    let mut arg = AllocUnbound { dom: abi::DOMID_SELF as u16, remote_dom, port: 0 };
    op(EVTCHNOP_ALLOC_UNBOUND, &mut arg)?;
    adopt(arg.port, owner)?;
    Ok(arg.port)
}

/// Takes a port (new, or one Xen set up before boot: the console's, xenstore's) for `owner`:
/// its count starts at 0, then it is unmasked, so an event that came before (Xen marks a port
/// pending when it binds it interdomain, in case the other end signalled the unbound port)
/// makes the count 1.
pub fn adopt(port: u32, owner: Owner) -> Result<(), isize> {
    let index = check(port)?;
    COUNTS[index].store(0, Ordering::Release);
    OWNERS[index].store(owner as u8, Ordering::Release);
    unmask(port)
}

/// Who owns `port`.
pub fn owner(port: u32) -> Owner {
    match OWNERS.get(port as usize).map(|o| o.load(Ordering::Acquire)) {
        Some(1) => Owner::Kernel,
        Some(2) => Owner::Program,
        _ => Owner::None,
    }
}

/// Closes `port`: masked, its handler gone, waiters woken (they see it closed). Everything
/// is done to the port before Xen frees it: once freed, another thread may get the same
/// number, and nothing of this channel may reach that one.
pub fn close(port: u32) -> Result<(), isize> {
    let index = check(port)?;
    mask(port)?;
    HANDLERS[index].store(0, Ordering::Release);
    OWNERS[index].store(Owner::None as u8, Ordering::Release);
    COUNTS[index].fetch_add(1, Ordering::AcqRel);
    if WAITERS[index].load(Ordering::Acquire) != 0 {
        crate::sched::futex_wake(COUNTS[index].as_ptr(), u32::MAX);
    }
    op(EVTCHNOP_CLOSE, &mut Close { port })
}

/// Signals the other end of `port`.
pub fn notify(port: u32) -> Result<(), isize> {
    check(port)?;
    let ret = super::hypercall::evtchn_send(port);
    if ret < 0 { Err(ret) } else { Ok(()) }
}

/// How many events `port` has had (wrapping); the `seen` value for [`wait`].
pub fn count(port: u32) -> u32 {
    COUNTS.get(port as usize).map_or(0, |c| c.load(Ordering::Acquire))
}

/// Blocks the running thread until `port` has had an event since its count was `seen`, or
/// Xen system time `deadline` (u64::MAX: none); returns the new count, or `-ETIMEDOUT`.
pub fn wait(port: u32, seen: u32, deadline: u64) -> Result<u32, isize> {
    let index = check(port)?;
    let counter = &COUNTS[index];
    loop {
        let now = counter.load(Ordering::Acquire);
        if now != seen {
            return Ok(now);
        }
        WAITERS[index].fetch_add(1, Ordering::AcqRel);
        // SAFETY: the counter is a static atomic u32.
        let woke = unsafe { crate::sched::futex_wait(counter.as_ptr(), seen, deadline) };
        WAITERS[index].fetch_sub(1, Ordering::AcqRel);
        if woke == crate::sched::FutexWait::TimedOut && counter.load(Ordering::Acquire) == seen {
            return Err(-abi::errno::ETIMEDOUT);
        }
    }
}

/// Delivers an event on `port` from inside this guest, as if its remote end had sent one:
/// counts it, runs its handler (with upcalls masked, as the upcall runs it) and wakes its
/// waiters. A driver uses it when something other than the backend's event must wake the
/// device's waiters (the backend went away).
pub fn raise_local(port: u32) -> Result<(), isize> {
    let index = check(port)?;
    let was_masked = crate::arch::x86_64::irq::mask();
    COUNTS[index].fetch_add(1, Ordering::AcqRel);
    let handler = HANDLERS[index].load(Ordering::Acquire);
    if handler != 0 {
        // SAFETY: only `install` stores into the table, and only `Handler`s.
        let handler: Handler = unsafe { core::mem::transmute(handler) };
        handler(port);
    }
    crate::arch::x86_64::irq::restore(was_masked);
    crate::sched::futex_wake(COUNTS[index].as_ptr(), u32::MAX);
    Ok(())
}

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

/// Sets the handler of a port the kernel already owns (bound or adopted).
pub fn set_handler(port: u32, handler: Handler) -> Result<(), isize> {
    install(port, handler)
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
    let index = check(port)?;
    HANDLERS[index].store(handler as usize, Ordering::Release);
    // An event that came before the handler was stored is still pending (the port was
    // masked) and is delivered on unmask.
    adopt(port, Owner::Kernel)
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
                COUNTS[port].fetch_add(1, Ordering::AcqRel);
                let handler = HANDLERS[port].load(Ordering::Acquire);
                if handler != 0 {
                    // SAFETY: only `install` stores into the table, and only `Handler`s.
                    let handler: Handler = unsafe { core::mem::transmute(handler) };
                    handler(port as u32);
                }
                if WAITERS[port].load(Ordering::Acquire) != 0 {
                    crate::sched::futex_wake(COUNTS[port].as_ptr(), u32::MAX);
                }
            }
        }
    }
}

