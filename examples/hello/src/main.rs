//! An ordinary std program: it prints the same on Linux and on Xen.

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::Arc;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let who = std::env::var("HELLO_NAME").unwrap_or_else(|_| "world".to_string());
    println!("Hello, {who}!");
    println!("args: {args:?}");

    let mut words: Vec<&str> = "the quick brown fox jumps over the lazy dog".split(' ').collect();
    words.sort_unstable();
    words.dedup();
    println!("sorted: {}", words.join(" "));

    let mut counts: HashMap<char, usize> = HashMap::new();
    for c in "mississippi".chars() {
        *counts.entry(c).or_default() += 1;
    }
    let ordered: BTreeMap<char, usize> = counts.into_iter().collect();
    println!("letters: {ordered:?}");

    let boxed: Box<[u64]> = (1..=20).map(|n| n * n).collect();
    let shared = Rc::new(boxed.iter().sum::<u64>());
    let threadsafe = Arc::new(format!("{:.6}", (2.0f64).sqrt() * std::f64::consts::PI));
    println!("sum of squares: {} (rc count {})", shared, Rc::strong_count(&shared));
    println!("sqrt(2)*pi = {threadsafe}, e^1.5 = {:.4}, ln(10) = {:.4}", 1.5f64.exp(), 10f64.ln());

    let evens: Vec<u32> = (0..30).filter(|n| n % 2 == 0).map(|n| n / 2).rev().take(5).collect();
    println!("iterators: {evens:?}");

    eprintln!("this line goes to stderr");
    let code = args.first().and_then(|a| a.parse().ok()).unwrap_or(0);
    std::process::exit(code);
}
