//! Channels under PostgreSQL's error model, from standby backends (issue 8,
//! items 1 and 2): an ERROR while requests are in flight (statement_timeout,
//! pg_cancel_backend, an ERROR in the caller between netbuf_send and
//! netbuf_recv) must never let a later call return a reply meant for an
//! earlier request, and an ERROR between netbuf_connect and
//! netbuf_disconnect must not leak the channel (its PGconn, its socket, its
//! serving backend on the primary).
//!
//! Each test drives one standby session step by step through libpq (so it
//! sees each statement's SQLSTATE, the session's notices and its backend
//! pid), opens its channels with its own application_name and finds its
//! serving backends on the primary by that name.  Replies carry the test's
//! tag and a sequence, so a reply shifted by one is never mistaken for the
//! right one.
//!
//! Needs `make install install-test-module` first; `make test` does it.

use std::ffi::{CStr, CString};
use std::os::raw::{c_int, c_void};
use std::path::Path;
use std::ptr;
use std::sync::{Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use netbuf_testkit::test_module::{
    assert_reply, bytea_bytes, bytea_literal as lit, echo_msg, show, sleep_msg, unhex,
};
use netbuf_testkit::{
    Pair, PairOptions, Stopped, serving_backend, shared_pair_with, tagged_backends,
    tagged_conninfo, wait_tagged_backends,
};

fn pair() -> &'static Pair {
    // The test module's ops ('S': sleep) in every serving backend.
    shared_pair_with(PairOptions::with_test_module)
}

/// Tests that may leak many channels on a broken netbuf (up to 50 serving
/// backends, half the primary's max_connections) run alone, so that a leak
/// shows in their own assertions and not as "too many clients" in another
/// test; the others share the pair.
static LEAK_LOCK: RwLock<()> = RwLock::new(());

fn shared() -> RwLockReadGuard<'static, ()> {
    LEAK_LOCK.read().unwrap_or_else(|e| e.into_inner())
}

fn exclusive() -> RwLockWriteGuard<'static, ()> {
    LEAK_LOCK.write().unwrap_or_else(|e| e.into_inner())
}

/// How long a channel's serving backend may take to exit once the standby
/// closed the connection.
const EXIT_WAIT: Duration = Duration::from_secs(5);

// ---- a standby session over libpq ----------------------------------------

/// An ERROR reported for one statement.
#[derive(Debug)]
struct SqlError {
    sqlstate: String,
    message: String,
}

/// One long-lived session, as a standby backend that keeps a channel across
/// statements; every statement is one PQexec (its own transaction unless
/// the test says BEGIN).
struct Session {
    conn: *mut pq_sys::PGconn,
    /// "SEVERITY: message" of each NOTICE/WARNING the server sent; boxed so
    /// that the address given to libpq's notice receiver stays put.
    notices: Box<Mutex<Vec<String>>>,
}

unsafe extern "C" fn collect_notice(arg: *mut c_void, result: *const pq_sys::PGresult) {
    // SAFETY: arg is the Session's boxed Mutex, which outlives the PGconn
    // (Drop finishes the connection first); result is valid for this call.
    let notices = unsafe { &*(arg as *const Mutex<Vec<String>>) };
    let severity = unsafe { error_field(result, pq_sys::PG_DIAG_SEVERITY_NONLOCALIZED) };
    let message = unsafe { error_field(result, pq_sys::PG_DIAG_MESSAGE_PRIMARY) };
    notices
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(format!("{severity}: {message}"));
}

/// A field of an error or notice result; "" when absent.
///
/// # Safety
/// `result` must be a valid PGresult.
unsafe fn error_field(result: *const pq_sys::PGresult, field: u8) -> String {
    let value = unsafe { pq_sys::PQresultErrorField(result, field as c_int) };
    if value.is_null() {
        String::new()
    } else {
        unsafe { CStr::from_ptr(value) }
            .to_string_lossy()
            .into_owned()
    }
}

