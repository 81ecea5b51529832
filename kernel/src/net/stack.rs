//! The kernel's TCP/IP stack: smoltcp over a loopback interface (127.0.0.1, ::1) and the
//! guest's vifs (netfront), with the sockets std's `TcpStream`, `TcpListener` and `UdpSocket`
//! stand on (`docs/net.md`, `docs/abi.md` "Sockets").
//!
//! Design: one lock over the whole stack ([`NET`]) and one network thread. Every socket call
//! takes the lock, does its part on the smoltcp socket, polls the interfaces (so a write
//! leaves at once and loopback traffic needs no other thread), and lets go. The network
//! thread polls the interfaces when netfront signals new responses or when smoltcp's
//! `poll_at` comes (retransmissions, DHCP, ARP), and sleeps otherwise. A call that must wait
//! reads the wake counter [`WAKE`] under the lock and sleeps on it as a futex; whoever polls
//! and sees sockets change bumps it and wakes every waiter, which then looks again.
//!
//! Each interface has its own socket set: a socket lives on the interface its addresses
//! belong to (a connection to 127.0.0.1 on loopback, any other on the vif with the peer on
//! one of its subnets, else on the first vif), so a segment can never leave by the wrong
//! interface. A listener or UDP socket bound to the unspecified address has a smoltcp socket
//! on each interface.
//!
//! The stack starts at the first socket call, not at boot: a program without sockets pays
//! nothing. Starting opens the vifs (vif 0 and on, unless `xen.net=off`; `xen.vifs=N` leaves
//! those from N on to the program) and configures each from the command line, or starts
//! DHCPv4 on it in the background.

use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use smoltcp::iface::{Config, Interface, PollIngressSingleResult, PollResult, SocketHandle, SocketSet};
use smoltcp::phy::{self, Checksum, Device, DeviceCapabilities, Loopback, Medium, PacketMeta};
use smoltcp::socket::{dhcpv4, dns, tcp, udp};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{
    EthernetAddress, HardwareAddress, IpAddress, IpCidr, IpEndpoint, IpListenEndpoint, Ipv4Address, Ipv6Address,
};

use crate::net::netfront;
use crate::net::neighbors::{self, Heard};
use crate::net::syn_guard::Held;
use crate::sync::Mutex;

/// Linux's errno values the socket calls return (negated).
pub mod errno {
    pub const EBADF: i32 = 9;
    pub const EAGAIN: i32 = 11;
    pub const EINVAL: i32 = 22;
    pub const ENOENT: i32 = 2;
    pub const EPIPE: i32 = 32;
    pub const EMSGSIZE: i32 = 90;
    pub const EOPNOTSUPP: i32 = 95;
    pub const EADDRINUSE: i32 = 98;
    pub const EADDRNOTAVAIL: i32 = 99;
    pub const ENETDOWN: i32 = 100;
    pub const ENETUNREACH: i32 = 101;
    pub const ECONNRESET: i32 = 104;
    pub const EISCONN: i32 = 106;
    pub const ENOTCONN: i32 = 107;
    pub const ETIMEDOUT: i32 = 110;
    pub const ECONNREFUSED: i32 = 111;
    pub const EHOSTUNREACH: i32 = 113;
}
use errno::*;

/// A TCP socket's receive and send buffers while the interface's TCP sockets hold less than
/// [`TCP_BUDGET_SHARE`] of the guest's memory and at least half of it is free. 256 KiB
/// (window scaling, shift 3) lets dom0 send GSO packets as large as to a Linux guest and the
/// stack ACK every second one: with 64 KiB every packet halved the window and the read
/// restored it, so smoltcp ACKed each packet and dom0's packets stayed near 31 KB. Sending, a
/// 64 KiB write then mostly finds room whole, and netfront's packets grow to 21-22 a MB
/// (33-34 before; `docs/net.md`, "TCP/IP: throughput").
const TCP_BUF: usize = 256 << 10;
/// Otherwise a socket gets 64 KiB to receive and 128 KiB to send, so that many connections
/// still fit (the budget is to socket buffers what Linux's `tcp_mem` pressure is).
const TCP_RX_SMALL: usize = 64 << 10;
const TCP_TX_SMALL: usize = 128 << 10;
/// The share of the guest's memory (1/N) the large buffers of one interface's TCP sockets may
/// take together: with 128 MiB, 32 sockets.
const TCP_BUDGET_SHARE: usize = 8;
/// Each UDP socket's payload buffers, and the datagrams each holds.
const UDP_BUF: usize = 64 << 10;
const UDP_PACKETS: usize = 32;
/// The most connections per listener and interface that can be half-open or waiting for
/// `accept` (smoltcp needs one socket per pending connection: each listener keeps a pool, with
/// one socket listening); `listen`'s backlog lowers it. A SYN beyond it is answered with RST.
/// 128, the backlog std's `TcpListener::bind` asks for, as on Linux (with 32, the 34th of 100
/// connections opened at once was refused). The pool grows only as SYNs come (each socket with
/// its buffers), so an idle listener holds one socket per interface.
const POOL: usize = 128;
/// How long a program's connect to a vif address waits for DHCP to give an address.
const DHCP_WAIT_NS: u64 = 15_000_000_000;
/// How long the program's end waits at most for its connections' data to be delivered.
const ENDING_NS: u64 = 5_000_000_000;
/// How often the program's end looks again whether everything is delivered (ACKs and tx
/// completions do not wake it).
const ENDING_POLL_NS: u64 = 2_000_000;
/// How long a closed connection may take to say goodbye (FIN, data in flight) before it is
/// aborted.
const LINGER_NS: u64 = 30_000_000_000;
/// How long an aborted connection is kept for its RST to go (tx buffers all in flight, a
/// broken device) before it is dropped without.
const RST_GRACE_NS: u64 = 1_000_000_000;
/// Ephemeral ports, as Linux's default `ip_local_port_range` ends.
const EPHEMERAL: core::ops::RangeInclusive<u16> = 49152..=65535;

/// Bumped (and futex-woken) whenever a poll changed some socket.
static WAKE: AtomicU32 = AtomicU32::new(0);
/// Bumped (and woken) to make the network thread poll now: netfront events, new deadlines.
static KICK: AtomicU32 = AtomicU32::new(0);
/// When the network thread means to wake next (Xen system time), so a call whose poll needs
/// an earlier wake kicks it.
static NET_DEADLINE: AtomicU64 = AtomicU64::new(u64::MAX);

static NET: Mutex<Option<Net>> = Mutex::new(None);

/// The interfaces: loopback, then vif N at `N + 1`.
const LO: usize = 0;
/// The most vifs the stack drives (netfront's `device/vif/0` to `7`).
const MAX_VIFS: usize = 8;

/// A socket address as the ABI passes it (`docs/abi.md`, `XkSockAddr`).
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct XkSockAddr {
    /// 4 or 6.
    pub family: u16,
    pub port: u16,
    pub flowinfo: u32,
    /// IPv4 in the first 4 bytes, or IPv6.
    pub addr: [u8; 16],
    pub scope_id: u32,
}
const _: () = assert!(size_of::<XkSockAddr>() == 28);

impl XkSockAddr {
    pub fn endpoint(&self) -> Result<(Option<IpAddress>, u16), i32> {
        let addr = match self.family {
            4 => IpAddress::Ipv4(Ipv4Address::new(self.addr[0], self.addr[1], self.addr[2], self.addr[3])),
            6 => IpAddress::Ipv6(Ipv6Address::from(self.addr)),
            _ => return Err(EINVAL),
        };
        Ok((if addr.is_unspecified() { None } else { Some(addr) }, self.port))
    }

    pub fn from_endpoint(addr: Option<IpAddress>, port: u16, v6: bool) -> XkSockAddr {
        let mut out = XkSockAddr { port, ..Default::default() };
        match addr {
            Some(IpAddress::Ipv4(a)) => {
                out.family = 4;
                out.addr[..4].copy_from_slice(&a.octets());
            }
            Some(IpAddress::Ipv6(a)) => {
                out.family = 6;
                out.addr = a.octets();
            }
            None => out.family = if v6 { 6 } else { 4 },
        }
        out
    }
}

fn now_ns() -> u64 {
    crate::time::monotonic_ns()
}

fn instant() -> Instant {
    Instant::from_micros((now_ns() / 1000) as i64)
}

fn is_loopback(addr: &IpAddress) -> bool {
    match addr {
        IpAddress::Ipv4(a) => a.is_loopback(),
        IpAddress::Ipv6(a) => a.is_loopback(),
    }
}

/// The vif as a smoltcp device: frames in and out through netfront, never waiting.
struct VifDev {
    index: u32,
    /// The received packet (a GSO packet may be 64 KiB).
    buf: Vec<u8>,
    broken: bool,
    /// A frame could not be queued in this poll: every tx buffer is in flight, and netfront
    /// asked the backend for an event at the next completion.
    tx_full: bool,
    /// The largest TCP/IPv4 frame smoltcp may build for the backend to cut
    /// (`netfront::stack_gso_limit`).
    gso_limit: Option<usize>,
    /// The largest other frame: the device's MTU (its xenstore `mtu`) and the header.
    frame_limit: usize,
    /// The connections whose retransmitted SYNs are dropped (`syn_guard`).
    held: Held,
    /// The IPv4 neighbours heard from in ARP frames (`net::neighbors`).
    heard: Heard,
    mac: [u8; 6],
}

struct VifRx<'a>(&'a [u8]);
struct VifTx<'a> {
    index: u32,
    broken: &'a mut bool,
    /// The segment size smoltcp asked the device to cut the frame at.
    gso: Option<usize>,
}

