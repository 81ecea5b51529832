//! The harness's client in its Linux dom0, against a guest's server; std only (and the `bulk`
//! crate's SHA-256), built static, so that it runs in dom0's busybox initramfs:
//!
//!     dom0-client ADDR sequential N   N connections, one after another
//!     dom0-client ADDR concurrent N   N connections open at once: every one connects first,
//!                                     then each sends its request, then each reply is read
//!     dom0-client ADDR bulk N LISTEN  N bytes to the guest's bulk server at ADDR, then N bytes
//!                                     from the guest, which connects to LISTEN (`bulk`)
//!
//! The first two are against examples/http's server.
//! Connection `i` asks for `/big?bytes=L` with `Connection: close`, where `L` = [`body_len`]`(i)`
//! differs from one connection to the next (so that a reply meant for another connection shows).
//! It succeeds when the reply's status line is `HTTP/1.1 200 OK`, its `Content-Length` is `L`,
//! and the body is exactly `L` bytes of the letters `a` to `z` over and over, after which the
//! server closes. The client prints
//!
//!     sequential: 1000 of 1000 succeeded, 0 failed, in 61234 ms
//!
//! (`concurrent:` also prints how many were open at once), the first few failures with their
//! reason, and exits 0 only when every connection succeeded.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// How long a connect, a write or a read may take before the connection counts as failed: long,
/// since the guest runs in an emulated machine that other builds share; it only keeps a lost
/// connection from hanging the test.
const PATIENCE: Duration = Duration::from_secs(60);
/// How many failures are printed with their reason.
const SHOWN: usize = 5;

/// The body length connection `i` asks for: 1 to 4,000 bytes, a different one each time.
fn body_len(i: usize) -> usize {
    1 + i * 389 % 4000
}

/// The body examples/http sends for `/big?bytes=len`.
fn expected_body(len: usize) -> Vec<u8> {
    (0..len).map(|i| b'a' + (i % 26) as u8).collect()
}

fn connect(addr: &SocketAddr) -> Result<TcpStream, String> {
    let s = TcpStream::connect_timeout(addr, PATIENCE).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(PATIENCE)).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(PATIENCE)).map_err(|e| e.to_string())?;
    Ok(s)
}

fn send_request(s: &mut TcpStream, i: usize) -> Result<(), String> {
    let request = format!(
        "GET /big?bytes={} HTTP/1.1\r\nHost: guest\r\nConnection: close\r\n\r\n",
        body_len(i)
    );
    s.write_all(request.as_bytes()).map_err(|e| format!("sending the request: {e}"))
}

/// Reads the whole reply (until the server closes) and checks it.
fn check_reply(s: &mut TcpStream, i: usize) -> Result<(), String> {
    let mut reply = Vec::new();
    s.read_to_end(&mut reply)
        .map_err(|e| format!("reading the reply ({} bytes so far): {e}", reply.len()))?;
    let end = reply.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| {
        format!(
            "no end of the header in {} bytes: {:?}",
            reply.len(),
            String::from_utf8_lossy(&reply)
        )
    })?;
    let head =
        std::str::from_utf8(&reply[..end]).map_err(|_| "the header is not UTF-8".to_string())?;
    let body = &reply[end + 4..];
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    if status != "HTTP/1.1 200 OK" {
        return Err(format!("status line {status:?}"));
    }
    let length = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse::<usize>().ok())
        .ok_or_else(|| format!("no Content-Length in {head:?}"))?;
    let want = body_len(i);
    if length != want {
        return Err(format!("Content-Length {length}, asked for {want}"));
    }
    if body != expected_body(want).as_slice() {
        let first_bad = body.iter().zip(expected_body(want)).position(|(a, b)| *a != b);
        return Err(format!(
            "body of {} bytes, {want} expected; first wrong byte at {first_bad:?}",
            body.len()
        ));
    }
    Ok(())
}

/// Counts successes and prints the failures (the first few).
#[derive(Default)]
struct Tally {
    ok: usize,
    failed: usize,
}

