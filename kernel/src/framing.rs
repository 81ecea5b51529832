//! The console framing of `docs/abi.md`: records `RS KIND PAYLOAD LF` with an escaped payload.
//!
//! Pure logic, tested on the host; the console module feeds the records to Xen.

/// The byte that starts every record.
pub const RS: u8 = 0x1e;

/// What a record carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Stdout,
    Stderr,
    Log,
    Crash,
    Exit,
    Thread,
}

impl Kind {
    /// The record's kind byte.
    pub const fn byte(self) -> u8 {
        match self {
            Kind::Stdout => b'O',
            Kind::Stderr => b'E',
            Kind::Log => b'L',
            Kind::Crash => b'C',
            Kind::Exit => b'X',
            Kind::Thread => b'T',
        }
    }
}

/// The most bytes one record holds, escapes included, so that one fits a console write.
pub const MAX_RECORD: usize = 512;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends the escaped form of `byte` to `out` at `len`; returns the new length.
fn escape(byte: u8, out: &mut [u8], len: usize) -> usize {
    match byte {
        b'\\' => {
            out[len..len + 2].copy_from_slice(b"\\\\");
            len + 2
        }
        0x20..=0x7e | 0x80..=0xff => {
            out[len] = byte;
            len + 1
        }
        _ => {
            out[len..len + 4].copy_from_slice(&[b'\\', b'x', HEX[(byte >> 4) as usize], HEX[(byte & 15) as usize]]);
            len + 4
        }
    }
}

/// Encodes `data` as records of `kind`, each at most [`MAX_RECORD`] bytes, and hands each
/// whole record to `emit`. Empty data gives one empty record.
pub fn encode(kind: Kind, data: &[u8], mut emit: impl FnMut(&[u8])) {
    let mut record = [0u8; MAX_RECORD];
    let mut rest = data;
    loop {
        record[0] = RS;
        record[1] = kind.byte();
        let mut len = 2;
        let mut used = 0;
        // Leave room for the longest escape (4 bytes) and the closing LF.
        while used < rest.len() && len + 5 <= MAX_RECORD {
            len = escape(rest[used], &mut record, len);
            used += 1;
        }
        record[len] = b'\n';
        emit(&record[..len + 1]);
        rest = &rest[used..];
        if rest.is_empty() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(kind: Kind, data: &[u8]) -> Vec<Vec<u8>> {
        let mut records = Vec::new();
        encode(kind, data, |r| records.push(r.to_vec()));
        records
    }

    #[test]
    fn plain_text_passes_through() {
        assert_eq!(encoded(Kind::Stdout, b"hi there"), vec![b"\x1eOhi there\n".to_vec()]);
    }

    #[test]
    fn control_bytes_and_backslash_are_escaped() {
        assert_eq!(
            encoded(Kind::Stderr, b"a\\b\n\x00\x7f"),
            vec![b"\x1eEa\\\\b\\x0a\\x00\\x7f\n".to_vec()]
        );
    }

    #[test]
    fn high_bytes_stand_for_themselves() {
        assert_eq!(encoded(Kind::Stdout, "é".as_bytes()), vec![b"\x1eO\xc3\xa9\n".to_vec()]);
    }

    #[test]
    fn empty_data_is_one_empty_record() {
        assert_eq!(encoded(Kind::Exit, b""), vec![b"\x1eX\n".to_vec()]);
    }

    #[test]
    fn long_data_splits_into_bounded_records_that_decode_back() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 256) as u8).collect();
        let records = encoded(Kind::Stdout, &data);
        assert!(records.len() > 1);
        let mut decoded = Vec::new();
        for r in &records {
            assert!(r.len() <= MAX_RECORD);
            assert_eq!(&r[..2], b"\x1eO");
            assert_eq!(*r.last().unwrap(), b'\n');
            assert!(!r[2..r.len() - 1].iter().any(|&b| b < 0x20 || b == 0x7f));
            let body = &r[2..r.len() - 1];
            let mut i = 0;
            while i < body.len() {
                if body[i] == b'\\' {
                    if body[i + 1] == b'\\' {
                        decoded.push(b'\\');
                        i += 2;
                    } else {
                        let hex = core::str::from_utf8(&body[i + 2..i + 4]).unwrap();
                        decoded.push(u8::from_str_radix(hex, 16).unwrap());
                        i += 4;
                    }
                } else {
                    decoded.push(body[i]);
                    i += 1;
                }
            }
        }
        assert_eq!(decoded, data);
    }
}
