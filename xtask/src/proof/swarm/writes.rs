//! Writes exactly once across a release. Clients submit a page's server-action form (found in
//! the pages of the build as a browser gets them, never in the demo's markup) while the release
//! rolls out, each submission with a text of its own (a marker); others submit, after the
//! update, forms they got from the first release. Afterwards the proof counts the database rows
//! that hold each marker: a marker in two rows is a duplicate write (a POST replayed), one
//! answered with success and in no row a lost write.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::Duration,
};

use anyhow::{Context, Result};
use serde_json::{Value, json};
use xshell::Shell;

use crate::{
    docker::Engine,
    http,
    proof::html::{self, ActionForm},
};

const TIMEOUT: Duration = Duration::from_secs(15);
/// What Next.js answers when a form names an action this build does not have.
const NOT_FOUND: &str = "Failed to find Server Action";
/// Failures kept verbatim for the report.
const KEEP: usize = 10;

/// One submission and its answer.
#[derive(Debug, Clone)]
pub struct Post {
    pub marker: String,
    /// Made from a form of the first release, submitted after the update.
    pub held: bool,
    pub status: Option<u16>,
    pub failure: Option<String>,
}

/// The first page of the build whose HTML has a server-action form: its path and the form.
pub fn find_form(entry: SocketAddr, pages: &[String]) -> Option<(String, ActionForm)> {
    pages.iter().find_map(|p| {
        let r = http::get_at(entry, p, TIMEOUT).ok()?;
        let form = html::action_forms(&r.body).into_iter().next()?;
        Some((p.clone(), form))
    })
}

/// Submits `form` to `path` through `entry`, every typed field set to `marker`.
pub fn submit(entry: SocketAddr, path: &str, form: &ActionForm, marker: &str, held: bool) -> Post {
    let boundary = format!("axion-proof-{marker}");
    let (ct, body) = html::multipart(&form.filled(marker), &boundary);
    let r = http::post_at(entry, path, &[("Content-Type", &ct)], &body, TIMEOUT);
    let (status, failure) = match r {
        Ok(r) if r.body.contains(NOT_FOUND) => (Some(r.status), Some(NOT_FOUND.to_string())),
        Ok(r) if matches!(r.status, 200 | 303) => (Some(r.status), None),
        Ok(r) => (Some(r.status), Some(r.describe())),
        Err(e) => (None, Some(e.to_string())),
    };
    Post {
        marker: marker.to_string(),
        held,
        status,
        failure: failure.map(|f| format!("POST {entry}{path} ({marker}): {f}")),
    }
}

/// A form of the first release whose action the second no longer has (its id changed in one
/// digit, as a removed or renamed action's is): Next.js must answer with its own signal, 409
/// and `x-nextjs-action-not-found` (on which its client reloads the page into the new
/// release), never a 5xx or a success that wrote nothing. What it answered, or why it fails.
pub fn removed_action(entry: SocketAddr, path: &str, form: &ActionForm) -> Result<String, String> {
    let mut gone = form.clone();
    let last = if gone.action_id.ends_with('0') {
        '1'
    } else {
        '0'
    };
    gone.action_id.pop();
    gone.action_id.push(last);
    let field = format!("$ACTION_ID_{}", gone.action_id);
    for (k, _) in gone
        .fields
        .iter_mut()
        .filter(|(k, _)| k.starts_with("$ACTION_ID_"))
    {
        *k = field.clone();
    }
    let (ct, body) = html::multipart(&gone.filled("removed-action"), "axion-proof-removed");
    let r = http::post_at(entry, path, &[("Content-Type", &ct)], &body, TIMEOUT)
        .map_err(|e| format!("POST {entry}{path} of a removed action: {e}"))?;
    let signal = r.header("x-nextjs-action-not-found") == Some("1");
    if r.status == 409 && signal {
        Ok(format!("{} with x-nextjs-action-not-found", r.status))
    } else {
        Err(format!(
            "POST {entry}{path} of a removed action answered {}{}, not 409 with x-nextjs-action-not-found",
            r.describe(),
            if signal { " with the signal" } else { "" }
        ))
    }
}

/// Clients that load the page and submit its form, one after another, until stopped.
pub struct Writers {
    stop: Arc<AtomicBool>,
    posts: Arc<Mutex<Vec<Post>>>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Writers {
    pub fn start(entries: &[SocketAddr], path: &str, run: &str, workers: usize) -> Writers {
        let stop = Arc::new(AtomicBool::new(false));
        let posts = Arc::new(Mutex::new(Vec::new()));
        let threads = (0..workers)
            .map(|w| {
                let (stop, posts) = (stop.clone(), posts.clone());
                let (entries, path, run) = (entries.to_vec(), path.to_string(), run.to_string());
                thread::spawn(move || {
                    let mut k = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let entry = entries[(w + k) % entries.len()];
                        let marker = format!("{run}-w{w}-{k}");
                        k += 1;
                        let post = match http::get_at(entry, &path, TIMEOUT) {
                            Ok(r) => match html::action_forms(&r.body).into_iter().next() {
                                Some(form) => submit(entry, &path, &form, &marker, false),
                                None => failed(
                                    &marker,
                                    format!("GET {path}: {} without its form", r.describe()),
                                ),
                            },
                            Err(e) => failed(&marker, format!("GET {entry}{path}: {e}")),
                        };
                        posts.lock().unwrap().push(post);
                    }
                })
            })
            .collect();
        Writers {
            stop,
            posts,
            threads,
        }
    }

    pub fn finish(self) -> Vec<Post> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        std::mem::take(&mut *self.posts.lock().unwrap())
    }
}

