//! Reads crash reports and turns them into messages with backtraces.
//!
//! A report comes from the guest's `C` records (`docs/abi.md` §2) or, when
//! Xen killed the guest before it could write one (in PV, a fault that Xen
//! cannot deliver, such as a stack overflow), from Xen's own register dump.

use std::fmt::Write as _;

/// One CPU exception, as far as it is known.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CrashReport {
    /// The exception vector.
    pub vector: Option<u8>,
    /// The exception's name as the guest gave it (`page-fault`).
    pub name: Option<String>,
    /// The error code the CPU pushed.
    pub error: Option<u64>,
    /// The faulting instruction.
    pub rip: Option<u64>,
    /// The stack pointer at the fault.
    pub rsp: Option<u64>,
    /// The faulting address of a page fault.
    pub cr2: Option<u64>,
    /// Return addresses, innermost first.
    pub frames: Vec<u64>,
    /// Where the report came from.
    pub source: Source,
    /// Text Xen printed about the fault that the report cannot hold.
    pub notes: Vec<String>,
    /// The words at the top of the stack, from Xen's dump.
    pub stack_words: Vec<u64>,
    /// Xen could not read the guest's stack at `rsp` (its dump says so).
    pub stack_unreadable: bool,
}

/// A `T` record: a thread's id, the guard page below its stack, and its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadRecord {
    /// The kernel's thread id (as std's messages show it).
    pub id: u64,
    /// The address of the unmapped page below the thread's stack.
    pub guard: u64,
    /// The thread's name.
    pub name: String,
}

impl ThreadRecord {
    /// Parses `id=N guard=0xHEX name=NAME` (the name may hold spaces); `None` if malformed.
    pub fn parse(payload: &[u8]) -> Option<Self> {
        let text = String::from_utf8_lossy(payload);
        let rest = text.strip_prefix("id=")?;
        let (id, rest) = rest.split_once(' ')?;
        let rest = rest.strip_prefix("guard=0x")?;
        let (guard, rest) = rest.split_once(' ')?;
        let name = rest.strip_prefix("name=")?;
        Some(Self {
            id: id.parse().ok()?,
            guard: u64::from_str_radix(guard, 16).ok()?,
            name: name.to_owned(),
        })
    }
}

/// Who wrote a crash report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Source {
    /// The guest's kernel, in `C` records.
    #[default]
    Guest,
    /// Xen, in its console dump when it crashed the domain.
    Xen,
}

/// The page-fault vector.
const PAGE_FAULT: u8 = 14;

/// Page-fault error code: the access was a write (SDM vol. 3A, 4.7).
const PF_WRITE: u64 = 1 << 1;
/// Page-fault error code: the access was an instruction fetch.
const PF_INSTRUCTION: u64 = 1 << 4;

impl CrashReport {
    /// Builds a report from the payloads of `C` records.
    ///
    /// Each holds space-separated `key=value` pairs. Unknown keys and bad
    /// numbers come back as warnings; the report keeps what it understood.
    pub fn from_records(lines: &[Vec<u8>]) -> (Self, Vec<String>) {
        let mut report = Self::default();
        let mut warnings = Vec::new();
        for line in lines {
            let text = String::from_utf8_lossy(line);
            for pair in text.split(' ').filter(|p| !p.is_empty()) {
                if let Err(why) = report.take_pair(pair) {
                    warnings.push(format!("crash record {pair:?}: {why}"));
                }
            }
        }
        (report, warnings)
    }

