//! Security, against a real primary and a real streaming standby: TLS with
//! `sslmode=verify-full`, SCRAM and pg_hba refusals, no password in any
//! error or server log, and a hostile role's search_path that must not
//! redirect the channel. Both the Rust API and a standby backend (the C API
//! through `netbuf_test.request`) are checked.
//!
//! Needs `make install install-test-module` first, and the `openssl` CLI
//! (for a throwaway CA and server certificate); the tests install nothing.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use netbuf::{Client, Error};
use netbuf_testkit::test_module::standby_request;
use netbuf_testkit::tls::certificates;
use netbuf_testkit::{Pair, PairOptions, chown_to_server_user, psql, shared_pair_with};

/// Authenticates with SCRAM (pg_hba line below).
const SCRAM_ROLE: &str = "netbuf_scram";
/// Refused by a `reject` pg_hba line whatever it sends.
const REJECTED_ROLE: &str = "netbuf_rejected";
/// Owns schema `evil` and has `search_path = evil, public, pg_catalog`.
const HOSTILE_ROLE: &str = "netbuf_hostile";

/// Distinctive, so that finding one anywhere cannot be a coincidence.
const RIGHT_PASSWORD: &str = "Right-pw-5c1e9a7b";
const WRONG_PASSWORD: &str = "Wrong-pw-0d3f6b28";
/// The rejected role's real password, sent with its refused attempts.
const REJECTED_PASSWORD: &str = "Rejected-pw-8a42c6e1";
const ALL_PASSWORDS: [&str; 3] = [RIGHT_PASSWORD, WRONG_PASSWORD, REJECTED_PASSWORD];

/// Raised by every trap in schema `evil`.
const HIJACKED: &str = "hijacked";

// ---- the pair ---------------------------------------------------------------

/// `.pgpass` format, mode 0600, with the right password for SCRAM_ROLE, in
/// the certificates' directory (standby backends read it).
fn passfile() -> &'static Path {
    static PASSFILE: OnceLock<PathBuf> = OnceLock::new();
    PASSFILE.get_or_init(|| {
        let path = certificates().dir.join("pgpass");
        fs::write(
            &path,
            format!("127.0.0.1:*:*:{SCRAM_ROLE}:{RIGHT_PASSWORD}\n"),
        )
        .expect("writing the passfile");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod 600");
        chown_to_server_user(&path);
        path
    })
}

fn options() -> PairOptions {
    let mut opts = PairOptions::with_test_module();
    opts.primary_conf.extend(certificates().server_conf());
    opts.primary_conf.extend([
        "password_encryption = 'scram-sha-256'".into(),
        // "connection authorized: ... SSL enabled" for standby channels.
        "log_connections = on".into(),
    ]);
    opts.hba_lines = vec![
        format!("host all {SCRAM_ROLE} 127.0.0.1/32 scram-sha-256"),
        format!("host all {REJECTED_ROLE} 127.0.0.1/32 reject"),
    ];
    opts.setup_sql.extend([
        format!("CREATE ROLE {SCRAM_ROLE} LOGIN PASSWORD '{RIGHT_PASSWORD}'"),
        format!("GRANT EXECUTE ON PROCEDURE netbuf.serve TO {SCRAM_ROLE}"),
        format!("CREATE ROLE {REJECTED_ROLE} LOGIN PASSWORD '{REJECTED_PASSWORD}'"),
        format!("GRANT EXECUTE ON PROCEDURE netbuf.serve TO {REJECTED_ROLE}"),
        format!("CREATE ROLE {HOSTILE_ROLE} LOGIN"),
        format!("GRANT EXECUTE ON PROCEDURE netbuf.serve TO {HOSTILE_ROLE}"),
        format!("CREATE SCHEMA evil AUTHORIZATION {HOSTILE_ROLE}"),
        // The hostile role's traps: anything netbuf might run
        // unqualified resolves here first.
        format!(
            "SET ROLE {HOSTILE_ROLE}; \
             CREATE PROCEDURE evil.serve() LANGUAGE plpgsql AS \
               $$BEGIN RAISE EXCEPTION '{HIJACKED}: evil.serve()'; END$$; \
             CREATE FUNCTION evil.set_config(text, text, boolean) RETURNS text \
               LANGUAGE plpgsql AS \
               $$BEGIN RAISE EXCEPTION '{HIJACKED}: evil.set_config(%)', $1; END$$; \
             CREATE FUNCTION evil.current_setting(text) RETURNS text \
               LANGUAGE plpgsql AS \
               $$BEGIN RAISE EXCEPTION '{HIJACKED}: evil.current_setting(%)', $1; END$$; \
             RESET ROLE"
        ),
        format!("ALTER ROLE {HOSTILE_ROLE} SET search_path = evil, public, pg_catalog"),
    ]);
    opts
}