fn failed(index: u32, broken: &mut bool, e: netfront::NetError) {
    if !*broken {
        if netfront::ended() {
            debug!("net: vif {index}: disconnected at the program's end");
        } else {
            match e {
                netfront::NetError::Gone => {
                    error!("net: vif {index}: its backend went away; the interface is down: its sockets fail with ENETDOWN")
                }
                e => error!("net: vif {index}: {e:?}; the interface is down: its sockets fail with ENETDOWN"),
            }
        }
        *broken = true;
    }
}

impl Device for VifDev {
    type RxToken<'a> = VifRx<'a>;
    type TxToken<'a> = VifTx<'a>;

    fn receive(&mut self, now: Instant) -> Option<(VifRx<'_>, VifTx<'_>)> {
        if self.broken {
            return None;
        }
        let VifDev { index, buf, broken, held, heard, .. } = self;
        loop {
            match netfront::stack_recv(*index, buf) {
                Ok(Some(n)) if held.is_duplicate_syn(&buf[..n]) => {
                    debug!("net: vif {index}: a SYN again for a connection that has it; dropped");
                }
                Ok(Some(n)) => {
                    trace_tcp(*index, "rx", &buf[..n]);
                    heard.observe(&buf[..n], now.total_micros() as u64 * 1000);
                    return Some((VifRx(&buf[..n]), VifTx { index: *index, broken, gso: None }));
                }
                Ok(None) => return None,
                Err(e) => {
                    failed(*index, broken, e);
                    return None;
                }
            }
        }
    }

    fn transmit(&mut self, _: Instant) -> Option<VifTx<'_>> {
        if self.broken {
            return None;
        }
        // `stack_can_send` asks for an event at the next completion when it says no.
        self.tx_full = !netfront::stack_can_send(self.index);
        (!self.tx_full).then_some(VifTx { index: self.index, broken: &mut self.broken, gso: None })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        // smoltcp's Ethernet MTU counts the header.
        caps.max_transmission_unit = self.frame_limit;
        // smoltcp cuts the receive window it advertises to this many segments. netback queues
        // what does not fit the rx ring, so the ring's buffers are no limit; 8 (11.7 KB of
        // window) made a bulk receive wait for the window every 8 segments.
        caps.max_burst_size = None;
        // netfront leaves TCP and UDP checksums to the backend or computes them, and judges
        // received ones (`net::offload`); IPv4 header and ICMP checksums stay smoltcp's.
        caps.checksum.tcp = Checksum::None;
        caps.checksum.udp = Checksum::None;
        // With GSO smoltcp builds a TCP/IPv4 segment of as much as the window lets it send (up
        // to a packet the backend takes) in one frame, once, and the backend cuts it at the
        // MSS: one header and one pass through the stack a packet instead of a segment.
        // smoltcp drops IPv6 frames longer than the MTU, so none is asked for IPv6.
        caps.segmentation.tcpv4 = self.gso_limit.and_then(core::num::NonZeroUsize::new);
        caps
    }
}

/// Logs a TCP segment's control flags (SYN, FIN, RST) at trace level, for following a
/// connection's life.
fn trace_tcp(index: u32, way: &str, frame: &[u8]) {
    if !crate::log::enabled(crate::log::Level::Trace) {
        return;
    }
    if let Some(seg) = crate::net::offload::tcp_ends(frame) {
        if seg.flags & 0x07 != 0 {
            trace!("net: vif {index}: {way} {} -> {} flags {:#04x}", seg.src, seg.dst, seg.flags);
        }
    }
}

/// A device's part in keeping retransmitted SYNs from listening sockets (`syn_guard`): the
/// vif's; the loopback interface, which loses and delays nothing, needs none.
trait Guarded {
    fn held(&mut self) -> Option<&mut Held> {
        None
    }
}

impl Guarded for Loopback {}

impl Guarded for VifDev {
    fn held(&mut self) -> Option<&mut Held> {
        Some(&mut self.held)
    }
}

impl phy::RxToken for VifRx<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.0)
    }
}

impl phy::TxToken for VifTx<'_> {
    fn set_meta(&mut self, meta: PacketMeta) {
        self.gso = meta.segmentation_offload_size.map(|size| usize::from(size.get()));
    }

    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let index = self.index;
        let (r, sent) = netfront::stack_emit(self.index, len, self.gso, |frame: &mut [u8]| {
            let r = f(frame);
            trace_tcp(index, "tx", frame);
            r
        });
        match sent {
            Ok(Some(_)) => {}
            Ok(None) => debug!("net: vif {}: tx ring full; frame dropped", self.index),
            // Longer than netfront takes (the MTU, or a packet with GSO): smoltcp builds none.
            Err(netfront::NetError::BadFrame) => debug!("net: vif {}: a frame of {len} bytes dropped", self.index),
            Err(e) => failed(self.index, self.broken, e),
        }
        r
    }
}

struct Iface<D> {
    iface: Interface,
    dev: D,
    set: SocketSet<'static>,
    /// `egress_digest` at the start of the poll.
    sent_digest: u64,
}

impl<D: Device + Guarded> Iface<D> {
    /// Polls until nothing more happens (loopback frames come back on the next round), one
    /// received packet at a time so that every listener has a listening socket again before
    /// the next packet (a SYN takes one); returns whether a socket changed, and whether work
    /// is left.
    fn poll(&mut self, at: usize, socks: &mut [Option<Sock>], now: Instant) -> (bool, bool) {
        let mut changed = false;
        // The program's calls change sockets between polls (a UDP queue filled up, a close).
        self.sent_digest = egress_digest(&self.set);
        self.hold();
        self.iface.poll_maintenance(now);
        let mut sent = false;
        let mut busy = true;
        for _ in 0..64 {
            let mut any = false;
            for _ in 0..64 {
                match self.iface.poll_ingress_single(now, &mut self.dev, &mut self.set) {
                    PollIngressSingleResult::None => break,
                    PollIngressSingleResult::PacketProcessed => {}
                    PollIngressSingleResult::SocketStateChanged => {
                        changed = true;
                        refill_listeners(socks, at, &mut self.set);
                        // A listening socket may have taken a SYN.
                        self.hold();
                    }
                }
                any = true;
            }
            // smoltcp reports every segment sent as a change, but sending frees no buffer a
            // waiter could use (ACKs and data come in by ingress): waking every waiter for
            // each segment made each one poll again, 13 polls a segment in a bulk send. Only
            // what sending does change counts: a socket's state (a FIN, the RST of a timeout)
            // and UDP queues emptied, seen against the digest at the poll's start, once at
            // its end (a round sends at most a segment a socket, so a bulk send's poll has
            // dozens; a state that ingress changed meanwhile wakes the waiters once more,
            // harmlessly). A change without a segment (TIME-WAIT's end) concerns no waiter.
            if self.iface.poll_egress(now, &mut self.dev, &mut self.set) == PollResult::SocketStateChanged {
                any = true;
                sent = true;
            }
            if !any {
                busy = false;
                break;
            }
        }
        if sent {
            changed |= egress_digest(&self.set) != self.sent_digest;
        }
        (changed, busy)
    }

    /// Tells the device which connections hold their 4-tuples now.
    fn hold(&mut self) {
        if let Some(held) = self.dev.held() {
            held.refresh_from(&self.set);
        }
    }

    fn delay(&mut self, now: Instant) -> Option<Duration> {
        self.iface.poll_delay(now, &self.set)
    }
}

