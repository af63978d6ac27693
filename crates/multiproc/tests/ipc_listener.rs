//! `Listener`/`Client` (`SocketConnection`s over Unix paths, abstract names and TCP)
//! with the HMAC challenge: typed and byte messages, wrong keys, hostile
//! unauthenticated peers, `ipc::wait`, a child process as the client, and Python's
//! framing.

mod util;

use std::io::Write;
use std::time::{Duration, Instant};

use multiproc::ipc::{wait, Address, Client, Listener, RecvError, SocketConnection};
use multiproc::{ErrorKind, Process};

const LIMIT: Duration = Duration::from_secs(60);

fn tcp() -> Address {
    Address::Tcp("127.0.0.1:0".parse().unwrap())
}

fn echo_server(listener: Listener, n: usize) -> std::thread::JoinHandle<Vec<ErrorKind>> {
    std::thread::spawn(move || {
        let mut errors = Vec::new();
        for _ in 0..n {
            match listener.accept() {
                Ok(c) => {
                    while let Ok(b) = c.recv_bytes() {
                        c.send_bytes(&b).unwrap();
                    }
                }
                Err(e) => errors.push(e.kind()),
            }
        }
        errors
    })
}

#[test]
fn every_address_family_with_a_key() {
    let _w = util::watchdog(LIMIT);
    let dir = std::env::temp_dir().join(util::unique_name("mp-listener"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("s.sock");
    for address in [
        tcp(),
        Address::Unix(path.clone()),
        Address::Abstract(util::unique_name("mp-abstract").into_bytes()),
    ] {
        let l = Listener::bind(&address, Some(b"k3y")).unwrap();
        let a = l.address().clone();
        let t = echo_server(l, 1);
        let c = Client::connect(&a, Some(b"k3y")).unwrap();
        c.send_bytes(b"ping").unwrap();
        assert_eq!(c.recv_bytes().unwrap(), b"ping", "{a}");
        c.send(vec![(1u8, "x".to_string())]).unwrap();
        assert_eq!(
            c.recv::<Vec<(u8, String)>>().unwrap(),
            [(1, "x".to_string())]
        );
        // A message larger than the socket buffers, both ways at once.
        let big = vec![7u8; 8 << 20];
        c.send_bytes(&big).unwrap();
        assert_eq!(c.recv_bytes().unwrap(), big);
        drop(c);
        assert!(t.join().unwrap().is_empty());
    }
    // The listener removed its socket file; binding where one exists fails.
    assert!(!path.exists());
    let l = Listener::bind(&Address::Unix(path.clone()), None).unwrap();
    let e = Listener::bind(&Address::Unix(path.clone()), None).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Os);
    assert!(e.to_string().contains("s.sock"), "{e}");
    drop(l);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_wrong_key_or_no_key_is_an_authentication_error_on_both_sides() {
    let _w = util::watchdog(LIMIT);
    let l = Listener::bind(&tcp(), Some(b"right")).unwrap();
    let a = l.address().clone();
    let t = echo_server(l, 3);
    let e = Client::connect(&a, Some(b"wrong")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AuthenticationFailed);
    // No key: the client's first message is taken as its answer, and refused.
    let c = Client::connect(&a, None).unwrap();
    let challenge = c.recv_bytes().unwrap();
    assert!(challenge.starts_with(b"#CHALLENGE#{sha256}"));
    c.send_bytes(b"let me in").unwrap();
    assert_eq!(c.recv_bytes().unwrap(), b"#FAILURE#");
    assert!(matches!(c.recv_bytes(), Err(RecvError::Disconnected)));
    // The right key still works after the failures.
    let c = Client::connect(&a, Some(b"right")).unwrap();
    c.send(5u32).unwrap();
    assert_eq!(c.recv::<u32>().unwrap(), 5);
    drop(c);
    assert_eq!(
        t.join().unwrap(),
        [
            ErrorKind::AuthenticationFailed,
            ErrorKind::AuthenticationFailed
        ]
    );
    // A keyed client refuses a listener that cannot prove the key.
    let l = Listener::bind(&tcp(), Some(b"other")).unwrap();
    let a = l.address().clone();
    let t = echo_server(l, 1);
    let e = Client::connect(&a, Some(b"right")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AuthenticationFailed);
    assert_eq!(t.join().unwrap(), [ErrorKind::AuthenticationFailed]);
}

#[test]
fn nothing_is_read_from_an_unauthenticated_peer() {
    let _w = util::watchdog(LIMIT);
    let l = Listener::bind(&tcp(), Some(b"key")).unwrap();
    let Address::Tcp(sa) = l.address().clone() else {
        unreachable!()
    };
    let attacker = std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(sa).unwrap();
        // Claims a 2 GiB answer, then streams garbage.
        s.write_all(&0x7fff_ffffu32.to_be_bytes()).unwrap();
        let junk = vec![0u8; 1 << 16];
        let start = Instant::now();
        let mut sent = 0usize;
        while start.elapsed() < Duration::from_secs(5) {
            match s.write(&junk) {
                Ok(n) => sent += n,
                Err(_) => break,
            }
        }
        sent
    });
    let start = Instant::now();
    let e = l.accept().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AuthenticationFailed);
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
    drop(l);
    // The listener stopped reading after the header: the attacker's writes stalled
    // once the socket buffers were full (a few MiB at most), far from 2 GiB.
    let sent = attacker.join().unwrap();
    assert!(sent < 64 << 20, "{sent}");
}

