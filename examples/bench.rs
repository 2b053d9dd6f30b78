//! `make bench`: netbuf side by side with its baselines, on throwaway servers.
//!
//! Starts a primary (TLS on, throwaway CA) and a streaming standby, then
//! measures, interleaved in several short rounds so that a machine that
//! changes speed between processes hits every compared row alike:
//!
//! - (a) raw socket ping-pong between two processes (bench/c/raw_pingpong);
//! - (b) hand-written libpq COPY BOTH echo against netbuf.serve()
//!   (bench/c/libpq_echo);
//! - (c) netbuf's Rust API, in this process, with a counting allocator;
//! - (d) netbuf through netbuf.h in a standby backend, (b') the same loop
//!   hand-written with libpq there, (e') a prepared SELECT $1::bytea there
//!   (bench/pg_module, extension netbuf_bench);
//! - (e) prepared SELECT $1::bytea from a client program (bench/c/libpq_select);
//!
//! over payloads, transports (Unix socket, TCP, TCP + TLS), pipelining,
//! the seed's 64 sends then 64 receives, and connection set-up.  Prints the
//! table and a PASS/FAIL line per target of issue 4, each computed from
//! this run's numbers, and writes both to bench-results/.
//!
//! The VM this was written on runs a ping-pong 3x faster when both ends
//! share a CPU than when a wake-up crosses CPUs, and the scheduler picks
//! either per process: so by default (BENCH_PIN=split) the client side
//! (this process, its children, the standby) runs on CPU 0 and the primary
//! on CPU 1, as if they were two machines; BENCH_PIN=same puts all on CPU
//! 0, BENCH_PIN=none leaves it to the scheduler.
//!
//! Environment: BENCH_QUICK=1 (fewer rounds and iterations), BENCH_ROUNDS,
//! BENCH_SCALE (multiplies iteration counts), BENCH_TRANSPORTS ("unix tcp
//! tls"), BENCH_PAYLOADS ("16 1024 65536 1048576").

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use netbuf::Client;
use netbuf_testkit::tls::{Certs, certificates};
use netbuf_testkit::{
    Node, Pair, PairOptions, psql, run_checked, serving_backend, shared_pair_with, sql_literal,
};

// ---- counting allocator -----------------------------------------------------

/// Every allocation of this process (Rust's, not libpq's malloc).
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

struct Counting;

// SAFETY: every method forwards to System with the caller's arguments; the
// counter has no effect on the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged; the caller upholds alloc's contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged; the caller upholds the contract.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: ptr came from this allocator (i.e. System) with layout.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: ptr came from this allocator (i.e. System) with layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

// ---- what is measured -------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Transport {
    Unix,
    Tcp,
    Tls,
}

