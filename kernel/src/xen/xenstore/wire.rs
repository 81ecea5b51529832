//! The xenstore wire protocol (`xen/include/public/io/xs_wire.h`): a 16-byte header
//! (`struct xsd_sockmsg`) then `len` bytes of payload, mostly NUL-terminated strings.
//!
//! Pure logic, tested on the host: encoding requests, reassembling replies from ring bytes,
//! and reading what a reply carries. Everything the daemon sends is checked here before the
//! client believes it.

use alloc::vec::Vec;

/// `XENSTORE_PAYLOAD_MAX`: the most payload bytes one message may carry.
pub const PAYLOAD_MAX: usize = 4096;
/// `XENSTORE_ABS_PATH_MAX`.
pub const ABS_PATH_MAX: usize = 3072;
/// `XENSTORE_REL_PATH_MAX`.
pub const REL_PATH_MAX: usize = 2048;
/// The header's size.
pub const HEADER_LEN: usize = 16;

/// Message types (`enum xsd_sockmsg_type`), in the header's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum MsgType {
    Directory = 1,
    Read = 2,
    GetPerms = 3,
    Watch = 4,
    Unwatch = 5,
    TransactionStart = 6,
    TransactionEnd = 7,
    GetDomainPath = 10,
    Write = 11,
    Mkdir = 12,
    Rm = 13,
    SetPerms = 14,
    WatchEvent = 15,
    Error = 16,
    /// One part of a folder's names, for folders too large for one reply.
    DirectoryPart = 22,
}

impl MsgType {
    /// The request types a program may send (the rest are the daemon's or the toolstack's).
    pub fn from_request(value: u32) -> Option<MsgType> {
        Some(match value {
            1 => Self::Directory,
            2 => Self::Read,
            3 => Self::GetPerms,
            6 => Self::TransactionStart,
            7 => Self::TransactionEnd,
            10 => Self::GetDomainPath,
            11 => Self::Write,
            12 => Self::Mkdir,
            13 => Self::Rm,
            14 => Self::SetPerms,
            22 => Self::DirectoryPart,
            _ => return None,
        })
    }
}

/// `struct xsd_sockmsg`, in host byte order (both ends are the same machine).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub kind: u32,
    pub req_id: u32,
    pub tx_id: u32,
    pub len: u32,
}

impl Header {
    pub fn to_bytes(self) -> [u8; HEADER_LEN] {
        let mut out = [0; HEADER_LEN];
        for (i, word) in [self.kind, self.req_id, self.tx_id, self.len].into_iter().enumerate() {
            out[i * 4..i * 4 + 4].copy_from_slice(&word.to_le_bytes());
        }
        out
    }

    pub fn from_bytes(bytes: &[u8; HEADER_LEN]) -> Header {
        let word = |i: usize| u32::from_le_bytes(bytes[i * 4..i * 4 + 4].try_into().unwrap());
        Header { kind: word(0), req_id: word(1), tx_id: word(2), len: word(3) }
    }
}

/// Why a request cannot be sent, or a reply not believed; each maps to a Linux errno.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireError {
    /// The payload is larger than `PAYLOAD_MAX` (E2BIG).
    TooBig,
    /// A path is empty, too long, or holds a NUL (EINVAL).
    BadPath,
    /// The daemon broke the protocol (EIO): a length over the limit, a reply that does not
    /// parse. The connection cannot be trusted after it.
    Protocol,
}

/// Checks a path as xenstored would before it is sent: no NUL, within the limits, not empty.
pub fn check_path(path: &[u8]) -> Result<(), WireError> {
    let max = if path.first() == Some(&b'/') { ABS_PATH_MAX } else { REL_PATH_MAX };
    if path.is_empty() || path.len() > max || path.contains(&0) {
        return Err(WireError::BadPath);
    }
    Ok(())
}

/// Builds one request message: header, then `parts` each followed by a NUL when `nul` says
/// so (a value written with `XS_WRITE` has none).
pub fn encode(kind: MsgType, req_id: u32, tx_id: u32, parts: &[(&[u8], bool)]) -> Result<Vec<u8>, WireError> {
    let len: usize = parts.iter().map(|(p, nul)| p.len() + *nul as usize).sum();
    if len > PAYLOAD_MAX {
        return Err(WireError::TooBig);
    }
    let mut out = Vec::with_capacity(HEADER_LEN + len);
    out.extend_from_slice(&Header { kind: kind as u32, req_id, tx_id, len: len as u32 }.to_bytes());
    for (part, nul) in parts {
        out.extend_from_slice(part);
        if *nul {
            out.push(0);
        }
    }
    Ok(out)
}

/// One whole message from the daemon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub header: Header,
    pub payload: Vec<u8>,
}

