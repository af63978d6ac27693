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
//!   and with `-P 32` (requests/s), when `redis-benchmark` is installed;
//! - `cluster_collatz_400x10k/hostsN`, N = 1, 2, 4 (as root, with `ip`): a CPU-bound
//!   `map` of 400 tasks (10,000 Collatz walks each, one task per chunk) on N hosts,
//!   each in its own network namespace and cgroup limited to [`HOST_CPUS`] CPU,
//!   reaching a Redis on a bridge; and `local_collatz_400x10k/processes1`, the same
//!   map on `Pool::processes(1)` with its worker process in one such cgroup. Seconds per map, with the
//!   speedups against one host and one host against local. Skipped, saying why,
//!   without root.
//!
//! `MULTIPROC_BENCH_ONLY=apply,redis` runs only the rows whose name contains one of
//! the words.
#![allow(missing_docs)]

#[path = "../tests/util/netns.rs"]
mod netns;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use multiproc::pool::{cluster, Pool};

const KEY: &str = "cluster-bench-key-0123456789";

fn inc(x: u64) -> u64 {
    x.wrapping_mul(3).wrapping_add(1)
}
/// Collatz walks from `seed * 10_000` for 10,000 starts: total steps.
fn collatz(seed: u64) -> u64 {
    let mut total = 0u64;
    for n in seed * 10_000 + 1..=(seed + 1) * 10_000 {
        let mut x = n;
        while x != 1 {
            x = if x % 2 == 0 { x / 2 } else { 3 * x + 1 };
            total += 1;
        }
    }
    total
}
multiproc::task!(inc, collatz);

/// The CPU quota of each simulated host (4 hosts fit in 2 cores with room to spare).
const HOST_CPUS: f64 = 0.4;
const COLLATZ_TASKS: u64 = 400;

fn collatz_map(pool: &Pool) -> f64 {
    let t = Instant::now();
    let out = pool.map_chunked(collatz, 0..COLLATZ_TASKS, 1).unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(out.len(), COLLATZ_TASKS as usize);
    std::hint::black_box(out);
    secs
}

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

/// Whether the row `name` runs: `MULTIPROC_BENCH_ONLY` is unset, or names part of it.
fn wanted(name: &str) -> bool {
    let only = std::env::var("MULTIPROC_BENCH_ONLY").unwrap_or_default();
    only.is_empty() || only.split(',').any(|w| !w.is_empty() && name.contains(w))
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
    let (redis, url, dir) = redis_server("127.0.0.1", port);
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
            if !wanted(rows[i].0) {
                continue;
            }
            let t = Instant::now();
            let hs: Vec<_> = (0..2000u64).map(|x| p.submit(inc, x)).collect();
            for h in hs {
                std::hint::black_box(h.join().unwrap());
            }
            rows[i].1.push(t.elapsed().as_secs_f64() * 1e6 / 2000.0);
        }
        if wanted(rows[2].0) {
            let t = Instant::now();
            std::hint::black_box(pool.map(inc, 0..20_000u64).unwrap());
            rows[2].1.push(t.elapsed().as_secs_f64() * 1e6 / 20_000.0);
        }
        if wanted(rows[3].0) {
            let t = Instant::now();
            for x in 0..serial {
                std::hint::black_box(pool.apply(inc, x).unwrap());
            }
            rows[3]
                .1
                .push(t.elapsed().as_secs_f64() * 1e6 / serial as f64);
        }
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "\n## Cluster ({rounds} rounds, 2 hosts x 1 slot; loadavg {})\n",
        load.trim()
    );
    println!("| row | median | best | unit |");
    println!("|---|---|---|---|");
    for (name, v, unit) in rows {
        if v.is_empty() {
            continue;
        }
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
        if !wanted(row) {
            continue;
        }
        let out = Command::new("redis-benchmark")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-a",
                &password(port),
                "-q",
            ])
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
    if wanted("cluster_collatz_400x10k/hosts") || wanted("local_collatz_400x10k") {
        scaling(rounds);
    }
}

/// The bench Redis's password on `port`.
fn password(port: u16) -> String {
    format!("bench{port}")
}

