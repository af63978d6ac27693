//! The cluster backend over TLS (feature `cluster-tls`): the TLS
//! Redis and test CA that `ci/with-redis.sh` starts.
#![cfg(feature = "cluster-tls")]

#[path = "util/cluster.rs"]
mod cluster_util;
mod util;

use std::time::Duration;

use cluster_util::{opts, unique_name, wait_hosts, Host};
use multiproc::pool::{cluster, Pool};
use multiproc::ErrorKind;

fn double(x: u32) -> u32 {
    x * 2
}
multiproc::task!(double);

#[test]
fn t14_rediss_with_the_test_ca_runs_a_map_and_a_wrong_ca_is_refused() {
    let _w = util::watchdog(Duration::from_secs(90));
    let (Ok(url), Ok(ca)) = (
        std::env::var("MULTIPROC_TEST_REDIS_TLS_URL"),
        std::env::var("MULTIPROC_TEST_REDIS_CA"),
    ) else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "MULTIPROC_TEST_REDIS_TLS_URL / _CA are not set under CI=true"
        );
        eprintln!("skipped: MULTIPROC_TEST_REDIS_TLS_URL is not set");
        return;
    };
    let pem = std::fs::read(&ca).unwrap();
    let name = unique_name();
    let _host = Host::start_with(&url, &name, 1, &[(cluster::WORKER_TLS_CA_ENV, ca.as_str())]);
    let pool = Pool::builder()
        .cluster(opts(&url, &name).tls_root_cert(pem))
        .build()
        .unwrap();
    wait_hosts(&pool, 1, Duration::from_secs(30));
    assert_eq!(
        pool.map(double, 0..10u32).unwrap(),
        (0..10u32).map(double).collect::<Vec<_>>()
    );
    pool.join();
    // Another CA: the handshake fails, with rustls's error in the message.
    let dir = std::env::temp_dir().join(format!("mp-t14-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let other = dir.join("other.pem");
    let ok = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .arg("-keyout")
        .arg(dir.join("other.key"))
        .arg("-out")
        .arg(&other)
        .args(["-days", "1", "-subj", "/CN=another-ca"])
        .output()
        .unwrap();
    assert!(ok.status.success(), "{ok:?}");
    let e = Pool::builder()
        .cluster(opts(&url, &name).tls_root_cert(std::fs::read(&other).unwrap()))
        .build()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BrokerUnavailable, "{e}");
    // rustls's error is the source (Display does not repeat it).
    let mut chain = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        chain.push_str(&format!(": {s}"));
        source = s.source();
    }
    assert!(chain.contains("certificate"), "{chain}");
    let _ = std::fs::remove_dir_all(dir);
    cluster_util::cleanup(&std::env::var("MULTIPROC_TEST_REDIS_URL").unwrap(), &name);
}
