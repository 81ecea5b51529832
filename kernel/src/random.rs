//! Entropy for the program (`xk_random_fill`): a ChaCha20 generator seeded at boot.
//!
//! The seed mixes what is at hand: bytes from the toolstack (`xen.seed=` on the command line,
//! which the runner always passes), RDRAND where the CPU has it, and the jitter of timed
//! hypercalls. Without the first two the seed rests on jitter alone, which the log says.

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

use crate::sync::SpinLock;

static RNG: SpinLock<Option<ChaCha20Rng>> = SpinLock::new(None);

/// Folds 64 bits into the seed with a multiply-rotate mix.
fn mix(seed: &mut [u8; 32], round: usize, value: u64) {
    let lane = round % 4;
    let mut word = u64::from_le_bytes(seed[lane * 8..lane * 8 + 8].try_into().unwrap());
    word = (word ^ value).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29);
    seed[lane * 8..lane * 8 + 8].copy_from_slice(&word.to_le_bytes());
}

/// Seeds the generator; `given` is the toolstack's seed (may be empty).
#[cfg(target_os = "none")]
pub fn init(given: &[u8]) {
    use crate::arch::x86_64::{rdrand, rdtsc};

    let mut seed = [0u8; 32];
    seed[..given.len()].copy_from_slice(given);
    let mut hardware = false;
    for round in 0..4 {
        if let Some(value) = rdrand() {
            mix(&mut seed, round, value);
            hardware = true;
        }
    }
    for round in 0..64 {
        let before = rdtsc();
        crate::xen::hypercall::xen_version();
        mix(&mut seed, round, rdtsc().wrapping_sub(before) ^ before.rotate_left(17));
    }
    if given.is_empty() && !hardware {
        warn!("random: no seed from the toolstack and no RDRAND; seeded from timing jitter only");
    }
    *RNG.lock() = Some(ChaCha20Rng::from_seed(seed));
}

/// Fills `buf` with random bytes.
pub fn fill(buf: &mut [u8]) {
    let mut rng = RNG.lock();
    let rng = rng.get_or_insert_with(|| ChaCha20Rng::from_seed([0x5a; 32]));
    rng.fill_bytes(buf);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixing_changes_only_its_lane() {
        let mut seed = [0u8; 32];
        mix(&mut seed, 1, 42);
        assert!(seed[..8].iter().all(|&b| b == 0));
        assert!(seed[8..16].iter().any(|&b| b != 0));
        assert!(seed[16..].iter().all(|&b| b == 0));
    }
}
