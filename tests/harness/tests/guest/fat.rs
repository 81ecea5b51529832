//! A FAT filesystem on a virtual disk through `std::fs` (docs/fs.md, "A filesystem on a
//! disk"): the host makes images with `mkfs.fat` and fills them with `mcopy`; guests mount them
//! with `xen.mount=xvda:/mnt` (tests/guest/src/bin/blk/fat.rs); after the batch, the host reads
//! what the guests wrote with `mtype` and checks the volume with `fsck.fat -n`.

use super::DOMU;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use xen_harness::repo;

/// The mount every job uses.
pub const MOUNT: &[&str] = &["xen.mount=xvda:/mnt"];

/// The same pattern as tests/guest/src/bin/blk/fat.rs's.
fn pattern(seed: u64, offset: u64) -> u8 {
    let mut z = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (offset / 8);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    z.to_le_bytes()[(offset % 8) as usize]
}

fn filled(seed: u64, len: usize) -> Vec<u8> {
    (0..len as u64).map(|i| pattern(seed, i)).collect()
}

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e} (are dosfstools and mtools installed?)"));
    assert!(out.status.success(), "{cmd:?}: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// Makes a FAT image with `mkfs.fat ARGS` of `mib` MiB holding the host's files.
fn make(name: &str, mib: u64, mkfs: &[&str]) -> (PathBuf, u64) {
    let dir = repo().join("target/harness-disks");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}-{}.img", std::process::id()));
    let _ = std::fs::remove_file(&path);
    std::fs::File::create(&path).unwrap().set_len(mib << 20).unwrap();
    run(Command::new("mkfs.fat").args(mkfs).arg("-n").arg("XENTEST").arg(&path));
    let files = dir.join(format!("{name}-{}-files", std::process::id()));
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("hello.txt"), b"hello from the host\n").unwrap();
    std::fs::write(files.join("data.bin"), filled(7, 200_000)).unwrap();
    std::fs::write(files.join("todelete.txt"), b"to be deleted\n").unwrap();
    std::fs::write(files.join("Long File Name.txt"), b"long\n").unwrap();
    let img = |cmd: &str| {
        let mut c = Command::new(cmd);
        c.arg("-i").arg(&path);
        c
    };
    run(img("mmd").arg("::/dir"));
    for (file, to) in [
        ("hello.txt", "::/hello.txt"),
        ("data.bin", "::/dir/data.bin"),
        ("todelete.txt", "::/todelete.txt"),
        ("Long File Name.txt", "::/Long File Name.txt"),
    ] {
        run(img("mcopy").arg(files.join(file)).arg(to));
    }
    let _ = std::fs::remove_dir_all(&files);
    let bytes = std::fs::read(&path).unwrap();
    (path, hash(&bytes))
}

/// FNV-1a over the whole image.
fn hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

static RW: OnceLock<(PathBuf, u64)> = OnceLock::new();
static RO: OnceLock<(PathBuf, u64)> = OnceLock::new();
static GARBAGE: OnceLock<(PathBuf, u64)> = OnceLock::new();
static FULL: OnceLock<(PathBuf, u64)> = OnceLock::new();
static HUGE: OnceLock<(PathBuf, u64)> = OnceLock::new();
static BUSY: OnceLock<(PathBuf, u64)> = OnceLock::new();
static ABORT: OnceLock<(PathBuf, u64)> = OnceLock::new();

/// 256 MiB of FAT32 with the host's files, for two writers that `exit` stops.
pub fn busy_image() -> PathBuf {
    BUSY.get_or_init(|| make("busy", 256, &["-F", "32"])).0.clone()
}

/// 64 MiB of FAT16 with the host's files, for a program that aborts.
pub fn abort_image() -> PathBuf {
    ABORT.get_or_init(|| make("abort", 64, &["-F", "16"])).0.clone()
}

/// 64 MiB of FAT32 (512-byte clusters), written by `fat_write`, read by `fat_verify`.
pub fn rw_image() -> PathBuf {
    RW.get_or_init(|| make("fat32", 64, &["-F", "32"])).0.clone()
}

/// 16 MiB of FAT16, attached read-only.
pub fn ro_image() -> PathBuf {
    RO.get_or_init(|| make("fat16", 16, &["-F", "16"])).0.clone()
}