/// What sending can change that a waiter looks at: each TCP socket's state and whether each UDP
/// socket can queue a datagram, folded into one number.
fn egress_digest(set: &SocketSet<'static>) -> u64 {
    let mut digest = 0u64;
    // The set does not change while it is polled, so a socket's place in it is stable.
    for (place, (_, sock)) in set.iter().enumerate() {
        let bits = match sock {
            smoltcp::socket::Socket::Tcp(t) => t.state() as u64,
            smoltcp::socket::Socket::Udp(u) => 16 + u64::from(u.can_send()),
            _ => continue,
        };
        digest = (digest ^ ((place as u64) << 8 | bits)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    digest
}

/// Whether a TCP socket was aborted and smoltcp has not sent its RST yet: it is closed but
/// keeps its peer until the RST goes (then it forgets it); removed before, the RST never goes
/// and the peer waits for a connection that is gone.
fn rst_pending(s: &tcp::Socket<'_>) -> bool {
    s.state() == tcp::State::Closed && s.remote_endpoint().is_some()
}

/// Whether a TCP socket is done with: closed and with nothing left to send.
fn gone(s: &tcp::Socket<'_>) -> bool {
    s.state() == tcp::State::Closed && !rst_pending(s)
}

/// Keeps one listening socket in each pool of `at`'s listeners (a listening socket that took a
/// SYN is a pending connection, and one that failed is dropped), up to the listener's backlog.
fn refill_listeners(socks: &mut [Option<Sock>], at: usize, set: &mut SocketSet<'static>) {
    for sock in socks.iter_mut().flatten() {
        if let Sock::Listener(l) = sock {
            let Listener { addr, port, pools, pool_size, hop_limit, .. } = l;
            for (a, pool) in pools.iter_mut() {
                if *a == at {
                    refill_pool(pool, set, *addr, *port, *hop_limit, *pool_size);
                }
            }
        }
    }
}

fn refill_pool(
    pool: &mut Vec<SocketHandle>,
    set: &mut SocketSet<'static>,
    addr: Option<IpAddress>,
    port: u16,
    hop_limit: Option<u8>,
    pool_size: usize,
) {
    pool.retain(|&h| {
        if gone(set.get::<tcp::Socket>(h)) {
            set.remove(h);
            false
        } else {
            true
        }
    });
    let listening = pool.iter().any(|&h| set.get::<tcp::Socket>(h).state() == tcp::State::Listen);
    if !listening && pool.len() < pool_size {
        // `SocketSet::add` takes the first free slot, which may come before a half-open
        // connection of this port: `syn_guard` keeps that connection's repeated SYN from it.
        let mut s = Net::new_tcp(set);
        s.set_hop_limit(hop_limit);
        if s.listen(IpListenEndpoint { addr, port }).is_ok() {
            pool.push(set.add(s));
        }
    }
}

enum Sock {
    Tcp(Tcp),
    Listener(Listener),
    Udp(Udp),
}

struct Tcp {
    at: usize,
    h: SocketHandle,
    /// Our local port, counted in `tcp_ports` (0 for an accepted connection).
    port: u16,
    shut_read: bool,
    /// The connection was reset (or aborted) and a read or write reported it; later reads
    /// give 0 and writes `EPIPE`, as on Linux.
    reset: bool,
    /// A pending error for `take_error`.
    error: i32,
    /// `SO_LINGER`, in whole seconds as Linux keeps it: `Some(0)` resets the connection at
    /// close, `Some(n)` makes close wait up to n s for the FIN to be acknowledged.
    linger: Option<u32>,
}

struct Listener {
    addr: Option<IpAddress>,
    port: u16,
    v6: bool,
    /// (interface, listening sockets).
    pools: Vec<(usize, Vec<SocketHandle>)>,
    pool_size: usize,
    hop_limit: Option<u8>,
}

struct Udp {
    addr: Option<IpAddress>,
    port: u16,
    v6: bool,
    socks: Vec<(usize, SocketHandle)>,
    peer: Option<IpEndpoint>,
}

struct Net {
    lo: Iface<Loopback>,
    /// vif N at `vifs[N]` (interface `N + 1`): vifs 0 to the first that is missing, could
    /// not open, or is left to the program (`xen.vifs`).
    vifs: Vec<Iface<VifDev>>,
    /// Each vif's DHCPv4 client (none with a static address).
    dhcp: Vec<Option<SocketHandle>>,
    /// Whether each vif has an IPv4 default route (`xen.gw` on vif 0, or its lease's router).
    gw: Vec<bool>,
    /// The DNS server each vif's lease named.
    lease_dns: Vec<Option<Ipv4Address>>,
    /// A DNS socket on each interface (by interface index) that has asked one, made when a
    /// lookup first goes that way; never removed, as lookups may be waiting on it.
    dns_socks: Vec<Option<SocketHandle>>,
    socks: Vec<Option<Sock>>,
    /// How many holders each socket has (`dup`): it closes when the last one closes it.
    refs: Vec<u32>,
    /// Closed connections still saying goodbye: (interface, socket, when to give up).
    orphans: Vec<(usize, SocketHandle, u64)>,
    tcp_ports: BTreeMap<u16, u32>,
    udp_ports: BTreeMap<u16, u32>,
}

fn seed() -> u64 {
    let mut b = [0u8; 8];
    crate::random::fill(&mut b);
    u64::from_le_bytes(b)
}

/// A DNS socket asking `server`, with room for 4 queries at once.
fn dns_socket(server: Ipv4Address) -> dns::Socket<'static> {
    dns::Socket::new(&[IpAddress::Ipv4(server)], (0..4).map(|_| None).collect::<Vec<_>>())
}

fn netfront_event(_port: u32) {
    KICK.fetch_add(1, Ordering::AcqRel);
    crate::sched::futex_wake(KICK.as_ptr(), 1);
}

/// EUI-64 link-local address from a MAC (RFC 4291 appendix A).
fn link_local(mac: [u8; 6]) -> Ipv6Address {
    let mut a = [0u8; 16];
    a[0] = 0xfe;
    a[1] = 0x80;
    a[8] = mac[0] ^ 2;
    a[9] = mac[1];
    a[10] = mac[2];
    a[11] = 0xff;
    a[12] = 0xfe;
    a[13] = mac[3];
    a[14] = mac[4];
    a[15] = mac[5];
    Ipv6Address::from(a)
}

impl Net {
    fn start() -> Net {
        let now = instant();
        // An IP-medium loopback: no ARP or neighbor discovery between the guest and itself.
        let mut lo_dev = Loopback::new(Medium::Ip);
        let mut config = Config::new(HardwareAddress::Ip);
        config.random_seed = seed();
        let mut lo_if = Interface::new(config, &mut lo_dev, now);
        lo_if.update_ip_addrs(|addrs| {
            let _ = addrs.push(IpCidr::new(IpAddress::v4(127, 0, 0, 1), 8));
            let _ = addrs.push(IpCidr::new(IpAddress::Ipv6(Ipv6Address::LOCALHOST), 128));
        });
        let mut net = Net {
            lo: Iface { iface: lo_if, dev: lo_dev, set: SocketSet::new(Vec::new()), sent_digest: 0 },
            vifs: Vec::new(),
            dhcp: Vec::new(),
            gw: Vec::new(),
            lease_dns: Vec::new(),
            dns_socks: Vec::new(),
            socks: Vec::new(),
            refs: Vec::new(),
            orphans: Vec::new(),
            tcp_ports: BTreeMap::new(),
            udp_ports: BTreeMap::new(),
        };
        let cfg = crate::boot::cmdline().net;
        info!("net: loopback up (127.0.0.1/8, ::1/128)");
        if cfg.off {
            info!("net: xen.net=off: loopback only");
        } else {
            let count = cfg.vifs.map_or(MAX_VIFS, usize::from).min(MAX_VIFS);
            for n in 0..count {
                // The vifs are interfaces 1, 2, ... in order: the first that cannot be had
                // ends the list.
                match netfront::open_for_stack(n as u32) {
                    Ok((mac, port)) => net.vif_up(n, mac, port, &cfg),
                    Err(netfront::NetError::NoDevice) => break,
                    Err(netfront::NetError::Busy) => {
                        info!("net: vif {n} is the program's (opened raw): the stack uses {n} vif(s)");
                        break;
                    }
                    Err(e) => {
                        error!("net: vif {n} did not open ({e:?}): the stack uses {n} vif(s)");
                        break;
                    }
                }
            }
            if net.vifs.is_empty() {
                info!("net: no vif: loopback only");
            }
        }
        net
    }

    /// Brings vif `n` (open for the stack) up as interface `n + 1`: vif 0 with `xen.ip`,
    /// `xen.gw` and `xen.ip6`, vif N with `xen.vifN.ip`; DHCPv4 where no address is given.
    fn vif_up(&mut self, n: usize, mac: [u8; 6], port: u32, cfg: &crate::cmdline::NetConfig) {
        let now = instant();
        let buf = vec![0; crate::net::rx_packet::MAX_RX_PACKET];
        let index = n as u32;
        let gso_limit = netfront::stack_gso_limit(index);
        let mtu = netfront::stack_mtu(index).unwrap_or(crate::net::ring::MAX_MTU);
        let frame_limit = usize::from(mtu) + netfront::ETH_HEADER;
        let mut dev = VifDev {
            index,
            buf,
            broken: false,
            tx_full: false,
            gso_limit,
            frame_limit,
            held: Held::default(),
            heard: Heard::default(),
            mac,
        };
        let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
        config.random_seed = seed();
        let mut iface = Interface::new(config, &mut dev, now);
        let ll = link_local(mac);
        let (static_ip, gw, ip6) = match n {
            0 => (if cfg.dhcp { None } else { cfg.ip }, cfg.gw, cfg.ip6),
            _ => (cfg.vif_ips.get(n - 1).copied().flatten(), None, None),
        };
        iface.update_ip_addrs(|addrs| {
            if let Some((a, p)) = static_ip {
                let _ = addrs.push(IpCidr::new(IpAddress::v4(a[0], a[1], a[2], a[3]), p));
            }
            let _ = addrs.push(IpCidr::new(IpAddress::Ipv6(ll), 64));
            if let Some((a, p)) = ip6 {
                let _ = addrs.push(IpCidr::new(IpAddress::Ipv6(Ipv6Address::from(a)), p));
            }
        });
        if let (Some(g), Some(_)) = (gw, static_ip) {
            let _ = iface.routes_mut().add_default_ipv4_route(Ipv4Address::from(g));
        }
        let mut set = SocketSet::new(Vec::new());
        let mut dhcp_handle = None;
        if static_ip.is_none() {
            let mut dhcp = dhcpv4::Socket::new();
            // A DISCOVER sent before the server listens is tried again soon, not after 10 s.
            let mut retry = dhcp.get_retry_config();
            retry.discover_timeout = Duration::from_secs(1);
            dhcp.set_retry_config(retry);
            dhcp_handle = Some(set.add(dhcp));
            info!("net: vif {n}: asking DHCPv4");
        } else {
            info!("net: vif {n}: static {:?}, gateway {:?}", iface.ip_addrs(), gw);
        }
        info!("net: vif {n}: link-local {ll}");
        self.vifs.push(Iface { iface, dev, set, sent_digest: 0 });
        self.dhcp.push(dhcp_handle);
        self.gw.push(gw.is_some() && static_ip.is_some());
        self.lease_dns.push(None);
        if let Err(e) = crate::xen::evtchn::set_handler(port, netfront_event) {
            error!("net: vif {n}: event channel {port}: {e}");
        }
    }

    /// Vif `at - 1`, for interface `at` (none for loopback).
    fn vif(&self, at: usize) -> Option<&Iface<VifDev>> {
        at.checked_sub(1).and_then(|n| self.vifs.get(n))
    }

    /// Whether `remote` is on one of interface `at`'s subnets (a vif's).
    fn on_link(&self, at: usize, remote: &IpAddress) -> bool {
        self.vif(at).is_some_and(|v| v.iface.ip_addrs().iter().any(|cidr| cidr.contains_addr(remote)))
    }

    /// Whether IPv4 neighbour `addr` on interface `at` has sent an ARP frame since `since`.
    fn heard(&self, at: usize, addr: [u8; 4], since: u64) -> bool {
        self.vif(at).is_some_and(|v| v.dev.heard.heard_since(addr, since))
    }

    /// Sends an ARP request for `target` from interface `at`'s IPv4 address (none without one).
    fn arp_probe(&mut self, at: usize, target: [u8; 4]) {
        let Some(vif) = self.vif(at) else { return };
        let Some(ours) = vif.iface.ipv4_addr() else { return };
        let frame = neighbors::arp_request(vif.dev.mac, ours.octets(), target);
        let (_, sent) = netfront::stack_emit(vif.dev.index, frame.len(), None, |buf| buf.copy_from_slice(&frame));
        debug!("net: vif {}: ARP request for {target:?} ({sent:?})", vif.dev.index);
    }

    /// Whether a vif that is up still waits for its first DHCPv4 lease.
    fn waiting_for_lease(&self) -> bool {
        self.vifs_up().any(|at| self.dhcp[at - 1].is_some() && !self.has_v4(at))
    }

    /// The DNS server: `xen.dns`, else the first vif up whose lease named one.
    fn dns_server(&self) -> Option<Ipv4Address> {
        let cfg = crate::boot::cmdline().net;
        cfg.dns.map(Ipv4Address::from).or_else(|| self.vifs_up().find_map(|at| self.lease_dns[at - 1]))
    }

    /// The DNS socket on interface `at`, asking `server` (made on first use).
    fn dns_socket_on(&mut self, at: usize, server: Ipv4Address) -> Option<SocketHandle> {
        if self.dns_socks.len() <= at {
            self.dns_socks.resize(at + 1, None);
        }
        let existing = self.dns_socks[at];
        let set = self.parts(at)?.1;
        let h = match existing {
            Some(h) => {
                set.get_mut::<dns::Socket>(h).update_servers(&[IpAddress::Ipv4(server)]);
                h
            }
            None => set.add(dns_socket(server)),
        };
        self.dns_socks[at] = Some(h);
        Some(h)
    }

    /// The interfaces of the vifs that are up.
    fn vifs_up(&self) -> impl Iterator<Item = usize> + '_ {
        self.vifs.iter().enumerate().filter(|(_, v)| !v.dev.broken).map(|(n, _)| n + 1)
    }

    fn parts(&mut self, at: usize) -> Option<(&mut Interface, &mut SocketSet<'static>)> {
        if at == LO {
            Some((&mut self.lo.iface, &mut self.lo.set))
        } else {
            self.vifs.get_mut(at - 1).map(|v| (&mut v.iface, &mut v.set))
        }
    }

    fn set(&mut self, at: usize) -> &mut SocketSet<'static> {
        self.parts(at).expect("a socket's interface exists").1
    }

    fn tcp(&mut self, at: usize, h: SocketHandle) -> &mut tcp::Socket<'static> {
        self.set(at).get_mut::<tcp::Socket>(h)
    }

    /// Polls both interfaces; returns whether some socket changed and when to poll next.
    fn poll(&mut self) -> (bool, Option<u64>) {
        // One clock read a poll: a read is a trap into Xen where the TSC is emulated (about
        // 3 us under QEMU), and the net stack read it four or five times a poll (30 a request).
        let now_ns = now_ns();
        let now = Instant::from_micros((now_ns / 1000) as i64);
        let (mut changed, mut busy) = self.lo.poll(LO, &mut self.socks, now);
        let mut held: Option<u64> = None;
        // A vif that is down (its backend went away, or broke the protocol) is not polled: its
        // sockets' timers would wake the network thread for sends that cannot go.
        for (n, vif) in self.vifs.iter_mut().enumerate() {
            if vif.dev.broken {
                continue;
            }
            vif.dev.tx_full = false;
            let (c, b) = vif.poll(n + 1, &mut self.socks, now);
            // The segments of this poll that netfront coalesced go out now, or by `held`.
            if let Some(h) = netfront::stack_flush(vif.dev.index, now_ns) {
                held = Some(held.map_or(h, |e| e.min(h)));
            }
            changed |= c;
            busy |= b;
            // Went down in this poll: every waiter on the vif's sockets looks again and fails.
            changed |= vif.dev.broken;
        }
        changed |= self.dhcp_events();
        changed |= self.reap_orphans(now_ns);
        let mut next = self.lo.delay(now);
        // With every tx buffer in flight the vif can do nothing until a completion, whose
        // event netfront asked for: smoltcp's delay is then zero (it has segments ready), and
        // polling again at once spun the network thread, taking the one CPU from the backend
        // that was to complete them (6 polls a segment in a bulk send).
        for vif in self.vifs.iter_mut().filter(|v| !v.dev.tx_full && !v.dev.broken) {
            if let Some(d) = vif.delay(now) {
                next = Some(next.map_or(d, |n| n.min(d)));
            }
        }
        if busy {
            next = Some(Duration::ZERO);
        }
        let next = next.map(|d| now_ns.saturating_add(d.total_micros() * 1000));
        (changed, next.into_iter().chain(held).min())
    }

    /// Takes each vif's DHCPv4 news; returns whether an address came or went.
    fn dhcp_events(&mut self) -> bool {
        let mut changed = false;
        for n in 0..self.vifs.len() {
            changed |= self.dhcp_event(n);
        }
        changed
    }

    fn dhcp_event(&mut self, n: usize) -> bool {
        let (Some(Some(h)), Some(vif)) = (self.dhcp.get(n).copied(), self.vifs.get_mut(n)) else { return false };
        let event = match vif.set.get_mut::<dhcpv4::Socket>(h).poll() {
            None => return false,
            Some(dhcpv4::Event::Configured(c)) => Some((c.address, c.router, c.dns_servers.first().copied())),
            Some(dhcpv4::Event::Deconfigured) => None,
        };
        let iface = &mut vif.iface;
        iface.update_ip_addrs(|addrs| addrs.retain(|a| !matches!(a, IpCidr::Ipv4(_))));
        iface.routes_mut().remove_default_ipv4_route();
        match event {
            Some((address, router, dns)) => {
                info!("net: vif {n}: DHCPv4 gave {address}, router {router:?}, dns {dns:?}");
                iface.update_ip_addrs(|addrs| {
                    let _ = addrs.insert(0, IpCidr::Ipv4(address));
                });
                if let Some(r) = router {
                    let _ = iface.routes_mut().add_default_ipv4_route(r);
                }
                self.gw[n] = router.is_some();
                self.lease_dns[n] = dns;
            }
            None => {
                info!("net: vif {n}: DHCPv4 lease lost");
                self.gw[n] = false;
                self.lease_dns[n] = None;
            }
        }
        true
    }

    /// Drops the closed connections that are done and aborts those past their time; returns
    /// whether it did either (a lingering close waits for that).
    fn reap_orphans(&mut self, now: u64) -> bool {
        let mut reaped = false;
        let mut i = 0;
        while i < self.orphans.len() {
            let (at, h, until) = self.orphans[i];
            let down = self.down(at);
            let s = self.tcp(at, h);
            let done = down || gone(s) || s.state() == tcp::State::TimeWait;
            if done || now >= until.saturating_add(RST_GRACE_NS) {
                self.set(at).remove(h);
                self.orphans.swap_remove(i);
                reaped = true;
            } else {
                if now >= until && s.state() != tcp::State::Closed {
                    s.abort();
                    reaped = true;
                }
                i += 1;
            }
        }
        reaped
    }

    /// Whether the vif is down: its backend went away or broke the protocol. Its sockets then
    /// fail with ENETDOWN (after what they had received is read), as Linux's do on an interface
    /// that went away, instead of waiting for segments that can never come.
    fn down(&self, at: usize) -> bool {
        self.vif(at).is_some_and(|v| v.dev.broken)
    }

    /// Whether every one of these interfaces (at least one) is a vif that is down.
    fn all_down(&self, ats: impl IntoIterator<Item = usize>) -> bool {
        let mut any = false;
        for at in ats {
            if !self.down(at) {
                return false;
            }
            any = true;
        }
        any
    }

    /// Whether interface `at` has an IPv4 address (DHCP may still be under way).
    fn has_v4(&self, at: usize) -> bool {
        self.vif(at).is_some_and(|v| v.iface.ipv4_addr().is_some())
    }

    /// The interface a connection to `remote` goes through: loopback for its addresses, the
    /// first vif up with `remote` on one of its subnets (an IPv6 link-local peer: the first
    /// vif up), else, for IPv4, the first vif up with a default route (vif 0's when it has
    /// one). Otherwise ENETUNREACH, as Linux with no route (also once the vifs are gone).
    fn route(&self, remote: &IpAddress) -> Result<usize, i32> {
        if is_loopback(remote) {
            return Ok(LO);
        }
        let on_link = self.vifs_up().find(|&at| self.on_link(at, remote));
        let by_gateway = || match remote {
            IpAddress::Ipv4(_) => self.vifs_up().find(|&at| self.gw[at - 1]),
            IpAddress::Ipv6(_) => None,
        };
        on_link.or_else(by_gateway).ok_or(ENETUNREACH)
    }

    /// The interfaces a socket bound to `addr` lives on.
    fn bind_ifaces(&self, addr: Option<IpAddress>) -> Result<Vec<usize>, i32> {
        match addr {
            None => Ok(core::iter::once(LO).chain(self.vifs_up()).collect()),
            Some(a) if is_loopback(&a) => {
                if self.lo.iface.has_ip_addr(a) {
                    Ok(vec![LO])
                } else {
                    Err(EADDRNOTAVAIL)
                }
            }
            Some(a) => match self.vifs_up().find(|&at| self.vif(at).is_some_and(|v| v.iface.has_ip_addr(a))) {
                Some(at) => Ok(vec![at]),
                None => Err(EADDRNOTAVAIL),
            },
        }
    }

    fn insert(&mut self, sock: Sock) -> i64 {
        match self.socks.iter().position(Option::is_none) {
            Some(i) => {
                self.socks[i] = Some(sock);
                self.refs[i] = 1;
                i as i64
            }
            None => {
                self.socks.push(Some(sock));
                self.refs.push(1);
                (self.socks.len() - 1) as i64
            }
        }
    }

    fn sock(&mut self, h: u64) -> Result<&mut Sock, i32> {
        self.socks.get_mut(h as usize).and_then(Option::as_mut).ok_or(EBADF)
    }

    fn take_port(ports: &mut BTreeMap<u16, u32>, port: u16) -> Result<u16, i32> {
        if port != 0 {
            if ports.contains_key(&port) {
                return Err(EADDRINUSE);
            }
            ports.insert(port, 1);
            return Ok(port);
        }
        let span = (*EPHEMERAL.end() - *EPHEMERAL.start()) as u32 + 1;
        let start = (seed() % span as u64) as u32;
        for i in 0..span {
            let p = *EPHEMERAL.start() + ((start + i) % span) as u16;
            if !ports.contains_key(&p) {
                ports.insert(p, 1);
                return Ok(p);
            }
        }
        Err(EADDRINUSE)
    }

    /// A TCP socket for `set`, its buffers sized by the budget ([`TCP_BUF`]).
    fn new_tcp(set: &SocketSet<'static>) -> tcp::Socket<'static> {
        let (frames, used) = crate::mm::frame_counts();
        let held: usize = set
            .iter()
            .filter_map(|(_, s)| match s {
                smoltcp::socket::Socket::Tcp(t) => Some(t.recv_capacity() + t.send_capacity()),
                _ => None,
            })
            .sum();
        let large = used * 2 <= frames && held + 2 * TCP_BUF <= frames * crate::mm::layout::PAGE_SIZE as usize / TCP_BUDGET_SHARE;
        let (rx, tx) = if large { (TCP_BUF, TCP_BUF) } else { (TCP_RX_SMALL, TCP_TX_SMALL) };
        let mut s = tcp::Socket::new(tcp::SocketBuffer::new(vec![0; rx]), tcp::SocketBuffer::new(vec![0; tx]));
        s.set_nagle_enabled(true);
        s
    }

    fn new_listening(
        &mut self,
        at: usize,
        addr: Option<IpAddress>,
        port: u16,
        hop: Option<u8>,
    ) -> Result<SocketHandle, i32> {
        let mut s = Self::new_tcp(self.set(at));
        s.set_hop_limit(hop);
        s.listen(IpListenEndpoint { addr, port }).map_err(|_| EINVAL)?;
        Ok(self.set(at).add(s))
    }
}

