//! Symbolizes addresses of a small Rust program built here (static, not
//! PIE, like a guest image): demangled names, files, lines and inlined
//! frames.

use std::path::{Path, PathBuf};
use std::process::Command;

use object::{Object as _, ObjectSymbol as _};
use xen_runner::crash::Symbolize as _;
use xen_runner::symbolize::ImageSymbols;

const SOURCE: &str = r#"
#[inline(never)]
pub fn deep_function(x: u64) -> u64 {
    std::hint::black_box(x).wrapping_mul(3)
}

#[inline(always)]
fn inlined_helper(x: u64) -> u64 {
    deep_function(x) + 1
}

#[inline(never)]
pub fn caller(x: u64) -> u64 {
    inlined_helper(x) * 2
}

fn main() {
    println!("{}", caller(std::env::args().count() as u64));
}
"#;

/// Builds the program with the given rustc options.
fn build(dir: &Path, name: &str, opts: &[&str]) -> PathBuf {
    let src = dir.join("fixture.rs");
    std::fs::write(&src, SOURCE).unwrap();
    let out = dir.join(name);
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let status = Command::new(rustc)
        .args(["--edition", "2021", "-g", "-C", "relocation-model=static"])
        .args(["--crate-name", "fixture"])
        .args(opts)
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .status()
        .expect("running rustc");
    assert!(status.success());
    out
}

/// Returns the address of the function whose mangled name holds `part`.
fn address_of(image: &Path, part: &str) -> u64 {
    let data = std::fs::read(image).unwrap();
    let file = object::File::parse(&*data).unwrap();
    file.symbols()
        .find(|s| s.name().is_ok_and(|n| n.contains(part) && n.contains("fixture")))
        .unwrap_or_else(|| panic!("no symbol {part}"))
        .address()
}

#[test]
fn names_a_rust_function_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let image = build(dir.path(), "debug", &["-C", "opt-level=0"]);
    let symbols = ImageSymbols::open(&image).unwrap();
    let address = address_of(&image, "deep_function");
    assert!(symbols.is_code(address));

    let frames = symbols.frames(address);
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0].function.as_deref(), Some("fixture::deep_function"));
    assert!(frames[0].file.as_deref().unwrap().ends_with("fixture.rs"), "{frames:?}");
    assert_eq!(frames[0].line, Some(3));
}

#[test]
fn shows_inlined_frames() {
    let dir = tempfile::tempdir().unwrap();
    let image = build(dir.path(), "release", &["-C", "opt-level=2"]);
    let symbols = ImageSymbols::open(&image).unwrap();
    let caller = address_of(&image, "caller");
    // Somewhere in caller's first bytes lies the inlined helper's call.
    let names: Vec<String> =
        (caller..caller + 64).flat_map(|a| symbols.frames(a)).filter_map(|f| f.function).collect();
    assert!(names.iter().any(|n| n == "fixture::inlined_helper"), "{names:?}");
    assert!(names.iter().any(|n| n == "fixture::caller"), "{names:?}");
}

#[test]
fn falls_back_to_the_symbol_table() {
    let dir = tempfile::tempdir().unwrap();
    let image = build(dir.path(), "stripped", &["-C", "opt-level=0", "-C", "strip=debuginfo"]);
    let symbols = ImageSymbols::open(&image).unwrap();
    let address = address_of(&image, "deep_function");
    let frames = symbols.frames(address + 1);
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0].function.as_deref(), Some("fixture::deep_function+0x1"));
}
