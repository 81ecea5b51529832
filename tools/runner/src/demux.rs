//! Splits the console stream of one dom0 boot that runs many jobs into one
//! outcome per job.
//!
//! Between `@@XENJOB BEGIN NNN` and `@@XENJOB END NNN HOW` the lines belong
//! to job NNN: they go through a [`Console`] of the job's own, which decodes
//! its stdout and stderr apart from every other job's and keeps its crash
//! records, thread records and text tail, exactly as a single run's console
//! does. The job's first ending event (its exit record, or Xen stopping)
//! stops that console, as it stops a single run; later lines of the job are
//! only kept in the boot's tail. `DRIVER` and `DRIVEREXIT` lines are the
//! job's driver's. Text outside jobs goes to a console of the boot, for its
//! tail.

use std::io::{self, Write};

use crate::console::{self, Console, Event, MAX_LINE};
use crate::framing;
use crate::harness::{self, Marker};

/// What the stream told about one job.
pub struct JobOutcome {
    /// The job's console: its decoded stdout and stderr, and what a report needs.
    pub console: Console<Vec<u8>, Vec<u8>>,
    /// What ended the guest's run as a single run sees it: the exit record,
    /// Xen stopping, or else the harness's `END` (as [`Event::JobEnded`]).
    pub event: Option<Event>,
    /// The word of the harness's `END` line (`poweroff`, ..., `timeout`).
    pub end: Option<String>,
    /// What the driver printed, one LF after each line.
    pub driver_output: Vec<u8>,
    /// The driver's exit status; `None` when it did not run (or is unreadable).
    pub driver_status: Option<i32>,
    /// Whether the harness began the job.
    pub began: bool,
}

impl JobOutcome {
    fn new() -> Self {
        Self {
            console: Console::new(Vec::new(), Vec::new(), false),
            event: None,
            end: None,
            driver_output: Vec::new(),
            driver_status: None,
            began: false,
        }
    }
}

/// Something the stream brought that the caller may act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Happening {
    /// The harness began the job at this index.
    Began(usize),
    /// The harness ended the job at this index.
    Ended(usize),
}

/// Why nothing more will come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    /// The harness said `ALLDONE`.
    AllDone,
    /// Xen said that dom0 or the machine stopped (the line is given).
    XenStopped(String),
}

/// The splitter.
pub struct Demux {
    jobs: Vec<JobOutcome>,
    current: Option<usize>,
    boot: Console<io::Sink, io::Sink>,
    pending: Vec<u8>,
    finish: Option<Finish>,
    echo: Option<Box<dyn Write>>,
}

impl Demux {
    /// Starts a splitter for a boot that runs `jobs` jobs, numbered from `001`.
    pub fn new(jobs: usize) -> Self {
        Self {
            jobs: (0..jobs).map(|_| JobOutcome::new()).collect(),
            current: None,
            boot: Console::new(io::sink(), io::sink(), false),
            pending: Vec::new(),
            finish: None,
            echo: None,
        }
    }

    /// Shows every kernel log line of job `index` in its stderr (the job asked for a log
    /// level), not only errors and warnings.
    pub fn show_all_logs(&mut self, index: usize) {
        if let Some(job) = self.jobs.get_mut(index) {
            let console = std::mem::replace(&mut job.console, Console::new(Vec::new(), Vec::new(), false));
            job.console = console.show_all_logs(true);
        }
    }

    /// Also writes every line to `echo`, with control bytes made visible (`--verbose`).
    pub fn echo_to(&mut self, echo: Box<dyn Write>) {
        self.echo = Some(echo);
    }

    /// Takes the next chunk of the stream; returns what it brought. After
    /// the finish, further bytes are ignored.
    pub fn feed(&mut self, bytes: &[u8]) -> io::Result<Vec<Happening>> {
        let mut happenings = Vec::new();
        if self.finish.is_some() {
            return Ok(happenings);
        }
        self.pending.extend_from_slice(bytes);
        let mut start = 0;
        while self.finish.is_none() {
            let rest = &self.pending[start..];
            let (len, used) = match rest.iter().position(|&b| b == b'\n') {
                Some(len) => (len, len + 1),
                None if rest.len() >= MAX_LINE => (MAX_LINE, MAX_LINE),
                None => break,
            };
            let line = rest[..len].to_vec();
            start += used;
            self.line(&line, &mut happenings)?;
        }
        self.pending.drain(..start);
        Ok(happenings)
    }

    /// Ends the stream: handles a last line that had no LF.
    pub fn finish(&mut self) -> io::Result<Vec<Happening>> {
        let mut happenings = Vec::new();
        let line = std::mem::take(&mut self.pending);
        if !line.is_empty() && self.finish.is_none() {
            self.line(&line, &mut happenings)?;
        }
        Ok(happenings)
    }

