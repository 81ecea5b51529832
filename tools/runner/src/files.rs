//! Packs a folder of the host into the guest's packed files: a cpio newc archive that Xen
//! loads as the guest's ramdisk module and the guest's kernel mounts at `/` (`docs/fs.md`).
//!
//! Regular files and directories are packed with their permission bits and modification
//! times, in name order (the same folder always gives the same archive). Anything else
//! (symbolic links, devices, sockets) is left out with a warning: the guest's filesystem has
//! only files and directories.

use std::io::Write;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use anyhow::{bail, Context, Result};

use crate::cpio::CpioWriter;

/// The folder `cargo +xen run` packs when no `--files` is given: `xen-files/` next to the
/// package's `Cargo.toml` (cargo gives its runner `CARGO_MANIFEST_DIR`).
pub const CONVENTION_DIR: &str = "xen-files";

/// Returns the conventional folder of the package cargo runs, when it has one.
pub fn convention_dir(manifest_dir: Option<&Path>) -> Option<PathBuf> {
    let dir = manifest_dir?.join(CONVENTION_DIR);
    dir.is_dir().then_some(dir)
}

/// Packs `dir` (its contents, not the folder itself) as a newc archive; what cannot be packed
/// is reported on `warn`.
pub fn pack(dir: &Path, warn: &mut dyn Write) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(dir)
        .with_context(|| format!("cannot read the folder of packed files {}", dir.display()))?;
    if !meta.is_dir() {
        bail!("the packed files {} are not a folder", dir.display());
    }
    let mut cpio = CpioWriter::new(Vec::new());
    add_dir(&mut cpio, dir, "", warn)?;
    Ok(cpio.finish()?)
}

/// Adds the entries of `dir`, whose path in the archive is `prefix` (empty for the root).
fn add_dir(cpio: &mut CpioWriter<Vec<u8>>, dir: &Path, prefix: &str, warn: &mut dyn Write) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("reading {}", dir.display()))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            bail!("{} has a name that is not UTF-8, which the archive cannot carry", path.display());
        };
        let name = if prefix.is_empty() { name } else { format!("{prefix}/{name}") };
        let meta =
            std::fs::symlink_metadata(&path).with_context(|| format!("reading {}", path.display()))?;
        let perm = meta.permissions().mode() & 0o7777;
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX));
        if meta.is_dir() {
            cpio.dir_at(&name, perm, mtime)?;
            add_dir(cpio, &path, &name, warn)?;
        } else if meta.is_file() {
            let data = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            cpio.file_at(&name, perm, mtime, &data)
                .with_context(|| format!("packing {}", path.display()))?;
        } else {
            writeln!(
                warn,
                "xen-runner: warning: {} is not a regular file or a folder: not packed \
                 (the guest has no symbolic links or devices)",
                path.display()
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names, modes and data of an archive, read with the format's rules.
    fn entries(bytes: &[u8]) -> Vec<(String, u32, u32, Vec<u8>)> {
        let mut out = Vec::new();
        let mut at = 0;
        loop {
            let field = |i: usize| {
                let hex = std::str::from_utf8(&bytes[at + 6 + 8 * i..at + 14 + 8 * i]).unwrap();
                u32::from_str_radix(hex, 16).unwrap()
            };
            assert_eq!(&bytes[at..at + 6], b"070701");
            let (mode, mtime, size, name_size) = (field(1), field(5), field(6) as usize, field(11) as usize);
            let name = String::from_utf8(bytes[at + 110..at + 110 + name_size - 1].to_vec()).unwrap();
            let data_at = (at + 110 + name_size).next_multiple_of(4);
            let data = bytes[data_at..data_at + size].to_vec();
            at = (data_at + size).next_multiple_of(4);
            if name == "TRAILER!!!" {
                return out;
            }
            out.push((name, mode, mtime, data));
        }
    }

    #[test]
    fn packs_files_and_folders_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("b/deep")).unwrap();
        std::fs::write(root.join("b/deep/f.txt"), b"deep file\n").unwrap();
        std::fs::write(root.join("a.txt"), b"first").unwrap();
        std::fs::write(root.join("b/empty"), b"").unwrap();
        std::fs::set_permissions(root.join("a.txt"), std::fs::Permissions::from_mode(0o640))
            .unwrap();
        std::os::unix::fs::symlink("a.txt", root.join("link")).unwrap();
        let mut warnings = Vec::new();
        let bytes = pack(root, &mut warnings).unwrap();
        assert_eq!(bytes.len() % 512, 0);
        let got = entries(&bytes);
        let names: Vec<&str> = got.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(names, ["a.txt", "b", "b/deep", "b/deep/f.txt", "b/empty"]);
        assert_eq!(got[0].1, 0o100640);
        assert_eq!(got[0].3, b"first");
        assert_eq!(got[1].1 & 0o170000, 0o040000);
        assert_eq!(got[3].3, b"deep file\n");
        let now = std::time::SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        assert!((got[3].2 as u64).abs_diff(now) < 3600, "mtime {} vs now {now}", got[3].2);
        let warnings = String::from_utf8(warnings).unwrap();
        assert!(warnings.contains("link is not a regular file or a folder"), "{warnings}");
        // The same folder gives the same bytes.
        assert_eq!(pack(root, &mut Vec::new()).unwrap(), bytes);
    }

    #[test]
    fn an_empty_folder_is_an_empty_archive() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = pack(dir.path(), &mut Vec::new()).unwrap();
        assert!(entries(&bytes).is_empty());
    }

    #[test]
    fn refuses_what_is_not_a_folder() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        let err = pack(&file, &mut Vec::new()).unwrap_err().to_string();
        assert!(err.contains("are not a folder"), "{err}");
        let err = pack(&dir.path().join("missing"), &mut Vec::new()).unwrap_err().to_string();
        assert!(err.contains("cannot read the folder"), "{err}");
    }

    #[test]
    fn the_convention_is_xen_files_next_to_cargo_toml() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(convention_dir(Some(dir.path())), None);
        assert_eq!(convention_dir(None), None);
        std::fs::create_dir(dir.path().join("xen-files")).unwrap();
        assert_eq!(convention_dir(Some(dir.path())), Some(dir.path().join("xen-files")));
    }
}
