//! One cache for every replica, measured: an ISR route of the build is regenerated on demand
//! through one entry point (the `x-prerender-revalidate` request `revalidatePath` makes, with
//! the build's preview id), and the proof reads the route through every entry point until each
//! serves the new generation several times in a row (the proxies balance round robin, so
//! consecutive reads reach every replica). With a cache per replica the others would keep
//! serving the old page until their own `revalidate` runs out.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use anyhow::{Result, bail};
use serde_json::{Value, json};

use crate::http;

/// Reads in a row, per entry point, that must all serve the new generation: two per replica.
const IN_A_ROW: usize = 4;
const GIVE_UP: Duration = Duration::from_secs(20);
const TIMEOUT: Duration = Duration::from_secs(10);

/// How long each regeneration took to be served everywhere.
#[derive(Debug, Clone, Default)]
pub struct Visible {
    pub route: String,
    pub ms: Vec<f64>,
    /// Why nothing was measured (no ISR route, a page whose content never changes).
    pub not_measured: Option<String>,
}

impl Visible {
    pub fn not_measured(why: &str) -> Visible {
        Visible {
            not_measured: Some(why.to_string()),
            ..Default::default()
        }
    }

    pub fn to_json(&self) -> Value {
        let mut sorted = self.ms.clone();
        sorted.sort_by(f64::total_cmp);
        json!({
            "route": self.route,
            "rounds": sorted.len(),
            "p50": sorted.get(sorted.len().saturating_sub(1) / 2),
            "max": sorted.last(),
            "not_measured": self.not_measured,
        })
    }

    pub fn line(&self) -> String {
        match &self.not_measured {
            Some(why) => format!("not measured: {why}"),
            None => {
                let v = self.to_json();
                format!(
                    "{}: p50 {:.0} ms, max {:.0} ms over {} regenerations",
                    self.route,
                    v["p50"].as_f64().unwrap_or_default(),
                    v["max"].as_f64().unwrap_or_default(),
                    v["rounds"]
                )
            }
        }
    }
}

/// `rounds` on-demand regenerations of `route`, each through the next entry point.
pub fn measure(
    entries: &[SocketAddr],
    route: &str,
    preview: &str,
    rounds: usize,
) -> Result<Visible> {
    let mut out = Visible {
        route: route.to_string(),
        ..Default::default()
    };
    for round in 0..rounds {
        let via = entries[round % entries.len()];
        let before = generation(via, route, &[])?;
        let t = Instant::now();
        let answer = generation(via, route, &[("x-prerender-revalidate", preview)])?;
        let Some(new) = changed(via, route, &before, answer)? else {
            return Ok(Visible::not_measured(&format!(
                "{route} renders the same page each time (no generation to tell apart)"
            )));
        };
        everywhere(entries, route, &new, t)?;
        out.ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(out)
}

/// The new generation: the revalidation's own answer, else the first other one `via` serves
/// within a few seconds; `None` when the page never changes.
fn changed(via: SocketAddr, route: &str, before: &str, answer: String) -> Result<Option<String>> {
    let t = Instant::now();
    let mut got = answer;
    while got == before {
        if t.elapsed() > Duration::from_secs(5) {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(50));
        got = generation(via, route, &[])?;
    }
    Ok(Some(got))
}

/// Until every entry point serves `want` IN_A_ROW times in a row.
fn everywhere(entries: &[SocketAddr], route: &str, want: &str, since: Instant) -> Result<()> {
    for e in entries {
        let mut row = 0;
        while row < IN_A_ROW {
            let got = generation(*e, route, &[])?;
            row = if got == want { row + 1 } else { 0 };
            if since.elapsed() > GIVE_UP {
                bail!(
                    "{route} regenerated on one replica was still {got} (not {want}) through {e} after {} s: \
                     the replicas do not share one cache",
                    GIVE_UP.as_secs()
                );
            }
        }
    }
    Ok(())
}

/// The route's generation as `entry` serves it.
fn generation(entry: SocketAddr, route: &str, headers: &[(&str, &str)]) -> Result<String> {
    let r = http::get_with(entry, route, headers, TIMEOUT)
        .map_err(|e| anyhow::anyhow!("GET {entry}{route}: {e}"))?;
    if r.status != 200 {
        bail!("GET {entry}{route}: {}", r.describe());
    }
    Ok(r.generation())
}
