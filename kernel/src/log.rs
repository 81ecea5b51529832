//! Kernel log lines, with levels, written to the console (as `L` records when framed).

use core::fmt;
use core::sync::atomic::{AtomicU8, Ordering};

/// How important a log line is; lower is more important.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Level {
    Error = 1,
    Warn = 2,
    Info = 3,
    Debug = 4,
    Trace = 5,
}

impl Level {
    /// Parses a level's name as the command line spells it.
    pub fn parse(name: &[u8]) -> Option<Level> {
        Some(match name {
            b"error" => Level::Error,
            b"warn" => Level::Warn,
            b"info" => Level::Info,
            b"debug" => Level::Debug,
            b"trace" => Level::Trace,
            _ => return None,
        })
    }

    /// The letter that starts an `L` record's payload.
    pub const fn letter(self) -> u8 {
        b" EWIDT"[self as usize]
    }

    /// The level's name.
    pub const fn name(self) -> &'static str {
        ["", "error", "warn", "info", "debug", "trace"][self as usize]
    }
}

static MAX_LEVEL: AtomicU8 = AtomicU8::new(Level::Warn as u8);

/// Sets the most detailed level that is written.
pub fn set_max_level(level: Level) {
    MAX_LEVEL.store(level as u8, Ordering::Relaxed);
}

/// Whether lines of `level` are written.
pub fn enabled(level: Level) -> bool {
    level as u8 <= MAX_LEVEL.load(Ordering::Relaxed)
}

/// A fixed buffer that formatting writes into, cutting what does not fit.
pub struct LineBuf {
    bytes: [u8; 256],
    len: usize,
}

impl LineBuf {
    pub const fn new() -> Self {
        LineBuf { bytes: [0; 256], len: 0 }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl fmt::Write for LineBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let take = s.len().min(self.bytes.len() - self.len);
        self.bytes[self.len..self.len + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take;
        Ok(())
    }
}

/// Writes one log line of `level` (see the `error!` ... `trace!` macros).
#[cfg(target_os = "none")]
pub fn write(level: Level, args: fmt::Arguments<'_>) {
    if !enabled(level) {
        return;
    }
    let mut line = LineBuf::new();
    let _ = fmt::write(&mut line, args);
    crate::xen::console::log_line(level, line.as_bytes());
}

/// On the host (unit tests) log lines go nowhere.
#[cfg(not(target_os = "none"))]
pub fn write(_level: Level, _args: fmt::Arguments<'_>) {}

macro_rules! log {
    ($level:expr, $($arg:tt)*) => { $crate::log::write($level, format_args!($($arg)*)) };
}
macro_rules! error { ($($arg:tt)*) => { log!($crate::log::Level::Error, $($arg)*) }; }
macro_rules! warn { ($($arg:tt)*) => { log!($crate::log::Level::Warn, $($arg)*) }; }
macro_rules! info { ($($arg:tt)*) => { log!($crate::log::Level::Info, $($arg)*) }; }
macro_rules! debug { ($($arg:tt)*) => { log!($crate::log::Level::Debug, $($arg)*) }; }
macro_rules! trace { ($($arg:tt)*) => { log!($crate::log::Level::Trace, $($arg)*) }; }
