//! One move between real releases under load: the update to the second release (a rebuild with
//! changed client code, see `second`), and the way back to the first. Before it, clients take
//! the running release's pages (their HTML, their static files, their forms) and a browser tab
//! opens one; during it, a GET load and clients that load a page and submit its server-action
//! form; after it, the held pages' static files through every entry point, the held forms
//! submitted once each, the tab's form and link, and an on-demand regeneration read back
//! through every replica. Everything is derived from the builds' manifests and the pages as
//! served. `figures` sums it up.

use std::net::SocketAddr;

use anyhow::{Result, bail};
use xshell::Shell;

use super::{
    STACK, URLS,
    figures::Figures,
    revalidate::{self, Visible},
    tab::{self, Tab},
    writes::{self, Post, Writers, Writes},
};
use crate::{
    build_output::{BuildOutput, RouteKind},
    docker::Engine,
    http,
    proof::{html, load::Load},
};

/// Clients submitting forms during a move, beside the GET load.
const WRITERS: usize = 2;
/// Forms of the running release held by clients and submitted after the move.
const HELD_FORMS: usize = 6;
const REVALIDATIONS: usize = 3;

/// What clients took from the running release before the move.
pub struct Held {
    /// Each page's static files, as its HTML references them.
    pub assets: Vec<String>,
    /// The page with a server-action form, and forms of it, each with its own idempotency key.
    pub forms: Option<(String, Vec<html::ActionForm>)>,
}

/// A release's image, what its build serves, and its own static files: read once per run.
pub struct Known {
    pub image: String,
    pub build: BuildOutput,
    pub files: Vec<String>,
}

impl Known {
    pub fn of(sh: &Shell, image: &str) -> Result<Known> {
        let files = crate::cmd::deploy::own_static_urls(sh, image)?;
        if files.is_empty() {
            bail!("{image} lists no static files of its own (.next/static-files.txt)");
        }
        Ok(Known {
            image: image.to_string(),
            build: BuildOutput::of_image(sh, image)?,
            files,
        })
    }
}

/// What a move starts from: its figures so far, what clients of the running release hold, its
/// pages and chunks, and the move's marker prefix.
pub struct Before {
    pub fig: Figures,
    pub held: Held,
    pub pages: Vec<String>,
    pub chunks: Vec<String>,
    pub run_id: String,
}

/// Has clients take the running release's (`from`) pages.
pub fn before(entries: &[SocketAddr], what: &str, from: &Known, to: &Known) -> Before {
    let fig = Figures::new(what, &from.build, &to.build, [&from.files, &to.files]);
    let pages = pages(&from.build);
    let mut held = hold(entries[0], &pages);
    for f in &from.files {
        if !held.assets.contains(f) {
            held.assets.push(f.clone());
        }
    }
    // The move's markers: letters and digits, so a row's text tells them apart.
    let nanos = crate::util::nanos();
    let chunks = from
        .files
        .iter()
        .filter(|a| a.ends_with(".js"))
        .cloned()
        .collect();
    Before {
        fig,
        held,
        pages,
        chunks,
        run_id: format!("axp{nanos:x}"),
    }
}

/// A release's page paths (no dynamic segment), as its build lists them.
pub fn pages(build: &BuildOutput) -> Vec<String> {
    build
        .routes
        .iter()
        .filter(|r| r.kind == RouteKind::Page && !r.dynamic())
        .map(|r| r.path.clone())
        .collect()
}

/// Takes the running release's pages as its clients would.
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

/// The loads during a move: GETs, and form submissions when the app has a form.
pub struct During {
    load: Load,
    writers: Option<Writers>,
    tab: Result<Tab, String>,
}

impl During {
    /// The tab opens first (on the form's page, else the first page): it holds the running
    /// release's code from before the move.
    pub fn start(
        entries: &[SocketAddr],
        held: &Held,
        pages: &[String],
        chunks: &[String],
        run_id: &str,
    ) -> Result<During> {
        let (page, has_form) = match &held.forms {
            Some((path, _)) => (path.as_str(), true),
            None => (pages.first().map_or("/", String::as_str), false),
        };
        let tab = tab::open(entries[0], page, has_form, &format!("{run_id}-tab"))?;
        let mut paths: Vec<&str> = URLS.to_vec();
        paths.extend(chunks.iter().take(3).map(String::as_str));
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

    /// Stops the loads; the tab acts on the moved stack and says what it saw.
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

/// After the move: the held assets through every entry point, the held forms submitted, the
/// rows counted.
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
        bail!(
            "the {} failed its clients: {}",
            fig.what,
            failures.join("; ")
        );
    }
    Ok(())
}
