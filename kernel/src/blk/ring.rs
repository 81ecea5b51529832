//! The frontend's side of blkif's shared ring (`xen/include/public/io/blkif.h`), as safe code:
//! request and response slots as ring words, the table of requests in flight, the judging of
//! every response, and the planning of an I/O into requests of at most
//! `BLKIF_MAX_SEGMENTS_PER_REQUEST` pages.
//!
//! The ring's indexes and barriers are netif's ([`crate::net::ring::FrontRing`], `io/ring.h`);
//! only the slots differ (112 bytes, so 32 of them in a page). The backend can rewrite the ring
//! page at any time, so each response is copied out once and judged on the copy: the producer
//! index (by `FrontRing`), the id (in range and in flight), the operation (the request's), the
//! status. A bad one is a [`BlkRingError`]: the driver then disables the device. Nothing here
//! can panic on what the backend wrote.

use crate::net::ring::{RingError, ring_size};
use crate::xen::abi::blkif::*;

/// Words of a slot (`union { blkif_request; blkif_response; }`, 112 bytes).
pub const SLOT_WORDS: usize = 28;
/// Words of a response at the start of a slot (16 bytes).
pub const RSP_WORDS: usize = 4;
/// `BLK_RING_SIZE` for 4 KiB pages: 32.
pub const RING_SIZE: u32 = ring_size(SLOT_WORDS * 4);
const _: () = assert!(RING_SIZE == 32 && size_of::<BlkifRequest>() == SLOT_WORDS * 4);

/// Xen's sector: every `sector_number`, `first_sect` and `last_sect` counts these.
pub const XEN_SECTOR: u64 = 512;
/// A page: one segment's most.
pub const PAGE_SIZE: usize = 4096;
/// The most bytes one request moves: 11 pages.
pub const MAX_REQUEST_BYTES: usize = BLKIF_MAX_SEGMENTS_PER_REQUEST * PAGE_SIZE;

/// What was wrong with the backend's side of the ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlkRingError {
    /// `rsp_prod` is further ahead of the responses taken than requests were made.
    ProducerOverrun { rsp_prod: u32, rsp_cons: u32, req_prod: u32 },
    /// A response's id is not one this frontend hands out.
    IdOutOfRange(u64),
    /// A response for an id with no request in flight (a duplicate, or made up).
    NotOutstanding(u64),
    /// A response whose operation is not its request's.
    WrongOperation { id: u64, sent: u8, got: u8 },
    /// A status blkif.h does not define.
    BadStatus(i16),
}

impl From<RingError> for BlkRingError {
    fn from(e: RingError) -> Self {
        match e {
            RingError::ProducerOverrun { rsp_prod, rsp_cons, req_prod } => {
                BlkRingError::ProducerOverrun { rsp_prod, rsp_cons, req_prod }
            }
            // `FrontRing::take_slot` only reports the producer index; the rest are netif's.
            _ => BlkRingError::BadStatus(i16::MIN),
        }
    }
}

/// A request as ring words (the x86_64 layout of `struct blkif_request`).
pub fn request_words(req: &BlkifRequest) -> [u32; SLOT_WORDS] {
    let mut w = [0u32; SLOT_WORDS];
    w[0] = req.operation as u32 | (req.nr_segments as u32) << 8 | (req.handle as u32) << 16;
    // w[1] is the padding before `id`.
    w[2] = req.id as u32;
    w[3] = (req.id >> 32) as u32;
    w[4] = req.sector_number as u32;
    w[5] = (req.sector_number >> 32) as u32;
    for (i, seg) in req.seg.iter().enumerate() {
        w[6 + 2 * i] = seg.gref;
        w[7 + 2 * i] = seg.first_sect as u32 | (seg.last_sect as u32) << 8;
    }
    w
}

/// Reads a response from its slot's first words.
pub fn response(w: &[u32; RSP_WORDS]) -> BlkifResponse {
    BlkifResponse { id: w[0] as u64 | (w[1] as u64) << 32, operation: w[2] as u8, status: (w[2] >> 16) as u16 as i16 }
}

