//! Block devices: blkfront, the driver of Xen's virtual disks (`docs/fs.md`, "Disks").
//!
//! [`ring`] is the pure logic of blkif's shared ring, tested on the host; `blkfront` connects
//! a disk through xenstore and reads, writes and flushes its sectors.

#[cfg(target_os = "none")]
pub mod blkfront;
pub mod ring;
