//! std's sockets (`std::net`), for the harness's jobs; std only, so it runs on Linux too:
//!
//!     sockets loopback          TCP and UDP inside the guest (127.0.0.1 and ::1): threads,
//!                               data intact, and the error kinds a Linux program sees
//!     sockets client ADDR [NOBODY]  connects to ADDR (dom0's `nc -l`), sends a line, prints the
//!                               line that comes back; then connect_timeout to NOBODY
//!     sockets http PORT N       serves N HTTP/1.1 requests on PORT: `/` a page, `/big?bytes=N`
//!                               N bytes of a pattern
//!     sockets exit_sending PORT BYTES  answers one HTTP request with BYTES of the pattern
//!                                      (PORT + 1 listens and never accepts),
//!                               then calls process::exit with the connection still open: the
//!                               client must still get every byte and the end (as on Linux)
//!     sockets dns PORT N        answers N DNS queries for A records on UDP PORT with
//!                               10.11.12.13 (dom0's `nslookup` asks)
//!     sockets unreachable ADDR  connect_timeout to an address nobody has
//!     sockets static ADDR       a name resolved through a DNS server on loopback
//!                               (`xen.dns=127.0.0.1`), then `client ADDR`
//!     sockets resolve NAME PORT UNKNOWN  resolves NAME through the DNS server DHCP named
//!                               (dom0's dnsmasq), then `client` to the address it got on PORT;
//!                               UNKNOWN is a name that server does not know
//!     sockets two_vifs PORT DOM0 DOM0     (Xen, two vifs on two subnets) connects to a dom0
//!                               server on each subnet (ADDR:PORT each) and prints the address
//!                               each connection went from, then takes two connections on
//!                               0.0.0.0:PORT and prints the address each came to
//!     sockets neighbours LIVE DEAD...  connects (no timeout) to each DEAD address (on-link,
//!                               nobody there) in a thread, then, while they wait, to LIVE
//!                               (dom0's `nc`); prints what each gave and whether in time
//!     sockets vif_gone ADDR PORT  (Xen) with ADDR the vif's static address: takes dom0's
//!                               connection on 0.0.0.0:PORT, then while threads wait on it,
//!                               on a listener and a UDP socket bound to ADDR, dom0 detaches
//!                               the vif; prints what every call then gives, and that
//!                               loopback still works through the 0.0.0.0 listener

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs, UdpSocket};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

/// A byte of the test pattern at `i` (not periodic in 256, so a shifted copy shows).
fn pattern(i: usize) -> u8 {
    (i.wrapping_mul(7) ^ (i >> 9)) as u8
}

fn kind<T>(r: std::io::Result<T>) -> String {
    match r {
        Ok(_) => "Ok".to_string(),
        Err(e) => format!("{:?}", e.kind()),
    }
}

/// Echoes everything until the peer shuts down its side.
fn echo(mut s: TcpStream) {
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => s.write_all(&buf[..n]).expect("echo write"),
            Err(e) => panic!("echo read: {e}"),
        }
    }
}

/// Sends `len` pattern bytes through an echo server at `addr` (in chunks, reading back
/// whenever 16 KiB are outstanding) and checks that the same come back.
fn round_trip(addr: SocketAddr, len: usize) -> bool {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).unwrap();
    let mut got = Vec::with_capacity(len);
    let mut sent = 0;
    let mut buf = [0u8; 8192];
    while sent < len {
        let n = (len - sent).min(4096);
        let chunk: Vec<u8> = (sent..sent + n).map(pattern).collect();
        s.write_all(&chunk).unwrap();
        sent += n;
        while got.len() + 16384 < sent {
            let k = s.read(&mut buf).unwrap();
            assert!(k > 0, "early EOF");
            got.extend_from_slice(&buf[..k]);
        }
    }
    s.shutdown(Shutdown::Write).unwrap();
    loop {
        let k = s.read(&mut buf).unwrap();
        if k == 0 {
            break;
        }
        got.extend_from_slice(&buf[..k]);
    }
    got.len() == len && got.iter().enumerate().all(|(i, &b)| b == pattern(i))
}

