//! `make bench`, second part: how netbuf behaves as channels multiply.
//!
//! Starts a throwaway primary (max_connections = 300) and a streaming
//! standby with the test kit, pins them as examples/bench.rs does
//! (BENCH_PIN=split: this driver and the standby on CPU 0, the primary on
//! CPU 1), then measures over TCP loopback with 16 B echo requests:
//!
//! - channels: 1, 2, 4, ... 256 `netbuf::Client`s, one thread each, all
//!   sending at once for a timed window, in 3 rounds (medians); strict (one request in flight per
//!   channel) and depth 8 (8 queued, then their 8 replies); aggregate
//!   msgs/s, p50/p99 of the round trip (depth 8: of the batch), the
//!   serving backends' CPU per message.  The baseline: as many libpq
//!   connections running a prepared `SELECT $1::bytea` (depth 8: pipeline
//!   mode).  Target (issue 12): netbuf's aggregate msgs/s at 256 channels
//!   >= 80% of its peak over the counts, strict and depth 8 each;
//! - the floor for the same sweep: as many bare TCP sockets, each echoed by
//!   a process of its own on the primary's CPU (one process per channel, as
//!   PostgreSQL has, with nothing of PostgreSQL in the way); its ratio at
//!   256 channels to its peak is printed beside SELECT's (not targets);
//! - standby backends: 1, 2, 4, ... 64 psql sessions on the standby, each
//!   running `netbuf_bench.run('netbuf', ...)` (a loop through netbuf.h,
//!   bench/pg_module; strict and depth 8), started together; aggregate
//!   msgs/s;
//! - memory per idle channel: PSS (/proc/PID/smaps_rollup) of idle serving
//!   backends against idle libpq connections' backends after the same
//!   warm-up (1000 round trips each); target: <= idle connection + 256 kB;
//! - connect storm: 100 threads open a channel (or a libpq connection) at
//!   once and send one request; time until all have their reply.
//!
//! Prints the tables and PASS/FAIL per target, writes
//! bench-results/scaling-<UTC time>.txt and .csv (for bench/report's plots);
//! exits 1 if a target is not met.
//!
//! Environment: BENCH_QUICK=1 (one round of 0.5 s), SCALE_ROUNDS (passes
//! over the channel counts, default 3; figures are medians),
//! SCALE_WINDOW_MS (per point and round, default 800), SCALE_CHANNELS
//! ("1 2 4 8 16 32 64 128 256"), SCALE_STANDBY ("1 2 4 8 16 32 64"),
//! SCALE_STORM (100), SCALE_KINDS (sweeps to run: "netbuf select raw
//! standby"), BENCH_PIN.

use std::ffi::{CStr, CString, c_char, c_int};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use netbuf::Client;
use netbuf_testkit::cpu::{cpu_ns, pin, pin_server};
use netbuf_testkit::{Pair, PairOptions, psql_command, run_checked, shared_pair_with, sql_literal};
use pq_sys as pq;

/// The payload of every request (op code 'E', a sequence number, filler).
const PAYLOAD: usize = 16;
/// Requests in flight per channel in the pipelined mode.
const DEPTH: usize = 8;
/// Room for 256 channels, the storm, the driver's psql and the standby.
const MAX_CONNECTIONS: usize = 300;
/// Round trips on each channel before its memory is read.
const WARM_UP: usize = 1000;
/// Channels (and connections) whose memory is read.
const MEMORY_SAMPLES: usize = 16;
/// Application name of the driver's channels, to find their backends.
const TAG: &str = "netbuf_scale";

// ---- configuration ----------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Pin {
    None,
    Split,
    Same,
}

struct Config {
    pin: Pin,
    window: Duration,
    /// Passes over the channel counts; figures are medians over them.
    rounds: usize,
    channels: Vec<usize>,
    standby: Vec<usize>,
    storm: usize,
    /// Sweeps to run (SCALE_KINDS): netbuf, select, raw, standby.
    kinds: Vec<String>,
}

fn counts(var: &str, default: &str, max: usize) -> Vec<usize> {
    std::env::var(var)
        .unwrap_or_else(|_| default.into())
        .split_whitespace()
        .map(|c| {
            c.parse()
                .ok()
                .filter(|&c| (1..=max).contains(&c))
                .unwrap_or_else(|| panic!("{var}: {c:?} is not a count from 1 to {max}"))
        })
        .collect()
}

impl Config {
    fn from_env() -> Config {
        let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let pin = match std::env::var("BENCH_PIN").as_deref() {
            Ok("none") => Pin::None,
            Ok("same") => Pin::Same,
            Ok("split") => Pin::Split,
            Ok(other) => panic!("BENCH_PIN: expected split, same or none, got {other:?}"),
            Err(_) if cpus >= 2 => Pin::Split,
            Err(_) => Pin::None,
        };
        let window_ms: u64 = std::env::var("SCALE_WINDOW_MS")
            .ok()
            .map(|v| {
                v.parse()
                    .unwrap_or_else(|_| panic!("SCALE_WINDOW_MS: expected ms, got {v:?}"))
            })
            .unwrap_or(if quick { 500 } else { 800 });
        let rounds: usize = std::env::var("SCALE_ROUNDS")
            .ok()
            .map(|v| {
                v.parse()
                    .ok()
                    .filter(|&r| r >= 1)
                    .unwrap_or_else(|| panic!("SCALE_ROUNDS: {v:?} is not a count >= 1"))
            })
            .unwrap_or(if quick { 1 } else { 3 });
        let storm = std::env::var("SCALE_STORM")
            .ok()
            .map(|v| {
                v.parse()
                    .ok()
                    .filter(|&n| (1..=256).contains(&n))
                    .unwrap_or_else(|| panic!("SCALE_STORM: {v:?} is not a count from 1 to 256"))
            })
            .unwrap_or(100);
        Config {
            pin,
            window: Duration::from_millis(window_ms.max(100)),
            rounds,
            channels: counts("SCALE_CHANNELS", "1 2 4 8 16 32 64 128 256", 256),
            standby: counts("SCALE_STANDBY", "1 2 4 8 16 32 64", 64),
            storm,
            kinds: std::env::var("SCALE_KINDS")
                .unwrap_or_else(|_| "netbuf select raw standby".into())
                .split_whitespace()
                .map(|k| match k {
                    "netbuf" | "select" | "raw" | "standby" => k.to_owned(),
                    _ => panic!("SCALE_KINDS: {k:?} is not one of netbuf select raw standby"),
                })
                .collect(),
        }
    }

