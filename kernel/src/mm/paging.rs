//! PV page tables: the direct map of the guest's pseudo-physical memory, built lazily.
//!
//! Frame `pfn` lives at `VIRT_BASE + pfn * 4096`. Xen maps the image and a little more at boot;
//! the rest is mapped one 2 MiB region (one L1 table) at a time, the first time a region is
//! handed out, so that start-up costs the same for any memory size.
//!
//! In PV, page tables belong to Xen: a frame used as one may have no writable mapping, and
//! entries are written with `mmu_update`, which checks them. The kernel never maps its own
//! table frames at all: they come from a pool at the top of memory, are zeroed through a
//! scratch mapping, and are known by machine frame number only.

use core::ptr::addr_of_mut;

use crate::xen::abi::{MACH2PHYS_VIRT_START, MmuUpdate};
use crate::xen::hypercall;

pub use super::layout::{PAGE_SIZE, REGION_FRAMES, VIRT_BASE, frame_va, va_frame};

/// Present, writable, user (PV guest kernels run in ring 3), accessed, dirty.
const PTE_DATA: u64 = 0x67;
/// Present, writable, user, accessed: an entry pointing at a lower table.
const PTE_TABLE: u64 = 0x27;
const PTE_PRESENT: u64 = 1;
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

/// Why a region could not be mapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// The pool of page-table frames ran dry.
    NoTableFrames,
    /// Xen refused an update, with this `-errno`.
    Refused(isize),
}

/// A page of the image whose virtual address is borrowed to zero new table frames.
#[repr(C, align(4096))]
struct ScratchPage([u8; 4096]);
static mut SCRATCH: ScratchPage = ScratchPage([0; 4096]);


/// The pseudo-physical frame of machine frame `mfn`, from the machine-to-phys table Xen maps
/// read-only into every PV guest.
pub fn m2p(mfn: u64) -> u64 {
    // SAFETY: Xen maps the table at `MACH2PHYS_VIRT_START` for every PV guest; an entry of a
    // frame this domain owns is readable.
    unsafe { ((MACH2PHYS_VIRT_START + mfn * 8) as *const u64).read_volatile() }
}

/// The page tables of the direct map.
pub struct DirectMap {
    /// Machine frame of every frame (Xen's p2m list, `start_info.mfn_list`).
    p2m: &'static [u64],
    /// Machine frame of the L3 table that covers the direct map.
    l3_mfn: u64,
    /// Machine frame of the L2 table for each GiB, 0 if none yet.
    l2_mfns: [u64; 512],
    /// Machine frame of the L1 table for each region, 0 if none yet.
    l1_mfns: &'static mut [u64],
    /// Whether each region is wholly mapped.
    complete: &'static mut [bool],
    /// Frames at and above this are the table pool and are never mapped.
    pool_floor: usize,
    /// The next pool frame to hand out (the pool is used downwards).
    pool_next: usize,
}

impl DirectMap {
    /// Frames the pool needs so that every region below it can be mapped.
    pub fn pool_frames_needed(nr_frames: usize) -> usize {
        super::layout::table_frames_needed(nr_frames)
    }

    /// Takes over Xen's boot page tables.
    ///
    /// # Safety
    ///
    /// `pt_base` must be the L4 table Xen built (`start_info.pt_base`), mapped read-only in the
    /// initial mapping as Xen leaves it; `p2m` must be this domain's p2m list; `l1_mfns` and
    /// `complete` must have one entry per region of `nr_frames` frames.
    pub unsafe fn adopt(
        pt_base: u64,
        p2m: &'static [u64],
        l1_mfns: &'static mut [u64],
        complete: &'static mut [bool],
        pool_floor: usize,
    ) -> DirectMap {
        let l4 = pt_base as *const u64;
        let l4_index = (VIRT_BASE >> 39) as usize & 511;
        // SAFETY: the caller guarantees that `pt_base` maps the L4 table.
        let l3_mfn = (unsafe { l4.add(l4_index).read_volatile() } & ADDR_MASK) >> 12;
        let l3 = table_va(l3_mfn) as *const u64;
        let mut l2_mfns = [0u64; 512];
        for (gib, slot) in l2_mfns.iter_mut().enumerate() {
            // SAFETY: Xen's boot tables lie in the initial mapping, readable at their frame's
            // direct-map address.
            let entry = unsafe { l3.add(gib).read_volatile() };
            if entry & PTE_PRESENT != 0 {
                *slot = (entry & ADDR_MASK) >> 12;
            }
        }
        l1_mfns.fill(0);
        complete.fill(false);
        for (region, slot) in l1_mfns.iter_mut().enumerate() {
            let va = frame_va(region * REGION_FRAMES);
            let l2_mfn = l2_mfns[(va >> 30) as usize & 511];
            if l2_mfn == 0 {
                continue;
            }
            let l2 = table_va(l2_mfn) as *const u64;
            // SAFETY: as for the L3 table.
            let entry = unsafe { l2.add((va >> 21) as usize & 511).read_volatile() };
            if entry & PTE_PRESENT != 0 {
                *slot = (entry & ADDR_MASK) >> 12;
            }
        }
        DirectMap {
            p2m,
            l3_mfn,
            l2_mfns,
            l1_mfns,
            complete,
            pool_floor,
            pool_next: p2m.len(),
        }
    }

