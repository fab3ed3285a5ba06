//! Who owns a throw-away stack: the xtask process that made it, named by host, machine id,
//! pid namespace, pid, the process's start time (from /proc, so a reused pid is told apart) and
//! the boot id (so a reboot is). A stack whose owner is gone was left by a run that died without
//! its teardown (SIGKILL, OOM kill, power loss) and may be removed by anyone. Dead is a finding,
//! never a default: another machine, another pid namespace (a container with the docker socket
//! sees none of the host's processes), an unreadable /proc or a process of another user
//! (`kill(pid, 0)` answering EPERM) all mean "not known", and nothing is removed.

use std::fs;

/// The label every resource of a throw-away project carries (compose files: `x-owner`).
pub const LABEL: &str = "org.axion-hub.owner";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub host: String,
    /// /etc/machine-id: the same host name on two machines (or containers) is not one machine.
    pub machine: String,
    /// The pid namespace (`/proc/self/ns/pid`): a pid means something only inside it.
    pub pidns: String,
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
    /// Not known from here, and why (another host, machine or pid namespace, /proc unreadable):
    /// never removed.
    Unknown(String),
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
            machine: machine_id(),
            pidns: pid_namespace(),
            pid,
            start: start_time(pid).unwrap_or(0),
            boot: read_trim("/proc/sys/kernel/random/boot_id"),
        }
    }

    /// `host=<h> machine=<m> pidns=<n> pid=<p> start=<s> boot=<b>`
    pub fn label(&self) -> String {
        format!(
            "host={} machine={} pidns={} pid={} start={} boot={}",
            self.host, self.machine, self.pidns, self.pid, self.start, self.boot
        )
    }

    pub fn parse(label: &str) -> Option<Owner> {
        let mut o = Owner {
            host: String::new(),
            machine: String::new(),
            pidns: String::new(),
            pid: 0,
            start: 0,
            boot: String::new(),
        };
        for word in label.split_whitespace() {
            match word.split_once('=')? {
                ("host", v) => o.host = v.into(),
                ("machine", v) => o.machine = v.into(),
                ("pidns", v) => o.pidns = v.into(),
                ("pid", v) => o.pid = v.parse().ok()?,
                ("start", v) => o.start = v.parse().ok()?,
                ("boot", v) => o.boot = v.into(),
                _ => {}
            }
        }
        (o.pid != 0 && !o.boot.is_empty()).then_some(o)
    }

    /// Judged against this process: `here` is `Owner::current()`. Gone only when the machine,
    /// the pid namespace and this process's view of /proc all allow the judgement.
    pub fn liveness(&self, here: &Owner) -> Liveness {
        self.liveness_with(here, probe)
    }

    fn liveness_with(&self, here: &Owner, probe: impl Fn(u32) -> Probe) -> Liveness {
        if self.host != here.host {
            return Liveness::Unknown("made on another host".into());
        }
        if self.machine.is_empty() || self.machine != here.machine {
            return Liveness::Unknown(
                "made on another machine, or by a run that named none".into(),
            );
        }
        if here.boot.is_empty() || here.start == 0 {
            return Liveness::Unknown("this process cannot read /proc".into());
        }
        if self.boot != here.boot {
            return Liveness::Gone("the machine rebooted since".into());
        }
        if self.pidns.is_empty() || self.pidns != here.pidns {
            return Liveness::Unknown("made in another pid namespace".into());
        }
        match probe(self.pid) {
            Probe::NoSuchProcess => Liveness::Gone(format!("pid {} is gone", self.pid)),
            Probe::Started(s) if s != self.start => {
                Liveness::Gone(format!("pid {} now belongs to another process", self.pid))
            }
            Probe::Started(_) | Probe::Exists => Liveness::Alive,
            Probe::Unknown(why) => Liveness::Unknown(why),
        }
    }
}

/// What can be learnt of a pid here.
#[derive(Debug, Clone, PartialEq)]
enum Probe {
    /// Its start time, from /proc.
    Started(u64),
    /// It exists (`kill(pid, 0)` succeeded or said EPERM), its start time unreadable.
    Exists,
    /// ESRCH, or a zombie: gone.
    NoSuchProcess,
    Unknown(String),
}

