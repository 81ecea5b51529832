//! netfront: the driver of a Xen virtual network interface (`vif`), moving raw Ethernet frames
//! between the program and netback in another domain (`xen/include/public/io/netif.h`).
//!
//! A device is found at `device/vif/N` in this domain's xenstore folder (`backend`,
//! `backend-id`, `mac`). Opening it grants a tx and an rx ring page and a set of buffer pages to
//! the backend, allocates an event channel for it, publishes them, and goes through the xenbus
//! handshake. The rx side is in copy mode (`request-rx-copy`): every rx buffer page is granted
//! once, posted on the rx ring, and the backend copies each frame into one of them. Every
//! response from the backend is judged by [`crate::net::ring`]; a bad one disables the device
//! (every call then fails with `EIO`).
//!
//! The driver is run by the program's calls: `recv` and `send` take the responses that have
//! come, and sleep on the event channel's count when they must wait, so no event is lost.
//!
//! A device the kernel's IP stack drives negotiates offloads (`docs/net.md`, "Offloads"):
//! checksum offload both ways, and, when the backend offers `feature-sg` and
//! `feature-gso-tcpv4`, GSO both ways: the stack builds TCP/IPv4 segments of up to a packet,
//! which it writes straight into the tx pages (`Netfront::stack_emit`), and consecutive
//! segments of one flow go out as one packet over several slots
//! ([`crate::net::offload::Coalescer`]); the backend's large packets come in over several
//! slots ([`crate::net::rx_packet`]). A device
//! the program drives with raw frames gets none of that: frames of at most [`MAX_FRAME`]
//! bytes, checksums as the program wrote them.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::format;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use crate::net::offload::{self, Coalescer, Join, RxChecksum};
use crate::net::ring::{self, FrontRing, Outstanding, RX_SLOT_WORDS, RingError, TX_SLOT_WORDS, TxDone};
use crate::net::rx_packet::{RxAssembler, RxPacket};
use crate::net::tx_layout::{MAX_TX_SLOTS, continue_span, tx_buffers_for};
use crate::sync::Mutex;
use crate::xen::abi::errno;
use crate::xen::abi::netif::*;
use crate::xen::evtchn::{self, Owner};
use crate::xen::xenbus::{self, XenbusState};
use crate::xen::{grant, xenstore};

/// The fewest rx buffer pages posted to the backend (128 KiB), for the smallest guests: enough
/// for one GSO packet (17 slots) and some frames.
const MIN_RX_BUFFERS: u16 = 32;
/// The most rx buffer pages (1 MiB): the ring's size.
const MAX_RX_BUFFERS: u16 = 256;
/// The fewest tx buffer pages (64 KiB): frames are copied into them and granted read-only.
const MIN_TX_BUFFERS: u16 = 16;
/// The most tx buffer pages (512 KiB): with one extra-info slot a packet at most, the ring's
/// 256 slots then hold every request in flight.
const MAX_TX_BUFFERS: u16 = 128;
/// A guest's frames per buffer page of each kind: a 2 MiB guest (512 frames) keeps the
/// minimums, one of 32 MiB or more the maximums (`docs/net.md`).
const FRAMES_PER_RX_BUFFER: usize = 32;
const FRAMES_PER_TX_BUFFER: usize = 64;
/// The largest frame the program sends or receives raw: 1,500 bytes of payload (the largest
/// MTU taken, `ring::MAX_MTU`) and the 14-byte Ethernet header; a device's own limit is its MTU
/// and the header. The stack's frames are no longer, but the packets the backend sends it with
/// GSO are (`rx_packet::MAX_RX_PACKET`).
pub const MAX_FRAME: usize = ring::MAX_MTU as usize + ETH_HEADER;
/// An Ethernet header: destination, source, EtherType.
pub const ETH_HEADER: usize = 14;
/// The longest a packet is held for more segments while an earlier one is in flight
/// (`Netfront::end_of_poll`): the backend took 1-3 ms of dom0's CPU for a 64 KiB packet on the
/// emulated machine.
const TX_HOLD_NS: u64 = 10_000_000;
/// The most vifs a program may open (`device/vif/0` to `7`).
const MAX_DEVICES: usize = 8;
/// How long the handshake and the teardown may take.
const HANDSHAKE_NS: u64 = 10_000_000_000;
/// How long the disconnects of every device at the program's end may take together.
const ENDING_DISCONNECT_NS: u64 = 1_000_000_000;

/// Why a device could not be opened or used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetError {
    /// There is no `device/vif/N`, or no xenstore.
    NoDevice,
    /// The device is already open.
    Busy,
    /// A key of the device's folder is missing or malformed.
    BadKey(&'static str),
    /// Out of pages or grant entries.
    NoMemory,
    /// A xenstore, event channel or grant call failed with this errno.
    Xen(isize),
    /// The backend closed instead of connecting.
    BackendClosed,
    /// The backend went away (Closing or Closed, or its folder removed) while the device was
    /// connected: `xl network-detach`, or the backend domain's netback ending.
    Gone,
    /// The backend broke the ring protocol; the device is disabled.
    Ring(RingError),
    /// The device was disabled by an earlier error.
    Broken,
    /// The deadline passed.
    TimedOut,
    /// A frame too long (or empty) to send.
    BadFrame,
    /// The device is not open.
    NotOpen,
}