    /// Returns why nothing more will come, once that is known.
    pub fn finished(&self) -> Option<&Finish> {
        self.finish.as_ref()
    }

    /// Returns the index of the job that runs now.
    pub fn current(&self) -> Option<usize> {
        self.current
    }

    /// Returns the last lines of text outside the jobs' consoles.
    pub fn boot_tail(&self) -> impl Iterator<Item = &[u8]> {
        self.boot.tail()
    }

    /// Returns the outcomes, in job order.
    pub fn into_jobs(self) -> Vec<JobOutcome> {
        self.jobs
    }

    /// Returns the outcome of the job at `index`.
    pub fn job(&self, index: usize) -> &JobOutcome {
        &self.jobs[index]
    }

    /// Handles one line (without its LF).
    fn line(&mut self, line: &[u8], happenings: &mut Vec<Happening>) -> io::Result<()> {
        if let Some(echo) = &mut self.echo {
            echo.write_all(&console::sanitize(framing::split_line(line).text))?;
            if let Some(record) = framing::split_line(line).record {
                echo.write_all(b"\\x1e")?;
                echo.write_all(&console::sanitize(record))?;
            }
            echo.write_all(b"\n")?;
        }
        match harness::parse_marker(framing::split_line(line).text) {
            Some(Marker::Begin(job)) => self.begin(job, line, happenings),
            Some(Marker::End { job, how }) => self.end(job, how, line, happenings),
            Some(Marker::Driver(text)) => {
                match self.current {
                    Some(at) => {
                        let output = &mut self.jobs[at].driver_output;
                        output.extend_from_slice(text);
                        output.push(b'\n');
                    }
                    None => self.keep_for_boot(line)?,
                }
                Ok(())
            }
            Some(Marker::DriverExit(status)) => {
                match self.current {
                    Some(at) => self.jobs[at].driver_status = parse_status(status),
                    None => self.keep_for_boot(line)?,
                }
                Ok(())
            }
            Some(Marker::AllDone) => {
                self.finish = Some(Finish::AllDone);
                Ok(())
            }
            _ => self.give_to_job(line),
        }
    }

    /// `BEGIN NNN`: NNN must be a job of this boot that has not begun yet.
    fn begin(
        &mut self,
        job: &[u8],
        line: &[u8],
        happenings: &mut Vec<Happening>,
    ) -> io::Result<()> {
        match self.index_of(job) {
            Some(at) if !self.jobs[at].began => {
                self.jobs[at].began = true;
                self.current = Some(at);
                happenings.push(Happening::Began(at));
                Ok(())
            }
            _ => self.keep_for_boot(line),
        }
    }

    /// `END NNN HOW`: ends the current job, if it is NNN.
    fn end(
        &mut self,
        job: &[u8],
        how: &[u8],
        line: &[u8],
        happenings: &mut Vec<Happening>,
    ) -> io::Result<()> {
        let Some(at) = self.current.filter(|&at| self.index_of(job) == Some(at)) else {
            return self.keep_for_boot(line);
        };
        let how = String::from_utf8_lossy(how).into_owned();
        let outcome = &mut self.jobs[at];
        outcome.event.get_or_insert_with(|| Event::JobEnded(how.clone()));
        outcome.end = Some(how);
        self.current = None;
        happenings.push(Happening::Ended(at));
        Ok(())
    }

    /// Reads a job number of this boot (`001` is index 0).
    fn index_of(&self, job: &[u8]) -> Option<usize> {
        let number: usize = std::str::from_utf8(job).ok()?.parse().ok()?;
        (1..=self.jobs.len()).contains(&number).then(|| number - 1)
    }

    /// Gives a line to the current job's console, or to the boot's once the
    /// job's run has ended (or outside jobs).
    fn give_to_job(&mut self, line: &[u8]) -> io::Result<()> {
        let Some(at) = self.current.filter(|&at| self.jobs[at].event.is_none()) else {
            return self.keep_for_boot(line);
        };
        let event = self.jobs[at].console.feed(&with_lf(line))?;
        if let Some(Event::XenStopped(text)) = &event {
            self.finish = Some(Finish::XenStopped(text.clone()));
        }
        self.jobs[at].event = event;
        Ok(())
    }

    /// Keeps a line in the boot's tail, noticing Xen stopping.
    fn keep_for_boot(&mut self, line: &[u8]) -> io::Result<()> {
        if let Some(Event::XenStopped(text)) = self.boot.feed(&with_lf(line))? {
            if let Some(at) = self.current {
                self.jobs[at].event.get_or_insert(Event::XenStopped(text.clone()));
            }
            self.finish = Some(Finish::XenStopped(text));
        }
        Ok(())
    }
}

