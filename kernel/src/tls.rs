//! ELF thread-local storage blocks, x86_64 "variant II": the block ends at the thread pointer
//! (the FS base), whose first word points to itself; `.tdata` is the template, `.tbss` zeroes.

use crate::mm;

unsafe extern "C" {
    static __tdata_start: u8;
    static __tdata_end: u8;
    static __tls_memsz: u8;
    static __tls_align: u8;
}

/// A thread's TLS block.
pub struct Block {
    /// The frames holding it, for freeing.
    pub base: *mut u8,
    pub frames: usize,
    /// The thread pointer to load into the FS base.
    pub tp: u64,
}

/// Allocates and fills a TLS block from the image's template.
pub fn new_block() -> Option<Block> {
    // The linker script defines these symbols; only their addresses carry meaning.
    let (tdata, tdata_end, memsz, align) = (
        &raw const __tdata_start as usize,
        &raw const __tdata_end as usize,
        &raw const __tls_memsz as usize,
        &raw const __tls_align as usize,
    );
    let align = align.max(16);
    let block = memsz.next_multiple_of(align);
    let frames = (align + block + 8).div_ceil(4096);
    let base = mm::alloc_frames(frames)?;
    let tp = (base as usize + block).next_multiple_of(align);
    let start = tp - block;
    // SAFETY: `[start, tp + 8)` lies in the fresh, zeroed frames; the template is the image's
    // `.tdata`, `tdata_end - tdata <= block` bytes.
    unsafe {
        core::ptr::copy_nonoverlapping(tdata as *const u8, start as *mut u8, tdata_end - tdata);
        (tp as *mut u64).write(tp as u64);
    }
    Some(Block { base, frames, tp: tp as u64 })
}