impl NetError {
    /// The ABI's `-errno` for this error.
    pub fn errno(self) -> isize {
        -match self {
            NetError::NoDevice => xenstore::ENODEV,
            NetError::Busy => 16,
            // ENETDOWN, as Linux's packet sockets on an interface that went down.
            NetError::Gone => 100,
            NetError::BadKey(_) | NetError::Ring(_) | NetError::Broken | NetError::BackendClosed => errno::EIO,
            NetError::NoMemory => errno::ENOMEM,
            NetError::Xen(e) => e.abs(),
            NetError::TimedOut => errno::ETIMEDOUT,
            NetError::BadFrame => 90, // EMSGSIZE
            NetError::NotOpen => errno::EBADF,
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
    fn new(domid: u16, readonly: bool) -> Result<GrantedPage, NetError> {
        let ptr = crate::mm::alloc_frames(1).ok_or(NetError::NoMemory)?;
        GrantedPage::grant(domid, ptr, readonly)
    }

    /// `count` pages at consecutive addresses when memory has such a run, else wherever they
    /// are found (tx packets are written in place across pages that happen to be adjacent:
    /// `Netfront::emit_place`).
    fn run(domid: u16, count: usize, readonly: bool) -> Result<Vec<GrantedPage>, NetError> {
        let Some(base) = crate::mm::alloc_frames(count) else {
            return (0..count).map(|_| GrantedPage::new(domid, readonly)).collect();
        };
        let mut pages = Vec::with_capacity(count);
        for i in 0..count {
            let ptr = base.wrapping_add(i * ring::PAGE_SIZE);
            match GrantedPage::grant(domid, ptr, readonly) {
                Ok(page) => pages.push(page),
                Err(e) => {
                    // `grant` freed page i; the ones made free theirs as `pages` drops.
                    if i + 1 < count {
                        crate::mm::free_frames(ptr.wrapping_add(ring::PAGE_SIZE), count - i - 1);
                    }
                    return Err(e);
                }
            }
        }
        Ok(pages)
    }

    /// Grants the frame at `ptr` (the caller's, from `mm`), which is freed if that fails.
    fn grant(domid: u16, ptr: *mut u8, readonly: bool) -> Result<GrantedPage, NetError> {
        match grant::grant_access(domid, ptr, readonly) {
            Ok(gref) => Ok(GrantedPage { ptr, gref }),
            Err(e) => {
                crate::mm::free_frames(ptr, 1);
                Err(if e == -28 { NetError::NoMemory } else { NetError::Xen(e) })
            }
        }
    }

    /// The page as ring words.
    ///
    /// The words live as long as `self`; the caller keeps the ring view no longer.
    fn words(&self) -> &'static [AtomicU32] {
        // SAFETY: the page is 4 KiB, page-aligned, mapped and ours until `drop`; the backend
        // writes it concurrently, so it is only reached through atomics. The 'static lifetime
        // is bounded by hand: `Netfront` declares its rings before their pages, so they go first.
        unsafe { core::slice::from_raw_parts(self.ptr as *const AtomicU32, ring::PAGE_WORDS) }
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

/// What the two ends agreed on (`netif.h`, "Feature and Optional Protocol Support").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Offloads {
    /// Frames may go out with their checksum blank (the backend has no
    /// `feature-no-csum-offload`), and rx frames may come blank (this frontend did not write
    /// it either).
    csum: bool,
    /// Tx packets may span several slots and be GSO packets (`feature-sg` and
    /// `feature-gso-tcpv4` of the backend, and checksum offload).
    tx_gso: bool,
    /// This frontend wrote `feature-sg` and `feature-gso-tcpv4`: rx packets may span slots.
    rx_gso: bool,
}

/// The tx packet being built from the stack's frames in one poll: its pages (ids, in order),
/// its length, and the coalescer when more segments may join it.
struct TxPending {
    pages: [u16; MAX_TX_SLOTS],
    count: usize,
    len: usize,
    co: Option<Coalescer>,
}

/// Where the stack's next frame is written (`Netfront::emit_place`).
enum Place {
    /// In place, continuing the pending packet: at packet offset `at`, over the last `header`
    /// bytes of its payload (kept in `saved` meanwhile), so that the frame's payload lands
    /// just after the packet's; `new_pages` tx buffers were taken after the packet's last one
    /// for the part of the frame beyond its last page.
    Continue { at: usize, header: usize, saved: [u8; offload::MAX_HEADER], new_pages: u16 },
    /// At the start of tx buffers `.0..(.0 + .1)`, beginning a packet.
    Fresh(u16, u16),
    /// Into the scratch buffer, then copied by `stack_send` (the pages where the frame would
    /// go are not at consecutive addresses, or not free).
    Copied,
}

/// Bytes cleared at the start of a frame written in place, before the stack writes it: the
/// longest header it builds (Ethernet, IPv6, a hop-by-hop header, TCP with options), so that
/// no byte of an earlier frame in the page could go out in a header field left unwritten.
const CLEARED_HEAD: usize = 128;

/// Counts kept for the log.
#[derive(Clone, Copy, Debug, Default)]
struct Counters {
    /// Rx frames dropped because a checksum failed or could not be checked.
    rx_bad_csum: u64,
    /// Tx packets sent that were coalesced from several segments, and their segments.
    tx_gso_packets: u64,
    tx_gso_segments: u64,
}

/// One open vif.
pub struct Netfront {
    index: u32,
    path: Vec<u8>,
    backend: Vec<u8>,
    backend_id: u16,
    mac: [u8; 6],
    /// From the device's `mtu` key (`ring::parse_mtu`), 1,500 without one.
    mtu: u16,
    // The ring views go before the pages they are over (fields drop in order).
    tx: FrontRing<'static>,
    rx: FrontRing<'static>,
    tx_ids: Outstanding,
    rx_ids: Outstanding,
    /// The id of the rx buffer posted at each ring index (an extra-info slot returns it).
    rx_posted: [u16; ring::RX_RING_SIZE as usize],
    rx_asm: RxAssembler,
    /// Rx packets the backend filled, in arrival order.
    filled: VecDeque<RxPacket>,
    /// Extra-info slots sent whose `NETIF_RSP_NULL` has not come.
    tx_extras: u32,
    tx_pending: Option<TxPending>,
    /// Since when (monotonic ns) the pending packet is held at the ends of polls.
    tx_held_since: Option<u64>,
    offloads: Offloads,
    counters: Counters,
    broken: bool,
    /// The backend went away (`watch_backend`): every call fails with [`NetError::Gone`], and
    /// the frontend has said Closed (or is saying it).
    gone: bool,
    /// This open's number, so that a watcher of an earlier open of the same vif never touches
    /// a later one.
    generation: u64,
    /// The xenstore watch on the backend's state (`watch_backend`), ended at close.
    watch: Option<u64>,
    /// `close` is saying goodbye: the slot stays taken until it is done.
    closing: bool,
    /// Where the watcher's goodbye to a backend that went away stands ([`GOODBYE_NONE`],
    /// [`GOODBYE_UNDER_WAY`], [`GOODBYE_DONE`]); a futex word, so that `close` waits for it.
    goodbye: alloc::sync::Arc<AtomicU32>,
    /// Driven by the kernel's TCP/IP stack (`net::stack`), not by the program's raw calls.
    stack: bool,
    port: Port,
    _tx_page: GrantedPage,
    _rx_page: GrantedPage,
    /// At consecutive addresses when memory allowed (`GrantedPage::run`).
    tx_bufs: Vec<GrantedPage>,
    rx_bufs: Vec<GrantedPage>,
    /// A frame the stack writes where it cannot go in place (the largest packet).
    scratch: Vec<u8>,
    /// Every tx buffer's page directly follows the one before (`GrantedPage::run` got a run):
    /// frames are written across pages in place.
    tx_contiguous: bool,
}

// SAFETY: the raw pages are owned by the device alone and reached only under `DEVICES`'s lock.
unsafe impl Send for Netfront {}

static DEVICES: Mutex<Vec<Option<Box<Netfront>>>> = Mutex::new(Vec::new());
/// Set by [`disconnect_all`]: the program has ended and the devices are being (or were) closed,
/// so a device that fails now is no news.
static ENDED: AtomicBool = AtomicBool::new(false);

/// Whether the program's end has closed (or is closing) every device.
pub fn ended() -> bool {
    ENDED.load(Ordering::Acquire)
}

/// The next open's [`Netfront::generation`].
static NEXT_GENERATION: AtomicU64 = AtomicU64::new(1);
/// The stack of a thread watching a backend's state: xenstore calls and a log line.
const WATCHER_STACK: usize = 32 << 10;
/// `Netfront::goodbye`: no goodbye, one under way (the watcher says Closing and Closed without
/// the device table's lock), or done.
const GOODBYE_NONE: u32 = 0;
const GOODBYE_UNDER_WAY: u32 = 1;
const GOODBYE_DONE: u32 = 2;
/// How often, and how many times, a watcher reads a backend's state again when a read failed
/// for a reason other than the key or folder being gone (no new event may come to ask again).
const REREAD_NS: u64 = 200_000_000;
const REREADS: u32 = 25;

fn deadline_in(ns: u64) -> u64 {
    crate::time::monotonic_ns().saturating_add(ns)
}

fn read_key(dir: &[u8], key: &'static str, deadline: u64) -> Result<Vec<u8>, NetError> {
    match xenstore::read(&xenbus::join(dir, key.as_bytes()), deadline) {
        Ok(mut value) => {
            while value.last() == Some(&0) {
                value.pop();
            }
            Ok(value)
        }
        Err(-2) => Err(NetError::BadKey(key)),
        Err(e) => Err(NetError::Xen(e)),
    }
}

fn write_key(dir: &[u8], key: &str, value: &[u8], deadline: u64) -> Result<(), NetError> {
    xenstore::write(&xenbus::join(dir, key.as_bytes()), value, deadline).map_err(NetError::Xen)
}

impl Netfront {
    /// Reads the device's keys, grants its pages and posts the rx buffers; `stack` says the
    /// kernel's IP stack drives it (and it negotiates offloads).
    fn new(index: u32, stack: bool, deadline: u64) -> Result<Netfront, NetError> {
        if !xenstore::available() {
            return Err(NetError::NoDevice);
        }
        let path = format!("device/vif/{index}").into_bytes();
        let backend = match read_key(&path, "backend", deadline) {
            Err(NetError::BadKey(_)) => return Err(NetError::NoDevice),
            other => other?,
        };
        let id = read_key(&path, "backend-id", deadline)?;
        let backend_id = core::str::from_utf8(&id)
            .ok()
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or(NetError::BadKey("backend-id"))?;
        let mac = ring::parse_mac(&read_key(&path, "mac", deadline)?).ok_or(NetError::BadKey("mac"))?;
        let mtu = match read_key(&path, "mtu", deadline) {
            // An optional key: missing (or unreadable) means the default.
            Err(NetError::BadKey(_)) => ring::MAX_MTU,
            Err(NetError::Xen(e)) if e == -errno::EACCES => ring::MAX_MTU,
            Err(e) => return Err(e),
            Ok(value) => match ring::parse_mtu(&value) {
                ring::Mtu::Taken(m) => m,
                ring::Mtu::Clamped(n, m) => {
                    warn!("netfront: vif {index}: mtu {n} in xenstore is outside {}..={}; using {m}", ring::MIN_MTU, ring::MAX_MTU);
                    m
                }
                ring::Mtu::Malformed => {
                    warn!("netfront: vif {index}: the mtu key is not a number; using {}", ring::MAX_MTU);
                    ring::MAX_MTU
                }
            },
        };
        let tx_page = GrantedPage::new(backend_id, false)?;
        let rx_page = GrantedPage::new(backend_id, false)?;
        ring::init_shared(tx_page.words());
        ring::init_shared(rx_page.words());
        let tx = FrontRing::new(tx_page.words(), TX_SLOT_WORDS).ok_or(NetError::NoMemory)?;
        let rx = FrontRing::new(rx_page.words(), RX_SLOT_WORDS).ok_or(NetError::NoMemory)?;
        let (tx_count, rx_count) = buffer_counts(crate::mm::frame_counts().0);
        let tx_bufs = GrantedPage::run(backend_id, tx_count as usize, true)?;
        let tx_contiguous = tx_bufs.windows(2).all(|w| w[0].ptr.wrapping_add(ring::PAGE_SIZE) == w[1].ptr);
        let rx_bufs = (0..rx_count).map(|_| GrantedPage::new(backend_id, false)).collect::<Result<Vec<_>, _>>()?;
        let port = Port(evtchn::alloc_unbound(backend_id, Owner::Kernel).map_err(NetError::Xen)?);
        let mut dev = Netfront {
            index,
            path,
            backend,
            backend_id,
            mac,
            mtu,
            tx,
            rx,
            tx_ids: Outstanding::new(tx_count),
            rx_ids: Outstanding::new(rx_count),
            rx_posted: [0; ring::RX_RING_SIZE as usize],
            rx_asm: RxAssembler::new(stack),
            filled: VecDeque::with_capacity(rx_count as usize),
            tx_extras: 0,
            tx_pending: None,
            tx_held_since: None,
            offloads: Offloads { rx_gso: stack, ..Offloads::default() },
            counters: Counters::default(),
            broken: false,
            gone: false,
            generation: NEXT_GENERATION.fetch_add(1, Ordering::Relaxed),
            watch: None,
            closing: false,
            goodbye: alloc::sync::Arc::new(AtomicU32::new(GOODBYE_NONE)),
            stack,
            port,
            _tx_page: tx_page,
            _rx_page: rx_page,
            tx_bufs,
            rx_bufs,
            scratch: alloc::vec![0; if stack { XEN_NETIF_MAX_TX_SIZE } else { MAX_FRAME }],
            tx_contiguous,
        };
        for id in 0..rx_count {
            dev.post_rx(id);
        }
        dev.push_rx();
        Ok(dev)
    }

    /// Reads the backend's feature keys (present once it is in InitWait); a missing key is 0.
    fn read_backend_features(&mut self, deadline: u64) {
        let flag = |key: &'static str| matches!(read_key(&self.backend, key, deadline).as_deref(), Ok(b"1"));
        if !self.stack {
            return;
        }
        let csum = !flag("feature-no-csum-offload");
        let tx_gso = csum && flag("feature-sg") && flag("feature-gso-tcpv4");
        self.offloads.csum = csum;
        self.offloads.tx_gso = tx_gso;
        if !csum {
            warn!("netfront: vif {}: the backend takes no blank checksums; computed here", self.index);
        }
        if !tx_gso {
            warn!("netfront: vif {}: the backend offers no feature-sg + feature-gso-tcpv4; no tx GSO", self.index);
        }
    }

    /// Publishes the rings and the event channel and connects (`netif.h`, "Frontend
    /// configuration"); the keys in the order Mini-OS writes them.
    fn connect(&mut self, deadline: u64) -> Result<(), NetError> {
        let path = self.path.clone();
        // A backend left Closed by an earlier open of the device (netback stays Closed while
        // the vif exists) goes back to InitWait when the frontend says Initialising.
        xenbus::switch_state(&path, XenbusState::Initialising, deadline).map_err(NetError::Xen)?;
        let ready = |s| matches!(s, XenbusState::InitWait | XenbusState::Connected);
        match xenbus::wait_for_backend_until(&self.backend, ready, deadline) {
            Ok(_) => {}
            Err(e) if e == -errno::ETIMEDOUT => return Err(NetError::TimedOut),
            Err(e) => return Err(NetError::Xen(e)),
        }
        write_key(&path, "tx-ring-ref", format!("{}", self._tx_page.gref).as_bytes(), deadline)?;
        write_key(&path, "rx-ring-ref", format!("{}", self._rx_page.gref).as_bytes(), deadline)?;
        write_key(&path, "event-channel", format!("{}", self.port.0).as_bytes(), deadline)?;
        // netif.h: "request-rx-copy": the frontend grants rx pages and the backend copies
        // into them (the only rx mode netback still has).
        write_key(&path, "request-rx-copy", b"1", deadline)?;
        // netif.h: "feature-rx-notify": the frontend notifies the backend of new rx requests
        // (netback refuses a frontend without it).
        write_key(&path, "feature-rx-notify", b"1", deadline)?;
        self.read_backend_features(deadline);
        if self.stack {
            // netif.h: "feature-sg": the frontend takes packets over several rx slots;
            // "feature-gso-tcpv4": it takes TCP/IPv4 GSO packets (with an extra-info slot).
            // Rx checksum offload is the default: frames may come NETRXF_csum_blank, and
            // `offload::rx_checksum` completes them.
            write_key(&path, "feature-sg", b"1", deadline)?;
            write_key(&path, "feature-gso-tcpv4", b"1", deadline)?;
        } else {
            // netif.h: "feature-no-csum-offload": the frontend cannot take frames whose
            // checksums are left blank (NETRXF_csum_blank), so netback fills them in: the
            // program sees frames as they would be on a wire.
            write_key(&path, "feature-no-csum-offload", b"1", deadline)?;
        }
        xenbus::switch_state(&path, XenbusState::Initialised, deadline).map_err(NetError::Xen)?;
        // Linux's netback connects when the frontend says Connected, not at Initialised
        // (its `frontend_changed`), so the frontend says so now and then waits.
        xenbus::switch_state(&path, XenbusState::Connected, deadline).map_err(NetError::Xen)?;
        match xenbus::wait_for_backend(&self.backend, deadline).map_err(NetError::Xen)? {
            XenbusState::Connected => {}
            _ => return Err(NetError::BackendClosed),
        }
        let _ = evtchn::notify(self.port.0);
        Ok(())
    }

    /// Says goodbye to the backend (Closing, then Closed), each step bounded by `deadline`.
    fn disconnect(&self, deadline: u64) {
        disconnect_path(&self.path, &self.backend, deadline);
    }

    /// The longest frame without segmentation: the MTU and the Ethernet header.
    fn frame_limit(&self) -> usize {
        usize::from(self.mtu) + ETH_HEADER
    }

    /// Logs a protocol error of the backend and disables the device.
    fn fail(&mut self, e: RingError) -> NetError {
        error!("netfront: vif {} (backend domain {}): {e:?}; device disabled", self.index, self.backend_id);
        if !self.broken {
            // Threads waiting on the device (other than the caller) learn of it now.
            let _ = evtchn::raise_local(self.port.0);
        }
        self.broken = true;
        NetError::Ring(e)
    }

    /// Takes the device down (every call then fails with [`NetError::Gone`]; nothing more goes
    /// on the rings); returns whether it was down already.
    fn go_down(&mut self) -> bool {
        let was = self.gone;
        self.gone = true;
        self.tx_pending = None;
        was
    }

    fn usable(&self) -> Result<(), NetError> {
        if self.gone {
            Err(NetError::Gone)
        } else if self.broken {
            Err(NetError::Broken)
        } else {
            Ok(())
        }
    }

    /// Hands rx buffer `id` to the backend again; [`Self::push_rx`] publishes what was posted.
    fn post_rx(&mut self, id: u16) {
        let gref = self.rx_bufs[id as usize].gref;
        let at = self.rx.next_request() as usize % self.rx_posted.len();
        self.rx_posted[at] = id;
        // The buffer is not outstanding (it was completed), so the insert and the ring slot
        // (outstanding ids bound the ring's use) cannot fail.
        if !self.rx_ids.insert(id) || !self.rx.put_request(&ring::rx_request(NetifRxRequest { id, pad: 0, gref })) {
            error!("netfront: vif {}: rx buffer {id} could not be posted", self.index);
        }
    }

    /// Publishes the rx buffers posted since the last push, notifying the backend if it waits
    /// for them. Once per packet, not per buffer: a backend short of slots for a packet asks
    /// to be woken at the next request, so pushing each buffer woke it once a buffer, up to
    /// 17 times for one GSO packet.
    fn push_rx(&mut self) {
        if self.rx.push() {
            let _ = evtchn::notify(self.port.0);
        }
    }

    /// Takes every rx response that has come; returns whether there were any.
    fn poll_rx(&mut self) -> Result<bool, NetError> {
        let mut any = false;
        loop {
            loop {
                let at = self.rx.next_response() as usize % self.rx_posted.len();
                let Some(words) = self.rx.take_response().map_err(|e| self.fail(e))? else { break };
                any = true;
                let step = match self.rx_asm.take(&words, self.rx_posted[at], &mut self.rx_ids) {
                    Ok(step) => step,
                    Err(e) => return Err(self.fail(e)),
                };
                if let Some(id) = step.repost {
                    self.post_rx(id);
                    self.push_rx();
                }
                if let Some(packet) = step.packet {
                    self.filled.push_back(packet);
                }
            }
            if !self.rx.final_check().map_err(|e| self.fail(e))? {
                return Ok(any);
            }
        }
    }

    /// Copies the next received packet into `buf` (cut to its length); returns the bytes
    /// copied, or `None` when no packet has come. The stack's packets have their checksums
    /// judged (`offload::rx_checksum`): one that fails is dropped and counted.
    fn take_frame(&mut self, buf: &mut [u8]) -> Result<Option<usize>, NetError> {
        self.usable()?;
        loop {
            if let Some(packet) = self.filled.pop_front() {
                let n = self.copy_out(&packet, buf);
                if !self.stack || n < packet.len {
                    return Ok(Some(n));
                }
                let validated = packet.flags & NETRXF_DATA_VALIDATED != 0;
                let blank = packet.flags & NETRXF_CSUM_BLANK != 0;
                if offload::rx_checksum(&mut buf[..n], validated, blank) == RxChecksum::Good {
                    return Ok(Some(n));
                }
                self.counters.rx_bad_csum += 1;
                debug!(
                    "netfront: vif {}: rx frame of {n} bytes with a bad checksum dropped ({} so far)",
                    self.index, self.counters.rx_bad_csum
                );
                continue;
            }
            if !self.poll_rx()? {
                return Ok(None);
            }
        }
    }

    /// Copies `packet`'s slots one after another into `buf` (as much as fits) and posts their
    /// buffers again; returns the bytes copied.
    fn copy_out(&mut self, packet: &RxPacket, buf: &mut [u8]) -> usize {
        let mut n = 0;
        for slot in packet.slots() {
            let take = (buf.len() - n).min(slot.len as usize);
            let page = self.rx_bufs[slot.id as usize].ptr;
            // SAFETY: `check_rx` bounded `offset + len` by the page, which is mapped and ours;
            // the backend finished copying before it published the response (the ring's
            // acquire), and a hostile one rewriting it now only changes the bytes. `take`
            // fits `buf` after `n`.
            unsafe { core::ptr::copy_nonoverlapping(page.add(slot.offset as usize), buf.as_mut_ptr().add(n), take) };
            n += take;
            self.post_rx(slot.id);
        }
        self.push_rx();
        n
    }

    /// Tx buffers not in flight (nor in the pending packet).
    fn tx_free(&self) -> u32 {
        self.tx_bufs.len() as u32 - self.tx_ids.count()
    }

    /// Takes every tx completion that has come.
    ///
    /// An event for the next completion is asked for only while fewer than
    /// [`Self::tx_free_needed`]
    /// buffers are free, since only then does a sender wait for one; otherwise completions are
    /// taken on the next send, and the backend's completions during a bulk send raise no
    /// upcall each.
    fn reap_tx(&mut self) -> Result<(), NetError> {
        loop {
            while let Some(words) = self.tx.take_response().map_err(|e| self.fail(e))? {
                match ring::check_tx(ring::tx_response(&words), &mut self.tx_ids, &mut self.tx_extras) {
                    Ok(TxDone::Sent(_) | TxDone::Null) => {}
                    Ok(TxDone::Failed(id)) => debug!("netfront: vif {}: the backend dropped tx {id}", self.index),
                    Err(e) => return Err(self.fail(e)),
                }
            }
            if self.tx_free() >= self.tx_free_needed() {
                return Ok(());
            }
            if !self.tx.final_check().map_err(|e| self.fail(e))? {
                return Ok(());
            }
        }
    }

    /// Queues the program's raw `frame` for the backend, as it is; `None` when every tx
    /// buffer is in flight.
    fn try_send(&mut self, frame: &[u8]) -> Result<Option<usize>, NetError> {
        self.usable()?;
        if frame.len() > self.frame_limit() {
            return Err(NetError::BadFrame);
        }
        self.reap_tx()?;
        let Some(id) = self.tx_ids.take() else { return Ok(None) };
        self.write_page(id, 0, frame);
        let req = NetifTxRequest { gref: self.tx_bufs[id as usize].gref, offset: 0, flags: 0, id, size: frame.len() as u16 };
        if !self.tx.put_request(&ring::tx_request(req)) {
            let _ = self.tx_ids.complete(id);
            return Ok(None);
        }
        self.push_tx();
        Ok(Some(frame.len()))
    }

    fn push_tx(&mut self) {
        if self.tx.push() {
            let _ = evtchn::notify(self.port.0);
        }
    }

    /// Copies `bytes` into tx buffer `id`'s page at `at` (`at + bytes.len()` at most a page).
    fn write_page(&mut self, id: u16, at: usize, bytes: &[u8]) {
        let page = &self.tx_bufs[id as usize];
        let n = bytes.len().min(ring::PAGE_SIZE.saturating_sub(at));
        // SAFETY: the page is mapped and ours and `at + n` lies in it; the backend only reads
        // it (a read-only grant), and not before the request that names it is pushed.
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), page.ptr.add(at), n) };
    }

    /// The largest coalesced packet: 64 KiB, the slots a backend takes, and under half the tx
    /// buffers, so that with one such packet in flight the next can be built (it needs one
    /// buffer more than its pages: `tx_room`).
    fn tx_limit(&self) -> usize {
        let pages = (self.tx_bufs.len().saturating_sub(1) / 2).min(MAX_TX_SLOTS);
        XEN_NETIF_MAX_TX_SIZE.min(pages * ring::PAGE_SIZE)
    }

    /// The largest frame the stack may hand over: a packet's worth with GSO (the stack cuts
    /// nothing the backend can cut), else one frame.
    fn stack_frame_limit(&self) -> usize {
        if self.offloads.tx_gso { self.tx_limit() } else { self.frame_limit() }
    }

    /// Free tx buffers the stack's next frame needs, not knowing its length: those of the
    /// largest frame ([`Self::tx_room`]).
    fn tx_free_needed(&self) -> u32 {
        tx_buffers_for(self.stack_frame_limit())
    }

    /// Whether the stack may build its next frame, of any length up to the largest: asked
    /// before smoltcp sends (`VifDev::transmit`). A pending packet is sent first if it holds
    /// the buffers the frame would need.
    fn stack_can_send(&mut self) -> Result<bool, NetError> {
        self.tx_room(self.stack_frame_limit())
    }

    /// Whether a frame of `len` bytes can be taken: free tx buffers for its pages and one more,
    /// as a frame appended to the pending packet may straddle a page. A reply smoltcp builds
    /// while it takes a packet in (an ACK, an ARP or ICMP answer) was never asked about
    /// beforehand: it needs only its own room. A pending packet is sent first if it holds the
    /// buffers the frame would need.
    fn tx_room(&mut self, len: usize) -> Result<bool, NetError> {
        self.usable()?;
        self.reap_tx()?;
        let needed = tx_buffers_for(len);
        if self.tx_free() < needed && self.tx_pending.is_some() {
            self.flush_tx();
            self.reap_tx()?;
        }
        Ok(self.tx_free() >= needed)
    }

    /// Takes the stack's `frame` (cut at `gso` by the backend, if the stack asked), copying
    /// it: appended to the pending packet if it continues it, else the pending packet is sent
    /// and the frame starts the next one. `None` when no tx buffer is free.
    fn stack_send(&mut self, frame: &[u8], gso: Option<usize>) -> Result<Option<usize>, NetError> {
        if !self.tx_room(frame.len())? {
            return Ok(None);
        }
        if let Some(mut p) = self.tx_pending.take() {
            if let Some(Join::Append(from)) = p.co.as_mut().map(|co| co.join(frame, gso)) {
                self.append(&mut p, &frame[from..]);
                self.tx_pending = Some(p);
                return Ok(Some(frame.len()));
            }
            self.tx_pending = Some(p);
            self.flush_tx();
        }
        let Some(id) = self.tx_ids.take() else { return Ok(None) };
        let co = self.coalescer(frame, gso);
        let mut p = TxPending { pages: [id; MAX_TX_SLOTS], count: 1, len: 0, co };
        self.append(&mut p, frame);
        self.start_packet(p);
        Ok(Some(frame.len()))
    }

    /// The coalescer for a packet that `frame` starts (`None`: it goes alone, as it is).
    fn coalescer(&self, frame: &[u8], gso: Option<usize>) -> Option<Coalescer> {
        if self.offloads.tx_gso { Coalescer::start(frame, gso, self.tx_limit()) } else { None }
    }

    /// Makes `p`, which holds one frame, the pending packet; it is sent at once if it can
    /// never be coalesced or grow.
    fn start_packet(&mut self, p: TxPending) {
        let alone = !p.co.is_some_and(|co| co.may_grow());
        self.tx_pending = Some(p);
        if alone {
            self.flush_tx();
        }
    }

    /// Lets the stack write its next frame of `len` bytes (cut at `gso` by the backend if the
    /// stack asked) with `f`, and takes it as [`Self::stack_send`] does, but without copying
    /// where it can: a frame that starts a packet is written at the start of free tx buffers
    /// at consecutive addresses, and a segment that may continue the pending packet is written
    /// where its payload belongs, just after the packet's payload (its header over the
    /// payload's last bytes, kept aside and put back once the coalescer has read it). Returns
    /// `f`'s result and whether the frame was taken.
    fn stack_emit<R>(&mut self, len: usize, gso: Option<usize>, f: impl FnOnce(&mut [u8]) -> R) -> (R, Result<Option<usize>, NetError>) {
        let place = match self.tx_room(len) {
            Ok(true) => self.emit_place(len),
            other => return (self.with_scratch(len, f), other.map(|_| None)),
        };
        match place {
            Place::Copied => {
                let mut scratch = core::mem::take(&mut self.scratch);
                scratch[..len.min(CLEARED_HEAD)].fill(0);
                let r = f(&mut scratch[..len]);
                let sent = self.stack_send(&scratch[..len], gso);
                self.scratch = scratch;
                (r, sent)
            }
            Place::Fresh(id, n) => {
                // SAFETY: buffers `id..id + n` were just taken (no request names them, so the
                // backend does not read them); their pages are mapped, ours, and at consecutive
                // addresses (`tx_contiguous`, or `n` is 1), and `len` fits them.
                let frame = unsafe { core::slice::from_raw_parts_mut(self.tx_bufs[id as usize].ptr, len) };
                frame[..len.min(CLEARED_HEAD)].fill(0);
                let r = f(frame);
                let co = self.coalescer(frame, gso);
                let mut p = TxPending { pages: [id; MAX_TX_SLOTS], count: n as usize, len, co };
                for (i, page) in p.pages[..n as usize].iter_mut().enumerate() {
                    *page = id + i as u16;
                }
                // `frame` is not used again: flushing writes the pages through their pointers.
                self.start_packet(p);
                (r, Ok(Some(len)))
            }
            Place::Continue { at, header, saved, new_pages } => {
                let Some(mut p) = self.tx_pending.take() else { unreachable!("emit_place continues a pending packet") };
                let ptr = self.packet_ptr(&p, at);
                // SAFETY: `emit_place` checked that packet bytes `at..at + len` lie in pages at
                // consecutive addresses: the packet's own (not yet requested, so the backend
                // does not read them) and the `new_pages` after them, just taken; all are
                // mapped and ours.
                let frame = unsafe { core::slice::from_raw_parts_mut(ptr, len) };
                frame[..len.min(CLEARED_HEAD)].fill(0);
                let r = f(frame);
                let next = p.pages[p.count - 1] + 1;
                let joined = p.co.as_mut().map(|co| co.join(frame, gso));
                if let Some(Join::Append(from)) = joined {
                    debug_assert_eq!(from, header, "the coalescer takes only its own header length");
                    frame[..header].copy_from_slice(&saved[..header]);
                    for id in next..next + new_pages {
                        p.pages[p.count] = id;
                        p.count += 1;
                    }
                    p.len += len - header;
                    self.tx_pending = Some(p);
                    return (r, Ok(Some(len)));
                }
                // Not a continuation after all: the frame goes on its own, the packet as it was.
                // FIXME: such a frame is copied twice (here, then by `stack_send`); a segment
                // of another flow while a packet is pending (two bulk sends at once) is one of
                // them, up to 64 KiB each time.
                let mut scratch = core::mem::take(&mut self.scratch);
                scratch[..len].copy_from_slice(frame);
                frame[..header].copy_from_slice(&saved[..header]);
                for id in next..next + new_pages {
                    let _ = self.tx_ids.complete(id);
                }
                self.tx_pending = Some(p);
                self.flush_tx();
                let sent = self.stack_send(&scratch[..len], gso);
                self.scratch = scratch;
                (r, sent)
            }
        }
    }

    /// Runs `f` on `len` bytes of the scratch buffer, for a frame that is dropped.
    fn with_scratch<R>(&mut self, len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
        let mut scratch = core::mem::take(&mut self.scratch);
        let r = f(&mut scratch[..len]);
        self.scratch = scratch;
        r
    }

    /// Where the stack's next frame of `len` bytes goes (below, [`Place`]). A pending packet
    /// the frame cannot join (closed, full, or the frame carries no payload) is sent first.
    fn emit_place(&mut self, len: usize) -> Place {
        if let Some(p) = &self.tx_pending {
            match p.co {
                Some(co) if co.may_take(len) && co.len() == p.len => return self.continue_place(len, co.header_len()),
                _ => self.flush_tx(),
            }
        }
        let n = len.div_ceil(ring::PAGE_SIZE) as u16;
        if n > 1 && !self.tx_contiguous {
            return Place::Copied;
        }
        match self.tx_ids.take_run(n) {
            Some(id) => Place::Fresh(id, n),
            None => Place::Copied,
        }
    }

    /// [`Place::Continue`] for a frame of `len` bytes with a `header`-byte header, if the
    /// pending packet's pages it would span are at consecutive addresses and the buffers
    /// after its last page are free for the rest; else [`Place::Copied`].
    fn continue_place(&mut self, len: usize, header: usize) -> Place {
        let Some(p) = &self.tx_pending else { return Place::Copied };
        let Some((at, new_pages)) = continue_span(&p.pages[..p.count], p.len, header, len) else { return Place::Copied };
        let (tail, last) = (self.packet_ptr(p, at), p.pages[p.count - 1]);
        if !self.tx_contiguous || (new_pages > 0 && !self.tx_ids.insert_run(last.wrapping_add(1), new_pages)) {
            return Place::Copied;
        }
        let mut saved = [0u8; offload::MAX_HEADER];
        // SAFETY: packet bytes `at..at + header` were written by earlier frames and lie in the
        // packet's pages, consecutive ids and so (`tx_contiguous`) at consecutive addresses
        // (`continue_span`).
        let tail = unsafe { core::slice::from_raw_parts(tail, header) };
        saved[..header].copy_from_slice(tail);
        Place::Continue { at, header, saved, new_pages }
    }

    /// The address of packet byte `at` of `p` (in page `at / PAGE_SIZE` of the packet).
    fn packet_ptr(&self, p: &TxPending, at: usize) -> *mut u8 {
        let page = &self.tx_bufs[p.pages[at / ring::PAGE_SIZE] as usize];
        page.ptr.wrapping_add(at % ring::PAGE_SIZE)
    }

    /// The end of one of the stack's polls. The pending packet goes now unless it is a TCP
    /// packet that the next poll's segments may still continue (open, room for a segment)
    /// while another packet is in flight: then it waits for that packet's completion, whose
    /// event is asked for, as Linux's TCP holds a small send while the device has earlier
    /// ones (autocorking). A bulk send's polls each add what the program wrote meanwhile; held,
    /// they go out as one packet instead of one packet a poll. A packet with nothing in flight
    /// before it (a request, an answer) is never held, and none longer than [`TX_HOLD_NS`] (a
    /// backend may keep a completion long, e.g. while the packet waits for a slow reader):
    /// returns when the held packet must go.
    fn end_of_poll(&mut self, now: u64) -> Option<u64> {
        let growing = self.tx_pending.as_ref().is_some_and(|p| p.co.is_some_and(|co| co.may_grow()));
        let until = self.tx_held_since.get_or_insert(now).saturating_add(TX_HOLD_NS);
        if growing && now < until && self.usable().is_ok() {
            loop {
                if self.reap_tx().is_err() {
                    break;
                }
                let held = self.tx_pending.as_ref().map_or(0, |p| p.count as u32);
                if self.tx_ids.count() <= held {
                    break;
                }
                match self.tx.final_check() {
                    // Asked for an event at the next completion, and none came meanwhile.
                    Ok(false) => return Some(until),
                    Ok(true) => {}
                    Err(e) => {
                        self.fail(e);
                        break;
                    }
                }
            }
        }
        self.flush_tx();
        None
    }

    /// Appends `bytes` to `p`, taking buffers as pages fill (the coalescer's limit keeps the
    /// packet within `MAX_TX_SLOTS` pages, and `stack_can_send` left two buffers free).
    fn append(&mut self, p: &mut TxPending, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let at = p.len % ring::PAGE_SIZE;
            if p.len > 0 && at == 0 {
                let Some(id) = self.tx_ids.take().filter(|_| p.count < MAX_TX_SLOTS) else {
                    error!("netfront: vif {}: a coalesced packet outgrew its buffers", self.index);
                    return;
                };
                p.pages[p.count] = id;
                p.count += 1;
            }
            let n = bytes.len().min(ring::PAGE_SIZE - at);
            self.write_page(p.pages[p.count - 1], at, &bytes[..n]);
            p.len += n;
            bytes = &bytes[n..];
        }
    }

    /// Sends the pending packet, if any: one slot for a lone frame (its checksum left blank
    /// or computed), or a GSO packet: the first slot (its size the packet's), the GSO
    /// extra-info slot, then a slot a page.
    fn flush_tx(&mut self) {
        self.tx_held_since = None;
        let Some(p) = self.tx_pending.take() else { return };
        let mut flags = 0;
        let mut gso = None;
        match p.co.filter(|co| co.needs_gso()) {
            Some(co) => {
                let mut header = [0u8; 128];
                co.finish(&mut header);
                self.write_page(p.pages[0], 0, &header[..co.header_len()]);
                flags = NETTXF_CSUM_BLANK | NETTXF_DATA_VALIDATED | NETTXF_EXTRA_INFO;
                gso = Some(co.mss());
                self.counters.tx_gso_packets += 1;
                self.counters.tx_gso_segments += co.segments() as u64;
            }
            None if p.len > self.frame_limit() => {
                // The stack cuts every segment the coalescer does not take (`stack_frame_limit`).
                error!("netfront: vif {}: a frame of {} bytes, longer than the MTU; dropped", self.index, p.len);
                for &id in &p.pages[..p.count] {
                    let _ = self.tx_ids.complete(id);
                }
                return;
            }
            None => {
                let page = &self.tx_bufs[p.pages[0] as usize];
                // SAFETY: the page is mapped and ours, `p.len` (one frame) lies in it, and the
                // backend reads it only after the request is pushed.
                let frame = unsafe { core::slice::from_raw_parts_mut(page.ptr, p.len) };
                if offload::tx_checksum(frame, self.offloads.csum) {
                    flags = NETTXF_CSUM_BLANK | NETTXF_DATA_VALIDATED;
                }
            }
        }
        let needed = p.count as u32 + u32::from(gso.is_some());
        // The ring holds every buffer's request and an extra-info slot each (MAX_TX_BUFFERS),
        // and `append` never runs out of buffers (`stack_can_send`); neither is expected.
        let short = p.co.is_some_and(|co| co.len() != p.len);
        if self.tx.free_requests() < needed || short {
            error!("netfront: vif {}: no room for a packet of {} bytes; dropped", self.index, p.len);
            for &id in &p.pages[..p.count] {
                let _ = self.tx_ids.complete(id);
            }
            return;
        }
        self.put_packet(&p, flags, gso);
        self.push_tx();
    }

    /// Queues `p`'s requests: the first slot with `flags` and the packet's size, the GSO
    /// extra-info slot if `gso`, and the rest, `NETTXF_more_data` on all but the last.
    fn put_packet(&mut self, p: &TxPending, flags: u16, gso: Option<u16>) {
        for (i, &id) in p.pages[..p.count].iter().enumerate() {
            let last = i + 1 == p.count;
            let mut f = if last { 0 } else { NETTXF_MORE_DATA };
            let size = if i == 0 {
                f |= flags;
                p.len
            } else {
                (p.len - i * ring::PAGE_SIZE).min(ring::PAGE_SIZE)
            };
            let req = NetifTxRequest { gref: self.tx_bufs[id as usize].gref, offset: 0, flags: f, id, size: size as u16 };
            self.tx.put_request(&ring::tx_request(req));
            if let (0, Some(mss)) = (i, gso) {
                let info = NetifExtraInfo {
                    kind: XEN_NETIF_EXTRA_TYPE_GSO,
                    gso_size: mss,
                    gso_type: XEN_NETIF_GSO_TYPE_TCPV4,
                    ..NetifExtraInfo::default()
                };
                self.tx.put_request(&ring::extra_info_words(info));
                self.tx_extras += 1;
            }
        }
    }
}

