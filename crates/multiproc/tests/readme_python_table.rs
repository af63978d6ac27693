//! The README's "Coming from Python" table is compiled: `src/python_table.rs` holds a
//! doctest with one `// row:` section per row. This checks that the two agree: the same
//! rows in the same order, and every call the multiproc column names (`name(`, `.name`)
//! made in that row's section, so a row added, changed or misspelled in the README
//! without its doctest fails here.

use std::collections::BTreeSet;

const README: &str = include_str!("../README.md");
const DOCTEST: &str = include_str!("../src/python_table.rs");

/// The (Python, multiproc) cells of the table's rows.
fn rows() -> Vec<(String, String)> {
    let table = README
        .split("## Coming from Python")
        .nth(1)
        .expect("the README has the section")
        .split("\n## ")
        .next()
        .unwrap();
    table
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| Python |"))
        .map(|l| {
            let cells: Vec<&str> = l
                .trim_start_matches("| ")
                .trim_end_matches(" |")
                .split(" | ")
                .collect();
            assert_eq!(cells.len(), 2, "a row of two cells: {l}");
            (cells[0].to_owned(), cells[1].to_owned())
        })
        .collect()
}

/// The doctest's sections: (quoted Python cell, code up to the next section).
fn sections() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in DOCTEST.lines() {
        let line = line.trim_start_matches("//!").trim_start();
        if let Some(py) = line.strip_prefix("// row: ") {
            out.push((py.to_owned(), String::new()));
        } else if let Some(last) = out.last_mut() {
            last.1 += line;
            last.1 += "\n";
        }
    }
    out
}

/// Identifiers the cell calls: inside backticks, followed by `(` or after a `.`.
fn calls(cell: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for span in cell.split('`').skip(1).step_by(2) {
        let b = span.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i].is_ascii_alphabetic() || b[i] == b'_' {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                let called = b.get(i) == Some(&b'(') || span[i..].starts_with("::<");
                let method = start > 0 && b[start - 1] == b'.';
                let word = &span[start..i];
                if (called || method) && !matches!(word, "Some" | "Ok" | "Err") {
                    out.insert(word.to_owned());
                }
            } else {
                i += 1;
            }
        }
    }
    out
}

#[test]
fn every_row_has_its_doctest_section_in_order() {
    let readme: Vec<String> = rows().into_iter().map(|r| r.0).collect();
    let doctest: Vec<String> = sections().into_iter().map(|s| s.0).collect();
    assert_eq!(readme, doctest);
}

#[test]
fn every_call_a_row_names_is_made_in_its_section() {
    let mut missing = Vec::new();
    for ((py, mp), (_, code)) in rows().iter().zip(sections()) {
        for call in calls(mp) {
            if !code.contains(&call) {
                missing.push(format!("{py}: {call}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "not exercised in src/python_table.rs: {missing:#?}"
    );
}

#[test]
fn the_checker_sees_calls() {
    let c = calls("`Queue::bounded(n)?`, `put`, `conn.recv::<T>()?` (`Some(x)`)");
    assert_eq!(c, BTreeSet::from(["bounded".into(), "recv".into()]));
}
