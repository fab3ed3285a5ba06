//! A project's container events (`docker events`), so readiness is sampled when something
//! happens rather than on a tight poll: each `docker inspect` costs ~30 ms of CPU on a 2-core
//! machine that is busy starting the stack, and an event arrives within milliseconds.

use std::{
    io::BufRead,
    sync::{
        Arc,
        mpsc::{Receiver, RecvTimeoutError, channel},
    },
    time::Duration,
};

/// What a wait for events ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    Event,
    Timeout,
    /// The stream is gone (the engine went away, or it never started): poll instead.
    Ended,
}

pub struct Events {
    reader: Arc<duct::ReaderHandle>,
    rx: Receiver<()>,
}

/// Only what changes readiness, not the exec events each health probe makes.
pub fn events_args(project: &str) -> Vec<String> {
    let mut args = super::compose::words(&["events", "--format", "{{.Status}}"]);
    for filter in [
        "type=container".to_string(),
        super::label_filter(project),
        "event=start".into(),
        "event=die".into(),
        "event=health_status".into(),
        "event=oom".into(),
    ] {
        args.extend(["--filter".into(), filter]);
    }
    args
}

impl Events {
    pub fn start(project: &str) -> Option<Events> {
        let reader = Arc::new(
            super::expr(&events_args(project))
                .stderr_null()
                .unchecked()
                .reader()
                .ok()?,
        );
        let (tx, rx) = channel();
        let r = reader.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(&*r).lines() {
                if line.is_err() || tx.send(()).is_err() {
                    break;
                }
            }
        });
        Some(Events { reader, rx })
    }

    /// Blocks until an event or the timeout, draining whatever else already arrived.
    pub fn wait(&self, timeout: Duration) -> Wake {
        match self.rx.recv_timeout(timeout) {
            Ok(()) => {
                while self.rx.try_recv().is_ok() {}
                Wake::Event
            }
            Err(RecvTimeoutError::Timeout) => Wake::Timeout,
            Err(RecvTimeoutError::Disconnected) => Wake::Ended,
        }
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        let _ = self.reader.kill();
    }
}
