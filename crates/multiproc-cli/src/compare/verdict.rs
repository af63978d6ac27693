//! Picking a winner from figures with ranges: only when the ranges do not overlap.
//!
//! Each contender of an advice stands for a pick (`threads`, `processes`…) and has a
//! median and a range (min..max over the interleaved rounds). When every contender also
//! has a paired ratio to the same baseline (its figure over the baseline's in the same
//! round), those paired ranges are compared instead: the baseline is exactly 1x, and a
//! drift of the load that slowed one round slowed both figures of that round, so it does
//! not widen the ranges. The contender with the best median wins only if its range is
//! clear of the range of every contender standing for a *different* pick (two ways of
//! using threads may overlap each other). Otherwise there is no clear winner at this noise
//! level, and the advice says so with the numbers. A contender whose figure was flagged
//! impossible takes no part.

use super::model::{Better, Contender, Metric, Section};
use super::stats::fmt_num;

/// The result of comparing contenders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The contender at this index wins: its range is clear of every other pick's.
    Winner(usize),
    /// The best contender's range overlaps these others' (indexes, best first).
    NoClearWinner(Vec<usize>),
    /// Fewer than two picks had a usable contender: nothing to compare.
    Nothing,
}

/// Decides among `cs` (see the module docs).
pub(crate) fn decide(cs: &[Contender], better: Better) -> Outcome {
    let usable: Vec<usize> = (0..cs.len())
        .filter(|&i| cs[i].excluded.is_none())
        .collect();
    let range = ranges(cs, &usable);
    let key = |i: &usize| match better {
        Better::Lower => range[*i].0,
        Better::Higher => -range[*i].0,
    };
    let Some(&best) = usable.iter().min_by(|a, b| key(a).total_cmp(&key(b))) else {
        return Outcome::Nothing;
    };
    let b = &cs[best];
    // A winner needs someone to beat: with every other choice left out there is none.
    if usable.iter().all(|&i| cs[i].pick == b.pick) {
        return Outcome::Nothing;
    }
    let (_, b_lo, b_hi) = range[best];
    let clear_of = |i: usize| match better {
        Better::Lower => b_hi < range[i].1,
        Better::Higher => b_lo > range[i].2,
    };
    let mut tied: Vec<usize> = usable
        .iter()
        .copied()
        .filter(|&i| i != best && cs[i].pick != b.pick && !clear_of(i))
        .collect();
    if tied.is_empty() {
        Outcome::Winner(best)
    } else {
        tied.sort_by(|x, y| key(x).total_cmp(&key(y)));
        tied.insert(0, best);
        Outcome::NoClearWinner(tied)
    }
}

/// The (median, min, max) each contender is compared by: its paired ratio when all of
/// `usable` have one against the same baseline, else its plain figure.
fn ranges(cs: &[Contender], usable: &[usize]) -> Vec<(f64, f64, f64)> {
    let to = usable
        .first()
        .and_then(|&i| cs[i].paired.as_ref())
        .map(|r| &r.to);
    let paired = to.is_some()
        && usable
            .iter()
            .all(|&i| cs[i].paired.as_ref().map(|r| &r.to) == to);
    cs.iter()
        .map(|c| match (&c.paired, paired) {
            (Some(r), true) => (r.median, r.min, r.max),
            _ => (c.median, c.min, c.max),
        })
        .collect()
}

/// A contender from the metric `group/id` of `sec`, standing for `pick`; `None` if the
/// metric has no value. Its range is the metric's min..max (a single figure is its own
/// range); an impossible figure is marked excluded.
pub(crate) fn contender(
    sec: &Section,
    group: &str,
    id: &str,
    pick: &'static str,
) -> Option<Contender> {
    let g = sec.groups.iter().find(|g| g.id == group)?;
    let m = g.metrics.iter().find(|m| m.id == id)?;
    from_metric(&format!("{}/{group}/{id}", sec.id), m, g.unit, pick)
}

