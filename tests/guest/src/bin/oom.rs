//! Allocates until memory runs out: std reports it and aborts.

fn main() {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(vec![1u8; 1 << 20]);
        if hoard.len() % 16 == 0 {
            println!("holding {} MiB", hoard.len());
        }
    }
}
