//! Connection-string rules, end to end against a real primary and a real
//! streaming standby, from a standby backend (`netbuf_test.request`, the C
//! API) and from the Rust API: no password in any error netbuf raises, nor
//! in the standby's server log, whatever the shape of the connection
//! string: keyword/value or URI, well-formed (a wrong password) or not
//! (parse errors libpq would answer by quoting part of the password).
//!
//! Needs `make install install-test-module` first.

mod common;

use common::{Pair, PairOptions, psql, shared_pair_with};
use netbuf::{Client, Error};

/// Authenticates with SCRAM; every failing case sends it a wrong password.
const PW_ROLE: &str = "netbuf_rules_pw";
const PW_ROLE_PASSWORD: &str = "Rules-right-3b8e1f0c";

fn options() -> PairOptions {
    PairOptions {
        primary_conf: vec!["password_encryption = 'scram-sha-256'".into()],
        hba_lines: vec![format!("host all {PW_ROLE} 127.0.0.1/32 scram-sha-256")],
        setup_sql: vec![
            "CREATE EXTENSION netbuf".into(),
            "CREATE EXTENSION netbuf_test".into(),
            format!("CREATE ROLE {PW_ROLE} LOGIN PASSWORD '{PW_ROLE_PASSWORD}'"),
            format!("GRANT EXECUTE ON PROCEDURE netbuf.serve TO {PW_ROLE}"),
        ],
        ..PairOptions::default()
    }
}

fn pair() -> &'static Pair {
    shared_pair_with(options)
}

fn sql_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

// ---- no password in errors or logs -------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    /// netbuf refuses the string before connecting (SQLSTATE 22023).
    Refused,
    /// The connection attempt fails (SQLSTATE 08001).
    Connect,
}

struct Case {
    name: &'static str,
    conninfo: String,
    /// Text that must appear nowhere: the password, and each part of it a
    /// parser could split off.
    secrets: Vec<String>,
    kind: Kind,
    /// What the error must say, so that it stays useful.
    says: &'static str,
}

