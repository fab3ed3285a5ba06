//! Every command and flag, each declared once: `command!` makes from one declaration the
//! command's struct (a field per flag), its table row (what the parser and the help read) and
//! the conversion from a parsed command line (`from_matches`). `db` alone is written out: its
//! positionals decide its shape.

use std::time::Duration;

use anyhow::Result;

use super::{CommandSpec, Flag, ImageChoice, matches::Matches, short, switch, valued};

/// One command: `Name SPEC = "name", "about", images|no_images { field: Type = getter(FLAG), … }`.
/// `images` adds `--standin`/`--upstream` and the `images: ImageChoice` field.
macro_rules! command {
    (@spec $SPEC:ident $name:literal $about:literal $images:literal [$($flag:expr),*]) => {
        command!(@spec $SPEC $name $about $images [$($flag),*] []);
    };
    (@spec $SPEC:ident $name:literal $about:literal $images:literal [$($flag:expr),*] [$($pos:literal)?]) => {
        pub const $SPEC: CommandSpec = CommandSpec {
            name: $name,
            about: $about,
            flags: &[$($flag),*],
            images: $images,
            positionals: &[$($pos)?],
        };
    };
    // One optional positional (`<NAME>`) as `$pfield: Option<String>`; `images(true)` takes
    // the image flags, `images(false)` leaves `images` at its default.
    (
        $(#[$meta:meta])* $Name:ident $SPEC:ident = $name:literal, $about:literal, images($images:literal), [$pfield:ident: $pname:literal] {
            $($(#[$fm:meta])* $field:ident: $ty:ty = $get:ident($flag:expr)),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Default, PartialEq)]
        pub struct $Name {
            pub $pfield: Option<String>,
            $($(#[$fm])* pub $field: $ty,)*
            pub images: ImageChoice,
        }
        command!(@spec $SPEC $name $about $images [$($flag),*] [$pname]);
        impl $Name {
            pub(super) fn from_matches(m: &Matches) -> Result<$Name> {
                Ok($Name {
                    $pfield: m.positional(0),
                    $($field: m.$get(&$flag)?,)*
                    images: if $images { m.images()? } else { ImageChoice::default() },
                })
            }
        }
    };
    (
        $(#[$meta:meta])* $Name:ident $SPEC:ident = $name:literal, $about:literal, images {
            $($(#[$fm:meta])* $field:ident: $ty:ty = $get:ident($flag:expr)),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Default, PartialEq)]
        pub struct $Name {
            $($(#[$fm])* pub $field: $ty,)*
            pub images: ImageChoice,
        }
        command!(@spec $SPEC $name $about true [$($flag),*]);
        impl $Name {
            pub(super) fn from_matches(m: &Matches) -> Result<$Name> {
                Ok($Name { $($field: m.$get(&$flag)?,)* images: m.images()? })
            }
        }
    };
    (
        $(#[$meta:meta])* $Name:ident $SPEC:ident = $name:literal, $about:literal, no_images {
            $($(#[$fm:meta])* $field:ident: $ty:ty = $get:ident($flag:expr)),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Default, PartialEq)]
        pub struct $Name {
            $($(#[$fm])* pub $field: $ty,)*
        }
        command!(@spec $SPEC $name $about false [$($flag),*]);
        impl $Name {
            pub(super) fn from_matches(m: &Matches) -> Result<$Name> {
                Ok($Name { $($field: m.$get(&$flag)?,)* })
            }
        }
    };
}

const COLD: Flag = switch(
    "--cold",
    "install dependencies without the install cache (default when CI=true)",
);
const NO_VERIFY: Flag = valued(
    "--no-verify",
    "REASON",
    "turn bun's integrity checks off, for a reason the report records",
);
const JSON: Flag = switch("--json", "print one JSON report on stdout");
pub(super) const STAGE: Flag = valued(
    "--stage",
    "STAGE",
    "build only this stage (base, dev, deps, builder, runner); repeatable",
);
pub(super) const DB_PROD: Flag = switch(
    "--prod",
    "the prod stack's database instead of the dev stack's",
);
pub(super) const DB_FORCE: Flag = switch("--force", "restore over data that is already there");

pub(super) const IMAGE_FLAGS: [Flag; 2] = [
    switch(
        "--standin",
        "use the registry-free stand-in images (built once, then reused)",
    ),
    switch(
        "--upstream",
        "use the upstream images (oven/bun, postgres, redis) even if no registry answers",
    ),
];
pub(super) const TIMEOUT_HELP: &str = "seconds (a decimal is fine)";

command! {
    Dev DEV = "dev", "build and start the dev stack (hot reload on :3000), wait until healthy, follow logs", images {
        detach: bool = switch(short("--detach", 'd', "return once the stack is ready instead of following its logs")),
        no_build: bool = switch(switch("--no-build", "start with the images as they are (no rebuild of the app image)")),
        /// Edits by `compose watch` sync (see `Dev::edits`).
        sync: bool = switch(switch("--sync", "edits reach the container by `compose watch` sync (default on Docker Desktop)")),
        /// Edits by a bind mount of app/.
        bind: bool = switch(switch("--bind", "edits reach the container by a bind mount of app/ (default on a Linux engine)")),
        /// Ask before rewriting app/bun.lock entries the registry contradicts (a terminal only).
        repair_lock: bool = switch(switch("--repair-lock", "when bun's integrity check fails and the registry contradicts app/bun.lock, show the change and ask before writing it")),
    }
}

command! {
    BuildProd BUILD_PROD = "build-prod", "build every stage of docker/Dockerfile (base dev deps builder runner), timed and sized", images {
        stages: Vec<String> = stages(STAGE),
        cold: bool = switch(COLD),
        no_verify: Option<String> = reason(NO_VERIFY),
        sequential: bool = switch(switch("--sequential", "one `docker build --target` per stage instead of one bake graph")),
        json: bool = switch(JSON),
    }
}

command! {
    Verify VERIFY = "verify", "build, start, prove healthy and tear down a throw-away stack; exit 0 only if it works", images {
        prod: bool = switch(switch("--prod", "the prod stack (docker-compose.prod.yml) instead of the dev stack")),
        keep: bool = switch(switch("--keep", "leave the stack up and print how to remove it")),
        json: bool = switch(JSON),
        dry_run: bool = switch(switch("--dry-run", "print the plan (the build, up and teardown commands, files, images) without running any")),
        cold: bool = switch(COLD),
        no_verify: Option<String> = reason(NO_VERIFY),
        timeout_build: Option<Duration> = secs(valued("--timeout-build", "SECS", "limit for the image build")),
        timeout_healthy: Option<Duration> = secs(valued("--timeout-healthy", "SECS", "limit for every service to be healthy")),
        timeout_http: Option<Duration> = secs(valued("--timeout-http", "SECS", "limit for / and /api/health to answer 200")),
        swarm: bool = switch(switch("--swarm", "instead: the prod stack on a throw-away 3-node swarm (Docker in Docker), a registry, a rolling update under load and a rollback")),
    }
}

command! {
    Down DOWN = "down", "stop the dev stack, keep its volumes (--volumes deletes them)", no_images {
        volumes: bool = switch(short("--volumes", 'v', "also delete the named volumes (database and Redis data)")),
    }
}

command! {
    Clean CLEAN = "clean", "remove what dead runs left (their stacks and images) and the project's dangling images", no_images {
        dry_run: bool = switch(switch("--dry-run", "list what would be removed, remove nothing")),
        build_cache: Option<String> = size(valued("--build-cache", "SIZE", "also prune the engine's build cache down to SIZE (e.g. 5gb; engine-wide, see README)")),
    }
}

command! {
    Doctor DOCTOR = "doctor", "check every prerequisite and say how to fix what is missing", no_images {
        json: bool = switch(JSON),
    }
}

command! {
    Provision PROVISION = "provision", "install and start a Docker engine with buildx and Compose v2 (Debian/Ubuntu, root)", no_images {
        standin: bool = switch(switch("--standin", "also build the registry-free stand-in images")),
        refresh: bool = switch(switch("--refresh", "rebuild the stand-ins now, with the Debian suite's current security updates")),
    }
}

command! {
    Deploy DEPLOY = "deploy", "deploy the prod stack to the swarm this engine manages (`docker stack deploy`, images by digest)", images(true), [release: "RELEASE"] {
        rollback: bool = switch(switch("--rollback", "back to the previous release (or <RELEASE>, a number `status` and the history show): its images, today's secrets, the same health-gated rolling update")),
        stack: Option<String> = text(valued("--stack", "NAME", "the stack's name on the swarm (default: axion)")),
        registry: Option<String> = text(valued("--registry", "HOST:PORT", "push the images there and deploy them by digest (needed beyond one node)")),
        node_registry: Option<String> = text(valued("--node-registry", "HOST:PORT", "the same registry as the nodes reach it, when not as this host does")),
        manager: Option<String> = text(valued("--manager", "HOST", "the swarm manager's engine (ssh://user@host, tcp://…, unix://…); images are still built and pushed here")),
        image: Option<String> = text(valued("--image", "IMAGE", "deploy this app image (built before, e.g. by CI) instead of building the runner")),
        tls_cert: Option<String> = text(valued("--tls-cert", "PEM", "the certificate chain and its key (one PEM) the proxy serves (default: secrets/tls.pem, made self-signed when missing)")),
        encrypted_overlays: bool = switch(switch("--encrypted-overlays", "encrypt the overlay networks between nodes (IPsec: every node's kernel needs ESP and AES-GCM, see README)")),
        init: bool = switch(switch("--init", "make this engine a one-node swarm first (warns: it can disturb running stacks); needs --advertise-addr")),
        /// With `--init`: the one address the new swarm listens and advertises on.
        advertise_addr: Option<String> = text(valued("--advertise-addr", "IP", "with --init: the address other nodes reach this engine by; the swarm listens there only")),
        json: bool = switch(JSON),
    }
}

const STACK: Flag = valued(
    "--stack",
    "NAME",
    "a swarm stack (`deploy --stack`, default axion) instead of the dev stack",
);
const MANAGER: Flag = valued(
    "--manager",
    "HOST",
    "with --stack: the swarm manager's engine (ssh://user@host, tcp://…, unix://…)",
);
const PROD: Flag = switch(
    "--prod",
    "the single-host prod stack (docker-compose.prod.yml) instead of the dev stack",
);

command! {
    Status STATUS = "status", "every service of the dev stack (--prod, --stack NAME): its tasks per node, state, health, image, release, restarts, memory; exits 1 when one is not healthy", no_images {
        prod: bool = switch(PROD),
        stack: Option<String> = text(STACK),
        manager: Option<String> = text(MANAGER),
        json: bool = switch(JSON),
    }
}

command! {
    Logs LOGS = "logs", "the logs of every service of the dev stack (--prod, --stack NAME), or of <SERVICE>; a swarm's merged across nodes, each line with its task", images(false), [service: "SERVICE"] {
        follow: bool = switch(short("--follow", 'f', "keep following new lines")),
        since: Option<String> = text(valued("--since", "T", "only lines since T: a duration (10m, 1h) or a time (2026-12-02T10:00:00Z)")),
        prod: bool = switch(PROD),
        stack: Option<String> = text(STACK),
        manager: Option<String> = text(MANAGER),
    }
}

command! {
    Bench BENCH = "bench", "timing report: warm verify against plain compose up --wait + curl + down", images {
        /// Interleaved runs of each (`Bench::runs`).
        runs: Option<usize> = count(valued("--runs", "N", "interleaved runs of each")),
        prod: bool = switch(switch("--prod", "the prod stack instead of the dev stack")),
        load: bool = switch(switch("--load", "instead: drive / and /api/health of a prod stack at 100 connections (wrk)")),
        duration: Option<Duration> = secs(valued("--duration", "SECS", "with --load: how long each URL is driven")),
    }
}

pub const DB: CommandSpec = CommandSpec {
    name: "db",
    about: "database chores: `psql` (a shell), `backup` (pg_dump + Redis RDB), `restore <DIR>`",
    flags: &[DB_PROD, DB_FORCE],
    images: false,
    positionals: &["ACTION", "DIR"],
};

pub const CI: CommandSpec = CommandSpec {
    name: "ci",
    about: "everything CI needs on a bare machine: provision, cargo test, verify dev, prod and swarm",
    flags: &[],
    images: false,
    positionals: &[],
};

pub const COMMANDS: &[CommandSpec] = &[
    DEV, BUILD_PROD, VERIFY, DOWN, DB, CLEAN, DOCTOR, PROVISION, CI, DEPLOY, STATUS, LOGS, BENCH,
];
