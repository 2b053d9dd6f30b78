//! Security, against a real primary and a real streaming standby: TLS with
//! `sslmode=verify-full`, SCRAM and pg_hba refusals, no password in any
//! error or server log, and a hostile role's search_path that must not
//! redirect the channel. Both the Rust API and a standby backend (the C API
//! through `netbuf_test.request`) are checked.
//!
//! Needs `make install install-test-module` first, and the `openssl` CLI
//! (for a throwaway CA and server certificate); the tests install nothing.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use common::{Pair, PairOptions, psql, shared_pair_with};
use netbuf::{Client, Error};

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

// ---- files made before the primary starts ---------------------------------

/// Certificates and the passfile, in a private directory the server user
/// can read (the primary reads the key; standby backends read the CA files
/// and the passfile).
struct Files {
    dir: PathBuf,
    /// The CA that signed the server certificate.
    ca: PathBuf,
    /// A CA that signed nothing the server presents.
    other_ca: PathBuf,
    server_crt: PathBuf,
    server_key: PathBuf,
    /// `.pgpass` format, mode 0600, with the right password for SCRAM_ROLE.
    passfile: PathBuf,
}

static FILES: OnceLock<Files> = OnceLock::new();

fn files() -> &'static Files {
    FILES.get_or_init(make_files)
}

/// The OS user the servers run as (the harness's rule), None when not root.
fn server_user() -> Option<String> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    Some(std::env::var("NETBUF_TEST_OS_USER").unwrap_or_else(|_| "postgres".into()))
}

fn run_checked(mut cmd: Command, what: &str) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: could not run {:?}: {e}", cmd.get_program()));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn openssl(dir: &Path, args: &[&str], what: &str) {
    let mut cmd = Command::new("openssl");
    cmd.current_dir(dir).args(args);
    run_checked(cmd, what);
}

/// A self-signed CA: `<name>.crt` and `<name>.key` in `dir`.
fn make_ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-new",
            "-nodes",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
            "-days",
            "2",
            "-subj",
            &format!("/CN=netbuf test {name}"),
        ],
        &format!("openssl: CA {name}"),
    );
}

extern "C" fn remove_files() {
    if let Some(f) = FILES.get() {
        let _ = fs::remove_dir_all(&f.dir);
    }
}

