//! A FAT volume on a disk, with open-file handles, as `std::fs` sees it: `hadris-fat` does the
//! on-disk format; this module gives it Linux's semantics and errors (`docs/fs.md`, "A
//! filesystem on a disk").
//!
//! Paths reach it relative to the volume's root, already split by the mount table
//! ([`super::mount`]): components without `.`, `..` or empty ones. Names match as Linux's
//! `vfat` matches them: case-insensitively, keeping the case they were created with.
//!
//! Contents are never held in memory: they go through the block cache to the disk.
//! - A write at or past a file's end appends through the crate's writer ([`Stream`]), which
//!   writes through to the cache and allocates clusters as it goes (a gap before the write is
//!   filled with zeros, as `vfat` does: FAT has no holes). The file's entry gets the new size
//!   when the writer finishes ([`FatFs::commit`]): at close, `sync_all`/`sync_data`, exit, and
//!   before anything that reads the entry (a read through any handle, a truncation, a
//!   removal, a rename). One writer serves every handle of a file.
//! - A write inside a file overwrites its clusters in place, found through the chain
//!   ([`super::fatmap`]), from where the handle last wrote.
//! - Before the writer takes clusters, [`FatFs::fits`] checks them against the free
//!   clusters, counted from the FAT itself: a write that does not fit is cut to what does,
//!   one of which nothing fits fails with `ENOSPC`, as Linux's `vfat`, and the crate's writer
//!   never meets a full volume (it would give back everything it allocated).
//! - A read goes through the crate's reader, kept with the file's cluster chain (sequential
//!   reads cost no FAT walk; contiguous clusters are read in one request).
//!
//! The crate's volume is leaked at mount (mounts live for the guest's life), so that readers
//! can borrow it for `'static` and live in the handles. Everything is pure logic over
//! [`Sectors`], tested on the host with a FAT image the crate formats in memory.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use hadris_fat::Error as FatError;
use hadris_fat::sync::read::FileReader;
use hadris_fat::sync::write::FileWriter;
use hadris_fat::sync::{FatDir, FatVolume, FatVolumeReadExt, FatVolumeWriteExt, FileEntry, SeekFrom};
use hadris_fat::time::{FatDateTime, TimeProvider};

use super::blockcache::{BlockCache, CacheRef, Sectors};
use super::errno::Errno;
use super::fatmap::{FreeCount, Geometry, Kind, Link};
use super::tree::{insert_handle, NAME_MAX, Stat, Time, Whence, flags::*};

type Volume<D> = FatVolume<CacheRef<D>>;

/// The clock that stamps entries: set by the kernel at boot.
static CLOCK: spin::Once<fn() -> Time> = spin::Once::new();

/// Gives the FAT volumes their clock (Xen's wallclock in the guest).
pub fn set_clock(now: fn() -> Time) {
    CLOCK.call_once(|| now);
}

fn now() -> Time {
    CLOCK.get().map_or(Time { secs: 0, nanos: 0 }, |f| f())
}

#[derive(Debug)]
struct Clock;

impl TimeProvider for Clock {
    fn now(&self) -> FatDateTime {
        to_fat(now())
    }
}

static CLOCK_PROVIDER: Clock = Clock;

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// A FAT time stamp as UTC (as Linux mounts `vfat` without `tz=`: local time taken as UTC).
fn from_fat(t: FatDateTime) -> Time {
    let year = 1980 + i64::from(t.date >> 9);
    let month = i64::from((t.date >> 5) & 0xf).clamp(1, 12);
    let day = i64::from(t.date & 0x1f).max(1);
    let secs = i64::from(t.time >> 11) * 3600 + i64::from((t.time >> 5) & 0x3f) * 60 + i64::from(t.time & 0x1f) * 2;
    let tenth = u32::from(t.time_tenth.min(199));
    Time {
        secs: days_from_civil(year, month, day) * 86_400 + secs + i64::from(tenth / 100),
        nanos: tenth % 100 * 10_000_000,
    }
}

fn to_fat(t: Time) -> FatDateTime {
    let secs = t.secs.max(days_from_civil(1980, 1, 1) * 86_400);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    let mut fat =
        FatDateTime::new(y.min(2107) as u16, m as u8, d as u8, (s / 3600) as u8, (s / 60 % 60) as u8, (s % 60) as u8);
    fat.time_tenth = ((s % 2) * 100) as u8 + (t.nanos / 10_000_000) as u8;
    fat
}

/// A path inside the volume, split into its components.
#[derive(Clone, Debug)]
struct Components(Vec<String>);

impl Components {
    fn parse(path: &[u8]) -> Result<Components, Errno> {
        let text = core::str::from_utf8(path).map_err(|_| Errno::EINVAL)?;
        let mut parts = Vec::new();
        for part in text.split('/').filter(|p| !p.is_empty()) {
            if part.len() > NAME_MAX {
                return Err(Errno::ENAMETOOLONG);
            }
            parts.push(String::from(part));
        }
        Ok(Components(parts))
    }

    fn split_last(&self) -> Option<(&[String], &str)> {
        self.0.split_last().map(|(last, rest)| (rest, last.as_str()))
    }

