//! `cargo xtask build-prod`: every stage of docker/Dockerfile (or those named), tagged
//! `axion-hub:<stage>` and `axion-hub:<stage>-<git rev>`, with time, cache use and size
//! (`--json`: one report on stdout).

use std::{
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use serde_json::json;
use xshell::Shell;

use crate::docker::build::Build;
use crate::startup::{Needs, Start};
use crate::{
    docker::{self},
    engine,
    flags::{self, STAGES},
    host,
    images::{self, ImageSet},
    integrity::{self},
    paths::log_path,
    proc::{Finished, run_logged},
    stack::{StackKind, TIMEOUT_BUILD},
    util::secs,
};

/// The build arguments every stage gets, as `--build-arg` pairs. The extra CAs are not among
/// them: they go in as the build secret `extra_ca` (see `Secret`).
fn stage_build_args(
    images: &ImageSet,
    install_flags: &str,
    release: &str,
) -> Vec<(String, String)> {
    vec![
        ("BUN_IMAGE".to_string(), images.bun.clone()),
        ("BUN_SLIM_IMAGE".to_string(), images.bun_slim.clone()),
        ("BUN_INSTALL_FLAGS".to_string(), install_flags.to_string()),
        ("AXION_BUILD_ID".to_string(), release.to_string()),
    ]
}

/// The build's secrets: the host's extra CAs (for bun install) and the server-actions key.
fn build_secrets(root: &Path) -> Result<[String; 2]> {
    let actions_key = crate::secrets::dir(root).join(crate::secrets::ACTIONS_KEY);
    Ok([
        extra_ca_secret(&host::extra_ca_file(root)?),
        format!("id=server_actions_key,src={}", actions_key.display()),
    ])
}

/// The build secret of the host's extra CAs: `id=extra_ca,src=<file>`.
fn extra_ca_secret(file: &Path) -> String {
    format!("id=extra_ca,src={}", file.display())
}

/// `docker build --target <stage>` for one stage; the context is app/.
fn stage_build(stage: &str, rev: &str, args: &[(String, String)], secrets: &[String]) -> Build {
    Build {
        file: Some("docker/Dockerfile".into()),
        target: Some(stage.into()),
        tags: vec![
            format!("axion-hub:{stage}"),
            format!("axion-hub:{stage}-{rev}"),
        ],
        build_args: args.to_vec(),
        secrets: secrets.to_vec(),
        context: "app".into(),
        ..Default::default()
    }
}

/// A `docker buildx bake` file (JSON) building the stages as one BuildKit graph.
fn bake_file(
    stages: &[&str],
    rev: &str,
    args: &[(String, String)],
    secrets: &[String],
) -> serde_json::Value {
    let args: serde_json::Map<String, serde_json::Value> = args
        .iter()
        .map(|(k, v)| (k.clone(), v.clone().into()))
        .collect();
    let targets: serde_json::Map<String, serde_json::Value> = stages
        .iter()
        .map(|s| {
            (
                s.to_string(),
                serde_json::json!({
                    "context": "app",
                    "dockerfile": "../docker/Dockerfile",
                    "target": s,
                    "tags": [format!("axion-hub:{s}"), format!("axion-hub:{s}-{rev}")],
                    "args": args,
                    "secret": secrets,
                }),
            )
        })
        .collect();
    serde_json::json!({ "group": { "default": { "targets": stages } }, "target": targets })
}

/// The stages a target builds: docker/Dockerfile's FROM and `COPY --from` edges.
fn ancestry(target: &str) -> &'static [&'static str] {
    match target {
        "base" => &["base"],
        "deps" => &["base", "deps"],
        "dev" => &["base", "deps", "dev"],
        "builder" => &["base", "deps", "builder"],
        _ => &["base", "deps", "builder", "runner"],
    }
}

