//! blkfront: the driver of a Xen virtual disk (`vbd`), reading and writing its sectors through
//! blkback in another domain (`xen/include/public/io/blkif.h`).
//!
//! A disk is found at `device/vbd/ID` in this domain's xenstore folder (`backend`,
//! `backend-id`; ID is the xl name's number, [`ring::vbd_id`]). Opening it grants a ring page
//! and a set of bounce pages to the backend, allocates an event channel, goes through the
//! xenbus handshake and reads the backend's `sectors`, `sector-size`, `info` and
//! `feature-flush-cache`/`feature-barrier`. An I/O is split into requests of up to 11 pages
//! ([`ring::plan`]); up to [`IN_FLIGHT`] of them are on the ring at once. Data is copied
//! between the caller's buffer and the bounce pages, so the backend never sees other memory.
//! Every response is judged by [`crate::blk::ring`]; a bad one disables the disk (every call
//! then fails with `EIO`).

use alloc::boxed::Box;
use alloc::format;
use alloc::vec::Vec;
use core::sync::atomic::AtomicU32;

use crate::blk::ring::{self, BlkRingError, Done, Geometry, Inflight, Piece, PlanError, RSP_WORDS, SLOT_WORDS};
use crate::net::ring::{FrontRing, PAGE_WORDS, init_shared};
use crate::sync::Mutex;
use crate::xen::abi::blkif::*;
use crate::xen::abi::errno;
use crate::xen::evtchn::{self, Owner};
use crate::xen::xenbus::{self, XenbusState};
use crate::xen::{grant, xenstore};

/// Requests on the ring at once (the ring's 32 slots), each with its 11 bounce pages (1.4 MiB
/// a disk), granted once for the disk's life and announced with `feature-persistent`.
///
/// Measured with `./bench disk` (docs/bench.md) on a loaded machine: 4 in flight without
/// persistent grants gave 6-9 MB/s; 32 alone no better; persistent grants (blkback then maps
/// each page once, not once a request) doubled it, to 14-15 MB/s against a Linux domU's
/// 27-30. On a quiet machine: 172 / 175 MB/s writing / reading against Linux's 147 / 119.
///
/// FIXME: requests carry at most 11 segments (44 KiB); Linux's blkfront sends 128 KiB with
/// indirect segments (`feature-max-indirect-segments`), which this frontend does not use.
pub const IN_FLIGHT: usize = 32;
/// The most disks a program may open at once.
const MAX_DISKS: usize = 8;
/// How long the handshake and the teardown may take.
const HANDSHAKE_NS: u64 = 10_000_000_000;
/// How long one I/O may wait for the backend before the disk is given up.
const IO_NS: u64 = 60_000_000_000;

/// Why a disk could not be opened or used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlkError {
    /// There is no `device/vbd/ID`, or no xenstore.
    NoDevice,
    /// The disk is already open.
    Busy,
    /// A key of the device's or backend's folder is missing or malformed.
    BadKey(&'static str),
    /// Out of pages or grant entries.
    NoMemory,
    /// A xenstore, event channel or grant call failed with this errno.
    Xen(isize),
    /// The backend closed instead of connecting.
    BackendClosed,
    /// The backend broke the ring protocol; the disk is disabled.
    Ring(BlkRingError),
    /// The disk was disabled by an earlier error.
    Broken,
    /// The backend failed a request (`BLKIF_RSP_ERROR`).
    Io,
    /// A write to a disk the backend (or the open) makes read-only.
    ReadOnly,
    /// The offset or length is not a multiple of the sector size.
    Unaligned,
    /// The I/O reaches past the disk's end.
    PastEnd,
    /// The backend did not answer in time; the disk is disabled.
    TimedOut,
    /// The disk is not open.
    NotOpen,
}

impl BlkError {
    /// The ABI's `-errno` for this error.
    pub fn errno(self) -> isize {
        -match self {
            BlkError::NoDevice => xenstore::ENODEV,
            BlkError::Busy => 16,
            BlkError::BadKey(_) | BlkError::Ring(_) | BlkError::Broken | BlkError::BackendClosed | BlkError::Io => {
                errno::EIO
            }
            BlkError::NoMemory => errno::ENOMEM,
            BlkError::Xen(e) => e.abs(),
            BlkError::ReadOnly => 30, // EROFS
            BlkError::Unaligned => errno::EINVAL,
            BlkError::PastEnd => errno::EINVAL,
            BlkError::TimedOut => errno::ETIMEDOUT,
            BlkError::NotOpen => errno::EBADF,
        }
    }
}

