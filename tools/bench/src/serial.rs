//! Runs QEMU and hands over its serial console (QEMU's stdout) line by line,
//! each line stamped with the moment its first byte reached this process.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// One line of the serial console, without its LF.
#[derive(Debug, Clone)]
pub struct Line {
    /// Seconds from QEMU's start to the arrival of the line's first byte.
    pub at: f64,
    /// The bytes (CRs are left in).
    pub bytes: Vec<u8>,
}

/// What waiting for the next line gave.
pub enum Next {
    /// A line.
    Line(Line),
    /// QEMU closed its stdout (it ended).
    Closed,
    /// The deadline passed.
    TimedOut,
}

/// A running QEMU whose console is being read.
pub struct Qemu {
    child: Child,
    lines: Receiver<Line>,
    started: Instant,
    log: BufWriter<File>,
}

impl Qemu {
    /// Starts `qemu` with `args`; its stderr goes to `stderr_file`, and every
    /// console line is also written, with its time, to `log_file`.
    pub fn spawn(
        qemu: &Path,
        args: &[std::ffi::OsString],
        log_file: &Path,
        stderr_file: &Path,
    ) -> Result<Self> {
        let log = BufWriter::new(
            File::create(log_file).with_context(|| format!("creating {}", log_file.display()))?,
        );
        let stderr = File::create(stderr_file)
            .with_context(|| format!("creating {}", stderr_file.display()))?;
        let mut cmd = Command::new(qemu);
        cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(stderr);
        // SAFETY: the closure only calls prctl, which is async-signal-safe, between fork and
        // exec; it makes the kernel kill QEMU if this process dies first (a Xen that halted
        // would otherwise keep QEMU running for ever).
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0);
                Ok(())
            });
        }
        let started = Instant::now();
        let mut child = cmd.spawn().with_context(|| format!("starting {}", qemu.display()))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || read_lines(stdout, started, tx));
        Ok(Self { child, lines: rx, started, log })
    }

    /// Waits for the next line until `deadline` (seconds from QEMU's start).
    pub fn next(&mut self, deadline: f64) -> Next {
        let wait = (deadline - self.started.elapsed().as_secs_f64()).max(0.0);
        match self.lines.recv_timeout(Duration::from_secs_f64(wait)) {
            Ok(line) => {
                let _ = write!(self.log, "{:10.6} ", line.at);
                let _ = self.log.write_all(&line.bytes);
                let _ = self.log.write_all(b"\n");
                Next::Line(line)
            }
            Err(RecvTimeoutError::Timeout) => Next::TimedOut,
            Err(RecvTimeoutError::Disconnected) => Next::Closed,
        }
    }

    /// Seconds since QEMU started.
    pub fn elapsed(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Stops QEMU and waits for it.
    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = self.log.flush();
    }
}

/// Splits `input` into lines, stamping each with the arrival of its first byte.
fn read_lines(mut input: impl Read, started: Instant, tx: mpsc::Sender<Line>) {
    let mut buf = vec![0u8; 65536];
    let mut line = Vec::new();
    let mut line_at = 0.0;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let now = started.elapsed().as_secs_f64();
        for &byte in &buf[..n] {
            if line.is_empty() {
                line_at = now;
            }
            if byte == b'\n' {
                let bytes = std::mem::take(&mut line);
                if tx.send(Line { at: line_at, bytes }).is_err() {
                    return;
                }
                // An empty line keeps its own stamp.
                line_at = now;
            } else {
                line.push(byte);
            }
        }
    }
    if !line.is_empty() {
        let _ = tx.send(Line { at: line_at, bytes: line });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lines_and_keeps_the_last_partial_one() {
        let (tx, rx) = mpsc::channel();
        read_lines(&b"one\r\ntwo\n\nthree"[..], Instant::now(), tx);
        let got: Vec<Vec<u8>> = rx.iter().map(|l| l.bytes).collect();
        assert_eq!(got, [&b"one\r"[..], b"two", b"", b"three"]);
    }
}
