//! A reader for cpio archives in the "newc" format (no checksums), the format of the packed
//! files the runner hands the guest as its ramdisk module.
//!
//! The format (Linux's `Documentation/driver-api/early-userspace/buffer-format.rst`): each
//! entry is a 110-byte ASCII header, `070701` and thirteen 8-digit hex fields, then the
//! NUL-terminated name, padded so that the data starts at a multiple of four bytes, then the
//! data, padded likewise; the entry named `TRAILER!!!` ends the archive.
//!
//! The archive is untrusted input: every offset is checked against the archive's length, and a
//! malformed archive gives a [`CpioError`] naming the byte where it went wrong, never a panic.
//! Whether an entry's *name* makes sense is the caller's business ([`super::tree`]).

/// The newc magic (`070702`, the variant with checksums, is refused).
const MAGIC: &[u8; 6] = b"070701";
/// The header's length: the magic and thirteen 8-digit fields.
const HEADER_LEN: usize = 110;
/// The name of the entry that ends an archive.
pub const TRAILER: &[u8] = b"TRAILER!!!";

/// The header's fields, in order (`buffer-format.rst`).
mod field {
    pub const MODE: usize = 1;
    pub const MTIME: usize = 5;
    pub const FILESIZE: usize = 6;
    pub const NAMESIZE: usize = 11;
}

/// Why an archive cannot be read; `at` is the offset of the entry's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpioError {
    /// The header does not start with `070701`.
    BadMagic { at: usize },
    /// The archive ends inside a header, a name or file data.
    Truncated { at: usize },
    /// A header field holds something other than 8 hex digits.
    BadField { at: usize },
    /// The name's size is 0, or its last byte is not NUL.
    NameNotTerminated { at: usize },
    /// The archive ends without a `TRAILER!!!` entry.
    NoTrailer { at: usize },
}

impl CpioError {
    /// Says what went wrong, and where, in words for a boot error.
    pub fn describe(&self) -> (&'static str, usize) {
        match *self {
            CpioError::BadMagic { at } => ("an entry without the newc magic 070701", at),
            CpioError::Truncated { at } => ("an entry that runs past the end of the archive", at),
            CpioError::BadField { at } => ("a header field that is not 8 hex digits", at),
            CpioError::NameNotTerminated { at } => ("a name that does not end with NUL", at),
            CpioError::NoTrailer { at } => ("no TRAILER!!! entry at the end", at),
        }
    }
}

/// One entry of an archive, borrowing its name and data from the archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    /// The name as stored (without the NUL): a path relative to the archive's root.
    pub name: &'a [u8],
    /// The file type and permission bits (`S_IFMT`, `0o7777`).
    pub mode: u32,
    /// The modification time, in seconds since the UNIX epoch.
    pub mtime: u32,
    /// The file's contents (a symbolic link's target).
    pub data: &'a [u8],
}

/// File types of `Entry::mode` (`S_IFMT` and its values, as in `sys/stat.h`).
pub const S_IFMT: u32 = 0o170000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFDIR: u32 = 0o040000;

/// The entries of an archive, in order; stops at the trailer, or after the first error.
pub struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    done: bool,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, at: 0, done: false }
    }

    fn field(header: &[u8], index: usize, at: usize) -> Result<u32, CpioError> {
        let digits = &header[6 + 8 * index..14 + 8 * index];
        let mut value = 0u32;
        for &digit in digits {
            let nibble = (digit as char).to_digit(16).ok_or(CpioError::BadField { at })?;
            value = value << 4 | nibble;
        }
        Ok(value)
    }

    fn read_entry(&mut self) -> Result<Option<Entry<'a>>, CpioError> {
        let at = self.at;
        let rest = &self.bytes[at..];
        if rest.is_empty() {
            return Err(CpioError::NoTrailer { at });
        }
        let header = rest.get(..HEADER_LEN).ok_or(CpioError::Truncated { at })?;
        if &header[..6] != MAGIC {
            return Err(CpioError::BadMagic { at });
        }
        let mode = Self::field(header, field::MODE, at)?;
        let mtime = Self::field(header, field::MTIME, at)?;
        let size = Self::field(header, field::FILESIZE, at)? as usize;
        let name_size = Self::field(header, field::NAMESIZE, at)? as usize;
        let name_end = HEADER_LEN.checked_add(name_size).ok_or(CpioError::Truncated { at })?;
        let name = rest.get(HEADER_LEN..name_end).ok_or(CpioError::Truncated { at })?;
        let Some((&0, name)) = name.split_last() else {
            return Err(CpioError::NameNotTerminated { at });
        };
        let data_start = name_end.next_multiple_of(4);
        let data_end = data_start.checked_add(size).ok_or(CpioError::Truncated { at })?;
        let data = rest.get(data_start..data_end).ok_or(CpioError::Truncated { at })?;
        // The padding after the last entry may be missing; elsewhere the next header says.
        self.at = (at + data_end.next_multiple_of(4)).min(self.bytes.len());
        if name == TRAILER {
            return Ok(None);
        }
        Ok(Some(Entry { name, mode, mtime, data }))
    }
}

