//! `.env` files: the one rule for which file a command reads, and the subset of compose's
//! syntax the xtask needs to read ports and overrides from it.

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};

#[derive(Debug, Default, Clone, PartialEq)]
pub struct EnvFile {
    pub vars: Vec<(String, String)>,
    /// The line (1-based) each of `vars` came from.
    pub lines: Vec<usize>,
    /// Lines whose quote never closes: (line, key).
    pub unterminated: Vec<(usize, String)>,
}

/// Variables the stacks and the xtask read besides those .env.example assigns or mentions.
pub const ALSO_READ: [&str; 8] = [
    "AXION_IMAGES",
    "AXION_EXTRA_CA_CERTS",
    "AXION_DEV_PROJECT",
    "AXION_SECRETS_DIR",
    "APP_MEMORY_LIMIT",
    "APP_DB_USER",
    "DEBIAN_MIRROR",
    "BUN_INSTALL_FLAGS",
];

impl EnvFile {
    /// Reads and checks a file: a bad name or an unterminated quote is an error naming its line.
    pub fn load(path: &Path) -> Result<EnvFile> {
        let text =
            fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let env = EnvFile::parse(&text);
        env.check().with_context(|| {
            format!(
                "in {} (fix the line, or delete the file to start again from .env.example)",
                path.display()
            )
        })?;
        Ok(env)
    }

    /// The line a variable was last set on.
    pub fn line_of(&self, key: &str) -> Option<usize> {
        let i = self.vars.iter().rposition(|(k, _)| k == key)?;
        self.lines.get(i).copied()
    }

    /// `KEY=value`, `export KEY=value`, quotes, `#` comments; `${VAR}` is left for compose.
    pub fn parse(text: &str) -> EnvFile {
        let mut env = EnvFile::default();
        for (n, line) in text.lines().enumerate() {
            let before = env.vars.len();
            env.parse_line(line, n + 1);
            env.lines
                .extend(std::iter::repeat_n(n + 1, env.vars.len() - before));
        }
        env
    }

    /// One line: a variable (quotes stripped, a trailing ` #` comment dropped), or nothing.
    fn parse_line(&mut self, line: &str, n: usize) {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((k, v)) = line.split_once('=') else {
            self.vars.push((line.to_string(), String::new()));
            return;
        };
        let (k, v) = (k.trim(), v.trim());
        let quoted = ['"', '\''].into_iter().find(|q| v.starts_with(*q));
        let v = match quoted {
            Some(q) => match v[1..].split_once(q) {
                Some((inner, _)) => inner.to_string(),
                None => {
                    self.unterminated.push((n, k.to_string()));
                    v[1..].to_string()
                }
            },
            None => v.split(" #").next().unwrap_or("").trim().to_string(),
        };
        self.vars.push((k.to_string(), v));
    }

    /// Every variable a file assigns or mentions in a comment (`# HOST_UID=1000`): what
    /// .env.example documents.
    pub fn documented(text: &str) -> Vec<String> {
        text.lines()
            .map(|l| l.trim().trim_start_matches('#').trim())
            .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim().to_string()))
            .filter(|k| !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            .collect()
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    fn check(&self) -> Result<()> {
        if let Some((n, k)) = self.unterminated.first() {
            bail!("line {n}: the value of `{k}` opens a quote that never closes on that line");
        }
        for ((k, _), n) in self.vars.iter().zip(&self.lines) {
            if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                bail!("line {n}: `{k}` is not a valid variable name (letters, digits and _ only)");
            }
        }
        Ok(())
    }

    /// The dev Redis requires REDIS_PASSWORD: a REDIS_URL written before it (no `@`) would be
    /// refused with NOAUTH at the app's first request. Named with the fix, nothing changed.
    fn check_redis_url(&self) -> Result<()> {
        let Some(url) = self.get("REDIS_URL") else {
            return Ok(());
        };
        if !url.contains('@') {
            let n = self.line_of("REDIS_URL").unwrap_or(0);
            bail!(
                "line {n}: `REDIS_URL={url}` has no password, but the dev Redis requires REDIS_PASSWORD.\n  \
                 fix: `REDIS_PASSWORD=<a password>` and `REDIS_URL=redis://:${{REDIS_PASSWORD}}@redis:6379`, as in .env.example"
            );
        }
        Ok(())
    }

    /// A variable that is not one the stacks read but is one typo away from one: named with
    /// its line and the variable meant. Others are the user's own and are left alone.
    pub fn check_names(&self, known: &[String]) -> Result<()> {
        for ((k, _), n) in self.vars.iter().zip(&self.lines) {
            if known.contains(k) || ALSO_READ.contains(&k.as_str()) {
                continue;
            }
            let all = known.iter().map(String::as_str).chain(ALSO_READ);
            if let Some(meant) = all
                .filter(|m| near(k, m))
                .min_by_key(|m| crate::util::edit_distance(k, m))
            {
                bail!("line {n}: `{k}` is not a variable the stacks read; did you mean `{meant}`?");
            }
        }
        Ok(())
    }
}

