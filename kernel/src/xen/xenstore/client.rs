//! The xenstore client: many threads send requests at once, one reader thread takes replies
//! off the ring and hands each to the request with its id, and watch events to their watch.
//!
//! Writers hold a sleeping lock while they put a whole message into the request ring. A
//! request waits for its reply until its deadline; a reply that comes later is dropped. If
//! the daemon breaks the protocol (an index out of range, a length over the limit), the
//! connection is marked broken and every request fails with EIO from then on: nothing read
//! after that could be trusted.

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering};

use super::ring::XenstoreDomainInterface;
use super::wire::{self, Message, MsgType, Reassembler, WireError};
use crate::sync::{Mutex, SpinLock};
use crate::xen::abi::errno;
use crate::xen::evtchn::{self, Owner};

/// `ENODEV`: there is no xenstore (dom0 booted straight from Xen has none).
pub const ENODEV: isize = 19;
/// `E2BIG`.
pub const E2BIG: isize = 7;

/// How long requests may sit unread in the ring before the reader notifies the daemon again.
const KICK_NS: u64 = 200_000_000;

/// Watch events kept per watch before new ones are dropped (with a warning).
const WATCH_QUEUE_MAX: usize = 1024;

static RING: AtomicPtr<XenstoreDomainInterface> = AtomicPtr::new(core::ptr::null_mut());
static PORT: AtomicU32 = AtomicU32::new(0);
static READY: AtomicBool = AtomicBool::new(false);
static BROKEN: AtomicBool = AtomicBool::new(false);
static NEXT_REQ: AtomicU32 = AtomicU32::new(1);
static NEXT_WATCH: AtomicU64 = AtomicU64::new(1);

/// Serialises writers of the request ring, so messages never interleave.
static WRITER: Mutex<()> = Mutex::new(());
/// Requests waiting for their reply, by id.
static PENDING: SpinLock<Vec<(u32, Arc<Slot>)>> = SpinLock::new(Vec::new());
/// Live watches, by id (their token is `xk<id>`).
static WATCHES: SpinLock<Vec<(u64, Arc<WatchQueue>)>> = SpinLock::new(Vec::new());

/// Where a reply lands.
struct Slot {
    /// 0 while waiting, 1 when `reply` is filled: the futex word.
    done: AtomicU32,
    reply: SpinLock<Option<Result<Message, isize>>>,
}

/// Events of one watch.
pub struct WatchQueue {
    path: Vec<u8>,
    /// Whether events are being dropped (warned once per episode).
    overflowing: AtomicBool,
    /// Events dropped in the current episode.
    dropped: AtomicU64,
    /// Bumped on each event: the futex word.
    count: AtomicU32,
    events: SpinLock<VecDeque<Vec<u8>>>,
    /// Set by `unwatch`: a thread waiting in `next_event` then returns `EBADF`.
    ended: AtomicBool,
}

fn ring() -> &'static XenstoreDomainInterface {
    // SAFETY: set once by `init` to the mapped ring page, which stays mapped; only called
    // when READY says so.
    unsafe { &*RING.load(Ordering::Acquire) }
}

fn port() -> u32 {
    PORT.load(Ordering::Acquire)
}

/// Whether the kernel has a xenstore connection.
pub fn available() -> bool {
    READY.load(Ordering::Acquire)
}

/// Connects to xenstore through the ring page at `ring` and event channel `port`, and starts
/// the reader thread. Called once at boot, after the scheduler started.
///
/// # Safety
///
/// `ring` maps the xenstore page Xen gave this domain, for the rest of the guest's life.
pub unsafe fn init(ring: *mut XenstoreDomainInterface, port: u32) -> Result<(), &'static str> {
    RING.store(ring, Ordering::Release);
    PORT.store(port, Ordering::Release);
    evtchn::adopt(port, Owner::Kernel).map_err(|_| "cannot unmask the xenstore port")?;
    crate::sched::spawn_kernel(reader, core::ptr::null_mut(), 32 << 10).ok_or("no memory for the xenstore thread")?;
    READY.store(true, Ordering::Release);
    Ok(())
}

