//! What differs between PostgreSQL majors, checked on the one under test
//! (`make test PG=N`; see c_shim/pg_compat.h and c_shim/wait_events.c):
//! transaction_timeout (17+), netbuf's own wait events (17+, the generic
//! ones before) and the module's name and version in the magic block (18+).
//!
//! A test of a feature the server lacks says so on stderr, naming the
//! version, and passes: libtest has no "skipped".
//!
//! Needs `make install install-test-module` first; `make test` does it.

mod common;

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::process::Child;
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::{
    Node, Pair, PairOptions, netbuf_wait_event, pg_major, psql_command, shared_pair_with,
};
use netbuf::Client;

fn options() -> PairOptions {
    PairOptions {
        // The test module's 'S' handler sleeps in the serving backend.
        primary_conf: vec!["session_preload_libraries = 'netbuf_test'".into()],
        setup_sql: vec![
            "CREATE EXTENSION netbuf".into(),
            "CREATE EXTENSION netbuf_test".into(),
        ],
        ..PairOptions::default()
    }
}

fn pair() -> &'static Pair {
    shared_pair_with(options)
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
    if pg_major() < 17 {
        say(&format!(
            "SKIPPED idle_channel_outlives_transaction_timeout: PostgreSQL {} has no \
             transaction_timeout (new in 17)",
            server_version(&p.primary)
        ));
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
    let pid = p.primary.must(&format!(
        "SELECT pid FROM pg_stat_activity WHERE application_name = '{tag}'"
    ));
    assert!(!pid.is_empty(), "no serving backend for {tag}");
    // The CALL's transaction, and the one SPI_commit starts, would have
    // been ended by now.
    sleep(Duration::from_millis(2500));
    assert_eq!(client.request(b"Eafter").unwrap(), b"Eafter");
    assert_eq!(
        p.primary.must(&format!(
            "SELECT pid FROM pg_stat_activity WHERE application_name = '{tag}'"
        )),
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

/// Run sql in a psql on the standby, tagged with a comment, and return once
/// its backend's wait_event is `event`, with the child and the pid.
#[allow(clippy::zombie_processes)]
fn standby_waiting(p: &Pair, tag: &str, sql: &str, event: &str) -> (Child, String) {
    let child = psql_command(&p.standby.conninfo())
        .args(["-c", &format!("{sql} /* {tag} */")])
        .spawn()
        .expect("psql");
    let find = format!(
        "SELECT coalesce(wait_event, '-') || ' ' || pid FROM pg_stat_activity \
         WHERE query LIKE '%/* {tag} */%' AND pid <> pg_backend_pid()"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = String::new();
    loop {
        let row = p.standby.must(&find);
        if let Some((ev, pid)) = row.split_once(' ')
            && ev == event
        {
            return (child, pid.to_owned());
        }
        if !row.is_empty() {
            seen = row;
        }
        assert!(
            Instant::now() < deadline,
            "{tag}: the standby backend never waited on {event}; last seen (wait_event pid): {seen:?}"
        );
        sleep(Duration::from_millis(20));
    }
}

/// Cancel the standby backend and wait for its psql to end.
fn cancel(p: &Pair, pid: &str, mut child: Child) {
    assert_eq!(
        p.standby.must(&format!("SELECT pg_cancel_backend({pid})")),
        "t"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("psql still running 10 s after the cancel");
        }
        sleep(Duration::from_millis(10));
    }
    let output = child.wait_with_output().expect("output");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("canceling statement due to user request"),
        "{stderr}"
    );
}

/// The primary's conninfo with an application_name.
fn tagged(node: &Node, tag: &str) -> String {
    format!("{} application_name={tag}", node.conninfo())
}

#[test]
fn standby_backend_shows_what_it_waits_for() {
    let p = pair();

    // Connecting: a "server" that accepts and never says a word.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().unwrap().port();
    let (child, pid) = standby_waiting(
        p,
        "wait_connect",
        &format!(
            "SELECT netbuf_test.request('host=127.0.0.1 port={port} user=postgres', '\\x45'::bytea)"
        ),
        netbuf_wait_event("NetbufConnect"),
    );
    cancel(p, &pid, child);
    drop(silent);

    // Receiving: the primary's 'S' handler sleeps 60 s before it replies.
    let (child, pid) = standby_waiting(
        p,
        "wait_recv",
        &format!(
            "SELECT netbuf_test.request('{}', '\\x530000ea60'::bytea)",
            tagged(&p.primary, "wait_recv")
        ),
        netbuf_wait_event("NetbufRecv"),
    );
    cancel(p, &pid, child);

    // Sending: the serving backend sleeps in 'S' and reads nothing, so
    // 32 MiB fill the socket buffers.
    let (child, pid) = standby_waiting(
        p,
        "wait_send",
        &format!(
            "SELECT netbuf_test.send_all('{}', ARRAY['\\x530000ea60'::bytea, \
             '\\x45'::bytea || convert_to(repeat('x', 32 * 1024 * 1024), 'UTF8')])",
            tagged(&p.primary, "wait_send")
        ),
        netbuf_wait_event("NetbufSend"),
    );
    cancel(p, &pid, child);

    p.standby.assert_no_crash();
    say_which_events("standby_backend_shows_what_it_waits_for");
}

/// Log in over the primary's Unix socket and enter COPY BOTH by hand: a
/// client that never reads, which libpq cannot be.
fn raw_channel(node: &Node, application_name: &str) -> UnixStream {
    let path = node.socket_dir.join(format!(".s.PGSQL.{}", node.port));
    let mut sock = UnixStream::connect(&path).expect("connect to the Unix socket");
    let mut startup = 196_608u32.to_be_bytes().to_vec(); // protocol 3.0
    for (key, value) in [
        ("user", "postgres"),
        ("database", "postgres"),
        ("application_name", application_name),
    ] {
        startup.extend(key.as_bytes().iter().chain(b"\0"));
        startup.extend(value.as_bytes().iter().chain(b"\0"));
    }
    startup.push(0);
    sock.write_all(&(startup.len() as u32 + 4).to_be_bytes())
        .and_then(|()| sock.write_all(&startup))
        .expect("startup packet");
    read_until(&mut sock, b'Z'); // ReadyForQuery
    let query = b"CALL netbuf.serve()\0";
    let mut msg = vec![b'Q'];
    msg.extend((query.len() as u32 + 4).to_be_bytes());
    msg.extend(query);
    sock.write_all(&msg).expect("CALL");
    read_until(&mut sock, b'W'); // CopyBothResponse
    sock
}

/// Read messages up to one of type `want`; an ErrorResponse fails the test.
fn read_until(sock: &mut UnixStream, want: u8) {
    use std::io::Read;
    loop {
        let mut header = [0u8; 5];
        sock.read_exact(&mut header).expect("message header");
        let len = u32::from_be_bytes(header[1..].try_into().unwrap()) as usize - 4;
        let mut body = vec![0; len];
        sock.read_exact(&mut body).expect("message body");
        assert_ne!(header[0], b'E', "{}", String::from_utf8_lossy(&body));
        if header[0] == want {
            return;
        }
    }
}

/// The wait_event of the serving backend named tag, once it is `event`.
fn serving_backend_waits_on(p: &Pair, tag: &str, event: &str) {
    p.primary
        .wait_for(
            &format!(
                "SELECT wait_event FROM pg_stat_activity WHERE application_name = '{tag}' \
                 AND query LIKE 'CALL netbuf.serve(%'"
            ),
            event,
            Duration::from_secs(20),
        )
        .unwrap_or_else(|e| panic!("{tag}: {e}"));
}

#[test]
fn serving_backend_shows_what_it_waits_for() {
    let p = pair();

    // Waiting for a request: an idle channel.
    let tag = "wait_serve_idle";
    let mut client = Client::connect(&tagged(&p.primary, tag)).expect("connect");
    assert_eq!(client.request(b"Ehi").unwrap(), b"Ehi");
    serving_backend_waits_on(p, tag, netbuf_wait_event("NetbufServeRecv"));
    // And it still answers.
    assert_eq!(client.request(b"Eagain").unwrap(), b"Eagain");
    drop(client);

    // Writing replies: echoes of 32 kB to a client that never reads fill
    // the socket, and the rest of the replies wait to be sent.  Back-pressure
    // stops the serving backend reading, so the writes block: stop at the
    // first one that does (at most 200 requests).
    let tag = "wait_serve_write";
    let mut raw = raw_channel(&p.primary, tag);
    raw.set_write_timeout(Some(Duration::from_secs(2)))
        .expect("write timeout");
    let mut request = vec![b'd'];
    request.extend((32 * 1024 + 4u32).to_be_bytes());
    request.push(b'E');
    request.extend(vec![b'w'; 32 * 1024 - 1]);
    for _ in 0..200 {
        if raw.write_all(&request).is_err() {
            break;
        }
    }
    serving_backend_waits_on(p, tag, netbuf_wait_event("NetbufServeSend"));
    drop(raw);

    p.primary.assert_no_crash();
    say_which_events("serving_backend_shows_what_it_waits_for");
}

// ---- the magic block (18+) ---------------------------------------------------

#[test]
fn loaded_module_names_netbuf_and_its_version() {
    let p = pair();
    if pg_major() < 18 {
        say(&format!(
            "SKIPPED loaded_module_names_netbuf_and_its_version: PostgreSQL {} has no \
             pg_get_loaded_modules() nor module names in the magic block (new in 18)",
            server_version(&p.primary)
        ));
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
