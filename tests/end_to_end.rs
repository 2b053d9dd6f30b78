//! End to end, against a real primary and a real streaming standby: the
//! seed's exchange from a standby backend (load_file + include/netbuf.h),
//! the Rust API, handlers, bad input, permissions and interrupts.
//!
//! Needs `make install install-test-module` first; `make test` does it.

use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use netbuf::demo_op::{decode_int32s, encode_add300};
use netbuf::{Client, ConnectOptions, Error};
use netbuf_testkit::test_module::{bytea_literal, hex, sleep_msg, standby_request};
use netbuf_testkit::wire::RawChannel;
use netbuf_testkit::{
    BackgroundSql, Node, Pair, PairOptions, assert_sql_error, netbuf_wait_event, psql_command,
    serving_backend, serving_backend_waiting, shared_pair_with, tagged_conninfo,
};

/// A role that may log in but has no EXECUTE on netbuf.serve().
const NO_GRANT_ROLE: &str = "netbuf_nogrant";
/// A role with the grant and nothing else.
const GRANTED_ROLE: &str = "netbuf_granted";
/// A role whose sessions time out after 1 s in every way PostgreSQL 15 can.
const TIMEOUT_ROLE: &str = "netbuf_timeouts";

fn options() -> PairOptions {
    // The test module adds op codes R, S, z and F to every serving backend.
    let mut opts = PairOptions::with_test_module();
    opts.setup_sql.extend([
        format!("CREATE ROLE {NO_GRANT_ROLE} LOGIN"),
        format!("CREATE ROLE {GRANTED_ROLE} LOGIN"),
        format!("GRANT EXECUTE ON PROCEDURE netbuf.serve TO {GRANTED_ROLE}"),
        "CREATE DATABASE without_netbuf".into(),
        format!("CREATE ROLE {TIMEOUT_ROLE} LOGIN"),
        format!("GRANT EXECUTE ON PROCEDURE netbuf.serve TO {TIMEOUT_ROLE}"),
        format!(
            "ALTER ROLE {TIMEOUT_ROLE} SET statement_timeout = '1s'; \
                 ALTER ROLE {TIMEOUT_ROLE} SET idle_session_timeout = '1s'; \
                 ALTER ROLE {TIMEOUT_ROLE} SET idle_in_transaction_session_timeout = '1s'"
        ),
    ]);
    opts
}

fn pair() -> &'static Pair {
    shared_pair_with(options)
}

/// Panics unless `outcome` is an error with `sqlstate` whose text says
/// `text` (and, given one, whose hint says `hint`); returns the error.
fn expect_error<T: std::fmt::Debug>(
    outcome: Result<T, Error>,
    sqlstate: &str,
    text: &str,
    hint: Option<&str>,
) -> Error {
    let error = match outcome {
        Ok(v) => panic!("expected an error {sqlstate} saying {text:?}, got {v:?}"),
        Err(e) => e,
    };
    assert_eq!(error.sqlstate(), sqlstate, "{error:?}");
    assert!(
        error.to_string().contains(text),
        "{error:?} should say {text:?}"
    );
    if let Some(hint) = hint {
        assert!(
            error.hint().is_some_and(|h| h.contains(hint)),
            "{error:?} should hint {hint:?}"
        );
    }
    error
}

// ---- the seed's exchange, from a standby backend -------------------------

#[test]
fn standby_backend_sends_n_100_200_300_and_gets_400_500_600() {
    let p = pair();
    assert_eq!(p.standby.must("SELECT pg_is_in_recovery()"), "t");
    // NULL conninfo: the standby's primary_conninfo, as the seed does.
    assert_eq!(
        p.standby
            .must("SELECT netbuf_test.exchange_n(NULL, '{100,200,300}')"),
        "{400,500,600}"
    );
    // Other values, and an explicit conninfo without dbname.
    let conninfo = format!("host=127.0.0.1 port={} user=postgres", p.primary.port);
    assert_eq!(
        p.standby.must(&format!(
            "SELECT netbuf_test.exchange_n('{conninfo}', '{{1,2,3,4}}')"
        )),
        "{301,302,303,304}"
    );
    assert_eq!(
        p.standby
            .must("SELECT netbuf_test.exchange_n(NULL, '{-300,0,2147483347}')"),
        "{0,300,2147483647}"
    );
    assert_eq!(
        p.standby.must("SELECT netbuf_test.exchange_n('', '{7}')"),
        "{307}"
    );
}

#[test]
fn standby_backend_echo_and_module_handler() {
    let p = pair();
    let echo = p
        .standby
        .must("SELECT netbuf_test.request(NULL, '\\x4500ff00'::bytea)");
    assert_eq!(echo, "\\x4500ff00");
    // 'R' comes from the test module loaded into the serving backend.
    let reversed = p
        .standby
        .must("SELECT netbuf_test.request(NULL, convert_to('Rabc', 'UTF8'))");
    assert_eq!(reversed, format!("\\x{}", hex(b"Rcba")));
}

// ---- the Rust API ---------------------------------------------------------

#[test]
fn rust_api_seed_exchange() {
    let mut client = Client::connect(&pair().primary.conninfo()).expect("connect");
    let reply = client.request(&encode_add300(&[100, 200, 300])).unwrap();
    assert_eq!(reply.len(), 12);
    assert_eq!(decode_int32s(&reply), Some(vec![400, 500, 600]));
}