/// Starts a password-protected `redis-server` without persistence on `bind:port`, and
/// waits (at most 10 s) until it accepts connections: the process (killed on drop), its
/// URL and its working directory (the caller removes it).
fn redis_server(bind: &str, port: u16) -> (Kill, String, std::path::PathBuf) {
    let pw = password(port);
    let dir = std::env::temp_dir().join(format!("mp-bench-redis-{port}"));
    std::fs::create_dir_all(&dir).unwrap();
    let redis = Kill(
        Command::new("redis-server")
            .args([
                "--bind",
                bind,
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
    let start = Instant::now();
    while std::net::TcpStream::connect((bind, port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "redis-server did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (redis, format!("redis://default:{pw}@{bind}:{port}/"), dir)
}

/// The CPU-bound rows on 1, 2 and 4 namespace hosts (see the module docs).
fn scaling(rounds: usize) {
    let mut net = match netns::Net::new() {
        Ok(n) => n,
        Err(why) => {
            println!("\ncluster_collatz rows skipped: {why}");
            return;
        }
    };
    let gw = net.gateway();
    let port = {
        let l = std::net::TcpListener::bind((gw.as_str(), 0)).unwrap();
        l.local_addr().unwrap().port()
    };
    let (redis, url, dir) = redis_server(&gw, port);
    let exe = std::env::current_exe().unwrap();
    let exe = exe.to_str().unwrap().to_owned();
    // Seven machines: one cluster of 1 host, one of 2, one of 4, all up at once so
    // that the rows can be interleaved round by round (an idle host only heartbeats).
    let sizes = [1u8, 2, 4];
    let mut hosts = Vec::new();
    let mut pools = Vec::new();
    let mut k = 0u8;
    for n in sizes {
        let name = format!("scale{n}");
        for _ in 0..n {
            net.add_machine(k).unwrap();
            let cg = net.cpu_cgroup(&format!("h{k}"), HOST_CPUS).unwrap();
            hosts.push(Kill(
                net.spawn(
                    k,
                    Some(&cg),
                    &[&exe],
                    &[
                        (cluster::WORKER_ENV, &url),
                        (cluster::WORKER_NAME_ENV, &name),
                        (cluster::WORKER_SLOTS_ENV, "1"),
                        (cluster::KEY_ENV, KEY),
                    ],
                )
                .unwrap(),
            ));
            k += 1;
        }
        let pool = Pool::builder()
            .cluster(
                cluster::Options::new(&url)
                    .name(&name)
                    .auth_key(KEY.as_bytes().to_vec()),
            )
            .build()
            .unwrap();
        let start = Instant::now();
        while pool.cluster_stats().unwrap().hosts.len() < n as usize {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "hosts did not come up"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        collatz_map(&pool); // warm up
        pools.push((n, pool));
    }
    // The local baseline: its worker process in a cgroup of the same quota (the
    // calling thread, like a cluster's client, outside it).
    let local_cg = net.cpu_cgroup("local", HOST_CPUS).unwrap();
    let local = Pool::processes(1).unwrap();
    for pid in local.worker_pids() {
        std::fs::write(local_cg.join("cgroup.procs"), pid.to_string()).unwrap();
    }
    collatz_map(&local); // warm up
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); sizes.len() + 1];
    for _ in 0..rounds {
        for (i, (_, pool)) in pools.iter().enumerate() {
            times[i].push(collatz_map(pool));
        }
        times[sizes.len()].push(collatz_map(&local));
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "\n## CPU-bound map on namespace hosts ({rounds} rounds, {HOST_CPUS} CPU per host \
         (cgroup), 1 slot each; loadavg {})\n",
        load.trim()
    );
    println!("| row | median | best | unit |");
    println!("|---|---|---|---|");
    let mut med = Vec::new();
    for (i, n) in sizes.iter().enumerate() {
        let (m, b) = stats(times[i].clone());
        med.push(m);
        println!("| cluster_collatz_400x10k/hosts{n} | {m:.3} | {b:.3} | s |");
    }
    let (lm, lb) = stats(times[sizes.len()].clone());
    println!("| local_collatz_400x10k/processes1 | {lm:.3} | {lb:.3} | s |");
    println!(
        "\nspeedup vs 1 host (medians): 2 hosts {:.2}x, 4 hosts {:.2}x; 1 host / local {:.3}",
        med[0] / med[1],
        med[0] / med[2],
        med[0] / lm
    );
    for (_, p) in pools {
        p.join();
    }
    local.join();
    drop(hosts);
    drop(redis);
    let _ = std::fs::remove_dir_all(&dir);
}