impl From<PlanError> for BlkError {
    fn from(e: PlanError) -> Self {
        match e {
            PlanError::Unaligned => BlkError::Unaligned,
            PlanError::PastEnd => BlkError::PastEnd,
        }
    }
}

/// A page granted to the backend; dropping it revokes the grant and frees the page (or keeps
/// both aside while the backend still maps it: `grant::release`).
struct GrantedPage {
    ptr: *mut u8,
    gref: u32,
}

impl GrantedPage {
    fn new(domid: u16) -> Result<GrantedPage, BlkError> {
        let ptr = crate::mm::alloc_frames(1).ok_or(BlkError::NoMemory)?;
        match grant::grant_access(domid, ptr, false) {
            Ok(gref) => Ok(GrantedPage { ptr, gref }),
            Err(e) => {
                crate::mm::free_frames(ptr, 1);
                Err(if e == -28 { BlkError::NoMemory } else { BlkError::Xen(e) })
            }
        }
    }

    /// The page as ring words.
    ///
    /// The words live as long as `self`; the caller keeps the ring view no longer.
    fn words(&self) -> &'static [AtomicU32] {
        // SAFETY: the page is 4 KiB, page-aligned, mapped and ours until `drop`; the backend
        // writes it concurrently, so it is only reached through atomics. The 'static lifetime
        // is bounded by hand: `Blkfront` declares its ring before its page, so it goes first.
        unsafe { core::slice::from_raw_parts(self.ptr as *const AtomicU32, PAGE_WORDS) }
    }
}

impl Drop for GrantedPage {
    fn drop(&mut self) {
        grant::release(self.gref, Some((self.ptr, 1)));
    }
}

/// An event channel port the kernel owns; dropping it closes the port.
struct Port(u32);

impl Drop for Port {
    fn drop(&mut self) {
        let _ = evtchn::close(self.0);
    }
}

/// What a disk is, for the program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiskInfo {
    pub geometry: Geometry,
    /// Writes are refused: the backend says `VDISK_READONLY`, or the disk was opened so.
    pub readonly: bool,
    /// The operation a flush uses, if the backend offers one.
    pub flush_op: Option<u8>,
}

/// One open disk.
pub struct Blkfront {
    id: u32,
    path: Vec<u8>,
    backend: Vec<u8>,
    backend_id: u16,
    info: DiskInfo,
    // The ring view goes before the page it is over (fields drop in order).
    ring: FrontRing<'static>,
    inflight: Inflight<IN_FLIGHT>,
    /// The piece of the current I/O each id in flight moves.
    pieces: [Option<Piece>; IN_FLIGHT],
    broken: bool,
    port: Port,
    ring_page: GrantedPage,
    bufs: Vec<GrantedPage>,
}

// SAFETY: the raw pages are owned by the disk alone and reached only under `DISKS`'s lock.
unsafe impl Send for Blkfront {}

static DISKS: Mutex<Vec<Option<Box<Blkfront>>>> = Mutex::new(Vec::new());

fn deadline_in(ns: u64) -> u64 {
    crate::time::monotonic_ns().saturating_add(ns)
}

/// Reads `dir/key`; `None` when it is missing.
fn read_key(dir: &[u8], key: &'static str, deadline: u64) -> Result<Option<Vec<u8>>, BlkError> {
    match xenstore::read(&xenbus::join(dir, key.as_bytes()), deadline) {
        Ok(mut value) => {
            while value.last() == Some(&0) {
                value.pop();
            }
            Ok(Some(value))
        }
        Err(-2) => Ok(None),
        Err(e) => Err(BlkError::Xen(e)),
    }
}

fn need_key(dir: &[u8], key: &'static str, deadline: u64) -> Result<Vec<u8>, BlkError> {
    read_key(dir, key, deadline)?.ok_or(BlkError::BadKey(key))
}

/// Whether the backend offers a boolean feature (a missing key is 0, blkif.h's default).
fn feature(dir: &[u8], key: &'static str, deadline: u64) -> Result<bool, BlkError> {
    Ok(read_key(dir, key, deadline)?.and_then(|v| ring::parse_number(&v)).is_some_and(|n| n == 1))
}

