//! Passing file descriptors: a value that owns a descriptor (`OwnedFd`, marked with
//! `#[serde(with = "multiproc::ipc::codec::fd")]`) sent through a pipe to a running
//! child process, which writes to the file the parent opened (as Python's
//! `multiprocessing.reduction.send_handle`). The descriptor travels as `SCM_RIGHTS`
//! beside the message; pipe ends, queues and shared memory cross the same way.
//!
//! ```sh
//! cargo run --release -p multiproc --example pass_fd
//! ```

use std::io::{Read, Seek, Write};
use std::os::fd::OwnedFd;

use multiproc::ipc::{Connection, Pipe};
use multiproc::Process;
use serde::{Deserialize, Serialize};

/// A job: a line to write, and the file to write it to.
#[derive(Serialize, Deserialize)]
struct Job {
    line: String,
    #[serde(with = "multiproc::ipc::codec::fd")]
    file: OwnedFd,
}

/// Writes each job's line to its file, until the parent closes the pipe.
fn writer(jobs: Connection) -> usize {
    let mut done = 0;
    while let Ok(job) = jobs.recv::<Job>() {
        let mut f = std::fs::File::from(job.file);
        f.write_all(job.line.as_bytes()).expect("write");
        done += 1;
    }
    done
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (jobs, theirs) = Pipe::new()?;
    // Started first: the file does not exist yet when the child starts.
    let child = Process::start_with(writer, theirs)?;
    let path = std::env::temp_dir().join(format!("multiproc-pass-fd-{}.txt", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)?;
    std::fs::remove_file(&path)?; // the descriptors keep it alive
    for line in [
        "written by the child\n",
        "through a descriptor it was sent\n",
    ] {
        jobs.send(Job {
            line: line.to_owned(),
            file: file.try_clone()?.into(),
        })?;
    }
    drop(jobs);
    assert_eq!(child.join()?, 2);
    let mut text = String::new();
    file.rewind()?;
    file.read_to_string(&mut text)?;
    print!("{text}");
    assert_eq!(
        text,
        "written by the child\nthrough a descriptor it was sent\n"
    );
    Ok(())
}
