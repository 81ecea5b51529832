//! The host end of a TCP `--forward` (docs/runner.md, "Networking").
//!
//! QEMU's user network (libslirp) listens on a forwarded host port with a backlog of 1
//! (`listen(s, 1)` in its `tcp_listen`). When several clients connect at once the host
//! kernel's accept queue overflows, it falls back to SYN cookies, and the connections whose
//! cookies fail are reset. So the runner listens on the user's port itself (std's backlog,
//! 128), gives QEMU a forward from a loopback port of its own choosing, and makes the
//! connections to that port from one thread, one at a time, each only once slirp has taken
//! the one before off its accept queue (read from `/proc/net/tcp`). Bytes are copied both
//! ways with their half-closes.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead as _, BufReader, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, Weak};
use std::thread;
use std::time::{Duration, Instant};

/// How often slirp's accept queue is looked at while it is not empty.
const QUEUE_POLL: Duration = Duration::from_millis(1);

/// How long to wait for slirp's accept queue to empty before connecting anyway.
const QUEUE_WAIT: Duration = Duration::from_secs(5);

/// How long to keep trying while nothing listens on QEMU's port yet (QEMU sets up its
/// forwards as it starts, well within this).
const LISTEN_WAIT: Duration = Duration::from_secs(30);

/// The pause between two tries while nothing listens on QEMU's port.
const LISTEN_RETRY: Duration = Duration::from_millis(50);

/// How long one connect to QEMU's port may take (it is on this machine).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Bytes copied per read.
const BUFFER: usize = 64 << 10;

/// The state of a listening socket in `/proc/net/tcp` (`TCP_LISTEN`).
const LISTEN_STATE: &str = "0A";

/// The accept-queue length of the TCP socket listening on `port`, read from the lines of
/// `/proc/net/tcp` or `/proc/net/tcp6`: the `rx_queue` half of a LISTEN line's
/// `tx_queue:rx_queue` column. Linux lists every listening socket before the other sockets,
/// so the reading stops at the first line of another state. `None` when no socket listens
/// on `port`; the longest queue when several do (on different addresses).
pub fn accept_queue<S: AsRef<str>>(lines: impl IntoIterator<Item = S>, port: u16) -> Option<u32> {
    let mut longest = None;
    for line in lines {
        let fields: Vec<&str> = line.as_ref().split_whitespace().collect();
        let [_slot, local, _remote, state, queues, ..] = fields[..] else {
            continue; // the header, or not a socket's line
        };
        if state != LISTEN_STATE {
            if u8::from_str_radix(state, 16).is_ok() {
                break; // the listeners are done
            }
            continue;
        }
        let Some((_, local_port)) = local.rsplit_once(':') else {
            continue;
        };
        if u16::from_str_radix(local_port, 16).ok() != Some(port) {
            continue;
        }
        let Some(rx) = queues.split_once(':').and_then(|(_, rx)| u32::from_str_radix(rx, 16).ok())
        else {
            continue;
        };
        longest = Some(longest.map_or(rx, |n: u32| n.max(rx)));
    }
    longest
}

/// The accept-queue length of the socket listening on `port` on this machine, `None` when
/// none does or the tables cannot be read (not Linux). QEMU's end listens on 127.0.0.1, in
/// `/proc/net/tcp`; `tcp6` is read only when nothing was found there. Only the listeners'
/// lines at the head of a table are read: reading all of `/proc/net/tcp` took 1.5 to 3 ms
/// here (it walks the whole connection table), its first lines 0.15 ms.
fn queued(port: u16) -> Option<u32> {
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().find_map(|table| {
        let file = File::open(table).ok()?;
        accept_queue(BufReader::with_capacity(4096, file).lines().map_while(Result::ok), port)
    })
}

/// A free loopback port for QEMU's end of a forward, and a listener that holds it until
/// QEMU is about to take it (drop the listener just before starting QEMU).
pub fn reserve_loopback_port() -> io::Result<(TcpListener, u16)> {
    let held = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let port = held.local_addr()?.port();
    Ok((held, port))
}

