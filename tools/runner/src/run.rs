//! Runs one image: builds its command line, boots it in the chosen mode,
//! relays its console and turns the ending into the runner's exit status.

use std::ffi::OsString;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

use crate::cmdline::{self, GuestCommandLine, LogLevel};
use crate::console::{Console, Event};
use crate::crash::{CrashReport, NoSymbols, Symbolize};
use crate::disk::{self, Disk, Drive};
use crate::session::{End, Session};
use crate::status::{self, GuestExit};
use crate::symbolize::ImageSymbols;
use crate::xlcfg::{self, XlConfig};
use crate::forward::{self, Forward, Protocol};
use crate::proxy::{self, Proxy, Route};
use crate::{cache, files, harness, qemu, xl};

/// The xl line that puts a single `--mode domu` run's guest on dom0's bridge.
pub const DOMU_VIF: &str = "vif = ['bridge=xenbr0']";

/// How long the Linux dom0 may take to boot before a `--timeout` starts
/// counting, in `--mode domu`.
const BOOT_ALLOWANCE: Duration = Duration::from_secs(120);

/// Where the guest runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// As dom0, straight from Xen in QEMU (about 1 s).
    Dom0,
    /// As a domU under the Linux dom0 of `ci/dom0`, in QEMU (about 7.5 s).
    Domu,
    /// With `xl create` on the real Xen host this runs on.
    Xl,
}

/// Everything one run needs.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The guest image.
    pub image: PathBuf,
    /// The program's arguments after `argv[0]`.
    pub args: Vec<OsString>,
    /// Where to run; `None` picks `xl` on a Xen host, else `dom0`.
    pub mode: Option<Mode>,
    /// Guest memory in MiB.
    pub memory_mib: u32,
    /// Guest vCPUs.
    pub vcpus: u32,
    /// `--env` values, `NAME` or `NAME=VALUE`.
    pub env: Vec<OsString>,
    /// The folder to pack as the guest's files (`docs/fs.md`).
    pub files: Option<PathBuf>,
    /// The disk image given to the guest (`--disk`).
    pub disk: Option<Disk>,
    /// How long the guest may run.
    pub timeout: Option<Duration>,
    /// Show Xen's console and all kernel logs on stderr.
    pub verbose: bool,
    /// Print the xl config and stop.
    pub print_xl_config: bool,
    /// The kernel log level to ask for.
    pub log: Option<LogLevel>,
    /// `ci/dom0`, when given.
    pub harness_dir: Option<PathBuf>,
    /// The hypervisor (gzipped or not); `None` takes the default.
    pub xen: Option<PathBuf>,
    /// More options for Xen's command line.
    pub xen_args: String,
    /// The QEMU binary.
    pub qemu: PathBuf,
    /// More kernel options for the guest command line, `xen.OPTION=VALUE` each.
    pub kernel_args: Vec<OsString>,
    /// Host ports forwarded to the guest (`--mode domu` only).
    pub forwards: Vec<Forward>,
}

/// The machine-level options, shared by single runs and batches.
#[derive(Debug, Clone, Copy)]
pub struct Platform<'a> {
    /// `ci/dom0`, when given.
    pub harness_dir: Option<&'a Path>,
    /// The hypervisor (gzipped or not); `None` takes the default.
    pub xen: Option<&'a Path>,
    /// More options for Xen's command line.
    pub xen_args: &'a str,
    /// The QEMU binary.
    pub qemu: &'a Path,
    /// Show Xen's console and the harness's progress on stderr.
    pub verbose: bool,
}