/// Runs `f` on the stack (starting it on first use), then polls, wakes waiters if sockets
/// changed, and kicks the network thread if the next deadline moved earlier.
fn with<T>(f: impl FnOnce(&mut Net) -> T) -> T {
    with_net(true, |net| (f(net), true)).expect("started on first use")
}

/// [`with`], starting the stack only if `start` (`None` when it had not started), and polling
/// only if `f` says so: a call that found nothing to do changed nothing to send.
fn with_net<T>(start: bool, f: impl FnOnce(&mut Net) -> (T, bool)) -> Option<T> {
    let mut guard = NET.lock();
    if guard.is_none() {
        if !start {
            return None;
        }
        *guard = Some(Net::start());
        spawn_thread();
    }
    let net = guard.as_mut().expect("started above");
    let (r, poll) = f(net);
    if !poll {
        return Some(r);
    }
    let (changed, next) = net.poll();
    drop(guard);
    if changed {
        wake_all();
    }
    if next.unwrap_or(u64::MAX) < NET_DEADLINE.load(Ordering::Acquire) {
        KICK.fetch_add(1, Ordering::AcqRel);
        crate::sched::futex_wake(KICK.as_ptr(), 1);
    }
    Some(r)
}

fn wake_all() {
    WAKE.fetch_add(1, Ordering::AcqRel);
    crate::sched::futex_wake(WAKE.as_ptr(), u32::MAX);
}