impl Tally {
    fn add(&mut self, i: usize, r: Result<(), String>) {
        match r {
            Ok(()) => self.ok += 1,
            Err(why) => {
                self.failed += 1;
                if self.failed <= SHOWN {
                    println!("connection {i} failed: {why}");
                }
            }
        }
    }
}

fn sequential(addr: &SocketAddr, n: usize) -> Tally {
    let mut tally = Tally::default();
    for i in 0..n {
        let r = connect(addr).and_then(|mut s| {
            send_request(&mut s, i)?;
            check_reply(&mut s, i)
        });
        tally.add(i, r);
    }
    tally
}

fn concurrent(addr: &SocketAddr, n: usize) -> Tally {
    let mut tally = Tally::default();
    let mut open: Vec<(usize, TcpStream)> = Vec::new();
    for i in 0..n {
        match connect(addr) {
            Ok(s) => open.push((i, s)),
            Err(why) => tally.add(i, Err(why)),
        }
    }
    println!("concurrent: {} of {n} open at once", open.len());
    let mut sent = Vec::new();
    for (i, mut s) in open {
        match send_request(&mut s, i) {
            Ok(()) => sent.push((i, s)),
            Err(why) => tally.add(i, Err(why)),
        }
    }
    for (i, mut s) in sent {
        tally.add(i, check_reply(&mut s, i));
    }
    tally
}

/// `bulk`: sends `len` bytes to the guest's server at `addr` and checks the guest's report,
/// then takes the guest's connection on `listen` and checks the `len` bytes it sends
/// (tests/guest's `bulk`; the lines are the `bulk` crate's). Returns whether both came intact.
fn bulk(addr: &SocketAddr, len: u64, listen: &SocketAddr) -> bool {
    // Bound first, so that the guest finds it whenever it comes.
    let listener = match TcpListener::bind(listen) {
        Ok(listener) => listener,
        Err(e) => {
            println!("bulk: cannot listen on {listen}: {e}");
            return false;
        }
    };
    let to_guest = match TcpStream::connect_timeout(addr, bulk::PATIENCE) {
        Ok(mut s) => bulk::sending_end("dom0->guest", &mut s, bulk::DOM0_TO_GUEST, len),
        Err(e) => {
            println!("dom0->guest: failed: connect to {addr}: {e}");
            false
        }
    };
    let from_guest = match bulk::accept_within(&listener) {
        Ok(mut s) => bulk::receiving_end("guest->dom0", &mut s, bulk::GUEST_TO_DOM0, len),
        Err(e) => {
            println!("guest->dom0: failed: accept on {listen}: {e}");
            false
        }
    };
    to_guest && from_guest
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(2).map(String::as_str) == Some("bulk") {
        let (Some(addr), Some(len), Some(listen)) = (
            args[1].parse::<SocketAddr>().ok(),
            args.get(3).and_then(|n| n.parse::<u64>().ok()),
            args.get(4).and_then(|a| a.parse::<SocketAddr>().ok()),
        ) else {
            eprintln!("usage: dom0-client ADDR bulk N LISTEN");
            std::process::exit(2);
        };
        std::process::exit(if bulk(&addr, len, &listen) { 0 } else { 1 });
    }
    let (Some(addr), Some(mode), Some(n)) = (
        args.get(1).and_then(|a| a.parse::<SocketAddr>().ok()),
        args.get(2).map(String::as_str),
        args.get(3).and_then(|n| n.parse::<usize>().ok()),
    ) else {
        eprintln!("usage: dom0-client ADDR sequential|concurrent N, or ADDR bulk N LISTEN");
        std::process::exit(2);
    };
    let started = Instant::now();
    let tally = match mode {
        "sequential" => sequential(&addr, n),
        "concurrent" => concurrent(&addr, n),
        _ => {
            eprintln!("dom0-client: unknown mode {mode:?}");
            std::process::exit(2);
        }
    };
    println!(
        "{mode}: {} of {n} succeeded, {} failed, in {} ms",
        tally.ok,
        tally.failed,
        started.elapsed().as_millis()
    );
    std::process::exit(if tally.ok == n { 0 } else { 1 });
}
