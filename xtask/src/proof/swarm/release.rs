//! A real release across replicas: the second release (a rebuild with changed client code, see
//! `second`) rolled out under load, and what its clients saw. Before the update, clients take
//! the first release's pages (their HTML, their static files, their forms); during it, a GET
//! load and clients that load a page and submit its server-action form; after it, the held
//! pages' static files through every entry point, the held forms submitted once each, and an
//! on-demand regeneration read back through every replica. Everything is derived from the
//! build's manifests and the pages as served.

use std::net::SocketAddr;

use anyhow::{Result, bail};
use serde_json::{Value, json};
use xshell::Shell;

use super::{
    STACK, URLS,
    revalidate::{self, Visible},
    tab::{self, Seen, Tab},
    writes::{self, Post, Writers, Writes},
};
use crate::{
    build_output::{BuildOutput, RouteKind},
    docker::Engine,
    http,
    proof::{html, load::Load},
};

/// Clients submitting forms during the update, beside the GET load.
const WRITERS: usize = 2;
/// Forms of the first release held by clients and submitted after the update.
const HELD_FORMS: usize = 6;
const REVALIDATIONS: usize = 3;

/// What the release came to (the report's `release`).
#[derive(Debug, Clone, Default)]
pub struct Figures {
    pub build_ids: [String; 2],
    /// The first release's static files the second does not have (new chunk hashes).
    pub files_only_in_first: usize,
    pub actions_changed: bool,
    pub carried: bool,
    pub assets_requested: usize,
    pub asset_404s: Vec<String>,
    pub server_errors: u64,
    pub writes: Option<Writes>,
    pub no_writes_why: Option<String>,
    /// What a form of a removed action got after the update (`Err`: a failure).
    pub removed_action: Option<Result<String, String>>,
    pub revalidate: Vec<(String, Visible)>,
    /// The browser tab held across the update, or why it did not run.
    pub browser: Option<Result<Seen, String>>,
}

/// What clients took from the first release before the update.
pub struct Held {
    /// Each page's static files, as its HTML references them.
    pub assets: Vec<String>,
    /// The page with a server-action form, and forms of it, each with its own idempotency key.
    pub forms: Option<(String, Vec<html::ActionForm>)>,
}

pub struct Builds {
    pub first: BuildOutput,
    pub second: BuildOutput,
}

impl Figures {
    pub fn new(builds: &Builds, first_files: &[String], second_files: &[String]) -> Figures {
        Figures {
            build_ids: [
                builds.first.build_id.clone(),
                builds.second.build_id.clone(),
            ],
            files_only_in_first: first_files
                .iter()
                .filter(|f| !second_files.contains(f))
                .count(),
            actions_changed: builds.first.action_ids != builds.second.action_ids,
            ..Default::default()
        }
    }

    pub fn to_json(&self) -> Value {
        let w = self.writes.clone().unwrap_or_default();
        json!({
            "build_ids": self.build_ids,
            "static_files_only_in_first": self.files_only_in_first,
            "action_ids_changed": self.actions_changed,
            "carried": self.carried,
            "assets_requested": self.assets_requested,
            "asset_404s": self.asset_404s.len(),
            "missing": self.asset_404s,
            "action_failures": w.action_failures + usize::from(matches!(self.removed_action, Some(Err(_)))),
            "server_errors": self.server_errors + w.server_errors as u64,
            "duplicate_writes": w.duplicate_writes,
            "lost_writes": w.lost_writes,
            "writes": self.writes.as_ref().map(Writes::to_json),
            "writes_not_measured": self.no_writes_why,
            "removed_action": self.removed_action.as_ref().map(|r| match r {
                Ok(answer) => json!({"ok": true, "answer": answer}),
                Err(e) => json!({"ok": false, "error": e}),
            }),
            "browser": self.browser.as_ref().map(|b| match b {
                Ok(seen) => seen.to_json(),
                Err(why) => json!({"ran": false, "why": why}),
            }),
            "revalidate_visible_ms": self.revalidate.iter()
                .map(|(when, v)| (when.clone(), v.to_json()))
                .collect::<serde_json::Map<_, _>>(),
        })
    }

