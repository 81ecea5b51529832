//! A virtual disk from a program (`std::os::xen::blk`), for the harness's domU jobs on disk
//! images the harness fills with a known pattern (`pattern(seed, offset)`, the same function
//! as the harness's):
//!
//!     blk write      checks the host's pattern (seed 1), writes seed 2 over 1 MiB .. 4 MiB +
//!                    512 bytes and the last sector, syncs, reads it back; the error cases
//!     blk verify     a new boot of the guest on the same disk: reads both patterns back;
//!                    opened read-only, a write fails and changes nothing
//!     blk readonly   a disk attached read-only (seed 3): reads work, writes fail
//!     blk sector4k   a disk with 4 KiB logical sectors (seed 4): 512-byte I/O is refused,
//!                    seed 5 is written over 8 KiB .. 76 KiB
//!     blk fat ...    a FAT volume on the disk through `std::fs` (`fat.rs`)
//!
//! (One program for both, so that the harness's dom0 carries one image more, not two.)

/// The pattern's byte at `offset`: one splitmix64 value per 8-byte word.
fn pattern(seed: u64, offset: u64) -> u8 {
    let mut z = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (offset / 8);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    z.to_le_bytes()[(offset % 8) as usize]
}

fn filled(seed: u64, offset: u64, len: usize) -> Vec<u8> {
    (0..len as u64).map(|i| pattern(seed, offset + i)).collect()
}

#[cfg(target_os = "xen")]
mod xen {
    use super::filled;
    use std::io::ErrorKind;
    use std::os::xen::blk::Disk;

    const MIB: u64 = 1 << 20;
    /// The written region of `write` and `verify`: not a whole number of pages, so the last
    /// request has a part page.
    const WRITTEN: (u64, usize) = (MIB, 3 * MIB as usize + 512);

    fn check(disk: &Disk, seed: u64, offset: u64, len: usize, what: &str) {
        let mut buf = vec![0u8; len];
        disk.read_at(&mut buf, offset).unwrap();
        if buf != filled(seed, offset, len) {
            let at = buf.iter().zip(filled(seed, offset, len)).position(|(a, b)| *a != b).unwrap();
            println!("{what}: differs at byte {}", offset + at as u64);
            std::process::exit(1);
        }
        println!("{what}: ok");
    }

    fn describe(disk: &Disk) {
        println!(
            "disk: {} bytes, sector size {}, read-only {}, flush {}",
            disk.len(),
            disk.sector_size(),
            disk.is_read_only(),
            disk.can_flush()
        );
    }

    fn kind<T>(r: std::io::Result<T>) -> Option<ErrorKind> {
        r.err().map(|e| e.kind())
    }

    fn write() {
        let disk = Disk::open("xvda").unwrap();
        describe(&disk);
        check(&disk, 1, 0, MIB as usize, "the host's pattern");
        let (offset, len) = WRITTEN;
        disk.write_at(&filled(2, offset, len), offset).unwrap();
        let last = disk.len() - 512;
        disk.write_at(&filled(2, last, 512), last).unwrap();
        disk.sync().unwrap();
        check(&disk, 2, offset, len, "written and read back");
        check(&disk, 2, last, 512, "the last sector");
        let mut one = [0u8; 512];
        println!("unaligned length: {:?}", kind(disk.read_at(&mut one[..100], 0)));
        println!("unaligned offset: {:?}", kind(disk.read_at(&mut one, 100)));
        println!("past the end: {:?}", kind(disk.read_at(&mut [0u8; 1024], last)));
        println!("again: {:?}", kind(Disk::open("xvda")));
        println!("missing: {:?}", kind(Disk::open("xvdb")));
        println!("not a disk name: {:?}", kind(Disk::open("sda")));
        println!("done");
    }

    fn verify() {
        let disk = Disk::open("xvda").unwrap();
        let (offset, len) = WRITTEN;
        check(&disk, 1, 0, offset as usize, "before the written part");
        check(&disk, 2, offset, len, "the written part");
        check(&disk, 1, offset + len as u64, MIB as usize, "after it");
        check(&disk, 2, disk.len() - 512, 512, "the last sector");
        drop(disk);
        let disk = Disk::open_read_only("xvda").unwrap();
        println!("read-only: {}", disk.is_read_only());
        println!("write: {:?}", kind(disk.write_at(&[0u8; 512], 0)));
        check(&disk, 1, 0, 4096, "unchanged");
        println!("done");
    }

    fn readonly() {
        let disk = Disk::open("xvda").unwrap();
        describe(&disk);
        check(&disk, 3, 0, 2 * MIB as usize, "read");
        println!("write: {:?}", kind(disk.write_at(&[0u8; 4096], 0)));
        println!("sync: {:?}", disk.sync().map_err(|e| e.kind()));
        println!("done");
    }

    fn sector4k() {
        let disk = Disk::open("xvda").unwrap();
        describe(&disk);
        let mut small = [0u8; 512];
        println!("512 bytes: {:?}", kind(disk.read_at(&mut small, 0)));
        println!("at 512: {:?}", kind(disk.read_at(&mut [0u8; 4096], 512)));
        check(&disk, 4, 0, 8192, "read");
        disk.write_at(&filled(5, 8192, 69632), 8192).unwrap();
        disk.sync().unwrap();
        check(&disk, 5, 8192, 69632, "written and read back");
        println!("done");
    }

    pub fn main() {
        match std::env::args().nth(1).as_deref() {
            Some("write") => write(),
            Some("verify") => verify(),
            Some("readonly") => readonly(),
            Some("sector4k") => sector4k(),
            Some("fat") => super::fat::main(),
            _ => {
                eprintln!("usage: blk write|verify|readonly|sector4k|fat MODE");
                std::process::exit(2);
            }
        }
    }
}

#[cfg(target_os = "xen")]
mod fat;

#[cfg(target_os = "xen")]
fn main() {
    xen::main()
}

#[cfg(not(target_os = "xen"))]
fn main() {
    // The pattern is what the harness writes; print a few bytes so both can be compared.
    println!("{:?}", filled(1, 0, 8));
    eprintln!("blk: only on Xen");
    std::process::exit(2);
}
