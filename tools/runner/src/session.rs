//! Runs the process that carries the guest's console (QEMU, or `xl` on a
//! real Xen host) and relays its output until the run ends.
//!
//! Reader threads and the signal thread send into one channel, so the main
//! thread waits on output, signals and the timeout at once.

use std::io::{self, Read, Write};
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

use crate::console::{Console, Event};

/// Lines of the child's own stderr kept for the report.
const STDERR_LINES: usize = 20;

/// What the threads report.
enum Message {
    /// A chunk of the child's stdout.
    Stdout(Vec<u8>),
    /// The child closed its stdout.
    StdoutEnd,
    /// A line of the child's stderr.
    Stderr(Vec<u8>),
    /// The child closed its stderr.
    StderrEnd,
    /// The runner got a signal.
    Signal(i32),
}

/// Why the relay stopped.
#[derive(Debug)]
pub enum End {
    /// The console brought an event.
    Event(Event),
    /// The output ended without one; the child's status if it exited.
    OutputEnded(Option<ExitStatus>),
    /// The deadline passed.
    TimedOut,
    /// The runner got this signal.
    Signal(i32),
}

/// What [`Session::next`] brings.
#[derive(Debug)]
pub enum Incoming {
    /// A chunk of the child's stdout.
    Output(Vec<u8>),
    /// The child's stdout ended; its status if it exited.
    OutputEnded(Option<ExitStatus>),
    /// The deadline passed.
    TimedOut,
    /// The runner got this signal.
    Signal(i32),
}

/// A running child with its output threads.
pub struct Session {
    child: Child,
    /// The child's stdin, held open but never written.
    _stdin: Option<std::process::ChildStdin>,
    rx: Receiver<Message>,
    stderr_tail: Vec<String>,
}

/// Starts listening for SIGINT, SIGTERM and SIGHUP; they arrive as
/// [`End::Signal`] once a session runs.
fn watch_signals(tx: Sender<Message>) -> Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
        .context("installing signal handlers")?;
    thread::spawn(move || {
        for signal in signals.forever() {
            if tx.send(Message::Signal(signal)).is_err() {
                break;
            }
        }
    });
    Ok(())
}

impl Session {
    /// Spawns `cmd` with its stdout and stderr piped to the relay.
    ///
    /// The child's stdin is `/dev/null`, or with `hold_stdin` a pipe that
    /// stays open and silent (a console client may quit at end of input).
    /// The child gets its own process group, so that the terminal's Ctrl-C
    /// reaches only the runner, which then stops the child; and it is killed
    /// if the runner dies without doing so.
    pub fn spawn(mut cmd: Command, hold_stdin: bool) -> Result<Self> {
        let (tx, rx) = mpsc::channel();
        watch_signals(tx.clone())?;
        cmd.stdin(if hold_stdin { Stdio::piped() } else { Stdio::null() });
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
        kill_with_parent(&mut cmd);
        let program = cmd.get_program().to_string_lossy().into_owned();
        let mut child = cmd.spawn().with_context(|| format!("starting {program}"))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let out_tx = tx.clone();
        thread::spawn(move || read_chunks(stdout, out_tx));
        thread::spawn(move || read_lines(stderr, tx));
        let stdin = child.stdin.take();
        Ok(Self { child, _stdin: stdin, rx, stderr_tail: Vec::new() })
    }

    /// Relays the child's stdout into `console` until the run ends.
    ///
    /// `deadline` is when to give up; when the dom0 harness says the guest
    /// began, it moves to `restart` from then (the guest's own time).
    pub fn relay<O: Write, E: Write>(
        &mut self,
        console: &mut Console<O, E>,
        mut deadline: Option<Instant>,
        restart: Option<Duration>,
        verbose: bool,
    ) -> Result<End> {
        loop {
            let shown = if verbose { Some(console.err() as &mut dyn Write) } else { None };
            match self.next(deadline, shown)? {
                Incoming::Output(chunk) => {
                    let event = console.feed(&chunk)?;
                    console.flush()?;
                    if console.take_job_begun() {
                        if let Some(timeout) = restart {
                            deadline = Some(Instant::now() + timeout);
                        }
                    }
                    if let Some(event) = event {
                        return Ok(End::Event(event));
                    }
                }
                Incoming::OutputEnded(status) => {
                    let event = console.finish()?;
                    console.flush()?;
                    return Ok(event.map_or(End::OutputEnded(status), End::Event));
                }
                Incoming::TimedOut => return Ok(End::TimedOut),
                Incoming::Signal(signal) => return Ok(End::Signal(signal)),
            }
        }
    }

