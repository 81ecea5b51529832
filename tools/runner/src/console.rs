//! Relays the guest's framed console to the runner's stdout and stderr.
//!
//! The serial stream mixes Xen's text, the dom0 harness's `@@XENJOB` lines
//! and the guest's records. [`Console`] takes the stream in chunks as it
//! arrives, writes `O` and `E` payloads out byte-exact, keeps crash records
//! and the last lines of text, and stops at the first event that ends a run.

use std::collections::VecDeque;
use std::io::{self, Write};

use crate::framing::{self, Kind};
use crate::harness::{self, Marker};
use crate::status::GuestExit;

/// Lines of text kept for the report on a run that went wrong.
const TAIL_LINES: usize = 100;

/// A line longer than this without LF is cut, to bound memory.
pub(crate) const MAX_LINE: usize = 1 << 20;

/// Malformed-record warnings shown before the rest are counted only.
const MAX_WARNINGS: usize = 20;

/// Xen's lines that mean the guest (as dom0) or the whole machine stopped.
///
/// From `hwdom_shutdown` in `xen/common/shutdown.c` and `panic` in
/// `xen/drivers/char/console.c` (Xen 4.17). With them seen, nothing more is
/// coming but a reboot 5 s later, or nothing at all after a halt.
const XEN_STOPPED: &[&str] = &[
    "Hardware Dom0 halted",
    "Hardware Dom0 shutdown",
    "Hardware Dom0 crashed",
    "Reboot in five seconds",
    "rebooting machine in 5 seconds",
];

/// What ended a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The guest's exit record.
    Exit(GuestExit),
    /// Xen said that dom0 or the machine stopped (the line is given).
    XenStopped(String),
    /// The dom0 harness said the job ended, and how
    /// (`poweroff`, `reboot`, `crash` or `error`).
    JobEnded(String),
    /// The dom0 harness said it has no more jobs.
    AllDone,
}

/// The console relay.
pub struct Console<O: Write, E: Write> {
    out: O,
    err: E,
    verbose: bool,
    /// Show every kernel log line (the run asked for a log level), not only errors and
    /// warnings.
    all_logs: bool,
    pending: Vec<u8>,
    crash: Vec<Vec<u8>>,
    /// The payloads of `T` records: the program's named threads.
    threads: Vec<Vec<u8>>,
    tail: VecDeque<Vec<u8>>,
    warnings: usize,
    records: u64,
    job_begun: bool,
}

impl<O: Write, E: Write> Console<O, E> {
    /// Starts a relay writing the program's stdout to `out` and everything
    /// else to `err`; `verbose` also shows Xen's text and all kernel logs.
    pub fn new(out: O, err: E, verbose: bool) -> Self {
        Self {
            out,
            err,
            verbose,
            all_logs: false,
            pending: Vec::new(),
            crash: Vec::new(),
            threads: Vec::new(),
            tail: VecDeque::new(),
            warnings: 0,
            records: 0,
            job_begun: false,
        }
    }

    /// Also shows every kernel log line (not only errors and warnings): for a
    /// run that asked for a log level (`--log`, a job's `log`), whose kernel
    /// then sends only lines at or above it.
    pub fn show_all_logs(mut self, all: bool) -> Self {
        self.all_logs = all;
        self
    }

    /// Takes the next chunk of the stream; returns the event that ended the
    /// run, if a complete line brought one (later bytes are then ignored).
    pub fn feed(&mut self, bytes: &[u8]) -> io::Result<Option<Event>> {
        self.pending.extend_from_slice(bytes);
        let mut start = 0;
        let mut event = None;
        while event.is_none() {
            let rest = &self.pending[start..];
            let (len, used) = match rest.iter().position(|&b| b == b'\n') {
                Some(len) => (len, len + 1),
                // An endless line is cut so that memory stays bounded.
                None if rest.len() >= MAX_LINE => (MAX_LINE, MAX_LINE),
                None => break,
            };
            let line = rest[..len].to_vec();
            start += used;
            event = self.line(&line)?;
        }
        self.pending.drain(..start);
        Ok(event)
    }

    /// Ends the stream: handles a last line that had no LF.
    pub fn finish(&mut self) -> io::Result<Option<Event>> {
        let line = std::mem::take(&mut self.pending);
        if line.is_empty() {
            return Ok(None);
        }
        self.line(&line)
    }

