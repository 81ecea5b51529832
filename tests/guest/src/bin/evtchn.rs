//! Event channels from a program: a loopback pair within the domain (a port allocated for
//! itself and bound to), events across threads, masking, and closing.

#[cfg(target_os = "xen")]
fn main() {
    use std::os::xen::domain;
    use std::os::xen::evtchn::EventChannel;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    let me = domain::id().unwrap();
    let a = EventChannel::alloc_unbound(me).unwrap();
    let b = Arc::new(EventChannel::bind_interdomain(me, a.port()).unwrap());
    println!("ports differ: {}", a.port() != b.port());
    println!("nothing yet on the unbound end: {}", !a.wait_timeout(Duration::from_millis(200)).unwrap());
    // Xen signals a port it binds interdomain, in case the other end rang before.
    println!("bind event: {}", b.wait_timeout(Duration::from_secs(5)).unwrap());
    println!("nothing more: {}", !b.wait_timeout(Duration::from_millis(200)).unwrap());

    // An event that comes before the wait is not lost.
    a.notify().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    println!("early event seen: {}", b.wait_timeout(Duration::from_secs(5)).unwrap());

    // A thread blocked in wait is woken by a notify from another.
    let waiter = {
        let b = b.clone();
        std::thread::spawn(move || {
            let t = Instant::now();
            let got = b.wait_timeout(Duration::from_secs(10)).unwrap();
            (got, t.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    a.notify().unwrap();
    let (got, waited) = waiter.join().unwrap();
    println!("woken: {got}, after at least 300 ms: {}", waited >= Duration::from_millis(250));

    // Both directions.
    b.notify().unwrap();
    println!("reverse: {}", a.wait_timeout(Duration::from_secs(5)).unwrap());

    // Masked: held back; unmasked: delivered.
    b.mask().unwrap();
    a.notify().unwrap();
    println!("masked held back: {}", !b.wait_timeout(Duration::from_millis(200)).unwrap());
    b.unmask().unwrap();
    println!("delivered on unmask: {}", b.wait_timeout(Duration::from_secs(5)).unwrap());

    // Many events between two waits end one wait.
    for _ in 0..100 {
        a.notify().unwrap();
    }
    std::thread::sleep(Duration::from_millis(50));
    println!("burst: {}", b.wait_timeout(Duration::from_secs(5)).unwrap());
    println!("burst merged: {}", !b.wait_timeout(Duration::from_millis(100)).unwrap());

    // Binding to a port that does not exist is an error, not a crash.
    let bad = EventChannel::bind_interdomain(me, 4000).unwrap_err();
    println!("bad bind: {:?}", bad.kind());
    drop(b);
    println!("notify after the peer closed: {:?}", a.notify().map_err(|e| e.kind()));
    println!("done");
}

#[cfg(not(target_os = "xen"))]
fn main() {
    println!("xen only");
}
