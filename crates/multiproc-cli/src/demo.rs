//! `multiproc demo`: the article's examples, then what a crash does to a thread and to a process.

use std::time::Duration;

use multiproc::{ErrorKind, Process, StartMethod, Thread};

/// Options of `multiproc demo`.
#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
    /// Skip the fault-isolation part (segfaults and aborts in throwaway children).
    #[arg(long)]
    no_faults: bool,
    /// Start method for the process examples.
    #[arg(
        long,
        default_value = "forkserver",
        value_parser = clap::builder::PossibleValuesParser::new(StartMethod::ALL.map(StartMethod::name))
    )]
    start_method: String,
}

fn print_numbers() {
    for i in 1..=10 {
        println!("{i}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn print_letters() {
    for letter in 'a'..='j' {
        println!("{letter}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn count_to_five() -> u32 {
    (1..=5).sum()
}

fn segfaults() {
    multiproc::fault::segfault()
}

fn aborts() {
    multiproc::fault::abort()
}

/// A process with two threads, one of which segfaults: the whole process dies.
fn thread_segfaults_in_a_process() -> String {
    let worker = Thread::start(|| {
        std::thread::sleep(Duration::from_millis(200));
        "the other thread finished"
    })
    .expect("start thread");
    let _crasher = Thread::start(|| {
        std::thread::sleep(Duration::from_millis(20));
        multiproc::fault::segfault()
    })
    .expect("start thread");
    worker
        .join()
        .map(String::from)
        .unwrap_or_else(|e| e.to_string())
}

/// Panics on purpose, unprinted: the demo shows the message that `join` hands back instead.
///
/// The quiet scope is entered here, in the thread or child process that panics, so it works for
/// every start method (a Spawn or ForkServer child does not inherit this process's hook).
fn thread_panics() -> u32 {
    crate::quiet_panic::silently(|| panic!("this thread gave up"))
}

/// One line for a `join` that should have handed back a panic: its message, as data.
fn describe_panic<T: std::fmt::Debug>(outcome: multiproc::Result<T>) -> String {
    match outcome {
        Err(e) => match e.panic() {
            Some(p) => format!("Err(Panicked), message {:?}", p.message()),
            None => format!("Err({e}), not a panic?!"),
        },
        Ok(v) => format!("Ok({v:?})?!"),
    }
}

pub(crate) fn run(args: &DemoArgs) -> anyhow::Result<()> {
    let method: StartMethod = args.start_method.parse()?;

    println!("== 1. Two threads (they share this process's memory)");
    let t1 = Thread::start(print_numbers)?;
    let t2 = Thread::start(print_letters)?;
    t1.join()?;
    t2.join()?;
    println!("Done");

    println!();
    println!("== 2. Two processes (each has its own memory; start method: {method})");
    let p1 = Process::builder()
        .start_method(method)
        .allow_threads(true)
        .start(print_numbers)?;
    let p2 = Process::builder()
        .start_method(method)
        .allow_threads(true)
        .start(print_letters)?;
    println!(
        "(children {} and {} run concurrently with this process {})",
        p1.pid(),
        p2.pid(),
        std::process::id()
    );
    p1.join()?;
    p2.join()?;
    println!("Done");

    if args.no_faults {
        return Ok(());
    }

    println!();
    println!("== 3. A fatal fault in a child process ends only that child");
    let sibling = Process::builder()
        .start_method(method)
        .allow_threads(true)
        .start(count_to_five)?;
    let crashers = [
        (
            "segfaults",
            Process::builder()
                .start_method(method)
                .allow_threads(true)
                .start(segfaults)?,
        ),
        (
            "aborts",
            Process::builder()
                .start_method(method)
                .allow_threads(true)
                .start(aborts)?,
        ),
    ];
    for (what, child) in crashers {
        let pid = child.pid();
        match child.join() {
            Err(e) if e.kind() == ErrorKind::Signaled => {
                let status = e.exit_status().expect("a signal ends with a status");
                println!(
                    "child {pid} {what}: {e} (Python's exitcode {})",
                    status.exitcode()
                );
            }
            other => println!("child {pid} {what}: unexpected outcome {other:?}"),
        }
    }
    println!(
        "its sibling still finished: 1+2+3+4+5 = {}",
        sibling.join()?
    );
    println!("and this process ({}) goes on.", std::process::id());

    println!();
    println!("== 4. The same fault in a thread ends the whole process, every thread with it");
    println!("(shown in a throwaway child process, so that this demo survives)");
    let throwaway = Process::builder()
        .start_method(method)
        .allow_threads(true)
        .start(thread_segfaults_in_a_process)?;
    let pid = throwaway.pid();
    match throwaway.join() {
        Ok(msg) => println!("process {pid} survived?! ({msg})"),
        Err(e) => {
            println!("process {pid}, which ran two threads: {e}; the other thread never finished")
        }
    }

    println!();
    println!("== 5. Where Rust differs from the article: a panic is not a crash");
    println!("A panic in a Rust thread unwinds that thread only; join() hands it back:");
    println!(
        "thread:  join() = {}",
        describe_panic(Thread::start(thread_panics)?.join())
    );
    let child = Process::builder()
        .start_method(method)
        .allow_threads(true)
        .start(thread_panics)?;
    println!("process: join() = {}", describe_panic(child.join()));
    println!("A segfault or abort is not caught by anything: in a thread it ends the process (4),");
    println!("in a child process it ends that child only (3).");
    Ok(())
}
