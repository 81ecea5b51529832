//! Raw Ethernet frames on the domain's virtual network interfaces (vifs).
//!
//! A [`Device`] is one vif, `device/vif/N` in the domain's xenstore folder (the `N`th
//! `vif = [...]` entry of its `xl` configuration). Opening it connects the kernel's netfront
//! driver to the backend in the driver domain; [`Device::recv`] then returns each frame that
//! reaches the interface (the bridge's broadcasts and what is sent to [`Device::mac`]) and
//! [`Device::send`] puts one on the wire. Frames are whole Ethernet frames, header included,
//! without the frame check sequence, at most [`MAX_FRAME`] bytes. Dropping the device
//! disconnects it.
//!
//! There is no TCP/IP here: this is the layer under it.

#![stable(feature = "xen_ext", since = "1.96.0")]

use crate::io;
use crate::sys::abi;
use crate::time::Duration;

/// The longest frame [`Device::send`] takes and [`Device::recv`] returns on any device: 1,514
/// bytes (a 1,500-byte payload and the 14-byte header). A device's own limit is its
/// [`Device::mtu`] and the header.
#[stable(feature = "xen_ext", since = "1.96.0")]
pub const MAX_FRAME: usize = 1514;

/// An open virtual network interface.
#[stable(feature = "xen_ext", since = "1.96.0")]
#[derive(Debug)]
pub struct Device {
    handle: u64,
    mac: [u8; 6],
    mtu: usize,
}

#[stable(feature = "xen_ext", since = "1.96.0")]
impl Device {
    /// Opens and connects vif `index` (0 for the first). Fails with "No such device"
    /// (`ErrorKind::Unsupported`) when the domain has no such vif or no xenstore,
    /// `ResourceBusy` when it is open already, `TimedOut` when the backend did not connect
    /// within 10 s.
    #[stable(feature = "xen_ext", since = "1.96.0")]
    pub fn open(index: u32) -> io::Result<Device> {
        let mut mac = [0u8; 6];
        // SAFETY: `mac` is valid for writes of 6 bytes.
        let ret = unsafe { abi::xk_net_open(index, mac.as_mut_ptr()) };
        if ret < 0 {
            return Err(super::error(ret));
        }
        let handle = ret as u64;
        let mtu = abi::xk_net_mtu(handle);
        if mtu < 0 {
            abi::xk_net_close(handle);
            return Err(super::error(mtu as i64));
        }
        Ok(Device { handle, mac, mtu: mtu as usize })
    }

    /// The interface's MTU: the longest payload of a frame, from its xenstore `mtu` key (the
    /// `mtu=` of its `xl` configuration; 1,500 without one, and at most 1,500). [`Device::send`]
    /// takes frames of at most this and the 14-byte header.
    #[stable(feature = "xen_ext", since = "1.96.0")]
    pub fn mtu(&self) -> usize {
        self.mtu
    }

    /// The interface's MAC address, from its xenstore `mac` key.
    #[stable(feature = "xen_ext", since = "1.96.0")]
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// Waits for the next frame and copies it into `buf`; returns its length (a frame longer
    /// than `buf` is cut to it).
    #[stable(feature = "xen_ext", since = "1.96.0")]
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.recv_until(buf, u64::MAX)
    }

    /// As [`Device::recv`], waiting at most `timeout`; `ErrorKind::TimedOut` when no frame
    /// came.
    #[stable(feature = "xen_ext", since = "1.96.0")]
    pub fn recv_timeout(&self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        self.recv_until(buf, super::deadline(Some(timeout)))
    }

    fn recv_until(&self, buf: &mut [u8], deadline: u64) -> io::Result<usize> {
        // SAFETY: `buf` is valid for writes of its length.
        let ret = unsafe { abi::xk_net_recv(self.handle, buf.as_mut_ptr(), buf.len(), deadline) };
        if ret < 0 { Err(super::error(ret as i64)) } else { Ok(ret as usize) }
    }

    /// Sends one frame (destination, source, EtherType, payload; 1 byte to [`Device::mtu`] + 14
    /// bytes, else "Message too long"), waiting while the device's send buffers are all in
    /// flight.
    #[stable(feature = "xen_ext", since = "1.96.0")]
    pub fn send(&self, frame: &[u8]) -> io::Result<usize> {
        // SAFETY: `frame` is valid for reads of its length.
        let ret = unsafe { abi::xk_net_send(self.handle, frame.as_ptr(), frame.len(), u64::MAX) };
        if ret < 0 { Err(super::error(ret as i64)) } else { Ok(ret as usize) }
    }
}

#[stable(feature = "xen_ext", since = "1.96.0")]
impl Drop for Device {
    fn drop(&mut self) {
        let _ = abi::xk_net_close(self.handle);
    }
}