/// One TCP forward to serve: the user's listener and the loopback port QEMU listens on.
#[derive(Debug)]
pub struct Route {
    /// The listener on the user's host address and port, bound before the run.
    pub listener: TcpListener,
    /// The loopback port of QEMU's `hostfwd` for it.
    pub qemu_port: u16,
}

/// A connection being copied, shared by its two copying threads.
struct Connection {
    client: TcpStream,
    upstream: TcpStream,
    id: u64,
    shared: Arc<Shared>,
}

impl Connection {
    /// Ends both sockets both ways: one side failed, or the run ended.
    fn abort(&self) {
        let _ = self.client.shutdown(Shutdown::Both);
        let _ = self.upstream.shutdown(Shutdown::Both);
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // Both directions are done: forget it (the sockets close as it goes).
        self.shared.live.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.id);
    }
}

/// What the proxy's threads share.
struct Shared {
    stop: AtomicBool,
    /// Connections being copied, to end them when the run ends.
    live: Mutex<HashMap<u64, Weak<Connection>>>,
    next_id: AtomicU64,
    /// A copy of the runner's stderr: the console holds std's stderr lock while the guest
    /// runs, so warnings from these threads are written past it.
    stderr: Option<File>,
    /// Warnings already given, so that each is given once.
    warned: Mutex<Vec<String>>,
    verbose: bool,
    connections: AtomicU64,
    /// Connects that first waited for slirp's accept queue, and the longest wait (us).
    waited: AtomicU64,
    longest_wait_us: AtomicU64,
}

impl Shared {
    /// Says `what` on stderr, once per `key`.
    fn warn_once(&self, key: &str, what: &str) {
        let mut warned = self.warned.lock().unwrap_or_else(|e| e.into_inner());
        if warned.iter().any(|k| k == key) {
            return;
        }
        warned.push(key.to_owned());
        self.say(&format!("xen-runner: warning: {what}\n"));
    }

    fn say(&self, line: &str) {
        if let Some(mut err) = self.stderr.as_ref() {
            let _ = err.write_all(line.as_bytes());
        }
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// A client connection accepted on a user's port, waiting for its connection to QEMU.
struct Accepted {
    client: TcpStream,
    /// The user's address and port it came to, for messages.
    listening: SocketAddr,
    qemu_port: u16,
}

/// The running proxy of a run's TCP forwards. Dropping it stops it: the listeners close,
/// connections waiting or being copied are closed, and its threads end.
pub struct Proxy {
    shared: Arc<Shared>,
    /// Where to connect to wake each listener's thread from `accept`.
    wake: Vec<SocketAddr>,
}

impl Proxy {
    /// Starts serving `routes`: a thread per listener accepts, one thread connects to QEMU,
    /// two threads per connection copy its bytes.
    pub fn start(routes: Vec<Route>, verbose: bool) -> io::Result<Self> {
        let stderr = io::stderr().as_fd().try_clone_to_owned().ok().map(File::from);
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            live: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            stderr,
            warned: Mutex::new(Vec::new()),
            verbose,
            connections: AtomicU64::new(0),
            waited: AtomicU64::new(0),
            longest_wait_us: AtomicU64::new(0),
        });
        let (tx, rx) = mpsc::channel();
        let mut wake = Vec::new();
        for route in routes {
            let mut addr = route.listener.local_addr()?;
            if addr.ip().is_unspecified() {
                addr.set_ip(Ipv4Addr::LOCALHOST.into());
            }
            wake.push(addr);
            let (shared, tx) = (Arc::clone(&shared), tx.clone());
            thread::Builder::new()
                .name("forward-accept".into())
                .spawn(move || accept_loop(route, tx, &shared))?;
        }
        drop(tx);
        let connector = Arc::clone(&shared);
        thread::Builder::new()
            .name("forward-connect".into())
            .spawn(move || connect_loop(rx, &connector))?;
        Ok(Self { shared, wake })
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        // Each listener's thread sees the flag once its `accept` returns.
        for addr in &self.wake {
            let _ = TcpStream::connect_timeout(addr, Duration::from_millis(200));
        }
        let live: Vec<_> = {
            let live = self.shared.live.lock().unwrap_or_else(|e| e.into_inner());
            live.values().filter_map(Weak::upgrade).collect()
        };
        for connection in live {
            connection.abort();
        }
        if self.shared.verbose {
            let s = &self.shared;
            s.say(&format!(
                "xen-runner: forwarding: {} connections; {} waited for QEMU's accept queue, at \
                 most {:.1} ms\n",
                s.connections.load(Ordering::Relaxed),
                s.waited.load(Ordering::Relaxed),
                s.longest_wait_us.load(Ordering::Relaxed) as f64 / 1000.0
            ));
        }
    }
}