/// 2 MiB of FAT12 with the host's files, filled up by `fat_full`.
pub fn full_image() -> PathBuf {
    FULL.get_or_init(|| make("fat12", 2, &["-F", "12"])).0.clone()
}

/// 128 MiB of FAT32 (512-byte clusters) with the host's files, for a 96 MiB file.
pub fn huge_image() -> PathBuf {
    HUGE.get_or_init(|| make("huge", 128, &["-F", "32"])).0.clone()
}

/// 4 MiB of a pattern, no filesystem.
pub fn garbage_image() -> PathBuf {
    GARBAGE
        .get_or_init(|| {
            let path = repo().join(format!("target/harness-disks/garbage-{}.img", std::process::id()));
            let bytes = filled(9, 4 << 20);
            std::fs::write(&path, &bytes).unwrap();
            (path, hash(&bytes))
        })
        .0
        .clone()
}

fn assert_lines(name: &str, lines: &[&str]) -> String {
    let r = DOMU.result(name);
    assert_eq!(r.status, 0, "{name}: stdout: {}\nstderr: {}", r.stdout, r.stderr);
    for line in lines {
        assert!(
            r.stdout.lines().any(|l| l == *line),
            "{name}: no line {line:?} in:\n{}\nstderr: {}",
            r.stdout,
            r.stderr
        );
    }
    assert!(!r.stdout.contains("differs"), "{name}: {}", r.stdout);
    r.stdout.clone()
}

const HOSTS_FILES: &[&str] = &[
    "/mnt: [\"Long File Name.txt\", \"dir/\", \"hello.txt\", \"todelete.txt\"]",
    "hello.txt: ok",
    "data.bin: ok",
    "long name: ok",
    "any case: ok",
    "data.bin: len 200000, file true, dir false",
    "/mnt/dir is a dir: true",
    "modified after 2020: true",
];

#[test]
fn a_fat_volume_is_read_and_written_through_std_fs() {
    let mut lines = HOSTS_FILES.to_vec();
    lines.extend([
        "big written",
        "patched, read back: ok",
        "big read back: ok",
        "/mnt/out: [\"a/\", \"big.bin\", \"patched.bin\", \"unsynced.txt\"]",
        "missing: Some(NotFound)",
        "missing dir: Some(NotFound)",
        "create_new: Some(AlreadyExists)",
        "create_dir: Some(AlreadyExists)",
        "write a dir: Some(IsADirectory)",
        "below a file: Some(NotADirectory)",
        "remove a full dir: Some(DirectoryNotEmpty)",
        "remove_file a dir: Some(IsADirectory)",
        "read_dir a file: Some(NotADirectory)",
        "across mounts: Some(CrossesDevices)",
        "remove the mount: Some(ResourceBusy)",
        "remove_dir_all: Some(NotFound)",
        "done",
    ]);
    assert_lines("fat_write", &lines);
}

fn mtype(image: &Path, path: &str) -> Vec<u8> {
    run(Command::new("mtype").arg("-i").arg(image).arg(format!("::{path}")))
}

#[test]
fn what_a_guest_wrote_is_there_after_a_reboot_and_on_the_host() {
    assert_lines(
        "fat_verify",
        &[
            "/mnt: [\"Long File Name.txt\", \"dir/\", \"hello.txt\", \"out/\"]",
            "/mnt/out: [\"a/\", \"big.bin\", \"patched.bin\", \"unsynced.txt\"]",
            "/mnt/out/a: [\"b/\", \"renamed.txt\"]",
            "c is a dir: true",
            "big: ok",
            "renamed: ok",
            "appended: ok",
            "patched: ok",
            "unsynced: ok",
            "deleted: Some(NotFound)",
            "data.bin: ok",
            "done",
        ],
    );
    // The batch is over: the host's tools read the image as the guests left it.
    let image = rw_image();
    assert!(mtype(&image, "/out/big.bin") == filled(8, 3 * 1024 * 1024 + 123), "big.bin differs on the host");
    assert_eq!(mtype(&image, "/out/a/renamed.txt"), b"written by the guest\n");
    assert_eq!(mtype(&image, "/hello.txt"), b"hello from the host\nand appended by the guest\n");
    assert_eq!(mtype(&image, "/out/unsynced.txt"), b"closed, not synced\n");
    let listing =
        String::from_utf8(run(Command::new("mdir").arg("-i").arg(&image).arg("-b").arg("::/out/a/b"))).unwrap();
    assert!(listing.contains("c/") || listing.contains("/c"), "no out/a/b/c on the host: {listing}");
    fsck_clean(&image);
    let _ = std::fs::remove_file(image);
}