/// Whether a target came from cache: the Dockerfile steps of its stages (`#N [stage k/n]`, or
/// `#N [target stage k/n]` from bake, which lists a shared step once), FROM aside, all print
/// `#N CACHED`. Returns (cached steps, steps).
fn cache_use(log: &str, target: &str) -> (usize, usize) {
    let stages = ancestry(target);
    let mut steps: Vec<&str> = Vec::new();
    for line in log.lines() {
        let Some((id, rest)) = line.split_once(' ') else {
            continue;
        };
        if !id.starts_with('#') || steps.contains(&id) {
            continue;
        }
        let Some((head, what)) = rest.strip_prefix('[').and_then(|r| r.split_once(']')) else {
            continue;
        };
        let words: Vec<&str> = head.split_whitespace().collect();
        // The stage is the word before `k/n`; `[internal]`, `[auth]` and exports have none.
        let Some(stage) = words.len().checked_sub(2).map(|i| words[i]) else {
            continue;
        };
        if !words.last().is_some_and(|w| w.contains('/'))
            || !stages.contains(&stage)
            || what.trim_start().starts_with("FROM")
        {
            continue;
        }
        steps.push(id);
    }
    let cached = steps
        .iter()
        .filter(|id| log.lines().any(|l| l == format!("{id} CACHED")))
        .count();
    (cached, steps.len())
}

struct StageResult {
    stage: String,
    time: Option<Duration>,
    cached: (usize, usize),
    size: u64,
}

impl StageResult {
    fn cache_word(&self) -> String {
        match self.cached {
            (_, 0) => "no steps".to_string(),
            (c, n) if c == n => "from cache".to_string(),
            (0, _) => "built".to_string(),
            (c, n) => format!("{c}/{n} steps cached"),
        }
    }
}

/// What one build produced: the finished child and each stage's figures.
type Outcome = (Finished, Vec<StageResult>);

impl flags::BuildProd {
    pub fn run(self, sh: &Shell) -> Result<()> {
        let t0 = Instant::now();
        let start = Start::new(
            sh,
            // The prod files: the runner's build reads the server-actions key.
            Needs {
                images: self.images,
                files: Some(StackKind::Prod),
                ..Default::default()
            },
        )?;
        let (v, root, env) = (&start.versions, &start.root, &start.env);
        crate::app_env::check(root, env)?;
        let images = start.set().clone();
        let stages: Vec<&str> = STAGES
            .iter()
            .copied()
            .filter(|s| self.stages.is_empty() || self.stages.iter().any(|x| x == s))
            .collect();
        let rev = images::revision(sh);
        let policy = crate::integrity::Policy::for_run(self.cold, self.no_verify.clone());
        let secrets = build_secrets(root)?;
        let strategy = if self.sequential {
            "sequential `docker build --target` per stage"
        } else {
            "one `docker buildx bake` graph"
        };
        if !self.json {
            eprintln!("docker: {}", engine::describe(v));
            eprintln!(
                "building {} ({strategy}), tags axion-hub:<stage> and axion-hub:<stage>-{rev}",
                stages.join(", ")
            );
        }
        let mut results = Vec::new();
        let built = integrity::build_with_policy(sh, StackKind::Prod, &policy, |flags| {
            if policy.cold {
                let log = log_path(root, "build-prod-cold-check.log");
                let check = integrity::cold_check(&images.bun, &log, TIMEOUT_BUILD)?;
                if !check.status.success() {
                    return Ok(check);
                }
            }
            let release = images::release_id(root).unwrap_or_default();
            let mut args = stage_build_args(&images, flags, &release);
            args.push((
                "AXION_ACTIONS_KEY_ID".into(),
                crate::secrets::actions_key_id(root),
            ));
            args.extend(crate::app_env::build_args(root, env));
            let (finished, r) = if self.sequential {
                build_sequential(root, &stages, &rev, &args, &secrets)?
            } else {
                build_bake(root, &stages, &rev, &args, &secrets)?
            };
            results = r;
            Ok(finished)
        });
        let built = match built {
            Ok(b) => b,
            Err(e) => {
                if self.json {
                    let report = json!({"verdict": "fail", "rev": rev, "strategy": strategy,
                                        "error": format!("{e:#}"), "total_seconds": t0.elapsed().as_secs_f64()});
                    println!("{}", serde_json::to_string_pretty(&report)?);
                }
                return Err(e);
            }
        };
        let tags: Vec<String> = results
            .iter()
            .map(|r| format!("axion-hub:{}", r.stage))
            .collect();
        for (r, size) in results.iter_mut().zip(docker::image_sizes(sh, &tags)) {
            r.size = size;
        }
        self.report(&results, &built, &rev, strategy, t0.elapsed())
    }