impl Session {
    /// Connects to the standby.  statement_timeout is 60 s by default (a
    /// RESET goes back to it), so that a hung call fails instead of hanging
    /// the test run.
    fn standby(p: &Pair) -> Session {
        let conninfo = format!(
            "{} application_name=error_model options='-c statement_timeout=60s'",
            p.standby.conninfo()
        );
        let c = CString::new(conninfo).unwrap();
        // SAFETY: a NUL-terminated conninfo; the result is checked below.
        let conn = unsafe { pq_sys::PQconnectdb(c.as_ptr()) };
        assert!(!conn.is_null(), "PQconnectdb: out of memory");
        let session = Session {
            conn,
            notices: Box::new(Mutex::new(Vec::new())),
        };
        // SAFETY: conn is a valid PGconn until Drop.
        if unsafe { pq_sys::PQstatus(conn) } != pq_sys::ConnStatusType::CONNECTION_OK {
            panic!("connecting to the standby: {}", session.error_message());
        }
        let arg = &*session.notices as *const Mutex<Vec<String>> as *mut c_void;
        // SAFETY: arg stays valid for the life of conn (see collect_notice).
        unsafe { pq_sys::PQsetNoticeReceiver(conn, Some(collect_notice), arg) };
        session
    }

    fn error_message(&self) -> String {
        // SAFETY: conn is valid; libpq returns a NUL-terminated string.
        unsafe { CStr::from_ptr(pq_sys::PQerrorMessage(self.conn)) }
            .to_string_lossy()
            .into_owned()
    }

    /// The pid of this session's backend on the standby.
    fn pid(&self) -> libc::pid_t {
        // SAFETY: conn is valid.
        unsafe { pq_sys::PQbackendPID(self.conn) }
    }

    /// Runs one statement; Ok is the first column of the first row (None
    /// for no row, a NULL or a command).
    fn query(&self, sql: &str) -> Result<Option<String>, SqlError> {
        let c = CString::new(sql).unwrap();
        // SAFETY: conn is valid, c is NUL-terminated.
        let result = unsafe { pq_sys::PQexec(self.conn, c.as_ptr()) };
        self.take_result(result, sql)
    }

    /// Starts one statement without waiting for it ([`Session::finish`]).
    fn start(&self, sql: &str) {
        let c = CString::new(sql).unwrap();
        // SAFETY: conn is valid, c is NUL-terminated.
        let sent = unsafe { pq_sys::PQsendQuery(self.conn, c.as_ptr()) };
        assert_eq!(sent, 1, "PQsendQuery {sql}: {}", self.error_message());
    }

    /// Waits for the statement started by [`Session::start`].
    fn finish(&self) -> Result<Option<String>, SqlError> {
        // SAFETY: conn is valid; PQgetResult returns one result, then NULL.
        let result = unsafe { pq_sys::PQgetResult(self.conn) };
        let outcome = self.take_result(result, "the started statement");
        // SAFETY: as above; one statement gives no further result.
        let more = unsafe { pq_sys::PQgetResult(self.conn) };
        assert!(more.is_null(), "a second result for one statement");
        outcome
    }

    fn take_result(
        &self,
        result: *mut pq_sys::PGresult,
        sql: &str,
    ) -> Result<Option<String>, SqlError> {
        assert!(!result.is_null(), "{sql}: {}", self.error_message());
        // SAFETY: result is a valid PGresult until PQclear below; values are
        // copied out before it.
        let outcome = unsafe {
            match pq_sys::PQresultStatus(result) {
                pq_sys::ExecStatusType::PGRES_TUPLES_OK => {
                    if pq_sys::PQntuples(result) > 0
                        && pq_sys::PQnfields(result) > 0
                        && pq_sys::PQgetisnull(result, 0, 0) == 0
                    {
                        Ok(Some(
                            CStr::from_ptr(pq_sys::PQgetvalue(result, 0, 0))
                                .to_string_lossy()
                                .into_owned(),
                        ))
                    } else {
                        Ok(None)
                    }
                }
                pq_sys::ExecStatusType::PGRES_COMMAND_OK => Ok(None),
                pq_sys::ExecStatusType::PGRES_FATAL_ERROR => Err(SqlError {
                    sqlstate: error_field(result, pq_sys::PG_DIAG_SQLSTATE),
                    message: error_field(result, pq_sys::PG_DIAG_MESSAGE_PRIMARY),
                }),
                other => Err(SqlError {
                    sqlstate: String::new(),
                    message: format!("unexpected result status {other:?}"),
                }),
            }
        };
        // SAFETY: result came from libpq and is not used after this.
        unsafe { pq_sys::PQclear(result) };
        outcome
    }

