//! The host reaches a server in a guest through the runner's `--forward` (docs/runner.md,
//! "Networking"): QEMU forwards a host port to dom0, dom0's socat to the guest, which has
//! the runner's static address on dom0's bridge.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use xen_harness::runner;

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