#[test]
fn rust_api_echo_payloads_round_trip_intact() {
    let mut client = Client::connect(&pair().primary.conninfo()).expect("connect");
    let mut big = vec![b'E'];
    big.extend((0..1024 * 1024).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
    let payloads: Vec<Vec<u8>> = vec![
        b"E".to_vec(),           // empty payload: the message is just the op
        b"Ex".to_vec(),          // one byte
        b"E\0a\0\0b\0".to_vec(), // NULs inside
        big,                     // 1 MiB of payload
    ];
    for payload in &payloads {
        let reply = client.request(payload).unwrap();
        assert_eq!(reply.len(), payload.len());
        assert!(
            reply == *payload,
            "echo of {} bytes came back changed",
            payload.len()
        );
    }
}

#[test]
fn rust_api_ten_thousand_messages_in_order() {
    let mut client = Client::connect(&pair().primary.conninfo()).expect("connect");
    for i in 0..10_000i32 {
        let reply = client.request(&encode_add300(&[i, -i])).unwrap();
        assert_eq!(
            decode_int32s(&reply),
            Some(vec![i + 300, 300 - i]),
            "reply {i}"
        );
    }
}

#[test]
fn rust_api_pipelines_64_requests_in_order() {
    let mut client = Client::connect(&pair().primary.conninfo()).expect("connect");
    let mut next = 0u32;
    for _batch in 0..100 {
        let first = next;
        for _ in 0..64 {
            let mut request = b"E".to_vec();
            request.extend_from_slice(&next.to_be_bytes());
            client.queue(&request).unwrap();
            next += 1;
        }
        client.flush().unwrap();
        for expected in first..next {
            let reply = client.recv().unwrap().expect("a reply");
            assert_eq!(reply[1..], expected.to_be_bytes(), "replies out of order");
        }
    }
    // Large messages in flight at once must not deadlock either.
    let big: Vec<Vec<u8>> = (0..8u8)
        .map(|i| [vec![b'E', i], vec![i; 1 << 20]].concat())
        .collect();
    for message in &big {
        client.queue(message).unwrap();
    }
    for message in &big {
        assert!(client.recv().unwrap().expect("a reply") == &message[..]);
    }
}

#[test]
fn standby_backend_pipelines_with_queue_and_flush() {
    let p = pair();
    assert_eq!(
        p.standby
            .must("SELECT netbuf_test.pipeline(NULL, 6400, 64)"),
        "6400"
    );
    assert_eq!(
        p.standby.must("SELECT netbuf_test.pipeline(NULL, 10, 1)"),
        "10"
    );
}

#[test]
fn rust_api_module_handler_answers_its_op() {
    let mut client = Client::connect(&pair().primary.conninfo()).expect("connect");
    assert_eq!(client.request(b"Rhello").unwrap(), b"Rolleh");
}

#[test]
fn conninfo_without_dbname_uses_postgres_and_shows_in_pg_stat_activity() {
    let p = pair();
    let conninfo = format!(
        "postgresql://postgres@127.0.0.1:{}?application_name=nodb_probe",
        p.primary.port
    );
    let mut client = Client::connect(&conninfo).expect("connect with a URI and no dbname");
    assert_eq!(client.request(b"Eping").unwrap(), b"Eping");
    // The serving backend tells the truth: database, query, no snapshot held.
    let row = p.primary.must(
        "SELECT datname, query, backend_xmin IS NULL, backend_xid IS NULL FROM pg_stat_activity \
         WHERE application_name = 'nodb_probe'",
    );
    assert_eq!(
        row,
        "postgres|CALL netbuf.serve(max_reply_size => 67108864)|t|t"
    );
    client.close();
    p.primary
        .wait_for(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'nodb_probe'",
            "0",
            Duration::from_secs(5),
        )
        .expect("the serving backend exits when the client closes");
}

#[test]
fn idle_channel_outlives_timeouts_holds_no_snapshot_and_blocks_no_drop_database() {
    let p = pair();
    let conninfo = format!(
        "{} application_name=idle_timeouts",
        p.primary.conninfo_db("postgres", TIMEOUT_ROLE)
    );
    let mut client = Client::connect(&conninfo).expect("connect");
    assert_eq!(client.request(b"Ebefore").unwrap(), b"Ebefore");
    // Idle for longer than statement_timeout and the idle timeouts (1 s).
    sleep(Duration::from_millis(2500));
    let row = p.primary.must(
        "SELECT state, xact_start IS NULL, backend_xmin IS NULL, backend_xid IS NULL \
         FROM pg_stat_activity WHERE application_name = 'idle_timeouts'",
    );
    assert_eq!(
        row, "idle|t|t|t",
        "the idle channel holds a transaction, a snapshot or an xid"
    );
    // DROP DATABASE waits for every backend to absorb a ProcSignalBarrier.
    p.primary.must("CREATE DATABASE drop_me");
    let t0 = Instant::now();
    p.primary.must("DROP DATABASE drop_me");
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "DROP DATABASE took {:?}",
        t0.elapsed()
    );
    assert_eq!(client.request(b"Eafter").unwrap(), b"Eafter");
}

