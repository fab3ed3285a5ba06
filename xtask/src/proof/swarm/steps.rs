//! The proof on a formed cluster, step by step: the first deploy, its spread and its secrets,
//! a pull through the registry, every entry point answering, the update to a real second release
//! under load, the rollback of an image whose health check fails, and `deploy` back to the first
//! release under the same load. `deploy` runs in-process, exactly the
//! function `cargo xtask deploy` runs.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use xshell::Shell;

use super::{
    ENTRY_PORT, NODES, Report, STACK, URLS,
    release::{self, Known},
};
use crate::{
    cmd::deploy::{Release, deploy},
    docker::{self, Engine},
    flags::{self, ImageChoice},
    http, images,
    proof::{
        cluster::{Cluster, REGISTRY_NAME},
        edge::{self, HTTPS_PORT},
        load::{Load, Summary, WORKERS},
    },
    swarm::{self, TIMEOUT_UPDATE},
    util::secs,
};

/// What every step needs: the run's shell, flags and images.
pub struct Run<'a> {
    pub sh: &'a Shell,
    pub o: &'a flags::Verify,
    pub standin: bool,
    pub image: String,
    /// The second release, building (`second`).
    pub second: &'a super::second::Pending,
    /// The edge proxy's image on this host (the proof's TLS client runs it too).
    pub proxy: String,
}

pub fn on_cluster(run: &Run, cluster: &mut Cluster, report: &mut Report) -> Result<()> {
    build_broken(run, cluster)?;
    let ips: Vec<String> = cluster.nodes.iter().map(|n| n.ip.clone()).collect();
    let dir = crate::paths::work_dir(
        &crate::util::project_root(),
        &format!("{}-edge", cluster.project),
    );
    let tls = edge::Material::make(&dir, &ips)?;
    let t = Instant::now();
    let first = deploy_image(run, cluster, &tls, &run.image)?;
    report.phase("deploy until every task healthy", t.elapsed());
    report.pushes = Some((
        first.push,
        first.images.env().map(|(_, v)| v.to_string()).to_vec(),
    ));
    report.converged = first.converged.clone();

    let manager = cluster.manager();
    spread_over_nodes(run.sh, &manager, report)?;
    super::operate::status_and_logs(run, cluster, &mut report.operate)?;
    no_secret_in_the_stack(run.sh, &manager)?;
    pull_by_a_worker(run.sh, cluster, &first.images.redis, report)?;
    let entries = edge::start_client(cluster, &tls, &run.proxy)?;
    every_entry_answers(cluster, &entries, report)?;
    the_edge_redirects_and_pins_https(cluster, &entries, report)?;
    let (second, built_in) = run.second.wait()?;
    report.phase("build (second release, beside the first deploy)", built_in);
    let releases = [
        &Known::of(run.sh, &run.image)?,
        &Known::of(run.sh, &second)?,
    ];
    let updated = rolling_update(run, cluster, &tls, &entries, releases, report)?;
    rollback(run, cluster, &entries, &updated, report)?;
    let app = back_to_first(run, cluster, &tls, &entries, releases, report)?;
    let t = Instant::now();
    super::operate::renewal(run, cluster, &tls, &app, &mut report.operate)?;
    report.phase("certificate renewed + deploy", t.elapsed());
    let t = Instant::now();
    let drilled = super::drills::run_all(run, cluster, &entries, releases[0], &mut report.faults);
    report.phase("fault drills", t.elapsed());
    drilled
}

/// A variant of the run's image that listens on another port, so its health check fails: the
/// update to roll back from.
fn build_broken(run: &Run, cluster: &mut Cluster) -> Result<()> {
    let tag = format!("{}-broken", run.image);
    let dockerfile = format!(
        "FROM {}\nENV PORT=3999\nLABEL org.axion-hub.swarm-proof=broken\n",
        run.image
    );
    docker::build_from_stdin(&tag, &cluster.labels(), &dockerfile)
        .with_context(|| format!("building the broken variant of {}", run.image))?;
    cluster.made.images.push(tag);
    Ok(())
}

