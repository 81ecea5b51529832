//! The network benchmark's guest (docs/bench.md, "Network"): servers that a load generator in
//! dom0 (`tools/bench/guests/netload`) drives over the bridge:
//!
//!     net [ip=10.99.0.41/24]
//!
//! - port 8080: HTTP/1.1 answered by `examples/http`'s own code (its `handler.rs`, included
//!   here), a thread per connection, keep-alive unless the client asks to close; `GET /` a
//!   small page; nothing printed per request;
//! - port 9000: bulk TCP. The client's first line says what to do: `get N` makes the server
//!   send N bytes of the pattern (`pattern_word`), `put N` makes it read N bytes, compare them
//!   with the pattern and answer `sum HEX ok` (or `sum HEX bad AT`) with the checksum of what
//!   came, so each side checks what it got;
//! - port 9001: control: `mem` answers `mem used=BYTES` (the guest's memory in use: on Xen the
//!   kernel's frames in use, on Linux MemTotal less MemFree), `quit` ends the program.
//!
//! On Xen the address is the kernel's (`xen.ip=` on the command line); built statically for
//! Linux the program is the domU's `/init`: it loads `xen-netfront.ko` from the initramfs,
//! gives eth0 the `ip=` address and powers the domain off at the end.
//!
//! It prints `xbench ready`, then `xbench done` or `xbench failed WHY`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;

/// examples/http's own request handling, so that the requests per second are its code's.
#[path = "../../../../../examples/http/src/handler.rs"]
mod http;

#[path = "../../bulk_wire.rs"]
mod wire;
use wire::{BULK_PORT, CONTROL_PORT, HTTP_PORT, Sum, pattern_word};

/// Answers HTTP requests on one connection as examples/http does, printing nothing per request.
fn serve_http(stream: TcpStream) -> std::io::Result<()> {
    http::serve(stream, |_, _| {})
}

/// One bulk connection: `get N` or `put N`.
fn serve_bulk(mut stream: TcpStream) -> std::io::Result<()> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while line.len() < 64 {
        if stream.read(&mut byte)? == 0 {
            return Ok(());
        }
        if byte[0] == b'\n' {
            break;
        }
        line.push(byte[0]);
    }
    let line = String::from_utf8_lossy(&line).into_owned();
    let (verb, n) = line.split_once(' ').unwrap_or((&line, ""));
    let n: u64 = n.trim().parse().map_err(|_| std::io::Error::other(format!("bad request {line:?}")))?;
    if n % 8 != 0 {
        return Err(std::io::Error::other("the length must be a multiple of 8"));
    }
    let mut buf = vec![0u8; 64 * 1024];
    match verb {
        "get" => {
            let mut word = 0u64;
            let words = n / 8;
            while word < words {
                let take = (words - word).min(buf.len() as u64 / 8) as usize;
                for (i, w) in buf[..take * 8].chunks_exact_mut(8).enumerate() {
                    w.copy_from_slice(&pattern_word(word + i as u64).to_le_bytes());
                }
                stream.write_all(&buf[..take * 8])?;
                word += take as u64;
            }
            stream.shutdown(std::net::Shutdown::Write)?;
            // Wait for the client's close, so that the data is all acknowledged first.
            let _ = stream.read(&mut buf);
        }
        "put" => {
            let (mut got, mut words, mut sum, mut bad) = (0u64, 0u64, Sum::new(), None);
            // The bytes of a word split between two reads.
            let mut carry = [0u8; 8];
            let mut carried = 0usize;
            let mut check = |w: u64, words: &mut u64| {
                sum.add(w);
                if bad.is_none() && w != pattern_word(*words) {
                    bad = Some(*words * 8);
                }
                *words += 1;
            };
            while got < n {
                let want = (n - got).min(buf.len() as u64) as usize;
                let k = stream.read(&mut buf[..want])?;
                if k == 0 {
                    return Err(std::io::Error::other(format!("the client closed after {got} of {n} bytes")));
                }
                got += k as u64;
                let mut data = &buf[..k];
                if carried > 0 {
                    let take = (8 - carried).min(data.len());
                    carry[carried..carried + take].copy_from_slice(&data[..take]);
                    carried += take;
                    data = &data[take..];
                    if carried < 8 {
                        continue;
                    }
                    check(u64::from_le_bytes(carry), &mut words);
                }
                let mut whole = data.chunks_exact(8);
                for w in &mut whole {
                    check(u64::from_le_bytes(w.try_into().expect("8 bytes")), &mut words);
                }
                let rest = whole.remainder();
                carry[..rest.len()].copy_from_slice(rest);
                carried = rest.len();
            }
            drop(check);
            let verdict = bad.map_or("ok".to_owned(), |at| format!("bad {at}"));
            writeln!(stream, "sum {:016x} {verdict}", sum.0)?;
            let _ = stream.read(&mut buf);
        }
        _ => return Err(std::io::Error::other(format!("bad request {line:?}"))),
    }
    Ok(())
}

/// The guest's memory in use, in bytes.
#[cfg(target_os = "xen")]
fn memory_used() -> std::io::Result<u64> {
    Ok(std::os::xen::domain::memory_used())
}

#[cfg(target_os = "linux")]
fn memory_used() -> std::io::Result<u64> {
    let info = std::fs::read_to_string("/proc/meminfo")?;
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    };
    match (field("MemTotal:"), field("MemFree:")) {
        (Some(total), Some(free)) => Ok((total - free) * 1024),
        _ => Err(std::io::Error::other("no MemTotal or MemFree in /proc/meminfo")),
    }
}