    /// Applies one `key=value` pair.
    fn take_pair(&mut self, pair: &str) -> Result<(), &'static str> {
        let (key, value) = pair.split_once('=').ok_or("not key=value")?;
        match key {
            "vector" => self.vector = Some(value.parse().map_err(|_| "bad vector")?),
            "name" => self.name = Some(value.to_owned()),
            "error" => self.error = Some(parse_hex(value)?),
            "rip" => self.rip = Some(parse_hex(value)?),
            "rsp" => self.rsp = Some(parse_hex(value)?),
            "cr2" => self.cr2 = Some(parse_hex(value)?),
            "frame" => self.frames.push(parse_hex(value)?),
            _ => return Err("unknown key"),
        }
        Ok(())
    }

    /// Reads Xen's dump of a crashed PV domain, when the lines hold one.
    ///
    /// Looks for `Unhandled: vec N, #XX[EEEE]`, `RIP: cs:[<rip>]`, `rsp:`,
    /// `cr2:` and the rows of `Guest stack trace` in lines that may start
    /// with `(XEN) `. When the lines hold several dumps (a domU's crash is
    /// both printed by Xen and relayed from `xl dmesg`), the last one counts.
    pub fn from_xen_dump<'a>(lines: impl IntoIterator<Item = &'a [u8]>) -> Option<Self> {
        let fresh = || Self { source: Source::Xen, ..Self::default() };
        let mut report = fresh();
        let mut crashed = false;
        let mut in_stack = false;
        for line in lines {
            let text = String::from_utf8_lossy(line);
            let text = text.trim_start_matches("(XEN)").trim();
            if let Some(rest) = text.split_once("Unhandled: vec ").map(|(_, r)| r) {
                (report, crashed) = (fresh(), false);
                report.take_unhandled(rest);
            }
            if text.contains(") crashed on cpu#") {
                if crashed {
                    report = fresh();
                }
                crashed = true;
            }
            if in_stack {
                match stack_row(text) {
                    Some(words) => report.stack_words.extend(words),
                    None => in_stack = false,
                }
            }
            if text.starts_with("Guest stack trace from rsp=") {
                in_stack = true;
            }
            report.take_dump_line(text);
        }
        (crashed && report.rip.is_some()).then_some(report)
    }

    /// Applies a register line or a telling line of Xen's dump.
    fn take_dump_line(&mut self, text: &str) {
        if let Some(rip) = text.strip_prefix("RIP:").and_then(bracketed_hex) {
            self.rip = Some(rip);
        }
        if let Some(rsp) = register(text, "rsp:") {
            self.rsp = Some(rsp);
        }
        if let Some(cr2) = register(text, "cr2:") {
            self.cr2 = Some(cr2);
        }
        if text.contains("Fault while accessing guest memory") {
            self.stack_unreadable = true;
        }
        if text.contains("create_bounce_frame") && self.notes.is_empty() {
            self.notes.push(
                "Xen could not deliver the exception to the guest (no handler yet, or no \
                 stack to push its frame on)"
                    .to_owned(),
            );
        }
    }

    /// Applies `14, #PF[0002]` from Xen's `Unhandled: vec` line.
    fn take_unhandled(&mut self, rest: &str) {
        let (vector, tail) = rest.split_once(',').unwrap_or((rest, ""));
        self.vector = vector.trim().parse().ok();
        if let Some(code) = tail.split_once('[').and_then(|(_, c)| c.split_once(']')) {
            self.error = u64::from_str_radix(code.0, 16).ok();
        }
    }

    /// Returns the one-line summary, e.g. `guest crashed: page fault (vector
    /// 14) reading address 0x10, at rip 0x401000`.
    pub fn headline(&self) -> String {
        let mut line = String::from("guest crashed: ");
        line.push_str(&self.exception_name());
        if let Some(vector) = self.vector {
            let _ = write!(line, " (vector {vector})");
        }
        if self.vector == Some(PAGE_FAULT) {
            let access = match self.error {
                Some(e) if e & PF_INSTRUCTION != 0 => " executing at",
                Some(e) if e & PF_WRITE != 0 => " writing",
                Some(_) => " reading",
                None => " at",
            };
            line.push_str(access);
            match self.cr2 {
                Some(cr2) => _ = write!(line, " address {cr2:#x}"),
                None => line.push_str(" an unknown address"),
            }
        } else if let Some(error) = self.error.filter(|_| has_error_code(self.vector)) {
            let _ = write!(line, ", error code {error:#x}");
        }
        if let Some(rip) = self.rip {
            let _ = write!(line, ", at rip {rip:#x}");
        }
        line
    }

    /// Names the exception: the guest's name, else the SDM's for the vector.
    fn exception_name(&self) -> String {
        if let Some(name) = &self.name {
            return name.replace('-', " ");
        }
        match self.vector {
            Some(vector) => vector_name(vector).unwrap_or("CPU exception").to_owned(),
            None => "CPU exception".to_owned(),
        }
    }

    /// Tells whether the fault address lies just below the stack pointer.
    ///
    /// That is what running into a stack's guard page looks like. It is a
    /// heuristic: a wild pointer can land there too.
    pub fn looks_like_stack_overflow(&self) -> bool {
        match (self.vector, self.cr2, self.rsp) {
            (Some(PAGE_FAULT), Some(cr2), Some(rsp)) => {
                cr2 <= rsp.saturating_add(256) && rsp - cr2.min(rsp) < 64 * 1024
            }
            _ => false,
        }
    }

    /// Names the thread whose stack overflowed, if this crash is one: the fault hit a guard
    /// page the kernel announced (`T` records, docs/abi.md), or, for a thread that has no
    /// record, it looks like one (`<unknown>`, as Linux says).
    pub fn overflowed_thread(&self, threads: &[Vec<u8>]) -> Option<String> {
        let address = self.cr2.or(self.rsp)?;
        for record in threads {
            let Some(thread) = ThreadRecord::parse(record) else { continue };
            if (thread.guard..thread.guard + 4096).contains(&address) {
                // As Linux's std names it: `'name' (id)`.
                return Some(format!("'{}' ({})", thread.name, thread.id));
            }
        }
        let near_rsp = match (self.cr2, self.rsp) {
            (Some(cr2), Some(rsp)) => {
                cr2 <= rsp.saturating_add(256) && rsp - cr2.min(rsp) < 64 * 1024
            }
            _ => false,
        };
        (self.looks_like_stack_overflow() || (self.source == Source::Xen && near_rsp && self.stack_unreadable))
            .then(|| "'<unknown>'".to_owned())
    }

    /// Renders the whole message: headline, notes and backtrace.
    pub fn render(&self, symbols: &dyn Symbolize) -> String {
        let mut out = self.headline();
        out.push('\n');
        if self.source == Source::Xen {
            out.push_str("  (reported by Xen: the guest wrote no crash report)\n");
        }
        for note in &self.notes {
            let _ = writeln!(out, "  note: {note}");
        }
        if self.looks_like_stack_overflow() {
            out.push_str(
                "  note: the address is just below the stack pointer: a stack overflow?\n",
            );
        }
        if let Some(rsp) = self.rsp {
            let _ = writeln!(out, "  rsp {rsp:#x}");
        }
        let addresses: Vec<(u64, u64)> = self
            .rip
            .map(|rip| (rip, rip))
            .into_iter()
            // A return address points after the call: look up the call itself.
            .chain(self.frames.iter().map(|&f| (f, f.saturating_sub(1))))
            .collect();
        if !addresses.is_empty() {
            out.push_str("backtrace:\n");
        }
        for (index, (shown, probe)) in addresses.into_iter().enumerate() {
            render_frame(&mut out, index, shown, &symbols.frames(probe));
        }
        self.render_stack_words(&mut out, symbols);
        out
    }

    /// Lists the stack words that point into code: likely return addresses,
    /// though some may be stale.
    fn render_stack_words(&self, out: &mut String, symbols: &dyn Symbolize) {
        let code: Vec<u64> =
            self.stack_words.iter().copied().filter(|&w| symbols.is_code(w)).take(16).collect();
        if code.is_empty() {
            return;
        }
        out.push_str(
            "code addresses on the stack (likely callers, innermost first; may be stale):\n",
        );
        for (index, word) in code.into_iter().enumerate() {
            render_frame(out, index, word, &symbols.frames(word.saturating_sub(1)));
        }
    }
}

