//! Connection-string rules, end to end against a real primary and a real
//! streaming standby, from a standby backend (`netbuf_test.request`, the C
//! API) and from the Rust API:
//!
//! - no password in any error netbuf raises, nor in the standby's server log,
//!   whatever the shape of the connection string: keyword/value or URI,
//!   well-formed (a wrong password) or not (parse errors libpq would answer
//!   by quoting part of the password);
//! - a `service=` entry of pg_service.conf wins over netbuf's own defaults
//!   (dbname `postgres`, TCP keepalives), as libpq's precedence says:
//!   explicit parameter > service file > environment > built-in default.
//!
//! Needs `make install install-test-module` first.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use netbuf::{Client, Error};
use netbuf_testkit::test_module::standby_request;
use netbuf_testkit::{BackgroundSql, Pair, PairOptions, psql, shared_pair_with, sql_literal};

/// Authenticates with SCRAM; every failing case sends it a wrong password.
const PW_ROLE: &str = "netbuf_rules_pw";
const PW_ROLE_PASSWORD: &str = "Rules-right-3b8e1f0c";

/// The database a service entry sends channels to (netbuf's default would
/// be `postgres`).
const OTHER_DB: &str = "netbuf_rules_db";
/// Service entry with dbname OTHER_DB and keepalives_idle = SERVICE_IDLE.
const SERVICE: &str = "netbuf_rules";
/// Service entry with dbname OTHER_DB and no keepalive setting.
const SERVICE_PLAIN: &str = "netbuf_rules_plain";
/// Differs from netbuf's default (15 s).
const SERVICE_IDLE: u32 = 7;
const NETBUF_DEFAULT_IDLE: u32 = 15;

/// The test that runs the Rust API side of the service checks in a child
/// process (its environment decides which service file libpq reads).
const RUST_SERVICE_CHILD: &str = "service_child_rust_api";
/// The primary's port, for that child.
const CHILD_PORT_VAR: &str = "NETBUF_RULES_CHILD_PRIMARY_PORT";

fn options() -> PairOptions {
    let mut opts = PairOptions::with_test_module();
    opts.primary_conf
        .push("password_encryption = 'scram-sha-256'".into());
    opts.hba_lines = vec![format!("host all {PW_ROLE} 127.0.0.1/32 scram-sha-256")];
    opts.setup_sql.extend([
        format!("CREATE ROLE {PW_ROLE} LOGIN PASSWORD '{PW_ROLE_PASSWORD}'"),
        format!("GRANT EXECUTE ON PROCEDURE netbuf.serve TO {PW_ROLE}"),
        format!("CREATE DATABASE {OTHER_DB}"),
    ]);
    opts
}

/// The shared pair, ready for every test: the extension exists in
/// OTHER_DB, the service file is written, and the standby runs with
/// PGSERVICEFILE naming it (so its backends' libpq reads it).
fn pair() -> &'static Pair {
    static READY: OnceLock<&'static Pair> = OnceLock::new();
    READY.get_or_init(|| {
        let p = shared_pair_with(options);
        p.primary
            .sql_in(OTHER_DB, &["CREATE EXTENSION netbuf"])
            .unwrap_or_else(|e| panic!("CREATE EXTENSION in {OTHER_DB}: {e}"));
        // pg_ctl starts the new postmaster with its own environment, and
        // backends inherit it.
        p.standby
            .restart_with_env("fast", &[("PGSERVICEFILE", &service_file(p))]);
        p.standby
            .wait_for("SELECT pg_is_in_recovery()", "t", Duration::from_secs(60))
            .expect("the restarted standby is a standby");
        p
    })
}

fn service_text(p: &Pair) -> String {
    let target = format!(
        "host={}\nport={}\nuser=postgres\ndbname={OTHER_DB}\n",
        p.primary.host, p.primary.port
    );
    format!(
        "# netbuf conninfo_rules test\n\
         [{SERVICE}]\n{target}keepalives_idle={SERVICE_IDLE}\n\n\
         [{SERVICE_PLAIN}]\n{target}"
    )
}