fn pair() -> &'static Pair {
    shared_pair_with(options)
}

/// One echo round trip with the Rust API.
fn rust_echo(conninfo: &str) -> Result<Vec<u8>, Error> {
    let mut client = Client::connect(conninfo)?;
    let reply = client.request(b"Esecurity")?;
    client.close();
    Ok(reply)
}

/// One echo round trip from a standby backend (`netbuf_test.request`, the C
/// API), with verbose errors (SQLSTATE, CONTEXT).
fn standby_echo(conninfo: &str) -> Result<String, String> {
    standby_request(&pair().standby, conninfo)
}

// ---- TLS ------------------------------------------------------------------

/// The primary's conninfo with `verify-full` against `root_ca`, tagged.
fn verify_full(root_ca: &Path, tag: &str) -> String {
    format!(
        "{} sslmode=verify-full sslrootcert={} application_name={tag} connect_timeout=10",
        pair().primary.conninfo(),
        root_ca.display()
    )
}

#[test]
fn tls_verify_full_rust_client_connects_and_primary_sees_ssl() {
    let p = pair();
    let mut client = Client::connect(&verify_full(&certificates().ca, "tls_rust_ok"))
        .expect("verify-full connect");
    assert_eq!(client.request(b"Etls").unwrap(), b"Etls");
    // Large messages too (the serve loop sends replies of 64 kB and more
    // past pqcomm's buffer, through the same TLS layer).
    for size in [70_000, 1 << 20, 70_000] {
        let big: Vec<u8> = std::iter::once(b'E')
            .chain((1..size).map(|i| (i % 251) as u8))
            .collect();
        assert!(
            client.request(&big).unwrap() == big,
            "{size} bytes over TLS"
        );
    }
    // While the channel is open, its serving backend is an SSL connection.
    let row = p.primary.must(
        "SELECT s.ssl, s.version IS NOT NULL, a.query FROM pg_stat_ssl s \
         JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'tls_rust_ok'",
    );
    assert_eq!(row, "t|t|CALL netbuf.serve(max_reply_size => 67108864)");

    // Control: the same query sees a channel without SSL as such.
    let plain = format!(
        "{} sslmode=disable application_name=tls_rust_plain",
        p.primary.conninfo()
    );
    let mut plain_client = Client::connect(&plain).expect("sslmode=disable connect");
    assert_eq!(plain_client.request(b"Eplain").unwrap(), b"Eplain");
    let row = p.primary.must(
        "SELECT s.ssl, a.query FROM pg_stat_ssl s \
         JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'tls_rust_plain'",
    );
    assert_eq!(row, "f|CALL netbuf.serve(max_reply_size => 67108864)");
    client.close();
    plain_client.close();
}

/// The primary's "connection authorized" log line for application_name
/// `tag`.
fn authorized_line(tag: &str) -> Option<String> {
    let needle = format!("application_name={tag}");
    pair()
        .primary
        .log_text()
        .lines()
        .find(|l| l.contains("connection authorized:") && l.contains(&needle))
        .map(str::to_owned)
}

