//! `verify --prod`'s checks of the Next.js cache every replica shares (the `cache` service,
//! app/cache-handler.mjs), derived from the build like the app's: what the app rendered is in
//! the cache under the build's id; the cache evicts and keeps nothing on disk (apart from the
//! job queue's Redis, which must not); and the app keeps serving every route with the cache
//! stopped, then uses it again when it is back.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use xshell::Shell;

use super::{
    app_checks::{self, RouteProbe},
    prod_checks::{Check, check},
};
use crate::{build_output::BuildOutput, docker, http};

/// A route rendered again because the cache is down may take this long (the handler gives up
/// on the cache at once, or after its 1 s timeout).
const SLOW_WITHOUT_CACHE: Duration = Duration::from_secs(2);

pub fn run(sh: &Shell, cache: &str, port: u16, build: &BuildOutput) -> Vec<Check> {
    vec![
        entries_check(sh, cache, build),
        policy_check(sh, cache),
        outage_check(sh, cache, port, build),
    ]
}

/// `redis-cli` in the cache container as its one user.
fn cli(sh: &Shell, cache: &str, args: &str) -> Result<String> {
    let script =
        format!("REDISCLI_AUTH=\"$(cat /run/secrets/cache_password)\" redis-cli --no-raw {args}");
    let o = docker::exec(sh, cache, &["sh", "-c", &script])?;
    ensure!(
        o.status.success(),
        "redis-cli {args}: {}",
        String::from_utf8_lossy(&o.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// The keys of this build in the cache (the handler prefixes them `next:<build id>:`).
fn build_keys(sh: &Shell, cache: &str, build: &BuildOutput) -> Result<usize> {
    let pattern = format!("next:{}:*", build.build_id);
    Ok(cli(sh, cache, &format!("--scan --pattern '{pattern}'"))?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count())
}

/// After the app checks regenerated every ISR route, the cache holds them.
fn entries_check(sh: &Shell, cache: &str, build: &BuildOutput) -> Check {
    let name = "cache: the app's rendered pages are in the shared cache";
    if build.isr.is_empty() {
        return Check::not_applicable(name, "the build has no ISR route");
    }
    match build_keys(sh, cache, build) {
        Ok(0) => check(
            name,
            false,
            format!(
                "no key under next:{}: the app does not use the cache service: next.config.ts must \
                 set cacheHandler (see the repository's app/cache-handler.mjs)",
                build.build_id
            ),
        ),
        Ok(n) => check(
            name,
            true,
            format!("{n} keys under next:{}:", build.build_id),
        ),
        Err(e) => check(name, false, format!("{e:#}")),
    }
}

/// An LRU with a memory limit and no persistence: it may lose anything, and never refuses.
fn policy_check(sh: &Shell, cache: &str) -> Check {
    let name = "cache: evicts least recently used keys at its maxmemory, persists nothing";
    let info = match cli(sh, cache, "info") {
        Ok(i) => i,
        Err(e) => return check(name, false, format!("{e:#}")),
    };
    let field = |k: &str| {
        info.lines()
            .find_map(|l| l.trim().strip_prefix(&format!("{k}:")).map(str::to_string))
            .unwrap_or_default()
    };
    let (maxmemory, policy, aof) = (
        field("maxmemory").parse::<u64>().unwrap_or(0),
        field("maxmemory_policy"),
        field("aof_enabled"),
    );
    check(
        name,
        maxmemory > 0 && policy == "allkeys-lru" && aof == "0",
        format!("maxmemory {maxmemory}, policy {policy}, aof_enabled {aof}"),
    )
}

fn outage_check(sh: &Shell, cache: &str, port: u16, build: &BuildOutput) -> Check {
    let name = "cache: the app serves every route with the cache stopped, then uses it again";
    let outcome = serve_without_cache(sh, cache, port, build);
    // Whatever happened, the cache runs again.
    let started = docker::start(sh, cache);
    match (outcome, started) {
        (Ok(detail), Ok(())) => check(name, true, detail),
        (Err(e), _) => check(name, false, format!("{e:#}")),
        (_, Err(e)) => check(name, false, format!("starting the cache again: {e:#}")),
    }
}

/// Every route requested with the cache stopped: none answers a 5xx or takes longer than
/// SLOW_WITHOUT_CACHE. Then, the cache started again (empty: it persists nothing), an ISR
/// route's second request is a HIT.
fn serve_without_cache(sh: &Shell, cache: &str, port: u16, build: &BuildOutput) -> Result<String> {
    docker::stop(sh, cache, 1)?;
    let probes: Vec<RouteProbe> = build
        .routes
        .iter()
        .map(|r| app_checks::probe(port, r))
        .filter(RouteProbe::probed)
        .collect();
    let bad: Vec<String> = probes
        .iter()
        .filter(|p| p.failed() || p.ms > SLOW_WITHOUT_CACHE.as_millis() as u64)
        .map(|p| {
            format!(
                "GET {} {:?} in {} ms {}",
                p.route.path, p.status, p.ms, p.note
            )
        })
        .collect();
    ensure!(bad.is_empty(), "with the cache stopped: {}", bad.join("; "));
    let slowest = probes.iter().map(|p| p.ms).max().unwrap_or(0);
    let mut detail = format!(
        "{} routes without the cache, slowest {slowest} ms",
        probes.len()
    );
    docker::start(sh, cache)?;
    if let Some((route, _)) = build.isr.first() {
        let hit = hit_again(port, route)?;
        detail.push_str(&format!("; {route} a HIT again {hit} ms after the restart"));
    }
    Ok(detail)
}

/// Requests `route` until the cache serves it (x-nextjs-cache HIT): the handler reconnected.
fn hit_again(port: u16, route: &str) -> Result<u128> {
    let t = Instant::now();
    loop {
        let r = http::get(port, route, Duration::from_secs(10));
        if let Ok(r) = &r
            && r.header("x-nextjs-cache") == Some("HIT")
        {
            return Ok(t.elapsed().as_millis());
        }
        ensure!(
            t.elapsed() < Duration::from_secs(30),
            "{route} was not served from the cache within 30 s of its restart (last: {})",
            r.map(|r| r.describe()).unwrap_or_else(|e| e.to_string())
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}
