//! A sampling profiler for programs on Xen (`xen.profile=HZ`, `docs/profile.md`).
//!
//! vCPU 0's one-shot timer also fires HZ times a second while a thread runs there (the
//! scheduler's `arm_timer` asks [`next_sample`]). The upcall that finds a sample due takes the
//! interrupted instruction pointer, if the vCPU was running when the sample fell due: Xen's
//! runstate record (`VCPUOP_register_runstate_memory_area`) says since when it runs, and a
//! sample that fell due while Xen ran another domain would land wherever this one was
//! stopped, so it is only counted. One inside the hypercall page (the vCPU was in Xen) is
//! taken as the address the hypercall returns to, tagged, so that a hypercall's time counts at
//! its caller. When the program ends, the kernel logs the most frequent addresses (info
//! level), which the host turns into function names with `addr2line`.

use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};

use alloc::vec::Vec;

use crate::xen::{abi, hypercall};

/// The most samples kept (8 bytes each): 218 s at 1 kHz.
const MAX_SAMPLES: usize = 1 << 18;
/// How many of the most frequent addresses the report lists.
const REPORT_TOP: usize = 200;
/// Marks a sample taken inside a hypercall (kernel addresses are far below it).
const IN_HYPERCALL: u64 = 1 << 62;

static ON: AtomicBool = AtomicBool::new(false);
static PERIOD_NS: AtomicU64 = AtomicU64::new(0);
/// When the next sample falls due (Xen system time).
static NEXT: AtomicU64 = AtomicU64::new(u64::MAX);
static SAMPLES: AtomicPtr<u64> = AtomicPtr::new(core::ptr::null_mut());
static TAKEN: AtomicUsize = AtomicUsize::new(0);
/// Samples that fell due while the vCPU did not run.
static OFF_CPU: AtomicUsize = AtomicUsize::new(0);
/// Upcalls inside [`sample`] past its check of [`ON`]: the report waits for none.
static SAMPLING: AtomicUsize = AtomicUsize::new(0);

/// `struct vcpu_runstate_info` (`vcpu.h`): the vCPU's state since `state_entry_time`, and
/// the time it spent in each state.
#[repr(C)]
struct RunstateInfo {
    state: i32,
    state_entry_time: u64,
    time: [u64; 4],
}

/// `RUNSTATE_running`.
const RUNSTATE_RUNNING: i32 = 0;

/// vCPU 0's runstate, which Xen updates at each of its switches.
static mut RUNSTATE: RunstateInfo = RunstateInfo { state: 0, state_entry_time: 0, time: [0; 4] };

/// Whether samples are being taken.
pub fn on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// Starts sampling vCPU 0 `hz` times a second of its running.
pub fn start(hz: u32) {
    // `struct vcpu_register_runstate_memory_area`: the record's address.
    let area = &raw mut RUNSTATE as u64;
    // SAFETY: the argument is the one-word structure the call reads; the record is a static
    // that Xen may write for the guest's life.
    let arg = &area as *const u64 as usize;
    if unsafe { hypercall::vcpu_op(abi::vcpuop::REGISTER_RUNSTATE_MEMORY_AREA, 0, arg) } < 0 {
        error!("profile: Xen refused the runstate record; not profiling");
        return;
    }
    let mut buf: Vec<u64> = Vec::new();
    if buf.try_reserve_exact(MAX_SAMPLES).is_err() {
        error!("profile: no memory for {MAX_SAMPLES} samples; not profiling");
        return;
    }
    buf.resize(MAX_SAMPLES, 0);
    SAMPLES.store(buf.leak().as_mut_ptr(), Ordering::Release);
    let period = 1_000_000_000 / u64::from(hz);
    PERIOD_NS.store(period, Ordering::Relaxed);
    NEXT.store(crate::time::monotonic_ns() + period, Ordering::Relaxed);
    ON.store(true, Ordering::Release);
    info!("profile: sampling vCPU 0 at {hz} Hz of its running");
}

/// When vCPU `cpu`'s timer must fire for the next sample, if it must.
pub fn next_sample(cpu: u32) -> Option<u64> {
    (cpu == 0 && on()).then(|| NEXT.load(Ordering::Relaxed))
}

