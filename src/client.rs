//! The safe Rust API, for tools and tests outside a backend.
//!
//! It drives the same state machine as the backend (channel.rs) and waits
//! on the socket with poll(2), so a call blocks until it is done, the way
//! the seed's blocking calls did.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::channel::{Channel, Received, Step, Wait};
use crate::error::{Error, Result};
use crate::protocol;

/// Settings of a channel that a connection string cannot carry.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    max_message_size: usize,
    timeout: Option<Duration>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            max_message_size: protocol::DEFAULT_MAX_MESSAGE_SIZE,
            timeout: None,
        }
    }
}

impl ConnectOptions {
    /// The largest reply this client accepts, in bytes (default 64 MiB,
    /// as the GUC `netbuf.max_message_size`).  The primary refuses to send
    /// a larger one and reports an error (SQLSTATE 54000) instead, so no
    /// memory is ever allocated for it here.
    pub fn max_message_size(mut self, nbytes: usize) -> Self {
        self.max_message_size = nbytes;
        self
    }

    /// How long any one blocking call (connecting included) may wait; see
    /// [`Client::set_timeout`].  Default: no limit.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

/// Cancels the blocking call of one [`Client`] from another thread.
///
/// The call blocked in that client, or its next blocking call if none is,
/// fails with [`Error::Cancelled`]; as with a timeout, replies in flight
/// are discarded with the connection.
#[derive(Clone)]
pub struct Canceller(Arc<CancelState>);

struct CancelState {
    requested: AtomicBool,
    /// A pipe whose read end the blocked call polls beside the socket.
    wake_read: OwnedFd,
    wake_write: OwnedFd,
}

impl Canceller {
    fn new() -> Result<Canceller> {
        let mut fds = [-1; 2];
        // SAFETY: fds is a valid array of two ints for pipe2 to fill.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
            return Err(Error::Internal(format!(
                "could not create the cancel pipe: {}",
                io::Error::last_os_error()
            )));
        }
        // SAFETY: pipe2 succeeded, so both are open descriptors we now own.
        let (wake_read, wake_write) =
            unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        Ok(Canceller(Arc::new(CancelState {
            requested: AtomicBool::new(false),
            wake_read,
            wake_write,
        })))
    }

    /// Ask the client's current (or next) blocking call to fail.
    pub fn cancel(&self) {
        self.0.requested.store(true, Ordering::SeqCst);
        // A full pipe already wakes the waiter, so a failed write is fine.
        // SAFETY: writes one byte from a valid buffer to our own pipe.
        let _ = unsafe { libc::write(self.0.wake_write.as_raw_fd(), [1u8].as_ptr().cast(), 1) };
    }

    /// Take a pending cancel request: one atomic swap, since it runs before
    /// every wait.  The pipe is emptied by the wait that it woke.
    fn take(&self) -> bool {
        self.0.requested.swap(false, Ordering::SeqCst)
    }

    /// Empty the wake-up pipe.
    fn drain(&self) {
        let mut sink = [0u8; 64];
        // SAFETY: reads into a valid local buffer from our own non-blocking pipe.
        while unsafe {
            libc::read(
                self.0.wake_read.as_raw_fd(),
                sink.as_mut_ptr().cast(),
                sink.len(),
            )
        } > 0
        {}
    }
}

/// A channel to a primary's `netbuf.serve()`.
///
/// ```no_run
/// let mut client = netbuf::Client::connect("host=127.0.0.1 port=5432 user=postgres")?;
/// client.send(&netbuf::demo_op::encode_add300(&[100, 200, 300]))?;
/// let reply = client.recv()?.expect("a reply");
/// assert_eq!(netbuf::demo_op::decode_int32s(reply), Some(vec![400, 500, 600]));
/// # Ok::<(), netbuf::Error>(())
/// ```
///
/// # Replies and errors
/// Replies come in request order.  When a blocking call fails because it
/// timed out, was cancelled, lost the connection or panicked inside netbuf
/// while requests were in flight, the connection is closed and their
/// replies are discarded: the next `send` connects again and no later
/// `recv` can return a reply meant for an earlier request.
pub struct Client {
    channel: Channel,
    timeout: Option<Duration>,
    canceller: Canceller,
}

impl Client {
    /// Connect with the session's search_path secured (`pg_catalog,pg_temp`,
    /// through the startup packet) and enter COPY BOTH with
    /// `CALL netbuf.serve()`.  `conninfo` follows libpq's rules (key=value
    /// or URI, PG* environment variables); without a dbname it connects to
    /// `postgres`.
    pub fn connect(conninfo: &str) -> Result<Client> {
        Client::connect_with(conninfo, &ConnectOptions::default())
    }

    /// [`Client::connect`] with settings beyond the connection string.
    pub fn connect_with(conninfo: &str, options: &ConnectOptions) -> Result<Client> {
        let mut client = Client {
            channel: Channel::start(conninfo, options.max_message_size)?,
            timeout: options.timeout,
            canceller: Canceller::new()?,
        };
        client.block(Channel::poll_connect)?;
        Ok(client)
    }

