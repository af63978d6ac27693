//! Interleaved rounds, and what they say.
//!
//! On a busy machine the load drifts while a section runs: measured one after the other,
//! two contenders see different machines, and the comparison measures the drift. So a
//! section measures in rounds, and each round runs every contender back to back, in an
//! order rotated from round to round (AB, BA, AB… for two; ABC, BCA, CAB… for three), so
//! that a drift hits every contender alike and none is always first or last.
//!
//! Each contender's per-round figures are then screened: a zero, negative or non-finite
//! figure is invalid, and with five rounds or more a figure far outside the others (beyond
//! Tukey's "far out" fences, 3 interquartile ranges past the quartiles) is an outlier;
//! both are left out, and say so. A contender's figure is the median of its kept rounds,
//! and its range is their **min..max**. Against the group's baseline each contender also
//! gets paired ratios: contender / baseline within the same round, where both were kept,
//! with the median and min..max of those ratios.
//!
//! Everything here except [`interleave`] is a pure function of the figures, so the unit
//! tests feed it synthetic rounds.

use super::context::Ctx;
use super::model::{Flag, FlagKind, Metric, Ratio, Worker};
use super::stats::{fmt_num, Summary};

/// How many rounds a Tukey fence needs before it can call a round an outlier.
pub(crate) const MIN_ROUNDS_FOR_OUTLIERS: usize = 5;
/// How many interquartile ranges past a quartile a figure is "far out".
const FAR_OUT: f64 = 3.0;
/// The smallest interquartile range the fences use, as a share of the median: identical
/// rounds must not make every slightly different one an outlier.
const MIN_IQR_SHARE: f64 = 0.25;

/// The order of `k` contenders in round `round` (0-based): 0..k rotated left by `round`.
pub(crate) fn order(round: usize, k: usize) -> impl Iterator<Item = usize> {
    (0..k).map(move |i| (i + round) % k)
}

/// One contender of an interleaved measurement: its name (for the progress display) and
/// a closure that measures it once, returning this round's figure.
pub(crate) struct Contender<'a> {
    /// Shown while it runs.
    pub(crate) name: String,
    /// Measures one round.
    pub(crate) measure: Box<dyn FnMut() -> anyhow::Result<f64> + 'a>,
}

impl std::fmt::Debug for Contender<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Contender")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<'a> Contender<'a> {
    /// A contender named `name` measured by `measure`.
    pub(crate) fn new(
        name: impl Into<String>,
        measure: impl FnMut() -> anyhow::Result<f64> + 'a,
    ) -> Contender<'a> {
        Contender {
            name: name.into(),
            measure: Box::new(measure),
        }
    }
}

/// One contender's figures over the rounds.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Rounds {
    /// The figure of each round; `None` where it failed or was not run.
    pub(crate) values: Vec<Option<f64>>,
    /// The first failure, if any (the contender is not run again after it).
    pub(crate) error: Option<String>,
}

/// Runs `rounds` rounds of `contenders` in rotated order (see [`order`]); `what` names
/// the section in the progress display. A contender that fails is not run again.
pub(crate) fn interleave(
    ctx: &Ctx<'_>,
    what: &str,
    rounds: usize,
    contenders: &mut [Contender<'_>],
) -> Vec<Rounds> {
    let k = contenders.len();
    let mut out = vec![
        Rounds {
            values: vec![None; rounds],
            error: None,
        };
        k
    ];
    for round in 0..rounds {
        for i in order(round, k) {
            if out[i].error.is_some() {
                continue;
            }
            let c = &mut contenders[i];
            ctx.step(&format!(
                "{what}: {} (round {}/{rounds})",
                c.name,
                round + 1
            ));
            match (c.measure)() {
                Ok(v) => out[i].values[round] = Some(v),
                Err(e) => out[i].error = Some(format!("failed: {e:#}")),
            }
        }
    }
    out
}

/// What became of one round's figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fate {
    /// Used.
    Kept,
    /// Not measured (the contender failed).
    Missing,
    /// Zero, negative or not finite: a figure that cannot be a time, rate or ratio.
    Invalid,
    /// Above the most the figure can be (see [`Ceiling`]), by more than [`ROUND_SLACK`].
    AboveCeiling,
    /// Far outside the other rounds.
    Outlier,
}