/// The frontend at `path` says goodbye to the backend at `backend`: Closing, then (once the
/// backend is closing or gone) Closed, then waits for the backend to be Closed (or back in
/// InitWait, or removed), each step bounded by `deadline`.
fn disconnect_path(path: &[u8], backend: &[u8], deadline: u64) {
    let _ = xenbus::switch_state(path, XenbusState::Closing, deadline);
    let gone = |s| matches!(s, XenbusState::Closing | XenbusState::Closed | XenbusState::Unknown);
    let _ = xenbus::wait_for_backend_until(backend, gone, deadline);
    let _ = xenbus::switch_state(path, XenbusState::Closed, deadline);
    let done = |s| matches!(s, XenbusState::Closed | XenbusState::InitWait | XenbusState::Unknown);
    let _ = xenbus::wait_for_backend_until(backend, done, deadline);
}

/// Tx and rx buffer pages for a guest of `frames` 4 KiB frames (`FRAMES_PER_*_BUFFER`, within
/// the minimums and maximums).
fn buffer_counts(frames: usize) -> (u16, u16) {
    let tx = (frames / FRAMES_PER_TX_BUFFER).clamp(MIN_TX_BUFFERS as usize, MAX_TX_BUFFERS as usize);
    let rx = (frames / FRAMES_PER_RX_BUFFER).clamp(MIN_RX_BUFFERS as usize, MAX_RX_BUFFERS as usize);
    (tx as u16, rx as u16)
}

