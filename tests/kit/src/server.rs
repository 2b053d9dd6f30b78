//! Real PostgreSQL servers in a throw-away directory: a [`Pair`] (a primary
//! and a streaming standby made from its base backup) or a lone
//! [`Server`].

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::ffi::OsStringExt;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::process::{chown_to_server_user, must_run, note, run, server_user, wait_until};
use crate::psql::{conninfo_quote, psql, psql_command};

/// pg_ctl is given `-t 60`; the extra margin lets it report its own timeout.
const PG_CTL_TIMEOUT: Duration = Duration::from_secs(90);
const INITDB_TIMEOUT: Duration = Duration::from_secs(120);
const BASEBACKUP_TIMEOUT: Duration = Duration::from_secs(120);
const STREAMING_TIMEOUT: Duration = Duration::from_secs(60);
/// How long [`Node::wait_backend`] looks for its backend.
const BACKEND_TIMEOUT: Duration = Duration::from_secs(20);
const LOG_TAIL_LINES: usize = 30;

// ---- options ----------------------------------------------------------------

/// Knobs for [`Pair::start`].
#[derive(Clone, Debug)]
pub struct PairOptions {
    /// Extra lines appended to the primary's postgresql.conf (the standby
    /// inherits them through the base backup).
    pub primary_conf: Vec<String>,
    /// Extra lines appended to the standby's postgresql.conf.
    pub standby_conf: Vec<String>,
    /// Lines prepended to the primary's pg_hba.conf before it starts, so
    /// they win over the trust defaults.
    pub hba_lines: Vec<String>,
    /// Statements run on the primary (dbname postgres) before the base
    /// backup, so the standby starts with their effects.
    pub setup_sql: Vec<String>,
    /// Run the primary inside this network namespace, listening on
    /// `.address` only; the test talks to it over its Unix socket, which no
    /// partition cuts.
    pub primary_netns: Option<NetnsPlace>,
}

/// Where a node runs when it is not on this host's loopback.
#[derive(Clone, Debug)]
pub struct NetnsPlace {
    pub netns: String,
    pub address: String,
}

impl Default for PairOptions {
    fn default() -> Self {
        PairOptions {
            primary_conf: Vec::new(),
            standby_conf: Vec::new(),
            hba_lines: Vec::new(),
            setup_sql: vec!["CREATE EXTENSION IF NOT EXISTS netbuf".into()],
            primary_netns: None,
        }
    }
}

/// Knobs for [`Server::start`]: a bare server by default.
#[derive(Clone, Debug, Default)]
pub struct ServerOptions {
    /// Extra lines appended to postgresql.conf.
    pub conf: Vec<String>,
    /// Lines prepended to pg_hba.conf (they win over the trust defaults).
    pub hba_lines: Vec<String>,
    /// Statements run (dbname postgres) once the server is up.
    pub setup_sql: Vec<String>,
}

// ---- one server ---------------------------------------------------------------

/// One PostgreSQL server.
#[derive(Debug)]
pub struct Node {
    pub name: String,
    pub datadir: PathBuf,
    pub port: u16,
    pub socket_dir: PathBuf,
    pub log: PathBuf,
    /// The TCP address the server listens on and conninfo() names.
    pub host: String,
    /// The network namespace the server runs in, if not this one's.
    pub netns: Option<String>,
}

impl Node {
    fn new(name: &str, dir: &Path, port: u16) -> Node {
        Node {
            name: name.to_string(),
            datadir: dir.join(name),
            port,
            socket_dir: dir.to_path_buf(),
            log: dir.join(format!("{name}.log")),
            host: "127.0.0.1".to_string(),
            netns: None,
        }
    }

    /// Connects over the Unix socket when the server is in another network
    /// namespace: for administration that must work while the network is
    /// cut.
    fn admin_conninfo(&self, db: &str, user: &str) -> String {
        if self.netns.is_none() {
            return self.conninfo_db(db, user);
        }
        format!(
            "host={} port={} user={} dbname={}",
            conninfo_quote(&self.socket_dir.to_string_lossy()),
            self.port,
            conninfo_quote(user),
            conninfo_quote(db)
        )
    }