fn write_key(dir: &[u8], key: &str, value: &[u8], deadline: u64) -> Result<(), BlkError> {
    xenstore::write(&xenbus::join(dir, key.as_bytes()), value, deadline).map_err(BlkError::Xen)
}

impl Blkfront {
    /// Reads the device's keys and grants its pages.
    fn new(id: u32, deadline: u64) -> Result<Blkfront, BlkError> {
        if !xenstore::available() {
            return Err(BlkError::NoDevice);
        }
        let path = format!("device/vbd/{id}").into_bytes();
        let backend = read_key(&path, "backend", deadline)?.ok_or(BlkError::NoDevice)?;
        let backend_id = ring::parse_number(&need_key(&path, "backend-id", deadline)?)
            .and_then(|n| u16::try_from(n).ok())
            .ok_or(BlkError::BadKey("backend-id"))?;
        let ring_page = GrantedPage::new(backend_id)?;
        init_shared(ring_page.words());
        let ring = FrontRing::new(ring_page.words(), SLOT_WORDS).ok_or(BlkError::NoMemory)?;
        let pages = IN_FLIGHT * BLKIF_MAX_SEGMENTS_PER_REQUEST;
        let bufs = (0..pages).map(|_| GrantedPage::new(backend_id)).collect::<Result<Vec<_>, _>>()?;
        let port = Port(evtchn::alloc_unbound(backend_id, Owner::Kernel).map_err(BlkError::Xen)?);
        let geometry = Geometry { sectors: 0, sector_size: 512, readonly: true };
        Ok(Blkfront {
            id,
            path,
            backend,
            backend_id,
            info: DiskInfo { geometry, readonly: true, flush_op: None },
            ring,
            inflight: Inflight::new(),
            pieces: [None; IN_FLIGHT],
            broken: false,
            port,
            ring_page,
            bufs,
        })
    }

    /// Publishes the ring and the event channel, connects (`blkif.h`, "Frontend
    /// configuration"), and reads what the backend says of the disk.
    fn connect(&mut self, deadline: u64) -> Result<(), BlkError> {
        let path = self.path.clone();
        // A backend left Closed by an earlier open goes back to InitWait when the frontend
        // says Initialising.
        xenbus::switch_state(&path, XenbusState::Initialising, deadline).map_err(BlkError::Xen)?;
        let ready = |s| matches!(s, XenbusState::InitWait | XenbusState::Connected);
        match xenbus::wait_for_backend_until(&self.backend, ready, deadline) {
            Ok(_) => {}
            Err(e) if e == -errno::ETIMEDOUT => return Err(BlkError::TimedOut),
            Err(e) => return Err(BlkError::Xen(e)),
        }
        write_key(&path, "ring-ref", format!("{}", self.ring_page.gref).as_bytes(), deadline)?;
        write_key(&path, "event-channel", format!("{}", self.port.0).as_bytes(), deadline)?;
        // blkif.h: "protocol": the ABI of the ring's slots; this frontend's is x86_64's.
        write_key(&path, "protocol", b"x86_64-abi", deadline)?;
        // blkif.h: with "feature-persistent" the backend may keep a granted page mapped
        // across requests; every bounce page here is granted once for the disk's life and
        // reused, which is what the feature asks of a frontend.
        write_key(&path, "feature-persistent", b"1", deadline)?;
        xenbus::switch_state(&path, XenbusState::Initialised, deadline).map_err(BlkError::Xen)?;
        // blkif.h: the backend publishes `sectors`, `info` and `sector-size` before it
        // switches to Connected, so they are read after.
        match xenbus::wait_for_backend(&self.backend, deadline).map_err(BlkError::Xen)? {
            XenbusState::Connected => {}
            _ => return Err(BlkError::BackendClosed),
        }
        self.read_geometry(deadline)?;
        xenbus::switch_state(&path, XenbusState::Connected, deadline).map_err(BlkError::Xen)?;
        Ok(())
    }

