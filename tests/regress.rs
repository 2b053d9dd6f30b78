//! The pg_regress suite (tests/regress: what is visible from SQL) on a
//! server of its own, as `make test`'s part of it; `make installcheck` runs
//! the same suite against the installed, running server.
//!
//! pg_regress comes from the installation under test (`$PG_CONFIG --pgxs`'s
//! src/test/regress/pg_regress) and runs as the servers' OS user with
//! `--use-existing` against the server this test starts.  A failure prints
//! regression.diffs.
//!
//! Needs `make install` first; `make test` does it.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use netbuf_testkit::process::run;
use netbuf_testkit::{Server, ServerOptions, pg_bindir, pg_config, server_program};

/// The database the suite runs in: PGXS's name for it (CONTRIB_TESTDB).
const DATABASE: &str = "contrib_regression";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The tests of the Makefile's `REGRESS = ...` line, in order: the one list
/// both `make installcheck` and this test run.
fn regress_tests() -> Vec<String> {
    let makefile = fs::read_to_string(root().join("Makefile")).expect("reading the Makefile");
    let line = makefile
        .lines()
        .find_map(|l| l.strip_prefix("REGRESS ="))
        .expect("a `REGRESS = ...` line in the Makefile");
    line.split_whitespace().map(str::to_owned).collect()
}

/// pg_regress of the installation under test.
fn pg_regress() -> PathBuf {
    let pgxs = PathBuf::from(pg_config("--pgxs"));
    // <pgxs>/src/makefiles/pgxs.mk -> <pgxs>/src/test/regress/pg_regress
    let path = pgxs
        .parent()
        .and_then(Path::parent)
        .map(|src| src.join("test/regress/pg_regress"))
        .unwrap_or_else(|| panic!("unexpected --pgxs {}", pgxs.display()));
    assert!(
        path.exists(),
        "no pg_regress at {} (Debian: postgresql-server-dev-N)",
        path.display()
    );
    path
}

#[test]
fn every_sql_file_is_in_the_schedule_and_has_its_expected_output() {
    let tests = regress_tests();
    assert!(!tests.is_empty(), "an empty REGRESS line");
    let dir = root().join("tests/regress");
    let mut on_disk: Vec<String> = fs::read_dir(dir.join("sql"))
        .expect("tests/regress/sql")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".sql").map(str::to_owned)
        })
        .collect();
    on_disk.sort();
    let mut listed = tests.clone();
    listed.sort();
    assert_eq!(
        listed, on_disk,
        "REGRESS in the Makefile vs tests/regress/sql"
    );
    for test in &tests {
        let expected = dir.join(format!("expected/{test}.out"));
        assert!(expected.exists(), "{} is missing", expected.display());
    }
}

#[test]
fn pg_regress_suite_passes() {
    let server = Server::start(ServerOptions {
        setup_sql: vec![format!("CREATE DATABASE {DATABASE}")],
        ..ServerOptions::default()
    });
    let node = &server.node;
    // Inside the server's directory, which the server user owns.
    let outputdir = server.dir().join("regress");
    let mut cmd = server_program(&pg_regress());
    cmd.arg(format!(
        "--inputdir={}",
        root().join("tests/regress").display()
    ))
    .arg(format!("--outputdir={}", outputdir.display()))
    .arg(format!("--bindir={}", pg_bindir().display()))
    .arg("--use-existing")
    .arg(format!("--host={}", node.host))
    .arg(format!("--port={}", node.port))
    .arg("--user=postgres")
    .arg(format!("--dbname={DATABASE}"))
    .args(regress_tests())
    .env("LC_ALL", "C");
    let out = run(cmd, Duration::from_secs(300));
    if !out.success() {
        let diffs = fs::read_to_string(outputdir.join("regression.diffs"))
            .unwrap_or_else(|e| format!("(no regression.diffs: {e})"));
        panic!(
            "pg_regress failed:\n{}\n--- regression.diffs ---\n{diffs}\n{}",
            out.describe(),
            node.log_tail()
        );
    }
    eprintln!("{}", out.stdout.trim_end());
}