impl RunOptions {
    /// Returns the machine-level options.
    pub fn platform(&self) -> Platform<'_> {
        Platform {
            harness_dir: self.harness_dir.as_deref(),
            xen: self.xen.as_deref(),
            xen_args: &self.xen_args,
            qemu: &self.qemu,
            verbose: self.verbose,
        }
    }

    /// The mode this run uses: the one asked for, else `domu` when ports are forwarded, else
    /// `xl` on a Xen host, else `dom0`. Refuses forwards where the runner cannot make them.
    pub fn mode(&self) -> Result<Mode> {
        let mode = match self.mode {
            Some(mode) => mode,
            None if !self.forwards.is_empty() => Mode::Domu,
            None if xl::is_xen_host() => Mode::Xl,
            None => Mode::Dom0,
        };
        if !self.forwards.is_empty() {
            match mode {
                Mode::Domu => {}
                Mode::Dom0 => bail!(
                    "--forward needs --mode domu: as dom0 the program has no network device \
                     (there is no backend to give it one)"
                ),
                Mode::Xl => bail!(
                    "--forward is for the emulated Xen of --mode domu; on a Xen host the guest is \
                     on your own bridge: connect to its address (docs/deploy.md)"
                ),
            }
        }
        Ok(mode)
    }

    /// The network a single `--mode domu` run gives its guest: a vif on dom0's bridge, and
    /// unless the user chose the address (`xen.ip=` or `xen.net=`), [`forward::GUEST_IP`].
    fn domu_network(&self) -> (Vec<String>, Vec<OsString>) {
        let chosen = self.kernel_args.iter().any(|a| {
            let a = a.as_bytes();
            a.starts_with(b"xen.ip=") || a.starts_with(b"xen.net=")
        });
        let mut args = Vec::new();
        if !chosen {
            args.push(format!("xen.ip={}/{}", forward::GUEST_IP, forward::BRIDGE_PREFIX).into());
            args.push(format!("xen.gw={}", forward::BRIDGE_IP).into());
        }
        args.extend(self.kernel_args.iter().cloned());
        (vec![DOMU_VIF.to_owned()], args)
    }

    fn guest<'a>(&'a self, xl_lines: &'a [String], kernel_args: &'a [OsString]) -> Guest<'a> {
        Guest {
            image: &self.image,
            args: &self.args,
            env: &self.env,
            files: self.files.as_deref(),
            memory_mib: self.memory_mib,
            vcpus: self.vcpus,
            log: self.log,
            name: None,
            disk: self.disk.as_ref(),
            xl_lines,
            kernel_args,
            // The runner forwards no input: its own stdin is the user's, not the guest's.
            console_input: false,
        }
    }
}

/// What runs in one guest: a single run's options, or one job of a batch.
#[derive(Debug, Clone, Copy)]
pub struct Guest<'a> {
    /// The guest image, as given.
    pub image: &'a Path,
    /// The program's arguments after `argv[0]`.
    pub args: &'a [OsString],
    /// `NAME` or `NAME=VALUE` values, as `--env` takes them.
    pub env: &'a [OsString],
    /// The folder to pack as the guest's files.
    pub files: Option<&'a Path>,
    /// Guest memory in MiB.
    pub memory_mib: u32,
    /// Guest vCPUs.
    pub vcpus: u32,
    /// The kernel log level to ask for.
    pub log: Option<LogLevel>,
    /// The xl domain's name; `None` makes one from the image's name and the runner's pid.
    pub name: Option<&'a str>,
    /// The disk image given to the guest as `xvda` (`docs/fs.md`, "Disks").
    pub disk: Option<&'a Disk>,
    /// Lines added to the end of the xl config.
    pub xl_lines: &'a [String],
    /// More kernel options, `xen.OPTION=VALUE` each.
    pub kernel_args: &'a [OsString],
    /// Whether something will type into the guest's console (a batch job's driver); without
    /// it the guest's stdin is empty (`xen.stdin=eof`).
    pub console_input: bool,
}

/// A guest that is ready to boot.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The image, checked, as an absolute path.
    pub image: PathBuf,
    /// The guest command line (`docs/abi.md` §1).
    pub cmdline: String,
    /// The xl config (checked: it renders).
    pub xl: XlConfig,
    /// The packed files' archive, for the guest's ramdisk.
    pub ramdisk: Option<Vec<u8>>,
    /// The disk, checked (its path absolute); in `--mode domu` the xl config's `disk` line is
    /// set when the boot's drives are known.
    pub disk: Option<Disk>,
}

