//! The core of netbuf: one channel to the primary as a non-blocking state
//! machine over libpq.
//!
//! Nothing here waits.  Each `poll_*` step does what it can and returns
//! `Step::Wait` when the socket must become ready first; the caller waits its
//! own way and calls the same step again.  The safe Rust API (client.rs)
//! waits with poll(2); the backend (c_shim/standby/channel.c) waits on its latch and
//! serves interrupts.  Both therefore run exactly this code.

use std::ffi::{CStr, CString, c_int};
use std::time::Instant;

use crate::conninfo::ConnectParams;
use crate::error::{Error, PrimaryError, Result};
use crate::pq::{
    CopyBuffer, CopyData, ExecStatusType, PgConn, PgResult, PostgresPollingStatusType,
};
use crate::protocol;

/// What the socket must become before a step can make progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    Read,
    /// Readable or writable: libpq reads while it waits to write.
    Write,
}

/// The result of one step.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step<T> {
    Ready(T),
    Wait(Wait),
}

/// What `poll_recv` produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Received {
    /// A message; read it with `Channel::message`.
    Message,
    /// The primary ended the stream normally (it answered our CopyDone).
    EndOfStream,
}

/// Secures the session's search_path after connecting, before anything
/// else runs, where the startup packet could not (an LDAP service entry:
/// see `ConnectParams::search_path_in_startup`); otherwise the startup
/// packet's options set it and the CALL is the only query.
const SECURE_SEARCH_PATH: &CStr =
    c"SELECT pg_catalog.set_config('search_path', 'pg_catalog,pg_temp', false)";
/// The CALL that enters COPY BOTH.  One statement per query string: a
/// multi-statement string would make the CALL atomic, and netbuf.serve()
/// needs a non-atomic CALL.  The primary refuses to send a reply larger
/// than `max_reply_size`, so libpq never allocates room for one.
fn enter_copy_both(max_reply_size: usize) -> CString {
    CString::new(format!(
        "CALL netbuf.serve(max_reply_size => {max_reply_size})"
    ))
    .expect("no NUL in a formatted number")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// PQconnectPoll has not finished.
    Connecting,
    /// SECURE_SEARCH_PATH is running (only where the startup packet
    /// could not secure search_path).
    SecuringSearchPath,
    /// CALL netbuf.serve() is running, waiting for CopyBothResponse.
    EnteringCopy,
    /// In COPY BOTH: messages flow both ways.
    Streaming,
    /// The primary ended the stream; collecting the CALL's results.
    Draining,
    /// Connected, no stream open: the next send re-enters COPY BOTH.
    Idle,
    /// The connection is unusable; `broken` says why.
    Broken,
}

/// The phase of a channel as its users see it (see [`Channel::snapshot`]).
#[cfg_attr(not(feature = "backend"), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChannelState {
    /// Connecting, securing search_path or entering COPY BOTH.
    Connecting,
    Streaming,
    /// The primary ended the stream; its results are being collected.
    Draining,
    /// Connected, no stream open (the next send re-enters COPY BOTH).
    Idle,
    /// No usable connection: the next send opens a new one.
    Broken,
}

/// A channel at one moment.
#[cfg_attr(not(feature = "backend"), allow(dead_code))]
pub(crate) struct Snapshot {
    pub(crate) state: ChannelState,
    /// The pid of the serving backend (`PQbackendPID`), 0 without a connection.
    pub(crate) serving_pid: c_int,
    /// Whether the current connection authenticated with a password.
    pub(crate) used_password: bool,
    pub(crate) in_flight: usize,
    pub(crate) counters: Counters,
}

