//! Boots an image as Xen's dom0 in QEMU, as `xen-runner --mode dom0` does
//! (the same QEMU and Xen command lines, built by the runner's library), and
//! reads its console with arrival times.

use std::path::Path;

use anyhow::{Context, Result};
use xen_runner::qemu;

use crate::output::GuestOutput;
use crate::serial::{Next, Qemu};
use crate::Bench;

/// Longest a dom0 run may take, in seconds (about 1.2 s is usual).
const RUN_TIMEOUT: f64 = 90.0;

/// Xen's last line before it starts dom0 (`init_done` in `xen/arch/x86/setup.c`).
const HANDOVER_LINE: &[u8] = b"init memory";

/// Xen's lines that say dom0 is gone and nothing more will come.
const XEN_STOPPED: [&[u8]; 5] = [
    b"Hardware Dom0 halted",
    b"Hardware Dom0 shutdown",
    b"Hardware Dom0 crashed",
    b"rebooting machine in 5 seconds",
    b"Reboot in five seconds",
];

/// What one dom0 run gave.
#[derive(Debug, Clone, Default)]
pub struct Dom0Run {
    /// The guest's console output.
    pub out: GuestOutput,
    /// Arrival of Xen's `Freed ... init memory` line (just before dom0 starts).
    pub handover_line: Option<f64>,
    /// How the run ended, when not by an exit record.
    pub trouble: Option<String>,
    /// Xen's panic message, if it panicked.
    pub xen_panic: Option<String>,
}

impl Dom0Run {
    /// Says how the run went, in a few words.
    pub fn describe(&self) -> String {
        let mut text = self.out.ending();
        if let Some(us) = self.out.main_after_us() {
            text.push_str(&format!(", main after {us} us"));
        }
        if let Some(trouble) = &self.trouble {
            text.push_str(&format!(" ({trouble})"));
        }
        if let Some(panic) = &self.xen_panic {
            text.push_str(&format!(", Xen panicked: {panic}"));
        }
        text
    }

    /// Seconds from Xen's last boot line to the program's first stdout line, seen on the host.
    pub fn handover_to_first_line(&self) -> Option<f64> {
        Some(self.out.first_stdout? - self.handover_line?)
    }
}

/// Boots `image` as dom0 with `memory_mib` and the guest command line `cmdline`.
pub fn run(
    bench: &Bench,
    image: &Path,
    cmdline: &str,
    memory_mib: u32,
    tag: &str,
) -> Result<Dom0Run> {
    let dir = bench.work.join(format!("dom0-{tag}"));
    std::fs::create_dir_all(&dir)?;
    // QEMU's -initrd splits at commas and spaces: a plain link stands in for the image.
    let link = dir.join("image");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(image, &link).context("linking the image")?;
    let machine =
        qemu::dom0_machine(&bench.qemu, &bench.dom0_xen, "", &link, cmdline, memory_mib, 1);
    let args = machine.args()?;
    let mut qemu = Qemu::spawn(
        &bench.qemu,
        &args,
        &bench.logs.join(format!("{tag}.log")),
        &dir.join("qemu.err"),
    )?;
    let mut run = Dom0Run::default();
    let mut panic_next = false;
    loop {
        match qemu.next(RUN_TIMEOUT) {
            Next::Line(line) => {
                if run.out.feed(line.at, &line.bytes) {
                    break;
                }
                let text = &line.bytes;
                if run.handover_line.is_none()
                    && contains(text, b"Freed")
                    && contains(text, HANDOVER_LINE)
                {
                    run.handover_line = Some(line.at);
                }
                if panic_next && contains(text, b"(XEN) ") && !contains(text, b"****") {
                    run.xen_panic = Some(clean(text));
                    panic_next = false;
                }
                if contains(text, b"Panic on CPU") {
                    panic_next = true;
                }
                if let Some(stop) = XEN_STOPPED.iter().find(|s| contains(text, s)) {
                    run.trouble = Some(format!("Xen: {}", String::from_utf8_lossy(stop)));
                    break;
                }
            }
            Next::Closed => {
                run.trouble = Some("QEMU ended".into());
                break;
            }
            Next::TimedOut => {
                run.trouble = Some(format!("no exit record within {RUN_TIMEOUT} s"));
                break;
            }
        }
    }
    qemu.stop();
    Ok(run)
}

/// Tells whether `needle` occurs in `hay`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// A console line as printable text without CRs.
pub fn clean(text: &[u8]) -> String {
    String::from_utf8_lossy(text).trim_end_matches('\r').trim().to_owned()
}
