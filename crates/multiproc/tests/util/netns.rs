//! Simulated machines for the cluster tests and benches: network
//! namespaces on a bridge, each with a veth pair and an optional CPU quota (cgroup v1
//! `cpu.cfs_quota_us` or v2 `cpu.max`).
//!
//! Everything is named `mp<pid>…` after the process that made it and removed in
//! `Drop`; [`Net::new`] first sweeps what a dead process left (a name whose pid is no
//! longer alive), never another live process's. Needs root and `ip`: [`Net::new`]
//! says why it cannot run; callers skip outside CI and fail under `CI=true`.
#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// Runs `ip ARGS`, returning its stderr on failure.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `ip`: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The cgroup CPU controller's directory and its version.
fn cpu_cgroup_root() -> Option<(PathBuf, u8)> {
    let v1 = PathBuf::from("/sys/fs/cgroup/cpu");
    if v1.join("cpu.cfs_quota_us").exists() {
        return Some((v1, 1));
    }
    let v2 = PathBuf::from("/sys/fs/cgroup");
    let controllers = std::fs::read_to_string(v2.join("cgroup.controllers")).ok()?;
    if controllers.split_whitespace().any(|c| c == "cpu") {
        // Let children of the root use the cpu controller.
        let _ = std::fs::write(v2.join("cgroup.subtree_control"), "+cpu");
        return Some((v2, 2));
    }
    None
}

fn pid_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// The pid in a name `mp<pid><letter>…`, if it has that form.
fn owner(name: &str) -> Option<u32> {
    let digits: String = name
        .strip_prefix("mp")?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Removes namespaces, links and cgroups named after processes that are gone.
fn sweep() {
    if let Ok(out) = Command::new("ip").args(["-o", "link", "show"]).output() {
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            // "12: mp123br: <...": the name, without an "@peer" suffix.
            let Some(name) = line.split(": ").nth(1) else {
                continue;
            };
            let name = name.split('@').next().unwrap_or(name);
            if owner(name).is_some_and(|p| !pid_alive(p)) {
                let _ = ip(&["link", "del", name]);
            }
        }
    }
    if let Ok(out) = Command::new("ip").args(["netns", "list"]).output() {
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let name = line.split_whitespace().next().unwrap_or("");
            if owner(name).is_some_and(|p| !pid_alive(p)) {
                let _ = ip(&["netns", "del", name]);
            }
        }
    }
    if let Some((root, _)) = cpu_cgroup_root() {
        for e in std::fs::read_dir(&root).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if owner(&name).is_some_and(|p| !pid_alive(p)) {
                let _ = std::fs::remove_dir(e.path());
            }
        }
    }
}

/// A bridge in the root namespace with an address; machines attach to it.
pub struct Net {
    prefix: String,
    bridge: String,
    /// `10.233.<subnet>.0/24`.
    subnet: u8,
    machines: Vec<String>,
    cgroups: Vec<PathBuf>,
}

