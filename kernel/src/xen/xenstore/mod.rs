//! Xenstore: the toolstack's tree of keys, reached over a shared ring page and an event
//! channel (`docs/xenstore.md` of Xen; `io/xs_wire.h`).

pub mod ring;
pub mod wire;

#[cfg(target_os = "none")]
mod client;
#[cfg(target_os = "none")]
pub use client::*;
