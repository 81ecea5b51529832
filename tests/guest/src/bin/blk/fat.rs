//! `blk fat MODE`: a FAT filesystem on a virtual disk through `std::fs`
//! (`xen.mount=xvda:/mnt`), for the harness's domU jobs on images the host made with `mkfs.fat`
//! and filled with `mcopy` (tests/harness/tests/guest/fat.rs):
//!
//!     fat write      reads the host's files; writes, appends, renames, removes, makes
//!                    directories, syncs; the error kinds
//!     fat verify     a new boot on the same image: reads what `write` left, exactly
//!     fat readonly   an image attached read-only: reads work, every write is refused
//!     fat garbage    an image with no FAT volume: the mount fails, the program runs
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

mod xen {
    use super::{BIG, filled};
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

    pub fn main() {
        match std::env::args().nth(2).as_deref() {
            Some("write") => write(),
            Some("verify") => verify(),
            Some("readonly") => readonly(),
            Some("garbage") => garbage(),
            _ => {
                eprintln!("usage: blk fat write|verify|readonly|garbage");
                std::process::exit(2);
            }
        }
    }
}

pub fn main() {
    xen::main()
}
