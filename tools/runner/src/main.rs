//! `xen-runner`: boots an `x86_64-unknown-xen` image on Xen, as cargo's
//! runner for that target (`cargo +xen run`). See `docs/runner.md`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{CommandFactory as _, FromArgMatches as _, Parser};
use xen_runner::batch::{self, BatchOptions};
use xen_runner::cmdline::{self, LogLevel};
use xen_runner::forward::{self, Forward};
use xen_runner::manifest::Defaults;
use xen_runner::run::{self, Mode, RunOptions};
use xen_runner::status;

/// Boots an x86_64-unknown-xen image on Xen and relays its console.
///
/// Every argument after IMAGE goes to the program, even ones starting with
/// '-'. The exit status is the program's (low 8 bits); 134 after abort, 139
/// after a crash, 125 when the guest stopped without an exit record or the
/// runner failed, 124 on timeout, 130 on Ctrl-C, 2 when the command line is
/// refused.
///
/// With --batch MANIFEST it runs the jobs of a JSON manifest one after another
/// in one boot of the Linux dom0 and writes one result per job (docs/runner.md);
/// the guest options are then the defaults of jobs that leave them out.
#[derive(Debug, Parser)]
#[command(
    name = "xen-runner",
    version,
    override_usage = "xen-runner [OPTIONS] IMAGE [ARGS]...\n       \
                      xen-runner [OPTIONS] --batch MANIFEST [--results FILE]"
)]
struct Cli {
    /// Where to run: dom0 (QEMU, ~1 s), domu (under the Linux dom0 of ci/dom0
    /// in QEMU, ~7.5 s) or xl (this real Xen host) [default: xl on a Xen
    /// host, else dom0]
    #[arg(long, value_enum, env = "XEN_RUNNER_MODE")]
    mode: Option<Mode>,

    /// Guest memory in MiB
    #[arg(long, value_name = "MIB", env = "XEN_RUNNER_MEMORY", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(2..=1 << 20))]
    memory: u32,

    /// Guest virtual CPUs
    #[arg(long, value_name = "N", env = "XEN_RUNNER_VCPUS", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=128))]
    vcpus: u32,

    /// Pass an environment variable; NAME alone takes the runner's value
    /// [env: XEN_RUNNER_ENV, comma-separated]
    #[arg(long = "env", value_name = "NAME[=VALUE]")]
    env: Vec<OsString>,

    /// Pack this folder as the guest's files, mounted at / (docs/fs.md) [default: the
    /// package's xen-files/ folder under `cargo run`, if it has one]
    #[arg(long, value_name = "DIR", env = "XEN_RUNNER_FILES", conflicts_with = "no_files")]
    files: Option<PathBuf>,

    /// Pack no files, not even the package's xen-files/ folder
    #[arg(long)]
    no_files: bool,

    /// Pass a kernel option on the guest command line, e.g. xen.log=debug or
    /// xen.ip=10.99.0.5/24 (docs/abi.md) [env: XEN_RUNNER_KERNEL_ARGS, space-separated]
    #[arg(long = "kernel-arg", value_name = "xen.OPTION=VALUE", conflicts_with = "batch")]
    kernel_arg: Vec<OsString>,

    /// Forward a host port to the guest (TCP unless udp: is given; the host address is
    /// 127.0.0.1 unless given; implies --mode domu; docs/runner.md, "Networking")
    /// [env: XEN_RUNNER_FORWARD, comma-separated]
    #[arg(long = "forward", value_name = "[tcp:|udp:][ADDR:]HOSTPORT[:GUESTPORT]", conflicts_with = "batch")]
    forward: Vec<Forward>,
    /// Give the guest this raw disk image as its virtual disk xvda, read-only with :ro
    /// (docs/fs.md, "Disks"; --mode domu or a Xen host)
    #[arg(long, value_name = "IMAGE[:ro]", env = "XEN_RUNNER_DISK")]
    disk: Option<String>,

    /// Stop the guest after this many seconds (exit 124) [default: none]
    #[arg(long, value_name = "SECS", env = "XEN_RUNNER_TIMEOUT")]
    timeout: Option<f64>,

