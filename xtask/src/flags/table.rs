//! The table of commands and flags: the one declaration the parser and the help both read.

use super::{CommandSpec, Flag, short, switch, valued};

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

pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "dev",
        about: "build and start the dev stack (hot reload on :3000), wait until healthy, follow logs",
        flags: &[
            short(
                "--detach",
                'd',
                "return once the stack is ready instead of following its logs",
            ),
            switch(
                "--no-build",
                "start with the images as they are (no rebuild of the app image)",
            ),
            switch(
                "--sync",
                "edits reach the container by `compose watch` sync (default on Docker Desktop)",
            ),
            switch(
                "--bind",
                "edits reach the container by a bind mount of app/ (default on a Linux engine)",
            ),
            switch(
                "--repair-lock",
                "when bun's integrity check fails and the registry contradicts app/bun.lock, show the change and ask before writing it",
            ),
        ],
        images: true,
        positionals: &[],
    },
    CommandSpec {
        name: "build-prod",
        about: "build every stage of docker/Dockerfile (base dev deps builder runner), timed and sized",
        flags: &[
            valued(
                "--stage",
                "STAGE",
                "build only this stage (base, dev, deps, builder, runner); repeatable",
            ),
            COLD,
            NO_VERIFY,
            switch(
                "--sequential",
                "one `docker build --target` per stage instead of one bake graph",
            ),
            JSON,
        ],
        images: true,
        positionals: &[],
    },
    CommandSpec {
        name: "verify",
        about: "build, start, prove healthy and tear down a throw-away stack; exit 0 only if it works",
        flags: &[
            switch(
                "--prod",
                "the prod stack (docker-compose.prod.yml) instead of the dev stack",
            ),
            switch("--keep", "leave the stack up and print how to remove it"),
            JSON,
            switch(
                "--dry-run",
                "print the plan (the build, up and teardown commands, files, images) without running any",
            ),
            COLD,
            NO_VERIFY,
            valued("--timeout-build", "SECS", "limit for the image build"),
            valued(
                "--timeout-healthy",
                "SECS",
                "limit for every service to be healthy",
            ),
            valued(
                "--timeout-http",
                "SECS",
                "limit for / and /api/health to answer 200",
            ),
            switch(
                "--swarm",
                "instead: the prod stack on a throw-away 3-node swarm (Docker in Docker), a registry, a rolling update under load and a rollback",
            ),
        ],
        images: true,
        positionals: &[],
    },
    CommandSpec {
        name: "down",
        about: "stop the dev stack, keep its volumes (--volumes deletes them)",
        flags: &[short(
            "--volumes",
            'v',
            "also delete the named volumes (database and Redis data)",
        )],
        images: false,
        positionals: &[],
    },
    CommandSpec {
        name: "db",
        about: "database chores: `psql` (a shell), `backup` (pg_dump + Redis RDB), `restore <DIR>`",
        flags: &[
            switch(
                "--prod",
                "the prod stack's database instead of the dev stack's",
            ),
            switch("--force", "restore over data that is already there"),
        ],
        images: false,
        positionals: &["ACTION", "DIR"],
    },
    CommandSpec {
        name: "clean",
        about: "remove what dead runs left (their stacks and images) and the project's dangling images",
        flags: &[
            switch("--dry-run", "list what would be removed, remove nothing"),
            valued(
                "--build-cache",
                "SIZE",
                "also prune the engine's build cache down to SIZE (e.g. 5gb; engine-wide, see README)",
            ),
        ],
        images: false,
        positionals: &[],
    },
    CommandSpec {
        name: "doctor",
        about: "check every prerequisite and say how to fix what is missing",
        flags: &[JSON],
        images: false,
        positionals: &[],
    },
    CommandSpec {
        name: "provision",
        about: "install and start a Docker engine with buildx and Compose v2 (Debian/Ubuntu, root)",
        flags: &[
            switch("--standin", "also build the registry-free stand-in images"),
            switch(
                "--refresh",
                "rebuild the stand-ins now, with the Debian suite's current security updates",
            ),
        ],
        images: false,
        positionals: &[],
    },
    CommandSpec {
        name: "ci",
        about: "everything CI needs on a bare machine: provision, cargo test, verify dev, prod and swarm",
        flags: &[],
        images: false,
        positionals: &[],
    },
    CommandSpec {
        name: "deploy",
        about: "deploy the prod stack to the swarm this engine manages (`docker stack deploy`, images by digest)",
        flags: &[
            valued(
                "--stack",
                "NAME",
                "the stack's name on the swarm (default: axion)",
            ),
            valued(
                "--registry",
                "HOST:PORT",
                "push the images there and deploy them by digest (needed beyond one node)",
            ),
            valued(
                "--node-registry",
                "HOST:PORT",
                "the same registry as the nodes reach it, when not as this host does",
            ),
            valued(
                "--manager",
                "HOST",
                "the swarm manager's engine (ssh://user@host, tcp://…, unix://…); images are still built and pushed here",
            ),
            valued(
                "--image",
                "IMAGE",
                "deploy this app image (built before, e.g. by CI) instead of building the runner",
            ),
            switch(
                "--init",
                "make this engine a one-node swarm first (warns: it can disturb running stacks); needs --advertise-addr",
            ),
            valued(
                "--advertise-addr",
                "IP",
                "with --init: the address other nodes reach this engine by; the swarm listens there only",
            ),
            JSON,
        ],
        images: true,
        positionals: &[],
    },
    CommandSpec {
        name: "bench",
        about: "timing report: warm verify against plain compose up --wait + curl + down",
        flags: &[
            valued("--runs", "N", "interleaved runs of each"),
            switch("--prod", "the prod stack instead of the dev stack"),
            switch(
                "--load",
                "instead: drive / and /api/health of a prod stack at 100 connections (wrk)",
            ),
            valued(
                "--duration",
                "SECS",
                "with --load: how long each URL is driven",
            ),
        ],
        images: true,
        positionals: &[],
    },
];
