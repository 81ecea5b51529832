//! Checksum offload and TCP segment coalescing for netfront, as safe code over Ethernet frames
//! (`docs/net.md`, "Offloads").
//!
//! The IP stack leaves TCP and UDP checksums to the device. On tx, [`tx_checksum`] writes the
//! pseudo-header sum into the checksum field and says the frame goes out `NETTXF_csum_blank`
//! (the backend completes it), or computes the whole checksum when the backend cannot. On rx,
//! [`rx_checksum`] passes frames the backend validated, completes those it left blank, and
//! verifies the rest; a frame that fails is dropped by the caller. [`Coalescer`] joins
//! consecutive segments of one TCP/IPv4 flow (MSS-sized ones, or ones the stack built longer
//! for the device to cut) into one GSO packet, which the backend cuts at the MSS. Every frame
//! here comes from the stack or the backend: nothing panics on it.

use smoltcp::wire::checksum;
use smoltcp::wire::{IpAddress, IpEndpoint, IpProtocol, Ipv4Address, Ipv6Address};

/// Ethernet header length.
const ETH: usize = 14;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const IPV6_HEADER: usize = 40;
pub const TCP_FLAG_FIN: u8 = 0x01;
pub const TCP_FLAG_SYN: u8 = 0x02;
const TCP_FLAG_PSH: u8 = 0x08;
pub const TCP_FLAG_ACK: u8 = 0x10;

/// Where a frame's TCP or UDP header lies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct L4 {
    /// IPv6 (else IPv4).
    v6: bool,
    tcp: bool,
    /// Offset of the TCP/UDP header in the frame.
    at: usize,
    /// Length of the TCP/UDP header and payload.
    len: usize,
}

impl L4 {
    /// Offset of the checksum field in the frame.
    fn csum_at(&self) -> usize {
        self.at + if self.tcp { 16 } else { 6 }
    }

    fn protocol(&self) -> IpProtocol {
        if self.tcp { IpProtocol::Tcp } else { IpProtocol::Udp }
    }
}

/// What an IP packet in a frame holds, as far as checksums go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Parsed {
    /// A TCP or UDP segment whose checksum can be computed.
    Checkable(L4),
    /// TCP or UDP whose checksum cannot be computed here (an IPv4 fragment, an IPv6 fragment
    /// header, a length that does not add up).
    Unverifiable,
    /// Anything else (ARP, ICMP, which the stack checks itself).
    Other,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn is_l4(proto: u8) -> bool {
    proto == 6 || proto == 17
}

fn parse(frame: &[u8]) -> Parsed {
    match be16(frame, 12) {
        Some(ETHERTYPE_IPV4) => parse_v4(frame),
        Some(ETHERTYPE_IPV6) => parse_v6(frame),
        _ => Parsed::Other,
    }
}

fn parse_v4(frame: &[u8]) -> Parsed {
    let Some(&vihl) = frame.get(ETH) else { return Parsed::Other };
    let Some(&proto) = frame.get(ETH + 9) else { return Parsed::Other };
    if !is_l4(proto) {
        return Parsed::Other;
    }
    let ihl = (vihl & 0xf) as usize * 4;
    let total = be16(frame, ETH + 2).unwrap_or(0) as usize;
    let frag = be16(frame, ETH + 6).unwrap_or(0xffff);
    // More fragments, or a fragment offset: the checksum covers the whole datagram.
    if vihl >> 4 != 4 || ihl < 20 || total < ihl || ETH + total > frame.len() || frag & 0x3fff != 0 {
        return Parsed::Unverifiable;
    }
    l4(false, proto == 6, ETH + ihl, total - ihl)
}

fn parse_v6(frame: &[u8]) -> Parsed {
    let payload = be16(frame, ETH + 4).unwrap_or(0) as usize;
    let Some(mut next) = frame.get(ETH + 6).copied() else { return Parsed::Other };
    if ETH + IPV6_HEADER + payload > frame.len() {
        return if frame.len() < ETH + IPV6_HEADER { Parsed::Other } else { Parsed::Unverifiable };
    }
    let end = ETH + IPV6_HEADER + payload;
    let mut at = ETH + IPV6_HEADER;
    // Hop-by-hop, routing and destination options headers ((len + 1) * 8 bytes) may come
    // before the upper layer; a fragment header (44) means the checksum is not computable.
    for _ in 0..4 {
        match next {
            6 | 17 => return l4(true, next == 6, at, end - at),
            0 | 43 | 60 => {
                let (Some(&n), Some(&len)) = (frame.get(at), frame.get(at + 1)) else { return Parsed::Unverifiable };
                next = n;
                at += (len as usize + 1) * 8;
                if at > end {
                    return Parsed::Unverifiable;
                }
            }
            44 => return Parsed::Unverifiable,
            _ => return Parsed::Other,
        }
    }
    Parsed::Unverifiable
}

