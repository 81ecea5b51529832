//! Builds QEMU command lines that boot Xen with a guest (see
//! `/work/shared/HARNESS.md` for what was measured).
//!
//! QEMU's multiboot loader takes the uncompressed hypervisor as `-kernel`,
//! Xen's options as `-append`, and the modules as `-initrd "FILE CMDLINE,FILE
//! CMDLINE"`. Measured with Xen 4.17 under QEMU 7.2: Xen drops the first word
//! of dom0's module command line (the file name, as QEMU's loader repeats it;
//! `cmdline_cook` in `xen/arch/x86/setup.c`), so the guest receives exactly
//! what follows the file name.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

/// MiB of host memory QEMU gets beyond what the domains get, for Xen itself.
pub const XEN_OVERHEAD_MIB: u32 = 128;

/// Memory of the Linux dom0 in `--mode domu`, in MiB.
///
/// Xen counts the initramfs (the harness's own files and every job's image, 140 MiB for the
/// in-guest tests' batch) in it, and Linux unpacks a second copy: at 512 MiB the tests' batch
/// failed to unpack ("Initramfs unpacking failed: write error") once each test program had
/// grown by 1 MiB (the FAT code in the kernel, debug info mostly).
pub const DOM0_LINUX_MIB: u32 = 768;

/// What one QEMU run boots.
#[derive(Debug, Clone)]
pub struct Machine {
    /// The QEMU binary.
    pub qemu: PathBuf,
    /// The uncompressed hypervisor.
    pub xen: PathBuf,
    /// Xen's own command line.
    pub xen_cmdline: String,
    /// Memory for QEMU's machine in MiB.
    pub memory_mib: u32,
    /// CPUs for QEMU's machine.
    pub cpus: u32,
    /// The multiboot modules: file and command line; the first is dom0.
    pub modules: Vec<(PathBuf, String)>,
    /// QEMU `hostfwd=` rules; when there are any, dom0 gets an emulated NIC (an e1000 on
    /// QEMU's user network, which the forwarded ports come in by; restricted, so that dom0
    /// reaches nothing through it, unless a rule is UDP: see [`Machine::args`]).
    pub host_forwards: Vec<String>,
    /// Disk images, as virtio-blk drives of the machine (dom0's `/dev/vda`, ...).
    pub drives: Vec<crate::disk::Drive>,
}

impl Machine {
    /// Returns QEMU's arguments.
    ///
    /// Fails on a module path or command line that QEMU's `-initrd` syntax
    /// cannot carry (a comma, or a space in the path).
    pub fn args(&self) -> Result<Vec<OsString>> {
        let mut initrd = String::new();
        for (index, (file, cmdline)) in self.modules.iter().enumerate() {
            let Some(file) = file.to_str() else {
                bail!("the module path {} is not UTF-8", file.display());
            };
            if file.contains([',', ' ']) || cmdline.contains(',') {
                bail!("QEMU's -initrd cannot carry a comma or a space in {file:?}");
            }
            if index > 0 {
                initrd.push(',');
            }
            initrd.push_str(file);
            if !cmdline.is_empty() {
                initrd.push(' ');
                initrd.push_str(cmdline);
            }
        }
        let mut args: Vec<OsString> = [
            "-nographic",
            "-no-reboot",
            "-cpu",
            "qemu64,+rdrand",
            "-m",
            &self.memory_mib.to_string(),
            "-smp",
            &self.cpus.to_string(),
        ]
        .map(OsString::from)
        .into();
        if self.cpus > 1 {
            // One host thread per emulated CPU, so that the guest's vCPUs really run at once.
            args.push("-accel".into());
            args.push("tcg,thread=multi".into());
        }
        if !self.host_forwards.is_empty() {
            // restrict=on: the machine reaches neither the host nor anything beyond it;
            // only the forwarded ports come in. But libslirp's `udp_input` drops every
            // datagram the machine sends when restricted, a forwarded datagram's answer
            // too (TCP is let through for a forward's connection), so a UDP forward needs
            // restrict=off. dom0 then reaches the host's loopback (10.0.2.2) and, through
            // its route, beyond; its guests do not, dom0 routes nothing (docs/runner.md,
            // "Networking"). ipv6=off: no IPv6 route out either (slirp's router adverts).
            let udp = self.host_forwards.iter().any(|rule| rule.starts_with("udp:"));
            let mut netdev = String::from(if udp {
                "user,id=fwd,restrict=off,ipv6=off"
            } else {
                "user,id=fwd,restrict=on"
            });
            for rule in &self.host_forwards {
                netdev.push_str(",hostfwd=");
                netdev.push_str(rule);
            }
            args.extend(["-netdev".into(), netdev.into(), "-device".into(), "e1000,netdev=fwd".into()]);
        } else {
            args.push("-nic".into());
            args.push("none".into());
        }
        args.push("-kernel".into());
        args.push(self.xen.clone().into());
        args.push("-append".into());
        args.push(self.xen_cmdline.clone().into());
        args.push("-initrd".into());
        args.push(initrd.into());
        args.extend(crate::disk::qemu_args(&self.drives)?);
        Ok(args)
    }
}

