//! Builds the guest command line of `docs/abi.md` §1.
//!
//! The line reads `xen.console=framed [xen.log=LEVEL] [NAME=VALUE]... -- ARGV0 [ARG]...`,
//! each token percent-encoded. The same string reaches the guest in every
//! mode: as dom0 it travels in a multiboot module's command line (where Xen
//! strips the first word and QEMU's `-initrd` splits at commas), as a domU in
//! the xl config's `extra`.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::os::unix::ffi::OsStrExt;

/// The longest command line Xen hands a guest, in bytes, without the NUL
/// (`MAX_GUEST_CMDLINE` is 1024 in `xen/include/public/xen.h`).
pub const MAX_GUEST_CMDLINE: usize = 1023;

/// The kernel log level (`xen.log=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogLevel {
    /// Errors only.
    Error,
    /// Errors and warnings.
    Warn,
    /// Also once-per-boot facts.
    Info,
    /// Also debugging detail.
    Debug,
    /// Everything.
    Trace,
}

impl LogLevel {
    /// Returns the level as the command line spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warn => "warn",
            Self::Info => "info",
            Self::Debug => "debug",
            Self::Trace => "trace",
        }
    }
}

/// An environment variable's name and value, as bytes.
pub type EnvVar = (Vec<u8>, Vec<u8>);

/// What goes on the guest command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuestCommandLine {
    /// The kernel log level, when asked for.
    pub log: Option<LogLevel>,
    /// Environment variables, name and value.
    pub env: Vec<EnvVar>,
    /// The program's arguments, `argv[0]` first.
    pub argv: Vec<Vec<u8>>,
    /// Entropy for the guest's random generator (`xen.seed=`), when given.
    pub seed: Option<[u8; 32]>,
    /// `xen.stdin=eof`: the guest's stdin is empty, because nothing will type into its
    /// console.
    pub stdin_eof: bool,
    /// More kernel options, `xen.OPTION=VALUE` each, checked by [`check_kernel_arg`].
    pub kernel_args: Vec<Vec<u8>>,
}

/// Why a command line could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CmdlineError {
    /// The encoded line is longer than Xen passes on.
    TooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// A kernel option cannot be passed.
    BadKernelArg {
        /// The option as given.
        arg: String,
        /// Why not.
        reason: &'static str,
    },
    /// An environment variable's name cannot be passed.
    BadEnvName {
        /// The name as given.
        name: String,
        /// Why not.
        reason: &'static str,
    },
}

impl fmt::Display for CmdlineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLong { len, max } => write!(
                f,
                "the guest command line would be {len} bytes long, but Xen passes at most {max} \
                 bytes (MAX_GUEST_CMDLINE less its NUL); pass fewer or shorter arguments or \
                 environment variables"
            ),
            Self::BadKernelArg { arg, reason } => {
                write!(f, "cannot pass kernel option {arg:?}: {reason}")
            }
            Self::BadEnvName { name, reason } => {
                write!(f, "cannot pass environment variable {name:?}: {reason}")
            }
        }
    }
}

impl std::error::Error for CmdlineError {}

/// Tells whether a byte stands for itself in a token.
///
/// `docs/abi.md` lets `,` stand for itself too, but QEMU's `-initrd` splits
/// modules at commas, so the runner always writes it as `%2C`; the guest
/// decodes both the same way.
fn is_plain(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"._-/:=+@".contains(&byte)
}