#[test]
fn oversized_message_is_refused_and_the_channel_goes_on() {
    let p = pair();
    let conninfo = format!(
        "{} options='-c netbuf.max_message_size=1024'",
        p.primary.conninfo()
    );
    let mut client = Client::connect(&conninfo).expect("connect");
    let at_limit = [vec![b'E'], vec![7u8; 1023]].concat();
    assert_eq!(client.request(&at_limit).unwrap(), at_limit);
    let over = [vec![b'E'], vec![7u8; 4096]].concat();
    expect_error(
        client.request(&over),
        "54000",
        "message of 4097 bytes exceeds netbuf.max_message_size (1024 bytes)",
        None,
    );
    assert_eq!(client.request(b"Estill here").unwrap(), b"Estill here");
    p.primary.assert_no_crash();
}

#[test]
fn reply_over_the_clients_limit_is_refused_by_the_primary() {
    let p = pair();
    // The Rust client's limit travels in CALL netbuf.serve(max_reply_size).
    let options = ConnectOptions::default().max_message_size(1024);
    let mut client = Client::connect_with(&p.primary.conninfo(), &options).expect("connect");
    let at_limit = [vec![b'E'], vec![7u8; 1023]].concat();
    assert_eq!(client.request(&at_limit).unwrap(), at_limit);
    // The primary accepts the 1025-byte request but not its echo.
    let over = [vec![b'E'], vec![7u8; 1024]].concat();
    expect_error(
        client.request(&over),
        "54000",
        "reply of 1025 bytes to op code 0x45 exceeds the client's limit of 1024 bytes",
        Some("netbuf.max_message_size"),
    );
    assert_eq!(client.request(b"Estill here").unwrap(), b"Estill here");
    let error = Client::connect_with(
        &p.primary.conninfo(),
        &ConnectOptions::default().max_message_size(1),
    )
    .err()
    .expect("limit out of range");
    assert!(
        error
            .to_string()
            .contains("max_message_size 1 is out of range"),
        "{error}"
    );

    // A standby backend's limit is the standby's netbuf.max_message_size.
    let big = format!("'\\x45{}'::bytea", "07".repeat(1024));
    p.standby.expect_error(
        &format!("SET netbuf.max_message_size = '1kB'; SELECT netbuf_test.request(NULL, {big})"),
        "54000",
        "netbuf: reply of 1025 bytes to op code 0x45 exceeds the client's limit of 1024 bytes",
    );
    let echoed = p
        .standby
        .sql_verbose(&format!(
            "SET netbuf.max_message_size = '2kB'; SELECT length(netbuf_test.request(NULL, {big}))"
        ))
        .expect("within the limit");
    assert_eq!(echoed.lines().last(), Some("1025"), "{echoed}");
    p.primary.assert_no_crash();
    p.standby.assert_no_crash();
}

#[test]
fn rust_panics_below_c_entry_points_end_as_clean_errors() {
    let p = pair();
    let watch = p.crash_watch();
    // Standby side: one session keeps its channel across the panics (the
    // seed's model); each panic poisons the channel, the next call
    // reconnects, and a reply of the old stream never answers a new request.
    let script = [
        "SET netbuf.debug_panic_at = 'send';",
        "SELECT netbuf_test.session_request('\\x4501'::bytea);",
        "SET netbuf.debug_panic_at = 'recv';",
        "SELECT netbuf_test.session_request('\\x4502'::bytea);",
        "SET netbuf.debug_panic_at = 'none';",
        "SELECT netbuf_test.session_request('\\x4503'::bytea);",
        "SET netbuf.debug_panic_at = 'connect';",
        "SELECT netbuf_test.request(NULL, '\\x4504'::bytea);",
        "RESET netbuf.debug_panic_at;",
        "SELECT netbuf_test.request(NULL, '\\x4505'::bytea);",
    ]
    .join("\n");
    let (stdout, stderr) = p.standby.script(&script);
    for point in ["send", "recv", "connect"] {
        assert_sql_error(
            &stderr,
            "XX000",
            &format!(
                "netbuf: internal error: Rust panic: injected by netbuf.debug_panic_at = {point}"
            ),
        );
    }
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        ["SET", "SET", "SET", "\\x4503", "SET", "RESET", "\\x4505"],
        "{stderr}"
    );

    // Primary side: the 'N' handler is Rust; its panic reaches the client
    // as the primary's ERROR and the channel goes on.
    let conninfo = format!(
        "{} options='-c netbuf.debug_panic_at=serve'",
        p.primary.conninfo()
    );
    let mut client = Client::connect(&conninfo).expect("connect");
    expect_error(
        client.request(&encode_add300(&[1])),
        "XX000",
        "Rust panic: injected by netbuf.debug_panic_at = serve",
        None,
    );
    assert_eq!(client.request(b"Eafter").unwrap(), b"Eafter");
    watch.assert_intact();
}

// ---- bad input ------------------------------------------------------------

