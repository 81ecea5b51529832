//! The frontend's side of netif's two shared rings (`xen/include/public/io/ring.h`,
//! `xen/include/public/io/netif.h`), as safe code over the ring page's 32-bit words.
//!
//! A ring page starts with a 64-byte header (`req_prod`, `req_event`, `rsp_prod`, `rsp_event`,
//! padding), then as many slots as the largest power of two that fits. The backend can rewrite
//! the page at any time, so every slot is copied out once ([`FrontRing::take_response`]) and
//! judged on the copy: the producer index, the id (in range and outstanding), the status, the
//! offset and length, the flags. A bad one is a [`RingError`]: the driver then disables the
//! device. Nothing here can panic on what the backend wrote.

use core::sync::atomic::{AtomicU32, Ordering, fence};

use crate::xen::abi::netif::*;

/// Words in a ring page.
pub const PAGE_WORDS: usize = 1024;
/// The shared ring header (`struct *_sring` before `ring[]`): 64 bytes.
const HEADER_WORDS: usize = 16;
const REQ_PROD: usize = 0;
const REQ_EVENT: usize = 1;
const RSP_PROD: usize = 2;
const RSP_EVENT: usize = 3;

/// Slots of a ring whose entries (the union of request and response) take `slot_bytes`:
/// ring.h's `__RING_SIZE`, the largest power of two that fits after the header.
pub const fn ring_size(slot_bytes: usize) -> u32 {
    let fit = (4096 - HEADER_WORDS * 4) / slot_bytes;
    let mut n = 1;
    while n * 2 <= fit {
        n *= 2;
    }
    n as u32
}

/// Words of a tx slot (`union { netif_tx_request; netif_tx_response; }`, 12 bytes).
pub const TX_SLOT_WORDS: usize = 3;
/// Words of an rx slot (`union { netif_rx_request; netif_rx_response; }`, 8 bytes).
pub const RX_SLOT_WORDS: usize = 2;
/// `NET_TX_RING_SIZE` for 4 KiB pages: 256.
pub const TX_RING_SIZE: u32 = ring_size(TX_SLOT_WORDS * 4);
/// `NET_RX_RING_SIZE` for 4 KiB pages: 256.
pub const RX_RING_SIZE: u32 = ring_size(RX_SLOT_WORDS * 4);
const _: () = assert!(TX_RING_SIZE == 256 && RX_RING_SIZE == 256);

/// The page size the offsets and lengths of slots are checked against.
pub const PAGE_SIZE: usize = 4096;

/// What was wrong with the backend's side of a ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingError {
    /// `rsp_prod` is further ahead of the responses taken than requests were made.
    ProducerOverrun { rsp_prod: u32, rsp_cons: u32, req_prod: u32 },
    /// A response's id is not one this frontend hands out.
    IdOutOfRange(u16),
    /// A response for an id with no request outstanding (a duplicate, or made up).
    NotOutstanding(u16),
    /// A status netif.h does not define for this ring.
    BadStatus(i16),
    /// Data that does not lie inside its page.
    BadExtent { offset: u16, len: u16 },
    /// Flags of a feature this frontend did not ask for.
    BadFlags(u16),
    /// An extra-info slot of a type (or GSO type) this frontend did not ask for, or a second
    /// one of a type already given.
    BadExtraInfo { kind: u8, gso_type: u8 },
    /// A packet's continuation slot is an error instead of data.
    BadContinuation(i16),
    /// A slot says more follows, but no rx buffer is left posted to hold it.
    MoreDataOnLastSlot,
    /// A packet of more slots than a packet may have.
    TooManySlots,
    /// A packet longer than a packet may be.
    TooLong(usize),
}

/// Writes the header of a fresh shared ring (`SHARED_RING_INIT`): indexes 0, event indexes 1.
pub fn init_shared(page: &[AtomicU32]) {
    for word in page.iter().take(HEADER_WORDS) {
        word.store(0, Ordering::Relaxed);
    }
    page[REQ_EVENT].store(1, Ordering::Relaxed);
    page[RSP_EVENT].store(1, Ordering::Relaxed);
}

/// A frontend's private view of one shared ring (`FRONT_RING_INIT`'s `struct *_front_ring`).
pub struct FrontRing<'a> {
    page: &'a [AtomicU32],
    slot_words: usize,
    size: u32,
    req_prod_pvt: u32,
    rsp_cons: u32,
}

