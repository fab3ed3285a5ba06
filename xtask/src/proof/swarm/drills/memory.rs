//! Memory at its bounds. The app's tmpfs pages count against its memory limit, so:
//! - statically, the app's tmpfs sizes plus the memory its process needs under load
//!   (APP_PROCESS_MIB, measured with `bench --load`) must fit its limit;
//! - then every app task's tmpfs is filled to the last byte (as `/_next/image` variants fill
//!   the image cache in time), the cache service is written past its maxmemory, and the build's
//!   image variants and ISR pages are requested under load: nothing may be killed;
//! - the queue's Redis is filled to 90% of its maxmemory and rewrites its append-only file while
//!   written to (the fork's copy-on-write needs headroom): nothing may be killed.
//!
//! Everything written is removed after.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;
use xshell::Shell;

use super::{Ctx, Fault, containers, redis_admin, redis_cli, replaced_since, task_ids};
use crate::{
    docker::Engine,
    proof::{
        cluster::Cluster,
        load::{Load, WORKERS},
        swarm::STACK,
    },
};

/// What the app's process (bun, Next.js) takes under `bench --load` at 100 connections: 190 MiB
/// measured, with headroom.
pub const APP_PROCESS_MIB: u64 = 224;
const MIB: u64 = 1 << 20;
const FILL: &str = ".axion-drill-fill";
/// The queue's Redis is filled to this share of its maxmemory.
const REDIS_FILL: f64 = 0.9;
const VALUE_BYTES: u64 = 10 * 1024;

pub fn drill(ctx: &Ctx, cluster: &Cluster, fault: &mut Fault) -> Result<()> {
    let sh = ctx.run.sh;
    let manager = cluster.manager();
    let before = task_ids(sh, &manager, "app")?;
    let (limit, tmpfs) = app_mounts(sh, &manager)?;
    // Every part runs, whatever an earlier one found: the report has all of them.
    let mut problems: Vec<String> = Vec::new();
    let mut keep = |r: Result<String>, what: &str, notes: &mut Vec<String>| match r {
        Ok(line) => notes.push(format!("{what}: {line}")),
        Err(e) => problems.push(format!("{what}: {e:#}")),
    };
    keep(fits(limit, &tmpfs), "app budget", &mut fault.notes);
    let apps = containers(sh, cluster, "app");
    keep(
        fill_tmpfs(sh, cluster, &apps, &tmpfs),
        "app tmpfs filled",
        &mut fault.notes,
    );
    keep(
        overfill_cache(sh, cluster),
        "cache service",
        &mut fault.notes,
    );

    let mut paths: Vec<String> = ctx.release.build.image_variants();
    paths.extend(ctx.release.build.isr.iter().map(|(p, _)| p.clone()));
    paths.extend(ctx.served.iter().cloned());
    let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
    let load = Load::start(ctx.entries, &paths, WORKERS);
    std::thread::sleep(Duration::from_secs(8));
    let summary = load.finish();
    fault.notes.push(format!(
        "app memory peaks (the cgroup's, page cache included): {}",
        peaks(sh, cluster, &apps)
    ));
    empty_tmpfs(sh, cluster, &apps, &tmpfs);
    keep(
        rewrite_when_full(sh, &manager),
        "queue's Redis",
        &mut fault.notes,
    );
    fault.notes.push(format!(
        "queue's Redis memory peak (the cgroup's, page cache of its files included): {}",
        peaks(sh, cluster, &containers(sh, cluster, "redis"))
    ));
    fault.requests = summary.total.requests;
    fault.failed_requests = summary.total.failed;
    fault.tasks_replaced = replaced_since(sh, &manager, &before)?;
    if fault.failed_requests > 0 || fault.tasks_replaced > 0 {
        problems.push(format!(
            "with the caches full, {} requests failed and {} app tasks were replaced: {}",
            fault.failed_requests,
            fault.tasks_replaced,
            summary.failures.join("; ")
        ));
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("; "));
    }
    Ok(())
}

