//! Threads and the scheduler: preemptive round-robin on Xen's one-shot vCPU timer.
//!
//! Every thread is in exactly one place: running, in the ready queue, waiting (on a futex
//! address, a deadline, or both, or a thread to join), or exited. The queues are intrusive
//! lists through the thread records, so the upcall handler never allocates. One lock guards all
//! of it, taken with upcalls masked. When nothing is ready the idle thread blocks the vCPU
//! (`SCHEDOP_block`), so an idle guest uses no CPU.
//!
//! Every vCPU runs threads from the one ready queue; each has its own idle thread and timer.
//! A vCPU that makes a thread ready while another idles wakes it with an IPI (an event
//! channel bound with `EVTCHNOP_bind_ipi`). The lock is handed over across a switch: the
//! switching thread keeps it until the next thread runs, so no other vCPU can pick up the
//! outgoing thread while its registers are still being saved.

mod switch;

use alloc::boxed::Box;
use core::ptr::{self, null_mut};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use self::switch::{FpuState, xen_switch};
use crate::arch::x86_64::irq;
use crate::arch::x86_64::percpu::{self, PerCpu};
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
    /// The unmapped page below the stack, for stack overflow reports.
    guard: u64,
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
            guard: 0,
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
    ready: Queue,
    /// Threads blocked on a futex address.
    futex_waiters: Queue,
    /// Threads with a deadline, earliest first, linked through `timer_next`.
    timers: *mut Thread,
    /// An exited, detached thread whose stack is freed once it is no longer on it.
    reap: *mut Thread,
}

// SAFETY: the raw pointers are only followed under the scheduler's lock.
unsafe impl Send for Scheduler {}

static SCHED: SpinLock<Scheduler> = SpinLock::new(Scheduler {
    ready: Queue::new(),
    futex_waiters: Queue::new(),
    timers: null_mut(),
    reap: null_mut(),
});

/// This vCPU's block; stable while upcalls are masked (the thread cannot move).
fn cpu() -> *mut PerCpu {
    percpu::this()
}

/// The thread running on this vCPU.
fn current() -> *mut Thread {
    // SAFETY: the block is live for the guest's life.
    unsafe { (*cpu()).current }
}

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
        kick_idle_cpu();
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
        let cpu = cpu();
        // SAFETY: the block and its current thread are live.
        unsafe {
            if !self.ready.is_empty() && !(*cpu).current.is_null() && (*cpu).current != (*cpu).idle {
                let end = (*(*cpu).current).slice_start + SLICE_NS;
                next = next.min(end.max(now + 100_000));
            }
            // Samples are taken while threads run, not while the vCPU idles.
            if (*cpu).current != (*cpu).idle
                && let Some(sample) = crate::profile::next_sample((*cpu).id)
            {
                next = next.min(sample);
            }
            let next = if next == u64::MAX { 0 } else { next };
            if next != (*cpu).armed {
                (*cpu).armed = next;
                hypercall::set_timer(next);
            }
        }
    }
}

/// Wakes one idle vCPU other than this one, if there is one, to run a newly ready thread.
fn kick_idle_cpu() {
    let me = cpu();
    for index in 0..percpu::online() {
        let other = percpu::block(index);
        // SAFETY: the blocks are live; `idling` is only changed under the scheduler's lock,
        // which the caller holds.
        unsafe {
            if other != me && (*other).idling {
                (*other).idling = false;
                hypercall::evtchn_send((*other).ipi_port);
                return;
            }
        }
    }
}

/// Switches from the current thread to the next ready one (or idle), and returns when the
/// current thread runs again (maybe on another vCPU). The current thread's state must be set
/// already. The lock stays held across the switch and is released by the thread switched to
/// (`finish_switch`).
fn switch_away(mut sched: crate::sync::SpinGuard<'_, Scheduler>) {
    debug_assert!(irq::masked());
    let cpu = cpu();
    // SAFETY: the block is live; upcalls are masked, so this thread stays on this vCPU.
    let (prev, idle) = unsafe { ((*cpu).current, (*cpu).idle) };
    let next = sched.ready.pop().unwrap_or(idle);
    if next == prev {
        // SAFETY: the current thread is live.
        unsafe { (*prev).state = State::Running };
        drop(sched);
        return;
    }
    // A slice only matters while others are ready (then `next` may be preempted at its end);
    // otherwise the latest time read will do, and saves a clock read.
    let now = if sched.ready.is_empty() { crate::time::recent_ns() } else { crate::time::monotonic_ns() };
    // SAFETY: both records are live; `prev` stays live until it is reaped after this switch.
    unsafe {
        (*next).state = State::Running;
        (*next).slice_start = now;
        (*cpu).current = next;
        sched.arm_timer(now);
        if (*next).tp != 0 && (*next).tp != (*cpu).fs_tp {
            hypercall::set_fs_base((*next).tp);
            (*cpu).fs_tp = (*next).tp;
        }
        let (save_rsp, save_fpu) = (&raw mut (*prev).rsp, &raw mut (*prev).fpu);
        let (next_rsp, next_fpu) = ((*next).rsp, &raw const (*next).fpu);
        // Upcalls stay masked and the lock stays held across the switch; this thread unmasks
        // upcalls again (if it had them unmasked) once it runs again.
        let was_masked = sched.keep_locked();
        xen_switch(save_rsp, next_rsp, save_fpu, next_fpu);
        finish_switch();
        irq::restore(was_masked);
    }
}

