//! A spin lock for the kernel's shared structures. Holding one masks event upcalls on this
//! vCPU, so an upcall (and the scheduler it may run) never meets a lock its own vCPU holds.

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, Ordering};

/// Data behind a spin lock.
pub struct SpinLock<T> {
    locked: AtomicBool,
    data: UnsafeCell<T>,
}

// SAFETY: the data is only reached through a guard, and one guard exists at a time.
unsafe impl<T: Send> Sync for SpinLock<T> {}

impl<T> SpinLock<T> {
    pub const fn new(data: T) -> Self {
        SpinLock { locked: AtomicBool::new(false), data: UnsafeCell::new(data) }
    }

    /// The data, without the lock.
    ///
    /// # Safety
    ///
    /// The caller holds the lock through a guard it gave up with [`SpinGuard::keep_locked`].
    pub unsafe fn data_unchecked(&self) -> *mut T {
        self.data.get()
    }

    /// Releases a lock held since [`SpinGuard::keep_locked`], leaving upcalls as they are.
    ///
    /// # Safety
    ///
    /// The lock is held by the caller in that way.
    pub unsafe fn unlock_raw(&self) {
        self.locked.store(false, Ordering::Release);
    }

    /// Masks upcalls, waits for the lock, and returns a guard that undoes both when dropped.
    pub fn lock(&self) -> SpinGuard<'_, T> {
        let was_masked = events::mask();
        while self.locked.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            core::hint::spin_loop();
        }
        SpinGuard { lock: self, was_masked }
    }
}

/// Access to a [`SpinLock`]'s data.
pub struct SpinGuard<'a, T> {
    lock: &'a SpinLock<T>,
    was_masked: bool,
}

impl<T> SpinGuard<'_, T> {
    /// Gives up the guard but keeps the lock held and upcalls masked, for a hand-over across a
    /// thread switch ([`SpinLock::unlock_raw`] ends it); returns whether upcalls were masked
    /// before the lock was taken.
    pub fn keep_locked(self) -> bool {
        let was_masked = self.was_masked;
        core::mem::forget(self);
        was_masked
    }

    /// Releases the lock but leaves upcalls masked; returns whether they were masked before
    /// the lock was taken, for the caller to restore later (the scheduler switches threads in
    /// between).
    pub fn unlock_keep_masked(self) -> bool {
        let was_masked = self.was_masked;
        self.lock.locked.store(false, Ordering::Release);
        core::mem::forget(self);
        was_masked
    }
}

impl<T> Deref for SpinGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> DerefMut for SpinGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard holds the lock.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T> Drop for SpinGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.locked.store(false, Ordering::Release);
        events::restore(self.was_masked);
    }
}

#[cfg(target_os = "none")]
mod events {
    pub use crate::arch::x86_64::irq::{mask, restore};
}

/// On the host (unit tests) there are no upcalls to mask.
#[cfg(not(target_os = "none"))]
mod events {
    pub fn mask() -> bool {
        true
    }
    pub fn restore(_was_masked: bool) {}
}

/// A lock that sleeps instead of spinning, for kernel code that blocks while holding it (a
/// xenstore request waiting for room in the ring). Built on the scheduler's futexes: 0 is
/// free, 1 held, 2 held with waiters.
#[cfg(target_os = "none")]
pub struct Mutex<T> {
    state: core::sync::atomic::AtomicU32,
    data: UnsafeCell<T>,
}

// SAFETY: the data is only reached through a guard, and one guard exists at a time.
#[cfg(target_os = "none")]
unsafe impl<T: Send> Sync for Mutex<T> {}

#[cfg(target_os = "none")]
impl<T> Mutex<T> {
    pub const fn new(data: T) -> Self {
        Mutex { state: core::sync::atomic::AtomicU32::new(0), data: UnsafeCell::new(data) }
    }

    /// Waits (sleeping) for the lock. Must not be called from an upcall handler.
    pub fn lock(&self) -> MutexGuard<'_, T> {
        if self.state.compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed).is_err() {
            while self.state.swap(2, Ordering::Acquire) != 0 {
                // SAFETY: `state` is a live atomic u32.
                unsafe { crate::sched::futex_wait(self.state.as_ptr(), 2, u64::MAX) };
            }
        }
        MutexGuard { lock: self }
    }
}

/// Access to a [`Mutex`]'s data.
#[cfg(target_os = "none")]
pub struct MutexGuard<'a, T> {
    lock: &'a Mutex<T>,
}

#[cfg(target_os = "none")]
impl<T> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock.
        unsafe { &*self.lock.data.get() }
    }
}

#[cfg(target_os = "none")]
impl<T> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard holds the lock.
        unsafe { &mut *self.lock.data.get() }
    }
}

#[cfg(target_os = "none")]
impl<T> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        if self.lock.state.swap(0, Ordering::Release) == 2 {
            crate::sched::futex_wake(self.lock.state.as_ptr(), 1);
        }
    }
}

/// A sleeping lock that serves its waiters in the order they came (a ticket lock on the
/// scheduler's futexes), for a lock held through disk I/O: with [`Mutex`] a thread that takes
/// it again at once after unlocking wins over the waiter just woken, every time, and starves it
/// (a writer in a loop against another writer, or against `exit`).
///
/// It also knows which thread holds it, so that a path that must not wait for itself (abort
/// from inside a call that holds it) can tell.
pub struct FairMutex<T> {
    /// The next ticket to hand out.
    next: core::sync::atomic::AtomicU32,
    /// The ticket that holds the lock; the futex the waiters sleep on.
    serving: core::sync::atomic::AtomicU32,
    /// The holder's thread id ([`fair::me`]), 0 when free.
    owner: core::sync::atomic::AtomicU64,
    data: UnsafeCell<T>,
}

