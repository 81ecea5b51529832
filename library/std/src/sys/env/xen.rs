//! Environment variables on Xen.
//!
//! A guest has only the variables passed on purpose on its command line (`docs/abi.md`); the
//! kernel hands them over as `NAME=VALUE` entries. `set_var` and `remove_var` change a copy kept
//! in memory.

pub use super::common::Env;
use crate::collections::BTreeMap;
use crate::ffi::{OsStr, OsString};
use crate::io;
use crate::os::xen::ffi::OsStringExt;
use crate::sync::Mutex;
use crate::sys::pal::abi;

type Vars = BTreeMap<OsString, OsString>;

static VARS: Mutex<Option<Vars>> = Mutex::new(None);

/// Reads the kernel's entries; an entry without `=` (or with an empty name) is skipped.
fn from_kernel() -> Vars {
    let mut vars = Vars::new();
    for index in 0.. {
        let mut len = 0;
        // SAFETY: `len` is valid for a write.
        let ptr = unsafe { abi::xk_env(index, &mut len) };
        if ptr.is_null() {
            break;
        }
        // SAFETY: the kernel keeps the entry, `len` bytes at `ptr`, for the program's lifetime.
        let entry = unsafe { crate::slice::from_raw_parts(ptr, len) };
        if let Some(eq) = entry.iter().skip(1).position(|&b| b == b'=').map(|p| p + 1) {
            let name = OsString::from_vec(entry[..eq].to_vec());
            vars.insert(name, OsString::from_vec(entry[eq + 1..].to_vec()));
        }
    }
    vars
}

fn with_vars<R>(f: impl FnOnce(&mut Vars) -> R) -> R {
    let mut guard = VARS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    f(guard.get_or_insert_with(from_kernel))
}

pub fn env() -> Env {
    with_vars(|vars| Env::new(vars.iter().map(|(k, v)| (k.clone(), v.clone())).collect()))
}

pub fn getenv(name: &OsStr) -> Option<OsString> {
    with_vars(|vars| vars.get(name).cloned())
}

pub unsafe fn setenv(name: &OsStr, value: &OsStr) -> io::Result<()> {
    with_vars(|vars| vars.insert(name.to_owned(), value.to_owned()));
    Ok(())
}

pub unsafe fn unsetenv(name: &OsStr) -> io::Result<()> {
    with_vars(|vars| vars.remove(name));
    Ok(())
}