/// A contender from `m` (see [`contender`]).
pub(crate) fn from_metric(
    path: &str,
    m: &Metric,
    unit: &'static str,
    pick: &'static str,
) -> Option<Contender> {
    let v = m.value?;
    Some(Contender {
        metric: path.to_owned(),
        label: m.label.clone(),
        pick,
        unit,
        median: v,
        min: m.min.unwrap_or(v).min(v),
        max: m.max.unwrap_or(v).max(v),
        rounds: m.samples,
        paired: m.ratio.clone(),
        excluded: m.impossible().map(str::to_owned),
    })
}

/// `label median unit (range min..max)`, e.g. `2 threads 1.62x (range 1.40..1.80)`,
/// and the paired ratio when there is one: `…; paired with threads round by round: 4.10x
/// to 6.20x`.
pub(crate) fn describe(c: &Contender) -> String {
    let unit = match c.unit {
        "x" | "%" => c.unit.to_owned(),
        "count" => String::new(),
        u => format!(" {u}"),
    };
    let mut s = format!("{} {}{unit}", c.label, fmt_num(c.median));
    let mut inner = Vec::new();
    if c.min != c.max {
        inner.push(format!("range {}..{}", fmt_num(c.min), fmt_num(c.max)));
    }
    if let Some(r) = c
        .paired
        .as_ref()
        .filter(|r| !c.metric.ends_with(&format!("/{}", r.to)))
    {
        inner.push(format!(
            "paired with {} round by round: {}x to {}x",
            r.to,
            fmt_num(r.min),
            fmt_num(r.max)
        ));
    }
    if !inner.is_empty() {
        s.push_str(&format!(" ({})", inner.join("; ")));
    }
    s
}

/// The sentence for an outcome without a clear winner: which ranges overlap.
pub(crate) fn no_clear_winner(cs: &[Contender], tied: &[usize]) -> String {
    let list: Vec<String> = tied.iter().map(|&i| describe(&cs[i])).collect();
    format!(
        "No clear winner at this noise level: the ranges (min..max over the rounds) of {} \
         overlap.",
        list.join(" and ")
    )
}