    /// Whether `self` is `prefix` or below it, names compared as the volume compares them
    /// (without regard to case).
    fn starts_with(&self, prefix: &Components) -> bool {
        self.0.len() >= prefix.0.len() && self.0.iter().zip(&prefix.0).all(|(a, b)| same_name(a, b))
    }

    /// `self` (which starts with `from`) with that start replaced by `to`.
    fn moved(&self, from: &Components, to: &Components) -> Components {
        Components(to.0.iter().chain(&self.0[from.0.len()..]).cloned().collect())
    }
}

/// Whether two names are one on the volume: FAT matches names without regard to case.
fn same_name(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b) || a.to_lowercase() == b.to_lowercase()
}

/// A file's identity on the volume: the first cluster of its directory (0 for the root) and
/// its short name, which is unique inside a directory. Handles of one file share it, whatever
/// case or name form their paths used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileKey {
    dir: usize,
    name: [u8; 11],
}

/// What a path names: the root, or an entry of a directory.
enum Node {
    Root,
    Entry(FileEntry, FileKey),
}

impl Node {
    fn is_dir(&self) -> bool {
        match self {
            Node::Root => true,
            Node::Entry(e, _) => e.is_directory(),
        }
    }
}

struct Handle {
    /// Where the file or directory is now: renames move it along ([`FatFs::rename`]).
    path: Components,
    /// The file's identity (none for directories).
    key: Option<FileKey>,
    /// The file or directory was removed or replaced after the handle was opened: every use
    /// is `ESTALE`, so the handle never touches what later takes its name.
    gone: bool,
    is_dir: bool,
    pos: u64,
    read: bool,
    write: bool,
    append: bool,
    /// The crate's reader, with the file's chain; dropped whenever the file's entry changes.
    reader: Option<FileReader<'static, CacheRef<D0>>>,
    /// Where this handle last overwrote: a cluster's index in the file and its number, so that
    /// the next overwrite walks the chain on from there.
    cursor: Option<(u64, u32)>,
    /// Whether the handle overwrote bytes in place since the entry's time was last set.
    touched: bool,
}

/// A file being appended to (a write at its end): the crate's writer, which writes through to
/// the disk and allocates clusters as it goes. The entry gets the new size when the writer
/// finishes ([`FatFs::commit`]): at close, `sync_all`, exit, or when another operation needs
/// the entry to be right.
///
/// FIXME: never on a timer, so a crash loses what a long-running writer wrote since its open
/// or last sync (Linux's `vfat` commits a dirty inode within about 30 s); a commit makes the
/// next append walk the whole chain again (`FileWriter::new_append`), so a timed commit needs
/// a writer that can commit its entry and carry on.
struct Stream {
    key: FileKey,
    /// The path it was made for (to find the entry again).
    path: Components,
    writer: FileWriter<'static, CacheRef<D0>>,
    /// Whether a write failed (the disk, part-way): see [`FatFs::commit`].
    failed: bool,
    /// The file's length with what the writer added.
    len: u64,
    /// The time of the last write, for the entry.
    modified: Time,
}

/// A placeholder for the reader's type parameter; see [`FatFs`]'s `D`.
type D0 = super::blockcache::AnyDisk;

/// FAT keeps a file's size in 32 bits.
const MAX_FILE: u64 = u32::MAX as u64;

/// Zeros, for filling a gap a write or `set_len` leaves past a file's end.
static ZEROS: [u8; 4096] = [0; 4096];

/// A mounted FAT volume with its handles.
pub struct FatFs {
    vol: &'static Volume<D0>,
    cache: Arc<spin::Mutex<BlockCache<D0>>>,
    read_only: bool,
    geo: Geometry,
    free: FreeCount,
    handles: Vec<Option<Handle>>,
    streams: Vec<Stream>,
}

// SAFETY: the volume (which holds `Cell`s, so is not `Sync`) is reached only through this
// `FatFs`: the reference is leaked at mount and kept nowhere else, and the readers and writers
// that borrow it live in `handles` and `streams`. The kernel keeps each `FatFs` behind one
// sleeping mutex, so no two threads touch the volume at once.
unsafe impl Send for FatFs {}

/// The `errno` for one of the crate's errors.
fn errno_of(e: &FatError) -> Errno {
    match e {
        FatError::EntryNotFound => Errno::ENOENT,
        FatError::NotADirectory => Errno::ENOTDIR,
        FatError::NotAFile => Errno::EISDIR,
        FatError::InvalidPath | FatError::InvalidFilename => Errno::EINVAL,
        FatError::NoFreeSpace | FatError::DirectoryFull => Errno::ENOSPC,
        FatError::AlreadyExists => Errno::EEXIST,
        FatError::DirectoryNotEmpty => Errno::ENOTEMPTY,
        FatError::WriterConflict => Errno::EBUSY,
        _ => Errno::EIO,
    }
}