#[test]
fn a_read_only_volume_refuses_writes_and_is_never_written() {
    let mut lines = HOSTS_FILES.to_vec();
    lines.extend([
        "create: Some(ReadOnlyFilesystem)",
        "open to write: Some(ReadOnlyFilesystem)",
        "append: Some(ReadOnlyFilesystem)",
        "create_dir: Some(ReadOnlyFilesystem)",
        "remove_file: Some(ReadOnlyFilesystem)",
        "rename: Some(ReadOnlyFilesystem)",
        "sync: Ok(())",
        "done",
    ]);
    assert_lines("fat_readonly", &lines);
    let path = ro_image();
    assert_eq!(hash(&std::fs::read(&path).unwrap()), RO.get().unwrap().1, "the read-only image changed");
    let _ = std::fs::remove_file(path);
}

#[test]
fn a_disk_without_a_volume_fails_the_mount_not_the_guest() {
    assert_lines("fat_garbage", &["/mnt: Some(NotFound)", "still running: true", "done"]);
    let r = DOMU.result("fat_garbage");
    let log = format!("{}{}", r.stdout, r.stderr);
    assert!(log.contains("mount xvda at /mnt failed: no FAT volume"), "no mount error in: {log}");
    let path = garbage_image();
    assert_eq!(hash(&std::fs::read(&path).unwrap()), GARBAGE.get().unwrap().1, "a failed mount wrote to the disk");
    let _ = std::fs::remove_file(path);
}

fn fsck_clean(image: &Path) {
    let fsck = Command::new("fsck.fat").arg("-n").arg(image).output().unwrap();
    assert!(
        fsck.status.success(),
        "fsck.fat -n {}: {}\n{}",
        image.display(),
        String::from_utf8_lossy(&fsck.stdout),
        String::from_utf8_lossy(&fsck.stderr)
    );
}

/// The value a line `PREFIX VALUE` of a job's output gives.
fn value_after<'a>(out: &'a str, prefix: &str) -> &'a str {
    out.lines().find_map(|l| l.strip_prefix(prefix)).unwrap_or_else(|| panic!("no line {prefix:?} in:\n{out}"))
}

#[test]
fn a_full_volume_is_storage_full_at_write_and_keeps_what_fit() {
    let out = assert_lines(
        "fat_full",
        &[
            "fs::write 3 MB: Some(StorageFull)",
            "x.bin kept over 1 MB: true",
            "x.bin: ok",
            "full at write: StorageFull",
            "again: Some(StorageFull)",
            "sync_all: Ok(())",
            "len matches: true",
            "full.bin read back: ok",
            "another file: Some(StorageFull)",
            "done",
        ],
    );
    let written: usize = value_after(&out, "full.bin written ").parse().unwrap();
    // The host's files take about 200 KiB of the 2 MiB.
    assert!(written > 1_500_000, "only {written} bytes fit");
    assert_lines(
        "fat_full_verify",
        &[&format!("full.bin: {written} bytes"), "full.bin: ok", "x.bin: Some(NotFound)", "done"],
    );
    let image = full_image();
    assert!(mtype(&image, "/full.bin") == filled(11, written), "full.bin differs on the host");
    assert_eq!(mtype(&image, "/hello.txt"), b"hello from the host\n");
    fsck_clean(&image);
    let _ = std::fs::remove_file(image);
}