fn l4(v6: bool, tcp: bool, at: usize, len: usize) -> Parsed {
    let min = if tcp { 20 } else { 8 };
    if len < min { Parsed::Unverifiable } else { Parsed::Checkable(L4 { v6, tcp, at, len }) }
}

/// The pseudo-header's sum (not complemented) for `l4` with `len` bytes of upper layer.
fn pseudo(frame: &[u8], l4: &L4, len: usize) -> u16 {
    if l4.v6 {
        let src: [u8; 16] = frame[ETH + 8..ETH + 24].try_into().unwrap_or([0; 16]);
        let dst: [u8; 16] = frame[ETH + 24..ETH + 40].try_into().unwrap_or([0; 16]);
        checksum::pseudo_header_v6(&Ipv6Address::from(src), &Ipv6Address::from(dst), l4.protocol(), len as u32)
    } else {
        let a = |at: usize| Ipv4Address::new(frame[at], frame[at + 1], frame[at + 2], frame[at + 3]);
        checksum::pseudo_header_v4(&a(ETH + 12), &a(ETH + 16), l4.protocol(), len as u32)
    }
}

/// The complete checksum of `l4`'s segment, the field taken as zero.
fn full_checksum(frame: &[u8], l4: &L4) -> u16 {
    let seg = &frame[l4.at..l4.at + l4.len];
    let field = be16(frame, l4.csum_at()).unwrap_or(0);
    // The sum over the segment includes the field's present value: take it out again.
    let sum = checksum::combine(&[pseudo(frame, l4, l4.len), checksum::data(seg), !field]);
    let c = !sum;
    // A UDP checksum that comes to 0 is sent as all ones (0 means none, RFC 768).
    if c == 0 && !l4.tcp { 0xffff } else { c }
}

fn put16(frame: &mut [u8], at: usize, v: u16) {
    frame[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// Prepares the TCP or UDP checksum of an outgoing frame the stack built with the field zero:
/// with `offload` (for IPv4; IPv6 is always computed here), writes the pseudo-header sum and
/// returns true (send it `NETTXF_csum_blank | NETTXF_data_validated`); otherwise computes
/// the whole checksum and returns false. Other frames are left alone.
///
/// FIXME: no IPv6 offload (`feature-ipv6-csum-offload`, `feature-gso-tcpv6`): IPv6 checksums
/// are computed here and IPv6 segments go one a frame; both keys and a TCP/IPv6 case in the
/// coalescer would retire this.
pub fn tx_checksum(frame: &mut [u8], offload: bool) -> bool {
    let Parsed::Checkable(l4) = parse(frame) else { return false };
    if offload && !l4.v6 {
        let p = pseudo(frame, &l4, l4.len);
        put16(frame, l4.csum_at(), p);
        true
    } else {
        let c = full_checksum(frame, &l4);
        put16(frame, l4.csum_at(), c);
        false
    }
}

/// What the rx checksum check found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxChecksum {
    /// The frame may go to the stack.
    Good,
    /// A checksum is wrong, or cannot be checked: the frame must be dropped.
    Bad,
}

/// Judges a received frame's TCP/UDP checksum by the response's flags: `data_validated`
/// alone is trusted, `csum_blank` (the backend's domain left it to us) is completed, anything
/// else is verified.
pub fn rx_checksum(frame: &mut [u8], validated: bool, blank: bool) -> RxChecksum {
    if validated && !blank {
        return RxChecksum::Good;
    }
    let l4 = match parse(frame) {
        Parsed::Other => return RxChecksum::Good,
        Parsed::Unverifiable => return RxChecksum::Bad,
        Parsed::Checkable(l4) => l4,
    };
    if blank {
        let c = full_checksum(frame, &l4);
        put16(frame, l4.csum_at(), c);
        return RxChecksum::Good;
    }
    // A UDP/IPv4 datagram may carry no checksum (RFC 768).
    if !l4.tcp && !l4.v6 && be16(frame, l4.csum_at()) == Some(0) {
        return RxChecksum::Good;
    }
    let sum = checksum::combine(&[pseudo(frame, &l4, l4.len), checksum::data(&frame[l4.at..l4.at + l4.len])]);
    if sum == 0xffff { RxChecksum::Good } else { RxChecksum::Bad }
}

/// A TCP segment's addresses, ports and flags, as [`syn_guard`](super::syn_guard) needs them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpEnds {
    pub src: IpEndpoint,
    pub dst: IpEndpoint,
    pub flags: u8,
}