impl FatFs {
    /// Mounts the FAT volume on `disk`; `read_only` refuses every write (nothing is ever
    /// written to the disk then). A disk without a FAT volume, or a corrupt one, is an error
    /// with the crate's description of it.
    pub fn mount(disk: D0, read_only: bool) -> Result<FatFs, (Errno, String)> {
        let read_only = read_only || disk.read_only();
        let cache = Arc::new(spin::Mutex::new(BlockCache::new(disk, read_only)));
        let vol = FatVolume::builder(CacheRef(cache.clone())).time_provider(&CLOCK_PROVIDER).open().map_err(|e| {
            let errno = cache.lock().take_error().unwrap_or(Errno::EINVAL);
            (errno, alloc::format!("{e}"))
        })?;
        let mut boot = [0u8; 64];
        cache.lock().read_at(0, &mut boot).map_err(|e| (e, String::from("reading the boot sector")))?;
        let geo = Geometry::parse(&boot)
            .filter(|g| g.max_cluster == vol.fat().max_cluster() && same_kind(g.kind, vol.fat_type()))
            .ok_or((Errno::EINVAL, String::from("the boot sector's geometry is not the crate's")))?;
        if !read_only {
            cache.lock().watch(geo.fat_start, geo.fat_len, geo.unit_bytes());
        }
        let vol: &'static Volume<D0> = alloc::boxed::Box::leak(alloc::boxed::Box::new(vol));
        let free = FreeCount::default();
        Ok(FatFs { vol, cache, read_only, geo, free, handles: Vec::new(), streams: Vec::new() })
    }

    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// The FAT type and size, for the mount's log line.
    pub fn describe(&self) -> (hadris_fat::sync::FatType, u64) {
        (self.vol.fat_type(), self.cache.lock().disk().len())
    }

    /// The free clusters of the volume (counted from the FAT, not FSInfo's hint).
    pub fn free_clusters(&mut self) -> Result<u64, Errno> {
        self.free.get(&self.geo, &mut self.cache.lock())
    }

    /// The errno of a crate error: the disk's own, if the disk failed.
    fn err(&self, e: FatError) -> Errno {
        let disk = self.cache.lock().take_error();
        match e {
            FatError::Io(_) | FatError::IoContext { .. } => disk.unwrap_or(Errno::EIO),
            _ => errno_of(&e),
        }
    }

    fn writable(&self) -> Result<(), Errno> {
        if self.read_only { Err(Errno::EROFS) } else { Ok(()) }
    }

    /// The directory that the components name, and its first cluster (0 for the root).
    fn dir(&self, parts: &[String]) -> Result<(FatDir<'static, CacheRef<D0>>, usize), Errno> {
        let mut dir = self.vol.root_dir();
        let mut cluster = 0;
        for part in parts {
            let entry = dir.find(part).map_err(|e| self.err(e))?.ok_or(Errno::ENOENT)?;
            if !entry.is_directory() {
                return Err(Errno::ENOTDIR);
            }
            dir = self.vol.open_dir_entry(&entry).map_err(|e| self.err(e))?;
            cluster = entry.cluster().0;
        }
        Ok((dir, cluster))
    }

    /// What the path names, if it exists (its parent must).
    fn find(&self, path: &Components) -> Result<Option<Node>, Errno> {
        let Some((parent, name)) = path.split_last() else { return Ok(Some(Node::Root)) };
        let (dir, cluster) = self.dir(parent)?;
        let found = dir.find(name).map_err(|e| self.err(e))?;
        Ok(found.map(|e| {
            let key = FileKey { dir: cluster, name: e.short_name().raw_bytes() };
            Node::Entry(e, key)
        }))
    }

    /// The file the path names.
    fn file(&self, path: &Components) -> Result<(FileEntry, FileKey), Errno> {
        match self.find(path)? {
            Some(Node::Entry(e, key)) if !e.is_directory() => Ok((e, key)),
            Some(_) => Err(Errno::EISDIR),
            None => Err(Errno::ENOENT),
        }
    }

    /// The file a handle is open on: `ESTALE` if it was removed or replaced since, or if its
    /// path now names another file.
    fn file_of(&self, handle: usize) -> Result<(Components, FileEntry, FileKey), Errno> {
        let h = self.handles.get(handle).and_then(Option::as_ref).ok_or(Errno::EBADF)?;
        if h.gone {
            return Err(Errno::ESTALE);
        }
        let path = h.path.clone();
        match self.file(&path) {
            Ok((entry, key)) if Some(key) == h.key => Ok((path, entry, key)),
            Ok(_) | Err(Errno::ENOENT) => Err(Errno::ESTALE),
            Err(e) => Err(e),
        }
    }

    fn lookup(&self, path: &[u8], wants_dir: bool) -> Result<(Components, Node), Errno> {
        let parts = Components::parse(path)?;
        let node = self.find(&parts)?.ok_or(Errno::ENOENT)?;
        if wants_dir && !node.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        Ok((parts, node))
    }

    fn stream(&self, key: FileKey) -> Option<&Stream> {
        self.streams.iter().find(|s| s.key == key)
    }

    /// A file's length now: with what a writer appended and has not yet put in the entry.
    fn len_of(&self, entry: &FileEntry, key: FileKey) -> u64 {
        self.stream(key).map_or(entry.len(), |s| s.len)
    }