/// Writes one backtrace entry, with the functions inlined at that address.
fn render_frame(out: &mut String, index: usize, address: u64, frames: &[SymbolFrame]) {
    let head = format!("{index:>4}: {address:#018x} ");
    out.push_str(&head);
    if frames.is_empty() {
        out.push_str("??\n");
    }
    for (depth, frame) in frames.iter().enumerate() {
        if depth > 0 {
            let _ = write!(out, "{:width$}inlined into ", "", width = head.len());
        }
        out.push_str(frame.function.as_deref().unwrap_or("??"));
        match (&frame.file, frame.line) {
            (Some(file), Some(line)) => _ = write!(out, " ({file}:{line})"),
            (Some(file), None) => _ = write!(out, " ({file})"),
            _ => {}
        }
        out.push('\n');
    }
}

/// Tells whether the CPU pushes an error code for a vector.
fn has_error_code(vector: Option<u8>) -> bool {
    matches!(vector, Some(8 | 10 | 11 | 12 | 13 | 14 | 17 | 21))
}

/// Returns the SDM's name of an exception vector (SDM vol. 3A, table 6-1).
pub fn vector_name(vector: u8) -> Option<&'static str> {
    Some(match vector {
        0 => "divide error",
        1 => "debug exception",
        2 => "NMI",
        3 => "breakpoint",
        4 => "overflow",
        5 => "BOUND range exceeded",
        6 => "invalid opcode",
        7 => "device not available",
        8 => "double fault",
        10 => "invalid TSS",
        11 => "segment not present",
        12 => "stack-segment fault",
        13 => "general protection fault",
        14 => "page fault",
        16 => "x87 floating-point error",
        17 => "alignment check",
        18 => "machine check",
        19 => "SIMD floating-point exception",
        20 => "virtualization exception",
        21 => "control protection exception",
        _ => return None,
    })
}