/// Returns Xen's command line for a dom0 of `memory_mib` and `vcpus`, with
/// the user's `extra` options last.
///
/// It must never hold ` -- `: Xen passes what follows to dom0's command line.
pub fn xen_cmdline(memory_mib: u32, vcpus: u32, extra: &str) -> String {
    let mut line = format!(
        "console=com1 com1=115200,8n1 serial_tx_buffer=32M \
         dom0_mem={memory_mib}M,max:{memory_mib}M dom0_max_vcpus={vcpus}"
    );
    if !extra.trim().is_empty() {
        line.push(' ');
        line.push_str(extra.trim());
    }
    line
}

/// Tells whether extra Xen options would smuggle text into dom0's command
/// line (Xen hands dom0 what follows ` -- `).
pub fn passes_to_dom0(extra: &str) -> bool {
    extra.split_whitespace().any(|word| word == "--")
}

/// The machine that boots the image itself as dom0.
pub fn dom0_machine(
    qemu: &Path,
    xen: &Path,
    xen_extra: &str,
    image: &Path,
    cmdline: &str,
    memory_mib: u32,
    vcpus: u32,
) -> Machine {
    Machine {
        qemu: qemu.to_owned(),
        xen: xen.to_owned(),
        xen_cmdline: xen_cmdline(memory_mib, vcpus, xen_extra),
        memory_mib: memory_mib + XEN_OVERHEAD_MIB,
        cpus: vcpus,
        modules: vec![(image.to_owned(), cmdline.to_owned())],
        host_forwards: Vec::new(),
        drives: Vec::new(),
    }
}

/// The files that make up the Linux dom0 harness.
#[derive(Debug, Clone)]
pub struct Dom0Linux<'a> {
    /// The uncompressed Linux kernel.
    pub vmlinux: &'a Path,
    /// Linux's command line.
    pub cmdline: &'a str,
    /// The initramfs with the job appended.
    pub initrd: &'a Path,
}

