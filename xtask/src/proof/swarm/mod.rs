//! `cargo xtask verify --swarm`: the prod stack on a throw-away three-node swarm (Docker in
//! Docker; the host engine never changes mode), its images through a registry, then a rolling
//! update under steady load that may not fail a single request, then a rollback of an image
//! whose health check fails, then nothing left behind. Exit 0 only if all of it holds.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};
use xshell::Shell;

use crate::{
    docker::{self, compose::words},
    engine,
    env_file::EnvSource,
    flags, http, images,
    integrity::Policy,
    lifecycle,
    proof::{
        cluster::{Cluster, REGISTRY_NAME},
        load::{Load, Summary, WORKERS},
    },
    stack::{Ports, Stack, StackKind, TIMEOUT_BUILD, log_path, prepare_files},
    swarm::{self, TIMEOUT_UPDATE},
    util::secs,
};

/// One manager, two workers: the smallest swarm where "spread over nodes" and "a worker" mean
/// something.
const NODES: usize = 3;
/// The stack's name on the throw-away swarm.
const STACK: &str = "axion";
const URLS: [&str; 2] = ["/", "/api/health"];
/// The proxy's port inside the swarm (docker-compose.swarm.yml publishes APP_PORT).
const ENTRY_PORT: u16 = 3000;

#[derive(Default)]
struct Report {
    ok: bool,
    error: Option<String>,
    phases: Vec<(String, Duration)>,
    nodes: Vec<Value>,
    pushes: Option<(Duration, Vec<String>)>,
    converged: Vec<swarm::Converged>,
    app_nodes: Vec<String>,
    first_answers: Vec<String>,
    update: Option<(Duration, Summary)>,
    rollback: Option<(Duration, String, Summary)>,
    host: Vec<(String, String)>,
    neighbour: Option<String>,
    total: Duration,
}

impl Report {
    fn phase(&mut self, name: &str, d: Duration) {
        self.phases.push((name.to_string(), d));
    }

    fn to_json(&self) -> Value {
        json!({
            "ok": self.ok,
            "error": self.error,
            "nodes": self.nodes,
            "phases": self.phases.iter().map(|(n, d)| json!({"phase": n, "seconds": d.as_secs_f64()})).collect::<Vec<_>>(),
            "push": self.pushes.as_ref().map(|(d, refs)| json!({"seconds": d.as_secs_f64(), "images": refs})),
            "converged": self.converged.iter().map(swarm::Converged::to_json).collect::<Vec<_>>(),
            "app_replica_nodes": self.app_nodes,
            "first_answers": self.first_answers,
            "rolling_update": self.update.as_ref().map(|(d, s)| json!({"seconds": d.as_secs_f64(), "load": s.to_json()})),
            "rollback": self.rollback.as_ref().map(|(d, state, s)| json!({"seconds": d.as_secs_f64(), "final_state": state, "load": s.to_json()})),
            "host_engine_after": self.host.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "neighbour_dns": self.neighbour,
            "total_seconds": self.total.as_secs_f64(),
        })
    }

    fn human(&self) -> String {
        let mut s = format!(
            "\nverify --swarm: {} in {}\n",
            if self.ok { "OK" } else { "FAILED" },
            secs(self.total)
        );
        if !self.nodes.is_empty() {
            let nodes: Vec<String> = self
                .nodes
                .iter()
                .map(|n| {
                    format!(
                        "{} {} ({})",
                        n["node"].as_str().unwrap_or(""),
                        n["ip"].as_str().unwrap_or(""),
                        n["role"].as_str().unwrap_or("")
                    )
                })
                .collect();
            s.push_str(&format!("  nodes: {}\n", nodes.join(", ")));
        }
        for (name, d) in &self.phases {
            s.push_str(&format!("  {name:<40} {}\n", secs(*d)));
        }
        if let Some((d, refs)) = &self.pushes {
            s.push_str(&format!(
                "  images pushed ({}) in {}:\n",
                refs.len(),
                secs(*d)
            ));
            for r in refs {
                s.push_str(&format!("    {r}\n"));
            }
        }
        if !self.converged.is_empty() {
            let c: Vec<String> = self.converged.iter().map(swarm::Converged::line).collect();
            s.push_str(&format!("  every task healthy: {}\n", c.join(", ")));
        }
        if !self.app_nodes.is_empty() {
            s.push_str(&format!(
                "  app replicas on: {}\n",
                self.app_nodes.join(", ")
            ));
        }
        for a in &self.first_answers {
            s.push_str(&format!("  {a}\n"));
        }
        if let Some((d, l)) = &self.update {
            s.push_str(&format!(
                "  rolling update: {} under load: {}, {:.0} req/s\n",
                secs(*d),
                l.line(),
                l.rps()
            ));
        }
        if let Some((d, state, l)) = &self.rollback {
            s.push_str(&format!(
                "  rollback of an unhealthy image: {state} after {}; under load: {}\n",
                secs(*d),
                l.line()
            ));
        }
        for (k, v) in &self.host {
            s.push_str(&format!("  host engine after: {k}: {v}\n"));
        }
        if let Some(n) = &self.neighbour {
            s.push_str(&format!("  {n}\n"));
        }
        if let Some(e) = &self.error {
            s.push_str(&format!("  error: {e}\n"));
        }
        s
    }
}

