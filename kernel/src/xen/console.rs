//! The guest console: Xen's own console (`console_io`) as dom0, the PV console ring as a domU.
//!
//! Everything the guest prints goes through here: stdout, stderr, kernel log lines, the crash
//! report and the exit record, framed as `docs/abi.md` says when the runner asked for it.

use core::ptr::{addr_of, addr_of_mut};
use core::sync::atomic::{AtomicBool, AtomicU8, Ordering, fence};

use super::abi::XenconsInterface;
use super::hypercall;
use crate::cmdline::ConsoleMode;
use crate::framing::{self, Kind};
use crate::arch::x86_64::irq as events;
use crate::log::Level;

/// Where console bytes go.
enum Sink {
    /// Xen's console through `CONSOLEIO_write` (dom0, and every guest before the ring is known).
    Hypervisor,
    /// The PV console ring shared with the console backend.
    Ring { ring: *mut XenconsInterface, port: u32 },
}

struct Console {
    sink: Sink,
}

static LOCK: AtomicBool = AtomicBool::new(false);
static MODE: AtomicU8 = AtomicU8::new(ConsoleMode::Plain as u8);
static mut CONSOLE: Console = Console { sink: Sink::Hypervisor };

/// How long a full ring may stay full before output is dropped, in ns of Xen system time.
const STALL_LIMIT_NS: u64 = 2_000_000_000;

/// Holds the console (with upcalls masked); a crash report takes it even from a holder that
/// will never let go.
struct Guard {
    owns: bool,
    was_masked: bool,
}

impl Guard {
    fn take() -> Guard {
        let was_masked = events::mask();
        let mut spins = 0u64;
        while LOCK.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err()
        {
            core::hint::spin_loop();
            spins += 1;
            if spins > 100_000_000 {
                // The holder is gone (a fault while printing): take over rather than hang.
                return Guard { owns: false, was_masked };
            }
        }
        Guard { owns: true, was_masked }
    }

    fn console(&mut self) -> &mut Console {
        // SAFETY: holding the guard (or having given up on a dead holder) makes this the only
        // reference to the console.
        unsafe { &mut *addr_of_mut!(CONSOLE) }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.owns {
            LOCK.store(false, Ordering::Release);
        }
        events::restore(self.was_masked);
    }
}

/// Switches output to the PV console ring at `ring`, notified through event channel `port`.
///
/// # Safety
///
/// `ring` must map the console page Xen gave this domain, for the rest of the guest's life.
pub unsafe fn use_ring(ring: *mut XenconsInterface, port: u32) {
    Guard::take().console().sink = Sink::Ring { ring, port };
}

/// Sets plain or framed output.
pub fn set_mode(mode: ConsoleMode) {
    MODE.store(mode as u8, Ordering::Relaxed);
}

fn framed() -> bool {
    MODE.load(Ordering::Relaxed) == ConsoleMode::Framed as u8
}

impl Console {
    /// Writes all of `bytes`, or gives up after the backend stalled; returns what was written.
    fn write_raw(&mut self, bytes: &[u8]) -> usize {
        match self.sink {
            Sink::Hypervisor => {
                let ret = hypercall::console_write(bytes);
                if ret < 0 { 0 } else { bytes.len() }
            }
            // SAFETY: `use_ring` was given the mapped console page.
            Sink::Ring { ring, port } => unsafe { ring_write(ring, port, bytes) },
        }
    }

    fn write(&mut self, kind: Kind, bytes: &[u8]) -> usize {
        if framed() {
            framing::encode(kind, bytes, |record| {
                self.write_raw(record);
            });
            bytes.len()
        } else {
            self.write_raw(bytes)
        }
    }

    /// Waits until the backend has read everything, for at most `STALL_LIMIT_NS`.
    fn flush(&mut self) {
        if let Sink::Ring { ring, port } = self.sink {
            let deadline = crate::time::monotonic_ns() + STALL_LIMIT_NS;
            // SAFETY: `use_ring` was given the mapped console page.
            while unsafe { ring_pending(ring) } > 0 && crate::time::monotonic_ns() < deadline {
                hypercall::poll(&[port], crate::time::monotonic_ns() + 10_000_000);
            }
        }
    }
}

const RING_OUT_SIZE: u32 = 2048;

