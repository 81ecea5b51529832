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

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::format;
use alloc::vec::Vec;
use core::sync::atomic::AtomicU32;

use crate::net::ring::{self, FrontRing, Outstanding, RX_SLOT_WORDS, RingError, RxDone, TX_SLOT_WORDS, TxDone};
use crate::sync::Mutex;
use crate::xen::abi::errno;
use crate::xen::abi::netif::{NetifRxRequest, NetifTxRequest};
use crate::xen::evtchn::{self, Owner};
use crate::xen::xenbus::{self, XenbusState};
use crate::xen::{grant, xenstore};

/// Rx buffer pages posted to the backend (128 KiB).
///
/// FIXME: 32 frames in flight is enough for a demo, not for line rate; a larger set (up to the
/// ring's 256) costs 4 KiB a buffer, which small guests (2 MiB) cannot spare. A size chosen at
/// open would retire this.
const RX_BUFFERS: u16 = 32;
/// Tx buffer pages (64 KiB): frames are copied into one and granted read-only.
const TX_BUFFERS: u16 = 16;
/// The largest frame sent or received: 1,500 bytes of payload and the 14-byte Ethernet header
/// (no `feature-sg`, so no frame spans pages; the backend's MTU is 1,500).
pub const MAX_FRAME: usize = 1514;
/// The most vifs a program may open (`device/vif/0` to `7`).
const MAX_DEVICES: usize = 8;
/// How long the handshake and the teardown may take.
const HANDSHAKE_NS: u64 = 10_000_000_000;

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

/// One open vif.
pub struct Netfront {
    index: u32,
    path: Vec<u8>,
    backend: Vec<u8>,
    backend_id: u16,
    mac: [u8; 6],
    // The ring views go before the pages they are over (fields drop in order).
    tx: FrontRing<'static>,
    rx: FrontRing<'static>,
    tx_ids: Outstanding,
    rx_ids: Outstanding,
    /// Rx buffers the backend filled, in arrival order: (id, offset, length).
    filled: VecDeque<(u16, u16, u16)>,
    broken: bool,
    /// Driven by the kernel's TCP/IP stack (`net::stack`), not by the program's raw calls.
    stack: bool,
    port: Port,
    _tx_page: GrantedPage,
    _rx_page: GrantedPage,
    tx_bufs: Vec<GrantedPage>,
    rx_bufs: Vec<GrantedPage>,
}

// SAFETY: the raw pages are owned by the device alone and reached only under `DEVICES`'s lock.
unsafe impl Send for Netfront {}