    fn stat_of(&self, node: &Node) -> Stat {
        match node {
            Node::Root => {
                Stat { ino: 1, is_dir: true, perm: 0o755, size: 0, modified: Time::default(), created: Time::default() }
            }
            Node::Entry(e, key) => Stat {
                ino: e.cluster().0 | 1 << 40,
                is_dir: e.is_directory(),
                perm: if e.is_directory() { 0o755 } else { 0o644 },
                size: self.len_of(e, *key),
                modified: self.stream(*key).map_or_else(|| from_fat(e.modified()), |s| s.modified),
                created: from_fat(e.created()),
            },
        }
    }

    /// What `stat` says of `path`.
    pub fn stat(&self, path: &[u8], wants_dir: bool) -> Result<Stat, Errno> {
        let (_, node) = self.lookup(path, wants_dir)?;
        Ok(self.stat_of(&node))
    }

    /// Opens (and perhaps creates) `path` with `open(2)`'s flags; returns a handle.
    pub fn open(&mut self, path: &[u8], wants_dir: bool, open_flags: u32) -> Result<usize, Errno> {
        let (read, write) = match open_flags & O_ACCMODE {
            O_RDONLY => (true, false),
            O_WRONLY => (false, true),
            O_RDWR => (true, true),
            _ => return Err(Errno::EINVAL),
        };
        let parts = Components::parse(path)?;
        let node = match self.find(&parts)? {
            Some(_) if open_flags & O_CREAT != 0 && open_flags & O_EXCL != 0 => return Err(Errno::EEXIST),
            Some(node) => {
                if node.is_dir() && write {
                    return Err(Errno::EISDIR);
                }
                if !node.is_dir() && (wants_dir || open_flags & O_DIRECTORY != 0) {
                    return Err(Errno::ENOTDIR);
                }
                if write {
                    self.writable()?;
                }
                node
            }
            None if open_flags & O_CREAT == 0 => return Err(Errno::ENOENT),
            None => {
                let (parent, name) = parts.split_last().ok_or(Errno::EISDIR)?;
                if wants_dir {
                    return Err(Errno::EISDIR);
                }
                self.writable()?;
                let (dir, cluster) = self.dir(parent)?;
                let entry = self.vol.create_file(&dir, name).map_err(|e| self.err(e))?;
                self.changed();
                let key = FileKey { dir: cluster, name: entry.short_name().raw_bytes() };
                Node::Entry(entry, key)
            }
        };
        let key = match &node {
            Node::Entry(_, key) if !node.is_dir() => Some(*key),
            _ => None,
        };
        // As on Linux, the truncation happens at the open, for every handle of the file.
        if let Some(key) = key
            && write
            && open_flags & O_TRUNC != 0
        {
            self.cut(&parts, key, 0)?;
        }
        let handle = Handle {
            path: parts,
            key,
            gone: false,
            is_dir: node.is_dir(),
            pos: 0,
            read,
            write,
            append: open_flags & O_APPEND != 0,
            reader: None,
            cursor: None,
            touched: false,
        };
        insert_handle(&mut self.handles, handle)
    }

    /// Forgets every handle's reader and chain cursor: the volume changed, so chains may have.
    fn changed(&mut self) {
        for h in self.handles.iter_mut().flatten() {
            h.reader = None;
            h.cursor = None;
        }
    }

    /// Forgets the readers and cursors of one file's handles: its entry or chain changed.
    fn changed_file(&mut self, key: FileKey) {
        for h in self.handles.iter_mut().flatten().filter(|h| h.key == Some(key)) {
            h.reader = None;
            h.cursor = None;
        }
    }

    fn handle(&mut self, handle: usize) -> Result<&mut Handle, Errno> {
        self.handles.get_mut(handle).and_then(Option::as_mut).ok_or(Errno::EBADF)
    }

