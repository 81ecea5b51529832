//! Decodes the console framing of `docs/abi.md` §2.
//!
//! With `xen.console=framed` the guest writes one record per line:
//! `RS KIND PAYLOAD LF`. Everything on a line before the RS byte is not the
//! guest's (Xen prints its own text on the same serial line), and the payload
//! is escaped so that it holds no control bytes.

use std::fmt;

/// The record separator that starts every record (ASCII RS).
pub const RS: u8 = 0x1e;

/// What a record carries, from its `KIND` byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `O`: bytes the program wrote to stdout.
    Stdout,
    /// `E`: bytes the program wrote to stderr.
    Stderr,
    /// `L`: one kernel log line, starting with its level letter.
    Log,
    /// `C`: one line of a crash report (`key=value` pairs).
    Crash,
    /// `X`: the exit record, written last.
    Exit,
    /// `T`: a thread's id, stack guard page and name (`id=N guard=0x... name=...`).
    Thread,
}

impl Kind {
    /// Returns the kind named by a `KIND` byte, or `None` for an unknown one.
    pub fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            b'O' => Some(Self::Stdout),
            b'E' => Some(Self::Stderr),
            b'L' => Some(Self::Log),
            b'C' => Some(Self::Crash),
            b'X' => Some(Self::Exit),
            b'T' => Some(Self::Thread),
            _ => None,
        }
    }

    /// Returns the `KIND` byte of this kind.
    pub fn byte(self) -> u8 {
        match self {
            Self::Stdout => b'O',
            Self::Stderr => b'E',
            Self::Log => b'L',
            Self::Crash => b'C',
            Self::Exit => b'X',
            Self::Thread => b'T',
        }
    }
}

/// One decoded record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// What the record carries.
    pub kind: Kind,
    /// The payload with its escapes undone.
    pub payload: Vec<u8>,
}

/// Why a record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordError {
    /// Nothing followed the RS byte.
    Empty,
    /// The `KIND` byte is none of `O E L C X`.
    UnknownKind(u8),
    /// A raw control byte stood in the payload, at this offset in the record.
    ControlByte {
        /// Offset from the byte after RS.
        offset: usize,
        /// The byte found.
        byte: u8,
    },
    /// A `\` was not followed by `\` or `xHH`, at this offset in the record.
    BadEscape {
        /// Offset from the byte after RS.
        offset: usize,
    },
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "nothing after the record separator"),
            Self::UnknownKind(b) => write!(f, "unknown record kind {:?}", char::from(*b)),
            Self::ControlByte { offset, byte } => {
                write!(f, "unescaped control byte 0x{byte:02x} at offset {offset}")
            }
            Self::BadEscape { offset } => write!(f, "bad escape at offset {offset}"),
        }
    }
}

impl std::error::Error for RecordError {}

/// One console line split into Xen's text and the guest's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line<'a> {
    /// The bytes before the record separator (the whole line when there is
    /// none), with trailing CRs removed when the line holds no record.
    pub text: &'a [u8],
    /// The bytes after the last record separator, trailing CRs removed.
    pub record: Option<&'a [u8]>,
}

/// Splits one line (without its LF) at its last record separator.
///
/// The last one is taken because a record's payload never holds a raw RS:
/// anything before it is text from someone else, or a broken record.
pub fn split_line(line: &[u8]) -> Line<'_> {
    match line.iter().rposition(|&b| b == RS) {
        Some(at) => Line { text: &line[..at], record: Some(trim_cr(&line[at + 1..])) },
        None => Line { text: trim_cr(line), record: None },
    }
}

/// Removes trailing CR bytes (ttys add them before LF, sometimes twice).
fn trim_cr(mut bytes: &[u8]) -> &[u8] {
    while let [rest @ .., b'\r'] = bytes {
        bytes = rest;
    }
    bytes
}

/// Decodes the bytes after RS (kind and payload) into a record.
pub fn parse_record(body: &[u8]) -> Result<Record, RecordError> {
    let (&kind, payload) = body.split_first().ok_or(RecordError::Empty)?;
    let kind = Kind::from_byte(kind).ok_or(RecordError::UnknownKind(kind))?;
    let payload = unescape(payload).map_err(|e| e.shifted(1))?;
    Ok(Record { kind, payload })
}

impl RecordError {
    /// Moves an offset so that it counts from an earlier start.
    fn shifted(self, by: usize) -> Self {
        match self {
            Self::ControlByte { offset, byte } => Self::ControlByte { offset: offset + by, byte },
            Self::BadEscape { offset } => Self::BadEscape { offset: offset + by },
            other => other,
        }
    }
}

/// Undoes the payload escapes: `\\` is `\`, `\xHH` is the byte `HH`.
///
/// The kernel writes lowercase hex digits; uppercase ones are accepted too.
pub fn unescape(payload: &[u8]) -> Result<Vec<u8>, RecordError> {
    let mut out = Vec::with_capacity(payload.len());
    let mut i = 0;
    while i < payload.len() {
        let byte = payload[i];
        if byte == b'\\' {
            match payload.get(i + 1) {
                Some(b'\\') => {
                    out.push(b'\\');
                    i += 2;
                }
                Some(b'x') => {
                    let hex =
                        payload.get(i + 2..i + 4).ok_or(RecordError::BadEscape { offset: i })?;
                    let value = hex_pair(hex).ok_or(RecordError::BadEscape { offset: i })?;
                    out.push(value);
                    i += 4;
                }
                _ => return Err(RecordError::BadEscape { offset: i }),
            }
        } else if is_raw(byte) {
            out.push(byte);
            i += 1;
        } else {
            return Err(RecordError::ControlByte { offset: i, byte });
        }
    }
    Ok(out)
}

