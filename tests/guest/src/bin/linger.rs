//! `TcpStream::set_linger` over loopback (std's unstable `tcp_linger`), printing only what
//! Linux and Xen must agree on:
//!
//!     linger    the value kept in whole seconds; a close with linger 0 resets the connection;
//!               a close with linger 5 s returns once the peer has everything (well before
//!               5 s), and one with linger 1 s and a peer that never reads returns after 1 s

#![feature(tcp_linger)]

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

fn main() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();

    let stream = TcpStream::connect(addr).unwrap();
    let (mut peer, _) = listener.accept().unwrap();
    println!("linger at first: {:?}", stream.linger().unwrap());
    stream.set_linger(Some(Duration::from_millis(2500))).unwrap();
    println!("linger 2.5 s reads back as {:?}", stream.linger().unwrap());
    stream.set_linger(None).unwrap();
    println!("linger off reads back as {:?}", stream.linger().unwrap());

    // Linger 0: the close resets the connection instead of saying goodbye.
    stream.set_linger(Some(Duration::ZERO)).unwrap();
    drop(stream);
    thread::sleep(Duration::from_millis(200));
    let mut buf = [0u8; 16];
    println!("after a close with linger 0 the peer reads: {:?}", peer.read(&mut buf).map_err(|e| e.kind()));

    // Linger 5 s with data in flight and a reading peer: the close waits for the peer's
    // acknowledgement, not for the 5 s.
    let mut stream = TcpStream::connect(addr).unwrap();
    let (mut peer, _) = listener.accept().unwrap();
    stream.set_linger(Some(Duration::from_secs(5))).unwrap();
    let data = vec![7u8; 300_000];
    let reader = thread::spawn(move || {
        let mut got = Vec::new();
        peer.read_to_end(&mut got).map(|_| got.len() == 300_000 && got.iter().all(|&b| b == 7))
    });
    stream.write_all(&data).unwrap();
    let t = Instant::now();
    drop(stream);
    let took = t.elapsed();
    println!("close with linger 5 s returned before 5 s: {}", took < Duration::from_secs(4));
    println!("the peer got everything and the end: {:?}", reader.join().unwrap().map_err(|e| e.kind()));

    // Linger 1 s and a peer that reads nothing: the close waits the second out.
    let mut stream = TcpStream::connect(addr).unwrap();
    let (_peer, _) = listener.accept().unwrap();
    stream.set_nonblocking(true).unwrap();
    let chunk = [1u8; 16 << 10];
    loop {
        match stream.write(&chunk) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) => panic!("write: {e}"),
        }
    }
    stream.set_nonblocking(false).unwrap();
    stream.set_linger(Some(Duration::from_secs(1))).unwrap();
    let t = Instant::now();
    drop(stream);
    let took = t.elapsed();
    println!(
        "close with linger 1 s and a peer that reads nothing returned after 1 s: {}",
        took >= Duration::from_millis(950) && took < Duration::from_secs(4)
    );
}
