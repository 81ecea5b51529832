//! Host ports forwarded to a guest (`--forward`, docs/runner.md, "Networking").
//!
//! Under `--mode domu` the guest sits on dom0's bridge `xenbr0` (dom0 is 10.99.0.1, the guest
//! [`GUEST_IP`]). A forwarded port crosses two hops: QEMU's user network forwards a host
//! port to dom0's emulated NIC ([`DOM0_NIC_IP`]), where `socat` (started by the harness's
//! `/init` before the guest) connects each accepted connection to the guest's port. For TCP
//! the runner listens on the user's port itself and hands each connection to QEMU's, on a
//! loopback port of its own (`crate::proxy`); UDP goes to QEMU directly.

use std::fmt;
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::str::FromStr;

/// dom0's address on QEMU's user network (the first address QEMU's network hands out).
pub const DOM0_NIC_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);

/// dom0's address on the bridge the guests' vifs join.
pub const BRIDGE_IP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);

/// The address a single `--mode domu` run's guest gets (`xen.ip=`).
pub const GUEST_IP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);

/// The prefix length of the bridge's network.
pub const BRIDGE_PREFIX: u8 = 24;

/// TCP or UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// TCP: every connection to the host port becomes one to the guest's.
    Tcp,
    /// UDP: datagrams to the host port reach the guest's, and its answers come back.
    Udp,
}

impl Protocol {
    /// The name QEMU's `hostfwd` and the harness's forward file use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        }
    }
}

/// One forwarded port: `[tcp:|udp:][ADDR:]HOSTPORT[:GUESTPORT]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forward {
    /// TCP (the default) or UDP.
    pub protocol: Protocol,
    /// The host address to listen on (127.0.0.1 unless given).
    pub host_addr: Ipv4Addr,
    /// The host port.
    pub host_port: u16,
    /// The guest's port (the host port unless given).
    pub guest_port: u16,
}

/// Why a `--forward` value was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardError(String);

impl fmt::Display for ForwardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ForwardError {}

fn port(text: &str, spec: &str) -> Result<u16, ForwardError> {
    match text.parse::<u16>() {
        Ok(port) if port > 0 => Ok(port),
        _ => Err(ForwardError(format!(
            "--forward {spec}: {text:?} is not a port (1 to 65535); give \
             [tcp:|udp:][ADDR:]HOSTPORT[:GUESTPORT], e.g. 8080:80"
        ))),
    }
}

impl FromStr for Forward {
    type Err = ForwardError;

    fn from_str(spec: &str) -> Result<Self, ForwardError> {
        let (protocol, rest) = if let Some(rest) = spec.strip_prefix("udp:") {
            (Protocol::Udp, rest)
        } else {
            (Protocol::Tcp, spec.strip_prefix("tcp:").unwrap_or(spec))
        };
        let parts: Vec<&str> = rest.split(':').collect();
        let addr = |text: &str| {
            text.parse::<Ipv4Addr>().map_err(|_| {
                ForwardError(format!("--forward {spec}: {text:?} is not an IPv4 address"))
            })
        };
        let (host_addr, host_port, guest_port) = match parts[..] {
            [host] => (Ipv4Addr::LOCALHOST, port(host, spec)?, port(host, spec)?),
            [first, second] if first.contains('.') => {
                (addr(first)?, port(second, spec)?, port(second, spec)?)
            }
            [host, guest] => (Ipv4Addr::LOCALHOST, port(host, spec)?, port(guest, spec)?),
            [a, host, guest] => (addr(a)?, port(host, spec)?, port(guest, spec)?),
            _ => {
                return Err(ForwardError(format!(
                    "--forward {spec}: give [tcp:|udp:][ADDR:]HOSTPORT[:GUESTPORT]"
                )));
            }
        };
        Ok(Forward { protocol, host_addr, host_port, guest_port })
    }
}

impl Forward {
    /// QEMU's `hostfwd=` value: the user's host address and port to dom0's NIC (a UDP
    /// forward's rule).
    pub fn hostfwd(&self) -> String {
        self.hostfwd_from(self.host_addr, self.host_port)
    }

    /// QEMU's `hostfwd=` value from `addr:port` on the host to dom0's NIC and port (a TCP
    /// forward's rule names the runner's loopback port, `crate::proxy`).
    pub fn hostfwd_from(&self, addr: Ipv4Addr, port: u16) -> String {
        format!("{}:{addr}:{port}-{}:{}", self.protocol.as_str(), DOM0_NIC_IP, self.dom0_port())
    }

    /// The port socat listens on in dom0: the guest's, which is unique per protocol among one
    /// run's forwards (checked by [`bind_all`]).
    pub fn dom0_port(&self) -> u16 {
        self.guest_port
    }

    /// The line of the harness's `/jobs/NNN/forward` file: `PROTO DOM0PORT GUESTIP GUESTPORT`.
    pub fn harness_line(&self, guest: Ipv4Addr) -> String {
        format!("{} {} {} {}\n", self.protocol.as_str(), self.dom0_port(), guest, self.guest_port)
    }
}

/// The TCP listeners of a run's forwards, bound by [`bind_all`], with their forwards.
pub type Listeners = Vec<(Forward, TcpListener)>;

