//! The guest command line of `docs/abi.md`: `[xen.OPTION=VALUE | NAME=VALUE]... [-- ARGV...]`,
//! tokens separated by spaces and percent-encoded.
//!
//! Pure logic over byte slices, tested on the host. The parsed form points into one buffer that
//! holds the decoded tokens, so parsing needs no allocator.

use crate::log::Level;

/// The most tokens a command line can hold (every token takes at least two bytes).
pub const MAX_TOKENS: usize = crate::xen::abi::MAX_GUEST_CMDLINE / 2;

/// How the console writes stdout and stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsoleMode {
    /// As they are, for people reading `xl console`.
    Plain,
    /// In the records of `docs/abi.md`, for the runner.
    Framed,
}

/// What is wrong with a command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// A `%` not followed by two hex digits, at this byte offset.
    BadEscape(usize),
    /// A token before `--` that is neither `xen.OPTION=VALUE` nor `NAME=VALUE`.
    BareWord(usize),
    /// A `xen.` option the kernel does not know.
    UnknownOption(usize),
    /// A known option with a value it does not take.
    BadValue(usize),
}

/// Where a decoded token lies in the buffer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    pub start: u16,
    pub len: u16,
}

/// A parsed command line: kernel options, environment entries and arguments.
pub struct CmdLine {
    buf: [u8; crate::xen::abi::MAX_GUEST_CMDLINE],
    spans: [Span; MAX_TOKENS],
    env_count: usize,
    arg_count: usize,
    pub console: ConsoleMode,
    /// The kernel log level, if the command line set one.
    pub log: Option<Level>,
    /// Entropy from the toolstack (`xen.seed=HEX`), up to 32 bytes.
    pub seed: [u8; 32],
    pub seed_len: usize,
    /// `xen.stdin=eof`: stdin is empty (the runner has no input to give); otherwise it reads
    /// the console's input.
    pub stdin_eof: bool,
    /// The network options (`xen.ip`, `xen.gw`, `xen.dns`, `xen.ip6`, `xen.net`).
    pub net: NetConfig,
    /// `xen.profile=HZ`: sample where vCPU 0 runs HZ times a second (`docs/profile.md`);
    /// 0, off.
    pub profile_hz: u32,
    /// The values of `xen.mount=VDEV:PATH[:ro]` options, in order (checked by
    /// [`crate::fs::mount::valid_spec`]).
    mounts: [Span; MAX_MOUNTS],
    mount_count: usize,
}

/// The most `xen.mount=` options.
pub const MAX_MOUNTS: usize = 4;

/// The network configuration the command line gives (`docs/net.md`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetConfig {
    /// `xen.net=off`: no network device, only loopback.
    pub off: bool,
    /// `xen.net=dhcp`: DHCPv4 even when `xen.ip` is given.
    pub dhcp: bool,
    /// `xen.ip=A.B.C.D/PREFIX`: a static IPv4 address; without it, DHCPv4.
    pub ip: Option<([u8; 4], u8)>,
    /// `xen.gw=A.B.C.D`: the IPv4 default gateway.
    pub gw: Option<[u8; 4]>,
    /// `xen.dns=A.B.C.D`: the DNS server.
    pub dns: Option<[u8; 4]>,
    /// `xen.ip6=ADDR/PREFIX`: a static IPv6 address besides the link-local one.
    pub ip6: Option<([u8; 16], u8)>,
    /// `xen.vifN.ip=A.B.C.D/PREFIX` for vif N (1 to 7; `xen.ip` is vif 0's): a static IPv4
    /// address; without it, DHCPv4 on that vif.
    pub vif_ips: [Option<([u8; 4], u8)>; 7],
    /// `xen.vifs=N` (0 to 8): the stack drives vifs 0 to N-1 and leaves the others to the
    /// program's raw frames; without it, every vif the domain has.
    pub vifs: Option<u8>,
}

impl CmdLine {
    /// An empty command line: no environment, `argv` is `["app"]`. All zeros, so that a
    /// static one costs no bytes in the image.
    pub const fn new() -> Self {
        CmdLine {
            buf: [0; crate::xen::abi::MAX_GUEST_CMDLINE],
            spans: [Span { start: 0, len: 0 }; MAX_TOKENS],
            env_count: 0,
            arg_count: 0,
            console: ConsoleMode::Plain,
            log: None,
            seed: [0; 32],
            seed_len: 0,
            stdin_eof: false,
            net: NetConfig { off: false, dhcp: false, ip: None, gw: None, dns: None, ip6: None, vif_ips: [None; 7], vifs: None },
            profile_hz: 0,
            mounts: [Span { start: 0, len: 0 }; MAX_MOUNTS],
            mount_count: 0,
        }
    }

