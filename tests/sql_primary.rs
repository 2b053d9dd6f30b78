//! Issue 10, the primary side of netbuf from SQL: op codes answered by SQL
//! functions (netbuf.register_op / unregister_op), the view netbuf.serving,
//! netbuf.log_channels, pg_dump of netbuf.ops and the 1.0 -> 1.1 update.
//!
//! The channels are opened with the Rust API (netbuf::Client) straight to a
//! lone server: the primary side needs no standby.
//!
//! Needs `make install install-test-module` first; `make test` does it.

use std::process::Command;
use std::time::Duration;

use netbuf::{Client, Error};
use netbuf_testkit::{
    Node, Server, ServerOptions, pg_bindir, pg_major, run_checked, shared_server_with, wait_until,
};

/// The role channels are opened as: may serve, may write public.handled.
const CHANNEL_ROLE: &str = "netbuf_sql_channel";
/// A role that may serve but has no EXECUTE on public.secret_handler.
const UNPRIVILEGED_ROLE: &str = "netbuf_sql_noexec";
/// A plain role that may try to register.
const PLAIN_ROLE: &str = "netbuf_sql_plain";
/// A role whose sessions load the test module (ops R, S, z, F, Q) at login.
const MODULE_ROLE: &str = "netbuf_sql_module";

const WAIT: Duration = Duration::from_secs(20);

/// The statements that make the handlers and roles of these tests.
fn setup_sql() -> Vec<String> {
    let mut sql: Vec<String> = vec![
        "CREATE EXTENSION netbuf".into(),
        "CREATE TABLE public.handled (payload bytea, by_pid integer)".into(),
        // Answers 'ok:' || payload || ':' || its backend's pid, and records
        // the payload: a handler that writes a table.
        "CREATE FUNCTION public.record_handler(payload bytea) RETURNS bytea \
         LANGUAGE plpgsql AS $$ BEGIN \
           INSERT INTO public.handled VALUES (payload, pg_catalog.pg_backend_pid()); \
           RETURN 'ok:'::bytea || payload || pg_catalog.convert_to(':' || pg_catalog.pg_backend_pid(), 'UTF8'); \
         END $$"
            .into(),
        // Writes a row, then fails with SQLSTATE 22012 when the payload is 'boom'.
        "CREATE FUNCTION public.failing_handler(payload bytea) RETURNS bytea \
         LANGUAGE plpgsql AS $$ BEGIN \
           INSERT INTO public.handled VALUES (payload, pg_catalog.pg_backend_pid()); \
           IF payload = 'boom'::bytea THEN \
             RAISE EXCEPTION 'the handler failed on purpose' USING ERRCODE = '22012'; \
           END IF; \
           RETURN payload || pg_catalog.convert_to(':' || pg_catalog.pg_backend_pid(), 'UTF8'); \
         END $$"
            .into(),
        "CREATE FUNCTION public.sql_handler(payload bytea) RETURNS bytea \
         LANGUAGE sql AS $$ SELECT 'sql:'::bytea || payload $$"
            .into(),
        "CREATE FUNCTION public.secret_handler(payload bytea) RETURNS bytea \
         LANGUAGE sql AS $$ SELECT 'secret'::bytea $$"
            .into(),
        "REVOKE EXECUTE ON FUNCTION public.secret_handler(bytea) FROM PUBLIC".into(),
        "CREATE FUNCTION public.null_handler(payload bytea) RETURNS bytea \
         LANGUAGE sql AS $$ SELECT NULL::bytea $$"
            .into(),
        "CREATE FUNCTION public.empty_handler(payload bytea) RETURNS bytea \
         LANGUAGE sql AS $$ SELECT ''::bytea $$"
            .into(),
        "CREATE FUNCTION public.text_handler(payload text) RETURNS text \
         LANGUAGE sql AS $$ SELECT payload $$"
            .into(),
        "CREATE FUNCTION public.set_handler(payload bytea) RETURNS SETOF bytea \
         LANGUAGE sql AS $$ SELECT payload $$"
            .into(),
        "CREATE PROCEDURE public.proc_handler(payload bytea) LANGUAGE sql AS $$ SELECT 1 $$".into(),
    ];
    for role in [CHANNEL_ROLE, UNPRIVILEGED_ROLE, PLAIN_ROLE, MODULE_ROLE] {
        sql.push(format!("CREATE ROLE {role} LOGIN"));
        sql.push(format!("GRANT EXECUTE ON PROCEDURE netbuf.serve TO {role}"));
        sql.push(format!("GRANT INSERT ON public.handled TO {role}"));
    }
    sql.push(format!(
        "ALTER ROLE {MODULE_ROLE} SET session_preload_libraries = 'netbuf_test'"
    ));
    sql
}