/// Accepts the user's connections on one port and queues them for the connecting thread.
fn accept_loop(route: Route, tx: Sender<Accepted>, shared: &Shared) {
    let Route { listener, qemu_port } = route;
    let listening = listener.local_addr().ok();
    loop {
        let accepted = listener.accept();
        if shared.stopping() {
            return;
        }
        match accepted {
            Ok((client, _)) => {
                let listening = listening.unwrap_or_else(|| (Ipv4Addr::UNSPECIFIED, 0).into());
                if tx.send(Accepted { client, listening, qemu_port }).is_err() {
                    return;
                }
            }
            Err(e) if is_transient(&e) => {}
            Err(e) => {
                // Out of file descriptors, say: the connection waits in the backlog.
                let at = listening.map_or_else(String::new, |a| a.to_string());
                shared.warn_once(&format!("accept {at}"), &format!("forward {at}: accept: {e}"));
                thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Errors of `accept` that concern one connection only.
fn is_transient(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::ConnectionAborted | io::ErrorKind::Interrupted)
        || e.raw_os_error() == Some(libc::EPROTO)
}

/// Connects each accepted connection to QEMU's port, one at a time, and starts copying.
fn connect_loop(rx: Receiver<Accepted>, shared: &Arc<Shared>) {
    loop {
        let accepted = match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(accepted) => accepted,
            Err(RecvTimeoutError::Timeout) if !shared.stopping() => continue,
            Err(_) => return,
        };
        if shared.stopping() {
            // Close what is still queued, and end.
            drop(accepted);
            while rx.try_recv().is_ok() {}
            return;
        }
        let Some(upstream) = connect_upstream(&accepted, shared) else {
            continue; // the client's connection closes here
        };
        shared.connections.fetch_add(1, Ordering::Relaxed);
        copy_both_ways(accepted.client, upstream, shared);
    }
}

/// Waits until slirp's accept queue on `port` is empty (at most [`QUEUE_WAIT`]); returns how
/// long it waited, `None` when the queue was empty at once.
fn wait_for_empty_queue(port: u16, shared: &Shared) -> Option<Duration> {
    let start = Instant::now();
    let mut waited = false;
    while matches!(queued(port), Some(n) if n > 0)
        && start.elapsed() < QUEUE_WAIT
        && !shared.stopping()
    {
        waited = true;
        thread::sleep(QUEUE_POLL);
    }
    waited.then(|| start.elapsed())
}

/// Connects to QEMU's port for one accepted connection, once slirp's queue is empty,
/// retrying while nothing listens there yet.
fn connect_upstream(accepted: &Accepted, shared: &Shared) -> Option<TcpStream> {
    let port = accepted.qemu_port;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let start = Instant::now();
    loop {
        if let Some(waited) = wait_for_empty_queue(port, shared) {
            shared.waited.fetch_add(1, Ordering::Relaxed);
            shared.longest_wait_us.fetch_max(waited.as_micros() as u64, Ordering::Relaxed);
        }
        match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(stream) => return Some(stream),
            Err(e)
                if e.kind() == io::ErrorKind::ConnectionRefused
                    && start.elapsed() < LISTEN_WAIT
                    && !shared.stopping() =>
            {
                thread::sleep(LISTEN_RETRY);
            }
            Err(e) => {
                if !shared.stopping() {
                    shared.warn_once(
                        &format!("connect {port}"),
                        &format!(
                            "forward {}: cannot reach QEMU's end on {addr} ({e}); closing the \
                             connections it cannot carry",
                            accepted.listening
                        ),
                    );
                }
                return None;
            }
        }
    }
}

/// Starts the two threads that copy `client` and `upstream` into each other.
fn copy_both_ways(client: TcpStream, upstream: TcpStream, shared: &Arc<Shared>) {
    // Each read is passed on at once, as the client wrote it.
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let connection = Arc::new(Connection { client, upstream, id, shared: Arc::clone(shared) });
    shared.live.lock().unwrap_or_else(|e| e.into_inner()).insert(id, Arc::downgrade(&connection));
    if shared.stopping() {
        connection.abort();
    }
    let back = Arc::clone(&connection);
    let spawned = thread::Builder::new()
        .name("forward-copy".into())
        .spawn(move || copy(&back.upstream, &back.client, &back))
        .and_then(|_| {
            let there = Arc::clone(&connection);
            thread::Builder::new()
                .name("forward-copy".into())
                .spawn(move || copy(&there.client, &there.upstream, &there))
        });
    if let Err(e) = spawned {
        shared.warn_once(
            "spawn",
            &format!("forwarding: cannot start a thread ({e}); closing a connection"),
        );
        connection.abort();
    }
}

/// Copies `from` into `to` until `from` ends, then ends `to`'s sending side (a half-close
/// passed on). A failure on either side ends the whole connection.
fn copy(mut from: &TcpStream, mut to: &TcpStream, connection: &Connection) {
    let mut buffer = vec![0; BUFFER];
    loop {
        match from.read(&mut buffer) {
            Ok(0) => {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => {
                if to.write_all(&buffer[..n]).is_err() {
                    connection.abort();
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                connection.abort();
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines of a real `/proc/net/tcp`: a listener on 127.0.0.1:39313 (0x9991) with two
    /// connections in its accept queue, one on 0.0.0.0:22 with none, and an established
    /// connection from port 39313's peer with bytes unread.
    const TCP: &str = "\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:9991 00000000:0000 0A 00000000:00000002 00:00000000 00000000     0        0 41234 1 0000000000000000 100 0 0 10 0
   1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 20321 1 0000000000000000 100 0 0 10 0
   2: 0100007F:D2F0 0100007F:9991 01 00000000:0000001C 00:00000000 00000000     0        0 41240 1 0000000000000000 20 4 30 10 -1
";

    /// A line of `/proc/net/tcp6`: a listener on [::]:8080 (0x1F90) with 0x11 queued.
    const TCP6: &str = "\
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000011 00:00000000 00000000  1000        0 5531 1 0000000000000000 100 0 0 10 0
";

    #[test]
    fn reads_a_listener_s_accept_queue() {
        assert_eq!(accept_queue(TCP.lines(), 39313), Some(2));
        assert_eq!(accept_queue(TCP.lines(), 22), Some(0));
        assert_eq!(accept_queue(TCP6.lines(), 8080), Some(17));
    }

    #[test]
    fn only_listeners_count() {
        // Port 53872 (0xD2F0) is a connection's local port, not a listener's.
        assert_eq!(accept_queue(TCP.lines(), 53872), None);
        assert_eq!(accept_queue(TCP.lines(), 8080), None);
        assert_eq!(accept_queue("".lines(), 22), None);
        assert_eq!(accept_queue("garbage\n 0: x y 0A z\n".lines(), 22), None);
    }

    #[test]
    fn takes_the_longest_queue_on_a_port() {
        let listener =
            "   9: 0200007F:0016 00000000:0000 0A 00000000:00000005 00:00000000 00000000     0        0 2 1 0 100 0 0 10 0";
        let mut lines: Vec<&str> = TCP.lines().collect();
        lines.insert(3, listener);
        assert_eq!(accept_queue(lines, 22), Some(5));
    }

    #[test]
    fn stops_at_the_first_socket_that_does_not_listen() {
        // A listener after a connection is not one Linux would list: not read.
        let late =
            "   9: 0100007F:1F90 00000000:0000 0A 00000000:00000003 00:00000000 00000000     0        0 2 1 0 100 0 0 10 0";
        assert_eq!(accept_queue(TCP.lines().chain([late]), 8080), None);
    }

    #[test]
    fn reads_this_machine_s_table() {
        // A listener of our own, with one connection not yet accepted.
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        if std::fs::metadata("/proc/net/tcp").is_err() {
            return; // not Linux
        }
        assert_eq!(queued(port), Some(0));
        let _client = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
        let start = Instant::now();
        while queued(port) != Some(1) && start.elapsed() < Duration::from_secs(5) {
            thread::sleep(QUEUE_POLL);
        }
        assert_eq!(queued(port), Some(1));
        drop(listener.accept().unwrap());
        assert_eq!(queued(port), Some(0));
    }

    /// An echo server standing in for QEMU's end; returns its port.
    fn echo_server() -> u16 {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                thread::spawn(move || {
                    let mut data = Vec::new();
                    // Read to the client's half-close, then answer and close.
                    if stream.read_to_end(&mut data).is_ok() {
                        let _ = stream.write_all(&data);
                    }
                });
            }
        });
        port
    }

    fn proxy_to(qemu_port: u16) -> (Proxy, u16) {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        (Proxy::start(vec![Route { listener, qemu_port }], false).unwrap(), port)
    }

    #[test]
    fn copies_both_ways_with_half_closes() {
        let (_proxy, port) = proxy_to(echo_server());
        let clients: Vec<_> = (0..16)
            .map(|i| {
                thread::spawn(move || {
                    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
                    let sent: Vec<u8> = (0..100_000 + i).map(|b| b as u8).collect();
                    stream.write_all(&sent).unwrap();
                    stream.shutdown(Shutdown::Write).unwrap();
                    let mut got = Vec::new();
                    stream.read_to_end(&mut got).unwrap();
                    assert_eq!(got, sent);
                })
            })
            .collect();
        for client in clients {
            client.join().unwrap();
        }
    }

    #[test]
    fn a_connection_nothing_can_carry_is_closed_not_held() {
        // QEMU's end accepts and closes at once, as before the guest listens.
        let closing = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let qemu_port = closing.local_addr().unwrap().port();
        thread::spawn(move || {
            for stream in closing.incoming() {
                drop(stream);
            }
        });
        let (_proxy, port) = proxy_to(qemu_port);
        let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = stream.write_all(b"GET / HTTP/1.1\r\n\r\n");
        let mut got = Vec::new();
        // Closed or reset, but not held until the read times out.
        if let Err(e) = stream.read_to_end(&mut got) {
            assert_ne!(e.kind(), io::ErrorKind::WouldBlock, "the connection was held");
        }
        assert!(got.is_empty(), "{got:?}");
    }

    #[test]
    fn stopping_closes_the_listener_and_the_connections() {
        let (proxy, port) = proxy_to(echo_server());
        let mut open = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
        open.write_all(b"partial").unwrap();
        // Let it reach the echo server, which waits for the half-close.
        thread::sleep(Duration::from_millis(200));
        drop(proxy);
        open.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut got = Vec::new();
        assert!(open.read_to_end(&mut got).is_ok(), "the connection was closed");
        // The port is free again once the listener's thread has gone.
        let start = Instant::now();
        while TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_err() {
            assert!(start.elapsed() < Duration::from_secs(5), "the listener stays open");
            thread::sleep(Duration::from_millis(10));
        }
    }
}