impl<'a> FrontRing<'a> {
    /// A view of `page` (at least [`PAGE_WORDS`] words, header written by [`init_shared`])
    /// with slots of `slot_words` words.
    pub fn new(page: &'a [AtomicU32], slot_words: usize) -> Option<Self> {
        if page.len() < PAGE_WORDS || slot_words == 0 {
            return None;
        }
        let size = ring_size(slot_words * 4);
        Some(FrontRing { page, slot_words, size, req_prod_pvt: 0, rsp_cons: 0 })
    }

    /// Slots in the ring.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Requests that can still be queued (`RING_FREE_REQUESTS`).
    pub fn free_requests(&self) -> u32 {
        self.size - self.req_prod_pvt.wrapping_sub(self.rsp_cons)
    }

    fn slot(&self, index: u32) -> &[AtomicU32] {
        let at = HEADER_WORDS + (index & (self.size - 1)) as usize * self.slot_words;
        &self.page[at..at + self.slot_words]
    }

    /// Queues a request (its words); not visible to the backend before [`Self::push`].
    /// Returns false when the ring is full.
    pub fn put_request(&mut self, words: &[u32]) -> bool {
        if self.free_requests() == 0 || words.len() != self.slot_words {
            return false;
        }
        for (slot, &word) in self.slot(self.req_prod_pvt).iter().zip(words) {
            slot.store(word, Ordering::Relaxed);
        }
        self.req_prod_pvt = self.req_prod_pvt.wrapping_add(1);
        true
    }

    /// Publishes the queued requests (`RING_PUSH_REQUESTS_AND_CHECK_NOTIFY`); returns whether
    /// the backend asked to be notified of them.
    pub fn push(&mut self) -> bool {
        let old = self.page[REQ_PROD].load(Ordering::Relaxed);
        let new = self.req_prod_pvt;
        // ring.h: the backend must see the requests' contents before the producer index
        // that covers them.
        self.page[REQ_PROD].store(new, Ordering::Release);
        // ring.h: the new producer index must be visible before `req_event` is read, or a
        // backend that just went to sleep is not woken.
        fence(Ordering::SeqCst);
        let event = self.page[REQ_EVENT].load(Ordering::Relaxed);
        new.wrapping_sub(event) < new.wrapping_sub(old)
    }

    /// The backend's producer index, checked: it may be ahead of the responses taken only by
    /// as many requests as were made (which also bounds it by the ring's size).
    fn responses_ready(&self) -> Result<u32, RingError> {
        // Acquire: the responses up to `rsp_prod` are read only after it.
        let rsp_prod = self.page[RSP_PROD].load(Ordering::Acquire);
        let ready = rsp_prod.wrapping_sub(self.rsp_cons);
        let asked = self.req_prod_pvt.wrapping_sub(self.rsp_cons);
        if ready > asked || ready > self.size {
            return Err(RingError::ProducerOverrun { rsp_prod, rsp_cons: self.rsp_cons, req_prod: self.req_prod_pvt });
        }
        Ok(ready)
    }

    /// The ring index of the next request [`Self::put_request`] queues.
    pub fn next_request(&self) -> u32 {
        self.req_prod_pvt
    }

    /// The ring index of the next response [`Self::take_response`] copies out.
    pub fn next_response(&self) -> u32 {
        self.rsp_cons
    }

    /// Copies out the next response's slot, if the backend produced one: the slot's words
    /// (as many as a slot has; the rest of the array is 0).
    pub fn take_response(&mut self) -> Result<Option<[u32; TX_SLOT_WORDS]>, RingError> {
        if self.responses_ready()? == 0 {
            return Ok(None);
        }
        let mut words = [0; TX_SLOT_WORDS];
        for (word, slot) in words.iter_mut().zip(self.slot(self.rsp_cons)) {
            *word = slot.load(Ordering::Relaxed);
        }
        self.rsp_cons = self.rsp_cons.wrapping_add(1);
        Ok(Some(words))
    }

    /// Copies out the next response's slot into `out` (at most a slot's words), if the backend
    /// produced one; returns whether it did. For rings whose slots are not netif's (blkif).
    pub fn take_slot(&mut self, out: &mut [u32]) -> Result<bool, RingError> {
        if self.responses_ready()? == 0 {
            return Ok(false);
        }
        for (word, slot) in out.iter_mut().zip(self.slot(self.rsp_cons)) {
            *word = slot.load(Ordering::Relaxed);
        }
        self.rsp_cons = self.rsp_cons.wrapping_add(1);
        Ok(true)
    }

    /// Asks the backend for an event at its next response and checks once more
    /// (`RING_FINAL_CHECK_FOR_RESPONSES`); returns whether responses are ready.
    pub fn final_check(&mut self) -> Result<bool, RingError> {
        if self.responses_ready()? > 0 {
            return Ok(true);
        }
        self.page[RSP_EVENT].store(self.rsp_cons.wrapping_add(1), Ordering::Relaxed);
        // ring.h: `rsp_event` must be visible before `rsp_prod` is read again, or a response
        // produced in between is neither seen nor signalled.
        fence(Ordering::SeqCst);
        Ok(self.responses_ready()? > 0)
    }
}

