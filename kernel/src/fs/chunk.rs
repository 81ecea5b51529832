//! The memory a written file's contents live in: one page-sized chunk at a time.
//!
//! In the guest a chunk is one frame straight from the frame allocator (zeroed, mapped), so
//! file data never goes through the kernel heap, whose spin lock masks upcalls: a large write
//! takes and gives back the frame allocator's lock once per page. A few frames are always left
//! free for the program's own heap ([`RESERVE_FRAMES`]). On the host (unit tests) a chunk is a
//! boxed array, and a per-thread budget lets tests run out of memory on purpose.

/// The bytes in one chunk: a frame.
pub const CHUNK: usize = 4096;

#[cfg(target_os = "none")]
pub use self::target::*;

#[cfg(not(target_os = "none"))]
pub use self::host::*;

#[cfg(target_os = "none")]
mod target {
    use super::CHUNK;
    use core::ptr::NonNull;

    /// Frames that files may not take, so that the program's heap and the kernel can still
    /// allocate when files have filled memory (256 KiB).
    pub const RESERVE_FRAMES: usize = 64;

    /// One zeroed frame owned by a file.
    pub struct Chunk(NonNull<[u8; CHUNK]>);

    // SAFETY: a chunk is plain memory that only its owner reaches.
    unsafe impl Send for Chunk {}

    impl Chunk {
        /// A zeroed chunk, or `None` when memory (beyond the reserve) is out.
        pub fn new() -> Option<Chunk> {
            if crate::mm::free_frame_count() <= RESERVE_FRAMES {
                return None;
            }
            let frame = crate::mm::alloc_frames(1)?;
            NonNull::new(frame.cast()).map(Chunk)
        }

        pub fn bytes(&self) -> &[u8; CHUNK] {
            // SAFETY: the frame is mapped and owned by this chunk until it is dropped.
            unsafe { self.0.as_ref() }
        }

        pub fn bytes_mut(&mut self) -> &mut [u8; CHUNK] {
            // SAFETY: as above, and `&mut self` makes the access exclusive.
            unsafe { self.0.as_mut() }
        }
    }

    impl Drop for Chunk {
        fn drop(&mut self) {
            if !crate::mm::free_frames(self.0.as_ptr().cast(), 1) {
                error!("a file's frame at {:p} was not allocated", self.0);
            }
        }
    }
}

#[cfg(not(target_os = "none"))]
mod host {
    use super::CHUNK;
    use alloc::boxed::Box;
    use core::cell::Cell;

    std::thread_local! {
        static BUDGET: Cell<usize> = const { Cell::new(usize::MAX) };
    }

    /// Lets this thread allocate only `chunks` more chunks (for tests of running out).
    pub fn set_budget(chunks: usize) {
        BUDGET.with(|b| b.set(chunks));
    }

    /// One zeroed chunk owned by a file.
    pub struct Chunk(Box<[u8; CHUNK]>);

    impl Chunk {
        pub fn new() -> Option<Chunk> {
            let left = BUDGET.with(Cell::get);
            if left == 0 {
                return None;
            }
            BUDGET.with(|b| b.set(left - 1));
            Some(Chunk(Box::new([0; CHUNK])))
        }

        pub fn bytes(&self) -> &[u8; CHUNK] {
            &self.0
        }

        pub fn bytes_mut(&mut self) -> &mut [u8; CHUNK] {
            &mut self.0
        }
    }
}
