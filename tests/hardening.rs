//! Smaller defects of issue 8, item 5: what libnetbuf.so exports, and 'N'
//! requests of any size or content never crashing the primary.  (An
//! extension schema squatted by another role is refused: the pg_regress
//! suite, tests/regress/sql/create_extension.sql, shows it.)
//!
//! Needs `make install` first; `make test` does it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use netbuf::demo_op::encode_add300;
use netbuf::{Client, Error};
use netbuf_testkit::{
    Pair, PairOptions, as_server_user, pg_config, proc_status_kb, run_checked, serving_backend,
    shared_pair, tagged_conninfo,
};

// ---- exports -------------------------------------------------------------

/// The LANGUAGE C functions of the extension scripts: the X of each
/// `'MODULE_PATHNAME', 'X'` in sql/*.sql.
fn c_functions() -> BTreeSet<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql");
    let mut names = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).expect("sql/") {
        let path = entry.expect("sql/ entry").path();
        if path.extension().is_none_or(|e| e != "sql") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("an extension script");
        let mut rest = text.as_str();
        while let Some(i) = rest.find("'MODULE_PATHNAME'") {
            rest = &rest[i + "'MODULE_PATHNAME'".len()..];
            let Some(after) = rest.trim_start().strip_prefix(',') else {
                continue;
            };
            let Some(after) = after.trim_start().strip_prefix('\'') else {
                continue;
            };
            let name = after.split('\'').next().unwrap_or_default();
            assert!(!name.is_empty(), "empty symbol name in {}", path.display());
            names.insert(name.to_owned());
        }
    }
    assert!(
        names.contains("netbuf_serve"),
        "no netbuf_serve in {}: {names:?}",
        dir.display()
    );
    names
}

/// The names `nm -D --defined-only` (binutils) lists for `lib`.
fn dynamic_exports(lib: &Path) -> BTreeSet<String> {
    let mut nm = Command::new("nm");
    nm.args(["-D", "--defined-only"]).arg(lib);
    run_checked(nm, "nm")
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .map(str::to_owned)
        .collect()
}

/// The library `make` built (`$NETBUF_LIBNETBUF`, which `make test` sets:
/// target/pgN with PG=N) and the one `make install` put where the servers
/// load it from.
fn built_libraries() -> Vec<PathBuf> {
    let built = std::env::var_os("NETBUF_LIBNETBUF")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
                .join("release/libnetbuf.so")
        });
    let pkglibdir = PathBuf::from(pg_config("--pkglibdir"));
    vec![built, pkglibdir.join("libnetbuf.so")]
}

/// PostgreSQL loads modules with RTLD_GLOBAL: any other exported name can
/// interpose on, or be interposed by, another module's symbol.
#[test]
fn libnetbuf_exports_only_postgresql_entry_points() {
    let mut allowed: BTreeSet<String> = ["Pg_magic_func", "_PG_init"].map(String::from).into();
    for f in c_functions() {
        allowed.insert(format!("pg_finfo_{f}"));
        allowed.insert(f);
    }
    for lib in built_libraries() {
        assert!(
            lib.exists(),
            "{} is missing: run `make install` (the backend build) first",
            lib.display()
        );
        let exports = dynamic_exports(&lib);
        let missing: Vec<_> = allowed.difference(&exports).collect();
        let extra: Vec<_> = exports.difference(&allowed).collect();
        assert!(
            missing.is_empty(),
            "{} lacks PostgreSQL entry points {missing:?} (not a backend build?); it exports {exports:?}",
            lib.display()
        );
        assert!(
            extra.is_empty(),
            "{} exports {} names beyond PostgreSQL's entry points {allowed:?}: {extra:?}",
            lib.display(),
            extra.len()
        );
    }
}

// ---- 'N' of any size -----------------------------------------------------

/// `count` values spread over the int32 range that 'N' accepts.
fn values(count: usize) -> Vec<i32> {
    (0..count)
        .map(|i| (i as i64 * 7919 % 4_000_000_000 - 2_000_000_000) as i32)
        .collect()
}

fn expected_reply(values: &[i32]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|v| (v + 300).to_be_bytes())
        .collect()
}

fn expect_out_of_range(client: &mut Client, request: &[u8], what: &str) {
    match client.request(request) {
        Err(Error::Primary(e)) => {
            assert_eq!(e.sqlstate, "22003", "{what}: {e:?}");
            assert!(e.message.contains("out of range"), "{what}: {e:?}");
        }
        other => panic!("{what} should be refused with 22003, got {other:?}"),
    }
}