/// Ids of requests the backend holds, below a limit of at most 256.
pub struct Outstanding {
    bits: [u64; 4],
    limit: u16,
}

impl Outstanding {
    /// No id outstanding; ids run from 0 to `limit - 1` (`limit` at most 256).
    pub const fn new(limit: u16) -> Self {
        let limit = if limit > 256 { 256 } else { limit };
        Outstanding { bits: [0; 4], limit }
    }

    fn bit(id: u16) -> (usize, u64) {
        ((id / 64) as usize, 1 << (id % 64))
    }

    /// Whether `id` is outstanding.
    pub fn contains(&self, id: u16) -> bool {
        let (word, bit) = Self::bit(id);
        id < self.limit && self.bits[word] & bit != 0
    }

    /// Marks the lowest free id outstanding and returns it.
    pub fn take(&mut self) -> Option<u16> {
        let id = (0..self.limit).find(|&id| !self.contains(id))?;
        let (word, bit) = Self::bit(id);
        self.bits[word] |= bit;
        Some(id)
    }

    /// Marks `id` outstanding (again); false when it is out of range or already is.
    pub fn insert(&mut self, id: u16) -> bool {
        if id >= self.limit || self.contains(id) {
            return false;
        }
        let (word, bit) = Self::bit(id);
        self.bits[word] |= bit;
        true
    }

    /// Marks the lowest run of `n` consecutive free ids outstanding and returns its first.
    pub fn take_run(&mut self, n: u16) -> Option<u16> {
        let first = (0..self.limit.checked_sub(n)?.saturating_add(1)).find(|&f| (f..f + n).all(|id| !self.contains(id)))?;
        self.insert_run(first, n).then_some(first)
    }

    /// Marks `first..first + n` outstanding if every one of them is free and in range (else
    /// none); returns whether it did.
    pub fn insert_run(&mut self, first: u16, n: u16) -> bool {
        let Some(end) = first.checked_add(n).filter(|&end| end <= self.limit) else { return false };
        if (first..end).any(|id| self.contains(id)) {
            return false;
        }
        (first..end).all(|id| self.insert(id))
    }

    /// Checks that `id` names an outstanding request, then marks it done.
    pub fn complete(&mut self, id: u16) -> Result<(), RingError> {
        if id >= self.limit {
            return Err(RingError::IdOutOfRange(id));
        }
        if !self.contains(id) {
            return Err(RingError::NotOutstanding(id));
        }
        let (word, bit) = Self::bit(id);
        self.bits[word] &= !bit;
        Ok(())
    }

    /// How many are outstanding.
    pub fn count(&self) -> u32 {
        self.bits.iter().map(|w| w.count_ones()).sum()
    }
}

/// A tx request as ring words.
pub fn tx_request(req: NetifTxRequest) -> [u32; TX_SLOT_WORDS] {
    [req.gref, req.offset as u32 | (req.flags as u32) << 16, req.id as u32 | (req.size as u32) << 16]
}

/// An rx request as ring words.
pub fn rx_request(req: NetifRxRequest) -> [u32; RX_SLOT_WORDS] {
    [req.id as u32 | (req.pad as u32) << 16, req.gref]
}

/// Reads a tx response from its slot's words.
pub fn tx_response(words: &[u32]) -> NetifTxResponse {
    let w = words.first().copied().unwrap_or(0);
    NetifTxResponse { id: w as u16, status: (w >> 16) as u16 as i16 }
}

/// Reads an rx response from its slot's words.
pub fn rx_response(words: &[u32]) -> NetifRxResponse {
    let w0 = words.first().copied().unwrap_or(0);
    let w1 = words.get(1).copied().unwrap_or(0);
    NetifRxResponse { id: w0 as u16, offset: (w0 >> 16) as u16, flags: w1 as u16, status: (w1 >> 16) as u16 as i16 }
}

/// An extra-info slot as ring words (a tx slot's first two words; the third is unused).
pub fn extra_info_words(info: NetifExtraInfo) -> [u32; TX_SLOT_WORDS] {
    let w0 = info.kind as u32 | (info.flags as u32) << 8 | (info.gso_size as u32) << 16;
    let w1 = info.gso_type as u32 | (info.gso_pad as u32) << 8 | (info.gso_features as u32) << 16;
    [w0, w1, 0]
}

