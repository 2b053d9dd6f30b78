//! netbuf's test kit: real PostgreSQL servers on loopback and what the
//! tests, `examples/` and the benchmark driver do with them.
//!
//! - [`server`]: a [`Pair`] (a primary and a streaming standby made from its
//!   base backup) or a lone [`Server`], in a throw-away directory, stopped
//!   and removed when dropped; [`shared_pair`] for the tests of one binary.
//!   Server-side commands run as an unprivileged OS user ([`server_user`])
//!   when the tests run as root, because PostgreSQL refuses to start as root.
//! - [`psql`]: SQL through psql, with errors as text; verbose errors carry
//!   the SQLSTATE, which [`assert_sql_error`] checks.
//! - [`activity`]: backends found in pg_stat_activity (the serving backend
//!   of a tagged channel, a standby backend waiting inside netbuf), psql
//!   running in the background.
//! - [`process`]: commands with a deadline, the servers' OS user, /proc.
//! - [`wire`]: a frontend speaking the protocol by hand (one that stops
//!   reading, which libpq never does).
//! - [`tls`]: a throw-away CA and server certificate.
//! - [`cpu`]: pinning a process or a whole server to a CPU, CPU time of a
//!   process (benchmarks).
//! - [`test_module`]: the test module `netbuf_test` (tests/pg_module) and
//!   the requests its handlers answer.
//!
//! Every external command and every wait has a deadline, and every failure
//! panics with the command, its exit status, its stderr and the tail of the
//! relevant server log.  The PostgreSQL under test is the one of
//! `$PG_CONFIG` (default `pg_config` on PATH).

pub mod activity;
pub mod cpu;
pub mod process;
pub mod psql;
pub mod server;
pub mod test_module;
pub mod tls;
pub mod wire;

pub use activity::{
    BackgroundSql, netbuf_wait_event, serving_backend, serving_backend_waiting, tagged_backends,
    tagged_conninfo, wait_tagged_backends,
};
pub use process::{
    Finished, Stopped, as_server_user, chown_to_server_user, is_root, proc_status_kb, process_gone,
    run_checked, server_user, wait_child, wait_until,
};
pub use psql::{assert_sql_error, psql, psql_command, sql_literal};
pub use server::{
    CrashWatch, NetnsPlace, Node, Pair, PairOptions, Server, ServerOptions, pg_bindir, pg_config,
    pg_major, server_program, shared_pair, shared_pair_with, shared_server_with,
};
