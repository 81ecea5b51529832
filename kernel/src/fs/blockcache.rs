//! A byte-addressed view of a disk for the FAT crate, over whole-sector I/O, with a small
//! write-back cache of 4 KiB blocks.
//!
//! `hadris-fat` reads and writes through `Read`/`Write`/`Seek` at any byte offset: 32-byte
//! directory entries, 2- and 4-byte FAT entries, whole clusters. A disk moves whole sectors
//! only, and each request is a round trip to the backend, so small accesses go through
//! [`BlockCache`]: blocks of [`BLOCK`] bytes (or one sector, if sectors are larger), read once,
//! changed in memory, written back in runs of adjacent dirty blocks when the crate flushes
//! ([`Write::flush`]), when the cache is full, or on [`BlockCache::write_back`]. Reads of whole
//! blocks that are not cached go straight to the disk, up to the next cached block, so reading
//! a big file does not churn the cache.
//!
//! The volume and the filesystem code share one cache through [`CacheRef`] (an `Arc` of a spin
//! mutex that is never contended: every call runs under the filesystem's sleeping lock), so
//! that a `sync_all` can reach the disk behind the crate.
//!
//! Pure logic over the [`Sectors`] trait, tested on the host with a disk in memory.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::sync::Arc;
use alloc::vec::Vec;

use hadris_fat::sync::{Error as IoError, ErrorKind, Read, Seek, SeekFrom, Write};

use super::errno::Errno;

/// The cache's unit, when the disk's sectors are not larger.
pub const BLOCK: usize = 4096;
/// The most blocks kept (4 MiB with 4 KiB blocks).
pub const CAPACITY: usize = 1024;
/// The longest run of dirty blocks written in one call to the disk (1 MiB: blkfront has up to
/// 32 requests of 44 KiB in flight).
const MAX_RUN: usize = 256;

/// A disk that moves whole sectors: offsets and lengths are multiples of
/// [`sector_size`](Sectors::sector_size) and lie inside [`len`](Sectors::len).
pub trait Sectors {
    fn sector_size(&self) -> usize;
    /// The size in bytes.
    fn len(&self) -> u64;
    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), Errno>;
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), Errno>;
    /// Makes completed writes durable.
    fn flush(&mut self) -> Result<(), Errno>;
    /// Whether the disk refuses writes (attached read-only).
    fn read_only(&self) -> bool {
        false
    }
}

/// Any disk, so that the filesystem code is not generic.
pub type AnyDisk = alloc::boxed::Box<dyn Sectors + Send>;

impl Sectors for AnyDisk {
    fn sector_size(&self) -> usize {
        (**self).sector_size()
    }
    fn len(&self) -> u64 {
        (**self).len()
    }
    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), Errno> {
        (**self).read(offset, buf)
    }
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), Errno> {
        (**self).write(offset, data)
    }
    fn flush(&mut self) -> Result<(), Errno> {
        (**self).flush()
    }
    fn read_only(&self) -> bool {
        (**self).read_only()
    }
}

struct Block {
    data: Vec<u8>,
    dirty: bool,
    /// When it was last used, in accesses, for eviction.
    used: u64,
}

/// A disk seen as bytes, with a write-back block cache (see the module's summary).
pub struct BlockCache<D: Sectors> {
    disk: D,
    block: usize,
    blocks: BTreeMap<u64, Block>,
    pos: u64,
    clock: u64,
    read_only: bool,
    /// The last error of the disk, so that the filesystem reports it rather than the crate's
    /// generic I/O error.
    last_error: Option<Errno>,
    /// A watched byte range (see [`BlockCache::watch`]).
    watch: Option<Watch>,
    /// Counters for tests and logs: requests sent to the disk.
    pub reads: u64,
    pub writes: u64,
}

/// A byte range whose writes are noted, in units of `unit` bytes from `start`.
struct Watch {
    start: u64,
    end: u64,
    unit: u64,
    touched: BTreeSet<u64>,
}

fn io_error(e: Errno) -> IoError {
    IoError::from_kind(match e {
        Errno::EROFS => ErrorKind::PermissionDenied,
        Errno::EINVAL => ErrorKind::InvalidInput,
        Errno::ENOSPC => ErrorKind::OutOfMemory,
        _ => ErrorKind::Other,
    })
}