    /// Whether SCALE_KINDS asks for this sweep.
    fn wants(&self, kind: &str) -> bool {
        self.kinds.iter().any(|k| k == kind)
    }

    fn server_cpu(&self) -> Option<usize> {
        match self.pin {
            Pin::None => None,
            Pin::Split => Some(1),
            Pin::Same => Some(0),
        }
    }
}

// ---- one point of a sweep ---------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// netbuf::Client from this process.
    Netbuf,
    /// Prepared SELECT $1::bytea over libpq from this process.
    Select,
    /// netbuf.h in standby backends (netbuf_bench.run).
    Backend,
    /// The floor: a bare TCP socket per channel, echoed by a process of
    /// its own on the primary's CPU (one process per channel, as
    /// PostgreSQL has), with nothing of PostgreSQL in the way.
    Raw,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Netbuf => "netbuf",
            Kind::Select => "select",
            Kind::Backend => "netbuf_backend",
            Kind::Raw => "raw",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Kind::Netbuf => "netbuf Rust clients",
            Kind::Select => "libpq SELECT $1",
            Kind::Backend => "netbuf standby backends",
            Kind::Raw => "raw socket, process each",
        }
    }
}

#[derive(Clone, Debug)]
struct Point {
    kind: Kind,
    depth: usize,
    channels: usize,
    msgs_per_s: f64,
    p50: f64,
    p99: f64,
    /// CPU time of the serving backends per message, us.
    server_cpu_us: Option<f64>,
    /// CPU time of the client side per message, us (driver's threads).
    client_cpu_us: Option<f64>,
    /// How busy the primary's CPU was, percent (every process on it).
    primary_busy: Option<f64>,
    /// The point's backends' share of a CPU, percent.
    server_share: Option<f64>,
}

/// p50 and p99 (nearest rank, as examples/bench.rs) of latencies in us.
fn percentiles(us: &mut [f64]) -> (f64, f64) {
    assert!(!us.is_empty(), "no samples");
    us.sort_by(f64::total_cmp);
    let rank = |pct: usize| us[(us.len() * pct).div_ceil(100).max(1) - 1];
    (rank(50), rank(99))
}

/// What one sending thread did in a window.
struct ThreadRun {
    messages: usize,
    lat_us: Vec<f64>,
    end: Instant,
}

/// Something that can carry `depth` echo requests of PAYLOAD bytes and wait
/// for their replies: a netbuf channel or a libpq connection.
trait Echo: Send {
    fn round_trip(&mut self, seq: u32, depth: usize);
    fn backend_pid(&self) -> libc::pid_t;
}

/// Runs `endpoints` at once for cfg.window, one thread each, `depth`
/// requests in flight per thread.
/// CPU time of this whole process (every thread), ns.
fn own_cpu_ns() -> u64 {
    // SAFETY: rusage is plain data that getrusage fills in.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer to a rusage.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        panic!("getrusage: {}", std::io::Error::last_os_error());
    }
    let ns = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1000;
    ns(ru.ru_utime) + ns(ru.ru_stime)
}

/// Busy and total jiffies of one CPU (`cpuN` in /proc/stat), or of all
/// (`cpu`) when `cpu` is None.  Busy counts every process's time, the
/// other workers' of a shared machine too, and the hypervisor's steal.
fn cpu_jiffies(cpu: Option<usize>) -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let name = cpu.map_or("cpu".to_owned(), |c| format!("cpu{c}"));
    let Some(line) = stat
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name.as_str()))
    else {
        return (0, 0);
    };
    // user nice system idle iowait irq softirq steal ...
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: u64 = v.iter().sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// What one point measured.
struct Measured {
    msgs_per_s: f64,
    p50: f64,
    p99: f64,
    /// The backends' CPU per message, us.
    server_cpu_us: f64,
    /// This driver's CPU per message (every thread), us.
    client_cpu_us: f64,
    /// How busy the primary's CPU was (every process), percent.
    primary_cpu_busy: f64,
    /// The point's backends' CPU time / wall time, percent of one CPU.
    server_share: f64,
}

fn sweep_point<E: Echo>(
    endpoints: &mut [E],
    depth: usize,
    window: Duration,
    server_cpu: Option<usize>,
) -> Measured {
    let n = endpoints.len();
    let barrier = Barrier::new(n + 1);
    let stop = AtomicBool::new(false);
    let pids: Vec<libc::pid_t> = endpoints.iter().map(Echo::backend_pid).collect();
    let (runs, start, cpu, own, busy) = std::thread::scope(|s| {
        let handles: Vec<_> = endpoints
            .iter_mut()
            .map(|e| {
                let (barrier, stop) = (&barrier, &stop);
                s.spawn(move || {
                    // Warm: the first round trips after an idle spell pay
                    // for wake-ups and cold caches.
                    for i in 0..3 {
                        e.round_trip(i, depth);
                    }
                    // Twice: once all are warm, the driver reads the CPU
                    // times; then all start.
                    barrier.wait();
                    barrier.wait();
                    let mut lat_us = Vec::with_capacity(4096);
                    let mut seq = 3u32;
                    while !stop.load(Ordering::Relaxed) {
                        let t0 = Instant::now();
                        e.round_trip(seq, depth);
                        lat_us.push(t0.elapsed().as_secs_f64() * 1e6);
                        seq = seq.wrapping_add(depth as u32);
                    }
                    ThreadRun {
                        messages: lat_us.len() * depth,
                        lat_us,
                        end: Instant::now(),
                    }
                })
            })
            .collect();
        barrier.wait();
        let cpu0: u64 = pids.iter().filter_map(|&p| cpu_ns(p)).sum();
        let own0 = own_cpu_ns();
        let jiffies0 = cpu_jiffies(server_cpu);
        barrier.wait();
        let start = Instant::now();
        std::thread::sleep(window);
        stop.store(true, Ordering::Relaxed);
        let runs: Vec<ThreadRun> = handles
            .into_iter()
            .map(|h| h.join().expect("a sending thread panicked"))
            .collect();
        let own1 = own_cpu_ns();
        let jiffies1 = cpu_jiffies(server_cpu);
        let cpu1: u64 = pids.iter().filter_map(|&p| cpu_ns(p)).sum();
        let busy = (jiffies1.0 - jiffies0.0) as f64 / (jiffies1.1 - jiffies0.1).max(1) as f64;
        (
            runs,
            start,
            cpu1.saturating_sub(cpu0),
            own1 - own0,
            busy * 100.0,
        )
    });
    let end = runs.iter().map(|r| r.end).max().expect("a thread");
    let messages: usize = runs.iter().map(|r| r.messages).sum();
    let mut lat: Vec<f64> = runs.into_iter().flat_map(|r| r.lat_us).collect();
    let (p50, p99) = percentiles(&mut lat);
    let wall = (end - start).as_secs_f64();
    // The warm-up round trips ran before the CPU times were read.
    let per_msg = |ns: u64| ns as f64 / 1e3 / messages as f64;
    Measured {
        msgs_per_s: messages as f64 / wall,
        p50,
        p99,
        server_cpu_us: per_msg(cpu),
        client_cpu_us: per_msg(own),
        primary_cpu_busy: busy,
        server_share: cpu as f64 / 1e7 / wall,
    }
}

