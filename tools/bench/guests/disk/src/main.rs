//! The disk benchmark's guest (docs/bench.md, "Disk"): writes `mib` MiB to the domain's first
//! virtual disk in `chunk_kib` pieces from its start, makes them durable, then reads them
//! back and checks them, timing each pass inside the guest:
//!
//!     disk mib=256 chunk_kib=1024
//!
//! On Xen the disk is `std::os::xen::blk::Disk` (the kernel's blkfront, no cache); built
//! statically for Linux it is `/dev/xvda` opened with `O_DIRECT` (Linux's blkfront, the page
//! cache bypassed), and the program is the domU's `/init`: it loads `xen-blkfront.ko` from
//! the initramfs itself and powers the domain off at the end.
//!
//! With `file=PATH` it does the same to one file through `std::fs` instead of the raw disk: the
//! disk holds a FAT volume (`mkfs.fat` on the host); on Xen the kernel mounted it
//! (`xen.mount=xvda:/mnt`), on Linux `/init` loads `fat`, `vfat`, `nls_cp437` and `nls_ascii`
//! and mounts it at `/mnt`, and drops the page cache before reading. It writes in pieces,
//! `sync_all`s, then opens the file again and reads it back:
//!
//!     disk mib=64 chunk_kib=1024 file=/mnt/bench.bin
//!
//! It prints `xbench` lines that tools/bench reads (`fwrite` and `fread` for a file):
//!
//!     xbench start sector_size=512 bytes=268435456
//!     xbench op=write bytes=268435456 ns=... tenths_ns=...,...
//!     xbench op=read bytes=268435456 ns=... tenths_ns=...,...
//!     xbench done
//!     xbench failed WHY

use std::time::Instant;

/// What to do, from `name=value` arguments.
struct Plan {
    bytes: u64,
    chunk: usize,
    /// A file to write and read instead of the raw disk.
    file: Option<String>,
}

fn plan() -> Result<Plan, String> {
    let (mut mib, mut chunk_kib, mut file) = (256u64, 1024usize, None);
    for arg in std::env::args().skip(1) {
        match arg.split_once('=') {
            Some(("mib", v)) => mib = v.parse().map_err(|_| format!("mib={v}: not a number"))?,
            Some(("chunk_kib", v)) => {
                chunk_kib = v.parse().map_err(|_| format!("chunk_kib={v}: not a number"))?
            }
            Some(("file", v)) => file = Some(v.to_owned()),
            _ => return Err(format!("{arg}: give mib=N chunk_kib=N")),
        }
    }
    if mib == 0 || chunk_kib == 0 || chunk_kib % 4 != 0 || (mib * 1024) % chunk_kib as u64 != 0 {
        return Err("mib and chunk_kib must be positive, chunk_kib a multiple of 4 dividing mib".into());
    }
    Ok(Plan { bytes: mib << 20, chunk: chunk_kib << 10, file })
}

/// The byte pattern of the chunk at `offset`: every 8 bytes hold their own disk offset, so that
/// a chunk read from the wrong place or a stale one shows.
fn fill(buf: &mut [u8], offset: u64) {
    for (i, word) in buf.chunks_exact_mut(8).enumerate() {
        word.copy_from_slice(&(offset + 8 * i as u64 ^ 0x5a5a_0000_0000_0000).to_le_bytes());
    }
}

/// A buffer aligned for O_DIRECT (and harmless on Xen).
struct Aligned {
    ptr: *mut u8,
    layout: std::alloc::Layout,
}

impl Aligned {
    fn new(len: usize) -> Aligned {
        let layout = std::alloc::Layout::from_size_align(len, 4096).expect("a valid layout");
        // SAFETY: the layout's size is not zero (plan() refuses a zero chunk).
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        if ptr.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        Aligned { ptr, layout }
    }

    fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: `ptr` is a live allocation of `layout.size()` initialised bytes, and `&mut
        // self` makes this the only reference to it.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.layout.size()) }
    }
}

impl Drop for Aligned {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout, freed once.
        unsafe { std::alloc::dealloc(self.ptr, self.layout) }
    }
}

/// One timed pass: `step` for every chunk, then `finish`; prints its line.
fn pass(
    name: &str,
    plan: &Plan,
    buf: &mut Aligned,
    mut step: impl FnMut(&mut [u8], u64) -> std::io::Result<()>,
    finish: impl FnOnce() -> std::io::Result<()>,
) -> std::io::Result<()> {
    let chunks = plan.bytes / plan.chunk as u64;
    let mut tenths = Vec::with_capacity(10);
    let start = Instant::now();
    let mut tenth_start = start;
    for i in 0..chunks {
        step(buf.bytes(), i * plan.chunk as u64)?;
        if (i + 1) * 10 / chunks != i * 10 / chunks {
            let now = Instant::now();
            tenths.push((now - tenth_start).as_nanos().to_string());
            tenth_start = now;
        }
    }
    finish()?;
    let ns = start.elapsed().as_nanos();
    println!("xbench op={name} bytes={} ns={ns} tenths_ns={}", plan.bytes, tenths.join(","));
    Ok(())
}