#[test]
fn rust_api_bad_requests_get_clear_errors_and_the_channel_recovers() {
    let p = pair();
    let watch = p.primary.crash_watch();
    let mut client = Client::connect(&p.primary.conninfo()).expect("connect");

    let cases: [(&[u8], &str, &str); 5] = [
        (b"Zabc", "08P01", "unknown op code 0x5a ('Z')"),
        (b"N", "08P01", "'N' message: it carries no value"),
        (b"N\0\0\0\x01\0\0", "08P01", "length 7 is not 1 + 4k"),
        (b"z", "08P01", "produced an empty reply"),
        (b"F", "22000", "handler 'F' failed on purpose"),
    ];
    for (request, sqlstate, text) in cases {
        expect_error(client.request(request), sqlstate, text, None);
        // The same channel works again right away.
        let reply = client.request(&encode_add300(&[1])).unwrap();
        assert_eq!(decode_int32s(&reply), Some(vec![301]));
    }

    let error = client.send(b"").expect_err("empty message");
    assert!(matches!(error, Error::InvalidArgument(_)), "{error:?}");
    assert!(error.to_string().contains("empty message"), "{error}");
    assert_eq!(client.request(b"Eok").unwrap(), b"Eok");
    watch.assert_intact();
}

#[test]
fn standby_backend_bad_requests_get_clear_errors_and_the_session_recovers() {
    let p = pair();
    let watch = p.crash_watch();
    // One standby session keeps its channel across the errors (seed model):
    // a psql script on stdin goes on after a failed statement.
    let script = [
        "SELECT netbuf_test.session_request('\\x4e'::bytea);",
        "SELECT netbuf_test.session_request('\\x5a00'::bytea);",
        "SELECT netbuf_test.session_request('\\x4e000001'::bytea);",
        "SELECT netbuf_test.session_request(''::bytea);",
        "SELECT netbuf_test.session_request('\\x7a'::bytea);",
        "SELECT netbuf_test.session_request('\\x4e00000064000000c80000012c'::bytea);",
    ]
    .join("\n");
    let (stdout, stderr) = p.standby.script(&script);
    for (sqlstate, message) in [
        (
            "08P01",
            "netbuf: malformed 'N' message: it carries no value",
        ),
        ("08P01", "netbuf: unknown op code 0x5a ('Z')"),
        (
            "08P01",
            "netbuf: malformed 'N' message: length 4 is not 1 + 4k",
        ),
        ("22023", "netbuf: cannot send an empty message"),
        (
            "08P01",
            "netbuf: the handler for op code 0x7a produced an empty reply",
        ),
    ] {
        assert_sql_error(&stderr, sqlstate, message);
    }
    assert!(
        stderr.contains("CONTEXT:  netbuf: error reported by the primary"),
        "{stderr}"
    );
    // After all that, the same backend's channel still answers.
    assert_eq!(
        stdout.trim(),
        format!("\\x{}", hex(&[0, 0, 1, 144, 0, 0, 1, 244, 0, 0, 2, 88]))
    );
    watch.assert_intact();
}

#[test]
fn c_api_misuse_raises_errors_not_crashes() {
    let p = pair();
    let watch = p.standby.crash_watch();
    for (what, text) in [
        ("null_conn_send", "the connection is NULL"),
        ("null_conn_recv", "the connection is NULL"),
        ("null_buffer", "the buffer is NULL but nbytes is 4"),
        ("negative_length", "negative length -1"),
        ("empty", "cannot send an empty message"),
    ] {
        p.standby.expect_error(
            &format!("SELECT netbuf_test.misuse('{what}')"),
            "22023",
            text,
        );
    }
    watch.assert_intact();
}

// ---- who may connect ------------------------------------------------------

#[test]
fn role_without_grant_is_refused() {
    let p = pair();
    let conninfo = p.primary.conninfo_db("postgres", NO_GRANT_ROLE);
    expect_error(
        Client::connect(&conninfo).map(|_| "a channel"),
        "42501",
        "permission denied for procedure serve",
        Some("GRANT EXECUTE ON PROCEDURE netbuf.serve"),
    );
    // From a standby backend: the same error, with its SQLSTATE.
    p.standby.expect_error(
        &format!("SELECT netbuf_test.request('{conninfo}', '\\x45'::bytea)"),
        "42501",
        "permission denied for procedure serve",
    );
    // The grant is all it takes.
    let mut client =
        Client::connect(&p.primary.conninfo_db("postgres", GRANTED_ROLE)).expect("granted role");
    assert_eq!(client.request(b"Eyes").unwrap(), b"Eyes");
}

#[test]
fn primary_without_extension_is_named_as_the_cause() {
    let p = pair();
    expect_error(
        Client::connect(&p.primary.conninfo_db("without_netbuf", "postgres")).map(|_| "a channel"),
        "3F000",
        "schema \"netbuf\" does not exist",
        Some("CREATE EXTENSION netbuf"),
    );
}

#[test]
fn connect_errors_never_show_the_password() {
    let p = pair();
    let conninfo = format!(
        "host=127.0.0.1 port={} user=nosuchrole password=Sup3rSecret",
        p.primary.port
    );
    let error = Client::connect(&conninfo).err().expect("unknown role");
    assert!(matches!(error, Error::Connect(_)), "{error:?}");
    assert!(error.to_string().contains("nosuchrole"), "{error}");
    assert!(!format!("{error:?}").contains("Sup3rSecret"), "{error:?}");
    let error = standby_request(&p.standby, &conninfo).unwrap_err();
    assert_sql_error(&error, "08001", "netbuf: could not connect to the primary");
    assert!(!error.contains("Sup3rSecret"), "{error}");
}

// ---- interrupts -----------------------------------------------------------