/// Sentences for the contenders left out as impossible.
pub(crate) fn excluded(cs: &[Contender]) -> String {
    cs.iter()
        .filter_map(|c| {
            c.excluded
                .as_ref()
                .map(|why| format!(" Left out: {} ({why}).", c.label))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(pick: &'static str, median: f64, min: f64, max: f64) -> Contender {
        Contender {
            metric: format!("s/g/{pick}"),
            label: pick.to_owned(),
            pick,
            unit: "x",
            median,
            min,
            max,
            rounds: 3,
            paired: None,
            excluded: None,
        }
    }

    fn paired(mut c: Contender, to: &str, median: f64, min: f64, max: f64) -> Contender {
        c.paired = Some(crate::compare::model::Ratio {
            to: to.to_owned(),
            median,
            min,
            max,
            rounds: 3,
        });
        c
    }

    #[test]
    fn paired_ranges_decide_when_every_contender_has_one() {
        // Overhead per waiting task: a load spike in one round slowed threads (41..265 us)
        // and processes (186..836 us) alike. The plain ranges overlap; round by round,
        // processes cost 3.2x to 4.6x the threads' every time.
        let t = paired(c("threads", 48.0, 41.0, 265.0), "threads", 1.0, 1.0, 1.0);
        let p = paired(
            c("processes", 196.0, 186.0, 836.0),
            "threads",
            4.0,
            3.2,
            4.6,
        );
        let cs = [t.clone(), p.clone()];
        assert_eq!(decide(&cs, Better::Lower), Outcome::Winner(0));
        assert!(
            describe(&cs[1]).contains("paired with threads round by round: 3.20x to 4.60x"),
            "{}",
            describe(&cs[1])
        );
        // Without the pairing the same figures tie.
        let mut plain = cs.clone();
        plain.iter_mut().for_each(|c| c.paired = None);
        assert_eq!(
            decide(&plain, Better::Lower),
            Outcome::NoClearWinner(vec![0, 1])
        );
        // A paired range reaching 1x ties with the baseline.
        let p = paired(
            c("processes", 196.0, 186.0, 836.0),
            "threads",
            2.0,
            0.9,
            4.6,
        );
        assert_eq!(
            decide(&[t.clone(), p], Better::Lower),
            Outcome::NoClearWinner(vec![0, 1])
        );
        // Pairs against different baselines are not comparable: the plain ranges decide.
        let q = paired(c("processes", 196.0, 186.0, 836.0), "other", 4.0, 3.2, 4.6);
        assert_eq!(
            decide(&[t, q], Better::Lower),
            Outcome::NoClearWinner(vec![0, 1])
        );
    }

    #[test]
    fn overlapping_ranges_give_no_winner() {
        // Threads 1.6x (1.3..1.9), processes 1.7x (1.5..2.0), sequential 1x.
        let cs = [
            c("sequential", 1.0, 1.0, 1.0),
            c("threads", 1.6, 1.3, 1.9),
            c("processes", 1.7, 1.5, 2.0),
        ];
        assert_eq!(
            decide(&cs, Better::Higher),
            Outcome::NoClearWinner(vec![2, 1])
        );
        let text = no_clear_winner(&cs, &[2, 1]);
        assert!(text.contains("processes 1.70x (range 1.50..2)"), "{text}");
        assert!(text.contains("threads 1.60x (range 1.30..1.90)"), "{text}");
        // A speedup range that reaches down to 1 ties with sequential too.
        let cs = [c("sequential", 1.0, 1.0, 1.0), c("threads", 1.2, 0.9, 1.5)];
        assert_eq!(
            decide(&cs, Better::Higher),
            Outcome::NoClearWinner(vec![1, 0])
        );
    }

    #[test]
    fn disjoint_ranges_give_a_winner() {
        let cs = [
            c("sequential", 1.0, 1.0, 1.0),
            c("threads", 1.9, 1.8, 1.95),
            c("processes", 1.4, 1.2, 1.6),
        ];
        assert_eq!(decide(&cs, Better::Higher), Outcome::Winner(1));
        // Lower is better: a start cost of 13 us (11..16) against 430 us (400..1,470).
        let cs = [
            c("process_pool", 13.0, 11.0, 16.0),
            c("processes", 430.0, 400.0, 1470.0),
        ];
        assert_eq!(decide(&cs, Better::Lower), Outcome::Winner(0));
        // Touching ranges are not clear of each other.
        let cs = [c("threads", 2.0, 1.5, 2.5), c("processes", 1.0, 0.5, 1.5)];
        assert_eq!(
            decide(&cs, Better::Higher),
            Outcome::NoClearWinner(vec![0, 1])
        );
    }

    #[test]
    fn contenders_of_the_same_pick_may_overlap() {
        let cs = [
            c("threads", 1.9, 1.7, 2.0),
            c("threads", 1.8, 1.6, 1.95),
            c("sequential", 1.0, 1.0, 1.0),
        ];
        assert_eq!(decide(&cs, Better::Higher), Outcome::Winner(0));
    }

    #[test]
    fn impossible_figures_take_no_part() {
        // The process figure (2.08x with 2 workers, every round above 2) is flagged: the
        // pick is made without it.
        let mut p = c("processes", 2.08, 2.06, 2.1);
        p.excluded = Some("above 2x".into());
        let cs = [
            c("sequential", 1.0, 1.0, 1.0),
            c("threads", 1.5, 1.3, 1.7),
            p,
        ];
        assert_eq!(decide(&cs, Better::Higher), Outcome::Winner(1));
        assert!(excluded(&cs).contains("Left out: processes (above 2x)"));
        let mut only = c("threads", 3.0, 3.0, 3.0);
        only.excluded = Some("x".into());
        assert_eq!(decide(&[only], Better::Higher), Outcome::Nothing);
        // The baseline alone, its rival left out: no winner either.
        let mut pool = c("process_pool", 2.08, 2.06, 2.1);
        pool.excluded = Some("above 2x".into());
        let cs = [c("sequential", 1.0, 1.0, 1.0), pool];
        assert_eq!(decide(&cs, Better::Higher), Outcome::Nothing);
    }
}