/// The program's raw device `index` (one the stack drives is not the program's).
fn slot(devices: &mut Vec<Option<Box<Netfront>>>, index: u32) -> Result<&mut Netfront, NetError> {
    match devices.get_mut(index as usize) {
        Some(Some(dev)) if !dev.stack => Ok(dev),
        _ => Err(NetError::NotOpen),
    }
}

/// The stack's device `index`.
fn stack_slot(devices: &mut Vec<Option<Box<Netfront>>>, index: u32) -> Result<&mut Netfront, NetError> {
    match devices.get_mut(index as usize) {
        Some(Some(dev)) if dev.stack => Ok(dev),
        _ => Err(NetError::NotOpen),
    }
}

/// Opens `device/vif/INDEX` for the kernel's IP stack: the program's raw calls then see it
/// as busy. Returns the MAC and the event channel port, whose events mean new responses.
pub fn open_for_stack(index: u32) -> Result<([u8; 6], u32), NetError> {
    let mac = open_as(index, true)?;
    let mut devices = DEVICES.lock();
    let dev = stack_slot(&mut devices, index)?;
    Ok((mac, dev.port.0))
}

/// The stack's receive: the next frame into `buf`, or `None` when none has come (never waits).
pub fn stack_recv(index: u32, buf: &mut [u8]) -> Result<Option<usize>, NetError> {
    let mut devices = DEVICES.lock();
    stack_slot(&mut devices, index)?.take_frame(buf)
}

