//! Xenstore, the toolstack's tree of keys: read, write, list and remove keys, watch them for
//! changes, and group changes in transactions.
//!
//! Paths are absolute (`/local/domain/0/name`) or relative to the domain's own folder
//! (`data/greeting` is `/local/domain/<id>/data/greeting`). Values are bytes. Every call
//! waits for xenstore's answer for at most the timeout set with [`set_timeout`] (10 s unless
//! changed), then fails with [`ErrorKind::TimedOut`]. Errors are those xenstore reports, as
//! Linux's `errno`: a missing key is [`ErrorKind::NotFound`], a key the domain may not touch
//! [`ErrorKind::PermissionDenied`]. Without xenstore (a guest booted as dom0) every call fails
//! with [`ErrorKind::Unsupported`].
//!
//! Many threads may use xenstore at once; each gets its own answers.
//!
//! [`ErrorKind::TimedOut`]: crate::io::ErrorKind::TimedOut
//! [`ErrorKind::NotFound`]: crate::io::ErrorKind::NotFound
//! [`ErrorKind::PermissionDenied`]: crate::io::ErrorKind::PermissionDenied
//! [`ErrorKind::Unsupported`]: crate::io::ErrorKind::Unsupported

#![stable(feature = "xen_ext", since = "1.96.0")]

use crate::io;
use crate::string::String;
use crate::sync::atomic::{AtomicU64, Ordering};
use crate::sys::abi;
use crate::time::Duration;
use crate::vec::Vec;

/// `XENSTORE_PAYLOAD_MAX`: no message is longer.
const PAYLOAD_MAX: usize = 4096;
/// Commits tried by [`transaction`] before it gives up on a busy store.
const TRANSACTION_TRIES: usize = 64;

/// The timeout in ns; `u64::MAX` means none.
static TIMEOUT_NS: AtomicU64 = AtomicU64::new(10_000_000_000);

const XS_DIRECTORY: u32 = 1;
const XS_DIRECTORY_PART: u32 = 22;
const XS_READ: u32 = 2;
const XS_TRANSACTION_START: u32 = 6;
const XS_TRANSACTION_END: u32 = 7;
const XS_WRITE: u32 = 11;
const XS_MKDIR: u32 = 12;
const XS_RM: u32 = 13;
const EAGAIN: i32 = 11;
const E2BIG: i32 = 7;
const ENOSPC: i32 = 28;

/// Sets how long each xenstore call waits for an answer (`None`: forever), for every thread.
#[stable(feature = "xen_ext", since = "1.96.0")]
pub fn set_timeout(timeout: Option<Duration>) {
    let ns = timeout.map_or(u64::MAX, |t| u64::try_from(t.as_nanos()).unwrap_or(u64::MAX - 1));
    TIMEOUT_NS.store(ns, Ordering::Relaxed);
}

fn timeout() -> Option<Duration> {
    match TIMEOUT_NS.load(Ordering::Relaxed) {
        u64::MAX => None,
        ns => Some(Duration::from_nanos(ns)),
    }
}

fn request(kind: u32, tx: u32, first: &[u8], second: Option<&[u8]>) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(PAYLOAD_MAX);
    let (second_ptr, second_len) = match second {
        Some(s) => (s.as_ptr(), s.len()),
        None => (crate::ptr::null(), usize::MAX),
    };
    // SAFETY: the buffers are valid for the lengths given; `out` has room for `PAYLOAD_MAX`
    // bytes, and the kernel writes at most that many (it returns the whole length).
    let len = unsafe {
        abi::xk_xenstore_request(
            kind,
            tx,
            first.as_ptr(),
            first.len(),
            second_ptr,
            second_len,
            out.as_mut_ptr(),
            PAYLOAD_MAX,
            super::deadline(timeout()),
        )
    };
    if len < 0 {
        return Err(super::error(len as i64));
    }
    let len = len as usize;
    if len > PAYLOAD_MAX {
        return Err(io::const_error!(io::ErrorKind::InvalidData, "xenstore sent an overlong reply"));
    }
    // SAFETY: the kernel initialised the first `len` bytes.
    unsafe { out.set_len(len) };
    Ok(out)
}

fn utf8(bytes: Vec<u8>) -> io::Result<String> {
    String::from_utf8(bytes)
        .map_err(|_| io::const_error!(io::ErrorKind::InvalidData, "the xenstore value is not UTF-8"))
}

fn entries(reply: Vec<u8>) -> io::Result<Vec<String>> {
    reply
        .split(|&b| b == 0)
        .filter(|name| !name.is_empty())
        .map(|name| utf8(name.to_vec()))
        .collect()
}

