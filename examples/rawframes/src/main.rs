//! Prints the MAC address of the domain's first network interface, then the source,
//! destination and EtherType of every frame that reaches it (AtmanOS's demo, in Rust).
//!
//!     rawframes [COUNT]     # stop after COUNT frames (default: never)
//!
//! Run it as a domU with a vif, e.g. `vif = ['bridge=xenbr0']` in its `xl` configuration.

use std::os::xen::net::{Device, MAX_FRAME};

fn mac(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

fn main() -> std::io::Result<()> {
    let count: Option<u64> = std::env::args().nth(1).map(|n| n.parse().expect("COUNT is a number"));
    let device = Device::open(0)?;
    println!("mac {}", mac(&device.mac()));
    let mut buf = [0u8; MAX_FRAME];
    let mut seen = 0;
    while count.is_none_or(|c| seen < c) {
        let len = device.recv(&mut buf)?;
        seen += 1;
        if len < 14 {
            println!("frame {seen}: {len} bytes, too short for an Ethernet header");
            continue;
        }
        let ethertype = u16::from_be_bytes([buf[12], buf[13]]);
        println!("frame {seen}: src {} dst {} type 0x{ethertype:04x} len {len}", mac(&buf[6..12]), mac(&buf[0..6]));
    }
    println!("{seen} frames");
    Ok(())
}