/// What a step of a blocking call found.
enum Step<T> {
    Done(Result<T, i32>),
    Wait,
}

/// Repeats `f` until it is done, sleeping between tries until a poll changes sockets or
/// `deadline` (0: do not wait). A deadline that passes gives `on_timeout`. A try that must
/// wait found nothing (no data, no room, no connection) and left nothing to send (an accept
/// may have refilled a listener's pool): no poll follows it, since a poll walks every socket
/// of both interfaces and the network thread polls when a packet comes or a deadline passes
/// (the bench job's polls and clock reads fell from 78,585 to 46,477 with it).
fn block<T>(deadline: u64, on_timeout: i32, mut f: impl FnMut(&mut Net) -> Step<T>) -> Result<T, i32> {
    loop {
        let (step, seen) = with_net(true, |net| {
            let step = f(net);
            let poll = matches!(step, Step::Done(_)) || !NET_THREAD.load(Ordering::Acquire);
            ((step, WAKE.load(Ordering::Acquire)), poll)
        })
        .expect("started on first use");
        if let Step::Done(r) = step {
            return r;
        }
        if deadline == 0 {
            return Err(EAGAIN);
        }
        if deadline != u64::MAX && now_ns() >= deadline {
            return Err(on_timeout);
        }
        // SAFETY: WAKE is a static atomic u32.
        unsafe { crate::sched::futex_wait(WAKE.as_ptr(), seen, deadline) };
    }
}

extern "C" fn net_thread(_: *mut u8) {
    loop {
        let seen = KICK.load(Ordering::Acquire);
        let (changed, deadline) = {
            let mut guard = NET.lock();
            let net = guard.as_mut().expect("the thread starts with the stack");
            let (changed, next) = net.poll();
            // Published under the lock: a call that polls after this one compares its own next
            // deadline with this one and kicks this thread if its own is earlier. Stored after
            // the unlock, a call in between compared with the old deadline, found its own
            // later, and this thread then slept past it (a waiter's try that finds nothing
            // does not poll again to repair it).
            let deadline = next.unwrap_or(u64::MAX);
            NET_DEADLINE.store(deadline, Ordering::Release);
            (changed, deadline)
        };
        if changed {
            wake_all();
        }
        // SAFETY: KICK is a static atomic u32.
        unsafe { crate::sched::futex_wait(KICK.as_ptr(), seen, deadline) };
    }
}

fn spawn_thread() {
    match crate::sched::spawn_kernel(net_thread, core::ptr::null_mut(), 64 << 10) {
        Some(t) => {
            NET_THREAD.store(true, Ordering::Release);
            // SAFETY: the handle is fresh and neither joined nor detached.
            unsafe { crate::sched::detach(t) }
        }
        None => error!("net: no memory for the network thread; sockets are polled by their calls only"),
    }
}

/// Whether the network thread runs: without it every try of a blocking call polls.
static NET_THREAD: AtomicBool = AtomicBool::new(false);

// ---- The operations behind the `xk_sock_*` calls. ----

fn tcp_of(net: &mut Net, h: u64) -> Result<(usize, SocketHandle), i32> {
    match net.sock(h)? {
        Sock::Tcp(t) => Ok((t.at, t.h)),
        _ => Err(EOPNOTSUPP),
    }
}