fn probe(pid: u32) -> Probe {
    if let Some(s) = start_time(pid) {
        return Probe::Started(s);
    }
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return Probe::Unknown(format!("pid {pid} out of range"));
    };
    // SAFETY: signal 0 sends nothing; kill(2) only checks that the pid exists and may be signalled.
    if unsafe { libc::kill(pid, 0) } == 0 {
        return if zombie(pid) {
            Probe::NoSuchProcess
        } else {
            Probe::Exists
        };
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::ESRCH) => Probe::NoSuchProcess,
        Some(libc::EPERM) => Probe::Exists,
        _ => Probe::Unknown(format!(
            "kill({pid}, 0): {}",
            std::io::Error::last_os_error()
        )),
    }
}

fn zombie(pid: libc::pid_t) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rfind(')').map(|i| s[i + 2..].starts_with(['Z', 'X'])))
        .unwrap_or(false)
}

fn machine_id() -> String {
    ["/etc/machine-id", "/var/lib/dbus/machine-id"]
        .iter()
        .map(|p| read_trim(p))
        .find(|m| !m.is_empty())
        .unwrap_or_default()
}

/// `pid:[4026531836]` → `4026531836`; empty when it cannot be read.
fn pid_namespace() -> String {
    fs::read_link("/proc/self/ns/pid")
        .ok()
        .map(|l| {
            l.to_string_lossy()
                .trim_start_matches("pid:[")
                .trim_end_matches(']')
                .to_string()
        })
        .unwrap_or_default()
}

/// A name compose could have made (`[a-z0-9][a-z0-9_-]*`): safe to join into a path.
pub fn valid_project(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
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
        assert_eq!(
            foreign.liveness(&here),
            Liveness::Unknown("made on another host".into())
        );
    }

    /// Hostile table, row 2: dead only when everything needed to judge matches.
    #[test]
    fn dead_is_a_finding_never_a_default() {
        let here = Owner::current();
        assert!(
            !here.machine.is_empty() && !here.pidns.is_empty(),
            "{here:?}"
        );
        let unknown = |o: &Owner, p: Probe| {
            matches!(o.liveness_with(&here, |_| p.clone()), Liveness::Unknown(_))
        };
        let gone = Probe::NoSuchProcess;
        let other_machine = Owner {
            machine: "another".into(),
            ..here.clone()
        };
        assert!(
            unknown(&other_machine, gone.clone()),
            "same host name, another machine"
        );
        let old_label = Owner {
            machine: String::new(),
            ..here.clone()
        };
        assert!(
            unknown(&old_label, gone.clone()),
            "a label that names no machine"
        );
        let container = Owner {
            pidns: "4026532999".into(),
            ..here.clone()
        };
        assert!(unknown(&container, gone.clone()), "another pid namespace");
        let blind = Owner {
            boot: String::new(),
            ..here.clone()
        };
        assert!(
            matches!(
                here.liveness_with(&blind, |_| gone.clone()),
                Liveness::Unknown(_)
            ),
            "a judge that cannot read /proc"
        );
        assert_eq!(
            here.liveness_with(&here, |_| Probe::Exists),
            Liveness::Alive,
            "EPERM: alive"
        );
        assert!(unknown(&here, Probe::Unknown("EINVAL".into())));
        assert!(matches!(
            here.liveness_with(&here, |_| gone.clone()),
            Liveness::Gone(_)
        ));
        // kill(2) on a live process of this user, and on pid 1 (EPERM unless root): alive.
        assert_ne!(probe(1), Probe::NoSuchProcess);
    }

    #[test]
    fn only_names_compose_could_make_are_projects() {
        for ok in ["axion-verify-prod-1-2", "axion_hub", "a1"] {
            assert!(valid_project(ok), "{ok}");
        }
        for bad in ["", "../etc", "a/b", "Axion", "-x", "a b", "."] {
            assert!(!valid_project(bad), "{bad:?}");
        }
    }
}
