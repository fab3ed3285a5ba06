//! Prod's secrets: one file each in a git-ignored directory (`secrets/`, or AXION_SECRETS_DIR),
//! made from the OS CSPRNG when missing and checked before any prod start. Compose mounts them
//! at /run/secrets; no password travels in an environment variable.
//!
//! Modes: the directory is 0700, so on the host only its owner reaches the files. The files
//! are 0644 because compose bind-mounts a file secret with its host owner and mode (the
//! `uid`/`gid`/`mode` keys are Swarm-only, docker/compose#9648) and the services read them as
//! non-root users (postgres, redis, the app's 1000).

use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};

/// The secrets the prod stack reads, with what each is for.
pub const SECRETS: [(&str, &str); 5] = [
    (
        "postgres_password",
        "PostgreSQL's bootstrap superuser (initdb only)",
    ),
    (
        "app_db_password",
        "the app's own PostgreSQL role (LOGIN, not superuser)",
    ),
    (
        "redis_password",
        "Redis's ACL user `app` (the app: data and scripts, no admin or dangerous command)",
    ),
    (
        "redis_admin_password",
        "Redis's `default` user (administration: health check, backups)",
    ),
    (
        "cache_password",
        "the cache Redis's one user (the app's Next.js cache; no admin or dangerous command)",
    ),
];
/// Next.js's server-actions key (AES-256, standard base64): a build secret, the same for every
/// build and replica until it is rotated (delete the file; the next build makes a new one).
pub const ACTIONS_KEY: &str = "server_actions_key";

/// Redis reads its password from a config file: derived from `redis_password` on each prod
/// start, so editing the password file is enough. Likewise the cache Redis's.
const REDIS_CONF: &str = "redis.conf";
const CACHE_CONF: &str = "cache.conf";
/// Long enough that guessing is hopeless; the generated ones are 43 characters (256 bits).
pub const MIN_LEN: usize = 16;

pub fn dir(root: &Path) -> PathBuf {
    match std::env::var("AXION_SECRETS_DIR") {
        Ok(d) if !d.is_empty() => root.join(d),
        _ => root.join("secrets"),
    }
}

/// Creates what is missing (saying where), checks every secret, then rewrites redis.conf and
/// cache.conf.
pub fn ensure(root: &Path) -> Result<()> {
    let dir = dir(root);
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
    for (name, what) in SECRETS {
        let path = dir.join(name);
        // Whole or not at all, and never over one another run made a moment ago.
        if !path.exists()
            && crate::util::create_atomic(&path, crate::util::random_secret()?.as_bytes(), 0o644)
                .with_context(|| format!("creating {}", path.display()))?
        {
            eprintln!(
                "created secret {} ({what}): 256 random bits",
                path.display()
            );
        }
        // Written by hand under a strict umask (0600), the services' users could not read it.
        if fs::metadata(&path).is_ok_and(|m| m.permissions().mode() & 0o444 != 0o444) {
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644))
                .with_context(|| format!("making {} readable by the services", path.display()))?;
        }
    }
    ensure_actions_key(&dir)?;
    // Checked before anything is derived from them.
    check(root)?;
    let (app, admin) = (
        read(&dir, "redis_password")?,
        read(&dir, "redis_admin_password")?,
    );
    let cache = read(&dir, "cache_password")?;
    for (name, text) in [
        (REDIS_CONF, redis_conf(&app, &admin)),
        (CACHE_CONF, cache_conf(&cache)),
    ] {
        let conf = dir.join(name);
        crate::util::write_atomic(&conf, text.as_bytes(), 0o644)
            .with_context(|| format!("writing {}", conf.display()))?;
    }
    Ok(())
}

/// The server-actions key, made when missing (0600: only the build reads it), then checked: a
/// value `atob` decodes to 16, 24 or 32 bytes.
fn ensure_actions_key(dir: &Path) -> Result<()> {
    let path = dir.join(ACTIONS_KEY);
    if !path.exists()
        && crate::util::create_atomic(&path, crate::util::random_key_base64()?.as_bytes(), 0o600)
            .with_context(|| format!("creating {}", path.display()))?
    {
        eprintln!(
            "created secret {} (Next.js's server-actions key): 256 random bits",
            path.display()
        );
    }
    let key = read(dir, ACTIONS_KEY)?;
    let body = key.trim_end_matches('=');
    let valid = key.len() % 4 == 0
        && key.len() - body.len() <= 2
        && body
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/')
        && [16, 24, 32].contains(&(body.len() * 3 / 4));
    if !valid {
        bail!(
            "{} is not a base64 AES key (16, 24 or 32 bytes, as `openssl rand -base64 32` prints).\n  \
             fix: delete it (a random one is made) or write one",
            path.display()
        );
    }
    Ok(())
}

