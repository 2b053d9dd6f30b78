//! The symbols PostgreSQL looks up in libnetbuf.so with dlsym.
//!
//! They are written in C (c_shim/), but rustc exports only Rust symbols from
//! a cdylib (rust-lang/rust#99411), so each is exported here as a naked
//! function that jumps to its C twin.  A naked jump builds no Rust frame:
//! when the C code raises ERROR, its longjmp never crosses Rust, and C
//! returns straight to PostgreSQL.

use std::arch::naked_asm;

use super::rust_api::NB_RUST_API;

unsafe extern "C" {
    fn netbuf_shim_magic();
    fn netbuf_shim_init();
    fn netbuf_shim_finfo_serve();
    fn netbuf_shim_serve();
    fn netbuf_shim_finfo_register_op();
    fn netbuf_shim_register_op();
    fn netbuf_shim_finfo_unregister_op();
    fn netbuf_shim_unregister_op();
    fn netbuf_shim_finfo_serving_backends();
    fn netbuf_shim_serving_backends();
}

#[cfg(target_arch = "x86_64")]
macro_rules! jump {
    ($target:ident) => {
        naked_asm!("jmp {}", sym $target)
    };
}

#[cfg(target_arch = "aarch64")]
macro_rules! jump {
    ($target:ident) => {
        naked_asm!("b {}", sym $target)
    };
}

/// Jump to `$target` with the address of `$table` as its first argument.
#[cfg(target_arch = "x86_64")]
macro_rules! jump_with {
    ($target:ident, $table:path) => {
        naked_asm!("lea rdi, [rip + {t}]", "jmp {f}", t = sym $table, f = sym $target)
    };
}

#[cfg(target_arch = "aarch64")]
macro_rules! jump_with {
    ($target:ident, $table:path) => {
        naked_asm!("adrp x0, {t}", "add x0, x0, :lo12:{t}", "b {f}", t = sym $table, f = sym $target)
    };
}

/// The module magic block (`PG_MODULE_MAGIC`), checked by dfmgr.c.
#[unsafe(naked)]
#[unsafe(no_mangle)]
pub extern "C" fn Pg_magic_func() {
    jump!(netbuf_shim_magic)
}

/// `_PG_init`: hands the Rust table to the shim, which publishes the
/// function table of netbuf.h and registers the built-ins.
#[unsafe(naked)]
#[unsafe(no_mangle)]
pub extern "C" fn _PG_init() {
    jump_with!(netbuf_shim_init, NB_RUST_API)
}

/// `PG_FUNCTION_INFO_V1(netbuf_serve)`.
#[unsafe(naked)]
#[unsafe(no_mangle)]
pub extern "C" fn pg_finfo_netbuf_serve() {
    jump!(netbuf_shim_finfo_serve)
}

/// The procedure `netbuf.serve()`.
#[unsafe(naked)]
#[unsafe(no_mangle)]
pub extern "C" fn netbuf_serve() {
    jump!(netbuf_shim_serve)
}

/// `PG_FUNCTION_INFO_V1(netbuf_register_op)`.
#[unsafe(naked)]
#[unsafe(no_mangle)]
pub extern "C" fn pg_finfo_netbuf_register_op() {
    jump!(netbuf_shim_finfo_register_op)
}

/// The function `netbuf.register_op(op, handler)`.
#[unsafe(naked)]
#[unsafe(no_mangle)]
pub extern "C" fn netbuf_register_op() {
    jump!(netbuf_shim_register_op)
}

/// `PG_FUNCTION_INFO_V1(netbuf_unregister_op)`.
#[unsafe(naked)]
#[unsafe(no_mangle)]
pub extern "C" fn pg_finfo_netbuf_unregister_op() {
    jump!(netbuf_shim_finfo_unregister_op)
}

/// The function `netbuf.unregister_op(op)`.
#[unsafe(naked)]
#[unsafe(no_mangle)]
pub extern "C" fn netbuf_unregister_op() {
    jump!(netbuf_shim_unregister_op)
}

/// `PG_FUNCTION_INFO_V1(netbuf_serving_backends)`.
#[unsafe(naked)]
#[unsafe(no_mangle)]
pub extern "C" fn pg_finfo_netbuf_serving_backends() {
    jump!(netbuf_shim_finfo_serving_backends)
}

/// The function `netbuf.serving_backends()`, behind the view `netbuf.serving`.
#[unsafe(naked)]
#[unsafe(no_mangle)]
pub extern "C" fn netbuf_serving_backends() {
    jump!(netbuf_shim_serving_backends)
}
