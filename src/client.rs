//! The safe Rust API, for tools and tests outside a backend.
//!
//! It drives the same state machine as the backend (channel.rs) and waits
//! on the socket with poll(2), so a call blocks until it is done, the way
//! the seed's blocking calls did.

use std::io;

use crate::channel::{Channel, Received, Step, Wait};
use crate::error::{Error, Result};
use crate::protocol;

/// Settings of a channel that a connection string cannot carry.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    max_message_size: usize,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            max_message_size: protocol::DEFAULT_MAX_MESSAGE_SIZE,
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
}

/// A channel to a primary's `netbuf.serve()`.
///
/// ```no_run
/// let mut client = netbuf::Client::connect("host=127.0.0.1 port=5432 user=postgres")?;
/// client.send(&netbuf::protocol::encode_add300(&[100, 200, 300]))?;
/// let reply = client.recv()?.expect("a reply");
/// assert_eq!(netbuf::protocol::decode_int32s(reply), Some(vec![400, 500, 600]));
/// # Ok::<(), netbuf::Error>(())
/// ```
pub struct Client {
    channel: Channel,
}

impl Client {
    /// Connect, secure the session's search_path and enter COPY BOTH with
    /// `CALL netbuf.serve()`.  `conninfo` follows libpq's rules (key=value
    /// or URI, PG* environment variables); without a dbname it connects to
    /// `postgres`.
    pub fn connect(conninfo: &str) -> Result<Client> {
        Client::connect_with(conninfo, &ConnectOptions::default())
    }

    /// [`Client::connect`] with settings beyond the connection string.
    pub fn connect_with(conninfo: &str, options: &ConnectOptions) -> Result<Client> {
        let mut channel = Channel::start(conninfo, options.max_message_size)?;
        block(&mut channel, Channel::poll_connect)?;
        Ok(Client { channel })
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
        block(&mut self.channel, |c| c.poll_send(message))
    }

    /// Send everything queued.  (`recv` flushes too.)
    pub fn flush(&mut self) -> Result<()> {
        block(&mut self.channel, Channel::poll_flush)
    }

    /// Wait for the next message.  `Ok(None)` when the primary ended the
    /// stream.  The slice borrows the client until the next call.
    pub fn recv(&mut self) -> Result<Option<&[u8]>> {
        match block(&mut self.channel, Channel::poll_recv)? {
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

/// Repeat a step, waiting on the socket between tries, until it is done.
fn block<T>(
    channel: &mut Channel,
    mut step: impl FnMut(&mut Channel) -> Result<Step<T>>,
) -> Result<T> {
    loop {
        match step(channel)? {
            Step::Ready(value) => return Ok(value),
            Step::Wait(wait) => wait_socket(channel, wait)?,
        }
    }
}

fn wait_socket(channel: &Channel, wait: Wait) -> Result<()> {
    let events = match wait {
        Wait::Read => libc::POLLIN,
        Wait::Write => libc::POLLIN | libc::POLLOUT,
    };
    let mut pollfd = libc::pollfd {
        fd: channel.socket(),
        events,
        revents: 0,
    };
    let timeout = match channel.wait_timeout_ms() {
        Some(ms) => ms.min(i32::MAX as u64) as libc::c_int,
        None => -1,
    };
    // SAFETY: pollfd is one valid, initialised pollfd for the whole call.
    if unsafe { libc::poll(&mut pollfd, 1, timeout) } < 0 {
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(Error::ConnectionLost(format!(
                "poll() on the channel's socket failed: {error}"
            )));
        }
    }
    // Readiness, timeout or EINTR: the step itself decides what happened.
    Ok(())
}