    fn report(
        &self,
        results: &[StageResult],
        built: &integrity::Built,
        rev: &str,
        strategy: &str,
        total: std::time::Duration,
    ) -> Result<()> {
        let build_time = built.finished.elapsed;
        if self.json {
            let stages: Vec<serde_json::Value> = results
                .iter()
                .map(|r| json!({
                    "stage": r.stage, "tags": [format!("axion-hub:{}", r.stage), format!("axion-hub:{}-{rev}", r.stage)],
                    "seconds": r.time.map(|t| t.as_secs_f64()), "cache": r.cache_word(),
                    "cached_steps": r.cached.0, "steps": r.cached.1, "size_bytes": r.size,
                }))
                .collect();
            let report = json!({"verdict": "pass", "rev": rev, "strategy": strategy, "stages": stages,
                                "lockfile_policy": built.policy, "build_seconds": build_time.as_secs_f64(),
                                "total_seconds": total.as_secs_f64()});
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print_table(results);
            eprintln!("lockfile: {}", built.policy);
            eprintln!("total {} (build {})", secs(total), secs(build_time));
        }
        Ok(())
    }
}

fn print_table(results: &[StageResult]) {
    eprintln!(
        "\n{:<8} {:>8}  {:<18} {:>8}",
        "stage", "time", "cache", "size"
    );
    for r in results {
        let time = r.time.map(secs).unwrap_or_else(|| "-".into());
        eprintln!(
            "{:<8} {:>8}  {:<18} {:>6.0}MB",
            r.stage,
            time,
            r.cache_word(),
            r.size as f64 / 1e6
        );
    }
}

/// One `docker build --target` per stage, in order; stops at the first failure.
fn build_sequential(
    root: &Path,
    stages: &[&str],
    rev: &str,
    args: &[(String, String)],
    secrets: &[String],
) -> Result<Outcome> {
    let started = Instant::now();
    let mut all = String::new();
    let mut results = Vec::new();
    let mut last: Option<Finished> = None;
    for stage in stages {
        let log = log_path(root, &format!("build-prod-{stage}.log"));
        let f = run_logged(
            stage_build(stage, rev, args, secrets)
                .expr()
                .env("BUILDKIT_PROGRESS", "plain"),
            &format!("building stage `{stage}`"),
            &log,
            TIMEOUT_BUILD,
        )?;
        all.push_str(&f.output);
        results.push(StageResult {
            stage: stage.to_string(),
            time: Some(f.elapsed),
            cached: cache_use(&f.output, stage),
            size: 0,
        });
        let ok = f.status.success();
        last = Some(f);
        if !ok {
            break;
        }
    }
    let f = last.context("no stage to build")?;
    let finished = Finished {
        output: all,
        elapsed: started.elapsed(),
        ..f
    };
    Ok((finished, results))
}

