//! The boot sequence: from Xen's hand-over to the program's `main`.

use core::ptr::{addr_of, addr_of_mut};
use core::sync::atomic::{AtomicU64, Ordering};

use crate::arch::x86_64::{self as arch, traps};
use crate::cmdline::{CmdLine, ConsoleMode};
use crate::log::{self, Level};
use crate::mm::{self, paging};
use crate::xen::abi::{SIF_INITDOMAIN, SIF_MOD_START_PFN, ShutdownReason, StartInfo};
use crate::xen::{console, hypercall};

/// The parsed command line, filled once at boot and read-only afterwards.
static mut CMDLINE: CmdLine = CmdLine::new();
/// Xen system time at the hand-over, and when `main` was called.
pub static BOOT_NS: AtomicU64 = AtomicU64::new(0);
static MEMORY_END: AtomicU64 = AtomicU64::new(0);
/// The guard page below the main thread's stack.
static MAIN_GUARD: AtomicU64 = AtomicU64::new(0);
/// A domU's devices from `start_info`, for `run_main`: the console and xenstore ring pages'
/// addresses and their event channels (0 as dom0).
static CONSOLE_RING: AtomicU64 = AtomicU64::new(0);
static CONSOLE_PORT: AtomicU64 = AtomicU64::new(0);
static STORE_RING: AtomicU64 = AtomicU64::new(0);
static STORE_PORT: AtomicU64 = AtomicU64::new(0);

/// The end of the direct map, for checks of pointers found in memory.
pub fn memory_end() -> u64 {
    MEMORY_END.load(Ordering::Relaxed)
}

/// The command line; only valid after boot parsed it.
pub fn cmdline() -> &'static CmdLine {
    // SAFETY: written once at boot before anything reads it, never again.
    unsafe { &*addr_of!(CMDLINE) }
}

unsafe extern "C" {
    fn main(argc: isize, argv: *const *const u8) -> i32;
}

/// Stops the guest before `main`, with a message, as an exit with status 2.
fn fail(what: &str) -> ! {
    log::write(Level::Error, format_args!("boot failed: {what}"));
    crate::exit(2);
}

