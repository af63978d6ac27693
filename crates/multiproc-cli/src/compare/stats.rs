//! Sampling and summaries: medians with their spread.

use std::time::{Duration, Instant};

/// The summary of a set of samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Summary {
    /// The median.
    pub(crate) median: f64,
    /// The smallest sample.
    pub(crate) min: f64,
    /// The largest sample.
    pub(crate) max: f64,
    /// The 25th percentile.
    pub(crate) p25: f64,
    /// The 75th percentile.
    pub(crate) p75: f64,
    /// How many samples.
    pub(crate) n: u32,
}

impl Summary {
    /// Summarizes `samples`; `None` if there are none.
    pub(crate) fn of(samples: &[f64]) -> Option<Summary> {
        if samples.is_empty() {
            return None;
        }
        let mut v = samples.to_vec();
        v.sort_by(f64::total_cmp);
        let pct = |p: f64| {
            let at = p * (v.len() - 1) as f64;
            let (lo, hi) = (at.floor() as usize, at.ceil() as usize);
            v[lo] + (v[hi] - v[lo]) * (at - lo as f64)
        };
        Some(Summary {
            median: pct(0.5),
            p25: pct(0.25),
            p75: pct(0.75),
            min: v[0],
            max: v[v.len() - 1],
            n: u32::try_from(v.len()).unwrap_or(u32::MAX),
        })
    }
}

/// Calls `f` (which returns one sample) until `budget` is spent, at least `min_n` and at
/// most `max_n` times, after `warmup` calls whose samples are dropped.
///
/// # Errors
///
/// The first error `f` returns.
pub(crate) fn sample<E>(
    budget: Duration,
    warmup: u32,
    min_n: u32,
    max_n: u32,
    mut f: impl FnMut() -> Result<f64, E>,
) -> Result<Summary, E> {
    for _ in 0..warmup {
        f()?;
    }
    let start = Instant::now();
    let mut samples = Vec::new();
    while samples.len() < max_n as usize
        && (samples.len() < min_n as usize || start.elapsed() < budget)
    {
        samples.push(f()?);
    }
    Ok(Summary::of(&samples).expect("min_n >= 1 or the budget allows one sample"))
}

/// Microseconds in `d`.
pub(crate) fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Milliseconds in `d`.
pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Formats `v` with about three significant digits.
pub(crate) fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".to_owned()
    } else if a >= 1000.0 || (v.fract() == 0.0 && a < 1e15) {
        let s = format!("{v:.0}");
        group_thousands(&s)
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        let s = format!("{v:.3}");
        // 0.9996 rounds up to "1.000": show it as 1.00, like other values in [1, 10).
        if s.trim_start_matches('-').starts_with("1.") {
            format!("{v:.2}")
        } else {
            s
        }
    }
}

fn group_thousands(s: &str) -> String {
    let (sign, digits) = s.strip_prefix('-').map_or(("", s), |d| ("-", d));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(Summary::of(&[3.0, 1.0, 2.0]).unwrap().median, 2.0);
        assert_eq!(Summary::of(&[4.0, 1.0, 2.0, 3.0]).unwrap().median, 2.5);
        assert!(Summary::of(&[]).is_none());
        let s = Summary::of(&[1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
        assert_eq!((s.p25, s.p75, s.min, s.max, s.n), (2.0, 4.0, 1.0, 5.0, 5));
    }

    #[test]
    fn numbers_format_with_three_digits() {
        assert_eq!(fmt_num(1234567.0), "1,234,567");
        assert_eq!(fmt_num(123.4), "123");
        assert_eq!(fmt_num(12.34), "12.3");
        assert_eq!(fmt_num(1.234), "1.23");
        assert_eq!(fmt_num(0.01234), "0.012");
        assert_eq!(fmt_num(3.0), "3");
        assert_eq!(fmt_num(0.9999), "1.00");
        assert_eq!(fmt_num(40.0), "40");
    }
}