    /// Show Xen's console and every kernel log line on stderr
    #[arg(long, short, env = "XEN_RUNNER_VERBOSE", value_parser = clap::builder::BoolishValueParser::new())]
    verbose: bool,

    /// Print the xl config the run would use, and exit
    #[arg(long)]
    print_xl_config: bool,

    /// Kernel log level (xen.log=) [default: the kernel's]
    #[arg(long, value_enum, value_name = "LEVEL", env = "XEN_RUNNER_LOG")]
    log: Option<LogLevel>,

    /// The Linux dom0 harness for --mode domu [default: the repo's ci/dom0]
    #[arg(long, value_name = "DIR", env = "XEN_RUNNER_HARNESS_DIR")]
    harness_dir: Option<PathBuf>,

    /// The Xen hypervisor, gzipped or not [default: /boot/xen-4.17-amd64.gz
    /// as dom0, the harness's own as a domU]
    #[arg(long, value_name = "FILE", env = "XEN_RUNNER_XEN")]
    xen: Option<PathBuf>,

    /// More options for Xen's command line (e.g. "loglvl=all")
    #[arg(
        long,
        value_name = "OPTIONS",
        env = "XEN_RUNNER_XEN_ARGS",
        default_value = "",
        hide_default_value = true
    )]
    xen_args: String,

    /// The QEMU binary
    #[arg(
        long,
        value_name = "FILE",
        env = "XEN_RUNNER_QEMU",
        default_value = "qemu-system-x86_64"
    )]
    qemu: PathBuf,

    /// Run the jobs of this manifest (JSON) in one boot of the Linux dom0
    #[arg(long, value_name = "MANIFEST", conflicts_with_all = ["print_xl_config", "command"])]
    batch: Option<PathBuf>,

    /// Where --batch writes its results (JSON) [default: stdout]
    #[arg(long, value_name = "FILE", requires = "batch")]
    results: Option<PathBuf>,

    /// The guest image (an ELF built for x86_64-unknown-xen), then the
    /// program's arguments
    #[arg(value_name = "IMAGE [ARGS]", required_unless_present = "batch", num_args = 1..,
          trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<OsString>,
}

impl Cli {
    /// The `--env` values, else those of `XEN_RUNNER_ENV`.
    fn env(&mut self) -> Vec<OsString> {
        if self.env.is_empty() {
            std::env::var_os("XEN_RUNNER_ENV")
                .map(|l| cmdline::split_env_list(&l))
                .unwrap_or_default()
        } else {
            std::mem::take(&mut self.env)
        }
    }

    /// The `--kernel-arg` values, else those of `XEN_RUNNER_KERNEL_ARGS`.
    fn kernel_args(&mut self) -> Vec<OsString> {
        if self.kernel_arg.is_empty() {
            std::env::var("XEN_RUNNER_KERNEL_ARGS")
                .map(|l| l.split_whitespace().map(OsString::from).collect())
                .unwrap_or_default()
        } else {
            std::mem::take(&mut self.kernel_arg)
        }
    }

    /// The `--forward` values, else those of `XEN_RUNNER_FORWARD`.
    fn forwards(&mut self) -> Result<Vec<Forward>, String> {
        if !self.forward.is_empty() {
            return Ok(std::mem::take(&mut self.forward));
        }
        match std::env::var("XEN_RUNNER_FORWARD") {
            Ok(list) => list
                .split(',')
                .filter(|s| !s.trim().is_empty())
                .map(|s| s.trim().parse::<Forward>().map_err(|e| e.to_string()))
                .collect(),
            Err(_) => Ok(Vec::new()),
        }
    }

    fn timeout(&self) -> Result<Option<Duration>, String> {
        match self.timeout {
            None => Ok(None),
            Some(secs) if secs.is_finite() && secs > 0.0 => Ok(Some(Duration::from_secs_f64(secs))),
            Some(secs) => Err(format!("--timeout {secs}: give a positive number of seconds")),
        }
    }

