//! The whole command-line surface. Each flag is declared once, in `table.rs`: `command!` makes
//! from that one line the struct field, the table row the parser and the help read, and the
//! conversion. Hand-written (about 600 lines with the matcher and help) because clap would
//! double the xtask's cold build, and xflags/lexopt would still need a table for per-command
//! help with defaults and "did you mean".

use std::time::Duration;

pub use crate::images::{ImageChoice, STAGES};

use anyhow::{Context, Result, bail};

/// One flag: its long name, an optional short alias, the value it takes (if any) and its help.
pub struct Flag {
    pub long: &'static str,
    pub short: Option<char>,
    pub value: Option<&'static str>,
    pub help: &'static str,
}

pub(super) const fn switch(long: &'static str, help: &'static str) -> Flag {
    Flag {
        long,
        short: None,
        value: None,
        help,
    }
}
pub(super) const fn short(long: &'static str, s: char, help: &'static str) -> Flag {
    Flag {
        long,
        short: Some(s),
        value: None,
        help,
    }
}
pub(super) const fn valued(long: &'static str, value: &'static str, help: &'static str) -> Flag {
    Flag {
        long,
        short: None,
        value: Some(value),
        help,
    }
}

pub struct CommandSpec {
    pub name: &'static str,
    pub about: &'static str,
    pub flags: &'static [Flag],
    /// Whether the image flags (--standin/--upstream) apply.
    pub images: bool,
    /// Positional arguments, by name (`<ACTION>`), in order; the last may be left out.
    pub positionals: &'static [&'static str],
}

mod matches;
mod table;

use matches::{Matches, all_flags, did_you_mean};
pub use table::{
    Bench, BuildProd, Clean, Deploy, Dev, Doctor, Down, Logs, Provision, Status, Verify,
};
use table::{COMMANDS, TIMEOUT_HELP};

#[derive(Debug, PartialEq)]
pub enum Command {
    /// `None`: the overview; `Some(cmd)`: that command's options.
    Help(Option<&'static str>),
    Dev(Dev),
    BuildProd(BuildProd),
    Verify(Verify),
    Down(Down),
    Clean(Clean),
    Db(Db),
    Doctor(Doctor),
    Provision(Provision),
    Ci,
    Bench(Bench),
    Deploy(Deploy),
    Status(Status),
    Logs(Logs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbAction {
    Psql,
    Backup,
    Restore,
}

#[derive(Debug, PartialEq)]
pub struct Db {
    pub action: DbAction,
    /// restore: the backup directory.
    pub path: Option<String>,
    pub prod: bool,
    pub force: bool,
}

const BENCH_RUNS: usize = 5;

impl Dev {
    fn checked(self) -> Result<Dev> {
        if self.sync && self.bind {
            bail!("--sync and --bind exclude each other");
        }
        Ok(self)
    }
    /// Some(true): sync, Some(false): bind mount, None: by platform.
    pub fn edits(&self) -> Option<bool> {
        match (self.sync, self.bind) {
            (true, _) => Some(true),
            (false, true) => Some(false),
            (false, false) => None,
        }
    }
}

impl Bench {
    /// Interleaved runs of each.
    pub fn run_count(&self) -> usize {
        self.runs.unwrap_or(BENCH_RUNS)
    }
}

/// A flag's default, from the constant the code uses, for the help.
fn default_of(long: &str) -> Option<String> {
    let secs = |d: Duration| format!("{}", d.as_secs());
    match long {
        "--timeout-build" => Some(secs(crate::stack::TIMEOUT_BUILD)),
        "--timeout-healthy" => Some(secs(crate::stack::TIMEOUT_HEALTHY)),
        "--timeout-http" => Some(secs(crate::stack::TIMEOUT_HTTP)),
        "--runs" => Some(BENCH_RUNS.to_string()),
        "--duration" => Some(format!("{}", crate::stack::LOAD_DURATION.as_secs())),
        _ => None,
    }
}

pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command> {
    let mut args = args.into_iter();
    let Some(name) = args.next() else {
        return Ok(Command::Help(None));
    };
    if matches!(name.as_str(), "help" | "--help" | "-h") {
        return Ok(Command::Help(
            args.next().and_then(|c| spec(&c)).map(|s| s.name),
        ));
    }
    let Some(spec) = spec(&name) else {
        let names: Vec<&str> = COMMANDS.iter().map(|c| c.name).collect();
        bail!(
            "unknown command `{name}`{}\n  (`cargo xtask --help` lists the commands)",
            did_you_mean(&name, &names)
        );
    };
    let Some(m) = Matches::parse(spec, args)? else {
        return Ok(Command::Help(Some(spec.name)));
    };
    Ok(match spec.name {
        "dev" => Command::Dev(Dev::from_matches(&m)?.checked()?),
        "build-prod" => Command::BuildProd(BuildProd::from_matches(&m)?),
        "verify" => Command::Verify(Verify::from_matches(&m)?),
        "down" => Command::Down(Down::from_matches(&m)?),
        "doctor" => Command::Doctor(Doctor::from_matches(&m)?),
        "provision" => Command::Provision(Provision::from_matches(&m)?),
        "db" => Command::Db(m.db()?),
        "clean" => Command::Clean(Clean::from_matches(&m)?),
        "ci" => Command::Ci,
        "bench" => Command::Bench(Bench::from_matches(&m)?),
        "deploy" => Command::Deploy(Deploy::from_matches(&m)?),
        "status" => Command::Status(Status::from_matches(&m)?),
        "logs" => Command::Logs(Logs::from_matches(&m)?),
        other => unreachable!("command `{other}` is in the table but not converted"),
    })
}

fn spec(name: &str) -> Option<&'static CommandSpec> {
    COMMANDS.iter().find(|c| c.name == name)
}

/// The overview (`cargo xtask --help`) or one command's options (`cargo xtask verify --help`).
pub fn help(command: Option<&str>) -> String {
    let Some(spec) = command.and_then(spec) else {
        let mut s = String::from("cargo xtask <command> [options]\n\nCommands:\n");
        for c in COMMANDS {
            s.push_str(&format!("  {:<11} {}\n", c.name, c.about));
        }
        s.push_str("\n`cargo xtask <command> --help` shows a command's options.\n");
        return s;
    };
    let positionals: String = spec.positionals.iter().map(|p| format!(" <{p}>")).collect();
    let mut s = format!(
        "cargo xtask {}{positionals} [options]\n\n{}\n\nOptions:\n",
        spec.name, spec.about
    );
    let mut rows: Vec<(String, String)> = all_flags(spec)
        .map(|f| {
            let short = f.short.map(|c| format!("-{c}, ")).unwrap_or_default();
            let value = f.value.map(|v| format!(" <{v}>")).unwrap_or_default();
            let help = match default_of(f.long) {
                Some(d) => format!("{} (default {d})", f.help),
                None => f.help.to_string(),
            };
            (format!("{short}{}{value}", f.long), help)
        })
        .collect();
    rows.push(("-h, --help".into(), "this help".into()));
    for (name, help) in rows {
        s.push_str(&format!("  {name:<26} {help}\n"));
    }
    if spec.images {
        s.push_str(
            "\nImages: upstream when a registry answers or the images are present, stand-ins otherwise;\n\
             AXION_IMAGES=standin|upstream sets the default.\n",
        );
    }
    if spec.flags.iter().any(|f| f.value == Some("SECS")) {
        s.push_str(&format!(
            "Timeouts: {TIMEOUT_HELP}; `--flag=value` works too.\n"
        ));
    }
    s
}

#[cfg(test)]
mod tests;
