//! Maps the guest's exit record to the runner's exit status (`docs/abi.md` §2).

use std::fmt;

/// The runner's status when the command line is refused (as for a usage error).
pub const STATUS_USAGE: u8 = 2;
/// The runner's status after `std::process::abort` in the guest (as SIGABRT on Linux).
pub const STATUS_ABORT: u8 = 134;
/// The runner's status after a CPU exception in the guest (as SIGSEGV on Linux).
pub const STATUS_CRASH: u8 = 139;
/// The runner's status when the guest stopped without an exit record, or
/// when the runner itself failed.
pub const STATUS_NO_EXIT: u8 = 125;
/// The runner's status when the timeout the user asked for ran out.
pub const STATUS_TIMEOUT: u8 = 124;
/// The runner's status after Ctrl-C (SIGINT).
pub const STATUS_INTERRUPTED: u8 = 130;

/// How the guest said it ended, from its `X` record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestExit {
    /// `X<decimal>`: the program exited with this status.
    Status(i32),
    /// `Xabort`: `std::process::abort`.
    Abort,
    /// `Xcrash`: a CPU exception, reported by `C` records before it.
    Crash,
}

/// Why an exit record could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadExitRecord;

impl fmt::Display for BadExitRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an exit record holds a decimal i32, \"abort\" or \"crash\"")
    }
}

impl std::error::Error for BadExitRecord {}

impl GuestExit {
    /// Reads the payload of an `X` record.
    pub fn parse(payload: &[u8]) -> Result<Self, BadExitRecord> {
        match payload {
            b"abort" => Ok(Self::Abort),
            b"crash" => Ok(Self::Crash),
            _ => parse_status(payload).map(Self::Status).ok_or(BadExitRecord),
        }
    }

    /// Returns the runner's exit status for this ending.
    pub fn runner_status(self) -> u8 {
        match self {
            // The low 8 bits, as a Linux parent sees them.
            Self::Status(status) => (status & 0xff) as u8,
            Self::Abort => STATUS_ABORT,
            Self::Crash => STATUS_CRASH,
        }
    }
}

/// Parses `-?[0-9]+` into an i32 (no `+`, no spaces).
fn parse_status(payload: &[u8]) -> Option<i32> {
    let digits = payload.strip_prefix(b"-").unwrap_or(payload);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(payload).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(payload: &[u8]) -> u8 {
        GuestExit::parse(payload).unwrap().runner_status()
    }

    #[test]
    fn decimal_statuses_keep_their_low_8_bits() {
        assert_eq!(status(b"0"), 0);
        assert_eq!(status(b"1"), 1);
        assert_eq!(status(b"101"), 101);
        assert_eq!(status(b"255"), 255);
        assert_eq!(status(b"256"), 0);
        assert_eq!(status(b"263"), 7);
        assert_eq!(status(b"-1"), 255);
        assert_eq!(status(b"2147483647"), 255);
        assert_eq!(status(b"-2147483648"), 0);
    }

    #[test]
    fn abort_and_crash() {
        assert_eq!(GuestExit::parse(b"abort"), Ok(GuestExit::Abort));
        assert_eq!(status(b"abort"), 134);
        assert_eq!(GuestExit::parse(b"crash"), Ok(GuestExit::Crash));
        assert_eq!(status(b"crash"), 139);
    }

    #[test]
    fn rejects_anything_else() {
        for bad in [&b""[..], b"-", b"+1", b" 1", b"1 ", b"12x", b"0x10", b"Crash", b"2147483648"] {
            assert_eq!(GuestExit::parse(bad), Err(BadExitRecord), "{:?}", bad.escape_ascii());
        }
    }

    #[test]
    fn the_runner_statuses() {
        assert_eq!(
            [STATUS_USAGE, STATUS_NO_EXIT, STATUS_TIMEOUT, STATUS_INTERRUPTED],
            [2, 125, 124, 130]
        );
    }
}
