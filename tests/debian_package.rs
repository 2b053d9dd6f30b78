//! `make deb`'s package for Debian's PostgreSQL 15, as a PostgreSQL user
//! meets it: `dpkg -i postgresql-15-netbuf_*.deb`, CREATE EXTENSION netbuf
//! and the seed's exchange on a throwaway primary and standby of that
//! installation, then `dpkg --purge` and every file of the package gone.
//!
//! The system's PostgreSQL 15 is also where `make test` installs netbuf
//! (same paths): the test saves what is at each of the package's paths
//! before `dpkg -i` and puts it back after the purge (also when the test
//! fails part-way), so that the installation is as it was.  While it runs,
//! the installation holds the package's files: nothing else may use the
//! system's PostgreSQL 15 meanwhile (within `make test`, test binaries run
//! one after another).
//!
//! Runs when the PostgreSQL under test ($PG_CONFIG, default `pg_config`) is
//! Debian's 15, as with plain `make test`; with PG=N it says so and checks
//! nothing.  Needs root (dpkg), and `make install install-test-module` first
//! for the test module netbuf_test, which the standby's exchange goes
//! through; `make test` does both.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use netbuf::Client;
use netbuf::demo_op::{decode_int32s, encode_add300};
use netbuf_testkit::process::run;
use netbuf_testkit::{Pair, PairOptions, is_root, run_checked};

const PACKAGE: &str = "postgresql-15-netbuf";
const DEBIAN_PG_CONFIG: &str = "/usr/lib/postgresql/15/bin/pg_config";
/// make deb builds libnetbuf.so with cargo (incremental after the first).
const DEB_TIMEOUT: Duration = Duration::from_secs(1200);
const DPKG_TIMEOUT: Duration = Duration::from_secs(300);

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Whether the PostgreSQL under test is Debian's 15 (plain `make test`).
fn testing_debian_15() -> bool {
    let program = std::env::var_os("PG_CONFIG").unwrap_or_else(|| "pg_config".into());
    let bindir = Command::new(program)
        .arg("--bindir")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    bindir == "/usr/lib/postgresql/15/bin"
}

/// Runs `make deb` and returns the path of the package for 15.
fn make_deb() -> PathBuf {
    let mut make = Command::new("make");
    make.arg("-C")
        .arg(repo())
        .arg("deb")
        // The outer make test's settings are not the package build's.
        .env_remove("PG")
        .env_remove("PG_CONFIG")
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .env_remove("MAKELEVEL");
    let out = run(make, DEB_TIMEOUT);
    assert!(out.success(), "make deb failed:\n{}", out.describe());
    let dir = repo().join("target/deb");
    let debs: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("target/deb entry").path())
        .filter(|path| {
            let name = path.file_name().unwrap().to_string_lossy();
            name.starts_with(&format!("{PACKAGE}_")) && name.ends_with(".deb")
        })
        .collect();
    assert_eq!(
        debs.len(),
        1,
        "make deb should leave one {PACKAGE} package in {}: {debs:?}",
        dir.display()
    );
    debs.into_iter().next().unwrap()
}

fn dpkg(args: &[&str]) -> String {
    let mut cmd = Command::new("dpkg");
    cmd.args(args);
    let out = run(cmd, DPKG_TIMEOUT);
    assert!(out.success(), "dpkg {args:?} failed:\n{}", out.describe());
    out.stdout
}

fn package_installed() -> bool {
    let mut cmd = Command::new("dpkg-query");
    cmd.args(["-W", "-f=${db:Status-Status}", PACKAGE]);
    run(cmd, DPKG_TIMEOUT).stdout.trim() == "installed"
}

/// The regular files of the package (`dpkg-deb -c`), as absolute paths.
fn package_files(deb: &Path) -> Vec<PathBuf> {
    let mut cmd = Command::new("dpkg-deb");
    cmd.arg("--contents").arg(deb);
    run_checked(cmd, "dpkg-deb --contents")
        .lines()
        .filter(|line| line.starts_with('-'))
        .map(|line| {
            let path = line.split_whitespace().last().expect("a path");
            PathBuf::from(path.trim_start_matches('.'))
        })
        .collect()
}

/// What was at the package's paths before `dpkg -i` (contents and mode, or
/// nothing), put back when dropped: after the test's own purge, or after a
/// failure, which purges first.
struct SavedFiles {
    saved: Vec<(PathBuf, Option<Contents>)>,
}

/// A file's bytes and mode.
type Contents = (Vec<u8>, u32);

impl SavedFiles {
    fn save(paths: &[PathBuf]) -> SavedFiles {
        let saved = paths
            .iter()
            .map(|path| {
                let before = fs::read(path).ok().map(|bytes| {
                    let mode = fs::metadata(path).expect("stat").permissions().mode();
                    (bytes, mode)
                });
                (path.clone(), before)
            })
            .collect();
        SavedFiles { saved }
    }

