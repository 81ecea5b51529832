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
