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
    use core::sync::atomic::{AtomicBool, Ordering};

    use super::blockcache::Sectors;
    use super::errno::Errno;
    use super::fat::FatFs;
    use super::mount::{self, Table};
    use crate::blk::blkfront::{self, BlkError, DiskInfo};
    use crate::blk::ring;
    use crate::sync::Mutex;

    struct Mounts {
        table: Table,
        volumes: Vec<FatFs>,
    }

    static MOUNTS: Mutex<Mounts> = Mutex::new(Mounts { table: Table::new(), volumes: Vec::new() });
    /// Whether anything is mounted: without, paths go to the tree with no routing at all.
    static ANY: AtomicBool = AtomicBool::new(false);

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
        let mut mounts = MOUNTS.lock();
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
        match MOUNTS.lock().table.route(&abs) {
            Some((index, inner)) => Route::Mount(index, inner.to_vec(), wants_dir),
            None => Route::Tree,
        }
    }

    /// The absolute path of a mount's point.
    pub fn mount_point(index: usize) -> Vec<u8> {
        MOUNTS.lock().table.point(index).to_vec()
    }

    /// Runs `f` on mount `index`, holding the mounts' lock.
    pub fn with_mount<R>(index: usize, f: impl FnOnce(&mut FatFs) -> Result<R, Errno>) -> Result<R, Errno> {
        let mut mounts = MOUNTS.lock();
        match mounts.volumes.get_mut(index) {
            Some(fs) => f(fs),
            None => Err(Errno::EBADF),
        }
    }

    /// Writes every mount's open changes back and flushes its disk, as the program exits.
    pub fn sync_mounts() {
        if !ANY.load(Ordering::Acquire) {
            return;
        }
        let mut mounts = MOUNTS.lock();
        for (index, fs) in mounts.volumes.iter_mut().enumerate() {
            if let Err(e) = fs.sync_all() {
                error!("mount {index}: writing back at exit failed: {e:?}");
            }
        }
    }
}
