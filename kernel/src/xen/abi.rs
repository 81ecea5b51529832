//! Xen's guest ABI for x86_64 PV guests: the structures and constants of Xen's public headers
//! (`xen/include/public/`), in the headers' names, pinned by size asserts.

/// Hypercall numbers (`xen.h`, `__HYPERVISOR_*`).
pub mod hypercall {
    pub const SET_TRAP_TABLE: usize = 0;
    pub const MMU_UPDATE: usize = 1;
    pub const SET_CALLBACKS: usize = 4;
    pub const SET_TIMER_OP: usize = 15;
    pub const IRET: usize = 23;
    pub const VCPU_OP: usize = 24;
    pub const CONSOLE_IO: usize = 18;
    pub const UPDATE_VA_MAPPING: usize = 14;
    pub const XEN_VERSION: usize = 17;
    pub const SET_SEGMENT_BASE: usize = 25;
    pub const SCHED_OP: usize = 29;
    pub const EVENT_CHANNEL_OP: usize = 32;
    pub const PHYSDEV_OP: usize = 33;
}

/// `CONSOLEIO_write` (`xen.h`).
pub const CONSOLEIO_WRITE: usize = 0;
/// `CONSOLEIO_read` (`xen.h`).
pub const CONSOLEIO_READ: usize = 1;

/// `SCHEDOP_yield` (`sched.h`).
pub const SCHEDOP_YIELD: usize = 0;
/// `SCHEDOP_block` (`sched.h`).
pub const SCHEDOP_BLOCK: usize = 1;
/// `SCHEDOP_shutdown` (`sched.h`).
pub const SCHEDOP_SHUTDOWN: usize = 2;
/// `SCHEDOP_poll` (`sched.h`).
pub const SCHEDOP_POLL: usize = 3;

/// Shutdown reasons (`sched.h`, `SHUTDOWN_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ShutdownReason {
    #[doc(alias = "SHUTDOWN_poweroff")]
    Poweroff = 0,
    #[doc(alias = "SHUTDOWN_reboot")]
    Reboot = 1,
    #[doc(alias = "SHUTDOWN_crash")]
    Crash = 3,
}

/// `struct sched_shutdown` (`sched.h`).
#[repr(C)]
pub struct SchedShutdown {
    pub reason: u32,
}

/// `struct sched_poll` (`sched.h`): block until one of `ports` is pending or `timeout` (Xen
/// system time in ns, 0 for none) passes.
#[repr(C)]
pub struct SchedPoll {
    pub ports: *const u32,
    pub nr_ports: u32,
    pub timeout: u64,
}
const _: () = assert!(size_of::<SchedPoll>() == 24);

/// `EVTCHNOP_send` (`event_channel.h`).
pub const EVTCHNOP_SEND: usize = 4;

/// `struct evtchn_send` (`event_channel.h`).
#[repr(C)]
pub struct EvtchnSend {
    pub port: u32,
}

/// `VCPUOP_*` commands (`vcpu.h`).
pub mod vcpuop {
    pub const INITIALISE: usize = 0;
    pub const UP: usize = 1;
    pub const IS_UP: usize = 3;
    pub const REGISTER_RUNSTATE_MEMORY_AREA: usize = 5;
    pub const STOP_PERIODIC_TIMER: usize = 7;
    pub const REGISTER_VCPU_INFO: usize = 10;
}

/// `struct vcpu_register_vcpu_info` (`vcpu.h`).
#[repr(C)]
pub struct VcpuRegisterVcpuInfo {
    pub mfn: u64,
    pub offset: u32,
    pub rsvd: u32,
}

/// `SEGBASE_GS_KERNEL` (`arch-x86/xen-x86_64.h`).
pub const SEGBASE_GS_KERNEL: usize = 2;

/// `FLAT_KERNEL_SS` / `FLAT_KERNEL_DS` for 64-bit PV guests (`FLAT_RING3_SS64`, `_DS64`).
pub const FLAT_KERNEL_SS: u16 = 0xe02b;

/// `struct cpu_user_regs` for x86_64 (`arch-x86/xen-x86_64.h`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct CpuUserRegs {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub rbp: u64,
    pub rbx: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rax: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub error_code: u32,
    pub entry_vector: u32,
    pub rip: u64,
    pub cs: u16,
    pub pad0: u16,
    pub saved_upcall_mask: u8,
    pub pad1: [u8; 3],
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u16,
    pub pad2: [u16; 3],
    pub es: u16,
    pub pad3: [u16; 3],
    pub ds: u16,
    pub pad4: [u16; 3],
    pub fs: u16,
    pub pad5: [u16; 3],
    pub gs: u16,
    pub pad6: [u16; 3],
}
const _: () = assert!(size_of::<CpuUserRegs>() == 200);

