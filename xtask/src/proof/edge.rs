//! The swarm proof's TLS edge: a throw-away CA and a certificate for the nodes (by the name
//! EDGE_NAME and by each node's address), and a TLS client that verifies them: a haproxy
//! container on the cluster network that takes plain HTTP on loopback and speaks HTTPS to each
//! node with `verify required` against that CA. The load and the checks go through it, so every
//! request of the proof crosses the edge's TLS with verification on; it never retries, so a
//! failure there is counted.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};

use crate::{
    docker::{resources, run},
    proof::cluster::Cluster,
    tls::{join_pem, openssl},
};

/// The name the certificate is for (and the client asks for by SNI).
pub const EDGE_NAME: &str = "axion.test";
/// Where the nodes publish HTTPS (docker-compose.swarm.yml's HTTPS_PORT default).
pub const HTTPS_PORT: u16 = 3443;

/// A new P-256 key, unencrypted.
const EC: [&str; 5] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
];

/// The CA's certificate, and the edge's PEM (certificate and key) `deploy --tls-cert` serves.
pub struct Material {
    pub dir: PathBuf,
    pub ca: PathBuf,
    pub edge_pem: PathBuf,
}

impl Material {
    /// A CA (one day) and a certificate it signs for EDGE_NAME and every node address.
    pub fn make(dir: &Path, ips: &[String]) -> Result<Material> {
        std::fs::create_dir_all(dir)?;
        let p = |f: &str| dir.join(f).display().to_string();
        let ca = [
            &["req", "-x509"][..],
            &EC,
            &["-days", "1", "-subj", "/CN=axion swarm proof CA"],
        ];
        openssl(
            &[
                ca.concat(),
                vec!["-keyout", &p("ca.key"), "-out", &p("ca.pem")],
            ]
            .concat(),
        )?;
        let m = Material {
            dir: dir.to_path_buf(),
            ca: dir.join("ca.pem"),
            edge_pem: dir.join("edge.pem"),
        };
        m.issue("edge", ips)?;
        Ok(m)
    }

    /// A renewed certificate (a new key, signed by the same CA) in a PEM of its own: what a
    /// person's certificate renewal gives `deploy --tls-cert`.
    pub fn renew(&self, ips: &[String]) -> Result<PathBuf> {
        self.issue("renewed", ips)
    }

    /// A key and a certificate the CA signs for EDGE_NAME and every node address, joined in
    /// `<name>.pem`.
    fn issue(&self, name: &str, ips: &[String]) -> Result<PathBuf> {
        let p = |f: &str| self.dir.join(f).display().to_string();
        let subject = format!("/CN={EDGE_NAME}");
        let csr = [&["req"][..], &EC, &["-subj", &subject]].concat();
        let (key, req, crt) = (
            p(&format!("{name}.key")),
            p(&format!("{name}.csr")),
            p(&format!("{name}.crt")),
        );
        openssl(&[csr, vec!["-keyout", &key, "-out", &req]].concat())?;
        let sans: Vec<String> = std::iter::once(format!("DNS:{EDGE_NAME}"))
            .chain(ips.iter().map(|ip| format!("IP:{ip}")))
            .collect();
        let ext = format!(
            "subjectAltName={}\nbasicConstraints=CA:FALSE\n",
            sans.join(",")
        );
        std::fs::write(self.dir.join("edge.ext"), ext)?;
        openssl(&[
            "x509",
            "-req",
            "-in",
            &req,
            "-CA",
            &p("ca.pem"),
            "-CAkey",
            &p("ca.key"),
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            &p("edge.ext"),
            "-out",
            &crt,
        ])?;
        let pem = self.dir.join(format!("{name}.pem"));
        join_pem(&[Path::new(&crt), Path::new(&key)], &pem)?;
        Ok(pem)
    }
}

impl Drop for Material {
    /// The keys never outlive the run.
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts the verifying TLS client on the cluster network (one loopback port per node, in
/// node order) and returns those loopback addresses. The container goes with the cluster. It
/// waits longer than the stack's proxy may for three tries (100 s against 30 s each), so what a
/// client sees is what the stack answers, never this client's own timeout (the node-loss
/// drill's retried GETs).
pub fn start_client(cluster: &mut Cluster, m: &Material, image: &str) -> Result<Vec<SocketAddr>> {
    let mut cfg = String::from(
        "global\n    maxconn 1024\n\
         defaults\n    mode http\n    timeout connect 2s\n    timeout client 100s\n    timeout server 100s\n    \
         retries 0\n    http-reuse never\n",
    );
    for (i, n) in cluster.nodes.iter().enumerate() {
        cfg.push_str(&format!(
            "listen node{i}\n    bind :{}\n    server {} {}:{HTTPS_PORT} ssl verify required ca-file /etc/axion/ca.pem \
             verifyhost {EDGE_NAME} sni str({EDGE_NAME})\n",
            9001 + i,
            n.hostname,
            n.ip
        ));
    }
    let cfg_path = m.dir.join("client.cfg");
    std::fs::write(&cfg_path, cfg)?;
    let name = format!("{}-tls-client", cluster.project);
    let client = run::Detached {
        name: name.clone(),
        image: image.to_string(),
        command: vec![
            "haproxy".into(),
            "-f".into(),
            "/etc/axion/client.cfg".into(),
        ],
        network: Some(cluster.project.clone()),
        publish: (0..cluster.nodes.len())
            .map(|i| format!("127.0.0.1::{}", 9001 + i))
            .collect(),
        volumes: vec![
            format!("{}:/etc/axion/client.cfg:ro", cfg_path.display()),
            format!("{}:/etc/axion/ca.pem:ro", m.ca.display()),
        ],
        labels: cluster.labels(),
        ..Default::default()
    };
    cluster.made.containers.push(name.clone());
    run::start_all(&[client])?;
    (0..cluster.nodes.len())
        .map(|i| {
            let at = resources::published_at(&name, &format!("{}/tcp", 9001 + i))
                .with_context(|| format!("the TLS client's port for node {}", i + 1))?;
            Ok(SocketAddr::from(([127, 0, 0, 1], at.port())))
        })
        .collect()
}
