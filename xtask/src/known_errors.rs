//! Known failures in build and compose output, recognised by their text and named with the fix.

/// Packages bun names in `IntegrityCheckFailed` errors, in order, without repeats.
/// bun prints `error: Integrity check failed for tarball: <pkg>` and then
/// `error: IntegrityCheckFailed extracting tarball from <pkg>` (newer: `... for "<pkg>"`).
pub fn integrity_failures(log: &str) -> Vec<String> {
    let mut pkgs: Vec<String> = Vec::new();
    for line in log.lines() {
        let rest = [
            "Integrity check failed for tarball:",
            "IntegrityCheckFailed extracting tarball from",
            "IntegrityCheckFailed for",
        ]
        .iter()
        .find_map(|m| line.split_once(m).map(|(_, r)| r));
        let Some(rest) = rest else { continue };
        let pkg = rest
            .trim()
            .trim_matches(|c| c == '"' || c == '\'')
            .split_whitespace()
            .next()
            .unwrap_or("");
        let pkg = pkg.trim_matches(|c| c == '"' || c == '\'');
        if !pkg.is_empty() && !pkgs.iter().any(|p| p == pkg) {
            pkgs.push(pkg.to_string());
        }
    }
    pkgs
}

/// A failure recognised by words in the lower-cased output: every one of `all`, and one of
/// `any` when it names some.
struct Pattern {
    all: &'static [&'static str],
    any: &'static [&'static str],
    say: &'static str,
}

impl Pattern {
    fn matches(&self, lower: &str) -> bool {
        self.all.iter().all(|m| lower.contains(m))
            && (self.any.is_empty() || self.any.iter().any(|m| lower.contains(m)))
    }
}

const FONTS: &str = "next/font/google downloads its fonts while `next build` runs, and this build cannot reach \
                     Google. Fix: use next/font/local with the font files in the repository (or system fonts)";

/// The failures whose fix needs nothing from the output but their words.
const PATTERNS: &[Pattern] = &[
    Pattern {
        all: &[],
        any: &["self_signed_cert_in_chain", "unable_to_get_issuer_cert"],
        say: "TLS: a proxy re-signs HTTPS with a CA the image does not trust. Fix: put the CA in \
              /usr/local/share/ca-certificates/ or point AXION_EXTRA_CA_CERTS at its PEM; the xtask passes it to the build",
    },
    Pattern {
        all: &[],
        any: &["buildx component is missing", "requires buildx"],
        say: "buildx is missing or too old. Fix: `cargo xtask provision` (as root) or install docker-buildx",
    },
    Pattern {
        all: &[],
        any: &["google fonts"],
        say: FONTS,
    },
    Pattern {
        all: &["next/font", "failed to fetch"],
        any: &[],
        say: FONTS,
    },
    Pattern {
        all: &["error occurred prerendering page"],
        any: &[
            "is not set",
            "econnrefused",
            "enotfound",
            "getaddrinfo",
            "connect_timeout",
            "database_url",
        ],
        say: "a page that reads a service (database, Redis) was prerendered during `next build`, where no service \
              runs. Fix: make it dynamic: `await connection()` from \"next/server\" at the top of that page (or read \
              the data in a route handler)",
    },
    Pattern {
        all: &["password authentication failed"],
        any: &[],
        say: "PostgreSQL refused the password: its data volume was initialised with another one than POSTGRES_PASSWORD \
              says now (another checkout of the project shares the `axion-hub` volumes, or .env was made anew). Fix: \
              put that password back in .env, give this checkout its own AXION_DEV_PROJECT, or `cargo xtask down \
              --volumes` (deletes the database)",
    },
    Pattern {
        all: &["no space left on device"],
        any: &[],
        say: "the disk is full. Fix: `docker builder prune` and `docker image prune`",
    },
];

/// Known failures in compose or build output, each with what to do about it.
pub fn known_problems(output: &str) -> Vec<String> {
    let lower = output.to_ascii_lowercase();
    let mut out: Vec<String> = registry_problem(&lower).into_iter().collect();
    if let Some(port) = allocated_port(output) {
        out.push(format!(
            "host port {port} is already in use. Fix: stop what holds it, or choose another port in .env \
             (APP_PORT, DB_PORT, REDIS_PORT)"
        ));
    }
    let pkgs = integrity_failures(output);
    if !pkgs.is_empty() {
        out.push(format!(
            "bun install: IntegrityCheckFailed for {}",
            pkgs.join(", ")
        ));
    }
    if lower.contains("lockfile had changes, but lockfile is frozen") {
        out.push(format!(
            "app/bun.lock no longer matches app/package.json. Fix: run `bun install` (bun {}) in app/ on the host and \
             commit app/bun.lock",
            crate::images::BUN_VERSION
        ));
    }
    out.extend(
        PATTERNS
            .iter()
            .filter(|p| p.matches(&lower))
            .map(|p| p.say.to_string()),
    );
    out
}

