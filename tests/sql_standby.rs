//! The standby side of netbuf from SQL (issue 10): netbuf.request(),
//! netbuf.requests(), netbuf.channels(), netbuf.disconnect(),
//! netbuf.disconnect_all() and the password rule, from psql on a real
//! streaming standby.  `CREATE EXTENSION netbuf` ran on the primary and
//! replicated; the primary preloads the test module, whose handlers 'S'
//! (sleep), 'F' (fail) and 'Q' (run SQL) the tests use.
//!
//! Needs `make install install-test-module` first; `make test` does it.

use std::time::Duration;

use netbuf_testkit::test_module::bytea_bytes;
use netbuf_testkit::{
    Pair, PairOptions, assert_sql_error, netbuf_wait_event, shared_pair_with, sql_literal,
    tagged_backends, tagged_conninfo, wait_tagged_backends,
};

/// The password of the primary's role `netbuf_pw`, which pg_hba.conf makes
/// authenticate with scram-sha-256 (every other role is trusted).
const PASSWORD: &str = "Sekrit-pw-4711";

fn options() -> PairOptions {
    let mut opts = PairOptions::with_test_module();
    opts.hba_lines = vec!["host all netbuf_pw 127.0.0.1/32 scram-sha-256".into()];
    opts.setup_sql.extend(
        [
            // On the primary: the role a non-superuser's channel logs in as.
            &format!("CREATE ROLE netbuf_pw LOGIN PASSWORD '{PASSWORD}'"),
            "GRANT EXECUTE ON PROCEDURE netbuf.serve TO netbuf_pw",
            // On the standby (they replicate): callers of the SQL API.
            "CREATE ROLE netbuf_nogrant LOGIN",
            "CREATE ROLE netbuf_caller LOGIN",
            "CREATE ROLE netbuf_allowed LOGIN",
            "GRANT EXECUTE ON FUNCTION netbuf.request(\"char\", bytea, text), \
             netbuf.requests(\"char\", bytea[], text), netbuf.channels(), \
             netbuf.disconnect(text), netbuf.disconnect_all() TO netbuf_caller, netbuf_allowed",
            // What a superuser does to allow the server's credentials to a role.
            "ALTER ROLE netbuf_allowed SET netbuf.password_required = off",
        ]
        .map(String::from),
    );
    opts
}

fn pair() -> &'static Pair {
    shared_pair_with(options)
}

