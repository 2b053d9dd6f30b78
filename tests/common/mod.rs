//! Integration-test harness: real PostgreSQL servers (a primary and a
//! streaming standby) on loopback, in a throw-away directory.
//!
//! Server-side commands run as an unprivileged OS user when the tests run as
//! root, because PostgreSQL refuses to start as root. Every external command
//! and every wait has a deadline, and every failure panics with the command,
//! its exit status, its stderr and the tail of the relevant server log.
#![allow(dead_code)]

use std::collections::HashSet;
use std::ffi::{CString, OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::TcpListener;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::process::CommandExt;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Deadline for psql calls (a hung query must not hang the test run).
const SQL_TIMEOUT: Duration = Duration::from_secs(120);
/// pg_ctl is given `-t 60`; the extra margin lets it report its own timeout.
const PG_CTL_TIMEOUT: Duration = Duration::from_secs(90);
const INITDB_TIMEOUT: Duration = Duration::from_secs(120);
const BASEBACKUP_TIMEOUT: Duration = Duration::from_secs(120);
const STREAMING_TIMEOUT: Duration = Duration::from_secs(60);
const POLL_INTERVAL: Duration = Duration::from_millis(50);
const LOG_TAIL_LINES: usize = 30;

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
    /// `.address` only (see [`NetnsLink`]); the test talks to it over its
    /// Unix socket, which no partition cuts.
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

    /// Connects over the Unix socket: for administration that must work
    /// while the network is cut.
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

    pub fn sql(&self, sql: &str) -> Result<String, String> {
        psql(&self.admin_conninfo("postgres", "postgres"), &[sql])
    }

    pub fn sql_as(&self, user: &str, sql: &str) -> Result<String, String> {
        psql(&self.admin_conninfo("postgres", user), &[sql])
    }

    /// Several statements, each as its own `-c` (so each runs in its own
    /// transaction); stops at the first error.
    pub fn sql_many(&self, stmts: &[&str]) -> Result<String, String> {
        psql(&self.admin_conninfo("postgres", "postgres"), stmts)
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

    /// The last lines of the server log, headed by its path, for panic
    /// messages.
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
        let out = run(cmd, PG_CTL_TIMEOUT);
        if out.success() {
            Ok(out.stdout.trim().to_string())
        } else {
            Err(out.describe())
        }
    }

    pub fn restart(&self, mode: &str) {
        if let Err(e) = self.pg_ctl(&["-m", mode, "-w", "-t", "60", "restart"]) {
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
        let deadline = Instant::now() + timeout;
        loop {
            let last = self.sql(sql);
            if matches!(&last, Ok(out) if out == expected) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let seen = match last {
                    Ok(out) => format!("last output: {out:?}"),
                    Err(e) => format!("last error: {e}"),
                };
                return Err(format!(
                    "timed out after {timeout:?} waiting on {} for `{sql}` to return {expected:?}; {seen}",
                    self.name
                ));
            }
            sleep(POLL_INTERVAL);
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

/// A primary and a streaming standby made from its base backup.
#[derive(Debug)]
pub struct Pair {
    pub primary: Node,
    pub standby: Node,
    pub dir: PathBuf,
    keep: bool,
    stopped: AtomicBool,
}

impl Pair {
    pub fn start(opts: PairOptions) -> Pair {
        let t0 = Instant::now();
        let dir = make_temp_dir();
        // Built before anything runs so that a panic part-way drops it and
        // stops whatever already started.
        let mut pair = Pair {
            primary: Node::new("primary", &dir, pick_port()),
            standby: Node::new("standby", &dir, pick_port()),
            dir,
            keep: std::env::var("NETBUF_TEST_KEEP").is_ok_and(|v| v == "1"),
            stopped: AtomicBool::new(false),
        };
        if let Some(place) = &opts.primary_netns {
            pair.primary.netns = Some(place.netns.clone());
            pair.primary.host = place.address.clone();
        }
        if let Some(user) = server_user() {
            let mut chown = Command::new("chown");
            chown.arg("-R").arg(user).arg(&pair.dir);
            must_run(
                chown,
                Duration::from_secs(30),
                "chown of the test dir",
                None,
            );
        }
        pair.init_primary(&opts);
        pair.primary.start_server();
        if !opts.setup_sql.is_empty() {
            let stmts: Vec<&str> = opts.setup_sql.iter().map(String::as_str).collect();
            if let Err(e) = pair.primary.sql_many(&stmts) {
                panic!(
                    "setup SQL on primary failed: {stmts:?}\n{e}\n{}",
                    pair.primary.log_tail()
                );
            }
        }
        pair.base_backup(&opts);
        pair.standby.start_server();
        pair.wait_streaming();
        if std::env::var_os("NETBUF_TEST_VERBOSE").is_some() {
            note(&format!(
                "pair in {} (primary {}, standby {}) started in {:?}",
                pair.dir.display(),
                pair.primary.port,
                pair.standby.port,
                t0.elapsed()
            ));
        }
        pair
    }

    /// Stops both servers (fast, falling back to immediate) and removes the
    /// directory. Panics if a server could not be stopped.
    pub fn stop(&mut self) {
        if self.stopped.load(Ordering::SeqCst) {
            return;
        }
        if let Err(e) = self.teardown("fast") {
            panic!("{e}");
        }
    }

    /// Stops both servers and removes the dir; never panics, so it is safe
    /// in Drop and in the atexit handler.
    fn teardown(&self, mode: &str) -> Result<(), String> {
        if self.stopped.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        // Standby first: a fast primary shutdown would otherwise wait for
        // its walsender to ship the final WAL.
        let mut errors: Vec<String> = [&self.standby, &self.primary]
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

    fn init_primary(&self, opts: &PairOptions) {
        let p = &self.primary;
        let mut initdb = server_cmd("initdb");
        initdb.arg("-D").arg(&p.datadir).args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        ]);
        must_run(initdb, INITDB_TIMEOUT, "initdb", None);

        let mut conf = vec![
            "# netbuf test harness".to_string(),
            format!("listen_addresses = '{}'", p.host),
            format!("port = {}", p.port),
            format!("unix_socket_directories = {}", conf_quote(&p.socket_dir)),
            "wal_level = replica".to_string(),
            "max_wal_senders = 10".to_string(),
            "hot_standby = on".to_string(),
            "fsync = off".to_string(),
            "log_line_prefix = '%m [%p] %q%a '".to_string(),
            "logging_collector = off".to_string(),
        ];
        conf.extend(opts.primary_conf.iter().cloned());
        append_lines(&p.datadir.join("postgresql.conf"), &conf);

        let hba_path = p.datadir.join("pg_hba.conf");
        let hba = fs::read_to_string(&hba_path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", hba_path.display()));
        let present: HashSet<Vec<&str>> = hba
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        let mut text: String = opts.hba_lines.iter().map(|l| format!("{l}\n")).collect();
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
        must_run(bb, BASEBACKUP_TIMEOUT, "pg_basebackup", Some(&self.primary));

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
        let deadline = Instant::now() + STREAMING_TIMEOUT;
        loop {
            let recovery = self.standby.sql("SELECT pg_is_in_recovery()");
            let streaming = self
                .primary
                .sql("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'");
            let in_recovery = matches!(&recovery, Ok(v) if v == "t");
            let n = streaming
                .as_ref()
                .ok()
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(0);
            if in_recovery && n >= 1 {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "standby did not start streaming within {STREAMING_TIMEOUT:?}\n\
                     standby pg_is_in_recovery: {recovery:?}\n\
                     primary streaming walsenders: {streaming:?}\n{}\n{}",
                    self.primary.log_tail(),
                    self.standby.log_tail()
                );
            }
            sleep(POLL_INTERVAL);
        }
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        self.cleanup();
    }
}

impl Pair {
    /// Immediate teardown that reports instead of panicking: a panic in
    /// Drop while unwinding, or out of an extern "C" fn, aborts.
    fn cleanup(&self) {
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| self.teardown("immediate")));
        let err = match result {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e,
            Err(_) => "teardown panicked".to_string(),
        };
        note(&format!("cleanup of {} failed: {err}", self.dir.display()));
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
        pair.cleanup();
    }
}

