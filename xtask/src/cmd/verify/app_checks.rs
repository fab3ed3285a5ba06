//! `verify --prod`'s checks of the app itself, derived from its build ([`BuildOutput`]), never
//! from the demo's pages: every route without dynamic segments answers GET without a 5xx; every
//! ISR route regenerates and its regenerated output survives a restart; `/_next/image` serves an
//! image the app ships. Without ISR routes or images a check is "not applicable", not failed.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use anyhow::{Result, anyhow, ensure};
use xshell::Shell;

use super::prod_checks::{Check, check};
use crate::{
    build_output::{BuildOutput, Route, RouteKind},
    docker, http,
};

/// A `revalidate` up to this is waited for (the background regeneration a visitor triggers);
/// a longer one is regenerated on demand, as `revalidatePath` does.
const WAIT_FOR_REVALIDATE: u64 = 20;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// What one route answered.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteProbe {
    pub route: Route,
    /// `None`: not requested (it needs values for its segments), or no answer (`note` says).
    pub status: Option<u16>,
    pub ms: u64,
    pub note: String,
}

impl RouteProbe {
    /// Requested at all: a route with dynamic segments is not.
    pub fn probed(&self) -> bool {
        self.note != NOT_PROBED
    }
    pub fn failed(&self) -> bool {
        self.probed() && self.status.is_none_or(|s| s >= 500)
    }
}

const NOT_PROBED: &str = "not probed: needs values for its dynamic segments";

/// The routes, then the ISR and image checks (the ISR one restarts the app container), then
/// the shared cache's when the stack has one (`cache`: its container).
/// `release`: the build id the build was given (the git commit), empty when none was.
pub fn run(
    sh: &Shell,
    container: &str,
    cache: Option<&str>,
    port: u16,
    release: &str,
) -> (Vec<Check>, Vec<RouteProbe>) {
    let build = match BuildOutput::read(sh, container) {
        Ok(b) => b,
        Err(e) => {
            let c = check("app: its build output is readable", false, format!("{e:#}"));
            return (vec![c], vec![]);
        }
    };
    let probes: Vec<RouteProbe> = build.routes.iter().map(|r| probe(port, r)).collect();
    let failed: Vec<String> = probes
        .iter()
        .filter(|p| p.failed())
        .map(|p| {
            let status = p.status.map_or(String::new(), |s| s.to_string());
            let words = [p.route.path.as_str(), status.as_str(), p.note.as_str()];
            let words: Vec<&str> = words.into_iter().filter(|w| !w.is_empty()).collect();
            format!("GET {}", words.join(" "))
        })
        .collect();
    let requested = probes.iter().filter(|p| p.probed()).count();
    let routes = check(
        "app: every route of the build answers GET without a 5xx",
        failed.is_empty() && requested > 0,
        if failed.is_empty() {
            format!("{requested} of {} routes requested", probes.len())
        } else {
            failed.join("; ")
        },
    );
    let mut checks = vec![
        routes,
        headers_check(port, &build),
        image_check(port, &build),
        isr_check(sh, container, port, &build),
        release_check(&build, release),
        actions_key_check(&build),
    ];
    if let Some(cache) = cache {
        checks.extend(super::cache_checks::run(sh, cache, port, &build));
    }
    (checks, probes)
}

/// The build kept the stack's server-actions key (secrets/server_actions_key): one release's
/// actions then work on every replica and across rebuilds. Neither key is ever printed.
fn actions_key_check(build: &BuildOutput) -> Check {
    let name = "app: its server actions use the stack's key";
    let Some(kept) = &build.actions_key else {
        return Check::not_applicable(name, "the build has no server-reference manifest");
    };
    let root = crate::util::project_root();
    let path = crate::secrets::dir(&root).join(crate::secrets::ACTIONS_KEY);
    let ours = std::fs::read_to_string(&path).unwrap_or_default();
    check(
        name,
        kept == ours.trim_end_matches('\n'),
        format!(
            "the build's key is not {} (its actions fail on a replica or rebuild with another): the builder \
             stage must mount the build secret server_actions_key (see docker/Dockerfile)",
            path.display()
        ),
    )
}