/// A psql script on the standby as `user` (verbose errors, goes on after an
/// error): (stdout, stderr).
fn standby_script(user: &str, script: &str) -> (String, String) {
    let standby = &pair().standby;
    let mut cmd = netbuf_testkit::psql_command(&standby.conninfo_db("postgres", user));
    cmd.arg("-q");
    let mut child = cmd.spawn().expect("psql");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .expect("script to psql");
    let out = child.wait_with_output().expect("psql");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A conninfo to the primary as netbuf_pw with its password.
fn password_conninfo(tag: &str) -> String {
    let p = &pair().primary;
    format!(
        "host={} port={} user=netbuf_pw password={PASSWORD} dbname=postgres application_name={tag}",
        p.host, p.port
    )
}

fn no_errors(stderr: &str) {
    assert!(
        !stderr.contains("ERROR"),
        "unexpected error:\n{stderr}\n{}",
        pair().standby.log_tail()
    );
}

#[test]
fn request_echo_and_add300_over_primary_conninfo() {
    let standby = &pair().standby;
    assert_eq!(
        standby.must("SELECT encode(netbuf.request('E', 'hello'), 'escape')"),
        "Ehello"
    );
    // The seed's exchange: 'N' 100 200 300 -> 400 500 600.
    let reply =
        standby.must("SELECT netbuf.request('N', int4send(100) || int4send(200) || int4send(300))");
    let values: Vec<i32> = bytea_bytes(&reply)
        .chunks(4)
        .map(|c| i32::from_be_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(values, [400, 500, 600]);
    // NULL op or payload: NULL, nothing sent.
    assert_eq!(
        standby.must("SELECT netbuf.request('E', NULL) IS NULL, netbuf.request(NULL, 'x') IS NULL"),
        "t|t"
    );
}

#[test]
fn requests_are_pipelined_in_order() {
    let standby = &pair().standby;
    let tag = "sqlsb_pipeline";
    let conninfo = sql_literal(&tagged_conninfo(&pair().primary, tag));
    // 1000 requests, one flush, replies in order.
    let (out, err) = standby_script(
        "postgres",
        &format!(
            "WITH p AS (SELECT array_agg(convert_to('m' || i, 'UTF8') ORDER BY i) AS a \
                          FROM generate_series(1, 1000) i) \
             SELECT count(*), bool_and(r = '\\x45'::bytea || convert_to('m' || n, 'UTF8')) \
               FROM p, unnest(netbuf.requests('E', p.a, {conninfo})) WITH ORDINALITY AS u(r, n);\n\
             SELECT requests, replies, bytes_sent, bytes_received FROM netbuf.channels();\n\
             -- 200 requests of 64 kB: past the 1 MiB window, replies are taken while sending.\n\
             SELECT count(*), bool_and(length(r) = 65537 AND get_byte(r, 0) = 69 \
                    AND substr(r, 2, 8) = convert_to(lpad(n::text, 8, '0'), 'UTF8')) \
               FROM unnest(netbuf.requests('E', \
                      (SELECT array_agg(convert_to(lpad(i::text, 8, '0') || repeat('x', 65528), 'UTF8') \
                                        ORDER BY i) FROM generate_series(1, 200) i), \
                      {conninfo})) WITH ORDINALITY AS u(r, n);\n\
             SELECT netbuf.requests('E', '{{}}'::bytea[], {conninfo});\n\
             SELECT netbuf.requests('E', ARRAY['a', NULL, 'c']::bytea[], {conninfo});\n\
             SELECT netbuf.requests('E', '[5:6]={{a,NULL}}'::bytea[], {conninfo});\n"
        ),
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "1000|t",
            // 1000 messages of 'E' + "m1".."m1000": 2*9+3*90+4*900+5 = 3893 + 1000 op bytes.
            "1000|1000|4893|4893",
            "200|t",
            "{}"
        ],
        "stderr: {err}"
    );
    assert_sql_error(&err, "22004", "netbuf: payload 2 of the array is NULL");
    assert_sql_error(&err, "22004", "netbuf: payload 6 of the array is NULL");
    assert_eq!(err.matches("ERROR").count(), 2, "{err}");
    let _ = standby;
}

#[test]
fn the_primarys_errors_reach_psql_and_the_channel_goes_on() {
    let (out, err) = standby_script(
        "postgres",
        "SELECT netbuf.request('#', 'x');\n\
         SELECT netbuf.request('F', 'x');\n\
         SELECT netbuf.request('Q', convert_to($q$DO $do$BEGIN RAISE EXCEPTION 'boom from the primary' \
                USING ERRCODE = '22012', DETAIL = 'the detail', HINT = 'the hint'; END$do$$q$, 'UTF8'));\n\
         SELECT encode(netbuf.request('E', 'still here'), 'escape');\n\
         -- In a pipeline: the failing request's ERROR, the ones behind it dropped.\n\
         SELECT netbuf.requests('Q', ARRAY[convert_to('SELECT 1', 'UTF8'), \
                convert_to('SELECT 1/0', 'UTF8'), convert_to('SELECT 3', 'UTF8')]);\n\
         SELECT encode(r, 'escape') FROM unnest(netbuf.requests('Q', ARRAY[convert_to('SELECT 4', 'UTF8')])) r;\n\
         SELECT count(DISTINCT serving_pid), sum(requests), sum(replies), sum(errors), \
                bool_and(last_error = 'division by zero') FROM netbuf.channels();\n",
    );
    // The primary does not know op '#' (0x23).
    assert_sql_error(&err, "08P01", "netbuf: unknown op code 0x23");
    assert_sql_error(&err, "22000", "netbuf_test: handler 'F' failed on purpose");
    assert_sql_error(&err, "22012", "boom from the primary");
    assert!(err.contains("DETAIL:  the detail"), "{err}");
    assert!(err.contains("HINT:  the hint"), "{err}");
    assert_sql_error(&err, "22012", "division by zero");
    // One serving backend served all of it: an error of the primary ends
    // the stream cleanly, the next request re-enters it.
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["Estill here", "Q4", "1|8|3|4|t"],
        "{err}"
    );
}