fn serve_echo(listener: TcpListener, connections: usize) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut handlers = Vec::new();
        for _ in 0..connections {
            let (s, peer) = listener.accept().expect("accept");
            assert!(peer.ip().is_loopback(), "{peer}");
            handlers.push(thread::spawn(move || echo(s)));
        }
        for h in handlers {
            h.join().unwrap();
        }
    })
}

fn loopback() {
    // TCP over 127.0.0.1: one server, clients in threads.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    println!("bound 127.0.0.1 port>0 {}", addr.port() > 0 && addr.ip() == Ipv4Addr::LOCALHOST);
    let clients = 4;
    let len = 200_000;
    let server = serve_echo(listener, clients);
    let start = Instant::now();
    let workers: Vec<_> =
        (0..clients).map(|_| thread::spawn(move || round_trip(addr, len))).collect();
    let ok = workers.into_iter().map(|w| w.join().unwrap()).filter(|&ok| ok).count();
    server.join().unwrap();
    println!("tcp echo {ok} of {clients} clients x {len} bytes intact");
    eprintln!("took {:?}", start.elapsed());

    // IPv6 loopback.
    let l6 = TcpListener::bind("[::1]:0").unwrap();
    let a6 = l6.local_addr().unwrap();
    let s6 = serve_echo(l6, 1);
    println!("tcp echo over ::1 intact {}", round_trip(a6, 50_000));
    s6.join().unwrap();

    // try_clone: a thread writes through a clone while this one reads the original; the
    // clone shares the socket's non-blocking mode.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let ca = l.local_addr().unwrap();
    let srv = serve_echo(l, 1);
    let mut s = TcpStream::connect(ca).unwrap();
    let mut w = s.try_clone().unwrap();
    let writer = thread::spawn(move || {
        for i in 0..64u8 {
            w.write_all(&[i; 1000]).unwrap();
        }
        w.shutdown(Shutdown::Write).unwrap();
    });
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    writer.join().unwrap();
    srv.join().unwrap();
    let in_order = got.chunks(1000).enumerate().all(|(i, c)| c.iter().all(|&b| b == i as u8));
    println!("clone: {} bytes back in order {in_order}", got.len());
    drop(s);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (_peer, _) = l.accept().unwrap();
    let c2 = c.try_clone().unwrap();
    c2.set_nonblocking(true).unwrap();
    let mut one = [0u8; 1];
    println!("clone shares nonblocking: {}", kind(c.read(&mut one)));
    drop(c2);
    c.set_nonblocking(false).unwrap();

    // Errors.
    println!("refused: {}", kind(TcpStream::connect("127.0.0.1:1")));
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    println!("in use: {}", kind(TcpListener::bind(("127.0.0.1", port))));
    println!("not ours: {}", kind(TcpListener::bind("10.1.2.3:0")));
    l.set_nonblocking(true).unwrap();
    println!("accept nonblocking: {}", kind(l.accept()));
    l.set_nonblocking(false).unwrap();
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (mut s, peer) = l.accept().unwrap();
    println!(
        "addrs agree {}",
        peer == c.local_addr().unwrap() && s.local_addr().unwrap() == c.peer_addr().unwrap()
    );
    let mut buf = [0u8; 64];
    c.set_nonblocking(true).unwrap();
    println!("read nonblocking: {}", kind(c.read(&mut buf)));
    c.set_nonblocking(false).unwrap();
    c.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let t = Instant::now();
    let r = c.read(&mut buf);
    println!(
        "read timeout: {} after >= 300 ms {}",
        kind(r),
        t.elapsed() >= Duration::from_millis(300)
    );
    println!("zero timeout: {}", kind(c.set_read_timeout(Some(Duration::ZERO))));
    println!("timeout read back {:?}", c.read_timeout().unwrap());
    c.set_read_timeout(None).unwrap();
    c.set_nodelay(true).unwrap();
    c.set_ttl(33).unwrap();
    println!("nodelay {} ttl {}", c.nodelay().unwrap(), c.ttl().unwrap());
    println!("take_error {:?}", c.take_error().unwrap().map(|e| e.kind()));
    s.write_all(b"peek me").unwrap();
    let n = c.peek(&mut buf).unwrap();
    let peeked = buf[..n].to_vec();
    let mut all = [0u8; 7];
    c.read_exact(&mut all).unwrap();
    println!(
        "peek {:?} read {:?}",
        String::from_utf8_lossy(&peeked),
        String::from_utf8_lossy(&all)
    );
    s.shutdown(Shutdown::Write).unwrap();
    println!("eof after peer shutdown: {}", c.read(&mut buf).unwrap());
    c.write_all(b"still open").unwrap();
    let mut back = [0u8; 10];
    s.read_exact(&mut back).unwrap();
    println!("half-closed peer still reads {}", &back == b"still open");
    drop(s);
    drop(c);

    // A peer that closes with unread data resets the connection.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, _) = l.accept().unwrap();
    c.write_all(b"never read").unwrap();
    thread::sleep(Duration::from_millis(200));
    drop(s);
    thread::sleep(Duration::from_millis(200));
    println!("reset: {}", kind(c.read(&mut buf)));
    // Reported once: then the connection reads as ended and writes fail.
    println!("after the reset: read {:?}, write {}", c.read(&mut buf).map_err(|e| e.kind()), kind(c.write(b"x")));
    drop(c);

    // Many connections at once (each accepted only once established).
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let n = 16;
    let barrier = Arc::new(Barrier::new(n));
    let server = thread::spawn(move || {
        let mut sum = 0u32;
        for _ in 0..n {
            let (mut s, _) = l.accept().unwrap();
            let mut b = [0u8; 1];
            s.read_exact(&mut b).unwrap();
            sum += b[0] as u32;
            s.write_all(&b).unwrap();
        }
        sum
    });
    let clients: Vec<_> = (0..n)
        .map(|i| {
            let barrier = barrier.clone();
            thread::spawn(move || {
                barrier.wait();
                let mut s = TcpStream::connect(addr).unwrap();
                s.write_all(&[i as u8]).unwrap();
                let mut b = [0u8; 1];
                s.read_exact(&mut b).unwrap();
                b[0] == i as u8
            })
        })
        .collect();
    let good = clients.into_iter().map(|c| c.join().unwrap()).filter(|&g| g).count();
    let sum = server.join().unwrap();
    println!("concurrent {good} of {n}, sum {sum}");

    // UDP.
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (aa, ba) = (a.local_addr().unwrap(), b.local_addr().unwrap());
    a.send_to(b"ping", ba).unwrap();
    let mut buf = [0u8; 16];
    let (n, from) = b.peek_from(&mut buf).unwrap();
    println!("udp peek {:?} from a {}", String::from_utf8_lossy(&buf[..n]), from == aa);
    let (n, from) = b.recv_from(&mut buf).unwrap();
    println!("udp recv {:?} from a {}", String::from_utf8_lossy(&buf[..n]), from == aa);
    b.connect(aa).unwrap();
    b.send(b"pong").unwrap();
    let (n, from) = a.recv_from(&mut buf).unwrap();
    println!("udp reply {:?} from b {}", String::from_utf8_lossy(&buf[..n]), from == ba);
    b.set_nonblocking(true).unwrap();
    println!("udp nonblocking: {}", kind(b.recv(&mut buf)));
    b.set_nonblocking(false).unwrap();
    b.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    println!("udp timeout: {}", kind(b.recv(&mut buf)));
    println!("udp in use: {}", kind(UdpSocket::bind(aa)));
    println!("udp not connected: {}", kind(a.send(b"x")));

    // Names.
    let names: Vec<SocketAddr> = "localhost:80".to_socket_addrs().unwrap().collect();
    println!("localhost {}", names.contains(&"127.0.0.1:80".parse().unwrap()));
    println!("literal {:?}", "10.0.0.1:5".to_socket_addrs().unwrap().collect::<Vec<_>>());
    println!("done");
}