/// The stack's send: `f` writes the next frame of `len` bytes, into tx pages where it can
/// (`Netfront::stack_emit`), to be cut at `gso` by the backend if the stack asked; it may wait
/// in a coalesced packet until [`stack_flush`]. Returns `f`'s result and whether the frame was
/// taken (`None`: every tx buffer is in flight; never waits).
pub fn stack_emit<R>(index: u32, len: usize, gso: Option<usize>, f: impl FnOnce(&mut [u8]) -> R) -> (R, Result<Option<usize>, NetError>) {
    let mut devices = DEVICES.lock();
    let e = match stack_slot(&mut devices, index) {
        Ok(dev) if (1..=dev.stack_frame_limit()).contains(&len) => return dev.stack_emit(len, gso, f),
        Ok(_) => NetError::BadFrame,
        Err(e) => e,
    };
    drop(devices);
    let mut frame = alloc::vec![0u8; len];
    (f(&mut frame), Err(e))
}

/// The largest TCP/IPv4 frame, Ethernet header included, the stack may build for the backend
/// to cut into segments (smoltcp's segmentation offload), or `None` when the backend takes no
/// GSO packets.
pub fn stack_gso_limit(index: u32) -> Option<usize> {
    let mut devices = DEVICES.lock();
    let dev = stack_slot(&mut devices, index).ok()?;
    dev.offloads.tx_gso.then(|| dev.tx_limit())
}

