//! The host side of the `x86_64-unknown-xen` target: boots an image on Xen
//! and gives the user its stdout, stderr and exit status.
//!
//! The pure parts (command line, console framing, statuses, crash reports,
//! cpio, xl config, batch manifests, splitting a batch's console into jobs)
//! are modules of their own with unit tests; `run`, `batch`, `session`,
//! `harness` and `xl` drive processes; `proxy` carries forwarded TCP
//! connections. See `docs/runner.md`.

#![deny(unsafe_code)]

pub mod batch;
pub mod cache;
pub mod cmdline;
pub mod console;
pub mod cpio;
pub mod files;
pub mod forward;
pub mod crash;
pub mod demux;
pub mod disk;
pub mod framing;
pub mod harness;
pub mod manifest;
pub mod proxy;
pub mod qemu;
pub mod run;
pub mod session;
pub mod status;
pub mod symbolize;
pub mod xl;
pub mod xlcfg;