/// The most a figure can be, and what sets it: a speedup cannot exceed the number of
/// workers that have a CPU each.
#[derive(Debug, Clone)]
pub(crate) struct Ceiling {
    /// The largest possible figure.
    pub(crate) max: f64,
    /// What makes it the largest, completing "the most …" (e.g. "2 workers on 2 CPUs can
    /// reach").
    pub(crate) why: String,
}

/// How far above a [`Ceiling`] one round may be before it counts as impossible: the
/// jitter of a clock read and a wake-up, not a real gain.
pub(crate) const ROUND_SLACK: f64 = 0.05;

/// Screens per-round figures against each other and an optional ceiling: see the module
/// docs.
pub(crate) fn screen(values: &[Option<f64>], ceiling: Option<f64>) -> Vec<Fate> {
    let above = |v: f64| ceiling.is_some_and(|c| v > c * (1.0 + ROUND_SLACK));
    let plausible: Vec<f64> = values
        .iter()
        .flatten()
        .copied()
        .filter(|v| v.is_finite() && *v > 0.0 && !above(*v))
        .collect();
    let fences = (plausible.len() >= MIN_ROUNDS_FOR_OUTLIERS)
        .then(|| Summary::of(&plausible))
        .flatten()
        .map(|s| {
            let iqr = (s.p75 - s.p25).max(MIN_IQR_SHARE * s.median.abs());
            (s.p25 - FAR_OUT * iqr, s.p75 + FAR_OUT * iqr)
        });
    values
        .iter()
        .map(|v| match v {
            None => Fate::Missing,
            Some(v) if !v.is_finite() || *v <= 0.0 => Fate::Invalid,
            Some(v) if above(*v) => Fate::AboveCeiling,
            Some(v) => match fences {
                Some((lo, hi)) if *v < lo || *v > hi => Fate::Outlier,
                _ => Fate::Kept,
            },
        })
        .collect()
}

/// The figures of `values` whose fate is `want`, `None` elsewhere.
fn only(values: &[Option<f64>], fates: &[Fate], want: Fate) -> Vec<Option<f64>> {
    values
        .iter()
        .zip(fates)
        .map(|(v, f)| v.filter(|_| *f == want))
        .collect()
}

/// Per-round ratios `a / b` where both rounds were kept.
pub(crate) fn paired_ratios(a: &[Option<f64>], b: &[Option<f64>]) -> Vec<Option<f64>> {
    let ka = only(a, &screen(a, None), Fate::Kept);
    let kb = only(b, &screen(b, None), Fate::Kept);
    ka.iter()
        .zip(&kb)
        .map(|(x, y)| match (x, y) {
            (Some(x), Some(y)) => Some(x / y),
            _ => None,
        })
        .collect()
}

/// The median and min..max of the present figures, and how many there are.
pub(crate) fn spread(values: &[Option<f64>]) -> Option<Summary> {
    Summary::of(&values.iter().flatten().copied().collect::<Vec<_>>())
}

/// A metric from per-round figures: see [`bounded`]; no ceiling.
pub(crate) fn metric(
    id: &str,
    label: impl Into<String>,
    worker: Worker,
    unit: &str,
    r: &Rounds,
) -> Metric {
    bounded(id, label, worker, unit, r, None)
}