    /// The i-th `xen.mount=` value.
    pub fn mount(&self, index: usize) -> Option<&[u8]> {
        (index < self.mount_count).then(|| self.span(self.mounts[index]))
    }

    fn span(&self, span: Span) -> &[u8] {
        &self.buf[span.start as usize..(span.start + span.len) as usize]
    }

    /// The i-th environment entry, `NAME=VALUE`.
    pub fn env(&self, index: usize) -> Option<&[u8]> {
        (index < self.env_count).then(|| self.span(self.spans[index]))
    }

    /// The i-th argument, `argv[0]` first; without arguments `argv` is `["app"]`.
    pub fn arg(&self, index: usize) -> Option<&[u8]> {
        if self.arg_count == 0 {
            return (index == 0).then_some(&b"app"[..]);
        }
        (index < self.arg_count).then(|| self.span(self.spans[self.env_count + index]))
    }

    /// Parses `line` (the bytes before the NUL), replacing what `self` held.
    pub fn parse(&mut self, line: &[u8]) -> Result<(), Error> {
        *self = CmdLine::new();
        let mut used = 0usize;
        let mut tokens = 0usize;
        let mut env = 0usize;
        let mut args: Option<usize> = None;
        for (offset, raw) in split(line) {
            let start = used;
            used += decode(raw, &mut self.buf[used..]).map_err(|at| Error::BadEscape(offset + at))?;
            let token = Span { start: start as u16, len: (used - start) as u16 };
            let text = &self.buf[start..used];
            if let Some(count) = args.as_mut() {
                self.spans[tokens] = token;
                tokens += 1;
                *count += 1;
            } else if raw == b"--" {
                used = start;
                args = Some(0);
            } else if let Some(value) = text.strip_prefix(b"xen.mount=") {
                // Kept in the buffer: the kernel mounts once devices are up.
                if !crate::fs::mount::valid_spec(value) || self.mount_count == MAX_MOUNTS {
                    return Err(Error::BadValue(offset));
                }
                let skip = b"xen.mount=".len() as u16;
                self.mounts[self.mount_count] = Span { start: token.start + skip, len: token.len - skip };
                self.mount_count += 1;
            } else if text.starts_with(b"xen.") {
                let mut option = [0u8; crate::xen::abi::MAX_GUEST_CMDLINE];
                let len = text.len() - 4;
                option[..len].copy_from_slice(&text[4..]);
                self.option(&option[..len], offset)?;
                used = start;
            } else if text.len() > 1 && text[1..].contains(&b'=') {
                self.spans[tokens] = token;
                tokens += 1;
                env += 1;
            } else {
                return Err(Error::BareWord(offset));
            }
        }
        self.env_count = env;
        // No `--` or nothing after it: no arguments, so `arg` gives `["app"]`.
        self.arg_count = args.unwrap_or(0);
        Ok(())
    }

