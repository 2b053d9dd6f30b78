//! The C ABI of libnetbuf.so (feature `backend`): where the Rust core meets
//! the C files of c_shim/ and PostgreSQL.
//!
//! One direction per file:
//! - [`rust_api`]: what C calls in Rust, the `NbRustApi` table of
//!   c_shim/boundary.h, over the same core ([`Channel`](crate::channel))
//!   as the safe Rust API.  Nothing there blocks, calls the backend or lets
//!   a panic out.
//! - [`exports`]: what PostgreSQL calls, the symbols it looks up with dlsym
//!   (`Pg_magic_func`, `_PG_init`, `netbuf_serve`), as naked jumps into
//!   their C twins.
//!
//! The types of the boundary come from c_shim/boundary.h through bindgen
//! (build.rs), its numbers and names through [`crate::boundary`], so that C
//! and Rust read both from the same header.

/// `NbError`, `NbStatus`, `NbRustApi`, ...: bindgen's reading of
/// c_shim/boundary.h, with layout tests.
#[allow(
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    dead_code,
    clippy::all
)]
mod bindings {
    include!(concat!(env!("OUT_DIR"), "/boundary_bindings.rs"));
}

mod exports;
mod rust_api;
