//! Both ends of the harness's bulk TCP test (`net_bulk_100mb`, docs/net.md): std and `sha2`.
//!
//! A sender writes `len` bytes of a [`fill`] pattern and shuts its side down; the receiver reads
//! until that end of the stream, compares every byte with the same pattern and hashes what came
//! with SHA-256; it answers with one [`Report`] line, which the sender compares with the hash of
//! what it sent. So each end knows whether the other saw exactly the bytes sent: a wrong byte, a
//! missing one and an extra one each show, with the offset of the first difference.
//!
//! `tests/dom0-client bulk` is the end in dom0 and `tests/guest`'s `bulk` the end in the guest;
//! each direction has its own seed ([`DOM0_TO_GUEST`], [`GUEST_TO_DOM0`]), so that one stream
//! cannot pass for the other.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// The seed of the stream dom0 sends to the guest.
pub const DOM0_TO_GUEST: u64 = 1;
/// The seed of the stream the guest sends to dom0.
pub const GUEST_TO_DOM0: u64 = 2;

/// How long a connect, an accept, a read or a write may wait before the transfer counts as
/// failed: long, as the guest runs in an emulated machine that other builds share; it only
/// keeps a lost connection from hanging the test.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// How much is written or read at a time.
const CHUNK: usize = 256 * 1024;

/// Word `index` of the pattern of `seed`: splitmix64, so a word that is lost, repeated or moved
/// shows (the stream has no period a transfer could reach).
fn word(seed: u64, index: u64) -> u64 {
    let mut z = ((seed << 56) ^ index).wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Fills `buf` with the pattern of `seed` from byte `offset` of the stream on (the words
/// little-endian).
pub fn fill(seed: u64, offset: u64, buf: &mut [u8]) {
    // The bytes before the first whole word, the whole words (most of it), then the rest.
    let head = ((offset.wrapping_neg() % 8) as usize).min(buf.len());
    let len = buf.len();
    let (start, rest) = buf.split_at_mut(head);
    fill_bytes(seed, offset, start);
    let first = (offset + head as u64) / 8;
    let mut words = rest.chunks_exact_mut(8);
    for (i, w) in (&mut words).enumerate() {
        w.copy_from_slice(&word(seed, first + i as u64).to_le_bytes());
    }
    let end = words.into_remainder();
    fill_bytes(seed, offset + (len - end.len()) as u64, end);
}

/// [`fill`] a byte at a time.
fn fill_bytes(seed: u64, offset: u64, buf: &mut [u8]) {
    for (i, b) in buf.iter_mut().enumerate() {
        let position = offset + i as u64;
        *b = word(seed, position / 8).to_le_bytes()[(position % 8) as usize];
    }
}

/// A SHA-256 as 64 lowercase hex digits.
fn hex(hasher: Sha256) -> String {
    hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// What the receiver got, as it tells the sender: `LEN bytes sha256 HEX intact`, or
/// `LEN bytes sha256 HEX first difference at OFFSET` when a byte differs from the pattern or
/// the length is not the one expected (then OFFSET is where the shorter stream ends).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub bytes: u64,
    pub sha256: String,
    pub first_difference: Option<u64>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} bytes sha256 {}", self.bytes, self.sha256)?;
        match self.first_difference {
            None => write!(f, " intact"),
            Some(at) => write!(f, " first difference at {at}"),
        }
    }
}

impl std::str::FromStr for Report {
    type Err = String;

    fn from_str(line: &str) -> Result<Report, String> {
        let bad = || format!("not a report: {line:?}");
        let words: Vec<&str> = line.split_whitespace().collect();
        let (bytes, sha256) = match words[..] {
            [bytes, "bytes", "sha256", sha256, ..] => (bytes.parse().map_err(|_| bad())?, sha256),
            _ => return Err(bad()),
        };
        let first_difference = match words[4..] {
            ["intact"] => None,
            ["first", "difference", "at", at] => Some(at.parse().map_err(|_| bad())?),
            _ => return Err(bad()),
        };
        Ok(Report { bytes, sha256: sha256.to_owned(), first_difference })
    }
}

/// MB/s (10^6 bytes) of `bytes` in `elapsed`.
pub fn rate(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / elapsed.as_secs_f64().max(1e-9) / 1e6
}