    /// Flushes what was written to stdout and stderr.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()?;
        self.err.flush()
    }

    /// Returns the payloads of the `C` records seen.
    pub fn crash_records(&self) -> &[Vec<u8>] {
        &self.crash
    }

    /// Returns the payloads of the `T` records seen.
    pub fn thread_records(&self) -> &[Vec<u8>] {
        &self.threads
    }

    /// Returns the last lines of text (Xen's, dom0's, anything unframed).
    pub fn tail(&self) -> impl Iterator<Item = &[u8]> {
        self.tail.iter().map(Vec::as_slice)
    }

    /// Returns how many records were read, good or bad.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Tells whether the dom0 harness said the guest began since the last
    /// call.
    pub fn take_job_begun(&mut self) -> bool {
        std::mem::take(&mut self.job_begun)
    }

    /// Returns the writer of stderr, for the runner's own messages.
    pub fn err(&mut self) -> &mut E {
        &mut self.err
    }

    /// Returns the writers of the program's stdout and stderr.
    pub fn into_writers(self) -> (O, E) {
        (self.out, self.err)
    }

    /// Returns the writer of the program's stdout.
    pub fn out_ref(&self) -> &O {
        &self.out
    }

    /// Returns the writer of the program's stderr (and the runner's messages).
    pub fn err_ref(&self) -> &E {
        &self.err
    }

    /// Handles one line.
    fn line(&mut self, line: &[u8]) -> io::Result<Option<Event>> {
        let split = framing::split_line(line);
        if !split.text.is_empty() {
            if let Some(event) = self.text(split.text)? {
                return Ok(Some(event));
            }
        }
        match split.record {
            Some(body) => self.record(body, line),
            None => Ok(None),
        }
    }

    /// Handles text that is not a record.
    fn text(&mut self, text: &[u8]) -> io::Result<Option<Event>> {
        if let Some(marker) = harness::parse_marker(text) {
            return self.marker(marker);
        }
        self.keep(text)?;
        let line = String::from_utf8_lossy(text);
        Ok(XEN_STOPPED
            .iter()
            .any(|pattern| line.contains(pattern))
            .then(|| Event::XenStopped(line.trim().to_owned())))
    }

    /// Handles a line of the dom0 harness.
    fn marker(&mut self, marker: Marker<'_>) -> io::Result<Option<Event>> {
        match marker {
            Marker::Xen(line) => {
                self.keep(line)?;
                Ok(None)
            }
            Marker::End { how, .. } => Ok(Some(Event::JobEnded(lossy(how)))),
            Marker::AllDone => Ok(Some(Event::AllDone)),
            Marker::Begin(_) => {
                self.job_begun = true;
                if self.verbose {
                    self.show_text(b"(harness) BEGIN ", marker.text())?;
                }
                Ok(None)
            }
            // A driver's lines concern a batch (`demux`); a single run has none.
            Marker::Driver(_) | Marker::DriverExit(_) => Ok(None),
            // FATAL, XL and WARN lines say why a job failed: keep them.
            Marker::Other(text) => {
                let mut line = b"@@XENJOB ".to_vec();
                line.extend_from_slice(text);
                self.keep(&line)?;
                Ok(None)
            }
        }
    }

    /// Keeps a line of text for the report, showing it when verbose.
    fn keep(&mut self, text: &[u8]) -> io::Result<()> {
        if self.tail.len() == TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(text.to_vec());
        if self.verbose {
            self.show_text(b"", text)?;
        }
        Ok(())
    }

    /// Writes text to stderr with control bytes made visible.
    fn show_text(&mut self, prefix: &[u8], text: &[u8]) -> io::Result<()> {
        self.err.write_all(prefix)?;
        self.err.write_all(&sanitize(text))?;
        self.err.write_all(b"\n")
    }

    /// Handles the bytes after RS.
    fn record(&mut self, body: &[u8], line: &[u8]) -> io::Result<Option<Event>> {
        self.records += 1;
        let record = match framing::parse_record(body) {
            Ok(record) => record,
            Err(why) => {
                self.warn(&format!("malformed console record ({why})"), line)?;
                return Ok(None);
            }
        };
        match record.kind {
            Kind::Stdout => self.out.write_all(&record.payload)?,
            Kind::Stderr => self.err.write_all(&record.payload)?,
            Kind::Log => self.log(&record.payload)?,
            Kind::Crash => self.crash.push(record.payload),
            Kind::Thread => self.threads.push(record.payload),
            Kind::Exit => match GuestExit::parse(&record.payload) {
                Ok(exit) => return Ok(Some(Event::Exit(exit))),
                Err(why) => self.warn(&format!("malformed exit record ({why})"), line)?,
            },
        }
        Ok(None)
    }

    /// Shows a kernel log line: errors and warnings always, the rest when
    /// verbose or when the run asked for a log level.
    fn log(&mut self, payload: &[u8]) -> io::Result<()> {
        let (level, message) = match payload {
            [level @ (b'E' | b'W' | b'I' | b'D' | b'T'), b' ', message @ ..] => (*level, message),
            _ => (b'?', payload),
        };
        if self.verbose || self.all_logs || matches!(level, b'E' | b'W' | b'?') {
            self.err.write_all(format!("[kernel {}] ", char::from(level)).as_bytes())?;
            self.err.write_all(&sanitize(message))?;
            self.err.write_all(b"\n")?;
        }
        Ok(())
    }

    /// Warns about a malformed line, showing it escaped.
    fn warn(&mut self, what: &str, line: &[u8]) -> io::Result<()> {
        self.warnings += 1;
        if self.warnings <= MAX_WARNINGS {
            writeln!(self.err, "xen-runner: warning: {what}: {}", line.escape_ascii())?;
        } else if self.warnings == MAX_WARNINGS + 1 {
            writeln!(self.err, "xen-runner: warning: more malformed records, not shown")?;
        }
        Ok(())
    }
}

