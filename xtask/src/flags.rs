//! The whole command-line surface: one table of commands and flags serves the parser and the
//! help. Hand-written (about 250 lines) because clap would double the xtask's cold build and
//! xflags/lexopt would still need this table for per-command help and "did you mean".

use std::time::Duration;

use anyhow::{Context, Result, bail};

/// One flag: its long name, an optional short alias, the value it takes (if any) and its help.
pub struct Flag {
    pub long: &'static str,
    pub short: Option<char>,
    pub value: Option<&'static str>,
    pub help: &'static str,
}

const fn switch(long: &'static str, help: &'static str) -> Flag {
    Flag {
        long,
        short: None,
        value: None,
        help,
    }
}
const fn short(long: &'static str, s: char, help: &'static str) -> Flag {
    Flag {
        long,
        short: Some(s),
        value: None,
        help,
    }
}
const fn valued(long: &'static str, value: &'static str, help: &'static str) -> Flag {
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
}

const IMAGE_FLAGS: [Flag; 2] = [
    switch(
        "--standin",
        "use the registry-free stand-in images (built once, then reused)",
    ),
    switch(
        "--upstream",
        "use the upstream images (oven/bun, postgres, redis) even if no registry answers",
    ),
];
const TIMEOUT_HELP: &str = "seconds (a decimal is fine)";

pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "dev",
        about: "build and start the dev stack (hot reload on :3000), wait until healthy, follow logs",
        flags: &[
            short(
                "--detach",
                'd',
                "return once the stack is ready instead of following its logs",
            ),
            switch(
                "--no-build",
                "start with the images as they are (no rebuild of the app image)",
            ),
        ],
        images: true,
    },
    CommandSpec {
        name: "build-prod",
        about: "build every stage of docker/Dockerfile (base dev deps builder runner), timed and sized",
        flags: &[
            valued(
                "--stage",
                "STAGE",
                "build only this stage (base, dev, deps, builder, runner); repeatable",
            ),
            switch(
                "--cold",
                "install dependencies without the install cache (default when CI=true)",
            ),
            valued(
                "--no-verify",
                "REASON",
                "turn bun's integrity checks off, for a reason the report records",
            ),
            switch(
                "--sequential",
                "one `docker build --target` per stage instead of one bake graph",
            ),
            switch("--json", "print one JSON report on stdout"),
        ],
        images: true,
    },
    CommandSpec {
        name: "verify",
        about: "build, start, prove healthy and tear down a throw-away stack; exit 0 only if it works",
        flags: &[
            switch(
                "--prod",
                "the prod stack (docker-compose.prod.yml) instead of the dev stack",
            ),
            switch("--keep", "leave the stack up and print how to remove it"),
            switch("--json", "print one JSON report on stdout"),
            switch(
                "--dry-run",
                "print the plan (every docker command) without running any",
            ),
            switch(
                "--cold",
                "install dependencies without the install cache (default when CI=true)",
            ),
            valued(
                "--no-verify",
                "REASON",
                "turn bun's integrity checks off, for a reason the report records",
            ),
            valued(
                "--timeout-build",
                "SECS",
                "limit for the image build (default 1200)",
            ),
            valued(
                "--timeout-healthy",
                "SECS",
                "limit for every service to be healthy (default 150)",
            ),
            valued(
                "--timeout-http",
                "SECS",
                "limit for / and /api/health to answer 200 (default 120)",
            ),
        ],
        images: true,
    },
    CommandSpec {
        name: "down",
        about: "stop the dev stack, keep its volumes (--volumes deletes them)",
        flags: &[short(
            "--volumes",
            'v',
            "also delete the named volumes (database and Redis data)",
        )],
        images: false,
    },
    CommandSpec {
        name: "doctor",
        about: "check every prerequisite and say how to fix what is missing",
        flags: &[switch("--json", "print one JSON report on stdout")],
        images: false,
    },
    CommandSpec {
        name: "provision",
        about: "install and start a Docker engine with buildx and Compose v2 (Debian/Ubuntu, root)",
        flags: &[switch(
            "--standin",
            "also build the registry-free stand-in images",
        )],
        images: false,
    },
    CommandSpec {
        name: "ci",
        about: "everything CI needs on a bare machine: provision, cargo test, verify dev and prod",
        flags: &[],
        images: false,
    },
    CommandSpec {
        name: "bench",
        about: "timing report: warm verify against plain compose up --wait + curl + down",
        flags: &[
            valued("--runs", "N", "interleaved runs of each (default 5)"),
            switch("--prod", "the prod stack instead of the dev stack"),
        ],
        images: true,
    },
];

