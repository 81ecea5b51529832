//! The domain's lifecycle: shutdown and reboot requests from the toolstack.
//!
//! `xl shutdown` and `xl reboot` write `poweroff` or `reboot` into the domain's
//! `control/shutdown` key. A kernel thread watches it, takes each request (clearing the key,
//! which tells the toolstack the guest heard it), and then either hands it to the program, if
//! the program said it handles them ([`subscribe`]), or ends the program the way a Linux
//! process without a SIGTERM handler ends: exit status 143, then poweroff or reboot as asked.
//! `xl destroy` needs nothing from the guest.

use alloc::collections::VecDeque;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use crate::sync::SpinLock;
use crate::xen::abi::{ShutdownReason, errno};
use crate::xen::xenstore;

/// The exit status of a program ended by a request it did not handle (128 + SIGTERM).
pub const UNHANDLED_STATUS: i32 = 143;

/// How long the control thread's own xenstore calls may take.
const CALL_NS: u64 = 10_000_000_000;

/// A request from the toolstack, as the ABI numbers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Request {
    Poweroff = 0,
    Reboot = 1,
}

impl Request {
    /// How Xen is to end the domain for this request.
    fn reason(self) -> ShutdownReason {
        match self {
            Request::Poweroff => ShutdownReason::Poweroff,
            Request::Reboot => ShutdownReason::Reboot,
        }
    }
}

static SUBSCRIBED: AtomicBool = AtomicBool::new(false);
static REQUESTS: SpinLock<VecDeque<Request>> = SpinLock::new(VecDeque::new());
/// Bumped on each request handed to the program: the futex word.
static COUNT: AtomicU32 = AtomicU32::new(0);

fn deadline() -> u64 {
    crate::time::monotonic_ns().saturating_add(CALL_NS)
}

/// Starts the control thread (a domU with xenstore only).
pub fn start() {
    if !xenstore::available() {
        return;
    }
    if crate::sched::spawn_kernel(control, core::ptr::null_mut(), 32 << 10).is_none() {
        warn!("no memory for the control thread: xl shutdown will not reach this guest");
    }
}

/// From now on requests go to the program, which ends the domain itself.
pub fn subscribe() {
    SUBSCRIBED.store(true, Ordering::Release);
}

/// Waits until Xen system time `deadline` for the next request handed to the program.
pub fn next(deadline: u64) -> Result<Request, isize> {
    loop {
        let seen = COUNT.load(Ordering::Acquire);
        if let Some(request) = REQUESTS.lock().pop_front() {
            return Ok(request);
        }
        // SAFETY: `COUNT` is a static atomic u32.
        let woke = unsafe { crate::sched::futex_wait(COUNT.as_ptr(), seen, deadline) };
        if woke == crate::sched::FutexWait::TimedOut && REQUESTS.lock().is_empty() {
            return Err(-errno::ETIMEDOUT);
        }
    }
}

/// Ends the program with `status` the way exit, a return from `main` and a reboot exit end
/// it: its connections close (FIN after what it wrote), the mounts are written back, what it
/// sent is delivered (bounded: `net::stack::wait_delivered`), the vifs disconnect from their
/// backends (bounded: `net::netfront::disconnect_all`), then Xen ends the domain as `reason`
/// asks.
pub fn end_program(status: i32, reason: ShutdownReason) -> ! {
    // The first thread to end the program does it all; another one (an exit or abort that
    // its closing of the sockets provoked on a thread it woke) parks here for good.
    let first = crate::fs::claim_ending();
    crate::net::stack::begin_ending();
    if first {
        // What the program wrote to mounted disks and did not sync reaches them now
        // (meanwhile the network thread sends the connections' last data and FIN).
        crate::fs::sync_mounts_claimed();
    }
    crate::net::stack::wait_delivered();
    if first {
        crate::net::netfront::disconnect_all();
        crate::profile::report();
    }
    crate::exit_with(status, reason)
}

/// A toolstack request the program does not handle ends it as an exit does, on a thread of
/// its own: the control thread's 32 KiB stack is too small for a volume's write-back. The
/// control thread then has nothing more to hear and returns.
fn end_unhandled(request: Request) {
    extern "C" fn ender(arg: *mut u8) {
        let request = if arg as usize == Request::Reboot as usize { Request::Reboot } else { Request::Poweroff };
        end_program(UNHANDLED_STATUS, request.reason());
    }
    match crate::sched::spawn_kernel(ender, request as usize as *mut u8, 256 << 10) {
        // SAFETY: the handle is fresh and neither joined nor detached.
        Some(t) => unsafe { crate::sched::detach(t) },
        None => {
            warn!("no memory for the ending thread: ending without writing the mounts back");
            crate::exit_with(UNHANDLED_STATUS, request.reason());
        }
    }
}

/// What a `control/shutdown` value asks for; `Err` holds a value this kernel does not do.
fn parse(value: &[u8]) -> Result<Option<Request>, ()> {
    match value {
        b"" => Ok(None),
        b"poweroff" | b"halt" => Ok(Some(Request::Poweroff)),
        b"reboot" => Ok(Some(Request::Reboot)),
        _ => Err(()),
    }
}

extern "C" fn control(_: *mut u8) {
    // Tell the toolstack which requests this guest takes; a toolstack that does not let the
    // guest write there loses nothing but the hint.
    for key in [&b"control/feature-poweroff"[..], b"control/feature-reboot"] {
        if let Err(e) = xenstore::write(key, b"1", deadline()) {
            debug!("lifecycle: cannot write {}: errno {}", core::str::from_utf8(key).unwrap_or("?"), -e);
        }
    }
    let watch = match xenstore::watch(b"control/shutdown", deadline()) {
        Ok(watch) => watch,
        Err(e) => {
            warn!("cannot watch control/shutdown (errno {}): xl shutdown will not reach this guest", -e);
            return;
        }
    };
    loop {
        if let Err(e) = xenstore::next_event(watch, u64::MAX) {
            warn!("lifecycle: the watch on control/shutdown failed (errno {}); requests are no longer heard", -e);
            return;
        }
        let value = match xenstore::read(b"control/shutdown", deadline()) {
            Ok(value) => value,
            Err(e) if e == -2 => continue,
            Err(e) => {
                warn!("lifecycle: cannot read control/shutdown: errno {}", -e);
                continue;
            }
        };
        let request = match parse(&value) {
            Ok(None) => continue,
            Ok(Some(request)) => request,
            Err(()) => {
                warn!(
                    "the toolstack asked for \"{}\", which this kernel does not do; ignored",
                    core::str::from_utf8(&value).unwrap_or("(not UTF-8)")
                );
                let _ = xenstore::write(b"control/shutdown", b"", deadline());
                continue;
            }
        };
        // Clearing the key acknowledges the request.
        let _ = xenstore::write(b"control/shutdown", b"", deadline());
        if SUBSCRIBED.load(Ordering::Acquire) {
            info!("the toolstack asks for {request:?}: handed to the program");
            REQUESTS.lock().push_back(request);
            COUNT.fetch_add(1, Ordering::AcqRel);
            crate::sched::futex_wake(COUNT.as_ptr(), u32::MAX);
        } else {
            info!("the toolstack asks for {request:?}; the program does not handle it: ending it");
            end_unhandled(request);
            return;
        }
    }
}
