//! What the runner's integration tests share.

use std::path::Path;

/// Writes the smallest file that passes for a Xen guest image: an x86_64
/// ELF header and one PT_NOTE segment with a note owned by "Xen".
pub fn write_tiny_image(path: &Path) {
    let mut elf = Vec::new();
    elf.extend_from_slice(b"\x7fELF\x02\x01\x01\x00");
    elf.extend_from_slice(&[0; 8]);
    elf.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    elf.extend_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    elf.extend_from_slice(&1u32.to_le_bytes());
    elf.extend_from_slice(&0x400000u64.to_le_bytes()); // e_entry
    elf.extend_from_slice(&64u64.to_le_bytes()); // e_phoff
    elf.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
    elf.extend_from_slice(&0u32.to_le_bytes());
    for half in [64u16, 56, 1, 64, 0, 0] {
        elf.extend_from_slice(&half.to_le_bytes());
    }
    let note_at = elf.len() as u64 + 56;
    let mut note = Vec::new();
    for word in [4u32, 8, 6] {
        note.extend_from_slice(&word.to_le_bytes());
    }
    note.extend_from_slice(b"Xen\0fixture\0");
    elf.extend_from_slice(&4u32.to_le_bytes()); // PT_NOTE
    elf.extend_from_slice(&4u32.to_le_bytes());
    for value in [note_at, 0, 0, note.len() as u64, note.len() as u64, 4] {
        elf.extend_from_slice(&value.to_le_bytes());
    }
    elf.extend_from_slice(&note);
    std::fs::write(path, elf).unwrap();
}