/// The names below `path`: one `XS_DIRECTORY`, or for a folder whose names do not fit in one
/// reply, `XS_DIRECTORY_PART` from each offset on, again from the start if the folder changed
/// (its generation count) in between.
fn list_in(tx: u32, path: &str) -> io::Result<Vec<String>> {
    match request(XS_DIRECTORY, tx, path.as_bytes(), None) {
        Err(e) if e.raw_os_error() == Some(E2BIG) => {}
        other => return entries(other?),
    }
    let bad = || io::const_error!(io::ErrorKind::InvalidData, "xenstore sent a malformed folder part");
    'again: for _ in 0..8 {
        let mut names = Vec::new();
        let mut generation: Option<Vec<u8>> = None;
        let mut offset = 0usize;
        loop {
            let mut at = offset.to_string().into_bytes();
            at.push(0);
            let reply = request(XS_DIRECTORY_PART, tx, path.as_bytes(), Some(&at))?;
            let nul = reply.iter().position(|&b| b == 0).ok_or_else(bad)?;
            let (gencnt, rest) = (&reply[..nul], &reply[nul + 1..]);
            match &generation {
                None => generation = Some(gencnt.to_vec()),
                Some(first) if first.as_slice() != gencnt => continue 'again,
                Some(_) => {}
            }
            // The list's end is an empty name: the part ends in two NULs, or is one NUL.
            let last = rest.is_empty() || rest == [0] || rest.ends_with(&[0, 0]);
            let body = if rest.ends_with(&[0, 0]) { &rest[..rest.len() - 1] } else { rest };
            let before = names.len();
            names.extend(entries(body.to_vec())?);
            if last {
                return Ok(names);
            }
            if names.len() == before {
                return Err(bad());
            }
            offset += body.len();
        }
    }
    Err(io::const_error!(io::ErrorKind::WouldBlock, "the xenstore folder kept changing while it was read"))
}

fn read_in(tx: u32, path: &str) -> io::Result<Vec<u8>> {
    request(XS_READ, tx, path.as_bytes(), None)
}

fn write_in(tx: u32, path: &str, value: &[u8]) -> io::Result<()> {
    request(XS_WRITE, tx, path.as_bytes(), Some(value)).map(drop)
}

/// Reads the value at `path`.
#[stable(feature = "xen_ext", since = "1.96.0")]
pub fn read(path: &str) -> io::Result<Vec<u8>> {
    read_in(0, path)
}

/// Reads the value at `path` as text; a value that is not UTF-8 is
/// [`ErrorKind::InvalidData`](crate::io::ErrorKind::InvalidData).
#[stable(feature = "xen_ext", since = "1.96.0")]
pub fn read_string(path: &str) -> io::Result<String> {
    utf8(read(path)?)
}

/// Writes `value` at `path`, creating the key (and the folders above it) if needed.
#[stable(feature = "xen_ext", since = "1.96.0")]
pub fn write(path: &str, value: impl AsRef<[u8]>) -> io::Result<()> {
    write_in(0, path, value.as_ref())
}

/// Lists the names of the keys directly below `path`.
#[stable(feature = "xen_ext", since = "1.96.0")]
pub fn list(path: &str) -> io::Result<Vec<String>> {
    list_in(0, path)
}

/// Creates the key `path` with an empty value, if it does not exist.
#[stable(feature = "xen_ext", since = "1.96.0")]
pub fn mkdir(path: &str) -> io::Result<()> {
    request(XS_MKDIR, 0, path.as_bytes(), None).map(drop)
}

/// Removes `path` and everything below it.
#[stable(feature = "xen_ext", since = "1.96.0")]
pub fn remove(path: &str) -> io::Result<()> {
    request(XS_RM, 0, path.as_bytes(), None).map(drop)
}

/// A watch on a path: reports each change at or below it. Xenstore reports the path once
/// right after the watch is set, and may merge changes that come close together; read the
/// keys again after each event. Dropping the watch ends it.
#[stable(feature = "xen_ext", since = "1.96.0")]
#[derive(Debug)]
pub struct Watch {
    id: u64,
}

#[stable(feature = "xen_ext", since = "1.96.0")]
impl Watch {
    /// Starts watching `path`.
    #[stable(feature = "xen_ext", since = "1.96.0")]
    pub fn new(path: &str) -> io::Result<Watch> {
        // SAFETY: the path is valid for its length.
        let id = unsafe { abi::xk_xenstore_watch(path.as_ptr(), path.len(), super::deadline(timeout())) };
        if id < 0 { Err(super::error(id)) } else { Ok(Watch { id: id as u64 }) }
    }

    /// Waits for the next change and returns the path that changed.
    #[stable(feature = "xen_ext", since = "1.96.0")]
    pub fn next(&self) -> io::Result<String> {
        self.next_until(u64::MAX)
    }

