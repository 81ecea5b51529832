//! Threads and the scheduler: preemptive round-robin on Xen's one-shot vCPU timer.
//!
//! Every thread is in exactly one place: running, in the ready queue, waiting (on a futex
//! address, a deadline, or both, or a thread to join), or exited. The queues are intrusive
//! lists through the thread records, so the upcall handler never allocates. One lock guards all
//! of it, taken with upcalls masked. When nothing is ready the idle thread blocks the vCPU
//! (`SCHEDOP_block`), so an idle guest uses no CPU.
//!
//! FIXME: everything runs on vCPU 0. Secondary vCPUs need `VCPUOP_initialise`, per-vCPU
//! current-thread pointers and idle threads, and IPIs; until then `xk_cpu_count` says 1.

mod switch;

use alloc::boxed::Box;
use core::ptr::{self, null_mut};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use self::switch::{FpuState, xen_switch};
use crate::arch::x86_64::irq;
use crate::mm;
use crate::sync::SpinLock;
use crate::xen::{evtchn, hypercall};

/// A time slice: how long a thread runs before a ready one gets the vCPU.
const SLICE_NS: u64 = 10_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Running,
    Ready,
    Waiting,
    Exited,
}

/// A thread's record. Owned by the scheduler; std holds it as an opaque handle.
pub struct Thread {
    rsp: u64,
    fpu: FpuState,
    /// The ELF TLS thread pointer (FS base).
    tp: u64,
    state: State,
    /// Link in the ready queue or the futex wait list.
    next: *mut Thread,
    /// Link in the timer list, ordered by `deadline`.
    timer_next: *mut Thread,
    deadline: u64,
    in_timer_list: bool,
    /// The futex address waited on; 0 when none.
    futex: usize,
    timed_out: bool,
    joiner: *mut Thread,
    detached: bool,
    id: u64,
    stack: Option<mm::Stack>,
    tls: Option<(*mut u8, usize)>,
    entry: Option<extern "C" fn(*mut u8)>,
    arg: *mut u8,
    slice_start: u64,
}

impl Thread {
    fn new(id: u64) -> Thread {
        Thread {
            rsp: 0,
            fpu: FpuState::initial(),
            tp: 0,
            state: State::Ready,
            next: null_mut(),
            timer_next: null_mut(),
            deadline: 0,
            in_timer_list: false,
            futex: 0,
            timed_out: false,
            joiner: null_mut(),
            detached: false,
            id,
            stack: None,
            tls: None,
            entry: None,
            arg: null_mut(),
            slice_start: 0,
        }
    }
}

/// A FIFO of threads linked through `next`.
struct Queue {
    head: *mut Thread,
    tail: *mut Thread,
}

impl Queue {
    const fn new() -> Queue {
        Queue { head: null_mut(), tail: null_mut() }
    }

    fn is_empty(&self) -> bool {
        self.head.is_null()
    }

    /// # Safety
    ///
    /// `thread` is a live record in no other `next`-linked list.
    unsafe fn push(&mut self, thread: *mut Thread) {
        // SAFETY: the caller guarantees `thread`; `tail` is live while in the queue.
        unsafe {
            (*thread).next = null_mut();
            if self.tail.is_null() {
                self.head = thread;
            } else {
                (*self.tail).next = thread;
            }
        }
        self.tail = thread;
    }

    fn pop(&mut self) -> Option<*mut Thread> {
        let head = self.head;
        if head.is_null() {
            return None;
        }
        // SAFETY: records in the queue are live.
        self.head = unsafe { (*head).next };
        if self.head.is_null() {
            self.tail = null_mut();
        }
        Some(head)
    }

    /// Removes the first thread for which `pick` holds.
    fn remove_first(&mut self, mut pick: impl FnMut(&Thread) -> bool) -> Option<*mut Thread> {
        let mut prev: *mut Thread = null_mut();
        let mut at = self.head;
        while !at.is_null() {
            // SAFETY: records in the queue are live.
            let thread = unsafe { &mut *at };
            if pick(thread) {
                if prev.is_null() {
                    self.head = thread.next;
                } else {
                    // SAFETY: as above.
                    unsafe { (*prev).next = thread.next };
                }
                if self.tail == at {
                    self.tail = prev;
                }
                thread.next = null_mut();
                return Some(at);
            }
            prev = at;
            at = thread.next;
        }
        None
    }
}