    pub fn conninfo(&self) -> String {
        self.conninfo_db("postgres", "postgres")
    }

    pub fn conninfo_db(&self, db: &str, user: &str) -> String {
        format!(
            "host={} port={} user={} dbname={}",
            self.host,
            self.port,
            conninfo_quote(user),
            conninfo_quote(db)
        )
    }

    /// One statement in database postgres as postgres. Ok is trimmed
    /// stdout (unaligned tuples), Err is psql's stderr.
    pub fn sql(&self, sql: &str) -> Result<String, String> {
        self.sql_in("postgres", &[sql])
    }

    pub fn sql_as(&self, user: &str, sql: &str) -> Result<String, String> {
        psql(&self.admin_conninfo("postgres", user), &[sql])
    }

    /// Several statements, each as its own `-c` (so each runs in its own
    /// transaction); stops at the first error.
    pub fn sql_many(&self, stmts: &[&str]) -> Result<String, String> {
        self.sql_in("postgres", stmts)
    }

    /// [`Node::sql_many`] in database `db`.
    pub fn sql_in(&self, db: &str, stmts: &[&str]) -> Result<String, String> {
        psql(&self.admin_conninfo(db, "postgres"), stmts)
    }

    /// [`Node::sql`] with verbose errors: `ERROR:  SQLSTATE: message`, then
    /// DETAIL, HINT, CONTEXT (see [`crate::assert_sql_error`]).
    pub fn sql_verbose(&self, sql: &str) -> Result<String, String> {
        self.sql_in("postgres", &["\\set VERBOSITY verbose", sql])
    }

    /// Runs `sql` (verbose errors), which must fail with `sqlstate` and an
    /// error message containing `text`; returns psql's stderr.
    pub fn expect_error(&self, sql: &str, sqlstate: &str, text: &str) -> String {
        match self.sql_verbose(sql) {
            Ok(out) => panic!(
                "on {}: {sql}\nshould fail with {sqlstate} ({text:?}), returned {out:?}",
                self.name
            ),
            Err(error) => {
                crate::assert_sql_error(&error, sqlstate, text);
                error
            }
        }
    }