/// `VGCF_*` flags of `vcpu_guest_context` (`arch-x86/xen.h`).
pub const VGCF_I387_VALID: u64 = 1 << 0;
pub const VGCF_IN_KERNEL: u64 = 1 << 2;

/// `struct vcpu_guest_context` for x86_64 PV (`arch-x86/xen.h`).
#[repr(C)]
pub struct VcpuGuestContext {
    pub fpu_ctxt: [u8; 512],
    pub flags: u64,
    pub user_regs: CpuUserRegs,
    pub trap_ctxt: [TrapInfo; 256],
    pub ldt_base: u64,
    pub ldt_ents: u64,
    pub gdt_frames: [u64; 16],
    pub gdt_ents: u64,
    pub kernel_ss: u64,
    pub kernel_sp: u64,
    pub ctrlreg: [u64; 8],
    pub debugreg: [u64; 8],
    pub event_callback_eip: u64,
    pub failsafe_callback_eip: u64,
    pub syscall_callback_eip: u64,
    pub vm_assist: u64,
    pub fs_base: u64,
    pub gs_base_kernel: u64,
    pub gs_base_user: u64,
}
const _: () = assert!(size_of::<VcpuGuestContext>() == 5168);

/// `EVTCHNOP_bind_ipi` (`event_channel.h`).
pub const EVTCHNOP_BIND_IPI: usize = 7;

/// `SEGBASE_FS` (`arch-x86/xen-x86_64.h`).
pub const SEGBASE_FS: usize = 0;

/// `MMU_NORMAL_PT_UPDATE` (`xen.h`): `ptr` is the machine address of a page-table entry.
pub const MMU_NORMAL_PT_UPDATE: u64 = 0;

/// `struct mmu_update` (`xen.h`).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct MmuUpdate {
    pub ptr: u64,
    pub val: u64,
}
const _: () = assert!(size_of::<MmuUpdate>() == 16);

/// `DOMID_SELF` (`xen.h`).
pub const DOMID_SELF: usize = 0x7ff0;

/// `UVMF_INVLPG` (`xen.h`): flush the one page's TLB entry on this vCPU.
pub const UVMF_INVLPG: usize = 2;

/// `struct trap_info` (`arch-x86/xen.h`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct TrapInfo {
    pub vector: u8,
    /// Bits 0-1: the privilege level that may raise it with `int`; bit 2: mask events on entry.
    pub flags: u8,
    pub cs: u16,
    pub address: u64,
}
const _: () = assert!(size_of::<TrapInfo>() == 16);

/// `FLAT_KERNEL_CS` for 64-bit PV guests (`arch-x86/xen-x86_64.h`, `FLAT_RING3_CS64`).
pub const FLAT_KERNEL_CS: u16 = 0xe033;

/// `MACH2PHYS_VIRT_START` (`arch-x86/xen-x86_64.h`): the read-only machine-to-phys table.
pub const MACH2PHYS_VIRT_START: u64 = 0xffff_8000_0000_0000;

/// `SIF_INITDOMAIN` (`xen.h`): this is the initial control domain (dom0).
pub const SIF_INITDOMAIN: u32 = 1 << 1;

/// `SIF_MOD_START_PFN` (`xen.h`): `mod_start` is a frame number, the module not mapped (only
/// for kernels that ask with `XEN_ELFNOTE_MOD_START_PFN`, which this one does not).
pub const SIF_MOD_START_PFN: u32 = 1 << 3;

/// `MAX_GUEST_CMDLINE` (`xen.h`).
pub const MAX_GUEST_CMDLINE: usize = 1024;

