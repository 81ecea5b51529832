//! Keeps a retransmitted SYN away from listening sockets when a connection already holds its
//! 4-tuple (`docs/net.md`, "Threads and waiting").
//!
//! smoltcp hands a segment to the first socket of its set, in slot order, that accepts it, and
//! a listening socket accepts any SYN to its port. A listener keeps one listening socket ready
//! and adds a new one when that one takes a SYN; the set puts it in the first free slot, which
//! may come before the half-open connection it replaced. When the peer then sends its SYN again
//! (its SYN-ACK was slow: the guest was busy with a burst of connections), the listening socket
//! takes it and opens a second connection with the same 4-tuple and another initial sequence
//! number; the peer's ACK of the first reaches the second, which answers with a RST, and the
//! peer's connection is reset. Linux answers such a SYN from the half-open connection.
//!
//! [`Held`] is the list of 4-tuples that sockets hold, refreshed when sockets change; a SYN
//! without ACK for one of them is dropped before smoltcp sees it. The connection that holds it
//! sends its SYN-ACK again on its own retransmission timer, so the peer loses only time.

use alloc::vec::Vec;

use smoltcp::iface::SocketSet;
use smoltcp::socket::Socket;
use smoltcp::socket::tcp::State;
use smoltcp::wire::IpEndpoint;

use super::offload::{self, TCP_FLAG_ACK, TCP_FLAG_SYN};

/// The (local, remote) endpoints of every connection a SYN must not reach a listener for.
#[derive(Default)]
pub struct Held(Vec<(IpEndpoint, IpEndpoint)>);

/// Whether a socket in `state` holds its 4-tuple against a new SYN: from SYN-RECEIVED until
/// the connection is closed. SYN-SENT is left out (a SYN to it is a simultaneous open, which
/// is smoltcp's to answer), and so is TIME-WAIT (a peer may open the 4-tuple again).
fn holds(state: State) -> bool {
    matches!(
        state,
        State::SynReceived
            | State::Established
            | State::FinWait1
            | State::FinWait2
            | State::CloseWait
            | State::Closing
            | State::LastAck
    )
}

impl Held {
    /// Replaces the list with the connections of `set`'s TCP sockets.
    pub fn refresh_from(&mut self, set: &SocketSet<'_>) {
        self.refresh(set.iter().filter_map(|(_, s)| match s {
            Socket::Tcp(t) => Some((t.state(), t.local_endpoint(), t.remote_endpoint())),
            _ => None,
        }));
    }

    /// Replaces the list with the connections among `sockets`: each TCP socket's state and
    /// local and remote endpoints.
    pub fn refresh(&mut self, sockets: impl Iterator<Item = (State, Option<IpEndpoint>, Option<IpEndpoint>)>) {
        self.0.clear();
        for (state, local, remote) in sockets {
            if let (true, Some(local), Some(remote)) = (holds(state), local, remote) {
                self.0.push((local, remote));
            }
        }
    }

