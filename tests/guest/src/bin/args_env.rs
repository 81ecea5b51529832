//! Prints its arguments and environment, one per line, exactly.

fn main() {
    for (i, arg) in std::env::args_os().enumerate() {
        println!("arg {i}: {arg:?}");
    }
    for (name, value) in std::env::vars_os() {
        println!("env {name:?}={value:?}");
    }
    println!("HOME is {:?}", std::env::var("HOME"));
    unsafe { std::env::set_var("ADDED", "yes") };
    unsafe { std::env::remove_var("REMOVED") };
    println!("ADDED is {:?}, REMOVED is {:?}", std::env::var("ADDED"), std::env::var("REMOVED"));
}