static DEVICES: Mutex<Vec<Option<Box<Netfront>>>> = Mutex::new(Vec::new());

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
    /// Reads the device's keys, grants its pages and posts the rx buffers.
    fn new(index: u32, deadline: u64) -> Result<Netfront, NetError> {
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
        let tx_page = GrantedPage::new(backend_id, false)?;
        let rx_page = GrantedPage::new(backend_id, false)?;
        ring::init_shared(tx_page.words());
        ring::init_shared(rx_page.words());
        let tx = FrontRing::new(tx_page.words(), TX_SLOT_WORDS).ok_or(NetError::NoMemory)?;
        let rx = FrontRing::new(rx_page.words(), RX_SLOT_WORDS).ok_or(NetError::NoMemory)?;
        let tx_bufs = (0..TX_BUFFERS).map(|_| GrantedPage::new(backend_id, true)).collect::<Result<Vec<_>, _>>()?;
        let rx_bufs = (0..RX_BUFFERS).map(|_| GrantedPage::new(backend_id, false)).collect::<Result<Vec<_>, _>>()?;
        let port = Port(evtchn::alloc_unbound(backend_id, Owner::Kernel).map_err(NetError::Xen)?);
        let mut dev = Netfront {
            index,
            path,
            backend,
            backend_id,
            mac,
            tx,
            rx,
            tx_ids: Outstanding::new(TX_BUFFERS),
            rx_ids: Outstanding::new(RX_BUFFERS),
            filled: VecDeque::with_capacity(RX_BUFFERS as usize),
            broken: false,
            stack: false,
            port,
            _tx_page: tx_page,
            _rx_page: rx_page,
            tx_bufs,
            rx_bufs,
        };
        for id in 0..RX_BUFFERS {
            dev.post_rx(id);
        }
        Ok(dev)
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
        // netif.h: "feature-no-csum-offload": the frontend cannot take frames whose
        // checksums are left blank (NETRXF_csum_blank), so netback fills them in; the IP
        // stack checks every checksum.
        write_key(&path, "feature-no-csum-offload", b"1", deadline)?;
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
        let path = &self.path;
        let _ = xenbus::switch_state(path, XenbusState::Closing, deadline);
        let gone = |s| matches!(s, XenbusState::Closing | XenbusState::Closed | XenbusState::Unknown);
        let _ = xenbus::wait_for_backend_until(&self.backend, gone, deadline);
        let _ = xenbus::switch_state(path, XenbusState::Closed, deadline);
        let done = |s| matches!(s, XenbusState::Closed | XenbusState::InitWait | XenbusState::Unknown);
        let _ = xenbus::wait_for_backend_until(&self.backend, done, deadline);
    }

    /// Logs a protocol error of the backend and disables the device.
    fn fail(&mut self, e: RingError) -> NetError {
        error!("netfront: vif {} (backend domain {}): {e:?}; device disabled", self.index, self.backend_id);
        self.broken = true;
        NetError::Ring(e)
    }

    fn usable(&self) -> Result<(), NetError> {
        if self.broken { Err(NetError::Broken) } else { Ok(()) }
    }

    /// Hands rx buffer `id` to the backend again.
    fn post_rx(&mut self, id: u16) {
        let gref = self.rx_bufs[id as usize].gref;
        // The buffer is not outstanding (it was completed), so the insert and the ring slot
        // (outstanding ids bound the ring's use) cannot fail.
        if !self.rx_ids.insert(id) || !self.rx.put_request(&ring::rx_request(NetifRxRequest { id, pad: 0, gref })) {
            error!("netfront: vif {}: rx buffer {id} could not be posted", self.index);
            return;
        }
        if self.rx.push() {
            let _ = evtchn::notify(self.port.0);
        }
    }

    /// Takes every rx response that has come; returns whether there were any.
    fn poll_rx(&mut self) -> Result<bool, NetError> {
        let mut any = false;
        loop {
            while let Some(words) = self.rx.take_response().map_err(|e| self.fail(e))? {
                any = true;
                match ring::check_rx(ring::rx_response(&words), &mut self.rx_ids) {
                    Ok(RxDone::Frame { id, offset, len }) => self.filled.push_back((id, offset, len)),
                    Ok(RxDone::Empty { id, status }) => {
                        debug!("netfront: vif {}: rx buffer {id} back empty (status {status})", self.index);
                        self.post_rx(id);
                    }
                    Err(e) => return Err(self.fail(e)),
                }
            }
            if !self.rx.final_check().map_err(|e| self.fail(e))? {
                return Ok(any);
            }
        }
    }

    /// Copies the next received frame into `buf` (cut to its length); returns the bytes
    /// copied, or `None` when no frame has come.
    fn take_frame(&mut self, buf: &mut [u8]) -> Result<Option<usize>, NetError> {
        self.usable()?;
        loop {
            if let Some((id, offset, len)) = self.filled.pop_front() {
                let n = buf.len().min(len as usize);
                let page = self.rx_bufs[id as usize].ptr;
                // SAFETY: `check_rx` bounded `offset + len` by the page, which is mapped and
                // ours; the backend finished copying before it published the response (the
                // ring's acquire), and a hostile one rewriting it now only changes the bytes.
                unsafe { core::ptr::copy_nonoverlapping(page.add(offset as usize), buf.as_mut_ptr(), n) };
                self.post_rx(id);
                return Ok(Some(n));
            }
            if !self.poll_rx()? {
                return Ok(None);
            }
        }
    }

    /// Takes every tx completion that has come.
    ///
    /// An event for the next completion is asked for only while every buffer is in flight,
    /// since only then does a sender wait for one; otherwise completions are taken on the next
    /// send, and the backend's completions during a bulk send raise no upcall each.
    fn reap_tx(&mut self) -> Result<(), NetError> {
        loop {
            while let Some(words) = self.tx.take_response().map_err(|e| self.fail(e))? {
                match ring::check_tx(ring::tx_response(&words), &mut self.tx_ids) {
                    Ok(TxDone::Sent(_)) => {}
                    Ok(TxDone::Failed(id)) => debug!("netfront: vif {}: the backend dropped tx {id}", self.index),
                    Err(e) => return Err(self.fail(e)),
                }
            }
            if self.tx_ids.count() < TX_BUFFERS as u32 {
                return Ok(());
            }
            if !self.tx.final_check().map_err(|e| self.fail(e))? {
                return Ok(());
            }
        }
    }

    /// Queues `frame` for the backend; `None` when every tx buffer is in flight.
    fn try_send(&mut self, frame: &[u8]) -> Result<Option<usize>, NetError> {
        self.usable()?;
        self.reap_tx()?;
        let Some(id) = self.tx_ids.take() else { return Ok(None) };
        let page = &self.tx_bufs[id as usize];
        // SAFETY: the page is mapped and ours, and `frame` (at most MAX_FRAME bytes) fits; the
        // backend only reads it (a read-only grant) and not before the request is pushed.
        unsafe { core::ptr::copy_nonoverlapping(frame.as_ptr(), page.ptr, frame.len()) };
        let req = NetifTxRequest { gref: page.gref, offset: 0, flags: 0, id, size: frame.len() as u16 };
        if !self.tx.put_request(&ring::tx_request(req)) {
            let _ = self.tx_ids.complete(id);
            return Ok(None);
        }
        if self.tx.push() {
            let _ = evtchn::notify(self.port.0);
        }
        Ok(Some(frame.len()))
    }
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
    let mac = open(index)?;
    let mut devices = DEVICES.lock();
    let dev = slot(&mut devices, index)?;
    dev.stack = true;
    Ok((mac, dev.port.0))
}