#[test]
fn listeners_and_socket_connections_in_wait() {
    let _w = util::watchdog(LIMIT);
    let l = Listener::bind(&tcp(), None).unwrap();
    let a = l.address().clone();
    assert!(wait(&[&l], Some(Duration::from_millis(10)))
        .unwrap()
        .is_empty());
    let c = Client::connect(&a, None).unwrap();
    assert_eq!(wait(&[&l], Some(LIMIT)).unwrap(), [0]);
    let s = l.accept().unwrap();
    assert!(wait(&[&s], Some(Duration::from_millis(10)))
        .unwrap()
        .is_empty());
    assert!(!s.poll(Duration::ZERO));
    c.send(1u8).unwrap();
    assert_eq!(wait(&[&l, &s], Some(LIMIT)).unwrap(), [1]);
    assert_eq!(s.try_recv::<u8>().unwrap(), 1);
    assert!(s.try_recv::<u8>().unwrap_err().is_empty());
    assert!(s
        .recv_timeout::<u8>(Duration::from_millis(10))
        .unwrap_err()
        .is_timeout());
    drop(c);
    assert_eq!(wait(&[&s], Some(LIMIT)).unwrap(), [0]);
    assert!(matches!(s.recv::<u8>(), Err(RecvError::Disconnected)));
}

#[test]
fn over_long_messages_are_skipped_and_types_checked() {
    let _w = util::watchdog(LIMIT);
    let l = Listener::bind(&tcp(), None).unwrap();
    let c = Client::connect(l.address(), None).unwrap();
    let s = l.accept().unwrap().with_max_message_size(100);
    c.send_bytes(&[1; 1000]).unwrap();
    c.send_bytes(&[2; 10]).unwrap();
    let Err(RecvError::Invalid(e)) = s.recv_bytes() else {
        panic!()
    };
    assert_eq!(e.kind(), ErrorKind::Decode);
    assert_eq!(s.recv_bytes().unwrap(), [2; 10]);
    c.send_bytes(b"four").unwrap();
    assert!(s.recv_bytes_max(3).is_err());
    c.send(-1i64).unwrap();
    let r = s.recv::<u64>();
    if cfg!(debug_assertions) {
        assert!(matches!(r, Err(RecvError::Invalid(_))), "{r:?}");
    } else {
        assert_eq!(r.unwrap(), 1); // postcard's zigzag varint of -1
    }
    // Values that own descriptors cannot go through a socket connection.
    let (p, _q) = multiproc::Pipe::new().unwrap();
    assert!(c.send(p).unwrap_err().is_rejected());
}

fn client_child(port: u16) -> String {
    let a = Address::Tcp(([127, 0, 0, 1], port).into());
    let c: SocketConnection = Client::connect(&a, Some(b"family")).unwrap();
    c.send(format!("child {}", std::process::id())).unwrap();
    c.recv::<String>().unwrap()
}

#[test]
fn a_child_process_connects() {
    let _w = util::watchdog(LIMIT);
    let l = Listener::bind(&tcp(), Some(b"family")).unwrap();
    let Address::Tcp(sa) = l.address().clone() else {
        unreachable!()
    };
    let p = Process::start_with(client_child, sa.port()).unwrap();
    let s = l.accept().unwrap();
    let hello: String = s.recv().unwrap();
    assert_eq!(hello, format!("child {}", p.pid()));
    s.send("welcome").unwrap();
    assert_eq!(p.join().unwrap(), "welcome");
}

#[test]
fn python_clients_frame_alike() {
    let _w = util::watchdog(LIMIT);
    if std::process::Command::new("python3")
        .arg("-V")
        .output()
        .is_err()
    {
        eprintln!("python3 not found: skipped");
        return;
    }
    let l = Listener::bind(&tcp(), None).unwrap();
    let Address::Tcp(sa) = l.address().clone() else {
        unreachable!()
    };
    let script = format!(
        "from multiprocessing.connection import Client\n\
         c = Client(('127.0.0.1', {}))\n\
         c.send_bytes(b'from python')\n\
         c.send_bytes(c.recv_bytes() + b'!')\n",
        sa.port()
    );
    let mut py = std::process::Command::new("python3")
        .args(["-c", &script])
        .spawn()
        .unwrap();
    let s = l.accept().unwrap();
    assert_eq!(s.recv_bytes().unwrap(), b"from python");
    s.send_bytes(b"from rust").unwrap();
    assert_eq!(s.recv_bytes().unwrap(), b"from rust!");
    assert!(py.wait().unwrap().success());
}
