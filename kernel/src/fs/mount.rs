//! The mount table: which paths go to a FAT volume on a disk and which to the in-memory tree.
//!
//! A mount (`xen.mount=VDEV:PATH[:ro]`, `docs/abi.md`) puts a volume's root at an absolute
//! PATH. A path from the program is made absolute (from the current directory) and resolved
//! lexically (`.` dropped, `..` taking off the component before it); the mount whose PATH is
//! the longest whole-component prefix of it gets the rest; with none, the tree gets the path
//! as the program gave it, so the tree's own resolution (and its errors) is unchanged.
//!
//! FIXME: resolving `..` lexically means `/mnt/file/..` is `/mnt` where Linux says
//! `NotADirectory`; with no symbolic links the two agree on every path that exists.
//!
//! Pure logic, tested on the host.

use alloc::vec::Vec;

use super::tree::PATH_MAX;

/// One `xen.mount=` option.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountSpec<'a> {
    /// The disk as xl names it (`xvda`).
    pub vdev: &'a [u8],
    /// Where the volume's root goes: absolute, resolved, without a trailing `/` (but `/`).
    pub path: Vec<u8>,
    pub read_only: bool,
}

/// Splits `VDEV:PATH` or `VDEV:PATH:ro` and checks it without allocating (the command line is
/// parsed before the heap exists): VDEV letters and digits, PATH absolute and, resolved, not
/// `/` (the tree stays at `/`).
fn split_spec(value: &[u8]) -> Option<(&[u8], &[u8], bool)> {
    let colon = value.iter().position(|&b| b == b':')?;
    let (vdev, rest) = (&value[..colon], &value[colon + 1..]);
    let (path, read_only) = match rest.strip_suffix(b":ro") {
        Some(path) => (path, true),
        None => (rest, false),
    };
    if vdev.is_empty() || !vdev.iter().all(u8::is_ascii_alphanumeric) || !path.starts_with(b"/") {
        return None;
    }
    if path.len() >= PATH_MAX || path.contains(&0) {
        return None;
    }
    let depth = path.split(|&b| b == b'/').fold(0usize, |depth, part| match part {
        b"" | b"." => depth,
        b".." => depth.saturating_sub(1),
        _ => depth + 1,
    });
    (depth > 0).then_some((vdev, path, read_only))
}

/// Whether a `xen.mount=` value is well-formed (see [`parse_spec`]); allocates nothing.
pub fn valid_spec(value: &[u8]) -> bool {
    split_spec(value).is_some()
}

/// Parses `VDEV:PATH` or `VDEV:PATH:ro`; PATH must be absolute and not `/` (the tree stays at
/// `/`).
pub fn parse_spec(value: &[u8]) -> Option<MountSpec<'_>> {
    let (vdev, path, read_only) = split_spec(value)?;
    let path = resolve(b"/", path)?.0;
    Some(MountSpec { vdev, path, read_only })
}

