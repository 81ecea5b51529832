//! The domain's lifecycle: `unhandled` waits forever (xl shutdown ends it); `handled` takes
//! the requests over and ends itself after a poweroff request; `reboot` reboots the domain
//! itself when asked to reboot.

#[cfg(target_os = "xen")]
fn main() {
    use std::os::xen::domain::{self, ShutdownRequest};
    use std::time::Duration;

    let mode = std::env::args().nth(1).unwrap_or_default();
    match mode.as_str() {
        "unhandled" => {
            println!("ready");
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
        "handled" | "reboot" => {
            let requests = domain::shutdown_requests().unwrap();
            println!("none yet: {:?}", requests.try_recv());
            println!("ready");
            let request = requests.recv();
            println!("request: {request:?}");
            println!("cleaning up");
            match request {
                ShutdownRequest::Reboot => domain::reboot(7),
                _ => std::process::exit(0),
            }
        }
        other => panic!("unknown mode {other:?}"),
    }
}

#[cfg(not(target_os = "xen"))]
fn main() {
    println!("xen only");
}