/// pg_service.conf in the pair's directory, readable by the server user.
fn service_file(p: &Pair) -> PathBuf {
    let path = p.dir().join("pg_service.conf");
    fs::write(&path, service_text(p)).expect("writing the service file");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
    path
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

#[test]
fn standby_errors_and_server_log_never_show_the_password() {
    let p = pair();
    let mut problems = Vec::new();
    let cases = cases();
    for case in &cases {
        let error = match standby_request(&p.standby, &case.conninfo) {
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

// ---- a service entry wins over netbuf's defaults ------------------------------

/// The service checks all look for "the" serving backend with
/// application_name `netbuf`, so they run one at a time.
static SERVICE_CHECKS: Mutex<()> = Mutex::new(());

/// The serving backend of the one channel open now: its database and the
/// client's TCP port.
fn serving_backend() -> (String, u16) {
    let p = pair();
    let pid = p
        .primary
        .wait_backend("application_name = 'netbuf' AND query LIKE 'CALL netbuf.serve(%'");
    let row = p.primary.must(&format!(
        "SELECT datname || ' ' || client_port FROM pg_stat_activity WHERE pid = {pid}"
    ));
    let (db, port) = row.split_once(' ').expect("datname and client_port");
    (db.to_owned(), port.parse().expect("client_port"))
}

/// Seconds until the keepalive timer of the TCP connection from local
/// `port` to the primary fires, from /proc/net/tcp: at most the socket's
/// TCP_KEEPIDLE right after traffic.
fn keepalive_timer(port: u16) -> f64 {
    let primary = pair().primary.port;
    let table = fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    let port_of = |address: &str| {
        u16::from_str_radix(address.rsplit(':').next().unwrap_or_default(), 16).unwrap_or(0)
    };
    for line in table.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 6 || port_of(fields[1]) != port || port_of(fields[2]) != primary {
            continue;
        }
        let (timer, when) = fields[5].split_once(':').expect("tr:tm->when");
        assert_eq!(timer, "02", "no keepalive timer on the channel: {line}");
        // SAFETY: sysconf has no preconditions.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        return u64::from_str_radix(when, 16).expect("jiffies") as f64 / ticks;
    }
    panic!("no TCP connection from port {port} to the primary in /proc/net/tcp");
}

/// A standby backend holds a channel opened with `conninfo` for a few
/// seconds; returns the serving backend's database and the channel's
/// keepalive timer, read just after its first exchange.
fn standby_channel(conninfo: &str) -> (String, f64) {
    let sql = format!("SELECT netbuf_test.hold({}, 3000)", sql_literal(conninfo));
    let call = BackgroundSql::start(&pair().standby, "rules_hold", &sql);
    let (db, port) = serving_backend();
    let timer = keepalive_timer(port);
    let ended = call.finish(Instant::now(), Duration::from_secs(60));
    assert!(
        ended.success,
        "{sql} failed: {}\n{}",
        ended.stderr,
        pair().standby.log_tail()
    );
    (db, timer)
}

#[test]
fn service_entry_wins_over_netbuf_defaults_from_a_standby() {
    let _one_at_a_time = SERVICE_CHECKS.lock().unwrap_or_else(|e| e.into_inner());
    let idle = f64::from(SERVICE_IDLE);
    for conninfo in [
        format!("service={SERVICE}"),
        format!("postgresql://?service={SERVICE}"),
    ] {
        let (db, timer) = standby_channel(&conninfo);
        assert_eq!(db, OTHER_DB, "{conninfo}: the service's dbname");
        assert!(
            timer > 0.0 && timer <= idle,
            "{conninfo}: keepalive timer {timer} s, the service sets keepalives_idle={SERVICE_IDLE}"
        );
    }
    // Control: an entry silent on keepalives gets netbuf's, which the
    // timer tells apart from the service's.
    let (db, timer) = standby_channel(&format!("service={SERVICE_PLAIN}"));
    assert_eq!(db, OTHER_DB, "{SERVICE_PLAIN}: the service's dbname");
    assert!(
        timer > idle + 0.5 && timer <= f64::from(NETBUF_DEFAULT_IDLE),
        "{SERVICE_PLAIN}: keepalive timer {timer} s, netbuf's default is {NETBUF_DEFAULT_IDLE}"
    );
    // And the string still beats the service.
    let (db, _) = standby_channel(&format!("service={SERVICE} dbname=postgres"));
    assert_eq!(db, "postgres", "an explicit dbname wins over the service's");
}

#[test]
fn service_entry_wins_over_netbuf_defaults_in_the_rust_api() {
    let _one_at_a_time = SERVICE_CHECKS.lock().unwrap_or_else(|e| e.into_inner());
    let p = pair();
    // libpq finds ~/.pg_service.conf through HOME; the child's HOME is a
    // directory of ours, and no other service variable is set.
    let home = p.dir().join("rust_home");
    fs::create_dir_all(&home).expect("mkdir");
    fs::write(home.join(".pg_service.conf"), service_text(p)).expect("write");
    let exe = std::env::current_exe().expect("current_exe");
    let output = Command::new(exe)
        .args([RUST_SERVICE_CHILD, "--exact", "--ignored", "--nocapture"])
        .args(["--test-threads", "1"])
        .env("HOME", &home)
        .env(CHILD_PORT_VAR, p.primary.port.to_string())
        .env_remove("PGSERVICEFILE")
        .env_remove("PGSYSCONFDIR")
        .env_remove("PGSERVICE")
        .env_remove("PGDATABASE")
        .stdin(Stdio::null())
        .output()
        .expect("running the child test");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains(&format!("test {RUST_SERVICE_CHILD} ... ok")),
        "child {RUST_SERVICE_CHILD} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
}

/// The socket of the one open channel to the primary at `port`.
fn channel_socket(port: u16) -> libc::c_int {
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc/self/fd").expect("/proc/self/fd") {
        let Ok(fd) = entry
            .expect("fd entry")
            .file_name()
            .to_string_lossy()
            .parse()
        else {
            continue;
        };
        // SAFETY: sockaddr_in is plain data; getpeername writes at most len
        // bytes and fails harmlessly on non-sockets.
        let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let rc = unsafe { libc::getpeername(fd, (&raw mut addr).cast(), &mut len) };
        if rc == 0
            && libc::c_int::from(addr.sin_family) == libc::AF_INET
            && u16::from_be(addr.sin_port) == port
        {
            found.push(fd);
        }
    }
    assert_eq!(found.len(), 1, "sockets to port {port}: {found:?}");
    found[0]
}

fn tcp_option(fd: libc::c_int, option: libc::c_int) -> i32 {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: value and len describe a c_int the kernel may fill.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            option,
            (&raw mut value).cast(),
            &mut len,
        )
    };
    assert_eq!(rc, 0, "getsockopt: {}", std::io::Error::last_os_error());
    value
}