// ---- netbuf channels --------------------------------------------------------

struct Channel {
    client: Client,
    pid: libc::pid_t,
    msg: [u8; PAYLOAD],
}

impl Echo for Channel {
    fn round_trip(&mut self, seq: u32, depth: usize) {
        for i in 0..depth {
            self.msg[1..5].copy_from_slice(&seq.wrapping_add(i as u32).to_be_bytes());
            self.client
                .queue(&self.msg)
                .unwrap_or_else(|e| panic!("queue: {e}"));
        }
        self.client.flush().unwrap_or_else(|e| panic!("flush: {e}"));
        for i in 0..depth {
            let reply = self
                .client
                .recv()
                .unwrap_or_else(|e| panic!("recv: {e}"))
                .expect("a reply, not the end of the stream");
            assert!(
                reply.len() == PAYLOAD && reply[1..5] == seq.wrapping_add(i as u32).to_be_bytes(),
                "reply out of order"
            );
        }
    }

    fn backend_pid(&self) -> libc::pid_t {
        self.pid
    }
}

fn echo_message() -> [u8; PAYLOAD] {
    let mut msg = [b'x'; PAYLOAD];
    msg[0] = b'E';
    msg
}

/// `n` channels tagged `tag`, with the pids of their serving backends.
fn open_channels(pair: &Pair, conninfo: &str, tag: &str, n: usize) -> Vec<Channel> {
    let ci = format!("{conninfo} application_name={tag}");
    let clients: Vec<Client> = (0..n)
        .map(|i| {
            Client::connect(&ci).unwrap_or_else(|e| panic!("channel {i} of {n}: connect: {e}"))
        })
        .collect();
    // Their serving backends, in connection order (pids are not: the
    // order only matters for which channels a smaller point uses, and
    // each point uses its own set of backends' CPU times).
    let pids: Vec<libc::pid_t> = pair
        .primary
        .must(&format!(
            "SELECT pid FROM pg_stat_activity WHERE application_name = '{tag}' \
             AND query LIKE '%netbuf.serve%' ORDER BY backend_start, pid"
        ))
        .lines()
        .map(|l| l.trim().parse().expect("a pid"))
        .collect();
    assert_eq!(
        pids.len(),
        n,
        "serving backends of the {n} channels tagged {tag}"
    );
    clients
        .into_iter()
        .zip(pids)
        .map(|(client, pid)| Channel {
            client,
            pid,
            msg: echo_message(),
        })
        .collect()
}

// ---- the floor: raw sockets, one echo process per channel --------------------

/// Argument that makes this program the raw echo server (see raw_echo_server).
const RAW_SERVER_ARG: &str = "--raw-echo-server";

/// The raw echo server, run as a child of the driver (a fresh,
/// single-threaded process, so fork is safe): listens on an ephemeral
/// loopback port, prints it, and forks one echo process per accepted
/// connection, pinned to `cpu` as the primary is.  Each echo process first
/// sends its pid (4 bytes, native order), then writes back every byte it
/// reads until EOF.  Echoing bytes is echoing frames: the client sends
/// whole requests and reads as many bytes back.
fn raw_echo_server(cpu: Option<usize>) -> ! {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("local address").port();
    println!("{port}");
    std::io::stdout().flush().expect("stdout");
    // SAFETY: SIG_IGN for SIGCHLD: exited echo processes are reaped by the
    // kernel; nothing here waits for them.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
    loop {
        let (mut stream, _) = listener.accept().expect("accept");
        // SAFETY: this process has one thread (it was exec'd for this), so
        // the child may go on running Rust code after fork.
        match unsafe { libc::fork() } {
            0 => {
                drop(listener);
                if let Some(cpu) = cpu {
                    pin(0, cpu);
                }
                stream.set_nodelay(true).expect("TCP_NODELAY");
                // SAFETY: getpid has no preconditions.
                let pid = unsafe { libc::getpid() };
                stream
                    .write_all(&pid.to_ne_bytes())
                    .expect("sending the pid");
                let mut buf = [0u8; 64 * 1024];
                loop {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => std::process::exit(0),
                        Ok(n) => {
                            if stream.write_all(&buf[..n]).is_err() {
                                std::process::exit(0);
                            }
                        }
                    }
                }
            }
            -1 => panic!("fork: {}", std::io::Error::last_os_error()),
            _ => drop(stream),
        }
    }
}

/// The raw echo server process; killed on drop (its echo processes leave at
/// EOF, when the driver's sockets close).
struct RawServer {
    child: std::process::Child,
    port: u16,
}