/// The stack's receive: the next frame into `buf`, or `None` when none has come (never waits).
pub fn stack_recv(index: u32, buf: &mut [u8]) -> Result<Option<usize>, NetError> {
    let mut devices = DEVICES.lock();
    stack_slot(&mut devices, index)?.take_frame(buf)
}

/// The stack's send: queues `frame`, or `None` when every tx buffer is in flight (never waits).
pub fn stack_send(index: u32, frame: &[u8]) -> Result<Option<usize>, NetError> {
    if frame.is_empty() || frame.len() > MAX_FRAME {
        return Err(NetError::BadFrame);
    }
    let mut devices = DEVICES.lock();
    stack_slot(&mut devices, index)?.try_send(frame)
}

/// Whether a frame could be queued now (a tx buffer is free).
pub fn stack_can_send(index: u32) -> bool {
    let mut devices = DEVICES.lock();
    match stack_slot(&mut devices, index) {
        Ok(dev) => dev.usable().is_ok() && dev.reap_tx().is_ok() && dev.tx_ids.count() < TX_BUFFERS as u32,
        Err(_) => false,
    }
}

/// Opens and connects `device/vif/INDEX`; returns its MAC address.
///
/// FIXME: the device table's lock is held through the handshake (up to 10 s), so other
/// devices' calls wait meanwhile; a per-device lock would retire this.
pub fn open(index: u32) -> Result<[u8; 6], NetError> {
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
    let mut dev = Box::new(Netfront::new(index, deadline)?);
    if let Err(e) = dev.connect(deadline) {
        error!("netfront: vif {index} did not connect: {e:?}");
        dev.disconnect(deadline_in(HANDSHAKE_NS));
        return Err(e);
    }
    let m = dev.mac;
    info!(
        "netfront: vif {index} connected: mac {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}, backend domain {}",
        m[0], m[1], m[2], m[3], m[4], m[5], dev.backend_id
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

fn wait(port: u32, seen: u32, deadline: u64) -> Result<(), NetError> {
    match evtchn::wait(port, seen, deadline) {
        Ok(_) => Ok(()),
        Err(e) if e == -errno::ETIMEDOUT => Err(NetError::TimedOut),
        Err(e) => Err(NetError::Xen(e)),
    }
}

/// Disconnects and frees the device; its pages go back once the backend has let go of them.
pub fn close(index: u32) -> Result<(), NetError> {
    let dev = {
        let mut devices = DEVICES.lock();
        slot(&mut devices, index)?;
        devices[index as usize].take().ok_or(NetError::NotOpen)?
    };
    dev.disconnect(deadline_in(HANDSHAKE_NS));
    debug!("netfront: vif {index} closed; {} grants held by backends", grant::held_count());
    drop(dev);
    Ok(())
}