fn client(addr: &str) {
    let t = Instant::now();
    // dom0's server may start after this guest is up (its driver starts once xl has created
    // the domain): a refused connection is tried again, for up to 20 s.
    let mut s = loop {
        match TcpStream::connect(addr) {
            Ok(s) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused && t.elapsed() < Duration::from_secs(20) => {
                std::thread::sleep(Duration::from_millis(200))
            }
            Err(e) => panic!("connect: {e:?}"),
        }
    };
    eprintln!("connected in {:?}", t.elapsed());
    println!("connected from {}", s.local_addr().unwrap().ip());
    s.write_all(b"hello from xen\n").unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while !got.ends_with(b"\n") {
        let n = s.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    println!("got {:?}", String::from_utf8_lossy(&got).trim_end());
}

fn http(port: u16, requests: usize) {
    let l = TcpListener::bind(("0.0.0.0", port)).unwrap();
    println!("http listening on {port}");
    for _ in 0..requests {
        let (mut s, _) = l.accept().unwrap();
        let req = read_head(&mut s);
        let text = String::from_utf8_lossy(&req);
        let path = text.split_whitespace().nth(1).unwrap_or("/").to_string();
        let body: Vec<u8> = match path.strip_prefix("/big?bytes=") {
            Some(n) => (0..n.parse::<usize>().unwrap_or(0)).map(pattern).collect(),
            None => b"<html><body>hello from a Xen guest</body></html>\n".to_vec(),
        };
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(&body).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        // Let the client close first, so the guest's side ends cleanly.
        let _ = s.read(&mut [0u8; 1024]);
        println!("served {path} ({} bytes)", body.len());
    }
}

/// Reads an HTTP request's head (up to the blank line, or the end of the stream).
fn read_head(s: &mut TcpStream) -> Vec<u8> {
    let mut req = Vec::new();
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf).unwrap() {
            0 => break,
            n => req.extend_from_slice(&buf[..n]),
        }
    }
    req
}