#[test]
fn tls_verify_full_standby_backend_connects_over_ssl() {
    let p = pair();
    let plain = format!(
        "{} sslmode=disable application_name=tls_standby_plain",
        p.primary.conninfo()
    );
    // Control: a channel with sslmode=disable is logged without SSL.
    for (tag, conninfo, ssl) in [
        (
            "tls_standby_ok",
            verify_full(&certificates().ca, "tls_standby_ok"),
            true,
        ),
        ("tls_standby_plain", plain, false),
    ] {
        assert_eq!(standby_echo(&conninfo).expect(tag), "\\x45");
        let line = authorized_line(tag).unwrap_or_else(|| {
            panic!(
                "no connection authorized line for {tag}\n{}",
                p.primary.log_tail()
            )
        });
        assert_eq!(line.contains("SSL enabled"), ssl, "{line}");
    }
}

// ---- who gets a channel: one table, from both sides -----------------------------

/// How an attempt must end.
#[derive(Debug)]
enum Expect {
    /// The echo is answered.
    Answered,
    /// The connection is refused with an error that says this.
    Refused(String),
}

/// One attempt to open a channel, made with the Rust API and from a
/// standby backend.
struct Attempt {
    what: &'static str,
    /// The channel's application_name, suffixed `_rust` or `_standby`: the
    /// primary's "connection authorized" line names it.
    tag: &'static str,
    /// The conninfo, without application_name.
    conninfo: String,
    expect: Expect,
}

impl Attempt {
    fn conninfo(&self, side: &str) -> String {
        format!("{} application_name={}_{side}", self.conninfo, self.tag)
    }
}

/// The table: SCRAM with a password from the conninfo or a passfile, or
/// none, or a wrong one; a pg_hba `reject` line; TLS verify-full against a
/// CA that did not sign the server's certificate.
fn attempts() -> Vec<Attempt> {
    let p = pair();
    let scram = format!(
        "{} connect_timeout=10",
        p.primary.conninfo_db("postgres", SCRAM_ROLE)
    );
    let attempt = |what, tag, conninfo, expect| Attempt {
        what,
        tag,
        conninfo,
        expect,
    };
    let refused = |text: &str| Expect::Refused(text.to_owned());
    vec![
        attempt(
            "SCRAM, password in the conninfo",
            "scram_password",
            format!("{scram} password={RIGHT_PASSWORD}"),
            Expect::Answered,
        ),
        attempt(
            "SCRAM, password from a passfile",
            "scram_passfile",
            format!("{scram} passfile={}", passfile().display()),
            Expect::Answered,
        ),
        // A passfile that does not exist: no password from anywhere.
        attempt(
            "SCRAM, no password",
            "scram_none",
            format!(
                "{scram} passfile={}",
                certificates().dir.join("no-such-file").display()
            ),
            refused("no password supplied"),
        ),
        attempt(
            "SCRAM, wrong password",
            "scram_wrong",
            format!("{scram} password={WRONG_PASSWORD}"),
            refused(&format!(
                "password authentication failed for user \"{SCRAM_ROLE}\""
            )),
        ),
        attempt(
            "pg_hba reject",
            "hba_reject",
            format!(
                "{} connect_timeout=10 password={REJECTED_PASSWORD}",
                p.primary.conninfo_db("postgres", REJECTED_ROLE)
            ),
            refused(&format!(
                "pg_hba.conf rejects connection for host \"127.0.0.1\", user \"{REJECTED_ROLE}\""
            )),
        ),
        attempt(
            "TLS verify-full, server certificate from another CA",
            "tls_bad_ca",
            format!(
                "{} sslmode=verify-full sslrootcert={} connect_timeout=10",
                p.primary.conninfo(),
                certificates().other_ca.display()
            ),
            refused("certificate verify failed"),
        ),
    ]
}