/// Run by `service_entry_wins_over_netbuf_defaults_in_the_rust_api` in a
/// child process whose HOME holds the service file; fails if run otherwise.
#[test]
#[ignore = "run by service_entry_wins_over_netbuf_defaults_in_the_rust_api"]
fn service_child_rust_api() {
    let port: u16 = std::env::var(CHILD_PORT_VAR)
        .unwrap_or_else(|_| panic!("{CHILD_PORT_VAR} is not set: run the parent test"))
        .parse()
        .expect("port");
    let admin = format!("host=127.0.0.1 port={port} user=postgres dbname=postgres");
    // (conninfo, database, TCP_KEEPIDLE)
    let expectations = [
        (format!("service={SERVICE}"), OTHER_DB, SERVICE_IDLE),
        (
            format!("postgresql://?service={SERVICE}"),
            OTHER_DB,
            SERVICE_IDLE,
        ),
        (
            format!("service={SERVICE_PLAIN}"),
            OTHER_DB,
            NETBUF_DEFAULT_IDLE,
        ),
        (
            format!("service={SERVICE} keepalives_idle=9 dbname=postgres"),
            "postgres",
            9,
        ),
        // Control: no service, no dbname: netbuf's defaults.
        (
            format!("host=127.0.0.1 port={port} user=postgres"),
            "postgres",
            NETBUF_DEFAULT_IDLE,
        ),
    ];
    for (conninfo, db, idle) in expectations {
        let mut client = Client::connect(&conninfo).unwrap_or_else(|e| panic!("{conninfo}: {e}"));
        assert_eq!(client.request(b"Erules").expect("echo"), b"Erules");
        let fd = channel_socket(port);
        assert_eq!(
            tcp_option(fd, libc::TCP_KEEPIDLE),
            idle as i32,
            "{conninfo}: TCP_KEEPIDLE"
        );
        // SAFETY: as in tcp_option, for a sockaddr_in.
        let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        assert_eq!(
            unsafe { libc::getsockname(fd, (&raw mut addr).cast(), &mut len) },
            0
        );
        let local = u16::from_be(addr.sin_port);
        let datname = psql(
            &admin,
            &[&format!(
                "SELECT datname FROM pg_stat_activity WHERE client_port = {local} \
                 AND application_name = 'netbuf'"
            )],
        )
        .expect("pg_stat_activity");
        assert_eq!(datname, db, "{conninfo}: the serving backend's database");
        client.close();
    }
}