/// Answers one request with `bytes` of the pattern and ends the program at once, the
/// connection open and its data in the send buffer; a second listener on `port + 1` holds
/// connections it never accepts, which the end must reset.
fn exit_sending(port: u16, bytes: usize) {
    let l = TcpListener::bind(("0.0.0.0", port)).unwrap();
    let _never_accepted = TcpListener::bind(("0.0.0.0", port + 1)).unwrap();
    println!("http listening on {port}");
    let (mut s, _) = l.accept().unwrap();
    read_head(&mut s);
    let body: Vec<u8> = (0..bytes).map(pattern).collect();
    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {bytes}\r\nConnection: close\r\n\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(&body).unwrap();
    println!("wrote {bytes} bytes; exiting");
    std::process::exit(0);
}

/// Answers DNS queries (RFC 1035) for xen.test: A with 10.11.12.13, other types with no
/// answer; other names NXDOMAIN. Ends after `queries` A queries or 10 s without one.
fn dns(port: u16, queries: usize) {
    let s = UdpSocket::bind(("0.0.0.0", port)).unwrap();
    println!("dns listening on {port}");
    answer_dns(s, queries);
}

fn answer_dns(s: UdpSocket, queries: usize) {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut answered = 0;
    let mut buf = [0u8; 512];
    while answered < queries {
        let (n, from) = match s.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e) => {
                println!("dns: {:?}", e.kind());
                break;
            }
        };
        if n < 12 {
            continue;
        }
        let q = &buf[..n];
        // The question: the name's labels, then type and class.
        let mut at = 12;
        while at < n && q[at] != 0 {
            at += q[at] as usize + 1;
        }
        if at + 5 > n {
            continue;
        }
        let qtype = u16::from_be_bytes([q[at + 1], q[at + 2]]);
        // Only xen.test exists (4 "xen" 4 "test" 0); any other name is NXDOMAIN.
        let known = &q[12..at + 1] == b"\x03xen\x04test\x00";
        let mut r = q[..at + 5].to_vec();
        r[2] = 0x84 | (q[2] & 1); // a response, authoritative, RD copied
        r[3] = if known { 0 } else { 3 };
        r[6..12].copy_from_slice(&[0, (known && qtype == 1) as u8, 0, 0, 0, 0]);
        if known && qtype == 1 {
            r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 11, 12, 13]);
        }
        if qtype == 1 {
            answered += 1;
        }
        s.send_to(&r, from).unwrap();
        println!("answered type {qtype} from {}", from.ip());
    }
}

