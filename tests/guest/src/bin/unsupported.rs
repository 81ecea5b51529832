//! Features the platform lacks yet return errors (or panic with std's message); none hangs.

fn main() {
    let link = std::fs::hard_link("/tmp", "/tmp2").unwrap_err();
    println!("fs: {:?}", link.kind());
    let process = std::process::Command::new("ls").status().map(|_| ()).unwrap_err();
    println!("process: {:?}", process.kind());
    println!("parallelism: {:?}", std::thread::available_parallelism().map(|n| n.get()));
    let mut line = String::new();
    println!("stdin: {:?}", std::io::stdin().read_line(&mut line).map(|n| (n, line.clone())));
}
