//! Runs the guest with `xl` on a real Xen host (the runner is then in dom0).
//!
//! Kept small and untested here: these machines have no Xen host. `xl create
//! -c` creates the domain and attaches its console, whose output the runner
//! reads as in the other modes; the runner destroys the domain at the end
//! (a crashed one is preserved by the config until then).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result};

/// Tells whether this is a Xen control domain with `xl` at hand.
pub fn is_xen_host() -> bool {
    let control = std::fs::read_to_string("/proc/xen/capabilities")
        .is_ok_and(|caps| caps.contains("control_d"));
    control && find_in_path("xl").is_some()
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| p.is_file())
}

/// Writes the config into `staging` and returns `xl create -c` for it.
pub fn create_command(config: &str, staging: &Path) -> Result<Command> {
    let file = staging.join("guest.cfg");
    std::fs::write(&file, config).with_context(|| format!("writing {}", file.display()))?;
    let mut cmd = Command::new("xl");
    cmd.arg("create").arg("-c").arg(file);
    Ok(cmd)
}

/// Destroys the domain, quietly: it may be gone already.
pub fn destroy(name: &str) {
    let _ = Command::new("xl")
        .args(["destroy", name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}
