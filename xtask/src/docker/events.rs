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
    rx: Receiver<String>,
    seen: std::cell::RefCell<Vec<Event>>,
}

/// One event: `die` with the exit code, `oom`, `start`, `health_status: healthy`. A container
/// under a restart policy is running again by the next inspect: its crash shows only here.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub status: String,
    pub container: String,
    pub exit_code: Option<i64>,
}

impl Event {
    pub fn parse(line: &str) -> Option<Event> {
        let mut f = line.split('\t');
        let status = f.next()?.trim().to_string();
        let container = f.next()?.trim().to_string();
        let exit_code = f.next().and_then(|c| c.trim().parse().ok());
        Some(Event {
            status,
            container,
            exit_code,
        })
    }
}

/// Only what changes readiness, not the exec events each health probe makes.
pub fn events_args(project: &str) -> Vec<String> {
    let mut args = super::compose::words(&[
        "events",
        "--format",
        "{{.Status}}\t{{.Actor.Attributes.name}}\t{{index .Actor.Attributes \"exitCode\"}}",
    ]);
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
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Some(Events {
            reader,
            rx,
            seen: Default::default(),
        })
    }

    /// Blocks until an event or the timeout, draining whatever else already arrived.
    pub fn wait(&self, timeout: Duration) -> Wake {
        match self.rx.recv_timeout(timeout) {
            Ok(first) => {
                let mut seen = self.seen.borrow_mut();
                seen.extend(Event::parse(&first));
                while let Ok(more) = self.rx.try_recv() {
                    seen.extend(Event::parse(&more));
                }
                Wake::Event
            }
            Err(RecvTimeoutError::Timeout) => Wake::Timeout,
            Err(RecvTimeoutError::Disconnected) => Wake::Ended,
        }
    }
}

impl Events {
    /// Every event seen so far.
    pub fn seen(&self) -> Vec<Event> {
        self.seen.borrow().clone()
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        let _ = self.reader.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_parse() {
        assert_eq!(
            Event::parse("die\tp-app-1\t137"),
            Some(Event {
                status: "die".into(),
                container: "p-app-1".into(),
                exit_code: Some(137)
            })
        );
        assert_eq!(Event::parse("oom\tp-app-1\t").unwrap().exit_code, None);
        assert_eq!(
            Event::parse("health_status: healthy\tp-db-1\t")
                .unwrap()
                .status,
            "health_status: healthy"
        );
    }
}