#[test]
fn a_channel_is_reused_and_reopened_after_its_serving_backend_is_terminated() {
    let primary = &pair().primary;
    let tag = "sqlsb_reopen";
    let c1 = sql_literal(&tagged_conninfo(primary, tag));
    let c2 = sql_literal(&tagged_conninfo(primary, "sqlsb_reopen_killer"));
    let (out, err) = standby_script(
        "postgres",
        &format!(
            "SELECT encode(netbuf.request('E', 'one', {c1}), 'escape');\n\
             SELECT serving_pid AS pid1 FROM netbuf.channels() WHERE conninfo LIKE '%application_name={tag}' \\gset\n\
             SELECT encode(netbuf.request('E', 'two', {c1}), 'escape');\n\
             SELECT serving_pid = :pid1 FROM netbuf.channels() WHERE conninfo LIKE '%application_name={tag}';\n\
             -- Another channel terminates the first one's serving backend, and waits for its exit.\n\
             SELECT netbuf.request('Q', convert_to('SELECT pg_terminate_backend(' || :pid1 || ', 10000)', 'UTF8'), {c2});\n\
             SELECT encode(netbuf.request('E', 'three', {c1}), 'escape');\n\
             SELECT serving_pid <> :pid1, state, requests, replies, errors \
               FROM netbuf.channels() WHERE conninfo LIKE '%application_name={tag}';\n"
        ),
    );
    no_errors(&err);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "Eone",
            "Etwo",
            "t",
            "\\x5174",
            "Ethree",
            "t|streaming|3|3|0"
        ],
        "{err}"
    );
    // The session ended: its channels closed with it.
    wait_tagged_backends(primary, tag, 0, Duration::from_secs(20))
        .unwrap_or_else(|pids| panic!("serving backends left: {pids:?}"));
}

#[test]
fn a_timeout_or_cancel_never_leaves_a_stale_reply() {
    let primary = &pair().primary;
    let tag = "sqlsb_timeout";
    let c = sql_literal(&tagged_conninfo(primary, tag));
    let (out, err) = standby_script(
        "postgres",
        &format!(
            "SELECT encode(netbuf.request('E', 'before', {c}), 'escape');\n\
             SET statement_timeout = '300ms';\n\
             -- 'S' sleeps 1500 ms on the primary, then answers \"S\".\n\
             SELECT netbuf.request('S', int4send(1500), {c});\n\
             SELECT netbuf.requests('S', ARRAY[int4send(1500), int4send(1)], {c});\n\
             RESET statement_timeout;\n\
             SELECT pg_sleep(2);\n\
             SELECT encode(netbuf.request('E', 'after', {c}), 'escape');\n\
             SELECT encode(r, 'escape') FROM unnest(netbuf.requests('E', ARRAY['x', 'y']::bytea[], {c})) r;\n\
             SELECT requests, replies, errors, last_error FROM netbuf.channels();\n"
        ),
    );
    assert_eq!(
        err.matches("ERROR").count(),
        2,
        "two timeouts and nothing else:\n{err}"
    );
    assert_sql_error(
        &err,
        "57014",
        "canceling statement due to statement timeout",
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "Ebefore",
            "",
            "Eafter",
            "Ex",
            "Ey",
            "7|4|2|canceling statement due to statement timeout"
        ],
        "{err}"
    );
    let _ = tagged_backends(primary, tag);
}

