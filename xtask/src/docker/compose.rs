//! Compose command lines: planned as argv (tests assert on them, `--dry-run` prints them) and
//! turned into one-shot (`xshell`) or long-running (`duct`) children.

use std::path::PathBuf;

/// One compose invocation target: which file, which project, and the environment compose
/// interpolates with.
#[derive(Debug, Clone, PartialEq)]
pub struct Compose {
    pub file: String,
    /// Files layered over `file` (`-f` after it), e.g. docker-compose.sync.yml.
    pub overlays: Vec<String>,
    pub project: String,
    pub env_file: PathBuf,
    /// Variables for compose's interpolation (they win over the env file).
    pub env: Vec<(String, String)>,
}

impl Compose {
    /// `compose -f <file> -p <project> --env-file <f> <sub...>` (without the leading `docker`).
    pub fn args(&self, sub: &[String]) -> Vec<String> {
        let mut a: Vec<String> = vec!["compose".into(), "-f".into(), self.file.clone()];
        for o in &self.overlays {
            a.extend(["-f".into(), o.clone()]);
        }
        a.extend([
            "-p".into(),
            self.project.clone(),
            "--env-file".into(),
            self.env_file.display().to_string(),
        ]);
        a.extend(sub.iter().cloned());
        a
    }

    /// A one-shot compose command with the stack's environment.
    pub fn cmd<'a>(&self, sh: &'a xshell::Shell, sub: &[String]) -> xshell::Cmd<'a> {
        let mut c = super::cmd(sh, &self.args(sub));
        for (k, v) in &self.env {
            c = c.env(k, v);
        }
        c
    }

    /// A long-running compose child (up, build, logs -f).
    pub fn expr(&self, sub: &[String]) -> duct::Expression {
        let mut e = super::expr(&self.args(sub));
        for (k, v) in &self.env {
            e = e.env(k, v);
        }
        e
    }

    /// A compose child in a process group of its own, so a terminal's Ctrl-C does not reach it:
    /// a teardown must finish even when a person presses Ctrl-C again.
    pub fn detached(&self, sub: &[String]) -> std::process::Command {
        use std::os::unix::process::CommandExt;
        let mut c = std::process::Command::new("docker");
        c.args(self.args(sub))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .process_group(0);
        c
    }

    /// Shown with --dry-run and in messages: the environment, then argv, as a shell would take it.
    pub fn display(&self, sub: &[String]) -> String {
        let mut words: Vec<String> = self
            .env
            .iter()
            .map(|(k, v)| format!("{k}={}", shell_quote(v)))
            .collect();
        words.push("docker".into());
        words.extend(self.args(sub).iter().map(|a| shell_quote(a)));
        words.join(" ")
    }
}

pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@+%".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// What `up` does; planned here so tests can assert on the argv.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct UpOpts {
    /// Fresh anonymous volumes (node_modules, .next) so a dependency change is never shadowed
    /// by a stale copy (compose keeps anonymous volumes across recreation otherwise).
    pub renew_anon_volumes: bool,
    pub no_deps: bool,
}

pub fn up_args(o: UpOpts, services: &[&str]) -> Vec<String> {
    let mut a = words(&["up", "--detach", "--no-build", "--quiet-pull"]);
    if o.renew_anon_volumes {
        a.push("--renew-anon-volumes".into());
    }
    if o.no_deps {
        a.push("--no-deps".into());
    }
    a.extend(services.iter().map(|s| s.to_string()));
    a
}

pub fn build_args(services: &[&str]) -> Vec<String> {
    let mut a = words(&["build"]);
    a.extend(services.iter().map(|s| s.to_string()));
    a
}

/// `down` for a stack the xtask owns outright (verify): containers, networks, named and
/// anonymous volumes. Never used on the dev stack unless `--volumes` was asked for.
pub fn teardown_args() -> Vec<String> {
    words(&["down", "--volumes", "--remove-orphans", "--timeout", "5"])
}

/// `stop`: the containers stop (5 s grace), nothing is removed.
pub fn stop_args() -> Vec<String> {
    words(&["stop", "--timeout", "5"])
}

/// `rm --stop --force --volumes`: the containers and their anonymous volumes (caches), never
/// the named ones.
pub fn remove_containers_args() -> Vec<String> {
    words(&["rm", "--stop", "--force", "--volumes"])
}

/// `down`, keeping named volumes unless `volumes` (the dev stack's data: asked for by name).
pub fn down_args(volumes: bool) -> Vec<String> {
    let mut a = words(&["down", "--remove-orphans"]);
    if volumes {
        a.push("--volumes".into());
    }
    a
}

pub fn words(w: &[&str]) -> Vec<String> {
    w.iter().map(|s| s.to_string()).collect()
}

/// Compose files merged by compose itself (so `!reset`/`!override` work), interpolated with
/// `env`, as JSON.
pub fn config_json(
    sh: &xshell::Shell,
    root: &std::path::Path,
    files: &[&str],
    env: &[(String, String)],
) -> anyhow::Result<serde_json::Value> {
    use anyhow::Context;
    let mut args = words(&[
        "compose",
        "--project-directory",
        &root.display().to_string(),
    ]);
    for f in files {
        args.extend(["-f".into(), f.to_string()]);
    }
    args.extend(words(&["config", "--format", "json"]));
    let mut c = super::cmd(sh, &args);
    for (k, v) in env {
        c = c.env(k, v);
    }
    let out = c.quiet().ignore_status().output()?;
    if !out.status.success() {
        anyhow::bail!(
            "docker compose config of {} failed:\n{}",
            files.join(" + "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    serde_json::from_slice(&out.stdout).context("reading docker compose config's JSON")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compose() -> Compose {
        Compose {
            file: "docker-compose.yml".into(),
            overlays: vec![],
            project: "axion-verify-1".into(),
            env_file: ".env.example".into(),
            env: vec![
                ("APP_PORT".into(), "40001".into()),
                ("AXION_EXTRA_CA_FILE".into(), "/ca.pem".into()),
            ],
        }
    }

    #[test]
    fn argv_names_file_project_and_env_file() {
        assert_eq!(
            compose().args(&words(&["ps"])),
            words(&[
                "compose",
                "-f",
                "docker-compose.yml",
                "-p",
                "axion-verify-1",
                "--env-file",
                ".env.example",
                "ps"
            ])
        );
        assert_eq!(
            compose().display(&words(&["up"])),
            "APP_PORT=40001 AXION_EXTRA_CA_FILE=/ca.pem docker compose -f docker-compose.yml -p axion-verify-1 --env-file .env.example up"
        );
    }

    #[test]
    fn up_plans() {
        assert_eq!(
            up_args(UpOpts::default(), &[]),
            words(&["up", "--detach", "--no-build", "--quiet-pull"])
        );
        let o = UpOpts {
            renew_anon_volumes: true,
            no_deps: true,
        };
        assert_eq!(
            up_args(o, &["app"]).join(" "),
            "up --detach --no-build --quiet-pull --renew-anon-volumes --no-deps app"
        );
        assert!(teardown_args().contains(&"--volumes".to_string()));
        assert_eq!(shell_quote("a b"), "'a b'");
    }
}