/// `deploy` as a person runs it: this host pushes to the registry on loopback, the nodes pull
/// it by its name on their network, the manager is node1's engine (its socket).
fn deploy_image(
    run: &Run,
    cluster: &Cluster,
    tls: &edge::Material,
    image: &str,
) -> Result<Release> {
    deploy_with(run, cluster, &tls.edge_pem, Some(image), false)
}

/// `deploy` with `--image` (else, with `rollback`, `--rollback`) and `--tls-cert tls_pem`.
pub fn deploy_with(
    run: &Run,
    cluster: &Cluster,
    tls_pem: &std::path::Path,
    image: Option<&str>,
    rollback: bool,
) -> Result<Release> {
    let o = flags::Deploy {
        stack: Some(STACK.into()),
        image: image.map(String::from),
        rollback,
        tls_cert: Some(tls_pem.display().to_string()),
        registry: Some(cluster.push_prefix.clone()),
        node_registry: Some(REGISTRY_NAME.into()),
        manager: cluster.manager().address().map(String::from),
        json: run.o.json,
        // The images this run resolved to: deploy need not probe (or say) again.
        images: if run.standin {
            ImageChoice::Standin
        } else {
            ImageChoice::Upstream
        },
        ..Default::default()
    };
    let what = match image {
        Some(i) => format!("deploy --image {i}"),
        None => "deploy --rollback".to_string(),
    };
    deploy(run.sh, &o).with_context(|| what)
}

fn spread_over_nodes(sh: &Shell, manager: &Engine, report: &mut Report) -> Result<()> {
    let mut on = swarm::task_nodes(sh, manager, &format!("{STACK}_app"))?;
    on.sort();
    report.app_nodes = on.clone();
    on.dedup();
    if on.len() < 2 {
        bail!(
            "the app's replicas all run on {}: the proof needs them spread over nodes",
            on.join(", ")
        );
    }
    Ok(())
}

/// No password in the rendered stack file or in any service's definition (the app builds its
/// URLs from the secret files when it starts).
fn no_secret_in_the_stack(sh: &Shell, manager: &Engine) -> Result<()> {
    let root = crate::util::project_root();
    let file = crate::paths::stack_file(&root, STACK);
    let mut seen =
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    seen.push_str(&swarm::inspect_stack_services(sh, manager, STACK)?);
    let leaked = crate::secrets::leaked_in(&root, &seen);
    if !leaked.is_empty() {
        bail!(
            "the secrets {leaked:?} are readable in {} or `docker service inspect`",
            file.display()
        );
    }
    Ok(())
}

/// An image through the registry by itself: redis (db's node has it) pulled by a worker.
fn pull_by_a_worker(sh: &Shell, cluster: &Cluster, redis: &str, report: &mut Report) -> Result<()> {
    let worker = &cluster.nodes[NODES - 1];
    let t = Instant::now();
    let size = swarm::pull(sh, &worker.target(), redis)?;
    report.phase(
        &format!(
            "pull of redis ({} MB) by {}",
            size / 1_000_000,
            worker.hostname
        ),
        t.elapsed(),
    );
    Ok(())
}

/// Every node's entry point answers every URL over verified HTTPS (the proxy has found the
/// app's tasks: DNS, then its own health check).
fn every_entry_answers(
    cluster: &Cluster,
    entries: &[SocketAddr],
    report: &mut Report,
) -> Result<()> {
    let t = Instant::now();
    for (node, e) in cluster.nodes.iter().zip(entries) {
        for url in URLS {
            let r = crate::util::poll(
                &format!("GET https://{}:{HTTPS_PORT}{url} to answer 200", node.ip),
                Duration::from_secs(60),
                Duration::from_millis(100),
                || match http::get_at(*e, url, Duration::from_secs(10)) {
                    Ok(r) if r.status == 200 => Ok(Some(r)),
                    _ => Ok(None),
                },
            )?;
            let line = format!(
                "GET https://{}:{HTTPS_PORT}{url} (verified): {} after {}",
                node.ip,
                r.describe(),
                secs(t.elapsed())
            );
            report.first_answers.push(line);
        }
    }
    report.phase("every entry point answers", t.elapsed());
    Ok(())
}

