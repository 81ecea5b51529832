//! Exits with the status given as its first argument.

fn main() {
    let code: i32 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(0);
    println!("exiting with {code}");
    std::process::exit(code);
}