impl<D: Sectors> BlockCache<D> {
    /// A cache over `disk`; `read_only` refuses every write before it reaches the disk.
    pub fn new(disk: D, read_only: bool) -> Self {
        let block = BLOCK.max(disk.sector_size());
        BlockCache {
            disk,
            block,
            blocks: BTreeMap::new(),
            pos: 0,
            clock: 0,
            read_only,
            last_error: None,
            watch: None,
            reads: 0,
            writes: 0,
        }
    }

    pub fn disk(&self) -> &D {
        &self.disk
    }

    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// Notes from now on which units of `unit` bytes of `len` bytes at `start` are written
    /// (the first FAT, so that its free clusters can be recounted where it changed).
    pub fn watch(&mut self, start: u64, len: u64, unit: u64) {
        let end = start.saturating_add(len);
        self.watch = Some(Watch { start, end, unit: unit.max(1), touched: BTreeSet::new() });
    }

    /// The watched units written since the last call.
    pub fn take_touched(&mut self) -> BTreeSet<u64> {
        self.watch.as_mut().map(|w| core::mem::take(&mut w.touched)).unwrap_or_default()
    }

    /// The disk error behind the crate's last I/O error, taken (once).
    pub fn take_error(&mut self) -> Option<Errno> {
        self.last_error.take()
    }

    fn fail<T>(&mut self, e: Errno) -> Result<T, Errno> {
        self.last_error = Some(e);
        Err(e)
    }

    /// The bytes of block `index` (shorter than a block at the disk's end).
    fn block_len(&self, index: u64) -> usize {
        let start = index * self.block as u64;
        (self.disk.len().saturating_sub(start)).min(self.block as u64) as usize
    }

    /// Block `index`, read from the disk if it is not cached.
    fn load(&mut self, index: u64) -> Result<&mut Block, Errno> {
        self.clock += 1;
        let now = self.clock;
        if !self.blocks.contains_key(&index) {
            if self.blocks.len() >= CAPACITY {
                self.evict()?;
            }
            let mut data = Vec::new();
            let len = self.block_len(index);
            if data.try_reserve_exact(len).is_err() {
                return self.fail(Errno::ENOSPC);
            }
            data.resize(len, 0);
            self.reads += 1;
            if let Err(e) = self.disk.read(index * self.block as u64, &mut data) {
                return self.fail(e);
            }
            self.blocks.insert(index, Block { data, dirty: false, used: now });
        }
        let block = self.blocks.get_mut(&index).expect("inserted above");
        block.used = now;
        Ok(block)
    }

    /// Makes room: writes every dirty block back, then drops the older half.
    fn evict(&mut self) -> Result<(), Errno> {
        self.write_back()?;
        let mut ages: Vec<u64> = self.blocks.values().map(|b| b.used).collect();
        ages.sort_unstable();
        let cut = ages[ages.len() / 2];
        self.blocks.retain(|_, b| b.used > cut);
        Ok(())
    }

    /// Writes every dirty block to the disk, adjacent ones in one request.
    pub fn write_back(&mut self) -> Result<(), Errno> {
        let dirty: Vec<u64> = self.blocks.iter().filter(|(_, b)| b.dirty).map(|(&i, _)| i).collect();
        let mut at = 0;
        while at < dirty.len() {
            let mut end = at + 1;
            while end < dirty.len() && dirty[end] == dirty[end - 1] + 1 && end - at < MAX_RUN {
                end += 1;
            }
            self.write_run(&dirty[at..end])?;
            at = end;
        }
        Ok(())
    }

    fn write_run(&mut self, run: &[u64]) -> Result<(), Errno> {
        let mut bytes = Vec::new();
        let total: usize = run.iter().map(|i| self.blocks[i].data.len()).sum();
        if bytes.try_reserve_exact(total).is_err() {
            return self.fail(Errno::ENOSPC);
        }
        for index in run {
            bytes.extend_from_slice(&self.blocks[index].data);
        }
        self.writes += 1;
        if let Err(e) = self.disk.write(run[0] * self.block as u64, &bytes) {
            return self.fail(e);
        }
        for index in run {
            self.blocks.get_mut(index).expect("a dirty block").dirty = false;
        }
        Ok(())
    }

    /// Writes dirty blocks back and asks the disk to make them durable.
    pub fn sync(&mut self) -> Result<(), Errno> {
        self.write_back()?;
        if self.read_only {
            return Ok(());
        }
        match self.disk.flush() {
            Ok(()) => Ok(()),
            Err(e) => self.fail(e),
        }
    }