#[derive(Debug, PartialEq)]
pub enum Command {
    /// `None`: the overview; `Some(cmd)`: that command's options.
    Help(Option<&'static str>),
    Dev(Dev),
    BuildProd(BuildProd),
    Verify(Verify),
    Down(Down),
    Doctor(Doctor),
    Provision(Provision),
    Ci,
    Bench(Bench),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImageChoice {
    #[default]
    Auto,
    Standin,
    Upstream,
}

#[derive(Debug, Default, PartialEq)]
pub struct Dev {
    pub detach: bool,
    pub no_build: bool,
    pub images: ImageChoice,
}

#[derive(Debug, Default, PartialEq)]
pub struct BuildProd {
    pub stages: Vec<String>,
    pub cold: bool,
    pub no_verify: Option<String>,
    pub sequential: bool,
    pub json: bool,
    pub images: ImageChoice,
}

#[derive(Debug, Default, PartialEq)]
pub struct Verify {
    pub prod: bool,
    pub keep: bool,
    pub json: bool,
    pub dry_run: bool,
    pub cold: bool,
    pub no_verify: Option<String>,
    pub timeout_build: Option<Duration>,
    pub timeout_healthy: Option<Duration>,
    pub timeout_http: Option<Duration>,
    pub images: ImageChoice,
}

#[derive(Debug, Default, PartialEq)]
pub struct Down {
    pub volumes: bool,
}

#[derive(Debug, Default, PartialEq)]
pub struct Doctor {
    pub json: bool,
}

#[derive(Debug, PartialEq)]
pub struct Bench {
    pub runs: usize,
    pub prod: bool,
    pub images: ImageChoice,
}

#[derive(Debug, Default, PartialEq)]
pub struct Provision {
    pub standin: bool,
}

pub const STAGES: [&str; 5] = ["base", "dev", "deps", "builder", "runner"];

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
        "dev" => Command::Dev(Dev {
            detach: m.on("--detach"),
            no_build: m.on("--no-build"),
            images: m.images()?,
        }),
        "build-prod" => Command::BuildProd(BuildProd {
            stages: m.stages()?,
            cold: m.on("--cold"),
            no_verify: m.reason("--no-verify")?,
            sequential: m.on("--sequential"),
            json: m.on("--json"),
            images: m.images()?,
        }),
        "verify" => Command::Verify(Verify {
            prod: m.on("--prod"),
            keep: m.on("--keep"),
            json: m.on("--json"),
            dry_run: m.on("--dry-run"),
            cold: m.on("--cold"),
            no_verify: m.reason("--no-verify")?,
            timeout_build: m.secs("--timeout-build")?,
            timeout_healthy: m.secs("--timeout-healthy")?,
            timeout_http: m.secs("--timeout-http")?,
            images: m.images()?,
        }),
        "down" => Command::Down(Down {
            volumes: m.on("--volumes"),
        }),
        "doctor" => Command::Doctor(Doctor {
            json: m.on("--json"),
        }),
        "provision" => Command::Provision(Provision {
            standin: m.on("--standin"),
        }),
        "ci" => Command::Ci,
        "bench" => Command::Bench(Bench {
            runs: m.count("--runs")?.unwrap_or(5),
            prod: m.on("--prod"),
            images: m.images()?,
        }),
        other => unreachable!("command `{other}` is in the table but not converted"),
    })
}

