//! The FAT volume on volumes the crate formats in memory.

use super::super::blockcache::memdisk::MemDisk;
use super::*;
use hadris_fat::sync::format::{FatFormatOptions, FatTypeSelection, FatVolumeFormatter};

const MIB: usize = 1 << 20;

/// A FAT image of `len` bytes, formatted by the crate, with a label.
fn image(len: usize) -> Vec<u8> {
    image_of(len, FatTypeSelection::Auto)
}

fn image_of(len: usize, kind: FatTypeSelection) -> Vec<u8> {
    let disk = MemDisk::new(len, 512);
    let shared = disk.shared.clone();
    let cache = Arc::new(spin::Mutex::new(BlockCache::new(disk, false)));
    let options = FatFormatOptions::new(len as u64).volume_label("TEST").fat_type(kind);
    let vol = FatVolumeFormatter::format(CacheRef(cache.clone()), options).unwrap();
    drop(vol);
    cache.lock().write_back().unwrap();
    let bytes = shared.lock().unwrap().clone();
    bytes
}

fn mount(bytes: Vec<u8>, read_only: bool) -> (FatFs, std::sync::Arc<std::sync::Mutex<Vec<u8>>>) {
    set_clock(|| Time { secs: 1_767_225_600 + 3_600, nanos: 0 });
    let disk = MemDisk::from_bytes(bytes, 512);
    let shared = disk.shared.clone();
    (FatFs::mount(Box::new(disk), read_only).unwrap(), shared)
}

/// A xorshift64 generator: the same numbers every run.
fn xorshift(mut seed: u64) -> impl FnMut() -> u64 {
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    }
}

fn put(fs: &mut FatFs, path: &str, data: &[u8]) {
    let h = fs.open(path.as_bytes(), false, O_WRONLY | O_CREAT | O_TRUNC).unwrap();
    assert_eq!(fs.write(h, data), Ok(data.len()));
    fs.close(h).unwrap();
}