pub(crate) struct Channel {
    /// The libpq connection; `None` once a reset closed it.
    conn: Option<PgConn>,
    /// How to connect again after the connection was lost.
    params: ConnectParams,
    phase: Phase,
    /// libpq holds output that PQflush has not sent yet.
    flush_pending: bool,
    /// Connection deadline from connect_timeout (libpq's own is ignored
    /// under PQconnectPoll).
    deadline: Option<Instant>,
    /// The last message received; valid until the next `poll_recv`.
    message: Option<CopyBuffer>,
    /// An error the primary reported, kept while its results drain.
    pending_error: Option<Error>,
    /// Why the channel is Broken.
    broken: Option<Error>,
    /// The CALL that (re-)enters COPY BOTH, with the reply size limit.
    enter_copy: CString,
    /// Requests queued in the current stream whose replies have not been
    /// received.  A caller that gives up on them (an ERROR, a timeout) must
    /// `reset` the channel, or the next receive would return their replies.
    in_flight: usize,
    /// What went through the channel over its whole life, reconnections
    /// included (see [`Counters`]).
    counters: Counters,
}

/// Messages and bytes a channel carried, for the standby's
/// `netbuf.channels()`: requests queued, replies received, and their bytes
/// (op codes included).
#[cfg_attr(not(feature = "backend"), allow(dead_code))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counters {
    pub(crate) requests: u64,
    pub(crate) replies: u64,
    pub(crate) bytes_sent: u64,
    pub(crate) bytes_received: u64,
}

impl Channel {
    /// Begin connecting; drive with `poll_connect`.  Replies larger than
    /// `max_reply_size` bytes are refused by the primary with an error.
    pub(crate) fn start(conninfo: &str, max_reply_size: usize) -> Result<Channel> {
        if !protocol::MAX_MESSAGE_SIZE_RANGE.contains(&max_reply_size) {
            return Err(Error::InvalidArgument(format!(
                "max_message_size {max_reply_size} is out of range ({}..{} bytes)",
                protocol::MAX_MESSAGE_SIZE_RANGE.start(),
                protocol::MAX_MESSAGE_SIZE_RANGE.end()
            )));
        }
        let params = ConnectParams::new(conninfo)?;
        let conn = open(&params).map_err(|e| match e {
            Error::Connect(m) => Error::Connect(params.redact(m)),
            other => other,
        })?;
        Ok(Channel {
            deadline: params.connect_deadline(),
            conn: Some(conn),
            params,
            phase: Phase::Connecting,
            flush_pending: false,
            message: None,
            pending_error: None,
            broken: None,
            enter_copy: enter_copy_both(max_reply_size),
            in_flight: 0,
            counters: Counters::default(),
        })
    }

    /// Replace a lost connection with a new one.  Whatever was in flight
    /// went with the old connection, so no old reply can reach a new request.
    /// The last received message stays valid: the caller may be sending it.
    fn reconnect(&mut self) -> Result<()> {
        self.conn = None;
        match open(&self.params) {
            Ok(conn) => self.conn = Some(conn),
            Err(error) => return Err(self.fail(error)),
        }
        self.deadline = self.params.connect_deadline();
        self.phase = Phase::Connecting;
        self.flush_pending = false;
        self.pending_error = None;
        self.broken = None;
        self.in_flight = 0;
        Ok(())
    }

    /// The connection, or the error that closed it.
    fn conn(&mut self) -> Result<&mut PgConn> {
        match self.conn.as_mut() {
            Some(conn) => Ok(conn),
            None => Err(self
                .broken
                .clone()
                .unwrap_or_else(|| Error::Internal("the channel has no connection".into()))),
        }
    }

    /// The socket to wait on; -1 once a reset closed the connection.
    pub(crate) fn socket(&self) -> c_int {
        self.conn.as_ref().map_or(-1, PgConn::socket)
    }

    /// Requests sent whose replies have not been received.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// What the standby's `netbuf.channels()` shows, and what its SQL
    /// functions check before reusing a cached channel.
    #[cfg_attr(not(feature = "backend"), allow(dead_code))]
    pub(crate) fn snapshot(&self) -> Snapshot {
        let state = match self.phase {
            Phase::Connecting | Phase::SecuringSearchPath | Phase::EnteringCopy => {
                ChannelState::Connecting
            }
            Phase::Streaming => ChannelState::Streaming,
            Phase::Draining => ChannelState::Draining,
            Phase::Idle => ChannelState::Idle,
            Phase::Broken => ChannelState::Broken,
        };
        let conn = self.conn.as_ref();
        Snapshot {
            state,
            serving_pid: conn.map_or(0, PgConn::backend_pid),
            used_password: conn.is_some_and(PgConn::used_password),
            in_flight: self.in_flight,
            counters: self.counters,
        }
    }