/// Runs on the boot stack with what Xen handed over; never returns.
pub extern "C" fn boot(si: *const StartInfo, boot_rsp: u64) -> ! {
    // The clock record may not be filled in yet (a new domU): keep the TSC, convert it later.
    let boot_tsc = arch::rdtsc();
    // SAFETY: Xen passes a mapped `start_info` page in `%rsi`; nothing writes it.
    let si = unsafe { &*si };

    // SAFETY: `shared_info` is the machine address of this domain's shared info frame; the
    // page mapped over it is reserved for it and used for nothing else.
    let mapped = unsafe {
        hypercall::update_va_mapping(
            addr_of!(arch::SHARED_INFO_PAGE) as u64,
            si.shared_info | 0x67,
        )
    };
    if mapped < 0 {
        console::crash_line(b"cannot map the shared info page");
        hypercall::shutdown(ShutdownReason::Crash);
    }
    // No upcalls until the scheduler has its entry points registered.
    // SAFETY: the shared info page is mapped; the mask byte is ours to write.
    unsafe { addr_of_mut!((*(arch::shared_info() as *mut crate::xen::abi::SharedInfo)).vcpu_info[0].evtchn_upcall_mask).write_volatile(1) };
    // Every port stays masked until the kernel binds it (no event is lost, none is early).
    crate::xen::evtchn::mask_all();
    // SAFETY: once, early, with Xen's `start_info`.
    if let Err(what) = unsafe { arch::smp::init_boot_cpu(si) } {
        console::crash_line(what.as_bytes());
        hypercall::shutdown(ShutdownReason::Crash);
    }
    BOOT_NS.store(arch::pvclock_at(Some(boot_tsc)), Ordering::Relaxed);
    traps::init();

    let line_len = si.cmd_line.iter().position(|&b| b == 0).unwrap_or(si.cmd_line.len());
    // SAFETY: boot runs once, before anything reads the command line.
    let parsed = unsafe { (*addr_of_mut!(CMDLINE)).parse(&si.cmd_line[..line_len]) };
    let framed = cmdline().console == ConsoleMode::Framed;
    // On a bad line the mode is what the tokens before the bad one chose: the runner's
    // `xen.console=framed` comes first, so it still reads the error and the exit status.
    console::set_mode(cmdline().console);
    log::set_max_level(cmdline().log.unwrap_or(if framed { Level::Info } else { Level::Warn }));

    let dom0 = si.flags & SIF_INITDOMAIN != 0;
    if !dom0 {
        let pfn = paging::m2p(si.console_mfn);
        if pfn >= si.nr_pages {
            hypercall::shutdown(ShutdownReason::Crash);
        }
        // SAFETY: Xen gives a domU its console page inside the initial mapping; the frame
        // belongs to the console for the guest's life.
        unsafe { console::use_ring(paging::frame_va(pfn as usize) as *mut _, si.console_evtchn) };
        CONSOLE_RING.store(paging::frame_va(pfn as usize), Ordering::Relaxed);
        CONSOLE_PORT.store(si.console_evtchn as u64, Ordering::Relaxed);
        // The xenstore page, like the console's, is one of the toolstack's pages right after
        // `start_info`, inside the initial mapping.
        let store_pfn = paging::m2p(si.store_mfn);
        if si.store_mfn != 0 && store_pfn < si.nr_pages {
            STORE_RING.store(paging::frame_va(store_pfn as usize), Ordering::Relaxed);
            STORE_PORT.store(si.store_evtchn as u64, Ordering::Relaxed);
        }
    }
    if let Err(error) = parsed {
        let (what, at) = error.describe();
        let token = crate::cmdline::token_at(&si.cmd_line[..line_len], at);
        log::write(
            Level::Error,
            format_args!("bad command line: {what}: `{}` (docs/abi.md section 1 lists the options)", token.escape_ascii()),
        );
        crate::exit(2);
    }

    // SAFETY: called once, with Xen's `start_info` and boot stack pointer.
    let layout = match unsafe { mm::init(si, boot_rsp) } {
        Ok(layout) => layout,
        Err(what) => fail(what),
    };
    MEMORY_END.store(paging::frame_va(layout.nr_frames), Ordering::Relaxed);
    info!(
        "booted as {} with {} MiB ({} frames, {} free from frame {}, {} for page tables)",
        if dom0 { "dom0" } else { "a domU" },
        layout.nr_frames >> 8,
        layout.nr_frames,
        mm::free_frame_count(),
        layout.first_free,
        layout.pool_frames
    );
    let t0 = crate::time::monotonic_ns();
    crate::random::init(&cmdline().seed[..cmdline().seed_len]);
    debug!("random seeded in {} us; memory ready {} us after hand-over", (crate::time::monotonic_ns() - t0) / 1000, (t0 - BOOT_NS.load(Ordering::Relaxed)) / 1000);

    if let Err((what, at)) = crate::fs::mount(ramdisk(si)) {
        log::write(Level::Error, format_args!("boot failed: the packed files (ramdisk) hold {what}, at byte {at}"));
        crate::exit(2);
    }

    let stack_bytes = if layout.nr_frames >= 8192 { 1 << 20 } else { 128 << 10 };
    let Some(stack) = mm::alloc_stack(stack_bytes) else { fail("no memory for the main stack") };
    MAIN_GUARD.store(stack.guard(), Ordering::Relaxed);
    // SAFETY: `stack.top` is the top of a fresh, mapped stack that nothing else uses; the main
    // stack is never freed.
    unsafe { switch_stack(stack.top, run_main) }
}

