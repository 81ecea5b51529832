//! Assembly of received packets that span several rx slots (`feature-sg`, GSO), as safe code
//! over the responses' words (`xen/include/public/io/netif.h`, "Receive path").
//!
//! With `feature-sg` a packet comes as a chain of responses, each but the last flagged
//! `NETRXF_more_data`; with GSO its first response may be flagged `NETRXF_extra_info`, and
//! the next slot is then an extra-info slot (`netif_extra_info`), which has no id: the
//! backend consumed the request at the same ring index, so the rx buffer posted there comes
//! back with it. [`RxAssembler`] takes the responses in ring order and hands out whole
//! packets; every slot is judged (id, status, offset and length, flags, extra-info type, slot
//! count and total length), and a bad one is a [`RingError`], which disables the device.

use crate::net::ring::{Outstanding, RX_FLAGS_GSO, RX_FLAGS_PLAIN, RingError, RxDone, check_rx, extra_info, rx_response};
use crate::xen::abi::netif::*;

/// The most data slots of one received packet: `XEN_NETIF_NR_SLOTS_MIN`, which holds the
/// largest GSO packet (64 KiB and its header) with room to spare.
pub const MAX_RX_SLOTS: usize = XEN_NETIF_NR_SLOTS_MIN;
/// The longest received packet: an IP packet of 64 KiB and its Ethernet header.
pub const MAX_RX_PACKET: usize = 14 + 0xffff;

/// One data slot of a packet: the rx buffer's id and where the data lies in its page.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Slot {
    pub id: u16,
    pub offset: u16,
    pub len: u16,
}

/// A whole received packet: its data slots in order and the first response's flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxPacket {
    slots: [Slot; MAX_RX_SLOTS],
    count: usize,
    /// Bytes over all slots.
    pub len: usize,
    /// `NETRXF_*` of the first response.
    pub flags: u16,
    /// The GSO extra-info's segment size, if one came.
    pub gso_size: Option<u16>,
}

impl RxPacket {
    fn new(flags: u16) -> RxPacket {
        RxPacket { slots: [Slot::default(); MAX_RX_SLOTS], count: 0, len: 0, flags, gso_size: None }
    }

    /// The data slots, in order.
    pub fn slots(&self) -> &[Slot] {
        &self.slots[..self.count]
    }

    fn push(&mut self, slot: Slot) -> Result<(), RingError> {
        if self.count == MAX_RX_SLOTS {
            return Err(RingError::TooManySlots);
        }
        self.slots[self.count] = slot;
        self.count += 1;
        self.len += slot.len as usize;
        if self.len > MAX_RX_PACKET {
            return Err(RingError::TooLong(self.len));
        }
        Ok(())
    }
}

/// What one response gave.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxStep {
    /// A buffer to post again at once: one that came back empty, or under an extra-info slot.
    pub repost: Option<u16>,
    /// A packet that is now whole (its buffers are posted again after it is copied out).
    pub packet: Option<RxPacket>,
}

/// What the assembler expects next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// The first slot of a packet.
    First,
    /// An extra-info slot; then continuation slots if `more`.
    Extra { more: bool },
    /// A continuation slot.
    More,
}

/// Builds packets from the rx responses, in ring order.
pub struct RxAssembler {
    /// `feature-sg` and `feature-gso-tcpv4` were asked for: multi-slot packets and GSO
    /// extra-info slots are allowed.
    gso: bool,
    expect: Expect,
    packet: RxPacket,
}

impl RxAssembler {
    /// An assembler for a frontend that asked for GSO (and scatter-gather), or for neither.
    pub fn new(gso: bool) -> RxAssembler {
        RxAssembler { gso, expect: Expect::First, packet: RxPacket::new(0) }
    }

    /// Whether a packet is partly taken.
    pub fn in_packet(&self) -> bool {
        self.expect != Expect::First
    }