    /// For a person: the builds, the assets, the writes, the cache.
    pub fn lines(&self) -> String {
        let mut s = format!(
            "  release: {} -> {} ({} static files of the first not in the second, action ids {})\n",
            self.build_ids[0],
            self.build_ids[1],
            self.files_only_in_first,
            if self.actions_changed {
                "changed"
            } else {
                "the same"
            }
        );
        s.push_str(&format!(
            "  the first release's static files after the update: {} of {} requests failed{}\n",
            self.asset_404s.len(),
            self.assets_requested,
            if self.carried {
                " (deploy carried them into the new image)"
            } else {
                ""
            }
        ));
        match (&self.writes, &self.no_writes_why) {
            (Some(w), _) => s.push_str(&format!("  writes across the release: {}\n", w.line())),
            (None, Some(why)) => s.push_str(&format!("  writes: not measured: {why}\n")),
            _ => {}
        }
        if let Some(Ok(answer)) = &self.removed_action {
            s.push_str(&format!(
                "  a first-release form of an action the second lacks: {answer} (Next.js's reload)\n"
            ));
        }
        match &self.browser {
            Some(Ok(seen)) if seen.problems.is_empty() => s.push_str(&format!(
                "  a Chromium tab of the first release after the update: {}\n",
                seen.line()
            )),
            Some(Ok(_)) => {}
            Some(Err(why)) => s.push_str(&format!("  !!! the browser tab did not run: {why}\n")),
            None => {}
        }
        for (when, v) in &self.revalidate {
            s.push_str(&format!(
                "  revalidation seen by every replica ({when}): {}\n",
                v.line()
            ));
        }
        s
    }

