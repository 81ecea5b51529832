//! The xenstore ring page (`struct xenstore_domain_interface`, `io/xs_wire.h`): two 1 KiB
//! byte rings, requests to the daemon and replies from it, each with free-running producer
//! and consumer indexes.
//!
//! The page is shared with the daemon, which may write anything into it at any time: every
//! index is read once, and a distance between producer and consumer over the ring's size is
//! reported as corruption instead of being used.

use core::sync::atomic::{AtomicU8, AtomicU32, Ordering, fence};

/// `XENSTORE_RING_SIZE`.
pub const RING_SIZE: u32 = 1024;

/// `struct xenstore_domain_interface`.
#[repr(C)]
pub struct XenstoreDomainInterface {
    pub req: [AtomicU8; RING_SIZE as usize],
    pub rsp: [AtomicU8; RING_SIZE as usize],
    pub req_cons: AtomicU32,
    pub req_prod: AtomicU32,
    pub rsp_cons: AtomicU32,
    pub rsp_prod: AtomicU32,
    pub server_features: AtomicU32,
    pub connection: AtomicU32,
    pub error: AtomicU32,
}
const _: () = assert!(core::mem::offset_of!(XenstoreDomainInterface, req_cons) == 2048);
const _: () = assert!(core::mem::offset_of!(XenstoreDomainInterface, error) == 2072);

/// The daemon left the indexes in a state no correct daemon can.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Corrupt;

impl XenstoreDomainInterface {
    /// A zeroed page, for tests.
    pub const fn new() -> Self {
        XenstoreDomainInterface {
            req: [const { AtomicU8::new(0) }; RING_SIZE as usize],
            rsp: [const { AtomicU8::new(0) }; RING_SIZE as usize],
            req_cons: AtomicU32::new(0),
            req_prod: AtomicU32::new(0),
            rsp_cons: AtomicU32::new(0),
            rsp_prod: AtomicU32::new(0),
            server_features: AtomicU32::new(0),
            connection: AtomicU32::new(0),
            error: AtomicU32::new(0),
        }
    }

    /// Copies as much of `bytes` as there is room for into the request ring; returns how much
    /// (0 when full). The caller notifies the daemon after a non-zero write.
    pub fn write_request(&self, bytes: &[u8]) -> Result<usize, Corrupt> {
        let cons = self.req_cons.load(Ordering::Acquire);
        let prod = self.req_prod.load(Ordering::Relaxed);
        let used = prod.wrapping_sub(cons);
        if used > RING_SIZE {
            return Err(Corrupt);
        }
        let take = ((RING_SIZE - used) as usize).min(bytes.len());
        for (i, &byte) in bytes[..take].iter().enumerate() {
            let at = prod.wrapping_add(i as u32) % RING_SIZE;
            self.req[at as usize].store(byte, Ordering::Relaxed);
        }
        // The bytes must be visible before the index that publishes them.
        fence(Ordering::Release);
        self.req_prod.store(prod.wrapping_add(take as u32), Ordering::Release);
        Ok(take)
    }

    /// Copies up to `buf.len()` reply bytes out of the reply ring; returns how many (0 when
    /// empty). The caller notifies the daemon after a non-zero read, which freed room.
    pub fn read_reply(&self, buf: &mut [u8]) -> Result<usize, Corrupt> {
        let prod = self.rsp_prod.load(Ordering::Acquire);
        let cons = self.rsp_cons.load(Ordering::Relaxed);
        let avail = prod.wrapping_sub(cons);
        if avail > RING_SIZE {
            return Err(Corrupt);
        }
        // The bytes are read only after the index that published them.
        fence(Ordering::Acquire);
        let take = (avail as usize).min(buf.len());
        for (i, slot) in buf[..take].iter_mut().enumerate() {
            let at = cons.wrapping_add(i as u32) % RING_SIZE;
            *slot = self.rsp[at as usize].load(Ordering::Relaxed);
        }
        // Our reads of the bytes are done before the daemon may reuse them.
        fence(Ordering::Release);
        self.rsp_cons.store(cons.wrapping_add(take as u32), Ordering::Release);
        Ok(take)
    }