/// How a run is to be judged once it ended.
#[derive(Debug, Clone, Copy)]
pub struct Judge<'a> {
    /// The image, for symbols.
    pub image: &'a Path,
    /// The timeout the run had, for the message.
    pub timeout: Option<Duration>,
    /// Whether Xen's text was shown already (then it is not repeated).
    pub verbose: bool,
}

/// Runs the image and returns the runner's exit status.
///
/// `listeners` are the TCP forwards' host ports, bound by [`forward::bind_all`]; the run
/// serves them while the guest runs (`crate::proxy`).
pub fn run(opts: &RunOptions, listeners: forward::Listeners) -> Result<u8> {
    let mode = opts.mode()?;
    let (xl_lines, kernel_args) = match mode {
        Mode::Domu => opts.domu_network(),
        Mode::Dom0 | Mode::Xl => (Vec::new(), opts.kernel_args.clone()),
    };
    let guest = opts.guest(&xl_lines, &kernel_args);
    let prepared = match prepare(&guest, mode, opts.print_xl_config, &mut io::stderr())? {
        Ok(prepared) => prepared,
        Err(status) => return Ok(status),
    };
    let Prepared { image, cmdline, mut xl, ramdisk, disk } = prepared;
    let staging = staging_dir()?;
    let ramdisk_file = match &ramdisk {
        Some(archive) => Some(write_ramdisk(archive, &image, mode, opts.print_xl_config, staging.path())?),
        None => None,
    };
    if mode == Mode::Xl {
        xl.ramdisk = ramdisk_file.as_ref().map(|f| f.to_string_lossy().into_owned());
    }
    let config = xl.render()?;
    if opts.print_xl_config {
        print!("{config}");
        return Ok(0);
    }
    if opts.verbose {
        eprintln!("xen-runner: mode {mode:?}, guest command line: {cmdline}");
    }
    let (mut routes, mut reserved) = (Vec::new(), Vec::new());
    let (cmd, xl_domain) = match mode {
        Mode::Dom0 => {
            (dom0_command(opts, &image, &cmdline, ramdisk_file.as_deref(), staging.path())?, None)
        }
        Mode::Domu => {
            let forward: String =
                opts.forwards.iter().map(|f| f.harness_line(forward::GUEST_IP)).collect();
            let job = harness::JobFiles {
                config: &config,
                image: &read_image(&image)?,
                ramdisk: ramdisk.as_deref(),
                driver: None,
                timeout: None,
                forward: (!forward.is_empty()).then_some(forward.as_str()),
            };
            let machine = (opts.memory_mib, opts.vcpus);
            let (drives, _) = disk::drives(std::iter::once(disk.as_ref()))?;
            // UDP goes to QEMU directly; TCP through the runner's listener to a loopback
            // port of QEMU's (`crate::proxy`: QEMU's own listen backlog is 1).
            let mut rules: Vec<String> = opts
                .forwards
                .iter()
                .filter(|f| f.protocol == Protocol::Udp)
                .map(Forward::hostfwd)
                .collect();
            for (f, listener) in listeners {
                let (held, qemu_port) =
                    proxy::reserve_loopback_port().context("picking a loopback port for QEMU")?;
                reserved.push(held);
                rules.push(f.hostfwd_from(std::net::Ipv4Addr::LOCALHOST, qemu_port));
                routes.push(Route { listener, qemu_port });
                if opts.verbose {
                    eprintln!(
                        "xen-runner: forwarding {}:{} (tcp, through QEMU's 127.0.0.1:{qemu_port}) \
                         to the guest's port {}",
                        f.host_addr, f.host_port, f.guest_port
                    );
                }
            }
            let cmd =
                domu_command(opts.platform(), &[job], machine, &drives, staging.path(), &rules)?;
            if opts.verbose {
                for f in opts.forwards.iter().filter(|f| f.protocol == Protocol::Udp) {
                    eprintln!(
                        "xen-runner: forwarding {}:{} (udp) to the guest's port {}",
                        f.host_addr, f.host_port, f.guest_port
                    );
                }
            }
            (cmd, None)
        }
        Mode::Xl => (xl::create_command(&config, staging.path())?, Some(xl_domain_name(&image))),
    };
    let started = Instant::now();
    let (deadline, restart) = deadlines(opts.timeout, mode, started);
    // QEMU's loopback ports were held until now, for QEMU to take.
    drop(reserved);
    // Connections that came before this waited in the listeners' backlog; those that come
    // before QEMU listens wait for it.
    let proxy = if routes.is_empty() {
        None
    } else {
        Some(Proxy::start(routes, opts.verbose).context("starting the TCP forwards")?)
    };
    let mut session = Session::spawn(cmd, mode == Mode::Xl)?;
    let mut console =
        Console::new(io::stdout().lock(), io::stderr().lock(), opts.verbose).show_all_logs(opts.log.is_some());
    let end = session.relay(&mut console, deadline, restart, opts.verbose);
    // Stop the guest before anything else: its status is known, or it is
    // hopeless.
    session.kill();
    // Then the forwards: their listeners close, their connections end.
    drop(proxy);
    if let Some(name) = &xl_domain {
        xl::destroy(name);
    }
    let end = match end {
        Ok(end) => end,
        // Whoever read our stdout has gone, as `| head` does: stop quietly,
        // as a program killed by SIGPIPE would.
        Err(e) if is_broken_pipe(&e) => return Ok(128 + 13),
        Err(e) => return Err(e),
    };
    if opts.verbose {
        eprintln!("xen-runner: {} after {:.2} s", describe(&end), started.elapsed().as_secs_f64());
    }
    let judge = Judge { image: &image, timeout: opts.timeout, verbose: opts.verbose };
    Ok(report(&judge, &end, &console, session.stderr_tail(), &mut io::stderr()))
}