impl Transport {
    fn name(self) -> &'static str {
        match self {
            Transport::Unix => "unix",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Row {
    Raw,
    Libpq,
    Rust,
    Select,
    Backend,
    BackendLibpq,
    BackendSelect,
    BackendSeed,
    BackendLibpqSeed,
    ConnectBare,
    ConnectLibpqChannel,
    ConnectRust,
    ConnectBackendBare,
    ConnectBackend,
    SqlRequest,
    SqlTransaction,
    SqlHandler,
    SqlDblink,
}

impl Row {
    fn label(self) -> &'static str {
        match self {
            Row::Raw => "(a) raw socket",
            Row::Libpq => "(b) libpq echo",
            Row::Rust => "(c) netbuf Rust",
            Row::Select => "(e) SELECT $1",
            Row::Backend => "(d) netbuf backend",
            Row::BackendLibpq => "(b') libpq backend",
            Row::BackendSelect => "(e') SELECT backend",
            Row::BackendSeed => "(d) seed send/recv",
            Row::BackendLibpqSeed => "(b') seed libpq",
            Row::ConnectBare => "(b) PQconnectdb+SELECT 1",
            Row::ConnectLibpqChannel => "(b) libpq channel",
            Row::ConnectRust => "(c) Client::connect",
            Row::ConnectBackendBare => "(b') PQconnectdb+SELECT 1",
            Row::ConnectBackend => "(d) netbuf_connect",
            Row::SqlRequest => "(f) netbuf.request 'E'",
            Row::SqlTransaction => "(f'') C handler in xact",
            Row::SqlHandler => "(f') request, SQL handler",
            Row::SqlDblink => "(g) dblink prepared",
        }
    }

    /// The hand-written libpq row of the same kind of process.
    fn base(self) -> Row {
        match self {
            Row::Raw | Row::Libpq | Row::Rust | Row::Select => Row::Libpq,
            Row::Backend | Row::BackendLibpq | Row::BackendSelect => Row::BackendLibpq,
            Row::BackendSeed | Row::BackendLibpqSeed => Row::BackendLibpqSeed,
            Row::ConnectBare | Row::ConnectLibpqChannel | Row::ConnectRust => Row::ConnectBare,
            Row::ConnectBackendBare | Row::ConnectBackend => Row::ConnectBackendBare,
            Row::SqlRequest | Row::SqlTransaction | Row::SqlHandler | Row::SqlDblink => {
                Row::SqlDblink
            }
        }
    }

    /// A row of the SQL-path table: a PL/pgSQL loop on the standby.
    fn is_sql_path(self) -> bool {
        matches!(
            self,
            Row::SqlRequest | Row::SqlTransaction | Row::SqlHandler | Row::SqlDblink
        )
    }
}

/// One line of the table. Connection rows have payload 0 and depth 0.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
struct Cell {
    transport: Transport,
    payload: usize,
    depth: usize,
    row: Row,
}

/// One measurement of one cell.
#[derive(Clone, Debug, Default)]
struct Sample {
    p50: f64,
    p99: f64,
    msgs_per_s: f64,
    /// Serving backend's CPU time per message, in us.
    cpu_us: Option<f64>,
    /// Rust allocations per message in the timed loop, row (c) only.
    allocs: Option<f64>,
}

/// A program run or an SQL call that yields samples.
#[derive(Clone, Debug)]
enum Job {
    Raw(Transport, usize),
    Libpq(Transport, usize, usize),
    Select(Transport, usize, usize),
    Rust(Transport, usize, usize),
    Backend(&'static str, Row, Transport, usize, usize),
    ConnectC(Transport),
    ConnectRust(Transport),
    ConnectBackend(&'static str, Row, Transport),
    /// netbuf_bench.sql_path(kind, ...) on the standby.
    Sql(&'static str, Row, Transport, usize),
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Pin {
    None,
    /// Client side on CPU 0, primary on CPU 1.
    Split,
    /// Everything on CPU 0.
    Same,
}

struct Config {
    pin: Pin,
    rounds: usize,
    scale: f64,
    connects: usize,
    transports: Vec<Transport>,
    payloads: Vec<usize>,
}

impl Config {
    fn from_env() -> Config {
        let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        let num = |name: &str, default: f64| -> f64 {
            std::env::var(name)
                .ok()
                .map(|v| {
                    v.parse()
                        .unwrap_or_else(|_| panic!("{name}: expected a number, got {v:?}"))
                })
                .unwrap_or(default)
        };
        let transports = std::env::var("BENCH_TRANSPORTS")
            .unwrap_or_else(|_| "unix tcp tls".into())
            .split_whitespace()
            .map(|t| match t {
                "unix" => Transport::Unix,
                "tcp" => Transport::Tcp,
                "tls" => Transport::Tls,
                other => panic!("BENCH_TRANSPORTS: unknown transport {other:?}"),
            })
            .collect();
        let payloads = std::env::var("BENCH_PAYLOADS")
            .unwrap_or_else(|_| "16 1024 65536 1048576".into())
            .split_whitespace()
            .map(|p| {
                p.parse()
                    .ok()
                    .filter(|&p| p >= 5)
                    .unwrap_or_else(|| panic!("BENCH_PAYLOADS: {p:?} is not a size >= 5"))
            })
            .collect();
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let pin = match std::env::var("BENCH_PIN").as_deref() {
            Ok("none") => Pin::None,
            Ok("same") => Pin::Same,
            Ok("split") => Pin::Split,
            Ok(other) => panic!("BENCH_PIN: expected split, same or none, got {other:?}"),
            Err(_) if cpus >= 2 => Pin::Split,
            Err(_) => Pin::None,
        };
        Config {
            pin,
            rounds: num("BENCH_ROUNDS", if quick { 3.0 } else { 9.0 }).max(1.0) as usize,
            scale: num("BENCH_SCALE", if quick { 0.4 } else { 1.0 }),
            connects: if quick { 20 } else { 100 },
            transports,
            payloads,
        }
    }

    /// The CPU of the primary's processes, when pinned.
    fn server_cpu(&self) -> Option<usize> {
        match self.pin {
            Pin::None => None,
            Pin::Split => Some(1),
            Pin::Same => Some(0),
        }
    }

    /// Messages per measurement: about the same time for each payload.
    fn iterations(&self, payload: usize, depth: usize) -> usize {
        let base = match payload {
            0..=4096 => 2000,
            4097..=131072 => 500,
            _ => 100,
        };
        let n = ((base as f64 * self.scale) as usize).max(20);
        // Pipelined batches are cheap (about 1 us a message): 250 of them
        // (quick: 100) rather than 62, so that their p50 is not a handful
        // of batches' luck; the seed-shaped target sits near its bound.
        if depth > 1 { n.max(depth) * 8 } else { n }
    }
}

/// Depth of the pipelined rows, as in the issue.
const DEPTH: usize = 64;
/// Payload of the pipelined and seed-shaped rows.
const SMALL: usize = 16;

fn jobs(cfg: &Config) -> Vec<Job> {
    let mut jobs = Vec::new();
    for &t in &cfg.transports {
        for &p in &cfg.payloads {
            if t != Transport::Tls {
                jobs.push(Job::Raw(t, p));
            }
            jobs.push(Job::Libpq(t, p, 1));
            jobs.push(Job::Rust(t, p, 1));
            jobs.push(Job::Select(t, p, 1));
            jobs.push(Job::Backend("netbuf", Row::Backend, t, p, 1));
            jobs.push(Job::Backend("libpq", Row::BackendLibpq, t, p, 1));
            jobs.push(Job::Backend("select", Row::BackendSelect, t, p, 1));
        }
        // Strict 16 B rows are the pipelining targets' reference.
        if !cfg.payloads.contains(&SMALL) {
            jobs.push(Job::Rust(t, SMALL, 1));
            jobs.push(Job::Backend("netbuf", Row::Backend, t, SMALL, 1));
        }
        jobs.push(Job::Libpq(t, SMALL, DEPTH));
        jobs.push(Job::Rust(t, SMALL, DEPTH));
        jobs.push(Job::Select(t, SMALL, DEPTH));
        jobs.push(Job::Backend("netbuf", Row::Backend, t, SMALL, DEPTH));
        jobs.push(Job::Backend("libpq", Row::BackendLibpq, t, SMALL, DEPTH));
        jobs.push(Job::Backend("select", Row::BackendSelect, t, SMALL, DEPTH));
        jobs.push(Job::Backend(
            "netbuf_seed",
            Row::BackendSeed,
            t,
            SMALL,
            DEPTH,
        ));
        jobs.push(Job::Backend(
            "libpq_seed",
            Row::BackendLibpqSeed,
            t,
            SMALL,
            DEPTH,
        ));
        jobs.push(Job::ConnectC(t));
        jobs.push(Job::ConnectRust(t));
        jobs.push(Job::ConnectBackend("bare", Row::ConnectBackendBare, t));
        jobs.push(Job::ConnectBackend("netbuf", Row::ConnectBackend, t));
        // What the SQL API costs (issue 10), strict, from a standby backend.
        for p in [SMALL, 1024] {
            jobs.push(Job::Sql("netbuf", Row::SqlRequest, t, p));
            jobs.push(Job::Sql("transaction", Row::SqlTransaction, t, p));
            jobs.push(Job::Sql("handler", Row::SqlHandler, t, p));
            jobs.push(Job::Sql("dblink", Row::SqlDblink, t, p));
        }
    }
    jobs
}

// ---- servers, certificates, clean-up ----------------------------------------

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

fn pair_options() -> PairOptions {
    let mut primary_conf = certificates().server_conf();
    // As a primary that opens channels often should run: without it each
    // serving backend loads libnetbuf (and the libpq, libssl and Kerberos
    // it links) at its CALL, a quarter of a bare connection's time or
    // more on this VM (docs/benchmarks.md, Method).
    // netbuf_bench registers op 'T' (a C handler that needs a transaction,
    // row (f'')) in its _PG_init.
    primary_conf.push("shared_preload_libraries = 'libnetbuf,netbuf_bench'".into());
    PairOptions {
        primary_conf,
        setup_sql: vec![
            "CREATE EXTENSION netbuf".into(),
            "CREATE EXTENSION netbuf_bench".into(),
            // The SQL-path rows: dblink's baseline, and an op answered by a
            // SQL function (its own transaction per request).
            "CREATE EXTENSION dblink".into(),
            "SELECT netbuf.register_op('H', 'netbuf_bench.echo_sql(bytea)')".into(),
        ],
        ..PairOptions::default()
    }
}

/// The time now, UTC, in `date`'s `format`.
fn date(format: &str) -> String {
    let mut date = Command::new("date");
    date.args(["-u", format]);
    run_checked(date, "date").trim().to_owned()
}

/// Pin a process to one CPU (0: the calling thread).
fn pin(pid: i32, cpu: usize) {
    // SAFETY: cpu_set_t is plain data; zeroed is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: set is a valid cpu_set_t and cpu < CPU_SETSIZE is checked by
    // the macro's implementation (it ignores larger values).
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: set is a valid cpu_set_t of the size passed.
    if unsafe { libc::sched_setaffinity(pid, std::mem::size_of_val(&set), &set) } != 0 {
        let e = std::io::Error::last_os_error();
        // A process that has just exited is not an error.
        if e.raw_os_error() != Some(libc::ESRCH) {
            panic!("pinning pid {pid} to CPU {cpu}: {e} (BENCH_PIN=none to skip pinning)");
        }
    }
}

/// Pin a postmaster and every process below it (backends fork from it,
/// so new ones inherit the CPU).
fn pin_server(node: &Node, cpu: usize) {
    let root: i32 = node
        .postmaster_pid()
        .trim()
        .parse()
        .expect("postmaster pid");
    let mut parents: Vec<(i32, i32)> = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        // The ppid is the second field after the parenthesised command.
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse().ok());
        if let Some(ppid) = ppid {
            parents.push((pid, ppid));
        }
    }
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    for pid in tree {
        pin(pid, cpu);
    }
}

fn root_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

struct Bench<'a> {
    pair: &'a Pair,
    certs: &'static Certs,
    cfg: Config,
    counter: u64,
}

impl Bench<'_> {
    /// The primary, as a client program and a standby backend reach it.
    fn conninfo(&self, t: Transport) -> String {
        let p = &self.pair.primary;
        let base = format!(
            "port={} user=postgres dbname=postgres connect_timeout=10",
            p.port
        );
        match t {
            Transport::Unix => format!("host={} {base}", self.pair.dir().display()),
            Transport::Tcp => {
                format!("host=127.0.0.1 {base} sslmode=disable gssencmode=disable")
            }
            Transport::Tls => format!(
                "host=127.0.0.1 {base} sslmode=verify-full sslrootcert={} gssencmode=disable",
                self.certs.ca.display()
            ),
        }
    }

