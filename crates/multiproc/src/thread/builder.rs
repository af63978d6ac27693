//! `thread::Builder`: name and stack size before start.

use std::sync::Arc;

use super::handle::{Packet, Thread};
use crate::error::{Error, ErrorKind, Result};

/// Configures a [`Thread`] before it starts: its name and stack size.
///
/// # Examples
///
/// ```
/// use multiproc::thread::Builder;
///
/// let t = Builder::new().name("worker-1").start(|| std::thread::current().name().map(String::from))?;
/// assert_eq!(t.name(), Some("worker-1"));
/// assert_eq!(t.join()?.as_deref(), Some("worker-1"));
/// # Ok::<(), multiproc::Error>(())
/// ```
#[derive(Debug, Default, Clone)]
#[must_use = "a Builder does nothing until `start` is called"]
pub struct Builder {
    name: Option<String>,
    stack_size: Option<usize>,
}

impl Builder {
    /// A builder with no name and the default stack size.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Names the thread (visible in panic messages, debuggers and `/proc`).
    pub fn name(mut self, name: impl Into<String>) -> Builder {
        self.name = Some(name.into());
        self
    }

    /// Sets the stack size in bytes.
    pub fn stack_size(mut self, bytes: usize) -> Builder {
        self.stack_size = Some(bytes);
        self
    }

    /// Starts a thread running `f` and returns its handle.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Start`] if the OS refuses to create the thread (out of memory,
    /// the thread limit) and [`ErrorKind::InvalidInput`] if the name contains a NUL byte.
    pub fn start<F, T>(self, f: F) -> Result<Thread<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        if self.name.as_deref().is_some_and(|n| n.contains('\0')) {
            return Err(
                Error::new(ErrorKind::InvalidInput).with_message("thread name contains a NUL byte")
            );
        }
        crate::panic::install_hook();
        let packet = Arc::new(Packet::new());
        let theirs = Arc::clone(&packet);
        let mut b = std::thread::Builder::new();
        if let Some(n) = &self.name {
            b = b.name(n.clone());
        }
        if let Some(s) = self.stack_size {
            b = b.stack_size(s);
        }
        let handle = b
            .spawn(move || {
                theirs.set_native_id(crate::sys::thread::gettid());
                let result = crate::panic::catch(f);
                theirs.finish(result);
            })
            .map_err(|e| Error::new(ErrorKind::Start).with_source(e))?;
        Ok(Thread::new(handle, packet, self.name))
    }
}
