//! Checks the test kit itself (tests/kit) against real servers.

use std::time::Duration;

use netbuf_testkit::{
    Pair, PairOptions, Server, ServerOptions, assert_sql_error, shared_pair_with,
};

/// Without the extension: the self-test must not depend on netbuf being
/// installed.
fn no_extension() -> PairOptions {
    PairOptions {
        setup_sql: vec![],
        ..Default::default()
    }
}

#[test]
fn shared_pair_replicates() {
    let pair = shared_pair_with(no_extension);
    assert_eq!(pair.standby.must("SELECT pg_is_in_recovery()"), "t");
    assert_eq!(pair.primary.must("SELECT pg_is_in_recovery()"), "f");

    pair.primary
        .must("CREATE TABLE selftest_repl AS SELECT 42 AS answer");
    pair.standby
        .wait_for(
            "SELECT answer FROM selftest_repl",
            "42",
            Duration::from_secs(30),
        )
        .unwrap();

    let conninfo = pair.standby.must("SHOW primary_conninfo");
    assert!(
        conninfo.contains(&format!("port={}", pair.primary.port)),
        "primary_conninfo does not name the primary's port {}: {conninfo}",
        pair.primary.port
    );
}

#[test]
fn shared_pair_sql_helpers() {
    let pair = shared_pair_with(no_extension);
    let p = &pair.primary;
    assert_eq!(p.must("SELECT 1"), "1");
    assert_eq!(
        p.sql_many(&["SELECT 1", "SELECT 2"]).unwrap(),
        "1\n2",
        "each -c prints its own result"
    );
    let err = p.sql("SELECT 1/0").unwrap_err();
    assert!(err.contains("division by zero"), "{err}");
    // ON_ERROR_STOP: nothing after the failing statement runs.
    let err = p.sql_many(&["SELECT 1/0", "SELECT 'after'"]).unwrap_err();
    assert!(!err.contains("after"), "{err}");
    let err = pair
        .standby
        .sql("CREATE TABLE selftest_ro (x int)")
        .unwrap_err();
    assert!(err.contains("read-only transaction"), "{err}");
    // Verbose errors carry the SQLSTATE, in psql -c and in a script.
    let err = p.expect_error("SELECT 1/0", "22012", "division by zero");
    assert!(err.contains("LOCATION:"), "{err}");
    let (out, err) = p.script("SELECT 1/0;\nSELECT 'after';\n");
    assert_eq!(out.trim(), "after", "a script goes on after an error");
    assert_sql_error(&err, "22012", "division by zero");
    assert!(p.log_text().contains("division by zero"));
    assert!(p.pg_ctl(&["status"]).unwrap().contains("server is running"));
}

#[test]
fn private_pair_restarts_and_cleans_up() {
    let mut pair = Pair::start(no_extension());
    let dir = pair.dir().to_path_buf();
    assert!(dir.is_dir());

    pair.primary.restart("fast");
    assert_eq!(pair.primary.must("SELECT 1"), "1");
    pair.primary
        .wait_for("SELECT pg_is_in_recovery()", "f", Duration::from_secs(10))
        .unwrap();

    pair.stop();
    drop(pair);
    if std::env::var("NETBUF_TEST_KEEP").is_ok_and(|v| v == "1") {
        assert!(
            dir.is_dir(),
            "NETBUF_TEST_KEEP=1 must keep {}",
            dir.display()
        );
    } else {
        assert!(!dir.exists(), "{} was not removed", dir.display());
    }
}

#[test]
fn private_pair_drop_cleans_up() {
    let pair = Pair::start(no_extension());
    let dir = pair.dir().to_path_buf();
    let pidfile = pair.primary.datadir.join("postmaster.pid");
    assert!(pidfile.exists());
    drop(pair);
    if std::env::var("NETBUF_TEST_KEEP").is_err() {
        assert!(!dir.exists(), "{} was not removed", dir.display());
    }
}

#[test]
fn lone_server_starts_and_drop_cleans_up() {
    let server = Server::start(ServerOptions {
        setup_sql: vec!["CREATE TABLE selftest_lone AS SELECT 7 AS n".into()],
        ..ServerOptions::default()
    });
    let dir = server.dir().to_path_buf();
    assert_eq!(server.node.must("SELECT n FROM selftest_lone"), "7");
    assert_eq!(server.node.must("SELECT pg_is_in_recovery()"), "f");
    drop(server);
    if std::env::var("NETBUF_TEST_KEEP").is_err() {
        assert!(!dir.exists(), "{} was not removed", dir.display());
    }
}