    fn run(&mut self, job: &Job) -> Vec<(Cell, Sample)> {
        let cell = |row, transport, payload, depth| Cell {
            transport,
            payload,
            depth,
            row,
        };
        match *job {
            Job::Raw(t, p) => {
                let n = self.cfg.iterations(p, 1).to_string();
                let (p_text, cpu) = (p.to_string(), self.cfg.server_cpu().map(|c| c.to_string()));
                let mut args = vec![
                    "--transport",
                    t.name(),
                    "--payload",
                    &p_text,
                    "--iterations",
                    &n,
                ];
                // The echo child runs where the primary runs (the parent,
                // like every client, where this driver runs): the floor is
                // then the same kind of round trip as every other row.
                if let Some(cpu) = &cpu {
                    args.extend(["--child-cpu", cpu.as_str()]);
                }
                let out = self.c_program("raw_pingpong", &args);
                vec![(cell(Row::Raw, t, p, 1), parse_json(&out[0]))]
            }
            Job::Libpq(t, p, d) | Job::Select(t, p, d) => {
                let (program, row) = match job {
                    Job::Libpq(..) => ("libpq_echo", Row::Libpq),
                    _ => ("libpq_select", Row::Select),
                };
                let args = [
                    "--conninfo".to_string(),
                    self.conninfo(t),
                    "--payload".into(),
                    p.to_string(),
                    "--depth".into(),
                    d.to_string(),
                    "--iterations".into(),
                    self.cfg.iterations(p, d).to_string(),
                ];
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let out = self.c_program(program, &args);
                vec![(cell(row, t, p, d), parse_json(&out[0]))]
            }
            Job::Rust(t, p, d) => {
                let sample = self.rust_echo(t, p, d);
                vec![(cell(Row::Rust, t, p, d), sample)]
            }
            Job::Backend(kind, row, t, p, d) => {
                let sql = format!(
                    "SELECT lat_us, wall_us, server_cpu_us FROM netbuf_bench.run('{kind}', {}, {p}, {}, {d})",
                    sql_literal(&self.conninfo(t)),
                    self.cfg.iterations(p, d)
                );
                let out = self.standby_sql(&sql);
                let mut fields = out.split('|');
                let mut lat = parse_array(fields.next().unwrap_or(""));
                let wall_us: f64 = parse_field(fields.next());
                let cpu_us: Option<f64> = fields.next().and_then(|v| v.trim().parse().ok());
                let msgs = (lat.len() * d) as f64;
                let mut sample = summarize(&mut lat);
                sample.msgs_per_s = msgs / (wall_us / 1e6);
                sample.cpu_us = cpu_us.map(|c| c / msgs);
                vec![(cell(row, t, p, d), sample)]
            }
            Job::ConnectC(t) => {
                let n = self.cfg.connects.to_string();
                let ci = self.conninfo(t);
                let out = self.c_program(
                    "libpq_echo",
                    &["--conninfo", &ci, "--payload", "16", "--connect-only", &n],
                );
                out.iter()
                    .map(|line| {
                        let row = if line.contains("\"connect_bare\"") {
                            Row::ConnectBare
                        } else {
                            Row::ConnectLibpqChannel
                        };
                        (cell(row, t, 0, 0), parse_json(line))
                    })
                    .collect()
            }
            Job::ConnectRust(t) => {
                let ci = self.conninfo(t);
                let mut lat = Vec::with_capacity(self.cfg.connects);
                for i in 0..self.cfg.connects + 3 {
                    let t0 = Instant::now();
                    let client = Client::connect(&ci).unwrap_or_else(|e| panic!("connect: {e}"));
                    client.close();
                    if i >= 3 {
                        lat.push(t0.elapsed().as_secs_f64() * 1e6);
                    }
                }
                let mut sample = summarize(&mut lat);
                sample.msgs_per_s = 1e6 / sample.p50;
                vec![(cell(Row::ConnectRust, t, 0, 0), sample)]
            }
            Job::Sql(kind, row, t, p) => {
                let sql = format!(
                    "SELECT netbuf_bench.sql_path('{kind}', {}, {p}, {})",
                    sql_literal(&self.conninfo(t)),
                    self.cfg.iterations(p, 1) / 2
                );
                let mut lat = parse_array(&self.standby_sql(&sql));
                let mut sample = summarize(&mut lat);
                sample.msgs_per_s = 1e6 / sample.p50;
                vec![(cell(row, t, p, 1), sample)]
            }
            Job::ConnectBackend(kind, row, t) => {
                let sql = format!(
                    "SELECT netbuf_bench.connect('{kind}', {}, {})",
                    sql_literal(&self.conninfo(t)),
                    self.cfg.connects
                );
                let mut lat = parse_array(&self.standby_sql(&sql));
                let mut sample = summarize(&mut lat);
                sample.msgs_per_s = 1e6 / sample.p50;
                vec![(cell(row, t, 0, 0), sample)]
            }
        }
    }