/// Checks the image and builds the guest's command line and xl config: what
/// every run does before it boots.
///
/// Returns `Ok(Err(status))` when the run stops here with that status,
/// having said why on `err` (a refused command line is status 2); `Err` when
/// the image cannot be booted at all. `for_people` makes the config that
/// `--print-xl-config` prints.
pub fn prepare(
    guest: &Guest<'_>,
    mode: Mode,
    for_people: bool,
    err: &mut dyn Write,
) -> Result<Result<Prepared, u8>> {
    let image = guest
        .image
        .canonicalize()
        .with_context(|| format!("cannot open the image {}", guest.image.display()))?;
    check_image(&image)?;
    let Some(cmdline) = guest_cmdline(guest, &image, for_people, err)? else {
        return Ok(Err(status::STATUS_USAGE));
    };
    let ramdisk = match guest.files {
        Some(dir) => Some(pack_files(dir, guest.memory_mib, err)?),
        None => None,
    };
    let disk = match guest.disk {
        Some(_) if mode == Mode::Dom0 => {
            bail!("a disk needs a dom0 with blkback: give --mode domu (or run on a Xen host)")
        }
        Some(disk) => Some(disk.checked()?),
        None => None,
    };
    let mut xl = xl_config(guest, &image, &cmdline, mode);
    if ramdisk.is_some() {
        xl.ramdisk = Some(harness::JOB_RAMDISK.to_owned());
    }
    if let Some(disk) = &disk {
        // On a Xen host blkback opens the image file; in the harness, dom0's device of it.
        xl.disk = Some(match mode {
            Mode::Xl => disk.xl_line(&disk.path.to_string_lossy()),
            _ => disk.xl_line(&disk::dom0_device(0)?),
        });
    }
    xl.render()?;
    Ok(Ok(Prepared { image, cmdline, xl, ramdisk, disk }))
}

