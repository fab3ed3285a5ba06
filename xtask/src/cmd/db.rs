//! `cargo xtask db psql | backup | restore <DIR>`: database chores on the running dev stack
//! (or the prod stack with `--prod`). A backup is a directory `backups/<stack>-<UTC time>/`
//! holding `postgres.dump` (pg_dump's custom format) and `redis.rdb`; a restore refuses to
//! overwrite data unless `--force`.

use std::{
    fs,
    path::{Path, PathBuf},
    time::{Instant, SystemTime},
};

use anyhow::{Context, Result, bail};
use xshell::Shell;

use crate::{
    docker::{self, Container},
    engine,
    flags::{self, DbAction},
    stack::StackKind,
    util::secs,
};

const PG_DUMP: &str = "postgres.dump";
const REDIS_RDB: &str = "redis.rdb";
/// Redis reads its password from the secret file in prod; dev has none.
/// Redis's admin (`default` user) in prod, where its password is a secret file; dev's container
/// has REDISCLI_AUTH set already.
const REDIS_AUTH: &str = "if [ -r /run/secrets/redis_admin_password ]; then export REDISCLI_AUTH=\"$(cat /run/secrets/redis_admin_password)\"; fi; ";

impl flags::Db {
    pub fn run(self, sh: &Shell) -> Result<()> {
        engine::preflight()?;
        let kind = StackKind::from_prod(self.prod);
        let project = kind.project();
        let cs = docker::containers(sh, &project)?;
        let running = |service: &str| -> Result<Container> {
            cs.iter()
                .find(|c| c.service == service && c.is_running())
                .cloned()
                .with_context(|| {
                    format!(
                        "the {} stack's `{service}` is not running (project {project}).\n  fix: {}",
                        kind.name(),
                        match kind {
                            StackKind::Dev => "`cargo xtask dev --detach` first".to_string(),
                            StackKind::Prod =>
                                "start it: `docker compose -f docker-compose.prod.yml up -d`"
                                    .to_string(),
                        }
                    )
                })
        };
        let db = running("db")?;
        match self.action {
            DbAction::Psql => psql(&db),
            DbAction::Backup => backup(sh, kind, &db, &running("redis")?),
            DbAction::Restore => {
                let dir = PathBuf::from(self.path.as_deref().unwrap_or_default());
                restore(sh, kind, &dir, &db, &running("redis")?, self.force)
            }
        }
    }
}

/// An interactive psql as the database's owner, through the container's local socket.
fn psql(db: &Container) -> Result<()> {
    let script = "exec psql -U \"$POSTGRES_USER\" -d \"$POSTGRES_DB\"";
    let status = docker::exec_interactive(&db.name, &["sh", "-c", script])
        .context("running psql in the db container")?;
    if !status.success() {
        bail!("psql ended with {status}");
    }
    Ok(())
}

/// `docker exec <container> sh -c <script>` with its stdout into `file`.
/// The command's stdout into a new file only its owner can read (the whole database), whatever
/// the umask.
fn exec_to_file(container: &str, script: &str, file: &Path) -> Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let out = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)
        .with_context(|| format!("creating {}", file.display()))?;
    out.set_permissions(fs::Permissions::from_mode(0o600))?;
    let o = docker::exec_to_file(container, &["sh", "-c", script], out)?;
    if !o.status.success() {
        bail!("{}", String::from_utf8_lossy(&o.stderr).trim());
    }
    Ok(())
}

