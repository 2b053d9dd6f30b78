//! The numbers and names the C shim and the Rust core share, read from
//! `c_shim/boundary.h`.
//!
//! build.rs copies every `#define NB_<NAME> <integer or "string">` of the
//! header into Rust constants of the same name (integers as `u64`), for
//! every build, with or without the `backend` feature: the message size
//! limits, the silent-peer (keepalive) policy, the panic-point names.  The
//! header's types (`NbError`, `NbRustApi`, ...) reach Rust through bindgen
//! instead, in `c_abi` (feature `backend`).
//!
//! Which Rust code uses what: [`protocol`](crate::protocol) the size limits,
//! `conninfo` the silent-peer policy, `c_abi` the panic-point names below.
//! The tests here and tests/boundary.rs fail if the two sides drift.

include!(concat!(env!("OUT_DIR"), "/boundary_consts.rs"));

/// The names of netbuf.debug_panic_at's values, indexed by `NbPanicPoint`:
/// the panic the Rust core injects at point `p` says `PANIC_POINT_NAMES[p]`.
#[cfg_attr(not(feature = "backend"), allow(dead_code))]
pub(crate) const PANIC_POINT_NAMES: [&str; 5] = [
    NB_PANIC_NAME_NONE,
    NB_PANIC_NAME_CONNECT,
    NB_PANIC_NAME_SEND,
    NB_PANIC_NAME_RECV,
    NB_PANIC_NAME_SERVE,
];

// The facts the header's values stand for, checked when the crate builds.
// PostgreSQL's PQ_LARGE_MESSAGE_LIMIT is MaxAllocSize - 1 (common/gucs.c
// checks it against the server headers too).
const _: () = assert!(NB_MAX_MESSAGE_SIZE_MAX == 0x3fff_ffff - 1);
const _: () = assert!(NB_MAX_MESSAGE_SIZE_MIN <= NB_MAX_MESSAGE_SIZE_DEFAULT);
const _: () = assert!(NB_MAX_MESSAGE_SIZE_DEFAULT <= NB_MAX_MESSAGE_SIZE_MAX);
// The silent-peer policy adds up: probes start at T / 2 and COUNT of them
// fill the other half, so a silent peer is given up after T.
const _: () = assert!(
    NB_PEER_TIMEOUT_DEFAULT_MS / NB_PEER_KEEPALIVE_IDLE_DIVISOR
        + NB_PEER_KEEPALIVE_COUNT
            * (NB_PEER_TIMEOUT_DEFAULT_MS / NB_PEER_KEEPALIVE_INTERVAL_DIVISOR)
        == NB_PEER_TIMEOUT_DEFAULT_MS
);

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = include_str!("../c_shim/boundary.h");

    /// The members of `enum NbPanicPoint` in the header, with their values.
    fn panic_points() -> Vec<(String, usize)> {
        let body = HEADER
            .split("typedef enum NbPanicPoint")
            .nth(1)
            .and_then(|rest| rest.split('}').next())
            .expect("boundary.h declares enum NbPanicPoint");
        body.lines()
            .filter_map(|line| {
                let (name, value) = line.trim().split_once('=')?;
                let value = value.split([',', '/']).next()?.trim().parse().ok()?;
                Some((name.trim().to_owned(), value))
            })
            .collect()
    }

    /// The value of `#define <name> "..."` in the header.
    fn string_define(name: &str) -> Option<String> {
        HEADER.lines().find_map(|line| {
            let rest = line.trim().strip_prefix("#define")?.trim_start();
            let value = rest.strip_prefix(name)?.trim();
            Some(value.strip_prefix('"')?.strip_suffix('"')?.to_owned())
        })
    }

    /// Every panic point of the header has the name the header gives it,
    /// at its own index, and Rust knows no other.
    #[test]
    fn panic_point_names_are_the_headers() {
        let points = panic_points();
        assert!(points.len() > 1, "enum NbPanicPoint not found: {points:?}");
        assert_eq!(points.len(), PANIC_POINT_NAMES.len());
        for (member, value) in &points {
            let suffix = member
                .strip_prefix("NB_PANIC_")
                .expect("members are NB_PANIC_*");
            let name = string_define(&format!("NB_PANIC_NAME_{suffix}"))
                .unwrap_or_else(|| panic!("boundary.h names no NB_PANIC_NAME_{suffix}"));
            assert_eq!(PANIC_POINT_NAMES[*value], name, "{member} = {value}");
        }
    }
}