/// HTTP on every node answers 308 to the same URL over HTTPS; HTTPS sends HSTS.
fn the_edge_redirects_and_pins_https(
    cluster: &Cluster,
    entries: &[SocketAddr],
    report: &mut Report,
) -> Result<()> {
    let http_entries = cluster.entry_points(ENTRY_PORT)?;
    for (node, (plain, tls)) in cluster.nodes.iter().zip(http_entries.iter().zip(entries)) {
        let r = http::get_at(*plain, "/api/health?x=1", Duration::from_secs(10))
            .map_err(|e| anyhow::anyhow!("GET http://{plain}/api/health: {e}"))?;
        let want = format!("https://{}:{HTTPS_PORT}/api/health?x=1", node.ip);
        if r.status != 308 || r.location.as_deref() != Some(want.as_str()) {
            bail!(
                "GET http://{plain}/api/health?x=1 answered {}, not 308 to {want}",
                r.describe()
            );
        }
        let r = http::get_at(*tls, "/api/health", Duration::from_secs(10))
            .map_err(|e| anyhow::anyhow!("GET https://{}:{HTTPS_PORT}/api/health: {e}", node.ip))?;
        let hsts = r
            .header("strict-transport-security")
            .unwrap_or_default()
            .to_string();
        if !hsts.contains("max-age=") {
            bail!(
                "https://{}:{HTTPS_PORT} sends no Strict-Transport-Security header",
                node.ip
            );
        }
        report.edge.push(format!(
            "{}: http -> 308 {want}; https verified against the run's CA; HSTS `{hsts}`",
            node.hostname
        ));
    }
    Ok(())
}

/// How a move ended: what the app runs after it, the load's figures, how long it took (the
/// whole deploy, and the update itself).
struct Moved {
    image: String,
    /// The app image deployed, as this host names it (the carried one when assets were).
    local: String,
    /// The release the deploy recorded.
    recorded: Option<crate::swarm::history::Record>,
    load: Summary,
    took: Duration,
    rolling: Duration,
}

/// `deploy` of `to` under load on every entry point, while clients of `from` (the running
/// release) hold its pages (see `release`). Fails on any failure count.
fn move_release(
    run: &Run,
    cluster: &mut Cluster,
    tls: &edge::Material,
    entries: &[SocketAddr],
    (what, from, to): (&str, &Known, &Known),
    rollback: bool,
    report: &mut Report,
) -> Result<Moved> {
    let sh = run.sh;
    let app = format!("{STACK}_app");
    let running = swarm::service_image(sh, &cluster.manager(), &app)?;
    let release::Before {
        mut fig,
        held,
        pages,
        chunks,
        run_id,
    } = release::before(entries, what, from, to);
    let during = release::During::start(entries, &held, &pages, &chunks, &run_id)?;
    let t = Instant::now();
    // `deploy --rollback` finds `to` in the swarm's history; otherwise `deploy --image`.
    let rolled = match rollback {
        true => deploy_with(run, cluster, &tls.edge_pem, None, true),
        false => deploy_image(run, cluster, tls, &to.image),
    };
    let (load, posts) = during.finish(&mut fig);
    let rolled = rolled?;
    let took = t.elapsed();
    // The image deploy made by carrying the running release's assets goes with the cluster.
    cluster.made.images.extend(rolled.carried.clone());
    let image = swarm::service_image(sh, &cluster.manager(), &app)?;
    let Some(rolling) = rolled.rolling_update else {
        bail!("deploy of {} ({what}) did no rolling update", to.image);
    };
    if image == running {
        bail!("after the {what} the app still runs {image}");
    }
    fig.carried = rolled.carried.is_some();
    fig.server_errors = load.total.server_errors;
    let outcome = release::after(
        sh,
        &cluster.manager(),
        entries,
        &held,
        posts,
        &run_id,
        &mut fig,
    )
    .and_then(|()| release::revalidation(entries, &to.build));
    if let Ok(v) = &outcome {
        fig.revalidate = Some(v.clone());
    }
    report.moves.push(fig.clone());
    outcome?;
    load.no_failures(&format!("the {what}"))?;
    release::judge(&fig)?;
    Ok(Moved {
        image,
        local: rolled.carried.clone().unwrap_or_else(|| to.image.clone()),
        recorded: rolled.recorded.clone(),
        load,
        took,
        rolling,
    })
}

