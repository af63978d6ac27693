//! Named shared memory (`SharedMemory::create_named`/`open`/`open_or_create`/
//! `unlink`): processes that share only a name, races to create, and no leak once
//! unlinked.

mod util;

use std::time::Duration;

use multiproc::{ErrorKind, Process, SharedMemory, StartMethod};

const LIMIT: Duration = Duration::from_secs(60);

fn writer(name: String) {
    let shm = SharedMemory::open(&name).unwrap();
    shm.atomic_u64(0)
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
}

#[test]
fn children_open_by_name_by_every_start_method() {
    let _w = util::watchdog(LIMIT);
    let name = util::unique_name("mp-named");
    let shm = SharedMemory::create_named(&name, 4096).unwrap();
    assert_eq!(shm.shm_name(), Some(name.as_str()));
    assert!(std::path::Path::new(&format!("/dev/shm/{name}")).exists());
    let e = SharedMemory::create_named(&name, 4096).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Os);
    assert!(e.to_string().contains(&name), "{e}");
    for m in StartMethod::ALL {
        util::builder(m)
            .start_with(writer, name.clone())
            .unwrap()
            .join()
            .unwrap();
    }
    assert_eq!(
        shm.atomic_u64(0).load(std::sync::atomic::Ordering::SeqCst),
        3
    );
    shm.unlink().unwrap();
    // Gone from /dev/shm: nothing leaks; the mapping still works.
    assert!(!std::path::Path::new(&format!("/dev/shm/{name}")).exists());
    assert_eq!(SharedMemory::open(&name).unwrap_err().kind(), ErrorKind::Os);
    assert!(shm.unlink().is_err());
    shm.write(8, b"still mapped").unwrap();
}

fn racer(name: String) -> bool {
    let (shm, created) = SharedMemory::open_or_create(&name, 64).unwrap();
    shm.atomic_u32(0)
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    created
}

#[test]
fn exactly_one_of_many_racers_creates() {
    let _w = util::watchdog(LIMIT);
    let name = util::unique_name("mp-race");
    let ps: Vec<_> = (0..6)
        .map(|_| Process::start_with(racer, name.clone()).unwrap())
        .collect();
    let created = ps.into_iter().map(|p| p.join().unwrap());
    assert_eq!(created.filter(|&c| c).count(), 1);
    let shm = SharedMemory::open(&name).unwrap();
    assert_eq!(
        shm.atomic_u32(0).load(std::sync::atomic::Ordering::SeqCst),
        6
    );
    SharedMemory::unlink_named(&name).unwrap();
}

#[test]
fn bad_names_and_anonymous_segments() {
    for bad in ["", "a/b", "..", "/"] {
        assert_eq!(
            SharedMemory::create_named(bad, 10).unwrap_err().kind(),
            ErrorKind::InvalidInput,
            "{bad:?}"
        );
    }
    let anon = SharedMemory::create(10).unwrap();
    assert_eq!(anon.shm_name(), None);
    assert_eq!(anon.unlink().unwrap_err().kind(), ErrorKind::InvalidInput);
}

fn bump_list(name: String) {
    use multiproc::shm::{Item, ShareableList};
    let l = ShareableList::open(&name).unwrap();
    let Item::Int(n) = l.get(0).unwrap() else {
        panic!("not an int")
    };
    l.set(0, Item::Int(n + 1)).unwrap();
    l.set(1, Item::Str(format!("seen by {}", std::process::id() % 10)))
        .unwrap();
}

#[test]
fn a_named_shareable_list_between_processes() {
    use multiproc::shm::{Item, ShareableList};
    let _w = util::watchdog(LIMIT);
    let name = util::unique_name("mp-list");
    let l = ShareableList::create_named(
        &name,
        vec![
            Item::Int(0),
            "a string with room".into(),
            Item::Bytes(vec![9; 3]),
        ],
    )
    .unwrap();
    for m in StartMethod::ALL {
        util::builder(m)
            .start_with(bump_list, name.clone())
            .unwrap()
            .join()
            .unwrap();
    }
    assert_eq!(l.get(0).unwrap(), Item::Int(3));
    assert!(matches!(l.get(1).unwrap(), Item::Str(s) if s.starts_with("seen by ")));
    assert_eq!(l.get(2).unwrap(), Item::Bytes(vec![9; 3]));
    // Not a list: refused, not misread.
    let other = util::unique_name("mp-notalist");
    let shm = SharedMemory::create_named(&other, 64).unwrap();
    assert_eq!(
        ShareableList::open(&other).unwrap_err().kind(),
        ErrorKind::Corrupt
    );
    shm.unlink().unwrap();
    l.shm().unlink().unwrap();
}