/// The ends and flags of a received TCP segment (IPv4 or IPv6, checked as for its checksum);
/// `None` for anything else.
pub fn tcp_ends(frame: &[u8]) -> Option<TcpEnds> {
    let Parsed::Checkable(l4) = parse(frame) else { return None };
    if !l4.tcp {
        return None;
    }
    let addr = |at: usize| -> Option<IpAddress> {
        Some(if l4.v6 {
            IpAddress::Ipv6(Ipv6Address::from(<[u8; 16]>::try_from(frame.get(at..at + 16)?).ok()?))
        } else {
            IpAddress::Ipv4(Ipv4Address::from(<[u8; 4]>::try_from(frame.get(at..at + 4)?).ok()?))
        })
    };
    let (src, dst) = if l4.v6 { (addr(ETH + 8)?, addr(ETH + 24)?) } else { (addr(ETH + 12)?, addr(ETH + 16)?) };
    Some(TcpEnds {
        src: IpEndpoint::new(src, be16(frame, l4.at)?),
        dst: IpEndpoint::new(dst, be16(frame, l4.at + 2)?),
        flags: *frame.get(l4.at + 13)?,
    })
}

/// The longest header (Ethernet, IPv4 without options, TCP with options) a coalesced packet
/// may have.
pub const MAX_HEADER: usize = ETH + 20 + 60;

/// A TCP/IPv4 segment's place in its frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct TcpSeg {
    /// Header bytes (Ethernet, IP, TCP).
    header: usize,
    payload: usize,
    seq: u32,
    flags: u8,
}

/// A TCP/IPv4 segment that could be coalesced: no IP options, not a fragment, and no flags but
/// ACK and PSH.
fn tcp_segment(frame: &[u8]) -> Option<TcpSeg> {
    let Parsed::Checkable(l4) = parse(frame) else { return None };
    if l4.v6 || !l4.tcp || l4.at != ETH + 20 {
        return None;
    }
    let doff = (*frame.get(l4.at + 12)? >> 4) as usize * 4;
    let flags = *frame.get(l4.at + 13)?;
    let allowed = TCP_FLAG_ACK | TCP_FLAG_PSH | TCP_FLAG_FIN;
    if doff < 20 || doff > l4.len || flags & !allowed != 0 || flags & TCP_FLAG_ACK == 0 {
        return None;
    }
    let seq = u32::from_be_bytes(frame.get(l4.at + 4..l4.at + 8)?.try_into().ok()?);
    // Bytes after the IP packet's end (Ethernet padding) would be appended as payload.
    if l4.at + l4.len != frame.len() {
        return None;
    }
    Some(TcpSeg { header: l4.at + doff, payload: l4.len - doff, seq, flags })
}

/// Whether two headers of one flow agree in every byte that must be the same in all segments
/// of a GSO packet: all but the IP total length, id and header checksum, the TCP sequence
/// number, flags and checksum.
fn same_flow(a: &[u8], b: &[u8]) -> bool {
    const VARIES: [core::ops::Range<usize>; 5] = [
        ETH + 2..ETH + 6,       // total length, identification
        ETH + 10..ETH + 12,     // header checksum
        ETH + 24..ETH + 28,     // sequence number
        ETH + 33..ETH + 34,     // flags
        ETH + 36..ETH + 38,     // checksum
    ];
    a.len() == b.len() && (0..a.len()).all(|i| a[i] == b[i] || VARIES.iter().any(|r| r.contains(&i)))
}

/// The coalesced packet being built: the first segment's header and what was appended.
///
/// A segment the stack built longer than the MSS, for the device to cut (`gso`, smoltcp's
/// segmentation offload), starts or joins a packet like any other; the backend cuts the whole
/// payload at the MSS whatever frames it came in.
#[derive(Clone, Copy, Debug)]
pub struct Coalescer {
    header: [u8; MAX_HEADER],
    header_len: usize,
    /// The size the backend cuts the payload at: the first segment's payload, or the segment
    /// size the stack asked for.
    mss: usize,
    payload: usize,
    next_seq: u32,
    /// The last segment had PSH, or the payload is not whole segments: nothing may follow.
    closed: bool,
    /// The most bytes (header and payload) the packet may grow to.
    limit: usize,
}

/// How a frame joins the packet being built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Join {
    /// Append the frame's bytes from this offset (its payload) to the packet.
    Append(usize),
    /// The frame does not continue the packet: send the packet, then start a new one.
    No,
}

