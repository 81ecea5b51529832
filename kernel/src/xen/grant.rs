//! Grant tables (`xen/include/public/grant_table.h`, version 1): how this guest lets a
//! backend domain map or copy one of its pages.
//!
//! Granting writes an entry (domain, frame, flags) in a table shared with Xen; revoking
//! clears the entry's flags with one compare-and-swap that fails while Xen says the backend
//! still has the page mapped (`GTF_reading`/`GTF_writing`). A page whose grant could not be
//! revoked is never handed out again: [`Table::end_access`] refuses, and the kernel keeps such
//! pages aside and retries later ([`release`]).

use core::sync::atomic::{AtomicU16, AtomicU32, Ordering};

/// `GTF_permit_access`: the domain in the entry may map or copy the frame.
pub const GTF_PERMIT_ACCESS: u16 = 1;
/// `GTF_readonly`: only for reading.
pub const GTF_READONLY: u16 = 1 << 2;
/// `GTF_reading`: Xen set it while the frame is mapped for reading.
pub const GTF_READING: u16 = 1 << 3;
/// `GTF_writing`: Xen set it while the frame is mapped for writing.
pub const GTF_WRITING: u16 = 1 << 4;

/// `GNTTAB_NR_RESERVED_ENTRIES`: the first entries belong to the toolstack (console,
/// xenstore).
pub const NR_RESERVED: u32 = 8;
/// Entries per table frame (`grant_entry_v1` is 8 bytes).
pub const ENTRIES_PER_FRAME: u32 = 4096 / 8;

/// `struct grant_entry_v1`, as atomics: Xen and the backend change `flags` under us.
#[repr(C)]
pub struct GrantEntryV1 {
    pub flags: AtomicU16,
    pub domid: AtomicU16,
    pub frame: AtomicU32,
}
const _: () = assert!(size_of::<GrantEntryV1>() == 8);

/// Why a grant could not be ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndError {
    /// The backend still maps the page: it must not be reused.
    InUse,
    /// The reference is out of range or reserved.
    BadRef,
}

/// The entry logic over a table's entries, apart from how the table is mapped.
pub struct Table<'a> {
    pub entries: &'a [GrantEntryV1],
}

impl Table<'_> {
    /// Fills entry `gref`: domain `domid` may access machine frame `frame`.
    pub fn grant(&self, gref: u32, domid: u16, frame: u32, readonly: bool) -> Result<(), EndError> {
        let entry = self.entry(gref)?;
        entry.domid.store(domid, Ordering::Relaxed);
        entry.frame.store(frame, Ordering::Relaxed);
        // grant_table.h: the domain and frame must be visible before the flags that enable
        // them.
        let flags = GTF_PERMIT_ACCESS | if readonly { GTF_READONLY } else { 0 };
        entry.flags.store(flags, Ordering::Release);
        Ok(())
    }

    /// Revokes entry `gref`, atomically: succeeds only if the backend does not have the page
    /// mapped at the moment of the swap.
    pub fn end_access(&self, gref: u32) -> Result<(), EndError> {
        let entry = self.entry(gref)?;
        let mut flags = entry.flags.load(Ordering::Acquire);
        loop {
            if flags & (GTF_READING | GTF_WRITING) != 0 {
                return Err(EndError::InUse);
            }
            match entry.flags.compare_exchange(flags, 0, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Ok(()),
                Err(now) => flags = now,
            }
        }
    }

    fn entry(&self, gref: u32) -> Result<&GrantEntryV1, EndError> {
        if gref < NR_RESERVED {
            return Err(EndError::BadRef);
        }
        self.entries.get(gref as usize).ok_or(EndError::BadRef)
    }
}

#[cfg(target_os = "none")]
pub use self::target::*;

#[cfg(target_os = "none")]
mod target {
    use super::*;
    use crate::sync::SpinLock;
    use crate::xen::hypercall::call;
    use alloc::vec::Vec;
    use core::ptr::addr_of;

    /// `__HYPERVISOR_grant_table_op` (`xen.h`).
    const GRANT_TABLE_OP: usize = 20;
    const GNTTABOP_SETUP_TABLE: usize = 2;
    const GNTTABOP_QUERY_SIZE: usize = 6;
    /// `GNTST_okay`.
    const GNTST_OKAY: i16 = 0;