    /// Whether the daemon has reply bytes waiting (a corrupt ring counts as having some, so
    /// that the reader finds out).
    pub fn reply_pending(&self) -> bool {
        self.rsp_prod.load(Ordering::Acquire) != self.rsp_cons.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::boxed::Box;

    /// Plays the daemon: takes requests, puts replies.
    fn daemon_take(ring: &XenstoreDomainInterface, n: usize) -> alloc::vec::Vec<u8> {
        let cons = ring.req_cons.load(Ordering::Relaxed);
        let out = (0..n).map(|i| ring.req[(cons as usize + i) % 1024].load(Ordering::Relaxed)).collect();
        ring.req_cons.store(cons.wrapping_add(n as u32), Ordering::Relaxed);
        out
    }

    fn daemon_put(ring: &XenstoreDomainInterface, bytes: &[u8]) {
        let prod = ring.rsp_prod.load(Ordering::Relaxed);
        for (i, &b) in bytes.iter().enumerate() {
            ring.rsp[(prod as usize + i) % 1024].store(b, Ordering::Relaxed);
        }
        ring.rsp_prod.store(prod.wrapping_add(bytes.len() as u32), Ordering::Relaxed);
    }

    #[test]
    fn requests_fill_the_ring_and_wrap() {
        let ring = Box::new(XenstoreDomainInterface::new());
        ring.req_cons.store(u32::MAX - 10, Ordering::Relaxed);
        ring.req_prod.store(u32::MAX - 10, Ordering::Relaxed);
        let data: alloc::vec::Vec<u8> = (0..1500u32).map(|i| i as u8).collect();
        assert_eq!(ring.write_request(&data), Ok(1024));
        assert_eq!(ring.write_request(&data[1024..]), Ok(0), "full");
        assert_eq!(daemon_take(&ring, 1024), &data[..1024]);
        assert_eq!(ring.write_request(&data[1024..]), Ok(476));
        assert_eq!(daemon_take(&ring, 476), &data[1024..]);
    }

    #[test]
    fn replies_come_out_in_order_across_the_wrap() {
        let ring = Box::new(XenstoreDomainInterface::new());
        ring.rsp_cons.store(1000, Ordering::Relaxed);
        ring.rsp_prod.store(1000, Ordering::Relaxed);
        assert!(!ring.reply_pending());
        daemon_put(&ring, b"0123456789abcdefghijklmnopqrstuvwxyz");
        assert!(ring.reply_pending());
        let mut buf = [0; 10];
        assert_eq!(ring.read_reply(&mut buf), Ok(10));
        assert_eq!(&buf, b"0123456789");
        let mut rest = [0; 64];
        assert_eq!(ring.read_reply(&mut rest), Ok(26));
        assert_eq!(&rest[..26], b"abcdefghijklmnopqrstuvwxyz");
        assert_eq!(ring.read_reply(&mut rest), Ok(0));
    }

    #[test]
    fn a_hostile_producer_index_is_corruption_not_a_read() {
        let ring = Box::new(XenstoreDomainInterface::new());
        ring.rsp_prod.store(RING_SIZE + 1, Ordering::Relaxed);
        let mut buf = [0; 4096];
        assert_eq!(ring.read_reply(&mut buf), Err(Corrupt));
        assert_eq!(ring.rsp_cons.load(Ordering::Relaxed), 0, "nothing consumed");
        ring.rsp_prod.store(0u32.wrapping_sub(1), Ordering::Relaxed);
        assert_eq!(ring.read_reply(&mut buf), Err(Corrupt));
    }

    #[test]
    fn a_hostile_consumer_index_is_corruption_not_a_write() {
        let ring = Box::new(XenstoreDomainInterface::new());
        ring.req_cons.store(5000, Ordering::Relaxed);
        assert_eq!(ring.write_request(b"x"), Err(Corrupt));
        assert_eq!(ring.req_prod.load(Ordering::Relaxed), 0);
    }
}