    /// Runs a statement that must succeed.
    fn must(&self, sql: &str) -> Option<String> {
        self.query(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e:?}\n{}", pair().standby.log_tail()))
    }

    /// Runs a statement that must fail with `sqlstate`.
    fn must_fail(&self, sql: &str, sqlstate: &str) -> SqlError {
        match self.query(sql) {
            Err(e) if e.sqlstate == sqlstate => e,
            Err(e) => panic!("{sql}: expected SQLSTATE {sqlstate}, got {e:?}"),
            Ok(v) => panic!("{sql}: expected SQLSTATE {sqlstate}, got the value {v:?}"),
        }
    }

    /// Runs a statement returning one bytea; Ok is its bytes.
    fn bytes(&self, sql: &str) -> Result<Vec<u8>, SqlError> {
        self.query(sql).map(|v| bytea_value(sql, v))
    }

    /// session_request(message) on the session channel; Ok is the reply.
    fn exchange(&self, message: &[u8]) -> Result<Vec<u8>, SqlError> {
        self.bytes(&format!(
            "SELECT netbuf_test.session_request({})",
            lit(message)
        ))
    }

    /// An exchange that must return its own request (an echo).
    fn echo(&self, message: &[u8]) {
        assert_reply(message, self.exchange(message), message);
    }

    fn take_notices(&self) -> Vec<String> {
        std::mem::take(&mut *self.notices.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The descriptors of this session's backend: how many are relation
    /// files under `datadir` (fd.c's file cache), and what the others point
    /// at (sockets, pipes, the log ...), sorted.
    fn fds(&self, datadir: &Path) -> Fds {
        let dir = format!("/proc/{}/fd", self.pid());
        let mut fds = Fds {
            relation_files: 0,
            others: Vec::new(),
        };
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{dir}: {e}")) {
            let Some(target) = entry.ok().and_then(|e| std::fs::read_link(e.path()).ok()) else {
                continue;
            };
            if target.starts_with(datadir) {
                fds.relation_files += 1;
            } else {
                fds.others.push(target.to_string_lossy().into_owned());
            }
        }
        fds.others.sort();
        fds
    }
}

/// See [`Session::fds`].
#[derive(Debug, PartialEq)]
struct Fds {
    relation_files: usize,
    others: Vec<String>,
}

/// How many more relation files a standby backend may have open after the
/// failing calls than after the warm-up: fd.c keeps a relation's file open
/// once read (up to max_files_per_process), and the failing path reads a
/// few catalogs the warm-up did not (pg_operator and some of its and
/// pg_type's indexes: seen +5 and +6).  Every other descriptor (sockets, pipes, epoll ...) must be the
/// very same: a leaked channel is a socket per call.
const RELATION_FILE_SLACK: usize = 16;

impl Fds {
    fn stable_since(&self, before: &Fds) -> bool {
        self.others == before.others
            && self.relation_files <= before.relation_files + RELATION_FILE_SLACK
    }