// SAFETY: the data is only reached through a guard, and one guard exists at a time.
unsafe impl<T: Send> Sync for FairMutex<T> {}

impl<T> FairMutex<T> {
    pub const fn new(data: T) -> Self {
        use core::sync::atomic::{AtomicU32, AtomicU64};
        FairMutex { next: AtomicU32::new(0), serving: AtomicU32::new(0), owner: AtomicU64::new(0), data: UnsafeCell::new(data) }
    }

    /// Waits (sleeping) for the lock, after every thread that asked for it before. Must not be
    /// called from an upcall handler, nor by its holder.
    pub fn lock(&self) -> FairGuard<'_, T> {
        let ticket = self.next.fetch_add(1, Ordering::SeqCst);
        loop {
            let serving = self.serving.load(Ordering::SeqCst);
            if serving == ticket {
                break;
            }
            fair::wait(&self.serving, serving);
        }
        self.owner.store(fair::me(), Ordering::SeqCst);
        FairGuard { lock: self }
    }

    /// The lock if it is free and nobody waits for it; never waits.
    pub fn try_lock(&self) -> Option<FairGuard<'_, T>> {
        let serving = self.serving.load(Ordering::SeqCst);
        self.next.compare_exchange(serving, serving.wrapping_add(1), Ordering::SeqCst, Ordering::SeqCst).ok()?;
        self.owner.store(fair::me(), Ordering::SeqCst);
        Some(FairGuard { lock: self })
    }

    /// Whether the running thread holds the lock.
    pub fn held_by_me(&self) -> bool {
        self.owner.load(Ordering::SeqCst) == fair::me()
    }
}

/// Access to a [`FairMutex`]'s data.
pub struct FairGuard<'a, T> {
    lock: &'a FairMutex<T>,
}

impl<T> Deref for FairGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> DerefMut for FairGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard holds the lock.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T> Drop for FairGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.owner.store(0, Ordering::SeqCst);
        let serving = self.lock.serving.fetch_add(1, Ordering::SeqCst).wrapping_add(1);
        // A waiter took its ticket before this load, and sleeps or is about to see `serving`
        // changed; one that comes later reads the new `serving` itself.
        if self.lock.next.load(Ordering::SeqCst) != serving {
            // FIXME: wakes every waiter for the one whose turn it is; fine for the few threads
            // a program has in the filesystem at once.
            fair::wake_all(&self.lock.serving);
        }
    }
}

/// Sleeping and waking for [`FairMutex`]: the scheduler's futexes in the guest.
#[cfg(target_os = "none")]
mod fair {
    use core::sync::atomic::AtomicU32;

    pub fn wait(futex: &AtomicU32, seen: u32) {
        // SAFETY: `futex` is a live atomic u32.
        unsafe { crate::sched::futex_wait(futex.as_ptr(), seen, u64::MAX) };
    }

    pub fn wake_all(futex: &AtomicU32) {
        crate::sched::futex_wake(futex.as_ptr(), u32::MAX);
    }

    /// The running thread's id, never 0.
    pub fn me() -> u64 {
        crate::sched::current_id()
    }
}

/// On the host (unit tests), std's threads, yielding instead of sleeping.
#[cfg(not(target_os = "none"))]
mod fair {
    use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

    pub fn wait(futex: &AtomicU32, seen: u32) {
        while futex.load(Ordering::SeqCst) == seen {
            std::thread::yield_now();
        }
    }

    pub fn wake_all(_futex: &AtomicU32) {}

    pub fn me() -> u64 {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        std::thread_local!(static ID: u64 = NEXT.fetch_add(1, Ordering::Relaxed));
        ID.with(|id| *id)
    }
}

#[cfg(test)]
mod tests {
    use super::FairMutex;
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    #[test]
    fn fair_mutex_excludes() {
        let lock = Arc::new(FairMutex::new(0u64));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let lock = lock.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        let mut g = lock.lock();
                        let v = *g;
                        std::thread::yield_now();
                        *g = v + 1;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*lock.lock(), 40_000);
    }

    /// The holder that unlocks and locks again at once comes after the thread that waited.
    #[test]
    fn fair_mutex_serves_a_waiter_before_a_holder_that_comes_back() {
        let lock = Arc::new(FairMutex::new(Vec::new()));
        let mut g = lock.lock();
        let waiter = {
            let lock = lock.clone();
            std::thread::spawn(move || lock.lock().push("waiter"))
        };
        while lock.next.load(Ordering::SeqCst) != 2 {
            std::thread::yield_now();
        }
        g.push("holder");
        drop(g);
        lock.lock().push("holder again");
        waiter.join().unwrap();
        assert_eq!(*lock.lock(), ["holder", "waiter", "holder again"]);
    }

    #[test]
    fn fair_mutex_try_lock_and_owner() {
        let lock = Arc::new(FairMutex::new(()));
        assert!(!lock.held_by_me());
        let g = lock.try_lock().unwrap();
        assert!(lock.held_by_me());
        assert!(lock.try_lock().is_none());
        let other = lock.clone();
        assert!(!std::thread::spawn(move || other.held_by_me()).join().unwrap());
        drop(g);
        assert!(!lock.held_by_me());
        assert!(lock.try_lock().is_some());
    }
}