    fn option(&mut self, option: &[u8], offset: usize) -> Result<(), Error> {
        let (name, value) = split_once(option, b'=').ok_or(Error::BadValue(offset))?;
        match name {
            b"console" => {
                self.console = match value {
                    b"plain" => ConsoleMode::Plain,
                    b"framed" => ConsoleMode::Framed,
                    _ => return Err(Error::BadValue(offset)),
                }
            }
            b"log" => self.log = Some(Level::parse(value).ok_or(Error::BadValue(offset))?),
            b"stdin" => {
                self.stdin_eof = match value {
                    b"console" => false,
                    b"eof" => true,
                    _ => return Err(Error::BadValue(offset)),
                }
            }
            b"seed" => {
                if value.len() % 2 != 0 || value.len() > 64 {
                    return Err(Error::BadValue(offset));
                }
                for (i, pair) in value.chunks(2).enumerate() {
                    let hi = hex_digit(pair[0]).ok_or(Error::BadValue(offset))?;
                    let lo = hex_digit(pair[1]).ok_or(Error::BadValue(offset))?;
                    self.seed[i] = hi << 4 | lo;
                }
                self.seed_len = value.len() / 2;
            }
            b"profile" => {
                self.profile_hz = core::str::from_utf8(value)
                    .ok()
                    .and_then(|v| v.parse::<u32>().ok())
                    .filter(|hz| (1..=10_000).contains(hz))
                    .ok_or(Error::BadValue(offset))?
            }
            b"net" => {
                (self.net.off, self.net.dhcp) = match value {
                    b"off" => (true, false),
                    b"dhcp" => (false, true),
                    _ => return Err(Error::BadValue(offset)),
                }
            }
            b"ip" => {
                self.net.ip = Some(
                    parse_cidr(value, 32, |t| t.parse::<core::net::Ipv4Addr>().ok().map(|a| a.octets()))
                        .ok_or(Error::BadValue(offset))?,
                )
            }
            b"ip6" => {
                self.net.ip6 = Some(
                    parse_cidr(value, 128, |t| t.parse::<core::net::Ipv6Addr>().ok().map(|a| a.octets()))
                        .ok_or(Error::BadValue(offset))?,
                )
            }
            [b'v', b'i', b'f', n @ b'1'..=b'7', b'.', b'i', b'p'] => {
                self.net.vif_ips[usize::from(n - b'1')] = Some(
                    parse_cidr(value, 32, |t| t.parse::<core::net::Ipv4Addr>().ok().map(|a| a.octets()))
                        .ok_or(Error::BadValue(offset))?,
                )
            }
            b"vifs" => {
                self.net.vifs = Some(
                    core::str::from_utf8(value)
                        .ok()
                        .and_then(|v| v.parse::<u8>().ok())
                        .filter(|n| *n <= 8)
                        .ok_or(Error::BadValue(offset))?,
                )
            }
            b"gw" => self.net.gw = Some(parse_v4(value).ok_or(Error::BadValue(offset))?),
            b"dns" => self.net.dns = Some(parse_v4(value).ok_or(Error::BadValue(offset))?),
            _ => return Err(Error::UnknownOption(offset)),
        }
        Ok(())
    }
}

fn parse_v4(value: &[u8]) -> Option<[u8; 4]> {
    core::str::from_utf8(value).ok()?.parse::<core::net::Ipv4Addr>().ok().map(|a| a.octets())
}

/// `ADDR/PREFIX` with a prefix of at most `max` bits.
fn parse_cidr<const N: usize>(value: &[u8], max: u8, addr: impl Fn(&str) -> Option<[u8; N]>) -> Option<([u8; N], u8)> {
    let (a, p) = split_once(value, b'/')?;
    let prefix: u8 = core::str::from_utf8(p).ok()?.parse().ok()?;
    if prefix > max {
        return None;
    }
    Some((addr(core::str::from_utf8(a).ok()?)?, prefix))
}

impl Error {
    /// A one-line description for the console.
    pub fn describe(&self) -> (&'static str, usize) {
        match *self {
            Error::BadEscape(at) => ("a % not followed by two hex digits", at),
            Error::BareWord(at) => ("a word before -- that is not NAME=VALUE", at),
            Error::UnknownOption(at) => ("an unknown xen. option", at),
            Error::BadValue(at) => ("a bad value for a xen. option", at),
        }
    }
}

/// The raw (still percent-encoded) token of `line` that starts at byte `at`, for messages.
pub fn token_at(line: &[u8], at: usize) -> &[u8] {
    let rest = line.get(at..).unwrap_or(&[]);
    &rest[..rest.iter().position(|&b| b == b' ').unwrap_or(rest.len())]
}

/// Splits `line` at runs of spaces; yields each token with its byte offset.
fn split(line: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let mut at = 0;
    core::iter::from_fn(move || {
        while at < line.len() && line[at] == b' ' {
            at += 1;
        }
        if at == line.len() {
            return None;
        }
        let start = at;
        while at < line.len() && line[at] != b' ' {
            at += 1;
        }
        Some((start, &line[start..at]))
    })
}

fn split_once(bytes: &[u8], sep: u8) -> Option<(&[u8], &[u8])> {
    let at = bytes.iter().position(|&b| b == sep)?;
    Some((&bytes[..at], &bytes[at + 1..]))
}

