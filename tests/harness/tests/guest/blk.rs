//! Virtual disks as a domU (docs/fs.md, "Disks"): blkfront connects to dom0's blkback, which
//! serves a disk image the harness made and QEMU gives dom0 as a virtio drive. The images hold
//! a known pattern (`pattern`, the same function as tests/guest/src/bin/blk/main.rs's), so the guest
//! can check what the host wrote and the host what the guest wrote.

use super::DOMU;
use std::path::PathBuf;
use std::sync::OnceLock;
use xen_harness::repo;

const MIB: usize = 1 << 20;

/// The pattern's byte at `offset`: one splitmix64 value per 8-byte word.
fn pattern(seed: u64, offset: u64) -> u8 {
    let mut z = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (offset / 8);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    z.to_le_bytes()[(offset % 8) as usize]
}

fn filled(seed: u64, offset: u64, len: usize) -> Vec<u8> {
    (0..len as u64).map(|i| pattern(seed, offset + i)).collect()
}

/// Writes a fresh image of `len` bytes of pattern `seed` (once a test run) and returns its
/// path and the hash of its bytes.
fn image(cell: &'static OnceLock<(PathBuf, u64)>, name: &str, seed: u64, len: usize) -> PathBuf {
    cell.get_or_init(|| {
        let dir = repo().join("target/harness-disks");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}-{}.img", std::process::id()));
        let bytes = filled(seed, 0, len);
        std::fs::write(&path, &bytes).unwrap();
        (path, hash(&bytes))
    })
    .0
    .clone()
}

/// FNV-1a over the whole image.
fn hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

static RW: OnceLock<(PathBuf, u64)> = OnceLock::new();
static RO: OnceLock<(PathBuf, u64)> = OnceLock::new();
static FOUR_K: OnceLock<(PathBuf, u64)> = OnceLock::new();

/// 8 MiB of seed 1, written by `blk_write` and read back by `blk_verify`.
pub fn rw_image() -> PathBuf {
    image(&RW, "rw", 1, 8 * MIB)
}

/// 4 MiB of seed 3, attached read-only.
pub fn ro_image() -> PathBuf {
    image(&RO, "ro", 3, 4 * MIB)
}

/// 4 MiB of seed 4, on a drive with 4 KiB logical sectors.
pub fn four_k_image() -> PathBuf {
    image(&FOUR_K, "4k", 4, 4 * MIB)
}

fn assert_ok(name: &str, lines: &[&str]) -> String {
    let r = DOMU.result(name);
    assert_eq!(r.status, 0, "{name}: stdout: {}\nstderr: {}", r.stdout, r.stderr);
    for line in lines {
        assert!(r.stdout.lines().any(|l| l == *line), "{name}: no line {line:?} in:\n{}", r.stdout);
    }
    r.stdout.clone()
}

#[test]
fn a_disk_is_read_written_and_synced() {
    let out = assert_ok(
        "blk_write",
        &[
            "disk: 8388608 bytes, sector size 512, read-only false, flush true",
            "the host's pattern: ok",
            "written and read back: ok",
            "the last sector: ok",
            "unaligned length: Some(InvalidInput)",
            "unaligned offset: Some(InvalidInput)",
            "past the end: Some(InvalidInput)",
            "again: Some(ResourceBusy)",
            "missing: Some(Unsupported)",
            "not a disk name: Some(Unsupported)",
            "done",
        ],
    );
    assert!(!out.contains("differs"), "{out}");
}

#[test]
fn what_was_written_is_there_in_the_next_boot_and_on_the_host() {
    assert_ok(
        "blk_verify",
        &[
            "before the written part: ok",
            "the written part: ok",
            "after it: ok",
            "the last sector: ok",
            "read-only: true",
            "write: Some(ReadOnlyFilesystem)",
            "unchanged: ok",
            "done",
        ],
    );
    // The batch is over (QEMU has exited): the image file holds what the guests wrote.
    let bytes = std::fs::read(rw_image()).unwrap();
    assert_eq!(bytes.len(), 8 * MIB);
    let (offset, len) = (MIB, 3 * MIB + 512);
    let last = bytes.len() - 512;
    assert!(bytes[..offset] == filled(1, 0, offset)[..], "the part before was changed");
    assert!(bytes[offset..offset + len] == filled(2, offset as u64, len)[..], "the written part differs");
    let after = offset + len;
    assert!(bytes[after..last] == filled(1, after as u64, last - after)[..], "the part after was changed");
    assert!(bytes[last..] == filled(2, last as u64, 512)[..], "the last sector differs");
    // Kept for a look when a check failed.
    let _ = std::fs::remove_file(rw_image());
}

#[test]
fn a_read_only_disk_is_never_written() {
    assert_ok(
        "blk_readonly",
        &[
            "disk: 4194304 bytes, sector size 512, read-only true, flush true",
            "read: ok",
            "write: Some(ReadOnlyFilesystem)",
            "sync: Ok(())",
            "done",
        ],
    );
    let path = ro_image();
    let before = RO.get().unwrap().1;
    assert_eq!(hash(&std::fs::read(&path).unwrap()), before, "the read-only image changed");
    let _ = std::fs::remove_file(path);
}

#[test]
fn a_disk_with_4_kib_sectors_takes_only_whole_sectors() {
    assert_ok(
        "blk_sector4k",
        &[
            "disk: 4194304 bytes, sector size 4096, read-only false, flush true",
            "512 bytes: Some(InvalidInput)",
            "at 512: Some(InvalidInput)",
            "read: ok",
            "written and read back: ok",
            "done",
        ],
    );
    let bytes = std::fs::read(four_k_image()).unwrap();
    assert!(bytes[..8192] == filled(4, 0, 8192)[..]);
    assert!(bytes[8192..8192 + 69632] == filled(5, 8192, 69632)[..], "the written part differs");
    assert!(bytes[8192 + 69632..] == filled(4, 8192 + 69632, bytes.len() - 8192 - 69632)[..]);
    let _ = std::fs::remove_file(four_k_image());
}
