//! Where the IP stack's frames lie in netfront's tx buffer pages, as pure arithmetic tested on
//! the host (`docs/net.md`, "Offloads": frames are written in place). A packet's bytes run
//! through its buffers in order, byte `o` in its page `o / PAGE_SIZE` at `o % PAGE_SIZE`;
//! buffers with consecutive ids have their pages at consecutive addresses when netfront got
//! them as one run.

use crate::net::ring::PAGE_SIZE;
use crate::xen::abi::netif::XEN_NETIF_NR_SLOTS_MIN;

/// The most data slots of a tx packet: one under netif.h's `XEN_NETIF_NR_SLOTS_MIN`, which
/// every backend takes.
pub const MAX_TX_SLOTS: usize = XEN_NETIF_NR_SLOTS_MIN - 1;

/// Free tx buffers a frame of `len` bytes needs: its pages, and one more, as a frame appended
/// to the pending packet may straddle a page.
pub fn tx_buffers_for(len: usize) -> u32 {
    len.div_ceil(PAGE_SIZE) as u32 + 1
}

/// Where a frame of `len` bytes that may continue a packet of `packet_len` bytes in tx
/// buffers `pages` (in packet order; byte `o` in page `o / PAGE_SIZE`) goes in place: its
/// header over the packet's last `header` bytes, so at packet offset `packet_len - header`.
/// Returns that offset and the buffers the frame needs after the packet's last one, or `None`
/// when the pages it spans are not consecutive ids (whose pages lie at consecutive addresses)
/// or the packet would outgrow `MAX_TX_SLOTS` pages.
pub fn continue_span(pages: &[u16], packet_len: usize, header: usize, len: usize) -> Option<(usize, u16)> {
    let at = packet_len.checked_sub(header)?;
    if len <= header || pages.is_empty() || packet_len > pages.len() * PAGE_SIZE {
        return None;
    }
    let (first, last) = (at / PAGE_SIZE, (at + len - 1) / PAGE_SIZE);
    let consecutive = (first..pages.len() - 1).all(|i| pages[i + 1] == pages[i].wrapping_add(1));
    if last >= MAX_TX_SLOTS || !consecutive {
        return None;
    }
    Some((at, (last + 1).saturating_sub(pages.len()) as u16))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xen::abi::netif::XEN_NETIF_MAX_TX_SIZE;
    use alloc::vec::Vec;

    const P: usize = PAGE_SIZE;

    #[test]
    fn a_continuing_frame_goes_where_its_payload_belongs() {
        // A packet of 5,000 bytes in buffers 3 and 4; a 1,514-byte segment with a 54-byte
        // header goes at 4,946, inside page 1.
        assert_eq!(continue_span(&[3, 4], 5000, 54, 1514), Some((4946, 0)));
        // Reaching into the next page, and two pages further.
        assert_eq!(continue_span(&[3, 4], 8000, 54, 1514), Some((7946, 1)));
        assert_eq!(continue_span(&[3, 4], 5000, 54, 2 * P), Some((4946, 2)));
        // The header over the end of one page, the payload in the next: both must be in a row.
        assert_eq!(continue_span(&[3, 4], P + 10, 54, 1514), Some((P - 44, 0)));
        assert_eq!(continue_span(&[3, 9], P + 10, 54, 1514), None);
        // Pages before the frame's first need not be in a row with the rest.
        assert_eq!(continue_span(&[3, 9, 10], 2 * P + 100, 54, 1514), Some((2 * P + 46, 0)));
        // The packet's last byte ends a page: the frame's payload starts the next.
        assert_eq!(continue_span(&[3], P, 54, 1514), Some((P - 54, 1)));
    }

    #[test]
    fn a_frame_that_cannot_continue_in_place_gets_no_span() {
        assert_eq!(continue_span(&[], 0, 54, 1514), None, "no packet");
        assert_eq!(continue_span(&[3], 40, 54, 1514), None, "a packet shorter than the header");
        assert_eq!(continue_span(&[3], 1000, 54, 54), None, "no payload");
        assert_eq!(continue_span(&[3], 2 * P, 54, 1514), None, "pages short of the packet");
        let pages: Vec<u16> = (0..MAX_TX_SLOTS as u16).collect();
        let full = MAX_TX_SLOTS * P;
        assert_eq!(continue_span(&pages, full - 100, 54, 90), Some((full - 154, 0)));
        assert_eq!(continue_span(&pages, full - 100, 54, 200), None, "past the slots a backend takes");
    }

    #[test]
    fn a_frame_needs_its_pages_and_one_more() {
        assert_eq!(tx_buffers_for(60), 2);
        assert_eq!(tx_buffers_for(1514), 2);
        assert_eq!(tx_buffers_for(P + 1), 3);
        assert_eq!(tx_buffers_for(XEN_NETIF_MAX_TX_SIZE), 17);
    }
}
