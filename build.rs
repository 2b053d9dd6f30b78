//! Builds the PostgreSQL side of libnetbuf.so (feature `backend`): compiles
//! the C shim in c_shim/ against the server headers of `pg_config` (or of
//! $PG_CONFIG), and runs bindgen on c_shim/boundary.h so that the Rust
//! half of that boundary is generated from the same header the C half uses.
//! Without the feature there is nothing to build: the Rust API needs only
//! libpq, which pq-sys finds.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "backend")]
    backend::build();
}

#[cfg(feature = "backend")]
mod backend {
    use std::env;
    use std::path::PathBuf;
    use std::process::Command;

    fn pg_config(arg: &str) -> String {
        let program = env::var("PG_CONFIG").unwrap_or_else(|_| "pg_config".into());
        let output = Command::new(&program)
            .arg(arg)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program} {arg}: {e}; install postgresql-server-dev-NN or set PG_CONFIG"));
        assert!(
            output.status.success(),
            "{program} {arg} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout)
            .expect("pg_config prints UTF-8")
            .trim()
            .to_owned()
    }

    pub fn build() {
        println!("cargo:rerun-if-env-changed=PG_CONFIG");
        println!("cargo:rerun-if-changed=c_shim");
        println!("cargo:rerun-if-changed=include/netbuf.h");

        let server_include = PathBuf::from(pg_config("--includedir-server"));
        assert!(
            server_include.join("postgres.h").exists(),
            "no postgres.h in {}: install the server headers (Debian: postgresql-server-dev-15)",
            server_include.display()
        );

        let mut shim = cc::Build::new();
        shim.include(&server_include)
            .include("include")
            .include("c_shim")
            // What PostgreSQL's own build uses and its code relies on.
            .flag("-fno-strict-aliasing")
            .flag("-fwrapv")
            .flag_if_supported("-fexcess-precision=standard")
            // Only the entry points in src/backend_exports.rs are exported.
            .flag("-fvisibility=hidden")
            .flag("-Wall")
            .flag("-Wmissing-prototypes")
            .flag("-Wno-unused-parameter")
            // The module's version in PostgreSQL 18's magic block.
            .define(
                "NETBUF_VERSION",
                format!("\"{}\"", env!("CARGO_PKG_VERSION")).as_str(),
            );
        for file in [
            "common/module.c",
            "common/rust_core.c",
            "common/errors.c",
            "common/gucs.c",
            "common/wait_events.c",
            "standby/ownership.c",
            "standby/channel.c",
            "primary/handlers.c",
            "primary/direct_io.c",
            "primary/serve.c",
        ] {
            shim.file(PathBuf::from("c_shim").join(file));
        }
        shim.compile("netbuf_shim");

        let bindings = bindgen::Builder::default()
            .header("c_shim/boundary.h")
            .allowlist_type("Nb.*")
            .allowlist_function("nb_.*")
            .rustified_enum("NbStatus")
            .rustified_enum("NbPanicPoint")
            .derive_debug(false)
            .layout_tests(true)
            .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
            .generate()
            .expect(
                "bindgen could not read c_shim/boundary.h (needs libclang: Debian libclang-dev)",
            );
        let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
        bindings
            .write_to_file(out.join("shim_bindings.rs"))
            .expect("write shim_bindings.rs");
    }
}