    fn read_geometry(&mut self, deadline: u64) -> Result<(), BlkError> {
        let b = self.backend.clone();
        let sectors = need_key(&b, "sectors", deadline)?;
        // blkif.h: a missing `sector-size` means 512.
        let sector_size = read_key(&b, "sector-size", deadline)?.unwrap_or_else(|| b"512".to_vec());
        let info = read_key(&b, "info", deadline)?.unwrap_or_else(|| b"0".to_vec());
        let geometry = ring::geometry(&sectors, &sector_size, &info).map_err(BlkError::BadKey)?;
        // blkif.h: FLUSH_DISKCACHE "should be used in preference" to barriers when both exist.
        let flush_op = if feature(&b, "feature-flush-cache", deadline)? {
            Some(BLKIF_OP_FLUSH_DISKCACHE)
        } else if feature(&b, "feature-barrier", deadline)? {
            Some(BLKIF_OP_WRITE_BARRIER)
        } else {
            None
        };
        self.info = DiskInfo { geometry, readonly: self.info.readonly || geometry.readonly, flush_op };
        Ok(())
    }

    /// Says goodbye to the backend (Closing, then Closed), each step bounded by `deadline`.
    fn disconnect(&self, deadline: u64) {
        let path = &self.path;
        let _ = xenbus::switch_state(path, XenbusState::Closing, deadline);
        let gone = |s| matches!(s, XenbusState::Closing | XenbusState::Closed | XenbusState::Unknown);
        let _ = xenbus::wait_for_backend_until(&self.backend, gone, deadline);
        let _ = xenbus::switch_state(path, XenbusState::Closed, deadline);
        let done = |s| matches!(s, XenbusState::Closed | XenbusState::InitWait | XenbusState::Unknown);
        let _ = xenbus::wait_for_backend_until(&self.backend, done, deadline);
    }

    /// Logs a protocol error of the backend and disables the disk.
    fn fail(&mut self, e: BlkRingError) -> BlkError {
        error!("blkfront: vbd {} (backend domain {}): {e:?}; disk disabled", self.id, self.backend_id);
        self.broken = true;
        BlkError::Ring(e)
    }

    fn usable(&self) -> Result<(), BlkError> {
        if self.broken { Err(BlkError::Broken) } else { Ok(()) }
    }

    /// The bounce pages of request `id`.
    fn pages(&self, id: u16) -> &[GrantedPage] {
        let first = id as usize * BLKIF_MAX_SEGMENTS_PER_REQUEST;
        &self.bufs[first..first + BLKIF_MAX_SEGMENTS_PER_REQUEST]
    }

    /// Puts one request on the ring (not yet pushed); `false` when no id is free.
    fn queue(&mut self, operation: u8, piece: Piece, data: &[u8]) -> bool {
        let Some(id) = self.inflight.take(operation) else { return false };
        let mut req = BlkifRequest { operation, id: id as u64, sector_number: piece.sector, ..Default::default() };
        let pages: Vec<(*mut u8, u32)> = self.pages(id).iter().map(|p| (p.ptr, p.gref)).collect();
        for (i, (first_sect, last_sect)) in piece.segments().enumerate() {
            let (ptr, gref) = pages[i];
            req.seg[i] = BlkifRequestSegment { gref, first_sect, last_sect };
            if operation == BLKIF_OP_WRITE {
                let from = piece.start + i * ring::PAGE_SIZE;
                let n = (piece.len - i * ring::PAGE_SIZE).min(ring::PAGE_SIZE);
                // SAFETY: the bounce page is mapped, ours and not in flight (its id was free);
                // `from + n` lies in `data`, which `plan` sized the pieces from.
                unsafe { core::ptr::copy_nonoverlapping(data[from..from + n].as_ptr(), ptr, n) };
            }
            req.nr_segments = i as u8 + 1;
        }
        if !self.ring.put_request(&ring::request_words(&req)) {
            // The ring has 32 slots and at most IN_FLIGHT are used, so this does not happen.
            self.inflight.cancel(id);
            return false;
        }
        self.pieces[id as usize] = Some(piece);
        true
    }

    fn push(&mut self) {
        if self.ring.push() {
            let _ = evtchn::notify(self.port.0);
        }
    }