pub fn run(sh: &Shell, o: &flags::Verify) -> Result<()> {
    if o.keep || o.dry_run {
        bail!(
            "`verify --swarm` takes neither --keep nor --dry-run: its nodes are throw-away by design.\n  \
             fix: run `cargo xtask deploy` against a swarm you keep"
        );
    }
    let started = Instant::now();
    let mut report = Report::default();
    let outcome = prove(sh, o, &mut report);
    report.total = started.elapsed();
    report.ok = outcome.is_ok();
    if let Err(e) = &outcome {
        report.error = Some(format!("{e:#}"));
    }
    if o.json {
        println!("{}", serde_json::to_string_pretty(&report.to_json())?);
    } else {
        eprint!("{}", report.human());
    }
    outcome.context("verify --swarm failed")
}

fn prove(sh: &Shell, o: &flags::Verify, report: &mut Report) -> Result<()> {
    let t = Instant::now();
    let root = sh.current_dir();
    let env = EnvSource::resolve(&root)?;
    engine::preflight()?;
    crate::reap::reap(sh);
    let host_mode = swarm::membership(sh, &docker::Engine::configured())?.state;
    let set = images::choose(sh, o.images, &env)?.set;
    prepare_files(&root, StackKind::Prod, &env)?;
    let stack = Stack::throwaway(StackKind::Prod, "swarm", &env, &set, Ports::free()?);
    let project = stack.project().to_string();
    let run_image = stack.app_image();
    let mut neighbour = Neighbour::start(sh, &project)?;
    neighbour.check(sh).context("before the proof")?;
    report.phase("preflight", t.elapsed());

    let t = Instant::now();
    let log = log_path(&root, &format!("{project}-build.log"));
    let policy = Policy::new(o.cold, o.no_verify.clone());
    let built = lifecycle::build(
        sh,
        &stack.compose,
        StackKind::Prod,
        &policy,
        &["app"],
        &log,
        o.timeout_build.unwrap_or(TIMEOUT_BUILD),
    );
    built.map_err(|e| anyhow!("{e:#}\n(full build log: {})", log.display()))?;
    report.phase("build (runner)", t.elapsed());

    let t = Instant::now();
    let counts_before = host_counts(sh);
    // The run's own image goes with the cluster (and with a reaped run, by its labels).
    let mut cluster = Cluster::create(sh, &project, NODES, vec![run_image.clone()])?;
    report.phase("cluster (3 nodes + registry)", t.elapsed());
    for (what, d) in &cluster.timings {
        report.phase(&format!("  {what}"), *d);
    }
    for n in &cluster.nodes {
        report.nodes.push(json!({"node": n.hostname, "ip": n.ip, "role": if n.hostname == cluster.nodes[0].hostname { "manager, data" } else { "worker" }}));
    }

    let outcome = on_cluster(sh, o, set.standin, &run_image, &mut cluster, report);

    let t = Instant::now();
    let teardown = cluster.teardown();
    report.phase("teardown", t.elapsed());
    outcome?;
    teardown?;

    // Nothing of the run is left, the host engine's mode is what it was, and a stack beside
    // the proof still resolves its services.
    let mut left = docker::leftovers(&project)?;
    left.extend(
        cluster
            .leftover_images(sh)
            .into_iter()
            .map(|i| format!("image {i}")),
    );
    if !left.is_empty() {
        bail!(
            "the run left {} behind on the host engine: {}",
            left.len(),
            left.join(", ")
        );
    }
    let after = swarm::membership(sh, &docker::Engine::configured())?.state;
    report
        .host
        .push(("swarm state".into(), format!("{after} (was {host_mode})")));
    report.host.push((
        "run's containers, volumes, networks, images left".into(),
        "0".into(),
    ));
    // Everyone's, not only the run's: what `docker ps -a`, `network ls`, `volume ls` count.
    report.host.push((
        "containers, networks, volumes".into(),
        format!(
            "{} (before the cluster: {})",
            host_counts(sh),
            counts_before
        ),
    ));
    if after != host_mode {
        bail!("the host engine's swarm state changed from {host_mode} to {after}");
    }
    report.neighbour = Some(neighbour.check(sh).context("after the proof")?);
    neighbour.stop(sh);
    Ok(())
}

