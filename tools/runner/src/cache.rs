//! Keeps files the runner derives once: the uncompressed hypervisor and the
//! dom0 harness build, under `$XDG_CACHE_HOME/xen-rust` (or
//! `~/.cache/xen-rust`).

use std::fs;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

/// The gzip magic bytes (RFC 1952, 2.3.1).
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Returns the cache directory from the XDG rules: `$XDG_CACHE_HOME` when it
/// is an absolute path, else `$HOME/.cache`.
pub fn dir_from(xdg_cache_home: Option<&Path>, home: Option<&Path>) -> Result<PathBuf> {
    let base = match (xdg_cache_home.filter(|p| p.is_absolute()), home) {
        (Some(xdg), _) => xdg.to_owned(),
        (None, Some(home)) => home.join(".cache"),
        (None, None) => bail!("neither XDG_CACHE_HOME nor HOME is set: no cache directory"),
    };
    Ok(base.join("xen-rust"))
}

/// Returns the cache directory for this process's environment.
pub fn dir() -> Result<PathBuf> {
    let xdg = std::env::var_os("XDG_CACHE_HOME").map(PathBuf::from);
    let home = std::env::var_os("HOME").map(PathBuf::from);
    dir_from(xdg.as_deref(), home.as_deref())
}

/// Returns the first 16 bytes of a digest in hex (enough to key a cache).
pub fn short_hex(digest: &[u8]) -> String {
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// Returns an uncompressed copy of the hypervisor, for QEMU's multiboot
/// loader, which cannot read gzip.
///
/// An uncompressed file is used as it is. A gzipped one is unpacked once into
/// the cache, named after the hash of the `.gz`, through a temporary file and
/// a rename so that parallel runners never see half a file.
pub fn hypervisor(path: &Path, cache: &Path) -> Result<PathBuf> {
    let data =
        fs::read(path).with_context(|| format!("reading the hypervisor {}", path.display()))?;
    if !data.starts_with(&GZIP_MAGIC) {
        return Ok(path.to_owned());
    }
    let name = format!("xen-{}", short_hex(&Sha256::digest(&data)));
    let dest = cache.join(name);
    if dest.is_file() {
        return Ok(dest);
    }
    fs::create_dir_all(cache).with_context(|| format!("creating {}", cache.display()))?;
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(&data[..])
        .read_to_end(&mut plain)
        .with_context(|| format!("unpacking {}", path.display()))?;
    write_atomically(&dest, &plain)?;
    Ok(dest)
}

/// Writes a file through a temporary file in the same directory.
fn write_atomically(dest: &Path, data: &[u8]) -> Result<()> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    tmp.write_all(data)?;
    tmp.persist(dest).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_xdg() {
        let got = dir_from(Some(Path::new("/c")), Some(Path::new("/h"))).unwrap();
        assert_eq!(got, Path::new("/c/xen-rust"));
        let got = dir_from(None, Some(Path::new("/h"))).unwrap();
        assert_eq!(got, Path::new("/h/.cache/xen-rust"));
        // A relative XDG_CACHE_HOME is ignored, as the spec says.
        let got = dir_from(Some(Path::new("rel")), Some(Path::new("/h"))).unwrap();
        assert_eq!(got, Path::new("/h/.cache/xen-rust"));
        assert!(dir_from(None, None).is_err());
    }

    #[test]
    fn unpacks_once_keyed_by_hash() {
        let dir = tempfile::tempdir().unwrap();
        let gz = dir.path().join("xen.gz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(b"hypervisor").unwrap();
        fs::write(&gz, enc.finish().unwrap()).unwrap();

        let cache = dir.path().join("cache");
        let first = hypervisor(&gz, &cache).unwrap();
        assert_eq!(fs::read(&first).unwrap(), b"hypervisor");
        assert!(first.file_name().unwrap().to_str().unwrap().starts_with("xen-"));
        assert_eq!(hypervisor(&gz, &cache).unwrap(), first);

        let plain = dir.path().join("xen");
        fs::write(&plain, b"\x7fELF").unwrap();
        assert_eq!(hypervisor(&plain, &cache).unwrap(), plain);
    }
}