    /// A psql script on stdin, in one session that goes on after a failed
    /// statement, with verbose errors. Returns stdout and stderr.
    pub fn script(&self, script: &str) -> (String, String) {
        let output = psql_command(&self.admin_conninfo("postgres", "postgres"))
            .spawn()
            .and_then(|mut child| {
                child
                    .stdin
                    .take()
                    .expect("stdin")
                    .write_all(script.as_bytes())?;
                child.wait_with_output()
            })
            .expect("psql");
        (
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    pub fn must(&self, sql: &str) -> String {
        self.sql(sql).unwrap_or_else(|e| {
            panic!(
                "SQL on {} (port {}) failed: {sql}\n{e}\n{}",
                self.name,
                self.port,
                self.log_tail()
            )
        })
    }

    pub fn log_text(&self) -> String {
        fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The postmaster's pid: unchanged means no crash-restart happened.
    pub fn postmaster_pid(&self) -> String {
        fs::read_to_string(self.datadir.join("postmaster.pid"))
            .expect("postmaster.pid")
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned()
    }

    /// Panics if the log shows a backend crash or a lost protocol sync.
    pub fn assert_no_crash(&self) {
        let log = self.log_text();
        for sign in ["terminated by signal", "protocol synchronization was lost"] {
            assert!(
                !log.contains(sign),
                "{} log shows {sign:?}:\n{}",
                self.name,
                self.log_tail()
            );
        }
    }

    /// Remembers the postmaster's pid now, for [`CrashWatch::assert_intact`].
    pub fn crash_watch(&self) -> CrashWatch<'_> {
        CrashWatch {
            nodes: vec![(self, self.postmaster_pid())],
        }
    }

    /// The last lines of the server log, headed by its path, for panic
    /// messages.
    pub fn log_tail(&self) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.len().saturating_sub(LOG_TAIL_LINES);
        format!(
            "--- last {} lines of {} ---\n{}",
            lines.len() - start,
            self.log.display(),
            lines[start..].join("\n")
        )
    }

    /// `pg_ctl -D datadir <args>` as the server user. Ok is trimmed stdout,
    /// Err describes the command, its status and its output.
    pub fn pg_ctl(&self, args: &[&str]) -> Result<String, String> {
        self.pg_ctl_env(args, &[])
    }

    /// [`Node::pg_ctl`] with `env` in pg_ctl's environment (a postmaster it
    /// starts, and so every backend, inherits it).
    pub fn pg_ctl_env(&self, args: &[&str], env: &[(&str, &Path)]) -> Result<String, String> {
        let mut cmd = server_cmd_in("pg_ctl", self.netns.as_deref());
        cmd.arg("-D").arg(&self.datadir);
        // Without -l the postmaster's output would go to our capture file
        // and be lost, so (re)starts always log to the node's log file.
        let starts = args.iter().any(|a| *a == "start" || *a == "restart");
        let has_log = args.iter().any(|a| *a == "-l" || a.starts_with("--log"));
        if starts && !has_log {
            cmd.arg("-l").arg(&self.log);
        }
        cmd.args(args);
        cmd.envs(env.iter().copied());
        let out = run(cmd, PG_CTL_TIMEOUT);
        if out.success() {
            Ok(out.stdout.trim().to_string())
        } else {
            Err(out.describe())
        }
    }

    pub fn restart(&self, mode: &str) {
        self.restart_with_env(mode, &[]);
    }

    /// Restarts the server with `env` in the postmaster's environment.
    pub fn restart_with_env(&self, mode: &str, env: &[(&str, &Path)]) {
        if let Err(e) = self.pg_ctl_env(&["-m", mode, "-w", "-t", "60", "restart"], env) {
            panic!(
                "restarting {} with -m {mode} failed:\n{e}\n{}",
                self.name,
                self.log_tail()
            );
        }
    }

    /// Polls `sql` until its trimmed output equals `expected`. The error
    /// carries the last result seen.
    pub fn wait_for(&self, sql: &str, expected: &str, timeout: Duration) -> Result<(), String> {
        let mut last = None;
        let found = wait_until(timeout, || {
            let out = self.sql(sql);
            let done = matches!(&out, Ok(o) if o == expected);
            last = Some(out);
            done.then_some(())
        });
        found.ok_or_else(|| {
            let seen = match last {
                Some(Ok(out)) => format!("last output: {out:?}"),
                Some(Err(e)) => format!("last error: {e}"),
                None => "nothing seen".to_owned(),
            };
            format!(
                "timed out after {timeout:?} waiting on {} for `{sql}` to return {expected:?}; {seen}",
                self.name
            )
        })
    }

    /// Waits (20 s at most) until exactly one other backend in
    /// pg_stat_activity matches `filter` (an SQL condition on its columns)
    /// and returns its pid.
    pub fn wait_backend(&self, filter: &str) -> libc::pid_t {
        let sql = format!(
            "SELECT pid FROM pg_stat_activity WHERE ({filter}) AND pid <> pg_backend_pid()"
        );
        let mut seen = String::new();
        let pid = wait_until(BACKEND_TIMEOUT, || {
            seen = self.must(&sql);
            seen.parse().ok()
        });
        pid.unwrap_or_else(|| {
            panic!(
                "no single backend with {filter} on {} within {BACKEND_TIMEOUT:?}; pids last seen: {seen:?}",
                self.name
            )
        })
    }

    /// Waits for backend `pid` to leave pg_stat_activity.
    pub fn wait_backend_exit(&self, pid: libc::pid_t, timeout: Duration) -> Result<(), String> {
        self.wait_for(
            &format!("SELECT count(*) FROM pg_stat_activity WHERE pid = {pid}"),
            "0",
            timeout,
        )
    }

    /// pg_cancel_backend(pid), which must find the backend.
    pub fn cancel_backend(&self, pid: libc::pid_t) {
        self.signal_backend("pg_cancel_backend", pid);
    }

    /// pg_terminate_backend(pid), which must find the backend.
    pub fn terminate_backend(&self, pid: libc::pid_t) {
        self.signal_backend("pg_terminate_backend", pid);
    }

    /// `SELECT function(pid)` (pg_cancel_backend or pg_terminate_backend),
    /// which must return true.
    pub fn signal_backend(&self, function: &str, pid: libc::pid_t) {
        assert_eq!(
            self.must(&format!("SELECT {function}({pid})")),
            "t",
            "{function}({pid}) on {}",
            self.name
        );
    }

    /// Writes the node's configuration: postgresql.conf lines, and
    /// pg_hba.conf with `hba_lines` first and trust for loopback last.
    fn configure(&self, conf: &[String], hba_lines: &[String]) {
        let mut lines = vec![
            "# netbuf test harness".to_string(),
            format!("listen_addresses = '{}'", self.host),
            format!("port = {}", self.port),
            format!("unix_socket_directories = {}", conf_quote(&self.socket_dir)),
            "wal_level = replica".to_string(),
            "max_wal_senders = 10".to_string(),
            "hot_standby = on".to_string(),
            "fsync = off".to_string(),
            "log_line_prefix = '%m [%p] %q%a '".to_string(),
            "logging_collector = off".to_string(),
        ];
        lines.extend(conf.iter().cloned());
        append_lines(&self.datadir.join("postgresql.conf"), &lines);

        let hba_path = self.datadir.join("pg_hba.conf");
        let hba = fs::read_to_string(&hba_path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", hba_path.display()));
        let present: HashSet<Vec<&str>> = hba
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        let mut text: String = hba_lines.iter().map(|l| format!("{l}\n")).collect();
        text.push_str(&hba);
        for required in [
            "host replication all 127.0.0.1/32 trust",
            "host all all 127.0.0.1/32 trust",
        ] {
            if !present.contains(&required.split_whitespace().collect::<Vec<_>>()) {
                text.push_str(required);
                text.push('\n');
            }
        }
        // Truncating in place keeps the file's owner (the server user).
        fs::write(&hba_path, text)
            .unwrap_or_else(|e| panic!("writing {}: {e}", hba_path.display()));
    }

    fn initdb(&self) {
        let mut initdb = server_cmd("initdb");
        initdb.arg("-D").arg(&self.datadir).args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        ]);
        must_run(initdb, INITDB_TIMEOUT, "initdb", String::new);
    }

