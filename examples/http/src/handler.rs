//! How the server answers a connection's requests: `GET /` a small HTML page, `GET
//! /big?bytes=N` N bytes of the letters `a` to `z` over and over, anything else 404 (405 for
//! another method).
//!
//! tools/bench's network guest includes this file too (`#[path]`), so that `./bench net`'s
//! requests per second are this code's.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::net::TcpStream;

const PAGE: &str = "<!DOCTYPE html>\n<html><head><title>Rust std on Xen</title></head>\n\
<body><h1>Hello from a Xen guest</h1><p>Served by std::net over the kernel's TCP/IP stack.</p></body></html>\n";

/// Writes the body of `/big?bytes=N` in chunks.
fn write_big(out: &mut impl Write, len: usize) -> std::io::Result<()> {
    let chunk: Vec<u8> = (0..64 * 1024).map(|i| b'a' + (i % 26) as u8).collect();
    let mut left = len;
    // 65,536 is a multiple of 26 plus 16, so each chunk starts where the last one ended.
    let mut offset = 0;
    while left > 0 {
        let n = left.min(chunk.len() - 26);
        out.write_all(&chunk[offset..offset + n])?;
        offset = (offset + n) % 26;
        left -= n;
    }
    Ok(())
}

/// Answers the requests of one connection until the client closes it (or asks to); calls
/// `answered(method, target)` after each answer has gone out.
pub fn serve(stream: TcpStream, mut answered: impl FnMut(&str, &str)) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    // Reading and writing both go through `&TcpStream`, so no clone is needed. Writes larger
    // than the buffer (the chunks of a big body) go straight to the socket.
    let mut reader = BufReader::new(&stream);
    let mut out = BufWriter::with_capacity(16 * 1024, &stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let mut close = parts.next() == Some("HTTP/1.0");
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header)? == 0 || header.trim_end().is_empty() {
                break;
            }
            let lower = header.to_ascii_lowercase();
            if lower.starts_with("connection:") && lower.contains("close") {
                close = true;
            }
        }
        let connection = if close { "close" } else { "keep-alive" };
        if method != "GET" {
            write!(
                out,
                "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nConnection: {connection}\r\n\r\n"
            )?;
        } else if target == "/" {
            write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: {connection}\r\n\r\n{PAGE}",
                PAGE.len()
            )?;
        } else if let Some(n) =
            target.strip_prefix("/big?bytes=").and_then(|n| n.parse::<usize>().ok())
        {
            write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {n}\r\nConnection: {connection}\r\n\r\n"
            )?;
            write_big(&mut out, n)?;
        } else {
            write!(
                out,
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: {connection}\r\n\r\n"
            )?;
        }
        out.flush()?;
        answered(method, target);
        if close {
            return Ok(());
        }
    }
}
