//! `blk fat MODE`: a FAT filesystem on a virtual disk through `std::fs`
//! (`xen.mount=xvda:/mnt`), for the harness's domU jobs on images the host made with `mkfs.fat`
//! and filled with `mcopy` (tests/harness/tests/guest/fat.rs):
//!
//!     fat write      reads the host's files; writes, appends, renames, removes, makes
//!                    directories, syncs; the error kinds
//!     fat verify     a new boot on the same image: reads what `write` left, exactly
//!     fat readonly   an image attached read-only: reads work, every write is refused
//!     fat garbage    an image with no FAT volume: the mount fails, the program runs
//!     fat full       a small volume written until it is full: `StorageFull` at the write
//!                    that does not fit, the bytes before it kept
//!     fat full_verify a new boot: what fit is there
//!     fat huge       a file larger than the guest's memory written, synced, read back
//!     fat huge_verify a new boot: the file read back
//!     fat exit_busy  two threads write a file each in a loop; main calls `exit(5)` after 2 s:
//!                    the guest ends at once, with both files written back
//!     fat exit_busy_verify a new boot: both files hold only their thread's bytes
//!     fat abort      makes a directory and a file, a thread writes in a loop, then abort():
//!                    what write() returned survives
//!     fat abort_verify a new boot: the directory, the file and the writer's bytes are there
//!
//! The host's files: `/hello.txt` ("hello from the host\n"), `/dir/data.bin` (200,000 bytes of
//! `pattern(7)`), `/todelete.txt`, `/Long File Name.txt` ("long\n").

/// The pattern's byte at `offset`: one splitmix64 value per 8-byte word.
fn pattern(seed: u64, offset: u64) -> u8 {
    let mut z = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (offset / 8);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    z.to_le_bytes()[(offset % 8) as usize]
}

fn filled(seed: u64, len: usize) -> Vec<u8> {
    (0..len as u64).map(|i| pattern(seed, i)).collect()
}

/// The big file `write` leaves: not a whole number of clusters.
const BIG: usize = 3 * 1024 * 1024 + 123;

/// The file `huge` writes: half again the guest's 64 MiB.
const HUGE_MIB: u64 = 96;

/// Fills `buf` with the words of `huge.bin` from byte `offset` (a multiple of 8): word `i` is a
/// splitmix64 value of `i` (cheaper than [`pattern`] for 96 MiB; the harness's is the same).
fn huge_words(offset: u64, buf: &mut [u8]) {
    for (i, word) in buf.chunks_mut(8).enumerate() {
        let mut z = (offset / 8 + i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        word.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes()[..word.len()]);
    }
}