/// A fingerprint of the server-actions key, keyed like swarm names (`.name-key`): it tells
/// nothing of the key, and as a build argument it makes a new key a new build (BuildKit leaves
/// secret mounts out of its cache key, so a rotated key would otherwise keep the cached build).
/// Empty while there is no key.
pub fn actions_key_id(root: &Path) -> String {
    let Ok(key) = read(&dir(root), ACTIONS_KEY) else {
        return String::new();
    };
    let Ok(name_key) = name_key(root) else {
        return String::new();
    };
    format!(
        "{:016x}",
        crate::standin::fnv1a(&[name_key.as_slice(), key.as_bytes()].concat())
    )
}

/// The ACL users, passwords quoted as Redis's config parser reads them (`\` and `"` escaped), so
/// no character of a password can end the value or start a comment:
/// - `default`: everything, for administration (health check, backups, CONFIG);
/// - `app`: every key and channel, every command but the `@admin` and `@dangerous` ones (no
///   CONFIG, FLUSHALL, SHUTDOWN, REPLICAOF, ACL, DEBUG, KEYS, MONITOR), with INFO, which BullMQ
///   reads to check the server.
fn redis_conf(app: &str, admin: &str) -> String {
    format!(
        "user default on \">{}\" ~* &* +@all\n\
         user app on \">{}\" ~* &* +@all -@admin -@dangerous +info\n",
        quoted(admin),
        quoted(app)
    )
}

/// The cache Redis's one user, `default`, the app's: every key, every command but the `@admin`
/// and `@dangerous` ones, with INFO (what the checks read its memory policy from).
fn cache_conf(password: &str) -> String {
    format!(
        "user default on \">{}\" ~* &* +@all -@admin -@dangerous +info\n",
        quoted(password)
    )
}

/// A password as Redis's config parser reads a quoted value.
fn quoted(p: &str) -> String {
    p.replace('\\', "\\\\").replace('"', "\\\"")
}

/// The key swarm secret names are derived with (`.name-key` in the secrets directory, 0600,
/// made once): a name changes when its secret does and tells nothing about it.
pub fn name_key(root: &Path) -> Result<Vec<u8>> {
    let path = dir(root).join(".name-key");
    if !path.exists() {
        crate::util::create_atomic(&path, crate::util::random_secret()?.as_bytes(), 0o600)
            .with_context(|| format!("creating {}", path.display()))?;
    }
    fs::read(&path).with_context(|| format!("reading {}", path.display()))
}

/// One rule for every secret file: its value is the file, less one final line feed. Refused: a
/// value that is short, has a carriage return (saved with Windows line endings) or any other
/// whitespace anywhere (leading, trailing, inside), or is a password published in .env.example.
pub fn check(root: &Path) -> Result<()> {
    let dir = dir(root);
    let published = published_values(root);
    for (name, _) in SECRETS {
        let value = read(&dir, name)?;
        let path = dir.join(name).display().to_string();
        if published.contains(&value) {
            bail!(
                "{path} holds a password published in .env.example: the prod stack refuses it.\n  \
                 fix: delete the file and the xtask makes a random one, or write your own of {MIN_LEN}+ characters"
            );
        }
        if value.chars().count() < MIN_LEN {
            bail!(
                "{path} is shorter than {MIN_LEN} characters.\n  fix: delete it (a random one is made) or write a longer one"
            );
        }
        if value.contains('\r') {
            bail!(
                "{path} has a carriage return (saved with Windows line endings?).\n  fix: `sed -i 's/\\r$//' {path}`"
            );
        }
        if value.contains(char::is_whitespace) {
            bail!(
                "{path}: a password may not contain spaces, tabs or line breaks (leading, trailing or inside)"
            );
        }
    }
    Ok(())
}

/// Where a secret's value shows in `text`, as written or percent-encoded (the form the runner's
/// entrypoint puts into DATABASE_URL and REDIS_URL; hex digits of either case): the names of
/// those found. Secrets that cannot be read are skipped (the checks before any start refuse them).
pub fn leaked_in(root: &Path, text: &str) -> Vec<&'static str> {
    let dir = dir(root);
    SECRETS
        .iter()
        .map(|(name, _)| *name)
        .chain([ACTIONS_KEY])
        .filter_map(|name| Some((name, read(&dir, name).ok()?)))
        .filter(|(_, v)| contains_secret(text, v))
        .map(|(name, _)| name)
        .collect()
}

fn contains_secret(text: &str, value: &str) -> bool {
    let encoded = crate::util::percent_encode(value).to_ascii_lowercase();
    text.contains(value) || text.to_ascii_lowercase().contains(&encoded)
}