    /// The connection string the channel was opened with, for display:
    /// passwords masked (see `conninfo::redact::masked`).
    #[cfg_attr(not(feature = "backend"), allow(dead_code))]
    pub(crate) fn masked_conninfo(&self) -> Option<String> {
        let conninfo = self.params.values.first()?.to_str().ok()?;
        crate::conninfo::redact::masked(conninfo).map(|(text, _)| text)
    }

    /// Give up on everything in flight: close the connection now (the
    /// primary's serving backend exits and its replies are discarded) and
    /// fail every later call until a send reconnects.  `why` says what
    /// interrupted the caller.  The last received message stays valid.
    pub(crate) fn reset(&mut self, why: &str) {
        let discarded = self.in_flight;
        self.conn = None;
        self.flush_pending = false;
        self.pending_error = None;
        self.in_flight = 0;
        self.phase = Phase::Broken;
        self.broken = Some(Error::Reset(format!(
            "the channel was reset after {why} with {discarded} request(s) in flight; \
             their replies were discarded"
        )));
    }

    /// Whether a caller that stops waiting now would leave something behind
    /// that a later call could mistake for its own: replies in flight, or a
    /// setup query or stream end still running.
    pub(crate) fn needs_reset(&self) -> bool {
        self.in_flight > 0
            || matches!(
                self.phase,
                Phase::Connecting
                    | Phase::SecuringSearchPath
                    | Phase::EnteringCopy
                    | Phase::Draining
            )
    }

    /// How long a caller may wait before calling the step again, in
    /// milliseconds; `None` means no limit.
    pub(crate) fn wait_timeout_ms(&self) -> Option<u64> {
        let deadline = self.deadline?;
        let left = deadline.saturating_duration_since(Instant::now());
        // Round up so that a wait never returns just before the deadline.
        Some(left.as_millis() as u64 + u64::from(left.subsec_nanos() % 1_000_000 != 0))
    }

    /// The message returned by the last successful `poll_recv`.
    pub(crate) fn message(&self) -> Option<&CopyBuffer> {
        self.message.as_ref()
    }

    /// Mark the channel unusable and return the error.  Nothing in flight
    /// can arrive any more: the next send opens a new connection.  libpq's
    /// messages pass through `ConnectParams::redact`.
    fn fail(&mut self, error: Error) -> Error {
        let error = match error {
            Error::Connect(m) => Error::Connect(self.params.redact(m)),
            Error::ConnectionLost(m) => Error::ConnectionLost(self.params.redact(m)),
            other => other,
        };
        self.phase = Phase::Broken;
        self.broken = Some(error.clone());
        self.in_flight = 0;
        error
    }

    /// Close the channel after a bug (a caught panic): nothing it was doing
    /// can be trusted, so it is reset like an interrupted call.
    #[cfg_attr(not(feature = "backend"), allow(dead_code))]
    pub(crate) fn poison(&mut self, error: &Error) {
        self.reset(&format!("an internal error ({error})"));
    }

    fn lost(&mut self) -> Error {
        let message = self
            .conn
            .as_ref()
            .map(PgConn::error_message)
            .unwrap_or_default();
        let message = if message.is_empty() {
            "the connection was closed".to_owned()
        } else {
            message
        };
        self.fail(Error::ConnectionLost(message))
    }

    fn check_deadline(&mut self) -> Result<()> {
        match self.deadline {
            Some(deadline) if Instant::now() >= deadline => {
                Err(self.fail(Error::Connect("timeout expired (connect_timeout)".into())))
            }
            _ => Ok(()),
        }
    }