/// A psql on the standby whose backend waits in netbuf_recv (the
/// primary's test handler 'S' sleeps 60 s before replying); returns it and
/// its backend's pid.
fn start_blocked_standby_call(p: &Pair, tag: &str) -> (BackgroundSql, libc::pid_t) {
    let sql = format!(
        "SELECT netbuf_test.request('{}', {})",
        tagged_conninfo(&p.primary, tag),
        bytea_literal(&sleep_msg(60_000))
    );
    start_blocked_standby_sql(p, tag, &sql)
}

/// Runs sql in a psql on the standby and returns once its backend sleeps
/// on its latch inside netbuf (wait_event_type Extension), with the
/// backend's pid.
fn start_blocked_standby_sql(p: &Pair, tag: &str, sql: &str) -> (BackgroundSql, libc::pid_t) {
    let call = BackgroundSql::start(&p.standby, tag, sql);
    let pid = call.backend_when(&p.standby, "wait_event_type = 'Extension'");
    (call, pid)
}

/// Waits (10 s at most) for a blocked call interrupted at `since` to end;
/// returns its stderr and how long it took.
fn finish(call: BackgroundSql, since: Instant) -> (String, Duration) {
    let ended = call.finish(since, Duration::from_secs(10));
    eprintln!(
        "interrupted call ended {:?} after the signal",
        ended.elapsed
    );
    (ended.stderr, ended.elapsed)
}

/// What a terminated backend's client is told.
const TERMINATED: &str = "terminating connection due to administrator command";

/// pg_cancel_backend or pg_terminate_backend.
#[derive(Clone, Copy, Debug)]
enum Interrupt {
    Cancel,
    Terminate,
}

impl Interrupt {
    fn function(self) -> &'static str {
        match self {
            Interrupt::Cancel => "pg_cancel_backend",
            Interrupt::Terminate => "pg_terminate_backend",
        }
    }

    /// What the interrupted statement's client is told.
    fn message(self) -> &'static str {
        match self {
            Interrupt::Cancel => "canceling statement due to user request",
            Interrupt::Terminate => TERMINATED,
        }
    }
}

/// Interrupts backend `pid` on `node` and checks that the blocked call
/// ends within a second, saying so.
fn interrupt_within_a_second(node: &Node, how: Interrupt, pid: libc::pid_t, call: BackgroundSql) {
    let t0 = Instant::now();
    node.signal_backend(how.function(), pid);
    let (stderr, elapsed) = finish(call, t0);
    assert!(stderr.contains(how.message()), "{how:?}: {stderr}");
    assert!(elapsed < Duration::from_secs(1), "{how:?} took {elapsed:?}");
}

#[test]
fn cancel_ends_a_standby_backend_blocked_in_recv_within_a_second() {
    let p = pair();
    let (call, pid) = start_blocked_standby_call(p, "cancel_standby");
    interrupt_within_a_second(&p.standby, Interrupt::Cancel, pid, call);
    // The backend survived the cancel.
    p.standby.assert_no_crash();
}

#[test]
fn cancel_ends_a_standby_backend_blocked_in_connect_within_a_second() {
    let p = pair();
    // A "server" that accepts the TCP connection and never says a word.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().unwrap().port();
    let sql = format!(
        "SELECT netbuf_test.request('host=127.0.0.1 port={port} user=postgres', '\\x45'::bytea)"
    );
    let (call, pid) = start_blocked_standby_sql(p, "cancel_connect", &sql);
    interrupt_within_a_second(&p.standby, Interrupt::Cancel, pid, call);
    // The interrupted connect released its socket and file descriptor count.
    assert_eq!(
        p.standby.must("SELECT netbuf_test.exchange_n(NULL, '{1}')"),
        "{301}"
    );
    drop(silent);
}

#[test]
fn terminate_ends_a_standby_backend_blocked_in_send_within_a_second() {
    let p = pair();
    // The serving backend sleeps in 'S' and reads nothing, so 32 MiB fills
    // the socket buffers and netbuf_send waits for the socket.
    let sql = format!(
        "SELECT netbuf_test.send_all('{}', ARRAY[{}, \
         '\\x45'::bytea || convert_to(repeat('x', 32 * 1024 * 1024), 'UTF8')])",
        tagged_conninfo(&p.primary, "terminate_send"),
        bytea_literal(&sleep_msg(60_000))
    );
    let (call, pid) = start_blocked_standby_sql(p, "terminate_send", &sql);
    // Once the primary sleeps in 'S', the standby is past connect and 'S':
    // its wait is the 32 MiB send.
    serving_backend_waiting(&p.primary, "terminate_send", "Extension");
    assert_eq!(
        p.standby.must(&format!(
            "SELECT wait_event FROM pg_stat_activity WHERE pid = {pid}"
        )),
        netbuf_wait_event("NetbufSend")
    );
    interrupt_within_a_second(&p.standby, Interrupt::Terminate, pid, call);
    p.standby.assert_no_crash();
}

#[test]
fn terminate_ends_a_standby_backend_blocked_in_recv_within_a_second() {
    let p = pair();
    let (call, pid) = start_blocked_standby_call(p, "terminate_standby");
    interrupt_within_a_second(&p.standby, Interrupt::Terminate, pid, call);
    p.standby.assert_no_crash();
}