/// A page load that failed before any submission: no marker was sent, none can be in a row.
fn failed(marker: &str, why: String) -> Post {
    Post {
        marker: format!("{marker}-not-sent"),
        held: false,
        status: None,
        failure: Some(why),
    }
}

/// How many rows of any table of the app's database hold each of the run's markers, read as
/// the superuser in the db task (on the manager, the data node).
pub fn rows_per_marker(
    sh: &Shell,
    manager: &Engine,
    db_service: &str,
    run: &str,
) -> Result<HashMap<String, usize>> {
    let filter = format!("label=com.docker.swarm.service.name={db_service}");
    let id = manager.read(sh, &["ps", "-q", "--filter", &filter])?;
    let id = id
        .lines()
        .next()
        .context("no running db task on the data node")?
        .to_string();
    let psql = |sql: &str| {
        let script = format!("psql -U \"$POSTGRES_USER\" -d \"$POSTGRES_DB\" -AtX -c \"{sql}\"");
        manager.read(sh, &["exec", &id, "sh", "-c", &script])
    };
    let tables = psql(
        "select format('%I.%I', table_schema, table_name) from information_schema.tables \
         where table_type = 'BASE TABLE' and table_schema not in ('pg_catalog', 'information_schema')",
    )?;
    let mut counts = HashMap::new();
    for table in tables.lines().filter(|t| !t.is_empty()) {
        let sql = format!("select t::text from {table} t where t::text like '%{run}-%'");
        for row in psql(&sql)?.lines() {
            for marker in markers_in(row, run) {
                *counts.entry(marker).or_insert(0) += 1;
            }
        }
    }
    Ok(counts)
}

/// The markers (`<run>-w<n>-<k>`, `<run>-h<k>`) in a row's text.
fn markers_in(row: &str, run: &str) -> Vec<String> {
    row.match_indices(run)
        .map(|(i, _)| {
            let rest = &row[i..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .unwrap_or(rest.len());
            rest[..end].to_string()
        })
        .collect()
}

/// What the writes came to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Writes {
    pub posts: usize,
    pub held: usize,
    pub action_failures: usize,
    pub server_errors: usize,
    pub duplicate_writes: usize,
    pub lost_writes: usize,
    pub rows: usize,
    pub failures: Vec<String>,
}

impl Writes {
    pub fn judge(posts: &[Post], rows: &HashMap<String, usize>) -> Writes {
        let mut w = Writes {
            posts: posts.len(),
            held: posts.iter().filter(|p| p.held).count(),
            rows: rows.values().sum(),
            ..Default::default()
        };
        for p in posts {
            let n = rows.get(&p.marker).copied().unwrap_or(0);
            w.server_errors += usize::from(p.status.is_some_and(|s| s >= 500));
            w.duplicate_writes += n.saturating_sub(1);
            match &p.failure {
                Some(f) => {
                    w.action_failures += 1;
                    if w.failures.len() < KEEP {
                        w.failures.push(f.clone());
                    }
                }
                None if n == 0 => {
                    w.lost_writes += 1;
                    if w.failures.len() < KEEP {
                        w.failures
                            .push(format!("{}: answered {:?}, in no row", p.marker, p.status));
                    }
                }
                None => {}
            }
        }
        w
    }

    pub fn failed(&self) -> bool {
        self.action_failures + self.server_errors + self.duplicate_writes + self.lost_writes > 0
    }

    pub fn to_json(&self) -> Value {
        json!({
            "posts": self.posts, "held_from_the_first_release": self.held, "rows": self.rows,
            "action_failures": self.action_failures, "server_errors": self.server_errors,
            "duplicate_writes": self.duplicate_writes, "lost_writes": self.lost_writes,
            "failures": self.failures,
        })
    }

    /// `812 posts (20 held from the first release) → 812 rows; 0 failed, 0 duplicate, 0 lost`
    pub fn line(&self) -> String {
        format!(
            "{} posts ({} held from the first release) -> {} rows; {} action failures, {} 5xx, {} duplicate, {} lost",
            self.posts,
            self.held,
            self.rows,
            self.action_failures,
            self.server_errors,
            self.duplicate_writes,
            self.lost_writes
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(marker: &str, status: Option<u16>, failure: Option<&str>) -> Post {
        Post {
            marker: marker.into(),
            held: marker.contains("-h"),
            status,
            failure: failure.map(String::from),
        }
    }

    #[test]
    fn markers_are_found_in_a_row_text() {
        let row = r#"(17,0b6e-4c,"r9-w1-3 and r9-h2","2026-12-01 20:00:00+00")"#;
        assert_eq!(markers_in(row, "r9"), vec!["r9-w1-3", "r9-h2"]);
    }

    #[test]
    fn duplicates_lost_and_failed_writes_are_told_apart() {
        let posts = vec![
            post("r-w0-0", Some(200), None),
            post("r-w0-1", Some(303), None),
            post("r-w0-2", Some(200), None),
            post("r-h0", Some(500), Some("500")),
            post("r-h1", Some(404), Some(NOT_FOUND)),
        ];
        let rows = HashMap::from([("r-w0-0".to_string(), 1), ("r-w0-1".to_string(), 2)]);
        let w = Writes::judge(&posts, &rows);
        assert_eq!(
            (
                w.posts,
                w.held,
                w.rows,
                w.duplicate_writes,
                w.lost_writes,
                w.action_failures,
                w.server_errors
            ),
            (5, 2, 3, 1, 1, 2, 1)
        );
        assert!(w.failed());
        assert!(w.failures.iter().any(|f| f.starts_with("r-w0-2")));
        let ok = Writes::judge(&posts[..1], &rows);
        assert!(!ok.failed(), "{ok:?}");
    }
}
