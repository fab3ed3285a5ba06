//! The hostile table: each row a hole a hostile review found, as a test that failed before the
//! fix (README: "The hostile table"). Row 1 (the lockfile) is in faults.rs, through the fake.

use std::{fs, os::unix::fs::PermissionsExt, path::Path, process::Command};

use crate::{
    real_engine::engine_test,
    support::{RemoveDir, copy_tree, project_root, text, xtask_bin},
};

/// Every mode in a tree as a checkout under `umask` would have made it.
fn as_if_checked_out_under(dir: &Path, umask: u32) {
    for e in fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        let kind = e.file_type().unwrap();
        if kind.is_symlink() {
            continue;
        }
        if kind.is_dir() {
            as_if_checked_out_under(&p, umask);
        }
        let mode = fs::metadata(&p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .permissions()
            .mode()
            & 0o777;
        fs::set_permissions(&p, fs::Permissions::from_mode(mode & !umask)).unwrap();
    }
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Row 3: a CIS-style `umask 077` (027 takes the same bits from "other", which every service's
/// user is) on the checkout and on the xtask: `verify --prod` passes. Before, Redis could not
/// open /run/secrets/redis.conf and the init script was unreadable to postgres.
#[test]
fn verify_prod_passes_under_a_strict_umask() {
    let Some(_engine) = engine_test() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("xtask-umask-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    let skip = [
        "target",
        ".git",
        "node_modules",
        ".next",
        "secrets",
        ".env",
        "xtask",
    ];
    copy_tree(&project_root(), &dir, &skip);
    let _cleanup = RemoveDir(dir.clone());
    as_if_checked_out_under(&dir, 0o077);
    let out = Command::new("sh")
        .args(["-c", "umask 077 && exec \"$0\" verify --prod --json"])
        .arg(xtask_bin())
        .env("AXION_PROJECT_ROOT", &dir)
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    let secrets = dir.join("secrets");
    assert_eq!(mode(&secrets), 0o700, "the secrets directory");
    for f in [
        "postgres_password",
        "app_db_password",
        "redis_password",
        "redis.conf",
    ] {
        assert_eq!(mode(&secrets.join(f)), 0o644, "{f}");
    }
}