mod xen {
    use super::{BIG, HUGE_MIB, filled, huge_words};
    use std::fs::{self, File, OpenOptions};
    use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};

    fn kind<T>(r: std::io::Result<T>) -> Option<ErrorKind> {
        r.err().map(|e| e.kind())
    }

    fn same(what: &str, got: &[u8], want: &[u8]) {
        if got == want {
            println!("{what}: ok");
        } else {
            let at = got.iter().zip(want).position(|(a, b)| a != b).unwrap_or(got.len().min(want.len()));
            println!("{what}: differs at byte {at} (lengths {} and {})", got.len(), want.len());
        }
    }

    fn names(dir: &str) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let slash = if e.file_type().unwrap().is_dir() { "/" } else { "" };
                format!("{}{slash}", e.file_name().to_str().unwrap())
            })
            .collect();
        names.sort();
        names
    }

    fn the_hosts_files() {
        println!("/mnt: {:?}", names("/mnt"));
        same("hello.txt", &fs::read("/mnt/hello.txt").unwrap(), b"hello from the host\n");
        same("data.bin", &fs::read("/mnt/dir/data.bin").unwrap(), &filled(7, 200_000));
        same("long name", &fs::read("/mnt/Long File Name.txt").unwrap(), b"long\n");
        same("any case", &fs::read("/mnt/HELLO.TXT").unwrap(), b"hello from the host\n");
        let meta = fs::metadata("/mnt/dir/data.bin").unwrap();
        println!("data.bin: len {}, file {}, dir {}", meta.len(), meta.is_file(), meta.is_dir());
        println!("/mnt/dir is a dir: {}", fs::metadata("/mnt/dir").unwrap().is_dir());
        let modified = meta.modified().unwrap().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        // mcopy keeps the host file's time; the harness made it after 2020.
        println!("modified after 2020: {}", modified > 1_577_836_800);
    }

    fn write() {
        the_hosts_files();
        fs::create_dir_all("/mnt/out/a/b/c").unwrap();
        let big = filled(8, BIG);
        let mut f = File::create("/mnt/out/big.bin").unwrap();
        for piece in big.chunks(100_000) {
            f.write_all(piece).unwrap();
        }
        f.sync_all().unwrap();
        drop(f);
        println!("big written");
        fs::write("/mnt/out/small.txt", b"written by the guest\n").unwrap();
        fs::rename("/mnt/out/small.txt", "/mnt/out/a/renamed.txt").unwrap();
        let mut f = OpenOptions::new().append(true).open("/mnt/hello.txt").unwrap();
        f.write_all(b"and appended by the guest\n").unwrap();
        f.sync_data().unwrap();
        drop(f);
        fs::remove_file("/mnt/todelete.txt").unwrap();
        let mut f = OpenOptions::new().read(true).write(true).create(true).open("/mnt/out/patched.bin").unwrap();
        f.write_all(&[1u8; 10_000]).unwrap();
        f.seek(SeekFrom::Start(5000)).unwrap();
        f.write_all(b"PATCH").unwrap();
        f.seek(SeekFrom::Start(4998)).unwrap();
        let mut back = [0u8; 9];
        f.read_exact(&mut back).unwrap();
        same("patched, read back", &back, b"\x01\x01PATCH\x01\x01");
        f.set_len(6000).unwrap();
        drop(f);
        // Never synced: closing writes it, exiting flushes the disk.
        fs::write("/mnt/out/unsynced.txt", b"closed, not synced\n").unwrap();
        same("big read back", &fs::read("/mnt/out/big.bin").unwrap(), &big);
        println!("/mnt/out: {:?}", names("/mnt/out"));
        errors();
        println!("done");
    }

    fn errors() {
        println!("missing: {:?}", kind(File::open("/mnt/missing.txt")));
        println!("missing dir: {:?}", kind(File::create("/mnt/nodir/x")));
        println!("create_new: {:?}", kind(File::create_new("/mnt/hello.txt")));
        println!("create_dir: {:?}", kind(fs::create_dir("/mnt/out")));
        println!("write a dir: {:?}", kind(File::create("/mnt/out")));
        println!("below a file: {:?}", kind(File::open("/mnt/hello.txt/x")));
        println!("remove a full dir: {:?}", kind(fs::remove_dir("/mnt/out")));
        println!("remove_file a dir: {:?}", kind(fs::remove_file("/mnt/out")));
        println!("read_dir a file: {:?}", kind(fs::read_dir("/mnt/hello.txt")));
        println!("across mounts: {:?}", kind(fs::rename("/mnt/hello.txt", "/tmp/hello.txt")));
        println!("remove the mount: {:?}", kind(fs::remove_dir("/mnt")));
        fs::create_dir("/mnt/gone").unwrap();
        fs::write("/mnt/gone/f", b"x").unwrap();
        fs::remove_dir_all("/mnt/gone").unwrap();
        println!("remove_dir_all: {:?}", kind(fs::metadata("/mnt/gone")));
    }

    fn verify() {
        println!("/mnt: {:?}", names("/mnt"));
        println!("/mnt/out: {:?}", names("/mnt/out"));
        println!("/mnt/out/a: {:?}", names("/mnt/out/a"));
        println!("c is a dir: {}", fs::metadata("/mnt/out/a/b/c").unwrap().is_dir());
        same("big", &fs::read("/mnt/out/big.bin").unwrap(), &filled(8, BIG));
        same("renamed", &fs::read("/mnt/out/a/renamed.txt").unwrap(), b"written by the guest\n");
        same("appended", &fs::read("/mnt/hello.txt").unwrap(), b"hello from the host\nand appended by the guest\n");
        let mut want = vec![1u8; 6000];
        want[5000..5005].copy_from_slice(b"PATCH");
        same("patched", &fs::read("/mnt/out/patched.bin").unwrap(), &want);
        same("unsynced", &fs::read("/mnt/out/unsynced.txt").unwrap(), b"closed, not synced\n");
        println!("deleted: {:?}", kind(fs::metadata("/mnt/todelete.txt")));
        same("data.bin", &fs::read("/mnt/dir/data.bin").unwrap(), &filled(7, 200_000));
        println!("done");
    }

    fn readonly() {
        the_hosts_files();
        println!("create: {:?}", kind(File::create("/mnt/new.txt")));
        println!("open to write: {:?}", kind(OpenOptions::new().write(true).open("/mnt/hello.txt")));
        println!("append: {:?}", kind(OpenOptions::new().append(true).open("/mnt/hello.txt")));
        println!("create_dir: {:?}", kind(fs::create_dir("/mnt/newdir")));
        println!("remove_file: {:?}", kind(fs::remove_file("/mnt/todelete.txt")));
        println!("rename: {:?}", kind(fs::rename("/mnt/hello.txt", "/mnt/x.txt")));
        println!("sync: {:?}", File::open("/mnt/hello.txt").unwrap().sync_all().map_err(|e| e.kind()));
        println!("done");
    }

    fn garbage() {
        println!("/mnt: {:?}", kind(fs::read_dir("/mnt")));
        fs::write("/tmp/still", b"running").unwrap();
        println!("still running: {}", fs::read("/tmp/still").unwrap() == b"running");
        println!("done");
    }

    /// Writes until the volume is full, in pieces, as a program that checks each `write` would.
    fn full() {
        // One call with more than the volume holds: Linux's vfat gives ENOSPC and keeps what fit.
        println!("fs::write 3 MB: {:?}", kind(fs::write("/mnt/x.bin", filled(10, 3_000_000))));
        let kept = fs::metadata("/mnt/x.bin").unwrap().len() as usize;
        println!("x.bin kept over 1 MB: {}", kept > 1_000_000);
        same("x.bin", &fs::read("/mnt/x.bin").unwrap(), &filled(10, kept));
        fs::remove_file("/mnt/x.bin").unwrap();
        let data = filled(11, 4_000_000);
        let mut f = File::create("/mnt/full.bin").unwrap();
        let mut written = 0;
        let error = loop {
            match f.write(&data[written..written + 100_000]) {
                Ok(n) => written += n,
                Err(e) => break e,
            }
        };
        println!("full at write: {:?}", error.kind());
        println!("again: {:?}", kind(f.write(b"x")));
        println!("sync_all: {:?}", f.sync_all().map_err(|e| e.kind()));
        drop(f);
        println!("full.bin written {written}");
        println!("len matches: {}", fs::metadata("/mnt/full.bin").unwrap().len() == written as u64);
        same("full.bin read back", &fs::read("/mnt/full.bin").unwrap(), &data[..written]);
        println!("another file: {:?}", kind(fs::write("/mnt/y.bin", b"y")));
        fs::remove_file("/mnt/y.bin").unwrap();
        println!("done");
    }

    fn full_verify() {
        let len = fs::metadata("/mnt/full.bin").unwrap().len() as usize;
        println!("full.bin: {len} bytes");
        same("full.bin", &fs::read("/mnt/full.bin").unwrap(), &filled(11, len));
        println!("x.bin: {:?}", kind(fs::metadata("/mnt/x.bin")));
        println!("done");
    }

    /// Reads `huge.bin` back, comparing each MiB with what was written; returns a checksum
    /// (the wrapping sum of its words) or where it differed.
    fn read_huge() -> Result<u64, String> {
        let mut f = File::open("/mnt/huge.bin").map_err(|e| format!("open: {e}"))?;
        let (mut got, mut want) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
        let mut sum = 0u64;
        for mib in 0..HUGE_MIB {
            f.read_exact(&mut got).map_err(|e| format!("MiB {mib}: {e}"))?;
            huge_words(mib << 20, &mut want);
            if got != want {
                return Err(format!("MiB {mib} differs"));
            }
            sum = got.chunks(8).fold(sum, |s, w| s.wrapping_add(u64::from_le_bytes(w.try_into().unwrap())));
        }
        match f.read(&mut got) {
            Ok(0) => Ok(sum),
            other => Err(format!("past the end: {other:?}")),
        }
    }

    fn huge() {
        let mut f = File::create("/mnt/huge.bin").unwrap();
        let mut buf = vec![0u8; 1 << 20];
        for mib in 0..HUGE_MIB {
            huge_words(mib << 20, &mut buf);
            f.write_all(&buf).unwrap();
        }
        println!("sync_all: {:?}", f.sync_all().map_err(|e| e.kind()));
        drop(f);
        println!("huge.bin: {} bytes", fs::metadata("/mnt/huge.bin").unwrap().len());
        match read_huge() {
            Ok(sum) => println!("huge read back: checksum {sum:016x}"),
            Err(e) => println!("huge read back: differs: {e}"),
        }
        println!("done");
    }

    fn huge_verify() {
        println!("huge.bin: {} bytes", fs::metadata("/mnt/huge.bin").unwrap().len());
        match read_huge() {
            Ok(sum) => println!("huge after a reboot: checksum {sum:016x}"),
            Err(e) => println!("huge after a reboot: differs: {e}"),
        }
        println!("done");
    }

    /// Bytes each writer of [`writers`] has had `write_all` return for.
    static WRITTEN: [std::sync::atomic::AtomicU64; 2] = [const { std::sync::atomic::AtomicU64::new(0) }; 2];

    /// Starts `count` threads, thread `i` writing 64 KiB pieces of byte `0xa0 + i` to `path(i)`
    /// until a write fails.
    fn writers(count: usize, path: fn(usize) -> String) {
        for i in 0..count {
            let mut f = File::create(path(i)).unwrap();
            std::thread::spawn(move || {
                let piece = [0xa0 + i as u8; 65536];
                while f.write_all(&piece).is_ok() {
                    WRITTEN[i].fetch_add(piece.len() as u64, std::sync::atomic::Ordering::SeqCst);
                }
            });
        }
    }

    /// Whether the file at `path` holds only `byte`; prints its length.
    fn only(name: &str, path: &str, byte: u8) {
        let mut f = File::open(path).unwrap();
        let (mut buf, mut len, mut all) = (vec![0u8; 65536], 0u64, true);
        loop {
            let n = f.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            all &= buf[..n].iter().all(|&b| b == byte);
            len += n as u64;
        }
        println!("{name}: {len} bytes");
        println!("{name} only {byte:#x}: {all}");
    }

    fn busy_path(i: usize) -> String {
        format!("/mnt/busy{i}.bin")
    }

    fn exit_busy() {
        writers(2, busy_path);
        std::thread::sleep(std::time::Duration::from_secs(2));
        for (i, w) in WRITTEN.iter().enumerate() {
            println!("t{i} wrote {}", w.load(std::sync::atomic::Ordering::SeqCst));
        }
        println!("main calls exit");
        std::process::exit(5);
    }

    fn exit_busy_verify() {
        for i in 0..2 {
            only(&format!("busy{i}"), &busy_path(i), 0xa0 + i as u8);
        }
        println!("done");
    }

    fn abort() {
        fs::create_dir("/mnt/ab").unwrap();
        fs::write("/mnt/ab/kept.txt", b"written before abort\n").unwrap();
        writers(1, |_| "/mnt/ab/busy.bin".to_string());
        std::thread::sleep(std::time::Duration::from_secs(1));
        println!("t0 wrote {}", WRITTEN[0].load(std::sync::atomic::Ordering::SeqCst));
        println!("main calls abort");
        std::process::abort();
    }

    fn abort_verify() {
        println!("kept.txt: {:?}", fs::read("/mnt/ab/kept.txt").map(String::from_utf8));
        only("busy", "/mnt/ab/busy.bin", 0xa0);
        println!("done");
    }

    pub fn main() {
        match std::env::args().nth(2).as_deref() {
            Some("exit_busy") => exit_busy(),
            Some("exit_busy_verify") => exit_busy_verify(),
            Some("abort") => abort(),
            Some("abort_verify") => abort_verify(),
            Some("write") => write(),
            Some("verify") => verify(),
            Some("readonly") => readonly(),
            Some("garbage") => garbage(),
            Some("full") => full(),
            Some("full_verify") => full_verify(),
            Some("huge") => huge(),
            Some("huge_verify") => huge_verify(),
            _ => {
                eprintln!("usage: blk fat write|verify|readonly|garbage|full|full_verify|huge|huge_verify|exit_busy|exit_busy_verify|abort|abort_verify");
                std::process::exit(2);
            }
        }
    }
}

pub fn main() {
    xen::main()
}