    /// Every count that must be 0, with its name, when it is not.
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.asset_404s.is_empty() {
            out.push(format!(
                "{} of the first release's static files not served after the update: {}",
                self.asset_404s.len(),
                self.asset_404s
                    .iter()
                    .take(5)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if self.server_errors > 0 {
            out.push(format!(
                "{} 5xx answers to the GET load",
                self.server_errors
            ));
        }
        if let Some(Err(e)) = &self.removed_action {
            out.push(e.clone());
        }
        if let Some(Ok(seen)) = &self.browser
            && !seen.problems.is_empty()
        {
            out.push(format!("the browser tab: {}", seen.problems.join("; ")));
        }
        if let Some(w) = self.writes.as_ref().filter(|w| w.failed()) {
            out.push(format!("writes: {}: {}", w.line(), w.failures.join("; ")));
        }
        out
    }
}

/// What the update starts from: both builds, the figures so far, what clients of the first
/// release hold, its pages and chunks, and the run's marker prefix.
pub struct Before {
    pub builds: Builds,
    pub fig: Figures,
    pub held: Held,
    pub pages: Vec<String>,
    pub chunks: Vec<String>,
    pub run_id: String,
}

/// Reads both builds, has clients take the first release's pages, and measures a
/// regeneration on it.
pub fn before(sh: &Shell, entries: &[SocketAddr], first: &str, second: &str) -> Result<Before> {
    let builds = Builds {
        first: BuildOutput::of_image(sh, first)?,
        second: BuildOutput::of_image(sh, second)?,
    };
    let first_files = crate::cmd::deploy::own_static_urls(sh, first)?;
    if first_files.is_empty() {
        bail!("{first} lists no static files of its own (.next/static-files.txt)");
    }
    let second_files = crate::cmd::deploy::own_static_urls(sh, second)?;
    let mut fig = Figures::new(&builds, &first_files, &second_files);
    let pages = pages(&builds.first);
    let mut held = hold(entries[0], &pages);
    for f in &first_files {
        if !held.assets.contains(f) {
            held.assets.push(f.clone());
        }
    }
    fig.revalidate.push((
        "first release".into(),
        revalidation(entries, &builds.first)?,
    ));
    // The run's markers: letters and digits, so a row's text tells them apart.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let chunks = first_files
        .into_iter()
        .filter(|a| a.ends_with(".js"))
        .collect();
    Ok(Before {
        builds,
        fig,
        held,
        pages,
        chunks,
        run_id: format!("axp{nanos:x}"),
    })
}

/// The first release's page paths (no dynamic segment), as the build lists them.
pub fn pages(build: &BuildOutput) -> Vec<String> {
    build
        .routes
        .iter()
        .filter(|r| r.kind == RouteKind::Page && !r.dynamic())
        .map(|r| r.path.clone())
        .collect()
}

/// Takes the first release's pages as its clients would.
pub fn hold(entry: SocketAddr, pages: &[String]) -> Held {
    let mut assets: Vec<String> = Vec::new();
    for p in pages {
        if let Ok(r) = http::get_at(entry, p, std::time::Duration::from_secs(15)) {
            for a in html::static_refs(&r.body) {
                if !assets.contains(&a) {
                    assets.push(a);
                }
            }
        }
    }
    let forms = writes::find_form(entry, pages).map(|(path, first)| {
        let mut forms = vec![first];
        while forms.len() < HELD_FORMS {
            match writes::find_form(entry, std::slice::from_ref(&path)) {
                Some((_, f)) => forms.push(f),
                None => break,
            }
        }
        (path, forms)
    });
    Held { assets, forms }
}

/// The loads during the update: GETs, and form submissions when the app has a form.
pub struct During {
    load: Load,
    writers: Option<Writers>,
    tab: Result<Tab, String>,
}

impl During {
    /// The tab opens first (on the form's page, else the first page): it holds the first
    /// release's code from before the update.
    pub fn start(
        entries: &[SocketAddr],
        held: &Held,
        pages: &[String],
        first_chunks: &[String],
        run_id: &str,
    ) -> Result<During> {
        let (page, has_form) = match &held.forms {
            Some((path, _)) => (path.as_str(), true),
            None => (pages.first().map_or("/", String::as_str), false),
        };
        let tab = tab::open(entries[0], page, has_form, &format!("{run_id}-tab"))?;
        let mut paths: Vec<&str> = URLS.to_vec();
        paths.extend(first_chunks.iter().take(3).map(String::as_str));
        let writers = held
            .forms
            .as_ref()
            .map(|(path, _)| Writers::start(entries, path, run_id, WRITERS));
        Ok(During {
            load: Load::start(entries, &paths, crate::proof::load::WORKERS),
            writers,
            tab,
        })
    }

    /// Stops the loads; the tab acts on the updated stack and says what it saw.
    pub fn finish(self, fig: &mut Figures) -> (crate::proof::load::Summary, Vec<Post>) {
        let mut posts = self.writers.map(Writers::finish).unwrap_or_default();
        let summary = self.load.finish();
        fig.browser = Some(match self.tab {
            Ok(tab) => tab.finish().map_err(|e| format!("{e:#}")),
            Err(why) => Err(why),
        });
        if let Some(Ok(seen)) = &fig.browser {
            posts.extend(seen.post.clone());
        }
        (summary, posts)
    }
}

/// After the update: the held assets through every entry point, the held forms submitted,
/// the rows counted, a regeneration read back everywhere.
pub fn after(
    sh: &Shell,
    manager: &Engine,
    entries: &[SocketAddr],
    held: &Held,
    mut posts: Vec<Post>,
    run_id: &str,
    fig: &mut Figures,
) -> Result<()> {
    for e in entries {
        for a in &held.assets {
            fig.assets_requested += 1;
            match http::get_at(*e, a, std::time::Duration::from_secs(10)) {
                Ok(r) if r.status == 200 => {}
                Ok(r) => fig.asset_404s.push(format!("{e}{a} {}", r.status)),
                Err(err) => fig.asset_404s.push(format!("{e}{a} {err}")),
            }
        }
    }
    match &held.forms {
        Some((path, forms)) => {
            for (k, f) in forms.iter().enumerate() {
                let e = entries[k % entries.len()];
                posts.push(writes::submit(e, path, f, &format!("{run_id}-h{k}"), true));
            }
            fig.removed_action = Some(writes::removed_action(entries[0], path, &forms[0]));
            let rows = writes::rows_per_marker(sh, manager, &format!("{STACK}_db"), run_id)?;
            fig.writes = Some(Writes::judge(&posts, &rows));
        }
        None => fig.no_writes_why = Some("no page of the build has a server-action form".into()),
    }
    Ok(())
}

/// The on-demand regeneration of the build's ISR route with the longest `revalidate` (a
/// shorter one regenerates by itself meanwhile), read back through every replica.
pub fn revalidation(entries: &[SocketAddr], build: &BuildOutput) -> Result<Visible> {
    let Some((route, _)) = build.isr.iter().max_by_key(|(_, secs)| *secs) else {
        return Ok(Visible::not_measured("the build has no ISR route"));
    };
    let Some(preview) = &build.preview_id else {
        return Ok(Visible::not_measured("the build has no preview id"));
    };
    revalidate::measure(entries, route, preview, REVALIDATIONS)
}

/// Fails the run when any count is not 0.
pub fn judge(fig: &Figures) -> Result<()> {
    let failures = fig.failures();
    if !failures.is_empty() {
        bail!("the release failed its clients: {}", failures.join("; "));
    }
    Ok(())
}