/// `struct start_info` (`xen.h`), as Xen hands it to an x86_64 PV guest in `%rsi`.
#[repr(C)]
pub struct StartInfo {
    pub magic: [u8; 32],
    pub nr_pages: u64,
    /// Machine address of the shared info page.
    pub shared_info: u64,
    pub flags: u32,
    pub store_mfn: u64,
    pub store_evtchn: u32,
    /// `console.domU.mfn`, or `console.dom0.info_off` and `info_size` for dom0.
    pub console_mfn: u64,
    pub console_evtchn: u32,
    pub pt_base: u64,
    pub nr_pt_frames: u64,
    pub mfn_list: u64,
    pub mod_start: u64,
    pub mod_len: u64,
    pub cmd_line: [u8; MAX_GUEST_CMDLINE],
    pub first_p2m_pfn: u64,
    pub nr_p2m_frames: u64,
}
const _: () = assert!(core::mem::offset_of!(StartInfo, console_mfn) == 72);
const _: () = assert!(core::mem::offset_of!(StartInfo, pt_base) == 88);
const _: () = assert!(core::mem::offset_of!(StartInfo, cmd_line) == 128);
const _: () = assert!(size_of::<StartInfo>() == 1168);

/// `struct vcpu_time_info` (`xen.h`): the PV clock of one vCPU.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct VcpuTimeInfo {
    /// Odd while Xen updates the record.
    pub version: u32,
    pub pad0: u32,
    pub tsc_timestamp: u64,
    /// Nanoseconds of Xen system time at `tsc_timestamp`.
    pub system_time: u64,
    pub tsc_to_system_mul: u32,
    pub tsc_shift: i8,
    pub flags: u8,
    pub pad1: [u8; 2],
}
const _: () = assert!(size_of::<VcpuTimeInfo>() == 32);

/// `struct vcpu_info` (`xen.h` with `arch-x86/xen.h`'s `arch_vcpu_info`).
#[repr(C)]
pub struct VcpuInfo {
    pub evtchn_upcall_pending: u8,
    pub evtchn_upcall_mask: u8,
    pub pad: [u8; 6],
    pub evtchn_pending_sel: u64,
    /// `arch.cr2`: the faulting address of the last page fault.
    pub cr2: u64,
    pub arch_pad: u64,
    pub time: VcpuTimeInfo,
}
const _: () = assert!(size_of::<VcpuInfo>() == 64);

/// `XEN_LEGACY_MAX_VCPUS` for x86 (`arch-x86/xen.h`).
pub const XEN_LEGACY_MAX_VCPUS: usize = 32;

/// The start of `struct shared_info` (`xen.h`) up to the wallclock.
#[repr(C)]
pub struct SharedInfo {
    pub vcpu_info: [VcpuInfo; XEN_LEGACY_MAX_VCPUS],
    pub evtchn_pending: [u64; 64],
    pub evtchn_mask: [u64; 64],
    /// Odd while Xen updates the wallclock.
    pub wc_version: u32,
    pub wc_sec: u32,
    pub wc_nsec: u32,
    pub wc_sec_hi: u32,
}
const _: () = assert!(core::mem::offset_of!(SharedInfo, wc_version) == 3072);

/// `struct xencons_interface` (`io/console.h`): the PV console's shared ring page.
#[repr(C)]
pub struct XenconsInterface {
    pub input: [u8; 1024],
    pub output: [u8; 2048],
    pub in_cons: u32,
    pub in_prod: u32,
    pub out_cons: u32,
    pub out_prod: u32,
}
const _: () = assert!(core::mem::offset_of!(XenconsInterface, in_cons) == 3072);

/// ELF note types (`elfnote.h`, `XEN_ELFNOTE_*`).
pub mod elfnote {
    pub const ENTRY: u32 = 1;
    pub const HYPERCALL_PAGE: u32 = 2;
    pub const VIRT_BASE: u32 = 3;
    pub const PADDR_OFFSET: u32 = 4;
    pub const XEN_VERSION: u32 = 5;
    pub const GUEST_OS: u32 = 6;
    pub const LOADER: u32 = 8;
    pub const SUPPORTED_FEATURES: u32 = 17;
}

/// `XENFEAT_dom0` (`features.h`): the kernel can run as dom0.
pub const XENFEAT_DOM0: u32 = 11;

/// Linux errno values, which the kernel's ABI uses (`docs/abi.md`).
pub mod errno {
    pub const EPERM: isize = 1;
    pub const EAGAIN: isize = 11;
    pub const ETIMEDOUT: isize = 110;
    pub const EIO: isize = 5;
    pub const EACCES: isize = 13;
    pub const EBADF: isize = 9;
    pub const ENOMEM: isize = 12;
    pub const EINVAL: isize = 22;
}

