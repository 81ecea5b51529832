//! The guest's end of the harness's bulk TCP test (`net_bulk_100mb`, docs/net.md), with
//! std::net only (through the `bulk` crate):
//!
//!     bulk PORT N DOM0
//!
//! Takes one connection on PORT (from `tests/dom0-client ... bulk`), receives N bytes from it,
//! checking each against the pattern, and answers with its report; then connects to DOM0,
//! where that client listens, sends N bytes and reads dom0's report. Exits 0 only when both
//! directions came intact. The lines are the `bulk` crate's.

use std::net::{SocketAddr, TcpListener, TcpStream};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(port), Some(len), Some(dom0)) = (
        args.get(1).and_then(|p| p.parse::<u16>().ok()),
        args.get(2).and_then(|n| n.parse::<u64>().ok()),
        args.get(3).and_then(|a| a.parse::<SocketAddr>().ok()),
    ) else {
        eprintln!("usage: bulk PORT N DOM0");
        std::process::exit(2);
    };
    let listener = TcpListener::bind(("0.0.0.0", port)).expect("listening");
    println!("bulk listening on {}", listener.local_addr().expect("the listener's address"));
    let from_dom0 = match listener.accept() {
        Ok((mut s, _)) => bulk::receiving_end("dom0->guest", &mut s, bulk::DOM0_TO_GUEST, len),
        Err(e) => {
            println!("dom0->guest: failed: accept: {e}");
            false
        }
    };
    let to_dom0 = match TcpStream::connect_timeout(&dom0, bulk::PATIENCE) {
        Ok(mut s) => bulk::sending_end("guest->dom0", &mut s, bulk::GUEST_TO_DOM0, len),
        Err(e) => {
            println!("guest->dom0: failed: connect to {dom0}: {e}");
            false
        }
    };
    std::process::exit(if from_dom0 && to_dom0 { 0 } else { 1 });
}
