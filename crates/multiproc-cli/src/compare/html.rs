//! `--html FILE`: one self-contained page (no scripts, no external resources) with an
//! inline SVG bar chart per group of metrics, the advice first.

use std::fmt::Write as _;

use super::model::{
    Advice, Better, FlagKind, Group, Machine, Metric, Report, Section, Status, Worker,
};
use super::stats::fmt_num;

/// Colors of the workers, also used by the tests that look at a screenshot.
pub(crate) const THREAD: &str = "#2563eb";
/// Processes by fork, forkserver, spawn (and unknown).
pub(crate) const PROCESS: [&str; 4] = ["#fb923c", "#ea580c", "#c2410c", "#ea580c"];
/// The sequential baseline.
pub(crate) const SEQUENTIAL: &str = "#64748b";

const CSS: &str = r#"
:root { --ink:#0f172a; --muted:#475569; --line:#e2e8f0; --bg:#f8fafc; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink);
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
main { max-width: 1000px; margin: 0 auto; padding: 28px 24px 48px; }
h1 { font-size: 28px; margin: 0 0 4px; letter-spacing: -0.01em; }
h2 { font-size: 20px; margin: 0 0 4px; }
.meta { color: var(--muted); margin: 0 0 20px; }
.meta b { color: var(--ink); font-weight: 600; }
.warn { background:#fef3c7; border:1px solid #f59e0b; padding:8px 12px; border-radius:8px; }
.cards { display:grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr)); gap:12px; margin: 12px 0 28px; }
.card { background:#fff; border:1px solid var(--line); border-left:6px solid #94a3b8; border-radius:10px; padding:12px 14px; }
.card .sit { font-size:12px; text-transform:uppercase; letter-spacing:.05em; color:var(--muted); }
.card .pick { font-size:18px; font-weight:700; margin: 2px 0 6px; }
.card p { margin:0; font-size:14px; }
.pick-threads { border-left-color:#2563eb; } .pick-threads .pick { color:#1d4ed8; }
.pick-processes, .pick-process_pool { border-left-color:#ea580c; }
.pick-processes .pick, .pick-process_pool .pick { color:#c2410c; }
.pick-sequential { border-left-color:#64748b; }
.pick-no_clear_winner { border-left-color:#a16207; } .pick-no_clear_winner .pick { color:#a16207; }
.badge.pick-no_clear_winner { background:#fef9c3; color:#a16207; }
table.contenders { border-collapse: collapse; margin: 8px 0 0; font-size: 12px; width: 100%; }
table.contenders td { overflow-wrap: break-word; }
table.contenders td, table.contenders th { padding: 2px 8px 2px 0; text-align: left; }
table.contenders th { color: var(--muted); font-weight: 600; }
table.contenders td.num { text-align: right; font-variant-numeric: tabular-nums; }
ul.flags { margin: 0 0 8px; padding-left: 20px; font-size: 13px; color: var(--muted); }
ul.flags li.impossible { color:#b91c1c; }
table.glance { border-collapse: collapse; width: 100%; background:#fff; border:1px solid var(--line); border-radius:10px; margin: 8px 0 6px; }
table.glance td { padding: 7px 12px; border-top: 1px solid var(--line); font-size: 14px; }
table.glance tr:first-child td { border-top: none; }
table.glance td.sit { color: var(--muted); width: 36%; }
.badge { display:inline-block; font-size:12px; font-weight:700; padding:2px 10px; border-radius:999px; background:#e2e8f0; color:#334155; white-space:nowrap; }
.badge.pick-threads { background:#dbeafe; color:#1d4ed8; }
.badge.pick-processes, .badge.pick-process_pool { background:#ffedd5; color:#c2410c; }
a { color:#1d4ed8; }
section.sec { background:#fff; border:1px solid var(--line); border-radius:12px; padding:18px 20px 12px; margin: 0 0 18px; }
.claim { color:var(--muted); margin: 0 0 10px; font-style: italic; }
.status { font-size:12px; font-weight:600; padding:2px 8px; border-radius:999px; background:#fef3c7; color:#92400e; vertical-align:middle; margin-left:8px; }
figure { margin: 10px 0 14px; }
figcaption { font-weight:600; margin-bottom:4px; }
figcaption span { font-weight:400; color:var(--muted); }
svg { display:block; width:100%; height:auto; }
ul.findings { margin: 4px 0 8px; padding-left: 20px; }
ul.findings li { margin: 2px 0; }
details { color:var(--muted); font-size:13px; margin-bottom:6px; }
.legend { display:flex; gap:18px; flex-wrap:wrap; color:var(--muted); font-size:13px; margin: 0 0 18px; }
.sw { display:inline-block; width:12px; height:12px; border-radius:3px; margin-right:6px; vertical-align:-1px; }
footer { color:var(--muted); font-size:12px; margin-top: 24px; }
"#;

/// Renders the page.
pub(crate) fn render(r: &Report) -> String {
    let mut h = String::with_capacity(64 * 1024);
    h.push_str("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    h.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
    h.push_str("<title>multiproc compare: threads or processes?</title><style>");
    h.push_str(CSS);
    h.push_str("</style></head><body><main>");
    let m = &r.machine;
    let load = |l: Option<f64>| l.map_or_else(|| "?".to_owned(), |l| format!("{l:.2}"));
    let _ = write!(
        h,
        "<h1>Threads or processes? Measured on this machine</h1>\
         <p class=\"meta\"><b>{}</b> CPUs &middot; <b>{}</b> workers &middot; Linux {} &middot; \
         {} build &middot; load average (1 min) {} at start, {} at end &middot; {} run in \
         {:.1} s &middot; multiproc {}</p>",
        m.cpus,
        m.workers,
        esc(&m.kernel),
        m.build,
        load(m.load_before),
        load(m.load_after),
        r.mode,
        r.duration_s,
        esc(r.multiproc_version)
    );
    if m.build == "debug" {
        h.push_str(
            "<p class=\"warn\">Measured with a debug build: CPU-bound figures are slower \
             than a release build's.</p>",
        );
    }
    if let Some(w) = m.busy_warning() {
        let _ = write!(h, "<p class=\"warn\">Note: {}.</p>", esc(&w));
    }
    if !r.advice.is_empty() {
        h.push_str("<h2>At a glance</h2><table class=\"glance\">");
        for a in &r.advice {
            let _ = write!(
                h,
                "<tr><td class=\"sit\">{}</td><td><span class=\"badge pick-{}\">{}</span></td><td>{}</td></tr>",
                esc(a.situation),
                a.pick,
                esc(&a.pick.replace('_', " ")),
                esc(&a.headline)
            );
        }
        h.push_str("</table><p class=\"meta\">Why, with the numbers: <a href=\"#advice\">When to use which</a>, after the measurements.</p>");
    }
    let _ = write!(
        h,
        "<div class=\"legend\"><span><i class=\"sw\" style=\"background:{THREAD}\"></i>threads</span>\
         <span><i class=\"sw\" style=\"background:{}\"></i>process (fork)</span>\
         <span><i class=\"sw\" style=\"background:{}\"></i>process (forkserver)</span>\
         <span><i class=\"sw\" style=\"background:{}\"></i>process (spawn)</span>\
         <span><i class=\"sw\" style=\"background:{SEQUENTIAL}\"></i>sequential</span>\
         <span>whiskers: the range, min&ndash;max over the interleaved rounds (or the samples)</span>\
         <span style=\"color:#b91c1c\">&#9888; impossible: a figure left out of the advice</span></div>",
        PROCESS[0], PROCESS[1], PROCESS[2]
    );
    for s in &r.sections {
        section(&mut h, s, &r.machine);
    }
    if !r.advice.is_empty() {
        h.push_str(
            "<h2 id=\"advice\">When to use which</h2><p class=\"meta\">Derived from the \
             figures above, measured in this run.</p><div class=\"cards\">",
        );
        for a in &r.advice {
            advice_card(&mut h, a);
        }
        h.push_str("</div>");
    }
    let _ = write!(
        h,
        "<footer>Generated by <code>multiproc compare</code>. The same data as JSON: \
         <code>multiproc compare --json</code> (schema {}, version {}).</footer>",
        esc(r.schema),
        r.schema_version
    );
    h.push_str("</main></body></html>\n");
    h
}

fn advice_card(h: &mut String, a: &Advice) {
    let _ = write!(
        h,
        "<div class=\"card pick-{}\"><div class=\"sit\">{}</div><div class=\"pick\">{}</div><p>{}</p>",
        a.pick,
        esc(a.situation),
        esc(&a.pick.replace('_', " ")),
        esc(&a.text)
    );
    if !a.contenders.is_empty() {
        h.push_str(
            "<table class=\"contenders\"><tr><th>compared</th><th>median</th>\
             <th>range (min&ndash;max)</th><th>over the baseline, per round</th>\
             <th>n</th></tr>",
        );
        for c in &a.contenders {
            let unit = if c.unit == "count" { "" } else { c.unit };
            let _ = write!(
                h,
                "<tr{}><td>{}{}</td><td class=\"num\">{} {unit}</td><td class=\"num\">{}&ndash;{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                if c.excluded.is_some() {
                    " style=\"color:#b91c1c\""
                } else {
                    ""
                },
                esc(&c.label),
                if c.excluded.is_some() {
                    " &#9888; left out"
                } else {
                    ""
                },
                fmt_num(c.median),
                fmt_num(c.min),
                fmt_num(c.max),
                c.paired.as_ref().map_or_else(String::new, |r| format!(
                    "<span title=\"over {}, in the same round\">{}x&ndash;{}x</span>",
                    esc(&r.to),
                    fmt_num(r.min),
                    fmt_num(r.max)
                )),
                c.rounds
            );
        }
        h.push_str("</table>");
    }
    h.push_str("</div>");
}

fn section(h: &mut String, s: &Section, machine: &Machine) {
    // The most a parallel run can gain: one CPU per worker, as many as there are.
    let ideal_x = machine.workers.min(machine.cpus).max(1);
    let status = match s.status {
        Status::Measured => String::new(),
        Status::Partial => "<span class=\"status\">partly measured</span>".into(),
        Status::Unavailable => "<span class=\"status\">not available</span>".into(),
    };
    let _ = write!(
        h,
        "<section class=\"sec\" id=\"{}\"><h2>{}{status}</h2><p class=\"claim\">{}</p>",
        s.id,
        esc(s.title),
        esc(s.claim)
    );
    for g in &s.groups {
        let ideal = g
            .metrics
            .iter()
            .find_map(|m| m.extra.get("ideal_ms").copied());
        let refs: Vec<(f64, String)> = if g.unit == "x" {
            vec![
                (1.0, "1x".into()),
                (ideal_x as f64, format!("{ideal_x}x ideal")),
            ]
        } else if g.unit == "%" {
            let most = 100.0 * ideal_x as f64 / machine.workers.max(1) as f64;
            vec![(most, format!("{}% ideal", fmt_num(most)))]
        } else if let (Some(ideal), "ms") = (ideal, g.unit) {
            vec![(ideal, format!("{} ms ideal", fmt_num(ideal)))]
        } else {
            Vec::new()
        };
        let dir = match g.better {
            Better::Lower => "lower is better",
            Better::Higher => "higher is better",
        };
        let unit = if g.unit == "count" { "count" } else { g.unit };
        let rounds = g.metrics.iter().map(|m| m.rounds.len()).max().unwrap_or(0);
        let range = if rounds > 0 {
            format!("; median, whiskers min&ndash;max of {rounds} interleaved rounds")
        } else {
            String::new()
        };
        let _ = write!(
            h,
            "<figure><figcaption>{} <span>({unit}, {dir}{range})</span></figcaption>{}</figure>",
            esc(&g.title),
            chart(g, &refs)
        );
        let flagged: Vec<String> = g
            .metrics
            .iter()
            .flat_map(|m| {
                m.flags.iter().map(move |f| {
                    let (class, mark) = match f.kind {
                        FlagKind::Impossible => ("impossible", "&#9888; impossible: "),
                        FlagKind::RoundsExcluded => ("excluded", ""),
                    };
                    format!(
                        "<li class=\"{class}\">{}: {mark}{}</li>",
                        esc(&m.label),
                        esc(&f.text)
                    )
                })
            })
            .collect();
        if !flagged.is_empty() {
            let _ = write!(h, "<ul class=\"flags\">{}</ul>", flagged.concat());
        }
    }
    if !s.findings.is_empty() {
        h.push_str("<ul class=\"findings\">");
        for f in &s.findings {
            let _ = write!(h, "<li>{}</li>", esc(f));
        }
        h.push_str("</ul>");
    }
    let _ = write!(
        h,
        "<details><summary>How it was measured</summary><p>{}</p></details></section>",
        esc(&s.method)
    );
}

/// The color of a metric's bar.
fn color(m: &Metric) -> &'static str {
    match m.worker {
        Worker::Thread => THREAD,
        Worker::Sequential => SEQUENTIAL,
        Worker::Process => match m.start_method {
            Some("fork") => PROCESS[0],
            Some("forkserver") => PROCESS[1],
            Some("spawn") => PROCESS[2],
            _ => PROCESS[3],
        },
    }
}

/// A horizontal bar chart of a group, with min–max whiskers (the range) and reference
/// lines.
fn chart(g: &Group, refs: &[(f64, String)]) -> String {
    const W: f64 = 900.0;
    const LABEL: f64 = 290.0;
    const PLOT: f64 = 480.0;
    const ROW: f64 = 34.0;
    const TOP: f64 = 18.0;
    let rows = g.metrics.len() as f64;
    let axis_h = 22.0;
    let height = TOP + rows * ROW + axis_h;
    let top_value = g
        .metrics
        .iter()
        .flat_map(|m| [m.value, m.max])
        .flatten()
        .chain(refs.iter().map(|r| r.0))
        .fold(0.0f64, f64::max);
    let (step, max) = nice_axis(top_value);
    let x = |v: f64| LABEL + (v / max).clamp(0.0, 1.0) * PLOT;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg viewBox=\"0 0 {W} {height}\" xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" \
         font-family=\"system-ui, DejaVu Sans, sans-serif\" font-size=\"13\">"
    );
    // Grid and ticks.
    let mut t = 0.0;
    while t <= max * 1.0001 {
        let gx = x(t);
        let _ = write!(
            s,
            "<line x1=\"{gx:.1}\" y1=\"{TOP:.1}\" x2=\"{gx:.1}\" y2=\"{:.1}\" stroke=\"#e2e8f0\"/>\
             <text x=\"{gx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#64748b\" font-size=\"11\">{}</text>",
            TOP + rows * ROW,
            TOP + rows * ROW + 15.0,
            fmt_num(t)
        );
        t += step;
    }
    for (v, label) in refs {
        let rx = x(*v);
        let _ = write!(
            s,
            "<line x1=\"{rx:.1}\" y1=\"{:.1}\" x2=\"{rx:.1}\" y2=\"{:.1}\" stroke=\"#0f172a\" \
             stroke-dasharray=\"4 3\" opacity=\"0.6\"/><text x=\"{rx:.1}\" y=\"11\" \
             text-anchor=\"middle\" fill=\"#0f172a\" font-size=\"11\">{}</text>",
            TOP - 4.0,
            TOP + rows * ROW,
            esc(label)
        );
    }
    for (i, m) in g.metrics.iter().enumerate() {
        let y = TOP + i as f64 * ROW + 6.0;
        let bh = ROW - 12.0;
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#0f172a\">{}</text>",
            LABEL - 10.0,
            y + bh / 2.0 + 4.5,
            esc(&truncate(&m.label, 40))
        );
        match m.value {
            Some(v) => {
                let w = (x(v) - LABEL).max(1.5);
                let _ = write!(
                    s,
                    "<rect x=\"{LABEL}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{bh:.1}\" rx=\"3\" fill=\"{}\"><title>{}: {} {}</title></rect>",
                    color(m),
                    esc(&m.label),
                    fmt_num(v),
                    g.unit
                );
                let mut end = x(v);
                if let (Some(lo), Some(hi)) = (m.min, m.max) {
                    if m.samples > 1 && hi > lo {
                        let (x0, x1, ym) = (x(lo), x(hi), y + bh / 2.0);
                        let _ = write!(
                            s,
                            "<path d=\"M{x0:.1} {ym:.1}H{x1:.1}M{x0:.1} {:.1}V{:.1}M{x1:.1} {:.1}V{:.1}\" \
                             stroke=\"#0f172a\" stroke-width=\"1.3\" opacity=\"0.55\" fill=\"none\"/>",
                            ym - 5.0,
                            ym + 5.0,
                            ym - 5.0,
                            ym + 5.0
                        );
                        end = end.max(x1);
                    }
                }
                let unit = if g.unit == "count" { "" } else { g.unit };
                let (fill, mark) = if m.impossible().is_some() {
                    ("#b91c1c", " \u{26a0} impossible")
                } else {
                    ("#0f172a", "")
                };
                let _ = write!(
                    s,
                    "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"{fill}\" font-weight=\"600\">{} {unit}{mark}</text>",
                    end + 8.0,
                    y + bh / 2.0 + 4.5,
                    fmt_num(v)
                );
            }
            None => {
                let why = m.note.as_deref().unwrap_or("not measured");
                let _ = write!(
                    s,
                    "<rect x=\"{LABEL}\" y=\"{y:.1}\" width=\"{PLOT}\" height=\"{bh:.1}\" rx=\"3\" \
                     fill=\"#f1f5f9\" stroke=\"#cbd5e1\" stroke-dasharray=\"5 4\"/>\
                     <text x=\"{:.1}\" y=\"{:.1}\" fill=\"#64748b\" font-style=\"italic\">{}</text>",
                    LABEL + 10.0,
                    y + bh / 2.0 + 4.5,
                    esc(&truncate(why, 70))
                );
            }
        }
    }
    s.push_str("</svg>");
    s
}

/// A tick step and an axis maximum (a multiple of the step) that covers `top`.
fn nice_axis(top: f64) -> (f64, f64) {
    if top <= 0.0 || !top.is_finite() {
        return (0.25, 1.0);
    }
    let raw = top / 4.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|f| f * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    (step, (top / step).ceil().max(1.0) * step)
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        s.chars().take(n - 1).collect::<String>() + "…"
    }
}

/// Escapes text for HTML and SVG.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            _ => o.push(c),
        }
    }
    o
}

#[cfg(test)]
mod tests {
    #[test]
    fn axis_covers_the_top_value() {
        for top in [0.3, 1.0, 7.0, 38.4, 999.0, 2345.0] {
            let (step, max) = super::nice_axis(top);
            assert!(max >= top && max / step <= 8.0, "{top}: {step} {max}");
        }
    }

    #[test]
    fn escapes_markup() {
        assert_eq!(super::esc("<a & \"b\">"), "&lt;a &amp; &quot;b&quot;&gt;");
    }
}
