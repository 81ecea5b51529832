//! Xenstore from a program: `basics` (its id and name, a key from dom0, a key for dom0, a
//! watch, a transaction), `threads` (16 threads at once), `hostile` (odd and bad data, and a
//! dom0 that stops answering for a while). The dom0 side is the test's driver script.

#[cfg(target_os = "xen")]
fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    match mode.as_str() {
        "basics" => xen::basics(),
        "threads" => xen::threads(),
        "hostile" => xen::hostile(),
        "dom0" => xen::dom0(),
        other => panic!("unknown mode {other:?}"),
    }
}

#[cfg(not(target_os = "xen"))]
fn main() {
    println!("xen only");
}

#[cfg(target_os = "xen")]
mod xen {
    use std::io::ErrorKind;
    use std::os::xen::{domain, xenstore};
    use std::time::Duration;

    /// Waits until `path` exists, through a watch; returns its value.
    fn wait_for(path: &str) -> Vec<u8> {
        let watch = xenstore::Watch::new(path).unwrap();
        loop {
            match xenstore::read(path) {
                Ok(value) => return value,
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => panic!("reading {path}: {e}"),
            }
            watch.next_timeout(Duration::from_secs(60)).unwrap().expect("dom0 never wrote it");
        }
    }

    pub fn basics() {
        let id = domain::id().unwrap();
        let name = domain::name().unwrap();
        println!("domid {id}");
        println!("name {name}");
        let path = xenstore::read_string(&format!("/local/domain/{id}/name")).unwrap();
        assert_eq!(path, name, "absolute and relative paths agree");
        println!("ready");
        let from_dom0 = wait_for("data/from-dom0");
        println!("from dom0: {}", String::from_utf8_lossy(&from_dom0));
        xenstore::write("data/from-guest", "written by the guest").unwrap();
        println!("wrote data/from-guest");
        let mut names = xenstore::list("data").unwrap();
        names.sort();
        println!("data has {names:?}");

        // A watch fires once when set, then on each change dom0 makes.
        let watch = xenstore::Watch::new("data/ping").unwrap();
        let first = watch.next_timeout(Duration::from_secs(30)).unwrap();
        println!("first event {first:?}");
        println!("waiting for ping");
        loop {
            let path = watch.next_timeout(Duration::from_secs(60)).unwrap().expect("no ping came");
            if let Ok(value) = xenstore::read_string("data/ping") {
                println!("watch fired: {path} = {value}");
                break;
            }
        }
        drop(watch);

        // Transactions: 4 threads add 10 each to one counter; none is lost.
        xenstore::write("data/counter", "0").unwrap();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..10 {
                        xenstore::transaction(|tx| {
                            let n: u32 = tx.read_string("data/counter")?.parse().unwrap();
                            tx.write("data/counter", (n + 1).to_string())
                        })
                        .unwrap();
                    }
                });
            }
        });
        println!("counter {}", xenstore::read_string("data/counter").unwrap());
        // An error inside the body abandons the transaction.
        let failed = xenstore::transaction(|tx| {
            tx.write("data/counter", "999")?;
            tx.read("data/does-not-exist")
        });
        assert_eq!(failed.unwrap_err().kind(), ErrorKind::NotFound);
        println!("after abandoned transaction {}", xenstore::read_string("data/counter").unwrap());
        xenstore::remove("data/counter").unwrap();
        assert_eq!(xenstore::read("data/counter").unwrap_err().kind(), ErrorKind::NotFound);
        println!("done");
    }

    /// As dom0 straight from Xen there is no xenstore: clear errors, no hang.
    pub fn dom0() {
        println!("read: {:?}", xenstore::read("domid").unwrap_err().kind());
        println!("watch: {:?}", xenstore::Watch::new("data").unwrap_err().kind());
        println!("domid: {:?}", domain::id().unwrap_err().kind());
        println!("shutdown requests: {:?}", domain::shutdown_requests().unwrap_err().kind());
    }

    pub fn threads() {
        let id = domain::id().unwrap();
        std::thread::scope(|s| {
            for t in 0..16 {
                s.spawn(move || {
                    for round in 0..25 {
                        let key = format!("data/t{t}");
                        let value = format!("thread {t} round {round}");
                        xenstore::write(&key, &value).unwrap();
                        assert_eq!(xenstore::read_string(&key).unwrap(), value);
                        assert_eq!(domain::id().unwrap(), id);
                    }
                });
            }
        });
        let names = xenstore::list("data").unwrap();
        println!("16 threads done, {} keys", names.iter().filter(|n| n.starts_with('t')).count());
    }

    pub fn hostile() {
        let kind = |r: std::io::Result<Vec<u8>>| r.map(|_| ()).unwrap_err().kind();
        println!("missing: {:?}", kind(xenstore::read("data/missing")));
        println!("long path: {:?}", kind(xenstore::read(&"a/".repeat(2000))));
        println!("nul in path: {:?}", kind(xenstore::read("data/a\0b")));
        println!("empty path: {:?}", kind(xenstore::read("")));
        println!("big value: {:?}", xenstore::write("data/big", vec![b'x'; 5000]).unwrap_err().kind());
        xenstore::write("data/max", vec![b'y'; 2000]).unwrap();
        println!("2000-byte value: {} bytes back", xenstore::read("data/max").unwrap().len());
        // Within the protocol's limit, but over xenstored's quota for one node.
        println!("4000-byte value: {:?}", xenstore::write("data/max", vec![b'y'; 4000]).unwrap_err().kind());
        println!("ready");
        let binary = {
            let watch = xenstore::Watch::new("data/binary").unwrap();
            loop {
                if let Ok(v) = xenstore::read("data/binary") {
                    break v;
                }
                watch.next_timeout(Duration::from_secs(60)).unwrap().expect("no binary value came");
            }
        };
        println!("binary bytes: {binary:?}");
        // dom0 filled data/many before: more names than one reply holds.
        let mut many = xenstore::list("data/many").unwrap();
        many.sort();
        println!("big folder: {} names, {} to {}", many.len(), many[0], many[many.len() - 1]);
        println!("binary as text: {:?}", xenstore::read_string("data/binary").unwrap_err().kind());
        println!(
            "dom0's key: {:?}",
            xenstore::write("/local/domain/0/not-yours", "x").unwrap_err().kind()
        );
        println!("other domain's tree: {:?}", kind(xenstore::read("/local/domain/0/xen-test-secret")));
        // dom0 stops xenstored now; a call times out instead of hanging.
        xenstore::set_timeout(Some(Duration::from_secs(2)));
        println!("stop xenstored");
        std::thread::sleep(Duration::from_secs(2));
        let started = std::time::Instant::now();
        let stalled = xenstore::read("domid");
        println!(
            "stalled read: {:?} after {} s",
            stalled.map(|_| ()).map_err(|e| e.kind()),
            started.elapsed().as_secs()
        );
        println!("resume xenstored");
        xenstore::set_timeout(Some(Duration::from_secs(30)));
        let watch = xenstore::Watch::new("data/resumed").unwrap();
        loop {
            if xenstore::read("data/resumed").is_ok() {
                break;
            }
            watch.next_timeout(Duration::from_secs(60)).unwrap().expect("xenstored did not come back");
        }
        println!("after resume: domid {}", domain::id().unwrap());
    }
}
