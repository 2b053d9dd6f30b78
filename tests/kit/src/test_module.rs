//! The test module `netbuf_test` (tests/pg_module): its SQL functions on a
//! standby, and the requests its handlers answer on the primary ('R'
//! reverses, 'S' sleeps, 'z' answers nothing, 'F' fails, 'Q' runs SQL),
//! besides netbuf's built-in 'E' (echo) and 'N' (add 300).

use crate::psql::sql_literal;
use crate::server::{Node, PairOptions};

impl PairOptions {
    /// netbuf and netbuf_test created on the primary, and netbuf_test
    /// preloaded into its every backend, so that serving backends answer
    /// the module's op codes.
    pub fn with_test_module() -> PairOptions {
        PairOptions {
            primary_conf: vec!["session_preload_libraries = 'netbuf_test'".into()],
            setup_sql: vec![
                "CREATE EXTENSION netbuf".into(),
                "CREATE EXTENSION netbuf_test".into(),
            ],
            ..PairOptions::default()
        }
    }
}

/// An echo request unique to a test (`tag`) and its step, so that a reply
/// shifted by one is never taken for the right one.
pub fn echo_msg(tag: &str, what: &str) -> Vec<u8> {
    format!("E{tag}:{what}").into_bytes()
}

/// The module's sleep request: 'S' + int32 milliseconds, answered "S".
pub fn sleep_msg(ms: i32) -> Vec<u8> {
    [&b"S"[..], &ms.to_be_bytes()].concat()
}

/// Panics unless `outcome`, the reply to `request` (or its error), is
/// `expected`.
pub fn assert_reply<E: std::fmt::Debug>(
    request: &[u8],
    outcome: Result<Vec<u8>, E>,
    expected: &[u8],
) {
    match outcome {
        Ok(reply) => assert!(
            reply == expected,
            "the reply to {} is {}",
            show(request),
            show(&reply)
        ),
        Err(e) => panic!("the request {}: {e:?}", show(request)),
    }
}

/// A request or reply for assertion messages: 'S' and its milliseconds,
/// else the bytes as text.
pub fn show(bytes: &[u8]) -> String {
    match bytes {
        [b'S', ms @ ..] if ms.len() == 4 => {
            format!("'S' {} ms", i32::from_be_bytes(ms.try_into().unwrap()))
        }
        _ => format!("{:?}", String::from_utf8_lossy(bytes)),
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// A bytea literal: `'\x...'::bytea`.
pub fn bytea_literal(bytes: &[u8]) -> String {
    format!("'\\x{}'::bytea", hex(bytes))
}

/// The bytes of a bytea as psql prints it (hex output, `\x...`).
pub fn bytea_bytes(text: &str) -> Vec<u8> {
    unhex(text.strip_prefix("\\x").expect("bytea in hex"))
}

/// One echo ('E') through `netbuf_test.request` on `standby`, the C API;
/// Ok is psql's output (`\x45`), Err its verbose error.
///
/// The conninfo travels in a session variable, not in the statement's
/// text: the standby logs the text of a failed statement, and a password
/// the test itself wrote there would not be netbuf's leak.
pub fn standby_request(standby: &Node, conninfo: &str) -> Result<String, String> {
    standby.sql_many(&[
        "\\set VERBOSITY verbose",
        &format!("SET netbuf_kit.conninfo = {}", sql_literal(conninfo)),
        "SELECT netbuf_test.request(current_setting('netbuf_kit.conninfo'), '\\x45'::bytea)",
    ])
}