/// Reads an extra-info slot from its words.
pub fn extra_info(words: &[u32]) -> NetifExtraInfo {
    let w0 = words.first().copied().unwrap_or(0);
    let w1 = words.get(1).copied().unwrap_or(0);
    NetifExtraInfo {
        kind: w0 as u8,
        flags: (w0 >> 8) as u8,
        gso_size: (w0 >> 16) as u16,
        gso_type: w1 as u8,
        gso_pad: (w1 >> 8) as u8,
        gso_features: (w1 >> 16) as u16,
    }
}

/// How a tx request ended, from a valid response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxDone {
    Sent(u16),
    /// The backend dropped the frame or failed to send it (not a protocol error).
    Failed(u16),
    /// The response to an extra-info slot (it carries no id).
    Null,
}

/// Judges a tx response against the outstanding ids; a valid one completes its id.
/// `extras` counts the extra-info slots sent whose `NETIF_RSP_NULL` has not come: only that
/// many such responses are taken.
pub fn check_tx(rsp: NetifTxResponse, outstanding: &mut Outstanding, extras: &mut u32) -> Result<TxDone, RingError> {
    let failed = match rsp.status {
        NETIF_RSP_OKAY => false,
        NETIF_RSP_ERROR | NETIF_RSP_DROPPED => true,
        NETIF_RSP_NULL if *extras > 0 => {
            *extras -= 1;
            return Ok(TxDone::Null);
        }
        other => return Err(RingError::BadStatus(other)),
    };
    outstanding.complete(rsp.id)?;
    Ok(if failed { TxDone::Failed(rsp.id) } else { TxDone::Sent(rsp.id) })
}

/// What a valid rx response holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxDone {
    /// A frame of `len` bytes at `offset` in buffer `id`'s page.
    Frame { id: u16, offset: u16, len: u16 },
    /// The buffer came back without data (`status` < 0, or an empty frame).
    Empty { id: u16, status: i16 },
}

/// Flags an rx response may carry without `feature-sg` and GSO (`more_data`, `extra_info`
/// and `gso_prefix` are then errors; this frontend never asks for `gso_prefix`).
pub const RX_FLAGS_PLAIN: u16 = NETRXF_DATA_VALIDATED | NETRXF_CSUM_BLANK;
/// Flags an rx response may carry with `feature-sg` and `feature-gso-tcpv4`.
pub const RX_FLAGS_GSO: u16 = RX_FLAGS_PLAIN | NETRXF_MORE_DATA | NETRXF_EXTRA_INFO;

/// Judges an rx response against the outstanding ids and the `allowed` flags; a valid one
/// completes its id.
pub fn check_rx(rsp: NetifRxResponse, outstanding: &mut Outstanding, allowed: u16) -> Result<RxDone, RingError> {
    if rsp.id >= outstanding.limit {
        return Err(RingError::IdOutOfRange(rsp.id));
    }
    if !outstanding.contains(rsp.id) {
        return Err(RingError::NotOutstanding(rsp.id));
    }
    if rsp.flags & !allowed != 0 {
        return Err(RingError::BadFlags(rsp.flags));
    }
    let done = if rsp.status <= 0 {
        RxDone::Empty { id: rsp.id, status: rsp.status }
    } else {
        let len = rsp.status as u16;
        // netif.h: the data lies in the granted page: offset < 4096, offset + len <= 4096.
        if rsp.offset as usize >= PAGE_SIZE || len as usize > PAGE_SIZE - rsp.offset as usize {
            return Err(RingError::BadExtent { offset: rsp.offset, len });
        }
        RxDone::Frame { id: rsp.id, offset: rsp.offset, len }
    };
    outstanding.complete(rsp.id)?;
    Ok(done)
}

/// Reads a `mac` key's value, `xx:xx:xx:xx:xx:xx` in hex digits of either case (a NUL or
/// newline after it allowed).
pub fn parse_mac(value: &[u8]) -> Option<[u8; 6]> {
    let value = value.strip_suffix(b"\0").unwrap_or(value);
    let value = value.strip_suffix(b"\n").unwrap_or(value);
    if value.len() != 17 {
        return None;
    }
    let mut mac = [0; 6];
    for (i, byte) in mac.iter_mut().enumerate() {
        let part = &value[i * 3..i * 3 + 2];
        if i < 5 && value[i * 3 + 2] != b':' {
            return None;
        }
        let hex = |d: u8| (d as char).to_digit(16);
        *byte = (hex(part[0])? * 16 + hex(part[1])?) as u8;
    }
    Some(mac)
}

