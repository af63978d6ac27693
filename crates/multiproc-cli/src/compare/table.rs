//! The terminal report: one block per section, a bar per metric, then the advice.

use std::fmt::Write as _;

use super::model::{Better, Group, Metric, Report, Section, Status};
use super::stats::fmt_num;

/// Width of the bars, in characters.
const BAR: usize = 24;
/// Width text is wrapped to.
const WIDTH: usize = 96;

/// Renders the whole report as text.
pub(crate) fn render(r: &Report) -> String {
    let mut s = String::new();
    let m = &r.machine;
    let load = |l: Option<f64>| l.map_or_else(|| "?".to_owned(), |l| format!("{l:.2}"));
    let _ = writeln!(
        s,
        "multiproc compare ({} run): {} CPUs, {} workers, Linux {}, {} build, load {} -> {}, {:.1} s",
        r.mode,
        m.cpus,
        m.workers,
        m.kernel,
        m.build,
        load(m.load_before),
        load(m.load_after),
        r.duration_s
    );
    if m.build == "debug" {
        s.push_str("note: a debug build measures slower than a release build\n");
    }
    if let Some(w) = m.busy_warning() {
        let _ = writeln!(s, "note: {w}");
    }
    for sec in &r.sections {
        section(&mut s, sec);
    }
    if !r.advice.is_empty() {
        let _ = writeln!(s, "\n== When to use which (from the figures above) ==");
        for a in &r.advice {
            let _ = writeln!(s, "\n* {} -> {}", a.situation, a.pick.replace('_', " "));
            for line in wrap(&a.text, WIDTH - 4) {
                let _ = writeln!(s, "    {line}");
            }
        }
    }
    s
}

fn section(s: &mut String, sec: &Section) {
    let status = match sec.status {
        Status::Measured => "",
        Status::Partial => " [partial]",
        Status::Unavailable => " [not available]",
    };
    let _ = writeln!(s, "\n== {}{status} ==", sec.title);
    for line in wrap(sec.claim, WIDTH - 2) {
        let _ = writeln!(s, "  {line}");
    }
    for g in &sec.groups {
        group(s, g);
    }
    for f in &sec.findings {
        let mut first = true;
        for line in wrap(f, WIDTH - 4) {
            let _ = writeln!(s, "  {} {line}", if first { "-" } else { " " });
            first = false;
        }
    }
}

fn group(s: &mut String, g: &Group) {
    let dir = match g.better {
        Better::Lower => "lower is better",
        Better::Higher => "higher is better",
    };
    let _ = writeln!(s, "\n  {} [{}, {dir}]", g.title, g.unit);
    let label_w = g
        .metrics
        .iter()
        .map(|m| m.label.chars().count())
        .max()
        .unwrap_or(0);
    let top = g
        .metrics
        .iter()
        .filter_map(|m| m.value)
        .fold(0.0f64, f64::max);
    for m in &g.metrics {
        let _ = writeln!(
            s,
            "    {:<label_w$}  {}",
            m.label,
            metric_text(m, g.unit, top)
        );
    }
}

fn metric_text(m: &Metric, unit: &str, top: f64) -> String {
    let Some(v) = m.value else {
        return format!(
            "{:>10}  {}",
            "-",
            m.note.as_deref().unwrap_or("not measured")
        );
    };
    let unit = if unit == "count" { "" } else { unit };
    let filled = if top > 0.0 {
        ((v / top) * BAR as f64).round() as usize
    } else {
        0
    };
    let bar: String = "#".repeat(filled.min(BAR)) + &" ".repeat(BAR - filled.min(BAR));
    let mut t = format!("{:>10} {unit:<5} |{bar}|", fmt_num(v));
    if let (Some(lo), Some(hi)) = (m.min, m.max) {
        if m.samples > 1 {
            let _ = write!(t, " {}..{} (n={})", fmt_num(lo), fmt_num(hi), m.samples);
        }
    }
    if let Some(n) = &m.note {
        let _ = write!(t, "  {n}");
    }
    t
}

/// Splits `text` into lines of at most `width` characters at spaces.
pub(crate) fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut cur = String::new();
    for word in text.split_whitespace() {
        if !cur.is_empty() && cur.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(word);
    }
    if !cur.is_empty() {
        lines.push(cur);
    }
    lines
}
