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
