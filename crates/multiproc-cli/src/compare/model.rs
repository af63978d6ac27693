//! The report's data model: what `--json` prints and what the table and page show.
//!
//! Schema `schema/compare.v1.json` describes this exact shape; a change here that a
//! program could notice (a renamed or removed field, a changed type) needs a new
//! schema version. Adding an optional field or a new metric id does not.

use std::collections::BTreeMap;

use serde::Serialize;

/// The `$id` of the schema this report follows.
pub(crate) const SCHEMA_ID: &str = "https://raw.githubusercontent.com/multiproc-rs/multiproc/main/crates/multiproc-cli/schema/compare.v1.json";
/// The report format's version; bumped on any incompatible change.
pub(crate) const SCHEMA_VERSION: u32 = 1;

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Report {
    /// [`SCHEMA_ID`].
    pub(crate) schema: &'static str,
    /// [`SCHEMA_VERSION`].
    pub(crate) schema_version: u32,
    /// The multiproc version that measured.
    pub(crate) multiproc_version: &'static str,
    /// `"quick"` or `"full"`.
    pub(crate) mode: &'static str,
    /// Where it was measured.
    pub(crate) machine: Machine,
    /// Seconds since the Unix epoch when measuring began.
    pub(crate) started_at_unix: u64,
    /// Wall-clock seconds the measurement took.
    pub(crate) duration_s: f64,
    /// One entry per section run, in the order run.
    pub(crate) sections: Vec<Section>,
    /// "When to use which", derived from the sections' figures.
    pub(crate) advice: Vec<Advice>,
}

/// The machine and the conditions of the run.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Machine {
    /// CPUs this process may run on.
    pub(crate) cpus: usize,
    /// Workers used for the parallel sections (`--workers`).
    pub(crate) workers: usize,
    /// `uname -r`.
    pub(crate) kernel: String,
    /// `"release"` or `"debug"`: a debug build's figures are not representative.
    pub(crate) build: &'static str,
    /// The 1-minute load average before measuring.
    pub(crate) load_before: Option<f64>,
    /// The 1-minute load average after measuring.
    pub(crate) load_after: Option<f64>,
}

/// Whether a section could be measured in full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Status {
    /// Every metric has a value.
    Measured,
    /// Some metrics are not available in this build or failed; see their notes.
    Partial,
    /// No metric could be measured.
    Unavailable,
}

/// One claim of the article and its measurements.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Section {
    /// Stable id: `starting`, `memory`, `sharing`, `communicating`, `cpu_bound`,
    /// `io_bound`, `fault_isolation`.
    pub(crate) id: &'static str,
    /// Human title.
    pub(crate) title: &'static str,
    /// The claim being tested, in one sentence.
    pub(crate) claim: &'static str,
    /// Derived from the metrics by [`Section::finish`].
    pub(crate) status: Status,
    /// How it was measured (sizes, repetitions).
    pub(crate) method: String,
    /// Groups of comparable metrics (one chart each).
    pub(crate) groups: Vec<Group>,
    /// One-line conclusions computed from the metrics.
    pub(crate) findings: Vec<String>,
}

/// Which direction is good for a group's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Better {
    /// Smaller is better (times, memory).
    Lower,
    /// Larger is better (rates, speedups).
    Higher,
}

/// Metrics in one unit that belong side by side.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Group {
    /// Stable id within the section.
    pub(crate) id: &'static str,
    /// Human title.
    pub(crate) title: String,
    /// Unit of every value: `us`, `ms`, `s`, `KiB`, `MB/s`, `M/s`, `x`, `%`, `count`.
    pub(crate) unit: &'static str,
    /// Which direction is good.
    pub(crate) better: Better,
    /// The metrics.
    pub(crate) metrics: Vec<Metric>,
}

/// Who did the work of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Worker {
    /// The measuring thread alone.
    Sequential,
    /// Threads of one process.
    Thread,
    /// Child processes.
    Process,
}

