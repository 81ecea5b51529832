//! The guest's address layout: where frames live in the direct map and which page-table
//! entries map them. Pure arithmetic, tested on the host.

/// Where frame 0 is mapped (`XEN_ELFNOTE_VIRT_BASE`); 6 MiB so that Xen's domain builder,
/// which maps the boot layout up to the next 4 MiB boundary, fits a 2 MiB guest.
pub const VIRT_BASE: u64 = 0x60_0000;
pub const PAGE_SIZE: u64 = 4096;
/// Frames one L1 table maps (a 2 MiB region).
pub const REGION_FRAMES: usize = 512;

/// The virtual address of frame `pfn` in the direct map.
pub const fn frame_va(pfn: usize) -> u64 {
    VIRT_BASE + pfn as u64 * PAGE_SIZE
}

/// The frame whose direct-map address holds `va` (`va >= VIRT_BASE`).
pub const fn va_frame(va: u64) -> usize {
    ((va - VIRT_BASE) / PAGE_SIZE) as usize
}

/// The L3 index (which GiB) and L2 index (which 2 MiB in it) of the entries that map `va`.
pub const fn table_indexes(va: u64) -> (usize, usize) {
    ((va >> 30) as usize & 511, (va >> 21) as usize & 511)
}

/// Page-table frames needed to map `nr_frames` frames: one L1 per region, one L2 per GiB of
/// them, and one spare for the L2 of a region that straddles a GiB boundary.
pub const fn table_frames_needed(nr_frames: usize) -> usize {
    let regions = nr_frames.div_ceil(REGION_FRAMES);
    regions + regions.div_ceil(512) + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_addresses_round_trip() {
        assert_eq!(frame_va(0), 0x60_0000);
        assert_eq!(frame_va(1), 0x60_1000);
        assert_eq!(va_frame(0x60_1fff), 1);
        for pfn in [0, 1, 511, 512, 262_143, 524_288] {
            assert_eq!(va_frame(frame_va(pfn)), pfn);
        }
    }

    #[test]
    fn regions_are_aligned_to_their_l1_tables() {
        // Every region starts on a 2 MiB boundary, so one L1 table maps exactly one region.
        assert_eq!(VIRT_BASE % (2 << 20), 0);
        assert_eq!(table_indexes(frame_va(0)), (0, 3));
        assert_eq!(table_indexes(frame_va(REGION_FRAMES)), (0, 4));
        // Frame (1 GiB - 6 MiB) / 4 KiB is the first in the second GiB.
        let first_of_gib1 = ((1 << 30) - VIRT_BASE as usize) / 4096;
        assert_eq!(table_indexes(frame_va(first_of_gib1)), (1, 0));
        assert_eq!(table_indexes(frame_va(first_of_gib1 - 1)), (0, 511));
    }

    #[test]
    fn the_table_pool_covers_the_direct_map() {
        assert_eq!(table_frames_needed(512), 1 + 1 + 1);
        assert_eq!(table_frames_needed(513), 2 + 1 + 1);
        // 2 GiB: 1024 L1s, 2 L2s, one spare.
        assert_eq!(table_frames_needed(524_288), 1024 + 2 + 1);
    }
}
