//! Files: reads the packed files under ROOT (the first argument: `/` on Xen, a copy of
//! `tests/guest/files` on Linux), lists directories, writes, appends, truncates, renames and
//! removes in the overlay, and prints each error kind, so that Xen's output can be compared
//! with Linux's line for line. Paths are printed relative to ROOT.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn rel(root: &Path, path: &Path) -> String {
    format!("/{}", path.strip_prefix(root).unwrap_or(path).display())
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let kind = if e.file_type().unwrap().is_dir() { "/" } else { "" };
            format!("{}{kind}", e.file_name().to_string_lossy())
        })
        .collect();
    names.sort();
    names
}

fn error<T: std::fmt::Debug>(what: &str, result: std::io::Result<T>) {
    match result {
        Ok(v) => println!("{what}: unexpectedly Ok({v:?})"),
        Err(e) => println!("{what}: {:?} ({e})", e.kind()),
    }
}

fn recent(t: SystemTime) -> bool {
    let now = SystemTime::now();
    now.duration_since(t).unwrap_or_default() < Duration::from_secs(3600)
        && t.duration_since(now).unwrap_or_default() < Duration::from_secs(3600)
}

fn packed(root: &Path) {
    println!("read: {:?}", fs::read_to_string(root.join("hello.txt")).unwrap());
    println!("read: {:?}", fs::read_to_string(root.join("data/nested/deep.txt")).unwrap());
    let mut top = listing(root);
    top.retain(|n| n != "tmp/");
    println!("list /: {top:?}");
    println!("list /data: {:?}", listing(&root.join("data")));
    let meta = fs::metadata(root.join("data/numbers.txt")).unwrap();
    println!("numbers.txt: len {}, file {}, dir {}", meta.len(), meta.is_file(), meta.is_dir());
    let meta = fs::metadata(root.join("data")).unwrap();
    println!("data: file {}, dir {}", meta.is_file(), meta.is_dir());
    let host = fs::metadata(root.join("hello.txt")).unwrap().modified().unwrap();
    println!("packed mtime: {}", host.duration_since(UNIX_EPOCH).unwrap().as_secs() > 1_600_000_000);
    let mut f = File::open(root.join("data/numbers.txt")).unwrap();
    f.seek(SeekFrom::Start(2)).unwrap();
    let mut rest = String::new();
    f.read_to_string(&mut rest).unwrap();
    println!("after seek: {rest:?}");
}

fn overlay(root: &Path) {
    let work = root.join("work");
    let deep = work.join("a/b/c");
    fs::create_dir_all(&deep).unwrap();
    fs::create_dir_all(&deep).unwrap();
    let file = deep.join("file.txt");
    fs::write(&file, "one\n").unwrap();
    OpenOptions::new().append(true).open(&file).unwrap().write_all(b"two\n").unwrap();
    println!("appended: {:?}", fs::read_to_string(&file).unwrap());
    let f = OpenOptions::new().write(true).open(&file).unwrap();
    f.set_len(4).unwrap();
    println!("truncated: {:?}", fs::read_to_string(&file).unwrap());
    let mut f = OpenOptions::new().read(true).write(true).open(&file).unwrap();
    f.seek(SeekFrom::Start(1)).unwrap();
    f.write_all(b"NE").unwrap();
    drop(f);
    println!("overwritten: {:?}", fs::read_to_string(&file).unwrap());
    let meta = fs::metadata(&file).unwrap();
    println!("file.txt: len {}, recent {}", meta.len(), recent(meta.modified().unwrap()));

    let renamed = work.join("renamed.txt");
    fs::rename(&file, &renamed).unwrap();
    println!("renamed: old exists {}, new {:?}", file.exists(), fs::read_to_string(&renamed).unwrap());

    // A change to a packed file is a copy in memory.
    OpenOptions::new().append(true).open(root.join("hello.txt")).unwrap().write_all(b"changed\n").unwrap();
    println!("packed file changed: {:?}", fs::read_to_string(root.join("hello.txt")).unwrap());
    println!("copied: {} bytes", fs::copy(root.join("data/numbers.txt"), work.join("copy.txt")).unwrap());

    let big: Vec<u8> = (0..(1 << 20) + 7).map(|i: u32| (i % 251) as u8).collect();
    fs::write(work.join("big"), &big).unwrap();
    println!("1 MiB round trip: {}", fs::read(work.join("big")).unwrap() == big);
    let mut f = File::create(work.join("sparse")).unwrap();
    f.seek(SeekFrom::Start(10_000)).unwrap();
    f.write_all(b"x").unwrap();
    let sparse = fs::read(work.join("sparse")).unwrap();
    println!("sparse: len {}, zeros {}", sparse.len(), sparse[..10_000].iter().all(|&b| b == 0));

    println!("canonical: {}", rel(root, &fs::canonicalize(work.join("a/b/../b/./c")).unwrap()));
    std::env::set_current_dir(work.join("a")).unwrap();
    println!("cwd: {}", rel(root, &std::env::current_dir().unwrap()));
    fs::write("relative.txt", "rel").unwrap();
    println!("relative: {:?}", fs::read_to_string(work.join("a/relative.txt")).unwrap());
    println!("canonical relative: {}", rel(root, &fs::canonicalize("b/c/..").unwrap()));
    std::env::set_current_dir(root).unwrap();
    println!("list /work: {:?}", listing(&work));

    fs::remove_file(work.join("copy.txt")).unwrap();
    fs::remove_dir(work.join("a/b/c")).unwrap();
    fs::remove_dir_all(&work).unwrap();
    println!("removed: {}", work.exists());

    let tmp = std::env::temp_dir();
    println!("temp_dir: {} (dir {})", tmp.display(), tmp.is_dir());
    let scratch = tmp.join("xen-files-test-scratch");
    fs::write(&scratch, "t").unwrap();
    println!("temp file: {:?}", fs::read_to_string(&scratch).unwrap());
    fs::remove_file(&scratch).unwrap();
}