/// Appends one token (or an environment variable's name or value), percent-encoded, to `out`.
pub fn encode_token(bytes: &[u8], out: &mut String) {
    for &byte in bytes {
        if is_plain(byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
}

impl GuestCommandLine {
    /// Encodes the command line and checks it against Xen's limit.
    pub fn encode(&self) -> Result<String, CmdlineError> {
        let mut line = String::from("xen.console=framed");
        if self.stdin_eof {
            line.push_str(" xen.stdin=eof");
        }
        if let Some(level) = self.log {
            line.push_str(" xen.log=");
            line.push_str(level.as_str());
        }
        if let Some(seed) = self.seed {
            line.push_str(" xen.seed=");
            for byte in seed {
                line.push_str(&format!("{byte:02x}"));
            }
        }
        for arg in &self.kernel_args {
            check_kernel_arg(arg)?;
            line.push(' ');
            encode_token(arg, &mut line);
        }
        for (name, value) in &self.env {
            check_env_name(name)?;
            line.push(' ');
            encode_token(name, &mut line);
            line.push('=');
            encode_token(value, &mut line);
        }
        line.push_str(" --");
        for arg in &self.argv {
            line.push(' ');
            if arg.is_empty() {
                // An empty argument is the token `%` alone.
                line.push('%');
            }
            encode_token(arg, &mut line);
        }
        if line.len() > MAX_GUEST_CMDLINE {
            return Err(CmdlineError::TooLong { len: line.len(), max: MAX_GUEST_CMDLINE });
        }
        Ok(line)
    }
}

/// The kernel options the runner writes itself: they cannot be given again.
const RUNNER_OWN_OPTIONS: [&str; 3] = ["xen.console", "xen.seed", "xen.stdin"];

/// Checks a kernel option given with `--kernel-arg`: `xen.OPTION=VALUE`, an option the
/// runner does not set itself. Whether the kernel knows it is the kernel's to say (it refuses
/// an unknown one before `main`, status 2).
pub fn check_kernel_arg(arg: &[u8]) -> Result<(), CmdlineError> {
    let bad = |reason| CmdlineError::BadKernelArg { arg: String::from_utf8_lossy(arg).into_owned(), reason };
    let Some(eq) = arg.iter().position(|&b| b == b'=') else {
        return Err(bad("give xen.OPTION=VALUE"));
    };
    let name = &arg[..eq];
    if !name.starts_with(b"xen.") || name.len() == 4 {
        return Err(bad("kernel options are named xen.OPTION (docs/abi.md)"));
    }
    if !name[4..].iter().all(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.') {
        return Err(bad("an option's name holds only letters, digits, '_', '-' and '.'"));
    }
    if RUNNER_OWN_OPTIONS.iter().any(|own| own.as_bytes() == name) {
        return Err(bad("the runner sets this option itself"));
    }
    Ok(())
}

/// Checks that a name reaches the guest as an environment variable.
fn check_env_name(name: &[u8]) -> Result<(), CmdlineError> {
    let bad = |reason| CmdlineError::BadEnvName {
        name: String::from_utf8_lossy(name).into_owned(),
        reason,
    };
    if name.is_empty() {
        return Err(bad("the name is empty"));
    }
    if name.contains(&b'=') {
        return Err(bad("the name holds '='"));
    }
    if name.starts_with(b"xen.") {
        return Err(bad("names starting with \"xen.\" are kernel options"));
    }
    Ok(())
}

/// Resolves `--env` values: `NAME=VALUE` as given, `NAME` alone from `lookup`.
///
/// Returns the variables and, for each bare name that `lookup` did not know,
/// a warning; such a name is left out, as `docker run -e NAME` does.
pub fn resolve_env(
    specs: &[OsString],
    lookup: impl Fn(&OsStr) -> Option<OsString>,
) -> (Vec<EnvVar>, Vec<String>) {
    let mut vars = Vec::new();
    let mut warnings = Vec::new();
    for spec in specs {
        let bytes = spec.as_bytes();
        match bytes.iter().position(|&b| b == b'=') {
            Some(at) => vars.push((bytes[..at].to_vec(), bytes[at + 1..].to_vec())),
            None => match lookup(spec) {
                Some(value) => vars.push((bytes.to_vec(), value.as_bytes().to_vec())),
                None => warnings.push(format!(
                    "--env {}: not set in the runner's environment, not passed",
                    spec.to_string_lossy()
                )),
            },
        }
    }
    (vars, warnings)
}

/// Splits `XEN_RUNNER_ENV` at commas, skipping empty items.
pub fn split_env_list(list: &OsStr) -> Vec<OsString> {
    list.as_bytes()
        .split(|&b| b == b',')
        .filter(|item| !item.is_empty())
        .map(|item| OsStr::from_bytes(item).to_os_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(env: &[(&str, &str)], argv: &[&[u8]]) -> Result<String, CmdlineError> {
        GuestCommandLine {
            log: None,
            env: env.iter().map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec())).collect(),
            argv: argv.iter().map(|a| a.to_vec()).collect(),
            seed: None,
            stdin_eof: false,
            kernel_args: Vec::new(),
        }
        .encode()
    }

    #[test]
    fn kernel_args_come_after_the_runner_s_own() {
        let cmdline = GuestCommandLine {
            log: Some(LogLevel::Info),
            env: vec![(b"A".to_vec(), b"1".to_vec())],
            argv: vec![b"app".to_vec()],
            kernel_args: vec![b"xen.ip=10.99.0.2/24".to_vec(), b"xen.dns=a b".to_vec()],
            ..GuestCommandLine::default()
        };
        assert_eq!(
            cmdline.encode().unwrap(),
            "xen.console=framed xen.log=info xen.ip=10.99.0.2/24 xen.dns=a%20b A=1 -- app"
        );
    }

    #[test]
    fn refuses_kernel_args_that_are_not_options_or_are_the_runner_s() {
        for (arg, want) in [
            ("ip=1.2.3.4", "named xen.OPTION"),
            ("xen.ip", "give xen.OPTION=VALUE"),
            ("xen.=1", "named xen.OPTION"),
            ("xen.a b=1", "only letters"),
            ("xen.console=plain", "sets this option itself"),
            ("xen.seed=00", "sets this option itself"),
            ("xen.stdin=console", "sets this option itself"),
        ] {
            let got = check_kernel_arg(arg.as_bytes()).unwrap_err().to_string();
            assert!(got.contains(want), "{arg}: {got}");
        }
        assert!(check_kernel_arg(b"xen.log=debug").is_ok());
        assert!(check_kernel_arg(b"xen.mount=xvda:/data").is_ok());
    }

    #[test]
    fn plain_program() {
        assert_eq!(line(&[], &[b"hello"]).unwrap(), "xen.console=framed -- hello");
    }

    #[test]
    fn log_level_and_env() {
        let cmdline = GuestCommandLine {
            log: Some(LogLevel::Debug),
            env: vec![(b"RUST_BACKTRACE".to_vec(), b"1".to_vec())],
            argv: vec![b"app".to_vec(), b"-v".to_vec()],
            seed: Some([0xab; 32]),
            stdin_eof: true,
            kernel_args: Vec::new(),
        };
        assert_eq!(
            cmdline.encode().unwrap(),
            format!("xen.console=framed xen.stdin=eof xen.log=debug xen.seed={} RUST_BACKTRACE=1 -- app -v", "ab".repeat(32))
        );
    }

    #[test]
    fn encodes_spaces_percent_commas_and_any_byte() {
        let got =
            line(&[("GREETING", "a b,c")], &[b"app", b"50%", b"\xff\x00\n", b"--x=y"]).unwrap();
        assert_eq!(got, "xen.console=framed GREETING=a%20b%2Cc -- app 50%25 %FF%00%0A --x=y");
        assert!(!got.contains(','));
    }

    #[test]
    fn keeps_the_plain_set() {
        let plain = b"AZaz09._-/:=+@";
        assert_eq!(line(&[], &[plain]).unwrap(), "xen.console=framed -- AZaz09._-/:=+@");
    }

    #[test]
    fn an_equals_sign_in_a_value_stays() {
        assert_eq!(line(&[("A", "b=c")], &[b"x"]).unwrap(), "xen.console=framed A=b=c -- x");
    }

    #[test]
    fn empty_arguments_are_a_lone_percent() {
        assert_eq!(line(&[("E", "")], &[b"app", b""]).unwrap(), "xen.console=framed E= -- app %");
    }

    #[test]
    fn refuses_bad_env_names() {
        for name in ["", "xen.log", "A=B"] {
            let err = line(&[(name, "1")], &[b"app"]).unwrap_err();
            assert!(matches!(err, CmdlineError::BadEnvName { .. }), "{name:?}: {err}");
        }
    }

    #[test]
    fn the_limit_is_1023_bytes() {
        let fixed = "xen.console=framed -- ".len();
        let fits = vec![b'a'; MAX_GUEST_CMDLINE - fixed];
        assert_eq!(line(&[], &[&fits]).unwrap().len(), MAX_GUEST_CMDLINE);

        let over = vec![b'a'; MAX_GUEST_CMDLINE - fixed + 1];
        assert_eq!(line(&[], &[&over]), Err(CmdlineError::TooLong { len: 1024, max: 1023 }));
    }

    #[test]
    fn the_limit_counts_encoded_bytes() {
        let spaces = vec![b' '; 400];
        let err = line(&[], &[&spaces]).unwrap_err();
        assert_eq!(err, CmdlineError::TooLong { len: 22 + 1200, max: 1023 });
        let text = err.to_string();
        assert!(text.contains("1222 bytes") && text.contains("1023"), "{text}");
    }

    #[test]
    fn resolves_env_from_the_host() {
        let specs: Vec<OsString> = ["A=1", "HOME", "MISSING", "B="].map(OsString::from).into();
        let (vars, warnings) =
            resolve_env(&specs, |name| (name == "HOME").then(|| OsString::from("/root")));
        let want: Vec<(Vec<u8>, Vec<u8>)> = vec![
            (b"A".to_vec(), b"1".to_vec()),
            (b"HOME".to_vec(), b"/root".to_vec()),
            (b"B".to_vec(), b"".to_vec()),
        ];
        assert_eq!(vars, want);
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("MISSING"));
    }

    #[test]
    fn splits_the_env_list() {
        let got = split_env_list(OsStr::new("A=1,,HOME,B=x"));
        assert_eq!(got, ["A=1", "HOME", "B=x"].map(OsString::from));
    }
}
