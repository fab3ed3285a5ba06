//! Containers at work: `exec` (interactive, streamed to or from a file), throw-away `run --rm`,
//! stop/start/restart, their whole `inspect`, memory, mounted volumes.

use std::process::Output;

use anyhow::Result;
use xshell::Shell;

use super::{cmd, compose::words, expr, ids, label_filter};

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
    super::run_with_input(&a, input, &format!("docker exec {container}"))
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

/// Each container's memory usage in bytes (of `names` on `engine`), from one `docker stats`
/// sample; one it cannot read is left out.
pub fn memory_bytes(sh: &Shell, engine: &super::Engine, names: &[String]) -> Vec<(String, u64)> {
    if names.is_empty() {
        return Vec::new();
    }
    let mut args = vec![
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}}\t{{.MemUsage}}",
    ];
    args.extend(names.iter().map(String::as_str));
    let out = engine.read(sh, &args).unwrap_or_default();
    out.lines()
        .filter_map(|l| {
            let (name, usage) = l.split_once('\t')?;
            Some((name.to_string(), parse_size(usage.split('/').next()?)?))
        })
        .collect()
}

/// `181.3MiB`, `1.2GiB`, `512kB`, `0B` (docker's sizes) in bytes.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let at = s.find(|c: char| c.is_ascii_alphabetic())?;
    let (n, unit) = s.split_at(at);
    let n: f64 = n.trim().parse().ok()?;
    let factor = match unit {
        "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        "kB" | "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        _ => return None,
    };
    Some((n * factor) as u64)
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