/// The build id is the release's: every replica of one release serves one, and it is the
/// deploymentId a client of an older release is told apart by.
fn release_check(build: &BuildOutput, release: &str) -> Check {
    let name = "app: its build id is the release's (the git commit)";
    if release.is_empty() {
        return Check::not_applicable(
            name,
            "the checkout has uncommitted changes: Next.js's own id",
        );
    }
    check(
        name,
        build.build_id == release,
        format!(
            "BUILD_ID is `{}`, not {release}: next.config.ts must take generateBuildId and deploymentId from \
             AXION_BUILD_ID (see the repository's app/next.config.ts)",
            build.build_id
        ),
    )
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

pub(super) fn probe(port: u16, route: &Route) -> RouteProbe {
    if route.dynamic() {
        return RouteProbe {
            route: route.clone(),
            status: None,
            ms: 0,
            note: NOT_PROBED.into(),
        };
    }
    let t = Instant::now();
    let r = http::get_at(addr(port), &route.path, REQUEST_TIMEOUT);
    let ms = t.elapsed().as_millis() as u64;
    let (status, note) = match r {
        Ok(r) if r.status == 405 => (Some(405), "needs another method than GET".to_string()),
        Ok(r) if r.status >= 500 => (Some(r.status), first_line(&r.body)),
        Ok(r) if (300..400).contains(&r.status) => (Some(r.status), r.describe()),
        Ok(r) => (Some(r.status), String::new()),
        Err(e) => (None, format!("no answer: {e}")),
    };
    RouteProbe {
        route: route.clone(),
        status,
        ms,
        note,
    }
}

fn first_line(body: &str) -> String {
    let line = body.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    line.chars().take(160).collect()
}

/// The headers every answer must carry, and what each value must say.
const SECURITY_HEADERS: [(&str, &str); 3] = [
    ("content-security-policy", "frame-ancestors"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", ""),
];

/// The first page of the build (else its first route) answers with the security headers.
fn headers_check(port: u16, build: &BuildOutput) -> Check {
    let name = "app: security headers (CSP with frame-ancestors, nosniff, referrer-policy)";
    let statics = build.routes.iter().filter(|r| !r.dynamic());
    let mut pages = statics.clone().filter(|r| r.kind == RouteKind::Page);
    let Some(route) = pages.next().or_else(|| statics.clone().next()) else {
        return Check::not_applicable(name, "the build has no route without dynamic segments");
    };
    let r = match http::get_at(addr(port), &route.path, REQUEST_TIMEOUT) {
        Ok(r) => r,
        Err(e) => return check(name, false, format!("GET {}: {e}", route.path)),
    };
    let missing: Vec<&str> = SECURITY_HEADERS
        .iter()
        .filter(|(h, must)| {
            !r.header(h)
                .is_some_and(|v| v.to_ascii_lowercase().contains(must))
        })
        .map(|(h, _)| *h)
        .collect();
    let detail = if missing.is_empty() {
        format!("GET {}: all present", route.path)
    } else {
        format!(
            "GET {}: missing or weak: {}",
            route.path,
            missing.join(", ")
        )
    };
    check(name, missing.is_empty(), detail)
}

/// `/_next/image` through the runner (sharp) for an image of the app's own.
fn image_check(port: u16, build: &BuildOutput) -> Check {
    let name = "app: /_next/image serves an image the app ships";
    let Some(url) = build.image_probe() else {
        let why = if build.images.is_none() {
            "the image optimizer is off (images.unoptimized or a custom loader)"
        } else {
            "the app ships no image (public/, imported images)"
        };
        return Check::not_applicable(name, why);
    };
    let (ok, detail) = match http::get_at(addr(port), &url, REQUEST_TIMEOUT) {
        Ok(r) => {
            let ct = r.content_type.clone().unwrap_or_default();
            (
                r.status == 200 && ct.starts_with("image/"),
                format!("{url}: {} {ct}", r.status),
            )
        }
        Err(e) => (false, format!("{url}: {e}")),
    };
    check(name, ok, detail)
}

fn isr_check(sh: &Shell, container: &str, port: u16, build: &BuildOutput) -> Check {
    let name = "app: every ISR route regenerates and keeps it across a restart";
    if build.isr.is_empty() {
        return Check::not_applicable(name, "the build has no ISR route");
    }
    match isr_survives_restart(sh, container, port, build) {
        Ok(detail) => check(name, true, detail),
        Err(e) => check(name, false, format!("{e:#}")),
    }
}

/// One ISR route's generations, by ETag (a hash of the body Next.js sends).
struct Generations {
    route: String,
    built: String,
    regenerated: String,
    how: String,
}

/// What identifies one generation of a route: its ETag (pages), else a hash of its body (a
/// route handler with `revalidate` may send none); and its `x-nextjs-cache`.
fn etag(port: u16, path: &str, headers: &[(&str, &str)]) -> Result<(String, String)> {
    let r = http::get_with(addr(port), path, headers, REQUEST_TIMEOUT)
        .map_err(|e| anyhow!("GET {path}: {e}"))?;
    ensure!(r.status == 200, "GET {path}: {}", r.describe());
    let tag = r.generation();
    let cache = r.header("x-nextjs-cache").unwrap_or("none").to_string();
    Ok((tag, cache))
}

/// Regenerates one route: by waiting out its `revalidate` and requesting it (the background
/// regeneration a visitor triggers), or on demand for a long `revalidate`.
fn regenerate(port: u16, route: &str, secs: u64, preview: Option<&str>) -> Result<Generations> {
    let (built, _) = etag(port, route, &[])?;
    let how = if secs <= WAIT_FOR_REVALIDATE {
        std::thread::sleep(Duration::from_secs(secs) + Duration::from_millis(200));
        etag(port, route, &[])?; // stale: served once more, regenerated in the background
        format!("after its revalidate of {secs} s")
    } else {
        let id =
            preview.ok_or_else(|| anyhow!("the build has no preview id to revalidate with"))?;
        etag(port, route, &[("x-prerender-revalidate", id)])?;
        format!("on demand (its revalidate of {secs} s is longer than {WAIT_FOR_REVALIDATE} s)")
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        // A new body, or a fresh (HIT) answer where the old one was stale: regenerated.
        let (tag, cache) = etag(port, route, &[])?;
        if tag != built || cache == "HIT" {
            return Ok(Generations {
                route: route.into(),
                built,
                regenerated: tag,
                how,
            });
        }
        ensure!(
            Instant::now() < deadline,
            "{route} was never regenerated {how} (still {built}, x-nextjs-cache {cache})"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn isr_survives_restart(
    sh: &Shell,
    container: &str,
    port: u16,
    build: &BuildOutput,
) -> Result<String> {
    let preview = build.preview_id.as_deref();
    let generations: Vec<Generations> = build
        .isr
        .iter()
        .map(|(route, secs)| regenerate(port, route, *secs, preview))
        .collect::<Result<_>>()?;
    docker::restart(sh, container, 10)?;
    let mut out = Vec::new();
    for g in &generations {
        let deadline = Instant::now() + Duration::from_secs(60);
        let after = loop {
            match etag(port, &g.route, &[]) {
                Ok((tag, _)) => break tag,
                Err(e) => ensure!(
                    Instant::now() < deadline,
                    "the app did not answer after its restart: {e:#}"
                ),
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let changed = g.regenerated != g.built;
        ensure!(
            !changed || after != g.built,
            "{}: after a restart it served the build's page ({}) again, not the one regenerated {} ({}): \
             the regeneration was not saved",
            g.route,
            g.built,
            g.how,
            g.regenerated
        );
        out.push(if changed {
            format!(
                "{} regenerated {} ({} → {}), after restart {after}",
                g.route, g.how, g.built, g.regenerated
            )
        } else {
            format!(
                "{} regenerated {}; its content did not change ({after})",
                g.route, g.how
            )
        });
    }
    Ok(out.join("; "))
}
