//! Summaries of repeated measurements and how far a figure is from its target.

/// The minimum, median and maximum of a set of measurements.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// How many values there were.
    pub n: usize,
    /// The smallest.
    pub min: f64,
    /// The median (the mean of the two middle values for an even count).
    pub median: f64,
    /// The largest.
    pub max: f64,
}

/// Summarizes `values`; `None` when there are none.
pub fn summarize(values: &[f64]) -> Option<Summary> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 };
    Some(Summary { n, min: v[0], median, max: v[n - 1] })
}

/// A percentage with one decimal below 10 %, none above.
pub fn percent(fraction: f64) -> String {
    let p = fraction * 100.0;
    if p.abs() < 10.0 {
        format!("{p:.1}%")
    } else {
        format!("{p:.0}%")
    }
}

/// How far `value` is from the target "at most `target`".
pub fn at_most(value: f64, target: f64) -> String {
    if value <= target {
        format!("met, {} under", percent(1.0 - value / target))
    } else {
        format!("{} over", percent(value / target - 1.0))
    }
}

/// How far the ratio `value / base` is from the target "at most `limit` times".
pub fn ratio_at_most(value: f64, base: f64, limit: f64) -> (f64, String) {
    let ratio = value / base;
    let distance = if ratio <= limit {
        format!("ratio {ratio:.2}: met, {} under", percent(1.0 - ratio / limit))
    } else {
        format!("ratio {ratio:.2}: {} over", percent(ratio / limit - 1.0))
    };
    (ratio, distance)
}

/// How far the ratio `value / base` is from the target "at least `limit` times".
pub fn ratio_at_least(value: f64, base: f64, limit: f64) -> (f64, String) {
    let ratio = value / base;
    let distance = if ratio >= limit {
        format!("ratio {ratio:.2}: met, {} above", percent(ratio / limit - 1.0))
    } else {
        format!("ratio {ratio:.2}: {} below", percent(1.0 - ratio / limit))
    };
    (ratio, distance)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(summarize(&[]), None);
        let s = summarize(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.n, s.min, s.median, s.max), (3, 1.0, 2.0, 3.0));
        let s = summarize(&[4.0, 1.0, 2.0, 3.0]).unwrap();
        assert_eq!(s.median, 2.5);
        assert_eq!(summarize(&[f64::NAN, 5.0]).unwrap().n, 1);
    }

    #[test]
    fn distances() {
        assert_eq!(at_most(233.4, 200.0), "17% over");
        assert_eq!(at_most(190.0, 200.0), "met, 5.0% under");
        assert_eq!(at_most(4.0, 2.0), "100% over");
        assert_eq!(at_most(2.0, 2.0), "met, 0.0% under");
        assert_eq!(ratio_at_most(1.32, 1.0, 1.1).1, "ratio 1.32: 20% over");
        assert_eq!(ratio_at_most(1.0, 1.0, 1.1).1, "ratio 1.00: met, 9.1% under");
        assert_eq!(ratio_at_least(9.0, 2.0, 3.0).1, "ratio 4.50: met, 50% above");
        assert_eq!(ratio_at_least(5.0, 2.0, 3.0).1, "ratio 2.50: 17% below");
        assert_eq!(ratio_at_least(1.0, 1.0, 1.0).1, "ratio 1.00: met, 0.0% above");
    }
}
