//! The host reaches a server in a guest through the runner's `--forward` (docs/runner.md,
//! "Networking"): QEMU forwards a host port to dom0, dom0's socat to the guest, which has
//! the runner's static address on dom0's bridge.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use xen_harness::{runner, xen_bins};

/// One HTTP/1.1 request on a new connection; returns the response's body.
fn get(port: u16, path: &str) -> std::io::Result<Vec<u8>> {
    get_within(port, path, Duration::from_secs(60))
}

/// [`get`], each read waiting at most `timeout`.
fn get_within(port: u16, path: &str, timeout: Duration) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(timeout))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: guest\r\nConnection: close\r\n\r\n")?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let at = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no header end in {} bytes", response.len())))?;
    let head = String::from_utf8_lossy(&response[..at]).into_owned();
    if !head.starts_with("HTTP/1.1 200") {
        return Err(std::io::Error::other(format!("not 200: {head}")));
    }
    Ok(response[at + 4..].to_vec())
}

/// Stops the runner and fails with `what` and everything the runner printed (the guest's
/// request lines say which requests reached it).
fn fail(mut child: std::process::Child, what: &str) -> ! {
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    panic!(
        "{what}\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Bursts of connections made at once, and how many in each.
const BURSTS: usize = 3;
const AT_ONCE: usize = 16;

#[test]
fn the_host_reaches_a_guest_server_through_the_runner_s_forwarding() {
    let image = super::net::http_image();
    // A port that is free now (the runner checks it again before booting).
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    // examples/http on the guest's port 8080 ends after 3 + BURSTS * AT_ONCE requests: the
    // page, the big body, the bursts of connections at once, and the page once more.
    let child = Command::new(runner())
        .args(["--mode", "domu", "--timeout", "240", "--forward"])
        .arg(format!("{port}:8080"))
        .arg(&image)
        .args(["8080", &(3 + BURSTS * AT_ONCE).to_string()])
        .env_remove("XEN_RUNNER_FORWARD")
        .env_remove("XEN_RUNNER_KERNEL_ARGS")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start xen-runner");
    // dom0 boots and the guest starts listening: until then a connection is reset or closed.
    let start = Instant::now();
    let page = loop {
        match get(port, "/") {
            Ok(body) => break body,
            Err(e) if start.elapsed() < Duration::from_secs(180) => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => fail(child, &format!("no page through the forwarded port in 180 s: {e}")),
        }
    };
    println!("first page after {:.1} s", start.elapsed().as_secs_f64());
    assert!(String::from_utf8_lossy(&page).contains("Hello from a Xen guest"));
    let big = match get(port, "/big?bytes=3000000") {
        Ok(big) => big,
        Err(e) => fail(child, &format!("the big body: {e}")),
    };
    assert_eq!(big.len(), 3_000_000);
    assert!(big.iter().enumerate().all(|(i, &b)| b == b'a' + (i % 26) as u8), "the body's bytes");
    // Connections at once, as a browser or a load test makes them: socat's listen backlog was
    // 5, and the connections past it waited for SYN retries (seconds) or timed out.
    for burst in 0..BURSTS {
        let started = Instant::now();
        let gets: Vec<_> = (0..AT_ONCE)
            .map(|i| {
                let bytes = 1 + burst * AT_ONCE + i;
                std::thread::spawn(move || {
                    (bytes, get_within(port, &format!("/big?bytes={bytes}"), Duration::from_secs(20)))
                })
            })
            .collect();
        for g in gets {
            match g.join().unwrap() {
                (bytes, Ok(body)) if body.len() == bytes => {}
                (bytes, Ok(body)) => fail(child, &format!("burst {burst}: {} bytes for {bytes}", body.len())),
                (bytes, Err(e)) => fail(child, &format!("burst {burst}, /big?bytes={bytes}: {e}")),
            }
        }
        println!("{AT_ONCE} connections at once: {:.1} s", started.elapsed().as_secs_f64());
    }
    match get(port, "/") {
        Ok(page) => assert!(String::from_utf8_lossy(&page).contains("Hello from a Xen guest")),
        Err(e) => fail(child, &format!("the page, a second time: {e}")),
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A DNS query (recursion desired) for `name`'s A record, with `id`.
fn a_query(id: u16, name: &str) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// What tests/guest's `sockets dns` answered: the id, the response code and the A record's
/// address, if there is one.
fn dns_answer(r: &[u8]) -> (u16, u8, Option<Ipv4Addr>) {
    assert!(r.len() >= 12 && r[2] & 0x80 != 0, "not a DNS response: {r:02x?}");
    let address = (r.len() >= 4 && r[6..8] == [0, 1])
        .then(|| Ipv4Addr::new(r[r.len() - 4], r[r.len() - 3], r[r.len() - 2], r[r.len() - 1]));
    (u16::from_be_bytes([r[0], r[1]]), r[3] & 0xf, address)
}

/// Sends `query` from `socket` to `to` and waits `wait` for the answer, up to `tries` times;
/// returns it and the number of tries it took.
fn ask(
    socket: &UdpSocket,
    to: SocketAddr,
    query: &[u8],
    wait: Duration,
    tries: u32,
) -> Option<(Vec<u8>, u32)> {
    socket.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 512];
    for attempt in 1..=tries {
        socket.send_to(query, to).unwrap();
        let until = Instant::now() + wait;
        // A late answer to an earlier try has this id too; anything else is not ours.
        while Instant::now() < until {
            match socket.recv_from(&mut buf) {
                Ok((n, from)) if from == to && buf[..2] == query[..2] => {
                    return Some((buf[..n].to_vec(), attempt));
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    }
    None
}

/// The host address datagrams to another host would leave from, if this machine has one
/// (a UDP `connect` sends nothing: it only picks the route).
fn non_loopback_address() -> Option<Ipv4Addr> {
    let s = UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("203.0.113.1:9").ok()?;
    match s.local_addr().ok()?.ip() {
        std::net::IpAddr::V4(a) if !a.is_loopback() && !a.is_unspecified() => Some(a),
        _ => None,
    }
}

/// Clients asking at once, and how many times each.
const UDP_CLIENTS: usize = 8;
const UDP_ROUNDS: usize = 3;

#[test]
fn the_host_gets_a_guest_s_udp_answers_through_the_runner_s_forwarding() {
    let image = xen_bins().join("sockets");
    let port = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    // On every address: a client on loopback reaches dom0 as QEMU's 10.0.2.2, one on another
    // of the host's addresses with that address, which dom0 answers through QEMU's gateway.
    // The guest answers on its port 53 until no query came for 10 s, then ends.
    let child = Command::new(runner())
        .args(["--mode", "domu", "--timeout", "240", "--forward"])
        .arg(format!("udp:0.0.0.0:{port}:53"))
        .arg(&image)
        .args(["dns", "53", "100000"])
        .env_remove("XEN_RUNNER_FORWARD")
        .env_remove("XEN_RUNNER_KERNEL_ARGS")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start xen-runner");
    let local = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    // dom0 boots and the guest binds its port: until then a query goes unanswered.
    let start = Instant::now();
    let first = UdpSocket::bind("127.0.0.1:0").unwrap();
    let Some((answer, tries)) =
        ask(&first, local, &a_query(1, "xen.test"), Duration::from_millis(500), 360)
    else {
        fail(child, "no answer through the forwarded UDP port in 180 s");
    };
    println!("first answer after {:.1} s ({tries} queries)", start.elapsed().as_secs_f64());
    assert_eq!(dns_answer(&answer), (1, 0, Some(Ipv4Addr::new(10, 11, 12, 13))));
    // A name the guest does not know: its own answer, NXDOMAIN.
    match ask(&first, local, &a_query(2, "nowhere.test"), Duration::from_secs(5), 1) {
        Some((answer, _)) => assert_eq!(dns_answer(&answer), (2, 3, None)),
        None => fail(child, "no answer for an unknown name"),
    }
    let mut targets = vec![local];
    match non_loopback_address() {
        Some(a) => targets.push(SocketAddr::from((a, port))),
        None => println!("no address but loopback: the other-address client is left out"),
    }
    // Clients at once, each on its own port, each getting the answer to its own query: dom0
    // forks a socat per datagram, QEMU sends each answer to the port it came from.
    for &to in &targets {
        for round in 0..UDP_ROUNDS {
            let started = Instant::now();
            let asks: Vec<_> = (0..UDP_CLIENTS)
                .map(|i| {
                    let id = (100 + round * UDP_CLIENTS + i) as u16;
                    std::thread::spawn(move || {
                        let bind = if to.ip().is_loopback() { "127.0.0.1:0" } else { "0.0.0.0:0" };
                        let s = UdpSocket::bind(bind).unwrap();
                        (id, ask(&s, to, &a_query(id, "xen.test"), Duration::from_secs(5), 1))
                    })
                })
                .collect();
            for a in asks {
                match a.join().unwrap() {
                    (id, Some((answer, _))) => {
                        assert_eq!(
                            dns_answer(&answer),
                            (id, 0, Some(Ipv4Addr::new(10, 11, 12, 13)))
                        )
                    }
                    (id, None) => fail(
                        child,
                        &format!("to {to}, round {round}: no answer to query {id} in 5 s"),
                    ),
                }
            }
            println!(
                "{UDP_CLIENTS} queries at once to {to}: {:.2} s",
                started.elapsed().as_secs_f64()
            );
        }
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every query came from dom0's end of the bridge (socat), the guest's answers went there.
    let answered =
        stdout.lines().filter(|l| l.starts_with("answered type 1 from ")).collect::<Vec<_>>();
    assert!(answered.iter().all(|l| l.ends_with("from 10.99.0.1")), "{stdout}");
    assert!(answered.len() >= 1 + targets.len() * UDP_ROUNDS * UDP_CLIENTS, "{stdout}");
}

#[test]
fn a_guest_with_a_udp_forward_still_cannot_reach_the_host() {
    // The UDP forward makes QEMU's network unrestricted: 10.0.2.2 is the host's loopback for
    // dom0, but dom0 routes nothing from its guests there.
    let host = TcpListener::bind("127.0.0.1:0").unwrap();
    host.set_nonblocking(true).unwrap();
    let host_port = host.local_addr().unwrap().port();
    let port = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let out = Command::new(runner())
        .args(["--mode", "domu", "--timeout", "240", "--forward"])
        .arg(format!("udp:{port}:53"))
        .arg(xen_bins().join("sockets"))
        .args(["unreachable", &format!("10.0.2.2:{host_port}")])
        .env_remove("XEN_RUNNER_FORWARD")
        .env_remove("XEN_RUNNER_KERNEL_ARGS")
        .output()
        .expect("cannot start xen-runner");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("unreachable: TimedOut after >= 2 s true"), "{stdout}");
    assert!(host.accept().is_err(), "the guest reached the host's loopback");
}
