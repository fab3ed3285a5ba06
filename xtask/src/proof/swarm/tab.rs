//! A real browser tab held across the update: Debian's headless Chromium driven by
//! puppeteer-core (xtask/tests/it/browser/release-tab.mjs), both as the browser tests install
//! them (`apt-get install chromium`; the test clients' committed lock in target/it-clients).
//! Opened on the first release before the update; after it, still running the first release's
//! code, it submits the page's form and follows a link. It may see the page work or Next.js's
//! own reload into the second release, never a failed response, a script error or a dead link.
//! Without Chromium or puppeteer-core the report says so; under CI=true that fails the run.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::writes::Post;

const SCRIPT: &str = "xtask/tests/it/browser/release-tab.mjs";
const OPEN_TIMEOUT: Duration = Duration::from_secs(90);
const FINISH_TIMEOUT: Duration = Duration::from_secs(120);

/// The open tab: its node process and the files it talks through.
pub struct Tab {
    child: duct::Handle,
    dir: PathBuf,
    marker: String,
}

/// Chromium and puppeteer-core, or why the tab cannot run.
fn tools(root: &Path) -> Result<(String, PathBuf), String> {
    let chromium = crate::host::chromium()
        .ok_or("no Chromium (apt-get install chromium, or AXION_CHROMIUM=path)")?;
    let clients = crate::paths::test_clients(root);
    if !clients.join("node_modules/puppeteer-core").is_dir() {
        return Err(format!(
            "no puppeteer-core in {} (the browser tests install it: cargo test -p xtask --test it -- --ignored browser)",
            clients.display()
        ));
    }
    Ok((chromium, clients))
}