/// Checks a run's forwards together: no host port or guest port twice, and every host port
/// free now (QEMU would otherwise fail later with a less helpful message). The TCP ports
/// stay bound: the listeners returned are the ones the runner serves them on, so no other
/// program can take a port between this check and the run. A UDP port is bound and let go
/// (QEMU binds it).
pub fn bind_all(forwards: &[Forward]) -> Result<Listeners, ForwardError> {
    let mut listeners = Vec::new();
    for (i, f) in forwards.iter().enumerate() {
        for g in &forwards[..i] {
            if f.protocol == g.protocol && f.host_port == g.host_port && f.host_addr == g.host_addr {
                return Err(ForwardError(format!(
                    "--forward: host port {} ({}) is given twice",
                    f.host_port,
                    f.protocol.as_str()
                )));
            }
            if f.protocol == g.protocol && f.guest_port == g.guest_port {
                return Err(ForwardError(format!(
                    "--forward: guest port {} ({}) is given twice; forward one host port to it",
                    f.guest_port,
                    f.protocol.as_str()
                )));
            }
        }
        let free = match f.protocol {
            Protocol::Tcp => {
                TcpListener::bind((f.host_addr, f.host_port)).map(|l| listeners.push((*f, l)))
            }
            Protocol::Udp => UdpSocket::bind((f.host_addr, f.host_port)).map(drop),
        };
        if let Err(e) = free {
            return Err(ForwardError(format!(
                "--forward: cannot listen on {}:{} ({}): {e}; pick another host port",
                f.host_addr,
                f.host_port,
                f.protocol.as_str()
            )));
        }
    }
    Ok(listeners)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fwd(spec: &str) -> Forward {
        spec.parse().unwrap()
    }

    #[test]
    fn reads_every_form() {
        let local = Ipv4Addr::LOCALHOST;
        let tcp = |host_addr, host_port, guest_port| Forward {
            protocol: Protocol::Tcp,
            host_addr,
            host_port,
            guest_port,
        };
        assert_eq!(fwd("8080"), tcp(local, 8080, 8080));
        assert_eq!(fwd("8080:80"), tcp(local, 8080, 80));
        assert_eq!(fwd("tcp:8080:80"), tcp(local, 8080, 80));
        assert_eq!(fwd("0.0.0.0:8080"), tcp(Ipv4Addr::UNSPECIFIED, 8080, 8080));
        assert_eq!(fwd("192.168.1.5:8080:80"), tcp(Ipv4Addr::new(192, 168, 1, 5), 8080, 80));
        let udp = fwd("udp:5353:53");
        assert_eq!((udp.protocol, udp.host_port, udp.guest_port), (Protocol::Udp, 5353, 53));
    }

    #[test]
    fn refuses_what_is_not_a_forward() {
        for (spec, want) in [
            ("", "is not a port"),
            ("0", "is not a port"),
            ("65536", "is not a port"),
            ("http", "is not a port"),
            ("8080:", "is not a port"),
            ("1.2.3:80:80", "is not an IPv4 address"),
            ("1.2.3.4:80:80:1", "give [tcp:|udp:]"),
            ("sctp:80", "is not a port"),
        ] {
            let got = spec.parse::<Forward>().unwrap_err().to_string();
            assert!(got.contains(want), "{spec:?}: {got}");
        }
    }

    #[test]
    fn tells_qemu_and_dom0_where_to_go() {
        let f = fwd("18080:80");
        assert_eq!(f.hostfwd(), "tcp:127.0.0.1:18080-10.0.2.15:80");
        assert_eq!(f.harness_line(GUEST_IP), "tcp 80 10.99.0.2 80\n");
        assert_eq!(fwd("udp:0.0.0.0:7:7").hostfwd(), "udp:0.0.0.0:7-10.0.2.15:7");
        // A TCP forward's QEMU end is the runner's loopback port; dom0's port is unchanged.
        assert_eq!(f.hostfwd_from(Ipv4Addr::LOCALHOST, 40001), "tcp:127.0.0.1:40001-10.0.2.15:80");
    }

    #[test]
    fn refuses_ports_given_twice_or_taken() {
        let err = |list: &[&str]| {
            let forwards: Vec<Forward> = list.iter().map(|s| fwd(s)).collect();
            bind_all(&forwards).unwrap_err().to_string()
        };
        assert!(err(&["18081:80", "18081:81"]).contains("host port 18081 (tcp) is given twice"));
        assert!(err(&["18082:80", "18083:80"]).contains("guest port 80 (tcp) is given twice"));
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        assert!(err(&[&format!("{port}:80")]).contains("cannot listen on 127.0.0.1"));
        // The same port number over UDP and TCP are two forwards.
        let free = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let bound =
            bind_all(&[fwd(&format!("{free}:53")), fwd(&format!("udp:{free}:53"))]).unwrap();
        // The TCP port stays held for the runner's own listener; the UDP one is QEMU's.
        assert_eq!(bound.len(), 1);
        assert_eq!(bound[0].1.local_addr().unwrap().port(), free);
        assert!(TcpListener::bind(("127.0.0.1", free)).is_err());
        assert!(UdpSocket::bind(("127.0.0.1", free)).is_ok());
    }
}