/// Collects reply bytes as they come off the ring into whole messages.
pub struct Reassembler {
    header: [u8; HEADER_LEN],
    have_header: usize,
    payload: Vec<u8>,
    want: usize,
}

impl Default for Reassembler {
    fn default() -> Self {
        Self::new()
    }
}

impl Reassembler {
    pub const fn new() -> Self {
        Reassembler { header: [0; HEADER_LEN], have_header: 0, payload: Vec::new(), want: 0 }
    }

    /// Takes bytes from `input` until one message is whole (returned, with how much of the
    /// input it used) or the input runs out (`None`, all used). A header whose length is over
    /// `PAYLOAD_MAX` is a protocol error.
    pub fn feed(&mut self, input: &[u8]) -> (usize, Option<Result<Message, WireError>>) {
        let mut used = 0;
        if self.have_header < HEADER_LEN {
            let take = (HEADER_LEN - self.have_header).min(input.len());
            self.header[self.have_header..self.have_header + take].copy_from_slice(&input[..take]);
            self.have_header += take;
            used += take;
            if self.have_header < HEADER_LEN {
                return (used, None);
            }
            let header = Header::from_bytes(&self.header);
            if header.len as usize > PAYLOAD_MAX {
                self.have_header = 0;
                return (used, Some(Err(WireError::Protocol)));
            }
            self.want = header.len as usize;
            self.payload = Vec::with_capacity(self.want);
        }
        let take = (self.want - self.payload.len()).min(input.len() - used);
        self.payload.extend_from_slice(&input[used..used + take]);
        used += take;
        if self.payload.len() < self.want {
            return (used, None);
        }
        self.have_header = 0;
        let message = Message { header: Header::from_bytes(&self.header), payload: core::mem::take(&mut self.payload) };
        (used, Some(Ok(message)))
    }
}

/// The Linux errno of an `XS_ERROR` reply's text (`xsd_errors`), EIO for one not known.
pub fn error_errno(payload: &[u8]) -> isize {
    let name = payload.split(|&b| b == 0).next().unwrap_or(b"");
    match name {
        b"EINVAL" => 22,
        b"EACCES" => 13,
        b"EEXIST" => 17,
        b"EISDIR" => 21,
        b"ENOENT" => 2,
        b"ENOMEM" => 12,
        b"ENOSPC" => 28,
        b"EIO" => 5,
        b"ENOTEMPTY" => 39,
        b"ENOSYS" => 38,
        b"EROFS" => 30,
        b"EBUSY" => 16,
        b"EAGAIN" => 11,
        b"EISCONN" => 106,
        b"E2BIG" => 7,
        b"EPERM" => 1,
        b"EQUOTA" => 122,
        _ => 5,
    }
}

/// A watch event's payload, `PATH NUL TOKEN NUL`: the path and the token, or a protocol
/// error when it is not that shape.
pub fn watch_event(payload: &[u8]) -> Result<(&[u8], &[u8]), WireError> {
    let mut parts = payload.split(|&b| b == 0);
    let path = parts.next().filter(|p| !p.is_empty()).ok_or(WireError::Protocol)?;
    let token = parts.next().ok_or(WireError::Protocol)?;
    Ok((path, token))
}

/// The entries of an `XS_DIRECTORY` reply: NUL-terminated names, possibly none.
pub fn directory_entries(payload: &[u8]) -> impl Iterator<Item = &[u8]> {
    let body = payload.strip_suffix(&[0]).unwrap_or(payload);
    body.split(|&b| b == 0).filter(|name| !name.is_empty())
}