/// Connects to `remote`; returns the socket's handle.
pub fn tcp_connect(remote: &XkSockAddr, deadline: u64) -> Result<i64, i32> {
    let (addr, port) = remote.endpoint()?;
    // Linux connects to the unspecified address as to loopback.
    let addr = addr.unwrap_or(match remote.family {
        6 => IpAddress::Ipv6(Ipv6Address::LOCALHOST),
        _ => IpAddress::v4(127, 0, 0, 1),
    });
    if port == 0 {
        return Err(ECONNREFUSED);
    }
    // The route is looked for again while a vif waits for its first DHCP lease, which may
    // bring the subnet or the gateway (15 s at most).
    let until = deadline.min(now_ns().saturating_add(DHCP_WAIT_NS));
    let r = block(until, ENETUNREACH, |net| match net.route(&addr) {
        Ok(at) if at == LO || net.has_v4(at) || matches!(addr, IpAddress::Ipv6(_)) => Step::Done(Ok(at)),
        _ if net.waiting_for_lease() => Step::Wait,
        Ok(at) => Step::Done(Ok(at)),
        Err(e) => Step::Done(Err(e)),
    });
    let at = match r {
        Err(EAGAIN) if deadline != 0 => return Err(ENETUNREACH),
        other => other?,
    };
    let h = with(|net| -> Result<i64, i32> {
        let local = Net::take_port(&mut net.tcp_ports, 0)?;
        let (iface, set) = net.parts(at).ok_or(ENETUNREACH)?;
        let mut s = Net::new_tcp(set);
        if let Err(e) = s.connect(iface.context(), IpEndpoint::new(addr, port), local) {
            net.tcp_ports.remove(&local);
            return Err(match e {
                tcp::ConnectError::Unaddressable => ENETUNREACH,
                tcp::ConnectError::InvalidState => EISCONN,
            });
        }
        let sh = set.add(s);
        Ok(net.insert(Sock::Tcp(Tcp { at, h: sh, port: local, shut_read: false, reset: false, error: 0, linger: None })))
    })?;
    let established = |net: &mut Net| {
        let Ok((at, sh)) = tcp_of(net, h as u64) else { return Step::Done(Err(EBADF)) };
        let down = net.down(at);
        match net.tcp(at, sh).state() {
            tcp::State::SynSent | tcp::State::SynReceived if down => Step::Done(Err(ENETDOWN)),
            tcp::State::SynSent | tcp::State::SynReceived => Step::Wait,
            tcp::State::Closed => Step::Done(Err(ECONNREFUSED)),
            _ => Step::Done(Ok(())),
        }
    };
    // An on-link IPv4 peer is also asked for by ARP a second apart while the connection is
    // unanswered, and one never heard from fails the connect (`net::neighbors`).
    let neighbour = with(|net| match addr {
        IpAddress::Ipv4(a) if net.on_link(at, &addr) => Some(a.octets()),
        _ => None,
    });
    let started = now_ns();
    let mut asked = 0;
    let r = loop {
        let tick = match neighbour {
            Some(_) => deadline.min(now_ns().saturating_add(1_000_000_000)),
            None => deadline,
        };
        match (block(tick, ETIMEDOUT, established), neighbour) {
            (Err(ETIMEDOUT), Some(target)) if tick < deadline => {
                let unheard = with(|net| {
                    if net.heard(at, target, started) {
                        return false;
                    }
                    if asked < neighbors::ARP_TRIES {
                        net.arp_probe(at, target);
                    }
                    true
                });
                if unheard && asked == neighbors::ARP_TRIES {
                    break Err(EHOSTUNREACH);
                }
                asked += u32::from(unheard);
            }
            (r, _) => break r,
        }
    };
    match r {
        Ok(()) => Ok(h),
        Err(e) => {
            close(h as u64, true);
            Err(e)
        }
    }
}

/// Binds a listener to `local`; returns its handle.
pub fn tcp_listen(local: &XkSockAddr, backlog: u32) -> Result<i64, i32> {
    let (addr, port) = local.endpoint()?;
    with(|net| {
        let ifaces = net.bind_ifaces(addr)?;
        let port = Net::take_port(&mut net.tcp_ports, port)?;
        let pool_size = (backlog as usize).clamp(1, POOL);
        let mut l = Listener { addr, port, v6: local.family == 6, pools: Vec::new(), pool_size, hop_limit: None };
        for at in ifaces {
            match net.new_listening(at, addr, port, None) {
                Ok(sh) => l.pools.push((at, vec![sh])),
                Err(e) => {
                    for (at, pool) in l.pools.drain(..) {
                        for sh in pool {
                            net.set(at).remove(sh);
                        }
                    }
                    net.tcp_ports.remove(&port);
                    return Err(e);
                }
            }
        }
        Ok(net.insert(Sock::Listener(l)))
    })
}

/// Takes an established connection from listener `h`; returns its handle and peer.
pub fn tcp_accept(h: u64, deadline: u64) -> Result<(i64, XkSockAddr), i32> {
    block(deadline, EAGAIN, |net| {
        let mut l = match net.sock(h) {
            Ok(Sock::Listener(_)) => match net.socks[h as usize].take() {
                Some(Sock::Listener(l)) => l,
                _ => unreachable!(),
            },
            Ok(_) => return Step::Done(Err(EINVAL)),
            Err(e) => return Step::Done(Err(e)),
        };
        let mut found = None;
        // A down vif's pool still gives the connections that were established (their reads
        // give what came, then ENETDOWN); it takes no new ones.
        for (at, pool) in l.pools.iter_mut() {
            let Some((_, set)) = net.parts(*at) else { continue };
            if let Some(i) = pool.iter().position(|&sh| {
                matches!(set.get::<tcp::Socket>(sh).state(), tcp::State::Established | tcp::State::CloseWait)
            }) {
                found = Some((*at, pool.remove(i)));
                break;
            }
        }
        for (at, pool) in l.pools.iter_mut() {
            if net.down(*at) {
                continue;
            }
            if let Some((_, set)) = net.parts(*at) {
                refill_pool(pool, set, l.addr, l.port, l.hop_limit, l.pool_size);
            }
        }
        let down = net.all_down(l.pools.iter().map(|(at, _)| *at));
        net.socks[h as usize] = Some(Sock::Listener(l));
        match found {
            None if down => Step::Done(Err(ENETDOWN)),
            None => Step::Wait,
            Some((at, sh)) => {
                let peer = net.tcp(at, sh).remote_endpoint();
                let addr = match peer {
                    Some(ep) => XkSockAddr::from_endpoint(Some(ep.addr), ep.port, false),
                    None => XkSockAddr::default(),
                };
                let c = net.insert(Sock::Tcp(Tcp { at, h: sh, port: 0, shut_read: false, reset: false, error: 0, linger: None }));
                Step::Done(Ok((c, addr)))
            }
        }
    })
}

/// Reads (or with `peek`, looks at) what has come on connection `h`.
pub fn tcp_recv(h: u64, buf: &mut [u8], peek: bool, deadline: u64) -> Result<usize, i32> {
    block(deadline, EAGAIN, |net| {
        let t = match net.sock(h) {
            Ok(Sock::Tcp(t)) => (t.at, t.h, t.shut_read, t.reset),
            Ok(_) => return Step::Done(Err(ENOTCONN)),
            Err(e) => return Step::Done(Err(e)),
        };
        let (at, sh, shut_read, reset) = t;
        // As Linux: the reset was reported once; the connection now reads as ended.
        if reset {
            return Step::Done(Ok(0));
        }
        if shut_read || buf.is_empty() {
            return Step::Done(Ok(0));
        }
        let down = net.down(at);
        let s = net.tcp(at, sh);
        let r = if peek { s.peek_slice(buf) } else { s.recv_slice(buf) };
        match r {
            // What had come before the vif went down is read first.
            Ok(0) if down && s.may_recv() => Step::Done(Err(ENETDOWN)),
            Ok(0) => {
                if s.may_recv() || matches!(s.state(), tcp::State::SynSent | tcp::State::SynReceived) {
                    Step::Wait
                } else {
                    Step::Done(Ok(0))
                }
            }
            Ok(n) => Step::Done(Ok(n)),
            Err(tcp::RecvError::Finished) => Step::Done(Ok(0)),
            Err(tcp::RecvError::InvalidState) => {
                // Closed without our close: the peer reset the connection.
                if let Ok(Sock::Tcp(t)) = net.sock(h) {
                    t.reset = true;
                }
                Step::Done(Err(ECONNRESET))
            }
        }
    })
}

/// Queues bytes on connection `h`; returns how many were taken.
pub fn tcp_send(h: u64, data: &[u8], deadline: u64) -> Result<usize, i32> {
    block(deadline, EAGAIN, |net| {
        let (at, sh, reset) = match net.sock(h) {
            Ok(Sock::Tcp(t)) => (t.at, t.h, t.reset),
            Ok(_) => return Step::Done(Err(ENOTCONN)),
            Err(e) => return Step::Done(Err(e)),
        };
        // As Linux: the reset was reported once; writing now fails as on a closed pipe.
        if reset {
            return Step::Done(Err(EPIPE));
        }
        if net.down(at) {
            return Step::Done(Err(ENETDOWN));
        }
        let s = net.tcp(at, sh);
        match s.state() {
            tcp::State::Closed => {
                if let Ok(Sock::Tcp(t)) = net.sock(h) {
                    t.reset = true;
                }
                return Step::Done(Err(ECONNRESET));
            }
            tcp::State::SynSent | tcp::State::SynReceived => return Step::Wait,
            _ => {}
        }
        if !s.may_send() {
            return Step::Done(Err(EPIPE));
        }
        if data.is_empty() {
            return Step::Done(Ok(0));
        }
        match s.send_slice(data) {
            Ok(0) => Step::Wait,
            Ok(n) => Step::Done(Ok(n)),
            Err(_) => Step::Done(Err(EPIPE)),
        }
    })
}

/// Shuts down reading (0), writing (1) or both (2) of connection `h`.
pub fn shutdown(h: u64, how: u32) -> Result<(), i32> {
    with(|net| {
        let (at, sh) = match net.sock(h)? {
            Sock::Tcp(t) => {
                if how == 0 || how == 2 {
                    t.shut_read = true;
                }
                (t.at, t.h)
            }
            _ => return Err(ENOTCONN),
        };
        if how > 2 {
            return Err(EINVAL);
        }
        let s = net.tcp(at, sh);
        if matches!(s.state(), tcp::State::Closed | tcp::State::Listen) {
            return Err(ENOTCONN);
        }
        if how >= 1 {
            s.close();
        }
        Ok(())
    })?;
    // A read shutdown changes no smoltcp state, so `with` saw nothing to wake for; a reader
    // blocked on this connection must now return 0 (std's `close_read_wakes_up`).
    if how == 0 || how == 2 {
        wake_all();
    }
    Ok(())
}

