//! Catches one panic, then panics in main (exit status 101), unless told not to.

fn main() {
    let caught = std::panic::catch_unwind(|| {
        let v: Vec<u32> = Vec::new();
        v[3]
    });
    println!("caught: {}", caught.is_err());
    let payload = std::panic::catch_unwind(|| std::panic::panic_any(17u8)).unwrap_err();
    println!("payload: {:?}", payload.downcast_ref::<u8>());
    if std::env::args().nth(1).as_deref() != Some("no-main-panic") {
        panic!("main gives up: {}", 6 * 7);
    }
}