fn backup(sh: &Shell, kind: StackKind, db: &Container, redis: &Container) -> Result<()> {
    let t = Instant::now();
    let dir = sh.current_dir().join("backups").join(format!(
        "{}-{}",
        kind.name(),
        crate::util::utc_stamp(SystemTime::now())
    ));
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
    }
    exec_to_file(
        &db.name,
        "pg_dump -U \"$POSTGRES_USER\" -d \"$POSTGRES_DB\" --format=custom",
        &dir.join(PG_DUMP),
    )
    .context("pg_dump")?;
    // Into the data volume, not the container's /tmp (prod: a 16 MiB tmpfs) nor through stdout
    // (`--rdb -` appends the transfer's EOF mark): the dump is as large as the data.
    let rdb = format!(
        "{REDIS_AUTH}f=/data/.axion-backup.rdb; redis-cli --rdb \"$f\" >/dev/null && cat \"$f\"; s=$?; rm -f \"$f\"; exit $s"
    );
    exec_to_file(&redis.name, &rdb, &dir.join(REDIS_RDB)).context("redis-cli --rdb")?;
    let size = |f: &str| fs::metadata(dir.join(f)).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "backup: {} (postgres {} bytes, redis {} bytes) in {}",
        dir.display(),
        size(PG_DUMP),
        size(REDIS_RDB),
        secs(t.elapsed())
    );
    Ok(())
}

fn restore(
    sh: &Shell,
    kind: StackKind,
    dir: &Path,
    db: &Container,
    redis: &Container,
    force: bool,
) -> Result<()> {
    let t = Instant::now();
    for f in [PG_DUMP, REDIS_RDB] {
        if !dir.join(f).is_file() {
            bail!(
                "{} has no {f}: not a backup made by `cargo xtask db backup`",
                dir.display()
            );
        }
    }
    let tables = exec_text(
        sh,
        &db.name,
        "psql -U \"$POSTGRES_USER\" -d \"$POSTGRES_DB\" -XtAc \"select count(*) from pg_tables where schemaname not in ('pg_catalog', 'information_schema')\"",
    )?;
    let keys = exec_text(sh, &redis.name, &format!("{REDIS_AUTH}redis-cli dbsize"))?;
    let (tables, keys): (u64, u64) = (
        tables.trim().parse().unwrap_or(1),
        keys.trim().parse().unwrap_or(1),
    );
    if (tables > 0 || keys > 0) && !force {
        let fresh = match kind {
            StackKind::Dev => "`cargo xtask down --volumes` then `cargo xtask dev --detach`",
            StackKind::Prod => {
                "`docker compose -f docker-compose.prod.yml down --volumes` then `... up -d`"
            }
        };
        bail!(
            "the database holds data already ({tables} tables, {keys} Redis keys): a restore would replace it.\n  \
             fix: {fresh} for fresh volumes, or pass --force to replace it"
        );
    }
    prove_loadable(db, redis, dir)?;
    // As the app's role where there is one (prod), so what is restored stays the app's; in one
    // transaction, so a failure leaves the database as it was.
    let script = "pg_restore -U \"$POSTGRES_USER\" -d \"$POSTGRES_DB\" --clean --if-exists --no-owner --exit-on-error --single-transaction --role \"${APP_DB_USER:-$POSTGRES_USER}\"";
    let dump = fs::File::open(dir.join(PG_DUMP))?;
    let pg = docker::exec_from_file(&db.name, &["sh", "-c", script], dump)?;
    if !pg.status.success() {
        bail!("pg_restore: {}", String::from_utf8_lossy(&pg.stderr).trim());
    }
    restore_redis(sh, redis, &dir.join(REDIS_RDB))?;
    eprintln!(
        "restored {} into {} and {} in {}",
        dir.display(),
        db.name,
        redis.name,
        secs(t.elapsed())
    );
    Ok(())
}

/// Waits up to 30 s (300 × 0.1 s) for a shell condition, then fails the script.
const WAIT: &str = "wait_for() { i=0; until eval \"$1\"; do i=$((i+1)); [ $i -lt 300 ] || { echo \"timed out: $1\" >&2; return 1; }; sleep 0.1; done; }; ";