    /// Table frames the kernel asks for: 4,096 entries, enough for a few vifs and disks.
    const FRAMES: usize = 8;

    /// `struct gnttab_setup_table`.
    #[repr(C)]
    struct SetupTable {
        dom: u16,
        nr_frames: u32,
        status: i16,
        frame_list: u64,
    }
    const _: () = assert!(size_of::<SetupTable>() == 24);

    /// `struct gnttab_query_size`.
    #[repr(C)]
    struct QuerySize {
        dom: u16,
        nr_frames: u32,
        max_nr_frames: u32,
        status: i16,
    }
    const _: () = assert!(size_of::<QuerySize>() == 16);

    /// Pages of the image whose virtual addresses are given to the table's frames.
    #[repr(C, align(4096))]
    struct TablePages([[u8; 4096]; FRAMES]);
    static mut TABLE_PAGES: TablePages = TablePages([[0; 4096]; FRAMES]);

    struct State {
        entries: usize,
        free: Vec<u32>,
        /// Grants the backend still mapped when they were ended, with the page to free once
        /// they are revoked.
        held: Vec<(u32, Option<(*mut u8, usize)>)>,
    }

    // SAFETY: the pages in `held` are owned by the table state alone.
    unsafe impl Send for State {}

    static STATE: SpinLock<State> = SpinLock::new(State { entries: 0, free: Vec::new(), held: Vec::new() });