/// The env file a command reads, by the one rule every command follows: `.env` when it
/// exists, else `.env.example`; the process environment wins over either, as in compose.
/// Compose gets the same file with `--env-file`, so the xtask and compose never disagree.
#[derive(Debug, Clone)]
pub struct EnvSource {
    /// Relative to the project root: `.env` or `.env.example`.
    pub path: PathBuf,
    pub file: EnvFile,
}

impl EnvSource {
    pub fn resolve(root: &Path) -> Result<EnvSource> {
        let path = PathBuf::from(if root.join(".env").exists() {
            ".env"
        } else {
            ".env.example"
        });
        let file = EnvFile::load(&root.join(&path))?;
        let example = fs::read_to_string(root.join(".env.example")).unwrap_or_default();
        file.check_names(&EnvFile::documented(&example))
            .and_then(|()| file.check_redis_url())
            .with_context(|| format!("in {}", path.display()))?;
        Ok(EnvSource { file, path })
    }

    /// A variable: the process environment first, then the file; empty counts as unset.
    pub fn get(&self, key: &str) -> Option<String> {
        std::env::var(key)
            .ok()
            .filter(|v| !v.is_empty())
            .or_else(|| self.file.get(key).map(String::from))
    }

    pub fn port(&self, key: &str, default: u16) -> Result<u16> {
        let Some(v) = self.get(key) else {
            return Ok(default);
        };
        match v.parse::<u16>() {
            Ok(p) if p > 0 => Ok(p),
            _ => match self
                .file
                .line_of(key)
                .filter(|_| std::env::var(key).is_err())
            {
                Some(n) => bail!(
                    "{key}={v} is not a port number (1-65535): fix line {n} of {}",
                    self.path.display()
                ),
                None => bail!("{key}={v} (from the environment) is not a port number (1-65535)"),
            },
        }
    }
}

/// A typo's distance: at most 2 edits, and less than a third of the name.
fn near(a: &str, b: &str) -> bool {
    let d = crate::util::edit_distance(a, b);
    d > 0 && d <= 2 && d * 3 <= b.len()
}

/// The passwords a new `.env` gets of its own, never the published ones of `.env.example`.
const OWN_PASSWORDS: [&str; 2] = ["POSTGRES_PASSWORD", "REDIS_PASSWORD"];

/// Creates `.env` from `.env.example` when it is missing, readable by its owner only, with
/// passwords of its own (256 random bits each); never touches an existing one.
pub fn ensure_dotenv(root: &Path) -> Result<bool> {
    let env = root.join(".env");
    if env.exists() {
        return Ok(false);
    }
    let example = fs::read_to_string(root.join(".env.example")).context("reading .env.example")?;
    let text = with_own_passwords(&example, crate::util::random_secret)?;
    // Never over a .env another command made a moment ago.
    crate::util::create_atomic(&env, text.as_bytes(), 0o600)
        .context("creating .env from .env.example")
}

