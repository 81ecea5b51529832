//! Files: the packed archive from the guest's ramdisk module, mounted at `/`, under a writable
//! in-memory overlay (`docs/fs.md`).
//!
//! [`cpio`] reads the archive, [`tree`] is the filesystem, [`data`] a file's contents and
//! [`chunk`] the memory they take. Disks with a FAT volume are mounted under the tree
//! (`xen.mount=`): [`mount`] routes paths, [`fat`] is a volume with its handles, [`fatmap`] its
//! allocation table read directly, [`blockcache`]
//! the volume's view of the disk. All of it is pure and tested on the host. The guest keeps
//! one [`tree::Tree`] behind a sleeping [`Mutex`](crate::sync::Mutex): a call may copy
//! megabytes or allocate, which a spin lock (upcalls masked) must not wait on.

pub mod blockcache;
pub mod chunk;
pub mod cpio;
pub mod data;
pub mod errno;
pub mod fat;
pub mod fatmap;
pub mod mount;
pub mod tree;

#[cfg(target_os = "none")]
pub use self::target::*;

#[cfg(target_os = "none")]
mod target {
    use super::errno::Errno;
    use super::tree::{Skipped, Time, Tree};
    use crate::sync::Mutex;
    use core::fmt;

    /// The filesystem, mounted once at boot.
    static FS: Mutex<Option<Tree>> = Mutex::new(None);

    /// The time of day, for modification times.
    pub fn now() -> Time {
        let (secs, nanos) = crate::time::wallclock();
        Time { secs, nanos }
    }

    /// A name from the archive, printable whatever its bytes.
    struct Name<'a>(&'a [u8]);

    impl fmt::Display for Name<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            for &byte in self.0.iter().take(200) {
                write!(f, "{}", core::ascii::escape_default(byte))?;
            }
            Ok(())
        }
    }

    /// Mounts the packed archive (if the guest has one) at `/` and makes `/tmp`; on a
    /// malformed archive returns what was wrong and at which byte, for a boot error.
    pub fn mount(archive: Option<&'static [u8]>) -> Result<(), (&'static str, usize)> {
        let now = now();
        let mut tree = Tree::new(now);
        if let Some(bytes) = archive {
            let mut report = |s: Skipped<'_>| warn!("packed files: skipped \"{}\": {}", Name(s.name), s.why);
            let added = tree.mount(bytes, now, &mut report).map_err(|e| e.describe())?;
            info!("packed files: {added} entries from {} KiB mounted at /", bytes.len() >> 10);
        }
        if tree.stat(b"/tmp").is_err() && tree.mkdir(b"/tmp", 0o777, now).is_ok() {
            let _ = tree.set_perm(b"/tmp", 0o1777);
        }
        *FS.lock() = Some(tree);
        Ok(())
    }

    /// Runs `f` on the filesystem, holding its lock.
    ///
    /// Lock order: the tree's lock is never held while the mounts' is taken.
    pub fn with<R>(f: impl FnOnce(&mut Tree) -> Result<R, Errno>) -> Result<R, Errno> {
        let mut guard = FS.lock();
        match guard.as_mut() {
            Some(tree) => f(tree),
            // Only before boot mounted it, when no program runs.
            None => Err(Errno::ENOENT),
        }
    }
}

#[cfg(target_os = "none")]
pub use self::disks::*;

/// The mounted disks: opening them at boot, routing paths to them, flushing them at exit.
#[cfg(target_os = "none")]
mod disks {
    use alloc::boxed::Box;
    use alloc::vec::Vec;
    use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

    use super::blockcache::Sectors;
    use super::errno::Errno;
    use super::fat::FatFs;
    use super::mount::{self, Table};
    use crate::blk::blkfront::{self, BlkError, DiskInfo};
    use crate::blk::ring;
    use crate::sync::{FairGuard, FairMutex};

    struct Mounts {
        table: Table,
        volumes: Vec<FatFs>,
    }

    /// Held through each filesystem operation on a mount, disk I/O included; fair, so that a
    /// thread writing in a loop does not starve another one, nor the exit path.
    static MOUNTS: FairMutex<Mounts> = FairMutex::new(Mounts { table: Table::new(), volumes: Vec::new() });
    /// Whether anything is mounted: without, paths go to the tree with no routing at all.
    static ANY: AtomicBool = AtomicBool::new(false);
    /// The thread that began ending the program (exit, return from `main`, abort), 0 before.
    /// From then on no other thread starts an operation on a mount: it parks for good.
    static ENDING: AtomicU64 = AtomicU64::new(0);