/// Gives `stream` the [`PATIENCE`] for each read and write.
pub fn patient(stream: &TcpStream) -> io::Result<()> {
    stream.set_read_timeout(Some(PATIENCE))?;
    stream.set_write_timeout(Some(PATIENCE))
}

/// Accepts one connection on `listener`, waiting at most [`PATIENCE`].
pub fn accept_within(listener: &TcpListener) -> io::Result<TcpStream> {
    listener.set_nonblocking(true)?;
    let started = Instant::now();
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false)?;
                return Ok(stream);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && started.elapsed() < PATIENCE => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "nobody connected"));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Sends `len` bytes of the pattern of `seed`, shuts the write side down and reads the
/// receiver's report; returns the SHA-256 of what was sent and the report.
pub fn send(stream: &mut TcpStream, seed: u64, len: u64) -> io::Result<(String, Report)> {
    let mut buf = vec![0u8; CHUNK];
    let mut hasher = Sha256::new();
    let mut sent = 0;
    while sent < len {
        let n = (len - sent).min(CHUNK as u64) as usize;
        fill(seed, sent, &mut buf[..n]);
        hasher.update(&buf[..n]);
        stream.write_all(&buf[..n]).map_err(|e| context(e, format!("after {sent} bytes sent")))?;
        sent += n as u64;
    }
    stream.shutdown(Shutdown::Write)?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).map_err(|e| context(e, "reading the report".into()))?;
    let report = answer.trim_end().parse().map_err(io::Error::other)?;
    Ok((hex(hasher), report))
}

/// Reads until the sender shuts its side down, checking each byte against the pattern of
/// `seed` and `expected` bytes in all, and answers with the report, which it returns.
pub fn receive(stream: &mut TcpStream, seed: u64, expected: u64) -> io::Result<Report> {
    let (mut buf, mut want) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
    let mut hasher = Sha256::new();
    let (mut got, mut first_difference) = (0u64, None);
    loop {
        let n = stream.read(&mut buf).map_err(|e| context(e, format!("after {got} bytes")))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        if first_difference.is_none() {
            fill(seed, got, &mut want[..n]);
            if buf[..n] != want[..n] {
                let differs = buf[..n].iter().zip(&want[..n]).position(|(a, b)| a != b);
                first_difference = differs.map(|i| got + i as u64);
            }
        }
        got += n as u64;
    }
    if got != expected {
        first_difference = Some(first_difference.unwrap_or(u64::MAX).min(got.min(expected)));
    }
    let report = Report { bytes: got, sha256: hex(hasher), first_difference };
    writeln!(stream, "{report}")?;
    stream.shutdown(Shutdown::Write)?;
    Ok(report)
}

/// The sending end of the direction `name` (`dom0->guest`, `guest->dom0`): sends, then prints
///
/// ```text
/// NAME: sent LEN bytes sha256 HEX in SECONDS s, RATE MB/s
/// NAME: the receiver reported REPORT: agrees
/// ```
///
/// (`DOES NOT AGREE` when the report is not of exactly what was sent, `NAME: failed: WHY` on
/// an error); returns whether the receiver agrees. The time ends when its report has come.
pub fn sending_end(name: &str, stream: &mut TcpStream, seed: u64, len: u64) -> bool {
    let started = Instant::now();
    match patient(stream).and_then(|()| send(stream, seed, len)) {
        Ok((sha256, report)) => {
            let elapsed = started.elapsed();
            let (seconds, mb_s) = (elapsed.as_secs_f64(), rate(len, elapsed));
            println!("{name}: sent {len} bytes sha256 {sha256} in {seconds:.1} s, {mb_s:.2} MB/s");
            let agree = agrees(&report, len, &sha256);
            let verdict = if agree { "agrees" } else { "DOES NOT AGREE" };
            println!("{name}: the receiver reported {report}: {verdict}");
            agree
        }
        Err(e) => {
            println!("{name}: failed: {e}");
            false
        }
    }
}