/// Bytes the backend has not read yet; a corrupt consumer index counts as nothing pending.
///
/// # Safety
///
/// `ring` must point to the mapped console page.
unsafe fn ring_pending(ring: *mut XenconsInterface) -> u32 {
    // SAFETY: the caller guarantees the page; the backend may change `out_cons` at any time,
    // so it is read once, volatile.
    let (cons, prod) = unsafe {
        (addr_of!((*ring).out_cons).read_volatile(), addr_of!((*ring).out_prod).read_volatile())
    };
    let pending = prod.wrapping_sub(cons);
    if pending > RING_OUT_SIZE { 0 } else { pending }
}

/// Copies `bytes` into the console ring's output half, waiting for room as needed.
///
/// # Safety
///
/// `ring` must point to the mapped console page.
unsafe fn ring_write(ring: *mut XenconsInterface, port: u32, bytes: &[u8]) -> usize {
    let mut written = 0;
    let mut stalled_since: Option<u64> = None;
    while written < bytes.len() {
        // SAFETY: as above; `out_prod` is ours, `out_cons` the backend's, read once.
        let (cons, mut prod) = unsafe {
            (addr_of!((*ring).out_cons).read_volatile(), addr_of!((*ring).out_prod).read_volatile())
        };
        let used = prod.wrapping_sub(cons);
        if used > RING_OUT_SIZE {
            // The backend wrote a consumer index past what we produced: nothing is safe to
            // assume about the ring any more, so output stops here.
            return written;
        }
        let room = (RING_OUT_SIZE - used) as usize;
        if room == 0 {
            let now = crate::time::monotonic_ns();
            let since = *stalled_since.get_or_insert(now);
            if now - since > STALL_LIMIT_NS {
                return written;
            }
            hypercall::poll(&[port], now + 10_000_000);
            continue;
        }
        stalled_since = None;
        let take = room.min(bytes.len() - written);
        for &byte in &bytes[written..written + take] {
            let at = (prod % RING_OUT_SIZE) as usize;
            // SAFETY: `at` is within `output`, which only we write.
            unsafe { addr_of_mut!((*ring).output[at]).write_volatile(byte) };
            prod = prod.wrapping_add(1);
        }
        // io/console.h: the data must be visible to the backend before the producer index.
        fence(Ordering::Release);
        // SAFETY: `out_prod` is ours to write.
        unsafe { addr_of_mut!((*ring).out_prod).write_volatile(prod) };
        fence(Ordering::SeqCst);
        hypercall::evtchn_send(port);
        written += take;
    }
    written
}

/// Writes program output (`stream` 1 stdout, 2 stderr); returns bytes taken or `-errno`.
pub fn write_stream(stream: u32, bytes: &[u8]) -> isize {
    let kind = match stream {
        1 => Kind::Stdout,
        2 => Kind::Stderr,
        _ => return -super::abi::errno::EBADF,
    };
    let written = Guard::take().console().write(kind, bytes);
    if written == 0 && !bytes.is_empty() { -super::abi::errno::EIO } else { written as isize }
}

/// Writes one kernel log line.
pub fn log_line(level: Level, text: &[u8]) {
    let mut guard = Guard::take();
    let console = guard.console();
    if framed() {
        let mut line = [0u8; 258];
        line[0] = level.letter();
        line[1] = b' ';
        let len = text.len().min(256);
        line[2..2 + len].copy_from_slice(&text[..len]);
        console.write(Kind::Log, &line[..2 + len]);
    } else {
        console.write_raw(b"[xen] ");
        console.write_raw(level.name().as_bytes());
        console.write_raw(b": ");
        console.write_raw(text);
        console.write_raw(b"\n");
    }
}

/// Writes one line of a crash report (as a `C` record when framed).
pub fn crash_line(text: &[u8]) {
    let mut guard = Guard::take();
    let console = guard.console();
    if framed() {
        console.write(Kind::Crash, text);
    } else {
        console.write_raw(b"[xen] crash: ");
        console.write_raw(text);
        console.write_raw(b"\n");
    }
}

/// Writes a thread record (`T`: its id, its stack's guard page and its name), by which the
/// runner names a thread whose stack overflowed. Nothing when not framed.
pub fn thread_record(id: u64, guard: u64, name: &[u8]) {
    if !framed() {
        return;
    }
    use core::fmt::Write;
    let mut line = crate::log::LineBuf::new();
    let _ = write!(line, "id={id} guard={guard:#x} name=");
    let mut record = [0u8; 256];
    let head = line.as_bytes();
    let take = name.len().min(record.len() - head.len());
    record[..head.len()].copy_from_slice(head);
    record[head.len()..head.len() + take].copy_from_slice(&name[..take]);
    Guard::take().console().write(Kind::Thread, &record[..head.len() + take]);
}

