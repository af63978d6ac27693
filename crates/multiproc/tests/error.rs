//! `Error` as a value: its Display does not repeat its source (so a chain printer such
//! as anyhow's `{:#}` shows each cause once), messages name what failed, and it
//! crosses processes (serde), so a child can return one.

mod util;

use std::io;
use std::time::Duration;

use multiproc::{Error, ErrorKind, Process, SharedMemory, StartMethod, Thread};

const LIMIT: Duration = Duration::from_secs(60);

/// What anyhow's `{:#}` prints: each error of the chain once, joined by ": ".
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s += &format!(": {c}");
        cur = c.source();
    }
    s
}

#[test]
fn display_leaves_the_source_to_source_and_names_the_executable() {
    let _w = util::watchdog(LIMIT);
    let err = Process::builder()
        .start_method(StartMethod::Spawn)
        .executable("/nonexistent/multiproc-test-program")
        .start(|| 1u32)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Start);
    let shown = err.to_string();
    assert!(
        shown.contains("/nonexistent/multiproc-test-program"),
        "{shown}"
    );
    let os = io::Error::from_raw_os_error(libc::ENOENT).to_string();
    assert!(!shown.contains(&os), "Display repeats its source: {shown}");
    let all = chain(&err);
    assert_eq!(all.matches(&os).count(), 1, "{all}");
}

#[test]
fn a_bare_os_error_displays_as_itself_once() {
    let io = io::Error::from_raw_os_error(libc::EACCES);
    let text = io.to_string();
    let err = Error::from(io);
    assert_eq!(err.kind(), ErrorKind::Os);
    assert_eq!(err.raw_os_error(), Some(libc::EACCES));
    assert_eq!(chain(&err).matches(&text).count(), 1, "{}", chain(&err));
}

fn attach_missing(path: String) -> Result<u32, Error> {
    SharedMemory::attach(&path)?;
    Ok(1)
}

fn boom() -> u32 {
    panic!("deliberate")
}

fn thread_panics(_: ()) -> Result<u32, Error> {
    Thread::start(boom)?.join()
}

#[test]
fn a_child_returns_an_error_by_every_start_method() {
    let _w = util::watchdog(LIMIT);
    let path = "/nonexistent/multiproc-segment".to_string();
    let here = SharedMemory::attach(&path).unwrap_err();
    assert!(here.to_string().contains(&path), "{here}");
    for method in StartMethod::ALL {
        let b = || util::builder(method);
        let got = b()
            .start_with(attach_missing, path.clone())
            .unwrap()
            .join()
            .unwrap()
            .unwrap_err();
        assert_eq!(got.kind(), here.kind(), "{method:?}");
        assert_eq!(got.raw_os_error(), Some(libc::ENOENT), "{method:?}");
        assert_eq!(got.to_string(), here.to_string(), "{method:?}");
        assert_eq!(chain(&got), chain(&here), "{method:?}");

        let got = b()
            .start_with(thread_panics, ())
            .unwrap()
            .join()
            .unwrap()
            .unwrap_err();
        assert_eq!(got.kind(), ErrorKind::Panicked, "{method:?}");
        assert_eq!(got.panic().unwrap().message(), "deliberate", "{method:?}");
        assert!(got.panic().unwrap().location().is_some(), "{method:?}");
    }
}