impl RawServer {
    fn start(cpu: Option<usize>) -> RawServer {
        use std::io::BufRead;
        let exe = std::env::current_exe().expect("this program's path");
        let mut cmd = Command::new(exe);
        cmd.arg(RAW_SERVER_ARG).stdout(Stdio::piped());
        if let Some(cpu) = cpu {
            cmd.arg(cpu.to_string());
        }
        let mut child = cmd.spawn().expect("starting the raw echo server");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("its stdout"))
            .read_line(&mut line)
            .expect("reading the raw echo server's port");
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("raw echo server printed {line:?}, not a port"));
        RawServer { child, port }
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One raw channel: a loopback TCP connection to an echo process.
struct RawChannel {
    stream: std::net::TcpStream,
    pid: libc::pid_t,
    out: Vec<u8>,
    back: Vec<u8>,
}

impl RawChannel {
    fn connect(port: u16) -> RawChannel {
        use std::io::Read;
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("raw connect");
        stream.set_nodelay(true).expect("TCP_NODELAY");
        let mut pid = [0u8; 4];
        stream.read_exact(&mut pid).expect("the echo process's pid");
        RawChannel {
            stream,
            pid: libc::pid_t::from_ne_bytes(pid),
            out: Vec::with_capacity(PAYLOAD * DEPTH),
            back: vec![0; PAYLOAD * DEPTH],
        }
    }
}

impl Echo for RawChannel {
    fn round_trip(&mut self, seq: u32, depth: usize) {
        use std::io::{Read, Write};
        self.out.clear();
        for i in 0..depth {
            let mut msg = echo_message();
            msg[1..5].copy_from_slice(&seq.wrapping_add(i as u32).to_be_bytes());
            self.out.extend_from_slice(&msg);
        }
        self.stream.write_all(&self.out).expect("raw write");
        let back = &mut self.back[..self.out.len()];
        self.stream.read_exact(back).expect("raw read");
        assert!(back == &self.out[..], "raw echo differs");
    }

    fn backend_pid(&self) -> libc::pid_t {
        self.pid
    }
}

// ---- libpq connections --------------------------------------------------------

/// A libpq connection with `SELECT $1::bytea` prepared.
struct PqConn(*mut pq::PGconn);

// SAFETY: a PGconn is used by one thread at a time (the thread that owns
// this value), which is all libpq asks.
unsafe impl Send for PqConn {}

const STMT: &CStr = c"s";

impl PqConn {
    fn connect(conninfo: &str) -> PqConn {
        let ci = CString::new(conninfo).expect("conninfo without NUL");
        // SAFETY: ci is a valid C string for the duration of the call.
        let conn = PqConn(unsafe { pq::PQconnectdb(ci.as_ptr()) });
        assert!(!conn.0.is_null(), "PQconnectdb: out of memory");
        // SAFETY: conn.0 is a live PGconn.
        if unsafe { pq::PQstatus(conn.0) } != pq::ConnStatusType::CONNECTION_OK {
            panic!("libpq connect: {}", conn.error());
        }
        // SAFETY: live PGconn, valid C strings, no parameter types given.
        let res = unsafe {
            pq::PQprepare(
                conn.0,
                STMT.as_ptr(),
                c"SELECT $1::bytea".as_ptr(),
                1,
                std::ptr::null(),
            )
        };
        conn.check(res, pq::ExecStatusType::PGRES_COMMAND_OK, "PREPARE");
        conn
    }

    fn error(&self) -> String {
        // SAFETY: live PGconn; the message is a C string owned by it.
        unsafe { CStr::from_ptr(pq::PQerrorMessage(self.0)) }
            .to_string_lossy()
            .trim()
            .to_owned()
    }

    /// Checks and frees a result.
    fn check(&self, res: *mut pq::PGresult, want: pq::ExecStatusType, what: &str) {
        assert!(!res.is_null(), "{what}: no result: {}", self.error());
        // SAFETY: res is a live PGresult, freed exactly once here.
        let status = unsafe { pq::PQresultStatus(res) };
        // SAFETY: as above.
        unsafe { pq::PQclear(res) };
        assert!(status == want, "{what}: {status:?}: {}", self.error());
    }

    /// Checks that a SELECT's one row is `expect` (binary), and frees it.
    fn check_echo(&self, res: *mut pq::PGresult, expect: &[u8], what: &str) {
        assert!(!res.is_null(), "{what}: no result: {}", self.error());
        // SAFETY: res is a live PGresult; the value (if any) is
        // PQgetlength bytes owned by it, read before PQclear.
        let got = unsafe {
            let ok = pq::PQresultStatus(res) == pq::ExecStatusType::PGRES_TUPLES_OK
                && pq::PQntuples(res) == 1;
            ok.then(|| {
                let n = pq::PQgetlength(res, 0, 0) as usize;
                std::slice::from_raw_parts(pq::PQgetvalue(res, 0, 0).cast::<u8>(), n).to_vec()
            })
        };
        // SAFETY: freed exactly once.
        unsafe { pq::PQclear(res) };
        match got {
            Some(got) => assert!(got == expect, "{what}: the reply is not the request"),
            None => panic!("{what}: not one row: {}", self.error()),
        }
    }

    fn enter_pipeline(&mut self) {
        // SAFETY: live PGconn, idle.
        assert!(
            unsafe { pq::PQenterPipelineMode(self.0) } == 1,
            "pipeline mode: {}",
            self.error()
        );
    }

    fn exit_pipeline(&mut self) {
        // SAFETY: live PGconn with every result consumed.
        assert!(
            unsafe { pq::PQexitPipelineMode(self.0) } == 1,
            "pipeline mode: {}",
            self.error()
        );
    }
}

impl Drop for PqConn {
    fn drop(&mut self) {
        // SAFETY: live PGconn, finished exactly once.
        unsafe { pq::PQfinish(self.0) };
    }
}