struct Scheduler {
    current: *mut Thread,
    idle: *mut Thread,
    ready: Queue,
    /// Threads blocked on a futex address.
    futex_waiters: Queue,
    /// Threads with a deadline, earliest first, linked through `timer_next`.
    timers: *mut Thread,
    /// An exited, detached thread whose stack is freed once it is no longer on it.
    reap: *mut Thread,
    /// The deadline the Xen timer is armed for; 0 when disarmed.
    armed: u64,
}

// SAFETY: the raw pointers are only followed under the scheduler's lock.
unsafe impl Send for Scheduler {}

static SCHED: SpinLock<Scheduler> = SpinLock::new(Scheduler {
    current: null_mut(),
    idle: null_mut(),
    ready: Queue::new(),
    futex_waiters: Queue::new(),
    timers: null_mut(),
    reap: null_mut(),
    armed: 0,
});

static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static STARTED: AtomicBool = AtomicBool::new(false);

impl Scheduler {
    /// Inserts `thread` into the timer list at its deadline.
    fn add_timer(&mut self, thread: *mut Thread) {
        // SAFETY: `thread` and every record in the list are live.
        unsafe {
            let deadline = (*thread).deadline;
            let mut link: *mut *mut Thread = &mut self.timers;
            while !(*link).is_null() && (**link).deadline <= deadline {
                link = &mut (**link).timer_next;
            }
            (*thread).timer_next = *link;
            (*thread).in_timer_list = true;
            *link = thread;
        }
    }

    fn remove_timer(&mut self, thread: *mut Thread) {
        // SAFETY: as in `add_timer`.
        unsafe {
            if !(*thread).in_timer_list {
                return;
            }
            let mut link: *mut *mut Thread = &mut self.timers;
            while !(*link).is_null() {
                if *link == thread {
                    *link = (*thread).timer_next;
                    break;
                }
                link = &mut (**link).timer_next;
            }
            (*thread).in_timer_list = false;
            (*thread).timer_next = null_mut();
        }
    }

    /// Makes a waiting thread ready.
    fn wake(&mut self, thread: *mut Thread) {
        self.remove_timer(thread);
        // SAFETY: `thread` is live and in no `next`-linked list.
        unsafe {
            (*thread).state = State::Ready;
            self.ready.push(thread);
        }
    }

    /// Wakes every thread whose deadline has passed.
    fn expire_timers(&mut self, now: u64) {
        // SAFETY: records in the timer list are live.
        while !self.timers.is_null() && unsafe { (*self.timers).deadline } <= now {
            let thread = self.timers;
            unsafe {
                self.timers = (*thread).timer_next;
                (*thread).in_timer_list = false;
                (*thread).timer_next = null_mut();
                if (*thread).futex != 0 {
                    self.futex_waiters.remove_first(|t| ptr::eq(t, thread));
                    (*thread).futex = 0;
                    (*thread).timed_out = true;
                }
            }
            self.wake(thread);
        }
    }

    /// Arms Xen's timer for the next deadline or the end of the running thread's slice.
    fn arm_timer(&mut self, now: u64) {
        let mut next = u64::MAX;
        if !self.timers.is_null() {
            // SAFETY: records in the timer list are live.
            next = unsafe { (*self.timers).deadline };
        }
        if !self.ready.is_empty() && !self.current.is_null() {
            // SAFETY: the current thread is live.
            let end = unsafe { (*self.current).slice_start } + SLICE_NS;
            next = next.min(end.max(now + 100_000));
        }
        let next = if next == u64::MAX { 0 } else { next };
        if next != self.armed {
            self.armed = next;
            hypercall::set_timer(next);
        }
    }
}

