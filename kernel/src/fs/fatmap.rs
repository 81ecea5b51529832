//! The file allocation table, read directly: a volume's geometry from its boot sector, FAT
//! entries and cluster chains, and the count of free clusters.
//!
//! `hadris-fat` keeps the geometry private and counts free clusters only in FAT32's FSInfo
//! (a hint, which other systems may leave stale). The FAT volume ([`super::fat`]) needs an
//! exact count to refuse a write that does not fit before the crate's writer meets a full
//! volume, and the chain to overwrite a file's bytes in place, so this module reads the first
//! FAT itself, with the same formulas as the crate (the mount checks that both agree).
//!
//! The free count is kept per unit of [`UNIT_CLUSTERS`] entries: counted once, at the first
//! write that needs it, then only the units whose bytes the cache saw written since
//! ([`BlockCache::watch`]), whoever wrote them (the crate's allocator, deletes, truncations).

use alloc::vec::Vec;

use super::blockcache::{BlockCache, Sectors};
use super::errno::Errno;

/// FAT entries per unit of the free count (a unit is 1536, 2048 or 4096 bytes of FAT).
pub const UNIT_CLUSTERS: u32 = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Fat12,
    Fat16,
    Fat32,
}

/// Where a volume's structures are, from its boot sector (the BIOS parameter block).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub kind: Kind,
    /// Byte offset of the first FAT, and the bytes of one copy.
    pub fat_start: u64,
    pub fat_len: u64,
    /// Byte offset of cluster 2.
    pub data_start: u64,
    pub cluster_size: u64,
    /// The highest cluster number (clusters are 2 ..= this).
    pub max_cluster: u32,
}

/// What a FAT entry says of the cluster after its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    Free,
    Next(u32),
    End,
    /// Bad, reserved, or out of range: never part of a sound chain.
    Broken,
}

fn le16(b: &[u8], at: usize) -> u64 {
    u64::from(u16::from_le_bytes([b[at], b[at + 1]]))
}

fn le32(b: &[u8], at: usize) -> u64 {
    u64::from(u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]))
}

impl Geometry {
    /// The geometry a boot sector gives (its first 64 bytes), or `None` if its fields make no
    /// volume (the crate refuses such volumes at mount as well).
    pub fn parse(boot: &[u8]) -> Option<Geometry> {
        if boot.len() < 64 {
            return None;
        }
        let sector = le16(boot, 11);
        let per_cluster = u64::from(boot[13]);
        let reserved = le16(boot, 14);
        let fats = u64::from(boot[16]);
        let root_entries = le16(boot, 17);
        let total = match le16(boot, 19) {
            0 => le32(boot, 32),
            small => small,
        };
        if !matches!(sector, 512 | 1024 | 2048 | 4096) || !per_cluster.is_power_of_two() || per_cluster > 128 {
            return None;
        }
        let fat32 = root_entries == 0 && le16(boot, 22) == 0;
        let per_fat = if fat32 { le32(boot, 36) } else { le16(boot, 22) };
        let root_sectors = (root_entries * 32).div_ceil(sector);
        let meta = reserved + fats * per_fat + root_sectors;
        let clusters = total.saturating_sub(meta) / per_cluster;
        let kind = match clusters {
            _ if fat32 => Kind::Fat32,
            0..4085 => Kind::Fat12,
            _ => Kind::Fat16,
        };
        let max_cluster = u32::try_from(clusters + 1).ok()?;
        Some(Geometry {
            kind,
            fat_start: reserved * sector,
            fat_len: per_fat * sector,
            data_start: meta * sector,
            cluster_size: per_cluster * sector,
            max_cluster,
        })
    }

    /// The byte offset of a cluster's data on the disk.
    pub fn cluster_offset(&self, cluster: u32) -> u64 {
        self.data_start + u64::from(cluster - 2) * self.cluster_size
    }

    /// The offset of a cluster's entry inside the FAT, and the bytes read to decode it.
    fn entry_span(&self, cluster: u32) -> (u64, usize) {
        let c = u64::from(cluster);
        match self.kind {
            Kind::Fat12 => (c * 3 / 2, 2),
            Kind::Fat16 => (c * 2, 2),
            Kind::Fat32 => (c * 4, 4),
        }
    }