    /// Send what libpq still holds; `Some(wait)` if it must wait.
    fn flush_output(&mut self) -> Result<Option<Wait>> {
        if !self.flush_pending {
            return Ok(None);
        }
        match self.conn()?.flush() {
            0 => {
                self.flush_pending = false;
                Ok(None)
            }
            1 => Ok(Some(Wait::Write)),
            _ => Err(self.lost()),
        }
    }

    /// Send the query of setup phase `next` (securing search_path, or the
    /// CALL that enters COPY BOTH) and move to it.
    fn start_query(&mut self, next: Phase) -> Result<()> {
        let sql = match next {
            Phase::SecuringSearchPath => SECURE_SEARCH_PATH,
            Phase::EnteringCopy => self.enter_copy.as_c_str(),
            _ => unreachable!("{next:?} runs no query"),
        };
        let sent = match self.conn.as_mut() {
            Some(conn) => conn.send_query(sql),
            None => false,
        };
        if !sent {
            return Err(self.lost());
        }
        self.flush_pending = true;
        self.phase = next;
        Ok(())
    }

    /// Read input if a result is incomplete; `Some(Wait::Read)` to wait.
    fn absorb_input(&mut self) -> Result<Option<Wait>> {
        let conn = self.conn()?;
        if !conn.is_busy() {
            return Ok(None);
        }
        if !conn.consume_input() {
            return Err(self.lost());
        }
        Ok(self.conn()?.is_busy().then_some(Wait::Read))
    }

    /// Drive the connection until it streams (connect with search_path
    /// secured, CALL netbuf.serve()), or until it is idle again after an
    /// error.
    fn poll_setup(&mut self) -> Result<Step<()>> {
        loop {
            match self.phase {
                Phase::Streaming => return Ok(Step::Ready(())),
                Phase::Broken => {
                    return Err(self.broken.clone().expect("a broken channel has its error"));
                }
                Phase::Idle => self.start_query(Phase::EnteringCopy)?,
                Phase::Connecting => {
                    self.check_deadline()?;
                    match self.conn()?.connect_poll() {
                        PostgresPollingStatusType::PGRES_POLLING_OK => {
                            self.deadline = None;
                            if !self.conn()?.set_nonblocking() {
                                return Err(self.lost());
                            }
                            // search_path is secured by the startup
                            // packet's options, so the CALL is the one
                            // query; else a query of its own first.
                            self.start_query(if self.params.search_path_in_startup {
                                Phase::EnteringCopy
                            } else {
                                Phase::SecuringSearchPath
                            })?;
                        }
                        PostgresPollingStatusType::PGRES_POLLING_READING => {
                            return Ok(Step::Wait(Wait::Read));
                        }
                        PostgresPollingStatusType::PGRES_POLLING_WRITING => {
                            return Ok(Step::Wait(Wait::Write));
                        }
                        _ => {
                            let message = self.conn()?.error_message();
                            return Err(self.fail(Error::Connect(message)));
                        }
                    }
                }
                Phase::Draining => {
                    if let Step::Wait(wait) = self.poll_drain()? {
                        return Ok(Step::Wait(wait));
                    }
                }
                Phase::SecuringSearchPath | Phase::EnteringCopy => {
                    if let Some(wait) = self.poll_results()? {
                        return Ok(Step::Wait(wait));
                    }
                }
            }
        }
    }

    /// Handle the next result of the running query; `Some(wait)` if none
    /// is complete yet.
    fn poll_results(&mut self) -> Result<Option<Wait>> {
        if let Some(wait) = self.flush_output()? {
            return Ok(Some(wait));
        }
        if let Some(wait) = self.absorb_input()? {
            return Ok(Some(wait));
        }
        match self.conn()?.get_result() {
            Some(result) => self.take_result(result)?,
            None => self.query_finished()?,
        }
        Ok(None)
    }

    /// The stream ended: collect the CALL's results until the connection is
    /// idle.  An error the primary reported is returned here.
    fn poll_drain(&mut self) -> Result<Step<Received>> {
        while self.phase == Phase::Draining {
            if let Some(wait) = self.poll_results()? {
                return Ok(Step::Wait(wait));
            }
        }
        Ok(Step::Ready(Received::EndOfStream))
    }

