//! What the network benchmark's guest (`net`) and its load generator in dom0 (`netload`) must
//! agree on: the ports and the bulk transfers' pattern and checksum. Both include this file
//! with `#[path]`.

#![allow(dead_code)] // each side uses its own part

pub const HTTP_PORT: u16 = 8080;
pub const BULK_PORT: u16 = 9000;
pub const CONTROL_PORT: u16 = 9001;

/// The 8 bytes of the bulk pattern at word `index` (byte offset `8 * index`): splitmix64, so a
/// word that is lost, repeated or moved shows.
pub fn pattern_word(index: u64) -> u64 {
    let mut z = index.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A checksum over whole 8-byte words (the bulk lengths are multiples of 8).
#[derive(Clone, Copy)]
pub struct Sum(pub u64);

impl Sum {
    pub fn new() -> Sum {
        Sum(0xcbf2_9ce4_8422_2325)
    }
    pub fn add(&mut self, word: u64) {
        self.0 = (self.0 ^ word).wrapping_mul(0x0000_0100_0000_01b3).rotate_left(5);
    }
}