    /// Takes every response that has come; copies read data out to `out`. Returns how many
    /// requests ended, and the first failure among them.
    fn reap(&mut self, out: &mut [u8], failed: &mut Option<BlkError>) -> Result<usize, BlkError> {
        let mut ended = 0;
        loop {
            let mut words = [0u32; RSP_WORDS];
            while self.ring.take_slot(&mut words).map_err(|e| self.fail(e.into()))? {
                let rsp = ring::response(&words);
                let done = self.inflight.complete(rsp).map_err(|e| self.fail(e))?;
                ended += 1;
                let id = match done {
                    Done::Okay(id) => id,
                    Done::Failed(id) => {
                        error!("blkfront: vbd {}: the backend failed request {id} (op {})", self.id, rsp.operation);
                        failed.get_or_insert(BlkError::Io);
                        id
                    }
                    Done::Unsupported(id) if matches!(rsp.operation, BLKIF_OP_READ | BLKIF_OP_WRITE) => {
                        error!("blkfront: vbd {}: the backend does not do op {} (request {id})", self.id, rsp.operation);
                        failed.get_or_insert(BlkError::Io);
                        id
                    }
                    Done::Unsupported(id) => {
                        warn!("blkfront: vbd {}: the backend refused op {}; flushes off", self.id, rsp.operation);
                        self.info.flush_op = None;
                        id
                    }
                };
                let piece = self.pieces[id as usize].take();
                if let (Done::Okay(_), BLKIF_OP_READ, Some(p)) = (done, rsp.operation, piece) {
                    self.copy_out(id, p, out);
                }
            }
            if !self.ring.final_check().map_err(|e| self.fail(e.into()))? {
                return Ok(ended);
            }
        }
    }

    /// Copies a finished read's bounce pages to its place in `out`.
    fn copy_out(&self, id: u16, piece: Piece, out: &mut [u8]) {
        for (i, page) in self.pages(id).iter().enumerate().take(piece.len.div_ceil(ring::PAGE_SIZE)) {
            let from = piece.start + i * ring::PAGE_SIZE;
            let n = (piece.len - i * ring::PAGE_SIZE).min(ring::PAGE_SIZE);
            let Some(dst) = out.get_mut(from..from + n) else { return };
            // SAFETY: the page is mapped and ours; the backend finished writing it before it
            // published the response (the ring's acquire); a hostile one rewriting it now only
            // changes the bytes copied.
            unsafe { core::ptr::copy_nonoverlapping(page.ptr, dst.as_mut_ptr(), n) };
        }
    }
}

/// Runs `f` on open disk `handle`, holding the disks' lock.
fn with<R>(handle: u32, f: impl FnOnce(&mut Blkfront) -> Result<R, BlkError>) -> Result<R, BlkError> {
    let mut disks = DISKS.lock();
    match disks.get_mut(handle as usize) {
        Some(Some(disk)) => f(disk),
        _ => Err(BlkError::NotOpen),
    }
}

/// Opens and connects `device/vbd/ID`; `readonly` refuses writes even if the backend takes
/// them. Returns the handle.
///
/// FIXME: the disks' lock is held through an open's handshake and through each I/O, so calls on
/// other disks wait meanwhile; a per-disk lock would retire this.
pub fn open(id: u32, readonly: bool) -> Result<(u32, DiskInfo), BlkError> {
    let mut disks = DISKS.lock();
    if disks.iter().flatten().any(|d| d.id == id) {
        return Err(BlkError::Busy);
    }
    let handle = match disks.iter().position(Option::is_none) {
        Some(h) => h,
        None if disks.len() < MAX_DISKS => {
            disks.push(None);
            disks.len() - 1
        }
        None => return Err(BlkError::NoMemory),
    };
    let deadline = deadline_in(HANDSHAKE_NS);
    let mut disk = Box::new(Blkfront::new(id, deadline)?);
    disk.info.readonly = readonly;
    if let Err(e) = disk.connect(deadline) {
        error!("blkfront: vbd {id} did not connect: {e:?}");
        disk.disconnect(deadline_in(HANDSHAKE_NS));
        return Err(e);
    }
    let info = disk.info;
    info!(
        "blkfront: vbd {id} connected: {} sectors of 512 bytes, sector-size {}, {}, flush {}, backend domain {}",
        info.geometry.sectors,
        info.geometry.sector_size,
        if info.readonly { "read-only" } else { "read-write" },
        match info.flush_op {
            Some(BLKIF_OP_FLUSH_DISKCACHE) => "flush-cache",
            Some(_) => "barrier",
            None => "none",
        },
        disk.backend_id
    );
    disks[handle] = Some(disk);
    Ok((handle as u32, info))
}