/// The second release rolled out under load; the image the app runs after.
fn rolling_update(
    run: &Run,
    cluster: &mut Cluster,
    tls: &edge::Material,
    entries: &[SocketAddr],
    [first, second]: [&Known; 2],
    report: &mut Report,
) -> Result<String> {
    let what = ("update to the second release", first, second);
    let moved = move_release(run, cluster, tls, entries, what, false, report)?;
    report.update = Some((moved.rolling, moved.load));
    report.phase("deploy of the second release (rolling update)", moved.took);
    report.phase("  of which the update itself", moved.rolling);
    Ok(moved.image)
}

/// Back to the first release by `deploy --rollback` under the same load, clients of the second
/// holding its pages: the way a person goes back from a release that is not what they wanted.
/// The app image it deployed, as this host names it.
fn back_to_first(
    run: &Run,
    cluster: &mut Cluster,
    tls: &edge::Material,
    entries: &[SocketAddr],
    [first, second]: [&Known; 2],
    report: &mut Report,
) -> Result<String> {
    let what = ("way back to the first release", second, first);
    let moved = move_release(run, cluster, tls, entries, what, true, report)?;
    report.operate.rollback_failed_requests = Some(moved.load.total.failed);
    report.operate.rollback_s = Some(moved.took.as_secs_f64());
    report.operate.rollback_to = moved.recorded.as_ref().and_then(|r| r.rollback_to);
    if report.operate.rollback_to != Some(1) {
        bail!(
            "deploy --rollback went back to {:?}, not to release 1 (the first deploy)",
            moved.recorded.map(|r| r.line())
        );
    }
    report.back = Some((moved.rolling, moved.load));
    report.phase("deploy --rollback to the first release", moved.took);
    Ok(moved.local)
}

/// An image whose health check fails, asked for under load: swarm rolls back to `update`. The
/// proof shortens that check's start period so the failure shows in seconds (the stack's own
/// is 60 s).
fn rollback(
    run: &Run,
    cluster: &mut Cluster,
    entries: &[SocketAddr],
    update: &str,
    report: &mut Report,
) -> Result<()> {
    let sh = run.sh;
    let rev = images::revision(sh);
    let pair = (
        format!("{}-broken", run.image),
        format!("axion-hub/app:{rev}-broken"),
    );
    let prefix = cluster.push_prefix.clone();
    let broken = swarm::push(
        sh,
        &[pair],
        &prefix,
        REGISTRY_NAME,
        &mut cluster.made.images,
    )?
    .remove(0);

    let (manager, app_service) = (cluster.manager(), format!("{STACK}_app"));
    let before = swarm::update_status(sh, &manager, &app_service)?;
    let load = Load::start(entries, &URLS, WORKERS);
    let faster = [
        ("--health-start-period", "3s"),
        ("--health-interval", "1s"),
        ("--health-retries", "3"),
    ];
    let asked = swarm::update_image(sh, &manager, &app_service, &broken, &faster);
    let waited = asked
        .and_then(|()| swarm::wait_update(sh, &manager, &app_service, &before, TIMEOUT_UPDATE));
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