/// One measured figure.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Metric {
    /// Stable id within the group.
    pub(crate) id: String,
    /// Human label.
    pub(crate) label: String,
    /// Who did the work.
    pub(crate) worker: Worker,
    /// The start method of the processes, if any.
    pub(crate) start_method: Option<&'static str>,
    /// The median (or the single measurement); `null` if not measured.
    pub(crate) value: Option<f64>,
    /// The smallest sample, if there were several.
    pub(crate) min: Option<f64>,
    /// The largest sample, if there were several.
    pub(crate) max: Option<f64>,
    /// The 25th percentile of the samples, if there were several.
    pub(crate) p25: Option<f64>,
    /// The 75th percentile of the samples, if there were several.
    pub(crate) p75: Option<f64>,
    /// How many samples the value summarizes.
    pub(crate) samples: u32,
    /// Other figures of the same measurement, by name (units in the name).
    pub(crate) extra: BTreeMap<String, f64>,
    /// Why there is no value, or what to keep in mind reading it.
    pub(crate) note: Option<String>,
    /// In a section measured in interleaved rounds: this metric's figure in each round, in
    /// round order (`None`: the measurement failed that round). Empty otherwise.
    pub(crate) rounds: Vec<Option<f64>>,
    /// Indexes into [`Metric::rounds`] of the rounds left out of `value` and its range: a
    /// zero, negative or non-finite figure, or one far outside the other rounds.
    pub(crate) excluded_rounds: Vec<u32>,
    /// This metric over the group's baseline, round by round (both measured in the same
    /// round), with the spread of those ratios.
    pub(crate) ratio: Option<Ratio>,
    /// What is wrong or doubtful about the figure; an `impossible` one is left out of the
    /// advice.
    pub(crate) flags: Vec<Flag>,
}

/// A metric over its group's baseline, paired round by round.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Ratio {
    /// The id of the baseline metric in the same group.
    pub(crate) to: String,
    /// The median of the per-round ratios.
    pub(crate) median: f64,
    /// The smallest per-round ratio.
    pub(crate) min: f64,
    /// The largest per-round ratio.
    pub(crate) max: f64,
    /// How many rounds had both figures.
    pub(crate) rounds: u32,
}

/// What kind of doubt a [`Flag`] raises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum FlagKind {
    /// The figure cannot be right (a speedup above what the workers and CPUs allow, beyond
    /// the measurement's noise; a time that is zero or negative): it is left out of the
    /// advice.
    Impossible,
    /// Some rounds were left out (see [`Metric::excluded_rounds`]); the figure rests on
    /// the others.
    RoundsExcluded,
}

/// A doubt about a figure, and why.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Flag {
    /// What kind of doubt.
    pub(crate) kind: FlagKind,
    /// The reason, with the numbers.
    pub(crate) text: String,
}

/// One piece of advice and the figures it rests on.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Advice {
    /// Stable id.
    pub(crate) id: &'static str,
    /// The situation: "CPU-bound work", "many waiting tasks"…
    pub(crate) situation: &'static str,
    /// `threads`, `processes`, `process_pool`, `sequential`, `either`, or
    /// `no_clear_winner` when the measured ranges overlap.
    pub(crate) pick: &'static str,
    /// The deciding figures in a few words.
    pub(crate) headline: String,
    /// The advice with its numbers.
    pub(crate) text: String,
    /// The figures used, by name (units in the name).
    pub(crate) basis: BTreeMap<String, f64>,
    /// Whether the pick rests on a clear difference: the winner's range does not overlap
    /// any other choice's. `false` with pick `no_clear_winner`.
    pub(crate) clear: bool,
    /// The figures compared to make the pick, each with its range over the rounds.
    pub(crate) contenders: Vec<Contender>,
}

/// One choice an advice compared, with the range its figure spanned.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Contender {
    /// The metric, as `section/group/metric`.
    pub(crate) metric: String,
    /// Human label.
    pub(crate) label: String,
    /// The pick this contender stands for.
    pub(crate) pick: &'static str,
    /// The unit of `median`, `min` and `max`.
    pub(crate) unit: &'static str,
    /// The median over the rounds.
    pub(crate) median: f64,
    /// The smallest figure over the rounds (the range's low end).
    pub(crate) min: f64,
    /// The largest figure over the rounds (the range's high end).
    pub(crate) max: f64,
    /// How many rounds (or samples) the range covers.
    pub(crate) rounds: u32,
    /// The figure over its group's baseline, paired round by round, when it has one. When
    /// every contender of an advice has one against the same baseline, the pick compares
    /// these paired ranges (a drift of the load that hit one round hits both figures of
    /// that round), else the plain ranges.
    pub(crate) paired: Option<Ratio>,
    /// Why this contender was left out of the pick (an impossible figure), if it was.
    pub(crate) excluded: Option<String>,
}