/// Switches from the current thread to the next ready one (or idle), and returns when the
/// current thread runs again. The current thread's state must be set already.
///
/// The lock is released before the switch: upcalls stay masked, and only this vCPU runs
/// the scheduler, so nothing can come between.
fn switch_away(mut sched: crate::sync::SpinGuard<'_, Scheduler>) {
    debug_assert!(irq::masked());
    let prev = sched.current;
    let next = sched.ready.pop().unwrap_or(sched.idle);
    if next == prev {
        // SAFETY: the current thread is live.
        unsafe { (*prev).state = State::Running };
        drop(sched);
        return;
    }
    let now = crate::time::monotonic_ns();
    // SAFETY: both records are live; `prev` stays live until it is reaped after this switch.
    unsafe {
        (*next).state = State::Running;
        (*next).slice_start = now;
        sched.current = next;
        sched.arm_timer(now);
        if (*next).tp != (*prev).tp {
            hypercall::set_fs_base((*next).tp);
        }
        let (save_rsp, save_fpu) = (&raw mut (*prev).rsp, &raw mut (*prev).fpu);
        let (next_rsp, next_fpu) = ((*next).rsp, &raw const (*next).fpu);
        // Upcalls stay masked across the switch; this thread unmasks them again (if it had
        // them unmasked) once it runs again.
        let was_masked = sched.unlock_keep_masked();
        xen_switch(save_rsp, next_rsp, save_fpu, next_fpu);
        after_switch();
        irq::restore(was_masked);
    }
}

/// Runs on the thread that was switched to: frees a detached thread that exited.
fn after_switch() {
    let reap = {
        let mut sched = SCHED.lock();
        core::mem::replace(&mut sched.reap, null_mut())
    };
    if !reap.is_null() {
        // SAFETY: the exited thread is off its stack now, and nothing refers to it.
        unsafe { free_thread(reap) };
    }
}

/// # Safety
///
/// `thread` exited and nothing refers to it any more.
unsafe fn free_thread(thread: *mut Thread) {
    // SAFETY: the caller guarantees it; the record came from `Box::into_raw`.
    let thread = unsafe { Box::from_raw(thread) };
    if let Some(stack) = thread.stack {
        mm::free_stack(stack);
    }
    if let Some((tls, frames)) = thread.tls {
        mm::free_frames(tls, frames);
    }
}

/// Called by the upcall after events were handled: expires timers and, when the running
/// thread's slice is over and another is ready, switches.
pub fn preempt_if_due() {
    if !STARTED.load(Ordering::Acquire) {
        return;
    }
    let mut sched = SCHED.lock();
    let now = crate::time::monotonic_ns();
    sched.armed = 0;
    sched.expire_timers(now);
    let current = sched.current;
    // SAFETY: the current thread is live.
    let over = unsafe { now.saturating_sub((*current).slice_start) >= SLICE_NS };
    if !sched.ready.is_empty() && (current == sched.idle || over) {
        if current != sched.idle {
            // SAFETY: as above; the running thread is in no list.
            unsafe {
                (*current).state = State::Ready;
                sched.ready.push(current);
            }
        }
        switch_away(sched);
        return;
    }
    sched.arm_timer(now);
}

fn timer_event(_port: u32) {
    // The work happens in `preempt_if_due`, which every upcall runs.
}

/// The idle thread: blocks the vCPU until an event makes a thread ready.
extern "C" fn idle(_: *mut u8) {
    loop {
        let mut sched = SCHED.lock();
        if !sched.ready.is_empty() {
            // SAFETY: the idle thread is live and stays out of the ready queue.
            unsafe { (*sched.current).state = State::Ready };
            switch_away(sched);
            continue;
        }
        // Release the lock but keep upcalls masked: SCHEDOP_block unmasks them atomically
        // with blocking, so an event that comes in between is not missed.
        sched.unlock_keep_masked();
        hypercall::block();
    }
}