fn cases() -> Vec<Case> {
    let p = pair();
    let kw = format!(
        "host={} port={} user={PW_ROLE} dbname=postgres connect_timeout=10",
        p.primary.host, p.primary.port
    );
    let hp = format!("{}:{}", p.primary.host, p.primary.port);
    let uri = |userinfo: &str, rest: &str| {
        format!("postgresql://{userinfo}@{hp}/postgres?connect_timeout=10{rest}")
    };
    let case = |name, conninfo: String, secrets: &[&str], kind, says| Case {
        name,
        conninfo,
        secrets: secrets.iter().map(|s| s.to_string()).collect(),
        kind,
        says,
    };
    use Kind::*;
    vec![
        // keyword/value strings
        case(
            "keyword: wrong password",
            format!("{kw} password=Kw01-pw3a"),
            &["Kw01-pw3a"],
            Connect,
            "password authentication failed",
        ),
        case(
            "keyword: wrong quoted password with spaces and an escaped quote",
            format!(r"{kw} password='Kw02a-c1 Kw02b-77 \' Kw02c-e9'"),
            &["Kw02a-c1", "Kw02b-77", "Kw02c-e9"],
            Connect,
            "password authentication failed",
        ),
        case(
            "keyword: invalid option after the password",
            format!("{kw} password=Kw03-b8 bogus_opt=1"),
            &["Kw03-b8"],
            Refused,
            "invalid connection option",
        ),
        case(
            "keyword: invalid option before the password is named",
            format!("bogus_opt=1 {kw} password=Kw04-0d"),
            &["Kw04-0d"],
            Refused,
            "invalid connection option \"bogus_opt\"",
        ),
        case(
            "keyword: quoted password, then an invalid option",
            format!(r"{kw} password='Kw05a-4f Kw05b-a2 \' Kw05c-3c' bogus_opt=1"),
            &["Kw05a-4f", "Kw05b-a2", "Kw05c-3c"],
            Refused,
            "invalid connection option",
        ),
        case(
            "keyword: unquoted password with a space",
            format!("{kw} password=Kw06a-91 Kw06b-5e"),
            &["Kw06a-91", "Kw06b-5e"],
            Refused,
            "missing \"=\"",
        ),
        case(
            "keyword: unterminated quote after the password",
            format!("{kw} password='Kw07a-d0 Kw07b-6b"),
            &["Kw07a-d0", "Kw07b-6b"],
            Refused,
            "unterminated quoted string",
        ),
        case(
            "keyword: missing '=' after password",
            format!("{kw} password Kw08-2e"),
            &["Kw08-2e"],
            Refused,
            "missing \"=\"",
        ),
        case(
            "keyword: ':' instead of '='",
            format!("{kw} password:Kw09-f4"),
            &["Kw09-f4"],
            Refused,
            "missing \"=\"",
        ),
        case(
            "keyword: unescaped quote inside a quoted password",
            format!("{kw} password='Kw10a-85'Kw10b-1a' sslmode=disable"),
            &["Kw10a-85", "Kw10b-1a"],
            Refused,
            "missing \"=\"",
        ),
        case(
            "keyword: password that is itself a bad token",
            format!("{kw} password=Kw11a-c6=Kw11b-39 bogus_opt"),
            &["Kw11a-c6", "Kw11b-39"],
            Refused,
            "missing \"=\"",
        ),
        case(
            "keyword: sslpassword before an invalid option",
            format!("{kw} sslpassword=Kw12-0b bogus_opt=1"),
            &["Kw12-0b"],
            Refused,
            "invalid connection option",
        ),
        // URIs
        case(
            "URI: wrong password, percent-encoded",
            uri(&format!("{PW_ROLE}:Uri01a-5d%2F%40Uri01b-e2"), ""),
            &["Uri01a-5d", "Uri01b-e2"],
            Connect,
            "password authentication failed",
        ),
        case(
            "URI: wrong password as a query parameter",
            uri(PW_ROLE, "&password=Uri02-7a"),
            &["Uri02-7a"],
            Connect,
            "password authentication failed",
        ),
        case(
            "URI: bad percent-encoding in the userinfo password",
            uri(&format!("{PW_ROLE}:Uri03a-Hunter%zz2"), ""),
            &["Uri03a-Hunter"],
            Refused,
            "invalid percent-encoded token",
        ),
        case(
            "URI: bad percent-encoding in the password parameter",
            uri(PW_ROLE, "&password=Uri04-c3%zz"),
            &["Uri04-c3"],
            Refused,
            "invalid percent-encoded token",
        ),
        case(
            "URI: bad percent-encoding under a percent-encoded parameter name",
            uri(PW_ROLE, "&%70assword=Uri05-8f%G1"),
            &["Uri05-8f"],
            Refused,
            "invalid percent-encoded token",
        ),
        case(
            "URI: %00 in the password",
            uri(&format!("{PW_ROLE}:Uri06a-2b%00Uri06b-d1"), ""),
            &["Uri06a-2b", "Uri06b-d1"],
            Refused,
            "%00",
        ),
        case(
            "URI: invalid parameter after the userinfo is named",
            uri(&format!("{PW_ROLE}:Uri07-9c"), "&bogus_param=1"),
            &["Uri07-9c"],
            Refused,
            "invalid URI query parameter: \"bogus_param\"",
        ),
        case(
            "URI: invalid parameter after the password parameter",
            uri(PW_ROLE, "&password=Uri08-46&bogus_param=1"),
            &["Uri08-46"],
            Refused,
            "invalid URI query parameter",
        ),
        case(
            "URI: '&' in the password parameter",
            uri(PW_ROLE, "&password=Uri09a-e7&Uri09b-30"),
            &["Uri09a-e7", "Uri09b-30"],
            Refused,
            "missing key/value separator",
        ),
        case(
            "URI: unclosed IPv6 bracket after the password",
            format!("postgresql://{PW_ROLE}:Uri10-b5@[::1/postgres"),
            &["Uri10-b5"],
            Refused,
            "IPv6 host address",
        ),
        case(
            "URI: unencoded '@' in the password",
            uri(&format!("{PW_ROLE}:Uri11a-64@Uri11b-0e"), ""),
            &["Uri11a-64", "Uri11b-0e"],
            Refused,
            "percent-encode",
        ),
        case(
            "URI: unencoded '/' in the password",
            uri(&format!("{PW_ROLE}:Uri12a-f0/Uri12b-2d"), ""),
            &["Uri12a-f0", "Uri12b-2d"],
            Refused,
            "percent-encode",
        ),
    ]
}