/// The machine that boots the Linux dom0 harness, which runs the image as a
/// domU of `guest_mib` and `vcpus`.
///
/// Xen's serial transmit buffer is raised to 32 MiB (`serial_tx_buffer`), as
/// `ci/dom0/boot.sh` does: with the default 16 KiB Xen drops output when the
/// reader falls behind (docs/harness.md). `sync_console` would be lossless too
/// but costs 3 s a boot.
pub fn domu_machine(
    qemu: &Path,
    xen: &Path,
    xen_extra: &str,
    dom0: &Dom0Linux<'_>,
    guest_mib: u32,
    vcpus: u32,
) -> Machine {
    let extra = xen_extra.to_string();
    Machine {
        qemu: qemu.to_owned(),
        xen: xen.to_owned(),
        xen_cmdline: xen_cmdline(DOM0_LINUX_MIB, 1, &extra),
        memory_mib: DOM0_LINUX_MIB + guest_mib + XEN_OVERHEAD_MIB,
        cpus: vcpus,
        modules: vec![
            (dom0.vmlinux.to_owned(), dom0.cmdline.to_owned()),
            (dom0.initrd.to_owned(), String::new()),
        ],
        host_forwards: Vec::new(),
        drives: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: Vec<OsString>) -> Vec<String> {
        args.into_iter().map(|a| a.into_string().unwrap()).collect()
    }

    #[test]
    fn boots_the_image_as_dom0() {
        let machine = dom0_machine(
            Path::new("qemu-system-x86_64"),
            Path::new("/cache/xen-ab"),
            "",
            Path::new("/tmp/run/image"),
            "xen.console=framed -- hello",
            64,
            1,
        );
        assert_eq!(
            strings(machine.args().unwrap()),
            [
                "-nographic",
                "-no-reboot",
                "-cpu",
                "qemu64,+rdrand",
                "-m",
                "192",
                "-smp",
                "1",
                "-nic",
                "none",
                "-kernel",
                "/cache/xen-ab",
                "-append",
                "console=com1 com1=115200,8n1 serial_tx_buffer=32M dom0_mem=64M,max:64M dom0_max_vcpus=1",
                "-initrd",
                "/tmp/run/image xen.console=framed -- hello",
            ]
        );
    }

    #[test]
    fn boots_the_harness_with_two_modules() {
        let dom0 = Dom0Linux {
            vmlinux: Path::new("/c/vmlinux"),
            cmdline: "console=hvc0",
            initrd: Path::new("/t/initrd"),
        };
        let machine = domu_machine(Path::new("qemu"), Path::new("/x"), "loglvl=all", &dom0, 64, 2);
        let args = strings(machine.args().unwrap());
        assert_eq!(args.last().unwrap(), "/c/vmlinux console=hvc0,/t/initrd");
        assert!(args.contains(&"960".to_owned()));
        assert_eq!(
            machine.xen_cmdline,
            "console=com1 com1=115200,8n1 serial_tx_buffer=32M dom0_mem=768M,max:768M \
             dom0_max_vcpus=1 loglvl=all"
        );
    }

    #[test]
    fn forwards_give_dom0_a_nic_on_qemu_s_user_network() {
        let dom0 = Dom0Linux { vmlinux: Path::new("/v"), cmdline: "c", initrd: Path::new("/i") };
        let mut machine = domu_machine(Path::new("qemu"), Path::new("/x"), "", &dom0, 64, 1);
        let plain = strings(machine.args().unwrap());
        assert!(plain.windows(2).any(|w| w == ["-nic", "none"]), "{plain:?}");
        machine.host_forwards = vec!["tcp:127.0.0.1:8080-10.0.2.15:80".into()];
        let args = strings(machine.args().unwrap());
        let at = args.iter().position(|a| a == "-netdev").expect("a -netdev");
        assert_eq!(args[at + 1], "user,id=fwd,restrict=on,hostfwd=tcp:127.0.0.1:8080-10.0.2.15:80");
        assert_eq!(args[at + 2..at + 4], ["-device", "e1000,netdev=fwd"]);
        assert!(!args.iter().any(|a| a == "-nic"));
    }

    #[test]
    fn a_udp_forward_lifts_the_restriction_its_answers_need() {
        let dom0 = Dom0Linux { vmlinux: Path::new("/v"), cmdline: "c", initrd: Path::new("/i") };
        let mut machine = domu_machine(Path::new("qemu"), Path::new("/x"), "", &dom0, 64, 1);
        machine.host_forwards =
            vec!["tcp:127.0.0.1:8080-10.0.2.15:80".into(), "udp:127.0.0.1:53-10.0.2.15:53".into()];
        let args = strings(machine.args().unwrap());
        let at = args.iter().position(|a| a == "-netdev").expect("a -netdev");
        assert_eq!(
            args[at + 1],
            "user,id=fwd,restrict=off,ipv6=off,hostfwd=tcp:127.0.0.1:8080-10.0.2.15:80,\
             hostfwd=udp:127.0.0.1:53-10.0.2.15:53"
        );
    }

    #[test]
    fn refuses_what_initrd_cannot_carry() {
        let mut machine =
            dom0_machine(Path::new("q"), Path::new("/x"), "", Path::new("/a b"), "", 64, 1);
        assert!(machine.args().is_err());
        machine.modules[0] = ("/ab".into(), "A=1,2".into());
        assert!(machine.args().is_err());
    }

    #[test]
    fn xens_options_never_pass_anything_to_dom0() {
        assert!(!xen_cmdline(64, 1, "").contains("--"));
        assert!(passes_to_dom0("loglvl=all -- x"));
        assert!(!passes_to_dom0("loglvl=all --x"));
    }
}
