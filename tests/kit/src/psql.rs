//! SQL through psql (the installation's own, as this process), and the
//! quoting SQL and conninfo strings need.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::process::run;
use crate::server::pg_bindir;

/// Deadline for psql calls (a hung query must not hang the test run).
const SQL_TIMEOUT: Duration = Duration::from_secs(120);

/// The installation's psql, else the one on PATH.
fn psql_program() -> Command {
    let bin = pg_bindir().join("psql");
    Command::new(if bin.exists() { bin } else { "psql".into() })
}

/// psql as this process for a test to spawn itself (stdin scripts,
/// background calls): unaligned tuples only, verbose errors (SQLSTATE in
/// the text), English messages, all three streams piped.
pub fn psql_command(conninfo: &str) -> Command {
    let mut cmd = psql_program();
    cmd.args(["-X", "-At", "-v", "VERBOSITY=verbose", "-d", conninfo])
        .env("LC_ALL", "C")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Runs psql as this process with each statement as a separate `-c`.
/// Ok is trimmed stdout; Err is stderr (tests match on error text).
pub fn psql(conninfo: &str, stmts: &[&str]) -> Result<String, String> {
    let mut cmd = psql_program();
    cmd.args([
        "-X",
        "-A",
        "-t",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-d",
        conninfo,
    ]);
    for s in stmts {
        cmd.arg("-c").arg(s);
    }
    // English client messages, UTF-8 results and a bounded connect.
    cmd.env("LC_ALL", "C")
        .env("PGCLIENTENCODING", "UTF8")
        .env("PGCONNECT_TIMEOUT", "10");
    let out = run(cmd, SQL_TIMEOUT);
    match out.status {
        Some(s) if s.success() => Ok(out.stdout.trim().to_string()),
        Some(s) => {
            let err = out.stderr.trim();
            if err.is_empty() {
                Err(format!("psql failed with {s} and no stderr"))
            } else {
                Err(err.to_string())
            }
        }
        None => Err(format!(
            "psql timed out after {SQL_TIMEOUT:?}: {}",
            out.stderr.trim()
        )),
    }
}

/// Panics unless psql's verbose output `stderr` has an
/// `ERROR:  <sqlstate>: <message>` line (after psql's `psql:<stdin>:N: `
/// in a script) whose message contains `text`.
pub fn assert_sql_error(stderr: &str, sqlstate: &str, text: &str) {
    let head = format!("ERROR:  {sqlstate}: ");
    assert!(
        stderr
            .lines()
            .filter_map(|l| l.split_once(&head))
            .any(|(_, message)| message.contains(text)),
        "no ERROR {sqlstate} saying {text:?} in:\n{stderr}"
    );
}

/// An SQL string literal.
pub fn sql_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A libpq conninfo value, quoted only when it needs to be.
pub fn conninfo_quote(v: &str) -> String {
    if !v.is_empty()
        && !v
            .chars()
            .any(|c| c.is_whitespace() || c == '\'' || c == '\\')
    {
        v.to_string()
    } else {
        format!("'{}'", v.replace('\\', r"\\").replace('\'', r"\'"))
    }
}