/// Packs the folder `dir` for a guest of `memory_mib`; the archive stays in the guest's memory,
/// so it may take at most half of it.
fn pack_files(dir: &Path, memory_mib: u32, err: &mut dyn Write) -> Result<Vec<u8>> {
    let archive = files::pack(dir, err)?;
    let limit = (u64::from(memory_mib) << 20) / 2;
    if archive.len() as u64 > limit {
        bail!(
            "the packed files of {} take {} KiB, more than half the guest's {memory_mib} MiB: \
             give more --memory",
            dir.display(),
            archive.len() >> 10
        );
    }
    Ok(archive)
}

/// Writes the packed files where the boot reads them: the scratch folder, or, for a printed
/// xl config (kept to be used later), next to the image.
fn write_ramdisk(archive: &[u8], image: &Path, mode: Mode, for_people: bool, staging: &Path) -> Result<PathBuf> {
    let file = if for_people && mode != Mode::Dom0 {
        let mut name = image.as_os_str().to_owned();
        name.push(".files.cpio");
        PathBuf::from(name)
    } else {
        staging.join("files.cpio")
    };
    std::fs::write(&file, archive).with_context(|| format!("writing {}", file.display()))?;
    Ok(file)
}

/// Reads the image to put it into a jobs archive.
pub fn read_image(image: &Path) -> Result<Vec<u8>> {
    std::fs::read(image).with_context(|| format!("reading {}", image.display()))
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.downcast_ref::<io::Error>().is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
}

/// Returns when to give up on the run, and how long the guest itself may run
/// once the dom0 harness says it began (`domu` mode: the timeout counts from
/// the guest's creation, and Linux and the toolstack get `BOOT_ALLOWANCE`
/// more before that).
fn deadlines(
    timeout: Option<Duration>,
    mode: Mode,
    started: Instant,
) -> (Option<Instant>, Option<Duration>) {
    match (timeout, mode) {
        (Some(t), Mode::Domu) => (Some(started + t + BOOT_ALLOWANCE), Some(t)),
        (timeout, _) => (timeout.map(|t| started + t), None),
    }
}

/// Builds and checks the guest command line; says why on `err` and returns
/// `None` when it cannot be passed.
fn guest_cmdline(
    guest: &Guest<'_>,
    image: &Path,
    for_people: bool,
    err: &mut dyn Write,
) -> Result<Option<String>> {
    let (env, warnings) = cmdline::resolve_env(guest.env, |name| std::env::var_os(name));
    for warning in warnings {
        writeln!(err, "xen-runner: warning: {warning}")?;
    }
    let argv0 = guest.image.file_name().unwrap_or(image.as_os_str());
    let argv = std::iter::once(argv0)
        .chain(guest.args.iter().map(OsString::as_os_str))
        .map(|a| a.as_bytes().to_vec())
        .collect();
    // A printed config is kept and reused, so it must not carry one boot's seed.
    let seed = if for_people { None } else { host_entropy() };
    // People reading `xl console` type into it; the runner itself gives no input.
    let stdin_eof = !for_people && !guest.console_input;
    let kernel_args = guest.kernel_args.iter().map(|a| a.as_bytes().to_vec()).collect();
    match (GuestCommandLine { log: guest.log, env, argv, seed, stdin_eof, kernel_args }).encode() {
        // A printed config is for people, who read the console with `xl console`.
        Ok(line) if for_people => {
            Ok(Some(line.replacen("xen.console=framed", "xen.console=plain", 1)))
        }
        Ok(line) => Ok(Some(line)),
        Err(why) => {
            writeln!(err, "xen-runner: error: {why}")?;
            Ok(None)
        }
    }
}

/// 32 bytes from the host's random generator, for the guest's (`xen.seed=`, docs/abi.md).
fn host_entropy() -> Option<[u8; 32]> {
    use std::io::Read;
    let mut seed = [0u8; 32];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut seed)).ok()?;
    Some(seed)
}

