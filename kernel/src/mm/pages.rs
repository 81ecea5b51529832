//! The page-frame allocator: one bit per pseudo-physical frame, set while the frame is in use.
//!
//! Pure logic over a caller-provided bitmap, tested on the host. Ranges are found first-fit,
//! so that the program's heap grows upwards from the kernel's image.

/// Why a free was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FreeError {
    /// The range goes past the last frame.
    OutOfRange,
    /// Some frame in the range was not in use (a double free).
    NotAllocated,
}

/// Frames `0..nr_frames`, each free or in use.
pub struct FrameAllocator<'a> {
    bits: &'a mut [u64],
    nr_frames: usize,
    free: usize,
    /// No free run starts below this frame.
    hint: usize,
}

impl<'a> FrameAllocator<'a> {
    /// Words of bitmap needed for `nr_frames` frames.
    pub const fn words_for(nr_frames: usize) -> usize {
        nr_frames.div_ceil(64)
    }

    /// An allocator over `nr_frames` frames, all in use; `bits` holds at least
    /// `words_for(nr_frames)` words.
    pub fn new(bits: &'a mut [u64], nr_frames: usize) -> Self {
        let words = Self::words_for(nr_frames);
        bits[..words].fill(!0);
        FrameAllocator { bits: &mut bits[..words], nr_frames, free: 0, hint: nr_frames }
    }

    /// Frames the allocator manages, in use or not.
    pub fn frames(&self) -> usize {
        self.nr_frames
    }

    /// Frames not in use.
    pub fn free_frames(&self) -> usize {
        self.free
    }

    fn used(&self, frame: usize) -> bool {
        self.bits[frame / 64] & (1 << (frame % 64)) != 0
    }

    fn set(&mut self, frame: usize, used: bool) {
        let bit = 1u64 << (frame % 64);
        if used {
            self.bits[frame / 64] |= bit;
        } else {
            self.bits[frame / 64] &= !bit;
        }
    }

    /// Marks `first..first + count` free, whatever it was (for handing over memory at boot).
    pub fn release(&mut self, first: usize, count: usize) {
        let end = (first + count).min(self.nr_frames);
        let mut frame = first;
        while frame < end {
            if frame % 64 == 0 && end - frame >= 64 {
                // A whole word at once: boot hands over all of memory this way.
                self.free += self.bits[frame / 64].count_ones() as usize;
                self.bits[frame / 64] = 0;
                frame += 64;
                continue;
            }
            if self.used(frame) {
                self.set(frame, false);
                self.free += 1;
            }
            frame += 1;
        }
        self.hint = self.hint.min(first);
    }

    /// Takes `count` contiguous free frames; returns the first.
    pub fn alloc(&mut self, count: usize) -> Option<usize> {
        if count == 0 || count > self.free {
            return None;
        }
        let mut start = self.hint;
        while start + count <= self.nr_frames {
            // Skip whole words in use quickly.
            if start % 64 == 0 && self.bits[start / 64] == !0 {
                start += 64;
                continue;
            }
            if self.used(start) {
                start += 1;
                continue;
            }
            match (start..start + count).find(|&frame| self.used(frame)) {
                Some(busy) => start = busy + 1,
                None => {
                    for frame in start..start + count {
                        self.set(frame, true);
                    }
                    self.free -= count;
                    if start == self.hint {
                        self.hint = start + count;
                    }
                    return Some(start);
                }
            }
        }
        None
    }

    /// Gives back `first..first + count`, which must all be in use.
    pub fn free(&mut self, first: usize, count: usize) -> Result<(), FreeError> {
        let end = first.checked_add(count).ok_or(FreeError::OutOfRange)?;
        if end > self.nr_frames {
            return Err(FreeError::OutOfRange);
        }
        if (first..end).any(|frame| !self.used(frame)) {
            return Err(FreeError::NotAllocated);
        }
        for frame in first..end {
            self.set(frame, false);
        }
        self.free += count;
        self.hint = self.hint.min(first);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allocator(bits: &mut Vec<u64>, frames: usize) -> FrameAllocator<'_> {
        bits.resize(FrameAllocator::words_for(frames), 0);
        let mut a = FrameAllocator::new(bits, frames);
        a.release(0, frames);
        a
    }

    #[test]
    fn allocates_first_fit_and_reuses_freed_ranges() {
        let mut bits = Vec::new();
        let mut a = allocator(&mut bits, 200);
        assert_eq!(a.alloc(10), Some(0));
        assert_eq!(a.alloc(100), Some(10));
        assert_eq!(a.free_frames(), 90);
        a.free(0, 10).unwrap();
        assert_eq!(a.alloc(5), Some(0));
        assert_eq!(a.alloc(6), Some(110));
        assert_eq!(a.alloc(5), Some(5));
    }

    #[test]
    fn refuses_what_does_not_fit() {
        let mut bits = Vec::new();
        let mut a = allocator(&mut bits, 130);
        assert_eq!(a.alloc(131), None);
        assert_eq!(a.alloc(0), None);
        assert_eq!(a.alloc(64), Some(0));
        assert_eq!(a.alloc(1), Some(64));
        // 65 free frames remain, but not 66 in a row.
        assert_eq!(a.alloc(66), None);
        assert_eq!(a.alloc(65), Some(65));
        assert_eq!(a.alloc(1), None);
    }

    #[test]
    fn double_and_out_of_range_frees_are_errors() {
        let mut bits = Vec::new();
        let mut a = allocator(&mut bits, 64);
        let first = a.alloc(4).unwrap();
        a.free(first, 4).unwrap();
        assert_eq!(a.free(first, 4), Err(FreeError::NotAllocated));
        assert_eq!(a.free(60, 10), Err(FreeError::OutOfRange));
        assert_eq!(a.free(usize::MAX, 2), Err(FreeError::OutOfRange));
    }

    #[test]
    fn only_released_frames_are_handed_out() {
        let mut bits = vec![0; 2];
        let mut a = FrameAllocator::new(&mut bits, 128);
        a.release(100, 28);
        assert_eq!(a.alloc(1), Some(100));
        assert_eq!(a.alloc(28), None);
        assert_eq!(a.alloc(27), Some(101));
    }
}
