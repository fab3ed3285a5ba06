//! What `deploy`'s flags and the target swarm must be before anything is built or pushed,
//! each refusal naming its fix.

use anyhow::{Result, bail};

use crate::swarm::Membership;

/// Swarm names: letters, digits, `_` and `-`, starting with a letter or digit.
pub fn check_stack_name(name: &str) -> Result<()> {
    let ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && name.len() <= 40;
    if !ok {
        bail!(
            "`{name}` is not a stack name: use letters, digits, `-` and `_` (at most 40, starting with a letter or digit)"
        );
    }
    Ok(())
}

/// What `docker -H` takes; `tcp://` only with TLS verification on (`tls`: DOCKER_TLS_VERIFY=1),
/// since a plain engine port hands root on that host to anyone who reaches it.
pub fn check_manager(m: &str, tls: bool) -> Result<()> {
    if !["tcp://", "ssh://", "unix://"]
        .iter()
        .any(|p| m.starts_with(p))
    {
        bail!(
            "`--manager {m}` is not an engine address: use ssh://USER@HOST, tcp://HOST:PORT (with TLS) or unix:///PATH"
        );
    }
    if m.starts_with("tcp://") && !tls {
        bail!(
            "`--manager {m}` without TLS: anyone who reaches that port is root on the manager, and the \
             deploy's traffic is in clear.\n  fix: --manager ssh://USER@HOST, or DOCKER_TLS_VERIFY=1 with \
             DOCKER_CERT_PATH holding the client certificate and the CA the engine's is signed by"
        );
    }
    Ok(())
}

/// `HOST:PORT` (or `HOST`), no scheme, no path.
pub fn check_registry(r: &str) -> Result<()> {
    let bad = r.is_empty() || r.contains("://") || r.contains('/') || r.contains(' ');
    let port_ok = r
        .rsplit_once(':')
        .is_none_or(|(_, p)| p.parse::<u16>().is_ok_and(|p| p > 0));
    if bad || !port_ok {
        bail!(
            "`--registry {r}` is not HOST:PORT (e.g. registry.example.com:5000, without https:// or a path)"
        );
    }
    Ok(())
}

pub fn not_in_a_swarm(m: &Membership) -> String {
    if m.state == "active" {
        return "this engine is a swarm worker; stacks are deployed from a manager.\n  \
                fix: build here, deploy there: cargo xtask deploy --manager ssh://USER@MANAGER --registry HOST:PORT"
            .into();
    }
    format!(
        "this engine is not part of a swarm (swarm state: {}).\n  \
         fix: deploy to a manager of your swarm: cargo xtask deploy --manager ssh://USER@MANAGER --registry HOST:PORT\n  \
         or make this engine a one-node swarm: cargo xtask deploy --init (switching an engine into swarm \
         mode can break name resolution in compose stacks running on it until they are recreated)",
        if m.state.is_empty() {
            "unknown"
        } else {
            &m.state
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_names_and_registries_are_checked() {
        check_stack_name("axion").unwrap();
        check_stack_name("axion-hub_2").unwrap();
        assert!(check_stack_name("-x").is_err());
        assert!(check_stack_name("a b").is_err());
        check_registry("registry.example.com:5000").unwrap();
        check_registry("10.0.0.5:5000").unwrap();
        check_registry("ghcr.io").unwrap();
        let e = check_registry("https://r:5000").unwrap_err().to_string();
        assert!(e.contains("HOST:PORT"), "{e}");
        assert!(check_registry("r:99999").is_err());
        assert!(check_registry("r:5000/x").is_err());
        check_manager("ssh://deploy@10.0.0.1", false).unwrap();
        check_manager("tcp://10.0.0.1:2376", true).unwrap();
        let e = check_manager("tcp://10.0.0.1:2375", false)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("without TLS") && e.contains("DOCKER_TLS_VERIFY=1"),
            "{e}"
        );
        let e = check_manager("10.0.0.1", true).unwrap_err().to_string();
        assert!(e.contains("ssh://USER@HOST, tcp://HOST:PORT"), "{e}");
    }

    #[test]
    fn the_refusal_names_the_fix() {
        let m = Membership {
            state: "inactive".into(),
            manager: false,
            nodes: 0,
        };
        let t = not_in_a_swarm(&m);
        assert!(t.contains("swarm state: inactive"), "{t}");
        assert!(
            t.contains("--init") && t.contains("--manager ssh://"),
            "{t}"
        );
        let w = not_in_a_swarm(&Membership {
            state: "active".into(),
            manager: false,
            nodes: 3,
        });
        assert!(w.contains("worker"), "{w}");
    }
}
