//! Collects one guest's framed console output (`docs/abi.md` §2) with the
//! times its parts arrived.

use xen_runner::framing::{self, Kind};
use xen_runner::status::GuestExit;

/// What one guest wrote, and when.
#[derive(Debug, Clone, Default)]
pub struct GuestOutput {
    /// Arrival of the first record of any kind, seconds from QEMU's start.
    pub first_record: Option<f64>,
    /// Arrival of the first stdout record (the program's first line).
    pub first_stdout: Option<f64>,
    /// The program's stdout, decoded.
    pub stdout: Vec<u8>,
    /// The program's stderr, decoded.
    pub stderr: Vec<u8>,
    /// The kernel's log lines (level letter first).
    pub logs: Vec<String>,
    /// The exit record, once it came.
    pub exit: Option<GuestExit>,
    /// Records that could not be decoded.
    pub malformed: usize,
}

impl GuestOutput {
    /// Takes one console line (without LF); returns true when it held the exit record.
    pub fn feed(&mut self, at: f64, line: &[u8]) -> bool {
        let Some(body) = framing::split_line(line).record else { return false };
        let Ok(record) = framing::parse_record(body) else {
            self.malformed += 1;
            return false;
        };
        self.first_record.get_or_insert(at);
        match record.kind {
            Kind::Stdout => {
                self.first_stdout.get_or_insert(at);
                self.stdout.extend_from_slice(&record.payload);
            }
            Kind::Stderr => self.stderr.extend_from_slice(&record.payload),
            Kind::Log => self.logs.push(String::from_utf8_lossy(&record.payload).into_owned()),
            Kind::Exit => match GuestExit::parse(&record.payload) {
                Ok(exit) => {
                    self.exit = Some(exit);
                    return true;
                }
                Err(_) => self.malformed += 1,
            },
            // Crash reports, and kinds this tool does not know.
            _ => {}
        }
        false
    }

    /// The kernel's "main after N us" figure: Xen's hand-over to `main`, in µs.
    pub fn main_after_us(&self) -> Option<u64> {
        self.logs.iter().find_map(|line| {
            let rest = &line[line.find("main after ")? + "main after ".len()..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            let unit = rest[digits.len()..].trim_start();
            if digits.is_empty() || !unit.starts_with("us") {
                return None;
            }
            digits.parse().ok()
        })
    }

    /// Says how the guest ended, in a few words.
    pub fn ending(&self) -> String {
        match self.exit {
            Some(GuestExit::Status(s)) => format!("exit {s}"),
            Some(GuestExit::Abort) => "abort".into(),
            Some(GuestExit::Crash) => "crash".into(),
            None if self.first_record.is_none() => "no output".into(),
            None => "no exit record".into(),
        }
    }

    /// Tells whether the guest exited 0 having written exactly `stdout` and `stderr`.
    pub fn is_complete(&self, stdout: &[u8], stderr: &[u8]) -> bool {
        self.exit == Some(GuestExit::Status(0)) && self.stdout == stdout && self.stderr == stderr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_records_and_times() {
        let mut out = GuestOutput::default();
        assert!(!out.feed(1.0, b"(XEN) not the guest's\r"));
        assert!(!out.feed(2.0, b"\x1eLI booted as dom0 with 64 MiB\r"));
        assert!(!out.feed(2.5, b"\x1eLI main after 6027 us"));
        assert!(!out.feed(3.0, b"\x1eOHello\\x0a\r"));
        assert!(!out.feed(3.5, b"\x1eOx\\zz"));
        assert!(!out.feed(4.0, b"\x1eEerr\\x0a"));
        assert!(out.feed(5.0, b"\x1eX0\r"));
        assert_eq!(out.first_record, Some(2.0));
        assert_eq!(out.first_stdout, Some(3.0));
        assert_eq!(out.main_after_us(), Some(6027));
        assert_eq!(out.malformed, 1);
        assert!(out.is_complete(b"Hello\n", b"err\n"));
        assert!(!out.is_complete(b"Hello\n", b""));
        assert_eq!(out.ending(), "exit 0");
    }

    #[test]
    fn main_after_needs_microseconds() {
        let mut out = GuestOutput::default();
        out.feed(0.0, b"\x1eLI main after 12 ms");
        assert_eq!(out.main_after_us(), None);
        out.feed(0.0, b"\x1eLI main after 0 us");
        assert_eq!(out.main_after_us(), Some(0));
    }
}