impl Coalescer {
    /// Starts a packet with `frame` (which may be any frame); `gso` is the segment size the
    /// stack asked the device to cut it at, `limit` bounds the packet's bytes. Returns `None`
    /// when the frame is not a TCP/IPv4 segment the backend can cut (it goes alone, as it
    /// is): not TCP over IPv4 without options, no payload, flags other than ACK, PSH and FIN,
    /// bytes after the IP packet, a header over [`MAX_HEADER`]. A segment with PSH or FIN
    /// starts a packet nothing may join.
    pub fn start(frame: &[u8], gso: Option<usize>, limit: usize) -> Option<Coalescer> {
        let seg = tcp_segment(frame)?;
        if seg.payload == 0 || seg.header > MAX_HEADER {
            return None;
        }
        let mss = gso.filter(|&m| m > 0 && m < seg.payload).unwrap_or(seg.payload);
        let mut header = [0; MAX_HEADER];
        header[..seg.header].copy_from_slice(&frame[..seg.header]);
        Some(Coalescer {
            header,
            header_len: seg.header,
            mss,
            payload: seg.payload,
            next_seq: seg.seq.wrapping_add(seg.payload as u32),
            closed: seg.flags & (TCP_FLAG_PSH | TCP_FLAG_FIN) != 0 || seg.payload % mss != 0,
            limit,
        })
    }

    /// Whether `frame` (cut at `gso` if the stack asked for it) continues the packet (same
    /// flow, the next sequence number, the same ack, window and options, segments of the
    /// packet's MSS, within the limit); if it does it is counted in.
    pub fn join(&mut self, frame: &[u8], gso: Option<usize>) -> Join {
        let Some(seg) = tcp_segment(frame) else { return Join::No };
        let sized = match gso {
            Some(m) => m == self.mss,
            None => seg.payload <= self.mss,
        };
        // `tcp_segment` took the frame only if it ends with the segment, so with this header
        // length `may_take` is the test of an open packet, a payload, and the limit.
        if seg.header != self.header_len
            || !self.may_take(frame.len())
            || seg.flags & TCP_FLAG_FIN != 0
            || seg.seq != self.next_seq
            || !sized
            || !same_flow(&self.header[..self.header_len], &frame[..seg.header])
        {
            return Join::No;
        }
        self.payload += seg.payload;
        self.next_seq = seg.seq.wrapping_add(seg.payload as u32);
        self.closed = seg.flags & TCP_FLAG_PSH != 0 || self.payload % self.mss != 0;
        self.header[ETH + 33] |= seg.flags & TCP_FLAG_PSH;
        Join::Append(seg.header)
    }

    /// Whether the packet holds more than one segment: it goes as a GSO packet.
    pub fn needs_gso(&self) -> bool {
        self.payload > self.mss
    }

    /// Whether a frame of `frame_len` bytes with this packet's header could still join (its
    /// payload appended within the limit); [`Self::join`] decides whether it does.
    pub fn may_take(&self, frame_len: usize) -> bool {
        !self.closed && frame_len > self.header_len && self.len() + (frame_len - self.header_len) <= self.limit
    }

    /// Whether another segment of the MSS may still join.
    pub fn may_grow(&self) -> bool {
        !self.closed && self.header_len + self.payload + self.mss <= self.limit
    }

    /// The segments the backend cuts the packet into.
    pub fn segments(&self) -> usize {
        self.payload.div_ceil(self.mss)
    }

    /// The MSS the backend is to cut the packet at (the gso size).
    pub fn mss(&self) -> u16 {
        self.mss as u16
    }

    /// The packet's length.
    pub fn len(&self) -> usize {
        self.header_len + self.payload
    }

    /// The packet's header as it must go out, for `header_out` (the first `header_len` bytes
    /// of the packet): IP total length and header checksum for the whole packet, the flags of
    /// the last segment, and the TCP checksum field holding the pseudo-header sum (the backend
    /// completes each segment's).
    pub fn finish(&self, header_out: &mut [u8]) {
        let h = &mut header_out[..self.header_len];
        h.copy_from_slice(&self.header[..self.header_len]);
        let ip_len = self.len() - ETH;
        put16(h, ETH + 2, ip_len as u16);
        put16(h, ETH + 10, 0);
        let ip_sum = !checksum::data(&h[ETH..ETH + 20]);
        put16(h, ETH + 10, ip_sum);
        let l4 = L4 { v6: false, tcp: true, at: ETH + 20, len: ip_len - 20 };
        let p = pseudo(h, &l4, l4.len);
        put16(h, l4.csum_at(), p);
    }