/// Turns the boot thread into the main thread and starts scheduling.
///
/// # Safety
///
/// Called once, on the main thread's stack, with its TLS block (`tp`) set up.
pub unsafe fn init(tp: u64) -> Result<(), &'static str> {
    let main = Box::into_raw(Box::new(Thread::new(NEXT_ID.fetch_add(1, Ordering::Relaxed))));
    // SAFETY: fresh records.
    unsafe {
        (*main).state = State::Running;
        (*main).tp = tp;
        (*main).slice_start = crate::time::monotonic_ns();
    }
    let idle = new_thread(idle, null_mut(), 16 << 10, false).ok_or("no memory for the idle thread")?;
    // SAFETY: as above; the idle thread shares the main TLS block (it never touches TLS).
    unsafe { (*idle).tp = tp };
    {
        let mut sched = SCHED.lock();
        sched.current = main;
        sched.idle = idle;
    }
    hypercall::stop_periodic_timer(0);
    evtchn::bind_virq(evtchn::VIRQ_TIMER, 0, timer_event).map_err(|_| "cannot bind VIRQ_TIMER")?;
    crate::arch::x86_64::upcall::init();
    STARTED.store(true, Ordering::Release);
    // Upcalls were masked since boot; from here events interrupt threads.
    irq::restore(false);
    Ok(())
}

/// Builds a thread that starts in `entry(arg)`, with its own stack and TLS block.
fn new_thread(entry: extern "C" fn(*mut u8), arg: *mut u8, stack_bytes: usize, tls: bool) -> Option<*mut Thread> {
    let mut thread = Box::new(Thread::new(NEXT_ID.fetch_add(1, Ordering::Relaxed)));
    let stack = mm::alloc_stack(stack_bytes)?;
    // SAFETY: the stack is fresh, mapped and has room for the initial frame.
    thread.rsp = unsafe { switch::initial_stack(stack.top) };
    thread.stack = Some(stack);
    if tls {
        let block = crate::tls::new_block()?;
        thread.tp = block.tp;
        thread.tls = Some((block.base, block.frames));
    }
    thread.entry = Some(entry);
    thread.arg = arg;
    Some(Box::into_raw(thread))
}

/// Where every new thread starts (from `xen_thread_trampoline`), upcalls masked.
extern "C" fn thread_start() -> ! {
    after_switch();
    let (entry, arg) = {
        let sched = SCHED.lock();
        // SAFETY: the current thread is live.
        unsafe { ((*sched.current).entry, (*sched.current).arg) }
    };
    irq::restore(false);
    if let Some(entry) = entry {
        entry(arg);
    }
    exit_current();
}

/// Creates a thread running `entry(arg)` with a stack of at least `stack_bytes`; returns its
/// handle.
pub fn spawn(entry: extern "C" fn(*mut u8), arg: *mut u8, stack_bytes: usize) -> Option<*mut Thread> {
    let thread = new_thread(entry, arg, stack_bytes.max(16 << 10), true)?;
    let mut sched = SCHED.lock();
    // SAFETY: the fresh record is in no list.
    unsafe { sched.ready.push(thread) };
    let now = crate::time::monotonic_ns();
    sched.arm_timer(now);
    Some(thread)
}

/// Ends the running thread.
pub fn exit_current() -> ! {
    let mut sched = SCHED.lock();
    let me = sched.current;
    // SAFETY: the running thread is live.
    unsafe {
        (*me).state = State::Exited;
        let joiner = core::mem::replace(&mut (*me).joiner, null_mut());
        if !joiner.is_null() {
            sched.wake(joiner);
        }
        if (*me).detached {
            sched.reap = me;
        }
    }
    switch_away(sched);
    unreachable!("an exited thread was scheduled again");
}

/// Waits until `thread` has exited, then frees it.
///
/// # Safety
///
/// `thread` is a handle from `spawn`, neither joined nor detached before.
pub unsafe fn join(thread: *mut Thread) {
    let mut sched = SCHED.lock();
    // SAFETY: the caller guarantees the handle is live.
    unsafe {
        if (*thread).state != State::Exited {
            (*thread).joiner = sched.current;
            (*sched.current).state = State::Waiting;
            switch_away(sched);
        } else {
            drop(sched);
        }
        free_thread(thread);
    }
}

