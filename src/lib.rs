//! netbuf: a private channel between PostgreSQL backends, over libpq's
//! COPY BOTH sub-protocol.
//!
//! The crate is both `libnetbuf.so`, the module backends load (with the
//! `backend` feature; see README.md), and this safe Rust API.
//!
//! Layout, from the wire up:
//! - [`protocol`]: what travels inside each CopyData message (pure).
//! - [`demo_op`]: the seed's 'N' op, encoded, decoded and answered (pure).
//! - `pq`: owning wrappers over libpq (the raw layer; all libpq `unsafe`).
//! - `conninfo`: connection string rules.
//! - `channel`: the channel as a non-blocking state machine (the core).
//! - [`Client`]: the safe, blocking API over that core.
//! - `shim_api` (feature `backend`): the C ABI the C shim calls.
//! - `backend_exports` (feature `backend`): the symbols PostgreSQL looks up.

mod boundary;
mod channel;
mod client;
mod conninfo;
pub mod demo_op;
mod error;
mod pq;
pub mod protocol;

#[cfg(feature = "backend")]
mod backend_exports;
#[cfg(feature = "backend")]
mod shim_api;

pub use client::{Canceller, Client, ConnectOptions};
pub use error::{Error, PrimaryError, Result};