/// `huge.bin`'s words (tests/guest/src/bin/blk/fat.rs's `huge_words`).
fn huge_word(index: u64) -> u64 {
    let mut z = index.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[test]
fn a_file_larger_than_the_guests_memory_is_written_and_read_back() {
    const WORDS: u64 = 96 << 17;
    let sum = (0..WORDS).fold(0u64, |s, i| s.wrapping_add(huge_word(i)));
    let bytes = format!("huge.bin: {} bytes", WORDS * 8);
    assert_lines("fat_huge", &["sync_all: Ok(())", &bytes, &format!("huge read back: checksum {sum:016x}"), "done"]);
    assert_lines("fat_huge_verify", &[&bytes, &format!("huge after a reboot: checksum {sum:016x}"), "done"]);
    let image = huge_image();
    let on_host = mtype(&image, "/huge.bin");
    assert_eq!(on_host.len() as u64, WORDS * 8);
    let same = on_host.chunks(8).enumerate().all(|(i, w)| u64::from_le_bytes(w.try_into().unwrap()) == huge_word(i as u64));
    assert!(same, "huge.bin differs on the host");
    fsck_clean(&image);
    let _ = std::fs::remove_file(image);
}

#[test]
fn a_mount_as_dom0_is_an_error_in_the_log_not_silence() {
    use xen_harness::{Mode, run};
    let r = run("blk", Mode::Dom0, &["--kernel-arg", "xen.mount=xvda:/mnt"], &["fat", "garbage"]);
    assert_eq!(r.status, 0, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert!(r.stdout.contains("/mnt: Some(NotFound)"), "{}", r.stdout);
    let log = format!("{}{}", r.stdout, r.stderr);
    assert!(log.contains("mount xvda at /mnt failed: no xenstore, so no disks"), "no mount error in: {log}");
}

/// Checks that file `name` on `image` holds `len` bytes of `byte` only.
fn on_host_only(image: &Path, name: &str, len: u64, byte: u8) {
    let data = mtype(image, name);
    assert_eq!(data.len() as u64, len, "{name} on the host");
    assert!(data.iter().all(|&b| b == byte), "{name} on the host holds other bytes than {byte:#x}");
}

#[test]
fn exit_while_two_threads_write_ends_the_guest_at_once_and_keeps_both_files() {
    let name = "fat_exit_busy";
    let r = DOMU.result(name);
    assert_eq!(r.status, 5, "{name}: end {}, stdout: {}\nstderr: {}", r.end, r.stdout, r.stderr);
    assert!(r.stdout.lines().any(|l| l == "main calls exit"), "{name}: {}", r.stdout);
    let seconds = r.seconds.unwrap_or(f64::MAX);
    // The guest boots, writes for 2 s, and ends within one write's time of `exit`.
    assert!(seconds < 20.0, "{name}: ended only after {seconds:.1} s");
    let wrote: Vec<u64> = (0..2).map(|i| value_after(&r.stdout, &format!("t{i} wrote ")).parse().unwrap()).collect();
    // Both writers progressed: the lock over the mounts starves neither.
    assert!(wrote.iter().all(|&w| w > 0), "{name}: a writer was starved: {wrote:?}");
    let out = assert_lines("fat_exit_busy_verify", &["busy0 only 0xa0: true", "busy1 only 0xa1: true", "done"]);
    let image = busy_image();
    for (i, &w) in wrote.iter().enumerate() {
        let len: u64 = value_after(&out, &format!("busy{i}: ")).trim_end_matches(" bytes").parse().unwrap();
        // What write_all returned before main printed is there; at most a few pieces more.
        assert!(len >= w && len % 65536 == 0, "busy{i}: {len} bytes after a reboot, {w} written before exit");
        on_host_only(&image, &format!("/busy{i}.bin"), len, 0xa0 + i as u8);
    }
    fsck_clean(&image);
    let _ = std::fs::remove_file(image);
}

#[test]
fn abort_keeps_what_write_returned() {
    let name = "fat_abort";
    let r = DOMU.result(name);
    assert_eq!(r.status, 134, "{name}: end {}, stdout: {}\nstderr: {}", r.end, r.stdout, r.stderr);
    assert!(r.stdout.lines().any(|l| l == "main calls abort"), "{name}: {}", r.stdout);
    let wrote: u64 = value_after(&r.stdout, "t0 wrote ").parse().unwrap();
    let out = assert_lines("fat_abort_verify", &["kept.txt: Ok(Ok(\"written before abort\\n\"))", "busy only 0xa0: true", "done"]);
    let len: u64 = value_after(&out, "busy: ").trim_end_matches(" bytes").parse().unwrap();
    assert!(len >= wrote && len % 65536 == 0, "busy.bin: {len} bytes after a reboot, {wrote} written before abort");
    let image = abort_image();
    assert_eq!(mtype(&image, "/ab/kept.txt"), b"written before abort\n");
    on_host_only(&image, "/ab/busy.bin", len, 0xa0);
    fsck_clean(&image);
    let _ = std::fs::remove_file(image);
}
