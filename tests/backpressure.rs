//! Back-pressure on the primary (issue 8, item 3): a client that pipelines
//! requests and never reads a reply must not make its serving backend's
//! memory grow without bound, and the blocked backend must still end
//! promptly on pg_terminate_backend.
//!
//! The hostile client speaks the protocol on a raw TCP socket: libpq (and so
//! netbuf's own client) reads input while it waits to write, which is
//! exactly what this client must not do.
//!
//! Needs `make install` first; `make test` does it.

use std::io::{ErrorKind, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::thread::sleep;
use std::time::{Duration, Instant};

use netbuf_testkit::wire::{RawChannel, message};
use netbuf_testkit::{proc_status_kb, process_gone, serving_backend, shared_pair};

/// The flood stops once the client's writes have blocked this long: the
/// serving backend stopped reading.
const BLOCKED_FOR: Duration = Duration::from_secs(3);
/// ... or after this many bytes, or this long, whichever comes first.
const MAX_FLOOD_BYTES: u64 = 2 << 30;
const MAX_FLOOD_TIME: Duration = Duration::from_secs(25);
/// ... or once the backend's RSS passed this: the defect is shown by then,
/// and the machine is shared.
const KIND_LIMIT_KB: u64 = 300 * 1024;
/// Issue 8: peak RSS under 64 MB beyond one max_message_size request, at
/// default settings (these requests are far smaller than that).
const PEAK_RSS_LIMIT_KB: u64 = 64 * 1024;
/// pg_terminate_backend must end a blocked serving backend within this.
const TERMINATE_WITHIN: Duration = Duration::from_secs(1);

enum Stopped {
    Blocked,
    KindLimit,
    ByteLimit,
    TimeLimit,
}

/// What the flood did to the serving backend.
struct Flood {
    stopped: Stopped,
    written: u64,
    elapsed: Duration,
}

/// Write `chunk` (whole CopyData messages) over and over without ever
/// reading, until the writes block for BLOCKED_FOR or a limit is hit.
fn flood(sock: &TcpStream, chunk: &[u8], pid: libc::pid_t) -> Flood {
    sock.set_nonblocking(true).expect("non-blocking socket");
    let mut sock_w = sock;
    let started = Instant::now();
    let mut offset = 0;
    let mut written: u64 = 0;
    let mut next_rss_check: u64 = 0;
    let mut blocked_since: Option<Instant> = None;
    let stopped = loop {
        if written >= next_rss_check {
            next_rss_check = written + (1 << 20);
            if proc_status_kb(pid, "VmRSS").is_some_and(|kb| kb > KIND_LIMIT_KB) {
                break Stopped::KindLimit;
            }
        }
        if written >= MAX_FLOOD_BYTES {
            break Stopped::ByteLimit;
        }
        if started.elapsed() >= MAX_FLOOD_TIME {
            break Stopped::TimeLimit;
        }
        match sock_w.write(&chunk[offset..]) {
            Ok(0) => panic!("the primary closed the connection during the flood"),
            Ok(n) => {
                written += n as u64;
                offset = (offset + n) % chunk.len();
                blocked_since = None;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                let since = *blocked_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= BLOCKED_FOR {
                    break Stopped::Blocked;
                }
                // Wait for room (never for input: this client does not read).
                let mut pollfd = libc::pollfd {
                    fd: sock.as_raw_fd(),
                    events: libc::POLLOUT,
                    revents: 0,
                };
                // SAFETY: one valid pollfd for the duration of the call.
                unsafe { libc::poll(&mut pollfd, 1, 100) };
                next_rss_check = written;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("writing the flood failed after {written} bytes: {e}"),
        }
    };
    Flood {
        stopped,
        written,
        elapsed: started.elapsed(),
    }
}

/// Flood a serving backend with `request_len`-byte 'E' requests, never
/// reading a reply; its peak RSS must stay bounded and it must end within a
/// second of pg_terminate_backend.
fn hostile_flood(request_len: usize, application_name: &str) {
    let p = shared_pair();
    // A protocol-3 client on a raw TCP socket, in COPY BOTH with
    // netbuf.serve(), that never reads.
    let client = RawChannel::tcp(&p.primary, application_name);
    let pid = serving_backend(&p.primary, application_name);
    let hwm_before = proc_status_kb(pid, "VmHWM").expect("VmHWM of the serving backend");

    // Whole messages, about 60 kB of them per write.
    let mut request = vec![b'x'; request_len];
    request[0] = b'E';
    let one = message(b'd', &request);
    let chunk: Vec<u8> = one.repeat((60 * 1024 / one.len()).max(1));
    let flood = flood(&client.sock, &chunk, pid);

    let hwm = proc_status_kb(pid, "VmHWM").expect("the serving backend survived the flood");
    let why = match flood.stopped {
        Stopped::Blocked => format!("writes blocked for {BLOCKED_FOR:?}"),
        Stopped::KindLimit => format!(
            "its RSS passed {} MB, so the flood was cut short",
            KIND_LIMIT_KB / 1024
        ),
        Stopped::ByteLimit => format!("{MAX_FLOOD_BYTES} bytes were written"),
        Stopped::TimeLimit => format!("{MAX_FLOOD_TIME:?} passed"),
    };
    let figures = format!(
        "{request_len}-byte requests: {:.1} MB written ({} requests) in {:.1?}, stopped because {why}; \
         serving backend {pid} peak RSS (VmHWM) {:.1} MB (was {:.1} MB before the flood)",
        flood.written as f64 / 1048576.0,
        flood.written / one.len() as u64,
        flood.elapsed,
        hwm as f64 / 1024.0,
        hwm_before as f64 / 1024.0,
    );
    eprintln!("{figures}");

    // Still blocked on our unread replies: end it.
    p.primary.terminate_backend(pid);
    let signalled = Instant::now();
    while !process_gone(pid) && signalled.elapsed() < Duration::from_secs(5) {
        sleep(Duration::from_millis(5));
    }
    let took = signalled.elapsed();
    let gone = process_gone(pid);
    eprintln!(
        "serving backend {pid} {} {took:.2?} after pg_terminate_backend",
        if gone { "was gone" } else { "was still there" }
    );
    // Closing our end frees a backend stuck writing to us, whatever the above.
    drop(client);
    p.primary
        .wait_backend_exit(pid, Duration::from_secs(10))
        .unwrap();
    p.primary.assert_no_crash();

    let mut failures = Vec::new();
    if !matches!(flood.stopped, Stopped::Blocked) {
        failures.push("the serving backend kept reading requests whose replies nobody read".into());
    }
    if hwm >= PEAK_RSS_LIMIT_KB {
        failures.push(format!(
            "its peak RSS is not under {} MB",
            PEAK_RSS_LIMIT_KB / 1024
        ));
    }
    if !gone || took >= TERMINATE_WITHIN {
        failures.push(format!(
            "it did not end within {TERMINATE_WITHIN:?} of pg_terminate_backend ({} after {took:.2?})",
            if gone { "gone" } else { "still there" }
        ));
    }
    assert!(failures.is_empty(), "{}: {figures}", failures.join("; "));
}

/// The reproduction: 60 kB echoes (replies queued, not sent
/// directly, as they are under the 64 kB direct-send size).
#[test]
fn flood_of_60_kb_requests_never_read_keeps_the_serving_backend_small() {
    hostile_flood(60 * 1024, "nb_flood_60k");
}

/// Many small replies: the bound must count bytes of every reply, not only
/// of large ones.
#[test]
fn flood_of_small_requests_never_read_keeps_the_serving_backend_small() {
    hostile_flood(200, "nb_flood_200");
}