fn with_lf(line: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(line.len() + 1);
    bytes.extend_from_slice(line);
    bytes.push(b'\n');
    bytes
}

/// Reads a driver's exit status (a decimal, as the shell gives it).
fn parse_status(text: &[u8]) -> Option<i32> {
    std::str::from_utf8(text).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::{encode_record, Kind};
    use crate::status::GuestExit;

    /// A boot of three jobs: one that exits, one whose driver talks and
    /// that dom0 stops at its timeout, one that crashes (Xen's dump relayed).
    fn three_jobs() -> Vec<u8> {
        let mut s = b"(XEN) Xen version 4.17\r\n[    4.2] dom0 text\r\n".to_vec();
        s.extend(b"@@XENJOB BEGIN 001\r\n");
        s.extend(encode_record(Kind::Stdout, b"one out\n"));
        s.extend(encode_record(Kind::Stderr, b"one err\n"));
        s.extend(b"\x1eX3\r\n");
        s.extend(b"@@XENJOB END 001 poweroff\r\n");
        s.extend(b"@@XENJOB BEGIN 002\r\n");
        s.extend(encode_record(Kind::Stdout, b"two out\n"));
        s.extend(b"@@XENJOB DRIVER name=xr-two-1-2\r\n");
        s.extend(b"@@XENJOB DRIVER \r\n");
        s.extend(b"@@XENJOB DRIVER tail \\x1eX0\r\n");
        s.extend(b"@@XENJOB DRIVEREXIT 143\r\n");
        s.extend(b"@@XENJOB END 002 timeout\r\n");
        s.extend(b"@@XENJOB BEGIN 003\r\n");
        s.extend(b"\x1eTid=1 guard=0x1000 name=main\n");
        s.extend(b"(XEN) d3v0 Unhandled: vec 14, #PF[0002]\r\n");
        s.extend(b"@@XENJOB XEN (XEN) d3v0 Unhandled: vec 14, #PF[0002]\r\n");
        s.extend(b"@@XENJOB END 003 crash\r\n");
        s.extend(b"@@XENJOB ALLDONE\r\n[   30.1] reboot: Power down\r\n");
        s
    }

    fn feed_all(demux: &mut Demux, input: &[u8], chunk: usize) -> Vec<Happening> {
        let mut happenings = Vec::new();
        for piece in input.chunks(chunk) {
            happenings.extend(demux.feed(piece).unwrap());
        }
        happenings.extend(demux.finish().unwrap());
        happenings
    }

    #[test]
    fn splits_one_stream_into_jobs() {
        let mut demux = Demux::new(3);
        let happenings = feed_all(&mut demux, &three_jobs(), usize::MAX);
        use Happening::*;
        assert_eq!(happenings, [Began(0), Ended(0), Began(1), Ended(1), Began(2), Ended(2)]);
        assert_eq!(demux.finished(), Some(&Finish::AllDone));
        let jobs = demux.into_jobs();

        assert_eq!(jobs[0].event, Some(Event::Exit(GuestExit::Status(3))));
        assert_eq!(jobs[0].end.as_deref(), Some("poweroff"));
        assert_eq!(jobs[0].console.out_ref(), b"one out\n");
        assert_eq!(jobs[0].console.err_ref(), b"one err\n");
        assert_eq!(jobs[0].driver_status, None);

        assert_eq!(jobs[1].event, Some(Event::JobEnded("timeout".into())));
        assert_eq!(jobs[1].console.out_ref(), b"two out\n");
        assert_eq!(jobs[1].driver_output, b"name=xr-two-1-2\n\ntail \\x1eX0\n");
        assert_eq!(jobs[1].driver_status, Some(143));

        assert_eq!(jobs[2].event, Some(Event::JobEnded("crash".into())));
        assert!(jobs[2].console.out_ref().is_empty());
        assert_eq!(jobs[2].console.thread_records(), [b"id=1 guard=0x1000 name=main".to_vec()]);
        let tail: Vec<&[u8]> = jobs[2].console.tail().collect();
        assert_eq!(tail, [&b"(XEN) d3v0 Unhandled: vec 14, #PF[0002]"[..]; 2]);
        for job in &jobs[..2] {
            assert_eq!(job.console.tail().count(), 0, "no other job's text");
        }
    }

    #[test]
    fn any_split_of_the_stream_gives_the_same_jobs() {
        let input = three_jobs();
        for chunk in [1, 2, 3, 7, 64] {
            let mut demux = Demux::new(3);
            assert_eq!(feed_all(&mut demux, &input, chunk).len(), 6, "chunk {chunk}");
            let jobs = demux.into_jobs();
            assert_eq!(
                jobs[1].driver_output, b"name=xr-two-1-2\n\ntail \\x1eX0\n",
                "chunk {chunk}"
            );
            assert_eq!(jobs[0].console.out_ref(), b"one out\n", "chunk {chunk}");
        }
    }

    #[test]
    fn the_exit_record_ends_what_the_job_relays() {
        let mut demux = Demux::new(1);
        let mut input = b"@@XENJOB BEGIN 001\n\x1eOa\n\x1eX0\n\x1eOafter\n".to_vec();
        input.extend(b"(XEN) late text\n@@XENJOB END 001 poweroff\n");
        feed_all(&mut demux, &input, usize::MAX);
        assert_eq!(demux.boot_tail().last(), Some(&b"(XEN) late text"[..]));
        let job = &demux.job(0);
        assert_eq!(job.console.out_ref(), b"a");
        assert_eq!(job.event, Some(Event::Exit(GuestExit::Status(0))));
        assert_eq!(job.end.as_deref(), Some("poweroff"));
    }

    #[test]
    fn a_stream_that_stops_inside_a_job() {
        let mut demux = Demux::new(3);
        let input = b"@@XENJOB BEGIN 001\n\x1eOhalf";
        let happenings = feed_all(&mut demux, input, usize::MAX);
        assert_eq!(happenings, [Happening::Began(0)]);
        assert_eq!(demux.current(), Some(0));
        assert_eq!(demux.finished(), None);
        let jobs = demux.into_jobs();
        assert_eq!(jobs[0].console.out_ref(), b"half");
        assert!(jobs[0].began && jobs[0].event.is_none() && jobs[0].end.is_none());
        assert!(!jobs[1].began && !jobs[2].began);
    }

    #[test]
    fn xen_stopping_finishes_the_boot() {
        let mut demux = Demux::new(2);
        let input =
            b"@@XENJOB BEGIN 001\n(XEN) Hardware Dom0 crashed: rebooting machine in 5 seconds.\n\
                      @@XENJOB BEGIN 002\n";
        let happenings = feed_all(&mut demux, input, usize::MAX);
        assert_eq!(happenings, [Happening::Began(0)]);
        let stopped = "(XEN) Hardware Dom0 crashed: rebooting machine in 5 seconds.";
        assert_eq!(demux.finished(), Some(&Finish::XenStopped(stopped.into())));
        let jobs = demux.into_jobs();
        assert_eq!(jobs[0].event, Some(Event::XenStopped(stopped.into())));
        assert!(!jobs[1].began);
    }

    #[test]
    fn fatal_and_stray_markers_stay_in_the_boots_tail() {
        let mut demux = Demux::new(1);
        let input = b"@@XENJOB FATAL xenstored did not start\n@@XENJOB END 001 error\n\
                      @@XENJOB BEGIN 007\n@@XENJOB DRIVER stray\n@@XENJOB ALLDONE\n";
        assert!(feed_all(&mut demux, input, usize::MAX).is_empty());
        assert_eq!(demux.finished(), Some(&Finish::AllDone));
        let tail: Vec<&[u8]> = demux.boot_tail().collect();
        assert_eq!(tail, [b"@@XENJOB FATAL xenstored did not start"]);
        assert!(!demux.job(0).began);
    }

    #[test]
    fn a_job_begins_only_once() {
        let mut demux = Demux::new(2);
        let input = b"@@XENJOB BEGIN 002\n@@XENJOB END 002 poweroff\n@@XENJOB BEGIN 002\n\
                      @@XENJOB BEGIN 000\n@@XENJOB BEGIN x\n";
        let happenings = feed_all(&mut demux, input, usize::MAX);
        assert_eq!(happenings, [Happening::Began(1), Happening::Ended(1)]);
        assert_eq!(demux.current(), None);
        assert_eq!(demux.boot_tail().count(), 0, "BEGIN lines are not kept as text");
    }

    #[test]
    fn a_driver_status_that_is_not_a_number_is_none() {
        let mut demux = Demux::new(1);
        let input = b"@@XENJOB BEGIN 001\n@@XENJOB DRIVEREXIT x\n@@XENJOB END 001 error\n";
        feed_all(&mut demux, input, usize::MAX);
        assert_eq!(demux.job(0).driver_status, None);
        assert_eq!(demux.job(0).end.as_deref(), Some("error"));
    }

    #[test]
    fn echo_shows_every_line() {
        struct Shared(std::rc::Rc<std::cell::RefCell<Vec<u8>>>);
        impl Write for Shared {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.0.borrow_mut().write(buf)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let mut demux = Demux::new(1);
        demux.echo_to(Box::new(Shared(seen.clone())));
        feed_all(&mut demux, b"(XEN) a\x1b\r\n\x1eOb\n", usize::MAX);
        assert_eq!(*seen.borrow(), b"(XEN) a\\x1b\n\\x1eOb\n");
    }
}
