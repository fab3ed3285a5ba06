//! The command line: parsing, help and "did you mean".

use super::*;

fn p(s: &str) -> Result<Command> {
    parse(s.split_whitespace().map(String::from))
}

#[test]
fn help_overview_and_per_command() {
    assert_eq!(p("").unwrap(), Command::Help(None));
    assert_eq!(p("--help").unwrap(), Command::Help(None));
    assert_eq!(p("verify --help").unwrap(), Command::Help(Some("verify")));
    assert_eq!(p("help down").unwrap(), Command::Help(Some("down")));
    let h = help(Some("verify"));
    for want in [
        "--timeout-http <SECS>",
        "--dry-run",
        "--standin",
        "-h, --help",
    ] {
        assert!(h.contains(want), "{want} missing:\n{h}");
    }
    assert!(help(Some("down")).contains("-v, --volumes"));
    assert!(help(Some("dev")).contains("-d, --detach"));
    let overview = help(None);
    for c in COMMANDS {
        assert!(overview.contains(&format!("  {} ", c.name)), "{}", c.name);
    }
}

#[test]
fn every_declared_flag_is_converted() {
    // Each command with every one of its flags: the conversion asks only for declared
    // names (`declared` panics otherwise) and accepts each.
    for c in COMMANDS {
        for f in all_flags(c) {
            if f.long == "--upstream" {
                continue; // excludes --standin, tested below
            }
            let value = match f.value {
                Some("STAGE") => vec!["runner"],
                Some("REASON") => vec!["mirror re-packs tarballs"],
                Some(_) => vec!["3"],
                None => vec![],
            };
            let mut args = vec![c.name];
            if c.name == "db" {
                args.push("backup");
            }
            args.push(f.long);
            args.extend(value);
            parse(args.into_iter().map(String::from))
                .unwrap_or_else(|e| panic!("{} {}: {e}", c.name, f.long));
        }
    }
}

#[test]
fn verify_flags_both_spellings() {
    let Command::Verify(v) =
        p("verify --prod --json --timeout-healthy 90 --timeout-http=5 --standin").unwrap()
    else {
        panic!()
    };
    assert!(v.prod && v.json && !v.keep);
    assert_eq!(v.timeout_healthy, Some(Duration::from_secs(90)));
    assert_eq!(v.timeout_http, Some(Duration::from_secs(5)));
    assert_eq!(v.images, ImageChoice::Standin);
    let Command::Dev(d) = p("dev -d").unwrap() else {
        panic!()
    };
    assert!(d.detach);
    assert_eq!(p("down -v").unwrap(), Command::Down(Down { volumes: true }));
    assert_eq!(
        p("doctor --json").unwrap(),
        Command::Doctor(Doctor { json: true })
    );
}

#[test]
fn stages_are_checked() {
    let Command::BuildProd(b) = p("build-prod --stage deps --stage=runner --json").unwrap() else {
        panic!()
    };
    assert_eq!(b.stages, ["deps", "runner"]);
    assert!(b.json);
    let e = p("build-prod --stage runer").unwrap_err().to_string();
    assert!(
        e.contains("unknown stage `runer`; did you mean `runner`?"),
        "{e}"
    );
}

#[test]
fn no_verify_needs_a_reason() {
    assert!(p("build-prod --no-verify").is_err());
    assert!(p("build-prod --no-verify x").is_err());
    let Command::BuildProd(b) =
        parse(["build-prod", "--no-verify", "mirror re-packs tarballs"].map(String::from)).unwrap()
    else {
        panic!()
    };
    assert_eq!(b.no_verify.as_deref(), Some("mirror re-packs tarballs"));
}

#[test]
fn bad_input_names_the_problem_and_the_closest_name() {
    let e = p("verfy").unwrap_err().to_string();
    assert!(
        e.contains("unknown command `verfy`; did you mean `verify`?"),
        "{e}"
    );
    let e = p("kubernetes").unwrap_err().to_string();
    assert!(
        e.contains("unknown command `kubernetes`") && !e.contains("did you mean"),
        "{e}"
    );
    let e = p("deploy --registy r:5000").unwrap_err().to_string();
    assert!(e.contains("did you mean `--registry`?"), "{e}");
    let e = p("verify --timeout-htp 5").unwrap_err().to_string();
    assert!(e.contains("did you mean `--timeout-http`?"), "{e}");
    let e = p("down --force").unwrap_err().to_string();
    assert!(e.contains("no option `--force`"), "{e}");
    assert!(
        p("verify --timeout-http soon")
            .unwrap_err()
            .to_string()
            .contains("number of seconds")
    );
    assert!(
        p("verify --keep=yes")
            .unwrap_err()
            .to_string()
            .contains("takes no value")
    );
    assert!(
        p("verify --timeout-http")
            .unwrap_err()
            .to_string()
            .contains("needs a value (SECS)")
    );
    assert!(p("dev --standin --upstream").is_err());
    assert!(p("bench --runs 0").is_err());
}

#[test]
fn db_actions_and_paths() {
    let Command::Db(d) = p("db restore backups/x --force").unwrap() else {
        panic!()
    };
    assert_eq!(
        (d.action, d.path.as_deref(), d.force, d.prod),
        (DbAction::Restore, Some("backups/x"), true, false)
    );
    assert!(
        p("db restore")
            .unwrap_err()
            .to_string()
            .contains("needs the backup directory")
    );
    assert!(
        p("db bakup")
            .unwrap_err()
            .to_string()
            .contains("did you mean `backup`?")
    );
    assert!(p("db backup x y").is_err());
    assert!(help(Some("db")).contains("cargo xtask db <ACTION> <DIR> [options]"));
}

#[test]
fn edit_distances() {
    assert_eq!(crate::util::edit_distance("kitten", "sitting"), 3);
    assert_eq!(crate::util::edit_distance("", "abc"), 3);
    assert_eq!(crate::util::edit_distance("same", "same"), 0);
}

#[test]
fn rollback_status_and_logs_take_their_positionals() {
    let Command::Deploy(d) = p("deploy --rollback 3 --registry r.example:5000").unwrap() else {
        panic!("deploy");
    };
    assert!(d.rollback);
    assert_eq!(d.release.as_deref(), Some("3"));
    let Command::Logs(l) = p("logs app --stack axion -f --since 10m").unwrap() else {
        panic!("logs");
    };
    assert_eq!(
        (
            l.service.as_deref(),
            l.stack.as_deref(),
            l.follow,
            l.since.as_deref()
        ),
        (Some("app"), Some("axion"), true, Some("10m"))
    );
    let Command::Status(s) = p("status --prod --json").unwrap() else {
        panic!("status");
    };
    assert!(s.prod && s.json && s.stack.is_none());
    let e = p("status app").unwrap_err().to_string();
    assert!(e.contains("takes no positional argument `app`"), "{e}");
    let e = p("logs app db").unwrap_err().to_string();
    assert!(e.contains("no further positional argument `db`"), "{e}");
    assert!(help(Some("deploy")).contains("cargo xtask deploy <RELEASE>"));
}
