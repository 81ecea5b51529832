//! Reads stdin line by line and echoes each line until "quit": input typed into the
//! console (`xl console`, or the test's driver) reaches the program.

use std::io::BufRead;

fn main() {
    println!("ready");
    let stdin = std::io::stdin();
    let mut lines = 0;
    for line in stdin.lock().lines() {
        let line = line.unwrap();
        lines += 1;
        println!("got: {line:?}");
        if line == "quit" {
            break;
        }
    }
    println!("{lines} lines");
}