fn with_own_passwords(example: &str, generate: impl Fn() -> Result<String>) -> Result<String> {
    let mut out = String::new();
    for line in example.lines() {
        match line.split_once('=') {
            Some((k, _)) if OWN_PASSWORDS.contains(&k.trim()) => {
                out.push_str(&format!("{}={}\n", k.trim(), generate()?));
            }
            _ => out.push_str(&format!("{line}\n")),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hostile table, row 9: a new .env never carries the example's published passwords.
    #[test]
    fn a_new_env_gets_passwords_of_its_own() {
        let example = "POSTGRES_PASSWORD=axion-dev-password\nREDIS_PASSWORD=axion-dev-redis-password\n\
                       DATABASE_URL=postgres://u:${POSTGRES_PASSWORD}@db/x\n# POSTGRES_PASSWORD=x\n";
        let n = std::cell::Cell::new(0);
        let text = with_own_passwords(example, || {
            n.set(n.get() + 1);
            Ok(format!("generated{}", n.get()))
        })
        .unwrap();
        assert_eq!(
            text,
            "POSTGRES_PASSWORD=generated1\nREDIS_PASSWORD=generated2\n\
             DATABASE_URL=postgres://u:${POSTGRES_PASSWORD}@db/x\n# POSTGRES_PASSWORD=x\n"
        );
    }

    #[test]
    fn a_redis_url_without_a_password_is_named() {
        let e = EnvFile::parse("APP_PORT=1\nREDIS_URL=redis://redis:6379\n")
            .check_redis_url()
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("line 2: `REDIS_URL=redis://redis:6379` has no password"),
            "{e}"
        );
        EnvFile::parse("REDIS_URL=redis://:${REDIS_PASSWORD}@redis:6379\n")
            .check_redis_url()
            .unwrap();
    }

    #[test]
    fn parses_compose_style_files() {
        let e = EnvFile::parse(
            "# comment\nAPP_PORT=3001\nexport DB_PORT = 5433\nPOSTGRES_PASSWORD=\"s3cret # not a comment\"\n\
             REDIS_URL=redis://redis:6379 # trailing comment\n# POSTGRES_IMAGE=postgres:17\nEMPTY=\n",
        );
        assert_eq!(e.get("APP_PORT"), Some("3001"));
        assert_eq!(e.get("DB_PORT"), Some("5433"));
        assert_eq!(e.get("POSTGRES_PASSWORD"), Some("s3cret # not a comment"));
        assert_eq!(e.get("REDIS_URL"), Some("redis://redis:6379"));
        assert_eq!(e.get("POSTGRES_IMAGE"), None);
        assert_eq!(e.get("EMPTY"), None);
        let src = EnvSource {
            path: ".env".into(),
            file: EnvFile::parse("XTASK_TEST_FILE_PORT=3001\n"),
        };
        assert_eq!(src.port("XTASK_TEST_FILE_PORT", 3000).unwrap(), 3001);
        assert_eq!(src.port("XTASK_TEST_UNSET_PORT", 6379).unwrap(), 6379);
    }

    #[test]
    fn the_rule_prefers_dotenv() {
        let dir = std::env::temp_dir().join(format!("xtask-envrule-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(".env.example"), "APP_PORT=3000\n").unwrap();
        assert_eq!(
            EnvSource::resolve(&dir).unwrap().path,
            Path::new(".env.example")
        );
        fs::write(dir.join(".env"), "XTASK_TEST_RULE_PORT=4000\n").unwrap();
        let src = EnvSource::resolve(&dir).unwrap();
        assert_eq!(src.path, Path::new(".env"));
        assert_eq!(src.port("XTASK_TEST_RULE_PORT", 1).unwrap(), 4000);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_values_are_named() {
        let e = EnvSource {
            path: ".env".into(),
            file: EnvFile::parse("XTASK_TEST_BAD_PORT=30o0\n"),
        };
        let err = e.port("XTASK_TEST_BAD_PORT", 1).unwrap_err().to_string();
        assert!(
            err.contains("XTASK_TEST_BAD_PORT=30o0") && err.contains("not a port"),
            "{err}"
        );
        assert!(EnvFile::parse("BAD-NAME=1\n").check().is_err());
    }

    #[test]
    fn malformed_lines_are_named() {
        let e = EnvFile::parse("A=1\n# note\nPOSTGRES_PASSWORD=\"open\nB=2\n");
        let err = format!("{:#}", e.check().unwrap_err());
        assert!(
            err.contains("line 3") && err.contains("POSTGRES_PASSWORD"),
            "{err}"
        );
        let known = EnvFile::documented("APP_PORT=3000\n# HOST_UID=1000\nPOSTGRES_PASSWORD=x\n");
        assert_eq!(known, ["APP_PORT", "HOST_UID", "POSTGRES_PASSWORD"]);
        let typo = EnvFile::parse("APP_PORT=1\nPOSTGRES_PASWORD=x\nMY_OWN_SETTING=y\n");
        let err = typo.check_names(&known).unwrap_err().to_string();
        assert_eq!(
            err,
            "line 2: `POSTGRES_PASWORD` is not a variable the stacks read; did you mean `POSTGRES_PASSWORD`?"
        );
        EnvFile::parse("MY_OWN_SETTING=y\nHOST_UID=5\n")
            .check_names(&known)
            .unwrap();
        let bad_port = EnvSource {
            path: ".env".into(),
            file: EnvFile::parse("\nXTASK_TEST_LINE_PORT=30o0\n"),
        };
        let err = bad_port
            .port("XTASK_TEST_LINE_PORT", 1)
            .unwrap_err()
            .to_string();
        assert!(err.contains("fix line 2 of .env"), "{err}");
    }

    #[test]
    fn dotenv_is_created_once_and_never_overwritten() {
        let dir = std::env::temp_dir().join(format!("xtask-envtest-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(".env.example"), "APP_PORT=3000\n").unwrap();
        assert!(ensure_dotenv(&dir).unwrap());
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(dir.join(".env")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        fs::write(dir.join(".env"), "APP_PORT=4000\n").unwrap();
        assert!(!ensure_dotenv(&dir).unwrap());
        assert_eq!(
            fs::read_to_string(dir.join(".env")).unwrap(),
            "APP_PORT=4000\n"
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