/// Text that starts Xen's report of a crashed domain or of its own panic.
const DUMP_STARTS: &[&str] = &["Unhandled: vec", "crashed on cpu#", "Panic on CPU"];

/// Picks the lines of a run's last text worth showing: from the start of
/// the last Xen crash dump when there is one (with its rows of stack words
/// cut short), else the last `max` lines.
pub fn lines_to_show<'a>(tail: &[&'a [u8]], max: usize) -> Vec<&'a [u8]> {
    let starts_dump =
        |l: &&[u8]| DUMP_STARTS.iter().any(|m| String::from_utf8_lossy(l).contains(m));
    // The last dump: a domU's crash is both printed by Xen and relayed by
    // the harness. Its first line is the first of a run of dump starts.
    let last = tail.iter().rposition(starts_dump);
    let first_of_last = last.map(|at| {
        let begin = at.saturating_sub(8);
        begin + tail[begin..=at].iter().position(starts_dump).unwrap_or(0)
    });
    let from = match first_of_last {
        Some(dump) => dump.max(tail.len().saturating_sub(3 * max)),
        None => tail.len().saturating_sub(max),
    };
    let mut shown = Vec::new();
    let mut stack_rows = 0;
    for &line in &tail[from..] {
        if is_stack_row(line) {
            stack_rows += 1;
            if stack_rows > 2 {
                continue;
            }
        }
        shown.push(line);
    }
    shown
}

