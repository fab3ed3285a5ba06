//! The whole command-line surface, parsed by hand (clap would double the xtask's cold build).

use std::time::Duration;

use anyhow::{Context, Result, bail};

pub const HELP: &str = "\
cargo xtask <command> [options]

Commands:
  dev         build and start the dev stack (hot reload on :3000), wait until healthy, follow logs
  build-prod  build every stage of docker/Dockerfile (base dev deps builder runner), timed and sized
  verify      build, start, prove healthy and tear down a throw-away stack; exit 0 only if it works
  down        stop the dev stack, keep its volumes (--volumes deletes them)
  doctor      check every prerequisite and say how to fix what is missing
  provision   install and start a Docker engine with buildx and Compose v2 (Debian/Ubuntu, root)
  ci          everything CI needs on a bare machine: provision, cargo test, verify dev and prod
  bench       timing report: warm verify against plain compose up --wait + curl + down

Options:
  dev         --detach  --no-build  [image options]
  build-prod  --stage <base|dev|deps|builder|runner> (repeatable)  --cold
              --no-verify <reason>  --sequential  [image options]
  verify      --prod  --keep  --json  --dry-run  --cold  --no-verify <reason>
              --timeout-build <secs>  --timeout-healthy <secs>  --timeout-http <secs>  [image options]
  down        --volumes
  provision   --standin (also build the registry-free stand-in images)
  bench       --runs <n> (default 5)  --prod  [image options]
Image options:
  --standin   use the project's registry-free stand-in images (built once, then reused)
  --upstream  use the upstream images (oven/bun, postgres, redis) even if no registry answers
  (default: upstream when a registry answers or the images are present, stand-ins otherwise;
   AXION_IMAGES=standin|upstream sets the default)
";

#[derive(Debug, PartialEq)]
pub enum Command {
    Help,
    Dev(Dev),
    BuildProd(BuildProd),
    Verify(Verify),
    Down(Down),
    Doctor,
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
    let Some(cmd) = args.next() else {
        return Ok(Command::Help);
    };
    let mut p = Parser {
        cmd: cmd.clone(),
        rest: args.collect::<Vec<_>>().into_iter(),
    };
    let command = match cmd.as_str() {
        "help" | "--help" | "-h" => return Ok(Command::Help),
        "dev" => {
            let mut o = Dev::default();
            while let Some(a) = p.next_flag()? {
                match a.as_str() {
                    "--detach" | "-d" => o.detach = true,
                    "--no-build" => o.no_build = true,
                    _ => o.images = p.image_flag(&a, o.images)?,
                }
            }
            Command::Dev(o)
        }
        "build-prod" => {
            let mut o = BuildProd::default();
            while let Some(a) = p.next_flag()? {
                match a.as_str() {
                    "--stage" => {
                        let s = p.value(&a)?;
                        if !STAGES.contains(&s.as_str()) {
                            bail!("unknown stage `{s}`: the stages are {}", STAGES.join(", "));
                        }
                        o.stages.push(s);
                    }
                    "--cold" => o.cold = true,
                    "--no-verify" => o.no_verify = Some(p.reason(&a)?),
                    "--sequential" => o.sequential = true,
                    _ => o.images = p.image_flag(&a, o.images)?,
                }
            }
            Command::BuildProd(o)
        }
        "verify" => {
            let mut o = Verify::default();
            while let Some(a) = p.next_flag()? {
                match a.as_str() {
                    "--prod" => o.prod = true,
                    "--keep" => o.keep = true,
                    "--json" => o.json = true,
                    "--dry-run" => o.dry_run = true,
                    "--cold" => o.cold = true,
                    "--no-verify" => o.no_verify = Some(p.reason(&a)?),
                    "--timeout-build" => o.timeout_build = Some(p.secs(&a)?),
                    "--timeout-healthy" => o.timeout_healthy = Some(p.secs(&a)?),
                    "--timeout-http" => o.timeout_http = Some(p.secs(&a)?),
                    _ => o.images = p.image_flag(&a, o.images)?,
                }
            }
            Command::Verify(o)
        }
        "down" => {
            let mut o = Down::default();
            while let Some(a) = p.next_flag()? {
                match a.as_str() {
                    "--volumes" | "-v" => o.volumes = true,
                    _ => return Err(p.unknown(&a)),
                }
            }
            Command::Down(o)
        }
        "doctor" => {
            p.no_flags()?;
            Command::Doctor
        }
        "provision" => {
            let mut o = Provision::default();
            while let Some(a) = p.next_flag()? {
                match a.as_str() {
                    "--standin" => o.standin = true,
                    _ => return Err(p.unknown(&a)),
                }
            }
            Command::Provision(o)
        }
        "bench" => {
            let mut o = Bench {
                runs: 5,
                prod: false,
                images: ImageChoice::Auto,
            };
            while let Some(a) = p.next_flag()? {
                match a.as_str() {
                    "--prod" => o.prod = true,
                    "--runs" => {
                        let v = p.value(&a)?;
                        o.runs =
                            v.parse().ok().filter(|n| *n > 0).with_context(|| {
                                format!("`--runs {v}`: expected a positive number")
                            })?;
                    }
                    _ => o.images = p.image_flag(&a, o.images)?,
                }
            }
            Command::Bench(o)
        }
        "ci" => {
            p.no_flags()?;
            Command::Ci
        }
        other => bail!("unknown command `{other}`\n\n{HELP}"),
    };
    Ok(command)
}

