//! netbuf as a dependency of someone else's crate, as a new user meets it:
//! a throwaway crate outside the repository (in the temp directory) whose
//! main.rs is the README's Rust example, built with a cleared environment
//! (no BINDGEN_EXTRA_CLANG_ARGS, no PG_CONFIG: cargo ignores netbuf's own
//! .cargo/config.toml for a dependency) and run against a real primary.
//!
//! Offline: the crates come from the shared cargo registry cache, at the
//! versions of netbuf's Cargo.lock.  The builds share one target directory
//! under target/ so that a second run compiles only what changed.
//!
//! The run needs `make install` first (the extension on the server of
//! $PG_CONFIG); `make test` does it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use netbuf_testkit::process::run;
use netbuf_testkit::{Server, ServerOptions};

const ROLE: &str = "replicator";
/// A cold build compiles clap and its derive macros.
const BUILD_TIMEOUT: Duration = Duration::from_secs(600);
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The body of the README's only ```rust block.
fn readme_rust_example() -> String {
    let readme = fs::read_to_string(repo().join("README.md")).expect("read README.md");
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in readme.lines() {
        match current.as_mut() {
            None if line.trim_start().starts_with("```rust") => current = Some(String::new()),
            None => {}
            Some(_) if line.trim_start().starts_with("```") => blocks.extend(current.take()),
            Some(body) => {
                body.push_str(line);
                body.push('\n');
            }
        }
    }
    assert_eq!(
        blocks.len(),
        1,
        "README.md should have exactly one ```rust block (the Rust example)"
    );
    blocks.pop().unwrap()
}

/// `source` with the conninfo of its one `Client::connect("...")` replaced
/// by `conninfo`: the example names a host `primary`, the test's server is
/// on loopback.
fn with_conninfo(source: &str, conninfo: &str) -> String {
    const CALL: &str = "Client::connect(\"";
    assert_eq!(
        source.matches(CALL).count(),
        1,
        "the README's Rust example should connect once, with a literal conninfo:\n{source}"
    );
    let start = source.find(CALL).unwrap() + CALL.len();
    let end = start + source[start..].find('"').expect("closing quote");
    format!("{}{}{}", &source[..start], conninfo, &source[end..])
}

/// A crate named `name` in a fresh temp directory outside the repository,
/// depending on netbuf by path with `netbuf_options` (e.g. `,
/// default-features = false`), with `main` as src/main.rs.
struct Throwaway {
    dir: PathBuf,
    name: String,
}

impl Throwaway {
    fn new(name: &str, netbuf_options: &str, main: &str) -> Throwaway {
        let dir = std::env::temp_dir().join(format!("netbuf-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("src")).expect("create the crate's directory");
        assert!(
            !dir.starts_with(repo()),
            "{} is inside the repository",
            dir.display()
        );
        // [workspace]: a crate of its own even if a parent has a workspace.
        let manifest = format!(
            "[package]\nname = \"{name}\"\nversion = \"0.0.0\"\nedition = \"2024\"\n\n\
             [workspace]\n\n\
             [dependencies]\nnetbuf = {{ path = {:?}{netbuf_options} }}\n",
            repo().display().to_string()
        );
        fs::write(dir.join("Cargo.toml"), manifest).expect("write Cargo.toml");
        fs::write(dir.join("src/main.rs"), main).expect("write main.rs");
        // netbuf's lock file as a start: the versions known to build, all in
        // the registry cache; cargo drops what this crate does not use.
        fs::copy(repo().join("Cargo.lock"), dir.join("Cargo.lock")).expect("copy Cargo.lock");
        Throwaway {
            dir,
            name: name.to_owned(),
        }
    }

    fn target_dir() -> PathBuf {
        repo().join("target/as-dependency")
    }

    /// `cargo build --offline` with nothing in the environment but HOME and
    /// PATH (and where rustup and cargo live, if set: they say where the
    /// toolchain is, not how to build).
    fn build(&self) {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.env_clear()
            .args(["build", "--offline", "--quiet"])
            .current_dir(&self.dir)
            .env("CARGO_TARGET_DIR", Self::target_dir());
        for var in [
            "HOME",
            "PATH",
            "CARGO_HOME",
            "RUSTUP_HOME",
            "RUSTUP_TOOLCHAIN",
        ] {
            if let Some(value) = std::env::var_os(var) {
                cmd.env(var, value);
            }
        }
        let out = run(cmd, BUILD_TIMEOUT);
        assert!(
            out.success(),
            "{} does not build with a cleared environment:\n{}",
            self.name,
            out.describe()
        );
    }

    fn binary(&self) -> PathBuf {
        Self::target_dir().join("debug").join(&self.name)
    }
}

impl Drop for Throwaway {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn primary() -> Server {
    Server::start(ServerOptions {
        setup_sql: vec![
            "CREATE EXTENSION netbuf".into(),
            format!("CREATE ROLE {ROLE} LOGIN"),
            format!("GRANT EXECUTE ON PROCEDURE netbuf.serve TO {ROLE}"),
        ],
        ..Default::default()
    })
}

/// Builds the README example in a crate with these netbuf options and runs
/// it against `server`: it asserts the seed's reply itself and exits 0.
fn build_and_run(server: &Server, name: &str, netbuf_options: &str) {
    let conninfo = server.node.conninfo_db("postgres", ROLE);
    let main = with_conninfo(&readme_rust_example(), &conninfo);
    let krate = Throwaway::new(name, netbuf_options, &main);
    krate.build();
    let out = run(Command::new(krate.binary()), RUN_TIMEOUT);
    assert!(
        out.success(),
        "the README's Rust example ({name}) failed against {conninfo}:\n{}\n{}",
        out.describe(),
        server.node.log_tail()
    );
}

#[test]
fn readme_example_builds_as_a_dependency_and_runs() {
    let server = primary();
    // With the default features (the `netbuf` tool's clap comes along) and
    // with the Rust API alone.
    build_and_run(&server, "readme-example", "");
    build_and_run(
        &server,
        "readme-example-api-only",
        ", default-features = false",
    );
}

#[test]
fn with_conninfo_replaces_the_literal_only() {
    let source = "let c = Client::connect(\"host=primary user=replicator\")?;\n";
    assert_eq!(
        with_conninfo(source, "host=127.0.0.1 port=5"),
        "let c = Client::connect(\"host=127.0.0.1 port=5\")?;\n"
    );
}