    /// Finishes the writer appending to `key`, if there is one: the entry gets the file's size,
    /// first cluster and time, and the blocks written so far go to the disk.
    fn commit(&mut self, key: FileKey) -> Result<(), Errno> {
        let Some(index) = self.streams.iter().position(|s| s.key == key) else { return Ok(()) };
        let mut stream = self.streams.swap_remove(index);
        stream.writer.set_modified(to_fat(stream.modified));
        // A write that failed right after the writer took a new cluster leaves it in the chain
        // past the file's end, which finishing would keep (one cluster too many for the
        // size). One byte more puts it inside the file; cutting that byte off then gives it
        // back through the crate, with its count of free clusters.
        let cs = self.geo.cluster_size;
        let pad = stream.failed && stream.len > 0 && stream.len % cs == 0 && stream.writer.write(&[0]).is_ok();
        let result = stream.writer.finish();
        self.changed_file(key);
        result.map_err(|e| self.err(e))?;
        if pad {
            let (entry, _) = self.file(&stream.path)?;
            self.vol.truncate(&entry, stream.len as usize).map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// Puts a handle's changes in its file's entry: a writer's size, or the time of an
    /// overwrite in place.
    fn settle(&mut self, handle: usize) -> Result<(), Errno> {
        let h = self.handle(handle)?;
        if h.gone {
            return Ok(());
        }
        let (Some(key), touched) = (h.key, core::mem::take(&mut h.touched)) else { return Ok(()) };
        if self.stream(key).is_some() {
            return self.commit(key);
        }
        if touched {
            let (_, entry, _) = self.file_of(handle)?;
            let result = self.vol.set_times(&entry, Some(to_fat(now())), None, None);
            self.changed_file(key);
            result.map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// Closes a handle, putting its changes in the entry and writing the cache back.
    pub fn close(&mut self, handle: usize) -> Result<(), Errno> {
        let result = self.settle(handle);
        self.handle(handle)?;
        self.handles[handle] = None;
        result?;
        self.cache.lock().write_back()
    }

    /// Puts a handle's changes in its entry, then writes everything to the disk, and flushes
    /// the disk (`fsync`).
    pub fn sync(&mut self, handle: usize) -> Result<(), Errno> {
        // A gone handle's file is no more: nothing of it can be made durable.
        if self.handle(handle)?.gone {
            return Err(Errno::ESTALE);
        }
        self.settle(handle)?;
        self.sync_volume()
    }

    fn sync_volume(&mut self) -> Result<(), Errno> {
        if self.read_only {
            return Ok(());
        }
        self.vol.sync().map_err(|e| self.err(e))?;
        self.cache.lock().sync()
    }

    /// Settles every handle (and commits any writer left) and flushes the disk, as at exit.
    pub fn sync_all(&mut self) -> Result<(), Errno> {
        let mut first = Ok(());
        for handle in 0..self.handles.len() {
            if self.handles[handle].is_some() {
                let result = self.settle(handle);
                first = first.and(result);
            }
        }
        while let Some(stream) = self.streams.first() {
            let result = self.commit(stream.key);
            first = first.and(result);
        }
        first.and(self.sync_volume())
    }

    /// Reads from the handle's position, moving it on.
    pub fn read(&mut self, handle: usize, buf: &mut [u8]) -> Result<usize, Errno> {
        let vol = self.vol;
        let h = self.handle(handle)?;
        if !h.read {
            return Err(Errno::EBADF);
        }
        if h.is_dir {
            return Err(Errno::EISDIR);
        }
        if h.gone {
            return Err(Errno::ESTALE);
        }
        // The reader reads what the entry says: a writer appending must finish first.
        if let Some(key) = h.key {
            self.commit(key)?;
        }
        let h = self.handles[handle].as_mut().expect("checked above");
        if h.reader.is_none() {
            let (_, entry, _) = self.file_of(handle)?;
            let reader = vol.read_file(&entry).and_then(FileReader::with_cached_chain).map_err(|e| self.err(e))?;
            self.handles[handle].as_mut().expect("checked above").reader = Some(reader);
        }
        let h = self.handles[handle].as_mut().expect("checked above");
        let reader = h.reader.as_mut().expect("made above");
        let pos = h.pos;
        let result = reader.seek(SeekFrom::Start(pos)).and_then(|_| reader.read(buf));
        match result {
            Ok(n) => {
                h.pos += n as u64;
                Ok(n)
            }
            Err(e) => {
                h.reader = None;
                Err(self.err(e))
            }
        }
    }

    /// Writes at the handle's position (at the end when opened to append), moving it on:
    /// bytes inside the file are overwritten in place, bytes past its end appended (a gap
    /// before them filled with zeros). A write that does not fit is cut to what fits, and
    /// one of which nothing fits is `ENOSPC`, as on Linux.
    pub fn write(&mut self, handle: usize, buf: &[u8]) -> Result<usize, Errno> {
        let h = self.handle(handle)?;
        if !h.write {
            return Err(Errno::EBADF);
        }
        if buf.is_empty() {
            return Ok(0);
        }
        let (append, pos) = (h.append, h.pos);
        let (path, entry, key) = self.file_of(handle)?;
        let len = self.len_of(&entry, key);
        let pos = if append { len } else { pos };
        if pos >= MAX_FILE {
            return Err(Errno::EFBIG);
        }
        let buf = &buf[..buf.len().min((MAX_FILE - pos) as usize)];
        let inside = buf.len().min(len.saturating_sub(pos) as usize);
        let entry = if inside > 0 { self.overwrite(handle, &path, entry, key, pos, &buf[..inside])? } else { entry };
        let mut done = inside;
        if inside < buf.len() {
            match self.append(&path, &entry, key, pos + inside as u64, &buf[inside..]) {
                Ok(n) => done += n,
                Err(_) if done > 0 => {}
                Err(e) => return Err(e),
            }
        }
        self.handles[handle].as_mut().expect("checked above").pos = pos + done as u64;
        Ok(done)
    }

    /// Writes `buf` over the file's bytes at `pos` (all inside its length), in place through
    /// its cluster chain; returns the file's entry (found again if it changed).
    ///
    /// FIXME: the chain is walked from the handle's last overwrite, or from the file's start
    /// for a position before it, so random overwrites of a large file cost a walk each; a
    /// cached list of the chain's runs would retire this.
    fn overwrite(
        &mut self,
        handle: usize,
        path: &Components,
        mut entry: FileEntry,
        key: FileKey,
        pos: u64,
        buf: &[u8],
    ) -> Result<FileEntry, Errno> {
        if entry.cluster().0 < 2 {
            // Clusters a writer gave a file that was empty: its entry has them once it finishes.
            self.commit(key)?;
            entry = self.file(path)?.0;
        }
        // A corrupt entry (bytes but no first cluster, or one off the volume) has no chain.
        let first = u32::try_from(entry.cluster().0).ok().filter(|c| (2..=self.geo.max_cluster).contains(c));
        let first = first.ok_or(Errno::EIO)?;
        let cs = self.geo.cluster_size;
        let h = self.handles[handle].as_mut().expect("checked by the caller");
        let mut cursor = h.cursor.filter(|&(index, _)| index <= pos / cs).unwrap_or((0, first));
        let mut cache = self.cache.lock();
        let mut done = 0;
        while done < buf.len() {
            let at = pos + done as u64;
            cursor = (at / cs, self.geo.walk(&mut cache, cursor, at / cs)?);
            let take = ((cs - at % cs) as usize).min(buf.len() - done);
            cache.write_at(self.geo.cluster_offset(cursor.1) + at % cs, &buf[done..done + take])?;
            done += take;
        }
        drop(cache);
        let h = self.handles[handle].as_mut().expect("checked by the caller");
        h.cursor = Some(cursor);
        h.touched = true;
        Ok(entry)
    }

    /// Appends `buf` at `at`, at or past the file's end (a gap filled with zeros first, and
    /// only if a byte of `buf` fits after it); returns the bytes that fit, `ENOSPC` if none.
    fn append(
        &mut self,
        path: &Components,
        entry: &FileEntry,
        key: FileKey,
        at: u64,
        buf: &[u8],
    ) -> Result<usize, Errno> {
        let len = self.len_of(entry, key);
        if at > len {
            if self.fits(len, at - len + 1)? <= at - len {
                return Err(Errno::ENOSPC);
            }
            self.fill(path, entry, key, at - len)?;
        }
        let n = self.fits(at, buf.len() as u64)? as usize;
        if n == 0 {
            return Err(Errno::ENOSPC);
        }
        self.stream_write(path, entry, key, &buf[..n])
    }

    /// How many of `n` bytes appended to a file of `len` bytes fit in the volume's free
    /// clusters (a file has the clusters its length needs, as the crate's writer leaves it).
    fn fits(&mut self, len: u64, n: u64) -> Result<u64, Errno> {
        let cs = self.geo.cluster_size;
        let have = len.div_ceil(cs);
        let need = (len + n).div_ceil(cs) - have;
        if need == 0 {
            return Ok(n);
        }
        let free = self.free_clusters()?;
        Ok(if need <= free { n } else { (have + free) * cs - len })
    }

    /// Appends `n` zeros to the file (room for them checked by the caller).
    fn fill(&mut self, path: &Components, entry: &FileEntry, key: FileKey, mut n: u64) -> Result<(), Errno> {
        while n > 0 {
            let take = n.min(ZEROS.len() as u64) as usize;
            n -= self.stream_write(path, entry, key, &ZEROS[..take])? as u64;
        }
        Ok(())
    }

    /// Appends through the file's writer, made (positioned at the end) if it has none;
    /// returns the bytes written: all, or (the disk failing part-way) those before the failure.
    fn stream_write(
        &mut self,
        path: &Components,
        entry: &FileEntry,
        key: FileKey,
        data: &[u8],
    ) -> Result<usize, Errno> {
        let index = match self.streams.iter().position(|s| s.key == key) {
            Some(index) => index,
            None => {
                self.check_chain_end(entry)?;
                let writer = FileWriter::new_append(self.vol, entry).map_err(|e| self.err(e))?;
                self.streams.try_reserve(1).map_err(|_| Errno::ENOSPC)?;
                let path = path.clone();
                self.streams.push(Stream { key, path, writer, failed: false, len: entry.len(), modified: now() });
                self.streams.len() - 1
            }
        };
        let stream = &mut self.streams[index];
        let before = stream.len;
        let result = stream.writer.write(data);
        // After an error the writer's length is what it wrote before it (less, if it gave
        // back clusters it had allocated).
        stream.len = stream.writer.bytes_written() as u64;
        stream.modified = now();
        let advanced = stream.len.saturating_sub(before) as usize;
        stream.failed |= result.is_err();
        match result {
            Ok(_) => Ok(data.len()),
            Err(_) if advanced > 0 => {
                self.changed_file(key);
                Ok(advanced)
            }
            Err(e) => {
                self.changed_file(key);
                Err(self.err(e))
            }
        }
    }

    /// Checks that a file's chain ends at the cluster its length ends in: the crate's writer
    /// appends after the chain's last cluster, which for a longer chain (a crash during an
    /// append leaves one; `fsck.fat` cuts it) would put the bytes past the file's end. Such a
    /// file is `EIO` to append to.
    fn check_chain_end(&mut self, entry: &FileEntry) -> Result<(), Errno> {
        if entry.len() == 0 {
            return Ok(());
        }
        let first = u32::try_from(entry.cluster().0).map_err(|_| Errno::EIO)?;
        let mut cache = self.cache.lock();
        let last = self.geo.walk(&mut cache, (0, first), (entry.len() - 1) / self.geo.cluster_size)?;
        match self.geo.link(self.geo.entry(&mut cache, last)?) {
            Link::End => Ok(()),
            _ => Err(Errno::EIO),
        }
    }

    /// Cuts the file to `len` bytes (`len` below its length; nothing happens otherwise).
    fn cut(&mut self, path: &Components, key: FileKey, len: u64) -> Result<(), Errno> {
        self.commit(key)?;
        let (entry, _) = self.file(path)?;
        if len >= entry.len() {
            return Ok(());
        }
        let result = self.vol.truncate(&entry, len as usize);
        self.changed_file(key);
        result.map_err(|e| self.err(e))
    }

    /// Moves the handle's position; returns the new one.
    pub fn seek(&mut self, handle: usize, offset: i64, whence: Whence) -> Result<u64, Errno> {
        let size = self.fstat(handle)?.size;
        let h = self.handle(handle)?;
        let base = match whence {
            Whence::Start => 0,
            Whence::Current => h.pos,
            Whence::End => size,
        };
        let pos = (base as i128) + offset as i128;
        if pos < 0 || pos > i64::MAX as i128 {
            return Err(Errno::EINVAL);
        }
        h.pos = pos as u64;
        Ok(pos as u64)
    }

    /// What `fstat` says of the handle's file.
    pub fn fstat(&mut self, handle: usize) -> Result<Stat, Errno> {
        let h = self.handle(handle)?;
        if h.gone {
            return Err(Errno::ESTALE);
        }
        if h.key.is_some() {
            let (_, entry, key) = self.file_of(handle)?;
            return Ok(self.stat_of(&Node::Entry(entry, key)));
        }
        let path = h.path.clone();
        let node = self.find(&path)?.ok_or(Errno::ESTALE)?;
        Ok(self.stat_of(&node))
    }

    /// Cuts or extends the handle's file (`ftruncate`), which must be open for writing; an
    /// extension that does not fit is `ENOSPC` and changes nothing.
    pub fn set_len(&mut self, handle: usize, len: u64) -> Result<(), Errno> {
        let h = self.handle(handle)?;
        if !h.write {
            return Err(Errno::EINVAL);
        }
        if len > MAX_FILE {
            return Err(Errno::EFBIG);
        }
        let (path, entry, key) = self.file_of(handle)?;
        let now_len = self.len_of(&entry, key);
        if len > now_len {
            if self.fits(now_len, len - now_len)? < len - now_len {
                return Err(Errno::ENOSPC);
            }
            self.fill(&path, &entry, key, len - now_len)?;
        } else if len < now_len {
            self.cut(&path, key, len)?;
            self.handles[handle].as_mut().expect("checked above").touched = true;
        }
        Ok(())
    }

    /// Permission bits are not kept on FAT: a change is accepted and has no effect (as Linux's
    /// `vfat` mounted with `quiet`), or fails with `EROFS` on a read-only volume.
    pub fn set_perm(&mut self, path: &[u8], wants_dir: bool) -> Result<(), Errno> {
        self.lookup(path, wants_dir)?;
        self.writable()
    }

    /// Lists a directory: names and whether each is a directory, without `.` and `..`.
    pub fn read_dir(&self, path: &[u8]) -> Result<Vec<(String, bool)>, Errno> {
        let (parts, node) = self.lookup(path, true)?;
        if !node.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        let (dir, _) = self.dir(&parts.0)?;
        let mut names = Vec::new();
        let mut entries = dir.entries();
        while let Some(entry) = entries.next_entry() {
            let hadris_fat::sync::DirectoryEntry::Entry(entry) = entry.map_err(|e| self.err(e))?;
            let name = entry.name();
            if name == "." || name == ".." {
                continue;
            }
            names.try_reserve(1).map_err(|_| Errno::ENOSPC)?;
            names.push((String::from(&*name), entry.is_directory()));
        }
        names.sort();
        Ok(names)
    }

    /// Creates the directory `path`.
    pub fn mkdir(&mut self, path: &[u8]) -> Result<(), Errno> {
        let parts = Components::parse(path)?;
        let Some((parent, name)) = parts.split_last() else { return Err(Errno::EEXIST) };
        let (dir, _) = self.dir(parent)?;
        if dir.find(name).map_err(|e| self.err(e))?.is_some() {
            return Err(Errno::EEXIST);
        }
        self.writable()?;
        self.vol.create_dir(&dir, name).map_err(|e| self.err(e))?;
        self.changed();
        Ok(())
    }

    /// Removes the file (`is_dir` false) or the empty directory `path`.
    pub fn remove(&mut self, path: &[u8], is_dir: bool) -> Result<(), Errno> {
        let parts = Components::parse(path)?;
        let Some(Node::Entry(entry, key)) = self.find(&parts)? else {
            return Err(if parts.0.is_empty() { Errno::EBUSY } else { Errno::ENOENT });
        };
        match (is_dir, entry.is_directory()) {
            (true, false) => return Err(Errno::ENOTDIR),
            (false, true) => return Err(Errno::EISDIR),
            _ => {}
        }
        self.writable()?;
        // A writer's clusters are in the chain the delete frees once the entry has them.
        self.commit(key)?;
        let Some(Node::Entry(entry, _)) = self.find(&parts)? else { return Err(Errno::ENOENT) };
        let result = self.vol.delete(&entry);
        self.changed();
        result.map_err(|e| self.err(e))?;
        self.forget(&parts, key, is_dir);
        Ok(())
    }

    /// Marks the handles of a file or directory that is no more as gone.
    fn forget(&mut self, path: &Components, key: FileKey, is_dir: bool) {
        for h in self.handles.iter_mut().flatten() {
            let it = if is_dir { h.is_dir && h.path.starts_with(path) && h.path.0.len() == path.0.len() } else { h.key == Some(key) };
            if it {
                h.gone = true;
            }
        }
    }

    /// Moves the handles (and writers) of what was renamed from `from` to `to` along: a file's
    /// by its identity, which the rename changed to `new_key`; everything below a directory by
    /// path (the files inside keep their identity, the directory's first cluster).
    fn follow(&mut self, from: &Components, to: &Components, old_key: FileKey, new_key: FileKey, is_dir: bool) {
        for h in self.handles.iter_mut().flatten().filter(|h| !h.gone) {
            if !is_dir && h.key == Some(old_key) {
                h.key = Some(new_key);
                h.path = to.clone();
            } else if is_dir && h.path.starts_with(from) {
                h.path = h.path.moved(from, to);
            }
        }
        for stream in &mut self.streams {
            if is_dir && stream.path.starts_with(from) {
                stream.path = stream.path.moved(from, to);
            }
        }
    }

    /// Renames `old` to `new` inside the volume, replacing a file or an empty directory that
    /// `new` names, as `rename(2)`.
    ///
    /// FIXME: replacing is a removal and then a rename, two steps on the disk, not the one
    /// atomic step Linux makes of it; a crash between them loses the replaced file.
    pub fn rename(&mut self, old: &[u8], new: &[u8], new_wants_dir: bool) -> Result<(), Errno> {
        let from = Components::parse(old)?;
        let to = Components::parse(new)?;
        let Some(Node::Entry(entry, key)) = self.find(&from)? else {
            return Err(if from.0.is_empty() { Errno::EBUSY } else { Errno::ENOENT });
        };
        let Some((to_parent, to_name)) = to.split_last() else { return Err(Errno::EBUSY) };
        if new_wants_dir && !entry.is_directory() {
            return Err(Errno::ENOTDIR);
        }
        if entry.is_directory()
            && to.0.len() > from.0.len()
            && to.0[..from.0.len()].iter().zip(&from.0).all(|(a, b)| a.eq_ignore_ascii_case(b))
        {
            return Err(Errno::EINVAL);
        }
        let (dest, dest_cluster) = self.dir(to_parent)?;
        if let Some(existing) = dest.find(to_name).map_err(|e| self.err(e))? {
            let same = existing.cluster() == entry.cluster() && existing.name() == entry.name();
            if same && existing.name() == to_name {
                return Ok(());
            }
            if !same {
                match (entry.is_directory(), existing.is_directory()) {
                    (true, false) => return Err(Errno::ENOTDIR),
                    (false, true) => return Err(Errno::EISDIR),
                    _ => {}
                }
                self.writable()?;
                let existing_key = FileKey { dir: dest_cluster, name: existing.short_name().raw_bytes() };
                self.commit(existing_key)?;
                let existing = dest.find(to_name).map_err(|e| self.err(e))?.ok_or(Errno::ENOENT)?;
                let existing_is_dir = existing.is_directory();
                self.vol.delete(&existing).map_err(|e| self.err(e))?;
                self.changed();
                self.forget(&to, existing_key, existing_is_dir);
            }
        }
        self.writable()?;
        // The entry moves: a writer's size goes into it first.
        self.commit(key)?;
        // The lookups again: deleting may have moved nothing, but entries are revalidated.
        let Some(Node::Entry(entry, _)) = self.find(&from)? else { return Err(Errno::ENOENT) };
        let (dest, _) = self.dir(to_parent)?;
        let result = self.vol.rename(&entry, &dest, to_name);
        self.changed();
        result.map_err(|e| self.err(e))?;
        // Open handles follow the file, as on Linux; one the lookup cannot find is gone.
        match self.find(&to)? {
            Some(Node::Entry(_, new_key)) => self.follow(&from, &to, key, new_key, entry.is_directory()),
            _ => self.forget(&from, key, entry.is_directory()),
        }
        Ok(())
    }
}

fn same_kind(kind: Kind, crate_kind: hadris_fat::sync::FatType) -> bool {
    use hadris_fat::sync::FatType;
    matches!(
        (kind, crate_kind),
        (Kind::Fat12, FatType::Fat12) | (Kind::Fat16, FatType::Fat16) | (Kind::Fat32, FatType::Fat32)
    )
}

#[cfg(test)]
mod tests;