/// With `xen.ip`, `xen.gw` and `xen.dns=127.0.0.1` (a DNS server this program runs on
/// loopback): resolves a name, then connects to dom0 at `dom0` at once (no DHCP).
fn static_config(dom0: &str) {
    let server = UdpSocket::bind("127.0.0.1:53").unwrap();
    let answering = thread::spawn(move || answer_dns(server, 2));
    let found: Vec<SocketAddr> = ("xen.test", 80).to_socket_addrs().unwrap().collect();
    println!("resolved xen.test to {found:?}");
    println!("unknown name: {}", kind("nowhere.test:80".to_socket_addrs()));
    answering.join().unwrap();
    client(dom0);
}

/// Resolves `name` with `ToSocketAddrs` (an A query to the DNS server the lease named), then
/// talks to dom0's server at the address it got; `unknown` must fail.
fn resolve(name: &str, port: u16, unknown: &str) {
    let t = Instant::now();
    let found: Vec<SocketAddr> = (name, port).to_socket_addrs().unwrap().collect();
    eprintln!("resolved in {:?}", t.elapsed());
    println!("resolved {name} to {found:?}");
    println!("unknown name: {}", kind((unknown, port).to_socket_addrs()));
    client(&found[0].to_string());
}

fn unreachable(addr: &str) {
    let addr: SocketAddr = addr.parse().unwrap();
    let t = Instant::now();
    let r = TcpStream::connect_timeout(&addr, Duration::from_secs(2));
    println!("unreachable: {} after >= 2 s {}", kind(r), t.elapsed() >= Duration::from_secs(2));
}

fn vif_gone(addr: Ipv4Addr, port: u16) {
    let any = TcpListener::bind(("0.0.0.0", port)).unwrap();
    let on_vif = TcpListener::bind((addr, port + 1)).unwrap();
    let udp = UdpSocket::bind((addr, port + 2)).unwrap();
    println!("listening");
    let (mut conn, peer) = any.accept().unwrap();
    let mut line = [0u8; 6];
    conn.read_exact(&mut line).unwrap();
    println!("got {:?} from {}", String::from_utf8_lossy(&line).trim_end(), peer.ip());
    // What dom0 sends next never comes: every wait below must end when the vif goes.
    let mut reader = conn.try_clone().unwrap();
    let read = thread::spawn(move || kind(reader.read(&mut [0u8; 64])));
    let accept = thread::spawn(move || (kind(on_vif.accept()), on_vif));
    let recv = thread::spawn(move || (kind(udp.recv_from(&mut [0u8; 64])), udp));
    thread::sleep(Duration::from_millis(500));
    println!("waiting for the vif to go");
    println!("read: {}", read.join().unwrap());
    let (r, on_vif) = accept.join().unwrap();
    println!("accept on {addr}: {r}");
    let (r, udp) = recv.join().unwrap();
    println!("udp recv on {addr}: {r}");
    println!("write: {}", kind(conn.write(b"late\n")));
    println!("udp send: {}", kind(udp.send_to(b"late", "10.99.0.1:9")));
    println!("accept again: {}", kind(on_vif.accept()));
    println!("connect to dom0: {}", kind(TcpStream::connect_timeout(&"10.99.0.1:7000".parse().unwrap(), Duration::from_secs(5))));
    println!("bind {addr}: {}", kind(TcpListener::bind((addr, port + 3))));
    // Loopback is untouched, and so is the listener bound to every address.
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (mut s, _) = any.accept().unwrap();
    c.write_all(b"ping").unwrap();
    let mut got = [0u8; 4];
    s.read_exact(&mut got).unwrap();
    println!("loopback through 0.0.0.0:{port}: {}", String::from_utf8_lossy(&got));
}

