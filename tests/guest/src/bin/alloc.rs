//! Allocates and frees 256 MiB in total in blocks of varied sizes, checking every block.

fn main() {
    let mut total = 0usize;
    let mut live: Vec<Vec<u8>> = Vec::new();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut round = 0u32;
    while total < 256 << 20 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let size = match seed % 4 {
            0 => (seed >> 8) as usize % 64 + 1,
            1 => (seed >> 8) as usize % 4096 + 1,
            2 => (seed >> 8) as usize % (256 << 10) + 1,
            _ => (seed >> 8) as usize % (4 << 20) + 1,
        };
        let fill = (round % 251) as u8;
        live.push(vec![fill; size]);
        total += size;
        round += 1;
        if live.len() > 8 {
            let block = live.remove((seed >> 40) as usize % live.len());
            assert!(block.iter().all(|&b| b == block[0]), "a block changed under us");
        }
    }
    for block in &live {
        assert!(block.iter().all(|&b| b == block[0]), "a block changed under us");
    }
    println!("allocated {} MiB in {round} blocks", total >> 20);
}