fn on_cluster(
    sh: &Shell,
    o: &flags::Verify,
    standin: bool,
    run_image: &str,
    cluster: &mut Cluster,
    report: &mut Report,
) -> Result<()> {
    // Two variants of the run's image: a new one to roll out (a new digest, the same app) and a
    // broken one (listens on another port, so its health check fails) to roll back from.
    let labels = cluster.labels();
    let variants = [
        ("update", "LABEL org.axion-hub.swarm-proof=update\n"),
        (
            "broken",
            "ENV PORT=3999\nLABEL org.axion-hub.swarm-proof=broken\n",
        ),
    ];
    for (name, lines) in variants {
        let tag = format!("{run_image}-{name}");
        let mut args = words(&["build", "--quiet", "-t", &tag]);
        args.extend(labels.iter().cloned());
        args.push("-".into());
        docker::expr(&args)
            .stdin_bytes(format!("FROM {run_image}\n{lines}"))
            .stdout_null()
            .stderr_capture()
            .run()
            .with_context(|| format!("building the {name} variant of {run_image}"))?;
        cluster.made.images.push(tag);
    }

    // The first deployment and the rolling update are `cargo xtask deploy` itself, run as a
    // person runs it: this host pushes to the registry on loopback, the nodes pull it by its
    // name on their network, the manager is node1's engine (its socket).
    let manager = cluster.manager();
    let manager_host = manager.address().unwrap_or_default().to_string();
    let deploy = |image: &str| -> Result<Value> {
        let mut args = words(&[
            "deploy",
            "--json",
            "--stack",
            STACK,
            "--image",
            image,
            "--registry",
            &cluster.push_prefix,
            "--node-registry",
            REGISTRY_NAME,
            "--manager",
            &manager_host,
        ]);
        // The images this run resolved to, named: the children need not probe (or say) again.
        args.push(if standin { "--standin" } else { "--upstream" }.into());
        let mut child = duct::cmd(std::env::current_exe()?, &args)
            .stdout_capture()
            .unchecked();
        if o.json {
            child = child.stderr_null();
        }
        let child = child.start().context("running cargo xtask deploy")?;
        // A signal to this run (SIGTERM, SIGHUP) ends the child too, then the teardown runs.
        let out = loop {
            if let Some(out) = child.try_wait()? {
                break out.clone();
            }
            if let Err(e) = crate::signals::check() {
                let _ = child.kill();
                return Err(e);
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        if !out.status.success() {
            bail!("cargo xtask deploy --image {image} failed (its output is above)");
        }
        serde_json::from_slice(&out.stdout).context("reading deploy's JSON report")
    };

    let t = Instant::now();
    let first = deploy(run_image)?;
    report.phase("deploy until every task healthy", t.elapsed());
    report.pushes = Some((
        Duration::from_secs_f64(first["seconds"]["push"].as_f64().unwrap_or(0.0)),
        first["images"]
            .as_object()
            .map(|m| {
                m.values()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default(),
    ));
    report.converged = first["converged"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(swarm::Converged::from_json)
        .collect();

    let app_service = format!("{STACK}_app");
    let mut on = swarm::task_nodes(sh, &manager, &app_service)?;
    on.sort();
    report.app_nodes = on.clone();
    on.dedup();
    if on.len() < 2 {
        bail!(
            "the app's replicas all run on {}: the proof needs them spread over nodes",
            on.join(", ")
        );
    }

    no_secret_in_the_stack(sh, &manager)?;

    // An image through the registry by itself: redis (db's node has it) pulled by a worker.
    if let Some(redis) = first["images"]["REDIS_IMAGE"].as_str() {
        let worker = &cluster.nodes[NODES - 1];
        let t = Instant::now();
        worker.target().read(sh, &["pull", "--quiet", redis])?;
        let size = worker
            .target()
            .read(sh, &["image", "inspect", "--format", "{{.Size}}", redis])?;
        let mb = size.trim().parse::<u64>().unwrap_or(0) / 1_000_000;
        report.phase(
            &format!("pull of redis ({mb} MB) by {}", worker.hostname),
            t.elapsed(),
        );
    }

    // Every node's entry point answers both URLs (the proxy has found the app's tasks: DNS,
    // then its own health check).
    let t = Instant::now();
    let entries = cluster.entry_points(ENTRY_PORT)?;
    for e in &entries {
        for url in URLS {
            let r = crate::util::poll(
                &format!("GET http://{e}{url} to answer 200"),
                Duration::from_secs(60),
                Duration::from_millis(100),
                || match http::get_at(*e, url, Duration::from_secs(10)) {
                    Ok(r) if r.status == 200 => Ok(Some(r)),
                    _ => Ok(None),
                },
            )?;
            report.first_answers.push(format!(
                "GET http://{e}{url}: {} after {}",
                r.describe(),
                secs(t.elapsed())
            ));
        }
    }
    report.phase("every entry point answers", t.elapsed());

    // The rolling update: `deploy` of a new image, under a steady load on every entry point.
    let load = Load::start(&entries, &URLS, WORKERS);
    let t = Instant::now();
    let rolled = deploy(&format!("{run_image}-update"));
    let summary = load.finish();
    let rolled = rolled?;
    let took = t.elapsed();
    let update = swarm::service_image(sh, &manager, &app_service)?;
    let rolling = rolled["rolling_update_seconds"]
        .as_f64()
        .map(Duration::from_secs_f64);
    report.update = Some((rolling.unwrap_or(took), summary.clone()));
    let Some(rolling) = rolling else {
        bail!("deploy of a new image did no rolling update");
    };
    if update == first["images"]["AXION_APP_IMAGE"].as_str().unwrap_or("") {
        bail!("after the update the app still runs {update}");
    }
    summary.no_failures("the rolling update")?;
    report.phase("deploy of a new image (rolling update)", took);
    report.phase("  of which the update itself", rolling);

    // A broken variant (listens on another port: its health check fails) in the registry.
    let push_prefix = cluster.push_prefix.clone();
    let rev = images::revision(sh);
    let broken = swarm::push(
        sh,
        &[(
            format!("{run_image}-broken"),
            format!("axion-hub/app:{rev}-broken"),
        )],
        &push_prefix,
        REGISTRY_NAME,
        &mut cluster.made.images,
    )?
    .remove(0);

    // The rollback path: an image whose health check fails. The proof shortens that check's
    // start period so the failure shows in seconds (the stack's own is 60 s).
    let before = swarm::update_status(sh, &manager, &app_service)?;
    let load = Load::start(&entries, &URLS, WORKERS);
    let asked = manager.read(
        sh,
        &[
            "service",
            "update",
            "--detach=true",
            "--quiet",
            "--image",
            &broken,
            "--health-start-period",
            "3s",
            "--health-interval",
            "1s",
            "--health-retries",
            "3",
            &app_service,
        ],
    );
    let waited =
        asked.and_then(|_| swarm::wait_update(sh, &manager, &app_service, &before, TIMEOUT_UPDATE));
    let summary = load.finish();
    let (status, took) = waited?;
    report.rollback = Some((took, status.state.clone(), summary.clone()));
    if status.state != "rollback_completed" {
        bail!(
            "an image whose health check fails did not roll back: update ended {} ({})",
            status.state,
            status.message
        );
    }
    let now = swarm::service_image(sh, &manager, &app_service)?;
    if now != update {
        bail!("after the rollback the app runs {now}, not {update}");
    }
    summary.no_failures("the rollback")?;
    report.phase("failed update + rollback", took);
    Ok(())
}

/// `3 containers, 5 networks, 6 volumes` on the host engine.
/// No password in the rendered stack file or in any service's definition (the app builds its
/// URLs from the secret files when it starts).
fn no_secret_in_the_stack(sh: &Shell, manager: &docker::Engine) -> Result<()> {
    let file = crate::stack::work_dir(&crate::util::project_root(), "deploy")
        .join(format!("{STACK}.stack.json"));
    let mut seen =
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    let names = manager.read(sh, &["stack", "services", "--format", "{{.Name}}", STACK])?;
    let mut args = vec!["service", "inspect"];
    args.extend(names.split_whitespace());
    seen.push_str(&manager.read(sh, &args)?);
    let leaked = crate::secrets::leaked_in(&crate::util::project_root(), &seen);
    if !leaked.is_empty() {
        bail!(
            "the secrets {leaked:?} are readable in {} or `docker service inspect`",
            file.display()
        );
    }
    Ok(())
}

fn host_counts(sh: &Shell) -> String {
    let count = |args: &[&str]| {
        docker::cmd(sh, &words(args))
            .quiet()
            .read()
            .map_or(0, |o| o.lines().count())
    };
    format!(
        "{} containers, {} networks, {} volumes",
        count(&["ps", "-aq"]),
        count(&["network", "ls", "-q"]),
        count(&["volume", "ls", "-q"])
    )
}

/// A stack running beside the proof on the host engine, whose name resolution must survive it:
/// the dev stack when it runs, else two containers on a network of their own.
struct Neighbour {
    /// `container`, and the names it must resolve.
    probe: (String, Vec<&'static str>),
    what: String,
    made: Vec<String>,
    network: Option<String>,
}

impl Neighbour {
    fn start(sh: &Shell, project: &str) -> Result<Neighbour> {
        let dev = docker::containers(sh, &StackKind::Dev.project()).unwrap_or_default();
        if let Some(app) = dev
            .iter()
            .find(|c| c.service == "app" && c.status == "running")
        {
            return Ok(Neighbour {
                probe: (app.id.clone(), vec!["db", "redis"]),
                what: "the dev stack".into(),
                made: vec![],
                network: None,
            });
        }
        let net = format!("{project}-neighbour");
        let base = format!("{}/debian:trixie", images::STANDIN);
        let owner = format!(
            "{}={}",
            crate::owner::LABEL,
            crate::owner::Owner::current().label()
        );
        // A project of its own: the proof's leftover check must not count it.
        let proj = format!("com.docker.compose.project={net}");
        docker::cmd(
            sh,
            &words(&[
                "network", "create", "--label", &owner, "--label", &proj, &net,
            ]),
        )
        .quiet()
        .ignore_stdout()
        .run()?;
        let mut n = Neighbour {
            probe: (format!("{net}-app"), vec!["db"]),
            what: "a two-container stack beside it (no dev stack was running)".into(),
            made: vec![],
            network: Some(net.clone()),
        };
        for (name, alias) in [("db", "db"), ("app", "app")] {
            let container = format!("{net}-{name}");
            docker::cmd(
                sh,
                &words(&[
                    "run",
                    "-d",
                    "--rm",
                    "--label",
                    &owner,
                    "--label",
                    &proj,
                    "--name",
                    &container,
                    "--network",
                    &net,
                    "--network-alias",
                    alias,
                    &base,
                    "sleep",
                    "infinity",
                ]),
            )
            .quiet()
            .ignore_stdout()
            .run()?;
            n.made.push(container);
        }
        Ok(n)
    }

    /// `getent hosts` of each name inside the probe container.
    fn check(&self, sh: &Shell) -> Result<String> {
        let (container, names) = &self.probe;
        for name in names {
            let out = docker::exec(sh, container, &["getent", "hosts", name])?;
            if !out.status.success() {
                bail!("{}: `{name}` does not resolve any more", self.what);
            }
        }
        let verb = if names.len() == 1 {
            "resolves"
        } else {
            "resolve"
        };
        Ok(format!("{}: {} still {verb}", self.what, names.join(", ")))
    }

    fn stop(&mut self, sh: &Shell) {
        if !self.made.is_empty() {
            let mut a = words(&["rm", "--force"]);
            a.append(&mut self.made);
            let _ = docker::cmd(sh, &a)
                .quiet()
                .ignore_status()
                .ignore_stdout()
                .ignore_stderr()
                .run();
        }
        if let Some(n) = self.network.take() {
            let _ = docker::cmd(sh, &words(&["network", "rm", &n]))
                .quiet()
                .ignore_status()
                .ignore_stdout()
                .ignore_stderr()
                .run();
        }
    }
}

impl Drop for Neighbour {
    fn drop(&mut self) {
        if let Ok(sh) = Shell::new() {
            self.stop(&sh);
        }
    }
}
