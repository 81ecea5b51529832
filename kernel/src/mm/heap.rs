//! The kernel's own heap (thread records and the like): dlmalloc over frames from the frame
//! allocator. Upcall handlers never allocate.

use core::alloc::{GlobalAlloc, Layout};

use crate::sync::SpinLock;

const PAGE: usize = 4096;

/// Hands dlmalloc frames from [`super::alloc_frames`].
struct Frames;

// SAFETY: the ranges come from the frame allocator: page-aligned, zeroed, mapped, and handed
// out once until given back.
unsafe impl dlmalloc::Allocator for Frames {
    fn alloc(&self, size: usize) -> (*mut u8, usize, u32) {
        let size = size.next_multiple_of(PAGE);
        match super::alloc_frames(size / PAGE) {
            Some(ptr) => (ptr, size, 0),
            None => (core::ptr::null_mut(), 0, 0),
        }
    }

    fn remap(&self, _ptr: *mut u8, _old: usize, _new: usize, _can_move: bool) -> *mut u8 {
        core::ptr::null_mut()
    }

    fn free_part(&self, ptr: *mut u8, old: usize, new: usize) -> bool {
        // SAFETY: the tail lies inside a range from `alloc`.
        old % PAGE == 0 && new % PAGE == 0 && super::free_frames(unsafe { ptr.add(new) }, (old - new) / PAGE)
    }

    fn free(&self, ptr: *mut u8, size: usize) -> bool {
        size % PAGE == 0 && super::free_frames(ptr, size / PAGE)
    }

    fn can_release_part(&self, _flags: u32) -> bool {
        true
    }

    fn allocates_zeros(&self) -> bool {
        true
    }

    fn page_size(&self) -> usize {
        PAGE
    }
}

struct Heap(SpinLock<dlmalloc::Dlmalloc<Frames>>);

#[global_allocator]
static HEAP: Heap = Heap(SpinLock::new(dlmalloc::Dlmalloc::new_with_allocator(Frames)));

// SAFETY: dlmalloc upholds `GlobalAlloc`'s contract; the lock makes each call exclusive.
unsafe impl GlobalAlloc for Heap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { self.0.lock().malloc(layout.size(), layout.align()) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this heap with `layout`.
        unsafe { self.0.lock().free(ptr, layout.size(), layout.align()) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        unsafe { self.0.lock().calloc(layout.size(), layout.align()) }
    }
}