    /// Takes the next response's `words`; `posted` is the id of the rx buffer posted at the
    /// response's ring index (the one an extra-info slot returns).
    pub fn take(&mut self, words: &[u32], posted: u16, ids: &mut Outstanding) -> Result<RxStep, RingError> {
        let step = match self.expect {
            Expect::First => self.first(words, ids)?,
            Expect::Extra { more } => self.extra(words, posted, more, ids)?,
            Expect::More => self.more(words, ids)?,
        };
        // netif.h: every slot of a packet is a posted request; a packet that still expects a
        // slot while none is posted can never end.
        if self.in_packet() && ids.count() == 0 {
            return Err(RingError::MoreDataOnLastSlot);
        }
        Ok(step)
    }

    fn allowed(&self) -> u16 {
        if self.gso { RX_FLAGS_GSO } else { RX_FLAGS_PLAIN }
    }

    fn first(&mut self, words: &[u32], ids: &mut Outstanding) -> Result<RxStep, RingError> {
        let rsp = rx_response(words);
        let chained = rsp.flags & (NETRXF_MORE_DATA | NETRXF_EXTRA_INFO) != 0;
        match check_rx(rsp, ids, self.allowed())? {
            // An error response that announces more slots is a protocol error.
            RxDone::Empty { status, .. } if status < 0 && chained => Err(RingError::BadContinuation(status)),
            RxDone::Empty { id, .. } if !chained => Ok(RxStep { repost: Some(id), packet: None }),
            RxDone::Empty { id, .. } => self.first_slot(Slot { id, offset: 0, len: 0 }, rsp.flags),
            RxDone::Frame { id, offset, len } => self.first_slot(Slot { id, offset, len }, rsp.flags),
        }
    }

    fn first_slot(&mut self, slot: Slot, flags: u16) -> Result<RxStep, RingError> {
        self.packet = RxPacket::new(flags);
        self.packet.push(slot)?;
        let more = flags & NETRXF_MORE_DATA != 0;
        self.expect = if flags & NETRXF_EXTRA_INFO != 0 {
            Expect::Extra { more }
        } else if more {
            Expect::More
        } else {
            Expect::First
        };
        Ok(self.done(None))
    }

    fn extra(&mut self, words: &[u32], posted: u16, more: bool, ids: &mut Outstanding) -> Result<RxStep, RingError> {
        ids.complete(posted)?;
        let info = extra_info(words);
        let bad = RingError::BadExtraInfo { kind: info.kind, gso_type: info.gso_type };
        if info.kind != XEN_NETIF_EXTRA_TYPE_GSO
            || info.gso_type != XEN_NETIF_GSO_TYPE_TCPV4
            || info.gso_size == 0
            || self.packet.gso_size.is_some()
        {
            return Err(bad);
        }
        self.packet.gso_size = Some(info.gso_size);
        self.expect = if info.flags & XEN_NETIF_EXTRA_FLAG_MORE != 0 {
            Expect::Extra { more }
        } else if more {
            Expect::More
        } else {
            Expect::First
        };
        Ok(self.done(Some(posted)))
    }

    fn more(&mut self, words: &[u32], ids: &mut Outstanding) -> Result<RxStep, RingError> {
        let rsp = rx_response(words);
        if rsp.flags & NETRXF_EXTRA_INFO != 0 {
            return Err(RingError::BadFlags(rsp.flags));
        }
        let slot = match check_rx(rsp, ids, self.allowed())? {
            RxDone::Empty { status, .. } if status < 0 => return Err(RingError::BadContinuation(status)),
            RxDone::Empty { id, .. } => Slot { id, offset: 0, len: 0 },
            RxDone::Frame { id, offset, len } => Slot { id, offset, len },
        };
        self.packet.push(slot)?;
        if rsp.flags & NETRXF_MORE_DATA == 0 {
            self.expect = Expect::First;
        }
        Ok(self.done(None))
    }