/// Tells apart an image Xen can boot from a wrong file, before booting.
fn check_image(image: &Path) -> Result<()> {
    use object::Object as _;

    let data = std::fs::read(image).with_context(|| format!("reading {}", image.display()))?;
    let file = object::File::parse(&*data)
        .with_context(|| format!("{} is not an ELF image", image.display()))?;
    if file.format() != object::BinaryFormat::Elf {
        bail!("{} is not an ELF image", image.display());
    }
    if file.architecture() != object::Architecture::X86_64 {
        bail!("{} is not an x86_64 image ({:?})", image.display(), file.architecture());
    }
    if !has_xen_notes(&data) && file.section_by_name("__xen_guest").is_none() {
        bail!(
            "{} has no Xen ELF notes, so Xen cannot boot it (is it built for \
             x86_64-unknown-xen?)",
            image.display()
        );
    }
    Ok(())
}

/// Looks through the note segments and sections of a 64-bit ELF for a note
/// owned by "Xen" (`xen/include/public/elfnote.h`).
fn has_xen_notes(data: &[u8]) -> bool {
    use object::elf::FileHeader64;
    use object::read::elf::{
        FileHeader as _, NoteIterator, ProgramHeader as _, SectionHeader as _,
    };
    use object::LittleEndian;

    fn any_xen(notes: Option<NoteIterator<'_, FileHeader64<LittleEndian>>>) -> bool {
        let Some(mut notes) = notes else { return false };
        while let Ok(Some(note)) = notes.next() {
            if note.name() == b"Xen" {
                return true;
            }
        }
        false
    }

    let Ok(header) = FileHeader64::<LittleEndian>::parse(data) else {
        return false;
    };
    let Ok(endian) = header.endian() else {
        return false;
    };
    let in_segments = header.program_headers(endian, data).is_ok_and(|segments| {
        segments.iter().any(|s| any_xen(s.notes(endian, data).ok().flatten()))
    });
    in_segments
        || header.sections(endian, data).is_ok_and(|sections| {
            sections.iter().any(|s| any_xen(s.notes(endian, data).ok().flatten()))
        })
}

/// Makes the xl config this run uses (or would use on a Xen host).
fn xl_config(guest: &Guest<'_>, image: &Path, cmdline: &str, mode: Mode) -> XlConfig {
    let kernel = match mode {
        Mode::Domu => harness::JOB_IMAGE.to_owned(),
        Mode::Dom0 | Mode::Xl => image.to_string_lossy().into_owned(),
    };
    XlConfig {
        name: guest.name.map_or_else(|| xl_domain_name(image), str::to_owned),
        kernel,
        memory_mib: guest.memory_mib,
        vcpus: guest.vcpus,
        cmdline: cmdline.to_owned(),
        ramdisk: None,
        disk: None,
        extra_lines: guest.xl_lines.to_vec(),
    }
}

fn xl_domain_name(image: &Path) -> String {
    let file = image.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    xlcfg::domain_name(&file, std::process::id())
}

/// Makes a scratch directory whose path QEMU's `-initrd` can carry.
pub fn staging_dir() -> Result<tempfile::TempDir> {
    let tmp = std::env::temp_dir();
    let base = if tmp.to_string_lossy().contains([',', ' ']) { PathBuf::from("/tmp") } else { tmp };
    tempfile::Builder::new()
        .prefix("xen-runner.")
        .tempdir_in(&base)
        .with_context(|| format!("creating a scratch directory in {}", base.display()))
}

/// The hypervisor Debian's xen-hypervisor-4.17-amd64 installs.
pub const DEFAULT_XEN: &str = "/boot/xen-4.17-amd64.gz";