/// The app service's memory limit and tmpfs mounts (target, size), as deployed.
fn app_mounts(sh: &Shell, manager: &Engine) -> Result<(u64, Vec<(String, u64)>)> {
    let spec = manager.read(
        sh,
        &[
            "service",
            "inspect",
            "--format",
            "{{json .Spec.TaskTemplate}}",
            &format!("{STACK}_app"),
        ],
    )?;
    let spec: Value = serde_json::from_str(&spec).context("reading the app's task template")?;
    let limit = spec["Resources"]["Limits"]["MemoryBytes"]
        .as_u64()
        .context("the app service has no memory limit")?;
    let tmpfs: Vec<(String, u64)> = spec["ContainerSpec"]["Mounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["Type"] == "tmpfs")
        .map(|m| {
            let target = m["Target"].as_str().unwrap_or("").to_string();
            (target, m["TmpfsOptions"]["SizeBytes"].as_u64().unwrap_or(0))
        })
        .collect();
    Ok((limit, tmpfs))
}

/// The tmpfs sizes and the process's memory fit the limit: the sum, or why they do not.
fn fits(limit: u64, tmpfs: &[(String, u64)]) -> Result<String> {
    if let Some((t, _)) = tmpfs.iter().find(|(_, b)| *b == 0) {
        bail!("the app's tmpfs {t} has no size: it may grow to the memory limit");
    }
    let sizes: Vec<String> = tmpfs
        .iter()
        .map(|(t, b)| format!("{t} {} MiB", b / MIB))
        .collect();
    let need = tmpfs.iter().map(|(_, b)| b).sum::<u64>() + APP_PROCESS_MIB * MIB;
    let line = format!(
        "tmpfs ({}) + process {APP_PROCESS_MIB} MiB = {} MiB of a {} MiB limit",
        sizes.join(", "),
        need / MIB,
        limit / MIB
    );
    if need > limit {
        bail!(
            "{line}: a full cache gets it killed.\n  \
             fix: smaller tmpfs sizes in docker-compose.swarm.yml, or a higher APP_MEMORY_LIMIT"
        );
    }
    Ok(line)
}

/// Each app container's tmpfs filled to ENOSPC: how much went in.
fn fill_tmpfs(
    sh: &Shell,
    cluster: &Cluster,
    apps: &[(usize, String)],
    tmpfs: &[(String, u64)],
) -> Result<String> {
    let mut script = String::new();
    for (t, _) in tmpfs {
        script.push_str(&format!(
            "dd if=/dev/zero of={t}/{FILL} bs=1M 2>/dev/null; du -sm {t} | cut -f1; "
        ));
    }
    let mut out = Vec::new();
    for (node, id) in apps {
        let node = cluster.nodes[*node].target();
        let used = node.read(sh, &["exec", id, "sh", "-c", &script])?;
        let used: Vec<u64> = used.lines().filter_map(|l| l.trim().parse().ok()).collect();
        for ((t, size), mib) in tmpfs.iter().zip(&used) {
            // A tmpfs the app cannot fill is one it cannot write: its cache is off.
            if mib * MIB < size * 9 / 10 {
                bail!(
                    "the app (uid 1000) wrote only {mib} MiB to its {} MiB tmpfs {t}: it cannot use it (a tmpfs takes its directory's mode, owned by root)",
                    size / MIB
                );
            }
        }
        let used: Vec<String> = used.iter().map(u64::to_string).collect();
        out.push(format!("{} MiB", used.join(" + ")));
    }
    Ok(out.join("; "))
}

fn empty_tmpfs(sh: &Shell, cluster: &Cluster, apps: &[(usize, String)], tmpfs: &[(String, u64)]) {
    let files: Vec<String> = tmpfs.iter().map(|(t, _)| format!("{t}/{FILL}")).collect();
    for (node, id) in apps {
        let mut args = vec!["exec", id.as_str(), "rm", "-f"];
        args.extend(files.iter().map(String::as_str));
        let _ = cluster.nodes[*node].target().read(sh, &args);
    }
}

/// Each container's memory peak against its limit (its cgroup's own figures).
fn peaks(sh: &Shell, cluster: &Cluster, apps: &[(usize, String)]) -> String {
    // cgroup v2, else v1 (this machine kind's hosts).
    let read = "cat /sys/fs/cgroup/memory.peak /sys/fs/cgroup/memory.max 2>/dev/null \
        || cat /sys/fs/cgroup/memory/memory.max_usage_in_bytes /sys/fs/cgroup/memory/memory.limit_in_bytes";
    let mut out = Vec::new();
    for (node, id) in apps {
        let node = cluster.nodes[*node].target();
        let v = node
            .read(sh, &["exec", id, "sh", "-c", read])
            .unwrap_or_default();
        let v: Vec<u64> = v.lines().filter_map(|l| l.trim().parse().ok()).collect();
        out.push(match v[..] {
            [peak, max] => format!("{} of {} MiB", peak / MIB, max / MIB),
            _ => "unknown".into(),
        });
    }
    out.join(", ")
}

/// `redis-cli` in the cache service's task with its password.
fn cache_cli(sh: &Shell, cluster: &Cluster, args: &str) -> Result<String> {
    let (node, id) = containers(sh, cluster, "cache")
        .into_iter()
        .next()
        .context("no running cache task")?;
    redis_cli(
        sh,
        &cluster.nodes[node].target(),
        &id,
        "cache_password",
        args,
    )
}

/// The cache service written to 1.5 times its maxmemory: it must evict, not grow.
fn overfill_cache(sh: &Shell, cluster: &Cluster) -> Result<String> {
    // Its user may not CONFIG GET: INFO says it too.
    let max = info_field(&cache_cli(sh, cluster, "INFO memory")?, Some("maxmemory"))?;
    let keys = max * 3 / 2 / VALUE_BYTES;
    for start in (0..keys).step_by(2000) {
        cache_cli(sh, cluster, &fill_script(start, (start + 1999).min(keys)))?;
    }
    let info = cache_cli(sh, cluster, "INFO memory")?;
    let used = info_field(&info, Some("used_memory"))?;
    let stats = cache_cli(sh, cluster, "INFO stats")?;
    let evicted = info_field(&stats, Some("evicted_keys"))?;
    // Redis evicts as it goes over: a few bytes above maxmemory between two writes is its way.
    if used > max + max / 50 || evicted == 0 {
        bail!("the cache service holds {used} bytes of {max} and evicted {evicted} keys");
    }
    Ok(format!(
        "{} MiB written, holds {} of {} MiB, {evicted} keys evicted",
        keys * VALUE_BYTES / MIB,
        used / MIB,
        max / MIB
    ))
}

/// A Lua script (in shell quotes) that sets keys `start..=end` to VALUE_BYTES each.
fn fill_script(start: u64, end: u64) -> String {
    format!(
        "EVAL 'for i = {start}, {end} do redis.call(\"SET\", \"axion:drill:fill:\" .. i, string.rep(\"x\", {VALUE_BYTES})) end' 0"
    )
}

/// `field:value` of an INFO answer (`None`: the second line of a CONFIG GET), as a number.
fn info_field(text: &str, field: Option<&str>) -> Result<u64> {
    let value = match field {
        Some(f) => text
            .lines()
            .find_map(|l| l.trim().strip_prefix(&format!("{f}:"))),
        None => text.lines().nth(1),
    };
    value
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no {} in {text:?}", field.unwrap_or("value")))
}

/// The queue's Redis filled to REDIS_FILL of its maxmemory, then its append-only file rewritten
/// while keys are written over; everything removed after.
fn rewrite_when_full(sh: &Shell, manager: &Engine) -> Result<String> {
    let cli = |args: &str| redis_admin(sh, manager, args);
    let max = info_field(&cli("CONFIG GET maxmemory")?, None)?;
    let mut keys = 0;
    while info_field(&cli("INFO memory")?, Some("used_memory"))? < (max as f64 * REDIS_FILL) as u64
    {
        let room = (max as f64 * REDIS_FILL) as u64
            - info_field(&cli("INFO memory")?, Some("used_memory"))?;
        let n = (room / (VALUE_BYTES * 5 / 4)).clamp(1, 2000);
        cli(&fill_script(keys, keys + n - 1))?;
        keys += n;
    }
    let used = info_field(&cli("INFO memory")?, Some("used_memory"))?;
    cli("BGREWRITEAOF")?;
    // Written over while the child writes the new file: pages the fork shares get copied.
    let mut k = 0;
    let rewrote = crate::util::poll(
        "the append-only file's rewrite to end",
        Duration::from_secs(120),
        Duration::from_millis(50),
        || {
            cli(&fill_script(k % keys, (k % keys + 199).min(keys - 1)))?;
            k += 200;
            let info = cli("INFO persistence")?;
            let busy = info_field(&info, Some("aof_rewrite_in_progress"))?
                + info_field(&info, Some("aof_rewrite_scheduled"))?;
            Ok((busy == 0).then_some(info))
        },
    )?;
    let ok = rewrote.contains("aof_last_bgrewrite_status:ok");
    let peak = cli("INFO memory")
        .ok()
        .and_then(|i| info_field(&i, Some("used_memory_peak")).ok());
    cli(&format!(
        "EVAL 'for i = 0, {} do redis.call(\"UNLINK\", \"axion:drill:fill:\" .. i) end' 0",
        keys - 1
    ))?;
    if !ok {
        bail!(
            "the append-only file's rewrite at {} MiB failed",
            used / MIB
        );
    }
    Ok(format!(
        "{} MiB of {} MiB ({keys} keys), the append-only file rewritten under writes, peak {} MiB",
        used / MIB,
        max / MIB,
        peak.unwrap_or(0) / MIB
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_answers_are_read_as_numbers() {
        let info = "# Memory\r\nused_memory:1048576\r\nused_memory_human:1.00M\r\n";
        assert_eq!(info_field(info, Some("used_memory")).unwrap(), 1 << 20);
        assert_eq!(
            info_field("maxmemory\n209715200\n", None).unwrap(),
            200 << 20
        );
        let e = info_field(info, Some("evicted_keys")).unwrap_err();
        assert!(e.to_string().contains("no evicted_keys"), "{e}");
    }

    #[test]
    fn tmpfs_and_process_must_fit_the_limit() {
        let tmpfs = |cache: u64| {
            vec![
                ("/app/.next/cache".into(), cache * MIB),
                ("/tmp".into(), 64 * MIB),
            ]
        };
        let ok = fits(512 * MIB, &tmpfs(192)).unwrap();
        assert!(ok.contains("= 480 MiB of a 512 MiB limit"), "{ok}");
        // What the stack had before: 256 + 64 + 224 MiB.
        let e = fits(512 * MIB, &tmpfs(256)).unwrap_err().to_string();
        assert!(
            e.contains("544 MiB of a 512 MiB limit") && e.contains("fix:"),
            "{e}"
        );
        let e = fits(512 * MIB, &tmpfs(0)).unwrap_err().to_string();
        assert!(e.contains("/app/.next/cache has no size"), "{e}");
    }

    #[test]
    fn the_fill_script_is_one_shell_word_of_lua() {
        let s = fill_script(0, 1999);
        assert!(
            s.starts_with("EVAL 'for i = 0, 1999 do redis.call(\"SET\""),
            "{s}"
        );
        assert_eq!(s.matches('\'').count(), 2, "{s}");
        assert!(s.ends_with("' 0"), "{s}");
    }
}