    /// The entry of `cluster` from the bytes at its offset.
    fn decode(&self, cluster: u32, bytes: &[u8]) -> u32 {
        match self.kind {
            Kind::Fat12 if cluster % 2 == 0 => (le16(bytes, 0) & 0xfff) as u32,
            Kind::Fat12 => (le16(bytes, 0) >> 4) as u32,
            Kind::Fat16 => le16(bytes, 0) as u32,
            Kind::Fat32 => (le32(bytes, 0) & 0x0fff_ffff) as u32,
        }
    }

    /// What an entry's value means.
    pub fn link(&self, value: u32) -> Link {
        let end = match self.kind {
            Kind::Fat12 => 0xff8,
            Kind::Fat16 => 0xfff8,
            Kind::Fat32 => 0x0fff_fff8,
        };
        match value {
            0 => Link::Free,
            v if v >= end => Link::End,
            v if (2..=self.max_cluster).contains(&v) => Link::Next(v),
            _ => Link::Broken,
        }
    }

    /// The entry of `cluster` in the first FAT.
    pub fn entry<D: Sectors>(&self, cache: &mut BlockCache<D>, cluster: u32) -> Result<u32, Errno> {
        let (at, width) = self.entry_span(cluster);
        if cluster < 2 || cluster > self.max_cluster || at + width as u64 > self.fat_len {
            return Err(Errno::EIO);
        }
        let mut bytes = [0u8; 4];
        cache.read_at(self.fat_start + at, &mut bytes[..width])?;
        Ok(self.decode(cluster, &bytes))
    }

    /// Walks a chain from cluster `from` (the `from_index`th of its file) to the
    /// `index`th; a chain that ends early, loops or leaves the volume is `EIO`.
    pub fn walk<D: Sectors>(
        &self,
        cache: &mut BlockCache<D>,
        (from_index, from): (u64, u32),
        index: u64,
    ) -> Result<u32, Errno> {
        if index < from_index || index - from_index > u64::from(self.max_cluster) {
            return Err(Errno::EIO);
        }
        let mut cluster = from;
        for _ in from_index..index {
            match self.link(self.entry(cache, cluster)?) {
                Link::Next(next) => cluster = next,
                _ => return Err(Errno::EIO),
            }
        }
        Ok(cluster)
    }

    /// The bytes of FAT one unit of the free count covers.
    pub fn unit_bytes(&self) -> u64 {
        self.entry_span(UNIT_CLUSTERS).0
    }

    fn units(&self) -> u64 {
        (u64::from(self.max_cluster) + 1).div_ceil(u64::from(UNIT_CLUSTERS))
    }

    /// The free clusters of unit `unit`, from its bytes of FAT (`bytes` starts at the unit's
    /// first byte; entries it does not reach count as used).
    fn count_unit(&self, unit: u64, bytes: &[u8]) -> u32 {
        let first = (unit * u64::from(UNIT_CLUSTERS)) as u32;
        let base = self.entry_span(first).0;
        let mut free = 0;
        for cluster in first.max(2)..=(first + UNIT_CLUSTERS - 1).min(self.max_cluster) {
            let (at, width) = self.entry_span(cluster);
            let at = (at - base) as usize;
            if let Some(b) = bytes.get(at..at + width)
                && self.decode(cluster, b) == 0
            {
                free += 1;
            }
        }
        free
    }
}

/// The volume's free clusters, counted per unit of FAT (see the module's summary).
#[derive(Default)]
pub struct FreeCount {
    per_unit: Vec<u32>,
    total: u64,
}

/// The most bytes of FAT read in one request when counting.
const READ_BYTES: u64 = 64 << 10;

impl FreeCount {
    /// The number of free clusters now: counted whole the first time, then recounting only
    /// the units written since.
    pub fn get<D: Sectors>(&mut self, geo: &Geometry, cache: &mut BlockCache<D>) -> Result<u64, Errno> {
        let touched = cache.take_touched();
        if self.per_unit.is_empty() {
            let units = geo.units() as usize;
            self.per_unit.try_reserve_exact(units).map_err(|_| Errno::ENOSPC)?;
            self.per_unit.resize(units, 0);
            let per_read = (READ_BYTES / geo.unit_bytes()).max(1);
            let mut unit = 0;
            while unit < geo.units() {
                let count = per_read.min(geo.units() - unit);
                self.recount(geo, cache, unit, count)?;
                unit += count;
            }
        } else {
            for unit in touched {
                self.recount(geo, cache, unit, 1)?;
            }
        }
        Ok(self.total)
    }