/// A reply's payload as one NUL-terminated string (transaction ids, domain paths), with its
/// NUL taken off; a reply with a NUL inside is a protocol error.
pub fn single_string(payload: &[u8]) -> Result<&[u8], WireError> {
    let body = payload.strip_suffix(&[0]).unwrap_or(payload);
    if body.contains(&0) { Err(WireError::Protocol) } else { Ok(body) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_request_is_header_path_nul() {
        let bytes = encode(MsgType::Read, 7, 0, &[(b"domid", true)]).unwrap();
        assert_eq!(bytes, b"\x02\0\0\0\x07\0\0\0\0\0\0\0\x06\0\0\0domid\0");
    }

    #[test]
    fn a_write_request_has_no_nul_after_the_value() {
        let bytes = encode(MsgType::Write, 1, 9, &[(b"data/x", true), (b"v", false)]).unwrap();
        assert_eq!(&bytes[..16], b"\x0b\0\0\0\x01\0\0\0\x09\0\0\0\x08\0\0\0");
        assert_eq!(&bytes[16..], b"data/x\0v");
    }

    #[test]
    fn oversize_payloads_are_refused() {
        let big = [b'a'; PAYLOAD_MAX];
        assert_eq!(encode(MsgType::Write, 1, 0, &[(b"k", true), (&big, false)]), Err(WireError::TooBig));
        assert!(encode(MsgType::Write, 1, 0, &[(&big[..PAYLOAD_MAX - 2], true), (b"", false)]).is_ok());
    }

    #[test]
    fn paths_are_checked() {
        assert_eq!(check_path(b""), Err(WireError::BadPath));
        assert_eq!(check_path(b"a\0b"), Err(WireError::BadPath));
        assert_eq!(check_path(&[b'a'; REL_PATH_MAX + 1]), Err(WireError::BadPath));
        let mut abs = alloc::vec![b'/'];
        abs.extend_from_slice(&[b'a'; ABS_PATH_MAX - 1]);
        assert_eq!(check_path(&abs), Ok(()));
        abs.push(b'a');
        assert_eq!(check_path(&abs), Err(WireError::BadPath));
        assert_eq!(check_path(b"/local/domain/3/name"), Ok(()));
    }

    #[test]
    fn messages_reassemble_from_any_split() {
        let mut stream = Vec::new();
        stream.extend_from_slice(&Header { kind: 2, req_id: 5, tx_id: 0, len: 3 }.to_bytes());
        stream.extend_from_slice(b"abc");
        stream.extend_from_slice(&Header { kind: 15, req_id: 0, tx_id: 0, len: 0 }.to_bytes());
        for chunk in 1..stream.len() {
            let mut asm = Reassembler::new();
            let mut got = Vec::new();
            for piece in stream.chunks(chunk) {
                let mut at = 0;
                while at < piece.len() {
                    let (used, message) = asm.feed(&piece[at..]);
                    at += used;
                    if let Some(m) = message {
                        got.push(m.unwrap());
                    }
                }
            }
            assert_eq!(got.len(), 2, "chunk {chunk}");
            assert_eq!(got[0].header.req_id, 5);
            assert_eq!(got[0].payload, b"abc");
            assert_eq!(got[1].header.kind, 15);
            assert!(got[1].payload.is_empty());
        }
    }

    #[test]
    fn an_overlong_length_is_a_protocol_error() {
        let mut asm = Reassembler::new();
        let header = Header { kind: 2, req_id: 1, tx_id: 0, len: PAYLOAD_MAX as u32 + 1 }.to_bytes();
        assert_eq!(asm.feed(&header), (16, Some(Err(WireError::Protocol))));
        let header = Header { kind: 2, req_id: 1, tx_id: 0, len: u32::MAX }.to_bytes();
        assert_eq!(asm.feed(&header).1, Some(Err(WireError::Protocol)));
    }

    #[test]
    fn error_replies_map_to_errno() {
        assert_eq!(error_errno(b"ENOENT\0"), 2);
        assert_eq!(error_errno(b"EACCES\0"), 13);
        assert_eq!(error_errno(b"EAGAIN\0"), 11);
        assert_eq!(error_errno(b"E2BIG"), 7);
        assert_eq!(error_errno(b"\xff\xfe garbage"), 5);
        assert_eq!(error_errno(b""), 5);
    }

    #[test]
    fn watch_events_split_path_and_token() {
        assert_eq!(watch_event(b"control/shutdown\0w1\0"), Ok((&b"control/shutdown"[..], &b"w1"[..])));
        assert_eq!(watch_event(b"no-token"), Err(WireError::Protocol));
        assert_eq!(watch_event(b"\0w1\0"), Err(WireError::Protocol));
        assert_eq!(watch_event(b""), Err(WireError::Protocol));
    }

    #[test]
    fn directory_replies_list_names() {
        let names: Vec<&[u8]> = directory_entries(b"a\0bb\0c\0").collect();
        assert_eq!(names, [&b"a"[..], b"bb", b"c"]);
        assert_eq!(directory_entries(b"").count(), 0);
        assert_eq!(directory_entries(b"\0").count(), 0);
        assert_eq!(directory_entries(b"x").collect::<Vec<_>>(), [&b"x"[..]]);
    }

    #[test]
    fn single_strings_lose_their_nul() {
        assert_eq!(single_string(b"42\0"), Ok(&b"42"[..]));
        assert_eq!(single_string(b"42"), Ok(&b"42"[..]));
        assert_eq!(single_string(b"4\02\0"), Err(WireError::Protocol));
    }

    #[test]
    fn request_types_a_program_may_send() {
        assert_eq!(MsgType::from_request(2), Some(MsgType::Read));
        assert_eq!(MsgType::from_request(4), None, "watches go through their own call");
        assert_eq!(MsgType::from_request(8), None, "XS_INTRODUCE is the toolstack's");
        assert_eq!(MsgType::from_request(16), None);
        assert_eq!(MsgType::from_request(22), Some(MsgType::DirectoryPart));
    }
}