/// A 60 MB 'N' request (under the default 64 MB netbuf.max_message_size)
/// is answered correctly or refused with an ERROR; out-of-range values are
/// refused with 22003, in a small or a huge request; the primary never
/// crash-restarts.
#[test]
fn huge_and_out_of_range_add300_requests_get_an_answer_or_an_error() {
    let p = shared_pair();
    let watch = p.primary.crash_watch();
    let mut client = Client::connect(&p.primary.conninfo()).expect("connect");

    let vals = values(60 * 1024 * 1024 / 4);
    let request = encode_add300(&vals);
    match client.request(&request) {
        Ok(reply) => assert!(
            reply == expected_reply(&vals),
            "wrong reply of {} bytes to a {}-byte 'N' request",
            reply.len(),
            request.len()
        ),
        Err(Error::Primary(e)) => eprintln!("the 60 MB 'N' request was refused: {e}"),
        Err(e) => panic!("the 60 MB 'N' request failed: {e:?}"),
    }
    assert_eq!(client.request(b"Eafter").expect("echo"), b"Eafter");

    expect_out_of_range(
        &mut client,
        &encode_add300(&[1, i32::MAX - 299, 2]),
        "a small 'N' with i32::MAX - 299",
    );
    let mut huge_bad = vals;
    *huge_bad.last_mut().unwrap() = i32::MAX;
    expect_out_of_range(
        &mut client,
        &encode_add300(&huge_bad),
        "a 60 MB 'N' ending with i32::MAX",
    );
    assert_eq!(
        client.request(&encode_add300(&[1, 2])).expect("'N' after"),
        expected_reply(&[1, 2])
    );

    watch.assert_intact();
}

/// The same 60 MB request to a serving backend whose address space is
/// capped (prlimit --as: RLIMIT_AS) at 160 MB above its current size: room
/// for a 64 MB request buffer and a 64 MB reply buffer, not for another
/// copy of the payload.  An allocation netbuf cannot make must end as an ERROR:
/// a Rust allocation failure aborts, and an abort in a backend makes the
/// postmaster restart every backend.  Its own pair, since on failure it
/// takes the whole primary down.
#[test]
fn an_add300_request_the_backend_has_no_memory_for_never_crashes_the_primary() {
    let pair = Pair::start(PairOptions::default());
    let p = &pair.primary;
    // A bystander channel that a crash-restart would kill.
    let mut bystander = Client::connect(&p.conninfo()).expect("connect");
    assert_eq!(bystander.request(b"Ebefore").expect("echo"), b"Ebefore");

    let mut client = Client::connect(&tagged_conninfo(p, "nb_capped")).expect("connect");
    assert_eq!(client.request(b"Eready").expect("echo"), b"Eready");
    let pid = serving_backend(p, "nb_capped");
    let vm_kb = proc_status_kb(pid, "VmSize").expect("the serving backend's VmSize");
    let cap = (vm_kb + 160 * 1024) * 1024;
    // As the servers' OS user: prlimit on another user's process needs
    // CAP_SYS_RESOURCE, which the test may lack even as root.
    let mut prlimit = as_server_user("prlimit");
    prlimit
        .arg(format!("--pid={pid}"))
        .arg(format!("--as={cap}"));
    run_checked(prlimit, "prlimit (util-linux)");

    let vals = values(60 * 1024 * 1024 / 4);
    let outcome = client.request(&encode_add300(&vals));
    let outcome = match outcome {
        Ok(reply) if reply == expected_reply(&vals) => "answered correctly".to_owned(),
        Ok(reply) => panic!("wrong reply of {} bytes", reply.len()),
        Err(Error::Primary(e)) => format!("refused: {e}"),
        Err(e) => panic!(
            "the capped serving backend (VmSize {} MB + 160 MB) did not answer or refuse \
             the 60 MB 'N' request: {e:?}\n{}",
            vm_kb / 1024,
            p.log_tail()
        ),
    };
    eprintln!(
        "60 MB 'N' request to a serving backend capped at VmSize {} MB + 160 MB: {outcome}",
        vm_kb / 1024
    );
    p.assert_no_crash();
    assert_eq!(
        client
            .request(b"Enext")
            .expect("the capped channel goes on"),
        b"Enext"
    );
    assert_eq!(
        bystander
            .request(b"Eafter")
            .expect("the bystander channel survived"),
        b"Eafter"
    );
}