fn read(dir: &Path, name: &str) -> Result<String> {
    let path = dir.join(name);
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text.strip_suffix('\n').unwrap_or(&text).to_string())
}

/// Every value .env.example assigns: the published defaults no prod secret may reuse.
fn published_values(root: &Path) -> Vec<String> {
    let text = fs::read_to_string(root.join(".env.example")).unwrap_or_default();
    crate::env_file::EnvFile::parse(&text)
        .vars
        .into_iter()
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("xtask-secrets-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        fs::write(
            d.join(".env.example"),
            "POSTGRES_PASSWORD=axion-dev-password\n",
        )
        .unwrap();
        d
    }

    #[test]
    fn missing_secrets_are_made_once_and_kept() {
        let root = scratch("make");
        ensure(&root).unwrap();
        let d = dir(&root);
        assert_eq!(
            fs::metadata(&d).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let first = fs::read_to_string(d.join("app_db_password")).unwrap();
        ensure(&root).unwrap();
        assert_eq!(
            fs::read_to_string(d.join("app_db_password")).unwrap(),
            first
        );
        let conf = fs::read_to_string(d.join("redis.conf")).unwrap();
        let app = fs::read_to_string(d.join("redis_password")).unwrap();
        let admin = fs::read_to_string(d.join("redis_admin_password")).unwrap();
        assert_eq!(
            conf,
            format!(
                "user default on \">{}\" ~* &* +@all\nuser app on \">{}\" ~* &* +@all -@admin -@dangerous +info\n",
                admin.trim_end(),
                app.trim_end()
            )
        );
        let cache = fs::read_to_string(d.join("cache_password")).unwrap();
        assert_eq!(
            fs::read_to_string(d.join("cache.conf")).unwrap(),
            format!(
                "user default on \">{}\" ~* &* +@all -@admin -@dangerous +info\n",
                cache.trim_end()
            )
        );
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn published_and_short_passwords_are_refused() {
        let root = scratch("weak");
        ensure(&root).unwrap();
        let d = dir(&root);
        fs::write(d.join("postgres_password"), "axion-dev-password\n").unwrap();
        let e = check(&root).unwrap_err().to_string();
        assert!(e.contains("published in .env.example"), "{e}");
        fs::write(d.join("postgres_password"), "short").unwrap();
        assert!(
            check(&root)
                .unwrap_err()
                .to_string()
                .contains("shorter than 16")
        );
        fs::write(d.join("postgres_password"), "p@ss:w/rd#with-specials-42").unwrap();
        check(&root).unwrap();
        fs::remove_dir_all(&root).unwrap();
    }

    /// Hostile table, row 5: one rule for every secret, checked before anything is derived.
    #[test]
    fn one_rule_for_whitespace_checked_before_redis_conf_is_written() {
        let root = scratch("rule");
        ensure(&root).unwrap();
        let d = dir(&root);
        let good = "Quote\"and\\backslash#not-a-comment";
        fs::write(d.join("redis_password"), format!("{good}\n")).unwrap();
        ensure(&root).unwrap();
        let conf = fs::read_to_string(d.join("redis.conf")).unwrap();
        let app_line = conf.lines().nth(1).unwrap();
        assert_eq!(
            app_line,
            "user app on \">Quote\\\"and\\\\backslash#not-a-comment\" ~* &* +@all -@admin -@dangerous +info"
        );
        for (bad, want) in [
            (format!("{good}\r\n"), "carriage return"),
            (format!(" {good}\n"), "spaces, tabs or line breaks"),
            (format!("{good}\n\n"), "spaces, tabs or line breaks"),
            (format!("{good}\t"), "spaces, tabs or line breaks"),
        ] {
            fs::write(d.join("redis_password"), &bad).unwrap();
            let e = ensure(&root).unwrap_err().to_string();
            assert!(e.contains(want), "{bad:?}: {e}");
            assert_eq!(
                fs::read_to_string(d.join("redis.conf")).unwrap(),
                conf,
                "{bad:?}: redis.conf is not rewritten from a refused secret"
            );
        }
        fs::remove_dir_all(&root).unwrap();
    }

    /// The form start.sh writes into a URL (unreserved bytes kept, lowercase hex) is found too.
    #[test]
    fn a_secret_is_found_as_written_and_as_a_url_holds_it() {
        let pw = "p@ss:w/rd#%é-x";
        assert!(contains_secret(&format!("x {pw} y"), pw));
        let url = "postgres://axion_app:p%40ss%3aw%2frd%23%25%c3%a9-x@db:5432/axion";
        assert!(contains_secret(url, pw));
        assert!(contains_secret(&url.to_ascii_uppercase(), pw));
        assert!(!contains_secret("postgres://axion_app:other@db/axion", pw));
    }
}
