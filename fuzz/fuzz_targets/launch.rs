//! Launch messages (`process/launch.rs`, `bootstrap.rs`, `spawn.rs`, `forkserver.rs`): the bytes
//! a re-executed child or the fork server decodes as its `Launch`, and the fork
//! server's answer its parent decodes. Inputs are raw bytes, or a structured launch
//! (the same serde layout as `Launch`) encoded and then truncated or extended, so
//! the fuzzer reaches every field.
#![no_main]

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use multiproc::__fuzz::Verdict;
use serde::Serialize;

/// `identity::BinaryToken`.
#[derive(Debug, Arbitrary, Serialize)]
struct Token {
    exe: (u64, u64, u64),
    probe: isize,
}

/// `identity::EntryRef`.
#[derive(Debug, Arbitrary, Serialize)]
enum EntryRef {
    Offset(isize),
}

/// `process::env::Env`.
#[derive(Debug, Arbitrary, Serialize)]
struct Env {
    clear: bool,
    vars: Vec<(OsString, Option<OsString>)>,
}

/// `process::launch::DeathWatch`.
#[derive(Debug, Arbitrary, Serialize)]
enum DeathWatch {
    Off,
    Pipe(i32),
    Pdeathsig { ppid: i32, pipe: Option<i32> },
}

/// `process::launch::Launch`.
#[derive(Debug, Arbitrary, Serialize)]
struct Launch {
    token: Token,
    entry: EntryRef,
    arg: Vec<u8>,
    name: Option<String>,
    death: DeathWatch,
    stdout: bool,
    stderr: bool,
    server: bool,
    env: Env,
}

#[derive(Debug, Arbitrary)]
enum Input {
    /// The startup hook's environment variable, and who made the socket it names.
    Variable {
        value: Vec<u8>,
        ppid: i32,
        euid: u32,
        secure: bool,
        peer: Option<(i32, u32, bool)>,
    },
    Raw(Vec<u8>),
    Structured {
        launch: Launch,
        /// Raw bytes for the environment's names and values (any bytes, not UTF-8).
        names: Vec<Vec<u8>>,
        /// Cut the encoding to this length (modulo its length + 1), if given.
        cut: Option<u16>,
        tail: Vec<u8>,
    },
}

fuzz_target!(|input: Input| {
    let bytes = match input {
        Input::Variable {
            value,
            ppid,
            euid,
            secure,
            peer,
        } => {
            let v = multiproc::__fuzz::bootstrap_env(&value, ppid, euid, secure, peer);
            if let Verdict::Launch(fd) = v {
                let (pid, uid, _) = peer.expect("a launch needs a socket");
                assert!(
                    fd >= 3 && pid == ppid && uid == euid && !secure,
                    "launch from the wrong peer: {v:?}"
                );
                assert_eq!(std::str::from_utf8(&value).unwrap().parse::<i32>(), Ok(fd));
            }
            return;
        }
        Input::Raw(b) => b,
        Input::Structured {
            mut launch,
            names,
            cut,
            tail,
        } => {
            for (i, n) in names.into_iter().enumerate() {
                if let Some(v) = launch.env.vars.get_mut(i / 2) {
                    if i % 2 == 0 {
                        v.0 = OsString::from_vec(n);
                    } else {
                        v.1 = Some(OsString::from_vec(n));
                    }
                }
            }
            let mut b = multiproc::ipc::codec::encode(&launch).unwrap().bytes;
            if let Some(c) = cut {
                b.truncate(usize::from(c) % (b.len() + 1));
            }
            b.extend_from_slice(&tail);
            b
        }
    };
    let (decoded, resolved) = multiproc::__fuzz::launch(&bytes);
    // Hitting this executable's identity by chance would be news.
    assert!(!resolved || decoded, "an undecodable launch resolved");
    multiproc::__fuzz::forkserver_answer(&bytes);
});