/// Returns the hypervisor to boot: the one asked for, else `fallback`.
fn hypervisor(platform: Platform<'_>, fallback: &Path) -> Result<PathBuf> {
    if qemu::passes_to_dom0(platform.xen_args) {
        bail!("XEN_RUNNER_XEN_ARGS must not hold \"--\": Xen would pass the rest to dom0");
    }
    let path = platform.xen.unwrap_or(fallback);
    if !path.is_file() {
        bail!(
            "no hypervisor at {}: install xen-hypervisor-4.17-amd64 or give --xen",
            path.display()
        );
    }
    cache::hypervisor(path, &cache::dir()?)
}

/// The QEMU command that boots the image as dom0, with the packed files as the second
/// multiboot module (Xen hands dom0 the first module after its kernel as its ramdisk).
fn dom0_command(
    opts: &RunOptions,
    image: &Path,
    cmdline: &str,
    ramdisk: Option<&Path>,
    staging: &Path,
) -> Result<Command> {
    let xen = hypervisor(opts.platform(), Path::new(DEFAULT_XEN))?;
    // The module's first word is dropped by Xen, and its path must hold no
    // comma or space for -initrd: a link with a plain name stands in.
    let link = staging.join("image");
    std::os::unix::fs::symlink(image, &link).context("linking the image")?;
    let mut machine = qemu::dom0_machine(
        &opts.qemu,
        &xen,
        &opts.xen_args,
        &link,
        cmdline,
        opts.memory_mib,
        opts.vcpus,
    );
    if let Some(ramdisk) = ramdisk {
        machine.modules.push((ramdisk.to_owned(), String::new()));
    }
    let mut cmd = Command::new(&machine.qemu);
    cmd.args(machine.args()?);
    Ok(cmd)
}