/// Closes socket `h`; a connection says goodbye in the background (`abort`: at once, RST).
/// With `SO_LINGER` set, as on Linux: 0 s resets the connection; n s makes this call wait
/// until the peer acknowledged the FIN (and so all the data) or n s passed, after which the
/// goodbye goes on in the background.
pub fn close(h: u64, abort: bool) -> i32 {
    let linger = with(|net| {
        if net.sock(h).is_err() {
            return Err(-EBADF);
        }
        net.refs[h as usize] -= 1;
        if net.refs[h as usize] > 0 && !abort {
            return Ok(None);
        }
        let Some(sock) = net.socks.get_mut(h as usize).and_then(Option::take) else { return Err(-EBADF) };
        match sock {
            Sock::Tcp(t) => {
                if t.port != 0 {
                    net.tcp_ports.remove(&t.port);
                }
                let s = net.tcp(t.at, t.h);
                // RFC 9293: a close in SYN-SENT deletes the connection and sends nothing (smoltcp
                // would queue a RST, which to a neighbour that never answered ARP never goes,
                // and the program's end would wait for it).
                if s.state() == tcp::State::SynSent {
                    net.set(t.at).remove(t.h);
                    return Ok(None);
                }
                // As Linux: closing with unread data resets the connection.
                let reset = abort || t.reset || s.recv_queue() > 0 || t.linger == Some(0);
                if reset {
                    s.abort();
                } else {
                    s.close();
                }
                net.orphans.push((t.at, t.h, now_ns().saturating_add(LINGER_NS)));
                if let (Some(secs), false) = (t.linger, reset) {
                    return Ok(Some((t.at, t.h, secs)));
                }
            }
            Sock::Listener(l) => {
                for (at, pool) in l.pools {
                    for sh in pool {
                        let set = net.set(at);
                        set.get_mut::<tcp::Socket>(sh).abort();
                        net.orphans.push((at, sh, now_ns()));
                    }
                }
                net.tcp_ports.remove(&l.port);
            }
            Sock::Udp(u) => {
                for (at, sh) in u.socks {
                    net.set(at).remove(sh);
                }
                net.udp_ports.remove(&u.port);
            }
        }
        Ok(None)
    });
    match linger {
        Err(e) => e,
        Ok(None) => 0,
        Ok(Some((at, sh, secs))) => {
            let deadline = now_ns().saturating_add(u64::from(secs) * 1_000_000_000);
            let _ = block(deadline, ETIMEDOUT, |net| {
                // The orphan is dropped once it is done (or given up).
                let kept = net.orphans.iter().any(|&(a, o, _)| a == at && o == sh);
                let done = !kept
                    || net.down(at)
                    || matches!(net.tcp(at, sh).state(), tcp::State::FinWait2 | tcp::State::TimeWait | tcp::State::Closed);
                if done { Step::Done(Ok(())) } else { Step::Wait }
            });
            0
        }
    }
}

/// Another holder of socket `h` (std's `try_clone`); returns the same handle, which each
/// holder closes once.
pub fn dup(h: u64) -> Result<i64, i32> {
    with(|net| {
        net.sock(h)?;
        net.refs[h as usize] += 1;
        Ok(h as i64)
    })
}

/// The local (`peer == false`) or remote address of socket `h`.
pub fn addr(h: u64, peer: bool) -> Result<XkSockAddr, i32> {
    with(|net| {
        let (at, sh) = match net.sock(h)? {
            Sock::Tcp(t) => (t.at, t.h),
            Sock::Listener(l) => {
                return if peer { Err(ENOTCONN) } else { Ok(XkSockAddr::from_endpoint(l.addr, l.port, l.v6)) };
            }
            Sock::Udp(u) => {
                return match (peer, u.peer) {
                    (true, Some(p)) => Ok(XkSockAddr::from_endpoint(Some(p.addr), p.port, false)),
                    (true, None) => Err(ENOTCONN),
                    (false, _) => Ok(XkSockAddr::from_endpoint(u.addr, u.port, u.v6)),
                };
            }
        };
        let s = net.tcp(at, sh);
        let ep = if peer { s.remote_endpoint() } else { s.local_endpoint() };
        ep.map(|ep| XkSockAddr::from_endpoint(Some(ep.addr), ep.port, false)).ok_or(ENOTCONN)
    })
}

pub const OPT_NODELAY: u32 = 1;
pub const OPT_TTL: u32 = 2;
pub const OPT_ERROR: u32 = 3;
/// `SO_LINGER` of a connection: 0 off, else whole seconds plus one (so that every value
/// stays a non-negative return of `xk_sock_get_opt`).
pub const OPT_LINGER: u32 = 4;

/// Sets option `opt` of socket `h`.
pub fn set_opt(h: u64, opt: u32, value: u64) -> Result<(), i32> {
    with(|net| {
        if opt == OPT_LINGER {
            let Sock::Tcp(t) = net.sock(h)? else { return Err(EOPNOTSUPP) };
            t.linger = value.checked_sub(1).map(|secs| secs.min(i32::MAX as u64) as u32);
            return Ok(());
        }
        let hop = match opt {
            OPT_TTL if (1..=255).contains(&value) => Some(value as u8),
            OPT_TTL => return Err(EINVAL),
            OPT_NODELAY => None,
            _ => return Err(EINVAL),
        };
        let targets: Vec<(usize, SocketHandle, bool)> = match net.sock(h)? {
            Sock::Tcp(t) => vec![(t.at, t.h, true)],
            Sock::Listener(l) => {
                if opt != OPT_TTL {
                    return Err(EINVAL);
                }
                l.hop_limit = hop;
                l.pools.iter().flat_map(|(at, p)| p.iter().map(|&sh| (*at, sh, true))).collect()
            }
            Sock::Udp(u) => {
                if opt != OPT_TTL {
                    return Err(EOPNOTSUPP);
                }
                u.socks.iter().map(|&(at, sh)| (at, sh, false)).collect()
            }
        };
        for (at, sh, is_tcp) in targets {
            if is_tcp {
                let s = net.tcp(at, sh);
                match opt {
                    OPT_NODELAY => s.set_nagle_enabled(value == 0),
                    _ => s.set_hop_limit(hop),
                }
            } else {
                net.set(at).get_mut::<udp::Socket>(sh).set_hop_limit(hop);
            }
        }
        Ok(())
    })
}

/// Reads option `opt` of socket `h` (`OPT_ERROR` takes the pending error).
pub fn get_opt(h: u64, opt: u32) -> Result<u64, i32> {
    with(|net| {
        let (at, sh, is_tcp) = match net.sock(h)? {
            Sock::Tcp(t) => {
                if opt == OPT_ERROR {
                    return Ok(core::mem::take(&mut t.error) as u64);
                }
                if opt == OPT_LINGER {
                    return Ok(t.linger.map_or(0, |secs| u64::from(secs) + 1));
                }
                (t.at, t.h, true)
            }
            Sock::Listener(l) => match opt {
                OPT_TTL => return Ok(l.hop_limit.unwrap_or(64) as u64),
                OPT_ERROR => return Ok(0),
                _ => return Err(EINVAL),
            },
            Sock::Udp(u) => match (opt, u.socks.first()) {
                (OPT_ERROR, _) => return Ok(0),
                (OPT_TTL, Some(&(at, sh))) => (at, sh, false),
                _ => return Err(EOPNOTSUPP),
            },
        };
        if is_tcp {
            let s = net.tcp(at, sh);
            Ok(match opt {
                OPT_NODELAY => !s.nagle_enabled() as u64,
                OPT_TTL => s.hop_limit().unwrap_or(64) as u64,
                _ => return Err(EINVAL),
            })
        } else {
            Ok(net.set(at).get_mut::<udp::Socket>(sh).hop_limit().unwrap_or(64) as u64)
        }
    })
}

/// Binds a UDP socket to `local`; returns its handle.
pub fn udp_bind(local: &XkSockAddr) -> Result<i64, i32> {
    let (addr, port) = local.endpoint()?;
    with(|net| {
        let ifaces = net.bind_ifaces(addr)?;
        let port = Net::take_port(&mut net.udp_ports, port)?;
        let mut socks = Vec::new();
        for at in ifaces {
            let mut s = udp::Socket::new(
                udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; UDP_PACKETS], vec![0; UDP_BUF]),
                udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; UDP_PACKETS], vec![0; UDP_BUF]),
            );
            if s.bind(IpListenEndpoint { addr, port }).is_err() {
                net.udp_ports.remove(&port);
                return Err(EINVAL);
            }
            socks.push((at, net.set(at).add(s)));
        }
        Ok(net.insert(Sock::Udp(Udp { addr, port, v6: local.family == 6, socks, peer: None })))
    })
}

/// Sets (or with family 0, clears) the peer of UDP socket `h`.
pub fn udp_connect(h: u64, peer: &XkSockAddr) -> Result<(), i32> {
    let ep = match peer.endpoint()? {
        (Some(a), p) if p != 0 => IpEndpoint::new(a, p),
        _ => return Err(EINVAL),
    };
    with(|net| match net.sock(h)? {
        Sock::Udp(u) => {
            u.peer = Some(ep);
            Ok(())
        }
        _ => Err(EINVAL),
    })
}

fn udp_of(net: &mut Net, h: u64) -> Result<(Vec<(usize, SocketHandle)>, Option<IpEndpoint>), i32> {
    match net.sock(h)? {
        Sock::Udp(u) => Ok((u.socks.clone(), u.peer)),
        _ => Err(EOPNOTSUPP),
    }
}