    fn restore(&self) {
        for (path, before) in &self.saved {
            match before {
                Some((bytes, mode)) => {
                    fs::create_dir_all(path.parent().unwrap()).expect("create the directory");
                    fs::write(path, bytes)
                        .unwrap_or_else(|e| panic!("restore {}: {e}", path.display()));
                    fs::set_permissions(path, fs::Permissions::from_mode(*mode))
                        .expect("restore the mode");
                }
                None => {
                    let _ = fs::remove_file(path);
                }
            }
        }
    }
}

impl Drop for SavedFiles {
    fn drop(&mut self) {
        if package_installed() {
            let _ = Command::new("dpkg").args(["--purge", PACKAGE]).status();
        }
        self.restore();
        for (path, before) in &self.saved {
            let now = fs::read(path).ok();
            if now.as_ref() != before.as_ref().map(|(bytes, _)| bytes) {
                eprintln!(
                    "debian_package: {} is not as it was before the test",
                    path.display()
                );
            }
        }
    }
}

#[test]
fn deb_installs_serves_the_seed_exchange_and_purges() {
    if !testing_debian_15() {
        eprintln!(
            "debian_package: the PostgreSQL under test is not Debian's 15 \
             ({DEBIAN_PG_CONFIG}); the package test runs with plain `make test`"
        );
        return;
    }
    assert!(is_root(), "dpkg -i needs root: run the suite as root");
    assert!(
        Path::new("/usr/lib/postgresql/15/lib/netbuf_test.so").exists(),
        "the test module netbuf_test is not installed in PostgreSQL 15: \
         run `make install-test-module` (make test does)"
    );
    assert!(
        !package_installed(),
        "{PACKAGE} is installed already: the test would remove someone's package"
    );

    let deb = make_deb();
    let deb_text = deb.display().to_string();
    let depends = run_checked(
        {
            let mut cmd = Command::new("dpkg-deb");
            cmd.arg("--field").arg(&deb).arg("Depends");
            cmd
        },
        "dpkg-deb --field Depends",
    );
    assert!(
        depends.contains("postgresql-15") && depends.contains("libpq5"),
        "Depends: {depends}"
    );
    let files = package_files(&deb);
    for expected in [
        "/usr/lib/postgresql/15/lib/libnetbuf.so",
        "/usr/share/postgresql/15/extension/netbuf.control",
        "/usr/share/postgresql/15/extension/netbuf--1.0.sql",
        "/usr/share/postgresql/15/extension/netbuf--1.0--1.1.sql",
        "/usr/include/postgresql/15/server/extension/netbuf/netbuf.h",
    ] {
        assert!(
            files.iter().any(|f| f == Path::new(expected)),
            "{expected} is not in the package: {files:?}"
        );
    }

    let saved = SavedFiles::save(&files);
    dpkg(&["--install", &deb_text]);
    assert!(package_installed(), "dpkg -i did not install {PACKAGE}");
    let owner = dpkg(&["--search", "/usr/lib/postgresql/15/lib/libnetbuf.so"]);
    assert!(owner.starts_with(&format!("{PACKAGE}:")), "{owner}");
    // What the servers load is the package's library.
    let unpacked = std::env::temp_dir().join(format!("netbuf-deb-{}", std::process::id()));
    let _ = fs::remove_dir_all(&unpacked);
    run_checked(
        {
            let mut cmd = Command::new("dpkg-deb");
            cmd.arg("--extract").arg(&deb).arg(&unpacked);
            cmd
        },
        "dpkg-deb --extract",
    );
    for file in &files {
        let shipped = fs::read(unpacked.join(file.strip_prefix("/").unwrap())).expect("read");
        assert!(
            fs::read(file).ok() == Some(shipped),
            "{} is not the package's",
            file.display()
        );
    }
    let _ = fs::remove_dir_all(&unpacked);

    {
        // SAFETY: set before the kit reads it; this binary's only test.
        unsafe { std::env::set_var("PG_CONFIG", DEBIAN_PG_CONFIG) };
        let pair = Pair::start(PairOptions::with_test_module());
        assert_eq!(
            pair.primary
                .must("SELECT extversion FROM pg_extension WHERE extname = 'netbuf'"),
            "1.1"
        );
        // The seed's exchange from a standby backend (load_file of the
        // package's libnetbuf.so), and from the Rust API.
        assert_eq!(
            pair.standby
                .must("SELECT netbuf_test.exchange_n(NULL, '{100,200,300}')"),
            "{400,500,600}"
        );
        let mut client = Client::connect(&pair.primary.conninfo()).expect("connect");
        let reply = client
            .request(&encode_add300(&[100, 200, 300]))
            .expect("the seed's request");
        assert_eq!(decode_int32s(&reply), Some(vec![400, 500, 600]));
        client.close();
        pair.primary.assert_no_crash();
        pair.standby.assert_no_crash();
    }

    dpkg(&["--purge", PACKAGE]);
    assert!(!package_installed(), "{PACKAGE} is still installed");
    let left: Vec<&PathBuf> = files.iter().filter(|f| f.exists()).collect();
    assert!(left.is_empty(), "dpkg --purge left {left:?}");
    drop(saved);
}
