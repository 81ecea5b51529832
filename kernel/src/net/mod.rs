//! Networking: netfront, the driver of Xen's virtual network interfaces (`docs/net.md`).
//!
//! [`ring`] is the pure logic of netif's shared rings and [`tx_layout`] where frames lie in the
//! tx pages, both tested on the host; `netfront` connects a device through xenstore and moves
//! raw Ethernet frames for the program.

#[cfg(target_os = "none")]
pub mod netfront;
pub mod neighbors;
pub mod offload;
pub mod ring;
pub mod rx_packet;
pub mod syn_guard;
pub mod tx_layout;
#[cfg(target_os = "none")]
pub mod stack;