    /// As [`Watch::next`], waiting at most `timeout`; `Ok(None)` when nothing changed.
    #[stable(feature = "xen_ext", since = "1.96.0")]
    pub fn next_timeout(&self, timeout: Duration) -> io::Result<Option<String>> {
        match self.next_until(super::deadline(Some(timeout))) {
            Ok(path) => Ok(Some(path)),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn next_until(&self, deadline: u64) -> io::Result<String> {
        let mut out = Vec::with_capacity(PAYLOAD_MAX);
        // SAFETY: `out` has room for `PAYLOAD_MAX` bytes.
        let len = unsafe { abi::xk_xenstore_watch_next(self.id, out.as_mut_ptr(), PAYLOAD_MAX, deadline) };
        if len < 0 {
            return Err(super::error(len as i64));
        }
        // SAFETY: the kernel initialised that many bytes (a path is shorter than a payload).
        unsafe { out.set_len((len as usize).min(PAYLOAD_MAX)) };
        utf8(out)
    }
}

#[stable(feature = "xen_ext", since = "1.96.0")]
impl Drop for Watch {
    fn drop(&mut self) {
        let _ = abi::xk_xenstore_unwatch(self.id, super::deadline(timeout()));
    }
}

/// A xenstore transaction: reads see one snapshot, and writes take effect together when it
/// commits, or not at all. Made by [`transaction`].
#[stable(feature = "xen_ext", since = "1.96.0")]
#[derive(Debug)]
pub struct Transaction {
    id: u32,
}

#[stable(feature = "xen_ext", since = "1.96.0")]
impl Transaction {
    /// Reads `path` in the transaction.
    #[stable(feature = "xen_ext", since = "1.96.0")]
    pub fn read(&self, path: &str) -> io::Result<Vec<u8>> {
        read_in(self.id, path)
    }

    /// Reads `path` in the transaction, as text.
    #[stable(feature = "xen_ext", since = "1.96.0")]
    pub fn read_string(&self, path: &str) -> io::Result<String> {
        utf8(self.read(path)?)
    }

    /// Writes `path` in the transaction.
    #[stable(feature = "xen_ext", since = "1.96.0")]
    pub fn write(&self, path: &str, value: impl AsRef<[u8]>) -> io::Result<()> {
        write_in(self.id, path, value.as_ref())
    }

    /// Lists the keys below `path` in the transaction.
    #[stable(feature = "xen_ext", since = "1.96.0")]
    pub fn list(&self, path: &str) -> io::Result<Vec<String>> {
        list_in(self.id, path)
    }

    /// Removes `path` in the transaction.
    #[stable(feature = "xen_ext", since = "1.96.0")]
    pub fn remove(&self, path: &str) -> io::Result<()> {
        request(XS_RM, self.id, path.as_bytes(), None).map(drop)
    }

    fn end(self, commit: bool) -> io::Result<()> {
        let id = self.id;
        crate::mem::forget(self);
        request(XS_TRANSACTION_END, id, if commit { b"T" } else { b"F" }, None).map(drop)
    }
}

#[stable(feature = "xen_ext", since = "1.96.0")]
impl Drop for Transaction {
    fn drop(&mut self) {
        // Only reached when the body panicked: abandon the changes.
        let _ = request(XS_TRANSACTION_END, self.id, b"F", None);
    }
}

/// Starts a transaction. xenstored allows a domain only a few open at once (10 with Xen
/// 4.17's defaults) and answers ENOSPC beyond them: then this waits for one to end, backing
/// off up to the xenstore timeout.
fn start() -> io::Result<Vec<u8>> {
    let started = crate::time::Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        match request(XS_TRANSACTION_START, 0, b"", None) {
            Err(e) if e.raw_os_error() == Some(ENOSPC) && timeout().is_none_or(|t| started.elapsed() < t) => {
                crate::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

/// Runs `body` in a transaction and commits it; when another change got in the way (xenstore
/// answers `EAGAIN`), runs `body` again in a new transaction, up to 64 times, then returns
/// that `EAGAIN` ([`ErrorKind::WouldBlock`](io::ErrorKind::WouldBlock)). When the domain has
/// as many transactions open as xenstored allows, waits for one to end (up to the timeout,
/// then `StorageFull`). An error from `body` abandons the transaction and is returned.
#[stable(feature = "xen_ext", since = "1.96.0")]
pub fn transaction<T>(mut body: impl FnMut(&Transaction) -> io::Result<T>) -> io::Result<T> {
    let mut last = None;
    for _ in 0..TRANSACTION_TRIES {
        let reply = start()?;
        let text = reply.strip_suffix(&[0]).unwrap_or(&reply);
        let id = crate::str::from_utf8(text)
            .ok()
            .and_then(|t| t.parse::<u32>().ok())
            .filter(|&id| id != 0)
            .ok_or(io::const_error!(io::ErrorKind::InvalidData, "xenstore sent a bad transaction id"))?;
        let tx = Transaction { id };
        let value = match body(&tx) {
            Ok(value) => value,
            Err(e) => {
                let _ = tx.end(false);
                return Err(e);
            }
        };
        match tx.end(true) {
            Ok(()) => return Ok(value),
            Err(e) if e.raw_os_error() == Some(EAGAIN) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or(io::const_error!(io::ErrorKind::WouldBlock, "xenstore stayed busy")))
}