/// Runs on the thread that was switched to, which now holds the scheduler's lock: releases it
/// and frees a detached thread that exited.
fn finish_switch() {
    // SAFETY: the switching thread handed the lock over to us; nothing else touches `reap`.
    let reap = unsafe {
        let sched = SCHED.data_unchecked();
        let reap = core::mem::replace(&mut (*sched).reap, null_mut());
        SCHED.unlock_raw();
        reap
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
    let cpu = cpu();
    // SAFETY: the block is live. The timer is one-shot: once its event came it must be armed
    // again; until then it still stands (this upcall was for another event), and arming it
    // again would be a hypercall for nothing.
    let (current, idle) = unsafe {
        if (*cpu).timer_fired.swap(false, Ordering::AcqRel) || now >= (*cpu).armed {
            (*cpu).armed = 0;
        }
        ((*cpu).current, (*cpu).idle)
    };
    sched.expire_timers(now);
    // SAFETY: the current thread is live.
    let over = unsafe { now.saturating_sub((*current).slice_start) >= SLICE_NS };
    if !sched.ready.is_empty() && (current == idle || over) {
        if current != idle {
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

fn timer_event(port: u32) {
    // The port's vCPU may not be this one (an upcall takes every pending port it sees): that
    // vCPU then gets no upcall for it and still counts its timer as armed, so it is woken to
    // arm it again. The rest of the work happens in `preempt_if_due`, which every upcall runs
    // after the handlers.
    let me = cpu();
    for index in 0..percpu::online() {
        let block = percpu::block(index);
        // SAFETY: the blocks are live; a port's events come only once its vCPU armed its
        // timer, after `prepare_cpu` stored `timer_port`.
        unsafe {
            if (*block).timer_port == port {
                (*block).timer_fired.store(true, Ordering::Release);
                if block != me {
                    let _ = evtchn::notify((*block).ipi_port);
                }
            }
        }
    }
}

fn ipi_event(_port: u32) {
    // As for the timer: the upcall itself is the message.
}

/// The idle thread: blocks the vCPU until an event makes a thread ready.
extern "C" fn idle(_: *mut u8) -> ! {
    loop {
        let mut sched = SCHED.lock();
        let cpu = cpu();
        if !sched.ready.is_empty() {
            // SAFETY: the idle thread is live and stays out of the ready queue.
            unsafe {
                (*cpu).idling = false;
                (*(*cpu).current).state = State::Ready;
            }
            switch_away(sched);
            continue;
        }
        // Nothing is ready, so the time only bounds a slice that is not running.
        sched.arm_timer(crate::time::recent_ns());
        // SAFETY: the block is live; `idling` changes under the lock.
        unsafe { (*cpu).idling = true };
        // Release the lock but keep upcalls masked: SCHEDOP_block unmasks them atomically
        // with blocking, so an event (an IPI) that comes in between is not missed.
        sched.unlock_keep_masked();
        hypercall::block();
        let _sched = SCHED.lock();
        // SAFETY: as above.
        unsafe { (*cpu).idling = false };
    }
}

/// Where a secondary vCPU's idle thread starts, on its stack, with upcalls masked.
pub extern "C" fn secondary_idle() -> ! {
    idle(null_mut())
}

/// Turns the boot thread into the main thread, starts the other vCPUs and scheduling.
///
/// # Safety
///
/// Called once, on the main thread's stack, with its TLS block (`tp`) set up.
pub unsafe fn init(tp: u64, main_guard: u64) -> Result<(), &'static str> {
    let main = Box::into_raw(Box::new(Thread::new(NEXT_ID.fetch_add(1, Ordering::Relaxed))));
    // SAFETY: fresh records.
    unsafe {
        (*main).state = State::Running;
        (*main).tp = tp;
        (*main).guard = main_guard;
        (*main).slice_start = crate::time::monotonic_ns();
    }
    let idle = new_thread(idle_entry, null_mut(), 16 << 10, false).ok_or("no memory for the idle thread")?;
    crate::xen::console::thread_record(1, main_guard, b"main");
    let cpu = cpu();
    // SAFETY: the boot vCPU's block; nothing else runs yet.
    unsafe {
        // The idle thread runs kernel code only: no TLS (`PerCpu::fs_tp`).
        (*idle).tp = 0;
        (*cpu).current = main;
        (*cpu).idle = idle;
        // Boot loaded the main thread's TLS pointer.
        (*cpu).fs_tp = tp;
    }
    prepare_cpu(0)?;
    let hz = crate::boot::cmdline().profile_hz;
    if hz > 0 {
        crate::profile::start(hz);
    }
    crate::arch::x86_64::upcall::init();
    STARTED.store(true, Ordering::Release);
    crate::arch::x86_64::smp::start_secondaries();
    // Upcalls were masked since boot; from here events interrupt threads.
    irq::restore(false);
    Ok(())
}

extern "C" fn idle_entry(_: *mut u8) {
    idle(null_mut())
}

/// Binds vCPU `index`'s timer and IPI ports and stops its periodic timer.
pub fn prepare_cpu(index: u32) -> Result<(), &'static str> {
    hypercall::stop_periodic_timer(index);
    let port = evtchn::bind_virq(evtchn::VIRQ_TIMER, index, timer_event).map_err(|_| "cannot bind VIRQ_TIMER")?;
    // SAFETY: the block is live; its timer's events only come once its timer is armed, which
    // the vCPU does after this.
    unsafe { (*percpu::block(index as usize)).timer_port = port };
    let ipi = evtchn::bind_ipi(index, ipi_event).map_err(|_| "cannot bind an IPI port")?;
    // SAFETY: the block is live; the vCPU is not running threads yet.
    unsafe { (*percpu::block(index as usize)).ipi_port = ipi };
    Ok(())
}

/// Builds the idle thread of a secondary vCPU, which starts on `stack` directly; returns the
/// record and the stack's top.
pub fn new_secondary_idle() -> Option<(*mut Thread, u64)> {
    let mut thread = Box::new(Thread::new(NEXT_ID.fetch_add(1, Ordering::Relaxed)));
    let stack = mm::alloc_stack(16 << 10)?;
    let top = stack.top;
    thread.stack = Some(stack);
    thread.state = State::Running;
    Some((Box::into_raw(thread), top))
}

/// Builds a thread that starts in `entry(arg)`, with its own stack and TLS block.
fn new_thread(entry: extern "C" fn(*mut u8), arg: *mut u8, stack_bytes: usize, tls: bool) -> Option<*mut Thread> {
    let mut thread = Box::new(Thread::new(NEXT_ID.fetch_add(1, Ordering::Relaxed)));
    let stack = mm::alloc_stack(stack_bytes)?;
    // SAFETY: the stack is fresh, mapped and has room for the initial frame.
    thread.rsp = unsafe { switch::initial_stack(stack.top) };
    thread.guard = stack.guard();
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
    finish_switch();
    // SAFETY: the current thread is live; `entry` and `arg` were written before it was
    // made ready.
    let (entry, arg) = unsafe { ((*current()).entry, (*current()).arg) };
    irq::restore(false);
    if let Some(entry) = entry {
        entry(arg);
    }
    exit_current();
}

/// Creates a thread running `entry(arg)` with a stack of at least `stack_bytes` and a TLS
/// block (a program's thread); returns its handle.
pub fn spawn(entry: extern "C" fn(*mut u8), arg: *mut u8, stack_bytes: usize) -> Option<*mut Thread> {
    spawn_with(entry, arg, stack_bytes, true)
}

/// [`spawn`] for a kernel thread, which uses no TLS: switching to it keeps the FS base.
pub fn spawn_kernel(entry: extern "C" fn(*mut u8), arg: *mut u8, stack_bytes: usize) -> Option<*mut Thread> {
    spawn_with(entry, arg, stack_bytes, false)
}

fn spawn_with(entry: extern "C" fn(*mut u8), arg: *mut u8, stack_bytes: usize, tls: bool) -> Option<*mut Thread> {
    let thread = new_thread(entry, arg, stack_bytes.max(16 << 10), tls)?;
    let mut sched = SCHED.lock();
    // SAFETY: the fresh record is in no list.
    unsafe { sched.ready.push(thread) };
    kick_idle_cpu();
    let now = crate::time::monotonic_ns();
    sched.arm_timer(now);
    Some(thread)
}

/// Ends the running thread.
pub fn exit_current() -> ! {
    let mut sched = SCHED.lock();
    let me = current();
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
    let sched = SCHED.lock();
    // SAFETY: the caller guarantees the handle is live.
    unsafe {
        if (*thread).state != State::Exited {
            (*thread).joiner = current();
            (*current()).state = State::Waiting;
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
    let me = current();
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
        let me = current();
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
    let now = if deadline == u64::MAX { crate::time::recent_ns() } else { crate::time::monotonic_ns() };
    if deadline <= now {
        return FutexWait::TimedOut;
    }
    let me = current();
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
        sched.arm_timer(crate::time::recent_ns());
    }
    woken
}

/// The running thread's id and the guard page below its stack.
pub fn current_id_and_guard() -> (u64, u64) {
    let was_masked = irq::mask();
    let me = current();
    // Before the scheduler starts, the boot thread is `main`, id 1, with no guard known yet.
    // SAFETY: a non-null current thread is live.
    let found = if me.is_null() { (1, 0) } else { unsafe { ((*me).id, (*me).guard) } };
    irq::restore(was_masked);
    found
}

/// The running thread's id (1 is `main`).
pub fn current_id() -> u64 {
    current_id_and_guard().0
}

/// The x87/SSE state a new thread (or vCPU) starts with.
pub fn initial_fpu_state() -> [u8; 512] {
    FpuState::initial().0
}

/// Whether threads are running (after boot's `init`).
pub fn started() -> bool {
    STARTED.load(Ordering::Acquire)
}
