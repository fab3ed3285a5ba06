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
}

impl EnvFile {
    pub fn load(path: &Path) -> Result<EnvFile> {
        let text =
            fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let env = EnvFile::parse(&text);
        env.check()
            .with_context(|| format!("in {}", path.display()))?;
        Ok(env)
    }

    /// `KEY=value`, `export KEY=value`, quotes, `#` comments; `${VAR}` is left for compose.
    pub fn parse(text: &str) -> EnvFile {
        let mut vars = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let line = line.strip_prefix("export ").unwrap_or(line);
            let Some((k, v)) = line.split_once('=') else {
                vars.push((line.to_string(), String::new()));
                continue;
            };
            let v = v.trim();
            let v = if let Some(q) = v.strip_prefix('"').and_then(|v| v.split_once('"')) {
                q.0.to_string()
            } else if let Some(q) = v.strip_prefix('\'').and_then(|v| v.split_once('\'')) {
                q.0.to_string()
            } else {
                v.split(" #").next().unwrap_or("").trim().to_string()
            };
            vars.push((k.trim().to_string(), v));
        }
        EnvFile { vars }
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
        for (k, _) in &self.vars {
            if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                bail!("`{k}` is not a valid variable name (letters, digits and _ only)");
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
        Ok(EnvSource {
            file: EnvFile::load(&root.join(&path))?,
            path,
        })
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
            _ => bail!(
                "{key}={v} is not a port number (1-65535): fix it in {} or the environment",
                self.path.display()
            ),
        }
    }
}

/// Creates `.env` from `.env.example` when it is missing, readable by its owner only (it will
/// hold passwords); never touches an existing one.
pub fn ensure_dotenv(root: &Path) -> Result<bool> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    let env = root.join(".env");
    if env.exists() {
        return Ok(false);
    }
    let text = fs::read(root.join(".env.example")).context("reading .env.example")?;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&env)
        .context("creating .env from .env.example")?;
    f.write_all(&text)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

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