/// Lets `thread` free itself when it exits.
///
/// # Safety
///
/// As for [`join`].
pub unsafe fn detach(thread: *mut Thread) {
    let sched = SCHED.lock();
    // SAFETY: the caller guarantees the handle is live.
    unsafe {
        if (*thread).state == State::Exited {
            drop(sched);
            free_thread(thread);
        } else {
            (*thread).detached = true;
        }
    }
}

/// Gives the vCPU to the next ready thread, if there is one.
pub fn yield_now() {
    let mut sched = SCHED.lock();
    if sched.ready.is_empty() {
        return;
    }
    let me = sched.current;
    // SAFETY: the running thread is live and in no list.
    unsafe {
        (*me).state = State::Ready;
        sched.ready.push(me);
    }
    switch_away(sched);
}

/// Blocks the running thread until Xen system time `deadline`.
pub fn sleep_until(deadline: u64) {
    loop {
        let mut sched = SCHED.lock();
        let now = crate::time::monotonic_ns();
        if now >= deadline {
            return;
        }
        let me = sched.current;
        // SAFETY: the running thread is live and in no list.
        unsafe {
            (*me).deadline = deadline;
            (*me).state = State::Waiting;
        }
        sched.add_timer(me);
        sched.arm_timer(now);
        switch_away(sched);
    }
}

/// Why a futex wait ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FutexWait {
    Woken,
    TimedOut,
    /// The value was not the expected one.
    Changed,
}

/// Blocks the running thread while `*addr == expected`, until a wake on `addr` or `deadline`
/// (u64::MAX: none).
///
/// # Safety
///
/// `addr` is valid for atomic reads of a `u32`.
pub unsafe fn futex_wait(addr: *const u32, expected: u32, deadline: u64) -> FutexWait {
    let mut sched = SCHED.lock();
    // SAFETY: the caller guarantees `addr`; read under the lock, so no wake can slip between
    // the check and the enqueue.
    let value = unsafe { core::sync::atomic::AtomicU32::from_ptr(addr as *mut u32) }.load(Ordering::SeqCst);
    if value != expected {
        return FutexWait::Changed;
    }
    let now = crate::time::monotonic_ns();
    if deadline <= now {
        return FutexWait::TimedOut;
    }
    let me = sched.current;
    // SAFETY: the running thread is live and in no list.
    unsafe {
        (*me).futex = addr as usize;
        (*me).timed_out = false;
        (*me).state = State::Waiting;
        sched.futex_waiters.push(me);
        if deadline != u64::MAX {
            (*me).deadline = deadline;
            sched.add_timer(me);
        }
    }
    sched.arm_timer(now);
    switch_away(sched);
    // SAFETY: the running thread is live.
    if unsafe { (*me).timed_out } { FutexWait::TimedOut } else { FutexWait::Woken }
}

/// Wakes up to `count` threads waiting on `addr`; returns how many.
pub fn futex_wake(addr: *const u32, count: u32) -> u32 {
    let mut sched = SCHED.lock();
    let mut woken = 0;
    while woken < count {
        let Some(thread) = sched.futex_waiters.remove_first(|t| t.futex == addr as usize) else {
            break;
        };
        // SAFETY: the record is live.
        unsafe { (*thread).futex = 0 };
        sched.wake(thread);
        woken += 1;
    }
    if woken > 0 {
        let now = crate::time::monotonic_ns();
        sched.arm_timer(now);
    }
    woken
}

/// The running thread's id (1 is `main`).
pub fn current_id() -> u64 {
    let sched = SCHED.lock();
    if sched.current.is_null() {
        return 1;
    }
    // SAFETY: the running thread is live.
    unsafe { (*sched.current).id }
}

/// Whether threads are running (after boot's `init`).
pub fn started() -> bool {
    STARTED.load(Ordering::Acquire)
}
