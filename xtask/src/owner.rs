//! Who owns a throw-away stack: the xtask process that made it, named by host, pid, the
//! process's start time (from /proc, so a reused pid is told apart) and the boot id (so a
//! reboot is). A stack whose owner is gone was left by a run that died without its teardown
//! (SIGKILL, OOM kill, power loss) and may be removed by anyone.

use std::fs;

/// The label every resource of a throw-away project carries (compose files: `x-owner`).
pub const LABEL: &str = "org.axion-hub.owner";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub host: String,
    pub pid: u32,
    /// Clock ticks since boot at which the process started (/proc/<pid>/stat, field 22).
    pub start: u64,
    pub boot: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Liveness {
    Alive,
    /// Gone, and why: the stack may be removed.
    Gone(String),
    /// Made on another host sharing this engine: nothing can be known from here.
    Elsewhere,
}

fn read_trim(path: &str) -> String {
    fs::read_to_string(path)
        .unwrap_or_default()
        .trim()
        .to_string()
}

impl Owner {
    pub fn current() -> Owner {
        let pid = std::process::id();
        Owner {
            host: read_trim("/proc/sys/kernel/hostname"),
            pid,
            start: start_time(pid).unwrap_or(0),
            boot: read_trim("/proc/sys/kernel/random/boot_id"),
        }
    }

    /// `host=<h> pid=<p> start=<s> boot=<b>`
    pub fn label(&self) -> String {
        format!(
            "host={} pid={} start={} boot={}",
            self.host, self.pid, self.start, self.boot
        )
    }

    pub fn parse(label: &str) -> Option<Owner> {
        let mut o = Owner {
            host: String::new(),
            pid: 0,
            start: 0,
            boot: String::new(),
        };
        for word in label.split_whitespace() {
            match word.split_once('=')? {
                ("host", v) => o.host = v.into(),
                ("pid", v) => o.pid = v.parse().ok()?,
                ("start", v) => o.start = v.parse().ok()?,
                ("boot", v) => o.boot = v.into(),
                _ => {}
            }
        }
        (o.pid != 0 && !o.boot.is_empty()).then_some(o)
    }

    /// Judged against this host: `here` is `Owner::current()`.
    pub fn liveness(&self, here: &Owner) -> Liveness {
        if self.host != here.host {
            return Liveness::Elsewhere;
        }
        if self.boot != here.boot {
            return Liveness::Gone("the machine rebooted since".into());
        }
        match start_time(self.pid) {
            None => Liveness::Gone(format!("pid {} is gone", self.pid)),
            Some(s) if s != self.start => {
                Liveness::Gone(format!("pid {} now belongs to another process", self.pid))
            }
            Some(_) => Liveness::Alive,
        }
    }
}

/// Field 22 of /proc/<pid>/stat, read after the command name (which may hold spaces). None
/// for a process that is gone, including a zombie (dead, not yet collected by its parent).
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut after = stat[stat.rfind(')')? + 2..].split_whitespace();
    if matches!(after.next()?, "Z" | "X") {
        return None;
    }
    after.nth(18)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_round_trip() {
        let me = Owner::current();
        assert!(me.start > 0 && !me.boot.is_empty(), "{me:?}");
        assert_eq!(Owner::parse(&me.label()), Some(me.clone()));
        assert_eq!(
            Owner::parse(""),
            None,
            "the dev stack's empty label is no owner"
        );
        assert_eq!(me.liveness(&me), Liveness::Alive);
    }

    #[test]
    fn dead_reused_rebooted_and_foreign_owners() {
        let here = Owner::current();
        // A child that has exited: its pid is free.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let dead = Owner {
            pid,
            ..here.clone()
        };
        assert!(matches!(dead.liveness(&here), Liveness::Gone(_)));
        let reused = Owner {
            start: here.start + 1,
            ..here.clone()
        };
        assert_eq!(
            reused.liveness(&here),
            Liveness::Gone(format!("pid {} now belongs to another process", here.pid))
        );
        let rebooted = Owner {
            boot: "another-boot".into(),
            ..here.clone()
        };
        assert!(matches!(rebooted.liveness(&here), Liveness::Gone(_)));
        let foreign = Owner {
            host: "elsewhere".into(),
            ..here.clone()
        };
        assert_eq!(foreign.liveness(&here), Liveness::Elsewhere);
    }
}