/// Writes straight to stderr: libtest captures `eprintln!` of passing
/// tests, and these notes matter exactly then.
fn note(msg: &str) {
    let _ = writeln!(std::io::stderr(), "netbuf test harness: {msg}");
}

/// The PostgreSQL bin directory, from `$PG_CONFIG --bindir` (default
/// `pg_config` on PATH).
pub fn pg_bindir() -> PathBuf {
    static BINDIR: OnceLock<PathBuf> = OnceLock::new();
    BINDIR
        .get_or_init(|| {
            let pg_config = std::env::var_os("PG_CONFIG").unwrap_or_else(|| "pg_config".into());
            let mut cmd = Command::new(&pg_config);
            cmd.arg("--bindir");
            let out = must_run(cmd, Duration::from_secs(30), "pg_config --bindir", None);
            PathBuf::from(out.stdout.trim())
        })
        .clone()
}

/// The major version of the PostgreSQL under test (`$PG_CONFIG --version`),
/// e.g. 17.
pub fn pg_major() -> u32 {
    static MAJOR: OnceLock<u32> = OnceLock::new();
    *MAJOR.get_or_init(|| {
        let pg_config = std::env::var_os("PG_CONFIG").unwrap_or_else(|| "pg_config".into());
        let mut cmd = Command::new(&pg_config);
        cmd.arg("--version");
        let out = must_run(cmd, Duration::from_secs(30), "pg_config --version", None);
        // "PostgreSQL 17.11" or "PostgreSQL 15.20 (Debian 15.20-0+deb12u1)"
        out.stdout
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.split('.').next())
            .and_then(|m| m.parse().ok())
            .unwrap_or_else(|| panic!("cannot read a major version in {:?}", out.stdout))
    })
}

