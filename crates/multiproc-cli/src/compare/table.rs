//! The terminal report: one block per section, a bar per metric with its range, then
//! the advice; it fits in 80 columns.

use std::fmt::Write as _;

use super::model::{Better, FlagKind, Group, Metric, Report, Section, Status};
use super::stats::fmt_num;

/// Width of the bars, in characters.
const BAR: usize = 12;
/// The width no line exceeds: a classic terminal.
pub(crate) const WIDTH: usize = 80;
/// Indent of a metric row.
const ROW_INDENT: usize = 4;

/// Renders the whole report as text, no line wider than [`WIDTH`] characters (a word
/// longer than that, such as a path, stays whole).
pub(crate) fn render(r: &Report) -> String {
    let mut s = String::new();
    let m = &r.machine;
    let load = |l: Option<f64>| l.map_or_else(|| "?".to_owned(), |l| format!("{l:.2}"));
    let _ = writeln!(
        s,
        "multiproc compare ({} run, {:.1} s, {} build)",
        r.mode, r.duration_s, m.build
    );
    let _ = writeln!(
        s,
        "{} CPUs, {} workers, Linux {}",
        m.cpus, m.workers, m.kernel
    );
    let _ = writeln!(
        s,
        "load average (1 min): {} at start, {} at end",
        load(m.load_before),
        load(m.load_after)
    );
    if m.build == "debug" {
        s.push_str("note: a debug build measures slower than a release build\n");
    }
    if let Some(w) = m.busy_warning() {
        para(&mut s, &format!("note: {w}"), "", "      ");
    }
    for sec in &r.sections {
        section(&mut s, sec);
    }
    if !r.advice.is_empty() {
        let _ = writeln!(s, "\n== When to use which (from the figures above) ==");
        for a in &r.advice {
            let _ = writeln!(s, "\n* {} -> {}", a.situation, a.pick.replace('_', " "));
            para(&mut s, &a.text, "    ", "    ");
        }
    }
    s
}

/// Appends `text` wrapped to [`WIDTH`], the first line after `first`, the others after
/// `rest`.
fn para(s: &mut String, text: &str, first: &str, rest: &str) {
    let width = WIDTH - first.chars().count().max(rest.chars().count());
    for (i, line) in wrap(text, width).into_iter().enumerate() {
        let _ = writeln!(s, "{}{line}", if i == 0 { first } else { rest });
    }
}

fn section(s: &mut String, sec: &Section) {
    let status = match sec.status {
        Status::Measured => "",
        Status::Partial => " [partial]",
        Status::Unavailable => " [not available]",
    };
    let _ = writeln!(s, "\n== {}{status} ==", sec.title);
    para(s, sec.claim, "  ", "  ");
    for g in &sec.groups {
        group(s, g);
    }
    for f in &sec.findings {
        para(s, f, "  - ", "    ");
    }
}

/// How a group's ranges were made, for its header.
fn range_label(g: &Group) -> String {
    let rounds = g.metrics.iter().map(|m| m.rounds.len()).max().unwrap_or(0);
    if rounds > 0 {
        format!("median, range = min..max of {rounds} interleaved rounds")
    } else if g.metrics.iter().any(|m| m.samples > 1) {
        "median, range = min..max of the samples".to_owned()
    } else {
        "one measurement each".to_owned()
    }
}

fn group(s: &mut String, g: &Group) {
    let dir = match g.better {
        Better::Lower => "lower is better",
        Better::Higher => "higher is better",
    };
    let _ = writeln!(s);
    para(s, &g.title, "  ", "  ");
    para(
        s,
        &format!("[{}, {dir}; {}]", g.unit, range_label(g)),
        "  ",
        "   ",
    );
    let top = g
        .metrics
        .iter()
        .filter_map(|m| m.value)
        .fold(0.0f64, f64::max);
    let rows: Vec<String> = g.metrics.iter().map(|m| figures(m, g.unit, top)).collect();
    let figures_w = rows.iter().map(|r| r.chars().count()).max().unwrap_or(0);
    let longest = g
        .metrics
        .iter()
        .map(|m| m.label.chars().count())
        .max()
        .unwrap_or(0);
    let label_w = longest.min(WIDTH.saturating_sub(ROW_INDENT + 2 + figures_w));
    let pad = " ".repeat(ROW_INDENT);
    for (m, row) in g.metrics.iter().zip(rows) {
        if m.label.chars().count() <= label_w {
            let _ = writeln!(s, "{pad}{:<label_w$}  {row}", m.label);
        } else {
            para(s, &m.label, &pad, &pad);
            let _ = writeln!(s, "{pad}{:<label_w$}  {row}", "");
        }
        let more = format!("{pad}  ");
        if let Some(n) = &m.note {
            para(s, n, &more, &more);
        }
        for f in &m.flags {
            let mark = match f.kind {
                FlagKind::Impossible => "! impossible: ",
                FlagKind::RoundsExcluded => "~ ",
            };
            para(s, &format!("{mark}{}", f.text), &more, &format!("{more}  "));
        }
    }
}

/// The figures of a row: value, unit, bar and range; `!` after an impossible figure.
fn figures(m: &Metric, unit: &str, top: f64) -> String {
    let Some(v) = m.value else {
        return format!("{:>9}", "-");
    };
    let unit = if unit == "count" { "" } else { unit };
    let filled = if top > 0.0 {
        ((v / top) * BAR as f64).round() as usize
    } else {
        0
    };
    let bar: String = "#".repeat(filled.min(BAR)) + &" ".repeat(BAR - filled.min(BAR));
    let mut t = format!("{:>9} {unit:<4} |{bar}|", fmt_num(v));
    if let (Some(lo), Some(hi)) = (m.min, m.max) {
        if m.samples > 1 {
            let _ = write!(t, " {}..{}", fmt_num(lo), fmt_num(hi));
        }
    }
    if m.impossible().is_some() {
        t.push_str(" !");
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