/// The server most tests share: libnetbuf preloaded (so that netbuf.serving
/// works on every major) and netbuf.log_channels on.
fn server() -> &'static Server {
    shared_server_with(|| ServerOptions {
        conf: vec![
            "shared_preload_libraries = 'libnetbuf'".into(),
            "netbuf.log_channels = on".into(),
        ],
        setup_sql: setup_sql(),
        ..ServerOptions::default()
    })
}

fn node() -> &'static Node {
    &server().node
}

/// `sql` as `role`, with verbose errors (SQLSTATE shown).
fn sql_as(node: &Node, role: &str, sql: &str) -> Result<String, String> {
    netbuf_testkit::psql(
        &node.conninfo_db("postgres", role),
        &["\\set VERBOSITY verbose", sql],
    )
}

/// A channel as `role`, tagged with application_name `app`.
fn connect(node: &Node, role: &str, app: &str) -> Client {
    let conninfo = format!(
        "{} application_name={app}",
        node.conninfo_db("postgres", role)
    );
    Client::connect(&conninfo).unwrap_or_else(|e| panic!("connecting as {role}: {e}"))
}

/// The primary's error for `outcome`, which must have failed with
/// `sqlstate` and a message containing `text`.
fn primary_error<T: std::fmt::Debug>(outcome: Result<T, Error>, sqlstate: &str, text: &str) {
    match outcome {
        Err(Error::Primary(e)) => {
            assert_eq!(e.sqlstate, sqlstate, "wrong SQLSTATE: {e:?}");
            assert!(e.message.contains(text), "{e:?} should say {text:?}");
        }
        other => panic!("expected the primary's error {sqlstate} ({text:?}), got {other:?}"),
    }
}

/// `ok:<payload>:<pid>` -> pid.
fn pid_of(reply: &[u8]) -> String {
    let text = String::from_utf8_lossy(reply);
    text.rsplit(':').next().unwrap_or_default().to_owned()
}

