//! The in-memory filesystem: a tree of directories and files mounted at `/` from the packed
//! archive, writable in memory, with open-file handles and the current directory.
//!
//! Pure logic, tested on the host; the guest keeps one `Tree` behind a sleeping lock
//! ([`super`]). Paths are byte strings as on Linux and resolve as Linux resolves them when
//! there are no symbolic links: component by component from `/` or the current directory,
//! `..` going to the parent (the root's parent is itself), every component before the last a
//! directory. Errors are Linux's for the same call.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use super::cpio::{self, CpioError};
use super::data::Data;
use super::errno::Errno;

/// A node's number (its "inode"): an index into the node table; `ROOT` is `/`.
pub type Ino = usize;
pub const ROOT: Ino = 0;

/// The longest path taken, with its NUL (Linux's `PATH_MAX`).
pub const PATH_MAX: usize = 4096;
/// The longest name of one component (Linux's `NAME_MAX`).
pub const NAME_MAX: usize = 255;
/// The most handles open at once.
pub const MAX_HANDLES: usize = 1 << 16;

/// Puts `handle` in the first free slot of `handles` (growing it up to [`MAX_HANDLES`]) and
/// returns the slot: `EMFILE` when all are taken, `ENOSPC` when memory for one more is not there.
pub fn insert_handle<T>(handles: &mut Vec<Option<T>>, handle: T) -> Result<usize, Errno> {
    let slot = match handles.iter().position(Option::is_none) {
        Some(slot) => slot,
        None if handles.len() < MAX_HANDLES => {
            handles.try_reserve(1).map_err(|_| Errno::ENOSPC)?;
            handles.push(None);
            handles.len() - 1
        }
        None => return Err(Errno::EMFILE),
    };
    handles[slot] = Some(handle);
    Ok(slot)
}
/// Permission bits taken away from those a program creates with, as Linux's default umask.
pub const UMASK: u32 = 0o022;

/// `open` flags, Linux's values (`asm-generic/fcntl.h`).
pub mod flags {
    pub const O_ACCMODE: u32 = 0o3;
    pub const O_RDONLY: u32 = 0o0;
    pub const O_WRONLY: u32 = 0o1;
    pub const O_RDWR: u32 = 0o2;
    pub const O_CREAT: u32 = 0o100;
    pub const O_EXCL: u32 = 0o200;
    pub const O_TRUNC: u32 = 0o1000;
    pub const O_APPEND: u32 = 0o2000;
    pub const O_DIRECTORY: u32 = 0o200000;
}

/// A time of day, since the UNIX epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Time {
    pub secs: i64,
    pub nanos: u32,
}

/// What a node holds.
enum Body {
    File(Data),
    Dir(BTreeMap<Vec<u8>, Ino>),
}

struct Node {
    body: Body,
    /// Permission bits (`0o7777`).
    perm: u32,
    modified: Time,
    created: Time,
    /// The directory whose entry names it (the root's is the root).
    parent: Ino,
    /// Whether a directory entry names it; an unlinked node lives on while referenced.
    linked: bool,
    /// Open handles and the current directory that refer to it.
    refs: usize,
}

impl Node {
    fn is_dir(&self) -> bool {
        matches!(self.body, Body::Dir(_))
    }
}

/// What `stat` tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    pub ino: Ino,
    pub is_dir: bool,
    pub perm: u32,
    pub size: u64,
    pub modified: Time,
    pub created: Time,
}

/// `lseek`'s origins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Whence {
    Start,
    Current,
    End,
}

struct Handle {
    ino: Ino,
    pos: u64,
    read: bool,
    write: bool,
    append: bool,
}

/// A path looked up: the directory its last component is in, that component, and the node
/// it names if there is one.
struct Walk<'p> {
    parent: Ino,
    /// The last component; `None` for a path of slashes only, or one ending in `.` or `..`.
    name: Option<&'p [u8]>,
    node: Option<Ino>,
    /// The path ends with `/` (or `.`/`..`): what it names must be a directory.
    wants_dir: bool,
}

/// An archive entry left out at mount, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Skipped<'a> {
    pub name: &'a [u8],
    pub why: &'static str,
}

/// The filesystem.
pub struct Tree {
    nodes: Vec<Option<Node>>,
    free_inos: Vec<Ino>,
    handles: Vec<Option<Handle>>,
    cwd: Ino,
}

impl Tree {
    /// An empty filesystem: a root directory, which is also the current one.
    pub fn new(now: Time) -> Tree {
        let root = Node {
            body: Body::Dir(BTreeMap::new()),
            perm: 0o755,
            modified: now,
            created: now,
            parent: ROOT,
            linked: true,
            refs: 1,
        };
        Tree { nodes: alloc::vec![Some(root)], free_inos: Vec::new(), handles: Vec::new(), cwd: ROOT }
    }

    fn node(&self, ino: Ino) -> &Node {
        self.nodes[ino].as_ref().expect("a live node")
    }

    fn node_mut(&mut self, ino: Ino) -> &mut Node {
        self.nodes[ino].as_mut().expect("a live node")
    }

    fn entries(&self, ino: Ino) -> Result<&BTreeMap<Vec<u8>, Ino>, Errno> {
        match &self.node(ino).body {
            Body::Dir(entries) => Ok(entries),
            Body::File(_) => Err(Errno::ENOTDIR),
        }
    }

