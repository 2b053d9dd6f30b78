//! What differs between PostgreSQL majors, checked on the one under test
//! (`make test PG=N`; see c_shim/common/pg_compat.h and c_shim/common/wait_events.c):
//! transaction_timeout (17+), netbuf's own wait events (17+, the generic
//! ones before) and the module's name and version in the magic block (18+).
//!
//! A test of a feature the server lacks says so on stderr, naming the
//! version, and passes: libtest has no "skipped".
//!
//! Needs `make install install-test-module` first; `make test` does it.

use std::io::Write;
use std::net::Shutdown;
use std::thread::{self, sleep};
use std::time::{Duration, Instant};

use netbuf::Client;
use netbuf_testkit::test_module::{bytea_literal, sleep_msg};
use netbuf_testkit::wire::{RawChannel, message};
use netbuf_testkit::{
    BackgroundSql, Node, Pair, PairOptions, netbuf_wait_event, pg_major, serving_backend,
    serving_backend_waiting, shared_pair_with, tagged_conninfo,
};

fn pair() -> &'static Pair {
    // The test module's 'S' handler sleeps in the serving backend.
    shared_pair_with(PairOptions::with_test_module)
}

/// Straight to stderr: libtest captures eprintln! of passing tests, and a
/// skipped check must show.
fn say(msg: &str) {
    let _ = writeln!(std::io::stderr(), "netbuf versions: {msg}");
}

/// The full server version, e.g. "17.11", for messages.
fn server_version(node: &Node) -> String {
    node.must("SHOW server_version")
}

/// True (and says so, as SKIPPED) when the server under test is older than
/// `major`, which brought what `test` checks: `lacks` says what it lacks.
fn skipped_before(major: u32, test: &str, lacks: &str) -> bool {
    if pg_major() >= major {
        return false;
    }
    say(&format!(
        "SKIPPED {test}: PostgreSQL {} has no {lacks} (new in {major})",
        server_version(&pair().primary)
    ));
    true
}

#[test]
fn the_server_under_test_is_the_major_pg_config_names() {
    let p = pair();
    for node in [&p.primary, &p.standby] {
        let num: u32 = node.must("SHOW server_version_num").parse().unwrap();
        assert_eq!(num / 10000, pg_major(), "{} runs {num}", node.name);
    }
    say(&format!(
        "testing against PostgreSQL {}",
        server_version(&p.primary)
    ));
}

// ---- transaction_timeout (17+) ---------------------------------------------

#[test]
fn idle_channel_outlives_transaction_timeout() {
    let p = pair();
    if skipped_before(
        17,
        "idle_channel_outlives_transaction_timeout",
        "transaction_timeout",
    ) {
        return;
    }
    // A role of its own, so that only its sessions on the primary get the
    // 1 s limit (the standby and other tests' sessions are not touched).
    let role = "netbuf_xact_timeout";
    p.primary.must(&format!(
        "CREATE ROLE {role} LOGIN; GRANT EXECUTE ON PROCEDURE netbuf.serve TO {role}; \
         ALTER ROLE {role} SET transaction_timeout = '1s'"
    ));
    // The limit is in force for the role: a plain 2 s statement dies.
    let error = p
        .primary
        .sql_as(role, "SELECT pg_sleep(2)")
        .expect_err("a 2 s transaction outlived transaction_timeout = 1s");
    assert!(error.contains("transaction timeout"), "{error}");

    let tag = "xact_timeout_channel";
    let conninfo = format!(
        "{} application_name={tag}",
        p.primary.conninfo_db("postgres", role)
    );
    let mut client = Client::connect(&conninfo).expect("connect");
    assert_eq!(client.request(b"Ebefore").unwrap(), b"Ebefore");
    let pid = serving_backend(&p.primary, tag);
    // The CALL's transaction, and the one SPI_commit starts, would have
    // been ended by now.
    sleep(Duration::from_millis(2500));
    assert_eq!(client.request(b"Eafter").unwrap(), b"Eafter");
    assert_eq!(
        serving_backend(&p.primary, tag),
        pid,
        "the channel was served by another backend after the idle time"
    );
    p.primary.assert_no_crash();
}

// ---- wait events ----------------------------------------------------------

/// Note once per test which names were checked: netbuf's own from 17 on.
fn say_which_events(test: &str) {
    if pg_major() < 17 {
        say(&format!(
            "{test}: PostgreSQL {} has no custom wait events (new in 17); checked the \
             generic Extension / ClientRead / ClientWrite instead",
            pg_major()
        ));
    }
}