    /// One result of a setup query, or of the CALL after its stream ended.
    fn take_result(&mut self, result: PgResult) -> Result<()> {
        match (self.phase, result.status()) {
            (Phase::EnteringCopy, ExecStatusType::PGRES_COPY_BOTH) => self.phase = Phase::Streaming,
            (Phase::SecuringSearchPath, ExecStatusType::PGRES_TUPLES_OK) => {}
            (Phase::Draining, ExecStatusType::PGRES_COMMAND_OK) => {}
            (_, ExecStatusType::PGRES_FATAL_ERROR | ExecStatusType::PGRES_NONFATAL_ERROR) => {
                let error = primary_error(&result);
                let error = if self.phase == Phase::Draining {
                    error
                } else {
                    refused(error)
                };
                // Keep the first error; later ones are consequences.
                self.pending_error.get_or_insert(error);
            }
            (phase, status) => {
                return Err(self.fail(Error::ConnectionLost(format!(
                    "unexpected result {status:?} from the primary while {phase:?}"
                ))));
            }
        }
        Ok(())
    }

    /// The current query has returned all its results.
    fn query_finished(&mut self) -> Result<()> {
        if self.conn()?.is_bad() {
            // A FATAL from the primary (terminated, shut down) ends here.
            let error = match self.pending_error.take() {
                Some(error) => error,
                None => Error::ConnectionLost(self.conn()?.error_message()),
            };
            return Err(self.fail(error));
        }
        if let Some(error) = self.pending_error.take() {
            // Securing search_path failed: the session must not be used
            // with the role's own search_path, so the connection is dropped.
            if self.phase == Phase::SecuringSearchPath {
                return Err(self.fail(error));
            }
            // The stream ended on an error: the primary discards the
            // requests that followed it, so none of them is in flight.
            self.in_flight = 0;
            self.phase = Phase::Idle;
            return Err(error);
        }
        match self.phase {
            Phase::SecuringSearchPath => self.start_query(Phase::EnteringCopy),
            Phase::Draining => {
                self.in_flight = 0;
                self.phase = Phase::Idle;
                Ok(())
            }
            _ => Err(self.fail(Error::ConnectionLost(
                "the primary did not start COPY BOTH for CALL netbuf.serve()".into(),
            ))),
        }
    }

    /// Drive the connection to the streaming state.
    pub(crate) fn poll_connect(&mut self) -> Result<Step<()>> {
        self.poll_setup()
    }

    /// Queue one message.  If the previous stream ended (after an error the
    /// primary reported), this first re-enters COPY BOTH.
    pub(crate) fn poll_send(&mut self, message: &[u8]) -> Result<Step<()>> {
        if message.is_empty() {
            return Err(Error::InvalidArgument(
                "cannot send an empty message: libpq does not transmit a 0-byte CopyData message, \
                 so the primary would never see it and never reply"
                    .into(),
            ));
        }
        if message.len() > i32::MAX as usize {
            return Err(Error::InvalidArgument(format!(
                "message of {} bytes is too large",
                message.len()
            )));
        }
        if self.phase == Phase::Broken {
            // The call that saw the connection break reported it; a new
            // request gets a new connection, so no old reply can answer it.
            self.reconnect()?;
        }
        if let Step::Wait(wait) = self.poll_setup()? {
            return Ok(Step::Wait(wait));
        }
        match self.conn()?.put_copy_data(message) {
            1 => {
                self.flush_pending = true;
                self.in_flight += 1;
                self.counters.requests += 1;
                self.counters.bytes_sent += message.len() as u64;
                Ok(Step::Ready(()))
            }
            // libpq's buffer is full (non-blocking mode): make room first.
            0 => Ok(Step::Wait(self.flush_output()?.unwrap_or(Wait::Write))),
            _ => Err(self.lost()),
        }
    }

