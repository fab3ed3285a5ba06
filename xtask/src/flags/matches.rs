//! One command line checked against its command's table: which flags were given, their
//! values parsed and checked, unknown flags answered with the nearest known one.

use std::time::Duration;

use anyhow::{Result, bail};

use super::{
    table::{DB_FORCE, DB_PROD, IMAGE_FLAGS},
    *,
};

/// The flags one command line gave, checked against the command's table.
pub(super) struct Matches {
    spec: &'static CommandSpec,
    given: Vec<(&'static str, Option<String>)>,
    positionals: Vec<String>,
}

impl Matches {
    /// `None` when `--help` was asked for.
    pub(super) fn parse(
        spec: &'static CommandSpec,
        args: impl Iterator<Item = String>,
    ) -> Result<Option<Matches>> {
        let mut args = args.peekable();
        let mut given = Vec::new();
        let mut positionals = Vec::new();
        while let Some(arg) = args.next() {
            if arg == "--help" || arg == "-h" {
                return Ok(None);
            }
            if !arg.starts_with('-') {
                if positionals.len() < spec.positionals.len() {
                    positionals.push(arg);
                    continue;
                }
                bail!(
                    "`{}` takes no {}positional argument `{arg}` (see `cargo xtask {} --help`)",
                    spec.name,
                    if spec.positionals.is_empty() {
                        ""
                    } else {
                        "further "
                    },
                    spec.name
                );
            }
            let (name, inline) = match arg.split_once('=') {
                Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
                _ => (arg.as_str(), None),
            };
            let flag = all_flags(spec)
                .find(|f| f.long == name || f.short.is_some_and(|s| name == format!("-{s}")))
                .ok_or_else(|| unknown_flag(spec, name))?;
            let value = match (flag.value, inline) {
                (None, Some(_)) => bail!("`{}` takes no value", flag.long),
                (None, None) => None,
                (Some(_), Some(v)) => Some(v),
                (Some(kind), None) => match args.next_if(|a| !a.starts_with("--")) {
                    Some(v) => Some(v),
                    None => bail!("`{}` needs a value ({kind})", flag.long),
                },
            };
            given.push((flag.long, value));
        }
        Ok(Some(Matches {
            spec,
            given,
            positionals,
        }))
    }

    /// The `i`th positional argument, when given.
    pub(super) fn positional(&self, i: usize) -> Option<String> {
        self.positionals.get(i).cloned()
    }