/// Runs `sql` on the standby in the background until its backend waits on
/// `event`, then cancels it: the statement must end as cancelled.
fn cancel_once_waiting(p: &Pair, tag: &str, sql: &str, event: &str) {
    let call = BackgroundSql::start(&p.standby, tag, sql);
    let pid = call.backend_when(&p.standby, &format!("wait_event = '{event}'"));
    p.standby.cancel_backend(pid);
    let ended = call.finish(Instant::now(), Duration::from_secs(10));
    assert!(
        ended
            .stderr
            .contains("canceling statement due to user request"),
        "{tag}: {}",
        ended.stderr
    );
}

#[test]
fn standby_backend_shows_what_it_waits_for() {
    let p = pair();

    // Connecting: a "server" that accepts and never says a word.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().unwrap().port();
    cancel_once_waiting(
        p,
        "wait_connect",
        &format!(
            "SELECT netbuf_test.request('host=127.0.0.1 port={port} user=postgres', '\\x45'::bytea)"
        ),
        netbuf_wait_event("NetbufConnect"),
    );
    drop(silent);

    // Receiving: the primary's 'S' handler sleeps 60 s before it replies.
    let sleep = bytea_literal(&sleep_msg(60_000));
    cancel_once_waiting(
        p,
        "wait_recv",
        &format!(
            "SELECT netbuf_test.request('{}', {sleep})",
            tagged_conninfo(&p.primary, "wait_recv")
        ),
        netbuf_wait_event("NetbufRecv"),
    );

    // Sending: the serving backend sleeps in 'S' and reads nothing, so
    // 32 MiB fill the socket buffers.
    cancel_once_waiting(
        p,
        "wait_send",
        &format!(
            "SELECT netbuf_test.send_all('{}', ARRAY[{sleep}, \
             '\\x45'::bytea || convert_to(repeat('x', 32 * 1024 * 1024), 'UTF8')])",
            tagged_conninfo(&p.primary, "wait_send")
        ),
        netbuf_wait_event("NetbufSend"),
    );

    p.standby.assert_no_crash();
    say_which_events("standby_backend_shows_what_it_waits_for");
}

#[test]
fn serving_backend_shows_what_it_waits_for() {
    let p = pair();

    // Waiting for a request: an idle channel.
    let tag = "wait_serve_idle";
    let mut client = Client::connect(&tagged_conninfo(&p.primary, tag)).expect("connect");
    assert_eq!(client.request(b"Ehi").unwrap(), b"Ehi");
    serving_backend_waiting(&p.primary, tag, netbuf_wait_event("NetbufServeRecv"));
    // And it still answers.
    assert_eq!(client.request(b"Eagain").unwrap(), b"Eagain");
    drop(client);

    // Writing replies: 200 echoes of 32 kB to a client that never reads
    // fill the socket, and the rest of the replies wait to be sent.  The
    // serving backend stops reading requests once its replies cannot go
    // out, so the requests are written by a thread of their own, which the
    // shutdown of the socket ends.
    let tag = "wait_serve_write";
    // A client that never reads: the protocol by hand.
    let raw = RawChannel::unix(&p.primary, tag);
    let socket = raw.sock.try_clone().expect("the socket");
    let writer = thread::spawn(move || {
        let mut raw = raw;
        let request = message(b'd', &[vec![b'E'], vec![b'w'; 32 * 1024 - 1]].concat());
        for _ in 0..200 {
            if raw.sock.write_all(&request).is_err() {
                break;
            }
        }
    });
    serving_backend_waiting(&p.primary, tag, netbuf_wait_event("NetbufServeSend"));
    socket.shutdown(Shutdown::Both).expect("shutdown");
    writer.join().expect("the writer thread");

    p.primary.assert_no_crash();
    say_which_events("serving_backend_shows_what_it_waits_for");
}

// ---- the magic block (18+) ---------------------------------------------------

#[test]
fn loaded_module_names_netbuf_and_its_version() {
    let p = pair();
    if skipped_before(
        18,
        "loaded_module_names_netbuf_and_its_version",
        "pg_get_loaded_modules() nor module names in the magic block",
    ) {
        return;
    }
    let row = p
        .standby
        .sql_many(&[
            "LOAD 'libnetbuf'",
            "SELECT module_name, version, file_name FROM pg_get_loaded_modules() \
             WHERE file_name = 'libnetbuf.so'",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        row,
        format!("netbuf|{}|libnetbuf.so", env!("CARGO_PKG_VERSION"))
    );
}
