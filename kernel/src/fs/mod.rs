//! Files: the packed archive from the guest's ramdisk module, mounted at `/`, under a writable
//! in-memory overlay (`docs/fs.md`).
//!
//! [`cpio`] reads the archive, [`tree`] is the filesystem, [`data`] a file's contents and
//! [`chunk`] the memory they take; all of it is pure and tested on the host. The guest keeps
//! one [`tree::Tree`] behind a sleeping [`Mutex`](crate::sync::Mutex): a call may copy
//! megabytes or allocate, which a spin lock (upcalls masked) must not wait on.

pub mod chunk;
pub mod cpio;
pub mod data;
pub mod errno;
pub mod tree;

#[cfg(target_os = "none")]
pub use self::target::*;

#[cfg(target_os = "none")]
mod target {
    use super::errno::Errno;
    use super::tree::{Skipped, Time, Tree};
    use crate::sync::Mutex;
    use core::fmt;

    /// The filesystem, mounted once at boot.
    static FS: Mutex<Option<Tree>> = Mutex::new(None);

    /// The time of day, for modification times.
    pub fn now() -> Time {
        let (secs, nanos) = crate::time::wallclock();
        Time { secs, nanos }
    }

    /// A name from the archive, printable whatever its bytes.
    struct Name<'a>(&'a [u8]);

    impl fmt::Display for Name<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            for &byte in self.0.iter().take(200) {
                write!(f, "{}", core::ascii::escape_default(byte))?;
            }
            Ok(())
        }
    }

    /// Mounts the packed archive (if the guest has one) at `/` and makes `/tmp`; on a
    /// malformed archive returns what was wrong and at which byte, for a boot error.
    pub fn mount(archive: Option<&'static [u8]>) -> Result<(), (&'static str, usize)> {
        let now = now();
        let mut tree = Tree::new(now);
        if let Some(bytes) = archive {
            let mut report = |s: Skipped<'_>| warn!("packed files: skipped \"{}\": {}", Name(s.name), s.why);
            let added = tree.mount(bytes, now, &mut report).map_err(|e| e.describe())?;
            info!("packed files: {added} entries from {} KiB mounted at /", bytes.len() >> 10);
        }
        if tree.stat(b"/tmp").is_err() && tree.mkdir(b"/tmp", 0o777, now).is_ok() {
            let _ = tree.set_perm(b"/tmp", 0o1777);
        }
        *FS.lock() = Some(tree);
        Ok(())
    }

    /// Runs `f` on the filesystem, holding its lock.
    pub fn with<R>(f: impl FnOnce(&mut Tree) -> Result<R, Errno>) -> Result<R, Errno> {
        let mut guard = FS.lock();
        match guard.as_mut() {
            Some(tree) => f(tree),
            // Only before boot mounted it, when no program runs.
            None => Err(Errno::ENOENT),
        }
    }
}