/// The network interface protocol between a frontend and netback
/// (`xen/include/public/io/netif.h`; the ring layout of `xen/include/public/io/ring.h`).
///
/// The structures below are the ring slots as the header lays them out; the kernel reaches
/// them through `crate::net::ring`, which copies each slot in or out as 32-bit words.
pub mod netif {
    /// `netif_tx_request`: one frame (or its first part) for the backend to send.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct NetifTxRequest {
        /// `gref`: the grant of the page that holds the data.
        pub gref: u32,
        /// `offset`: where the data starts in that page.
        pub offset: u16,
        /// `flags`: `NETTXF_*`.
        pub flags: u16,
        /// `id`: echoed in the response.
        pub id: u16,
        /// `size`: the frame's length (of the whole packet, in its first slot).
        pub size: u16,
    }
    const _: () = assert!(size_of::<NetifTxRequest>() == 12);

    /// `netif_tx_response`.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct NetifTxResponse {
        pub id: u16,
        /// `NETIF_RSP_*`.
        pub status: i16,
    }
    const _: () = assert!(size_of::<NetifTxResponse>() == 4);

    /// `netif_rx_request`: a page the backend may copy one received frame into.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct NetifRxRequest {
        pub id: u16,
        pub pad: u16,
        pub gref: u32,
    }
    const _: () = assert!(size_of::<NetifRxRequest>() == 8);

    /// `netif_rx_response`.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct NetifRxResponse {
        pub id: u16,
        /// Where the data starts in the page.
        pub offset: u16,
        /// `NETRXF_*`.
        pub flags: u16,
        /// The data's length if positive, else `NETIF_RSP_*`.
        pub status: i16,
    }
    const _: () = assert!(size_of::<NetifRxResponse>() == 8);

    /// `NETTXF_csum_blank`: the protocol checksum field is blank.
    pub const NETTXF_CSUM_BLANK: u16 = 1 << 0;
    /// `NETTXF_data_validated`.
    pub const NETTXF_DATA_VALIDATED: u16 = 1 << 1;
    /// `NETTXF_more_data`: the packet continues in the next request.
    pub const NETTXF_MORE_DATA: u16 = 1 << 2;
    /// `NETTXF_extra_info`: an extra-info slot follows.
    pub const NETTXF_EXTRA_INFO: u16 = 1 << 3;

    /// `NETRXF_data_validated`: the protocol checksum was validated.
    pub const NETRXF_DATA_VALIDATED: u16 = 1 << 0;
    /// `NETRXF_csum_blank`: the protocol checksum field is blank.
    pub const NETRXF_CSUM_BLANK: u16 = 1 << 1;
    /// `NETRXF_more_data`: the packet continues in the next response (needs `feature-sg`).
    pub const NETRXF_MORE_DATA: u16 = 1 << 2;
    /// `NETRXF_extra_info`: an extra-info slot follows (needs GSO features).
    pub const NETRXF_EXTRA_INFO: u16 = 1 << 3;
    /// `NETRXF_gso_prefix`: a GSO prefix slot (needs `feature-gso-tcpv4-prefix`).
    pub const NETRXF_GSO_PREFIX: u16 = 1 << 4;

    /// `netif_extra_info` (its GSO form): a slot that follows a request or response flagged
    /// `NETTXF_extra_info` / `NETRXF_extra_info` and describes the packet, not its data.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct NetifExtraInfo {
        /// `type`: `XEN_NETIF_EXTRA_TYPE_*`.
        pub kind: u8,
        /// `flags`: `XEN_NETIF_EXTRA_FLAG_*`.
        pub flags: u8,
        /// `u.gso.size`: the payload of each segment (the MSS).
        pub gso_size: u16,
        /// `u.gso.type`: `XEN_NETIF_GSO_TYPE_*`.
        pub gso_type: u8,
        pub gso_pad: u8,
        /// `u.gso.features`: `XEN_NETIF_GSO_FEAT_*` (none defined).
        pub gso_features: u16,
    }
    const _: () = assert!(size_of::<NetifExtraInfo>() == 8);

    /// `XEN_NETIF_EXTRA_TYPE_GSO`: the extra-info slot describes a GSO packet.
    pub const XEN_NETIF_EXTRA_TYPE_GSO: u8 = 1;
    /// `XEN_NETIF_EXTRA_FLAG_MORE`: another extra-info slot follows.
    pub const XEN_NETIF_EXTRA_FLAG_MORE: u8 = 1 << 0;
    /// `XEN_NETIF_GSO_TYPE_TCPV4`: TCP over IPv4 segmentation.
    pub const XEN_NETIF_GSO_TYPE_TCPV4: u8 = 1;
    /// `XEN_NETIF_NR_SLOTS_MIN`: the most slots (data requests) of one tx packet that every
    /// backend takes.
    pub const XEN_NETIF_NR_SLOTS_MIN: usize = 18;
    /// `XEN_NETIF_MAX_TX_SIZE`: the largest packet a tx request's `size` can describe.
    pub const XEN_NETIF_MAX_TX_SIZE: usize = 0xffff;

    /// `NETIF_RSP_DROPPED`.
    pub const NETIF_RSP_DROPPED: i16 = -2;
    /// `NETIF_RSP_ERROR`.
    pub const NETIF_RSP_ERROR: i16 = -1;
    /// `NETIF_RSP_OKAY`.
    pub const NETIF_RSP_OKAY: i16 = 0;
    /// `NETIF_RSP_NULL`: the response to an extra-info slot.
    pub const NETIF_RSP_NULL: i16 = 1;
}