    /// Reads `buf.len()` bytes at `offset`, which must lie inside the disk: bytes past its end
    /// are `EIO`, as for a volume whose boot sector claims more sectors than the disk has
    /// (Linux's block layer fails such I/O with `EIO` too).
    pub fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), Errno> {
        let end = offset.checked_add(buf.len() as u64).filter(|&e| e <= self.disk.len());
        if end.is_none() {
            return self.fail(Errno::EIO);
        }
        let bs = self.block as u64;
        let mut done = 0usize;
        while done < buf.len() {
            let at = offset + done as u64;
            let index = at / bs;
            let within = (at % bs) as usize;
            let whole = (buf.len() - done) / self.block;
            if within == 0 && whole > 0 && !self.blocks.contains_key(&index) {
                // Uncached whole blocks, up to the next cached one: one request.
                let mut count = 1;
                while count < whole && !self.blocks.contains_key(&(index + count as u64)) {
                    count += 1;
                }
                let len = count * self.block;
                self.reads += 1;
                if let Err(e) = self.disk.read(at, &mut buf[done..done + len]) {
                    return self.fail(e);
                }
                done += len;
                continue;
            }
            let block = self.load(index)?;
            let take = (block.data.len() - within).min(buf.len() - done);
            buf[done..done + take].copy_from_slice(&block.data[within..within + take]);
            done += take;
        }
        Ok(())
    }

    /// Writes `data` at `offset`, which must lie inside the disk (`EIO` otherwise), into the
    /// cache.
    pub fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<(), Errno> {
        if self.read_only {
            return self.fail(Errno::EROFS);
        }
        let end = offset.checked_add(data.len() as u64).filter(|&e| e <= self.disk.len());
        let Some(end) = end else { return self.fail(Errno::EIO) };
        if let Some(w) = &mut self.watch
            && offset < w.end
            && end > w.start
            && end > offset
        {
            let first = (offset.max(w.start) - w.start) / w.unit;
            let last = (end.min(w.end) - 1 - w.start) / w.unit;
            w.touched.extend(first..=last);
        }
        let bs = self.block as u64;
        let mut done = 0usize;
        while done < data.len() {
            let at = offset + done as u64;
            let index = at / bs;
            let within = (at % bs) as usize;
            let len = self.block_len(index);
            let take = (len - within).min(data.len() - done);
            if within == 0 && take == len && !self.blocks.contains_key(&index) {
                // A whole block: nothing to read first.
                if self.blocks.len() >= CAPACITY {
                    self.evict()?;
                }
                let mut bytes = Vec::new();
                if bytes.try_reserve_exact(len).is_err() {
                    return self.fail(Errno::ENOSPC);
                }
                bytes.extend_from_slice(&data[done..done + len]);
                self.clock += 1;
                self.blocks.insert(index, Block { data: bytes, dirty: true, used: self.clock });
            } else {
                let block = self.load(index)?;
                block.data[within..within + take].copy_from_slice(&data[done..done + take]);
                block.dirty = true;
            }
            done += take;
        }
        Ok(())
    }
}

impl<D: Sectors> Read for BlockCache<D> {
    type Error = ErrorKind;

    fn read(&mut self, buf: &mut [u8]) -> Result<usize, IoError> {
        let take = (self.disk.len().saturating_sub(self.pos)).min(buf.len() as u64) as usize;
        self.read_at(self.pos, &mut buf[..take]).map_err(io_error)?;
        self.pos += take as u64;
        Ok(take)
    }
}

impl<D: Sectors> Write for BlockCache<D> {
    type Error = ErrorKind;

    fn write(&mut self, data: &[u8]) -> Result<usize, IoError> {
        self.write_at(self.pos, data).map_err(io_error)?;
        self.pos += data.len() as u64;
        Ok(data.len())
    }

    /// Writes dirty blocks back (not a disk flush: that is [`BlockCache::sync`]).
    fn flush(&mut self) -> Result<(), IoError> {
        self.write_back().map_err(io_error)
    }
}

impl<D: Sectors> Seek for BlockCache<D> {
    type Error = ErrorKind;

    fn seek(&mut self, pos: SeekFrom) -> Result<u64, IoError> {
        let target = match pos {
            SeekFrom::Start(at) => Some(at),
            SeekFrom::Current(delta) => self.pos.checked_add_signed(delta),
            SeekFrom::End(delta) => self.disk.len().checked_add_signed(delta),
        };
        match target {
            Some(at) => {
                self.pos = at;
                Ok(at)
            }
            None => Err(IoError::from_kind(ErrorKind::InvalidInput)),
        }
    }
}