fn hex_digit(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes `raw` into `out`; returns the decoded length, or the offset of a bad `%`.
/// `out` is at least as long as `raw` (decoding never grows). The token `%` alone is the
/// empty string.
fn decode(raw: &[u8], out: &mut [u8]) -> Result<usize, usize> {
    if raw == b"%" {
        return Ok(0);
    }
    let (mut i, mut len) = (0, 0);
    while i < raw.len() {
        let byte = if raw[i] == b'%' {
            let hi = raw.get(i + 1).copied().and_then(hex_digit).ok_or(i)?;
            let lo = raw.get(i + 2).copied().and_then(hex_digit).ok_or(i)?;
            i += 3;
            hi << 4 | lo
        } else {
            i += 1;
            raw[i - 1]
        };
        out[len] = byte;
        len += 1;
    }
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(line: &str) -> Result<Box<CmdLine>, Error> {
        let mut cmdline = Box::new(CmdLine::new());
        cmdline.parse(line.as_bytes())?;
        Ok(cmdline)
    }

    fn args(c: &CmdLine) -> Vec<String> {
        (0..).map_while(|i| c.arg(i)).map(|a| String::from_utf8(a.to_vec()).unwrap()).collect()
    }

    fn env(c: &CmdLine) -> Vec<String> {
        (0..).map_while(|i| c.env(i)).map(|a| String::from_utf8(a.to_vec()).unwrap()).collect()
    }

    #[test]
    fn empty_line_gives_app() {
        let c = parsed("").unwrap();
        assert_eq!(args(&c), ["app"]);
        assert!(env(&c).is_empty());
        assert_eq!(c.console, ConsoleMode::Plain);
    }

    #[test]
    fn options_env_and_args() {
        let c = parsed("xen.console=framed  HOME=/root xen.log=debug -- hello a%20b --x").unwrap();
        assert_eq!(c.console, ConsoleMode::Framed);
        assert_eq!(c.log, Some(Level::Debug));
        assert_eq!(env(&c), ["HOME=/root"]);
        assert_eq!(args(&c), ["hello", "a b", "--x"]);
    }

    #[test]
    fn mounts_are_kept_in_order() {
        let c = parsed("xen.mount=xvda:/mnt A=1 xen.mount=xvdb:/ro%20disk:ro -- x").unwrap();
        let mounts: Vec<_> = (0..).map_while(|i| c.mount(i)).collect();
        assert_eq!(mounts, [&b"xvda:/mnt"[..], b"xvdb:/ro disk:ro"]);
        assert_eq!(env(&c), ["A=1"]);
        assert_eq!(args(&c), ["x"]);
        assert_eq!(parsed("xen.mount=xvda:rel").err(), Some(Error::BadValue(0)));
        assert_eq!(parsed("xen.mount=xvda:/").err(), Some(Error::BadValue(0)));
        let five = "xen.mount=xvda:/a ".repeat(5);
        assert!(matches!(parsed(&five), Err(Error::BadValue(_))));
    }

    #[test]
    fn everything_after_the_separator_is_an_argument() {
        let c = parsed("-- prog -- xen.log=trace A=1").unwrap();
        assert_eq!(args(&c), ["prog", "--", "xen.log=trace", "A=1"]);
    }

    #[test]
    fn encoded_bytes_decode() {
        let c = parsed("V=%25%2C%00x -- p %e2%82%AC").unwrap();
        assert_eq!(c.env(0).unwrap(), b"V=%,\0x");
        assert_eq!(c.arg(1).unwrap(), "€".as_bytes());
    }

    #[test]
    fn separator_without_args_gives_app() {
        let c = parsed("A=1 --").unwrap();
        assert_eq!(args(&c), ["app"]);
        assert_eq!(env(&c), ["A=1"]);
    }

    #[test]
    fn a_lone_percent_is_the_empty_string() {
        let c = parsed("E= -- p % x").unwrap();
        assert_eq!(c.env(0).unwrap(), b"E=");
        assert_eq!(args(&c), ["p", "", "x"]);
    }

    #[test]
    fn stdin_is_console_or_eof() {
        assert!(!parsed("").unwrap().stdin_eof);
        assert!(parsed("xen.stdin=eof").unwrap().stdin_eof);
        assert!(!parsed("xen.stdin=eof xen.stdin=console").unwrap().stdin_eof);
        assert_eq!(parsed("xen.stdin=tty").err(), Some(Error::BadValue(0)));
    }

    #[test]
    fn seed_is_hex() {
        let c = parsed("xen.seed=00ff10").unwrap();
        assert_eq!(&c.seed[..c.seed_len], &[0, 255, 16]);
        assert_eq!(parsed("xen.seed=0g").err(), Some(Error::BadValue(0)));
        assert_eq!(parsed("xen.seed=abc").err(), Some(Error::BadValue(0)));
    }

    #[test]
    fn profile_is_a_rate_in_hz() {
        assert_eq!(parsed("A=1").unwrap().profile_hz, 0);
        assert_eq!(parsed("xen.profile=1000").unwrap().profile_hz, 1000);
        assert_eq!(parsed("xen.profile=10000").unwrap().profile_hz, 10_000);
        for bad in ["xen.profile=0", "xen.profile=10001", "xen.profile=fast", "xen.profile="] {
            assert_eq!(parsed(bad).err(), Some(Error::BadValue(0)), "{bad}");
        }
    }

    #[test]
    fn network_options() {
        let c = parsed("xen.ip=10.99.0.20/24 xen.gw=10.99.0.1 xen.dns=10.99.0.1 xen.ip6=fd00::20/64").unwrap();
        assert_eq!(c.net.ip, Some(([10, 99, 0, 20], 24)));
        assert_eq!(c.net.gw, Some([10, 99, 0, 1]));
        assert_eq!(c.net.dns, Some([10, 99, 0, 1]));
        let mut v6 = [0u8; 16];
        v6[0] = 0xfd;
        v6[15] = 0x20;
        assert_eq!(c.net.ip6, Some((v6, 64)));
        assert!(!c.net.off);
        assert!(parsed("xen.net=off").unwrap().net.off);
        let d = parsed("xen.ip=10.0.0.2/8 xen.net=dhcp").unwrap();
        assert!(d.net.dhcp && !d.net.off);
        assert_eq!(parsed("").unwrap().net, NetConfig::default());
        let e = parsed("xen.vif1.ip=10.98.0.2/24 xen.vif7.ip=10.97.0.2/16 xen.vifs=2 xen.ip6=fd00::2/64").unwrap();
        assert_eq!(e.net.vif_ips[0], Some(([10, 98, 0, 2], 24)));
        assert_eq!(e.net.vif_ips[6], Some(([10, 97, 0, 2], 16)));
        assert_eq!(e.net.vif_ips[1..6], [None; 5]);
        assert_eq!(e.net.vifs, Some(2));
        assert_eq!(parsed("xen.vifs=0").unwrap().net.vifs, Some(0));
        // `xen.ip6` stays vif 0's IPv6 address.
        assert!(e.net.ip6.is_some());
        for unknown in ["xen.vif8.ip=10.0.0.1/8", "xen.vif0.ip=10.0.0.1/8", "xen.ip1=10.0.0.1/8", "xen.vif1.gw=10.0.0.1"] {
            assert_eq!(parsed(unknown).err(), Some(Error::UnknownOption(0)), "{unknown}");
        }
        for bad in [
            "xen.vif1.ip=10.98.0.2",
            "xen.vifs=9",
            "xen.vifs=-1",
            "xen.vifs=",
            "xen.ip=10.99.0.20",
            "xen.ip=10.99.0.20/33",
            "xen.ip=10.99.0/24",
            "xen.gw=fd00::1",
            "xen.ip6=fd00::1/129",
            "xen.net=maybe",
            "xen.dns=x",
        ] {
            assert_eq!(parsed(bad).err(), Some(Error::BadValue(0)), "{bad}");
        }
    }

    #[test]
    fn errors_name_the_offset() {
        assert_eq!(parsed("A=1 bare").err(), Some(Error::BareWord(4)));
        assert_eq!(parsed("A=%4").err(), Some(Error::BadEscape(2)));
        assert_eq!(parsed("-- x %zz").err(), Some(Error::BadEscape(5)));
        assert_eq!(parsed("xen.nope=1").err(), Some(Error::UnknownOption(0)));
        assert_eq!(parsed("xen.console=loud").err(), Some(Error::BadValue(0)));
        assert_eq!(parsed("=x").err(), Some(Error::BareWord(0)));
    }

    #[test]
    fn a_bad_token_is_named_and_the_console_mode_before_it_stands() {
        let line = "xen.console=framed xen.log=info xen.bogus=1 -- app";
        let mut c = CmdLine::new();
        let Err(e) = c.parse(line.as_bytes()) else { panic!("parsed") };
        assert_eq!(token_at(line.as_bytes(), e.describe().1), b"xen.bogus=1");
        assert_eq!(c.console, ConsoleMode::Framed);
        assert_eq!(token_at(b"A=1 bare", 4), b"bare");
        assert_eq!(token_at(b"xen.x=1", 99), b"");
    }

    #[test]
    fn longest_line_of_tiny_tokens_fits() {
        let line = "-- ".to_string() + &"a ".repeat(510);
        let c = parsed(&line).unwrap();
        assert_eq!(args(&c).len(), 510);
    }
}