/// The file passes: write it in pieces and `sync_all`, then (after `before_read`) open it again
/// and read it back.
fn file_passes(plan: &Plan, path: &str, before_read: impl FnOnce() -> std::io::Result<()>) -> std::io::Result<()> {
    use std::io::{Read as _, Write as _};
    println!("xbench start sector_size=0 bytes={}", plan.bytes);
    let mut buf = Aligned::new(plan.chunk);
    let file = std::fs::File::create(path)?;
    pass("fwrite", plan, &mut buf, |b, off| { fill(b, off); (&file).write_all(b) }, || file.sync_all())?;
    drop(file);
    before_read()?;
    let mut scratch = vec![0u8; plan.chunk];
    let mut file = std::fs::File::open(path)?;
    if file.metadata()?.len() != plan.bytes {
        return Err(std::io::Error::other("the file's length is not what was written"));
    }
    pass("fread", plan, &mut buf, |b, off| { file.read_exact(b)?; check(b, off, &mut scratch) }, || Ok(()))
}

fn check(buf: &mut [u8], offset: u64, scratch: &mut [u8]) -> std::io::Result<()> {
    fill(scratch, offset);
    if buf != &scratch[..] {
        let at = buf.iter().zip(scratch.iter()).position(|(a, b)| a != b).unwrap_or(0);
        return Err(std::io::Error::other(format!(
            "the data read at byte {} differs from what was written",
            offset + at as u64
        )));
    }
    Ok(())
}

#[cfg(target_os = "xen")]
fn run(plan: &Plan) -> std::io::Result<()> {
    use std::os::xen::blk::Disk;

    if let Some(path) = &plan.file {
        return file_passes(plan, path, || Ok(()));
    }
    let disk = Disk::open("xvda")?;
    println!("xbench start sector_size={} bytes={}", disk.sector_size(), disk.len());
    if disk.len() < plan.bytes {
        return Err(std::io::Error::other(format!("the disk has only {} bytes", disk.len())));
    }
    let mut buf = Aligned::new(plan.chunk);
    pass("write", plan, &mut buf, |b, off| { fill(b, off); disk.write_at(b, off) }, || disk.sync())?;
    let mut scratch = vec![0u8; plan.chunk];
    pass("read", plan, &mut buf, |b, off| { disk.read_at(b, off)?; check(b, off, &mut scratch) }, || Ok(()))
}

#[cfg(target_os = "linux")]
fn run(plan: &Plan) -> std::io::Result<()> {
    use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};

    let path = linux::xvda()?;
    if let Some(file) = &plan.file {
        linux::mount_vfat()?;
        return file_passes(plan, file, linux::drop_caches);
    }
    const O_DIRECT: i32 = 0o40000;
    let file = std::fs::OpenOptions::new().read(true).write(true).custom_flags(O_DIRECT).open(&path)?;
    let len = file.metadata()?.len().max(linux::size_of(&path));
    println!("xbench start sector_size={} bytes={len}", linux::sector_size());
    let mut buf = Aligned::new(plan.chunk);
    pass("write", plan, &mut buf, |b, off| { fill(b, off); file.write_all_at(b, off) }, || file.sync_all())?;
    let mut scratch = vec![0u8; plan.chunk];
    pass("read", plan, &mut buf, |b, off| { file.read_exact_at(b, off)?; check(b, off, &mut scratch) }, || Ok(()))
}

fn main() {
    let outcome = plan().map_err(std::io::Error::other).and_then(|plan| run(&plan));
    init::end(outcome);
}

/// What Linux's init needs for the disk: its block driver and device node, vfat, the page cache
/// dropped.
#[cfg(target_os = "linux")]
mod linux {
    use super::init::{self, check, syscall5};

    const SYS_MKNOD: usize = 133;
    /// `xvd` disks: block major 202, minor 0 for xvda (Linux's `devices.txt`).
    const XVD_MAJOR: usize = 202;
    const S_IFBLK: usize = 0o060000;

    /// Loads xen-blkfront (from the initramfs) unless the disk is there already, makes
    /// `/dev/xvda` and waits for the driver to have probed it.
    pub fn xvda() -> std::io::Result<std::path::PathBuf> {
        init::mount_proc_and_sys()?;
        if !std::path::Path::new("/sys/block/xvda").exists() {
            init::load_module("xen-blkfront")?;
        }
        init::wait_for("/sys/block/xvda", "xen-blkfront found no xvda")?;
        std::fs::create_dir_all("/dev")?;
        let _ = std::fs::remove_file("/dev/xvda");
        // SAFETY: a NUL-terminated path that outlives the call; the rest are integers.
        let ret = unsafe { syscall5(SYS_MKNOD, c"/dev/xvda".as_ptr() as usize, S_IFBLK | 0o600, XVD_MAJOR << 8, 0, 0) };
        check(ret, || "mknod /dev/xvda".into())?;
        Ok("/dev/xvda".into())
    }

    /// Loads the FAT modules (from the initramfs) and mounts `/dev/xvda` at `/mnt` as vfat.
    pub fn mount_vfat() -> std::io::Result<()> {
        for name in ["fat", "vfat", "nls_cp437", "nls_ascii"] {
            init::load_module(name)?;
        }
        init::mount(c"/dev/xvda", c"/mnt", c"vfat")
    }

    /// Writes back and drops the page cache, so that reading the file reads the disk.
    pub fn drop_caches() -> std::io::Result<()> {
        std::fs::write("/proc/sys/vm/drop_caches", b"3\n")
    }

    /// The disk's size from sysfs (a block device's metadata says 0).
    pub fn size_of(_: &std::path::Path) -> u64 {
        std::fs::read_to_string("/sys/block/xvda/size")
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map_or(0, |sectors| sectors * 512)
    }

    /// The logical sector size from sysfs.
    pub fn sector_size() -> u64 {
        std::fs::read_to_string("/sys/block/xvda/queue/logical_block_size")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }
}

#[path = "../../linux_init.rs"]
mod init;