/// The MTU a device takes: the Ethernet payload of one frame without segmentation. Larger
/// MTUs (jumbo frames) would need frames over several slots, which only GSO packets use here.
pub const MAX_MTU: u16 = 1500;
/// The smallest MTU taken: IPv4's minimum datagram every host must accept (RFC 791).
pub const MIN_MTU: u16 = 576;

/// What a device's `mtu` key (written by the toolstack from the vif's `mtu=`) gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mtu {
    /// A value in [`MIN_MTU`]..=[`MAX_MTU`].
    Taken(u16),
    /// A number outside it, and the nearest that is taken.
    Clamped(u64, u16),
    /// Not a number: [`MAX_MTU`] is used.
    Malformed,
}

/// Reads an `mtu` key's value (decimal, maybe with a NUL or newline after it).
pub fn parse_mtu(value: &[u8]) -> Mtu {
    let value = value.strip_suffix(b"\0").unwrap_or(value);
    let value = value.strip_suffix(b"\n").unwrap_or(value);
    let number = core::str::from_utf8(value).ok().filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
    match number.and_then(|s| s.parse::<u64>().ok()) {
        None => Mtu::Malformed,
        Some(n) if (u64::from(MIN_MTU)..=u64::from(MAX_MTU)).contains(&n) => Mtu::Taken(n as u16),
        Some(n) => Mtu::Clamped(n, if n < u64::from(MIN_MTU) { MIN_MTU } else { MAX_MTU }),
    }
}