fn get(fs: &mut FatFs, path: &str) -> Result<Vec<u8>, Errno> {
    let h = fs.open(path.as_bytes(), false, O_RDONLY)?;
    let mut out = Vec::new();
    let mut buf = [0u8; 3000];
    loop {
        let n = fs.read(h, &mut buf)?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    fs.close(h)?;
    Ok(out)
}

fn names(fs: &FatFs, path: &str) -> Vec<String> {
    fs.read_dir(path.as_bytes()).unwrap().into_iter().map(|(n, d)| if d { n + "/" } else { n }).collect()
}

#[test]
fn files_survive_a_remount() {
    let (mut fs, shared) = mount(image(8 * MIB), false);
    let big: Vec<u8> = (0..300_000u32).map(|i| (i * 31 % 251) as u8).collect();
    fs.mkdir(b"dir").unwrap();
    fs.mkdir(b"dir/sub").unwrap();
    put(&mut fs, "dir/sub/big.bin", &big);
    put(&mut fs, "A Long Name.txt", b"hello");
    let h = fs.open(b"A Long Name.txt", false, O_WRONLY | O_APPEND).unwrap();
    fs.write(h, b", world").unwrap();
    fs.sync(h).unwrap();
    fs.close(h).unwrap();
    fs.sync_all().unwrap();
    let bytes = shared.lock().unwrap().clone();
    drop(fs);

    let (mut fs, _) = mount(bytes, false);
    assert_eq!(names(&fs, ""), ["A Long Name.txt", "dir/"]);
    assert_eq!(names(&fs, "dir"), ["sub/"]);
    assert_eq!(get(&mut fs, "dir/sub/big.bin").unwrap(), big);
    assert_eq!(get(&mut fs, "a long name.TXT").unwrap(), b"hello, world", "names match without case");
    let st = fs.stat(b"dir/sub/big.bin", false).unwrap();
    assert_eq!((st.size, st.is_dir), (300_000, false));
    assert!(fs.stat(b"dir", true).unwrap().is_dir);
    assert_eq!(st.modified.secs, 1_767_225_600 + 3_600, "the clock's time, to FAT's 2 s");
}

#[test]
fn seeks_holes_and_lengths() {
    let (mut fs, _) = mount(image(4 * MIB), false);
    let h = fs.open(b"f", false, O_RDWR | O_CREAT).unwrap();
    fs.write(h, b"abc").unwrap();
    assert_eq!(fs.seek(h, 10, Whence::Start), Ok(10));
    fs.write(h, b"z").unwrap();
    assert_eq!(fs.fstat(h).unwrap().size, 11);
    fs.seek(h, 0, Whence::Start).unwrap();
    let mut buf = [9u8; 20];
    assert_eq!(fs.read(h, &mut buf), Ok(11));
    assert_eq!(&buf[..11], b"abc\0\0\0\0\0\0\0z");
    fs.set_len(h, 2).unwrap();
    fs.close(h).unwrap();
    assert_eq!(get(&mut fs, "f").unwrap(), b"ab");
    // Reading while another handle wrote: the reader sees the new contents after close.
    let r = fs.open(b"f", false, O_RDONLY).unwrap();
    put(&mut fs, "f", b"longer contents");
    let mut buf = [0u8; 32];
    assert_eq!(fs.read(r, &mut buf), Ok(15));
    assert_eq!(fs.write(r, b"x"), Err(Errno::EBADF));
    assert_eq!(fs.set_len(r, 0), Err(Errno::EINVAL));
}

#[test]
fn errors_as_on_linux() {
    let (mut fs, _) = mount(image(4 * MIB), false);
    put(&mut fs, "file", b"x");
    fs.mkdir(b"d").unwrap();
    put(&mut fs, "d/inner", b"y");
    assert_eq!(fs.open(b"missing", false, O_RDONLY), Err(Errno::ENOENT));
    assert_eq!(fs.open(b"nodir/x", false, O_WRONLY | O_CREAT), Err(Errno::ENOENT));
    assert_eq!(fs.open(b"file", false, O_WRONLY | O_CREAT | O_EXCL), Err(Errno::EEXIST));
    assert_eq!(fs.open(b"d", false, O_WRONLY), Err(Errno::EISDIR));
    assert_eq!(fs.open(b"file/x", false, O_RDONLY), Err(Errno::ENOTDIR));
    assert_eq!(fs.open(b"file", true, O_RDONLY), Err(Errno::ENOTDIR));
    assert_eq!(fs.mkdir(b"d"), Err(Errno::EEXIST));
    assert_eq!(fs.mkdir(b"FILE"), Err(Errno::EEXIST));
    assert_eq!(fs.remove(b"d", true), Err(Errno::ENOTEMPTY));
    assert_eq!(fs.remove(b"d", false), Err(Errno::EISDIR));
    assert_eq!(fs.remove(b"file", true), Err(Errno::ENOTDIR));
    assert_eq!(fs.remove(b"", true), Err(Errno::EBUSY));
    assert_eq!(fs.read_dir(b"file"), Err(Errno::ENOTDIR));
    assert_eq!(fs.rename(b"d", b"d/inner2", false), Err(Errno::EINVAL));
    assert_eq!(fs.rename(b"file", b"d", false), Err(Errno::EISDIR));
    assert_eq!(fs.rename(b"missing", b"x", false), Err(Errno::ENOENT));
    let dh = fs.open(b"d", false, O_RDONLY).unwrap();
    assert_eq!(fs.read(dh, &mut [0u8; 4]), Err(Errno::EISDIR));
    // Rename replaces a file, moves into directories, changes case.
    put(&mut fs, "other", b"other");
    fs.rename(b"other", b"file", false).unwrap();
    assert_eq!(get(&mut fs, "file").unwrap(), b"other");
    fs.rename(b"file", b"d/moved", false).unwrap();
    fs.rename(b"d/moved", b"d/MOVED", false).unwrap();
    assert_eq!(names(&fs, "d"), ["MOVED", "inner"]);
    fs.remove(b"d/inner", false).unwrap();
    fs.remove(b"d/MOVED", false).unwrap();
    fs.remove(b"d", true).unwrap();
    assert_eq!(names(&fs, ""), Vec::<String>::new());
}

#[test]
fn read_only_writes_nothing() {
    let (mut fs, shared) = mount(image(4 * MIB), false);
    put(&mut fs, "keep", b"kept");
    fs.mkdir(b"d").unwrap();
    fs.sync_all().unwrap();
    let before = shared.lock().unwrap().clone();
    drop(fs);
    let (mut fs, shared) = mount(before.clone(), true);
    assert_eq!(get(&mut fs, "keep").unwrap(), b"kept");
    assert_eq!(fs.open(b"keep", false, O_WRONLY), Err(Errno::EROFS));
    assert_eq!(fs.open(b"new", false, O_WRONLY | O_CREAT), Err(Errno::EROFS));
    assert_eq!(fs.open(b"keep", false, O_WRONLY | O_CREAT | O_EXCL), Err(Errno::EEXIST));
    assert_eq!(fs.mkdir(b"e"), Err(Errno::EROFS));
    assert_eq!(fs.remove(b"keep", false), Err(Errno::EROFS));
    assert_eq!(fs.remove(b"d", true), Err(Errno::EROFS));
    assert_eq!(fs.rename(b"keep", b"k2", false), Err(Errno::EROFS));
    assert_eq!(fs.open(b"missing", false, O_RDONLY), Err(Errno::ENOENT));
    fs.sync_all().unwrap();
    assert!(*shared.lock().unwrap() == before, "a read-only volume's disk is never written");
}

#[test]
fn garbage_is_an_error_at_mount() {
    let disk = MemDisk::from_bytes(vec![0u8; MIB], 512);
    assert!(FatFs::mount(Box::new(disk), false).is_err());
    let mut next = xorshift(0x1234_5678_9abc_def0u64);
    let noise: Vec<u8> = (0..MIB).map(|_| next() as u8).collect();
    assert!(FatFs::mount(Box::new(MemDisk::from_bytes(noise, 512)), false).is_err());
}

/// Walks everything a volume holds, reading every file; errors are fine, panics not.
fn walk(fs: &mut FatFs, path: &str, depth: usize) {
    let Ok(entries) = fs.read_dir(path.as_bytes()) else { return };
    for (name, is_dir) in entries.into_iter().take(50) {
        let child = if path.is_empty() { name } else { alloc::format!("{path}/{name}") };
        let _ = fs.stat(child.as_bytes(), false);
        if is_dir && depth < 4 {
            walk(fs, &child, depth + 1);
        } else if !is_dir {
            let _ = get(fs, &child);
            let _ = fs.open(child.as_bytes(), false, O_RDWR).map(|h| {
                let _ = fs.write(h, b"more");
                let _ = fs.close(h);
            });
        }
    }
    let _ = fs.mkdir(alloc::format!("{path}/newdir").as_bytes());
}

#[test]
fn corrupt_volumes_give_errors_not_panics() {
    let (mut fs, shared) = mount(image(2 * MIB), false);
    fs.mkdir(b"a").unwrap();
    fs.mkdir(b"a/b").unwrap();
    for i in 0..20 {
        put(&mut fs, &alloc::format!("a/file number {i}.txt"), &vec![i as u8; 5000 + i * 300]);
    }
    put(&mut fs, "a/b/deep", &vec![7u8; 70_000]);
    fs.sync_all().unwrap();
    let good = shared.lock().unwrap().clone();
    drop(fs);
    let mut next = xorshift(0x9e37_79b9_7f4a_7c15u64);
    // Metadata lives in the first ~200 KiB: the boot sector, the FATs, the directories.
    for _ in 0..300 {
        let mut bytes = good.clone();
        for _ in 0..1 + next() % 40 {
            let at = (next() % (200 << 10)) as usize;
            bytes[at] = next() as u8;
        }
        if let Ok(mut fs) = FatFs::mount(Box::new(MemDisk::from_bytes(bytes, 512)), false) {
            walk(&mut fs, "", 0);
            let _ = fs.sync_all();
        }
    }
}

#[test]
fn times_convert_both_ways() {
    for secs in [
        days_from_civil(1980, 1, 1) * 86_400,
        1_767_225_600 + 3_601,
        days_from_civil(2107, 12, 31) * 86_400 + 86_399,
    ] {
        let t = Time { secs, nanos: 0 };
        assert_eq!(from_fat(to_fat(t)), t, "{secs}");
    }
    assert_eq!(days_from_civil(1970, 1, 1), 0);
    assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
    // Before 1980 FAT has no way to say it: the earliest date.
    assert_eq!(from_fat(to_fat(Time { secs: 0, nanos: 0 })).secs, days_from_civil(1980, 1, 1) * 86_400);
}

/// The pattern test files hold: a byte per offset, different for each seed.
fn pattern(seed: u64, offset: u64) -> u8 {
    let z = (offset / 8 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    (z >> (8 * (offset % 8)) ^ z >> 56) as u8
}

fn filled(seed: u64, from: u64, len: usize) -> Vec<u8> {
    (from..from + len as u64).map(|i| pattern(seed, i)).collect()
}

/// Checks that the volume is consistent, as `fsck.fat -n` would: every cluster in use is in
/// exactly one chain, that of a file or directory reachable from the root; a file's chain has
/// the clusters its size needs; both FATs agree; the free count (the kernel's, and FAT32's
/// FSInfo) is the number of clusters in no chain. Returns what is wrong.
fn check(fs: &mut FatFs) -> Result<(), String> {
    fs.sync_all().map_err(|e| format!("sync_all: {e:?}"))?;
    let geo = fs.geo;
    let mut owner = vec![None::<String>; geo.max_cluster as usize + 1];
    let mut boot = [0u8; 512];
    fs.cache.lock().read_at(0, &mut boot).unwrap();
    let mut dirs = vec![(String::from("/"), fs.vol.root_dir())];
    if geo.kind == Kind::Fat32 {
        let root = u32::from_le_bytes(boot[44..48].try_into().unwrap());
        chain(fs, &mut owner, "/", root, None)?;
    }
    while let Some((path, dir)) = dirs.pop() {
        let mut entries = dir.entries();
        while let Some(entry) = entries.next_entry() {
            let hadris_fat::sync::DirectoryEntry::Entry(entry) = entry.map_err(|e| format!("{path}: {e}"))?;
            let name = entry.name();
            if name == "." || name == ".." || entry.cluster().0 < 2 && entry.len() == 0 {
                continue;
            }
            let child = format!("{path}{name}");
            let size = (!entry.is_directory()).then_some(entry.len());
            chain(fs, &mut owner, &child, entry.cluster().0 as u32, size)?;
            if entry.is_directory() {
                dirs.push((format!("{child}/"), fs.vol.open_dir_entry(&entry).unwrap()));
            }
        }
    }
    let mut free = 0;
    let mut cache = fs.cache.lock();
    for cluster in 2..=geo.max_cluster {
        let value = geo.entry(&mut cache, cluster).unwrap();
        match (geo.link(value), &owner[cluster as usize]) {
            (Link::Free, None) => free += 1,
            (Link::Free, Some(who)) => return Err(format!("cluster {cluster} of {who} is marked free")),
            (_, None) if value != 0xff7 && value != 0xfff7 && value != 0x0fff_fff7 => {
                return Err(format!("cluster {cluster} is lost (in use, in no chain)"));
            }
            _ => {}
        }
    }
    let mut fats = vec![0u8; 2 * geo.fat_len as usize];
    cache.read_at(geo.fat_start, &mut fats).unwrap();
    if boot[16] == 2 && fats[..geo.fat_len as usize] != fats[geo.fat_len as usize..] {
        return Err(String::from("the two FATs differ"));
    }
    if geo.kind == Kind::Fat32 {
        let sector = u64::from(u16::from_le_bytes([boot[48], boot[49]])) * 512;
        let mut info = [0u8; 512];
        cache.read_at(sector, &mut info).unwrap();
        let hint = u32::from_le_bytes(info[488..492].try_into().unwrap());
        if hint != u32::MAX && u64::from(hint) != free {
            return Err(format!("FSInfo says {hint} free clusters, the FAT {free}"));
        }
    }
    drop(cache);
    let counted = fs.free_clusters().unwrap();
    if counted != free {
        return Err(format!("the kernel counts {counted} free clusters, the FAT has {free}"));
    }
    Ok(())
}

/// Follows one chain with the crate's own FAT reader, marking its clusters.
fn chain(fs: &FatFs, owner: &mut [Option<String>], who: &str, first: u32, size: Option<u64>) -> Result<(), String> {
    let mut reader = CacheRef(fs.cache.clone());
    let mut cluster = first;
    let mut count = 0u64;
    loop {
        let slot = owner.get_mut(cluster as usize).ok_or(format!("{who}: cluster {cluster} out of range"))?;
        if let Some(other) = slot {
            return Err(format!("cluster {cluster} is in {who} and in {other}"));
        }
        *slot = Some(String::from(who));
        count += 1;
        match fs.vol.fat().next_cluster(&mut reader, cluster as usize) {
            Ok(Some(next)) => cluster = next,
            Ok(None) => break,
            Err(e) => return Err(format!("{who}: {e}")),
        }
    }
    match size {
        Some(size) if count != size.div_ceil(fs.geo.cluster_size).max(1) => {
            Err(format!("{who}: {count} clusters for {size} bytes"))
        }
        _ => Ok(()),
    }
}

fn contents(fs: &mut FatFs, path: &str) -> Vec<u8> {
    get(fs, path).unwrap()
}

/// The volume mounted again from its disk's bytes; `shared` becomes the new disk's.
fn remount(fs: FatFs, shared: &mut std::sync::Arc<std::sync::Mutex<Vec<u8>>>) -> FatFs {
    drop(fs);
    let bytes = shared.lock().unwrap().clone();
    let (fs, new) = mount(bytes, false);
    *shared = new;
    fs
}

#[test]
fn the_checker_finds_lost_clusters_and_wrong_sizes() {
    let (mut fs, _) = mount(image(2 * MIB), false);
    put(&mut fs, "a", &filled(1, 0, 10_000));
    check(&mut fs).unwrap();
    let geo = fs.geo;
    // A cluster taken in the FAT (both copies) that no file owns.
    let lost = geo.max_cluster - 3;
    let (at, _) = (u64::from(lost) * 3 / 2, 0);
    let mut two = [0u8; 2];
    fs.cache.lock().read_at(geo.fat_start + at, &mut two).unwrap();
    if lost % 2 == 0 {
        two[0] = 0xff;
        two[1] |= 0x0f;
    } else {
        two[0] |= 0xf0;
        two[1] = 0xff;
    }
    for copy in 0..2 {
        fs.cache.lock().write_at(geo.fat_start + copy * geo.fat_len + at, &two).unwrap();
    }
    let err = check(&mut fs).unwrap_err();
    assert!(err.contains("lost"), "{err}");
    // A file whose size says fewer clusters than its chain has.
    let (mut fs, _) = mount(image(2 * MIB), false);
    put(&mut fs, "b", &filled(1, 0, 10_000));
    set_size(&mut fs, "b", 10);
    let err = check(&mut fs).unwrap_err();
    assert!(err.contains("clusters for 10 bytes"), "{err}");
}

#[test]
fn a_full_volume_is_enospc_at_the_write_that_does_not_fit() {
    let (mut fs, mut shared) = mount(image(2 * MIB), false);
    assert_eq!(fs.geo.kind, Kind::Fat12);
    let free = fs.free_clusters().unwrap();
    let room = free * fs.geo.cluster_size;
    let h = fs.open(b"full.bin", false, O_WRONLY | O_CREAT | O_TRUNC).unwrap();
    let mut written = 0u64;
    let piece = 100_000;
    let error = loop {
        match fs.write(h, &filled(3, written, piece)) {
            Ok(n) => {
                assert!(n == piece || written + n as u64 == room, "a short write only at the end");
                written += n as u64;
            }
            Err(e) => break e,
        }
    };
    assert_eq!(error, Errno::ENOSPC);
    assert_eq!(written, room, "every free cluster was used");
    assert_eq!(fs.write(h, b"x"), Err(Errno::ENOSPC), "and stays full");
    assert_eq!(fs.fstat(h).unwrap().size, written);
    fs.close(h).unwrap();
    check(&mut fs).unwrap();
    assert_eq!(fs.free_clusters(), Ok(0));
    // Nothing fits any more: a new file stays empty, an extension is refused.
    let h = fs.open(b"more.bin", false, O_WRONLY | O_CREAT).unwrap();
    assert_eq!(fs.write(h, &[1; 3000]), Err(Errno::ENOSPC));
    assert_eq!(fs.set_len(h, 5000), Err(Errno::ENOSPC));
    fs.close(h).unwrap();
    let mut fs = remount(fs, &mut shared);
    check(&mut fs).unwrap();
    assert!(contents(&mut fs, "full.bin") == filled(3, 0, written as usize), "what fit is there after a remount");
    assert_eq!(contents(&mut fs, "more.bin"), b"");
    // Removing the file gives its clusters back, and a single large write is cut to what fits.
    fs.remove(b"full.bin", false).unwrap();
    assert_eq!(fs.free_clusters(), Ok(free));
    let h = fs.open(b"x", false, O_WRONLY | O_CREAT | O_TRUNC).unwrap();
    assert_eq!(fs.write(h, &filled(4, 0, 3_000_000)), Ok(room as usize));
    assert_eq!(fs.write(h, &filled(4, room, 10)), Err(Errno::ENOSPC));
    fs.close(h).unwrap();
    check(&mut fs).unwrap();
    let mut fs = remount(fs, &mut shared);
    assert!(contents(&mut fs, "x") == filled(4, 0, room as usize));
    check(&mut fs).unwrap();
}

#[test]
fn failures_part_way_leave_the_volume_clean() {
    let (mut fs, _) = mount(image(2 * MIB), false);
    let room = fs.free_clusters().unwrap() * fs.geo.cluster_size;
    put(&mut fs, "keep", &filled(5, 0, 50_000));
    // A write past the end whose gap alone does not fit changes nothing.
    let h = fs.open(b"gap", false, O_RDWR | O_CREAT).unwrap();
    fs.write(h, b"start").unwrap();
    fs.seek(h, room as i64, Whence::Start).unwrap();
    assert_eq!(fs.write(h, b"end"), Err(Errno::ENOSPC));
    assert_eq!(fs.set_len(h, room), Err(Errno::ENOSPC));
    assert_eq!(fs.fstat(h).unwrap().size, 5);
    fs.close(h).unwrap();
    check(&mut fs).unwrap();
    assert_eq!(contents(&mut fs, "gap"), b"start");
    // Removing and renaming files while they are being written.
    let h = fs.open(b"gone", false, O_WRONLY | O_CREAT).unwrap();
    fs.write(h, &filled(6, 0, 70_000)).unwrap();
    fs.remove(b"gone", false).unwrap();
    assert_eq!(fs.write(h, b"more"), Err(Errno::ESTALE));
    let _ = fs.close(h);
    let h = fs.open(b"moving", false, O_WRONLY | O_CREAT).unwrap();
    fs.write(h, &filled(6, 0, 70_000)).unwrap();
    fs.rename(b"moving", b"moved", false).unwrap();
    let _ = fs.close(h);
    put(&mut fs, "over", b"replaced");
    let h = fs.open(b"keep", false, O_WRONLY | O_APPEND).unwrap();
    fs.write(h, &filled(5, 50_000, 30_000)).unwrap();
    fs.rename(b"over", b"keep", false).unwrap();
    let _ = fs.close(h);
    check(&mut fs).unwrap();
    assert!(contents(&mut fs, "moved") == filled(6, 0, 70_000));
    assert_eq!(contents(&mut fs, "keep"), b"replaced");
    // Directories on a full volume: ENOSPC, nothing lost.
    put(&mut fs, "keep", &[]);
    let h = fs.open(b"filler", false, O_WRONLY | O_CREAT).unwrap();
    while fs.write(h, &[9; 65536]).is_ok() {}
    fs.close(h).unwrap();
    assert_eq!(fs.mkdir(b"d"), Err(Errno::ENOSPC));
    check(&mut fs).unwrap();
}

#[test]
fn handles_follow_their_file_and_never_touch_what_takes_its_name() {
    let (mut fs, _) = mount(image(4 * MIB), false);
    // Replacing a file by a rename while a reader and an appender are open on it.
    put(&mut fs, "config.txt", b"old config v1\n");
    let reader = fs.open(b"config.txt", false, O_RDONLY).unwrap();
    let appender = fs.open(b"CONFIG.TXT", false, O_WRONLY | O_APPEND).unwrap();
    put(&mut fs, "config.tmp", b"NEW CONFIG v2\n");
    fs.rename(b"config.tmp", b"config.txt", false).unwrap();
    let mut buf = [0u8; 64];
    assert_eq!(fs.read(reader, &mut buf), Err(Errno::ESTALE));
    assert_eq!(fs.write(appender, b"appended by the old handle\n"), Err(Errno::ESTALE));
    assert_eq!(fs.fstat(appender).map(|s| s.size), Err(Errno::ESTALE));
    assert_eq!(fs.set_len(appender, 1), Err(Errno::ESTALE));
    assert_eq!(fs.sync(appender), Err(Errno::ESTALE));
    fs.close(reader).unwrap();
    fs.close(appender).unwrap();
    assert_eq!(get(&mut fs, "config.txt").unwrap(), b"NEW CONFIG v2\n");
    // Removed, then made again under the same name.
    put(&mut fs, "log.txt", b"0123456789");
    let old = fs.open(b"log.txt", false, O_WRONLY).unwrap();
    fs.seek(old, 2, Whence::Start).unwrap();
    fs.remove(b"log.txt", false).unwrap();
    put(&mut fs, "log.txt", b"fresh file");
    assert_eq!(fs.write(old, b"XX"), Err(Errno::ESTALE));
    assert_eq!(fs.set_len(old, 1), Err(Errno::ESTALE));
    fs.close(old).unwrap();
    assert_eq!(get(&mut fs, "log.txt").unwrap(), b"fresh file");
    // A handle on a renamed file goes on writing the renamed file, not the new one.
    put(&mut fs, "data.bin", b"AAAA");
    let h = fs.open(b"data.bin", false, O_RDWR).unwrap();
    fs.rename(b"data.bin", b"data.old", false).unwrap();
    put(&mut fs, "data.bin", b"BBBB");
    assert_eq!(fs.write(h, b"cc"), Ok(2));
    assert_eq!(fs.fstat(h).unwrap().size, 4);
    fs.close(h).unwrap();
    assert_eq!(get(&mut fs, "data.old").unwrap(), b"ccAA");
    assert_eq!(get(&mut fs, "data.bin").unwrap(), b"BBBB");
    // A file being streamed moves with its renamed directory.
    fs.mkdir(b"proj").unwrap();
    let h = fs.open(b"proj/notes.txt", false, O_WRONLY | O_CREAT).unwrap();
    fs.write(h, &filled(7, 0, 20_000)).unwrap();
    fs.rename(b"proj", b"proj.bak", true).unwrap();
    fs.mkdir(b"proj").unwrap();
    put(&mut fs, "proj/notes.txt", b"new notes");
    assert_eq!(fs.write(h, &filled(7, 20_000, 5_000)), Ok(5_000));
    fs.close(h).unwrap();
    assert_eq!(get(&mut fs, "proj/notes.txt").unwrap(), b"new notes");
    assert!(get(&mut fs, "proj.bak/notes.txt").unwrap() == filled(7, 0, 25_000));
    // Replaced by a rename of a directory over it: an emptied directory's handle is gone.
    fs.mkdir(b"empty").unwrap();
    let d = fs.open(b"empty", true, O_RDONLY).unwrap();
    fs.remove(b"empty", true).unwrap();
    fs.mkdir(b"empty").unwrap();
    assert_eq!(fs.fstat(d).map(|s| s.size), Err(Errno::ESTALE));
    fs.close(d).unwrap();
    check(&mut fs).unwrap();
}

#[test]
fn a_disk_failing_mid_write_is_eio_and_leaves_the_volume_clean() {
    let bytes = image(8 * MIB);
    set_clock(|| Time { secs: 1_767_225_600 + 3_600, nanos: 0 });
    let disk = MemDisk::from_bytes(bytes, 512);
    let writes_left = disk.writes_left.clone();
    let mut fs = FatFs::mount(Box::new(disk), false).unwrap();
    let h = fs.open(b"f", false, O_WRONLY | O_CREAT).unwrap();
    fs.write(h, &filled(7, 0, 1 << 20)).unwrap();
    // The cache writes back when full (4 MiB); the disk fails from its second write on.
    writes_left.store(1, std::sync::atomic::Ordering::SeqCst);
    let mut written = 1 << 20;
    let error = loop {
        match fs.write(h, &filled(7, written, 1 << 20)) {
            Ok(n) => written += n as u64,
            Err(e) => break e,
        }
    };
    assert_eq!(error, Errno::EIO);
    writes_left.store(u64::MAX, std::sync::atomic::Ordering::SeqCst);
    let len = fs.fstat(h).unwrap().size;
    assert_eq!(len, written, "the file is as long as the writes said");
    fs.close(h).unwrap();
    check(&mut fs).unwrap();
    assert!(contents(&mut fs, "f") == filled(7, 0, len as usize), "the file holds what its length says");
}

#[test]
fn random_writes_keep_linux_semantics() {
    for kind in [FatTypeSelection::Fat12, FatTypeSelection::Fat16] {
        random_writes_on(kind);
    }
}

fn random_writes_on(kind: FatTypeSelection) {
    let (mut fs, mut shared) = mount(image_of(8 * MIB, kind), false);
    let mut random = xorshift(0x2545_f491_4f6c_dd1d);
    let mut next = move |n: u64| random() % n;
    // What Linux would hold: the file as bytes; two handles, one of them appending.
    let mut model: Vec<u8> = Vec::new();
    let a = fs.open(b"r.bin", false, O_RDWR | O_CREAT | O_TRUNC).unwrap();
    let b = fs.open(b"R.BIN", false, O_RDWR | O_APPEND).unwrap();
    let mut pos_a = 0u64;
    for round in 0..400 {
        let len = model.len() as u64;
        match next(7) {
            0 | 1 => {
                let at = next(len + 20_000);
                let data = filled(round, at, 1 + next(9000) as usize);
                fs.seek(a, at as i64, Whence::Start).unwrap();
                assert_eq!(fs.write(a, &data), Ok(data.len()));
                if model.len() < at as usize + data.len() {
                    model.resize(at as usize + data.len(), 0);
                }
                model[at as usize..at as usize + data.len()].copy_from_slice(&data);
                pos_a = at + data.len() as u64;
            }
            2 => {
                let data = filled(round, 7, 1 + next(5000) as usize);
                assert_eq!(fs.write(b, &data), Ok(data.len()));
                model.extend_from_slice(&data);
            }
            3 => {
                let to = next(len + 10_000);
                fs.set_len(a, to).unwrap();
                model.resize(to as usize, 0);
            }
            4 => {
                let at = next(len + 100);
                fs.seek(a, at as i64, Whence::Start).unwrap();
                let mut buf = vec![0xaa; next(12_000) as usize];
                let n = fs.read(a, &mut buf).unwrap();
                let want = &model[(at as usize).min(model.len())..model.len().min(at as usize + buf.len())];
                assert_eq!(&buf[..n], want, "round {round}: read at {at}");
                pos_a = at + n as u64;
            }
            5 => {
                let r = fs.open(b"r.bin", false, O_RDONLY).unwrap();
                assert!(get_handle(&mut fs, r) == model, "round {round}: a third handle reads it all");
                fs.close(r).unwrap();
            }
            _ => {
                fs.sync(b).unwrap();
                fs.seek(a, pos_a as i64, Whence::Start).unwrap();
            }
        }
        assert_eq!(fs.fstat(a).unwrap().size, model.len() as u64, "round {round}");
        assert_eq!(fs.stat(b"r.bin", false).unwrap().size, model.len() as u64);
    }
    fs.close(a).unwrap();
    fs.close(b).unwrap();
    check(&mut fs).unwrap();
    let mut fs = remount(fs, &mut shared);
    assert!(contents(&mut fs, "r.bin") == model);
    check(&mut fs).unwrap();
}

fn get_handle(fs: &mut FatFs, h: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 7000];
    loop {
        match fs.read(h, &mut buf).unwrap() {
            0 => return out,
            n => out.extend_from_slice(&buf[..n]),
        }
    }
}

#[test]
fn a_reader_sees_what_a_writer_streamed() {
    let (mut fs, _) = mount(image(8 * MIB), false);
    let w = fs.open(b"log", false, O_WRONLY | O_CREAT | O_TRUNC).unwrap();
    let r = fs.open(b"log", false, O_RDONLY).unwrap();
    let mut all = Vec::new();
    for i in 0..20u64 {
        let piece = filled(i, 0, 3000 + i as usize * 700);
        fs.write(w, &piece).unwrap();
        all.extend_from_slice(&piece);
        assert_eq!(fs.stat(b"LOG", false).unwrap().size, all.len() as u64);
        let mut buf = vec![0; piece.len() + 10];
        assert_eq!(fs.read(r, &mut buf), Ok(piece.len()), "the reader is at the writer's last end");
        assert!(buf[..piece.len()] == piece);
    }
    // A truncation at open is seen by every handle at once, as on Linux.
    let t = fs.open(b"log", false, O_WRONLY | O_TRUNC).unwrap();
    assert_eq!(fs.fstat(r).unwrap().size, 0);
    assert_eq!(fs.fstat(w).unwrap().size, 0);
    fs.write(w, b"after").unwrap();
    fs.seek(r, 0, Whence::Start).unwrap();
    let mut buf = [0u8; 64];
    assert_eq!(fs.read(r, &mut buf), Ok(64));
    assert_eq!(fs.fstat(r).unwrap().size, all.len() as u64 + 5, "the writer's position is kept");
    assert_eq!(buf, [0; 64], "the gap before it reads as zeros");
    for h in [t, w, r] {
        fs.close(h).unwrap();
    }
    check(&mut fs).unwrap();
}

/// The host's allocator, counting this thread's live and highest heap bytes, so that a test can
/// see how much memory a write takes.
struct Counting;

std::thread_local! {
    static LIVE: core::cell::Cell<isize> = const { core::cell::Cell::new(0) };
    static PEAK: core::cell::Cell<isize> = const { core::cell::Cell::new(0) };
}

fn count(delta: isize) {
    let _ = LIVE.try_with(|live| {
        live.set(live.get() + delta);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(live.get())));
    });
}

