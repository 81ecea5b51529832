//! Symbolizes guest addresses from the image's DWARF and symbol table.
//!
//! The image is a static ELF that Xen loads at its link addresses, so a
//! guest address is an address in the file: no relocation is needed.

use std::path::{Path, PathBuf};

use crate::crash::{SymbolFrame, Symbolize};

/// The debug information of one image.
pub struct ImageSymbols {
    loader: addr2line::Loader,
    /// Address ranges of the image's code sections.
    code: Vec<std::ops::Range<u64>>,
    /// Prefix removed from file names to keep them short.
    base: Option<PathBuf>,
}

impl ImageSymbols {
    /// Loads the image's DWARF (if any) and symbol table.
    pub fn open(image: &Path) -> Result<Self, String> {
        let loader = addr2line::Loader::new(image).map_err(|e| e.to_string())?;
        let code = code_ranges(image).map_err(|e| e.to_string())?;
        Ok(Self { loader, code, base: std::env::current_dir().ok() })
    }

    /// Turns a DWARF file name into one relative to the current directory
    /// when it lies below it.
    fn short_file(&self, file: &str) -> String {
        let path = Path::new(file);
        match self.base.as_deref().and_then(|base| path.strip_prefix(base).ok()) {
            Some(rel) => rel.display().to_string(),
            None => file.to_owned(),
        }
    }

    /// Returns the DWARF frames at an address, innermost first.
    fn dwarf_frames(&self, address: u64) -> Vec<SymbolFrame> {
        let mut out = Vec::new();
        let Ok(mut frames) = self.loader.find_frames(address) else {
            return out;
        };
        while let Ok(Some(frame)) = frames.next() {
            let function = frame
                .function
                .as_ref()
                .and_then(|name| name.demangle().ok())
                .map(|name| name.into_owned());
            let (file, line) = match frame.location {
                Some(loc) => (loc.file.map(|f| self.short_file(f)), loc.line),
                None => (None, None),
            };
            out.push(SymbolFrame { function, file, line });
        }
        out
    }

    /// Returns `symbol+0xoff` from the symbol table.
    fn symbol(&self, address: u64) -> Option<String> {
        let symbol = self.loader.find_symbol_info(address)?;
        let name = format!("{:#}", rustc_demangle::demangle(symbol.name()));
        match address - symbol.address() {
            0 => Some(name),
            offset => Some(format!("{name}+{offset:#x}")),
        }
    }
}

/// Returns the address ranges of the sections that hold code.
fn code_ranges(image: &Path) -> Result<Vec<std::ops::Range<u64>>, Box<dyn std::error::Error>> {
    use object::{Object as _, ObjectSection as _};

    let data = std::fs::read(image)?;
    let file = object::File::parse(&*data)?;
    Ok(file
        .sections()
        .filter(|s| s.kind() == object::SectionKind::Text && s.size() > 0)
        .map(|s| s.address()..s.address() + s.size())
        .collect())
}

impl Symbolize for ImageSymbols {
    fn is_code(&self, address: u64) -> bool {
        self.code.iter().any(|range| range.contains(&address))
    }

    fn frames(&self, address: u64) -> Vec<SymbolFrame> {
        let mut frames = self.dwarf_frames(address);
        let named = frames.iter().any(|f| f.function.is_some());
        if !named {
            // No DWARF function here: fall back to the symbol table, keeping
            // a line number DWARF may still have given.
            let symbol = self.symbol(address);
            match frames.first_mut() {
                Some(first) => first.function = symbol,
                None if symbol.is_some() => {
                    frames.push(SymbolFrame { function: symbol, ..SymbolFrame::default() })
                }
                None => {}
            }
        }
        frames
    }
}
