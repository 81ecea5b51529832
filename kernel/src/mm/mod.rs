//! Memory: the guest's frames, the direct map, and page ranges for the program's heap.

pub mod layout;
pub mod pages;
#[cfg(target_os = "none")]
pub mod heap;
#[cfg(target_os = "none")]
pub mod paging;

#[cfg(target_os = "none")]
pub use self::target::*;

#[cfg(target_os = "none")]
mod target {
    use super::pages::FrameAllocator;
    use super::paging::{DirectMap, PAGE_SIZE, REGION_FRAMES, frame_va, va_frame};
    use crate::sync::SpinLock;
    use crate::xen::abi::StartInfo;

    /// The most memory the kernel manages; frames above are left alone.
    const MAX_FRAMES: usize = 64 << (30 - 12);

    struct Memory {
        frames: FrameAllocator<'static>,
        map: DirectMap,
    }

    static MEMORY: SpinLock<Option<Memory>> = SpinLock::new(None);

    unsafe extern "C" {
        static __image_end: u8;
    }

    /// What the boot code learned about memory, for the log.
    pub struct Layout {
        pub nr_frames: usize,
        pub first_free: usize,
        pub pool_frames: usize,
    }

    /// The first frame after everything Xen placed in the initial mapping.
    fn first_free_frame(si: &StartInfo, boot_rsp: u64) -> usize {
        let end_of = |va: u64, len: u64| va_frame(va + len + PAGE_SIZE - 1);
        let image_end = &raw const __image_end as u64;
        [
            end_of(image_end, 0),
            end_of(si.pt_base, si.nr_pt_frames * PAGE_SIZE),
            end_of(si.mfn_list, si.nr_pages * 8),
            end_of(si as *const StartInfo as u64, PAGE_SIZE),
            end_of(boot_rsp, 0) + 1,
            if si.mod_start != 0 { end_of(si.mod_start, si.mod_len) } else { 0 },
        ]
        .into_iter()
        .max()
        .unwrap_or(0)
    }

    /// Takes over the guest's memory from Xen's boot layout.
    ///
    /// # Safety
    ///
    /// Must be called once, at boot, with the `start_info` Xen handed over and the stack
    /// pointer Xen started the guest with.
    pub unsafe fn init(si: &StartInfo, boot_rsp: u64) -> Result<Layout, &'static str> {
        let nr_frames = (si.nr_pages as usize).min(MAX_FRAMES);
        // SAFETY: Xen maps the p2m list, one entry per frame, at `mfn_list`.
        let p2m: &'static [u64] =
            unsafe { core::slice::from_raw_parts(si.mfn_list as *const u64, si.nr_pages as usize) };
        let p2m = &p2m[..nr_frames];
        let regions = nr_frames.div_ceil(REGION_FRAMES);
        let pool_frames = DirectMap::pool_frames_needed(nr_frames);
        let first_free = first_free_frame(si, boot_rsp);

