//! Bringing up the guest's vCPUs: per-vCPU blocks for all, and `VCPUOP_initialise` and
//! `VCPUOP_up` for the secondaries (`xen/include/public/vcpu.h`).

use core::arch::global_asm;
use core::sync::atomic::{AtomicUsize, Ordering};

use super::irq;
use super::percpu::{self, MAX_CPUS};
use crate::mm::paging::{PAGE_SIZE, va_frame};
use crate::xen::abi::{
    self, CpuUserRegs, FLAT_KERNEL_CS, FLAT_KERNEL_SS, VGCF_I387_VALID, VGCF_IN_KERNEL,
    VcpuGuestContext, VcpuRegisterVcpuInfo, vcpuop,
};
use crate::xen::hypercall;

/// The machine frame of each pseudo-physical frame (`start_info.mfn_list`), kept from boot.
static P2M: AtomicUsize = AtomicUsize::new(0);
/// The L4 table's machine frame, for secondaries' CR3.
static L4_MFN: AtomicUsize = AtomicUsize::new(0);
static STARTED: AtomicUsize = AtomicUsize::new(0);

/// The machine frame of the page at `va` in the direct map (the image included).
pub fn mfn_of(va: u64) -> u64 {
    let p2m = P2M.load(Ordering::Relaxed) as *const u64;
    // SAFETY: the p2m list Xen mapped has an entry for every frame of the image.
    unsafe { p2m.add(va_frame(va)).read() }
}

/// Registers vCPU `cpu`'s block with Xen as its `vcpu_info`.
fn register(cpu: usize) -> isize {
    let block = percpu::block(cpu);
    // SAFETY: the block is live; nothing runs on that vCPU yet.
    unsafe {
        (*block).this = block;
        (*block).id = cpu as u32;
    }
    let va = block as u64;
    let arg = VcpuRegisterVcpuInfo { mfn: mfn_of(va), offset: (va % PAGE_SIZE) as u32, rsvd: 0 };
    // SAFETY: the block lies in the image, stays mapped, and its `vcpu_info` does not cross a
    // page (blocks are 128-byte aligned within a page-aligned array).
    unsafe { hypercall::vcpu_op(vcpuop::REGISTER_VCPU_INFO, cpu as u32, &arg as *const _ as usize) }
}

/// Moves the boot vCPU's event record into its block and points GS at it.
///
/// # Safety
///
/// Called once, early at boot, with Xen's `start_info`.
pub unsafe fn init_boot_cpu(si: &abi::StartInfo) -> Result<(), &'static str> {
    P2M.store(si.mfn_list as usize, Ordering::Relaxed);
    L4_MFN.store(mfn_of(si.pt_base) as usize, Ordering::Relaxed);
    if register(0) < 0 {
        return Err("Xen refused VCPUOP_register_vcpu_info");
    }
    if hypercall::set_gs_base(percpu::block(0) as u64) < 0 {
        return Err("Xen refused the GS base");
    }
    percpu::mark_ready();
    wait_for_clock();
    Ok(())
}

/// Waits until Xen has written this vCPU's PV clock record at its new place.
///
/// A freshly built domU can start before Xen first fills in the record (its multiplier is 0,
/// so time would stand still), and the registered copy is only refreshed when Xen next
/// schedules the vCPU: a poll that times out at once makes it do that.
fn wait_for_clock() {
    let info = irq::vcpu_info();
    for _ in 0..1000 {
        // SAFETY: the registered record is mapped; a torn read only means one more round.
        let mul = unsafe { core::ptr::addr_of!((*info).time.tsc_to_system_mul).read_volatile() };
        if mul != 0 {
            return;
        }
        hypercall::poll(&[], 1);
    }
    warn!("Xen has not filled in the PV clock record: time may stand still");
}

global_asm!(
    ".pushsection .text.xen.smp, \"ax\"",
    "xen_secondary_entry:",
    "mov byte ptr gs:[{mask}], 1",
    "xor ebp, ebp",
    "and rsp, -16",
    "call {start}",
    "ud2",
    ".popsection",
    mask = const percpu::MASK,
    start = sym secondary_start,
);

unsafe extern "C" {
    fn xen_secondary_entry();
}