    /// Maps every frame of `first..first + count` that is not mapped yet.
    pub fn ensure_mapped(&mut self, first: usize, count: usize) -> Result<(), MapError> {
        if count == 0 {
            return Ok(());
        }
        let last_region = (first + count - 1) / REGION_FRAMES;
        for region in first / REGION_FRAMES..=last_region {
            if !self.complete[region] {
                self.map_region(region)?;
                self.complete[region] = true;
            }
        }
        Ok(())
    }

    fn map_region(&mut self, region: usize) -> Result<(), MapError> {
        let va = frame_va(region * REGION_FRAMES);
        let (gib, l2_index) = super::layout::table_indexes(va);
        if self.l2_mfns[gib] == 0 {
            let table = self.new_table()?;
            let slot = self.l3_mfn << 12 | (gib as u64 * 8);
            // SAFETY: the new table is empty, so installing it maps nothing yet.
            unsafe { hypercall::mmu_update(&[MmuUpdate { ptr: slot, val: table << 12 | PTE_TABLE }]) }
                .map_err(MapError::Refused)?;
            self.l2_mfns[gib] = table;
        }
        let ours = self.l1_mfns[region] == 0;
        if ours {
            let table = self.new_table()?;
            let slot = self.l2_mfns[gib] << 12 | (l2_index as u64 * 8);
            // SAFETY: as above.
            unsafe { hypercall::mmu_update(&[MmuUpdate { ptr: slot, val: table << 12 | PTE_TABLE }]) }
                .map_err(MapError::Refused)?;
            self.l1_mfns[region] = table;
        }
        let l1_mfn = self.l1_mfns[region];
        let first = region * REGION_FRAMES;
        let end = (first + REGION_FRAMES).min(self.pool_floor);
        let mut batch = [MmuUpdate::default(); 64];
        let mut queued = 0;
        for pfn in first..end {
            let index = (pfn - first) as u64;
            if !ours {
                // SAFETY: a table Xen built lies in the initial mapping, readable.
                let entry = unsafe { (table_va(l1_mfn) as *const u64).add(index as usize).read_volatile() };
                if entry & PTE_PRESENT != 0 {
                    continue;
                }
            }
            batch[queued] = MmuUpdate { ptr: l1_mfn << 12 | index * 8, val: self.p2m[pfn] << 12 | PTE_DATA };
            queued += 1;
            if queued == batch.len() {
                // SAFETY: the frames are this domain's and were not mapped: nothing changes for
                // memory already in use.
                unsafe { hypercall::mmu_update(&batch) }.map_err(MapError::Refused)?;
                queued = 0;
            }
        }
        // SAFETY: as above.
        unsafe { hypercall::mmu_update(&batch[..queued]) }.map_err(MapError::Refused)?;
        Ok(())
    }

    /// Takes a frame from the pool and zeroes it; returns its machine frame number.
    fn new_table(&mut self) -> Result<u64, MapError> {
        if self.pool_next <= self.pool_floor {
            return Err(MapError::NoTableFrames);
        }
        self.pool_next -= 1;
        let mfn = self.p2m[self.pool_next];
        let scratch = addr_of_mut!(SCRATCH) as u64;
        let own = self.p2m[va_frame(scratch)];
        // SAFETY: the scratch page's own contents are never used, so mapping another frame
        // there for a moment breaks nothing; the pool frame is mapped nowhere else.
        let ret = unsafe { hypercall::update_va_mapping(scratch, mfn << 12 | PTE_DATA) };
        if ret < 0 {
            return Err(MapError::Refused(ret));
        }
        // SAFETY: `scratch` now maps the pool frame, writable.
        unsafe { core::ptr::write_bytes(scratch as *mut u8, 0, PAGE_SIZE as usize) };
        // SAFETY: puts the scratch page's own frame back; the pool frame loses its only
        // writable mapping, as Xen requires of a page table.
        let ret = unsafe { hypercall::update_va_mapping(scratch, own << 12 | PTE_DATA) };
        if ret < 0 {
            return Err(MapError::Refused(ret));
        }
        Ok(mfn)
    }

    /// Removes the mapping of frame `pfn` (for guard pages); the frame stays in use.
    pub fn unmap(&mut self, pfn: usize) -> Result<(), MapError> {
        // SAFETY: the caller gives a frame nothing uses; touching it afterwards faults, which
        // is the point.
        let ret = unsafe { hypercall::update_va_mapping(frame_va(pfn), 0) };
        if ret < 0 { Err(MapError::Refused(ret)) } else { Ok(()) }
    }
}

impl DirectMap {
    /// Maps frame `pfn` at its direct-map address again (after `unmap`).
    pub fn remap(&mut self, pfn: usize) -> Result<(), MapError> {
        // SAFETY: the frame is this domain's and its direct-map address maps nothing else.
        let ret = unsafe { hypercall::update_va_mapping(frame_va(pfn), self.p2m[pfn] << 12 | PTE_DATA) };
        if ret < 0 { Err(MapError::Refused(ret)) } else { Ok(()) }
    }
}

/// The direct-map address of a table frame of Xen's boot page tables.
fn table_va(mfn: u64) -> u64 {
    frame_va(m2p(mfn) as usize)
}