/// Opens the tab on `page` through `entry`; `Ok(Err(why))` when the tools are missing (an
/// error under CI=true, where they must be there).
pub fn open(
    entry: SocketAddr,
    page: &str,
    has_form: bool,
    marker: &str,
) -> Result<Result<Tab, String>> {
    let root = crate::util::project_root();
    let (chromium, clients) = match tools(&root) {
        Ok(t) => t,
        Err(why) if crate::host::in_ci() => {
            bail!("the browser tab cannot run under CI=true: {why}")
        }
        Err(why) => return Ok(Err(why)),
    };
    let dir = crate::paths::work_dir(&root, &format!("tab-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let child = duct::cmd(
        "node",
        [
            root.join(SCRIPT).display().to_string(),
            format!("http://{entry}"),
            chromium,
            page.to_string(),
            if has_form { "1" } else { "0" }.to_string(),
            marker.to_string(),
            dir.join("ready").display().to_string(),
            dir.join("go").display().to_string(),
        ],
    )
    .env("PUPPETEER_DIR", &clients)
    .stdout_path(dir.join("out.json"))
    .stderr_path(dir.join("err.txt"))
    .unchecked()
    .start()
    .context("starting node for the browser tab")?;
    let tab = Tab {
        child,
        dir,
        marker: marker.to_string(),
    };
    tab.wait_for(
        |t| t.dir.join("ready").exists(),
        OPEN_TIMEOUT,
        "open the page",
    )?;
    Ok(Ok(tab))
}

impl Tab {
    fn wait_for(&self, done: impl Fn(&Tab) -> bool, limit: Duration, what: &str) -> Result<()> {
        let t = Instant::now();
        while !done(self) {
            if let Ok(Some(_)) = self.child.try_wait() {
                if done(self) {
                    break;
                }
                bail!(
                    "the browser tab ended before it could {what}: {}",
                    self.stderr()
                );
            }
            if t.elapsed() > limit {
                let _ = self.child.kill();
                bail!(
                    "the browser tab did not {what} within {} s: {}",
                    limit.as_secs(),
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    fn stderr(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("err.txt")).unwrap_or_default();
        text.lines().rev().take(5).collect::<Vec<_>>().join(" | ")
    }

    /// The update is done: the tab acts, then reports what it saw.
    pub fn finish(self) -> Result<Seen> {
        std::fs::write(self.dir.join("go"), "1")?;
        let out = self.dir.join("out.json");
        self.wait_for(
            |t| t.child.try_wait().ok().flatten().is_some(),
            FINISH_TIMEOUT,
            "finish",
        )?;
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        let seen: Value = serde_json::from_str(text.trim())
            .with_context(|| format!("the browser tab printed no report: {}", self.stderr()))?;
        let _ = std::fs::remove_dir_all(&self.dir);
        Ok(Seen::judge(seen, &self.marker))
    }
}

/// What the tab saw, and what of it is wrong.
#[derive(Debug, Clone)]
pub struct Seen {
    pub report: Value,
    pub problems: Vec<String>,
    /// Its form submission, for the write count.
    pub post: Option<Post>,
}

impl Seen {
    pub fn judge(report: Value, marker: &str) -> Seen {
        let after = &report["after"];
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        };
        // Chromium aborts what is in flight when the host's interfaces change (ERR_NETWORK_CHANGED):
        // another stack's network made or removed on this host (ci runs the tests beside the
        // proof), not an answer of the stack. Such a line is kept in the report, not judged.
        let by_the_stack = |line: &String| !line.contains("ERR_NETWORK_CHANGED");
        let mut problems: Vec<String> = strings(&report["errors"])
            .into_iter()
            .filter(by_the_stack)
            .map(|e| format!("error in the page: {e}"))
            .collect();
        problems.extend(
            strings(&report["failed"])
                .into_iter()
                .filter(by_the_stack)
                .map(|f| format!("failed response: {f}")),
        );
        let post = after["action_status"].as_u64().map(|status| {
            let reloaded = after["action_not_found"] == true;
            let ok = status < 400 || reloaded;
            if !ok {
                problems.push(format!("its form's submission answered {status}"));
            }
            Post {
                marker: marker.to_string(),
                held: true,
                status: Some(status as u16),
                failure: (!ok).then(|| format!("the browser tab's submission answered {status}")),
            }
        });
        if let Some(link) = after["link"].as_str()
            && after["navigated_to"].as_str() != Some(link)
        {
            problems.push(format!(
                "following its link to {link} ended at {}",
                after["navigated_to"]
            ));
        }
        Seen {
            report,
            problems,
            post,
        }
    }

    pub fn to_json(&self) -> Value {
        json!({"ok": self.problems.is_empty(), "problems": self.problems, "saw": self.report})
    }

    /// `its form answered 200; its link to / reached / with 1 full page load (Next.js's reload
    /// into the new release)`
    pub fn line(&self) -> String {
        let a = &self.report["after"];
        let mut parts = Vec::new();
        if let Some(s) = a["action_status"].as_u64() {
            parts.push(format!("its form answered {s}"));
        }
        if let Some(link) = a["link"].as_str() {
            parts.push(format!("its link to {link} reached {}", a["navigated_to"]));
        }
        let loads = a["page_loads"].as_u64().unwrap_or(0);
        parts.push(match loads {
            0 => "no full page load (client-side navigation)".to_string(),
            n => format!("{n} full page load (Next.js's reload into the new release)"),
        });
        parts.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tab_that_worked_and_one_that_broke() {
        let ok = json!({"after": {"action_status": 200, "action_not_found": false, "link": "/notes",
            "navigated_to": "/notes", "page_loads": 0}, "failed": [], "errors": []});
        let s = Seen::judge(ok, "m1");
        assert!(s.problems.is_empty(), "{:?}", s.problems);
        assert_eq!(s.post.unwrap().status, Some(200));

        let broken = json!({"after": {"action_status": 500, "link": "/notes", "navigated_to": "/"},
            "failed": ["404 GET /_next/static/chunks/a.js"], "errors": ["ChunkLoadError: Loading chunk 3 failed"]});
        let s = Seen::judge(broken, "m2");
        assert_eq!(s.problems.len(), 4, "{:?}", s.problems);
        assert!(s.post.unwrap().failure.is_some());

        // Next.js's own reload (a removed action) is not a failure.
        let reload = json!({"after": {"action_status": 409, "action_not_found": true}, "failed": [], "errors": []});
        assert!(Seen::judge(reload, "m3").problems.is_empty());

        // The host's network changing under Chromium is not the stack's answer.
        let host = json!({"after": {"action_status": 200}, "errors": [
            "Failed to load resource: net::ERR_NETWORK_CHANGED"],
            "failed": ["net::ERR_NETWORK_CHANGED http://127.0.0.1:1/_next/static/chunks/a.js"]});
        let s = Seen::judge(host, "m4");
        assert!(s.problems.is_empty(), "{:?}", s.problems);
        assert_eq!(
            s.report["failed"].as_array().unwrap().len(),
            1,
            "kept in the report"
        );
    }
}