impl Mtu {
    /// The MTU to use.
    pub fn value(self) -> u16 {
        match self {
            Mtu::Taken(m) | Mtu::Clamped(_, m) => m,
            Mtu::Malformed => MAX_MTU,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_mtu_key_is_taken_in_range_and_clamped_or_ignored_otherwise() {
        assert_eq!(parse_mtu(b"1500"), Mtu::Taken(1500));
        assert_eq!(parse_mtu(b"1400\0"), Mtu::Taken(1400));
        assert_eq!(parse_mtu(b"576\n"), Mtu::Taken(576));
        assert_eq!(parse_mtu(b"9000"), Mtu::Clamped(9000, 1500));
        assert_eq!(parse_mtu(b"68"), Mtu::Clamped(68, 576));
        assert_eq!(parse_mtu(b"0"), Mtu::Clamped(0, 576));
        assert_eq!(parse_mtu(b"99999999999999999999999"), Mtu::Malformed);
        for bad in [&b""[..], b"-1", b"1500 ", b" 1500", b"15o0", b"0x5dc", b"\xff"] {
            assert_eq!(parse_mtu(bad), Mtu::Malformed, "{bad:?}");
        }
        assert_eq!(Mtu::Malformed.value(), 1500);
        assert_eq!(Mtu::Clamped(9000, 1500).value(), 1500);
    }
    use alloc::vec::Vec;

    fn page() -> Vec<AtomicU32> {
        let page: Vec<AtomicU32> = (0..PAGE_WORDS).map(|_| AtomicU32::new(0xdead_beef)).collect();
        init_shared(&page);
        page
    }

    /// Plays the backend: writes response `words` at index `at` and publishes `rsp_prod`.
    fn respond(page: &[AtomicU32], slot_words: usize, at: u32, words: &[u32], rsp_prod: u32) {
        let size = ring_size(slot_words * 4);
        let base = HEADER_WORDS + (at & (size - 1)) as usize * slot_words;
        for (i, &w) in words.iter().enumerate() {
            page[base + i].store(w, Ordering::Relaxed);
        }
        page[RSP_PROD].store(rsp_prod, Ordering::Release);
    }

    fn rx_words(id: u16, offset: u16, flags: u16, status: i16) -> [u32; 2] {
        [id as u32 | (offset as u32) << 16, flags as u32 | (status as u16 as u32) << 16]
    }

    #[test]
    fn runs_of_ids_are_taken_whole_or_not_at_all() {
        let mut ids = Outstanding::new(8);
        assert_eq!(ids.take_run(3), Some(0));
        assert_eq!(ids.take(), Some(3));
        assert_eq!(ids.take_run(2), Some(4));
        assert!(ids.complete(1).is_ok());
        assert_eq!(ids.take_run(2), Some(6), "1 alone is too short");
        assert_eq!(ids.take_run(1), Some(1));
        assert_eq!(ids.take_run(1), None);
        assert_eq!(Outstanding::new(4).take_run(5), None, "longer than the ids");
        assert_eq!(Outstanding::new(4).take_run(4), Some(0));
        let mut ids = Outstanding::new(8);
        assert!(ids.insert(5));
        assert!(!ids.insert_run(3, 3), "5 is taken");
        assert!(!ids.contains(3) && !ids.contains(4), "nothing taken of a refused run");
        assert!(!ids.insert_run(6, 3), "past the limit");
        assert!(!ids.insert_run(u16::MAX, 2), "no overflow");
        assert!(ids.insert_run(6, 2) && ids.contains(6) && ids.contains(7));
        assert_eq!(ids.count(), 3);
    }

    #[test]
    fn the_layouts_match_netif_h() {
        assert_eq!(core::mem::offset_of!(NetifTxRequest, offset), 4);
        assert_eq!(core::mem::offset_of!(NetifTxRequest, id), 8);
        assert_eq!(core::mem::offset_of!(NetifRxResponse, status), 6);
        let w = tx_request(NetifTxRequest { gref: 9, offset: 1, flags: 2, id: 3, size: 60 });
        assert_eq!(w, [9, 1 | 2 << 16, 3 | 60 << 16]);
        assert_eq!(rx_request(NetifRxRequest { id: 5, pad: 0, gref: 77 }), [5, 77]);
        let r = rx_response(&rx_words(4, 10, 1, -2));
        assert_eq!(r, NetifRxResponse { id: 4, offset: 10, flags: 1, status: -2 });
        assert_eq!(tx_response(&[7 | (0xffffu32 << 16)]), NetifTxResponse { id: 7, status: -1 });
    }

    #[test]
    fn a_fresh_ring_has_event_indexes_1() {
        let p = page();
        assert_eq!(p[REQ_PROD].load(Ordering::Relaxed), 0);
        assert_eq!(p[REQ_EVENT].load(Ordering::Relaxed), 1);
        assert_eq!(p[RSP_EVENT].load(Ordering::Relaxed), 1);
        assert_eq!(p[HEADER_WORDS].load(Ordering::Relaxed), 0xdead_beef, "slots untouched");
    }

    #[test]
    fn requests_are_pushed_and_the_backend_notified_as_it_asked() {
        let p = page();
        let mut ring = FrontRing::new(&p, RX_SLOT_WORDS).unwrap();
        assert!(ring.put_request(&[1, 2]));
        assert!(ring.put_request(&[3, 4]));
        assert_eq!(p[REQ_PROD].load(Ordering::Relaxed), 0, "not before push");
        assert!(ring.push(), "req_event 1 is crossed");
        assert_eq!(p[REQ_PROD].load(Ordering::Relaxed), 2);
        assert_eq!(p[HEADER_WORDS + 2].load(Ordering::Relaxed), 3);
        // The backend asks for an event only at request 10.
        p[REQ_EVENT].store(10, Ordering::Relaxed);
        assert!(ring.put_request(&[5, 6]));
        assert!(!ring.push());
        assert!(!ring.put_request(&[1]), "wrong slot size");
    }

    #[test]
    fn a_full_ring_takes_no_more_requests() {
        let p = page();
        let mut ring = FrontRing::new(&p, RX_SLOT_WORDS).unwrap();
        for i in 0..RX_RING_SIZE {
            assert!(ring.put_request(&[i, i]));
        }
        assert!(!ring.put_request(&[0, 0]));
        assert_eq!(ring.free_requests(), 0);
        ring.push();
        respond(&p, RX_SLOT_WORDS, 0, &[0, 0], 1);
        assert!(ring.take_response().unwrap().is_some());
        assert_eq!(ring.free_requests(), 1);
    }

    #[test]
    fn responses_are_taken_once_each() {
        let p = page();
        let mut ring = FrontRing::new(&p, TX_SLOT_WORDS).unwrap();
        ring.put_request(&[0, 0, 0]);
        ring.put_request(&[0, 0, 1]);
        ring.push();
        assert_eq!(ring.take_response(), Ok(None));
        respond(&p, TX_SLOT_WORDS, 0, &[0], 1);
        respond(&p, TX_SLOT_WORDS, 1, &[1], 2);
        assert_eq!(ring.take_response(), Ok(Some([0, 0, 0])));
        assert_eq!(ring.take_response(), Ok(Some([1, 0, 1])), "the slot as the backend left it");
        assert_eq!(ring.take_response(), Ok(None));
    }

    #[test]
    fn a_producer_index_ahead_of_the_requests_is_an_error() {
        let p = page();
        let mut ring = FrontRing::new(&p, RX_SLOT_WORDS).unwrap();
        ring.put_request(&[0, 0]);
        ring.push();
        p[RSP_PROD].store(2, Ordering::Relaxed);
        assert!(matches!(ring.take_response(), Err(RingError::ProducerOverrun { rsp_prod: 2, .. })));
        // Far ahead, and behind (wrapping), too.
        p[RSP_PROD].store(0x8000_0000, Ordering::Relaxed);
        assert!(ring.take_response().is_err());
        p[RSP_PROD].store(u32::MAX, Ordering::Relaxed);
        assert!(ring.final_check().is_err());
    }

    #[test]
    fn indexes_wrap_around_u32() {
        let p = page();
        let mut ring = FrontRing::new(&p, RX_SLOT_WORDS).unwrap();
        ring.req_prod_pvt = u32::MAX - 1;
        ring.rsp_cons = u32::MAX - 1;
        p[REQ_PROD].store(u32::MAX - 1, Ordering::Relaxed);
        p[RSP_PROD].store(u32::MAX - 1, Ordering::Relaxed);
        for i in 0..4 {
            assert!(ring.put_request(&[i, 0]));
        }
        ring.push();
        assert_eq!(p[REQ_PROD].load(Ordering::Relaxed), 2);
        respond(&p, RX_SLOT_WORDS, u32::MAX - 1, &[0, 0], u32::MAX);
        respond(&p, RX_SLOT_WORDS, u32::MAX, &[1, 0], 0);
        respond(&p, RX_SLOT_WORDS, 0, &[2, 0], 1);
        assert_eq!(ring.take_response().unwrap().unwrap()[0], 0);
        assert_eq!(ring.take_response().unwrap().unwrap()[0], 1);
        assert_eq!(ring.take_response().unwrap().unwrap()[0], 2);
        assert_eq!(ring.take_response(), Ok(None));
    }

    #[test]
    fn the_final_check_asks_for_the_next_event() {
        let p = page();
        let mut ring = FrontRing::new(&p, RX_SLOT_WORDS).unwrap();
        ring.put_request(&[0, 0]);
        ring.push();
        assert_eq!(ring.final_check(), Ok(false));
        assert_eq!(p[RSP_EVENT].load(Ordering::Relaxed), 1);
        respond(&p, RX_SLOT_WORDS, 0, &[0, 0], 1);
        assert_eq!(ring.final_check(), Ok(true));
        ring.take_response().unwrap();
        assert_eq!(ring.final_check(), Ok(false));
        assert_eq!(p[RSP_EVENT].load(Ordering::Relaxed), 2);
    }

    #[test]
    fn ids_are_handed_out_and_completed_once() {
        let mut ids = Outstanding::new(3);
        assert_eq!(ids.take(), Some(0));
        assert_eq!(ids.take(), Some(1));
        assert_eq!(ids.take(), Some(2));
        assert_eq!(ids.take(), None);
        assert_eq!(ids.complete(1), Ok(()));
        assert_eq!(ids.complete(1), Err(RingError::NotOutstanding(1)));
        assert_eq!(ids.complete(3), Err(RingError::IdOutOfRange(3)));
        assert_eq!(ids.complete(u16::MAX), Err(RingError::IdOutOfRange(u16::MAX)));
        assert_eq!(ids.count(), 2);
        assert!(ids.insert(1));
        assert!(!ids.insert(1));
        assert!(!ids.insert(300));
        assert_eq!(Outstanding::new(1000).limit, 256);
    }

    #[test]
    fn tx_responses_are_judged() {
        let mut ids = Outstanding::new(16);
        let a = ids.take().unwrap();
        let b = ids.take().unwrap();
        assert_eq!(check_tx(NetifTxResponse { id: a, status: NETIF_RSP_OKAY }, &mut ids, &mut 0), Ok(TxDone::Sent(a)));
        assert_eq!(check_tx(NetifTxResponse { id: b, status: NETIF_RSP_DROPPED }, &mut ids, &mut 0), Ok(TxDone::Failed(b)));
        // A second response for the same id.
        let dup = check_tx(NetifTxResponse { id: a, status: NETIF_RSP_OKAY }, &mut ids, &mut 0);
        assert_eq!(dup, Err(RingError::NotOutstanding(a)));
        let c = ids.take().unwrap();
        assert_eq!(check_tx(NetifTxResponse { id: 16, status: 0 }, &mut ids, &mut 0), Err(RingError::IdOutOfRange(16)));
        assert_eq!(check_tx(NetifTxResponse { id: c, status: NETIF_RSP_NULL }, &mut ids, &mut 0), Err(RingError::BadStatus(1)));
        assert_eq!(check_tx(NetifTxResponse { id: c, status: -100 }, &mut ids, &mut 0), Err(RingError::BadStatus(-100)));
        assert!(ids.contains(c), "a bad response completes nothing");
    }

    #[test]
    fn extra_info_slots_have_netif_h_s_layout_and_null_responses_are_counted() {
        let info = NetifExtraInfo { kind: XEN_NETIF_EXTRA_TYPE_GSO, gso_size: 1448, gso_type: 1, ..Default::default() };
        assert_eq!(extra_info_words(info), [1 | 1448 << 16, 1, 0]);
        assert_eq!(extra_info(&extra_info_words(info)), info);
        assert_eq!(core::mem::offset_of!(NetifExtraInfo, gso_size), 2);
        let mut ids = Outstanding::new(4);
        let mut extras = 1;
        let null = NetifTxResponse { id: 0xbeef, status: NETIF_RSP_NULL };
        assert_eq!(check_tx(null, &mut ids, &mut extras), Ok(TxDone::Null), "its id is not looked at");
        assert_eq!(extras, 0);
        assert_eq!(check_tx(null, &mut ids, &mut extras), Err(RingError::BadStatus(NETIF_RSP_NULL)), "one too many");
    }

    #[test]
    fn rx_responses_are_judged() {
        let mut ids = Outstanding::new(8);
        for _ in 0..8 {
            ids.take();
        }
        let ok = rx_response(&rx_words(0, 0, NETRXF_DATA_VALIDATED, 60));
        assert_eq!(check_rx(ok, &mut ids, RX_FLAGS_PLAIN), Ok(RxDone::Frame { id: 0, offset: 0, len: 60 }));
        let full = rx_response(&rx_words(1, 96, 0, 4000));
        assert_eq!(check_rx(full, &mut ids, RX_FLAGS_PLAIN), Ok(RxDone::Frame { id: 1, offset: 96, len: 4000 }));
        let dropped = rx_response(&rx_words(2, 0, 0, NETIF_RSP_ERROR));
        assert_eq!(check_rx(dropped, &mut ids, RX_FLAGS_PLAIN), Ok(RxDone::Empty { id: 2, status: -1 }));
        let empty = rx_response(&rx_words(3, 0, 0, 0));
        assert_eq!(check_rx(empty, &mut ids, RX_FLAGS_PLAIN), Ok(RxDone::Empty { id: 3, status: 0 }));
    }

    #[test]
    fn malformed_rx_responses_are_errors() {
        let mut ids = Outstanding::new(8);
        for _ in 0..8 {
            ids.take();
        }
        let cases = [
            (rx_words(0, 1, 0, 4096), RingError::BadExtent { offset: 1, len: 4096 }),
            (rx_words(0, 4096, 0, 1), RingError::BadExtent { offset: 4096, len: 1 }),
            (rx_words(0, 0xffff, 0, 0x7fff), RingError::BadExtent { offset: 0xffff, len: 0x7fff }),
            (rx_words(0, 0, 0, i16::MAX), RingError::BadExtent { offset: 0, len: 0x7fff }),
            (rx_words(0, 0, NETRXF_MORE_DATA, 60), RingError::BadFlags(NETRXF_MORE_DATA)),
            (rx_words(0, 0, NETRXF_EXTRA_INFO, 60), RingError::BadFlags(NETRXF_EXTRA_INFO)),
            (rx_words(0, 0, 0x8000, 60), RingError::BadFlags(0x8000)),
            (rx_words(8, 0, 0, 60), RingError::IdOutOfRange(8)),
            (rx_words(0xffff, 0, 0, 60), RingError::IdOutOfRange(0xffff)),
        ];
        for (words, expected) in cases {
            assert_eq!(check_rx(rx_response(&words), &mut ids, RX_FLAGS_PLAIN), Err(expected), "{words:x?}");
        }
        assert_eq!(ids.count(), 8, "no bad response completed an id");
        ids.complete(5).unwrap();
        let stale = rx_response(&rx_words(5, 0, 0, 60));
        assert_eq!(check_rx(stale, &mut ids, RX_FLAGS_PLAIN), Err(RingError::NotOutstanding(5)));
    }

    #[test]
    fn mac_keys_parse() {
        assert_eq!(parse_mac(b"00:16:3e:0a:Bc:ff"), Some([0, 0x16, 0x3e, 0x0a, 0xbc, 0xff]));
        assert_eq!(parse_mac(b"00:16:3e:0a:bc:ff\0"), Some([0, 0x16, 0x3e, 0x0a, 0xbc, 0xff]));
        for bad in [&b""[..], b"00:16:3e:0a:bc", b"00:16:3e:0a:bc:fg", b"00-16-3e-0a-bc-ff", b"00:16:3e:0a:bc:ff:"] {
            assert_eq!(parse_mac(bad), None, "{bad:?}");
        }
        assert_eq!(parse_mac("00:16:3e:0a:bc:é".as_bytes()), None);
    }
}