/// Tells whether a byte may stand for itself in a payload.
fn is_raw(byte: u8) -> bool {
    matches!(byte, 0x20..=0x7e | 0x80..=0xff)
}

/// Decodes two hex digits.
fn hex_pair(hex: &[u8]) -> Option<u8> {
    let digit = |b: u8| char::from(b).to_digit(16);
    Some((digit(hex[0])? * 16 + digit(hex[1])?) as u8)
}

/// Escapes data as a payload (what the kernel does; used by tests and
/// fixtures).
pub fn escape(data: &[u8], out: &mut Vec<u8>) {
    for &byte in data {
        if byte == b'\\' {
            out.extend_from_slice(b"\\\\");
        } else if is_raw(byte) {
            out.push(byte);
        } else {
            out.extend_from_slice(format!("\\x{byte:02x}").as_bytes());
        }
    }
}

/// Encodes one whole record line, RS to LF (for tests and fixtures).
pub fn encode_record(kind: Kind, data: &[u8]) -> Vec<u8> {
    let mut line = vec![RS, kind.byte()];
    escape(data, &mut line);
    line.push(b'\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_xen_text_from_the_record() {
        let line = split_line(b"(XEN) hello\x1eOhi\r");
        assert_eq!(line.text, b"(XEN) hello");
        assert_eq!(line.record, Some(&b"Ohi"[..]));
    }

    #[test]
    fn a_line_without_rs_is_text() {
        let line = split_line(b"(XEN) Freed 656kB init memory\r\r");
        assert_eq!(line, Line { text: b"(XEN) Freed 656kB init memory", record: None });
    }

    #[test]
    fn the_last_rs_starts_the_record() {
        let line = split_line(b"\x1eOpart\x1eX0");
        assert_eq!(line.text, b"\x1eOpart");
        assert_eq!(line.record, Some(&b"X0"[..]));
    }

    #[test]
    fn decodes_each_kind() {
        for (byte, kind) in [
            (b'O', Kind::Stdout),
            (b'E', Kind::Stderr),
            (b'L', Kind::Log),
            (b'C', Kind::Crash),
            (b'X', Kind::Exit),
            (b'T', Kind::Thread),
        ] {
            let record = parse_record(&[byte, b'a']).unwrap();
            assert_eq!(record, Record { kind, payload: b"a".to_vec() });
        }
    }

    #[test]
    fn undoes_escapes() {
        let record = parse_record(b"Oa\\\\b\\x0a\\x00\\xff\\x1E c\xc3\xa9").unwrap();
        assert_eq!(record.payload, b"a\\b\n\x00\xff\x1e c\xc3\xa9");
    }

    #[test]
    fn an_empty_payload_is_fine() {
        assert_eq!(parse_record(b"O").unwrap().payload, b"");
    }

    #[test]
    fn rejects_malformed_records() {
        assert_eq!(parse_record(b""), Err(RecordError::Empty));
        assert_eq!(parse_record(b"Qbogus"), Err(RecordError::UnknownKind(b'Q')));
        assert_eq!(parse_record(b"Oab\\"), Err(RecordError::BadEscape { offset: 3 }));
        assert_eq!(parse_record(b"O\\xzz"), Err(RecordError::BadEscape { offset: 1 }));
        assert_eq!(parse_record(b"O\\x4"), Err(RecordError::BadEscape { offset: 1 }));
        assert_eq!(parse_record(b"O\\n"), Err(RecordError::BadEscape { offset: 1 }));
        assert_eq!(
            parse_record(b"Oa\tb"),
            Err(RecordError::ControlByte { offset: 2, byte: b'\t' })
        );
        assert_eq!(parse_record(b"O\x7f"), Err(RecordError::ControlByte { offset: 1, byte: 0x7f }));
    }

    #[test]
    fn errors_read_well() {
        assert_eq!(RecordError::UnknownKind(b'Q').to_string(), "unknown record kind 'Q'");
        assert_eq!(
            RecordError::ControlByte { offset: 2, byte: 9 }.to_string(),
            "unescaped control byte 0x09 at offset 2"
        );
    }

    #[test]
    fn escape_round_trips_every_byte() {
        let data: Vec<u8> = (0..=255u8).collect();
        let line = encode_record(Kind::Stderr, &data);
        assert_eq!(line.last(), Some(&b'\n'));
        assert!(line[1..line.len() - 1].iter().all(|&b| is_raw(b)));
        let split = split_line(&line[..line.len() - 1]);
        assert_eq!(split.text, b"");
        let record = parse_record(split.record.unwrap()).unwrap();
        assert_eq!(record, Record { kind: Kind::Stderr, payload: data });
    }

    #[test]
    fn escape_writes_lowercase_hex() {
        let mut out = Vec::new();
        escape(b"\x1e\\\n", &mut out);
        assert_eq!(out, b"\\x1e\\\\\\x0a");
    }
}