/// Parses `0x1f` (or `1f`) as hex.
fn parse_hex(value: &str) -> Result<u64, &'static str> {
    let digits = value.strip_prefix("0x").unwrap_or(value);
    u64::from_str_radix(digits, 16).map_err(|_| "bad hex number")
}

/// Reads a row of Xen's `Guest stack trace`: 16-digit hex words only.
fn stack_row(text: &str) -> Option<Vec<u64>> {
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.is_empty() || !words.iter().all(|w| w.len() == 16) {
        return None;
    }
    words.iter().map(|w| u64::from_str_radix(w, 16).ok()).collect()
}

/// Reads `e033:[<0000000000402422>]`.
fn bracketed_hex(text: &str) -> Option<u64> {
    let (_, rest) = text.split_once("[<")?;
    let (hex, _) = rest.split_once(">]")?;
    u64::from_str_radix(hex, 16).ok()
}

/// Reads the value after `name` in a register line such as
/// `rbp: 0000000000412710   rsp: 00000000004126c0   r8:  0000000000000000`.
fn register(text: &str, name: &str) -> Option<u64> {
    let (_, rest) = text.split_once(name)?;
    let hex = rest.split_whitespace().next()?;
    u64::from_str_radix(hex, 16).ok()
}

/// One function at an address: the innermost inlined one first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SymbolFrame {
    /// The demangled function name, or the symbol plus offset.
    pub function: Option<String>,
    /// The source file.
    pub file: Option<String>,
    /// The source line.
    pub line: Option<u32>,
}

/// Turns addresses into functions and source lines.
pub trait Symbolize {
    /// Returns the functions at an address, innermost first; empty when
    /// nothing is known.
    fn frames(&self, address: u64) -> Vec<SymbolFrame>;

    /// Tells whether an address lies in the image's code.
    fn is_code(&self, _address: u64) -> bool {
        false
    }
}

/// A symbolizer that knows nothing.
pub struct NoSymbols;

impl Symbolize for NoSymbols {
    fn frames(&self, _address: u64) -> Vec<SymbolFrame> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(lines: &[&str]) -> Vec<Vec<u8>> {
        lines.iter().map(|l| l.as_bytes().to_vec()).collect()
    }

    fn page_fault() -> CrashReport {
        let (report, warnings) = CrashReport::from_records(&records(&[
            "vector=14 name=page-fault",
            "error=0x0",
            "rip=0x401234",
            "rsp=0x7ff000",
            "cr2=0x10",
            "frame=0x401300",
            "frame=0x401400",
        ]));
        assert!(warnings.is_empty(), "{warnings:?}");
        report
    }