    fn entries_mut(&mut self, ino: Ino) -> &mut BTreeMap<Vec<u8>, Ino> {
        match &mut self.node_mut(ino).body {
            Body::Dir(entries) => entries,
            Body::File(_) => unreachable!("checked to be a directory"),
        }
    }

    fn add_node(&mut self, node: Node) -> Ino {
        match self.free_inos.pop() {
            Some(ino) => {
                self.nodes[ino] = Some(node);
                ino
            }
            None => {
                self.nodes.push(Some(node));
                self.nodes.len() - 1
            }
        }
    }

    /// Frees a node that no entry names and nothing refers to.
    fn release(&mut self, ino: Ino) {
        let node = self.node(ino);
        if !node.linked && node.refs == 0 {
            self.nodes[ino] = None;
            self.free_inos.push(ino);
        }
    }

    /// Looks `path` up (see the module's summary).
    fn walk<'p>(&self, path: &'p [u8]) -> Result<Walk<'p>, Errno> {
        if path.is_empty() {
            return Err(Errno::ENOENT);
        }
        if path.len() >= PATH_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        if path.contains(&0) {
            return Err(Errno::EINVAL);
        }
        let mut current = if path[0] == b'/' { ROOT } else { self.cwd };
        let mut parts = path.split(|&b| b == b'/').filter(|p| !p.is_empty()).peekable();
        let mut walk = Walk { parent: current, name: None, node: Some(current), wants_dir: true };
        while let Some(part) = parts.next() {
            if part.len() > NAME_MAX {
                return Err(Errno::ENAMETOOLONG);
            }
            let entries = self.entries(current)?;
            let next = match part {
                b"." => Some(current),
                b".." => Some(self.node(current).parent),
                _ => entries.get(part).copied(),
            };
            if parts.peek().is_none() {
                let special = part == b"." || part == b"..";
                let name = if special { None } else { Some(part) };
                let wants_dir = special || path.ends_with(b"/");
                walk = Walk { parent: current, name, node: next, wants_dir };
                break;
            }
            current = next.ok_or(Errno::ENOENT)?;
        }
        Ok(walk)
    }

    /// The node `path` names, which must exist.
    fn lookup(&self, path: &[u8]) -> Result<Ino, Errno> {
        let walk = self.walk(path)?;
        let ino = walk.node.ok_or(Errno::ENOENT)?;
        if walk.wants_dir && !self.node(ino).is_dir() {
            return Err(Errno::ENOTDIR);
        }
        Ok(ino)
    }

    /// Adds `name` to directory `parent` as a new node.
    fn create(&mut self, parent: Ino, name: &[u8], body: Body, perm: u32, now: Time) -> Result<Ino, Errno> {
        if !self.node(parent).linked {
            // Linux: nothing can be created in a directory that was removed.
            return Err(Errno::ENOENT);
        }
        let mut key = Vec::new();
        key.try_reserve_exact(name.len()).map_err(|_| Errno::ENOSPC)?;
        key.extend_from_slice(name);
        let node = Node { body, perm, modified: now, created: now, parent, linked: true, refs: 0 };
        let ino = self.add_node(node);
        self.entries_mut(parent).insert(key, ino);
        self.node_mut(parent).modified = now;
        Ok(ino)
    }

    /// What `stat` says of `path`.
    pub fn stat(&self, path: &[u8]) -> Result<Stat, Errno> {
        Ok(self.stat_of(self.lookup(path)?))
    }

    fn stat_of(&self, ino: Ino) -> Stat {
        let node = self.node(ino);
        let size = match &node.body {
            Body::File(data) => data.len(),
            // As tmpfs: a directory's size grows with its entries.
            Body::Dir(entries) => (entries.len() as u64 + 2) * 20,
        };
        Stat { ino, is_dir: node.is_dir(), perm: node.perm, size, modified: node.modified, created: node.created }
    }

    /// Opens (and perhaps creates) `path` with `open(2)`'s flags; returns a handle.
    pub fn open(&mut self, path: &[u8], open_flags: u32, mode: u32, now: Time) -> Result<usize, Errno> {
        use flags::*;
        let (read, write) = match open_flags & O_ACCMODE {
            O_RDONLY => (true, false),
            O_WRONLY => (false, true),
            O_RDWR => (true, true),
            _ => return Err(Errno::EINVAL),
        };
        let walk = self.walk(path)?;
        let ino = match walk.node {
            Some(_) if open_flags & O_CREAT != 0 && open_flags & O_EXCL != 0 => return Err(Errno::EEXIST),
            Some(ino) => {
                let is_dir = self.node(ino).is_dir();
                if is_dir && write {
                    return Err(Errno::EISDIR);
                }
                if !is_dir && (walk.wants_dir || open_flags & O_DIRECTORY != 0) {
                    return Err(Errno::ENOTDIR);
                }
                if !is_dir && write && open_flags & O_TRUNC != 0 {
                    self.set_len_of(ino, 0, now)?;
                }
                ino
            }
            None if open_flags & O_CREAT == 0 => return Err(Errno::ENOENT),
            None => {
                let name = walk.name.ok_or(Errno::EISDIR)?;
                if walk.wants_dir {
                    return Err(Errno::EISDIR);
                }
                self.create(walk.parent, name, Body::File(Data::new()), mode & 0o7777 & !UMASK, now)?
            }
        };
        let handle = Handle { ino, pos: 0, read, write, append: open_flags & O_APPEND != 0 };
        let slot = insert_handle(&mut self.handles, handle)?;
        self.node_mut(ino).refs += 1;
        Ok(slot)
    }

    fn handle(&self, handle: usize) -> Result<&Handle, Errno> {
        self.handles.get(handle).and_then(Option::as_ref).ok_or(Errno::EBADF)
    }

    /// Closes a handle.
    pub fn close(&mut self, handle: usize) -> Result<(), Errno> {
        let ino = self.handle(handle)?.ino;
        self.handles[handle] = None;
        self.node_mut(ino).refs -= 1;
        self.release(ino);
        Ok(())
    }

    /// Reads from the handle's position, moving it on.
    pub fn read(&mut self, handle: usize, buf: &mut [u8]) -> Result<usize, Errno> {
        let h = self.handle(handle)?;
        if !h.read {
            return Err(Errno::EBADF);
        }
        let (ino, pos) = (h.ino, h.pos);
        let count = match &self.node(ino).body {
            Body::File(data) => data.read(pos, buf),
            Body::Dir(_) => return Err(Errno::EISDIR),
        };
        self.handles[handle].as_mut().expect("checked above").pos += count as u64;
        Ok(count)
    }

    /// Writes at the handle's position (at the end when opened to append), moving it on.
    pub fn write(&mut self, handle: usize, buf: &[u8], now: Time) -> Result<usize, Errno> {
        let h = self.handle(handle)?;
        if !h.write {
            return Err(Errno::EBADF);
        }
        let (ino, pos, append) = (h.ino, h.pos, h.append);
        let node = self.node_mut(ino);
        let Body::File(data) = &mut node.body else { return Err(Errno::EISDIR) };
        let pos = if append { data.len() } else { pos };
        let count = data.write(pos, buf)?;
        if count > 0 {
            node.modified = now;
        }
        self.handles[handle].as_mut().expect("checked above").pos = pos + count as u64;
        Ok(count)
    }

    /// Moves the handle's position; returns the new one.
    pub fn seek(&mut self, handle: usize, offset: i64, whence: Whence) -> Result<u64, Errno> {
        let h = self.handle(handle)?;
        let base = match whence {
            Whence::Start => 0,
            Whence::Current => h.pos,
            Whence::End => self.stat_of(h.ino).size,
        };
        let pos = (base as i128) + offset as i128;
        if pos < 0 || pos > i64::MAX as i128 {
            return Err(Errno::EINVAL);
        }
        self.handles[handle].as_mut().expect("checked above").pos = pos as u64;
        Ok(pos as u64)
    }

    /// What `fstat` says of the handle's node.
    pub fn fstat(&self, handle: usize) -> Result<Stat, Errno> {
        Ok(self.stat_of(self.handle(handle)?.ino))
    }

    fn set_len_of(&mut self, ino: Ino, len: u64, now: Time) -> Result<(), Errno> {
        let node = self.node_mut(ino);
        let Body::File(data) = &mut node.body else { return Err(Errno::EISDIR) };
        data.set_len(len)?;
        node.modified = now;
        Ok(())
    }

    /// Cuts or extends the handle's file (`ftruncate`), which must be open for writing.
    pub fn set_len(&mut self, handle: usize, len: u64, now: Time) -> Result<(), Errno> {
        let h = self.handle(handle)?;
        if !h.write {
            return Err(Errno::EINVAL);
        }
        self.set_len_of(h.ino, len, now)
    }

    /// Sets the permission bits of `path`, or of a handle's node.
    pub fn set_perm(&mut self, path: &[u8], perm: u32) -> Result<(), Errno> {
        let ino = self.lookup(path)?;
        self.node_mut(ino).perm = perm & 0o7777;
        Ok(())
    }

    pub fn set_perm_of(&mut self, handle: usize, perm: u32) -> Result<(), Errno> {
        let ino = self.handle(handle)?.ino;
        self.node_mut(ino).perm = perm & 0o7777;
        Ok(())
    }

    /// Creates the directory `path` (`mkdir(2)`).
    pub fn mkdir(&mut self, path: &[u8], mode: u32, now: Time) -> Result<(), Errno> {
        let walk = self.walk(path)?;
        if walk.node.is_some() {
            return Err(Errno::EEXIST);
        }
        let name = walk.name.ok_or(Errno::EEXIST)?;
        self.create(walk.parent, name, Body::Dir(BTreeMap::new()), mode & 0o7777 & !UMASK, now)?;
        Ok(())
    }

    /// Takes `name` out of directory `parent`.
    fn unlink_entry(&mut self, parent: Ino, name: &[u8], now: Time) -> Ino {
        let ino = self.entries_mut(parent).remove(name).expect("an existing entry");
        self.node_mut(parent).modified = now;
        self.node_mut(ino).linked = false;
        ino
    }

    /// Removes the file `path` (`unlink(2)`); a file still open lives on until closed.
    pub fn unlink(&mut self, path: &[u8], now: Time) -> Result<(), Errno> {
        let walk = self.walk(path)?;
        let ino = walk.node.ok_or(Errno::ENOENT)?;
        if self.node(ino).is_dir() {
            return Err(Errno::EISDIR);
        }
        if walk.wants_dir {
            return Err(Errno::ENOTDIR);
        }
        let name = walk.name.expect("only directories lack a name");
        let ino = self.unlink_entry(walk.parent, name, now);
        self.release(ino);
        Ok(())
    }

    /// Removes the empty directory `path` (`rmdir(2)`).
    pub fn rmdir(&mut self, path: &[u8], now: Time) -> Result<(), Errno> {
        let walk = self.walk(path)?;
        let ino = walk.node.ok_or(Errno::ENOENT)?;
        let empty = self.entries(ino)?.is_empty();
        let Some(name) = walk.name else {
            // `/`, or a path ending in `.` or `..`, as Linux answers them.
            return Err(if ino == ROOT { Errno::EBUSY } else if path.ends_with(b"..") { Errno::ENOTEMPTY } else { Errno::EINVAL });
        };
        if !empty {
            return Err(Errno::ENOTEMPTY);
        }
        let ino = self.unlink_entry(walk.parent, name, now);
        self.release(ino);
        Ok(())
    }

    /// Whether `ino` is `ancestor` or inside it.
    fn is_within(&self, mut ino: Ino, ancestor: Ino) -> bool {
        loop {
            if ino == ancestor {
                return true;
            }
            if ino == ROOT {
                return false;
            }
            ino = self.node(ino).parent;
        }
    }

    /// Renames `old` to `new`, replacing what `new` named (`rename(2)`).
    pub fn rename(&mut self, old: &[u8], new: &[u8], now: Time) -> Result<(), Errno> {
        let from = self.walk(old)?;
        let ino = from.node.ok_or(Errno::ENOENT)?;
        let to = self.walk(new)?;
        let (Some(old_name), Some(new_name)) = (from.name, to.name) else { return Err(Errno::EBUSY) };
        let is_dir = self.node(ino).is_dir();
        if !is_dir && (from.wants_dir || to.wants_dir) {
            return Err(Errno::ENOTDIR);
        }
        if let Some(target) = to.node {
            if target == ino {
                return Ok(());
            }
            match (is_dir, self.node(target).is_dir()) {
                (true, false) => return Err(Errno::ENOTDIR),
                (false, true) => return Err(Errno::EISDIR),
                (true, true) if !self.entries(target)?.is_empty() => return Err(Errno::ENOTEMPTY),
                _ => {}
            }
        }
        if is_dir && self.is_within(to.parent, ino) {
            return Err(Errno::EINVAL);
        }
        if !self.node(to.parent).linked {
            return Err(Errno::ENOENT);
        }
        let mut key = Vec::new();
        key.try_reserve_exact(new_name.len()).map_err(|_| Errno::ENOSPC)?;
        key.extend_from_slice(new_name);
        if to.node.is_some() {
            let replaced = self.unlink_entry(to.parent, new_name, now);
            self.release(replaced);
        }
        self.entries_mut(from.parent).remove(old_name);
        self.node_mut(from.parent).modified = now;
        self.entries_mut(to.parent).insert(key, ino);
        self.node_mut(to.parent).modified = now;
        self.node_mut(ino).parent = to.parent;
        Ok(())
    }

    /// The entries of directory `path`, in byte order of their names: name and whether each
    /// is a directory.
    pub fn read_dir(&self, path: &[u8]) -> Result<impl Iterator<Item = (&[u8], bool)>, Errno> {
        let ino = self.lookup(path)?;
        let entries = self.entries(ino)?;
        Ok(entries.iter().map(|(name, &child)| (name.as_slice(), self.node(child).is_dir())))
    }

    /// The absolute path of a linked node, component by component from the root.
    fn path_of(&self, mut ino: Ino, out: &mut Vec<u8>) -> Result<(), Errno> {
        let mut names: Vec<&[u8]> = Vec::new();
        while ino != ROOT {
            let node = self.node(ino);
            if !node.linked {
                return Err(Errno::ENOENT);
            }
            let parent = self.entries(node.parent)?;
            let name = parent.iter().find(|&(_, &child)| child == ino).map(|(n, _)| n);
            names.push(name.ok_or(Errno::ENOENT)?);
            ino = node.parent;
        }
        out.clear();
        if names.is_empty() {
            out.push(b'/');
        }
        for name in names.iter().rev() {
            out.push(b'/');
            out.extend_from_slice(name);
        }
        Ok(())
    }

    /// The current directory's absolute path; `ENOENT` once it was removed.
    pub fn cwd(&self, out: &mut Vec<u8>) -> Result<(), Errno> {
        self.path_of(self.cwd, out)
    }

    /// Makes directory `path` the current one.
    pub fn chdir(&mut self, path: &[u8]) -> Result<(), Errno> {
        let ino = self.lookup(path)?;
        self.entries(ino)?;
        let old = self.cwd;
        self.node_mut(ino).refs += 1;
        self.cwd = ino;
        self.node_mut(old).refs -= 1;
        self.release(old);
        Ok(())
    }

    /// The absolute path of what `path` names, without `.`, `..` or repeated slashes.
    pub fn canonicalize(&self, path: &[u8], out: &mut Vec<u8>) -> Result<(), Errno> {
        self.path_of(self.lookup(path)?, out)
    }

    /// Adds the entries of a packed archive; an entry that cannot be added is skipped and
    /// reported to `skipped`. Fails only when the archive itself is malformed (then what was
    /// read before the fault stays).
    pub fn mount(
        &mut self,
        archive: &'static [u8],
        now: Time,
        skipped: &mut dyn FnMut(Skipped<'_>),
    ) -> Result<usize, CpioError> {
        let mut added = 0;
        for entry in cpio::Reader::new(archive) {
            let entry = entry?;
            match self.add_packed(&entry, now) {
                Ok(true) => added += 1,
                Ok(false) => {}
                Err(why) => skipped(Skipped { name: entry.name, why }),
            }
        }
        Ok(added)
    }

    /// Adds one archive entry; `Ok(false)` for the root itself.
    fn add_packed(&mut self, entry: &cpio::Entry<'static>, now: Time) -> Result<bool, &'static str> {
        let is_dir = match entry.mode & cpio::S_IFMT {
            cpio::S_IFDIR => true,
            cpio::S_IFREG => false,
            _ => return Err("not a regular file or a directory (links and devices are not supported)"),
        };
        let time = Time { secs: entry.mtime as i64, nanos: 0 };
        let perm = entry.mode & 0o7777;
        let mut parts = entry.name.split(|&b| b == b'/').filter(|p| !p.is_empty() && *p != b".").peekable();
        if parts.peek().is_none() {
            if !is_dir {
                return Err("a file with no name");
            }
            let root = self.node_mut(ROOT);
            (root.perm, root.modified) = (perm, time);
            return Ok(false);
        }
        let mut dir = ROOT;
        while let Some(part) = parts.next() {
            if part == b".." {
                return Err("a name with a `..` component");
            }
            if part.len() > NAME_MAX || part.contains(&0) {
                return Err("a name component longer than 255 bytes");
            }
            let existing = self.entries(dir).map_err(|_| "a parent that is a file")?.get(part).copied();
            let last = parts.peek().is_none();
            match (existing, last) {
                (Some(child), false) => dir = child,
                (None, false) => {
                    // A parent the archive did not list: made as an ordinary directory.
                    dir = self.create_packed(dir, part, Body::Dir(BTreeMap::new()), 0o755, now)?;
                }
                (Some(child), true) if is_dir && self.node(child).is_dir() => {
                    let node = self.node_mut(child);
                    (node.perm, node.modified, node.created) = (perm, time, time);
                    return Ok(true);
                }
                (Some(_), true) => return Err("a name that an earlier entry already has"),
                (None, true) => {
                    let body = if is_dir { Body::Dir(BTreeMap::new()) } else { Body::File(Data::Packed(entry.data)) };
                    self.create_packed(dir, part, body, perm, time)?;
                }
            }
        }
        Ok(true)
    }

    /// Creates a node from the archive, leaving the parent's modification time as the archive
    /// gave it.
    fn create_packed(&mut self, dir: Ino, name: &[u8], body: Body, perm: u32, time: Time) -> Result<Ino, &'static str> {
        let kept = self.node(dir).modified;
        let ino = self.create(dir, name, body, perm, time).map_err(|_| "out of memory")?;
        self.node_mut(dir).modified = kept;
        Ok(ino)
    }
}

