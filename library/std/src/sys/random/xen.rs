//! Random bytes on Xen, from the kernel's generator (see the project's `docs/architecture.md`).

use crate::sys::pal::abi;

pub fn fill_bytes(bytes: &mut [u8]) {
    // SAFETY: `bytes` is valid for writes of its length.
    unsafe { abi::xk_random_fill(bytes.as_mut_ptr(), bytes.len()) }
}