/// At the end of the stack's poll at `now`: sends the packet its frames were coalesced into,
/// or holds it while it may still grow and an earlier packet is in flight (below,
/// `Netfront::end_of_poll`); returns when (monotonic ns) a held packet must go, so that the
/// stack polls again by then.
pub fn stack_flush(index: u32, now: u64) -> Option<u64> {
    let mut devices = DEVICES.lock();
    stack_slot(&mut devices, index).ok()?.end_of_poll(now)
}

/// The stack's tx buffers in flight after taking the completions that came (the pending
/// packet is sent first): 0 once the backend has taken every packet it was given.
pub fn stack_tx_in_flight(index: u32) -> u32 {
    let mut devices = DEVICES.lock();
    let Ok(dev) = stack_slot(&mut devices, index) else { return 0 };
    if dev.usable().is_err() {
        return 0;
    }
    dev.flush_tx();
    if dev.reap_tx().is_err() {
        return 0;
    }
    dev.tx_ids.count()
}

/// The program's device `index`'s MTU, or `None` when it is not open (or is the stack's).
pub fn mtu(index: u32) -> Option<u16> {
    let mut devices = DEVICES.lock();
    slot(&mut devices, index).ok().map(|dev| dev.mtu)
}

/// The stack's device `index`'s MTU.
pub fn stack_mtu(index: u32) -> Option<u16> {
    let mut devices = DEVICES.lock();
    stack_slot(&mut devices, index).ok().map(|dev| dev.mtu)
}

