//! Ctrl-C and SIGTERM become a flag that long waits check, so cleanup guards run on the way out.
//!
//! Hand-written (two libc calls) rather than a crate: `ctrlc` with its `nix` dependency would
//! cost more compile time than it saves.

use std::sync::atomic::{AtomicI32, Ordering};

static RECEIVED: AtomicI32 = AtomicI32::new(0);

const SIGINT: i32 = 2;
const SIGTERM: i32 = 15;

unsafe extern "C" {
    fn signal(signum: i32, handler: usize) -> usize;
}

extern "C" fn on_signal(signum: i32) {
    // Only an atomic store: the one thing a signal handler may safely do here.
    RECEIVED.store(signum, Ordering::SeqCst);
}

/// Installs the handlers. Children still receive a terminal's Ctrl-C (same process group),
/// so a foreground `compose logs -f` ends by itself and the caller then sees the flag.
pub fn install() {
    for sig in [SIGINT, SIGTERM] {
        // SAFETY: `on_signal` is async-signal-safe (a single atomic store).
        unsafe {
            signal(sig, on_signal as extern "C" fn(i32) as usize);
        }
    }
}

pub fn received() -> Option<&'static str> {
    match RECEIVED.load(Ordering::SeqCst) {
        SIGINT => Some("SIGINT (Ctrl-C)"),
        SIGTERM => Some("SIGTERM"),
        _ => None,
    }
}

pub fn received_number() -> Option<i32> {
    Some(RECEIVED.load(Ordering::SeqCst)).filter(|s| *s != 0)
}

/// An error once a signal has arrived, so `?` unwinds to the cleanup guards.
pub fn check() -> anyhow::Result<()> {
    match received() {
        Some(s) => Err(Interrupted(s).into()),
        None => Ok(()),
    }
}

#[derive(Debug)]
pub struct Interrupted(pub &'static str);

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "interrupted by {}", self.0)
    }
}

impl std::error::Error for Interrupted {}