extern "C" fn secondary_start() -> ! {
    wait_for_clock();
    STARTED.fetch_add(1, Ordering::AcqRel);
    crate::sched::secondary_idle()
}

/// Starts every other vCPU the domain has; returns how many vCPUs run.
pub fn start_secondaries() -> usize {
    let mut online = 1;
    for cpu in 1..MAX_CPUS {
        // SAFETY: `VCPUOP_is_up` takes no argument; it fails for a vCPU the domain lacks.
        if unsafe { hypercall::vcpu_op(vcpuop::IS_UP, cpu as u32, 0) } < 0 {
            break;
        }
        match start(cpu) {
            Ok(()) => online += 1,
            Err(what) => {
                warn!("vCPU {cpu} not started: {what}");
                break;
            }
        }
    }
    // Wait (briefly) until the started vCPUs are running before handing them work.
    let deadline = crate::time::monotonic_ns() + 1_000_000_000;
    while STARTED.load(Ordering::Acquire) + 1 < online && crate::time::monotonic_ns() < deadline {
        core::hint::spin_loop();
    }
    let running = STARTED.load(Ordering::Acquire) + 1;
    percpu::set_online(running);
    info!("{running} vCPU(s) running");
    running
}

fn start(cpu: usize) -> Result<(), &'static str> {
    if register(cpu) < 0 {
        return Err("Xen refused VCPUOP_register_vcpu_info");
    }
    let (idle, stack_top) = crate::sched::new_secondary_idle().ok_or("no memory for its idle thread")?;
    let block = percpu::block(cpu);
    // SAFETY: the block is live; the vCPU is not running yet.
    unsafe {
        (*block).current = idle;
        (*block).idle = idle;
    }
    crate::sched::prepare_cpu(cpu as u32)?;
    let mut ctx = alloc::boxed::Box::new(context(stack_top, cpu as u64, block as u64));
    // SAFETY: `ctx` is a complete `vcpu_guest_context` for the call; Xen copies it.
    if unsafe { hypercall::vcpu_op(vcpuop::INITIALISE, cpu as u32, &mut *ctx as *mut _ as usize) } < 0 {
        return Err("Xen refused VCPUOP_initialise");
    }
    // SAFETY: `VCPUOP_up` takes no argument.
    if unsafe { hypercall::vcpu_op(vcpuop::UP, cpu as u32, 0) } < 0 {
        return Err("Xen refused VCPUOP_up");
    }
    Ok(())
}

/// The state a secondary vCPU starts in: kernel mode at `xen_secondary_entry` on its idle
/// stack, sharing the boot vCPU's page tables, traps and callbacks.
fn context(stack_top: u64, cpu: u64, gs_base: u64) -> VcpuGuestContext {
    // SAFETY: an all-zero `vcpu_guest_context` is valid (no GDT, no LDT, no debug registers).
    let mut ctx: VcpuGuestContext = unsafe { core::mem::zeroed() };
    ctx.fpu_ctxt = crate::sched::initial_fpu_state();
    ctx.flags = VGCF_IN_KERNEL | VGCF_I387_VALID;
    // SAFETY: as above, for the registers.
    let mut regs: CpuUserRegs = unsafe { core::mem::zeroed() };
    regs.rip = xen_secondary_entry as *const () as u64;
    regs.rsp = stack_top;
    regs.rdi = cpu;
    regs.cs = FLAT_KERNEL_CS;
    regs.ss = FLAT_KERNEL_SS;
    regs.ds = FLAT_KERNEL_SS;
    regs.es = FLAT_KERNEL_SS;
    regs.rflags = 0x202;
    ctx.user_regs = regs;
    for entry in super::traps::table() {
        if entry.address != 0 {
            ctx.trap_ctxt[entry.vector as usize] = entry;
        }
    }
    ctx.kernel_ss = FLAT_KERNEL_SS as u64;
    ctx.kernel_sp = stack_top;
    ctx.ctrlreg[3] = (L4_MFN.load(Ordering::Relaxed) as u64) << 12;
    let (event, failsafe) = super::upcall::entries();
    ctx.event_callback_eip = event;
    ctx.failsafe_callback_eip = failsafe;
    ctx.gs_base_kernel = gs_base;
    ctx
}