impl Echo for PqConn {
    /// depth 1: PQexecPrepared; deeper: pipeline mode (entered by the
    /// caller), `depth` PQsendQueryPrepared, one sync.
    fn round_trip(&mut self, seq: u32, depth: usize) {
        let mut msg = echo_message();
        let (len, fmt): (c_int, c_int) = (PAYLOAD as c_int, 1);
        if depth == 1 {
            msg[1..5].copy_from_slice(&seq.to_be_bytes());
            let value: *const c_char = msg.as_ptr().cast();
            // SAFETY: live PGconn; one binary parameter of len bytes.
            let res =
                unsafe { pq::PQexecPrepared(self.0, STMT.as_ptr(), 1, &value, &len, &fmt, 1) };
            self.check_echo(res, &msg, "SELECT");
            return;
        }
        for i in 0..depth {
            msg[1..5].copy_from_slice(&seq.wrapping_add(i as u32).to_be_bytes());
            let value: *const c_char = msg.as_ptr().cast();
            // SAFETY: as above; libpq copies the parameter before returning.
            let sent =
                unsafe { pq::PQsendQueryPrepared(self.0, STMT.as_ptr(), 1, &value, &len, &fmt, 1) };
            assert!(sent == 1, "PQsendQueryPrepared: {}", self.error());
        }
        // SAFETY: live PGconn in pipeline mode.
        assert!(
            unsafe { pq::PQpipelineSync(self.0) } == 1,
            "sync: {}",
            self.error()
        );
        for i in 0..depth {
            msg[1..5].copy_from_slice(&seq.wrapping_add(i as u32).to_be_bytes());
            // SAFETY: live PGconn.
            let res = unsafe { pq::PQgetResult(self.0) };
            self.check_echo(res, &msg, "pipelined SELECT");
            // The NULL that ends each query's results.
            // SAFETY: live PGconn.
            let end = unsafe { pq::PQgetResult(self.0) };
            assert!(end.is_null(), "more than one result for one SELECT");
        }
        // SAFETY: live PGconn.
        let res = unsafe { pq::PQgetResult(self.0) };
        self.check(
            res,
            pq::ExecStatusType::PGRES_PIPELINE_SYNC,
            "pipeline sync",
        );
    }

    fn backend_pid(&self) -> libc::pid_t {
        // SAFETY: live PGconn.
        unsafe { pq::PQbackendPID(self.0) }
    }
}

// ---- the sweeps ---------------------------------------------------------------

/// Every count of cfg.channels at depth 1, then at DEPTH, in cfg.rounds
/// rounds (ascending, then descending, so that no count always follows the
/// same one); each figure is the median over the rounds.
fn channel_sweep<E: Echo>(
    kind: Kind,
    endpoints: &mut [E],
    cfg: &Config,
    mode: impl Fn(&mut [E], usize),
    points: &mut Vec<Point>,
) {
    // Every endpoint's first requests fault in its backend's buffers: done
    // here, not in whichever point first uses that endpoint (the 256 point
    // of the first round would pay for 128 of them).
    for e in endpoints.iter_mut() {
        for i in 0..WARM_UP as u32 / 10 {
            e.round_trip(i, 1);
        }
    }
    for depth in [1, DEPTH] {
        mode(endpoints, depth);
        let mut runs: Vec<Vec<Measured>> = cfg.channels.iter().map(|_| Vec::new()).collect();
        for round in 0..cfg.rounds {
            let mut order: Vec<usize> = (0..cfg.channels.len()).collect();
            if round % 2 == 1 {
                order.reverse();
            }
            for i in order {
                let n = cfg.channels[i];
                eprint!(
                    "\rnetbuf scaling: {} depth {depth}, round {}/{}, {n} channels    ",
                    kind.name(),
                    round + 1,
                    cfg.rounds
                );
                runs[i].push(sweep_point(
                    &mut endpoints[..n],
                    depth,
                    cfg.window,
                    cfg.server_cpu(),
                ));
            }
        }
        for (&n, m) in cfg.channels.iter().zip(&runs) {
            let med = |f: fn(&Measured) -> f64| median(m.iter().map(f).collect());
            points.push(Point {
                kind,
                depth,
                channels: n,
                msgs_per_s: med(|m| m.msgs_per_s),
                p50: med(|m| m.p50),
                p99: med(|m| m.p99),
                server_cpu_us: Some(med(|m| m.server_cpu_us)),
                client_cpu_us: Some(med(|m| m.client_cpu_us)),
                primary_busy: Some(med(|m| m.primary_cpu_busy)),
                server_share: Some(med(|m| m.server_share)),
            });
        }
    }
    eprintln!();
}

/// `n` standby backends (psql sessions) run netbuf_bench.run('netbuf')
/// strictly, released together by pg_sleep_until; the window runs from the
/// first start to the last end (each session reports its end and its
/// timed span).  `iterations` per session.
fn standby_point(pair: &Pair, conninfo: &str, n: usize, depth: usize, iterations: usize) -> Point {
    let epoch = |t: SystemTime| t.duration_since(UNIX_EPOCH).expect("clock").as_secs_f64();
    // Time for n psql processes to start and connect on a busy CPU.
    let release = epoch(SystemTime::now()) + 0.3 + n as f64 * 0.02;
    let run = format!(
        "SELECT extract(epoch FROM clock_timestamp()), r.wall_us, r.server_cpu_us, r.lat_us \
         FROM netbuf_bench.run('netbuf', {}, {PAYLOAD}, {iterations}, {depth}) r",
        sql_literal(conninfo)
    );
    let children: Vec<_> = (0..n)
        .map(|_| {
            let mut cmd = psql_command(&pair.standby.conninfo());
            cmd.args([
                "-c",
                &format!("SELECT pg_sleep_until(to_timestamp({release}))"),
                "-c",
                &run,
            ])
            .stdin(Stdio::null());
            cmd.spawn().expect("psql")
        })
        .collect();
    let (mut first, mut last, mut messages, mut cpu_us) = (f64::INFINITY, 0f64, 0usize, 0f64);
    let mut lat = Vec::new();
    for child in children {
        let out = child.wait_with_output().expect("psql");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "a standby session failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            pair.standby.log_tail()
        );
        let line = stdout
            .lines()
            .find(|l| l.contains('{'))
            .expect("run()'s row");
        let mut f = line.splitn(4, '|');
        let num = |v: Option<&str>| -> f64 {
            let v = v.unwrap_or("").trim();
            v.parse()
                .unwrap_or_else(|_| panic!("expected a number, got {v:?} in {line}"))
        };
        let end = num(f.next());
        let wall_s = num(f.next()) / 1e6;
        cpu_us += f
            .next()
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(f64::NAN);
        // One figure per batch: its time / depth.  The table's depth-8
        // round trip is the batch's, as in the channel sweep.
        let l: Vec<f64> = f
            .next()
            .unwrap_or("")
            .trim()
            .trim_matches(['{', '}'])
            .split(',')
            .map(|v| num(Some(v)) * depth as f64)
            .collect();
        messages += l.len() * depth;
        lat.extend(l);
        first = first.min(end - wall_s);
        last = last.max(end);
    }
    let (p50, p99) = percentiles(&mut lat);
    Point {
        kind: Kind::Backend,
        depth,
        channels: n,
        msgs_per_s: messages as f64 / (last - first),
        p50,
        p99,
        server_cpu_us: cpu_us.is_finite().then(|| cpu_us / messages as f64),
        client_cpu_us: None,
        primary_busy: None,
        server_share: None,
    }
}

