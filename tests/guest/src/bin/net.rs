//! The network device from a program (`std::os::xen::net`), for the harness's domU jobs:
//!
//!     net arp       sends ARP requests for 10.99.0.1 (from 10.99.0.2) every 500 ms until
//!                   dom0 answers (at most 20 s), then prints the answer
//!     net errors    what opening a missing or an open device, and odd frames, give

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

    pub fn main() {
        match std::env::args().nth(1).as_deref() {
            Some("arp") => arp().unwrap(),
            Some("errors") => errors(),
            _ => {
                eprintln!("usage: net arp|errors");
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