/// Fails everything waiting, after the connection broke.
fn break_connection(why: &str) {
    if !BROKEN.swap(true, Ordering::AcqRel) {
        error!("xenstore: {why}; xenstore calls fail with EIO from now on");
    }
    let waiting = core::mem::take(&mut *PENDING.lock());
    for (_, slot) in waiting {
        complete(&slot, Err(-errno::EIO));
    }
}

fn complete(slot: &Slot, result: Result<Message, isize>) {
    *slot.reply.lock() = Some(result);
    slot.done.store(1, Ordering::Release);
    crate::sched::futex_wake(slot.done.as_ptr(), 1);
}

/// The reader thread: takes messages off the reply ring for as long as the guest lives.
extern "C" fn reader(_: *mut u8) {
    let mut assembler = Reassembler::new();
    let mut buf = [0u8; 1024];
    loop {
        let seen = evtchn::count(port());
        let n = match ring().read_reply(&mut buf) {
            Ok(n) => n,
            Err(_) => {
                break_connection("the daemon corrupted the reply ring's indexes");
                return park();
            }
        };
        if n == 0 {
            let _ = evtchn::wait(port(), seen, u64::MAX);
            continue;
        }
        // Room was freed in the reply ring.
        let _ = evtchn::notify(port());
        let mut at = 0;
        while at < n {
            let (used, message) = assembler.feed(&buf[at..n]);
            at += used;
            match message {
                None => {}
                Some(Ok(message)) => deliver(message),
                Some(Err(_)) => {
                    break_connection("the daemon sent a message longer than the protocol allows");
                    return park();
                }
            }
        }
    }
}

/// Where the reader ends up after the connection broke: it waits forever, using nothing.
fn park() {
    loop {
        crate::sched::sleep_until(u64::MAX);
    }
}

fn deliver(message: Message) {
    if message.header.kind == MsgType::WatchEvent as u32 {
        return deliver_watch(&message.payload);
    }
    let id = message.header.req_id;
    let slot = {
        let mut pending = PENDING.lock();
        let at = pending.iter().position(|(req, _)| *req == id);
        at.map(|at| pending.swap_remove(at).1)
    };
    match slot {
        Some(slot) => complete(&slot, Ok(message)),
        None => debug!("xenstore: a reply to request {id}, which no longer waits: dropped"),
    }
}

fn deliver_watch(payload: &[u8]) {
    let Ok((path, token)) = wire::watch_event(payload) else {
        warn!("xenstore: a malformed watch event ({} bytes): dropped", payload.len());
        return;
    };
    let Some(id) = token.strip_prefix(b"xk").and_then(parse_u64) else {
        debug!("xenstore: a watch event with a token not ours: dropped");
        return;
    };
    let queue = WATCHES.lock().iter().find(|(w, _)| *w == id).map(|(_, q)| q.clone());
    let Some(queue) = queue else { return };
    {
        let mut events = queue.events.lock();
        if events.len() >= WATCH_QUEUE_MAX {
            queue.dropped.fetch_add(1, Ordering::Relaxed);
            if !queue.overflowing.swap(true, Ordering::AcqRel) {
                warn!("xenstore: watch {id} has {WATCH_QUEUE_MAX} unread events; new ones are dropped until it is read");
            }
            return;
        }
        if queue.overflowing.swap(false, Ordering::AcqRel) {
            warn!("xenstore: watch {id} dropped {} events", queue.dropped.swap(0, Ordering::Relaxed));
        }
        events.push_back(path.to_vec());
    }
    queue.count.fetch_add(1, Ordering::AcqRel);
    crate::sched::futex_wake(queue.count.as_ptr(), u32::MAX);
}

fn parse_u64(text: &[u8]) -> Option<u64> {
    if text.is_empty() || text.len() > 19 {
        return None;
    }
    text.iter().try_fold(0u64, |n, &d| d.is_ascii_digit().then(|| n * 10 + (d - b'0') as u64))
}

fn wire_errno(e: WireError) -> isize {
    match e {
        WireError::TooBig => -E2BIG,
        WireError::BadPath => -errno::EINVAL,
        WireError::Protocol => -errno::EIO,
    }
}