    fn into_batch_options(mut self, manifest: PathBuf) -> Result<BatchOptions, String> {
        let defaults = Defaults {
            memory_mib: self.memory,
            vcpus: self.vcpus,
            env: self.env(),
            timeout: self.timeout()?,
            log: self.log,
        };
        Ok(BatchOptions {
            manifest,
            results: self.results,
            defaults,
            harness_dir: self.harness_dir,
            xen: self.xen,
            xen_args: self.xen_args,
            qemu: self.qemu,
            verbose: self.verbose,
        })
    }

    /// The folder to pack: `--files`, else (unless `--no-files`) the `xen-files/` folder of
    /// the package cargo runs.
    fn files(&self) -> Option<PathBuf> {
        if self.no_files {
            return None;
        }
        let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from);
        self.files.clone().or_else(|| xen_runner::files::convention_dir(manifest_dir.as_deref()))
    }

    fn into_options(mut self) -> Result<RunOptions, String> {
        let env = self.env();
        let files = self.files();
        let kernel_args = self.kernel_args();
        for arg in &kernel_args {
            cmdline::check_kernel_arg(arg.as_encoded_bytes()).map_err(|e| e.to_string())?;
        }
        let forwards = self.forwards()?;
        let timeout = self.timeout()?;
        let disk = match &self.disk {
            Some(value) => Some(xen_runner::disk::Disk::parse(value).map_err(|e| e.to_string())?),
            None => None,
        };
        let mut command = self.command.into_iter();
        let image = PathBuf::from(command.next().ok_or("no IMAGE given")?);
        Ok(RunOptions {
            image,
            args: command.collect(),
            mode: self.mode,
            memory_mib: self.memory,
            vcpus: self.vcpus,
            env,
            files,
            disk,
            timeout,
            verbose: self.verbose,
            print_xl_config: self.print_xl_config,
            log: self.log,
            harness_dir: self.harness_dir,
            xen: self.xen,
            xen_args: self.xen_args,
            qemu: self.qemu,
            kernel_args,
            forwards,
        })
    }
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let Some(manifest) = cli.batch.clone() {
        // A batch always runs under the Linux dom0; XEN_RUNNER_MODE, meant
        // for single runs, does not count.
        let from_cli = matches.value_source("mode") == Some(ValueSource::CommandLine);
        if from_cli && cli.mode != Some(Mode::Domu) {
            eprintln!("xen-runner: error: --batch runs jobs under the Linux dom0: use --mode domu");
            return ExitCode::from(status::STATUS_USAGE);
        }
        return run_batch(cli, manifest);
    }
    let options = match cli.into_options() {
        Ok(options) => options,
        Err(why) => {
            eprintln!("xen-runner: error: {why}");
            return ExitCode::from(status::STATUS_USAGE);
        }
    };
    if let Err(why) = options.mode() {
        eprintln!("xen-runner: error: {why:#}");
        return ExitCode::from(status::STATUS_USAGE);
    }
    // A taken or repeated port is the command line's problem, refused as one (status 2)
    // before anything boots. The TCP ports stay bound from here on: the runner serves them.
    let listeners = match forward::bind_all(&options.forwards) {
        Ok(listeners) => listeners,
        Err(why) => {
            eprintln!("xen-runner: error: {why}");
            return ExitCode::from(status::STATUS_USAGE);
        }
    };
    match run::run(&options, listeners) {
        Ok(code) => ExitCode::from(code),
        Err(why) => {
            eprintln!("xen-runner: error: {why:#}");
            ExitCode::from(status::STATUS_NO_EXIT)
        }
    }
}

fn run_batch(cli: Cli, manifest: PathBuf) -> ExitCode {
    let options = match cli.into_batch_options(manifest) {
        Ok(options) => options,
        Err(why) => {
            eprintln!("xen-runner: error: {why}");
            return ExitCode::from(status::STATUS_USAGE);
        }
    };
    match batch::run_batch(&options) {
        Ok(code) => ExitCode::from(code),
        Err(why) => {
            eprintln!("xen-runner: error: {why:#}");
            ExitCode::from(status::STATUS_NO_EXIT)
        }
    }
}
