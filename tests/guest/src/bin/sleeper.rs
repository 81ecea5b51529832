//! Says that it sleeps, then sleeps: SECS seconds and exits 0, or forever when given no SECS
//! (the harness's job timeout must then stop it).

use std::time::Duration;

fn main() {
    match std::env::args().nth(1) {
        Some(secs) => {
            let secs: u64 = secs.parse().expect("SECS is a whole number of seconds");
            println!("sleeping for {secs} s");
            std::thread::sleep(Duration::from_secs(secs));
            println!("woke up");
        }
        None => {
            println!("sleeping forever");
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
    }
}