/// All stages as one `docker buildx bake` graph: shared stages once, independent ones in
/// parallel. A target's time is when its image was named in the graph's log.
fn build_bake(
    root: &Path,
    stages: &[&str],
    rev: &str,
    args: &[(String, String)],
    secrets: &[String],
) -> Result<Outcome> {
    let file = log_path(root, "bake.json");
    std::fs::create_dir_all(file.parent().context("log dir")?)?;
    std::fs::write(
        &file,
        serde_json::to_string_pretty(&bake_file(stages, rev, args, secrets))?,
    )?;
    let log = log_path(root, "build-prod-bake.log");
    let f = run_logged(
        docker::build::bake(&file, stages),
        "docker buildx bake",
        &log,
        TIMEOUT_BUILD,
    )?;
    let results = stages
        .iter()
        .map(|stage| {
            let named = format!("naming to docker.io/library/axion-hub:{stage}-{rev}");
            StageResult {
                stage: stage.to_string(),
                time: f
                    .lines
                    .iter()
                    .find(|(_, l)| l.contains(&named))
                    .map(|(t, _)| *t),
                cached: cache_use(&f.output, stage),
                size: 0,
            }
        })
        .collect();
    Ok((f, results))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_argv_targets_and_tags() {
        let args = stage_build_args(&ImageSet::standin(), "--frozen-lockfile", "r1");
        let v = stage_build(
            "runner",
            "abc123",
            &args,
            &["id=extra_ca,src=/ca.pem".to_string()],
        )
        .argv();
        let s = v.join(" ");
        assert!(s.starts_with("build -f docker/Dockerfile --target runner -t axion-hub:runner -t axion-hub:runner-abc123"), "{s}");
        assert!(
            s.contains("--build-arg BUN_SLIM_IMAGE=axion-hub-standin/bun:1.4.5-slim"),
            "{s}"
        );
        assert!(
            s.contains("--build-arg BUN_INSTALL_FLAGS=--frozen-lockfile"),
            "{s}"
        );
        assert!(
            !s.contains("EXTRA_CA") && s.contains("--secret id=extra_ca,src=/ca.pem"),
            "the CAs go in as a build secret, never a build argument: {s}"
        );
        assert_eq!(v.last().unwrap(), "app");
    }

    #[test]
    fn bake_file_has_every_stage() {
        let f = bake_file(
            &STAGES,
            "r1",
            &stage_build_args(&ImageSet::upstream(), "--frozen-lockfile", "r1"),
            &["id=extra_ca,src=/ca.pem".to_string()],
        );
        assert_eq!(f["target"]["deps"]["secret"][0], "id=extra_ca,src=/ca.pem");
        assert_eq!(
            f["group"]["default"]["targets"].as_array().unwrap().len(),
            5
        );
        assert_eq!(f["target"]["deps"]["target"], "deps");
        assert_eq!(f["target"]["runner"]["tags"][1], "axion-hub:runner-r1");
        assert_eq!(f["target"]["dev"]["args"]["BUN_IMAGE"], "oven/bun:1.4.5");
    }

    #[test]
    fn cache_use_from_plain_logs() {
        let log = "#1 [internal] load build definition from Dockerfile\n#1 DONE 0.0s\n\
                   #5 [base 1/2] FROM docker.io/library/x\n#5 DONE 0.0s\n\
                   #6 [deps 1/2] COPY package.json bun.lock ./\n#6 CACHED\n\
                   #7 [deps 2/2] RUN bun install\n#7 CACHED\n\
                   #8 [builder 3/3] RUN bun run build\n#8 DONE 11.2s\n";
        assert_eq!(
            cache_use(log, "deps"),
            (2, 2),
            "builder's step is not part of deps"
        );
        assert_eq!(cache_use(log, "builder"), (2, 3));
        let bake = "#6 [builder deps 1/2] COPY package.json bun.lock ./\n#6 CACHED\n#9 [runner builder 3/3] RUN bun run build\n#9 DONE 9.0s\n\
                    #9 [builder builder 3/3] RUN bun run build\n";
        assert_eq!(
            cache_use(bake, "deps"),
            (1, 1),
            "a shared step counts for every target that needs it"
        );
        assert_eq!(cache_use(bake, "runner"), (1, 2));
    }
}
