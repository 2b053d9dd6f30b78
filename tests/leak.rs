//! The Rust client under valgrind: 100,000 exchanges (strict, pipelined,
//! refused by the primary, across reconnects) and no leak from netbuf.
//!
//! The test starts the servers, then runs this same test binary under
//! valgrind with NETBUF_LEAK_CONNINFO set, running only the ignored
//! `leak_workload`, which does the exchanges.

use std::process::Command;
use std::time::Instant;

use netbuf::Client;
use netbuf_testkit::{Pair, PairOptions};

const EXCHANGES: u64 = 100_000;
const PIPELINE_EVERY: u64 = 1_000;
const PIPELINE_DEPTH: u64 = 64;
const RECONNECT_EVERY: u64 = 10_000;
const CONNINFO_VAR: &str = "NETBUF_LEAK_CONNINFO";

fn echo(seq: u64) -> Vec<u8> {
    let mut message = vec![b'E'];
    message.extend_from_slice(&seq.to_be_bytes());
    message
}

/// The workload valgrind watches: run only by the test below, in a child
/// under valgrind (`--ignored --exact leak_workload`).
#[test]
#[ignore = "run under valgrind by hundred_thousand_exchanges_under_valgrind_leak_nothing"]
fn leak_workload() {
    let conninfo = std::env::var(CONNINFO_VAR)
        .unwrap_or_else(|_| panic!("{CONNINFO_VAR} names the primary to exchange with"));
    let mut client = Client::connect(&conninfo).expect("connect");
    let mut seq = 0;
    while seq < EXCHANGES {
        if seq % RECONNECT_EVERY == 0 && seq > 0 {
            // A refused request ends the stream; the next send re-enters it.
            let error = client.request(b"\x01").expect_err("unknown op");
            assert_eq!(error.sqlstate(), "08P01", "{error}");
            client.close();
            client = Client::connect(&conninfo).expect("reconnect");
        }
        if seq % PIPELINE_EVERY == 0 {
            for i in 0..PIPELINE_DEPTH {
                client.queue(&echo(seq + i)).unwrap();
            }
            client.flush().unwrap();
            for i in 0..PIPELINE_DEPTH {
                assert_eq!(client.recv().unwrap(), Some(&echo(seq + i)[..]));
            }
            seq += PIPELINE_DEPTH;
        } else {
            assert_eq!(client.request(&echo(seq)).unwrap(), echo(seq));
            seq += 1;
        }
    }
    client.close();
    println!("leak_workload: {seq} exchanges");
}

#[test]
fn hundred_thousand_exchanges_under_valgrind_leak_nothing() {
    let pair = Pair::start(PairOptions::default());
    let exe = std::env::current_exe().expect("test binary path");
    let started = Instant::now();
    let output = Command::new("valgrind")
        .args([
            "--tool=memcheck",
            "--leak-check=full",
            "--show-leak-kinds=definite,indirect",
            "--errors-for-leak-kinds=definite,indirect",
            "--error-exitcode=99",
            "--num-callers=30",
        ])
        .arg(&exe)
        .args([
            "--ignored",
            "--exact",
            "leak_workload",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CONNINFO_VAR, pair.primary.conninfo())
        .output()
        .expect("valgrind (Debian package valgrind; make test installs it)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!(
        "valgrind run took {:?}; its summary:\n{}",
        started.elapsed(),
        stderr
            .lines()
            .filter(|l| l.contains("lost:")
                || l.contains("ERROR SUMMARY")
                || l.contains("in use at exit"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        stdout.contains(&format!("leak_workload: {EXCHANGES} exchanges")),
        "the workload did not finish:\n{stdout}\n{stderr}"
    );
    assert!(
        output.status.success(),
        "valgrind found errors or leaks (exit {:?}):\n{stderr}",
        output.status.code()
    );
    assert!(
        stderr.contains("ERROR SUMMARY: 0 errors"),
        "no clean summary from valgrind:\n{stderr}"
    );
    pair.primary.assert_no_crash();
}