/// Whether a frame could be taken now (tx buffers are free).
pub fn stack_can_send(index: u32) -> bool {
    let mut devices = DEVICES.lock();
    stack_slot(&mut devices, index).is_ok_and(|dev| dev.stack_can_send().unwrap_or(false))
}

/// Opens and connects `device/vif/INDEX`; returns its MAC address.
///
/// FIXME: the device table's lock is held through the handshake (up to 10 s), so other
/// devices' calls wait meanwhile; a per-device lock would retire this.
pub fn open(index: u32) -> Result<[u8; 6], NetError> {
    open_as(index, false)
}

fn open_as(index: u32, stack: bool) -> Result<[u8; 6], NetError> {
    if index as usize >= MAX_DEVICES {
        return Err(NetError::NoDevice);
    }
    let mut devices = DEVICES.lock();
    if devices.len() <= index as usize {
        devices.resize_with(index as usize + 1, || None);
    }
    if devices[index as usize].is_some() {
        return Err(NetError::Busy);
    }
    let deadline = deadline_in(HANDSHAKE_NS);
    let mut dev = Box::new(Netfront::new(index, stack, deadline)?);
    if let Err(e) = dev.connect(deadline) {
        error!("netfront: vif {index} did not connect: {e:?}");
        dev.disconnect(deadline_in(HANDSHAKE_NS));
        return Err(e);
    }
    dev.watch = watch_backend(&dev);
    let m = dev.mac;
    info!(
        "netfront: vif {index} connected: mac {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}, mtu {}, backend domain {}, {} tx / {} rx buffers, {:?}",
        m[0], m[1], m[2], m[3], m[4], m[5], dev.mtu, dev.backend_id, dev.tx_bufs.len(), dev.rx_bufs.len(), dev.offloads
    );
    devices[index as usize] = Some(dev);
    Ok(m)
}

/// Waits until a frame comes (or `deadline`) and copies it into `buf`; returns the bytes
/// copied (a longer frame is cut to `buf`).
pub fn recv(index: u32, buf: &mut [u8], deadline: u64) -> Result<usize, NetError> {
    loop {
        let (port, seen) = {
            let mut devices = DEVICES.lock();
            let dev = slot(&mut devices, index)?;
            // The count is read before the ring, so an event for a response that comes after
            // the check ends the wait below.
            let seen = evtchn::count(dev.port.0);
            if let Some(n) = dev.take_frame(buf)? {
                return Ok(n);
            }
            (dev.port.0, seen)
        };
        wait(port, seen, deadline)?;
    }
}

/// Sends one Ethernet frame (header included, no FCS), waiting while every tx buffer is in
/// flight; returns its length.
pub fn send(index: u32, frame: &[u8], deadline: u64) -> Result<usize, NetError> {
    if frame.is_empty() || frame.len() > MAX_FRAME {
        return Err(NetError::BadFrame);
    }
    loop {
        let (port, seen) = {
            let mut devices = DEVICES.lock();
            let dev = slot(&mut devices, index)?;
            let seen = evtchn::count(dev.port.0);
            if let Some(n) = dev.try_send(frame)? {
                return Ok(n);
            }
            (dev.port.0, seen)
        };
        wait(port, seen, deadline)?;
    }
}

/// What a watcher of a backend's state needs, owned by its thread.
struct Watcher {
    index: u32,
    generation: u64,
    watch: u64,
    path: Vec<u8>,
    backend: Vec<u8>,
    backend_id: u16,
}