/// Makes `path` absolute from `cwd` (itself absolute and resolved) and resolves `.` and `..`
/// lexically. Returns the result and whether `path` asked for a directory (it ends with `/`,
/// `.` or `..`); `None` for an empty path, one with a NUL, or one too long.
pub fn resolve(cwd: &[u8], path: &[u8]) -> Option<(Vec<u8>, bool)> {
    if path.is_empty() || path.contains(&0) || path.len() >= PATH_MAX {
        return None;
    }
    let mut parts: Vec<&[u8]> = Vec::new();
    let start = if path[0] == b'/' { &b""[..] } else { cwd };
    for part in start.split(|&b| b == b'/').chain(path.split(|&b| b == b'/')) {
        match part {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            _ => parts.push(part),
        }
    }
    let last = path.rsplit(|&b| b == b'/').next().unwrap_or(b"");
    let wants_dir = path.ends_with(b"/") || last == b"." || last == b"..";
    let mut out = Vec::with_capacity(path.len() + cwd.len() + 1);
    for part in &parts {
        out.push(b'/');
        out.extend_from_slice(part);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    Some((out, wants_dir))
}

/// The mount points, in the order they were mounted.
#[derive(Default)]
pub struct Table {
    points: Vec<Vec<u8>>,
}

impl Table {
    pub const fn new() -> Table {
        Table { points: Vec::new() }
    }

    /// Adds a mount point; returns its index, or `None` if the point is taken already.
    pub fn add(&mut self, point: Vec<u8>) -> Option<usize> {
        if self.points.contains(&point) {
            return None;
        }
        self.points.push(point);
        Some(self.points.len() - 1)
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    pub fn point(&self, index: usize) -> &[u8] {
        &self.points[index]
    }

    /// The mount an absolute, resolved path falls in (the longest whole-component prefix),
    /// and the path inside it (no leading `/`; empty for the mount's root).
    pub fn route<'p>(&self, abs: &'p [u8]) -> Option<(usize, &'p [u8])> {
        let mut best: Option<(usize, &'p [u8], usize)> = None;
        for (index, point) in self.points.iter().enumerate() {
            let Some(rest) = abs.strip_prefix(&point[..]) else { continue };
            let inner = match rest {
                [] => rest,
                [b'/', inner @ ..] => inner,
                _ => continue,
            };
            if best.is_none_or(|(_, _, len)| point.len() > len) {
                best = Some((index, inner, point.len()));
            }
        }
        best.map(|(index, inner, _)| (index, inner))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        let s = parse_spec(b"xvda:/mnt/disk").unwrap();
        assert_eq!((s.vdev, &s.path[..], s.read_only), (&b"xvda"[..], &b"/mnt/disk"[..], false));
        let s = parse_spec(b"xvdb:/data/:ro").unwrap();
        assert_eq!((s.vdev, &s.path[..], s.read_only), (&b"xvdb"[..], &b"/data"[..], true));
        assert_eq!(parse_spec(b"xvda:/a/./b/../c").unwrap().path, b"/a/c");
        for bad in [
            &b"xvda"[..],
            b"xvda:",
            b"xvda:rel",
            b":/mnt",
            b"xvda:/",
            b"xvda:/..",
            b"xv/da:/m",
            b"xvda:/:ro",
            b"xvda:/a/..",
        ] {
            assert_eq!(parse_spec(bad), None, "{:?}", core::str::from_utf8(bad));
            assert!(!valid_spec(bad));
        }
        assert!(valid_spec(b"xvda:/a/../b"));
    }

    #[test]
    fn resolving() {
        let r = |cwd: &[u8], p: &[u8]| resolve(cwd, p).map(|(v, d)| (String::from_utf8(v).unwrap(), d));
        assert_eq!(r(b"/", b"/a/b"), Some(("/a/b".into(), false)));
        assert_eq!(r(b"/x/y", b"a"), Some(("/x/y/a".into(), false)));
        assert_eq!(r(b"/x/y", b"../a/"), Some(("/x/a".into(), true)));
        assert_eq!(r(b"/x", b"../../.."), Some(("/".into(), true)));
        assert_eq!(r(b"/", b"//a//./b/."), Some(("/a/b".into(), true)));
        assert_eq!(r(b"/", b""), None);
        assert_eq!(r(b"/", b"a\0b"), None);
        assert_eq!(r(b"/", &[b'a'; PATH_MAX]), None);
    }

    #[test]
    fn longest_whole_component_prefix_wins() {
        let mut t = Table::new();
        assert_eq!(t.add(b"/mnt".to_vec()), Some(0));
        assert_eq!(t.add(b"/mnt/inner".to_vec()), Some(1));
        assert_eq!(t.add(b"/mnt".to_vec()), None);
        assert_eq!(t.route(b"/mnt"), Some((0, &b""[..])));
        assert_eq!(t.route(b"/mnt/a/b"), Some((0, &b"a/b"[..])));
        assert_eq!(t.route(b"/mnt/inner"), Some((1, &b""[..])));
        assert_eq!(t.route(b"/mnt/inner/x"), Some((1, &b"x"[..])));
        assert_eq!(t.route(b"/mnt/innerx"), Some((0, &b"innerx"[..])));
        assert_eq!(t.route(b"/mntx"), None);
        assert_eq!(t.route(b"/"), None);
        assert_eq!(t.route(b"/tmp/mnt"), None);
    }
}
