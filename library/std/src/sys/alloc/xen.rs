//! The global allocator on Xen: dlmalloc over page ranges that the kernel maps on request.

use crate::alloc::{GlobalAlloc, Layout, System};
use crate::sys::pal::abi;

const PAGE_SIZE: usize = 4096;

/// Hands dlmalloc page ranges from the kernel (`xk_pages_alloc`), which maps them lazily.
struct KernelPages;

// SAFETY: the ranges come from the kernel's page allocator, which never hands out a page twice
// and returns zeroed, mapped pages aligned to `PAGE_SIZE`, as the trait requires.
unsafe impl dlmalloc::Allocator for KernelPages {
    fn alloc(&self, size: usize) -> (*mut u8, usize, u32) {
        let Some(size) = size.checked_next_multiple_of(PAGE_SIZE) else {
            return (crate::ptr::null_mut(), 0, 0);
        };
        // SAFETY: `size` is a non-zero multiple of the page size.
        let ptr = unsafe { abi::xk_pages_alloc(size) };
        (ptr, size, 0)
    }

    fn remap(&self, _ptr: *mut u8, _old: usize, _new: usize, _can_move: bool) -> *mut u8 {
        crate::ptr::null_mut()
    }

    fn free_part(&self, ptr: *mut u8, old_size: usize, new_size: usize) -> bool {
        if old_size % PAGE_SIZE != 0 || new_size % PAGE_SIZE != 0 {
            return false;
        }
        // SAFETY: the tail `[ptr + new_size, ptr + old_size)` belongs to a range the kernel handed
        // out and dlmalloc no longer uses it.
        unsafe { abi::xk_pages_free(ptr.add(new_size), old_size - new_size) };
        true
    }

    fn free(&self, ptr: *mut u8, size: usize) -> bool {
        // SAFETY: dlmalloc gives back a whole range it got from `alloc` and no longer uses.
        unsafe { abi::xk_pages_free(ptr, size) };
        true
    }

    fn can_release_part(&self, _flags: u32) -> bool {
        true
    }

    fn allocates_zeros(&self) -> bool {
        true
    }

    fn page_size(&self) -> usize {
        PAGE_SIZE
    }
}

static DLMALLOC: lock::Locked = lock::Locked::new(dlmalloc::Dlmalloc::new_with_allocator(KernelPages));

#[stable(feature = "alloc_system_type", since = "1.28.0")]
unsafe impl GlobalAlloc for System {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which dlmalloc shares.
        DLMALLOC.with(|heap| unsafe { heap.malloc(layout.size(), layout.align()) })
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        DLMALLOC.with(|heap| unsafe { heap.calloc(layout.size(), layout.align()) })
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by this allocator with `layout`, as the caller guarantees.
        DLMALLOC.with(|heap| unsafe { heap.free(ptr, layout.size(), layout.align()) })
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc`, and `new_size` is valid for `layout.align()`.
        DLMALLOC.with(|heap| unsafe { heap.realloc(ptr, layout.size(), layout.align(), new_size) })
    }
}

mod lock {
    use crate::cell::UnsafeCell;
    use crate::sync::atomic::Ordering::{Acquire, Relaxed, Release};
    use crate::sync::atomic::{Atomic, AtomicBool};

    type Heap = dlmalloc::Dlmalloc<super::KernelPages>;

    /// Tries before a waiter yields: a heap call takes well under that many on another vCPU.
    const SPINS_BEFORE_YIELD: u32 = 100;

    /// The heap behind a spin lock: the allocator cannot use std's locks, which may allocate.
    pub struct Locked {
        busy: Atomic<bool>,
        heap: UnsafeCell<Heap>,
    }

    // SAFETY: `heap` is only reached through `with`, which holds `busy` for the whole access.
    unsafe impl Sync for Locked {}

    impl Locked {
        pub const fn new(heap: Heap) -> Self {
            Self { busy: AtomicBool::new(false), heap: UnsafeCell::new(heap) }
        }

        pub fn with<R>(&self, f: impl FnOnce(&mut Heap) -> R) -> R {
            let mut spins = 0;
            while self.busy.compare_exchange_weak(false, true, Acquire, Relaxed).is_err() {
                // The holder may be a thread that this vCPU's scheduler preempted: spinning on
                // would only end with this thread's time slice (a tenth of the network
                // bench's guest time went so with 16 server threads). A few spins wait for a
                // holder on another vCPU; then the holder gets the CPU.
                if spins < SPINS_BEFORE_YIELD {
                    spins += 1;
                    crate::hint::spin_loop();
                } else {
                    // With nothing else ready the yield returns at once: spin again before the
                    // next, rather than hammer the scheduler's lock.
                    crate::sys::pal::abi::xk_thread_yield();
                    spins = 0;
                }
            }
            // SAFETY: `busy` is held, so no other reference to the heap exists.
            let result = f(unsafe { &mut *self.heap.get() });
            self.busy.store(false, Release);
            result
        }
    }
}
