//! Values that own file descriptors, sent through a `Connection` to a process that is
//! already running (Python's `test_fd_transfer` and passing a `Connection` through a
//! `Connection`): files, pipe ends and shared memory arrive as working copies, by
//! every start method; messages received as raw bytes or drained by `wait` lose no
//! other message's descriptors; nothing leaks.

mod util;

use util::builder;

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use multiproc::ipc::{wait, Connection, Pipe};
use multiproc::shm::SharedMemory;
use multiproc::StartMethod;
use serde::{Deserialize, Serialize};

const LIMIT: Duration = Duration::from_secs(60);

/// A file that travels as a real descriptor.
#[derive(Serialize, Deserialize)]
struct Fd(#[serde(with = "multiproc::ipc::codec::fd")] OwnedFd);

fn temp_file() -> File {
    let path = std::env::temp_dir().join(util::unique_name("mp-fd"));
    let f = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    f
}

/// Receives files and writes their number into each, until it gets an empty list.
fn file_writer(conn: Connection) -> usize {
    let mut n = 0;
    loop {
        let files: Vec<Fd> = conn.recv().unwrap();
        if files.is_empty() {
            return n;
        }
        for f in files {
            let mut f = File::from(f.0);
            write!(f, "{n}").unwrap();
            n += 1;
        }
        conn.send(n).unwrap();
    }
}

#[test]
fn files_reach_a_running_child_by_every_start_method() {
    let _w = util::watchdog(LIMIT);
    for method in StartMethod::ALL {
        let (a, b) = Pipe::new().unwrap();
        let p = builder(method).start_with(file_writer, b).unwrap();
        let mut files: Vec<File> = (0..3).map(|_| temp_file()).collect();
        // One message with one descriptor, then one with two.
        a.send(vec![Fd(files[0].try_clone().unwrap().into())])
            .unwrap();
        assert_eq!(a.recv::<usize>().unwrap(), 1);
        a.send(
            files[1..]
                .iter()
                .map(|f| Fd(f.try_clone().unwrap().into()))
                .collect::<Vec<_>>(),
        )
        .unwrap();
        assert_eq!(a.recv::<usize>().unwrap(), 3);
        a.send(Vec::<Fd>::new()).unwrap();
        assert_eq!(p.join().unwrap(), 3, "{method:?}");
        for (i, f) in files.iter_mut().enumerate() {
            let mut s = String::new();
            f.seek(SeekFrom::Start(0)).unwrap();
            f.read_to_string(&mut s).unwrap();
            assert_eq!(s, i.to_string(), "{method:?}");
        }
    }
}

/// Gets a new connection through `conn`, then talks over the new one only.
fn switchboard(conn: Connection) -> u32 {
    let private: Connection = conn.recv().unwrap();
    let x: u32 = private.recv().unwrap();
    private.send(x * 2).unwrap();
    // And shared memory through the private line.
    let mem: SharedMemory = private.recv().unwrap();
    mem.write(0, &x.to_le_bytes()).unwrap();
    private.send(()).unwrap();
    x
}

#[test]
fn a_connection_and_shared_memory_through_a_connection() {
    let _w = util::watchdog(LIMIT);
    for method in [StartMethod::ForkServer, StartMethod::Spawn] {
        let (a, b) = Pipe::new().unwrap();
        let p = builder(method).start_with(switchboard, b).unwrap();
        let (mine, theirs) = Pipe::new().unwrap();
        a.send(theirs).unwrap();
        // Our copy of their end is gone: the child holds the only one.
        mine.send(21u32).unwrap();
        assert_eq!(mine.recv::<u32>().unwrap(), 42);
        let mem = SharedMemory::create(4096).unwrap();
        mine.send(mem.clone()).unwrap();
        mine.recv::<()>().unwrap();
        let mut got = [0u8; 4];
        mem.read(0, &mut got).unwrap();
        assert_eq!(got, 21u32.to_le_bytes());
        assert_eq!(p.join().unwrap(), 21);
        // The child exited, and it held the only copy of `theirs`.
        assert!(mine.recv::<u8>().unwrap_err().is_disconnected());
    }
}

fn inode(fd: impl AsFd) -> u64 {
    File::from(fd.as_fd().try_clone_to_owned().unwrap())
        .metadata()
        .unwrap()
        .ino()
}

#[test]
fn raw_receives_and_wait_keep_every_other_message_whole() {
    let _w = util::watchdog(LIMIT);
    let (a, b) = Pipe::new().unwrap();
    let files: Vec<File> = (0..4).map(|_| temp_file()).collect();
    let fd = |i: usize| Fd(files[i].try_clone().unwrap().into());
    // A message with a descriptor received as raw bytes: its descriptor is dropped
    // with it, and the next one still gets its own.
    a.send(fd(0)).unwrap();
    a.send(fd(1)).unwrap();
    let _raw = b.recv_bytes().unwrap();
    assert_eq!(inode(b.recv::<Fd>().unwrap().0), inode(&files[1]));
    // A plain message between two with descriptors.
    a.send(fd(2)).unwrap();
    a.send(7u8).unwrap();
    a.send(fd(3)).unwrap();
    // `wait` reads the socket's wake-ups; the marks it reads on the way are kept.
    assert_eq!(wait(&[&b], Some(Duration::from_secs(10))).unwrap(), vec![0]);
    assert_eq!(inode(b.recv::<Fd>().unwrap().0), inode(&files[2]));
    assert_eq!(b.recv::<u8>().unwrap(), 7);
    assert_eq!(wait(&[&b], Some(Duration::from_secs(10))).unwrap(), vec![0]);
    assert_eq!(inode(b.recv::<Fd>().unwrap().0), inode(&files[3]));
    // Duplex: the other way too.
    b.send(fd(0)).unwrap();
    assert_eq!(inode(a.recv::<Fd>().unwrap().0), inode(&files[0]));
}

#[test]
fn limits_and_try_send() {
    let _w = util::watchdog(LIMIT);
    let (a, b) = Pipe::new().unwrap();
    let f = temp_file();
    let many: Vec<Fd> = (0..254)
        .map(|_| Fd(f.try_clone().unwrap().into()))
        .collect();
    let e = a.send(many).unwrap_err();
    assert!(e.to_string().contains("at most 253"), "{e}");
    // try_send and send_timeout work with descriptors as without.
    a.try_send(Fd(f.try_clone().unwrap().into())).unwrap();
    a.send_timeout(Fd(f.try_clone().unwrap().into()), Duration::from_secs(5))
        .unwrap();
    for _ in 0..2 {
        assert_eq!(inode(b.recv::<Fd>().unwrap().0), inode(&f));
    }
    // A queue refuses them, and says where they can go.
    let q = multiproc::Queue::new().unwrap();
    let e = q.put(Fd(f.try_clone().unwrap().into())).unwrap_err();
    assert!(e.to_string().contains("pipe"), "{e}");
}

#[test]
fn no_descriptor_leaks() {
    let _w = util::watchdog(LIMIT);
    let f = temp_file();
    // Warm up on a pipe of its own: lazily opened descriptors of the test process.
    {
        let (a, b) = Pipe::new().unwrap();
        a.send(Fd(f.try_clone().unwrap().into())).unwrap();
        drop(b.recv::<Fd>().unwrap());
    }
    let empty = util::open_fds();
    let (a, b) = Pipe::new().unwrap();
    let with_pipe = util::open_fds();
    for i in 0..500 {
        a.send((i, Fd(f.try_clone().unwrap().into()))).unwrap();
        if i % 3 == 0 {
            // Raw: the mark stays on the socket until a later receive drops it.
            b.recv_bytes().unwrap();
        } else {
            let (j, fd): (i32, Fd) = b.recv().unwrap();
            assert_eq!(j, i);
            drop(fd);
        }
    }
    a.send(Fd(f.try_clone().unwrap().into())).unwrap();
    drop(b.recv::<Fd>().unwrap());
    assert_eq!(util::open_fds(), with_pipe);
    // Marks that `wait` read off the socket hold their descriptors in this process
    // until claimed; dropping the connection closes them.
    for _ in 0..10 {
        a.send(Fd(f.try_clone().unwrap().into())).unwrap();
    }
    wait(&[&b], Some(Duration::from_secs(10))).unwrap();
    assert_eq!(util::open_fds(), with_pipe + 10);
    drop(b);
    drop(a);
    assert_eq!(util::open_fds(), empty);
}

#[test]
fn a_receiver_of_raw_bytes_never_blocks_a_sender_of_descriptors() {
    let _w = util::watchdog(LIMIT);
    let (a, b) = Pipe::new().unwrap();
    let f = temp_file();
    // More marks than the socket buffer holds, none of them claimed by a typed
    // receive: the sleeping receiver must clear them for the sender to go on.
    let sender = std::thread::spawn(move || {
        for i in 0..1000u32 {
            a.send((i, Fd(f.try_clone().unwrap().into()))).unwrap();
        }
        a.send_bytes(b"").unwrap();
    });
    let mut n = 0;
    while !b.recv_bytes().unwrap().is_empty() {
        n += 1;
    }
    sender.join().unwrap();
    assert_eq!(n, 1000);
}
