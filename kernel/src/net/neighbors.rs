//! Which IPv4 neighbours on a vif have been heard from (their ARP frames), so that a connect to
//! an on-link address nobody has fails as on Linux instead of waiting for ever (`docs/net.md`,
//! "Sockets as Linux programs see them").
//!
//! smoltcp 0.14 asks for at most one neighbour a second per interface and a connection whose
//! neighbour is missing asks again every second, so one or two connects to dead addresses took
//! every turn and a connect to a live neighbour whose MAC was not known never got its ARP
//! request out. Linux resolves each neighbour on its own (3 requests a second apart) and fails
//! the connect with `EHOSTUNREACH` when none is answered. The stack does the same here: while a
//! connection to an on-link IPv4 address is in SYN-SENT it sends its own ARP request for it
//! every second ([`arp_request`]); smoltcp learns the MAC from the reply as from any ARP frame
//! to the guest, and [`Heard`] records, from the frames the vif receives, which addresses have
//! answered. After [`ARP_TRIES`] requests without a word from the address, the connect fails.

use alloc::vec::Vec;

/// How many ARP requests a connect sends, a second apart, before it gives up on an on-link
/// neighbour that never answered (Linux's `mcast_solicit`, 3).
pub const ARP_TRIES: u32 = 3;
/// How long, after the first request, the connect waits for an answer in all.
pub const ARP_WAIT_NS: u64 = ARP_TRIES as u64 * 1_000_000_000;
/// The most addresses remembered; the oldest sighting goes first.
const CAPACITY: usize = 64;

/// When (monotonic ns) each IPv4 address was last heard from in an ARP frame on one vif.
#[derive(Default)]
pub struct Heard(Vec<([u8; 4], u64)>);

impl Heard {
    /// Notes the sender of `frame`, an Ethernet frame the vif received, if it is an ARP frame
    /// (request or reply) for IPv4 over Ethernet with a sender address.
    pub fn observe(&mut self, frame: &[u8], now: u64) {
        let Some(sender) = arp_sender(frame) else { return };
        if let Some(entry) = self.0.iter_mut().find(|(a, _)| *a == sender) {
            entry.1 = now;
            return;
        }
        if self.0.len() == CAPACITY {
            let oldest = self.0.iter().enumerate().min_by_key(|(_, (_, t))| *t).map(|(i, _)| i);
            if let Some(i) = oldest {
                self.0.swap_remove(i);
            }
        }
        self.0.push((sender, now));
    }

    /// Whether `addr` was heard from at or after `since`.
    pub fn heard_since(&self, addr: [u8; 4], since: u64) -> bool {
        self.0.iter().any(|&(a, t)| a == addr && t >= since)
    }
}

/// The sender protocol address of an ARP frame for IPv4 over Ethernet (RFC 826), if `frame`
/// is one (any opcode) and the address is not 0.0.0.0 (an ARP probe).
fn arp_sender(frame: &[u8]) -> Option<[u8; 4]> {
    let arp = frame.get(14..42)?;
    let ethertype = [frame[12], frame[13]];
    // Ethernet, IPv4, 6-byte and 4-byte addresses.
    if ethertype != [0x08, 0x06] || arp[0..6] != [0, 1, 8, 0, 6, 4] {
        return None;
    }
    let sender: [u8; 4] = arp[14..18].try_into().ok()?;
    (sender != [0; 4]).then_some(sender)
}

/// A broadcast ARP request (RFC 826) from `our_mac`/`ours` for `target`.
pub fn arp_request(our_mac: [u8; 6], ours: [u8; 4], target: [u8; 4]) -> [u8; 42] {
    let mut f = [0u8; 42];
    f[0..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&our_mac);
    f[12..14].copy_from_slice(&[0x08, 0x06]);
    // Ethernet, IPv4, address lengths 6 and 4, opcode 1 (request).
    f[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    f[22..28].copy_from_slice(&our_mac);
    f[28..32].copy_from_slice(&ours);
    // Target hardware address unknown (zero), then the target's address.
    f[38..42].copy_from_slice(&target);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x00, 0x16, 0x3e, 1, 2, 3];

    #[test]
    fn an_arp_frame_s_sender_is_heard_and_nothing_else_is() {
        let mut heard = Heard::default();
        let request = arp_request(MAC, [10, 99, 0, 1], [10, 99, 0, 7]);
        heard.observe(&request, 5);
        assert!(heard.heard_since([10, 99, 0, 1], 5));
        assert!(!heard.heard_since([10, 99, 0, 1], 6));
        assert!(!heard.heard_since([10, 99, 0, 7], 0), "the target is not the sender");
        // A reply (opcode 2) counts the same.
        let mut reply = request;
        reply[21] = 2;
        reply[28..32].copy_from_slice(&[10, 99, 0, 9]);
        heard.observe(&reply, 9);
        assert!(heard.heard_since([10, 99, 0, 9], 9));
        // Not ARP, IPv6 over ARP, cut short, or a probe from 0.0.0.0: nothing.
        let mut ipv4 = request;
        ipv4[12..14].copy_from_slice(&[0x08, 0x00]);
        let mut odd = request;
        odd[16..18].copy_from_slice(&[0x86, 0xdd]);
        let mut probe = request;
        probe[28..32].copy_from_slice(&[0; 4]);
        let before = heard.0.len();
        for frame in [&ipv4[..], &odd[..], &request[..41], &probe[..], &[][..]] {
            heard.observe(frame, 20);
        }
        assert_eq!(heard.0.len(), before);
        assert!(!heard.heard_since([0, 0, 0, 0], 0));
    }

    #[test]
    fn the_table_keeps_the_newest_sightings() {
        let mut heard = Heard::default();
        for i in 0..CAPACITY as u64 + 10 {
            let frame = arp_request(MAC, [10, 0, (i >> 8) as u8, i as u8], [10, 0, 0, 1]);
            heard.observe(&frame, 100 + i);
        }
        assert_eq!(heard.0.len(), CAPACITY);
        assert!(!heard.heard_since([10, 0, 0, 0], 0), "the oldest went first");
        assert!(heard.heard_since([10, 0, 0, CAPACITY as u8 + 9], 0));
    }

    #[test]
    fn a_request_is_a_well_formed_broadcast() {
        let f = arp_request(MAC, [10, 99, 0, 2], [10, 99, 0, 1]);
        assert_eq!(&f[0..6], &[0xff; 6]);
        assert_eq!(&f[6..12], &MAC);
        assert_eq!(&f[12..22], &[8, 6, 0, 1, 8, 0, 6, 4, 0, 1]);
        assert_eq!(&f[22..28], &MAC);
        assert_eq!(&f[28..32], &[10, 99, 0, 2]);
        assert_eq!(&f[32..38], &[0; 6]);
        assert_eq!(&f[38..42], &[10, 99, 0, 1]);
        assert_eq!(arp_sender(&f), Some([10, 99, 0, 2]));
    }
}
