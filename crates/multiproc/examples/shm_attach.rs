//! `SharedMemory::attach`: an unrelated process (here this program run again as a
//! plain `std::process::Command`, not a multiproc child) maps a segment by its name
//! (Python's `shared_memory.SharedMemory(name=...)`).
//!
//! ```sh
//! cargo run --release -p multiproc --example shm_attach
//! ```

use multiproc::SharedMemory;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    if let (Some(flag), Some(name)) = (args.next(), args.next()) {
        assert_eq!(flag, "--attach");
        // The other program: attach by name, read the greeting, answer in place.
        let shm = SharedMemory::attach(&name)?;
        let mut buf = [0u8; 5];
        shm.read(0, &mut buf)?;
        assert_eq!(&buf, b"hello");
        shm.write(0, b"HELLO")?;
        return Ok(());
    }

    let shm = SharedMemory::create(4096)?;
    shm.write(0, b"hello")?;
    let name = shm.name();
    println!("segment name: {name}");
    let status = std::process::Command::new(std::env::current_exe()?)
        .args(["--attach", &name])
        .status()?;
    assert!(status.success(), "the other program failed: {status}");
    let mut buf = [0u8; 5];
    shm.read(0, &mut buf)?;
    assert_eq!(&buf, b"HELLO");
    println!("the other program wrote: {}", String::from_utf8_lossy(&buf));
    Ok(())
}
