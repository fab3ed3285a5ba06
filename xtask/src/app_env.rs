//! The app's own configuration, apart from the stacks': build-time `NEXT_PUBLIC_*` variables,
//! declared once as `ARG`s of docker/Dockerfile's builder stage (Next inlines them into the
//! bundles), and run-time server variables: whatever else the env file sets that the stacks do
//! not read themselves. The xtask writes both to `target/xtask/app.env`, which compose gives the
//! app (`env_file`), and passes the declared ones as build arguments.

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};

use crate::env_file::{ALSO_READ, EnvFile, EnvSource};

const PUBLIC: &str = "NEXT_PUBLIC_";

/// `ARG NEXT_PUBLIC_X=` lines of docker/Dockerfile: the one list.
pub fn declared_public(root: &Path) -> Vec<String> {
    let text = fs::read_to_string(root.join("docker/Dockerfile")).unwrap_or_default();
    parse_declared(&text)
}

fn parse_declared(dockerfile: &str) -> Vec<String> {
    dockerfile
        .lines()
        .filter_map(|l| l.trim().strip_prefix("ARG "))
        .map(|a| a.split('=').next().unwrap_or("").trim().to_string())
        .filter(|a| a.starts_with(PUBLIC))
        .collect()
}

/// A NEXT_PUBLIC_ variable set in the env file but not declared would silently be missing from
/// the prod build (it is inlined at build time): named, with the fix.
pub fn check(root: &Path, env: &EnvSource) -> Result<()> {
    let declared = declared_public(root);
    for (k, _) in &env.file.vars {
        if k.starts_with(PUBLIC) && !declared.contains(k) {
            let line = env.file.line_of(k).unwrap_or(0);
            bail!(
                "{}:{line}: `{k}` is set but not declared, so the prod build would not see it (NEXT_PUBLIC_* \
                 values are inlined by `next build`).\n  fix: add `ARG {k}=` to the builder stage of \
                 docker/Dockerfile, and `{k}: ${{{k}:-}}` to the app's build args in docker-compose.prod.yml; \
                 or, for a value the same on every machine, set it in app/.env.production (committed) instead",
                env.path.display()
            );
        }
    }
    Ok(())
}

/// The declared NEXT_PUBLIC_* values, as build arguments (empty when unset).
pub fn build_args(root: &Path, env: &EnvSource) -> Vec<(String, String)> {
    declared_public(root)
        .into_iter()
        .map(|k| {
            let v = env.get(&k).unwrap_or_default();
            (k, v)
        })
        .collect()
}

/// Where the app's variables go: `target/xtask/app.env`.
pub fn file(root: &Path) -> PathBuf {
    crate::paths::app_env(root)
}

/// Writes the app's variables (mode 0600): NEXT_PUBLIC_* and everything the stacks do not read
/// themselves. The stacks' own (ports, images, PostgreSQL's bootstrap password, ...) stay out,
/// so prod's app never holds a password in its environment.
pub fn write(root: &Path, env: &EnvSource) -> Result<PathBuf> {
    let example = fs::read_to_string(root.join(".env.example")).unwrap_or_default();
    let stacks_own = EnvFile::documented(&example);
    let mut text = String::new();
    for (k, v) in app_vars(&env.file, &stacks_own) {
        text.push_str(&format!("{k}={}\n", quote(&v)));
    }
    let path = file(root);
    fs::create_dir_all(path.parent().context("target/xtask")?)?;
    crate::util::write_atomic(&path, text.as_bytes(), 0o600)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

fn app_vars(file: &EnvFile, stacks_own: &[String]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in &file.vars {
        let own = stacks_own.contains(k) || ALSO_READ.contains(&k.as_str());
        if k.starts_with(PUBLIC) || !own {
            out.retain(|(o, _)| o != k);
            out.push((k.clone(), v.clone()));
        }
    }
    out
}

/// A value as compose's env_file reads it back unchanged: plain when it is safe, else in double
/// quotes with `\`, `"` and `$` escaped (compose turns `\\`, `\"`, `\$` back into `\`, `"`, `$`
/// and interpolates nothing else). Every character survives, `'` included.
fn quote(v: &str) -> String {
    if v.chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./:@+,".contains(c))
    {
        v.to_string()
    } else {
        let escaped = v
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('$', "\\$");
        format!("\"{escaped}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dockerfile_declares_the_public_variables_compose_passes() {
        let root = crate::util::project_root();
        let declared = declared_public(&root);
        assert!(
            declared.contains(&"NEXT_PUBLIC_APP_NAME".to_string()),
            "{declared:?}"
        );
        let compose = fs::read_to_string(root.join("docker-compose.prod.yml")).unwrap();
        for k in &declared {
            assert!(
                compose.contains(&format!("{k}: ${{{k}:-}}")),
                "prod compose passes {k}"
            );
        }
        assert_eq!(
            parse_declared("ARG BUN_IMAGE=x\nARG NEXT_PUBLIC_A=\n  ARG NEXT_PUBLIC_B\n"),
            ["NEXT_PUBLIC_A", "NEXT_PUBLIC_B"]
        );
    }

    #[test]
    fn only_the_apps_own_variables_reach_it() {
        let file = EnvFile::parse(
            "APP_PORT=3000\nPOSTGRES_PASSWORD=x\nNEXT_PUBLIC_APP_NAME=Hub\nAPP_GREETING=hi there\nAXION_IMAGES=standin\n",
        );
        let own = vec![
            "APP_PORT".to_string(),
            "POSTGRES_PASSWORD".into(),
            "NEXT_PUBLIC_APP_NAME".into(),
        ];
        assert_eq!(
            app_vars(&file, &own),
            [
                ("NEXT_PUBLIC_APP_NAME".to_string(), "Hub".to_string()),
                ("APP_GREETING".into(), "hi there".into())
            ]
        );
        assert_eq!(quote("hi there"), "\"hi there\"");
        assert_eq!(
            quote(r#"it's "q" $HOME \back"#),
            r#""it's \"q\" \$HOME \\back""#
        );
    }

    #[test]
    fn an_undeclared_public_variable_is_named_with_the_fix() {
        let env = EnvSource {
            path: ".env".into(),
            file: EnvFile::parse("APP_PORT=1\nNEXT_PUBLIC_API_URL=https://x\n"),
        };
        let e = check(&crate::util::project_root(), &env)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(".env:2: `NEXT_PUBLIC_API_URL` is set but not declared"),
            "{e}"
        );
        assert!(e.contains("ARG NEXT_PUBLIC_API_URL="), "{e}");
    }
}