/// Reads `buf.len()` bytes at byte `offset` (both multiples of the sector size).
pub fn read(handle: u32, offset: u64, buf: &mut [u8]) -> Result<(), BlkError> {
    with(handle, |disk| transfer(disk, BLKIF_OP_READ, offset, Buf::In(buf)))
}

/// Writes `data` at byte `offset` (both multiples of the sector size).
pub fn write(handle: u32, offset: u64, data: &[u8]) -> Result<(), BlkError> {
    with(handle, |disk| {
        if disk.info.readonly {
            return Err(BlkError::ReadOnly);
        }
        transfer(disk, BLKIF_OP_WRITE, offset, Buf::Out(data))
    })
}

/// Makes every write that completed durable: a flush of the disk's cache (or an empty barrier),
/// if the backend offers one; without either, completed writes are as durable as the backend
/// makes them, and this only checks the disk.
pub fn flush(handle: u32) -> Result<(), BlkError> {
    with(handle, |disk| {
        disk.usable()?;
        if disk.info.readonly {
            return Ok(());
        }
        let Some(op) = disk.info.flush_op else { return Ok(()) };
        let piece = Piece { sector: 0, start: 0, len: 0 };
        transfer_pieces(disk, op, core::iter::once(piece), Buf::Out(&[]))
    })
}

/// What the disk is.
pub fn info(handle: u32) -> Result<DiskInfo, BlkError> {
    with(handle, |disk| Ok(disk.info))
}

/// Disconnects and frees the disk; its pages go back once the backend has let go of them.
pub fn close(handle: u32) -> Result<(), BlkError> {
    let disk = DISKS.lock().get_mut(handle as usize).and_then(Option::take).ok_or(BlkError::NotOpen)?;
    disk.disconnect(deadline_in(HANDSHAKE_NS));
    debug!("blkfront: vbd {} closed; {} grants held by backends", disk.id, grant::held_count());
    drop(disk);
    Ok(())
}

/// The caller's side of an I/O.
enum Buf<'a> {
    In(&'a mut [u8]),
    Out(&'a [u8]),
}

fn transfer(disk: &mut Blkfront, op: u8, offset: u64, buf: Buf<'_>) -> Result<(), BlkError> {
    disk.usable()?;
    let len = match &buf {
        Buf::In(b) => b.len(),
        Buf::Out(b) => b.len(),
    };
    let g = disk.info.geometry;
    let pieces = ring::plan(offset, len, g.sector_size, g.sectors)?;
    transfer_pieces(disk, op, pieces, buf)
}

/// Moves every piece, up to [`IN_FLIGHT`] on the ring at once, and waits for all of them.
fn transfer_pieces(
    disk: &mut Blkfront,
    op: u8,
    mut pieces: impl Iterator<Item = Piece>,
    mut buf: Buf<'_>,
) -> Result<(), BlkError> {
    let deadline = deadline_in(IO_NS);
    let mut next = pieces.next();
    let mut failed = None;
    let mut empty: [u8; 0] = [];
    loop {
        let mut queued = false;
        while let Some(piece) = next {
            let data: &[u8] = if let Buf::Out(d) = &buf { d } else { &[] };
            if !disk.queue(op, piece, data) {
                break;
            }
            queued = true;
            next = pieces.next();
        }
        if queued {
            disk.push();
        }
        if next.is_none() && disk.inflight.count() == 0 {
            return failed.map_or(Ok(()), Err);
        }
        // The count is read before the ring, so an event for a response that comes after the
        // check ends the wait below.
        let seen = evtchn::count(disk.port.0);
        let out: &mut [u8] = if let Buf::In(b) = &mut buf { b } else { &mut empty };
        if disk.reap(out, &mut failed)? == 0 {
            match evtchn::wait(disk.port.0, seen, deadline) {
                Ok(_) => {}
                Err(e) => {
                    // Requests stay in flight with pages the backend may still write: the disk
                    // cannot be used again.
                    error!("blkfront: vbd {}: no response from the backend ({e}); disk disabled", disk.id);
                    disk.broken = true;
                    return Err(BlkError::TimedOut);
                }
            }
        }
    }
}
