//! A disk image given to the guest as a Xen virtual disk (`docs/fs.md`, "Disks"):
//! `--disk IMAGE[:ro]`, a batch job's `"disk"`.
//!
//! In `--mode domu` the image is a drive of QEMU's machine (virtio-blk), which the Linux dom0
//! sees as `/dev/vdX`; the guest's xl config hands that to blkback
//! (`disk = [ 'format=raw,vdev=xvda,access=rw,target=/dev/vdX' ]`). On a Xen host (`--mode xl`)
//! the xl config names the image file itself.

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};

/// The name the guest sees the disk under (`vdev`): its first disk.
pub const VDEV: &str = "xvda";

/// One disk for a guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    /// The raw image file on the host.
    pub path: PathBuf,
    /// Attached read-only: the backend refuses writes, and in `--mode domu` QEMU opens the
    /// file read-only when no job of the boot writes it.
    pub read_only: bool,
    /// The logical sector size the dom0 sees (QEMU's `logical_block_size`): 512 or 4096.
    pub sector_size: u32,
}

impl Disk {
    /// Reads `IMAGE[:ro]`.
    pub fn parse(value: &str) -> Result<Disk> {
        let (path, read_only) = match value.strip_suffix(":ro") {
            Some(path) => (path, true),
            None => (value.strip_suffix(":rw").unwrap_or(value), false),
        };
        if path.is_empty() {
            bail!("--disk {value:?}: give an image file, IMAGE or IMAGE:ro");
        }
        Ok(Disk { path: path.into(), read_only, sector_size: 512 })
    }

    /// Checks the sector size and that the image is a file whose size is whole sectors; makes
    /// the path absolute.
    pub fn checked(&self) -> Result<Disk> {
        if self.sector_size != 512 && self.sector_size != 4096 {
            bail!("disk sector size {}: give 512 or 4096", self.sector_size);
        }
        let path = self
            .path
            .canonicalize()
            .with_context(|| format!("cannot open the disk image {}", self.path.display()))?;
        let len = std::fs::metadata(&path)?.len();
        if !path.is_file() || len == 0 || len % u64::from(self.sector_size) != 0 {
            bail!(
                "the disk image {} must be a file of whole {}-byte sectors ({len} bytes)",
                path.display(),
                self.sector_size
            );
        }
        Ok(Disk { path, ..self.clone() })
    }

    /// The xl config's `disk` line for a disk whose backing is `target` (a dom0 device or the
    /// image file).
    pub fn xl_line(&self, target: &str) -> String {
        let access = if self.read_only { "ro" } else { "rw" };
        // `target=` must come last: xl takes the rest of the string as the target.
        format!("disk = [ 'format=raw,vdev={VDEV},access={access},target={target}' ]")
    }
}

/// One drive of QEMU's machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drive {
    /// The image file.
    pub path: PathBuf,
    /// QEMU opens it read-only (`readonly=on`).
    pub read_only: bool,
    /// Its logical sector size.
    pub sector_size: u32,
}

/// The dom0 device of the `index`th drive (`/dev/vda`, ...).
pub fn dom0_device(index: usize) -> Result<String> {
    let Some(letter) = u8::try_from(index).ok().filter(|&i| i < 26).map(|i| (b'a' + i) as char)
    else {
        bail!("at most 26 disk images a boot");
    };
    Ok(format!("/dev/vd{letter}"))
}

/// The drives a boot needs for these jobs' disks: one per image (and sector size), read-only
/// when every job that uses it is; each job's index into them.
pub fn drives<'a>(disks: impl Iterator<Item = Option<&'a Disk>>) -> Result<(Vec<Drive>, Vec<Option<usize>>)> {
    let mut drives: Vec<Drive> = Vec::new();
    let mut which = Vec::new();
    for disk in disks {
        let Some(disk) = disk else {
            which.push(None);
            continue;
        };
        let index = match drives.iter().position(|d| d.path == disk.path) {
            Some(i) if drives[i].sector_size != disk.sector_size => bail!(
                "the disk image {} is given with two sector sizes",
                disk.path.display()
            ),
            Some(i) => {
                drives[i].read_only &= disk.read_only;
                i
            }
            None => {
                drives.push(Drive {
                    path: disk.path.clone(),
                    read_only: disk.read_only,
                    sector_size: disk.sector_size,
                });
                drives.len() - 1
            }
        };
        dom0_device(index)?;
        which.push(Some(index));
    }
    Ok((drives, which))
}

