//! Turning a caught panic into a [`RemotePanic`] with its message and location.
//!
//! A panic payload carries the message but not the location. multiproc installs one
//! process-wide panic hook (chained in front of whatever hook was there, so the usual
//! "thread panicked at" line is still printed) that records the location in a
//! thread-local; the code that catches the unwind then reads it back.

use std::any::Any;
use std::cell::RefCell;
use std::panic;
use std::sync::Once;

use crate::error::{Location, RemotePanic};

thread_local! {
    static LAST_LOCATION: RefCell<Option<Location>> = const { RefCell::new(None) };
}

static HOOK: Once = Once::new();

/// Installs the location-recording hook once per process (idempotent, cheap after the first call).
pub(crate) fn install_hook() {
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let loc = info.location().map(|l| Location {
                file: l.file().to_owned(),
                line: l.line(),
                column: l.column(),
            });
            // `try_with`: a panic during thread-local destruction must not abort.
            let _ = LAST_LOCATION.try_with(|slot| *slot.borrow_mut() = loc);
            previous(info);
        }));
    });
}

/// Runs `f`, catching a panic as a [`RemotePanic`].
pub(crate) fn catch<R>(f: impl FnOnce() -> R) -> Result<R, RemotePanic> {
    install_hook();
    panic::catch_unwind(panic::AssertUnwindSafe(f)).map_err(from_payload)
}

/// Builds a [`RemotePanic`] from a caught payload and the location the hook recorded.
pub(crate) fn from_payload(payload: Box<dyn Any + Send>) -> RemotePanic {
    let message = if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "Box<dyn Any>".to_owned()
    };
    let location = LAST_LOCATION
        .try_with(|slot| slot.borrow_mut().take())
        .ok()
        .flatten();
    let thread = std::thread::current().name().map(str::to_owned);
    RemotePanic::new(message, location, thread)
}
