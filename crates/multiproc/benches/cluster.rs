//! The cluster backend's per-task cost through Redis, beside the local process pool
//! and Redis's own ceiling on this machine.
//!
//! ```sh
//! cargo bench -p multiproc --features cluster --bench cluster
//! MULTIPROC_BENCH_QUICK=1 cargo bench -p multiproc --features cluster --bench cluster
//! ```
//!
//! Starts its own `redis-server` (loopback, a free port, a password, no persistence)
//! and two worker hosts (this binary re-executed with `MULTIPROC_WORKER`, one slot
//! each), and stops them by PID at the end. Rows (median and best over rounds):
//!
//! - `cluster_trivial_2000/hosts2`: 2,000 `submit`s of a trivial task, then every
//!   handle joined: µs per task;
//! - `cluster_map_20000/hosts2`: `map` of a trivial task over 20,000 items (automatic
//!   chunks): µs per item;
//! - `cluster_apply_serial`: one `apply` at a time: µs per round trip;
//! - `local_trivial_2000/processes2`: the first row on `Pool::processes(2)`;
//! - `redis_xadd` and `redis_xadd_pipelined`: `redis-benchmark -c 50` XADD, without
//!   and with `-P 32` (requests/s), when `redis-benchmark` is installed.
#![allow(missing_docs)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use multiproc::pool::{cluster, Pool};

const KEY: &str = "cluster-bench-key-0123456789";

fn inc(x: u64) -> u64 {
    x.wrapping_mul(3).wrapping_add(1)
}
multiproc::task!(inc);

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn stats(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0])
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` from tooling
    }
    let quick = std::env::var_os("MULTIPROC_BENCH_QUICK").is_some();
    let rounds = if quick { 3 } else { 7 };
    let port = free_port();
    let pw = format!("bench{port}");
    let dir = std::env::temp_dir().join(format!("mp-bench-redis-{port}"));
    std::fs::create_dir_all(&dir).unwrap();
    let redis = Kill(
        Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--requirepass",
                &pw,
            ])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (apt-get install redis-server)"),
    );
    let url = format!("redis://default:{pw}@127.0.0.1:{port}/");
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "redis-server did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let name = "bench";
    let hosts: Vec<Kill> = (0..2)
        .map(|_| {
            Kill(
                Command::new(std::env::current_exe().unwrap())
                    .env(cluster::WORKER_ENV, &url)
                    .env(cluster::WORKER_NAME_ENV, name)
                    .env(cluster::WORKER_SLOTS_ENV, "1")
                    .env(cluster::KEY_ENV, KEY)
                    .spawn()
                    .unwrap(),
            )
        })
        .collect();
    let pool = Pool::builder()
        .cluster(
            cluster::Options::new(&url)
                .name(name)
                .auth_key(KEY.as_bytes().to_vec()),
        )
        .build()
        .unwrap();
    let start = Instant::now();
    while pool.cluster_stats().unwrap().hosts.len() < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "hosts did not come up"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let local = Pool::processes(2).unwrap();
    // Warm up both.
    let _ = pool.map(inc, 0..1000u64).unwrap();
    let _ = local.map(inc, 0..1000u64).unwrap();

    let mut rows: Vec<(&str, Vec<f64>, &str)> = vec![
        ("cluster_trivial_2000/hosts2", vec![], "us/task"),
        ("local_trivial_2000/processes2", vec![], "us/task"),
        ("cluster_map_20000/hosts2", vec![], "us/item"),
        ("cluster_apply_serial", vec![], "us/task"),
    ];
    let serial = if quick { 200 } else { 500 };
    // Interleaved rounds: every row once per round.
    for _ in 0..rounds {
        for (i, p) in [(0, &pool), (1, &local)] {
            let t = Instant::now();
            let hs: Vec<_> = (0..2000u64).map(|x| p.submit(inc, x)).collect();
            for h in hs {
                std::hint::black_box(h.join().unwrap());
            }
            rows[i].1.push(t.elapsed().as_secs_f64() * 1e6 / 2000.0);
        }
        let t = Instant::now();
        std::hint::black_box(pool.map(inc, 0..20_000u64).unwrap());
        rows[2].1.push(t.elapsed().as_secs_f64() * 1e6 / 20_000.0);
        let t = Instant::now();
        for x in 0..serial {
            std::hint::black_box(pool.apply(inc, x).unwrap());
        }
        rows[3]
            .1
            .push(t.elapsed().as_secs_f64() * 1e6 / serial as f64);
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "\n## Cluster ({rounds} rounds, 2 hosts x 1 slot; loadavg {})\n",
        load.trim()
    );
    println!("| row | median | best | unit |");
    println!("|---|---|---|---|");
    for (name, v, unit) in rows {
        let (m, b) = stats(v);
        println!("| {name} | {m:.1} | {b:.1} | {unit} |");
    }
    let s = pool.cluster_stats().unwrap();
    println!(
        "\nstats: redelivered {}, duplicates {}",
        s.redelivered, s.duplicates_dropped
    );
    pool.join();
    local.join();
    drop(hosts);
    // Redis's own ceiling on this machine, beside.
    for (row, extra) in [
        ("redis_xadd", vec![]),
        ("redis_xadd_pipelined", vec!["-P", "32"]),
    ] {
        let out = Command::new("redis-benchmark")
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-a", &pw, "-q"])
            .args(["-n", if quick { "50000" } else { "200000" }, "-c", "50"])
            .args(&extra)
            .args(["XADD", "bench:s", "*", "f", "v"])
            .output();
        match out {
            Ok(o) => {
                let text = String::from_utf8_lossy(&o.stdout);
                let last = text
                    .split('\r')
                    .rfind(|l| l.contains("requests per second"))
                    .unwrap_or("")
                    .trim()
                    .to_owned();
                println!("| {row} | {last} |");
            }
            Err(e) => println!("{row}: redis-benchmark not run ({e})"),
        }
    }
    drop(redis);
    let _ = std::fs::remove_dir_all(&dir);
}