/// QEMU's arguments for the drives, in order (`/dev/vda` first).
pub fn qemu_args(drives: &[Drive]) -> Result<Vec<OsString>> {
    let mut args = Vec::new();
    for (i, d) in drives.iter().enumerate() {
        let Some(path) = d.path.to_str() else {
            bail!("the disk image path {} is not UTF-8", d.path.display());
        };
        // QEMU's option syntax doubles a comma inside a value.
        let mut drive = format!("file={},format=raw,if=none,id=disk{i}", path.replace(',', ",,"));
        if d.read_only {
            drive.push_str(",readonly=on");
        }
        let mut device = format!("virtio-blk-pci,drive=disk{i}");
        if d.sector_size != 512 {
            let n = d.sector_size;
            device.push_str(&format!(",logical_block_size={n},physical_block_size={n}"));
        }
        args.extend(["-drive".into(), drive.into(), "-device".into(), device.into()]);
    }
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk(path: &str, read_only: bool, sector_size: u32) -> Disk {
        Disk { path: path.into(), read_only, sector_size }
    }

    #[test]
    fn reads_image_and_ro() {
        assert_eq!(Disk::parse("a.img").unwrap(), disk("a.img", false, 512));
        assert_eq!(Disk::parse("/x/a.img:ro").unwrap(), disk("/x/a.img", true, 512));
        assert_eq!(Disk::parse("a:b.img:rw").unwrap(), disk("a:b.img", false, 512));
        assert!(Disk::parse(":ro").is_err());
        assert!(Disk::parse("").is_err());
    }

    #[test]
    fn the_xl_line_names_the_target_last() {
        assert_eq!(
            disk("a", true, 512).xl_line("/dev/vdb"),
            "disk = [ 'format=raw,vdev=xvda,access=ro,target=/dev/vdb' ]"
        );
        assert!(disk("a", false, 512).xl_line("/i.img").contains("access=rw,target=/i.img'"));
    }

    #[test]
    fn jobs_share_a_drive_per_image() {
        let a = disk("/a", true, 512);
        let a_rw = disk("/a", false, 512);
        let b = disk("/b", true, 4096);
        let (drives, which) = drives([Some(&a), None, Some(&b), Some(&a_rw)].into_iter()).unwrap();
        assert_eq!(which, [Some(0), None, Some(1), Some(0)]);
        assert_eq!(drives[0], Drive { path: "/a".into(), read_only: false, sector_size: 512 });
        assert_eq!(drives[1], Drive { path: "/b".into(), read_only: true, sector_size: 4096 });
        let (only_ro, _) = drives_of(&[&a, &a]);
        assert!(only_ro[0].read_only, "no job writes it");
        assert!(super::drives([Some(&a), Some(&disk("/a", false, 4096))].into_iter()).is_err());
    }

    fn drives_of(disks: &[&Disk]) -> (Vec<Drive>, Vec<Option<usize>>) {
        drives(disks.iter().map(|d| Some(*d))).unwrap()
    }

    #[test]
    fn qemu_gets_a_virtio_drive_each() {
        let d = [
            Drive { path: "/i,1.img".into(), read_only: false, sector_size: 512 },
            Drive { path: "/j.img".into(), read_only: true, sector_size: 4096 },
        ];
        let args: Vec<String> =
            qemu_args(&d).unwrap().into_iter().map(|a| a.into_string().unwrap()).collect();
        assert_eq!(
            args,
            [
                "-drive",
                "file=/i,,1.img,format=raw,if=none,id=disk0",
                "-device",
                "virtio-blk-pci,drive=disk0",
                "-drive",
                "file=/j.img,format=raw,if=none,id=disk1,readonly=on",
                "-device",
                "virtio-blk-pci,drive=disk1,logical_block_size=4096,physical_block_size=4096",
            ]
        );
        assert_eq!(dom0_device(1).unwrap(), "/dev/vdb");
        assert!(dom0_device(26).is_err());
    }
}