/// Before anything live is touched: the dump's table of contents reads (`pg_restore --list`)
/// and the RDB reads whole (`redis-check-rdb`, in a throw-away container of the Redis image).
fn prove_loadable(db: &Container, redis: &Container, dir: &Path) -> Result<()> {
    let dump = dir.join(PG_DUMP);
    let list = docker::exec_from_file(&db.name, &["pg_restore", "--list"], fs::File::open(&dump)?)?;
    if !list.status.success() {
        bail!(
            "{} does not read as a PostgreSQL dump (pg_restore --list: {}); nothing was changed",
            dump.display(),
            String::from_utf8_lossy(&list.stderr).trim()
        );
    }
    let rdb = dir.join(REDIS_RDB);
    let mount = format!("{}:/backup.rdb:ro", rdb.canonicalize()?.display());
    let options = [
        "--volume",
        &mount,
        "--network",
        "none",
        "--entrypoint",
        "redis-check-rdb",
    ];
    let probe = docker::run_rm_output(&options, &redis.image, &["/backup.rdb"])?;
    if !probe.status.success() {
        let why = String::from_utf8_lossy(&probe.stdout);
        let why = why
            .lines()
            .find(|l| l.contains("[offset"))
            .unwrap_or("")
            .trim();
        bail!(
            "{} does not load in Redis (redis-check-rdb: {why}); nothing was changed",
            rdb.display()
        );
    }
    Ok(())
}

/// Redis with `appendonly yes` ignores an RDB file at start, so: stop it, load the RDB in a
/// throw-away Redis on the same volume and have it write a fresh AOF, start it again. The old
/// files are moved aside, not deleted, until the new AOF is written: a failure puts them back.
fn restore_redis(sh: &Shell, redis: &Container, rdb: &Path) -> Result<()> {
    let script = format!(
        "{WAIT}old=/data/.before-restore; rm -rf $old; mkdir $old || exit 1; \
         for f in appendonlydir dump.rdb; do if [ -e /data/$f ]; then mv /data/$f $old/ || exit 1; fi; done; \
         back() {{ redis-cli -p 6390 shutdown nosave >/dev/null 2>&1; rm -rf /data/appendonlydir /data/dump.rdb; \
                   for f in $old/*; do if [ -e \"$f\" ]; then mv \"$f\" /data/; fi; done; rmdir $old; \
                   chown -R redis:redis /data; exit 1; }}; \
         cp /backup.rdb /data/dump.rdb || back; \
         redis-server --dir /data --appendonly no --daemonize yes --port 6390 >/dev/null || back; \
         wait_for 'redis-cli -p 6390 ping >/dev/null 2>&1' || back; \
         redis-cli -p 6390 config set appendonly yes >/dev/null || back; \
         wait_for '[ -d /data/appendonlydir ] \
           && redis-cli -p 6390 info persistence | grep -q aof_rewrite_in_progress:0 \
           && redis-cli -p 6390 info persistence | grep -q aof_rewrite_scheduled:0' || back; \
         redis-cli -p 6390 shutdown nosave >/dev/null 2>&1; rm -rf $old; chown -R redis:redis /data"
    );
    let script = script.as_str();
    docker::stop(sh, &redis.name, 10)?;
    let rdb = format!("{}:/backup.rdb:ro", rdb.canonicalize()?.display());
    let options = [
        "--volumes-from",
        &redis.name,
        "--volume",
        &rdb,
        "--network",
        "none",
        "--entrypoint",
        "sh",
    ];
    let loaded = docker::run_rm_output(&options, &redis.image, &["-c", script]).and_then(|o| {
        if o.status.success() {
            Ok(())
        } else {
            bail!("{}", String::from_utf8_lossy(&o.stderr).trim())
        }
    });
    docker::start(sh, &redis.name)?;
    loaded.context("loading the Redis backup")?;
    Ok(())
}

fn exec_text(sh: &Shell, container: &str, script: &str) -> Result<String> {
    let o = docker::exec(sh, container, &["sh", "-c", script])?;
    if !o.status.success() {
        bail!("{}", String::from_utf8_lossy(&o.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}
