//! Writes cpio archives in the "newc" format that Linux's initramfs reads.
//!
//! The format (`Documentation/driver-api/early-userspace/buffer-format.rst`
//! in Linux): each entry is a 110-byte ASCII header of `070701` and thirteen
//! 8-digit hex fields, then the NUL-terminated name padded to a multiple of
//! four bytes, then the data padded likewise; a `TRAILER!!!` entry ends the
//! archive. Linux accepts several archives one after the other, later files
//! replacing earlier ones, which is how the runner adds a job to the dom0
//! harness's initramfs.

use std::io::{self, Write};

/// The magic of the newc format (no checksums).
const MAGIC: &[u8; 6] = b"070701";

/// The name of the entry that ends an archive.
const TRAILER: &str = "TRAILER!!!";

/// A file type and permission bits: a regular file.
pub const S_IFREG: u32 = 0o100000;
/// A file type and permission bits: a directory.
pub const S_IFDIR: u32 = 0o040000;
/// A file type and permission bits: a symbolic link.
pub const S_IFLNK: u32 = 0o120000;

/// Writes one newc archive.
pub struct CpioWriter<W: Write> {
    out: W,
    written: u64,
    next_ino: u32,
}

impl<W: Write> CpioWriter<W> {
    /// Starts an archive.
    pub fn new(out: W) -> Self {
        // Inode numbers only need to differ within an archive (Linux uses them
        // to spot hard links); start high to stay clear of other archives'.
        Self { out, written: 0, next_ino: 0x7e00_0000 }
    }

    /// Adds a directory (its parent must come first, or already exist).
    pub fn dir(&mut self, path: &str, perm: u32) -> io::Result<()> {
        self.dir_at(path, perm, 0)
    }

    /// Adds a directory modified at `mtime` (seconds since the UNIX epoch).
    pub fn dir_at(&mut self, path: &str, perm: u32, mtime: u32) -> io::Result<()> {
        self.entry(path, S_IFDIR | (perm & 0o7777), 2, mtime, &[])
    }

    /// Adds a regular file.
    pub fn file(&mut self, path: &str, perm: u32, data: &[u8]) -> io::Result<()> {
        self.file_at(path, perm, 0, data)
    }

    /// Adds a regular file modified at `mtime` (seconds since the UNIX epoch).
    pub fn file_at(&mut self, path: &str, perm: u32, mtime: u32, data: &[u8]) -> io::Result<()> {
        self.entry(path, S_IFREG | (perm & 0o7777), 1, mtime, data)
    }

    /// Adds a symbolic link to `target` (its data is the target's path).
    pub fn symlink(&mut self, path: &str, target: &str) -> io::Result<()> {
        self.entry(path, S_IFLNK | 0o777, 1, 0, target.as_bytes())
    }

    /// Writes the trailer, pads the archive to 512 bytes, and returns the
    /// writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.entry(TRAILER, 0, 1, 0, &[])?;
        let pad = (512 - self.written % 512) % 512;
        self.out.write_all(&vec![0; pad as usize])?;
        Ok(self.out)
    }

    /// Writes one header, name and data.
    fn entry(&mut self, name: &str, mode: u32, nlink: u32, mtime: u32, data: &[u8]) -> io::Result<()> {
        let size = u32::try_from(data.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "cpio file over 4 GiB"))?;
        let name_size = name.len() as u32 + 1;
        let ino = if name == TRAILER { 0 } else { self.next_ino };
        self.next_ino += 1;
        let fields = [ino, mode, 0, 0, nlink, mtime, size, 0, 0, 0, 0, name_size, 0];
        let mut header = Vec::with_capacity(110 + name.len() + 4);
        header.extend_from_slice(MAGIC);
        for field in fields {
            header.extend_from_slice(format!("{field:08x}").as_bytes());
        }
        header.extend_from_slice(name.as_bytes());
        header.push(0);
        pad4(&mut header);
        self.write(&header)?;
        self.write(data)?;
        self.write(&vec![0; padding(data.len() as u64)])
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }
}

/// Returns the bytes needed to reach a multiple of four.
fn padding(len: u64) -> usize {
    ((4 - len % 4) % 4) as usize
}