/// Puts all of `message` into the request ring. A message that fits the ring waits (until
/// `deadline`) for room for all of it, so a timeout never leaves half a message behind; a
/// longer one goes in pieces, and a timeout half-way breaks the connection.
fn send(message: &[u8], deadline: u64) -> Result<(), isize> {
    let _writer = WRITER.lock();
    let ring = ring();
    let mut at = 0;
    while at < message.len() {
        if BROKEN.load(Ordering::Acquire) {
            return Err(-errno::EIO);
        }
        let seen = evtchn::count(port());
        let room = {
            let cons = ring.req_cons.load(Ordering::Acquire);
            let prod = ring.req_prod.load(Ordering::Relaxed);
            super::ring::RING_SIZE.saturating_sub(prod.wrapping_sub(cons)) as usize
        };
        let whole = at == 0 && message.len() <= super::ring::RING_SIZE as usize;
        if room > 0 && (!whole || room >= message.len()) {
            match ring.write_request(&message[at..]) {
                Ok(n) => {
                    at += n;
                    let _ = evtchn::notify(port());
                    continue;
                }
                Err(_) => {
                    break_connection("the daemon corrupted the request ring's indexes");
                    return Err(-errno::EIO);
                }
            }
        }
        if evtchn::wait(port(), seen, deadline).is_err() {
            if at > 0 {
                break_connection("the daemon stopped reading in the middle of a request");
                return Err(-errno::EIO);
            }
            return Err(-errno::ETIMEDOUT);
        }
    }
    Ok(())
}

/// Sends one request of `kind` in transaction `tx` (0: none) with the payload `parts`, and
/// waits until Xen system time `deadline` for its reply; returns the reply's payload, or
/// `-errno` (the daemon's error, ETIMEDOUT, EIO for a broken connection).
pub fn request(kind: MsgType, tx: u32, parts: &[(&[u8], bool)], deadline: u64) -> Result<Vec<u8>, isize> {
    if !available() {
        return Err(-ENODEV);
    }
    if BROKEN.load(Ordering::Acquire) {
        return Err(-errno::EIO);
    }
    let mut id = NEXT_REQ.fetch_add(1, Ordering::Relaxed);
    if id == 0 {
        id = NEXT_REQ.fetch_add(1, Ordering::Relaxed);
    }
    let message = wire::encode(kind, id, tx, parts).map_err(wire_errno)?;
    let slot = Arc::new(Slot { done: AtomicU32::new(0), reply: SpinLock::new(None) });
    PENDING.lock().push((id, slot.clone()));
    if let Err(e) = send(&message, deadline) {
        forget(id);
        return Err(e);
    }
    let mut kicked = false;
    loop {
        if slot.done.load(Ordering::Acquire) == 1 {
            break;
        }
        // Xen 4.17's xenstored sometimes leaves requests in the ring until it is notified
        // again (seen with 16 threads on 2 vCPUs): while waiting, a request whose bytes are
        // still unread after `KICK_NS` notifies the daemon again.
        let slice = deadline.min(crate::time::monotonic_ns().saturating_add(KICK_NS));
        // SAFETY: `done` is a live atomic u32 (the slot is held by this Arc).
        let woke = unsafe { crate::sched::futex_wait(slot.done.as_ptr(), 0, slice) };
        if woke == crate::sched::FutexWait::TimedOut && slice < deadline {
            let r = ring();
            if r.req_cons.load(Ordering::Acquire) != r.req_prod.load(Ordering::Acquire) {
                if !kicked {
                    debug!("xenstore: request {id} unread after {} ms: notifying the daemon again", KICK_NS / 1_000_000);
                    kicked = true;
                }
                let _ = evtchn::notify(port());
            }
            continue;
        }
        if woke == crate::sched::FutexWait::TimedOut && slot.done.load(Ordering::Acquire) == 0 {
            forget(id);
            // The reply may have landed between the check and `forget`.
            if slot.done.load(Ordering::Acquire) == 0 {
                debug!("xenstore: request {id} timed out");
                return Err(-errno::ETIMEDOUT);
            }
        }
    }
    let reply = slot.reply.lock().take().unwrap_or(Err(-errno::EIO))?;
    if reply.header.kind == MsgType::Error as u32 {
        return Err(-wire::error_errno(&reply.payload));
    }
    if reply.header.kind != kind as u32 {
        warn!("xenstore: a reply of type {} to a request of type {}", reply.header.kind, kind as u32);
        return Err(-errno::EIO);
    }
    Ok(reply.payload)
}