    /// The step's result: the packet if it is whole now.
    fn done(&self, repost: Option<u16>) -> RxStep {
        let packet = (self.expect == Expect::First).then_some(self.packet);
        RxStep { repost, packet }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::ring::extra_info_words;

    fn rx(id: u16, offset: u16, flags: u16, status: i16) -> [u32; 2] {
        [id as u32 | (offset as u32) << 16, flags as u32 | (status as u16 as u32) << 16]
    }

    fn gso(size: u16, kind: u8, gso_type: u8, flags: u8) -> [u32; 2] {
        let w = extra_info_words(NetifExtraInfo { kind, flags, gso_size: size, gso_type, ..Default::default() });
        [w[0], w[1]]
    }

    fn posted(n: u16) -> Outstanding {
        let mut ids = Outstanding::new(n);
        for _ in 0..n {
            ids.take();
        }
        ids
    }

    /// Feeds `slots` (words, id posted at that index) and returns the steps or the first error.
    fn feed(asm: &mut RxAssembler, ids: &mut Outstanding, slots: &[([u32; 2], u16)]) -> Result<Vec<RxStep>, RingError> {
        slots.iter().map(|(w, p)| asm.take(w, *p, ids)).collect()
    }

    #[test]
    fn a_gso_packet_over_several_slots_is_assembled() {
        let mut ids = posted(32);
        let mut asm = RxAssembler::new(true);
        let flags = NETRXF_MORE_DATA | NETRXF_EXTRA_INFO | NETRXF_CSUM_BLANK | NETRXF_DATA_VALIDATED;
        let steps = feed(
            &mut asm,
            &mut ids,
            &[
                (rx(0, 0, flags, 4096), 0),
                (gso(1448, XEN_NETIF_EXTRA_TYPE_GSO, XEN_NETIF_GSO_TYPE_TCPV4, 0), 1),
                (rx(2, 0, NETRXF_MORE_DATA, 4096), 2),
                (rx(3, 0, 0, 100), 3),
            ],
        )
        .unwrap();
        assert_eq!(steps[1].repost, Some(1), "the extra-info slot's buffer comes back");
        assert!(steps[..3].iter().all(|s| s.packet.is_none()));
        let p = steps[3].packet.unwrap();
        assert_eq!(p.len, 8292);
        assert_eq!(p.flags, flags);
        assert_eq!(p.gso_size, Some(1448));
        let ids_of: Vec<u16> = p.slots().iter().map(|s| s.id).collect();
        assert_eq!(ids_of, [0, 2, 3]);
        assert_eq!(ids.count(), 28);
        // A plain one-slot frame afterwards.
        let step = asm.take(&rx(4, 10, NETRXF_DATA_VALIDATED, 60), 4, &mut ids).unwrap();
        assert_eq!(step.packet.unwrap().slots(), [Slot { id: 4, offset: 10, len: 60 }]);
    }

    #[test]
    fn malformed_multi_slot_responses_are_errors() {
        let more = NETRXF_MORE_DATA;
        let extra = NETRXF_EXTRA_INFO;
        let gso_ok = gso(1448, XEN_NETIF_EXTRA_TYPE_GSO, XEN_NETIF_GSO_TYPE_TCPV4, 0);
        let cases: [(&str, bool, Vec<([u32; 2], u16)>, RingError); 12] = [
            ("more_data without sg", false, vec![(rx(0, 0, more, 60), 0)], RingError::BadFlags(more)),
            ("extra_info without gso", false, vec![(rx(0, 0, extra, 60), 0)], RingError::BadFlags(extra)),
            (
                "a continuation that is an error",
                true,
                vec![(rx(0, 0, more, 4096), 0), (rx(1, 0, 0, NETIF_RSP_ERROR), 1)],
                RingError::BadContinuation(-1),
            ),
            (
                "an error status that announces more",
                true,
                vec![(rx(0, 0, more, NETIF_RSP_ERROR), 0)],
                RingError::BadContinuation(-1),
            ),
            (
                "extra-info of an unknown type",
                true,
                vec![(rx(0, 0, extra, 60), 0), (gso(0, 4, 0, 0), 1)],
                RingError::BadExtraInfo { kind: 4, gso_type: 0 },
            ),
            (
                "a GSO type not asked for (TCPv6)",
                true,
                vec![(rx(0, 0, extra, 60), 0), (gso(1440, XEN_NETIF_EXTRA_TYPE_GSO, 2, 0), 1)],
                RingError::BadExtraInfo { kind: 1, gso_type: 2 },
            ),
            (
                "a second GSO extra-info",
                true,
                vec![
                    (rx(0, 0, extra, 60), 0),
                    (gso(1448, XEN_NETIF_EXTRA_TYPE_GSO, 1, XEN_NETIF_EXTRA_FLAG_MORE), 1),
                    (gso_ok, 2),
                ],
                RingError::BadExtraInfo { kind: 1, gso_type: 1 },
            ),
            (
                "a size past a page",
                true,
                vec![(rx(0, 0, more, 4096), 0), (rx(1, 0, 0, 4097), 1)],
                RingError::BadExtent { offset: 0, len: 4097 },
            ),
            (
                "offset and size past a page",
                true,
                vec![(rx(0, 0, more, 4096), 0), (rx(1, 100, 0, 4000), 1)],
                RingError::BadExtent { offset: 100, len: 4000 },
            ),
            (
                "extra_info on a continuation",
                true,
                vec![(rx(0, 0, more, 4096), 0), (rx(1, 0, extra, 60), 1)],
                RingError::BadFlags(extra),
            ),
            (
                "a continuation for a buffer not posted",
                true,
                vec![(rx(0, 0, more, 4096), 0), (rx(0, 0, 0, 60), 1)],
                RingError::NotOutstanding(0),
            ),
            (
                "an extra-info slot where no buffer was posted",
                true,
                vec![(rx(0, 0, extra, 60), 0), (gso_ok, 0)],
                RingError::NotOutstanding(0),
            ),
        ];
        for (name, gso_on, slots, want) in cases {
            let mut ids = posted(32);
            let mut asm = RxAssembler::new(gso_on);
            assert_eq!(feed(&mut asm, &mut ids, &slots).unwrap_err(), want, "{name}");
        }
    }

    #[test]
    fn too_many_slots_or_bytes_and_more_data_on_the_last_buffer_are_errors() {
        let mut ids = posted(64);
        let mut asm = RxAssembler::new(true);
        for id in 0..MAX_RX_SLOTS as u16 - 1 {
            asm.take(&rx(id, 0, NETRXF_MORE_DATA, 1000), id, &mut ids).unwrap();
        }
        let last = MAX_RX_SLOTS as u16 - 1;
        assert_eq!(asm.take(&rx(last, 0, NETRXF_MORE_DATA, 1000), last, &mut ids), Ok(RxStep::default()));
        assert_eq!(asm.take(&rx(last + 1, 0, 0, 10), last + 1, &mut ids), Err(RingError::TooManySlots));

        let mut ids = posted(64);
        let mut asm = RxAssembler::new(true);
        for id in 0..16 {
            asm.take(&rx(id, 0, NETRXF_MORE_DATA, 4096), id, &mut ids).unwrap();
        }
        assert_eq!(asm.take(&rx(16, 0, 0, (MAX_RX_PACKET - 16 * 4096 + 1) as i16), 16, &mut ids), Err(RingError::TooLong(MAX_RX_PACKET + 1)));

        // Every posted buffer used and the last one still says more.
        let mut ids = posted(2);
        let mut asm = RxAssembler::new(true);
        asm.take(&rx(0, 0, NETRXF_MORE_DATA, 4096), 0, &mut ids).unwrap();
        assert_eq!(asm.take(&rx(1, 0, NETRXF_MORE_DATA, 4096), 1, &mut ids), Err(RingError::MoreDataOnLastSlot));
    }

    #[test]
    fn empty_buffers_come_back_for_posting() {
        let mut ids = posted(4);
        let mut asm = RxAssembler::new(true);
        let step = asm.take(&rx(2, 0, 0, NETIF_RSP_DROPPED), 2, &mut ids).unwrap();
        assert_eq!(step, RxStep { repost: Some(2), packet: None });
        assert!(!ids.contains(2));
        assert!(!asm.in_packet());
    }
}