#[test]
fn a_cancel_never_leaves_a_stale_reply() {
    let tag = "sqlsb_cancel";
    let c = sql_literal(&tagged_conninfo(&pair().primary, tag));
    // The cancelled request's reply ("S" after 3 s) would arrive during the
    // pg_sleep: a channel that kept it would hand it to the next request.
    let script = format!(
        "SELECT netbuf.request('S', int4send(3000), {c}) /* {tag} */;\n\
         SELECT pg_sleep(3.5);\n\
         SELECT encode(netbuf.request('E', 'after cancel', {c}), 'escape');\n\
         SELECT requests, replies, errors, last_error FROM netbuf.channels();\n"
    );
    let session = std::thread::spawn(move || standby_script("postgres", &script));
    let standby = &pair().standby;
    let pid = standby.wait_backend(&format!(
        "query LIKE '%/* {tag} */%' AND wait_event = '{}'",
        netbuf_wait_event("NetbufRecv")
    ));
    standby.cancel_backend(pid);
    let (out, err) = session.join().expect("the psql session");
    assert_sql_error(&err, "57014", "canceling statement due to user request");
    assert_eq!(err.matches("ERROR").count(), 1, "{err}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "",
            "Eafter cancel",
            "2|1|1|canceling statement due to user request"
        ],
        "{err}"
    );
}

#[test]
fn channels_shows_the_columns_with_the_password_masked() {
    let conninfo = password_conninfo("sqlsb_columns");
    let (out, err) = standby_script(
        "postgres",
        &format!(
            "SET netbuf_kit.c = {};\n\
             SELECT encode(netbuf.request('E', 'hello', current_setting('netbuf_kit.c')), 'escape');\n\
             SELECT conninfo, role, state, serving_pid > 0, opened_at <= now() AND opened_at > now() - interval '1 min', \
                    requests, replies, errors, bytes_sent, bytes_received, last_error IS NULL, pinned \
               FROM netbuf.channels();\n\
             SELECT count(*) FROM netbuf.channels() WHERE conninfo LIKE '%{PASSWORD}%';\n",
            sql_literal(&conninfo)
        ),
    );
    no_errors(&err);
    let p = &pair().primary;
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "Ehello".to_string(),
            format!(
                "user=netbuf_pw password=******** dbname=postgres host={} port={} \
                 application_name=sqlsb_columns|postgres|streaming|t|t|1|1|0|6|6|t|t",
                p.host, p.port
            ),
            "0".to_string(),
        ]
    );
    assert!(!out.contains(PASSWORD) && !err.contains(PASSWORD));
}

#[test]
fn channels_lists_the_channels_of_c_code_too() {
    // The test module's session channel, opened and pinned through netbuf.h.
    let conninfo = password_conninfo("sqlsb_capi");
    let (out, err) = standby_script(
        "postgres",
        &format!(
            "SET netbuf_kit.c = {};\n\
             SELECT netbuf_test.session_connect(current_setting('netbuf_kit.c'));\n\
             SELECT encode(netbuf_test.session_request('\\x45616263'::bytea), 'escape');\n\
             SELECT encode(netbuf.request('E', 'from SQL'), 'escape');\n\
             SELECT conninfo, role IS NULL, state, serving_pid > 0, opened_at > now() - interval '1 min', \
                    requests, replies, errors IS NULL, bytes_sent, bytes_received, last_error IS NULL, pinned \
               FROM netbuf.channels() WHERE role IS NULL;\n\
             SELECT count(*) FROM netbuf.channels();\n\
             -- disconnect_all closes the channels opened from SQL only.\n\
             SELECT netbuf.disconnect_all();\n\
             SELECT count(*), min(requests) FROM netbuf.channels();\n",
            sql_literal(&conninfo)
        ),
    );
    no_errors(&err);
    let p = &pair().primary;
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "".to_string(),
            "Eabc".to_string(),
            "Efrom SQL".to_string(),
            format!(
                "user=netbuf_pw password=******** dbname=postgres host={} port={} \
                 application_name=sqlsb_capi|t|streaming|t|t|1|1|t|4|4|t|t",
                p.host, p.port
            ),
            "2".to_string(),
            "1".to_string(),
            "1|1".to_string(),
        ]
    );
    assert!(!out.contains(PASSWORD) && !err.contains(PASSWORD));
}