    pub(super) fn declared(&self, long: &str) {
        assert!(
            all_flags(self.spec).any(|f| f.long == long),
            "`{long}` is not declared for `{}`",
            self.spec.name
        );
    }
    pub(super) fn on(&self, long: &str) -> bool {
        self.declared(long);
        self.given.iter().any(|(f, _)| *f == long)
    }
    pub(super) fn values(&self, long: &str) -> Vec<&str> {
        self.declared(long);
        self.given
            .iter()
            .filter(|(f, _)| *f == long)
            .filter_map(|(_, v)| v.as_deref())
            .collect()
    }
    pub(super) fn value(&self, long: &str) -> Option<&str> {
        self.values(long).last().copied()
    }
    /// A switch: given or not.
    pub(super) fn switch(&self, f: &Flag) -> Result<bool> {
        Ok(self.on(f.long))
    }
    /// A value as given (the last one when repeated).
    pub(super) fn text(&self, f: &Flag) -> Result<Option<String>> {
        Ok(self.value(f.long).map(String::from))
    }
    pub(super) fn secs(&self, f: &Flag) -> Result<Option<Duration>> {
        let long = f.long;
        let Some(v) = self.value(long) else {
            return Ok(None);
        };
        let s: f64 = v
            .parse()
            .ok()
            .filter(|s: &f64| s.is_finite() && *s > 0.0)
            .with_context(|| format!("`{long} {v}`: expected a number of seconds"))?;
        Ok(Some(Duration::from_secs_f64(s)))
    }
    pub(super) fn count(&self, f: &Flag) -> Result<Option<usize>> {
        let long = f.long;
        let Some(v) = self.value(long) else {
            return Ok(None);
        };
        let n = v
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .with_context(|| format!("`{long} {v}`: expected a positive number"))?;
        Ok(Some(n))
    }
    /// A size as docker takes it: digits and an optional unit (b, kb, mb, gb).
    pub(super) fn size(&self, f: &Flag) -> Result<Option<String>> {
        let long = f.long;
        let Some(v) = self.value(long) else {
            return Ok(None);
        };
        let lower = v.to_ascii_lowercase();
        let digits = lower.trim_end_matches(|c: char| c.is_ascii_alphabetic());
        let unit = &lower[digits.len()..];
        if digits.is_empty()
            || !digits.chars().all(|c| c.is_ascii_digit())
            || !["", "b", "k", "kb", "m", "mb", "g", "gb"].contains(&unit)
        {
            bail!("`{long} {v}`: expected a size such as 500mb or 5gb");
        }
        Ok(Some(lower))
    }
    pub(super) fn reason(&self, f: &Flag) -> Result<Option<String>> {
        let long = f.long;
        let Some(r) = self.value(long) else {
            return Ok(None);
        };
        if r.trim().len() < 8 {
            bail!(
                "`{long} {r}`: integrity checks go off only for a reason the report records; say why in a few words, \
                 e.g. {long} \"mirror X re-packs tarballs, ticket 123\""
            );
        }
        Ok(Some(r.to_string()))
    }
    pub(super) fn stages(&self, f: &Flag) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for s in self.values(f.long) {
            if !STAGES.contains(&s) {
                bail!(
                    "unknown stage `{s}`{}: the stages are {}",
                    did_you_mean(s, &STAGES),
                    STAGES.join(", ")
                );
            }
            out.push(s.to_string());
        }
        Ok(out)
    }
    pub(super) fn db(&self) -> Result<Db> {
        let action = match self.positionals.first().map(String::as_str) {
            Some("psql") => DbAction::Psql,
            Some("backup") => DbAction::Backup,
            Some("restore") => DbAction::Restore,
            Some(other) => bail!(
                "`db {other}`: the actions are psql, backup, restore{}",
                did_you_mean(other, &["psql", "backup", "restore"])
            ),
            None => {
                bail!("`db` needs an action: psql, backup or restore (see `cargo xtask db --help`)")
            }
        };
        let path = self.positionals.get(1).cloned();
        match (action, &path) {
            (DbAction::Restore, None) => {
                bail!(
                    "`db restore` needs the backup directory, e.g. `cargo xtask db restore backups/dev-20261128T074500Z`"
                )
            }
            (DbAction::Psql | DbAction::Backup, Some(p)) => {
                bail!("`db` takes a directory only with `restore`, not `{p}`")
            }
            _ => {}
        }
        Ok(Db {
            action,
            path,
            prod: self.on(DB_PROD.long),
            force: self.on(DB_FORCE.long),
        })
    }
    pub(super) fn images(&self) -> Result<ImageChoice> {
        match (self.on("--standin"), self.on("--upstream")) {
            (true, true) => bail!("--standin and --upstream exclude each other"),
            (true, false) => Ok(ImageChoice::Standin),
            (false, true) => Ok(ImageChoice::Upstream),
            (false, false) => Ok(ImageChoice::Auto),
        }
    }
}

pub(super) fn all_flags(spec: &'static CommandSpec) -> impl Iterator<Item = &'static Flag> {
    let images: &'static [Flag] = if spec.images { &IMAGE_FLAGS } else { &[] };
    spec.flags.iter().chain(images)
}

fn unknown_flag(spec: &'static CommandSpec, name: &str) -> anyhow::Error {
    let longs: Vec<&str> = all_flags(spec).map(|f| f.long).collect();
    anyhow::anyhow!(
        "`{}` has no option `{name}`{} (see `cargo xtask {} --help`)",
        spec.name,
        did_you_mean(name, &longs),
        spec.name
    )
}

/// "; did you mean `--timeout-http`?" when one candidate is close (edit distance), else "".
pub(super) fn did_you_mean(given: &str, candidates: &[&str]) -> String {
    let best = candidates
        .iter()
        .map(|c| (crate::util::edit_distance(given, c), *c))
        .min_by_key(|(d, _)| *d);
    match best {
        Some((d, c)) if d <= 3.max(given.len() / 3) && d < given.len() => {
            format!("; did you mean `{c}`?")
        }
        _ => String::new(),
    }
}