/// What pg_stat_activity.wait_event shows while a backend waits inside
/// netbuf for `event`: netbuf's own name from PostgreSQL 17 on (custom wait
/// events), the generic event it stands for before.  `event` is one of
/// NetbufConnect, NetbufSend, NetbufRecv (standby side), NetbufServeRecv
/// and NetbufServeSend (serving side).
pub fn netbuf_wait_event(event: &'static str) -> &'static str {
    let generic = match event {
        "NetbufConnect" | "NetbufSend" | "NetbufRecv" => "Extension",
        "NetbufServeRecv" => "ClientRead",
        "NetbufServeSend" => "ClientWrite",
        other => panic!("{other} is not one of netbuf's wait events"),
    };
    if pg_major() >= 17 { event } else { generic }
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
            let pg_config = std::env::var_os("PG_CONFIG").unwrap_or_else(|| "pg_config".into());
            let mut cmd = Command::new(&pg_config);
            cmd.arg("--libdir");
            let out = must_run(cmd, Duration::from_secs(30), "pg_config --libdir", None);
            let libdir = PathBuf::from(out.stdout.trim());
            libdir.join("libpq.so.5").exists().then_some(libdir)
        })
        .as_deref()
}

/// The OS user that server-side commands run as: None when not root.
pub fn server_user() -> Option<&'static str> {
    static USER: OnceLock<Option<String>> = OnceLock::new();
    USER.get_or_init(|| {
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return None;
        }
        if let Ok(user) = std::env::var("NETBUF_TEST_OS_USER") {
            return Some(user);
        }
        let name = CString::new("postgres").unwrap();
        // SAFETY: getpwnam with a valid C string; only the null check is used.
        if unsafe { libc::getpwnam(name.as_ptr()) }.is_null() {
            panic!(
                "tests run as root, which PostgreSQL refuses, and there is no `postgres` \
                 OS user; set NETBUF_TEST_OS_USER to an unprivileged user"
            );
        }
        Some("postgres".to_string())
    })
    .as_deref()
}

/// A command for a server-side binary from [`pg_bindir`], wrapped in
/// `runuser` when running as root.
fn server_cmd(bin: &str) -> Command {
    server_cmd_in(bin, None)
}