#[test]
fn disconnect_and_disconnect_all() {
    let primary = &pair().primary;
    let tag = "sqlsb_disconnect";
    let c1 = sql_literal(&tagged_conninfo(primary, tag));
    let c2 = sql_literal(&format!(
        "{} options=-cwork_mem=4MB",
        tagged_conninfo(primary, tag)
    ));
    let (out, err) = standby_script(
        "postgres",
        &format!(
            "SELECT netbuf.disconnect({c1});\n\
             SELECT netbuf.disconnect_all();\n\
             SELECT length(netbuf.request('E', 'a', {c1}));\n\
             SELECT length(netbuf.request('E', 'b', {c2}));\n\
             SELECT count(*) FROM netbuf.channels();\n\
             SELECT netbuf.disconnect({c1});\n\
             SELECT netbuf.disconnect({c1});\n\
             SELECT count(*) FROM netbuf.channels();\n\
             SELECT length(netbuf.request('E', 'c', {c1}));\n\
             SELECT netbuf.disconnect_all();\n\
             SELECT count(*) FROM netbuf.channels();\n"
        ),
    );
    no_errors(&err);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["f", "0", "2", "2", "2", "t", "f", "1", "2", "2", "0"]
    );
}

#[test]
fn disconnect_ends_the_serving_backend() {
    let primary = &pair().primary;
    let tag = "sqlsb_disconnect_ends";
    let c = sql_literal(&tagged_conninfo(primary, tag));
    let background = netbuf_testkit::BackgroundSql::start(
        &pair().standby,
        tag,
        &format!(
            "SELECT netbuf.request('E', 'x', {c}) IS NOT NULL \
               AND netbuf.disconnect({c}) AND pg_sleep(30) IS NOT NULL"
        ),
    );
    // The standby backend sleeps after disconnect: its serving backend is gone.
    background.backend_when(&pair().standby, "wait_event = 'PgSleep'");
    wait_tagged_backends(primary, tag, 0, Duration::from_secs(20))
        .unwrap_or_else(|pids| panic!("disconnect left serving backends {pids:?}"));
}

#[test]
fn execute_is_revoked_from_public() {
    let standby = &pair().standby;
    for call in [
        "netbuf.request('E', 'x')",
        "netbuf.requests('E', ARRAY['x']::bytea[])",
        "netbuf.channels()",
        "netbuf.disconnect()",
        "netbuf.disconnect_all()",
    ] {
        let err = standby
            .sql_in(
                "postgres",
                &["SET ROLE netbuf_nogrant", &format!("SELECT {call}")],
            )
            .expect_err(call);
        assert!(
            err.contains("permission denied for function"),
            "{call}: {err}"
        );
    }
}