    fn sockets(&self) -> usize {
        self.others
            .iter()
            .filter(|t| t.starts_with("socket:"))
            .count()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // SAFETY: conn is valid and not used after this.
        unsafe { pq_sys::PQfinish(self.conn) };
        self.conn = ptr::null_mut();
    }
}

// ---- helpers ---------------------------------------------------------------

/// A bytea result (hex output) as bytes; panics on NULL.
fn bytea_value(what: &str, value: Option<String>) -> Vec<u8> {
    bytea_bytes(&value.unwrap_or_else(|| panic!("{what}: NULL")))
}

/// A test that shares the pair: the shared lock, a standby session, and
/// its session channel opened with `tag` as its application_name and
/// checked with an echo; with the channel's serving backend.
fn session_with_channel(tag: &str) -> (RwLockReadGuard<'static, ()>, Session, libc::pid_t) {
    let lock = shared();
    let p = pair();
    let s = Session::standby(p);
    s.must(&format!(
        "SELECT netbuf_test.session_connect('{}')",
        tagged_conninfo(&p.primary, tag)
    ));
    s.echo(&echo_msg(tag, "warm"));
    let serving = serving_backend(&p.primary, tag);
    (lock, s, serving)
}

/// Waits until `session`'s standby backend waits inside netbuf (on its
/// latch and socket: wait_event_type Extension).
fn wait_in_netbuf(p: &Pair, session: &Session) {
    p.standby.wait_backend(&format!(
        "pid = {} AND wait_event_type = 'Extension'",
        session.pid()
    ));
}

/// Waits for the primary backend `pid` to exit.
fn wait_gone(p: &Pair, pid: libc::pid_t) {
    p.primary
        .wait_backend_exit(pid, EXIT_WAIT)
        .unwrap_or_else(|e| panic!("serving backend {pid} still there: {e}"));
}

/// On drop, waits (best effort) for the serving backends tagged `tag` to be
/// gone: a test that failed on leaked channels must not leave them to the
/// next test.  Declared before the Session, so it runs after the Session
/// is closed.
struct Reap<'a>(&'a Pair, &'a str);

impl Drop for Reap<'_> {
    fn drop(&mut self) {
        let _ = wait_tagged_backends(&self.0.primary, self.1, 0, Duration::from_secs(20));
    }
}

// ---- 1. a reply never answers another request ------------------------------

