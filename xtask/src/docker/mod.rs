//! The one docker layer: every `docker` and `docker compose` child is spawned here, and every
//! piece of JSON docker prints is parsed here.

pub mod build;
pub mod compose;
pub mod container;
pub mod events;
pub mod resources;
pub mod run;
pub mod swarm;

use std::process::{Command, Output, Stdio};

use anyhow::{Result, bail};
use xshell::Shell;

pub use container::Container;

/// Which engine a docker call talks to: the one the client is configured for (DOCKER_HOST,
/// context), or another by address (`--manager`, a node of the throw-away cluster's socket).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Engine(Option<String>);

impl Engine {
    pub fn configured() -> Engine {
        Engine(None)
    }
    /// `tcp://…`, `ssh://user@host`, `unix://…`: what `docker -H` takes.
    pub fn host(h: &str) -> Engine {
        Engine(Some(h.to_string()))
    }
    /// The address, for a child command's `--manager`.
    pub fn address(&self) -> Option<&str> {
        self.0.as_deref()
    }
    /// `docker [-H host] <rest>`.
    pub fn args(&self, rest: &[&str]) -> Vec<String> {
        let mut a = Vec::new();
        if let Some(h) = &self.0 {
            a.extend(["-H".to_string(), h.clone()]);
        }
        a.extend(words(rest));
        a
    }
    /// Its stdout; a failure carries the command and docker's stderr.
    pub fn read(&self, sh: &Shell, rest: &[&str]) -> Result<String> {
        let out = cmd(sh, &self.args(rest)).quiet().ignore_status().output()?;
        if !out.status.success() {
            bail!(
                "docker {}: {}",
                rest.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// A one-shot `docker <args>` (xshell: checked exit status, quiet by default at call sites).
pub fn cmd<'a>(sh: &'a Shell, args: &[String]) -> xshell::Cmd<'a> {
    sh.cmd("docker").args(args)
}

/// A long-running `docker <args>` child (duct).
pub fn expr(args: &[String]) -> duct::Expression {
    duct::cmd("docker", args)
}

/// Runs several `docker` commands at once (each CLI start costs 20-150 ms; preflight and
/// cleanup checks do not depend on each other) and returns their outputs in order.
pub fn run_all(calls: &[Vec<String>]) -> Vec<std::io::Result<Output>> {
    let children: Vec<_> = calls
        .iter()
        .map(|args| {
            Command::new("docker")
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
        })
        .collect();
    children
        .into_iter()
        .map(|c| c.and_then(|c| c.wait_with_output()))
        .collect()
}

/// A Go template printing an image label, or nothing: `index` on an image without any label
/// (`.Config.Labels` is nil) fails the whole `docker image inspect`.
pub fn image_label(key: &str) -> String {
    format!("{{{{with .Config.Labels}}}}{{{{index . \"{key}\"}}}}{{{{end}}}}")
}

/// The ids a listing (`ps -aq …`, `image ls -q …`) prints; none when it fails.
pub fn ids(sh: &Shell, args: &[String]) -> Vec<String> {
    cmd(sh, args)
        .quiet()
        .read()
        .unwrap_or_default()
        .split_whitespace()
        .map(String::from)
        .collect()
}

/// The filter that selects everything compose made for a project.
pub fn label_filter(project: &str) -> String {
    format!("label=com.docker.compose.project={project}")
}

fn words(w: &[&str]) -> Vec<String> {
    compose::words(w)
}

/// The containers of a project, running or not, sorted by service.
pub fn containers(sh: &Shell, project: &str) -> Result<Vec<Container>> {
    let ids = cmd(
        sh,
        &words(&["ps", "-aq", "--filter", &label_filter(project)]),
    )
    .quiet()
    .read()?;
    let ids: Vec<String> = ids.split_whitespace().map(String::from).collect();
    inspect(sh, &ids)
}

pub fn inspect(sh: &Shell, ids: &[String]) -> Result<Vec<Container>> {
    if ids.is_empty() {
        return Ok(vec![]);
    }
    let mut args = words(&["inspect"]);
    args.extend(ids.iter().cloned());
    let json = cmd(sh, &args).quiet().read()?;
    let mut cs = container::parse_inspect(&json)?;
    cs.sort_by(|a, b| a.service.cmp(&b.service));
    Ok(cs)
}

/// The last `n` lines a container printed (stdout and stderr).
pub fn logs_tail(sh: &Shell, id: &str, n: usize) -> String {
    let args = words(&["logs", "--tail", &n.to_string(), id]);
    match cmd(sh, &args).quiet().ignore_status().output() {
        Ok(o) => format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => format!("(docker logs failed: {e})"),
    }
}

/// Names of the project's volumes.
pub fn volumes(sh: &Shell, project: &str) -> Result<Vec<String>> {
    let args = words(&["volume", "ls", "-q", "--filter", &label_filter(project)]);
    let out = cmd(sh, &args).quiet().read()?;
    Ok(out.split_whitespace().map(String::from).collect())
}

/// Containers, volumes and networks still labelled with the project.
pub fn leftovers(project: &str) -> Result<Vec<String>> {
    let filter = label_filter(project);
    let kinds = ["container", "volume", "network"];
    let calls: Vec<Vec<String>> = [
        &["ps", "-aq"][..],
        &["volume", "ls", "-q"],
        &["network", "ls", "-q"],
    ]
    .iter()
    .map(|c| {
        let mut a = words(c);
        a.extend(["--filter".into(), filter.clone()]);
        a
    })
    .collect();
    let mut left = Vec::new();
    for (kind, out) in kinds.iter().zip(run_all(&calls)) {
        let out = out?;
        if !out.status.success() {
            bail!(
                "listing {kind}s: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        left.extend(
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .map(|id| format!("{kind} {id}")),
        );
    }
    Ok(left)
}

pub fn image_exists(sh: &Shell, image: &str) -> bool {
    cmd(sh, &words(&["image", "inspect", "--format", "x", image]))
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run()
        .is_ok()
}

/// One `docker image inspect --format <f>` line per image, or None when some image is missing.
fn image_field(sh: &Shell, format: &str, images: &[String]) -> Option<Vec<String>> {
    if images.is_empty() {
        return Some(vec![]);
    }
    let mut args = words(&["image", "inspect", "--format", format]);
    args.extend(images.iter().cloned());
    let all = cmd(sh, &args).quiet().ignore_stderr().read().ok()?;
    let lines: Vec<String> = all.lines().map(String::from).collect();
    (lines.len() == images.len()).then_some(lines)
}

/// Sizes in bytes as the engine reports them, in one call (0 where an image is missing).
pub fn image_sizes(sh: &Shell, images: &[String]) -> Vec<u64> {
    match image_field(sh, "{{.Size}}", images) {
        Some(lines) => lines
            .iter()
            .map(|l| l.trim().parse().unwrap_or(0))
            .collect(),
        None => vec![0; images.len()],
    }
}

/// One `--format` line of several images in one call when all exist (the warm case);
/// otherwise one call per image to know which is missing (None).
pub fn image_lines(sh: &Shell, format: &str, images: &[String]) -> Vec<Option<String>> {
    if let Some(lines) = image_field(sh, format, images) {
        return lines.into_iter().map(Some).collect();
    }
    images
        .iter()
        .map(|i| image_field(sh, format, std::slice::from_ref(i)).and_then(|mut l| l.pop()))
        .collect()
}

/// How many containers, networks and volumes the engine has (everyone's).
pub fn counts(sh: &Shell) -> (usize, usize, usize) {
    let count = |args: &[&str]| {
        cmd(sh, &words(args))
            .quiet()
            .read()
            .map_or(0, |o| o.lines().count())
    };
    (
        count(&["ps", "-aq"]),
        count(&["network", "ls", "-q"]),
        count(&["volume", "ls", "-q"]),
    )
}

/// The container publishing a host port, if docker knows one.
pub fn publisher_of(port: u16) -> Option<String> {
    let args = words(&[
        "ps",
        "--filter",
        &format!("publish={port}"),
        "--format",
        "{{.Names}}",
    ]);
    let out = run_all(&[args]).pop()?.ok()?;
    let name = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (!name.is_empty()).then_some(name)
}

/// `docker exec <container> <args>`: its output whatever the exit status (checks read both).
pub fn exec(sh: &Shell, container: &str, args: &[&str]) -> Result<Output> {
    let mut a = words(&["exec", container]);
    a.extend(words(args));
    Ok(cmd(sh, &a).quiet().ignore_status().output()?)
}

/// `docker exec -i <container> <args>` with `input` on its stdin; a failure carries its stderr.
pub fn exec_with_input(container: &str, args: &[&str], input: &[u8]) -> Result<()> {
    let mut a = words(&["exec", "-i", container]);
    a.extend(words(args));
    let out = expr(&a)
        .stdin_bytes(input)
        .stdout_null()
        .stderr_capture()
        .unchecked()
        .run()?;
    if !out.status.success() {
        bail!(
            "docker exec {container}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// `docker build` of a Dockerfile given as text (no context), tagged `tag`, with labels
/// (`key=value`).
pub fn build_from_stdin(tag: &str, labels: &[String], dockerfile: &str) -> Result<()> {
    let mut args = words(&["build", "--quiet", "-t", tag]);
    for l in labels {
        args.extend(["--label".to_string(), l.clone()]);
    }
    args.push("-".into());
    let out = expr(&args)
        .stdin_bytes(dockerfile.as_bytes())
        .stdout_null()
        .stderr_capture()
        .unchecked()
        .run()?;
    if !out.status.success() {
        bail!(
            "docker build: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// A throw-away container of `image` running `sh -c <script>` as root without a network: for
/// looking inside an image (a file scan), never for serving.
pub fn inspect_image_with(sh: &Shell, image: &str, script: &str) -> Result<String> {
    let args = words(&[
        "run",
        "--rm",
        "--user",
        "0",
        "--network",
        "none",
        "--entrypoint",
        "sh",
        image,
        "-c",
        script,
    ]);
    Ok(cmd(sh, &args).quiet().ignore_stderr().read()?)
}

/// The commands that made each layer of an image (`docker history`), unabridged.
pub fn history(sh: &Shell, image: &str) -> Result<String> {
    let args = words(&["history", "--no-trunc", "--format", "{{.CreatedBy}}", image]);
    Ok(cmd(sh, &args).quiet().read()?)
}

/// Whether a network is `internal` (no route out).
pub fn network_internal(sh: &Shell, network: &str) -> Result<bool> {
    let args = words(&["network", "inspect", "--format", "{{.Internal}}", network]);
    Ok(cmd(sh, &args).quiet().read()?.trim() == "true")
}

/// Removes an image tag (and the image when it was the last); a missing one is no error.
pub fn remove_image(sh: &Shell, image: &str) {
    let _ = cmd(sh, &words(&["image", "rm", image]))
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run();
}

/// Removes images by id or name (`force`: also those tagged more than once).
pub fn remove_images(sh: &Shell, images: &[String], force: bool) -> Result<()> {
    let mut args = words(&["image", "rm"]);
    if force {
        args.push("--force".into());
    }
    args.extend(images.iter().cloned());
    cmd(sh, &args).quiet().ignore_stdout().run()?;
    Ok(())
}

/// Every `repository:tag` of a repository on this engine.
pub fn repository_tags(sh: &Shell, repository: &str) -> Result<Vec<String>> {
    let args = words(&[
        "image",
        "ls",
        repository,
        "--format",
        "{{.Repository}}:{{.Tag}}",
    ]);
    Ok(cmd(sh, &args)
        .quiet()
        .read()?
        .lines()
        .map(String::from)
        .collect())
}

/// Prunes the engine's build cache down to `keep` (`10GB`); buildx's total line.
pub fn prune_build_cache(sh: &Shell, keep: &str) -> Result<String> {
    let args = words(&["buildx", "prune", "--force", "--keep-storage", keep]);
    let out = cmd(sh, &args).quiet().read()?;
    Ok(out.lines().last().unwrap_or("").replace('\t', " "))
}

/// Whether an engine answers (`docker info` succeeds).
pub fn daemon_answers(sh: &Shell) -> bool {
    cmd(sh, &words(&["info", "--format", "{{.ServerVersion}}"]))
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run()
        .is_ok()
}

/// The whole `docker inspect` of some containers (every field: the secret scans read it).
pub fn inspect_raw(sh: &Shell, ids: &[String]) -> Result<String> {
    let mut args = words(&["inspect"]);
    args.extend(ids.iter().cloned());
    Ok(cmd(sh, &args).quiet().read()?)
}

/// Restarts a container, giving it `grace` seconds to stop.
pub fn restart(sh: &Shell, container: &str, grace: u32) -> Result<()> {
    let args = words(&["restart", "--time", &grace.to_string(), container]);
    cmd(sh, &args).quiet().ignore_stdout().run()?;
    Ok(())
}

/// Stops a container, giving it `grace` seconds.
pub fn stop(sh: &Shell, container: &str, grace: u32) -> Result<()> {
    let args = words(&["stop", "--time", &grace.to_string(), container]);
    cmd(sh, &args).quiet().ignore_stdout().run()?;
    Ok(())
}

pub fn start(sh: &Shell, container: &str) -> Result<()> {
    cmd(sh, &words(&["start", container]))
        .quiet()
        .ignore_stdout()
        .run()?;
    Ok(())
}

/// `name \t memory usage` of each container, from one `docker stats` sample.
pub fn memory_usage(sh: &Shell, names: &[String]) -> Vec<(String, String)> {
    let mut args = words(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}}\t{{.MemUsage}}",
    ]);
    args.extend(names.iter().cloned());
    let out = cmd(sh, &args).quiet().read().unwrap_or_default();
    out.lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(n, m)| (n.to_string(), m.to_string()))
        .collect()
}

/// The names of the volumes mounted in a project's containers (anonymous ones included).
pub fn mounted_volumes(sh: &Shell, project: &str) -> Vec<String> {
    let ids = ids(
        sh,
        &words(&["ps", "-aq", "--filter", &label_filter(project)]),
    );
    if ids.is_empty() {
        return vec![];
    }
    let format = "{{range .Mounts}}{{if eq .Type \"volume\"}}{{.Name}} {{end}}{{end}}";
    let mut args = words(&["inspect", "--format", format]);
    args.extend(ids);
    let out = cmd(sh, &args).quiet().read().unwrap_or_default();
    out.split_whitespace().map(String::from).collect()
}

/// Removes volumes by name; one that is gone or in use is left (a best effort).
pub fn remove_volumes(sh: &Shell, names: &[String]) {
    let mut args = words(&["volume", "rm", "--force"]);
    args.extend(names.iter().cloned());
    let _ = cmd(sh, &args)
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .ignore_status()
        .run();
}

/// The ids of the engine's dangling images (untagged: a tag moved to a new build).
pub fn dangling_images(sh: &Shell) -> Result<Vec<String>> {
    let args = words(&[
        "image",
        "ls",
        "-q",
        "--no-trunc",
        "--filter",
        "dangling=true",
    ]);
    Ok(cmd(sh, &args)
        .quiet()
        .read()?
        .split_whitespace()
        .map(String::from)
        .collect())
}

/// One `--format` line per image, in one `docker image inspect` (every image must exist).
pub fn image_rows(sh: &Shell, format: &str, images: &[String]) -> Result<String> {
    let mut args = words(&["image", "inspect", "--format", format]);
    args.extend(images.iter().cloned());
    Ok(cmd(sh, &args).quiet().read()?)
}

fn run_rm_args(options: &[&str], image: &str, command: &[&str]) -> Vec<String> {
    let mut args = words(&["run", "--rm"]);
    args.extend(words(options));
    args.push(image.to_string());
    args.extend(words(command));
    args
}

/// A throw-away container (`docker run --rm <options> <image> <command>`), its output streamed
/// to the terminal; fails when the command does.
pub fn run_rm_shown(sh: &Shell, options: &[&str], image: &str, command: &[&str]) -> Result<()> {
    cmd(sh, &run_rm_args(options, image, command)).run()?;
    Ok(())
}

/// A throw-away container as a long-running child (its caller logs and times it).
pub fn run_rm_expr(options: &[&str], image: &str, command: &[&str]) -> duct::Expression {
    expr(&run_rm_args(options, image, command))
}

/// A throw-away container, its output captured whatever its exit status.
pub fn run_rm_output(options: &[&str], image: &str, command: &[&str]) -> Result<Output> {
    let args = run_rm_args(options, image, command);
    Ok(expr(&args)
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .run()?)
}

/// `docker exec` with the terminal's stdin (and a tty when it is one): an interactive tool.
pub fn exec_interactive(container: &str, command: &[&str]) -> Result<std::process::ExitStatus> {
    use std::io::IsTerminal;
    let tty = std::io::stdin().is_terminal();
    let mut args = words(&["exec", if tty { "-it" } else { "-i" }, container]);
    args.extend(words(command));
    Ok(expr(&args).unchecked().run()?.status)
}

/// `docker exec` with its stdout into `file`; stderr captured.
pub fn exec_to_file(container: &str, command: &[&str], file: std::fs::File) -> Result<Output> {
    let mut args = words(&["exec", container]);
    args.extend(words(command));
    Ok(expr(&args)
        .stdout_file(file)
        .stderr_capture()
        .unchecked()
        .run()?)
}

/// `docker exec -i` with `file` on its stdin; stdout dropped, stderr captured.
pub fn exec_from_file(container: &str, command: &[&str], file: std::fs::File) -> Result<Output> {
    let mut args = words(&["exec", "-i", container]);
    args.extend(words(command));
    Ok(expr(&args)
        .stdin_file(file)
        .stdout_null()
        .stderr_capture()
        .unchecked()
        .run()?)
}

/// The engine's version, if it answers.
pub fn server_version(sh: &Shell, engine: &Engine) -> Option<String> {
    engine
        .read(sh, &["version", "--format", "{{.Server.Version}}"])
        .ok()
        .map(|v| v.trim().to_string())
}

/// The engine's operating system as it names itself (`Docker Desktop` on macOS and Windows).
pub fn engine_os(sh: &Shell) -> String {
    cmd(sh, &words(&["info", "--format", "{{.OperatingSystem}}"]))
        .quiet()
        .ignore_stderr()
        .read()
        .unwrap_or_default()
}