    /// Whether `frame` is a SYN without ACK for a 4-tuple a connection holds: one to drop.
    pub fn is_duplicate_syn(&self, frame: &[u8]) -> bool {
        let Some(seg) = offload::tcp_ends(frame) else { return false };
        seg.flags & (TCP_FLAG_SYN | TCP_FLAG_ACK) == TCP_FLAG_SYN && self.0.contains(&(seg.dst, seg.src))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use smoltcp::wire::{IpAddress, Ipv4Address, Ipv6Address};

    const ETH_V4: [u8; 14] = [0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00];
    const ETH_V6: [u8; 14] = [0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x86, 0xdd];

    fn tcp_header(src_port: u16, dst_port: u16, flags: u8) -> Vec<u8> {
        let mut t = vec![];
        t.extend_from_slice(&src_port.to_be_bytes());
        t.extend_from_slice(&dst_port.to_be_bytes());
        t.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
        t
    }

    /// A TCP/IPv4 frame from 10.0.0.1:`src_port` to 10.0.0.2:80.
    fn v4(src_port: u16, flags: u8) -> Vec<u8> {
        let mut f = ETH_V4.to_vec();
        f.extend_from_slice(&[0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
        f.extend(tcp_header(src_port, 80, flags));
        f
    }

    /// A TCP/IPv6 frame from fd00::1:`src_port` to fd00::2:80.
    fn v6(src_port: u16, flags: u8) -> Vec<u8> {
        let mut f = ETH_V6.to_vec();
        f.extend_from_slice(&[0x60, 0, 0, 0, 0, 20, 6, 64]);
        let mut a = [0u8; 16];
        a[0] = 0xfd;
        a[15] = 1;
        f.extend_from_slice(&a);
        a[15] = 2;
        f.extend_from_slice(&a);
        f.extend(tcp_header(src_port, 80, flags));
        f
    }

    fn ep4(last: u8, port: u16) -> IpEndpoint {
        IpEndpoint::new(IpAddress::Ipv4(Ipv4Address::new(10, 0, 0, last)), port)
    }

    fn ep6(last: u16, port: u16) -> IpEndpoint {
        IpEndpoint::new(IpAddress::Ipv6(Ipv6Address::new(0xfd00, 0, 0, 0, 0, 0, 0, last)), port)
    }

    const SYN: u8 = TCP_FLAG_SYN;
    const SYN_ACK: u8 = TCP_FLAG_SYN | TCP_FLAG_ACK;

    #[test]
    fn a_syn_for_a_held_tuple_is_dropped_and_no_other() {
        let mut held = Held::default();
        held.refresh(
            [
                (State::SynReceived, Some(ep4(2, 80)), Some(ep4(1, 40000))),
                (State::Established, Some(ep6(2, 80)), Some(ep6(1, 40001))),
                (State::Listen, None, None),
            ]
            .into_iter(),
        );
        assert!(held.is_duplicate_syn(&v4(40000, SYN)));
        assert!(held.is_duplicate_syn(&v6(40001, SYN)));
        // Another port of the same peer, the other family, a SYN-ACK or a plain ACK: let through.
        assert!(!held.is_duplicate_syn(&v4(40002, SYN)));
        assert!(!held.is_duplicate_syn(&v4(40001, SYN)));
        assert!(!held.is_duplicate_syn(&v6(40000, SYN)));
        assert!(!held.is_duplicate_syn(&v4(40000, SYN_ACK)));
        assert!(!held.is_duplicate_syn(&v4(40000, TCP_FLAG_ACK)));
    }

    #[test]
    fn only_connections_from_syn_received_to_last_ack_hold_their_tuple() {
        let mut held = Held::default();
        for (state, kept) in [
            (State::Closed, false),
            (State::Listen, false),
            (State::SynSent, false),
            (State::SynReceived, true),
            (State::Established, true),
            (State::FinWait1, true),
            (State::FinWait2, true),
            (State::CloseWait, true),
            (State::Closing, true),
            (State::LastAck, true),
            (State::TimeWait, false),
        ] {
            held.refresh([(state, Some(ep4(2, 80)), Some(ep4(1, 40000)))].into_iter());
            assert_eq!(held.is_duplicate_syn(&v4(40000, SYN)), kept, "{state}");
        }
        // A refresh forgets what went before.
        held.refresh(core::iter::empty());
        assert!(!held.is_duplicate_syn(&v4(40000, SYN)));
    }

    #[test]
    fn short_and_foreign_frames_are_let_through() {
        let mut held = Held::default();
        held.refresh([(State::Established, Some(ep4(2, 80)), Some(ep4(1, 40000)))].into_iter());
        let syn = v4(40000, SYN);
        for n in 0..syn.len() {
            assert!(!held.is_duplicate_syn(&syn[..n]), "{n} bytes");
        }
        let mut udp = syn.clone();
        udp[14 + 9] = 17;
        assert!(!held.is_duplicate_syn(&udp));
        let mut arp = syn;
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert!(!held.is_duplicate_syn(&arp));
    }

    /// A device for a real smoltcp interface: frames in from a queue (through the guard when it
    /// has one), frames out counted.
    struct Wire {
        rx: alloc::collections::VecDeque<Vec<u8>>,
        guard: Option<Held>,
        sent: usize,
    }

    struct Rx(Vec<u8>);
    struct Tx<'a>(&'a mut usize);

    impl smoltcp::phy::RxToken for Rx {
        fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
            f(&self.0)
        }
    }

    impl smoltcp::phy::TxToken for Tx<'_> {
        fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
            *self.0 += 1;
            f(&mut vec![0; len])
        }
    }

    impl smoltcp::phy::Device for Wire {
        type RxToken<'a> = Rx;
        type TxToken<'a> = Tx<'a>;

        fn receive(&mut self, _: smoltcp::time::Instant) -> Option<(Rx, Tx<'_>)> {
            loop {
                let frame = self.rx.pop_front()?;
                if !self.guard.as_ref().is_some_and(|g| g.is_duplicate_syn(&frame)) {
                    return Some((Rx(frame), Tx(&mut self.sent)));
                }
            }
        }

        fn transmit(&mut self, _: smoltcp::time::Instant) -> Option<Tx<'_>> {
            Some(Tx(&mut self.sent))
        }

        fn capabilities(&self) -> smoltcp::phy::DeviceCapabilities {
            let mut caps = smoltcp::phy::DeviceCapabilities::default();
            caps.medium = smoltcp::phy::Medium::Ethernet;
            caps.max_transmission_unit = 1514;
            // The test's frames carry no checksums.
            caps.checksum.ipv4 = smoltcp::phy::Checksum::None;
            caps.checksum.tcp = smoltcp::phy::Checksum::None;
            caps
        }
    }

    fn listening() -> smoltcp::socket::tcp::Socket<'static> {
        use smoltcp::socket::tcp;
        let mut s = tcp::Socket::new(tcp::SocketBuffer::new(vec![0; 4096]), tcp::SocketBuffer::new(vec![0; 4096]));
        s.listen(80).unwrap();
        s
    }

    /// The TCP sockets of `set` in SYN-RECEIVED with the peer's 4-tuple.
    fn half_open(set: &SocketSet<'_>) -> usize {
        set.iter()
            .filter(|(_, s)| match s {
                Socket::Tcp(t) => t.state() == State::SynReceived && t.remote_endpoint() == Some(ep4(1, 40000)),
                _ => false,
            })
            .count()
    }

    /// How many connections smoltcp opens for one SYN sent twice, when the listener's fresh
    /// listening socket took a slot before the half-open connection, with and without the guard.
    fn connections_for_a_repeated_syn(guarded: bool) -> usize {
        use smoltcp::iface::{Config, Interface};
        use smoltcp::time::Instant;
        use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr};

        let mut wire = Wire { rx: Default::default(), guard: guarded.then(Held::default), sent: 0 };
        let mac = EthernetAddress([0x02, 0, 0, 0, 0, 1]);
        let now = Instant::from_millis(1000);
        let mut iface = Interface::new(Config::new(HardwareAddress::Ethernet(mac)), &mut wire, now);
        iface.update_ip_addrs(|a| a.push(IpCidr::new(IpAddress::Ipv4(Ipv4Address::new(10, 0, 0, 2)), 24)).unwrap());
        let mut set = SocketSet::new(Vec::new());
        // Slot 0 holds a closed socket (one going away); the listening socket is in slot 1.
        let other = set.add(listening());
        set.get_mut::<smoltcp::socket::tcp::Socket>(other).abort();
        set.add(listening());
        // The peer's SYN: the listening socket in slot 1 takes it.
        wire.rx.push_back(v4(40000, SYN));
        iface.poll(now, &mut wire, &mut set);
        assert_eq!(half_open(&set), 1);
        // The listener replaces it with a new listening socket, in the slot freed meanwhile.
        set.remove(other);
        set.add(listening());
        if let Some(g) = wire.guard.as_mut() {
            g.refresh_from(&set);
        }
        // The peer sends its SYN again.
        wire.rx.push_back(v4(40000, SYN));
        iface.poll(now + smoltcp::time::Duration::from_millis(1000), &mut wire, &mut set);
        half_open(&set)
    }

    #[test]
    fn without_the_guard_a_repeated_syn_opens_a_second_connection_and_with_it_none() {
        assert_eq!(connections_for_a_repeated_syn(false), 2, "smoltcp's behaviour the guard exists for");
        assert_eq!(connections_for_a_repeated_syn(true), 1);
    }
}