/// How one attempt ended, from one side.
#[derive(Debug)]
enum Ended {
    /// The echo came back.
    Answered,
    /// An error: all of its text (Display and Debug, or psql's stderr),
    /// and whether it is the kind a refused connection must be (Rust:
    /// Error::Connect, SQLSTATE 08001; standby: ERROR 08001 "could not
    /// connect to the primary").
    Refused { text: String, kind_ok: bool },
    /// Anything else (a wrong reply).
    Other(String),
}

fn rust_attempt(conninfo: &str) -> Ended {
    match rust_echo(conninfo) {
        Ok(reply) if reply == b"Esecurity" => Ended::Answered,
        Ok(reply) => Ended::Other(format!("the reply {reply:?}")),
        Err(e) => Ended::Refused {
            kind_ok: matches!(e, Error::Connect(_)) && e.sqlstate() == "08001",
            text: format!("{e}\n{e:?}"),
        },
    }
}

fn standby_attempt(conninfo: &str) -> Ended {
    match standby_echo(conninfo) {
        Ok(reply) if reply == "\\x45" => Ended::Answered,
        Ok(reply) => Ended::Other(format!("the reply {reply:?}")),
        Err(text) => Ended::Refused {
            kind_ok: text.contains("ERROR:  08001: netbuf: could not connect to the primary"),
            text,
        },
    }
}

/// The attempts and how each ended from each side, made once: the leak
/// test needs all of them to have happened, in whatever order tests run.
struct Outcomes {
    attempts: Vec<Attempt>,
    rust: Vec<Ended>,
    standby: Vec<Ended>,
}

fn outcomes() -> &'static Outcomes {
    static OUTCOMES: OnceLock<Outcomes> = OnceLock::new();
    OUTCOMES.get_or_init(|| {
        let attempts = attempts();
        Outcomes {
            rust: (attempts.iter())
                .map(|a| rust_attempt(&a.conninfo("rust")))
                .collect(),
            standby: (attempts.iter())
                .map(|a| standby_attempt(&a.conninfo("standby")))
                .collect(),
            attempts,
        }
    })
}

/// Every password of the test that `text` shows, as problems.
fn passwords_in(text: &str, what: &str) -> Vec<String> {
    ALL_PASSWORDS
        .iter()
        .filter(|pw| text.contains(*pw))
        .map(|pw| format!("{what} shows the password {pw:?}: {text}"))
        .collect()
}

/// Where the attempts from `side` did not end as the table says: the
/// outcome, the error's kind and text, a password in it, or the primary's
/// log (a refused channel was never authorized, an answered one was).
fn table_problems(side: &str, ended: &[Ended]) -> Vec<String> {
    let mut problems = Vec::new();
    for (attempt, ended) in outcomes().attempts.iter().zip(ended) {
        let what = format!("{} ({side})", attempt.what);
        match (&attempt.expect, ended) {
            (Expect::Answered, Ended::Answered) => {}
            (Expect::Refused(says), Ended::Refused { text, kind_ok }) => {
                if !kind_ok || !text.contains(says.as_str()) {
                    problems.push(format!(
                        "{what}: expected a connection refusal saying {says:?}, got:\n{text}"
                    ));
                }
                problems.extend(passwords_in(text, &format!("{what}: the error")));
            }
            (_, Ended::Other(came)) => problems.push(format!("{what}: {came}")),
            (expect, ended) => problems.push(format!("{what}: expected {expect:?}, got {ended:?}")),
        }
        let tag = format!("{}_{side}", attempt.tag);
        match (&attempt.expect, authorized_line(&tag)) {
            (Expect::Answered, None) => {
                problems.push(format!("{what}: no connection authorized line for {tag}"))
            }
            (Expect::Refused(_), Some(line)) => {
                problems.push(format!("{what}: refused, yet the primary logged {line}"))
            }
            _ => {}
        }
    }
    problems
}

