//! netbuf: a private channel between PostgreSQL backends, over libpq's
//! COPY BOTH sub-protocol.
//!
//! The crate is two things built from one core:
//! - `libnetbuf.so` (feature `backend`), the module PostgreSQL loads: its
//!   C half (c_shim/) runs the standby's waits and the primary's
//!   `CALL netbuf.serve()`, and calls this crate's core through a table of
//!   function pointers (see README.md and c_shim/boundary.h);
//! - this safe Rust API ([`Client`]), for programs outside any backend.
//!
//! The layers, from the wire up:
//! - [`protocol`]: what travels inside each CopyData message: op codes and
//!   size limits (pure).
//! - [`demo_op`]: the seed's `N` op, encoded, decoded and answered (pure).
//! - `pq`: owning wrappers over libpq (the raw layer; all libpq `unsafe`).
//! - `conninfo`: from a connection string to what libpq is given (netbuf's
//!   defaults, refusals, no password in errors, pg_service.conf).
//! - `channel`: one channel to the primary as a non-blocking state machine
//!   (the core, which both the backend and the Rust API drive).
//! - [`Client`] (`client`): the safe, blocking API over that core.
//! - `c_abi` (feature `backend`): the C ABI, what C calls in Rust
//!   (`c_abi::rust_api`) and what PostgreSQL calls (`c_abi::exports`).
//!
//! Beside them: [`Error`] (`error`), the errors of every layer with their
//! SQLSTATEs, and `boundary`, the numbers and names shared with C, read
//! from c_shim/boundary.h at build time.

mod boundary;
mod channel;
mod client;
mod conninfo;
pub mod demo_op;
mod error;
mod pq;
pub mod protocol;

#[cfg(feature = "backend")]
mod c_abi;

pub use client::{Canceller, Client, ConnectOptions};
pub use error::{Error, PrimaryError, Result};

/// The Rust blocks of README.md and docs/*.md, compiled as doc tests so
/// that none can rot (`no_run` where they need a server).  Every docs file
/// is here, so that a Rust block added to any of them is compiled too;
/// blocks that are not Rust say ```text (or their language).
#[cfg(doctest)]
mod docs {
    #[doc = include_str!("../README.md")]
    struct Readme;
    #[doc = include_str!("../docs/architecture.md")]
    struct Architecture;
    #[doc = include_str!("../docs/benchmarks.md")]
    struct Benchmarks;
    #[doc = include_str!("../docs/c-api.md")]
    struct CApi;
    #[doc = include_str!("../docs/development.md")]
    struct Development;
    #[doc = include_str!("../docs/operations.md")]
    struct Operations;
    #[doc = include_str!("../docs/packaging.md")]
    struct Packaging;
    #[doc = include_str!("../docs/rust-api.md")]
    struct RustApi;
    #[doc = include_str!("../docs/scaling.md")]
    struct Scaling;
    #[doc = include_str!("../docs/sql-api.md")]
    struct SqlApi;
    #[doc = include_str!("../docs/versioning.md")]
    struct Versioning;
}