fn errors(root: &Path) {
    let missing = root.join("missing");
    error("open missing", File::open(&missing));
    error("metadata missing", fs::metadata(&missing));
    error("create in missing dir", File::create(missing.join("x")));
    error("create_dir existing", fs::create_dir(root.join("data")));
    error("create_new existing", File::create_new(root.join("hello.txt")));
    error("create over a dir", File::create(root.join("data")));
    error("file as a dir", File::open(root.join("hello.txt/x")));
    error("read_dir of a file", fs::read_dir(root.join("hello.txt")).map(|_| ()));
    error("remove_dir not empty", fs::remove_dir(root.join("data")));
    error("remove_dir of a file", fs::remove_dir(root.join("hello.txt")));
    error("remove_file of a dir", fs::remove_file(root.join("data")));
    error("remove_file missing", fs::remove_file(&missing));
    fs::create_dir(root.join("empty")).unwrap();
    fs::write(root.join("plain"), "p").unwrap();
    error("rename dir over non-empty dir", fs::rename(root.join("empty"), root.join("data")));
    error("rename file over dir", fs::rename(root.join("plain"), root.join("empty")));
    error("rename dir over file", fs::rename(root.join("empty"), root.join("plain")));
    error("rename into itself", fs::rename(root.join("data"), root.join("data/nested/x")));
    error("rename missing", fs::rename(&missing, root.join("y")));
    error("set_current_dir to a file", std::env::set_current_dir(root.join("plain")));
    error("canonicalize missing", fs::canonicalize(&missing));
    let mut read_only = File::open(root.join("plain")).unwrap();
    error("write read-only", read_only.write(b"x"));
    error("set_len read-only", read_only.set_len(0));
    let mut write_only = OpenOptions::new().write(true).open(root.join("plain")).unwrap();
    error("read write-only", write_only.read(&mut [0; 4]));
    let mut dir = File::open(root.join("data")).unwrap();
    error("read a dir", dir.read(&mut [0; 4]));
    error("open for nothing", OpenOptions::new().open(root.join("plain")));
    error("create without write", OpenOptions::new().read(true).create(true).open(root.join("plain")));
    fs::remove_dir(root.join("empty")).unwrap();
    fs::remove_file(root.join("plain")).unwrap();
}

fn main() {
    let root: PathBuf = std::env::args().nth(1).unwrap_or_else(|| "/".into()).into();
    let root = fs::canonicalize(&root).unwrap();
    std::env::set_current_dir(&root).unwrap();
    packed(&root);
    overlay(&root);
    errors(&root);
    println!("done");
}