struct Parser {
    cmd: String,
    rest: std::vec::IntoIter<String>,
}

impl Parser {
    fn next_flag(&mut self) -> Result<Option<String>> {
        match self.rest.next() {
            None => Ok(None),
            Some(a) if a == "--help" || a == "-h" => bail!("{HELP}"),
            Some(a) if a.starts_with('-') => Ok(Some(a)),
            Some(a) => bail!(
                "`{}` takes no positional argument `{a}` (see `cargo xtask --help`)",
                self.cmd
            ),
        }
    }
    fn no_flags(&mut self) -> Result<()> {
        match self.next_flag()? {
            None => Ok(()),
            Some(a) => Err(self.unknown(&a)),
        }
    }
    fn value(&mut self, flag: &str) -> Result<String> {
        match self.rest.next() {
            Some(v) if !v.starts_with("--") => Ok(v),
            _ => bail!("`{flag}` needs a value"),
        }
    }
    fn reason(&mut self, flag: &str) -> Result<String> {
        let r = self.value(flag).context("`--no-verify` turns off bun's integrity checks: give the reason, e.g. --no-verify \"mirror X re-packs tarballs, ticket 123\"")?;
        if r.trim().len() < 8 {
            bail!("`{flag} {r}`: the reason is recorded in the report; say why in a few words");
        }
        Ok(r)
    }
    fn secs(&mut self, flag: &str) -> Result<Duration> {
        let v = self.value(flag)?;
        let s: f64 = v
            .parse()
            .ok()
            .filter(|s: &f64| *s > 0.0)
            .with_context(|| format!("`{flag} {v}`: expected a number of seconds"))?;
        Ok(Duration::from_secs_f64(s))
    }
    fn image_flag(&self, flag: &str, current: ImageChoice) -> Result<ImageChoice> {
        let choice = match flag {
            "--standin" => ImageChoice::Standin,
            "--upstream" => ImageChoice::Upstream,
            _ => return Err(self.unknown(flag)),
        };
        if current != ImageChoice::Auto && current != choice {
            bail!("--standin and --upstream exclude each other");
        }
        Ok(choice)
    }
    fn unknown(&self, flag: &str) -> anyhow::Error {
        anyhow::anyhow!(
            "`{}` has no option `{flag}` (see `cargo xtask --help`)",
            self.cmd
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Command> {
        parse(s.split_whitespace().map(String::from))
    }

    #[test]
    fn no_arguments_is_help() {
        assert_eq!(p("").unwrap(), Command::Help);
        assert_eq!(p("--help").unwrap(), Command::Help);
    }

    #[test]
    fn verify_flags() {
        let Command::Verify(v) = p("verify --prod --json --timeout-healthy 90 --standin").unwrap()
        else {
            panic!()
        };
        assert!(v.prod && v.json && !v.keep);
        assert_eq!(v.timeout_healthy, Some(Duration::from_secs(90)));
        assert_eq!(v.images, ImageChoice::Standin);
    }

    #[test]
    fn stages_are_checked() {
        let Command::BuildProd(b) = p("build-prod --stage deps --stage runner").unwrap() else {
            panic!()
        };
        assert_eq!(b.stages, ["deps", "runner"]);
        let e = p("build-prod --stage prod").unwrap_err().to_string();
        assert!(
            e.contains("unknown stage `prod`") && e.contains("runner"),
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
    fn bad_input_names_the_problem() {
        assert!(
            p("deploy")
                .unwrap_err()
                .to_string()
                .contains("unknown command `deploy`")
        );
        assert!(
            p("down --force")
                .unwrap_err()
                .to_string()
                .contains("no option `--force`")
        );
        assert!(
            p("verify --timeout-http soon")
                .unwrap_err()
                .to_string()
                .contains("number of seconds")
        );
        assert!(p("dev --standin --upstream").is_err());
    }
}