/// Pads a header plus name to a multiple of four.
fn pad4(buf: &mut Vec<u8>) {
    let pad = padding(buf.len() as u64);
    buf.extend(std::iter::repeat_n(0, pad));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// One entry read back from an archive.
    #[derive(Debug, PartialEq)]
    struct Entry {
        name: String,
        mode: u32,
        nlink: u32,
        data: Vec<u8>,
    }

    /// A small reader for newc, written from the format description.
    fn read_all(mut bytes: &[u8]) -> Vec<Entry> {
        let mut entries = Vec::new();
        let start_len = bytes.len();
        loop {
            let at = start_len - bytes.len();
            assert_eq!(at % 4, 0, "entry at {at} not aligned");
            assert_eq!(&bytes[..6], MAGIC);
            let field = |i: usize| {
                let hex = std::str::from_utf8(&bytes[6 + 8 * i..14 + 8 * i]).unwrap();
                u32::from_str_radix(hex, 16).unwrap()
            };
            let (mode, nlink, size, name_size) = (field(1), field(4), field(6), field(11));
            let name_end = 110 + name_size as usize;
            assert_eq!(bytes[name_end - 1], 0, "name not NUL-terminated");
            let name = String::from_utf8(bytes[110..name_end - 1].to_vec()).unwrap();
            let data_start = name_end + padding(name_end as u64);
            let data_end = data_start + size as usize;
            let data = bytes[data_start..data_end].to_vec();
            bytes = &bytes[data_end + padding(data_end as u64)..];
            if name == TRAILER {
                assert!(bytes.iter().all(|&b| b == 0), "junk after the trailer");
                return entries;
            }
            entries.push(Entry { name, mode, nlink, data });
        }
    }

    #[test]
    fn writes_dirs_and_files() {
        let mut cpio = CpioWriter::new(Vec::new());
        cpio.dir("jobs", 0o755).unwrap();
        cpio.dir("jobs/001", 0o755).unwrap();
        cpio.file("jobs/001/xl.cfg", 0o644, b"name = \"x\"\n").unwrap();
        cpio.file("jobs/001/image", 0o755, &[0x7f, b'E', b'L', b'F', 1]).unwrap();
        cpio.file("empty", 0o600, b"").unwrap();
        cpio.symlink("jobs/002", "001").unwrap();
        let bytes = cpio.finish().unwrap();

        assert_eq!(bytes.len() % 512, 0);
        let entries = read_all(&bytes);
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            ["jobs", "jobs/001", "jobs/001/xl.cfg", "jobs/001/image", "empty", "jobs/002"]
        );
        assert_eq!(entries[0].mode, 0o40755);
        assert_eq!(entries[0].nlink, 2);
        assert_eq!(entries[2].mode, 0o100644);
        assert_eq!(entries[2].data, b"name = \"x\"\n");
        assert_eq!(entries[3].data, [0x7f, b'E', b'L', b'F', 1]);
        assert_eq!(entries[3].mode, 0o100755);
        assert_eq!(entries[4].data, b"");
        assert_eq!(entries[5].mode, 0o120777);
        assert_eq!(entries[5].data, b"001");
    }

    #[test]
    fn the_first_header_is_as_specified() {
        let mut cpio = CpioWriter::new(Vec::new());
        cpio.file("a", 0o644, b"hi").unwrap();
        let bytes = cpio.finish().unwrap();
        let header = std::str::from_utf8(&bytes[..110]).unwrap();
        assert_eq!(
            header,
            "070701\
             7e000000\
             000081a4\
             00000000\
             00000000\
             00000001\
             00000000\
             00000002\
             00000000\
             00000000\
             00000000\
             00000000\
             00000002\
             00000000"
        );
        // 110 + "a\0" is 112, a multiple of four: the data follows at once,
        // padded to 116.
        assert_eq!(&bytes[110..116], b"a\0hi\0\0");
        assert_eq!(&bytes[116..116 + 6], MAGIC);
    }

    #[test]
    fn agrees_with_the_system_cpio_when_present() {
        // Cross-checks against GNU cpio, which reads newc; skipped without it.
        let Ok(status) = std::process::Command::new("cpio").arg("--version").output() else {
            return;
        };
        if !status.status.success() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut cpio = CpioWriter::new(Vec::new());
        cpio.dir("jobs", 0o755).unwrap();
        cpio.file("jobs/f", 0o644, b"123\n").unwrap();
        cpio.symlink("jobs/g", "f").unwrap();
        let bytes = cpio.finish().unwrap();
        let mut child = std::process::Command::new("cpio")
            .args(["-i", "-d", "--quiet"])
            .current_dir(dir.path())
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&bytes).unwrap();
        assert!(child.wait().unwrap().success());
        assert_eq!(std::fs::read(dir.path().join("jobs/f")).unwrap(), b"123\n");
        assert_eq!(std::fs::read(dir.path().join("jobs/g")).unwrap(), b"123\n");
        assert_eq!(std::fs::read_link(dir.path().join("jobs/g")).unwrap(), Path::new("f"));
    }
}
