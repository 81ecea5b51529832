//! A file's contents: a slice of the packed archive until the first change, then chunks of
//! memory (copy on write).
//!
//! Chunks are kept in a vector indexed by `offset / CHUNK`; a missing chunk (a hole left by a
//! seek past the end, or by `set_len`) reads as zeros. Bytes of a chunk at or past the file's
//! length are always zero, so growing a file never shows old data.

use alloc::vec::Vec;

use super::chunk::{CHUNK, Chunk};
use super::errno::Errno;

/// The largest file length, as Linux's `MAX_LFS_FILESIZE` on 64-bit.
pub const MAX_LEN: u64 = i64::MAX as u64;

/// A file's contents.
pub enum Data {
    /// Unchanged bytes of the packed archive, read in place.
    Packed(&'static [u8]),
    /// Bytes in memory.
    Chunks { chunks: Vec<Option<Chunk>>, len: u64 },
}

impl Default for Data {
    fn default() -> Data {
        Data::new()
    }
}

impl Data {
    /// An empty file.
    pub const fn new() -> Data {
        Data::Chunks { chunks: Vec::new(), len: 0 }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn len(&self) -> u64 {
        match self {
            Data::Packed(bytes) => bytes.len() as u64,
            Data::Chunks { len, .. } => *len,
        }
    }

    /// Copies bytes from `pos` into `buf`; returns how many (0 at or past the end).
    pub fn read(&self, pos: u64, buf: &mut [u8]) -> usize {
        let len = self.len();
        if pos >= len {
            return 0;
        }
        let count = buf.len().min((len - pos).min(usize::MAX as u64) as usize);
        match self {
            Data::Packed(bytes) => buf[..count].copy_from_slice(&bytes[pos as usize..pos as usize + count]),
            Data::Chunks { chunks, .. } => {
                let mut done = 0;
                while done < count {
                    let at = pos + done as u64;
                    let (index, offset) = ((at / CHUNK as u64) as usize, (at % CHUNK as u64) as usize);
                    let take = (CHUNK - offset).min(count - done);
                    let out = &mut buf[done..done + take];
                    match chunks.get(index) {
                        Some(Some(chunk)) => out.copy_from_slice(&chunk.bytes()[offset..offset + take]),
                        _ => out.fill(0),
                    }
                    done += take;
                }
            }
        }
        count
    }

    /// Turns packed contents into chunks, so that they can change; `ENOSPC` when memory is out.
    fn make_writable(&mut self) -> Result<(&mut Vec<Option<Chunk>>, &mut u64), Errno> {
        if let Data::Packed(bytes) = *self {
            let mut chunks = Vec::new();
            chunks.try_reserve_exact(bytes.len().div_ceil(CHUNK)).map_err(|_| Errno::ENOSPC)?;
            for piece in bytes.chunks(CHUNK) {
                let mut chunk = Chunk::new().ok_or(Errno::ENOSPC)?;
                chunk.bytes_mut()[..piece.len()].copy_from_slice(piece);
                chunks.push(Some(chunk));
            }
            *self = Data::Chunks { chunks, len: bytes.len() as u64 };
        }
        match self {
            Data::Chunks { chunks, len } => Ok((chunks, len)),
            Data::Packed(_) => unreachable!("made writable above"),
        }
    }

    /// Writes `buf` at `pos`, growing the file as needed; returns the bytes written, which are
    /// fewer than asked only when memory ran out part way (`ENOSPC` when none could be).
    pub fn write(&mut self, pos: u64, buf: &[u8]) -> Result<usize, Errno> {
        if buf.is_empty() {
            return Ok(0);
        }
        let end = pos.checked_add(buf.len() as u64).filter(|&e| e <= MAX_LEN).ok_or(Errno::EFBIG)?;
        let (chunks, len) = self.make_writable()?;
        let last_index = ((end - 1) / CHUNK as u64) as usize;
        if chunks.len() <= last_index {
            chunks.try_reserve(last_index + 1 - chunks.len()).map_err(|_| Errno::ENOSPC)?;
            chunks.resize_with(last_index + 1, || None);
        }
        let mut done = 0;
        while done < buf.len() {
            let at = pos + done as u64;
            let (index, offset) = ((at / CHUNK as u64) as usize, (at % CHUNK as u64) as usize);
            let take = (CHUNK - offset).min(buf.len() - done);
            if chunks[index].is_none() {
                match Chunk::new() {
                    Some(chunk) => chunks[index] = Some(chunk),
                    None => break,
                }
            }
            let chunk = chunks[index].as_mut().expect("allocated above");
            chunk.bytes_mut()[offset..offset + take].copy_from_slice(&buf[done..done + take]);
            done += take;
        }
        if done == 0 {
            return Err(Errno::ENOSPC);
        }
        *len = (*len).max(pos + done as u64);
        Ok(done)
    }

    /// Makes the file `new_len` bytes long: cut, or extended with zeros.
    pub fn set_len(&mut self, new_len: u64) -> Result<(), Errno> {
        if new_len > MAX_LEN {
            return Err(Errno::EFBIG);
        }
        if let Data::Packed(bytes) = self
            && new_len <= bytes.len() as u64
        {
            *bytes = &bytes[..new_len as usize];
            return Ok(());
        }
        let (chunks, len) = self.make_writable()?;
        if new_len < *len {
            let keep = new_len.div_ceil(CHUNK as u64) as usize;
            chunks.truncate(keep);
            let offset = (new_len % CHUNK as u64) as usize;
            if offset != 0
                && let Some(Some(last)) = chunks.last_mut()
            {
                last.bytes_mut()[offset..].fill(0);
            }
        }
        *len = new_len;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::chunk::set_budget;
    use super::*;
    use alloc::vec;

    fn read_all(data: &Data) -> Vec<u8> {
        let mut out = vec![0xaa; data.len() as usize];
        assert_eq!(data.read(0, &mut out), out.len());
        out
    }

    #[test]
    fn packed_data_is_read_in_place_and_copied_on_write() {
        let mut data = Data::Packed(b"hello, world");
        let mut buf = [0; 5];
        assert_eq!(data.read(7, &mut buf), 5);
        assert_eq!(&buf, b"world");
        assert_eq!(data.read(12, &mut buf), 0);
        assert_eq!(data.write(0, b"HELLO"), Ok(5));
        assert!(matches!(data, Data::Chunks { .. }));
        assert_eq!(read_all(&data), b"HELLO, world");
    }

    #[test]
    fn writes_span_chunks_and_leave_holes_as_zeros() {
        let mut data = Data::new();
        let big: Vec<u8> = (0..3 * CHUNK + 17).map(|i| i as u8).collect();
        assert_eq!(data.write(10, &big), Ok(big.len()));
        assert_eq!(data.len(), 10 + big.len() as u64);
        let all = read_all(&data);
        assert_eq!(&all[..10], &[0; 10]);
        assert_eq!(&all[10..], &big[..]);
        // A write far past the end leaves a hole of zeros, with no chunks behind it.
        let far = 100 * CHUNK as u64;
        assert_eq!(data.write(far, b"end"), Ok(3));
        let mut buf = vec![1; CHUNK];
        assert_eq!(data.read(50 * CHUNK as u64, &mut buf), CHUNK);
        assert!(buf.iter().all(|&b| b == 0));
        if let Data::Chunks { chunks, .. } = &data {
            assert_eq!(chunks.iter().filter(|c| c.is_some()).count(), 5);
        }
    }

    #[test]
    fn cutting_and_growing_shows_zeros_not_old_bytes() {
        let mut data = Data::new();
        data.write(0, &[7; 100]).unwrap();
        data.set_len(10).unwrap();
        data.set_len(50).unwrap();
        let all = read_all(&data);
        assert_eq!(&all[..10], &[7; 10]);
        assert_eq!(&all[10..], &[0; 40]);
        let mut packed = Data::Packed(b"0123456789");
        packed.set_len(4).unwrap();
        assert!(matches!(packed, Data::Packed(b"0123")));
        packed.set_len(6).unwrap();
        assert_eq!(read_all(&packed), b"0123\0\0");
    }

    #[test]
    fn running_out_of_memory_is_enospc_or_a_short_write() {
        set_budget(2);
        let mut data = Data::new();
        let buf = vec![1; 3 * CHUNK];
        assert_eq!(data.write(0, &buf), Ok(2 * CHUNK));
        assert_eq!(data.write(2 * CHUNK as u64, &buf), Err(Errno::ENOSPC));
        assert_eq!(data.len(), 2 * CHUNK as u64);
        let mut packed = Data::Packed(b"x");
        assert_eq!(packed.write(0, b"y"), Err(Errno::ENOSPC));
        assert_eq!(read_all(&packed), b"x");
        set_budget(usize::MAX);
    }

    #[test]
    fn lengths_past_the_limit_are_efbig() {
        let mut data = Data::new();
        assert_eq!(data.write(MAX_LEN, b"x"), Err(Errno::EFBIG));
        assert_eq!(data.set_len(MAX_LEN + 1), Err(Errno::EFBIG));
        assert_eq!(data.write(u64::MAX, b"x"), Err(Errno::EFBIG));
    }
}