    /// The length of the header [`Self::finish`] writes.
    pub fn header_len(&self) -> usize {
        self.header_len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    /// A TCP/IPv4 frame from 10.0.0.2:80 to 10.0.0.1:40000 with `payload` bytes, as the stack
    /// builds it (checksum field zero, IP header checksum filled).
    fn tcp_frame(seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&[0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00]);
        let total = (20 + 20 + payload.len()) as u16;
        f.extend_from_slice(&[0x45, 0, (total >> 8) as u8, total as u8, 0, 7, 0x40, 0, 64, 6, 0, 0]);
        f.extend_from_slice(&[10, 0, 0, 2, 10, 0, 0, 1]);
        let ip_sum = !checksum::data(&f[ETH..ETH + 20]);
        put16(&mut f, ETH + 10, ip_sum);
        f.extend_from_slice(&80u16.to_be_bytes());
        f.extend_from_slice(&40000u16.to_be_bytes());
        f.extend_from_slice(&seq.to_be_bytes());
        f.extend_from_slice(&1000u32.to_be_bytes());
        f.extend_from_slice(&[0x50, flags, 0x10, 0x00, 0, 0, 0, 0]);
        f.extend_from_slice(payload);
        f
    }

    /// An ARP request broadcast by 10.0.0.2 for 10.0.0.1 (no checksum of its own).
    const ARP: [u8; 42] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 2, 0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1, 0x02, 0, 0, 0, 0,
        2, 10, 0, 0, 2, 0, 0, 0, 0, 0, 0, 10, 0, 0, 1,
    ];

    /// A UDP/IPv4 datagram (DNS query for "a.") captured with its checksum (0x5b0d, computed by
    /// Linux), from 192.168.1.10:5353 to 192.168.1.1:53.
    fn udp_frame() -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&[0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00]);
        f.extend_from_slice(&[0x45, 0, 0, 33, 0, 1, 0, 0, 64, 17, 0, 0, 192, 168, 1, 10, 192, 168, 1, 1]);
        let ip_sum = !checksum::data(&f[ETH..ETH + 20]);
        put16(&mut f, ETH + 10, ip_sum);
        f.extend_from_slice(&[0x14, 0xe9, 0x00, 0x35, 0x00, 0x0d, 0x00, 0x00, 0x12, 0x34, 0x01, 0x00, 0x61]);
        f
    }

    /// The checksum of an IPv4 frame's TCP (`proto` 6, field at 16) or UDP (17, field at 6)
    /// segment by the RFC 1071 definition, one 16-bit word at a time, for comparison.
    fn reference_checksum(f: &[u8], proto: u32, field: usize) -> u16 {
        let seg = &f[ETH + 20..];
        let mut s: u32 = proto + seg.len() as u32;
        for i in (ETH + 12..ETH + 20).step_by(2) {
            s += u16::from_be_bytes([f[i], f[i + 1]]) as u32;
        }
        for i in (0..seg.len()).step_by(2).filter(|&i| i != field) {
            s += u16::from_be_bytes([seg[i], *seg.get(i + 1).unwrap_or(&0)]) as u32;
        }
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }

    fn reference_tcp_checksum(f: &[u8]) -> u16 {
        reference_checksum(f, 6, 16)
    }

    #[test]
    fn tx_checksums_are_left_to_the_backend_or_computed() {
        let mut f = tcp_frame(1, TCP_FLAG_ACK, b"hello, world");
        let want = reference_tcp_checksum(&f);
        let mut soft = f.clone();
        assert!(!tx_checksum(&mut soft, false));
        assert_eq!(be16(&soft, ETH + 36), Some(want));
        assert!(tx_checksum(&mut f, true));
        // The field holds the pseudo-header sum: completing it over the segment gives the
        // checksum.
        let done = !checksum::data(&f[ETH + 20..]);
        assert_eq!(done, want);
        let mut arp = ARP;
        assert!(!tx_checksum(&mut arp, true));
        assert_eq!(arp, ARP);
    }

    #[test]
    fn a_known_udp_checksum_is_computed_and_verified() {
        let mut f = udp_frame();
        assert!(!tx_checksum(&mut f, false));
        let want = reference_checksum(&f, 17, 6);
        assert_eq!(be16(&f, ETH + 26), Some(want));
        assert_eq!(rx_checksum(&mut f, false, false), RxChecksum::Good);
        f[ETH + 28] ^= 1;
        assert_eq!(rx_checksum(&mut f, false, false), RxChecksum::Bad);
        // No checksum at all is allowed for UDP over IPv4.
        put16(&mut f, ETH + 26, 0);
        assert_eq!(rx_checksum(&mut f, false, false), RxChecksum::Good);
    }

    #[test]
    fn rx_frames_are_verified_completed_or_trusted_by_their_flags() {
        let mut good = tcp_frame(5, TCP_FLAG_ACK, b"abc");
        tx_checksum(&mut good, false);
        assert_eq!(rx_checksum(&mut good.clone(), false, false), RxChecksum::Good);
        let mut bad = good.clone();
        bad[ETH + 41] ^= 0x40;
        assert_eq!(rx_checksum(&mut bad.clone(), false, false), RxChecksum::Bad);
        assert_eq!(rx_checksum(&mut bad, true, false), RxChecksum::Good, "validated by the backend");
        // Blank (the pseudo-header sum, or anything): completed to the right checksum.
        let mut blank = tcp_frame(5, TCP_FLAG_ACK, b"abc");
        tx_checksum(&mut blank, true);
        assert_eq!(rx_checksum(&mut blank, true, true), RxChecksum::Good);
        assert_eq!(blank, good);
        // A fragment cannot be verified.
        let mut frag = good.clone();
        frag[ETH + 6] = 0x20;
        assert_eq!(rx_checksum(&mut frag, false, false), RxChecksum::Bad);
        // A length past the frame.
        let mut short = good.clone();
        short.truncate(short.len() - 1);
        assert_eq!(rx_checksum(&mut short, false, false), RxChecksum::Bad);
        let mut arp = ARP;
        assert_eq!(rx_checksum(&mut arp, false, false), RxChecksum::Good);
    }

    #[test]
    fn ipv6_checksums_are_computed_and_checked() {
        // TCP over IPv6 from fe80::1 to fe80::2 through a hop-by-hop options header.
        let payload = b"v6 data";
        let mut f = Vec::new();
        f.extend_from_slice(&[0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x86, 0xdd]);
        let plen = (8 + 20 + payload.len()) as u16;
        f.extend_from_slice(&[0x60, 0, 0, 0, (plen >> 8) as u8, plen as u8, 0, 64]);
        f.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        f.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        f.extend_from_slice(&[6, 0, 1, 4, 0, 0, 0, 0]);
        f.extend_from_slice(&[0, 80, 0x9c, 0x40, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x10, 0x10, 0, 0, 0, 0, 0]);
        f.extend_from_slice(payload);
        assert!(!tx_checksum(&mut f, true), "IPv6 is computed here");
        assert_ne!(be16(&f, ETH + 48 + 16), Some(0));
        assert_eq!(rx_checksum(&mut f.clone(), false, false), RxChecksum::Good);
        f[ETH + 48 + 20] ^= 1;
        assert_eq!(rx_checksum(&mut f, false, false), RxChecksum::Bad);
        f[ETH + 40] = 44; // a fragment header after the hop-by-hop header
        assert_eq!(rx_checksum(&mut f, false, false), RxChecksum::Bad);
    }

    const MSS: usize = 1448;

    fn payload(n: usize, fill: u8) -> Vec<u8> {
        (0..n).map(|i| fill.wrapping_add(i as u8)).collect()
    }

    #[test]
    fn consecutive_segments_of_one_flow_coalesce() {
        let a = tcp_frame(1000, TCP_FLAG_ACK, &payload(MSS, 1));
        let b = tcp_frame(1000 + MSS as u32, TCP_FLAG_ACK, &payload(MSS, 2));
        let c = tcp_frame(1000 + 2 * MSS as u32, TCP_FLAG_ACK | TCP_FLAG_PSH, &payload(100, 3));
        let mut co = Coalescer::start(&a, None, 65535).unwrap();
        assert_eq!(co.join(&b, None), Join::Append(54));
        assert_eq!(co.join(&c, None), Join::Append(54));
        assert_eq!((co.segments(), co.mss(), co.len()), (3, MSS as u16, 54 + 2 * MSS + 100));
        let d = tcp_frame(1000 + 2 * MSS as u32 + 100, TCP_FLAG_ACK, &payload(MSS, 4));
        assert_eq!(co.join(&d, None), Join::No, "nothing after PSH");
        assert!(!co.may_grow(), "closed by PSH");
        // The packet as the backend gets it: one header, the payloads in order, valid IP
        // header, the pseudo-header sum over the whole length in the TCP checksum field.
        let mut packet = vec![0u8; co.len()];
        co.finish(&mut packet);
        let mut at = 54;
        for f in [&a, &b, &c] {
            packet[at..at + f.len() - 54].copy_from_slice(&f[54..]);
            at += f.len() - 54;
        }
        assert_eq!(checksum::data(&packet[ETH..ETH + 20]), 0xffff, "IP header checksum");
        assert_eq!(be16(&packet, ETH + 2), Some((packet.len() - ETH) as u16));
        assert_eq!(packet[ETH + 33], TCP_FLAG_ACK | TCP_FLAG_PSH);
        let mut check = packet.clone();
        put16(&mut check, ETH + 36, 0);
        assert_eq!(!checksum::data(&packet[ETH + 20..]), reference_tcp_checksum(&check));
    }

    #[test]
    fn may_take_admits_exactly_the_frames_join_could_append() {
        let a = tcp_frame(1000, TCP_FLAG_ACK, &payload(MSS, 1));
        let mut co = Coalescer::start(&a, None, 54 + 2 * MSS + 10).unwrap();
        assert!(co.may_take(54 + MSS) && !co.may_take(54) && !co.may_take(20), "a payload is needed");
        assert_eq!(co.join(&tcp_frame(1000 + MSS as u32, TCP_FLAG_ACK, &payload(MSS, 2)), None), Join::Append(54));
        assert!(!co.may_take(54 + MSS) && co.may_take(54 + 10) && !co.may_take(54 + 11), "the limit");
        assert_eq!(co.join(&tcp_frame(1000 + 2 * MSS as u32, TCP_FLAG_ACK, &payload(10, 3)), None), Join::Append(54));
        assert!(!co.may_take(54 + 1), "closed by a short segment, and full");
        let mut short = Coalescer::start(&a, None, 65535).unwrap();
        assert_eq!(short.join(&tcp_frame(1000 + MSS as u32, TCP_FLAG_ACK, &payload(9, 2)), None), Join::Append(54));
        assert!(!short.may_take(54 + 1), "nothing follows a segment shorter than the MSS");
    }

    #[test]
    fn segments_the_stack_built_for_the_device_to_cut_start_and_join_packets() {
        // smoltcp's segmentation offload: one frame of 3 segments, cut at MSS.
        let big = tcp_frame(1000, TCP_FLAG_ACK, &payload(3 * MSS, 1));
        let mut co = Coalescer::start(&big, Some(MSS), 65535).unwrap();
        assert!(co.needs_gso() && co.may_grow());
        assert_eq!((co.segments(), co.mss()), (3, MSS as u16));
        let next = 1000 + 3 * MSS as u32;
        assert_eq!(co.join(&tcp_frame(next, TCP_FLAG_ACK, &payload(2 * MSS, 2)), Some(MSS + 1)), Join::No, "another MSS");
        assert_eq!(co.join(&tcp_frame(next, TCP_FLAG_ACK, &payload(2 * MSS, 2)), None), Join::No, "uncut and too long");
        assert_eq!(co.join(&tcp_frame(next, TCP_FLAG_ACK, &payload(2 * MSS, 2)), Some(MSS)), Join::Append(54));
        assert_eq!(co.join(&tcp_frame(next + 2 * MSS as u32, TCP_FLAG_ACK, &payload(MSS, 3)), None), Join::Append(54));
        assert_eq!((co.segments(), co.len()), (6, 54 + 6 * MSS));
        // A payload that is not whole segments, or PSH, ends it; it still goes as GSO.
        let tail = tcp_frame(1000, TCP_FLAG_ACK, &payload(2 * MSS + 7, 1));
        let co = Coalescer::start(&tail, Some(MSS), 65535).unwrap();
        assert!(co.needs_gso() && !co.may_grow() && !co.may_take(54 + 1));
        assert_eq!(co.segments(), 3);
        let last = tcp_frame(1000, TCP_FLAG_ACK | TCP_FLAG_PSH, &payload(2 * MSS, 1));
        let co = Coalescer::start(&last, Some(MSS), 65535).unwrap();
        assert!(co.needs_gso() && !co.may_grow());
        // The last data with the FIN (a connection closed with data queued) too: the backend
        // keeps FIN for the last segment it cuts.
        let fin = tcp_frame(1000, TCP_FLAG_ACK | TCP_FLAG_FIN, &payload(2 * MSS, 1));
        let co = Coalescer::start(&fin, Some(MSS), 65535).unwrap();
        assert!(co.needs_gso() && !co.may_grow());
        let mut header = [0u8; 54];
        co.finish(&mut header);
        assert_eq!(header[ETH + 33], TCP_FLAG_ACK | TCP_FLAG_FIN);
        // A segment size no smaller than the payload is no cut.
        let one = tcp_frame(1000, TCP_FLAG_ACK, &payload(MSS, 1));
        assert!(!Coalescer::start(&one, Some(MSS), 65535).unwrap().needs_gso());
        assert!(!Coalescer::start(&one, Some(0), 65535).unwrap().needs_gso());
    }

    #[test]
    fn segments_that_must_not_merge_do_not() {
        let a = tcp_frame(1000, TCP_FLAG_ACK, &payload(MSS, 1));
        let next = 1000 + MSS as u32;
        let start = || Coalescer::start(&a, None, 65535).unwrap();
        // A gap, a repeat, a different flow (port, address, ack, window), other flags, empty.
        let mut other_port = tcp_frame(next, TCP_FLAG_ACK, &payload(MSS, 2));
        other_port[ETH + 21] ^= 1;
        let mut other_addr = tcp_frame(next, TCP_FLAG_ACK, &payload(MSS, 2));
        other_addr[ETH + 19] ^= 1;
        let mut other_ack = tcp_frame(next, TCP_FLAG_ACK, &payload(MSS, 2));
        other_ack[ETH + 31] ^= 1;
        let mut other_window = tcp_frame(next, TCP_FLAG_ACK, &payload(MSS, 2));
        other_window[ETH + 34] ^= 1;
        let cases = [
            ("gap", tcp_frame(next + 1, TCP_FLAG_ACK, &payload(MSS, 2))),
            ("repeat", tcp_frame(1000, TCP_FLAG_ACK, &payload(MSS, 2))),
            ("port", other_port),
            ("address", other_addr),
            ("ack", other_ack),
            ("window", other_window),
            ("fin", tcp_frame(next, TCP_FLAG_ACK | 0x01, &payload(MSS, 2))),
            ("rst", tcp_frame(next, TCP_FLAG_ACK | 0x04, &payload(MSS, 2))),
            ("urg", tcp_frame(next, TCP_FLAG_ACK | 0x20, &payload(MSS, 2))),
            ("no ack", tcp_frame(next, TCP_FLAG_PSH, &payload(MSS, 2))),
            ("empty", tcp_frame(next, TCP_FLAG_ACK, &[])),
            ("longer than the mss", tcp_frame(next, TCP_FLAG_ACK, &payload(MSS + 1, 2))),
            ("arp", ARP.to_vec()),
            ("udp", udp_frame()),
        ];
        for (name, f) in cases {
            assert_eq!(start().join(&f, None), Join::No, "{name}");
        }
        // A short segment ends the packet; a limit bounds it.
        let mut co = start();
        assert!(co.may_grow());
        assert_eq!(co.join(&tcp_frame(next, TCP_FLAG_ACK, &payload(10, 2)), None), Join::Append(54));
        assert_eq!(co.join(&tcp_frame(next + 10, TCP_FLAG_ACK, &payload(MSS, 2)), None), Join::No);
        assert!(!co.may_grow(), "after a short segment");
        let mut small = Coalescer::start(&a, None, 54 + 2 * MSS - 1).unwrap();
        assert!(!small.may_grow(), "no room for another segment");
        assert_eq!(small.join(&tcp_frame(next, TCP_FLAG_ACK, &payload(MSS, 2)), None), Join::No);
        // Bytes after the IP packet (padding) neither join nor start one.
        let mut padded = tcp_frame(next, TCP_FLAG_ACK, &payload(MSS, 2));
        padded.push(0);
        assert_eq!(start().join(&padded, None), Join::No);
        assert!(Coalescer::start(&padded, None, 65535).is_none());
        // What cannot start a packet.
        let psh = Coalescer::start(&tcp_frame(1, TCP_FLAG_ACK | TCP_FLAG_PSH, b"x"), None, 65535).unwrap();
        assert!(!psh.may_grow() && !psh.needs_gso(), "a PSH segment goes alone");
        assert!(Coalescer::start(&tcp_frame(1, TCP_FLAG_ACK, b""), None, 65535).is_none());
        assert!(Coalescer::start(&tcp_frame(1, 0x02, b"x"), None, 65535).is_none(), "SYN");
        assert!(Coalescer::start(&ARP, None, 65535).is_none());
    }

    #[test]
    fn frames_too_short_for_their_headers_are_never_read_past() {
        let f = tcp_frame(1, TCP_FLAG_ACK, b"payload");
        for n in 0..f.len() {
            let mut cut = f[..n].to_vec();
            let _ = tx_checksum(&mut cut, true);
            let _ = rx_checksum(&mut cut, false, false);
            let _ = rx_checksum(&mut cut, true, true);
            assert!(Coalescer::start(&cut, None, 65535).is_none() || n == f.len());
        }
    }
}