fn standby_sweep(pair: &Pair, conninfo: &str, cfg: &Config, points: &mut Vec<Point>) {
    // Messages per session so that a point lasts about a window: from the
    // last point's aggregate rate (a first guess for the first).
    for depth in [1, DEPTH] {
        let mut rate = 20_000.0 * depth as f64;
        for &n in &cfg.standby {
            eprint!("\rnetbuf scaling: standby backends, depth {depth}, {n} sessions    ");
            let span = cfg.window.as_secs_f64() * cfg.rounds.min(2) as f64;
            let iterations = ((rate * span / n as f64) as usize).clamp(50 * depth, 200_000 * depth);
            let p = standby_point(pair, conninfo, n, depth, iterations);
            rate = p.msgs_per_s;
            points.push(p);
        }
    }
    eprintln!();
}

// ---- memory -----------------------------------------------------------------

/// kB fields of /proc/PID/smaps_rollup.
#[derive(Clone, Copy, Debug, Default)]
struct Mem {
    rss: f64,
    pss: f64,
    /// Private_Clean + Private_Dirty: what the process alone holds.
    private: f64,
    /// PSS of anonymous memory, of mapped files (code), of shared memory.
    pss_anon: f64,
    pss_file: f64,
    pss_shmem: f64,
}

fn smaps_rollup(pid: libc::pid_t) -> Mem {
    let path = format!("/proc/{pid}/smaps_rollup");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let field = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {path}"))
    };
    Mem {
        rss: field("Rss"),
        pss: field("Pss"),
        private: field("Private_Clean") + field("Private_Dirty"),
        pss_anon: field("Pss_Anon"),
        pss_file: field("Pss_File"),
        pss_shmem: field("Pss_Shmem"),
    }
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

fn median_mem(pids: &[libc::pid_t]) -> Mem {
    let m: Vec<Mem> = pids.iter().map(|&p| smaps_rollup(p)).collect();
    let med = |f: fn(&Mem) -> f64| median(m.iter().map(f).collect());
    Mem {
        rss: med(|m| m.rss),
        pss: med(|m| m.pss),
        private: med(|m| m.private),
        pss_anon: med(|m| m.pss_anon),
        pss_file: med(|m| m.pss_file),
        pss_shmem: med(|m| m.pss_shmem),
    }
}

/// Idle serving backends against idle libpq connections' backends, each
/// after WARM_UP round trips, all open at the same time (so that shared
/// pages are divided among as many processes for both).
fn memory(pair: &Pair, conninfo: &str) -> (Mem, Mem) {
    let mut channels = open_channels(pair, conninfo, "netbuf_scale_mem", MEMORY_SAMPLES);
    let mut conns: Vec<PqConn> = (0..MEMORY_SAMPLES)
        .map(|_| PqConn::connect(&format!("{conninfo} application_name=netbuf_scale_idle")))
        .collect();
    for i in 0..WARM_UP as u32 {
        for c in &mut channels {
            c.round_trip(i, 1);
        }
        for c in &mut conns {
            c.round_trip(i, 1);
        }
    }
    // Idle: both kinds wait in their socket read now.
    std::thread::sleep(Duration::from_millis(200));
    let serving = median_mem(&channels.iter().map(|c| c.pid).collect::<Vec<_>>());
    let idle = median_mem(&conns.iter().map(Echo::backend_pid).collect::<Vec<_>>());
    (serving, idle)
}

// ---- connect storm ------------------------------------------------------------

struct Storm {
    /// From the release until the last thread had its reply, ms.
    all_ms: f64,
    p50_ms: f64,
}

/// `n` threads released together each open a channel (or a libpq
/// connection) and send one request.
fn storm(conninfo: &str, n: usize, netbuf: bool) -> Storm {
    let barrier = Barrier::new(n + 1);
    let mut done_ms = std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    if netbuf {
                        let client = Client::connect(conninfo)
                            .unwrap_or_else(|e| panic!("storm: connect: {e}"));
                        let mut ch = Channel {
                            client,
                            pid: 0,
                            msg: echo_message(),
                        };
                        ch.round_trip(0, 1);
                        Instant::now()
                    } else {
                        let mut c = PqConn::connect(conninfo);
                        c.round_trip(0, 1);
                        Instant::now()
                    }
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        let done: Vec<f64> = handles
            .into_iter()
            .map(|h| (h.join().expect("a storm thread panicked") - start).as_secs_f64() * 1e3)
            .collect();
        done
    });
    done_ms.sort_by(f64::total_cmp);
    Storm {
        all_ms: *done_ms.last().expect("a thread"),
        p50_ms: done_ms[(done_ms.len() - 1) / 2],
    }
}

// ---- servers, output ----------------------------------------------------------

fn pair_options() -> PairOptions {
    PairOptions {
        // As examples/bench.rs and docs/operations.md: a primary that
        // serves many channels preloads libnetbuf, so that its backends
        // share the library (and the libpq it links) with the postmaster
        // instead of each loading them; the memory target is for that
        // configuration (docs/scaling.md gives the figure without it).
        primary_conf: vec![
            format!("max_connections = {MAX_CONNECTIONS}"),
            "shared_preload_libraries = 'libnetbuf'".into(),
        ],
        setup_sql: vec![
            "CREATE EXTENSION netbuf".into(),
            "CREATE EXTENSION netbuf_bench".into(),
        ],
        ..PairOptions::default()
    }
}