    /// Runs `setup_sql` (each statement on its own), panicking on failure.
    fn setup(&self, setup_sql: &[String]) {
        if setup_sql.is_empty() {
            return;
        }
        let stmts: Vec<&str> = setup_sql.iter().map(String::as_str).collect();
        if let Err(e) = self.sql_many(&stmts) {
            panic!(
                "setup SQL on {} failed: {stmts:?}\n{e}\n{}",
                self.name,
                self.log_tail()
            );
        }
    }

    /// Starts the server, moving it to a fresh port if another process
    /// grabbed ours between picking it and binding it.
    fn start_server(&mut self) {
        const ATTEMPTS: usize = 3;
        for attempt in 1..=ATTEMPTS {
            let log_len = fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0);
            let err = match self.pg_ctl(&["-w", "-t", "60", "start"]) {
                Ok(_) => return,
                Err(e) => e,
            };
            let text = self.log_text();
            let new_part = text.get(log_len as usize..).unwrap_or(&text);
            let port_taken = new_part.contains("could not bind")
                || new_part.contains("Address already in use")
                || new_part.contains("could not create any TCP/IP sockets");
            if port_taken && attempt < ATTEMPTS {
                self.port = pick_port();
                append_lines(
                    &self.datadir.join("postgresql.conf"),
                    &[format!("port = {}", self.port)],
                );
                continue;
            }
            panic!("starting {} failed:\n{err}\n{}", self.name, self.log_tail());
        }
    }

    /// Best-effort stop that never panics: `mode`, then immediate, then
    /// SIGKILL of the postmaster. Returns what went wrong, if anything.
    fn stop_server(&self, mode: &str) -> Result<(), String> {
        let pidfile = self.datadir.join("postmaster.pid");
        if !pidfile.exists() {
            return Ok(());
        }
        let mut errors = Vec::new();
        let mut modes = vec![mode];
        if mode != "immediate" {
            modes.push("immediate");
        }
        for m in modes {
            match self.pg_ctl(&["-m", m, "-w", "-t", "60", "stop"]) {
                Ok(_) => return Ok(()),
                // Already down (e.g. a test stopped or killed it).
                Err(_) if !pidfile.exists() => return Ok(()),
                Err(e) => errors.push(e),
            }
        }
        if let Some(pid) = read_postmaster_pid(&pidfile) {
            // SAFETY: plain syscall; pid comes from the server's own pid file.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            errors.push(format!("sent SIGKILL to postmaster {pid}"));
        }
        Err(format!(
            "stopping {} failed:\n{}\n{}",
            self.name,
            errors.join("\n"),
            self.log_tail()
        ))
    }
}

