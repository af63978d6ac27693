//! The crate's layers, checked: no module imports a module of a higher layer.
//!
//! The folders promise an order, low to high:
//!
//! | rank | modules | may use |
//! |---|---|---|
//! | 0 | `sys` | nothing else in the crate |
//! | 1 | `error`, `exit`, `fault`, `panic`, `codec`, `identity`, `backoff` | `sys` |
//! | 2 | `sync`, `shm` | ranks 0-1 and each other |
//! | 3 | `ipc` | ranks 0-2 |
//! | 4 | `process`, `thread` | ranks 0-3 |
//! | 5 | `pool`, `manager`, `scope` | ranks 0-4 |
//! | 6 | `tokio_io`, `test_support`, `fuzzing` (`__fuzz`), `python_table` | anything |
//!
//! Every `crate::` path in a source file's code (comments, doc links and the test modules
//! that close a file are not imports) names the module it reaches; a module of a higher rank
//! is a violation, listed with its file and line. A module this table does not rank fails
//! the test too, so a new module is placed on purpose.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// The rank of each top-level module (see the module docs).
fn rank(module: &str) -> Option<u8> {
    Some(match module {
        "sys" => 0,
        "error" | "exit" | "fault" | "panic" | "codec" | "identity" | "backoff" => 1,
        "sync" | "shm" => 2,
        "ipc" => 3,
        "process" | "thread" => 4,
        "pool" | "manager" | "scope" => 5,
        "tokio_io" | "test_support" | "fuzzing" | "__fuzz" | "python_table" | "lib" => 6,
        _ => return None,
    })
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("src is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to: its first folder, or its stem at the root.
fn owner(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src");
    let first = rel.components().next().expect("a component");
    let name = first.as_os_str().to_string_lossy();
    name.trim_end_matches(".rs").to_owned()
}

/// True for a file that only holds tests (`tests.rs`, or anything under a `tests` folder).
fn test_only(src: &Path, file: &Path) -> bool {
    let rel = file.strip_prefix(src).expect("under src");
    rel.components()
        .any(|c| c.as_os_str() == "tests" || c.as_os_str() == "tests.rs")
}

/// The top-level modules named by `crate::` paths on one line of code, with `{a, b::c}`
/// groups opened (the group may continue on later lines: `open` carries that state).
fn reached(line: &str, open: &mut Option<usize>, out: &mut Vec<String>) {
    let mut rest = line;
    if let Some(depth) = open.as_mut() {
        // Inside `use crate::{ ... }`: every name at depth 1 is a top-level module.
        rest = scan_group(rest, depth, out);
        if *depth == 0 {
            *open = None;
        } else {
            return;
        }
    }
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().last();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue; // `$crate::` in a macro or a longer identifier
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            rest = scan_group(group, &mut depth, out);
            if depth > 0 {
                *open = Some(depth);
                return;
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            out.push(name);
        }
    }
}

/// Reads a `{...}` group's text, pushing the names at depth 1; returns what follows the
/// closing brace (or "" when the group continues on the next line).
fn scan_group<'a>(text: &'a str, depth: &mut usize, out: &mut Vec<String>) -> &'a str {
    let mut expect_name = true;
    for (i, c) in text.char_indices() {
        match c {
            '{' => *depth += 1,
            '}' => {
                *depth -= 1;
                if *depth == 0 {
                    return &text[i + 1..];
                }
            }
            ',' if *depth == 1 => expect_name = true,
            c if *depth == 1 && expect_name && (c.is_alphanumeric() || c == '_') => {
                let name: String = text[i..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                out.push(name);
                expect_name = false;
            }
            _ => {}
        }
    }
    ""
}

#[test]
fn no_module_imports_a_higher_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    files.sort();
    let mut violations = Vec::new();
    let mut unranked = BTreeMap::new();
    for file in &files {
        if test_only(&src, file) {
            continue;
        }
        let me = owner(&src, file);
        let Some(my_rank) = rank(&me) else {
            unranked.insert(me.clone(), file.display().to_string());
            continue;
        };
        let text = fs::read_to_string(file).expect("a readable source file");
        let mut open = None;
        let mut lines = text.lines().enumerate().peekable();
        while let Some((n, line)) = lines.next() {
            let code = line.trim_start();
            if code.starts_with("#[cfg(test)]")
                && lines
                    .peek()
                    .is_some_and(|(_, l)| l.trim_start().starts_with("mod tests"))
            {
                break; // the closing test module: tests may reach any layer
            }
            if code.starts_with("//") {
                continue;
            }
            let code = code.split(" //").next().unwrap_or(code);
            let mut names = Vec::new();
            reached(code, &mut open, &mut names);
            for name in names {
                if name == "self" || name == "super" || name == me {
                    continue;
                }
                match rank(&name) {
                    Some(r) if r > my_rank => violations.push(format!(
                        "{}:{}: `{me}` (rank {my_rank}) uses `crate::{name}` (rank {r})",
                        file.strip_prefix(&src).unwrap().display(),
                        n + 1
                    )),
                    Some(_) => {}
                    // A re-exported item at the crate root (`crate::Error`, a macro).
                    None if name.starts_with(char::is_uppercase) => {}
                    None => {
                        unranked.insert(name, file.display().to_string());
                    }
                }
            }
        }
    }
    assert!(
        unranked.is_empty(),
        "modules without a layer (add them to `rank`): {unranked:?}"
    );
    assert!(
        violations.is_empty(),
        "{} upward imports:\n{}",
        violations.len(),
        violations.join("\n")
    );
}
