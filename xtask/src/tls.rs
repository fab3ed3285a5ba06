//! The edge's TLS certificate for the swarm stack: one PEM file holding the certificate chain
//! and its private key, which the proxy serves (a swarm secret, never in an image or an
//! environment). `deploy --tls-cert FILE` names it; otherwise `secrets/tls.pem`, made
//! self-signed (and said so) when missing. Certificates are made by the host's `openssl`, the
//! one tool every Debian machine has for this, rather than a crypto crate in the xtask.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// The PEM the proxy serves: `given`, or secrets/tls.pem (made self-signed when missing).
pub fn ensure(root: &Path, given: Option<&str>) -> Result<PathBuf> {
    let path = match given {
        Some(g) => root.join(g),
        None => crate::secrets::dir(root).join("tls.pem"),
    };
    if given.is_none() && !path.exists() {
        crate::util::note(format!(
            "deploy: no TLS certificate at {}: making a self-signed one (browsers will warn). \
             Put your certificate chain and its key there (one PEM), or pass --tls-cert FILE",
            path.display()
        ));
        self_signed(&path, "localhost")?;
    }
    check(&path)?;
    Ok(path)
}

/// A PEM the proxy can serve: a certificate and a private key, no CR.
pub fn check(path: &Path) -> Result<()> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the TLS certificate {}", path.display()))?;
    let cert = text.contains("-----BEGIN CERTIFICATE-----");
    let key = text.contains("PRIVATE KEY-----");
    if !cert || !key || text.contains('\r') {
        bail!(
            "{} is not one PEM with the certificate chain and its private key{}.\n  \
             fix: cat fullchain.pem privkey.pem > {}",
            path.display(),
            if text.contains('\r') {
                " (it has CR line ends)"
            } else {
                ""
            },
            path.display()
        );
    }
    Ok(())
}

/// A self-signed certificate (P-256, 825 days) for `name` and its key, in one PEM (0600).
pub fn self_signed(out: &Path, name: &str) -> Result<()> {
    let dir = tempdir(out)?;
    let (key, cert) = (dir.join("key.pem"), dir.join("cert.pem"));
    let result = openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-days",
        "825",
        "-subj",
        &format!("/CN={name}"),
        "-addext",
        &format!("subjectAltName=DNS:{name}"),
        "-keyout",
        &key.display().to_string(),
        "-out",
        &cert.display().to_string(),
    ])
    .and_then(|()| join_pem(&[&cert, &key], out));
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Concatenates PEM files into `out`, mode 0600 whatever the umask.
pub fn join_pem(parts: &[&Path], out: &Path) -> Result<()> {
    let mut pem = Vec::new();
    for p in parts {
        pem.extend(std::fs::read(p).with_context(|| format!("reading {}", p.display()))?);
    }
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    crate::util::write_atomic(out, &pem, 0o600)
        .with_context(|| format!("writing {}", out.display()))
}

/// `openssl <args>`; its stderr in the error.
pub fn openssl(args: &[&str]) -> Result<()> {
    let out = std::process::Command::new("openssl")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .context(
            "running openssl (Debian: apt-get install openssl), which makes TLS certificates",
        )?;
    if !out.status.success() {
        bail!(
            "openssl {}: {}",
            args[0],
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// A 0700 scratch directory beside `near` (keys are written there before they are joined).
fn tempdir(near: &Path) -> Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let parent = near.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)?;
    let dir = parent.join(format!(".tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_signed_pem_holds_a_certificate_and_its_key_only_for_its_owner() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("axion-tls-test-{}", std::process::id()));
        let pem = dir.join("tls.pem");
        self_signed(&pem, "localhost").unwrap();
        check(&pem).unwrap();
        let mode = std::fs::metadata(&pem).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        std::fs::write(
            dir.join("cert-only.pem"),
            "-----BEGIN CERTIFICATE-----\nx\n",
        )
        .unwrap();
        let e = check(&dir.join("cert-only.pem")).unwrap_err().to_string();
        assert!(
            e.contains("certificate chain and its private key") && e.contains("cat fullchain.pem"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