#[test]
fn cancel_and_terminate_reach_the_primary_serving_backend_within_a_second() {
    let p = pair();
    for (how, tag) in [
        (Interrupt::Cancel, "cancel_primary"),
        (Interrupt::Terminate, "terminate_primary"),
    ] {
        // The serving backend waits for input on its socket; a standby
        // backend waits for the 'S' reply on the other end.
        let (call, _) = start_blocked_standby_call(p, tag);
        let pid = serving_backend(&p.primary, tag);
        interrupt_within_a_second(&p.primary, how, pid, call);
        p.primary
            .wait_for(
                &format!(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = {pid} AND state = 'active'"
                ),
                "0",
                Duration::from_secs(5),
            )
            .expect("the serving backend stops serving");
    }
    p.primary.assert_no_crash();
}

#[test]
fn serving_backend_waiting_for_input_obeys_terminate() {
    let p = pair();
    let tag = "idle_channel";
    let mut client = Client::connect(&tagged_conninfo(&p.primary, tag)).expect("connect");
    assert_eq!(client.request(b"Ehi").unwrap(), b"Ehi");
    let pid = serving_backend_waiting(&p.primary, tag, netbuf_wait_event("NetbufServeRecv"));
    let t0 = Instant::now();
    p.primary.terminate_backend(pid);
    p.primary
        .wait_backend_exit(pid, Duration::from_secs(1))
        .expect("serving backend gone within a second");
    assert!(t0.elapsed() < Duration::from_secs(1));
    // libpq reports the primary's FATAL as part of the lost connection.
    let error = client.request(b"Eagain").expect_err("the channel is gone");
    assert!(matches!(error, Error::ConnectionLost(_)), "{error:?}");
    assert!(error.to_string().contains(TERMINATED), "{error}");
}

