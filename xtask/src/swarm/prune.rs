//! What a stack's secrets and configs leave behind: each is named after its content
//! (`<stack>_tls.pem-1a2b3c4d`), so every rotation makes a new one and the old stays. After a
//! successful deploy, one that no service's spec nor previous spec names is removed: the
//! previous spec is what `docker service rollback` and swarm's own rollback of a failed update
//! go back to, so its secrets stay. `deploy --rollback` puts a release's images back with
//! today's secrets (a rotated password must not come back), so it needs no old one. Release
//! records (`history`) are not touched here.

use std::collections::BTreeSet;

use anyhow::Result;
use serde_json::Value;
use xshell::Shell;

use super::history::RELEASE_LABEL;
use crate::docker::Engine;

/// A secret or config of the stack that nothing needs: (`secret`|`config`, name).
pub type Unneeded = (&'static str, String);

/// The stack's secrets and configs that no service's spec or previous spec names.
pub fn unneeded(sh: &Shell, target: &Engine, stack: &str) -> Result<Vec<Unneeded>> {
    let services = super::inspect_stack_services(sh, target, stack).unwrap_or_default();
    let needed = named_by_services(&services);
    let mut left = Vec::new();
    for kind in ["secret", "config"] {
        let out = target.read(
            sh,
            &[
                kind,
                "ls",
                "--filter",
                &format!("label=com.docker.stack.namespace={stack}"),
                "--format",
                "{{.Name}}\t{{.Labels}}",
            ],
        )?;
        left.extend(
            out.lines()
                .filter_map(|l| l.split_once('\t').or(Some((l, ""))))
                .filter(|(_, labels)| !labels.contains(RELEASE_LABEL))
                .map(|(name, _)| name.trim())
                .filter(|name| !name.is_empty() && !needed.contains(&format!("{kind} {name}")))
                .map(|name| (kind, name.to_string())),
        );
    }
    Ok(left)
}

/// Removes what `unneeded` lists: what was removed, `secret NAME` / `config NAME`. One that a
/// service took meanwhile stays (the engine refuses to remove it).
pub fn prune(sh: &Shell, target: &Engine, stack: &str) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for (kind, name) in unneeded(sh, target, stack)? {
        if target.read(sh, &[kind, "rm", &name]).is_ok() {
            removed.push(format!("{kind} {name}"));
        }
    }
    Ok(removed)
}

/// The secrets and configs only a service's previous spec names: kept for `docker service
/// rollback` (`secret NAME`, `config NAME`).
pub fn kept_for_rollback(sh: &Shell, target: &Engine, stack: &str) -> Result<Vec<String>> {
    let inspect = super::inspect_stack_services(sh, target, stack)?;
    let services: Vec<Value> = serde_json::from_str(&inspect).unwrap_or_default();
    let current = named_in(&services, "Spec");
    Ok(named_in(&services, "PreviousSpec")
        .difference(&current)
        .cloned()
        .collect())
}

fn named_in(services: &[Value], which: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for s in services {
        let c = &s[which]["TaskTemplate"]["ContainerSpec"];
        for (list, key, kind) in [
            ("Secrets", "SecretName", "secret"),
            ("Configs", "ConfigName", "config"),
        ] {
            for item in c[list].as_array().into_iter().flatten() {
                if let Some(n) = item[key].as_str() {
                    names.insert(format!("{kind} {n}"));
                }
            }
        }
    }
    names
}

/// Every secret and config the services' specs and previous specs use (`secret NAME`,
/// `config NAME`; from `docker service inspect` output).
pub fn named_by_services(inspect: &str) -> BTreeSet<String> {
    let services: Vec<Value> = serde_json::from_str(inspect).unwrap_or_default();
    let mut names = named_in(&services, "Spec");
    names.extend(named_in(&services, "PreviousSpec"));
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_of_the_spec_and_the_previous_spec_are_needed() {
        let inspect = r#"[
          {"Spec": {"TaskTemplate": {"ContainerSpec": {
             "Secrets": [{"SecretName": "axion_tls.pem-2"}],
             "Configs": [{"ConfigName": "axion_proxy.cfg-1"}]}}},
           "PreviousSpec": {"TaskTemplate": {"ContainerSpec": {
             "Secrets": [{"SecretName": "axion_tls.pem-1"}]}}}},
          {"Spec": {"TaskTemplate": {"ContainerSpec": {}}}}
        ]"#;
        let names: Vec<String> = named_by_services(inspect).into_iter().collect();
        assert_eq!(
            names,
            [
                "config axion_proxy.cfg-1",
                "secret axion_tls.pem-1",
                "secret axion_tls.pem-2"
            ]
        );
        assert!(named_by_services("").is_empty());
    }
}
