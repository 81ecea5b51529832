//! Builds the two guests the benchmark compares and strips copies of them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

/// One guest image, as built, and the size of a stripped copy.
#[derive(Debug, Clone)]
pub struct Image {
    /// A short name for tables.
    pub name: &'static str,
    /// The image as built (what `cargo +xen run` or the harness boots).
    pub built: PathBuf,
    /// Sizes in bytes of the two.
    pub built_bytes: u64,
    /// See above.
    pub stripped_bytes: u64,
}

/// Builds `examples/hello` for the xen target, release profile.
pub fn build_hello(repo: &Path, cargo: &str, work: &Path) -> Result<Image> {
    let dir = repo.join("examples/hello");
    eprintln!("bench: building examples/hello ({cargo} +xen build --release)");
    let status = Command::new(cargo)
        .args(["+xen", "build", "--release", "--quiet", "--target", "x86_64-unknown-xen"])
        .current_dir(&dir)
        .stdout(Stdio::null())
        .status()
        .with_context(|| format!("running {cargo} +xen build in {}", dir.display()))?;
    if !status.success() {
        bail!("building examples/hello failed ({status})");
    }
    let built = dir.join("target/x86_64-unknown-xen/release/hello");
    finish("hello", built, work)
}

/// Builds `ci/minimal-guest` into `work`.
pub fn build_minimal(repo: &Path, work: &Path) -> Result<Image> {
    let out = work.join("minimal-guest");
    eprintln!("bench: building ci/minimal-guest");
    let script = repo.join("ci/minimal-guest/build.sh");
    let status = Command::new(&script)
        .arg(&out)
        .stdout(Stdio::null())
        .status()
        .with_context(|| format!("running {}", script.display()))?;
    if !status.success() {
        bail!("{} failed ({status})", script.display());
    }
    finish("minimal guest", out.join("minimal-guest"), work)
}

fn finish(name: &'static str, built: PathBuf, work: &Path) -> Result<Image> {
    let built_bytes = std::fs::metadata(&built)
        .with_context(|| format!("no image at {}", built.display()))?
        .len();
    let file = built.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    let stripped = work.join(format!("{file}.stripped"));
    strip(&built, &stripped)?;
    let stripped_bytes = std::fs::metadata(&stripped)?.len();
    Ok(Image { name, built, built_bytes, stripped_bytes })
}

/// Writes a copy of `input` without symbols or debug information to `output`, with the first
/// of binutils' `strip`, `llvm-strip` and `objcopy --strip-all` that is there.
pub fn strip(input: &Path, output: &Path) -> Result<()> {
    let tools: [(&str, &[&str]); 3] =
        [("strip", &[]), ("llvm-strip", &[]), ("objcopy", &["--strip-all"])];
    for (tool, flags) in tools {
        let mut cmd = Command::new(tool);
        cmd.args(flags);
        if tool == "objcopy" {
            cmd.arg(input).arg(output);
        } else {
            cmd.arg("-o").arg(output).arg(input);
        }
        match cmd.status() {
            Ok(status) if status.success() => return Ok(()),
            Ok(status) => bail!("{tool} {} failed ({status})", input.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("running {tool}")),
        }
    }
    bail!("no strip, llvm-strip or objcopy found: install binutils")
}
