//! What one move between releases came to (the update to the second release, the way back to
//! the first): build ids, static files, writes, the removed action, the browser tab, the cache's
//! coherence; and the report's `release`, which sums the moves' failure counts.

use serde_json::{Value, json};

use super::{revalidate::Visible, tab::Seen, writes::Writes};
use crate::build_output::BuildOutput;

#[derive(Debug, Clone, Default)]
pub struct Figures {
    /// `update to the second release`, `back to the first release`.
    pub what: String,
    /// The running release's and the one rolled out.
    pub build_ids: [String; 2],
    /// The running release's own static files the new one does not have (new chunk hashes).
    pub files_only_in_from: usize,
    pub actions_changed: bool,
    pub carried: bool,
    pub assets_requested: usize,
    pub asset_404s: Vec<String>,
    /// 5xx answers to the GET load.
    pub server_errors: u64,
    pub writes: Option<Writes>,
    pub no_writes_why: Option<String>,
    /// What a held form of an action the new release lacks got (`Err`: a failure).
    pub removed_action: Option<Result<String, String>>,
    /// The regeneration read back through every replica, on the release rolled out.
    pub revalidate: Option<Visible>,
    /// The browser tab held across the move, or why it did not run.
    pub browser: Option<Result<Seen, String>>,
}

impl Figures {
    pub fn new(what: &str, from: &BuildOutput, to: &BuildOutput, files: [&[String]; 2]) -> Figures {
        Figures {
            what: what.to_string(),
            build_ids: [from.build_id.clone(), to.build_id.clone()],
            files_only_in_from: files[0].iter().filter(|f| !files[1].contains(f)).count(),
            actions_changed: from.action_ids != to.action_ids,
            ..Default::default()
        }
    }

    fn action_failures(&self) -> usize {
        let w = self.writes.as_ref().map_or(0, |w| w.action_failures);
        w + usize::from(matches!(self.removed_action, Some(Err(_))))
    }

    fn counts(&self) -> [(&'static str, u64); 5] {
        let w = self.writes.clone().unwrap_or_default();
        [
            ("asset_404s", self.asset_404s.len() as u64),
            ("action_failures", self.action_failures() as u64),
            ("server_errors", self.server_errors + w.server_errors as u64),
            ("duplicate_writes", w.duplicate_writes as u64),
            ("lost_writes", w.lost_writes as u64),
        ]
    }

    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "move": self.what,
            "build_ids": self.build_ids,
            "static_files_only_in_the_running_release": self.files_only_in_from,
            "action_ids_changed": self.actions_changed,
            "carried": self.carried,
            "assets_requested": self.assets_requested,
            "missing": self.asset_404s,
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
            "revalidate_visible_ms": self.revalidate.as_ref().map(Visible::to_json),
        });
        for (k, n) in self.counts() {
            v[k] = json!(n);
        }
        v
    }

    /// For a person: the builds, the assets, the writes, the tab, the cache.
    pub fn lines(&self) -> String {
        let mut s = format!(
            "  {}: {} -> {} ({} static files only in the running release, action ids {})\n",
            self.what,
            self.build_ids[0],
            self.build_ids[1],
            self.files_only_in_from,
            if self.actions_changed {
                "changed"
            } else {
                "the same"
            }
        );
        s.push_str(&format!(
            "    the running release's static files after it: {} of {} requests failed{}\n",
            self.asset_404s.len(),
            self.assets_requested,
            if self.carried {
                " (deploy carried them into the new image)"
            } else {
                ""
            }
        ));
        match (&self.writes, &self.no_writes_why) {
            (Some(w), _) => s.push_str(&format!("    writes: {}\n", w.line())),
            (None, Some(why)) => s.push_str(&format!("    writes: not measured: {why}\n")),
            _ => {}
        }
        if let Some(Ok(answer)) = &self.removed_action {
            s.push_str(&format!(
                "    a held form of an action the new release lacks: {answer} (Next.js's reload)\n"
            ));
        }
        match &self.browser {
            Some(Ok(seen)) if seen.problems.is_empty() => s.push_str(&format!(
                "    a Chromium tab held across it: {}\n",
                seen.line()
            )),
            Some(Err(why)) => s.push_str(&format!("    !!! the browser tab did not run: {why}\n")),
            _ => {}
        }
        if let Some(v) = &self.revalidate {
            s.push_str(&format!(
                "    a regeneration seen by every replica: {}\n",
                v.line()
            ));
        }
        s
    }

    /// Every count that must be 0, with its name, when it is not.
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.asset_404s.is_empty() {
            let first: Vec<&str> = self.asset_404s.iter().take(5).map(String::as_str).collect();
            out.push(format!(
                "{} of the running release's static files not served after it: {}",
                self.asset_404s.len(),
                first.join(", ")
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

/// The report's `release`: both build ids, each failure count summed over the moves, the
/// cache's coherence per release, and every move in full.
pub fn release_json(moves: &[Figures]) -> Value {
    let mut v = json!({
        "build_ids": moves.first().map(|m| m.build_ids.clone()),
        "revalidate_visible_ms": moves.iter()
            .filter_map(|m| m.revalidate.as_ref().map(|r| (m.build_ids[1].clone(), r.to_json())))
            .collect::<serde_json::Map<_, _>>(),
        "browser": moves.iter().map(|m| m.to_json()["browser"].clone()).collect::<Vec<_>>(),
        "moves": moves.iter().map(Figures::to_json).collect::<Vec<_>>(),
    });
    for (i, (k, _)) in Figures::default().counts().iter().enumerate() {
        v[*k] = json!(moves.iter().map(|m| m.counts()[i].1).sum::<u64>());
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_release_sums_each_count_over_the_moves() {
        let mut out = Figures {
            what: "update".into(),
            build_ids: ["a".into(), "a-2".into()],
            asset_404s: vec!["x 404".into()],
            ..Default::default()
        };
        out.server_errors = 2;
        let back = Figures {
            what: "back".into(),
            build_ids: ["a-2".into(), "a".into()],
            removed_action: Some(Err("500".into())),
            ..Default::default()
        };
        let v = release_json(&[out.clone(), back.clone()]);
        assert_eq!(v["build_ids"], json!(["a", "a-2"]));
        assert_eq!(v["asset_404s"], 1);
        assert_eq!(v["server_errors"], 2);
        assert_eq!(v["action_failures"], 1);
        assert_eq!(v["lost_writes"], 0);
        assert_eq!(v["moves"].as_array().unwrap().len(), 2);
        assert_eq!(out.failures().len(), 2);
        assert_eq!(back.failures(), vec!["500"]);
    }
}