#[test]
fn rust_api_attempts_end_as_the_table_says() {
    let problems = table_problems("rust", &outcomes().rust);
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn standby_backend_attempts_end_as_the_table_says() {
    let problems = table_problems("standby", &outcomes().standby);
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn scram_role_has_a_scram_verifier_and_authenticates_with_scram() {
    let p = pair();
    assert_eq!(
        p.primary.must(&format!(
            "SELECT rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid WHERE rolname = '{SCRAM_ROLE}'"
        )),
        "t"
    );
    // The successful attempts were SCRAM exchanges (log_connections).
    outcomes();
    let needle =
        format!("connection authenticated: identity=\"{SCRAM_ROLE}\" method=scram-sha-256");
    assert!(
        p.primary.log_text().contains(&needle),
        "{needle:?} not in the primary's log\n{}",
        p.primary.log_tail()
    );
}

// ---- no password anywhere -------------------------------------------------

#[test]
fn no_password_in_any_error_or_server_log() {
    let p = pair();
    let o = outcomes();
    let errors: Vec<&String> = (o.rust.iter().chain(&o.standby))
        .filter_map(|e| match e {
            Ended::Refused { text, .. } => Some(text),
            _ => None,
        })
        .collect();
    // Every refused attempt, from each side.
    let refused = o
        .attempts
        .iter()
        .filter(|a| matches!(a.expect, Expect::Refused(_)))
        .count();
    assert_eq!(errors.len(), 2 * refused, "{errors:#?}");
    let mut problems: Vec<String> = errors
        .iter()
        .flat_map(|e| passwords_in(e, "an error"))
        .collect();

    let primary_log = p.primary.log_text();
    let standby_log = p.standby.log_text();
    // The logs do record the refusals (so the check below is not vacuous).
    assert!(
        primary_log.contains(&format!(
            "password authentication failed for user \"{SCRAM_ROLE}\""
        )),
        "{}",
        p.primary.log_tail()
    );
    assert!(
        primary_log.contains(&format!("user \"{REJECTED_ROLE}\"")),
        "{}",
        p.primary.log_tail()
    );
    assert!(
        standby_log.contains("password authentication failed"),
        "{}",
        p.standby.log_tail()
    );
    problems.extend(passwords_in(&primary_log, "the primary's log"));
    problems.extend(passwords_in(&standby_log, "the standby's log"));
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

// ---- search_path ------------------------------------------------------------

#[test]
fn hostile_search_path_traps_are_armed() {
    // On the standby (same catalog, replicated), so that "hijacked" in the
    // primary's log can only come from a serving backend.
    let hostile = pair().standby.conninfo_db("postgres", HOSTILE_ROLE);
    assert_eq!(
        psql(&hostile, &["SHOW search_path"]).unwrap(),
        "evil, public, pg_catalog"
    );
    for unqualified in [
        "SELECT set_config('search_path', '', false)",
        "SELECT current_setting('search_path')",
        "CALL serve()",
    ] {
        let error = psql(&hostile, &[unqualified]).expect_err(unqualified);
        assert!(error.contains(HIJACKED), "{unqualified}: {error}");
    }
}

#[test]
fn hostile_search_path_cannot_redirect_the_channel() {
    let p = pair();
    let conninfo = format!(
        "{} application_name=hostile_rust connect_timeout=10",
        p.primary.conninfo_db("postgres", HOSTILE_ROLE)
    );
    let mut client =
        Client::connect(&conninfo).unwrap_or_else(|e| panic!("hostile role's channel: {e:?}"));
    assert_eq!(client.request(b"Enot hijacked").unwrap(), b"Enot hijacked");
    assert_eq!(
        p.primary.must(
            "SELECT usename, query FROM pg_stat_activity WHERE application_name = 'hostile_rust'"
        ),
        format!("{HOSTILE_ROLE}|CALL netbuf.serve(max_reply_size => 67108864)")
    );
    client.close();

    // From a standby backend too.
    let conninfo = format!(
        "{} application_name=hostile_standby connect_timeout=10",
        p.primary.conninfo_db("postgres", HOSTILE_ROLE)
    );
    assert_eq!(
        standby_echo(&conninfo).expect("hostile role's channel from the standby"),
        "\\x45"
    );
    assert!(
        !p.primary.log_text().contains(HIJACKED),
        "a trap fired on the primary:\n{}",
        p.primary.log_tail()
    );
}

/// search_path as the channel's serving backend sees it: a 'Q' request
/// (the test module's handler runs its payload with SPI).
fn serving_search_path(client: &mut Client) -> String {
    let reply = client
        .request(b"QSHOW search_path")
        .unwrap_or_else(|e| panic!("'Q' SHOW search_path: {e:?}"));
    assert_eq!(reply.first(), Some(&b'Q'), "reply {reply:?}");
    String::from_utf8(reply[1..].to_vec()).expect("UTF-8")
}

/// The same from a standby backend, through the C API.
fn standby_search_path(conninfo: &str) -> Result<String, String> {
    pair().standby.sql_many(&[
        "\\set VERBOSITY verbose",
        &format!(
            "SET netbuf_kit.conninfo = {}",
            netbuf_testkit::sql_literal(conninfo)
        ),
        // The reply is 'Q' + the value.
        "SELECT substr(convert_from(netbuf_test.request(current_setting('netbuf_kit.conninfo'), \
         convert_to('QSHOW search_path', 'UTF8')), 'UTF8'), 2)",
    ])
}

/// What every channel's serving backend must run with, whatever the role,
/// the database, the connection string or the environment say.
const SECURE: &str = "pg_catalog,pg_temp";

/// Issue 12: search_path is secured by the startup packet (libpq's
/// `options`, merged with the user's, netbuf's setting last), not by a
/// query of its own.  A role default (`ALTER ROLE ... SET`, the hostile
/// role's), a database default and the connection string's own
/// `-c search_path=` all lose to it, from the Rust API and from a standby
/// backend.
#[test]
fn startup_search_path_beats_role_database_and_conninfo_settings() {
    let p = pair();
    if p.primary
        .must("SELECT count(*) FROM pg_database WHERE datname = 'nb_evil_db'")
        == "0"
    {
        p.primary.must("CREATE DATABASE nb_evil_db");
        p.primary
            .sql_in("nb_evil_db", &["CREATE EXTENSION netbuf"])
            .expect("netbuf in nb_evil_db");
        p.primary
            .must("ALTER DATABASE nb_evil_db SET search_path = evil, public");
    }
    let hostile = p.primary.conninfo_db("postgres", HOSTILE_ROLE);
    // A role without defaults of its own: the database's apply.
    let evil_db = p.primary.conninfo_db("nb_evil_db", "postgres");
    // The role's and the database's defaults are in force for others.
    assert_eq!(
        p.primary
            .sql_in("nb_evil_db", &["SHOW search_path"])
            .unwrap(),
        "evil, public"
    );
    for (what, conninfo) in [
        ("role default", hostile.clone()),
        ("database default", evil_db),
        (
            "conninfo options",
            format!("{hostile} options='-c search_path=evil,public'"),
        ),
        (
            "conninfo options, long form and escapes",
            format!(r"{hostile} options='--search_path=evil -c application_name=a\\ b'"),
        ),
    ] {
        let mut client =
            Client::connect(&conninfo).unwrap_or_else(|e| panic!("{what}: Rust channel: {e:?}"));
        assert_eq!(serving_search_path(&mut client), SECURE, "{what}: Rust API");
        client.close();
        assert_eq!(
            standby_search_path(&conninfo)
                .unwrap_or_else(|e| panic!("{what}: standby channel: {e}")),
            SECURE,
            "{what}: standby backend"
        );
    }
    // The user's other options still apply.
    let mut client = Client::connect(&format!(
        r"{hostile} application_name=nb_opts options='-c work_mem=1234kB'"
    ))
    .expect("connect");
    let reply = client.request(b"QSHOW work_mem").expect("'Q'");
    assert_eq!(reply, b"Q1234kB");
    client.close();
    assert!(
        !p.primary.log_text().contains(HIJACKED),
        "a trap fired on the primary:\n{}",
        p.primary.log_tail()
    );
}

/// A connection whose options cannot be applied fails with the server's
/// error: there is no quiet fallback to a session that never secured its
/// search_path.  And options whose last backslash would escape netbuf's
/// setting are refused before connecting.
#[test]
fn broken_startup_options_are_an_error_not_silence() {
    let p = pair();
    let base = p.primary.conninfo();
    // "-c" with nothing after it but netbuf's option: the server refuses
    // the connection ("-c -c requires a value" or the like).
    let dangling = format!("{base} options=-c application_name=nb_dangling");
    let e = Client::connect(&dangling)
        .err()
        .expect("a dangling -c must fail");
    assert!(
        matches!(e, Error::Connect(_)) && e.to_string().contains("-c"),
        "{e:?}"
    );
    let e = standby_search_path(&dangling).expect_err("from the standby too");
    assert!(e.contains("-c"), "{e}");
    let e = Client::connect(&format!(r"{base} options='-c x.y=\\'"))
        .err()
        .expect("a trailing backslash must be refused");
    assert!(
        matches!(e, Error::InvalidConninfo(_)) && e.to_string().contains("backslash"),
        "{e:?}"
    );
    p.primary.assert_no_crash();
}

/// PGOPTIONS is libpq's `options` when the string has none, and a service
/// entry's `options` come before PGOPTIONS: both merged, and netbuf's
/// search_path still wins.  Run in a child process (the test binary again,
/// this test alone) so that no other test sees the variables.
#[test]
fn pgoptions_and_service_search_path_lose_to_netbufs() {
    let services = certificates().dir.join("nb_services.conf");
    fs::write(
        &services,
        "[nb_evil]\noptions=-c search_path=evil,public -c work_mem=3456kB\n",
    )
    .expect("writing the service file");
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "pgoptions_child",
            "--test-threads=1",
        ])
        .env("PGOPTIONS", "-c search_path=evil,public -c work_mem=2345kB")
        .env("PGSERVICEFILE", &services)
        .env(
            "NETBUF_TEST_HOSTILE_CONNINFO",
            pair().primary.conninfo_db("postgres", HOSTILE_ROLE),
        )
        .output()
        .expect("running the test binary");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && text.contains("1 passed"),
        "child: {text}"
    );
}

#[test]
#[ignore = "run by pgoptions_and_service_search_path_lose_to_netbufs"]
fn pgoptions_child() {
    assert!(
        std::env::var("PGOPTIONS").is_ok_and(|v| v.contains("evil")),
        "PGOPTIONS is not set: run through pgoptions_and_service_search_path_lose_to_netbufs"
    );
    let hostile = std::env::var("NETBUF_TEST_HOSTILE_CONNINFO").expect("the parent's conninfo");
    let mut client = Client::connect(&hostile).expect("connect");
    assert_eq!(serving_search_path(&mut client), SECURE);
    // PGOPTIONS did reach the server: its other setting applies.
    assert_eq!(client.request(b"QSHOW work_mem").unwrap(), b"Q2345kB");
    client.close();
    // A service entry's options win over PGOPTIONS, and lose to netbuf's.
    let mut client = Client::connect(&format!("service=nb_evil {hostile}")).expect("connect");
    assert_eq!(serving_search_path(&mut client), SECURE);
    assert_eq!(client.request(b"QSHOW work_mem").unwrap(), b"Q3456kB");
    client.close();
}