/// Every way `text` shows a secret of `case`, as one line each.
fn leaks(case: &Case, text: &str, what: &str) -> Vec<String> {
    case.secrets
        .iter()
        .filter(|s| text.contains(s.as_str()))
        .map(|s| format!("{}: {what} shows {s:?}: {text}", case.name))
        .collect()
}

#[test]
fn rust_api_errors_never_show_the_password() {
    let mut problems = Vec::new();
    for case in cases() {
        let error = match Client::connect(&case.conninfo) {
            Ok(_) => {
                problems.push(format!("{}: connected", case.name));
                continue;
            }
            Err(e) => e,
        };
        let text = error.to_string();
        problems.extend(leaks(&case, &text, "the error"));
        problems.extend(leaks(&case, &format!("{error:?}"), "the error (Debug)"));
        let kind_ok = match case.kind {
            Kind::Refused => matches!(error, Error::InvalidConninfo(_)),
            Kind::Connect => matches!(error, Error::Connect(_)),
        };
        if !kind_ok || !text.contains(case.says) {
            problems.push(format!(
                "{}: expected a {:?} error saying {:?}, got {error:?}",
                case.name, case.kind, case.says
            ));
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// `netbuf_test.request` on the standby, with verbose errors.  The
/// conninfo travels in a session variable, not in the failing statement:
/// the standby logs the text of a failed statement, and a password the test
/// itself wrote there would not be netbuf's leak.
fn standby_request(conninfo: &str) -> Result<String, String> {
    psql(
        &pair().standby.conninfo(),
        &[
            "\\set VERBOSITY verbose",
            &format!("SET netbuf_rules.conninfo = {}", sql_literal(conninfo)),
            "SELECT netbuf_test.request(current_setting('netbuf_rules.conninfo'), '\\x45'::bytea)",
        ],
    )
}

#[test]
fn standby_errors_and_server_log_never_show_the_password() {
    let p = pair();
    let mut problems = Vec::new();
    let cases = cases();
    for case in &cases {
        let error = match standby_request(&case.conninfo) {
            Ok(out) => {
                problems.push(format!("{}: connected: {out}", case.name));
                continue;
            }
            Err(e) => e,
        };
        problems.extend(leaks(case, &error, "the ERROR"));
        let sqlstate = match case.kind {
            Kind::Refused => "22023",
            Kind::Connect => "08001",
        };
        if !error.contains(&format!("ERROR:  {sqlstate}:")) || !error.contains(case.says) {
            problems.push(format!(
                "{}: expected SQLSTATE {sqlstate} saying {:?}, got: {error}",
                case.name, case.says
            ));
        }
    }
    // The ERRORs were logged before psql saw them.
    let standby_log = p.standby.log_text();
    let primary_log = p.primary.log_text();
    for case in &cases {
        for secret in &case.secrets {
            for (node, log) in [("standby", &standby_log), ("primary", &primary_log)] {
                if let Some(at) = log.find(secret.as_str()) {
                    let line = log[..at].lines().count();
                    problems.push(format!(
                        "{}: the {node}'s log shows {secret:?} (line {line}): {}",
                        case.name,
                        log[at..].lines().next().unwrap_or_default()
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}
