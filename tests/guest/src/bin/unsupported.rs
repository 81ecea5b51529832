//! Features the platform lacks yet return errors (or panic with std's message); none hangs.

use std::io::ErrorKind;

fn main() {
    let link = std::fs::hard_link("/tmp", "/tmp2").unwrap_err();
    println!("fs: {:?}", link.kind());
    let net = std::net::TcpListener::bind("127.0.0.1:80").map(|_| ()).unwrap_err();
    println!("net: {:?}", net.kind());
    let process = std::process::Command::new("ls").status().map(|_| ()).unwrap_err();
    println!("process: {:?}", process.kind());
    let udp = std::net::UdpSocket::bind("0.0.0.0:0").map(|_| ()).unwrap_err();
    assert_eq!(udp.kind(), ErrorKind::Unsupported);
    println!("parallelism: {:?}", std::thread::available_parallelism().map(|n| n.get()));
    let mut line = String::new();
    println!("stdin: {:?}", std::io::stdin().read_line(&mut line).map(|n| (n, line.clone())));
}