fn forget(id: u32) {
    let mut pending = PENDING.lock();
    if let Some(at) = pending.iter().position(|(req, _)| *req == id) {
        pending.swap_remove(at);
    }
}

/// Reads the value at `path`.
pub fn read(path: &[u8], deadline: u64) -> Result<Vec<u8>, isize> {
    wire::check_path(path).map_err(wire_errno)?;
    request(MsgType::Read, 0, &[(path, true)], deadline)
}

/// Writes `value` at `path`.
pub fn write(path: &[u8], value: &[u8], deadline: u64) -> Result<(), isize> {
    wire::check_path(path).map_err(wire_errno)?;
    request(MsgType::Write, 0, &[(path, true), (value, false)], deadline).map(drop)
}

/// Starts watching `path` (and everything below it); the daemon fires one event at once.
/// Returns the watch's id.
pub fn watch(path: &[u8], deadline: u64) -> Result<u64, isize> {
    wire::check_path(path).map_err(wire_errno)?;
    let id = NEXT_WATCH.fetch_add(1, Ordering::Relaxed);
    let queue = Arc::new(WatchQueue {
        path: path.to_vec(),
        overflowing: AtomicBool::new(false),
        dropped: AtomicU64::new(0),
        count: AtomicU32::new(0),
        events: SpinLock::new(VecDeque::new()),
        ended: AtomicBool::new(false),
    });
    // Registered before the request, so that the first event finds it.
    WATCHES.lock().push((id, queue));
    let token = token(id);
    match request(MsgType::Watch, 0, &[(path, true), (token.as_bytes(), true)], deadline) {
        Ok(_) => Ok(id),
        Err(e) => {
            drop_watch(id);
            Err(e)
        }
    }
}

fn token(id: u64) -> crate::log::LineBuf {
    use core::fmt::Write;
    let mut token = crate::log::LineBuf::new();
    let _ = write!(token, "xk{id}");
    token
}

fn drop_watch(id: u64) -> Option<Arc<WatchQueue>> {
    let mut watches = WATCHES.lock();
    let at = watches.iter().position(|(w, _)| *w == id)?;
    Some(watches.swap_remove(at).1)
}

/// Waits until Xen system time `deadline` for watch `id`'s next event; returns the path that
/// changed, or `EBADF` once the watch is ended (also when [`unwatch`] ends it meanwhile).
pub fn next_event(id: u64, deadline: u64) -> Result<Vec<u8>, isize> {
    let queue = WATCHES.lock().iter().find(|(w, _)| *w == id).map(|(_, q)| q.clone());
    let queue = queue.ok_or(-errno::EBADF)?;
    loop {
        let seen = queue.count.load(Ordering::Acquire);
        if let Some(path) = queue.events.lock().pop_front() {
            return Ok(path);
        }
        if BROKEN.load(Ordering::Acquire) {
            return Err(-errno::EIO);
        }
        if queue.ended.load(Ordering::Acquire) {
            return Err(-errno::EBADF);
        }
        // SAFETY: `count` is a live atomic u32 (the queue is held by this Arc).
        let woke = unsafe { crate::sched::futex_wait(queue.count.as_ptr(), seen, deadline) };
        if woke == crate::sched::FutexWait::TimedOut && queue.events.lock().is_empty() {
            return Err(-errno::ETIMEDOUT);
        }
    }
}

/// Ends watch `id`; a thread waiting in [`next_event`] for it returns `EBADF`.
pub fn unwatch(id: u64, deadline: u64) -> Result<(), isize> {
    let queue = drop_watch(id).ok_or(-errno::EBADF)?;
    queue.ended.store(true, Ordering::Release);
    queue.count.fetch_add(1, Ordering::AcqRel);
    crate::sched::futex_wake(queue.count.as_ptr(), u32::MAX);
    let token = token(id);
    request(MsgType::Unwatch, 0, &[(&queue.path, true), (token.as_bytes(), true)], deadline).map(drop)
}
