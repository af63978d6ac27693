//! The three start methods side by side: what the child sees, and what each costs here.
//!
//! Run: `cargo run --release --example start_methods`

use std::time::Instant;

use multiproc::{Process, StartMethod};

/// Runs in the child: reports its pid, its parent and how many threads it has.
fn whoami(label: String) -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let threads = status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .map(str::trim)
        .unwrap_or("?")
        .to_owned();
    format!(
        "{label}: pid {}, parent {}, {threads} thread(s)",
        std::process::id(),
        std::os::unix::process::parent_id()
    )
}

fn main() -> multiproc::Result<()> {
    println!("parent: pid {}", std::process::id());
    for method in StartMethod::ALL {
        // The first start of a fork server also starts the server; time the second.
        let first = Process::builder()
            .start_method(method)
            .start_with(whoami, method.to_string())?;
        println!("{}", first.join()?);
        let t = Instant::now();
        let p = Process::builder()
            .start_method(method)
            .start_with(whoami, String::new())?;
        p.join()?;
        println!("  start+join: {:?}", t.elapsed());
    }
    Ok(())
}