/// The receiving end of the direction `name`: receives, answers, then prints
///
/// ```text
/// NAME: received REPORT in SECONDS s, RATE MB/s
/// ```
///
/// (`NAME: failed: WHY` on an error); returns whether all `len` bytes came intact.
pub fn receiving_end(name: &str, stream: &mut TcpStream, seed: u64, len: u64) -> bool {
    let started = Instant::now();
    match patient(stream).and_then(|()| receive(stream, seed, len)) {
        Ok(report) => {
            let elapsed = started.elapsed();
            let (seconds, mb_s) = (elapsed.as_secs_f64(), rate(report.bytes, elapsed));
            println!("{name}: received {report} in {seconds:.1} s, {mb_s:.2} MB/s");
            report.bytes == len && report.first_difference.is_none()
        }
        Err(e) => {
            println!("{name}: failed: {e}");
            false
        }
    }
}

fn context(e: io::Error, what: String) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// Whether the receiver's report says it got exactly what was sent: `len` bytes hashing to
/// `sha256`, every one as the pattern has it.
pub fn agrees(report: &Report, len: u64, sha256: &str) -> bool {
    report.bytes == len && report.sha256 == sha256 && report.first_difference.is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pattern_is_the_same_from_any_offset() {
        let mut whole = vec![0u8; 100];
        fill(DOM0_TO_GUEST, 0, &mut whole);
        for start in [0, 1, 7, 8, 9, 63] {
            let mut part = vec![0u8; 100 - start];
            fill(DOM0_TO_GUEST, start as u64, &mut part);
            assert_eq!(part, whole[start..]);
        }
        let mut inside_a_word = [0u8; 2];
        fill(DOM0_TO_GUEST, 3, &mut inside_a_word);
        assert_eq!(inside_a_word, whole[3..5]);
        let mut other = vec![0u8; 100];
        fill(GUEST_TO_DOM0, 0, &mut other);
        assert_ne!(other, whole);
        // No shifted copy of itself: no byte offset 1..8 gives the same run.
        assert!((1..8).all(|s| whole[s..] != whole[..100 - s]));
    }

    #[test]
    fn reports_read_back() {
        for first_difference in [None, Some(12345)] {
            let r = Report { bytes: 100, sha256: "ab".repeat(32), first_difference };
            assert_eq!(r.to_string().parse::<Report>(), Ok(r));
        }
        assert!("100 bytes sha256".parse::<Report>().is_err());
        assert!("100 bytes sha256 ab fine".parse::<Report>().is_err());
    }

    /// A transfer over loopback, with the receiver told to expect `expected` bytes.
    fn over_loopback(len: u64, expected: u64, flip: Option<u64>) -> (String, Report, Report) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let receiver = std::thread::spawn(move || {
            let mut s = accept_within(&listener).unwrap();
            receive(&mut s, DOM0_TO_GUEST, expected).unwrap()
        });
        let mut s = TcpStream::connect(addr).unwrap();
        let (sha256, report) = match flip {
            None => send(&mut s, DOM0_TO_GUEST, len).unwrap(),
            Some(at) => {
                // A sender whose byte `at` goes wrong on the way.
                let mut buf = vec![0u8; len as usize];
                fill(DOM0_TO_GUEST, 0, &mut buf);
                let mut hasher = Sha256::new();
                hasher.update(&buf);
                buf[at as usize] ^= 0x20;
                s.write_all(&buf).unwrap();
                s.shutdown(Shutdown::Write).unwrap();
                let mut answer = String::new();
                s.read_to_string(&mut answer).unwrap();
                (hex(hasher), answer.trim_end().parse().unwrap())
            }
        };
        (sha256, report, receiver.join().unwrap())
    }

    #[test]
    fn an_intact_transfer_agrees() {
        let (sha256, report, seen) = over_loopback(1_000_003, 1_000_003, None);
        assert_eq!(report, seen);
        assert!(agrees(&report, 1_000_003, &sha256), "{report}");
    }

    #[test]
    fn a_wrong_missing_or_extra_byte_shows() {
        let (sha256, report, _) = over_loopback(300_000, 300_000, Some(200_001));
        assert_eq!(report.first_difference, Some(200_001));
        assert_ne!(report.sha256, sha256);
        assert!(!agrees(&report, 300_000, &sha256));
        let (_, short, _) = over_loopback(299_999, 300_000, None);
        assert_eq!((short.bytes, short.first_difference), (299_999, Some(299_999)));
        let (_, long, _) = over_loopback(300_001, 300_000, None);
        assert_eq!((long.bytes, long.first_difference), (300_001, Some(300_000)));
    }
}