/// Postmaster pids taken by [`Node::crash_watch`] or [`Pair::crash_watch`].
pub struct CrashWatch<'a> {
    nodes: Vec<(&'a Node, String)>,
}

impl CrashWatch<'_> {
    /// Panics if a watched server crash-restarted (a new postmaster pid) or
    /// its log shows a crashed backend or a lost protocol sync.
    pub fn assert_intact(&self) {
        for (node, pid) in &self.nodes {
            assert_eq!(
                &node.postmaster_pid(),
                pid,
                "{} restarted\n{}",
                node.name,
                node.log_tail()
            );
            node.assert_no_crash();
        }
    }
}

// ---- the directory of a test's servers ----------------------------------------

/// A test's private directory and whether its servers were stopped.
#[derive(Debug)]
struct Scratch {
    dir: PathBuf,
    keep: bool,
    stopped: AtomicBool,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = make_temp_dir();
        chown_to_server_user(&dir);
        Scratch {
            dir,
            keep: std::env::var("NETBUF_TEST_KEEP").is_ok_and(|v| v == "1"),
            stopped: AtomicBool::new(false),
        }
    }

    /// Stops `nodes` in that order and removes the dir; never panics, so it
    /// is safe in Drop and in the atexit handler.
    fn teardown(&self, nodes: &[&Node], mode: &str) -> Result<(), String> {
        if self.stopped.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let mut errors: Vec<String> = nodes
            .iter()
            .filter_map(|n| n.stop_server(mode).err())
            .collect();
        if self.keep {
            note(&format!(
                "NETBUF_TEST_KEEP=1: keeping {}",
                self.dir.display()
            ));
        } else if let Err(e) = fs::remove_dir_all(&self.dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            errors.push(format!("removing {} failed: {e}", self.dir.display()));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("\n"))
        }
    }

    /// Immediate teardown that reports instead of panicking: a panic in
    /// Drop while unwinding, or out of an extern "C" fn, aborts.
    fn cleanup(&self, nodes: &[&Node]) {
        let result =
            std::panic::catch_unwind(AssertUnwindSafe(|| self.teardown(nodes, "immediate")));
        let err = match result {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e,
            Err(_) => "teardown panicked".to_string(),
        };
        note(&format!("cleanup of {} failed: {err}", self.dir.display()));
    }
}

// ---- a primary and its standby --------------------------------------------------

/// A primary and a streaming standby made from its base backup.
#[derive(Debug)]
pub struct Pair {
    pub primary: Node,
    pub standby: Node,
    scratch: Scratch,
}

