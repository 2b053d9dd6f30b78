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
    fn netbuf_shim_finfo_v1();
    fn netbuf_shim_serve();
    fn netbuf_shim_sql_request();
    fn netbuf_shim_sql_requests();
    fn netbuf_shim_sql_channels();
    fn netbuf_shim_sql_disconnect();
    fn netbuf_shim_sql_disconnect_all();
    fn netbuf_shim_register_op();
    fn netbuf_shim_unregister_op();
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

// ---- the SQL-callable C functions of sql/*.sql --------------------------------

/// A C function of the extension's SQL scripts: `pg_finfo_$name`
/// (PG_FUNCTION_INFO_V1: one C record for all) and `$name`, its C twin
/// `$target`; both naked jumps.
macro_rules! sql_function {
    ($finfo:ident, $name:ident, $target:ident) => {
        #[doc = concat!("`PG_FUNCTION_INFO_V1(", stringify!($name), ")`.")]
        #[unsafe(naked)]
        #[unsafe(no_mangle)]
        pub extern "C" fn $finfo() {
            jump!(netbuf_shim_finfo_v1)
        }

        #[doc = concat!("The C function `", stringify!($name), "` of sql/*.sql.")]
        #[unsafe(naked)]
        #[unsafe(no_mangle)]
        pub extern "C" fn $name() {
            jump!($target)
        }
    };
}

// The primary (c_shim/primary/): the serving procedure, SQL handlers, the view.
sql_function!(pg_finfo_netbuf_serve, netbuf_serve, netbuf_shim_serve);
sql_function!(
    pg_finfo_netbuf_register_op,
    netbuf_register_op,
    netbuf_shim_register_op
);
sql_function!(
    pg_finfo_netbuf_unregister_op,
    netbuf_unregister_op,
    netbuf_shim_unregister_op
);
sql_function!(
    pg_finfo_netbuf_serving_backends,
    netbuf_serving_backends,
    netbuf_shim_serving_backends
);

// The standby (c_shim/standby/sql_api.c): requests from SQL.
sql_function!(
    pg_finfo_netbuf_sql_request,
    netbuf_sql_request,
    netbuf_shim_sql_request
);
sql_function!(
    pg_finfo_netbuf_sql_requests,
    netbuf_sql_requests,
    netbuf_shim_sql_requests
);
sql_function!(
    pg_finfo_netbuf_sql_channels,
    netbuf_sql_channels,
    netbuf_shim_sql_channels
);
sql_function!(
    pg_finfo_netbuf_sql_disconnect,
    netbuf_sql_disconnect,
    netbuf_shim_sql_disconnect
);
sql_function!(
    pg_finfo_netbuf_sql_disconnect_all,
    netbuf_sql_disconnect_all,
    netbuf_shim_sql_disconnect_all
);
