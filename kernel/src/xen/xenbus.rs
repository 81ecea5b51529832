//! The xenbus handshake by which a frontend (a device driver in this guest) and its backend
//! (in another domain) connect (`xen/include/public/io/xenbus.h`).
//!
//! Each end publishes its `state` key in xenstore and watches the other's. A frontend
//! publishes its ring references and event channel, moves to `Initialised`, waits for the
//! backend to be `Connected`, and then is `Connected` itself; at the end both go through
//! `Closing` to `Closed`. The states' parsing and the rules a frontend follows are pure and
//! tested on the host; the xenstore side is below them.

/// `enum xenbus_state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum XenbusState {
    Unknown = 0,
    Initialising = 1,
    /// The backend is ready for the frontend's details.
    InitWait = 2,
    /// The frontend has published its details.
    Initialised = 3,
    Connected = 4,
    Closing = 5,
    Closed = 6,
    Reconfiguring = 7,
    Reconfigured = 8,
}

impl XenbusState {
    /// Reads a `state` key's value (a decimal number, maybe with a NUL or newline after it).
    pub fn parse(value: &[u8]) -> Option<XenbusState> {
        let digits = value.strip_suffix(b"\0").unwrap_or(value);
        let digits = digits.strip_suffix(b"\n").unwrap_or(digits);
        Some(match digits {
            b"0" => Self::Unknown,
            b"1" => Self::Initialising,
            b"2" => Self::InitWait,
            b"3" => Self::Initialised,
            b"4" => Self::Connected,
            b"5" => Self::Closing,
            b"6" => Self::Closed,
            b"7" => Self::Reconfiguring,
            b"8" => Self::Reconfigured,
            _ => return None,
        })
    }

    /// The value to write for this state.
    pub fn as_bytes(self) -> &'static [u8] {
        let all: [&'static [u8]; 9] = [b"0", b"1", b"2", b"3", b"4", b"5", b"6", b"7", b"8"];
        all[self as usize]
    }
}

/// What a frontend that has published its details does when it sees the backend in `state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrontendStep {
    /// Keep waiting.
    Wait,
    /// The backend is connected: read its details, then switch to `Connected`.
    Connect,
    /// The backend is going away: switch to `Closed` and give up the device.
    Close,
}

/// The frontend's rule while it waits for the backend to connect.
pub fn frontend_step(backend: XenbusState) -> FrontendStep {
    match backend {
        XenbusState::Connected => FrontendStep::Connect,
        XenbusState::Closing | XenbusState::Closed => FrontendStep::Close,
        _ => FrontendStep::Wait,
    }
}

#[cfg(target_os = "none")]
pub use self::client::*;

#[cfg(target_os = "none")]
mod client {
    use super::*;
    use crate::xen::xenstore;
    use alloc::vec::Vec;

    /// `path/key`, for xenstore.
    pub fn join(path: &[u8], key: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(path.len() + 1 + key.len());
        out.extend_from_slice(path);
        out.push(b'/');
        out.extend_from_slice(key);
        out
    }

    /// Publishes `state` as the frontend's at `frontend` (its device folder).
    pub fn switch_state(frontend: &[u8], state: XenbusState, deadline: u64) -> Result<(), isize> {
        debug!("xenbus: {} -> {:?}", core::str::from_utf8(frontend).unwrap_or("?"), state);
        xenstore::write(&join(frontend, b"state"), state.as_bytes(), deadline)
    }

    /// Reads the state at `dev/state`; a missing key, or a value that is no state, reads as
    /// `Unknown`.
    pub fn read_state(dev: &[u8], deadline: u64) -> Result<XenbusState, isize> {
        match xenstore::read(&join(dev, b"state"), deadline) {
            Ok(value) => Ok(XenbusState::parse(&value).unwrap_or(XenbusState::Unknown)),
            Err(-2) => Ok(XenbusState::Unknown),
            Err(e) => Err(e),
        }
    }

    /// Waits (until `deadline`) for the backend at `backend` to reach a state where
    /// [`frontend_step`] says to stop waiting; returns that state.
    pub fn wait_for_backend(backend: &[u8], deadline: u64) -> Result<XenbusState, isize> {
        wait_for_backend_until(backend, |state| frontend_step(state) != FrontendStep::Wait, deadline)
    }

    /// Waits (until `deadline`) for the backend at `backend` to reach a state for which
    /// `done` holds; returns that state.
    pub fn wait_for_backend_until(
        backend: &[u8],
        done: fn(XenbusState) -> bool,
        deadline: u64,
    ) -> Result<XenbusState, isize> {
        let path = join(backend, b"state");
        let watch = xenstore::watch(&path, deadline)?;
        let result = loop {
            let state = match read_state(backend, deadline) {
                Ok(state) => state,
                Err(e) => break Err(e),
            };
            if done(state) {
                break Ok(state);
            }
            if let Err(e) = xenstore::next_event(watch, deadline) {
                break Err(e);
            }
        };
        let _ = xenstore::unwatch(watch, deadline);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_parse_as_xenstore_holds_them() {
        assert_eq!(XenbusState::parse(b"4"), Some(XenbusState::Connected));
        assert_eq!(XenbusState::parse(b"2\0"), Some(XenbusState::InitWait));
        assert_eq!(XenbusState::parse(b"6\n"), Some(XenbusState::Closed));
        assert_eq!(XenbusState::parse(b"9"), None);
        assert_eq!(XenbusState::parse(b""), None);
        assert_eq!(XenbusState::parse(b"44"), None);
        for n in 0..=8u8 {
            let state = XenbusState::parse(&[b'0' + n]).unwrap();
            assert_eq!(state as u8, n);
            assert_eq!(state.as_bytes(), &[b'0' + n]);
        }
    }

    #[test]
    fn a_frontend_connects_only_to_a_connected_backend() {
        assert_eq!(frontend_step(XenbusState::InitWait), FrontendStep::Wait);
        assert_eq!(frontend_step(XenbusState::Initialising), FrontendStep::Wait);
        assert_eq!(frontend_step(XenbusState::Connected), FrontendStep::Connect);
        assert_eq!(frontend_step(XenbusState::Closing), FrontendStep::Close);
        assert_eq!(frontend_step(XenbusState::Closed), FrontendStep::Close);
    }
}