fn neighbours(live: &str, dead: &[String]) {
    let waits: Vec<_> = dead
        .iter()
        .map(|addr| {
            let addr = addr.clone();
            thread::spawn(move || {
                let t = Instant::now();
                let r = TcpStream::connect(addr.as_str());
                (addr, kind(r), t.elapsed())
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(1500));
    let t = Instant::now();
    let r = TcpStream::connect_timeout(&live.parse().unwrap(), Duration::from_secs(10));
    println!("live {live}: {} within 3 s {}", kind(r), t.elapsed() < Duration::from_secs(3));
    for w in waits {
        let (addr, kind, took) = w.join().unwrap();
        // Linux gives up after 3 ARP requests a second apart.
        println!("dead {addr}: {kind} within 2-8 s {}", took >= Duration::from_secs(2) && took < Duration::from_secs(8));
    }
}

fn two_vifs(port: u16, servers: &[String]) {
    let listener = TcpListener::bind(("0.0.0.0", port)).unwrap();
    for server in servers {
        // dom0's servers may start after this guest is up: a refused connect is tried again.
        let t = Instant::now();
        let mut s = loop {
            match TcpStream::connect(server.as_str()) {
                Ok(s) => break s,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused && t.elapsed() < Duration::from_secs(20) => {
                    thread::sleep(Duration::from_millis(200))
                }
                Err(e) => panic!("connect to {server}: {e:?}"),
            }
        };
        s.write_all(b"hello\n").unwrap();
        let mut got = String::new();
        let mut buf = [0u8; 64];
        while !got.ends_with('\n') {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            got.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        println!("to {server} from {}: {:?}", s.local_addr().unwrap().ip(), got.trim_end());
    }
    println!("listening on 0.0.0.0:{port}");
    for _ in 0..2 {
        let (mut s, peer) = listener.accept().unwrap();
        let mut line = [0u8; 3];
        s.read_exact(&mut line).unwrap();
        s.write_all(b"bye\n").unwrap();
        println!("accepted on {} from {}: {:?}", s.local_addr().unwrap().ip(), peer.ip(), String::from_utf8_lossy(&line));
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("loopback") => loopback(),
        Some("client") => {
            client(&args[2]);
            if let Some(nobody) = args.get(3) {
                unreachable(nobody);
            }
        }
        Some("http") => http(args[2].parse().unwrap(), args[3].parse().unwrap()),
        Some("exit_sending") => exit_sending(args[2].parse().unwrap(), args[3].parse().unwrap()),
        Some("dns") => dns(args[2].parse().unwrap(), args[3].parse().unwrap()),
        Some("unreachable") => unreachable(&args[2]),
        Some("static") => static_config(&args[2]),
        Some("resolve") => resolve(&args[2], args[3].parse().unwrap(), &args[4]),
        Some("vif_gone") => vif_gone(args[2].parse().unwrap(), args[3].parse().unwrap()),
        Some("two_vifs") => two_vifs(args[2].parse().unwrap(), &args[3..]),
        Some("neighbours") => neighbours(&args[2], &args[3..]),
        _ => {
            eprintln!(
                "usage: sockets loopback|client ADDR|http PORT N|exit_sending PORT BYTES|dns PORT N|unreachable ADDR|static ADDR|resolve NAME PORT UNKNOWN|vif_gone ADDR PORT|two_vifs PORT ADDR...|neighbours LIVE DEAD..."
            );
            std::process::exit(2);
        }
    }
}