    /// Counts `count` units from `first` again.
    fn recount<D: Sectors>(
        &mut self,
        geo: &Geometry,
        cache: &mut BlockCache<D>,
        first: u64,
        count: u64,
    ) -> Result<(), Errno> {
        let unit_bytes = geo.unit_bytes();
        let start = first * unit_bytes;
        let len = (count * unit_bytes).min(geo.fat_len.saturating_sub(start));
        let mut bytes = Vec::new();
        bytes.try_reserve_exact(len as usize).map_err(|_| Errno::ENOSPC)?;
        bytes.resize(len as usize, 0);
        cache.read_at(geo.fat_start + start, &mut bytes)?;
        for unit in first..first + count {
            let Some(slot) = self.per_unit.get_mut(unit as usize) else { continue };
            let at = ((unit - first) * unit_bytes).min(len) as usize;
            let end = (at + unit_bytes as usize).min(bytes.len());
            let free = geo.count_unit(unit, &bytes[at..end]);
            self.total = self.total - u64::from(*slot) + u64::from(free);
            *slot = free;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boot(sector: u16, per_cluster: u8, reserved: u16, fats: u8, root: u16, total: u32, per_fat: u32) -> [u8; 64] {
        let mut b = [0u8; 64];
        b[11..13].copy_from_slice(&sector.to_le_bytes());
        b[13] = per_cluster;
        b[14..16].copy_from_slice(&reserved.to_le_bytes());
        b[16] = fats;
        b[17..19].copy_from_slice(&root.to_le_bytes());
        b[32..36].copy_from_slice(&total.to_le_bytes());
        if root == 0 {
            b[36..40].copy_from_slice(&per_fat.to_le_bytes());
        } else {
            b[22..24].copy_from_slice(&(per_fat as u16).to_le_bytes());
        }
        b
    }

    #[test]
    fn geometry_of_each_kind() {
        // 2 MiB FAT12: 4096 sectors, 4 per cluster, 1 reserved, 2 FATs of 3, 512 root entries.
        let g = Geometry::parse(&boot(512, 4, 1, 2, 512, 4096, 3)).unwrap();
        assert_eq!(g.kind, Kind::Fat12);
        assert_eq!((g.fat_start, g.fat_len, g.data_start), (512, 1536, (1 + 6 + 32) * 512));
        assert_eq!(g.max_cluster, (4096 - 39) / 4 + 1);
        let g = Geometry::parse(&boot(512, 1, 32, 2, 0, 131_072, 1009)).unwrap();
        assert_eq!(g.kind, Kind::Fat32);
        assert_eq!(g.data_start, (32 + 2 * 1009) * 512);
        assert_eq!(g.cluster_offset(3), g.data_start + 512);
        assert_eq!(Geometry::parse(&boot(500, 1, 1, 2, 512, 4096, 3)), None);
        assert_eq!(Geometry::parse(&boot(512, 3, 1, 2, 512, 4096, 3)), None);
    }

    #[test]
    fn fat12_entries_pack_two_in_three_bytes() {
        let g = Geometry::parse(&boot(512, 4, 1, 2, 512, 4096, 3)).unwrap();
        // Entries 2 = 0x345, 3 = 0xfff, from bytes 3..6: 45 f3 ff.
        assert_eq!(g.decode(2, &[0x45, 0xf3]), 0x345);
        assert_eq!(g.decode(3, &[0xf3, 0xff]), 0xfff);
        assert_eq!(g.link(0xfff), Link::End);
        assert_eq!(g.link(0xff7), Link::Broken);
        assert_eq!(g.link(0), Link::Free);
        assert_eq!(g.link(5), Link::Next(5));
        assert_eq!(g.link(g.max_cluster + 1), Link::Broken);
        // Counting: a unit of 1536 bytes, clusters 0 and 1 never counted.
        let mut bytes = alloc::vec![0u8; 1536];
        bytes[3] = 0x45;
        bytes[4] = 0xf3;
        bytes[5] = 0xff;
        assert_eq!(g.count_unit(0, &bytes), g.max_cluster - 1 - 2, "clusters 2 ..= max, less the two used");
        // A unit cut short: the entries it does not reach are not free.
        assert_eq!(g.count_unit(0, &bytes[..600]), 400 - 4);
    }
}