/// How a request ended, from a valid response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Done {
    /// It worked.
    Okay(u16),
    /// The backend failed it (`BLKIF_RSP_ERROR`): an I/O error of this request, not of the
    /// protocol.
    Failed(u16),
    /// The backend does not do the operation (`BLKIF_RSP_EOPNOTSUPP`; a flush or barrier the
    /// backend stopped offering).
    Unsupported(u16),
}

/// The requests in flight, by id (0 to `N - 1`): the operation each was sent with.
pub struct Inflight<const N: usize> {
    ops: [Option<u8>; N],
}

impl<const N: usize> Default for Inflight<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Inflight<N> {
    /// None in flight.
    pub const fn new() -> Self {
        Inflight { ops: [None; N] }
    }

    /// Marks the lowest free id in flight with `operation`; `None` when all are.
    pub fn take(&mut self, operation: u8) -> Option<u16> {
        let id = self.ops.iter().position(Option::is_none)?;
        self.ops[id] = Some(operation);
        Some(id as u16)
    }

    /// Gives back an id that was taken but never sent.
    pub fn cancel(&mut self, id: u16) {
        if let Some(op) = self.ops.get_mut(id as usize) {
            *op = None;
        }
    }

    /// How many are in flight.
    pub fn count(&self) -> usize {
        self.ops.iter().filter(|op| op.is_some()).count()
    }

    /// Judges `rsp`: its id must be in flight and its operation the request's; a valid one
    /// ends its request.
    pub fn complete(&mut self, rsp: BlkifResponse) -> Result<Done, BlkRingError> {
        let index = usize::try_from(rsp.id).ok().filter(|&i| i < N).ok_or(BlkRingError::IdOutOfRange(rsp.id))?;
        let sent = self.ops[index].ok_or(BlkRingError::NotOutstanding(rsp.id))?;
        if sent != rsp.operation {
            return Err(BlkRingError::WrongOperation { id: rsp.id, sent, got: rsp.operation });
        }
        let id = index as u16;
        let done = match rsp.status {
            BLKIF_RSP_OKAY => Done::Okay(id),
            BLKIF_RSP_ERROR => Done::Failed(id),
            BLKIF_RSP_EOPNOTSUPP => Done::Unsupported(id),
            other => return Err(BlkRingError::BadStatus(other)),
        };
        self.ops[index] = None;
        Ok(done)
    }
}

/// Why an I/O cannot be planned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanError {
    /// The offset or length is not a multiple of the device's sector size.
    Unaligned,
    /// It reaches past the device's end.
    PastEnd,
}

/// One request of a planned I/O: `len` bytes at 512-byte sector `sector`, from `start` bytes
/// into the caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece {
    pub sector: u64,
    pub start: usize,
    pub len: usize,
}

impl Piece {
    /// The segments of this piece over whole bounce pages: (first_sect, last_sect) of each.
    pub fn segments(&self) -> impl Iterator<Item = (u8, u8)> {
        let len = self.len;
        (0..len.div_ceil(PAGE_SIZE)).map(move |i| {
            let bytes = (len - i * PAGE_SIZE).min(PAGE_SIZE);
            (0, (bytes / XEN_SECTOR as usize - 1) as u8)
        })
    }
}

/// Splits an I/O of `len` bytes at byte `offset` of a device of `sectors` 512-byte sectors and
/// logical sector size `sector_size` into requests of at most [`MAX_REQUEST_BYTES`] each.
///
/// blkif.h: `sector-size` is the device's logical block size, and I/O must be aligned to it;
/// the sector numbers on the ring still count 512-byte units.
pub fn plan(offset: u64, len: usize, sector_size: u32, sectors: u64) -> Result<impl Iterator<Item = Piece>, PlanError> {
    let ss = sector_size as u64;
    if ss == 0 || offset % ss != 0 || len as u64 % ss != 0 {
        return Err(PlanError::Unaligned);
    }
    let end = offset.checked_add(len as u64).ok_or(PlanError::PastEnd)?;
    if end > sectors.saturating_mul(XEN_SECTOR) {
        return Err(PlanError::PastEnd);
    }
    // A multiple of every sector size (512 or 4096) that divides a page.
    let step = MAX_REQUEST_BYTES;
    Ok((0..len.div_ceil(step)).map(move |i| {
        let start = i * step;
        Piece { sector: (offset + start as u64) / XEN_SECTOR, start, len: (len - start).min(step) }
    }))
}