    /// Claims the ending of the program for the running thread: false if it had claimed it
    /// already (an abort inside its own exit); parks for good if another thread had. Also for
    /// an ending that does other work before the write-back (`lifecycle::end_program`).
    pub fn claim_ending() -> bool {
        let me = crate::sched::current_id();
        match ENDING.compare_exchange(0, me, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => true,
            Err(ender) if ender == me => false,
            Err(_) => park(),
        }
    }

    /// Blocks the running thread for good: the program is ending on another thread, which
    /// powers the guest off.
    fn park() -> ! {
        static NEVER: AtomicU32 = AtomicU32::new(0);
        loop {
            // SAFETY: `NEVER` is a live atomic u32; nobody wakes it, nor changes it.
            unsafe { crate::sched::futex_wait(NEVER.as_ptr(), 0, u64::MAX) };
        }
    }

    /// The mounts' lock for a program's operation; parks for good instead once another thread
    /// has begun ending the program (also after waiting its turn), so that the ending waits for
    /// at most the operation in progress.
    fn lock_mounts() -> FairGuard<'static, Mounts> {
        let ending = || {
            let ender = ENDING.load(Ordering::SeqCst);
            ender != 0 && ender != crate::sched::current_id()
        };
        if ending() {
            park();
        }
        let guard = MOUNTS.lock();
        if ending() {
            drop(guard);
            park();
        }
        guard
    }

    /// A disk of blkfront, as the FAT volume's sectors.
    struct BlkDisk {
        handle: u32,
        info: DiskInfo,
    }

    fn errno(e: BlkError) -> Errno {
        match e {
            BlkError::ReadOnly => Errno::EROFS,
            BlkError::Unaligned | BlkError::PastEnd => Errno::EINVAL,
            BlkError::NoMemory => Errno::ENOSPC,
            _ => Errno::EIO,
        }
    }

    impl Sectors for BlkDisk {
        fn sector_size(&self) -> usize {
            self.info.geometry.sector_size as usize
        }
        fn len(&self) -> u64 {
            self.info.geometry.sectors * 512
        }
        fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), Errno> {
            blkfront::read(self.handle, offset, buf).map_err(errno)
        }
        fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), Errno> {
            blkfront::write(self.handle, offset, data).map_err(errno)
        }
        fn flush(&mut self) -> Result<(), Errno> {
            if self.info.flush_op.is_none() {
                return Ok(());
            }
            blkfront::flush(self.handle).map_err(errno)
        }
        fn read_only(&self) -> bool {
            self.info.readonly
        }
    }

    /// Mounts the disks the command line names (`xen.mount=VDEV:PATH[:ro]`); a mount that
    /// fails is logged as an error and left out, and the program runs without it.
    pub fn mount_disks() {
        super::fat::set_clock(super::now);
        for_each_mount(|spec, vdev, point| {
            if let Err(why) = mount_one(spec) {
                error!("mount {vdev} at {point} failed: {why}");
            }
        });
    }

    /// Logs each mount the command line asks for as failed, when the guest can have no disks
    /// (`why`: no xenstore, as for dom0), so that the option is not ignored silently.
    pub fn refuse_mounts(why: &str) {
        for_each_mount(|_, vdev, point| error!("mount {vdev} at {point} failed: {why}"));
    }

    /// Runs `f` on each `xen.mount` of the command line, with its disk and path as text.
    fn for_each_mount(mut f: impl FnMut(&mount::MountSpec<'_>, &str, &str)) {
        let cmdline = crate::boot::cmdline();
        for index in 0.. {
            let Some(value) = cmdline.mount(index) else { break };
            let Some(spec) = mount::parse_spec(value) else { continue };
            let vdev = core::str::from_utf8(spec.vdev).unwrap_or("?");
            let point = core::str::from_utf8(&spec.path).unwrap_or("?");
            f(&spec, vdev, point);
        }
    }

    fn mount_one(spec: &mount::MountSpec<'_>) -> Result<(), alloc::string::String> {
        use alloc::format;
        let id = ring::vbd_id(spec.vdev).ok_or_else(|| format!("not a disk name"))?;
        let (handle, info) = blkfront::open(id, spec.read_only).map_err(|e| format!("the disk: {e:?}"))?;
        let disk = BlkDisk { handle, info };
        let fs = match FatFs::mount(Box::new(disk), spec.read_only) {
            Ok(fs) => fs,
            Err((errno, why)) => {
                let _ = blkfront::close(handle);
                return Err(format!("no FAT volume ({errno:?}): {why}"));
            }
        };
        let (kind, bytes) = fs.describe();
        let ro = fs.read_only();
        let mut mounts = lock_mounts();
        if mounts.table.add(spec.path.clone()).is_none() {
            let _ = blkfront::close(handle);
            return Err(format!("the path is mounted already"));
        }
        mounts.volumes.push(fs);
        drop(mounts);
        // The mount point, in the tree too, so that its parent lists it.
        let now = super::now();
        let _ = super::with(|tree| {
            let mut at = 0;
            while let Some(next) = spec.path[at + 1..].iter().position(|&b| b == b'/').map(|p| p + at + 1) {
                let _ = tree.mkdir(&spec.path[..next], 0o755, now);
                at = next;
            }
            let _ = tree.mkdir(&spec.path, 0o755, now);
            Ok(())
        });
        ANY.store(true, Ordering::Release);
        let point = core::str::from_utf8(&spec.path).unwrap_or("?");
        info!("mounted {} ({kind:?}, {} MiB{}) at {point}", core::str::from_utf8(spec.vdev).unwrap_or("?"), bytes >> 20, if ro { ", read-only" } else { "" });
        Ok(())
    }

    /// Where a path goes.
    pub enum Route {
        Tree,
        /// A mount's index, the path inside it, and whether the path asked for a directory.
        Mount(usize, Vec<u8>, bool),
    }

    /// Routes a path from the program (see [`super::mount`]).
    pub fn route(path: &[u8]) -> Route {
        if !ANY.load(Ordering::Acquire) {
            return Route::Tree;
        }
        let mut cwd = Vec::new();
        if !path.starts_with(b"/") && super::with(|tree| tree.cwd(&mut cwd)).is_err() {
            return Route::Tree;
        }
        let Some((abs, wants_dir)) = mount::resolve(if cwd.is_empty() { b"/" } else { &cwd }, path) else {
            return Route::Tree;
        };
        match lock_mounts().table.route(&abs) {
            Some((index, inner)) => Route::Mount(index, inner.to_vec(), wants_dir),
            None => Route::Tree,
        }
    }

    /// The absolute path of a mount's point.
    pub fn mount_point(index: usize) -> Vec<u8> {
        lock_mounts().table.point(index).to_vec()
    }

    /// Runs `f` on mount `index`, holding the mounts' lock.
    pub fn with_mount<R>(index: usize, f: impl FnOnce(&mut FatFs) -> Result<R, Errno>) -> Result<R, Errno> {
        let mut mounts = lock_mounts();
        match mounts.volumes.get_mut(index) {
            Some(fs) => f(fs),
            None => Err(Errno::EBADF),
        }
    }

    /// Writes every mount's open changes back and flushes its disk, as the program exits (or
    /// `main` returns). Other threads start no new operation on a mount from here on; this
    /// waits for the one in progress, if any.
    pub fn sync_mounts() {
        if claim_ending() {
            sync_mounts_claimed();
        }
    }

    /// [`sync_mounts`]' write-back, for the thread that [`claim_ending`] answered true.
    pub fn sync_mounts_claimed() {
        if ANY.load(Ordering::Acquire) {
            write_back(&mut MOUNTS.lock(), "exit");
        }
    }

    /// Writes the mounts back as the program aborts, where that is safe: the kernel is intact
    /// (only the program is suspect), and each operation leaves a volume consistent. Not when
    /// the aborting thread is inside an operation itself (an allocation failure or a panic in
    /// it): the volume may be half changed, and the lock is its own. With upcalls masked (a
    /// spin lock held) it must not sleep, so it only takes a free lock.
    pub fn sync_mounts_at_abort() {
        if !claim_ending() || !ANY.load(Ordering::Acquire) {
            return;
        }
        if MOUNTS.held_by_me() {
            warn!("abort inside a filesystem call: the mounts are not written back");
            return;
        }
        let guard = if crate::arch::x86_64::irq::masked() { MOUNTS.try_lock() } else { Some(MOUNTS.lock()) };
        match guard {
            Some(mut mounts) => write_back(&mut mounts, "abort"),
            None => warn!("abort with a lock held: the mounts are not written back"),
        }
    }

    fn write_back(mounts: &mut Mounts, when: &str) {
        for (index, fs) in mounts.volumes.iter_mut().enumerate() {
            if let Err(e) = fs.sync_all() {
                error!("mount {index}: writing back at {when} failed: {e:?}");
            }
        }
    }
}
