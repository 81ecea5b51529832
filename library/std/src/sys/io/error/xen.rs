//! Error codes on Xen: the kernel reports Linux's `errno` values, so programs see the same
//! `io::ErrorKind`s and messages as on Linux.

use crate::io::ErrorKind::{self, *};

/// Each known code with its kind and message; codes not listed are `Uncategorized`.
const CODES: &[(i32, ErrorKind, &str)] = &[
    (1, PermissionDenied, "Operation not permitted"),
    (2, NotFound, "No such file or directory"),
    (4, Interrupted, "Interrupted system call"),
    (5, Uncategorized, "Input/output error"),
    (7, ArgumentListTooLong, "Argument list too long"),
    (9, Uncategorized, "Bad file descriptor"),
    (11, WouldBlock, "Resource temporarily unavailable"),
    (12, OutOfMemory, "Cannot allocate memory"),
    (13, PermissionDenied, "Permission denied"),
    (16, ResourceBusy, "Device or resource busy"),
    (17, AlreadyExists, "File exists"),
    (18, CrossesDevices, "Invalid cross-device link"),
    (19, Unsupported, "No such device"),
    (20, NotADirectory, "Not a directory"),
    (21, IsADirectory, "Is a directory"),
    (22, InvalidInput, "Invalid argument"),
    (24, Uncategorized, "Too many open files"),
    (26, ExecutableFileBusy, "Text file busy"),
    (27, FileTooLarge, "File too large"),
    (28, StorageFull, "No space left on device"),
    (29, NotSeekable, "Illegal seek"),
    (30, ReadOnlyFilesystem, "Read-only file system"),
    (31, TooManyLinks, "Too many links"),
    (32, BrokenPipe, "Broken pipe"),
    (35, Deadlock, "Resource deadlock avoided"),
    (36, InvalidFilename, "File name too long"),
    (38, Unsupported, "Function not implemented"),
    (39, DirectoryNotEmpty, "Directory not empty"),
    (40, FilesystemLoop, "Too many levels of symbolic links"),
    (89, Uncategorized, "Destination address required"),
    (90, Uncategorized, "Message too long"),
    (95, Unsupported, "Operation not supported"),
    (98, AddrInUse, "Address already in use"),
    (99, AddrNotAvailable, "Cannot assign requested address"),
    (100, NetworkDown, "Network is down"),
    (101, NetworkUnreachable, "Network is unreachable"),
    (103, ConnectionAborted, "Software caused connection abort"),
    (104, ConnectionReset, "Connection reset by peer"),
    (107, NotConnected, "Transport endpoint is not connected"),
    (110, TimedOut, "Connection timed out"),
    (111, ConnectionRefused, "Connection refused"),
    (113, HostUnreachable, "No route to host"),
    (116, StaleNetworkFileHandle, "Stale file handle"),
    (122, QuotaExceeded, "Disk quota exceeded"),
];

const EINTR: i32 = 4;

fn lookup(code: i32) -> Option<&'static (i32, ErrorKind, &'static str)> {
    CODES.iter().find(|entry| entry.0 == code)
}

/// The kernel returns errors as values, so there is no thread's last error to read.
pub fn errno() -> i32 {
    0
}

pub fn is_interrupted(code: i32) -> bool {
    code == EINTR
}

pub fn decode_error_kind(code: i32) -> ErrorKind {
    lookup(code).map_or(Uncategorized, |entry| entry.1)
}

pub fn error_string(code: i32) -> String {
    match lookup(code) {
        Some(entry) => entry.2.to_string(),
        None => format!("Unknown error {code}"),
    }
}
