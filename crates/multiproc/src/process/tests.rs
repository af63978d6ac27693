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

mod bootstrap_guard {
    //! The pre-`main` hook against launches it must not run (see `bootstrap`'s docs).

    use std::ffi::OsStr;
    use std::io;
    use std::os::fd::{AsFd, AsRawFd, OwnedFd};
    use std::os::unix::process::CommandExt;
    use std::path::{Path, PathBuf};
    use std::process::{Command, Output, Stdio};
    use std::time::{Duration, Instant};

    use serde::de::DeserializeOwned;
    use serde::Serialize;

    use crate::identity::{BinaryToken, EntryRef};
    use crate::ipc::codec;
    use crate::process::bootstrap::{judge, Here, Verdict, ENV};
    use crate::process::entry;
    use crate::process::exit_code::ChildExit;
    use crate::process::launch::{self, DeathWatch, Launch};
    use crate::sys::socket::Peer;

    /// What a forged launch makes the victim run: it leaves a file behind.
    fn writes_marker(path: PathBuf) -> u8 {
        std::fs::write(path, b"ran").expect("write marker");
        0
    }

    fn entry_of<F, A, R>(_: F) -> EntryRef
    where
        F: FnOnce(A) -> R,
        A: DeserializeOwned,
        R: Serialize,
    {
        entry::entry_ref::<F, A, R>()
    }

    /// A launch of `writes_marker(marker)` in the executable `token` names, as an
    /// attacker builds it (`stat` for the token, `nm` for the offset).
    fn forged_launch(token: BinaryToken, marker: &Path) -> Vec<u8> {
        launch_with_death(token, marker, DeathWatch::Off)
    }

    /// The same launch, with the death watch `death`.
    fn launch_with_death(token: BinaryToken, marker: &Path, death: DeathWatch) -> Vec<u8> {
        let launch = Launch {
            token,
            entry: entry_of(writes_marker),
            arg: codec::encode(&marker.to_path_buf()).unwrap().bytes,
            name: None,
            death,
            stdout: false,
            stderr: false,
            server: false,
            env: crate::process::env::Env::default(),
        };
        let bytes = codec::encode(&launch).unwrap().bytes;
        assert!(launch::decode_launch(&bytes).is_ok());
        bytes
    }

