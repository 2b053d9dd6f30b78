//! One source for what C and Rust share: the `#define NB_*` constants of
//! c_shim/boundary.h.  The C side compiles them into netbuf's GUCs; build.rs
//! copies them into the Rust constants the Rust API uses.  Here the server's
//! view of the GUCs (pg_settings) must equal the Rust side's, so that a
//! number written again in one language, or misread by build.rs, fails.
//! (src/boundary.rs checks the Rust core's panic-point names the same way.)
//!
//! Needs `make install install-test-module` first; `make test` does it.

use netbuf::protocol::{DEFAULT_MAX_MESSAGE_SIZE, MAX_MESSAGE_SIZE_RANGE};
use netbuf_testkit::{Node, Server, ServerOptions};

/// The constants exactly as build.rs generated them for the Rust crate.
mod generated {
    include!(concat!(env!("OUT_DIR"), "/boundary_consts.rs"));
}

/// `fields` of GUC `name` in pg_settings, as psql prints them ('|' apart),
/// in a session that loaded libnetbuf (which defines the GUCs).
fn setting(node: &Node, name: &str, fields: &str) -> String {
    node.sql_many(&[
        "LOAD 'libnetbuf'",
        &format!("SELECT {fields} FROM pg_settings WHERE name = '{name}'"),
    ])
    .unwrap_or_else(|e| panic!("pg_settings of {name}: {e}"))
}

/// The header's panic-point names, in the order it lists them.
fn header_panic_names() -> Vec<&'static str> {
    include_str!("../c_shim/boundary.h")
        .lines()
        .filter_map(|line| {
            let rest = line.trim().strip_prefix("#define NB_PANIC_NAME_")?;
            rest.split('"').nth(1)
        })
        .collect()
}

/// One server for the three settings: a standby would add nothing here.
#[test]
fn server_settings_are_the_rust_constants() {
    let server = Server::start(ServerOptions::default());
    let node = &server.node;

    // netbuf.max_message_size: the Rust API's default and range.
    assert_eq!(
        setting(
            node,
            "netbuf.max_message_size",
            "boot_val, min_val, max_val, unit"
        ),
        format!(
            "{DEFAULT_MAX_MESSAGE_SIZE}|{}|{}|B",
            MAX_MESSAGE_SIZE_RANGE.start(),
            MAX_MESSAGE_SIZE_RANGE.end()
        )
    );

    // netbuf.peer_timeout: the default from which the Rust core derives
    // its keepalive settings (src/conninfo/mod.rs, whose unit tests check
    // the values).
    assert_eq!(
        setting(node, "netbuf.peer_timeout", "boot_val, unit"),
        format!("{}|ms", generated::NB_PEER_TIMEOUT_DEFAULT_MS)
    );

    // netbuf.debug_panic_at: the header's names, which the Rust core's
    // injected panics use (src/boundary.rs checks that side).
    let names = header_panic_names();
    assert!(names.len() > 1, "no NB_PANIC_NAME_* in boundary.h");
    assert!(names.contains(&generated::NB_PANIC_NAME_SERVE));
    assert_eq!(
        setting(
            node,
            "netbuf.debug_panic_at",
            "array_to_string(enumvals, ',')"
        ),
        names.join(",")
    );
}