/// A registry that limits or cannot be reached.
fn registry_problem(lower: &str) -> Option<String> {
    let any = |words: &[&str]| words.iter().any(|m| lower.contains(m));
    if lower.contains("toomanyrequests") {
        return Some(
            "registry rate limit (toomanyrequests): Docker Hub allows 10 anonymous pulls an hour. Fix: `docker login`, \
             wait, or use the registry-free stand-in images with --standin"
                .to_string(),
        );
    }
    let pulling = any(&[
        "registry-1.docker.io",
        "pull access denied",
        "failed to resolve source metadata",
        "error pulling image",
    ]);
    let unreachable = any(&[
        "no such host",
        "i/o timeout",
        "connection refused",
        "network is unreachable",
        "pull access denied",
        "failed to resolve",
    ]);
    (pulling && unreachable).then(|| {
        "no container registry reachable, so an image could not be pulled. Fix: use the project's registry-free \
         stand-in images with --standin (or AXION_IMAGES=standin)"
            .to_string()
    })
}

/// `Bind for 127.0.0.1:3000 failed: port is already allocated` or
/// `listen tcp4 0.0.0.0:5432: bind: address already in use` -> the port.
pub fn allocated_port(output: &str) -> Option<u16> {
    for line in output.lines() {
        if !(line.contains("port is already allocated") || line.contains("address already in use"))
        {
            continue;
        }
        let candidates = line.split(|c: char| c.is_whitespace() || c == ',');
        for word in candidates {
            if let Some((_, port)) = word.trim_end_matches(':').rsplit_once(':')
                && let Ok(p) = port.parse::<u16>()
            {
                return Some(p);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bun_integrity_errors_old_and_new() {
        let log = "#12 1.2 error: Integrity check failed for tarball: is-number\n\
                   #12 1.2 error: IntegrityCheckFailed extracting tarball from is-number\n\
                   #12 1.3 error: IntegrityCheckFailed extracting tarball from \"@biomejs/cli-linux-x64-musl\"\n";
        assert_eq!(
            integrity_failures(log),
            ["is-number", "@biomejs/cli-linux-x64-musl"]
        );
        assert!(integrity_failures("bun install v1.4.5\n38 packages installed").is_empty());
    }

    #[test]
    fn compose_failures_are_named() {
        let rate =
            "Error response from daemon: toomanyrequests: You have reached your pull rate limit.";
        assert!(known_problems(rate)[0].contains("rate limit"));
        let offline = "Error response from daemon: Get \"https://registry-1.docker.io/v2/\": dial tcp: lookup registry-1.docker.io on 127.0.0.53:53: no such host";
        assert!(known_problems(offline)[0].contains("--standin"));
        let port = "Error response from daemon: driver failed programming external connectivity on endpoint p-app-1: Bind for 127.0.0.1:3000 failed: port is already allocated";
        assert_eq!(allocated_port(port), Some(3000));
        assert!(known_problems(port)[0].contains("port 3000"));
        assert_eq!(
            allocated_port("listen tcp4 0.0.0.0:5432: bind: address already in use"),
            Some(5432)
        );
        assert!(known_problems("all good").is_empty());
        let font =
            "Failed to fetch `Geist` from Google Fonts.\n> Build failed because of webpack errors";
        assert!(known_problems(font)[0].contains("next/font/local"));
        let prerender = "Error occurred prerendering page \"/\". Read more: https://nextjs.org/docs/messages/prerender-error\nError: DATABASE_URL is not set";
        assert!(known_problems(prerender)[0].contains("await connection()"));
        let frozen = "error: lockfile had changes, but lockfile is frozen\nnote: try re-running without --frozen-lockfile";
        assert!(known_problems(frozen)[0].contains("commit app/bun.lock"));
        let auth = "health: db failed: password authentication failed for user \"axion\"";
        assert!(known_problems(auth)[0].contains("AXION_DEV_PROJECT"));
    }
}
