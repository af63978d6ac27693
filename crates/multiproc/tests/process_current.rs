//! `current_process`, `parent_process`, `active_children` and default process names.

mod util;

use std::time::Duration;

use multiproc::ipc::{self, Sender};
use multiproc::process::{active_children, current_process, parent_process, MAIN_PROCESS_NAME};
use multiproc::{Event, Process, StartMethod};

const LIMIT: Duration = Duration::from_secs(60);

fn names() -> (String, String) {
    let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
    (
        comm.trim_end().to_string(),
        current_process().name().to_string(),
    )
}

/// Unnamed children are `Process-N` in `ps` by every start method (a ForkServer
/// child used to keep the server's name, `multiproc-fsrv`).
#[test]
fn default_names_are_visible_in_ps_by_every_start_method() {
    let _w = util::watchdog(LIMIT);
    assert_eq!(current_process().name(), MAIN_PROCESS_NAME);
    assert!(parent_process().is_none());
    let mut seen = Vec::new();
    for m in StartMethod::ALL {
        let p = util::builder(m).start(names).unwrap();
        let name = p.name().to_string();
        assert!(name.starts_with("Process-"), "{name}");
        let (comm, current) = p.join().unwrap();
        assert_eq!(comm, name, "{m}");
        assert_eq!(current, name, "{m}");
        seen.push(name);
    }
    seen.dedup();
    assert_eq!(seen.len(), 3, "{seen:?}");
    // A long name is whole in current_process(), cut to 15 bytes in ps.
    let long = "a-rather-long-process-name";
    let (comm, current) = Process::builder()
        .name(long)
        .start(names)
        .unwrap()
        .join()
        .unwrap();
    assert_eq!((comm.as_str(), current.as_str()), (&long[..15], long));
}

fn watch_parent((q, started): (Sender<(i32, bool)>, Event)) {
    let p = parent_process().expect("started by multiproc");
    started.set();
    let died = p.wait_timeout(Duration::from_secs(30));
    q.send((p.pid(), died && !p.is_alive())).unwrap();
}

fn start_watcher_and_exit(q: Sender<(i32, bool)>) -> i32 {
    // The grandchild must outlive this process to see it go: not killed with it,
    // and its handle forgotten (a dropped handle's child is killed at exit). It
    // must have started first: a Spawn child refuses a launch whose parent is gone.
    let started = Event::new().unwrap();
    let detached = Process::builder()
        .start_method(StartMethod::Spawn)
        .die_with_parent(false)
        .start_with(watch_parent, (q, started.clone()))
        .unwrap();
    assert!(started.wait_timeout(Duration::from_secs(30)));
    std::mem::forget(detached);
    std::process::id() as i32
}

#[test]
fn a_child_sees_its_parent_die() {
    let _w = util::watchdog(LIMIT);
    for m in [StartMethod::Spawn, StartMethod::ForkServer] {
        let (tx, rx) = ipc::channel().unwrap();
        let parent = Process::builder()
            .start_method(m)
            .start_with(start_watcher_and_exit, tx)
            .unwrap();
        let parent_pid = parent.join().unwrap();
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(45)).unwrap(),
            (parent_pid, true),
            "{m}"
        );
    }
}

fn parent_of_me() -> Option<(i32, bool)> {
    parent_process().map(|p| (p.pid(), p.is_alive()))
}

#[test]
fn parent_process_by_every_start_method() {
    let _w = util::watchdog(LIMIT);
    for m in StartMethod::ALL {
        let got = util::builder(m)
            .start(parent_of_me)
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(got, Some((std::process::id() as i32, true)), "{m}");
    }
}

fn nap() {
    std::thread::sleep(Duration::from_secs(30));
}

#[test]
fn active_children_lists_the_running_ones() {
    let _w = util::watchdog(LIMIT);
    let a = Process::builder().name("napper-a").start(nap).unwrap();
    let b = Process::builder().name("napper-b").start(nap).unwrap();
    let mine = |pid: i32| active_children().into_iter().find(|c| c.pid() == pid);
    assert_eq!(mine(a.pid()).unwrap().name(), "napper-a");
    assert_eq!(mine(b.pid()).unwrap().name(), "napper-b");
    a.kill().unwrap();
    // Killed but not yet joined: no longer active.
    assert!(util::eventually(Duration::from_secs(10), || mine(a.pid()).is_none()));
    assert!(mine(b.pid()).is_some());
    let _ = a.join();
    let b_pid = b.pid();
    b.kill().unwrap();
    let _ = b.join();
    assert!(mine(b_pid).is_none());
}