impl Metric {
    /// A metric with a value and no spread.
    pub(crate) fn value(
        id: impl Into<String>,
        label: impl Into<String>,
        worker: Worker,
        v: f64,
    ) -> Metric {
        Metric {
            id: id.into(),
            label: label.into(),
            worker,
            start_method: None,
            value: Some(v),
            min: None,
            max: None,
            p25: None,
            p75: None,
            samples: 1,
            extra: BTreeMap::new(),
            note: None,
            rounds: Vec::new(),
            excluded_rounds: Vec::new(),
            ratio: None,
            flags: Vec::new(),
        }
    }

    /// A metric that could not be measured, with the reason.
    pub(crate) fn missing(
        id: impl Into<String>,
        label: impl Into<String>,
        worker: Worker,
        why: impl Into<String>,
    ) -> Metric {
        Metric {
            value: None,
            samples: 0,
            note: Some(why.into()),
            ..Metric::value(id, label, worker, 0.0)
        }
    }

    /// Sets the start method.
    pub(crate) fn method(mut self, m: multiproc::StartMethod) -> Metric {
        self.start_method = Some(m.name());
        self
    }

    /// Adds a note.
    pub(crate) fn note(mut self, note: impl Into<String>) -> Metric {
        self.note = Some(note.into());
        self
    }

    /// Whether the figure may be used for advice: it has a value and no `impossible` flag.
    pub(crate) fn usable(&self) -> bool {
        self.value.is_some() && !self.flags.iter().any(|f| f.kind == FlagKind::Impossible)
    }

    /// The first `impossible` flag's text, if any.
    pub(crate) fn impossible(&self) -> Option<&str> {
        self.flags
            .iter()
            .find(|f| f.kind == FlagKind::Impossible)
            .map(|f| f.text.as_str())
    }

    /// Adds an extra figure.
    pub(crate) fn extra(mut self, name: &str, v: f64) -> Metric {
        self.extra.insert(name.to_owned(), v);
        self
    }
}

impl Section {
    /// Sets [`Section::status`] from the metrics.
    pub(crate) fn finish(mut self) -> Section {
        for m in self.groups.iter_mut().flat_map(|g| &mut g.metrics) {
            if m.value.is_some_and(|v| !v.is_finite()) {
                m.value = None;
                m.note = Some("the measurement gave no finite number".into());
            }
            m.min = m.min.filter(|v| v.is_finite());
            m.max = m.max.filter(|v| v.is_finite());
            m.p25 = m.p25.filter(|v| v.is_finite());
            m.p75 = m.p75.filter(|v| v.is_finite());
            m.extra.retain(|_, v| v.is_finite());
        }
        let all = self.groups.iter().flat_map(|g| &g.metrics);
        let (have, total) = all.fold((0, 0), |(h, t), m| {
            (h + usize::from(m.value.is_some()), t + 1)
        });
        self.status = if have == total {
            Status::Measured
        } else if have == 0 {
            Status::Unavailable
        } else {
            Status::Partial
        };
        self
    }

    /// The metric `metric` of group `group`, if it has a value.
    pub(crate) fn get(&self, group: &str, metric: &str) -> Option<f64> {
        self.metric(group, metric)?.value
    }

    /// The metric `metric` of group `group`, if there is one.
    pub(crate) fn metric(&self, group: &str, metric: &str) -> Option<&Metric> {
        self.groups
            .iter()
            .find(|g| g.id == group)?
            .metrics
            .iter()
            .find(|m| m.id == metric)
    }
}

impl Machine {
    /// A warning if other work kept the CPUs busy while measuring.
    pub(crate) fn busy_warning(&self) -> Option<String> {
        let load = self
            .load_before
            .into_iter()
            .chain(self.load_after)
            .fold(0.0, f64::max);
        (load > 0.5 * self.cpus as f64).then(|| {
            format!(
                "the machine was busy while measuring (load average up to {load:.2} on {} CPUs): \
                 expect slower and noisier figures, parallel speedups most of all",
                self.cpus
            )
        })
    }
}

impl Report {
    /// The section `id`, if it was run.
    pub(crate) fn section(&self, id: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.id == id)
    }
}