fn date(format: &str) -> String {
    let mut date = Command::new("date");
    date.args(["-u", format]);
    run_checked(date, "date").trim().to_owned()
}

fn root_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split(':').nth(1))
        .unwrap_or("?")
        .trim()
        .to_owned();
    let cpus = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cpus} x {model}, Linux {}", kernel.trim())
}

/// Waits until no backend on the primary has application_name `tag`: the
/// next sweep's connections must not meet max_connections.
fn wait_gone(pair: &Pair, tag: &str) {
    netbuf_testkit::wait_tagged_backends(&pair.primary, tag, 0, Duration::from_secs(60))
        .unwrap_or_else(|pids| panic!("backends tagged {tag} still there: {pids:?}"));
}

struct Report {
    text: String,
    csv: String,
    targets: Vec<(bool, String)>,
}

impl Report {
    fn points(&mut self, title: &str, section: &str, points: &[Point]) {
        let _ = writeln!(
            self.text,
            "\n{title}\n{:<25} {:>5} {:>5} {:>10} {:>9} {:>9} {:>7} {:>7} {:>6} {:>6}",
            "kind",
            "depth",
            "chans",
            "msgs/s",
            "p50 us",
            "p99 us",
            "srv us",
            "cli us",
            "srv %",
            "busy %"
        );
        let opt = |v: Option<f64>, prec: usize| v.map_or("-".into(), |c| format!("{c:.prec$}"));
        for p in points {
            let _ = writeln!(
                self.text,
                "{:<25} {:>5} {:>5} {:>10.0} {:>9.1} {:>9.1} {:>7} {:>7} {:>6} {:>6}",
                p.kind.label(),
                p.depth,
                p.channels,
                p.msgs_per_s,
                p.p50,
                p.p99,
                opt(p.server_cpu_us, 2),
                opt(p.client_cpu_us, 2),
                opt(p.server_share, 0),
                opt(p.primary_busy, 0)
            );
            let _ = writeln!(
                self.csv,
                "{section},{},{},{},{:.0},{:.1},{:.1},{},{},{}",
                p.kind.name(),
                p.depth,
                p.channels,
                p.msgs_per_s,
                p.p50,
                p.p99,
                opt(p.server_cpu_us, 3).replace('-', ""),
                opt(p.client_cpu_us, 3).replace('-', ""),
                opt(p.primary_busy, 1).replace('-', "")
            );
        }
    }

    /// Aggregate msgs/s at 256 channels against the peak over the counts
    /// of `kind` at `depth`: (ratio, text), None if 256 was not measured.
    fn at_256_over_peak(points: &[Point], kind: Kind, depth: usize) -> Option<(f64, String)> {
        let of: Vec<&Point> = points
            .iter()
            .filter(|p| p.kind == kind && p.depth == depth)
            .collect();
        let peak = of
            .iter()
            .max_by(|a, b| a.msgs_per_s.total_cmp(&b.msgs_per_s))?;
        let at = of.iter().find(|p| p.channels == 256)?;
        let r = at.msgs_per_s / peak.msgs_per_s;
        Some((
            r,
            format!(
                "{} depth {depth}: msgs/s at 256 channels / peak ({} channels) = {:.0} / {:.0} = {r:.2}",
                kind.label(),
                peak.channels,
                at.msgs_per_s,
                peak.msgs_per_s
            ),
        ))
    }

    /// The target: netbuf's msgs/s at 256 channels >= 80% of its peak.
    fn scaling_target(&mut self, points: &[Point], kind: Kind, depth: usize) {
        match Self::at_256_over_peak(points, kind, depth) {
            Some((r, text)) => self
                .targets
                .push((r >= 0.8, format!("scaling: {text} (need >= 0.8)"))),
            None => {
                let _ = writeln!(
                    self.text,
                    "(scaling target for {} depth {depth} not checked: 256 channels not measured)",
                    kind.label()
                );
            }
        }
    }