/// The QEMU command that boots the Linux dom0 harness with `jobs`, on a
/// machine for guests of up to `(MiB, vCPUs)` (one guest runs at a time), with
/// QEMU's `hostfwd=` rules `host_forwards` (none: no NIC for dom0).
pub fn domu_command(
    platform: Platform<'_>,
    jobs: &[harness::JobFiles<'_>],
    (guest_mib, vcpus): (u32, u32),
    drives: &[Drive],
    staging: &Path,
    host_forwards: &[String],
) -> Result<Command> {
    let dir = harness::find_dir(platform.harness_dir)?;
    let build = harness::build(&dir, &cache::dir()?, platform.verbose)?;
    // The harness's own hypervisor matches the toolstack it packs.
    let xen = hypervisor(platform, &build.xen)?;
    let archive = harness::jobs_archive(jobs)?;
    let initrd = staging.join("initrd.cpio");
    harness::write_initrd(&build.initrd, &archive, &initrd)?;
    let dom0 = qemu::Dom0Linux {
        vmlinux: &build.vmlinux,
        cmdline: harness::LINUX_CMDLINE,
        initrd: &initrd,
    };
    let mut machine =
        qemu::domu_machine(platform.qemu, &xen, platform.xen_args, &dom0, guest_mib, vcpus);
    machine.host_forwards = host_forwards.to_vec();
    machine.drives = drives.to_vec();
    let mut cmd = Command::new(&machine.qemu);
    cmd.args(machine.args()?);
    Ok(cmd)
}

/// Says in a few words how the relay ended.
pub fn describe(end: &End) -> String {
    match end {
        End::Event(Event::Exit(exit)) => format!("exit record {exit:?}"),
        End::Event(Event::XenStopped(line)) => format!("Xen stopped ({line})"),
        End::Event(Event::JobEnded(how)) => format!("the harness ended the job ({how})"),
        End::Event(Event::AllDone) => "the harness finished".to_owned(),
        End::OutputEnded(Some(status)) => format!("the console closed ({status})"),
        End::OutputEnded(None) => "the console closed".to_owned(),
        End::TimedOut => "timeout".to_owned(),
        End::Signal(signal) => format!("signal {signal}"),
    }
}

/// Tells the user on `err` how the run ended and returns the runner's status.
pub fn report<O: io::Write, E: io::Write>(
    judge: &Judge<'_>,
    end: &End,
    console: &Console<O, E>,
    child_stderr: &[String],
    err: &mut dyn Write,
) -> u8 {
    match end {
        End::Event(Event::Exit(GuestExit::Crash)) => {
            let (crash, warnings) = CrashReport::from_records(console.crash_records());
            for warning in warnings {
                let _ = writeln!(err, "xen-runner: warning: {warning}");
            }
            let text = crash.render(&*symbols(judge.image, err));
            let _ = err.write_all(text.as_bytes());
            status::STATUS_CRASH
        }
        End::Event(Event::Exit(exit)) => exit.runner_status(),
        End::TimedOut => {
            let secs = judge.timeout.unwrap_or_default().as_secs_f64();
            let _ =
                writeln!(err, "xen-runner: the guest ran past the timeout of {secs} s; stopped it");
            status::STATUS_TIMEOUT
        }
        End::Signal(signal) => {
            let name = match *signal {
                SIGINT => "interrupted",
                SIGTERM => "terminated",
                SIGHUP => "hung up",
                _ => "signalled",
            };
            let _ = writeln!(err, "xen-runner: {name}; stopped the guest");
            if *signal == SIGINT {
                status::STATUS_INTERRUPTED
            } else {
                128u8.wrapping_add(*signal as u8)
            }
        }
        _ => no_exit_record(judge, end, console, child_stderr, err),
    }
}

/// Explains a run that ended without an exit record; returns the runner's status.
///
/// In PV, Xen cannot push a fault frame onto an overflowed stack and crashes the domain; when
/// its dump shows that, the runner says what Linux's std says, and exits as after an abort.
fn no_exit_record<O: io::Write, E: io::Write>(
    judge: &Judge<'_>,
    end: &End,
    console: &Console<O, E>,
    child_stderr: &[String],
    err: &mut dyn Write,
) -> u8 {
    let crash = CrashReport::from_xen_dump(console.tail());
    if let Some(thread) = crash.as_ref().and_then(|c| c.overflowed_thread(console.thread_records()))
    {
        let _ = writeln!(err, "\nthread {thread} has overflowed its stack");
        let _ = writeln!(err, "fatal runtime error: stack overflow, aborting");
        if judge.verbose {
            if let Some(crash) = &crash {
                let text = crash.render(&*symbols(judge.image, err));
                let _ = err.write_all(text.as_bytes());
            }
        }
        return status::STATUS_ABORT;
    }
    let _ =
        writeln!(err, "xen-runner: the guest stopped without an exit record: {}", describe(end));
    if let Some(crash) = crash {
        let text = crash.render(&*symbols(judge.image, err));
        let _ = err.write_all(text.as_bytes());
    }
    if !judge.verbose {
        let tail: Vec<&[u8]> = console.tail().collect();
        let shown = crate::console::lines_to_show(&tail, 30);
        if !shown.is_empty() {
            let _ = writeln!(err, "xen-runner: the last lines from Xen and dom0:");
        }
        for line in shown {
            let _ = err.write_all(b"  ");
            let _ = err.write_all(&crate::console::sanitize(line));
            let _ = err.write_all(b"\n");
        }
        if !child_stderr.is_empty() {
            let _ = writeln!(err, "xen-runner: its stderr said:");
        }
        for line in child_stderr {
            let _ = writeln!(err, "  {line}");
        }
    }
    if console.records() == 0 {
        let _ = writeln!(
            err,
            "xen-runner: no console record came at all: did the image boot, and does it \
             understand xen.console=framed?"
        );
    }
    status::STATUS_NO_EXIT
}

/// Opens the image's symbols, or none when they cannot be read (saying so on `err`).
fn symbols(image: &Path, err: &mut dyn Write) -> Box<dyn Symbolize> {
    match ImageSymbols::open(image) {
        Ok(symbols) => Box::new(symbols),
        Err(why) => {
            let _ = writeln!(
                err,
                "xen-runner: warning: cannot read symbols of {}: {why}",
                image.display()
            );
            Box::new(NoSymbols)
        }
    }
}
