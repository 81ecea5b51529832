//! A small library whose tests pass, fail, panic on purpose or are ignored.

/// Adds two numbers, saturating.
pub fn add(a: u32, b: u32) -> u32 {
    a.saturating_add(b)
}

/// Parses a port number.
pub fn port(text: &str) -> Result<u16, std::num::ParseIntError> {
    text.trim().parse()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds() {
        assert_eq!(add(2, 2), 4);
    }

    #[test]
    fn saturates() {
        assert_eq!(add(u32::MAX, 1), u32::MAX);
    }

    #[test]
    fn parses_ports() {
        assert_eq!(port(" 8080\n"), Ok(8080));
        assert!(port("65536").is_err());
    }

    #[test]
    fn fails_on_purpose() {
        assert_eq!(add(2, 2), 5, "arithmetic is not negotiable");
    }

    #[test]
    #[should_panic(expected = "overflow")]
    fn panics_as_expected() {
        let _ = [1u8; 4].get(9).expect("overflow");
    }

    #[test]
    #[should_panic(expected = "a different message")]
    fn panics_with_the_wrong_message() {
        panic!("overflow");
    }

    #[test]
    #[ignore = "slow"]
    fn ignored() {}

    #[test]
    fn threads_inside_a_test() {
        let total: u32 = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4).map(|i| s.spawn(move || add(i, i))).collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(total, 12);
    }
}