/// [`server_cmd`] run inside network namespace `netns` (`ip netns exec`).
fn server_cmd_in(bin: &str, netns: Option<&str>) -> Command {
    let path = pg_bindir().join(bin);
    let mut argv: Vec<std::ffi::OsString> = Vec::new();
    if let Some(netns) = netns {
        argv.extend(["ip", "netns", "exec", netns].map(Into::into));
    }
    if let Some(user) = server_user() {
        argv.extend(["runuser", "-u", user, "--"].map(Into::into));
    }
    argv.push(path.into());
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]);
    if let Some(libdir) = server_libdir() {
        cmd.env("LD_LIBRARY_PATH", libdir);
    }
    // The server user may not be able to read our cwd, and PostgreSQL
    // binaries fail when they cannot resolve it.
    cmd.current_dir("/");
    cmd
}

/// `node`'s conninfo with `application_name=tag`: the serving backend of a
/// channel opened with it shows that name in the primary's
/// pg_stat_activity, so a test finds its own among parallel tests'.
pub fn tagged_conninfo(node: &Node, tag: &str) -> String {
    format!("{} application_name={tag}", node.conninfo())
}

/// The pids of the backends on `primary` whose application_name is `tag`
/// (the serving backends of channels opened with [`tagged_conninfo`]).
pub fn tagged_backends(primary: &Node, tag: &str) -> Vec<libc::pid_t> {
    primary
        .must(&format!(
            "SELECT pid FROM pg_stat_activity WHERE application_name = '{tag}' ORDER BY pid"
        ))
        .lines()
        .map(|l| l.trim().parse().expect("a pid"))
        .collect()
}

/// Waits until exactly one backend is tagged `tag` and returns its pid.
pub fn tagged_backend(primary: &Node, tag: &str) -> libc::pid_t {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let pids = tagged_backends(primary, tag);
        if let [pid] = pids[..] {
            return pid;
        }
        assert!(
            Instant::now() < deadline,
            "expected one backend tagged {tag} on {}, found {pids:?}",
            primary.name
        );
        sleep(POLL_INTERVAL);
    }
}

/// A process stopped with SIGSTOP until this guard is dropped (SIGCONT), so
/// that a failing test never leaves a server process stopped.
pub struct Stopped(libc::pid_t);

impl Stopped {
    pub fn new(pid: libc::pid_t) -> Stopped {
        // SAFETY: kill(2) of a server process the test owns.
        assert_eq!(
            unsafe { libc::kill(pid, libc::SIGSTOP) },
            0,
            "SIGSTOP {pid}"
        );
        let guard = Stopped(pid);
        // The signal is asynchronous: wait until the kernel shows it stopped.
        let deadline = Instant::now() + Duration::from_secs(5);
        while proc_state(pid) != Some('T') {
            assert!(Instant::now() < deadline, "process {pid} did not stop");
            sleep(Duration::from_millis(5));
        }
        guard
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        // SAFETY: kill(2) of the process stopped by new().
        unsafe { libc::kill(self.0, libc::SIGCONT) };
    }
}