/// Reads a decimal xenstore value (a NUL or newline after it allowed).
pub fn parse_number(value: &[u8]) -> Option<u64> {
    let value = value.strip_suffix(b"\0").unwrap_or(value);
    let value = value.strip_suffix(b"\n").unwrap_or(value);
    if value.is_empty() || value.len() > 20 {
        return None;
    }
    core::str::from_utf8(value).ok()?.parse().ok()
}

/// The device's geometry and features, from the backend's keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Size in 512-byte sectors (`sectors`).
    pub sectors: u64,
    /// The logical sector size (`sector-size`): 512 or 4096 here.
    pub sector_size: u32,
    /// `info` has `VDISK_READONLY`.
    pub readonly: bool,
}

/// Checks the backend's `sectors`, `sector-size` and `info` values.
///
/// blkif.h: `sectors` counts 512-byte units "regardless of the value of sector-size";
/// `sector-size` is a power of two of at least 512; `info` is a bit set of `VDISK_*`.
pub fn geometry(sectors: &[u8], sector_size: &[u8], info: &[u8]) -> Result<Geometry, &'static str> {
    let sectors = parse_number(sectors).ok_or("sectors")?;
    let sector_size = parse_number(sector_size).ok_or("sector-size")?;
    let info = parse_number(info).ok_or("info")?;
    // FIXME: only 512 and 4096-byte logical sectors are taken (those Linux's blkback gives
    // for ordinary disks); another power of two would need bounce pieces of that size.
    if sector_size != 512 && sector_size != 4096 {
        return Err("sector-size");
    }
    if sectors % (sector_size / XEN_SECTOR) != 0 || sectors > u64::MAX / XEN_SECTOR {
        return Err("sectors");
    }
    Ok(Geometry { sectors, sector_size: sector_size as u32, readonly: info & VDISK_READONLY as u64 != 0 })
}