/// The ramdisk module, which holds the packed files (`docs/fs.md`), or `None` without one.
///
/// Xen maps it in the initial mapping; `mm::init` counts it in the boot layout, so its frames
/// are never handed out: the kernel keeps them for the guest's life and reads packed files in
/// place.
fn ramdisk(si: &StartInfo) -> Option<&'static [u8]> {
    if si.mod_start == 0 || si.mod_len == 0 {
        return None;
    }
    if si.flags & SIF_MOD_START_PFN != 0 {
        warn!("Xen passed the ramdisk unmapped (SIF_MOD_START_PFN): no packed files");
        return None;
    }
    let end = si.mod_start.checked_add(si.mod_len);
    if si.mod_start < paging::VIRT_BASE || end.is_none_or(|end| end > memory_end()) {
        warn!("the ramdisk at {:#x} ({} bytes) lies outside memory: no packed files", si.mod_start, si.mod_len);
        return None;
    }
    // SAFETY: checked to lie in the initial mapping, in frames the allocator never hands out;
    // nothing writes them after Xen loaded the module.
    Some(unsafe { core::slice::from_raw_parts(si.mod_start as *const u8, si.mod_len as usize) })
}

/// Moves to the stack whose top is `top` and calls `next` there.
///
/// # Safety
///
/// `top` must be the 16-byte aligned top of a mapped stack nothing else uses.
unsafe fn switch_stack(top: u64, next: extern "C" fn() -> !) -> ! {
    // SAFETY: the caller vouches for the stack; `next` never returns, so nothing on the old
    // stack is needed again.
    unsafe {
        core::arch::asm!(
            "mov rsp, {top}",
            "xor ebp, ebp",
            "call {next}",
            "ud2",
            top = in(reg) top,
            next = in(reg) next,
            options(noreturn),
        )
    }
}

/// Sets up the main thread's TLS block, then runs the program.
extern "C" fn run_main() -> ! {
    let Some(tls) = crate::tls::new_block() else { fail("no memory for thread-local storage") };
    if hypercall::set_fs_base(tls.tp) < 0 {
        fail("Xen refused the FS base");
    }
    // SAFETY: called once, on the main stack, with the main TLS block in place.
    if let Err(what) = unsafe { crate::sched::init(tls.tp, MAIN_GUARD.load(Ordering::Relaxed)) } {
        fail(what);
    }
    start_devices();
    let now = crate::time::monotonic_ns();
    info!("main after {} us", (now - BOOT_NS.load(Ordering::Relaxed)) / 1000);
    // SAFETY: `main` is the program's entry, generated by rustc; std ignores argc and argv and
    // asks the kernel for its arguments.
    let status = unsafe { main(0, core::ptr::null()) };
    crate::lifecycle::end_program(status, ShutdownReason::Poweroff);
}

/// Why `xen.mount` cannot work without xenstore.
const NO_DISKS_AS_DOM0: &str = "no xenstore, so no disks (dom0 has no backends to serve them)";

/// A domU's Xen services, once threads run: the grant table, xenstore, console input and the
/// lifecycle watch. A failure costs the service, not the program.
fn start_devices() {
    let console_ring = CONSOLE_RING.load(Ordering::Relaxed);
    if console_ring == 0 {
        // Dom0: no console ring, no xenstore.
        crate::fs::refuse_mounts(NO_DISKS_AS_DOM0);
        return;
    }
    // SAFETY: the console page and port recorded at boot, as given to `use_ring`.
    unsafe {
        console::start_input(
            console_ring as *mut _,
            CONSOLE_PORT.load(Ordering::Relaxed) as u32,
            cmdline().stdin_eof,
        )
    };
    if let Err(what) = crate::xen::grant::init() {
        warn!("no grant table: {what}; no devices can be shared with backends");
    }
    let store_ring = STORE_RING.load(Ordering::Relaxed);
    if store_ring == 0 {
        warn!("Xen gave this domain no xenstore page: no xenstore, no devices, no xl shutdown");
        crate::fs::refuse_mounts(NO_DISKS_AS_DOM0);
        return;
    }
    // SAFETY: the xenstore page recorded at boot stays mapped and is the store's alone.
    match unsafe { crate::xen::xenstore::init(store_ring as *mut _, STORE_PORT.load(Ordering::Relaxed) as u32) } {
        Ok(()) => crate::lifecycle::start(),
        Err(what) => {
            warn!("no xenstore: {what}");
            crate::fs::refuse_mounts("no xenstore, so no disks");
            return;
        }
    }
    crate::fs::mount_disks();
}
