//! Ctrl-C, SIGTERM and SIGHUP (a closed terminal, a dropped SSH session) become a flag that
//! long waits check, so cleanup guards run on the way out. The handler also counts them: a
//! second Ctrl-C during teardown is answered, a third abandons it (`lifecycle::Teardown`).
//!
//! Hand-written (libc's `signal`, already compiled in through duct) rather than a crate: `ctrlc`
//! with its `nix` dependency would cost more compile time than it saves.

use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};

static RECEIVED: AtomicI32 = AtomicI32::new(0);
static COUNT: AtomicU32 = AtomicU32::new(0);

extern "C" fn on_signal(signum: i32) {
    // Only atomic stores: what a signal handler may safely do.
    RECEIVED.store(signum, Ordering::SeqCst);
    COUNT.fetch_add(1, Ordering::SeqCst);
}

/// Installs the handlers. Children still receive a terminal's Ctrl-C (same process group),
/// so a foreground `compose logs -f` ends by itself and the caller then sees the flag.
pub fn install() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: `on_signal` is async-signal-safe (atomic operations only).
        unsafe {
            libc::signal(sig, on_signal as extern "C" fn(i32) as libc::sighandler_t);
        }
    }
}

pub fn received() -> Option<&'static str> {
    match RECEIVED.load(Ordering::SeqCst) {
        libc::SIGINT => Some("SIGINT (Ctrl-C)"),
        libc::SIGTERM => Some("SIGTERM"),
        libc::SIGHUP => Some("SIGHUP (terminal closed)"),
        _ => None,
    }
}

pub fn received_number() -> Option<i32> {
    Some(RECEIVED.load(Ordering::SeqCst)).filter(|s| *s != 0)
}

/// How many signals have arrived so far.
pub fn count() -> u32 {
    COUNT.load(Ordering::SeqCst)
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