impl<'a> Iterator for Reader<'a> {
    type Item = Result<Entry<'a>, CpioError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.read_entry() {
            Ok(Some(entry)) => Some(Ok(entry)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    /// Writes one newc entry, as the runner's writer does.
    fn entry(out: &mut Vec<u8>, name: &[u8], mode: u32, mtime: u32, data: &[u8]) {
        let fields = [1, mode, 0, 0, 1, mtime, data.len() as u32, 0, 0, 0, 0, name.len() as u32 + 1, 0];
        out.extend_from_slice(MAGIC);
        for f in fields {
            out.extend_from_slice(alloc::format!("{f:08x}").as_bytes());
        }
        out.extend_from_slice(name);
        out.push(0);
        while out.len() % 4 != 0 {
            out.push(0);
        }
        out.extend_from_slice(data);
        while out.len() % 4 != 0 {
            out.push(0);
        }
    }

    fn archive(entries: &[(&[u8], u32, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for &(name, mode, data) in entries {
            entry(&mut out, name, mode, 1_700_000_000, data);
        }
        entry(&mut out, TRAILER, 0, 0, b"");
        out.resize(out.len().next_multiple_of(512), 0);
        out
    }

    #[test]
    fn reads_entries_up_to_the_trailer() {
        let bytes = archive(&[(b"dir", S_IFDIR | 0o755, b""), (b"dir/a.txt", S_IFREG | 0o644, b"hello\n")]);
        let entries: Vec<_> = Reader::new(&bytes).collect::<Result<_, _>>().unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].name, b"dir");
        assert_eq!(entries[0].mode, 0o40755);
        assert_eq!(entries[1], Entry { name: b"dir/a.txt", mode: 0o100644, mtime: 1_700_000_000, data: b"hello\n" });
    }

    #[test]
    fn an_empty_archive_has_just_the_trailer() {
        let bytes = archive(&[]);
        assert_eq!(Reader::new(&bytes).count(), 0);
    }

    #[test]
    fn refuses_bad_magic() {
        let mut bytes = archive(&[(b"a", S_IFREG, b"x")]);
        bytes[5] = b'2';
        assert_eq!(Reader::new(&bytes).next(), Some(Err(CpioError::BadMagic { at: 0 })));
    }

    #[test]
    fn refuses_every_truncation() {
        let full = archive(&[(b"file", S_IFREG | 0o644, b"0123456789")]);
        let trailer_at = 112 + 12 + 4;
        for len in 0..trailer_at + 110 {
            let cut = &full[..len];
            let result: Result<Vec<_>, _> = Reader::new(cut).collect();
            let err = result.expect_err("a cut archive must be refused");
            match err {
                CpioError::Truncated { .. } | CpioError::NoTrailer { .. } => {}
                other => panic!("cut at {len}: {other:?}"),
            }
        }
    }

    #[test]
    fn refuses_a_size_past_the_end() {
        let mut bytes = Vec::new();
        entry(&mut bytes, b"big", S_IFREG, 0, b"abc");
        // Claim 0xffffffff bytes of data.
        bytes[6 + 8 * 6..14 + 8 * 6].copy_from_slice(b"ffffffff");
        assert_eq!(Reader::new(&bytes).next(), Some(Err(CpioError::Truncated { at: 0 })));
    }

    #[test]
    fn refuses_names_without_nul_and_bad_digits() {
        let mut bytes = archive(&[(b"name", S_IFREG, b"")]);
        bytes[110 + 4] = b'x';
        assert_eq!(Reader::new(&bytes).next(), Some(Err(CpioError::NameNotTerminated { at: 0 })));
        let mut zero = archive(&[(b"name", S_IFREG, b"")]);
        zero[6 + 8 * 11..14 + 8 * 11].copy_from_slice(b"00000000");
        assert_eq!(Reader::new(&zero).next(), Some(Err(CpioError::NameNotTerminated { at: 0 })));
        let mut digits = archive(&[(b"name", S_IFREG, b"")]);
        digits[20] = b'g';
        assert_eq!(Reader::new(&digits).next(), Some(Err(CpioError::BadField { at: 0 })));
    }

    #[test]
    fn an_error_ends_the_iteration() {
        let mut bytes = archive(&[(b"a", S_IFREG, b"1"), (b"b", S_IFREG, b"2")]);
        let second = 112 + 4;
        bytes[second] = b'X';
        let mut reader = Reader::new(&bytes);
        assert!(reader.next().unwrap().is_ok());
        assert_eq!(reader.next(), Some(Err(CpioError::BadMagic { at: second })));
        assert_eq!(reader.next(), None);
    }

    #[test]
    fn garbage_never_panics() {
        // A cheap fuzz: flip every byte of a small archive in turn, and feed random-ish bytes.
        let base = archive(&[(b"d", S_IFDIR | 0o755, b""), (b"d/f", S_IFREG | 0o644, b"contents")]);
        for i in 0..base.len() {
            for value in [0u8, b'0', b'f', 0xff, b'/'] {
                let mut bytes = base.clone();
                bytes[i] = value;
                for item in Reader::new(&bytes) {
                    let _ = item;
                }
            }
        }
        let mut state = 0x1234_5678u32;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                (state % 23) as u8 + b'0'
            })
            .collect();
        for start in 0..64 {
            let mut bytes = Vec::from(&MAGIC[..]);
            bytes.extend_from_slice(&noise[start..]);
            for item in Reader::new(&bytes) {
                let _ = item;
            }
        }
    }
}