/// Tells whether a line is only 16-digit hex words, as the rows of Xen's
/// "Guest stack trace" are.
fn is_stack_row(line: &[u8]) -> bool {
    let text = String::from_utf8_lossy(line);
    let mut words = text.trim_start_matches("(XEN)").split_whitespace().peekable();
    words.peek().is_some()
        && words.all(|w| w.len() == 16 && w.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Makes control bytes of text visible (`\x1b`), keeping tabs and UTF-8.
pub fn sanitize(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for &byte in text {
        if byte < 0x20 && byte != b'\t' || byte == 0x7f {
            out.extend_from_slice(format!("\\x{byte:02x}").as_bytes());
        } else {
            out.push(byte);
        }
    }
    out
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::encode_record;

    type TestConsole = Console<Vec<u8>, Vec<u8>>;

    fn console(verbose: bool) -> TestConsole {
        Console::new(Vec::new(), Vec::new(), verbose)
    }

    /// Feeds the whole input at once and returns the event.
    fn run(console: &mut TestConsole, input: &[u8]) -> Option<Event> {
        console.feed(input).unwrap()
    }

    #[test]
    fn relays_stdout_and_stderr_byte_exact() {
        let mut c = console(false);
        let mut input = b"(XEN) Freed 656kB init memory\r\n".to_vec();
        input.extend(encode_record(Kind::Stdout, b"hello\n"));
        input.extend(encode_record(Kind::Stderr, b"\x00\xff err \\"));
        input.extend(encode_record(Kind::Stdout, b"no newline"));
        input.extend(b"\x1eX0\r\n");
        assert_eq!(run(&mut c, &input), Some(Event::Exit(GuestExit::Status(0))));
        assert_eq!(c.out, b"hello\nno newline");
        assert_eq!(c.err, b"\x00\xff err \\");
    }

    #[test]
    fn works_on_any_split_of_the_stream() {
        let mut input = b"(XEN) a\n".to_vec();
        input.extend(encode_record(Kind::Stdout, b"one\n"));
        input.extend(b"(XEN) b \x1eOtwo\\x0a\r\n");
        input.extend(b"\x1eX3\n");
        for chunk in 1..input.len() {
            let mut c = console(false);
            let mut event = None;
            for piece in input.chunks(chunk) {
                if let Some(e) = c.feed(piece).unwrap() {
                    event = Some(e);
                    break;
                }
            }
            assert_eq!(event, Some(Event::Exit(GuestExit::Status(3))), "chunk {chunk}");
            assert_eq!(c.out, b"one\ntwo\n", "chunk {chunk}");
        }
    }

    #[test]
    fn stops_at_the_exit_record() {
        let mut c = console(false);
        let input = b"\x1eOa\n\x1eX101\n\x1eOafter\n";
        assert_eq!(run(&mut c, input), Some(Event::Exit(GuestExit::Status(101))));
        assert_eq!(c.out, b"a");
    }

    #[test]
    fn warns_about_malformed_records_and_goes_on() {
        let mut c = console(false);
        let input = b"\x1eQbogus\n\x1eO\\xzz\n\x1e\n\x1eX12x\n\x1eOok\n\x1eXabort\n";
        assert_eq!(run(&mut c, input), Some(Event::Exit(GuestExit::Abort)));
        assert_eq!(c.out, b"ok");
        let err = String::from_utf8(c.err.clone()).unwrap();
        assert_eq!(err.matches("xen-runner: warning: malformed").count(), 4, "{err}");
        assert!(err.contains("unknown record kind 'Q'"), "{err}");
        assert!(err.contains("bad escape at offset 1"), "{err}");
        assert!(err.contains("malformed exit record"), "{err}");
        assert!(err.contains("\\x1eX12x"), "the line is shown escaped: {err}");
    }

    #[test]
    fn limits_warnings() {
        let mut c = console(false);
        let input = b"\x1eQ\n".repeat(50);
        assert_eq!(run(&mut c, &input), None);
        let err = String::from_utf8(c.err.clone()).unwrap();
        assert_eq!(err.lines().count(), MAX_WARNINGS + 1);
        assert_eq!(c.records(), 50);
    }

    #[test]
    fn shows_kernel_warnings_but_not_info() {
        let mut c = console(false);
        let input = b"\x1eLE bad\n\x1eLW careful\n\x1eLI booted\n\x1eLD detail\n\x1eLnolevel\n";
        assert_eq!(run(&mut c, input), None);
        assert_eq!(c.err, b"[kernel E] bad\n[kernel W] careful\n[kernel ?] nolevel\n");
        assert!(c.out.is_empty());
    }

    #[test]
    fn a_run_that_asked_for_a_log_level_sees_its_lines_but_not_xen_s_text() {
        let mut c = console(false).show_all_logs(true);
        let input = b"(XEN) hello\n\x1eLI booted\n\x1eLD a step\n\x1eLE failed\n";
        assert_eq!(run(&mut c, input), None);
        assert_eq!(c.err, b"[kernel I] booted\n[kernel D] a step\n[kernel E] failed\n");
        let mut quiet = console(false);
        assert_eq!(run(&mut quiet, input), None);
        assert_eq!(quiet.err, b"[kernel E] failed\n");
    }

    #[test]
    fn verbose_shows_everything_on_stderr() {
        let mut c = console(true);
        let input = b"(XEN) hello\x1b[0m\n\x1eLI booted\n\x1eOout\n";
        assert_eq!(run(&mut c, input), None);
        assert_eq!(c.err, b"(XEN) hello\\x1b[0m\n[kernel I] booted\n");
        assert_eq!(c.out, b"out");
    }

    #[test]
    fn quiet_hides_xen_text_but_keeps_it() {
        let mut c = console(false);
        assert_eq!(run(&mut c, b"(XEN) one\n(XEN) two\r\n"), None);
        assert!(c.err.is_empty());
        let tail: Vec<&[u8]> = c.tail().collect();
        assert_eq!(tail, [&b"(XEN) one"[..], b"(XEN) two"]);
    }

    #[test]
    fn the_tail_is_bounded() {
        let mut c = console(false);
        let input: Vec<u8> = (0..500).flat_map(|i| format!("line {i}\n").into_bytes()).collect();
        run(&mut c, &input);
        assert_eq!(c.tail().count(), TAIL_LINES);
        assert_eq!(c.tail().last(), Some(&b"line 499"[..]));
    }

    #[test]
    fn collects_crash_records() {
        let mut c = console(false);
        let input = b"\x1eCvector=14 name=page-fault\n\x1eCrip=0x10\n\x1eXcrash\n";
        assert_eq!(run(&mut c, input), Some(Event::Exit(GuestExit::Crash)));
        assert_eq!(
            c.crash_records(),
            [b"vector=14 name=page-fault".to_vec(), b"rip=0x10".to_vec()]
        );
    }

    #[test]
    fn notices_xen_stopping_dom0() {
        let mut c = console(false);
        let input = b"\x1eOa\n(XEN) Hardware Dom0 halted: halting machine\r\n\x1eOb\n";
        assert_eq!(
            run(&mut c, input),
            Some(Event::XenStopped("(XEN) Hardware Dom0 halted: halting machine".into()))
        );
        assert_eq!(c.out, b"a");
    }

    #[test]
    fn follows_the_harness() {
        let mut c = console(false);
        let input = b"[    4.5] dom0 booting\n@@XENJOB BEGIN 001\n\x1eOhi\n\
                      @@XENJOB XEN (XEN) d1v0 Unhandled: vec 14\n@@XENJOB END 001 crash\n";
        assert_eq!(run(&mut c, input), Some(Event::JobEnded("crash".into())));
        assert!(c.take_job_begun());
        assert!(!c.take_job_begun());
        assert_eq!(c.out, b"hi");
        assert_eq!(c.tail().last(), Some(&b"(XEN) d1v0 Unhandled: vec 14"[..]));
        assert_eq!(run(&mut c, b"@@XENJOB FATAL xenstored did not start\n"), None);
        assert_eq!(c.tail().last(), Some(&b"@@XENJOB FATAL xenstored did not start"[..]));
        assert_eq!(run(&mut c, b"@@XENJOB ALLDONE\r\n"), Some(Event::AllDone));
    }

    #[test]
    fn shows_a_xen_dump_from_its_start() {
        let mut tail: Vec<&[u8]> = vec![b"(XEN) boot"; 50];
        tail.push(b"(XEN) d0v0 Unhandled: vec 14, #PF[0002]");
        tail.extend([&b"(XEN) RIP:    e033:[<0000000000402422>]"[..]; 35]);
        tail.push(b"(XEN) Guest stack trace from rsp=00000000004126c0:");
        tail.extend([&b"(XEN)    0000000000000047 0000000000000000"[..]; 10]);
        tail.push(b"(XEN) Hardware Dom0 crashed: rebooting machine in 5 seconds.");
        let shown = lines_to_show(&tail, 30);
        assert_eq!(shown[0], b"(XEN) d0v0 Unhandled: vec 14, #PF[0002]");
        assert_eq!(shown.len(), 1 + 35 + 1 + 2 + 1);
        assert_eq!(shown.last().unwrap(), tail.last().unwrap());
    }

    #[test]
    fn shows_the_last_lines_without_a_dump() {
        let tail: Vec<Vec<u8>> = (0..50).map(|i| format!("(XEN) {i}").into_bytes()).collect();
        let tail: Vec<&[u8]> = tail.iter().map(Vec::as_slice).collect();
        let shown = lines_to_show(&tail, 30);
        assert_eq!(shown.len(), 30);
        assert_eq!(shown[0], b"(XEN) 20");
    }

    #[test]
    fn a_last_line_without_lf_counts() {
        let mut c = console(false);
        assert_eq!(run(&mut c, b"\x1eOa\n\x1eX7"), None);
        assert_eq!(c.finish().unwrap(), Some(Event::Exit(GuestExit::Status(7))));
    }

    #[test]
    fn an_endless_line_is_cut() {
        let mut c = console(false);
        let input = vec![b'a'; MAX_LINE * 2 + 10];
        assert_eq!(run(&mut c, &input), None);
        assert_eq!(c.tail().count(), 2);
        assert!(c.pending.len() <= MAX_LINE);
    }
}