#[test]
fn a_plpgsql_handler_is_registered_used_and_unregistered_without_reconnecting() {
    let node = node();
    let mut client = connect(node, CHANNEL_ROLE, "sqlp_lifecycle");

    // Not registered yet: unknown op.
    primary_error(
        client.request(b"hbefore"),
        "08P01",
        "unknown op code 0x68 ('h')",
    );

    node.must("SELECT netbuf.register_op('h', 'public.record_handler(bytea)')");
    let reply = client
        .request(b"hfirst")
        .expect("the registered handler answers");
    assert!(
        reply.starts_with(b"ok:first:"),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    let pid = pid_of(&reply);
    assert_eq!(
        node.must(&format!(
            "SELECT count(*) FROM public.handled WHERE payload = 'first'::bytea AND by_pid = {pid}"
        )),
        "1",
        "the handler's insert was committed"
    );
    // The reply is exactly what the function returns, bytes included.
    let reply = client.request(b"h\x00\xff").expect("binary payload");
    assert_eq!(&reply[..5], b"ok:\x00\xff");

    // Another function for the same op code, seen at the next request.
    node.must("SELECT netbuf.register_op('h', 'public.sql_handler(bytea)')");
    assert_eq!(
        client.request(b"hsecond").expect("re-registered"),
        b"sql:second"
    );

    node.must("SELECT netbuf.unregister_op('h')");
    primary_error(
        client.request(b"hthird"),
        "08P01",
        "unknown op code 0x68 ('h')",
    );

    // All on one connection: the same serving backend answered throughout.
    node.must("SELECT netbuf.register_op('h', 'public.record_handler(bytea)')");
    let reply = client.request(b"hfourth").expect("registered again");
    assert_eq!(pid_of(&reply), pid, "the channel reconnected");
    node.must("SELECT netbuf.unregister_op('h')");
}

#[test]
fn a_handlers_error_reaches_the_client_and_the_channel_goes_on() {
    let node = node();
    node.must("SELECT netbuf.register_op('f', 'public.failing_handler(bytea)')");
    let mut client = connect(node, CHANNEL_ROLE, "sqlp_failing");

    let reply = client
        .request(b"ffine")
        .expect("a payload that does not fail");
    let pid = pid_of(&reply);
    primary_error(
        client.request(b"fboom"),
        "22012",
        "the handler failed on purpose",
    );
    // Its transaction was rolled back ...
    assert_eq!(
        node.must("SELECT count(*) FROM public.handled WHERE payload = 'boom'::bytea"),
        "0"
    );
    // ... and the same client goes on, on the same backend.
    let reply = client.request(b"fagain").expect("the next request works");
    assert!(reply.starts_with(b"again:"));
    assert_eq!(pid_of(&reply), pid);

    // NULL and empty replies are refused with the op and the function named.
    node.must("SELECT netbuf.register_op('0', 'public.null_handler(bytea)')");
    primary_error(
        client.request(b"0x"),
        "22004",
        "function public.null_handler(bytea), the handler of op code 0x30 ('0'), returned NULL",
    );
    node.must("SELECT netbuf.register_op('1', 'public.empty_handler(bytea)')");
    primary_error(
        client.request(b"1x"),
        "08P01",
        "function public.empty_handler(bytea), the handler of op code 0x31 ('1'), returned an empty bytea",
    );
    assert!(client.request(b"fstill").is_ok());
    node.must("SELECT netbuf.unregister_op('0'); SELECT netbuf.unregister_op('1')");
    node.must("SELECT netbuf.unregister_op('f')");
}

#[test]
fn the_channels_role_needs_execute_on_the_handler() {
    let node = node();
    node.must("SELECT netbuf.register_op('x', 'public.secret_handler(bytea)')");
    let mut denied = connect(node, UNPRIVILEGED_ROLE, "sqlp_noexec");
    primary_error(
        denied.request(b"xpayload"),
        "42501",
        "permission denied for function secret_handler",
    );
    // The superuser may.
    let mut allowed = connect(node, "postgres", "sqlp_exec");
    assert_eq!(allowed.request(b"xpayload").expect("EXECUTE"), b"secret");
    node.must(&format!(
        "GRANT EXECUTE ON FUNCTION public.secret_handler(bytea) TO {UNPRIVILEGED_ROLE}"
    ));
    assert_eq!(denied.request(b"xpayload").expect("granted now"), b"secret");
    node.must(&format!(
        "REVOKE EXECUTE ON FUNCTION public.secret_handler(bytea) FROM {UNPRIVILEGED_ROLE}"
    ));
    node.must("SELECT netbuf.unregister_op('x')");
}

#[test]
fn registration_refuses_builtins_wrong_signatures_and_non_owners() {
    let node = node();
    node.expect_error(
        "SELECT netbuf.register_op('E', 'public.sql_handler(bytea)')",
        "42710",
        "op code 0x45 ('E') is built into netbuf",
    );
    node.expect_error(
        "SELECT netbuf.register_op('N', 'public.sql_handler(bytea)')",
        "42710",
        "built into netbuf",
    );
    for (function, why) in [
        (
            "public.text_handler(text)",
            "does not take exactly one argument of type bytea",
        ),
        ("public.set_handler(bytea)", "returns a set"),
        ("public.proc_handler(bytea)", "is not a plain function"),
        ("pg_catalog.length(bytea)", "does not return bytea"),
    ] {
        node.expect_error(
            &format!("SELECT netbuf.register_op('w', '{function}')"),
            "42P13",
            why,
        );
    }
    node.expect_error(
        "SELECT netbuf.register_op('', 'public.sql_handler(bytea)')",
        "22023",
        "must not be empty",
    );
    node.expect_error(
        "SELECT netbuf.unregister_op('w')",
        "42704",
        "op code 0x77 ('w') is not registered",
    );
    assert_eq!(
        node.must("SELECT count(*) FROM netbuf.ops WHERE op = 'w'"),
        "0"
    );

    // EXECUTE is revoked from PUBLIC ...
    let err = sql_as(
        node,
        PLAIN_ROLE,
        "SELECT netbuf.register_op('w', 'public.sql_handler(bytea)')",
    )
    .expect_err("a plain role may not register");
    netbuf_testkit::assert_sql_error(&err, "42501", "permission denied for function register_op");
    // ... and a grant does not make a plain role the extension's owner.
    node.must(&format!(
        "GRANT EXECUTE ON FUNCTION netbuf.register_op(\"char\", regprocedure), \
         netbuf.unregister_op(\"char\") TO {PLAIN_ROLE}"
    ));
    let err = sql_as(
        node,
        PLAIN_ROLE,
        "SELECT netbuf.register_op('w', 'public.sql_handler(bytea)')",
    )
    .expect_err("a plain role may not register");
    netbuf_testkit::assert_sql_error(
        &err,
        "42501",
        "netbuf: permission denied to register op codes",
    );
    node.must("SELECT netbuf.register_op('w', 'public.sql_handler(bytea)')");
    let err = sql_as(node, PLAIN_ROLE, "SELECT netbuf.unregister_op('w')")
        .expect_err("a plain role may not unregister");
    netbuf_testkit::assert_sql_error(
        &err,
        "42501",
        "netbuf: permission denied to unregister op codes",
    );
    // Nor write the table itself.
    let err = sql_as(node, PLAIN_ROLE, "DELETE FROM netbuf.ops")
        .expect_err("a plain role may not change netbuf.ops");
    netbuf_testkit::assert_sql_error(&err, "42501", "permission denied for table ops");
    node.must("SELECT netbuf.unregister_op('w')");
}

/// A C module's op codes cannot be taken where the module is loaded, and
/// win over a registration where it was loaded later.
#[test]
fn c_handlers_win_over_sql_registrations() {
    let node = node();
    // Loaded in the registering backend: refused.
    let err = node
        .sql_many(&[
            "\\set VERBOSITY verbose",
            "LOAD 'netbuf_test'",
            "SELECT netbuf.register_op('R', 'public.sql_handler(bytea)')",
        ])
        .expect_err("the test module owns 'R'");
    netbuf_testkit::assert_sql_error(
        &err,
        "42710",
        "op code 0x52 ('R') is taken by a C module loaded in this backend",
    );

    // Not loaded here: accepted, but a serving backend that loads the
    // module answers with the module's handler (it reverses the payload).
    node.must("SELECT netbuf.register_op('R', 'public.sql_handler(bytea)')");
    let mut with_module = connect(node, MODULE_ROLE, "sqlp_module");
    let reply = with_module.request(b"Rabc").expect("the module answers");
    assert!(
        !reply.starts_with(b"sql:"),
        "the SQL handler ran: {reply:?}"
    );
    // Without the module, the SQL handler answers.
    let mut without = connect(node, CHANNEL_ROLE, "sqlp_nomodule");
    assert_eq!(
        without.request(b"Rabc").expect("the SQL handler"),
        b"sql:abc"
    );
    node.must("SELECT netbuf.unregister_op('R')");
}

/// Rows of netbuf.serving for application names starting with `prefix`.
fn serving_rows(node: &Node, prefix: &str) -> String {
    node.must(&format!(
        "SELECT application_name, role, database, client_addr IS NOT NULL, client_port > 0, \
                opened_at <= now(), requests, replies, errors, bytes_in, bytes_out, last_op, state \
           FROM netbuf.serving WHERE application_name LIKE '{prefix}%' ORDER BY application_name"
    ))
}

#[test]
fn netbuf_serving_shows_each_channel_and_its_counters() {
    let node = node();
    node.must("SELECT netbuf.register_op('c', 'public.failing_handler(bytea)')");
    let mut one = connect(node, CHANNEL_ROLE, "sqlp_view_1");
    let mut two = connect(node, "postgres", "sqlp_view_2");
    for _ in 0..3 {
        assert_eq!(one.request(b"Ehello").expect("echo"), b"Ehello");
    }
    let reply = two.request(b"cabc").expect("the SQL handler");
    let out_two = reply.len();
    primary_error(two.request(b"cboom"), "22012", "failed on purpose");
    let reply = two.request(b"cxy").expect("after the error");
    let out_two = out_two + reply.len();

    let rows = serving_rows(node, "sqlp_view_");
    assert_eq!(
        rows,
        format!(
            "sqlp_view_1|{CHANNEL_ROLE}|postgres|t|t|t|3|3|0|18|18|E|idle\n\
             sqlp_view_2|postgres|postgres|t|t|t|3|2|1|12|{out_two}|c|idle"
        )
    );
    // The pid is the serving backend's, the one pg_stat_activity shows.
    assert_eq!(
        node.must(
            "SELECT count(*) FROM netbuf.serving s JOIN pg_stat_activity a USING (pid) \
              WHERE s.application_name LIKE 'sqlp_view_%' AND a.query LIKE 'CALL netbuf.serve%'"
        ),
        "2"
    );

    // Closed channels leave the view.
    one.close();
    two.close();
    node.wait_for(
        "SELECT count(*) FROM netbuf.serving WHERE application_name LIKE 'sqlp_view_%'",
        "0",
        WAIT,
    )
    .unwrap();

    // So does a serving backend that is terminated.
    let mut three = connect(node, CHANNEL_ROLE, "sqlp_view_3");
    assert!(three.request(b"Eping").is_ok());
    let pid = node.must("SELECT pid FROM netbuf.serving WHERE application_name = 'sqlp_view_3'");
    node.must(&format!("SELECT pg_terminate_backend({pid})"));
    node.wait_for(
        "SELECT count(*) FROM netbuf.serving WHERE application_name = 'sqlp_view_3'",
        "0",
        WAIT,
    )
    .unwrap();
    assert!(three.request(b"Eping").is_err(), "the backend is gone");
    node.must("SELECT netbuf.unregister_op('c')");

    // Server-wide monitoring: pg_read_all_stats, not PUBLIC.
    let err = sql_as(node, PLAIN_ROLE, "SELECT count(*) FROM netbuf.serving")
        .expect_err("a plain role may not read netbuf.serving");
    netbuf_testkit::assert_sql_error(&err, "42501", "permission denied");
    node.must("CREATE ROLE netbuf_sql_monitor LOGIN IN ROLE pg_read_all_stats");
    sql_as(
        node,
        "netbuf_sql_monitor",
        "SELECT count(*) FROM netbuf.serving",
    )
    .expect("pg_read_all_stats may");
}

#[test]
fn log_channels_logs_opening_and_closing() {
    let node = node();
    let mut client = connect(node, CHANNEL_ROLE, "sqlp_logged");
    assert!(client.request(b"Eone").is_ok());
    assert!(client.request(b"Etwo").is_ok());
    client.close();
    let closed = wait_until(WAIT, || {
        let log = node.log_text();
        log.lines()
            .find(|l| l.contains("sqlp_logged") && l.contains("netbuf channel closed"))
            .map(str::to_owned)
    })
    .unwrap_or_else(|| panic!("no closing line in the log:\n{}", node.log_tail()));
    let log = node.log_text();
    let opened = log
        .lines()
        .find(|l| l.contains("sqlp_logged") && l.contains("netbuf channel opened"))
        .unwrap_or_else(|| panic!("no opening line in the log:\n{}", node.log_tail()));
    assert!(
        opened.contains(&format!(
            "LOG:  netbuf channel opened: role={CHANNEL_ROLE} client=127.0.0.1 port="
        )) && opened.contains("application_name=sqlp_logged"),
        "{opened}"
    );
    assert!(
        closed.contains("LOG:  netbuf channel closed (backend exit): duration: 0:00:")
            && closed.contains(&format!("role={CHANNEL_ROLE} client=127.0.0.1 port="))
            && closed.contains("requests=2 replies=2 errors=0 bytes_in=8 bytes_out=8"),
        "{closed}"
    );
}

/// What pg_dump writes for the database: the registrations go with it, and
/// a restore into a fresh database answers them.
#[test]
fn pg_dump_keeps_the_registrations() {
    let node = node();
    node.must("SELECT netbuf.register_op('d', 'public.sql_handler(bytea)')");
    let mut dump = Command::new(pg_bindir().join("pg_dump"));
    dump.args(["-d", &node.conninfo()]);
    let text = run_checked(dump, "pg_dump");
    let ops = text
        .split("COPY netbuf.ops (op, handler) FROM stdin;\n")
        .nth(1)
        .and_then(|rest| rest.split("\\.\n").next())
        .unwrap_or_else(|| panic!("pg_dump lost netbuf.ops:\n{text}"));
    assert!(
        ops.lines().any(|l| l == "d\tpublic.sql_handler(bytea)"),
        "pg_dump lost op d:\n{ops}"
    );
    node.must("SELECT netbuf.unregister_op('d')");

    node.must("CREATE DATABASE sqlp_restored");
    let file = std::env::temp_dir().join(format!("netbuf-sqlp-dump-{}.sql", std::process::id()));
    std::fs::write(&file, &text).expect("writing the dump");
    let mut restore = Command::new(pg_bindir().join("psql"));
    restore
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d"])
        .arg(node.conninfo_db("sqlp_restored", "postgres"))
        .arg("-f")
        .arg(&file);
    run_checked(restore, "psql (restore)");
    let _ = std::fs::remove_file(&file);
    assert_eq!(
        node.sql_in(
            "sqlp_restored",
            &["SELECT op, handler FROM netbuf.ops WHERE op = 'd'"]
        )
        .unwrap(),
        "d|sql_handler(bytea)"
    );
    let conninfo = format!(
        "{} application_name=sqlp_restored",
        node.conninfo_db("sqlp_restored", "postgres")
    );
    let mut client = Client::connect(&conninfo).expect("channel to the restored database");
    assert_eq!(client.request(b"dx").expect("restored op"), b"sql:x");
}

/// The objects of the extension in database `db`, one per line.
fn extension_objects(node: &Node, db: &str) -> String {
    node.sql_in(
        db,
        &["SELECT pg_catalog.pg_describe_object(classid, objid, 0) FROM pg_catalog.pg_depend \
            WHERE refclassid = 'pg_catalog.pg_extension'::regclass AND deptype = 'e' \
              AND refobjid = (SELECT oid FROM pg_catalog.pg_extension WHERE extname = 'netbuf') \
            UNION ALL \
           SELECT 'proc ' || p.oid::regprocedure || ' ' || p.prokind::text || ' ' || p.provolatile::text || ' ' \
                  || p.proisstrict || ' ' || p.prosrc || ' ' || coalesce(pg_catalog.pg_get_function_result(p.oid), '-') \
                  || ' ' || coalesce(p.proacl::text, '-') \
             FROM pg_catalog.pg_proc p WHERE p.pronamespace = 'netbuf'::regnamespace \
            UNION ALL \
           SELECT 'class ' || c.relname || ' ' || c.relkind::text || ' ' || coalesce(c.relacl::text, '-') \
             FROM pg_catalog.pg_class c WHERE c.relnamespace = 'netbuf'::regnamespace \
            UNION ALL \
           SELECT 'view ' || viewname || ' ' || definition FROM pg_catalog.pg_views \
            WHERE schemaname = 'netbuf' \
            UNION ALL \
           SELECT 'config ' || pg_catalog.array_to_string(extconfig::regclass[], ',') \
             FROM pg_catalog.pg_extension WHERE extname = 'netbuf' \
            ORDER BY 1"],
    )
    .unwrap()
}

#[test]
fn alter_extension_update_from_1_0_gives_the_objects_of_1_1() {
    let node = node();
    node.must("CREATE DATABASE sqlp_from_1_0");
    node.must("CREATE DATABASE sqlp_fresh");
    node.sql_in("sqlp_from_1_0", &["CREATE EXTENSION netbuf VERSION '1.0'"])
        .unwrap();
    assert!(
        !extension_objects(node, "sqlp_from_1_0").contains("netbuf.ops"),
        "1.0 has no netbuf.ops"
    );
    node.sql_in("sqlp_from_1_0", &["ALTER EXTENSION netbuf UPDATE"])
        .unwrap();
    node.sql_in("sqlp_fresh", &["CREATE EXTENSION netbuf"])
        .unwrap();
    assert_eq!(
        node.sql_in(
            "sqlp_from_1_0",
            &["SELECT extversion FROM pg_extension WHERE extname = 'netbuf'"]
        )
        .unwrap(),
        "1.1"
    );
    let updated = extension_objects(node, "sqlp_from_1_0");
    let fresh = extension_objects(node, "sqlp_fresh");
    assert!(
        fresh.contains("table netbuf.ops") && fresh.contains("view netbuf.serving"),
        "{fresh}"
    );
    assert_eq!(updated, fresh);
}

/// Without shared_preload_libraries: on 17+ the DSM registry gives the
/// view its rows anyway; on 14-16 reading it is an ERROR with a HINT, and
/// channels, SQL handlers included, are served all the same.  And
/// netbuf.log_channels is off by default.
#[test]
fn without_preload() {
    let server = Server::start(ServerOptions {
        setup_sql: setup_sql(),
        ..ServerOptions::default()
    });
    let node = &server.node;
    node.must("SELECT netbuf.register_op('h', 'public.sql_handler(bytea)')");
    let mut client = connect(node, CHANNEL_ROLE, "sqlp_nopreload");
    assert_eq!(client.request(b"hx").expect("served"), b"sql:x");
    if pg_major() >= 17 {
        assert_eq!(
            serving_rows(node, "sqlp_nopreload"),
            format!("sqlp_nopreload|{CHANNEL_ROLE}|postgres|t|t|t|1|1|0|2|5|h|idle")
        );
    } else {
        let err = node.expect_error(
            "SELECT * FROM netbuf.serving",
            "55000",
            &format!(
                "netbuf.serving needs libnetbuf in shared_preload_libraries on PostgreSQL {}",
                pg_major()
            ),
        );
        assert!(
            err.contains(
                "HINT:  Add 'libnetbuf' to shared_preload_libraries and restart the server."
            ),
            "{err}"
        );
    }
    assert_eq!(client.request(b"hy").expect("still served"), b"sql:y");
    client.close();
    assert!(
        !node.log_text().contains("netbuf channel"),
        "netbuf.log_channels is off by default:\n{}",
        node.log_tail()
    );
}

/// regprocedure records no dependency: a dropped handler fails its op code
/// with 42883 until it is unregistered or replaced.
#[test]
fn a_dropped_handler_is_an_error_naming_the_op() {
    let node = node();
    node.must(
        "CREATE FUNCTION public.doomed_handler(payload bytea) RETURNS bytea \
         LANGUAGE sql AS $$ SELECT payload $$",
    );
    node.must("SELECT netbuf.register_op('y', 'public.doomed_handler(bytea)')");
    let mut client = connect(node, CHANNEL_ROLE, "sqlp_dropped");
    assert_eq!(client.request(b"yok").expect("registered"), b"ok");
    node.must("DROP FUNCTION public.doomed_handler(bytea)");
    primary_error(
        client.request(b"ygone"),
        "42883",
        "the handler of op code 0x79 ('y'), function ",
    );
    node.must("SELECT netbuf.register_op('y', 'public.sql_handler(bytea)')");
    assert_eq!(client.request(b"yback").expect("replaced"), b"sql:back");
    node.must("SELECT netbuf.unregister_op('y')");
}

/// A client that ends the stream with CopyDone closes the channel: its row
/// leaves netbuf.serving while the connection goes on as a session, and
/// the closing line says why.
#[test]
fn copy_done_closes_the_channel() {
    let node = node();
    let mut raw = netbuf_testkit::wire::RawChannel::tcp(node, "sqlp_copydone");
    raw.send(b'd', b"Ehi");
    assert_eq!(raw.read_until(b'd'), b"Ehi");
    assert_eq!(
        node.must(
            "SELECT requests, replies FROM netbuf.serving WHERE application_name = 'sqlp_copydone'"
        ),
        "1|1"
    );
    raw.send(b'c', b"");
    raw.read_until(b'Z'); // the CALL returned: an ordinary session again
    assert_eq!(
        node.must("SELECT count(*) FROM netbuf.serving WHERE application_name = 'sqlp_copydone'"),
        "0"
    );
    let log = node.log_text();
    let closed = log
        .lines()
        .find(|l| l.contains("sqlp_copydone") && l.contains("netbuf channel closed"))
        .unwrap_or_else(|| panic!("no closing line:\n{}", node.log_tail()));
    assert!(
        closed.contains("netbuf channel closed (client ended the stream): duration: ")
            && closed.contains("role=postgres client=127.0.0.1 port=")
            && closed.contains("requests=1 replies=1 errors=0 bytes_in=3 bytes_out=3"),
        "{closed}"
    );
}

/// Rows are read whole: while a channel answers a stream of 6-byte echoes,
/// every row read shows bytes that match its counts (the changecount
/// protocol; a torn read would pair one request's counter with another's
/// bytes).
#[test]
fn netbuf_serving_rows_are_never_torn() {
    let node = node();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut client = connect(node, CHANNEL_ROLE, "sqlp_torn");
    assert_eq!(client.request(b"Estart").expect("echo"), b"Estart");
    let pump = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut n = 1u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                client.request(b"Eecho!").expect("echo");
                n += 1;
            }
            n
        })
    };
    let out = node.sql(
        "DO $$ DECLARE r record; reads int := 0; BEGIN \
           FOR i IN 1..20000 LOOP \
             SELECT requests, replies, bytes_in, bytes_out INTO r \
               FROM netbuf.serving WHERE application_name = 'sqlp_torn'; \
             IF r.bytes_in <> 6 * r.requests OR r.bytes_out <> 6 * r.replies \
                OR r.replies NOT IN (r.requests, r.requests - 1) THEN \
               RAISE EXCEPTION 'torn row after % reads: %', reads, r; \
             END IF; \
             reads := reads + 1; \
           END LOOP; END $$",
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let requests = pump.join().expect("the pump");
    out.expect("every row consistent");
    assert!(requests > 100, "only {requests} requests while reading");
}
