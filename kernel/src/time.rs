//! Time: Xen's system time from the PV clock (`vcpu_time_info`) and the wallclock in
//! `shared_info`.
//!
//! The kernel's monotonic clock is Xen's system time, in ns, so a deadline can go straight into
//! `SCHEDOP_poll`. Reads never go back: the largest value handed out is remembered.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::xen::abi::VcpuTimeInfo;

/// Converts a TSC delta to ns with Xen's fixed-point factors (`xen.h`, `vcpu_time_info`):
/// shift the delta by `tsc_shift`, then multiply by `tsc_to_system_mul / 2^32`.
pub fn scale_delta(delta: u64, mul: u32, shift: i8) -> u64 {
    let shifted = if shift >= 0 { delta << shift } else { delta >> -(shift as i32) };
    ((shifted as u128 * mul as u128) >> 32) as u64
}

/// Xen system time at TSC value `tsc`, by one consistent copy of `info`.
///
/// The TSC difference wraps: a domain's TSC can start near zero after an offset that makes
/// the record's stamp "negative" (seen with new domUs). A TSC read before the stamp (on
/// another vCPU) counts as no time.
pub fn system_time_at(info: &VcpuTimeInfo, tsc: u64) -> u64 {
    let delta = tsc.wrapping_sub(info.tsc_timestamp);
    let delta = if (delta as i64) < 0 { 0 } else { delta };
    info.system_time.wrapping_add(scale_delta(delta, info.tsc_to_system_mul, info.tsc_shift))
}

static LAST: AtomicU64 = AtomicU64::new(0);
/// Clock reads so far (the profiler reports them).
static READS: AtomicU64 = AtomicU64::new(0);

/// Xen system time now, in ns; never less than a value returned before.
///
/// A read costs an `rdtsc`, which Xen emulates (a trap, about 3 us under QEMU) for a domU
/// when the host's TSC is not invariant: where a recent time does, [`recent_ns`] is free.
#[cfg(target_os = "none")]
pub fn monotonic_ns() -> u64 {
    READS.fetch_add(1, Ordering::Relaxed);
    let now = crate::arch::x86_64::pvclock_now();
    let last = LAST.fetch_max(now, Ordering::AcqRel);
    now.max(last)
}

/// The latest time [`monotonic_ns`] returned on any vCPU, without reading the clock: behind
/// the true time by as long as nothing read it (every upcall does), so fit for time slices and
/// such estimates, not for deadlines.
pub fn recent_ns() -> u64 {
    LAST.load(Ordering::Acquire)
}

/// How many times [`monotonic_ns`] read the clock.
pub fn reads() -> u64 {
    READS.load(Ordering::Relaxed)
}

#[cfg(not(target_os = "none"))]
pub fn monotonic_ns() -> u64 {
    LAST.load(Ordering::Relaxed)
}

/// The time of day (since the UNIX epoch): Xen's wallclock plus system time.
#[cfg(target_os = "none")]
pub fn wallclock() -> (i64, u32) {
    let (base_secs, base_nanos) = crate::arch::x86_64::wallclock_base();
    split_ns(base_secs as u128 * 1_000_000_000 + base_nanos as u128 + monotonic_ns() as u128)
}

/// Splits ns since the UNIX epoch into seconds and ns.
pub fn split_ns(ns: u128) -> (i64, u32) {
    ((ns / 1_000_000_000) as i64, (ns % 1_000_000_000) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaling_follows_the_fixed_point_rule() {
        // mul = 2^31 halves: a 2 GHz TSC counted once per ns would be shift 0, mul 2^31.
        assert_eq!(scale_delta(2_000, 1 << 31, 0), 1_000);
        assert_eq!(scale_delta(1_000, 1 << 31, 1), 1_000);
        assert_eq!(scale_delta(4_000, 1 << 31, -1), 1_000);
        // No overflow for an hour of a 4 GHz TSC.
        let hour = 3600 * 4_000_000_000u64;
        assert_eq!(scale_delta(hour, 1 << 30, 0), hour / 4);
    }

    #[test]
    fn system_time_adds_the_scaled_delta() {
        let info = VcpuTimeInfo {
            tsc_timestamp: 1000,
            system_time: 5_000,
            tsc_to_system_mul: 1 << 31,
            tsc_shift: 0,
            ..Default::default()
        };
        assert_eq!(system_time_at(&info, 3000), 6_000);
        // A TSC read before the record's stamp (another vCPU's) counts as no time.
        assert_eq!(system_time_at(&info, 500), 5_000);
    }

    #[test]
    fn a_stamp_before_tsc_zero_wraps() {
        let info = VcpuTimeInfo {
            tsc_timestamp: 0u64.wrapping_sub(1000),
            system_time: 5_000,
            tsc_to_system_mul: 1 << 31,
            tsc_shift: 0,
            ..Default::default()
        };
        assert_eq!(system_time_at(&info, 1000), 6_000);
    }

    #[test]
    fn split_ns_parts() {
        assert_eq!(split_ns(1_700_000_000_123_456_789), (1_700_000_000, 123_456_789));
    }
}