/// The state letter of /proc/<pid>/stat (R, S, T ...), None if it is gone.
fn proc_state(pid: libc::pid_t) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces.
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// psql as this process for a test to spawn itself (stdin scripts,
/// background calls): unaligned tuples only, verbose errors (SQLSTATE in
/// the text), English messages, all three streams piped.
pub fn psql_command(conninfo: &str) -> Command {
    let bin = pg_bindir().join("psql");
    let mut cmd = Command::new(if bin.exists() { bin } else { "psql".into() });
    cmd.args(["-X", "-At", "-v", "VERBOSITY=verbose", "-d", conninfo])
        .env("LC_ALL", "C")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Runs psql as this process with each statement as a separate `-c`.
/// Ok is trimmed stdout; Err is stderr (tests match on error text).
pub fn psql(conninfo: &str, stmts: &[&str]) -> Result<String, String> {
    let bin = pg_bindir().join("psql");
    let mut cmd = Command::new(if bin.exists() { bin } else { "psql".into() });
    cmd.args([
        "-X",
        "-A",
        "-t",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-d",
        conninfo,
    ]);
    for s in stmts {
        cmd.arg("-c").arg(s);
    }
    // English client messages, UTF-8 results and a bounded connect.
    cmd.env("LC_ALL", "C")
        .env("PGCLIENTENCODING", "UTF8")
        .env("PGCONNECT_TIMEOUT", "10");
    let out = run(cmd, SQL_TIMEOUT);
    match out.status {
        Some(s) if s.success() => Ok(out.stdout.trim().to_string()),
        Some(s) => {
            let err = out.stderr.trim();
            if err.is_empty() {
                Err(format!("psql failed with {s} and no stderr"))
            } else {
                Err(err.to_string())
            }
        }
        None => Err(format!(
            "psql timed out after {SQL_TIMEOUT:?}: {}",
            out.stderr.trim()
        )),
    }
}

/// The result of [`run`]: `status` is None when the deadline killed it.
struct Output {
    cmdline: String,
    status: Option<ExitStatus>,
    timeout: Duration,
    stdout: String,
    stderr: String,
}

impl Output {
    fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    fn describe(&self) -> String {
        let status = match self.status {
            Some(s) => s.to_string(),
            None => format!("killed after timeout of {:?}", self.timeout),
        };
        format!(
            "command: {}\nstatus: {status}\nstderr:\n{}\nstdout:\n{}",
            self.cmdline,
            self.stderr.trim_end(),
            self.stdout.trim_end()
        )
    }
}

/// Runs `cmd` with a deadline. Output goes to unlinked temp files rather
/// than pipes: a daemon that inherits a pipe (the postmaster) would keep it
/// open and make reading to EOF hang.
fn run(mut cmd: Command, timeout: Duration) -> Output {
    let cmdline = describe_cmd(&cmd);
    let mut out_file = capture_file();
    let mut err_file = capture_file();
    cmd.stdin(Stdio::null())
        .stdout(out_file.try_clone().expect("dup capture file"))
        .stderr(err_file.try_clone().expect("dup capture file"))
        // Own process group, so a timeout kills runuser's child too.
        .process_group(0);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => panic!("could not spawn `{cmdline}`: {e}"),
    };
    let deadline = Instant::now() + timeout;
    // Short first polls keep quick psql calls quick.
    let mut pause = Duration::from_millis(1);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => {
                // SAFETY: plain syscall on the group we created; the child
                // is not yet reaped, so its pid (= pgid) is still ours.
                unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
                let _ = child.wait();
                break None;
            }
            Ok(None) => {
                sleep(pause);
                pause = (pause * 2).min(POLL_INTERVAL);
            }
            Err(e) => panic!("waiting for `{cmdline}`: {e}"),
        }
    };
    Output {
        cmdline,
        status,
        timeout,
        stdout: read_back(&mut out_file),
        stderr: read_back(&mut err_file),
    }
}

/// Runs `cmd` and panics with everything useful if it fails.
fn must_run(cmd: Command, timeout: Duration, what: &str, node: Option<&Node>) -> Output {
    let out = run(cmd, timeout);
    if !out.success() {
        let tail = node.map(Node::log_tail).unwrap_or_default();
        panic!("{what} failed:\n{}\n{tail}", out.describe());
    }
    out
}

fn capture_file() -> File {
    let path = std::env::temp_dir().join(format!("netbuf-test-out-{}", unique_suffix()));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
    // Unlinked at once: the open descriptor is all we need, and nothing is
    // left behind whatever happens next.
    let _ = fs::remove_file(&path);
    file
}

fn read_back(file: &mut File) -> String {
    let mut buf = Vec::new();
    let _ = file.seek(SeekFrom::Start(0));
    let _ = file.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

fn describe_cmd(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(shell_quote)
        .collect::<Vec<_>>()
        .join(" ")
}

fn shell_quote(s: &OsStr) -> String {
    let s = s.to_string_lossy();
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c))
    {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

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

/// A libpq conninfo value, quoted only when it needs to be.
fn conninfo_quote(v: &str) -> String {
    if !v.is_empty()
        && !v
            .chars()
            .any(|c| c.is_whitespace() || c == '\'' || c == '\\')
    {
        v.to_string()
    } else {
        format!("'{}'", v.replace('\\', r"\\").replace('\'', r"\'"))
    }
}