    #[test]
    fn reads_the_records() {
        let report = page_fault();
        assert_eq!(report.vector, Some(14));
        assert_eq!(report.name.as_deref(), Some("page-fault"));
        assert_eq!(report.error, Some(0));
        assert_eq!(report.rip, Some(0x401234));
        assert_eq!(report.rsp, Some(0x7ff000));
        assert_eq!(report.cr2, Some(0x10));
        assert_eq!(report.frames, [0x401300, 0x401400]);
    }

    #[test]
    fn headline_of_a_read_fault() {
        assert_eq!(
            page_fault().headline(),
            "guest crashed: page fault (vector 14) reading address 0x10, at rip 0x401234"
        );
    }

    #[test]
    fn headline_tells_writes_and_fetches() {
        let write = CrashReport { error: Some(0x2), ..page_fault() };
        assert!(write.headline().contains("writing address 0x10"));
        let fetch = CrashReport { error: Some(0x10), ..page_fault() };
        assert!(fetch.headline().contains("executing at address 0x10"));
    }

    #[test]
    fn headline_of_other_vectors() {
        let gp =
            CrashReport { vector: Some(13), error: Some(0), rip: Some(0x10), ..Default::default() };
        assert_eq!(
            gp.headline(),
            "guest crashed: general protection fault (vector 13), error code 0x0, at rip 0x10"
        );
        let ud = CrashReport { vector: Some(6), error: Some(0), ..Default::default() };
        assert_eq!(ud.headline(), "guest crashed: invalid opcode (vector 6)");
    }

    #[test]
    fn bad_pairs_become_warnings() {
        let (report, warnings) = CrashReport::from_records(&records(&[
            "vector=14 colour=red",
            "rip=0xzz",
            "frame=0x10",
        ]));
        assert_eq!(report.vector, Some(14));
        assert_eq!(report.rip, None);
        assert_eq!(report.frames, [0x10]);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
    }

    struct Table;

    impl Symbolize for Table {
        fn frames(&self, address: u64) -> Vec<SymbolFrame> {
            let frame = |f: &str, l| SymbolFrame {
                function: Some(f.into()),
                file: Some("src/main.rs".into()),
                line: Some(l),
            };
            match address {
                0x401234 => vec![frame("app::crash", 3)],
                0x4012ff => vec![frame("app::inner", 7), frame("app::outer", 9)],
                _ => Vec::new(),
            }
        }
    }

    #[test]
    fn renders_a_backtrace() {
        let text = page_fault().render(&Table);
        let want = "\
guest crashed: page fault (vector 14) reading address 0x10, at rip 0x401234
  rsp 0x7ff000
backtrace:
   0: 0x0000000000401234 app::crash (src/main.rs:3)
   1: 0x0000000000401300 app::inner (src/main.rs:7)
                         inlined into app::outer (src/main.rs:9)
   2: 0x0000000000401400 ??
";
        assert_eq!(text, want);
    }