/// The cache as the FAT crate holds it: shared with the filesystem code (see the module's
/// summary).
pub struct CacheRef<D: Sectors>(pub Arc<spin::Mutex<BlockCache<D>>>);

impl<D: Sectors> Read for CacheRef<D> {
    type Error = ErrorKind;

    fn read(&mut self, buf: &mut [u8]) -> Result<usize, IoError> {
        Read::read(&mut *self.0.lock(), buf)
    }
}

impl<D: Sectors> Write for CacheRef<D> {
    type Error = ErrorKind;

    fn write(&mut self, data: &[u8]) -> Result<usize, IoError> {
        Write::write(&mut *self.0.lock(), data)
    }

    fn flush(&mut self) -> Result<(), IoError> {
        Write::flush(&mut *self.0.lock())
    }
}

impl<D: Sectors> Seek for CacheRef<D> {
    type Error = ErrorKind;

    fn seek(&mut self, pos: SeekFrom) -> Result<u64, IoError> {
        Seek::seek(&mut *self.0.lock(), pos)
    }
}

/// A disk in memory, for tests.
#[cfg(test)]
pub mod memdisk {
    use super::*;

    use std::sync::{Arc, Mutex};

    /// A disk in memory whose bytes the test keeps a handle on.
    pub struct MemDisk {
        pub shared: Arc<Mutex<Vec<u8>>>,
        pub sector: usize,
        /// Fails every request from then on.
        pub broken: bool,
        pub flushes: u64,
        /// Writes that succeed before every further one fails (shared, so that a test can set
        /// it once the disk is inside a cache).
        pub writes_left: Arc<std::sync::atomic::AtomicU64>,
    }

    impl MemDisk {
        pub fn new(len: usize, sector: usize) -> Self {
            Self::from_bytes(alloc::vec![0; len], sector)
        }

        pub fn from_bytes(bytes: Vec<u8>, sector: usize) -> Self {
            let writes_left = Arc::new(std::sync::atomic::AtomicU64::new(u64::MAX));
            MemDisk { shared: Arc::new(Mutex::new(bytes)), sector, broken: false, flushes: 0, writes_left }
        }

        pub fn bytes(&self) -> Vec<u8> {
            self.shared.lock().unwrap().clone()
        }

        fn check(&self, offset: u64, len: usize) -> Result<(), Errno> {
            assert!(offset as usize % self.sector == 0 && len % self.sector == 0, "unaligned I/O");
            assert!(offset as usize + len <= self.shared.lock().unwrap().len(), "I/O past the end");
            if self.broken { Err(Errno::EIO) } else { Ok(()) }
        }
    }

