use super::*;
use crate::ErrorKind;

fn forty_two() -> u32 {
    42
}

#[test]
fn every_method_returns_the_value() {
    for m in StartMethod::ALL {
        let b = Builder::new().start_method(m).allow_threads(true);
        assert_eq!(b.start(forty_two).unwrap().join().unwrap(), 42, "{m}");
    }
}

#[test]
fn fork_is_refused_with_threads_by_default() {
    // The test harness runs this test on a thread of its own, besides main.
    let _hold = std::thread::spawn(|| std::thread::sleep(std::time::Duration::from_millis(200)));
    let e = Builder::new()
        .start_method(StartMethod::Fork)
        .start(forty_two)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ForkWithThreads);
}