        // The region tables go right after Xen's layout, inside the initial mapping (Xen maps
        // at least 512 KiB past the boot stack), as does the frame bitmap if it fits.
        let mut cursor = frame_va(first_free);
        let mut take = |bytes: usize, align: u64| {
            cursor = cursor.next_multiple_of(align);
            let at = cursor;
            cursor += bytes as u64;
            at
        };
        let l1_at = take(regions * 8, 8);
        let complete_at = take(regions, 1);
        let words = FrameAllocator::words_for(nr_frames);
        let bits_at = take(words * 8, 8);
        let boot_end = va_frame(cursor.next_multiple_of(PAGE_SIZE));
        if boot_end + pool_frames + 16 > nr_frames {
            return Err("too little memory for the kernel's own tables");
        }
        // SAFETY: the ranges lie in free frames of the initial mapping, used by nothing else.
        let (l1_mfns, complete) = unsafe {
            (
                core::slice::from_raw_parts_mut(l1_at as *mut u64, regions),
                core::slice::from_raw_parts_mut(complete_at as *mut bool, regions),
            )
        };
        let pool_floor = nr_frames - pool_frames;
        // SAFETY: the caller's `start_info` names Xen's boot tables and p2m list.
        let mut map = unsafe { DirectMap::adopt(si.pt_base, p2m, l1_mfns, complete, pool_floor) };
        map.ensure_mapped(va_frame(bits_at), boot_end - va_frame(bits_at))
            .map_err(|_| "cannot map the frame bitmap")?;
        // SAFETY: the bitmap's frames are mapped now and used by nothing else.
        let bits = unsafe { core::slice::from_raw_parts_mut(bits_at as *mut u64, words) };
        let mut frames = FrameAllocator::new(bits, nr_frames);
        frames.release(boot_end, pool_floor - boot_end);
        *MEMORY.lock() = Some(Memory { frames, map });
        Ok(Layout { nr_frames, first_free, pool_frames })
    }

    /// Hands out `count` contiguous zeroed, mapped frames; returns the address of the first.
    pub fn alloc_frames(count: usize) -> Option<*mut u8> {
        let ptr = alloc_frames_unzeroed(count)?;
        // SAFETY: the frames are mapped and now belong to the caller alone.
        unsafe { core::ptr::write_bytes(ptr, 0, count * PAGE_SIZE as usize) };
        Some(ptr)
    }

    /// Hands out `count` contiguous mapped frames whose contents are whatever they held (for
    /// stacks, which are written before they are read: zeroing a 256 KiB stack was most of a
    /// thread spawn's cost).
    pub fn alloc_frames_unzeroed(count: usize) -> Option<*mut u8> {
        let mut guard = MEMORY.lock();
        let memory = guard.as_mut()?;
        let first = memory.frames.alloc(count)?;
        if memory.map.ensure_mapped(first, count).is_err() {
            let _ = memory.frames.free(first, count);
            return None;
        }
        drop(guard);
        Some(frame_va(first) as *mut u8)
    }

    /// Takes back frames from `alloc_frames`; a bad range is refused and reported.
    pub fn free_frames(ptr: *mut u8, count: usize) -> bool {
        let va = ptr as u64;
        if va % PAGE_SIZE != 0 || va < frame_va(0) {
            return false;
        }
        let mut guard = MEMORY.lock();
        let Some(memory) = guard.as_mut() else { return false };
        memory.frames.free(va_frame(va), count).is_ok()
    }

    /// Frames not in use.
    pub fn free_frame_count() -> usize {
        MEMORY.lock().as_ref().map_or(0, |m| m.frames.free_frames())
    }

    /// The guest's frames, and those of them in use (the image, page tables, the kernel's and
    /// the program's heaps, stacks, buffers), read together.
    pub fn frame_counts() -> (usize, usize) {
        MEMORY.lock().as_ref().map_or((0, 0), |m| (m.frames.frames(), m.frames.frames() - m.frames.free_frames()))
    }

    /// A stack with an unmapped guard page below it.
    pub struct Stack {
        /// The guard page's address: the lowest of the frames.
        base: u64,
        frames: usize,
        /// The top of the stack, 16-byte aligned.
        pub top: u64,
    }

    /// Allocates a stack of at least `bytes` with an unmapped guard page below it.
    pub fn alloc_stack(bytes: usize) -> Option<Stack> {
        let frames = bytes.div_ceil(PAGE_SIZE as usize) + 1;
        let base = alloc_frames_unzeroed(frames)? as u64;
        let mut guard = MEMORY.lock();
        if guard.as_mut()?.map.unmap(va_frame(base)).is_err() {
            drop(guard);
            free_frames(base as *mut u8, frames);
            return None;
        }
        Some(Stack { base, frames, top: base + (frames as u64) * PAGE_SIZE })
    }

    impl Stack {
        /// The address of the unmapped guard page below the stack.
        pub fn guard(&self) -> u64 {
            self.base
        }
    }

    /// Gives a stack back, mapping its guard page again first.
    pub fn free_stack(stack: Stack) {
        let mut guard = MEMORY.lock();
        let Some(memory) = guard.as_mut() else { return };
        if memory.map.remap(va_frame(stack.base)).is_err() {
            // Keep the frames rather than hand out one that is not mapped.
            return;
        }
        let _ = memory.frames.free(va_frame(stack.base), stack.frames);
    }

}