    fn c_program(&self, name: &str, args: &[&str]) -> Vec<String> {
        let path = root_dir().join("bench/c").join(name);
        let mut program = Command::new(&path);
        program.args(args);
        let out = run_checked(program, &format!("{name} {args:?}"));
        let lines: Vec<String> = out
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(str::to_owned)
            .collect();
        assert!(!lines.is_empty(), "{name} printed no result");
        lines
    }

    fn standby_sql(&self, sql: &str) -> String {
        psql(&self.pair.standby.conninfo(), &[sql]).unwrap_or_else(|e| {
            panic!(
                "on the standby: {sql}\n{e}\n{}",
                self.pair.standby.log_tail()
            )
        })
    }

    /// Row (c): echoes through netbuf::Client, depth at a time; counts the
    /// Rust allocations of the timed loop.
    fn rust_echo(&mut self, t: Transport, payload: usize, depth: usize) -> Sample {
        self.counter += 1;
        let app = format!("netbuf_bench_c_{}_{}", std::process::id(), self.counter);
        let conninfo = format!("{} application_name={app}", self.conninfo(t));
        let mut client = Client::connect(&conninfo).unwrap_or_else(|e| panic!("connect: {e}"));
        let pid = serving_backend(&self.pair.primary, &app);

        let iterations = self.cfg.iterations(payload, depth);
        let batches = iterations.div_ceil(depth);
        let warm = 200usize.div_ceil(depth);
        let mut msg = vec![b'x'; payload];
        msg[0] = b'E';
        let mut lat = Vec::with_capacity(batches);
        let (mut start, mut cpu0, mut allocs0) = (Instant::now(), None, 0);
        for b in 0..warm + batches {
            if b == warm {
                cpu0 = cpu_ns_of(pid);
                allocs0 = ALLOCATIONS.load(Ordering::Relaxed);
                start = Instant::now();
            }
            let t0 = Instant::now();
            let seq0 = (b * depth) as u32;
            for i in 0..depth {
                msg[1..5].copy_from_slice(&(seq0 + i as u32).to_be_bytes());
                client.queue(&msg).unwrap_or_else(|e| panic!("queue: {e}"));
            }
            client.flush().unwrap_or_else(|e| panic!("flush: {e}"));
            for i in 0..depth {
                let reply = client
                    .recv()
                    .unwrap_or_else(|e| panic!("recv: {e}"))
                    .expect("a reply, not the end of the stream");
                let expected = (seq0 + i as u32).to_be_bytes();
                assert!(
                    reply.len() == payload && reply[1..5] == expected,
                    "reply out of order"
                );
            }
            if b >= warm {
                lat.push(t0.elapsed().as_secs_f64() * 1e6 / depth as f64);
            }
        }
        let wall = start.elapsed().as_secs_f64();
        let allocs = ALLOCATIONS.load(Ordering::Relaxed) - allocs0;
        let cpu1 = cpu_ns_of(pid);
        client.close();

        let msgs = (batches * depth) as f64;
        let mut sample = summarize(&mut lat);
        sample.msgs_per_s = msgs / wall;
        sample.cpu_us = cpu0.zip(cpu1).map(|(a, b)| (b - a) as f64 / 1e3 / msgs);
        sample.allocs = Some(allocs as f64 / msgs);
        sample
    }
}

// ---- parsing and statistics -------------------------------------------------

fn parse_field(v: Option<&str>) -> f64 {
    let v = v.unwrap_or("").trim();
    v.parse()
        .unwrap_or_else(|_| panic!("expected a number, got {v:?}"))
}

fn parse_array(text: &str) -> Vec<f64> {
    text.trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .split(',')
        .map(|v| parse_field(Some(v)))
        .collect()
}

/// A number from one of bench/c's JSON lines; None for null or absent.
fn json_number(line: &str, key: &str) -> Option<f64> {
    let at = line.find(&format!("\"{key}\": "))? + key.len() + 4;
    let rest = &line[at..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end].trim().parse().ok()
}

fn parse_json(line: &str) -> Sample {
    let need = |key| json_number(line, key).unwrap_or_else(|| panic!("no {key} in {line}"));
    Sample {
        p50: need("p50_us"),
        p99: need("p99_us"),
        msgs_per_s: need("msgs_per_s"),
        cpu_us: json_number(line, "server_cpu_us_per_msg"),
        allocs: None,
    }
}

/// p50 and p99 (nearest rank, as bench/c/common.h) of latencies in us.
fn summarize(us: &mut [f64]) -> Sample {
    assert!(!us.is_empty(), "no samples");
    us.sort_by(f64::total_cmp);
    let rank = |pct: usize| us[(us.len() * pct).div_ceil(100).max(1) - 1];
    Sample {
        p50: rank(50),
        p99: rank(99),
        ..Sample::default()
    }
}

fn cpu_ns_of(pid: i32) -> Option<i64> {
    std::fs::read_to_string(format!("/proc/{pid}/schedstat"))
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The medians over rounds of one cell, and the spread of its p50s.
#[derive(Clone, Debug)]
struct Agg {
    p50: f64,
    p99: f64,
    msgs_per_s: f64,
    cpu_us: Option<f64>,
    allocs: Option<f64>,
    spread: f64,
}

fn aggregate(samples: &[Sample]) -> Agg {
    let p50s: Vec<f64> = samples.iter().map(|s| s.p50).collect();
    let p50 = median(p50s.clone());
    let lo = p50s.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = p50s.iter().copied().fold(0.0, f64::max);
    let opt = |f: fn(&Sample) -> Option<f64>| {
        let v: Vec<f64> = samples.iter().filter_map(f).collect();
        (!v.is_empty()).then(|| median(v))
    };
    Agg {
        p50,
        p99: median(samples.iter().map(|s| s.p99).collect()),
        msgs_per_s: median(samples.iter().map(|s| s.msgs_per_s).collect()),
        cpu_us: opt(|s| s.cpu_us),
        // The worst round: one allocation anywhere is one too many.
        allocs: samples
            .iter()
            .filter_map(|s| s.allocs)
            .fold(None, |m: Option<f64>, a| Some(m.map_or(a, |m| m.max(a)))),
        spread: if p50 > 0.0 {
            (hi - lo) / p50 * 100.0
        } else {
            0.0
        },
    }
}

// ---- the report -------------------------------------------------------------

struct Report {
    results: BTreeMap<Cell, Agg>,
    /// Every cell's samples, one per round, in round order.
    samples: BTreeMap<Cell, Vec<Sample>>,
    text: String,
    targets: Vec<Target>,
    /// The same ratios for the baselines: what no client could beat.
    notes: Vec<String>,
}

fn fmt_bytes(n: usize) -> String {
    match n {
        0 => "-".into(),
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1024 && n % 1024 == 0 => format!("{} KiB", n >> 10),
        n => format!("{n} B"),
    }
}

fn fmt_ratio(r: Option<f64>) -> String {
    r.map_or("-".into(), |r| format!("{r:.2}"))
}

impl Report {
    fn get(&self, row: Row, transport: Transport, payload: usize, depth: usize) -> Option<&Agg> {
        self.results.get(&Cell {
            transport,
            payload,
            depth,
            row,
        })
    }

    /// x(b) and x(a) of a cell: its p50 over its baseline's and over the
    /// raw socket's (TCP's for TLS), as medians over rounds.
    fn ratios(&self, cell: &Cell) -> (Option<f64>, Option<f64>) {
        let Some(a) = self.results.get(cell) else {
            return (None, None);
        };
        let base = self
            .get(cell.row.base(), cell.transport, cell.payload, cell.depth)
            .map(|b| a.p50 / b.p50);
        let raw_transport = match cell.transport {
            Transport::Tls => Transport::Tcp,
            t => t,
        };
        let raw = (cell.depth == 1)
            .then(|| self.get(Row::Raw, raw_transport, cell.payload, 1))
            .flatten()
            .map(|r| a.p50 / r.p50);
        (base, raw)
    }

    fn line(&mut self, cell: &Cell) {
        let Some(a) = self.results.get(cell) else {
            return;
        };
        let (base, raw) = self.ratios(cell);
        let mb = if cell.payload > 0 {
            format!("{:.1}", a.msgs_per_s * cell.payload as f64 / 1e6)
        } else {
            "-".into()
        };
        let extra = match (a.cpu_us, a.allocs) {
            (Some(c), Some(n)) => format!("{c:>8.2} {n:>6.2}"),
            (Some(c), None) => format!("{c:>8.2} {:>6}", ""),
            (None, _) => format!("{:>8} {:>6}", "-", ""),
        };
        let _ = writeln!(
            self.text,
            "{:<26} {:<4} {:>7} {:>3} {:>9.1} {:>9.1} {:>10.0} {:>8} {:>6} {:>6} {:>5.0}% {}",
            cell.row.label(),
            cell.transport.name(),
            fmt_bytes(cell.payload),
            if cell.depth == 0 {
                "-".into()
            } else {
                cell.depth.to_string()
            },
            a.p50,
            a.p99,
            a.msgs_per_s,
            mb,
            fmt_ratio(base),
            fmt_ratio(raw),
            a.spread,
            extra
        );
    }

    fn header(&mut self, title: &str) {
        let _ = writeln!(
            self.text,
            "\n{title}\n{:<26} {:<4} {:>7} {:>3} {:>9} {:>9} {:>10} {:>8} {:>6} {:>6} {:>6} {:>8} {:>6}",
            "row",
            "via",
            "payload",
            "dep",
            "p50 us",
            "p99 us",
            "msgs/s",
            "MB/s",
            "x(b)",
            "x(a)",
            "spread",
            "srv us",
            "allocs"
        );
    }

    fn tables(&mut self) {
        let cells: Vec<Cell> = self.results.keys().copied().collect();
        self.header("Strict request/reply (one message in flight)");
        for c in cells
            .iter()
            .filter(|c| c.depth == 1 && !c.row.is_sql_path())
        {
            self.line(c);
        }
        self.header(&format!(
            "Pipelining: {DEPTH} requests of {SMALL} B in flight (latency = batch time / {DEPTH})"
        ));
        for c in cells.iter().filter(|c| c.depth == DEPTH) {
            self.line(c);
        }
        self.header("Connection set-up (msgs/s = connections/s at the p50)");
        for c in cells.iter().filter(|c| c.depth == 0) {
            self.line(c);
        }
        self.header(
            "From SQL on the standby: a PL/pgSQL loop, one call per request (x(b) = over (g) dblink)",
        );
        for c in cells.iter().filter(|c| c.row.is_sql_path()) {
            self.line(c);
        }
    }

    /// The ratio x/y of one figure of two cells, round by round: the rows
    /// of one round ran minutes apart at most, so a machine that changes
    /// speed between rounds moves both alike.  None if a cell was not
    /// measured (left out by BENCH_PAYLOADS / BENCH_TRANSPORTS).
    fn paired(&self, x: Cell, y: Cell, f: fn(&Sample) -> Option<f64>) -> Option<Ratio> {
        let (xs, ys) = (self.samples.get(&x)?, self.samples.get(&y)?);
        let rs: Vec<f64> = xs
            .iter()
            .zip(ys)
            .filter_map(|(a, b)| Some(f(a)? / f(b)?))
            .filter(|r| r.is_finite())
            .collect();
        if rs.is_empty() {
            return None;
        }
        Some(Ratio {
            median: median(rs.clone()),
            lo: rs.iter().copied().fold(f64::INFINITY, f64::min),
            hi: rs.iter().copied().fold(0.0, f64::max),
        })
    }

    /// Checks a paired ratio against a bound.
    fn check(&mut self, name: &str, r: Option<Ratio>, at_most: bool, bound: f64, what: &str) {
        match r {
            Some(r) => {
                let ok = if at_most {
                    r.median <= bound
                } else {
                    r.median >= bound
                };
                self.targets.push(Target {
                    ok,
                    name: name.into(),
                    what: what.into(),
                    ratio: r,
                    at_most,
                    bound,
                });
            }
            None => self
                .notes
                .push(format!("{name}: {what}: not measured, not checked")),
        }
    }

    fn note(&mut self, what: &str, r: Option<Ratio>) {
        if let Some(r) = r {
            self.notes.push(format!(
                "{what} = {:.2} (rounds {:.2}-{:.2})",
                r.median, r.lo, r.hi
            ));
        }
    }

    fn targets(&mut self, cfg: &Config) {
        let p50 = |s: &Sample| Some(s.p50);
        let cpu = |s: &Sample| s.cpu_us;
        let rate = |s: &Sample| Some(s.msgs_per_s);
        for &t in &cfg.transports {
            let tn = t.name();
            let at = |row, payload, depth| Cell {
                transport: t,
                payload,
                depth,
                row,
            };
            let raw = |payload| Cell {
                transport: if t == Transport::Tls {
                    Transport::Tcp
                } else {
                    t
                },
                ..at(Row::Raw, payload, 1)
            };
            for p in [SMALL, 1024] {
                let pb = fmt_bytes(p);
                let c = self.paired(at(Row::Rust, p, 1), at(Row::Libpq, p, 1), p50);
                self.check("overhead", c, true, 1.05, &format!("{tn} {pb} p50 (c)/(b)"));
                let d = self.paired(at(Row::Backend, p, 1), at(Row::BackendLibpq, p, 1), p50);
                self.check(
                    "overhead",
                    d,
                    true,
                    1.05,
                    &format!("{tn} {pb} p50 (d)/(b')"),
                );
            }
            let e = self.paired(at(Row::Select, SMALL, 1), at(Row::Rust, SMALL, 1), p50);
            self.check(
                "vs SELECT",
                e,
                false,
                1.1,
                &format!("{tn} 16 B p50 (e)/(c)"),
            );
            let e = self.paired(
                at(Row::BackendSelect, SMALL, 1),
                at(Row::Backend, SMALL, 1),
                p50,
            );
            self.check(
                "vs SELECT",
                e,
                false,
                1.1,
                &format!("{tn} 16 B p50 (e')/(d)"),
            );
            // The floor: the raw socket, its echo child pinned as the
            // primary is.  TLS rows have no raw row of their own (TCP's
            // would count the cipher against netbuf): noted, not checked.
            let floor_cpu = self.paired(at(Row::Rust, SMALL, 1), raw(SMALL), cpu);
            let floor_rt = self.paired(at(Row::Backend, SMALL, 1), raw(SMALL), p50);
            if t == Transport::Tls {
                self.note(
                    "tls 16 B serving backend CPU/msg (c) / raw echo child's over TCP",
                    floor_cpu,
                );
                self.note("tls 16 B p50 (d) / raw socket's over TCP", floor_rt);
            } else {
                self.check(
                    "floor",
                    floor_cpu,
                    true,
                    1.15,
                    &format!("{tn} 16 B serving backend CPU/msg (c) / raw echo child's"),
                );
                self.check(
                    "floor",
                    floor_rt,
                    true,
                    1.25,
                    &format!("{tn} 16 B p50 (d) standby backend / raw socket"),
                );
            }
            let v = self.paired(
                at(Row::Select, SMALL, DEPTH),
                at(Row::Rust, SMALL, DEPTH),
                cpu,
            );
            self.check(
                "vs SELECT",
                v,
                false,
                5.0,
                &format!("{tn} depth 64 serving backend CPU/msg (e) pipeline mode / (c)"),
            );
            let v = self.paired(
                at(Row::BackendSelect, SMALL, 1),
                at(Row::BackendLibpq, SMALL, 1),
                p50,
            );
            self.note(&format!("{tn} 16 B p50 (e')/(b')"), v);
            let v = self.paired(at(Row::Select, SMALL, 1), at(Row::Rust, SMALL, 1), cpu);
            self.note(&format!("{tn} 16 B serving backend CPU/msg (e)/(c)"), v);
            let v = self.paired(at(Row::Libpq, SMALL, 1), raw(SMALL), cpu);
            self.note(
                &format!("{tn} 16 B serving backend CPU/msg (b) / raw echo child's"),
                v,
            );
            let v = self.paired(at(Row::BackendLibpq, SMALL, 1), raw(SMALL), p50);
            self.note(&format!("{tn} 16 B p50 (b') / raw socket"), v);
            if t != Transport::Tls {
                let mib = 1 << 20;
                for row in [Row::Rust, Row::Backend] {
                    let v = self.paired(at(row, mib, 1), raw(mib), rate);
                    let w = format!("{tn} 1 MiB MB/s {}/(a)", &row.label()[..3]);
                    self.check("bulk", v, false, 0.5, &w);
                }
                let v = self.paired(at(Row::Libpq, mib, 1), raw(mib), rate);
                self.note(&format!("{tn} 1 MiB MB/s (b)/(a)"), v);
            }
            let c = self.paired(at(Row::ConnectRust, 0, 0), at(Row::ConnectBare, 0, 0), p50);
            self.check(
                "connect",
                c,
                true,
                1.1,
                &format!("{tn} p50 (c) Client::connect/bare"),
            );
            let d = self.paired(
                at(Row::ConnectBackend, 0, 0),
                at(Row::ConnectBackendBare, 0, 0),
                p50,
            );
            self.check(
                "connect",
                d,
                true,
                1.1,
                &format!("{tn} p50 (d) netbuf_connect/bare"),
            );
            let v = self.paired(
                at(Row::ConnectLibpqChannel, 0, 0),
                at(Row::ConnectBare, 0, 0),
                p50,
            );
            self.note(&format!("{tn} p50 (b) hand-written channel/bare"), v);
            for (row, select) in [(Row::Rust, Row::Select), (Row::Backend, Row::BackendSelect)] {
                let l = &row.label()[..3];
                let v = self.paired(at(row, SMALL, DEPTH), at(row, SMALL, 1), rate);
                self.check(
                    "pipelining",
                    v,
                    false,
                    20.0,
                    &format!("{tn} msgs/s {l} depth 64/strict"),
                );
                let sl = &select.label()[..4].trim_end();
                let v = self.paired(at(row, SMALL, DEPTH), at(select, SMALL, DEPTH), rate);
                self.check(
                    "pipelining",
                    v,
                    false,
                    2.0,
                    &format!("{tn} msgs/s depth 64 {l}/{sl}"),
                );
            }
            let v = self.paired(
                at(Row::BackendSeed, SMALL, DEPTH),
                at(Row::BackendLibpqSeed, SMALL, DEPTH),
                p50,
            );
            self.check(
                "seed-shaped",
                v,
                true,
                1.05,
                &format!("{tn} p50 64 x netbuf_send, 64 x netbuf_recv / hand-written"),
            );
        }
        let worst = self
            .results
            .iter()
            .filter(|(c, _)| c.row == Row::Rust)
            .filter_map(|(_, a)| a.allocs)
            .fold(None, |m: Option<f64>, a| Some(m.map_or(a, |m| m.max(a))));
        let ratio = |n| Ratio {
            median: n,
            lo: n,
            hi: n,
        };
        match worst {
            Some(n) => self.targets.push(Target {
                ok: n == 0.0,
                name: "no allocation".into(),
                what: "Rust allocations per echoed message in (c), worst cell".into(),
                ratio: ratio(n),
                at_most: true,
                bound: 0.0,
            }),
            None => self.targets.push(Target {
                ok: false,
                name: "no allocation".into(),
                what: "(c) not measured".into(),
                ratio: ratio(f64::NAN),
                at_most: true,
                bound: 0.0,
            }),
        }
    }

    /// The machine-readable twin of the table: one line per cell
    /// (section strict, pipelined or connect) and per target (section
    /// target).  Columns in docs/benchmarks.md.
    fn csv(&self) -> String {
        let mut out = String::from(
            "section,transport,row,payload_bytes,p50_us,depth,p99_us,msgs_per_s,mb_per_s,\
             x_b,x_a,spread_pct,server_cpu_us,allocs,rounds,target,value,value_min,value_max,\
             bound,pass\n",
        );
        let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.3}"));
        for (cell, a) in &self.results {
            let section = match cell.depth {
                0 => "connect",
                1 => "strict",
                _ => "pipelined",
            };
            let (base, raw) = self.ratios(cell);
            let _ = writeln!(
                out,
                "{section},{},{},{},{:.3},{},{:.3},{:.1},{},{},{},{:.1},{},{},{},,,,,,",
                cell.transport.name(),
                csv_text(cell.row.label()),
                if cell.payload > 0 {
                    cell.payload.to_string()
                } else {
                    String::new()
                },
                a.p50,
                cell.depth,
                a.p99,
                a.msgs_per_s,
                if cell.payload > 0 {
                    format!("{:.3}", a.msgs_per_s * cell.payload as f64 / 1e6)
                } else {
                    String::new()
                },
                opt(base),
                opt(raw),
                a.spread,
                opt(a.cpu_us),
                opt(a.allocs),
                self.samples.get(cell).map_or(0, Vec::len),
            );
        }
        for t in &self.targets {
            let transport = t.what.split_whitespace().next().unwrap_or("");
            let transport = if ["unix", "tcp", "tls"].contains(&transport) {
                transport
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "target,{transport},,,,,,,,,,,,,,{},{:.4},{:.4},{:.4},{}{},{}",
                csv_text(&format!("{}: {}", t.name, t.what)),
                t.ratio.median,
                t.ratio.lo,
                t.ratio.hi,
                if t.at_most { "<=" } else { ">=" },
                t.bound,
                t.ok
            );
        }
        out
    }
}

/// A text field of the CSV: quoted, quotes doubled (RFC 4180).
fn csv_text(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

/// A ratio over rounds: its median, and the lowest and highest round.
#[derive(Clone, Copy, Debug)]
struct Ratio {
    median: f64,
    lo: f64,
    hi: f64,
}

struct Target {
    ok: bool,
    name: String,
    what: String,
    ratio: Ratio,
    at_most: bool,
    bound: f64,
}

impl Target {
    fn line(&self) -> String {
        let op = if self.at_most { "<=" } else { ">=" };
        let r = &self.ratio;
        let value = if self.name == "no allocation" {
            format!("{:.3}", r.median)
        } else {
            format!("{:.2} (rounds {:.2}-{:.2})", r.median, r.lo, r.hi)
        };
        format!(
            "{} {}: {} = {value} (need {op} {})",
            if self.ok { "PASS" } else { "FAIL" },
            self.name,
            self.what,
            self.bound
        )
    }
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("?")
        .trim()
        .to_string();
    // Not available_parallelism: this process is pinned to one CPU.
    let cpus = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cpus} x {model}, Linux {}", kernel.trim())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() -> ExitCode {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        // When interrupted, the watcher thread says so and exits.
        if !INTERRUPTED.load(Ordering::Relaxed) {
            eprintln!("\nnetbuf bench FAILED:");
            default_hook(info);
        }
    }));
    // SAFETY: the handler only stores to an atomic, which is signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    let cfg = Config::from_env();
    // Before any thread or child exists: they all inherit it.
    if cfg.pin != Pin::None {
        pin(0, 0);
    }
    // Ctrl-C: leave through exit(), so that the atexit handlers stop the
    // servers and remove the files, whatever the main thread is doing.
    std::thread::spawn(|| {
        loop {
            std::thread::sleep(Duration::from_millis(100));
            if INTERRUPTED.load(Ordering::Relaxed) {
                eprintln!("\nnetbuf bench: interrupted; stopping the servers");
                std::process::exit(130);
            }
        }
    });

    let started = Instant::now();
    let load_before = loadavg();
    // Before the pair: the certificates are removed at exit after it stops.
    let certs = certificates();
    eprintln!("netbuf bench: starting a throwaway primary (TLS on) and a streaming standby");
    let pair = shared_pair_with(pair_options);
    eprintln!(
        "netbuf bench: primary 127.0.0.1:{} (and {}), standby 127.0.0.1:{}",
        pair.primary.port,
        pair.dir().display(),
        pair.standby.port
    );
    if let Some(cpu) = cfg.server_cpu() {
        pin_server(&pair.standby, 0);
        pin_server(&pair.primary, cpu);
    }
    let mut bench = Bench {
        pair,
        certs,
        cfg,
        counter: 0,
    };

    let jobs = jobs(&bench.cfg);
    let mut samples: BTreeMap<Cell, Vec<Sample>> = BTreeMap::new();
    let rounds = bench.cfg.rounds;
    for round in 0..rounds {
        let t0 = Instant::now();
        // Rotate the start so that no row always runs first or last.
        let shift = round * jobs.len() / rounds;
        for (i, job) in jobs.iter().cycle().skip(shift).take(jobs.len()).enumerate() {
            eprint!(
                "\rnetbuf bench: round {}/{rounds}, {}/{} ",
                round + 1,
                i + 1,
                jobs.len()
            );
            for (cell, sample) in bench.run(job) {
                samples.entry(cell).or_default().push(sample);
            }
        }
        eprintln!(
            "\rnetbuf bench: round {}/{rounds} done in {:.0?}",
            round + 1,
            t0.elapsed()
        );
    }

    let mut report = Report {
        results: samples.iter().map(|(c, s)| (*c, aggregate(s))).collect(),
        samples,
        text: String::new(),
        targets: Vec::new(),
        notes: Vec::new(),
    };
    let _ = writeln!(
        report.text,
        "netbuf bench: {}\nmachine: {}\nload average before: {load_before}, after: {}\n\
         CPUs: {}\n\
         primary: shared_preload_libraries = 'libnetbuf,netbuf_bench' (op 'T' for row (f'')); channels secure search_path in the startup packet\n\
         {rounds} interleaved rounds; each figure is the median over rounds; spread = (max - min) / median of the rounds' p50\n\
         x(b) = p50 / p50 of the hand-written libpq row from the same kind of process ((b) for client programs, \
         (b') for standby backends, the bare connection for connection rows)\n\
         x(a) = p50 / p50 of the raw socket (TCP for TLS rows); srv us = serving backend CPU per message \
         (the raw socket's: its echo child's); \
         allocs = Rust allocations per message (row (c); libpq's own malloc is not counted)",
        date("+%Y-%m-%d %H:%M UTC"),
        machine(),
        loadavg(),
        match bench.cfg.pin {
            Pin::Split =>
                "client side (client programs, this driver, the standby) on CPU 0, primary and the raw socket's echo child on CPU 1",
            Pin::Same => "everything (the raw socket's echo child too) on CPU 0",
            Pin::None => "not pinned",
        }
    );
    report.tables();
    let cfg = &bench.cfg;
    report.targets(cfg);
    let failed = report.targets.iter().filter(|t| !t.ok).count();
    let _ = writeln!(
        report.text,
        "\nTargets (issues 4 and 12; each ratio is the median over rounds of the rounds' own ratios)"
    );
    let lines: Vec<String> = report.targets.iter().map(Target::line).collect();
    for line in lines {
        let _ = writeln!(report.text, "{line}");
    }
    let _ = writeln!(
        report.text,
        "\nThe same ratios for the hand-written baselines and the raw socket (not targets)"
    );
    for text in &report.notes {
        let _ = writeln!(report.text, "     {text}");
    }
    let _ = writeln!(
        report.text,
        "\n{} of {} targets met; run took {:.0?}",
        report.targets.len() - failed,
        report.targets.len(),
        started.elapsed()
    );

    print!("{}", report.text);
    let dir = root_dir().join("bench-results");
    let stamp = date("+%Y%m%d-%H%M%S");
    let file = dir.join(format!("bench-{stamp}.txt"));
    let csv = dir.join(format!("bench-{stamp}.csv"));
    std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(&file, &report.text))
        .and_then(|()| std::fs::write(&csv, report.csv()))
        .unwrap_or_else(|e| panic!("writing {}: {e}", file.display()));
    println!(
        "results written to {} (and {})",
        file.display(),
        csv.display()
    );

    // The servers are stopped by the harness's atexit handler.
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
