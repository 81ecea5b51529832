//! The network device from a program (`std::os::xen::net`), for the harness's domU jobs:
//!
//!     net arp       sends ARP requests for 10.99.0.1 (from 10.99.0.2) every 500 ms until
//!                   dom0 answers (at most 20 s), then prints the answer
//!     net errors    what opening a missing or an open device, and odd frames, give
//!     net gone      three vifs: threads wait on vif 1 and 2 (no deadline) while dom0
//!                   detaches vif 1 (`xl network-detach`) and removes vif 2's backend folder;
//!                   prints what their calls then give, and that vif 0 still gets dom0's ARP
//!                   answer; exits with vif 0 open

#[cfg(target_os = "xen")]
mod xen {
    use std::os::xen::net::{Device, MAX_FRAME};
    use std::time::{Duration, Instant};

    const OUR_IP: [u8; 4] = [10, 99, 0, 2];
    const DOM0_IP: [u8; 4] = [10, 99, 0, 1];

    fn mac(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
    }

    /// An ARP request (RFC 826) for `target` from `ours`/`our_mac`, broadcast.
    fn arp_request(our_mac: [u8; 6], ours: [u8; 4], target: [u8; 4]) -> Vec<u8> {
        let mut f = Vec::with_capacity(42);
        f.extend_from_slice(&[0xff; 6]);
        f.extend_from_slice(&our_mac);
        f.extend_from_slice(&[0x08, 0x06]);
        // Ethernet, IPv4, address lengths 6 and 4, opcode 1 (request).
        f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
        f.extend_from_slice(&our_mac);
        f.extend_from_slice(&ours);
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&target);
        f
    }

    fn arp() -> std::io::Result<()> {
        let device = Device::open(0)?;
        println!("mac {}", mac(&device.mac()));
        arp_on(&device)
    }

    /// Asks dom0 for 10.99.0.1's MAC through `device` until it answers; prints the answer.
    fn arp_on(device: &Device) -> std::io::Result<()> {
        let request = arp_request(device.mac(), OUR_IP, DOM0_IP);
        let start = Instant::now();
        let mut buf = [0u8; MAX_FRAME];
        let mut sent = 0;
        while start.elapsed() < Duration::from_secs(20) {
            device.send(&request)?;
            sent += 1;
            let until = Instant::now() + Duration::from_millis(500);
            while let Some(left) = until.checked_duration_since(Instant::now()) {
                let len = match device.recv_timeout(&mut buf, left) {
                    Ok(len) => len,
                    Err(e) if e.kind() == std::io::ErrorKind::TimedOut => break,
                    Err(e) => return Err(e),
                };
                let f = &buf[..len];
                // An ARP reply (opcode 2) to us about DOM0_IP.
                if len >= 42 && f[12..14] == [8, 6] && f[20..22] == [0, 2] && f[28..32] == DOM0_IP && f[0..6] == device.mac() {
                    println!("sent {sent} requests");
                    println!("arp reply from {}: 10.99.0.1 is at {}", mac(&f[6..12]), mac(&f[22..28]));
                    // The device stays connected while dom0 reads its counters (netback's go
                    // with the connection).
                    std::thread::sleep(Duration::from_secs(3));
                    return Ok(());
                }
            }
        }
        println!("no answer after {sent} requests");
        std::process::exit(1);
    }

    fn errors() {
        println!("missing: {:?}", Device::open(5).map(drop).map_err(|e| e.kind()));
        let device = Device::open(0).unwrap();
        println!("again: {:?}", Device::open(0).map(drop).map_err(|e| e.kind()));
        println!("empty: {}", device.send(&[]).is_err());
        println!("too long: {}", device.send(&[0; MAX_FRAME + 1]).is_err());
        let mut buf = [0u8; 64];
        println!("timeout: {:?}", device.recv_timeout(&mut buf, Duration::from_millis(1)).map_err(|e| e.kind()).err());
        drop(device);
        let again = Device::open(0).map(|d| d.mac() != [0; 6]);
        println!("reopened: {again:?}");
    }

    fn gone() -> std::io::Result<()> {
        let first = Device::open(0)?;
        let second = Device::open(1)?;
        println!("vif 0 mac {} mtu {}", mac(&first.mac()), first.mtu());
        println!("vif 1 mac {} mtu {}", mac(&second.mac()), second.mtu());
        // vif 1's MTU (1400 in its xl line) bounds its frames: a broadcast of that payload
        // goes, one byte more is refused.
        let mut frame = arp_request(second.mac(), OUR_IP, DOM0_IP);
        frame.resize(second.mtu() + 14, 0);
        println!("vif 1 frame of mtu + 14 bytes: {:?}", second.send(&frame).map_err(|e| e.kind()));
        frame.push(0);
        println!("vif 1 frame of mtu + 15 bytes: {:?}", second.send(&frame).map_err(|e| e.to_string()));
        // vif 2's backend folder is removed outright (as when its driver domain dies).
        let third = Device::open(2)?;
        let wait_on = |device: Device| {
            std::thread::spawn(move || {
                let mut buf = [0u8; MAX_FRAME];
                let mut frames = 0;
                loop {
                    match device.recv(&mut buf) {
                        // The bridge's own traffic (IPv6 reports, ARP) may come first.
                        Ok(_) => frames += 1,
                        Err(e) => return (e, frames, device),
                    }
                }
            })
        };
        let waiter = wait_on(second);
        let third_waiter = wait_on(third);
        println!("waiting on vif 1 and vif 2");
        let (e, frames, second) = waiter.join().unwrap();
        println!("vif 1 recv after {frames} frames: {:?} ({e})", e.kind());
        let (e, frames, third) = third_waiter.join().unwrap();
        println!("vif 2 recv after {frames} frames: {:?} ({e})", e.kind());
        drop(third);
        let frame = arp_request(second.mac(), OUR_IP, DOM0_IP);
        println!("vif 1 send: {:?}", second.send(&frame).map_err(|e| e.kind()));
        let mut buf = [0u8; 64];
        println!("vif 1 recv again: {:?}", second.recv_timeout(&mut buf, Duration::from_secs(1)).map_err(|e| e.kind()));
        drop(second);
        arp_on(&first)?;
        // Ends with vif 0 still open: the kernel disconnects it from netback at the end.
        std::process::exit(0)
    }

    pub fn main() {
        match std::env::args().nth(1).as_deref() {
            Some("arp") => arp().unwrap(),
            Some("errors") => errors(),
            Some("gone") => gone().unwrap(),
            _ => {
                eprintln!("usage: net arp|errors|gone");
                std::process::exit(2);
            }
        }
    }
}

#[cfg(target_os = "xen")]
fn main() {
    xen::main()
}

#[cfg(not(target_os = "xen"))]
fn main() {
    eprintln!("net: only on Xen");
    std::process::exit(2);
}