impl Pair {
    pub fn start(opts: PairOptions) -> Pair {
        let t0 = Instant::now();
        let scratch = Scratch::new();
        let dir = &scratch.dir;
        // Built before anything runs so that a panic part-way drops it and
        // stops whatever already started.
        let mut pair = Pair {
            primary: Node::new("primary", dir, pick_port()),
            standby: Node::new("standby", dir, pick_port()),
            scratch,
        };
        if let Some(place) = &opts.primary_netns {
            pair.primary.netns = Some(place.netns.clone());
            pair.primary.host = place.address.clone();
        }
        pair.primary.initdb();
        pair.primary.configure(&opts.primary_conf, &opts.hba_lines);
        pair.primary.start_server();
        pair.primary.setup(&opts.setup_sql);
        pair.base_backup(&opts);
        pair.standby.start_server();
        pair.wait_streaming();
        if std::env::var_os("NETBUF_TEST_VERBOSE").is_some() {
            note(&format!(
                "pair in {} (primary {}, standby {}) started in {:?}",
                pair.dir().display(),
                pair.primary.port,
                pair.standby.port,
                t0.elapsed()
            ));
        }
        pair
    }

    /// The directory that holds both servers (data, logs, sockets).
    pub fn dir(&self) -> &Path {
        &self.scratch.dir
    }

    /// Stops both servers (fast, falling back to immediate) and removes the
    /// directory. Panics if a server could not be stopped.
    pub fn stop(&mut self) {
        if let Err(e) = self.scratch.teardown(&self.nodes(), "fast") {
            panic!("{e}");
        }
    }

    /// Standby first: a fast primary shutdown would otherwise wait for its
    /// walsender to ship the final WAL.
    fn nodes(&self) -> [&Node; 2] {
        [&self.standby, &self.primary]
    }

    /// Remembers both postmasters' pids, for [`CrashWatch::assert_intact`].
    pub fn crash_watch(&self) -> CrashWatch<'_> {
        CrashWatch {
            nodes: vec![
                (&self.primary, self.primary.postmaster_pid()),
                (&self.standby, self.standby.postmaster_pid()),
            ],
        }
    }

    fn base_backup(&self, opts: &PairOptions) {
        let s = &self.standby;
        let mut bb = server_cmd("pg_basebackup");
        bb.arg("-D")
            .arg(&s.datadir)
            // --no-sync: like fsync=off, durability is pointless here.
            .args(["-R", "-X", "stream", "-c", "fast", "--no-sync", "-d"])
            .arg(format!(
                "host={} port={} user=postgres",
                self.primary.host, self.primary.port
            ));
        must_run(bb, BASEBACKUP_TIMEOUT, "pg_basebackup", || {
            self.primary.log_tail()
        });

        // Appended after the primary's lines, so these win; primary_conninfo
        // stays in postgresql.auto.conf where -R put it.
        let mut conf = vec![
            "# netbuf test harness: standby".to_string(),
            format!("listen_addresses = '{}'", s.host),
            format!("port = {}", s.port),
            format!("unix_socket_directories = {}", conf_quote(&s.socket_dir)),
        ];
        conf.extend(opts.standby_conf.iter().cloned());
        append_lines(&s.datadir.join("postgresql.conf"), &conf);
    }

    fn wait_streaming(&self) {
        let mut last = (Ok(String::new()), Ok(String::new()));
        let streaming = wait_until(STREAMING_TIMEOUT, || {
            let recovery = self.standby.sql("SELECT pg_is_in_recovery()");
            let senders = self
                .primary
                .sql("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'");
            let up = matches!(&recovery, Ok(v) if v == "t")
                && matches!(&senders, Ok(n) if n.parse::<u32>().is_ok_and(|n| n >= 1));
            last = (recovery, senders);
            up.then_some(())
        });
        if streaming.is_none() {
            panic!(
                "standby did not start streaming within {STREAMING_TIMEOUT:?}\n\
                 standby pg_is_in_recovery: {:?}\n\
                 primary streaming walsenders: {:?}\n{}\n{}",
                last.0,
                last.1,
                self.primary.log_tail(),
                self.standby.log_tail()
            );
        }
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        self.scratch.cleanup(&self.nodes());
    }
}