/// Sends one datagram from UDP socket `h` to `to` (None: its peer).
pub fn udp_send(h: u64, data: &[u8], to: Option<&XkSockAddr>, deadline: u64) -> Result<usize, i32> {
    let to = match to {
        Some(a) => match a.endpoint()? {
            (Some(addr), port) if port != 0 => Some(IpEndpoint::new(addr, port)),
            _ => return Err(EINVAL),
        },
        None => None,
    };
    if data.len() > UDP_BUF {
        return Err(EMSGSIZE);
    }
    block(deadline, EAGAIN, |net| {
        let (socks, peer) = match udp_of(net, h) {
            Ok(x) => x,
            Err(e) => return Step::Done(Err(e)),
        };
        let Some(dest) = to.or(peer) else { return Step::Done(Err(ENOTCONN)) };
        // A socket bound to a vif's address sends from it, by that vif (its routes decide).
        let route = match socks.as_slice() {
            [(at, _)] if *at != LO && !is_loopback(&dest.addr) => Ok(*at),
            _ => net.route(&dest.addr),
        };
        let at = match route {
            Ok(at) => at,
            Err(e) => return Step::Done(Err(e)),
        };
        if net.down(at) {
            return Step::Done(Err(ENETDOWN));
        }
        if at != LO && matches!(dest.addr, IpAddress::Ipv4(_)) && !net.has_v4(at) {
            return Step::Done(Err(ENETUNREACH));
        }
        let Some(&(_, sh)) = socks.iter().find(|(a, _)| *a == at) else { return Step::Done(Err(ENETUNREACH)) };
        match net.set(at).get_mut::<udp::Socket>(sh).send_slice(data, dest) {
            Ok(()) => Step::Done(Ok(data.len())),
            Err(udp::SendError::BufferFull) => Step::Wait,
            Err(udp::SendError::Unaddressable) => Step::Done(Err(ENETUNREACH)),
        }
    })
}

/// Takes (or with `peek`, looks at) the next datagram on UDP socket `h`; a connected one
/// drops datagrams from others. Returns the length copied (cut to `buf`) and the sender.
pub fn udp_recv(h: u64, buf: &mut [u8], peek: bool, deadline: u64) -> Result<(usize, XkSockAddr), i32> {
    block(deadline, EAGAIN, |net| {
        let (socks, peer) = match udp_of(net, h) {
            Ok(x) => x,
            Err(e) => return Step::Done(Err(e)),
        };
        for &(at, sh) in &socks {
            let s = net.set(at).get_mut::<udp::Socket>(sh);
            loop {
                let from = match s.peek() {
                    Ok((_, meta)) => meta.endpoint,
                    Err(_) => break,
                };
                if peer.is_some_and(|p| p != from) {
                    let _ = s.recv();
                    continue;
                }
                let n = if peek {
                    let (data, _) = s.peek().expect("peeked above");
                    let n = data.len().min(buf.len());
                    buf[..n].copy_from_slice(&data[..n]);
                    n
                } else {
                    let (data, _) = s.recv().expect("peeked above");
                    let n = data.len().min(buf.len());
                    buf[..n].copy_from_slice(&data[..n]);
                    n
                };
                return Step::Done(Ok((n, XkSockAddr::from_endpoint(Some(from.addr), from.port, false))));
            }
        }
        if net.all_down(socks.iter().map(|(at, _)| *at)) { Step::Done(Err(ENETDOWN)) } else { Step::Wait }
    })
}

/// Resolves `name` to IPv4 addresses through the DNS server (`xen.dns` or DHCP's).
pub fn lookup(name: &[u8], out: &mut [XkSockAddr], deadline: u64) -> Result<usize, i32> {
    if name.eq_ignore_ascii_case(b"localhost") {
        let mut n = 0;
        for a in [IpAddress::v4(127, 0, 0, 1), IpAddress::Ipv6(Ipv6Address::LOCALHOST)] {
            if n < out.len() {
                out[n] = XkSockAddr::from_endpoint(Some(a), 0, false);
                n += 1;
            }
        }
        return Ok(n);
    }
    let name = core::str::from_utf8(name).map_err(|_| EINVAL)?;
    // Wait a while for DHCP to name a server.
    let until = deadline.min(now_ns().saturating_add(DHCP_WAIT_NS));
    let _ = block(
        until,
        ENOENT,
        |net| if net.dns_server().is_some() || !net.waiting_for_lease() { Step::Done(Ok(())) } else { Step::Wait },
    );
    let query = with(|net| -> Result<(usize, SocketHandle, dns::QueryHandle), i32> {
        let server = net.dns_server().ok_or(ENOENT)?;
        let at = net.route(&IpAddress::Ipv4(server))?;
        let dh = net.dns_socket_on(at, server).ok_or(ENOENT)?;
        let (iface, set) = net.parts(at).ok_or(ENOENT)?;
        let q = set
            .get_mut::<dns::Socket>(dh)
            .start_query(iface.context(), name, smoltcp::wire::DnsQueryType::A)
            .map_err(|e| {
                debug!("net: dns query for {name:?} not started: {e:?}");
                ENOENT
            })?;
        Ok((at, dh, q))
    })?;
    let (at, dh, query) = query;
    let r = block(deadline, ETIMEDOUT, |net| {
        if net.down(at) {
            return Step::Done(Err(ENETDOWN));
        }
        match net.set(at).get_mut::<dns::Socket>(dh).get_query_result(query) {
            Ok(addrs) => {
                let mut n = 0;
                for a in addrs.iter() {
                    if n < out.len() {
                        out[n] = XkSockAddr::from_endpoint(Some(*a), 0, false);
                        n += 1;
                    }
                }
                Step::Done(Ok(n))
            }
            Err(dns::GetQueryResultError::Pending) => Step::Wait,
            Err(dns::GetQueryResultError::Failed) => Step::Done(Err(ENOENT)),
        }
    });
    if r == Err(ETIMEDOUT) || r == Err(ENETDOWN) {
        // Still pending (a finished query is gone once its result was taken).
        with(|net| {
            let s = net.set(at).get_mut::<dns::Socket>(dh);
            // Taking a finished query's result frees its slot; only a pending one is cancelled.
            if matches!(s.get_query_result(query), Err(dns::GetQueryResultError::Pending)) {
                s.cancel_query(query);
            }
        });
    }
    r
}

// ---- The program's end. ----

/// The program is ending (exit, a return from `main`, a reboot exit): closes every
/// connection it still holds as Linux closes a process's sockets at exit, FIN after what it
/// wrote (RST when data it did not read is left). Handles stay valid, so a thread still
/// running gets errors, not a reused handle. Nothing when the program never used sockets.
pub fn begin_ending() {
    // The poll after it sends the FINs and RSTs; the network thread sends what follows.
    with_net(false, |net| {
        let open: Vec<(usize, SocketHandle, bool)> = net
            .socks
            .iter()
            .filter_map(|s| match s {
                Some(Sock::Tcp(t)) => Some((t.at, t.h, t.reset)),
                _ => None,
            })
            .collect();
        for (at, h, reset) in open {
            let s = net.tcp(at, h);
            if reset || s.recv_queue() > 0 {
                s.abort();
            } else {
                s.close();
            }
        }
        // Connections a listener holds that the program never accepted are reset, as Linux
        // resets a closed listener's queue; the pools take no new SYN.
        let mut pending = Vec::new();
        for sock in net.socks.iter_mut().flatten() {
            if let Sock::Listener(l) = sock {
                l.pool_size = 0;
                for (at, pool) in &mut l.pools {
                    pending.extend(pool.drain(..).map(|h| (*at, h)));
                }
            }
        }
        let now = now_ns();
        for (at, h) in pending {
            net.tcp(at, h).abort();
            net.orphans.push((at, h, now));
        }
        ((), true)
    });
}

/// Waits (for [`ENDING_NS`] at most) until what the program gave its sockets on the vif has
/// left the guest: every connection closed, reset or with its FIN acknowledged (and so all
/// its data), no datagram queued, every tx packet taken by the backend. Without it the domain
/// ended with a response still in a send buffer, and the client read nothing. Loopback is
/// not waited for: its peer is in the ending guest.
pub fn wait_delivered() {
    let deadline = now_ns().saturating_add(ENDING_NS);
    loop {
        // Counted before the poll `with_net` makes after it; the next round sees that poll's.
        let left = with_net(false, |net| (net.undelivered(), true)).unwrap_or(0);
        if left == 0 {
            return;
        }
        let now = now_ns();
        if now >= deadline {
            warn!(
                "net: the program ends with {left} connection(s), UDP socket(s) or tx buffer(s) not delivered after {} s",
                ENDING_NS / 1_000_000_000
            );
            return;
        }
        crate::sched::sleep_until(now.saturating_add(ENDING_POLL_NS).min(deadline));
    }
}

impl Net {
    /// What on the vifs (up) is not yet delivered: connections whose FIN (or data before it)
    /// is not acknowledged, UDP sockets with datagrams queued, tx buffers in flight.
    fn undelivered(&mut self) -> usize {
        let mut left = 0;
        for vif in self.vifs.iter().filter(|v| !v.dev.broken) {
            for (_, socket) in vif.set.iter() {
                left += match socket {
                    smoltcp::socket::Socket::Tcp(t) => (rst_pending(t)
                        || matches!(t.state(), tcp::State::FinWait1 | tcp::State::Closing | tcp::State::LastAck))
                        as usize,
                    smoltcp::socket::Socket::Udp(u) => (u.send_queue() > 0) as usize,
                    _ => 0,
                };
            }
            left += netfront::stack_tx_in_flight(vif.dev.index) as usize;
        }
        left
    }
}
