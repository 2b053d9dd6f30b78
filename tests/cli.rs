//! The `netbuf` command-line tool as a user meets it: help, version, usage
//! errors, shell completions, and a ping against a real primary.
//!
//! The ping needs `make install` first (the extension on the server of
//! $PG_CONFIG); the other tests need no server.

use std::process::Command;

use netbuf_testkit::{Server, ServerOptions};

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn netbuf(args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_netbuf"))
        .args(args)
        .output()
        .expect("run netbuf");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[test]
fn help_prints_the_usage_on_stdout_and_exits_0() {
    for args in [&["--help"][..], &["-h"], &["help"]] {
        let run = netbuf(args);
        assert_eq!(run.code, Some(0), "{args:?}: {}", run.stderr);
        assert!(
            run.stdout.contains("Usage: netbuf <COMMAND>")
                && run.stdout.contains("ping")
                && run.stdout.contains("bench")
                && run.stdout.contains("completions"),
            "{args:?}: {}",
            run.stdout
        );
        assert!(
            !run.stdout.contains("missing") && !run.stderr.contains("missing"),
            "{args:?}: {}{}",
            run.stdout,
            run.stderr
        );
        assert_eq!(run.stderr, "", "{args:?}");
    }
    // Each subcommand's help names its options and their defaults.
    let run = netbuf(&["ping", "--help"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    for text in [
        "Usage: netbuf ping [OPTIONS] <CONNINFO>",
        "-c, --count <COUNT>",
        "-s, --size <SIZE>",
        "[default: 64]",
        "-i, --interval <INTERVAL>",
        "[default: 1]",
    ] {
        assert!(run.stdout.contains(text), "no {text:?} in {}", run.stdout);
    }
    let run = netbuf(&["bench", "--help"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    for text in [
        "Usage: netbuf bench [OPTIONS] <CONNINFO>",
        "-d, --depth <DEPTH>",
        "-t, --seconds <SECONDS>",
        "[default: 5]",
    ] {
        assert!(run.stdout.contains(text), "no {text:?} in {}", run.stdout);
    }
}

#[test]
fn version_prints_the_crate_version_on_stdout_and_exits_0() {
    for flag in ["--version", "-V"] {
        let run = netbuf(&[flag]);
        assert_eq!(run.code, Some(0), "{flag}: {}", run.stderr);
        assert_eq!(
            run.stdout.trim(),
            format!("netbuf {}", env!("CARGO_PKG_VERSION")),
            "{flag}"
        );
        assert_eq!(run.stderr, "", "{flag}");
    }
}

/// Usage errors exit 2 with an `error:` on stderr naming the problem, and
/// print nothing on stdout; none reaches a server (the conninfo is bogus).
#[test]
fn usage_errors_exit_2_with_the_cause_on_stderr() {
    let cases: &[(&[&str], &str)] = &[
        (&["ping", "host=nowhere", "--bogus"], "'--bogus'"),
        (&["ping", "host=nowhere", "-d", "4"], "'-d'"),
        (&["frobnicate"], "'frobnicate'"),
        (&["ping"], "<CONNINFO>"),
        (&["ping", "a", "b"], "'b'"),
        (&["ping", "host=nowhere", "-s", "0"], "at least 1"),
        (
            &["ping", "host=nowhere", "-s", "1073741823"],
            "at most 1073741822",
        ),
        (
            &["ping", "host=nowhere", "-s", "big"],
            "not a whole number: 'big'",
        ),
        (&["ping", "host=nowhere", "-c", "0"], "--count"),
        (&["ping", "host=nowhere", "-c", "x"], "--count"),
        (&["ping", "host=nowhere", "-i", "-1"], "'-1'"),
        (
            &["ping", "host=nowhere", "-i", "soon"],
            "not a number of seconds",
        ),
        (&["bench", "host=nowhere", "-d", "0"], "at least 1"),
        (
            &["bench", "host=nowhere", "-t", "x"],
            "not a number of seconds",
        ),
        (&["completions", "tcsh"], "'tcsh'"),
        (&["ping", "host=nowhere", "-s"], "a value is required"),
    ];
    for (args, cause) in cases {
        let run = netbuf(args);
        assert_eq!(run.code, Some(2), "{args:?}: {}{}", run.stdout, run.stderr);
        assert!(
            run.stderr.starts_with("error: ") && run.stderr.contains(cause),
            "{args:?}: wanted {cause:?} in {}",
            run.stderr
        );
        assert_eq!(run.stdout, "", "{args:?}");
    }
    // No command at all: the usage, on stderr, exit 2.
    let run = netbuf(&[]);
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr.contains("Usage: netbuf <COMMAND>"),
        "{}",
        run.stderr
    );
    assert_eq!(run.stdout, "");
}

#[test]
fn completions_print_a_script_for_each_shell() {
    for (shell, marker) in [
        ("bash", "complete -F _netbuf"),
        ("zsh", "#compdef netbuf"),
        ("fish", "complete -c netbuf"),
    ] {
        let run = netbuf(&["completions", shell]);
        assert_eq!(run.code, Some(0), "{shell}: {}", run.stderr);
        assert!(run.stdout.contains(marker), "{shell}: {}", run.stdout);
        // The script knows the subcommands and their (long) options.
        for word in ["ping", "bench", "interval", "depth"] {
            assert!(run.stdout.contains(word), "{shell}: no {word}");
        }
    }
    // bash itself accepts the script and defines the function.
    let run = netbuf(&["completions", "bash"]);
    let check = Command::new("bash")
        .args(["-c", &format!("{}\ncomplete -p netbuf", run.stdout)])
        .output()
        .expect("run bash");
    assert!(
        check.status.success() && String::from_utf8_lossy(&check.stdout).contains("-F _netbuf"),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn ping_against_a_real_primary() {
    let server = Server::start(ServerOptions {
        setup_sql: vec!["CREATE EXTENSION netbuf".into()],
        ..ServerOptions::default()
    });
    let conninfo = server.node.conninfo();
    let run = netbuf(&["ping", &conninfo, "-c", "3", "-s", "100", "-i", "0.05"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stdout.starts_with("NETBUF PING: 100 bytes per echo"),
        "{}",
        run.stdout
    );
    assert_eq!(
        run.stdout.matches("100 bytes: seq=").count(),
        3,
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("3 sent, 3 received, 0% loss"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("rtt min/avg/max/mdev = "),
        "{}",
        run.stdout
    );

    // The long spellings and the defaults (64 bytes) work the same way.
    let run = netbuf(&["ping", &conninfo, "--count", "1", "--interval", "0"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stdout.contains("64 bytes: seq=0 "), "{}", run.stdout);

    // A size the tool accepts but the primary's netbuf.max_message_size
    // (64 MiB) refuses: exit 1 with the primary's cause, not a usage error.
    let run = netbuf(&["ping", &conninfo, "-c", "1", "-s", "70000000"]);
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.starts_with("netbuf: ") && run.stderr.contains("netbuf.max_message_size"),
        "{}",
        run.stderr
    );
}