    const XEN_DUMP: &str = "\
(XEN) d0v0 Unhandled: vec 14, #PF[0002]
(XEN) Pagetable walk from 0000000040000000:
(XEN) domain_crash_sync called from entry.S: fault at ffff82d040204b78 x86_64/entry.S#create_bounce_frame+0x14f/0x177
(XEN) Domain 0 (vcpu#0) crashed on cpu#0:
(XEN) ----[ Xen-4.17.7  x86_64  debug=n  Not tainted ]----
(XEN) RIP:    e033:[<0000000000402422>]
(XEN) rbp: 0000000000412710   rsp: 00000000004126c0   r8:  0000000000000000
(XEN) cr3: 0000000006c36000   cr2: 0000000040000000
(XEN) Hardware Dom0 crashed: rebooting machine in 5 seconds.";

    #[test]
    fn reads_xens_dump() {
        let report = CrashReport::from_xen_dump(XEN_DUMP.lines().map(str::as_bytes)).unwrap();
        assert_eq!(report.vector, Some(14));
        assert_eq!(report.error, Some(2));
        assert_eq!(report.rip, Some(0x402422));
        assert_eq!(report.rsp, Some(0x4126c0));
        assert_eq!(report.cr2, Some(0x40000000));
        assert_eq!(report.source, Source::Xen);
        assert_eq!(report.notes.len(), 1);
        assert_eq!(
            report.headline(),
            "guest crashed: page fault (vector 14) writing address 0x40000000, at rip 0x402422"
        );
        assert!(!report.looks_like_stack_overflow());
    }

    #[test]
    fn the_last_of_two_dumps_counts() {
        let second =
            XEN_DUMP.replace("d0v0", "d1v0").replace("0000000000402422", "0000000000401000");
        let both = format!("{XEN_DUMP}\n{second}");
        let report = CrashReport::from_xen_dump(both.lines().map(str::as_bytes)).unwrap();
        assert_eq!(report.rip, Some(0x401000));
        assert_eq!(report.notes.len(), 1);
    }

    #[test]
    fn lists_code_addresses_from_the_stack() {
        let dump = format!(
            "{XEN_DUMP}\n\
             (XEN) Guest stack trace from rsp=00000000004126c0:\n\
             (XEN)    0000000000000047 0000000000401235 0000000000000002 0000000000402422\n\
             (XEN)    0000000000401300\n\
             (XEN) Hardware Dom0 crashed: rebooting machine in 5 seconds."
        );
        let report = CrashReport::from_xen_dump(dump.lines().map(str::as_bytes)).unwrap();
        assert_eq!(report.stack_words, [0x47, 0x401235, 2, 0x402422, 0x401300]);

        struct Code;
        impl Symbolize for Code {
            fn frames(&self, address: u64) -> Vec<SymbolFrame> {
                Table.frames(address)
            }
            fn is_code(&self, address: u64) -> bool {
                (0x400000..0x410000).contains(&address)
            }
        }
        let text = report.render(&Code);
        let tail = text.split_once("code addresses on the stack").unwrap().1;
        assert_eq!(tail.lines().count(), 1 + 3 + 1, "{text}");
        assert!(tail.contains("0x0000000000401235 app::crash (src/main.rs:3)"), "{text}");
    }

    #[test]
    fn no_dump_no_report() {
        let lines =
            ["(XEN) Freed 656kB init memory", "(XEN) Hardware Dom0 halted: halting machine"];
        assert_eq!(CrashReport::from_xen_dump(lines.map(str::as_bytes)), None);
    }

    #[test]
    fn spots_a_likely_stack_overflow() {
        let report = CrashReport {
            vector: Some(14),
            rsp: Some(0x80_0008),
            cr2: Some(0x7f_fff8),
            ..Default::default()
        };
        assert!(report.looks_like_stack_overflow());
        assert!(report.render(&NoSymbols).contains("stack overflow?"));
    }
}

#[cfg(test)]
mod thread_tests {
    use super::*;

    #[test]
    fn parses_thread_records() {
        let t = ThreadRecord::parse(b"id=7 guard=0x5a0000 name=deep worker").unwrap();
        assert_eq!(t, ThreadRecord { id: 7, guard: 0x5a0000, name: "deep worker".into() });
        assert_eq!(ThreadRecord::parse(b"id=x guard=0x1 name=a"), None);
        assert_eq!(ThreadRecord::parse(b"guard=0x1 name=a"), None);
    }

    #[test]
    fn names_the_thread_whose_guard_page_was_hit() {
        let records = vec![b"id=1 guard=0x400000 name=main".to_vec(), b"id=5 guard=0x900000 name=deep".to_vec()];
        let crash = CrashReport { cr2: Some(0x900ff0), rsp: Some(0x900ff0), source: Source::Xen, ..Default::default() };
        assert_eq!(crash.overflowed_thread(&records).as_deref(), Some("'deep' (5)"));
        let unnamed = CrashReport { cr2: Some(0x700ff8), rsp: Some(0x701000), source: Source::Xen, stack_unreadable: true, ..Default::default() };
        assert_eq!(unnamed.overflowed_thread(&records).as_deref(), Some("'<unknown>'"));
        let wild = CrashReport { cr2: Some(0x10), rsp: Some(0x701000), vector: Some(14), ..Default::default() };
        assert_eq!(wild.overflowed_thread(&records), None);
    }
}