/// A metric from per-round figures: value = median of the kept rounds, range (min..max,
/// and the quartiles) over them; the rounds left out are listed and flagged.
///
/// With a `ceiling`, a round above it (by more than [`ROUND_SLACK`]) is left out, and the
/// figure is flagged impossible when even its kept range lies wholly above the ceiling
/// (beyond this run's noise) or every round was above it; in that last case the value is
/// the median of those rounds, shown but flagged. A median above the ceiling with a range
/// reaching below it is noted, not flagged. With no usable round the value is missing:
/// the first failure, or why every round was left out.
pub(crate) fn bounded(
    id: &str,
    label: impl Into<String>,
    worker: Worker,
    unit: &str,
    r: &Rounds,
    ceiling: Option<&Ceiling>,
) -> Metric {
    let label = label.into();
    let fates = screen(&r.values, ceiling.map(|c| c.max));
    let excluded: Vec<u32> = fates
        .iter()
        .enumerate()
        .filter(|(_, f)| !matches!(f, Fate::Kept | Fate::Missing))
        .map(|(i, _)| u32::try_from(i).unwrap_or(u32::MAX))
        .collect();
    let listed = |want: Fate| -> (usize, String) {
        let vs: Vec<String> = only(&r.values, &fates, want)
            .into_iter()
            .flatten()
            .map(fmt_num)
            .collect();
        (vs.len(), vs.join(", "))
    };
    let (invalid, _) = listed(Fate::Invalid);
    let (outliers, far) = listed(Fate::Outlier);
    let (above, high) = listed(Fate::AboveCeiling);
    let kept = spread(&only(&r.values, &fates, Fate::Kept));
    let mut flags = Vec::new();
    let mut why = Vec::new();
    if invalid > 0 {
        why.push(format!("{invalid} zero or negative"));
    }
    if outliers > 0 {
        why.push(format!("{outliers} far outside the others ({far} {unit})"));
    }
    if let (Some(c), true) = (ceiling, above > 0 && kept.is_some()) {
        why.push(format!(
            "{above} above {} {unit}, the most {} ({high} {unit}): impossible",
            fmt_num(c.max),
            c.why
        ));
    }
    if !why.is_empty() {
        flags.push(Flag {
            kind: FlagKind::RoundsExcluded,
            text: format!(
                "{} of {} rounds left out: {}",
                excluded.len(),
                r.values.len(),
                why.join("; ")
            ),
        });
    }
    let from = |s: Summary, label: String| Metric {
        min: Some(s.min),
        max: Some(s.max),
        p25: Some(s.p25),
        p75: Some(s.p75),
        samples: s.n,
        ..Metric::value(id, label, worker, s.median)
    };
    let mut m = match (kept, ceiling) {
        (Some(s), Some(c)) if s.min > c.max => {
            flags.push(Flag {
                kind: FlagKind::Impossible,
                text: format!(
                    "{} {unit}, every kept round at least {} {unit}, is above {} {unit}, the \
                     most {}: a measurement artifact, left out of the advice",
                    fmt_num(s.median),
                    fmt_num(s.min),
                    fmt_num(c.max),
                    c.why
                ),
            });
            from(s, label)
        }
        (Some(s), _) => from(s, label),
        (None, Some(c)) if above > 0 => {
            flags.push(Flag {
                kind: FlagKind::Impossible,
                text: format!(
                    "every round ({high} {unit}) is above {} {unit}, the most {}: a \
                     measurement artifact, left out of the advice",
                    fmt_num(c.max),
                    c.why
                ),
            });
            let s = spread(&only(&r.values, &fates, Fate::AboveCeiling))
                .expect("a round above the ceiling");
            from(s, label)
        }
        (None, _) => {
            let why = r.error.clone().unwrap_or_else(|| {
                if invalid > 0 {
                    flags.push(Flag {
                        kind: FlagKind::Impossible,
                        text: "every round gave a zero or negative figure".into(),
                    });
                    "every round gave a zero or negative figure".into()
                } else {
                    "not measured".into()
                }
            });
            Metric::missing(id, label, worker, why)
        }
    };
    if let (Some(c), Some(v), None) = (ceiling, m.value, m.impossible()) {
        if v > c.max {
            m.note = Some(format!(
                "the median is above {} {unit}, the most {}, but within this run's range",
                fmt_num(c.max),
                c.why
            ));
        }
    }
    Metric {
        rounds: r.values.clone(),
        excluded_rounds: excluded,
        flags,
        ..m
    }
}