#[cfg(test)]
mod tests {
    use super::flags::*;
    use super::*;
    use alloc::string::String;
    use alloc::vec;

    const T0: Time = Time { secs: 1_000, nanos: 0 };
    const T1: Time = Time { secs: 2_000, nanos: 5 };

    fn tree() -> Tree {
        Tree::new(T0)
    }

    fn write_file(t: &mut Tree, path: &str, data: &[u8]) {
        let h = t.open(path.as_bytes(), O_WRONLY | O_CREAT | O_TRUNC, 0o666, T1).unwrap();
        assert_eq!(t.write(h, data, T1), Ok(data.len()));
        t.close(h).unwrap();
    }

    fn read_file(t: &mut Tree, path: &str) -> Result<Vec<u8>, Errno> {
        let h = t.open(path.as_bytes(), O_RDONLY, 0, T1)?;
        let mut out = Vec::new();
        let mut buf = [0; 7];
        loop {
            match t.read(h, &mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) => {
                    t.close(h).unwrap();
                    return Err(e);
                }
            }
        }
        t.close(h).unwrap();
        Ok(out)
    }

    fn names(t: &Tree, path: &str) -> Vec<String> {
        t.read_dir(path.as_bytes())
            .unwrap()
            .map(|(n, d)| String::from_utf8(n.to_vec()).unwrap() + if d { "/" } else { "" })
            .collect()
    }

    fn cwd(t: &Tree) -> Result<String, Errno> {
        let mut out = Vec::new();
        t.cwd(&mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    fn canonical(t: &Tree, path: &str) -> Result<String, Errno> {
        let mut out = Vec::new();
        t.canonicalize(path.as_bytes(), &mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    /// A newc archive, as the runner writes it.
    fn archive(entries: &[(&str, u32, &[u8])]) -> &'static [u8] {
        let mut out = Vec::new();
        let mut add = |name: &[u8], mode: u32, data: &[u8]| {
            let fields = [1, mode, 0, 0, 1, 1_600_000_000, data.len() as u32, 0, 0, 0, 0, name.len() as u32 + 1, 0];
            out.extend_from_slice(b"070701");
            for f in fields {
                out.extend_from_slice(alloc::format!("{f:08x}").as_bytes());
            }
            out.extend_from_slice(name);
            out.push(0);
            out.resize(out.len().next_multiple_of(4), 0);
            out.extend_from_slice(data);
            out.resize(out.len().next_multiple_of(4), 0);
        };
        for &(name, mode, data) in entries {
            add(name.as_bytes(), mode, data);
        }
        add(b"TRAILER!!!", 0, b"");
        Vec::leak(out)
    }

    fn mounted() -> Tree {
        let mut t = tree();
        let bytes = archive(&[
            ("etc", 0o40755, b""),
            ("etc/motd", 0o100644, b"welcome\n"),
            ("data", 0o40755, b""),
            ("data/numbers.txt", 0o100444, b"1 2 3\n"),
            ("data/deep/er/file", 0o100600, b"deep"),
        ]);
        let mut skipped = Vec::new();
        let added = t.mount(bytes, T0, &mut |s| skipped.push((s.name.to_vec(), s.why))).unwrap();
        assert_eq!(added, 5);
        assert!(skipped.is_empty(), "{skipped:?}");
        t
    }

    #[test]
    fn packed_files_are_read_and_listed() {
        let mut t = mounted();
        assert_eq!(read_file(&mut t, "/etc/motd").unwrap(), b"welcome\n");
        assert_eq!(read_file(&mut t, "data//./deep/../numbers.txt").unwrap(), b"1 2 3\n");
        assert_eq!(names(&t, "/"), ["data/", "etc/"]);
        assert_eq!(names(&t, "/data"), ["deep/", "numbers.txt"]);
        let stat = t.stat(b"/data/numbers.txt").unwrap();
        assert_eq!((stat.is_dir, stat.perm, stat.size), (false, 0o444, 6));
        assert_eq!(stat.modified, Time { secs: 1_600_000_000, nanos: 0 });
        assert!(t.stat(b"/data/deep/er").unwrap().is_dir);
    }

    #[test]
    fn hostile_entries_are_skipped_and_reported() {
        let mut t = tree();
        let long = "x".repeat(300);
        let bytes = archive(&[
            ("a", 0o100644, b"first"),
            ("a", 0o100644, b"second"),
            ("../escape", 0o100644, b"no"),
            ("b/../../c", 0o100644, b"no"),
            ("a/under-a-file", 0o100644, b"no"),
            ("link", 0o120777, b"a"),
            ("dev", 0o020644, b""),
            (&long, 0o100644, b""),
            ("./ok", 0o100644, b"ok"),
            ("/abs", 0o100644, b"abs"),
        ]);
        let mut skipped = Vec::new();
        t.mount(bytes, T0, &mut |s| skipped.push(String::from_utf8(s.name.to_vec()).unwrap())).unwrap();
        assert_eq!(skipped, ["a", "../escape", "b/../../c", "a/under-a-file", "link", "dev", long.as_str()]);
        assert_eq!(read_file(&mut t, "/a").unwrap(), b"first");
        assert_eq!(read_file(&mut t, "/ok").unwrap(), b"ok");
        assert_eq!(read_file(&mut t, "/abs").unwrap(), b"abs");
        // `b` was made on the way to the refused `..`: harmless, and empty.
        assert_eq!(names(&t, "/"), ["a", "abs", "b/", "ok"]);
    }

    #[test]
    fn a_malformed_archive_is_an_error() {
        let mut t = tree();
        let mut bytes = archive(&[("a", 0o100644, b"1")]).to_vec();
        bytes.truncate(120);
        let err = t.mount(Vec::leak(bytes), T0, &mut |_| {}).unwrap_err();
        assert_eq!(err, CpioError::Truncated { at: 116 });
        assert!(t.stat(b"/a").is_ok(), "what came before the fault stays");
        assert_eq!(t.mount(b"garbage", T0, &mut |_| {}), Err(CpioError::Truncated { at: 0 }));
        assert_eq!(t.mount(Vec::leak(vec![b'x'; 200]), T0, &mut |_| {}), Err(CpioError::BadMagic { at: 0 }));
    }

    #[test]
    fn changes_to_packed_files_are_copies() {
        let mut t = mounted();
        let h = t.open(b"/etc/motd", O_WRONLY | O_APPEND, 0, T1).unwrap();
        assert_eq!(t.write(h, b"more\n", T1), Ok(5));
        t.close(h).unwrap();
        assert_eq!(read_file(&mut t, "/etc/motd").unwrap(), b"welcome\nmore\n");
        assert_eq!(t.stat(b"/etc/motd").unwrap().modified, T1);
    }

    #[test]
    fn write_seek_truncate_and_append() {
        let mut t = tree();
        write_file(&mut t, "f", b"hello world");
        let h = t.open(b"f", O_RDWR, 0, T1).unwrap();
        assert_eq!(t.seek(h, 6, Whence::Start), Ok(6));
        assert_eq!(t.write(h, b"WORLD", T1), Ok(5));
        assert_eq!(t.seek(h, -5, Whence::End), Ok(6));
        assert_eq!(t.seek(h, -7, Whence::Current), Err(Errno::EINVAL));
        t.set_len(h, 5, T1).unwrap();
        assert_eq!(t.fstat(h).unwrap().size, 5);
        t.close(h).unwrap();
        assert_eq!(read_file(&mut t, "f").unwrap(), b"hello");
        let h = t.open(b"f", O_WRONLY | O_APPEND, 0, T1).unwrap();
        t.seek(h, 0, Whence::Start).unwrap();
        t.write(h, b"!", T1).unwrap();
        t.close(h).unwrap();
        assert_eq!(read_file(&mut t, "f").unwrap(), b"hello!");
        write_file(&mut t, "f", b"new");
        assert_eq!(read_file(&mut t, "f").unwrap(), b"new");
        assert_eq!(t.stat(b"f").unwrap().perm, 0o644, "the umask applies");
    }

    #[test]
    fn open_errors_are_linuxs() {
        let mut t = mounted();
        assert_eq!(t.open(b"/nope", O_RDONLY, 0, T1), Err(Errno::ENOENT));
        assert_eq!(t.open(b"/nope/x", O_WRONLY | O_CREAT, 0o666, T1), Err(Errno::ENOENT));
        assert_eq!(t.open(b"/etc/motd/x", O_RDONLY, 0, T1), Err(Errno::ENOTDIR));
        assert_eq!(t.open(b"/etc/motd/", O_RDONLY, 0, T1), Err(Errno::ENOTDIR));
        assert_eq!(t.open(b"/etc", O_WRONLY, 0, T1), Err(Errno::EISDIR));
        assert_eq!(t.open(b"/etc/motd", O_WRONLY | O_CREAT | O_EXCL, 0o666, T1), Err(Errno::EEXIST));
        assert_eq!(t.open(b"/new/", O_WRONLY | O_CREAT, 0o666, T1), Err(Errno::EISDIR));
        assert_eq!(t.open(b"", O_RDONLY, 0, T1), Err(Errno::ENOENT));
        assert_eq!(t.open(b"a\0b", O_RDONLY, 0, T1), Err(Errno::EINVAL));
        assert_eq!(t.open("x".repeat(256).as_bytes(), O_RDONLY, 0, T1), Err(Errno::ENAMETOOLONG));
        assert_eq!(t.open(&vec![b'/'; PATH_MAX], O_RDONLY, 0, T1), Err(Errno::ENAMETOOLONG));
        assert_eq!(t.open(b"/etc/motd", 3, 0, T1), Err(Errno::EINVAL));
        // A directory opens for reading; reading it is EISDIR.
        let h = t.open(b"/etc", O_RDONLY, 0, T1).unwrap();
        assert_eq!(t.read(h, &mut [0; 4]), Err(Errno::EISDIR));
        assert_eq!(t.write(h, b"x", T1), Err(Errno::EBADF));
        t.close(h).unwrap();
        assert_eq!(t.close(h), Err(Errno::EBADF));
        assert_eq!(t.read(99, &mut [0; 4]), Err(Errno::EBADF));
        let h = t.open(b"/etc/motd", O_RDONLY, 0, T1).unwrap();
        assert_eq!(t.set_len(h, 0, T1), Err(Errno::EINVAL));
        assert_eq!(t.write(h, b"x", T1), Err(Errno::EBADF));
    }

    #[test]
    fn directories_are_made_and_removed_as_on_linux() {
        let mut t = mounted();
        t.mkdir(b"/a", 0o777, T1).unwrap();
        t.mkdir(b"/a/b/", 0o777, T1).unwrap();
        assert_eq!(t.stat(b"/a").unwrap().perm, 0o755);
        assert_eq!(t.stat(b"/").unwrap().modified, T1);
        assert_eq!(t.mkdir(b"/a", 0o777, T1), Err(Errno::EEXIST));
        assert_eq!(t.mkdir(b"/etc/motd", 0o777, T1), Err(Errno::EEXIST));
        assert_eq!(t.mkdir(b"/x/y", 0o777, T1), Err(Errno::ENOENT));
        assert_eq!(t.mkdir(b"/etc/motd/y", 0o777, T1), Err(Errno::ENOTDIR));
        assert_eq!(t.mkdir(b"/", 0o777, T1), Err(Errno::EEXIST));
        assert_eq!(t.rmdir(b"/a", T1), Err(Errno::ENOTEMPTY));
        assert_eq!(t.rmdir(b"/etc/motd", T1), Err(Errno::ENOTDIR));
        assert_eq!(t.rmdir(b"/", T1), Err(Errno::EBUSY));
        assert_eq!(t.rmdir(b"/a/b/.", T1), Err(Errno::EINVAL));
        assert_eq!(t.rmdir(b"/nope", T1), Err(Errno::ENOENT));
        assert_eq!(t.unlink(b"/a", T1), Err(Errno::EISDIR));
        assert_eq!(t.unlink(b"/etc/motd/", T1), Err(Errno::ENOTDIR));
        assert_eq!(t.unlink(b"/nope", T1), Err(Errno::ENOENT));
        t.rmdir(b"/a/b", T1).unwrap();
        t.rmdir(b"/a", T1).unwrap();
        assert_eq!(t.stat(b"/a"), Err(Errno::ENOENT));
        t.unlink(b"/etc/motd", T1).unwrap();
        assert_eq!(names(&t, "/etc"), [] as [&str; 0]);
    }

    #[test]
    fn an_unlinked_open_file_lives_until_closed() {
        let mut t = tree();
        write_file(&mut t, "f", b"still here");
        let h = t.open(b"f", O_RDONLY, 0, T1).unwrap();
        t.unlink(b"f", T1).unwrap();
        assert_eq!(t.stat(b"f"), Err(Errno::ENOENT));
        let mut buf = [0; 10];
        assert_eq!(t.read(h, &mut buf), Ok(10));
        assert_eq!(&buf, b"still here");
        let live = t.nodes.iter().filter(|n| n.is_some()).count();
        t.close(h).unwrap();
        assert_eq!(t.nodes.iter().filter(|n| n.is_some()).count(), live - 1);
    }

    #[test]
    fn renames_follow_linuxs_rules() {
        let mut t = mounted();
        write_file(&mut t, "/a", b"A");
        write_file(&mut t, "/b", b"B");
        t.rename(b"/a", b"/b", T1).unwrap();
        assert_eq!(read_file(&mut t, "/b").unwrap(), b"A");
        assert_eq!(t.stat(b"/a"), Err(Errno::ENOENT));
        assert_eq!(t.rename(b"/a", b"/c", T1), Err(Errno::ENOENT));
        t.rename(b"/b", b"/b", T1).unwrap();
        t.mkdir(b"/d", 0o755, T1).unwrap();
        t.mkdir(b"/e", 0o755, T1).unwrap();
        assert_eq!(t.rename(b"/b", b"/d", T1), Err(Errno::EISDIR));
        assert_eq!(t.rename(b"/d", b"/b", T1), Err(Errno::ENOTDIR));
        assert_eq!(t.rename(b"/d", b"/data", T1), Err(Errno::ENOTEMPTY));
        assert_eq!(t.rename(b"/data", b"/data/deep/x", T1), Err(Errno::EINVAL));
        assert_eq!(t.rename(b"/", b"/z", T1), Err(Errno::EBUSY));
        assert_eq!(t.rename(b"/b", b"/nope/b", T1), Err(Errno::ENOENT));
        t.rename(b"/d", b"/e", T1).unwrap();
        t.rename(b"/data", b"/e/moved", T1).unwrap();
        assert_eq!(read_file(&mut t, "/e/moved/deep/er/file").unwrap(), b"deep");
        assert_eq!(canonical(&t, "/e/moved/deep/er/../..").unwrap(), "/e/moved");
        assert_eq!(names(&t, "/"), ["b", "e/", "etc/"]);
    }

    #[test]
    fn the_current_directory_moves_and_can_vanish() {
        let mut t = mounted();
        assert_eq!(cwd(&t).unwrap(), "/");
        t.chdir(b"data/deep").unwrap();
        assert_eq!(cwd(&t).unwrap(), "/data/deep");
        assert_eq!(canonical(&t, "../numbers.txt").unwrap(), "/data/numbers.txt");
        assert_eq!(canonical(&t, "er/").unwrap(), "/data/deep/er");
        assert_eq!(canonical(&t, "../numbers.txt/"), Err(Errno::ENOTDIR));
        assert_eq!(canonical(&t, "missing"), Err(Errno::ENOENT));
        assert_eq!(t.chdir(b"../numbers.txt"), Err(Errno::ENOTDIR));
        assert_eq!(t.chdir(b"nope"), Err(Errno::ENOENT));
        write_file(&mut t, "here", b"relative");
        assert_eq!(read_file(&mut t, "/data/deep/here").unwrap(), b"relative");
        t.chdir(b"/").unwrap();
        t.mkdir(b"/gone", 0o755, T1).unwrap();
        t.chdir(b"/gone").unwrap();
        t.rmdir(b"/gone", T1).unwrap();
        assert_eq!(cwd(&t), Err(Errno::ENOENT));
        assert_eq!(t.open(b"x", O_WRONLY | O_CREAT, 0o644, T1), Err(Errno::ENOENT));
        assert_eq!(t.mkdir(b"y", 0o755, T1), Err(Errno::ENOENT));
        t.chdir(b"..").unwrap();
        assert_eq!(cwd(&t).unwrap(), "/");
    }

    #[test]
    fn file_memory_running_out_is_enospc() {
        use super::super::chunk::set_budget;
        let mut t = tree();
        set_budget(1);
        let h = t.open(b"big", O_WRONLY | O_CREAT, 0o644, T1).unwrap();
        assert_eq!(t.write(h, &[1; 5000], T1), Ok(4096));
        assert_eq!(t.write(h, &[1; 10], T1), Err(Errno::ENOSPC));
        set_budget(usize::MAX);
        assert_eq!(t.write(h, &[1; 10], T1), Ok(10));
        assert_eq!(t.fstat(h).unwrap().size, 4106);
    }

    #[test]
    fn handles_are_small_and_reused() {
        let mut t = tree();
        write_file(&mut t, "f", b"");
        let a = t.open(b"f", O_RDONLY, 0, T1).unwrap();
        let b = t.open(b"f", O_RDONLY, 0, T1).unwrap();
        assert_eq!((a, b), (0, 1));
        t.close(a).unwrap();
        assert_eq!(t.open(b"f", O_RDONLY, 0, T1), Ok(0));
    }
}