    /// Waits for the next chunk of the child's stdout, until `deadline`.
    ///
    /// Lines of the child's stderr are kept for the report (and written to
    /// `shown` when given) on the way. Once stdout has ended, this waits for
    /// the child and for the last of its stderr.
    pub fn next(
        &mut self,
        deadline: Option<Instant>,
        mut shown: Option<&mut (dyn Write + '_)>,
    ) -> Result<Incoming> {
        loop {
            let message = match deadline {
                Some(deadline) => {
                    match self.rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                        Ok(message) => message,
                        Err(RecvTimeoutError::Timeout) => return Ok(Incoming::TimedOut),
                        Err(RecvTimeoutError::Disconnected) => return self.ended(shown),
                    }
                }
                None => match self.rx.recv() {
                    Ok(message) => message,
                    Err(_) => return self.ended(shown),
                },
            };
            match message {
                Message::Stdout(chunk) => return Ok(Incoming::Output(chunk)),
                Message::StdoutEnd => return self.ended(shown),
                Message::Stderr(line) => self.keep_stderr(&line, shown.as_deref_mut())?,
                Message::StderrEnd => {}
                Message::Signal(signal) => return Ok(Incoming::Signal(signal)),
            }
        }
    }

    /// Keeps (and shows, when asked) a line of the child's stderr.
    fn keep_stderr(&mut self, line: &[u8], shown: Option<&mut (dyn Write + '_)>) -> io::Result<()> {
        let text = String::from_utf8_lossy(line).trim_end().to_owned();
        if let Some(out) = shown {
            writeln!(out, "{text}")?;
        }
        if self.stderr_tail.len() == STDERR_LINES {
            self.stderr_tail.remove(0);
        }
        self.stderr_tail.push(text);
        Ok(())
    }

    /// Waits for the child after its output ended, and for the last of its
    /// stderr (where QEMU says why it failed to start).
    fn ended(&mut self, mut shown: Option<&mut (dyn Write + '_)>) -> Result<Incoming> {
        let status = self.child.wait().ok();
        let until = Instant::now() + Duration::from_secs(1);
        while let Ok(message) =
            self.rx.recv_timeout(until.saturating_duration_since(Instant::now()))
        {
            match message {
                Message::Stderr(line) => self.keep_stderr(&line, shown.as_deref_mut())?,
                Message::StderrEnd => break,
                _ => {}
            }
        }
        Ok(Incoming::OutputEnded(status))
    }

    /// Returns the last lines the child wrote to its stderr.
    pub fn stderr_tail(&self) -> &[String] {
        &self.stderr_tail
    }

    /// Kills the child and whatever it started (its process group), and
    /// reaps it.
    pub fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            kill_group(self.child.id());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Asks Linux to kill the child when the runner dies.
#[allow(unsafe_code)]
fn kill_with_parent(cmd: &mut Command) {
    // SAFETY: the closure runs between fork and exec and only makes the
    // prctl system call, which is async-signal-safe and touches no memory
    // of the parent.
    unsafe {
        cmd.pre_exec(|| {
            // PR_SET_PDEATHSIG fires when the thread that forked exits; the
            // runner forks from its main thread, which lives to the end.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
            Ok(())
        });
    }
}

/// Sends SIGKILL to the process group the child leads (`xl create -c`
/// forks a console client; QEMU starts nothing, but this costs nothing).
#[allow(unsafe_code)]
fn kill_group(leader: u32) {
    let Ok(pgid) = libc::pid_t::try_from(leader) else { return };
    // SAFETY: kill(2) takes plain integers and touches no memory. The group
    // is the child's own (process_group(0) at spawn), and the child is not
    // reaped yet, so its id cannot have been reused.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

fn read_chunks(mut from: impl Read, tx: Sender<Message>) {
    let mut buf = vec![0; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if tx.send(Message::Stdout(buf[..n].to_vec())).is_err() {
                    return;
                }
            }
        }
    }
    let _ = tx.send(Message::StdoutEnd);
}

fn read_lines(from: impl Read, tx: Sender<Message>) {
    use io::BufRead as _;
    let mut reader = io::BufReader::new(from);
    let mut line = Vec::new();
    while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
        if tx.send(Message::Stderr(std::mem::take(&mut line))).is_err() {
            return;
        }
    }
    let _ = tx.send(Message::StderrEnd);
}