static SHARED: OnceLock<Pair> = OnceLock::new();

/// The pair shared by all tests of this test binary, started on first use
/// and torn down at process exit (statics are never dropped).
pub fn shared_pair() -> &'static Pair {
    shared_pair_with(PairOptions::default)
}

/// Like [`shared_pair`], with the options of whichever call comes first.
pub fn shared_pair_with(opts: fn() -> PairOptions) -> &'static Pair {
    SHARED.get_or_init(|| {
        let pair = Pair::start(opts());
        // SAFETY: registering a plain extern "C" fn that never unwinds.
        unsafe { libc::atexit(teardown_shared) };
        pair
    })
}

extern "C" fn teardown_shared() {
    if let Some(pair) = SHARED.get() {
        pair.scratch.cleanup(&pair.nodes());
    }
}

// ---- a lone server ----------------------------------------------------------------

/// One server (no standby), for what needs a single installation.
#[derive(Debug)]
pub struct Server {
    pub node: Node,
    scratch: Scratch,
}

impl Server {
    pub fn start(opts: ServerOptions) -> Server {
        let scratch = Scratch::new();
        let mut server = Server {
            node: Node::new("server", &scratch.dir, pick_port()),
            scratch,
        };
        server.node.initdb();
        server.node.configure(&opts.conf, &opts.hba_lines);
        server.node.start_server();
        server.node.setup(&opts.setup_sql);
        server
    }

    /// The server's directory (data, log, socket); the server user owns it.
    pub fn dir(&self) -> &Path {
        &self.scratch.dir
    }
}

static SHARED_SERVER: OnceLock<Server> = OnceLock::new();

/// A lone server shared by all tests of this test binary, started on first
/// use with the options of whichever call comes first, and stopped at
/// process exit like [`shared_pair`] (a `static` is never dropped, so a
/// server kept in one without this would outlive the tests).
pub fn shared_server_with(opts: fn() -> ServerOptions) -> &'static Server {
    SHARED_SERVER.get_or_init(|| {
        let server = Server::start(opts());
        // SAFETY: registering a plain extern "C" fn that never unwinds.
        unsafe { libc::atexit(teardown_shared_server) };
        server
    })
}

extern "C" fn teardown_shared_server() {
    if let Some(server) = SHARED_SERVER.get() {
        server.scratch.cleanup(&[&server.node]);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.scratch.cleanup(&[&self.node]);
    }
}

// ---- the installation under test -------------------------------------------------

/// `$PG_CONFIG <flag>` (default `pg_config` on PATH), trimmed.
pub fn pg_config(flag: &str) -> String {
    let program = std::env::var_os("PG_CONFIG").unwrap_or_else(|| "pg_config".into());
    let mut cmd = Command::new(&program);
    cmd.arg(flag);
    let what = format!("{} {flag}", program.to_string_lossy());
    must_run(cmd, Duration::from_secs(30), &what, String::new)
        .stdout
        .trim()
        .to_owned()
}

/// The PostgreSQL bin directory, from `$PG_CONFIG --bindir`.
pub fn pg_bindir() -> PathBuf {
    static BINDIR: OnceLock<PathBuf> = OnceLock::new();
    BINDIR
        .get_or_init(|| PathBuf::from(pg_config("--bindir")))
        .clone()
}

/// The major version of the PostgreSQL under test (`$PG_CONFIG --version`),
/// e.g. 17.
pub fn pg_major() -> u32 {
    static MAJOR: OnceLock<u32> = OnceLock::new();
    *MAJOR.get_or_init(|| {
        let version = pg_config("--version");
        // "PostgreSQL 17.11" or "PostgreSQL 15.20 (Debian 15.20-0+deb12u1)"
        version
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.split('.').next())
            .and_then(|m| m.parse().ok())
            .unwrap_or_else(|| panic!("cannot read a major version in {version:?}"))
    })
}