    /// A socket pair whose second end is inheritable (no close-on-exec), as an
    /// attacker's own socket would be.
    fn attacker_socket() -> (OwnedFd, OwnedFd) {
        use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};
        let (ours, theirs) = socketpair(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::empty(),
            None,
        )
        .unwrap();
        rustix::io::fcntl_setfd(&ours, rustix::io::FdFlags::CLOEXEC).unwrap();
        (ours, theirs)
    }

    /// A fresh directory for the marker file (and a copy of this program).
    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "multiproc-{tag}-{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Starts `cmd`, sends `launch` on `ours`, and waits (at most 60 s) for its end.
    fn run_victim(mut cmd: Command, ours: &OwnedFd, launch: &[u8]) -> Output {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the victim");
        // The victim may refuse before reading: the send then fails, as it should.
        let _ = crate::sys::socket::send_frame(ours.as_fd(), launch, &[]);
        let start = Instant::now();
        let pid = child.id();
        let mut child = child;
        while child.try_wait().unwrap().is_none() {
            if start.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                panic!("victim {pid} still running after 60 s");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        child.wait_with_output().unwrap()
    }

    fn stderr_of(out: &Output) -> String {
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Arguments that make this test binary's `main` (the test harness) run nothing.
    const NO_TESTS: [&str; 2] = ["--exact", "no_such_test_runs_here"];

    #[test]
    fn forged_launch_from_a_process_that_is_not_the_parent_is_refused() {
        let dir = scratch("forged");
        let marker = dir.join("marker");
        let exe = std::env::current_exe().unwrap();
        let (ours, theirs) = attacker_socket();
        // The victim's parent is the shell (`; exit $?` keeps it from exec'ing), the
        // socket's maker is this process: what any process that is not the parent
        // can arrange.
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(r#""$0" "$@"; exit $?"#)
            .arg(&exe)
            .args(NO_TESTS)
            .env(ENV, theirs.as_raw_fd().to_string());
        let out = run_victim(cmd, &ours, &forged_launch(BinaryToken::current(), &marker));
        drop(theirs);
        let ran = marker.exists();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(!ran, "the forged launch ran: {}", stderr_of(&out));
        assert_eq!(
            out.status.code(),
            Some(ChildExit::Refused.code()),
            "{}",
            stderr_of(&out)
        );
        assert!(
            stderr_of(&out).contains("refusing the launch"),
            "{}",
            stderr_of(&out)
        );
    }

    /// Issue 10 item 6: a launch from the parent that names the child's own socket (or
    /// any number where the parent put no death pipe) as its death pipe. The child used
    /// to close that number as "inherited" (`close_inherited`) while an `OwnedFd` owned
    /// it, and run the function; now it refuses the launch before taking anything.
    #[test]
    fn a_launch_naming_a_descriptor_that_is_not_its_death_pipe_is_bad() {
        let dir = scratch("nopipe");
        let exe = std::env::current_exe().unwrap();
        for (i, pipe_at) in [None, Some(crate::sys::fork::FIRST_KEPT_FD + 1)]
            .into_iter()
            .enumerate()
        {
            let marker = dir.join(format!("marker{i}"));
            let (ours, theirs) = attacker_socket();
            let sock = theirs.as_raw_fd();
            // This process is the parent and made the socket: the hook accepts it.
            let mut cmd = Command::new(&exe);
            cmd.args(NO_TESTS).env(ENV, sock.to_string());
            let death = DeathWatch::Pipe(pipe_at.unwrap_or(sock));
            let launch = launch_with_death(BinaryToken::current(), &marker, death);
            let out = run_victim(cmd, &ours, &launch);
            drop(theirs);
            let ran = marker.exists();
            assert!(!ran, "{death:?}: the launch ran: {}", stderr_of(&out));
            assert_eq!(
                out.status.code(),
                Some(ChildExit::BadLaunch.code()),
                "{death:?}: {}",
                stderr_of(&out)
            );
            assert!(
                stderr_of(&out).contains("no death pipe at descriptor"),
                "{death:?}: {}",
                stderr_of(&out)
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The attack of issue 9: a user runs a set-user-ID root copy of a multiproc program
    /// with its own socket and a forged launch. The attacker is the parent and made the
    /// socket as root here, so only `AT_SECURE` stands in the way. Needs root (to make
    /// the copy and switch to `nobody`) and a file system that honours set-user-ID.
    #[test]
    fn forged_launch_into_a_setuid_copy_is_refused() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: needs root to make a set-user-ID copy");
            return;
        }
        let dir = scratch("setuid");
        let nosuid = rustix::fs::statvfs(&dir)
            .map(|s| s.f_flag.contains(rustix::fs::StatVfsMountFlags::NOSUID))
            .unwrap_or(true);
        if nosuid {
            let _ = std::fs::remove_dir_all(&dir);
            eprintln!("skipped: {} does not honour set-user-ID", dir.display());
            return;
        }
        let copy = dir.join("victim");
        std::fs::copy(std::env::current_exe().unwrap(), &copy).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o4755)).unwrap();
        let marker = dir.join("marker");
        let (ours, theirs) = attacker_socket();
        let mut cmd = Command::new(&copy);
        cmd.args(NO_TESTS)
            .env(ENV, theirs.as_raw_fd().to_string())
            .uid(65534)
            .gid(65534);
        let launch = forged_launch(BinaryToken::of_copy(&copy).unwrap(), &marker);
        let out = run_victim(cmd, &ours, &launch);
        drop(theirs);
        let ran = marker.exists();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(!ran, "the forged launch ran as root: {}", stderr_of(&out));
        assert_eq!(
            out.status.code(),
            Some(ChildExit::Refused.code()),
            "{}",
            stderr_of(&out)
        );
        assert!(
            stderr_of(&out).contains("secure-execution"),
            "{}",
            stderr_of(&out)
        );
    }

    #[test]
    fn malformed_variable_is_ignored_and_main_runs() {
        let exe = std::env::current_exe().unwrap();
        // Not numbers, stdio, a number too large, a descriptor that is not open, one
        // that is not a socket (this pipe end, inherited), an unconnected socket.
        let (pipe_r, _pipe_w) = rustix::pipe::pipe().unwrap();
        let lone = rustix::net::socket(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::STREAM,
            None,
        )
        .unwrap();
        let pipe_fd = pipe_r.as_raw_fd().to_string();
        let lone_fd = lone.as_raw_fd().to_string();
        let values = [
            "",
            "abc",
            "+3",
            " 3",
            "-1",
            "0",
            "2",
            "99999999999999999999",
            "4000",
            &pipe_fd,
            &lone_fd,
        ];
        for value in values {
            let out = Command::new(&exe)
                .args(NO_TESTS)
                .env(ENV, value)
                .stdin(Stdio::null())
                .output()
                .unwrap();
            let stderr = stderr_of(&out);
            assert!(
                out.status.success(),
                "{ENV}={value:?}: {:?} {stderr}",
                out.status
            );
            assert!(
                stderr.contains("multiproc: ignoring"),
                "{ENV}={value:?}: {stderr}"
            );
            assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
            // The harness ran (and found no test to run).
            assert!(
                String::from_utf8_lossy(&out.stdout).contains("0 passed"),
                "{ENV}={value:?}: main did not run"
            );
        }
    }

    const HERE: Here = Here {
        ppid: 100,
        euid: 1000,
        secure: false,
    };

    fn peer(pid: i32, uid: u32, alive: bool) -> impl FnOnce(i32) -> io::Result<(Peer, bool)> {
        move |_| Ok((Peer { pid, uid }, alive))
    }

    fn judged(value: &str, here: Here, p: impl FnOnce(i32) -> io::Result<(Peer, bool)>) -> Verdict {
        judge(OsStr::new(value), &here, p)
    }

    #[test]
    fn judge_runs_only_a_launch_from_the_parent_as_the_same_user_not_secure() {
        assert_eq!(judged("3", HERE, peer(100, 1000, true)), Verdict::Launch(3));
        assert_eq!(
            judged("17", HERE, peer(100, 1000, true)),
            Verdict::Launch(17)
        );
        let secure = Here {
            secure: true,
            ..HERE
        };
        assert!(matches!(
            judged("3", secure, peer(100, 1000, true)),
            Verdict::Refuse(m) if m.contains("secure-execution")
        ));
        assert!(matches!(
            judged("3", HERE, peer(100, 0, true)),
            Verdict::Refuse(m) if m.contains("user 0")
        ));
        assert!(matches!(
            judged("3", HERE, peer(555, 1000, true)),
            Verdict::Refuse(m) if m.contains("process 555")
        ));
        // Secure or not, a socket from someone else is refused.
        assert!(matches!(
            judged("3", secure, peer(555, 0, true)),
            Verdict::Refuse(_)
        ));
        // The parent died before the child's hook ran: the socket's maker is gone.
        assert_eq!(
            judged("3", HERE, peer(555, 1000, false)),
            Verdict::ParentGone
        );
    }

    #[test]
    fn judge_ignores_what_is_not_a_multiproc_socket() {
        for value in ["", "x", "3x", "+3", "-3", "0", "1", "2", "4294967299", "٣"] {
            let asked = std::cell::Cell::new(false);
            let v = judged(value, HERE, |_| {
                asked.set(true);
                Ok((
                    Peer {
                        pid: 100,
                        uid: 1000,
                    },
                    true,
                ))
            });
            assert!(matches!(v, Verdict::Ignore(_)), "{value:?}: {v:?}");
            assert!(!asked.get(), "{value:?}: looked at a descriptor");
        }
        let not_open = |_| Err(io::Error::from_raw_os_error(libc::EBADF));
        assert!(matches!(judged("3", HERE, not_open), Verdict::Ignore(_)));
        // An unconnected socket has no peer (pid 0), even in secure mode.
        let secure = Here {
            secure: true,
            ..HERE
        };
        assert!(matches!(
            judged("3", secure, peer(0, u32::MAX, false)),
            Verdict::Ignore(_)
        ));
    }

    #[test]
    fn decode_launch_never_panics_and_checks_fields() {
        let good = forged_launch(BinaryToken::current(), Path::new("/nonexistent"));
        for len in 0..good.len() {
            let _ = launch::decode_launch(&good[..len]);
        }
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..2000 {
            let mut bytes = good.clone();
            for _ in 0..4 {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let i = (rng as usize) % bytes.len();
                bytes[i] = (rng >> 32) as u8;
            }
            let _ = launch::decode_launch(&bytes);
        }
        // A length prefix claiming far more than the input does not allocate it: the
        // one of `arg` (which follows `token` and `entry`), and one at every offset.
        let l = launch::decode_launch(&good).unwrap();
        let at = codec::encode(&(&l.token, &l.entry)).unwrap().bytes.len();
        let was = codec::encode(&(l.arg.len() as u64)).unwrap().bytes.len();
        let max = codec::encode(&u64::MAX).unwrap().bytes;
        let claim = |at: usize, was: usize| [&good[..at], &max[..], &good[at + was..]].concat();
        assert!(launch::decode_launch(&claim(at, was)).is_err());
        for at in 0..good.len() {
            let _ = launch::decode_launch(&claim(at, 1));
        }
        let mut bad = launch::decode_launch(&good).unwrap();
        bad.death = DeathWatch::Pipe(-7);
        let bytes = codec::encode(&bad).unwrap().bytes;
        assert!(launch::decode_launch(&bytes).is_err());
    }
}