/// Sets [`Metric::ratio`] of every metric of `metrics` against the one with id `to`,
/// pairing their rounds.
pub(crate) fn pair_with(metrics: &mut [Metric], to: &str) {
    let Some(base) = metrics
        .iter()
        .find(|m| m.id == to)
        .map(|m| m.rounds.clone())
    else {
        return;
    };
    for m in metrics.iter_mut() {
        let ratios = paired_ratios(&m.rounds, &base);
        m.ratio = spread(&ratios).map(|s| Ratio {
            to: to.to_owned(),
            median: s.median,
            min: s.min,
            max: s.max,
            rounds: s.n,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn some(v: &[f64]) -> Vec<Option<f64>> {
        v.iter().copied().map(Some).collect()
    }

    #[test]
    fn order_rotates_every_round() {
        let o = |r, k| order(r, k).collect::<Vec<_>>();
        assert_eq!([o(0, 2), o(1, 2), o(2, 2)], [[0, 1], [1, 0], [0, 1]]);
        assert_eq!(
            [o(0, 3), o(1, 3), o(2, 3)],
            [[0, 1, 2], [1, 2, 0], [2, 0, 1]]
        );
        // Over k rounds every contender is in every position once.
        for k in 1..6 {
            for pos in 0..k {
                let mut seen: Vec<usize> = (0..k).map(|r| o(r, k)[pos]).collect();
                seen.sort_unstable();
                assert_eq!(seen, (0..k).collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn a_round_far_outside_the_others_is_left_out() {
        // A pipe round trip of 6 us in most rounds and 131 us in one.
        let v = some(&[6.1, 5.9, 6.3, 131.0, 6.0, 6.2]);
        let fates = screen(&v, None);
        assert_eq!(fates[3], Fate::Outlier);
        assert_eq!(fates.iter().filter(|f| **f == Fate::Kept).count(), 5);
        let m = metric(
            "processes_pipe",
            "pipe",
            Worker::Process,
            "us",
            &Rounds {
                values: v,
                error: None,
            },
        );
        assert_eq!(m.excluded_rounds, [3]);
        assert_eq!((m.value, m.max, m.samples), (Some(6.1), Some(6.3), 5));
        assert_eq!(m.flags.len(), 1);
        assert_eq!(m.flags[0].kind, FlagKind::RoundsExcluded);
        assert!(m.flags[0].text.contains("131 us"), "{}", m.flags[0].text);
        assert!(m.usable());
    }

    #[test]
    fn a_bimodal_spread_is_kept_and_shows_in_the_range() {
        // Half the rounds 6 us, half 131 us: no round is "far out", the range says it all.
        let v = some(&[6.0, 131.0, 6.5, 129.0, 6.2, 133.0]);
        assert!(screen(&v, None).iter().all(|f| *f == Fate::Kept));
        // Too few rounds for fences: nothing is an outlier.
        assert!(screen(&some(&[1.0, 1.0, 100.0]), None)
            .iter()
            .all(|f| *f == Fate::Kept));
        // Identical rounds do not make a slightly different one an outlier.
        assert!(screen(&some(&[10.0, 10.0, 10.0, 10.0, 10.5]), None)
            .iter()
            .all(|f| *f == Fate::Kept));
    }

    #[test]
    fn zero_negative_and_missing_rounds() {
        let v = vec![
            Some(2.0),
            Some(0.0),
            None,
            Some(-1.0),
            Some(f64::NAN),
            Some(3.0),
        ];
        assert_eq!(
            screen(&v, None),
            [
                Fate::Kept,
                Fate::Invalid,
                Fate::Missing,
                Fate::Invalid,
                Fate::Invalid,
                Fate::Kept
            ]
        );
        let r = Rounds {
            values: vec![Some(0.0), Some(-3.0)],
            error: None,
        };
        let m = metric("t", "t", Worker::Thread, "us", &r);
        assert_eq!(m.value, None);
        assert!(m.impossible().is_some(), "{:?}", m.flags);
        assert!(!m.usable());
        let failed = Rounds {
            values: vec![None, None],
            error: Some("failed: no".into()),
        };
        let m = metric("t", "t", Worker::Thread, "us", &failed);
        assert_eq!((m.value, m.note.as_deref()), (None, Some("failed: no")));
        assert!(m.flags.is_empty());
    }

    #[test]
    fn ratios_pair_rounds_and_skip_left_out_ones() {
        let a = vec![Some(2.0), Some(4.0), None, Some(0.0)];
        let b = vec![Some(1.0), Some(1.0), Some(1.0), Some(2.0)];
        assert_eq!(paired_ratios(&a, &b), [Some(2.0), Some(4.0), None, None]);
        let mut ms = vec![
            metric(
                "seq",
                "s",
                Worker::Sequential,
                "s",
                &Rounds {
                    values: b,
                    error: None,
                },
            ),
            metric(
                "par",
                "p",
                Worker::Thread,
                "s",
                &Rounds {
                    values: a,
                    error: None,
                },
            ),
        ];
        pair_with(&mut ms, "seq");
        let r = ms[1].ratio.as_ref().unwrap();
        assert_eq!((r.median, r.min, r.max, r.rounds), (3.0, 2.0, 4.0, 2));
        let own = ms[0].ratio.as_ref().unwrap();
        assert_eq!((own.min, own.max), (1.0, 1.0));
    }

    fn with_ceiling(values: &[f64], max: f64) -> Metric {
        let r = Rounds {
            values: some(values),
            error: None,
        };
        let c = Ceiling {
            max,
            why: "2 workers on 2 CPUs can reach".into(),
        };
        bounded("process_pool", "pool", Worker::Process, "%", &r, Some(&c))
    }

    #[test]
    fn efficiency_of_104_percent_is_flagged() {
        // 2 workers, every round's efficiency 103-105 %: impossible beyond the noise.
        let m = with_ceiling(&[103.0, 104.0, 105.0], 100.0);
        assert!(!m.usable());
        assert!(m.impossible().unwrap().contains("104 %"), "{:?}", m.flags);
        assert_eq!(m.value, Some(104.0));

        // Every round far above: shown, flagged, unusable.
        let m = with_ceiling(&[140.0, 150.0], 100.0);
        assert_eq!(m.value, Some(145.0));
        assert!(
            m.impossible().unwrap().contains("every round"),
            "{:?}",
            m.flags
        );

        // The median above 100 % with a round below: within the noise, noted, usable.
        let m = with_ceiling(&[96.0, 103.0, 104.0], 100.0);
        assert!(m.usable());
        assert!(m.note.unwrap().contains("within this run's range"));

        // Below the ceiling: nothing.
        let m = with_ceiling(&[90.0, 95.0], 100.0);
        assert!(m.usable() && m.note.is_none() && m.flags.is_empty());
    }

    #[test]
    fn one_impossible_round_is_left_out() {
        // A process pool at 142 % in one round of four, 32-49 % in the others.
        let m = with_ceiling(&[31.9, 34.3, 142.0, 48.8], 100.0);
        assert!(m.usable());
        assert_eq!(m.excluded_rounds, [2]);
        assert_eq!((m.value, m.max), (Some(34.3), Some(48.8)));
        assert_eq!(m.flags.len(), 1);
        assert!(m.flags[0].text.contains("142 %"), "{}", m.flags[0].text);
        assert_eq!(
            screen(&some(&[105.0, 105.1]), Some(100.0))[1],
            Fate::AboveCeiling
        );
        assert_eq!(screen(&some(&[105.0]), Some(100.0))[0], Fate::Kept);
    }
}