fn spec(name: &str) -> Option<&'static CommandSpec> {
    COMMANDS.iter().find(|c| c.name == name)
}

/// The flags one command line gave, checked against the command's table.
struct Matches {
    spec: &'static CommandSpec,
    given: Vec<(&'static str, Option<String>)>,
}

impl Matches {
    /// `None` when `--help` was asked for.
    fn parse(
        spec: &'static CommandSpec,
        args: impl Iterator<Item = String>,
    ) -> Result<Option<Matches>> {
        let mut args = args.peekable();
        let mut given = Vec::new();
        while let Some(arg) = args.next() {
            if arg == "--help" || arg == "-h" {
                return Ok(None);
            }
            if !arg.starts_with('-') {
                bail!(
                    "`{}` takes no positional argument `{arg}` (see `cargo xtask {} --help`)",
                    spec.name,
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
        Ok(Some(Matches { spec, given }))
    }

    fn declared(&self, long: &str) {
        assert!(
            all_flags(self.spec).any(|f| f.long == long),
            "`{long}` is not declared for `{}`",
            self.spec.name
        );
    }
    fn on(&self, long: &str) -> bool {
        self.declared(long);
        self.given.iter().any(|(f, _)| *f == long)
    }
    fn values(&self, long: &str) -> Vec<&str> {
        self.declared(long);
        self.given
            .iter()
            .filter(|(f, _)| *f == long)
            .filter_map(|(_, v)| v.as_deref())
            .collect()
    }
    fn value(&self, long: &str) -> Option<&str> {
        self.values(long).last().copied()
    }
    fn secs(&self, long: &str) -> Result<Option<Duration>> {
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
    fn count(&self, long: &str) -> Result<Option<usize>> {
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
    fn reason(&self, long: &str) -> Result<Option<String>> {
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
    fn stages(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for s in self.values("--stage") {
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
    fn images(&self) -> Result<ImageChoice> {
        match (self.on("--standin"), self.on("--upstream")) {
            (true, true) => bail!("--standin and --upstream exclude each other"),
            (true, false) => Ok(ImageChoice::Standin),
            (false, true) => Ok(ImageChoice::Upstream),
            (false, false) => Ok(ImageChoice::Auto),
        }
    }
}

fn all_flags(spec: &'static CommandSpec) -> impl Iterator<Item = &'static Flag> {
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
fn did_you_mean(given: &str, candidates: &[&str]) -> String {
    let best = candidates
        .iter()
        .map(|c| (edit_distance(given, c), *c))
        .min_by_key(|(d, _)| *d);
    match best {
        Some((d, c)) if d <= 3.max(given.len() / 3) && d < given.len() => {
            format!("; did you mean `{c}`?")
        }
        _ => String::new(),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
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
    let mut s = format!(
        "cargo xtask {} [options]\n\n{}\n\nOptions:\n",
        spec.name, spec.about
    );
    let mut rows: Vec<(String, &str)> = all_flags(spec)
        .map(|f| {
            let short = f.short.map(|c| format!("-{c}, ")).unwrap_or_default();
            let value = f.value.map(|v| format!(" <{v}>")).unwrap_or_default();
            (format!("{short}{}{value}", f.long), f.help)
        })
        .collect();
    rows.push(("-h, --help".into(), "this help"));
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
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Command> {
        parse(s.split_whitespace().map(String::from))
    }

    #[test]
    fn help_overview_and_per_command() {
        assert_eq!(p("").unwrap(), Command::Help(None));
        assert_eq!(p("--help").unwrap(), Command::Help(None));
        assert_eq!(p("verify --help").unwrap(), Command::Help(Some("verify")));
        assert_eq!(p("help down").unwrap(), Command::Help(Some("down")));
        let h = help(Some("verify"));
        for want in [
            "--timeout-http <SECS>",
            "--dry-run",
            "--standin",
            "-h, --help",
        ] {
            assert!(h.contains(want), "{want} missing:\n{h}");
        }
        assert!(help(Some("down")).contains("-v, --volumes"));
        assert!(help(Some("dev")).contains("-d, --detach"));
        let overview = help(None);
        for c in COMMANDS {
            assert!(overview.contains(&format!("  {} ", c.name)), "{}", c.name);
        }
    }

    #[test]
    fn every_declared_flag_is_converted() {
        // Each command with every one of its flags: the conversion asks only for declared
        // names (`declared` panics otherwise) and accepts each.
        for c in COMMANDS {
            for f in all_flags(c) {
                if f.long == "--upstream" {
                    continue; // excludes --standin, tested below
                }
                let value = match f.value {
                    Some("STAGE") => vec!["runner"],
                    Some("REASON") => vec!["mirror re-packs tarballs"],
                    Some(_) => vec!["3"],
                    None => vec![],
                };
                let mut args = vec![c.name, f.long];
                args.extend(value);
                parse(args.into_iter().map(String::from))
                    .unwrap_or_else(|e| panic!("{} {}: {e}", c.name, f.long));
            }
        }
    }

    #[test]
    fn verify_flags_both_spellings() {
        let Command::Verify(v) =
            p("verify --prod --json --timeout-healthy 90 --timeout-http=5 --standin").unwrap()
        else {
            panic!()
        };
        assert!(v.prod && v.json && !v.keep);
        assert_eq!(v.timeout_healthy, Some(Duration::from_secs(90)));
        assert_eq!(v.timeout_http, Some(Duration::from_secs(5)));
        assert_eq!(v.images, ImageChoice::Standin);
        let Command::Dev(d) = p("dev -d").unwrap() else {
            panic!()
        };
        assert!(d.detach);
        assert_eq!(p("down -v").unwrap(), Command::Down(Down { volumes: true }));
        assert_eq!(
            p("doctor --json").unwrap(),
            Command::Doctor(Doctor { json: true })
        );
    }

    #[test]
    fn stages_are_checked() {
        let Command::BuildProd(b) = p("build-prod --stage deps --stage=runner --json").unwrap()
        else {
            panic!()
        };
        assert_eq!(b.stages, ["deps", "runner"]);
        assert!(b.json);
        let e = p("build-prod --stage runer").unwrap_err().to_string();
        assert!(
            e.contains("unknown stage `runer`; did you mean `runner`?"),
            "{e}"
        );
    }

    #[test]
    fn no_verify_needs_a_reason() {
        assert!(p("build-prod --no-verify").is_err());
        assert!(p("build-prod --no-verify x").is_err());
        let Command::BuildProd(b) =
            parse(["build-prod", "--no-verify", "mirror re-packs tarballs"].map(String::from))
                .unwrap()
        else {
            panic!()
        };
        assert_eq!(b.no_verify.as_deref(), Some("mirror re-packs tarballs"));
    }

    #[test]
    fn bad_input_names_the_problem_and_the_closest_name() {
        let e = p("verfy").unwrap_err().to_string();
        assert!(
            e.contains("unknown command `verfy`; did you mean `verify`?"),
            "{e}"
        );
        let e = p("deploy").unwrap_err().to_string();
        assert!(
            e.contains("unknown command `deploy`") && !e.contains("did you mean"),
            "{e}"
        );
        let e = p("verify --timeout-htp 5").unwrap_err().to_string();
        assert!(e.contains("did you mean `--timeout-http`?"), "{e}");
        let e = p("down --force").unwrap_err().to_string();
        assert!(e.contains("no option `--force`"), "{e}");
        assert!(
            p("verify --timeout-http soon")
                .unwrap_err()
                .to_string()
                .contains("number of seconds")
        );
        assert!(
            p("verify --keep=yes")
                .unwrap_err()
                .to_string()
                .contains("takes no value")
        );
        assert!(
            p("verify --timeout-http")
                .unwrap_err()
                .to_string()
                .contains("needs a value (SECS)")
        );
        assert!(p("dev --standin --upstream").is_err());
        assert!(p("bench --runs 0").is_err());
    }

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }
}