#[test]
fn a_non_superuser_must_authenticate_with_its_own_password() {
    let p = &pair().primary;
    let trusted = sql_literal(&format!(
        "host={} port={} user=postgres dbname=postgres application_name=sqlsb_trust",
        p.host, p.port
    ));
    let unused_password = sql_literal(&format!(
        "host={} port={} user=postgres password=NotAsked-1 dbname=postgres application_name=sqlsb_trust",
        p.host, p.port
    ));
    let (out, err) = standby_script(
        "netbuf_caller",
        &format!(
            "SELECT netbuf.request('E', 'x');\n\
             SELECT netbuf.request('E', 'x', {trusted});\n\
             SELECT netbuf.request('E', 'x', {unused_password});\n\
             SELECT netbuf.requests('E', ARRAY['x']::bytea[]);\n\
             SET netbuf.password_required = off;\n\
             SELECT count(*) FROM netbuf.channels();\n\
             SET netbuf_kit.c = {};\n\
             SELECT encode(netbuf.request('E', 'mine', current_setting('netbuf_kit.c')), 'escape');\n\
             SELECT role, conninfo LIKE '%password=******** %' FROM netbuf.channels();\n",
            sql_literal(&password_conninfo("sqlsb_pw"))
        ),
    );
    let refusals: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("ERROR:  2F003: netbuf: password is required"))
        .collect();
    assert_eq!(refusals.len(), 4, "{err}");
    assert!(
        err.contains("cannot use this server's primary_conninfo"),
        "{err}"
    );
    assert!(
        err.contains("must give a password in the connection string"),
        "{err}"
    );
    assert!(
        err.contains("The primary did not ask for the password"),
        "{err}"
    );
    assert_sql_error(
        &err,
        "42501",
        "permission denied to set parameter \"netbuf.password_required\"",
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["0", "Emine", "netbuf_caller|t"],
        "{err}"
    );
    // Refused after connecting: its serving backend is gone too.
    wait_tagged_backends(p, "sqlsb_trust", 0, Duration::from_secs(20))
        .unwrap_or_else(|pids| panic!("a refused channel left {pids:?}"));
}

#[test]
fn a_superuser_allows_the_servers_credentials_explicitly() {
    // ALTER ROLE netbuf_allowed SET netbuf.password_required = off (on the
    // primary, replicated): primary_conninfo and trust are allowed to it.
    let (out, err) = standby_script(
        "netbuf_allowed",
        "SHOW netbuf.password_required;\n\
         SELECT encode(netbuf.request('E', 'allowed'), 'escape');\n",
    );
    no_errors(&err);
    assert_eq!(out.lines().collect::<Vec<_>>(), ["off", "Eallowed"]);
    // A superuser sets it for a session too; SET ROLE makes the session's
    // user a non-superuser again, and the rule applies to it.
    let (out, err) = standby_script(
        "postgres",
        "SET ROLE netbuf_caller;\n\
         SELECT netbuf.request('E', 'refused');\n\
         RESET ROLE;\n\
         SET netbuf.password_required = off;\n\
         SET ROLE netbuf_caller;\n\
         SELECT encode(netbuf.request('E', 'allowed'), 'escape');\n",
    );
    assert_sql_error(&err, "2F003", "netbuf: password is required");
    assert_eq!(out.lines().collect::<Vec<_>>(), ["Eallowed"], "{err}");
}

/// README's "A handler in PL/pgSQL" runs as written: its `sql` block on the
/// primary, then the request README shows from the standby returns what
/// README says.  Keeps the quick start's handler example from rotting.
#[test]
fn the_readmes_plpgsql_handler_example_works() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("read README.md");
    let (_, after) = readme
        .split_once("**A handler in PL/pgSQL**")
        .expect("README has the PL/pgSQL handler example");
    let block = after
        .split_once("```sql\n")
        .and_then(|(_, rest)| rest.split_once("\n```"))
        .map(|(block, _)| block)
        .expect("an sql block after the heading");
    assert!(block.contains("netbuf.register_op('U'"), "{block}");
    let p = pair();
    // On the primary only: the serving backend runs the handler there.
    p.primary.must(block);
    assert_eq!(
        p.standby
            .must("SELECT convert_from(netbuf.request('U', 'hello'), 'UTF8')"),
        "HELLO"
    );
    p.primary.must("SELECT netbuf.unregister_op('U')");
}