#[test]
fn terminating_the_serving_backend_fails_the_wait_and_the_next_request_reconnects() {
    let p = pair();
    let tag = "terminate_rust";
    let mut client = Client::connect(&tagged_conninfo(&p.primary, tag)).expect("connect");
    assert_eq!(client.request(b"Ebefore").unwrap(), b"Ebefore");
    // Blocked in recv on a one-minute 'S' when its serving backend goes.
    client.send(&[b'S', 0, 0, 0xea, 0x60]).unwrap();
    let pid = serving_backend(&p.primary, tag);
    let since = Instant::now();
    p.primary.terminate_backend(pid);
    let error = client.recv().expect_err("the serving backend is gone");
    let elapsed = since.elapsed();
    eprintln!("recv failed {elapsed:?} after pg_terminate_backend: {error}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    assert!(error.to_string().contains(TERMINATED), "{error}");
    // A new connection; the old stream's "S" can never answer this.
    assert_eq!(client.request(b"Eafter").unwrap(), b"Eafter");
    assert_ne!(serving_backend(&p.primary, tag), pid);
    p.primary.assert_no_crash();
}

#[test]
fn terminating_a_standby_backend_ends_its_serving_backend() {
    let p = pair();
    let tag = "terminate_holder";
    let sql = format!(
        "SELECT netbuf_test.hold('{}', 60000)",
        tagged_conninfo(&p.primary, tag)
    );
    let (call, standby_pid) = start_blocked_standby_sql(p, tag, &sql);
    let serving = serving_backend(&p.primary, tag);
    let since = Instant::now();
    p.standby.terminate_backend(standby_pid);
    let (stderr, _) = finish(call, since);
    assert!(stderr.contains(TERMINATED), "{stderr}");
    p.primary
        .wait_backend_exit(serving, Duration::from_secs(5))
        .expect("the serving backend of a terminated standby backend exits");
    eprintln!(
        "serving backend gone {:?} after the standby backend was terminated",
        since.elapsed()
    );
    p.primary.assert_no_crash();
    p.standby.assert_no_crash();
}

/// Terminates the backend serving `tag` once it waits on `wait_event`, and
/// requires it gone within a second.
fn terminate_when_waiting(p: &Pair, tag: &str, wait_event: &str) {
    let pid = serving_backend_waiting(&p.primary, tag, wait_event);
    let since = Instant::now();
    p.primary.terminate_backend(pid);
    p.primary
        .wait_backend_exit(pid, Duration::from_secs(1))
        .unwrap_or_else(|e| panic!("{tag}: serving backend outlived pg_terminate_backend: {e}"));
    eprintln!(
        "{tag}: serving backend gone {:?} after pg_terminate_backend",
        since.elapsed()
    );
}

#[test]
fn serving_backend_blocked_writing_a_large_reply_obeys_terminate() {
    let p = pair();
    let tag = "raw_stuck_writer";
    let mut raw = RawChannel::unix(&p.primary, tag);
    // A 1 MiB echo to a client that never reads: the reply fills the socket.
    let request: Vec<u8> = std::iter::once(b'E').chain(vec![7u8; 1 << 20]).collect();
    raw.send(b'd', &request);
    terminate_when_waiting(p, tag, "ClientWrite");
    p.primary.assert_no_crash();
}

#[test]
fn serving_backend_waiting_inside_a_large_request_obeys_terminate() {
    let p = pair();
    let tag = "raw_half_request";
    let mut raw = RawChannel::unix(&p.primary, tag);
    // One whole large request first: the next large one is read straight
    // from the socket, past pqcomm's buffer.
    let request: Vec<u8> = std::iter::once(b'E').chain(vec![9u8; 100_000]).collect();
    raw.send(b'd', &request);
    assert_eq!(raw.read_until(b'd'), request);
    // Then the header of a 1 MiB request and only 1000 bytes of it, in one
    // write, so that the serve loop sees the whole header at once.
    let mut partial = vec![b'd'];
    partial.extend(((1u32 << 20) + 4).to_be_bytes());
    partial.extend([b'E'; 1000]);
    raw.write(&partial);
    terminate_when_waiting(p, tag, "ClientRead");
    p.primary.assert_no_crash();
}

#[test]
fn large_and_small_messages_pipelined_round_trip_intact() {
    let p = pair();
    let mut client = Client::connect(&p.primary.conninfo()).expect("connect");
    // Around the 64 kB at which the serve loop leaves pqcomm's buffers.
    let sizes = [
        65_535,
        65_536,
        65_537,
        100_000,
        16,
        1 << 20,
        1,
        300_000,
        70_000,
        2,
    ];
    let messages: Vec<Vec<u8>> = (0..3)
        .flat_map(|round| sizes.iter().map(move |&n| (round, n)))
        .enumerate()
        .map(|(i, (_, n))| {
            std::iter::once(b'E')
                .chain((1..n).map(|j| ((i * 31 + j) % 253) as u8))
                .collect()
        })
        .collect();
    for message in &messages {
        client.queue(message).unwrap();
    }
    client.flush().unwrap();
    for (i, message) in messages.iter().enumerate() {
        let reply = client.recv().unwrap().expect("a reply");
        assert!(
            reply == &message[..],
            "reply {i} ({} bytes) differs",
            message.len()
        );
    }
    // Strict, and a refused one in a stream of large ones.
    let conninfo = format!(
        "{} options='-c netbuf.max_message_size=200kB'",
        p.primary.conninfo()
    );
    let mut client = Client::connect(&conninfo).expect("connect");
    let fine = [vec![b'E'], vec![3u8; 150_000]].concat();
    let over = [vec![b'E'], vec![4u8; 250_000]].concat();
    assert!(client.request(&fine).unwrap() == fine);
    expect_error(
        client.request(&over),
        "54000",
        "netbuf.max_message_size",
        None,
    );
    assert!(client.request(&fine).unwrap() == fine);
    p.primary.assert_no_crash();
}

#[test]
fn fast_shutdown_is_not_held_up_by_netbuf() {
    // A private pair: this test stops its servers.
    let mut p = Pair::start(options());
    let (call, _) = start_blocked_standby_call(&p, "shutdown_standby");
    let t0 = Instant::now();
    p.standby
        .pg_ctl(&["stop", "-m", "fast", "-w", "-t", "30"])
        .expect("standby stops");
    let standby_stop = t0.elapsed();
    let (stderr, _) = finish(call, t0);
    assert!(stderr.contains(TERMINATED), "{stderr}");

    let mut client = Client::connect(&p.primary.conninfo()).expect("connect");
    assert_eq!(client.request(b"Eup").unwrap(), b"Eup");
    let t0 = Instant::now();
    p.primary
        .pg_ctl(&["stop", "-m", "fast", "-w", "-t", "30"])
        .expect("primary stops");
    let primary_stop = t0.elapsed();
    assert!(
        standby_stop < Duration::from_secs(2),
        "standby fast shutdown took {standby_stop:?}"
    );
    assert!(
        primary_stop < Duration::from_secs(2),
        "primary fast shutdown took {primary_stop:?}"
    );
    assert!(client.request(b"Egone").is_err());
    p.stop();
}

// ---- the netbuf command-line tool -----------------------------------------

fn netbuf_cli(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_netbuf"))
        .args(args)
        .output()
        .expect("run netbuf");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn cli_ping_and_bench() {
    let p = pair();
    let conninfo = p.primary.conninfo();
    let (ok, stdout, stderr) =
        netbuf_cli(&["ping", &conninfo, "-c", "3", "-s", "100", "-i", "0.05"]);
    assert!(ok, "{stderr}");
    assert_eq!(stdout.matches("100 bytes: seq=").count(), 3, "{stdout}");
    assert!(stdout.contains("3 sent, 3 received, 0% loss"), "{stdout}");
    assert!(stdout.contains("rtt min/avg/max/mdev = "), "{stdout}");

    let (ok, stdout, stderr) = netbuf_cli(&["bench", &conninfo, "-t", "1", "-d", "16"]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("msg/s") && stdout.contains("all replies checked"),
        "{stdout}"
    );
}

#[test]
fn cli_ping_prints_its_summary_on_ctrl_c() {
    let p = pair();
    let mut child = Command::new(env!("CARGO_BIN_EXE_netbuf"))
        .args(["ping", &p.primary.conninfo(), "-i", "0.1"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("run netbuf");
    // Interrupt once the first reply is printed (the handler is in place).
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut seen = String::new();
    while !seen.contains("seq=0 ") {
        let mut line = String::new();
        let n = std::io::BufRead::read_line(&mut stdout, &mut line).expect("read ping output");
        assert!(n > 0, "netbuf ping ended before its first reply: {seen}");
        seen.push_str(&line);
    }
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let deadline = Instant::now() + Duration::from_secs(5);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "netbuf ping ignored SIGINT");
        sleep(Duration::from_millis(20));
    }
    let status = child.wait().unwrap();
    std::io::Read::read_to_string(&mut stdout, &mut seen).expect("read ping output");
    let stdout = seen;
    assert!(status.success(), "{stdout}");
    assert!(
        stdout.contains("--- netbuf ping statistics ---")
            && stdout.contains("rtt min/avg/max/mdev"),
        "{stdout}"
    );
}

#[test]
fn cli_errors_name_the_cause() {
    let p = pair();
    let (ok, _, stderr) = netbuf_cli(&["ping", "host=127.0.0.1 nosuch=1", "-c", "1"]);
    assert!(
        !ok && stderr.contains("invalid connection string") && stderr.contains("nosuch"),
        "{stderr}"
    );
    let (ok, _, stderr) = netbuf_cli(&[
        "ping",
        &p.primary.conninfo_db("without_netbuf", "postgres"),
        "-c",
        "1",
    ]);
    assert!(
        !ok && stderr.contains("HINT: Run CREATE EXTENSION netbuf"),
        "{stderr}"
    );
    let (ok, _, stderr) = netbuf_cli(&[
        "ping",
        &p.primary.conninfo_db("postgres", NO_GRANT_ROLE),
        "-c",
        "1",
    ]);
    assert!(
        !ok && stderr.contains("permission denied for procedure serve"),
        "{stderr}"
    );
    let (ok, _, stderr) = netbuf_cli(&["ping"]);
    assert!(
        !ok && stderr.contains("required arguments were not provided")
            && stderr.contains("<CONNINFO>")
            && stderr.contains("Usage: netbuf ping"),
        "{stderr}"
    );
}

// ---- faults -----------------------------------------------------------------

#[test]
fn primary_restart_fails_the_blocked_call_and_the_next_send_reconnects() {
    // A private pair: this test restarts its primary.
    let p = Pair::start(options());
    let mut client = Client::connect(&p.primary.conninfo()).expect("connect");
    assert_eq!(client.request(b"Ebefore").unwrap(), b"Ebefore");
    let pm_standby = p.standby.postmaster_pid();

    for mode in ["fast", "immediate"] {
        let (call, _) = start_blocked_standby_call(&p, &format!("restart_{mode}"));
        let t0 = Instant::now();
        p.primary.restart(mode);
        let (stderr, elapsed) = finish(call, t0);
        assert!(
            stderr.contains("netbuf: lost the connection to the primary"),
            "{mode}: {stderr}"
        );
        assert!(
            elapsed < Duration::from_secs(5),
            "{mode}: the blocked call took {elapsed:?} to fail"
        );

        // The Rust client saw the same, then reconnects on its next send.
        let error = client
            .request(b"Eduring")
            .expect_err("the old connection is gone");
        assert!(
            matches!(error, Error::ConnectionLost(_)),
            "{mode}: {error:?}"
        );
        assert_eq!(
            client.request(b"Eafter").unwrap(),
            b"Eafter",
            "{mode}: reconnect"
        );
        // And a standby backend gets a fresh channel.
        assert_eq!(
            p.standby
                .must("SELECT netbuf_test.exchange_n(NULL, '{1,2}')"),
            "{301,302}"
        );
    }
    assert_eq!(
        p.standby.postmaster_pid(),
        pm_standby,
        "the standby restarted"
    );
    p.standby.assert_no_crash();
}

#[test]
fn serving_backend_killed_by_sigkill_then_standby_stopped_leaves_no_orphans() {
    // A private pair: SIGKILL makes the primary restart every backend.
    let mut p = Pair::start(options());
    let mut client = Client::connect(&tagged_conninfo(&p.primary, "sigkill")).expect("connect");
    assert_eq!(client.request(b"Ebefore").unwrap(), b"Ebefore");
    let pid = serving_backend(&p.primary, "sigkill");
    // SAFETY: kill(2) of the serving backend's pid, a process the test owns.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let error = client
        .request(b"Eduring")
        .expect_err("the serving backend is gone");
    assert!(matches!(error, Error::ConnectionLost(_)), "{error:?}");
    // Once the primary has recovered, the next send connects again.
    p.primary
        .wait_for("SELECT 1", "1", Duration::from_secs(30))
        .expect("primary back");
    assert_eq!(client.request(b"Eafter").unwrap(), b"Eafter");
    drop(client);

    // A standby session keeps a channel open (psql reads more from stdin),
    // then the standby stops: its serving backend on the primary must go.
    let mut session = psql_command(&p.standby.conninfo()).spawn().expect("psql");
    {
        use std::io::Write;
        let stdin = session.stdin.as_mut().expect("stdin");
        stdin
            .write_all(b"SELECT netbuf_test.session_request('\\x45'::bytea);\n")
            .unwrap();
        stdin.flush().unwrap();
    }
    p.primary
        .wait_for(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'CALL netbuf.serve(%'",
            "1",
            Duration::from_secs(20),
        )
        .expect("the standby session's channel is open");
    p.standby
        .pg_ctl(&["stop", "-m", "fast", "-w", "-t", "30"])
        .expect("standby stops");
    let t0 = Instant::now();
    p.primary
        .wait_for(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'CALL netbuf.serve(%'",
            "0",
            Duration::from_secs(5),
        )
        .expect("no orphaned serving backend");
    eprintln!(
        "serving backend gone {:?} after the standby stopped",
        t0.elapsed()
    );
    drop(session.stdin.take());
    let _ = session.wait();
    p.stop();
}
