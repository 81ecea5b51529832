//! A TCP echo server written with std only.
//!
//!     tcp-echo [PORT [CONNECTIONS]]
//!
//! Listens on 0.0.0.0:PORT (default 7); each connection gets a thread that writes back
//! everything it reads until the peer shuts its side down. With CONNECTIONS, the server ends
//! after serving that many.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;

fn echo(mut stream: TcpStream) -> std::io::Result<u64> {
    let mut buf = [0u8; 16 * 1024];
    let mut total = 0;
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(total);
        }
        stream.write_all(&buf[..n])?;
        total += n as u64;
    }
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().map_or(7, |p| p.parse().expect("PORT is a number"));
    let limit: Option<usize> = args.next().map(|n| n.parse().expect("CONNECTIONS is a number"));
    let listener = TcpListener::bind(("0.0.0.0", port))?;
    println!("echo server listening on {}", listener.local_addr()?);
    let mut workers = Vec::new();
    let mut served = 0;
    while limit.is_none_or(|l| served < l) {
        let (stream, peer) = listener.accept()?;
        served += 1;
        workers.push(thread::spawn(move || match echo(stream) {
            Ok(n) => println!("{peer}: echoed {n} bytes"),
            Err(e) => eprintln!("{peer}: {e}"),
        }));
    }
    for w in workers {
        let _ = w.join();
    }
    Ok(())
}