    /// Limit how long each later blocking call (`send`, `queue`, `flush`,
    /// `recv`, `request`) may wait; past it the call fails with
    /// [`Error::Timeout`].  `None`: no limit.
    pub fn set_timeout(&mut self, timeout: Option<Duration>) {
        self.timeout = timeout;
    }

    /// A handle that cancels this client's blocking calls from another thread.
    pub fn canceller(&self) -> Canceller {
        self.canceller.clone()
    }

    /// Requests sent whose replies have not been received yet.
    pub fn in_flight(&self) -> usize {
        self.channel.in_flight()
    }

    /// Send one message (at least one byte: its op code) and flush it.
    pub fn send(&mut self, message: &[u8]) -> Result<()> {
        self.queue(message)?;
        self.flush()
    }

    /// Queue one message without waiting for the network (libpq sends what
    /// it can).  For pipelining: queue many, `flush` once, then `recv` the
    /// replies, which come in request order.
    pub fn queue(&mut self, message: &[u8]) -> Result<()> {
        self.block(|c| c.poll_send(message))
    }

    /// Send everything queued.  (`recv` flushes too.)
    pub fn flush(&mut self) -> Result<()> {
        self.block(Channel::poll_flush)
    }

    /// Wait for the next message.  `Ok(None)` when the primary ended the
    /// stream.  The slice borrows the client until the next call.
    pub fn recv(&mut self) -> Result<Option<&[u8]>> {
        match self.block(Channel::poll_recv)? {
            Received::Message => Ok(self.channel.message().map(|m| m.as_bytes())),
            Received::EndOfStream => Ok(None),
        }
    }

    /// Send a request and wait for its reply.
    pub fn request(&mut self, message: &[u8]) -> Result<Vec<u8>> {
        self.send(message)?;
        match self.recv()? {
            Some(reply) => Ok(reply.to_vec()),
            None => Err(Error::ConnectionLost(
                "the primary ended the stream instead of replying".into(),
            )),
        }
    }

    /// Close the channel (the primary's serving backend exits).
    pub fn close(self) {}
}

impl Client {
    /// Repeat a step, waiting on the socket between tries, until it is done,
    /// the timeout passes or a cancel arrives.  A call that gives up with
    /// something in flight resets the channel (see [`Client`]).
    fn block<T>(&mut self, mut step: impl FnMut(&mut Channel) -> Result<Step<T>>) -> Result<T> {
        let deadline = self.timeout.map(|t| Instant::now() + t);
        let guard = ResetOnUnwind(&mut self.channel);
        loop {
            if self.canceller.take() {
                return Err(give_up(
                    guard.0,
                    Error::Cancelled("the call was cancelled".into()),
                ));
            }
            let wait = match step(guard.0)? {
                Step::Ready(value) => return Ok(value),
                Step::Wait(wait) => wait,
            };
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if left == Some(Duration::ZERO) {
                let after = self.timeout.unwrap_or_default();
                return Err(give_up(
                    guard.0,
                    Error::Timeout(format!("the call timed out after {after:?}")),
                ));
            }
            wait_socket(guard.0, wait, left, &self.canceller)?;
        }
    }
}

/// Resets the channel if a panic unwinds out of a step: whatever it was
/// doing cannot be trusted, and the caller may catch the panic and go on.
struct ResetOnUnwind<'a>(&'a mut Channel);

impl Drop for ResetOnUnwind<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.reset("a panic");
        }
    }
}

/// The caller stops waiting: reset the channel if that leaves anything
/// behind, and return the error.
fn give_up(channel: &mut Channel, error: Error) -> Error {
    if channel.needs_reset() {
        let why = match &error {
            Error::Timeout(_) => "a timeout",
            _ => "a cancel",
        };
        channel.reset(why);
    }
    error
}

fn wait_socket(
    channel: &Channel,
    wait: Wait,
    left: Option<Duration>,
    canceller: &Canceller,
) -> Result<()> {
    let events = match wait {
        Wait::Read => libc::POLLIN,
        Wait::Write => libc::POLLIN | libc::POLLOUT,
    };
    let mut pollfds = [
        libc::pollfd {
            fd: channel.socket(),
            events,
            revents: 0,
        },
        libc::pollfd {
            fd: canceller.0.wake_read.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    let left_ms = left.map(|l| l.as_millis().max(1) as u64);
    let timeout = match (channel.wait_timeout_ms(), left_ms) {
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => u64::MAX,
    };
    let timeout = if timeout == u64::MAX {
        -1
    } else {
        timeout.min(i32::MAX as u64) as libc::c_int
    };
    // SAFETY: pollfds is an array of two valid, initialised pollfd.
    if unsafe { libc::poll(pollfds.as_mut_ptr(), 2, timeout) } < 0 {
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(Error::ConnectionLost(format!(
                "poll() on the channel's socket failed: {error}"
            )));
        }
    }
    if pollfds[1].revents != 0 {
        canceller.drain();
    }
    // Readiness, timeout, cancel or EINTR: the caller decides what happened.
    Ok(())
}