/// The reproduction: the serving backend is stopped (SIGSTOP), an
/// exchange fails on statement_timeout, the serving backend resumes; the
/// next exchange must return its own reply, not the one of the timed-out
/// request.
#[test]
fn statement_timeout_with_the_serving_backend_stopped_never_shifts_replies() {
    let p = pair();
    let tag = "em_stopped_timeout";
    let (_lock, s, serving) = session_with_channel(tag);
    {
        let _stopped = Stopped::new(serving);
        s.must("SET statement_timeout = '700ms'");
        let t0 = Instant::now();
        let first = echo_msg(tag, "first");
        match s.exchange(&first) {
            Err(e) if e.sqlstate == "57014" => {}
            other => panic!("the exchange should time out (57014), got {other:?}"),
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
        s.must("RESET statement_timeout");
    } // SIGCONT: the serving backend answers "first" now, to nobody.
    s.echo(&echo_msg(tag, "second"));
    s.echo(&echo_msg(tag, "third"));
    // The timed-out channel's connection was closed: its backend exits.
    wait_gone(p, serving);
}

/// pg_cancel_backend of the standby backend while it waits for the reply of
/// a slow request ('S': the handler sleeps): the next exchange gets its own
/// reply, not the "S" that arrives later.
#[test]
fn pg_cancel_backend_while_waiting_never_shifts_replies() {
    let p = pair();
    let tag = "em_cancel";
    let (_lock, s, _) = session_with_channel(tag);
    s.start(&format!(
        "SELECT netbuf_test.session_request({})",
        lit(&sleep_msg(2000))
    ));
    wait_in_netbuf(p, &s);
    p.standby.cancel_backend(s.pid());
    match s.finish() {
        Err(e) if e.sqlstate == "57014" => {}
        other => panic!("the exchange should be cancelled (57014), got {other:?}"),
    }
    s.echo(&echo_msg(tag, "after-cancel"));
    s.echo(&echo_msg(tag, "after-cancel-2"));
}

/// Eight requests queued (E1 E2 E3, a 2 s 'S', E5..E8) and flushed; three
/// replies received; what interrupts the fourth wait (statement_timeout or
/// pg_cancel_backend) resets the channel: a recv with no new send fails,
/// and the next exchange returns its own reply, never "S" or E5..E8.
#[test]
fn pipelined_timeout_after_three_of_eight_never_shifts_replies() {
    pipelined_interrupt("em_pipe_timeout", Interrupt::Timeout);
}

#[test]
fn pipelined_cancel_after_three_of_eight_never_shifts_replies() {
    pipelined_interrupt("em_pipe_cancel", Interrupt::Cancel);
}

enum Interrupt {
    Timeout,
    Cancel,
}

fn pipelined_interrupt(tag: &str, how: Interrupt) {
    let p = pair();
    let (_lock, s, _) = session_with_channel(tag);
    let mut batch: Vec<Vec<u8>> = (1..=8).map(|i| echo_msg(tag, &format!("E{i}"))).collect();
    batch[3] = sleep_msg(2000);
    let array = batch.iter().map(|m| lit(m)).collect::<Vec<_>>().join(",");
    s.must(&format!("SELECT netbuf_test.session_queue(ARRAY[{array}])"));
    for expected in &batch[..3] {
        let got = s
            .bytes("SELECT netbuf_test.session_recv()")
            .expect("one of the first three replies");
        assert!(
            &got == expected,
            "expected {}, got {}",
            show(expected),
            show(&got)
        );
    }
    let outcome = match how {
        Interrupt::Timeout => {
            s.must("SET statement_timeout = '500ms'");
            let outcome = s.bytes("SELECT netbuf_test.session_recv()");
            s.must("RESET statement_timeout");
            outcome
        }
        Interrupt::Cancel => {
            s.start("SELECT netbuf_test.session_recv()");
            wait_in_netbuf(p, &s);
            p.standby.cancel_backend(s.pid());
            s.finish().map(|v| bytea_value("the fourth recv", v))
        }
    };
    match outcome {
        Err(e) if e.sqlstate == "57014" => {}
        Err(e) => panic!("the fourth recv should fail with 57014, got {e:?}"),
        Ok(reply) => panic!(
            "the fourth recv should fail with 57014, got {}",
            show(&reply)
        ),
    }
    if let Interrupt::Timeout = how {
        // Nothing was sent since the reset: there is no reply to wait for.
        if let Ok(reply) = s.bytes("SELECT netbuf_test.session_recv()") {
            panic!(
                "a recv after the timeout, with no new send, returned {}",
                show(&reply)
            );
        }
    }
    s.echo(&echo_msg(tag, "next"));
    s.echo(&echo_msg(tag, "next-2"));
}

/// An ERROR in the caller between netbuf_send and netbuf_recv aborts the
/// transaction: the reply of the abandoned request never answers the next
/// one.
#[test]
fn error_between_send_and_recv_never_shifts_replies() {
    let tag = "em_caller_error";
    let (_lock, s, _) = session_with_channel(tag);
    s.must("BEGIN");
    s.must(&format!(
        "SELECT netbuf_test.session_send({})",
        lit(&echo_msg(tag, "x-abandoned"))
    ));
    s.must_fail("SELECT 1/0", "22012");
    s.must("ROLLBACK");
    s.echo(&echo_msg(tag, "y"));
    s.echo(&echo_msg(tag, "z"));
}

/// Issue 8, item 5: the buffer netbuf_recv returned stays valid when the
/// next netbuf_send reconnects, so a reply can be forwarded as it is.  A
/// 300 kB reply is received, the channel
/// is reset by an ERROR with a request in flight, and the reply's buffer is
/// sent on the reset channel: the echo must be exactly that reply.
/// Seen failing with the reconnect that freed the buffer (the bytes sent
/// were no longer the reply's: 300,015 bytes came back, not equal).
#[test]
fn a_reply_forwarded_after_a_reset_arrives_intact() {
    let p = pair();
    let tag = "em_forward";
    let (_lock, s, _) = session_with_channel(tag);
    let big: Vec<u8> = [
        echo_msg(tag, "big"),
        (0..300_000u32).map(|i| (i % 251) as u8).collect(),
    ]
    .concat();
    s.must(&format!(
        "SELECT netbuf_test.session_queue(ARRAY[{}])",
        lit(&big)
    ));
    let got = bytea_value(
        "recv",
        s.query("SELECT netbuf_test.session_recv()").unwrap(),
    );
    assert_eq!(got.len(), big.len(), "the 300 kB echo");
    s.must("BEGIN");
    s.must(&format!(
        "SELECT netbuf_test.session_send({})",
        lit(&echo_msg(tag, "abandoned"))
    ));
    s.must_fail("SELECT 1/0", "22012");
    s.must("ROLLBACK");
    let forwarded = bytea_value(
        "forward",
        s.query("SELECT netbuf_test.session_forward_last()")
            .unwrap(),
    );
    assert!(
        forwarded == big,
        "the forwarded reply came back as {} ({} bytes)",
        show(&forwarded[..forwarded.len().min(64)]),
        forwarded.len()
    );
    s.echo(&echo_msg(tag, "after"));
    p.standby.assert_no_crash();
}

/// The same inside a PL/pgSQL block with an EXCEPTION clause (a
/// subtransaction aborts); the next exchange is made in the same
/// transaction, right after the subtransaction aborted, and again after.
#[test]
fn error_between_send_and_recv_in_an_exception_block_never_shifts_replies() {
    let tag = "em_caller_error_sub";
    let (_lock, s, _) = session_with_channel(tag);
    let abandoned = echo_msg(tag, "in-abandoned");
    let next = echo_msg(tag, "out");
    s.must(&format!(
        "DO $$
         DECLARE
             reply bytea;
         BEGIN
             BEGIN
                 PERFORM netbuf_test.session_send({});
                 PERFORM 1/0;
             EXCEPTION WHEN division_by_zero THEN
                 NULL;
             END;
             reply := netbuf_test.session_request({});
             PERFORM set_config('netbuf_error_model.reply', encode(reply, 'hex'), false);
         END $$",
        lit(&abandoned),
        lit(&next)
    ));
    let reply = unhex(
        &s.must("SELECT current_setting('netbuf_error_model.reply')")
            .unwrap(),
    );
    assert!(
        reply == next,
        "the reply to {} inside the block is {}",
        show(&next),
        show(&reply)
    );
    s.echo(&echo_msg(tag, "after"));
}

// ---- 2. an ERROR does not leak the channel -------------------------------

/// A DO block of `n` seed-shaped calls that each fail on the primary
/// ("out of range" between netbuf_connect and netbuf_disconnect), each
/// caught by its own EXCEPTION clause.  Returns "ok other" where ok counts
/// the expected 22003 errors and other is the first other error, if any
/// (the loop stops there).
fn failing_calls_block(conninfo: &str, n: u32) -> String {
    format!(
        "DO $$
         DECLARE
             ok int := 0;
             other text := '';
         BEGIN
             FOR i IN 1..{n} LOOP
                 BEGIN
                     PERFORM netbuf_test.exchange_n('{conninfo}', ARRAY[2147483647]);
                     other := 'call ' || i || ' succeeded';
                     EXIT;
                 EXCEPTION
                     WHEN numeric_value_out_of_range THEN
                         ok := ok + 1;
                     WHEN OTHERS THEN
                         other := 'call ' || i || ': ' || SQLSTATE || ' ' || SQLERRM;
                         EXIT;
                 END;
             END LOOP;
             PERFORM set_config('netbuf_error_model.result', ok || ' ' || other, false);
         END $$"
    )
}

/// 1,000 failing seed-shaped calls in one standby session, 50 per DO block:
/// after each block no serving backend is left on the primary, and the
/// standby backend's descriptors do not grow.
#[test]
fn a_thousand_failing_calls_in_exception_blocks_leave_no_backend_and_no_fd() {
    let _lock = exclusive();
    let p = pair();
    let tag = "em_fail_loop";
    let conninfo = tagged_conninfo(&p.primary, tag);
    let _reap = Reap(p, tag);
    let s = Session::standby(p);
    // Warm-up: plpgsql, libnetbuf, libpq and the catalogs these use are
    // loaded and read once, with a call that succeeds.
    s.must(&format!(
        "DO $$ BEGIN
             BEGIN
                 PERFORM netbuf_test.exchange_n('{conninfo}', ARRAY[1]);
             EXCEPTION WHEN OTHERS THEN NULL;
             END;
         END $$"
    ));
    wait_tagged_backends(&p.primary, tag, 0, EXIT_WAIT).expect("the warm-up channel is closed");
    let datadir = &p.standby.datadir;
    let before = s.fds(datadir);
    let t0 = Instant::now();
    const BLOCKS: u32 = 20;
    const PER_BLOCK: u32 = 50;
    for block in 1..=BLOCKS {
        s.must(&failing_calls_block(&conninfo, PER_BLOCK));
        let result = s
            .must("SELECT current_setting('netbuf_error_model.result')")
            .unwrap();
        assert_eq!(
            result.trim(),
            PER_BLOCK.to_string(),
            "block {block}: expected {PER_BLOCK} 'out of range' errors"
        );
        if let Err(left) = wait_tagged_backends(&p.primary, tag, 0, EXIT_WAIT) {
            let now = s.fds(datadir);
            panic!(
                "after {} failing calls, {} serving backends are left on the primary; \
                 the standby backend has {} sockets open (had {})",
                block * PER_BLOCK,
                left.len(),
                now.sockets(),
                before.sockets()
            );
        }
        let now = s.fds(datadir);
        assert!(
            now.stable_since(&before),
            "after {} failing calls the standby backend's descriptors went from \
             {before:?} to {now:?}",
            block * PER_BLOCK
        );
    }
    let after = s.fds(datadir);
    eprintln!(
        "{} failing calls in {:?}; standby backend: {} + {} descriptors before, {} + {} after \
         (relation files + others)",
        BLOCKS * PER_BLOCK,
        t0.elapsed(),
        before.relation_files,
        before.others.len(),
        after.relation_files,
        after.others.len()
    );
}

/// Forty failing top-level statements in one session (each aborts its
/// transaction): no serving backend is left, descriptors stay put.
#[test]
fn forty_failing_statements_leave_no_backend_and_no_fd() {
    let _lock = exclusive();
    let p = pair();
    let tag = "em_fail_stmts";
    let conninfo = tagged_conninfo(&p.primary, tag);
    let _reap = Reap(p, tag);
    let s = Session::standby(p);
    assert_eq!(
        s.must(&format!(
            "SELECT netbuf_test.exchange_n('{conninfo}', ARRAY[1])"
        )),
        Some("{301}".into())
    );
    wait_tagged_backends(&p.primary, tag, 0, EXIT_WAIT).expect("the warm-up channel is closed");
    let datadir = &p.standby.datadir;
    let before = s.fds(datadir);
    for _ in 0..40 {
        let e = s.must_fail(
            &format!("SELECT netbuf_test.exchange_n('{conninfo}', ARRAY[2147483647])"),
            "22003",
        );
        assert!(e.message.contains("out of range"), "{e:?}");
    }
    let left = wait_tagged_backends(&p.primary, tag, 0, EXIT_WAIT).err();
    let after = s.fds(datadir);
    assert!(
        left.is_none() && after.stable_since(&before),
        "after 40 failing statements: {} serving backends left on the primary; \
         the standby backend has {} sockets open (had {}); descriptors {before:?} -> {after:?}",
        left.map_or(0, |l| l.len()),
        after.sockets(),
        before.sockets()
    );
}

/// A function that opens a channel and forgets netbuf_disconnect: a
/// WARNING naming netbuf when its transaction commits, and the channel is
/// closed (its serving backend exits) -- in autocommit and in a
/// transaction block with two such calls.
#[test]
fn a_channel_left_open_is_closed_with_a_warning_at_commit() {
    let _lock = shared();
    let p = pair();
    let tag = "em_forgotten";
    let conninfo = tagged_conninfo(&p.primary, tag);
    let _reap = Reap(p, tag);
    let s = Session::standby(p);
    let leak_warnings = |notices: &[String]| {
        notices
            .iter()
            .filter(|n| n.starts_with("WARNING: ") && n.contains("netbuf") && n.contains("closed"))
            .count()
    };

    s.must(&format!("SELECT netbuf_test.leak('{conninfo}')"));
    let notices = s.take_notices();
    let left = wait_tagged_backends(&p.primary, tag, 0, EXIT_WAIT).err();
    assert!(
        leak_warnings(&notices) == 1 && left.is_none(),
        "autocommit: notices {notices:?}; serving backends left: {left:?}"
    );

    s.must("BEGIN");
    s.must(&format!("SELECT netbuf_test.leak('{conninfo}')"));
    s.must(&format!("SELECT netbuf_test.leak('{conninfo}')"));
    s.must("COMMIT");
    let notices = s.take_notices();
    let left = wait_tagged_backends(&p.primary, tag, 0, EXIT_WAIT).err();
    assert!(
        leak_warnings(&notices) == 2 && left.is_none(),
        "transaction block: notices {notices:?}; serving backends left: {left:?}"
    );
}

/// A pinned channel (the test module's session channel) lives across 200
/// statements, some of them in transactions that abort after a completed
/// exchange (no request in flight): every reply is the right one and the
/// same serving backend answers throughout.
#[test]
fn a_pinned_channel_survives_many_transactions_including_aborted_ones() {
    let p = pair();
    let tag = "em_pinned";
    let (_lock, s, serving) = session_with_channel(tag);
    let mut statements = 0;
    for i in 0..60 {
        let msg = |step: &str| echo_msg(tag, &format!("{i}-{step}"));
        match i % 4 {
            // Autocommit exchanges.
            0 | 1 => {
                s.echo(&msg("a"));
                statements += 1;
            }
            // A transaction that aborts after its exchange completed.
            2 => {
                s.must("BEGIN");
                s.echo(&msg("b"));
                s.must_fail("SELECT 1/0", "22012");
                s.must("ROLLBACK");
                statements += 4;
            }
            // A savepoint rolled back after an exchange, then one more
            // exchange and a commit; then a statement that fails after its
            // own exchange completed.
            _ => {
                s.must("BEGIN");
                s.must("SAVEPOINT sp");
                s.echo(&msg("c"));
                s.must_fail("SELECT 1/0", "22012");
                s.must("ROLLBACK TO SAVEPOINT sp");
                s.echo(&msg("d"));
                s.must("COMMIT");
                s.must_fail(
                    &format!(
                        "SELECT length(netbuf_test.session_request({})) / 0",
                        lit(&msg("e"))
                    ),
                    "22012",
                );
                statements += 8;
            }
        }
        if i % 15 == 14 {
            assert_eq!(
                tagged_backends(&p.primary, tag),
                [serving],
                "after {statements} statements"
            );
        }
    }
    assert!(statements >= 200, "{statements}");
    s.echo(&echo_msg(tag, "last"));
    assert_eq!(tagged_backends(&p.primary, tag), [serving]);
}