impl Net {
    /// Creates the bridge `mp<pid>br` with `10.233.<n>.1/24`. `Err` says why it
    /// cannot (not root, no `ip`, no netns support).
    pub fn new() -> Result<Net, String> {
        if rustix::process::geteuid().as_raw() != 0 {
            return Err("network namespaces need root (euid is not 0)".into());
        }
        ip(&["-V"])?;
        sweep();
        let pid = std::process::id();
        let prefix = format!("mp{pid}");
        let bridge = format!("{prefix}br");
        // A /24 no live interface uses, starting from one derived from the pid.
        let used = Command::new("ip")
            .args(["-4", "-o", "addr", "show"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let subnet = (0..250u32)
            .map(|i| ((pid + i) % 250 + 1) as u8)
            .find(|n| !used.contains(&format!("10.233.{n}.")))
            .ok_or("no free /24 in 10.233.0.0/16")?;
        let net = Net {
            prefix,
            bridge: bridge.clone(),
            subnet,
            machines: Vec::new(),
            cgroups: Vec::new(),
        };
        ip(&["link", "add", &bridge, "type", "bridge"])?;
        ip(&[
            "addr",
            "add",
            &format!("10.233.{subnet}.1/24"),
            "dev",
            &bridge,
        ])?;
        ip(&["link", "set", &bridge, "up"])?;
        Ok(net)
    }

    /// The bridge's address, where a server for the machines listens.
    pub fn gateway(&self) -> String {
        format!("10.233.{}.1", self.subnet)
    }

    /// Adds machine `k`: namespace `mp<pid>h<k>` with loopback up and a veth pair
    /// (`mp<pid>v<k>` on the bridge, `mp<pid>n<k>` inside) at `10.233.<n>.<10+k>`.
    pub fn add_machine(&mut self, k: u8) -> Result<(), String> {
        let ns = self.ns(k);
        let (outer, inner) = (self.veth(k), format!("{}n{k}", self.prefix));
        ip(&["netns", "add", &ns])?;
        self.machines.push(ns.clone());
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        ip(&[
            "link", "add", &outer, "type", "veth", "peer", "name", &inner, "netns", &ns,
        ])?;
        ip(&["link", "set", &outer, "master", &self.bridge])?;
        ip(&["link", "set", &outer, "up"])?;
        let addr = format!("10.233.{}.{}/24", self.subnet, 10 + u32::from(k));
        ip(&["-n", &ns, "addr", "add", &addr, "dev", &inner])?;
        ip(&["-n", &ns, "link", "set", &inner, "up"])?;
        Ok(())
    }

    /// The namespace of machine `k`.
    pub fn ns(&self, k: u8) -> String {
        format!("{}h{k}", self.prefix)
    }

    /// The bridge-side end of machine `k`'s link.
    pub fn veth(&self, k: u8) -> String {
        format!("{}v{k}", self.prefix)
    }

    /// Takes machine `k`'s link down (a partition) or up again.
    pub fn link(&self, k: u8, up: bool) -> Result<(), String> {
        ip(&["link", "set", &self.veth(k), if up { "up" } else { "down" }])
    }

    /// A cgroup `mp<pid>c<name>` limited to `cpus` CPUs (0.4: 40 ms per 100 ms), with
    /// ten times the default CPU weight;
    /// `None` if this kernel offers no CPU controller.
    pub fn cpu_cgroup(&mut self, name: &str, cpus: f64) -> Result<PathBuf, String> {
        let (root, version) = cpu_cgroup_root().ok_or("no cgroup CPU controller")?;
        let dir = root.join(format!("{}c{name}", self.prefix));
        std::fs::create_dir_all(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
        self.cgroups.push(dir.clone());
        let quota = (cpus * 100_000.0).round() as u64;
        let w = |f: &str, v: String| {
            std::fs::write(dir.join(f), &v).map_err(|e| format!("{f} = {v}: {e}"))
        };
        // Ten times the default weight: on a loaded machine the quota, not the
        // competition, is what limits a simulated host (the hosts of a bench then
        // compare by the CPU they use, not by how the load fell on them).
        if version == 1 {
            w("cpu.cfs_period_us", "100000".into())?;
            w("cpu.cfs_quota_us", quota.to_string())?;
            w("cpu.shares", "10240".into())?;
        } else {
            w("cpu.max", format!("{quota} 100000"))?;
            w("cpu.weight", "1000".into())?;
        }
        Ok(dir)
    }

    /// Runs `cmd` (argv) inside machine `k`'s namespace, in `cgroup` if given: the
    /// child is the program itself (`ip netns exec` execs it), so its pid is the
    /// program's and killing it kills the program.
    pub fn spawn(
        &self,
        k: u8,
        cgroup: Option<&std::path::Path>,
        cmd: &[&str],
        env: &[(&str, &str)],
    ) -> std::io::Result<Child> {
        let mut c = match cgroup {
            // The shell moves itself into the cgroup, then execs `ip`, which execs
            // the program: all the same process.
            Some(dir) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(r#"echo $$ > "$0/cgroup.procs" && exec "$@""#)
                    .arg(dir);
                c
            }
            None => Command::new("env"),
        };
        c.args(["ip", "netns", "exec", &self.ns(k)]).args(cmd);
        for (key, v) in env {
            c.env(key, v);
        }
        c.stdin(Stdio::null()).spawn()
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in &self.machines {
            // Deleting the namespace deletes the inner veth, and with it its peer.
            let _ = ip(&["netns", "del", ns]);
        }
        let _ = ip(&["link", "del", &self.bridge]);
        for dir in &self.cgroups {
            // Empty once the processes in it are gone; retry briefly while they exit.
            for _ in 0..50 {
                if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
    }
}

/// A [`Net`], or `None` with a loud message outside CI; under `CI=true` a failure
/// to create one fails the caller (CI runs as root with `ip`).
pub fn net_or_skip(what: &str) -> Option<Net> {
    match Net::new() {
        Ok(n) => Some(n),
        Err(why) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{what}: cannot create network namespaces under CI=true: {why}"
            );
            eprintln!("SKIPPED {what}: cannot create network namespaces: {why}");
            None
        }
    }
}