/// Writes the exit record (`X` and `what`) and waits until the backend has read everything.
pub fn finish(what: &[u8]) {
    let mut guard = Guard::take();
    let console = guard.console();
    if framed() {
        console.write(Kind::Exit, what);
    }
    console.flush();
}

/// Console input: bytes taken out of the ring's input half, waiting for a reader of stdin.
struct Input {
    buf: [u8; INPUT_BUF],
    head: usize,
    len: usize,
}

const INPUT_BUF: usize = 4096;
const RING_IN_SIZE: u32 = 1024;

static INPUT: crate::sync::SpinLock<Input> =
    crate::sync::SpinLock::new(Input { buf: [0; INPUT_BUF], head: 0, len: 0 });
/// Bumped when input arrives: the futex word readers wait on.
static INPUT_COUNT: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);
static INPUT_RING: core::sync::atomic::AtomicPtr<XenconsInterface> =
    core::sync::atomic::AtomicPtr::new(core::ptr::null_mut());
static INPUT_PORT: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);
static INPUT_EOF: AtomicBool = AtomicBool::new(true);

/// Starts taking input from the PV console ring (a domU), unless `eof` says stdin is empty.
///
/// # Safety
///
/// As for [`use_ring`], with the same page and port.
pub unsafe fn start_input(ring: *mut XenconsInterface, port: u32, eof: bool) {
    INPUT_RING.store(ring, Ordering::Release);
    INPUT_PORT.store(port, Ordering::Release);
    INPUT_EOF.store(eof, Ordering::Release);
    if super::evtchn::set_handler(port, input_event).is_err() {
        warn!("cannot listen on the console's event channel: no console input");
        INPUT_EOF.store(true, Ordering::Release);
    }
}

fn input_event(_port: u32) {
    pump_input();
}

/// Moves what the backend put in the input ring into the input buffer, as far as it has room.
fn pump_input() {
    let ring = INPUT_RING.load(Ordering::Acquire);
    if ring.is_null() {
        return;
    }
    let mut input = INPUT.lock();
    // SAFETY: `start_input` was given the mapped console page; `in_prod` is the backend's,
    // read once; `in_cons` is ours.
    let (cons, prod) = unsafe {
        (addr_of!((*ring).in_cons).read_volatile(), addr_of!((*ring).in_prod).read_volatile())
    };
    let avail = prod.wrapping_sub(cons);
    if avail == 0 {
        return;
    }
    if avail > RING_IN_SIZE {
        // No correct backend does this; skip what it claims, keep the ring usable.
        warn!("console: the backend's input index is {avail} bytes ahead; input dropped");
        // SAFETY: `in_cons` is ours to write.
        unsafe { addr_of_mut!((*ring).in_cons).write_volatile(prod) };
        return;
    }
    fence(Ordering::Acquire);
    let take = (avail as usize).min(INPUT_BUF - input.len);
    for i in 0..take {
        // SAFETY: the index is reduced into `input`.
        let byte = unsafe { addr_of!((*ring).input[(cons.wrapping_add(i as u32) % RING_IN_SIZE) as usize]).read_volatile() };
        let at = (input.head + input.len) % INPUT_BUF;
        input.buf[at] = byte;
        input.len += 1;
    }
    fence(Ordering::Release);
    // SAFETY: `in_cons` is ours to write.
    unsafe { addr_of_mut!((*ring).in_cons).write_volatile(cons.wrapping_add(take as u32)) };
    drop(input);
    if take > 0 {
        hypercall::evtchn_send(INPUT_PORT.load(Ordering::Acquire));
        INPUT_COUNT.fetch_add(1, Ordering::AcqRel);
        crate::sched::futex_wake(INPUT_COUNT.as_ptr(), u32::MAX);
    }
}

/// Reads console input into `buf`, waiting until some has come; 0 means end of input (stdin
/// was asked to be empty, or there is no console input, as dom0).
pub fn read_input(buf: &mut [u8]) -> isize {
    if buf.is_empty() || INPUT_EOF.load(Ordering::Acquire) {
        return 0;
    }
    loop {
        let seen = INPUT_COUNT.load(Ordering::Acquire);
        pump_input();
        {
            let mut input = INPUT.lock();
            let take = input.len.min(buf.len());
            for slot in buf[..take].iter_mut() {
                *slot = input.buf[input.head];
                input.head = (input.head + 1) % INPUT_BUF;
            }
            input.len -= take;
            if take > 0 {
                return take as isize;
            }
        }
        // SAFETY: the counter is a static atomic u32.
        unsafe { crate::sched::futex_wait(INPUT_COUNT.as_ptr(), seen, u64::MAX) };
    }
}