/// The vbd id xenstore uses (`device/vbd/ID`) for an xl disk name `xvdX`, `xvdXY`: Linux's
/// xvd numbering (major 202, 16 minors a disk) for the first 16 disks, the extended form
/// (`1 << 28 | disk << 8`) after them (`docs/misc/vbd-interface.txt`). Partitions are not
/// devices of their own here.
pub fn vbd_id(name: &[u8]) -> Option<u32> {
    let letters = name.strip_prefix(b"xvd")?;
    if letters.is_empty() || letters.len() > 2 || !letters.iter().all(u8::is_ascii_lowercase) {
        return None;
    }
    // Bijective base 26: a..z are 0..25, aa is 26.
    let disk = letters.iter().fold(0u32, |n, &c| n * 26 + (c - b'a') as u32 + 1) - 1;
    Some(if disk < 16 { 202 << 8 | disk << 4 } else { 1 << 28 | disk << 8 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::ring::{FrontRing, PAGE_WORDS, init_shared};
    use alloc::vec::Vec;
    use core::sync::atomic::{AtomicU32, Ordering};

    fn rsp(id: u64, operation: u8, status: i16) -> BlkifResponse {
        BlkifResponse { id, operation, status }
    }

    fn rsp_words(r: BlkifResponse) -> [u32; RSP_WORDS] {
        [r.id as u32, (r.id >> 32) as u32, r.operation as u32 | (r.status as u16 as u32) << 16, 0]
    }

    #[test]
    fn the_layouts_match_blkif_h() {
        assert_eq!(core::mem::offset_of!(BlkifRequest, id), 8);
        assert_eq!(core::mem::offset_of!(BlkifRequest, sector_number), 16);
        assert_eq!(core::mem::offset_of!(BlkifRequest, seg), 24);
        assert_eq!(core::mem::offset_of!(BlkifResponse, status), 10);
        let mut req = BlkifRequest { operation: 1, nr_segments: 2, id: 0x1_0000_0005, sector_number: 0x2_0000_0010, ..Default::default() };
        req.seg[0] = BlkifRequestSegment { gref: 77, first_sect: 0, last_sect: 7 };
        req.seg[10] = BlkifRequestSegment { gref: 9, first_sect: 1, last_sect: 3 };
        let w = request_words(&req);
        assert_eq!(&w[..8], &[1 | 2 << 8, 0, 5, 1, 0x10, 2, 77, 7 << 8]);
        assert_eq!(&w[26..], &[9, 1 | 3 << 8]);
        let r = rsp(0xaa_0000_0003, 3, -2);
        assert_eq!(response(&rsp_words(r)), r);
    }

    #[test]
    fn responses_complete_their_requests_once() {
        let mut f = Inflight::<4>::new();
        assert_eq!(f.take(BLKIF_OP_READ), Some(0));
        assert_eq!(f.take(BLKIF_OP_WRITE), Some(1));
        assert_eq!(f.count(), 2);
        assert_eq!(f.complete(rsp(1, BLKIF_OP_WRITE, 0)), Ok(Done::Okay(1)));
        assert_eq!(f.complete(rsp(1, BLKIF_OP_WRITE, 0)), Err(BlkRingError::NotOutstanding(1)), "a duplicate");
        assert_eq!(f.complete(rsp(0, BLKIF_OP_READ, -1)), Ok(Done::Failed(0)));
        assert_eq!(f.take(BLKIF_OP_FLUSH_DISKCACHE), Some(0), "ids are reused");
        assert_eq!(f.complete(rsp(0, BLKIF_OP_FLUSH_DISKCACHE, -2)), Ok(Done::Unsupported(0)));
        assert_eq!(f.count(), 0);
    }

    #[test]
    fn malformed_responses_are_errors() {
        let mut f = Inflight::<4>::new();
        f.take(BLKIF_OP_READ);
        assert_eq!(f.complete(rsp(4, 0, 0)), Err(BlkRingError::IdOutOfRange(4)));
        assert_eq!(f.complete(rsp(u64::MAX, 0, 0)), Err(BlkRingError::IdOutOfRange(u64::MAX)));
        assert_eq!(f.complete(rsp(1 << 32, 0, 0)), Err(BlkRingError::IdOutOfRange(1 << 32)), "not cut to 32 bits");
        assert_eq!(f.complete(rsp(2, 0, 0)), Err(BlkRingError::NotOutstanding(2)));
        assert_eq!(
            f.complete(rsp(0, BLKIF_OP_WRITE, 0)),
            Err(BlkRingError::WrongOperation { id: 0, sent: BLKIF_OP_READ, got: BLKIF_OP_WRITE })
        );
        assert_eq!(f.complete(rsp(0, BLKIF_OP_READ, 1)), Err(BlkRingError::BadStatus(1)));
        assert_eq!(f.complete(rsp(0, BLKIF_OP_READ, -3)), Err(BlkRingError::BadStatus(-3)));
        assert_eq!(f.count(), 1, "a bad response ends nothing");
        assert_eq!(f.complete(rsp(0, BLKIF_OP_READ, 0)), Ok(Done::Okay(0)));
    }

    #[test]
    fn a_producer_index_past_the_requests_is_an_error() {
        let page: Vec<AtomicU32> = (0..PAGE_WORDS).map(|_| AtomicU32::new(0)).collect();
        init_shared(&page);
        let mut ring = FrontRing::new(&page, SLOT_WORDS).unwrap();
        assert_eq!(ring.size(), RING_SIZE);
        let req = request_words(&BlkifRequest { id: 3, ..Default::default() });
        assert!(ring.put_request(&req));
        ring.push();
        // The backend answers slot 0, then claims two responses for one request.
        let words = rsp_words(rsp(3, 0, 0));
        for (i, w) in words.iter().enumerate() {
            page[16 + i].store(*w, Ordering::Relaxed);
        }
        page[2].store(2, Ordering::Release);
        let mut out = [0; RSP_WORDS];
        let e = BlkRingError::from(ring.take_slot(&mut out).unwrap_err());
        assert_eq!(e, BlkRingError::ProducerOverrun { rsp_prod: 2, rsp_cons: 0, req_prod: 1 });
        page[2].store(1, Ordering::Release);
        assert_eq!(ring.take_slot(&mut out), Ok(true));
        assert_eq!(response(&out), rsp(3, 0, 0));
        assert_eq!(ring.take_slot(&mut out), Ok(false));
    }

    #[test]
    fn ios_are_split_into_requests_of_11_pages() {
        let pieces: Vec<Piece> = plan(4096, 100 * 1024, 512, 1 << 20).unwrap().collect();
        assert_eq!(pieces.len(), 3);
        assert_eq!(pieces[0], Piece { sector: 8, start: 0, len: 45056 });
        assert_eq!(pieces[1], Piece { sector: 8 + 88, start: 45056, len: 45056 });
        assert_eq!(pieces[2], Piece { sector: 8 + 176, start: 90112, len: 102400 - 90112 });
        let segs: Vec<(u8, u8)> = pieces[2].segments().collect();
        assert_eq!(segs, [(0, 7), (0, 7), (0, 7)]);
        let small: Vec<Piece> = plan(512, 1536, 512, 8).unwrap().collect();
        assert_eq!(small, [Piece { sector: 1, start: 0, len: 1536 }]);
        assert_eq!(small[0].segments().collect::<Vec<_>>(), [(0, 2)]);
        assert_eq!(plan(0, 0, 512, 8).unwrap().count(), 0);
    }

    #[test]
    fn ios_must_fit_the_device_and_its_sector_size() {
        assert_eq!(plan(512, 512, 4096, 64).err(), Some(PlanError::Unaligned));
        assert_eq!(plan(0, 1024, 4096, 64).err(), Some(PlanError::Unaligned));
        assert_eq!(plan(4096, 4096, 4096, 64).unwrap().next(), Some(Piece { sector: 8, start: 0, len: 4096 }));
        assert_eq!(plan(0, 4096, 512, 7).err(), Some(PlanError::PastEnd));
        assert_eq!(plan(u64::MAX - 511, 1024, 512, u64::MAX).err(), Some(PlanError::PastEnd));
        assert!(plan(28 * 512, 4096, 512, 36).is_ok(), "up to the last sector");
    }

    #[test]
    fn backend_keys_are_checked() {
        let g = geometry(b"131072", b"512", b"0").unwrap();
        assert_eq!(g, Geometry { sectors: 131072, sector_size: 512, readonly: false });
        assert!(geometry(b"16\0", b"4096\n", b"4").unwrap().readonly);
        assert_eq!(geometry(b"12", b"4096", b"0"), Err("sectors"), "not whole 4 KiB sectors");
        assert_eq!(geometry(b"x", b"512", b"0"), Err("sectors"));
        assert_eq!(geometry(b"", b"512", b"0"), Err("sectors"));
        assert_eq!(geometry(b"8", b"1024", b"0"), Err("sector-size"));
        assert_eq!(geometry(b"8", b"0", b"0"), Err("sector-size"));
        assert_eq!(geometry(b"8", b"512", b"-1"), Err("info"));
        assert_eq!(geometry(b"99999999999999999999999", b"512", b"0"), Err("sectors"));
    }

    #[test]
    fn xl_disk_names_map_to_vbd_ids() {
        assert_eq!(vbd_id(b"xvda"), Some(51712));
        assert_eq!(vbd_id(b"xvdb"), Some(51728));
        assert_eq!(vbd_id(b"xvdp"), Some(202 << 8 | 15 << 4));
        assert_eq!(vbd_id(b"xvdq"), Some(1 << 28 | 16 << 8));
        assert_eq!(vbd_id(b"xvdaa"), Some(1 << 28 | 26 << 8));
        assert_eq!(vbd_id(b"xvd"), None);
        assert_eq!(vbd_id(b"xvdA"), None);
        assert_eq!(vbd_id(b"xvda1"), None);
        assert_eq!(vbd_id(b"sda"), None);
    }
}