/// Takes a sample if one is due on vCPU 0 (`rip` and `rsp` of the interrupted code); called
/// by the upcall, upcalls masked.
pub fn sample(rip: u64, rsp: u64) {
    // SAFETY: the block of the running vCPU lives for good.
    if unsafe { (*crate::arch::x86_64::percpu::this()).id } != 0 {
        return;
    }
    SAMPLING.fetch_add(1, Ordering::AcqRel);
    if ON.load(Ordering::Acquire) {
        take(rip, rsp);
    }
    SAMPLING.fetch_sub(1, Ordering::AcqRel);
}

fn take(rip: u64, rsp: u64) {
    let due = NEXT.load(Ordering::Relaxed);
    let now = crate::time::monotonic_ns();
    if now < due {
        return;
    }
    NEXT.store(now + PERIOD_NS.load(Ordering::Relaxed), Ordering::Relaxed);
    // SAFETY: Xen writes the record only while this vCPU is not running, so it is still now.
    let (state, since) =
        unsafe { ((&raw const RUNSTATE.state).read_volatile(), (&raw const RUNSTATE.state_entry_time).read_volatile()) };
    if state != RUNSTATE_RUNNING || since > due {
        OFF_CPU.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let page = hypercall::page_range();
    let at = if page.contains(&rip) {
        // Xen's 64-bit stubs are `push rcx; push r11; mov eax, NR; syscall; pop r11; pop rcx;
        // ret` (offsets 0, 1, 3, 8, 10, 12, 13 of each 32 bytes): how many words lie above the
        // return address depends on where in the stub the code was.
        let above = match (rip - page.start) % 32 {
            0 | 13 => 0,
            1 | 2 | 12 => 1,
            _ => 2,
        };
        // SAFETY: the interrupted code was in a stub, which it entered with `call` on its own
        // stack: the return address is `above` words above its `rsp`, mapped and ours.
        IN_HYPERCALL | unsafe { (rsp as *const u64).add(above).read() }
    } else {
        rip
    };
    let i = TAKEN.fetch_add(1, Ordering::Relaxed);
    let buf = SAMPLES.load(Ordering::Acquire);
    if i < MAX_SAMPLES && !buf.is_null() {
        // SAFETY: `buf` holds MAX_SAMPLES words, leaked for good; only vCPU 0's upcall writes
        // them, one index each.
        unsafe { buf.add(i).write(at) };
    }
}

/// Stops sampling and logs the most frequent addresses.
pub fn report() {
    if !ON.swap(false, Ordering::AcqRel) {
        return;
    }
    // An upcall on vCPU 0 may be writing a sample it began before the flag went off.
    while SAMPLING.load(Ordering::Acquire) != 0 {
        core::hint::spin_loop();
    }
    let taken = TAKEN.load(Ordering::Relaxed);
    let n = taken.min(MAX_SAMPLES);
    // SAFETY: sampling stopped: the flag is off and no upcall is past its check of it; the
    // first `n` words were written.
    let samples = unsafe { core::slice::from_raw_parts_mut(SAMPLES.load(Ordering::Acquire), n) };
    samples.sort_unstable();
    let mut counts: Vec<(usize, u64)> = Vec::new();
    for run in samples.chunk_by(|a, b| a == b) {
        counts.push((run.len(), run[0]));
    }
    counts.sort_unstable_by(|a, b| b.cmp(a));
    let in_hypercalls = samples.iter().filter(|&&s| s & IN_HYPERCALL != 0).count();
    info!(
        "profile: {n} samples at {} Hz of running ({} not kept; {} fell due off the CPU), {in_hypercalls} in hypercalls, {} clock reads; the top {} (h: in a hypercall, at its caller):",
        1_000_000_000 / PERIOD_NS.load(Ordering::Relaxed).max(1),
        taken - n,
        OFF_CPU.load(Ordering::Relaxed),
        crate::time::reads(),
        REPORT_TOP.min(counts.len())
    );
    for &(count, at) in counts.iter().take(REPORT_TOP) {
        let tag = if at & IN_HYPERCALL != 0 { " h" } else { "" };
        info!("profile: {:#x} {count}{tag}", at & !IN_HYPERCALL);
    }
}