    /// Send everything queued.
    pub(crate) fn poll_flush(&mut self) -> Result<Step<()>> {
        if self.phase == Phase::Broken {
            return Err(self.broken.clone().expect("a broken channel has its error"));
        }
        Ok(match self.flush_output()? {
            Some(wait) => Step::Wait(wait),
            None => Step::Ready(()),
        })
    }

    /// Take the next message from the primary, if one has arrived.
    pub(crate) fn poll_recv(&mut self) -> Result<Step<Received>> {
        // The previous message's buffer is released now, as documented.
        self.message = None;
        match self.phase {
            Phase::Idle => {
                return Err(Error::InvalidArgument(
                    "no stream is open: the previous one ended, so no reply can come; send a request first".into(),
                ));
            }
            Phase::Streaming => {}
            // Called again while the ended stream's results arrive.
            Phase::Draining => return self.poll_drain(),
            _ => {
                if let Step::Wait(wait) = self.poll_setup()? {
                    return Ok(Step::Wait(wait));
                }
            }
        }
        let pending_write = self.flush_output()?;
        let mut read_once = false;
        loop {
            match self.conn()?.get_copy_data() {
                CopyData::Message(buffer) => {
                    self.counters.replies += 1;
                    self.counters.bytes_received += buffer.as_bytes().len() as u64;
                    self.message = Some(buffer);
                    self.in_flight = self.in_flight.saturating_sub(1);
                    return Ok(Step::Ready(Received::Message));
                }
                CopyData::WouldBlock if !read_once => {
                    if !self.conn()?.consume_input() {
                        return Err(self.lost());
                    }
                    read_once = true;
                }
                CopyData::WouldBlock => return Ok(Step::Wait(pending_write.unwrap_or(Wait::Read))),
                CopyData::Done => {
                    self.phase = Phase::Draining;
                    return self.poll_drain();
                }
                CopyData::Failed => return Err(self.lost()),
            }
        }
    }
}

/// Start a libpq connection with `params`.
fn open(params: &ConnectParams) -> Result<PgConn> {
    let conn = PgConn::start(&params.keys, &params.values, true)
        .ok_or_else(|| Error::Connect("out of memory allocating the connection".into()))?;
    if conn.is_bad() {
        return Err(Error::Connect(conn.error_message()));
    }
    Ok(conn)
}

/// An ErrorResponse from the primary, as libpq parsed it.
fn primary_error(result: &PgResult) -> Error {
    use pq_sys::{
        PG_DIAG_MESSAGE_DETAIL, PG_DIAG_MESSAGE_HINT, PG_DIAG_MESSAGE_PRIMARY, PG_DIAG_SQLSTATE,
    };
    let field = |code: u8| result.error_field(code).filter(|s| !s.is_empty());
    let message = field(PG_DIAG_MESSAGE_PRIMARY).unwrap_or_else(|| result.error_message());
    Error::Primary(Box::new(PrimaryError {
        sqlstate: field(PG_DIAG_SQLSTATE).unwrap_or_else(|| "XX000".into()),
        message,
        detail: field(PG_DIAG_MESSAGE_DETAIL),
        hint: field(PG_DIAG_MESSAGE_HINT),
    }))
}

/// The primary refused to open the channel: say so, and how to fix it.
fn refused(error: Error) -> Error {
    let Error::Primary(mut e) = error else {
        return error;
    };
    e.message = format!(
        "netbuf: the primary refused to open the channel: {}",
        e.message
    );
    let hint = match e.sqlstate.as_str() {
        // invalid_schema_name, undefined_function
        "3F000" | "42883" => Some(
            "Run CREATE EXTENSION netbuf on the primary, in the database the channel connects to.",
        ),
        // insufficient_privilege
        "42501" => Some(
            "On the primary: GRANT EXECUTE ON PROCEDURE netbuf.serve TO the role in the connection string.",
        ),
        _ => None,
    };
    if let (Some(hint), None) = (hint, &e.hint) {
        e.hint = Some(hint.to_owned());
    }
    Error::Primary(e)
}
