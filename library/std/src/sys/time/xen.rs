//! Time on Xen: `Instant` from the PV clock, `SystemTime` from Xen's wallclock.

use crate::time::Duration;
use crate::sys::pal::abi;

const NANOS_PER_SEC: u64 = 1_000_000_000;

/// Where `Instant` counts from: a day before Xen's boot. The kernel's clock starts at Xen's
/// boot, about a second before `main` as dom0; programs (and std's own tests) that subtract a
/// few seconds from `Instant::now()` expect a clock that has been running a while, as on any
/// host that has been up for more than that.
const ORIGIN_OFFSET: Duration = Duration::from_secs(24 * 60 * 60);

#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Debug, Hash)]
pub struct Instant(Duration);

#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Debug, Hash)]
pub struct SystemTime(Duration);

pub const UNIX_EPOCH: SystemTime = SystemTime(Duration::ZERO);

impl Instant {
    pub fn now() -> Instant {
        Instant(Duration::from_nanos(abi::xk_monotonic_ns()) + ORIGIN_OFFSET)
    }

    /// The instant as nanoseconds of the kernel's monotonic clock (for sleeping until it).
    pub(crate) fn as_kernel_nanos(&self) -> u64 {
        let since_boot = self.0.saturating_sub(ORIGIN_OFFSET);
        u64::try_from(since_boot.as_nanos()).unwrap_or(u64::MAX)
    }

    pub fn checked_sub_instant(&self, other: &Instant) -> Option<Duration> {
        self.0.checked_sub(other.0)
    }

    pub fn checked_add_duration(&self, other: &Duration) -> Option<Instant> {
        Some(Instant(self.0.checked_add(*other)?))
    }

    pub fn checked_sub_duration(&self, other: &Duration) -> Option<Instant> {
        Some(Instant(self.0.checked_sub(*other)?))
    }
}

impl SystemTime {
    pub const MAX: SystemTime = SystemTime(Duration::MAX);

    pub const MIN: SystemTime = SystemTime(Duration::ZERO);

    pub fn now() -> SystemTime {
        let (mut secs, mut nanos) = (0i64, 0u32);
        // SAFETY: both pointers are valid for writes.
        unsafe { abi::xk_wallclock(&mut secs, &mut nanos) };
        let secs = u64::try_from(secs).unwrap_or(0);
        SystemTime(Duration::new(secs, nanos % (NANOS_PER_SEC as u32)))
    }

    /// The time `secs` and `nanos` after the UNIX epoch (file times from the kernel); times
    /// before the epoch are taken as the epoch, which `SystemTime` cannot go below here.
    pub(crate) fn from_unix(secs: i64, nanos: u32) -> SystemTime {
        let secs = u64::try_from(secs).unwrap_or(0);
        SystemTime(Duration::new(secs, nanos % (NANOS_PER_SEC as u32)))
    }

    pub fn sub_time(&self, other: &SystemTime) -> Result<Duration, Duration> {
        self.0.checked_sub(other.0).ok_or_else(|| other.0 - self.0)
    }

    pub fn checked_add_duration(&self, other: &Duration) -> Option<SystemTime> {
        Some(SystemTime(self.0.checked_add(*other)?))
    }

    pub fn checked_sub_duration(&self, other: &Duration) -> Option<SystemTime> {
        Some(SystemTime(self.0.checked_sub(*other)?))
    }
}