// SAFETY: every call goes to the system allocator with the caller's arguments unchanged.
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        count(layout.size() as isize);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { std::alloc::System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        count(-(layout.size() as isize));
        // SAFETY: the caller upholds `GlobalAlloc::dealloc`'s contract.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// The most heap bytes this thread held above what it held before, while `f` ran.
fn heap_high_water(f: impl FnOnce()) -> isize {
    let base = LIVE.with(|l| l.get());
    PEAK.with(|p| p.set(base));
    f();
    PEAK.with(|p| p.get()) - base
}

#[test]
fn a_file_far_larger_than_the_cache_streams_in_bounded_memory() {
    let (mut fs, mut shared) = mount(image_of(64 * MIB, FatTypeSelection::Fat32), false);
    assert_eq!(fs.geo.kind, Kind::Fat32);
    let piece: Vec<u8> = filled(9, 0, MIB);
    let stream = |fs: &mut FatFs, name: &[u8], mib: usize| {
        heap_high_water(|| {
            let h = fs.open(name, false, O_WRONLY | O_CREAT | O_TRUNC).unwrap();
            for _ in 0..mib {
                assert_eq!(fs.write(h, &piece), Ok(MIB));
            }
            fs.sync(h).unwrap();
            fs.close(h).unwrap();
        })
    };
    let small = stream(&mut fs, b"small.bin", 5);
    let big = stream(&mut fs, b"big.bin", 50);
    // The block cache (4 MiB) and a write-back run (1 MiB) bound it, whatever the file's size;
    // holding the file would take 50 MiB.
    assert!(big < 6 * MIB as isize, "50 MiB took {big} bytes of heap");
    assert!(big < small + MIB as isize / 4, "50 MiB took {big} bytes of heap, 5 MiB {small}");
    fs.remove(b"small.bin", false).unwrap();
    check(&mut fs).unwrap();
    let mut fs = remount(fs, &mut shared);
    let h = fs.open(b"big.bin", false, O_RDONLY).unwrap();
    let mut buf = vec![0u8; MIB];
    for i in 0..50 {
        let mut got = 0;
        while got < MIB {
            got += fs.read(h, &mut buf[got..]).unwrap();
        }
        assert!(buf == piece, "MiB {i} differs");
    }
    assert_eq!(fs.read(h, &mut buf), Ok(0));
    fs.close(h).unwrap();
    check(&mut fs).unwrap();
}

#[test]
fn a_volume_larger_than_its_disk_is_eio_past_the_disk() {
    // The crate formats 8 MiB; the disk keeps only the first 2 MiB of it.
    let mut bytes = image(8 * MIB);
    bytes.truncate(2 * MIB);
    let (mut fs, _) = mount(bytes, false);
    let h = fs.open(b"f", false, O_WRONLY | O_CREAT).unwrap();
    let mut result = Ok(0);
    for _ in 0..8 {
        result = fs.write(h, &[5; MIB]);
        if result.is_err() {
            break;
        }
    }
    assert_eq!(result, Err(Errno::EIO));
    let _ = fs.close(h);
}

/// Sets the size field of the entry of `name` in the (fixed) root directory, as a crash or
/// another system could leave it.
fn set_size(fs: &mut FatFs, name: &str, size: u32) {
    set_entry_bytes(fs, name, 28, &size.to_le_bytes());
}

/// Overwrites bytes of the entry of `name` in the (fixed) root directory from `at`.
fn set_entry_bytes(fs: &mut FatFs, name: &str, at: u64, bytes: &[u8]) {
    fs.sync_all().unwrap();
    let entry = fs.file(&Components::parse(name.as_bytes()).unwrap()).unwrap().0;
    let root = fs.geo.fat_start + 2 * fs.geo.fat_len;
    let mut dir = vec![0u8; 512 * 32];
    fs.cache.lock().read_at(root, &mut dir).unwrap();
    let slot = dir.chunks(32).position(|e| e[..11] == entry.short_name().raw_bytes()).unwrap() as u64;
    fs.cache.lock().write_at(root + slot * 32 + at, bytes).unwrap();
    fs.changed();
}

#[test]
fn an_entry_with_bytes_but_no_cluster_is_eio_not_a_panic() {
    let (mut fs, _) = mount(image(2 * MIB), false);
    put(&mut fs, "c", &filled(2, 0, 10_000));
    // The first cluster's low half (offset 26): 0.
    set_entry_bytes(&mut fs, "c", 26, &[0, 0]);
    let h = fs.open(b"c", false, O_RDWR).unwrap();
    assert_eq!(fs.write(h, b"over"), Err(Errno::EIO));
    fs.seek(h, 0, Whence::End).unwrap();
    assert_eq!(fs.write(h, b"more"), Err(Errno::EIO));
    let _ = fs.close(h);
}

#[test]
fn appending_to_a_file_whose_chain_runs_past_its_size_is_eio() {
    let (mut fs, _) = mount(image(2 * MIB), false);
    let data = filled(2, 0, 10_000);
    put(&mut fs, "long", &data);
    set_size(&mut fs, "long", 100);
    let h = fs.open(b"long", false, O_WRONLY | O_APPEND).unwrap();
    assert_eq!(fs.write(h, b"more"), Err(Errno::EIO));
    fs.close(h).unwrap();
    assert_eq!(contents(&mut fs, "long"), data[..100]);
}