    /// The same ratio for the baselines, printed, not a target: how much of
    /// the fall is PostgreSQL's (SELECT) and how much any process per
    /// channel pays on this machine (raw).
    fn baseline_ratios(&mut self, points: &[Point]) {
        let lines: Vec<String> = [Kind::Select, Kind::Raw]
            .into_iter()
            .flat_map(|kind| [1, DEPTH].map(|depth| (kind, depth)))
            .filter_map(|(kind, depth)| Self::at_256_over_peak(points, kind, depth))
            .map(|(_, text)| text)
            .collect();
        if !lines.is_empty() {
            let _ = writeln!(
                self.text,
                "\nThe same ratio for the baselines (not targets)"
            );
            for line in lines {
                let _ = writeln!(self.text, "     {line}");
            }
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(RAW_SERVER_ARG) {
        raw_echo_server(args.get(2).map(|c| c.parse().expect("a CPU number")));
    }
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !INTERRUPTED.load(Ordering::Relaxed) {
            eprintln!("\nnetbuf scaling FAILED:");
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
    // Ctrl-C: leave through exit(), so that the kit's atexit handler stops
    // the servers and removes their files.
    std::thread::spawn(|| {
        loop {
            std::thread::sleep(Duration::from_millis(100));
            if INTERRUPTED.load(Ordering::Relaxed) {
                eprintln!("\nnetbuf scaling: interrupted; stopping the servers");
                std::process::exit(130);
            }
        }
    });

    let started = Instant::now();
    let load_before = loadavg();
    eprintln!("netbuf scaling: starting a throwaway primary and a streaming standby");
    let pair = shared_pair_with(pair_options);
    if let Some(cpu) = cfg.server_cpu() {
        pin_server(&pair.standby, 0);
        pin_server(&pair.primary, cpu);
    }
    let conninfo = format!(
        "host=127.0.0.1 port={} user=postgres dbname=postgres connect_timeout=20 \
         sslmode=disable gssencmode=disable",
        pair.primary.port
    );

    eprintln!("netbuf scaling: connect storm, {} at once", cfg.storm);
    let storm_tag = format!("{conninfo} application_name=netbuf_scale_storm");
    let storm_netbuf = storm(&storm_tag, cfg.storm, true);
    wait_gone(pair, "netbuf_scale_storm");
    let storm_libpq = storm(&storm_tag, cfg.storm, false);
    wait_gone(pair, "netbuf_scale_storm");

    let max = cfg.channels.iter().copied().max().unwrap_or(1);
    let mut points = Vec::new();
    if cfg.wants("netbuf") {
        eprintln!("netbuf scaling: opening {max} channels");
        let mut channels = open_channels(pair, &conninfo, TAG, max);
        channel_sweep(Kind::Netbuf, &mut channels, &cfg, |_, _| {}, &mut points);
        drop(channels);
        wait_gone(pair, TAG);
    }

    if cfg.wants("select") {
        eprintln!("netbuf scaling: opening {max} libpq connections");
        let select_ci = format!("{conninfo} application_name=netbuf_scale_select");
        let mut conns: Vec<PqConn> = (0..max).map(|_| PqConn::connect(&select_ci)).collect();
        let pipeline = |conns: &mut [PqConn], depth: usize| {
            for c in conns {
                if depth > 1 {
                    c.enter_pipeline();
                } else {
                    c.exit_pipeline();
                }
            }
        };
        channel_sweep(Kind::Select, &mut conns, &cfg, pipeline, &mut points);
        drop(conns);
        wait_gone(pair, "netbuf_scale_select");
    }

    if cfg.wants("raw") {
        eprintln!("netbuf scaling: opening {max} raw sockets");
        let raw = RawServer::start(cfg.server_cpu());
        let mut sockets: Vec<RawChannel> =
            (0..max).map(|_| RawChannel::connect(raw.port)).collect();
        channel_sweep(Kind::Raw, &mut sockets, &cfg, |_, _| {}, &mut points);
    }

    eprintln!("netbuf scaling: memory of idle channels and connections");
    let (serving, idle) = memory(pair, &conninfo);

    let mut standby = Vec::new();
    if cfg.wants("standby") {
        standby_sweep(pair, &conninfo, &cfg, &mut standby);
    }

    // ---- the report ----
    let mut report = Report {
        text: String::new(),
        csv: "section,kind,depth,channels,msgs_per_s,p50_us,p99_us,server_cpu_us_per_msg,client_cpu_us_per_msg,primary_cpu_busy_pct\n".into(),
        targets: Vec::new(),
    };
    let _ = writeln!(
        report.text,
        "netbuf scaling: {}\nmachine: {}\nload average before: {load_before}, after: {}\nCPUs: {}\n\
         {PAYLOAD} B echo requests over TCP loopback; channels: {} rounds of {:.1} s per point, medians over the rounds; \
         standby backends: one run per point; round trip = one request's \
         (depth {DEPTH}: the batch's, from the first queue to the last reply); srv us = CPU time \
         of the point's backends on the primary per message; cli us = this driver's CPU time per message \
         (all its threads: the client side); srv % = the point's backends' CPU time / wall time (100 = one CPU); \
         busy % = how busy the primary's CPU was, every process on it counted (other jobs on a shared machine too)\n\
         primary: max_connections = {MAX_CONNECTIONS}, shared_preload_libraries = 'libnetbuf'",
        date("+%Y-%m-%d %H:%M UTC"),
        machine(),
        loadavg(),
        match cfg.pin {
            Pin::Split => "client side (this driver, the standby) on CPU 0, primary on CPU 1",
            Pin::Same => "everything on CPU 0",
            Pin::None => "not pinned",
        },
        cfg.rounds,
        cfg.window.as_secs_f64()
    );
    report.points(
        "Channels: one thread of this driver per channel (or libpq connection), all sending at once",
        "channels",
        &points,
    );
    report.points(
        "Standby backends: one psql session per backend, netbuf_bench.run('netbuf', ...) strict and depth 8, started together",
        "standby",
        &standby,
    );
    let extra = serving.pss - idle.pss;
    let _ = writeln!(
        report.text,
        "\nMemory of one idle backend on the primary after {WARM_UP} round trips (median of {MEMORY_SAMPLES}, kB)\n\
         {:<34} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9}",
        "backend", "Rss", "Pss", "Private", "Pss_Anon", "Pss_File", "Pss_Shmem"
    );
    for (name, m) in [
        ("netbuf serving backend (idle)", serving),
        ("libpq connection (idle)", idle),
    ] {
        let _ = writeln!(
            report.text,
            "{name:<34} {:>8.0} {:>8.0} {:>8.0} {:>9.0} {:>9.0} {:>9.0}",
            m.rss, m.pss, m.private, m.pss_anon, m.pss_file, m.pss_shmem
        );
    }
    let _ = writeln!(
        report.text,
        "\nConnect storm: {} threads released at once, each connects and sends one request (ms since the release)\n\
         {:<34} {:>10} {:>10}\n\
         {:<34} {:>10.1} {:>10.1}\n\
         {:<34} {:>10.1} {:>10.1}",
        cfg.storm,
        "kind",
        "all done",
        "p50",
        "netbuf Client::connect + request",
        storm_netbuf.all_ms,
        storm_netbuf.p50_ms,
        "libpq PQconnectdb + SELECT $1",
        storm_libpq.all_ms,
        storm_libpq.p50_ms
    );
    report.scaling_target(&points, Kind::Netbuf, 1);
    report.scaling_target(&points, Kind::Netbuf, DEPTH);
    report.targets.push((
        extra <= 256.0,
        format!(
            "memory: idle serving backend PSS - idle connection PSS = {:.0} - {:.0} = {extra:.0} kB (need <= 256)",
            serving.pss, idle.pss
        ),
    ));
    report.baseline_ratios(&points);
    let failed = report.targets.iter().filter(|(ok, _)| !ok).count();
    let _ = writeln!(report.text, "\nTargets (issue 12)");
    for (ok, text) in &report.targets {
        let _ = writeln!(report.text, "{} {text}", if *ok { "PASS" } else { "FAIL" });
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
    for (ext, body) in [("txt", &report.text), ("csv", &report.csv)] {
        let file = dir.join(format!("scaling-{stamp}.{ext}"));
        std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(&file, body))
            .unwrap_or_else(|e| panic!("writing {}: {e}", file.display()));
        println!("results written to {}", file.display());
    }
    // The servers are stopped by the kit's atexit handler.
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