fn make_files() -> Files {
    // The test installs nothing: without the CLI it stops and says so.
    if let Err(e) = Command::new("openssl")
        .arg("version")
        .stdout(Stdio::null())
        .status()
    {
        panic!("the `openssl` command-line tool is needed for the TLS tests ({e}); install it");
    }
    let base = std::env::var_os("NETBUF_TEST_TMPDIR").unwrap_or_else(|| "/tmp".into());
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = Path::new(&base).join(format!("netbuf-security-{}-{nanos}", std::process::id()));
    fs::create_dir(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    if !std::env::var("NETBUF_TEST_KEEP").is_ok_and(|v| v == "1") {
        // Registered before the shared pair's own atexit, so it runs after
        // the servers are stopped.
        // SAFETY: registering a plain extern "C" fn that never unwinds.
        unsafe { libc::atexit(remove_files) };
    }
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();

    make_ca(&dir, "ca");
    make_ca(&dir, "other_ca");
    openssl(
        &dir,
        &[
            "req",
            "-new",
            "-nodes",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
        "openssl: server key and CSR",
    );
    fs::write(
        dir.join("server.ext"),
        "basicConstraints = CA:FALSE\n\
         keyUsage = critical, digitalSignature, keyEncipherment\n\
         extendedKeyUsage = serverAuth\n\
         subjectAltName = IP:127.0.0.1\n",
    )
    .unwrap();
    openssl(
        &dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-set_serial",
            "2",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.crt",
        ],
        "openssl: server certificate",
    );

    let passfile = dir.join("pgpass");
    fs::write(
        &passfile,
        format!("127.0.0.1:*:*:{SCRAM_ROLE}:{RIGHT_PASSWORD}\n"),
    )
    .unwrap();
    for private in [dir.join("server.key"), passfile.clone()] {
        fs::set_permissions(&private, fs::Permissions::from_mode(0o600)).unwrap();
    }
    if let Some(user) = server_user() {
        let mut chown = Command::new("chown");
        chown.arg("-R").arg(&user).arg(&dir);
        run_checked(chown, "chown of the certificate dir");
    }

    Files {
        ca: dir.join("ca.crt"),
        other_ca: dir.join("other_ca.crt"),
        server_crt: dir.join("server.crt"),
        server_key: dir.join("server.key"),
        passfile,
        dir,
    }
}

// ---- the pair ---------------------------------------------------------------

fn options() -> PairOptions {
    let f = files();
    PairOptions {
        primary_conf: vec![
            "session_preload_libraries = 'netbuf_test'".into(),
            "ssl = on".into(),
            format!("ssl_cert_file = '{}'", f.server_crt.display()),
            format!("ssl_key_file = '{}'", f.server_key.display()),
            "password_encryption = 'scram-sha-256'".into(),
            // "connection authorized: ... SSL enabled" for standby channels.
            "log_connections = on".into(),
        ],
        hba_lines: vec![
            format!("host all {SCRAM_ROLE} 127.0.0.1/32 scram-sha-256"),
            format!("host all {REJECTED_ROLE} 127.0.0.1/32 reject"),
        ],
        setup_sql: vec![
            "CREATE EXTENSION netbuf".into(),
            "CREATE EXTENSION netbuf_test".into(),
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

/// One echo round trip with the Rust API.
fn rust_echo(conninfo: &str) -> Result<Vec<u8>, Error> {
    let mut client = Client::connect(conninfo)?;
    let reply = client.request(b"Esecurity")?;
    client.close();
    Ok(reply)
}

/// One echo round trip from a standby backend (`netbuf_test.request`, the C
/// API), with verbose errors (SQLSTATE, CONTEXT) from psql's stderr.
///
/// The conninfo travels in a session variable, not in the failing
/// statement's text: the standby logs the text of a failed statement, and a
/// password the test itself wrote there would not be netbuf's leak.
fn standby_echo(conninfo: &str) -> Result<String, String> {
    psql(
        &pair().standby.conninfo(),
        &[
            "\\set VERBOSITY verbose",
            &format!("SET netbuf_security.conninfo = {}", sql_literal(conninfo)),
            "SELECT netbuf_test.request(current_setting('netbuf_security.conninfo'), '\\x45'::bytea)",
        ],
    )
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
    let mut client =
        Client::connect(&verify_full(&files().ca, "tls_rust_ok")).expect("verify-full connect");
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

#[test]
fn tls_verify_full_rust_client_refuses_a_server_from_another_ca() {
    let error = Client::connect(&verify_full(&files().other_ca, "tls_rust_bad_ca"))
        .err()
        .expect("verify-full against the wrong CA must fail");
    assert!(matches!(error, Error::Connect(_)), "{error:?}");
    assert!(
        error.to_string().contains("certificate verify failed"),
        "{error}"
    );
    assert_eq!(
        pair().primary.must(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'tls_rust_bad_ca'"
        ),
        "0"
    );
}

/// The primary's "connection authorized" log line for `tag`.
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
    assert_eq!(
        standby_echo(&verify_full(&files().ca, "tls_standby_ok")).expect("verify-full echo"),
        "\\x45"
    );
    let line = authorized_line("tls_standby_ok").unwrap_or_else(|| {
        panic!(
            "no connection authorized line for tls_standby_ok\n{}",
            p.primary.log_tail()
        )
    });
    assert!(line.contains("SSL enabled"), "{line}");

    // Control: a channel with sslmode=disable is logged without SSL.
    let plain = format!(
        "{} sslmode=disable application_name=tls_standby_plain",
        p.primary.conninfo()
    );
    assert_eq!(standby_echo(&plain).expect("plain echo"), "\\x45");
    let line = authorized_line("tls_standby_plain").unwrap_or_else(|| {
        panic!(
            "no connection authorized line for tls_standby_plain\n{}",
            p.primary.log_tail()
        )
    });
    assert!(!line.contains("SSL enabled"), "{line}");
}

#[test]
fn tls_verify_full_standby_backend_refuses_a_server_from_another_ca() {
    let error = standby_echo(&verify_full(&files().other_ca, "tls_standby_bad_ca"))
        .expect_err("verify-full against the wrong CA must fail");
    assert!(error.contains("certificate verify failed"), "{error}");
    assert!(
        error.contains("netbuf: could not connect to the primary"),
        "{error}"
    );
    assert!(authorized_line("tls_standby_bad_ca").is_none());
}

// ---- SCRAM and pg_hba -----------------------------------------------------

/// The outcome of each authentication attempt, made once (the leak test
/// needs all of them to have happened, in whatever order tests run).
struct AuthAttempts<T> {
    password: T,
    passfile: T,
    no_password: T,
    wrong_password: T,
    rejected: T,
}

struct Attempts {
    rust: AuthAttempts<Result<Vec<u8>, Error>>,
    standby: AuthAttempts<Result<String, String>>,
}

fn scram_conninfos() -> AuthAttempts<String> {
    let p = pair();
    let f = files();
    let scram = format!(
        "{} connect_timeout=10",
        p.primary.conninfo_db("postgres", SCRAM_ROLE)
    );
    AuthAttempts {
        password: format!("{scram} password={RIGHT_PASSWORD}"),
        passfile: format!("{scram} passfile={}", f.passfile.display()),
        // A passfile that does not exist: no password from anywhere.
        no_password: format!("{scram} passfile={}", f.dir.join("no-such-file").display()),
        wrong_password: format!("{scram} password={WRONG_PASSWORD}"),
        rejected: format!(
            "{} connect_timeout=10 password={REJECTED_PASSWORD}",
            p.primary.conninfo_db("postgres", REJECTED_ROLE)
        ),
    }
}

fn attempts() -> &'static Attempts {
    static ATTEMPTS: OnceLock<Attempts> = OnceLock::new();
    ATTEMPTS.get_or_init(|| {
        let c = scram_conninfos();
        Attempts {
            rust: AuthAttempts {
                password: rust_echo(&c.password),
                passfile: rust_echo(&c.passfile),
                no_password: rust_echo(&c.no_password),
                wrong_password: rust_echo(&c.wrong_password),
                rejected: rust_echo(&c.rejected),
            },
            standby: AuthAttempts {
                password: standby_echo(&c.password),
                passfile: standby_echo(&c.passfile),
                no_password: standby_echo(&c.no_password),
                wrong_password: standby_echo(&c.wrong_password),
                rejected: standby_echo(&c.rejected),
            },
        }
    })
}

fn assert_no_password(text: &str, what: &str) {
    for password in ALL_PASSWORDS {
        assert!(
            !text.contains(password),
            "{what} contains the password {password:?}:\n{text}"
        );
    }
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
    attempts();
    let needle =
        format!("connection authenticated: identity=\"{SCRAM_ROLE}\" method=scram-sha-256");
    assert!(
        p.primary.log_text().contains(&needle),
        "{needle:?} not in the primary's log\n{}",
        p.primary.log_tail()
    );
}

#[test]
fn scram_rust_client_authenticates_with_password_or_passfile_only() {
    let a = &attempts().rust;
    assert_eq!(a.password.as_deref(), Ok(&b"Esecurity"[..]), "password=");
    assert_eq!(a.passfile.as_deref(), Ok(&b"Esecurity"[..]), "passfile=");
    // Control: without either, the server asks for one and gets none.
    let error = a.no_password.as_ref().expect_err("no password, no channel");
    assert!(matches!(error, Error::Connect(_)), "{error:?}");
    assert!(
        error.to_string().contains("no password supplied"),
        "{error}"
    );
}

#[test]
fn scram_rust_client_wrong_password_is_refused_without_echoing_a_password() {
    let error = attempts()
        .rust
        .wrong_password
        .as_ref()
        .expect_err("wrong password must fail");
    assert!(matches!(error, Error::Connect(_)), "{error:?}");
    let text = error.to_string();
    assert!(
        text.contains(&format!(
            "password authentication failed for user \"{SCRAM_ROLE}\""
        )),
        "{text}"
    );
    assert_no_password(&text, "the error");
    assert_no_password(&format!("{error:?}"), "the error (Debug)");
}

#[test]
fn hba_reject_refuses_rust_client() {
    let error = attempts()
        .rust
        .rejected
        .as_ref()
        .expect_err("a reject line must refuse");
    assert!(matches!(error, Error::Connect(_)), "{error:?}");
    let text = error.to_string();
    assert!(
        text.contains(&format!(
            "pg_hba.conf rejects connection for host \"127.0.0.1\", user \"{REJECTED_ROLE}\""
        )),
        "{text}"
    );
    assert_no_password(&text, "the error");
}

#[test]
fn scram_standby_backend_authenticates_with_password_or_passfile_only() {
    let a = &attempts().standby;
    assert_eq!(a.password.as_deref(), Ok("\\x45"), "password=");
    assert_eq!(a.passfile.as_deref(), Ok("\\x45"), "passfile=");
    let error = a.no_password.as_ref().expect_err("no password, no channel");
    assert!(error.contains("no password supplied"), "{error}");
    assert!(
        error.contains("netbuf: could not connect to the primary"),
        "{error}"
    );
}

#[test]
fn scram_standby_backend_wrong_password_is_refused_without_echoing_a_password() {
    let error = attempts()
        .standby
        .wrong_password
        .as_ref()
        .expect_err("wrong password must fail");
    assert!(
        error.contains(&format!(
            "password authentication failed for user \"{SCRAM_ROLE}\""
        )),
        "{error}"
    );
    assert_no_password(error, "the standby's error");
}

#[test]
fn hba_reject_refuses_standby_backend() {
    let error = attempts()
        .standby
        .rejected
        .as_ref()
        .expect_err("a reject line must refuse");
    assert!(
        error.contains(&format!(
            "pg_hba.conf rejects connection for host \"127.0.0.1\", user \"{REJECTED_ROLE}\""
        )),
        "{error}"
    );
    assert_no_password(error, "the standby's error");
}

// ---- no password anywhere -------------------------------------------------

#[test]
fn no_password_in_any_error_or_server_log() {
    let p = pair();
    let a = attempts();
    let mut errors = Vec::new();
    for result in [
        &a.rust.password,
        &a.rust.passfile,
        &a.rust.no_password,
        &a.rust.wrong_password,
        &a.rust.rejected,
    ] {
        if let Err(e) = result {
            errors.push(format!("{e}\n{e:?}"));
        }
    }
    for result in [
        &a.standby.password,
        &a.standby.passfile,
        &a.standby.no_password,
        &a.standby.wrong_password,
        &a.standby.rejected,
    ] {
        if let Err(e) = result {
            errors.push(e.clone());
        }
    }
    // no_password, wrong_password and rejected, from each side.
    assert_eq!(errors.len(), 6, "{errors:#?}");
    for error in &errors {
        assert_no_password(error, "an error");
    }

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
    assert_no_password(&primary_log, "the primary's log");
    assert_no_password(&standby_log, "the standby's log");
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