/// The libpq of the installation under test, if it has its own: the
/// servers must load it rather than the system's.  A relocatable build
/// (scripts/fetch-postgres.sh) links its walreceiver to libpq through a
/// RUNPATH of its build machine, so without this the walreceiver (and
/// libnetbuf.so in every backend) would load the system's libpq, which may
/// be older than the server and reject options that the server's own
/// pg_basebackup -R writes into primary_conninfo (load_balance_hosts in 16,
/// sslnegotiation in 17).  An installed server always has a libpq at least
/// as new as itself.
fn server_libdir() -> Option<&'static Path> {
    static LIBDIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    LIBDIR
        .get_or_init(|| {
            let libdir = PathBuf::from(pg_config("--libdir"));
            libdir.join("libpq.so.5").exists().then_some(libdir)
        })
        .as_deref()
}

/// `program` (a path) as the server user, with the installation's own
/// libpq: for the installation's programs (initdb, pg_ctl, pg_regress ...).
pub fn server_program(program: &Path) -> Command {
    server_program_in(program, None)
}

fn server_program_in(program: &Path, netns: Option<&str>) -> Command {
    let mut cmd = match netns {
        Some(netns) => {
            let mut cmd = Command::new("ip");
            cmd.args(["netns", "exec", netns]);
            match server_user() {
                Some(user) => cmd.args(["runuser", "-u", user, "--"]),
                None => &mut cmd,
            }
            .arg(program);
            cmd.current_dir("/");
            cmd
        }
        None => crate::process::as_server_user(program),
    };
    if let Some(libdir) = server_libdir() {
        cmd.env("LD_LIBRARY_PATH", libdir);
    }
    cmd
}

/// A server-side binary from [`pg_bindir`], as the server user.
fn server_cmd(bin: &str) -> Command {
    server_cmd_in(bin, None)
}

/// [`server_cmd`] run inside network namespace `netns` (`ip netns exec`).
fn server_cmd_in(bin: &str, netns: Option<&str>) -> Command {
    server_program_in(&pg_bindir().join(bin), netns)
}

// ---- small helpers -----------------------------------------------------------------

/// A fresh private directory from mkdtemp. Under /tmp (or
/// NETBUF_TEST_TMPDIR) rather than $TMPDIR: the server user must be able to
/// reach it, and socket paths must stay short.
fn make_temp_dir() -> PathBuf {
    let base = std::env::var_os("NETBUF_TEST_TMPDIR").unwrap_or_else(|| "/tmp".into());
    let template = Path::new(&base).join("netbuf-test-XXXXXX");
    let mut bytes = template.into_os_string().into_vec();
    bytes.push(0);
    // SAFETY: bytes is a NUL-terminated, writable template as mkdtemp needs.
    let ret = unsafe { libc::mkdtemp(bytes.as_mut_ptr().cast()) };
    if ret.is_null() {
        panic!(
            "mkdtemp in {}: {}",
            Path::new(&base).display(),
            std::io::Error::last_os_error()
        );
    }
    bytes.pop();
    PathBuf::from(OsString::from_vec(bytes))
}

/// A TCP port that was free on 127.0.0.1 a moment ago. Ports handed out by
/// this process are never reused, so parallel pairs cannot collide; other
/// processes are handled by `Node::start_server` retrying.
fn pick_port() -> u16 {
    static USED: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let mut used = USED.lock().unwrap_or_else(|e| e.into_inner());
    let used = used.get_or_insert_with(HashSet::new);
    for _ in 0..100 {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
        let port = listener.local_addr().expect("local_addr").port();
        if used.insert(port) {
            return port;
        }
    }
    panic!("could not find an unused TCP port on 127.0.0.1");
}

fn append_lines(path: &Path, lines: &[String]) {
    let mut text = String::from("\n");
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .unwrap_or_else(|e| panic!("appending to {}: {e}", path.display()));
}

fn read_postmaster_pid(pidfile: &Path) -> Option<libc::pid_t> {
    fs::read_to_string(pidfile)
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// A postgresql.conf string literal.
fn conf_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', "''"))
}