/// The block device protocol between a frontend and blkback
/// (`xen/include/public/io/blkif.h`; the ring layout of `xen/include/public/io/ring.h`).
///
/// Sector numbers and the segments' `first_sect`/`last_sect` always count 512-byte units,
/// whatever the device's `sector-size` is.
pub mod blkif {
    /// `BLKIF_MAX_SEGMENTS_PER_REQUEST`: pages one direct request may name.
    pub const BLKIF_MAX_SEGMENTS_PER_REQUEST: usize = 11;

    /// `struct blkif_request_segment`: a part of one granted page, in 512-byte units.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct BlkifRequestSegment {
        /// `gref`: the grant of the page.
        pub gref: u32,
        /// `first_sect`: the first 512-byte unit of the page to transfer (0 to 7).
        pub first_sect: u8,
        /// `last_sect`: the last one, inclusive (`first_sect` to 7).
        pub last_sect: u8,
    }
    const _: () = assert!(size_of::<BlkifRequestSegment>() == 8);

    /// `struct blkif_request` (x86_64 layout: `id` aligned to 8 bytes).
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct BlkifRequest {
        /// `operation`: `BLKIF_OP_*`.
        pub operation: u8,
        /// `nr_segments`: segments used (0 for a flush or barrier without data).
        pub nr_segments: u8,
        /// `handle`: only for the backend's use; the frontend writes 0.
        pub handle: u16,
        /// `id`: echoed in the response.
        pub id: u64,
        /// `sector_number`: the first 512-byte sector on the device.
        pub sector_number: u64,
        pub seg: [BlkifRequestSegment; BLKIF_MAX_SEGMENTS_PER_REQUEST],
    }
    const _: () = assert!(size_of::<BlkifRequest>() == 112);

    /// `struct blkif_response`.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct BlkifResponse {
        /// `id`: the request's.
        pub id: u64,
        /// `operation`: the request's.
        pub operation: u8,
        /// `status`: `BLKIF_RSP_*`.
        pub status: i16,
    }
    const _: () = assert!(size_of::<BlkifResponse>() == 16);

    /// `BLKIF_OP_READ`.
    pub const BLKIF_OP_READ: u8 = 0;
    /// `BLKIF_OP_WRITE`.
    pub const BLKIF_OP_WRITE: u8 = 1;
    /// `BLKIF_OP_WRITE_BARRIER` (with `feature-barrier`).
    pub const BLKIF_OP_WRITE_BARRIER: u8 = 2;
    /// `BLKIF_OP_FLUSH_DISKCACHE` (with `feature-flush-cache`).
    pub const BLKIF_OP_FLUSH_DISKCACHE: u8 = 3;

    /// `BLKIF_RSP_EOPNOTSUPP`: the backend does not do this operation.
    pub const BLKIF_RSP_EOPNOTSUPP: i16 = -2;
    /// `BLKIF_RSP_ERROR`.
    pub const BLKIF_RSP_ERROR: i16 = -1;
    /// `BLKIF_RSP_OKAY`.
    pub const BLKIF_RSP_OKAY: i16 = 0;

    /// `VDISK_CDROM` (the `info` key's bits).
    pub const VDISK_CDROM: u32 = 1;
    /// `VDISK_REMOVABLE`.
    pub const VDISK_REMOVABLE: u32 = 2;
    /// `VDISK_READONLY`: the backend refuses writes.
    pub const VDISK_READONLY: u32 = 4;
}