/// Watches `dev`'s backend state from a kernel thread of its own, so that a backend going away
/// while the device is connected (`xl network-detach`, netback's domain ending) ends the
/// device cleanly instead of leaving its calls waiting: [`backend_gone`]. Returns the watch,
/// which [`close`] ends (and with it the thread); `None` (logged) when no watch or thread
/// could be had, and the device then works unwatched.
fn watch_backend(dev: &Netfront) -> Option<u64> {
    let deadline = deadline_in(HANDSHAKE_NS);
    let watch = match xenstore::watch(&xenbus::join(&dev.backend, b"state"), deadline) {
        Ok(w) => w,
        Err(e) => {
            warn!("netfront: vif {}: cannot watch the backend's state (errno {}): its going away will not be seen", dev.index, -e);
            return None;
        }
    };
    let w = Box::new(Watcher {
        index: dev.index,
        generation: dev.generation,
        watch,
        path: dev.path.clone(),
        backend: dev.backend.clone(),
        backend_id: dev.backend_id,
    });
    let arg = Box::into_raw(w);
    match crate::sched::spawn_kernel(watcher_thread, arg as *mut u8, WATCHER_STACK) {
        Some(t) => {
            // SAFETY: the handle is fresh and neither joined nor detached.
            unsafe { crate::sched::detach(t) };
            Some(watch)
        }
        None => {
            // SAFETY: the thread was not made, so `arg` is still only ours.
            drop(unsafe { Box::from_raw(arg) });
            let _ = xenstore::unwatch(watch, deadline);
            warn!("netfront: vif {}: no memory for the backend's watcher: its going away will not be seen", dev.index);
            None
        }
    }
}

extern "C" fn watcher_thread(arg: *mut u8) {
    // SAFETY: `watch_backend` passed a `Box<Watcher>` it gave up.
    let w = unsafe { Box::from_raw(arg as *mut Watcher) };
    let mut rereads = 0;
    loop {
        // Ends with EBADF when `close` ends the watch. A read that failed is tried again soon
        // instead: the change it missed may bring no further event.
        if rereads == 0 && xenstore::next_event(w.watch, u64::MAX).is_err() {
            return;
        }
        match xenbus::read_state(&w.backend, deadline_in(HANDSHAKE_NS)) {
            // A removed folder reads as Unknown (ENOENT); xenstored answers EACCES instead when
            // the nearest folder left above it is not readable by this domain.
            Ok(XenbusState::Closing | XenbusState::Closed | XenbusState::Unknown) => break,
            Err(e) if e == -(errno::EACCES) => break,
            Ok(state) => {
                rereads = 0;
                debug!("netfront: vif {}: the backend is {state:?}", w.index);
            }
            // xenstore itself broke: nothing more will be heard.
            Err(e) if e == -errno::EIO => {
                warn!("netfront: vif {}: xenstore failed; the backend's going away will not be seen", w.index);
                return;
            }
            Err(e) => {
                debug!("netfront: vif {}: the backend's state unread (errno {}); reading again", w.index, -e);
                rereads = if rereads >= REREADS { 0 } else { rereads + 1 };
                crate::sched::sleep_until(deadline_in(REREAD_NS));
            }
        }
    }
    backend_gone(&w);
}

/// The backend of the open `w` went away: the device fails every call from now on with
/// [`NetError::Gone`] (ENETDOWN), its waiters and the stack's network thread are woken
/// through its port, and the frontend says Closing and Closed so that the backend (and
/// `xl network-detach`, which waits for it) can finish. Only the first part holds the device
/// table's lock: the handshake may take long with a backend that hangs, and other devices and
/// the stack's loopback go on meanwhile; `close` of this device waits for it to end (the slot
/// stays taken, so a reopen cannot interleave). The pages stay granted until the device is
/// closed; `grant::release` keeps any the backend still maps.
///
/// FIXME: a backend that comes back (InitWait after Closed) is not connected again; the
/// program must close and open the device (the stack's vif stays down).
fn backend_gone(w: &Watcher) {
    let goodbye = {
        let mut devices = DEVICES.lock();
        let Some(Some(dev)) = devices.get_mut(w.index as usize) else { return };
        if dev.generation != w.generation || dev.go_down() {
            return;
        }
        dev.goodbye.store(GOODBYE_UNDER_WAY, Ordering::Release);
        let _ = evtchn::raise_local(dev.port.0);
        dev.goodbye.clone()
    };
    error!("netfront: vif {}: the backend (domain {}) went away; the device is down (ENETDOWN)", w.index, w.backend_id);
    let _ = xenstore::unwatch(w.watch, deadline_in(HANDSHAKE_NS));
    disconnect_path(&w.path, &w.backend, deadline_in(HANDSHAKE_NS));
    goodbye.store(GOODBYE_DONE, Ordering::Release);
    crate::sched::futex_wake(goodbye.as_ptr(), u32::MAX);
    debug!("netfront: vif {}: closed after its backend went away", w.index);
}

fn wait(port: u32, seen: u32, deadline: u64) -> Result<(), NetError> {
    match evtchn::wait(port, seen, deadline) {
        Ok(_) => Ok(()),
        Err(e) if e == -errno::ETIMEDOUT => Err(NetError::TimedOut),
        Err(e) => Err(NetError::Xen(e)),
    }
}

/// At the program's end (after what it sent was delivered): every open device says goodbye to
/// its backend (Closing, then Closed), so that netback stops and unmaps the rings before the
/// domain goes, as a driver does at a clean shutdown. Bounded by [`ENDING_DISCONNECT_NS`] in
/// all once the device table is free (an open's handshake holds it); the devices stay in the
/// table, down, for any thread still calling. A device whose backend went away is left to its
/// watcher.
pub fn disconnect_all() {
    ENDED.store(true, Ordering::Release);
    let start = crate::time::monotonic_ns();
    let deadline = start.saturating_add(ENDING_DISCONNECT_NS);
    let mut devices = DEVICES.lock();
    let mut closed = 0;
    for dev in devices.iter_mut().flatten() {
        if dev.go_down() {
            continue;
        }
        if let Some(watch) = dev.watch.take() {
            let _ = xenstore::unwatch(watch, deadline);
        }
        dev.disconnect(deadline);
        closed += 1;
    }
    if closed > 0 {
        info!("netfront: {closed} vif(s) disconnected at the end in {} us", (crate::time::monotonic_ns() - start) / 1000);
    }
}

/// Disconnects and frees the device; its pages go back once the backend has let go of them.
/// A device whose backend went away was disconnected by its watcher already.
pub fn close(index: u32) -> Result<(), NetError> {
    // Waits for a goodbye under way: bounded by its unwatch and handshake, 10 s a step.
    let wait_until = deadline_in(3 * HANDSHAKE_NS);
    let (watch, path, backend, said) = loop {
        let mut devices = DEVICES.lock();
        let dev = slot(&mut devices, index)?;
        if dev.closing {
            return Err(NetError::NotOpen);
        }
        let word = dev.goodbye.clone();
        if word.load(Ordering::Acquire) != GOODBYE_UNDER_WAY || crate::time::monotonic_ns() >= wait_until {
            // The device keeps its slot, down, through the goodbye below, so that an open of
            // the vif meanwhile is refused (Busy) instead of racing it in xenstore.
            let said = dev.go_down();
            dev.closing = true;
            break (dev.watch.take(), dev.path.clone(), dev.backend.clone(), said);
        }
        drop(devices);
        // SAFETY: `word` is a live atomic u32 (held by this Arc).
        unsafe { crate::sched::futex_wait(word.as_ptr(), GOODBYE_UNDER_WAY, wait_until) };
    };
    if let Some(watch) = watch {
        let _ = xenstore::unwatch(watch, deadline_in(HANDSHAKE_NS));
    }
    // A device whose backend went away had its goodbye said by its watcher (or at the end).
    if !said {
        disconnect_path(&path, &backend, deadline_in(HANDSHAKE_NS));
    }
    let dev = DEVICES.lock()[index as usize].take();
    debug!("netfront: vif {index} closed; {} grants held by backends", grant::held_count());
    drop(dev);
    Ok(())
}