    impl Sectors for MemDisk {
        fn sector_size(&self) -> usize {
            self.sector
        }
        fn len(&self) -> u64 {
            self.shared.lock().unwrap().len() as u64
        }
        fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), Errno> {
            self.check(offset, buf.len())?;
            buf.copy_from_slice(&self.shared.lock().unwrap()[offset as usize..offset as usize + buf.len()]);
            Ok(())
        }
        fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), Errno> {
            self.check(offset, data.len())?;
            let left = std::sync::atomic::Ordering::SeqCst;
            if self.writes_left.fetch_update(left, left, |n| n.checked_sub(1)).is_err() {
                return Err(Errno::EIO);
            }
            self.shared.lock().unwrap()[offset as usize..offset as usize + data.len()].copy_from_slice(data);
            Ok(())
        }
        fn flush(&mut self) -> Result<(), Errno> {
            self.flushes += 1;
            if self.broken { Err(Errno::EIO) } else { Ok(()) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::memdisk::MemDisk;
    use super::*;

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 4096) as u8).collect()
    }

    fn cache(len: usize) -> BlockCache<MemDisk> {
        BlockCache::new(MemDisk::from_bytes(pattern(len), 512), false)
    }

    #[test]
    fn small_reads_load_a_block_once() {
        let mut c = cache(64 << 10);
        let mut b = [0u8; 3];
        c.read_at(4097, &mut b).unwrap();
        assert_eq!(b[..], pattern(64 << 10)[4097..4100]);
        c.read_at(5000, &mut b).unwrap();
        assert_eq!(c.reads, 1);
        // Across a block boundary: the next block too.
        let mut b = [0u8; 10];
        c.read_at(8190, &mut b).unwrap();
        assert_eq!(b[..], pattern(64 << 10)[8190..8200]);
        assert_eq!(c.reads, 2);
    }

    #[test]
    fn writes_stay_in_memory_until_written_back_in_runs() {
        let mut c = cache(64 << 10);
        c.write_at(10, b"abc").unwrap();
        c.write_at(4096, &[9u8; 8192]).unwrap();
        assert_eq!(c.writes, 0);
        assert_eq!(&c.disk().bytes()[10..13], &pattern(13)[10..13]);
        let mut b = [0u8; 3];
        c.read_at(10, &mut b).unwrap();
        assert_eq!(&b, b"abc");
        c.write_back().unwrap();
        // Blocks 0, 1 and 2 are adjacent: one request.
        assert_eq!(c.writes, 1);
        assert_eq!(&c.disk().bytes()[10..13], b"abc");
        assert!(c.disk().bytes()[4096..12288].iter().all(|&x| x == 9));
        assert_eq!(c.disk().bytes()[12288..], pattern(64 << 10)[12288..]);
        c.write_back().unwrap();
        assert_eq!(c.writes, 1, "nothing dirty is left");
    }

    #[test]
    fn big_reads_bypass_the_cache_but_see_its_changes() {
        let mut c = cache(64 << 10);
        c.write_at(8192 + 5, b"new").unwrap();
        let mut b = alloc::vec![0u8; 32 << 10];
        c.read_at(0, &mut b).unwrap();
        let mut want = pattern(64 << 10)[..32 << 10].to_vec();
        want[8197..8200].copy_from_slice(b"new");
        assert_eq!(b, want);
        // Blocks 0-1 and 3-7 were read directly; block 2 came from the cache.
        assert_eq!(c.blocks.len(), 1);
        assert_eq!(c.reads, 3);
    }

    #[test]
    fn a_full_cache_writes_back_and_keeps_the_newer_half() {
        let mut c = cache((CAPACITY + 8) * BLOCK);
        for i in 0..CAPACITY + 4 {
            c.write_at((i * BLOCK) as u64 + 1, &[i as u8]).unwrap();
        }
        assert!(c.blocks.len() <= CAPACITY);
        assert!(c.writes >= 1);
        c.write_back().unwrap();
        for i in 0..CAPACITY + 4 {
            assert_eq!(c.disk().bytes()[i * BLOCK + 1], i as u8, "block {i}");
        }
    }

    #[test]
    fn the_last_block_may_be_short() {
        let len = 8192 + 1536;
        let mut c = cache(len);
        let mut b = [0u8; 4];
        c.read_at(len as u64 - 4, &mut b).unwrap();
        assert_eq!(b[..], pattern(len)[len - 4..]);
        c.write_at(len as u64 - 2, b"zz").unwrap();
        c.write_back().unwrap();
        assert_eq!(&c.disk().bytes()[len - 2..], b"zz");
        assert_eq!(c.read_at(len as u64 - 1, &mut b), Err(Errno::EIO), "past the end");
        assert_eq!(c.write_at(len as u64, b"z"), Err(Errno::EIO));
    }

    #[test]
    fn read_only_refuses_writes_and_never_touches_the_disk() {
        let mut c = BlockCache::new(MemDisk::from_bytes(pattern(16 << 10), 512), true);
        assert_eq!(c.write_at(0, b"x"), Err(Errno::EROFS));
        assert_eq!(c.take_error(), Some(Errno::EROFS));
        c.sync().unwrap();
        assert_eq!(c.writes, 0);
        assert_eq!(c.disk().flushes, 0);
        assert_eq!(c.disk().bytes(), pattern(16 << 10));
    }

    #[test]
    fn disk_errors_are_kept_for_the_filesystem() {
        let mut c = cache(16 << 10);
        c.disk.broken = true;
        let mut b = [0u8; 1];
        assert_eq!(c.read_at(0, &mut b), Err(Errno::EIO));
        assert!(Read::read(&mut c, &mut b).is_err());
        assert_eq!(c.take_error(), Some(Errno::EIO));
        c.disk.broken = false;
        c.write_at(0, b"a").unwrap();
        c.disk.broken = true;
        assert_eq!(c.sync(), Err(Errno::EIO));
        c.disk.broken = false;
        c.sync().unwrap();
        assert_eq!(c.disk().bytes()[0], b'a', "a failed write-back stays dirty and is retried");
    }

    #[test]
    fn four_kib_sectors() {
        let mut c = BlockCache::new(MemDisk::from_bytes(pattern(64 << 10), 4096), false);
        c.write_at(4095, b"ab").unwrap();
        c.sync().unwrap();
        assert_eq!(&c.disk().bytes()[4095..4097], b"ab");
        assert_eq!(c.disk().flushes, 1);
    }
}
