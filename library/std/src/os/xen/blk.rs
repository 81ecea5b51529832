//! The sectors of the domain's virtual disks (vbds).
//!
//! A [`Disk`] is one `disk = [...]` entry of the domain's `xl` configuration, named by its
//! `vdev` (`xvda`, `xvdb`, ...). Opening it connects the kernel's blkfront driver to the
//! backend in the driver domain; [`Disk::read_at`] and [`Disk::write_at`] then move whole
//! sectors, and [`Disk::sync`] makes completed writes durable. Offsets and lengths are
//! multiples of [`Disk::sector_size`] (512 or 4096 bytes). Dropping the disk disconnects it.
//!
//! There is no filesystem here: this is the layer under it.

#![stable(feature = "xen_ext", since = "1.96.0")]

use crate::io;
use crate::sys::abi;

/// An open virtual disk.
#[stable(feature = "xen_ext", since = "1.96.0")]
#[derive(Debug)]
pub struct Disk {
    handle: u64,
    info: abi::XkBlkInfo,
}

fn check(ret: isize) -> io::Result<()> {
    if ret < 0 { Err(super::error(ret as i64)) } else { Ok(()) }
}

#[stable(feature = "xen_ext", since = "1.96.0")]
impl Disk {
    /// Opens and connects disk `vdev` for reading and, if the backend allows it, writing. Fails
    /// with "No such device" (`ErrorKind::Unsupported`) when the domain has no such disk (or
    /// the name is not `xvd` and letters), `ResourceBusy` when it is open already, `TimedOut`
    /// when the backend did not connect within 10 s.
    #[stable(feature = "xen_ext", since = "1.96.0")]
    pub fn open(vdev: &str) -> io::Result<Disk> {
        Self::open_with(vdev, false)
    }

    /// As [`Disk::open`], refusing every write (`ErrorKind::ReadOnlyFilesystem`) even if the
    /// backend would take it.
    #[stable(feature = "xen_ext", since = "1.96.0")]
    pub fn open_read_only(vdev: &str) -> io::Result<Disk> {
        Self::open_with(vdev, true)
    }

    fn open_with(vdev: &str, read_only: bool) -> io::Result<Disk> {
        let mut info = abi::XkBlkInfo::default();
        // SAFETY: `vdev` is valid for reads of its length, `info` for a write.
        let ret = unsafe { abi::xk_blk_open(vdev.as_ptr(), vdev.len(), read_only as u32, &mut info) };
        if ret < 0 {
            return Err(super::error(ret));
        }
        Ok(Disk { handle: ret as u64, info })
    }

    /// The disk's size in bytes.
    #[stable(feature = "xen_ext", since = "1.96.0")]
    pub fn len(&self) -> u64 {
        self.info.sectors * 512
    }

    /// The logical sector size (the backend's `sector-size`): every offset and length is a
    /// multiple of it.
    #[stable(feature = "xen_ext", since = "1.96.0")]
    pub fn sector_size(&self) -> u32 {
        self.info.sector_size
    }

    /// Whether writes are refused: the backend attached the disk read-only, or it was opened
    /// with [`Disk::open_read_only`].
    #[stable(feature = "xen_ext", since = "1.96.0")]
    pub fn is_read_only(&self) -> bool {
        self.info.flags & abi::BLK_READ_ONLY != 0
    }

    /// Whether the backend offers a cache flush (or barrier), which [`Disk::sync`] sends.
    #[stable(feature = "xen_ext", since = "1.96.0")]
    pub fn can_flush(&self) -> bool {
        self.info.flags & abi::BLK_FLUSH != 0
    }

    /// Fills `buf` from byte `offset`. `InvalidInput` when either is not a multiple of the
    /// sector size or the range passes the disk's end; an I/O error when the backend failed.
    #[stable(feature = "xen_ext", since = "1.96.0")]
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        // SAFETY: `buf` is valid for writes of its length.
        check(unsafe { abi::xk_blk_read(self.handle, offset, buf.as_mut_ptr(), buf.len()) })
    }

    /// Writes `data` at byte `offset`, as [`Disk::read_at`] reads; `ReadOnlyFilesystem` on a
    /// read-only disk (nothing reaches the backend).
    #[stable(feature = "xen_ext", since = "1.96.0")]
    pub fn write_at(&self, data: &[u8], offset: u64) -> io::Result<()> {
        // SAFETY: `data` is valid for reads of its length.
        check(unsafe { abi::xk_blk_write(self.handle, offset, data.as_ptr(), data.len()) })
    }

    /// Makes every completed write durable: the backend flushes its disk cache (or writes a
    /// barrier) and answers after. A no-op on a read-only disk.
    #[stable(feature = "xen_ext", since = "1.96.0")]
    pub fn sync(&self) -> io::Result<()> {
        check(abi::xk_blk_flush(self.handle))
    }
}

#[stable(feature = "xen_ext", since = "1.96.0")]
impl Drop for Disk {
    fn drop(&mut self) {
        let _ = abi::xk_blk_close(self.handle);
    }
}