/// Control connections until `quit`.
fn control(listener: TcpListener, quit: mpsc::Sender<()>) {
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let mut reader = BufReader::new(&stream);
        let mut line = String::new();
        while matches!(reader.read_line(&mut line), Ok(n) if n > 0) {
            let answer = match line.trim() {
                "mem" => match memory_used() {
                    Ok(bytes) => format!("mem used={bytes}\n"),
                    Err(e) => format!("mem failed {e}\n"),
                },
                "quit" => {
                    let _ = (&stream).write_all(b"bye\n");
                    let _ = quit.send(());
                    return;
                }
                other => format!("unknown {other:?}\n"),
            };
            if (&stream).write_all(answer.as_bytes()).is_err() {
                break;
            }
            line.clear();
        }
    }
}

fn spawn_server(listener: TcpListener, serve: fn(TcpStream) -> std::io::Result<()>) {
    thread::spawn(move || {
        for stream in listener.incoming() {
            match stream {
                Ok(stream) => {
                    thread::spawn(move || {
                        if let Err(e) = serve(stream) {
                            eprintln!("connection: {e}");
                        }
                    });
                }
                Err(e) => eprintln!("accept: {e}"),
            }
        }
    });
}

fn run() -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        let mut ip = None;
        for arg in std::env::args().skip(1) {
            if let Some(v) = arg.strip_prefix("ip=") {
                ip = Some(v.to_owned());
            }
        }
        linux::network_up(ip.as_deref().ok_or_else(|| std::io::Error::other("give ip=A.B.C.D/N"))?)?;
    }
    let http = TcpListener::bind(("0.0.0.0", HTTP_PORT))?;
    let bulk = TcpListener::bind(("0.0.0.0", BULK_PORT))?;
    let ctl = TcpListener::bind(("0.0.0.0", CONTROL_PORT))?;
    spawn_server(http, serve_http);
    spawn_server(bulk, serve_bulk);
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || control(ctl, tx));
    println!("xbench ready memory_used={}", memory_used().map_or(0, |b| b));
    let _ = rx.recv();
    Ok(())
}

fn main() {
    init::end(run());
}

/// What Linux's init needs for the network: its driver and eth0's address.
#[cfg(target_os = "linux")]
mod linux {
    use super::init::{self, check, syscall5};
    use std::os::fd::AsRawFd as _;

    const SIOCGIFFLAGS: usize = 0x8913;
    const SIOCSIFFLAGS: usize = 0x8914;
    const SIOCSIFADDR: usize = 0x8916;
    const SIOCSIFNETMASK: usize = 0x891c;
    const IFF_UP: u16 = 0x1;
    const AF_INET: u16 = 2;

    /// A `struct ifreq` (40 bytes) for `eth0`, with `data` at the union's start.
    fn ifreq(data: &[u8]) -> [u8; 40] {
        let mut req = [0u8; 40];
        req[..4].copy_from_slice(b"eth0");
        req[16..16 + data.len()].copy_from_slice(data);
        req
    }

    fn ioctl(fd: i32, request: usize, req: &mut [u8; 40], what: &str) -> std::io::Result<()> {
        // SAFETY: an open socket and a `struct ifreq` that outlives the call.
        let ret = unsafe { syscall5(init::SYS_IOCTL, fd as usize, request, req.as_mut_ptr() as usize, 0, 0) };
        check(ret, || what.into())
    }

    /// A `struct sockaddr_in` for `addr`.
    fn sockaddr(addr: [u8; 4]) -> [u8; 16] {
        let mut sa = [0u8; 16];
        sa[..2].copy_from_slice(&AF_INET.to_ne_bytes());
        sa[4..8].copy_from_slice(&addr);
        sa
    }

    /// Loads xen-netfront, waits for eth0, gives it `cidr` (A.B.C.D/N) and brings it up.
    pub fn network_up(cidr: &str) -> std::io::Result<()> {
        init::mount_proc_and_sys()?;
        let bad = || std::io::Error::other(format!("ip={cidr}: not A.B.C.D/N"));
        let (addr, prefix) = cidr.split_once('/').ok_or_else(bad)?;
        let addr: std::net::Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let prefix: u32 = prefix.parse().ok().filter(|&p| (1..=32).contains(&p)).ok_or_else(bad)?;
        let mask = (u32::MAX << (32 - prefix)).to_be_bytes();

        init::load_module("xen-netfront")?;
        init::wait_for("/sys/class/net/eth0", "xen-netfront made no eth0")?;
        let sock = std::net::UdpSocket::bind("0.0.0.0:0")?;
        let fd = sock.as_raw_fd();
        ioctl(fd, SIOCSIFADDR, &mut ifreq(&sockaddr(addr.octets())), "SIOCSIFADDR")?;
        ioctl(fd, SIOCSIFNETMASK, &mut ifreq(&sockaddr(mask)), "SIOCSIFNETMASK")?;
        let mut req = ifreq(&[]);
        ioctl(fd, SIOCGIFFLAGS, &mut req, "SIOCGIFFLAGS")?;
        let flags = u16::from_ne_bytes([req[16], req[17]]) | IFF_UP;
        ioctl(fd, SIOCSIFFLAGS, &mut ifreq(&flags.to_ne_bytes()), "SIOCSIFFLAGS")?;
        Ok(())
    }
}

#[path = "../../linux_init.rs"]
mod init;
