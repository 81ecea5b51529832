//! An HTTP/1.1 server written with std only.
//!
//!     http [PORT [REQUESTS]]
//!
//! Listens on 0.0.0.0:PORT (default 8080), a thread per connection, keep-alive unless the
//! client asks to close. `GET /` is a small HTML page; `GET /big?bytes=N` is N bytes of the
//! letters `a` to `z` over and over (`text/plain`); anything else is 404 (`handler.rs`). With
//! REQUESTS, the server ends after answering that many. It prints each request it answered.

mod handler;

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().map_or(8080, |p| p.parse().expect("PORT is a number"));
    let limit: Option<usize> = args.next().map(|n| n.parse().expect("REQUESTS is a number"));
    let listener = TcpListener::bind(("0.0.0.0", port))?;
    println!("http server listening on {}", listener.local_addr()?);
    let answered = Arc::new(AtomicUsize::new(0));
    loop {
        if limit.is_some_and(|l| answered.load(Ordering::SeqCst) >= l) {
            return Ok(());
        }
        let (stream, peer) = listener.accept()?;
        let answered = answered.clone();
        let worker = thread::spawn(move || {
            let result = handler::serve(stream, |method, target| {
                answered.fetch_add(1, Ordering::SeqCst);
                println!("{method} {target}");
            });
            if let Err(e) = result {
                eprintln!("{peer}: {e}");
            }
        });
        if limit.is_some() {
            // Counted requests: one connection at a time, so the count is known at accept.
            let _ = worker.join();
        }
    }
}