    fn table(entries: usize) -> Table<'static> {
        // SAFETY: `init` mapped the table frames over `TABLE_PAGES`, which hold `entries`
        // entries; entries are only touched through atomics.
        let entries = unsafe {
            core::slice::from_raw_parts(addr_of!(TABLE_PAGES) as *const GrantEntryV1, entries)
        };
        Table { entries }
    }

    /// Sets up the grant table: asks Xen for its frames and maps them. Once, at boot.
    pub fn init() -> Result<usize, &'static str> {
        let mut query = QuerySize { dom: crate::xen::abi::DOMID_SELF as u16, nr_frames: 0, max_nr_frames: 0, status: 0 };
        // SAFETY: a valid `gnttab_query_size`, count 1.
        let ret = unsafe { call(GRANT_TABLE_OP, GNTTABOP_QUERY_SIZE, &mut query as *mut _ as usize, 1, 0, 0) };
        if ret < 0 || query.status != GNTST_OKAY {
            return Err("Xen refused GNTTABOP_query_size");
        }
        let frames = FRAMES.min(query.max_nr_frames as usize);
        if frames == 0 {
            return Err("Xen allows this domain no grant table frames");
        }
        let mut list = [0u64; FRAMES];
        let mut setup = SetupTable {
            dom: crate::xen::abi::DOMID_SELF as u16,
            nr_frames: frames as u32,
            status: 0,
            frame_list: list.as_mut_ptr() as u64,
        };
        // SAFETY: a valid `gnttab_setup_table` whose list has room for `frames` entries.
        let ret = unsafe { call(GRANT_TABLE_OP, GNTTABOP_SETUP_TABLE, &mut setup as *mut _ as usize, 1, 0, 0) };
        if ret < 0 || setup.status != GNTST_OKAY {
            return Err("Xen refused GNTTABOP_setup_table");
        }
        for (i, &mfn) in list[..frames].iter().enumerate() {
            let va = addr_of!(TABLE_PAGES) as u64 + (i * 4096) as u64;
            // SAFETY: the page at `va` is reserved for this frame and used for nothing else.
            if unsafe { crate::xen::hypercall::update_va_mapping(va, mfn << 12 | 0x67) } < 0 {
                return Err("Xen refused to map a grant table frame");
            }
        }
        let entries = frames * ENTRIES_PER_FRAME as usize;
        let mut state = STATE.lock();
        state.entries = entries;
        state.free = (NR_RESERVED..entries as u32).rev().collect();
        debug!("grant table: {frames} frames, {} entries free", state.free.len());
        Ok(entries)
    }

    /// Lets domain `domid` access the page at `page` (a page-aligned kernel address); returns
    /// the grant reference, or `-ENOSPC` when every entry is in use.
    pub fn grant_access(domid: u16, page: *const u8, readonly: bool) -> Result<u32, isize> {
        let mfn = crate::arch::x86_64::smp::mfn_of(page as u64);
        let frame = u32::try_from(mfn).map_err(|_| -crate::xen::abi::errno::EINVAL)?;
        let mut state = STATE.lock();
        retry_held(&mut state);
        let gref = state.free.pop().ok_or(-28isize)?;
        let entries = state.entries;
        drop(state);
        table(entries).grant(gref, domid, frame, readonly).map_err(|_| -crate::xen::abi::errno::EINVAL)?;
        Ok(gref)
    }

    /// Ends grant `gref` and frees the `frames` frames at `page` (if given) with it; when the
    /// backend still maps the page, both are kept aside until a later retry succeeds, so the
    /// page is never reused while mapped. Returns whether it was revoked now.
    pub fn release(gref: u32, page: Option<(*mut u8, usize)>) -> bool {
        let mut state = STATE.lock();
        match table(state.entries).end_access(gref) {
            Ok(()) => {
                state.free.push(gref);
                drop(state);
                if let Some((ptr, frames)) = page {
                    crate::mm::free_frames(ptr, frames);
                }
                true
            }
            Err(EndError::InUse) => {
                warn!("grant {gref} is still mapped by its backend; its page is kept aside");
                state.held.push((gref, page));
                false
            }
            Err(EndError::BadRef) => {
                error!("release of grant {gref}, which is not one: ignored");
                false
            }
        }
    }

    /// Retries the grants kept aside; frees those the backend has let go of.
    fn retry_held(state: &mut State) {
        let entries = state.entries;
        let mut i = 0;
        while i < state.held.len() {
            let (gref, page) = state.held[i];
            if table(entries).end_access(gref).is_ok() {
                state.held.swap_remove(i);
                state.free.push(gref);
                if let Some((ptr, frames)) = page {
                    crate::mm::free_frames(ptr, frames);
                }
            } else {
                i += 1;
            }
        }
    }

    /// Grants kept aside because their backend still maps them.
    pub fn held_count() -> usize {
        STATE.lock().held.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn entries(n: usize) -> Vec<GrantEntryV1> {
        (0..n)
            .map(|_| GrantEntryV1 { flags: AtomicU16::new(0), domid: AtomicU16::new(0), frame: AtomicU32::new(0) })
            .collect()
    }

    #[test]
    fn a_grant_fills_domain_frame_then_flags() {
        let e = entries(16);
        let t = Table { entries: &e };
        t.grant(9, 3, 0x1234, false).unwrap();
        assert_eq!(e[9].domid.load(Ordering::Relaxed), 3);
        assert_eq!(e[9].frame.load(Ordering::Relaxed), 0x1234);
        assert_eq!(e[9].flags.load(Ordering::Relaxed), GTF_PERMIT_ACCESS);
        t.grant(10, 0, 7, true).unwrap();
        assert_eq!(e[10].flags.load(Ordering::Relaxed), GTF_PERMIT_ACCESS | GTF_READONLY);
    }

    #[test]
    fn a_mapped_grant_is_not_revoked() {
        let e = entries(16);
        let t = Table { entries: &e };
        t.grant(8, 0, 1, false).unwrap();
        // The backend maps it: Xen sets GTF_writing.
        e[8].flags.fetch_or(GTF_WRITING, Ordering::Relaxed);
        assert_eq!(t.end_access(8), Err(EndError::InUse));
        assert_ne!(e[8].flags.load(Ordering::Relaxed) & GTF_PERMIT_ACCESS, 0, "still granted");
        // It unmaps it.
        e[8].flags.fetch_and(!GTF_WRITING, Ordering::Relaxed);
        assert_eq!(t.end_access(8), Ok(()));
        assert_eq!(e[8].flags.load(Ordering::Relaxed), 0);
        e[8].flags.store(GTF_PERMIT_ACCESS | GTF_READING, Ordering::Relaxed);
        assert_eq!(t.end_access(8), Err(EndError::InUse));
    }

    #[test]
    fn reserved_and_outside_references_are_refused() {
        let e = entries(16);
        let t = Table { entries: &e };
        assert_eq!(t.grant(0, 0, 1, false), Err(EndError::BadRef));
        assert_eq!(t.grant(7, 0, 1, false), Err(EndError::BadRef));
        assert_eq!(t.grant(16, 0, 1, false), Err(EndError::BadRef));
        assert_eq!(t.end_access(3), Err(EndError::BadRef));
        assert_eq!(t.end_access(u32::MAX), Err(EndError::BadRef));
    }
}
